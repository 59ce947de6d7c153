//! Apps and tasks: apply (validated with every stored app), scale, restart, delete,
//! deployment cancel; task listings. Tenant tokens reach the apps whose EPG is theirs.

use super::indexed;
use super::privilege::privilege_guard;
use super::skeleton::{commit_guarded, read};
use crate::apps::{DeploymentRecord, app_tasks, effective_spec, wire_app, wire_task};
use crate::auth::Role;
use crate::error::{ApiFailure, ApiResult};
use crate::extract::{ApiJson, ApiQuery, parse_json};
use crate::keys;
use crate::liveness::now_ms;
use crate::scheduler::remove_ops;
use crate::server::AppState;
use crate::state::{Snapshot, Stored};
use crate::watch::BlockingParams;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;
use weft_api::{AppsRequest, AppsResponse, DeploymentState, ScaleRequest, Task};
use weft_app::{AppErrors, AppSpec, Apps};
use weft_scheduler::{Deployment, Limits, Timestamp};
use weft_store::{Compare, CompareOp, Txn, TxnOp};

/// Task ids are `<app>-<n>` and name endpoints (at most 32 characters).
const MAX_APP_ID: usize = 26;

#[derive(Debug, Default, Deserialize)]
pub struct TaskQuery {
    pub app: Option<String>,
    pub index: Option<u64>,
    pub wait: Option<String>,
}

fn app_failure(errors: &AppErrors, unprocessable: bool) -> ApiFailure {
    let details: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let field = errors
        .0
        .first()
        .and_then(|e| e.app.as_ref())
        .map(|a| format!("apps.app.{a}"));
    let message = details
        .first()
        .cloned()
        .unwrap_or_else(|| "invalid apps".into());
    if unprocessable {
        ApiFailure::Unprocessable {
            message,
            field,
            details,
        }
    } else {
        ApiFailure::BadRequest {
            message,
            field,
            details,
        }
    }
}

/// The spec without what does not make a new version (instances) or is not stored.
fn normalized(spec: &AppSpec) -> AppSpec {
    let mut spec = spec.clone();
    spec.instances = 0;
    spec.id.clear();
    spec.loc = weft_model::Location::default();
    spec
}

fn to_bytes<T: serde::Serialize>(value: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ApiFailure::Internal(e.to_string()))
}

fn rev(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

fn new_deployment(state: &AppState, spec: &AppSpec, from_version: u64) -> DeploymentRecord {
    let now = now_ms();
    let deadline = weft_app::Duration::from_millis(
        u64::try_from(state.config.deployment_progress_deadline.as_millis()).unwrap_or(u64::MAX),
    );
    DeploymentRecord {
        from_version,
        started_ms: now,
        state: DeploymentState::Running,
        message: None,
        plan: Deployment::new(
            &spec.id,
            spec.instances,
            &spec.upgrade_strategy,
            deadline,
            Timestamp(now),
        ),
    }
}

/// A running deployment follows a new instance count.
fn rescaled(
    snapshot: &Snapshot,
    id: &str,
    spec: &AppSpec,
    instances: u32,
) -> Option<Stored<DeploymentRecord>> {
    let stored = snapshot.deployments.get(id)?;
    if stored.value.state != DeploymentState::Running || stored.value.plan.instances == instances {
        return None;
    }
    let mut next = stored.clone();
    next.value.plan.instances = instances;
    next.value.plan.limits = Limits::new(instances, &spec.upgrade_strategy);
    Some(next)
}

fn find_app(snapshot: &Snapshot, id: &str) -> ApiResult<(AppSpec, u64)> {
    effective_spec(snapshot, id)
        .ok_or_else(|| ApiFailure::not_found(format!("app {id} does not exist"), None))
}

/// What every write to one app starts with: the apps lock, the snapshot, the app's spec
/// and version, and the caller's right to change it.
async fn writable_app<'a>(
    state: &'a AppState,
    role: &Role,
    id: &str,
) -> ApiResult<(tokio::sync::MutexGuard<'a, ()>, Arc<Snapshot>, AppSpec, u64)> {
    let guard = state.apps_lock.lock().await;
    let snapshot = state.snapshot();
    let (spec, version) = find_app(&snapshot, id)?;
    role.require_tenant_write(&spec.epg.tenant)?;
    Ok((guard, snapshot, spec, version))
}

