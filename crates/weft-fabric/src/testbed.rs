//! Test and dev-cluster scaffolding: node namespaces joined by an underlay bridge that
//! lives in a namespace of its own, plus endpoint namespaces. Nothing is routed out
//! of the machine. Everything is named `<tag>-...`; dropping the testbed deletes, by
//! exact name, every namespace it or the fabric created under its tag.

use crate::desired::NodeSpec;
use crate::error::FabricError;
use crate::exec::{Cmd, Program, Runner, SystemRunner};
use crate::netns;
use crate::state::{DEFAULT_DIR, StateStore};
use std::net::Ipv4Addr;

/// The underlay subnet inside the testbed (never leaves its namespaces).
pub const UNDERLAY_NET: [u8; 3] = [10, 255, 0];

#[derive(Debug)]
pub struct Testbed {
    pub tag: String,
    pub underlay_netns: String,
    pub nodes: Vec<NodeSpec>,
    created: Vec<String>,
}

impl Testbed {
    /// `test` distinguishes parallel tests; the process id distinguishes runs.
    pub fn new(test: &str, nodes: &[&str]) -> Result<Self, FabricError> {
        Self::with_tag(format!("weft-t{}-{test}", std::process::id()), nodes)
    }

    /// A testbed whose every namespace is named `<tag>-...` (`weft dev` uses its own tag).
    pub fn with_tag(tag: String, nodes: &[&str]) -> Result<Self, FabricError> {
        if !tag.starts_with("weft") {
            return Err(FabricError::InvalidName {
                name: tag,
                why: "testbed tags must start with weft",
            });
        }
        let mut tb = Self {
            underlay_netns: format!("{tag}-ul"),
            tag,
            nodes: Vec::new(),
            created: Vec::new(),
        };
        let ul = tb.underlay_netns.clone();
        tb.create_netns(&ul)?;
        let run =
            |ns: &str, args: &[&str]| SystemRunner.run(&Cmd::new(Some(ns), Program::Ip, args));
        run(&ul, &["link", "add", "weft-ul", "type", "bridge"])?;
        run(&ul, &["link", "set", "weft-ul", "up"])?;
        for (i, name) in nodes.iter().enumerate() {
            let n = u8::try_from(i + 1).map_err(|_| FabricError::InvalidName {
                name: (*name).into(),
                why: "too many testbed nodes",
            })?;
            let ns = format!("{}-{name}", tb.tag);
            tb.create_netns(&ns)?;
            let uplink = format!("weft-u{n}");
            let ip = Ipv4Addr::new(UNDERLAY_NET[0], UNDERLAY_NET[1], UNDERLAY_NET[2], n);
            run(
                &ul,
                &[
                    "link", "add", &uplink, "type", "veth", "peer", "name", "weft-ul0", "netns",
                    &ns,
                ],
            )?;
            run(&ul, &["link", "set", &uplink, "master", "weft-ul", "up"])?;
            run(
                &ns,
                &["addr", "add", &format!("{ip}/24"), "dev", "weft-ul0"],
            )?;
            run(&ns, &["link", "set", "weft-ul0", "up"])?;
            tb.nodes.push(NodeSpec {
                name: (*name).to_string(),
                netns: Some(ns.clone()),
                underlay_ip: ip,
                vrf_netns_prefix: ns,
            });
        }
        Ok(tb)
    }

    fn create_netns(&mut self, name: &str) -> Result<(), FabricError> {
        netns::create(name)?;
        self.created.push(name.to_string());
        Ok(())
    }

    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Creates the namespace of an endpoint (what a container runtime would do).
    pub fn endpoint_netns(&mut self, endpoint: &str) -> Result<String, FabricError> {
        let ns = format!("{}-ep-{endpoint}", self.tag);
        self.create_netns(&ns)?;
        Ok(ns)
    }

    /// Leaves every namespace in place (a dev cluster kept for the user to explore);
    /// clean-up is then the job of whoever knows the tag.
    pub fn keep(self) {
        std::mem::forget(self);
    }

    /// Namespaces under this testbed's tag that still exist.
    pub fn leftovers(&self) -> Vec<String> {
        netns::list_with_prefix(&format!("{}-", self.tag))
    }

    /// Deletes every namespace under the tag (VRF namespaces made by the fabric
    /// included) and the fabric's saved state for them. Processes still inside them (the
    /// tasks of an agent that was killed) are killed first, and their weft cgroups removed.
    pub fn destroy(&mut self) -> Result<(), FabricError> {
        let store = StateStore::in_dir(DEFAULT_DIR);
        let mut names = self.leftovers();
        names.append(&mut self.created);
        names.sort();
        names.dedup();
        kill_processes_in(&names);
        // One namespace that cannot go must not keep the others: delete all, report the
        // first failure.
        let mut first_error = None;
        for ns in names {
            match netns::delete(&ns) {
                Ok(()) => store.remove(&ns),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// SIGKILLs every process whose network namespace is one of `names` (matched by inode,
/// so nothing outside them is touched), waits for them to go, and removes the `weft/...`
/// cgroup directories they leave empty.
fn kill_processes_in(names: &[String]) {
    use std::os::unix::fs::MetadataExt;
    let inodes: std::collections::HashSet<(u64, u64)> = names
        .iter()
        .filter_map(|n| std::fs::metadata(netns::path(n)).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if inodes.is_empty() {
        return;
    }
    let mut victims = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(ns) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        if pid == std::process::id() as i32 || !inodes.contains(&(ns.dev(), ns.ino())) {
            continue;
        }
        let cgroups = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        victims.push((pid, cgroups));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for (pid, cgroups) in victims {
        while std::path::Path::new(&format!("/proc/{pid}")).exists()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for dir in weft_cgroup_dirs(&cgroups) {
            let _ = std::fs::remove_dir(&dir);
            // An agent's scope (`weft/<scope>/<task>`), if that was its last task.
            if let Some(scope) = dir.parent().filter(|p| !p.ends_with("weft")) {
                let _ = std::fs::remove_dir(scope);
            }
        }
    }
}

/// The directories of `/proc/<pid>/cgroup` lines under `/weft/` (v1 hierarchies are
/// mounted at `/sys/fs/cgroup/<controllers>`, v2 at `/sys/fs/cgroup`).
fn weft_cgroup_dirs(proc_cgroup: &str) -> Vec<std::path::PathBuf> {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if !path.starts_with("/weft/") {
                return None;
            }
            let root = std::path::Path::new("/sys/fs/cgroup");
            let mount = match controllers {
                "" => root.to_path_buf(),
                c => root.join(c.trim_start_matches("name=")),
            };
            Some(mount.join(path.trim_start_matches('/')))
        })
        .collect()
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Err(e) = self.destroy() {
            eprintln!("testbed {}: clean-up failed: {e}", self.tag);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_weft_cgroups_are_named_for_removal() {
        let dirs = super::weft_cgroup_dirs(
            "12:memory:/weft/web-1\n11:cpu:/weft/web-1\n3:pids:/user.slice\n1:name=systemd:/weft/x\n0::/\n",
        );
        let want: Vec<std::path::PathBuf> = [
            "/sys/fs/cgroup/memory/weft/web-1",
            "/sys/fs/cgroup/cpu/weft/web-1",
            "/sys/fs/cgroup/systemd/weft/x",
        ]
        .iter()
        .map(Into::into)
        .collect();
        assert_eq!(dirs, want);
    }
}
