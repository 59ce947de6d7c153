//! Issue 13, benchmark 2: propagation of an instance turning healthy or failing to the
//! right DNS answer on every node, with N simulated nodes.
//!
//! Each simulated node does what an agent's gateway does: its own connection, the
//! blocking discovery query (`GET /v1/nodes/{node}/discovery?index=DIGEST`), a zone
//! built from each new view, and a DNS query answered from it for the node's own
//! endpoint. A service with a TTL check is registered through the Consul API; each round
//! passes the check (the instance must appear everywhere) or fails it (it must vanish).
//! Times run from just before the check update to each node's first right answer.
//!
//!     cargo run --release -p weft-server --example dns_propagation_bench -- [NODES...] [ROUNDS]
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use weft_api::{Client, EndpointRequest, NodeRegistration, Resources};
use weft_server::{ServerConfig, serve};

const TENANT: &str = r#"
tenant "shop" {
  vrf "main" {}
  bridge_domain "net" {
    vrf = "main"
    subnet "10.1.0.0/16" {
      gateway = "10.1.0.1"
    }
  }
  application_profile "store" {
    epg "web" {
      bridge_domain = "net"
    }
  }
}
"#;

const INSTANCE: &str = "10.1.200.200";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// One simulated node: follows its view, and reports when its answer for `api`
/// changes to present (true) or absent (false).
async fn node(
    base: String,
    join: String,
    name: String,
    asker: IpAddr,
    tx: tokio::sync::mpsc::UnboundedSender<(String, bool, Instant)>,
) {
    let client = Client::new(&base, Some(join));
    let query = weft_dns::query_message("api.service.weft", "A").unwrap();
    let mut digest = 0;
    let mut last: Option<bool> = None;
    let mut out = Vec::new();
    loop {
        let Ok(view) = client
            .node_discovery(&name, digest, Duration::from_secs(30))
            .await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        digest = view.digest;
        let Some(vrf) = view.vrfs.first() else {
            continue;
        };
        let zone = weft_dns::Zone::build(&view.dns, vrf, view.digest);
        weft_dns::answer(&zone, &query, asker, weft_dns::Transport::Udp, &mut out);
        let (_, answers) = weft_dns::describe(&out).unwrap();
        let present = answers.iter().any(|a| a.contains(INSTANCE));
        if last != Some(present) {
            last = Some(present);
            let _ = tx.send((name.clone(), present, Instant::now()));
        }
    }
}

async fn run(nodes: usize, rounds: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(localhost, dir.path());
    config.consul.listen = Some(localhost);
    config.consul.anonymous_tenant = Some("shop".into());
    let server = serve(config).await.unwrap();
    let consul = format!("http://{}", server.consul_addr().unwrap());
    let base = server.base_url();
    let admin = Client::new(&base, Some(server.admin_token().to_string()));
    let join = Client::new(&base, Some(server.join_token().to_string()));
    admin
        .apply(&weft_model::parse_hcl("bench.hcl", TENANT).unwrap())
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..nodes {
        let name = format!("n{i}");
        join.register_node(&NodeRegistration {
            name: name.clone(),
            underlay_ip: Ipv4Addr::new(192, 0, 2, (i % 250) as u8 + 1),
            netns: None,
            netns_prefix: format!("weft-bench-{i}"),
            api: None,
            resources: Resources {
                cpus: 4.0,
                mem_mb: 4096,
                disk_mb: 10_000,
            },
            labels: BTreeMap::new(),
        })
        .await
        .unwrap();
        let ep = admin
            .create_endpoint(&EndpointRequest::new(
                format!("web-{i}"),
                "shop/store/web".parse().unwrap(),
                name.clone(),
            ))
            .await
            .unwrap();
        tokio::spawn(node(
            base.clone(),
            server.join_token().to_string(),
            name,
            ep.ip,
            tx.clone(),
        ));
    }
    let http = reqwest::Client::new();
    let put = |path: String, body: Option<serde_json::Value>| {
        let h = http.clone();
        async move {
            let mut r = h.put(path);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let resp = r.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        }
    };
    put(
        format!("{consul}/v1/agent/service/register"),
        Some(serde_json::json!({
            "Name": "api", "ID": "api-1", "Address": INSTANCE, "Port": 8080,
            "Check": {"TTL": "600s"}
        })),
    )
    .await;
    // Every node's first view: the instance absent (a TTL check starts critical).
    let mut seen = 0;
    while seen < nodes {
        let (_, present, _) = rx.recv().await.unwrap();
        assert!(!present);
        seen += 1;
    }
    let mut samples = Vec::new();
    for r in 0..rounds {
        let pass = r % 2 == 0;
        let verb = if pass { "pass" } else { "fail" };
        let start = Instant::now();
        put(
            format!("{consul}/v1/agent/check/{verb}/service:api-1"),
            None,
        )
        .await;
        let mut seen = 0;
        while seen < nodes {
            let (_, present, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a node did not see the change within 10 s")
                .unwrap();
            assert_eq!(present, pass);
            samples.push(at.saturating_duration_since(start));
            seen += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
    samples.sort();
    samples
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (rounds, sizes) = match args.as_slice() {
        [] => (20, vec![2, 50]),
        [only] => (20, vec![*only]),
        [sizes @ .., rounds] => (*rounds, sizes.to_vec()),
    };
    for nodes in sizes {
        let s = run(nodes, rounds).await;
        println!(
            "{nodes:>3} nodes x {rounds} rounds: p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  ({} answers)",
            percentile(&s, 0.5).as_secs_f64() * 1e3,
            percentile(&s, 0.99).as_secs_f64() * 1e3,
            s.last().unwrap().as_secs_f64() * 1e3,
            s.len()
        );
    }
}
