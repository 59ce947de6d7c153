//! Network namespaces without forking: `unshare(CLONE_NEWNET)` on a throw-away thread,
//! then a bind mount of that thread's namespace onto `/run/netns/NAME` (the layout
//! `ip netns` uses, so `ip -n NAME` and `ip netns exec NAME` work on them).
//! Work inside a namespace runs on a dedicated thread that has `setns`-ed into it;
//! the namespace is per thread, so the rest of the process is unaffected.

use crate::error::FabricError;
use crate::names;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use std::fs::File;
use std::path::{Path, PathBuf};

pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Whether namespace `name` is there: its path is a mounted namespace file. A bare
/// mount point, what a creation or deletion killed halfway leaves, is not one (and
/// [`create`] makes the namespace over it).
pub fn exists(name: &str) -> bool {
    use nix::sys::statfs::{NSFS_MAGIC, statfs};
    statfs(&path(name)).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

/// Creates namespace `name` (must start with `weft`); a no-op if it exists.
pub fn create(name: &str) -> Result<(), FabricError> {
    names::check_netns_name(name)?;
    if exists(name) {
        return Ok(());
    }
    std::fs::create_dir_all(NETNS_DIR)
        .map_err(|e| FabricError::netns(name, "mkdir /run/netns", e))?;
    let target = path(name);
    let owned = name.to_string();
    run_thread(name, move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| FabricError::netns(&owned, "unshare", e))?;
        bind_mount(Path::new("/proc/thread-self/ns/net"), &target, &owned)
    })?;
    // The namespace starts with `lo` down; nearly everything wants it up.
    in_netns(name, set_loopback_up)?
}

fn set_loopback_up() -> Result<(), FabricError> {
    if crate::nl::selected() {
        return crate::nl::loopback_up();
    }
    let out = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .output()
        .map_err(|e| FabricError::netns("(current)", "ip link set lo up", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FabricError::Command {
            netns: "(current)".into(),
            command: "ip link set lo up".into(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Gives namespace `from` the name `to` (both must start with `weft`; `to` must not
/// exist): a bind mount under the new name, then the old one detached. Whatever the
/// namespace holds (devices, nftables tables, sysctls) goes with it.
pub fn rename(from: &str, to: &str) -> Result<(), FabricError> {
    names::check_netns_name(from)?;
    names::check_netns_name(to)?;
    let (source, target) = (path(from), path(to));
    if exists(to) {
        return Err(FabricError::netns(
            to,
            "rename",
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    }
    bind_mount(&source, &target, to)?;
    delete(from)
}

/// Makes `target` (a new file) a bind mount of the namespace file `source`; on failure
/// `target` is gone again. `name` is the namespace the errors name.
fn bind_mount(source: &Path, target: &Path, name: &str) -> Result<(), FabricError> {
    File::create(target).map_err(|e| FabricError::netns(name, "create mount point", e))?;
    let bound = nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    if let Err(e) = bound {
        let _ = std::fs::remove_file(target);
        return Err(FabricError::netns(name, "bind mount", e));
    }
    Ok(())
}

/// Deletes namespace `name` if it exists. Only names starting with `weft` are accepted.
pub fn delete(name: &str) -> Result<(), FabricError> {
    names::check_netns_name(name)?;
    let target = path(name);
    if !target.exists() {
        return Ok(());
    }
    // Detach: the namespace dies when its last user (socket, process) is gone. EINVAL:
    // nothing is mounted there any more, a deletion killed between its two steps (an
    // agent stopped mid-reconcile); the mount point is all that is left to remove.
    match nix::mount::umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(FabricError::netns(name, "umount", e)),
    }
    std::fs::remove_file(&target).map_err(|e| FabricError::netns(name, "remove mount point", e))
}

/// Names of the namespaces in `/run/netns` that start with `prefix`.
pub fn list_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    out.sort();
    out
}

/// Runs `f` on a new thread that has entered namespace `name`. Sockets created by `f`
/// stay in that namespace and may be used from any thread afterwards.
pub fn in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FabricError> {
    let file = File::open(path(name)).map_err(|e| FabricError::netns(name, "open", e))?;
    let owned = name.to_string();
    run_thread(name, move || {
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| FabricError::netns(&owned, "setns", e))?;
        Ok(f())
    })
}

fn run_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> Result<T, FabricError> + Send + 'static,
) -> Result<T, FabricError> {
    std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(f)
        .map_err(|e| FabricError::netns(name, "spawn thread", e))?
        .join()
        .map_err(|_| FabricError::netns(name, "thread", std::io::Error::other("panicked")))?
}

/// Writes a sysctl of the namespace `name` (e.g. `net/ipv4/ip_forward`): /proc/sys/net
/// shows the namespace of the thread that opens it.
pub fn sysctl(name: &str, key: &str, value: &str) -> Result<(), FabricError> {
    let file = format!("/proc/sys/{key}");
    let value = value.to_string();
    let ns = name.to_string();
    in_netns(name, move || {
        std::fs::write(&file, value).map_err(|e| FabricError::netns(&ns, "sysctl", e))
    })?
}
