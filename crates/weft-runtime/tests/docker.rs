//! The Docker runtime against the real engine (root; dockerd must be running: these tests
//! FAIL, not skip, when it is not). The image is built locally FROM scratch + busybox.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{
    DnsResponder, TEST_IMAGE, TestNetns, build_test_image, host_resolv_conf, need_root, ns_id,
    ns_name,
};
use weft_runtime::docker::{DEFAULT_SOCKET, container_name};
use weft_runtime::logs::collect_output;
use weft_runtime::netns::netns_path;
use weft_runtime::{
    DockerRuntime, LogOptions, Output, RuntimeError, TaskIdentity, TaskSpec, TaskStatus, task_env,
};

fn task_id(tag: &str) -> String {
    format!("weft-rt-{}-{tag}", std::process::id())
}

/// Connected runtime with the test image present; panics (fails the test) if dockerd is down.
async fn docker() -> DockerRuntime {
    let rt = DockerRuntime::new(DEFAULT_SOCKET);
    rt.ping()
        .await
        .expect("dockerd must be running for the docker tests (scripts/test starts it)");
    tokio::task::spawn_blocking(build_test_image)
        .await
        .expect("image build");
    rt
}

/// No container of that name, running or not.
fn assert_no_container(task: &str) {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("name=^/{}$", container_name(task)),
        ])
        .output()
        .expect("docker ps");
    assert!(
        out.stdout.is_empty(),
        "container {} left behind",
        container_name(task)
    );
}

/// Removes a test container and its published namespace, by exact name, if a failed
/// assertion left them.
struct ContainerGuard {
    task: String,
    netns: String,
}
impl ContainerGuard {
    fn new(task: &str, netns: &str) -> Self {
        ContainerGuard {
            task: task.to_string(),
            netns: netns.to_string(),
        }
    }
}
impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &container_name(&self.task)])
            .output();
        if netns_path(&self.netns).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.netns])
                .output();
        }
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn container_runs_in_published_netns_with_limits_logs_and_stop() {
    if !need_root("container_runs_in_published_netns_with_limits_logs_and_stop") {
        return;
    }
    let rt = docker().await;
    let fabric = TestNetns::new("d1");
    let id = task_id("d1");
    let endpoint_ns = ns_name("d1ep");
    let _guard = ContainerGuard::new(&id, &endpoint_ns);
    let spec = TaskSpec::container(
        &id,
        &endpoint_ns,
        TEST_IMAGE,
        &["sh", "-c", "echo hello; echo oops >&2; exec sleep 300"],
    )
    .with_limits(0.5, 64);
    let started = rt.start(&spec).await.expect("start");
    assert!(started.container_id.is_some());

    // The container's namespace is published under the endpoint's name ...
    let published = netns_path(&endpoint_ns);
    assert_eq!(
        ns_id(published.to_str().expect("path")),
        ns_id(&format!("/proc/{}/ns/net", started.pid))
    );
    // ... where the fabric plumbs the endpoint veth; the task sees it, and nothing else but lo.
    fabric.move_outer_to(&endpoint_ns);
    let exec = rt
        .exec(&id, &argv(&["ip", "-o", "link"]), Duration::from_secs(10))
        .await
        .expect("exec");
    let links = String::from_utf8_lossy(&exec.stdout).into_owned();
    assert!(exec.success(), "{exec:?}");
    assert!(links.contains(&format!(": {}@", fabric.outer)), "{links}");
    assert_eq!(
        links.lines().count(),
        2,
        "only lo and the endpoint veth:\n{links}"
    );

    // Limits through HostConfig.
    let limits = common::run(&[
        "docker",
        "inspect",
        "-f",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.NetworkMode}}",
        &container_name(&id),
    ]);
    assert_eq!(limits.trim(), format!("500000000 {} none", 64u64 << 20));

    assert!(matches!(
        rt.status(&id).await.expect("status"),
        TaskStatus::Running { .. }
    ));
    let out = collect_output(rt.logs(&id, LogOptions::default()), Output::Stdout)
        .await
        .expect("logs");
    let err = collect_output(rt.logs(&id, LogOptions::default()), Output::Stderr)
        .await
        .expect("logs");
    assert_eq!(out, b"hello\n");
    assert_eq!(err, b"oops\n");

    let exit = rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
    assert!(exit.code.is_some(), "{exit:?}");
    assert_no_container(&id);
    assert!(!published.exists(), "published netns must be removed");
    assert!(matches!(
        rt.status(&id).await,
        Err(RuntimeError::UnknownTask(_))
    ));
}