pub async fn apply(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiJson(request): ApiJson<AppsRequest>,
) -> ApiResult<Response> {
    let response = apply_request(&state, &role, &request).await?;
    Ok(indexed(response.revision, &response))
}

/// `weft app apply`'s whole work (parse, validate with every stored app, commit), for the
/// route and for the OpenStack adapter's servers.
pub(crate) async fn apply_request(
    state: &Arc<AppState>,
    role: &Role,
    request: &AppsRequest,
) -> ApiResult<AppsResponse> {
    let state = Arc::clone(state);
    let text = to_bytes(&request.apps)?;
    // Structure first, for the path of the field at fault (`apps.app.web.bogus`).
    if let Err(failure) = parse_json::<Apps>(&text) {
        return Err(match failure {
            ApiFailure::BadRequest {
                message,
                field,
                details,
            } => ApiFailure::BadRequest {
                message,
                field: Some(match field {
                    Some(f) => format!("apps.{f}"),
                    None => "apps".into(),
                }),
                details,
            },
            other => other,
        });
    }
    let apps = weft_app::parse_apps_json("apps", &String::from_utf8_lossy(&text))
        .map_err(|e| app_failure(&e, false))?;
    if apps.apps.is_empty() {
        return Err(ApiFailure::bad_request(
            "there is no app to apply",
            Some("apps.app"),
        ));
    }
    let _guard = state.apps_lock.lock().await;
    let snapshot = state.snapshot();
    for (id, spec) in &apps.apps {
        role.require_tenant_write(&spec.epg.tenant)?;
        if let Some(old) = snapshot.apps.get(id) {
            role.require_tenant_write(&old.value.epg.tenant)?;
        }
        if id.len() > MAX_APP_ID {
            return Err(ApiFailure::bad_request(
                format!(
                    "app {id}: an app id is at most {MAX_APP_ID} characters here (task ids are <app>-<n> and name endpoints)"
                ),
                Some(&format!("apps.app.{id}")),
            ));
        }
        if !snapshot.policy.epgs.contains_key(&spec.epg) {
            return Err(ApiFailure::unprocessable(
                format!("app {id}: EPG {} does not exist", spec.epg),
                Some(&format!("apps.app.{id}.epg")),
            ));
        }
        for (i, network) in spec.networks.iter().enumerate() {
            role.require_tenant_write(&network.epg.tenant)?;
            if !snapshot.policy.epgs.contains_key(&network.epg) {
                return Err(ApiFailure::unprocessable(
                    format!(
                        "app {id}: EPG {} (network[{i}]) does not exist",
                        network.epg
                    ),
                    Some(&format!("apps.app.{id}.network[{i}].epg")),
                ));
            }
        }
        if let Some(endpoint) = &spec.endpoint {
            check_endpoint_use(&snapshot, &apps, id, &spec.epg, endpoint)?;
        }
    }
    // Privilege only for tenants an admin allowed, guarded until the commit.
    let mut privilege_guards = Vec::new();
    for (id, spec) in &apps.apps {
        if spec.privileged
            && let Some(guard) = privilege_guard(&snapshot, role, &spec.epg.tenant, id)?
        {
            privilege_guards.push(guard);
        }
    }
    let mut all = Apps {
        apps: snapshot
            .apps
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect(),
    };
    for (id, spec) in &apps.apps {
        all.apps.insert(id.clone(), spec.clone());
    }
    weft_app::validate_apps(&all).map_err(|e| app_failure(&e, true))?;

    let mut compares = Vec::new();
    let mut ops = Vec::new();
    let mut deployed = Vec::new();
    for (id, spec) in &apps.apps {
        let key = keys::app(id);
        let old = snapshot.apps.get(id);
        let changed = old.is_none_or(|o| normalized(&o.value) != normalized(spec));
        compares.push(match old {
            Some(o) => Compare::mod_revision(key.clone(), CompareOp::Equal, rev(o.revision)),
            None => Compare::absent(key.clone()),
        });
        if let Some(endpoint) = &spec.endpoint {
            compares.push(Compare::version(
                keys::endpoint(endpoint),
                CompareOp::Greater,
                0,
            ));
        }
        if changed {
            ops.push(TxnOp::put(key, to_bytes(spec)?));
        }
        if snapshot.instances.get(id) != Some(&spec.instances) {
            ops.push(TxnOp::put(
                keys::app_instances(id),
                to_bytes(&spec.instances)?,
            ));
        }
        if changed && let Some(old) = old {
            let record = new_deployment(&state, spec, old.revision);
            ops.push(TxnOp::put(keys::deployment(id), to_bytes(&record)?));
            deployed.push(id.clone());
        } else if let Some(next) = rescaled(&snapshot, id, spec, spec.instances) {
            ops.push(TxnOp::put(keys::deployment(id), to_bytes(&next.value)?));
        }
    }
    let ids: Vec<String> = apps.apps.keys().cloned().collect();
    if ops.is_empty() {
        return Ok(AppsResponse {
            revision: snapshot.revision,
            apps: ids,
            deployments: Vec::new(),
        });
    }
    compares.extend(privilege_guards);
    let txn = Txn::new().when(compares).and_then(ops);
    let revision = commit_guarded(&state, txn, "an app").await?;
    state.scheduler_wake.notify_one();
    tracing::info!(apps = ?ids, revision, "apps applied");
    Ok(AppsResponse {
        revision,
        apps: ids,
        deployments: deployed
            .iter()
            .map(|id| format!("{id}-v{revision}"))
            .collect(),
    })
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    read(&state, &wait, |snapshot| {
        let apps: Vec<_> = snapshot
            .apps
            .iter()
            .filter(|(_, spec)| role.can_read(&spec.value.epg.tenant))
            .filter_map(|(id, _)| wire_app(&state, snapshot, id))
            .collect();
        Ok(apps)
    })
    .await
}

