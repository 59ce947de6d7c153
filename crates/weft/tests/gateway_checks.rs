//! Consul HTTP and TCP checks aimed at a task's address are run by the agent of the
//! task's node, from its VRF namespace, end to end on a real two-node cluster: a task
//! registers its own service through its gateway, the check passes (the controller's
//! health API, DNS at the gateway), the listener is killed (critical, out of DNS within
//! a bound), comes back, and the task's node's agent is killed (the task moves, and its
//! checks follow it to the other node's agent). Staleness of reports is unit-tested in
//! `weft-consul` (a killed agent's node loses its tasks before reports go stale). Root.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod common;

use common::{ProcCluster, THREE_TIER, wait_until};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_api::{Task, TaskState};

const GATEWAY: &str = "10.1.0.1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The addresses `dig` in `netns` gets for `name` at the gateway.
fn dig(netns: &str, name: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", netns, "dig", "+time=1", "+tries=2", "+short",
        ])
        .arg(format!("@{GATEWAY}"))
        .args([name, "A"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect()
}

fn curl(netns: Option<&str>, args: &[&str]) -> String {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => Command::new("curl"),
    };
    let out = cmd.args(["-s", "-m", "5"]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(status, output)` of check `id` as the controller's health API shows it.
fn check(consul: &str, token: &str, service: &str, id: &str) -> Option<(String, String)> {
    let body = curl(
        None,
        &[
            "-H",
            &format!("X-Consul-Token: {token}"),
            &format!("http://{consul}/v1/health/checks/{service}"),
        ],
    );
    let checks: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
    checks.iter().find(|c| c["CheckID"] == id).map(|c| {
        (
            c["Status"].as_str().unwrap_or_default().to_string(),
            c["Output"].as_str().unwrap_or_default().to_string(),
        )
    })
}

fn wait_check(c: &Consul, service: &str, id: &str, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = check(&c.addr, &c.token, service, id);
        if got.as_ref().is_some_and(|(s, _)| s == want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "check {id} of {service}: {got:?}, want {want} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_dns(netns: &str, name: &str, want: &[String], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = dig(netns, name);
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{name} in {netns}: {got:?}, want {want:?} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Consul {
    addr: String,
    token: String,
}

fn running(c: &ProcCluster, app: &str) -> Task {
    wait_until(
        &format!("a running task of {app}"),
        Duration::from_secs(40),
        || {
            let all = c.rt.block_on(c.client.tasks(Some(app))).unwrap();
            all.len() == 1 && all[0].status.state == TaskState::Running
        },
    );
    c.rt.block_on(c.client.tasks(Some(app))).unwrap().remove(0)
}

/// The pids in `netns` whose command line names `what`.
fn pids_of(netns: &str, what: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(what))
        })
        .map(str::to_string)
        .collect()
}

/// `busybox httpd` on port 8080 in `netns`, serving `dir`.
fn httpd(netns: &str, dir: &std::path::Path) -> Child {
    Command::new("ip")
        .args([
            "netns", "exec", netns, "busybox", "httpd", "-f", "-p", "8080", "-h",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn checks_of_a_task_run_from_its_vrf_namespace_and_decide_dns() {
    require_root!();
    let consul_addr = format!("127.0.0.1:{}", free_port());
    let mut c = ProcCluster::with_server_args("ck", &["--consul-listen", &consul_addr]);
    c.apply(THREE_TIER);
    let www = c.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "ok\n").unwrap();
    // The task serves HTTP on 8080 from a child process, so that killing the server
    // leaves the task running (its supervisor would restart it otherwise).
    let app = format!(
        "app \"api\" {{\n  instances = 1\n  cmd = \"busybox httpd -f -p 8080 -h {} & exec sleep 1000000\"\n  cpus = 0.05\n  mem = 16\n  epg = \"shop/store/app\"\n  ports = {{ http = 8080 }}\n}}\n",
        www.display()
    );
    let apps = weft_app::parse_apps_hcl("apps.hcl", &app).unwrap();
    let json: serde_json::Value = serde_json::from_str(&weft_app::apps_to_json(&apps)).unwrap();
    c.rt.block_on(c.client.apply_apps(json)).unwrap();
    let task = running(&c, "api");
    let task_ns = c.rt.block_on(c.client.endpoint(&task.id)).unwrap().netns;
    let other = if task.node == "com1" { "com2" } else { "com1" };
    // web may reach app on 8080: it asks from the task's node and from the other one.
    let (web_here, _) = c.endpoint("web-here", &task.node, "shop/store/web");
    let (web_there, _) = c.endpoint("web-there", other, "shop/store/web");
    c.wait_endpoints_ready();
    wait_until("the task's httpd", Duration::from_secs(10), || {
        !pids_of(&task_ns, "httpd").is_empty()
    });
    let consul = Consul {
        addr: consul_addr.clone(),
        token: c.rt.block_on(c.client.create_token("shop")).unwrap().token,
    };

    wait_until(
        "Consul's API at the task's gateway",
        Duration::from_secs(20),
        || {
            curl(
                Some(&task_ns),
                &[
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://{GATEWAY}:8500/v1/status/leader"),
                ],
            ) == "200"
        },
    );

    // The task registers two services of its own through its gateway: one with an HTTP
    // check, one with a TCP check, both aimed at its own address.
    let ip = task.ip.to_string();
    for (id, check) in [
        (
            "api-http",
            format!(r#"{{"HTTP":"http://{ip}:8080/","Interval":"1s","Timeout":"1s"}}"#),
        ),
        (
            "api-tcp",
            format!(r#"{{"TCP":"{ip}:8080","Interval":"1s","Timeout":"1s"}}"#),
        ),
    ] {
        let body = format!(
            r#"{{"Name":"{id}","ID":"{id}","Address":"{ip}","Port":8080,"Check":{check}}}"#
        );
        let out = curl(
            Some(&task_ns),
            &[
                "-X",
                "PUT",
                "-w",
                "%{http_code}",
                "--data",
                &body,
                &format!("http://{GATEWAY}:8500/v1/agent/service/register"),
            ],
        );
        assert!(out.ends_with("200"), "registering {id}: {out}");
    }
    let ids = [
        ("api-http", "service:api-http"),
        ("api-tcp", "service:api-tcp"),
    ];
    for (service, id) in ids {
        let took = wait_check(&consul, service, id, "passing", Duration::from_secs(10));
        eprintln!("{id} passing {took:?} after registration");
    }
    let (_, output) = check(&consul.addr, &consul.token, "api-http", "service:api-http").unwrap();
    assert!(output.contains("200 OK"), "{output}");
    let want = vec![ip.clone()];
    for ns in [&web_here, &web_there] {
        for (service, _) in ids {
            wait_dns(
                ns,
                &format!("{service}.service.weft"),
                &want,
                Duration::from_secs(5),
            );
        }
    }

    // The listener killed: both checks critical, both names out of DNS on both nodes.
    let killed = Instant::now();
    for pid in pids_of(&task_ns, "httpd") {
        Command::new("kill").args(["-9", &pid]).status().unwrap();
    }
    let mut worst = Duration::ZERO;
    for (service, id) in ids {
        wait_check(&consul, service, id, "critical", Duration::from_secs(5));
        for ns in [&web_here, &web_there] {
            wait_dns(
                ns,
                &format!("{service}.service.weft"),
                &[],
                Duration::from_secs(5),
            );
        }
        worst = worst.max(killed.elapsed());
    }
    eprintln!("listener killed: critical and out of DNS on both nodes within {worst:?}");
    let (_, output) = check(&consul.addr, &consul.token, "api-tcp", "service:api-tcp").unwrap();
    assert!(output.contains("dial tcp"), "{output}");
    // The task itself still runs: only its listener is gone.
    assert_eq!(
        c.rt.block_on(c.client.task(&task.id)).unwrap().status.state,
        TaskState::Running
    );

    // The listener back: passing, and back in DNS.
    let mut again = httpd(&task_ns, &www);
    let back = Instant::now();
    for (service, id) in ids {
        wait_check(&consul, service, id, "passing", Duration::from_secs(5));
        wait_dns(
            &web_there,
            &format!("{service}.service.weft"),
            &want,
            Duration::from_secs(5),
        );
    }
    eprintln!(
        "listener back: passing and in DNS within {:?}",
        back.elapsed()
    );

    // The task's node's agent killed: the task is lost with its node and placed on the
    // other node (same address); the checks follow the endpoint, to the other node's
    // agent, and pass again from there.
    let moved = Instant::now();
    c.kill_agent(&task.node);
    wait_until(
        "the task on the other node",
        Duration::from_secs(40),
        || {
            c.rt.block_on(c.client.task(&task.id)).is_ok_and(|t| {
                t.node == other && t.ip == task.ip && t.status.state == TaskState::Running
            })
        },
    );
    let new_ns = c.rt.block_on(c.client.endpoint(&task.id)).unwrap().netns;
    wait_until("the moved task's httpd", Duration::from_secs(10), || {
        !pids_of(&new_ns, "httpd").is_empty()
    });
    for (service, id) in ids {
        wait_check(&consul, service, id, "passing", Duration::from_secs(10));
        wait_dns(
            &web_there,
            &format!("{service}.service.weft"),
            &want,
            Duration::from_secs(5),
        );
    }
    eprintln!(
        "task moved to {other}: its checks pass from there {:?} after the agent was killed",
        moved.elapsed()
    );
    // Only the new node's agent runs them now: its listener killed, they turn critical.
    for pid in pids_of(&new_ns, "httpd") {
        Command::new("kill").args(["-9", &pid]).status().unwrap();
    }
    for (service, id) in ids {
        wait_check(&consul, service, id, "critical", Duration::from_secs(5));
    }

    let _ = again.kill();
    let _ = again.wait();
}
