#![allow(clippy::unwrap_used)]
//! `GET /v1/events` resumes from the position a client holds (`Last-Event-ID`, or
//! `?index=`), on the same controller or another one, with no change missed and none
//! repeated. The reference is one uninterrupted stream of the same history; a stream cut
//! after each event in turn, including in the middle of a transaction's changes, must
//! continue with exactly the rest of it.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use weft_api::ChangeEvent;
use weft_server::{ServerConfig, ServerHandle, serve};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};

/// One server-sent event: its id and its change.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    id: String,
    change: ChangeEvent,
}

/// Reads `change` events off a `/v1/events` response.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(base: &str, token: &str, index: Option<&str>, last_id: Option<&str>) -> Self {
        let mut url = format!("{base}/v1/events");
        if let Some(index) = index {
            url = format!("{url}?index={index}");
        }
        let mut request = reqwest::Client::new().get(url).bearer_auth(token);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next change event, or `None` if none comes within `limit` (or the stream ends).
    async fn next(&mut self, limit: Duration) -> Option<Sent> {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::to_string)
                };
                if field("event: ").as_deref() != Some("change") {
                    continue;
                }
                return Some(Sent {
                    id: field("id: ").unwrap(),
                    change: serde_json::from_str(&field("data: ").unwrap()).unwrap(),
                });
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    async fn take(&mut self, count: usize) -> Vec<Sent> {
        let mut out = Vec::new();
        while out.len() < count {
            let Some(sent) = self.next(Duration::from_secs(10)).await else {
                panic!("{} of {count} events came: {out:#?}", out.len());
            };
            out.push(sent);
        }
        out
    }
}

/// Single-change revisions (endpoint creates: their IP and MAC claims are internal keys)
/// and two-change ones (a policy apply writes the tenant and the allocation).
async fn write_history(server: &ServerHandle, first: usize, count: usize) {
    let admin = admin(server);
    for i in first..first + count {
        admin
            .create_endpoint(&endpoint_request(
                &format!("e{i}"),
                "shop/store/web",
                "node-1",
            ))
            .await
            .unwrap();
        if i % 3 == 0 {
            let name = format!("t{i}");
            let subnet = format!("10.{}.0.0/24", 100 + i);
            let gateway = format!("10.{}.0.1", 100 + i);
            admin
                .apply(&model(&tenant_json(&name, &subnet, &gateway)))
                .await
                .unwrap();
        }
    }
}

/// Every event until the stream is quiet (the first may take a moment: the store replays).
async fn drain(events: &mut Events) -> Vec<Sent> {
    let mut out = Vec::new();
    let mut wait = Duration::from_secs(5);
    while let Some(sent) = events.next(wait).await {
        out.push(sent);
        wait = Duration::from_millis(700);
    }
    out
}

fn revisions_with_several_changes(history: &[Sent]) -> usize {
    let mut counts = std::collections::BTreeMap::<u64, usize>::new();
    for sent in history {
        *counts.entry(sent.change.revision).or_default() += 1;
    }
    counts.values().filter(|n| **n > 1).count()
}

