//! Tables of an older layout (here: the first one, with `port_src4` a set and the class
//! in a second lookup) are replaced in one transaction by the next agent, established
//! connections survive it, and the replaced tables enforce as before.

mod common;
use common::{Cluster, THREE_TIER_HCL, ip, show};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use weft_fabric::Fabric;
use weft_fabric::nft::render::LAYOUT;
use weft_fabric::probe::{self, EchoServer};

/// The bridge table as the first layout had it (no layout set).
const OLD_BRIDGE_TABLE: &str = r#"table bridge weft {
  set uplinks { type ifname; }
  set ports { type ifname; }
  map port_class { type ifname : mark; }
  set port_mac { type ifname . ether_addr; }
  set port_src4 { type ifname . ether_addr . ipv4_addr; }
  set port_src6 { type ifname . ether_addr . ipv6_addr; }
  set port_dst4 { type ifname . ipv4_addr; }
  set port_dst6 { type ifname . ipv6_addr; }
  counter spoofed {}
  counter misdelivered {}
  chain prerouting {
    type filter hook prerouting priority -200; policy drop;
    ether type ip iifname . ether saddr . ip saddr @port_src4 meta mark set iifname map @port_class accept
    iifname @uplinks meta mark set meta mark and 0xffff accept
    ether type arp iifname . ether saddr . arp saddr ip @port_src4 meta mark set iifname map @port_class accept
    ether type ip6 iifname . ether saddr . ip6 saddr @port_src6 meta mark set iifname map @port_class accept
    ether type ip6 ip6 saddr { ::, fe80::/10 } iifname . ether saddr @port_mac meta mark set iifname map @port_class accept
    counter name spoofed drop
  }
  chain postrouting {
    type filter hook postrouting priority 0; policy drop;
    ether type ip oifname . ip daddr @port_dst4 accept
    oifname @uplinks accept
    oifname != @ports counter name misdelivered drop
    ether type arp accept
    ether type ip6 oifname . ip6 daddr @port_dst6 accept
    ether type ip6 ip6 daddr { ff00::/8, fe80::/10 } accept
    counter name misdelivered drop
  }
}
"#;

fn echo(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 5];
    s.write_all(b"hello").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"hello"
}

fn nft(ns: &str, script: &str) -> String {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn list(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .output()
        .expect("nft");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn older_layout_is_replaced_and_connections_survive() {
    require_root!();
    let mut c = Cluster::new("layout", &["com1", "com2"], THREE_TIER_HCL);
    c.endpoint("web1", "com1", "shop/store/web", "10.1.0.11");
    c.endpoint("app1", "com1", "shop/store/app", "10.1.0.21");
    c.endpoint("app2", "com2", "shop/store/app", "10.1.0.22");
    c.reconcile();
    let _s1 = EchoServer::start(&c.ns("app1"), 8080).expect("server");
    let _s2 = EchoServer::start(&c.ns("app2"), 8080).expect("server");
    let mut local = probe::tcp_connect(&c.ns("web1"), c.ip("app1"), 8080).expect("connect");
    let mut remote = probe::tcp_connect(&c.ns("web1"), c.ip("app2"), 8080).expect("connect");
    assert!(echo(&mut local) && echo(&mut remote));

    // Put com1's bridge table back to the first layout, with the same elements.
    let desired = c.desired("com1");
    let ns = format!(
        "{}-v{}",
        c.bed.nodes[0].vrf_netns_prefix, desired.vrfs[0].policy.id
    );
    let mut script = format!("delete table bridge weft\n{OLD_BRIDGE_TABLE}");
    for e in weft_fabric::nft::render_vrf(&desired.vrfs[0]).elements {
        if e.family != "bridge" {
            continue;
        }
        let item = match (&e.value, e.set.starts_with("port_src")) {
            (Some(v), false) => format!("{} : {v}", e.key),
            _ => e.key.clone(),
        };
        script += &format!("add element bridge weft {} {{ {item} }}\n", e.set);
    }
    // The first layout named its uplinks in a set, and its VXLAN devices were in the
    // default device group: the new agent must set the group the new tables rely on.
    let mut uplinks = Vec::new();
    for bd in &desired.vrfs[0].policy.bridge_domains {
        let vx = weft_fabric::names::vxlan(bd.vni);
        script += &format!("add element bridge weft uplinks {{ \"{vx}\" }}\n");
        ip(&ns, &["link", "set", &vx, "group", "0"]);
        uplinks.push(vx);
    }
    nft(&ns, &script);
    assert!(!list(&ns, &["list", "set", "bridge", "weft", LAYOUT]).0);
    assert!(
        echo(&mut local) && echo(&mut remote),
        "the old layout works"
    );

    // The next agent (no state in memory) finds an old layout and replaces it.
    c.agents[0].1 = Fabric::system();
    let r = c.reconcile();
    assert!(r[0].nft_elements_added > 0, "{:?}", r[0]);
    assert!(list(&ns, &["list", "set", "bridge", "weft", LAYOUT]).0);
    let (ok, src4) = list(&ns, &["list", "map", "bridge", "weft", "port_src4"]);
    assert!(
        ok && src4.contains(": 0x"),
        "port_src4 is a map now: {src4}"
    );
    assert!(
        echo(&mut local) && echo(&mut remote),
        "established connections survive the replacement"
    );
    assert!(c.tcp("web1", "app1", 8080) && c.tcp("web1", "app2", 8080));
    assert!(!c.tcp("app1", "web1", 8080), "and it still enforces");
    for vx in &uplinks {
        let link = show(&ns, "ip", &["-d", "link", "show", vx]);
        assert!(
            link.contains(&format!("group {}", weft_fabric::names::UPLINK_GROUP)),
            "{link}"
        );
    }

    // Current layout: nothing to do the next time.
    for r in c.reconcile() {
        assert_eq!(r.changes(), 0, "{r:?}");
    }
    drop((local, remote));
    c.finish();
}
