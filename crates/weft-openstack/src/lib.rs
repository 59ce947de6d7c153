//! OpenStack's identity (Keystone v3 and v2.0) and networking (Neutron v2.0) APIs, as a
//! thin adapter over weft's policy model and store.
//!
//! weft stays the single source of truth. A Keystone project is a weft tenant; a token
//! is a weft tenant token with an expiry, minted and revoked by the controller
//! ([`Controller`]), so it works on weft's own API too. A Neutron network is an EPG with
//! its bridge domain; a subnet is a subnet of that bridge domain, its gateway weft's
//! anycast gateway. A router is a contract the EPGs of its subnets' networks provide and
//! consume; a port is a weft endpoint placed on its `binding:host_id`, with its port
//! security and security groups; a security group (and its rules) is a security group of
//! the project's tenant. Every network, subnet, router and security group write is a
//! whole-tenant change through the controller's admission (validated and compiled whole,
//! or refused with nothing changed). What the model has no place for is kept in weft's
//! store under `/weft/openstack/`: users (salted password hashes), token metadata (who,
//! when), and the Neutron-only attributes of each object (name, description, DNS
//! servers) by its UUID. UUIDs are derived from the weft object's path, so they are
//! stable, and an object made with `weft apply` has one too.
//!
//! One listener serves every service under a path prefix: identity at `/` and
//! `/identity`, networking at `/network`; the catalog points there.

mod compute;
mod error;
mod flavor;
mod hypervisor;
mod identity;
mod image;
mod network;
mod neutron;
mod port;
mod query;
mod resource;
mod router;
mod security_group;
mod server_action;
mod time;

pub use error::{GlanceError, KeystoneError, NeutronError, NovaError, OpenStackError};
pub use flavor::{Flavor, builtin_flavors};
pub use security_group::{security_group_id, security_group_rule_id};

use axum::Router;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use weft_model::Tenant;
use weft_store::KvStore;

/// Where every key of this adapter lives in weft's store.
pub const KEY_ROOT: &str = "/weft/openstack/";

/// How the adapter presents itself.
#[derive(Debug, Clone)]
pub struct OpenStackConfig {
    /// The listener's base URL as clients reach it (`http://127.0.0.1:5000`): the catalog's
    /// URLs and pagination links start with it.
    pub public_url: String,
    pub region: String,
    /// How long an issued token lives, in milliseconds.
    pub token_ttl_ms: u64,
    /// Fixed tokens (`TOKEN` → tenant) accepted without Keystone, for tests.
    pub static_tokens: Vec<(String, String)>,
}

impl OpenStackConfig {
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into().trim_end_matches('/').to_string(),
            region: "RegionOne".into(),
            token_ttl_ms: 3_600_000,
            static_tokens: Vec::new(),
        }
    }
}

/// Who a token acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// weft's admin token: every project.
    Admin,
    /// One tenant (project).
    Tenant(String),
}

impl Caller {
    pub fn may(&self, tenant: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Tenant(own) => own == tenant,
        }
    }
}

/// An endpoint of weft's model, as a Neutron port would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeftEndpoint {
    pub name: String,
    /// `tenant/app-profile/epg`.
    pub epg: String,
    pub ip: IpAddr,
    /// The node it is placed on (Neutron's `binding:host_id`).
    pub node: String,
    pub mac: [u8; 6],
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Anti-spoofing on (Neutron's `port_security_enabled`).
    pub port_security: bool,
    /// Names of security groups of its tenant; `None`: contracts alone.
    pub security_groups: Option<Vec<String>>,
    /// Its port and policy are installed on its node (Neutron's `ACTIVE`).
    pub ready: bool,
}

/// An address (and optionally a MAC) an endpoint may also send from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPair {
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
}

