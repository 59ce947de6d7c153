//! `weft demo`: a fresh dev cluster, the seed's Table 1 and the three-tier example,
//! every pair probed with real packets, expected against observed, with the reason.
//! Exits 0 only if every row matches.
//!
//! `weft demo --ha` runs it on an HA dev cluster (three controllers over a three-member
//! etcd cluster, as `weft dev --ha 3`) and, halfway (after the packet table, before the
//! apps), `kill -9`s the leading controller: it prints who took over and how long that
//! took, and the second half (apps scheduled by the new leader) must pass all the same.

use crate::cluster::{DevCluster, Services};
use crate::documents::parse_embedded;
use crate::preflight::{self, Need};
use crate::remote::describe;
use anyhow::{Context, Result, anyhow, bail};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weft_api::{Client, EndpointRequest, EndpointState};
use weft_fabric::probe::{self, EchoServer};

const TABLE1: &str = include_str!("../../../../examples/seed-table1.hcl");
const THREE_TIER: &str = include_str!("../../../../examples/three-tier.hcl");
const ECHO_PORT: u16 = 7000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leave the cluster running afterwards (remove it with `weft dev down --tag weft-demo`).
    #[arg(long)]
    keep: bool,
    /// Three controllers over a three-member etcd cluster; the leader is killed halfway.
    #[arg(long)]
    ha: bool,
}

/// How many controllers `weft demo --ha` runs.
const HA_CONTROLLERS: usize = 3;
/// How long `weft demo --ha` waits for another controller to lead after the kill.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(15);

