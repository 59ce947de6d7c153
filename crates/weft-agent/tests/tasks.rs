//! Tasks on a real node (weft_fabric::testbed, one node namespace), with the stub
//! controller serving `NodeDesired.tasks`: start after policy, supervision, health,
//! removal, privileges, unresolved env. Root only.
#![allow(clippy::unwrap_used)]

mod common;
use common::{Agent, Controller, Shared, THREE_TIER, compile, config, runtime, wait_until};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weft_api::{EndpointState, Health, MacAddr, Task, TaskAssignment, TaskState, TaskStatus};
use weft_app::{AppSpec, HealthCheck, HealthCheckKind, RestartPolicy};
use weft_fabric::testbed::Testbed;

const TOKEN: &str = "weft-join-secret";
const NODE: &str = "n1";
const WAIT: Duration = Duration::from_secs(20);

/// Field order is drop order: the agent stops before the namespaces go.
struct Fixture {
    agent: Option<Agent>,
    _ctl: Controller,
    shared: Shared,
    logs: tempfile::TempDir,
    _state: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    bed: Testbed,
}

fn app(id: &str, cmd: &str) -> AppSpec {
    let mut spec = AppSpec::new(id, "shop/store/web".parse().unwrap(), 0.5, 64);
    spec.cmd = Some(cmd.to_string());
    spec
}

impl Fixture {
    fn new(tag: &str) -> Self {
        Self::with(tag, |_| {})
    }

    fn with(tag: &str, adjust: impl FnOnce(&mut weft_agent::AgentConfig)) -> Self {
        let bed = Testbed::new(tag, &[NODE]).unwrap();
        let shared = Shared::new(TOKEN, compile(THREE_TIER));
        let ctl = Controller::start(shared.clone(), "127.0.0.1:0".parse().unwrap());
        let state = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let spec = bed.node(NODE).unwrap().clone();
        let mut cfg = config(
            &ctl.url(),
            TOKEN,
            NODE,
            Some(&spec),
            &spec.vrf_netns_prefix,
            state.path(),
        );
        cfg.task_log_dir = logs.path().join("unused");
        cfg.task_stop_grace = Duration::from_millis(500);
        adjust(&mut cfg);
        let rt = runtime();
        let agent = Agent::start(&rt, cfg);
        wait_until(WAIT, "node registered", || shared.registrations(NODE) > 0);
        Self {
            agent: Some(agent),
            _ctl: ctl,
            shared,
            logs,
            _state: state,
            rt,
            bed,
        }
    }

    fn prefix(&self) -> String {
        self.bed.node(NODE).unwrap().vrf_netns_prefix.clone()
    }

    fn netns(&self, task: &str) -> String {
        format!("{}-ep-{task}", self.prefix())
    }

    /// The task, then its endpoint (as the controller would: the task never runs
    /// without its endpoint).
    fn add_task(&self, id: &str, ip: &str, spec: AppSpec, env: Option<BTreeMap<String, String>>) {
        let prefix = self.prefix();
        let log_dir = self.logs.path().display().to_string();
        self.shared.update(|d| {
            let n = d.tasks.len() as u8 + 1;
            d.tasks.push(TaskAssignment {
                task: Task {
                    id: id.into(),
                    app: spec.id.clone(),
                    version: 1,
                    node: NODE.into(),
                    ip: ip.parse().unwrap(),
                    mac: MacAddr([2, 0, 0, 0, 3, n]),
                    created_ms: 0,
                    env,
                    status: TaskStatus::pending(
                        "waiting for app db to run".to_string(),
                        EndpointState::Pending,
                    ),
                },
                spec,
                log_dir,
            });
        });
        self.shared
            .add_endpoint(id, NODE, &prefix, "shop/store/web", ip);
    }

    fn remove_task(&self, id: &str) {
        self.shared.update(|d| {
            d.tasks.retain(|t| t.task.id != id);
            d.endpoints.retain(|e| e.name != id);
        });
    }

    fn status(&self, id: &str) -> Option<TaskStatus> {
        self.shared.task(NODE, id)
    }

    fn wait_status(&self, id: &str, what: &str, cond: impl Fn(&TaskStatus) -> bool) -> TaskStatus {
        wait_until(WAIT, &format!("{id}: {what}"), || {
            self.status(id).is_some_and(|s| cond(&s))
        });
        self.status(id).unwrap()
    }

    fn task_file(&self, id: &str, file: &str) -> PathBuf {
        self.logs.path().join(id).join(file)
    }

    fn stdout(&self, id: &str) -> String {
        std::fs::read_to_string(self.task_file(id, "stdout.log")).unwrap_or_default()
    }

