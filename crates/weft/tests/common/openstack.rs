//! A process cluster that also serves OpenStack, with a Keystone user and a clouds.yaml
//! naming it, for the tests that drive it with the real clients; and the seed's Table 1
//! (seven ports, six rows) checked with real ICMP, TCP and UDP between the ports'
//! namespaces, then that nothing of them is left.

use super::{ProcCluster, wait_until};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use weft_api::Endpoint;
use weft_fabric::probe::{EchoServer, ping_ok, tcp_ok, udp_ok};

/// The clients' venv (`scripts/python-clients.sh`): `(openstack, python)`. `None` (after
/// saying so loudly) when absent outside CI; in CI their absence fails the test.
pub fn clients(test: &str) -> Option<(PathBuf, PathBuf)> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyvenv/bin");
    let (openstack, python) = (venv.join("openstack"), venv.join("python"));
    if openstack.exists() && python.exists() {
        return Some((openstack, python));
    }
    let why = "python-openstackclient is not installed: run scripts/python-clients.sh";
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    None
}

/// A [`ProcCluster`] whose controller serves Keystone and Neutron, a user `lab` (password
/// `pw`) in project `lab`, and a clouds.yaml naming it as the cloud `weft`.
pub struct OpenStackCluster {
    pub c: ProcCluster,
    /// `http://127.0.0.1:PORT` (Keystone at `/v3`, Neutron at `/network`).
    pub url: String,
    /// Holds `clouds.yaml`; the clients' `$HOME`.
    pub home: tempfile::TempDir,
}

impl OpenStackCluster {
    pub fn new(test: &str) -> Self {
        Self::with_agent_args(test, &[])
    }

    /// A cloud whose agents get `agent_args`.
    pub fn with_agent_args(test: &str, agent_args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let c = ProcCluster::with_args(
            test,
            &["--openstack-listen", &format!("127.0.0.1:{port}")],
            agent_args,
        );
        add_user(&c, "lab", "pw", "lab");
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("clouds.yaml"),
            format!(
                "clouds:\n  weft:\n    auth:\n      auth_url: {url}/v3\n      username: lab\n      password: pw\n      project_name: lab\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    identity_api_version: 3\n"
            ),
        )
        .unwrap();
        Self { c, url, home }
    }

    /// `program` with the clients' environment: this cluster's clouds.yaml.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env(
            "OS_CLIENT_CONFIG_FILE",
            self.home.path().join("clouds.yaml"),
        )
        .env("HOME", self.home.path());
        cmd
    }
}

/// A Keystone user `name` with `password` in `project`, made by weft's admin with
/// `POST /v1/openstack/users` (Keystone's user API is not served).
pub fn add_user(c: &ProcCluster, name: &str, password: &str, project: &str) {
    let admin = std::fs::read_to_string(c.dir.join("server").join("admin.token")).unwrap();
    let body = serde_json::json!({"name": name, "password": password, "project": project});
    let made = Command::new("curl")
        .args(["-sf", "-X", "POST", "-H", "Content-Type: application/json"])
        .args(["-H", &format!("Authorization: Bearer {}", admin.trim())])
        .args(["-d", &body.to_string()])
        .arg(format!("http://127.0.0.1:{}/v1/openstack/users", c.port))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "creating the Keystone user {name}");
}

/// The seed's Table 1 ports: (container, network, compute node). A is the source of
/// every row.
pub const TABLE1_PORTS: [(&str, &str, &str); 7] = [
    ("A", "NW-A", "com1"),
    ("B", "NW-C", "com1"),
    ("C", "NW-B", "com1"),
    ("D", "NW-A", "com1"),
    ("E", "NW-C", "com2"),
    ("F", "NW-B", "com2"),
    ("G", "NW-A", "com2"),
];

/// The six rows: (to, allowed, case); each from A.
pub const TABLE1_ROWS: [(&str, bool, &str); 6] = [
    ("B", false, "same host, other segment, no router"),
    ("C", true, "same host, other segment, router"),
    ("D", true, "same host, same segment"),
    ("E", false, "other host, other segment, no router"),
    ("F", true, "other host, other segment, router"),
    ("G", true, "other host, same segment"),
];

/// The three networks of Table 1 with their CIDRs (NW-A and NW-B go on router rt1).
pub const TABLE1_NETWORKS: [(&str, &str); 3] = [
    ("NW-A", "10.1.0.0/24"),
    ("NW-B", "10.2.0.0/24"),
    ("NW-C", "10.3.0.0/24"),
];

/// The port the echo servers listen on (TCP and UDP).
pub const ECHO_PORT: u16 = 7007;

