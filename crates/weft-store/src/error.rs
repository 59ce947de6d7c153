//! The store's error type. One enum for every operation, since an etcd implementation has the
//! same failure modes everywhere (I/O, closed, compacted, bad request); variants are grouped by
//! who is at fault so callers can decide to retry, fix the request, or give up.

use crate::types::{LeaseId, Revision};

/// Errors of [`KvStore`](crate::KvStore) operations.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // --- caller's request cannot be served as asked ---
    /// The requested revision's history was discarded by a compaction (etcd's `ErrCompacted`).
    /// Re-read the current state and watch from its revision.
    #[error("revision {requested} is compacted (oldest available: {compact_revision})")]
    Compacted {
        requested: Revision,
        compact_revision: Revision,
    },
    /// Compaction to a revision that has not happened yet (etcd's `ErrFutureRev`).
    #[error("revision {requested} is in the future (current: {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("lease {0} not found (expired, revoked or never granted)")]
    LeaseNotFound(LeaseId),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    // --- the store itself ---
    /// The store was closed, or its writer thread stopped after a fatal storage error.
    #[error("store is closed")]
    Closed,
    /// Stored bytes could not be decoded: the file was altered or a bug wrote garbage.
    #[error("corrupt record in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    /// redb failed (I/O error, full disk, corruption detected by redb, ...).
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
    /// The batch this write was committed in failed; nothing of it was applied. The cause is
    /// shared by every write of the batch.
    #[error("write failed: {0}")]
    WriteFailed(#[source] std::sync::Arc<StoreError>),
    /// A bug in this crate (an invariant did not hold); never the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },

    // --- a remote store (etcd) ---
    /// The store's servers cannot be reached or cannot serve (down, partitioned, no leader,
    /// timed out). Worth retrying later; `endpoints` are the servers that were tried.
    #[error("store unavailable at {}: {reason}", endpoints.join(","))]
    Unavailable {
        endpoints: Vec<String>,
        reason: String,
    },
    /// The remote store failed a request for a reason not covered by another variant.
    #[error("store server error: {0}")]
    Remote(String),
}

impl StoreError {
    pub(crate) fn corrupt(table: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            table,
            detail: detail.into(),
        }
    }

    /// True for errors raised before a write touched anything: the rest of its group-commit
    /// batch can still commit.
    pub(crate) fn is_request_error(&self) -> bool {
        matches!(
            self,
            StoreError::Compacted { .. }
                | StoreError::FutureRevision { .. }
                | StoreError::LeaseNotFound(_)
                | StoreError::InvalidArgument(_)
        )
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        StoreError::InvalidArgument(detail.into())
    }
}

// redb has one error type per call family; they all convert into `redb::Error`.
macro_rules! from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(err: $ty) -> Self {
                StoreError::Storage(err.into())
            }
        }
    )*};
}

from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
