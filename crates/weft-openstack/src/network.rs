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
use crate::query::ListQuery;
use crate::time::iso8601;
use crate::{Caller, Controller, KEY_ROOT, OpenStack, derived_uuid, now_ms, project_id};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use weft_model::{AppProfile, BridgeDomain, Epg, Subnet, Tenant, Vrf};
use weft_store::KvStore;

/// The application profile, VRF and name prefix of networks made through Neutron.
pub const APP_PROFILE: &str = "openstack";
pub const VRF: &str = "openstack";
pub(crate) const NET_PREFIX: &str = "net-";

pub(crate) type Adapter<S, C> = State<Arc<OpenStack<S, C>>>;
pub(crate) type Answer = Result<Response, NeutronError>;

pub fn routes<S: KvStore + Clone, C: Controller>() -> Router<Arc<OpenStack<S, C>>> {
    Router::new()
        .route("/", get(versions::<S, C>))
        .route("/v2.0", get(resources::<S, C>))
        .route("/v2.0/", get(resources::<S, C>))
        .route("/v2.0/extensions", get(extensions::<S, C>))
        .route("/v2.0/extensions/{alias}", get(extension::<S, C>))
        .route(
            "/v2.0/networks",
            get(list_networks::<S, C>).post(create_network::<S, C>),
        )
        .route(
            "/v2.0/networks/{id}",
            get(show_network::<S, C>)
                .put(update_network::<S, C>)
                .delete(delete_network::<S, C>),
        )
        .route(
            "/v2.0/subnets",
            get(list_subnets::<S, C>).post(create_subnet::<S, C>),
        )
        .route(
            "/v2.0/subnets/{id}",
            get(show_subnet::<S, C>)
                .put(update_subnet::<S, C>)
                .delete(delete_subnet::<S, C>),
        )
        .route(
            "/v2.0/routers",
            get(crate::router::list::<S, C>).post(crate::router::create::<S, C>),
        )
        .route(
            "/v2.0/routers/{id}",
            get(crate::router::show::<S, C>)
                .put(crate::router::update::<S, C>)
                .delete(crate::router::delete::<S, C>),
        )
        .route(
            "/v2.0/routers/{id}/add_router_interface",
            put(crate::router::add_interface::<S, C>),
        )
        .route(
            "/v2.0/routers/{id}/remove_router_interface",
            put(crate::router::remove_interface::<S, C>),
        )
        .route(
            "/v2.0/ports",
            get(crate::port::list::<S, C>).post(crate::port::create::<S, C>),
        )
        .route(
            "/v2.0/ports/{id}",
            get(crate::port::show::<S, C>)
                .put(crate::port::update::<S, C>)
                .delete(crate::port::delete::<S, C>),
        )
        .fallback(|| async {
            NeutronError::not_found(
                "HTTPNotFound",
                "The resource could not be found (weft serves networks, subnets, routers, ports and extensions).",
            )
        })
}

/// What the extensions list says: only what is really served.
const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
    ),
];

/// The caller a token stands for: a static token, or a weft token.
pub(crate) fn caller_of<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    token: &str,
) -> Option<Caller> {
    a.config
        .static_tokens
        .iter()
        .find(|(t, _)| t == token)
        .map(|(_, tenant)| Caller::Tenant(tenant.clone()))
        .or_else(|| a.controller.caller(token))
}

pub(crate) fn caller<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    headers: &HeaderMap,
) -> Result<Caller, NeutronError> {
    headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| caller_of(a, t))
        .ok_or_else(NeutronError::unauthorized)
}

pub(crate) fn network_url(public: &str) -> String {
    format!("{public}/network")
}

async fn versions<S: KvStore + Clone, C: Controller>(State(a): Adapter<S, C>) -> Json<Value> {
    Json(json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{}/v2.0/", network_url(&a.config.public_url))}],
    }]}))
}

async fn resources<S: KvStore + Clone, C: Controller>(State(a): Adapter<S, C>) -> Json<Value> {
    let base = format!("{}/v2.0", network_url(&a.config.public_url));
    let resources: Vec<Value> = [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("router", "routers"),
        ("port", "ports"),
    ]
    .iter()
    .map(|(one, many)| {
        json!({"name": one, "collection": many,
                   "links": [{"rel": "self", "href": format!("{base}/{many}")}]})
    })
    .collect();
    Json(json!({"resources": resources}))
}

