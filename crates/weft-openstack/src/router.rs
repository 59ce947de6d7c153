//! Neutron routers over weft's model. A router is a contract `router-<8 hex>` in the
//! project's tenant (one subject, one filter of the same name permitting all IP); an
//! interface on a subnet makes that network's EPG both provide and consume it, so every
//! network on one router talks to every other. weft routes inside a VRF with its anycast
//! gateways, so an interface is the subnet's gateway, not a port. Name, description and
//! the interfaces' subnets are kept under `/weft/openstack/ids/router/<id>`.

use crate::error::NeutronError;
use crate::network::{NetworkView, View, network_not_found, view};
use crate::resource::{
    Adapter, Annotated, Answer, Collection, Removable, Removal, Standard, caller, commit_or_undo,
    empty_or, empty_or_null, finish_create, metas, only, project_tenant, put_meta, resource,
    target_project, text,
};
use crate::{Caller, Controller, OpenStack, derived_uuid, project_id};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use weft_model::{Contract, Filter, FilterEntry, Protocol, Subject, Tenant};
use weft_store::KvStore;

/// The name prefix of the contracts (and their filters) that are routers.
pub const ROUTER_PREFIX: &str = "router-";
/// Interfaces a router may have (every input is bounded).
const MAX_INTERFACES: usize = 256;

/// Neutron-only attributes of a router, by ID.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RouterMeta {
    #[serde(flatten)]
    std: Standard,
    /// The subnets with an interface on this router.
    #[serde(default)]
    interfaces: Vec<String>,
}

pub fn router_id(tenant: &str, contract: &str) -> String {
    derived_uuid(&format!("router:{tenant}/{contract}"))
}

/// The id Neutron's answers give an interface (weft has no port behind it).
pub fn interface_port_id(router: &str, subnet: &str) -> String {
    derived_uuid(&format!("router-interface:{router}/{subnet}"))
}

#[derive(Debug, Clone)]
pub(crate) struct RouterView {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) contract: String,
    /// Subnet ids with an interface.
    pub(crate) interfaces: Vec<String>,
}

fn epg_of<'t>(tenant: &'t Tenant, n: &NetworkView) -> Option<&'t weft_model::Epg> {
    tenant.app_profiles.get(&n.ap)?.epgs.get(&n.epg)
}

fn on_router(tenant: &Tenant, n: &NetworkView, contract: &str) -> bool {
    epg_of(tenant, n).is_some_and(|e| {
        e.provides.iter().any(|c| c == contract) && e.consumes.iter().any(|c| c == contract)
    })
}

/// Every router the caller may see, with its interfaces as the model has them.
pub(crate) fn routers(v: &View, meta: &BTreeMap<String, RouterMeta>) -> Vec<RouterView> {
    let mut out = Vec::new();
    for (tname, tenant) in &v.tenants {
        for contract in tenant.contracts.keys() {
            if !contract.starts_with(ROUTER_PREFIX) {
                continue;
            }
            let id = router_id(tname, contract);
            let listed = meta.get(&id).map(|m| &m.interfaces);
            let interfaces = v
                .subnets
                .iter()
                .filter(|s| &s.tenant == tname)
                .filter(|s| listed.is_none_or(|l| l.contains(&s.id)))
                .filter(|s| {
                    v.networks
                        .iter()
                        .find(|n| n.id == s.network_id)
                        .is_some_and(|n| on_router(tenant, n, contract))
                })
                .map(|s| s.id.clone())
                .collect();
            out.push(RouterView {
                id,
                tenant: tname.clone(),
                contract: contract.clone(),
                interfaces,
            });
        }
    }
    out
}

/// Whether a network's EPG is on any router (its network and subnets are then in use).
pub(crate) fn network_on_a_router(v: &View, n: &NetworkView) -> bool {
    v.tenants.get(&n.tenant).is_some_and(|t| {
        epg_of(t, n).is_some_and(|e| {
            e.provides
                .iter()
                .chain(&e.consumes)
                .any(|c| c.starts_with(ROUTER_PREFIX) && t.contracts.contains_key(c))
        })
    })
}

fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found("RouterNotFound", format!("Router {id} could not be found"))
}

/// The routers collection.
pub(crate) struct Routers {
    v: View,
    meta: BTreeMap<String, RouterMeta>,
    all: Vec<RouterView>,
}

impl<S: KvStore + Clone, C: Controller> Collection<S, C> for Routers {
    const ONE: &'static str = "router";
    const PATH: &'static str = "routers";

    async fn read(a: &OpenStack<S, C>, who: &Caller) -> Result<Self, NeutronError> {
        let v = view(a, who).await?;
        let meta: BTreeMap<String, RouterMeta> = metas(&a.store, "router").await?;
        let all = routers(&v, &meta);
        Ok(Routers { v, meta, all })
    }

    fn items(&self) -> Vec<Value> {
        self.all.iter().map(|r| self.json(r)).collect()
    }

    fn item(&self, id: &str) -> Result<Value, NeutronError> {
        self.find(id).map(|r| self.json(r))
    }
}

