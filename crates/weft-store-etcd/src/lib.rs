//! weft's store on etcd, and the switch between the store backends.
//!
//! - [`EtcdStore`] implements [`weft_store::KvStore`] on etcd's v3 API (KV, Watch, Lease),
//!   so several controllers can share one replicated store.
//! - [`StoreBackend`], [`open`] and [`AnyStore`] let the controller pick redb or etcd at run
//!   time; [`AnyStore`] implements `KvStore` by dispatch.
//! - [`cluster`] runs real local etcd clusters (tests, benchmarks, `weft dev --ha`).
//!
//! # What maps to what
//! - Revisions are etcd's cluster revisions. A fresh etcd is at revision 1 (redb: 0), and
//!   with a key prefix the revision also moves with writes outside it.
//! - A write is acknowledged once etcd committed it (a quorum has it in its WAL, fsynced);
//!   every read is linearizable.
//! - Watches forward etcd watches and re-establish a broken one from the next undelivered
//!   revision; a compacted start revision ends the watch with `StoreError::Compacted`.
//! - Leases are etcd leases: TTLs round up to whole seconds (and to etcd's minimum);
//!   etcd expires them by itself.
//! - Connection failures and timeouts are `StoreError::Unavailable`, naming the endpoints.

pub mod any;
pub mod cluster;
mod etcd_store;
mod watch;

pub use any::{AnyStore, OpenOptions, StoreBackend, open};
pub use etcd_store::{EtcdOptions, EtcdStore, EtcdTls};
