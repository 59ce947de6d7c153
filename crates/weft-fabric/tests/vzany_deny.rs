//! A vzAny deny subject governs traffic between EPGs, never inside one: intra-EPG
//! traffic is decided before any deny (ACI's class-eq rules come first), on one node and
//! across nodes, with real packets.

mod common;
use common::{Cluster, ECHO_PORT};
use weft_fabric::probe::EchoServer;

/// Every EPG of VRF `main` consumes and provides `no-admin` (deny tcp/7022) through
/// vzAny; `client` may reach `server` on anything else.
const HCL: &str = r#"
tenant "t" {
  vrf "main" {
    any {
      consumes = ["no-admin"]
      provides = ["no-admin"]
    }
  }
  bridge_domain "net" {
    vrf = "main"
    subnet "10.1.0.0/24" { gateway = "10.1.0.1" }
  }
  filter "ip" {
    entry "ip" { protocol = "any" }
  }
  filter "admin" {
    entry "admin" {
      protocol         = "tcp"
      destination_port = 7022
    }
  }
  contract "open" {
    subject "all" { filters = ["ip"] }
  }
  contract "no-admin" {
    subject "admin" {
      filters = ["admin"]
      action  = "deny"
    }
  }
  application_profile "app" {
    epg "client" {
      bridge_domain = "net"
      consumes      = ["open"]
    }
    epg "server" {
      bridge_domain = "net"
      provides      = ["open"]
    }
  }
}
"#;

#[test]
fn a_vzany_deny_blocks_between_epgs_and_never_inside_one() {
    require_root!();
    let mut c = Cluster::new("vzdeny", &["com1", "com2"], HCL);
    c.endpoint("client", "com1", "t/app/client", "10.1.0.10");
    c.endpoint("server1", "com1", "t/app/server", "10.1.0.20");
    c.endpoint("server2", "com1", "t/app/server", "10.1.0.21");
    c.endpoint("server3", "com2", "t/app/server", "10.1.0.22");
    c.reconcile();
    c.start_servers();
    let _admin: Vec<EchoServer> = ["server1", "server2", "server3"]
        .iter()
        .map(|s| EchoServer::start(&c.ns(s), 7022).expect("server"))
        .collect();
    let mut wrong = Vec::new();
    let mut expect = |what: &str, got: bool, want: bool| {
        if got != want {
            wrong.push(format!("{what}: expected {want}, got {got}"));
        }
    };
    expect(
        "server1 -> server2 tcp/7022 (same EPG, same node)",
        c.tcp("server1", "server2", 7022),
        true,
    );
    expect(
        "server1 -> server3 tcp/7022 (same EPG, across nodes)",
        c.tcp("server1", "server3", 7022),
        true,
    );
    expect(
        "server3 -> server1 tcp/7022 (same EPG, across nodes)",
        c.tcp("server3", "server1", 7022),
        true,
    );
    expect(
        "client -> server1 tcp/7022 (deny beats the permit)",
        c.tcp("client", "server1", 7022),
        false,
    );
    expect(
        "client -> server3 tcp/7022 (deny beats the permit, remote)",
        c.tcp("client", "server3", 7022),
        false,
    );
    expect(
        "client -> server1 tcp/echo (the contract permits)",
        c.tcp("client", "server1", ECHO_PORT),
        true,
    );
    expect(
        "client -> server3 tcp/echo (the contract permits, remote)",
        c.tcp("client", "server3", ECHO_PORT),
        true,
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    c.finish();
}
