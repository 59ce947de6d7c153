//! The contract between weft's controller, its agents and its CLI: JSON wire types
//! ([`types`]), route paths ([`paths`]) and a typed client ([`Client`]).
//!
//! Conventions (Consul's, where it has one):
//! - every request except `GET /v1/health` and `GET /v1/openapi.json` carries
//!   `Authorization: Bearer <token>`;
//! - every response that reads state carries `X-Weft-Index: <revision>`; a read with
//!   `?index=N&wait=30s` blocks until the state it reads is newer than `N` (or the wait
//!   ends) — a blocking query;
//! - errors are `4xx`/`5xx` with an [`types::ApiError`] body naming the field at fault.

pub mod apps;
pub mod client;
pub mod discovery;
pub mod paths;
pub mod types;

pub use apps::*;
pub use client::{Client, ClientError};
pub use discovery::*;
pub use types::*;
