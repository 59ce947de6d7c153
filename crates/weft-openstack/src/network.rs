//! Neutron v2.0: networks and subnets over weft's model (ACI ML2's mapping).
//!
//! A network is an EPG with its bridge domain. Networks made here live in the project's
//! tenant as EPG `net-<8 hex>` in application profile `openstack`, with a bridge domain
//! of the same name in VRF `openstack` (both created with the tenant when missing); every
//! other EPG of the tenant (made with `weft apply`) is a network too. A subnet is a subnet
//! of the network's bridge domain; its gateway is weft's anycast gateway. IDs are derived
//! from the weft object's path ([`crate::derived_uuid`]); Neutron-only attributes (name,
//! description, DNS servers, host routes) are kept by ID under `/weft/openstack/ids/`.

use crate::error::NeutronError;
use crate::resource::{
    APP_PROFILE, Adapter, Annotated, Answer, Collection, Removable, Removal, Standard, VRF, caller,
    empty_or_null, finish_create, metas, only, project_tenant, required, resource, strings,
    target_project, text, visible_tenants,
};
use crate::{Caller, Controller, OpenStack, derived_uuid};
use axum::extract::State;
use axum::http::HeaderMap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use weft_model::{BridgeDomain, Epg, Subnet, Tenant};
use weft_store::KvStore;

/// The name prefix of networks made through Neutron.
pub(crate) const NET_PREFIX: &str = "net-";
/// DNS servers and host routes a subnet may have (Neutron's defaults).
const MAX_DNS_NAMESERVERS: usize = 5;
const MAX_HOST_ROUTES: usize = 20;

// ---- the view: networks and subnets derived from the model ---------------------------

/// Neutron-only attributes of a network, by ID.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NetworkMeta {
    /// `tenant/app-profile/epg`.
    #[serde(default)]
    epg: String,
    #[serde(flatten)]
    std: Standard,
}

/// Neutron-only attributes of a subnet, by ID.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SubnetMeta {
    #[serde(default)]
    network_id: String,
    #[serde(flatten)]
    std: Standard,
    #[serde(default)]
    dns_nameservers: Vec<String>,
    #[serde(default)]
    host_routes: Vec<Value>,
    #[serde(default = "yes")]
    enable_dhcp: bool,
}

fn yes() -> bool {
    true
}

pub fn network_id(tenant: &str, ap: &str, epg: &str) -> String {
    derived_uuid(&format!("network:{tenant}/{ap}/{epg}"))
}

pub fn subnet_id(tenant: &str, bd: &str, cidr: &str) -> String {
    derived_uuid(&format!("subnet:{tenant}/{bd}/{cidr}"))
}

/// One network as the model has it.
#[derive(Debug, Clone)]
pub(crate) struct NetworkView {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) ap: String,
    pub(crate) epg: String,
    pub(crate) bd: String,
}

impl NetworkView {
    /// `tenant/app-profile/epg`, as endpoints name their EPG.
    pub(crate) fn epg_path(&self) -> String {
        format!("{}/{}/{}", self.tenant, self.ap, self.epg)
    }
}

/// One subnet as the model has it.
#[derive(Debug, Clone)]
pub(crate) struct SubnetView {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) bd: String,
    pub(crate) cidr: IpNet,
    pub(crate) gateway: IpAddr,
    /// The network it was made on, else the first whose bridge domain holds it.
    pub(crate) network_id: String,
}

/// Everything the caller may see, read once per request.
pub(crate) struct View {
    pub(crate) networks: Vec<NetworkView>,
    pub(crate) subnets: Vec<SubnetView>,
    pub(crate) tenants: BTreeMap<String, Tenant>,
    pub(crate) network_meta: BTreeMap<String, NetworkMeta>,
    pub(crate) subnet_meta: BTreeMap<String, SubnetMeta>,
}

