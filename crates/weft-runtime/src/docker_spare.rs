//! Warm containers: a Docker task start without the engine's container start on its path.
//!
//! Why: the engine's `start` (containerd's shim, runc, the container's first process) is
//! ~180–195 ms of a ~220 ms server start on this kind of node; weft's own part is ~20 ms.
//! A warm container pays the create and the start in advance, the way the process
//! runtime's spares pay the cgroup migration ([`crate::spare`]).
//!
//! A spare is a container of one image and one set of limits ([`SpareKey`]), started with
//! no network (`none`), whose PID 1 is the node's **static** busybox, bind-mounted
//! read-only at `/.weft-bin/busybox`, running a shell that waits on a FIFO in the spare's own
//! host directory, bind-mounted read-only at `/.weft`. Starting a task on it:
//! 1. the container is renamed to the task's (`weft-<task>`);
//! 2. the task's resolver goes into the container's `resolv.conf` (the engine's own file,
//!    written in place; it is bind-mounted at `/etc/resolv.conf`);
//! 3. `/.weft/run` is written: `exec /.weft-bin/busybox env K=V… <entrypoint> <cmd>`, and
//!    `env` and `netns` next to it for [`DockerRuntime`]'s `exec` and `stop`;
//! 4. the container's namespace is published under the endpoint's name;
//! 5. a line down the FIFO: the shell execs the task's command, which becomes PID 1 with
//!    the image's environment plus the task's, writing to the container's log.
//!
//! What differs from a cold start, and why it is acceptable:
//! - the engine's view of the container (`docker inspect`, `docker exec`) has the image's
//!   environment, not the task's: Docker cannot change a container's configuration after
//!   create. weft's own `exec` (health checks, `weft exec`) passes the task's environment,
//!   and the task's processes have it;
//! - the container carries the label `weft.spare-dir` (the directory above) instead of
//!   `weft.task` and `weft.netns`; the directory is removed with the container.
//!
//! Not used (the task starts cold) for privileged tasks (no privileged container idles
//! ahead of need), an environment name starting with `-` or a command whose first word
//! has a `=` (`env` would read either as its own), an image without a command, and when
//! the image's tag now names another image than the spare's.
//!
//! The pool learns its keys from the tasks: a key gets its spares after its first
//! (cold) start, is refilled after each use, and at most [`MAX_KEYS`] keys are kept (the
//! least recently used one's spares go). An agent removes its leftovers at start (label
//! `weft.spare=<scope>`) and its spares at shutdown.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, RenameContainerOptions,
};

use crate::docker::{DockerRuntime, container_name};
use crate::error::{Result, RuntimeError};
use crate::netns;
use crate::task::{StartedTask, TaskSpec};

/// Label naming the agent scope a spare belongs to (its leftovers are swept by it).
pub const LABEL_SPARE: &str = "weft.spare";
/// Label naming the host directory of a container started on a spare.
pub const LABEL_SPARE_DIR: &str = "weft.spare-dir";
/// Where the node's busybox is mounted in a spare.
/// (busybox picks its applet by the name it runs as: it must end in `busybox`.)
const SHELL_IN_CONTAINER: &str = "/.weft-bin/busybox";
/// Where the spare's directory is mounted.
const DIR_IN_CONTAINER: &str = "/.weft";
/// PID 1 of a spare: wait for the go (unless the task was already handed over: the
/// container was restarted), then become the task.
const WAIT_SCRIPT: &str = "[ -e /.weft/run ] || read _ < /.weft/go; . /.weft/run";
/// Keys (image and limits) that keep spares at once.
pub const MAX_KEYS: usize = 4;
/// How long after a start the pool begins to refill: the task that took the spare is
/// still coming up, and should not share the engine with a new container's start.
const REFILL_DELAY: Duration = Duration::from_millis(250);
/// A key no task has used for this long loses its spares: a warm container holds its
/// image (`docker rmi` refuses while one exists) and a little memory.
pub const IDLE_EXPIRY: Duration = Duration::from_secs(600);

