//! [`RedbStore`]: the embedded [`KvStore`] on a local redb file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};
use tokio::sync::{oneshot, watch};

use crate::error::{Result, StoreError};
use crate::kv_store::KvStore;
use crate::lease::{Clock, LeaseDeadlines, SystemClock};
use crate::schema::{
    self, EVENTS, KV, LEASE_KEYS, LEASES, META, META_COMPACT_REVISION, META_REVISION,
    META_SCHEMA_VERSION, SCHEMA_VERSION,
};
use crate::types::{
    DeleteResponse, GetResponse, LeaseGrant, LeaseId, LeaseTimeToLive, PutResponse, RangeResponse,
    Revision, Txn, TxnResponse, WatchEvent,
};
use crate::watch::{WatchStream, spawn_watcher};
use crate::writer::{WriteOp, WriteOutcome, WriteRequest, Writer};

/// Name of the database file inside the directory given to [`RedbStore::open`].
pub const DATA_FILE_NAME: &str = "weft-store.redb";

/// When acknowledged writes reach stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every commit is fsynced before any of its writes is acknowledged (redb
    /// `Durability::Immediate`). Concurrent writers share one fsync (group commit). Default.
    EveryCommit,
    /// Commits are acknowledged before they are durable; an fsync happens at most this long
    /// after the first unsynced commit. Any crash, even of the process alone, loses the
    /// acknowledged writes of that window (redb keeps non-durable commits in memory only).
    /// For benchmarks and throwaway stores, not for the controller's state.
    Periodic(Duration),
}

/// Tuning knobs of [`RedbStore::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub sync: SyncPolicy,
    /// Time source for lease expiry.
    pub clock: Arc<dyn Clock>,
    /// How often the store expires due leases by itself; `None` leaves it to explicit
    /// [`RedbStore::expire_leases`] calls (deterministic tests).
    pub lease_check_interval: Option<Duration>,
    /// Most writes committed together in one redb transaction.
    pub max_batch: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sync: SyncPolicy::EveryCommit,
            clock: Arc::new(SystemClock),
            lease_check_interval: Some(Duration::from_millis(500)),
            max_batch: 256,
        }
    }
}

/// State shared by the async handles, the writer thread and watcher tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) db: Database,
    pub(crate) leases: LeaseDeadlines,
    /// Latest committed revision; watchers wait on it.
    pub(crate) committed: watch::Sender<Revision>,
}

impl Shared {
    fn read<T>(&self, read: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read()?;
        read(&txn)
    }

    fn current_revision(txn: &ReadTransaction) -> Result<Revision> {
        let meta = txn.open_table(META)?;
        Ok(schema::read_meta(&meta, META_REVISION)?.unwrap_or(0))
    }

    pub(crate) fn revisions(&self) -> Result<(Revision, Revision)> {
        self.read(|txn| {
            let meta = txn.open_table(META)?;
            Ok((
                schema::read_meta(&meta, META_REVISION)?.unwrap_or(0),
                schema::read_meta(&meta, META_COMPACT_REVISION)?.unwrap_or(0),
            ))
        })
    }

    fn get(&self, key: &[u8]) -> Result<GetResponse> {
        self.read(|txn| {
            let kv = txn.open_table(KV)?;
            Ok(GetResponse {
                revision: Self::current_revision(txn)?,
                kv: schema::get_kv(&kv, key)?,
            })
        })
    }

    fn range(&self, prefix: &[u8], limit: Option<usize>) -> Result<RangeResponse> {
        self.read(|txn| {
            let kv = txn.open_table(KV)?;
            let (kvs, more) = schema::range_kv(&kv, prefix, limit)?;
            Ok(RangeResponse {
                revision: Self::current_revision(txn)?,
                kvs,
                more,
            })
        })
    }