impl<S: KvStore + Clone, C: Controller> Annotated<S, C> for Routers {
    const KIND: &'static str = "router";
    const UPDATABLE: &'static [&'static str] = &[
        "name",
        "description",
        "admin_state_up",
        "external_gateway_info",
        "routes",
        "distributed",
        "ha",
    ];
    type Meta = RouterMeta;

    fn updated(&self, id: &str, object: &Map<String, Value>) -> Result<RouterMeta, NeutronError> {
        router_flags(object)?;
        no_routes(object)?;
        let mut meta = self.meta_of(self.find(id)?);
        meta.std.update(object)?;
        Ok(meta)
    }
}

impl<S: KvStore + Clone, C: Controller> Removable<S, C> for Routers {
    fn removal(&self, _a: &OpenStack<S, C>, id: &str) -> Result<Removal, NeutronError> {
        let router = self.find(id)?;
        let mut tenant = self
            .v
            .tenants
            .get(&router.tenant)
            .cloned()
            .ok_or_else(|| not_found(id))?;
        let in_use = tenant.app_profiles.values().any(|ap| {
            ap.epgs.values().any(|e| {
                e.provides
                    .iter()
                    .chain(&e.consumes)
                    .any(|c| *c == router.contract)
            })
        });
        if in_use {
            return Err(NeutronError::conflict(
                "RouterInUse",
                format!("Router {id} still has ports"),
            ));
        }
        tenant.contracts.remove(&router.contract);
        let filter_shared = tenant.contracts.values().any(|c| {
            c.subjects
                .values()
                .any(|s| s.filters.contains(&router.contract))
        });
        if !filter_shared {
            tenant.filters.remove(&router.contract);
        }
        Ok(Removal {
            tenant_name: router.tenant.clone(),
            tenant,
            also: Vec::new(),
        })
    }
}

async fn read<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
) -> Result<Routers, NeutronError> {
    <Routers as Collection<S, C>>::read(a, who).await
}

impl Routers {
    /// A router's metadata, or what one made with weft starts from.
    fn meta_of(&self, router: &RouterView) -> RouterMeta {
        self.meta
            .get(&router.id)
            .cloned()
            .unwrap_or_else(|| RouterMeta {
                std: Standard::named(&router.contract),
                interfaces: router.interfaces.clone(),
            })
    }

    fn find(&self, id: &str) -> Result<&RouterView, NeutronError> {
        self.all
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| not_found(id))
    }

    fn json(&self, r: &RouterView) -> Value {
        let meta = self.meta.get(&r.id).map(|m| &m.std);
        let item = json!({
            "id": r.id,
            "admin_state_up": true,
            "status": "ACTIVE",
            "external_gateway_info": null,
            "routes": [],
            "distributed": false,
            "ha": false,
            "availability_zone_hints": [],
            "availability_zones": [],
            "flavor_id": null,
            "weft:contract": format!("{}/{}", r.tenant, r.contract),
        });
        Standard::show(meta, &r.contract, &r.tenant, item)
    }
}

/// What a router create or update may say besides its name: weft's one value of each.
fn router_flags(object: &Map<String, Value>) -> Result<(), NeutronError> {
    no_gateway(object)?;
    only(object, "admin_state_up", true)?;
    only(object, "distributed", false)?;
    only(object, "ha", false)
}

fn no_gateway(object: &Map<String, Value>) -> Result<(), NeutronError> {
    empty_or(
        object,
        "external_gateway_info",
        "external_gateway_info is not supported yet (north-south): weft routes between its networks only",
    )
}

fn no_routes(object: &Map<String, Value>) -> Result<(), NeutronError> {
    empty_or(
        object,
        "routes",
        "extra routes are not supported by weft yet",
    )
}

const ROUTER_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "distributed",
    "ha",
    "availability_zone_hints",
    "flavor_id",
    "project_id",
    "tenant_id",
];

pub(crate) async fn create<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(&body, "router", ROUTER_ATTRS)?;
    router_flags(&object)?;
    empty_or_null(&object, "availability_zone_hints")?;
    empty_or_null(&object, "flavor_id")?;
    let std = Standard::created(&object)?;
    let tenant_name = target_project(&a, &who, &object)?;

    let _serialised = a.writes.lock().await;
    let mut tenant = project_tenant(&a, &tenant_name);
    let contract = loop {
        let candidate = format!("{ROUTER_PREFIX}{}", crate::random_hex(4)?);
        if !tenant.contracts.contains_key(&candidate) && !tenant.filters.contains_key(&candidate) {
            break candidate;
        }
    };
    let mut filter = Filter::default();
    filter.entries.insert(
        "ip".into(),
        FilterEntry {
            protocol: Protocol::Any,
            ..FilterEntry::default()
        },
    );
    tenant.filters.insert(contract.clone(), filter);
    let mut c = Contract::default();
    c.subjects.insert(
        "ip".into(),
        Subject {
            filters: vec![contract.clone()],
            action: weft_model::Action::Permit,
            loc: weft_model::Location::default(),
        },
    );
    tenant.contracts.insert(contract.clone(), c);
    let id = router_id(&tenant_name, &contract);
    let meta = RouterMeta {
        std,
        interfaces: Vec::new(),
    };
    finish_create::<Routers, S, C>(&a, &who, &tenant_name, tenant, &id, &meta).await
}

