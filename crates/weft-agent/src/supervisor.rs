//! One task's life on this node: start, watch, health-check, restart after the app's
//! backoff, stop when told. One tokio task per assigned task, so that a runtime in
//! trouble (a Docker engine that went away) fails only its own tasks.

use crate::health::{self, HealthState};
use crate::tasks::{Reporter, TaskRuntime};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use weft_api::{Health, TaskAssignment, TaskState};
use weft_app::RestartPolicy;
use weft_runtime::{RuntimeError, TaskExit, TaskSpec, TaskStatus as RtStatus};

/// A run that lasted this long resets the restart backoff (unless `2 × max_delay` is
/// shorter).
pub const RESET_AFTER: Duration = Duration::from_secs(60);

/// The delay before relaunch number `failures` (1 = after the first failure):
/// `backoff × backoff_factor^(failures-1)`, capped at `max_delay`.
pub fn restart_delay(policy: &RestartPolicy, failures: u32) -> Duration {
    let base = policy.backoff.as_millis() as f64;
    let cap = policy.max_delay.as_millis() as f64;
    let factor = if policy.backoff_factor.is_finite() && policy.backoff_factor >= 1.0 {
        policy.backoff_factor
    } else {
        1.0
    };
    let exp = i32::try_from(failures.saturating_sub(1).min(10_000)).unwrap_or(10_000);
    let ms = base * factor.powi(exp);
    let ms = if ms.is_finite() { ms.min(cap) } else { cap };
    Duration::from_millis(ms.max(0.0) as u64)
}

