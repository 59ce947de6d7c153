//! `GET /v1/explain?from=EP&to=EP&proto=tcp&port=N`.
//!
//! The installed side comes from the rule tables the destination's node reports, which
//! only the controller that hears the node holds (they can be megabytes; the store has
//! the report without them). Asked elsewhere, a controller forwards the request to that
//! one (the node's live key names it), once: a forwarded request is answered where it
//! lands. If that controller does not answer, the answer is given here without the
//! installed verdict, and its note says why.

use crate::auth::Role;
use crate::error::{ApiFailure, ApiResult};
use crate::extract::ApiQuery;
use crate::server::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::response::Response;
use serde::Deserialize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainParams {
    from: String,
    to: String,
    proto: String,
    #[serde(default)]
    port: Option<u16>,
}

/// Marks a request one controller forwarded to another.
const FORWARDED: &str = "x-weft-forwarded-by";
/// How long a forwarded explain may take before the answer is given without it.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn live(
    State(state): State<Arc<AppState>>,
    role: Role,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
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
    let me = &state.leadership.me.url;
    let mut unanswered = None;
    if !headers.contains_key(FORWARDED)
        && let Some(url) = state.liveness.heard_elsewhere(&to.node, me)
    {
        match forward(&url, me, query.as_deref().unwrap_or(""), &headers).await {
            Ok(response) => return Ok(response),
            Err(why) => {
                tracing::warn!(node = %to.node, controller = %url, error = %why, "explain not forwarded");
                unanswered = Some(format!(
                    "node {} reports to the controller at {url}, which holds its installed rules and did not answer: {why}",
                    to.node
                ));
            }
        }
    }
    let node = state.liveness.get(&to.node);
    let mut explanation = crate::explain::explain(&snapshot, from, to, &flow, &node)?;
    if let Some(why) = unanswered {
        explanation.installed = None;
        explanation.differs = true;
        explanation.note = Some(match explanation.note.take() {
            Some(note) => format!("{why}; {note}"),
            None => why,
        });
    }
    Ok(super::indexed(snapshot.revision, &explanation))
}

/// The same request at the controller at `url`, with the caller's credentials; its
/// answer as it is, unless it failed (no answer, or a 5xx).
async fn forward(
    url: &str,
    me: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, String> {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    let http = HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .build()
            .unwrap_or_default()
    });
    let mut request = http
        .get(format!("{url}{}?{query}", weft_api::paths::EXPLAIN))
        .header(FORWARDED, me);
    if let Some(auth) = headers.get(AUTHORIZATION) {
        request = request.header(AUTHORIZATION, auth);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_server_error() {
        return Err(format!("it answered {status}"));
    }
    let mut out = Response::builder().status(status.as_u16());
    for name in [CONTENT_TYPE.as_str(), weft_api::client::INDEX_HEADER] {
        if let Some(value) = response.headers().get(name) {
            out = out.header(name, value.as_bytes());
        }
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    out.body(axum::body::Body::from(body))
        .map_err(|e| e.to_string())
}
