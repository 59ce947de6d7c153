//! Fabric benchmarks (root only; everything lives in `weft-b<pid>-*` namespaces).
//!
//!   cargo run --release -p weft-fabric --example fabric_bench -- apply
//!   cargo run --release -p weft-fabric --example fabric_bench -- throughput
//!   cargo run --release -p weft-fabric --example fabric_bench -- connrate

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use weft_compiler::{
    BridgeDomainPolicy, ClassId, ClassSel, CompiledPolicy, Rule, Tier, Trace, VrfPolicy,
};
use weft_fabric::desired::{EndpointSpec, RemoteEndpoint};
use weft_fabric::testbed::Testbed;
use weft_fabric::{DesiredNode, Fabric};
use weft_model::{Action, EpgPath, ObjectPath, PortRange, Protocol};

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// (testbed, per-node desired state and agent, endpoints web1@n1, app1@n1, app2@n2)
type SmallCluster = (Testbed, Vec<(DesiredNode, Fabric)>, Vec<EndpointSpec>);

fn main() -> Res<()> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("fabric_bench needs root (network namespaces, nftables)");
        std::process::exit(2);
    }
    match std::env::args().nth(1).as_deref() {
        Some("apply") => apply(),
        Some("throughput") => throughput(),
        Some("connrate") => connrate(),
        _ => {
            eprintln!("usage: fabric_bench apply|throughput|connrate");
            std::process::exit(2);
        }
    }
}

const BASE_CLASS: u16 = 16386;

fn class(i: usize) -> ClassId {
    ClassId(BASE_CLASS + i as u16)
}

fn epg(i: usize) -> EpgPath {
    EpgPath::new("bench", "app", &format!("epg{i}"))
}

fn contract_rule(src: ClassId, dst: ClassId, dport: u16) -> Rule {
    Rule {
        tier: Tier::Contract,
        src: ClassSel::Class(src),
        dst: ClassSel::Class(dst),
        family: None,
        proto: Protocol::Tcp,
        sport: PortRange::ANY,
        dport: PortRange::single(dport),
        action: Action::Permit,
        trace: Trace::IntraEpg {
            epg: EpgPath::new("bench", "app", "synthetic"),
        },
    }
}

/// One VRF, one /16 bridge domain, `epgs` EPGs and `rules` class-to-class TCP rules
/// (distinct (src, dst, port) triples), plus whatever `extra` adds.
fn synthetic_policy(epgs: usize, rules: usize, extra: &[Rule]) -> CompiledPolicy {
    synthetic_policy_with(epgs, epgs, rules, extra)
}

/// `rule_epgs`: how many EPGs the padding rules spread over (fixed while EPGs are added).
fn synthetic_policy_with(
    epgs: usize,
    rule_epgs: usize,
    rules: usize,
    extra: &[Rule],
) -> CompiledPolicy {
    let vrf = ObjectPath::tenant("bench").child("vrf", "main");
    let bd = ObjectPath::tenant("bench").child("bd", "net");
    let mut members = BTreeMap::new();
    let mut epg_map = BTreeMap::new();
    for i in 0..epgs {
        members.insert(class(i), epg(i));
        epg_map.insert(
            epg(i),
            weft_compiler::EpgPolicy {
                path: epg(i),
                class: class(i),
                vrf: vrf.clone(),
                bridge_domain: bd.clone(),
            },
        );
    }
    let mut r: Vec<Rule> = (0..rules)
        .map(|k| {
            let pairs = rule_epgs * rule_epgs;
            contract_rule(
                class(k % rule_epgs),
                class((k / rule_epgs) % rule_epgs),
                1000 + (k / pairs) as u16,
            )
        })
        .collect();
    r.extend_from_slice(extra);
    r.sort_unstable();
    let policy = VrfPolicy {
        path: vrf.clone(),
        id: 1,
        enforced: true,
        bridge_domains: vec![BridgeDomainPolicy {
            path: bd,
            vni: 1,
            gateway_mac: [2, 0x77, 0x66, 0, 0, 1],
            subnets: vec![(
                "10.0.0.0/16".parse().expect("net"),
                "10.0.0.1".parse().expect("ip"),
            )],
        }],
        members,
        rules: r,
    };
    CompiledPolicy {
        vrfs: BTreeMap::from([(vrf, policy)]),
        epgs: epg_map,
        allocation: Default::default(),
    }
}

