//! The scheduler loop: keeps every app at its instance count, replaces tasks of lost
//! nodes and unhealthy tasks, advances deployments, and resolves task environments.
//!
//! It runs on every committed change, on every node report and at least every
//! `schedule_interval`. Decisions are [`weft_scheduler`]'s (pure); this module turns them
//! into store transactions: a new task is its record *and* its endpoint (same name, in
//! the app's EPG, on the chosen node), with one more endpoint per network after the
//! first (`<task>-n<i>`, in the first one's namespace), in one compare-and-swap
//! transaction, so the node's agent installs the endpoints' ports and policy before it
//! starts the task. A stopped task is its record and endpoints deleted together (the
//! agent stops tasks that leave its desired view).
//!
//! App writes (API and scheduler) are serialised by `AppState::apps_lock`.

use crate::apps::{
    DeploymentRecord, TaskRecord, app_tasks, effective_spec, is_healthy, render_env, task_status,
};
use crate::error::{ApiFailure, ApiResult};
use crate::keys;
use crate::liveness::{Liveness, now_ms};
use crate::server::AppState;
use crate::state::{Snapshot, Stored, as_revision};
use crate::watch::caught_up;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use weft_api::{DeploymentState, EndpointRequest, Health, TaskState};
use weft_app::AppSpec;
use weft_scheduler::{
    DeploymentStatus, DeploymentTask, Node, PlacementOptions, Resources, RestartState,
    SupervisionPolicy, TaskHealth, Timestamp, place, reconcile,
};
use weft_store::{Compare, CompareOp, KvStore, Txn, TxnOp};

/// What the scheduler keeps between passes, in memory only.
#[derive(Debug)]
pub struct Memory {
    started_ms: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    pending: HashMap<String, Vec<String>>,
    restarts: HashMap<String, RestartState>,
    last_created_ms: u64,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            started_ms: now_ms(),
            inner: Mutex::default(),
        }
    }
}

impl Memory {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Why some of the app's tasks are not placed or not started.
    pub fn pending(&self, app: &str) -> Vec<String> {
        self.with(|m| m.pending.get(app).cloned().unwrap_or_default())
    }

    /// Creation times strictly increase, so "youngest first" is never a tie.
    fn created_ms(&self) -> u64 {
        self.with(|m| {
            m.last_created_ms = now_ms().max(m.last_created_ms + 1);
            m.last_created_ms
        })
    }
}

