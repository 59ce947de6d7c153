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
            epg: EpgPath::new("bench", "app", "synthetic").into(),
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
        security_groups: Default::default(),
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

/// Endpoint number `i` (its IP and MAC follow from `i`) in EPG number `epg_index`.
fn endpoint_spec(
    name: &str,
    node: &str,
    netns: String,
    epg_index: usize,
    i: usize,
) -> EndpointSpec {
    EndpointSpec {
        name: name.into(),
        node: node.into(),
        netns,
        interface: 0,
        epg: epg(epg_index),
        ips: vec![ip_of(i)],
        mac: mac_of(i),
        allowed_pairs: vec![],
        port_security: true,
        security_groups: None,
    }
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
        let name = format!("e{i}");
        let netns = bed.endpoint_netns(&name)?;
        endpoints.push(endpoint_spec(&name, "n1", netns, i % EPGS, i));
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
            trace: Trace::IntraEpg {
                epg: epg(EPGS).into(),
            },
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
    // Adding one endpoint, then removing it again: a local one (its namespace, made
    // here like a runtime would, + veth + addresses + neighbour) and a remote one
    // (fdb + neighbour). `WEFT_FABRIC_LINKS=ip` measures the `ip`/`bridge` path.
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let i = LOCAL + REMOTE + round;
        let name = format!("x{round}");
        let t = Instant::now();
        let netns = bed.endpoint_netns(&name)?;
        let ns_time = t.elapsed();
        let mut eps = endpoints.clone();
        eps.push(endpoint_spec(&name, "n1", netns, i % EPGS, i));
        let mut with = DesiredNode::from_policy(&node, &bed.nodes, &policy, &eps)?;
        with.vrfs[0].remote = desired.vrfs[0].remote.clone();
        let add = fabric.reconcile(&with)?;
        let back = fabric.reconcile(&desired)?;
        local.push((ns_time, add.total_time, add.link_time, back.link_time));
        let mut with = desired.clone();
        with.vrfs[0].remote.push(RemoteEndpoint {
            name: format!("y{round}"),
            class: class(i % EPGS),
            vni: 1,
            ips: vec![ip_of(i)],
            mac: mac_of(i),
            node_underlay: Ipv4Addr::new(10, 255, 0, 2),
        });
        let add = fabric.reconcile(&with)?;
        let back = fabric.reconcile(&desired)?;
        remote.push((add.total_time, add.link_time, back.link_time));
    }
    let links = if std::env::var("WEFT_FABRIC_LINKS").is_ok_and(|v| v == "ip") {
        "ip/bridge"
    } else {
        "netlink"
    };
    for (ns, total, add, del) in &local {
        println!(
            "add one local endpoint ({links}): namespace {ns:.2?}, reconcile {total:.2?} of which links {add:.2?}; links to remove it {del:.2?}"
        );
    }
    for (total, add, del) in &remote {
        println!(
            "add one remote endpoint ({links}): reconcile {total:.2?} of which links {add:.2?}; links to remove it {del:.2?}"
        );
    }
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
        endpoints.push(endpoint_spec(name, node, netns, e, i));
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

/// Deletes whichever of weft's two tables exist (one `nft` command would fail as a
/// whole, and delete neither, when one is missing).
fn remove_tables(ns: &str) -> Res<()> {
    for family in ["bridge", "inet"] {
        let listed = sh(&["ip", "netns", "exec", ns, "nft", "list", "tables", family])?;
        if listed.contains(&format!("table {family} weft")) {
            sh(&[
                "ip", "netns", "exec", ns, "nft", "delete", "table", family, "weft",
            ])?;
        }
    }
    Ok(())
}

/// One iperf3 run. With two CPUs or more, the client is pinned to CPU 0 and the server
/// to CPU 1: the sender's CPU carries the whole forwarding path (veth, bridges, VXLAN
/// and netfilter all run in its softirq), so whether the scheduler put both ends on one
/// CPU no longer varies from run to run.
fn iperf(client_ns: &str, server_ns: &str, server: IpAddr, secs: u32) -> Res<f64> {
    let pinned = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let (server_cpu, client_cpu): (&[&str], &[&str]) = if pinned {
        (&["-A", "1"], &["-A", "0"])
    } else {
        (&[], &[])
    };
    let mut srv = Command::new("ip")
        .args(["netns", "exec", server_ns, "iperf3", "-s", "-1"])
        .args(server_cpu)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let (server, secs) = (server.to_string(), secs.to_string());
    let mut client = vec![
        "ip", "netns", "exec", client_ns, "iperf3", "-c", &server, "-t", &secs, "-J",
    ];
    client.extend_from_slice(client_cpu);
    let out = sh(&client);
    let _ = srv.wait();
    let v: serde_json::Value = serde_json::from_str(&out?)?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or("no iperf3 result")?;
    Ok(bps / 1e9)
}

