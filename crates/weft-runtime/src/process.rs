//! The process runtime: a task is a host process.
//!
//! How the child gets into place (design): the parent prepares everything that needs a
//! path or an allocation before the fork (an fd on `/run/netns/<name>`, fds on the task
//! cgroup's `cgroup.procs` files, the capability mask); between fork and exec the child only
//! makes system calls: `setsid`, `write("0")` to each `cgroup.procs` (joins the cgroup, so
//! the limits apply from its first instruction and to everything it forks), `setns(NEWNET)`,
//! then (when the task's resolver points at its gateway) `unshare(NEWNS)` and two `mount`s
//! that put the task's own `resolv.conf` over `/etc/resolv.conf` in a mount namespace of
//! its own ([`crate::resolver`]), then, unless privileged, drops capabilities and sets
//! `no_new_privs`. Doing it in the child (rather than moving the pid after spawn, or
//! chaining `ip netns exec`/`setpriv`) leaves no window in which the task runs outside its
//! namespace or limits, and costs no extra exec. The environment is cleared: a task sees only its spec's env (plus `PATH`).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::caps::CapDropPlan;
use crate::cgroup::{CgroupLayout, Limits, TaskCgroup};
use crate::error::{Result, RuntimeError};
use crate::logs::{LogOptions, LogStream, follow_files};
use crate::resolver::{self, ResolvMount};
use crate::spare::{ShimSpec, SparePool};
use crate::task::{ExecOutput, NetnsOwnership, StartedTask, TaskExit, TaskSpec, TaskStatus};
use crate::{Runtime, netns};

/// The `PATH` of every process task (its environment is cleared): the programs an app's
/// command runs must be found here, not on the agent's own `PATH`.
pub const TASK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a SIGKILLed task may take to be reaped before `stop` gives up.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct ProcessRuntime {
    /// `<state_dir>/<task>/stdout.log`, `stderr.log`, `resolv.conf`; also the task's
    /// working directory.
    state_dir: PathBuf,
    cgroups: CgroupLayout,
    tasks: Mutex<HashMap<String, Arc<ProcessTask>>>,
    /// Processes already in a cgroup, waiting to become tasks (cgroup v1; see [`crate::spare`]).
    spares: Option<Arc<SparePool>>,
    /// Task cgroups are `weft/<scope>/<task>` (one scope per agent, so that an agent can
    /// tell its own leftovers from another agent's tasks on the same host), or
    /// `weft/<task>` without one.
    scope: Option<String>,
}

#[derive(Debug)]
struct ProcessTask {
    pid: u32,
    netns: String,
    privileged: bool,
    env: BTreeMap<String, String>,
    /// The task's own `/etc/resolv.conf` (execs see it too).
    resolv_conf: Option<PathBuf>,
    cgroup: TaskCgroup,
    /// `Some` once the process has exited and its cgroup is gone.
    exit: watch::Receiver<Option<TaskExit>>,
}

/// Where a task's processes run: its namespace, cgroup, privileges and resolver file.
struct Confinement<'a> {
    netns: &'a str,
    cgroup: &'a TaskCgroup,
    privileged: bool,
    resolv_conf: Option<&'a Path>,
}

/// Everything the child does between fork and exec, prepared by the parent.
struct ChildSetup {
    cgroup_procs: Vec<OwnedFd>,
    netns: OwnedFd,
    resolv: Option<ResolvMount>,
    drop_caps: Option<CapDropPlan>,
}

impl ChildSetup {
    /// Runs in the forked child: system calls on ready fds only.
    fn run_in_child(&self) -> io::Result<()> {
        // Own session and process group: `stop` signals the group.
        nix::unistd::setsid()?;
        for procs in &self.cgroup_procs {
            nix::unistd::write(procs, b"0")?;
        }
        nix::sched::setns(&self.netns, CloneFlags::CLONE_NEWNET)?;
        if let Some(resolv) = &self.resolv {
            resolv.apply()?;
        }
        if let Some(plan) = &self.drop_caps {
            plan.apply_in_child()?;
        }
        Ok(())
    }

