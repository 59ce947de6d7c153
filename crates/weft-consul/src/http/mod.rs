//! The routes, at Consul's paths, with Consul's query parameters, headers and blocking:
//! the router, the request context (datacenter, token → tenant, parameters), Consul's
//! response headers, and blocking queries. One module per endpoint family.

mod agent;
mod catalog;
mod health;
mod kv;
mod sessions;
mod status;

use crate::body::{self, Obj, parse_duration};
use crate::catalog::{
    CheckView, SERF_HEALTH, View, catalog_service_json, check_json, node_json, service_json,
};
use crate::error::ConsulError;
use crate::filter::{self, Expr};
use crate::kv::{PutOptions, list_keys};
use crate::records::{Status, prefix};
use crate::session::session_json;
use crate::{Consul, KEY_ROOT, now_ms};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weft_store::KvStore;

type Shared<S> = State<Arc<Consul<S>>>;
type Params = Query<Vec<(String, String)>>;
type Reply = Result<Response, ConsulError>;

/// Consul's default and largest `wait`.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The Consul HTTP API over `consul`.
pub fn router<S: KvStore + Clone>(consul: Arc<Consul<S>>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route(
            "/v1/kv/",
            get(kv::kv_get::<S>)
                .put(kv::kv_put::<S>)
                .delete(kv::kv_delete::<S>),
        )
        .route(
            "/v1/kv/{*key}",
            get(kv::kv_get::<S>)
                .put(kv::kv_put::<S>)
                .delete(kv::kv_delete::<S>),
        )
        .route("/v1/session/create", put(sessions::session_create::<S>))
        .route(
            "/v1/session/destroy/{id}",
            put(sessions::session_destroy::<S>),
        )
        .route("/v1/session/renew/{id}", put(sessions::session_renew::<S>))
        .route("/v1/session/info/{id}", get(sessions::session_info::<S>))
        .route("/v1/session/node/{node}", get(sessions::session_node::<S>))
        .route("/v1/session/list", get(sessions::session_list::<S>))
        .route("/v1/status/leader", get(status::status_leader::<S>))
        .route("/v1/status/peers", get(status::status_peers::<S>))
        .route(
            "/v1/catalog/datacenters",
            get(catalog::catalog_datacenters::<S>),
        )
        .route("/v1/catalog/register", put(catalog::catalog_register::<S>))
        .route(
            "/v1/catalog/deregister",
            put(catalog::catalog_deregister::<S>),
        )
        .route("/v1/catalog/nodes", get(catalog::catalog_nodes::<S>))
        .route("/v1/catalog/node/{node}", get(catalog::catalog_node::<S>))
        .route("/v1/catalog/services", get(catalog::catalog_services::<S>))
        .route(
            "/v1/catalog/service/{name}",
            get(catalog::catalog_service::<S>),
        )
        .route(
            "/v1/catalog/connect/{name}",
            get(catalog::nothing_connect::<S>),
        )
        .route(
            "/v1/catalog/gateway-services/{name}",
            get(catalog::nothing_connect::<S>),
        )
        .route(
            "/v1/health/service/{name}",
            get(health::health_service::<S>),
        )
        .route(
            "/v1/health/connect/{name}",
            get(catalog::nothing_connect::<S>),
        )
        .route(
            "/v1/health/ingress/{name}",
            get(catalog::nothing_connect::<S>),
        )
        .route("/v1/health/checks/{name}", get(health::health_checks::<S>))
        .route("/v1/health/state/{state}", get(health::health_state::<S>))
        .route("/v1/health/node/{node}", get(health::health_node::<S>))
        .route("/v1/weft/explain/{service}", get(health::weft_explain::<S>))
        .route("/v1/agent/self", get(agent::agent_self::<S>))
        .route("/v1/agent/members", get(agent::agent_members::<S>))
        .route("/v1/agent/reload", put(agent::agent_reload::<S>))
        .route("/v1/agent/metrics", get(agent::agent_metrics::<S>))
        .route("/v1/agent/monitor", get(agent::agent_monitor::<S>))
        .route(
            "/v1/agent/force-leave/{node}",
            put(agent::agent_force_leave::<S>),
        )
        .route("/v1/agent/token/{kind}", put(agent::agent_token::<S>))
        .route("/v1/agent/maintenance", put(agent::agent_maintenance::<S>))
        .route("/v1/agent/services", get(agent::agent_services::<S>))
        .route("/v1/agent/service/{id}", get(agent::agent_service::<S>))
        .route(
            "/v1/agent/service/register",
            put(agent::agent_service_register::<S>),
        )
        .route(
            "/v1/agent/service/deregister/{id}",
            put(agent::agent_service_deregister::<S>),
        )
        .route(
            "/v1/agent/service/maintenance/{id}",
            put(agent::agent_service_maintenance::<S>),
        )
        .route("/v1/agent/checks", get(agent::agent_checks::<S>))
        .route(
            "/v1/agent/check/register",
            put(agent::agent_check_register::<S>),
        )
        .route(
            "/v1/agent/check/deregister/{id}",
            put(agent::agent_check_deregister::<S>),
        )
        // pass, warn or fail; `deregister` and `update` are matched first.
        .route("/v1/agent/check/{verb}/{id}", put(agent::check_ttl::<S>))
        .route("/v1/agent/check/update/{id}", put(agent::check_update::<S>))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::kv::MAX_VALUE + 64 * 1024,
        ))
        .with_state(consul)
}

