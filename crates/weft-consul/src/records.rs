//! What the adapter keeps in weft's store, and what the controller hands it of weft's
//! own nodes and tasks. Keys: `/weft/consul/<kind>/<tenant>/...`, kind first, so that the
//! background loops read every session or every check without reading any KV entry.

use crate::KEY_ROOT;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The store key prefix of one kind of record of one tenant.
pub(crate) fn prefix(tenant: &str, kind: &str) -> String {
    format!("{KEY_ROOT}{kind}/{tenant}/")
}

/// Written by the background loop whenever what Consul clients see changes outside the
/// store (weft's task states and node liveness, probe results, TTL expiry), so that the
/// store revision, which is every answer's `X-Consul-Index`, moves with it.
pub(crate) const EPOCH_KEY: &str = "/weft/consul/epoch";

/// The store key prefix of one kind of record of every tenant.
pub(crate) fn kind_prefix(kind: &str) -> String {
    format!("{KEY_ROOT}{kind}/")
}

/// Marks that `session` holds the lock on `key`: found again when it is invalidated,
/// without reading the tenant's whole KV.
pub(crate) fn lock_key(tenant: &str, session: &str, key: &str) -> String {
    format!("{}{session}/{key}", prefix(tenant, "lock"))
}

pub(crate) fn kv_key(tenant: &str, key: &str) -> String {
    format!("{}{key}", prefix(tenant, "kv"))
}

pub(crate) fn session_key(tenant: &str, id: &str) -> String {
    format!("{}{id}", prefix(tenant, "session"))
}

pub(crate) fn node_key(tenant: &str, node: &str) -> String {
    format!("{}{node}", prefix(tenant, "node"))
}

pub(crate) fn service_key(tenant: &str, node: &str, id: &str) -> String {
    format!("{}{node}/{id}", prefix(tenant, "service"))
}

pub(crate) fn check_key(tenant: &str, node: &str, id: &str) -> String {
    format!("{}{node}/{id}", prefix(tenant, "check"))
}

/// One KV entry. The value is kept as bytes (base64 in the store's JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KvRecord {
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    #[serde(default)]
    pub flags: u64,
    /// The session holding the lock on this key.
    #[serde(default)]
    pub session: Option<String>,
    /// How many times the lock was acquired.
    #[serde(default)]
    pub lock_index: u64,
    /// After the holding session was invalidated, no session may acquire before this
    /// (Consul's lock-delay), in ms since the epoch.
    #[serde(default)]
    pub lock_delay_until_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Behavior {
    Release,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay_ms: u64,
    pub behavior: Behavior,
    pub ttl_ms: Option<u64>,
    /// Invalidated when not renewed by then (ms since the epoch).
    pub expires_ms: Option<u64>,
    pub node_checks: Vec<String>,
    pub service_checks: Vec<Value>,
}

/// A node registered through the catalog API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub node: String,
    pub id: String,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
}

/// A service instance registered through the catalog or agent API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServiceRecord {
    pub id: String,
    pub service: String,
    pub node: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub kind: String,
    /// As Consul answers it: `{"lan": {"Address": ..., "Port": ...}}`.
    pub tagged_addresses: BTreeMap<String, Value>,
    pub enable_tag_override: bool,
    pub proxy: Option<Value>,
    pub connect: Option<Value>,
    pub locality: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passing,
    Warning,
    Critical,
    Maintenance,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passing => "passing",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::Maintenance => "maintenance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passing" => Some(Self::Passing),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            "maintenance" => Some(Self::Maintenance),
            _ => None,
        }
    }
}

/// How a check decides its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub(crate) enum Probe {
    /// Set by the client (`agent/check/pass`) or by the catalog registration.
    None,
    /// Critical unless updated within `ttl_ms`.
    Ttl { ttl_ms: u64 },
    Http {
        url: String,
        interval_ms: u64,
        timeout_ms: u64,
        method: String,
    },
    Tcp {
        address: String,
        interval_ms: u64,
        timeout_ms: u64,
    },
    /// Registered, never run: weft does not run commands on behalf of the API.
    Script { args: Vec<String>, interval_ms: u64 },
}

impl Probe {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::None => "",
            Self::Ttl { .. } => "ttl",
            Self::Http { .. } => "http",
            Self::Tcp { .. } => "tcp",
            Self::Script { .. } => "script",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CheckRecord {
    pub check_id: String,
    pub name: String,
    pub node: String,
    pub service_id: String,
    pub service_name: String,
    pub status: Status,
    pub notes: String,
    pub output: String,
    pub probe: Probe,
    /// When the status was last set by a client (TTL checks count from here).
    pub updated_ms: u64,
    /// Consul's `DeregisterCriticalServiceAfter`: the check's service is deregistered
    /// once the check has been critical this long.
    #[serde(default)]
    pub deregister_after_ms: Option<u64>,
}

/// One of weft's nodes, as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeftNode {
    pub name: String,
    pub address: IpAddr,
    /// Whether the node's agent is heartbeating: its `serfHealth` check.
    pub alive: bool,
}

/// A running task of one of weft's apps: an instance of the app's service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeftInstance {
    /// The app's id: the service name.
    pub service: String,
    /// The task's id: the instance id.
    pub id: String,
    pub node: String,
    pub address: IpAddr,
    /// The service's port: the app's first named port.
    pub port: u16,
    /// Every named port of the app, shown as a tagged address each.
    pub ports: BTreeMap<String, u16>,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub health: InstanceHealth,
}

/// weft's own verdict on a task: running and healthy, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHealth {
    pub status: Status,
    pub output: String,
}

/// Base64 for byte fields of stored records.
mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