pub async fn get_one(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(id): Path<String>,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    read(&state, &wait, |snapshot| {
        let (spec, _) = find_app(snapshot, &id)?;
        role.require_read(&spec.epg.tenant)?;
        wire_app(&state, snapshot, &id)
            .ok_or_else(|| ApiFailure::not_found(format!("app {id} does not exist"), None))
    })
    .await
}

/// The app as it is after the commit at `revision`, which the snapshot includes.
fn answer_app(state: &AppState, id: &str, revision: u64) -> ApiResult<Response> {
    state.scheduler_wake.notify_one();
    let snapshot = state.snapshot();
    let app = wire_app(state, &snapshot, id)
        .ok_or_else(|| ApiFailure::not_found(format!("app {id} does not exist"), None))?;
    Ok(indexed(revision, &app))
}

pub async fn scale(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ScaleRequest>,
) -> ApiResult<Response> {
    let revision = scale_app(&state, &role, &id, request.instances).await?;
    answer_app(&state, &id, revision)
}

/// An app may run on an existing endpoint of its own EPG that is no task's own and no
/// other app's.
fn check_endpoint_use(
    snapshot: &Snapshot,
    applied: &Apps,
    id: &str,
    epg: &weft_model::EpgPath,
    endpoint: &str,
) -> ApiResult<()> {
    let field = format!("apps.app.{id}.endpoint");
    let Some(stored) = snapshot.endpoints.get(endpoint) else {
        return Err(ApiFailure::unprocessable(
            format!("app {id}: endpoint {endpoint} does not exist"),
            Some(&field),
        ));
    };
    if stored.value.epg != *epg {
        return Err(ApiFailure::unprocessable(
            format!(
                "app {id}: endpoint {endpoint} is in EPG {}, the app in {epg}",
                stored.value.epg
            ),
            Some(&field),
        ));
    }
    if snapshot.tasks.contains_key(endpoint) {
        return Err(ApiFailure::conflict(
            format!("app {id}: endpoint {endpoint} is task {endpoint}'s own"),
            Some(&field),
        ));
    }
    if stored.value.interface != 0 {
        return Err(ApiFailure::conflict(
            format!(
                "app {id}: endpoint {endpoint} is a task's own (its interface weft{} in another network)",
                stored.value.interface
            ),
            Some(&field),
        ));
    }
    let other = snapshot
        .apps
        .iter()
        .map(|(other, a)| (other, &a.value))
        .chain(applied.apps.iter())
        .find(|(other, a)| *other != id && a.endpoint.as_deref() == Some(endpoint));
    if let Some((other, _)) = other {
        return Err(ApiFailure::conflict(
            format!("app {id}: endpoint {endpoint} is app {other}'s"),
            Some(&field),
        ));
    }
    Ok(())
}

