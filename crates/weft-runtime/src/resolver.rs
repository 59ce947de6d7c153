//! Task resolvers: every task asks its endpoint's gateway for names, with nothing
//! installed in it.
//!
//! The node's agent answers DNS (UDP/TCP 53) and Consul's HTTP API (8500) at the anycast
//! gateway address of each endpoint subnet, the address a task finds in `WEFT_GATEWAY`.
//! Both runtimes point the task's `/etc/resolv.conf` there (see [`TaskDns`]):
//!
//! * Docker: `HostConfig.Dns = [gateway]` and `DnsSearch = ["."]` (no search domain of the
//!   node's). The engine writes the container's own resolv.conf even with
//!   `network_mode = "none"`; the node's `options` lines are kept.
//! * Process tasks share the host's file system, so the file is swapped in a mount
//!   namespace of the task's own: the runtime writes `<task dir>/resolv.conf` before the
//!   fork, and the child (or the spare's shim), after entering the endpoint's network
//!   namespace, does `unshare(CLONE_NEWNS)`, makes every mount a slave (`MS_REC |
//!   MS_SLAVE`: its own mounts never propagate back to the host, while the host's later
//!   mounts and unmounts, e.g. a network namespace leaving `/run/netns`, still reach it)
//!   and bind-mounts that file over `/etc/resolv.conf`. The host's file is never written.
//!   If the host has no `/etc/resolv.conf` (nothing to mount over), the task keeps the
//!   host's view and a warning is logged.
//!
//! The file is minimal on purpose: one `nameserver` line. glibc's and musl's defaults
//! (`ndots:1`, 5 s timeout, 2 attempts) apply, and with no `search` line a name is looked
//! up as written (`db.service.weft`).

use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use crate::error::{Result, RuntimeError};
use crate::task::{TaskDns, TaskSpec};

/// The file every task's resolver reads.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Name of the per-task resolver file in the task's directory.
pub const TASK_RESOLV_CONF: &str = "resolv.conf";

/// Contents of a task's resolv.conf naming `nameserver`.
pub fn resolv_conf(nameserver: IpAddr) -> String {
    format!(
        "# weft: the endpoint's gateway, where the node's agent answers DNS\nnameserver {nameserver}\n"
    )
}

impl TaskSpec {
    /// The address the task's resolver must ask: the gateway (`WEFT_GATEWAY` of its env)
    /// with [`TaskDns::Gateway`], `None` with [`TaskDns::Host`] or without `WEFT_GATEWAY`.
    /// A `WEFT_GATEWAY` that is not an IP address is an invalid spec.
    pub fn nameserver(&self) -> Result<Option<IpAddr>> {
        match self.dns {
            TaskDns::Host => Ok(None),
            TaskDns::Gateway => match self.env.get("WEFT_GATEWAY") {
                None => Ok(None),
                Some(gateway) => gateway.parse().map(Some).map_err(|_| {
                    RuntimeError::invalid(
                        &self.id,
                        format!("WEFT_GATEWAY {gateway:?} is not an IP address"),
                    )
                }),
            },
        }
    }
}

/// Writes `<dir>/resolv.conf` naming `nameserver` and returns its path, or `None` (with a
/// warning) when the host has no `/etc/resolv.conf` to mount it over.
pub(crate) fn write_task_file(
    task: &str,
    dir: &Path,
    nameserver: IpAddr,
) -> Result<Option<PathBuf>> {
    if !Path::new(RESOLV_CONF).exists() {
        tracing::warn!(task, %nameserver, "the host has no {RESOLV_CONF}; the task keeps the host's resolver configuration");
        return Ok(None);
    }
    let path = dir.join(TASK_RESOLV_CONF);
    std::fs::write(&path, resolv_conf(nameserver))
        .map_err(|e| RuntimeError::io("write task resolv.conf", &path, e))?;
    Ok(Some(path))
}

/// The mount-namespace step of a process task, prepared before the fork: after
/// [`ResolvMount::apply`], this process (and what it execs) sees `source` at
/// `/etc/resolv.conf`, and nobody else does.
#[derive(Debug)]
pub(crate) struct ResolvMount {
    source: CString,
    target: CString,
    root: CString,
}

impl ResolvMount {
    pub(crate) fn new(source: &Path) -> Result<Self> {
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes()).map_err(|e| {
                RuntimeError::io(
                    "resolv.conf path",
                    p,
                    io::Error::new(io::ErrorKind::InvalidInput, e),
                )
            })
        };
        Ok(ResolvMount {
            source: c(source)?,
            target: c(Path::new(RESOLV_CONF))?,
            root: c(Path::new("/"))?,
        })
    }

    /// Async-signal-safe (system calls on prepared C strings only): fit to run between
    /// fork and exec. Needs CAP_SYS_ADMIN, so it comes before capabilities are dropped.
    pub(crate) fn apply(&self) -> io::Result<()> {
        const NONE: Option<&std::ffi::CStr> = None;
        nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
        nix::mount::mount(
            NONE,
            self.root.as_c_str(),
            NONE,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            NONE,
        )?;
        nix::mount::mount(
            Some(self.source.as_c_str()),
            self.target.as_c_str(),
            NONE,
            MsFlags::MS_BIND,
            NONE,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn file_names_the_gateway_only() {
        let text = resolv_conf("10.1.0.1".parse().expect("ip"));
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["nameserver 10.1.0.1"]);
        let v6 = resolv_conf("fd00::1".parse().expect("ip"));
        assert!(v6.ends_with("\nnameserver fd00::1\n"), "{v6}");
    }

    #[test]
    fn nameserver_comes_from_weft_gateway_unless_host() {
        let env = BTreeMap::from([("WEFT_GATEWAY".to_string(), "10.1.0.1".to_string())]);
        let spec = TaskSpec::process("t", "weft-ns", &["true"]).with_env(env.clone());
        assert_eq!(
            spec.nameserver().expect("valid"),
            Some("10.1.0.1".parse().expect("ip"))
        );
        assert_eq!(
            spec.clone()
                .with_dns(TaskDns::Host)
                .nameserver()
                .expect("valid"),
            None
        );
        let bare = TaskSpec::process("t", "weft-ns", &["true"]);
        assert_eq!(bare.nameserver().expect("valid"), None);
        let bad = bare.with_env(BTreeMap::from([(
            "WEFT_GATEWAY".to_string(),
            "gateway".to_string(),
        )]));
        assert!(matches!(
            bad.nameserver(),
            Err(RuntimeError::InvalidSpec { .. })
        ));
    }
}
