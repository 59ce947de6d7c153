//! CPU and memory limits in a cgroup of its own per task, `weft/<task>`, on cgroup v1 (one
//! hierarchy per controller, as on hosts booted with the legacy layout) or v2 (unified).
//! The version is detected from the mount table; a hybrid host whose v1 hierarchies hold
//! `cpu` and `memory` uses v1, since its unified hierarchy then has no controllers.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Result, RuntimeError};

/// CFS period used for the CPU quota (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// The parent of every task cgroup.
const WEFT_GROUP: &str = "weft";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Mount points of the `cpu` and `memory` hierarchies (may be the same directory).
    V1 { cpu: PathBuf, memory: PathBuf },
    /// Mount point of the unified hierarchy.
    V2 { root: PathBuf },
}

/// Limits of one task. Zero means "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub cpus: f64,
    pub mem_mib: u64,
}

impl CgroupLayout {
    /// Reads `/proc/self/mounts`.
    pub fn detect() -> Result<Self> {
        let mounts = fs::read_to_string("/proc/self/mounts")
            .map_err(|e| RuntimeError::io("read", "/proc/self/mounts", e))?;
        Self::from_mounts(&mounts, |root| {
            fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default()
        })
    }

    /// `controllers_of(v2 root)` returns that hierarchy's `cgroup.controllers`.
    pub fn from_mounts(mounts: &str, controllers_of: impl Fn(&Path) -> String) -> Result<Self> {
        let mut cpu = None;
        let mut memory = None;
        let mut unified = None;
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, mount_point, fstype, options, ..] = fields[..] else {
                continue;
            };
            match fstype {
                "cgroup" => {
                    for option in options.split(',') {
                        match option {
                            "cpu" => cpu = Some(PathBuf::from(mount_point)),
                            "memory" => memory = Some(PathBuf::from(mount_point)),
                            _ => {}
                        }
                    }
                }
                "cgroup2" => unified = Some(PathBuf::from(mount_point)),
                _ => {}
            }
        }
        if let (Some(cpu), Some(memory)) = (cpu, memory) {
            return Ok(CgroupLayout::V1 { cpu, memory });
        }
        if let Some(root) = unified {
            let controllers = controllers_of(&root);
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if has("cpu") && has("memory") {
                return Ok(CgroupLayout::V2 { root });
            }
            return Err(RuntimeError::CgroupUnavailable(format!(
                "unified hierarchy at {} lacks cpu or memory (has: {})",
                root.display(),
                controllers.trim()
            )));
        }
        Err(RuntimeError::CgroupUnavailable(
            "no cgroup hierarchy with cpu and memory is mounted".into(),
        ))
    }

    pub fn version(&self) -> u8 {
        match self {
            CgroupLayout::V1 { .. } => 1,
            CgroupLayout::V2 { .. } => 2,
        }
    }

    /// Directories the task's cgroup has (one per v1 hierarchy, one on v2).
    pub fn task_dirs(&self, task: &str) -> Vec<PathBuf> {
        match self {
            CgroupLayout::V1 { cpu, memory } => {
                let mut dirs = vec![cpu.join(WEFT_GROUP).join(task)];
                if memory != cpu {
                    dirs.push(memory.join(WEFT_GROUP).join(task));
                }
                dirs
            }
            CgroupLayout::V2 { root } => vec![root.join(WEFT_GROUP).join(task)],
        }
    }

    /// Creates `weft/<task>` with the limits written (`task` may be a path, `<scope>/<task>`).
    /// An existing cgroup of that name (left by a crashed agent) is reused after checking
    /// it is empty.
    pub fn create(&self, task: &str, limits: Limits) -> Result<TaskCgroup> {
        let cgroup = TaskCgroup {
            layout: self.clone(),
            dirs: self.task_dirs(task),
        };
        if let CgroupLayout::V2 { root } = self {
            // Controllers must be delegated down the tree before the leaf can use them.
            enable_v2_controllers(root)?;
            let mut dir = root.join(WEFT_GROUP);
            create_dir(&dir)?;
            enable_v2_controllers(&dir)?;
            for part in Path::new(task)
                .parent()
                .into_iter()
                .flat_map(Path::components)
            {
                dir = dir.join(part);
                create_dir(&dir)?;
                enable_v2_controllers(&dir)?;
            }
        }
        for dir in &cgroup.dirs {
            create_dir(dir)?;
        }
        if !cgroup.pids().is_empty() {
            return Err(RuntimeError::Cgroup {
                path: cgroup.dirs[0].clone(),
                source: io::Error::new(io::ErrorKind::AlreadyExists, "cgroup still has processes"),
            });
        }
        if let Err(e) = cgroup.write_limits(limits) {
            cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }
}

