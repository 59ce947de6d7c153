//! Nodes: registration (join token), heartbeats and reports (memory), the desired view.

use super::indexed;
use super::skeleton::{self, commit_guarded, fresh, read};
use crate::auth::Role;
use crate::error::{ApiFailure, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::keys;
use crate::liveness::Liveness;
use crate::server::AppState;
use crate::state::Snapshot;
use crate::watch::BlockingParams;
use axum::extract::{Path, State};
use axum::response::Response;
use std::sync::Arc;
use weft_api::{Node, NodeDesired, NodeImages, NodeRegistration, NodeReport, TaskAssignment};
use weft_store::{Compare, CompareOp, KvStore, Txn, TxnOp};

pub async fn list(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    role.require_agent()?;
    read(&state, &wait, |snapshot| Ok(all_nodes(&state, snapshot))).await
}

pub async fn get_one(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    role.require_agent()?;
    read(&state, &wait, |snapshot| node_view(&state, snapshot, &name)).await
}

pub async fn register(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiJson(registration): ApiJson<NodeRegistration>,
) -> ApiResult<Response> {
    role.require_agent()?;
    check_registration(&registration)?;
    let name = registration.name.clone();
    let unchanged = state
        .snapshot()
        .nodes
        .get(&name)
        .is_some_and(|stored| stored.value == registration);
    // An agent re-registers at every start; an unchanged registration writes nothing, so
    // it wakes no watcher.
    if !unchanged {
        let bytes =
            serde_json::to_vec(&registration).map_err(|e| ApiFailure::Internal(e.to_string()))?;
        skeleton::put(&state, &keys::node(&name), &bytes).await?;
        tracing::info!(node = %name, "node registered");
    }
    state.liveness.heartbeat(&name);
    let snapshot = state.snapshot();
    let node = node_view(&state, &snapshot, &name)?;
    Ok(indexed(snapshot.revision, &node))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    role.require_admin()?;
    let snapshot = state.snapshot();
    let stored = snapshot
        .nodes
        .get(&name)
        .ok_or_else(|| ApiFailure::not_found(format!("node {name} is not registered"), None))?;
    let hosted: Vec<String> = snapshot
        .endpoints
        .values()
        .filter(|ep| ep.value.node == name)
        .map(|ep| format!("endpoint {} is on node {name}", ep.value.name))
        .collect();
    if !hosted.is_empty() {
        return Err(ApiFailure::Conflict {
            message: format!("node {name} still hosts {} endpoints", hosted.len()),
            field: None,
            details: hosted,
        });
    }
    let key = keys::node(&name);
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            i64::try_from(stored.revision).unwrap_or(i64::MAX),
        )])
        .and_then([TxnOp::delete(key), TxnOp::delete(keys::node_images(&name))]);
    let revision = commit_guarded(&state, txn, format!("node {name}")).await?;
    state.liveness.forget(&name);
    Ok(indexed(revision, &serde_json::json!({ "deleted": name })))
}

pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    role.require_agent()?;
    let snapshot = state.snapshot();
    registered(&snapshot, &name)?;
    state.liveness.heartbeat(&name);
    crate::live_share::heard(&state, &name, None).await;
    Ok(indexed(snapshot.revision, &serde_json::json!({})))
}

pub async fn report(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    ApiJson(report): ApiJson<NodeReport>,
) -> ApiResult<Response> {
    role.require_agent()?;
    let snapshot = state.snapshot();
    registered(&snapshot, &name)?;
    // A report is a sign of life too.
    state.liveness.heartbeat(&name);
    crate::live_share::heard(&state, &name, Some(&report)).await;
    state.liveness.report(&name, report);
    state.scheduler_wake.notify_one();
    // Task states and health come with reports: the Consul catalog shows them.
    state.catalog_changes.send_modify(|n| *n += 1);
    Ok(indexed(snapshot.revision, &serde_json::json!({})))
}

/// `PUT /v1/nodes/{name}/images`: the Docker images the node's engine holds, bounded
/// at admission ([`NodeImages::check`]). Written to the node's key in the store (every
/// controller reads the same) only when the digest differs from the stored one.
pub async fn images(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    ApiJson(images): ApiJson<NodeImages>,
) -> ApiResult<Response> {
    role.require_agent()?;
    let snapshot = state.snapshot();
    registered(&snapshot, &name)?;
    images
        .check()
        .map_err(|why| ApiFailure::bad_request(why, Some("images")))?;
    let key = keys::node_images(&name);
    let stored = state.store.get(key.as_bytes()).await?;
    let unchanged = stored
        .kv
        .and_then(|kv| serde_json::from_slice::<NodeImages>(&kv.value).ok())
        .is_some_and(|s| s.digest == images.digest);
    if !unchanged {
        let bytes = serde_json::to_vec(&images).map_err(|e| ApiFailure::Internal(e.to_string()))?;
        state.store.put(key.as_bytes(), &bytes, None).await?;
        tracing::info!(node = %name, images = images.images.len(), "node images reported");
    }
    Ok(indexed(snapshot.revision, &serde_json::json!({})))
}

