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
/// App specs; an app's version is the `mod_revision` of its spec.
pub const APPS: &str = "/weft/apps/";
/// Instance counts, apart from the spec so that scaling is not a new version.
pub const APP_INSTANCES: &str = "/weft/app-instances/";
/// The last deployment of each app.
pub const DEPLOYMENTS: &str = "/weft/deployments/";
pub const TASKS: &str = "/weft/tasks/";
/// Tenants an admin allowed to run privileged tasks (`weft tenant privilege allow`);
/// written only through the admin's routes, read by app admission.
pub const PRIVILEGE: &str = "/weft/privilege/";
/// The controllers' own coordination (leader key, controller registry): never part of
/// the snapshot, never an event.
pub const CLUSTER: &str = "/weft/cluster/";
/// The cluster's admin and join tokens, shared by every controller.
pub const BOOTSTRAP: &str = "/weft/cluster/bootstrap";
/// Held by the leading controller, bound to its lease ([`crate::leader`]).
pub const LEADER: &str = "/weft/cluster/leader";
/// Every running controller, bound to its lease.
pub const CONTROLLERS: &str = "/weft/cluster/controllers/";

/// Per node: its last report, bound to a lease its heartbeats keep alive
/// ([`crate::live_share`]).
pub const LIVE: &str = "/weft/cluster/live/";

/// Per node: the Docker images its engine holds ([`weft_api::NodeImages`]), written when
/// the set changes and deleted with the node. Read by the OpenStack adapter (Glance
/// lists them); not part of the snapshot, so a change wakes no agent.
pub const NODE_IMAGES: &str = "/weft/cluster/node-images/";

pub fn node_images(node: &str) -> String {
    format!("{NODE_IMAGES}{node}")
}

pub fn live(node: &str) -> String {
    format!("{LIVE}{node}")
}

pub fn controller(id: &str) -> String {
    format!("{CONTROLLERS}{id}")
}

pub fn app(id: &str) -> String {
    format!("{APPS}{id}")
}

pub fn app_instances(id: &str) -> String {
    format!("{APP_INSTANCES}{id}")
}

pub fn deployment(app: &str) -> String {
    format!("{DEPLOYMENTS}{app}")
}

pub fn task(id: &str) -> String {
    format!("{TASKS}{id}")
}

pub fn privilege(tenant: &str) -> String {
    format!("{PRIVILEGE}{tenant}")
}

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
