//! Supervision: from the desired app and what is running, what to kill and launch now.

use crate::backoff::RestartState;
use crate::cluster::{Node, Task, TaskHealth};
use crate::explain::Explanation;
use crate::placement::{Placement, PlacementOptions, place_avoiding};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::HashSet;
use weft_app::{AppSpec, Duration};

/// Which tasks go first when scaling down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScaleDownOrder {
    /// The youngest: long-running tasks are the proven ones (Marathon's default).
    #[default]
    YoungestFirst,
    OldestFirst,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisionPolicy {
    /// A node silent for longer is lost, and its tasks are replaced elsewhere.
    pub heartbeat_deadline: Duration,
    pub scale_down: ScaleDownOrder,
    pub placement: PlacementOptions,
}

impl Default for SupervisionPolicy {
    fn default() -> Self {
        Self {
            heartbeat_deadline: Duration::from_secs(30),
            scale_down: ScaleDownOrder::default(),
            placement: PlacementOptions::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum KillReason {
    /// Its node stopped heartbeating; the task is presumed gone and is replaced.
    NodeLost { node: String },
    /// Health checks failed this many times in a row (past the grace period).
    Unhealthy { consecutive_failures: u32 },
    /// More tasks than `instances`.
    ScaleDown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub task: String,
    pub reason: KillReason,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decisions {
    pub kill: Vec<Kill>,
    pub launch: Vec<Placement>,
    /// Launches wanted but held back by the restart backoff, until this time.
    pub launch_delayed_until: Option<Timestamp>,
    /// Launches wanted that fit nowhere; `explanation` says why.
    pub unplaced: u32,
    pub explanation: Option<Explanation>,
    /// The restart state to keep for the next call.
    pub restarts: RestartState,
}

/// One reconciliation pass over `app`'s `tasks`. Pure: same inputs, same decisions.
pub fn reconcile(
    app: &AppSpec,
    tasks: &[Task],
    nodes: &[Node],
    now: Timestamp,
    restarts: RestartState,
    policy: &SupervisionPolicy,
    seed: u64,
) -> Decisions {
    let lost_nodes: HashSet<&str> = nodes
        .iter()
        .filter(|n| now.since(n.last_heartbeat) > policy.heartbeat_deadline)
        .map(|n| n.name.as_str())
        .collect();
    let known: HashSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let mut restarts = restarts;
    let mut kill = Vec::new();
    let mut survivors: Vec<&Task> = Vec::new();
    for task in tasks.iter().filter(|t| t.state.is_active()) {
        let node = task.node.as_str();
        if lost_nodes.contains(node) || !known.contains(node) {
            kill.push(Kill {
                task: task.id.clone(),
                reason: KillReason::NodeLost {
                    node: task.node.clone(),
                },
            });
        } else if let Some(failures) = replace_for_health(app, task, now) {
            restarts = restarts.record_failure(now);
            kill.push(Kill {
                task: task.id.clone(),
                reason: KillReason::Unhealthy {
                    consecutive_failures: failures,
                },
            });
        } else {
            survivors.push(task);
        }
    }

    let wanted = app.instances as usize;
    if survivors.len() > wanted {
        let mut order = survivors.clone();
        match policy.scale_down {
            ScaleDownOrder::YoungestFirst => {
                order.sort_by_key(|t| (Reverse(t.started_at), Reverse(t.id.clone())));
            }
            ScaleDownOrder::OldestFirst => order.sort_by_key(|t| (t.started_at, t.id.clone())),
        }
        let excess: HashSet<&str> = order[..survivors.len() - wanted]
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        for task in &survivors {
            if excess.contains(task.id.as_str()) {
                kill.push(Kill {
                    task: task.id.clone(),
                    reason: KillReason::ScaleDown,
                });
            }
        }
        survivors.retain(|t| !excess.contains(t.id.as_str()));
    }

    let mut decisions = Decisions {
        kill,
        launch: Vec::new(),
        launch_delayed_until: None,
        unplaced: 0,
        explanation: None,
        restarts,
    };
    let missing = wanted.saturating_sub(survivors.len());
    if missing == 0 {
        return decisions;
    }
    if let Some(at) = restarts.launch_not_before(&app.restart)
        && now < at
    {
        decisions.launch_delayed_until = Some(at);
        return decisions;
    }
    let survivors: Vec<Task> = survivors.into_iter().cloned().collect();
    let outcome = place_avoiding(
        nodes,
        &lost_nodes,
        app,
        &survivors,
        u32::try_from(missing).unwrap_or(u32::MAX),
        &policy.placement,
        seed,
    );
    decisions.launch = outcome.placements;
    decisions.unplaced = outcome.unplaced;
    decisions.explanation = outcome.explanation;
    decisions
}

/// Failures that condemn `task`, if it is past its grace period and has failed its
/// app's `max_consecutive_failures` (0 means never replace) in a row.
fn replace_for_health(app: &AppSpec, task: &Task, now: Timestamp) -> Option<u32> {
    let TaskHealth::Unhealthy {
        consecutive_failures,
    } = task.health
    else {
        return None;
    };
    let limit = app.max_consecutive_failures()?;
    let grace = app
        .health_checks
        .iter()
        .map(|h| h.grace_period)
        .max()
        .unwrap_or_default();
    let past_grace = now >= task.started_at.plus(grace);
    (limit > 0 && consecutive_failures >= limit && past_grace).then_some(consecutive_failures)
}