    #[allow(unsafe_code)]
    fn install(self, command: &mut Command) {
        // SAFETY: the closure runs between fork and exec in a copy of a multi-threaded
        // process; `run_in_child` only makes system calls (setsid, write, setns, unshare,
        // mount, prctl, capget/capset) on fds, C strings and integers prepared before the
        // fork: no allocation, no locks, nothing that another thread could have left
        // half-done.
        unsafe {
            command.pre_exec(move || self.run_in_child());
        }
    }
}

impl ProcessRuntime {
    /// Detects the cgroup layout; keeps logs under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Self> {
        Self::with_cgroups(state_dir, CgroupLayout::detect()?)
    }

    pub fn with_cgroups(state_dir: impl Into<PathBuf>, cgroups: CgroupLayout) -> Result<Self> {
        let state_dir = state_dir.into();
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| RuntimeError::io("create state dir", &state_dir, e))?;
        tracing::info!(state_dir = %state_dir.display(), cgroup_version = cgroups.version(), "process runtime ready");
        Ok(ProcessRuntime {
            state_dir,
            cgroups,
            tasks: Mutex::new(HashMap::new()),
            spares: None,
            scope: None,
        })
    }

    /// Puts task cgroups under `weft/<scope>/` (see [`ProcessRuntime::sweep`]). `scope`
    /// must be a plain name: no `/`, not `.` or `..`.
    pub fn with_cgroup_scope(mut self, scope: &str) -> Result<Self> {
        if scope.is_empty() || scope == "." || scope == ".." || scope.contains(['/', '\0']) {
            return Err(RuntimeError::invalid(
                scope,
                "a cgroup scope must be a plain name",
            ));
        }
        self.scope = Some(scope.to_string());
        Ok(self)
    }

    /// Removes the scope's own directories (`weft/<scope>`) if nothing is left in them.
    pub fn remove_scope_dirs(&self) {
        if let Some(scope) = &self.scope {
            for dir in self.cgroups.task_dirs(scope) {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }

    /// The task's cgroup path under `weft/`.
    fn cgroup_name(&self, task: &str) -> String {
        match &self.scope {
            Some(scope) => format!("{scope}/{task}"),
            None => task.to_string(),
        }
    }

    /// Kills the processes of, and removes, every cgroup in this runtime's scope that
    /// belongs to no task in `keep` (tasks of an earlier agent that were moved away
    /// while it was down) and no live spare. Returns their names. Without a scope,
    /// nothing is touched: the cgroups could be another agent's.
    pub fn sweep(&self, keep: &std::collections::BTreeSet<String>) -> Vec<String> {
        let Some(scope) = &self.scope else {
            return Vec::new();
        };
        let own_spares = format!("_spare-{}-", std::process::id());
        let mut names = std::collections::BTreeSet::new();
        for dir in self.cgroups.task_dirs(scope) {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && let Ok(name) = entry.file_name().into_string()
                    && !keep.contains(&name)
                    && !name.starts_with(&own_spares)
                {
                    names.insert(name);
                }
            }
        }
        for name in &names {
            let cgroup = self
                .cgroups
                .adopt_dirs(self.cgroups.task_dirs(&format!("{scope}/{name}")));
            cgroup.kill_all();
            cgroup.remove();
        }
        names.into_iter().collect()
    }

    /// Starts tasks on the spare processes of `pool` when it has one ready.
    pub fn with_spares(mut self, pool: Arc<SparePool>) -> Self {
        self.spares = Some(pool);
        self
    }

    pub fn cgroup_layout(&self) -> &CgroupLayout {
        &self.cgroups
    }

    /// The task's cgroup directories (they exist only while it runs).
    pub fn cgroup_dirs(&self, task: &str) -> Vec<PathBuf> {
        self.cgroups.task_dirs(&self.cgroup_name(task))
    }

    fn task_dir(&self, task: &str) -> PathBuf {
        self.state_dir.join(task)
    }

    /// Paths of the task's stdout and stderr files; they outlive the task until the next
    /// start of the same id.
    pub fn log_paths(&self, task: &str) -> (PathBuf, PathBuf) {
        let dir = self.task_dir(task);
        (dir.join("stdout.log"), dir.join("stderr.log"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ProcessTask>>> {
        // A panic while holding the lock leaves the map itself consistent.
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, task: &str) -> Result<Arc<ProcessTask>> {
        self.lock()
            .get(task)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownTask(task.to_string()))
    }

    /// Builds a command that will run inside the task's namespace, cgroup and privileges.
    fn confined_command(
        &self,
        task: &str,
        argv: &[String],
        env: &BTreeMap<String, String>,
        place: Confinement<'_>,
    ) -> Result<Command> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| RuntimeError::invalid(task, "empty command"))?;
        let setup = ChildSetup {
            cgroup_procs: place.cgroup.open_procs_files()?,
            netns: netns::open(place.netns)?,
            resolv: place.resolv_conf.map(ResolvMount::new).transpose()?,
            drop_caps: (!place.privileged).then(CapDropPlan::unprivileged),
        };
        let mut command = Command::from(task_command(program, args, env, &self.task_dir(task)));
        setup.install(&mut command);
        Ok(command)
    }

    pub async fn start(&self, spec: &TaskSpec) -> Result<StartedTask> {
        spec.validate()?;
        if spec.image.is_some() {
            return Err(RuntimeError::invalid(
                &spec.id,
                "the process runtime does not run images",
            ));
        }
        if spec.command.is_empty() {
            return Err(RuntimeError::invalid(&spec.id, "empty command"));
        }
        // Held across the whole start (no await inside): two starts of one id cannot race.
        let mut tasks = self.lock();
        if tasks.contains_key(&spec.id) {
            return Err(RuntimeError::TaskExists(spec.id.clone()));
        }
        let dir = self.task_dir(&spec.id);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create task dir", &dir, e))?;
        let (stdout_path, stderr_path) = self.log_paths(&spec.id);
        let resolv_conf = match spec.nameserver()? {
            Some(nameserver) => resolver::write_task_file(&spec.id, &dir, nameserver)?,
            None => None,
        };
        let limits = Limits {
            cpus: spec.cpus,
            mem_mib: spec.mem_mib,
        };
        if let Some(pool) = &self.spares {
            let shim = ShimSpec {
                netns: netns::netns_path(&spec.netns),
                cwd: dir.clone(),
                stdout: stdout_path.clone(),
                stderr: stderr_path.clone(),
                privileged: spec.privileged,
                resolv_conf: resolv_conf.clone(),
                argv: spec.command.clone(),
                env: spec
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            if let Some(started) = pool.start(&self.cgroup_name(&spec.id), limits, &shim) {
                let (child, cgroup) = started?;
                return Ok(self.register(&mut tasks, spec, child, cgroup, resolv_conf, "spare"));
            }
        }
        let open_log = |path: &Path| {
            std::fs::File::create(path).map_err(|e| RuntimeError::io("create log", path, e))
        };
        let (stdout, stderr) = (open_log(&stdout_path)?, open_log(&stderr_path)?);

        let cgroup = self.cgroups.create(&self.cgroup_name(&spec.id), limits)?;
        let spawned = self
            .confined_command(
                &spec.id,
                &spec.command,
                &spec.env,
                Confinement {
                    netns: &spec.netns,
                    cgroup: &cgroup,
                    privileged: spec.privileged,
                    resolv_conf: resolv_conf.as_deref(),
                },
            )
            .and_then(|mut command| {
                command.stdout(stdout).stderr(stderr);
                command.spawn().map_err(|source| RuntimeError::Spawn {
                    task: spec.id.clone(),
                    program: spec.command[0].clone(),
                    source,
                })
            });
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                cgroup.remove();
                return Err(e);
            }
        };
        Ok(self.register(&mut tasks, spec, child, cgroup, resolv_conf, "direct"))
    }

    /// Records a started task and watches for its exit.
    fn register(
        &self,
        tasks: &mut HashMap<String, Arc<ProcessTask>>,
        spec: &TaskSpec,
        child: Child,
        cgroup: TaskCgroup,
        resolv_conf: Option<PathBuf>,
        path: &'static str,
    ) -> StartedTask {
        let pid = child.id().unwrap_or(0);
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(watch_exit(child, cgroup.clone(), exit_tx, spec.id.clone()));
        tasks.insert(
            spec.id.clone(),
            Arc::new(ProcessTask {
                pid,
                netns: spec.netns.clone(),
                privileged: spec.privileged,
                env: spec.env.clone(),
                resolv_conf: resolv_conf.clone(),
                cgroup,
                exit: exit_rx,
            }),
        );
        let resolver = resolv_conf.as_ref().and(spec.env.get("WEFT_GATEWAY"));
        tracing::info!(task = %spec.id, pid, netns = %spec.netns, privileged = spec.privileged,
            resolver = resolver.map_or("host", String::as_str), cpus = spec.cpus, mem_mib = spec.mem_mib, path, "process task started");
        StartedTask {
            pid,
            container_id: None,
        }
    }

    pub async fn status(&self, task: &str) -> Result<TaskStatus> {
        let t = self.get(task)?;
        let exit = *t.exit.borrow();
        Ok(match exit {
            Some(exit) => TaskStatus::Exited(exit),
            None => TaskStatus::Running { pid: t.pid },
        })
    }

    pub async fn wait(&self, task: &str) -> Result<TaskExit> {
        let t = self.get(task)?;
        wait_exit(&t, None)
            .await?
            .ok_or_else(|| RuntimeError::UnknownTask(task.to_string()))
    }

    pub async fn stop(&self, task: &str, grace: Duration) -> Result<TaskExit> {
        let t = self.get(task)?;
        if t.exit.borrow().is_none() {
            tracing::info!(task, pid = t.pid, ?grace, "stopping process task");
            let group = Pid::from_raw(-(t.pid as i32));
            if kill(group, Signal::SIGTERM).is_err() {
                let _ = kill(Pid::from_raw(t.pid as i32), Signal::SIGTERM);
            }
        }
        let exit = match wait_exit(&t, Some(grace)).await? {
            Some(exit) => exit,
            None => {
                tracing::warn!(task, ?grace, "task ignored SIGTERM; killing it");
                t.cgroup.kill_all();
                let _ = kill(Pid::from_raw(t.pid as i32), Signal::SIGKILL);
                wait_exit(&t, Some(KILL_TIMEOUT))
                    .await?
                    .ok_or_else(|| RuntimeError::Io {
                        what: "reap task",
                        path: t.cgroup.dirs()[0].clone(),
                        source: io::Error::new(
                            io::ErrorKind::TimedOut,
                            "still running after SIGKILL",
                        ),
                    })?
            }
        };
        self.lock().remove(task);
        Ok(exit)
    }

    pub async fn exec(&self, task: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput> {
        let t = self.get(task)?;
        if t.exit.borrow().is_some() {
            return Err(RuntimeError::invalid(task, "exec: the task has exited"));
        }
        let place = Confinement {
            netns: &t.netns,
            cgroup: &t.cgroup,
            privileged: t.privileged,
            resolv_conf: t.resolv_conf.as_deref(),
        };
        let mut command = self.confined_command(task, argv, &t.env, place)?;
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|source| RuntimeError::Spawn {
            task: task.to_string(),
            program: argv.first().cloned().unwrap_or_default(),
            source,
        })?;
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| RuntimeError::ExecTimeout {
                task: task.to_string(),
                timeout,
            })?
            .map_err(|e| RuntimeError::io("exec", argv.first().cloned().unwrap_or_default(), e))?;
        Ok(ExecOutput {
            exit_code: output.status.code(),
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }

    /// The last line the task wrote to stderr (read from the end of its file, which
    /// outlives the task until its next start).
    pub async fn last_error_line(&self, task: &str) -> Option<String> {
        let (_, stderr) = self.log_paths(task);
        tokio::task::spawn_blocking(move || crate::logs::last_line_of_file(&stderr))
            .await
            .ok()
            .flatten()
    }

    pub fn logs(&self, task: &str, options: LogOptions) -> LogStream {
        let (stdout, stderr) = self.log_paths(task);
        let exit = self.lock().get(task).map(|t| t.exit.clone());
        follow_files(stdout, stderr, options, exit)
    }
}