/// Runs until the server shuts down.
pub async fn run(state: Arc<AppState>) {
    let mut revisions = state.revisions.subscribe();
    let mut shutdown = state.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(err) = pass(&state).await {
            tracing::warn!(error = %err, "scheduler pass failed; retrying");
        }
        tokio::select! {
            _ = revisions.changed() => {}
            () = state.scheduler_wake.notified() => {}
            () = tokio::time::sleep(state.config.schedule_interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// One pass over every app.
pub async fn pass(state: &AppState) -> ApiResult<()> {
    // Only the leader schedules; its writes are fenced (`Leadership::commit`).
    if state.leadership.fence().is_none() {
        return Ok(());
    }
    let _guard = state.apps_lock.lock().await;
    // Tasks of apps that are gone.
    let snapshot = state.snapshot();
    let orphans: Vec<String> = snapshot
        .tasks
        .values()
        .filter(|t| !snapshot.apps.contains_key(&t.value.app))
        .map(|t| t.value.id.clone())
        .collect();
    for id in orphans {
        remove_task(state, &id).await?;
    }
    let apps: Vec<String> = state.snapshot().apps.keys().cloned().collect();
    for app in apps {
        if *state.shutdown.borrow() {
            return Ok(());
        }
        pass_app(state, &app).await?;
    }
    Ok(())
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The scheduler's view of the nodes: registered resources and labels, allocation by
/// every stored task. A node not heard from since this server started counts from the
/// start, so a controller restart does not declare every node lost.
fn nodes(state: &AppState, snapshot: &Snapshot) -> Vec<Node> {
    let mut allocated: HashMap<&str, Resources> = HashMap::new();
    for task in snapshot.tasks.values() {
        let entry = allocated.entry(task.value.node.as_str()).or_default();
        *entry = entry.saturating_add(Resources::of_app(&task.value.spec));
    }
    snapshot
        .nodes
        .iter()
        .map(|(name, stored)| {
            let reg = &stored.value;
            let live = state.liveness.get(name);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let cpu_millis = (reg.resources.cpus * 1000.0).round() as u64;
            let mut node = Node::new(
                name,
                Resources::new(cpu_millis, reg.resources.mem_mb, reg.resources.disk_mb),
            );
            node.attributes.clone_from(&reg.labels);
            node.attributes
                .entry("hostname".to_string())
                .or_insert_with(|| name.clone());
            node.allocated = allocated.get(name.as_str()).copied().unwrap_or_default();
            node.ready = Liveness::is_ready(&live, state.config.node_deadline);
            node.last_heartbeat = Timestamp(live.last_heartbeat_ms.max(state.scheduler.started_ms));
            node
        })
        .collect()
}

fn sched_task(state: &AppState, stored: &Stored<TaskRecord>) -> weft_scheduler::Task {
    let status = task_status(state, stored);
    weft_scheduler::Task {
        id: stored.value.id.clone(),
        node: stored.value.node.clone(),
        state: match status.state {
            TaskState::Running | TaskState::Stopping => weft_scheduler::TaskState::Running,
            // Failed tasks are restarted by their agent: still this app's instances.
            TaskState::Pending | TaskState::Starting | TaskState::Failed => {
                weft_scheduler::TaskState::Staging
            }
        },
        health: match status.health {
            Health::Unknown => TaskHealth::Unknown,
            Health::Healthy => TaskHealth::Healthy,
            Health::Unhealthy => TaskHealth::Unhealthy {
                consecutive_failures: status.consecutive_failures,
            },
        },
        // Age is the task's creation (strictly increasing), so scale-down removes the
        // most recently created first.
        started_at: Timestamp(stored.value.created_ms),
    }
}

fn seed(app: &str, revision: u64) -> u64 {
    // FNV-1a over the app id, mixed with the revision: stable per state.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in app.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ revision
}

async fn pass_app(state: &AppState, app: &str) -> ApiResult<()> {
    let snapshot = state.snapshot();
    let Some((mut spec, version)) = effective_spec(&snapshot, app) else {
        return Ok(());
    };
    // An app on an existing endpoint goes where the endpoint is (a missing endpoint is
    // `create_task`'s to report).
    if let Some(ep) = spec
        .endpoint
        .as_ref()
        .and_then(|name| snapshot.endpoints.get(name))
    {
        spec.constraints.push(weft_app::Constraint::Equal {
            attribute: "hostname".into(),
            value: ep.value.node.clone(),
        });
    }
    let now = now_ms();
    let nodes = nodes(state, &snapshot);
    let tasks = app_tasks(&snapshot, app);
    let mut pending = Vec::new();
    let policy = SupervisionPolicy {
        heartbeat_deadline: weft_app::Duration::from_millis(millis(
            state.config.task_lost_deadline,
        )),
        placement: PlacementOptions::default(),
        ..SupervisionPolicy::default()
    };
    let seed = seed(app, snapshot.revision);

    let deployment = snapshot
        .deployments
        .get(app)
        .filter(|d| d.value.state == DeploymentState::Running);
    if let Some(deployment) = deployment {
        // Tasks of lost nodes are gone whatever the deployment says.
        let lost: BTreeSet<&str> = nodes
            .iter()
            .filter(|n| Timestamp(now).since(n.last_heartbeat) > policy.heartbeat_deadline)
            .map(|n| n.name.as_str())
            .collect();
        let known: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let mut alive = Vec::new();
        for task in &tasks {
            let node = task.value.node.as_str();
            if lost.contains(node) || !known.contains(node) {
                remove_task(state, &task.value.id).await?;
            } else {
                alive.push(*task);
            }
        }
        let view: Vec<DeploymentTask> = alive
            .iter()
            .map(|t| DeploymentTask {
                id: t.value.id.clone(),
                is_new: t.value.version == version,
                healthy: is_healthy(&task_status(state, t), &t.value.spec),
            })
            .collect();
        let (next, step) = deployment.value.plan.step(&view, Timestamp(now));
        tracing::debug!(%app, ?view, ?step, "deployment step");
        for id in &step.stop {
            remove_task(state, id).await?;
        }
        if step.start_new > 0 {
            let existing: Vec<weft_scheduler::Task> =
                alive.iter().map(|t| sched_task(state, t)).collect();
            let outcome = place(
                &nodes,
                &spec,
                &existing,
                step.start_new,
                &policy.placement,
                seed,
            );
            if let Some(explanation) = &outcome.explanation {
                pending.extend(explanation.to_string().lines().map(str::to_string));
            }
            for placement in outcome.placements {
                if let Err(why) = create_task(state, &spec, version, &placement.node).await {
                    pending.push(why);
                }
            }
        }
        let mut record = deployment.value.clone();
        record.plan = next;
        match &record.plan.status {
            DeploymentStatus::InProgress => {}
            DeploymentStatus::Succeeded => record.state = DeploymentState::Succeeded,
            DeploymentStatus::Cancelled => record.state = DeploymentState::Cancelled,
            DeploymentStatus::Failed { reason } => {
                record.state = DeploymentState::Failed;
                record.message = Some(reason.clone());
            }
        }
        if record != deployment.value {
            put_deployment(state, app, &record, Some(deployment.revision), true).await?;
        }
    } else {
        let view: Vec<weft_scheduler::Task> = tasks.iter().map(|t| sched_task(state, t)).collect();
        let restarts = state
            .scheduler
            .with(|m| m.restarts.get(app).copied().unwrap_or_default());
        let decisions = reconcile(
            &spec,
            &view,
            &nodes,
            Timestamp(now),
            restarts,
            &policy,
            seed,
        );
        state
            .scheduler
            .with(|m| m.restarts.insert(app.to_string(), decisions.restarts));
        for kill in &decisions.kill {
            tracing::info!(task = %kill.task, reason = ?kill.reason, "stopping task");
            remove_task(state, &kill.task).await?;
        }
        for placement in &decisions.launch {
            if let Err(why) = create_task(state, &spec, version, &placement.node).await {
                pending.push(why);
            }
        }
        if let Some(explanation) = &decisions.explanation {
            pending.extend(explanation.to_string().lines().map(str::to_string));
        }
        if let Some(at) = decisions.launch_delayed_until {
            pending.push(format!(
                "restart backoff: new tasks wait {} ms after repeated failures",
                at.0.saturating_sub(now)
            ));
        }
    }

    // Environments waiting for referenced apps.
    let snapshot = state.snapshot();
    let mut waits = BTreeSet::new();
    for task in app_tasks(&snapshot, app) {
        if task.value.env.is_some() {
            continue;
        }
        match render_env(state, &snapshot, &task.value.spec) {
            Ok(env) => {
                let mut record = task.value.clone();
                record.env = Some(env);
                record.waiting_for = None;
                put_task(state, &record, task.revision).await?;
            }
            Err(why) => {
                if task.value.waiting_for.as_deref() != Some(why.as_str()) {
                    let mut record = task.value.clone();
                    record.waiting_for = Some(why.clone());
                    put_task(state, &record, task.revision).await?;
                }
                waits.insert(why);
            }
        }
    }
    pending.extend(waits);
    state
        .scheduler
        .with(|m| m.pending.insert(app.to_string(), pending));
    Ok(())
}

async fn put_task(state: &AppState, record: &TaskRecord, revision: u64) -> ApiResult<()> {
    let key = keys::task(&record.id);
    let bytes = serde_json::to_vec(record).map_err(|e| ApiFailure::Internal(e.to_string()))?;
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            i64::try_from(revision).unwrap_or(i64::MAX),
        )])
        .and_then([TxnOp::put(key, bytes)]);
    let response = state.leadership.commit(&state.store, txn).await?;
    caught_up(state, as_revision(response.revision)).await;
    Ok(())
}

/// Writes a deployment record: fenced when the scheduler writes it (`fenced`), not
/// when the API does (any controller serves API writes).
pub async fn put_deployment(
    state: &AppState,
    app: &str,
    record: &DeploymentRecord,
    revision: Option<u64>,
    fenced: bool,
) -> ApiResult<()> {
    let key = keys::deployment(app);
    let bytes = serde_json::to_vec(record).map_err(|e| ApiFailure::Internal(e.to_string()))?;
    let guard = match revision {
        Some(rev) => Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            i64::try_from(rev).unwrap_or(i64::MAX),
        ),
        None => Compare::absent(key.clone()),
    };
    let txn = Txn::new().when([guard]).and_then([TxnOp::put(key, bytes)]);
    let response = if fenced {
        state.leadership.commit(&state.store, txn).await?
    } else {
        state.store.txn(txn).await?
    };
    caught_up(state, as_revision(response.revision)).await;
    Ok(())
}

