//! Apps and tasks as stored, and their wire views.
//!
//! Layout: the spec under `apps/<id>` (its `mod_revision` is the app's version), the
//! instance count under `app-instances/<id>` (scaling is not a new version), the app's
//! last deployment under `deployments/<id>`, and each task under `tasks/<id>` together
//! with the spec of the version it runs (so old versions' specs live exactly as long as
//! their tasks). A task's endpoint has the task's id as its name.
//!
//! Task statuses are not stored: they are what the task's node last reported (kept in
//! memory by [`crate::liveness`], like endpoint statuses), accepted only once the node
//! has applied a desired view that contains the task's current record.

use crate::server::AppState;
use crate::state::{Snapshot, Stored};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use weft_api::{
    App, Deployment, DeploymentState, EndpointState, Health, MacAddr, Task, TaskState, TaskStatus,
};
use weft_app::{AppAttribute, AppSpec};

/// A task as stored: the wire [`Task`] without its status, plus its version's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub app: String,
    pub version: u64,
    pub node: String,
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub created_ms: u64,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// Why `env` is `None`: the referenced apps without a running task.
    #[serde(default)]
    pub waiting_for: Option<String>,
    pub spec: AppSpec,
}

/// An app's last deployment. Its target is always the app's current version: a newer
/// spec replaces the deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub from_version: u64,
    pub started_ms: u64,
    pub state: DeploymentState,
    #[serde(default)]
    pub message: Option<String>,
    pub plan: weft_scheduler::Deployment,
}

/// The app's spec with its current instance count, and its version.
pub fn effective_spec(snapshot: &Snapshot, id: &str) -> Option<(AppSpec, u64)> {
    let stored = snapshot.apps.get(id)?;
    let mut spec = stored.value.clone();
    if let Some(n) = snapshot.instances.get(id) {
        spec.instances = *n;
    }
    Some((spec, stored.revision))
}

/// `app-12` sorts after `app-9`.
pub fn task_order(id: &str) -> (u64, String) {
    let n = id
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(u64::MAX);
    (n, id.to_string())
}

/// The task's status: its node's report once the node has seen this record, else the
/// controller's own view (pending, and why).
pub fn task_status(state: &AppState, stored: &Stored<TaskRecord>) -> TaskStatus {
    let record = &stored.value;
    let reported = state
        .liveness
        .task_status(&record.node, &record.id)
        .filter(|(applied, _)| *applied >= stored.revision)
        .map(|(_, status)| status);
    if let Some(mut status) = reported {
        if record.env.is_none() && status.message.is_none() {
            status.message.clone_from(&record.waiting_for);
        }
        return status;
    }
    let endpoint = state
        .liveness
        .endpoint_status(&record.node, &record.id)
        .state;
    let message = match (&record.waiting_for, endpoint) {
        (Some(wait), _) if record.env.is_none() => wait.clone(),
        (_, EndpointState::Ready) => format!("waiting for node {} to start it", record.node),
        _ => format!(
            "waiting for node {} to install its endpoint and policy",
            record.node
        ),
    };
    TaskStatus::pending(message, endpoint)
}

/// Running, and healthy if the app has health checks (not unhealthy if it has none).
pub fn is_healthy(status: &TaskStatus, spec: &AppSpec) -> bool {
    status.state == TaskState::Running
        && if spec.health_checks.is_empty() {
            status.health != Health::Unhealthy
        } else {
            status.health == Health::Healthy
        }
}

pub fn wire_task(state: &AppState, stored: &Stored<TaskRecord>) -> Task {
    let r = &stored.value;
    Task {
        id: r.id.clone(),
        app: r.app.clone(),
        version: r.version,
        node: r.node.clone(),
        ip: r.ip,
        mac: r.mac,
        created_ms: r.created_ms,
        env: r.env.clone(),
        status: task_status(state, stored),
    }
}

/// The app's tasks, in id order.
pub fn app_tasks<'a>(snapshot: &'a Snapshot, app: &str) -> Vec<&'a Stored<TaskRecord>> {
    let mut tasks: Vec<_> = snapshot
        .tasks
        .values()
        .filter(|t| t.value.app == app)
        .collect();
    tasks.sort_by_key(|t| task_order(&t.value.id));
    tasks
}

pub fn wire_deployment(
    state: &AppState,
    app: &str,
    version: u64,
    record: &DeploymentRecord,
) -> Deployment {
    let deadline =
        u64::try_from(state.config.deployment_progress_deadline.as_millis()).unwrap_or(u64::MAX);
    Deployment {
        id: format!("{app}-v{version}"),
        app: app.to_string(),
        from_version: record.from_version,
        to_version: version,
        state: record.state,
        started_ms: record.started_ms,
        deadline_ms: record.plan.last_progress_at.0.saturating_add(deadline),
        message: record.message.clone(),
    }
}

pub fn wire_app(state: &AppState, snapshot: &Snapshot, id: &str) -> Option<App> {
    let (spec, version) = effective_spec(snapshot, id)?;
    let mut running = 0;
    let mut healthy = 0;
    for task in app_tasks(snapshot, id) {
        let status = task_status(state, task);
        if status.state == TaskState::Running {
            running += 1;
        }
        if is_healthy(&status, &task.value.spec) {
            healthy += 1;
        }
    }
    let deployment = snapshot
        .deployments
        .get(id)
        .map(|d| wire_deployment(state, id, version, &d.value));
    Some(App {
        id: id.to_string(),
        instances: spec.instances,
        spec,
        version,
        running,
        healthy,
        deployment,
        pending: state.scheduler.pending(id),
    })
}

/// IPs of `app`'s running tasks, in task id order.
pub fn running_ips(state: &AppState, snapshot: &Snapshot, app: &str) -> Vec<IpAddr> {
    app_tasks(snapshot, app)
        .into_iter()
        .filter(|t| task_status(state, t).state == TaskState::Running)
        .map(|t| t.value.ip)
        .collect()
}

/// The app's environment with every reference resolved from running tasks
/// (`address` = the lowest task id's IP), or why not yet.
pub fn render_env(
    state: &AppState,
    snapshot: &Snapshot,
    spec: &AppSpec,
) -> Result<BTreeMap<String, String>, String> {
    let mut missing = BTreeSet::new();
    let mut env = BTreeMap::new();
    let mut cache: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for (key, template) in &spec.env {
        let value = template.render(|app, attribute| {
            let ips = cache
                .entry(app.to_string())
                .or_insert_with(|| running_ips(state, snapshot, app));
            if ips.is_empty() {
                missing.insert(app.to_string());
                return None;
            }
            Some(match attribute {
                AppAttribute::Address => ips[0].to_string(),
                AppAttribute::Addresses => ips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            })
        });
        if let Some(value) = value {
            env.insert(key.clone(), value);
        }
    }
    if missing.is_empty() {
        Ok(env)
    } else {
        Err(missing
            .iter()
            .map(|app| format!("waiting for app {app} to have a running task"))
            .collect::<Vec<_>>()
            .join("; "))
    }
}
