//! A typed client of the REST API, used by the CLI and the agent.
//!
//! Several controllers: see [`Client`] (which failures move on, backoff, watches).

use crate::apps::*;
use crate::paths;
use crate::types::*;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use weft_compiler::CompiledPolicy;
use weft_model::{Model, Tenant};

/// Header carrying the store revision a response was read at.
pub const INDEX_HEADER: &str = "x-weft-index";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{status}: {}{}", body.error, body.field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Api { status: StatusCode, body: ApiError },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    /// The server answered something this client cannot read.
    #[error("unexpected answer from {url}: {why}")]
    Decode { url: String, why: String },
    /// The request's body could not be written as JSON (nothing was sent).
    #[error("cannot encode the request to {path}: {why}")]
    Encode { path: String, why: String },
}

impl ClientError {
    /// Unauthorized or forbidden: retrying with the same token will not help.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Api { status, .. } if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN)
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Nothing reached the server: the connection could not be made (refused, DNS, connect
    /// timeout) or the address is not one.
    pub fn is_unsent(&self) -> bool {
        match self {
            Self::Transport { source, .. } => source.is_connect() || source.is_builder(),
            Self::Encode { .. } => true,
            _ => false,
        }
    }
}

/// A response body with the revision it was read at.
#[derive(Debug, Clone)]
pub struct Indexed<T> {
    pub index: u64,
    pub value: T,
}

/// How a [`Client`] with several controllers retries one request (see [`Client`] for
/// which failures move on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failover {
    /// How many times each controller may be tried for one request (at least 1).
    pub rounds: u32,
    /// The pause before the second round; it doubles every round up to `max_delay`. Each
    /// pause is a random 50-100% of that (jitter), so clients do not return in step.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// A round after the first starts only this soon after the request began: every
    /// controller is tried once, but a store that is down everywhere (each controller
    /// answers 503 after its own store timeout) is not waited out several times over.
    pub retry_within: Duration,
}

impl Default for Failover {
    /// Three rounds within 5 s; pauses of 50 ms, then 100 ms (up to 1 s with more rounds).
    fn default() -> Self {
        Self {
            rounds: 3,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            retry_within: Duration::from_secs(5),
        }
    }
}

impl Failover {
    /// One try per controller, no pause: the first failure that moves on goes to the next
    /// controller, and the last controller's failure is returned.
    pub fn once() -> Self {
        Self {
            rounds: 1,
            ..Self::default()
        }
    }

    /// The pause before round `round` (1 = the second round), before jitter.
    pub fn delay(&self, round: u32) -> Duration {
        let doubled = self
            .first_delay
            .saturating_mul(1u32 << round.saturating_sub(1).min(20));
        doubled.min(self.max_delay)
    }
}

/// A random 50-100% of `delay`.
fn jittered(delay: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // Every RandomState has fresh keys: a random number without a dependency.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
    delay.mul_f64(0.5 + 0.5 * fraction)
}

/// GET, HEAD, PUT, DELETE, OPTIONS (RFC 9110 9.2.2): sending one twice does what sending it
/// once does.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

/// A client of one controller, or of several controllers of one store.
///
/// Given several controllers (`Client::new("http://a,http://b")` or
/// [`Client::with_servers`]), it starts at the controller that last answered (shared by
/// the client's clones) and moves on to the next one when a request fails in a way another
/// controller may not:
///
/// - **Moves on:** a connection error (refused, DNS, connect timeout, a connection that
///   broke or timed out mid-request) or a `5xx` answer.
/// - **Does not move on:** any other answer. A `4xx` is the same at every controller (the
///   request is wrong, the token refused, the object absent), so it is returned at once and
///   no other controller sees the request.
/// - **Requests that are not idempotent** (`POST`, `PATCH`: creating an endpoint, a token,
///   a node, an apply, a restart) move on **only when nothing was sent**: the connection
///   could not be made (refused, DNS failure, connect timeout, a malformed address). Once
///   the request may have left, a timeout, a broken connection or a `5xx` is returned to
///   the caller, because the first controller may have committed it and a second try
///   could do it twice. The client still moves its starting point to the next controller,
///   so the caller's own retry goes elsewhere. `GET`, `PUT` and `DELETE` are idempotent
///   and move on in every case above. After a try that may have been carried out, the
///   next controller may not have caught up with it yet: its `409` (our own write seen as
///   a conflict) moves an idempotent request on too, and a `DELETE` answered `404`
///   counts as done.
/// - **Backoff:** a controller not yet tried for this request is tried at once; each new
///   round over the controllers waits first ([`Failover`]: 50 ms, doubling up to 1 s, each
///   pause a random 50-100% of that), and after [`Failover::rounds`] rounds (a round after
///   the first starts only within [`Failover::retry_within`], 5 s, of the request's
///   start) the last error is returned.
///
/// **Watches keep their place.** A blocking query (`?index=N&wait=D`:
/// [`Client::node_desired`], [`Client::node_discovery`]) sends the index the caller holds to
/// whichever controller it reaches, and a retry on another controller sends the same
/// index. Indexes are store revisions (for discovery, a digest of the view's content), the
/// same at every controller over one store, so the next controller answers at once with
/// every change after `N` and blocks when there is none: no change is missed or repeated.
/// The addresses given must therefore be controllers of one store.
#[derive(Debug, Clone)]
pub struct Client {
    /// The controllers, in the order given; never empty.
    servers: Arc<[String]>,
    /// Index in `servers` of the one to start at: the last that answered. Shared by clones.
    current: Arc<AtomicUsize>,
    token: Option<String>,
    http: reqwest::Client,
    failover: Failover,
    /// Deadline of one try of an ordinary request (a blocking query adds its wait).
    timeout: Duration,
}

