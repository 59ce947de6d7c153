//! Request and response types, modelled on etcd's v3 API (`mvccpb.KeyValue`, `TxnRequest`, ...)
//! so that an etcd-backed [`KvStore`](crate::KvStore) can map them one to one.

use std::time::Duration;

/// The store-wide revision: it increases by exactly one per committed transaction that changed
/// at least one key (as in etcd, reads, no-op deletes and lease grants do not bump it).
/// A fresh store is at revision 0; the first write commits revision 1.
pub type Revision = i64;

/// Identifier of a lease. Never 0: etcd reserves 0 for "no lease".
pub type LeaseId = i64;

/// One key's current state, with etcd's `KeyValue` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Number of writes since creation; 1 right after creation. A deleted key's version is 0.
    pub version: i64,
    /// Lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// Result of [`KvStore::get`](crate::KvStore::get).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResponse {
    /// Store revision the read was served at.
    pub revision: Revision,
    pub kv: Option<KeyValue>,
}

/// Result of [`KvStore::range`](crate::KvStore::range) and of a [`TxnOp::Range`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResponse {
    /// Store revision the read was served at.
    pub revision: Revision,
    /// Matching keys in ascending key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// True if the limit cut the result short.
    pub more: bool,
}

/// Result of [`KvStore::put`](crate::KvStore::put).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResponse {
    /// Revision committed by this put.
    pub revision: Revision,
    /// The key's state before the put, if it existed.
    pub prev_kv: Option<KeyValue>,
}

/// Result of [`KvStore::delete`](crate::KvStore::delete) and
/// [`KvStore::delete_prefix`](crate::KvStore::delete_prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteResponse {
    /// Store revision after the delete (unchanged if nothing was deleted).
    pub revision: Revision,
    /// The deleted keys' last states, in key order.
    pub prev_kvs: Vec<KeyValue>,
}

impl DeleteResponse {
    pub fn deleted(&self) -> usize {
        self.prev_kvs.len()
    }
}

/// Comparison operator of a [`Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

impl CompareOp {
    pub(crate) fn holds<T: Ord + ?Sized>(self, actual: &T, expected: &T) -> bool {
        match self {
            CompareOp::Equal => actual == expected,
            CompareOp::NotEqual => actual != expected,
            CompareOp::Less => actual < expected,
            CompareOp::Greater => actual > expected,
        }
    }
}

/// What a [`Compare`] looks at. For a missing key, version, revisions and lease compare as 0,
/// and any `Value` comparison fails (etcd's rule: a missing value is not the empty value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    Value(Vec<u8>),
    Version(i64),
    CreateRevision(Revision),
    ModRevision(Revision),
    /// The key's lease id, 0 for none.
    Lease(LeaseId),
}

/// One guard of a [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn new(key: impl Into<Vec<u8>>, op: CompareOp, target: CompareTarget) -> Self {
        Compare {
            key: key.into(),
            op,
            target,
        }
    }

    pub fn value(key: impl Into<Vec<u8>>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self::new(key, op, CompareTarget::Value(value.into()))
    }

    pub fn version(key: impl Into<Vec<u8>>, op: CompareOp, version: i64) -> Self {
        Self::new(key, op, CompareTarget::Version(version))
    }

    pub fn create_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: Revision) -> Self {
        Self::new(key, op, CompareTarget::CreateRevision(revision))
    }

    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: Revision) -> Self {
        Self::new(key, op, CompareTarget::ModRevision(revision))
    }

    /// Holds if the key does not exist (etcd idiom: `version(key) == 0`).
    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Self::version(key, CompareOp::Equal, 0)
    }

    /// Evaluates the guard against the key's current state.
    pub(crate) fn holds(&self, current: Option<&KeyValue>) -> bool {
        let number = |pick: fn(&KeyValue) -> i64| current.map_or(0, pick);
        match &self.target {
            CompareTarget::Value(expected) => {
                current.is_some_and(|kv| self.op.holds(kv.value.as_slice(), expected.as_slice()))
            }
            CompareTarget::Version(expected) => self.op.holds(&number(|kv| kv.version), expected),
            CompareTarget::CreateRevision(expected) => {
                self.op.holds(&number(|kv| kv.create_revision), expected)
            }
            CompareTarget::ModRevision(expected) => {
                self.op.holds(&number(|kv| kv.mod_revision), expected)
            }
            CompareTarget::Lease(expected) => {
                self.op.holds(&number(|kv| kv.lease.unwrap_or(0)), expected)
            }
        }
    }
}

/// One operation of a [`Txn`] branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
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
    /// Reads one key; sees the writes of earlier ops in the same branch.
    Get {
        key: Vec<u8>,
    },
    /// Reads a prefix; sees the writes of earlier ops in the same branch.
    Range {
        prefix: Vec<u8>,
        limit: Option<usize>,
    },
}

impl TxnOp {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    pub fn put_with_lease(
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: LeaseId,
    ) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
            lease: Some(lease),
        }
    }

    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        TxnOp::Delete { key: key.into() }
    }

    pub fn delete_prefix(prefix: impl Into<Vec<u8>>) -> Self {
        TxnOp::DeletePrefix {
            prefix: prefix.into(),
        }
    }

    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        TxnOp::Get { key: key.into() }
    }

    pub fn range(prefix: impl Into<Vec<u8>>, limit: Option<usize>) -> Self {
        TxnOp::Range {
            prefix: prefix.into(),
            limit,
        }
    }
}

/// A mini-transaction: if every compare holds, run `success`, else `failure`; atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }

    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }
}

/// Per-op result of a [`Txn`], in the order of the executed branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResponse {
    Put(PutResponse),
    Delete(DeleteResponse),
    Get(GetResponse),
    Range(RangeResponse),
}

/// Result of [`KvStore::txn`](crate::KvStore::txn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (and `success` ran).
    pub succeeded: bool,
    /// Store revision after the transaction (unchanged if it wrote nothing).
    pub revision: Revision,
    pub responses: Vec<TxnOpResponse>,
}

/// Kind of a [`WatchEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change delivered by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// For a put: the new state. For a delete: the key with an empty value, version 0 and
    /// `mod_revision` set to the deleting revision (etcd's tombstone shape).
    pub kv: KeyValue,
    /// The key's state before this event, if it existed.
    pub prev_kv: Option<KeyValue>,
}

impl WatchEvent {
    /// Revision of the transaction that produced this event.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Result of [`KvStore::lease_grant`](crate::KvStore::lease_grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    pub id: LeaseId,
    pub ttl: Duration,
}

/// Result of [`KvStore::lease_time_to_live`](crate::KvStore::lease_time_to_live).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTimeToLive {
    pub id: LeaseId,
    /// TTL the lease was granted with.
    pub granted_ttl: Duration,
    /// Time left before the lease expires unless kept alive.
    pub remaining: Duration,
    /// Keys currently attached to the lease, in key order.
    pub keys: Vec<Vec<u8>>,
}
