//! Spare processes: a task start without a cgroup migration on its path.
//!
//! Why: moving a process into a cgroup (`write` to `cgroup.procs`) waits for an RCU
//! grace period on this kernel (the write side of the cgroup threadgroup lock): 5 to
//! 20 ms, more than the rest of a task start together. A spare pays it in advance: it
//! is a process already inside a cgroup of its own (`weft/<scope>/_spare-<agent pid>-<n>`,
//! next to the tasks; app names cannot contain `_`), running the shim (`<exe> __weft-task-shim`), which
//! waits for a task on its stdin.
//!
//! Starting a task on a spare: its cgroup directories are renamed to the task's
//! (cgroup v1 allows a rename within one parent; the process stays in it), the limits
//! are written, and the task's [`ShimSpec`] goes down the pipe. The shim enters the
//! endpoint's namespace, puts the task's `resolv.conf` over `/etc/resolv.conf` in a mount
//! namespace of its own (as the direct path does, [`crate::resolver`]), opens the logs,
//! drops capabilities unless privileged, and execs the command; fd 3 (close-on-exec) tells the parent whether the exec happened. The
//! process is the agent's child from the start, so it is reaped and stopped like any
//! other task. The pool refills in the background.
//!
//! Only on cgroup v1: v2 cannot rename cgroups (there, `clone3(CLONE_INTO_CGROUP)` is
//! the way; not done). Without a spare, a start takes the direct path of
//! [`ProcessRuntime`](crate::process::ProcessRuntime).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::process::{Child, Command};

use crate::caps::CapDropPlan;
use crate::cgroup::{CgroupLayout, Limits, TaskCgroup};
use crate::error::{Result, RuntimeError};
use crate::process::task_command;

/// The first argument that turns the agent's binary into the shim.
pub const SHIM_ARG: &str = "__weft-task-shim";
/// How long after a start the pool begins to refill.
const REFILL_DELAY: std::time::Duration = std::time::Duration::from_millis(50);
/// The fd on which the shim reports a failure before exec (closed by a successful exec).
const STATUS_FD: i32 = 3;

/// What the shim needs to become a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimSpec {
    pub netns: PathBuf,
    pub cwd: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub privileged: bool,
    /// Mounted over `/etc/resolv.conf` in the task's own mount namespace.
    pub resolv_conf: Option<PathBuf>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ShimSpec {
    /// NUL-terminated fields: four paths, privileged, the resolv.conf path (empty for
    /// none), argc, argv, then `KEY=VALUE`s.
    /// `None` if a field holds a NUL (no path, argument or variable can).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut field = |b: &[u8]| -> Option<()> {
            if b.contains(&0) {
                return None;
            }
            out.extend_from_slice(b);
            out.push(0);
            Some(())
        };
        for p in [&self.netns, &self.cwd, &self.stdout, &self.stderr] {
            field(p.as_os_str().as_bytes())?;
        }
        field(if self.privileged { b"1" } else { b"0" })?;
        match &self.resolv_conf {
            // An empty path would read as "none".
            Some(p) if p.as_os_str().is_empty() => return None,
            Some(p) => field(p.as_os_str().as_bytes())?,
            None => field(b"")?,
        }
        field(self.argv.len().to_string().as_bytes())?;
        for a in &self.argv {
            field(a.as_bytes())?;
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') {
                return None;
            }
            field(format!("{k}={v}").as_bytes())?;
        }
        Some(out)
    }

    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        let bad =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("task spec: {what}"));
        let body = bytes
            .strip_suffix(&[0])
            .ok_or_else(|| bad("not NUL-terminated"))?;
        let mut fields = body.split(|b| *b == 0);
        let mut next = |what: &str| fields.next().ok_or_else(|| bad(what));
        let path = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad("not UTF-8"));
        let netns = path(next("netns")?);
        let cwd = path(next("cwd")?);
        let stdout = path(next("stdout")?);
        let stderr = path(next("stderr")?);
        let privileged = next("privileged")? == b"1";
        let resolv_conf = Some(next("resolv.conf")?)
            .filter(|b| !b.is_empty())
            .map(path);
        let argc: usize = text(next("argc")?)?.parse().map_err(|_| bad("argc"))?;
        let argv = (0..argc)
            .map(|_| next("argv").and_then(text))
            .collect::<io::Result<Vec<_>>>()?;
        if argv.is_empty() {
            return Err(bad("empty argv"));
        }
        let env = fields
            .map(|f| {
                let kv = text(f)?;
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| bad("env entry without '='"))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            netns,
            cwd,
            stdout,
            stderr,
            privileged,
            resolv_conf,
            argv,
            env,
        })
    }
}