async fn landing() -> &'static str {
    "weft: Consul-compatible HTTP API (see /v1/...)\n"
}

// ---- request context ----

struct Ctx {
    tenant: String,
    params: Vec<(String, String)>,
}

impl Ctx {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.params.iter().any(|(k, _)| k == name)
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A present flag counts as true unless it says otherwise (`?recurse`, `?passing=1`).
    fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !matches!(v, "false" | "0"))
    }

    fn u64(&self, name: &str) -> Result<Option<u64>, ConsulError> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ConsulError::BadRequest(format!("Invalid {name} value {v:?}: not a number"))
                })
            })
            .transpose()
    }

    fn filter(&self) -> Result<Option<Expr>, ConsulError> {
        self.get("filter")
            .filter(|f| !f.trim().is_empty())
            .map(filter::parse)
            .transpose()
    }
}

fn token(headers: &HeaderMap, params: &[(String, String)]) -> Option<String> {
    if let Some(t) = headers.get("x-consul-token").and_then(|v| v.to_str().ok()) {
        return Some(t.to_string());
    }
    if let Some(t) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.to_string());
    }
    params
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
        .filter(|t| !t.is_empty())
}

fn ctx<S>(c: &Consul<S>, headers: &HeaderMap, Query(params): Params) -> Result<Ctx, ConsulError> {
    if let Some((_, dc)) = params.iter().find(|(k, _)| k == "dc")
        && !dc.is_empty()
        && *dc != c.config.datacenter
    {
        return Err(ConsulError::no_datacenter());
    }
    let tenant = c.directory.tenant(token(headers, &params).as_deref())?;
    Ok(Ctx { tenant, params })
}

// ---- responses ----

fn indexed(index: u64, status: StatusCode, body: impl IntoResponse) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert("x-consul-index", HeaderValue::from(index.max(1)));
    h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    h.insert(
        "x-consul-effective-consistency",
        HeaderValue::from_static("leader"),
    );
    r
}

fn json_at(index: u64, value: Value) -> Response {
    indexed(index, StatusCode::OK, axum::Json(value))
}

fn not_found_at(index: u64) -> Response {
    indexed(index, StatusCode::NOT_FOUND, ())
}

fn json_true() -> Response {
    axum::Json(true).into_response()
}

fn boolean(b: bool) -> Response {
    axum::Json(b).into_response()
}

fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

// ---- blocking queries ----

/// The store keys a blocking query waits on: these keys, or every key under them.
struct Watched {
    keys: Vec<String>,
    exact: bool,
}

impl Watched {
    fn prefixes(keys: Vec<String>) -> Self {
        Self { keys, exact: false }
    }

    fn covers(&self, key: &[u8]) -> bool {
        self.keys.iter().any(|k| {
            if self.exact {
                key == k.as_bytes()
            } else {
                key.starts_with(k.as_bytes())
            }
        })
    }
}

