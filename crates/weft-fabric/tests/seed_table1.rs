//! Table 1 of the seed paper on two nodes, with real TCP, UDP and ICMP probes.

mod common;
use common::{Cluster, ECHO_PORT};

/// The shipped example: three networks, a "router" contract between NW-A and NW-B.
pub const TABLE1_HCL: &str = include_str!("../../../examples/seed-table1.hcl");

#[test]
fn seed_table1() {
    require_root!();
    let mut c = Cluster::new("seed", &["com1", "com2"], TABLE1_HCL);
    c.endpoint("A", "com1", "lab/nets/nw-a", "10.1.0.10");
    c.endpoint("B", "com1", "lab/nets/nw-c", "10.3.0.11");
    c.endpoint("C", "com1", "lab/nets/nw-b", "10.2.0.12");
    c.endpoint("D", "com1", "lab/nets/nw-a", "10.1.0.13");
    c.endpoint("E", "com2", "lab/nets/nw-c", "10.3.0.14");
    c.endpoint("F", "com2", "lab/nets/nw-b", "10.2.0.15");
    c.endpoint("G", "com2", "lab/nets/nw-a", "10.1.0.16");
    c.reconcile();
    c.start_servers();

    let rows = [
        ("same host, other segment, no router", "B", false),
        ("same host, other segment, router", "C", true),
        ("same host, same segment", "D", true),
        ("other host, other segment, no router", "E", false),
        ("other host, other segment, router", "F", true),
        ("other host, same segment", "G", true),
    ];
    let mut failures = Vec::new();
    for (case, to, allowed) in rows {
        let got = [
            ("tcp", c.tcp("A", to, ECHO_PORT)),
            ("udp", c.udp("A", to, ECHO_PORT)),
            ("icmp", c.ping("A", to)),
        ];
        for (proto, ok) in got {
            if ok != allowed {
                failures.push(format!(
                    "{case}: A -> {to} {proto}: expected {allowed}, got {ok}"
                ));
            }
        }
    }
    // Blocked in the other direction too: the EPGs have no contract at all.
    assert!(!c.tcp("E", "A", ECHO_PORT), "E -> A must be blocked");
    assert!(
        c.tcp("F", "A", ECHO_PORT),
        "F -> A is routed by the contract"
    );
    assert!(
        failures.is_empty(),
        "Table 1 mismatches:\n{}",
        failures.join("\n")
    );
    c.finish();
}
