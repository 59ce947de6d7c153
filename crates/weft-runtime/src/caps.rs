//! Privilege per task (open problem 4 of the paper): an unprivileged task keeps only a small,
//! Docker-like capability set. Everything that changes network config (`CAP_NET_ADMIN`),
//! opens raw sockets (`CAP_NET_RAW`) or escapes namespaces (`CAP_SYS_ADMIN`) is dropped from
//! the bounding, inheritable and ambient sets, and `no_new_privs` stops setuid binaries and
//! file capabilities from giving anything back. A privileged task keeps root's capabilities.

use std::io;

/// Capabilities an unprivileged task keeps: Docker's default set without `NET_RAW` and
/// `MKNOD`. Names are Docker's spelling (no `CAP_` prefix); numbers are the kernel's.
pub const UNPRIVILEGED_CAPS: [(&str, u32); 12] = [
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("FOWNER", 3),
    ("FSETID", 4),
    ("KILL", 5),
    ("SETGID", 6),
    ("SETUID", 7),
    ("SETPCAP", 8),
    ("NET_BIND_SERVICE", 10),
    ("SYS_CHROOT", 18),
    ("AUDIT_WRITE", 29),
    ("SETFCAP", 31),
];

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_ADMIN: u32 = 21;

/// Bit mask of [`UNPRIVILEGED_CAPS`].
pub fn unprivileged_mask() -> u64 {
    UNPRIVILEGED_CAPS
        .iter()
        .fold(0u64, |mask, (_, bit)| mask | (1u64 << bit))
}

/// Docker `HostConfig.cap_add` for an unprivileged task (with `cap_drop = ["ALL"]`).
pub fn docker_cap_add() -> Vec<String> {
    UNPRIVILEGED_CAPS
        .iter()
        .map(|(name, _)| (*name).to_string())
        .collect()
}

/// Kernel capability names in number order (Docker's spelling), up to `AUDIT_READ` (37):
/// the newest ones (`PERFMON`, `BPF`, `CHECKPOINT_RESTORE`) are unknown to older engines.
const DOCKER_CAP_NAMES: [&str; 38] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
];

/// How a privileged container gets its privileges on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerPrivilege {
    /// `HostConfig.privileged = true`.
    Full,
    /// The node itself runs with a reduced bounding set (e.g. inside another container), so
    /// `privileged` would fail with "unable to apply caps": add every capability the node has.
    NodeCaps(Vec<String>),
}

/// Decides [`DockerPrivilege`] from this process's bounding set (the agent runs as root
/// beside dockerd, so it sees the same limit).
pub fn docker_privilege() -> DockerPrivilege {
    let bounding = ProcessCaps::read(std::process::id())
        .map(|c| c.bounding)
        .unwrap_or(u64::MAX);
    let last_cap = CapDropPlan::unprivileged().last_cap;
    let all = if last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (last_cap + 1)) - 1
    };
    if bounding & all == all {
        return DockerPrivilege::Full;
    }
    DockerPrivilege::NodeCaps(
        DOCKER_CAP_NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
            .map(|(_, name)| (*name).to_string())
            .collect(),
    )
}

/// What the child does between fork and exec; computed in the parent so the child only
/// makes system calls (no allocation after fork in a multi-threaded parent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CapDropPlan {
    keep_mask: u64,
    last_cap: u32,
}

impl CapDropPlan {
    pub(crate) fn unprivileged() -> Self {
        // Kernels newer than the constant list know more capabilities: drop them all too.
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40)
            .min(63);
        CapDropPlan {
            keep_mask: unprivileged_mask(),
            last_cap,
        }
    }

    /// Runs in the forked child, before exec. Only system calls: async-signal-safe.
    #[allow(unsafe_code)]
    pub(crate) fn apply_in_child(&self) -> io::Result<()> {
        for cap in 0..=self.last_cap {
            if self.keep_mask & (1u64 << cap) != 0 {
                continue;
            }
            // SAFETY: prctl with plain integer arguments touches no memory of ours.
            let rc =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
            // EINVAL: the kernel does not know this capability number; nothing to drop.
            if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: as above, integer arguments only.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(io::Error::last_os_error());
        }
        // Inheritable capabilities survive a bounding-set drop across exec, so clear them and
        // trim effective/permitted to the kept set as well.
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // SAFETY: header and data are valid, properly sized buffers for capget v3 (2 words).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_capget,
                &mut header as *mut CapHeader,
                data.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        for (word, d) in data.iter_mut().enumerate() {
            let keep = (self.keep_mask >> (32 * word)) as u32;
            d.effective &= keep;
            d.permitted &= keep;
            d.inheritable = 0;
        }
        // SAFETY: same buffers, now read by the kernel.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_capset,
                &mut header as *mut CapHeader,
                data.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Capability sets of a running process, read from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessCaps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
    pub no_new_privs: bool,
}

impl ProcessCaps {
    pub fn has(&self, cap: u32) -> bool {
        self.effective & (1u64 << cap) != 0
    }

    pub fn read(pid: u32) -> io::Result<Self> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/status"))?)
    }

    pub fn parse(status: &str) -> io::Result<Self> {
        let field = |name: &str| -> io::Result<u64> {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {name}")))?;
            u64::from_str_radix(line.trim(), 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        };
        Ok(ProcessCaps {
            effective: field("CapEff:")?,
            permitted: field("CapPrm:")?,
            inheritable: field("CapInh:")?,
            bounding: field("CapBnd:")?,
            ambient: field("CapAmb:").unwrap_or(0),
            no_new_privs: field("NoNewPrivs:").unwrap_or(0) == 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprivileged_set_has_no_network_or_admin_caps() {
        let mask = unprivileged_mask();
        for cap in [CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN] {
            assert_eq!(mask & (1 << cap), 0, "cap {cap} must be dropped");
        }
        assert_ne!(mask & (1 << 10), 0, "NET_BIND_SERVICE is kept");
        assert!(!docker_cap_add().iter().any(|c| c.contains("NET_ADMIN")));
    }

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tsh\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n\
                      CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n\
                      NoNewPrivs:\t1\n";
        let caps = ProcessCaps::parse(status).expect("parse");
        assert_eq!(caps.bounding, 0xa80425fb);
        assert!(caps.no_new_privs);
        assert!(!caps.has(CAP_NET_ADMIN));
        assert!(caps.has(0));
    }
}