/// The ops that delete a task with its endpoints (its own, and those in its networks
/// after the first) and their address claims.
pub fn remove_ops(snapshot: &Snapshot, id: &str) -> Vec<TxnOp> {
    let mut ops = vec![TxnOp::delete(keys::task(id))];
    let extras = (1..=weft_app::MAX_EXTRA_NETWORKS).map(|i| AppSpec::extra_endpoint(id, i));
    for name in std::iter::once(id.to_string()).chain(extras) {
        if let Some(ep) = snapshot.endpoints.get(&name) {
            ops.push(TxnOp::delete(keys::endpoint(&name)));
            ops.push(TxnOp::delete(keys::ip_claim(&ep.value.vrf, ep.value.ip)));
            ops.push(TxnOp::delete(keys::mac_claim(ep.value.mac)));
        }
    }
    ops
}

/// A task's endpoints in its networks after the first: new endpoints in the first one's
/// namespace (`netns`), as interfaces `weft1`, `weft2`... The guards and writes join the
/// task's placement transaction; the reservations hold the addresses until its commit.
struct ExtraEndpoints {
    guards: Vec<Compare>,
    ops: Vec<TxnOp>,
    _reservations: Vec<crate::ipam::Reservation>,
}

fn extra_endpoints(
    state: &AppState,
    snapshot: &Snapshot,
    spec: &AppSpec,
    id: &str,
    node: &str,
    netns: &str,
) -> Result<ExtraEndpoints, String> {
    let mut out = ExtraEndpoints {
        guards: Vec::new(),
        ops: Vec::new(),
        _reservations: Vec::new(),
    };
    if !spec.networks.is_empty() {
        // The plans read the compiled policy (the networks' EPGs and subnets).
        out.guards.push(Compare::mod_revision(
            keys::ALLOCATION,
            CompareOp::Equal,
            i64::try_from(snapshot.policy_revision).unwrap_or(i64::MAX),
        ));
    }
    for (i, network) in spec.networks.iter().enumerate() {
        let name = AppSpec::extra_endpoint(id, i + 1);
        let mut request = EndpointRequest::new(name.clone(), network.epg.clone(), node);
        request.security_groups.clone_from(&spec.security_groups);
        request.ip = network.ip;
        let (mut record, reservation) = crate::routes::plan_endpoint(state, snapshot, &request)
            .map_err(|e| {
                format!(
                    "cannot give task {id} an endpoint in its network {} (EPG {}): {e}",
                    i + 1,
                    network.epg
                )
            })?;
        record.netns = netns.to_string();
        record.interface = u8::try_from(i + 1).map_err(|_| "too many networks".to_string())?;
        let endpoint_key = keys::endpoint(&name);
        let ip_key = keys::ip_claim(&record.vrf, record.ip);
        let mac_key = keys::mac_claim(record.mac);
        out.guards.extend([
            Compare::absent(endpoint_key.clone()),
            Compare::create_revision(ip_key.clone(), CompareOp::Equal, 0),
            Compare::create_revision(mac_key.clone(), CompareOp::Equal, 0),
        ]);
        let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        out.ops.extend([
            TxnOp::put(endpoint_key, bytes),
            TxnOp::put(ip_key, name.clone()),
            TxnOp::put(mac_key, name),
        ]);
        out._reservations.push(reservation);
    }
    Ok(out)
}

