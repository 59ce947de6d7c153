//! What the OpenStack adapter (`weft-openstack`) asks of the controller: tokens (a
//! Keystone token is a weft tenant token with an expiry), the current model and its
//! endpoints from the live snapshot, and admission for every network write. Also the
//! listener (`start_openstack`) and weft's own route that creates Keystone users.

use crate::admission;
use crate::auth::{self, Role, tenant_role};
use crate::error::{ApiFailure, ApiResult, ServerError};
use crate::extract::ApiJson;
use crate::keys;
use crate::liveness::{Liveness, now_ms};
use crate::server::AppState;
use crate::state::{EndpointRecord, Stored};
use crate::state::{TokenGrant, as_revision};
use crate::watch::caught_up;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use weft_api::{AppsRequest, EndpointRequest, EndpointState, MacAddr, TaskState};
use weft_model::{EpgPath, Model, Tenant};
use weft_openstack::{
    AddressPair, Caller, Controller, EndpointSpec, NodeDockerImage, OpenStackError, PortUpdate,
    TaskPhase, WeftApp, WeftEndpoint, WeftNode, WeftTask,
};
use weft_store::{Compare, CompareOp, KvStore, Txn, TxnOp, TxnOpResponse};

/// Attempts before an endpoint write gives up on a busy store.
const MAX_ATTEMPTS: usize = 64;
/// A task's boot count (raised by each OpenStack reboot), in its environment.
const BOOT_ENV: &str = "WEFT_BOOT";
/// How long reading a console may take.
const CONSOLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many times a task was rebooted in place (its `WEFT_BOOT`; 0 when never).
fn boot_count(task: &crate::apps::TaskRecord) -> u32 {
    task.env
        .as_ref()
        .and_then(|env| env.get(BOOT_ENV))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Task `task` of `tenant` in `snapshot`; 404 when there is none (or another tenant's).
fn tenant_task<'a>(
    snapshot: &'a crate::state::Snapshot,
    tenant: &str,
    task: &str,
) -> Result<&'a Stored<crate::apps::TaskRecord>, OpenStackError> {
    snapshot
        .tasks
        .get(task)
        .filter(|t| t.value.spec.epg.tenant == tenant)
        .ok_or_else(|| OpenStackError::NotFound(format!("task {task} does not exist")))
}

/// Whether `tenant` has app `id` in `snapshot`.
fn has_app(snapshot: &crate::state::Snapshot, tenant: &str, id: &str) -> bool {
    snapshot
        .apps
        .get(id)
        .is_some_and(|a| a.value.epg.tenant == tenant)
}

/// The caller's own role in weft's API.
fn role_of(who: &Caller) -> Role {
    match who {
        Caller::Admin => Role::Admin,
        Caller::Tenant(tenant) => Role::Tenant(tenant.clone()),
    }
}

/// The controller as the OpenStack adapter sees it.
#[derive(Debug)]
pub struct ServerController {
    pub(crate) state: Arc<AppState>,
}

fn internal(err: impl std::fmt::Display) -> OpenStackError {
    OpenStackError::Internal(err.to_string())
}

impl From<ApiFailure> for OpenStackError {
    fn from(failure: ApiFailure) -> Self {
        match failure {
            ApiFailure::BadRequest {
                message, details, ..
            }
            | ApiFailure::Unprocessable {
                message, details, ..
            } => OpenStackError::Invalid { message, details },
            ApiFailure::Conflict {
                message, details, ..
            } => OpenStackError::Conflict { message, details },
            ApiFailure::NotFound { message, .. } => OpenStackError::NotFound(message),
            ApiFailure::Forbidden(message) => OpenStackError::Forbidden(message),
            other => OpenStackError::Internal(other.to_string()),
        }
    }
}

impl Controller for ServerController {
    fn caller(&self, token: &str) -> Option<Caller> {
        let hashed = auth::hash(token);
        if hashed == self.state.tokens.admin_hash() {
            return Some(Caller::Admin);
        }
        match tenant_role(self.state.snapshot().tokens.get(&hashed), now_ms())? {
            Role::Tenant(tenant) => Some(Caller::Tenant(tenant)),
            Role::Admin | Role::Agent => None,
        }
    }

