//! IPv6 through the fabric: contracts, conntrack replies and port security hold for an
//! IPv6 bridge domain as they do for IPv4, on one node and across nodes.

mod common;
use common::{Cluster, ip};
use weft_fabric::probe::EchoServer;

const HCL: &str = r#"
tenant "shop" {
  vrf "main" {}
  bridge_domain "net6" {
    vrf = "main"
    subnet "fd00:1::/64" { gateway = "fd00:1::1" }
  }
  filter "http-8080" {
    entry "tcp-8080" {
      protocol = "tcp"
      destination_port = 8080
    }
  }
  filter "dns" {
    entry "udp-53" {
      protocol = "udp"
      destination_port = 5353
    }
  }
  contract "web-to-app" {
    subject "http" { filters = ["http-8080", "dns"] }
  }
  application_profile "store" {
    epg "web" {
      bridge_domain = "net6"
      consumes = ["web-to-app"]
    }
    epg "app" {
      bridge_domain = "net6"
      provides = ["web-to-app"]
    }
    epg "db" { bridge_domain = "net6" }
  }
}
"#;

#[test]
fn ipv6_contracts_and_port_security() {
    require_root!();
    let mut c = Cluster::new("ipv6", &["com1", "com2"], HCL);
    let web1 = c.endpoint("web1", "com1", "shop/store/web", "fd00:1::11");
    c.endpoint("app1", "com1", "shop/store/app", "fd00:1::21");
    c.endpoint("app2", "com2", "shop/store/app", "fd00:1::22");
    c.endpoint("db1", "com1", "shop/store/db", "fd00:1::31");
    c.reconcile();
    let mut servers = Vec::new();
    for ep in ["web1", "app1", "app2", "db1"] {
        for port in [8080, 5353] {
            servers.push(EchoServer::start(&c.ns(ep), port).expect("server"));
        }
    }
    let mut wrong = Vec::new();
    let mut expect = |what: &str, got: bool, want: bool| {
        if got != want {
            wrong.push(format!("{what}: expected {want}, got {got}"));
        }
    };
    for app in ["app1", "app2"] {
        expect(
            &format!("web1 -> {app} tcp/8080"),
            c.tcp("web1", app, 8080),
            true,
        );
        expect(
            &format!("web1 -> {app} udp/5353"),
            c.udp("web1", app, 5353),
            true,
        );
        expect(
            &format!("{app} -> web1 tcp/8080 (against the contract)"),
            c.tcp(app, "web1", 8080),
            false,
        );
    }
    expect(
        "web1 -> db1 tcp/8080 (no contract)",
        c.tcp("web1", "db1", 8080),
        false,
    );
    expect(
        "db1 -> app1 tcp/8080 (no contract)",
        c.tcp("db1", "app1", 8080),
        false,
    );

    // web1 takes another IPv6 address inside its namespace: nothing gets through, and
    // its port's "spoofed" counter says why.
    let spoofed = c.bridge_counter(0, "spoofed");
    ip(
        &web1,
        &["-6", "addr", "flush", "dev", "weft0", "scope", "global"],
    );
    ip(
        &web1,
        &[
            "-6",
            "addr",
            "add",
            "fd00:1::99/64",
            "dev",
            "weft0",
            "nodad",
        ],
    );
    expect("spoofed web1 -> app1", c.tcp("web1", "app1", 8080), false);
    expect("spoofed web1 -> app2", c.tcp("web1", "app2", 8080), false);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        c.bridge_counter(0, "spoofed") > spoofed,
        "the spoofed packets were dropped by port security"
    );
    drop(servers);
    c.finish();
}
