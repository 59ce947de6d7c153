//! Why tasks are pending: per node, each resource that lacked (have vs need) and each
//! constraint that failed. Drives `weft app why-pending ID`.

use crate::cluster::{ResourceKind, Resources};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Rejection {
    /// The agent does not accept tasks (draining or not yet ready).
    NotReady,
    /// The node's heartbeat is older than the deadline.
    Unreachable,
    Insufficient {
        resource: ResourceKind,
        have: u64,
        need: u64,
    },
    Constraint {
        constraint: String,
        detail: String,
    },
}

impl Rejection {
    /// The reason without node-specific figures, for grouping.
    fn kind(&self) -> String {
        match self {
            Self::NotReady => "not ready".into(),
            Self::Unreachable => "unreachable (heartbeat past deadline)".into(),
            Self::Insufficient { resource, need, .. } => {
                format!("not enough {resource} (need {})", amount(*resource, *need))
            }
            Self::Constraint { constraint, .. } => format!("constraint {constraint}"),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Insufficient {
                resource,
                have,
                need,
            } => write!(
                f,
                "not enough {resource}: have {}, need {}",
                amount(*resource, *have),
                amount(*resource, *need)
            ),
            Self::Constraint { constraint, detail } => {
                write!(f, "constraint {constraint}: {detail}")
            }
            other => f.write_str(&other.kind()),
        }
    }
}

fn amount(resource: ResourceKind, value: u64) -> String {
    match resource {
        ResourceKind::Cpu => format!("{}", value as f64 / 1000.0),
        ResourceKind::Mem | ResourceKind::Disk => format!("{value} MiB"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeVerdict {
    pub node: String,
    /// Empty only if the node had room when the search ended (should not happen).
    pub reasons: Vec<Rejection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub app: String,
    /// What one task needs.
    pub need: Resources,
    pub unplaced: u32,
    pub nodes: Vec<NodeVerdict>,
}

impl Explanation {
    /// How many nodes refused for each kind of reason, most common first.
    pub fn summary(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for verdict in &self.nodes {
            for r in &verdict.reasons {
                *counts.entry(r.kind()).or_default() += 1;
            }
        }
        let mut out: Vec<_> = counts.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// The verdict on one node.
    pub fn node(&self, name: &str) -> Option<&NodeVerdict> {
        self.nodes.iter().find(|v| v.node == name)
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "app {}: {} task(s) pending; each needs cpus {}, mem {} MiB, disk {} MiB",
            self.app,
            self.unplaced,
            amount(ResourceKind::Cpu, self.need.cpu_millis),
            self.need.mem_mib,
            self.need.disk_mib
        )?;
        if self.nodes.is_empty() {
            return writeln!(f, "  no nodes are registered");
        }
        for (kind, count) in self.summary() {
            writeln!(f, "  {count} of {} node(s): {kind}", self.nodes.len())?;
        }
        for verdict in &self.nodes {
            let reasons: Vec<String> = verdict.reasons.iter().map(ToString::to_string).collect();
            writeln!(f, "  {}: {}", verdict.node, reasons.join("; "))?;
        }
        Ok(())
    }
}