fn extension_json(alias: &str, name: &str, description: &str) -> Value {
    json!({"alias": alias, "name": name, "description": description,
           "updated": "2017-01-01T00:00:00-00:00", "links": []})
}

async fn extensions<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    caller(&a, &headers)?;
    let all: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(alias, name, d)| extension_json(alias, name, d))
        .collect();
    Ok(Json(json!({"extensions": all})).into_response())
}

async fn extension<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(alias): Path<String>,
) -> Answer {
    caller(&a, &headers)?;
    EXTENSIONS
        .iter()
        .find(|(x, _, _)| *x == alias)
        .map(|(alias, name, d)| {
            Json(json!({"extension": extension_json(alias, name, d)})).into_response()
        })
        .ok_or_else(|| {
            NeutronError::not_found(
                "ExtensionNotFound",
                format!("Extension with alias {alias} does not exist"),
            )
        })
}

// ---- the view: networks and subnets derived from the model ---------------------------

/// Neutron-only attributes of a network, by ID.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NetworkMeta {
    /// `tenant/app-profile/epg`.
    epg: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    created_ms: u64,
}

/// Neutron-only attributes of a subnet, by ID.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SubnetMeta {
    network_id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    dns_nameservers: Vec<String>,
    #[serde(default)]
    host_routes: Vec<Value>,
    #[serde(default = "yes")]
    enable_dhcp: bool,
    #[serde(default)]
    created_ms: u64,
}

fn yes() -> bool {
    true
}

