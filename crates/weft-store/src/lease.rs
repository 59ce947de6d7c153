//! Lease deadlines and the clock they are measured with.
//!
//! Granted leases and their TTLs are persisted; deadlines are not (as in etcd): they live in
//! memory and restart at open, so a restart extends every lease by up to one TTL rather than
//! expiring them all while the controller was down.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::types::LeaseId;

/// Source of "now" for lease expiry; injectable so tests control time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    base: Instant,
    offset: Arc<Mutex<Duration>>,
}

impl ManualClock {
    pub fn new() -> Self {
        ManualClock {
            base: Instant::now(),
            offset: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut offset = lock(&self.offset);
        *offset += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + *lock(&self.offset)
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain data; the data is
/// still usable, so recover instead of propagating the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone, Copy)]
struct LiveLease {
    ttl: Duration,
    deadline: Instant,
}

/// In-memory deadlines of all live leases. Keep-alives only touch this table, so they cost no
/// disk write; the writer thread removes leases from it when it revokes or expires them.
#[derive(Debug)]
pub(crate) struct LeaseDeadlines {
    clock: Arc<dyn Clock>,
    leases: Mutex<HashMap<LeaseId, LiveLease>>,
}

impl LeaseDeadlines {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        LeaseDeadlines {
            clock,
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// Starts (or restarts) the lease's countdown from now.
    pub(crate) fn start(&self, id: LeaseId, ttl: Duration) {
        let deadline = self.clock.now() + ttl;
        lock(&self.leases).insert(id, LiveLease { ttl, deadline });
    }

    /// Restarts the countdown of a live lease; returns its TTL, or `None` if it is gone.
    pub(crate) fn keep_alive(&self, id: LeaseId) -> Option<Duration> {
        let now = self.clock.now();
        let mut leases = lock(&self.leases);
        let lease = leases.get_mut(&id)?;
        // An expired lease is dead even if the expiry tick has not revoked it yet.
        if lease.deadline <= now {
            return None;
        }
        lease.deadline = now + lease.ttl;
        Some(lease.ttl)
    }

    /// Granted TTL and remaining time of a live lease.
    pub(crate) fn time_left(&self, id: LeaseId) -> Option<(Duration, Duration)> {
        let now = self.clock.now();
        let leases = lock(&self.leases);
        let lease = leases.get(&id)?;
        Some((lease.ttl, lease.deadline.saturating_duration_since(now)))
    }

    pub(crate) fn forget(&self, id: LeaseId) {
        lock(&self.leases).remove(&id);
    }

    /// Removes and returns every lease whose deadline has passed, oldest deadline first.
    /// Removing them here makes concurrent keep-alives fail instead of silently losing a race
    /// with the revoke.
    pub(crate) fn take_expired(&self) -> Vec<LeaseId> {
        let now = self.clock.now();
        let mut leases = lock(&self.leases);
        let mut expired: Vec<(Instant, LeaseId)> = leases
            .iter()
            .filter(|(_, lease)| lease.deadline <= now)
            .map(|(id, lease)| (lease.deadline, *id))
            .collect();
        expired.sort_unstable();
        for (_, id) in &expired {
            leases.remove(id);
        }
        expired.into_iter().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_drives_expiry() {
        let clock = ManualClock::new();
        let deadlines = LeaseDeadlines::new(Arc::new(clock.clone()));
        deadlines.start(1, Duration::from_secs(10));
        deadlines.start(2, Duration::from_secs(5));
        clock.advance(Duration::from_secs(4));
        assert_eq!(deadlines.keep_alive(2), Some(Duration::from_secs(5)));
        // Lease 2 now ends at 9s, lease 1 at 10s.
        clock.advance(Duration::from_secs(4));
        assert!(deadlines.take_expired().is_empty());
        assert_eq!(
            deadlines.time_left(2),
            Some((Duration::from_secs(5), Duration::from_secs(1)))
        );
        clock.advance(Duration::from_secs(2));
        assert_eq!(
            deadlines.take_expired(),
            vec![2, 1],
            "oldest deadline first"
        );
        assert_eq!(deadlines.keep_alive(1), None);
        assert_eq!(deadlines.time_left(2), None);
    }
}
