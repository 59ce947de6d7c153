//! The single writer thread: every mutation goes through it.
//!
//! Why one thread: redb allows one write transaction at a time anyway, and serialising writes
//! here gives three things for free: revisions are assigned in commit order, watchers are told
//! about commits in that same order, and requests that queue up while a commit is fsyncing are
//! applied together in the next redb transaction (group commit). Each request still gets its own
//! revision; the batch is acknowledged only after its single commit (and fsync) returns.

use std::collections::HashSet;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use redb::{MultimapTable, ReadableMultimapTable, ReadableTable, Table, WriteTransaction};
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};
use crate::redb_store::{Shared, StoreOptions, SyncPolicy};
use crate::schema::{
    self, EVENTS, KV, LEASE_KEYS, LEASES, META, META_COMPACT_REVISION, META_NEXT_LEASE_ID,
    META_REVISION,
};
use crate::types::{
    DeleteResponse, EventKind, GetResponse, KeyValue, LeaseGrant, LeaseId, PutResponse,
    RangeResponse, Revision, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchEvent,
};

/// Largest key accepted; etcd has no separate key limit but caps requests at 1.5 MiB.
pub const MAX_KEY_LEN: usize = 64 * 1024;
/// Largest value accepted. Values are the controller's objects; anything near this is a bug.
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

/// A mutation, as queued for the writer thread.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete {
        key: Vec<u8>,
    },
    DeletePrefix {
        prefix: Vec<u8>,
    },
    Txn(Txn),
    Compact(Revision),
    LeaseGrant(Duration),
    LeaseRevoke(LeaseId),
    ExpireLeases,
}

#[derive(Debug)]
pub(crate) enum WriteOutcome {
    Put(PutResponse),
    Delete(DeleteResponse),
    Txn(TxnResponse),
    Compacted,
    LeaseGranted(LeaseGrant),
    LeaseRevoked(Revision),
    LeasesExpired(Vec<LeaseId>),
}

#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteOutcome>>,
}

/// Changes to in-memory lease deadlines, applied only once the commit succeeded.
#[derive(Debug)]
enum LeaseEffect {
    Start(LeaseId, Duration),
    Forget(LeaseId),
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<WriteRequest>,
    /// Last committed revision.
    revision: Revision,
    sync: SyncPolicy,
    max_batch: usize,
    lease_check_interval: Option<Duration>,
    last_lease_check: Instant,
    last_sync: Instant,
    /// A commit was acknowledged without fsync (only under `SyncPolicy::Periodic`).
    unsynced: bool,
}

