//! A cluster of real processes for end-to-end tests: node namespaces from the fabric's
//! testbed, one `weft server`, one `weft agent` per node.
#![allow(clippy::unwrap_used, dead_code)] // tests fail loudly; not every test uses all

pub mod docker;
pub mod ha;
pub mod nova;
pub mod openstack;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_api::{Client, EndpointRequest, EndpointState};
use weft_fabric::testbed::Testbed;

macro_rules! require_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "\n*** SKIPPED {}: needs root (namespaces, nftables) ***\n",
                module_path!()
            );
            return;
        }
    };
}

pub const THREE_TIER: &str = include_str!("../../../../examples/three-tier.hcl");

pub fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A controller and one agent per node, each its own process.
pub struct ProcCluster {
    pub bed: Testbed,
    pub dir: PathBuf,
    pub port: u16,
    pub server: Option<Child>,
    pub agents: Vec<(String, Option<Child>)>,
    pub join_token: String,
    pub client: Client,
    pub rt: tokio::runtime::Runtime,
    /// Extra arguments of `weft server` (e.g. `--consul-listen`).
    pub server_args: Vec<String>,
    /// Extra arguments of every `weft agent` (e.g. `--dns-recursor`).
    pub agent_args: Vec<String>,
}

impl ProcCluster {
    pub fn new(test: &str) -> Self {
        Self::with_server_args(test, &[])
    }

    /// A cluster whose controller also gets `server_args`.
    pub fn with_server_args(test: &str, server_args: &[&str]) -> Self {
        Self::with_args(test, server_args, &[])
    }

    /// A cluster whose controller gets `server_args` and every agent `agent_args`.
    pub fn with_args(test: &str, server_args: &[&str], agent_args: &[&str]) -> Self {
        let tag = format!("weft-t{}-{test}", std::process::id());
        let bed = Testbed::with_tag(tag.clone(), &["com1", "com2"]).unwrap();
        let dir = std::env::temp_dir().join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = Self {
            bed,
            dir,
            port,
            server: None,
            agents: vec![("com1".into(), None), ("com2".into(), None)],
            join_token: String::new(),
            client: Client::new("http://127.0.0.1:1", None),
            rt: runtime(),
            server_args: server_args.iter().map(|a| (*a).to_string()).collect(),
            agent_args: agent_args.iter().map(|a| (*a).to_string()).collect(),
        };
        c.start_server();
        let data = c.dir.join("server");
        let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
        c.join_token = std::fs::read_to_string(data.join("join.token"))
            .unwrap()
            .trim()
            .to_string();
        c.client = Client::new(
            &format!("http://127.0.0.1:{port}"),
            Some(admin.trim().to_string()),
        );
        c.start_agent("com1");
        c.start_agent("com2");
        c.wait_nodes_ready();
        c
    }

    /// A `weft` CLI command aimed at this cluster (not at whatever `weft dev` left).
    pub fn cli(&self) -> Command {
        let token = std::fs::read_to_string(self.dir.join("server").join("admin.token")).unwrap();
        let mut cmd = weft();
        cmd.env("WEFT_SERVER", format!("http://127.0.0.1:{}", self.port))
            .env("WEFT_TOKEN", token.trim())
            .env("WEFT_CONFIG", self.dir.join("no-cli.json"));
        cmd
    }

