//! The Docker runtime, through the Engine API (bollard).
//!
//! Networking (design, the paper's Nova-Docker path): the container gets NO Docker network
//! (`network_mode = "none"`: only `lo`). After it starts, its namespace is published as
//! `/run/netns/<TaskSpec::netns>` (bind mount of `/proc/<pid>/ns/net`) and weft's fabric
//! plumbs the endpoint veth into it, as it does for any named namespace. Docker cannot join
//! an existing namespace by path, so for this runtime the name must be free at start
//! ([`NetnsOwnership::Publishes`]); it is unmounted at stop.
//!
//! Names: the engine writes the container's `/etc/resolv.conf` even without a network;
//! `Dns = [gateway]` makes it name the endpoint's gateway, where the node's agent answers
//! DNS, and `DnsSearch = ["."]` keeps the node's search domains out ([`crate::resolver`]).
//!
//! The engine may be absent or stop at any time: the client is connected lazily, a failed
//! connection or transport error is reported as [`RuntimeError::EngineUnavailable`], and the
//! next call reconnects, so the agent keeps serving its other tasks meanwhile.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListImagesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    WaitContainerOptions,
};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Mutex;

use crate::caps::DockerPrivilege;
use crate::docker_spare::{self, DockerSpares};
use crate::error::{Result, RuntimeError};
use crate::logs::{LogChunk, LogOptions, LogStream, Output};
use crate::task::{ExecOutput, NetnsOwnership, StartedTask, TaskExit, TaskSpec, TaskStatus};
use crate::{Runtime, caps, netns};

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Labels that make a container self-describing, so the runtime keeps no state of its own
/// and a restarted agent can stop what an earlier one started.
pub const LABEL_TASK: &str = "weft.task";
pub const LABEL_NETNS: &str = "weft.netns";
/// Per-request timeout of the client, in seconds.
const REQUEST_TIMEOUT_SECS: u64 = 120;

#[derive(Debug, Clone)]
pub struct DockerRuntime {
    socket: String,
    client: Arc<Mutex<Option<Docker>>>,
    /// Warm containers tasks may start on ([`crate::docker_spare`]); `None`: every start
    /// is cold.
    spares: Option<Arc<DockerSpares>>,
    /// Container creates and starts in flight at once (see [`COLD_STARTS`]).
    cold_starts: Arc<tokio::sync::Semaphore>,
}

/// How many container creates and starts this runtime sends the engine at once. Why: a
/// burst sent all at once comes up all at once, when the engine has worked through every
/// one of them (measured: 50 at once all came up in the last ~4 s of ~12 s); a few at a
/// time come up one after the other, in about the same total time on two cores.
pub const COLD_STARTS: usize = 4;

/// One image of the engine, as `docker image ls` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineImage {
    /// `sha256:...`
    pub id: String,
    /// `repo:tag` references (the engine may list `<none>:<none>`).
    pub tags: Vec<String>,
    /// Bytes.
    pub size: u64,
    /// Unix milliseconds.
    pub created_ms: u64,
}

/// Container name of a task.
pub fn container_name(task: &str) -> String {
    format!("weft-{task}")
}

impl DockerRuntime {
    /// Does not touch the engine: it may come up later.
    pub fn new(socket: impl Into<String>) -> Self {
        DockerRuntime {
            socket: socket.into(),
            client: Arc::new(Mutex::new(None)),
            spares: None,
            cold_starts: Arc::new(tokio::sync::Semaphore::new(COLD_STARTS)),
        }
    }

