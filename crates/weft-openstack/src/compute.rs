//! Nova v2.1: version discovery with microversion 2.1 (the only one served), flavors
//! (`crate::flavor`), and servers.
//!
//! A server is a weft app with exactly one task, run by the Docker runtime from the
//! image's Docker reference and placed by weft's scheduler; its endpoint is in the EPG of
//! the network it is attached to. Its status is read live from the app and its task:
//! BUILD until the task runs, ACTIVE while it does, ERROR with a `fault` when the
//! scheduler finds no node for it or the runtime fails. `metadata` is the task's
//! environment (as Nova-Docker passed it), `availability_zone` `nova:HOST` a constraint
//! on `hostname`. What Nova has and the model does not (name, image and flavor ids, the
//! network asked for, creation time) is a record under `/weft/openstack/ids/server/<id>`;
//! the app id is `server-<10 hex>` and the server id is derived from it. A server may
//! instead run in an existing port's endpoint (`networks: [{port}]`, the app's
//! `endpoint`) or have a fixed address (`fixed_ip`, the app's `ip`).

use crate::error::NovaError;
use crate::flavor::{self, Flavor};
use crate::image::{self, ImageRecord};
use crate::network::{self, NetworkView};
use crate::resource::{Standard, delete_meta, metas, project_tenant, put_meta, token_caller};
use crate::security_group::{DEFAULT, security_group_id, undo_default, with_default};
use crate::time::iso8601;
use crate::{
    Caller, Controller, OpenStack, TaskPhase, WeftApp, derived_uuid, now_ms, project_id,
    random_hex, sha256_hex,
};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use weft_app::{
    AppNetwork, AppSpec, Constraint, EnvTemplate, ImageRef, MAX_EXTRA_NETWORKS, UpgradeStrategy,
};
use weft_model::{EpgPath, Tenant};
use weft_store::KvStore;

/// The one microversion served.
pub const MICROVERSION: &str = "2.1";
/// Nova's default quota of metadata items, and its key and value lengths.
pub const MAX_METADATA_ITEMS: usize = 128;
pub const MAX_METADATA_LENGTH: usize = 255;
/// Servers one project may have.
const MAX_SERVERS_PER_PROJECT: usize = 1000;
/// The prefix of a server's app id.
pub const APP_PREFIX: &str = "server-";

type Adapter<S, C> = State<Arc<OpenStack<S, C>>>;
type Answer = Result<Response, NovaError>;

pub fn routes<S: KvStore + Clone, C: Controller>() -> Router<Arc<OpenStack<S, C>>> {
    Router::new()
        .route("/", get(versions::<S, C>))
        .route("/v2.1", get(version::<S, C>))
        .route("/v2.1/", get(version::<S, C>))
        .merge(flavor::routes::<S, C>())
        .route("/v2.1/os-availability-zone", get(zones::<S, C>))
        .route("/v2.1/os-availability-zone/detail", get(zones_detail::<S, C>))
        .route("/v2.1/servers", get(list::<S, C>).post(create::<S, C>))
        .route("/v2.1/servers/detail", get(list_detail::<S, C>))
        .route(
            "/v2.1/servers/{id}",
            get(show::<S, C>).delete(remove::<S, C>),
        )
        .route(
            "/v2.1/servers/{id}/action",
            axum::routing::post(crate::server_action::action::<S, C>),
        )
        .merge(crate::hypervisor::routes())
        .fallback(|| async {
            NovaError::not_found(
                "The resource could not be found. weft's compute service serves servers (create, list, detail, show, delete, actions), flavors, availability zones, hypervisors and hosts.",
            )
        })
        .layer(axum::middleware::from_fn(microversion))
}

// ---- versions and microversions ---------------------------------------------------------

pub(crate) fn compute_url(public: &str) -> String {
    format!("{public}/compute/v2.1")
}

/// `self` and `bookmark` links of one object.
pub(crate) fn links(base: &str, collection: &str, id: &str) -> Value {
    let bookmark = base.strip_suffix("/v2.1").unwrap_or(base);
    json!([
        {"rel": "self", "href": format!("{base}/{collection}/{id}")},
        {"rel": "bookmark", "href": format!("{bookmark}/{collection}/{id}")},
    ])
}

fn version_doc(public: &str) -> Value {
    json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": MICROVERSION,
        "min_version": MICROVERSION,
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/", compute_url(public))}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.compute+json;version=2.1"}],
    })
}

pub(crate) async fn versions<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
) -> Json<Value> {
    Json(json!({"versions": [version_doc(&a.config.public_url)]}))
}

async fn version<S: KvStore + Clone, C: Controller>(State(a): Adapter<S, C>) -> Json<Value> {
    Json(json!({"version": version_doc(&a.config.public_url)}))
}

/// The microversion a request asks for: `OpenStack-API-Version: compute X` first, then
/// `X-OpenStack-Nova-API-Version: X`.
fn asked_version(headers: &HeaderMap) -> Option<String> {
    let modern = headers
        .get_all("openstack-api-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let mut words = part.split_whitespace();
            (words.next()?.eq_ignore_ascii_case("compute"))
                .then(|| words.next().map(String::from))?
        });
    modern.or_else(|| {
        headers
            .get("x-openstack-nova-api-version")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    })
}

/// Checks the microversion asked for (2.1 or `latest`) and names it on every answer.
pub(crate) async fn microversion(request: Request, next: Next) -> Response {
    if let Some(asked) = asked_version(request.headers()) {
        let valid = asked.eq_ignore_ascii_case("latest")
            || asked.split_once('.').is_some_and(|(major, minor)| {
                major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok()
            });
        if !valid {
            return NovaError::bad_request(format!(
                "API Version String {asked:.40} is of invalid format. Must be of format MajorNum.MinorNum."
            ))
            .into_response();
        }
        if !asked.eq_ignore_ascii_case("latest") && asked != MICROVERSION {
            return NovaError::new(
                StatusCode::NOT_ACCEPTABLE,
                "computeFault",
                format!(
                    "Version {asked:.40} is not supported by the API. Minimum is {MICROVERSION} and maximum is {MICROVERSION}."
                ),
            )
            .into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        "openstack-api-version",
        HeaderValue::from_static("compute 2.1"),
    );
    headers.insert(
        "x-openstack-nova-api-version",
        HeaderValue::from_static("2.1"),
    );
    headers.insert(
        "vary",
        HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
    );
    response
}

pub(crate) fn caller<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    headers: &HeaderMap,
) -> Result<Caller, NovaError> {
    token_caller(a, headers).ok_or_else(NovaError::unauthorized)
}

