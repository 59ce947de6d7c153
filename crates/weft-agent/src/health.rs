//! Health checks of a running task, run from inside its endpoint's namespace: what the
//! task's peers see, not what the host sees.
//!
//! * `tcp`: a connection to `<task ip>:<port>` opened by a thread that entered the
//!   endpoint's namespace (the socket keeps that namespace);
//! * `http`: the same connection, `GET <path>` (HTTP/1.0), a 2xx or 3xx status passes;
//! * `command`: `sh -c <command>` through [`weft_runtime::Runtime::exec`], with the task's
//!   own namespace, cgroup and privileges; exit status 0 passes.
//!
//! Every check is bounded by its `timeout`. Failures during the `grace_period` after a
//! start do not count until the task has once been healthy (Marathon's rule). The agent
//! only reports `health` and `consecutive_failures`: the controller decides replacement.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use weft_api::Health;
use weft_app::{HealthCheck, HealthCheckKind};
use weft_runtime::{Runtime, RuntimeError};

/// Why one check failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{kind:?} health check needs a port")]
    NoPort { kind: HealthCheckKind },
    #[error("command health check has no command")]
    NoCommand,
    #[error("namespace {netns}: {why}")]
    Netns { netns: String, why: String },
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("http {addr}{path}: {why}")]
    Http {
        addr: SocketAddr,
        path: String,
        why: String,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("command: {0}")]
    Exec(#[source] RuntimeError),
    #[error("command exited with {0:?}")]
    ExitCode(Option<i32>),
}

fn std_duration(d: weft_app::Duration) -> Duration {
    Duration::from_millis(d.as_millis())
}

/// The check's interval, timeout and grace period as std durations (a zero interval is
/// read as 1 s, so that a check never spins).
pub fn timings(check: &HealthCheck) -> (Duration, Duration, Duration) {
    let interval = std_duration(check.interval);
    let interval = if interval.is_zero() {
        Duration::from_secs(1)
    } else {
        interval
    };
    let timeout = std_duration(check.timeout).max(Duration::from_millis(10));
    (interval, timeout, std_duration(check.grace_period))
}

/// Runs one check of task `task` (endpoint namespace `netns`, address `ip`).
pub async fn probe(
    check: &HealthCheck,
    runtime: &dyn Runtime,
    task: &str,
    netns: &str,
    ip: IpAddr,
) -> Result<(), ProbeError> {
    let (_, timeout, _) = timings(check);
    match check.kind {
        HealthCheckKind::Tcp | HealthCheckKind::Http => {
            let port = check.port.ok_or(ProbeError::NoPort { kind: check.kind })?;
            let addr = SocketAddr::new(ip, port);
            let path = (check.kind == HealthCheckKind::Http)
                .then(|| check.path.clone().unwrap_or_else(|| "/".to_string()));
            let netns = netns.to_string();
            let job =
                tokio::task::spawn_blocking(move || connect_probe(&netns, addr, path, timeout));
            // The blocking probe bounds itself; this is a second fence.
            match tokio::time::timeout(timeout * 2 + Duration::from_secs(1), job).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(ProbeError::Netns {
                    netns: "?".into(),
                    why: format!("probe thread: {e}"),
                }),
                Err(_) => Err(ProbeError::Timeout(timeout)),
            }
        }
        HealthCheckKind::Command => {
            let command = check.command.as_deref().ok_or(ProbeError::NoCommand)?;
            let argv = ["sh".to_string(), "-c".to_string(), command.to_string()];
            match tokio::time::timeout(timeout, runtime.exec(task, &argv, timeout)).await {
                Ok(Ok(out)) if out.success() => Ok(()),
                Ok(Ok(out)) => Err(ProbeError::ExitCode(out.exit_code)),
                Ok(Err(RuntimeError::ExecTimeout { .. })) | Err(_) => {
                    Err(ProbeError::Timeout(timeout))
                }
                Ok(Err(e)) => Err(ProbeError::Exec(e)),
            }
        }
    }
}