impl CgroupLayout {
    /// The cgroup of `task` whose directories already exist (a renamed spare's), with
    /// the limits written.
    pub(crate) fn adopt(&self, task: &str, limits: Limits) -> Result<TaskCgroup> {
        let cgroup = TaskCgroup {
            layout: self.clone(),
            dirs: self.task_dirs(task),
        };
        cgroup.write_limits(limits)?;
        Ok(cgroup)
    }

    /// A handle on existing directories, for removal.
    pub(crate) fn adopt_dirs(&self, dirs: Vec<PathBuf>) -> TaskCgroup {
        TaskCgroup {
            layout: self.clone(),
            dirs,
        }
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| RuntimeError::Cgroup {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_file(path: PathBuf, value: &str) -> Result<()> {
    fs::write(&path, value).map_err(|source| RuntimeError::Cgroup { path, source })
}

fn enable_v2_controllers(dir: &Path) -> Result<()> {
    let path = dir.join("cgroup.subtree_control");
    let current = fs::read_to_string(&path).unwrap_or_default();
    let missing: Vec<&str> = ["cpu", "memory"]
        .into_iter()
        .filter(|c| !current.split_whitespace().any(|x| x == *c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let value = missing
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    write_file(path, &value)
}

/// The cgroup of one task.
#[derive(Debug, Clone)]
pub struct TaskCgroup {
    layout: CgroupLayout,
    dirs: Vec<PathBuf>,
}

impl TaskCgroup {
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    fn write_limits(&self, limits: Limits) -> Result<()> {
        let quota_us = (limits.cpus > 0.0)
            .then(|| ((limits.cpus * CPU_PERIOD_US as f64).round() as u64).max(1000));
        let mem_bytes = (limits.mem_mib > 0).then(|| limits.mem_mib * 1024 * 1024);
        match &self.layout {
            CgroupLayout::V1 { .. } => {
                let cpu_dir = &self.dirs[0];
                let mem_dir = self.dirs.last().unwrap_or(cpu_dir);
                write_file(
                    cpu_dir.join("cpu.cfs_period_us"),
                    &CPU_PERIOD_US.to_string(),
                )?;
                let quota = quota_us.map_or("-1".to_string(), |q| q.to_string());
                write_file(cpu_dir.join("cpu.cfs_quota_us"), &quota)?;
                if let Some(bytes) = mem_bytes {
                    write_file(mem_dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    // No swap beyond the limit; the file only exists with swap accounting.
                    let memsw = mem_dir.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write_file(memsw, &bytes.to_string())?;
                    }
                }
            }
            CgroupLayout::V2 { .. } => {
                let dir = &self.dirs[0];
                let cpu_max = match quota_us {
                    Some(q) => format!("{q} {CPU_PERIOD_US}"),
                    None => format!("max {CPU_PERIOD_US}"),
                };
                write_file(dir.join("cpu.max"), &cpu_max)?;
                if let Some(bytes) = mem_bytes {
                    write_file(dir.join("memory.max"), &bytes.to_string())?;
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write_file(swap, "0")?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `cgroup.procs` of every hierarchy, opened for writing, so that a forked child can
    /// join them with one `write("0")` each before exec (no path lookup, no allocation).
    pub(crate) fn open_procs_files(&self) -> Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|dir| {
                let path = dir.join("cgroup.procs");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|source| RuntimeError::Cgroup { path, source })
            })
            .collect()
    }

    /// Every process in the cgroup (union over hierarchies).
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs
            .iter()
            .filter_map(|dir| fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// How many times the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match &self.layout {
            CgroupLayout::V1 { .. } => ("memory.oom_control", "oom_kill"),
            CgroupLayout::V2 { .. } => ("memory.events", "oom_kill"),
        };
        let dir = self.dirs.last().unwrap_or(&self.dirs[0]);
        fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok())?
                })
            })
            .unwrap_or(0)
    }

