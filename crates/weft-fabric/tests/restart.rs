//! Reconciling again changes nothing, an agent restart tears nothing down, open
//! connections survive both, an added endpoint costs only its own elements, and bad
//! input is refused with the last good state left in place.

mod common;
use common::{Cluster, THREE_TIER_HCL, show};
use std::io::{Read, Write};
use std::net::TcpStream;
use weft_fabric::probe::{self, EchoServer};
use weft_fabric::{Fabric, FabricError};

fn echo(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 5];
    s.write_all(b"hello").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"hello"
}

/// Everything weft programs in a VRF namespace, as text, without what the kernel
/// changes by itself (counters, timers, learned entries, IPv6 DAD flags).
fn snapshot(ns: &str) -> String {
    let nft = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-s", "list", "ruleset"])
        .output()
        .expect("nft");
    let mut s = String::from_utf8_lossy(&nft.stdout).into_owned();
    s += &show(ns, "ip", &["-br", "link", "show"]);
    s += &show(ns, "ip", &["-br", "-4", "addr", "show"]);
    s += &show(ns, "ip", &["-d", "link", "show", "type", "vxlan"])
        .lines()
        .filter(|l| l.contains("vxlan id"))
        .collect::<Vec<_>>()
        .join("\n");
    s += &show(ns, "ip", &["neigh", "show", "nud", "permanent"]);
    s += &show(ns, "bridge", &["fdb", "show"])
        .lines()
        .filter(|l| l.contains(" static") || l.contains(" dst "))
        .collect::<Vec<_>>()
        .join("\n");
    s
}

fn same(a: &[String], b: &[String]) {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            let diff: Vec<String> = x
                .lines()
                .zip(y.lines())
                .filter(|(l, r)| l != r)
                .map(|(l, r)| format!("- {l}\n+ {r}"))
                .collect();
            panic!("state changed:\n{}", diff.join("\n"));
        }
    }
}

#[test]
fn restart_keeps_state_and_streams() {
    require_root!();
    let mut c = Cluster::new("restart", &["com1", "com2"], THREE_TIER_HCL);
    c.endpoint("web1", "com1", "shop/store/web", "10.1.0.11");
    c.endpoint("app1", "com1", "shop/store/app", "10.1.0.21");
    c.endpoint("app2", "com2", "shop/store/app", "10.1.0.22");
    let first = c.reconcile();
    assert!(first.iter().all(|r| r.changes() > 0));
    let _s1 = EchoServer::start(&c.ns("app1"), 8080).expect("server");
    let _s2 = EchoServer::start(&c.ns("app2"), 8080).expect("server");
    let mut local = probe::tcp_connect(&c.ns("web1"), c.ip("app1"), 8080).expect("connect");
    let mut remote = probe::tcp_connect(&c.ns("web1"), c.ip("app2"), 8080).expect("connect");
    assert!(echo(&mut local) && echo(&mut remote));
    let vrf_ns: Vec<String> = c
        .bed
        .nodes
        .iter()
        .map(|n| format!("{}-v{}", n.vrf_netns_prefix, vrf_id(&c)))
        .collect();
    let before: Vec<String> = vrf_ns.iter().map(|ns| snapshot(ns)).collect();

    // 1. Same state, same agent: nothing to do.
    for r in c.reconcile() {
        assert_eq!(r.changes(), 0, "{r:?}");
    }
    same(
        &before,
        &vrf_ns.iter().map(|ns| snapshot(ns)).collect::<Vec<_>>(),
    );
    assert!(
        echo(&mut local) && echo(&mut remote),
        "streams across a reconcile"
    );

    // 2. Agent restart (fresh instances, saved state): still nothing to do.
    for (_, agent) in &mut c.agents {
        *agent = Fabric::system();
    }
    for r in c.reconcile() {
        assert_eq!(r.changes(), 0, "{r:?}");
    }
    same(
        &before,
        &vrf_ns.iter().map(|ns| snapshot(ns)).collect::<Vec<_>>(),
    );
    assert!(
        echo(&mut local) && echo(&mut remote),
        "streams across an agent restart"
    );

    // 3. Agent restart that lost its state: sets are refilled in one transaction,
    //    links are re-asserted idempotently; nothing is torn down.
    for ns in &vrf_ns {
        let _ = std::fs::remove_file(format!("/run/weft-fabric/{ns}.json"));
    }
    for (_, agent) in &mut c.agents {
        *agent = Fabric::system();
    }
    c.reconcile();
    same(
        &before,
        &vrf_ns.iter().map(|ns| snapshot(ns)).collect::<Vec<_>>(),
    );
    assert!(
        echo(&mut local) && echo(&mut remote),
        "streams across a cold re-sync"
    );

    // 4. One more endpoint: the change is proportional to it.
    c.endpoint("web2", "com1", "shop/store/web", "10.1.0.12");
    let reports = c.reconcile();
    let com1 = &reports[0];
    assert_eq!(com1.links_created, 2, "a port and its neighbour: {com1:?}");
    assert!(
        com1.nft_elements_added <= 8 && com1.nft_elements_removed == 0,
        "{com1:?}"
    );
    assert!(c.tcp("web2", "app2", 8080), "the new endpoint works");
    assert!(
        echo(&mut local) && echo(&mut remote),
        "streams across an incremental change"
    );

    // 5. Bad input: refused, named, and the last good state stays.
    let good = snapshot(&vrf_ns[0]);
    let mut clash = c.desired("com1");
    let mut bd = clash.vrfs[0].policy.bridge_domains[0].clone();
    bd.vni += 1000;
    bd.path = weft_model::ObjectPath::tenant("shop").child("bd", "other");
    bd.subnets = vec![(
        "10.1.0.128/25".parse().expect("net"),
        "10.1.0.129".parse().expect("ip"),
    )];
    clash.vrfs[0].policy.bridge_domains.push(bd);
    let err = c.agents[0].1.reconcile(&clash).expect_err("subnet clash");
    assert!(matches!(err, FabricError::SubnetClash { .. }), "{err}");
    assert!(err.to_string().contains("shop/bd:other"), "{err}");

    let mut missing = c.desired("com1");
    missing.vrfs[0].local[0].netns = format!("{}-nope", c.bed.tag);
    let err = c.agents[0]
        .1
        .reconcile(&missing)
        .expect_err("missing namespace");
    assert!(matches!(err, FabricError::MissingNamespace { .. }), "{err}");
    same(&[good], &[snapshot(&vrf_ns[0])]);
    assert!(echo(&mut local) && echo(&mut remote));

    drop((local, remote));
    c.finish();
}

fn vrf_id(c: &Cluster) -> u32 {
    c.policy.vrfs.values().next().expect("one VRF").id
}
