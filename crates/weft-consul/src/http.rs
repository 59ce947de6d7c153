//! The routes, at Consul's paths, with Consul's query parameters, headers and blocking.

use crate::body::{self, Obj, parse_duration};
use crate::catalog::{self, View, catalog_service_json, check_json, node_json, service_json};
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
            get(kv_get::<S>).put(kv_put::<S>).delete(kv_delete::<S>),
        )
        .route(
            "/v1/kv/{*key}",
            get(kv_get::<S>).put(kv_put::<S>).delete(kv_delete::<S>),
        )
        .route("/v1/session/create", put(session_create::<S>))
        .route("/v1/session/destroy/{id}", put(session_destroy::<S>))
        .route("/v1/session/renew/{id}", put(session_renew::<S>))
        .route("/v1/session/info/{id}", get(session_info::<S>))
        .route("/v1/session/node/{node}", get(session_node::<S>))
        .route("/v1/session/list", get(session_list::<S>))
        .route("/v1/status/leader", get(status_leader::<S>))
        .route("/v1/status/peers", get(status_peers::<S>))
        .route("/v1/catalog/datacenters", get(catalog_datacenters::<S>))
        .route("/v1/catalog/register", put(catalog_register::<S>))
        .route("/v1/catalog/deregister", put(catalog_deregister::<S>))
        .route("/v1/catalog/nodes", get(catalog_nodes::<S>))
        .route("/v1/catalog/node/{node}", get(catalog_node::<S>))
        .route("/v1/catalog/services", get(catalog_services::<S>))
        .route("/v1/catalog/service/{name}", get(catalog_service::<S>))
        .route("/v1/catalog/connect/{name}", get(nothing_connect::<S>))
        .route(
            "/v1/catalog/gateway-services/{name}",
            get(nothing_connect::<S>),
        )
        .route("/v1/health/service/{name}", get(health_service::<S>))
        .route("/v1/health/connect/{name}", get(nothing_connect::<S>))
        .route("/v1/health/ingress/{name}", get(nothing_connect::<S>))
        .route("/v1/health/checks/{name}", get(health_checks::<S>))
        .route("/v1/health/state/{state}", get(health_state::<S>))
        .route("/v1/health/node/{node}", get(health_node::<S>))
        .route("/v1/weft/explain/{service}", get(weft_explain::<S>))
        .route("/v1/agent/self", get(agent_self::<S>))
        .route("/v1/agent/members", get(agent_members::<S>))
        .route("/v1/agent/reload", put(agent_reload::<S>))
        .route("/v1/agent/metrics", get(agent_metrics::<S>))
        .route("/v1/agent/monitor", get(agent_monitor::<S>))
        .route("/v1/agent/force-leave/{node}", put(agent_force_leave::<S>))
        .route("/v1/agent/token/{kind}", put(agent_token::<S>))
        .route("/v1/agent/maintenance", put(agent_maintenance::<S>))
        .route("/v1/agent/services", get(agent_services::<S>))
        .route("/v1/agent/service/{id}", get(agent_service::<S>))
        .route(
            "/v1/agent/service/register",
            put(agent_service_register::<S>),
        )
        .route(
            "/v1/agent/service/deregister/{id}",
            put(agent_service_deregister::<S>),
        )
        .route(
            "/v1/agent/service/maintenance/{id}",
            put(agent_service_maintenance::<S>),
        )
        .route("/v1/agent/checks", get(agent_checks::<S>))
        .route("/v1/agent/check/register", put(agent_check_register::<S>))
        .route(
            "/v1/agent/check/deregister/{id}",
            put(agent_check_deregister::<S>),
        )
        .route("/v1/agent/check/pass/{id}", put(check_pass::<S>))
        .route("/v1/agent/check/warn/{id}", put(check_warn::<S>))
        .route("/v1/agent/check/fail/{id}", put(check_fail::<S>))
        .route("/v1/agent/check/update/{id}", put(check_update::<S>))
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

// ---- kv ----

