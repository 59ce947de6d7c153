//! `GET /v1/explain?from=EP&to=EP&proto=tcp&port=N`.

use crate::auth::Role;
use crate::error::{ApiFailure, ApiResult};
use crate::extract::ApiQuery;
use crate::server::AppState;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainParams {
    from: String,
    to: String,
    proto: String,
    #[serde(default)]
    port: Option<u16>,
}

pub async fn live(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(params): ApiQuery<ExplainParams>,
) -> ApiResult<Response> {
    let snapshot = state.snapshot();
    let endpoint = |name: &str, field: &str| {
        snapshot.endpoints.get(name).ok_or_else(|| {
            ApiFailure::not_found(format!("endpoint {name} does not exist"), Some(field))
        })
    };
    let from = &endpoint(&params.from, "from")?.value;
    let to = &endpoint(&params.to, "to")?.value;
    role.require_read(&from.epg.tenant)?;
    role.require_read(&to.epg.tenant)?;
    let flow = crate::explain::flow(to, &params.proto, params.port)?;
    let node = state.liveness.get(&to.node);
    let explanation = crate::explain::explain(&snapshot, from, to, &flow, &node)?;
    Ok(super::indexed(snapshot.revision, &explanation))
}