fn meta_key(kind: &str, id: &str) -> String {
    format!("{KEY_ROOT}ids/{kind}/{id}")
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

pub(crate) async fn metas<S: KvStore + Clone, T: for<'de> Deserialize<'de>>(
    store: &S,
    kind: &str,
) -> Result<BTreeMap<String, T>, NeutronError> {
    let prefix = format!("{KEY_ROOT}ids/{kind}/");
    let read = store
        .range(prefix.as_bytes(), None)
        .await
        .map_err(|e| NeutronError::from(crate::OpenStackError::from(e)))?;
    Ok(read
        .kvs
        .iter()
        .filter_map(|kv| {
            let key = String::from_utf8_lossy(&kv.key);
            let id = key.strip_prefix(&prefix)?.to_string();
            serde_json::from_slice(&kv.value).ok().map(|m| (id, m))
        })
        .collect())
}

pub(crate) async fn view<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
) -> Result<View, NeutronError> {
    let mut tenants = BTreeMap::new();
    for name in a.controller.tenants() {
        if who.may(&name)
            && let Some(t) = a.controller.tenant(&name)
        {
            tenants.insert(name, t);
        }
    }
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

impl View {
    pub(crate) fn network(&self, id: &str) -> Result<&NetworkView, NeutronError> {
        self.networks.iter().find(|n| n.id == id).ok_or_else(|| {
            NeutronError::not_found(
                "NetworkNotFound",
                format!("Network {id} could not be found."),
            )
        })
    }

    pub(crate) fn subnet(&self, id: &str) -> Result<&SubnetView, NeutronError> {
        self.subnets.iter().find(|s| s.id == id).ok_or_else(|| {
            NeutronError::not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
        })
    }

    fn network_json(&self, n: &NetworkView) -> Value {
        let meta = self.network_meta.get(&n.id);
        let project = project_id(&n.tenant);
        let subnets: Vec<&str> = self
            .subnets
            .iter()
            .filter(|s| s.tenant == n.tenant && s.bd == n.bd)
            .map(|s| s.id.as_str())
            .collect();
        let created = iso8601(meta.map_or(0, |m| m.created_ms));
        json!({
            "id": n.id,
            "name": meta.map_or(n.epg.as_str(), |m| m.name.as_str()),
            "description": meta.map_or("", |m| m.description.as_str()),
            "tenant_id": project,
            "project_id": project,
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
            "tags": [],
            "created_at": created,
            "updated_at": created,
            "revision_number": 0,
            "weft:epg": format!("{}/{}/{}", n.tenant, n.ap, n.epg),
            "weft:bridge_domain": format!("{}/{}", n.tenant, n.bd),
        })
    }

    fn subnet_json(&self, s: &SubnetView) -> Value {
        let meta = self.subnet_meta.get(&s.id);
        let project = project_id(&s.tenant);
        let created = iso8601(meta.map_or(0, |m| m.created_ms));
        json!({
            "id": s.id,
            "name": meta.map_or("", |m| m.name.as_str()),
            "description": meta.map_or("", |m| m.description.as_str()),
            "network_id": s.network_id,
            "tenant_id": project,
            "project_id": project,
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
            "tags": [],
            "created_at": created,
            "updated_at": created,
            "revision_number": 0,
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

pub(crate) fn list_answer(
    key: &str,
    items: Vec<Value>,
    pairs: Vec<(String, String)>,
    url: &str,
) -> Answer {
    let query = ListQuery::parse(pairs)?;
    let (items, links) = query.apply(items, url);
    let mut body = Map::new();
    body.insert(key.to_string(), Value::Array(items));
    if !links.is_empty() {
        body.insert(format!("{key}_links"), Value::Array(links));
    }
    Ok(Json(Value::Object(body)).into_response())
}

pub(crate) fn pairs_of(uri: &axum::http::Uri) -> Result<Vec<(String, String)>, NeutronError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| NeutronError::bad_request(format!("invalid query: {}", e.body_text())))
}

async fn list_networks<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Answer {
    let who = caller(&a, &headers)?;
    let v = view(&a, &who).await?;
    let items = v.networks.iter().map(|n| v.network_json(n)).collect();
    let url = format!("{}/v2.0/networks", network_url(&a.config.public_url));
    list_answer("networks", items, pairs_of(&uri)?, &url)
}

async fn show_network<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let v = view(&a, &who).await?;
    let n = v.network(&id)?;
    Ok(Json(json!({"network": v.network_json(n)})).into_response())
}

async fn list_subnets<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Answer {
    let who = caller(&a, &headers)?;
    let v = view(&a, &who).await?;
    let items = v.subnets.iter().map(|s| v.subnet_json(s)).collect();
    let url = format!("{}/v2.0/subnets", network_url(&a.config.public_url));
    list_answer("subnets", items, pairs_of(&uri)?, &url)
}

async fn show_subnet<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let v = view(&a, &who).await?;
    let s = v.subnet(&id)?;
    Ok(Json(json!({"subnet": v.subnet_json(s)})).into_response())
}

// ---- writes -----------------------------------------------------------------------------

/// The body's one resource object (`{"network": {...}}`), with unknown attributes refused
/// as Neutron refuses them.
pub(crate) fn resource(
    body: &[u8],
    key: &str,
    known: &[&str],
) -> Result<Map<String, Value>, NeutronError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| NeutronError::bad_request(format!("Malformed request body: {e}")))?;
    let Some(Value::Object(object)) = value.get(key).cloned() else {
        return Err(NeutronError::bad_request(format!(
            "Resource body required: a JSON object under \"{key}\""
        )));
    };
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        )));
    }
    Ok(object)
}

pub(crate) fn text(object: &Map<String, Value>, key: &str) -> Result<Option<String>, NeutronError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 255 => Ok(Some(s.clone())),
        Some(_) => Err(NeutronError::invalid_input(format!(
            "Invalid input for {key}. Reason: not a string of at most 255 characters."
        ))),
    }
}

/// A boolean attribute weft supports with one value only.
pub(crate) fn only(
    object: &Map<String, Value>,
    key: &str,
    supported: bool,
) -> Result<(), NeutronError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Bool(b)) if *b == supported => Ok(()),
        Some(Value::Bool(_)) => Err(NeutronError::bad_request(format!(
            "{key}={} is not supported by weft yet",
            !supported
        ))),
        Some(_) => Err(NeutronError::invalid_input(format!(
            "Invalid input for {key}. Reason: not a boolean."
        ))),
    }
}

