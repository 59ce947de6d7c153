//! Apps end to end on a real two-node cluster: the controller schedules, agents run
//! process tasks in their endpoints' namespaces (one per network of a task), real
//! packets check the policy. Root.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod common;

use common::docker::build_busybox_image;
use common::{ProcCluster, THREE_TIER, wait_until};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use weft_api::{App, DeploymentState, Health, Task, TaskState};
use weft_fabric::probe;

/// One cluster at a time: the suite's timing bounds assume a machine not shared with
/// another cluster of this file.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn apply_apps(c: &ProcCluster, hcl: &str) {
    let apps = weft_app::parse_apps_hcl("apps.hcl", hcl).unwrap();
    weft_app::validate_apps(&apps).unwrap();
    let json: serde_json::Value = serde_json::from_str(&weft_app::apps_to_json(&apps)).unwrap();
    c.rt.block_on(c.client.apply_apps(json)).unwrap();
}

fn tasks(c: &ProcCluster, app: &str) -> Vec<Task> {
    c.rt.block_on(c.client.tasks(Some(app))).unwrap()
}

fn app(c: &ProcCluster, id: &str) -> App {
    c.rt.block_on(c.client.app(id)).unwrap()
}

fn running(c: &ProcCluster, app: &str) -> Vec<Task> {
    tasks(c, app)
        .into_iter()
        .filter(|t| t.status.state == TaskState::Running)
        .collect()
}

fn wait_running(c: &ProcCluster, app: &str, n: usize, limit: Duration) -> Vec<Task> {
    wait_until(&format!("{n} running task(s) of {app}"), limit, || {
        let all = tasks(c, app);
        all.len() == n && all.iter().all(|t| t.status.state == TaskState::Running)
    });
    running(c, app)
}

fn netns_of(c: &ProcCluster, task: &str) -> String {
    c.rt.block_on(c.client.endpoint(task)).unwrap().netns
}

/// A long-running process task in `epg`.
fn sleeper(id: &str, instances: u32, epg: &str, extra: &str) -> String {
    format!(
        "app \"{id}\" {{\n  instances = {instances}\n  cmd = \"exec sleep 1000000\"\n  cpus = 0.05\n  mem = 16\n  epg = \"{epg}\"\n{extra}}}\n"
    )
}

const FIGURE9_POLICY: &str = include_str!("../../../examples/figure9/policy.hcl");
const FIGURE9_APPS: &str = include_str!("../../../examples/figure9/apps.hcl");

