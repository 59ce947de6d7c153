//! The [`KvStore`] trait: etcd v3's KV, Watch and Lease services, as the controller uses them.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::types::{
    DeleteResponse, GetResponse, LeaseGrant, LeaseId, LeaseTimeToLive, PutResponse, RangeResponse,
    Revision, Txn, TxnResponse,
};
use crate::watch::WatchStream;

/// A revisioned key-value store with etcd's semantics.
///
/// Every method returns a `Send` future so generic callers can run them on tokio's
/// multi-threaded runtime. The trait is not object-safe (return-position `impl Trait`); callers
/// take `S: KvStore` generically.
///
/// Guarantees every implementation must give:
/// - one global [`Revision`], increased by exactly one per transaction that changes a key;
/// - a write is acknowledged only once it is durable per the implementation's documented
///   policy, and every read started after the acknowledgement observes it;
/// - watches deliver every event of matching keys from their start revision on, in revision
///   order, without gaps or duplicates, or end with [`StoreError::Compacted`].
///
/// [`StoreError::Compacted`]: crate::StoreError::Compacted
pub trait KvStore: Send + Sync + 'static {
    /// Reads one key at the current revision.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<GetResponse>> + Send;

    /// Reads every key starting with `prefix` (all keys for an empty prefix) in key order,
    /// at most `limit` of them (`None` or `Some(0)`: no limit, as in etcd).
    fn range(
        &self,
        prefix: &[u8],
        limit: Option<usize>,
    ) -> impl Future<Output = Result<RangeResponse>> + Send;

    /// Writes a key, attaching it to `lease` (or detaching it with `None`).
    fn put(
        &self,
        key: &[u8],
        value: &[u8],
        lease: Option<LeaseId>,
    ) -> impl Future<Output = Result<PutResponse>> + Send;

    /// Deletes one key. Deleting a missing key is not an error and commits no revision.
    fn delete(&self, key: &[u8]) -> impl Future<Output = Result<DeleteResponse>> + Send;

    /// Deletes every key starting with `prefix`, atomically, in one revision.
    fn delete_prefix(&self, prefix: &[u8]) -> impl Future<Output = Result<DeleteResponse>> + Send;

    /// Runs a compare-and-swap transaction atomically; at most one revision is committed.
    fn txn(&self, txn: Txn) -> impl Future<Output = Result<TxnResponse>> + Send;

    /// Streams changes to keys starting with `prefix`, from `start_revision` inclusive
    /// (`None`: only changes committed after this call), then live.
    ///
    /// Fails with `Compacted` if `start_revision` is older than the compaction point; a watch
    /// that falls behind a later compaction ends with that error as its last item.
    fn watch(
        &self,
        prefix: &[u8],
        start_revision: Option<Revision>,
    ) -> impl Future<Output = Result<WatchStream>> + Send;

    /// Discards the history older than `revision`; watches can no longer start before it.
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<()>> + Send;

    /// The current revision.
    fn current_revision(&self) -> impl Future<Output = Result<Revision>> + Send;

    /// Grants a lease that expires `ttl` after the grant or the last keep-alive.
    /// The etcd implementation rounds `ttl` up to whole seconds.
    fn lease_grant(&self, ttl: Duration) -> impl Future<Output = Result<LeaseGrant>> + Send;

    /// Restarts a lease's countdown; returns its TTL. `LeaseNotFound` if it expired.
    fn lease_keep_alive(&self, id: LeaseId) -> impl Future<Output = Result<Duration>> + Send;

    /// Revokes a lease and deletes its keys in one revision; returns the store revision after.
    fn lease_revoke(&self, id: LeaseId) -> impl Future<Output = Result<Revision>> + Send;

    /// A live lease's TTL, remaining time and keys; `None` if it does not exist.
    fn lease_time_to_live(
        &self,
        id: LeaseId,
    ) -> impl Future<Output = Result<Option<LeaseTimeToLive>>> + Send;
}
