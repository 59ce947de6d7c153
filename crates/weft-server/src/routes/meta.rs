//! Open routes: health and the OpenAPI document.

use crate::server::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;

pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = state.snapshot();
    super::indexed(
        snapshot.revision,
        &serde_json::json!({
            "status": "ok",
            "revision": snapshot.revision,
            "tenants": snapshot.model.tenants.len(),
            "nodes": snapshot.nodes.len(),
            "endpoints": snapshot.endpoints.len(),
        }),
    )
}

pub async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

/// `GET /v1/status/leader`: read from the store, so any controller answers the same.
pub async fn leader(
    State(state): State<Arc<AppState>>,
) -> crate::error::ApiResult<Json<weft_api::ControllersStatus>> {
    Ok(Json(crate::leader::status(&state).await?))
}
