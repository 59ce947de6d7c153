//! Controller API benchmarks: blocking-query fan-out and write throughput.
//!
//! `cargo run --release -p weft-server --example api_bench [-- WATCHERS]`
//!
//! Everything runs in one process on 127.0.0.1: the server, 1,000 simulated agents each
//! holding a blocking query on its own HTTP/1.1 keep-alive connection, and the writers.
//! The store lives in a temp dir under `$WEFT_BENCH_DIR` (default: the current directory,
//! i.e. the real disk, not tmpfs) with the default fsync-per-commit policy unless stated.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;
use weft_api::{Client, EndpointRequest, NodeRegistration, Resources};
use weft_model::Model;
use weft_server::{ServerConfig, ServerHandle, SyncPolicy, serve};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> BenchResult<()> {
    let watchers: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let base = std::env::var("WEFT_BENCH_DIR").unwrap_or_else(|_| ".".into());
    println!("# weft-server api_bench, {watchers} watchers, store under {base}");

    let dir = tempfile::Builder::new()
        .prefix("weft-bench-")
        .tempdir_in(&base)?;
    let server = start(dir.path(), SyncPolicy::EveryCommit).await?;
    fan_out(&server, watchers, "/v1/tenants", 5).await?;
    let agents = register_nodes(&server, 50).await?;
    fan_out_desired(&server, watchers, agents, 5).await?;
    writes(&server, "fsync per commit").await?;
    server.shutdown().await;

    let dir = tempfile::Builder::new()
        .prefix("weft-bench-")
        .tempdir_in(&base)?;
    let server = start(dir.path(), SyncPolicy::Periodic(Duration::from_millis(100))).await?;
    writes(&server, "periodic fsync (100 ms), for comparison").await?;
    server.shutdown().await;
    Ok(())
}

async fn start(dir: &std::path::Path, sync: SyncPolicy) -> BenchResult<ServerHandle> {
    let mut config = ServerConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), dir);
    config.sync = sync;
    Ok(serve(config).await?)
}

fn tenant(name: &str, second_octet: u8) -> BenchResult<Model> {
    let json = format!(
        r#"{{"tenant": {{"{name}": {{
            "vrf": {{"main": {{}}}},
            "bridge_domain": {{"web": {{"vrf": "main", "subnet": {{"10.{second_octet}.0.0/16": {{"gateway": "10.{second_octet}.0.1"}}}}}}}},
            "filter": {{"http": {{"entry": {{"tcp80": {{"protocol": "tcp", "destination_port": 80}}}}}}}},
            "contract": {{"web": {{"subject": {{"http": {{"filters": ["http"]}}}}}}}},
            "application_profile": {{"store": {{"epg": {{
                "web": {{"bridge_domain": "web", "consumes": ["web"]}},
                "app": {{"bridge_domain": "web", "provides": ["web"]}}
            }}}}}}
        }}}}}}"#
    );
    Ok(weft_model::parse_json("bench.json", &json)?)
}

/// Many watchers on one blocking query path; `rounds` policy changes; latency from the
/// apply's acknowledgement to each watcher holding the new index.
async fn fan_out(
    server: &ServerHandle,
    watchers: usize,
    path: &'static str,
    rounds: usize,
) -> BenchResult<()> {
    let admin = Client::new(&server.base_url(), Some(server.admin_token().to_string()));
    let first = admin.apply(&tenant("seed", 1)?).await?.revision;
    let paths: Vec<String> = (0..watchers).map(|_| path.to_string()).collect();
    let samples = run_fan_out(
        server,
        server.admin_token(),
        paths,
        first,
        rounds,
        |round| {
            let admin = admin.clone();
            async move {
                let name = format!("t{round}");
                let octet = u8::try_from(10 + round).unwrap_or(250);
                Ok(admin.apply(&tenant(&name, octet)?).await?.revision)
            }
        },
    )
    .await?;
    report(&format!("fan-out GET {path}"), watchers, rounds, samples);
    Ok(())
}

async fn register_nodes(server: &ServerHandle, nodes: usize) -> BenchResult<Vec<String>> {
    let agent = Client::new(&server.base_url(), Some(server.join_token().to_string()));
    let mut names = Vec::new();
    for n in 0..nodes {
        let name = format!("node-{n}");
        agent
            .register_node(&NodeRegistration {
                name: name.clone(),
                underlay_ip: Ipv4Addr::new(192, 0, 2, u8::try_from(n % 250).unwrap_or(0)),
                netns: None,
                netns_prefix: "weft".into(),
                api: None,
                resources: Resources {
                    cpus: 4.0,
                    mem_mb: 8192,
                    disk_mb: 100_000,
                },
                labels: Default::default(),
            })
            .await?;
        names.push(name);
    }
    Ok(names)
}

async fn fan_out_desired(
    server: &ServerHandle,
    watchers: usize,
    nodes: Vec<String>,
    rounds: usize,
) -> BenchResult<()> {
    let admin = Client::new(&server.base_url(), Some(server.admin_token().to_string()));
    let start = admin.apply(&tenant("seed", 1)?).await?.revision.max(1);
    let (_, index) = current_index(server, "/v1/tenants", server.admin_token()).await?;
    let paths: Vec<String> = (0..watchers)
        .map(|i| format!("/v1/nodes/{}/desired", nodes[i % nodes.len()]))
        .collect();
    let samples = run_fan_out(
        server,
        server.join_token(),
        paths,
        index.max(start),
        rounds,
        |round| {
            let admin = admin.clone();
            async move {
                let name = format!("d{round}");
                let octet = u8::try_from(100 + round).unwrap_or(250);
                Ok(admin.apply(&tenant(&name, octet)?).await?.revision)
            }
        },
    )
    .await?;
    report(
        &format!(
            "fan-out GET /v1/nodes/{{n}}/desired ({} nodes)",
            nodes.len()
        ),
        watchers,
        rounds,
        samples,
    );
    Ok(())
}

