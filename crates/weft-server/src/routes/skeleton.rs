//! The two shapes every handler has, stated once: a blocking read of the snapshot, and an
//! optimistic (compare-and-swap) write that the snapshot then catches up with. Handlers
//! state only what differs: what they read, and what they guard and write.

use super::indexed;
use crate::error::{ApiFailure, ApiResult};
use crate::server::AppState;
use crate::state::{Snapshot, as_revision};
use crate::watch::{BlockingParams, block, caught_up};
use axum::response::Response;
use serde::Serialize;
use std::fmt::Display;
use std::sync::Arc;
use weft_store::{KvStore, Txn, TxnResponse};

/// Waits as `?index=N&wait=D` asks, then returns the snapshot to answer from.
pub async fn fresh(state: &AppState, wait: &BlockingParams) -> ApiResult<Arc<Snapshot>> {
    block(state, wait).await?;
    Ok(state.snapshot())
}

/// A blocking read: waits as `wait` asks, then answers what `view` makes of the snapshot,
/// with the snapshot's revision as `X-Weft-Index`. Checks that need no snapshot (the role)
/// come before the call, so a refused caller never waits.
pub async fn read<B: Serialize>(
    state: &AppState,
    wait: &BlockingParams,
    view: impl FnOnce(&Snapshot) -> ApiResult<B>,
) -> ApiResult<Response> {
    let snapshot = fresh(state, wait).await?;
    let body = view(&snapshot)?;
    Ok(indexed(snapshot.revision, &body))
}

/// Commits `txn`. `Ok(revision)` once the snapshot includes the commit; `Err` with the
/// store's answer when the compares failed (nothing was written).
async fn attempt(state: &AppState, txn: Txn) -> ApiResult<Result<u64, TxnResponse>> {
    let response = state.store.txn(txn).await?;
    if !response.succeeded {
        return Ok(Err(response));
    }
    let revision = as_revision(response.revision);
    caught_up(state, revision).await;
    Ok(Ok(revision))
}

/// A write guarded by what the handler read: when the guard fails, `what` changed since
/// and the caller is told so (409 "`what` changed meanwhile; retry"). Returns the commit's
/// revision once the snapshot includes it.
pub async fn commit_guarded(
    state: &AppState,
    txn: Txn,
    what: impl Display + Send,
) -> ApiResult<u64> {
    attempt(state, txn)
        .await?
        .map_err(|_| ApiFailure::conflict(format!("{what} changed meanwhile; retry"), None))
}

/// The optimistic retry loop. `plan` reads the snapshot and builds a guarded transaction
/// with what it planned (`T`); when the guard fails, `lost` reads the store's answer and
/// either refuses (an error, nothing written) or lets the loop plan again once the
/// snapshot has caught up with the store. After `attempts` lost races, `exhausted`.
/// Returns the commit's revision, once the snapshot includes it, and the plan.
pub async fn retry_txn<T>(
    state: &AppState,
    attempts: usize,
    mut plan: impl FnMut(&Snapshot) -> ApiResult<(Txn, T)>,
    mut lost: impl FnMut(&T, &TxnResponse) -> ApiResult<()>,
    exhausted: impl FnOnce() -> ApiFailure,
) -> ApiResult<(u64, T)> {
    for _ in 0..attempts {
        let (txn, planned) = plan(&state.snapshot())?;
        match attempt(state, txn).await? {
            Ok(revision) => return Ok((revision, planned)),
            Err(response) => {
                lost(&planned, &response)?;
                caught_up(state, as_revision(response.revision)).await;
            }
        }
    }
    Err(exhausted())
}

/// An unguarded put (a key only this caller writes); returns its revision once the
/// snapshot includes it.
pub async fn put(state: &AppState, key: &str, value: &[u8]) -> ApiResult<u64> {
    let put = state.store.put(key.as_bytes(), value, None).await?;
    let revision = as_revision(put.revision);
    caught_up(state, revision).await;
    Ok(revision)
}
