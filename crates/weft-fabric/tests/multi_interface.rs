//! One namespace, two endpoints (a task in two networks): `weft0` in EPG `a` with the
//! default route, `weft1` in EPG `b` without one. Each interface carries its own EPG's
//! class, so each network's policy holds on its own address; the second interface goes
//! and comes back without touching the namespace or the first.

mod common;
use common::{Cluster, ECHO_PORT, show};
use weft_fabric::desired::EndpointSpec;
use weft_fabric::probe::{EchoServer, tcp_ok};

/// One enforced VRF, two bridge domains, no contract: `a` and `b` never talk, members
/// of one EPG do (ACI's intra-EPG default).
const HCL: &str = r#"
tenant "t" {
  vrf "main" {}
  bridge_domain "net-a" {
    vrf = "main"
    subnet "10.1.0.0/24" { gateway = "10.1.0.1" }
  }
  bridge_domain "net-b" {
    vrf = "main"
    subnet "10.2.0.0/24" { gateway = "10.2.0.1" }
  }
  application_profile "app" {
    epg "a" { bridge_domain = "net-a" }
    epg "b" { bridge_domain = "net-b" }
  }
}
"#;

/// Endpoint `name` in EPG `b` as interface `weft1` of `netns`.
fn second_interface(name: &str, netns: &str) -> EndpointSpec {
    EndpointSpec {
        name: name.into(),
        node: "com1".into(),
        netns: netns.into(),
        interface: 1,
        epg: "t/app/b".parse().expect("epg"),
        ips: vec!["10.2.0.10".parse().expect("ip")],
        mac: [0x02, 0x00, 0x00, 0x00, 0x02, 0x01],
        allowed_pairs: vec![],
        port_security: true,
        security_groups: None,
    }
}

#[test]
fn a_namespace_with_two_endpoints_has_each_networks_policy_on_its_interface() {
    require_root!();
    let mut c = Cluster::new("multinic", &["com1", "com2"], HCL);
    let srv = c.endpoint("srv", "com1", "t/app/a", "10.1.0.10");
    c.endpoint("peer-a", "com2", "t/app/a", "10.1.0.11");
    c.endpoint("peer-b", "com2", "t/app/b", "10.2.0.11");
    c.endpoints.push(second_interface("srv-n1", &srv));
    c.reconcile();
    let _servers: Vec<EchoServer> = [&srv, &c.ns("peer-a"), &c.ns("peer-b")]
        .iter()
        .map(|ns| EchoServer::start(ns, ECHO_PORT).expect("echo server"))
        .collect();

    let addrs = show(&srv, "ip", &["-o", "-4", "addr", "show"]);
    assert!(
        addrs
            .lines()
            .any(|l| l.contains(" weft0 ") && l.contains(" 10.1.0.10/24 ")),
        "{addrs}"
    );
    assert!(
        addrs
            .lines()
            .any(|l| l.contains(" weft1 ") && l.contains(" 10.2.0.10/24 ")),
        "{addrs}"
    );
    let routes = show(&srv, "ip", &["route", "show"]);
    let defaults: Vec<&str> = routes
        .lines()
        .filter(|l| l.starts_with("default"))
        .collect();
    assert_eq!(
        defaults.len(),
        1,
        "one default route, the first interface's:\n{routes}"
    );
    assert!(defaults[0].contains("via 10.1.0.1 dev weft0"), "{routes}");

    // Each network's members reach the address on its own interface, across nodes.
    assert!(c.tcp("peer-a", "srv", ECHO_PORT), "a -> srv's a address");
    assert!(c.tcp("peer-b", "srv-n1", ECHO_PORT), "b -> srv's b address");
    assert!(
        c.tcp("srv-n1", "peer-b", ECHO_PORT),
        "srv -> b through weft1"
    );
    assert!(c.tcp("srv", "peer-a", ECHO_PORT), "srv -> a through weft0");
    // No contract between a and b: the interfaces' classes decide, not the namespace.
    assert!(
        !c.tcp("peer-a", "srv-n1", ECHO_PORT),
        "EPG a reached srv's address in EPG b"
    );
    assert!(
        !c.tcp("peer-b", "srv", ECHO_PORT),
        "EPG b reached srv's address in EPG a"
    );

    // The second interface goes; the namespace and the first stay.
    c.endpoints.retain(|e| e.name != "srv-n1");
    c.reconcile();
    let links = show(&srv, "ip", &["-o", "link", "show"]);
    assert!(
        links.contains(" weft0@") && !links.contains(" weft1@"),
        "{links}"
    );
    assert!(c.tcp("peer-a", "srv", ECHO_PORT), "weft0 still serves");
    assert!(
        !tcp_ok(&c.ns("peer-b"), "10.2.0.10".parse().expect("ip"), ECHO_PORT),
        "srv's b address answered after its interface went"
    );

    // And comes back.
    c.endpoints.push(second_interface("srv-n1", &srv));
    c.reconcile();
    assert!(c.tcp("peer-b", "srv-n1", ECHO_PORT), "weft1 back");
    assert!(c.tcp("peer-a", "srv", ECHO_PORT), "weft0 untouched");
    c.finish();
}
