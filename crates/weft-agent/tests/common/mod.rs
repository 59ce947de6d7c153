//! Scaffolding of the agent's integration tests: a minimal in-test controller (an
//! axum stub serving exactly the routes the agent uses, with weft-api types) that can
//! be killed and brought back on the same port, and agents run as tokio tasks.
#![allow(dead_code, clippy::unwrap_used)]

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use weft_agent::{AgentConfig, AgentError, AgentEvent, BackoffConfig};
use weft_api::{
    ApiError, Endpoint, EndpointState, EndpointStatus, MacAddr, Node, NodeDesired,
    NodeRegistration, NodeReport,
};
use weft_compiler::{Allocation, CompiledPolicy};

pub const THREE_TIER: &str = include_str!("../../../../examples/three-tier.hcl");

#[macro_export]
macro_rules! require_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "\n*** SKIPPED {}: needs root (network namespaces, nftables) ***\n",
                module_path!()
            );
            return;
        }
    };
}

pub fn compile(hcl: &str) -> CompiledPolicy {
    let model = weft_model::parse_hcl("test.hcl", hcl).unwrap();
    assert!(!weft_model::validate(&model).has_errors());
    weft_compiler::compile(&model, &Allocation::default()).unwrap()
}

/// Everything the stub controller knows; survives the controller being killed.
#[derive(Debug)]
pub struct Data {
    pub token: String,
    pub revision: u64,
    pub policy: CompiledPolicy,
    pub nodes: BTreeMap<String, Node>,
    pub endpoints: Vec<Endpoint>,
    pub tasks: Vec<weft_api::TaskAssignment>,
    pub reports: BTreeMap<String, NodeReport>,
    pub registrations: BTreeMap<String, usize>,
}

#[derive(Debug, Clone)]
pub struct Shared {
    pub data: Arc<Mutex<Data>>,
    changed: watch::Sender<u64>,
}

impl Shared {
    pub fn new(token: &str, policy: CompiledPolicy) -> Self {
        Self {
            data: Arc::new(Mutex::new(Data {
                token: token.into(),
                revision: 1,
                policy,
                nodes: BTreeMap::new(),
                endpoints: Vec::new(),
                tasks: Vec::new(),
                reports: BTreeMap::new(),
                registrations: BTreeMap::new(),
            })),
            changed: watch::Sender::new(1),
        }
    }

    /// Changes the data and bumps the revision (waking blocking queries).
    pub fn update(&self, f: impl FnOnce(&mut Data)) -> u64 {
        let rev = {
            let mut d = self.data.lock().unwrap();
            f(&mut d);
            d.revision += 1;
            d.revision
        };
        self.changed.send_replace(rev);
        rev
    }

    pub fn read<T>(&self, f: impl FnOnce(&Data) -> T) -> T {
        f(&self.data.lock().unwrap())
    }

    pub fn add_endpoint(&self, name: &str, node: &str, netns_prefix: &str, epg: &str, ip: &str) {
        self.update(|d| {
            let n = d.endpoints.len() as u8 + 1;
            d.endpoints.push(Endpoint {
                name: name.into(),
                epg: epg.parse().unwrap(),
                node: node.into(),
                netns: format!("{netns_prefix}-ep-{name}"),
                interface: 0,
                ip: ip.parse().unwrap(),
                prefix_len: 24,
                gateway: "10.1.0.1".parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 2, n]),
                allowed_address_pairs: vec![],
                revision: d.revision + 1,
                status: EndpointStatus {
                    state: EndpointState::Pending,
                    message: None,
                },
                port_security: true,
                security_groups: None,
            });
        });
    }

    /// The status `node` last reported for `task`.
    pub fn task(&self, node: &str, task: &str) -> Option<weft_api::TaskStatus> {
        self.read(|d| d.reports.get(node).and_then(|r| r.tasks.get(task).cloned()))
    }

    pub fn registrations(&self, node: &str) -> usize {
        self.read(|d| d.registrations.get(node).copied().unwrap_or(0))
    }

    /// Whether `node` reported `endpoint` Ready at revision `at_least` or later.
    pub fn ready(&self, node: &str, endpoint: &str, at_least: u64) -> bool {
        self.read(|d| {
            d.reports.get(node).is_some_and(|r| {
                r.applied_revision >= at_least
                    && r.endpoints
                        .get(endpoint)
                        .is_some_and(|s| s.state == EndpointState::Ready)
            })
        })
    }
}

fn api_error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        Json(ApiError {
            error: msg.into(),
            field: None,
            details: vec![],
        }),
    )
        .into_response()
}

