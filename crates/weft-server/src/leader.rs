//! One leader for the loops: the controller that holds the leader key runs the
//! scheduler (and whatever else must run once), and every write of those loops is
//! fenced.
//!
//! Election is etcd's pattern by hand, on any [`KvStore`]: a lease of `ttl`, and a
//! transaction that creates [`keys::LEADER`] bound to it only if the key is absent. The
//! winner keeps the lease alive (every `ttl / 3`); when it stops (crash, pause,
//! partition) the store deletes the key after the TTL and another controller's
//! transaction wins. The key's create revision is the leader's *fence*: every loop
//! write compares it ([`Fence::guard`]), so a deposed leader that wakes up after a
//! pause cannot write, whatever it still believes ([`Leadership::commit`] counts the
//! refusals).
//!
//! A controller knows itself by a persistent id (`controller.id` in its data
//! directory): after a restart it takes its own stale key over at once instead of
//! waiting for the lease to run out.

use crate::error::{ApiFailure, ApiResult};
use crate::keys;
use crate::server::AppState;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use weft_store::{Compare, CompareOp, KvStore, LeaseId, Txn, TxnOp, TxnOpResponse, TxnResponse};

/// Who leads, as stored in the leader key (and shown by `GET /v1/status/leader`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub id: String,
    /// The controller's API address, as it advertises it.
    pub url: String,
    /// Unix milliseconds when it took the lead.
    pub since_ms: u64,
}

/// The leader key's create revision while this controller leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub revision: i64,
}

impl Fence {
    /// The compare that makes a transaction commit only under this leadership.
    pub fn guard(&self) -> Compare {
        Compare::create_revision(keys::LEADER, CompareOp::Equal, self.revision)
    }
}

/// This controller's view of the election.
#[derive(Debug)]
pub struct Leadership {
    pub me: LeaderRecord,
    fence: watch::Sender<Option<Fence>>,
    /// Loop writes refused because the fence no longer held.
    refused: AtomicU64,
}

impl Leadership {
    pub fn new(me: LeaderRecord) -> Self {
        Self {
            me,
            fence: watch::Sender::new(None),
            refused: AtomicU64::new(0),
        }
    }

    /// The fence while this controller believes it leads.
    pub fn fence(&self) -> Option<Fence> {
        *self.fence.borrow()
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn set(&self, fence: Option<Fence>) {
        self.fence.send_if_modified(|f| {
            let changed = *f != fence;
            *f = fence;
            changed
        });
    }

    /// Commits a loop's transaction under the fence: refused (and counted) when this
    /// controller does not lead, or no longer does by the store's word, in which case
    /// it also stops believing it leads.
    pub async fn commit<S: KvStore>(&self, store: &S, txn: Txn) -> ApiResult<TxnResponse> {
        let Some(fence) = self.fence() else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(not_leader());
        };
        let fenced = Txn {
            compares: std::iter::once(fence.guard()).chain(txn.compares).collect(),
            success: txn.success,
            failure: std::iter::once(TxnOp::get(keys::LEADER))
                .chain(txn.failure)
                .collect(),
        };
        let mut response = store.txn(fenced).await?;
        if !response.succeeded {
            let holder = match response.responses.first() {
                Some(TxnOpResponse::Get(get)) => get.kv.as_ref().map(|kv| kv.create_revision),
                _ => None,
            };
            if holder != Some(fence.revision) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                self.set(None);
                tracing::warn!(
                    fence = fence.revision,
                    "a loop write was refused: this controller no longer leads"
                );
                return Err(not_leader());
            }
            response.responses.remove(0);
        }
        Ok(response)
    }
}

fn not_leader() -> ApiFailure {
    ApiFailure::conflict(
        "this controller does not lead (any more); the leader runs the loops",
        None,
    )
}

/// A won term: the fence and the lease that keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Term {
    fence: Fence,
    lease: LeaseId,
}

