//! Restart backoff: a crashing app is relaunched ever more slowly, up to a cap.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use weft_app::{Duration, RestartPolicy};

/// The delay before the next launch after `failures` consecutive failures:
/// `backoff * backoff_factor^(failures - 1)`, capped at `max_delay`; none without failures.
pub fn restart_delay(policy: &RestartPolicy, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let max = policy.max_delay.as_millis();
    // Past ~1100 doublings f64 is infinite anyway; the exponent cast cannot overflow.
    let exponent = i32::try_from(failures - 1).unwrap_or(i32::MAX).min(2048);
    let delay = policy.backoff.as_millis() as f64 * policy.backoff_factor.powi(exponent);
    if !delay.is_finite() || delay >= max as f64 {
        return Duration::from_millis(max);
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Duration::from_millis(delay.round() as u64)
}

/// An app's consecutive task failures, kept by the caller between reconciliations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartState {
    pub failures: u32,
    pub last_failure_at: Option<Timestamp>,
}

impl RestartState {
    pub fn record_failure(self, now: Timestamp) -> Self {
        Self {
            failures: self.failures.saturating_add(1),
            last_failure_at: Some(now),
        }
    }

    /// A task stayed healthy: the backoff starts over.
    pub fn reset(self) -> Self {
        Self::default()
    }

    /// When launches may resume, if they must wait.
    pub fn launch_not_before(&self, policy: &RestartPolicy) -> Option<Timestamp> {
        let at = self.last_failure_at?;
        Some(at.plus(restart_delay(policy, self.failures)))
    }
}