async fn kv_get<S: KvStore + Clone>(
    State(c): Shared<S>,
    key: Option<Path<String>>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let key = key.map(|Path(k)| k).unwrap_or_default();
    let recurse = ctx.has("recurse");
    let keys = ctx.has("keys");
    crate::kv::check_key(&key, recurse || keys)?;
    // One key wakes only on itself; a listing on every key under it.
    let watched = Watched {
        keys: vec![format!("{}{key}", prefix(&ctx.tenant, "kv"))],
        exact: !(recurse || keys),
    };
    c.block(&ctx, &watched).await?;
    if keys {
        let (index, entries) = c.kv_list(&ctx.tenant, &key).await?;
        if entries.is_empty() {
            return Ok(not_found_at(index));
        }
        let names = list_keys(&entries, &key, ctx.get("separator"));
        return Ok(json_at(index, json!(names)));
    }
    if recurse {
        let (index, entries) = c.kv_list(&ctx.tenant, &key).await?;
        if entries.is_empty() {
            return Ok(not_found_at(index));
        }
        let items: Vec<Value> = entries.iter().map(entry_json).collect();
        return Ok(json_at(index, Value::Array(items)));
    }
    let (index, entry) = c.kv_get(&ctx.tenant, &key).await?;
    let Some(entry) = entry else {
        return Ok(not_found_at(index));
    };
    if ctx.has("raw") {
        return Ok(indexed(index, StatusCode::OK, entry.record.value));
    }
    Ok(json_at(index, json!([entry_json(&entry)])))
}

fn entry_json(e: &crate::kv::Entry) -> Value {
    let mut m = Map::new();
    m.insert("LockIndex".into(), e.record.lock_index.into());
    m.insert("Key".into(), e.key.clone().into());
    m.insert("Flags".into(), e.record.flags.into());
    m.insert(
        "Value".into(),
        if e.record.value.is_empty() {
            Value::Null
        } else {
            STANDARD.encode(&e.record.value).into()
        },
    );
    if let Some(s) = &e.record.session {
        m.insert("Session".into(), s.clone().into());
    }
    m.insert(
        "CreateIndex".into(),
        crate::kv::rev(e.kv.create_revision).into(),
    );
    m.insert(
        "ModifyIndex".into(),
        crate::kv::rev(e.kv.mod_revision).into(),
    );
    Value::Object(m)
}

async fn kv_put<S: KvStore + Clone>(
    State(c): Shared<S>,
    key: Option<Path<String>>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let key = key.map(|Path(k)| k).unwrap_or_default();
    let options = PutOptions {
        flags: ctx.u64("flags")?,
        cas: ctx.u64("cas")?,
        acquire: ctx.get("acquire"),
        release: ctx.get("release"),
    };
    Ok(boolean(c.kv_put(&ctx.tenant, &key, &body, &options).await?))
}

async fn kv_delete<S: KvStore + Clone>(
    State(c): Shared<S>,
    key: Option<Path<String>>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let key = key.map(|Path(k)| k).unwrap_or_default();
    let recurse = ctx.has("recurse");
    Ok(boolean(
        c.kv_delete(&ctx.tenant, &key, recurse, ctx.u64("cas")?)
            .await?,
    ))
}

// ---- sessions ----

async fn session_create<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    let id = c.session_create(&ctx.tenant, Obj::root(&value)?).await?;
    Ok(axum::Json(json!({ "ID": id })).into_response())
}

async fn session_destroy<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    c.session_invalidate(&ctx.tenant, &id).await?;
    Ok(json_true())
}

async fn session_renew<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    match c.session_renew(&ctx.tenant, &id).await? {
        Some((s, ci, mi)) => Ok(axum::Json(json!([session_json(&s, ci, mi)])).into_response()),
        None => Err(ConsulError::NotFound(format!(
            "Session id '{id}' not found"
        ))),
    }
}