fn ip_of(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        0,
        (2 + i / 250) as u8,
        (2 + i % 250) as u8,
    ))
}

fn mac_of(i: usize) -> [u8; 6] {
    [2, 0, 0, 1, (i >> 8) as u8, i as u8]
}

/// Benchmark 3: one added EPG + contract on a node holding 10,000 endpoints and
/// 100,000 rules.
fn apply() -> Res<()> {
    const LOCAL: usize = 100;
    const REMOTE: usize = 9_900;
    const EPGS: usize = 400;
    const RULES: usize = 100_000;
    let mut bed = Testbed::new("bapply", &["n1"])?;
    let node = bed.nodes[0].clone();
    let mut endpoints = Vec::new();
    for i in 0..LOCAL {
        let netns = bed.endpoint_netns(&format!("e{i}"))?;
        endpoints.push(EndpointSpec {
            name: format!("e{i}"),
            node: "n1".into(),
            netns,
            epg: epg(i % EPGS),
            ips: vec![ip_of(i)],
            mac: mac_of(i),
            allowed_pairs: vec![],
        });
    }
    let policy = synthetic_policy(EPGS, RULES, &[]);
    let mut desired = DesiredNode::from_policy(&node, &bed.nodes, &policy, &endpoints)?;
    desired.vrfs[0].remote = (LOCAL..LOCAL + REMOTE)
        .map(|i| RemoteEndpoint {
            name: format!("r{i}"),
            class: class(i % EPGS),
            vni: 1,
            ips: vec![ip_of(i)],
            mac: mac_of(i),
            node_underlay: Ipv4Addr::new(10, 255, 0, 2),
        })
        .collect();
    let mut fabric = Fabric::system();
    let t = Instant::now();
    let full = fabric.reconcile(&desired)?;
    println!(
        "initial install: {} local + {} remote endpoints, {} rules -> {} nft elements, {} link facts in {:.2?} (nft {:.2?})",
        LOCAL,
        REMOTE,
        RULES,
        full.nft_elements_added,
        full.links_created,
        t.elapsed(),
        full.nft_time
    );
    if std::env::var_os("WEFT_BENCH_PROFILE").is_some() {
        let t = Instant::now();
        desired.validate()?;
        println!("  validate {:.2?}", t.elapsed());
        let t = Instant::now();
        let facts = weft_fabric::link::desired_facts(&desired, &desired.vrfs[0]);
        println!("  desired_facts {:.2?}", t.elapsed());
        let t = Instant::now();
        let els = weft_fabric::nft::render_vrf(&desired.vrfs[0]);
        println!("  render {:.2?}", t.elapsed());
        let t = Instant::now();
        let b = weft_fabric::nft::apply::diff_batch(Some(&els), true, &els);
        println!("  diff {:.2?} {}", t.elapsed(), b.added);
        let t = Instant::now();
        let p = weft_fabric::link::plan("x", &facts, &facts, &Default::default());
        println!("  plan {:.2?} {}", t.elapsed(), p.created);
    }
    let same = fabric.reconcile(&desired)?;
    println!(
        "reconcile, nothing changed: {} changes in {:.2?}",
        same.changes(),
        same.total_time
    );

    // The change: EPG number EPGS (new class) + a contract with epg0 (two rules, like
    // a contract with one filter entry in each direction) + its intra-EPG rule.
    let new_class = class(EPGS);
    let extra = [
        contract_rule(new_class, class(0), 8443),
        contract_rule(class(0), new_class, 9000),
        Rule {
            tier: Tier::IntraEpg,
            src: ClassSel::Class(new_class),
            dst: ClassSel::Class(new_class),
            family: None,
            proto: Protocol::Any,
            sport: PortRange::ANY,
            dport: PortRange::ANY,
            action: Action::Permit,
            trace: Trace::IntraEpg { epg: epg(EPGS) },
        },
    ];
    let mut samples = Vec::new();
    for round in 0..5 {
        let mut changed = desired.clone();
        let p = synthetic_policy_with(EPGS + 1, EPGS, RULES, &extra);
        changed.vrfs[0].policy = p.vrfs.into_values().next().ok_or("no vrf")?;
        let add = fabric.reconcile(&changed)?;
        let back = fabric.reconcile(&desired)?;
        if round == 0 {
            println!(
                "add EPG+contract: +{} -{} nft elements, {} link changes",
                add.nft_elements_added,
                add.nft_elements_removed,
                add.links_created + add.links_deleted
            );
        }
        samples.push((add.total_time, add.nft_time));
        samples.push((back.total_time, back.nft_time));
    }
    let mut totals: Vec<Duration> = samples.iter().map(|s| s.0).collect();
    let mut nfts: Vec<Duration> = samples.iter().map(|s| s.1).collect();
    totals.sort();
    nfts.sort();
    println!(
        "apply one EPG+contract ({} adds/removes): total reconcile median {:.2?} (max {:.2?}); nft transaction median {:.2?} (max {:.2?})",
        samples.len(),
        totals[totals.len() / 2],
        totals[totals.len() - 1],
        nfts[nfts.len() / 2],
        nfts[nfts.len() - 1]
    );
    fabric.teardown(&node.vrf_netns_prefix)?;
    bed.destroy()?;
    Ok(())
}

