//! Neutron ports over weft's endpoints. A port is a weft endpoint (`port-<8 hex>`) in its
//! network's EPG, placed on the node `binding:host_id` names (weft has no unbound ports:
//! an endpoint lives on one node). `fixed_ips` (one address) is the endpoint's IP,
//! `mac_address` its MAC, `allowed_address_pairs` its allowed address pairs; name,
//! description, `device_id` and `device_owner` are kept under
//! `/weft/openstack/ids/port/<id>`. Every endpoint of the project is a port (its id is
//! derived from the endpoint's name), so endpoints made with weft's API show too.
//! `port_security_enabled` is the endpoint's port security and `security_groups` its
//! security groups (by their ids; the project's `default` group when the field is absent
//! and port security is on, as Neutron does); a port without port security has no groups
//! and is governed by its EPG's contracts alone.

use crate::derived_uuid;
use crate::error::NeutronError;
use crate::network::{SubnetView, View, network_not_found, view};
use crate::resource::{
    Adapter, Answer, Collection, Standard, answer, boolean, caller, delete_meta, deleted, forget,
    metas, only, put_meta, required, resource, strings, target_project, text,
};
use crate::router::{RouterMeta, interface_port_id, routers};
use crate::security_group::{DEFAULT, group_names, security_group_id, undo_default, with_default};
use crate::{AddressPair, Caller, Controller, EndpointSpec, OpenStack, PortUpdate, WeftEndpoint};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use weft_store::KvStore;

/// The name prefix of endpoints made as ports.
pub const PORT_PREFIX: &str = "port-";
/// Allowed address pairs and security groups a port may have (every input is bounded).
const MAX_PAIRS: usize = 64;
const MAX_GROUPS: usize = 64;

/// Neutron-only attributes of a port, by ID.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PortMeta {
    #[serde(flatten)]
    std: Standard,
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    device_owner: String,
}

pub fn port_id(endpoint: &str) -> String {
    derived_uuid(&format!("port:{endpoint}"))
}

fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found("PortNotFound", format!("Port {id} could not be found."))
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

fn mac_attr(value: &Value, key: &str) -> Result<[u8; 6], NeutronError> {
    let bad = || {
        NeutronError::invalid_input(format!(
            "Invalid input for {key}. Reason: '{}' is not a valid MAC address.",
            value.as_str().unwrap_or("")
        ))
    };
    let mac = value.as_str().and_then(parse_mac).ok_or_else(bad)?;
    // Multicast or all-zero MACs are no endpoint's.
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(bad());
    }
    Ok(mac)
}

/// The ports collection: every endpoint of the caller's projects, and the routers'
/// interfaces.
pub(crate) struct Ports {
    v: View,
    meta: BTreeMap<String, PortMeta>,
    /// (port id, tenant, endpoint)
    all: Vec<(String, String, WeftEndpoint)>,
    /// Router interfaces, shown as Neutron shows them: a port owned by the router
    /// holding the subnet's gateway address (weft's anycast gateway).
    interfaces: Vec<InterfacePort>,
}

#[derive(Debug, Clone)]
struct InterfacePort {
    id: String,
    tenant: String,
    router: String,
    subnet: SubnetView,
    mac: Option<[u8; 6]>,
}

/// An endpoint made with weft's API (or a task's) is shown as a port but not changed
/// through Neutron: weft owns it.
fn made_with_weft(id: &str, endpoint: &str) -> NeutronError {
    NeutronError::conflict(
        "PortInUse",
        format!(
            "Port {id} is weft endpoint {endpoint}, made with weft's API or for a task: change it with weft"
        ),
    )
}

fn owned_by_router(id: &str) -> NeutronError {
    NeutronError::conflict(
        "L3PortInUse",
        format!(
            "Port {id} has owner network:router_interface and therefore cannot be deleted directly via the port API."
        ),
    )
}

impl<S: KvStore + Clone, C: Controller> Collection<S, C> for Ports {
    const ONE: &'static str = "port";
    const PATH: &'static str = "ports";

    async fn read(a: &OpenStack<S, C>, who: &Caller) -> Result<Self, NeutronError> {
        read(a, who).await
    }