/// `Ok(None)` when `limit` passed first.
async fn wait_exit(task: &ProcessTask, limit: Option<Duration>) -> Result<Option<TaskExit>> {
    let mut rx = task.exit.clone();
    let wait = async move { rx.wait_for(Option::is_some).await.map(|e| *e) };
    let result = match limit {
        Some(limit) => match tokio::time::timeout(limit, wait).await {
            Ok(r) => r,
            Err(_) => return Ok(None),
        },
        None => wait.await,
    };
    // The sender lives until it has sent; a closed channel without a value cannot happen.
    Ok(result.ok().flatten())
}

/// Reaps the task, records how it ended, and releases its cgroup (killing whatever it left
/// behind: the task is over when its main process is).
async fn watch_exit(
    mut child: Child,
    cgroup: TaskCgroup,
    exit: watch::Sender<Option<TaskExit>>,
    task: String,
) {
    let status = child.wait().await;
    let oom_killed = cgroup.oom_kills() > 0;
    let result = match status {
        Ok(status) => TaskExit {
            code: status.code(),
            signal: status.signal(),
            oom_killed,
        },
        Err(e) => {
            tracing::warn!(task, error = %e, "cannot reap task");
            TaskExit {
                code: None,
                signal: None,
                oom_killed,
            }
        }
    };
    let cg = cgroup.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || cg.remove()).await {
        tracing::warn!(task, error = %e, "cgroup cleanup panicked");
    }
    tracing::info!(task, code = ?result.code, signal = ?result.signal, oom_killed, "process task exited");
    exit.send_replace(Some(result));
}

