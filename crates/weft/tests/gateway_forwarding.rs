//! Names outside weft's domains, asked at a gateway, are forwarded to the node's
//! recursors (`weft agent --dns-recursor`): here an nsd on the host's loopback, started
//! by the test. Real packets: `dig` inside an endpoint's namespace. Root.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod common;

use common::{ProcCluster, THREE_TIER};
use std::process::{Child, Command, Stdio};

struct Nsd(Child, std::path::PathBuf);

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// nsd on 127.0.0.1:`port`, authoritative for `example.test.`.
fn nsd(port: u16) -> Nsd {
    let dir = std::env::temp_dir().join(format!("weft-fwd-nsd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("example.zone"),
        "$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\nwww IN A 192.0.2.55\n",
    )
    .unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("nsd.conf"),
        format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  zonesdir: \"{d}\"\n  database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  username: \"\"\n  logfile: \"{d}/nsd.log\"\nremote-control:\n  control-enable: no\nzone:\n  name: example.test\n  zonefile: example.zone\n"
        ),
    )
    .unwrap();
    let child = Command::new("nsd")
        .args(["-d", "-c"])
        .arg(dir.join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nsd (Debian's nsd package)");
    Nsd(child, dir)
}

fn dig(netns: &str, name: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "dig",
            "+time=1",
            "+tries=3",
            "@10.1.0.1",
        ])
        .arg(name)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn names_outside_the_domain_go_to_the_nodes_recursors() {
    require_root!();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _nsd = nsd(port);
    let consul = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let recursor = format!("127.0.0.1:{port}");
    let c = ProcCluster::with_args(
        "fw",
        &["--consul-listen", &consul],
        &["--dns-recursor", &recursor],
    );
    c.apply(THREE_TIER);
    let (web, _) = c.endpoint("web-1", "com1", "shop/store/web");
    c.wait_endpoints_ready();
    common::wait_until(
        "the gateway forwards www.example.test",
        std::time::Duration::from_secs(20),
        || {
            let out = dig(&web, "www.example.test");
            out.contains("status: NOERROR") && out.contains("192.0.2.55")
        },
    );
    // weft's own names are still weft's, and an unknown one in its domain is NXDOMAIN
    // (not forwarded).
    let out = dig(&web, "nope.service.weft");
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("flags: qr aa"), "{out}");
}