/// An endpoint to create: weft's IPAM picks the address when `ip` is `None`, and the MAC
/// when `mac` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// 1 to 32 characters of `[a-z0-9-]`, unique across weft.
    pub name: String,
    /// `tenant/app-profile/epg`.
    pub epg: String,
    pub node: String,
    pub ip: Option<IpAddr>,
    pub mac: Option<[u8; 6]>,
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Anti-spoofing on.
    pub port_security: bool,
    /// Names of security groups of the EPG's tenant; `None`: contracts alone, `Some`
    /// (even empty): the groups' rules must admit traffic too.
    pub security_groups: Option<Vec<String>>,
}

/// What may change on a live endpoint; the fields given replace its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortUpdate {
    pub allowed_address_pairs: Option<Vec<AddressPair>>,
    pub port_security: Option<bool>,
    /// `Some(None)` takes the endpoint out of security groups.
    pub security_groups: Option<Option<Vec<String>>>,
}

impl PortUpdate {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Where a task is in its life, as its node reported it (or the controller says while
/// the node has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskPhase {
    /// Placed; waiting for its endpoint's policy or for its node to start it.
    Pending,
    Starting,
    Running,
    /// Exited or could not start; its agent tries again after a backoff.
    Failed,
    Stopping,
}

/// A task of an app, as a Nova server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeftTask {
    /// Also its endpoint's name.
    pub id: String,
    pub node: String,
    pub ip: IpAddr,
    pub mac: [u8; 6],
    pub phase: TaskPhase,
    /// Why it is pending or failed.
    pub message: Option<String>,
    pub restarts: u32,
    pub started_ms: Option<u64>,
    /// Reboots asked of it (`WEFT_BOOT` in its environment; 0: never rebooted).
    pub boot: u32,
    /// Its interfaces in the app's networks after the first, in order (those whose
    /// endpoint exists).
    pub more_interfaces: Vec<TaskInterface>,
}

/// A task's interface in one of its app's networks after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInterface {
    /// `tenant/app-profile/epg`.
    pub epg: String,
    pub ip: IpAddr,
    pub mac: [u8; 6],
}

/// A registered node as Nova's hypervisor and host APIs show it: what it registered
/// and what the scheduler counts as allocated on it (every task placed there).
#[derive(Debug, Clone, PartialEq)]
pub struct WeftNode {
    pub name: String,
    pub underlay_ip: IpAddr,
    /// Heartbeat seen within the node deadline.
    pub ready: bool,
    pub cpus: f64,
    pub mem_mb: u64,
    pub disk_mb: u64,
    pub cpus_used: f64,
    pub mem_mb_used: u64,
    pub disk_mb_used: u64,
    /// Tasks placed on it.
    pub tasks: u32,
}

/// A Docker image one registered node's engine holds, as its agent reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDockerImage {
    pub node: String,
    /// `repo:tag` references.
    pub tags: Vec<String>,
    /// The engine's image id.
    pub id: String,
    pub size: u64,
    pub created_ms: u64,
}

/// An app of weft's model with its tasks (Nova's server is an app with one task).
#[derive(Debug, Clone, PartialEq)]
pub struct WeftApp {
    /// The spec, its id set.
    pub spec: weft_app::AppSpec,
    pub tasks: Vec<WeftTask>,
    /// Why tasks are not placed or not started (the scheduler's explanation).
    pub pending: Vec<String>,
}