fn sh(args: &[&str]) -> Res<String> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A two-node cluster with a web and an app EPG; `extra_rules` synthetic rules pad the
/// rule table. Returns (testbed, fabrics, endpoints: web1@n1, app1@n1, app2@n2).
fn small_cluster(tag: &str, rules: usize) -> Res<SmallCluster> {
    let mut bed = Testbed::new(tag, &["n1", "n2"])?;
    let mut endpoints = Vec::new();
    for (i, (name, node, e)) in [("web1", "n1", 0), ("app1", "n1", 1), ("app2", "n2", 1)]
        .into_iter()
        .enumerate()
    {
        let netns = bed.endpoint_netns(name)?;
        endpoints.push(EndpointSpec {
            name: name.into(),
            node: node.into(),
            netns,
            epg: epg(e),
            ips: vec![ip_of(i)],
            mac: mac_of(i),
            allowed_pairs: vec![],
        });
    }
    // web -> app on 5201 (iperf3) and 7000 (connect probe); the padding rules come first
    // in the map but never match these classes' keys.
    let permit = [
        contract_rule(class(0), class(1), 5201),
        contract_rule(class(0), class(1), 7000),
    ];
    let policy = synthetic_policy(2 + rules.div_ceil(1000).max(1), rules, &permit);
    let mut agents = Vec::new();
    for n in bed.nodes.clone() {
        let d = DesiredNode::from_policy(&n, &bed.nodes, &policy, &endpoints)?;
        let mut f = Fabric::system();
        f.reconcile(&d)?;
        agents.push((d, f));
    }
    Ok((bed, agents, endpoints))
}

fn vrf_ns(bed: &Testbed, node: usize) -> String {
    format!("{}-v1", bed.nodes[node].vrf_netns_prefix)
}

fn remove_tables(ns: &str) -> Res<()> {
    sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "nft",
        "delete table bridge weft; delete table inet weft",
    ])
    .map(|_| ())
}

fn iperf(client_ns: &str, server_ns: &str, server: IpAddr, secs: u32) -> Res<f64> {
    let mut srv = Command::new("ip")
        .args(["netns", "exec", server_ns, "iperf3", "-s", "-1"])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let out = sh(&[
        "ip",
        "netns",
        "exec",
        client_ns,
        "iperf3",
        "-c",
        &server.to_string(),
        "-t",
        &secs.to_string(),
        "-J",
    ]);
    let _ = srv.wait();
    let v: serde_json::Value = serde_json::from_str(&out?)?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or("no iperf3 result")?;
    Ok(bps / 1e9)
}

