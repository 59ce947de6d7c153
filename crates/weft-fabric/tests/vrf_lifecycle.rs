//! A VRF leaves a node with its last endpoint and comes back with the next one, at
//! once: the old VXLAN devices must not hold on to their VNIs.

mod common;
use common::{Cluster, ECHO_PORT};

const POLICY: &str = r#"
tenant "t" {
  vrf "main" {}
  bridge_domain "net" {
    vrf = "main"
    subnet "10.9.0.0/24" { gateway = "10.9.0.1" }
  }
  application_profile "a" {
    epg "e" { bridge_domain = "net" }
  }
}
"#;

#[test]
fn a_vrf_removed_and_added_back_at_once_works() {
    require_root!();
    let mut c = Cluster::new("vrflife", &["com1", "com2"], POLICY);
    c.endpoint("x", "com1", "t/a/e", "10.9.0.10");
    c.endpoint("y", "com2", "t/a/e", "10.9.0.11");
    c.reconcile();

    // Every endpoint leaves com1: its VRF namespace goes...
    let x = c.endpoints.iter().position(|e| e.name == "x").unwrap();
    let gone = c.endpoints.remove(x);
    c.reconcile();
    // ...and comes straight back with the next endpoint.
    c.endpoints.push(gone);
    c.reconcile();
    c.start_servers();
    assert!(c.tcp("x", "y", ECHO_PORT), "x -> y after the VRF came back");
    assert!(c.tcp("y", "x", ECHO_PORT), "y -> x after the VRF came back");
    c.finish();
}