/// What the throughput benchmark compares.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    /// weft as installed.
    With,
    /// The same namespaces, links and sysctls (br_netfilter on), weft's tables deleted
    /// (so no conntrack either): the baseline of the goal.
    Without,
    /// As `Without`, and bridged traffic no longer sent through the IP hooks
    /// (`bridge-nf-call-ip{,6}tables` = 0): what br_netfilter itself costs.
    Bare,
    /// As `Without`, plus one inet forward chain that only accepts `ct state
    /// established`: the floor of any design whose replies pass through conntrack on
    /// this kernel (no bridge-family conntrack, no flowtable), before any policy.
    ConntrackOnly,
    /// weft's tables, with the bridge chains cut to the one thing no design can drop:
    /// the source class from the port (no source check, no destination check). The
    /// floor of any design that meets the issue's own rules (class from the port,
    /// replies through conntrack) on this kernel.
    ClassOnly,
}

/// Turns weft's installed bridge table into [`Side::ClassOnly`]'s: one `nft` command,
/// one transaction.
fn class_only(uplink_group: u32) -> String {
    format!(
        "flush chain bridge weft prerouting; \
         delete chain bridge weft postrouting; \
         add rule bridge weft prerouting meta iifgroup {uplink_group} meta mark set meta mark and 0xffff accept; \
         add rule bridge weft prerouting meta mark set iifname map @port_class accept"
    )
}

const CONNTRACK_ONLY: &str = "table inet weft { chain forward { \
    type filter hook forward priority filter; policy accept; \
    ct state established,related accept; }; }";

fn set_side(bed: &Testbed, agents: &mut [(DesiredNode, Fabric)], side: Side) -> Res<()> {
    for n in 0..2 {
        let ns = vrf_ns(bed, n);
        let call = if side == Side::Bare { "0" } else { "1" };
        for key in [
            "net/bridge/bridge-nf-call-iptables",
            "net/bridge/bridge-nf-call-ip6tables",
        ] {
            weft_fabric::netns::sysctl(&ns, key, call)?;
        }
        // Every side starts from no tables ("with" reinstalls them below); already
        // gone when coming from a baseline without them.
        let _ = remove_tables(&ns);
        if side == Side::ConntrackOnly {
            sh(&["ip", "netns", "exec", &ns, "nft", CONNTRACK_ONLY])?;
        }
    }
    if matches!(side, Side::With | Side::ClassOnly) {
        // A fresh agent: the tables are missing, the links are not.
        for (d, f) in agents.iter_mut() {
            *f = Fabric::system();
            f.reconcile(d)?;
        }
    }
    if side == Side::ClassOnly {
        let cut = class_only(weft_fabric::names::UPLINK_GROUP);
        for n in 0..2 {
            sh(&["ip", "netns", "exec", &vrf_ns(bed, n), "nft", &cut])?;
        }
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Benchmark 1: TCP throughput with weft's tables vs the same topology without them,
/// next to three reference sides (no br_netfilter; conntrack only; class only). Every
/// round measures each side once, in an order that reverses every round, so that noise
/// from neighbours on the machine and any drift hit all sides alike. Reported: medians
/// per side and the median of the per-round ratios.
fn throughput() -> Res<()> {
    let (mut bed, mut agents, eps) = small_cluster("btput", 10)?;
    if std::env::var_os("WEFT_BENCH_HOLD").is_some() {
        // For experiments by hand: the cluster stays until a line arrives on stdin.
        for e in &eps {
            println!("{} {} {}", e.name, e.netns, e.ips[0]);
        }
        println!("vrf namespaces: {} {}", vrf_ns(&bed, 0), vrf_ns(&bed, 1));
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        drop(agents);
        bed.destroy()?;
        return Ok(());
    }
    // WEFT_BENCH_ROUNDS / WEFT_BENCH_SECS: e.g. one long round under `perf record -a`.
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let secs = env("WEFT_BENCH_SECS", 3);
    let rounds = env("WEFT_BENCH_ROUNDS", 7);
    let sides = [
        Side::With,
        Side::Without,
        Side::Bare,
        Side::ConntrackOnly,
        Side::ClassOnly,
    ];
    let mut results = Vec::new();
    for (label, server) in [("same node", 1usize), ("across nodes (VXLAN-GBP)", 2)] {
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..sides.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                set_side(&bed, &mut agents, sides[i])?;
                runs[i].push(iperf(
                    &eps[0].netns,
                    &eps[server].netns,
                    eps[server].ips[0],
                    secs,
                )?);
            }
        }
        set_side(&bed, &mut agents, Side::With)?;
        results.push((label, runs));
    }
    for (label, runs) in results {
        let ratios = |a: usize, b: usize| -> Vec<f64> {
            runs[a].iter().zip(&runs[b]).map(|(x, y)| x / y).collect()
        };
        println!(
            "{label}: with weft {:.2} Gbit/s, without weft tables {:.2}, bare (no br_netfilter) {:.2}, conntrack only {:.2} (medians of {rounds}x{secs}s)",
            median(&runs[0]),
            median(&runs[1]),
            median(&runs[2]),
            median(&runs[3]),
        );
        println!(
            "  with / without: ratio of medians {:.3}, median of per-round ratios {:.3}; with / bare {:.3}; without / bare {:.3}",
            median(&runs[0]) / median(&runs[1]),
            median(&ratios(0, 1)),
            median(&ratios(0, 2)),
            median(&ratios(1, 2)),
        );
        println!(
            "  conntrack only / without: ratio of medians {:.3}, median of per-round ratios {:.3} (the floor of any conntrack design here)",
            median(&runs[3]) / median(&runs[1]),
            median(&ratios(3, 1)),
        );
        println!(
            "  class only / without: ratio of medians {:.3}, median of per-round ratios {:.3} (the floor with the class taken from the port); with / class only {:.3}",
            median(&runs[4]) / median(&runs[1]),
            median(&ratios(4, 1)),
            median(&ratios(0, 4)),
        );
        for (side, r) in sides.iter().zip(&runs) {
            println!("  runs {side:?}: {r:.2?}");
        }
    }
    drop(agents);
    bed.destroy()?;
    Ok(())
}

