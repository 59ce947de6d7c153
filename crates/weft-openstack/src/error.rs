//! Errors as each service answers them. Keystone: `{"error": {"code", "title",
//! "message"}}`; Neutron: `{"NeutronError": {"type", "message", "detail"}}`. Clients
//! branch on the status code and show the message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What the controller or the store refused or failed with.
#[derive(Debug, thiserror::Error)]
pub enum OpenStackError {
    /// The change makes the model invalid (the validator's findings in `details`).
    #[error("{message}")]
    Invalid {
        message: String,
        details: Vec<String>,
    },
    /// The change conflicts with what exists (endpoints still in an EPG).
    #[error("{message}")]
    Conflict {
        message: String,
        details: Vec<String>,
    },
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this (a privileged app in a tenant no admin allowed).
    #[error("{0}")]
    Forbidden(String),
    #[error("weft store: {0}")]
    Store(#[from] weft_store::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl OpenStackError {
    /// The message with the first detail, which names the object at fault.
    pub fn explained(&self) -> String {
        match self {
            Self::Invalid { message, details } | Self::Conflict { message, details } => {
                match details.first() {
                    Some(first) => format!("{message}: {first}"),
                    None => message.clone(),
                }
            }
            other => other.to_string(),
        }
    }
}

/// A Keystone error response.
#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl KeystoneError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<OpenStackError> for KeystoneError {
    fn from(err: OpenStackError) -> Self {
        match err {
            OpenStackError::Invalid { .. } => Self::BadRequest(err.explained()),
            OpenStackError::Conflict { .. } => Self::Conflict(err.explained()),
            OpenStackError::NotFound(m) => Self::NotFound(m),
            OpenStackError::Forbidden(m) => Self::Forbidden(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for KeystoneError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "identity API request failed");
        }
        let body = serde_json::json!({"error": {
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "message": self.to_string(),
        }});
        (status, Json(body)).into_response()
    }
}

/// A Neutron error response: the status, Neutron's exception name and its message.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct NeutronError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl NeutronError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "HTTPBadRequest", message)
    }

    /// Neutron's InvalidInput: "Invalid input for <attribute>. Reason: ..." as given, else
    /// "Invalid input for operation: ...".
    pub fn invalid_input(message: impl Into<String>) -> Self {
        let message = message.into();
        let message = if message.starts_with("Invalid input for ") {
            message
        } else {
            format!("Invalid input for operation: {message}")
        };
        Self::new(StatusCode::BAD_REQUEST, "InvalidInput", message)
    }

    pub fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, message)
    }

    /// A 400 of Neutron's exception `kind`.
    pub fn bad_input(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, message)
    }

    pub fn conflict(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "HTTPUnauthorized",
            "Authentication required",
        )
    }
}

impl From<OpenStackError> for NeutronError {
    fn from(err: OpenStackError) -> Self {
        match &err {
            OpenStackError::Invalid { .. } => Self::invalid_input(err.explained()),
            OpenStackError::Conflict { .. } => Self::conflict("Conflict", err.explained()),
            OpenStackError::NotFound(m) => Self::not_found("NotFound", m.clone()),
            OpenStackError::Forbidden(m) => {
                Self::new(StatusCode::FORBIDDEN, "HTTPForbidden", m.clone())
            }
            OpenStackError::Store(_) | OpenStackError::Internal(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "HTTPInternalServerError",
                err.to_string(),
            ),
        }
    }
}

impl IntoResponse for NeutronError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(error = %self, "network API request failed");
        }
        let body = serde_json::json!({"NeutronError": {
            "type": self.kind,
            "message": self.message,
            "detail": "",
        }});
        (self.status, Json(body)).into_response()
    }
}

/// A Nova error response: `{"<kind>": {"message", "code"}}` (`badRequest`, `itemNotFound`,
/// `conflictingRequest`, `forbidden`, `computeFault`), or keystonemiddleware's 401.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct NovaError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl NovaError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "badRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "itemNotFound", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflictingRequest", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The request you have made requires authentication.",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "computeFault", message)
    }
}

impl From<OpenStackError> for NovaError {
    fn from(err: OpenStackError) -> Self {
        match &err {
            OpenStackError::Invalid { .. } => Self::bad_request(err.explained()),
            OpenStackError::Conflict { .. } => Self::conflict(err.explained()),
            OpenStackError::NotFound(m) => Self::not_found(m.clone()),
            OpenStackError::Forbidden(m) => Self::forbidden(m.clone()),
            OpenStackError::Store(_) | OpenStackError::Internal(_) => {
                Self::internal(err.to_string())
            }
        }
    }
}

impl From<NeutronError> for NovaError {
    fn from(err: NeutronError) -> Self {
        let kind = match err.status {
            StatusCode::BAD_REQUEST => "badRequest",
            StatusCode::NOT_FOUND => "itemNotFound",
            StatusCode::CONFLICT => "conflictingRequest",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::UNAUTHORIZED => "unauthorized",
            _ => "computeFault",
        };
        Self::new(err.status, kind, err.message)
    }
}

impl IntoResponse for NovaError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(error = %self, "compute API request failed");
        }
        let body = if self.status == StatusCode::UNAUTHORIZED {
            serde_json::json!({"error": {
                "code": 401, "title": "Unauthorized", "message": self.message,
            }})
        } else {
            serde_json::json!({self.kind: {
                "message": self.message,
                "code": self.status.as_u16(),
            }})
        };
        (self.status, Json(body)).into_response()
    }
}

/// A Glance error response, as Glance's WSGI layer answers JSON clients:
/// `{"code", "title", "message"}`.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct GlanceError {
    pub status: StatusCode,
    pub message: String,
}

impl GlanceError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<OpenStackError> for GlanceError {
    fn from(err: OpenStackError) -> Self {
        let status = match &err {
            OpenStackError::Invalid { .. } => StatusCode::BAD_REQUEST,
            OpenStackError::Conflict { .. } => StatusCode::CONFLICT,
            OpenStackError::NotFound(_) => StatusCode::NOT_FOUND,
            OpenStackError::Forbidden(_) => StatusCode::FORBIDDEN,
            OpenStackError::Store(_) | OpenStackError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self::new(status, err.explained())
    }
}

impl IntoResponse for GlanceError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(error = %self, "image API request failed");
        }
        let body = serde_json::json!({
            "code": self.status.as_u16(),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}
