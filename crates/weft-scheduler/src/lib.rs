//! Pure scheduling decisions for weft: where new tasks go ([`place`]), what to kill and
//! launch to keep an app at its instance count ([`reconcile`]), and the next step of a
//! rolling update ([`Deployment`]).
//!
//! Nothing here does I/O, reads a clock or draws entropy: time is an input
//! ([`Timestamp`]) and randomness comes from a seed the caller passes, so the same
//! inputs always give the same decisions.

mod backoff;
mod cluster;
mod constraints;
mod deployment;
mod explain;
mod placement;
mod reconcile;
mod rng;
mod time;

pub use backoff::{RestartState, restart_delay};
pub use cluster::{Node, ResourceKind, Resources, Task, TaskHealth, TaskState};
pub use deployment::{Deployment, DeploymentStatus, DeploymentStep, DeploymentTask, Limits};
pub use explain::{Explanation, NodeVerdict, Rejection};
pub use placement::{Placement, PlacementOptions, PlacementOutcome, Strategy, place};
pub use reconcile::{Decisions, Kill, KillReason, ScaleDownOrder, SupervisionPolicy, reconcile};
pub use rng::SeededRng;
pub use time::Timestamp;