/// The project a create acts in: the caller's, or for the admin the body's.
pub(crate) fn target_project<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
    object: &Map<String, Value>,
) -> Result<String, NeutronError> {
    let asked = text(object, "project_id")?.or(text(object, "tenant_id")?);
    let resolve = |p: &str| {
        a.controller
            .tenants()
            .into_iter()
            .find(|t| project_id(t) == p || t == p)
    };
    match (who, asked) {
        (Caller::Tenant(own), None) => Ok(own.clone()),
        (Caller::Tenant(own), Some(p)) if p == project_id(own) || p == *own => Ok(own.clone()),
        (Caller::Tenant(_), Some(_)) => Err(NeutronError::new(
            StatusCode::FORBIDDEN,
            "HTTPForbidden",
            "a project may only create resources in itself",
        )),
        (Caller::Admin, Some(p)) => resolve(&p)
            .ok_or_else(|| NeutronError::bad_request(format!("project {p} is not a weft tenant"))),
        (Caller::Admin, None) => Err(NeutronError::bad_request(
            "the admin token must name project_id (a weft tenant)",
        )),
    }
}

pub(crate) async fn put_meta<S: KvStore + Clone, C: Controller, T: Serialize>(
    a: &OpenStack<S, C>,
    kind: &str,
    id: &str,
    meta: &T,
) -> Result<(), NeutronError> {
    let bytes = serde_json::to_vec(meta)
        .map_err(|e| NeutronError::from(crate::OpenStackError::Internal(e.to_string())))?;
    a.store
        .put(meta_key(kind, id).as_bytes(), &bytes, None)
        .await
        .map_err(|e| NeutronError::from(crate::OpenStackError::from(e)))?;
    Ok(())
}

pub(crate) async fn delete_meta<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    kind: &str,
    id: &str,
) -> Result<(), NeutronError> {
    a.store
        .delete(meta_key(kind, id).as_bytes())
        .await
        .map_err(|e| NeutronError::from(crate::OpenStackError::from(e)))?;
    Ok(())
}

/// Commits a tenant through admission; on refusal, `undo` the metadata written first.
pub(crate) async fn commit_or_undo<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    tenant: &str,
    model: Option<Tenant>,
    undo: Option<(&str, &str)>,
) -> Result<(), NeutronError> {
    if let Err(err) = a.controller.commit(tenant, model).await {
        if let Some((kind, id)) = undo
            && let Err(e) = delete_meta(a, kind, id).await
        {
            tracing::warn!(error = %e, "could not remove the metadata of a refused create");
        }
        return Err(err.into());
    }
    Ok(())
}

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

async fn create_network<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(&body, "network", NETWORK_ATTRS)?;
    only(&object, "admin_state_up", true)?;
    only(&object, "shared", false)?;
    only(&object, "router:external", false)?;
    only(&object, "port_security_enabled", true)?;
    if object
        .get("availability_zone_hints")
        .and_then(Value::as_array)
        .is_some_and(|z| !z.is_empty())
    {
        return Err(NeutronError::bad_request(
            "availability zones are not supported by weft",
        ));
    }
    let name = text(&object, "name")?.unwrap_or_default();
    let description = text(&object, "description")?.unwrap_or_default();
    let tenant_name = target_project(&a, &who, &object)?;

    let _serialised = a.writes.lock().await;
    let mut tenant = a.controller.tenant(&tenant_name).unwrap_or_default();
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
    tenant
        .vrfs
        .entry(VRF.to_string())
        .or_insert_with(Vrf::default);
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
        .or_insert_with(AppProfile::default)
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
        name,
        description,
        created_ms: now_ms(),
    };
    put_meta(&a, "network", &id, &meta).await?;
    commit_or_undo(&a, &tenant_name, Some(tenant), Some(("network", &id))).await?;
    tracing::info!(network = %id, tenant = %tenant_name, %epg, "neutron network created");
    let v = view(&a, &who).await?;
    let n = v.network(&id)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"network": v.network_json(n)})),
    )
        .into_response())
}