/// Campaigns until shutdown: leads while it can, follows otherwise. `first` is the
/// outcome of the campaign `serve` ran before answering requests.
pub async fn run(state: Arc<AppState>, ttl: Duration, first: Option<Term>) {
    let mut shutdown = state.shutdown.clone();
    let mut term = first;
    loop {
        if *shutdown.borrow() {
            break;
        }
        // Following: a read of the key (cheap) every TTL/10, and a campaign (a lease
        // and a transaction) only once it is free or this controller's own.
        let free = match state.store.get(keys::LEADER.as_bytes()).await {
            Ok(got) => got.kv.is_none_or(|kv| {
                serde_json::from_slice::<LeaderRecord>(&kv.value)
                    .is_ok_and(|r| r.id == state.leadership.me.id)
            }),
            Err(_) => false,
        };
        if term.is_none() && free {
            term = match campaign(&state, ttl).await {
                Ok(term) => term,
                Err(err) => {
                    tracing::warn!(error = %err, "leader election");
                    None
                }
            };
        }
        if let Some(t) = term.take()
            && let Err(err) = hold(&state, t, ttl).await
        {
            tracing::warn!(error = %err, "leading");
        }
        state.leadership.set(None);
        tokio::select! {
            () = tokio::time::sleep((ttl / 10).max(Duration::from_millis(50))) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    // Hand over at once on a clean stop.
    if let Some(fence) = state.leadership.fence() {
        let _ = state
            .store
            .txn(
                Txn::new()
                    .when([fence.guard()])
                    .and_then([TxnOp::delete(keys::LEADER)]),
            )
            .await;
    }
    state.leadership.set(None);
}

/// One campaign: takes the leader key if it is free (or this controller's own, left
/// by a restart). On success this controller leads from now on.
pub async fn campaign(state: &AppState, ttl: Duration) -> ApiResult<Option<Term>> {
    let store = &state.store;
    let me = &state.leadership.me;
    let lease = store.lease_grant(ttl).await?;
    let record = LeaderRecord {
        since_ms: crate::liveness::now_ms(),
        ..me.clone()
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| ApiFailure::Internal(e.to_string()))?;
    let won = store
        .txn(
            Txn::new()
                .when([Compare::absent(keys::LEADER)])
                .and_then([TxnOp::put_with_lease(keys::LEADER, bytes.clone(), lease.id)])
                .or_else([TxnOp::get(keys::LEADER)]),
        )
        .await?;
    let revision = if won.succeeded {
        won.revision
    } else {
        let stale = match won.responses.first() {
            Some(TxnOpResponse::Get(get)) => get.kv.clone(),
            _ => None,
        };
        let ours = stale.as_ref().is_some_and(|kv| {
            serde_json::from_slice::<LeaderRecord>(&kv.value).is_ok_and(|r| r.id == me.id)
        });
        // Our own key from before a restart: delete it (etcd refuses a delete and a
        // put of one key in one txn), then campaign once more.
        let taken = match stale {
            Some(kv) if ours => {
                store
                    .txn(
                        Txn::new()
                            .when([Compare::mod_revision(
                                keys::LEADER,
                                CompareOp::Equal,
                                kv.mod_revision,
                            )])
                            .and_then([TxnOp::delete(keys::LEADER)]),
                    )
                    .await?;
                Some(
                    store
                        .txn(
                            Txn::new()
                                .when([Compare::absent(keys::LEADER)])
                                .and_then([TxnOp::put_with_lease(keys::LEADER, bytes, lease.id)]),
                        )
                        .await?,
                )
            }
            _ => None,
        };
        match taken {
            Some(t) if t.succeeded => t.revision,
            _ => {
                revoke(state, lease.id).await;
                return Ok(None);
            }
        }
    };
    let fence = Fence { revision };
    tracing::info!(id = %me.id, fence = fence.revision, "this controller leads");
    state.leadership.set(Some(fence));
    state.scheduler_wake.notify_one();
    Ok(Some(Term {
        fence,
        lease: lease.id,
    }))
}

/// Keeps a term's lease alive; returns when it can no longer be sure it leads.
async fn hold(state: &AppState, term: Term, ttl: Duration) -> ApiResult<()> {
    let store = &state.store;
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep(ttl / 3) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
        // A keep-alive that does not come back in time means the lease may be gone:
        // stop leading before the store lets another controller lead.
        match tokio::time::timeout(ttl / 3, store.lease_keep_alive(term.lease)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "leader lease lost");
                return Ok(());
            }
            Err(_) => {
                tracing::warn!("leader lease keep-alive timed out");
                return Ok(());
            }
        }
        // Still the holder? (after a pause longer than the TTL the key may be gone
        // and taken, whatever the keep-alive of this lease id says).
        let held = store.get(keys::LEADER.as_bytes()).await?;
        if held.kv.as_ref().map(|kv| kv.create_revision) != Some(term.fence.revision) {
            tracing::warn!("the leader key changed hands");
            return Ok(());
        }
    }
}