pub(crate) async fn view<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
) -> Result<View, NeutronError> {
    let tenants = visible_tenants(a, who);
    let network_meta: BTreeMap<String, NetworkMeta> = metas(&a.store, "network").await?;
    let subnet_meta: BTreeMap<String, SubnetMeta> = metas(&a.store, "subnet").await?;
    let mut networks = Vec::new();
    let mut subnets = Vec::new();
    for (tname, tenant) in &tenants {
        let mut first_network_of_bd: BTreeMap<&str, String> = BTreeMap::new();
        for (ap_name, ap) in &tenant.app_profiles {
            for (epg_name, epg) in &ap.epgs {
                if !tenant.bridge_domains.contains_key(&epg.bridge_domain) {
                    continue;
                }
                let id = network_id(tname, ap_name, epg_name);
                first_network_of_bd
                    .entry(epg.bridge_domain.as_str())
                    .or_insert_with(|| id.clone());
                networks.push(NetworkView {
                    id,
                    tenant: tname.clone(),
                    ap: ap_name.clone(),
                    epg: epg_name.clone(),
                    bd: epg.bridge_domain.clone(),
                });
            }
        }
        for (bd_name, bd) in &tenant.bridge_domains {
            let Some(first) = first_network_of_bd.get(bd_name.as_str()) else {
                continue;
            };
            for (key, subnet) in &bd.subnets {
                let id = subnet_id(tname, bd_name, key);
                let network_id = subnet_meta
                    .get(&id)
                    .map(|m| m.network_id.clone())
                    .filter(|n| networks.iter().any(|v| v.id == *n && v.bd == *bd_name))
                    .unwrap_or_else(|| first.clone());
                subnets.push(SubnetView {
                    id,
                    tenant: tname.clone(),
                    bd: bd_name.clone(),
                    cidr: subnet.cidr,
                    gateway: subnet.gateway,
                    network_id,
                });
            }
        }
    }
    Ok(View {
        networks,
        subnets,
        tenants,
        network_meta,
        subnet_meta,
    })
}

pub(crate) fn network_not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "NetworkNotFound",
        format!("Network {id} could not be found."),
    )
}

fn subnet_not_found(id: &str) -> NeutronError {
    NeutronError::not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
}

impl View {
    pub(crate) fn network(&self, id: &str) -> Result<&NetworkView, NeutronError> {
        self.networks
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| network_not_found(id))
    }

    pub(crate) fn subnet(&self, id: &str) -> Result<&SubnetView, NeutronError> {
        self.subnets
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| subnet_not_found(id))
    }

    /// The tenant holding a network or subnet, to change.
    fn tenant(&self, name: &str, missing: NeutronError) -> Result<Tenant, NeutronError> {
        self.tenants.get(name).cloned().ok_or(missing)
    }

    /// A network's name as Neutron shows it (a Nova server's `addresses` key).
    pub(crate) fn network_name(&self, n: &NetworkView) -> String {
        self.network_meta
            .get(&n.id)
            .map_or_else(|| n.epg.clone(), |m| m.std.name.clone())
    }

    fn network_json(&self, n: &NetworkView) -> Value {
        let meta = self.network_meta.get(&n.id).map(|m| &m.std);
        let subnets: Vec<&str> = self
            .subnets
            .iter()
            .filter(|s| s.tenant == n.tenant && s.bd == n.bd)
            .map(|s| s.id.as_str())
            .collect();
        let item = json!({
            "id": n.id,
            "admin_state_up": true,
            "status": "ACTIVE",
            "subnets": subnets,
            "shared": false,
            "router:external": false,
            "port_security_enabled": true,
            "mtu": 1450,
            "availability_zone_hints": [],
            "availability_zones": [],
            "ipv4_address_scope": null,
            "ipv6_address_scope": null,
            "l2_adjacency": true,
            "weft:epg": n.epg_path(),
            "weft:bridge_domain": format!("{}/{}", n.tenant, n.bd),
        });
        Standard::show(meta, &n.epg, &n.tenant, item)
    }

    fn subnet_json(&self, s: &SubnetView) -> Value {
        let meta = self.subnet_meta.get(&s.id);
        let item = json!({
            "id": s.id,
            "network_id": s.network_id,
            "cidr": s.cidr.to_string(),
            "ip_version": if s.cidr.addr().is_ipv4() { 4 } else { 6 },
            "gateway_ip": s.gateway.to_string(),
            "allocation_pools": allocation_pools(s.cidr, s.gateway),
            "dns_nameservers": meta.map_or(Vec::new(), |m| m.dns_nameservers.clone()),
            "host_routes": meta.map_or(Vec::new(), |m| m.host_routes.clone()),
            "enable_dhcp": meta.is_none_or(|m| m.enable_dhcp),
            "ipv6_ra_mode": null,
            "ipv6_address_mode": null,
            "subnetpool_id": null,
            "service_types": [],
        });
        Standard::show(meta.map(|m| &m.std), "", &s.tenant, item)
    }
}

