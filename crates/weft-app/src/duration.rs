//! Durations written as Nomad and Marathon users write them: `"10s"`, `"500ms"`, `"1m30s"`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A span of time with millisecond resolution (health checks and backoffs need no finer).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Duration {
    millis: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a duration: {reason} (write e.g. \"10s\", \"500ms\", \"1m30s\"; units ms, s, m, h)"
)]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

impl Duration {
    pub const ZERO: Self = Self { millis: 0 };

    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    pub const fn from_secs(secs: u64) -> Self {
        Self {
            millis: secs.saturating_mul(1000),
        }
    }

    pub const fn as_millis(self) -> u64 {
        self.millis
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DurationError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(fail("it is empty"));
        }
        let mut rest = input;
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(fail("expected a whole number before each unit"));
            }
            let (number, tail) = rest.split_at(digits);
            let number: u64 = number
                .parse()
                .map_err(|_| fail("the number is too large"))?;
            let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
            if unit_len == 0 {
                return Err(fail("a unit is missing"));
            }
            let (unit, tail) = tail.split_at(unit_len);
            let scale = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return Err(fail("unknown unit")),
            };
            total = number
                .checked_mul(scale)
                .and_then(|part| total.checked_add(part))
                .ok_or_else(|| fail("the number is too large"))?;
            rest = tail;
        }
        Ok(Self { millis: total })
    }
}

impl fmt::Display for Duration {
    /// The canonical spelling, which parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.millis;
        for (unit, scale) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if rest >= scale {
                write!(f, "{}{unit}", rest / scale)?;
                rest %= scale;
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for Duration {
    type Error = DurationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Duration> for String {
    fn from(d: Duration) -> String {
        d.to_string()
    }
}