async fn sessions_where<S: KvStore + Clone>(
    c: &Consul<S>,
    ctx: &Ctx,
    keep: impl Fn(&crate::records::SessionRecord) -> bool,
) -> Reply {
    let watched = Watched::prefixes(vec![prefix(&ctx.tenant, "session")]);
    c.block(ctx, &watched).await?;
    let (index, sessions) = c.sessions(&ctx.tenant).await?;
    let items: Vec<Value> = sessions
        .iter()
        .filter(|(s, _, _)| keep(s))
        .map(|(s, ci, mi)| session_json(s, *ci, *mi))
        .collect();
    Ok(json_at(index, Value::Array(items)))
}

async fn session_info<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    sessions_where(&c, &ctx, |s| s.id == id).await
}

async fn session_node<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(node): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    sessions_where(&c, &ctx, |s| s.node == node).await
}

async fn session_list<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    sessions_where(&c, &ctx, |_| true).await
}

// ---- status ----

/// The address Consul's raft would name: the controller's.
fn leader_addr<S>(c: &Consul<S>) -> String {
    c.config.advertise.to_string()
}

async fn status_leader<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    Ok(axum::Json(leader_addr(&c)).into_response())
}

async fn status_peers<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    Ok(axum::Json(json!([leader_addr(&c)])).into_response())
}

// ---- catalog ----

async fn catalog_datacenters<S: KvStore + Clone>(State(c): Shared<S>) -> Reply {
    Ok(axum::Json(json!([c.config.datacenter])).into_response())
}

async fn catalog_register<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    let obj = Obj::root(&value)?;
    check_datacenter(&c, obj)?;
    c.catalog_register(&ctx.tenant, obj).await?;
    Ok(json_true())
}

/// A catalog write names its datacenter in the body too.
fn check_datacenter<S>(c: &Consul<S>, body: Obj<'_>) -> Result<(), ConsulError> {
    match body.str("Datacenter")? {
        Some(dc) if !dc.is_empty() && dc != c.config.datacenter => {
            Err(ConsulError::no_datacenter())
        }
        _ => Ok(()),
    }
}

async fn catalog_deregister<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    let obj = Obj::root(&value)?;
    check_datacenter(&c, obj)?;
    c.catalog_deregister(&ctx.tenant, obj).await?;
    Ok(json_true())
}

fn node_meta_matches(ctx: &Ctx, meta: &BTreeMap<String, String>) -> bool {
    ctx.all("node-meta").all(|pair| match pair.split_once(':') {
        Some((k, v)) => meta.get(k).is_some_and(|x| x == v),
        None => false,
    })
}

async fn catalog_nodes<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let dc = &c.config.datacenter;
    let nodes: Vec<Value> = view
        .nodes
        .values()
        .filter(|n| node_meta_matches(&ctx, &n.meta))
        .map(|n| node_json(n, dc))
        .filter(|n| keep(filter.as_ref(), n))
        .collect();
    Ok(json_at(view.index, Value::Array(nodes)))
}

async fn catalog_node<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(node): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let dc = &c.config.datacenter;
    let Some(n) = view.nodes.get(&node) else {
        return Ok(json_at(view.index, Value::Null));
    };
    let mut services = Map::new();
    for s in view.services.iter().filter(|s| s.record.node == node) {
        let item = service_json(s, dc);
        if keep(filter.as_ref(), &item) {
            services.insert(s.record.id.clone(), item);
        }
    }
    Ok(json_at(
        view.index,
        json!({"Node": node_json(n, dc), "Services": services}),
    ))
}

async fn catalog_services<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let dc = &c.config.datacenter;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &view.services {
        let Some(n) = view.nodes.get(&s.record.node) else {
            continue;
        };
        if !node_meta_matches(&ctx, &n.meta) {
            continue;
        }
        if !keep(filter.as_ref(), &catalog_service_json(n, s, dc)) {
            continue;
        }
        let tags = out.entry(s.record.service.clone()).or_default();
        for t in &s.record.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
    }
    Ok(json_at(view.index, json!(out)))
}