/// Closes with an RST (SO_LINGER 0): no TIME_WAIT, so thousands of connections do not
/// slow down the next run's port search.
fn linger0(s: &TcpStream) -> Res<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Linger, &l)?;
    Ok(())
}

/// A listener that accepts as fast as it can, until dropped (then its thread ends and
/// the socket goes: nothing keeps the namespace alive).
///
/// Why the first version timed out after a few thousand connections: it listened with
/// std's backlog of 128 and read each accepted connection until the client's RST, one
/// at a time. When that thread was descheduled for a few milliseconds (2 shared cores),
/// 128 handshakes completed meanwhile, the accept queue overflowed
/// (`TcpExtListenOverflows`), the kernel dropped the next SYN, and the client's 1 s
/// connect timeout expired before its SYN retransmission (initial RTO 1 s). Now: the
/// largest backlog the namespace allows, no per-connection read (accepted streams are
/// kept in a short queue and dropped once their RST has long arrived, so the server
/// never sends anything first), and the client's timeout covers one retransmission;
/// overflows are counted and reported per measurement.
struct Acceptor {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    wake: SocketAddr,
    ns: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Accepted streams kept open before they are dropped (~50 ms at 20k connections/s).
const HELD: usize = 1024;

impl Acceptor {
    fn start(ns: &str, ip: IpAddr, port: u16) -> Res<Self> {
        let listener = weft_fabric::netns::in_netns(ns, move || -> Result<_, String> {
            use nix::sys::socket::{
                AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, setsockopt,
                socket, sockopt,
            };
            let fd = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(|e| e.to_string())?;
            setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| e.to_string())?;
            bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &SockaddrIn::new(0, 0, 0, 0, port),
            )
            .map_err(|e| e.to_string())?;
            // Capped by net.core.somaxconn (4096 by default).
            listen(&fd, Backlog::new(4096).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            Ok(std::net::TcpListener::from(fd))
        })??;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = std::collections::VecDeque::with_capacity(HELD + 1);
            for conn in listener.incoming() {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = conn {
                    held.push_back(c);
                    if held.len() > HELD {
                        held.pop_front();
                    }
                }
            }
        });
        Ok(Self {
            stop,
            wake: SocketAddr::new(ip, port),
            ns: ns.to_string(),
            thread: Some(thread),
        })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the blocking accept from inside its own namespace.
        let to = self.wake;
        let _ = weft_fabric::netns::in_netns(&self.ns, move || {
            TcpStream::connect_timeout(&to, Duration::from_secs(1))
        });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One `TcpExt` counter of a namespace (`/proc/thread-self/net/netstat`, read from a
/// thread inside it).
fn tcpext(ns: &str, name: &'static str) -> Res<u64> {
    let text = weft_fabric::netns::in_netns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/netstat")
    })??;
    let mut lines = text.lines();
    while let (Some(h), Some(v)) = (lines.next(), lines.next()) {
        if !h.starts_with("TcpExt:") {
            continue;
        }
        if let Some(i) = h.split_whitespace().position(|k| k == name) {
            return Ok(v.split_whitespace().nth(i).ok_or("netstat")?.parse()?);
        }
    }
    Err(format!("no TcpExt {name}").into())
}

