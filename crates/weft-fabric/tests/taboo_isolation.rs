//! A taboo beats a permit; intra-EPG isolation blocks members of one EPG.

mod common;
use common::{Cluster, ECHO_PORT};
use weft_fabric::probe::EchoServer;

const HCL: &str = r#"
tenant "t" {
  vrf "main" {}
  bridge_domain "net" {
    vrf = "main"
    subnet "10.1.0.0/24" { gateway = "10.1.0.1" }
  }
  filter "ip" {
    entry "ip" { protocol = "any" }
  }
  filter "admin" {
    entry "admin" {
      protocol = "tcp"
      destination_port = 7022
    }
  }
  contract "open" {
    subject "all" { filters = ["ip"] }
  }
  taboo "no-admin" {
    subject "admin" { filters = ["admin"] }
  }
  application_profile "app" {
    epg "client" {
      bridge_domain = "net"
      consumes = ["open"]
    }
    epg "server" {
      bridge_domain = "net"
      provides = ["open"]
      taboos = ["no-admin"]
    }
    epg "iso" {
      bridge_domain = "net"
      isolated = true
    }
  }
}
"#;

#[test]
fn taboo_beats_permit_and_isolation_blocks_peers() {
    require_root!();
    let mut c = Cluster::new("taboo", &["com1", "com2"], HCL);
    c.endpoint("client", "com1", "t/app/client", "10.1.0.10");
    c.endpoint("server", "com2", "t/app/server", "10.1.0.20");
    c.endpoint("server-local", "com1", "t/app/server", "10.1.0.21");
    c.endpoint("iso1", "com1", "t/app/iso", "10.1.0.30");
    c.endpoint("iso2", "com1", "t/app/iso", "10.1.0.31");
    c.endpoint("iso3", "com2", "t/app/iso", "10.1.0.32");
    c.reconcile();
    c.start_servers();
    let _admin = EchoServer::start(&c.ns("server"), 7022).expect("server");
    let _admin_local = EchoServer::start(&c.ns("server-local"), 7022).expect("server");
    assert!(
        c.tcp("client", "server", ECHO_PORT),
        "the contract permits IP"
    );
    assert!(c.ping("client", "server"), "the contract permits ICMP");
    assert!(
        !c.tcp("client", "server", 7022),
        "the taboo beats the contract (remote)"
    );
    assert!(
        !c.tcp("client", "server-local", 7022),
        "the taboo beats the contract (local)"
    );
    assert!(!c.tcp("iso1", "iso2", ECHO_PORT), "isolated EPG, same node");
    assert!(!c.ping("iso1", "iso2"), "isolated EPG, same node, icmp");
    assert!(
        !c.tcp("iso1", "iso3", ECHO_PORT),
        "isolated EPG, across nodes"
    );
    c.finish();
}