/// The networks collection.
pub(crate) struct Networks(View);

impl<S: KvStore + Clone, C: Controller> Collection<S, C> for Networks {
    const ONE: &'static str = "network";
    const PATH: &'static str = "networks";

    async fn read(a: &OpenStack<S, C>, who: &Caller) -> Result<Self, NeutronError> {
        view(a, who).await.map(Self)
    }

    fn items(&self) -> Vec<Value> {
        self.0
            .networks
            .iter()
            .map(|n| self.0.network_json(n))
            .collect()
    }

    fn item(&self, id: &str) -> Result<Value, NeutronError> {
        self.0.network(id).map(|n| self.0.network_json(n))
    }
}

impl<S: KvStore + Clone, C: Controller> Annotated<S, C> for Networks {
    const KIND: &'static str = "network";
    const UPDATABLE: &'static [&'static str] = &[
        "name",
        "description",
        "admin_state_up",
        "shared",
        "router:external",
        "port_security_enabled",
    ];
    type Meta = NetworkMeta;

    fn updated(&self, id: &str, object: &Map<String, Value>) -> Result<NetworkMeta, NeutronError> {
        network_flags(object)?;
        let n = self.0.network(id)?;
        let mut meta = self
            .0
            .network_meta
            .get(id)
            .cloned()
            .unwrap_or_else(|| NetworkMeta {
                epg: n.epg_path(),
                std: Standard::named(&n.epg),
            });
        meta.std.update(object)?;
        Ok(meta)
    }
}

impl<S: KvStore + Clone, C: Controller> Removable<S, C> for Networks {
    fn removal(&self, a: &OpenStack<S, C>, id: &str) -> Result<Removal, NeutronError> {
        let v = &self.0;
        let n = v.network(id)?;
        let path = n.epg_path();
        if crate::router::network_on_a_router(v, n)
            || a.controller
                .endpoints(&n.tenant)
                .iter()
                .any(|e| e.epg == path)
            || a.controller.apps(&n.tenant).iter().any(|app| {
                app.spec.epg.to_string() == path
                    || app.spec.networks.iter().any(|n| n.epg.to_string() == path)
            })
        {
            return Err(NeutronError::conflict(
                "NetworkInUse",
                format!(
                    "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
                ),
            ));
        }
        let mut tenant = v.tenant(&n.tenant, network_not_found(id))?;
        if let Some(ap) = tenant.app_profiles.get_mut(&n.ap) {
            ap.epgs.remove(&n.epg);
        }
        let bd_used = tenant
            .app_profiles
            .values()
            .any(|ap| ap.epgs.values().any(|e| e.bridge_domain == n.bd));
        let also = if bd_used {
            Vec::new()
        } else {
            tenant.bridge_domains.remove(&n.bd);
            v.subnets
                .iter()
                .filter(|s| s.tenant == n.tenant && s.bd == n.bd)
                .map(|s| ("subnet", s.id.clone()))
                .collect()
        };
        Ok(Removal {
            tenant_name: n.tenant.clone(),
            tenant,
            also,
        })
    }
}