/// What a spare must share with a task to serve it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpareKey {
    pub image: String,
    pub nano_cpus: Option<i64>,
    pub memory: Option<i64>,
}

impl SpareKey {
    fn of(spec: &TaskSpec, image: &str) -> Self {
        let body = DockerRuntime::host_config(spec, None);
        SpareKey {
            image: image.to_string(),
            nano_cpus: body.nano_cpus,
            memory: body.memory,
        }
    }
}

/// How the agent keeps warm containers.
#[derive(Debug, Clone)]
pub struct DockerSpareConfig {
    /// A statically linked busybox on the node (Debian's `busybox-static`): the spares'
    /// PID 1 until a task arrives. It runs in any image, even `FROM scratch`.
    pub shell: PathBuf,
    /// Holds one directory per spare (the FIFO, and the task's run script after a start).
    pub dir: PathBuf,
    /// Spares per key.
    pub per_key: usize,
    /// Unique per agent on a host (the agent's cgroup scope): names and labels its spares.
    pub scope: String,
}

impl DockerSpareConfig {
    /// Refuses a shell that is not a statically linked ELF executable (a dynamic one would
    /// not run in an image without its libraries).
    pub fn check(&self) -> Result<()> {
        let bytes = std::fs::read(&self.shell)
            .map_err(|e| RuntimeError::io("read the spares' shell", &self.shell, e))?;
        if !is_static_elf(&bytes) {
            return Err(RuntimeError::Io {
                what: "the spares' shell must be a statically linked executable (busybox-static)",
                path: self.shell.clone(),
                source: std::io::Error::other("dynamically linked or not ELF"),
            });
        }
        if self.scope.is_empty()
            || !self
                .scope
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(RuntimeError::invalid(
                &self.scope,
                "spare scope: ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(())
    }
}

/// A 64-bit little-endian ELF executable without a `PT_INTERP` program header.
pub fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    // ELFCLASS64, ELFDATA2LSB.
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..usize::from(phnum)).all(|i| {
        let at = usize::try_from(phoff)
            .unwrap_or(usize::MAX)
            .saturating_add(i.saturating_mul(usize::from(phentsize)));
        u32_at(at).is_some_and(|kind| kind != PT_INTERP)
    })
}

/// One warm container.
#[derive(Debug, Clone)]
struct Spare {
    name: String,
    id: String,
    pid: u32,
    dir: PathBuf,
    image_id: String,
    /// The image's entrypoint and command, as the engine would combine them.
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    resolv_conf: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Pool {
    ready: HashMap<SpareKey, VecDeque<Spare>>,
    filling: HashMap<SpareKey, usize>,
    /// Most recently used last, with when.
    recent: Vec<(SpareKey, std::time::Instant)>,
    closed: bool,
    /// Whether the task that expires idle keys runs.
    expiring: bool,
}

/// The agent's warm containers.
#[derive(Debug)]
pub struct DockerSpares {
    config: DockerSpareConfig,
    pool: Mutex<Pool>,
    counter: AtomicU64,
}

/// Why a spare cannot take a task (it starts cold); logged.
fn unsuitable(spec: &TaskSpec) -> Option<&'static str> {
    if spec.privileged {
        return Some("privileged");
    }
    if spec.env.keys().any(|k| k.starts_with('-')) {
        return Some("an environment name starts with '-'");
    }
    None
}

/// `'…'` for the shell: a single-quoted word, `'` as `'\''`.
fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The script that makes the spare's shell the task.
fn run_script(argv: &[String], env: &[(String, String)]) -> String {
    let mut script = format!("exec {SHELL_IN_CONTAINER} env");
    for (k, v) in env {
        script.push(' ');
        script.push_str(&quoted(&format!("{k}={v}")));
    }
    for word in argv {
        script.push(' ');
        script.push_str(&quoted(word));
    }
    script.push('\n');
    script
}