/// The shim: reads a [`ShimSpec`] from stdin and becomes the task. An empty stdin (the
/// pool was dropped, or the agent died) ends it, and its spare cgroup with it.
pub fn shim_main() -> ! {
    let mut bytes = Vec::new();
    if io::stdin().read_to_end(&mut bytes).is_err() || bytes.is_empty() {
        remove_own_spare_cgroups();
        std::process::exit(0);
    }
    let err = match ShimSpec::decode(&bytes) {
        Ok(spec) => become_task(&spec),
        Err(e) => e,
    };
    report_failure(&err.to_string());
    std::process::exit(127);
}

/// Moves this process out of each of its `_spare-` cgroups (to `weft/`) and removes them,
/// and the agent's scope if it is empty (nobody else will once the agent is gone).
fn remove_own_spare_cgroups() {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let own = Path::new(path);
        let is_spare = own
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("_spare-"));
        if !path.starts_with("/weft/") || !is_spare || controllers.is_empty() {
            continue;
        }
        let mount = Path::new("/sys/fs/cgroup").join(controllers.trim_start_matches("name="));
        let dir = mount.join(path.trim_start_matches('/'));
        let Some(parent) = dir.parent() else {
            continue;
        };
        // Out to `weft/` itself, so that neither the spare's cgroup nor the scope
        // holds this process any more.
        if std::fs::write(mount.join("weft").join("cgroup.procs"), "0").is_ok() {
            let _ = std::fs::remove_dir(&dir);
        }
        // The agent's scope, if this was the last thing in it (fails otherwise).
        if !parent.ends_with("weft") {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[allow(unsafe_code)]
fn status_fd() -> File {
    use std::os::fd::FromRawFd;
    // SAFETY: fd 3 is the status pipe the parent placed there for this process, and
    // nothing else in the shim uses it.
    unsafe { File::from_raw_fd(STATUS_FD) }
}

fn report_failure(why: &str) {
    let mut status = status_fd();
    let _ = status.write_all(why.as_bytes());
}

/// Returns only on failure.
fn become_task(spec: &ShimSpec) -> io::Error {
    use std::os::unix::process::CommandExt;
    let setup = || -> io::Result<std::process::Command> {
        let netns = File::open(&spec.netns)?;
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        if let Some(resolv_conf) = &spec.resolv_conf {
            crate::resolver::ResolvMount::new(resolv_conf)
                .map_err(|e| io::Error::other(e.to_string()))?
                .apply()?;
        }
        let stdout = File::create(&spec.stdout)?;
        let stderr = File::create(&spec.stderr)?;
        if !spec.privileged {
            CapDropPlan::unprivileged().apply_in_child()?;
        }
        let status = status_fd();
        nix::fcntl::fcntl(
            &status,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        std::mem::forget(status);
        let (program, args) = spec
            .argv
            .split_first()
            .ok_or_else(|| io::Error::other("empty command"))?;
        let mut command = task_command(
            program,
            args,
            spec.env.iter().map(|(k, v)| (k, v)),
            &spec.cwd,
        );
        command.stdout(stdout).stderr(stderr);
        Ok(command)
    };
    match setup() {
        Ok(mut command) => command.exec(),
        Err(e) => e,
    }
}

/// One waiting shim.
#[derive(Debug)]
struct Spare {
    name: String,
    child: Child,
    spec_pipe: File,
    status_pipe: File,
}

/// Spares of one runtime, refilled in the background.
#[derive(Debug)]
pub struct SparePool {
    exe: PathBuf,
    /// `<scope>/` when task cgroups are scoped: spares live next to the tasks they
    /// become (a cgroup can only be renamed within its parent).
    prefix: String,
    layout: CgroupLayout,
    target: usize,
    ready: Mutex<Vec<Spare>>,
    filling: AtomicBool,
    /// No more spares (the agent is shutting down).
    closed: AtomicBool,
}

/// Numbers spares across every pool of this process (their cgroup names must differ).
static SPARE_NUMBER: AtomicU64 = AtomicU64::new(0);

impl SparePool {
    /// A pool of `target` spares running `exe` (which must call [`shim_main`] when its
    /// first argument is [`SHIM_ARG`]), in `weft/<scope>/` like the tasks of a runtime
    /// with that scope; `None` on cgroup v2. Removes the empty cgroups of earlier
    /// agents' spares. Call from within a tokio runtime.
    pub fn new(
        exe: PathBuf,
        layout: CgroupLayout,
        target: usize,
        scope: Option<&str>,
    ) -> Option<Arc<Self>> {
        if layout.version() != 1 || target == 0 {
            return None;
        }
        let prefix = scope.map(|s| format!("{s}/")).unwrap_or_default();
        for parent in layout
            .task_dirs(&format!("{prefix}x"))
            .iter()
            .filter_map(|d| d.parent())
        {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("_spare-") {
                    // Fails (busy) for spares of agents still running.
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let pool = Arc::new(Self {
            exe,
            prefix,
            layout,
            target,
            ready: Mutex::new(Vec::new()),
            filling: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        pool.refill();
        Some(pool)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Spare>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many spares are waiting for a task now.
    pub fn ready(&self) -> usize {
        self.lock().len()
    }

    /// Tops the pool up on a blocking thread (one filler at a time).
    pub fn refill(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) || self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.filling.store(false, Ordering::Release);
            return;
        };
        handle.spawn_blocking(move || {
            // Not in the same instant as the start that used a spare: that task is still
            // being reported, and making a spare costs a fork, an exec and a cgroup join.
            std::thread::sleep(REFILL_DELAY);
            while pool.lock().len() < pool.target && !pool.closed.load(Ordering::Acquire) {
                match pool.make_spare() {
                    Ok(spare) if pool.closed.load(Ordering::Acquire) => pool.retire(spare),
                    Ok(spare) => pool.lock().push(spare),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot make a spare task process; starts take the direct path");
                        break;
                    }
                }
            }
            pool.filling.store(false, Ordering::Release);
        });
    }

    fn make_spare(&self) -> Result<Spare> {
        let n = SPARE_NUMBER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}_spare-{}-{n}", self.prefix, std::process::id());
        let cgroup = self.layout.create(&name, Limits::default())?;
        let procs = cgroup.open_procs_files()?;
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| RuntimeError::io("pipe", Path::new("(spare)"), e.into()))
        };
        let (spec_read, spec_write) = pipe()?;
        let (status_read, status_write) = pipe()?;
        let mut command = Command::new(&self.exe);
        command
            .arg(SHIM_ARG)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        install_spare_setup(&mut command, procs, spec_read, status_write);
        let child = command.spawn().map_err(|source| {
            cgroup.remove();
            RuntimeError::Spawn {
                task: name.clone(),
                program: self.exe.display().to_string(),
                source,
            }
        })?;
        Ok(Spare {
            name,
            child,
            spec_pipe: File::from(spec_write),
            status_pipe: File::from(status_read),
        })
    }

    /// Starts `spec` on a spare in the cgroup of `task`. `None`: no usable spare (the
    /// caller takes the direct path); the pool refills either way.
    pub(crate) fn start(
        self: &Arc<Self>,
        task: &str,
        limits: Limits,
        spec: &ShimSpec,
    ) -> Option<Result<(Child, TaskCgroup)>> {
        let bytes = spec.encode()?;
        let spare = self.lock().pop();
        self.refill();
        let mut spare = spare?;
        if !matches!(spare.child.try_wait(), Ok(None)) {
            self.retire(spare);
            return None;
        }
        let from = self.layout.task_dirs(&spare.name);
        let to = self.layout.task_dirs(task);
        for (a, b) in from.iter().zip(&to) {
            // An empty cgroup of this task left by a crashed agent: make room.
            let _ = std::fs::remove_dir(b);
            if let Err(e) = std::fs::rename(a, b) {
                tracing::debug!(spare = %spare.name, task, error = %e, "cannot rename a spare's cgroup");
                let _ = spare.child.start_kill();
                let cg = self
                    .layout
                    .adopt_dirs(from.iter().chain(&to).cloned().collect());
                cg.remove();
                return None;
            }
        }
        let cgroup = match self.layout.adopt(task, limits) {
            Ok(c) => c,
            Err(e) => {
                let _ = spare.child.start_kill();
                self.layout.adopt_dirs(to).remove();
                return Some(Err(e));
            }
        };
        let handed = spare.spec_pipe.write_all(&bytes);
        drop(spare.spec_pipe);
        let mut why = String::new();
        let read = spare.status_pipe.read_to_string(&mut why);
        // An empty status pipe means the exec happened (fd 3 is close-on-exec; a shim
        // that fails says why). The task may have ended already (`sh -c` of a command
        // that is not installed exits 127 at once): that is a run that ended, which the
        // caller reaps and reports with its exit code and stderr, not a failed start.
        let failed = match (handed, read) {
            (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
            _ if !why.is_empty() => Some(why),
            _ => None,
        };
        match failed {
            None => Some(Ok((spare.child, cgroup))),
            Some(why) => {
                let _ = spare.child.start_kill();
                cgroup.remove();
                Some(Err(RuntimeError::Spawn {
                    task: task.to_string(),
                    program: spec.argv[0].clone(),
                    source: io::Error::other(why),
                }))
            }
        }
    }

    fn retire(&self, mut spare: Spare) {
        let _ = spare.child.start_kill();
        self.layout
            .adopt_dirs(self.layout.task_dirs(&spare.name))
            .remove();
    }
}

impl SparePool {
    /// Retires every spare and makes no more (a build in progress retires its own).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let spares: Vec<Spare> = std::mem::take(&mut *self.lock());
        for spare in spares {
            self.retire(spare);
        }
    }
}

impl Drop for SparePool {
    fn drop(&mut self) {
        self.close();
    }
}

#[allow(unsafe_code)]
fn install_spare_setup(command: &mut Command, procs: Vec<OwnedFd>, spec: OwnedFd, status: OwnedFd) {
    let (spec_fd, status_fd) = (spec.as_raw_fd(), status.as_raw_fd());
    // SAFETY: runs between fork and exec: only system calls on fds prepared before the
    // fork (setsid, write, dup2, fcntl); no allocation, no locks. The fds live until
    // the parent's `command` is dropped, after the spawn.
    unsafe {
        command.pre_exec(move || {
            let _keep = (&procs, &spec, &status);
            nix::unistd::setsid()?;
            for p in &procs {
                nix::unistd::write(p, b"0")?;
            }
            for (fd, target) in [(spec_fd, 0), (status_fd, STATUS_FD)] {
                let rc = if fd == target {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, target)
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ShimSpec {
        ShimSpec {
            netns: "/run/netns/weft-ep-a".into(),
            cwd: "/var/lib/weft/tasks/a-1".into(),
            stdout: "/var/lib/weft/tasks/a-1/stdout.log".into(),
            stderr: "/var/lib/weft/tasks/a-1/stderr.log".into(),
            privileged: false,
            resolv_conf: Some("/var/lib/weft/tasks/a-1/resolv.conf".into()),
            argv: vec!["/bin/sh".into(), "-c".into(), "echo \"$X\" = y".into()],
            env: vec![
                ("X".into(), "a=b c".into()),
                ("EMPTY".into(), String::new()),
            ],
        }
    }

    #[test]
    fn specs_survive_the_pipe() {
        let s = spec();
        assert_eq!(
            ShimSpec::decode(&s.encode().expect("encodes")).expect("decodes"),
            s
        );
        let p = ShimSpec {
            privileged: true,
            resolv_conf: None,
            env: vec![],
            ..spec()
        };
        assert_eq!(
            ShimSpec::decode(&p.encode().expect("encodes")).expect("decodes"),
            p
        );
    }

    #[test]
    fn what_cannot_cross_is_refused() {
        let nul = ShimSpec {
            argv: vec!["a\0b".into()],
            ..spec()
        };
        assert!(nul.encode().is_none());
        let key = ShimSpec {
            env: vec![("A=B".into(), "c".into())],
            ..spec()
        };
        assert!(key.encode().is_none());
        let empty = ShimSpec {
            resolv_conf: Some(PathBuf::new()),
            ..spec()
        };
        assert!(empty.encode().is_none());
        for bad in [&b""[..], b"x", b"a\0b\0c\0d\0", b"a\0b\0c\0d\x000\0\0two\0"] {
            assert!(ShimSpec::decode(bad).is_err(), "{bad:?}");
        }
        let no_argv = ShimSpec {
            argv: vec![],
            ..spec()
        };
        assert!(ShimSpec::decode(&no_argv.encode().expect("encodes")).is_err());
    }
}
