#![allow(clippy::unwrap_used, clippy::too_many_lines)]
//! Apps end to end against a real server on 127.0.0.1, with fake agents: test code that
//! registers nodes, reads its NodeDesired through the client and reports task statuses.

mod common;

use common::fake_agent::{FakeAgent, eventually};
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use weft_api::{Client, DeploymentState, Health, Task, TaskState};
use weft_server::{ServerConfig, ServerHandle, serve};

const NODE_DEADLINE: Duration = Duration::from_secs(1);
const TASK_LOST_DEADLINE: Duration = Duration::from_secs(2);
const INTERVAL: Duration = Duration::from_millis(200);

async fn start_fast(dir: &Path, progress_deadline: Duration) -> ServerHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let mut config = ServerConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), dir);
    config.node_deadline = NODE_DEADLINE;
    config.task_lost_deadline = TASK_LOST_DEADLINE;
    config.schedule_interval = INTERVAL;
    config.deployment_progress_deadline = progress_deadline;
    serve(config).await.unwrap()
}

fn app_json(id: &str, body: serde_json::Value) -> serde_json::Value {
    json!({ "app": { id: body } })
}

fn web(instances: u32) -> serde_json::Value {
    json!({"instances": instances, "cmd": "sleep 1000", "cpus": 0.1, "mem": 64, "epg": "shop/store/web"})
}

fn ids(tasks: &[Task]) -> Vec<String> {
    tasks.iter().map(|t| t.id.clone()).collect()
}

async fn tasks_of(client: &Client, app: &str) -> Vec<Task> {
    client.tasks(Some(app)).await.unwrap()
}

