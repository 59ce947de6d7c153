//! Choosing the backend at run time: [`StoreBackend`], [`open`] and [`AnyStore`].

use std::path::Path;
use std::time::Duration;

use weft_store::{
    DeleteResponse, GetResponse, KvStore, LeaseGrant, LeaseId, LeaseTimeToLive, PutResponse,
    RangeResponse, RedbStore, Result, Revision, StoreOptions, Txn, TxnResponse, WatchStream,
};

use crate::etcd_store::{EtcdOptions, EtcdStore};

/// Where the controller keeps its state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded redb file in the data directory (one controller).
    #[default]
    Redb,
    /// An etcd cluster, e.g. `http://10.0.0.1:2379`; every key is stored under `prefix`
    /// (none by default) so several installations can share a cluster.
    Etcd {
        endpoints: Vec<String>,
        prefix: Option<String>,
    },
}

impl StoreBackend {
    /// etcd at `endpoints`, without a key prefix.
    pub fn etcd(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        StoreBackend::Etcd {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: None,
        }
    }

    /// `redb` or `etcd`.
    pub fn name(&self) -> &'static str {
        match self {
            StoreBackend::Redb => "redb",
            StoreBackend::Etcd { .. } => "etcd",
        }
    }
}

/// Per-backend tuning for [`open`]; each backend reads only its own part.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub redb: StoreOptions,
    pub etcd: EtcdOptions,
}

impl OpenOptions {
    /// Default options, with etcd's connect timeout set.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.etcd.connect_timeout = timeout;
        self
    }
}

/// Opens the store `backend` names: the redb file in `data_dir`, or a connection to etcd
/// (retried until `options.etcd.connect_timeout`; `data_dir` is then unused).
pub async fn open(
    backend: &StoreBackend,
    data_dir: &Path,
    options: OpenOptions,
) -> Result<AnyStore> {
    match backend {
        StoreBackend::Redb => Ok(AnyStore::Redb(RedbStore::open_with(
            data_dir,
            options.redb,
        )?)),
        StoreBackend::Etcd { endpoints, prefix } => {
            let prefix = prefix.clone().unwrap_or_default();
            Ok(AnyStore::Etcd(
                EtcdStore::connect(endpoints, prefix, options.etcd).await?,
            ))
        }
    }
}

/// Either store, chosen at run time; implements [`KvStore`] by dispatch.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Redb(RedbStore),
    Etcd(EtcdStore),
}

impl AnyStore {
    /// `redb` or `etcd`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            AnyStore::Redb(_) => "redb",
            AnyStore::Etcd(_) => "etcd",
        }
    }
}

impl From<RedbStore> for AnyStore {
    fn from(store: RedbStore) -> Self {
        AnyStore::Redb(store)
    }
}

impl From<EtcdStore> for AnyStore {
    fn from(store: EtcdStore) -> Self {
        AnyStore::Etcd(store)
    }
}

/// `dispatch!(self, s => s.call(..))` runs the call on whichever store `self` holds.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Redb($store) => $call.await,
            AnyStore::Etcd($store) => $call.await,
        }
    };
}

impl KvStore for AnyStore {
    async fn get(&self, key: &[u8]) -> Result<GetResponse> {
        dispatch!(self, s => s.get(key))
    }

    async fn range(&self, prefix: &[u8], limit: Option<usize>) -> Result<RangeResponse> {
        dispatch!(self, s => s.range(prefix, limit))
    }

    async fn put(&self, key: &[u8], value: &[u8], lease: Option<LeaseId>) -> Result<PutResponse> {
        dispatch!(self, s => s.put(key, value, lease))
    }

    async fn delete(&self, key: &[u8]) -> Result<DeleteResponse> {
        dispatch!(self, s => s.delete(key))
    }

    async fn delete_prefix(&self, prefix: &[u8]) -> Result<DeleteResponse> {
        dispatch!(self, s => s.delete_prefix(prefix))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        dispatch!(self, s => s.txn(txn))
    }

    async fn watch(&self, prefix: &[u8], start_revision: Option<Revision>) -> Result<WatchStream> {
        dispatch!(self, s => s.watch(prefix, start_revision))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        dispatch!(self, s => s.compact(revision))
    }

    async fn current_revision(&self) -> Result<Revision> {
        dispatch!(self, s => s.current_revision())
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseGrant> {
        dispatch!(self, s => s.lease_grant(ttl))
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration> {
        dispatch!(self, s => s.lease_keep_alive(id))
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision> {
        dispatch!(self, s => s.lease_revoke(id))
    }

    async fn lease_time_to_live(&self, id: LeaseId) -> Result<Option<LeaseTimeToLive>> {
        dispatch!(self, s => s.lease_time_to_live(id))
    }
}