    fn items(&self) -> Vec<Value> {
        self.all
            .iter()
            .map(|x| self.json(x))
            .chain(self.interfaces.iter().map(|i| self.interface_json(i)))
            .collect()
    }

    fn item(&self, id: &str) -> Result<Value, NeutronError> {
        self.show(id)
    }
}

async fn read<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
) -> Result<Ports, NeutronError> {
    let v = view(a, who).await?;
    let meta: BTreeMap<String, PortMeta> = metas(&a.store, "port").await?;
    let mut all = Vec::new();
    for tenant in v.tenants.keys() {
        for e in a.controller.endpoints(tenant) {
            all.push((port_id(&e.name), tenant.clone(), e));
        }
    }
    let router_meta: BTreeMap<String, RouterMeta> = metas(&a.store, "router").await?;
    let mut interfaces = Vec::new();
    for r in routers(&v, &router_meta) {
        for subnet_id in &r.interfaces {
            if let Ok(subnet) = v.subnet(subnet_id) {
                interfaces.push(InterfacePort {
                    id: interface_port_id(&r.id, subnet_id),
                    tenant: r.tenant.clone(),
                    router: r.id.clone(),
                    mac: a.controller.gateway_mac(&subnet.tenant, &subnet.bd),
                    subnet: subnet.clone(),
                });
            }
        }
    }
    Ok(Ports {
        v,
        meta,
        all,
        interfaces,
    })
}

impl Ports {
    /// An endpoint's port; a router interface's is refused with `interface`.
    fn find(
        &self,
        id: &str,
        interface: fn(&str) -> NeutronError,
    ) -> Result<&(String, String, WeftEndpoint), NeutronError> {
        if self.interfaces.iter().any(|i| i.id == id) {
            return Err(interface(id));
        }
        self.all
            .iter()
            .find(|(p, _, _)| p == id)
            .ok_or_else(|| not_found(id))
    }

    /// Any port's JSON.
    fn show(&self, id: &str) -> Result<Value, NeutronError> {
        match self.interfaces.iter().find(|i| i.id == id) {
            Some(i) => Ok(self.interface_json(i)),
            None => Ok(self.json(self.find(id, not_found)?)),
        }
    }

    fn interface_json(&self, i: &InterfacePort) -> Value {
        let item = json!({
            "id": i.id,
            "network_id": i.subnet.network_id,
            "mac_address": i.mac.map_or(String::new(), mac_text),
            "admin_state_up": true,
            "status": "ACTIVE",
            "device_id": i.router,
            "device_owner": "network:router_interface",
            "fixed_ips": [{"subnet_id": i.subnet.id, "ip_address": i.subnet.gateway.to_string()}],
            "allowed_address_pairs": [],
            "security_groups": [],
            "port_security_enabled": false,
            "binding:host_id": "",
            "binding:vif_type": "weft",
            "binding:vnic_type": "normal",
            "binding:profile": {},
            "binding:vif_details": {},
            "extra_dhcp_opts": [],
            "weft:anycast_gateway": true,
        });
        Standard::show(None, "", &i.tenant, item)
    }

    fn json(&self, (id, tenant, e): &(String, String, WeftEndpoint)) -> Value {
        let meta = self.meta.get(id);
        let (device_id, device_owner) = device(meta, &e.name);
        let network = self.v.networks.iter().find(|n| n.epg_path() == e.epg);
        let subnet = network.and_then(|n| {
            self.v
                .subnets
                .iter()
                .find(|s| s.tenant == n.tenant && s.bd == n.bd && s.cidr.contains(&e.ip))
        });
        let pairs: Vec<Value> = e
            .allowed_address_pairs
            .iter()
            .map(|p| {
                json!({"ip_address": p.ip.to_string(),
                       "mac_address": mac_text(p.mac.unwrap_or(e.mac))})
            })
            .collect();
        let item = json!({
            "id": id,
            "network_id": network.map_or("", |n| n.id.as_str()),
            "mac_address": mac_text(e.mac),
            "admin_state_up": true,
            "status": if e.ready { "ACTIVE" } else { "DOWN" },
            "device_id": device_id,
            "device_owner": device_owner,
            "fixed_ips": [{"subnet_id": subnet.map_or("", |s| s.id.as_str()),
                           "ip_address": e.ip.to_string()}],
            "allowed_address_pairs": pairs,
            "security_groups": e.security_groups.iter().flatten()
                .map(|g| security_group_id(tenant, g)).collect::<Vec<_>>(),
            "port_security_enabled": e.port_security,
            "binding:host_id": e.node,
            "binding:vif_type": "weft",
            "binding:vnic_type": "normal",
            "binding:profile": {},
            "binding:vif_details": {},
            "extra_dhcp_opts": [],
            "weft:endpoint": e.name,
        });
        Standard::show(meta.map(|m| &m.std), &e.name, tenant, item)
    }
}