/// The subnets collection.
pub(crate) struct Subnets(View);

impl<S: KvStore + Clone, C: Controller> Collection<S, C> for Subnets {
    const ONE: &'static str = "subnet";
    const PATH: &'static str = "subnets";

    async fn read(a: &OpenStack<S, C>, who: &Caller) -> Result<Self, NeutronError> {
        view(a, who).await.map(Self)
    }

    fn items(&self) -> Vec<Value> {
        self.0
            .subnets
            .iter()
            .map(|s| self.0.subnet_json(s))
            .collect()
    }

    fn item(&self, id: &str) -> Result<Value, NeutronError> {
        self.0.subnet(id).map(|s| self.0.subnet_json(s))
    }
}

impl<S: KvStore + Clone, C: Controller> Annotated<S, C> for Subnets {
    const KIND: &'static str = "subnet";
    const UPDATABLE: &'static [&'static str] = &[
        "name",
        "description",
        "dns_nameservers",
        "host_routes",
        "enable_dhcp",
        "gateway_ip",
        "allocation_pools",
    ];
    type Meta = SubnetMeta;

    fn updated(&self, id: &str, object: &Map<String, Value>) -> Result<SubnetMeta, NeutronError> {
        empty_or_null(object, "allocation_pools")?;
        let dns = dns_nameservers(object)?;
        let routes = host_routes(object)?;
        let s = self.0.subnet(id)?;
        if let Some(g) = object.get("gateway_ip")
            && g.as_str() != Some(s.gateway.to_string().as_str())
        {
            return Err(NeutronError::bad_request(
                "changing gateway_ip is not supported by weft yet",
            ));
        }
        let mut meta = self
            .0
            .subnet_meta
            .get(id)
            .cloned()
            .unwrap_or_else(|| SubnetMeta {
                network_id: s.network_id.clone(),
                enable_dhcp: true,
                ..SubnetMeta::default()
            });
        meta.std.update(object)?;
        if let Some(dns) = dns {
            meta.dns_nameservers = dns;
        }
        if let Some(routes) = routes {
            meta.host_routes = routes;
        }
        if let Some(dhcp) = object.get("enable_dhcp").and_then(Value::as_bool) {
            meta.enable_dhcp = dhcp;
        }
        Ok(meta)
    }
}

impl<S: KvStore + Clone, C: Controller> Removable<S, C> for Subnets {
    fn removal(&self, a: &OpenStack<S, C>, id: &str) -> Result<Removal, NeutronError> {
        let v = &self.0;
        let s = v.subnet(id)?;
        let mut tenant = v.tenant(&s.tenant, subnet_not_found(id))?;
        let epgs_of_bd: Vec<String> = v
            .networks
            .iter()
            .filter(|n| n.tenant == s.tenant && n.bd == s.bd)
            .map(NetworkView::epg_path)
            .collect();
        let in_use = a
            .controller
            .endpoints(&s.tenant)
            .into_iter()
            .any(|e| epgs_of_bd.contains(&e.epg) && s.cidr.contains(&e.ip))
            || v.networks
                .iter()
                .find(|n| n.id == s.network_id)
                .is_some_and(|n| crate::router::network_on_a_router(v, n));
        if in_use {
            return Err(NeutronError::conflict(
                "SubnetInUse",
                format!(
                    "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
                ),
            ));
        }
        if let Some(bd) = tenant.bridge_domains.get_mut(&s.bd) {
            bd.subnets.retain(|_, sub| sub.cidr != s.cidr);
        }
        Ok(Removal {
            tenant_name: s.tenant.clone(),
            tenant,
            also: Vec::new(),
        })
    }
}

