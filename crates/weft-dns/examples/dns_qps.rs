//! Issue 13, benchmark 1: DNS queries per second at one gateway, policy-aware answers
//! on, against nsd serving the same records, in the same run (root).
//!
//! Two namespaces joined by a veth pair: `weft-bdns-s` holds the server address
//! 10.99.0.1 (weft's gateway DNS on port 53, as an agent binds it, and nsd on 5353),
//! `weft-bdns-c` holds the asker 10.99.0.2 and runs dnsperf over ~1,000 service names
//! (three instances each; the asker's EPG may not reach a quarter of the instances, so
//! policy filters its answers). nsd's zone holds exactly what weft answers this asker.
//! Runs alternate weft, nsd, weft, nsd, ... and the ratio is of the medians.
//!
//!     cargo run --release -p weft-dns --example dns_qps -- [SERVICES] [SECONDS] [ROUNDS]
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use weft_api::{DnsAsker, DnsInstance, DnsService, DnsSettings, TenantDiscovery, VrfDiscovery};
use weft_dns::{Limits, Service, SharedZone, Zone};

const SERVER_NS: &str = "weft-bdns-s";
const CLIENT_NS: &str = "weft-bdns-c";
const SERVER_IP: &str = "10.99.0.1";
const CLIENT_IP: &str = "10.99.0.2";

fn sh(args: &[&str]) {
    let ok = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(ok.success(), "{args:?} failed");
}

fn cleanup() {
    for ns in [SERVER_NS, CLIENT_NS] {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
}

fn setup() {
    cleanup();
    sh(&["ip", "netns", "add", SERVER_NS]);
    sh(&["ip", "netns", "add", CLIENT_NS]);
    sh(&[
        "ip",
        "link",
        "add",
        "weft-bdns0",
        "netns",
        SERVER_NS,
        "type",
        "veth",
        "peer",
        "name",
        "weft-bdns1",
        "netns",
        CLIENT_NS,
    ]);
    for (ns, dev, ip) in [
        (SERVER_NS, "weft-bdns0", SERVER_IP),
        (CLIENT_NS, "weft-bdns1", CLIENT_IP),
    ] {
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            dev,
        ]);
        sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
}

fn address(i: usize, j: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        50 + (i / 250) as u8,
        (i % 250) as u8,
        10 + j as u8,
    ))
}

fn view(services: usize) -> VrfDiscovery {
    VrfDiscovery {
        vrf: "bench/vrf:main".into(),
        vrf_id: 1,
        policy_aware: true,
        classes: vec!["bench/ap/client".into()],
        askers: vec![DnsAsker {
            address: CLIENT_IP.parse().unwrap(),
            endpoint: "client".into(),
            tenant: 0,
            class: 0,
        }],
        tenants: vec![TenantDiscovery {
            tenant: "bench".into(),
            token: None,
            services: (0..services)
                .map(|i| DnsService {
                    name: format!("svc{i}"),
                    instances: (0..4)
                        .map(|j| DnsInstance {
                            id: format!("svc{i}.{j}"),
                            node: "n1".into(),
                            address: address(i, j),
                            port: 8080,
                            tags: vec![],
                            // The fourth instance of every service is one the asker's
                            // EPG may not reach.
                            hidden_from: if j == 3 { vec![0] } else { vec![] },
                        })
                        .collect(),
                })
                .collect(),
            nodes: vec![],
        }],
    }
}

/// nsd with exactly what weft answers the asker.
fn start_nsd(dir: &std::path::Path, services: usize) -> Child {
    let mut zone = String::from(
        "$TTL 0\n@ IN SOA ns.weft. hostmaster.weft. 1 3600 600 86400 0\n@ IN NS ns.weft.\nns IN A 10.99.0.1\n",
    );
    for i in 0..services {
        for j in 0..3 {
            zone.push_str(&format!("svc{i}.service IN A {}\n", address(i, j)));
        }
    }
    std::fs::write(dir.join("weft.zone"), zone).unwrap();
    let conf = format!(
        "server:\n  ip-address: {SERVER_IP}@5353\n  server-count: 2\n  zonesdir: \"{d}\"\n  \
         database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  pidfile: \"{d}/nsd.pid\"\n  \
         xfrdfile: \"{d}/xfrd.state\"\n  username: \"\"\n  logfile: \"{d}/nsd.log\"\n  \
         hide-version: yes\nremote-control:\n  control-enable: no\nzone:\n  name: weft\n  zonefile: weft.zone\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nsd.conf"), conf).unwrap();
    let check = Command::new("nsd-checkconf")
        .arg(dir.join("nsd.conf"))
        .status()
        .unwrap();
    assert!(check.success(), "nsd.conf rejected");
    Command::new("ip")
        .args(["netns", "exec", SERVER_NS, "nsd", "-d", "-c"])
        .arg(dir.join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn dnsperf(port: u16, queries: &std::path::Path, seconds: u64) -> f64 {
    let out = Command::new("ip")
        .args(["netns", "exec", CLIENT_NS, "dnsperf", "-s", SERVER_IP])
        .args(["-p", &port.to_string(), "-l", &seconds.to_string()])
        .args(["-c", "4", "-q", "200", "-d"])
        .arg(queries)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let qps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("dnsperf said:\n{text}"));
    let lost = text
        .lines()
        .find(|l| l.contains("Queries lost:"))
        .unwrap_or("")
        .trim()
        .to_string();
    let nx = text
        .lines()
        .find(|l| l.contains("Response codes:"))
        .unwrap_or("")
        .trim()
        .to_string();
    println!("    port {port}: {qps:.0} qps; {lost}; {nx}");
    qps
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    assert!(
        nix_is_root(),
        "needs root (network namespaces); run as root"
    );
    let args: Vec<String> = std::env::args().collect();
    let services: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    setup();
    let dir = std::env::temp_dir().join(format!("weft-bdns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let queries = dir.join("queries");
    let names: String = (0..services)
        .map(|i| format!("svc{i}.service.weft A\n"))
        .collect();
    std::fs::write(&queries, names).unwrap();

    // weft's gateway DNS, bound in the server namespace as an agent binds it.
    let zone = Zone::build(&DnsSettings::default(), &view(services), 1);
    let service = Service::new(SharedZone::new(zone), Vec::new(), Limits::default());
    let socket = std::thread::spawn(|| {
        let f = std::fs::File::open(format!("/run/netns/{SERVER_NS}")).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::UdpSocket::bind((SERVER_IP, 53)).unwrap()
    })
    .join()
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads = weft_dns::serve::spawn_udp(socket, service, 2, stop.clone()).unwrap();
    let mut nsd = start_nsd(&dir, services);
    std::thread::sleep(Duration::from_secs(1));

    println!("{services} names x 3 answers each (policy hides a 4th), {seconds} s per run");
    let (mut weft, mut baseline) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        println!("  round {}", round + 1);
        weft.push(dnsperf(53, &queries, seconds));
        baseline.push(dnsperf(5353, &queries, seconds));
    }
    let (w, n) = (median(weft), median(baseline));
    println!(
        "weft (policy-aware): {w:.0} qps; nsd: {n:.0} qps; ratio {:.2}",
        w / n
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let _ = nsd.kill();
    let _ = nsd.wait();
    let _ = std::fs::remove_dir_all(&dir);
    cleanup();
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
