//! `weft dns query` and `weft explain --dns` against a real two-node cluster with
//! discovery on: the three-tier example, a 2-instance app and a db, and an endpoint of
//! EPG web. Root.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod common;

use common::{ProcCluster, THREE_TIER, wait_until};
use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;
use weft_api::{Task, TaskState};

const APPS: &str = r#"
app "app" {
  instances = 2
  cmd       = "exec sleep 1000000"
  cpus      = 0.05
  mem       = 16
  epg       = "shop/store/app"
  ports     = { http = 8080 }
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

fn weft(c: &ProcCluster, args: &[&str]) -> (Option<i32>, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.cli().args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    eprintln!("$ weft {}\n{text}", args.join(" "));
    (status.code(), text)
}

/// The addresses of the A records in dig-style answer lines.
fn a_records(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split('\t').map(str::trim).collect();
            (fields.len() == 5 && fields[3] == "A").then(|| fields[4].to_string())
        })
        .collect()
}

/// `explain --dns` output: the line of instance `id` and the reason lines under it.
fn decision(text: &str, id: &str) -> (String, String) {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&format!("{id} ")));
    let verdict = lines
        .next()
        .unwrap_or_else(|| panic!("no line for {id}: {text}"))
        .trim_end()
        .to_string();
    let why: Vec<&str> = lines.take_while(|l| l.starts_with("      ")).collect();
    (verdict, why.join("\n"))
}

#[test]
fn dns_query_and_explain_dns_show_what_the_gateway_answers_and_why() {
    require_root!();
    let consul = format!("127.0.0.1:{}", free_port());
    let c = ProcCluster::with_server_args("dq", &["--consul-listen", &consul]);
    c.apply(THREE_TIER);
    c.endpoint("web-1", "com1", "shop/store/web");
    let apps = weft_app::parse_apps_hcl("apps.hcl", APPS).unwrap();
    weft_app::validate_apps(&apps).unwrap();
    let json: serde_json::Value = serde_json::from_str(&weft_app::apps_to_json(&apps)).unwrap();
    c.rt.block_on(c.client.apply_apps(json)).unwrap();
    let app = running(&c, "app", 2);
    let db = running(&c, "db", 1).remove(0);
    c.wait_endpoints_ready();
    let app_ips: BTreeSet<String> = app.iter().map(|t| t.ip.to_string()).collect();

    // web-1 may reach app on its first named port: both instances, exit 0.
    wait_until(
        "web-1 resolves both app tasks",
        Duration::from_secs(15),
        || {
            let (code, text) = weft(&c, &["dns", "query", "app.service.weft", "--from", "web-1"]);
            code == Some(0) && a_records(&text) == app_ips
        },
    );
    let (code, text) = weft(&c, &["dns", "query", "app.service.weft", "--from", "web-1"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("status NOERROR"), "{text}");
    assert!(text.contains(";; ANSWER SECTION:"), "{text}");

    // SRV names the port; --json is the controller's answer, decisions included.
    let (code, text) = weft(
        &c,
        &[
            "dns",
            "query",
            "_app._tcp.service.weft",
            "--type",
            "srv",
            "--from",
            "web-1",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.matches("\tSRV\t1 1 8080 ").count(), 2, "{text}");
    let out = c
        .cli()
        .args([
            "dns",
            "query",
            "app.service.weft",
            "--from",
            "web-1",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let answer: weft_api::DnsQueryResponse = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer.rcode, "NOERROR");
    assert_eq!(answer.answers.len(), 2, "{answer:?}");
    assert_eq!(answer.decisions.len(), 2, "{answer:?}");
    assert!(answer.decisions.iter().all(|d| d.shown), "{answer:?}");

    // web may not reach db: NXDOMAIN, exit 1.
    let (code, text) = weft(&c, &["dns", "query", "db.service.weft", "--from", "web-1"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("status NXDOMAIN"), "{text}");
    assert!(!text.contains(&db.ip.to_string()), "{text}");
    // A name that exists with no records of the type asked (no IPv6): NODATA, exit 1.
    let (code, text) = weft(
        &c,
        &[
            "dns",
            "query",
            "app.service.weft",
            "--type",
            "AAAA",
            "--from",
            "web-1",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("NODATA"), "{text}");
    // An unknown asker is an error: exit 2.
    let (code, text) = weft(&c, &["dns", "query", "db.service.weft", "--from", "nobody"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("nobody"), "{text}");

    // explain --dns: db hidden from web-1, because policy lets web not reach it.
    let (code, text) = weft(&c, &["explain", "--dns", "web-1", "db.service.weft"]);
    assert_eq!(code, Some(1), "{text}");
    let (verdict, why) = decision(&text, &db.id);
    assert!(verdict.ends_with(" hidden"), "{text}");
    assert!(verdict.contains(&format!("{}:5432", db.ip)), "{text}");
    assert!(
        why.contains("no contract"),
        "the reason names policy: {text}"
    );
    assert!(text.contains("answer:    NXDOMAIN"), "{text}");

    // ... and shown to an app task (its endpoint is named by the task's id).
    let (code, text) = weft(&c, &["explain", "--dns", &app[0].id, "db.service.weft"]);
    assert_eq!(code, Some(0), "{text}");
    let (verdict, why) = decision(&text, &db.id);
    assert!(verdict.ends_with(" shown"), "{text}");
    assert!(why.contains("app-to-db"), "{text}");
    assert!(text.contains(&format!("\tA\t{}", db.ip)), "{text}");

    // Both instances of app shown to web-1.
    let (code, text) = weft(&c, &["explain", "--dns", "web-1", "app.service.weft"]);
    assert_eq!(code, Some(0), "{text}");
    for t in &app {
        let (verdict, why) = decision(&text, &t.id);
        assert!(verdict.ends_with(" shown"), "{text}");
        assert!(why.contains("web-to-app"), "{text}");
    }

    // The flow modes still need their flags.
    let (code, text) = weft(&c, &["explain", "--from", "web-1"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--to"), "{text}");
    let (code, text) = weft(
        &c,
        &[
            "explain", "--from", "web-1", "--to", &app[0].id, "--proto", "tcp", "--port", "8080",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
}