impl<S: KvStore + Clone> Consul<S> {
    /// Waits until a watched key changed after the client's `index`, or `wait` passed.
    /// Without `index`, returns at once. The store revision is the only clock: what
    /// changes outside the store (weft's task states, probe results, TTL expiry) is
    /// written to the epoch key by the background loop, so it moves the index too.
    async fn block(&self, ctx: &Ctx, watched: &Watched) -> Result<(), ConsulError> {
        let Some(index) = ctx.u64("index")?.filter(|i| *i > 0) else {
            return Ok(());
        };
        let wait = match ctx.get("wait") {
            Some(w) => parse_duration(w)
                .ok_or_else(|| ConsulError::BadRequest(format!("Invalid wait time {w:?}")))?,
            None => DEFAULT_WAIT,
        }
        .min(MAX_WAIT);
        // Consul adds up to wait/16 of jitter, so that many watchers do not return at once.
        let mut r = [0u8; 2];
        let _ = getrandom::fill(&mut r);
        let jitter = wait / 16 * u32::from(u16::from_le_bytes(r)) / u32::from(u16::MAX);
        let deadline = tokio::time::Instant::now() + wait + jitter;
        let start = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        let mut stream = match self.store.watch(KEY_ROOT.as_bytes(), Some(start)).await {
            Ok(s) => s,
            // History before the client's index is gone: answer now, as Consul does.
            Err(weft_store::StoreError::Compacted { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return Ok(()),
                event = stream.next() => match event {
                    Some(Ok(e)) => {
                        if watched.covers(&e.kv.key) {
                            return Ok(());
                        }
                    }
                    Some(Err(_)) | None => return Ok(()),
                },
            }
        }
    }

    /// Blocks (when asked) on the tenant's catalog, then builds its view.
    async fn blocking_view(&self, ctx: &Ctx) -> Result<View, ConsulError> {
        let mut keys = catalog_prefixes(&ctx.tenant);
        keys.push(crate::records::EPOCH_KEY.to_string());
        self.block(ctx, &Watched::prefixes(keys)).await?;
        self.view(&ctx.tenant).await
    }
}

impl<S: KvStore + Clone> Consul<S> {
    /// The agent endpoints' blocking: `?hash=H&wait=` returns when the answer's content
    /// hash differs from `H` (or `wait` passed); the answer carries `X-Consul-ContentHash`.
    async fn hash_blocking(&self, ctx: &Ctx, render: impl Fn(&View) -> Value) -> Reply {
        let wait = match ctx.get("wait") {
            Some(w) => parse_duration(w)
                .ok_or_else(|| ConsulError::BadRequest(format!("Invalid wait time {w:?}")))?,
            None => DEFAULT_WAIT,
        }
        .min(MAX_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let mut keys = catalog_prefixes(&ctx.tenant);
        keys.push(crate::records::EPOCH_KEY.to_string());
        let watched = Watched::prefixes(keys);
        loop {
            let view = self.view(&ctx.tenant).await?;
            let body = render(&view);
            let hash = content_hash(&body);
            let unchanged = ctx.get("hash").is_some_and(|h| h == hash);
            if !unchanged || tokio::time::Instant::now() >= deadline {
                let mut r = axum::Json(body).into_response();
                if let Ok(v) = HeaderValue::from_str(&hash) {
                    r.headers_mut().insert("x-consul-contenthash", v);
                }
                return Ok(r);
            }
            // Wait for the next change of the tenant's catalog after this view.
            let mut until = Ctx {
                tenant: ctx.tenant.clone(),
                params: vec![("index".into(), view.index.to_string())],
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            until
                .params
                .push(("wait".into(), format!("{}ms", left.as_millis().max(1))));
            self.block(&until, &watched).await?;
        }
    }
}

/// A stable digest of an answer, as Consul's `X-Consul-ContentHash`.
fn content_hash(body: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn catalog_prefixes(tenant: &str) -> Vec<String> {
    ["node", "service", "check"]
        .iter()
        .map(|k| prefix(tenant, k))
        .collect()
}

fn keep(filter: Option<&Expr>, item: &Value) -> bool {
    filter.is_none_or(|f| f.matches(item))
}
