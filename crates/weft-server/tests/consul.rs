#![allow(clippy::unwrap_used)]
//! weft's Consul API against a real controller: weft's own tasks are Consul services the
//! moment they run and leave the catalog the moment they stop; blocking health queries
//! wake on it; tenants see nothing of each other; bad requests name the field and
//! change nothing.

mod common;

use common::fake_agent::{FakeAgent, eventually};
use common::*;
use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use weft_server::{ServerConfig, ServerHandle, serve};

async fn start_with_consul(dir: &Path, anonymous: Option<&str>) -> ServerHandle {
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(localhost, dir);
    config.node_deadline = Duration::from_secs(1);
    config.schedule_interval = Duration::from_millis(200);
    config.consul.listen = Some(localhost);
    config.consul.anonymous_tenant = anonymous.map(str::to_string);
    serve(config).await.unwrap()
}

struct ConsulHttp {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl ConsulHttp {
    fn new(server: &ServerHandle, token: Option<&str>) -> Self {
        Self {
            base: format!("http://{}", server.consul_addr().unwrap()),
            http: reqwest::Client::new(),
            token: token.map(str::to_string),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.header("X-Consul-Token", t),
            None => r,
        }
    }

    /// (status, X-Consul-Index, body as JSON or Null)
    async fn get(&self, path: &str) -> (u16, u64, Value) {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        let status = r.status().as_u16();
        let index = r
            .headers()
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = r.json().await.unwrap_or(Value::Null);
        (status, index, body)
    }

