//! weft's node agent.
//!
//! One agent runs per node. It stays in the host namespace for its control connection
//! and programs its node's namespaces through the fabric's namespace-bound operations:
//!
//! 1. restores the last applied desired state from `state_dir` (if any) and reconciles
//!    it at once, so that a restart without a controller keeps enforcing and tears
//!    nothing down;
//! 2. registers its node (resources, labels) with the join token and heartbeats; a
//!    wrong address or a rejected token is logged and retried with capped exponential
//!    backoff with jitter, never fatal;
//! 3. watches its desired state with the blocking query, makes sure every local
//!    endpoint's namespace exists, reconciles the fabric, saves what it applied
//!    (write, fsync, rename) and reports what is installed;
//! 4. runs the node's tasks ([`tasks`]): starts each only after the reconcile that
//!    installed its endpoint (Docker: container first, then the reconcile that plumbs
//!    it), supervises and restarts them with the app's backoff ([`supervisor`]),
//!    health-checks them from their endpoint's namespace ([`health`]), stops those that
//!    leave the desired state, and reports every change of state or health at once.
//!
//! 5. serves discovery at every VRF gateway of its node ([`gateway`]): DNS from the
//!    controller's discovery view, kept on disk, and Consul's HTTP API forwarded to the
//!    controller, reads answered stale when it is down; and runs the Consul HTTP and TCP
//!    checks that aim at its endpoints from their VRF namespace ([`gateway_probes`]).
//!
//! The loop is written against two traits, [`Controller`] and [`NodeOps`], so that it
//! is tested with fakes; [`run`] wires in the real client and fabric.

pub mod agent;
pub mod backoff;
pub mod config;
pub mod controller;
pub mod convert;
pub mod error;
pub mod gateway;
pub mod gateway_http;
pub mod gateway_probes;
pub mod health;
pub mod host;
pub mod node;
pub mod output;
pub mod persist;
pub mod supervisor;
pub mod tasks;

pub use agent::{AgentEvent, run, run_with};
pub use backoff::{Backoff, BackoffConfig};
pub use config::{AgentConfig, ApiConfig};
pub use controller::{Controller, ControllerError};
pub use error::AgentError;
pub use gateway::GatewayConfig;
pub use host::{default_netns_prefix, detect_resources, host_labels, registration};
pub use node::{NodeOps, SystemNode};
pub use tasks::{TaskError, TaskSettings, Tasks};
