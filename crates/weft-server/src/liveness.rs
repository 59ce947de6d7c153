//! Heartbeats and reports of nodes. Heartbeats are kept in memory (writing them to the
//! store would bump the revision once per heartbeat); what other controllers need is
//! shared through the store by [`crate::live_share`]: a key per node bound to a lease
//! that heartbeats keep alive, holding the node's last report. `remote` is what this
//! controller learnt that way of nodes that talk to another controller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weft_api::{EndpointState, EndpointStatus, NodeReport, TaskStatus};

#[derive(Debug, Default)]
pub struct Liveness {
    nodes: Mutex<HashMap<String, NodeLive>>,
    /// Nodes whose live key is in the store (their lease is alive), with the report
    /// it holds and when this controller saw it.
    remote: Mutex<HashMap<String, Remote>>,
}

/// A node as the store shows it.
#[derive(Debug, Clone)]
struct Remote {
    live: NodeLive,
    /// The API URL of the controller that hears the node (and holds its rule tables).
    heard_by: Option<String>,
    /// The key exists (its lease is alive); else it expired at about
    /// `live.last_heartbeat_ms` + the node deadline.
    alive: bool,
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
        self.with_remote(|r| r.remove(node));
    }

    /// What is known of `node`: its heartbeats to this controller, or else its live key
    /// in the store (alive as long as the key is: the lease's TTL is the node deadline),
    /// and the newer of the two reports.
    pub fn get(&self, node: &str) -> NodeLive {
        let local = self.with(|nodes| nodes.get(node).cloned().unwrap_or_default());
        let remote = self.with_remote(|r| r.get(node).cloned());
        let Some(remote) = remote else {
            return local;
        };
        let last_heartbeat_ms = if remote.alive {
            // The key exists, so the node heartbeats somewhere: alive as of now.
            now_ms()
        } else {
            local.last_heartbeat_ms.max(remote.live.last_heartbeat_ms)
        };
        let remote = remote.live;
        let report = match (&local.report, &remote.report) {
            (Some(l), Some(r)) if r.applied_revision > l.applied_revision => Some(r.clone()),
            (Some(l), _) => Some(l.clone()),
            (None, r) => r.clone(),
        };
        NodeLive {
            last_heartbeat_ms,
            report,
        }
    }

    /// The node's live key as another controller wrote it (or this one).
    pub fn remote_put(&self, node: &str, report: Option<NodeReport>, heard_by: Option<String>) {
        self.with_remote(|r| {
            r.insert(
                node.to_string(),
                Remote {
                    live: NodeLive {
                        last_heartbeat_ms: now_ms(),
                        report,
                    },
                    heard_by,
                    alive: true,
                },
            )
        });
    }

    /// The URL of the controller that hears `node` now, when that is not `me`: it holds
    /// the node's installed rule tables, which the store does not.
    pub fn heard_elsewhere(&self, node: &str, me: &str) -> Option<String> {
        self.with_remote(|r| {
            r.get(node)
                .filter(|remote| remote.alive)
                .and_then(|remote| remote.heard_by.clone())
        })
        .filter(|url| url != me)
    }

    /// The node's live key is gone: its lease ran out, so no controller has heard the
    /// node for `deadline` (the lease's TTL).
    pub fn remote_delete(&self, node: &str, deadline: Duration) {
        let silent_since =
            now_ms().saturating_sub(u64::try_from(deadline.as_millis()).unwrap_or(0));
        self.with_remote(|r| {
            if let Some(remote) = r.get_mut(node) {
                remote.alive = false;
                remote.live.last_heartbeat_ms = silent_since;
            }
        });
    }

    fn with_remote<T>(&self, f: impl FnOnce(&mut HashMap<String, Remote>) -> T) -> T {
        let mut guard = self
            .remote
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Heartbeat seen within `deadline`.
    pub fn is_ready(live: &NodeLive, deadline: Duration) -> bool {
        live.last_heartbeat_ms > 0
            && now_ms().saturating_sub(live.last_heartbeat_ms)
                <= u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX)
    }

    /// An endpoint's status: what its node last reported, Pending until then.
    pub fn endpoint_status(&self, node: &str, endpoint: &str) -> EndpointStatus {
        self.with_report(node, |report| report.endpoints.get(endpoint).cloned())
            .unwrap_or(EndpointStatus {
                state: EndpointState::Pending,
                message: None,
            })
    }

    /// What `node` last reported of task `id`, with the desired revision it had applied.
    pub fn task_status(&self, node: &str, id: &str) -> Option<(u64, TaskStatus)> {
        self.with_report(node, |report| {
            Some((report.applied_revision, report.tasks.get(id)?.clone()))
        })
    }

    /// `f` of the node's newest report (this controller's or the store's), by
    /// reference: reports can be large (installed rule tables).
    fn with_report<T>(&self, node: &str, f: impl Fn(&NodeReport) -> Option<T>) -> Option<T> {
        let remote_revision = self.with_remote(|r| {
            r.get(node)
                .and_then(|remote| remote.live.report.as_ref())
                .map(|report| report.applied_revision)
        });
        let local = self.with(|nodes| {
            let report = nodes.get(node)?.report.as_ref()?;
            if remote_revision.is_some_and(|rev| rev > report.applied_revision) {
                return None;
            }
            Some(f(report))
        });
        match local {
            Some(found) => found,
            None => self.with_remote(|r| r.get(node)?.live.report.as_ref().and_then(&f)),
        }
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