async fn catalog_service<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    if ctx.get("peer").is_some_and(|p| !p.is_empty()) {
        return Ok(json_at(view.index, json!([])));
    }
    let dc = &c.config.datacenter;
    let tags: Vec<&str> = ctx.all("tag").collect();
    let items: Vec<Value> = view
        .services
        .iter()
        .filter(|s| s.record.service == name)
        .filter(|s| tags.iter().all(|t| s.record.tags.iter().any(|x| x == t)))
        .filter_map(|s| {
            let n = view.nodes.get(&s.record.node)?;
            node_meta_matches(&ctx, &n.meta).then(|| catalog_service_json(n, s, dc))
        })
        .filter(|item| keep(filter.as_ref(), item))
        .collect();
    Ok(json_at(view.index, Value::Array(items)))
}

/// weft has no Connect: no service is Connect-capable, no gateway routes anything.
async fn nothing_connect<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    ctx.filter()?;
    let index = c.store.current_revision().await?;
    Ok(json_at(crate::kv::rev(index), json!([])))
}

// ---- health ----

fn tags_of(view: &View, node: &str, service_id: &str) -> Vec<String> {
    view.services
        .iter()
        .find(|s| s.record.node == node && s.record.id == service_id)
        .map(|s| s.record.tags.clone())
        .unwrap_or_default()
}

async fn health_service<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    if ctx.get("peer").is_some_and(|p| !p.is_empty()) {
        return Ok(json_at(view.index, json!([])));
    }
    let dc = &c.config.datacenter;
    let passing = ctx.flag("passing");
    let tags: Vec<&str> = ctx.all("tag").collect();
    let mut out = Vec::new();
    for s in view.services.iter().filter(|s| s.record.service == name) {
        if !tags.iter().all(|t| s.record.tags.iter().any(|x| x == t)) {
            continue;
        }
        let Some(n) = view.nodes.get(&s.record.node) else {
            continue;
        };
        if !node_meta_matches(&ctx, &n.meta) {
            continue;
        }
        let checks: Vec<&catalog::CheckView> = view
            .checks
            .iter()
            .filter(|ch| {
                ch.record.node == s.record.node
                    && (ch.record.service_id.is_empty() || ch.record.service_id == s.record.id)
            })
            .collect();
        if passing && checks.iter().any(|ch| ch.record.status != Status::Passing) {
            continue;
        }
        let item = json!({
            "Node": node_json(n, dc),
            "Service": service_json(s, dc),
            "Checks": checks.iter().map(|ch| check_json(ch, if ch.record.service_id.is_empty() { &[] } else { &s.record.tags })).collect::<Vec<_>>(),
        });
        if keep(filter.as_ref(), &item) {
            out.push(item);
        }
    }
    Ok(json_at(view.index, Value::Array(out)))
}

fn checks_where(
    view: &View,
    filter: Option<&Expr>,
    pick: impl Fn(&catalog::CheckView) -> bool,
) -> Value {
    Value::Array(
        view.checks
            .iter()
            .filter(|ch| pick(ch))
            .map(|ch| check_json(ch, &tags_of(view, &ch.record.node, &ch.record.service_id)))
            .filter(|item| keep(filter, item))
            .collect(),
    )
}

async fn health_checks<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let items = checks_where(&view, filter.as_ref(), |ch| ch.record.service_name == name);
    Ok(json_at(view.index, items))
}

async fn health_state<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(state): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let wanted = match state.as_str() {
        "any" => None,
        other => Some(Status::parse(other).ok_or_else(|| {
            ConsulError::BadRequest(format!(
                "Invalid state {other:?}: must be any, passing, warning or critical"
            ))
        })?),
    };
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let items = checks_where(&view, filter.as_ref(), |ch| {
        wanted.is_none_or(|w| ch.record.status == w)
    });
    Ok(json_at(view.index, items))
}

async fn health_node<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(node): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let items = checks_where(&view, filter.as_ref(), |ch| ch.record.node == node);
    Ok(json_at(view.index, items))
}

// ---- weft's own: why an asker is shown an instance or not ----

