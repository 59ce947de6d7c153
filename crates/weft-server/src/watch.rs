//! Change propagation: one store watch keeps the [`Snapshot`] current and publishes its
//! revision on a `tokio::sync::watch`, which every blocking query waits on (a waiter costs a
//! receiver, nothing per change), and on a broadcast channel that feeds `/v1/events`.

use crate::error::{ApiFailure, ApiResult};
use crate::keys;
use crate::server::AppState;
use crate::state::{Snapshot, as_revision};
use axum::body::Bytes;
use serde::Deserialize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use weft_api::{ChangeEvent, ChangeKind};
use weft_store::{EventKind, WatchEvent, WatchStream};

/// `?index=N&wait=30s`, accepted by every read.
#[derive(Debug, Default, Deserialize)]
pub struct BlockingParams {
    pub index: Option<u64>,
    pub wait: Option<String>,
}

/// A change as `/v1/events` streams it: the change and its place among the public
/// changes of its revision (a transaction changes several keys in one revision), so a
/// client can resume after exactly the change it saw last ([`crate::routes::events`]).
#[derive(Debug, Clone)]
pub struct OrderedChange {
    pub change: ChangeEvent,
    pub ordinal: u32,
}

/// Numbers the public changes of each revision 0, 1, 2, ... in the store's order, which
/// is the same for every watch of the store (etcd's sub-revisions, redb's event table).
#[derive(Debug, Default)]
pub struct ChangeOrder {
    revision: u64,
    next: u32,
}

impl ChangeOrder {
    pub fn number(&mut self, revision: u64) -> u32 {
        if revision != self.revision {
            self.revision = revision;
            self.next = 0;
        }
        let ordinal = self.next;
        self.next = self.next.saturating_add(1);
        ordinal
    }
}

/// The change event a store event makes, or `None` for keys that are not weft's public
/// state: the Consul and OpenStack adapters' keys, the controllers' cluster keys and
/// internal bookkeeping.
pub fn public_change(event: &WatchEvent) -> Option<ChangeEvent> {
    let raw = &event.kv.key;
    if raw.starts_with(weft_consul::KEY_ROOT.as_bytes())
        || raw.starts_with(weft_openstack::KEY_ROOT.as_bytes())
        || raw.starts_with(keys::CLUSTER.as_bytes())
    {
        return None;
    }
    let key = String::from_utf8_lossy(raw);
    if keys::is_internal(&key) {
        return None;
    }
    Some(ChangeEvent {
        revision: as_revision(event.revision()),
        kind: match event.kind {
            EventKind::Put => ChangeKind::Put,
            EventKind::Delete => ChangeKind::Delete,
        },
        key: keys::public_name(&key).to_string(),
    })
}

