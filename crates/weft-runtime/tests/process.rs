//! The process runtime against real namespaces, cgroups and processes (root only).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{DnsResponder, TestNetns, host_resolv_conf, need_root, ns_id};
use weft_runtime::caps::{CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN, ProcessCaps};
use weft_runtime::cgroup::CgroupLayout;
use weft_runtime::logs::collect_output;
use weft_runtime::{
    LogOptions, Output, ProcessRuntime, RuntimeError, TaskDns, TaskIdentity, TaskSpec, TaskStatus,
    task_env,
};

fn runtime() -> (ProcessRuntime, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::new(state.path()).expect("process runtime");
    (rt, state)
}

fn task_id(tag: &str) -> String {
    format!("weft-rt-{}-{tag}", std::process::id())
}

async fn stdout_of(rt: &ProcessRuntime, task: &str) -> String {
    let bytes = collect_output(rt.logs(task, LogOptions::default()), Output::Stdout)
        .await
        .expect("logs");
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn task_runs_in_its_netns_with_limits_logs_and_stop() {
    if !need_root("task_runs_in_its_netns_with_limits_logs_and_stop") {
        return;
    }
    let ns = TestNetns::new("p1");
    let (rt, _state) = runtime();
    let id = task_id("p1");
    let spec = TaskSpec::process(
        &id,
        &ns.name,
        &[
            "sh",
            "-c",
            "ip -o link | cut -d: -f2; echo to-stderr >&2; exec sleep 60",
        ],
    )
    .with_limits(0.5, 64);
    let started = rt.start(&spec).await.expect("start");
    assert!(matches!(
        rt.status(&id).await.expect("status"),
        TaskStatus::Running { .. }
    ));

    // Inside the namespace from its first instruction.
    assert_eq!(
        ns_id(&format!("/proc/{}/ns/net", started.pid)),
        ns_id(ns.path().to_str().expect("path"))
    );

    // Limits written in the task's own cgroup, and the task is in it.
    let dirs = rt.cgroup_dirs(&id);
    match rt.cgroup_layout() {
        CgroupLayout::V1 { .. } => {
            let cpu = &dirs[0];
            assert_eq!(
                std::fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
                    .expect("quota")
                    .trim(),
                "50000"
            );
            assert_eq!(
                std::fs::read_to_string(cpu.join("cpu.cfs_period_us"))
                    .expect("period")
                    .trim(),
                "100000"
            );
            let mem = dirs.last().expect("memory dir");
            assert_eq!(
                std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
                    .expect("limit")
                    .trim(),
                (64u64 << 20).to_string()
            );
        }
        CgroupLayout::V2 { .. } => {
            assert_eq!(
                std::fs::read_to_string(dirs[0].join("cpu.max"))
                    .expect("cpu.max")
                    .trim(),
                "50000 100000"
            );
            assert_eq!(
                std::fs::read_to_string(dirs[0].join("memory.max"))
                    .expect("memory.max")
                    .trim(),
                (64u64 << 20).to_string()
            );
        }
    }
    for dir in &dirs {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).expect("procs");
        assert!(
            procs.lines().any(|l| l.trim() == started.pid.to_string()),
            "{procs}"
        );
    }

    // Only the namespace's own interfaces: lo and the veth pair.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = stdout_of(&rt, &id).await;
    let mut seen: Vec<&str> = out
        .lines()
        .map(|l| l.trim().split('@').next().unwrap_or(""))
        .collect();
    seen.sort_unstable();
    let mut want = vec!["lo", ns.inner.as_str(), ns.outer.as_str()];
    want.sort_unstable();
    assert_eq!(seen, want, "interfaces seen by the task");
    let err = collect_output(rt.logs(&id, LogOptions::default()), Output::Stderr)
        .await
        .expect("logs");
    assert_eq!(err, b"to-stderr\n");

    let exit = rt.stop(&id, Duration::from_secs(5)).await.expect("stop");
    assert_eq!(exit.signal, Some(libc::SIGTERM), "{exit:?}");
    for dir in &dirs {
        assert!(!dir.exists(), "cgroup {} must be removed", dir.display());
    }
    assert!(matches!(
        rt.status(&id).await,
        Err(RuntimeError::UnknownTask(_))
    ));
    // Logs outlive the task.
    assert!(stdout_of(&rt, &id).await.contains("lo"));
}