// ---- availability zones ------------------------------------------------------------------

/// `GET /os-availability-zone`: the one zone, `nova`.
async fn zones<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    caller(&a, &headers)?;
    Ok(Json(json!({"availabilityZoneInfo": [
        {"zoneName": "nova", "zoneState": {"available": true}, "hosts": null},
    ]}))
    .into_response())
}

/// `GET /os-availability-zone/detail`: `nova` with weft's registered nodes as its hosts
/// (`nova:HOST` pins a server to one).
async fn zones_detail<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    caller(&a, &headers)?;
    let hosts: Map<String, Value> = a
        .controller
        .nodes()
        .into_iter()
        .map(|node| {
            (
                node,
                json!({"nova-compute": {"available": true, "active": true, "updated_at": null}}),
            )
        })
        .collect();
    Ok(Json(json!({"availabilityZoneInfo": [
        {"zoneName": "nova", "zoneState": {"available": true}, "hosts": hosts},
    ]}))
    .into_response())
}

// ---- servers: the record and the live view ----------------------------------------------

/// What Nova has and weft's model does not, by server id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ServerRecord {
    pub(crate) id: String,
    /// The weft app (`server-<10 hex>`).
    pub(crate) app: String,
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) image_id: String,
    pub(crate) flavor_id: String,
    pub(crate) network_id: String,
    #[serde(default)]
    pub(crate) key_name: Option<String>,
    /// As asked (`nova`, `nova:com1`).
    #[serde(default)]
    pub(crate) availability_zone: Option<String>,
    pub(crate) created_ms: u64,
    /// `user_data` as given (base64); the container sees it decoded as `WEFT_USER_DATA`.
    #[serde(default)]
    pub(crate) user_data: Option<String>,
    /// The last reboot asked (`SOFT` or `HARD`): which status a rebooting server shows.
    #[serde(default)]
    pub(crate) reboot: Option<String>,
    /// The existing port the server was created on (`networks: [{port}]`): it outlives
    /// the server, as Nova keeps a port it did not make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) port_id: Option<String>,
}

/// The server whose task's own endpoint `endpoint` is: `<app>-<n>` or `<app>-<n>-n<i>`
/// of a server's app (`server-` and 10 hex digits).
pub(crate) fn server_of_endpoint(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix(APP_PREFIX)?;
    let (hex, task) = rest.split_at_checked(10)?;
    let task = task.strip_prefix('-')?;
    let number = task.split_once("-n").map_or(task, |(n, _)| n);
    let ok = hex.bytes().all(|b| b.is_ascii_hexdigit())
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| server_id(&format!("{APP_PREFIX}{hex}")))
}

/// The id of the server that is app `app`.
pub fn server_id(app: &str) -> String {
    derived_uuid(&format!("server:{app}"))
}

/// Every server the caller may see, with its app and the network names, read once.
pub(crate) struct Servers {
    pub(crate) servers: Vec<(ServerRecord, Option<WeftApp>)>,
    network_names: BTreeMap<String, String>,
    /// Neutron's names of security groups, by id.
    group_names: BTreeMap<String, String>,
}

pub(crate) async fn servers<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
) -> Result<Servers, NovaError> {
    let records: BTreeMap<String, ServerRecord> = metas(&a.store, "server").await?;
    let mut apps: BTreeMap<String, Vec<WeftApp>> = BTreeMap::new();
    let mut servers = Vec::new();
    for record in records.into_values().filter(|r| who.may(&r.tenant)) {
        let of_tenant = apps
            .entry(record.tenant.clone())
            .or_insert_with(|| a.controller.apps(&record.tenant));
        let app = of_tenant.iter().find(|x| x.spec.id == record.app).cloned();
        servers.push((record, app));
    }
    // Newest first, as Nova lists.
    servers.sort_by(|(x, _), (y, _)| {
        y.created_ms
            .cmp(&x.created_ms)
            .then_with(|| x.id.cmp(&y.id))
    });
    let view = network::view(a, who).await?;
    let network_names = view
        .networks
        .iter()
        .map(|n| (n.epg_path(), view.network_name(n)))
        .collect();
    let group_meta: BTreeMap<String, Standard> = metas(&a.store, "security_group").await?;
    Ok(Servers {
        servers,
        network_names,
        group_names: group_meta.into_iter().map(|(id, m)| (id, m.name)).collect(),
    })
}