/// What the controller does for the adapter: tokens, the current model, and admission.
pub trait Controller: Send + Sync + 'static {
    /// The caller a weft token stands for (an expired one stands for nobody).
    fn caller(&self, token: &str) -> Option<Caller>;
    /// Mints a weft tenant token valid until `expires_ms` (Unix milliseconds).
    fn issue_token(
        &self,
        tenant: &str,
        expires_ms: u64,
    ) -> impl Future<Output = Result<String, OpenStackError>> + Send;
    /// Revokes a weft token; false when it was not known.
    fn revoke_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<bool, OpenStackError>> + Send;
    /// The tenants of the current model.
    fn tenants(&self) -> Vec<String>;
    /// One tenant of the current model.
    fn tenant(&self, name: &str) -> Option<Tenant>;
    /// The endpoints of `tenant`.
    fn endpoints(&self, tenant: &str) -> Vec<WeftEndpoint>;
    /// The anycast gateway MAC of bridge domain `tenant/bd` in the compiled policy.
    fn gateway_mac(&self, tenant: &str, bd: &str) -> Option<[u8; 6]>;
    /// Creates one endpoint as weft's `POST /v1/endpoints` does (the EPG must exist, the
    /// node be registered, the address and MAC be free), or refuses with nothing written.
    fn create_endpoint(
        &self,
        spec: EndpointSpec,
    ) -> impl Future<Output = Result<WeftEndpoint, OpenStackError>> + Send;
    /// Deletes one endpoint of `tenant` and frees its address and MAC; false when there
    /// was none of that name in that tenant.
    fn delete_endpoint(
        &self,
        tenant: &str,
        name: &str,
    ) -> impl Future<Output = Result<bool, OpenStackError>> + Send;
    /// Changes an endpoint's allowed address pairs, port security or security groups as
    /// weft's `PATCH /v1/endpoints/{name}` does (the groups must exist in its tenant, and
    /// need port security), or refuses with nothing written.
    fn update_port(
        &self,
        tenant: &str,
        name: &str,
        change: PortUpdate,
    ) -> impl Future<Output = Result<WeftEndpoint, OpenStackError>> + Send;
    /// The registered nodes' names.
    fn nodes(&self) -> Vec<String>;
    /// The Docker images the registered nodes' engines hold, as their agents reported
    /// them (read from the store, so every controller answers the same).
    fn node_images(
        &self,
    ) -> impl Future<Output = Result<Vec<NodeDockerImage>, OpenStackError>> + Send;
    /// The apps whose EPG is in `tenant`, with their tasks.
    fn apps(&self, tenant: &str) -> Vec<WeftApp>;
    /// The registered nodes with their capacity as the scheduler sees it.
    fn node_capacity(&self) -> Vec<WeftNode>;
    /// Sets an app's instance count as `weft app scale` does with `who`'s token (not a
    /// new version; the scheduler places or removes tasks; scaling a privileged app up
    /// needs its tenant allowed, else [`OpenStackError::Forbidden`]); not found when
    /// `tenant` has no such app.
    fn scale_app(
        &self,
        who: &Caller,
        tenant: &str,
        id: &str,
        instances: u32,
    ) -> impl Future<Output = Result<(), OpenStackError>> + Send;
    /// Restarts one task in place (same task, node, address): its `WEFT_BOOT` goes up by
    /// one, so its node's agent sees its assignment changed and stops and starts it.
    fn reboot_task(
        &self,
        tenant: &str,
        task: &str,
    ) -> impl Future<Output = Result<(), OpenStackError>> + Send;
    /// The last `lines` lines (at most `max_bytes`, the end kept) a Docker task wrote to
    /// stdout and stderr, as its container's engine keeps them.
    fn console_output(
        &self,
        tenant: &str,
        task: &str,
        lines: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<String, OpenStackError>> + Send;
    /// Creates an app as `weft app apply` does with `who`'s token (validated with every
    /// stored app; its EPG must exist; a privileged app only in a tenant an admin allowed,
    /// else [`OpenStackError::Forbidden`]); 409 when an app of that id exists.
    fn create_app(
        &self,
        who: &Caller,
        spec: weft_app::AppSpec,
    ) -> impl Future<Output = Result<(), OpenStackError>> + Send;
    /// Whether an admin allowed `tenant` privileged tasks (weft's allow-list).
    fn privileged(&self, tenant: &str) -> bool;
    /// Allows or denies `tenant` privileged tasks (the caller is the admin).
    fn set_privileged(
        &self,
        tenant: &str,
        allowed: bool,
    ) -> impl Future<Output = Result<(), OpenStackError>> + Send;
    /// Deletes an app of `tenant` with its tasks and their endpoints in one transaction,
    /// as `weft app delete` does; false when there was none.
    fn delete_app(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<bool, OpenStackError>> + Send;
    /// Replaces (`Some`) or deletes (`None`) one tenant through admission: validated and
    /// compiled with the whole model, or refused with nothing written.
    fn commit(
        &self,
        name: &str,
        tenant: Option<Tenant>,
    ) -> impl Future<Output = Result<(), OpenStackError>> + Send;
}

/// The adapter: weft's store, the controller, and how it presents itself.
#[derive(Debug)]
pub struct OpenStack<S, C> {
    pub(crate) store: S,
    pub(crate) controller: C,
    pub(crate) config: OpenStackConfig,
    /// Serialises this adapter's tenant read-modify-writes.
    pub(crate) writes: tokio::sync::Mutex<()>,
}

impl<S: KvStore + Clone, C: Controller> OpenStack<S, C> {
    pub fn new(store: S, controller: C, config: OpenStackConfig) -> Self {
        Self {
            store,
            controller,
            config,
            writes: tokio::sync::Mutex::new(()),
        }
    }
}

/// Creates or replaces a Keystone user (an admin's act, through weft's own API): `name`
/// in the `Default` domain, whose password authenticates for `project` (a weft tenant).
/// Only a salted hash of the password is stored.
pub async fn create_user<S: KvStore>(
    store: &S,
    name: &str,
    password: &str,
    project: &str,
) -> Result<UserInfo, OpenStackError> {
    identity::create_user(store, name, password, project).await
}

/// A user as weft's API answers it (never the password or its hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub project: String,
    pub project_id: String,
}

