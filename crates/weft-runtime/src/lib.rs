//! Runs weft tasks on a node: the [`Runtime`] trait the node agent drives, with two
//! implementations.
//!
//! * [`ProcessRuntime`]: a host process that enters the endpoint's network namespace,
//!   its own cgroup `weft/<task>` (v1 or v2) and a reduced capability set before exec.
//! * [`DockerRuntime`]: a container through the Docker Engine API with no Docker network;
//!   its namespace is published as `/run/netns/<name>` for weft's fabric to plumb
//!   (the paper's Nova-Docker path).
//!
//! Configuration reaches a task through `WEFT_*` variables ([`task_env`]), not a metadata
//! proxy; privilege is per task ([`TaskSpec::privileged`]). Names resolve at the
//! endpoint's gateway: both runtimes point the task's `/etc/resolv.conf` there
//! ([`resolver`]).

pub mod caps;
pub mod cgroup;
pub mod docker;
pub mod docker_spare;
pub mod env;
pub mod error;
pub mod logs;
pub mod netns;
pub mod process;
pub mod resolver;
pub mod spare;
pub mod task;

use std::time::Duration;

use futures::future::BoxFuture;

pub use docker::DockerRuntime;
pub use env::{TaskIdentity, task_env};
pub use error::{Result, RuntimeError};
pub use logs::{LogChunk, LogOptions, LogStream, Output};
pub use process::{ProcessRuntime, TASK_PATH};
pub use task::{ExecOutput, NetnsOwnership, StartedTask, TaskDns, TaskExit, TaskSpec, TaskStatus};

/// What the node agent needs from a runtime. Object safe, so an agent can hold
/// `Box<dyn Runtime>` per kind of task.
pub trait Runtime: Send + Sync + std::fmt::Debug {
    /// `"process"` or `"docker"`.
    fn kind(&self) -> &'static str;

    /// Whether the task's namespace must exist before [`Runtime::start`] or appears with it.
    fn netns_ownership(&self) -> NetnsOwnership;

    fn start<'a>(&'a self, spec: &'a TaskSpec) -> BoxFuture<'a, Result<StartedTask>>;

    fn status<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<TaskStatus>>;

    /// Resolves when the task has exited.
    fn wait<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<TaskExit>>;

    /// SIGTERM, then SIGKILL after `grace`; releases everything the task held (cgroup,
    /// container, published namespace) and forgets it.
    fn stop<'a>(&'a self, task: &'a str, grace: Duration) -> BoxFuture<'a, Result<TaskExit>>;

    /// Runs `argv` inside the running task, with the task's own namespace and privileges
    /// (health checks).
    fn exec<'a>(
        &'a self,
        task: &'a str,
        argv: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput>>;

    /// The task's stdout and stderr; with `follow`, the stream goes on until the task exits.
    fn logs(&self, task: &str, options: LogOptions) -> LogStream;

    /// The last non-empty line the task (or its last run, until the task is stopped or
    /// started again) wrote to stderr: why it ended, in its own words
    /// (`sh: 1: exec: busybox: not found`). `None` when there is none or it cannot be read.
    fn last_error_line<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Option<String>>;
}