    /// Events of keys under `prefix` with revisions in `from..=to`, in order.
    pub(crate) fn read_events(
        &self,
        prefix: &[u8],
        from: Revision,
        to: Revision,
    ) -> Result<Vec<WatchEvent>> {
        self.read(|txn| {
            let meta = txn.open_table(META)?;
            let compacted = schema::read_meta(&meta, META_COMPACT_REVISION)?.unwrap_or(0);
            if from < compacted {
                return Err(StoreError::Compacted {
                    requested: from,
                    compact_revision: compacted,
                });
            }
            let events = txn.open_table(EVENTS)?;
            let mut matching = Vec::new();
            for entry in events.range((from, 0)..=(to, u32::MAX))? {
                let (_, bytes) = entry?;
                let bytes = bytes.value();
                if schema::event_key(bytes)?.starts_with(prefix) {
                    matching.push(schema::decode_event(bytes)?);
                }
            }
            Ok(matching)
        })
    }

    fn lease_keys(&self, id: LeaseId) -> Result<Vec<Vec<u8>>> {
        self.read(|txn| {
            let lease_keys = txn.open_multimap_table(LEASE_KEYS)?;
            let mut keys = Vec::new();
            for key in lease_keys.get(id)? {
                keys.push(key?.value().to_vec());
            }
            Ok(keys)
        })
    }
}

/// The embedded, crash-safe store. Cheap to clone; clones share one database and writer.
/// Dropping the last clone stops the writer thread (waiting for its in-flight commit) and
/// closes the file.
#[derive(Debug, Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue is the writer's signal to stop.
        self.requests.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }
}

impl RedbStore {
    /// Opens (or creates) the store in `dir`, with the default, fsync-per-commit options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, StoreOptions::default())
    }

    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DATA_FILE_NAME);
        let db = Database::builder().create(&path)?;
        tracing::info!(path = %path.display(), "store opened");
        Self::start(db, options, path)
    }

    /// Starts a store on an already opened database (file or memory backend).
    pub(crate) fn start(db: Database, options: StoreOptions, origin: PathBuf) -> Result<Self> {
        let recovered = initialize(&db)?;
        let leases = LeaseDeadlines::new(Arc::clone(&options.clock));
        for (id, ttl) in &recovered.leases {
            leases.start(*id, *ttl);
        }
        let (committed, _) = watch::channel(recovered.revision);
        let shared = Arc::new(Shared {
            db,
            leases,
            committed,
        });
        let (requests, queue) = mpsc::channel();
        let writer = Writer::new(Arc::clone(&shared), queue, recovered.revision, &options);
        let writer = std::thread::Builder::new()
            .name("weft-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| StoreError::Io {
                path: origin,
                source,
            })?;
        tracing::debug!(
            revision = recovered.revision,
            leases = recovered.leases.len(),
            "store recovered"
        );
        Ok(RedbStore {
            inner: Arc::new(Inner {
                shared,
                requests: Some(requests),
                writer: Some(writer),
            }),
        })
    }

    /// Revokes every lease whose TTL has run out by the store's clock, deleting their keys;
    /// returns the revoked ids. The store also does this by itself every
    /// [`StoreOptions::lease_check_interval`].
    pub async fn expire_leases(&self) -> Result<Vec<LeaseId>> {
        match self.write(WriteOp::ExpireLeases).await? {
            WriteOutcome::LeasesExpired(ids) => Ok(ids),
            other => Err(unexpected(&other)),
        }
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome> {
        let (reply, outcome) = oneshot::channel();
        let requests = self.inner.requests.as_ref().ok_or(StoreError::Closed)?;
        requests
            .send(WriteRequest { op, reply })
            .map_err(|_| StoreError::Closed)?;
        outcome.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read on the blocking pool: redb reads may hit the disk.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = Arc::clone(&self.inner.shared);
        tokio::task::spawn_blocking(move || read(&shared))
            .await
            .map_err(|err| StoreError::Internal(format!("store read task failed: {err}")))?
    }
}

fn unexpected(outcome: &WriteOutcome) -> StoreError {
    StoreError::Internal(format!(
        "writer answered with the wrong outcome: {outcome:?}"
    ))
}

/// What the store needs from disk at open.
struct Recovered {
    revision: Revision,
    leases: Vec<(LeaseId, Duration)>,
}

