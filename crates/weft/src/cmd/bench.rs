//! `weft bench compile`: compile time, memory and rule count of a large synthetic model,
//! a one-contract change against the full compile, and rule count against endpoints.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weft_compiler::{Allocation, CompileBudget, Compiler};
use weft_model::{
    AppProfile, BridgeDomain, Contract, Epg, EpgPath, Filter, FilterEntry, Model, PortRange,
    Protocol, Subject, Subnet, Tenant, Vrf,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Compile a model of N EPGs, M contract relations and K filter entries.
    Compile {
        #[arg(long, default_value_t = 1_000)]
        epgs: usize,
        /// Provide + consume edges; each contract gets one provider and one consumer.
        #[arg(long, default_value_t = 5_000)]
        relations: usize,
        #[arg(long, default_value_t = 20_000)]
        entries: usize,
        /// Timed repetitions of each measurement; the median is reported.
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Instead: N EPGs that all consume and provide one contract (N x N rules).
        /// Reports admission under the default budget, then the full expansion without
        /// a budget: rules, time, peak memory and bytes per rule. Run it on its own, so
        /// that peak memory is this case's.
        #[arg(long, value_name = "N")]
        many_to_many: Option<usize>,
    },
    /// Task start latency on a one-node dev cluster: from `weft app apply` to the task
    /// running with its endpoint and policy in place, against `docker run --network none`.
    Tasks {
        #[arg(long, default_value_t = 30)]
        runs: usize,
    },
    /// Port create (bound to a node) to the port passing traffic on a two-node dev
    /// cluster: through Neutron's API against weft's own endpoint API, alternating.
    Ports {
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// Nova server create to ACTIVE with its port passing traffic on a two-node dev
    /// cluster, against `docker run -d` of the same image answering, alternating; then
    /// `--parallel` servers created at once against as many `docker run -d` in parallel.
    Servers {
        /// Servers and containers each, one at a time (at most 500).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Servers (and containers) of the burst, at most 250; 0 skips it.
        #[arg(long, default_value_t = 100)]
        parallel: usize,
        /// The figures as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Leader kills on three controllers over a local three-member etcd: from `kill -9`
    /// to the first acknowledged write through a survivor and to the new leader's first
    /// scheduling decision.
    Failover {
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// Write rate through the API (endpoint creates/s, policy applies/s) with 1 and 8
    /// clients: three controllers over a local three-member etcd against one on redb.
    Writes {
        /// Seconds per measurement (8 measurements).
        #[arg(long, default_value_t = 5)]
        secs: u64,
    },
    /// Simulated agents long-polling their desired state: from a policy apply's
    /// acknowledgement to every agent holding it, over three controllers on a local
    /// three-member etcd, then over one controller on redb.
    Propagation {
        #[arg(long, default_value_t = 1_000)]
        agents: usize,
        #[arg(long, default_value_t = 20)]
        applies: usize,
        /// Agents read each answer's index header and body without decoding the body
        /// (what the controllers deliver, without 1,000 decodes on the same cores).
        #[arg(long)]
        raw: bool,
    },
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.what {
        What::Compile {
            epgs,
            relations,
            entries,
            runs,
            many_to_many,
        } => match many_to_many {
            Some(n) => many_to_many_bench(n),
            None => compile_bench(epgs, relations, entries, runs.max(1)),
        },
        What::Tasks { runs } => crate::cmd::bench_tasks::run(runs.max(1)),
        What::Ports { runs } => crate::cmd::bench_ports::run(runs.max(1)),
        What::Servers {
            runs,
            parallel,
            json,
        } => crate::cmd::bench_servers::run(runs, parallel, json),
        What::Failover { rounds } => crate::cmd::bench_failover::run(rounds.max(1)),
        What::Writes { secs } => crate::cmd::bench_writes::run(secs.max(1)),
        What::Propagation {
            agents,
            applies,
            raw,
        } => crate::cmd::bench_propagation::run(agents, applies, raw),
    }
}

/// A tenant with `vrfs` VRFs, EPGs spread over them, and contracts each joining a
/// consumer and a provider of the same VRF through their own filter.
fn synthetic_model(epgs: usize, relations: usize, entries: usize) -> Model {
    let vrfs = 10.min(epgs.max(1));
    let contracts = (relations / 2).max(1);
    let per_filter = (entries / contracts).max(1);
    let mut t = Tenant::default();
    for v in 0..vrfs {
        t.vrfs.insert(format!("vrf{v}"), Vrf::default());
        let mut bd = BridgeDomain {
            vrf: format!("vrf{v}"),
            ..BridgeDomain::default()
        };
        let cidr = format!("10.{v}.0.0/16");
        let gateway = format!("10.{v}.0.1")
            .parse()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        let net = cidr.parse().unwrap_or_default();
        bd.subnets.insert(
            cidr,
            Subnet {
                cidr: net,
                gateway,
                loc: Default::default(),
            },
        );
        t.bridge_domains.insert(format!("bd{v}"), bd);
    }
    let mut ap = AppProfile::default();
    for e in 0..epgs {
        let epg = Epg {
            bridge_domain: format!("bd{}", e % vrfs),
            ..Epg::default()
        };
        ap.epgs.insert(format!("e{e}"), epg);
    }
    for c in 0..contracts {
        let mut filter = Filter::default();
        for i in 0..per_filter {
            let port = u16::try_from((c * per_filter + i) % 60_000 + 1024).unwrap_or(1024);
            let entry = FilterEntry {
                protocol: Protocol::Tcp,
                destination_port: PortRange::single(port),
                ..FilterEntry::default()
            };
            filter.entries.insert(format!("p{i}"), entry);
        }
        t.filters.insert(format!("f{c}"), filter);
        let subject = Subject {
            filters: vec![format!("f{c}")],
            ..Subject::default()
        };
        let mut contract = Contract::default();
        contract.subjects.insert("s".into(), subject);
        t.contracts.insert(format!("c{c}"), contract);
        // Consumer and provider in the same VRF (EPG index ≡ VRF modulo `vrfs`).
        let consumer = c % epgs;
        let provider = (consumer + vrfs) % epgs;
        if let Some(e) = ap.epgs.get_mut(&format!("e{consumer}")) {
            e.consumes.push(format!("c{c}"));
        }
        if let Some(e) = ap.epgs.get_mut(&format!("e{provider}")) {
            e.provides.push(format!("c{c}"));
        }
    }
    t.app_profiles.insert("ap".into(), ap);
    let mut model = Model::default();
    model.tenants.insert("bench".into(), t);
    model
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Resident and peak memory of this process, from /proc (kB).
fn memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn compile_bench(epgs: usize, relations: usize, entries: usize, runs: usize) -> Result<ExitCode> {
    eprintln!("building a model of {epgs} EPGs, {relations} relations, {entries} filter entries…");
    let model = synthetic_model(epgs, relations, entries);
    let (rss_before, _) = memory_kb();

    let mut full = Vec::new();
    let mut compiler = Compiler::new(Allocation::default());
    for i in 0..runs {
        eprint!("\rfull compile {}/{runs}", i + 1);
        compiler = Compiler::new(Allocation::default());
        let start = Instant::now();
        compiler
            .compile(&model)
            .context("compiling the synthetic model")?;
        full.push(start.elapsed());
    }
    eprintln!();
    let policy = compiler
        .compile(&model)
        .context("compiling the synthetic model")?
        .clone();
    let (rss_after, peak) = memory_kb();
    let rules = policy.rule_count();

    // One contract's filter changes port: only that contract is recompiled.
    let mut changed = model.clone();
    let mut incremental = Vec::new();
    let mut recompiled = 0;
    let mut rules_touched = 0;
    for i in 0..runs {
        let port = 2 + u16::try_from(i).unwrap_or(0);
        if let Some(entry) = changed
            .tenants
            .get_mut("bench")
            .and_then(|t| t.filters.get_mut("f0"))
            .and_then(|f| f.entries.get_mut("p0"))
        {
            entry.destination_port = PortRange::single(port);
        }
        let start = Instant::now();
        compiler
            .compile(&changed)
            .context("recompiling after one change")?;
        incremental.push(start.elapsed());
        recompiled = compiler.last_stats().contracts_recompiled;
        rules_touched = compiler.last_stats().rules_added + compiler.last_stats().rules_removed;
    }

    // Endpoints only add entries to a node's endpoint table; rules stay as they are.
    let endpoint_rows = |count: usize| -> usize {
        let paths: Vec<EpgPath> = policy.epgs.keys().cloned().collect();
        let mut table: BTreeMap<u32, u16> = BTreeMap::new();
        for n in 0..count {
            let epg = &paths[n % paths.len()];
            let class = policy.epgs[epg].class.0;
            table.insert(u32::try_from(n).unwrap_or(u32::MAX), class);
        }
        table.len()
    };
    let (small, large) = (endpoint_rows(10_000), endpoint_rows(100_000));
    let rules_after = policy.rule_count();

    let full_ms = median(full).as_secs_f64() * 1e3;
    let incr_ms = median(incremental).as_secs_f64() * 1e3;
    println!("model: {epgs} EPGs, {relations} contract relations, {entries} filter entries");
    println!("full compile:        {full_ms:8.2} ms (median of {runs})   goal < 200 ms");
    println!(
        "one-contract change: {incr_ms:8.2} ms (median of {runs}), {recompiled} of {} contracts recompiled, {rules_touched} rules removed+added, ratio {:.3} of full",
        compiler.last_stats().contracts,
        incr_ms / full_ms
    );
    println!(
        "memory: RSS +{} MiB for the compiled policy, peak RSS {} MiB",
        rss_after.saturating_sub(rss_before) / 1024,
        peak / 1024
    );
    println!("rules: {rules}");
    println!(
        "endpoints {small} -> {large} (x10): endpoint-table rows {small} -> {large}, rules {rules} -> {rules_after}"
    );
    Ok(ExitCode::SUCCESS)
}

/// N EPGs in one VRF, all consuming and providing one contract of one filter entry.
fn mesh_model(n: usize) -> Model {
    let mut model = synthetic_model(n, 2, 1);
    if let Some(t) = model.tenants.get_mut("bench") {
        t.vrfs.retain(|name, _| name == "vrf0");
        t.bridge_domains.retain(|name, _| name == "bd0");
        for ap in t.app_profiles.values_mut() {
            for epg in ap.epgs.values_mut() {
                epg.bridge_domain = "bd0".into();
                epg.consumes = vec!["c0".into()];
                epg.provides = vec!["c0".into()];
            }
        }
    }
    model
}

fn many_to_many_bench(n: usize) -> Result<ExitCode> {
    eprintln!("building a model of {n} EPGs on one contract…");
    let model = mesh_model(n);
    let document = serde_json::to_vec(&model).context("encoding the model")?;
    println!(
        "model: {n} EPGs consuming and providing one contract ({} KiB as JSON)",
        document.len() / 1024
    );

    let start = Instant::now();
    let refused = Compiler::new(Allocation::default())
        .compile(&model)
        .is_err();
    let admission = start.elapsed();
    let (_, peak_admission) = memory_kb();
    println!(
        "admission (default budget {} rules per VRF): {} in {:.2} ms, peak RSS {} MiB",
        CompileBudget::default().max_rules_per_vrf,
        if refused { "refused" } else { "admitted" },
        admission.as_secs_f64() * 1e3,
        peak_admission / 1024
    );

    eprintln!("expanding without a budget…");
    let (rss_before, _) = memory_kb();
    let start = Instant::now();
    let mut compiler = Compiler::new(Allocation::default()).with_budget(CompileBudget::UNLIMITED);
    let rules = compiler
        .compile(&model)
        .context("compiling without a budget")?
        .rule_count();
    let full = start.elapsed();
    let (rss_after, peak) = memory_kb();
    let held = rss_after.saturating_sub(rss_before) * 1024;
    println!(
        "full expansion: {rules} rules in {:.2} s, RSS +{} MiB held ({} bytes per rule; {} in the rule itself), peak RSS {} MiB",
        full.as_secs_f64(),
        held >> 20,
        held / u64::try_from(rules.max(1)).unwrap_or(1),
        CompileBudget::rule_bytes(),
        peak / 1024
    );
    Ok(ExitCode::SUCCESS)
}
