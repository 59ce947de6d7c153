//! Shared scaffolding of the fabric's integration tests: a testbed, a policy from HCL,
//! endpoints, and one agent per node.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use weft_compiler::{Allocation, CompiledPolicy};
use weft_fabric::desired::{EndpointSpec, NodeSpec};
use weft_fabric::probe::{self, EchoServer};
use weft_fabric::testbed::Testbed;
use weft_fabric::{AddressPair, DesiredNode, Fabric, ReconcileReport};
use weft_model::EpgPath;

pub const ECHO_PORT: u16 = 7000;

/// Returns early (test passes) with a loud message when not root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "\n*** SKIPPED {}: needs root (network namespaces, nftables) ***\n",
                module_path!()
            );
            return;
        }
    };
}

pub fn compile(hcl: &str) -> CompiledPolicy {
    let model = weft_model::parse_hcl("test.hcl", hcl).unwrap_or_else(|e| panic!("HCL: {e:?}"));
    let report = weft_model::validate(&model);
    assert!(!report.has_errors(), "policy invalid: {report:?}");
    weft_compiler::compile(&model, &Allocation::default()).expect("compile")
}

pub struct Cluster {
    pub bed: Testbed,
    pub policy: CompiledPolicy,
    pub endpoints: Vec<EndpointSpec>,
    pub agents: Vec<(String, Fabric)>,
    pub servers: Vec<EchoServer>,
}

impl Cluster {
    pub fn new(test: &str, nodes: &[&str], hcl: &str) -> Self {
        let policy = compile(hcl);
        let bed = Testbed::new(test, nodes).expect("testbed");
        let agents = nodes
            .iter()
            .map(|n| (n.to_string(), Fabric::system()))
            .collect();
        Self {
            bed,
            policy,
            endpoints: Vec::new(),
            agents,
            servers: Vec::new(),
        }
    }

    /// Adds an endpoint (namespace + echo server started after the first reconcile).
    pub fn endpoint(&mut self, name: &str, node: &str, epg: &str, ip: &str) -> String {
        let netns = self.bed.endpoint_netns(name).expect("endpoint netns");
        let n = self.endpoints.len() as u8 + 1;
        let epg: EpgPath = epg.parse().expect("epg path");
        self.endpoints.push(EndpointSpec {
            name: name.into(),
            node: node.into(),
            netns: netns.clone(),
            interface: 0,
            epg,
            ips: vec![ip.parse().expect("ip")],
            mac: [0x02, 0x00, 0x00, 0x00, 0x01, n],
            allowed_pairs: vec![],
            port_security: true,
            security_groups: None,
        });
        netns
    }

    pub fn allow_pair(&mut self, endpoint: &str, ip: &str) {
        let ep = self
            .endpoints
            .iter_mut()
            .find(|e| e.name == endpoint)
            .expect("endpoint");
        ep.allowed_pairs.push(AddressPair {
            ip: ip.parse().expect("ip"),
            mac: None,
        });
    }

    pub fn desired(&self, node: &str) -> DesiredNode {
        let spec: &NodeSpec = self.bed.node(node).expect("node");
        DesiredNode::from_policy(spec, &self.bed.nodes, &self.policy, &self.endpoints)
            .expect("desired")
    }

    pub fn reconcile(&mut self) -> Vec<ReconcileReport> {
        let desired: Vec<DesiredNode> = self.agents.iter().map(|(n, _)| self.desired(n)).collect();
        self.agents
            .iter_mut()
            .zip(desired)
            .map(|((n, agent), d)| {
                agent
                    .reconcile(&d)
                    .unwrap_or_else(|e| panic!("reconcile {n}: {e}"))
            })
            .collect()
    }

    pub fn start_servers(&mut self) {
        for ep in &self.endpoints {
            self.servers
                .push(EchoServer::start(&ep.netns, ECHO_PORT).expect("echo server"));
        }
    }

    pub fn ns(&self, endpoint: &str) -> String {
        self.spec(endpoint).netns.clone()
    }

    pub fn spec(&self, endpoint: &str) -> &EndpointSpec {
        self.endpoints
            .iter()
            .find(|e| e.name == endpoint)
            .expect("endpoint")
    }

    pub fn ip(&self, endpoint: &str) -> IpAddr {
        self.spec(endpoint).ips[0]
    }

    pub fn ip4(&self, endpoint: &str) -> Ipv4Addr {
        match self.ip(endpoint) {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => panic!("not IPv4"),
        }
    }

    pub fn tcp(&self, from: &str, to: &str, port: u16) -> bool {
        probe::tcp_ok(&self.ns(from), self.ip(to), port)
    }

    pub fn udp(&self, from: &str, to: &str, port: u16) -> bool {
        probe::udp_ok(&self.ns(from), self.ip(to), port)
    }

    pub fn ping(&self, from: &str, to: &str) -> bool {
        probe::ping_ok(&self.ns(from), self.ip4(to))
    }

    /// Packets counted so far by the bridge table's counter `name` (e.g. "spoofed") in
    /// the VRF namespace of node `node` (the cluster's policy has one VRF).
    pub fn bridge_counter(&self, node: usize, name: &str) -> u64 {
        let vrf = self.policy.vrfs.values().next().expect("one VRF").id;
        let ns = format!("{}-v{vrf}", self.bed.nodes[node].vrf_netns_prefix);
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns, "nft", "list", "counter", "bridge", "weft", name,
            ])
            .output()
            .expect("run nft");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("counter {name} in {ns}: {text}"))
    }

    /// Tears everything down and asserts nothing under the tag is left.
    pub fn finish(mut self) {
        self.servers.clear();
        self.bed.destroy().expect("destroy");
        let left = self.bed.leftovers();
        assert!(left.is_empty(), "namespaces left behind: {left:?}");
    }
}

/// Runs `ip -n <netns> <args>` (tests poke at endpoints like a misbehaving tenant would).
pub fn ip(netns: &str, args: &[&str]) {
    let out = std::process::Command::new("ip")
        .arg("-n")
        .arg(netns)
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip -n {netns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `address` (in a /24) the only address of the endpoint's interface, so that
/// all it sends comes from it: a spoofer, or a nested container's address.
pub fn send_from(netns: &str, address: &str) {
    ip(netns, &["addr", "flush", "dev", "weft0"]);
    ip(
        netns,
        &["addr", "add", &format!("{address}/24"), "dev", "weft0"],
    );
}

/// `ip`/`bridge` output in a namespace, for byte-for-byte comparisons.
pub fn show(netns: &str, program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .arg("-n")
        .arg(netns)
        .args(args)
        .output()
        .expect("run");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub const THREE_TIER_HCL: &str = r#"
tenant "shop" {
  vrf "main" {}
  bridge_domain "net" {
    vrf = "main"
    subnet "10.1.0.0/24" { gateway = "10.1.0.1" }
  }
  filter "http-8080" {
    entry "tcp-8080" {
      protocol = "tcp"
      destination_port = 8080
    }
  }
  filter "pg" {
    entry "tcp-5432" {
      protocol = "tcp"
      destination_port = 5432
    }
  }
  contract "web-to-app" {
    subject "http" { filters = ["http-8080"] }
  }
  contract "app-to-db" {
    subject "sql" { filters = ["pg"] }
  }
  application_profile "store" {
    epg "web" {
      bridge_domain = "net"
      consumes = ["web-to-app"]
    }
    epg "app" {
      bridge_domain = "net"
      provides = ["web-to-app"]
      consumes = ["app-to-db"]
    }
    epg "db" {
      bridge_domain = "net"
      provides = ["app-to-db"]
    }
  }
}
"#;