/// Registers this controller under [`keys::CONTROLLERS`], bound to a lease kept alive
/// until shutdown (re-registered when the lease is lost), so that any controller can
/// list the live ones.
pub async fn register(state: Arc<AppState>, ttl: Duration, first: Option<LeaseId>) {
    let mut shutdown = state.shutdown.clone();
    let mut lease = first;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let alive = match lease {
            Some(id) => matches!(
                tokio::time::timeout(ttl / 3, state.store.lease_keep_alive(id)).await,
                Ok(Ok(_))
            ),
            None => false,
        };
        if !alive {
            lease = register_once(&state, ttl).await;
        }
        tokio::select! {
            () = tokio::time::sleep(ttl / 3) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    if let Some(id) = lease {
        revoke(&state, id).await;
    }
}

/// Writes this controller's registry entry under a new lease.
pub async fn register_once(state: &AppState, ttl: Duration) -> Option<LeaseId> {
    let me = &state.leadership.me;
    let info = weft_api::ControllerInfo {
        id: me.id.clone(),
        url: me.url.clone(),
        started_ms: crate::liveness::now_ms(),
        leader: false,
    };
    let bytes = serde_json::to_vec(&info).ok()?;
    let grant = match state.store.lease_grant(ttl).await {
        Ok(grant) => grant,
        Err(err) => {
            tracing::warn!(error = %err, "cannot register this controller");
            return None;
        }
    };
    let put = TxnOp::put_with_lease(keys::controller(&me.id), bytes, grant.id);
    state.store.txn(Txn::new().and_then([put])).await.ok()?;
    Some(grant.id)
}

/// Who leads and which controllers are registered, read from the store.
pub async fn status(state: &AppState) -> ApiResult<weft_api::ControllersStatus> {
    let store = &state.store;
    let leader = store.get(keys::LEADER.as_bytes()).await?;
    let leader: Option<LeaderRecord> = leader
        .kv
        .and_then(|kv| serde_json::from_slice(&kv.value).ok());
    let listed = store.range(keys::CONTROLLERS.as_bytes(), None).await?;
    let controllers = listed
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<weft_api::ControllerInfo>(&kv.value).ok())
        .map(|mut c| {
            c.leader = leader.as_ref().is_some_and(|l| l.id == c.id);
            c
        })
        .collect();
    Ok(weft_api::ControllersStatus {
        leader: leader.as_ref().map(|l| l.id.clone()),
        leader_url: leader.as_ref().map(|l| l.url.clone()),
        leader_since_ms: leader.as_ref().map(|l| l.since_ms),
        this: state.leadership.me.id.clone(),
        refused_loop_writes: state.leadership.refused(),
        controllers,
    })
}

async fn revoke(state: &AppState, lease: LeaseId) {
    let _ = state.store.lease_revoke(lease).await;
}
