//! The tasks of this node: which to start, supervise and stop, and what to report.
//!
//! Order against the fabric (the "policy before start" rule):
//!
//! * process tasks join a namespace that must exist ([`NetnsOwnership::JoinsExisting`]):
//!   the agent creates the endpoint's namespace and reconciles (port + policy) first; a
//!   task is started only after a reconcile reported its endpoint `Ready`, and only once
//!   the controller has resolved its `env` (until then it stays `Pending` with the
//!   controller's message);
//! * Docker tasks bring their namespace with the container
//!   ([`NetnsOwnership::Publishes`]): the agent does not create it; the container is
//!   started first, with no network at all (`network_mode=none`, only `lo`), and its
//!   namespace is published under the endpoint's name; then the agent reconciles again,
//!   which plumbs the endpoint's port and installs its policy. The task has no
//!   connectivity before its policy is in place either way.
//!
//! Stopping: tasks that leave the desired state (or whose assignment changed) are stopped
//! (SIGTERM, SIGKILL after [`TaskSettings::stop_grace`]) before the reconcile that prunes
//! their endpoint's namespace, and forgotten.
//!
//! Logs of process tasks: `<log_dir>/<task id>/stdout.log` and `.../stderr.log`
//! (`log_dir` from the assignment, else [`TaskSettings::default_log_dir`]); the task's
//! working directory is `<log_dir>/<task id>`; files are truncated when the task
//! (re)starts. Docker tasks' logs stay with the Docker engine
//! ([`weft_runtime::Runtime::logs`] reads either).
//!
//! Agent restarts: a process task is a child of the agent's runtime, which cannot adopt
//! a process it did not start. On a clean shutdown the agent stops its process tasks;
//! after a crash they keep running, and the restarted agent kills what is left in the
//! task's cgroup `weft/<task id>` and starts the task again (no restart is counted: the
//! new agent starts from zero). Docker containers are left running on shutdown and
//! adopted by the next agent (the runtime keeps no state of its own).

use crate::supervisor::Supervisor;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use weft_api::{
    Endpoint, EndpointState, EndpointStatus, NodeDesired, TaskAssignment, TaskState, TaskStatus,
};
use weft_runtime::spare::SparePool;
use weft_runtime::{
    DockerRuntime, NetnsOwnership, ProcessRuntime, Runtime, RuntimeError, TaskIdentity, TaskSpec,
    task_env,
};

/// Why a task cannot be run at all (reported as its message).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task {task}: the app spec has neither a command nor an image")]
    NoRuntime { task: String },
    #[error("task {task}: {source}")]
    Runtime {
        task: String,
        #[source]
        source: RuntimeError,
    },
}

/// What the task side of the agent is told.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    pub node: String,
    /// Passed to tasks as `WEFT_CONTROLLER`.
    pub controller: Option<String>,
    /// Log directory of assignments that name none.
    pub default_log_dir: PathBuf,
    pub docker_socket: String,
    /// Between SIGTERM and SIGKILL when a task is stopped.
    pub stop_grace: Duration,
    /// Executable of the spare task processes (`None`: no spares).
    pub shim: Option<PathBuf>,
    /// Process tasks' cgroups are `weft/<cgroup_scope>/<task>`: unique per agent on a
    /// host (the agent's namespace prefix), so that its sweep of leftovers touches no
    /// other agent's tasks.
    pub cgroup_scope: String,
    /// Warm containers for Docker tasks (`None`: cold starts only).
    pub docker_spares: Option<weft_runtime::docker_spare::DockerSpareConfig>,
}

/// Spare processes per process runtime: two starts in a row find one each.
const SPARES: usize = 2;

/// Which runtime runs a task.
#[derive(Debug, Clone)]
pub(crate) enum TaskRuntime {
    Process(Arc<ProcessRuntime>),
    Docker(Arc<DockerRuntime>),
}

impl TaskRuntime {
    pub fn get(&self) -> &dyn Runtime {
        match self {
            Self::Process(p) => p.as_ref(),
            Self::Docker(d) => d.as_ref(),
        }
    }

    pub fn kind(&self) -> &'static str {
        self.get().kind()
    }
}