#[tokio::test]
async fn stop_kills_a_task_that_ignores_sigterm() {
    if !need_root("stop_kills_a_task_that_ignores_sigterm") {
        return;
    }
    let ns = TestNetns::new("p2");
    let (rt, _state) = runtime();
    let id = task_id("p2");
    let spec = TaskSpec::process(
        &id,
        &ns.name,
        &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    );
    rt.start(&spec).await.expect("start");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let exit = rt
        .stop(&id, Duration::from_millis(300))
        .await
        .expect("stop");
    assert_eq!(exit.signal, Some(libc::SIGKILL), "{exit:?}");
    for dir in rt.cgroup_dirs(&id) {
        assert!(!dir.exists(), "cgroup {} must be removed", dir.display());
    }
}

#[tokio::test]
async fn memory_limit_is_enforced_and_oom_reported() {
    if !need_root("memory_limit_is_enforced_and_oom_reported") {
        return;
    }
    let ns = TestNetns::new("p3");
    let (rt, _state) = runtime();
    let id = task_id("p3");
    // `tail` buffers /dev/zero looking for a newline that never comes: unbounded growth.
    let spec = TaskSpec::process(&id, &ns.name, &["tail", "/dev/zero"]).with_limits(1.0, 16);
    rt.start(&spec).await.expect("start");
    let exit = tokio::time::timeout(Duration::from_secs(30), rt.wait(&id))
        .await
        .expect("OOM kill within 30 s")
        .expect("wait");
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.signal, Some(libc::SIGKILL), "{exit:?}");
    assert!(matches!(rt.status(&id).await.expect("status"), TaskStatus::Exited(e) if e.oom_killed));
    let stopped = rt
        .stop(&id, Duration::from_secs(1))
        .await
        .expect("stop after exit");
    assert!(stopped.oom_killed);
    for dir in rt.cgroup_dirs(&id) {
        assert!(!dir.exists(), "cgroup {} must be removed", dir.display());
    }
}

const TRY_NET_ADMIN: &str = "ip addr add 10.250.0.1/24 dev $IF 2>&1; echo addr_rc=$?; ip link set $IF down 2>&1; echo link_rc=$?";

#[tokio::test]
async fn capabilities_unprivileged_cannot_reconfigure_network_privileged_can() {
    if !need_root("capabilities_unprivileged_cannot_reconfigure_network_privileged_can") {
        return;
    }
    let (rt, _state) = runtime();
    for privileged in [false, true] {
        let tag = if privileged { "p4p" } else { "p4u" };
        let ns = TestNetns::new(tag);
        let id = task_id(tag);
        let env = BTreeMap::from([("IF".to_string(), ns.inner.clone())]);
        let script = format!("{TRY_NET_ADMIN}; exec sleep 60");
        let spec = TaskSpec::process(&id, &ns.name, &["sh", "-c", &script])
            .with_env(env)
            .with_privileged(privileged);
        let started = rt.start(&spec).await.expect("start");
        let mut out = String::new();
        for _ in 0..50 {
            out = stdout_of(&rt, &id).await;
            if out.contains("link_rc=") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = ProcessCaps::read(started.pid).expect("caps");
        let link = ns.ip(&["-o", "link", "show", &ns.inner]);
        let addrs = ns.ip(&["-o", "addr", "show", &ns.inner]);
        if privileged {
            assert!(
                out.contains("addr_rc=0") && out.contains("link_rc=0"),
                "{out}"
            );
            assert!(caps.has(CAP_NET_ADMIN));
            assert!(addrs.contains("10.250.0.1/24"), "{addrs}");
            assert!(!link.contains(",UP"), "{link}");
        } else {
            assert!(out.contains("Operation not permitted"), "{out}");
            assert!(
                !out.contains("addr_rc=0") && !out.contains("link_rc=0"),
                "{out}"
            );
            for cap in [CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN] {
                assert!(!caps.has(cap), "cap {cap} in {caps:?}");
                assert_eq!(caps.bounding & (1 << cap), 0, "cap {cap} in bounding set");
            }
            assert_eq!(caps.inheritable, 0);
            assert_eq!(caps.ambient, 0);
            assert!(caps.no_new_privs);
            assert!(!addrs.contains("10.250.0.1"), "{addrs}");
            // An exec (health check) gets the task's privileges, not the agent's.
            let argv: Vec<String> = ["ip", "link", "set", &ns.inner, "down"]
                .map(String::from)
                .to_vec();
            let exec = rt
                .exec(&id, &argv, Duration::from_secs(5))
                .await
                .expect("exec");
            assert!(!exec.success(), "{exec:?}");
            assert!(
                String::from_utf8_lossy(&exec.stderr).contains("Operation not permitted"),
                "{exec:?}"
            );
        }
        rt.stop(&id, Duration::from_secs(2)).await.expect("stop");
    }
}

#[tokio::test]
async fn task_sees_weft_env_and_nothing_of_the_agent() {
    if !need_root("task_sees_weft_env_and_nothing_of_the_agent") {
        return;
    }
    let ns = TestNetns::new("p5");
    let (rt, _state) = runtime();
    let id = task_id("p5");
    let identity = TaskIdentity {
        app: "shop".into(),
        task: id.clone(),
        node: "node-1".into(),
        ip: "10.1.0.5".parse().expect("ip"),
        epg: "acme/shop/web".into(),
        gateway: "10.1.0.1".parse().expect("ip"),
        controller: Some("http://10.0.0.1:7070".into()),
    };
    let app_env = BTreeMap::from([("GREETING".to_string(), "hello world".to_string())]);
    let spec = TaskSpec::process(&id, &ns.name, &["env"]).with_env(task_env(&identity, &app_env));
    rt.start(&spec).await.expect("start");
    let exit = rt.wait(&id).await.expect("wait");
    assert!(exit.success(), "{exit:?}");
    let out = stdout_of(&rt, &id).await;
    for line in [
        "WEFT_APP=shop".to_string(),
        format!("WEFT_TASK={id}"),
        "WEFT_NODE=node-1".into(),
        "WEFT_IP=10.1.0.5".into(),
        "WEFT_EPG=acme/shop/web".into(),
        "WEFT_GATEWAY=10.1.0.1".into(),
        "WEFT_CONTROLLER=http://10.0.0.1:7070".into(),
        "GREETING=hello world".into(),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line} in:\n{out}");
    }
    assert!(!out.contains("CARGO"), "agent env leaked:\n{out}");
    rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
}