#[tokio::test]
async fn container_capabilities_both_ways() {
    if !need_root("container_capabilities_both_ways") {
        return;
    }
    let rt = docker().await;
    for privileged in [false, true] {
        let tag = if privileged { "d2p" } else { "d2u" };
        let fabric = TestNetns::new(tag);
        let id = task_id(tag);
        let endpoint_ns = ns_name(&format!("{tag}ep"));
        let _guard = ContainerGuard::new(&id, &endpoint_ns);
        let spec = TaskSpec::container(&id, &endpoint_ns, TEST_IMAGE, &["sleep", "300"])
            .with_privileged(privileged);
        rt.start(&spec).await.expect("start");
        fabric.move_outer_to(&endpoint_ns);
        let dev = fabric.outer.as_str();
        let add = rt
            .exec(
                &id,
                &argv(&["ip", "addr", "add", "10.250.0.2/24", "dev", dev]),
                Duration::from_secs(10),
            )
            .await
            .expect("exec");
        // The veth arrives down (moving a link resets it): bringing it up is a real change.
        let up = rt
            .exec(
                &id,
                &argv(&["ip", "link", "set", dev, "up"]),
                Duration::from_secs(10),
            )
            .await
            .expect("exec");
        let status = rt
            .exec(
                &id,
                &argv(&["cat", "/proc/self/status"]),
                Duration::from_secs(10),
            )
            .await
            .expect("exec");
        let caps = weft_runtime::caps::ProcessCaps::parse(&String::from_utf8_lossy(&status.stdout))
            .expect("caps");
        if privileged {
            assert!(add.success() && up.success(), "{add:?} {up:?}");
            assert!(caps.has(weft_runtime::caps::CAP_NET_ADMIN));
        } else {
            assert!(!add.success() && !up.success(), "{add:?} {up:?}");
            let text = String::from_utf8_lossy(&add.stderr).to_lowercase();
            assert!(text.contains("not permitted"), "{text}");
            for cap in [
                weft_runtime::caps::CAP_NET_ADMIN,
                weft_runtime::caps::CAP_NET_RAW,
                weft_runtime::caps::CAP_SYS_ADMIN,
            ] {
                assert!(
                    !caps.has(cap) && caps.bounding & (1 << cap) == 0,
                    "cap {cap}: {caps:?}"
                );
            }
            assert!(caps.no_new_privs);
        }
        rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
        assert_no_container(&id);
    }
}

#[tokio::test]
async fn container_sees_weft_env() {
    if !need_root("container_sees_weft_env") {
        return;
    }
    let rt = docker().await;
    let id = task_id("d3");
    let _guard = ContainerGuard::new(&id, &ns_name("d3ep"));
    let identity = TaskIdentity {
        app: "shop".into(),
        task: id.clone(),
        node: "node-1".into(),
        ip: "10.1.0.6".parse().expect("ip"),
        epg: "acme/shop/db".into(),
        gateway: "10.1.0.1".parse().expect("ip"),
        controller: None,
    };
    let app_env = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
    // It lingers a moment: a container gone before its namespace is published fails to
    // start (reported as a failed start, which is right, but not what this test checks).
    let spec = TaskSpec::container(
        &id,
        &ns_name("d3ep"),
        TEST_IMAGE,
        &["sh", "-c", "env; sleep 1"],
    )
    .with_env(task_env(&identity, &app_env));
    rt.start(&spec).await.expect("start");
    let exit = rt.wait(&id).await.expect("wait");
    assert_eq!(exit.code, Some(0), "{exit:?}");
    let out = collect_output(rt.logs(&id, LogOptions { follow: true }), Output::Stdout)
        .await
        .expect("logs");
    let out = String::from_utf8_lossy(&out);
    for line in [
        "WEFT_APP=shop".to_string(),
        format!("WEFT_TASK={id}"),
        "WEFT_NODE=node-1".into(),
        "WEFT_IP=10.1.0.6".into(),
        "WEFT_EPG=acme/shop/db".into(),
        "WEFT_GATEWAY=10.1.0.1".into(),
        "GREETING=hi".into(),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line} in:\n{out}");
    }
    rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
    assert_no_container(&id);
}

#[tokio::test]
async fn oom_in_container_is_reported() {
    if !need_root("oom_in_container_is_reported") {
        return;
    }
    let rt = docker().await;
    let id = task_id("d4");
    let _guard = ContainerGuard::new(&id, &ns_name("d4ep"));
    let spec = TaskSpec::container(
        &id,
        &ns_name("d4ep"),
        TEST_IMAGE,
        // Started before it grows, so the namespace is published first (see d3).
        &["sh", "-c", "sleep 1; exec tail /dev/zero"],
    )
    .with_limits(1.0, 16);
    rt.start(&spec).await.expect("start");
    let exit = tokio::time::timeout(Duration::from_secs(30), rt.wait(&id))
        .await
        .expect("OOM kill within 30 s")
        .expect("wait");
    assert!(exit.oom_killed, "{exit:?}");
    rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
    assert_no_container(&id);
}