    pub fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))
            .unwrap()
    }

    pub fn start_server(&mut self) {
        let child = weft()
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--data-dir",
            ])
            .arg(self.dir.join("server"))
            .args(&self.server_args)
            .stdout(self.log("server.log"))
            .stderr(self.log("server.log"))
            .spawn()
            .unwrap();
        self.server = Some(child);
        let health = Client::new(&format!("http://127.0.0.1:{}", self.port), None);
        let rt = runtime();
        wait_until("the controller", Duration::from_secs(20), || {
            rt.block_on(health.health()).is_ok()
        });
        // A new connection pool, as a new `weft` command would have: pooled
        // connections to a killed controller are dead.
        if let Ok(admin) = std::fs::read_to_string(self.dir.join("server").join("admin.token")) {
            let base = format!("http://127.0.0.1:{}", self.port);
            self.client = Client::new(&base, Some(admin.trim().to_string()));
        }
    }

    pub fn kill_server(&mut self) {
        let mut child = self.server.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    pub fn start_agent(&mut self, node: &str) {
        let spec = self.bed.node(node).unwrap().clone();
        let netns = spec.netns.clone().unwrap();
        let child = weft()
            .args([
                "agent",
                "--server",
                &format!("http://127.0.0.1:{}", self.port),
            ])
            .args([
                "--join-token",
                &self.join_token,
                "--node",
                node,
                "--netns",
                &netns,
            ])
            .args(["--underlay-ip", &spec.underlay_ip.to_string()])
            .args(["--netns-prefix", &spec.vrf_netns_prefix, "--state-dir"])
            .arg(self.dir.join(format!("agent-{node}")))
            .args(&self.agent_args)
            .stdout(self.log(&format!("agent-{node}.log")))
            .stderr(self.log(&format!("agent-{node}.log")))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.agents.iter_mut().find(|(n, _)| n == node).unwrap().1 = Some(child);
    }

    pub fn kill_agent(&mut self, node: &str) {
        let slot = &mut self.agents.iter_mut().find(|(n, _)| n == node).unwrap().1;
        let mut child = slot.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn wait_nodes_ready(&self) {
        wait_until("both nodes ready", Duration::from_secs(30), || {
            self.rt
                .block_on(self.client.nodes())
                .is_ok_and(|n| n.iter().filter(|n| n.ready).count() == 2)
        });
    }

    pub fn apply(&self, hcl: &str) {
        let model = weft_model::parse_hcl("test.hcl", hcl).unwrap();
        self.rt.block_on(self.client.apply(&model)).unwrap();
    }

    pub fn endpoint(&self, name: &str, node: &str, epg: &str) -> (String, IpAddr) {
        let request = EndpointRequest::new(name, epg.parse().unwrap(), node);
        let ep = self
            .rt
            .block_on(self.client.create_endpoint(&request))
            .unwrap();
        (ep.netns, ep.ip)
    }

    pub fn wait_endpoints_ready(&self) {
        wait_until("endpoints ready", Duration::from_secs(30), || {
            self.rt
                .block_on(self.client.endpoints())
                .is_ok_and(|eps| eps.iter().all(|e| e.status.state == EndpointState::Ready))
        });
    }

    /// The nft rulesets of every VRF namespace of every node, concatenated.
    pub fn rulesets(&self) -> String {
        let mut out = String::new();
        for node in &self.bed.nodes {
            let prefix = format!("{}-v", node.vrf_netns_prefix);
            // VRF namespaces only (`-v<id>`): the spare (`-vspare`) holds no policy and is
            // built in the background.
            let vrfs = weft_fabric::netns::list_with_prefix(&prefix)
                .into_iter()
                .filter(|ns| ns[prefix.len()..].chars().all(|c| c.is_ascii_digit()));
            for ns in vrfs {
                // -s: stateless, without the counters of rules and elements.
                let listing = Command::new("ip")
                    .args(["netns", "exec", &ns, "nft", "-s", "list", "ruleset"])
                    .output()
                    .unwrap();
                out.push_str(&format!(
                    "# {ns}\n{}",
                    String::from_utf8_lossy(&listing.stdout)
                ));
            }
        }
        // Named counters print their values even with -s; they move with traffic.
        out.lines()
            .filter(|l| !(l.trim_start().starts_with("packets ") && l.contains(" bytes ")))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Removes the warm containers of an agent scope (label `weft.spare=<scope>`), if Docker
/// is there.
pub fn remove_warm_containers(scope: &str) {
    let Ok(out) = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=weft.spare={scope}"),
        ])
        .output()
    else {
        return;
    };
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("docker").args(["rm", "-f", id]).output();
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(25).collect();
                    eprintln!("--- {} (last lines)", path.display());
                    for line in tail.iter().rev() {
                        eprintln!("{line}");
                    }
                }
            }
        }
        for (_, child) in &mut self.agents {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Killed agents leave their warm containers (a stopped one removes them).
        for node in ["com1", "com2"] {
            if let Some(spec) = self.bed.node(node) {
                remove_warm_containers(&spec.vrf_netns_prefix);
            }
        }
        let _ = self.bed.destroy();
        let leftovers = self.bed.leftovers();
        let _ = std::fs::remove_dir_all(&self.dir);
        if !std::thread::panicking() {
            assert!(
                leftovers.is_empty(),
                "namespaces left behind: {leftovers:?}"
            );
        }
    }
}
