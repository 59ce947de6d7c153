//! `weft bench failover`: leader kills on three `weft server` processes over a local
//! three-member etcd (etcd's election timeout 500 ms, so leases may be as short as 1 s;
//! the controllers' leader lease is `--leader-ttl-ms`). Per round: `kill -9` of the
//! leading controller, then, through a surviving one, a write (an endpoint create) and an
//! app scale-up by one; measured from the kill to the write's acknowledgement and to the
//! new task's record (the new leader's first scheduling decision). The killed controller
//! is restarted (same data dir) before the next round. Needs no root (no data path).

use crate::cmd::bench_cluster::{
    Backend, Cluster, LIMIT, fake_node, heartbeats, percentile, wait_for,
};
use anyhow::{Context, Result, anyhow, bail};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weft_api::{Client, EndpointRequest};
use weft_store_etcd::cluster::ClusterOptions;

const LEADER_TTL_MS: u64 = 1000;

pub fn run(rounds: usize) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(measure(rounds))
}

async fn measure(rounds: usize) -> Result<ExitCode> {
    let progress = |s: &str| eprintln!("==> {s}");
    progress("starting a three-member etcd (election timeout 500 ms) and three controllers");
    let mut cluster = Cluster::start(
        "failover",
        Backend::Etcd {
            controllers: 3,
            options: ClusterOptions {
                election_timeout: Duration::from_millis(500),
                heartbeat: Duration::from_millis(50),
                ..ClusterOptions::members(3)
            },
            leader_ttl_ms: LEADER_TTL_MS,
        },
        &[],
    )
    .await?;
    let token = cluster.admin_token.clone();
    let admin = Client::new(&cluster.controllers[0].url(), Some(token.clone()));
    admin
        .apply(&weft_model::parse_hcl(
            "bench.hcl",
            r#"tenant "bench" {
  vrf "main" {}
  bridge_domain "net" {
    vrf = "main"
    subnet "10.60.0.0/16" { gateway = "10.60.0.1" }
  }
  application_profile "app" {
    epg "web" { bridge_domain = "net" }
  }
}"#,
        )?)
        .await?;
    cluster
        .agent(0)
        .register_node(&fake_node("n1", "192.0.2.10".parse()?))
        .await?;
    // The node's heartbeats, to whichever controller answers.
    let beats = heartbeats(cluster.urls(), cluster.join_token.clone(), "n1".into());
    let mut instances = 1u32;
    admin
        .apply_apps(serde_json::json!({"app": {"web": {
            "instances": instances, "cmd": "sleep 1000", "cpus": 0.01, "mem": 1,
            "epg": "bench/app/web"
        }}}))
        .await?;

    let (mut writes, mut schedules) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let urls = cluster.urls();
        let started = Instant::now();
        let leader = loop {
            if let Some(i) = cluster.leader().await {
                break i;
            }
            if started.elapsed() > LIMIT {
                bail!("no leader within {LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The surviving controllers, as a client that fails over between them.
        let others: Vec<String> = (1..3).map(|k| urls[(leader + k) % 3].clone()).collect();
        let survivor = Client::with_servers(&others, Some(token.clone()));
        let tasks_before = survivor.tasks(Some("web")).await?.len();

        let killed = Instant::now();
        cluster.controllers[leader].kill();
        let request = EndpointRequest::new(format!("fo-{round}"), "bench/app/web".parse()?, "n1");
        if let Err(err) = survivor.create_endpoint(&request).await {
            if std::env::var_os("WEFT_BENCH_KEEP").is_some() {
                eprintln!("write failed: {err}; WEFT_BENCH_KEEP: keeping the processes for 60 s");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            return Err(anyhow!(err)).with_context(|| format!("write through {others:?}"));
        }
        writes.push(killed.elapsed());
        instances += 1;
        survivor.scale_app("web", instances).await?;
        wait_for("the new leader's task", || {
            let survivor = survivor.clone();
            async move {
                survivor
                    .tasks(Some("web"))
                    .await
                    .is_ok_and(|t| t.len() > tasks_before)
            }
        })
        .await?;
        schedules.push(killed.elapsed());
        eprintln!(
            "round {round}: write acknowledged after {:?}, scheduled after {:?}",
            writes[round], schedules[round]
        );
        cluster.controllers[leader].start()?;
        cluster.controllers[leader].wait_healthy().await?;
    }
    let (w50, w99) = (percentile(&mut writes, 0.5), percentile(&mut writes, 0.99));
    let (s50, s99) = (
        percentile(&mut schedules, 0.5),
        percentile(&mut schedules, 0.99),
    );
    println!(
        "{rounds} leader kills, leader lease {LEADER_TTL_MS} ms (etcd election timeout 500 ms):"
    );
    println!("  kill -9 -> first acknowledged write via a survivor: p50 {w50:.2?}, p99 {w99:.2?}");
    println!(
        "  kill -9 -> first scheduling decision of the new leader: p50 {s50:.2?}, p99 {s99:.2?}"
    );
    beats.abort();
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}