/// `GET /v1/weft/explain/<service>?vrf=<vrf>&source=<ip>`: every instance of the service
/// with whether an endpoint asking from `source` in `vrf` is told of it, and why.
async fn weft_explain<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(service): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let asker = match (ctx.get("vrf"), ctx.get("source")) {
        (Some(vrf), Some(source)) => {
            let ip = source.parse().map_err(|_| {
                ConsulError::BadRequest(format!("source {source:?} is not an IP address"))
            })?;
            Some(c.asker(vrf, ip).ok_or_else(|| {
                ConsulError::NotFound(format!("no endpoint has address {source} in {vrf}"))
            })?)
        }
        (None, None) => None,
        _ => {
            return Err(ConsulError::BadRequest(
                "give both vrf and source, or neither".into(),
            ));
        }
    };
    let decisions = c
        .decide_service(&ctx.tenant, &service, asker.as_ref())
        .await?;
    let items: Vec<Value> = decisions
        .iter()
        .map(|d| json!({"ID": d.id, "Node": d.node, "Address": d.address, "Port": d.port, "Shown": d.shown, "Why": d.why}))
        .collect();
    Ok(axum::Json(json!({
        "Asker": asker.map(|a| json!({"Endpoint": a.endpoint, "EPG": a.epg, "VRF": a.vrf})),
        "Instances": items,
    }))
    .into_response())
}

// ---- agent ----

fn member<S>(c: &Consul<S>, name: String) -> Value {
    json!({
        "Name": name,
        "Addr": c.config.advertise.ip().to_string(),
        "Port": 8301,
        "Tags": {"dc": c.config.datacenter, "role": "consul", "build": "weft", "port": c.config.advertise.port().to_string()},
        "Status": 1,
        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    })
}

async fn agent_self<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    let me = &c.config.node_name;
    Ok(axum::Json(json!({
        "Config": {
            "Datacenter": c.config.datacenter,
            "NodeName": me,
            "NodeID": crate::checks::stable_id(me),
            "Server": true,
            "Version": "1.22.0",
            "Revision": "weft",
            "BuildDate": "",
        },
        "DebugConfig": {},
        "Coord": null,
        "Member": member(&c, me.clone()),
        "Stats": {"consul": {"leader": "true", "leader_addr": leader_addr(&c), "server": "true"}},
        "Meta": {},
        "xDS": null,
    }))
    .into_response())
}

async fn agent_members<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let me = c.config.node_name.clone();
    let name = if ctx.flag("wan") {
        format!("{me}.{}", c.config.datacenter)
    } else {
        me
    };
    Ok(axum::Json(json!([member(&c, name)])).into_response())
}

async fn agent_reload<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    Ok(empty_ok())
}

async fn agent_metrics<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    if ctx.get("format") == Some("prometheus") {
        return Ok((StatusCode::OK, String::new()).into_response());
    }
    Ok(axum::Json(json!({
        "Timestamp": format!("{}", now_ms() / 1000),
        "Gauges": [], "Points": [], "Counters": [], "Samples": [],
    }))
    .into_response())
}

async fn agent_monitor<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let level = ctx.get("loglevel").unwrap_or("info");
    if !matches!(
        level.to_ascii_lowercase().as_str(),
        "trace" | "debug" | "info" | "warn" | "error"
    ) {
        return Err(ConsulError::BadRequest(format!(
            "Unknown log level: {level}"
        )));
    }
    Err(ConsulError::Refused(
        "log streaming is not served by weft's Consul API; read weft's logs".into(),
    ))
}

async fn agent_force_leave<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(node): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    if !c.node_exists(&ctx.tenant, &node).await? {
        return Err(ConsulError::Refused(format!(
            "No node found with name '{node}'"
        )));
    }
    Err(ConsulError::Refused(
        "force-leave is not supported: weft nodes leave with `weft` node removal".into(),
    ))
}

async fn agent_token<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    Err(ConsulError::AclDisabled)
}

async fn agent_maintenance<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let enable = enable_param(&ctx)?;
    c.maintenance(
        &ctx.tenant,
        None,
        enable,
        ctx.get("reason").unwrap_or_default(),
    )
    .await?;
    Ok(empty_ok())
}