/// `weft app scale`'s work (the instance count, and a running deployment follows it),
/// for the route and for the OpenStack adapter's stop and start; the commit's revision.
pub(crate) async fn scale_app(
    state: &AppState,
    role: &Role,
    id: &str,
    instances: u32,
) -> ApiResult<u64> {
    let id = id.to_string();
    let (_guard, snapshot, spec, version) = writable_app(state, role, &id).await?;
    let one_address = match (&spec.endpoint, spec.ip) {
        (Some(endpoint), _) => Some(format!("runs on endpoint {endpoint}")),
        (None, Some(ip)) => Some(format!("has the fixed ip {ip}")),
        (None, None) => None,
    };
    if let Some(why) = one_address
        && instances > 1
    {
        return Err(ApiFailure::bad_request(
            format!("app {id} {why}: at most 1 instance (one address), asked {instances}"),
            Some("instances"),
        ));
    }
    let mut ops = vec![TxnOp::put(keys::app_instances(&id), to_bytes(&instances)?)];
    let mut compares = vec![Compare::mod_revision(
        keys::app(&id),
        CompareOp::Equal,
        rev(version),
    )];
    // Scaling a privileged app up makes new privileged tasks: the same rule as a create.
    if spec.privileged
        && instances > spec.instances
        && let Some(guard) = privilege_guard(&snapshot, role, &spec.epg.tenant, &id)?
    {
        compares.push(guard);
    }
    if let Some(next) = rescaled(&snapshot, &id, &spec, instances) {
        compares.push(Compare::mod_revision(
            keys::deployment(&id),
            CompareOp::Equal,
            rev(next.revision),
        ));
        ops.push(TxnOp::put(keys::deployment(&id), to_bytes(&next.value)?));
    }
    let txn = Txn::new().when(compares).and_then(ops);
    let revision = commit_guarded(state, txn, format!("app {id}")).await?;
    state.scheduler_wake.notify_one();
    Ok(revision)
}

pub async fn restart(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (_guard, snapshot, spec, version) = writable_app(&state, &role, &id).await?;
    let stored = &snapshot.apps[&id].value;
    // Rewriting the same spec makes a new version: every task is replaced.
    let record = new_deployment(&state, &spec, version);
    let txn = Txn::new()
        .when([Compare::mod_revision(
            keys::app(&id),
            CompareOp::Equal,
            rev(version),
        )])
        .and_then([
            TxnOp::put(keys::app(&id), to_bytes(stored)?),
            TxnOp::put(keys::deployment(&id), to_bytes(&record)?),
        ]);
    let revision = commit_guarded(&state, txn, format!("app {id}")).await?;
    answer_app(&state, &id, revision)
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let revision = remove_app(&state, &role, &id).await?;
    Ok(indexed(revision, &serde_json::json!({ "deleted": id })))
}

/// Deletes an app with its tasks and their endpoints in one transaction (the agents stop
/// the tasks); the commit's revision.
pub(crate) async fn remove_app(state: &AppState, role: &Role, id: &str) -> ApiResult<u64> {
    let id = id.to_string();
    let (_guard, snapshot, _, version) = writable_app(state, role, &id).await?;
    let dependents: Vec<String> = snapshot
        .apps
        .iter()
        .filter(|(other, s)| **other != id && s.value.dependencies().contains(id.as_str()))
        .map(|(other, _)| format!("app {other} refers to app {id} in its env"))
        .collect();
    if !dependents.is_empty() {
        return Err(ApiFailure::Conflict {
            message: format!("{} app(s) depend on app {id}", dependents.len()),
            field: None,
            details: dependents,
        });
    }
    let mut ops = vec![
        TxnOp::delete(keys::app(&id)),
        TxnOp::delete(keys::app_instances(&id)),
        TxnOp::delete(keys::deployment(&id)),
    ];
    for task in app_tasks(&snapshot, &id) {
        ops.extend(remove_ops(&snapshot, &task.value.id));
    }
    let txn = Txn::new()
        .when([Compare::mod_revision(
            keys::app(&id),
            CompareOp::Equal,
            rev(version),
        )])
        .and_then(ops);
    commit_guarded(state, txn, format!("app {id}")).await
}