/// Creates missing tables, checks the schema version and reads revision and leases.
fn initialize(db: &Database) -> Result<Recovered> {
    let txn = db.begin_write()?;
    let recovered = {
        let mut meta = txn.open_table(META)?;
        match schema::read_meta(&meta, META_SCHEMA_VERSION)? {
            None => {
                meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::corrupt(
                    "meta",
                    format!("schema version {other}, this build reads {SCHEMA_VERSION}"),
                ));
            }
        }
        txn.open_table(KV)?;
        txn.open_table(EVENTS)?;
        txn.open_multimap_table(LEASE_KEYS)?;
        let leases_table = txn.open_table(LEASES)?;
        let mut leases = Vec::new();
        for entry in leases_table.iter()? {
            let (id, ttl_millis) = entry?;
            leases.push((id.value(), Duration::from_millis(ttl_millis.value())));
        }
        Recovered {
            revision: schema::read_meta(&meta, META_REVISION)?.unwrap_or(0),
            leases,
        }
    };
    txn.commit()?;
    Ok(recovered)
}

impl KvStore for RedbStore {
    async fn get(&self, key: &[u8]) -> Result<GetResponse> {
        let key = key.to_vec();
        self.read(move |shared| shared.get(&key)).await
    }

    async fn range(&self, prefix: &[u8], limit: Option<usize>) -> Result<RangeResponse> {
        let prefix = prefix.to_vec();
        self.read(move |shared| shared.range(&prefix, limit)).await
    }

    async fn put(&self, key: &[u8], value: &[u8], lease: Option<LeaseId>) -> Result<PutResponse> {
        let op = WriteOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
        };
        match self.write(op).await? {
            WriteOutcome::Put(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete(&self, key: &[u8]) -> Result<DeleteResponse> {
        match self.write(WriteOp::Delete { key: key.to_vec() }).await? {
            WriteOutcome::Delete(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_prefix(&self, prefix: &[u8]) -> Result<DeleteResponse> {
        let op = WriteOp::DeletePrefix {
            prefix: prefix.to_vec(),
        };
        match self.write(op).await? {
            WriteOutcome::Delete(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        match self.write(WriteOp::Txn(txn)).await? {
            WriteOutcome::Txn(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    async fn watch(&self, prefix: &[u8], start_revision: Option<Revision>) -> Result<WatchStream> {
        let shared = Arc::clone(&self.inner.shared);
        let committed = self.inner.shared.committed.subscribe();
        let start = match start_revision {
            // Everything up to the revision seen now is excluded; later commits are not.
            None => schema::next_revision(*committed.borrow()),
            Some(start) => {
                let (_, compacted) = self.read(|shared| shared.revisions()).await?;
                if start < compacted {
                    return Err(StoreError::Compacted {
                        requested: start,
                        compact_revision: compacted,
                    });
                }
                start.max(1)
            }
        };
        Ok(spawn_watcher(
            Arc::downgrade(&shared),
            committed,
            prefix.to_vec(),
            start,
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.write(WriteOp::Compact(revision)).await? {
            WriteOutcome::Compacted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.read(|shared| shared.revisions().map(|(current, _)| current))
            .await
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseGrant> {
        match self.write(WriteOp::LeaseGrant(ttl)).await? {
            WriteOutcome::LeaseGranted(grant) => Ok(grant),
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration> {
        self.inner
            .shared
            .leases
            .keep_alive(id)
            .ok_or(StoreError::LeaseNotFound(id))
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision> {
        match self.write(WriteOp::LeaseRevoke(id)).await? {
            WriteOutcome::LeaseRevoked(revision) => Ok(revision),
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_time_to_live(&self, id: LeaseId) -> Result<Option<LeaseTimeToLive>> {
        let Some((granted_ttl, remaining)) = self.inner.shared.leases.time_left(id) else {
            return Ok(None);
        };
        let keys = self.read(move |shared| shared.lease_keys(id)).await?;
        Ok(Some(LeaseTimeToLive {
            id,
            granted_ttl,
            remaining,
            keys,
        }))
    }
}