    /// A turn to create and start a container (held until it has started).
    pub(crate) async fn cold_start_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.cold_starts.acquire().await.ok()
    }

    /// Starts tasks on warm containers of `spares` when one fits.
    pub fn with_spares(mut self, spares: Arc<DockerSpares>) -> Self {
        self.spares = Some(spares);
        self
    }

    pub fn spares(&self) -> Option<&Arc<DockerSpares>> {
        self.spares.as_ref()
    }

    /// This runtime without its spares: what the pool's own background work uses.
    fn without_spares(&self) -> Self {
        DockerRuntime {
            spares: None,
            ..self.clone()
        }
    }

    pub fn socket(&self) -> &str {
        &self.socket
    }

    fn unavailable(&self, source: DockerError) -> RuntimeError {
        RuntimeError::EngineUnavailable {
            socket: self.socket.clone(),
            source,
        }
    }

    /// A connected client, negotiating the API version with the engine on first use.
    pub(crate) async fn client(&self) -> Result<Docker> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = Docker::connect_with_unix(
            &self.socket,
            REQUEST_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| self.unavailable(e))?
        .negotiate_version()
        .await
        .map_err(|e| self.unavailable(e))?;
        tracing::info!(socket = %self.socket, api = ?client.client_version(), "connected to docker engine");
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Maps an API error. The engine's own answers stay [`RuntimeError::Engine`]; anything
    /// that means "nobody answered" becomes `EngineUnavailable` and drops the cached client.
    pub(crate) async fn classify(&self, what: &'static str, error: DockerError) -> RuntimeError {
        match error {
            DockerError::DockerResponseServerError { .. }
            | DockerError::DockerContainerWaitError { .. }
            | DockerError::JsonDataError { .. }
            | DockerError::JsonSerdeError { .. } => RuntimeError::Engine {
                what,
                source: error,
            },
            other => {
                tracing::warn!(socket = %self.socket, error = %other, "docker engine unavailable");
                *self.client.lock().await = None;
                self.unavailable(other)
            }
        }
    }

    /// Checks the engine answers.
    pub async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        match client.ping().await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify("ping", e).await),
        }
    }

    async fn inspect(&self, task: &str) -> Result<ContainerInspectResponse> {
        let client = self.client().await?;
        match client
            .inspect_container(&container_name(task), None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => Ok(info),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(RuntimeError::UnknownTask(task.to_string())),
            Err(e) => Err(self.classify("inspect container", e).await),
        }
    }

    /// The engine's host configuration of a task: no network, its resolver, limits and
    /// privilege.
    pub(crate) fn host_config(spec: &TaskSpec, nameserver: Option<IpAddr>) -> HostConfig {
        let mut host_config = HostConfig {
            dns: nameserver.map(|ns| vec![ns.to_string()]),
            // "." = no search line (Docker's `--dns-search .`), not the node's domains.
            dns_search: nameserver.map(|_| vec![".".to_string()]),
            network_mode: Some("none".into()),
            nano_cpus: (spec.cpus > 0.0).then(|| (spec.cpus * 1e9).round() as i64),
            memory: (spec.mem_mib > 0).then(|| (spec.mem_mib * 1024 * 1024) as i64),
            // Same as memory: no swap beyond the limit.
            memory_swap: (spec.mem_mib > 0).then(|| (spec.mem_mib * 1024 * 1024) as i64),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".to_string()]),
            cap_add: Some(caps::docker_cap_add()),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            ..Default::default()
        };
        if spec.privileged {
            host_config.cap_drop = None;
            host_config.security_opt = None;
            match caps::docker_privilege() {
                DockerPrivilege::Full => {
                    host_config.privileged = Some(true);
                    host_config.cap_add = None;
                }
                DockerPrivilege::NodeCaps(all) => {
                    tracing::warn!(task = %spec.id, "node lacks some capabilities; privileged container gets all the node has");
                    host_config.cap_add = Some(all);
                    host_config.security_opt = Some(vec![
                        "seccomp=unconfined".into(),
                        "apparmor=unconfined".into(),
                    ]);
                }
            }
        }
        host_config
    }

    fn container_body(
        spec: &TaskSpec,
        image: &str,
        nameserver: Option<IpAddr>,
    ) -> ContainerCreateBody {
        let host_config = Self::host_config(spec, nameserver);
        ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(HashMap::from([
                (LABEL_TASK.to_string(), spec.id.clone()),
                (LABEL_NETNS.to_string(), spec.netns.clone()),
            ])),
            tty: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    pub async fn start(&self, spec: &TaskSpec) -> Result<StartedTask> {
        spec.validate()?;
        let nameserver = spec.nameserver()?;
        let image = spec
            .image
            .as_deref()
            .ok_or_else(|| RuntimeError::invalid(&spec.id, "the docker runtime needs an image"))?;
        if netns::netns_path(&spec.netns).exists() {
            return Err(RuntimeError::Netns {
                name: spec.netns.clone(),
                why: "already exists; the docker runtime publishes the container's namespace under this name".into(),
            });
        }
        if let Some(spares) = &self.spares
            && let Some(started) = spares
                .start(&self.without_spares(), spec, image, nameserver)
                .await
        {
            return started;
        }
        let _turn = self.cold_start_turn().await;
        let client = self.client().await?;
        let name = container_name(&spec.id);
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = match client
            .create_container(Some(options), Self::container_body(spec, image, nameserver))
            .await
        {
            Ok(created) => created,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(RuntimeError::ImageNotFound(image.to_string()));
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                return Err(RuntimeError::TaskExists(spec.id.clone()));
            }
            Err(e) => return Err(self.classify("create container", e).await),
        };
        match self.start_created(spec, &client, &name).await {
            Ok(pid) => {
                tracing::info!(task = %spec.id, container = %created.id, pid, netns = %spec.netns,
                    privileged = spec.privileged, "docker task started");
                Ok(StartedTask {
                    pid,
                    container_id: Some(created.id),
                })
            }
            Err(e) => {
                // Leave nothing half-started behind.
                let _ = netns::unpublish(&spec.netns);
                let force = RemoveContainerOptionsBuilder::new().force(true).build();
                if let Err(rm) = client.remove_container(&name, Some(force)).await {
                    tracing::warn!(container = %name, error = %rm, "cannot remove failed container");
                }
                Err(e)
            }
        }
    }

    async fn start_created(&self, spec: &TaskSpec, client: &Docker, name: &str) -> Result<u32> {
        if let Err(e) = client.start_container(name, None).await {
            return Err(self.classify("start container", e).await);
        }
        let state = self.inspect(&spec.id).await?.state.unwrap_or_default();
        let pid = state.pid.unwrap_or(0).max(0) as u32;
        if state.running == Some(true) && pid > 0 {
            if let Err(e) = netns::publish(pid, &spec.netns) {
                // A short task may exit between inspect and the bind mount: not an error.
                let still_running = self.inspect(&spec.id).await?.state.and_then(|s| s.running);
                if still_running == Some(true) {
                    return Err(e);
                }
                tracing::warn!(task = %spec.id, "container exited before its namespace could be published");
            }
        } else {
            tracing::warn!(task = %spec.id, "container exited before its namespace could be published");
        }
        Ok(pid)
    }

    fn exit_of(info: &ContainerInspectResponse) -> TaskExit {
        let state = info.state.clone().unwrap_or_default();
        TaskExit {
            code: state.exit_code.map(|c| c as i32),
            signal: None,
            oom_killed: state.oom_killed.unwrap_or(false),
        }
    }

    pub async fn status(&self, task: &str) -> Result<TaskStatus> {
        let info = self.inspect(task).await?;
        let state = info.state.clone().unwrap_or_default();
        Ok(if state.running == Some(true) {
            TaskStatus::Running {
                pid: state.pid.unwrap_or(0).max(0) as u32,
            }
        } else {
            TaskStatus::Exited(Self::exit_of(&info))
        })
    }

    pub async fn wait(&self, task: &str) -> Result<TaskExit> {
        let client = self.client().await?;
        let mut waits = client.wait_container(&container_name(task), None::<WaitContainerOptions>);
        // bollard reports a non-zero exit as an error; the exit itself is read by inspect.
        match waits.next().await {
            Some(Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            })) => {
                return Err(RuntimeError::UnknownTask(task.to_string()));
            }
            Some(Err(e @ DockerError::DockerContainerWaitError { .. }))
            | Some(Err(e @ DockerError::DockerResponseServerError { .. })) => {
                tracing::debug!(task, error = %e, "wait reported");
            }
            Some(Err(e)) => return Err(self.classify("wait container", e).await),
            Some(Ok(_)) | None => {}
        }
        Ok(Self::exit_of(&self.inspect(task).await?))
    }

    pub async fn stop(&self, task: &str, grace: Duration) -> Result<TaskExit> {
        let info = self.inspect(task).await?;
        let client = self.client().await?;
        let name = container_name(task);
        let spare_dir = Self::spare_dir(&info);
        let netns_name = info
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(LABEL_NETNS).cloned())
            .or_else(|| spare_dir.as_deref().and_then(docker_spare::recorded_netns));
        if let Some(ns) = &netns_name {
            netns::unpublish(ns)?;
        }
        let seconds = grace.as_secs_f64().ceil() as i32;
        tracing::info!(task, ?grace, "stopping docker task");
        match client
            .stop_container(
                &name,
                Some(StopContainerOptionsBuilder::new().t(seconds).build()),
            )
            .await
        {
            // 304: already stopped.
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => return Err(self.classify("stop container", e).await),
        }
        let exit = Self::exit_of(&self.inspect(task).await?);
        let force = RemoveContainerOptionsBuilder::new().force(true).build();
        match client.remove_container(&name, Some(force)).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(self.classify("remove container", e).await),
        }
        if let Some(dir) = spare_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(exit)
    }

    /// The host directory of a container started on a warm container, from its label.
    fn spare_dir(info: &ContainerInspectResponse) -> Option<std::path::PathBuf> {
        info.config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(docker_spare::LABEL_SPARE_DIR))
            .map(std::path::PathBuf::from)
    }

    pub async fn exec(&self, task: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput> {
        // A task on a warm container: the engine's configuration has the image's
        // environment only; the task's is in the container's directory.
        let env = match self.inspect(task).await {
            Ok(info) => Self::spare_dir(&info)
                .as_deref()
                .and_then(docker_spare::recorded_env),
            Err(e) => return Err(e),
        };
        let client = self.client().await?;
        let options = CreateExecOptions {
            cmd: Some(argv.to_vec()),
            env,
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = match client.create_exec(&container_name(task), options).await {
            Ok(created) => created,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(RuntimeError::UnknownTask(task.to_string()));
            }
            Err(e) => return Err(self.classify("create exec", e).await),
        };
        let run = async {
            let mut out = ExecOutput {
                exit_code: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            match client.start_exec(&created.id, None).await {
                Ok(StartExecResults::Attached { mut output, .. }) => {
                    while let Some(chunk) = output.next().await {
                        match chunk {
                            Ok(bollard::container::LogOutput::StdErr { message }) => {
                                out.stderr.extend_from_slice(&message)
                            }
                            Ok(other) => out.stdout.extend_from_slice(&other.into_bytes()),
                            Err(e) => return Err(self.classify("exec output", e).await),
                        }
                    }
                }
                Ok(StartExecResults::Detached) => {}
                Err(e) => return Err(self.classify("start exec", e).await),
            }
            match client.inspect_exec(&created.id).await {
                Ok(info) => out.exit_code = info.exit_code.map(|c| c as i32),
                Err(e) => return Err(self.classify("inspect exec", e).await),
            }
            Ok(out)
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| RuntimeError::ExecTimeout {
                task: task.to_string(),
                timeout,
            })?
    }

    pub fn logs(&self, task: &str, options: LogOptions) -> LogStream {
        let this = self.clone();
        let name = container_name(task);
        let task = task.to_string();
        let connect = async move {
            let client = this.client().await?;
            let query = LogsOptionsBuilder::new()
                .stdout(true)
                .stderr(true)
                .follow(options.follow)
                .build();
            let stream = client.logs(&name, Some(query)).then(move |item| {
                let this = this.clone();
                let task = task.clone();
                async move {
                    match item {
                        Ok(bollard::container::LogOutput::StdErr { message }) => Ok(LogChunk {
                            output: Output::Stderr,
                            data: message.to_vec(),
                        }),
                        Ok(other) => Ok(LogChunk {
                            output: Output::Stdout,
                            data: other.into_bytes().to_vec(),
                        }),
                        Err(DockerError::DockerResponseServerError {
                            status_code: 404, ..
                        }) => Err(RuntimeError::UnknownTask(task)),
                        Err(e) => Err(this.classify("logs", e).await),
                    }
                }
            });
            Ok::<_, RuntimeError>(stream)
        };
        Box::pin(futures::stream::once(connect).try_flatten())
    }
}

impl DockerRuntime {
    /// The last `lines` lines the container wrote (stdout and stderr, in the engine's
    /// order), at most `max_bytes` of them (the end kept): a console's tail, bounded
    /// whatever the log's size.
    pub async fn tail(&self, task: &str, lines: usize, max_bytes: usize) -> Result<Vec<u8>> {
        let client = self.client().await?;
        let query = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = client.logs(&container_name(task), Some(query));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => {
                    out.extend_from_slice(&chunk.into_bytes());
                    if out.len() > max_bytes.saturating_mul(2) {
                        out.drain(..out.len() - max_bytes);
                    }
                }
                Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Err(RuntimeError::UnknownTask(task.to_string())),
                Err(e) => return Err(self.classify("logs", e).await),
            }
        }
        if out.len() > max_bytes {
            out.drain(..out.len() - max_bytes);
        }
        Ok(out)
    }

    /// The images the engine holds (`GET /images/json`, top-level images only).
    pub async fn images(&self) -> Result<Vec<EngineImage>> {
        let client = self.client().await?;
        let query = ListImagesOptionsBuilder::new().all(false).build();
        match client.list_images(Some(query)).await {
            Ok(list) => Ok(list
                .into_iter()
                .map(|i| EngineImage {
                    id: i.id,
                    tags: i.repo_tags,
                    size: u64::try_from(i.size).unwrap_or(0),
                    created_ms: u64::try_from(i.created).unwrap_or(0).saturating_mul(1000),
                })
                .collect()),
            Err(e) => Err(self.classify("list images", e).await),
        }
    }

    /// The last line of the container's stderr (the engine's last few lines only).
    pub async fn last_error_line(&self, task: &str) -> Option<String> {
        let client = self.client().await.ok()?;
        let query = LogsOptionsBuilder::new()
            .stdout(false)
            .stderr(true)
            .tail("20")
            .build();
        let collect = client.logs(&container_name(task), Some(query)).try_fold(
            Vec::new(),
            |mut acc, item| async move {
                acc.extend_from_slice(&item.into_bytes());
                Ok(acc)
            },
        );
        let bytes = tokio::time::timeout(Duration::from_secs(2), collect)
            .await
            .ok()?
            .ok()?;
        crate::logs::last_line(&bytes)
    }
}

impl Runtime for DockerRuntime {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn netns_ownership(&self) -> NetnsOwnership {
        NetnsOwnership::Publishes
    }

    fn start<'a>(&'a self, spec: &'a TaskSpec) -> BoxFuture<'a, Result<StartedTask>> {
        Box::pin(DockerRuntime::start(self, spec))
    }

    fn status<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<TaskStatus>> {
        Box::pin(DockerRuntime::status(self, task))
    }

    fn wait<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<TaskExit>> {
        Box::pin(DockerRuntime::wait(self, task))
    }

    fn stop<'a>(&'a self, task: &'a str, grace: Duration) -> BoxFuture<'a, Result<TaskExit>> {
        Box::pin(DockerRuntime::stop(self, task, grace))
    }

    fn exec<'a>(
        &'a self,
        task: &'a str,
        argv: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput>> {
        Box::pin(DockerRuntime::exec(self, task, argv, timeout))
    }

    fn logs(&self, task: &str, options: LogOptions) -> LogStream {
        DockerRuntime::logs(self, task, options)
    }

    fn last_error_line<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(DockerRuntime::last_error_line(self, task))
    }
}