    async fn issue_token(&self, tenant: &str, expires_ms: u64) -> Result<String, OpenStackError> {
        let token = auth::new_token().map_err(internal)?;
        let grant = serde_json::to_vec(&TokenGrant {
            tenant: tenant.to_string(),
            expires_ms: Some(expires_ms),
        })
        .map_err(internal)?;
        let put = self
            .state
            .store
            .put(keys::token(&auth::hash(&token)).as_bytes(), &grant, None)
            .await?;
        // The token must work on the next request, on either listener.
        caught_up(&self.state, as_revision(put.revision)).await;
        Ok(token)
    }

    async fn revoke_token(&self, token: &str) -> Result<bool, OpenStackError> {
        let deleted = self
            .state
            .store
            .delete(keys::token(&auth::hash(token)).as_bytes())
            .await?;
        caught_up(&self.state, as_revision(deleted.revision)).await;
        Ok(deleted.deleted() > 0)
    }

    fn tenants(&self) -> Vec<String> {
        self.state
            .snapshot()
            .model
            .tenants
            .keys()
            .cloned()
            .collect()
    }

    fn tenant(&self, name: &str) -> Option<Tenant> {
        self.state.snapshot().model.tenants.get(name).cloned()
    }

    fn endpoints(&self, tenant: &str) -> Vec<WeftEndpoint> {
        self.state
            .snapshot()
            .endpoints
            .values()
            .filter(|e| e.value.epg.tenant == tenant)
            .map(|e| self.weft_endpoint(e))
            .collect()
    }

    fn gateway_mac(&self, tenant: &str, bd: &str) -> Option<[u8; 6]> {
        let path = format!("{tenant}/{bd}");
        self.state
            .snapshot()
            .policy
            .vrfs
            .values()
            .flat_map(|vrf| &vrf.bridge_domains)
            .find(|b| b.path.to_string() == path)
            .map(|b| b.gateway_mac)
    }

