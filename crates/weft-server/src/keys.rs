//! The store's key layout. Everything weft keeps lives under `/weft/`.
//!
//! Every policy commit rewrites [`ALLOCATION`], so its `mod_revision` is the version of the
//! whole policy: guarding on it serialises policy commits and lets endpoint creation notice
//! that the EPG or subnet it checked may have changed.

use std::net::IpAddr;
use weft_api::MacAddr;
use weft_model::ObjectPath;

pub const ROOT: &str = "/weft/";
pub const POLICY: &str = "/weft/policy/";
pub const ALLOCATION: &str = "/weft/policy/allocation";
pub const TENANTS: &str = "/weft/policy/tenants/";
pub const NODES: &str = "/weft/nodes/";
pub const ENDPOINTS: &str = "/weft/endpoints/";
pub const IPAM: &str = "/weft/ipam/";
pub const TOKENS: &str = "/weft/tokens/";

pub fn tenant(name: &str) -> String {
    format!("{TENANTS}{name}")
}

pub fn node(name: &str) -> String {
    format!("{NODES}{name}")
}

pub fn endpoint(name: &str) -> String {
    format!("{ENDPOINTS}{name}")
}

/// Claims one address inside one VRF (addresses are unique per VRF, not globally).
pub fn ip_claim(vrf: &ObjectPath, ip: IpAddr) -> String {
    format!("{IPAM}ip/{vrf}/{ip}")
}

/// Claims one MAC fabric-wide.
pub fn mac_claim(mac: MacAddr) -> String {
    format!("{IPAM}mac/{mac}")
}

pub fn token(hash: &str) -> String {
    format!("{TOKENS}{hash}")
}

/// What a client sees of a key in change events: the part after `/weft/`.
pub fn public_name(key: &str) -> &str {
    key.strip_prefix(ROOT).unwrap_or(key)
}

/// Keys whose changes are internal bookkeeping, not shown as change events.
pub fn is_internal(key: &str) -> bool {
    key.starts_with(IPAM) || key.starts_with(TOKENS)
}