/// A running task of `app`, once there is one (10 s at most).
async fn running_task(client: &Client, app: &str) -> Task {
    eventually(Duration::from_secs(10), "the task running", || async {
        tasks_of(client, app)
            .await
            .into_iter()
            .find(|t| t.status.state == TaskState::Running)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_placed_with_endpoints_and_scale_youngest_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let a = FakeAgent::start(&server, "n1", &[]).await;
    let b = FakeAgent::start(&server, "n2", &[]).await;

    let applied = admin.apply_apps(app_json("web", web(3))).await.unwrap();
    assert_eq!(applied.apps, vec!["web".to_string()]);
    assert!(applied.deployments.is_empty(), "a new app is no deployment");
    let tasks = eventually(Duration::from_secs(10), "3 running tasks", || async {
        let tasks = tasks_of(&admin, "web").await;
        (tasks.len() == 3 && tasks.iter().all(|t| t.status.state == TaskState::Running))
            .then_some(tasks)
    })
    .await;
    assert_eq!(ids(&tasks), ["web-1", "web-2", "web-3"]);
    let subnet: ipnet::IpNet = "10.1.0.0/24".parse().unwrap();
    for task in &tasks {
        let endpoint = admin.endpoint(&task.id).await.unwrap();
        assert_eq!(endpoint.epg.to_string(), "shop/store/web");
        assert_eq!(endpoint.node, task.node);
        assert_eq!(endpoint.ip, task.ip);
        assert_eq!(endpoint.mac, task.mac);
        assert!(
            subnet.contains(&task.ip),
            "{} is in the EPG's subnet",
            task.ip
        );
        assert_eq!(task.env, Some(BTreeMap::new()));
        assert_eq!(task.version, applied.revision);
    }
    // The desired view of a node carries its tasks, with spec and log_dir.
    let on_n1 = tasks.iter().filter(|t| t.node == "n1").count();
    let desired = agent(&server)
        .node_desired("n1", 0, Duration::ZERO)
        .await
        .unwrap()
        .value;
    assert_eq!(desired.tasks.len(), on_n1);
    for assignment in &desired.tasks {
        assert_eq!(assignment.log_dir, "/var/lib/weft/tasks");
        assert_eq!(assignment.spec.cmd.as_deref(), Some("sleep 1000"));
    }
    let app = admin.app("web").await.unwrap();
    assert_eq!((app.instances, app.running, app.healthy), (3, 3, 3));
    assert!(app.pending.is_empty(), "{:?}", app.pending);

    // 3 → 1: the oldest stays.
    let scaled = admin.scale_app("web", 1).await.unwrap();
    assert_eq!(
        scaled.version, applied.revision,
        "scaling is not a new version"
    );
    eventually(Duration::from_secs(10), "1 task", || async {
        let t = tasks_of(&admin, "web").await;
        (ids(&t) == ["web-1"]).then_some(())
    })
    .await;
    for gone in ["web-2", "web-3"] {
        assert_eq!(
            admin.endpoint(gone).await.unwrap_err().status(),
            Some(reqwest::StatusCode::NOT_FOUND),
            "the endpoint of {gone} goes with it"
        );
    }
    // 1 → 5 → 2: the youngest three go.
    admin.scale_app("web", 5).await.unwrap();
    eventually(Duration::from_secs(10), "5 running tasks", || async {
        let t = tasks_of(&admin, "web").await;
        (t.len() == 5 && t.iter().all(|t| t.status.state == TaskState::Running)).then_some(())
    })
    .await;
    let mut by_age = tasks_of(&admin, "web").await;
    by_age.sort_by_key(|t| t.created_ms);
    let oldest: Vec<String> = by_age.iter().take(2).map(|t| t.id.clone()).collect();
    admin.scale_app("web", 2).await.unwrap();
    let left = eventually(Duration::from_secs(10), "2 tasks", || async {
        let t = tasks_of(&admin, "web").await;
        (t.len() == 2).then_some(t)
    })
    .await;
    assert_eq!(ids(&left), oldest, "the youngest were stopped first");

    // Delete stops everything.
    admin.delete_app("web").await.unwrap();
    assert!(admin.tasks(None).await.unwrap().is_empty());
    assert!(admin.endpoints().await.unwrap().is_empty());
    a.stop().await;
    b.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_waits_for_the_referenced_app_then_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let a = FakeAgent::start(&server, "n1", &[]).await;
    a.set_start_delay(Duration::from_millis(1500));

    let apps = json!({"app": {
        "master": {"cmd": "master", "cpus": 0.1, "mem": 64, "epg": "shop/store/app"},
        "worker": {"instances": 2, "cmd": "worker", "cpus": 0.1, "mem": 64, "epg": "shop/store/web",
                   "env": {"MASTER": "${app.master.address}", "ALL": "x=${app.master.addresses}"}}
    }});
    admin.apply_apps(apps).await.unwrap();
    let waiting = eventually(Duration::from_secs(5), "waiting workers", || async {
        let t = tasks_of(&admin, "worker").await;
        (t.len() == 2).then_some(t)
    })
    .await;
    for task in &waiting {
        assert_eq!(task.env, None);
        assert_eq!(
            task.status.message.as_deref(),
            Some("waiting for app master to have a running task")
        );
        assert_eq!(task.status.state, TaskState::Pending);
    }
    let pending = admin.app("worker").await.unwrap().pending;
    assert!(
        pending
            .iter()
            .any(|p| p == "waiting for app master to have a running task"),
        "{pending:?}"
    );

    let master = eventually(Duration::from_secs(10), "master running", || async {
        let t = tasks_of(&admin, "master").await;
        t.into_iter().find(|t| t.status.state == TaskState::Running)
    })
    .await;
    let subnet: ipnet::IpNet = "10.99.0.0/24".parse().unwrap();
    assert!(subnet.contains(&master.ip));
    let resolved = eventually(Duration::from_secs(10), "worker env", || async {
        let t = tasks_of(&admin, "worker").await;
        t.iter().all(|t| t.env.is_some()).then_some(t)
    })
    .await;
    for task in &resolved {
        let env = task.env.as_ref().unwrap();
        assert_eq!(env["MASTER"], master.ip.to_string());
        assert_eq!(env["ALL"], format!("x={}", master.ip));
    }
    eventually(Duration::from_secs(10), "workers running", || async {
        let app = admin.app("worker").await.unwrap();
        (app.running == 2 && app.pending.is_empty()).then_some(())
    })
    .await;
    // An app others refer to cannot be deleted from under them.
    let err = admin.delete_app("master").await.unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::CONFLICT));
    a.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_apps_stay_pending_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let a = FakeAgent::start(&server, "n1", &[("rack", "r1")]).await;
    let b = FakeAgent::start(&server, "n2", &[("rack", "r2")]).await;

    let apps = json!({"app": {
        "picky": {"cmd": "x", "cpus": 0.1, "mem": 64, "epg": "shop/store/web",
                  "constraint": [{"operator": "=", "attribute": "rack", "value": "r9"}]},
        "huge": {"cmd": "x", "cpus": 64, "mem": 64, "epg": "shop/store/web"},
        "fine": {"cmd": "x", "cpus": 0.1, "mem": 64, "epg": "shop/store/web",
                 "constraint": [{"operator": "=", "attribute": "rack", "value": "r2"}]}
    }});
    admin.apply_apps(apps).await.unwrap();
    let fine = eventually(Duration::from_secs(10), "fine running", || async {
        let t = tasks_of(&admin, "fine").await;
        (t.len() == 1 && t[0].status.state == TaskState::Running).then(|| t[0].clone())
    })
    .await;
    assert_eq!(fine.node, "n2", "the constraint holds");
    let picky = eventually(Duration::from_secs(5), "picky pending", || async {
        let app = admin.app("picky").await.unwrap();
        (!app.pending.is_empty()).then_some(app)
    })
    .await;
    let text = picky.pending.join("\n");
    assert!(text.contains("rack = \"r9\""), "{text}");
    assert!(text.contains("n1") && text.contains("n2"), "{text}");
    let huge = eventually(Duration::from_secs(5), "huge pending", || async {
        let app = admin.app("huge").await.unwrap();
        (!app.pending.is_empty()).then_some(app)
    })
    .await;
    let text = huge.pending.join("\n");
    assert!(text.contains("not enough cpus"), "{text}");
    // Nothing half-configured: no task, no endpoint for either.
    tokio::time::sleep(INTERVAL * 3).await;
    assert!(tasks_of(&admin, "picky").await.is_empty());
    assert!(tasks_of(&admin, "huge").await.is_empty());
    assert_eq!(admin.endpoints().await.unwrap().len(), 1);
    a.stop().await;
    b.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_a_silent_node_move_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let a = FakeAgent::start(&server, "n1", &[]).await;
    let b = FakeAgent::start(&server, "n2", &[]).await;
    admin.apply_apps(app_json("web", web(3))).await.unwrap();
    let tasks = eventually(Duration::from_secs(10), "3 running", || async {
        let t = tasks_of(&admin, "web").await;
        (t.len() == 3 && t.iter().all(|t| t.status.state == TaskState::Running)).then_some(t)
    })
    .await;
    // Silence the node holding most tasks.
    let on_n1 = tasks.iter().filter(|t| t.node == "n1").count();
    let (victim, survivor) = if on_n1 >= 2 { (&a, "n2") } else { (&b, "n1") };
    victim.paused.store(true, Ordering::SeqCst);
    let silenced = Instant::now();
    let moved = eventually(Duration::from_secs(15), "tasks moved", || async {
        let t = tasks_of(&admin, "web").await;
        (t.len() == 3
            && t.iter()
                .all(|t| t.node == survivor && t.status.state == TaskState::Running))
        .then_some(t)
    })
    .await;
    // Bound: the lost deadline plus one scheduler interval (plus the fake agent's start
    // and report cycle, and polling).
    let bound = TASK_LOST_DEADLINE + INTERVAL + Duration::from_millis(1500);
    assert!(
        silenced.elapsed() <= bound,
        "took {:?}, bound {bound:?}",
        silenced.elapsed()
    );
    assert_eq!(moved.len(), 3);
    assert!(
        admin
            .endpoints()
            .await
            .unwrap()
            .iter()
            .all(|e| e.node == survivor),
        "the lost node's endpoints are gone too"
    );
    let _ = victim.name.clone();
    a.stop().await;
    b.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_keeps_minimum_health_and_cancel_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let a = FakeAgent::start(&server, "n1", &[]).await;
    let b = FakeAgent::start(&server, "n2", &[]).await;
    let mut spec = web(4);
    spec["upgrade_strategy"] =
        json!({"minimum_health_capacity": 0.5, "maximum_over_capacity": 0.25});
    let v1 = admin
        .apply_apps(app_json("web", spec.clone()))
        .await
        .unwrap()
        .revision;
    eventually(Duration::from_secs(10), "4 running", || async {
        (admin.app("web").await.unwrap().healthy == 4).then_some(())
    })
    .await;
    a.set_start_delay(Duration::from_millis(400));
    b.set_start_delay(Duration::from_millis(400));

    spec["cmd"] = json!("sleep 2000");
    let applied = admin
        .apply_apps(app_json("web", spec.clone()))
        .await
        .unwrap();
    let v2 = applied.revision;
    assert_eq!(applied.deployments, vec![format!("web-v{v2}")]);
    let min_healthy = 2; // ceil(4 * 0.5)
    let max_total = 5; // floor(4 * 1.25)
    let started = Instant::now();
    let mut samples = 0;
    loop {
        let tasks = tasks_of(&admin, "web").await;
        let healthy = tasks
            .iter()
            .filter(|t| t.status.state == TaskState::Running)
            .count();
        assert!(
            healthy >= min_healthy,
            "{healthy} healthy < {min_healthy}: {tasks:#?}"
        );
        assert!(tasks.len() <= max_total, "{} tasks", tasks.len());
        samples += 1;
        let app = admin.app("web").await.unwrap();
        let deployment = app.deployment.unwrap();
        assert_eq!((deployment.from_version, deployment.to_version), (v1, v2));
        if deployment.state == DeploymentState::Succeeded {
            break;
        }
        assert_eq!(deployment.state, DeploymentState::Running);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "deployment never finished"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(samples > 5, "sampled the update {samples} times");
    let tasks = tasks_of(&admin, "web").await;
    assert_eq!(tasks.len(), 4);
    assert!(tasks.iter().all(|t| t.version == v2));
    // Cancelling a finished deployment changes nothing, twice.
    admin.cancel_deployment("web").await.unwrap();
    admin.cancel_deployment("web").await.unwrap();
    assert_eq!(
        admin.app("web").await.unwrap().deployment.unwrap().state,
        DeploymentState::Succeeded
    );

    // A restart is a deployment of the same spec; cancel it mid-way, twice.
    a.set_start_delay(Duration::from_secs(30));
    b.set_start_delay(Duration::from_secs(30));
    let restarted = admin.restart_app("web").await.unwrap();
    assert!(restarted.version > v2);
    assert_eq!(restarted.spec.cmd.as_deref(), Some("sleep 2000"));
    eventually(Duration::from_secs(5), "a new task started", || async {
        let t = tasks_of(&admin, "web").await;
        t.iter()
            .any(|t| t.version == restarted.version)
            .then_some(())
    })
    .await;
    admin.cancel_deployment("web").await.unwrap();
    admin.cancel_deployment("web").await.unwrap();
    let app = admin.app("web").await.unwrap();
    assert_eq!(app.deployment.unwrap().state, DeploymentState::Cancelled);
    // Cancelling leaves tasks as they are: no old task is stopped, none is replaced
    // (only the instance count is still kept, youngest first).
    let before = tasks_of(&admin, "web").await;
    tokio::time::sleep(INTERVAL * 4).await;
    let after = tasks_of(&admin, "web").await;
    for old in before.iter().filter(|t| t.version != restarted.version) {
        assert!(
            after
                .iter()
                .any(|t| t.id == old.id && t.version == old.version),
            "old task {} was left alone",
            old.id
        );
    }
    assert!(after.iter().all(|t| {
        before
            .iter()
            .any(|b| b.id == t.id && b.created_ms == t.created_ms)
    }));
    a.stop().await;
    b.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_apps_are_refused_naming_the_problem_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let base = |extra: serde_json::Value| {
        let mut app = web(1);
        for (k, v) in extra.as_object().unwrap() {
            app[k] = v.clone();
        }
        app
    };
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (app_json("web", base(json!({"bogus": 1}))), "bogus"),
        (app_json("web", base(json!({"cpus": 0}))), "cpus"),
        (app_json("web", base(json!({"mem": 0}))), "mem"),
        (
            app_json("web", base(json!({"env": {"M": "${app.master.address}"}}))),
            "master",
        ),
        (
            json!({"app": {
                "a": base(json!({"env": {"B": "${app.b.address}"}})),
                "b": base(json!({"env": {"A": "${app.a.address}"}}))
            }}),
            "cycle",
        ),
        (
            app_json("web", base(json!({"cmd": null, "image": "Bad Image!!"}))),
            "image",
        ),
        (
            app_json("web", base(json!({"epg": "shop/store/nope"}))),
            "epg",
        ),
    ];
    for (body, needle) in cases {
        let err = admin.apply_apps(body.clone()).await.unwrap_err();
        let status = err.status().unwrap();
        assert!(status.is_client_error(), "{body}: {status}");
        let text = format!("{err:?}");
        assert!(text.contains(needle), "{body}: {text} should name {needle}");
        if let weft_api::ClientError::Api { body: api, .. } = &err {
            assert!(
                api.field.as_deref().is_some_and(|f| f.starts_with("apps")),
                "field {:?}",
                api.field
            );
        }
    }
    assert!(admin.apps().await.unwrap().is_empty(), "nothing stored");
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(admin.tasks(None).await.unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_tokens_reach_only_their_apps() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    admin
        .apply(&model(&tenant_json("other", "10.2.0.0/24", "10.2.0.1")))
        .await
        .unwrap();
    let a = FakeAgent::start(&server, "n1", &[]).await;
    let shop_token = admin.create_token("shop").await.unwrap().token;
    let shop = Client::new(&server.base_url(), Some(shop_token));

    shop.apply_apps(app_json("web", web(1))).await.unwrap();
    let mut theirs = web(1);
    theirs["epg"] = json!("other/store/web");
    let err = shop
        .apply_apps(app_json("theirs", theirs.clone()))
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err}");
    admin.apply_apps(app_json("theirs", theirs)).await.unwrap();
    eventually(Duration::from_secs(10), "both placed", || async {
        (admin.tasks(None).await.unwrap().len() == 2).then_some(())
    })
    .await;

    let apps = shop.apps().await.unwrap();
    assert_eq!(
        apps.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["web"]
    );
    assert!(shop.app("theirs").await.unwrap_err().is_auth());
    assert_eq!(ids(&shop.tasks(None).await.unwrap()), ["web-1"]);
    assert!(shop.task("theirs-1").await.unwrap_err().is_auth());
    assert!(shop.scale_app("theirs", 3).await.unwrap_err().is_auth());
    assert!(shop.restart_app("theirs").await.unwrap_err().is_auth());
    assert!(
        shop.cancel_deployment("theirs")
            .await
            .unwrap_err()
            .is_auth()
    );
    assert!(shop.delete_app("theirs").await.unwrap_err().is_auth());
    // Its own app: scale works.
    assert_eq!(shop.scale_app("web", 2).await.unwrap().instances, 2);
    a.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_tasks_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let a = FakeAgent::start(&server, "n1", &[]).await;
    let mut spec = web(2);
    spec["health_check"] = json!([{"type": "command", "command": "true", "grace_period": "0s",
                                   "max_consecutive_failures": 3}]);
    admin.apply_apps(app_json("web", spec)).await.unwrap();
    let tasks = eventually(Duration::from_secs(10), "2 healthy", || async {
        let t = tasks_of(&admin, "web").await;
        (t.len() == 2 && t.iter().all(|t| t.status.health == Health::Healthy)).then_some(t)
    })
    .await;
    let sick = tasks[0].clone();
    a.unhealthy.lock().unwrap().insert(sick.created_ms);
    eventually(
        Duration::from_secs(10),
        "the sick task replaced",
        || async {
            let t = tasks_of(&admin, "web").await;
            (t.len() == 2
                && t.iter().all(|t| t.created_ms != sick.created_ms)
                && t.iter().all(|t| t.status.health == Health::Healthy))
            .then_some(())
        },
    )
    .await;
    a.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_without_progress_fails_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(1)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let a = FakeAgent::start(&server, "n1", &[]).await;
    let mut spec = web(2);
    admin
        .apply_apps(app_json("web", spec.clone()))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "2 running", || async {
        (admin.app("web").await.unwrap().healthy == 2).then_some(())
    })
    .await;
    a.set_start_delay(Duration::from_secs(600));
    spec["cmd"] = json!("never starts");
    admin.apply_apps(app_json("web", spec)).await.unwrap();
    let deployment = eventually(Duration::from_secs(10), "deployment failed", || async {
        let d = admin.app("web").await.unwrap().deployment.unwrap();
        (d.state == DeploymentState::Failed).then_some(d)
    })
    .await;
    let message = deployment.message.unwrap_or_default();
    assert!(message.contains("no progress"), "{message}");
    // The old tasks still serve.
    assert_eq!(admin.app("web").await.unwrap().healthy, 2);
    a.stop().await;
    server.shutdown().await;
}

