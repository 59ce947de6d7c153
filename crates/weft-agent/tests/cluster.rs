//! The agent against a real fabric: two node namespaces (weft_fabric::testbed), one
//! agent per node in this process (host namespace), and a stub controller.
#![allow(clippy::unwrap_used)]

mod common;
use common::{Agent, Controller, Shared, THREE_TIER, compile, config, runtime, wait_until};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;
use weft_agent::AgentEvent;
use weft_fabric::probe::{self, EchoServer};
use weft_fabric::testbed::Testbed;

const TOKEN: &str = "weft-join-secret";
const NODES: [&str; 2] = ["n1", "n2"];
/// (endpoint, node, EPG, IP)
const ENDPOINTS: [(&str, &str, &str, &str); 3] = [
    ("web", "n1", "shop/store/web", "10.1.0.11"),
    ("app", "n2", "shop/store/app", "10.1.0.21"),
    ("db", "n2", "shop/store/db", "10.1.0.31"),
];
const WAIT: Duration = Duration::from_secs(20);

/// Field order is drop order: agents stop before the namespaces go.
struct Fixture {
    agents: BTreeMap<String, Agent>,
    servers: Vec<EchoServer>,
    ctl: Option<Controller>,
    addr: SocketAddr,
    shared: Shared,
    dirs: BTreeMap<String, tempfile::TempDir>,
    rt: tokio::runtime::Runtime,
    bed: Testbed,
}

impl Fixture {
    fn new(test: &str) -> Self {
        let bed = Testbed::new(test, &NODES).unwrap();
        let shared = Shared::new(TOKEN, compile(THREE_TIER));
        let ctl = Controller::start(shared.clone(), "127.0.0.1:0".parse().unwrap());
        let dirs = NODES
            .iter()
            .map(|n| (n.to_string(), tempfile::tempdir().unwrap()))
            .collect();
        Self {
            agents: BTreeMap::new(),
            servers: Vec::new(),
            addr: ctl.addr,
            ctl: Some(ctl),
            shared,
            dirs,
            rt: runtime(),
            bed,
        }
    }

    fn prefix(&self, node: &str) -> String {
        self.bed.node(node).unwrap().vrf_netns_prefix.clone()
    }

    fn start_agent(&mut self, node: &str) {
        let spec = self.bed.node(node).unwrap().clone();
        let cfg = config(
            &format!("http://{}", self.addr),
            TOKEN,
            node,
            Some(&spec),
            &spec.vrf_netns_prefix,
            self.dirs[node].path(),
        );
        let agent = Agent::start(&self.rt, cfg);
        self.agents.insert(node.into(), agent);
    }

    fn kill_agent(&mut self, node: &str) {
        if let Some(a) = self.agents.remove(node) {
            a.kill(&self.rt);
        }
    }

    fn ns(&self, endpoint: &str) -> String {
        let node = ENDPOINTS.iter().find(|e| e.0 == endpoint).unwrap().1;
        format!("{}-ep-{endpoint}", self.prefix(node))
    }

    fn ip(&self, endpoint: &str) -> IpAddr {
        ENDPOINTS
            .iter()
            .find(|e| e.0 == endpoint)
            .unwrap()
            .3
            .parse()
            .unwrap()
    }

    fn vrf_netns(&self) -> Vec<String> {
        let id = self
            .shared
            .read(|d| d.policy.vrfs.values().next().unwrap().id);
        NODES
            .iter()
            .map(|n| format!("{}-v{id}", self.prefix(n)))
            .collect()
    }

    /// Starts both agents, adds the three endpoints, waits until all are Ready, starts
    /// echo servers on app:8080 and db:5432.
    fn three_tier(&mut self) {
        for n in NODES {
            self.start_agent(n);
        }
        wait_until(WAIT, "both nodes registered", || {
            NODES.iter().all(|n| self.shared.registrations(n) > 0)
        });
        for (ep, node, epg, ip) in ENDPOINTS {
            let prefix = self.prefix(node);
            self.shared.add_endpoint(ep, node, &prefix, epg, ip);
        }
        let rev = self.shared.read(|d| d.revision);
        wait_until(WAIT, "every endpoint Ready", || {
            ENDPOINTS
                .iter()
                .all(|(ep, node, ..)| self.shared.ready(node, ep, rev))
        });
        self.servers
            .push(EchoServer::start(&self.ns("app"), 8080).unwrap());
        self.servers
            .push(EchoServer::start(&self.ns("db"), 5432).unwrap());
    }

    fn tcp(&self, from: &str, to: &str, port: u16) -> bool {
        probe::tcp_ok(&self.ns(from), self.ip(to), port)
    }

    /// The policy as the stub controller holds it: web→app:8080 and app→db:5432 only.
    fn assert_three_tier_policy(&self) {
        assert!(self.tcp("web", "app", 8080), "web → app:8080 must work");
        assert!(self.tcp("app", "db", 5432), "app → db:5432 must work");
        assert!(
            !self.tcp("web", "db", 5432),
            "web → db:5432 must be blocked"
        );
        assert!(
            !self.tcp("db", "app", 8080),
            "db → app:8080 must be blocked"
        );
    }

    /// Stops everything and checks that no namespace under the tag is left.
    fn finish(mut self) {
        for (_, a) in std::mem::take(&mut self.agents) {
            a.shutdown(&self.rt).unwrap();
        }
        self.servers.clear();
        drop(self.ctl.take());
        self.bed.destroy().unwrap();
        assert!(
            self.bed.leftovers().is_empty(),
            "{:?}",
            self.bed.leftovers()
        );
        let out = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            !listed.contains(&self.bed.tag),
            "namespaces left behind: {listed}"
        );
    }
}

