//! What the agent says about its host: CPUs, memory, disk, labels.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use weft_api::{NodeRegistration, Resources};

/// The namespace prefix of a node when none is given: `weft-<node>`.
pub fn default_netns_prefix(node: &str) -> String {
    format!("weft-{node}")
}

/// A registration for this host: detected resources, [`host_labels`] plus `labels`.
pub fn registration(
    name: &str,
    underlay_ip: Ipv4Addr,
    netns: Option<String>,
    netns_prefix: Option<String>,
    labels: BTreeMap<String, String>,
    state_dir: &Path,
) -> NodeRegistration {
    let mut all = host_labels();
    all.extend(labels);
    NodeRegistration {
        name: name.to_string(),
        underlay_ip,
        netns,
        netns_prefix: netns_prefix.unwrap_or_else(|| default_netns_prefix(name)),
        api: None,
        resources: detect_resources(state_dir),
        labels: all,
    }
}

/// CPUs usable by this process (cgroup and affinity aware, else `/proc/cpuinfo`),
/// total memory (`/proc/meminfo`) and the space available to `state_dir`'s file
/// system (statvfs of it or of its nearest existing parent). Unknown values are 0.
pub fn detect_resources(state_dir: &Path) -> Resources {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .map(|t| count_processors(&t))
        })
        .unwrap_or(0);
    let mem_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_total_mb(&t))
        .unwrap_or(0);
    Resources {
        cpus: cpus as f64,
        mem_mb,
        disk_mb: disk_available_mb(state_dir).unwrap_or(0),
    }
}

/// Labels every node gets: `arch` and `os`.
pub fn host_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("arch".to_string(), std::env::consts::ARCH.to_string()),
        ("os".to_string(), std::env::consts::OS.to_string()),
    ])
}

fn count_processors(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count()
}

fn mem_total_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024)
}

fn disk_available_mb(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    let st = nix::sys::statvfs::statvfs(existing).ok()?;
    let bytes = st.blocks_available().saturating_mul(st.fragment_size());
    Some(bytes / (1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let cpuinfo = "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nmodel name\t: x\n";
        assert_eq!(count_processors(cpuinfo), 2);
        let meminfo = "MemTotal:       16384000 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_mb(meminfo), Some(16000));
        assert_eq!(mem_total_mb("nothing"), None);
    }

    #[test]
    fn detects_this_host() {
        let r = detect_resources(Path::new("/definitely/not/here/weft"));
        assert!(r.cpus >= 1.0, "{r:?}");
        assert!(r.mem_mb > 0, "{r:?}");
        assert!(r.disk_mb > 0, "{r:?}");
        assert!(host_labels().contains_key("arch"));
        let reg = registration(
            "n1",
            Ipv4Addr::new(10, 255, 0, 1),
            None,
            None,
            BTreeMap::from([("rack".to_string(), "r1".to_string())]),
            Path::new("/tmp"),
        );
        assert_eq!(reg.netns_prefix, "weft-n1");
        assert_eq!(reg.labels.get("rack").map(String::as_str), Some("r1"));
        assert!(reg.labels.contains_key("os"));
    }
}
