//! Security-group benchmark (root only; everything lives in `weft-b<pid>-*` namespaces).
//!
//!   cargo run --release -p weft-fabric --example sg_bench
//!
//! 1,000 ports (100 local to the measured node, each with its own namespace; 900 on
//! another node) in 100 security groups of 10 ports; every group has 10 rules
//! admitting TCP from the members of the next group (`remote_group`): 1,000 rules with
//! remote groups. Measured: one membership change (a port moves to another group),
//! from the new desired state to the elements installed in the kernel, against the
//! same for adding one endpoint without groups (the fabric's cheapest change), in the
//! same run.

use std::fmt::Write as _;
use std::time::{Duration, Instant};
use weft_compiler::{Allocation, CompiledPolicy};
use weft_fabric::desired::EndpointSpec;
use weft_fabric::testbed::Testbed;
use weft_fabric::{DesiredNode, Fabric};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const GROUPS: usize = 100;
const RULES_PER_GROUP: usize = 10;
const PORTS: usize = 1_000;
const LOCAL: usize = 100;
const ROUNDS: usize = 20;

fn policy() -> Res<CompiledPolicy> {
    let mut hcl = String::from(
        r#"tenant "bench" {
  vrf "main" {}
  bridge_domain "net" {
    vrf = "main"
    subnet "10.8.0.0/16" { gateway = "10.8.0.1" }
  }
  application_profile "app" {
    epg "hosts" { bridge_domain = "net" }
  }
"#,
    );
    for g in 0..GROUPS {
        let _ = writeln!(hcl, "  security_group \"g{g}\" {{");
        for r in 0..RULES_PER_GROUP {
            let _ = writeln!(
                hcl,
                "    rule \"r{r}\" {{\n      direction = \"ingress\"\n      ether_type = \"ipv4\"\n      protocol = \"tcp\"\n      destination_port = {}\n      remote_group = \"g{}\"\n    }}",
                1000 + r,
                (g + 1) % GROUPS
            );
        }
        hcl.push_str("  }\n");
    }
    hcl.push_str("}\n");
    let model = weft_model::parse_hcl("sg_bench.hcl", &hcl).map_err(|e| format!("{e:?}"))?;
    let report = weft_model::validate(&model);
    if report.has_errors() {
        return Err(format!("{report:?}").into());
    }
    Ok(weft_compiler::compile(&model, &Allocation::default())?)
}

fn spec(i: usize, node: &str, netns: String, group: Option<usize>) -> EndpointSpec {
    EndpointSpec {
        name: format!("p{i}"),
        node: node.into(),
        netns,
        interface: 0,
        epg: weft_model::EpgPath::new("bench", "app", "hosts"),
        ips: vec![
            format!("10.8.{}.{}", 1 + i / 200, 10 + i % 200)
                .parse()
                .expect("ip"),
        ],
        mac: [2, 0, 8, 0, (i >> 8) as u8, i as u8],
        allowed_pairs: vec![],
        port_security: true,
        security_groups: group.map(|g| vec![format!("g{g}")]),
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn main() -> Res<()> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("sg_bench needs root (network namespaces, nftables)");
        std::process::exit(2);
    }
    let policy = policy()?;
    let mut bed = Testbed::new("bsg", &["n1", "n2"])?;
    let node = bed.nodes[0].clone();
    let mut endpoints = Vec::with_capacity(PORTS);
    for i in 0..PORTS {
        let (on, netns) = if i < LOCAL {
            ("n1", bed.endpoint_netns(&format!("p{i}"))?)
        } else {
            ("n2", format!("weft-remote-{i}"))
        };
        endpoints.push(spec(i, on, netns, Some(i % GROUPS)));
    }
    let mut fabric = Fabric::system();
    let t = Instant::now();
    let desired = DesiredNode::from_policy(&node, &bed.nodes, &policy, &endpoints)?;
    let first = fabric.reconcile(&desired)?;
    println!(
        "initial: {PORTS} ports ({LOCAL} local) in {GROUPS} groups, {} rules with remote groups -> {} nft elements in {:.2?}",
        GROUPS * RULES_PER_GROUP,
        first.nft_elements_added,
        t.elapsed()
    );

    // One membership change per round: a port (local and remote in turn) moves to the
    // next group, then back; the clock runs from the new endpoint list to the kernel.
    let mut membership = Vec::new();
    let mut elements = Vec::new();
    for round in 0..ROUNDS {
        let i = if round % 2 == 0 { round } else { LOCAL + round };
        for group in [(i + 1) % GROUPS, i % GROUPS] {
            endpoints[i].security_groups = Some(vec![format!("g{group}")]);
            let t = Instant::now();
            let d = DesiredNode::from_policy(&node, &bed.nodes, &policy, &endpoints)?;
            let built = t.elapsed();
            let r = fabric.reconcile(&d)?;
            membership.push(t.elapsed());
            if std::env::var_os("WEFT_BENCH_PROFILE").is_some() {
                println!(
                    "  port {i} to g{group}: desired {built:.2?}, reconcile {:.2?} (nft {:.2?}, links {:.2?}), +{} -{} elements",
                    r.total_time,
                    r.nft_time,
                    r.link_time,
                    r.nft_elements_added,
                    r.nft_elements_removed
                );
            }
            elements.push(r.nft_elements_added + r.nft_elements_removed);
        }
    }
    // Baseline: one remote endpoint without groups comes and goes.
    let mut baseline = Vec::new();
    for round in 0..ROUNDS {
        let mut with = endpoints.clone();
        with.push(spec(PORTS + round, "n2", "weft-remote-x".into(), None));
        for eps in [&with, &endpoints] {
            let t = Instant::now();
            let d = DesiredNode::from_policy(&node, &bed.nodes, &policy, eps)?;
            fabric.reconcile(&d)?;
            baseline.push(t.elapsed());
        }
    }
    let (m50, m99) = (
        percentile(&mut membership, 0.5),
        percentile(&mut membership, 0.99),
    );
    let (b50, b99) = (
        percentile(&mut baseline, 0.5),
        percentile(&mut baseline, 0.99),
    );
    elements.sort_unstable();
    println!(
        "membership change ({} samples): p50 {m50:.2?}, p99 {m99:.2?}; nft elements changed per change: median {}, max {}",
        membership.len(),
        elements[elements.len() / 2],
        elements[elements.len() - 1]
    );
    println!(
        "baseline, one endpoint without groups ({} samples): p50 {b50:.2?}, p99 {b99:.2?}",
        baseline.len()
    );
    println!(
        "ratio membership/baseline: p50 {:.2}, p99 {:.2}",
        m50.as_secs_f64() / b50.as_secs_f64(),
        m99.as_secs_f64() / b99.as_secs_f64()
    );
    fabric.teardown(&node.vrf_netns_prefix)?;
    bed.destroy()?;
    Ok(())
}