impl DockerSpares {
    pub fn new(config: DockerSpareConfig) -> Result<Arc<Self>> {
        config.check()?;
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| RuntimeError::io("create the spares' directory", &config.dir, e))?;
        Ok(Arc::new(DockerSpares {
            config,
            pool: Mutex::new(Pool::default()),
            counter: AtomicU64::new(0),
        }))
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spares ready now, over all keys.
    pub fn ready(&self) -> usize {
        self.pool().ready.values().map(VecDeque::len).sum()
    }

    /// Starts `spec` on a spare if one fits: `None` when none does (the caller starts it
    /// cold), and the pool refills either way.
    pub(crate) async fn start(
        self: &Arc<Self>,
        rt: &DockerRuntime,
        spec: &TaskSpec,
        image: &str,
        nameserver: Option<std::net::IpAddr>,
    ) -> Option<Result<StartedTask>> {
        if let Some(why) = unsuitable(spec) {
            tracing::debug!(task = %spec.id, why, "task starts cold, not on a warm container");
            return None;
        }
        let key = SpareKey::of(spec, image);
        let spare = self.take(&key);
        self.refill_later(rt, key.clone());
        let spare = spare?;
        match self.hand_over(rt, spec, image, nameserver, &spare).await {
            Ok(Some(started)) => Some(Ok(started)),
            Ok(None) => {
                self.discard(rt, spare).await;
                None
            }
            Err(e @ RuntimeError::TaskExists(_)) => {
                // The spare is intact (the rename was refused): keep it.
                self.pool().ready.entry(key).or_default().push_front(spare);
                Some(Err(e))
            }
            Err(e) => {
                let _ = netns::unpublish(&spec.netns);
                self.discard(rt, spare).await;
                Some(Err(e))
            }
        }
    }

    /// Takes a spare of `key`, marking the key most recently used.
    fn take(&self, key: &SpareKey) -> Option<Spare> {
        let mut pool = self.pool();
        pool.recent.retain(|(k, _)| k != key);
        pool.recent.push((key.clone(), std::time::Instant::now()));
        pool.ready.get_mut(key)?.pop_front()
    }