impl Client {
    /// `base` is like `http://127.0.0.1:7070` (no trailing slash needed), or several such
    /// controllers of one store separated by commas (see [`Client`]'s documentation).
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self::with_servers(&split_servers(base), token)
    }

    /// A client of several controllers of one store, tried in this order (the first
    /// request starts at the first).
    pub fn with_servers<S: AsRef<str>>(servers: &[S], token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        let mut list: Vec<String> = servers
            .iter()
            .map(|s| s.as_ref().trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            // Every request fails with the address's own error, as with one bad address.
            list.push(String::new());
        }
        Self {
            servers: list.into(),
            current: Arc::new(AtomicUsize::new(0)),
            token,
            http,
            failover: Failover::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same client with another retry policy.
    pub fn with_failover(mut self, failover: Failover) -> Self {
        self.failover = Failover {
            rounds: failover.rounds.max(1),
            ..failover
        };
        self
    }

    /// The same client with another deadline for one try of an ordinary request (default
    /// 10 s; blocking queries get their wait on top).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The controller the next request starts at: the one that last answered.
    pub fn base(&self) -> &str {
        &self.servers[self.current.load(Ordering::Relaxed) % self.servers.len()]
    }

    /// Every controller this client may talk to, in the order given.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Moves the starting point from `from` to the one after it, unless another request
    /// has moved it already.
    fn move_on(&self, from: usize) {
        let next = (from + 1) % self.servers.len();
        if next != from
            && self
                .current
                .compare_exchange(from, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::info!(
                from = %self.servers[from],
                to = %self.servers[next],
                "moving to the next controller"
            );
        }
    }

    /// One request, tried on the controllers as [`Client`]'s documentation says.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Indexed<T>, ClientError> {
        let body = match body {
            Some(body) => Some(serde_json::to_vec(body).map_err(|e| ClientError::Encode {
                path: path.to_string(),
                why: e.to_string(),
            })?),
            None => None,
        };
        let count = self.servers.len();
        let start = self.current.load(Ordering::Relaxed) % count;
        let retry_sent = idempotent(&method);
        // An earlier try may have been carried out (sent, then no answer or a 5xx).
        let mut maybe_done = false;
        let mut last = None;
        let began = std::time::Instant::now();
        for attempt in 0..count * self.failover.rounds as usize {
            let round = (attempt / count) as u32;
            if round > 0 && attempt % count == 0 {
                if began.elapsed() >= self.failover.retry_within {
                    break;
                }
                tokio::time::sleep(jittered(self.failover.delay(round))).await;
            }
            let at = (start + attempt) % count;
            let error = match self
                .attempt(
                    &self.servers[at],
                    &method,
                    path,
                    query,
                    body.as_deref(),
                    timeout,
                )
                .await
            {
                Ok(answer) => {
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(error) => error,
            };
            let moves_on = match &error {
                // A conflict after a try that may have been carried out: this controller
                // may lag behind the one that carried it out and see our own write as a
                // conflict; an idempotent request is asked again.
                ClientError::Api { status, .. } if *status == StatusCode::CONFLICT => {
                    maybe_done && retry_sent
                }
                ClientError::Api { status, .. } => status.is_server_error(),
                ClientError::Transport { .. } => true,
                ClientError::Decode { .. } | ClientError::Encode { .. } => false,
            };
            if !moves_on {
                if method == Method::DELETE
                    && maybe_done
                    && error.status() == Some(StatusCode::NOT_FOUND)
                    && let Ok(value) = serde_json::from_slice::<T>(b"null")
                {
                    tracing::debug!(
                        path,
                        "a DELETE retried after an unanswered try: 404 is done"
                    );
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(Indexed { index: 0, value });
                }
                if !matches!(error, ClientError::Encode { .. }) {
                    // It answered.
                    self.current.store(at, Ordering::Relaxed);
                }
                return Err(error);
            }
            let unsent = error.is_unsent();
            if !unsent && !retry_sent {
                // It may have been carried out: a second try could do it twice.
                self.move_on(at);
                return Err(error);
            }
            maybe_done |= !unsent;
            tracing::debug!(
                server = %self.servers[at],
                %method,
                path,
                error = %error,
                "request failed; trying the next controller"
            );
            self.move_on(at);
            last = Some(error);
        }
        Err(last.unwrap_or_else(|| ClientError::Decode {
            url: path.to_string(),
            why: "no controller to ask".to_string(),
        }))
    }

    /// One try at one controller.
    async fn attempt<T: DeserializeOwned>(
        &self,
        base: &str,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Indexed<T>, ClientError> {
        let url = format!("{base}{path}");
        let mut req = self
            .http
            .request(method.clone(), &url)
            .query(query)
            .timeout(timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        let index = resp
            .headers()
            .get(INDEX_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        if !status.is_success() {
            let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| ApiError {
                error: String::from_utf8_lossy(&bytes).trim().to_string(),
                field: None,
                details: Vec::new(),
            });
            return Err(ClientError::Api { status, body });
        }
        let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        let value = serde_json::from_slice(body).map_err(|e| ClientError::Decode {
            url,
            why: e.to_string(),
        })?;
        Ok(Indexed { index, value })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let none: Option<&()> = None;
        Ok(self
            .call(Method::GET, path, &[], none, self.timeout)
            .await?
            .value)
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        Ok(self
            .call(method, path, &[], Some(body), self.timeout)
            .await?
            .value)
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        let none: Option<&()> = None;
        let _: Indexed<serde_json::Value> = self
            .call(Method::DELETE, path, &[], none, self.timeout)
            .await?;
        Ok(())
    }

    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        self.get(paths::HEALTH).await
    }

    /// `GET /v1/status/leader`: who leads the loops, since when, every controller of the
    /// store, and the answering controller's refused loop writes.
    pub async fn controllers(&self) -> Result<ControllersStatus, ClientError> {
        self.get(paths::LEADER).await
    }
    pub async fn apply(&self, model: &Model) -> Result<ApplyResponse, ClientError> {
        self.send(
            Method::POST,
            paths::APPLY,
            &ApplyRequest {
                model: model.clone(),
            },
        )
        .await
    }

    pub async fn tenants(&self) -> Result<Vec<TenantSummary>, ClientError> {
        self.get(paths::TENANTS).await
    }

    pub async fn tenant(&self, name: &str) -> Result<Tenant, ClientError> {
        self.get(&paths::tenant(name)).await
    }

    pub async fn put_tenant(
        &self,
        name: &str,
        tenant: &Tenant,
    ) -> Result<ApplyResponse, ClientError> {
        self.send(Method::PUT, &paths::tenant(name), tenant).await
    }

    pub async fn delete_tenant(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&paths::tenant(name)).await
    }

    pub async fn epgs(&self) -> Result<Vec<EpgInfo>, ClientError> {
        self.get(paths::EPGS).await
    }

    pub async fn contracts(&self) -> Result<Vec<ContractInfo>, ClientError> {
        self.get(paths::CONTRACTS).await
    }

    pub async fn policy(&self) -> Result<CompiledPolicy, ClientError> {
        self.get(paths::POLICY).await
    }

    pub async fn create_token(&self, tenant: &str) -> Result<TokenResponse, ClientError> {
        self.send(
            Method::POST,
            paths::TOKENS,
            &TokenRequest {
                tenant: tenant.to_string(),
            },
        )
        .await
    }

    /// The tenants allowed to run privileged tasks (a tenant token: its own, if allowed).
    pub async fn privileged_tenants(&self) -> Result<Vec<TenantPrivilege>, ClientError> {
        self.get(paths::PRIVILEGE).await
    }

    pub async fn tenant_privilege(&self, tenant: &str) -> Result<TenantPrivilege, ClientError> {
        self.get(&paths::privilege(tenant)).await
    }

    /// Allows (`true`, admin only) or denies `tenant` privileged tasks.
    pub async fn set_tenant_privilege(
        &self,
        tenant: &str,
        allowed: bool,
    ) -> Result<TenantPrivilege, ClientError> {
        let method = if allowed { Method::PUT } else { Method::DELETE };
        let none: Option<&()> = None;
        Ok(self
            .call(method, &paths::privilege(tenant), &[], none, self.timeout)
            .await?
            .value)
    }

    pub async fn nodes(&self) -> Result<Vec<Node>, ClientError> {
        self.get(paths::NODES).await
    }

    pub async fn register_node(
        &self,
        registration: &NodeRegistration,
    ) -> Result<Node, ClientError> {
        self.send(Method::POST, paths::NODES, registration).await
    }

    pub async fn heartbeat(&self, node: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .send(Method::PUT, &paths::node_heartbeat(node), &())
            .await?;
        Ok(())
    }

    /// A blocking query: returns at once if the view is newer than `index`, else waits
    /// up to `wait` for a change. Tried on another controller (its own failed or broke
    /// mid-wait), it sends the same `index`: the answer holds every change after it, once.
    /// An answer at `index` itself means nothing changed.
    pub async fn node_desired(
        &self,
        node: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Indexed<NodeDesired>, ClientError> {
        let none: Option<&()> = None;
        let query = [
            ("index", index.to_string()),
            ("wait", format!("{}s", wait.as_secs())),
        ];
        let timeout = wait + self.timeout;
        self.call(
            Method::GET,
            &paths::node_desired(node),
            &query,
            none,
            timeout,
        )
        .await
    }

    /// A blocking query: returns at once if the view's digest differs from `digest`,
    /// else waits up to `wait` for a change. Another controller is asked with the same
    /// digest; its view names its own Consul API, so the first answer there is new.
    pub async fn node_discovery(
        &self,
        node: &str,
        digest: u64,
        wait: Duration,
    ) -> Result<crate::DiscoveryView, ClientError> {
        let none: Option<&()> = None;
        let query = [
            ("index", digest.to_string()),
            ("wait", format!("{}ms", wait.as_millis())),
        ];
        let timeout = wait + self.timeout;
        Ok(self
            .call(
                Method::GET,
                &paths::node_discovery(node),
                &query,
                none,
                timeout,
            )
            .await?
            .value)
    }

    /// What DNS at `from`'s gateway answers for `name`, and why.
    pub async fn dns_query(
        &self,
        name: &str,
        qtype: &str,
        from: &str,
    ) -> Result<crate::DnsQueryResponse, ClientError> {
        let none: Option<&()> = None;
        let query = [
            ("name", name.to_string()),
            ("type", qtype.to_string()),
            ("from", from.to_string()),
        ];
        Ok(self
            .call(Method::GET, paths::DNS, &query, none, self.timeout)
            .await?
            .value)
    }

    pub async fn report(&self, node: &str, report: &NodeReport) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .send(Method::PUT, &paths::node_report(node), report)
            .await?;
        Ok(())
    }

    /// The Docker images this node's engine holds.
    pub async fn report_images(
        &self,
        node: &str,
        images: &crate::NodeImages,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .send(Method::PUT, &paths::node_images(node), images)
            .await?;
        Ok(())
    }

    /// Results of the checks this node's agent runs.
    pub async fn report_probes(
        &self,
        node: &str,
        reports: &[crate::ProbeReport],
    ) -> Result<crate::ProbeReportResponse, ClientError> {
        self.send(Method::PUT, &paths::node_probes(node), &reports)
            .await
    }

    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, ClientError> {
        self.get(paths::ENDPOINTS).await
    }

    pub async fn endpoint(&self, name: &str) -> Result<Endpoint, ClientError> {
        self.get(&paths::endpoint(name)).await
    }

    pub async fn create_endpoint(
        &self,
        request: &EndpointRequest,
    ) -> Result<Endpoint, ClientError> {
        self.send(Method::POST, paths::ENDPOINTS, request).await
    }

    /// Changes a live endpoint's port guard: address pairs, port security, groups.
    pub async fn update_endpoint(
        &self,
        name: &str,
        change: &EndpointUpdate,
    ) -> Result<Endpoint, ClientError> {
        self.send(Method::PATCH, &paths::endpoint(name), change)
            .await
    }

    pub async fn delete_endpoint(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&paths::endpoint(name)).await
    }

    pub async fn explain(
        &self,
        from: &str,
        to: &str,
        proto: &str,
        port: u16,
    ) -> Result<LiveExplanation, ClientError> {
        let none: Option<&()> = None;
        let query = [
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("proto", proto.to_string()),
            ("port", port.to_string()),
        ];
        Ok(self
            .call(Method::GET, paths::EXPLAIN, &query, none, self.timeout)
            .await?
            .value)
    }

    pub async fn apply_apps(&self, apps: serde_json::Value) -> Result<AppsResponse, ClientError> {
        self.send(Method::POST, paths::APPS, &AppsRequest { apps })
            .await
    }

    pub async fn apps(&self) -> Result<Vec<App>, ClientError> {
        self.get(paths::APPS).await
    }

    pub async fn app(&self, id: &str) -> Result<App, ClientError> {
        self.get(&paths::app(id)).await
    }

    pub async fn scale_app(&self, id: &str, instances: u32) -> Result<App, ClientError> {
        self.send(
            Method::PUT,
            &paths::app_scale(id),
            &ScaleRequest { instances },
        )
        .await
    }

    pub async fn restart_app(&self, id: &str) -> Result<App, ClientError> {
        self.send(Method::POST, &paths::app_restart(id), &()).await
    }

    pub async fn delete_app(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&paths::app(id)).await
    }

    pub async fn cancel_deployment(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&paths::app_deployment(id)).await
    }

    /// Every task, or only `app`'s.
    pub async fn tasks(&self, app: Option<&str>) -> Result<Vec<Task>, ClientError> {
        let none: Option<&()> = None;
        let query: Vec<(&str, String)> = app.map(|a| ("app", a.to_string())).into_iter().collect();
        Ok(self
            .call(Method::GET, paths::TASKS, &query, none, self.timeout)
            .await?
            .value)
    }

    pub async fn task(&self, id: &str) -> Result<Task, ClientError> {
        self.get(&paths::task(id)).await
    }

    /// The last `lines` lines (at most `max_bytes`, the end kept) of what task `id`
    /// printed, read from its node's agent.
    pub async fn task_output(
        &self,
        id: &str,
        lines: usize,
        max_bytes: usize,
    ) -> Result<TaskOutput, ClientError> {
        let none: Option<&()> = None;
        let query = [
            ("lines", lines.to_string()),
            ("max_bytes", max_bytes.to_string()),
        ];
        self.call(
            Method::GET,
            &paths::task_output(id),
            &query,
            none,
            self.timeout,
        )
        .await
        .map(|answer| answer.value)
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `http://a:7070, http://b:7070/` → both, trimmed; empty items are dropped.
pub fn split_servers(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists_split_and_trim() {
        assert_eq!(
            split_servers(" http://a:1/, http://b:2 ,,"),
            vec!["http://a:1".to_string(), "http://b:2".to_string()]
        );
        let c = Client::new("http://a:1,http://b:2/", None);
        assert_eq!(c.servers(), ["http://a:1", "http://b:2"]);
        assert_eq!(c.base(), "http://a:1");
        assert_eq!(Client::new("http://x:1/", None).base(), "http://x:1");
        assert_eq!(Client::new("", None).servers(), [""]);
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        let f = Failover::default();
        assert_eq!(f.delay(1), Duration::from_millis(50));
        assert_eq!(f.delay(2), Duration::from_millis(100));
        assert_eq!(f.delay(5), Duration::from_millis(800));
        assert_eq!(f.delay(6), Duration::from_secs(1));
        assert_eq!(f.delay(60), Duration::from_secs(1));
        let pauses: Vec<Duration> = (0..50).map(|_| jittered(f.delay(2))).collect();
        assert!(
            pauses
                .iter()
                .all(|d| *d >= Duration::from_millis(50) && *d <= Duration::from_millis(100))
        );
        assert!(pauses.iter().any(|d| *d != pauses[0]), "jittered");
    }

    #[test]
    fn only_idempotent_methods_retry_after_sending() {
        for m in [Method::GET, Method::PUT, Method::DELETE] {
            assert!(idempotent(&m));
        }
        for m in [Method::POST, Method::PATCH] {
            assert!(!idempotent(&m));
        }
    }
}