async fn update_network<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(
        &body,
        "network",
        &[
            "name",
            "description",
            "admin_state_up",
            "shared",
            "router:external",
            "port_security_enabled",
        ],
    )?;
    only(&object, "admin_state_up", true)?;
    only(&object, "shared", false)?;
    only(&object, "router:external", false)?;
    only(&object, "port_security_enabled", true)?;
    let _serialised = a.writes.lock().await;
    let v = view(&a, &who).await?;
    let n = v.network(&id)?;
    let mut meta = v
        .network_meta
        .get(&id)
        .cloned()
        .unwrap_or_else(|| NetworkMeta {
            epg: format!("{}/{}/{}", n.tenant, n.ap, n.epg),
            name: n.epg.clone(),
            ..NetworkMeta::default()
        });
    if let Some(name) = text(&object, "name")? {
        meta.name = name;
    }
    if let Some(description) = text(&object, "description")? {
        meta.description = description;
    }
    put_meta(&a, "network", &id, &meta).await?;
    let v = view(&a, &who).await?;
    let n = v.network(&id)?;
    Ok(Json(json!({"network": v.network_json(n)})).into_response())
}

async fn delete_network<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let _serialised = a.writes.lock().await;
    let v = view(&a, &who).await?;
    let n = v.network(&id)?.clone();
    let path = format!("{}/{}/{}", n.tenant, n.ap, n.epg);
    if crate::router::network_on_a_router(&v, &n)
        || a.controller
            .endpoints(&n.tenant)
            .iter()
            .any(|e| e.epg == path)
    {
        return Err(NeutronError::new(
            StatusCode::CONFLICT,
            "NetworkInUse",
            format!(
                "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
            ),
        ));
    }
    let mut tenant = v.tenants.get(&n.tenant).cloned().ok_or_else(|| {
        NeutronError::not_found(
            "NetworkNotFound",
            format!("Network {id} could not be found."),
        )
    })?;
    if let Some(ap) = tenant.app_profiles.get_mut(&n.ap) {
        ap.epgs.remove(&n.epg);
    }
    let bd_used = tenant
        .app_profiles
        .values()
        .any(|ap| ap.epgs.values().any(|e| e.bridge_domain == n.bd));
    let gone_subnets: Vec<String> = if bd_used {
        Vec::new()
    } else {
        tenant.bridge_domains.remove(&n.bd);
        v.subnets
            .iter()
            .filter(|s| s.tenant == n.tenant && s.bd == n.bd)
            .map(|s| s.id.clone())
            .collect()
    };
    commit_or_undo(&a, &n.tenant, Some(tenant), None).await?;
    delete_meta(&a, "network", &id).await?;
    for subnet in gone_subnets {
        delete_meta(&a, "subnet", &subnet).await?;
    }
    tracing::info!(network = %id, epg = %path, "neutron network deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
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

pub(crate) fn strings(
    object: &Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<String>>, NeutronError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(String::from).ok_or_else(|| {
                    NeutronError::invalid_input(format!(
                        "Invalid input for {key}. Reason: not a list of strings."
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(NeutronError::invalid_input(format!(
            "Invalid input for {key}. Reason: not a list."
        ))),
    }
}

fn empty_or_null(object: &Map<String, Value>, key: &str) -> Result<(), NeutronError> {
    match object.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(Value::Array(a)) if a.is_empty() => Ok(()),
        Some(_) => Err(NeutronError::bad_request(format!(
            "{key} is not supported by weft yet"
        ))),
    }
}

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

async fn create_subnet<S: KvStore + Clone, C: Controller>(
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
    let network_id = text(&object, "network_id")?.ok_or_else(|| {
        NeutronError::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        )
    })?;
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
    let mut dns = strings(&object, "dns_nameservers")?.unwrap_or_default();
    for server in &dns {
        if server.parse::<IpAddr>().is_err() {
            return Err(NeutronError::invalid_input(format!(
                "Invalid input for dns_nameservers. Reason: '{server}' is not a valid nameserver."
            )));
        }
    }
    dns.dedup();
    let host_routes = match object.get("host_routes") {
        Some(Value::Array(r)) => r.clone(),
        _ => Vec::new(),
    };
    let enable_dhcp = object
        .get("enable_dhcp")
        .and_then(Value::as_bool)
        .unwrap_or(true);

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
    let mut tenant = v.tenants.get(&n.tenant).cloned().ok_or_else(|| {
        NeutronError::not_found(
            "NetworkNotFound",
            format!("Network {network_id} could not be found."),
        )
    })?;
    let bd = tenant.bridge_domains.get_mut(&n.bd).ok_or_else(|| {
        NeutronError::not_found(
            "NetworkNotFound",
            format!("Network {network_id} could not be found."),
        )
    })?;
    bd.subnets.insert(
        cidr.to_string(),
        Subnet {
            cidr,
            gateway,
            loc: weft_model::Location::default(),
        },
    );
    let id = subnet_id(&n.tenant, &n.bd, &cidr.to_string());
    let meta = SubnetMeta {
        network_id: network_id.clone(),
        name: text(&object, "name")?.unwrap_or_default(),
        description: text(&object, "description")?.unwrap_or_default(),
        dns_nameservers: dns,
        host_routes,
        enable_dhcp,
        created_ms: now_ms(),
    };
    put_meta(&a, "subnet", &id, &meta).await?;
    commit_or_undo(&a, &n.tenant, Some(tenant), Some(("subnet", &id))).await?;
    tracing::info!(subnet = %id, %cidr, network = %network_id, "neutron subnet created");
    let v = view(&a, &who).await?;
    let s = v.subnet(&id)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"subnet": v.subnet_json(s)})),
    )
        .into_response())
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