/// Port `id` as a server would take it (`networks: [{port}]`): its project and endpoint,
/// or why not (absent or a router's: `PortNotFound`; a device already: `PortInUse`).
pub(crate) async fn for_server<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
    id: &str,
) -> Result<(String, WeftEndpoint), NeutronError> {
    let ports = read(a, who).await?;
    let (_, tenant, endpoint) = ports.find(id, not_found)?;
    let (device_id, device_owner) = device(ports.meta.get(id), &endpoint.name);
    if !device_id.is_empty() {
        return Err(NeutronError::conflict(
            "PortInUse",
            format!("Port {id} is still in use (device {device_id} of {device_owner})."),
        ));
    }
    Ok((tenant.clone(), endpoint.clone()))
}

/// A port's device: the server it was given to (`networks: [{port}]`), or the server
/// whose own endpoint it is (one per network Nova attached it to); `("", "")`: none.
/// What a user set is shown as set (a `device_owner` may come without a `device_id`).
fn device(meta: Option<&PortMeta>, endpoint: &str) -> (String, String) {
    match meta.filter(|m| !m.device_id.is_empty() || !m.device_owner.is_empty()) {
        Some(m) => (m.device_id.clone(), m.device_owner.clone()),
        None => crate::compute::server_of_endpoint(endpoint)
            .map(|server| (server, "compute:nova".to_string()))
            .unwrap_or_default(),
    }
}

/// Records (or, with `None`, clears) the server a port is attached to: Neutron's
/// `device_id`, with `device_owner` `compute:<zone>`.
pub(crate) async fn set_device<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    id: &str,
    device: Option<&str>,
) -> Result<(), NeutronError> {
    let all: BTreeMap<String, PortMeta> = metas(&a.store, "port").await?;
    let mut meta = all.get(id).cloned().unwrap_or_default();
    meta.device_id = device.unwrap_or_default().to_string();
    meta.device_owner = if device.is_some() {
        "compute:nova".to_string()
    } else {
        String::new()
    };
    put_meta(a, "port", id, &meta).await
}

/// A port's security as a body asks for it.
struct AskedSecurity {
    port_security: Option<bool>,
    /// Group ids.
    groups: Option<Vec<String>>,
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn asked_security(object: &Map<String, Value>) -> Result<AskedSecurity, NeutronError> {
    let groups = strings(object, "security_groups", MAX_GROUPS)?;
    if let Some(bad) = groups.iter().flatten().find(|id| !uuid_like(id)) {
        return Err(NeutronError::invalid_input(format!(
            "Invalid input for security_groups. Reason: '{bad}' is not an integer or uuid."
        )));
    }
    let asked = AskedSecurity {
        port_security: boolean(object, "port_security_enabled")?,
        groups,
    };
    if asked.port_security == Some(false) && asked.groups.as_ref().is_some_and(|g| !g.is_empty()) {
        return Err(security_needs_port_security());
    }
    Ok(asked)
}

fn security_needs_port_security() -> NeutronError {
    NeutronError::bad_input(
        "PortSecurityAndIPRequiredForSecurityGroups",
        "Port security must be enabled and port must have an IP address in order to use security groups.",
    )
}

fn pairs_need_port_security() -> NeutronError {
    NeutronError::conflict(
        "AddressPairAndPortSecurityRequired",
        "Port Security must be enabled in order to have allowed address pairs on a port.",
    )
}

fn plain_binding(object: &Map<String, Value>) -> Result<(), NeutronError> {
    match object.get("binding:vnic_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "normal" => {}
        Some(_) => {
            return Err(NeutronError::bad_request(
                "binding:vnic_type other than normal is not supported by weft",
            ));
        }
    }
    match object.get("binding:profile") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(p)) if p.is_empty() => Ok(()),
        Some(_) => Err(NeutronError::bad_request(
            "binding:profile is not supported by weft",
        )),
    }
}

