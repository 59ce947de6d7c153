//! Heartbeats and reports of nodes, in memory only: writing them to the store would bump
//! the revision and wake every blocking query once per heartbeat.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weft_api::{EndpointState, EndpointStatus, NodeReport, TaskStatus};

#[derive(Debug, Default)]
pub struct Liveness {
    nodes: Mutex<HashMap<String, NodeLive>>,
}

#[derive(Debug, Clone, Default)]
pub struct NodeLive {
    pub last_heartbeat_ms: u64,
    pub report: Option<NodeReport>,
}

impl Liveness {
    pub fn heartbeat(&self, node: &str) {
        let now = now_ms();
        self.with(|nodes| nodes.entry(node.to_string()).or_default().last_heartbeat_ms = now);
    }

    pub fn report(&self, node: &str, report: NodeReport) {
        self.with(|nodes| nodes.entry(node.to_string()).or_default().report = Some(report));
    }

    pub fn forget(&self, node: &str) {
        self.with(|nodes| nodes.remove(node));
    }

    pub fn get(&self, node: &str) -> NodeLive {
        self.with(|nodes| nodes.get(node).cloned().unwrap_or_default())
    }

    /// Heartbeat seen within `deadline`.
    pub fn is_ready(live: &NodeLive, deadline: Duration) -> bool {
        live.last_heartbeat_ms > 0
            && now_ms().saturating_sub(live.last_heartbeat_ms)
                <= u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX)
    }

    /// An endpoint's status: what its node last reported, Pending until then.
    pub fn endpoint_status(&self, node: &str, endpoint: &str) -> EndpointStatus {
        self.with(|nodes| {
            nodes
                .get(node)
                .and_then(|live| live.report.as_ref())
                .and_then(|report| report.endpoints.get(endpoint).cloned())
                .unwrap_or(EndpointStatus {
                    state: EndpointState::Pending,
                    message: None,
                })
        })
    }

    /// What `node` last reported of task `id`, with the desired revision it had applied.
    pub fn task_status(&self, node: &str, id: &str) -> Option<(u64, TaskStatus)> {
        self.with(|nodes| {
            let report = nodes.get(node)?.report.as_ref()?;
            Some((report.applied_revision, report.tasks.get(id)?.clone()))
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, NodeLive>) -> T) -> T {
        // A panic while holding the lock cannot leave the map half-updated (single inserts),
        // so a poisoned lock is still usable.
        let mut guard = self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