/// How long a run must last to reset the backoff.
pub fn reset_after(policy: &RestartPolicy) -> Duration {
    (Duration::from_millis(policy.max_delay.as_millis()) * 2).min(RESET_AFTER)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How a run ended, in words, and the exit code to report (128+N for signal N, as
/// shells and Docker do).
pub fn describe_exit(exit: &TaskExit) -> (Option<i32>, String) {
    let code = exit.code.or(exit.signal.map(|s| 128 + s));
    let why = if exit.oom_killed {
        "killed by the OOM killer (memory limit reached)".to_string()
    } else if let Some(s) = exit.signal {
        format!("killed by signal {s}")
    } else if let Some(c) = exit.code {
        match c {
            // What `sh -c` (and Docker) answer when the program cannot be run.
            127 => "exited with code 127 (command not found)".to_string(),
            126 => "exited with code 126 (command not executable)".to_string(),
            _ => format!("exited with code {c}"),
        }
    } else {
        "ended (no exit status)".to_string()
    };
    (code, why)
}

/// Why a run ended, with the last line it wrote to stderr when it failed (its own words:
/// `exited with code 127 (command not found): sh: 1: exec: busybox: not found`).
pub fn exit_message(exit: &TaskExit, last_error_line: Option<&str>) -> (Option<i32>, String) {
    let (code, why) = describe_exit(exit);
    match last_error_line {
        Some(line) if !exit.success() => (code, format!("{why}: {line}")),
        _ => (code, why),
    }
}

pub(crate) struct Supervisor {
    pub id: String,
    pub assignment: TaskAssignment,
    pub spec: TaskSpec,
    pub runtime: TaskRuntime,
    pub ip: IpAddr,
    pub stop_grace: Duration,
    pub reporter: Arc<Reporter>,
}

enum RunEnd {
    Exited(Result<TaskExit, RuntimeError>),
    Cancelled,
}

async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = cancel.wait_for(|c| *c).await;
}

impl Supervisor {
    /// Supervises until `cancel` turns true; then stops the task (SIGTERM, SIGKILL after
    /// the grace) and returns.
    pub async fn run(self, mut cancel: watch::Receiver<bool>) {
        let policy = self.assignment.spec.restart.clone();
        let mut failures: u32 = 0;
        let mut first = true;
        // Why the last run ended or did not start: said while the next one starts.
        let mut last_failure: Option<String> = None;
        loop {
            let starting = last_failure
                .as_ref()
                .map(|why| format!("restarting; the last run: {why}"));
            self.reporter.update(&self.id, |s| {
                s.state = TaskState::Starting;
                s.health = Health::Unknown;
                s.consecutive_failures = 0;
                s.message = starting;
            });
            match self.start(first).await {
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(task = %self.id, runtime = self.runtime.kind(), error = %e, "task did not start");
                    let why = format!("cannot start: {e}");
                    last_failure = Some(why.clone());
                    self.reporter.update(&self.id, |s| {
                        s.state = TaskState::Failed;
                        s.exit_code = None;
                        s.message = Some(why);
                    });
                }
                Ok(()) => {
                    let up_since = Instant::now();
                    self.reporter.update(&self.id, |s| {
                        s.state = TaskState::Running;
                        s.started_ms = Some(now_ms());
                        s.exit_code = None;
                        s.message = None;
                    });
                    let end = tokio::select! {
                        exit = self.runtime.get().wait(&self.id) => RunEnd::Exited(exit),
                        () = self.health_checks(up_since) => RunEnd::Exited(Err(RuntimeError::UnknownTask(self.id.clone()))),
                        () = cancelled(&mut cancel) => RunEnd::Cancelled,
                    };
                    match end {
                        RunEnd::Cancelled => {
                            self.stop().await;
                            return;
                        }
                        RunEnd::Exited(exit) => {
                            if up_since.elapsed() >= reset_after(&policy) {
                                failures = 0;
                            }
                            failures = failures.saturating_add(1);
                            last_failure = Some(self.after_exit(exit).await);
                        }
                    }
                }
            }
            first = false;
            let delay = restart_delay(&policy, failures);
            tracing::info!(task = %self.id, ?delay, failures, "task restarts after its backoff");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancelled(&mut cancel) => {
                    self.stop().await;
                    return;
                }
            }
            self.reporter
                .update(&self.id, |s| s.restarts = s.restarts.saturating_add(1));
        }
    }

    /// Prepares and starts one run. A Docker container left running by an earlier agent
    /// is adopted on the first attempt; a process task's leftovers (an earlier agent
    /// crashed: its children cannot be adopted) are killed first.
    async fn start(&self, first: bool) -> Result<(), RuntimeError> {
        let rt = self.runtime.get();
        match &self.runtime {
            TaskRuntime::Docker(_) => match rt.status(&self.id).await {
                Ok(RtStatus::Running { pid }) if first => {
                    tracing::info!(task = %self.id, pid, "adopted a running container");
                    self.reporter.request_reapply();
                    return Ok(());
                }
                Ok(_) => {
                    // An exited container of this task: remove it (and its namespace).
                    let _ = rt.stop(&self.id, Duration::ZERO).await;
                }
                Err(RuntimeError::UnknownTask(_)) => {
                    // No container: a namespace under the endpoint's name is not one of
                    // a container's; the fabric's, of an existing endpoint (a port) the
                    // task now runs in. The container brings its own, and the fabric
                    // plumbs the endpoint into that.
                    if weft_runtime::netns::netns_path(&self.spec.netns).exists() {
                        tracing::info!(task = %self.id, netns = %self.spec.netns, "removing the endpoint's namespace: the container publishes its own");
                        weft_runtime::netns::unpublish(&self.spec.netns)?;
                    }
                }
                Err(e) => return Err(e),
            },
            TaskRuntime::Process(p) => {
                let dirs = p.cgroup_dirs(&self.id);
                let killed = tokio::task::spawn_blocking(move || kill_leftovers(&dirs))
                    .await
                    .unwrap_or(0);
                if killed > 0 {
                    tracing::warn!(task = %self.id, killed, "killed processes an earlier agent left in the task's cgroup");
                }
            }
        }
        let started = rt.start(&self.spec).await?;
        tracing::info!(task = %self.id, pid = started.pid, runtime = rt.kind(), netns = %self.spec.netns, "task started");
        if matches!(self.runtime, TaskRuntime::Docker(_)) {
            // Its namespace was just published: the fabric must plumb the endpoint now.
            self.reporter.request_reapply();
        }
        Ok(())
    }

    /// Reports the run's end (with the last line of its stderr when it failed) and
    /// releases it; returns the message.
    async fn after_exit(&self, exit: Result<TaskExit, RuntimeError>) -> String {
        let (code, why) = match &exit {
            Ok(e) => {
                // Read before `stop`, which removes a container and its logs.
                let line = if e.success() {
                    None
                } else {
                    self.runtime.get().last_error_line(&self.id).await
                };
                exit_message(e, line.as_deref())
            }
            Err(e) => (None, format!("lost track of the task: {e}")),
        };
        tracing::warn!(task = %self.id, code = ?code, "{why}");
        let message = why.clone();
        self.reporter.update(&self.id, |s| {
            s.state = TaskState::Failed;
            s.health = Health::Unknown;
            s.exit_code = code;
            s.message = Some(message);
        });
        // Releases the runtime's record (and, for Docker, the container and namespace).
        match self.runtime.get().stop(&self.id, Duration::ZERO).await {
            Ok(_) | Err(RuntimeError::UnknownTask(_)) => {}
            Err(e) => tracing::warn!(task = %self.id, error = %e, "cannot release the exited task"),
        }
        why
    }

    async fn stop(&self) {
        self.reporter
            .update(&self.id, |s| s.state = TaskState::Stopping);
        match self.runtime.get().stop(&self.id, self.stop_grace).await {
            Ok(exit) => {
                let (code, why) = describe_exit(&exit);
                tracing::info!(task = %self.id, code = ?code, "task stopped ({why})");
            }
            Err(RuntimeError::UnknownTask(_)) => {}
            Err(e) => tracing::warn!(task = %self.id, error = %e, "cannot stop task"),
        }
    }

    /// Runs the app's health checks for this run; never returns (it ends with the run).
    async fn health_checks(&self, started: Instant) {
        let checks = &self.assignment.spec.health_checks;
        if checks.is_empty() {
            return std::future::pending().await;
        }
        let mut state = HealthState::new(checks, started);
        let mut next: Vec<Instant> = checks
            .iter()
            .map(|c| started + health::timings(c).0)
            .collect();
        loop {
            let Some(due) = next.iter().min().copied() else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(due.into()).await;
            let now = Instant::now();
            for (i, check) in checks.iter().enumerate() {
                if next[i] > now {
                    continue;
                }
                let result = health::probe(
                    check,
                    self.runtime.get(),
                    &self.id,
                    &self.spec.netns,
                    self.ip,
                )
                .await;
                if let Err(e) = &result {
                    tracing::debug!(task = %self.id, check = ?check.kind, error = %e, "health check failed");
                }
                state.record(i, result.is_ok(), Instant::now());
                next[i] = Instant::now() + health::timings(check).0;
                let (health, failures) = (state.health(), state.consecutive_failures());
                let message = result.err().map(|e| format!("health check: {e}"));
                self.reporter.update(&self.id, |s| {
                    if s.health != health {
                        tracing::info!(task = %self.id, ?health, failures, "task health changed");
                    }
                    s.health = health;
                    s.consecutive_failures = failures;
                    s.message = if health == Health::Unhealthy {
                        message
                    } else {
                        None
                    };
                });
            }
        }
    }
}

