//! Errors as Consul answers them: a status code and a plain-text body. Clients branch on
//! the code (py-consul: 400 BadRequest, 401 ACLDisabled, 403 permission denied, 404
//! NotFound, other 4xx ClientError, 5xx ConsulException), so each case keeps Consul's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ConsulError {
    /// A malformed request: the message names the field or parameter.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Permission denied: {0}")]
    PermissionDenied(String),
    /// Consul answers 401 for ACL operations on an agent without ACLs.
    #[error("ACL support disabled")]
    AclDisabled,
    #[error("Request body too large: {0}")]
    TooLarge(String),
    /// Consul answers 500 for requests it understood but refuses (an unknown session,
    /// an unknown datacenter, a check for an unknown service).
    #[error("{0}")]
    Refused(String),
    /// The store could not be read or written: nothing was changed.
    #[error("weft store: {0}")]
    Store(#[from] weft_store::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ConsulError {
    pub fn no_datacenter() -> Self {
        Self::Refused("No path to datacenter".into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Self::AclDisabled => StatusCode::UNAUTHORIZED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Refused(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ConsulError {
    fn into_response(self) -> Response {
        if matches!(self, Self::Store(_) | Self::Internal(_)) {
            tracing::warn!(error = %self, "consul API request failed");
        }
        (self.status(), self.to_string()).into_response()
    }
}
