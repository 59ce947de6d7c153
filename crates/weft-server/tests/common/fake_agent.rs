//! A fake node agent for server tests: registers a node, reads its NodeDesired through
//! the client and reports its tasks Running (and Healthy) without running anything.
#![allow(dead_code, clippy::unwrap_used)]

use super::{agent, registration};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weft_api::{Client, EndpointState, EndpointStatus, Health, NodeReport, TaskState, TaskStatus};
use weft_server::ServerHandle;

/// A node that runs nothing but says it does: a task is Running (and Healthy) once its
/// endpoint is in its desired view, its env is resolved and `start_delay` has passed.
pub struct FakeAgent {
    pub name: String,
    pub paused: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
    pub start_delay_ms: Arc<AtomicU64>,
    /// Tasks (by creation time) to report Unhealthy.
    pub unhealthy: Arc<std::sync::Mutex<std::collections::HashSet<u64>>>,
    pub handle: tokio::task::JoinHandle<()>,
}

impl FakeAgent {
    pub async fn start(server: &ServerHandle, name: &str, labels: &[(&str, &str)]) -> Self {
        let client = agent(server);
        let mut reg = registration(name);
        for (k, v) in labels {
            reg.labels.insert((*k).to_string(), (*v).to_string());
        }
        client.register_node(&reg).await.unwrap();
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let start_delay_ms = Arc::new(AtomicU64::new(0));
        let unhealthy = Arc::default();
        let handle = tokio::spawn(run_agent(
            client,
            name.to_string(),
            Arc::clone(&paused),
            Arc::clone(&stop),
            Arc::clone(&start_delay_ms),
            Arc::clone(&unhealthy),
        ));
        Self {
            name: name.to_string(),
            paused,
            stop,
            start_delay_ms,
            unhealthy,
            handle,
        }
    }

    pub fn set_start_delay(&self, delay: Duration) {
        self.start_delay_ms
            .store(u64::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.handle.await;
    }
}

async fn run_agent(
    client: Client,
    name: String,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    start_delay_ms: Arc<AtomicU64>,
    unhealthy: Arc<std::sync::Mutex<std::collections::HashSet<u64>>>,
) {
    // (id, version, ip) → when its start became possible; `None` once running.
    let mut seen: HashMap<(String, u64, IpAddr), Option<Instant>> = HashMap::new();
    let mut started: HashMap<String, u64> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if paused.load(Ordering::SeqCst) {
            continue;
        }
        let Ok(desired) = client.node_desired(&name, 0, Duration::ZERO).await else {
            continue;
        };
        let desired = desired.value;
        let endpoints: BTreeMap<String, EndpointStatus> = desired
            .endpoints
            .iter()
            .filter(|e| e.node == name)
            .map(|e| {
                (
                    e.name.clone(),
                    EndpointStatus {
                        state: EndpointState::Ready,
                        message: None,
                    },
                )
            })
            .collect();
        let delay = Duration::from_millis(start_delay_ms.load(Ordering::SeqCst));
        let mut tasks = BTreeMap::new();
        let mut live = std::collections::HashSet::new();
        for assignment in &desired.tasks {
            let task = &assignment.task;
            assert_eq!(task.node, name, "a node sees only its own tasks");
            // Its own endpoint, or the existing one its app names.
            assert!(
                endpoints.contains_key(assignment.spec.endpoint_of(&task.id)),
                "task {} comes with its endpoint",
                task.id
            );
            let key = (task.id.clone(), task.version, task.ip);
            live.insert(key.clone());
            let status = if task.env.is_none() {
                TaskStatus::pending(None, EndpointState::Ready)
            } else {
                // Running once the delay has passed, and from then on.
                let since = seen.entry(key).or_insert_with(|| Some(Instant::now()));
                if since.is_some_and(|at| at.elapsed() >= delay) {
                    *since = None;
                }
                let running = since.is_none();
                let started_ms = *started.entry(task.id.clone()).or_insert_with(now_ms);
                let sick = unhealthy.lock().unwrap().contains(&task.created_ms);
                TaskStatus {
                    state: if running {
                        TaskState::Running
                    } else {
                        TaskState::Starting
                    },
                    health: if sick {
                        Health::Unhealthy
                    } else if running {
                        Health::Healthy
                    } else {
                        Health::Unknown
                    },
                    restarts: 0,
                    consecutive_failures: if sick { 5 } else { 0 },
                    started_ms: Some(started_ms),
                    exit_code: None,
                    message: None,
                    endpoint: EndpointState::Ready,
                }
            };
            tasks.insert(task.id.clone(), status);
        }
        seen.retain(|k, _| live.contains(k));
        started.retain(|id, _| tasks.contains_key(id));
        let report = NodeReport {
            applied_revision: desired.revision,
            installed: Vec::new(),
            endpoints,
            tasks,
            error: None,
        };
        let _ = client.report(&name, &report).await;
    }
}

pub fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
