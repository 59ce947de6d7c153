//! Consul's HTTP API, as a thin adapter over weft's store and catalog.
//!
//! weft stays the single source of truth: apps and their tasks are Consul services and
//! instances read live from the controller ([`Directory`]), never copied; what only
//! Consul clients create (KV entries, sessions, external registrations and their checks)
//! is stored in weft's store under `/weft/consul/<tenant>/`, so it is as durable as the
//! rest of weft's state and follows it onto etcd. Every request acts for one tenant,
//! from its token; nothing crosses tenants.
//!
//! What is served: `kv`, `session`, `catalog`, `health`, `agent` (services, checks, TTL
//! updates, maintenance, self, members), `status`. Blocking queries (`index`, `wait`)
//! use weft's store revision as `X-Consul-Index`. Not served (answered 404 or 405 by the
//! router): ACLs, Connect, config entries, prepared queries, events, snapshots, txn,
//! filter expressions (refused with 400 rather than ignored).

mod body;
mod catalog;
mod checks;
mod discovery;
mod error;
mod filter;
mod http;
mod kv;
mod policy;
mod quota;
mod records;
mod session;

pub use checks::CheckRunner;
pub use discovery::{AssignedProbe, DnsSource};
pub use error::ConsulError;
pub use http::router;
pub use policy::Decision;
pub use quota::Quota;
pub use records::{InstanceHealth, Status, WeftInstance, WeftNode};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use weft_store::KvStore;

/// Where every key of this adapter lives in weft's store.
pub const KEY_ROOT: &str = "/weft/consul/";

/// Whether a store key of this adapter changes what the catalog shows (registrations,
/// their checks, nodes, and the epoch that moves with probe results, TTL expiry and
/// weft's tasks): discovery views are rebuilt when one changes, not for KV or session
/// writes.
pub fn is_catalog_key(key: &[u8]) -> bool {
    ["service/", "check/", "node/", "epoch"].iter().any(|kind| {
        key.strip_prefix(KEY_ROOT.as_bytes())
            .is_some_and(|rest| rest.starts_with(kind.as_bytes()))
    })
}

/// How the adapter presents itself.
#[derive(Debug, Clone)]
pub struct ConsulConfig {
    pub datacenter: String,
    /// The node the controller's own agent endpoints stand for.
    pub node_name: String,
    /// The controller's address: the `consul` service's and the node's.
    pub advertise: SocketAddr,
    /// The tenant of requests without a token; `None` refuses them.
    pub anonymous_tenant: Option<String>,
    /// What one tenant may keep (KV, services, sessions).
    pub quota: Quota,
}

/// What the controller tells the adapter: who a token is, and weft's own nodes and
/// services at this moment.
pub trait Directory: Send + Sync + 'static {
    /// The tenant a token acts for. `None` is a request without a token.
    fn tenant(&self, token: Option<&str>) -> Result<String, ConsulError>;
    /// weft's nodes (every tenant sees the infrastructure).
    fn nodes(&self) -> Vec<WeftNode>;
    /// The running tasks of `tenant`'s apps, each an instance of its app's service.
    fn instances(&self, tenant: &str) -> Vec<WeftInstance>;
    /// Ticks whenever nodes or instances may have changed.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
    /// A digest of what `nodes` and every tenant's `instances` would answer now: when it
    /// changes, the adapter moves its index (see the epoch key).
    fn fingerprint(&self) -> u64;
    /// The endpoint that has address `source` in VRF `vrf` (addresses are unique per
    /// VRF only): who asks, as port security guarantees its source address.
    fn asker(&self, vrf: &str, source: IpAddr) -> Option<Asker>;
    /// Whether `asker` may open a connection to `address` (in the asker's VRF) on
    /// `port` (TCP; 0: ICMP echo), by the same evaluation `weft explain` uses, and why.
    /// `None` when `address` is none of weft's endpoints: policy cannot tell.
    fn may_reach(&self, asker: &Asker, address: IpAddr, port: u16) -> Option<Reach>;
    /// Where `tenant`'s endpoint with address `ip` lives, when exactly one of its
    /// endpoints has it: an HTTP or TCP check aimed at it is run by that node's agent,
    /// from that VRF's namespace, since the controller cannot reach it. `None` (the
    /// default): the controller runs the check itself.
    fn endpoint_at(&self, tenant: &str, ip: IpAddr) -> Option<EndpointSite> {
        let _ = (tenant, ip);
        None
    }
}

/// Where an endpoint lives: its node and its VRF (`tenant/vrf:name`, the path the
/// discovery view names VRFs by).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointSite {
    pub node: String,
    pub vrf: String,
}

/// An endpoint asking, from inside the fabric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asker {
    pub endpoint: String,
    pub tenant: String,
    /// `tenant/app-profile/epg`.
    pub epg: String,
    pub vrf: String,
}

/// A policy verdict for one instance, with its reason (explain's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub allowed: bool,
    pub why: String,
}

/// The adapter: weft's store, the controller's directory, and the check runner.
#[derive(Debug)]
pub struct Consul<S> {
    pub(crate) store: S,
    pub(crate) directory: Arc<dyn Directory>,
    pub(crate) config: ConsulConfig,
    pub(crate) checks: Arc<CheckRunner>,
    pub(crate) usage: quota::Usage,
}

impl<S: KvStore + Clone> Consul<S> {
    pub fn new(store: S, directory: Arc<dyn Directory>, config: ConsulConfig) -> Self {
        Self {
            store,
            directory,
            config,
            checks: Arc::new(CheckRunner::default()),
            usage: quota::Usage::default(),
        }
    }

    /// Runs HTTP and TCP checks and expires sessions until `stop` turns true.
    pub async fn run_background(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        checks::run(self, stop).await;
    }
}

impl std::fmt::Debug for dyn Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Directory")
    }
}

/// Milliseconds since the Unix epoch: the clock of TTLs, sessions and lock delays.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A random RFC 4122 version 4 UUID, as Consul's IDs are.
pub(crate) fn uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No entropy source: fall back to the clock, still unique per process.
        b[..8].copy_from_slice(&now_ms().to_be_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