#[tokio::test]
async fn follow_streams_until_exit() {
    if !need_root("follow_streams_until_exit") {
        return;
    }
    let ns = TestNetns::new("p6");
    let (rt, _state) = runtime();
    let id = task_id("p6");
    let spec = TaskSpec::process(
        &id,
        &ns.name,
        &[
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; sleep 0.1; done",
        ],
    );
    rt.start(&spec).await.expect("start");
    let out = collect_output(rt.logs(&id, LogOptions { follow: true }), Output::Stdout)
        .await
        .expect("follow");
    assert_eq!(String::from_utf8_lossy(&out), "line1\nline2\nline3\n");
    rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
}

#[tokio::test]
async fn bad_starts_are_typed_errors() {
    if !need_root("bad_starts_are_typed_errors") {
        return;
    }
    let (rt, _state) = runtime();
    let missing = TaskSpec::process(&task_id("p7"), &common::ns_name("absent"), &["true"]);
    assert!(matches!(
        rt.start(&missing).await,
        Err(RuntimeError::Netns { .. })
    ));
    assert!(
        rt.cgroup_dirs(&missing.id).iter().all(|d| !d.exists()),
        "no cgroup left behind"
    );

    let ns = TestNetns::new("p7");
    let no_such_program =
        TaskSpec::process(&task_id("p7"), &ns.name, &["/nonexistent/weft-program"]);
    assert!(matches!(
        rt.start(&no_such_program).await,
        Err(RuntimeError::Spawn { .. })
    ));
    assert!(
        rt.cgroup_dirs(&no_such_program.id)
            .iter()
            .all(|d| !d.exists()),
        "no cgroup left behind"
    );

    let image = TaskSpec::container(&task_id("p7"), &ns.name, "busybox", &[]);
    assert!(matches!(
        rt.start(&image).await,
        Err(RuntimeError::InvalidSpec { .. })
    ));
    assert!(matches!(
        rt.stop("weft-nope", Duration::from_secs(1)).await,
        Err(RuntimeError::UnknownTask(_))
    ));
}

/// The identity of a task whose endpoint's gateway is `gateway`.
fn identity_with_gateway(task: &str, gateway: &str) -> TaskIdentity {
    TaskIdentity {
        app: "shop".into(),
        task: task.to_string(),
        node: "node-1".into(),
        ip: "10.213.0.5".parse().expect("ip"),
        epg: "acme/shop/web".into(),
        gateway: gateway.parse().expect("ip"),
        controller: None,
    }
}

/// Polls the task's stdout until it holds `marker`.
async fn stdout_until(rt: &ProcessRuntime, task: &str, marker: &str) -> String {
    let mut out = String::new();
    for _ in 0..200 {
        out = stdout_of(rt, task).await;
        if out.contains(marker) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out
}

/// Lines of `/proc/self/mountinfo` that mention `dir` (a task's bind mount leaking to
/// the host would).
fn host_mounts_of(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(&dir))
        .map(String::from)
        .collect()
}

