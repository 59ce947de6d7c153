//! Supervision decisions: scale up/down, lost nodes, unhealthy tasks, backoff.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use weft_app::{Duration, HealthCheck, HealthCheckKind, RestartPolicy};
use weft_scheduler::{
    KillReason, RestartState, SupervisionPolicy, TaskHealth, Timestamp, reconcile, restart_delay,
};

const NOW: Timestamp = Timestamp(1_000_000);

fn fresh_nodes() -> Vec<weft_scheduler::Node> {
    (0..4)
        .map(|i| {
            let mut n = node(&format!("n{i}"), 8000, 8192, "r");
            n.last_heartbeat = NOW;
            n
        })
        .collect()
}

#[test]
fn scales_up_onto_distinct_hosts() {
    let a = app("agent", 1.0, 256, 3, vec![unique_hostname()]);
    let d = reconcile(
        &a,
        &[task("t0", "n0", 0)],
        &fresh_nodes(),
        NOW,
        RestartState::default(),
        &SupervisionPolicy::default(),
        1,
    );
    assert!(d.kill.is_empty());
    assert_eq!(d.launch.len(), 2);
    assert!(d.launch.iter().all(|p| p.node != "n0"));
}

#[test]
fn scales_down_youngest_first() {
    let a = app("a", 1.0, 256, 1, vec![]);
    let tasks = [
        task("old", "n0", 10),
        task("young", "n1", 30),
        task("mid", "n2", 20),
    ];
    let d = reconcile(
        &a,
        &tasks,
        &fresh_nodes(),
        NOW,
        RestartState::default(),
        &SupervisionPolicy::default(),
        1,
    );
    let killed: Vec<_> = d
        .kill
        .iter()
        .map(|k| (k.task.as_str(), &k.reason))
        .collect();
    assert_eq!(
        killed,
        vec![
            ("young", &KillReason::ScaleDown),
            ("mid", &KillReason::ScaleDown)
        ]
    );
    assert!(d.launch.is_empty());
}

#[test]
fn replaces_tasks_of_silent_nodes_elsewhere() {
    let mut nodes = fresh_nodes();
    nodes[0].last_heartbeat = Timestamp(NOW.0 - 31_000);
    let a = app("a", 1.0, 256, 1, vec![]);
    let d = reconcile(
        &a,
        &[task("t0", "n0", 0)],
        &nodes,
        NOW,
        RestartState::default(),
        &SupervisionPolicy::default(),
        1,
    );
    assert_eq!(d.kill[0].reason, KillReason::NodeLost { node: "n0".into() });
    assert_eq!(d.launch.len(), 1);
    assert_ne!(d.launch[0].node, "n0");
}

#[test]
fn replaces_unhealthy_tasks_after_grace_and_backs_off() {
    let mut a = app("a", 1.0, 256, 1, vec![]);
    let mut check = HealthCheck::new(HealthCheckKind::Tcp);
    check.port = Some(80);
    check.grace_period = Duration::from_secs(60);
    check.max_consecutive_failures = 3;
    a.health_checks = vec![check];
    a.restart = RestartPolicy {
        backoff: Duration::from_secs(1),
        backoff_factor: 2.0,
        max_delay: Duration::from_secs(60),
    };
    let mut sick = task("t0", "n0", NOW.0 - 120_000);
    sick.health = TaskHealth::Unhealthy {
        consecutive_failures: 3,
    };
    let policy = SupervisionPolicy::default();
    // Third failure in a row of the app: delay 1s * 2^2 = 4s.
    let before = RestartState {
        failures: 2,
        last_failure_at: Some(Timestamp(0)),
    };
    let d = reconcile(
        &a,
        std::slice::from_ref(&sick),
        &fresh_nodes(),
        NOW,
        before,
        &policy,
        1,
    );
    assert_eq!(
        d.kill[0].reason,
        KillReason::Unhealthy {
            consecutive_failures: 3
        }
    );
    assert_eq!(d.restarts.failures, 3);
    assert_eq!(d.launch_delayed_until, Some(Timestamp(NOW.0 + 4_000)));
    assert!(d.launch.is_empty());
    // Within the grace period the same failures do not count.
    sick.started_at = Timestamp(NOW.0 - 10_000);
    let d = reconcile(
        &a,
        &[sick],
        &fresh_nodes(),
        NOW,
        RestartState::default(),
        &policy,
        1,
    );
    assert!(d.kill.is_empty());
}

#[test]
fn backoff_grows_and_caps() {
    let p = RestartPolicy {
        backoff: Duration::from_secs(1),
        backoff_factor: 2.0,
        max_delay: Duration::from_secs(60),
    };
    let delays: Vec<u64> = (0..9)
        .map(|n| restart_delay(&p, n).as_millis() / 1000)
        .collect();
    assert_eq!(delays, vec![0, 1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(restart_delay(&p, u32::MAX), Duration::from_secs(60));
}

#[test]
fn unplaceable_launches_are_explained() {
    let a = app("huge", 100.0, 256, 2, vec![]);
    let d = reconcile(
        &a,
        &[],
        &fresh_nodes(),
        NOW,
        RestartState::default(),
        &SupervisionPolicy::default(),
        1,
    );
    assert_eq!(d.unplaced, 2);
    assert!(
        d.explanation
            .unwrap()
            .to_string()
            .contains("not enough cpus")
    );
}