/// A server's state: (status, vm_state, task_state, power_state, fault).
pub(crate) fn state(
    app: Option<&WeftApp>,
) -> (&'static str, &'static str, Value, u8, Option<String>) {
    let Some(app) = app else {
        return (
            "ERROR",
            "error",
            Value::Null,
            0,
            Some("the server's weft app is gone (deleted outside OpenStack)".into()),
        );
    };
    // Stopped (`os-stop`): the app's instances are 0; SHUTOFF once its task is gone.
    if app.spec.instances == 0 {
        return match app.tasks.first() {
            Some(_) => ("ACTIVE", "active", json!("powering-off"), 1, None),
            None => ("SHUTOFF", "stopped", Value::Null, 4, None),
        };
    }
    let Some(task) = app.tasks.first() else {
        if app.pending.is_empty() {
            return ("BUILD", "building", json!("scheduling"), 0, None);
        }
        return (
            "ERROR",
            "error",
            Value::Null,
            0,
            Some(format!(
                "No valid host was found. {}",
                app.pending
                    .iter()
                    .map(|line| line.trim())
                    .filter(|line| !line.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        );
    };
    let failure = |message: Option<&String>| {
        let why = message.map_or("the container exited", String::as_str);
        if why.contains("is not present on this node") {
            format!("image not found on node {}: {why}", task.node)
        } else {
            format!("runtime failure on node {}: {why}", task.node)
        }
    };
    match task.phase {
        TaskPhase::Running => ("ACTIVE", "active", Value::Null, 1, None),
        // Rebooted (`WEFT_BOOT` raised): its agent stops and starts it in place.
        TaskPhase::Pending | TaskPhase::Starting | TaskPhase::Stopping
            if task.boot > 0 && task.restarts == 0 =>
        {
            ("REBOOT", "active", json!("reboot_started"), 1, None)
        }
        TaskPhase::Stopping => ("ACTIVE", "active", json!("deleting"), 1, None),
        TaskPhase::Failed => (
            "ERROR",
            "error",
            Value::Null,
            0,
            Some(failure(task.message.as_ref())),
        ),
        // Started again after a failure: still in error until it runs.
        TaskPhase::Pending | TaskPhase::Starting if task.restarts > 0 => (
            "ERROR",
            "error",
            Value::Null,
            0,
            Some(failure(task.message.as_ref())),
        ),
        TaskPhase::Pending | TaskPhase::Starting => {
            ("BUILD", "building", json!("spawning"), 0, None)
        }
    }
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Servers {
    fn detail(&self, base: &str, record: &ServerRecord, app: Option<&WeftApp>) -> Value {
        let (mut status, vm_state, mut task_state, power_state, fault) = state(app);
        if status == "REBOOT" && record.reboot.as_deref() == Some("HARD") {
            (status, task_state) = ("HARD_REBOOT", json!("reboot_started_hard"));
        }
        let task = app.and_then(|a| a.tasks.first());
        let project = project_id(&record.tenant);
        let mut addresses = Map::new();
        let (mut v4, mut v6) = (String::new(), String::new());
        if let (Some(app), Some(task)) = (app, task) {
            let first = (app.spec.epg.to_string(), task.ip, task.mac);
            let more = task
                .more_interfaces
                .iter()
                .map(|i| (i.epg.clone(), i.ip, i.mac));
            // The access addresses are the first network's (the default route's).
            if task.ip.is_ipv4() {
                v4 = task.ip.to_string();
            } else {
                v6 = task.ip.to_string();
            }
            for (epg, ip, mac) in std::iter::once(first).chain(more) {
                let name = self
                    .network_names
                    .get(&epg)
                    .cloned()
                    .unwrap_or_else(|| epg.rsplit('/').next().unwrap_or_default().to_string());
                let entry = json!({
                    "version": if ip.is_ipv4() { 4 } else { 6 },
                    "addr": ip.to_string(),
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": mac_text(mac),
                });
                match addresses.entry(name).or_insert_with(|| json!([])) {
                    Value::Array(list) => list.push(entry),
                    other => *other = json!([entry]),
                }
            }
        }
        let metadata: Map<String, Value> = app
            .map(|a| {
                a.spec
                    .env
                    .iter()
                    .filter(|(k, _)| *k != crate::server_action::USER_DATA_ENV)
                    .map(|(k, v)| (k.clone(), json!(v.to_string().replace("$${", "${"))))
                    .collect()
            })
            .unwrap_or_default();
        let groups: Vec<Value> = app
            .and_then(|a| a.spec.security_groups.as_ref())
            .into_iter()
            .flatten()
            .map(|model| {
                let id = security_group_id(&record.tenant, model);
                json!({"name": self.group_names.get(&id).map_or(model.as_str(), String::as_str)})
            })
            .collect();
        let bookmark = base.strip_suffix("/v2.1").unwrap_or(base);
        let created = iso8601(record.created_ms);
        let mut server = json!({
            "id": record.id,
            "name": record.name,
            "status": status,
            "tenant_id": project,
            "user_id": "",
            "metadata": metadata,
            "hostId": task.map_or(String::new(), |t| {
                sha256_hex(&[project.as_bytes(), t.node.as_bytes()])[..56].to_string()
            }),
            "image": {"id": record.image_id, "links": [
                {"rel": "bookmark", "href": format!("{bookmark}/images/{}", record.image_id)}]},
            "flavor": {"id": record.flavor_id, "links": [
                {"rel": "bookmark", "href": format!("{bookmark}/flavors/{}", record.flavor_id)}]},
            "created": created,
            "updated": task.and_then(|t| t.started_ms).map_or(created.clone(), iso8601),
            "addresses": addresses,
            "accessIPv4": v4,
            "accessIPv6": v6,
            "links": links(base, "servers", &record.id),
            "key_name": record.key_name,
            "progress": 0,
            "config_drive": "",
            "OS-DCF:diskConfig": "MANUAL",
            "OS-EXT-AZ:availability_zone": "nova",
            "OS-EXT-STS:vm_state": vm_state,
            "OS-EXT-STS:task_state": task_state,
            "OS-EXT-STS:power_state": power_state,
            // Nova's format, no zone: gophercloud parses it as 2006-01-02T15:04:05.999999
            // (RFC3339MilliNoZ), so a "Z" fails the Terraform provider's every read.
            "OS-SRV-USG:launched_at": task
                .and_then(|t| t.started_ms)
                .map(|ms| crate::time::iso8601_micros(ms).trim_end_matches('Z').to_string()),
            "OS-SRV-USG:terminated_at": null,
            "OS-EXT-SRV-ATTR:host": task.map(|t| t.node.clone()),
            "OS-EXT-SRV-ATTR:hypervisor_hostname": task.map(|t| t.node.clone()),
            // The Docker runtime's container name (`weft_runtime::docker::container_name`).
            "OS-EXT-SRV-ATTR:instance_name": task.map_or(String::new(), |t| format!("weft-{}", t.id)),
            "os-extended-volumes:volumes_attached": [],
            "security_groups": groups,
            "weft:app": record.app,
            "weft:task": task.map(|t| t.id.clone()),
        });
        if let Some(message) = fault {
            server["fault"] = json!({"code": 500, "message": message, "created": created});
        }
        server
    }

    pub(crate) fn find(&self, id: &str) -> Result<&(ServerRecord, Option<WeftApp>), NovaError> {
        self.servers
            .iter()
            .find(|(r, _)| r.id == id)
            .ok_or_else(|| NovaError::not_found(format!("Instance {id:.64} could not be found.")))
    }
}

// ---- servers: handlers ------------------------------------------------------------------

async fn list<S: KvStore + Clone, C: Controller>(
    a: Adapter<S, C>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    listing(a, headers, uri, false).await
}

async fn list_detail<S: KvStore + Clone, C: Controller>(
    a: Adapter<S, C>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    listing(a, headers, uri, true).await
}

/// `GET /servers` and `/servers/detail`: filters `name` (a substring; Nova's is a
/// regular expression), `status`, `image`, `flavor`, `host`; `limit` and `marker`
/// pages with a `next` link. Other parameters are ignored, as Nova ignores them for a
/// project.
async fn listing<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    uri: Uri,
    detailed: bool,
) -> Answer {
    let who = caller(&a, &headers)?;
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| NovaError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let all = servers(&a, &who).await?;
    let base = compute_url(&a.config.public_url);
    let mut items: Vec<Value> = all
        .servers
        .iter()
        .map(|(r, app)| all.detail(&base, r, app.as_ref()))
        .collect();
    let mut limit = None;
    let mut marker = None;
    for (key, value) in &pairs {
        let field = |s: &Value, k: &str| s[k].as_str().unwrap_or_default().to_string();
        match key.as_str() {
            "name" => items.retain(|s| field(s, "name").contains(value.as_str())),
            "status" => items.retain(|s| field(s, "status").eq_ignore_ascii_case(value)),
            "image" => items.retain(|s| s["image"]["id"] == json!(value)),
            "flavor" => items.retain(|s| s["flavor"]["id"] == json!(value)),
            "host" => items.retain(|s| s["OS-EXT-SRV-ATTR:host"] == json!(value)),
            "limit" => {
                limit = Some(value.parse::<usize>().map_err(|_| {
                    NovaError::bad_request(format!("limit {value:.20} is not a number"))
                })?);
            }
            "marker" => marker = Some(value.clone()),
            _ => {}
        }
    }
    if let Some(marker) = marker {
        let at = items
            .iter()
            .position(|s| s["id"] == json!(marker))
            .ok_or_else(|| NovaError::bad_request(format!("marker [{marker:.64}] not found")))?;
        items.drain(..=at);
    }
    let mut body = Map::new();
    if let Some(limit) = limit
        && items.len() > limit
    {
        items.truncate(limit);
        if let Some(last) = items.last().and_then(|s| s["id"].as_str()) {
            let path = if detailed {
                "servers/detail"
            } else {
                "servers"
            };
            body.insert(
                "servers_links".into(),
                json!([{"rel": "next", "href": format!("{base}/{path}?limit={limit}&marker={last}")}]),
            );
        }
    }
    if !detailed {
        items = items
            .into_iter()
            .map(|s| json!({"id": s["id"], "name": s["name"], "links": s["links"]}))
            .collect();
    }
    body.insert("servers".into(), Value::Array(items));
    Ok(Json(Value::Object(body)).into_response())
}

async fn show<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let all = servers(&a, &who).await?;
    let (record, app) = all.find(&id)?;
    let base = compute_url(&a.config.public_url);
    Ok(Json(json!({"server": all.detail(&base, record, app.as_ref())})).into_response())
}

/// `DELETE /servers/{id}`: the app goes with its task and endpoint in one transaction
/// (the node's agent then stops and removes the container), then the record.
async fn remove<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let _serialised = a.writes.lock().await;
    let all = servers(&a, &who).await?;
    let (record, app) = all.find(&id)?;
    if app.is_some() {
        a.controller.delete_app(&record.tenant, &record.app).await?;
    }
    // A port it was created on stays, detached (as Nova keeps a port it did not make).
    if let Some(port_id) = &record.port_id {
        crate::port::set_device(&a, port_id, None).await?;
    }
    delete_meta(&a, "server", &record.id).await?;
    tracing::info!(server = %record.id, app = %record.app, "server deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What `POST /servers` may name; anything else is refused as Nova's schema refuses it.
const CREATE_KEYS: &[&str] = &[
    "name",
    "imageRef",
    "flavorRef",
    "networks",
    "metadata",
    "availability_zone",
    "min_count",
    "max_count",
    "key_name",
    "block_device_mapping_v2",
    "return_reservation_id",
    "config_drive",
    "OS-DCF:diskConfig",
    "security_groups",
    "user_data",
    "accessIPv4",
    "accessIPv6",
    "adminPass",
    "personality",
    "block_device_mapping",
];

fn bad(message: impl Into<String>) -> NovaError {
    NovaError::bad_request(message)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The server's name: 1 to 255 characters, no leading or trailing whitespace.
fn server_name(object: &Map<String, Value>) -> Result<String, NovaError> {
    let Some(name) = object.get("name") else {
        return Err(bad(
            "Invalid input for field/attribute server. Value: 'name' is a required property",
        ));
    };
    let Some(name) = name.as_str() else {
        return Err(bad(
            "Invalid input for field/attribute name. Value: not a string",
        ));
    };
    if name.is_empty() || name.chars().count() > 255 || name.trim() != name {
        return Err(bad(format!(
            "Invalid input for field/attribute name. Value: {name:.64}. 1 to 255 characters without leading or trailing whitespace"
        )));
    }
    Ok(name.to_string())
}

/// `metadata`: at most 128 items (403, Nova's quota), keys 1 to 255 characters, values
/// at most 255; they become environment variables, so a key has no `=` or NUL and does
/// not start with `WEFT_` (weft's own variables).
fn metadata(object: &Map<String, Value>) -> Result<BTreeMap<String, String>, NovaError> {
    let items = match object.get("metadata") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(items)) => items,
        Some(_) => {
            return Err(bad(
                "Invalid input for field/attribute metadata. Value: not an object",
            ));
        }
    };
    if items.len() > MAX_METADATA_ITEMS {
        return Err(NovaError::forbidden(format!(
            "Quota exceeded for metadata_items: Requested {}, but already used 0 of {MAX_METADATA_ITEMS} metadata_items",
            items.len()
        )));
    }
    let mut env = BTreeMap::new();
    for (key, value) in items {
        let Some(value) = value.as_str() else {
            return Err(bad(format!(
                "Invalid input for field/attribute metadata. Value of {key:.64} is not a string"
            )));
        };
        if key.is_empty() || key.chars().count() > MAX_METADATA_LENGTH {
            return Err(bad(format!(
                "Invalid input for field/attribute metadata. Keys are 1 to {MAX_METADATA_LENGTH} characters: {key:.64}"
            )));
        }
        if value.chars().count() > MAX_METADATA_LENGTH {
            return Err(bad(format!(
                "Invalid input for field/attribute metadata. The value of {key:.64} is longer than {MAX_METADATA_LENGTH} characters"
            )));
        }
        if key.contains(['=', '\0']) || value.contains('\0') {
            return Err(bad(format!(
                "metadata {key:.64}: weft passes metadata as environment variables; a key has no '=' or NUL, a value no NUL"
            )));
        }
        if key.to_ascii_uppercase().starts_with("WEFT_") {
            return Err(bad(format!(
                "metadata {key:.64}: names starting with WEFT_ are weft's own environment variables"
            )));
        }
        env.insert(key.clone(), value.to_string());
    }
    Ok(env)
}

/// What a server is attached to: a network (it gets a port of its own) or an existing
/// port (by id).
enum Attachment<'v> {
    /// With the `fixed_ip` asked, if one was.
    Network(&'v NetworkView, Option<IpAddr>),
    Port(String),
}

/// The server's networks, in order: `networks: [{"uuid"}, ...]`, with a `{"port"}`
/// allowed first, or the project's only network. The first has the default route.
fn attachments<'v>(
    object: &Map<String, Value>,
    view: &'v network::View,
    who: &Caller,
) -> Result<Vec<Attachment<'v>>, NovaError> {
    let entries = match object.get("networks") {
        None | Some(Value::Null) => {
            let own: Vec<&NetworkView> = view
                .networks
                .iter()
                .filter(|n| matches!(who, Caller::Tenant(t) if *t == n.tenant))
                .collect();
            return match own[..] {
                [one] => Ok(vec![Attachment::Network(one, None)]),
                [] => Err(bad(
                    "No network is available: create one and name it in networks [{uuid}]",
                )),
                _ => Err(NovaError::conflict(
                    "Multiple possible networks found, use a Network ID to be more specific.",
                )),
            };
        }
        Some(Value::Array(entries)) => entries,
        Some(Value::String(s)) => {
            return Err(bad(format!(
                "networks {s:.20}: auto and none need microversion 2.37; weft serves 2.1"
            )));
        }
        Some(_) => return Err(bad("Bad networks format: a list of {uuid} or {port}")),
    };
    if entries.is_empty() || entries.len() > 1 + MAX_EXTRA_NETWORKS {
        return Err(bad(format!(
            "weft attaches a server to 1 to {} networks ({} given)",
            1 + MAX_EXTRA_NETWORKS,
            entries.len()
        )));
    }
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let attachment = one_attachment(entry, view)?;
        match (&attachment, out.first()) {
            (Attachment::Port(port), Some(_)) => {
                return Err(bad(format!(
                    "Bad networks format: port {port} is entry {i}; weft runs a server in an existing port only as its first network"
                )));
            }
            (Attachment::Network(net, _), Some(Attachment::Network(first, _)))
                if net.tenant != first.tenant =>
            {
                return Err(bad(format!(
                    "Network {} is another project's than the server's first network",
                    net.id
                )));
            }
            _ => {}
        }
        out.push(attachment);
    }
    Ok(out)
}

