//! weft-store's behaviour tests, run against both backends: every test in `kv`, `lease` and
//! `watch` is instantiated once on a RedbStore in a temp dir and once on an EtcdStore on a
//! fresh, real single-member etcd (see `harness`). `etcd_only` covers what only etcd has:
//! reconnecting watches, connection failures, a 3-member cluster; `tls` covers TLS to etcd
//! and wrong endpoints.
//!
//! redb-only behaviour (injected clock, crash safety, the watcher's read chunks) stays in
//! crates/weft-store/tests.

// Helpers outside #[test] fns unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod harness;
mod etcd_only;
mod kv;
mod lease;
mod tls;
mod watch;