/// The addresses weft's IPAM hands out: the subnet's hosts without its network and
/// broadcast addresses and the gateway, as Neutron's pools around the gateway.
fn allocation_pools(cidr: IpNet, gateway: IpAddr) -> Vec<Value> {
    let first_last = match cidr {
        IpNet::V4(net) => {
            let lo = u32::from(net.network()).saturating_add(1);
            let hi = if net.prefix_len() < 31 {
                u32::from(net.broadcast()).saturating_sub(1)
            } else {
                u32::from(net.broadcast())
            };
            let gw = match gateway {
                IpAddr::V4(g) => u32::from(g),
                IpAddr::V6(_) => 0,
            };
            let v4 = |n: u32| IpAddr::V4(n.into()).to_string();
            pools(u128::from(lo), u128::from(hi), u128::from(gw))
                .into_iter()
                .map(|(a, b)| (v4(a as u32), v4(b as u32)))
                .collect::<Vec<_>>()
        }
        IpNet::V6(net) => {
            let lo = u128::from(net.network()).saturating_add(1);
            let hi = u128::from(net.broadcast());
            let gw = match gateway {
                IpAddr::V6(g) => u128::from(g),
                IpAddr::V4(_) => 0,
            };
            pools(lo, hi, gw)
                .into_iter()
                .map(|(a, b)| {
                    (
                        IpAddr::V6(a.into()).to_string(),
                        IpAddr::V6(b.into()).to_string(),
                    )
                })
                .collect()
        }
    };
    first_last
        .into_iter()
        .map(|(start, end)| json!({"start": start, "end": end}))
        .collect()
}

#[allow(clippy::cast_possible_truncation)]
fn pools(lo: u128, hi: u128, gw: u128) -> Vec<(u128, u128)> {
    if lo > hi {
        return Vec::new();
    }
    if gw < lo || gw > hi {
        return vec![(lo, hi)];
    }
    let mut out = Vec::new();
    if gw > lo {
        out.push((lo, gw - 1));
    }
    if gw < hi {
        out.push((gw + 1, hi));
    }
    out
}

// ---- writes -----------------------------------------------------------------------------

const NETWORK_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "port_security_enabled",
    "project_id",
    "tenant_id",
    "availability_zone_hints",
];

/// What a network create or update may say besides its name: weft's one value of each.
fn network_flags(object: &Map<String, Value>) -> Result<(), NeutronError> {
    only(object, "admin_state_up", true)?;
    only(object, "shared", false)?;
    only(object, "router:external", false)?;
    only(object, "port_security_enabled", true)?;
    empty_or_null(object, "availability_zone_hints")
}

pub(crate) async fn create_network<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(&body, "network", NETWORK_ATTRS)?;
    network_flags(&object)?;
    let std = Standard::created(&object)?;
    let tenant_name = target_project(&a, &who, &object)?;

    let _serialised = a.writes.lock().await;
    let mut tenant = project_tenant(&a, &tenant_name);
    let epg = loop {
        let candidate = format!("{NET_PREFIX}{}", crate::random_hex(4)?);
        let taken = tenant.bridge_domains.contains_key(&candidate)
            || tenant
                .app_profiles
                .get(APP_PROFILE)
                .is_some_and(|ap| ap.epgs.contains_key(&candidate));
        if !taken {
            break candidate;
        }
    };
    tenant.vrfs.entry(VRF.to_string()).or_default();
    tenant.bridge_domains.insert(
        epg.clone(),
        BridgeDomain {
            vrf: VRF.to_string(),
            ..BridgeDomain::default()
        },
    );
    tenant
        .app_profiles
        .entry(APP_PROFILE.to_string())
        .or_default()
        .epgs
        .insert(
            epg.clone(),
            Epg {
                bridge_domain: epg.clone(),
                ..Epg::default()
            },
        );
    let id = network_id(&tenant_name, APP_PROFILE, &epg);
    let meta = NetworkMeta {
        epg: format!("{tenant_name}/{APP_PROFILE}/{epg}"),
        std,
    };
    finish_create::<Networks, S, C>(&a, &who, &tenant_name, tenant, &id, &meta).await
}

