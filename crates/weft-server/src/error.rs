//! Errors: [`ServerError`] for starting the server, [`ApiFailure`] for requests. Every
//! request error maps to its status and [`ApiError`] body here, and nowhere else.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use weft_api::ApiError;

/// Why [`crate::serve`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] weft_store::StoreError),
    #[error("stored state is unreadable: {0}")]
    Corrupt(String),
    #[error("cannot generate a token: {0}")]
    Random(String),
}

/// Why a request failed. The variant decides the status.
#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
        details: Vec<String>,
    },
    #[error("missing or unknown token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    NotFound {
        message: String,
        field: Option<String>,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<String>,
        details: Vec<String>,
    },
    #[error("{message}")]
    Unprocessable {
        message: String,
        field: Option<String>,
        details: Vec<String>,
    },
    /// What was asked for is no longer kept (an event history that was compacted).
    #[error("{0}")]
    Gone(String),
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("server is shutting down")]
    Unavailable,
    /// The store cannot be reached (etcd lost its quorum or is unreachable): nothing was
    /// changed; retry later.
    #[error("the store is unavailable, nothing was changed; retry: {0}")]
    StoreUnavailable(String),
    /// The server's own fault (store failure, a bug): details go to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiFailure {
    pub fn bad_request(message: impl Into<String>, field: Option<&str>) -> Self {
        Self::BadRequest {
            message: message.into(),
            field: field.map(str::to_string),
            details: Vec::new(),
        }
    }

    pub fn not_found(message: impl Into<String>, field: Option<&str>) -> Self {
        Self::NotFound {
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    pub fn conflict(message: impl Into<String>, field: Option<&str>) -> Self {
        Self::Conflict {
            message: message.into(),
            field: field.map(str::to_string),
            details: Vec::new(),
        }
    }

    pub fn unprocessable(message: impl Into<String>, field: Option<&str>) -> Self {
        Self::Unprocessable {
            message: message.into(),
            field: field.map(str::to_string),
            details: Vec::new(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Gone(_) => StatusCode::GONE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable | Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ApiError {
        let (field, details) = match self {
            Self::BadRequest { field, details, .. }
            | Self::Conflict { field, details, .. }
            | Self::Unprocessable { field, details, .. } => (field.clone(), details.clone()),
            Self::NotFound { field, .. } => (field.clone(), Vec::new()),
            _ => (None, Vec::new()),
        };
        let error = match self {
            Self::Internal(_) => "internal error; see the server log".to_string(),
            other => other.to_string(),
        };
        ApiError {
            error,
            field,
            details,
        }
    }
}

impl From<weft_store::StoreError> for ApiFailure {
    fn from(err: weft_store::StoreError) -> Self {
        match err {
            weft_store::StoreError::Closed => Self::Unavailable,
            e @ weft_store::StoreError::Unavailable { .. } => Self::StoreUnavailable(e.to_string()),
            other => Self::Internal(format!("store: {other}")),
        }
    }
}

/// The Consul adapter's errors, where weft's own API reads its catalog (discovery).
impl From<weft_consul::ConsulError> for ApiFailure {
    fn from(err: weft_consul::ConsulError) -> Self {
        match err {
            weft_consul::ConsulError::Store(e) => e.into(),
            weft_consul::ConsulError::NotFound(m) => Self::not_found(m, None),
            weft_consul::ConsulError::BadRequest(m) => Self::bad_request(m, None),
            other => Self::Internal(format!("catalog: {other}")),
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, %status, "request refused");
        }
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiFailure>;
