//! Port security: an endpoint sends only from its own IP and MAC, plus the allowed
//! address pairs of its port (the paper's problem 5: nested containers).

mod common;
use common::{Cluster, ECHO_PORT, ip, send_from};

const HCL: &str = r#"
tenant "t" {
  vrf "main" {}
  bridge_domain "net" {
    vrf = "main"
    subnet "10.1.0.0/24" { gateway = "10.1.0.1" }
  }
  application_profile "app" {
    epg "hosts" { bridge_domain = "net" }
  }
}
"#;

#[test]
fn spoofed_ip_or_mac_gets_nothing_through_and_address_pairs_do() {
    require_root!();
    let mut c = Cluster::new("spoof", &["com1", "com2"], HCL);
    let x = c.endpoint("X", "com1", "t/app/hosts", "10.1.0.10");
    let w = c.endpoint("W", "com1", "t/app/hosts", "10.1.0.11");
    let z = c.endpoint("Z", "com1", "t/app/hosts", "10.1.0.12");
    c.endpoint("Y", "com1", "t/app/hosts", "10.1.0.20");
    c.endpoint("R", "com2", "t/app/hosts", "10.1.0.30");
    c.allow_pair("Z", "10.1.0.60");
    c.reconcile();
    c.start_servers();
    for from in ["X", "W", "Z"] {
        assert!(c.tcp(from, "Y", ECHO_PORT), "{from} -> Y before spoofing");
        assert!(c.tcp(from, "R", ECHO_PORT), "{from} -> R before spoofing");
    }

    // X takes another address inside its namespace.
    let spoofed = c.bridge_counter(0, "spoofed");
    send_from(&x, "10.1.0.99");
    assert!(!c.tcp("X", "Y", ECHO_PORT), "spoofed IP must not reach Y");
    assert!(
        !c.udp("X", "Y", ECHO_PORT),
        "spoofed IP must not reach Y (udp)"
    );
    assert!(
        !c.tcp("X", "R", ECHO_PORT),
        "spoofed IP must not reach R across nodes"
    );

    assert!(
        c.bridge_counter(0, "spoofed") > spoofed,
        "X's packets were dropped by port security"
    );

    // W changes its MAC.
    ip(
        &w,
        &["link", "set", "weft0", "address", "02:00:00:00:09:99"],
    );
    assert!(!c.tcp("W", "Y", ECHO_PORT), "spoofed MAC must not reach Y");
    assert!(!c.tcp("W", "R", ECHO_PORT), "spoofed MAC must not reach R");

    // A nested container on Z's port uses Z's allowed address pair: it passes...
    send_from(&z, "10.1.0.60");
    assert!(
        c.tcp("Z", "Y", ECHO_PORT),
        "allowed address pair on Z's port"
    );
    assert!(
        c.tcp("Z", "R", ECHO_PORT),
        "allowed address pair across nodes"
    );
    // ...but only on Z's port.
    send_from(&x, "10.1.0.60");
    assert!(
        !c.tcp("X", "Y", ECHO_PORT),
        "Z's address pair must not work on X's port"
    );
    c.finish();
}