/// One entry of `networks`: `{"uuid", "fixed_ip"?}` or `{"port"}`.
fn one_attachment<'v>(entry: &Value, view: &'v network::View) -> Result<Attachment<'v>, NovaError> {
    let Some(entry) = entry.as_object() else {
        return Err(bad("Bad networks format: a list of {uuid} or {port}"));
    };
    if let Some(unknown) = entry
        .keys()
        .find(|k| !matches!(k.as_str(), "uuid" | "port" | "fixed_ip" | "tag"))
    {
        return Err(bad(format!(
            "Invalid input for field/attribute networks. Additional properties are not allowed ('{unknown:.40}' was unexpected)"
        )));
    }
    if let Some(port) = entry.get("port").filter(|p| !p.is_null()) {
        let Some(port) = port.as_str().filter(|p| is_uuid(p)) else {
            return Err(bad(format!(
                "Bad networks format: port id is not in proper format ({:.64})",
                port.to_string()
            )));
        };
        if entry.get("fixed_ip").is_some_and(|p| !p.is_null()) {
            return Err(bad(
                "Bad networks format: a fixed_ip with a port (the port has its address)",
            ));
        }
        if entry.get("uuid").is_some_and(|p| !p.is_null()) {
            return Err(bad(
                "Bad networks format: a port, or a network uuid, not both",
            ));
        }
        return Ok(Attachment::Port(port.to_string()));
    }
    let fixed_ip = match entry.get("fixed_ip") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.parse::<IpAddr>().map_err(|_| {
            bad(format!(
                "Invalid input for field/attribute fixed_ip. Value: {text:.64}. '{text:.64}' is not a 'ip-address'"
            ))
        })?),
        Some(other) => {
            return Err(bad(format!(
                "Invalid input for field/attribute fixed_ip. Value: {:.64}",
                other.to_string()
            )));
        }
    };
    let Some(uuid) = entry.get("uuid").and_then(Value::as_str) else {
        return Err(bad("Bad networks format: each network needs a uuid"));
    };
    if !is_uuid(uuid) {
        return Err(bad(format!(
            "Bad networks format: network uuid is not in proper format ({uuid:.64})"
        )));
    }
    view.network(uuid)
        .map(|net| Attachment::Network(net, fixed_ip))
        .map_err(|_| bad(format!("Network {uuid} could not be found.")))
}