/// Benchmark 1: TCP throughput with weft's tables vs the same topology without them.
/// Rounds alternate (with, without) so that noise from neighbours on the machine hits
/// both sides alike; the medians are compared.
fn throughput() -> Res<()> {
    let (mut bed, mut agents, eps) = small_cluster("btput", 10)?;
    let secs = 3;
    let rounds = 5;
    let mut results = Vec::new();
    for (label, server) in [("same node", 1usize), ("across nodes (VXLAN-GBP)", 2)] {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            with.push(iperf(
                &eps[0].netns,
                &eps[server].netns,
                eps[server].ips[0],
                secs,
            )?);
            for n in 0..2 {
                remove_tables(&vrf_ns(&bed, n))?;
            }
            without.push(iperf(
                &eps[0].netns,
                &eps[server].netns,
                eps[server].ips[0],
                secs,
            )?);
            // Put weft back (a fresh agent: the tables are missing, the links are not).
            for (d, f) in agents.iter_mut() {
                *f = Fabric::system();
                f.reconcile(d)?;
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        results.push((
            label,
            median(&mut with),
            median(&mut without),
            with,
            without,
        ));
    }
    for (label, with, without, all_with, all_without) in results {
        println!(
            "{label}: with weft {with:.2} Gbit/s, without weft tables {without:.2} Gbit/s (medians of {rounds}x{secs}s), ratio {:.3}",
            with / without
        );
        println!("  runs with: {all_with:.2?}  without: {all_without:.2?}");
    }
    drop(agents);
    bed.destroy()?;
    Ok(())
}

/// A listener that accepts and closes as fast as it can (lives until the namespace goes).
fn accept_and_close(ns: &str, port: u16) -> Res<()> {
    let listener = weft_fabric::netns::in_netns(ns, move || {
        std::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
    })??;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    Ok(())
}

/// Connects `n` times (or for `budget`), returns (connections/s, median connect time).
fn connect_loop(ns: &str, to: SocketAddr, budget: Duration) -> Res<(f64, Duration)> {
    let r = weft_fabric::netns::in_netns(ns, move || {
        let mut lat = Vec::new();
        let start = Instant::now();
        while start.elapsed() < budget {
            let t = Instant::now();
            match TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
                Ok(s) => {
                    lat.push(t.elapsed());
                    drop(s);
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok((lat.len() as f64 / start.elapsed().as_secs_f64(), lat))
    })?;
    let (rate, mut lat) = r?;
    lat.sort();
    Ok((rate, lat[lat.len() / 2]))
}

/// Benchmark 2: new connections with 10 / 1,000 / 100,000 rules, weft vs a linear
/// iptables chain of the same rules expanded per IP pair.
fn connrate() -> Res<()> {
    let budget = Duration::from_secs(2);
    println!("rules | weft conn/s | weft median connect | linear conn/s | linear median connect");
    for rules in [10usize, 1_000, 100_000] {
        let (mut bed, agents, eps) = small_cluster("bconn", rules)?;
        accept_and_close(&eps[1].netns, 7000)?;
        let to = SocketAddr::new(eps[1].ips[0], 7000);
        let (w_rate, w_lat) = connect_loop(&eps[0].netns, to, budget)?;
        // A fresh cluster for the other side: the first run's TIME_WAIT sockets would
        // slow the second run's port search.
        drop(agents);
        bed.destroy()?;
        let (mut bed, agents, eps) = small_cluster("blin", rules)?;
        accept_and_close(&eps[1].netns, 7000)?;
        // Linear firewall: same rules as one chain, one line per (source IP, destination
        // IP) pair (one endpoint per EPG here), the permitting rule last.
        let ns = vrf_ns(&bed, 0);
        remove_tables(&ns)?;
        let mut restore = String::from(
            "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
        );
        for k in 0..rules {
            // Distinct, never-matching source addresses stand for other endpoints.
            let src = Ipv4Addr::new(
                10,
                1 + (k / 65536) as u8,
                ((k / 256) % 256) as u8,
                (k % 256) as u8,
            );
            restore += &format!(
                "-A FORWARD -s {src}/32 -d {} -p tcp --dport {} -j ACCEPT\n",
                eps[1].ips[0],
                1000 + k % 1000
            );
        }
        restore += &format!(
            "-A FORWARD -s {} -d {} -p tcp --dport 7000 -j ACCEPT\nCOMMIT\n",
            eps[0].ips[0], eps[1].ips[0]
        );
        let path = format!("/tmp/weft-bench-{}.rules", std::process::id());
        std::fs::write(&path, restore)?;
        sh(&[
            "sh",
            "-c",
            &format!("ip netns exec {ns} iptables-restore < {path}"),
        ])?;
        let _ = std::fs::remove_file(&path);
        let (l_rate, l_lat) = connect_loop(&eps[0].netns, to, budget)?;
        println!("{rules} | {w_rate:.0} | {w_lat:.2?} | {l_rate:.0} | {l_lat:.2?}");
        drop(agents);
        bed.destroy()?;
    }
    Ok(())
}
