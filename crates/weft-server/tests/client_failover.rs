#![allow(clippy::unwrap_used)]
//! The typed client over several real controllers of one real etcd (issue 16, "clients
//! that fail over"). Each controller is reached through a small TCP relay owned by the
//! test, which counts the HTTP requests that pass and can break the path in the ways a
//! network or a dying controller does: refuse new connections and reset open ones
//! (`cut`), swallow requests (`Blackhole`), or deliver a request and lose its answer
//! (`DropAnswer`). The controllers, the store and the client are the real ones.
//!
//! - an address list that starts with a dead one works, and the client then starts at
//!   the controller that answered;
//! - a `4xx` is answered by the first controller only; a `5xx` (a controller that lost
//!   etcd) moves an idempotent request on, and a POST not;
//! - a POST whose answer was lost, or that timed out, is not sent again;
//! - a blocking `node_desired` resumes on the next controller from the index it held,
//!   in one call (its controller's path broken mid-wait) and across calls (its
//!   controller shut down while a change is written elsewhere): every change is seen
//!   exactly once.
//!
//! Needs Debian's etcd-server: skips loudly outside CI, fails in CI.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};
use weft_api::client::{Failover, Indexed};
use weft_api::{Client, ClientError, NodeDesired};
use weft_server::{ServerConfig, ServerHandle, serve};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};

const PREFIX: &str = "weft-failover/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Relay both ways.
    Forward,
    /// Read requests, never pass them on, never answer.
    Blackhole,
    /// Pass requests on; when the answer comes, close the client's connection instead.
    DropAnswer,
}