/// Every route of the adapter.
pub fn router<S: KvStore + Clone, C: Controller>(adapter: Arc<OpenStack<S, C>>) -> Router {
    Router::new()
        .merge(identity::routes())
        .nest("/identity", identity::routes())
        .nest("/network", neutron::routes())
        .nest("/compute", compute::routes())
        .nest("/image", image::routes())
        // The unversioned roots with a trailing slash, as clients strip a version off.
        .route(
            "/compute/",
            axum::routing::get(compute::versions::<S, C>)
                .layer(axum::middleware::from_fn(compute::microversion)),
        )
        .route(
            "/image/",
            axum::routing::get(image::versions_multiple::<S, C>),
        )
        // gophercloud's discovery GETs the catalog's network URL with a slash (Terraform's
        // delayed_auth = false).
        .route("/network/", axum::routing::get(neutron::versions::<S, C>))
        .fallback(|| async { KeystoneError::NotFound("no such resource".into()) })
        .with_state(adapter)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A UUID derived from `name` (SHA-256, shaped as RFC 4122 version 5): the same weft
/// object always has the same OpenStack id.
pub fn derived_uuid(name: &str) -> String {
    let h = sha256_hex(&[b"weft-openstack:", name.as_bytes()]);
    let mut b: Vec<char> = h[..32].chars().collect();
    b[12] = '5';
    b[16] = match b[16] {
        '0' | '4' | '8' | 'c' => '8',
        '1' | '5' | '9' | 'd' => '9',
        '2' | '6' | 'a' | 'e' => 'a',
        _ => 'b',
    };
    let h: String = b.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Keystone's id of the project that is weft tenant `tenant` (32 hex digits, derived).
pub fn project_id(tenant: &str) -> String {
    sha256_hex(&[b"weft-openstack:project:", tenant.as_bytes()])[..32].to_string()
}

/// Random bytes as hex.
pub(crate) fn random_hex(len: usize) -> Result<String, OpenStackError> {
    let mut b = vec![0u8; len];
    getrandom::fill(&mut b).map_err(|e| OpenStackError::Internal(format!("no entropy: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A random UUID (version 4).
pub(crate) fn random_uuid() -> Result<String, OpenStackError> {
    let hex = random_hex(16)?;
    Ok(format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_uuids() {
        let a = derived_uuid("network:shop/os/net-1");
        assert_eq!(a, derived_uuid("network:shop/os/net-1"));
        assert_ne!(a, derived_uuid("network:shop/os/net-2"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(project_id("shop").len(), 32);
        assert_ne!(project_id("shop"), project_id("shop2"));
    }
}