    async fn create_endpoint(&self, spec: EndpointSpec) -> Result<WeftEndpoint, OpenStackError> {
        let epg: EpgPath = spec.epg.parse().map_err(|e| OpenStackError::Invalid {
            message: format!("EPG {}: {e}", spec.epg),
            details: Vec::new(),
        })?;
        let name_ok = (1..=32).contains(&spec.name.len())
            && spec
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            return Err(invalid(format!(
                "endpoint name {:?} must be 1 to 32 characters of [a-z0-9-]",
                spec.name
            )));
        }
        if let Some(mac) = spec.mac
            && !crate::ipam::mac_is_assignable(MacAddr(mac))
        {
            return Err(invalid(format!(
                "{} is a multicast or zero MAC",
                MacAddr(mac)
            )));
        }
        let request = EndpointRequest {
            name: spec.name.clone(),
            epg,
            node: spec.node.clone(),
            ip: spec.ip,
            mac: spec.mac.map(MacAddr),
            allowed_address_pairs: spec.allowed_address_pairs.iter().map(wire_pair).collect(),
            port_security: spec.port_security,
            security_groups: spec.security_groups.clone(),
        };
        for _ in 0..MAX_ATTEMPTS {
            let snapshot = self.state.snapshot();
            let (record, _reservation) =
                crate::routes::plan_endpoint(&self.state, &snapshot, &request)?;
            let endpoint_key = keys::endpoint(&record.name);
            let ip_key = keys::ip_claim(&record.vrf, record.ip);
            let mac_key = keys::mac_claim(record.mac);
            let node_key = keys::node(&record.node);
            let bytes = serde_json::to_vec(&record).map_err(internal)?;
            let txn = Txn::new()
                .when([
                    Compare::absent(endpoint_key.clone()),
                    Compare::create_revision(ip_key.clone(), CompareOp::Equal, 0),
                    Compare::create_revision(mac_key.clone(), CompareOp::Equal, 0),
                    Compare::version(node_key.clone(), CompareOp::Greater, 0),
                    Compare::mod_revision(
                        keys::ALLOCATION,
                        CompareOp::Equal,
                        i64::try_from(snapshot.policy_revision).unwrap_or(i64::MAX),
                    ),
                ])
                .and_then([
                    TxnOp::put(endpoint_key.clone(), bytes),
                    TxnOp::put(ip_key.clone(), record.name.clone()),
                    TxnOp::put(mac_key.clone(), record.name.clone()),
                ])
                .or_else([
                    TxnOp::get(endpoint_key),
                    TxnOp::get(ip_key),
                    TxnOp::get(mac_key),
                    TxnOp::get(node_key),
                ]);
            let response = self.state.store.txn(txn).await?;
            caught_up(&self.state, as_revision(response.revision)).await;
            if response.succeeded {
                tracing::info!(endpoint = %record.name, ip = %record.ip, node = %record.node, "openstack port's endpoint created");
                let snapshot = self.state.snapshot();
                let stored = snapshot.endpoints.get(&record.name).ok_or_else(|| {
                    OpenStackError::Internal(format!("endpoint {} vanished", record.name))
                })?;
                return Ok(self.weft_endpoint(stored));
            }
            let taken: Vec<bool> = response
                .responses
                .iter()
                .map(|r| matches!(r, TxnOpResponse::Get(get) if get.kv.is_some()))
                .collect();
            let [endpoint_taken, ip_taken, mac_taken, node_known] = taken[..] else {
                return Err(OpenStackError::Internal("unexpected txn answer".into()));
            };
            if endpoint_taken {
                return Err(conflict(format!(
                    "endpoint {} already exists",
                    request.name
                )));
            }
            if ip_taken && request.ip.is_some() {
                return Err(conflict(format!(
                    "{} is taken in VRF {}",
                    record.ip, record.vrf
                )));
            }
            if mac_taken && request.mac.is_some() {
                return Err(conflict(format!("MAC {} is taken", record.mac)));
            }
            if !node_known {
                return Err(invalid(format!("node {} is not registered", request.node)));
            }
        }
        Err(conflict(
            "too many concurrent changes to place this endpoint; retry".into(),
        ))
    }

    async fn delete_endpoint(&self, tenant: &str, name: &str) -> Result<bool, OpenStackError> {
        let snapshot = self.state.snapshot();
        let Some(stored) = snapshot
            .endpoints
            .get(name)
            .filter(|e| e.value.epg.tenant == tenant)
        else {
            return Ok(false);
        };
        let txn = crate::routes::endpoint_delete_txn(&snapshot, stored, name).map_err(conflict)?;
        let response = self.state.store.txn(txn).await?;
        caught_up(&self.state, as_revision(response.revision)).await;
        if !response.succeeded {
            return Err(conflict(format!(
                "endpoint {name} changed meanwhile; retry"
            )));
        }
        tracing::info!(endpoint = %name, "openstack port's endpoint deleted");
        Ok(true)
    }

    async fn update_port(
        &self,
        tenant: &str,
        name: &str,
        change: PortUpdate,
    ) -> Result<WeftEndpoint, OpenStackError> {
        let snapshot = self.state.snapshot();
        if snapshot
            .endpoints
            .get(name)
            .is_none_or(|e| e.value.epg.tenant != tenant)
        {
            return Err(OpenStackError::NotFound(format!(
                "endpoint {name} does not exist"
            )));
        }
        let change = weft_api::EndpointUpdate {
            allowed_address_pairs: change
                .allowed_address_pairs
                .map(|pairs| pairs.iter().map(wire_pair).collect()),
            port_security: change.port_security,
            security_groups: change.security_groups,
        };
        crate::routes::update_port(&self.state, name, &change).await?;
        let snapshot = self.state.snapshot();
        let stored = snapshot
            .endpoints
            .get(name)
            .ok_or_else(|| OpenStackError::NotFound(format!("endpoint {name} does not exist")))?;
        Ok(self.weft_endpoint(stored))
    }

    async fn node_images(&self) -> Result<Vec<NodeDockerImage>, OpenStackError> {
        let read = self
            .state
            .store
            .range(keys::NODE_IMAGES.as_bytes(), None)
            .await?;
        let snapshot = self.state.snapshot();
        let mut out = Vec::new();
        for kv in &read.kvs {
            let Some(node) = std::str::from_utf8(&kv.key)
                .ok()
                .and_then(|k| k.strip_prefix(keys::NODE_IMAGES))
            else {
                continue;
            };
            // A node removed while its agent was still reporting: not a holder.
            if !snapshot.nodes.contains_key(node) {
                continue;
            }
            let Ok(images) = serde_json::from_slice::<weft_api::NodeImages>(&kv.value) else {
                tracing::warn!(%node, "unreadable node images; skipped");
                continue;
            };
            out.extend(images.images.into_iter().map(|i| NodeDockerImage {
                node: node.to_string(),
                tags: i.tags,
                id: i.id,
                size: i.size,
                created_ms: i.created_ms,
            }));
        }
        Ok(out)
    }

    fn nodes(&self) -> Vec<String> {
        self.state.snapshot().nodes.keys().cloned().collect()
    }

    fn apps(&self, tenant: &str) -> Vec<WeftApp> {
        let snapshot = self.state.snapshot();
        snapshot
            .apps
            .keys()
            .filter_map(|id| {
                let (mut spec, _) = crate::apps::effective_spec(&snapshot, id)?;
                if spec.epg.tenant != tenant {
                    return None;
                }
                spec.id.clone_from(id);
                let tasks = crate::apps::app_tasks(&snapshot, id)
                    .into_iter()
                    .map(|t| {
                        let status = crate::apps::task_status(&self.state, t);
                        WeftTask {
                            id: t.value.id.clone(),
                            node: t.value.node.clone(),
                            ip: t.value.ip,
                            mac: t.value.mac.0,
                            phase: match status.state {
                                TaskState::Pending => TaskPhase::Pending,
                                TaskState::Starting => TaskPhase::Starting,
                                TaskState::Running => TaskPhase::Running,
                                TaskState::Failed => TaskPhase::Failed,
                                TaskState::Stopping => TaskPhase::Stopping,
                            },
                            message: status.message,
                            restarts: status.restarts,
                            started_ms: status.started_ms,
                            boot: boot_count(&t.value),
                            more_interfaces: (1..=spec.networks.len())
                                .filter_map(|i| {
                                    let name = weft_app::AppSpec::extra_endpoint(&t.value.id, i);
                                    snapshot.endpoints.get(&name)
                                })
                                .map(|ep| weft_openstack::TaskInterface {
                                    epg: ep.value.epg.to_string(),
                                    ip: ep.value.ip,
                                    mac: ep.value.mac.0,
                                })
                                .collect(),
                        }
                    })
                    .collect();
                Some(WeftApp {
                    spec,
                    tasks,
                    pending: self.state.scheduler.pending(id),
                })
            })
            .collect()
    }

    fn node_capacity(&self) -> Vec<WeftNode> {
        let snapshot = self.state.snapshot();
        let mut used: BTreeMap<&str, (f64, u64, u64, u32)> = BTreeMap::new();
        for task in snapshot.tasks.values() {
            let spec = &task.value.spec;
            let entry = used.entry(task.value.node.as_str()).or_default();
            entry.0 += spec.cpus;
            entry.1 = entry.1.saturating_add(spec.mem);
            entry.2 = entry.2.saturating_add(spec.disk);
            entry.3 = entry.3.saturating_add(1);
        }
        snapshot
            .nodes
            .iter()
            .map(|(name, stored)| {
                let reg = &stored.value;
                let live = self.state.liveness.get(name);
                let (cpus_used, mem_mb_used, disk_mb_used, tasks) =
                    used.get(name.as_str()).copied().unwrap_or_default();
                WeftNode {
                    name: name.clone(),
                    underlay_ip: reg.underlay_ip.into(),
                    ready: Liveness::is_ready(&live, self.state.config.node_deadline),
                    cpus: reg.resources.cpus,
                    mem_mb: reg.resources.mem_mb,
                    disk_mb: reg.resources.disk_mb,
                    cpus_used,
                    mem_mb_used,
                    disk_mb_used,
                    tasks,
                }
            })
            .collect()
    }

    async fn scale_app(
        &self,
        who: &Caller,
        tenant: &str,
        id: &str,
        instances: u32,
    ) -> Result<(), OpenStackError> {
        if !has_app(&self.state.snapshot(), tenant, id) {
            return Err(OpenStackError::NotFound(format!("app {id} does not exist")));
        }
        // The caller's own role, as for a create: a start of a privileged server needs
        // its tenant still allowed.
        let role = role_of(who);
        crate::routes::scale_app(&self.state, &role, id, instances).await?;
        Ok(())
    }

    async fn reboot_task(&self, tenant: &str, task: &str) -> Result<(), OpenStackError> {
        for _ in 0..MAX_ATTEMPTS {
            let snapshot = self.state.snapshot();
            let stored = tenant_task(&snapshot, tenant, task)?;
            let mut record = stored.value.clone();
            let boot = boot_count(&record).saturating_add(1);
            let Some(env) = record.env.as_mut() else {
                return Err(conflict(format!(
                    "task {task} has not started yet: it waits for its environment"
                )));
            };
            env.insert(BOOT_ENV.to_string(), boot.to_string());
            let key = keys::task(task);
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    i64::try_from(stored.revision).unwrap_or(i64::MAX),
                )])
                .and_then([TxnOp::put(
                    key,
                    serde_json::to_vec(&record).map_err(internal)?,
                )]);
            let response = self.state.store.txn(txn).await?;
            caught_up(&self.state, as_revision(response.revision)).await;
            if response.succeeded {
                tracing::info!(%task, boot, "task rebooted in place ({BOOT_ENV} raised)");
                return Ok(());
            }
        }
        Err(conflict(format!(
            "task {task} changed too often meanwhile; retry"
        )))
    }

    async fn console_output(
        &self,
        tenant: &str,
        task: &str,
        lines: usize,
        max_bytes: usize,
    ) -> Result<String, OpenStackError> {
        let node = {
            let snapshot = self.state.snapshot();
            let stored = tenant_task(&snapshot, tenant, task)?;
            if stored.value.spec.image.is_none() {
                return Err(conflict(format!(
                    "task {task} is a process task: its output is in its node's log directory (weft logs)"
                )));
            }
            stored.value.node.clone()
        };
        // From the agent that runs it, wherever its node is; the controller's own
        // engine only for a node that serves no agent API.
        match crate::task_output::read(&self.state, task, &node, lines, max_bytes).await {
            Ok(bytes) => return Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(crate::task_output::OutputError::NoApi { .. }) => {}
            Err(e) => return Err(conflict(format!("console of task {task}: {e}"))),
        }
        let docker = weft_runtime::DockerRuntime::new(weft_runtime::docker::DEFAULT_SOCKET);
        let read = tokio::time::timeout(CONSOLE_TIMEOUT, docker.tail(task, lines, max_bytes)).await;
        match read {
            Ok(Ok(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(Err(weft_runtime::RuntimeError::UnknownTask(_))) => Err(conflict(format!(
                "the console of task {task} is kept by node {node}'s Docker engine, and the engine at {} (this controller's host) has no container {}",
                weft_runtime::docker::DEFAULT_SOCKET,
                weft_runtime::docker::container_name(task)
            ))),
            Ok(Err(e)) => Err(internal(format!("console of task {task}: {e}"))),
            Err(_) => Err(internal(format!(
                "console of task {task}: the Docker engine did not answer within {} s",
                CONSOLE_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn create_app(
        &self,
        who: &Caller,
        spec: weft_app::AppSpec,
    ) -> Result<(), OpenStackError> {
        if self.state.snapshot().apps.contains_key(&spec.id) {
            return Err(conflict(format!("app {} already exists", spec.id)));
        }
        let mut apps = weft_app::Apps::default();
        apps.apps.insert(spec.id.clone(), spec);
        let request = AppsRequest {
            apps: serde_json::to_value(&apps).map_err(internal)?,
        };
        // The caller's own role: the same admission as `weft app apply` with its token
        // (its tenant, and privilege only where an admin allowed it).
        let role = role_of(who);
        crate::routes::apply_apps(&self.state, &role, &request).await?;
        Ok(())
    }

    fn privileged(&self, tenant: &str) -> bool {
        self.state.snapshot().privileged.contains_key(tenant)
    }

    async fn set_privileged(&self, tenant: &str, allowed: bool) -> Result<(), OpenStackError> {
        crate::routes::set_privilege(&self.state, tenant, allowed).await?;
        Ok(())
    }

    async fn delete_app(&self, tenant: &str, id: &str) -> Result<bool, OpenStackError> {
        if !has_app(&self.state.snapshot(), tenant, id) {
            return Ok(false);
        }
        crate::routes::remove_app(&self.state, &Role::Admin, id).await?;
        Ok(true)
    }

    async fn commit(&self, name: &str, tenant: Option<Tenant>) -> Result<(), OpenStackError> {
        let change = match tenant {
            Some(tenant) => {
                let mut model = Model::default();
                model.tenants.insert(name.to_string(), tenant);
                admission::resolve_request(&mut model, "")?;
                admission::upserts(model)
            }
            None => vec![(name.to_string(), None)],
        };
        admission::commit(&self.state, change).await?;
        Ok(())
    }
}

impl ServerController {
    fn weft_endpoint(&self, stored: &Stored<EndpointRecord>) -> WeftEndpoint {
        let e = &stored.value;
        WeftEndpoint {
            name: e.name.clone(),
            epg: e.epg.to_string(),
            ip: e.ip,
            node: e.node.clone(),
            mac: e.mac.0,
            allowed_address_pairs: e
                .allowed_address_pairs
                .iter()
                .map(|p| AddressPair {
                    ip: p.ip,
                    mac: p.mac.map(|m| m.0),
                })
                .collect(),
            port_security: e.port_security,
            security_groups: e.security_groups.clone(),
            ready: self.state.liveness.endpoint_status(&e.node, &e.name).state
                == EndpointState::Ready,
        }
    }
}

fn wire_pair(pair: &AddressPair) -> weft_api::AddressPair {
    weft_api::AddressPair {
        ip: pair.ip,
        mac: pair.mac.map(MacAddr),
    }
}

fn invalid(message: String) -> OpenStackError {
    OpenStackError::Invalid {
        message,
        details: Vec::new(),
    }
}

fn conflict(message: String) -> OpenStackError {
    OpenStackError::Conflict {
        message,
        details: Vec::new(),
    }
}

/// The OpenStack listener.
#[derive(Debug)]
pub struct OpenStackTasks {
    pub addr: SocketAddr,
    pub server: JoinHandle<()>,
}

/// Binds and serves the OpenStack APIs when the config asks for it.
pub async fn start_openstack(
    state: &Arc<AppState>,
    api_addr: SocketAddr,
) -> Result<Option<OpenStackTasks>, ServerError> {
    let settings = &state.config.openstack;
    let Some(listen) = settings.listen else {
        return Ok(None);
    };
    let bind_error = |source| ServerError::Bind {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let public_url = settings.public_url.clone().unwrap_or_else(|| {
        // An unspecified bind address is reached at the API's address, else loopback.
        let ip = if !addr.ip().is_unspecified() {
            addr.ip()
        } else if !api_addr.ip().is_unspecified() {
            api_addr.ip()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        };
        format!("http://{}", SocketAddr::new(ip, addr.port()))
    });
    let mut config = weft_openstack::OpenStackConfig::new(public_url.clone());
    config.static_tokens.clone_from(&settings.static_tokens);
    config.token_ttl_ms = u64::try_from(settings.token_ttl.as_millis()).unwrap_or(u64::MAX);
    let controller = ServerController {
        state: Arc::clone(state),
    };
    let adapter = Arc::new(weft_openstack::OpenStack::new(
        state.store.clone(),
        controller,
        config,
    ));
    let app = weft_openstack::router(adapter)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.body_limit,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    let mut stopped = state.shutdown.clone();
    let server = tokio::spawn(async move {
        let graceful = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!(error = %err, "openstack API server failed");
        }
    });
    tracing::info!(%addr, %public_url, "openstack API listening");
    Ok(Some(OpenStackTasks { addr, server }))
}

/// `POST /v1/openstack/users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    pub name: String,
    pub password: String,
    /// The weft tenant (Keystone project) the user's tokens act for.
    pub project: String,
}

/// `POST /v1/openstack/users`: the admin creates (or replaces) a Keystone user.
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiJson(request): ApiJson<UserRequest>,
) -> ApiResult<Response> {
    role.require_admin()?;
    let user = weft_openstack::create_user(
        &state.store,
        &request.name,
        &request.password,
        &request.project,
    )
    .await
    .map_err(|err| match err {
        OpenStackError::Invalid { message, .. } => ApiFailure::bad_request(message, None),
        other => ApiFailure::Internal(other.to_string()),
    })?;
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}