/// Deletes a task and its endpoint (its agent stops it when it leaves the desired view).
pub async fn remove_task(state: &AppState, id: &str) -> ApiResult<()> {
    let snapshot = state.snapshot();
    if !snapshot.tasks.contains_key(id) {
        return Ok(());
    }
    let response = state
        .leadership
        .commit(&state.store, Txn::new().and_then(remove_ops(&snapshot, id)))
        .await?;
    caught_up(state, as_revision(response.revision)).await;
    tracing::debug!(task = %id, "task removed");
    Ok(())
}

/// Creates task `id` of an app on an existing endpoint: the record alone, guarded on the
/// endpoint being unchanged. `Ok(false)`: the state moved, try again.
async fn on_endpoint(
    state: &AppState,
    snapshot: &Snapshot,
    spec: &AppSpec,
    version: u64,
    node: &str,
    id: &str,
    name: &str,
) -> Result<bool, String> {
    let Some(endpoint) = snapshot.endpoints.get(name) else {
        return Err(format!("endpoint {name} (the app's) does not exist"));
    };
    if endpoint.value.node != node {
        return Err(format!(
            "endpoint {name} is on node {}, not {node}",
            endpoint.value.node
        ));
    }
    if let Some(user) = snapshot
        .tasks
        .values()
        .find(|t| t.value.spec.endpoint.as_deref() == Some(name))
    {
        return Err(format!(
            "endpoint {name} is in use by task {}: a new one starts when it is gone",
            user.value.id
        ));
    }
    let (env, waiting_for) = match render_env(state, snapshot, spec) {
        Ok(env) => (Some(env), None),
        Err(why) => (None, Some(why)),
    };
    let mut task_spec = spec.clone();
    task_spec.loc = weft_model::Location::default();
    // The placement constraint was the scheduler's, not the app's.
    task_spec.constraints = snapshot
        .apps
        .get(&spec.id)
        .map(|a| a.value.constraints.clone())
        .unwrap_or_default();
    let record = TaskRecord {
        id: id.to_string(),
        app: spec.id.clone(),
        version,
        node: node.to_string(),
        ip: endpoint.value.ip,
        mac: endpoint.value.mac,
        created_ms: state.scheduler.created_ms(),
        env,
        waiting_for,
        spec: task_spec,
    };
    let extras = extra_endpoints(state, snapshot, spec, id, node, &endpoint.value.netns)?;
    let task_key = keys::task(id);
    let task_bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    let txn = Txn::new()
        .when([
            Compare::absent(task_key.clone()),
            Compare::mod_revision(
                keys::endpoint(name),
                CompareOp::Equal,
                i64::try_from(endpoint.revision).unwrap_or(i64::MAX),
            ),
            Compare::version(keys::node(node), CompareOp::Greater, 0),
        ])
        .when(extras.guards)
        .and_then([TxnOp::put(task_key, task_bytes)])
        .and_then(extras.ops);
    let placed = commit_placement(state, txn).await?;
    if placed {
        tracing::info!(task = %id, %node, endpoint = %name, ip = %endpoint.value.ip, "task placed on an existing endpoint");
    }
    Ok(placed)
}