const SUBNET_ATTRS: &[&str] = &[
    "name",
    "description",
    "network_id",
    "cidr",
    "ip_version",
    "gateway_ip",
    "dns_nameservers",
    "host_routes",
    "enable_dhcp",
    "allocation_pools",
    "subnetpool_id",
    "use_default_subnetpool",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "service_types",
    "project_id",
    "tenant_id",
];

/// Neutron's reading of a CIDR: a network address with its prefix, host bits clear.
fn parse_cidr(text: &str) -> Result<IpNet, NeutronError> {
    let net: IpNet = text.parse().map_err(|_| {
        NeutronError::invalid_input(format!(
            "Invalid input for cidr. Reason: '{text}' is not a valid IP subnet."
        ))
    })?;
    if net.trunc() != net {
        return Err(NeutronError::invalid_input(format!(
            "Invalid input for cidr. Reason: '{text}' isn't a recognized IP subnet cidr, '{}' is recommended.",
            net.trunc()
        )));
    }
    Ok(net)
}

fn first_host(net: IpNet) -> Option<IpAddr> {
    match net {
        IpNet::V4(n) => u32::from(n.network())
            .checked_add(1)
            .map(|x| IpAddr::V4(x.into())),
        IpNet::V6(n) => u128::from(n.network())
            .checked_add(1)
            .map(|x| IpAddr::V6(x.into())),
    }
    .filter(|ip| net.contains(ip))
}

fn dns_nameservers(object: &Map<String, Value>) -> Result<Option<Vec<String>>, NeutronError> {
    let Some(mut dns) = strings(object, "dns_nameservers", MAX_DNS_NAMESERVERS)? else {
        return Ok(None);
    };
    if let Some(bad) = dns.iter().find(|s| s.parse::<IpAddr>().is_err()) {
        return Err(NeutronError::invalid_input(format!(
            "Invalid input for dns_nameservers. Reason: '{bad}' is not a valid nameserver."
        )));
    }
    dns.dedup();
    Ok(Some(dns))
}

fn host_routes(object: &Map<String, Value>) -> Result<Option<Vec<Value>>, NeutronError> {
    match object.get("host_routes") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(r)) if r.len() <= MAX_HOST_ROUTES => Ok(Some(r.clone())),
        Some(_) => Err(NeutronError::invalid_input(format!(
            "Invalid input for host_routes. Reason: not a list of at most {MAX_HOST_ROUTES} routes."
        ))),
    }
}