/// (name, node, EPG)
const ENDPOINTS: &[(&str, &str, &str)] = &[
    ("a", "com1", "lab/nets/nw-a"),
    ("b", "com1", "lab/nets/nw-c"),
    ("c", "com1", "lab/nets/nw-b"),
    ("d", "com1", "lab/nets/nw-a"),
    ("e", "com2", "lab/nets/nw-c"),
    ("f", "com2", "lab/nets/nw-b"),
    ("g", "com2", "lab/nets/nw-a"),
    ("web-1", "com1", "shop/store/web"),
    ("web-2", "com2", "shop/store/web"),
    ("app-1", "com1", "shop/store/app"),
    ("app-2", "com2", "shop/store/app"),
    ("db-1", "com1", "shop/store/db"),
    ("db-2", "com2", "shop/store/db"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Tcp(u16),
    Udp(u16),
    Icmp,
}

impl Probe {
    fn proto_port(self) -> (&'static str, u16) {
        match self {
            Probe::Tcp(p) => ("tcp", p),
            Probe::Udp(p) => ("udp", p),
            Probe::Icmp => ("icmp", 0),
        }
    }
}

/// (case, from, to, probe, expected allowed)
fn rows() -> Vec<(&'static str, &'static str, &'static str, Probe, bool)> {
    let mut rows = Vec::new();
    let table1 = [
        ("T1 same host, other segment, no router", "b", false),
        ("T1 same host, other segment, router", "c", true),
        ("T1 same host, same segment", "d", true),
        ("T1 other host, other segment, no router", "e", false),
        ("T1 other host, other segment, router", "f", true),
        ("T1 other host, same segment", "g", true),
    ];
    for (case, to, allowed) in table1 {
        for probe in [Probe::Tcp(ECHO_PORT), Probe::Udp(ECHO_PORT), Probe::Icmp] {
            rows.push((case, "a", to, probe, allowed));
        }
    }
    rows.extend([
        (
            "3-tier web -> app 8080",
            "web-1",
            "app-2",
            Probe::Tcp(8080),
            true,
        ),
        (
            "3-tier web -> app 8080 (same node)",
            "web-2",
            "app-2",
            Probe::Tcp(8080),
            true,
        ),
        (
            "3-tier web -> db 5432",
            "web-1",
            "db-2",
            Probe::Tcp(5432),
            false,
        ),
        (
            "3-tier app -> db 5432",
            "app-1",
            "db-2",
            Probe::Tcp(5432),
            true,
        ),
        (
            "3-tier db -> web 80",
            "db-1",
            "web-2",
            Probe::Tcp(80),
            false,
        ),
        (
            "3-tier against the contract: app -> web 8080",
            "app-1",
            "web-1",
            Probe::Tcp(8080),
            false,
        ),
        (
            "3-tier web -> app on a port not in the contract",
            "web-1",
            "app-1",
            Probe::Tcp(80),
            false,
        ),
        // shop's subnet is lab's NW-A subnet again: another VRF, so never reachable.
        (
            "VRFs: lab a -> shop db-2 (same subnet, other VRF)",
            "a",
            "db-2",
            Probe::Tcp(5432),
            false,
        ),
    ]);
    rows
}

/// What the demo runs: a dev cluster's programs, and those of its apps' commands (found
/// on the tasks' `PATH`).
pub fn needs() -> Result<Vec<Need>> {
    let mut needs = preflight::dev_cluster();
    needs.push(Need::task(
        "sh",
        "process tasks run their command with `sh -c`",
    ));
    for program in app_programs()? {
        needs.push(Need::task(&program, "the demo's apps run it"));
    }
    Ok(needs)
}

/// Every program the commands of the demo's apps run.
fn app_programs() -> Result<Vec<String>> {
    let apps = weft_app::parse_apps_hcl("demo-apps.hcl", APPS).map_err(|e| anyhow!("{e}"))?;
    let mut programs: Vec<String> = Vec::new();
    for app in apps.apps.values() {
        for program in app.cmd.iter().flat_map(|c| preflight::command_programs(c)) {
            if !programs.contains(&program) {
                programs.push(program);
            }
        }
    }
    Ok(programs)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut needs = needs()?;
    if args.ha {
        needs.extend(
            preflight::dev_cluster_ha()
                .into_iter()
                .filter(|n| n.name == preflight::ETCD.name),
        );
    }
    preflight::check("demo", &needs)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let started = Instant::now();
    let progress = |step: &str| eprintln!("==> [{:>5.1}s] {step}", started.elapsed().as_secs_f64());
    let cluster = rt.block_on(DevCluster::start_ha(
        "weft-demo",
        &["com1".to_string(), "com2".to_string()],
        &progress,
        Services::default(),
        args.ha.then_some(HA_CONTROLLERS),
    ))?;
    let outcome = rt.block_on(demo(&cluster, &progress));
    if args.keep {
        println!(
            "cluster kept: API {} (the CLI finds it); remove it with `weft dev down --tag weft-demo`",
            cluster.servers.join(",")
        );
        cluster.keep();
    } else {
        progress("stopping the cluster and removing everything it created");
        cluster.stop()?;
    }
    let failures = outcome?;
    progress("done");
    if failures == 0 {
        println!("\nweft demo: every row matches");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nweft demo: {failures} row(s) differ from the expected verdict");
        Ok(ExitCode::from(1))
    }
}

async fn demo(cluster: &DevCluster, progress: &dyn Fn(&str)) -> Result<usize> {
    let client = cluster.client();
    if cluster.is_ha() {
        let status = client
            .controllers()
            .await
            .map_err(|e| anyhow!(describe(&e)))?;
        progress(&format!(
            "{} controllers over etcd ({}); {} leads",
            cluster.servers.len(),
            cluster.servers.join(", "),
            status.leader_url.as_deref().unwrap_or("none yet")
        ));
    }
    progress("applying the seed's Table 1 (tenant lab) and the three-tier example (tenant shop)");
    for (name, text) in [("seed-table1.hcl", TABLE1), ("three-tier.hcl", THREE_TIER)] {
        let model = parse_embedded(name, text)?;
        client
            .apply(&model)
            .await
            .map_err(|e| anyhow!(describe(&e)))?;
    }

    progress(&format!(
        "creating {} endpoints on com1 and com2",
        ENDPOINTS.len()
    ));
    for (name, node, epg) in ENDPOINTS {
        let request = EndpointRequest::new((*name).to_string(), epg.parse()?, (*node).to_string());
        client
            .create_endpoint(&request)
            .await
            .map_err(|e| anyhow!(describe(&e)))?;
    }
    progress("waiting for the agents to install ports and policy");
    wait_all_ready(&client, Duration::from_secs(60)).await?;

    let endpoints = client
        .endpoints()
        .await
        .map_err(|e| anyhow!(describe(&e)))?;
    let lookup = |name: &str| -> Result<(String, IpAddr)> {
        let ep = endpoints
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| anyhow!("no endpoint {name}"))?;
        Ok((ep.netns.clone(), ep.ip))
    };
    progress("starting echo servers (tcp+udp 7000, 80, 8080, 5432) in every endpoint");
    let mut servers = Vec::new();
    for ep in &endpoints {
        for port in [ECHO_PORT, 80, 8080, 5432] {
            servers.push(
                EchoServer::start(&ep.netns, port)
                    .with_context(|| format!("echo server in {}", ep.name))?,
            );
        }
    }

    progress("probing every pair with real packets");
    println!();
    println!(
        "{:<52} {:<6} {:<6} {:<9} {:<8} {:<8} {:<3} reason",
        "case", "from", "to", "probe", "expect", "observed", "ok"
    );
    let mut failures = 0;
    for (case, from, to, probe, expected) in rows() {
        let (src_ns, _) = lookup(from)?;
        let (_, dst_ip) = lookup(to)?;
        let observed = tokio::task::spawn_blocking(move || match probe {
            Probe::Tcp(port) => probe::tcp_ok(&src_ns, dst_ip, port),
            Probe::Udp(port) => probe::udp_ok(&src_ns, dst_ip, port),
            Probe::Icmp => match dst_ip {
                IpAddr::V4(v4) => probe::ping_ok(&src_ns, v4),
                IpAddr::V6(_) => false,
            },
        })
        .await
        .context("probe task")?;
        let (proto, port) = probe.proto_port();
        let reason = match client.explain(from, to, proto, port).await {
            Ok(answer) => {
                let mut text = answer.intent.text;
                if answer.differs {
                    text.push_str(" [INSTALLED STATE DIFFERS]");
                }
                text
            }
            Err(e) => format!("(explain failed: {e})"),
        };
        let ok = observed == expected;
        failures += usize::from(!ok);
        let verdict = |allowed: bool| if allowed { "allowed" } else { "blocked" };
        let probe_text = if port == 0 {
            proto.to_string()
        } else {
            format!("{proto}/{port}")
        };
        println!(
            "{case:<52} {from:<6} {to:<6} {probe_text:<9} {:<8} {:<8} {:<3} {}",
            verdict(expected),
            verdict(observed),
            if ok { "yes" } else { "NO" },
            first_line(&reason)
        );
    }
    drop(servers);
    if cluster.is_ha() {
        println!();
        progress("halfway: kill -9 of the leading controller");
        let takeover = cluster.kill_leader(TAKEOVER_LIMIT).await?;
        progress(&format!(
            "killed {}; {} took over after {:.2}s (leader lease {} ms, which etcd rounds up to 2 s)",
            takeover.killed,
            takeover.leader,
            takeover.after.as_secs_f64(),
            crate::cluster::HA_LEADER_TTL_MS
        ));
    }
    failures += apps(&client, progress).await?;
    Ok(failures)
}

