//! Two VRFs with the same subnet on the same nodes: no packet crosses.

mod common;
use common::{Cluster, ECHO_PORT};
use weft_fabric::probe::EchoServer;

const HCL: &str = r#"
tenant "t" {
  vrf "red" { enforced = false }
  vrf "blue" { enforced = false }
  bridge_domain "red-net" {
    vrf = "red"
    subnet "10.9.0.0/24" { gateway = "10.9.0.1" }
  }
  bridge_domain "blue-net" {
    vrf = "blue"
    subnet "10.9.0.0/24" { gateway = "10.9.0.1" }
  }
  application_profile "app" {
    epg "red" { bridge_domain = "red-net" }
    epg "blue" { bridge_domain = "blue-net" }
  }
}
"#;

#[test]
fn overlapping_vrfs_stay_apart() {
    require_root!();
    let mut c = Cluster::new("vrfs", &["com1", "com2"], HCL);
    c.endpoint("r1", "com1", "t/app/red", "10.9.0.10");
    c.endpoint("r2", "com2", "t/app/red", "10.9.0.11");
    c.endpoint("b1", "com1", "t/app/blue", "10.9.0.11");
    c.endpoint("b2", "com2", "t/app/blue", "10.9.0.10");
    c.reconcile();
    // Only blue listens: a red client reaching a listener would have crossed.
    let _b1 = EchoServer::start(&c.ns("b1"), ECHO_PORT).expect("server");
    let _b2 = EchoServer::start(&c.ns("b2"), ECHO_PORT).expect("server");
    assert!(c.tcp("b2", "b1", ECHO_PORT), "blue works across nodes");
    assert!(c.ping("r1", "r2"), "red works across nodes");
    assert!(
        !c.tcp("r1", "b1", ECHO_PORT),
        "red r1 -> 10.9.0.11 must reach red r2, never blue b1"
    );
    assert!(
        !c.udp("r1", "b1", ECHO_PORT),
        "red r1 -> 10.9.0.11 udp must not reach blue b1"
    );
    assert!(
        !c.tcp("r2", "b2", ECHO_PORT),
        "red r2 -> 10.9.0.10 must not reach blue b2"
    );
    c.finish();
}