#[tokio::test]
async fn a_stream_cut_after_any_event_resumes_with_exactly_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let token = server.admin_token().to_string();
    let applied = admin(&server).apply(&shop()).await.unwrap();
    let start = applied.revision.to_string();
    let mut live = Events::open(&server.base_url(), &token, None, None).await;
    agent(&server)
        .register_node(&registration("node-1"))
        .await
        .unwrap();
    write_history(&server, 0, 12).await;
    // The reference: everything after the apply, replayed from the store.
    let mut replay = Events::open(&server.base_url(), &token, Some(&start), None).await;
    let history = drain(&mut replay).await;
    assert_eq!(history.len(), 1 + 12 + 4 * 2, "history: {history:#?}");
    assert!(
        revisions_with_several_changes(&history) >= 4,
        "endpoint creates change several keys in one revision: {history:#?}"
    );
    // The live stream (the broadcast) sent the same, with the same ids.
    let from_live = live.take(history.len()).await;
    assert_eq!(from_live, history);

    // Cut after each event: the resumed stream continues with exactly the rest.
    for (cut, last) in history.iter().enumerate() {
        let rest = &history[cut + 1..];
        let mut resumed = Events::open(&server.base_url(), &token, None, Some(&last.id)).await;
        let got = resumed.take(rest.len()).await;
        assert_eq!(got, rest, "resumed after {}", last.id);
        assert_eq!(
            resumed.next(Duration::from_millis(100)).await,
            None,
            "nothing more after {}",
            last.id
        );
    }
    // `?index=N` means all of revision N was seen.
    let mut by_index = Events::open(
        &server.base_url(),
        &token,
        Some(&history[0].change.revision.to_string()),
        None,
    )
    .await;
    let first_after = history
        .iter()
        .position(|s| s.change.revision > history[0].change.revision)
        .unwrap();
    assert_eq!(
        by_index.take(history.len() - first_after).await,
        history[first_after..]
    );

    // A malformed position names its field and changes nothing.
    for (query, header, field) in [
        ("?index=abc", None, "index"),
        ("", Some("12.x"), "Last-Event-ID"),
    ] {
        let mut request = reqwest::Client::new()
            .get(format!("{}/v1/events{query}", server.base_url()))
            .bearer_auth(&token);
        if let Some(header) = header {
            request = request.header("Last-Event-ID", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body.to_string().contains(field), "{body}");
    }
    server.shutdown().await;
}

async fn controller(cluster: &EtcdCluster, dir: &std::path::Path) -> ServerHandle {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(listen, dir)
        .with_etcd(cluster.endpoints(), Some("weft-events/".to_string()));
    config.leader_ttl = Duration::from_secs(1);
    serve(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumes_on_another_controller_while_writes_go_on() {
    if !etcd_available_for_test("a_stream_resumes_on_another_controller_while_writes_go_on") {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::single()).await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = controller(&cluster, dir_a.path()).await;
    let b = controller(&cluster, dir_b.path()).await;
    let token = a.admin_token().to_string();
    assert_eq!(b.admin_token(), token, "the controllers share their tokens");
    let applied = admin(&b).apply(&shop()).await.unwrap();
    agent(&b)
        .register_node(&registration("node-1"))
        .await
        .unwrap();

    // Follow A while B takes writes; A goes away in the middle of them.
    let mut on_a = Events::open(
        &a.base_url(),
        &token,
        Some(&applied.revision.to_string()),
        None,
    )
    .await;
    let writer = {
        let b_url = b.base_url();
        let token = token.clone();
        tokio::spawn(async move {
            let admin = weft_api::Client::new(&b_url, Some(token));
            for i in 0..24 {
                admin
                    .create_endpoint(&endpoint_request(
                        &format!("w{i}"),
                        "shop/store/web",
                        "node-1",
                    ))
                    .await
                    .unwrap();
                if i % 3 == 0 {
                    let subnet = format!("10.{}.0.0/24", 100 + i);
                    let gateway = format!("10.{}.0.1", 100 + i);
                    admin
                        .apply(&model(&tenant_json(&format!("t{i}"), &subnet, &gateway)))
                        .await
                        .unwrap();
                }
            }
        })
    };
    let seen = on_a.take(10).await;
    a.shutdown().await;
    drop(on_a);
    writer.await.unwrap();

    // Resume on B from the last event A sent.
    let mut on_b = Events::open(&b.base_url(), &token, None, Some(&seen.last().unwrap().id)).await;
    let mut followed = seen.clone();
    followed.extend(drain(&mut on_b).await);
    // The reference: one stream over the whole history, from B.
    let mut replay = Events::open(
        &b.base_url(),
        &token,
        Some(&applied.revision.to_string()),
        None,
    )
    .await;
    let history = drain(&mut replay).await;
    assert_eq!(history.len(), 1 + 24 + 8 * 2, "{history:#?}");
    assert!(revisions_with_several_changes(&history) >= 8);
    assert_eq!(
        followed.len(),
        history.len(),
        "followed across the failover: {followed:#?}"
    );
    assert_eq!(followed, history, "none missed, none repeated");
    b.shutdown().await;
}