fn address_pairs(object: &Map<String, Value>) -> Result<Option<Vec<AddressPair>>, NeutronError> {
    let items = match object.get("allowed_address_pairs") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.len() <= MAX_PAIRS => items,
        Some(_) => {
            return Err(NeutronError::invalid_input(format!(
                "Invalid input for allowed_address_pairs. Reason: not a list of at most {MAX_PAIRS} pairs."
            )));
        }
    };
    let mut pairs = Vec::new();
    for item in items {
        let ip_text = item.get("ip_address").and_then(Value::as_str).unwrap_or("");
        let ip: IpAddr = ip_text.parse().map_err(|_| {
            NeutronError::invalid_input(format!(
                "Invalid input for allowed_address_pairs. Reason: '{ip_text}' is not a valid IP address (weft takes single addresses, not CIDRs)."
            ))
        })?;
        let mac = match item.get("mac_address") {
            None | Some(Value::Null) => None,
            Some(m) => Some(mac_attr(m, "allowed_address_pairs")?),
        };
        pairs.push(AddressPair { ip, mac });
    }
    Ok(Some(pairs))
}

const PORT_ATTRS: &[&str] = &[
    "name",
    "description",
    "network_id",
    "admin_state_up",
    "fixed_ips",
    "mac_address",
    "device_id",
    "device_owner",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
    "allowed_address_pairs",
    "port_security_enabled",
    "security_groups",
    "project_id",
    "tenant_id",
];