/// What a task runs, on either start path (direct or a spare's shim): its argv, its own
/// environment plus [`TASK_PATH`] and nothing else, in its task directory, stdin
/// closed.
pub(crate) fn task_command<'a>(
    program: &str,
    args: &[String],
    env: impl IntoIterator<Item = (&'a String, &'a String)>,
    cwd: &Path,
) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", TASK_PATH)
        .envs(env)
        .current_dir(cwd)
        .stdin(Stdio::null());
    command
}

impl Runtime for ProcessRuntime {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn netns_ownership(&self) -> NetnsOwnership {
        NetnsOwnership::JoinsExisting
    }

    fn start<'a>(&'a self, spec: &'a TaskSpec) -> BoxFuture<'a, Result<StartedTask>> {
        Box::pin(ProcessRuntime::start(self, spec))
    }

    fn status<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<TaskStatus>> {
        Box::pin(ProcessRuntime::status(self, task))
    }

    fn wait<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<TaskExit>> {
        Box::pin(ProcessRuntime::wait(self, task))
    }

    fn stop<'a>(&'a self, task: &'a str, grace: Duration) -> BoxFuture<'a, Result<TaskExit>> {
        Box::pin(ProcessRuntime::stop(self, task, grace))
    }

    fn exec<'a>(
        &'a self,
        task: &'a str,
        argv: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput>> {
        Box::pin(ProcessRuntime::exec(self, task, argv, timeout))
    }

    fn logs(&self, task: &str, options: LogOptions) -> LogStream {
        ProcessRuntime::logs(self, task, options)
    }

    fn last_error_line<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(ProcessRuntime::last_error_line(self, task))
    }
}
