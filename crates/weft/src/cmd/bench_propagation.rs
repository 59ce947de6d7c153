//! `weft bench propagation`: from a policy apply's acknowledgement to every agent holding
//! the new desired state, with many simulated agents. Each simulated agent is what a real
//! `weft agent` is to the controller (`weft-agent`'s session and watch loops, without the
//! data path): its own `weft_api::Client` (its own HTTP connections) to every controller,
//! starting at controller `i mod n`; it registers its node with the join token, heartbeats
//! every 5 s (as the agent does by default; the controllers keep their default 10 s node
//! deadline), and long-polls `GET /v1/nodes/{n}/desired?index=N&wait=30s`, parsing each
//! answer into a `NodeDesired` and taking `max(index header, revision)` as its next index.
//!
//! An apply flips the port of a contract filter (a real change that every node's desired
//! state carries); it is new to an agent once the agent holds a desired state whose index
//! is at least the revision the apply returned. Two phases in one run: the same agents
//! over three controllers on a three-member etcd, and over one controller on redb (the
//! baseline).

use crate::cmd::bench_cluster::{Backend, Cluster, LIMIT, fake_node, own_cpu, percentile, tenant};
use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use weft_api::Client;
use weft_store_etcd::cluster::ClusterOptions;

/// As `weft agent`'s defaults.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
const WATCH_WAIT: Duration = Duration::from_secs(30);

pub fn run(agents: usize, applies: usize, raw: bool) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(measure(agents.max(1), applies.max(1), raw))
}

/// What the simulated agents saw: the newest index each holds, and every new desired
/// state each received (agent, index, when).
#[derive(Debug)]
struct Tracker {
    held: Vec<AtomicU64>,
    received: Mutex<Vec<(usize, u64, Instant)>>,
    poll_errors: AtomicUsize,
    heartbeat_errors: AtomicUsize,
    first_error: Mutex<Option<String>>,
}

impl Tracker {
    /// Agent `i` now holds revision `next` (seen at `at`); a repeat of what it held is
    /// not a delivery.
    fn record(&self, i: usize, held: u64, next: u64, at: Instant) {
        if next != held {
            self.received
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((i, next, at));
            self.held[i].store(next, Ordering::Relaxed);
        }
    }

    fn error(&self, counter: &AtomicUsize, err: impl ToString) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| err.to_string());
    }

    fn holding(&self, revision: u64) -> usize {
        self.held
            .iter()
            .filter(|h| h.load(Ordering::Relaxed) >= revision)
            .count()
    }
}

/// One apply: the revision it returned, when it was sent and when its answer arrived.
#[derive(Debug, Clone, Copy)]
struct Apply {
    revision: u64,
    sent: Instant,
    acked: Instant,
}

/// Per apply, the delay from `from` (its acknowledgement or its sending) to the last agent
/// holding it (`None` if some agent never did), and every agent's own delay (zero when an
/// agent was woken before the writer got its answer). `received` is (agent, index, when).
fn delays(
    agents: usize,
    applies: &[Apply],
    from: fn(&Apply) -> Instant,
    received: &[(usize, u64, Instant)],
) -> (Vec<Option<Duration>>, Vec<Duration>) {
    let mut all = Vec::new();
    let mut each = Vec::new();
    for apply in applies {
        let mut first: Vec<Option<Instant>> = vec![None; agents];
        for &(agent, index, at) in received {
            if index >= apply.revision
                && let Some(slot) = first.get_mut(agent)
                && slot.is_none_or(|t| at < t)
            {
                *slot = Some(at);
            }
        }
        let mut last = Some(Duration::ZERO);
        for at in first {
            match at {
                Some(at) => {
                    let d = at.saturating_duration_since(from(apply));
                    each.push(d);
                    last = last.map(|l| l.max(d));
                }
                None => last = None,
            }
        }
        all.push(last);
    }
    (all, each)
}