pub(crate) async fn create<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(&body, "port", PORT_ATTRS)?;
    only(&object, "admin_state_up", true)?;
    plain_binding(&object)?;
    let security = asked_security(&object)?;
    let port_security = security.port_security.unwrap_or(true);
    let network_id = required(&object, "network_id")?;
    let node = text(&object, "binding:host_id")?.filter(|h| !h.is_empty()).ok_or_else(|| {
        NeutronError::bad_request(
            "weft needs binding:host_id to place the port: a port is a weft endpoint, which lives on one node (openstack port create --host NODE)",
        )
    })?;
    let mac = match object.get("mac_address") {
        None | Some(Value::Null) => None,
        Some(m) => Some(mac_attr(m, "mac_address")?),
    };
    let pairs = address_pairs(&object)?.unwrap_or_default();
    if !port_security && !pairs.is_empty() {
        return Err(pairs_need_port_security());
    }
    let fixed: Vec<Value> = match object.get("fixed_ips") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(f)) if f.len() <= 1 => f.clone(),
        Some(Value::Array(_)) => {
            return Err(NeutronError::bad_request(
                "weft gives a port one address: fixed_ips takes at most one entry",
            ));
        }
        Some(_) => {
            return Err(NeutronError::invalid_input(
                "Invalid input for fixed_ips. Reason: not a list.",
            ));
        }
    };
    // The network's project, which a named project must be.
    let named = if object.contains_key("project_id") || object.contains_key("tenant_id") {
        Some(target_project(&a, &who, &object)?)
    } else {
        None
    };
    let meta = PortMeta {
        std: Standard::created(&object)?,
        device_id: text(&object, "device_id")?.unwrap_or_default(),
        device_owner: text(&object, "device_owner")?.unwrap_or_default(),
    };

    let _serialised = a.writes.lock().await;
    let v = view(&a, &who).await?;
    let n = v.network(&network_id)?.clone();
    if named.is_some_and(|t| t != n.tenant) {
        return Err(network_not_found(&network_id));
    }
    let subnets: Vec<_> = v
        .subnets
        .iter()
        .filter(|s| s.tenant == n.tenant && s.bd == n.bd)
        .collect();
    let mut ip = None;
    if let Some(entry) = fixed.first() {
        let subnet = match entry.get("subnet_id").and_then(Value::as_str) {
            Some(sid) => Some(*subnets.iter().find(|s| s.id == sid).ok_or_else(|| {
                NeutronError::bad_request(format!(
                    "Invalid input for operation: subnet {sid} is not on network {network_id}."
                ))
            })?),
            None => None,
        };
        match entry.get("ip_address") {
            None | Some(Value::Null) => {
                if subnets.len() > 1 {
                    return Err(NeutronError::bad_request(
                        "weft's IPAM picks from all of the network's subnets: name the ip_address too",
                    ));
                }
            }
            Some(value) => {
                let text = value.as_str().unwrap_or("");
                let addr: IpAddr = text.parse().map_err(|_| {
                    NeutronError::invalid_input(format!(
                        "Invalid input for ip_address. Reason: '{text}' is not a valid IP address."
                    ))
                })?;
                let inside = match subnet {
                    Some(s) => s.cidr.contains(&addr),
                    None => subnets.iter().any(|s| s.cidr.contains(&addr)),
                };
                if !inside {
                    return Err(NeutronError::bad_request(format!(
                        "Invalid input for operation: IP address {addr} is not a valid IP for the specified subnet."
                    )));
                }
                ip = Some(addr);
            }
        }
    }
    // Port security on: the groups asked for, else the project's default group (made
    // now if the project has none, and taken back if the endpoint is refused).
    let mut tenant = v
        .tenants
        .get(&n.tenant)
        .cloned()
        .ok_or_else(|| network_not_found(&network_id))?;
    let security_groups = match (port_security, security.groups) {
        (false, _) => None,
        (true, Some(ids)) => Some(group_names(&n.tenant, &tenant, &ids)?),
        (true, None) => Some(vec![DEFAULT.to_string()]),
    };
    let made_default = port_security
        && security_groups
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g == DEFAULT))
        && with_default(&mut tenant);
    if made_default {
        a.controller.commit(&n.tenant, Some(tenant)).await?;
    }
    let name = format!("{PORT_PREFIX}{}", crate::random_hex(4)?);
    let id = port_id(&name);
    put_meta(&a, "port", &id, &meta).await?;
    let spec = EndpointSpec {
        name: name.clone(),
        epg: n.epg_path(),
        node,
        ip,
        mac,
        allowed_address_pairs: pairs,
        port_security,
        security_groups,
    };
    if let Err(err) = a.controller.create_endpoint(spec).await {
        if let Err(e) = delete_meta(&a, "port", &id).await {
            tracing::warn!(error = %e, "could not remove the metadata of a refused port");
        }
        if made_default {
            undo_default(&a, &n.tenant).await;
        }
        return Err(err.into());
    }
    tracing::info!(port = %id, endpoint = %name, network = %network_id, "neutron port created");
    answer::<Ports, S, C>(&a, &who, &id, StatusCode::CREATED).await
}

pub(crate) async fn update<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(
        &body,
        "port",
        &[
            "name",
            "description",
            "admin_state_up",
            "device_id",
            "device_owner",
            "allowed_address_pairs",
            "port_security_enabled",
            "security_groups",
            "binding:host_id",
            "binding:vnic_type",
            "binding:profile",
            "fixed_ips",
            "mac_address",
        ],
    )?;
    only(&object, "admin_state_up", true)?;
    plain_binding(&object)?;
    let security = asked_security(&object)?;
    let pairs = address_pairs(&object)?;
    let _serialised = a.writes.lock().await;
    let p = read(&a, &who).await?;
    let (_, tenant, e) = p
        .find(&id, |id| {
            NeutronError::bad_request(format!(
                "Port {id} is a router interface (the subnet's anycast gateway): change it through the router"
            ))
        })?
        .clone();
    if !e.name.starts_with(PORT_PREFIX) {
        return Err(made_with_weft(&id, &e.name));
    }
    // The address and MAC stay; a client may restate them.
    if let Some(mac) = object.get("mac_address").filter(|m| !m.is_null())
        && mac_attr(mac, "mac_address")? != e.mac
    {
        return Err(NeutronError::bad_request(
            "changing mac_address is not supported by weft yet (delete and create the port)",
        ));
    }
    if let Some(fixed) = object.get("fixed_ips").filter(|f| !f.is_null()) {
        let same = fixed.as_array().is_some_and(|f| {
            f.len() == 1
                && f[0]
                    .get("ip_address")
                    .is_none_or(|ip| ip.as_str() == Some(e.ip.to_string().as_str()))
        });
        if !same {
            return Err(NeutronError::bad_request(
                "changing fixed_ips is not supported by weft yet (a port has one address; delete and create the port)",
            ));
        }
    }
    if let Some(host) = text(&object, "binding:host_id")?
        && host != e.node
    {
        return Err(NeutronError::bad_request(
            "moving a port to another host is not supported by weft yet (delete and create it)",
        ));
    }
    let mut meta = p.meta.get(&id).cloned().unwrap_or_else(|| PortMeta {
        std: Standard::named(&e.name),
        ..PortMeta::default()
    });
    meta.std.update(&object)?;
    for (key, field) in [
        ("device_id", &mut meta.device_id),
        ("device_owner", &mut meta.device_owner),
    ] {
        if let Some(value) = text(&object, key)? {
            *field = value;
        }
    }
    let change = security_change(&p, &tenant, &e, security, pairs)?;
    if !change.is_empty() {
        a.controller.update_port(&tenant, &e.name, change).await?;
    }
    put_meta(&a, "port", &id, &meta).await?;
    answer::<Ports, S, C>(&a, &who, &id, StatusCode::OK).await
}