/// How often the idle writer wakes up to expire leases or flush deferred syncs.
const IDLE_TICK: Duration = Duration::from_millis(100);

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        requests: mpsc::Receiver<WriteRequest>,
        revision: Revision,
        options: &StoreOptions,
    ) -> Self {
        Writer {
            shared,
            requests,
            revision,
            sync: options.sync,
            max_batch: options.max_batch.max(1),
            lease_check_interval: options.lease_check_interval,
            last_lease_check: Instant::now(),
            last_sync: Instant::now(),
            unsynced: false,
        }
    }

    /// Runs until every sender is gone (store dropped) or a commit fails; redb refuses further
    /// writes after a failed commit, so continuing would only fail every request.
    pub(crate) fn run(mut self) {
        tracing::debug!(revision = self.revision, "store writer started");
        loop {
            let first = match self.requests.recv_timeout(IDLE_TICK) {
                Ok(request) => request,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.housekeeping().is_err() {
                        return;
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            if self.commit_batch(batch).is_err() || self.housekeeping().is_err() {
                return;
            }
        }
        if self.unsynced {
            // Store closed under SyncPolicy::Periodic: make the tail durable before exiting.
            let _ = self.commit_batch(Vec::new());
        }
        tracing::debug!(revision = self.revision, "store writer stopped");
    }

    /// Periodic work between batches: lease expiry and deferred fsyncs.
    fn housekeeping(&mut self) -> Result<(), ()> {
        if let Some(interval) = self.lease_check_interval
            && self.last_lease_check.elapsed() >= interval
        {
            self.last_lease_check = Instant::now();
            // Nobody waits for the reply of the writer's own expiry request.
            let (reply, _) = oneshot::channel();
            self.commit_batch(vec![WriteRequest {
                op: WriteOp::ExpireLeases,
                reply,
            }])?;
        }
        if self.unsynced
            && let SyncPolicy::Periodic(interval) = self.sync
            && self.last_sync.elapsed() >= interval
        {
            self.commit_batch(Vec::new())?;
        }
        Ok(())
    }

    fn wants_fsync(&self) -> bool {
        match self.sync {
            SyncPolicy::EveryCommit => true,
            SyncPolicy::Periodic(interval) => self.last_sync.elapsed() >= interval,
        }
    }

    /// Applies the batch in one redb transaction and replies to every request. `Err` means the
    /// store can no longer write and the writer must stop.
    fn commit_batch(&mut self, batch: Vec<WriteRequest>) -> Result<(), ()> {
        let fsync = self.wants_fsync();
        let mut txn = match self.shared.db.begin_write() {
            Ok(txn) => txn,
            Err(err) => {
                fail_batch(batch, err.into());
                return Err(());
            }
        };
        if !fsync && let Err(err) = txn.set_durability(redb::Durability::None) {
            fail_batch(batch, err.into());
            return Err(());
        }

        let mut revision = RevisionCursor::new(self.revision);
        let applied = apply_batch(&txn, &self.shared, &batch, &mut revision);
        let results = match applied {
            Ok(results) => results,
            Err(err) => {
                // Nothing of the batch is kept; the database itself is still usable.
                tracing::error!(error = %err, "store write batch failed, aborting it");
                if let Err(abort_err) = txn.abort() {
                    tracing::error!(error = %abort_err, "aborting the failed batch failed");
                    fail_batch(batch, err);
                    return Err(());
                }
                fail_batch(batch, err);
                return Ok(());
            }
        };
        if let Err(err) = txn.commit() {
            tracing::error!(error = %err, "store commit failed; the store stops accepting writes");
            fail_batch(batch, err.into());
            return Err(());
        }

        if fsync {
            self.last_sync = Instant::now();
            self.unsynced = false;
        } else {
            self.unsynced = true;
        }
        let committed = revision.committed;
        let advanced = committed != self.revision;
        self.revision = committed;
        if advanced {
            // After the commit (so watchers can read it) and before any acknowledgement (so a
            // watch started "from now" after an acked write does not see that write).
            self.shared.committed.send_replace(committed);
        }
        for (request, result) in batch.into_iter().zip(results) {
            let reply = result.map(|(outcome, effects)| {
                for effect in effects {
                    match effect {
                        LeaseEffect::Start(id, ttl) => self.shared.leases.start(id, ttl),
                        LeaseEffect::Forget(id) => self.shared.leases.forget(id),
                    }
                }
                outcome
            });
            // The caller may have stopped waiting (dropped future); the write stands anyway.
            let _ = request.reply.send(reply);
        }
        Ok(())
    }
}

fn fail_batch(batch: Vec<WriteRequest>, cause: StoreError) {
    let cause = Arc::new(cause);
    for request in batch {
        let _ = request
            .reply
            .send(Err(StoreError::WriteFailed(Arc::clone(&cause))));
    }
}

type RequestResult = Result<(WriteOutcome, Vec<LeaseEffect>)>;

/// Applies every request of the batch; a request error fails only that request, any other
/// error fails the whole batch.
fn apply_batch(
    txn: &WriteTransaction,
    shared: &Shared,
    batch: &[WriteRequest],
    revision: &mut RevisionCursor,
) -> Result<Vec<RequestResult>> {
    let mut tables = WriteTables::open(txn)?;
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        let mut effects = Vec::new();
        match tables.apply(&request.op, shared, revision, &mut effects) {
            Ok(outcome) => results.push(Ok((outcome, effects))),
            Err(err) if err.is_request_error() => results.push(Err(err)),
            Err(err) => return Err(err),
        }
    }
    tables.meta.insert(META_REVISION, revision.committed)?;
    Ok(results)
}

/// Tracks the revision the current request writes at, and the events it has logged.
#[derive(Debug)]
struct RevisionCursor {
    committed: Revision,
    events_in_pending: u32,
}