/// One measurement: (connections/s, median connect, p99 connect, connections).
#[derive(Debug, Clone, Copy)]
struct Cell {
    rate: f64,
    p50: Duration,
    p99: Duration,
    n: usize,
}

/// Connects (and resets) at most `max` times or for at most `budget`, whichever ends
/// first. A connect may take one SYN retransmission (3 s timeout) without failing the
/// run; it shows in the p99.
fn connect_loop(ns: &str, to: SocketAddr, max: usize, budget: Duration) -> Res<Cell> {
    let r = weft_fabric::netns::in_netns(ns, move || {
        let mut lat = Vec::with_capacity(max);
        let start = Instant::now();
        while lat.len() < max && start.elapsed() < budget {
            let t = Instant::now();
            match TcpStream::connect_timeout(&to, Duration::from_secs(3)) {
                Ok(s) => {
                    lat.push(t.elapsed());
                    linger0(&s).map_err(|e| e.to_string())?;
                    drop(s);
                }
                Err(e) => return Err(format!("connect #{}: {e}", lat.len() + 1)),
            }
        }
        Ok((lat.len() as f64 / start.elapsed().as_secs_f64(), lat))
    })?;
    let (rate, mut lat) = r?;
    lat.sort();
    Ok(Cell {
        rate,
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
        n: lat.len(),
    })
}