pub async fn cancel_deployment(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (_guard, snapshot, _, version) = writable_app(&state, &role, &id).await?;
    let Some(stored) = snapshot
        .deployments
        .get(&id)
        .filter(|d| d.value.state == DeploymentState::Running)
    else {
        // Nothing running: cancelling again (or a finished deployment) changes nothing.
        let deployment = snapshot
            .deployments
            .get(&id)
            .map(|d| crate::apps::wire_deployment(&state, &id, version, &d.value));
        return Ok(indexed(snapshot.revision, &deployment));
    };
    let mut record = stored.value.clone();
    record.plan = record.plan.cancel();
    record.state = DeploymentState::Cancelled;
    record.message = Some("cancelled; tasks are left as they are".into());
    crate::scheduler::put_deployment(&state, &id, &record, Some(stored.revision), false).await?;
    let snapshot = state.snapshot();
    let deployment = crate::apps::wire_deployment(&state, &id, version, &record);
    Ok(indexed(snapshot.revision, &Some(deployment)))
}

pub async fn list_tasks(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> ApiResult<Response> {
    let wait = BlockingParams {
        index: query.index,
        wait: query.wait.clone(),
    };
    read(&state, &wait, |snapshot| {
        let mut tasks: Vec<Task> = snapshot
            .tasks
            .values()
            .filter(|t| query.app.as_ref().is_none_or(|a| *a == t.value.app))
            .filter(|t| role.can_read(&t.value.spec.epg.tenant))
            .map(|t| wire_task(&state, t))
            .collect();
        tasks.sort_by_key(|t| crate::apps::task_order(&t.id));
        Ok(tasks)
    })
    .await
}

pub async fn get_task(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(id): Path<String>,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    read(&state, &wait, |snapshot| {
        let task = snapshot
            .tasks
            .get(&id)
            .ok_or_else(|| ApiFailure::not_found(format!("task {id} does not exist"), None))?;
        role.require_read(&task.value.spec.epg.tenant)?;
        Ok(wire_task(&state, task))
    })
    .await
}

/// `?lines=N&max_bytes=M` of a task's output (defaults 100 lines, 64 KiB).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputParams {
    #[serde(default = "default_output_lines")]
    lines: usize,
    #[serde(default = "default_output_bytes")]
    max_bytes: usize,
}

fn default_output_lines() -> usize {
    100
}

fn default_output_bytes() -> usize {
    64 << 10
}

/// At most this many lines and bytes of a task's output in one answer (the agent's own
/// bounds).
const MAX_OUTPUT_LINES: usize = 10_000;
const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// `GET /v1/tasks/{id}/output`: the end of what the task printed (as text, invalid UTF-8
/// replaced), read from the agent that runs it (`crate::task_output`); 409 when that
/// agent cannot answer.
pub async fn task_output(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<OutputParams>,
) -> ApiResult<Response> {
    if !(1..=MAX_OUTPUT_LINES).contains(&params.lines) {
        return Err(ApiFailure::bad_request(
            format!("lines must be 1 to {MAX_OUTPUT_LINES}"),
            Some("lines"),
        ));
    }
    if !(1..=MAX_OUTPUT_BYTES).contains(&params.max_bytes) {
        return Err(ApiFailure::bad_request(
            format!("max_bytes must be 1 to {MAX_OUTPUT_BYTES}"),
            Some("max_bytes"),
        ));
    }
    let node = {
        let snapshot = state.snapshot();
        let task = snapshot
            .tasks
            .get(&id)
            .ok_or_else(|| ApiFailure::not_found(format!("task {id} does not exist"), None))?;
        role.require_read(&task.value.spec.epg.tenant)?;
        task.value.node.clone()
    };
    let bytes = crate::task_output::read(&state, &id, &node, params.lines, params.max_bytes)
        .await
        .map_err(|e| ApiFailure::conflict(e.to_string(), None))?;
    let output = weft_api::TaskOutput {
        task: id,
        node,
        output: String::from_utf8_lossy(&bytes).into_owned(),
    };
    Ok(indexed(state.snapshot().revision, &output))
}
