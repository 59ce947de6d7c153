//! Capped exponential backoff with jitter.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay (before jitter).
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

/// Delays double from `initial` up to `max`; each is drawn uniformly from
/// `[d/2, d]` ("equal jitter") so that agents restarted together do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
    random: fn() -> u64,
}

fn os_random() -> u64 {
    // A fresh RandomState is seeded from the OS: good enough for jitter.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x7765_6674);
    h.finish()
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Self::with_random(config, os_random)
    }

    /// With a chosen source of randomness (tests).
    pub fn with_random(config: BackoffConfig, random: fn() -> u64) -> Self {
        Self {
            config,
            attempt: 0,
            random,
        }
    }

    /// The ceiling of the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.config
            .initial
            .checked_mul(factor)
            .unwrap_or(self.config.max)
            .min(self.config.max)
    }

    /// The next delay; every call doubles the ceiling until it reaches the cap.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let span = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = if span == 0 {
            0
        } else {
            (self.random)() % (span + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// After a success: start again from `initial`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }

    #[test]
    fn doubles_then_caps() {
        let mut b = Backoff::with_random(cfg(), || u64::MAX);
        let ceilings: Vec<u128> = (0..10)
            .map(|_| {
                let c = b.ceiling();
                b.next_delay();
                c.as_millis()
            })
            .collect();
        assert_eq!(
            ceilings,
            vec![100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000]
        );
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(10));
        }
    }

    #[test]
    fn jitter_stays_within_half_and_full_ceiling() {
        let mut low = Backoff::with_random(cfg(), || 0);
        let mut high = Backoff::with_random(cfg(), || u64::MAX - 1);
        for _ in 0..12 {
            let ceiling = low.ceiling();
            let (l, h) = (low.next_delay(), high.next_delay());
            assert_eq!(l, ceiling / 2);
            assert!(h >= ceiling / 2 && h <= ceiling, "{h:?} vs {ceiling:?}");
        }
        let mut real = Backoff::new(cfg());
        for _ in 0..50 {
            let ceiling = real.ceiling();
            let d = real.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling);
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::with_random(cfg(), || 0);
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_delay(), Duration::from_millis(50));
    }
}
