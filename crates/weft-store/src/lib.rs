//! weft's controller store: a revisioned key-value store with etcd's semantics.
//!
//! The controller keeps its desired state (policy objects, nodes, endpoints, apps) behind the
//! [`KvStore`] trait. [`RedbStore`] is the default: embedded, on a local redb file, crash-safe.
//! The trait mirrors etcd's v3 KV, Watch and Lease services (revisions, `create_revision` /
//! `mod_revision` / `version`, compare-and-swap transactions, watches from a past revision,
//! compaction, leases) so an etcd implementation can replace it without touching callers.
//!
//! # Async, with one blocking writer thread
//! The trait is async (native `async fn` in traits, every future `Send`): the controller is a
//! tokio program and an etcd client is async. [`RedbStore`] must run inside a tokio runtime.
//! redb's calls block, so:
//! - writes are queued to one dedicated writer thread, which applies whatever has queued up in
//!   one redb transaction (group commit; each write still gets its own revision) and answers
//!   through a oneshot channel once the commit returned;
//! - reads run on tokio's blocking pool, each in its own redb read transaction (MVCC snapshot),
//!   concurrently with the writer;
//! - watches are tokio tasks that read the persisted event log (see [`watch`]).
//!
//! # Durability
//! By default ([`SyncPolicy::EveryCommit`]) a write is acknowledged only after its redb commit
//! with `Durability::Immediate`, i.e. after fsync: an acknowledged write survives a process
//! kill or power loss. Concurrent writes share one fsync. [`SyncPolicy::Periodic`] trades that
//! guarantee for throughput and is meant for benchmarks and scratch stores only.
//!
//! # Leases
//! Leases and their TTLs are persisted; their deadlines live in memory and restart at open (as
//! in etcd). The store expires due leases by itself every
//! [`StoreOptions::lease_check_interval`]; the clock is injectable ([`ManualClock`]) and
//! [`RedbStore::expire_leases`] runs an expiry pass on demand.
//!
//! # Testing other crates
//! [`memory::open`] gives the same store on redb's in-memory backend.

mod error;
mod kv_store;
mod lease;
pub mod memory;
mod redb_store;
mod schema;
mod types;
pub mod watch;
mod writer;

pub use error::{Result, StoreError};
pub use kv_store::KvStore;
pub use lease::{Clock, ManualClock, SystemClock};
pub use redb_store::{DATA_FILE_NAME, RedbStore, StoreOptions, SyncPolicy};
pub use types::*;
pub use watch::WatchStream;
pub use writer::{MAX_KEY_LEN, MAX_VALUE_LEN};
