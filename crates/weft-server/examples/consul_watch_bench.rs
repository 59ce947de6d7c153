//! Issue 13, benchmark 3: N blocking watchers on one Consul KV prefix, p50/p99 from a
//! write to every watcher's answer; against the same number of blocking queries on
//! weft's own API (`GET /v1/tenants?index=`) woken by a policy write, in the same run.
//!
//!     cargo run --release -p weft-server --example consul_watch_bench -- [WATCHERS] [ROUNDS]
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_server::{ServerConfig, serve};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn index_of(r: &reqwest::Response, header: &str) -> u64 {
    r.headers()
        .get(header)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Starts `n` blocking GETs built by `request(index)`, waits until they are parked,
/// runs `write`, and returns how long after the write each watcher's answer came.
async fn round<W, F>(
    n: usize,
    index: u64,
    request: Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>,
    write: W,
) -> Vec<Duration>
where
    W: FnOnce() -> F,
    F: std::future::Future<Output = ()>,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..n {
        let tx = tx.clone();
        let request = Arc::clone(&request);
        tokio::spawn(async move {
            let r = request(index).send().await.unwrap();
            let _ = r.bytes().await;
            let _ = tx.send(Instant::now());
        });
    }
    drop(tx);
    // Let every watcher park on the server.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = Instant::now();
    write().await;
    let mut out = Vec::with_capacity(n);
    while let Some(at) = rx.recv().await {
        out.push(at.saturating_duration_since(start));
    }
    out.sort();
    out
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    println!(
        "{what:<28} p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms   ({} answers)",
        percentile(samples, 0.5).as_secs_f64() * 1e3,
        percentile(samples, 0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let watchers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(localhost, dir.path());
    config.consul.listen = Some(localhost);
    config.consul.anonymous_tenant = Some("bench".into());
    let server = serve(config).await.unwrap();
    let consul = format!("http://{}", server.consul_addr().unwrap());
    let api = server.base_url();
    let token = server.admin_token().to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(watchers + 10)
        .build()
        .unwrap();

    let mut kv = Vec::new();
    let mut own = Vec::new();
    for r in 0..rounds {
        eprint!("\rround {}/{rounds}", r + 1);
        // Consul KV: watchers on a prefix, one write under it.
        let put = http
            .put(format!("{consul}/v1/kv/bench/key"))
            .body(format!("v{r}"))
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success());
        let got = http
            .get(format!("{consul}/v1/kv/bench/?recurse"))
            .send()
            .await
            .unwrap();
        let index = index_of(&got, "x-consul-index");
        let (h, base) = (http.clone(), consul.clone());
        let request: Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync> =
            Arc::new(move |i| h.get(format!("{base}/v1/kv/bench/?recurse&index={i}&wait=60s")));
        let (h, base) = (http.clone(), consul.clone());
        kv.extend(
            round(watchers, index, request, || async move {
                h.put(format!("{base}/v1/kv/bench/key"))
                    .body(format!("w{r}"))
                    .send()
                    .await
                    .unwrap();
            })
            .await,
        );

        // weft's own blocking query, woken by a policy write.
        let got = http
            .get(format!("{api}/v1/tenants"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let index = index_of(&got, "x-weft-index");
        let (h, base, t) = (http.clone(), api.clone(), token.clone());
        let request: Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync> =
            Arc::new(move |i| {
                h.get(format!("{base}/v1/tenants?index={i}&wait=60s"))
                    .bearer_auth(&t)
            });
        let (h, base, t) = (http.clone(), api.clone(), token.clone());
        own.extend(
            round(watchers, index, request, || async move {
                let body =
                    serde_json::json!({"model": {"tenant": {format!("t{r}"): {"vrf": {"v": {}}}}}});
                let r = h
                    .post(format!("{base}/v1/apply"))
                    .bearer_auth(&t)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            })
            .await,
        );
    }
    eprintln!();
    println!("{watchers} watchers x {rounds} rounds");
    report("consul KV prefix watch", &mut kv);
    report("weft API blocking query", &mut own);
    let ratio = percentile(&kv, 0.99).as_secs_f64() / percentile(&own, 0.99).as_secs_f64();
    println!("p99 ratio consul/weft: {ratio:.2}   goal: consul p99 < 100 ms");
    server.shutdown().await;
}