    /// `Ok(None)`: this spare cannot serve the task (another image behind the tag, no
    /// command, or the spare died); the caller discards it and starts cold.
    async fn hand_over(
        &self,
        rt: &DockerRuntime,
        spec: &TaskSpec,
        image: &str,
        nameserver: Option<std::net::IpAddr>,
        spare: &Spare,
    ) -> Result<Option<StartedTask>> {
        let client = rt.client().await?;
        let current = match client.inspect_image(image).await {
            Ok(info) => info.id.unwrap_or_default(),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Err(RuntimeError::ImageNotFound(image.to_string())),
            Err(e) => return Err(rt.classify("inspect image", e).await),
        };
        if current != spare.image_id {
            tracing::info!(
                image,
                "the image's tag names a newer image than the warm container's"
            );
            return Ok(None);
        }
        let mut argv = spare.entrypoint.clone();
        if spec.command.is_empty() {
            argv.extend(spare.cmd.iter().cloned());
        } else {
            argv.extend(spec.command.iter().cloned());
        }
        if argv.first().is_none_or(|first| first.contains('=')) {
            return Ok(None);
        }
        if !Path::new(&format!("/proc/{}", spare.pid)).exists() {
            tracing::warn!(container = %spare.name, "warm container is gone");
            return Ok(None);
        }
        let rename = RenameContainerOptions {
            name: container_name(&spec.id),
        };
        match client.rename_container(&spare.id, rename).await {
            Ok(()) => {}
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => return Err(RuntimeError::TaskExists(spec.id.clone())),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(rt.classify("rename container", e).await),
        }
        let env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let (Some(ns), Some(path)) = (nameserver, &spare.resolv_conf) {
            // In place: the container sees this inode through its bind mount.
            write_file(path, format!("nameserver {ns}\n").as_bytes())?;
        }
        let mut env_file = Vec::new();
        for (k, v) in &env {
            env_file.extend_from_slice(format!("{k}={v}").as_bytes());
            env_file.push(0);
        }
        write_file(&spare.dir.join("env"), &env_file)?;
        write_file(&spare.dir.join("netns"), spec.netns.as_bytes())?;
        let staged = spare.dir.join(".run");
        write_file(&staged, run_script(&argv, &env).as_bytes())?;
        let run = spare.dir.join("run");
        std::fs::rename(&staged, &run).map_err(|e| RuntimeError::io("write", &run, e))?;
        netns::publish(spare.pid, &spec.netns)?;
        let go = spare.dir.join("go");
        let signalled = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&go)
            .and_then(|mut fifo| fifo.write_all(b"\n"));
        if let Err(e) = signalled {
            // ENXIO: nobody reads: the spare's shell is gone.
            tracing::warn!(container = %spare.name, error = %e, "warm container did not take its task");
            netns::unpublish(&spec.netns)?;
            return Ok(None);
        }
        tracing::info!(task = %spec.id, container = %spare.id, pid = spare.pid, netns = %spec.netns,
            "docker task started on a warm container");
        Ok(Some(StartedTask {
            pid: spare.pid,
            container_id: Some(spare.id.clone()),
        }))
    }

    async fn discard(&self, rt: &DockerRuntime, spare: Spare) {
        remove(rt, &spare.id, &spare.dir).await;
    }

    /// Fills `key` up to `per_key` spares after [`REFILL_DELAY`], and drops the spares of
    /// keys beyond [`MAX_KEYS`].
    fn refill_later(self: &Arc<Self>, rt: &DockerRuntime, key: SpareKey) {
        let (wanted, evicted) = {
            let mut pool = self.pool();
            if pool.closed {
                return;
            }
            let mut evicted = Vec::new();
            while pool.recent.len() > MAX_KEYS {
                let (old, _) = pool.recent.remove(0);
                evicted.extend(pool.ready.remove(&old).unwrap_or_default());
            }
            if !pool.expiring {
                pool.expiring = true;
                let this = self.clone();
                let rt = rt.clone();
                tokio::spawn(async move { this.expire_idle(rt).await });
            }
            let have = pool.ready.get(&key).map_or(0, VecDeque::len)
                + pool.filling.get(&key).copied().unwrap_or(0);
            let wanted = self.config.per_key.saturating_sub(have);
            if wanted > 0 {
                *pool.filling.entry(key.clone()).or_default() += wanted;
            }
            (wanted, evicted)
        };
        if wanted == 0 && evicted.is_empty() {
            return;
        }
        let this = self.clone();
        let rt = rt.clone();
        tokio::spawn(async move {
            for spare in evicted {
                this.discard(&rt, spare).await;
            }
            tokio::time::sleep(REFILL_DELAY).await;
            for made_so_far in 0..wanted {
                let made = this.make(&rt, &key).await;
                // A spare made for a key no longer kept, or after the close, goes.
                let unwanted = {
                    let mut pool = this.pool();
                    if let Some(n) = pool.filling.get_mut(&key) {
                        *n = n.saturating_sub(1);
                    }
                    let kept = pool.recent.iter().any(|(k, _)| *k == key);
                    match made {
                        Ok(spare) if !pool.closed && kept => {
                            pool.ready.entry(key.clone()).or_default().push_back(spare);
                            None
                        }
                        Ok(spare) => Some(spare),
                        Err(e) => {
                            tracing::warn!(image = %key.image, error = %e, "cannot make a warm container");
                            // The rest of this batch is not coming either.
                            let rest = wanted - made_so_far - 1;
                            if let Some(n) = pool.filling.get_mut(&key) {
                                *n = n.saturating_sub(rest);
                            }
                            break;
                        }
                    }
                };
                if let Some(spare) = unwanted {
                    this.discard(&rt, spare).await;
                }
            }
        });
    }

    /// Every minute, removes the spares of keys idle for [`IDLE_EXPIRY`]; ends when the
    /// pool closes.
    async fn expire_idle(self: Arc<Self>, rt: DockerRuntime) {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let expired: Vec<Spare> = {
                let mut pool = self.pool();
                if pool.closed {
                    return;
                }
                let now = std::time::Instant::now();
                let (idle, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut pool.recent)
                    .into_iter()
                    .partition(|(_, used)| now.duration_since(*used) >= IDLE_EXPIRY);
                pool.recent = kept;
                idle.iter()
                    .flat_map(|(key, _)| pool.ready.remove(key).unwrap_or_default())
                    .collect()
            };
            for spare in expired {
                tracing::info!(container = %spare.name, "warm container expired (its image and limits were not used for 10 minutes)");
                self.discard(&rt, spare).await;
            }
        }
    }

    /// Creates and starts one spare of `key`.
    async fn make(&self, rt: &DockerRuntime, key: &SpareKey) -> Result<Spare> {
        let client = rt.client().await?;
        let image = match client.inspect_image(&key.image).await {
            Ok(info) => info,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Err(RuntimeError::ImageNotFound(key.image.clone())),
            Err(e) => return Err(rt.classify("inspect image", e).await),
        };
        let config = image.config.unwrap_or_default();
        // A name no container of an earlier agent has (the directory of a task started
        // on a spare lives as long as the task, across agent restarts).
        let (name, dir) = loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let name = format!(
                "weft-_spare-{}-{}-{n}",
                self.config.scope,
                std::process::id()
            );
            let dir = self.config.dir.join(&name);
            match std::fs::create_dir(&dir) {
                Ok(()) => break (name, dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(RuntimeError::io("create", &dir, e)),
            }
        };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| RuntimeError::io("chmod", &dir, e))?;
        let go = dir.join("go");
        // Readable by any user the image runs as; only the agent writes.
        nix::unistd::mkfifo(&go, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .map_err(|e| RuntimeError::io("mkfifo", &go, e.into()))?;

        let mut shape = TaskSpec::container(&name, "", &key.image, &[]);
        shape.cpus = key.nano_cpus.map_or(0.0, |n| n as f64 / 1e9);
        shape.mem_mib = key.memory.map_or(0, |m| (m as u64) >> 20);
        let mut host_config = DockerRuntime::host_config(&shape, None);
        host_config.binds = Some(vec![
            format!("{}:{SHELL_IN_CONTAINER}:ro", self.config.shell.display()),
            format!("{}:{DIR_IN_CONTAINER}:ro", dir.display()),
        ]);
        let body = ContainerCreateBody {
            // The reference, as a cold start names it (`docker ps`, `ancestor=` filters).
            image: Some(key.image.clone()),
            entrypoint: Some(vec![
                SHELL_IN_CONTAINER.to_string(),
                "sh".to_string(),
                "-c".to_string(),
                WAIT_SCRIPT.to_string(),
            ]),
            cmd: Some(Vec::new()),
            labels: Some(HashMap::from([
                (LABEL_SPARE.to_string(), self.config.scope.clone()),
                (LABEL_SPARE_DIR.to_string(), dir.display().to_string()),
            ])),
            tty: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        // In turn with the tasks' cold starts: a spare never crowds one out.
        let _turn = rt.cold_start_turn().await;
        let created = match client.create_container(Some(options), body).await {
            Ok(created) => created,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(rt.classify("create container", e).await);
            }
        };
        let started = async {
            if let Err(e) = client.start_container(&created.id, None).await {
                return Err(rt.classify("start container", e).await);
            }
            match client
                .inspect_container(&created.id, None::<InspectContainerOptions>)
                .await
            {
                Ok(info) => Ok(info),
                Err(e) => Err(rt.classify("inspect container", e).await),
            }
        }
        .await;
        let info = match started {
            Ok(info) => info,
            Err(e) => {
                remove(rt, &created.id, &dir).await;
                return Err(e);
            }
        };
        let state = info.state.unwrap_or_default();
        let pid = state.pid.unwrap_or(0).max(0) as u32;
        if state.running != Some(true) || pid == 0 {
            remove(rt, &created.id, &dir).await;
            return Err(RuntimeError::invalid(
                &name,
                "warm container exited at once",
            ));
        }
        tracing::debug!(container = %name, image = %key.image, "warm container ready");
        Ok(Spare {
            name,
            id: created.id,
            pid,
            dir,
            image_id: image.id.unwrap_or_default(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            resolv_conf: info.resolv_conf_path.map(PathBuf::from),
        })
    }

    /// Removes every spare of this scope, ready or left by an earlier agent; no more are
    /// made when `closing`.
    pub async fn sweep(&self, rt: &DockerRuntime, closing: bool) {
        {
            let mut pool = self.pool();
            pool.closed |= closing;
            pool.ready.clear();
        }
        let Ok(client) = rt.client().await else {
            return;
        };
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_SPARE}={}", self.config.scope)],
        )]);
        let query = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let Ok(found) = client.list_containers(Some(query)).await else {
            return;
        };
        for c in found {
            let dir = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SPARE_DIR))
                .map(PathBuf::from);
            // Only a spare that never took a task (its name is still a spare's); a
            // renamed one is a task, the agent's to stop.
            let still_spare = c
                .names
                .iter()
                .flatten()
                .any(|n| n.trim_start_matches('/').starts_with("weft-_spare-"));
            if let (Some(id), Some(dir), true) = (c.id, dir, still_spare) {
                remove(rt, &id, &dir).await;
            }
        }
    }
}