/// `PUT /v2.0/routers/{id}/add_router_interface`.
pub(crate) async fn add_interface<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    interface(&a, &headers, &id, &body, true).await
}

/// `PUT /v2.0/routers/{id}/remove_router_interface`.
pub(crate) async fn remove_interface<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    interface(&a, &headers, &id, &body, false).await
}

async fn interface<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
    add: bool,
) -> Answer {
    let who = caller(a, headers)?;
    let object: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(o)) => o,
        _ => {
            return Err(NeutronError::bad_request(
                "Malformed request body: a JSON object with subnet_id or port_id",
            ));
        }
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !["subnet_id", "port_id"].contains(&k.as_str()))
    {
        return Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{unknown}'"
        )));
    }
    let subnet_asked = text(&object, "subnet_id")?;
    let port_asked = text(&object, "port_id")?;
    let _serialised = a.writes.lock().await;
    let r = read(a, &who).await?;
    let router = r.find(id)?.clone();
    let subnet_id = match (subnet_asked, port_asked) {
        (Some(_), Some(_)) => {
            return Err(NeutronError::bad_request(
                "Bad router request: Cannot specify both subnet-id and port-id",
            ));
        }
        (None, None) => {
            return Err(NeutronError::bad_request(
                "Bad router request: Either subnet_id or port_id must be specified",
            ));
        }
        (Some(s), None) => s,
        (None, Some(port)) if add => {
            return Err(NeutronError::bad_request(format!(
                "Bad router request: weft's router interface is the subnet's anycast gateway, not a port: add it by subnet_id (port {port})"
            )));
        }
        (None, Some(port)) => router
            .interfaces
            .iter()
            .find(|s| interface_port_id(id, s) == port)
            .cloned()
            .ok_or_else(|| {
                NeutronError::not_found(
                    "RouterInterfaceNotFound",
                    format!("Router {id} does not have an interface with id {port}"),
                )
            })?,
    };
    let subnet = r.v.subnet(&subnet_id)?.clone();
    if subnet.tenant != router.tenant {
        return Err(NeutronError::bad_request(format!(
            "Bad router request: subnet {subnet_id} is in another project than router {id}"
        )));
    }
    let network = r.v.network(&subnet.network_id)?.clone();
    let mut tenant =
        r.v.tenants
            .get(&router.tenant)
            .cloned()
            .ok_or_else(|| not_found(id))?;
    let mut meta = r.meta_of(&router);
    meta.interfaces.retain(|s| router.interfaces.contains(s));
    let on = router.interfaces.contains(&subnet_id);
    if add {
        if on {
            return Err(NeutronError::bad_request(format!(
                "Bad router request: Router already has a port on subnet {subnet_id}."
            )));
        }
        if on_router(&tenant, &network, &router.contract) {
            return Err(NeutronError::bad_request(format!(
                "Bad router request: Cannot have multiple router ports with the same network id if both contain IPv4 subnets. Existing port on network {}.",
                network.id
            )));
        }
        if meta.interfaces.len() >= MAX_INTERFACES {
            return Err(NeutronError::bad_request(format!(
                "a router has at most {MAX_INTERFACES} interfaces in weft"
            )));
        }
        let epg = tenant
            .app_profiles
            .get_mut(&network.ap)
            .and_then(|ap| ap.epgs.get_mut(&network.epg))
            .ok_or_else(|| network_not_found(&network.id))?;
        for list in [&mut epg.provides, &mut epg.consumes] {
            if !list.contains(&router.contract) {
                list.push(router.contract.clone());
            }
        }
        meta.interfaces.push(subnet_id.clone());
    } else {
        if !on {
            return Err(NeutronError::not_found(
                "RouterInterfaceNotFoundForSubnet",
                format!("Router {id} has no interface on subnet {subnet_id}"),
            ));
        }
        meta.interfaces.retain(|s| *s != subnet_id);
        if let Some(epg) = tenant
            .app_profiles
            .get_mut(&network.ap)
            .and_then(|ap| ap.epgs.get_mut(&network.epg))
        {
            epg.provides.retain(|c| *c != router.contract);
            epg.consumes.retain(|c| *c != router.contract);
        }
    }
    commit_or_undo(a, &router.tenant, Some(tenant), &[]).await?;
    put_meta(a, "router", id, &meta).await?;
    tracing::info!(router = %id, subnet = %subnet_id, add, "neutron router interface changed");
    let project = project_id(&router.tenant);
    Ok(Json(json!({
        "id": id,
        "tenant_id": project,
        "project_id": project,
        "subnet_id": subnet_id,
        "subnet_ids": [subnet_id],
        "network_id": network.id,
        "port_id": interface_port_id(id, &subnet_id),
    }))
    .into_response())
}