    /// The pid the task wrote to `<task dir>/pid` (`echo $$ > pid`).
    fn pid(&self, id: &str) -> i32 {
        let path = self.task_file(id, "pid");
        wait_until(WAIT, "pid file", || {
            std::fs::read_to_string(&path).is_ok_and(|t| t.trim().parse::<i32>().is_ok())
        });
        std::fs::read_to_string(&path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn finish(mut self) {
        if let Some(a) = self.agent.take() {
            a.shutdown(&self.rt).unwrap();
        }
        self.bed.destroy().unwrap();
        assert!(
            self.bed.leftovers().is_empty(),
            "{:?}",
            self.bed.leftovers()
        );
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn env(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn task_runs_in_its_endpoint_after_policy_waits_for_env_and_stops_when_removed() {
    require_root!();
    let f = Fixture::new("tsk1");
    let cmd = "echo $$ > pid; echo \"ip=$WEFT_IP app=$WEFT_APP task=$WEFT_TASK greeting=$GREETING\"; \
               ip -o -4 addr show dev weft0; ip route; exec sleep 600";
    f.add_task(
        "t1-web",
        "10.1.0.11",
        app("web", cmd),
        env(&[("GREETING", "hello")]),
    );
    f.add_task("t1-web2", "10.1.0.12", app("web", cmd), None);

    let s = f.wait_status("t1-web", "running", |s| s.state == TaskState::Running);
    assert_eq!(s.endpoint, EndpointState::Ready, "{s:?}");
    assert!(s.started_ms.is_some());
    wait_until(WAIT, "web's stdout", || {
        f.stdout("t1-web").contains("default via")
    });
    let out = f.stdout("t1-web");
    // Its first instructions already see the endpoint's port, address and gateway: the
    // port (and its policy, installed in the same reconcile) came before the start.
    assert!(
        out.contains("ip=10.1.0.11 app=web task=t1-web greeting=hello"),
        "{out}"
    );
    assert!(out.contains("inet 10.1.0.11/24"), "{out}");
    assert!(out.contains("default via 10.1.0.1"), "{out}");
    let pid = f.pid("t1-web");
    let ns_of = |p: i32| {
        std::fs::metadata(format!("/proc/{p}/ns/net")).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        })
    };
    let ns = std::fs::metadata(format!("/run/netns/{}", f.netns("t1-web"))).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        ns_of(pid).unwrap(),
        ns.ino(),
        "task runs in its endpoint's namespace"
    );

    // No env yet: pending with the controller's message, never started.
    let s = f.wait_status("t1-web2", "pending", |s| s.endpoint == EndpointState::Ready);
    assert_eq!(s.state, TaskState::Pending, "{s:?}");
    assert_eq!(s.message.as_deref(), Some("waiting for app db to run"));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(f.status("t1-web2").unwrap().state, TaskState::Pending);
    assert!(
        !f.logs.path().join("t1-web2").exists(),
        "web2 must not start"
    );
    // The controller resolves it: now it starts.
    f.shared.update(|d| {
        let t = d.tasks.iter_mut().find(|t| t.task.id == "t1-web2").unwrap();
        t.task.env = env(&[("GREETING", "late")]);
    });
    f.wait_status("t1-web2", "running", |s| s.state == TaskState::Running);
    wait_until(WAIT, "web2's stdout", || {
        f.stdout("t1-web2").contains("greeting=late")
    });

    // Removed from the desired state: stopped, forgotten, then its namespace goes.
    f.remove_task("t1-web");
    wait_until(WAIT, "web stopped and forgotten", || {
        !alive(pid) && f.status("t1-web").is_none()
    });
    wait_until(WAIT, "web's namespace removed", || {
        !std::path::Path::new(&format!("/run/netns/{}", f.netns("t1-web"))).exists()
    });
    assert_eq!(f.status("t1-web2").unwrap().state, TaskState::Running);
    f.finish();
}

#[test]
fn a_killed_task_is_reported_failed_and_restarted_after_its_backoff() {
    require_root!();
    let f = Fixture::new("tsk2");
    let mut spec = app("web", "echo $$ > pid; exec sleep 600");
    spec.restart = RestartPolicy {
        backoff: weft_app::Duration::from_millis(2000),
        backoff_factor: 2.0,
        max_delay: weft_app::Duration::from_millis(8000),
    };
    f.add_task("t2-web", "10.1.0.11", spec, env(&[]));
    f.wait_status("t2-web", "running", |s| s.state == TaskState::Running);
    let pid = f.pid("t2-web");
    std::fs::remove_file(f.task_file("t2-web", "pid")).unwrap();
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let s = f.wait_status("t2-web", "failed", |s| s.state == TaskState::Failed);
    assert_eq!(s.exit_code, Some(137), "{s:?}");
    assert!(
        s.message.as_deref().unwrap_or("").contains("signal 9"),
        "{s:?}"
    );
    assert_eq!(s.restarts, 0);
    let s = f.wait_status("t2-web", "restarted", |s| {
        s.state == TaskState::Running && s.restarts == 1
    });
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "restarted after {took:?}: before the backoff"
    );
    assert!(took < Duration::from_secs(6), "restarted after {took:?}");
    assert_eq!(s.exit_code, None);
    let pid2 = f.pid("t2-web");
    assert_ne!(pid, pid2);
    assert!(alive(pid2));
    f.finish();
}

#[test]
fn health_checks_report_healthy_and_unhealthy_with_failure_counts() {
    require_root!();
    let f = Fixture::new("tsk3");
    let check = |kind, port| {
        let mut c = HealthCheck::new(kind);
        c.port = Some(port);
        c.grace_period = weft_app::Duration::ZERO;
        c.interval = weft_app::Duration::from_millis(200);
        c.timeout = weft_app::Duration::from_millis(300);
        c
    };
    let mut good = app(
        "web",
        "mkdir -p www && echo ok > www/index.html && exec busybox httpd -f -p 8080 -h www",
    );
    good.health_checks = vec![check(HealthCheckKind::Http, 8080)];
    let mut bad = app("web", "exec sleep 600");
    bad.health_checks = vec![check(HealthCheckKind::Tcp, 5433)];
    f.add_task("t3-good", "10.1.0.11", good, env(&[]));
    f.add_task("t3-bad", "10.1.0.12", bad, env(&[]));

    let s = f.wait_status("t3-good", "healthy", |s| s.health == Health::Healthy);
    assert_eq!((s.state, s.consecutive_failures), (TaskState::Running, 0));
    let first = f.wait_status("t3-bad", "unhealthy", |s| s.health == Health::Unhealthy);
    assert!(first.consecutive_failures >= 1);
    assert!(
        first.message.as_deref().unwrap_or("").contains("5433"),
        "{first:?}"
    );
    let later = f.wait_status("t3-bad", "failures counting up", |s| {
        s.consecutive_failures >= first.consecutive_failures + 2
    });
    // Only reported: the agent does not replace or restart an unhealthy task.
    assert_eq!((later.state, later.restarts), (TaskState::Running, 0));
    assert_eq!(f.status("t3-good").unwrap().health, Health::Healthy);
    f.finish();
}

#[test]
fn only_a_privileged_task_may_change_its_own_port() {
    require_root!();
    let f = Fixture::new("tsk4");
    let cmd = "ip addr add 10.9.9.9/32 dev weft0 && echo addr-ok || echo addr-denied; \
               ip link set dev weft0 down && echo link-ok || echo link-denied; exec sleep 600";
    let mut privileged = app("web", cmd);
    privileged.privileged = true;
    f.add_task("t4-plain", "10.1.0.11", app("web", cmd), env(&[]));
    f.add_task("t4-root", "10.1.0.12", privileged, env(&[]));
    wait_until(WAIT, "both tasks tried", || {
        f.stdout("t4-plain").contains("link-") && f.stdout("t4-root").contains("link-")
    });
    let (plain, root) = (f.stdout("t4-plain"), f.stdout("t4-root"));
    assert!(
        plain.contains("addr-denied") && plain.contains("link-denied"),
        "{plain}"
    );
    assert!(
        root.contains("addr-ok") && root.contains("link-ok"),
        "{root}"
    );
    let addrs = std::process::Command::new("ip")
        .args(["netns", "exec", &f.netns("t4-plain"), "ip", "-o", "addr"])
        .output()
        .unwrap();
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(!addrs.contains("10.9.9.9"), "{addrs}");
    f.finish();
}

#[test]
fn an_absent_docker_engine_fails_its_tasks_only() {
    require_root!();
    let f = Fixture::with("tsk5", |c| {
        c.docker_socket = "/run/weft-no-such-docker.sock".into();
    });
    let mut boxed = app("box", "unused");
    boxed.cmd = None;
    boxed.image = Some("busybox:latest".parse().unwrap());
    boxed.args = vec!["sleep".into(), "600".into()];
    f.add_task("t5-box", "10.1.0.13", boxed, env(&[]));
    f.add_task(
        "t5-web",
        "10.1.0.11",
        app("web", "exec sleep 600"),
        env(&[]),
    );
    let s = f.wait_status("t5-box", "failed", |s| s.state == TaskState::Failed);
    let msg = s.message.clone().unwrap_or_default();
    assert!(msg.contains("unavailable"), "{s:?}");
    // The container's namespace never appeared: the agent did not make one in its place.
    assert_ne!(s.endpoint, EndpointState::Ready, "{s:?}");
    assert!(!std::path::Path::new(&format!("/run/netns/{}", f.netns("t5-box"))).exists());
    f.wait_status("t5-web", "running", |s| s.state == TaskState::Running);
    // Still failing, retried with its backoff, while the process task keeps running.
    std::thread::sleep(Duration::from_millis(1500));
    let s = f.status("t5-box").unwrap();
    assert!(
        matches!(s.state, TaskState::Failed | TaskState::Starting),
        "{s:?}"
    );
    assert_eq!(f.status("t5-web").unwrap().state, TaskState::Running);
    f.finish();
}