async fn current_index(server: &ServerHandle, path: &str, token: &str) -> BenchResult<((), u64)> {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.base_url()))
        .bearer_auth(token)
        .send()
        .await?;
    let index = response
        .headers()
        .get("x-weft-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(((), index))
}

/// Starts one long-polling task per path, each on its own connection; runs `rounds`
/// changes and returns the per-watcher latencies (µs) after each acknowledgement.
async fn run_fan_out<F, Fut>(
    server: &ServerHandle,
    token: &str,
    paths: Vec<String>,
    start_index: u64,
    rounds: usize,
    change: F,
) -> BenchResult<Vec<(u64, u64)>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = BenchResult<u64>>,
{
    let watchers = paths.len();
    let ready = Arc::new(Barrier::new(watchers + 1));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64, Instant)>();
    let mut tasks = Vec::new();
    for path in paths {
        // One client per watcher: its own keep-alive connection, like a real agent.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()?;
        let url = format!("{}{path}", server.base_url());
        let token = token.to_string();
        let tx = tx.clone();
        let ready = Arc::clone(&ready);
        tasks.push(tokio::spawn(async move {
            let mut index = start_index;
            // Warm the connection so the first round measures no TCP handshake.
            let _ = http.get(&url).bearer_auth(&token).send().await;
            ready.wait().await;
            for round in 0..rounds {
                let response = http
                    .get(&url)
                    .query(&[("index", index.to_string()), ("wait", "60s".to_string())])
                    .bearer_auth(&token)
                    .send()
                    .await;
                let Ok(response) = response else { return };
                let got: u64 = response
                    .headers()
                    .get("x-weft-index")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let _ = response.bytes().await;
                let at = Instant::now();
                if tx.send((round, got, at)).is_err() {
                    return;
                }
                index = got;
            }
        }));
    }
    drop(tx);
    ready.wait().await;
    let mut samples = Vec::new();
    for round in 0..rounds {
        // Let every watcher's request reach the server and park.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = Instant::now();
        let revision = change(round).await?;
        let acked = Instant::now();
        let mut received = 0;
        while received < watchers {
            let Some((r, got, at)) = rx.recv().await else {
                break;
            };
            if r != round || got < revision {
                return Err(
                    format!("watcher saw index {got} in round {r}, expected {revision}").into(),
                );
            }
            received += 1;
            let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            samples.push((
                micros(at.saturating_duration_since(acked)),
                micros(at.saturating_duration_since(sent)),
            ));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(samples)
}

/// Per change: (µs after the apply's acknowledgement, µs after the apply was sent).
fn report(what: &str, watchers: usize, rounds: usize, samples: Vec<(u64, u64)>) {
    let percentiles = |mut values: Vec<u64>| {
        values.sort_unstable();
        let pick = |q: f64| {
            let at = ((values.len() as f64 - 1.0) * q).round() as usize;
            values.get(at).copied().unwrap_or(0) as f64 / 1000.0
        };
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pick(0.5),
            pick(0.99),
            pick(1.0)
        )
    };
    println!(
        "{what}: {watchers} watchers x {rounds} changes = {} samples\n  ack→watcher:  {}\n  send→watcher: {}",
        samples.len(),
        percentiles(samples.iter().map(|s| s.0).collect()),
        percentiles(samples.iter().map(|s| s.1).collect()),
    );
}

async fn writes(server: &ServerHandle, sync: &str) -> BenchResult<()> {
    let admin = Client::new(&server.base_url(), Some(server.admin_token().to_string()));
    admin.apply(&tenant("w", 2)?).await?;
    let agent = Client::new(&server.base_url(), Some(server.join_token().to_string()));
    agent
        .register_node(&NodeRegistration {
            name: "wnode".into(),
            underlay_ip: Ipv4Addr::new(192, 0, 2, 1),
            netns: None,
            netns_prefix: "weft".into(),
            api: None,
            resources: Resources {
                cpus: 4.0,
                mem_mb: 8192,
                disk_mb: 100_000,
            },
            labels: Default::default(),
        })
        .await?;

    for clients in [1usize, 8] {
        let per_client = 250;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let admin = admin.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..per_client {
                    let request = EndpointRequest::new(
                        format!("ep{clients}-{c}-{n}"),
                        weft_model::EpgPath::new("w", "store", "web"),
                        "wnode",
                    );
                    admin.create_endpoint(&request).await?;
                }
                Ok::<(), weft_api::ClientError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let total = clients * per_client;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "endpoint creates, {clients} client(s), {sync}: {total} in {secs:.2} s = {:.0}/s",
            total as f64 / secs
        );
    }

    for clients in [1usize, 8] {
        let per_client = 40;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let admin = admin.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..per_client {
                    // Each apply is a real change: a tenant of this client, new subnet each time.
                    let octet = u8::try_from(10 + n % 200).unwrap_or(10);
                    let model =
                        tenant(&format!("a{clients}-{c}"), octet).map_err(|e| e.to_string())?;
                    admin.apply(&model).await.map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let total = clients * per_client;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "tenant applies, {clients} client(s), {sync}: {total} in {secs:.2} s = {:.0}/s",
            total as f64 / secs
        );
    }
    Ok(())
}