/// A `fixed_ip` must be in one of the network's subnets and no port's (Nova answers 400
/// for either). A race with another create is the scheduler's to settle: the task then
/// stays unplaced and the server shows why.
fn fixed_ip_free<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    view: &network::View,
    net: &NetworkView,
    ip: IpAddr,
) -> Result<(), NovaError> {
    let subnet = view
        .subnets
        .iter()
        .find(|s| s.tenant == net.tenant && s.bd == net.bd && s.cidr.contains(&ip));
    let Some(subnet) = subnet else {
        return Err(bad(format!(
            "Fixed IP address {ip} is not in a subnet of network {}",
            net.id
        )));
    };
    if ip == subnet.gateway || ip == subnet.cidr.network() || ip == subnet.cidr.broadcast() {
        return Err(bad(format!(
            "Fixed IP address {ip} is the subnet's gateway, network or broadcast address"
        )));
    }
    let vrf_peers = a.controller.endpoints(&net.tenant);
    if let Some(user) = vrf_peers.iter().find(|e| e.ip == ip) {
        return Err(bad(format!(
            "Fixed IP address {ip} is already in use on port {}",
            crate::port::port_id(&user.name)
        )));
    }
    Ok(())
}

/// The node `availability_zone` pins (`nova:HOST` or `nova:HOST:NODE`), if any.
fn pinned_node(
    object: &Map<String, Value>,
    nodes: &[String],
) -> Result<(Option<String>, Option<String>), NovaError> {
    let zone = match object.get("availability_zone") {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::String(z)) if z.len() <= 255 => z.clone(),
        Some(_) => {
            return Err(bad(
                "Invalid input for field/attribute availability_zone. Value: not a string of at most 255 characters",
            ));
        }
    };
    let mut parts = zone.splitn(3, ':');
    let name = parts.next().unwrap_or_default();
    if !name.is_empty() && name != "nova" {
        return Err(bad(format!(
            "The requested availability zone is not available: weft has one zone, nova ({name:.64} asked)"
        )));
    }
    let host = parts.next().filter(|h| !h.is_empty());
    let Some(host) = host else {
        return Ok((None, Some(zone)));
    };
    if !nodes.iter().any(|n| n == host) {
        return Err(bad(format!("Compute host {host:.64} could not be found.")));
    }
    Ok((Some(host.to_string()), Some(zone.clone())))
}