/// SIGKILLs every process in the given cgroup directories and waits (up to 2 s) until
/// they are gone. Returns how many were signalled.
pub(crate) fn kill_leftovers(dirs: &[std::path::PathBuf]) -> usize {
    let pids = |dir: &std::path::Path| -> Vec<i32> {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    };
    let mut killed = 0;
    for dir in dirs {
        for pid in pids(dir) {
            if nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
            {
                killed += 1;
            }
        }
    }
    if killed > 0 {
        let deadline = Instant::now() + Duration::from_secs(2);
        while dirs.iter().any(|d| !pids(d).is_empty()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff_ms: u64, factor: f64, max_ms: u64) -> RestartPolicy {
        RestartPolicy {
            backoff: weft_app::Duration::from_millis(backoff_ms),
            backoff_factor: factor,
            max_delay: weft_app::Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn backoff_grows_by_the_factor_and_is_capped() {
        let p = policy(1000, 2.0, 5000);
        let d: Vec<u128> = (1..=5).map(|n| restart_delay(&p, n).as_millis()).collect();
        assert_eq!(d, vec![1000, 2000, 4000, 5000, 5000]);
        assert_eq!(restart_delay(&p, 0).as_millis(), 1000);
        assert_eq!(restart_delay(&p, u32::MAX).as_millis(), 5000);
        // A nonsensical factor never shrinks the delay.
        assert_eq!(
            restart_delay(&policy(100, f64::NAN, 1000), 3).as_millis(),
            100
        );
        assert_eq!(restart_delay(&policy(100, 0.5, 1000), 3).as_millis(), 100);
        assert_eq!(reset_after(&p), Duration::from_secs(10));
        assert_eq!(reset_after(&RestartPolicy::default()), RESET_AFTER);
    }

    #[test]
    fn exits_are_described() {
        let e = |code, signal, oom_killed| TaskExit {
            code,
            signal,
            oom_killed,
        };
        assert_eq!(describe_exit(&e(Some(3), None, false)).0, Some(3));
        let (code, why) = describe_exit(&e(None, Some(9), false));
        assert_eq!(code, Some(137));
        assert!(why.contains("signal 9"));
        assert!(describe_exit(&e(None, Some(9), true)).1.contains("OOM"));
        assert_eq!(
            exit_message(
                &e(Some(127), None, false),
                Some("sh: 1: exec: busybox: not found")
            ),
            (
                Some(127),
                "exited with code 127 (command not found): sh: 1: exec: busybox: not found"
                    .to_string()
            )
        );
        assert_eq!(
            exit_message(&e(Some(126), None, false), None).1,
            "exited with code 126 (command not executable)"
        );
        // A clean exit is not explained by what it last wrote to stderr.
        assert_eq!(
            exit_message(&e(Some(0), None, false), Some("warning: x")).1,
            "exited with code 0"
        );
    }
}
