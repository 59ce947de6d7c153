//! Typed errors of the agent. Only a bad configuration ends [`crate::run`]; controller
//! trouble is retried and fabric trouble is reported.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("state file {path}: {why}")]
    State { path: PathBuf, why: String },
}