/// The image a reference names (an id or a URL ending in one) that the caller may use.
async fn image_of<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
    object: &Map<String, Value>,
) -> Result<ImageRecord, NovaError> {
    let reference = match object.get("imageRef") {
        Some(Value::String(r)) if r.len() <= 2048 => r.clone(),
        None | Some(Value::Null) => {
            return Err(bad(
                "weft boots servers from an image only: imageRef is required",
            ));
        }
        Some(_) => return Err(bad("Invalid imageRef provided.")),
    };
    let id = reference.rsplit('/').next().unwrap_or_default();
    if !is_uuid(id) {
        return Err(bad("Invalid imageRef provided."));
    }
    image::find(a, who, id)
        .await?
        .ok_or_else(|| bad(format!("Image {id} could not be found.")))
}

async fn flavor_of<S: KvStore + Clone>(
    store: &S,
    object: &Map<String, Value>,
) -> Result<Flavor, NovaError> {
    let reference = match object.get("flavorRef") {
        Some(Value::String(r)) if r.len() <= 2048 => r.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => {
            return Err(bad(
                "Invalid input for field/attribute server. Value: 'flavorRef' is a required property",
            ));
        }
        Some(_) => return Err(bad("Invalid flavorRef provided.")),
    };
    flavor::find(store, &reference).await?.ok_or_else(|| {
        bad(format!(
            "Flavor {:.64} could not be found.",
            reference.rsplit('/').next().unwrap_or_default()
        ))
    })
}

/// What the create accepts without doing anything with it, or refuses as not served.
fn unsupported(object: &Map<String, Value>, image_id: &str) -> Result<(), NovaError> {
    for key in ["min_count", "max_count"] {
        match object.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64() == Some(1) || v.as_str() == Some("1") => {}
            Some(_) => {
                return Err(bad(format!("{key}: weft creates one server per request")));
            }
        }
    }
    let off = |key: &str| match object.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => true,
        Some(Value::String(s)) => s.is_empty() || s == "False" || s == "false",
        Some(Value::Array(v)) => v.is_empty(),
        Some(_) => false,
    };
    for (key, why) in [
        ("return_reservation_id", "reservation ids are not served"),
        (
            "config_drive",
            "there is no config drive (metadata is the environment)",
        ),
        ("accessIPv4", "a server's address is its port's"),
        ("accessIPv6", "a server's address is its port's"),
        ("adminPass", "containers have no admin password"),
        ("personality", "personality files are not served"),
        ("block_device_mapping", "volumes are not served"),
    ] {
        if !off(key) {
            return Err(bad(format!("{key}: {why}")));
        }
    }
    // The CLI's and SDK's boot-from-image mapping is accepted; volumes are not.
    if let Some(Value::Array(mappings)) = object.get("block_device_mapping_v2") {
        for m in mappings {
            let source = m.get("source_type").and_then(Value::as_str);
            let destination = m.get("destination_type").and_then(Value::as_str);
            let uuid = m.get("uuid").and_then(Value::as_str);
            let image_boot = source == Some("image")
                && destination.is_none_or(|d| d == "local")
                && uuid.is_none_or(|u| u == image_id);
            if !image_boot {
                return Err(bad(
                    "block_device_mapping_v2: weft boots from the image alone; volumes are not served",
                ));
            }
        }
    } else if !off("block_device_mapping_v2") {
        return Err(bad("block_device_mapping_v2 must be a list"));
    }
    Ok(())
}

/// Security groups a server may name, as Neutron's port does.
const MAX_GROUPS: usize = 64;

