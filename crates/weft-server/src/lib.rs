//! weft's controller: the REST API of [`weft_api`] over a [`weft_store::KvStore`].
//!
//! [`serve`] binds the listener and returns a [`ServerHandle`]; everything else is internal:
//! - every policy change is merged into the stored model, validated and compiled whole, then
//!   committed with its class allocation in one compare-and-swap transaction ([`admission`]);
//! - one store watch feeds an in-memory snapshot of model, compiled policy, nodes and
//!   endpoints ([`state`]) and a `tokio::sync::watch` that wakes blocking queries ([`watch`]);
//! - tokens are checked by [`auth`]; endpoint addresses come from [`ipam`];
//! - apps and tasks are stored per [`apps`]; the [`scheduler`] loop places, replaces and
//!   rolls tasks with `weft-scheduler`'s decisions, each new task with its endpoint.

mod admission;
mod apps;
mod auth;
mod config;
mod consul;
mod discovery;
mod error;
mod explain;
mod extract;
mod ipam;
mod keys;
mod leader;
mod live_share;
mod liveness;
mod openapi;
mod openstack;
mod routes;
mod scheduler;
mod server;
mod state;
mod task_output;
mod watch;

pub use config::{ConsulSettings, OpenStackSettings, ServerConfig};
pub use error::ServerError;
pub use server::{ServerHandle, serve};
pub use weft_consul::Quota as ConsulQuota;
pub use weft_store::SyncPolicy;