/// TCP connect from inside `netns`; with `path`, one HTTP GET on that connection.
fn connect_probe(
    netns: &str,
    addr: SocketAddr,
    path: Option<String>,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    let stream =
        weft_fabric::netns::in_netns(netns, move || TcpStream::connect_timeout(&addr, timeout))
            .map_err(|e| ProbeError::Netns {
                netns: netns.to_string(),
                why: e.to_string(),
            })?
            .map_err(|source| ProbeError::Connect { addr, source })?;
    let Some(path) = path else {
        return Ok(());
    };
    let http = |why: String| ProbeError::Http {
        addr,
        path: path.clone(),
        why,
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(10));
    let mut stream = stream;
    stream
        .set_read_timeout(Some(left))
        .and_then(|()| stream.set_write_timeout(Some(left)))
        .map_err(|e| http(e.to_string()))?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: weft-agent\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| http(format!("send: {e}")))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(http(format!("read: {e}"))),
        }
    }
    let code = status_code(&head).ok_or_else(|| http("no HTTP status line".into()))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(http(format!("status {code}")))
    }
}

/// The status of an HTTP/1.x response head.
fn status_code(head: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// What the checks of one run of a task have seen.
#[derive(Debug, Clone)]
pub struct HealthState {
    started: Instant,
    ever_healthy: bool,
    /// Per check: consecutive counted failures, and whether it has passed since the start.
    checks: Vec<(u32, Option<bool>)>,
    grace: Vec<Duration>,
}

impl HealthState {
    pub fn new(checks: &[HealthCheck], started: Instant) -> Self {
        Self {
            started,
            ever_healthy: false,
            checks: vec![(0, None); checks.len()],
            grace: checks.iter().map(|c| timings(c).2).collect(),
        }
    }

    /// Records the result of check `i` at `now`.
    pub fn record(&mut self, i: usize, ok: bool, now: Instant) {
        let in_grace = !self.ever_healthy
            && now.saturating_duration_since(self.started)
                < self.grace.get(i).copied().unwrap_or_default();
        let Some(c) = self.checks.get_mut(i) else {
            return;
        };
        if ok {
            *c = (0, Some(true));
        } else if !in_grace {
            *c = (c.0.saturating_add(1), Some(false));
        }
        if self.health() == Health::Healthy {
            self.ever_healthy = true;
        }
    }

    /// Unhealthy if any check failed (outside the grace period) last; healthy once
    /// every check has passed last; unknown before that.
    pub fn health(&self) -> Health {
        if self.checks.iter().any(|c| c.1 == Some(false)) {
            Health::Unhealthy
        } else if !self.checks.is_empty() && self.checks.iter().all(|c| c.1 == Some(true)) {
            Health::Healthy
        } else {
            Health::Unknown
        }
    }

    /// The longest run of counted failures among the checks.
    pub fn consecutive_failures(&self) -> u32 {
        self.checks.iter().map(|c| c.0).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(grace_ms: u64) -> HealthCheck {
        let mut c = HealthCheck::new(HealthCheckKind::Tcp);
        c.grace_period = weft_app::Duration::from_millis(grace_ms);
        c
    }

    #[test]
    fn grace_period_hides_failures_until_first_healthy() {
        let t0 = Instant::now();
        let mut h = HealthState::new(&[check(1000)], t0);
        h.record(0, false, t0 + Duration::from_millis(100));
        assert_eq!((h.health(), h.consecutive_failures()), (Health::Unknown, 0));
        h.record(0, false, t0 + Duration::from_millis(1500));
        h.record(0, false, t0 + Duration::from_millis(1600));
        assert_eq!(
            (h.health(), h.consecutive_failures()),
            (Health::Unhealthy, 2)
        );
        h.record(0, true, t0 + Duration::from_millis(1700));
        assert_eq!((h.health(), h.consecutive_failures()), (Health::Healthy, 0));

        // Once healthy, the grace period no longer hides failures.
        let mut h = HealthState::new(&[check(10_000)], t0);
        h.record(0, true, t0);
        h.record(0, false, t0 + Duration::from_millis(1));
        assert_eq!(
            (h.health(), h.consecutive_failures()),
            (Health::Unhealthy, 1)
        );
    }

    #[test]
    fn several_checks_combine() {
        let t0 = Instant::now();
        let mut h = HealthState::new(&[check(0), check(0)], t0);
        h.record(0, true, t0);
        assert_eq!(h.health(), Health::Unknown);
        h.record(1, true, t0);
        assert_eq!(h.health(), Health::Healthy);
        h.record(1, false, t0);
        h.record(1, false, t0);
        h.record(0, false, t0);
        assert_eq!(
            (h.health(), h.consecutive_failures()),
            (Health::Unhealthy, 2)
        );
        assert_eq!(HealthState::new(&[], t0).health(), Health::Unknown);
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 302 Found\r\nLocation: /"), Some(302));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }
}
