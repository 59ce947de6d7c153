//! Node liveness and reports shared between controllers through the store.
//!
//! An agent talks to one controller at a time; the leader (which may be another
//! controller) schedules from node liveness and task states, and every controller shows
//! endpoint and task status. So the controller an agent talks to keeps, per node, a key
//! [`keys::LIVE`]`<node>` bound to a lease of TTL `node_deadline`:
//! - a heartbeat keeps the lease alive (no write, no revision);
//! - a report that changed is written to the key (the report without its installed rule
//!   tables, which can be megabytes), with the URL of the controller that heard it: that
//!   controller holds the tables, and live explain on any other is forwarded to it
//!   ([`crate::routes::explain`]);
//! - when no controller hears the node any more, the lease runs out and the key goes:
//!   every controller then sees the node as silent.
//!
//! Every controller follows the prefix ([`follow`]) into its [`crate::liveness`].

use crate::keys;
use crate::server::AppState;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use weft_api::NodeReport;
use weft_store::{EventKind, KvStore, LeaseId, Txn, TxnOp};

/// This controller's leases for the nodes it hears, and the report last written.
#[derive(Debug, Default)]
pub struct LiveShare {
    nodes: Mutex<HashMap<String, Shared>>,
}

#[derive(Debug, Clone)]
struct Shared {
    lease: LeaseId,
    written: Option<NodeReport>,
}

impl LiveShare {
    fn get(&self, node: &str) -> Option<Shared> {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .cloned()
    }

    fn set(&self, node: &str, shared: Option<Shared>) {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        match shared {
            Some(s) => nodes.insert(node.to_string(), s),
            None => nodes.remove(node),
        };
    }
}

/// What a node's live key holds.
#[derive(Debug, Serialize, Deserialize)]
struct LiveRecord {
    /// The node's last report, without its rule tables.
    report: Option<NodeReport>,
    /// The API URL of the controller that hears the node and holds its rule tables.
    heard_by: String,
}

/// What goes into the shared key: the report without its rule tables.
fn shareable(report: &NodeReport) -> NodeReport {
    NodeReport {
        installed: Vec::new(),
        ..report.clone()
    }
}

/// A heartbeat (or report) of `node` reached this controller: keeps its live key's
/// lease alive, writing the key (under a new lease) when there is none, and the report
/// when it changed. Failures are logged: liveness must not fail the agent's request,
/// and the next heartbeat tries again.
pub async fn heard(state: &AppState, node: &str, report: Option<&NodeReport>) {
    let report = report.map(shareable);
    let shared = state.live_share.get(node);
    let alive = match &shared {
        Some(s) => state.store.lease_keep_alive(s.lease).await.is_ok(),
        None => false,
    };
    let unchanged = shared
        .as_ref()
        .is_some_and(|s| report.is_none() || s.written == report);
    if alive && unchanged {
        return;
    }
    let lease = match shared.filter(|_| alive) {
        Some(s) => s.lease,
        None => match state.store.lease_grant(state.config.node_deadline).await {
            Ok(grant) => grant.id,
            Err(err) => {
                tracing::warn!(%node, error = %err, "cannot share the node's liveness");
                return;
            }
        },
    };
    let written = report.or_else(|| state.liveness.get(node).report.as_ref().map(shareable));
    let record = LiveRecord {
        report: written,
        heard_by: state.leadership.me.url.clone(),
    };
    let bytes = match serde_json::to_vec(&record) {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::warn!(%node, error = %err, "cannot encode the node's report");
            return;
        }
    };
    let put = TxnOp::put_with_lease(keys::live(node), bytes, lease);
    match state.store.txn(Txn::new().and_then([put])).await {
        Ok(_) => state.live_share.set(
            node,
            Some(Shared {
                lease,
                written: record.report,
            }),
        ),
        Err(err) => {
            tracing::warn!(%node, error = %err, "cannot share the node's liveness");
            state.live_share.set(node, None);
        }
    }
}

/// Follows [`keys::LIVE`] into this controller's liveness, from the store's current
/// state on; a broken watch is re-opened from a fresh read.
pub async fn follow(state: Arc<AppState>) {
    let mut shutdown = state.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(err) = follow_once(&state).await {
            tracing::warn!(error = %err, "following node liveness; re-reading");
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn follow_once(state: &AppState) -> Result<(), weft_store::StoreError> {
    let read = state.store.range(keys::LIVE.as_bytes(), None).await?;
    for kv in &read.kvs {
        apply(state, &kv.key, Some(&kv.value));
    }
    let mut stream = state
        .store
        .watch(keys::LIVE.as_bytes(), Some(read.revision + 1))
        .await?;
    let mut shutdown = state.shutdown.clone();
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        };
        match event {
            Some(Ok(event)) => {
                let value = matches!(event.kind, EventKind::Put).then_some(&event.kv.value);
                apply(state, &event.kv.key, value.map(|v| &v[..]));
                state.scheduler_wake.notify_one();
                state
                    .catalog_changes
                    .send_modify(|n| *n = n.wrapping_add(1));
            }
            Some(Err(err)) => return Err(err),
            None => return Ok(()),
        }
    }
}

fn apply(state: &AppState, key: &[u8], value: Option<&[u8]>) {
    let Some(node) = std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.strip_prefix(keys::LIVE))
    else {
        return;
    };
    match value {
        Some(bytes) => match serde_json::from_slice::<LiveRecord>(bytes) {
            Ok(record) => state
                .liveness
                .remote_put(node, record.report, Some(record.heard_by)),
            Err(err) => {
                tracing::warn!(%node, error = %err, "unreadable live key; the node counts as alive without a report");
                state.liveness.remote_put(node, None, None);
            }
        },
        None => state
            .liveness
            .remote_delete(node, state.config.node_deadline),
    }
}
