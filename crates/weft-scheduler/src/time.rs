//! Time is an input: callers pass `now`; nothing here reads a clock.

use serde::{Deserialize, Serialize};
use weft_app::Duration;

/// Milliseconds since an epoch the caller chooses (usually the Unix epoch).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_millis()))
    }

    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}
