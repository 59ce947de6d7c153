//! What a node's agent needs to answer discovery at its VRF gateways: per VRF, the
//! endpoints on the node that may ask, and per tenant the passing instances with the
//! asker classes each one is hidden from.
//!
//! The controller decides (health, tenancy, policy by `explain`'s evaluation); the agent
//! only encodes answers, so a node keeps answering with its last copy when the controller
//! is down. `GET` [`crate::paths::node_discovery`] is a blocking query on the view's
//! [`DiscoveryView::digest`].

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// The discovery a node serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryView {
    /// A digest of everything below: pass it as `?index=` to wait for a change.
    pub digest: u64,
    pub dns: DnsSettings,
    /// The controller's Consul API, where the agent sends what it cannot answer itself.
    #[serde(default)]
    pub consul: Option<SocketAddr>,
    pub vrfs: Vec<VrfDiscovery>,
    /// The HTTP and TCP checks this node's agent runs, each from its VRF's namespace
    /// (their target is an endpoint of that VRF on this node). Kept beside `vrfs`, not in
    /// [`VrfDiscovery`], so that a VRF's zone stays what DNS needs.
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
}

/// At most this many probes are assigned to one node's agent; the rest are left out of
/// the view (the controller logs it) and stay critical.
pub const MAX_NODE_PROBES: usize = 1000;

/// Outputs longer than this are cut (Consul's own limit on a check's output).
pub const MAX_PROBE_OUTPUT: usize = 4096;

/// One Consul check the agent runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProbeSpec {
    /// `tenant/vrf`: the VRF whose namespace the probe runs from.
    pub vrf: String,
    /// The VRF's numeric ID: its namespace on the node is `<prefix>-v<id>`.
    pub vrf_id: u32,
    pub tenant: String,
    /// The Consul node the check is registered on.
    pub node: String,
    pub check_id: String,
    pub kind: ProbeKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum ProbeKind {
    /// `GET` or `HEAD` (any other method is sent as is) of `url`: 2xx passing, 429
    /// warning, anything else critical.
    Http {
        url: String,
        method: String,
        timeout_ms: u64,
        interval_ms: u64,
    },
    /// A TCP connection to `address` (`ip:port`): passing when it opens.
    Tcp {
        address: String,
        timeout_ms: u64,
        interval_ms: u64,
    },
}

impl ProbeKind {
    pub fn interval_ms(&self) -> u64 {
        match self {
            Self::Http { interval_ms, .. } | Self::Tcp { interval_ms, .. } => *interval_ms,
        }
    }

    pub fn timeout_ms(&self) -> u64 {
        match self {
            Self::Http { timeout_ms, .. } | Self::Tcp { timeout_ms, .. } => *timeout_ms,
        }
    }
}

/// The last result of one check the agent runs (`PUT` [`crate::paths::node_probes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub tenant: String,
    /// The Consul node the check is registered on.
    pub node: String,
    pub check_id: String,
    /// `passing`, `warning` or `critical`.
    pub status: String,
    pub output: String,
}

/// What the controller made of a list of [`ProbeReport`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReportResponse {
    /// Reports of checks assigned to the reporting node, recorded.
    pub accepted: u32,
    /// Reports of checks that are not (or no longer) this node's, ignored.
    pub ignored: u32,
}

/// How names are served (the controller's `--dns-*` settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSettings {
    /// The domain, lowercase and without the trailing dot: `weft`.
    pub domain: String,
    /// Also answered, for existing Consul clients: `consul`.
    pub alt_domain: Option<String>,
    /// The datacenter label, optional in names (`web.service.dc1.weft`).
    pub datacenter: String,
    /// TTL of every answer, in seconds (0: never cached).
    pub ttl: u32,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            domain: "weft".into(),
            alt_domain: Some("consul".into()),
            datacenter: "dc1".into(),
            ttl: 0,
        }
    }
}

/// One VRF with endpoints on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrfDiscovery {
    /// `tenant/vrf`.
    pub vrf: String,
    /// The VRF's numeric ID: its namespace on the node is `<prefix>-v<id>`.
    pub vrf_id: u32,
    /// Whether answers are filtered by policy (the VRF's `dns_policy`).
    pub policy_aware: bool,
    /// Asker classes: one per EPG with an endpoint on this node (`tenant/ap/epg`).
    pub classes: Vec<String>,
    /// The node's endpoints in this VRF: who may ask, by source address.
    pub askers: Vec<DnsAsker>,
    /// What each tenant with askers here may find.
    pub tenants: Vec<TenantDiscovery>,
}

/// An endpoint that may ask, known by its address (which port security guarantees).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAsker {
    pub address: IpAddr,
    pub endpoint: String,
    /// Index into [`VrfDiscovery::tenants`].
    pub tenant: u32,
    /// Index into [`VrfDiscovery::classes`].
    pub class: u32,
}

/// One tenant's services and weft's nodes, as its endpoints may find them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDiscovery {
    pub tenant: String,
    /// A token for this tenant's Consul API requests from its tasks at the gateway.
    #[serde(default)]
    pub token: Option<String>,
    pub services: Vec<DnsService>,
    pub nodes: Vec<DnsNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsService {
    pub name: String,
    /// Passing instances only: one that is not passing is never answered.
    pub instances: Vec<DnsInstance>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsInstance {
    pub id: String,
    pub node: String,
    pub address: IpAddr,
    pub port: u16,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Asker classes that policy does not let reach it on `port` (sorted).
    #[serde(default)]
    pub hidden_from: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsNode {
    pub name: String,
    pub address: IpAddr,
}

/// `GET /v1/dns?name=&type=&from=`: what DNS at `from`'s gateway answers, and why each
/// instance of the service is shown or hidden (`weft dns query`, `weft explain --dns`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsQueryResponse {
    pub name: String,
    pub qtype: String,
    pub from: String,
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, ...
    pub rcode: String,
    /// Answer records in presentation format.
    pub answers: Vec<String>,
    /// Every instance of the service the name asks for, decided for `from`.
    pub decisions: Vec<DnsDecision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsDecision {
    pub id: String,
    pub node: String,
    pub address: String,
    pub port: u16,
    pub shown: bool,
    pub why: String,
}
