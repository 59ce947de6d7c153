//! What the scheduler sees of the cluster: nodes with resources, and an app's tasks.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use weft_app::AppSpec;

/// CPU in thousandths of a core and memory/disk in MiB: integers, so that sums never
/// drift and "never over-allocate" is exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millis: u64,
    pub mem_mib: u64,
    pub disk_mib: u64,
}

impl Resources {
    pub fn new(cpu_millis: u64, mem_mib: u64, disk_mib: u64) -> Self {
        Self {
            cpu_millis,
            mem_mib,
            disk_mib,
        }
    }

    /// What one task of `app` needs.
    pub fn of_app(app: &AppSpec) -> Self {
        // Validated specs have 0.001 <= cpus; the cast saturates for absurd values.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cpu_millis = (app.cpus * 1000.0).round() as u64;
        Self::new(cpu_millis, app.mem, app.disk)
    }

    pub fn saturating_sub(self, other: Self) -> Self {
        Self::new(
            self.cpu_millis.saturating_sub(other.cpu_millis),
            self.mem_mib.saturating_sub(other.mem_mib),
            self.disk_mib.saturating_sub(other.disk_mib),
        )
    }

    pub fn saturating_add(self, other: Self) -> Self {
        Self::new(
            self.cpu_millis.saturating_add(other.cpu_millis),
            self.mem_mib.saturating_add(other.mem_mib),
            self.disk_mib.saturating_add(other.disk_mib),
        )
    }

    /// True if every dimension of `need` fits in `self`.
    pub fn fits(self, need: Self) -> bool {
        need.cpu_millis <= self.cpu_millis
            && need.mem_mib <= self.mem_mib
            && need.disk_mib <= self.disk_mib
    }
}

/// A resource dimension, for explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Cpu,
    Mem,
    Disk,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpus",
            Self::Mem => "mem",
            Self::Disk => "disk",
        })
    }
}

/// A node as its agent last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// Labels for constraints (`rack`, `zone`, ...). `hostname` defaults to `name`.
    pub attributes: BTreeMap<String, String>,
    pub total: Resources,
    /// Everything already allocated on the node, this app's tasks included.
    pub allocated: Resources,
    /// The agent says it accepts tasks (not draining, not cordoned).
    pub ready: bool,
    pub last_heartbeat: Timestamp,
}

impl Node {
    pub fn new(name: &str, total: Resources) -> Self {
        Self {
            name: name.to_string(),
            attributes: BTreeMap::new(),
            total,
            allocated: Resources::default(),
            ready: true,
            last_heartbeat: Timestamp::default(),
        }
    }

    pub fn with_attribute(mut self, key: &str, value: &str) -> Self {
        self.attributes.insert(key.to_string(), value.to_string());
        self
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(v) => Some(v),
            None if key == "hostname" => Some(&self.name),
            None => None,
        }
    }

    pub fn free(&self) -> Resources {
        self.total.saturating_sub(self.allocated)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Staging,
    Running,
    Finished,
    Failed,
    Killed,
    Lost,
}

impl TaskState {
    /// Staging or running: the task holds resources and counts toward `instances`.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Staging | Self::Running)
    }
}

/// What health checks say. A task of an app without health checks is healthy when running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum TaskHealth {
    /// No verdict yet (starting, or inside its grace period).
    #[default]
    Unknown,
    Healthy,
    Unhealthy {
        consecutive_failures: u32,
    },
}

/// One task of the app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub node: String,
    pub state: TaskState,
    pub health: TaskHealth,
    pub started_at: Timestamp,
}
