//! A task's output read through the controller from the agent that runs it, on a
//! process cluster with a process task and a Docker task: each agent registers its API;
//! the API wants the join token (401 without it), bounds its answers (400), knows only
//! its own tasks (404) and gives the end of a process's stdout then stderr;
//! `GET /v1/tasks/{id}/output` and `weft logs` (a container's output, and a process's
//! whose files are not on this disk) answer from it; with the agent gone the answer is
//! 409 naming the node. Root (namespaces) and Docker.
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::docker::{ImageContainers, build_busybox_image};
use common::{ProcCluster, THREE_TIER, wait_until};
use std::time::Duration;
use weft_api::TaskState;

const IMAGE: &str = "weft-test/output-busybox:latest";

const APPS: &str = r#"
app "talker" {
  cmd = "echo out-line-1; echo err-line-1 >&2; echo out-line-2; exec sleep 1000000"
  cpus = 0.05
  mem = 16
  epg = "shop/store/web"
}
app "boxed" {
  image = "weft-test/output-busybox:latest"
  cpus = 0.1
  mem = 32
  epg = "shop/store/app"
}
"#;

#[test]
fn a_tasks_output_is_read_from_its_agent() {
    require_root!();
    build_busybox_image(
        IMAGE,
        &[],
        &["sh", "-c", "echo weft-docker-out; exec sleep 1000000"],
    );
    let _containers = ImageContainers::new(IMAGE);
    let mut c = ProcCluster::new("output");
    c.apply(THREE_TIER);
    let apps = weft_app::parse_apps_hcl("apps.hcl", APPS).unwrap();
    let json: serde_json::Value = serde_json::from_str(&weft_app::apps_to_json(&apps)).unwrap();
    c.rt.block_on(c.client.apply_apps(json)).unwrap();
    let running = |app: &str| {
        let mut found = None;
        wait_until(&format!("{app} running"), Duration::from_secs(60), || {
            found =
                c.rt.block_on(c.client.tasks(Some(app)))
                    .unwrap()
                    .into_iter()
                    .find(|t| t.status.state == TaskState::Running);
            found.is_some()
        });
        found.unwrap()
    };
    let talker = running("talker");
    let boxed = running("boxed");
    // Running is reported once the process started, maybe before its shell echoed.
    wait_until("talker's three lines", Duration::from_secs(10), || {
        c.rt.block_on(c.client.task_output(&talker.id, 100, 65_536))
            .is_ok_and(|o| o.output.lines().count() == 3)
    });

    // Each agent registered its API.
    let nodes = c.rt.block_on(c.client.nodes()).unwrap();
    let api_of = |node: &str| {
        nodes
            .iter()
            .find(|n| n.registration.name == node)
            .and_then(|n| n.registration.api.clone())
            .unwrap_or_else(|| panic!("node {node} registered no agent API: {nodes:?}"))
    };
    let api = api_of(&talker.node);
    assert!(api.starts_with("http://127.0.0.1:"), "{api}");

    // The agent's API: the join token, bounds, its own tasks.
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{api}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        c.rt.block_on(async {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    let path = format!("/v1/tasks/{}/output?lines=1&max_bytes=4096", talker.id);
    assert_eq!(get(&path, None).0, 401);
    assert_eq!(get(&path, Some("not-the-join-token")).0, 401);
    let token = Some(c.join_token.as_str());
    // The end of stdout, then of stderr: one line each.
    let (status, body) = get(&path, token);
    assert_eq!((status, body.as_str()), (200, "out-line-2\nerr-line-1\n"));
    let zero = format!("/v1/tasks/{}/output?lines=0&max_bytes=4096", talker.id);
    assert_eq!(get(&zero, token).0, 400);
    let big = format!("/v1/tasks/{}/output?lines=1&max_bytes=99999999", talker.id);
    assert_eq!(get(&big, token).0, 400);
    assert_eq!(
        get("/v1/tasks/nope-1/output?lines=1&max_bytes=10", token).0,
        404
    );

    // Through the controller, whatever node: the process's and the container's.
    let output =
        c.rt.block_on(c.client.task_output(&talker.id, 100, 65_536))
            .unwrap();
    assert_eq!(output.node, talker.node);
    assert_eq!(output.output, "out-line-1\nout-line-2\nerr-line-1\n");
    wait_until(
        "the container's output through the controller",
        Duration::from_secs(10),
        || {
            c.rt.block_on(c.client.task_output(&boxed.id, 100, 65_536))
                .is_ok_and(|o| o.output == "weft-docker-out\n")
        },
    );
    // `weft logs`: a container has no log files; a process's are not read from this
    // disk when its log directory is elsewhere.
    let logs = c.cli().args(["logs", &boxed.id]).output().unwrap();
    assert!(logs.status.success(), "{logs:?}");
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "weft-docker-out\n");
    let logs = c
        .cli()
        .args(["logs", "--log-dir", "/nonexistent/weft-logs", &talker.id])
        .output()
        .unwrap();
    assert!(logs.status.success(), "{logs:?}");
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        "out-line-1\nout-line-2\nerr-line-1\n"
    );
    let follow = c
        .cli()
        .args([
            "logs",
            "-f",
            "--log-dir",
            "/nonexistent/weft-logs",
            &talker.id,
        ])
        .output()
        .unwrap();
    assert!(!follow.status.success());
    assert!(
        String::from_utf8_lossy(&follow.stderr).contains("without -f"),
        "{follow:?}"
    );

    // The agent gone: 409, naming the node and its agent.
    c.kill_agent(&boxed.node);
    let err =
        c.rt.block_on(c.client.task_output(&boxed.id, 10, 4096))
            .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "{err:?}");
    let shown = format!("{err:?}");
    assert!(
        shown.contains(&format!("node {}'s agent", boxed.node)) && shown.contains("did not answer"),
        "{shown}"
    );
}