pub(crate) async fn create_subnet<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(&body, "subnet", SUBNET_ATTRS)?;
    for key in [
        "allocation_pools",
        "subnetpool_id",
        "use_default_subnetpool",
        "ipv6_ra_mode",
        "ipv6_address_mode",
        "service_types",
    ] {
        empty_or_null(&object, key)?;
    }
    let network_id = required(&object, "network_id")?;
    let cidr_text = text(&object, "cidr")?.ok_or_else(|| {
        NeutronError::bad_request("a cidr is required (weft has no subnet pools)")
    })?;
    let cidr = parse_cidr(&cidr_text)?;
    match object.get("ip_version") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let version = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
            let wanted = if cidr.addr().is_ipv4() { 4 } else { 6 };
            if version != Some(wanted) {
                return Err(NeutronError::invalid_input(format!(
                    "Cidr {cidr} and IP version {v} do not match."
                )));
            }
        }
    }
    let gateway = match object.get("gateway_ip") {
        None => first_host(cidr).ok_or_else(|| {
            NeutronError::invalid_input(format!("subnet {cidr} has no address for a gateway"))
        })?,
        Some(Value::Null) => {
            return Err(NeutronError::bad_request(
                "gateway_ip null is not supported: every weft subnet has an anycast gateway",
            ));
        }
        Some(Value::String(g)) => {
            let ip: IpAddr = g.parse().map_err(|_| {
                NeutronError::invalid_input(format!(
                    "Invalid input for gateway_ip. Reason: '{g}' is not a valid IP address."
                ))
            })?;
            if !cidr.contains(&ip) {
                return Err(NeutronError::invalid_input(format!(
                    "Gateway IP {ip} conflicts with the subnet {cidr}: it is outside it."
                )));
            }
            ip
        }
        Some(other) => {
            return Err(NeutronError::invalid_input(format!(
                "Invalid input for gateway_ip. Reason: '{other}' is not a valid IP address."
            )));
        }
    };
    let meta = SubnetMeta {
        network_id: network_id.clone(),
        std: Standard::created(&object)?,
        dns_nameservers: dns_nameservers(&object)?.unwrap_or_default(),
        host_routes: host_routes(&object)?.unwrap_or_default(),
        enable_dhcp: object
            .get("enable_dhcp")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    };

    let _serialised = a.writes.lock().await;
    let v = view(&a, &who).await?;
    let n = v.network(&network_id)?.clone();
    if let Some(clash) = v
        .subnets
        .iter()
        .find(|s| s.tenant == n.tenant && s.bd == n.bd && overlaps(s.cidr, cidr))
    {
        return Err(NeutronError::invalid_input(format!(
            "Requested subnet with cidr: {cidr} for network: {network_id} overlaps with another subnet ({} {}).",
            clash.id, clash.cidr
        )));
    }
    let mut tenant = v.tenant(&n.tenant, network_not_found(&network_id))?;
    let bd = tenant
        .bridge_domains
        .get_mut(&n.bd)
        .ok_or_else(|| network_not_found(&network_id))?;
    bd.subnets.insert(
        cidr.to_string(),
        Subnet {
            cidr,
            gateway,
            loc: weft_model::Location::default(),
        },
    );
    let id = subnet_id(&n.tenant, &n.bd, &cidr.to_string());
    finish_create::<Subnets, S, C>(&a, &who, &n.tenant, tenant, &id, &meta).await
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_go_around_the_gateway() {
        let net: IpNet = "10.9.0.0/24".parse().unwrap();
        let gw: IpAddr = "10.9.0.1".parse().unwrap();
        assert_eq!(
            allocation_pools(net, gw),
            vec![json!({"start": "10.9.0.2", "end": "10.9.0.254"})]
        );
        let mid: IpAddr = "10.9.0.100".parse().unwrap();
        assert_eq!(allocation_pools(net, mid).len(), 2);
    }

    #[test]
    fn cidrs_as_neutron_reads_them() {
        assert!(parse_cidr("10.9.0.0/24").is_ok());
        let bad = parse_cidr("10.9.0.0/33").unwrap_err();
        assert_eq!(bad.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            bad.message.contains("is not a valid IP subnet"),
            "{}",
            bad.message
        );
        assert!(
            parse_cidr("10.9.0.5/24")
                .unwrap_err()
                .message
                .contains("10.9.0.0/24")
        );
        assert_eq!(
            first_host("10.9.0.0/24".parse().unwrap()),
            "10.9.0.1".parse().ok()
        );
    }

    #[test]
    fn metadata_written_before_the_skeleton_still_reads() {
        let old = br#"{"epg":"shop/openstack/net-1","name":"a","description":"d","created_ms":5}"#;
        let meta: NetworkMeta = serde_json::from_slice(old).unwrap();
        assert_eq!(
            (meta.std.name.as_str(), meta.std.description.as_str()),
            ("a", "d")
        );
        assert_eq!(meta.std.created_ms, 5);
        let sub: SubnetMeta = serde_json::from_slice(br#"{"network_id":"x","name":"s"}"#).unwrap();
        assert!(sub.enable_dhcp);
        assert_eq!(sub.std.name, "s");
    }
}