/// A TCP relay in front of one real server (see the file's documentation).
struct Relay {
    url: String,
    requests: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(Mutex::new(Mode::Forward));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let (requests, mode, connections) =
                (requests.clone(), mode.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let task =
                        tokio::spawn(relay(client, upstream, requests.clone(), mode.clone()));
                    connections.lock().unwrap().push(task.abort_handle());
                }
            })
        };
        Relay {
            url,
            requests,
            mode,
            connections,
            accept,
        }
    }

    /// HTTP requests that reached the relay (passed on or not).
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// New connections are refused, open ones closed: the server behind is gone.
    fn cut(&self) {
        self.accept.abort();
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    requests: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    // The last 10 bytes of the previous chunk, so that a request line split across reads is
    // counted; the needle is 11 bytes long, so no line is counted twice.
    let mut tail: Vec<u8> = Vec::new();
    let now = |m: &Mutex<Mode>| *m.lock().unwrap();
    loop {
        tokio::select! {
            n = cr.read(&mut up) => {
                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                tail.extend_from_slice(&up[..n]);
                requests.fetch_add(count(&tail, b" HTTP/1.1\r\n"), Ordering::SeqCst);
                let keep = tail.len().saturating_sub(10);
                tail.drain(..keep);
                if now(&mode) == Mode::Blackhole {
                    continue;
                }
                if sw.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            n = sr.read(&mut down) => {
                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                if now(&mode) == Mode::DropAnswer {
                    // The request was carried out; its answer is lost with the connection.
                    return;
                }
                if cw.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Occurrences of `needle` in `hay`.
fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A controller over `etcd` (its endpoints), with its relay.
struct Controller {
    handle: Option<ServerHandle>,
    relay: Relay,
    _dir: tempfile::TempDir,
}

async fn controller(etcd: Vec<String>) -> Controller {
    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(listen, dir.path()).with_etcd(etcd, Some(PREFIX.into()));
    // Nothing here heartbeats: no node may turn unready (a change) during a test.
    config.node_deadline = Duration::from_secs(300);
    // Discovery views are served with the Consul API.
    config.consul.listen = Some(listen);
    let handle = serve(config).await.unwrap();
    let relay = Relay::start(handle.local_addr()).await;
    Controller {
        handle: Some(handle),
        relay,
        _dir: dir,
    }
}

impl Controller {
    fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().unwrap()
    }

    fn url(&self) -> String {
        self.relay.url.clone()
    }
}

/// A URL nothing listens at.
fn dead_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

fn client(urls: &[String], token: &str) -> Client {
    Client::with_servers(urls, Some(token.to_string()))
}

/// Waits until every controller at `urls` shows the same tenants, nodes and endpoints:
/// a controller follows the store a moment behind the one that wrote.
async fn in_step(urls: &[String], token: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut states = Vec::new();
        for url in urls {
            let c = client(std::slice::from_ref(url), token);
            let tenants: Vec<String> = c
                .tenants()
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.name)
                .collect();
            let nodes: Vec<String> = c
                .nodes()
                .await
                .unwrap()
                .into_iter()
                .map(|n| n.registration.name)
                .collect();
            let endpoints: Vec<String> = c
                .endpoints()
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            states.push((tenants, nodes, endpoints));
        }
        if states.windows(2).all(|w| w[0] == w[1]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "controllers disagree: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(desired: &NodeDesired) -> BTreeSet<String> {
    desired.endpoints.iter().map(|e| e.name.clone()).collect()
}

/// Follows `node`'s desired state from `index` as an agent does, until `done` holds for an
/// answer; returns every answer that moved the index (an answer at the index held means
/// "no change" and is not a new state).
async fn follow(
    agent: &Client,
    node: &str,
    mut index: u64,
    done: impl Fn(&NodeDesired) -> bool,
) -> Vec<Indexed<NodeDesired>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no answer satisfied the watch: {seen:?}"
        );
        let answer = agent
            .node_desired(node, index, Duration::from_secs(20))
            .await
            .unwrap();
        if answer.index == index {
            continue;
        }
        index = answer.index;
        let finished = done(&answer.value);
        seen.push(answer);
        if finished {
            return seen;
        }
    }
}

/// Each of `changes` (an endpoint name) appears in exactly one answer's transition and
/// stays; indexes only grow.
fn seen_exactly_once(start: &BTreeSet<String>, answers: &[Indexed<NodeDesired>], change: &str) {
    let mut before = start.contains(change);
    assert!(!before, "{change} was there before the watch");
    let mut arrivals = 0;
    for pair in answers.windows(2) {
        assert!(pair[1].index > pair[0].index, "indexes grow");
    }
    for answer in answers {
        let now = names(&answer.value).contains(change);
        assert!(
            !before || now,
            "{change} vanished at index {}",
            answer.index
        );
        if now && !before {
            arrivals += 1;
        }
        before = now;
    }
    assert_eq!(arrivals, 1, "{change} arrives once");
}

async fn etcd() -> Option<EtcdCluster> {
    init_tracing();
    Some(EtcdCluster::start(ClusterOptions::single()).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_address_is_skipped_and_a_4xx_is_not_asked_again() {
    if !etcd_available_for_test("a_dead_address_is_skipped_and_a_4xx_is_not_asked_again") {
        return;
    }
    let etcd = etcd().await.unwrap();
    let a = controller(etcd.endpoints()).await;
    let b = controller(etcd.endpoints()).await;
    // One cluster, one set of tokens (kept in the store).
    assert_eq!(a.handle().admin_token(), b.handle().admin_token());
    let token = a.handle().admin_token().to_string();

    // A dead address first: every request, a POST too (nothing was sent), reaches the
    // live one, and the client then starts there.
    let dead = dead_url();
    let admin = client(&[dead.clone(), a.url()], &token);
    assert_eq!(admin.base(), dead);
    admin.apply(&shop()).await.unwrap();
    assert_eq!(
        admin.base(),
        a.url(),
        "remembers the controller that answered"
    );
    client(&[dead.clone(), b.url()], a.handle().join_token())
        .register_node(&registration("n1"))
        .await
        .unwrap();
    in_step(&[a.handle().base_url(), b.handle().base_url()], &token).await;
    let before = a.relay.requests();
    let created = admin
        .create_endpoint(&endpoint_request("web-1", "shop/store/web", "n1"))
        .await
        .unwrap();
    assert_eq!(
        a.relay.requests(),
        before + 1,
        "straight to the one that answered"
    );
    assert_eq!(
        b.relay.requests(),
        1,
        "only the node's registration went to b"
    );

    // 4xx: the first controller's answer stands; the second never hears of it.
    let admin = client(&[a.url(), b.url()], &token);
    let (at_a, at_b) = (a.relay.requests(), b.relay.requests());
    let err = admin.endpoint("no-such").await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{err}");
    let err = admin
        .create_endpoint(&endpoint_request("web-1", "shop/store/web", "n1"))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "{err}");
    let err = admin
        .create_endpoint(&endpoint_request("x", "shop/store/nope", "n1"))
        .await
        .unwrap_err();
    assert!(err.status().is_some_and(|s| s.is_client_error()), "{err}");
    let err = client(&[a.url(), b.url()], "wrong-token")
        .tenants()
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert_eq!(a.relay.requests(), at_a + 4, "each asked once, at a");
    assert_eq!(b.relay.requests(), at_b, "b never asked");

    // Every address dead: the last error, after the rounds.
    let started = Instant::now();
    let err = client(&[dead_url(), dead_url()], &token)
        .health()
        .await
        .unwrap_err();
    assert!(err.is_unsent(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "backoff is short"
    );

    // The state is one: what went through a is read at b.
    in_step(&[a.handle().base_url(), b.handle().base_url()], &token).await;
    let at_b = client(&[b.url()], &token);
    assert_eq!(at_b.endpoint("web-1").await.unwrap(), created);

    // `weft get controllers`' call: both controllers, one leader.
    let mut status = admin.controllers().await.unwrap();
    let waited = Instant::now();
    while status.leader.is_none() && waited.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = admin.controllers().await.unwrap();
    }
    assert_eq!(status.controllers.len(), 2, "{status:?}");
    assert_eq!(
        status.controllers.iter().filter(|c| c.leader).count(),
        1,
        "{status:?}"
    );
    assert!(status.leader.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_may_have_arrived_is_not_sent_again() {
    if !etcd_available_for_test("a_post_that_may_have_arrived_is_not_sent_again") {
        return;
    }
    let etcd = etcd().await.unwrap();
    let a = controller(etcd.endpoints()).await;
    let b = controller(etcd.endpoints()).await;
    let token = a.handle().admin_token().to_string();
    let setup = client(&[b.url()], &token);
    setup.apply(&shop()).await.unwrap();
    client(&[b.url()], a.handle().join_token())
        .register_node(&registration("n1"))
        .await
        .unwrap();
    in_step(&[a.handle().base_url(), b.handle().base_url()], &token).await;
    // Counted at both controllers directly (not through the relays), once they agree.
    let direct = [a.handle().base_url(), b.handle().base_url()];
    let count = |name: &'static str| {
        let (direct, token) = (direct.clone(), token.clone());
        async move {
            in_step(&direct, &token).await;
            let all = client(&direct[1..], &token).endpoints().await.unwrap();
            all.iter().filter(|e| e.name == name).count()
        }
    };

    // a carries the POST out, but its answer is lost: not sent to b.
    a.relay.set(Mode::DropAnswer);
    let admin = client(&[a.url(), b.url()], &token);
    let (at_a, at_b) = (a.relay.requests(), b.relay.requests());
    let err = admin
        .create_endpoint(&endpoint_request("p1", "shop/store/web", "n1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Transport { .. }) && !err.is_unsent(),
        "{err}"
    );
    assert_eq!(a.relay.requests(), at_a + 1);
    assert_eq!(b.relay.requests(), at_b, "the POST was not sent again");
    assert_eq!(count("p1").await, 1, "a committed it, once");
    // The caller's own retry starts at the next controller, which says why it must not.
    assert_eq!(admin.base(), b.url());
    let again = admin
        .create_endpoint(&endpoint_request("p1", "shop/store/web", "n1"))
        .await
        .unwrap_err();
    assert_eq!(again.status().map(|s| s.as_u16()), Some(409), "{again}");
    assert_eq!(count("p1").await, 1);

    // An idempotent PUT whose answer is lost is sent again, to b, and succeeds.
    let admin = client(&[a.url(), b.url()], &token);
    let tenant = setup.tenant("shop").await.unwrap();
    let (at_a, at_b) = (a.relay.requests(), b.relay.requests());
    admin.put_tenant("shop", &tenant).await.unwrap();
    assert!(a.relay.requests() > at_a && b.relay.requests() > at_b);
    // A DELETE whose answer is lost: b answers 404 once it has caught up with a's delete
    // (before, 409: a's delete seen as a conflict, asked again), which is done.
    let (at_a, at_b) = (a.relay.requests(), b.relay.requests());
    let admin = client(&[a.url(), b.url()], &token);
    admin.delete_endpoint("p1").await.unwrap();
    assert!(a.relay.requests() > at_a && b.relay.requests() > at_b);
    assert_eq!(count("p1").await, 0);

    // a swallows requests: the POST times out and is not sent again (nothing was
    // committed: the request never reached the controller, but the client cannot know).
    a.relay.set(Mode::Blackhole);
    let admin = client(&[a.url(), b.url()], &token).with_timeout(Duration::from_secs(1));
    let at_b = b.relay.requests();
    let err = admin
        .create_endpoint(&endpoint_request("p2", "shop/store/web", "n1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Transport { source, .. } if source.is_timeout()),
        "{err}"
    );
    assert_eq!(b.relay.requests(), at_b, "the POST was not sent again");
    assert_eq!(count("p2").await, 0);
    // A GET that times out is asked again at b.
    let at_b = b.relay.requests();
    let admin = client(&[a.url(), b.url()], &token).with_timeout(Duration::from_secs(1));
    assert_eq!(admin.endpoints().await.unwrap().len(), 0);
    assert_eq!(b.relay.requests(), at_b + 1);
    assert_eq!(admin.base(), b.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_moves_an_idempotent_request_on_and_a_post_not() {
    if !etcd_available_for_test("a_5xx_moves_an_idempotent_request_on_and_a_post_not") {
        return;
    }
    let etcd = etcd().await.unwrap();
    let b = controller(etcd.endpoints()).await;
    // a reaches etcd through a relay the test cuts: a then answers writes with 503.
    let etcd_addr: SocketAddr = etcd.endpoints()[0]
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let to_etcd = Relay::start(etcd_addr).await;
    let a = controller(vec![to_etcd.url.clone()]).await;
    let token = b.handle().admin_token().to_string();
    assert_eq!(a.handle().admin_token(), token);
    let setup = client(&[b.url()], &token);
    setup.apply(&shop()).await.unwrap();
    client(&[b.url()], &token)
        .register_node(&registration("n1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tenant = setup.tenant("shop").await.unwrap();
    in_step(&[a.handle().base_url(), b.handle().base_url()], &token).await;
    to_etcd.cut();

    // a answers 503 (it lost etcd); the PUT moves on to b.
    let raw = client(&[a.url()], &token).with_failover(Failover::once());
    let err = raw.put_tenant("shop", &tenant).await.unwrap_err();
    assert!(
        err.status().is_some_and(|s| s.is_server_error()),
        "a without etcd: {err}"
    );
    let admin = client(&[a.url(), b.url()], &token);
    let (at_a, at_b) = (a.relay.requests(), b.relay.requests());
    admin.put_tenant("shop", &tenant).await.unwrap();
    assert_eq!(
        (a.relay.requests(), b.relay.requests()),
        (at_a + 1, at_b + 1)
    );
    assert_eq!(admin.base(), b.url());

    // A POST answered 503 is returned as it is: b never sees it.
    let admin = client(&[a.url(), b.url()], &token);
    let at_b = b.relay.requests();
    let err = admin
        .create_endpoint(&endpoint_request("p1", "shop/store/web", "n1"))
        .await
        .unwrap_err();
    assert!(err.status().is_some_and(|s| s.is_server_error()), "{err}");
    assert_eq!(b.relay.requests(), at_b, "the POST was not sent again");
    assert_eq!(admin.base(), b.url(), "the caller's retry goes to b");
    admin
        .create_endpoint(&endpoint_request("p1", "shop/store/web", "n1"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_on_the_next_controller_and_sees_each_change_once() {
    if !etcd_available_for_test("a_watch_resumes_on_the_next_controller_and_sees_each_change_once")
    {
        return;
    }
    let etcd = etcd().await.unwrap();
    let a = controller(etcd.endpoints()).await;
    let mut b = controller(etcd.endpoints()).await;
    let c = controller(etcd.endpoints()).await;
    let token = a.handle().admin_token().to_string();
    let join = a.handle().join_token().to_string();
    let urls = [a.url(), b.url(), c.url()];
    let admin_at = |url: &str| client(&[url.to_string()], &token);
    admin_at(&c.url()).apply(&shop()).await.unwrap();
    let agent = client(&urls, &join);
    agent.register_node(&registration("n1")).await.unwrap();
    admin_at(&c.url())
        .create_endpoint(&endpoint_request("e1", "shop/store/web", "n1"))
        .await
        .unwrap();
    let direct = [a.handle(), b.handle(), c.handle()].map(|h| h.base_url());
    in_step(&direct, &token).await;

    // The watch's first answer, from a.
    let first = agent
        .node_desired("n1", 0, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(agent.base(), a.url());
    let start = names(&first.value);
    assert!(start.contains("e1"));

    // 1. One call spans the failover: it waits at a, a's path breaks mid-wait, and the
    // same call asks b with the same index. The change is written at c meanwhile.
    let watch = {
        let agent = agent.clone();
        let index = first.index;
        tokio::spawn(async move { follow(&agent, "n1", index, |d| names(d).contains("e2")).await })
    };
    let waiting = Instant::now();
    while a.relay.requests() < 3 || waiting.elapsed() < Duration::from_millis(300) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!watch.is_finished(), "the watch waits: nothing changed");
    let at_b = b.relay.requests();
    a.relay.cut();
    // b has the watch (same index: nothing new, so it waits) before the change is made.
    let moved = Instant::now();
    while b.relay.requests() == at_b {
        assert!(
            moved.elapsed() < Duration::from_secs(5),
            "the watch did not move"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!watch.is_finished(), "b waits too: nothing changed");
    admin_at(&c.url())
        .create_endpoint(&endpoint_request("e2", "shop/store/web", "n1"))
        .await
        .unwrap();
    let answers = watch.await.unwrap();
    seen_exactly_once(&start, &answers, "e2");
    assert_eq!(agent.base(), b.url());
    let held = answers.last().unwrap().index;
    let seen_at_b = names(&answers.last().unwrap().value);

    // 2. Across calls: b is shut down while the watch waits there, and a change is
    // written at c while the client moves. The next call starts at b (the last to
    // answer), finds it gone and asks c with the index it holds.
    let watch = {
        let agent = agent.clone();
        tokio::spawn(async move { follow(&agent, "n1", held, |d| names(d).contains("e3")).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_handle = b.handle.take().unwrap();
    let at_c = admin_at(&c.url());
    let e3 = endpoint_request("e3", "shop/store/web", "n1");
    let ((), written) = tokio::join!(b_handle.shutdown(), at_c.create_endpoint(&e3));
    written.unwrap();
    b.relay.cut();
    let answers = watch.await.unwrap();
    seen_exactly_once(&seen_at_b, &answers, "e3");
    let last = answers.last().unwrap();
    assert_eq!(
        names(&last.value),
        ["e1", "e2", "e3"].map(String::from).into(),
        "nothing missed"
    );

    // 3. Nothing repeated: from the index held, c waits the whole wait (no change).
    let waited = Instant::now();
    let quiet = agent
        .node_desired("n1", last.index, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(quiet.index, last.index, "no change after the last one");
    assert!(waited.elapsed() >= Duration::from_millis(900));
    assert_eq!(agent.base(), c.url());

    // The discovery watch keeps its place too. Its digest is of the view's content, which
    // names the answering controller's own Consul API: c answers a's digest at once with
    // the same view but its own Consul address (the gateways must follow it there), and
    // then waits on its digest like any other.
    let view = client(&[a.handle().base_url()], &join)
        .node_discovery("n1", 0, Duration::ZERO)
        .await
        .unwrap();
    let at_c = client(&[dead_url(), c.url()], &join);
    let moved = at_c
        .node_discovery("n1", view.digest, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(moved.consul, c.handle().consul_addr());
    let without_controller = |v: &weft_api::DiscoveryView| {
        let mut v = serde_json::to_value(v).unwrap();
        v["digest"] = serde_json::Value::Null;
        v["consul"] = serde_json::Value::Null;
        v
    };
    assert_eq!(without_controller(&moved), without_controller(&view));
    let waited = Instant::now();
    let same = at_c
        .node_discovery("n1", moved.digest, Duration::from_millis(800))
        .await
        .unwrap();
    assert_eq!(same.digest, moved.digest, "no change, no new view");
    assert!(waited.elapsed() >= Duration::from_millis(700), "it waited");
    drop(b);
}