pub async fn desired(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    role.require_agent()?;
    registered(&state.snapshot(), &name)?;
    let snapshot = fresh(&state, &wait).await?;
    // The common part (policy, nodes, endpoints) is built once per revision for every
    // agent; the node's own tasks are spliced into its `"tasks":[]` at the end.
    let body = state.desired_cache.get_or_build(snapshot.revision, || {
        let view = NodeDesired {
            revision: snapshot.revision,
            policy: (*snapshot.policy).clone(),
            nodes: snapshot.nodes.values().map(|n| n.value.clone()).collect(),
            endpoints: super::endpoints::wire_endpoints(&state, &snapshot, &Role::Agent),
            tasks: Vec::new(),
        };
        serde_json::to_vec(&view).map_err(|e| ApiFailure::Internal(e.to_string()))
    })?;
    let tasks = node_tasks(&state, &snapshot, &name);
    if tasks.is_empty() {
        return Ok(super::indexed_bytes(snapshot.revision, body));
    }
    let tasks = serde_json::to_vec(&tasks).map_err(|e| ApiFailure::Internal(e.to_string()))?;
    let Some(common) = body.strip_suffix(b"[]}") else {
        return Err(ApiFailure::Internal(
            "desired view does not end with its empty task list".into(),
        ));
    };
    let mut spliced = Vec::with_capacity(common.len() + tasks.len() + 1);
    spliced.extend_from_slice(common);
    spliced.extend_from_slice(&tasks);
    spliced.push(b'}');
    Ok(super::indexed_bytes(snapshot.revision, spliced.into()))
}

/// The tasks placed on `node`, each with the spec of the version it runs.
fn node_tasks(state: &AppState, snapshot: &Snapshot, node: &str) -> Vec<TaskAssignment> {
    let mut tasks: Vec<TaskAssignment> = snapshot
        .tasks
        .values()
        .filter(|t| t.value.node == node)
        .map(|t| TaskAssignment {
            task: crate::apps::wire_task(state, t),
            spec: t.value.spec.clone(),
            log_dir: state.config.task_log_dir.clone(),
        })
        .collect();
    tasks.sort_by_key(|a| crate::apps::task_order(&a.task.id));
    tasks
}

fn all_nodes(state: &AppState, snapshot: &Snapshot) -> Vec<Node> {
    snapshot
        .nodes
        .keys()
        .filter_map(|name| node_view(state, snapshot, name).ok())
        .collect()
}

/// 404 unless `name` is a registered node.
fn registered(snapshot: &Snapshot, name: &str) -> ApiResult<()> {
    if snapshot.nodes.contains_key(name) {
        Ok(())
    } else {
        Err(ApiFailure::not_found(
            format!("node {name} is not registered"),
            None,
        ))
    }
}

fn node_view(state: &AppState, snapshot: &Snapshot, name: &str) -> ApiResult<Node> {
    let stored = snapshot
        .nodes
        .get(name)
        .ok_or_else(|| ApiFailure::not_found(format!("node {name} is not registered"), None))?;
    let live = state.liveness.get(name);
    Ok(Node {
        registration: stored.value.clone(),
        revision: stored.revision,
        ready: Liveness::is_ready(&live, state.config.node_deadline),
        last_heartbeat_ms: live.last_heartbeat_ms,
        report: live.report,
    })
}

fn check_registration(registration: &NodeRegistration) -> ApiResult<()> {
    let name = &registration.name;
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if !name_ok {
        return Err(ApiFailure::bad_request(
            format!("node name {name:?} must be 1 to 63 characters of [a-z0-9.-]"),
            Some("name"),
        ));
    }
    let prefix = &registration.netns_prefix;
    let prefix_ok = prefix.starts_with("weft")
        && prefix.len() <= 24
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !prefix_ok {
        return Err(ApiFailure::bad_request(
            format!(
                "netns_prefix {prefix:?} must start with \"weft\" and be at most 24 characters of [a-z0-9-]"
            ),
            Some("netns_prefix"),
        ));
    }
    let resources = &registration.resources;
    if !resources.cpus.is_finite() || resources.cpus < 0.0 {
        return Err(ApiFailure::bad_request(
            "resources.cpus must be a non-negative number",
            Some("resources.cpus"),
        ));
    }
    Ok(())
}