/// An app on an existing endpoint: admitted only for an endpoint of its EPG that no task
/// owns and no other app names; its one task is placed on the endpoint's node with the
/// endpoint's address and MAC, replaced stop-first on a new version, and the endpoint
/// outlives it (and cannot be deleted under it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_runs_in_an_existing_endpoint_it_does_not_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let a = FakeAgent::start(&server, "n1", &[]).await;
    let b = FakeAgent::start(&server, "n2", &[]).await;
    let port = admin
        .create_endpoint(&weft_api::EndpointRequest::new(
            "pe",
            "shop/store/web".parse().unwrap(),
            "n2",
        ))
        .await
        .unwrap();
    let on = |epg: &str, endpoint: &str, marker: &str| {
        json!({"instances": 1, "cmd": "sleep 1000", "cpus": 0.1, "mem": 64, "epg": epg,
               "endpoint": endpoint, "env": {"MARK": marker},
               "upgrade_strategy": {"minimum_health_capacity": 0, "maximum_over_capacity": 0}})
    };
    for (body, needle) in [
        (
            app_json("pinned", on("shop/store/web", "nope", "1")),
            "does not exist",
        ),
        (
            app_json("pinned", on("shop/store/app", "pe", "1")),
            "is in EPG",
        ),
    ] {
        let err = admin.apply_apps(body.clone()).await.unwrap_err();
        assert!(format!("{err:?}").contains(needle), "{body}: {err:?}");
    }
    assert!(admin.apps().await.unwrap().is_empty(), "nothing stored");

    let first = admin
        .apply_apps(app_json("pinned", on("shop/store/web", "pe", "1")))
        .await
        .unwrap();
    let task = running_task(&admin, "pinned").await;
    assert_eq!(task.version, first.revision);
    assert_eq!(
        (task.node.as_str(), task.ip, task.mac),
        ("n2", port.ip, port.mac)
    );
    assert!(
        admin.endpoint(&task.id).await.is_err(),
        "no endpoint of its own"
    );

    // Taken: no other app, no deletion, one instance.
    let err = admin
        .apply_apps(app_json("other", on("shop/store/web", "pe", "1")))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("is app pinned's"), "{err:?}");
    let err = admin.delete_endpoint("pe").await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "{err:?}");
    let err = admin.scale_app("pinned", 2).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{err:?}");
    // A task owns its own endpoint: no app may take it.
    let other_task = {
        admin.apply_apps(app_json("web", web(1))).await.unwrap();
        eventually(Duration::from_secs(10), "web's task", || async {
            tasks_of(&admin, "web").await.into_iter().next()
        })
        .await
    };
    let err = admin
        .apply_apps(app_json("other", on("shop/store/web", &other_task.id, "1")))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("own"), "{err:?}");

    // A new version: the old task goes first, the new one has the same address.
    let second = admin
        .apply_apps(app_json("pinned", on("shop/store/web", "pe", "2")))
        .await
        .unwrap();
    let replaced = eventually(
        Duration::from_secs(20),
        "the new version running",
        || async {
            let tasks = tasks_of(&admin, "pinned").await;
            (tasks.len() == 1
                && tasks[0].version == second.revision
                && tasks[0].status.state == TaskState::Running)
                .then(|| tasks[0].clone())
        },
    )
    .await;
    assert_eq!((replaced.ip, replaced.node.as_str()), (port.ip, "n2"));

    // Deleted: the endpoint stays, then may go.
    admin.delete_app("pinned").await.unwrap();
    eventually(Duration::from_secs(10), "no task", || async {
        tasks_of(&admin, "pinned").await.is_empty().then_some(())
    })
    .await;
    let kept = admin.endpoint("pe").await.unwrap();
    assert_eq!((kept.ip, kept.node.as_str()), (port.ip, "n2"));
    admin.delete_endpoint("pe").await.unwrap();
    drop((a, b));
    server.shutdown().await;
}

