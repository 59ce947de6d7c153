//! Discovery at the gateways, end to end on a real two-node cluster: `dig` inside
//! endpoint namespaces aimed at their gateway, Consul's HTTP API at the gateway with
//! `curl`, policy-aware answers on the three-tier example, tenant isolation, a killed
//! task leaving the answers, and the controller killed. Root.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod common;

use common::docker::{build_busybox_image_with, wait_container_removed};
use common::{ProcCluster, THREE_TIER, wait_until};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
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

/// `dig` in `netns` at `server`: the status and the answer records' data.
fn dig(netns: &str, server: &str, name: &str, qtype: &str) -> (String, Vec<String>) {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "dig", "+time=1", "+tries=3"])
        .args(["+noall", "+answer", "+comments"])
        .arg(format!("@{server}"))
        .args([name, qtype])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_else(|| format!("no answer: {text}"));
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields[4..].join(" ")
        })
        .collect();
    (status, answers)
}

fn addresses(answers: &[String]) -> BTreeSet<String> {
    answers.iter().cloned().collect()
}

fn curl(netns: &str, url: &str, extra: &[&str]) -> (u16, String, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "curl", "-s", "-m", "5", "-D", "-"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

fn apply_apps(c: &ProcCluster, hcl: &str) {
    let apps = weft_app::parse_apps_hcl("apps.hcl", hcl).unwrap();
    weft_app::validate_apps(&apps).unwrap();
    let json: serde_json::Value = serde_json::from_str(&weft_app::apps_to_json(&apps)).unwrap();
    c.rt.block_on(c.client.apply_apps(json)).unwrap();
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

fn ips(tasks: &[Task]) -> BTreeSet<String> {
    tasks.iter().map(|t| t.ip.to_string()).collect()
}

const APPS: &str = r#"
app "app" {
  instances = 3
  cmd       = "exec sleep 1000000"
  cpus      = 0.05
  mem       = 16
  epg       = "shop/store/app"
  ports     = { http = 8080 }
  tags      = ["v1"]
}

app "db" {
  instances = 1
  cmd       = "exec sleep 1000000"
  cpus      = 0.05
  mem       = 16
  epg       = "shop/store/db"
  ports     = { sql = 5432 }
}
"#;

const RED: &str = r#"
tenant "red" {
  vrf "main" {}
  bridge_domain "net" {
    vrf = "main"
    subnet "10.9.0.0/24" {
      gateway = "10.9.0.1"
    }
  }
  application_profile "p" {
    epg "web" {
      bridge_domain = "net"
    }
  }
}
"#;

/// Waits until `dig` in `netns` answers `name` with exactly `want`.
fn wait_answers(netns: &str, name: &str, want: &BTreeSet<String>, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (_, answers) = dig(netns, GATEWAY, name, "A");
        if addresses(&answers) == *want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{name} in {netns}: {answers:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dns_and_consul_api_at_the_gateway_know_health_policy_and_tenants() {
    require_root!();
    let consul = format!("127.0.0.1:{}", free_port());
    let mut c = ProcCluster::with_server_args("gw", &["--consul-listen", &consul]);
    c.apply(THREE_TIER);
    c.apply(RED);
    let (web_ns, _) = c.endpoint("web-1", "com1", "shop/store/web");
    let (web2_ns, _) = c.endpoint("web-2", "com2", "shop/store/web");
    let (red_ns, _) = c.endpoint("red-1", "com1", "red/p/web");
    apply_apps(&c, APPS);
    let app = running(&c, "app", 3);
    let db = running(&c, "db", 1);
    c.wait_endpoints_ready();

    // web resolves app: exactly its three running instances, on both nodes.
    let want = ips(&app);
    wait_answers(&web_ns, "app.service.weft", &want, Duration::from_secs(10));
    wait_answers(&web2_ns, "app.service.weft", &want, Duration::from_secs(10));
    // SRV: the named port, and each target's address in the additional section.
    let (status, srv) = dig(&web_ns, GATEWAY, "_app._tcp.service.weft", "SRV");
    assert_eq!(status, "NOERROR");
    assert_eq!(srv.len(), 3, "{srv:?}");
    assert!(srv.iter().all(|r| r.starts_with("1 1 8080 ")), "{srv:?}");
    // Tags and the consul domain.
    wait_answers(
        &web_ns,
        "v1.app.service.consul",
        &want,
        Duration::from_secs(1),
    );

    // Policy: web may not reach db, so db does not exist for it; app may.
    let (status, answers) = dig(&web_ns, GATEWAY, "db.service.weft", "A");
    assert_eq!(status, "NXDOMAIN", "{answers:?}");
    let app_ns = &netns_of(&c, &app[0]);
    wait_answers(app_ns, "db.service.weft", &ips(&db), Duration::from_secs(5));

    // The Consul API at the gateway, for the asker's tenant.
    let (status, _, body) = curl(
        &web_ns,
        &format!("http://{GATEWAY}:8500/v1/catalog/services"),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"app\"") && body.contains("\"db\""),
        "{body}"
    );

    // A client that half-closes right after its request (busybox nc) gets its answer.
    let raw = Command::new("ip")
        .args(["netns", "exec", &web_ns, "sh", "-c"])
        .arg(format!(
            "printf 'GET /v1/catalog/services HTTP/1.0\\r\\n\\r\\n' | timeout 5 busybox nc {GATEWAY} 8500"
        ))
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert!(
        raw.starts_with("HTTP/1.0 200") && raw.contains("\"app\""),
        "{raw}"
    );

    // Tenant red sees nothing of shop, in DNS and HTTP.
    let (status, _) = dig(&red_ns, "10.9.0.1", "app.service.weft", "A");
    assert_eq!(status, "NXDOMAIN");
    let (status, _, body) = curl(&red_ns, "http://10.9.0.1:8500/v1/catalog/services", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("\"app\""), "{body}");
    let (_, _, body) = curl(&red_ns, "http://10.9.0.1:8500/v1/health/service/app", &[]);
    assert_eq!(body.trim(), "[]");

    // The VRF's dns_policy off: web resolves db again; the data path still blocks it.
    c.apply(&THREE_TIER.replace(
        "vrf \"main\" {}",
        "vrf \"main\" {\n    dns_policy = false\n  }",
    ));
    wait_answers(
        &web_ns,
        "db.service.weft",
        &ips(&db),
        Duration::from_secs(5),
    );
    let db_ip: IpAddr = db[0].ip;
    let blocked = Command::new("ip")
        .args(["netns", "exec", &web_ns, "timeout", "2", "bash", "-c"])
        .arg(format!("echo > /dev/tcp/{db_ip}/5432"))
        .status()
        .unwrap();
    assert_eq!(
        blocked.code(),
        Some(124),
        "the connection must time out (dropped), not be refused"
    );
    c.apply(THREE_TIER);
    wait_answers(
        &web_ns,
        "db.service.weft",
        &BTreeSet::new(),
        Duration::from_secs(5),
    );

    // A task killed: its address leaves the answers on both nodes.
    let victim = &app[0];
    let killed = Instant::now();
    let pids = Command::new("ip")
        .args(["netns", "pids", &netns_of(&c, victim)])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    let without = |answers: &[String]| !answers.contains(&victim.ip.to_string());
    for ns in [&web_ns, &web2_ns] {
        loop {
            let (_, answers) = dig(ns, GATEWAY, "app.service.weft", "A");
            if without(&answers) {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(5),
                "killed task still answered in {ns}: {answers:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    eprintln!(
        "killed task left DNS on both nodes after {:?}",
        killed.elapsed()
    );

    // The controller killed: DNS and remembered reads still answer, flagged stale;
    // writes fail clearly.
    let kv = format!("http://{GATEWAY}:8500/v1/kv/config/db");
    let (status, _, body) = curl(&web_ns, &kv, &["-X", "PUT", "--data", "postgres://db"]);
    assert_eq!(status, 200, "{body}");
    let (status, head, _) = curl(&web_ns, &kv, &[]);
    assert_eq!(status, 200);
    assert!(!head.contains("x-consul-knownleader: false"), "{head}");
    let before = dig(&web_ns, GATEWAY, "app.service.weft", "A").1;
    c.kill_server();
    let (status, answers) = dig(&web_ns, GATEWAY, "app.service.weft", "A");
    assert_eq!(status, "NOERROR");
    assert_eq!(addresses(&answers), addresses(&before));
    let (status, head, body) = curl(&web_ns, &kv, &[]);
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("x-consul-knownleader: false"), "{head}");
    assert!(
        body.contains("Y29uZmln") || body.contains("\"Key\":\"config/db\""),
        "{body}"
    );
    let (status, _, body) = curl(&web_ns, &kv, &["-X", "PUT", "--data", "x"]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("controller unreachable"), "{body}");
}

/// A task's endpoint namespace (the task's id is its endpoint's name).
fn netns_of(c: &ProcCluster, task: &Task) -> String {
    c.rt.block_on(c.client.endpoint(&task.id)).unwrap().netns
}

/// `FROM scratch` with the static busybox (a shell) and glibc's `getent` with the
/// libraries `ldd` names, built locally (no registry is reachable): static busybox's
/// own getaddrinfo cannot load glibc's resolver, a dynamic `getent` is plain glibc.
fn build_resolver_image(tag: &str) {
    let mut files = vec!["/usr/bin/getent".to_string()];
    let ldd = Command::new("ldd").arg("/usr/bin/getent").output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(path.to_string());
        }
    }
    build_busybox_image_with(tag, &[], &files, &[]);
}

#[test]
fn process_and_docker_tasks_resolve_with_getaddrinfo_at_their_gateway() {
    require_root!();
    build_resolver_image("weft-test/gw-resolver:latest");
    let consul = format!("127.0.0.1:{}", free_port());
    let c = ProcCluster::with_server_args("gr", &["--consul-listen", &consul]);
    c.apply(THREE_TIER);
    // db first; then two clients in EPG app (which may reach db) that resolve its name
    // with glibc's getaddrinfo (getent) and with a Docker task's (getent in a minimal image), and print it.
    apply_apps(
        &c,
        "app \"db\" {\n  instances = 1\n  cmd = \"exec sleep 1000000\"\n  cpus = 0.05\n  mem = 16\n  epg = \"shop/store/db\"\n  ports = { sql = 5432 }\n}\n",
    );
    let db = running(&c, "db", 1).remove(0);
    let apps = concat!(
        "app \"getent\" {\n  instances = 1\n  cmd = \"until getent hosts db.service.weft; do sleep 0.2; done; exec sleep 1000000\"\n  cpus = 0.05\n  mem = 16\n  epg = \"shop/store/app\"\n}\n",
        "app \"boxed\" {\n  instances = 1\n  image = \"weft-test/gw-resolver:latest\"\n  args = [\"sh\", \"-c\", \"until getent hosts db.service.weft; do sleep 0.2; done; exec sleep 1000000\"]\n  cpus = 0.1\n  mem = 32\n  epg = \"shop/store/app\"\n}\n",
    );
    apply_apps(&c, apps);
    let getent = running(&c, "getent", 1).remove(0);
    let boxed = running(&c, "boxed", 1).remove(0);
    let db_ip = db.ip.to_string();
    wait_until(
        "getent in a process task resolves db",
        Duration::from_secs(20),
        || {
            let out = c.cli().args(["logs", &getent.id]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).contains(&db_ip)
        },
    );
    wait_until(
        "getent in a Docker task resolves db",
        Duration::from_secs(30),
        || {
            let id = Command::new("docker")
                .args([
                    "ps",
                    "-q",
                    "--filter",
                    &format!(
                        "name=^/{}$",
                        weft_runtime::docker::container_name(&boxed.id)
                    ),
                ])
                .output()
                .unwrap();
            let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
            let logs = Command::new("docker").args(["logs", &id]).output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
            text.contains(&db_ip)
        },
    );
    c.rt.block_on(c.client.delete_app("boxed")).unwrap();
    // The agent stops and removes the container (its `sleep` ignores SIGTERM, so after
    // the stop grace); tearing the cluster down before that left it exited, not removed.
    wait_container_removed(&weft_runtime::docker::container_name(&boxed.id));
}
