//! Typed errors of both runtimes. The agent matches on [`RuntimeError::EngineUnavailable`]
//! to report a dead Docker engine on the node while it keeps serving its other tasks.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("task {task}: invalid spec: {why}")]
    InvalidSpec { task: String, why: String },

    #[error("task {0} is not known to this runtime")]
    UnknownTask(String),

    #[error("task {0} already exists")]
    TaskExists(String),

    #[error("network namespace {name}: {why}")]
    Netns { name: String, why: String },

    #[error("cgroups: {0}")]
    CgroupUnavailable(String),

    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("task {task}: cannot start {program}: {source}")]
    Spawn {
        task: String,
        program: String,
        #[source]
        source: io::Error,
    },

    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("task {task}: exec did not finish within {timeout:?}")]
    ExecTimeout { task: String, timeout: Duration },

    /// The Docker engine is absent, its socket is stale, or it stopped answering.
    #[error("docker engine at {socket} is unavailable: {source}")]
    EngineUnavailable {
        socket: String,
        #[source]
        source: bollard::errors::Error,
    },

    #[error("image {0} is not present on this node")]
    ImageNotFound(String),

    /// The engine answered, but refused the request.
    #[error("docker engine refused {what}: {source}")]
    Engine {
        what: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
}

impl RuntimeError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RuntimeError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(task: &str, why: impl Into<String>) -> Self {
        RuntimeError::InvalidSpec {
            task: task.to_string(),
            why: why.into(),
        }
    }
}