/// Follows the store until it closes or the server shuts down.
pub async fn follow_store(state: Arc<AppState>, mut stream: WatchStream) {
    let mut shutdown = state.shutdown.clone();
    let mut order = ChangeOrder::default();
    loop {
        let first = tokio::select! {
            item = stream.next() => item,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let mut batch = match first {
            Some(Ok(event)) => vec![event],
            Some(Err(err)) => {
                tracing::error!(error = %err, "store watch ended; state will go stale");
                return;
            }
            None => return,
        };
        // A transaction's events may arrive in several pieces; yielding lets the store's
        // watcher hand over the rest before the revision is published.
        for _ in 0..3 {
            let before = batch.len();
            while let Some(Ok(event)) = stream.try_next() {
                batch.push(event);
            }
            if batch.len() == before {
                tokio::task::yield_now().await;
            }
        }
        let seen = batch.iter().map(WatchEvent::revision).max().unwrap_or(0);
        // The Consul adapter's keys (KV, sessions, registrations) are none of the
        // snapshot's business: they must not wake agents' blocking queries. Its
        // registrations and checks do change what discovery at the gateways answers.
        if batch.iter().any(|e| weft_consul::is_catalog_key(&e.kv.key)) {
            state
                .catalog_changes
                .send_modify(|n| *n = n.wrapping_add(1));
        }
        batch.retain(|e| !e.kv.key.starts_with(weft_consul::KEY_ROOT.as_bytes()));
        // Nor are the OpenStack adapter's (users, token metadata, Neutron-only attributes).
        batch.retain(|e| !e.kv.key.starts_with(weft_openstack::KEY_ROOT.as_bytes()));
        // Nor are the controllers' leader key and registry.
        batch.retain(|e| !e.kv.key.starts_with(keys::CLUSTER.as_bytes()));
        if !batch.is_empty() {
            publish(&state, &batch, &mut order);
        }
        state.observed.send_replace(as_revision(seen));
    }
}

/// Before a write is decided: waits until this controller has seen everything the store
/// had committed when the request arrived, so a client that wrote through another
/// controller (or failed over) never has its next write judged against older state.
/// One cheap store read (etcd: a count-only range; redb: memory).
pub async fn write_barrier(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !matches!(
        request.method(),
        &axum::http::Method::GET | &axum::http::Method::HEAD
    ) {
        match weft_store::KvStore::current_revision(&state.store).await {
            Ok(revision) => {
                let revision = as_revision(revision);
                let mut observed = state.observed.subscribe();
                tokio::select! {
                    _ = observed.wait_for(|seen| *seen >= revision) => {}
                    () = tokio::time::sleep(Duration::from_secs(5)) => {
                        tracing::warn!(
                            revision,
                            observed = *state.observed.borrow(),
                            "the store watch lags more than 5 s; deciding on what it has"
                        );
                    }
                }
            }
            Err(err) => return ApiFailure::from(err).into_response(),
        }
    }
    next.run(request).await
}

fn publish(state: &AppState, batch: &[WatchEvent], order: &mut ChangeOrder) {
    let mut snapshot: Snapshot = (*state.snapshot()).clone();
    let mut recompile = false;
    for event in batch {
        recompile |= snapshot.apply(event);
    }
    if recompile {
        snapshot.recompile();
    }
    let revision = snapshot.revision;
    state.replace_snapshot(snapshot);
    for change in batch.iter().filter_map(public_change) {
        let ordinal = order.number(change.revision);
        // No subscriber is fine: nobody follows /v1/events right now.
        let _ = state.changes.send(OrderedChange { change, ordinal });
    }
    state.revisions.send_replace(revision);
    state.catalog_changes.send_modify(|n| *n += 1);
}

/// Waits per `params`: returns at once without `index` or when the state is newer than it,
/// else when it changes or `wait` (default 5 min, cut to the configured maximum) runs out.
pub async fn block(state: &AppState, params: &BlockingParams) -> ApiResult<()> {
    let Some(index) = params.index else {
        return Ok(());
    };
    let wait = match &params.wait {
        Some(text) => parse_wait(text).ok_or_else(|| {
            ApiFailure::bad_request(
                format!("wait {text:?} is not a duration like 30s, 500ms or 1m"),
                Some("wait"),
            )
        })?,
        None => state.config.max_wait,
    }
    .min(state.config.max_wait);
    let mut revisions = state.revisions.subscribe();
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        _ = revisions.wait_for(|rev| *rev > index) => {}
        () = tokio::time::sleep(wait) => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    Ok(())
}

/// Waits until the snapshot includes `revision` (read-your-writes after a commit).
pub async fn caught_up(state: &AppState, revision: u64) {
    // `observed`, not the snapshot's revision: the store's newest revision may be a key
    // the snapshot ignores (a controller's lease, a Consul key), and the snapshot has
    // everything up to `observed` once it is there.
    let mut revisions = state.observed.subscribe();
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        _ = revisions.wait_for(|rev| *rev >= revision) => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
        // A stalled watch must not hang writers forever; the write is committed anyway.
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!(revision, "snapshot did not catch up with a commit within 10 s");
        }
    }
}

/// `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_wait(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_parse() {
        assert_eq!(parse_wait("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_wait("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_wait("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_wait("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_wait("soon"), None);
        assert_eq!(parse_wait("5d"), None);
    }
}

/// The serialized desired view, shared by every agent woken by the same change: it is the
/// same for every node, so a fan-out to 1,000 agents serializes it once, not 1,000 times.
/// Node readiness inside it is time-dependent, hence the short lifetime.
#[derive(Debug, Default)]
pub struct DesiredCache {
    latest: Mutex<Option<(u64, Instant, Bytes)>>,
}

const DESIRED_CACHE_TTL: Duration = Duration::from_secs(1);

impl DesiredCache {
    pub fn get_or_build(
        &self,
        revision: u64,
        build: impl FnOnce() -> ApiResult<Vec<u8>>,
    ) -> ApiResult<Bytes> {
        // Held while building so that concurrent wakers wait for one build, not race.
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, built, body)) = latest.as_ref()
            && *cached == revision
            && built.elapsed() < DESIRED_CACHE_TTL
        {
            return Ok(body.clone());
        }
        let body = Bytes::from(build()?);
        *latest = Some((revision, Instant::now(), body.clone()));
        Ok(body)
    }
}