/// `security_groups: [{"name"}]` as names (absent or empty: `default`, as Nova).
fn group_refs(object: &Map<String, Value>) -> Result<Vec<String>, NovaError> {
    let entries = match object.get("security_groups") {
        None | Some(Value::Null) => return Ok(vec![DEFAULT.to_string()]),
        Some(Value::Array(entries)) if entries.is_empty() => {
            return Ok(vec![DEFAULT.to_string()]);
        }
        Some(Value::Array(entries)) if entries.len() <= MAX_GROUPS => entries,
        Some(_) => {
            return Err(bad(format!(
                "Invalid input for field/attribute security_groups. Value: a list of at most {MAX_GROUPS} {{name}}"
            )));
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && n.len() <= 255)
            .ok_or_else(|| {
                bad("Invalid input for field/attribute security_groups. Value: each needs a name of 1 to 255 characters")
            })?;
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// The model's names of the groups `refs` name in `tenant_name`: by Neutron name, id or
/// model name (`default` is the project's default group, made when missing).
fn resolve_groups(
    tenant_name: &str,
    tenant: &Tenant,
    group_meta: &BTreeMap<String, Standard>,
    refs: &[String],
) -> Result<Vec<String>, NovaError> {
    refs.iter()
        .map(|r| {
            if r == DEFAULT {
                return Ok(DEFAULT.to_string());
            }
            let matches: Vec<&String> = tenant
                .security_groups
                .keys()
                .filter(|model| {
                    let id = security_group_id(tenant_name, model);
                    *model == r || id == *r || group_meta.get(&id).is_some_and(|m| m.name == *r)
                })
                .collect();
            match matches[..] {
                [one] => Ok(one.clone()),
                [] => Err(bad(format!(
                    "Security group {r:.64} not found for project {}.",
                    project_id(tenant_name)
                ))),
                _ => Err(NovaError::conflict(format!(
                    "Multiple security groups named {r:.64}: name one by id"
                ))),
            }
        })
        .collect()
}

/// `POST /servers`: checks everything the request names, keeps the record, then creates
/// the app (one task) through weft's app admission; 202 with the server's id.
async fn create<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| bad(format!("Malformed request body: {e}")))?;
    let Some(Value::Object(object)) = value.get("server").cloned() else {
        return Err(bad(
            "Invalid input for field/attribute server. Value: 'server' is a required property",
        ));
    };
    if let Some(unknown) = object.keys().find(|k| !CREATE_KEYS.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input for field/attribute server. Additional properties are not allowed ('{unknown:.64}' was unexpected)"
        )));
    }
    if let Some(hints) = value
        .get("os:scheduler_hints")
        .or_else(|| value.get("OS-SCH-HNT:scheduler_hints"))
        && hints.as_object().is_some_and(|h| !h.is_empty())
    {
        return Err(bad(
            "scheduler hints are not served: pin a host with availability_zone nova:HOST",
        ));
    }
    let name = server_name(&object)?;
    let mut env = metadata(&object)?;
    let user_data = crate::server_action::user_data(&object)?;
    if let Some((_, text)) = &user_data {
        env.insert(crate::server_action::USER_DATA_ENV.into(), text.clone());
    }
    let group_refs = group_refs(&object)?;
    let flavor = flavor_of(&a.store, &object).await?;
    let image = image_of(&a, &who, &object).await?;
    unsupported(&object, &image.id)?;
    if image.min_ram > flavor.ram {
        return Err(bad("Flavor's memory is too small for requested image."));
    }
    let key_name = match object.get("key_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k.len() <= 255 => {
            tracing::warn!(key_name = %k, "key_name is accepted and ignored: containers get no SSH key");
            Some(k.clone())
        }
        Some(_) => return Err(bad("Invalid input for field/attribute key_name.")),
    };
    let (mut node, zone) = pinned_node(&object, &a.controller.nodes())?;
    let view = network::view(&a, &who).await?;
    let mut attachments = attachments(&object, &view, &who)?.into_iter();
    let first = attachments
        .next()
        .ok_or_else(|| bad("Bad networks format: no network"))?;
    // The networks after the first: more interfaces of the container, no default route.
    let mut more_networks = Vec::new();
    for attachment in attachments {
        let Attachment::Network(net, fixed_ip) = attachment else {
            return Err(bad("Bad networks format: a port only as the first network"));
        };
        if let Some(ip) = fixed_ip {
            fixed_ip_free(&a, &view, net, ip)?;
        }
        let epg: EpgPath = net
            .epg_path()
            .parse()
            .map_err(|e| NovaError::internal(format!("network {}: {e}", net.id)))?;
        more_networks.push(AppNetwork { epg, ip: fixed_ip });
    }
    // On an existing port: its network, and its node (where its endpoint is).
    let (net, port, fixed_ip) = match first {
        Attachment::Network(net, fixed_ip) => {
            if let Some(ip) = fixed_ip {
                fixed_ip_free(&a, &view, net, ip)?;
            }
            (net.clone(), None, fixed_ip)
        }
        Attachment::Port(port_id) => {
            let (tenant, endpoint) =
                crate::port::for_server(&a, &who, &port_id)
                    .await
                    .map_err(|e| match e.status {
                        StatusCode::NOT_FOUND => {
                            bad(format!("Port id {port_id} could not be found."))
                        }
                        _ => NovaError::from(e),
                    })?;
            let net = view
                .networks
                .iter()
                .find(|n| n.tenant == tenant && n.epg_path() == endpoint.epg)
                .ok_or_else(|| bad(format!("Port {port_id}'s network could not be found.")))?;
            if let Some(pinned) = node.as_ref().filter(|n| **n != endpoint.node) {
                return Err(bad(format!(
                    "Port {port_id} is bound to host {}; availability_zone asks host {pinned}",
                    endpoint.node
                )));
            }
            node = Some(endpoint.node.clone());
            (net.clone(), Some((port_id, endpoint.name)), None)
        }
    };
    let docker: ImageRef = image
        .docker_ref
        .parse()
        .map_err(|e| NovaError::internal(format!("image {}: {e}", image.id)))?;
    let epg: EpgPath = net
        .epg_path()
        .parse()
        .map_err(|e| NovaError::internal(format!("network {}: {e}", net.id)))?;

    let _serialised = a.writes.lock().await;
    let existing: BTreeMap<String, ServerRecord> = metas(&a.store, "server").await?;
    if existing.values().filter(|r| r.tenant == net.tenant).count() >= MAX_SERVERS_PER_PROJECT {
        return Err(NovaError::forbidden(format!(
            "Quota exceeded for instances: at most {MAX_SERVERS_PER_PROJECT} per project"
        )));
    }
    let mut tenant = project_tenant(&a, &net.tenant);
    let group_meta: BTreeMap<String, Standard> = metas(&a.store, "security_group").await?;
    // A port keeps its own groups (Nova applies the server's to the ports it makes).
    let groups = match &port {
        None => Some(resolve_groups(
            &net.tenant,
            &tenant,
            &group_meta,
            &group_refs,
        )?),
        Some(_) => None,
    };
    let made_default = groups.iter().flatten().any(|g| g == DEFAULT) && with_default(&mut tenant);
    if made_default {
        a.controller.commit(&net.tenant, Some(tenant)).await?;
        tracing::info!(tenant = %net.tenant, "neutron default security group created for a server");
    }
    let app = format!("{APP_PREFIX}{}", random_hex(5)?);
    let id = server_id(&app);
    let mut spec = AppSpec::new(&app, epg, flavor.cpus(), flavor.ram);
    spec.cmd = None;
    spec.image = Some(docker);
    spec.env = env
        .iter()
        .map(|(k, v)| (k.clone(), EnvTemplate::literal(v)))
        .collect();
    spec.security_groups = groups;
    // One given address (the port's, or the fixed ip): its task is replaced stop-first.
    spec.endpoint = port.as_ref().map(|(_, endpoint)| endpoint.clone());
    spec.ip = fixed_ip;
    spec.networks = more_networks;
    if spec.endpoint.is_some() || spec.ip.is_some() || spec.networks.iter().any(|n| n.ip.is_some())
    {
        spec.upgrade_strategy = UpgradeStrategy {
            minimum_health_capacity: 0.0,
            maximum_over_capacity: 0.0,
        };
    }
    // weft:privileged in the flavor's extra specs or the image's properties; admission
    // refuses it (403) unless an admin allowed the project.
    spec.privileged = flavor.privileged() || image.privileged();
    if port.is_some() {
        // Placed where the port's endpoint is by the scheduler.
    } else if let Some(node) = &node {
        spec.constraints.push(Constraint::Equal {
            attribute: "hostname".into(),
            value: node.clone(),
        });
    } else if let Some(holders) = image.holders_constraint() {
        // On a node whose engine holds the image (no engine pulls).
        spec.constraints.push(holders);
    }
    let record = ServerRecord {
        id: id.clone(),
        app: app.clone(),
        tenant: net.tenant.clone(),
        name,
        image_id: image.id.clone(),
        flavor_id: flavor.id.to_string(),
        network_id: net.id.clone(),
        key_name,
        availability_zone: zone,
        created_ms: now_ms(),
        user_data: user_data.map(|(given, _)| given),
        reboot: None,
        port_id: port.as_ref().map(|(p, _)| p.clone()),
    };
    let created = match put_meta(&a, "server", &id, &record).await {
        Ok(()) => a
            .controller
            .create_app(&who, spec)
            .await
            .map_err(NovaError::from),
        Err(e) => Err(e.into()),
    };
    let created = match (created, &port) {
        (Ok(()), Some((port_id, _))) => crate::port::set_device(&a, port_id, Some(&id))
            .await
            .map_err(NovaError::from),
        (other, _) => other,
    };
    if let Err(err) = created {
        if port.is_some() {
            let _ = a.controller.delete_app(&net.tenant, &app).await;
        }
        if let Err(e) = delete_meta(&a, "server", &id).await {
            tracing::warn!(error = %e, "could not remove the record of a refused server");
        }
        if made_default {
            undo_default(&a, &net.tenant).await;
        }
        return Err(err);
    }
    tracing::info!(server = %id, %app, image = %image.docker_ref, flavor = %flavor.name, node = ?node, "server created");
    let base = compute_url(&a.config.public_url);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"server": {
            "id": id,
            "links": links(&base, "servers", &id),
            "OS-DCF:diskConfig": "MANUAL",
        }})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn metadata_is_bounded_as_nova_bounds_it() {
        let ok = metadata(&obj(json!({"metadata": {"master": "10.0.0.5"}}))).unwrap();
        assert_eq!(ok["master"], "10.0.0.5");
        let many: Map<String, Value> = (0..129).map(|i| (format!("k{i}"), json!("v"))).collect();
        let err = metadata(&obj(json!({ "metadata": many }))).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        for bad in [
            json!({"metadata": {"": "v"}}),
            json!({"metadata": {"k".repeat(256): "v"}}),
            json!({"metadata": {"k": "v".repeat(256)}}),
            json!({"metadata": {"k": 1}}),
            json!({"metadata": {"a=b": "v"}}),
            json!({"metadata": {"WEFT_TASK": "v"}}),
            json!({"metadata": []}),
        ] {
            let err = metadata(&obj(bad.clone())).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn names_and_zones() {
        assert!(server_name(&obj(json!({"name": "vm1"}))).is_ok());
        for bad in [
            json!({}),
            json!({"name": ""}),
            json!({"name": " x"}),
            json!({"name": "x".repeat(256)}),
        ] {
            assert!(server_name(&obj(bad)).is_err());
        }
        let nodes = vec!["com1".to_string(), "com2".to_string()];
        let pin = |z: &str| pinned_node(&obj(json!({ "availability_zone": z })), &nodes);
        assert_eq!(pin("nova:com2").unwrap().0.as_deref(), Some("com2"));
        assert_eq!(pin("nova:com1:com1").unwrap().0.as_deref(), Some("com1"));
        assert_eq!(pin("nova").unwrap().0, None);
        assert!(pin("nova:com9").is_err());
        assert!(pin("az2").is_err());
    }

    #[test]
    fn microversions_asked_either_way() {
        let mut h = HeaderMap::new();
        h.insert(
            "openstack-api-version",
            HeaderValue::from_static("compute 2.1"),
        );
        assert_eq!(asked_version(&h).as_deref(), Some("2.1"));
        let mut h = HeaderMap::new();
        h.insert(
            "x-openstack-nova-api-version",
            HeaderValue::from_static("2.79"),
        );
        assert_eq!(asked_version(&h).as_deref(), Some("2.79"));
        let mut h = HeaderMap::new();
        h.insert(
            "openstack-api-version",
            HeaderValue::from_static("network 2.0"),
        );
        assert_eq!(asked_version(&h), None);
    }
}
