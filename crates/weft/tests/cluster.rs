//! The control plane end to end, as processes: `weft server` and one `weft agent` per
//! node namespace, real packets between real endpoint namespaces. Needs root.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_api::{Client, EndpointRequest, EndpointState};
use weft_fabric::probe::{self, EchoServer};
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

const THREE_TIER: &str = include_str!("../../../examples/three-tier.hcl");

fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
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
struct ProcCluster {
    bed: Testbed,
    dir: PathBuf,
    port: u16,
    server: Option<Child>,
    agents: Vec<(String, Option<Child>)>,
    join_token: String,
    client: Client,
    rt: tokio::runtime::Runtime,
}

impl ProcCluster {
    fn new(test: &str) -> Self {
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

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))
            .unwrap()
    }

    fn start_server(&mut self) {
        let child = weft()
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--data-dir",
            ])
            .arg(self.dir.join("server"))
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

    fn kill_server(&mut self) {
        let mut child = self.server.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    fn start_agent(&mut self, node: &str) {
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
            .stdout(self.log(&format!("agent-{node}.log")))
            .stderr(self.log(&format!("agent-{node}.log")))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.agents.iter_mut().find(|(n, _)| n == node).unwrap().1 = Some(child);
    }

    fn kill_agent(&mut self, node: &str) {
        let slot = &mut self.agents.iter_mut().find(|(n, _)| n == node).unwrap().1;
        let mut child = slot.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn wait_nodes_ready(&self) {
        wait_until("both nodes ready", Duration::from_secs(30), || {
            self.rt
                .block_on(self.client.nodes())
                .is_ok_and(|n| n.iter().filter(|n| n.ready).count() == 2)
        });
    }

    fn apply(&self, hcl: &str) {
        let model = weft_model::parse_hcl("test.hcl", hcl).unwrap();
        self.rt.block_on(self.client.apply(&model)).unwrap();
    }

    fn endpoint(&self, name: &str, node: &str, epg: &str) -> (String, IpAddr) {
        let request = EndpointRequest {
            name: name.into(),
            epg: epg.parse().unwrap(),
            node: node.into(),
            ip: None,
            mac: None,
            allowed_address_pairs: vec![],
        };
        let ep = self
            .rt
            .block_on(self.client.create_endpoint(&request))
            .unwrap();
        (ep.netns, ep.ip)
    }

    fn wait_endpoints_ready(&self) {
        wait_until("endpoints ready", Duration::from_secs(30), || {
            self.rt
                .block_on(self.client.endpoints())
                .is_ok_and(|eps| eps.iter().all(|e| e.status.state == EndpointState::Ready))
        });
    }

    /// The nft rulesets of every VRF namespace of every node, concatenated.
    fn rulesets(&self) -> String {
        let mut out = String::new();
        for node in &self.bed.nodes {
            let prefix = format!("{}-v", node.vrf_netns_prefix);
            for ns in weft_fabric::netns::list_with_prefix(&prefix) {
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

/// web, app and db endpoints of the three-tier example on two nodes, with echo servers.
fn three_tier(c: &ProcCluster) -> (Vec<EchoServer>, [(String, IpAddr); 3]) {
    c.apply(THREE_TIER);
    let web = c.endpoint("web-1", "com1", "shop/store/web");
    let app = c.endpoint("app-1", "com2", "shop/store/app");
    let db = c.endpoint("db-1", "com2", "shop/store/db");
    c.wait_endpoints_ready();
    let servers = vec![
        EchoServer::start(&app.0, 8080).unwrap(),
        EchoServer::start(&db.0, 5432).unwrap(),
    ];
    (servers, [web, app, db])
}

fn echo(stream: &mut std::net::TcpStream, text: &[u8]) {
    stream.write_all(text).unwrap();
    let mut buf = vec![0u8; text.len()];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(buf, text);
}

#[test]
fn agents_killed_and_restarted_keep_streams_and_tables() {
    require_root!();
    let mut c = ProcCluster::new("ak");
    let (_servers, [web, app, db]) = three_tier(&c);
    assert!(
        probe::tcp_ok(&web.0, app.1, 8080),
        "web -> app 8080 must connect"
    );
    assert!(
        !probe::tcp_ok(&web.0, db.1, 5432),
        "web -> db 5432 must be blocked"
    );

    let mut stream = probe::tcp_connect(&web.0, app.1, 8080).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    echo(&mut stream, b"before the restart");
    let before = c.rulesets();

    for node in ["com1", "com2"] {
        c.kill_agent(node);
    }
    echo(&mut stream, b"while the agents are down");
    for node in ["com1", "com2"] {
        c.start_agent(node);
    }
    c.wait_nodes_ready();
    std::thread::sleep(Duration::from_secs(2)); // let them reconcile and report
    echo(&mut stream, b"after the restart");
    assert_eq!(
        before,
        c.rulesets(),
        "the agents' restart changed the installed tables"
    );
    assert!(
        !probe::tcp_ok(&web.0, db.1, 5432),
        "policy must still hold after the restart"
    );
}

#[test]
fn controller_killed_keeps_the_fabric_and_new_policy_applies_when_back() {
    require_root!();
    let mut c = ProcCluster::new("ck");
    let (_servers, [web, app, db]) = three_tier(&c);
    let before = c.rulesets();

    c.kill_server();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        probe::tcp_ok(&web.0, app.1, 8080),
        "web -> app must keep working without a controller"
    );
    assert!(
        !probe::tcp_ok(&web.0, db.1, 5432),
        "web -> db must stay blocked without a controller"
    );
    assert_eq!(
        before,
        c.rulesets(),
        "tables changed while the controller was down"
    );

    c.start_server();
    let opened = THREE_TIER.replace(
        "consumes      = [\"web-to-app\"]",
        "consumes      = [\"web-to-app\", \"app-to-db\"]",
    );
    assert_ne!(
        opened, THREE_TIER,
        "the example changed: update this test's edit"
    );
    c.apply(&opened);
    wait_until(
        "the new contract web -> db to be enforced",
        Duration::from_secs(30),
        || probe::tcp_ok(&web.0, db.1, 5432),
    );
}

#[test]
fn demo_exits_0_and_leaves_nothing_behind() {
    require_root!();
    let out = weft().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "weft demo failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("every row matches"), "{stdout}");
    let left = weft_fabric::netns::list_with_prefix("weft-demo-");
    assert!(
        left.is_empty(),
        "weft demo left namespaces behind: {left:?}"
    );
}
