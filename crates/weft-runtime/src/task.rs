//! What a task is, and what a runtime reports about it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// One task as the agent hands it to a runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Unique on the node; names the cgroup (`weft/<id>`) and the container (`weft-<id>`).
    pub id: String,
    /// Docker image; `None` for the process runtime.
    pub image: Option<String>,
    /// Process runtime: program and arguments. Docker: replaces the image's CMD if not empty.
    pub command: Vec<String>,
    /// Complete environment, `WEFT_*` included (see [`crate::task_env`]).
    pub env: BTreeMap<String, String>,
    /// CPU quota in cores; 0 = unlimited.
    pub cpus: f64,
    /// Memory limit in MiB, swap included; 0 = unlimited.
    pub mem_mib: u64,
    /// Keep root's capabilities (may change its own addresses and routes).
    pub privileged: bool,
    /// Name under `/run/netns` of the endpoint's network namespace.
    pub netns: String,
    /// Where the task's resolver (`/etc/resolv.conf`) points; see [`crate::resolver`].
    #[serde(default)]
    pub dns: TaskDns,
}

/// Which DNS server a task's `/etc/resolv.conf` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskDns {
    /// The endpoint's gateway (the spec's `WEFT_GATEWAY`), where the node's agent answers
    /// DNS. Without `WEFT_GATEWAY` in the env, the same as [`TaskDns::Host`].
    #[default]
    Gateway,
    /// The node's own resolver configuration, untouched.
    Host,
}

impl TaskSpec {
    /// A host process running `command` in namespace `netns`.
    pub fn process(id: &str, netns: &str, command: &[&str]) -> Self {
        TaskSpec {
            id: id.to_string(),
            image: None,
            command: command.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            cpus: 0.0,
            mem_mib: 0,
            privileged: false,
            netns: netns.to_string(),
            dns: TaskDns::default(),
        }
    }

    /// A container of `image`; an empty `command` keeps the image's CMD.
    pub fn container(id: &str, netns: &str, image: &str, command: &[&str]) -> Self {
        TaskSpec {
            image: Some(image.to_string()),
            ..TaskSpec::process(id, netns, command)
        }
    }

    pub fn with_limits(mut self, cpus: f64, mem_mib: u64) -> Self {
        self.cpus = cpus;
        self.mem_mib = mem_mib;
        self
    }

    pub fn with_env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = env;
        self
    }

    pub fn with_privileged(mut self, privileged: bool) -> Self {
        self.privileged = privileged;
        self
    }

    pub fn with_dns(mut self, dns: TaskDns) -> Self {
        self.dns = dns;
        self
    }

    /// Checks shared by both runtimes.
    pub(crate) fn validate(&self) -> Result<()> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 100
            && !self.id.starts_with('.')
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_ok {
            return Err(RuntimeError::invalid(
                &self.id,
                "task id: 1-100 ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        if !self.cpus.is_finite() || self.cpus < 0.0 {
            return Err(RuntimeError::invalid(
                &self.id,
                "cpus must be a non-negative number",
            ));
        }
        if let Some(bad) = self
            .env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(RuntimeError::invalid(
                &self.id,
                format!("bad env name {bad:?}"),
            ));
        }
        self.nameserver()?;
        crate::netns::check_name(&self.netns)
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskExit {
    /// Exit code, when it exited by itself. Docker reports 128+N for a signal N.
    pub code: Option<i32>,
    /// Signal that killed it (process runtime).
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the task (its memory limit was hit).
    pub oom_killed: bool,
}

impl TaskExit {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.oom_killed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    Running { pid: u32 },
    Exited(TaskExit),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedTask {
    /// Host pid of the task's main process (0 if a container already exited).
    pub pid: u32,
    /// Docker container id.
    pub container_id: Option<String>,
}

/// Output of [`crate::Runtime::exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when it was killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Who creates `/run/netns/<TaskSpec::netns>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetnsOwnership {
    /// The fabric creates and wires the namespace first; the task joins it.
    JoinsExisting,
    /// The runtime creates it with the task and publishes it under that name; the fabric
    /// wires the endpoint into it after `start`, and it disappears at `stop`.
    Publishes,
}
