//! An in-memory store for other crates' unit tests.
//!
//! It is not a separate fake: it is [`RedbStore`] on redb's in-memory backend, so it has
//! exactly the semantics (revisions, txn, watch, leases) of the real store, minus the disk.

use std::path::PathBuf;

use redb::backends::InMemoryBackend;

use crate::error::Result;
use crate::redb_store::{RedbStore, StoreOptions};

/// Opens an empty in-memory store with the default options.
pub fn open() -> Result<RedbStore> {
    open_with(StoreOptions::default())
}

/// Opens an empty in-memory store; `options.sync` has no effect.
pub fn open_with(options: StoreOptions) -> Result<RedbStore> {
    let db = redb::Database::builder().create_with_backend(InMemoryBackend::new())?;
    RedbStore::start(db, options, PathBuf::from("<memory>"))
}