/// The results of one phase.
struct Outcome {
    label: String,
    all: Vec<Duration>,
    each: Vec<Duration>,
    /// From sending the apply to the last agent holding it.
    all_from_send: Vec<Duration>,
    incomplete: usize,
    body_bytes: usize,
    /// Median time to decode one answer into a `NodeDesired` here.
    decode: Duration,
    /// CPU used during the measured applies: this process (the agents), the controllers.
    cpu_agents: Duration,
    cpu_controllers: Duration,
    /// How long the measured applies took, wall clock.
    measured: Duration,
    ready: usize,
    poll_errors: usize,
    heartbeat_errors: usize,
    first_error: Option<String>,
}

fn underlay(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 1)) + u32::try_from(i).unwrap_or(0))
}

async fn phase(
    label: &str,
    backend: Backend,
    agents: usize,
    applies: usize,
    raw: bool,
) -> Result<Outcome> {
    let progress = |s: String| eprintln!("==> {label}: {s}");
    let tag = format!(
        "propagation-{}",
        label.split_whitespace().next().unwrap_or("x")
    );
    let cluster = Cluster::start(&tag, backend, &[]).await?;
    let count = cluster.controllers.len();
    let admin = cluster.admin(0);
    let mut port = 1000u16;
    admin.apply(&tenant("bench", 100, port)?).await?;

    progress(format!("registering {agents} nodes"));
    // One client per agent, each with its own connection pool.
    let clients: Vec<Client> = (0..agents).map(|i| cluster.agent(i)).collect();
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let mut joins = tokio::task::JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, gate) = (client.clone(), gate.clone());
        joins.spawn(async move {
            let _permit = gate.acquire().await;
            client
                .register_node(&fake_node(&format!("a{i}"), underlay(i)))
                .await
        });
    }
    while let Some(joined) = joins.join_next().await {
        joined?.context("registering a simulated agent's node")?;
    }

    progress(format!(
        "{agents} agents long-polling their desired state over {count} controller(s)"
    ));
    let tracker = Arc::new(Tracker {
        held: (0..agents).map(|_| AtomicU64::new(0)).collect(),
        received: Mutex::new(Vec::new()),
        poll_errors: AtomicUsize::new(0),
        heartbeat_errors: AtomicUsize::new(0),
        first_error: Mutex::new(None),
    });
    let started = Instant::now();
    let mut loops = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let node = format!("a{i}");
        // Heartbeats, spread over the interval.
        let (beat, name, t) = (client.clone(), node.clone(), tracker.clone());
        let offset = HEARTBEAT_EVERY.mul_f64(i as f64 / agents as f64);
        loops.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            loop {
                if let Err(err) = beat.heartbeat(&name).await {
                    t.error(&t.heartbeat_errors, err);
                }
                tokio::time::sleep(HEARTBEAT_EVERY).await;
            }
        }));
        // The watch, as the agent's: index 0 first, then the index it holds.
        let (poll, t) = (client.clone(), tracker.clone());
        if raw {
            let url = format!(
                "{}{}",
                cluster.controllers[i % count].url(),
                weft_api::paths::node_desired(&node)
            );
            loops.push(tokio::spawn(raw_watch(
                url,
                cluster.join_token.clone(),
                i,
                t,
            )));
            continue;
        }
        loops.push(tokio::spawn(async move {
            let mut index = 0;
            loop {
                match poll.node_desired(&node, index, WATCH_WAIT).await {
                    Ok(answer) => {
                        let at = Instant::now();
                        let next = answer.index.max(answer.value.revision);
                        t.record(i, index, next, at);
                        index = next;
                    }
                    Err(err) => {
                        t.error(&t.poll_errors, err);
                        index = 0;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    let wait_all = |revision: u64| {
        let tracker = tracker.clone();
        async move {
            let start = Instant::now();
            while tracker.holding(revision) < tracker.held.len() {
                if start.elapsed() > LIMIT {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            true
        }
    };
    // Steady state first: every agent's first heartbeat writes its node's live key (a
    // store write each, 1,000 in the first interval); a running cluster is past that.
    let first_beats = HEARTBEAT_EVERY + Duration::from_secs(1);
    tokio::time::sleep(first_beats.saturating_sub(started.elapsed())).await;
    // A first change everyone must see before the measured ones.
    port += 1;
    let warm = admin.apply(&tenant("bench", 100, port)?).await?;
    if !wait_all(warm.revision).await {
        bail!(
            "{label}: only {} of {agents} agents got their first desired state within {LIMIT:?} ({})",
            tracker.holding(warm.revision),
            tracker
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default()
        );
    }

    let cpu = |cluster: &Cluster| -> (Duration, Duration) {
        let controllers = cluster.controllers.iter().filter_map(|c| c.cpu()).sum();
        (own_cpu().unwrap_or_default(), controllers)
    };
    let (agents_before, controllers_before) = cpu(&cluster);
    let measure_start = Instant::now();
    let mut done = Vec::new();
    for k in 0..applies {
        port += 1;
        let model = tenant("bench", 100, port)?;
        let sent = Instant::now();
        let answer = admin.apply(&model).await?;
        let apply = Apply {
            revision: answer.revision,
            sent,
            acked: Instant::now(),
        };
        done.push(apply);
        let complete = wait_all(apply.revision).await;
        let last = tracker
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|r| r.1 >= apply.revision)
            .map(|r| r.2)
            .max();
        eprintln!(
            "    apply {}/{applies} (revision {}): {} of {agents} agents, last after {:?}",
            k + 1,
            apply.revision,
            tracker.holding(apply.revision),
            last.map(|l| l.saturating_duration_since(apply.acked)),
        );
        if !complete {
            eprintln!("    (not every agent within {LIMIT:?})");
        }
        // Quiet between applies, so that each starts from agents that are all waiting.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let measured = measure_start.elapsed();
    let (agents_after, controllers_after) = cpu(&cluster);
    // The size of what each agent receives, and whether the nodes stayed alive.
    let (body_bytes, decode) = desired_size(&cluster, "a0").await?;
    let ready = admin
        .nodes()
        .await?
        .iter()
        .filter(|n| n.ready && n.registration.name.starts_with('a'))
        .count();
    for l in loops {
        l.abort();
    }
    let received = std::mem::take(
        &mut *tracker
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let (all, each) = delays(agents, &done, |a| a.acked, &received);
    let (all_from_send, _) = delays(agents, &done, |a| a.sent, &received);
    let incomplete = all.iter().filter(|a| a.is_none()).count();
    let first_error = tracker
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    drop(clients);
    drop(cluster);
    Ok(Outcome {
        label: label.to_string(),
        all: all.into_iter().flatten().collect(),
        each,
        all_from_send: all_from_send.into_iter().flatten().collect(),
        incomplete,
        body_bytes,
        decode,
        cpu_agents: agents_after.saturating_sub(agents_before),
        cpu_controllers: controllers_after.saturating_sub(controllers_before),
        measured,
        ready,
        poll_errors: tracker.poll_errors.load(Ordering::Relaxed),
        heartbeat_errors: tracker.heartbeat_errors.load(Ordering::Relaxed),
        first_error,
    })
}

/// `--raw`: the same blocking query with a plain HTTP client of its own (one controller,
/// no failover), taking the index from the answer's header and reading the body without
/// decoding it: what the controllers deliver, without the agents' decoding, which on this
/// one machine shares the controllers' cores.
async fn raw_watch(url: String, token: String, i: usize, t: Arc<Tracker>) {
    let http = reqwest::Client::new();
    let mut index = 0u64;
    loop {
        let answer = http
            .get(&url)
            .query(&[("index", index.to_string()), ("wait", "30s".to_string())])
            .bearer_auth(&token)
            .timeout(WATCH_WAIT + Duration::from_secs(10))
            .send()
            .await;
        let read = match answer {
            Ok(resp) if resp.status().is_success() => {
                let header = resp
                    .headers()
                    .get(weft_api::client::INDEX_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                resp.bytes().await.map(|_| header)
            }
            Ok(resp) => {
                t.error(&t.poll_errors, format!("{url}: {}", resp.status()));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(err) => Err(err),
        };
        match read {
            Ok(Some(next)) => {
                t.record(i, index, next, Instant::now());
                index = next;
            }
            Ok(None) => {
                t.error(&t.poll_errors, format!("{url}: no index header"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => {
                t.error(&t.poll_errors, err);
                index = 0;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The byte length of one node's desired state as it goes over the wire, and the median
/// time of decoding it into a `NodeDesired` (of 21).
async fn desired_size(cluster: &Cluster, node: &str) -> Result<(usize, Duration)> {
    let url = format!(
        "{}{}",
        cluster.controllers[0].url(),
        weft_api::paths::node_desired(node)
    );
    let body = reqwest::Client::new()
        .get(url)
        .bearer_auth(&cluster.join_token)
        .send()
        .await?
        .bytes()
        .await?;
    let mut decodes = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        serde_json::from_slice::<weft_api::NodeDesired>(&body)
            .context("decoding a desired state")?;
        decodes.push(start.elapsed());
    }
    Ok((body.len(), percentile(&mut decodes, 0.5)))
}

async fn measure(agents: usize, applies: usize, raw: bool) -> Result<ExitCode> {
    let ha = phase(
        "etcd (3 controllers, 3 members)",
        Backend::Etcd {
            controllers: 3,
            options: ClusterOptions::members(3),
            leader_ttl_ms: 3000,
        },
        agents,
        applies,
        raw,
    )
    .await?;
    let single = phase("redb (1 controller)", Backend::Redb, agents, applies, raw).await?;
    println!(
        "propagation: {agents} simulated agents{}, {applies} policy applies; from the apply's acknowledgement",
        if raw {
            " (--raw: bodies read, not decoded)"
        } else {
            ""
        }
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut p99s = Vec::new();
    for mut o in [ha, single] {
        let (a50, a99) = (percentile(&mut o.all, 0.5), percentile(&mut o.all, 0.99));
        let (e50, e99) = (percentile(&mut o.each, 0.5), percentile(&mut o.each, 0.99));
        let (s50, s99) = (
            percentile(&mut o.all_from_send, 0.5),
            percentile(&mut o.all_from_send, 0.99),
        );
        p99s.push(a99);
        println!(
            "  {:32} all agents: p50 {:7.1} ms, p99 {:7.1} ms | per agent: p50 {:7.1} ms, p99 {:7.1} ms",
            o.label,
            ms(a50),
            ms(a99),
            ms(e50),
            ms(e99)
        );
        println!(
            "  {:32} all agents from sending the apply: p50 {:7.1} ms, p99 {:7.1} ms",
            "",
            ms(s50),
            ms(s99)
        );
        println!(
            "  {:32} CPU during the {:.1} s of applies: agents (this process) {:.1} s, controllers {:.1} s; one answer decodes in {:.2} ms",
            "",
            o.measured.as_secs_f64(),
            o.cpu_agents.as_secs_f64(),
            o.cpu_controllers.as_secs_f64(),
            ms(o.decode)
        );
        println!(
            "  {:32} desired state {} KiB per answer; {} of {agents} nodes ready at the end; {} applies not everywhere within {LIMIT:?}; {} poll errors, {} heartbeat errors{}",
            "",
            o.body_bytes / 1024,
            o.ready,
            o.incomplete,
            o.poll_errors,
            o.heartbeat_errors,
            o.first_error
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
    }
    println!(
        "  etcd/redb ratio of the all-agents p99: {:.2} (goal: p99 under 1 s)",
        p99s[0].as_secs_f64() / p99s[1].as_secs_f64().max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_from_the_acknowledgement() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let applies = [
            Apply {
                revision: 10,
                sent: t0 + ms(50),
                acked: t0 + ms(100),
            },
            Apply {
                revision: 12,
                sent: t0 + ms(990),
                acked: t0 + ms(1000),
            },
        ];
        let received = [
            // Agent 0 has revision 10 before the writer's answer: zero.
            (0, 10, t0 + ms(90)),
            (1, 9, t0 + ms(95)),
            (1, 11, t0 + ms(130)),
            (0, 12, t0 + ms(1010)),
            // Agent 1 never gets 12.
        ];
        let (all, each) = delays(2, &applies, |a| a.acked, &received);
        assert_eq!(all, vec![Some(ms(30)), None]);
        assert_eq!(each, vec![ms(0), ms(30), ms(10)]);
        let (all, each) = delays(2, &applies, |a| a.sent, &received);
        assert_eq!(all, vec![Some(ms(80)), None]);
        assert_eq!(each, vec![ms(40), ms(80), ms(20)]);
    }
}