    /// SIGKILLs every process left in the cgroup (orphans of the task's main process too).
    pub fn kill_all(&self) {
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Kills what is left and removes the directories; waits up to 2 s for dying
    /// processes to leave. Logged, not returned: removal runs on cleanup paths.
    pub fn remove(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        for dir in &self.dirs {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if std::time::Instant::now() < deadline => {
                        tracing::debug!(dir = %dir.display(), error = %e, "cgroup busy; retrying");
                        self.kill_all();
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove cgroup");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
        cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n\
        cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";

    #[test]
    fn detects_v1_on_hybrid_hosts() {
        let layout = CgroupLayout::from_mounts(HYBRID, |_| String::new()).expect("layout");
        assert_eq!(
            layout,
            CgroupLayout::V1 {
                cpu: "/sys/fs/cgroup/cpu".into(),
                memory: "/sys/fs/cgroup/memory".into()
            }
        );
    }

    #[test]
    fn detects_comounted_cpu_cpuacct() {
        let mounts = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
                      cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n";
        let layout = CgroupLayout::from_mounts(mounts, |_| String::new()).expect("layout");
        assert_eq!(layout.task_dirs("t").len(), 2);
    }

    #[test]
    fn detects_v2() {
        let mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        let layout =
            CgroupLayout::from_mounts(mounts, |_| "cpuset cpu io memory pids".into()).expect("v2");
        assert_eq!(
            layout,
            CgroupLayout::V2 {
                root: "/sys/fs/cgroup".into()
            }
        );
        let err = CgroupLayout::from_mounts(mounts, |_| "pids".into());
        assert!(matches!(err, Err(RuntimeError::CgroupUnavailable(_))));
    }

    // Limits are written to plain files, so a tempdir stands in for cgroupfs.
    #[test]
    fn writes_v1_limits() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = CgroupLayout::V1 {
            cpu: tmp.path().join("cpu"),
            memory: tmp.path().join("memory"),
        };
        let cg = layout
            .create(
                "t1",
                Limits {
                    cpus: 0.5,
                    mem_mib: 64,
                },
            )
            .expect("create");
        let read = |p: &str| fs::read_to_string(tmp.path().join(p)).expect(p);
        assert_eq!(read("cpu/weft/t1/cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu/weft/t1/cpu.cfs_period_us"), "100000");
        assert_eq!(
            read("memory/weft/t1/memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(cg.dirs().len(), 2);
    }

    #[test]
    fn writes_v2_limits_and_delegates_controllers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = CgroupLayout::V2 {
            root: tmp.path().to_path_buf(),
        };
        layout
            .create(
                "t1",
                Limits {
                    cpus: 1.5,
                    mem_mib: 128,
                },
            )
            .expect("create");
        let read = |p: &str| fs::read_to_string(tmp.path().join(p)).expect(p);
        assert_eq!(read("weft/t1/cpu.max"), "150000 100000");
        assert_eq!(read("weft/t1/memory.max"), (128u64 << 20).to_string());
        assert_eq!(read("cgroup.subtree_control"), "+cpu +memory");
        assert_eq!(read("weft/cgroup.subtree_control"), "+cpu +memory");
    }
}