/// An app in three networks: each task gets one endpoint per network, all in its first
/// endpoint's namespace, numbered by interface; a fixed ip on a later network is kept
/// across a stop-first replacement; deleting the app frees every address; the bad
/// inputs are refused with the field named, and a task's interface is no app's endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_in_several_networks_has_one_endpoint_per_network_in_one_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_fast(dir.path(), Duration::from_secs(60)).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let _a = FakeAgent::start(&server, "n1", &[]).await;
    let _b = FakeAgent::start(&server, "n2", &[]).await;
    let multi = |marker: &str, networks: serde_json::Value| {
        json!({"instances": 1, "cmd": "sleep 1000", "cpus": 0.1, "mem": 64,
               "epg": "shop/store/web", "network": networks, "env": {"MARK": marker},
               "upgrade_strategy": {"minimum_health_capacity": 0, "maximum_over_capacity": 0}})
    };
    let fixed: std::net::IpAddr = "10.99.0.50".parse().unwrap();
    let networks =
        json!([{"epg": "shop/store/app"}, {"epg": "shop/store/app", "ip": "10.99.0.50"}]);

    // Refused, nothing stored.
    let nine: Vec<serde_json::Value> = (0..8).map(|_| json!({"epg": "shop/store/app"})).collect();
    let mut two = multi("1", networks.clone());
    two["instances"] = json!(2);
    for (body, status, needle) in [
        (
            multi("1", json!([{"epg": "shop/store/nope"}])),
            422,
            "network[0]",
        ),
        (multi("1", json!(nine)), 400, "at most 8 networks"),
        (two, 400, "at most 1 instance"),
        (
            multi(
                "1",
                json!([{"epg": "shop/store/app", "ip": "10.99.0.9"}, {"epg": "shop/store/app", "ip": "10.99.0.9"}]),
            ),
            400,
            "same ip",
        ),
    ] {
        let err = admin
            .apply_apps(app_json("multi", body.clone()))
            .await
            .unwrap_err();
        assert_eq!(
            err.status().map(|s| s.as_u16()),
            Some(status),
            "{body}: {err:?}"
        );
        assert!(format!("{err:?}").contains(needle), "{body}: {err:?}");
    }
    assert!(admin.apps().await.unwrap().is_empty(), "nothing stored");

    admin
        .apply_apps(app_json("multi", multi("1", networks.clone())))
        .await
        .unwrap();
    let task = running_task(&admin, "multi").await;
    let endpoints_of = |task: &str| {
        let names = [task.to_string(), format!("{task}-n1"), format!("{task}-n2")];
        let admin = admin.clone();
        async move {
            let mut out = Vec::new();
            for name in names {
                out.push(admin.endpoint(&name).await.unwrap());
            }
            out
        }
    };
    let eps = endpoints_of(&task.id).await;
    let app_subnet: ipnet::IpNet = "10.99.0.0/24".parse().unwrap();
    assert_eq!(eps[0].ip, task.ip);
    assert_eq!(eps[0].epg.to_string(), "shop/store/web");
    for (i, ep) in eps.iter().enumerate() {
        assert_eq!(usize::from(ep.interface), i, "{ep:?}");
        assert_eq!(ep.netns, eps[0].netns, "one namespace: {ep:?}");
        assert_eq!(ep.node, task.node, "{ep:?}");
    }
    assert_eq!(eps[1].epg.to_string(), "shop/store/app");
    assert!(
        app_subnet.contains(&eps[1].ip) && eps[1].ip != fixed,
        "{:?}",
        eps[1]
    );
    assert_eq!(eps[2].ip, fixed);
    assert_ne!(eps[1].mac, eps[2].mac);
    // Its node's desired view has all three.
    let desired = agent(&server)
        .node_desired(&task.node, 0, Duration::ZERO)
        .await
        .unwrap()
        .value;
    for ep in &eps {
        assert!(
            desired
                .endpoints
                .iter()
                .any(|e| e.name == ep.name && e.interface == ep.interface),
            "{} not in {}'s desired view",
            ep.name,
            task.node
        );
    }

    // A task's interface is its own: no app runs in it.
    let err = admin
        .apply_apps(app_json(
            "thief",
            json!({"instances": 1, "cmd": "sleep 1000", "cpus": 0.1, "mem": 64,
                   "epg": "shop/store/app", "endpoint": eps[1].name,
                   "upgrade_strategy": {"minimum_health_capacity": 0, "maximum_over_capacity": 0}}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "{err:?}");
    assert!(format!("{err:?}").contains("a task's own"), "{err:?}");

    // A new version: replaced stop-first, the fixed ip kept, no endpoint left behind.
    admin
        .apply_apps(app_json("multi", multi("2", networks.clone())))
        .await
        .unwrap();
    let replaced = eventually(
        Duration::from_secs(20),
        "the new version running",
        || async {
            let tasks = tasks_of(&admin, "multi").await;
            (tasks.len() == 1
                && tasks[0].status.state == TaskState::Running
                && tasks[0]
                    .env
                    .as_ref()
                    .and_then(|e| e.get("MARK"))
                    .map(String::as_str)
                    == Some("2"))
            .then(|| tasks[0].clone())
        },
    )
    .await;
    let eps2 = endpoints_of(&replaced.id).await;
    assert_eq!(eps2[2].ip, fixed);
    let all = admin.endpoints().await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");

    // Deleted: every endpoint and address goes (the fixed one is free again).
    admin.delete_app("multi").await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the app's endpoints gone",
        || async { admin.endpoints().await.unwrap().is_empty().then_some(()) },
    )
    .await;
    let mut again = weft_api::EndpointRequest::new("free", "shop/store/app".parse().unwrap(), "n1");
    again.ip = Some(fixed);
    admin.create_endpoint(&again).await.unwrap();
}