fn diag(client: &str, server: &str, vrf: &str) {
    for (ns, cmd) in [
        (
            server,
            "nstat -az | grep -Ei 'listen|reqq|syn|rst|TcpPassive|TcpActive|Backlog'",
        ),
        (
            client,
            "nstat -az | grep -Ei 'listen|reqq|syn|rst|TcpPassive|TcpActive|Retrans|Timeout'",
        ),
        (
            vrf,
            "conntrack -S; conntrack -C; conntrack -L 2>/dev/null | awk '{print $4}' | sort | uniq -c",
        ),
        (
            vrf,
            "nft list counters; nft list table inet weft | grep -i counter | head -30",
        ),
        (client, "ip neigh; ss -s"),
        (server, "ip neigh; ss -ltn"),
    ] {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", cmd])
            .output();
        if let Ok(o) = out {
            eprintln!(
                "== {ns}: {cmd}\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

/// The linear firewall: the same rules as one iptables FORWARD chain, one line per
/// (source IP, destination IP) pair, the permitting rule last.
fn linear_ruleset(rules: usize, client: IpAddr, server: IpAddr) -> String {
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
            "-A FORWARD -s {src}/32 -d {server} -p tcp --dport {} -j ACCEPT\n",
            1000 + k % 1000
        );
    }
    restore +=
        &format!("-A FORWARD -s {client} -d {server} -p tcp --dport 7000 -j ACCEPT\nCOMMIT\n");
    restore
}

fn iptables_restore(ns: &str, text: &str) -> Res<()> {
    let path = format!("/tmp/weft-bench-{}.rules", std::process::id());
    std::fs::write(&path, text)?;
    let r = sh(&[
        "sh",
        "-c",
        &format!("ip netns exec {ns} iptables-restore < {path}"),
    ]);
    let _ = std::fs::remove_file(&path);
    r.map(|_| ())
}

/// Benchmark 2: new connections with 10 / 1,000 / 100,000 rules, weft vs a linear
/// iptables chain of the same rules expanded per IP pair. One cluster per rule count
/// (its own tag: no namespace name is ever reused), both firewalls measured in it,
/// alternating, with RST-closed connections (no TIME_WAIT on either side). Each
/// measurement starts with an empty conntrack table in the VRF namespace and makes at
/// most `MAX` connections in at most `BUDGET` (fewer than the client's even ports, so
/// no 4-tuple is reused inside a measurement).
fn connrate() -> Res<()> {
    const MAX: usize = 10_000;
    const BUDGET: Duration = Duration::from_secs(2);
    let rounds = 5;
    let counts = [10usize, 1_000, 100_000];
    // All three clusters live at once and every round visits each of them, so that
    // load from neighbours on the machine spreads over all cells alike.
    let mut cells = Vec::new();
    for rules in counts {
        let (bed, agents, eps) = small_cluster(&format!("bconn{rules}"), rules)?;
        weft_fabric::netns::sysctl(&eps[0].netns, "net/ipv4/ip_local_port_range", "1024 65535")?;
        let acceptor = Acceptor::start(&eps[1].netns, eps[1].ips[0], 7000)?;
        let linear = linear_ruleset(rules, eps[0].ips[0], eps[1].ips[0]);
        cells.push((rules, bed, agents, eps, acceptor, linear));
    }
    let empty = "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n";
    let mut results: Vec<(Vec<Cell>, Vec<Cell>)> = vec![(Vec::new(), Vec::new()); counts.len()];
    for round in 0..rounds {
        for (i, (rules, bed, agents, eps, _acceptor, linear)) in cells.iter_mut().enumerate() {
            let ns = vrf_ns(bed, 0);
            let to = SocketAddr::new(eps[1].ips[0], 7000);
            let measure = |side: &str| -> Res<Cell> {
                sh(&["ip", "netns", "exec", &ns, "conntrack", "-F"])?;
                let before = tcpext(&eps[1].netns, "ListenOverflows")?;
                let c = connect_loop(&eps[0].netns, to, MAX, BUDGET)
                    .inspect_err(|_| diag(&eps[0].netns, &eps[1].netns, &ns))?;
                let overflows = tcpext(&eps[1].netns, "ListenOverflows")? - before;
                println!(
                    "  round {round}, {rules} rules, {side}: {} connections, {:.0}/s, connect p50 {:.1?} p99 {:.1?}, listen overflows {overflows}",
                    c.n, c.rate, c.p50, c.p99
                );
                Ok(c)
            };
            results[i].0.push(measure("weft")?);
            remove_tables(&ns)?;
            iptables_restore(&ns, linear)?;
            results[i].1.push(measure("linear")?);
            iptables_restore(&ns, empty)?;
            // weft back: a fresh agent (tables missing, links present).
            let (d, f) = &mut agents[0];
            *f = Fabric::system();
            f.reconcile(d)?;
        }
    }
    let mut table = Vec::new();
    for ((rules, mut bed, agents, _eps, acceptor, _), (mut weft, mut lin)) in
        cells.into_iter().zip(results)
    {
        table.push((rules, median_cell(&mut weft), median_cell(&mut lin)));
        drop(acceptor);
        drop(agents);
        bed.destroy()?;
    }
    println!(
        "\nrules | weft conn/s | weft connect p50 / p99 | linear conn/s | linear connect p50 / p99   (medians of {rounds} rounds)"
    );
    for (rules, w, l) in &table {
        println!(
            "{rules} | {:.0} | {:.1?} / {:.1?} | {:.0} | {:.1?} / {:.1?}",
            w.rate, w.p50, w.p99, l.rate, l.p50, l.p99
        );
    }
    let rates: Vec<f64> = table.iter().map(|t| t.1.rate).collect();
    let (lo, hi) = rates
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    println!(
        "weft: slowest cell / fastest cell = {:.3} (goal >= 0.95), 100,000 / 10 rules = {:.3}; linear 100,000 / 10 = {:.3}",
        lo / hi,
        table[2].1.rate / table[0].1.rate,
        table[2].2.rate / table[0].2.rate
    );
    Ok(())
}

/// Per-field medians of a few measurements.
fn median_cell(v: &mut [Cell]) -> Cell {
    let m = v.len() / 2;
    let mut rates: Vec<f64> = v.iter().map(|c| c.rate).collect();
    rates.sort_by(f64::total_cmp);
    let mut p50: Vec<Duration> = v.iter().map(|c| c.p50).collect();
    p50.sort();
    let mut p99: Vec<Duration> = v.iter().map(|c| c.p99).collect();
    p99.sort();
    Cell {
        rate: rates[m],
        p50: p50[m],
        p99: p99[m],
        n: v.iter().map(|c| c.n).sum(),
    }
}