/// Commits a task's placement as the leader (fenced) and waits until this controller's
/// snapshot has it; `false` when the guards failed (the state moved: try again).
async fn commit_placement(state: &AppState, txn: Txn) -> Result<bool, String> {
    let response = state
        .leadership
        .commit(&state.store, txn)
        .await
        .map_err(|e| e.to_string())?;
    caught_up(state, as_revision(response.revision)).await;
    Ok(response.succeeded)
}

/// Creates one task of `spec` on `node`: record and endpoint in one transaction. Returns
/// why not (for `App.pending`) when it cannot.
async fn create_task(
    state: &AppState,
    spec: &AppSpec,
    version: u64,
    node: &str,
) -> Result<(), String> {
    for _ in 0..8 {
        let snapshot = state.snapshot();
        let taken: BTreeSet<&str> = snapshot
            .tasks
            .keys()
            .chain(snapshot.endpoints.keys())
            .map(String::as_str)
            .collect();
        // The id names the task's own endpoints too: all of them must be free.
        let free = |id: &String| {
            !taken.contains(id.as_str())
                && (1..=spec.networks.len())
                    .all(|i| !taken.contains(AppSpec::extra_endpoint(id, i).as_str()))
        };
        let Some(id) = (1u32..).map(|n| format!("{}-{n}", spec.id)).find(free) else {
            return Err("no free task id".into());
        };
        if let Some(name) = &spec.endpoint {
            match on_endpoint(state, &snapshot, spec, version, node, &id, name).await? {
                true => return Ok(()),
                false => continue,
            }
        }
        let mut request = EndpointRequest::new(id.clone(), spec.epg.clone(), node.to_string());
        request.security_groups.clone_from(&spec.security_groups);
        request.ip = spec.ip;
        let (endpoint, _reservation) = crate::routes::plan_endpoint(state, &snapshot, &request)
            .map_err(|e| format!("cannot give task {id} an endpoint: {e}"))?;
        let (env, waiting_for) = match render_env(state, &snapshot, spec) {
            Ok(env) => (Some(env), None),
            Err(why) => (None, Some(why)),
        };
        let extras = extra_endpoints(state, &snapshot, spec, &id, node, &endpoint.netns)?;
        let mut task_spec = spec.clone();
        task_spec.loc = weft_model::Location::default();
        let record = TaskRecord {
            id: id.clone(),
            app: spec.id.clone(),
            version,
            node: node.to_string(),
            ip: endpoint.ip,
            mac: endpoint.mac,
            created_ms: state.scheduler.created_ms(),
            env,
            waiting_for,
            spec: task_spec,
        };
        let task_key = keys::task(&id);
        let endpoint_key = keys::endpoint(&id);
        let ip_key = keys::ip_claim(&endpoint.vrf, endpoint.ip);
        let mac_key = keys::mac_claim(endpoint.mac);
        let task_bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let endpoint_bytes = serde_json::to_vec(&endpoint).map_err(|e| e.to_string())?;
        let txn = Txn::new()
            .when([
                Compare::absent(task_key.clone()),
                Compare::absent(endpoint_key.clone()),
                Compare::create_revision(ip_key.clone(), CompareOp::Equal, 0),
                Compare::create_revision(mac_key.clone(), CompareOp::Equal, 0),
                Compare::version(keys::node(node), CompareOp::Greater, 0),
                Compare::mod_revision(
                    keys::ALLOCATION,
                    CompareOp::Equal,
                    i64::try_from(snapshot.policy_revision).unwrap_or(i64::MAX),
                ),
            ])
            .when(extras.guards)
            .and_then([
                TxnOp::put(task_key, task_bytes),
                TxnOp::put(endpoint_key, endpoint_bytes),
                TxnOp::put(ip_key, id.clone()),
                TxnOp::put(mac_key, id.clone()),
            ])
            .and_then(extras.ops);
        if commit_placement(state, txn).await? {
            tracing::info!(task = %id, %node, ip = %endpoint.ip, "task placed");
            return Ok(());
        }
    }
    Err(format!(
        "could not place a task of app {} on node {node}: too many concurrent changes",
        spec.id
    ))
}