/// No root and no engine needed: an absent or dead engine is a typed error, never a panic.
#[tokio::test]
async fn absent_engine_is_a_typed_error() {
    let bogus = format!("/tmp/weft-rt-{}-no-such-docker.sock", std::process::id());
    let rt = DockerRuntime::new(bogus.clone());
    assert!(matches!(
        rt.ping().await,
        Err(RuntimeError::EngineUnavailable { .. })
    ));
    let spec = TaskSpec::container(&task_id("d5"), &ns_name("d5ep"), TEST_IMAGE, &[]);
    let err = rt.start(&spec).await.expect_err("no engine");
    assert!(
        matches!(&err, RuntimeError::EngineUnavailable { socket, .. } if *socket == bogus),
        "{err}"
    );
    assert!(matches!(
        rt.status("x").await,
        Err(RuntimeError::EngineUnavailable { .. })
    ));
    let logs = collect_output(rt.logs("x", LogOptions::default()), Output::Stdout).await;
    assert!(matches!(logs, Err(RuntimeError::EngineUnavailable { .. })));

    // An engine that stopped: the socket file is there, nobody listens.
    let dir = tempfile::tempdir().expect("tempdir");
    let stale = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let rt = DockerRuntime::new(stale.to_str().expect("path"));
    assert!(matches!(
        rt.ping().await,
        Err(RuntimeError::EngineUnavailable { .. })
    ));
}

#[tokio::test]
async fn container_resolves_names_at_its_gateway() {
    if !need_root("container_resolves_names_at_its_gateway") {
        return;
    }
    const GATEWAY: &str = "10.213.0.1";
    const SERVICE: &str = "name.service.weft";
    const SERVICE_IP: &str = "10.213.7.7";
    let rt = docker().await;
    let host_before = host_resolv_conf();
    let id = task_id("d6");
    let endpoint_ns = ns_name("d6ep");
    let _guard = ContainerGuard::new(&id, &endpoint_ns);
    let identity = TaskIdentity {
        app: "shop".into(),
        task: id.clone(),
        node: "node-1".into(),
        ip: "10.213.0.6".parse().expect("ip"),
        epg: "acme/shop/db".into(),
        gateway: GATEWAY.parse().expect("ip"),
        controller: None,
    };
    let spec = TaskSpec::container(&id, &endpoint_ns, TEST_IMAGE, &["sleep", "300"])
        .with_env(task_env(&identity, &BTreeMap::new()));
    rt.start(&spec).await.expect("start");

    let exec = rt
        .exec(
            &id,
            &argv(&["cat", "/etc/resolv.conf"]),
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert!(exec.success(), "{exec:?}");
    let resolv = String::from_utf8_lossy(&exec.stdout).into_owned();
    let nameservers: Vec<&str> = resolv
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    assert_eq!(nameservers, [format!("nameserver {GATEWAY}")], "{resolv}");
    assert!(
        !resolv.lines().any(|l| l.starts_with("search")),
        "no search domain of the node's:\n{resolv}"
    );

    // The gateway inside the published namespace, the test's own DNS server there, and
    // the container's resolver (busybox nslookup) asks it.
    let published = netns_path(&endpoint_ns);
    common::run(&[
        "ip",
        "netns",
        "exec",
        &endpoint_ns,
        "ip",
        "addr",
        "add",
        &format!("{GATEWAY}/32"),
        "dev",
        "lo",
    ]);
    let dns = DnsResponder::start(
        &published,
        GATEWAY.parse().expect("ip"),
        SERVICE,
        SERVICE_IP.parse().expect("ip"),
    );
    let lookup = rt
        .exec(
            &id,
            &argv(&["nslookup", "-type=a", SERVICE]),
            Duration::from_secs(20),
        )
        .await
        .expect("exec");
    let text = String::from_utf8_lossy(&lookup.stdout).into_owned();
    assert!(lookup.success(), "{lookup:?}\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Address") && l.trim_end().ends_with(SERVICE_IP)),
        "{text}"
    );
    assert!(dns.queries() > 0);
    drop(dns);

    rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
    assert_no_container(&id);
    assert_eq!(
        host_resolv_conf(),
        host_before,
        "the host's resolv.conf changed"
    );
}
