//! The seed's Figure 9 over DNS (examples/figure9-dns): two masters elect a leader through
//! a Consul session lock at their gateway, three agents find the masters through DNS
//! (`master.service.weft`) and register with the leader; the leader killed, the other
//! master takes the lock and the agents register with it. Root, a real cluster.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod common;

use common::{ProcCluster, wait_until};
use std::process::Command;
use std::time::{Duration, Instant};
use weft_api::{Task, TaskState};

const POLICY: &str = include_str!("../../../examples/figure9-dns/policy.hcl");
const APPS: &str = include_str!("../../../examples/figure9-dns/apps.hcl");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn running(c: &ProcCluster, app: &str, n: usize) -> Vec<Task> {
    wait_until(
        &format!("{n} running task(s) of {app}"),
        Duration::from_secs(40),
        || {
            let all = c.rt.block_on(c.client.tasks(Some(app))).unwrap();
            all.len() == n && all.iter().all(|t| t.status.state == TaskState::Running)
        },
    );
    c.rt.block_on(c.client.tasks(Some(app))).unwrap()
}

/// Waits for `check`; on timeout, fails with every task's output.
fn wait_or_show(c: &ProcCluster, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > limit {
            let mut all = c.rt.block_on(c.client.tasks(None)).unwrap();
            all.sort_by(|a, b| a.id.cmp(&b.id));
            let logs: Vec<String> = all
                .iter()
                .map(|t| format!("--- weft logs {}\n{}", t.id, logs(c, t)))
                .collect();
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `weft logs TASK`: everything the task printed.
fn logs(c: &ProcCluster, task: &Task) -> String {
    let out = c.cli().args(["logs", &task.id]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn registered_all(log: &str, agents: &[Task]) -> bool {
    agents
        .iter()
        .all(|a| log.contains(&format!("registered {} from {}", a.id, a.ip)))
}

/// Who holds `mesos/leader`, read with `weft kv get` through the controller's Consul API
/// as tenant mesos; `None` while nobody does.
fn leader_ip(c: &ProcCluster, consul: &str, token: &str) -> Option<String> {
    let out = c
        .cli()
        .args(["kv", "get", "mesos/leader", "--consul", consul])
        .env("CONSUL_HTTP_TOKEN", token)
        .output()
        .unwrap();
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !value.is_empty()).then_some(value)
}

/// The session holding `mesos/leader`, if any (the raw Consul answer's `Session`).
fn lock_session(c: &ProcCluster, consul: &str, token: &str) -> Option<String> {
    let url = format!("http://{consul}/v1/kv/mesos/leader");
    let body: serde_json::Value =
        c.rt.block_on(async {
            reqwest::Client::new()
                .get(url)
                .header("X-Consul-Token", token)
                .send()
                .await?
                .json()
                .await
        })
        .ok()?;
    body[0]["Session"].as_str().map(str::to_string)
}

#[test]
fn figure9_masters_elect_a_leader_and_agents_find_it_through_dns() {
    require_root!();
    let consul = format!("127.0.0.1:{}", free_port());
    let c = ProcCluster::with_server_args("f9d", &["--consul-listen", &consul]);
    let token = c.rt.block_on(c.client.create_token("mesos")).unwrap().token;
    c.apply(POLICY);
    let apps = weft_app::parse_apps_hcl("apps.hcl", APPS).unwrap();
    weft_app::validate_apps(&apps).unwrap();
    let json: serde_json::Value = serde_json::from_str(&weft_app::apps_to_json(&apps)).unwrap();
    c.rt.block_on(c.client.apply_apps(json)).unwrap();
    let started = Instant::now();
    let masters = running(&c, "master", 2);
    let agents = running(&c, "agent", 3);
    // Nothing is handed over in the environment: the agents find the masters by name.
    for a in &agents {
        let env = a.env.clone().unwrap_or_default();
        assert!(
            env.values()
                .all(|v| !masters.iter().any(|m| v == &m.ip.to_string())),
            "{env:?}"
        );
    }

    // Exactly one master holds the lock: the key names its IP, held by a session, and
    // that master's log says it leads while the other's says it waits.
    let mut leader = None;
    wait_or_show(
        &c,
        "a master to take the lock",
        Duration::from_secs(30),
        || {
            leader = leader_ip(&c, &consul, &token);
            leader.is_some()
        },
    );
    let leader_ip_now = leader.unwrap();
    let (leader, standby): (Vec<&Task>, Vec<&Task>) = masters
        .iter()
        .partition(|m| m.ip.to_string() == leader_ip_now);
    assert_eq!(leader.len(), 1, "{leader_ip_now} is no master: {masters:?}");
    let (leader, standby) = (leader[0].clone(), standby[0].clone());
    let first_session = lock_session(&c, &consul, &token).expect("the key is held by a session");
    eprintln!(
        "{} leads after {:?} (session {first_session})",
        leader.id,
        started.elapsed()
    );
    wait_or_show(
        &c,
        "the three agents registered with the leader",
        Duration::from_secs(30),
        || registered_all(&logs(&c, &leader), &agents),
    );
    eprintln!("three agents registered after {:?}", started.elapsed());
    let log = logs(&c, &leader);
    assert!(log.contains(&format!("{}: leader", leader.id)), "{log}");
    let log = logs(&c, &standby);
    assert!(log.contains(&format!("{}: standby", standby.id)), "{log}");
    assert!(!log.contains("leader (holds"), "{log}");
    assert!(
        !log.contains("registered "),
        "the standby never listens: {log}"
    );

    // The leader's processes killed: its session expires, the standby takes the lock
    // (a new session), and the agents register with it.
    let pids = Command::new("ip")
        .args(["netns", "pids"])
        .arg(c.rt.block_on(c.client.endpoint(&leader.id)).unwrap().netns)
        .output()
        .unwrap();
    let killed = Instant::now();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    let standby_ip = standby.ip.to_string();
    wait_or_show(
        &c,
        "the standby to take the lock",
        Duration::from_secs(25),
        || leader_ip(&c, &consul, &token).as_deref() == Some(standby_ip.as_str()),
    );
    let failover = killed.elapsed();
    let second_session = lock_session(&c, &consul, &token).unwrap();
    assert_ne!(first_session, second_session);
    eprintln!(
        "failover: {} holds the lock {failover:?} after the kill",
        standby.id
    );
    wait_or_show(
        &c,
        "the three agents registered with the new leader",
        Duration::from_secs(20),
        || registered_all(&logs(&c, &standby), &agents),
    );
    let reregistered = killed.elapsed();
    eprintln!("agents registered with the new leader {reregistered:?} after the kill");
    let log = logs(&c, &standby);
    assert!(log.contains(&format!("{}: leader", standby.id)), "{log}");
    // The failover bound of the example: the TTL (10s) after the last renewal (at most
    // 4s before the kill), 1s lock-delay, 2s between attempts; slack for a busy machine.
    assert!(
        failover < Duration::from_secs(16),
        "failover took {failover:?}"
    );
}
