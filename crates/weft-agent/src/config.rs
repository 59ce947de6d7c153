//! What the agent is told at start.

use crate::agent::AgentEvent;
use crate::backoff::BackoffConfig;
use crate::error::AgentError;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use weft_api::NodeRegistration;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The controller's URL, like `http://127.0.0.1:7070`.
    pub server: String,
    pub join_token: String,
    /// What the agent says about its node (see [`crate::detect_resources`]).
    pub registration: NodeRegistration,
    /// Where the last applied desired state is kept (survives agent restarts).
    pub state_dir: PathBuf,
    /// Where the fabric keeps what it installed per VRF namespace.
    pub fabric_state_dir: PathBuf,
    pub heartbeat_every: Duration,
    /// The installed state is reported again every this many heartbeats (the
    /// controller keeps reports in memory only).
    pub report_every: u32,
    /// How long one blocking query for the desired state may wait.
    pub watch_wait: Duration,
    /// Retries after controller errors.
    pub backoff: BackoffConfig,
    /// Where process tasks' stdout and stderr go when their assignment names no
    /// `log_dir` (`<dir>/<task id>/stdout.log`, `stderr.log`). Default `<state_dir>/tasks`.
    pub task_log_dir: PathBuf,
    /// The Docker engine's socket (Docker tasks).
    pub docker_socket: String,
    /// How often the Docker engine's images are listed; they are sent to the controller
    /// when the set changed (and once per registration). Zero: never.
    pub images_every: Duration,
    /// Between SIGTERM and SIGKILL when a task is stopped.
    pub task_stop_grace: Duration,
    /// The agent's own executable, for spare task processes (see
    /// [`weft_runtime::spare`]); `None` = every process task starts directly.
    pub task_shim: Option<PathBuf>,
    /// Warm containers for Docker tasks: a statically linked busybox and how many per
    /// image and limits (see [`weft_runtime::docker_spare`]); `None`: every container
    /// starts cold.
    pub docker_spares: Option<(PathBuf, usize)>,
    /// Discovery at the VRF gateways (DNS, Consul's HTTP API); `None`: not served.
    pub gateway: Option<crate::gateway::GatewayConfig>,
    /// Receives what the agent does (tests, the dev cluster); `None` = nobody listens.
    pub events: Option<UnboundedSender<AgentEvent>>,
    /// The agent's own API (its tasks' output for the controllers, see
    /// [`crate::output`]); `None`: it serves none.
    pub api: Option<ApiConfig>,
}

/// Where the agent's API listens and how controllers reach it.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: std::net::SocketAddr,
    /// The URL controllers use (`http://HOST:PORT`), when the listening address is not
    /// reachable as it is (`0.0.0.0`, NAT); default `http://<bound address>`. It goes
    /// into the node's registration (`api`).
    pub advertise: Option<String>,
    /// A bind failure stops the agent (the address was asked for); otherwise the agent
    /// runs on without an API, with a warning.
    pub required: bool,
}

impl AgentConfig {
    /// A configuration with the defaults: heartbeat every 5 s, report every 3rd
    /// heartbeat, 30 s blocking queries, backoff from 0.5 s up to 10 s.
    pub fn new(
        server: impl Into<String>,
        join_token: impl Into<String>,
        registration: NodeRegistration,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        let state_dir: PathBuf = state_dir.into();
        Self {
            task_log_dir: state_dir.join("tasks"),
            gateway: Some(crate::gateway::GatewayConfig::new(&state_dir)),
            docker_socket: weft_runtime::docker::DEFAULT_SOCKET.to_string(),
            task_stop_grace: Duration::from_secs(10),
            images_every: Duration::from_secs(10),
            task_shim: None,
            docker_spares: None,
            server: server.into(),
            join_token: join_token.into(),
            registration,
            state_dir,
            fabric_state_dir: PathBuf::from(weft_fabric::state::DEFAULT_DIR),
            heartbeat_every: Duration::from_secs(5),
            report_every: 3,
            watch_wait: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
            events: None,
            api: None,
        }
    }

    /// Checks what can be checked before anything runs.
    pub fn validate(&self) -> Result<(), AgentError> {
        let bad = |why: String| Err(AgentError::Config(why));
        let reg = &self.registration;
        // Also a path component (the node's cgroup scope): "." and ".." are out.
        if reg.name.is_empty()
            || reg.name.chars().all(|c| c == '.')
            || !reg
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad(format!(
                "node name {:?}: use ASCII letters, digits, '-', '_' and '.' (not only dots)",
                reg.name
            ));
        }
        if let Err(e) = weft_fabric::names::check_netns_name(&reg.netns_prefix) {
            return bad(format!("netns prefix: {e}"));
        }
        if !(self.server.starts_with("http://") || self.server.starts_with("https://")) {
            return bad(format!(
                "server {:?} must be a URL like http://127.0.0.1:7070",
                self.server
            ));
        }
        if self.heartbeat_every.is_zero() || self.watch_wait.is_zero() {
            return bad("heartbeat and watch intervals must be positive".into());
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return bad("backoff: 0 < initial <= max".into());
        }
        Ok(())
    }
}
