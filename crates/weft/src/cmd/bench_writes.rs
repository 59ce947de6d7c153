//! `weft bench writes`: the controller's write rate on its two stores, in one run. One
//! `weft server` on redb against three `weft server` processes over a local three-member
//! etcd (etcd's default timing), both up for the whole run and measured in turns, cell by
//! cell, so that both see the same machine. Per cell, `clients` concurrent API clients
//! (each its own HTTP connection; over etcd client `c` talks to controller `c mod 3`) send
//! requests one after the other, each waited for, for `secs` seconds:
//! - endpoint creates (`POST /v1/endpoints`: IP and MAC claims, one txn) on a registered
//!   node without an agent;
//! - policy applies (`POST /v1/apply`), each a real change: every client owns a tenant
//!   whose one contract filter's port flips between two values (merge, validate, compile,
//!   CAS txn).
//!
//! With several clients, etcd is measured a second time with every client at one
//! controller, which shows what spreading them over the controllers costs.

use crate::cmd::bench_cluster::{Backend, Cluster, fake_node, heartbeats, percentile, tenant};
use anyhow::{Context, Result, bail};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weft_api::{Client, EndpointRequest};
use weft_store_etcd::cluster::ClusterOptions;

const CLIENTS: [usize; 2] = [1, 8];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Apply,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "endpoint create",
            Op::Apply => "policy apply",
        }
    }
}

/// What one cell measured.
struct Rate {
    ops: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub fn run(secs: u64) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(measure(Duration::from_secs(secs)))
}

/// The port the `i`-th apply of a client sets: it alternates, so every apply changes the
/// stored tenant (the setup stored port 1000).
fn apply_port(i: usize) -> u16 {
    if i.is_multiple_of(2) { 2000 } else { 1000 }
}

/// The endpoint tenant, one client tenant per possible client, a node and its heartbeats.
async fn prepare(cluster: &Cluster) -> Result<tokio::task::JoinHandle<()>> {
    let admin = cluster.admin(0);
    admin.apply(&tenant("bench", 100, 80)?).await?;
    for c in 0..CLIENTS[CLIENTS.len() - 1] {
        admin
            .apply(&tenant(&format!("w{c}"), 101 + c, apply_port(1))?)
            .await?;
    }
    cluster
        .agent(0)
        .register_node(&fake_node("n1", "192.0.2.10".parse()?))
        .await?;
    Ok(heartbeats(
        cluster.urls(),
        cluster.join_token.clone(),
        "n1".into(),
    ))
}

/// `clients` concurrent clients doing `op` for `secs`.
async fn rate(
    cluster: &Cluster,
    label: &str,
    op: Op,
    clients: usize,
    spread: bool,
    secs: Duration,
) -> Result<Rate> {
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..clients {
        // Client `c` starts at controller `c` (or all at the first).
        let client: Client = cluster.admin(if spread { c } else { 0 });
        let models = [
            tenant(&format!("w{c}"), 101 + c, apply_port(0))?,
            tenant(&format!("w{c}"), 101 + c, apply_port(1))?,
        ];
        let label = label.to_string();
        let epg: weft_model::EpgPath = "bench/app/web".parse()?;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut first_error) = (0, None);
            let mut i = 0usize;
            while start.elapsed() < secs {
                let began = Instant::now();
                let result = match op {
                    Op::Create => client
                        .create_endpoint(&EndpointRequest::new(
                            format!("{label}-{c}-{i}"),
                            epg.clone(),
                            "n1",
                        ))
                        .await
                        .map(|_| ()),
                    Op::Apply => client.apply(&models[i % 2]).await.map(|_| ()),
                };
                match result {
                    Ok(()) => latencies.push(began.elapsed()),
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| err.to_string());
                    }
                }
                i += 1;
            }
            (latencies, errors, first_error)
        }));
    }
    let mut total = Rate {
        ops: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        first_error: None,
    };
    for task in tasks {
        let (latencies, errors, first_error) = task.await?;
        total.ops += latencies.len();
        total.latencies.extend(latencies);
        total.errors += errors;
        if total.first_error.is_none() {
            total.first_error = first_error;
        }
    }
    total.elapsed = start.elapsed();
    if total.ops == 0 {
        bail!(
            "{label}: no {} succeeded: {}",
            op.name(),
            total.first_error.unwrap_or_default()
        );
    }
    Ok(total)
}

fn cell(r: &mut Rate) -> String {
    let p50 = percentile(&mut r.latencies, 0.5);
    let p99 = percentile(&mut r.latencies, 0.99);
    let errors = if r.errors > 0 {
        format!(
            ", {} errors (first: {})",
            r.errors,
            r.first_error.as_deref().unwrap_or("")
        )
    } else {
        String::new()
    };
    format!(
        "{:7.0}/s (p50 {:.1} ms, p99 {:.1} ms{errors})",
        r.per_sec(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    )
}

async fn measure(secs: Duration) -> Result<ExitCode> {
    let progress = |s: &str| eprintln!("==> {s}");
    progress("starting one controller on redb");
    let redb = Cluster::start("writes-redb", Backend::Redb, &[]).await?;
    progress("starting a three-member etcd and three controllers over it");
    let etcd = Cluster::start(
        "writes-etcd",
        Backend::Etcd {
            controllers: 3,
            options: ClusterOptions::members(3),
            leader_ttl_ms: 3000,
        },
        &[],
    )
    .await?;
    let beats = [prepare(&redb).await?, prepare(&etcd).await?];
    println!(
        "write rate through the API, {} s per cell, requests in sequence per client:",
        secs.as_secs()
    );
    println!("  redb: one controller; etcd: three controllers over three etcd members");
    for op in [Op::Create, Op::Apply] {
        for clients in CLIENTS {
            progress(&format!("{} x {clients} client(s)", op.name()));
            let tag = format!("{}{clients}", if op == Op::Create { "ep" } else { "ap" });
            let mut on_redb = rate(&redb, &format!("r{tag}"), op, clients, true, secs).await?;
            let mut on_etcd = rate(&etcd, &format!("e{tag}"), op, clients, true, secs).await?;
            println!(
                "  {:15} {clients} client(s): redb {} | etcd {} | etcd/redb {:.2}",
                op.name(),
                cell(&mut on_redb),
                cell(&mut on_etcd),
                on_etcd.per_sec() / on_redb.per_sec()
            );
            if clients > 1 {
                // The same clients all at one controller: what the spread over
                // controllers costs (their IPAM reservations and the policy's
                // serialization are each controller's own).
                let mut one = rate(&etcd, &format!("o{tag}"), op, clients, false, secs).await?;
                println!(
                    "  {:15} {clients} client(s): etcd, all clients at one controller {} | /redb {:.2}",
                    op.name(),
                    cell(&mut one),
                    one.per_sec() / on_redb.per_sec()
                );
            }
        }
    }
    for b in beats {
        b.abort();
    }
    drop(etcd);
    drop(redb);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_apply_changes_the_tenant() {
        let stored = tenant("w0", 101, apply_port(1)).unwrap();
        let mut previous = stored;
        for i in 0..4 {
            let next = tenant("w0", 101, apply_port(i)).unwrap();
            assert_ne!(next, previous, "apply {i} would change nothing");
            previous = next;
        }
    }
}
