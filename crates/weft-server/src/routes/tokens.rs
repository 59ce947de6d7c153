//! `POST /v1/tokens`: an admin mints a token for one tenant. Only its hash is stored.

use super::{indexed, skeleton};
use crate::auth::{self, Role};
use crate::error::{ApiFailure, ApiResult};
use crate::extract::ApiJson;
use crate::keys;
use crate::server::AppState;
use crate::state::TokenGrant;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;
use weft_api::{TokenRequest, TokenResponse};

pub async fn create(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiJson(request): ApiJson<TokenRequest>,
) -> ApiResult<Response> {
    role.require_admin()?;
    let valid = !request.tenant.is_empty()
        && request.tenant.len() <= 64
        && request
            .tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(ApiFailure::bad_request(
            format!("{:?} is not a tenant name", request.tenant),
            Some("tenant"),
        ));
    }
    let token = auth::new_token().map_err(|e| ApiFailure::Internal(e.to_string()))?;
    let grant = serde_json::to_vec(&TokenGrant {
        tenant: request.tenant.clone(),
        expires_ms: None,
    })
    .map_err(|e| ApiFailure::Internal(e.to_string()))?;
    let revision = skeleton::put(&state, &keys::token(&auth::hash(&token)), &grant).await?;
    tracing::info!(tenant = %request.tenant, "tenant token minted");
    Ok(indexed(revision, &TokenResponse { token }))
}
