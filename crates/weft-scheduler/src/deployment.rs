//! Rolling updates with Marathon's bounds: replace old tasks by new ones while
//! healthy tasks stay at or above `ceil(instances * minimum_health_capacity)` and all
//! tasks at or below `floor(instances * (1 + maximum_over_capacity))`.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use weft_app::{Duration, UpgradeStrategy};

/// The bounds a deployment keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub min_healthy: u32,
    pub max_total: u32,
}

impl Limits {
    /// Marathon's bounds. When they leave no slack (`min_healthy == max_total`, e.g.
    /// 1 instance at capacity 1.0 / 0.0) nothing could be stopped or started, so, as
    /// Marathon does, one task of temporary over-capacity is allowed.
    pub fn new(instances: u32, strategy: &UpgradeStrategy) -> Self {
        let n = f64::from(instances);
        let clamp = |x: f64| x.clamp(0.0, 1.0);
        // Bounded by `instances * 2`, so the casts are exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let min_healthy = (n * clamp(strategy.minimum_health_capacity) - 1e-9)
            .ceil()
            .max(0.0) as u32;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let max_total = (n * (1.0 + clamp(strategy.maximum_over_capacity)) + 1e-9).floor() as u32;
        let min_healthy = min_healthy.min(instances);
        let max_total = if max_total <= min_healthy {
            min_healthy + 1
        } else {
            max_total
        };
        Self {
            min_healthy,
            max_total,
        }
    }
}

/// A task as a deployment sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentTask {
    pub id: String,
    /// Runs the version being deployed.
    pub is_new: bool,
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum DeploymentStatus {
    InProgress,
    Succeeded,
    /// No progress (an old task gone or a new one healthy) within the deadline.
    Failed {
        reason: String,
    },
    Cancelled,
}

/// A rolling update in progress. Values, not handles: each step returns the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub app: String,
    pub instances: u32,
    pub limits: Limits,
    pub progress_deadline: Duration,
    pub status: DeploymentStatus,
    pub last_progress_at: Timestamp,
    /// (old tasks left, new tasks healthy) when progress was last seen.
    progress_mark: Option<(usize, usize)>,
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentStep {
    /// New-version tasks to launch (placement decides where).
    pub start_new: u32,
    /// Tasks to stop: old ones, or new ones beyond `instances`.
    pub stop: Vec<String>,
}

impl Deployment {
    pub fn new(
        app: &str,
        instances: u32,
        strategy: &UpgradeStrategy,
        progress_deadline: Duration,
        now: Timestamp,
    ) -> Self {
        Self {
            app: app.to_string(),
            instances,
            limits: Limits::new(instances, strategy),
            progress_deadline,
            status: DeploymentStatus::InProgress,
            last_progress_at: now,
            progress_mark: None,
        }
    }

    /// Stops the deployment where it is. Cancelling twice, or a finished one, changes nothing.
    pub fn cancel(&self) -> Self {
        let mut next = self.clone();
        if next.status == DeploymentStatus::InProgress {
            next.status = DeploymentStatus::Cancelled;
        }
        next
    }

    /// The next step given the app's active tasks. Kills are chosen from the healthy
    /// surplus only; starts from the room left under `max_total` *before* those kills
    /// complete, so neither bound is crossed even while stops are in flight.
    pub fn step(&self, tasks: &[DeploymentTask], now: Timestamp) -> (Self, DeploymentStep) {
        let mut next = self.clone();
        if next.status != DeploymentStatus::InProgress {
            return (next, DeploymentStep::default());
        }
        let n = self.instances as usize;
        let limits = self.limits;
        let (new, old): (Vec<&DeploymentTask>, Vec<&DeploymentTask>) =
            tasks.iter().partition(|t| t.is_new);
        let new_healthy = new.iter().filter(|t| t.healthy).count();
        if old.is_empty() && new_healthy >= n && new.len() == n {
            next.status = DeploymentStatus::Succeeded;
            return (next, DeploymentStep::default());
        }

        let mark = (old.len(), new_healthy);
        let progressed = match self.progress_mark {
            None => true,
            Some((old_left, healthy)) => mark.0 < old_left || mark.1 > healthy,
        };
        if progressed {
            next.progress_mark = Some(mark);
            next.last_progress_at = now;
        } else if now.since(self.last_progress_at) > self.progress_deadline {
            next.status = DeploymentStatus::Failed {
                reason: format!(
                    "no progress for {} ({} old task(s) left, {new_healthy} of {n} new healthy)",
                    self.progress_deadline,
                    old.len()
                ),
            };
            return (next, DeploymentStep::default());
        }

        let mut stop = Vec::new();
        // Unhealthy old tasks cost no healthy capacity: always stop them.
        stop.extend(old.iter().filter(|t| !t.healthy).map(|t| t.id.clone()));
        let healthy_now = tasks.iter().filter(|t| t.healthy).count();
        let surplus = healthy_now.saturating_sub(limits.min_healthy as usize);
        let mut healthy_old: Vec<&&DeploymentTask> = old.iter().filter(|t| t.healthy).collect();
        healthy_old.sort_by(|a, b| a.id.cmp(&b.id));
        stop.extend(healthy_old.iter().take(surplus).map(|t| t.id.clone()));
        // New tasks beyond `instances` (the target shrank): unhealthy first.
        if new.len() > n {
            let mut extra: Vec<&&DeploymentTask> = new.iter().collect();
            extra.sort_by(|a, b| a.healthy.cmp(&b.healthy).then_with(|| a.id.cmp(&b.id)));
            let mut budget = surplus.saturating_sub(healthy_old.len().min(surplus));
            for t in extra.into_iter().take(new.len() - n) {
                if t.healthy {
                    if budget == 0 {
                        continue;
                    }
                    budget -= 1;
                }
                stop.push(t.id.clone());
            }
        }
        let room = (limits.max_total as usize).saturating_sub(tasks.len());
        let start_new = n.saturating_sub(new.len()).min(room);
        let step = DeploymentStep {
            start_new: u32::try_from(start_new).unwrap_or(u32::MAX),
            stop,
        };
        (next, step)
    }
}
