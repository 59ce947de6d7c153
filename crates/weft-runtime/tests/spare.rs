//! Tasks started on spare processes (root, cgroup v1 only). `harness = false`: this
//! binary is also the spares' shim, so `main` dispatches on [`SHIM_ARG`] first, as the
//! `weft` binary does.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{DnsResponder, TestNetns, host_resolv_conf, need_root};
use weft_runtime::cgroup::CgroupLayout;
use weft_runtime::logs::collect_output;
use weft_runtime::spare::{SHIM_ARG, SparePool, shim_main};
use weft_runtime::{LogOptions, Output, ProcessRuntime, TaskIdentity, TaskSpec, task_env};

const GATEWAY: &str = "10.213.0.1";
const SERVICE: &str = "name.service.weft";
const SERVICE_IP: &str = "10.213.7.7";

fn main() {
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(SHIM_ARG)) {
        shim_main();
    }
    // `cargo test -- --list` and the like: this binary has one test.
    if std::env::args().any(|a| a == "--list") {
        println!("spare_task_resolves_names_at_its_gateway: test");
        return;
    }
    let name = "spare_task_resolves_names_at_its_gateway";
    if !selected(name) {
        println!("\nrunning 0 tests");
        return;
    }
    println!("\nrunning 1 test");
    if !need_root(name) {
        println!("test {name} ... skipped (not root)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    match rt.block_on(spare_task_resolves_names_at_its_gateway()) {
        Some(()) => println!("test {name} ... ok"),
        None => println!("test {name} ... skipped"),
    }
}

/// Whether libtest-style arguments (`cargo test -p weft-runtime FILTER -- --skip S`)
/// select the test `name`.
fn selected(name: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let takes_value = [
        "--skip",
        "--test-threads",
        "--format",
        "--color",
        "--logfile",
        "-Z",
    ];
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if takes_value.contains(&arg.as_str()) {
            if arg == "--skip" && i + 1 < args.len() {
                skips.push(args[i + 1].clone());
            }
            i += 2;
            continue;
        }
        if !arg.starts_with('-') {
            filters.push(arg.clone());
        }
        i += 1;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let matches = |f: &String| {
        if exact {
            f == name
        } else {
            name.contains(f.as_str())
        }
    };
    (filters.is_empty() || filters.iter().any(matches)) && !skips.iter().any(matches)
}

/// `None` when it cannot run here (said loudly on stderr).
async fn spare_task_resolves_names_at_its_gateway() -> Option<()> {
    use std::io::Write;
    let skip = |why: &str| {
        let _ = writeln!(
            std::io::stderr(),
            "!!! SKIPPED spare_task_resolves_names_at_its_gateway: {why}"
        );
    };
    let Some(host_before) = host_resolv_conf() else {
        skip("the host has no /etc/resolv.conf");
        return None;
    };
    let layout = CgroupLayout::detect().expect("cgroups");
    let scope = format!("weft-rt-{}-spare", std::process::id());
    let exe = std::env::current_exe().expect("own exe");
    let Some(pool) = SparePool::new(exe, layout.clone(), 1, Some(&scope)) else {
        skip("no spares on cgroup v2");
        return None;
    };
    let state = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::with_cgroups(state.path(), layout)
        .expect("runtime")
        .with_cgroup_scope(&scope)
        .expect("scope")
        .with_spares(pool.clone());

    let ns = TestNetns::new("s1");
    ns.ip(&["addr", "add", &format!("{GATEWAY}/32"), "dev", "lo"]);
    let dns = DnsResponder::start(
        &ns.path(),
        GATEWAY.parse().expect("ip"),
        SERVICE,
        SERVICE_IP.parse().expect("ip"),
    );

    // Wait for the spare, and let it age: a task whose process is older than the start
    // call ran on it (a direct start forks after the call).
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool.ready() == 0 {
        assert!(Instant::now() < deadline, "the pool made no spare");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_start = uptime_ticks();

    let id = format!("weft-rt-{}-s1", std::process::id());
    let identity = TaskIdentity {
        app: "shop".into(),
        task: id.clone(),
        node: "node-1".into(),
        ip: "10.213.0.5".parse().expect("ip"),
        epg: "acme/shop/web".into(),
        gateway: GATEWAY.parse().expect("ip"),
        controller: None,
    };
    let script = format!(
        "cat /etc/resolv.conf; echo ---; getent hosts {SERVICE}; echo getent_rc=$?; exec sleep 60"
    );
    let spec = TaskSpec::process(&id, &ns.name, &["sh", "-c", &script])
        .with_env(task_env(&identity, &BTreeMap::new()));
    let started = rt.start(&spec).await.expect("start");
    let born = start_ticks(started.pid);
    assert!(
        born + 10 < before_start,
        "the task did not start on the spare (born at tick {born}, start at {before_start})"
    );

    let mut out = String::new();
    for _ in 0..200 {
        let bytes = collect_output(rt.logs(&id, LogOptions::default()), Output::Stdout)
            .await
            .expect("logs");
        out = String::from_utf8_lossy(&bytes).into_owned();
        if out.contains("getent_rc=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (resolv, lookup) = out.split_once("---\n").expect("two parts");
    let servers: Vec<&str> = resolv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(servers, [format!("nameserver {GATEWAY}")], "{out}");
    assert!(lookup.contains("getent_rc=0"), "{out}");
    let answer: Vec<&str> = lookup
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(answer, [SERVICE_IP, SERVICE], "{out}");
    assert!(dns.queries() > 0);

    // The host's file and mount table are untouched.
    assert_eq!(host_resolv_conf().as_deref(), Some(&host_before[..]));
    let state_dir: PathBuf = state.path().into();
    let leaked: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(&*state_dir.to_string_lossy()))
        .map(String::from)
        .collect();
    assert_eq!(leaked, Vec::<String>::new());

    rt.stop(&id, Duration::from_secs(2)).await.expect("stop");
    let p = pool.clone();
    tokio::task::spawn_blocking(move || p.close())
        .await
        .expect("close");
    drop(rt);
    // The spare's shim removes its own cgroup when its pipe closes: give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for dir in CgroupLayout::detect().expect("cgroups").task_dirs(&scope) {
        let _ = std::fs::remove_dir(dir);
    }
    assert_eq!(host_resolv_conf().as_deref(), Some(&host_before[..]));
    Some(())
}

/// Clock ticks since boot, now (from `/proc/uptime`, 10 ms resolution).
fn uptime_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/uptime").expect("uptime");
    let secs: f64 = text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("uptime seconds");
    (secs * ticks_per_second() as f64) as u64
}

/// When `pid` was forked, in clock ticks since boot (`/proc/<pid>/stat` field 22).
fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    // Field 3 is the first after the command; starttime is field 22.
    after_comm
        .split_whitespace()
        .nth(22 - 3)
        .and_then(|s| s.parse().ok())
        .expect("starttime")
}

fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |hz| hz.max(1) as u64)
}
