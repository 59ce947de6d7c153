//! Wire types of apps and their tasks (Marathon's model): the controller schedules,
//! agents run and report.

use crate::types::{EndpointState, MacAddr};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use weft_app::AppSpec;

/// `POST /v1/apps`: apps to create or replace, as the JSON twin of their HCL
/// (`{"app": {"web": {...}}}`). Validated whole, with every other stored app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppsRequest {
    pub apps: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppsResponse {
    pub revision: u64,
    pub apps: Vec<String>,
    /// One deployment per app whose spec changed.
    #[serde(default)]
    pub deployments: Vec<String>,
}

/// `PUT /v1/apps/{id}/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    pub instances: u32,
}

/// An app as stored, with what its tasks are doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub id: String,
    pub spec: AppSpec,
    /// Revision of the current spec; tasks carry the version they were started from.
    pub version: u64,
    pub instances: u32,
    pub running: u32,
    pub healthy: u32,
    #[serde(default)]
    pub deployment: Option<Deployment>,
    /// Why some instances are not placed or not started (`weft app why-pending`).
    #[serde(default)]
    pub pending: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// An app change in progress: old tasks replaced by new ones within the app's
/// upgrade strategy, with a progress deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub id: String,
    pub app: String,
    pub from_version: u64,
    pub to_version: u64,
    pub state: DeploymentState,
    pub started_ms: u64,
    pub deadline_ms: u64,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Placed; waiting for its endpoint's policy, or for a referenced app (see `message`).
    Pending,
    /// The runtime is starting it.
    Starting,
    Running,
    /// Exited; the agent restarts it after the restart backoff.
    Failed,
    /// Being stopped (scale down, update, removal).
    Stopping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No health check, or still in its grace period.
    Unknown,
    Healthy,
    Unhealthy,
}

/// One instance of an app, as the controller stores it. Its endpoint has the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// `<app>-<n>`, unique; also the endpoint's name.
    pub id: String,
    pub app: String,
    /// The app version (spec revision) this task runs.
    pub version: u64,
    pub node: String,
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub created_ms: u64,
    /// The environment, references resolved; `None` while a referenced app has no
    /// running task (the task waits, and `status.message` says for what).
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    pub status: TaskStatus,
}

/// What the task's agent last reported (or the controller's own view before that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskStatus {
    pub state: TaskState,
    pub health: Health,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default)]
    pub started_ms: Option<u64>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub message: Option<String>,
    /// The endpoint's state on its node: a task starts only once it is `Ready`.
    #[serde(default = "pending_endpoint")]
    pub endpoint: EndpointState,
}

fn pending_endpoint() -> EndpointState {
    EndpointState::Pending
}

impl TaskStatus {
    /// A task that has not started (yet), and why (if there is anything to say); the
    /// agent and the controller both say this before anything else.
    pub fn pending(message: impl Into<Option<String>>, endpoint: EndpointState) -> Self {
        Self {
            state: TaskState::Pending,
            health: Health::Unknown,
            restarts: 0,
            consecutive_failures: 0,
            started_ms: None,
            exit_code: None,
            message: message.into(),
            endpoint,
        }
    }
}

/// A task for an agent to run: the task and the spec of its app version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskAssignment {
    pub task: Task,
    pub spec: AppSpec,
    /// Where the task's stdout and stderr go on its node.
    pub log_dir: String,
}

/// `GET /v1/tasks/{id}/output`: the end of what a task printed, read from its node's
/// agent (a container's log; a process's `stdout.log` then `stderr.log`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskOutput {
    pub task: String,
    pub node: String,
    /// As text: bytes that are not UTF-8 are replaced.
    pub output: String,
}
