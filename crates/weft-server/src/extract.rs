//! Request extractors whose rejections are [`ApiFailure`]s, so that axum's plain-text
//! rejections never reach a client, and a response filter for the ones axum makes itself
//! (unknown route, wrong method, bad path segment).

use crate::error::ApiFailure;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use weft_api::ApiError;

/// A JSON body. Errors name the field path (`model.tenant.shop.vrf`), via
/// `serde_path_to_error`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiFailure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiFailure::TooLarge { limit }
            } else {
                ApiFailure::bad_request(format!("cannot read the body: {rejection}"), None)
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The configured body limit, put in the request extensions so the 413 can say it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiFailure> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field = field_of(&path, &inner.to_string());
        ApiFailure::BadRequest {
            message: format!("invalid JSON body: {inner}"),
            field,
            details: Vec::new(),
        }
    })?;
    de.end().map_err(|err| {
        ApiFailure::bad_request(format!("invalid JSON body: trailing data: {err}"), None)
    })?;
    Ok(value)
}

/// The field at fault: the path, plus the unknown field's own name when serde complains of
/// one (its path stops at the enclosing object).
fn field_of(path: &str, message: &str) -> Option<String> {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    let base = (path != ".").then(|| path.to_string());
    match (base, unknown) {
        (Some(base), Some(name)) if !base.ends_with(name) => Some(format!("{base}.{name}")),
        (None, Some(name)) => Some(name.to_string()),
        (base, _) => base,
    }
}

/// Query parameters; an unreadable query is a 400 naming the problem.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection| {
                ApiFailure::bad_request(format!("invalid query: {}", rejection.body_text()), None)
            })
    }
}

/// Turns any error response that is not JSON yet (axum's own 404, 405, path rejections)
/// into an [`ApiError`] body.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    } else {
        text
    };
    let body = ApiError {
        error,
        field: None,
        details: Vec::new(),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named_with_its_path() {
        assert_eq!(
            field_of("model", "unknown field `bogus`, expected `tenant`"),
            Some("model.bogus".to_string())
        );
        assert_eq!(
            field_of(".", "unknown field `bogus`, expected one of"),
            Some("bogus".to_string())
        );
        assert_eq!(
            field_of("node", "invalid type: integer `1`, expected a string"),
            Some("node".to_string())
        );
    }
}