/// Two Marathon-style apps in the three-tier EPGs: scheduled, started after their
/// policy, then held to the contract with real packets.
const APPS: &str = r#"
app "storefront" {
  instances = 2
  cmd       = "exec busybox nc -ll -p 80 -e /bin/cat"
  cpus      = 0.1
  mem       = 16
  epg       = "shop/store/web"
}
app "orders" {
  instances = 2
  cmd       = "exec busybox nc -ll -p 8080 -e /bin/cat"
  cpus      = 0.1
  mem       = 16
  epg       = "shop/store/app"
  env       = { STOREFRONT = "${app.storefront.addresses}" }
}
"#;

async fn apps(client: &Client, progress: &dyn Fn(&str)) -> Result<usize> {
    progress("deploying apps storefront (EPG web) and orders (EPG app), 2 tasks each");
    let apps = weft_app::parse_apps_hcl("demo-apps.hcl", APPS).map_err(|e| anyhow!("{e}"))?;
    weft_app::validate_apps(&apps).map_err(|e| anyhow!("{e}"))?;
    let json: serde_json::Value = serde_json::from_str(&weft_app::apps_to_json(&apps))?;
    client
        .apply_apps(json)
        .await
        .map_err(|e| anyhow!(describe(&e)))?;
    let start = Instant::now();
    let tasks = loop {
        let tasks = client
            .tasks(None)
            .await
            .map_err(|e| anyhow!(describe(&e)))?;
        let running = tasks
            .iter()
            .filter(|t| t.status.state == weft_api::TaskState::Running)
            .count();
        if tasks.len() == 4 && running == 4 {
            break tasks;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let mut pending = Vec::new();
            for app in ["storefront", "orders"] {
                if let Ok(a) = client.app(app).await {
                    pending.extend(a.pending.iter().map(|r| format!("app {app}: {r}")));
                }
            }
            bail!("{}", not_started(&tasks, &pending, 4));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    progress(&format!(
        "4 tasks running after {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    println!();
    println!(
        "{:<14} {:<8} {:<15} {:<16} {:<8}",
        "task", "node", "ip", "epg", "state"
    );
    for t in &tasks {
        let epg = if t.app == "storefront" {
            "shop/store/web"
        } else {
            "shop/store/app"
        };
        println!(
            "{:<14} {:<8} {:<15} {:<16} running",
            t.id,
            t.node,
            t.ip.to_string(),
            epg
        );
    }
    let endpoints = client
        .endpoints()
        .await
        .map_err(|e| anyhow!(describe(&e)))?;
    let netns = |task: &str| {
        endpoints
            .iter()
            .find(|e| e.name == task)
            .map(|e| e.netns.clone())
    };
    let pick = |app: &str| tasks.iter().find(|t| t.app == app).cloned();
    let (Some(web), Some(orders)) = (pick("storefront"), pick("orders")) else {
        bail!("the apps have no tasks");
    };
    let (Some(web_ns), Some(orders_ns)) = (netns(&web.id), netns(&orders.id)) else {
        bail!("the tasks have no endpoints");
    };
    let rows = [
        (
            "apps: storefront -> orders 8080 (contract)",
            web_ns.clone(),
            orders.ip,
            8080,
            true,
        ),
        (
            "apps: orders -> storefront 80 (no contract)",
            orders_ns,
            web.ip,
            80,
            false,
        ),
        (
            "apps: storefront -> orders 80 (not in the contract)",
            web_ns,
            orders.ip,
            80,
            false,
        ),
    ];
    println!();
    let mut failures = 0;
    for (case, ns, ip, port, expected) in rows {
        let observed =
            tokio::task::spawn_blocking(move || probe::tcp_connect(&ns, ip, port).is_ok())
                .await
                .context("probe task")?;
        let verdict = |allowed: bool| if allowed { "allowed" } else { "blocked" };
        let ok = observed == expected;
        failures += usize::from(!ok);
        println!(
            "{case:<52} tcp/{port:<5} {:<8} {:<8} {}",
            verdict(expected),
            verdict(observed),
            if ok { "yes" } else { "NO" }
        );
    }
    Ok(failures)
}

/// The demo's error when its apps did not all start: how many run, the scheduler's
/// reasons (`pending`), then each task that is not running with its state and why.
fn not_started(tasks: &[weft_api::Task], pending: &[String], wanted: usize) -> String {
    let running = tasks
        .iter()
        .filter(|t| t.status.state == weft_api::TaskState::Running)
        .count();
    let mut text = format!("apps did not start within 60 s: {running} of {wanted} running");
    if tasks.len() < wanted {
        text.push_str(&format!(" ({} of {wanted} tasks placed)", tasks.len()));
    }
    for reason in pending {
        text.push_str(&format!("\n  {reason}"));
    }
    for t in tasks
        .iter()
        .filter(|t| t.status.state != weft_api::TaskState::Running)
    {
        text.push_str(&format!(
            "\n  task {} on node {}: {}",
            t.id,
            t.node,
            super::ps::state_and_reason(&t.status)
        ));
    }
    text
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

async fn wait_all_ready(client: &Client, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let endpoints = client
            .endpoints()
            .await
            .map_err(|e| anyhow!(describe(&e)))?;
        if let Some(failed) = endpoints
            .iter()
            .find(|e| e.status.state == EndpointState::Failed)
        {
            bail!(
                "endpoint {} failed: {}",
                failed.name,
                failed.status.message.clone().unwrap_or_default()
            );
        }
        if endpoints
            .iter()
            .all(|e| e.status.state == EndpointState::Ready)
        {
            return Ok(());
        }
        if start.elapsed() > limit {
            let pending: Vec<&str> = endpoints
                .iter()
                .filter(|e| e.status.state != EndpointState::Ready)
                .map(|e| e.name.as_str())
                .collect();
            bail!(
                "endpoints still pending after {}s: {}",
                limit.as_secs(),
                pending.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// `DEMO_PACKAGES` as `scripts/demo` sees it.
    fn demo_packages() -> Vec<String> {
        sourced_list("DEMO_PACKAGES")
    }

    /// A package list of `scripts/packages.sh` as the scripts see it: bash sources it.
    fn sourced_list(name: &str) -> Vec<String> {
        let out = std::process::Command::new("bash")
            .current_dir(repo())
            .args([
                "-c",
                &format!(r#"set -eu; . scripts/packages.sh; printf '%s\n' "${{{name}[@]}}""#),
            ])
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "sourcing scripts/packages.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The class of defect of issue 12: the demo runs a program (its apps exec
    /// `busybox`) whose package `scripts/demo` does not install, which only a machine
    /// that never ran `scripts/test` notices ("0 of 4 running").
    #[test]
    fn scripts_demo_installs_every_package_the_demo_runs() {
        let script = std::fs::read_to_string(repo().join("scripts/demo")).expect("scripts/demo");
        assert!(
            script
                .lines()
                .any(|l| l.trim() == r#"ensure_packages "${DEMO_PACKAGES[@]}""#),
            "scripts/demo must install DEMO_PACKAGES from scripts/packages.sh"
        );
        // It builds weft first, and the etcd-client crate's build script runs protoc: a
        // machine without protobuf-compiler failed `./scripts/demo` before the demo ran.
        assert!(
            script
                .lines()
                .any(|l| l.trim() == r#"ensure_packages "${BUILD_PACKAGES[@]}""#),
            "scripts/demo must install BUILD_PACKAGES from scripts/packages.sh"
        );
        assert!(
            sourced_list("BUILD_PACKAGES")
                .iter()
                .any(|p| p == "protobuf-compiler"),
            "BUILD_PACKAGES must hold protobuf-compiler (protoc, for etcd-client's build)"
        );
        let packages = demo_packages();
        let needs = needs().expect("the demo's needs");
        for program in ["nft", "ip", "busybox", "sh"] {
            assert!(
                needs.iter().any(|n| n.name == program),
                "the demo's preflight misses {program}: {needs:?}"
            );
        }
        let mut missing = Vec::new();
        for need in &needs {
            let Some(program) = preflight::known(&need.name) else {
                missing.push(format!(
                    "`{}` ({}) has no Debian package in preflight::PROGRAMS",
                    need.name, need.purpose
                ));
                continue;
            };
            if !program.essential && !packages.iter().any(|p| p == program.package) {
                missing.push(format!(
                    "`{}` ({}) needs {}, which DEMO_PACKAGES in scripts/packages.sh lacks",
                    need.name, need.purpose, program.package
                ));
            }
        }
        assert!(
            missing.is_empty(),
            "DEMO_PACKAGES = {packages:?}:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn the_apps_run_busybox_and_cat() {
        assert_eq!(
            app_programs().expect("apps"),
            vec!["busybox".to_string(), "/bin/cat".to_string()]
        );
    }

    #[test]
    fn tasks_that_do_not_run_are_listed_with_their_reason() {
        let task = |id: &str, state: weft_api::TaskState, message: Option<&str>| {
            let mut status = weft_api::TaskStatus::pending(None, EndpointState::Ready);
            status.state = state;
            status.message = message.map(str::to_string);
            weft_api::Task {
                id: id.to_string(),
                app: "storefront".to_string(),
                version: 1,
                node: "com1".to_string(),
                ip: "10.1.0.5".parse().expect("ip"),
                mac: weft_api::MacAddr([2, 0, 0, 0, 0, 5]),
                created_ms: 0,
                env: None,
                status,
            }
        };
        let why = "exited with code 127 (command not found): sh: 1: exec: busybox: not found";
        let tasks = [
            task("storefront-1", weft_api::TaskState::Failed, Some(why)),
            task("storefront-2", weft_api::TaskState::Running, None),
            task("orders-1", weft_api::TaskState::Starting, None),
        ];
        let text = not_started(&tasks, &["app orders: no node has 0.1 cpus free".into()], 4);
        assert_eq!(
            text,
            format!(
                "apps did not start within 60 s: 1 of 4 running (3 of 4 tasks placed)\n  \
                 app orders: no node has 0.1 cpus free\n  \
                 task storefront-1 on node com1: failed: {why}\n  \
                 task orders-1 on node com1: starting: no reason reported yet"
            )
        );
    }
}