    async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let r = self
            .req(reqwest::Method::PUT, path)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

fn addresses(entries: &Value) -> Vec<String> {
    let mut out: Vec<String> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Service"]["Address"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_tasks_are_instances_and_stopped_ones_leave_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path(), Some("shop")).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let node = FakeAgent::start(&server, "node-1", &[]).await;
    let app = json!({"app": {"web": {"instances": 3, "cmd": "sleep 1000", "cpus": 0.1, "mem": 64, "epg": "shop/store/web",
        "ports": {"http": 8080, "metrics": 9100}, "tags": ["v1"], "meta": {"team": "store"}}}});
    admin.apply_apps(app).await.unwrap();

    let consul = ConsulHttp::new(&server, None);
    let (_, index, entries) = eventually(
        Duration::from_secs(10),
        "3 passing web instances",
        || async {
            let got = consul.get("/v1/health/service/web?passing=1").await;
            (got.2.as_array().map_or(0, Vec::len) == 3).then_some(got)
        },
    )
    .await;
    let tasks = admin.tasks(Some("web")).await.unwrap();
    let mut task_ips: Vec<String> = tasks.iter().map(|t| t.ip.to_string()).collect();
    task_ips.sort();
    assert_eq!(addresses(&entries), task_ips);
    for e in entries.as_array().unwrap() {
        assert_eq!(e["Node"]["Node"], "node-1");
        assert_eq!(e["Service"]["Service"], "web");
        assert_eq!(e["Service"]["Meta"]["weft-epg"], "shop/store/web");
        assert_eq!(e["Service"]["Meta"]["team"], "store");
        assert_eq!(e["Service"]["Tags"], json!(["v1"]));
        // The service port is the first by name; every named port is a tagged address.
        assert_eq!(e["Service"]["Port"], 8080);
        assert_eq!(e["Service"]["TaggedAddresses"]["metrics"]["Port"], 9100);
        assert_eq!(
            e["Service"]["TaggedAddresses"]["http"]["Address"],
            e["Service"]["Address"]
        );
        let checks: Vec<&str> = e["Checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["CheckID"].as_str().unwrap())
            .collect();
        assert!(checks.contains(&"serfHealth"), "{checks:?}");
    }
    let (_, _, services) = consul.get("/v1/catalog/services").await;
    assert!(services.get("web").is_some(), "{services}");

    // A client following the service with blocking queries sees the scale-down: each
    // answer's index is never older than the one it asked with (a wake-up need not be a
    // change, as in Consul), and within the bound the answer holds only the kept task.
    let follower = {
        let consul = ConsulHttp::new(&server, None);
        tokio::spawn(async move {
            let mut index = index;
            loop {
                let (_, new_index, body) = consul
                    .get(&format!("/v1/health/service/web?index={index}&wait=20s"))
                    .await;
                assert!(
                    new_index >= index,
                    "the index went back: {new_index} < {index}"
                );
                index = new_index;
                if body.as_array().map_or(0, Vec::len) == 1 {
                    return (Instant::now(), body);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scaled = Instant::now();
    admin.scale_app("web", 1).await.unwrap();
    let (seen, after) = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("the follower never saw one instance")
        .unwrap();
    assert!(
        seen.duration_since(scaled) < Duration::from_secs(5),
        "took {:?}",
        seen.duration_since(scaled)
    );
    let kept = eventually(Duration::from_secs(10), "one task left", || async {
        let tasks = admin.tasks(Some("web")).await.unwrap();
        (tasks.len() == 1).then_some(tasks)
    })
    .await;
    assert_eq!(addresses(&after), vec![kept[0].ip.to_string()]);
    node.stop().await;
}

#[tokio::test]
async fn tenants_see_nothing_of_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path(), None).await;
    let admin = admin(&server);
    admin
        .apply(&model(&tenant_json("red", "10.1.0.0/24", "10.1.0.1")))
        .await
        .unwrap();
    admin
        .apply(&model(&tenant_json("blue", "10.2.0.0/24", "10.2.0.1")))
        .await
        .unwrap();
    let red_token = admin.create_token("red").await.unwrap().token;
    let blue_token = admin.create_token("blue").await.unwrap().token;
    let red = ConsulHttp::new(&server, Some(&red_token));
    let blue = ConsulHttp::new(&server, Some(&blue_token));

    let (status, _) = red
        .put(
            "/v1/agent/service/register",
            r#"{"Name": "secret-db", "Port": 5432}"#,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        red.put("/v1/kv/db/password", "hunter2").await,
        (200, "true".into())
    );
    assert_eq!(red.get("/v1/kv/db/password").await.0, 200);
    let (_, _, red_services) = red.get("/v1/catalog/services").await;
    assert!(red_services.get("secret-db").is_some());

    let (_, _, blue_services) = blue.get("/v1/catalog/services").await;
    assert!(blue_services.get("secret-db").is_none(), "{blue_services}");
    assert_eq!(blue.get("/v1/kv/db/password").await.0, 404);
    assert_eq!(blue.get("/v1/health/service/secret-db").await.2, json!([]));
    assert_eq!(blue.get("/v1/agent/services").await.2, json!({}));
    // Blue's write to the same key is its own key.
    assert_eq!(blue.put("/v1/kv/db/password", "other").await.0, 200);
    let (_, _, red_value) = red.get("/v1/kv/db/password?raw").await;
    assert_eq!(red_value, Value::Null, "raw is not JSON");
    let raw = red
        .req(reqwest::Method::GET, "/v1/kv/db/password?raw")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(raw, "hunter2");

    // No token, or an unknown one, is refused when no anonymous tenant is configured.
    let nobody = ConsulHttp::new(&server, None);
    assert_eq!(nobody.get("/v1/kv/db/password").await.0, 403);
    let stranger = ConsulHttp::new(&server, Some("not-a-token"));
    assert_eq!(stranger.get("/v1/catalog/services").await.0, 403);
}

#[tokio::test]
async fn malformed_registrations_name_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path(), Some("shop")).await;
    let consul = ConsulHttp::new(&server, None);
    // The index settles once the background loop has written its first epoch.
    let before = eventually(Duration::from_secs(5), "a settled index", || async {
        let (_, first, _) = consul.get("/v1/catalog/services").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, second, _) = consul.get("/v1/catalog/services").await;
        (first == second).then_some(first)
    })
    .await;
    for (body, field) in [
        (r#"{"Name": "web", "Port": "80"}"#, "Port"),
        (r#"{"Name": "web", "Tags": "a"}"#, "Tags"),
        (r#"{"Name": "web", "Check": {"TTL": "ten seconds"}}"#, "TTL"),
        (
            r#"{"Name": "web", "Check": {"HTTP": "ftp://x", "Interval": "1s"}}"#,
            "HTTP",
        ),
        (r#"{"Name": "web", "Meta": {"a": 1}}"#, "Meta"),
        (r#"["not", "an", "object"]"#, "object"),
        (r#"{"Name": "web""#, "decode"),
        (r#"{"Port": 80}"#, "name"),
    ] {
        let (status, text) = consul.put("/v1/agent/service/register", body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(
            text.contains(field),
            "{body}: {text:?} does not name {field}"
        );
    }
    let (status, text) = consul
        .put(
            "/v1/catalog/register",
            r#"{"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "s", "Port": 99999}}"#,
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Port"), "{text}");
    let (_, after, services) = consul.get("/v1/catalog/services").await;
    assert_eq!(after, before, "a refused write must not commit");
    assert_eq!(services, json!({"consul": []}));
    let (_, _, nodes) = consul.get("/v1/catalog/nodes").await;
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_sessions_are_invalidated_and_their_locks_released() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path(), Some("shop")).await;
    let node = FakeAgent::start(&server, "node-1", &[]).await;
    let consul = ConsulHttp::new(&server, None);
    // The node must be alive (serfHealth passing) before a session can be bound to it.
    let id = eventually(Duration::from_secs(5), "a session on node-1", || async {
        let (status, body) = consul
            .put(
                "/v1/session/create",
                r#"{"Node": "node-1", "LockDelay": "0s"}"#,
            )
            .await;
        (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap()["ID"].clone())
    })
    .await;
    let id = id.as_str().unwrap().to_string();
    assert_eq!(
        consul
            .put(&format!("/v1/kv/leader?acquire={id}"), "node-1")
            .await,
        (200, "true".into())
    );

    // The node's agent stops heartbeating: after the node deadline (1 s) its serfHealth
    // turns critical, the session is invalidated and the lock is free.
    node.stop().await;
    let start = Instant::now();
    eventually(Duration::from_secs(10), "the lock released", || async {
        let (_, _, body) = consul.get("/v1/kv/leader").await;
        body[0].get("Session").is_none().then_some(())
    })
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let (_, _, sessions) = consul.get("/v1/session/list").await;
    assert_eq!(sessions, json!([]));
    // And no session can be bound to a dead node.
    let (status, text) = consul
        .put("/v1/session/create", r#"{"Node": "node-1"}"#)
        .await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("serfHealth"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_endpoints_block_on_their_content_hash() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path(), Some("shop")).await;
    let consul = ConsulHttp::new(&server, None);
    let first = consul
        .req(reqwest::Method::GET, "/v1/agent/services")
        .send()
        .await
        .unwrap();
    let hash = first.headers()["x-consul-contenthash"]
        .to_str()
        .unwrap()
        .to_string();
    // Unchanged: the query waits its whole `wait` and answers the same hash.
    let start = Instant::now();
    let same = consul
        .req(
            reqwest::Method::GET,
            &format!("/v1/agent/services?hash={hash}&wait=300ms"),
        )
        .send()
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(290));
    assert_eq!(same.headers()["x-consul-contenthash"], hash.as_str());
    // A registration wakes it with a new hash and the new service.
    let waiter = {
        let consul = ConsulHttp::new(&server, None);
        let hash = hash.clone();
        tokio::spawn(async move {
            let r = consul
                .req(
                    reqwest::Method::GET,
                    &format!("/v1/agent/services?hash={hash}&wait=20s"),
                )
                .send()
                .await
                .unwrap();
            let new_hash = r.headers()["x-consul-contenthash"]
                .to_str()
                .unwrap()
                .to_string();
            (new_hash, r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    assert_eq!(
        consul
            .put("/v1/agent/service/register", r#"{"Name": "api"}"#)
            .await
            .0,
        200
    );
    let (new_hash, body) = waiter.await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_ne!(new_hash, hash);
    assert!(body.get("api").is_some(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_critical_for_longer_than_its_limit_is_deregistered() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path(), Some("shop")).await;
    let consul = ConsulHttp::new(&server, None);
    let body = r#"{"Name": "flaky", "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "1s"},
                   "Checks": [{"TTL": "30s"}]}"#;
    assert_eq!(consul.put("/v1/agent/service/register", body).await.0, 200);
    let kept =
        r#"{"Name": "steady", "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "1s"}}"#;
    assert_eq!(consul.put("/v1/agent/service/register", kept).await.0, 200);
    assert_eq!(
        consul
            .put("/v1/agent/check/pass/service:steady", "")
            .await
            .0,
        200
    );
    // TTL checks start critical: "flaky" goes after about 1 s; "steady" passed and stays.
    let start = Instant::now();
    eventually(Duration::from_secs(10), "flaky deregistered", || async {
        let (_, _, services) = consul.get("/v1/agent/services").await;
        services.get("flaky").is_none().then_some(())
    })
    .await;
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "too early: {:?}",
        start.elapsed()
    );
    let (_, _, services) = consul.get("/v1/agent/services").await;
    assert!(services.get("steady").is_some(), "{services}");
    let (_, _, checks) = consul.get("/v1/agent/checks").await;
    assert!(
        checks
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains("flaky")),
        "its checks went with it: {checks}"
    );
}

/// The three-tier example: web may call app on tcp/8080, app may call db on tcp/5432.
fn three_tier() -> weft_model::Model {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/three-tier.hcl");
    let text = std::fs::read_to_string(path).unwrap();
    weft_model::parse_hcl(path, &text).unwrap()
}

#[tokio::test]
async fn an_endpoint_is_told_only_of_instances_its_epg_may_reach() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path(), Some("shop")).await;
    let admin = admin(&server);
    admin.apply(&three_tier()).await.unwrap();
    agent(&server)
        .register_node(&registration("node-1"))
        .await
        .unwrap();
    let mut ips = std::collections::BTreeMap::new();
    for (name, epg) in [
        ("web-1", "web"),
        ("app-1", "app"),
        ("db-1", "db"),
        ("db-2", "db"),
    ] {
        let ep = admin
            .create_endpoint(&endpoint_request(
                name,
                &format!("shop/store/{epg}"),
                "node-1",
            ))
            .await
            .unwrap();
        ips.insert(name, ep.ip.to_string());
    }
    let consul = ConsulHttp::new(&server, None);
    for (service, instance, port) in [
        ("app", "app-1", 8080),
        ("db", "db-1", 5432),
        ("db", "db-2", 5432),
    ] {
        let body = json!({"Node": "node-1", "Address": "10.255.0.1",
            "Service": {"Service": service, "ID": instance, "Address": ips[instance], "Port": port},
            "Check": {"CheckID": format!("{instance}-up"), "ServiceID": instance, "Status": "passing"}});
        assert_eq!(
            consul.put("/v1/catalog/register", body.to_string()).await.0,
            200
        );
    }
    let vrf = "shop/vrf:main";
    let shown = |body: &Value| -> Vec<String> {
        body["Instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["Shown"] == true)
            .map(|i| i["ID"].as_str().unwrap().to_string())
            .collect()
    };
    let ask = |service: &str, from: &str| {
        format!("/v1/weft/explain/{service}?vrf={vrf}&source={}", ips[from])
    };

    let (status, _, body) = consul.get(&ask("app", "web-1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Asker"]["Endpoint"], "web-1");
    assert_eq!(shown(&body), ["app-1"]);
    let (_, _, body) = consul.get(&ask("db", "web-1")).await;
    assert!(shown(&body).is_empty(), "web must not learn of db: {body}");
    let why = body["Instances"][0]["Why"].as_str().unwrap();
    assert!(why.starts_with("denied"), "{why}");
    let (_, _, body) = consul.get(&ask("db", "app-1")).await;
    assert_eq!(shown(&body), ["db-1", "db-2"]);
    assert!(
        body["Instances"][0]["Why"]
            .as_str()
            .unwrap()
            .contains("app-to-db"),
        "{body}"
    );
    // From outside the fabric, policy does not filter.
    let (_, _, body) = consul.get("/v1/weft/explain/db").await;
    assert_eq!(shown(&body), ["db-1", "db-2"]);
    // An address that is no endpoint of that VRF is refused by name.
    let (status, _, _) = consul
        .get(&format!("/v1/weft/explain/db?vrf={vrf}&source=10.9.9.9"))
        .await;
    assert_eq!(status, 404);
}