/// Removes a spare's (or a task's started on one) container and its directory.
pub(crate) async fn remove(rt: &DockerRuntime, container: &str, dir: &Path) {
    if let Ok(client) = rt.client().await {
        let force = RemoveContainerOptionsBuilder::new().force(true).build();
        match client.remove_container(container, Some(force)).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => tracing::warn!(container, error = %e, "cannot remove warm container"),
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Truncates and writes (keeps the inode: bind mounts see the new content).
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| RuntimeError::io("write", path, e))
}

/// The task's environment recorded in a spare's directory, for `exec`.
pub(crate) fn recorded_env(dir: &Path) -> Option<Vec<String>> {
    let bytes = std::fs::read(dir.join("env")).ok()?;
    Some(
        bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// The namespace name recorded in a spare's directory, for `stop`.
pub(crate) fn recorded_netns(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("netns")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_spaces_and_newlines() {
        let script = run_script(
            &["sh".into(), "-c".into(), "echo 'a b'\nexit".into()],
            &[("my key".into(), "it's".into())],
        );
        assert_eq!(
            script,
            "exec /.weft-bin/busybox env 'my key=it'\\''s' 'sh' '-c' 'echo '\\''a b'\\''\nexit'\n"
        );
        // The shell reads it back to the same words.
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &script.replace("exec /.weft-bin/busybox env", "printf '[%s]'"),
            ])
            .output()
            .expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "[my key=it's][sh][-c][echo 'a b'\nexit]"
        );
    }

    #[test]
    fn static_elf_is_told_from_dynamic() {
        let exe = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        // Test binaries link glibc dynamically.
        assert!(!is_static_elf(&exe));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        assert!(!is_static_elf(&[]));
        if let Ok(busybox) = std::fs::read("/bin/busybox")
            && std::process::Command::new("file")
                .arg("/bin/busybox")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("statically linked"))
        {
            assert!(is_static_elf(&busybox));
        }
    }

    #[test]
    fn privileged_and_dash_names_start_cold() {
        let spec = TaskSpec::container("t", "ns", "img", &[]);
        assert_eq!(unsuitable(&spec), None);
        assert!(unsuitable(&spec.clone().with_privileged(true)).is_some());
        let mut env = std::collections::BTreeMap::new();
        env.insert("-x".to_string(), "1".to_string());
        assert!(unsuitable(&spec.with_env(env)).is_some());
    }
}
