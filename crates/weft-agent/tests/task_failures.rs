//! A task that cannot run says why in its status (issue 12): a command that is not
//! installed, and a command that fails, are reported with their exit code and the last
//! line they wrote to stderr, while they fail and while they restart. Root only (a real
//! node namespace and real processes).
#![allow(clippy::unwrap_used)]

mod common;
use common::{Agent, Controller, Shared, THREE_TIER, compile, config, runtime, wait_until};
use std::collections::BTreeMap;
use std::time::Duration;
use weft_api::{EndpointState, MacAddr, Task, TaskAssignment, TaskState, TaskStatus};
use weft_app::{AppSpec, RestartPolicy};
use weft_fabric::testbed::Testbed;

const TOKEN: &str = "weft-join-secret";
const NODE: &str = "n1";
const WAIT: Duration = Duration::from_secs(30);

fn app(id: &str, cmd: &str, backoff_ms: u64) -> AppSpec {
    let mut spec = AppSpec::new(id, "shop/store/web".parse().unwrap(), 0.1, 32);
    spec.cmd = Some(cmd.to_string());
    spec.restart = RestartPolicy {
        backoff: weft_app::Duration::from_millis(backoff_ms),
        backoff_factor: 1.0,
        max_delay: weft_app::Duration::from_millis(backoff_ms),
    };
    spec
}

fn add_task(shared: &Shared, prefix: &str, log_dir: &str, id: &str, ip: &str, spec: AppSpec) {
    shared.update(|d| {
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
                env: Some(BTreeMap::new()),
                status: TaskStatus::pending(None, EndpointState::Pending),
            },
            spec,
            log_dir: log_dir.to_string(),
        });
    });
    shared.add_endpoint(id, NODE, prefix, "shop/store/web", ip);
}

#[test]
fn a_task_whose_command_is_missing_or_failing_says_why() {
    require_root!();
    let mut bed = Testbed::new("tfail", &[NODE]).unwrap();
    let shared = Shared::new(TOKEN, compile(THREE_TIER));
    let ctl = Controller::start(shared.clone(), "127.0.0.1:0".parse().unwrap());
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let spec = bed.node(NODE).unwrap().clone();
    let prefix = spec.vrf_netns_prefix.clone();
    let mut cfg = config(&ctl.url(), TOKEN, NODE, Some(&spec), &prefix, state.path());
    cfg.task_stop_grace = Duration::from_millis(300);
    let rt = runtime();
    let agent = Agent::start(&rt, cfg);
    wait_until(WAIT, "node registered", || shared.registrations(NODE) > 0);
    let log_dir = logs.path().display().to_string();

    // What the demo's apps did on a machine without busybox; a long backoff keeps the
    // task failed while we look.
    let missing = "exec weft-no-such-program nc -ll -p 80 -e /bin/cat";
    add_task(
        &shared,
        &prefix,
        &log_dir,
        "tf-missing",
        "10.1.0.11",
        app("web", missing, 60_000),
    );
    // A crash loop: restarts every 200 ms, each run says why before it exits.
    add_task(
        &shared,
        &prefix,
        &log_dir,
        "tf-crash",
        "10.1.0.12",
        app(
            "crash",
            "echo starting; echo 'config: no port given' >&2; exit 3",
            200,
        ),
    );

    let status = |id: &str| shared.task(NODE, id);
    wait_until(WAIT, "tf-missing failed", || {
        status("tf-missing").is_some_and(|s| s.state == TaskState::Failed)
    });
    let s = status("tf-missing").unwrap();
    assert_eq!(s.exit_code, Some(127), "{s:?}");
    let message = s.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("exited with code 127 (command not found): "),
        "{s:?}"
    );
    assert!(
        message.contains("weft-no-such-program: not found"),
        "the shell's own words are in the status: {s:?}"
    );

    // Restarting again and again, the status keeps the reason in every state but
    // running (failed, then starting with the last run's reason).
    wait_until(WAIT, "tf-crash restarted twice", || {
        status("tf-crash").is_some_and(|s| s.restarts >= 2)
    });
    let mut seen_failed = false;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline && !seen_failed {
        let s = status("tf-crash").unwrap();
        match s.state {
            TaskState::Failed => {
                assert_eq!(s.exit_code, Some(3), "{s:?}");
                assert_eq!(
                    s.message.as_deref(),
                    Some("exited with code 3: config: no port given"),
                    "{s:?}"
                );
                seen_failed = true;
            }
            TaskState::Starting => {
                if let Some(m) = &s.message {
                    assert_eq!(
                        m, "restarting; the last run: exited with code 3: config: no port given",
                        "{s:?}"
                    );
                }
            }
            _ => {}
        }
        seen.push(s.state);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen_failed, "never saw tf-crash failed: {seen:?}");

    agent.shutdown(&rt).unwrap();
    drop(ctl);
    bed.destroy().unwrap();
    assert!(bed.leftovers().is_empty(), "{:?}", bed.leftovers());
}
