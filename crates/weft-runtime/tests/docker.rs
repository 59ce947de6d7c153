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

/// Removes every container of a spare scope (ready spares and tasks on them), if a failed
/// assertion left some.
struct ScopeGuard(String);
impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=weft.spare={}", self.0),
            ])
            .output();
        if let Ok(out) = out {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
}

fn spare_containers(scope: &str) -> Vec<String> {
    let out = common::run(&[
        "docker",
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label=weft.spare={scope}"),
    ]);
    out.split_whitespace().map(str::to_string).collect()
}

async fn until_ready(spares: &weft_runtime::docker_spare::DockerSpares, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while spares.ready() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no warm container ready after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A task started on a warm container is the task: its command is PID 1 with the task's
/// environment, its resolver is the gateway, its namespace is published, its output is
/// the container's log, the limits hold; `exec` sees the task's environment; stop leaves
/// nothing. Privileged tasks start cold; the sweep removes the spares.
#[tokio::test]
async fn task_starts_on_a_warm_container() {
    if !need_root("task_starts_on_a_warm_container") {
        return;
    }
    use weft_runtime::docker_spare::{DockerSpareConfig, DockerSpares, is_static_elf};
    let shell = std::path::PathBuf::from("/bin/busybox");
    assert!(
        is_static_elf(&std::fs::read(&shell).expect("/bin/busybox (busybox-static)")),
        "/bin/busybox must be Debian's static busybox (scripts/test installs busybox-static)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let scope = format!("rt{}", std::process::id());
    let _scope_guard = ScopeGuard(scope.clone());
    let spares = DockerSpares::new(DockerSpareConfig {
        shell,
        dir: dir.path().to_path_buf(),
        per_key: 1,
        scope: scope.clone(),
    })
    .expect("spares");
    let rt = docker().await.with_spares(spares.clone());

    // The first task of a key starts cold and makes the key's spare.
    let cold = task_id("w0");
    let cold_ns = ns_name("w0ep");
    let _g0 = ContainerGuard::new(&cold, &cold_ns);
    let t0 = std::time::Instant::now();
    rt.start(
        &TaskSpec::container(&cold, &cold_ns, TEST_IMAGE, &["sleep", "300"]).with_limits(0.5, 64),
    )
    .await
    .expect("cold start");
    let cold_took = t0.elapsed();
    let labels = common::run(&[
        "docker",
        "inspect",
        "-f",
        "{{index .Config.Labels \"weft.task\"}}",
        &container_name(&cold),
    ]);
    assert_eq!(labels.trim(), cold, "a cold start is an ordinary container");
    until_ready(&spares, 1).await;
    let waiting = spare_containers(&scope);
    assert_eq!(waiting.len(), 1, "{waiting:?}");

    // The second takes it.
    const GATEWAY: &str = "10.213.9.1";
    let id = task_id("w1");
    let endpoint_ns = ns_name("w1ep");
    let _g1 = ContainerGuard::new(&id, &endpoint_ns);
    let identity = TaskIdentity {
        app: "server".into(),
        task: id.clone(),
        node: "node-1".into(),
        ip: "10.213.9.6".parse().expect("ip"),
        epg: "acme/app/web".into(),
        gateway: GATEWAY.parse().expect("ip"),
        controller: None,
    };
    let app_env = BTreeMap::from([
        ("master".to_string(), "10.0.0.5".to_string()),
        ("QUOTED".to_string(), "a 'b'\nc".to_string()),
    ]);
    let spec = TaskSpec::container(
        &id,
        &endpoint_ns,
        TEST_IMAGE,
        &["sh", "-c", "echo hello; echo oops >&2; exec sleep 300"],
    )
    .with_limits(0.5, 64)
    .with_env(task_env(&identity, &app_env));
    let t1 = std::time::Instant::now();
    let started = rt.start(&spec).await.expect("warm start");
    let warm_took = t1.elapsed();
    println!("cold start {cold_took:?}, start on a warm container {warm_took:?}");
    let name = container_name(&id);
    let dir_label = common::run(&[
        "docker",
        "inspect",
        "-f",
        "{{index .Config.Labels \"weft.spare-dir\"}}",
        &name,
    ]);
    assert!(
        dir_label
            .trim()
            .starts_with(dir.path().to_str().expect("utf-8")),
        "the task runs on the spare: {dir_label}"
    );
    assert!(
        spare_containers(&scope).contains(&name),
        "renamed to the task's name"
    );
    // Namespace published, of the container's PID 1.
    assert_eq!(
        ns_id(netns_path(&endpoint_ns).to_str().expect("path")),
        ns_id(&format!("/proc/{}/ns/net", started.pid))
    );
    // Output is the container's log.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = collect_output(rt.logs(&id, LogOptions::default()), Output::Stdout)
            .await
            .expect("logs");
        if out == b"hello\n" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no hello in the log: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = collect_output(rt.logs(&id, LogOptions::default()), Output::Stderr)
        .await
        .expect("logs");
    assert_eq!(err, b"oops\n");
    // PID 1 is the task's command now (the shell exec'd), with the task's environment
    // and the image's.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", started.pid)).expect("cmdline");
    assert_eq!(cmdline, b"sleep\x00300\x00");
    let environ = std::fs::read(format!("/proc/{}/environ", started.pid)).expect("environ");
    let environ: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    for want in [
        "master=10.0.0.5",
        "QUOTED=a 'b'\nc",
        &format!("WEFT_GATEWAY={GATEWAY}"),
    ] {
        assert!(
            environ.iter().any(|v| v == want),
            "{want:?} not in {environ:?}"
        );
    }
    assert!(
        environ.iter().any(|v| v.starts_with("PATH=")),
        "{environ:?}"
    );
    // weft's exec sees the task's environment and resolver.
    let exec = rt
        .exec(
            &id,
            &argv(&["sh", "-c", "env; cat /etc/resolv.conf"]),
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    let text = String::from_utf8_lossy(&exec.stdout).into_owned();
    assert!(exec.success(), "{exec:?}");
    assert!(text.lines().any(|l| l == "master=10.0.0.5"), "{text}");
    assert!(
        text.lines().any(|l| l == format!("nameserver {GATEWAY}")),
        "{text}"
    );
    let limits = common::run(&[
        "docker",
        "inspect",
        "-f",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.NetworkMode}} {{.HostConfig.Privileged}}",
        &name,
    ]);
    assert_eq!(
        limits.trim(),
        format!("500000000 {} none false", 64u64 << 20)
    );

    // A restarted agent (a new pool of the same scope) sweeps the spares the last one
    // left, never a task that started on one; a runtime that knows nothing of spares
    // stops it completely (the namespace's name is in the container's directory).
    until_ready(&spares, 1).await;
    let restarted_spares = DockerSpares::new(DockerSpareConfig {
        shell: std::path::PathBuf::from("/bin/busybox"),
        dir: dir.path().to_path_buf(),
        per_key: 1,
        scope: scope.clone(),
    })
    .expect("spares");
    let restarted = DockerRuntime::new(DEFAULT_SOCKET);
    restarted_spares.sweep(&restarted, false).await;
    assert_eq!(
        spare_containers(&scope),
        vec![name.clone()],
        "only the task is left"
    );
    assert!(matches!(
        restarted.status(&id).await.expect("status"),
        TaskStatus::Running { .. }
    ));

    // Stop: the container, its namespace and its directory go.
    restarted
        .stop(&id, Duration::from_secs(1))
        .await
        .expect("stop");
    assert_no_container(&id);
    assert!(!netns_path(&endpoint_ns).exists());
    assert!(
        !std::path::Path::new(dir_label.trim()).exists(),
        "spare directory left"
    );

    // A privileged task never takes a spare.
    until_ready(&spares, 1).await;
    let privileged = task_id("w2");
    let _g2 = ContainerGuard::new(&privileged, &ns_name("w2ep"));
    rt.start(
        &TaskSpec::container(&privileged, &ns_name("w2ep"), TEST_IMAGE, &["sleep", "300"])
            .with_limits(0.5, 64)
            .with_privileged(true),
    )
    .await
    .expect("privileged start");
    let labels = common::run(&[
        "docker",
        "inspect",
        "-f",
        "{{index .Config.Labels \"weft.task\"}}",
        &container_name(&privileged),
    ]);
    assert_eq!(labels.trim(), privileged);
    assert_eq!(spares.ready(), 1, "the spare is still there");
    rt.stop(&privileged, Duration::from_secs(1))
        .await
        .expect("stop");
    rt.stop(&cold, Duration::from_secs(1)).await.expect("stop");

    // Closing: no spare is left, none is made later.
    spares.sweep(&rt, true).await;
    assert_eq!(spare_containers(&scope), Vec::<String>::new());
    assert_eq!(spares.ready(), 0);
}