fn enable_param(ctx: &Ctx) -> Result<bool, ConsulError> {
    match ctx.get("enable") {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ConsulError::BadRequest(format!(
            "Invalid value for enable: {other:?}"
        ))),
        None => Err(ConsulError::BadRequest("Missing value for enable".into())),
    }
}

async fn agent_services<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    c.hash_blocking(&ctx, |view| {
        let mut out = Map::new();
        for s in view
            .services
            .iter()
            .filter(|s| s.record.node == c.config.node_name && s.record.id != "consul")
        {
            let item = service_json(s, &c.config.datacenter);
            if keep(filter.as_ref(), &item) {
                out.insert(s.record.id.clone(), item);
            }
        }
        Value::Object(out)
    })
    .await
}

async fn agent_service<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let view = c.view(&ctx.tenant).await?;
    view.services
        .iter()
        .find(|s| s.record.node == c.config.node_name && s.record.id == id && id != "consul")
        .map(|s| axum::Json(service_json(s, &c.config.datacenter)).into_response())
        .ok_or_else(|| ConsulError::NotFound(format!("unknown service ID: {id}")))
}

async fn agent_service_register<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    c.agent_service_register(&ctx.tenant, Obj::root(&value)?)
        .await?;
    Ok(empty_ok())
}

async fn agent_service_deregister<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let ops = c
        .service_removal(&ctx.tenant, &c.config.node_name, &id)
        .await?;
    c.store.txn(weft_store::Txn::new().and_then(ops)).await?;
    Ok(empty_ok())
}

async fn agent_service_maintenance<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let enable = enable_param(&ctx)?;
    c.maintenance(
        &ctx.tenant,
        Some(&id),
        enable,
        ctx.get("reason").unwrap_or_default(),
    )
    .await?;
    Ok(empty_ok())
}

async fn agent_checks<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    c.hash_blocking(&ctx, |view| {
        let mut out = Map::new();
        for ch in view.checks.iter().filter(|ch| {
            ch.record.node == c.config.node_name && ch.record.check_id != catalog::SERF_HEALTH
        }) {
            let item = check_json(ch, &tags_of(view, &ch.record.node, &ch.record.service_id));
            if keep(filter.as_ref(), &item) {
                out.insert(ch.record.check_id.clone(), item);
            }
        }
        Value::Object(out)
    })
    .await
}

async fn agent_check_register<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    c.agent_check_register(&ctx.tenant, Obj::root(&value)?)
        .await?;
    Ok(empty_ok())
}

async fn agent_check_deregister<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let key = crate::records::check_key(&ctx.tenant, &c.config.node_name, &id);
    if c.store.delete(key.as_bytes()).await?.deleted() == 0 {
        return Err(ConsulError::NotFound(format!("Unknown check ID \"{id}\"")));
    }
    Ok(empty_ok())
}

async fn set_check<S: KvStore + Clone>(
    c: &Consul<S>,
    ctx: &Ctx,
    id: &str,
    status: Status,
    output: Option<&str>,
) -> Reply {
    if c.agent_check_update(&ctx.tenant, id, status, output)
        .await?
    {
        Ok(empty_ok())
    } else {
        Err(ConsulError::NotFound(format!("Unknown check ID \"{id}\"")))
    }
}

async fn check_pass<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    set_check(&c, &ctx, &id, Status::Passing, ctx.get("note")).await
}

async fn check_warn<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    set_check(&c, &ctx, &id, Status::Warning, ctx.get("note")).await
}

async fn check_fail<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    set_check(&c, &ctx, &id, Status::Critical, ctx.get("note")).await
}

async fn check_update<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    let obj = Obj::root(&value)?;
    let status = match obj.str("Status")? {
        Some(s) => Status::parse(s)
            .filter(|s| *s != Status::Maintenance)
            .ok_or_else(|| ConsulError::BadRequest(format!("Invalid check status: {s:?}")))?,
        None => return Err(ConsulError::BadRequest("Missing check status".into())),
    };
    let output = obj.string("Output")?;
    set_check(&c, &ctx, &id, status, Some(&output)).await
}