#[test]
fn figure9_agents_find_their_master_through_the_environment() {
    require_root!();
    let _one = serial();
    let c = ProcCluster::new("f9");
    c.apply(FIGURE9_POLICY);
    apply_apps(&c, FIGURE9_APPS);
    let master = wait_running(&c, "master", 1, Duration::from_secs(30)).remove(0);
    let agents = wait_running(&c, "agent", 3, Duration::from_secs(30));
    for a in &agents {
        let env = a.env.as_ref().unwrap();
        assert_eq!(env.get("MASTER"), Some(&master.ip.to_string()), "{a:?}");
    }
    // The master printed each registration it received: every agent, by name and IP.
    let mut log = String::new();
    let started = std::time::Instant::now();
    while !agents
        .iter()
        .all(|a| log.contains(&format!("registered {} from {}", a.id, a.ip)))
    {
        if started.elapsed() > Duration::from_secs(30) {
            let mut agent_logs = String::new();
            for a in &agents {
                let out = c.cli().args(["logs", &a.id]).output().unwrap();
                agent_logs += &format!(
                    "--- {} ({:?}):\n{}{}\n",
                    a.id,
                    a.status.state,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            panic!("three registrations not in the master's log after 30 s:\n{log}\n{agent_logs}");
        }
        std::thread::sleep(Duration::from_millis(100));
        let out = c.cli().args(["logs", &master.id]).output().unwrap();
        log = String::from_utf8_lossy(&out.stdout).into_owned();
    }
}

#[test]
fn scale_converges_and_stops_the_youngest_first() {
    require_root!();
    let _one = serial();
    let c = ProcCluster::new("sc");
    c.apply(THREE_TIER);
    apply_apps(&c, &sleeper("web", 1, "shop/store/web", ""));
    wait_running(&c, "web", 1, Duration::from_secs(30));
    c.rt.block_on(c.client.scale_app("web", 5)).unwrap();
    let five = wait_running(&c, "web", 5, Duration::from_secs(30));
    let mut by_age: Vec<&Task> = five.iter().collect();
    by_age.sort_by_key(|t| (t.created_ms, t.id.clone()));
    let oldest: Vec<String> = by_age.iter().take(2).map(|t| t.id.clone()).collect();

    c.rt.block_on(c.client.scale_app("web", 2)).unwrap();
    wait_until("web back to 2 tasks", Duration::from_secs(30), || {
        tasks(&c, "web").len() == 2
    });
    let mut left: Vec<String> = tasks(&c, "web").into_iter().map(|t| t.id).collect();
    left.sort();
    let mut expected = oldest.clone();
    expected.sort();
    assert_eq!(
        left, expected,
        "scale down must stop the youngest tasks first"
    );
    // The stopped tasks' processes are gone: their endpoints' namespaces are removed.
    for t in five.iter().filter(|t| !oldest.contains(&t.id)) {
        wait_until(
            "a stopped task's namespace to go",
            Duration::from_secs(20),
            || {
                !weft_fabric::netns::list_with_prefix(&c.bed.tag)
                    .iter()
                    .any(|ns| ns.ends_with(&format!("-ep-{}", t.id)))
            },
        );
    }
}

#[test]
fn a_killed_task_is_restarted_with_backoff_and_counted() {
    require_root!();
    let _one = serial();
    let c = ProcCluster::new("rs");
    c.apply(THREE_TIER);
    let restart = "  restart {\n    backoff = \"2s\"\n    backoff_factor = 2.0\n    max_delay = \"10s\"\n  }\n";
    apply_apps(&c, &sleeper("web", 1, "shop/store/web", restart));
    let task = wait_running(&c, "web", 1, Duration::from_secs(30)).remove(0);
    let ns = netns_of(&c, &task.id);

    let killed_at = Instant::now();
    let pids = std::process::Command::new("ip")
        .args(["netns", "pids", &ns])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&pids.stdout).into_owned();
    assert!(!pids.trim().is_empty(), "the task runs no process in {ns}");
    for pid in pids.split_whitespace() {
        std::process::Command::new("kill")
            .args(["-9", pid])
            .status()
            .unwrap();
    }
    wait_until("the task to be restarted", Duration::from_secs(30), || {
        tasks(&c, "web").iter().any(|t| {
            t.id == task.id && t.status.restarts >= 1 && t.status.state == TaskState::Running
        })
    });
    let after = killed_at.elapsed();
    assert!(
        after >= Duration::from_millis(1900),
        "restarted after {after:?}, before the 2 s backoff"
    );
}

#[test]
fn a_failing_health_check_replaces_the_task() {
    require_root!();
    let _one = serial();
    let c = ProcCluster::new("hc");
    c.apply(THREE_TIER);
    let check = "  health_check {\n    type = \"tcp\"\n    port = 9\n    grace_period = \"1s\"\n    interval = \"1s\"\n    timeout = \"500ms\"\n    max_consecutive_failures = 2\n  }\n";
    apply_apps(&c, &sleeper("web", 1, "shop/store/web", check));
    let first = wait_until_some(&c, "web");
    // Task ids may be reused: a replacement is a task created after the first one.
    wait_until(
        "the unhealthy task to be replaced",
        Duration::from_secs(40),
        || {
            tasks(&c, "web")
                .iter()
                .any(|t| t.created_ms > first.created_ms)
        },
    );
    let seen = tasks(&c, "web");
    assert!(
        seen.iter().all(|t| t.created_ms != first.created_ms),
        "the unhealthy task is still there: {seen:?}"
    );
}

fn wait_until_some(c: &ProcCluster, app: &str) -> Task {
    let mut found = None;
    wait_until(&format!("a task of {app}"), Duration::from_secs(30), || {
        found = tasks(c, app).into_iter().next();
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn tasks_move_to_the_other_node_when_an_agent_stops() {
    require_root!();
    let _one = serial();
    let mut c = ProcCluster::new("mv");
    c.apply(THREE_TIER);
    apply_apps(&c, &sleeper("web", 4, "shop/store/web", ""));
    let before = wait_running(&c, "web", 4, Duration::from_secs(30));
    // The scheduler bin-packs: the tasks share a node, whichever its seed picked.
    // Stop the agent of a node that runs tasks; they must move to the other.
    let (from, to) = if before.iter().any(|t| t.node == "com2") {
        ("com2", "com1")
    } else {
        ("com1", "com2")
    };

    let stopped = Instant::now();
    c.kill_agent(from);
    // Bound: the node deadline (10 s) plus the controller's replacement deadline (15 s)
    // plus a start on the other node.
    let bound = Duration::from_secs(45);
    wait_until(&format!("every task on {to}"), bound, || {
        let now = running(&c, "web");
        now.len() == 4 && now.iter().all(|t| t.node == to)
    });
    eprintln!(
        "tasks moved {:?} after the agent stopped (bound {bound:?})",
        stopped.elapsed()
    );

    // The killed agent's processes outlived it (a task is its own session). Back up,
    // the agent kills those of tasks no longer assigned to it: no task runs twice.
    let scope = c.bed.node(from).unwrap().vrf_netns_prefix.clone();
    let orphans = || -> Vec<i32> {
        before
            .iter()
            .filter(|t| t.node == from)
            .flat_map(|t| {
                let procs = format!("/sys/fs/cgroup/cpu/weft/{scope}/{}/cgroup.procs", t.id);
                std::fs::read_to_string(procs)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    };
    let cgroup_v1 = std::path::Path::new("/sys/fs/cgroup/cpu/weft").exists();
    if cgroup_v1 {
        assert!(
            !orphans().is_empty(),
            "the killed agent's tasks should still run"
        );
    }
    c.start_agent(from);
    if cgroup_v1 {
        wait_until("the orphans killed", Duration::from_secs(20), || {
            orphans().is_empty()
        });
    }
}

#[test]
fn a_rolling_update_never_drops_below_minimum_health_capacity() {
    require_root!();
    let _one = serial();
    let c = ProcCluster::new("ru");
    c.apply(THREE_TIER);
    let strategy = "  upgrade_strategy {\n    minimum_health_capacity = 0.5\n    maximum_over_capacity = 0.25\n  }\n";
    apply_apps(&c, &sleeper("web", 4, "shop/store/web", strategy));
    let old = wait_running(&c, "web", 4, Duration::from_secs(30));
    let old_version = old[0].version;

    let changed = sleeper("web", 4, "shop/store/web", strategy)
        .replace("exec sleep 1000000", "exec sleep 2000000");
    apply_apps(&c, &changed);
    let start = Instant::now();
    let mut min_healthy = usize::MAX;
    let mut max_total = 0;
    loop {
        let now = tasks(&c, "web");
        let healthy = now
            .iter()
            .filter(|t| {
                t.status.state == TaskState::Running && t.status.health != Health::Unhealthy
            })
            .count();
        min_healthy = min_healthy.min(healthy);
        max_total = max_total.max(now.len());
        let done = now.len() == 4
            && now
                .iter()
                .all(|t| t.version > old_version && t.status.state == TaskState::Running);
        if done {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the update did not finish: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        min_healthy >= 2,
        "healthy tasks fell to {min_healthy} (minimum capacity 0.5 of 4)"
    );
    assert!(
        max_total <= 5,
        "{max_total} tasks at once (maximum over-capacity 0.25 of 4)"
    );
    // The controller marks the deployment on its next step after the last task runs.
    wait_until("the deployment succeeded", Duration::from_secs(10), || {
        app(&c, "web")
            .deployment
            .is_some_and(|d| d.state == DeploymentState::Succeeded)
    });
}

#[test]
fn an_impossible_constraint_stays_pending_with_the_reason() {
    require_root!();
    let _one = serial();
    let c = ProcCluster::new("ic");
    c.apply(THREE_TIER);
    let constraint = "  constraint {\n    attribute = \"hostname\"\n    operator = \"=\"\n    value = \"nowhere\"\n  }\n";
    apply_apps(&c, &sleeper("web", 2, "shop/store/web", constraint));
    wait_until("an explanation", Duration::from_secs(20), || {
        !app(&c, "web").pending.is_empty()
    });
    let why = app(&c, "web").pending.join("\n");
    assert!(why.contains("hostname"), "{why}");
    assert!(
        tasks(&c, "web").is_empty(),
        "nothing may run half-configured"
    );
    let out = c
        .cli()
        .args(["app", "why-pending", "web"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("hostname"));
}

#[test]
fn two_apps_in_different_epgs_are_held_to_the_policy() {
    require_root!();
    let _one = serial();
    let c = ProcCluster::new("ep");
    c.apply(THREE_TIER);
    let apps = format!(
        "{}{}",
        "app \"front\" {\n  instances = 1\n  cmd = \"exec busybox nc -ll -p 80 -e /bin/cat\"\n  cpus = 0.05\n  mem = 16\n  epg = \"shop/store/web\"\n}\n",
        "app \"back\" {\n  instances = 1\n  cmd = \"exec busybox nc -ll -p 8080 -e /bin/cat\"\n  cpus = 0.05\n  mem = 16\n  epg = \"shop/store/app\"\n}\n"
    );
    apply_apps(&c, &apps);
    let front = wait_running(&c, "front", 1, Duration::from_secs(30)).remove(0);
    let back = wait_running(&c, "back", 1, Duration::from_secs(30)).remove(0);
    let (front_ns, back_ns) = (netns_of(&c, &front.id), netns_of(&c, &back.id));
    wait_until(
        "front -> back tcp/8080 (the contract)",
        Duration::from_secs(10),
        || probe::tcp_connect(&front_ns, back.ip, 8080).is_ok(),
    );
    assert!(
        probe::tcp_connect(&back_ns, front.ip, 80).is_err(),
        "back -> front must be blocked"
    );
    assert!(
        probe::tcp_connect(&front_ns, back.ip, 80).is_err(),
        "front -> back on another port must be blocked"
    );
}

/// The agents here start process tasks on spare processes (the default): privilege per
/// app holds there too, as does the task's own environment and log.
#[test]
fn privilege_is_per_app_on_spare_processes() {
    require_root!();
    let _one = serial();
    let c = ProcCluster::new("pv");
    c.apply(THREE_TIER);
    let cmd = "ip addr add 10.9.9.9/32 dev weft0 && echo addr-ok || echo addr-denied; ip link set dev weft0 mtu 1400 && echo link-ok || echo link-denied; echo app=$WEFT_APP; exec sleep 1000000";
    let apps = format!(
        "app \"plain\" {{\n  instances = 1\n  cmd = \"{cmd}\"\n  cpus = 0.05\n  mem = 16\n  epg = \"shop/store/web\"\n}}\n\
         app \"root\" {{\n  instances = 1\n  cmd = \"{cmd}\"\n  cpus = 0.05\n  mem = 16\n  epg = \"shop/store/web\"\n  privileged = true\n}}\n"
    );
    apply_apps(&c, &apps);
    let plain = wait_running(&c, "plain", 1, Duration::from_secs(30)).remove(0);
    let root = wait_running(&c, "root", 1, Duration::from_secs(30)).remove(0);
    let log_of = |task: &str| {
        let out = c.cli().args(["logs", task]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until("both tasks tried", Duration::from_secs(10), || {
        log_of(&plain.id).contains("app=") && log_of(&root.id).contains("app=")
    });
    let (p, r) = (log_of(&plain.id), log_of(&root.id));
    assert!(
        p.contains("addr-denied") && p.contains("link-denied") && p.contains("app=plain"),
        "{p}"
    );
    assert!(
        r.contains("addr-ok") && r.contains("link-ok") && r.contains("app=root"),
        "{r}"
    );
    // Both started on spares: the agents logged the path.
    let agent_logs: String = ["com1", "com2"]
        .iter()
        .map(|n| std::fs::read_to_string(c.dir.join(format!("agent-{n}.log"))).unwrap_or_default())
        .collect();
    let on_spares = agent_logs
        .lines()
        .filter(|l| l.contains("process task started") && l.contains("spare"))
        .count();
    assert!(
        on_spares >= 2,
        "tasks did not start on spares:\n{agent_logs}"
    );
}

#[test]
fn a_docker_task_gets_its_endpoint_and_policy() {
    require_root!();
    let _one = serial();
    build_busybox_image("weft-test/e2e-busybox:latest", &[], &[]);
    let c = ProcCluster::new("dk");
    c.apply(THREE_TIER);
    let apps = format!(
        "{}{}",
        "app \"front\" {\n  instances = 1\n  cmd = \"exec busybox nc -ll -p 80 -e /bin/cat\"\n  cpus = 0.05\n  mem = 16\n  epg = \"shop/store/web\"\n}\n",
        "app \"back\" {\n  instances = 1\n  image = \"weft-test/e2e-busybox:latest\"\n  args = [\"nc\", \"-ll\", \"-p\", \"8080\", \"-e\", \"/bin/cat\"]\n  cpus = 0.1\n  mem = 32\n  epg = \"shop/store/app\"\n}\n"
    );
    apply_apps(&c, &apps);
    let front = wait_running(&c, "front", 1, Duration::from_secs(30)).remove(0);
    let back = wait_running(&c, "back", 1, Duration::from_secs(60)).remove(0);
    let (front_ns, back_ns) = (netns_of(&c, &front.id), netns_of(&c, &back.id));
    wait_until(
        "front -> docker back tcp/8080 (the contract)",
        Duration::from_secs(15),
        || probe::tcp_connect(&front_ns, back.ip, 8080).is_ok(),
    );
    assert!(
        probe::tcp_connect(&back_ns, front.ip, 80).is_err(),
        "docker back -> front must be blocked"
    );
    let container = || {
        let out = std::process::Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("name=^/{}$", weft_runtime::docker::container_name(&back.id)),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(!container().is_empty(), "the task runs no container");
    c.rt.block_on(c.client.delete_app("back")).unwrap();
    wait_until("the container to go", Duration::from_secs(30), || {
        container().is_empty()
    });
}

/// Two networks, no contract between them: `front` and `back`.
const TWO_NETWORKS: &str = r#"
tenant "lab" {
  vrf "main" {}
  bridge_domain "front" {
    vrf = "main"
    subnet "10.5.0.0/24" { gateway = "10.5.0.1" }
  }
  bridge_domain "back" {
    vrf = "main"
    subnet "10.6.0.0/24" { gateway = "10.6.0.1" }
  }
  application_profile "net" {
    epg "front" { bridge_domain = "front" }
    epg "back" { bridge_domain = "back" }
  }
}
"#;

/// Process tasks in two networks: the agent makes one namespace with `weft0` (front,
/// the default route) and `weft1` (back) before it starts the task; each network's
/// members reach the task on their own network's address only; a scaled-down task's
/// endpoints and namespace go.
#[test]
fn a_process_task_in_two_networks_has_an_interface_in_each() {
    require_root!();
    let _one = serial();
    let c = ProcCluster::new("mn");
    c.apply(TWO_NETWORKS);
    apply_apps(&c, &sleeper("fe", 1, "lab/net/front", ""));
    apply_apps(&c, &sleeper("be", 1, "lab/net/back", ""));
    apply_apps(
        &c,
        &sleeper(
            "gw",
            2,
            "lab/net/front",
            "  network {\n    epg = \"lab/net/back\"\n  }\n",
        ),
    );
    let gws = wait_running(&c, "gw", 2, Duration::from_secs(30));
    let fe = wait_running(&c, "fe", 1, Duration::from_secs(30)).remove(0);
    let be = wait_running(&c, "be", 1, Duration::from_secs(30)).remove(0);
    let (fe_ns, be_ns) = (netns_of(&c, &fe.id), netns_of(&c, &be.id));
    for gw in &gws {
        let back =
            c.rt.block_on(c.client.endpoint(&format!("{}-n1", gw.id)))
                .unwrap();
        let ns = netns_of(&c, &gw.id);
        assert_eq!(back.netns, ns);
        assert_eq!(back.interface, 1);
        let addrs = String::from_utf8_lossy(
            &std::process::Command::new("ip")
                .args(["-n", &ns, "-o", "-4", "addr", "show"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        assert!(
            addrs
                .lines()
                .any(|l| l.contains(" weft0 ") && l.contains(&format!(" {}/24 ", gw.ip))),
            "{addrs}"
        );
        assert!(
            addrs
                .lines()
                .any(|l| l.contains(" weft1 ") && l.contains(&format!(" {}/24 ", back.ip))),
            "{addrs}"
        );
        let _echo = probe::EchoServer::start(&ns, 7070).unwrap();
        wait_until(
            "be reaches gw on its back address",
            Duration::from_secs(10),
            || probe::tcp_ok(&be_ns, back.ip, 7070),
        );
        assert!(probe::tcp_ok(&fe_ns, gw.ip, 7070), "fe -> gw front");
        assert!(
            !probe::tcp_ok(&fe_ns, back.ip, 7070),
            "front reached gw's back address"
        );
        assert!(
            !probe::tcp_ok(&be_ns, gw.ip, 7070),
            "back reached gw's front address"
        );
    }

    // Scaled down: the youngest task's two endpoints and its namespace go.
    c.rt.block_on(c.client.scale_app("gw", 1)).unwrap();
    wait_until("gw back to 1 task", Duration::from_secs(30), || {
        tasks(&c, "gw").len() == 1
    });
    let kept = tasks(&c, "gw").remove(0);
    let gone = gws.iter().find(|t| t.id != kept.id).unwrap();
    wait_until(
        "the stopped task's endpoints and namespace go",
        Duration::from_secs(20),
        || {
            let endpoints = c.rt.block_on(c.client.endpoints()).unwrap();
            !endpoints
                .iter()
                .any(|e| e.name == gone.id || e.name.starts_with(&format!("{}-n", gone.id)))
                && !weft_fabric::netns::list_with_prefix(&c.bed.tag)
                    .iter()
                    .any(|ns| ns.ends_with(&format!("-ep-{}", gone.id)))
        },
    );
}