fn nft_ruleset(ns: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-s", "list", "ruleset"])
        .output()
        .unwrap();
    assert!(out.status.success(), "nft list in {ns}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn echo(s: &mut TcpStream, msg: &[u8]) {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(msg).unwrap();
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(buf, msg);
}

fn from_disk_without_changes(e: &AgentEvent) -> bool {
    matches!(
        e,
        AgentEvent::Applied {
            from_disk: true,
            ..
        }
    )
}

fn assert_restored_unchanged(e: AgentEvent) {
    match e {
        AgentEvent::Applied {
            changes,
            error,
            from_disk: true,
            ..
        } => {
            assert_eq!(changes, 0, "a restored state must change nothing");
            assert_eq!(error, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn three_tier_on_two_nodes() {
    require_root!();
    let mut f = Fixture::new("agt3t");
    f.three_tier();
    f.assert_three_tier_policy();
    // The report names the rule table handed to the fabric, per VRF.
    let (policy, reports) = f.shared.read(|d| (d.policy.clone(), d.reports.clone()));
    for n in NODES {
        let r = &reports[n];
        assert_eq!(r.error, None);
        assert_eq!(r.installed.len(), 1, "{n}");
        assert_eq!(r.installed[0].rules, policy.vrfs[&r.installed[0].vrf].rules);
    }
    // The registration carried the host's resources and labels.
    let node = f.shared.read(|d| d.nodes["n1"].clone());
    assert!(node.registration.resources.cpus >= 1.0);
    assert!(node.registration.labels.contains_key("arch"));
    f.finish();
}

#[test]
fn agent_restart_keeps_streams_and_rules() {
    require_root!();
    let mut f = Fixture::new("agtrs");
    f.three_tier();
    let mut stream = probe::tcp_connect(&f.ns("web"), f.ip("app"), 8080).unwrap();
    echo(&mut stream, b"before");
    let vrfs = f.vrf_netns();
    let before: Vec<String> = vrfs.iter().map(|ns| nft_ruleset(ns)).collect();
    assert!(before.iter().all(|r| r.contains("table inet weft")));

    for n in NODES {
        f.kill_agent(n);
    }
    echo(&mut stream, b"while the agents are down");
    for n in NODES {
        f.start_agent(n);
    }
    for n in NODES {
        let agent = f.agents.get_mut(n).unwrap();
        let e = agent.wait_event(&f.rt, WAIT, from_disk_without_changes);
        assert_restored_unchanged(e);
        agent.wait_event(&f.rt, WAIT, |e| *e == AgentEvent::Registered);
        agent.wait_event(&f.rt, WAIT, |e| matches!(e, AgentEvent::Reported { .. }));
    }
    echo(&mut stream, b"after the restart");
    let after: Vec<String> = vrfs.iter().map(|ns| nft_ruleset(ns)).collect();
    assert_eq!(before, after, "nft rulesets must be byte-identical");
    f.assert_three_tier_policy();
    echo(&mut stream, b"still");
    drop(stream);
    f.finish();
}

#[test]
fn controller_gone_then_back_with_a_new_contract() {
    require_root!();
    let mut f = Fixture::new("agtcg");
    f.three_tier();
    let vrfs = f.vrf_netns();
    let before: Vec<String> = vrfs.iter().map(|ns| nft_ruleset(ns)).collect();

    // The controller dies; the agents keep enforcing, then restart without it.
    f.ctl.take().unwrap().kill();
    for n in NODES {
        f.kill_agent(n);
    }
    for n in NODES {
        f.start_agent(n);
    }
    for n in NODES {
        let agent = f.agents.get_mut(n).unwrap();
        assert_restored_unchanged(agent.wait_event(&f.rt, WAIT, from_disk_without_changes));
        let e = agent.wait_event(&f.rt, WAIT, |e| matches!(e, AgentEvent::Retrying { .. }));
        assert!(
            matches!(
                e,
                AgentEvent::Retrying {
                    error: weft_agent::ControllerError::Unreachable { .. },
                    ..
                }
            ),
            "{e:?}"
        );
    }
    f.assert_three_tier_policy();
    let after: Vec<String> = vrfs.iter().map(|ns| nft_ruleset(ns)).collect();
    assert_eq!(before, after);
    assert!(f.agents.values().all(|a| !a.task.is_finished()));

    // Back, with a new contract: web may now reach db on tcp/5432.
    let hcl = THREE_TIER
        .replace(
            "  contract \"app-to-db\" {",
            "  contract \"web-to-db\" {\n    subject \"sql\" {\n      filters = [\"postgres\"]\n    }\n  }\n\n  contract \"app-to-db\" {",
        )
        .replace(
            "consumes      = [\"web-to-app\"]",
            "consumes      = [\"web-to-app\", \"web-to-db\"]",
        )
        .replace(
            "provides      = [\"app-to-db\"]",
            "provides      = [\"app-to-db\", \"web-to-db\"]",
        );
    let model = weft_model::parse_hcl("new.hcl", &hcl).unwrap();
    let previous = f.shared.read(|d| d.policy.allocation.clone());
    let policy = weft_compiler::compile(&model, &previous).unwrap();
    let rev = f.shared.update(|d| d.policy = policy);
    f.ctl = Some(Controller::start(f.shared.clone(), f.addr));
    wait_until(WAIT, "both nodes applied the new policy", || {
        f.shared.read(|d| {
            NODES.iter().all(|n| {
                d.reports
                    .get(*n)
                    .is_some_and(|r| r.applied_revision >= rev && r.error.is_none())
            })
        })
    });
    assert!(f.tcp("web", "db", 5432), "the new contract is enforced");
    assert!(f.tcp("web", "app", 8080));
    assert!(!f.tcp("db", "web", 8080));
    f.finish();
}