fn authorized(s: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let want = format!("Bearer {}", s.read(|d| d.token.clone()));
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(got) if got == want => Ok(()),
        _ => Err(Box::new(api_error(
            StatusCode::UNAUTHORIZED,
            "invalid token",
        ))),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn register(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(reg): Json<NodeRegistration>,
) -> Response {
    if let Err(r) = authorized(&s, &headers) {
        return *r;
    }
    let name = reg.name.clone();
    s.update(|d| {
        let node = Node {
            registration: reg,
            revision: d.revision + 1,
            ready: true,
            last_heartbeat_ms: now_ms(),
            report: None,
        };
        d.nodes.insert(name.clone(), node);
        *d.registrations.entry(name.clone()).or_default() += 1;
    });
    let node = s.read(|d| d.nodes.get(&name).cloned());
    Json(node).into_response()
}

async fn heartbeat(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = authorized(&s, &headers) {
        return *r;
    }
    let known = {
        let mut d = s.data.lock().unwrap();
        d.nodes
            .get_mut(&name)
            .map(|n| n.last_heartbeat_ms = now_ms())
            .is_some()
    };
    if known {
        Json(serde_json::json!({})).into_response()
    } else {
        api_error(StatusCode::NOT_FOUND, "unknown node")
    }
}

async fn report(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(report): Json<NodeReport>,
) -> Response {
    if let Err(r) = authorized(&s, &headers) {
        return *r;
    }
    s.data.lock().unwrap().reports.insert(name, report);
    Json(serde_json::json!({})).into_response()
}

async fn desired(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorized(&s, &headers) {
        return *r;
    }
    if s.read(|d| !d.nodes.contains_key(&name)) {
        return api_error(StatusCode::NOT_FOUND, "unknown node");
    }
    let index: u64 = q.get("index").and_then(|i| i.parse().ok()).unwrap_or(0);
    let wait = q
        .get("wait")
        .and_then(|w| w.trim_end_matches('s').parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::ZERO);
    let mut rx = s.changed.subscribe();
    let _ = tokio::time::timeout(wait, rx.wait_for(|r| *r > index)).await;
    let view = s.read(|d| NodeDesired {
        revision: d.revision,
        policy: d.policy.clone(),
        nodes: d.nodes.values().map(|n| n.registration.clone()).collect(),
        endpoints: d.endpoints.clone(),
        tasks: d.tasks.clone(),
    });
    let mut resp = Json(&view).into_response();
    resp.headers_mut()
        .insert("x-weft-index", view.revision.to_string().parse().unwrap());
    resp
}

/// The stub controller on its own thread and runtime: killing it drops every
/// connection (long polls included), as a crash would.
pub struct Controller {
    pub shared: Shared,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Controller {
    /// Serves `shared` on `addr` (port 0 = any).
    pub fn start(shared: Shared, addr: SocketAddr) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                bound_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .route(weft_api::paths::NODES, post(register))
                    .route("/v1/nodes/{name}/heartbeat", put(heartbeat))
                    .route("/v1/nodes/{name}/desired", get(desired))
                    .route("/v1/nodes/{name}/report", put(report))
                    .with_state(state);
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_background();
        });
        let addr = bound_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        Self {
            shared,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// An agent running as a task: abort it to kill it, or shut it down.
pub struct Agent {
    pub events: mpsc::UnboundedReceiver<AgentEvent>,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), AgentError>>,
}

impl Agent {
    pub fn start(rt: &tokio::runtime::Runtime, mut config: AgentConfig) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        config.events = Some(tx);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = rt.spawn(weft_agent::run(config, stopped));
        Self {
            events,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// The first event matching `what` within `timeout`.
    pub fn wait_event(
        &mut self,
        rt: &tokio::runtime::Runtime,
        timeout: Duration,
        what: impl Fn(&AgentEvent) -> bool,
    ) -> AgentEvent {
        let events = &mut self.events;
        rt.block_on(async {
            tokio::time::timeout(timeout, async {
                while let Some(e) = events.recv().await {
                    if what(&e) {
                        return Some(e);
                    }
                }
                None
            })
            .await
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("agent event not seen within {timeout:?}"))
    }

    /// Killed: no clean-up of any kind runs.
    pub fn kill(self, rt: &tokio::runtime::Runtime) {
        self.task.abort();
        let _ = rt.block_on(self.task);
    }

    pub fn shutdown(mut self, rt: &tokio::runtime::Runtime) -> Result<(), AgentError> {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), self.task).await })
            .expect("agent exits on shutdown")
            .expect("agent task")
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An agent configuration with short intervals.
pub fn config(
    server: &str,
    token: &str,
    node: &str,
    spec: Option<&weft_fabric::desired::NodeSpec>,
    prefix: &str,
    state_dir: &std::path::Path,
) -> AgentConfig {
    let registration = NodeRegistration {
        name: node.into(),
        underlay_ip: spec.map_or(std::net::Ipv4Addr::LOCALHOST, |s| s.underlay_ip),
        netns: spec.and_then(|s| s.netns.clone()),
        netns_prefix: prefix.into(),
        api: None,
        resources: weft_agent::detect_resources(state_dir),
        labels: weft_agent::host_labels(),
    };
    let mut c = AgentConfig::new(server, token, registration, state_dir);
    c.heartbeat_every = Duration::from_millis(200);
    c.report_every = 2;
    c.watch_wait = Duration::from_secs(5);
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    c
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}