/// Statuses shared with the supervisors; every change wakes the prompt reporter.
#[derive(Debug)]
pub(crate) struct Reporter {
    statuses: watch::Sender<BTreeMap<String, TaskStatus>>,
    reapply: Notify,
}

impl Reporter {
    /// Changes the status of a known task; notifies only on a real change.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut TaskStatus)) {
        self.statuses.send_if_modified(|all| {
            let Some(s) = all.get_mut(id) else {
                return false;
            };
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    fn set(&self, id: &str, status: TaskStatus) {
        self.statuses.send_if_modified(|all| {
            if all.get(id) == Some(&status) {
                return false;
            }
            all.insert(id.to_string(), status);
            true
        });
    }

    fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.statuses.send_if_modified(|all| {
            let before = all.len();
            all.retain(|id, _| keep(id));
            all.len() != before
        });
    }

    /// Asks the agent for a reconcile (a container's namespace appeared).
    pub fn request_reapply(&self) {
        self.reapply.notify_one();
    }
}

struct Supervised {
    assignment: TaskAssignment,
    docker: bool,
    cancel: watch::Sender<bool>,
    join: JoinHandle<()>,
}

/// Two assignments of one task id that can keep the same run.
fn same_run(a: &TaskAssignment, b: &TaskAssignment) -> bool {
    a.spec == b.spec
        && a.log_dir == b.log_dir
        && a.task.version == b.task.version
        && a.task.env == b.task.env
        && a.task.ip == b.task.ip
}

/// The tasks of this node.
pub struct Tasks {
    settings: TaskSettings,
    reporter: Arc<Reporter>,
    process: Mutex<BTreeMap<PathBuf, Arc<ProcessRuntime>>>,
    docker: Arc<DockerRuntime>,
    supervised: Mutex<BTreeMap<String, Supervised>>,
    spares: std::sync::OnceLock<Option<Arc<SparePool>>>,
    swept: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Tasks {
    pub fn new(settings: TaskSettings) -> Self {
        let mut docker = DockerRuntime::new(settings.docker_socket.clone());
        if let Some(config) = settings.docker_spares.clone() {
            match weft_runtime::docker_spare::DockerSpares::new(config) {
                Ok(spares) => docker = docker.with_spares(spares),
                Err(e) => tracing::warn!(error = %e, "Docker tasks start cold: no warm containers"),
            }
        }
        let docker = Arc::new(docker);
        Self {
            settings,
            reporter: Arc::new(Reporter {
                statuses: watch::Sender::new(BTreeMap::new()),
                reapply: Notify::new(),
            }),
            process: Mutex::new(BTreeMap::new()),
            docker,
            supervised: Mutex::new(BTreeMap::new()),
            spares: std::sync::OnceLock::new(),
            swept: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Supervised>> {
        self.supervised.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every task's status, by task id.
    pub fn statuses(&self) -> BTreeMap<String, TaskStatus> {
        self.reporter.statuses.borrow().clone()
    }

    /// Changes whenever a task's status does.
    pub fn subscribe(&self) -> watch::Receiver<BTreeMap<String, TaskStatus>> {
        self.reporter.statuses.subscribe()
    }

    /// Resolves when a supervisor asks for a reconcile (kept if nobody waits).
    pub async fn reapply_requested(&self) {
        self.reporter.reapply.notified().await;
    }

    fn mine<'a>(&'a self, desired: &'a NodeDesired) -> impl Iterator<Item = &'a TaskAssignment> {
        desired
            .tasks
            .iter()
            .filter(move |a| a.task.node == self.settings.node)
    }

    /// Endpoints whose namespace a runtime publishes (Docker tasks): the agent must not
    /// create them.
    pub fn runtime_owned_endpoints(&self, desired: &NodeDesired) -> BTreeSet<String> {
        self.mine(desired)
            .filter(|a| {
                matches!(a.spec.runtime(), Some(weft_app::Runtime::Docker { .. }))
                    && self.docker.netns_ownership() == NetnsOwnership::Publishes
            })
            .flat_map(|a| a.spec.endpoints_of(&a.task.id))
            .collect()
    }

    /// Stops (and forgets) the tasks that left `desired` or whose assignment changed;
    /// returns once they are stopped. Runs before the reconcile that prunes namespaces.
    pub async fn stop_removed(&self, desired: &NodeDesired) {
        let wanted: BTreeMap<&str, &TaskAssignment> = self
            .mine(desired)
            .map(|a| (a.task.id.as_str(), a))
            .collect();
        let leaving: Vec<(String, Supervised)> = {
            let mut sup = self.lock();
            let ids: Vec<String> = sup
                .iter()
                .filter(|(id, s)| {
                    wanted
                        .get(id.as_str())
                        .is_none_or(|a| !same_run(a, &s.assignment))
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| sup.remove(&id).map(|s| (id, s)))
                .collect()
        };
        for (id, s) in &leaving {
            let why = if wanted.contains_key(id.as_str()) {
                "its assignment changed"
            } else {
                "it left the desired state"
            };
            tracing::info!(task = %id, "stopping task: {why}");
            s.cancel.send_replace(true);
        }
        for (id, s) in leaving {
            let limit = self.settings.stop_grace + Duration::from_secs(15);
            match tokio::time::timeout(limit, s.join).await {
                Ok(_) => {}
                Err(_) => tracing::warn!(task = %id, "task did not stop in time; forgotten"),
            }
        }
        let sup = self.lock();
        self.reporter
            .retain(|id| wanted.contains_key(id) || sup.contains_key(id));
    }

    /// Starts the supervision of every task whose turn it is, and sets the status of
    /// those that wait. `endpoints` is the last reconcile's endpoint report.
    pub fn sync(&self, desired: &NodeDesired, endpoints: &BTreeMap<String, EndpointStatus>) {
        let mut sup = self.lock();
        for a in self.mine(desired) {
            let id = a.task.id.as_str();
            // Its own endpoint (named after it), or the existing one its app names.
            let first = a.spec.endpoint_of(id);
            // The task's network is as far as its least installed endpoint (one per
            // network): the first that is not ready names it.
            let (not_ready, ep_state) = least_installed(&a.spec.endpoints_of(id), endpoints);
            let ep_name = not_ready.as_deref().unwrap_or(first);
            if sup.contains_key(id) {
                self.reporter.update(id, |s| s.endpoint = ep_state);
                continue;
            }
            let endpoint = desired
                .endpoints
                .iter()
                .find(|e| e.name == first && e.node == self.settings.node);
            let Some(endpoint) = endpoint else {
                self.reporter.set(
                    id,
                    TaskStatus::pending(
                        format!("endpoint {first} is not in this node's desired state"),
                        ep_state,
                    ),
                );
                continue;
            };
            let Some(env) = &a.task.env else {
                let why = a.task.status.message.clone().unwrap_or_else(|| {
                    "waiting for the controller to resolve the environment".to_string()
                });
                self.reporter.set(id, TaskStatus::pending(why, ep_state));
                continue;
            };
            let docker = matches!(a.spec.runtime(), Some(weft_app::Runtime::Docker { .. }));
            if !docker && ep_state != EndpointState::Ready {
                let why = endpoints
                    .get(ep_name)
                    .and_then(|s| s.message.clone())
                    .map_or_else(
                        || {
                            format!(
                                "waiting for endpoint {ep_name} (port and policy) to be installed"
                            )
                        },
                        |m| format!("waiting for endpoint {ep_name}: {m}"),
                    );
                self.reporter.set(id, TaskStatus::pending(why, ep_state));
                continue;
            }
            let prepared = self
                .runtime_for(a)
                .and_then(|rt| self.task_spec(a, endpoint, env).map(|spec| (rt, spec)));
            let (runtime, spec) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(task = %id, error = %e, "task cannot run");
                    let mut s = TaskStatus::pending(e.to_string(), ep_state);
                    s.state = TaskState::Failed;
                    self.reporter.set(id, s);
                    continue;
                }
            };
            self.reporter.set(id, TaskStatus::pending(None, ep_state));
            let (cancel, cancelled) = watch::channel(false);
            let supervisor = Supervisor {
                id: id.to_string(),
                assignment: a.clone(),
                spec,
                runtime,
                ip: endpoint.ip,
                stop_grace: self.settings.stop_grace,
                reporter: self.reporter.clone(),
            };
            tracing::info!(task = %id, app = %a.task.app, docker, "supervising task");
            let join = tokio::spawn(supervisor.run(cancelled));
            sup.insert(
                id.to_string(),
                Supervised {
                    assignment: a.clone(),
                    docker,
                    cancel,
                    join,
                },
            );
        }
    }

    /// The last `lines` lines (at most `max_bytes`) task `task` printed, if it runs here:
    /// its container's log, or its log files (see [`crate::output`]).
    pub async fn output(
        &self,
        task: &str,
        lines: usize,
        max_bytes: usize,
    ) -> Result<Vec<u8>, crate::output::OutputError> {
        use crate::output::OutputError;
        let (docker, log_dir) = {
            let sup = self.lock();
            let s = sup.get(task).ok_or(OutputError::NotHere)?;
            let dir = if s.assignment.log_dir.is_empty() {
                self.settings.default_log_dir.clone()
            } else {
                PathBuf::from(&s.assignment.log_dir)
            };
            (s.docker, dir)
        };
        if docker {
            return self
                .docker
                .tail(task, lines, max_bytes)
                .await
                .map_err(|e| match e {
                    RuntimeError::UnknownTask(_) => OutputError::NotHere,
                    other => OutputError::Read(other.to_string()),
                });
        }
        let dir = log_dir.join(task);
        tokio::task::spawn_blocking(move || crate::output::tail_logs(&dir, lines, max_bytes))
            .await
            .map_err(|e| OutputError::Read(e.to_string()))?
    }

    fn runtime_for(&self, a: &TaskAssignment) -> Result<TaskRuntime, TaskError> {
        match a.spec.runtime() {
            Some(weft_app::Runtime::Docker { .. }) => Ok(TaskRuntime::Docker(self.docker.clone())),
            Some(weft_app::Runtime::Process { .. }) => {
                let dir = if a.log_dir.is_empty() {
                    self.settings.default_log_dir.clone()
                } else {
                    PathBuf::from(&a.log_dir)
                };
                self.process_runtime(&dir)
                    .map(TaskRuntime::Process)
                    .map_err(|source| TaskError::Runtime {
                        task: a.task.id.clone(),
                        source,
                    })
            }
            None => Err(TaskError::NoRuntime {
                task: a.task.id.clone(),
            }),
        }
    }

    /// One process runtime per log directory (its state dir holds the logs).
    /// Once, with the first desired state from the controller (not the one restored from
    /// disk, which may be stale): kills and removes what an earlier agent left in this
    /// agent's cgroup scope for tasks no longer assigned here (they moved while it was
    /// down). Tasks still assigned are handled by their own start.
    pub async fn sweep_leftovers_once(&self, desired: &NodeDesired) {
        if self.swept.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let keep: BTreeSet<String> = self.mine(desired).map(|a| a.task.id.clone()).collect();
        let Ok(rt) = self.process_runtime(&self.settings.default_log_dir) else {
            return;
        };
        let swept = tokio::task::spawn_blocking(move || rt.sweep(&keep))
            .await
            .unwrap_or_default();
        if !swept.is_empty() {
            tracing::warn!(tasks = ?swept, "killed leftovers of tasks no longer assigned to this node");
        }
    }

    /// Makes the spare processes now, so that they are ready before the first task.
    pub fn prepare_spares(&self) {
        if self.settings.shim.is_some()
            && let Ok(layout) = weft_runtime::cgroup::CgroupLayout::detect()
        {
            self.spare_pool(&layout);
        }
    }

    /// Removes warm containers an earlier agent of this scope left (their tasks never
    /// came).
    pub async fn sweep_docker_spares(&self) {
        if let Some(spares) = self.docker.spares() {
            spares.sweep(&self.docker, false).await;
        }
    }

    /// The agent's one pool of spares, shared by its process runtimes (`None`: disabled,
    /// or cgroup v2).
    fn spare_pool(&self, layout: &weft_runtime::cgroup::CgroupLayout) -> Option<Arc<SparePool>> {
        let exe = self.settings.shim.clone()?;
        self.spares
            .get_or_init(|| {
                let pool = SparePool::new(exe, layout.clone(), SPARES, Some(&self.settings.cgroup_scope));
                if pool.is_some() {
                    tracing::info!(count = SPARES, "process tasks start on spare processes (no cgroup migration on the start path)");
                }
                pool
            })
            .clone()
    }

    fn process_runtime(&self, dir: &Path) -> Result<Arc<ProcessRuntime>, RuntimeError> {
        let mut all = self.process.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rt) = all.get(dir) {
            return Ok(rt.clone());
        }
        let mut rt = ProcessRuntime::new(dir)?.with_cgroup_scope(&self.settings.cgroup_scope)?;
        if let Some(pool) = self.spare_pool(rt.cgroup_layout()) {
            rt = rt.with_spares(pool);
        }
        let rt = Arc::new(rt);
        all.insert(dir.to_path_buf(), rt.clone());
        Ok(rt)
    }

    fn task_spec(
        &self,
        a: &TaskAssignment,
        ep: &Endpoint,
        app_env: &BTreeMap<String, String>,
    ) -> Result<TaskSpec, TaskError> {
        let identity = TaskIdentity {
            app: a.task.app.clone(),
            task: a.task.id.clone(),
            node: self.settings.node.clone(),
            ip: ep.ip,
            epg: ep.epg.to_string(),
            gateway: ep.gateway,
            controller: self.settings.controller.clone(),
        };
        let env = task_env(&identity, app_env);
        let spec = match a.spec.runtime() {
            Some(weft_app::Runtime::Process { cmd }) => {
                TaskSpec::process(&a.task.id, &ep.netns, &["sh", "-c", cmd])
            }
            Some(weft_app::Runtime::Docker { image, args }) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                TaskSpec::container(&a.task.id, &ep.netns, &image.to_string(), &args)
            }
            None => {
                return Err(TaskError::NoRuntime {
                    task: a.task.id.clone(),
                });
            }
        };
        Ok(spec
            .with_limits(a.spec.cpus, a.spec.mem)
            .with_env(env)
            .with_privileged(a.spec.privileged))
    }

    /// Clean shutdown of the agent: process tasks are stopped (they could not be adopted
    /// by the next agent); Docker containers are left running for it.
    pub async fn shutdown(&self) {
        let all: Vec<(String, Supervised)> =
            std::mem::take(&mut *self.lock()).into_iter().collect();
        let mut stopping = Vec::new();
        for (id, s) in all {
            if s.docker {
                tracing::info!(task = %id, "leaving container running for the next agent");
                s.join.abort();
            } else {
                s.cancel.send_replace(true);
                stopping.push((id, s.join));
            }
        }
        for (id, join) in stopping {
            if tokio::time::timeout(self.settings.stop_grace + Duration::from_secs(5), join)
                .await
                .is_err()
            {
                tracing::warn!(task = %id, "task did not stop in time");
            }
        }
        if let Some(spares) = self.docker.spares() {
            spares.sweep(&self.docker, true).await;
        }
        // Nothing of this agent's is left in its cgroup scope: the spares go, then the
        // scope's (now empty) directories.
        if let Some(Some(pool)) = self.spares.get() {
            let pool = pool.clone();
            let _ = tokio::task::spawn_blocking(move || pool.close()).await;
        }
        let runtimes: Vec<Arc<ProcessRuntime>> = self
            .process
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for rt in runtimes {
            rt.remove_scope_dirs();
        }
    }
}

impl Drop for Tasks {
    /// The agent ends without a clean shutdown (aborted): supervision ends, the tasks
    /// themselves are left as a crash would leave them.
    fn drop(&mut self) {
        for s in self.lock().values() {
            s.join.abort();
        }
    }
}

/// The first of `names` (a task's endpoints) that is not ready, and the state of the
/// least installed one: failed before pending before ready.
fn least_installed(
    names: &[String],
    endpoints: &BTreeMap<String, EndpointStatus>,
) -> (Option<String>, EndpointState) {
    let state_of = |name: &String| {
        endpoints
            .get(name)
            .map_or(EndpointState::Pending, |s| s.state)
    };
    let rank = |state: EndpointState| match state {
        EndpointState::Failed => 0,
        EndpointState::Pending => 1,
        EndpointState::Ready => 2,
    };
    names
        .iter()
        .map(|name| (name, state_of(name)))
        .min_by_key(|(_, state)| rank(*state))
        .map_or((None, EndpointState::Pending), |(name, state)| {
            ((state != EndpointState::Ready).then(|| name.clone()), state)
        })
}