const GATEWAY: &str = "10.213.0.1";
const SERVICE: &str = "name.service.weft";
const SERVICE_IP: &str = "10.213.7.7";

#[tokio::test]
async fn process_task_resolves_names_at_its_gateway() {
    if !need_root("process_task_resolves_names_at_its_gateway") {
        return;
    }
    let Some(host_before) = host_resolv_conf() else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "!!! SKIPPED process_task_resolves_names_at_its_gateway: the host has no /etc/resolv.conf"
        );
        return;
    };
    let ns = TestNetns::new("p8");
    // The gateway address inside the endpoint's namespace, as the agent's anycast address
    // would be reachable from it; the test's own DNS server answers there.
    ns.ip(&["addr", "add", &format!("{GATEWAY}/32"), "dev", "lo"]);
    let dns = DnsResponder::start(
        &ns.path(),
        GATEWAY.parse().expect("ip"),
        SERVICE,
        SERVICE_IP.parse().expect("ip"),
    );
    let (rt, state) = runtime();
    let id = task_id("p8");
    let script = format!(
        "cat /etc/resolv.conf; echo ---; getent hosts {SERVICE}; echo getent_rc=$?; exec sleep 60"
    );
    let spec = TaskSpec::process(&id, &ns.name, &["sh", "-c", &script]).with_env(task_env(
        &identity_with_gateway(&id, GATEWAY),
        &BTreeMap::new(),
    ));
    let started = rt.start(&spec).await.expect("start");
    let out = stdout_until(&rt, &id, "getent_rc=").await;
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

    // A health check (exec) sees the task's resolver too.
    let exec = rt
        .exec(
            &id,
            &["cat".to_string(), "/etc/resolv.conf".to_string()],
            Duration::from_secs(5),
        )
        .await
        .expect("exec");
    assert!(exec.success(), "{exec:?}");
    assert_eq!(String::from_utf8_lossy(&exec.stdout), resolv);

    // The task's mount namespace has the bind mount; the host saw none of it: same
    // file, no mount of the task's.
    let task_mounts =
        std::fs::read_to_string(format!("/proc/{}/mountinfo", started.pid)).expect("mountinfo");
    let state_dir = state.path().to_string_lossy().into_owned();
    assert!(
        task_mounts
            .lines()
            .any(|l| l.contains(&state_dir) && l.contains(" /etc/resolv.conf ")),
        "{task_mounts}"
    );
    assert_eq!(host_resolv_conf().as_deref(), Some(&host_before[..]));
    assert_eq!(host_mounts_of(state.path()), Vec::<String>::new());
    rt.stop(&id, Duration::from_secs(2)).await.expect("stop");
    assert_eq!(host_resolv_conf().as_deref(), Some(&host_before[..]));
}

#[tokio::test]
async fn host_dns_or_no_gateway_keeps_the_hosts_resolver() {
    if !need_root("host_dns_or_no_gateway_keeps_the_hosts_resolver") {
        return;
    }
    let Some(host) = host_resolv_conf() else {
        return;
    };
    let ns = TestNetns::new("p9");
    let (rt, _state) = runtime();
    let env = task_env(&identity_with_gateway("x", GATEWAY), &BTreeMap::new());
    let specs = [
        TaskSpec::process(&task_id("p9h"), &ns.name, &["cat", "/etc/resolv.conf"])
            .with_env(env)
            .with_dns(TaskDns::Host),
        TaskSpec::process(&task_id("p9n"), &ns.name, &["cat", "/etc/resolv.conf"]),
    ];
    for spec in specs {
        rt.start(&spec).await.expect("start");
        assert!(rt.wait(&spec.id).await.expect("wait").success());
        assert_eq!(stdout_of(&rt, &spec.id).await.as_bytes(), &host[..]);
        rt.stop(&spec.id, Duration::from_secs(1))
            .await
            .expect("stop");
    }
}

#[tokio::test]
async fn a_gateway_that_is_not_an_address_is_an_invalid_spec() {
    let (rt, _state) = runtime();
    let env = BTreeMap::from([("WEFT_GATEWAY".to_string(), "gw".to_string())]);
    let spec = TaskSpec::process(&task_id("p10"), "weft-rt-none", &["true"]).with_env(env);
    assert!(matches!(
        rt.start(&spec).await,
        Err(RuntimeError::InvalidSpec { .. })
    ));
}