/// The weft endpoint behind each Table 1 port, found by its fixed IP: `ips` maps the
/// container's letter to the address Neutron gave its port.
pub fn table1_endpoints(
    c: &ProcCluster,
    ips: &BTreeMap<String, IpAddr>,
) -> BTreeMap<String, Endpoint> {
    let endpoints = c.rt.block_on(c.client.endpoints()).unwrap();
    assert_eq!(endpoints.len(), TABLE1_PORTS.len(), "{endpoints:?}");
    ips.iter()
        .map(|(letter, ip)| {
            let e = endpoints
                .iter()
                .find(|e| e.ip == *ip)
                .unwrap_or_else(|| panic!("no endpoint has port {letter}'s address {ip}"));
            let host = TABLE1_PORTS.iter().find(|p| p.0 == letter).unwrap().2;
            assert_eq!(e.node, host, "port {letter} is bound to {host}");
            (letter.clone(), e.clone())
        })
        .collect()
}

fn v4(e: &Endpoint) -> Ipv4Addr {
    match e.ip {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => panic!("Table 1's ports are IPv4"),
    }
}

/// What gets through from `from` to `to`: (ICMP, TCP, UDP).
fn passes(from: &Endpoint, to: &Endpoint) -> (bool, bool, bool) {
    (
        ping_ok(&from.netns, v4(to)),
        tcp_ok(&from.netns, to.ip, ECHO_PORT),
        udp_ok(&from.netns, to.ip, ECHO_PORT),
    )
}

/// Table 1's six rows with real packets: echo servers (TCP and UDP) in every port's
/// namespace; an allowed row must pass ICMP, TCP and UDP both ways, a blocked one none
/// of them either way.
pub fn check_table1(ports: &BTreeMap<String, Endpoint>) {
    let _servers: Vec<EchoServer> = ports
        .values()
        .map(|e| EchoServer::start(&e.netns, ECHO_PORT).unwrap())
        .collect();
    let a = &ports["A"];
    for (to, allowed, case) in TABLE1_ROWS {
        let b = &ports[to];
        if allowed {
            wait_until(
                &format!("A -> {to} ({case}): ICMP, TCP and UDP both ways"),
                Duration::from_secs(30),
                || passes(a, b) == (true, true, true) && passes(b, a) == (true, true, true),
            );
            eprintln!("row A -> {to} ({case}): allowed: ICMP, TCP, UDP pass both ways");
        }
    }
    // Blocked rows after the allowed ones: the fabric has converged by then.
    for (to, allowed, case) in TABLE1_ROWS {
        let b = &ports[to];
        if !allowed {
            assert_eq!(passes(a, b), (false, false, false), "A -> {to} ({case})");
            assert_eq!(passes(b, a), (false, false, false), "{to} -> A ({case})");
            eprintln!("row A -> {to} ({case}): blocked: no ICMP, TCP or UDP either way");
        }
    }
}

/// Whether `text` names `ip` as a whole address (not `10.1.0.2` inside `10.1.0.21`).
fn names_address(text: &str, ip: &str) -> bool {
    text.match_indices(ip).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ip.len()..].chars().next();
        let part =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_hexdigit() || c == '.' || c == ':');
        !part(before) && !part(after)
    })
}

/// What [`assert_nothing_left`] looks for is there while the ports are: each one's
/// namespace, and nft elements naming its port, address and MAC (so that their absence
/// later means something).
pub fn assert_installed(c: &ProcCluster, ports: &[Endpoint]) {
    let namespaces = weft_fabric::netns::list_with_prefix("weft");
    let rules = c.rulesets();
    for e in ports {
        let port = weft_fabric::names::port(&e.name);
        assert!(namespaces.contains(&e.netns), "no namespace {}", e.netns);
        assert!(rules.contains(&port), "no element naming {port}\n{rules}");
        let (ip, mac) = (e.ip.to_string(), e.mac.to_string());
        assert!(
            names_address(&rules, &ip),
            "no element naming {ip}\n{rules}"
        );
        assert!(
            names_address(&rules, &mac),
            "no element naming {mac}\n{rules}"
        );
    }
}

/// Nothing of `gone` is left: no endpoint in weft's API, none of their namespaces, and
/// no nft element of any VRF namespace naming their ports, addresses or MACs.
pub fn assert_nothing_left(c: &ProcCluster, gone: &[Endpoint]) {
    let endpoints = c.rt.block_on(c.client.endpoints()).unwrap();
    assert!(endpoints.is_empty(), "endpoints left: {endpoints:?}");
    let left = || {
        let namespaces = weft_fabric::netns::list_with_prefix("weft");
        let rules = c.rulesets();
        let mut left = Vec::new();
        for e in gone {
            let port = weft_fabric::names::port(&e.name);
            let (ip, mac) = (e.ip.to_string(), e.mac.to_string());
            if namespaces.contains(&e.netns) {
                left.push(format!("namespace {}", e.netns));
            }
            for (what, found) in [
                (&port, rules.contains(&port)),
                (&ip, names_address(&rules, &ip)),
                (&mac, names_address(&rules, &mac)),
            ] {
                if found {
                    left.push(format!("nft element naming {what} ({})", e.name));
                }
            }
        }
        (left, rules)
    };
    let start = std::time::Instant::now();
    loop {
        let (what, rules) = left();
        if what.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "left behind after 30 s: {what:?}\n{rules}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