/// What an update changes on the endpoint, refused as Neutron refuses it: groups need
/// port security (400 when asked for together, 409 when the port has them), and so do
/// allowed address pairs.
fn security_change(
    p: &Ports,
    tenant: &str,
    e: &WeftEndpoint,
    security: AskedSecurity,
    pairs: Option<Vec<AddressPair>>,
) -> Result<PortUpdate, NeutronError> {
    let port_security = security.port_security.unwrap_or(e.port_security);
    let asked_groups = match security.groups {
        Some(ids) => {
            let model =
                p.v.tenants
                    .get(tenant)
                    .ok_or_else(|| not_found(&port_id(&e.name)))?;
            Some(group_names(tenant, model, &ids)?)
        }
        None => None,
    };
    if !port_security && asked_groups.as_ref().is_some_and(|g| !g.is_empty()) {
        return Err(security_needs_port_security());
    }
    let groups_changed = asked_groups.is_some() || port_security != e.port_security;
    let names = asked_groups
        .or_else(|| e.security_groups.clone())
        .unwrap_or_default();
    if !port_security && !names.is_empty() {
        return Err(NeutronError::conflict(
            "PortSecurityPortHasSecurityGroup",
            "Port has security group associated. Cannot disable port security or IP address until security group is removed",
        ));
    }
    if !port_security
        && !pairs
            .as_ref()
            .unwrap_or(&e.allowed_address_pairs)
            .is_empty()
    {
        return Err(pairs_need_port_security());
    }
    let groups = if groups_changed {
        port_security.then_some(names)
    } else {
        e.security_groups.clone()
    };
    Ok(PortUpdate {
        allowed_address_pairs: pairs.filter(|p| *p != e.allowed_address_pairs),
        port_security: (port_security != e.port_security).then_some(port_security),
        security_groups: (groups != e.security_groups).then_some(groups),
    })
}

pub(crate) async fn delete<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let _serialised = a.writes.lock().await;
    let p = read(&a, &who).await?;
    let (_, tenant, e) = p.find(&id, owned_by_router)?.clone();
    if !e.name.starts_with(PORT_PREFIX) {
        return Err(made_with_weft(&id, &e.name));
    }
    if !a.controller.delete_endpoint(&tenant, &e.name).await? {
        return Err(not_found(&id));
    }
    forget(&a, "port", &id).await;
    tracing::info!(port = %id, endpoint = %e.name, "neutron port deleted");
    deleted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_as_neutron_writes_them() {
        assert_eq!(
            parse_mac("fa:16:3e:00:00:01"),
            Some([0xfa, 0x16, 0x3e, 0, 0, 1])
        );
        assert_eq!(parse_mac("fa:16:3e:00:00"), None);
        assert_eq!(parse_mac("zz:16:3e:00:00:01"), None);
        assert_eq!(mac_text([0xfa, 0x16, 0x3e, 0, 0, 1]), "fa:16:3e:00:00:01");
        assert!(mac_attr(&json!("01:00:5e:00:00:01"), "mac_address").is_err());
    }
}