impl RevisionCursor {
    fn new(committed: Revision) -> Self {
        RevisionCursor {
            committed,
            events_in_pending: 0,
        }
    }

    /// The revision a mutation of the current request is written at.
    fn pending(&self) -> Revision {
        schema::next_revision(self.committed)
    }

    fn next_event_sequence(&mut self) -> u32 {
        let sequence = self.events_in_pending;
        self.events_in_pending += 1;
        sequence
    }

    /// Ends the current request: it committed a revision iff it logged an event (every
    /// mutation logs exactly one). Returns the store revision after the request.
    fn finish_request(&mut self) -> Revision {
        if self.events_in_pending > 0 {
            self.committed = self.pending();
            self.events_in_pending = 0;
        }
        self.committed
    }
}

struct WriteTables<'txn> {
    kv: Table<'txn, &'static [u8], &'static [u8]>,
    events: Table<'txn, (i64, u32), &'static [u8]>,
    meta: Table<'txn, &'static str, i64>,
    leases: Table<'txn, i64, u64>,
    lease_keys: MultimapTable<'txn, i64, &'static [u8]>,
}

impl<'txn> WriteTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        Ok(WriteTables {
            kv: txn.open_table(KV)?,
            events: txn.open_table(EVENTS)?,
            meta: txn.open_table(META)?,
            leases: txn.open_table(LEASES)?,
            lease_keys: txn.open_multimap_table(LEASE_KEYS)?,
        })
    }

    /// Applies one request. Everything that can fail as a request error is checked before the
    /// first mutation, so a failed request leaves no trace in the batch.
    fn apply(
        &mut self,
        op: &WriteOp,
        shared: &Shared,
        revision: &mut RevisionCursor,
        effects: &mut Vec<LeaseEffect>,
    ) -> Result<WriteOutcome> {
        match op {
            WriteOp::Put { key, value, lease } => {
                check_key(key)?;
                check_value(value)?;
                self.check_lease(*lease)?;
                let prev_kv = self.put(key, value, *lease, revision)?;
                let revision = revision.finish_request();
                Ok(WriteOutcome::Put(PutResponse { revision, prev_kv }))
            }
            WriteOp::Delete { key } => {
                check_key(key)?;
                let prev_kvs = self.delete(key, revision)?.into_iter().collect();
                let revision = revision.finish_request();
                Ok(WriteOutcome::Delete(DeleteResponse { revision, prev_kvs }))
            }
            WriteOp::DeletePrefix { prefix } => {
                check_prefix(prefix)?;
                let prev_kvs = self.delete_prefix(prefix, revision)?;
                let revision = revision.finish_request();
                Ok(WriteOutcome::Delete(DeleteResponse { revision, prev_kvs }))
            }
            WriteOp::Txn(txn) => self.txn(txn, revision).map(WriteOutcome::Txn),
            WriteOp::Compact(target) => {
                self.compact(*target, revision.committed)?;
                Ok(WriteOutcome::Compacted)
            }
            WriteOp::LeaseGrant(ttl) => {
                let grant = self.lease_grant(*ttl)?;
                effects.push(LeaseEffect::Start(grant.id, grant.ttl));
                Ok(WriteOutcome::LeaseGranted(grant))
            }
            WriteOp::LeaseRevoke(id) => {
                self.lease_revoke(*id, revision)?;
                effects.push(LeaseEffect::Forget(*id));
                Ok(WriteOutcome::LeaseRevoked(revision.committed))
            }
            WriteOp::ExpireLeases => {
                let expired = shared.leases.take_expired();
                for id in &expired {
                    match self.lease_revoke(*id, revision) {
                        Ok(()) => tracing::info!(lease = id, "lease expired; its keys are deleted"),
                        // Revoked earlier in this batch: nothing left to do.
                        Err(StoreError::LeaseNotFound(_)) => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(WriteOutcome::LeasesExpired(expired))
            }
        }
    }

    fn check_lease(&self, lease: Option<LeaseId>) -> Result<()> {
        match lease {
            Some(id) if self.leases.get(id)?.is_none() => Err(StoreError::LeaseNotFound(id)),
            _ => Ok(()),
        }
    }

    fn log_event(
        &mut self,
        revision: &mut RevisionCursor,
        kind: EventKind,
        kv: KeyValue,
        prev_kv: Option<KeyValue>,
    ) -> Result<()> {
        let key = (revision.pending(), revision.next_event_sequence());
        let event = WatchEvent { kind, kv, prev_kv };
        self.events
            .insert(key, schema::encode_event(&event).as_slice())?;
        Ok(())
    }

    /// Writes a key at the pending revision; returns its previous state.
    fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: Option<LeaseId>,
        revision: &mut RevisionCursor,
    ) -> Result<Option<KeyValue>> {
        let prev = schema::get_kv(&self.kv, key)?;
        let at = revision.pending();
        let kv = KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: prev.as_ref().map_or(at, |prev| prev.create_revision),
            mod_revision: at,
            version: prev.as_ref().map_or(1, |prev| prev.version + 1),
            lease,
        };
        self.kv.insert(key, schema::encode_kv(&kv).as_slice())?;
        let prev_lease = prev.as_ref().and_then(|prev| prev.lease);
        if prev_lease != lease {
            if let Some(old) = prev_lease {
                self.lease_keys.remove(old, key)?;
            }
            if let Some(new) = lease {
                self.lease_keys.insert(new, key)?;
            }
        }
        self.log_event(revision, EventKind::Put, kv, prev.clone())?;
        Ok(prev)
    }

    /// Deletes a key at the pending revision; returns its last state if it existed.
    fn delete(&mut self, key: &[u8], revision: &mut RevisionCursor) -> Result<Option<KeyValue>> {
        let Some(prev) = schema::get_kv(&self.kv, key)? else {
            return Ok(None);
        };
        self.kv.remove(key)?;
        if let Some(lease) = prev.lease {
            self.lease_keys.remove(lease, key)?;
        }
        let tombstone = KeyValue {
            key: key.to_vec(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: revision.pending(),
            version: 0,
            lease: None,
        };
        self.log_event(revision, EventKind::Delete, tombstone, Some(prev.clone()))?;
        Ok(Some(prev))
    }

    fn delete_prefix(
        &mut self,
        prefix: &[u8],
        revision: &mut RevisionCursor,
    ) -> Result<Vec<KeyValue>> {
        // Collect first: the table cannot be mutated while a range over it is alive.
        let (doomed, _) = schema::range_kv(&self.kv, prefix, None)?;
        for kv in &doomed {
            self.delete(&kv.key, revision)?;
        }
        Ok(doomed)
    }

    fn get(&self, key: &[u8], at: Revision) -> Result<GetResponse> {
        Ok(GetResponse {
            revision: at,
            kv: schema::get_kv(&self.kv, key)?,
        })
    }

    fn txn(&mut self, txn: &Txn, revision: &mut RevisionCursor) -> Result<TxnResponse> {
        for compare in &txn.compares {
            check_key(&compare.key)?;
        }
        let mut succeeded = true;
        for compare in &txn.compares {
            let current = schema::get_kv(&self.kv, &compare.key)?;
            if !compare.holds(current.as_ref()) {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        self.check_txn_ops(ops)?;

        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op {
                TxnOp::Put { key, value, lease } => TxnOpResponse::Put(PutResponse {
                    revision: 0,
                    prev_kv: self.put(key, value, *lease, revision)?,
                }),
                TxnOp::Delete { key } => TxnOpResponse::Delete(DeleteResponse {
                    revision: 0,
                    prev_kvs: self.delete(key, revision)?.into_iter().collect(),
                }),
                TxnOp::DeletePrefix { prefix } => TxnOpResponse::Delete(DeleteResponse {
                    revision: 0,
                    prev_kvs: self.delete_prefix(prefix, revision)?,
                }),
                TxnOp::Get { key } => TxnOpResponse::Get(self.get(key, 0)?),
                TxnOp::Range { prefix, limit } => {
                    let (kvs, more) = schema::range_kv(&self.kv, prefix, *limit)?;
                    TxnOpResponse::Range(RangeResponse {
                        revision: 0,
                        kvs,
                        more,
                    })
                }
            };
            responses.push(response);
        }
        // Every op of a transaction reports the transaction's revision, as in etcd.
        let after = revision.finish_request();
        for response in &mut responses {
            match response {
                TxnOpResponse::Put(r) => r.revision = after,
                TxnOpResponse::Delete(r) => r.revision = after,
                TxnOpResponse::Get(r) => r.revision = after,
                TxnOpResponse::Range(r) => r.revision = after,
            }
        }
        Ok(TxnResponse {
            succeeded,
            revision: after,
            responses,
        })
    }

    /// Request-level validation of a txn branch, done before its first mutation. Like etcd,
    /// a key may be written at most once per transaction, since it gets one revision.
    fn check_txn_ops(&self, ops: &[TxnOp]) -> Result<()> {
        let mut put_keys = HashSet::new();
        let mut deleted_prefixes = Vec::new();
        for op in ops {
            match op {
                TxnOp::Put { key, value, lease } => {
                    check_key(key)?;
                    check_value(value)?;
                    self.check_lease(*lease)?;
                    if !put_keys.insert(key.as_slice()) {
                        return Err(StoreError::invalid("duplicate key given in txn request"));
                    }
                }
                TxnOp::Delete { key } => {
                    check_key(key)?;
                    deleted_prefixes.push(key.as_slice());
                }
                TxnOp::DeletePrefix { prefix } => {
                    check_prefix(prefix)?;
                    deleted_prefixes.push(prefix.as_slice());
                }
                TxnOp::Get { key } => check_key(key)?,
                TxnOp::Range { prefix, .. } => check_prefix(prefix)?,
            }
        }
        // Conservative: a delete's key is treated as a prefix, so this may reject a txn that
        // deletes "a" and puts "ab"; etcd rejects every put inside a deleted range too.
        if put_keys.iter().any(|key| {
            deleted_prefixes
                .iter()
                .any(|prefix| key.starts_with(prefix))
        }) {
            return Err(StoreError::invalid("txn puts a key that it also deletes"));
        }
        Ok(())
    }

    fn compact(&mut self, target: Revision, current: Revision) -> Result<()> {
        if target > current {
            return Err(StoreError::FutureRevision {
                requested: target,
                current,
            });
        }
        let compacted = schema::read_meta(&self.meta, META_COMPACT_REVISION)?.unwrap_or(0);
        if target <= compacted {
            return Err(StoreError::Compacted {
                requested: target,
                compact_revision: compacted,
            });
        }
        self.events.retain_in(..(target, 0), |_, _| false)?;
        self.meta.insert(META_COMPACT_REVISION, target)?;
        tracing::info!(revision = target, "store history compacted");
        Ok(())
    }

    fn lease_grant(&mut self, ttl: Duration) -> Result<LeaseGrant> {
        if ttl.is_zero() {
            return Err(StoreError::invalid("lease TTL must be positive"));
        }
        let id = schema::read_meta(&self.meta, META_NEXT_LEASE_ID)?
            .unwrap_or_else(schema::first_lease_id);
        self.leases.insert(id, schema::ttl_to_millis(ttl))?;
        self.meta.insert(META_NEXT_LEASE_ID, id + 1)?;
        Ok(LeaseGrant { id, ttl })
    }

    /// Deletes the lease and its keys, all at one revision.
    fn lease_revoke(&mut self, id: LeaseId, revision: &mut RevisionCursor) -> Result<()> {
        if self.leases.get(id)?.is_none() {
            return Err(StoreError::LeaseNotFound(id));
        }
        let mut keys = Vec::new();
        for key in self.lease_keys.get(id)? {
            keys.push(key?.value().to_vec());
        }
        for key in keys {
            self.delete(&key, revision)?;
        }
        self.lease_keys.remove_all(id)?;
        self.leases.remove(id)?;
        revision.finish_request();
        Ok(())
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::invalid("key must not be empty"));
    }
    check_prefix(key)
}

fn check_prefix(prefix: &[u8]) -> Result<()> {
    if prefix.len() > MAX_KEY_LEN {
        return Err(StoreError::invalid(format!(
            "key of {} bytes exceeds the {MAX_KEY_LEN}-byte limit",
            prefix.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::invalid(format!(
            "value of {} bytes exceeds the {MAX_VALUE_LEN}-byte limit",
            value.len()
        )));
    }
    Ok(())
}