async fn update_subnet<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(
        &body,
        "subnet",
        &[
            "name",
            "description",
            "dns_nameservers",
            "host_routes",
            "enable_dhcp",
            "gateway_ip",
            "allocation_pools",
        ],
    )?;
    empty_or_null(&object, "allocation_pools")?;
    let _serialised = a.writes.lock().await;
    let v = view(&a, &who).await?;
    let s = v.subnet(&id)?;
    if let Some(g) = object.get("gateway_ip")
        && g.as_str() != Some(s.gateway.to_string().as_str())
    {
        return Err(NeutronError::bad_request(
            "changing gateway_ip is not supported by weft yet",
        ));
    }
    let mut meta = v
        .subnet_meta
        .get(&id)
        .cloned()
        .unwrap_or_else(|| SubnetMeta {
            network_id: s.network_id.clone(),
            enable_dhcp: true,
            ..SubnetMeta::default()
        });
    if let Some(name) = text(&object, "name")? {
        meta.name = name;
    }
    if let Some(description) = text(&object, "description")? {
        meta.description = description;
    }
    if let Some(dns) = strings(&object, "dns_nameservers")? {
        meta.dns_nameservers = dns;
    }
    if let Some(Value::Array(routes)) = object.get("host_routes") {
        meta.host_routes.clone_from(routes);
    }
    if let Some(dhcp) = object.get("enable_dhcp").and_then(Value::as_bool) {
        meta.enable_dhcp = dhcp;
    }
    put_meta(&a, "subnet", &id, &meta).await?;
    let v = view(&a, &who).await?;
    let s = v.subnet(&id)?;
    Ok(Json(json!({"subnet": v.subnet_json(s)})).into_response())
}

async fn delete_subnet<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let _serialised = a.writes.lock().await;
    let v = view(&a, &who).await?;
    let s = v.subnet(&id)?.clone();
    let mut tenant = v.tenants.get(&s.tenant).cloned().ok_or_else(|| {
        NeutronError::not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
    })?;
    let mut epgs_of_bd: Vec<String> = Vec::new();
    for (ap_name, ap) in &tenant.app_profiles {
        for (e_name, e) in &ap.epgs {
            if e.bridge_domain == s.bd {
                epgs_of_bd.push(format!("{}/{ap_name}/{e_name}", s.tenant));
            }
        }
    }
    let in_use = a
        .controller
        .endpoints(&s.tenant)
        .into_iter()
        .any(|e| epgs_of_bd.contains(&e.epg) && s.cidr.contains(&e.ip))
        || v.networks
            .iter()
            .find(|n| n.id == s.network_id)
            .is_some_and(|n| crate::router::network_on_a_router(&v, n));
    if in_use {
        return Err(NeutronError::new(
            StatusCode::CONFLICT,
            "SubnetInUse",
            format!(
                "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
            ),
        ));
    }
    if let Some(bd) = tenant.bridge_domains.get_mut(&s.bd) {
        bd.subnets.retain(|_, sub| sub.cidr != s.cidr);
    }
    commit_or_undo(&a, &s.tenant, Some(tenant), None).await?;
    delete_meta(&a, "subnet", &id).await?;
    tracing::info!(subnet = %id, cidr = %s.cidr, "neutron subnet deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
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
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
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
}
