//! Security groups and port security (the seed's open problem 5) built only with the real
//! `openstack` CLI against a process cluster serving Neutron, checked with real ICMP,
//! TCP and UDP between the ports' namespaces (every port is a weft endpoint; its
//! namespace comes from weft's `GET /v1/endpoints/{name}`):
//!
//! - the `default` group admits ingress from its own members only; a group with egress
//!   rules alone admits nothing in; a rule for one port from one address (`tcp/7000`,
//!   `tcp/22` from a `remote_ip_prefix`) opens that and nothing else; joining `default`
//!   opens a port to its members (the remote group's addresses are kept current);
//! - deleting a rule refuses new connections within [`DELETE_BOUND`] of the
//!   controller's commit (measured and printed), while a connection opened before keeps
//!   working;
//! - an EPG contract that denies wins over a group that permits everything, until a
//!   router joins the two networks;
//! - port security on drops packets from a nested address until that address is an
//!   allowed address pair of the port, which lets it through on that port only, with
//!   port security still on; port security off lets a port send from any address (to
//!   another node only once the receiver can resolve that address: the fabric answers
//!   ARP across nodes for the addresses it knows, so the test gives the receiver the
//!   neighbour entry ARP would have made, and says so).
//!
//! Refusals are checked only after something shows the state they follow is installed,
//! and each must hold for a whole window ([`REFUSED_WINDOW`]); every check that waits
//! for propagation polls within a stated bound. The tests run one at a time so that the
//! measured bounds are the fabric's, not a neighbour test's. Root (namespaces); skips
//! loudly otherwise, and without the clients (`scripts/python-clients.sh`) skips loudly
//! outside CI.
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::ProcCluster;
use common::openstack::{ECHO_PORT, OpenStackCluster, clients};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use weft_api::Endpoint;
use weft_fabric::probe::{EchoServer, ping_ok, tcp_connect, tcp_ok, udp_ok};

/// A rule deletion refuses new connections within this long of the controller's commit
/// (commit → the agents' long poll → nft).
const DELETE_BOUND: Duration = Duration::from_secs(3);
/// Anything else that waits for a change to reach the data path (a rule, a router, an
/// address pair) within this long of the API's answer.
const CHANGE_BOUND: Duration = Duration::from_secs(10);
/// New ports pass their first packets within this long of being created.
const READY_BOUND: Duration = Duration::from_secs(30);
/// A refusal holds for this whole window (probes repeat, each waits up to 1 s).
const REFUSED_WINDOW: Duration = Duration::from_secs(3);

/// One test at a time (each runs its own cluster; bounds are measured).
static SERIAL: Mutex<()> = Mutex::new(());

/// What a probe sends.
#[derive(Debug, Clone, Copy)]
enum Proto {
    Icmp,
    Tcp(u16),
    Udp(u16),
}

const ALL: [Proto; 3] = [Proto::Icmp, Proto::Tcp(ECHO_PORT), Proto::Udp(ECHO_PORT)];

/// One probe: from a port's namespace to another port's address.
#[derive(Clone, Copy)]
struct Flow<'a> {
    from: &'a Endpoint,
    to: &'a Endpoint,
    proto: Proto,
}

impl std::fmt::Display for Flow<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} ({}) {:?}",
            self.from.name, self.to.name, self.to.ip, self.proto
        )
    }
}

impl Flow<'_> {
    fn passes(&self) -> bool {
        let (ns, ip) = (&self.from.netns, self.to.ip);
        match self.proto {
            Proto::Icmp => ping_ok(ns, v4(ip)),
            Proto::Tcp(port) => tcp_ok(ns, ip, port),
            Proto::Udp(port) => udp_ok(ns, ip, port),
        }
    }
}

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => panic!("these ports are IPv4"),
    }
}

/// `protos` from `a` to `b` and from `b` to `a`.
fn both_ways<'a>(a: &'a Endpoint, b: &'a Endpoint, protos: &[Proto]) -> Vec<Flow<'a>> {
    let mut flows = Vec::new();
    for &proto in protos {
        flows.push(Flow {
            from: a,
            to: b,
            proto,
        });
        flows.push(Flow {
            from: b,
            to: a,
            proto,
        });
    }
    flows
}

/// `protos` from `from` to `to`.
fn one_way<'a>(from: &'a Endpoint, to: &'a Endpoint, protos: &[Proto]) -> Vec<Flow<'a>> {
    protos
        .iter()
        .map(|&proto| Flow { from, to, proto })
        .collect()
}

/// Polls until every flow passes; panics after `bound`. How long it took.
fn passes_within(what: &str, bound: Duration, since: Instant, flows: &[Flow<'_>]) -> Duration {
    loop {
        let failing: Vec<String> = flows
            .iter()
            .filter(|f| !f.passes())
            .map(ToString::to_string)
            .collect();
        let took = since.elapsed();
        if failing.is_empty() {
            eprintln!("{what}: passes after {} ms", took.as_millis());
            return took;
        }
        assert!(
            took < bound,
            "{what}: still refused after {bound:?}: {failing:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every flow is refused, each probed again and again (concurrently) for the whole
/// [`REFUSED_WINDOW`].
fn refused_throughout(what: &str, flows: &[Flow<'_>]) {
    let passed: Vec<String> = std::thread::scope(|s| {
        let probes: Vec<_> = flows
            .iter()
            .map(|f| {
                s.spawn(move || {
                    let start = Instant::now();
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        if f.passes() {
                            return Some(format!(
                                "{f} passed after {} ms (try {tries})",
                                start.elapsed().as_millis()
                            ));
                        }
                        if start.elapsed() >= REFUSED_WINDOW {
                            return None;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
            })
            .collect();
        probes
            .into_iter()
            .filter_map(|p| p.join().unwrap())
            .collect()
    });
    assert!(passed.is_empty(), "{what}: must be refused: {passed:#?}");
    eprintln!(
        "{what}: {} flows refused throughout {REFUSED_WINDOW:?}",
        flows.len()
    );
}

/// When new TCP connections from `ns` to `to`:`port` start being refused: the start of
/// the first of two refused probes in a row (a single one could be the load), as an
/// instant and as wall-clock time. Panics if it does not happen within [`CHANGE_BOUND`]
/// plus the time the deletion command may take.
fn first_refusal(ns: &str, to: IpAddr, port: u16) -> (Instant, SystemTime) {
    let start = Instant::now();
    let mut refused: Option<(Instant, SystemTime)> = None;
    loop {
        let at = (Instant::now(), SystemTime::now());
        if tcp_ok(ns, to, port) {
            refused = None;
        } else if let Some(first) = refused {
            return first;
        } else {
            refused = Some(at);
        }
        assert!(
            start.elapsed() < CHANGE_BOUND * 2,
            "{to}:{port} still admits new connections after {:?}",
            CHANGE_BOUND * 2
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `a - b` in milliseconds, signed.
fn signed_ms(a: SystemTime, b: SystemTime) -> i64 {
    match a.duration_since(b) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap(),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap(),
    }
}

fn signed_ms_instant(a: Instant, b: Instant) -> i64 {
    if a >= b {
        i64::try_from((a - b).as_millis()).unwrap()
    } else {
        -i64::try_from((b - a).as_millis()).unwrap()
    }
}

/// When the controller committed the deletion of Neutron object `id`: the server log's
/// last `policy committed` line before its `neutron object deleted` line (tracing's
/// UTC RFC 3339 stamps).
fn committed_before(c: &ProcCluster, id: &str) -> SystemTime {
    let log = std::fs::read_to_string(c.dir.join("server.log")).unwrap();
    let mut committed = None;
    for line in log.lines().map(plain) {
        if line.contains("policy committed") {
            committed = Some(line);
        } else if line.contains("neutron object deleted") && line.contains(id) {
            let line = committed.unwrap_or_else(|| panic!("no commit before {line}"));
            let stamp = line.split_whitespace().next().unwrap();
            return utc(stamp).unwrap_or_else(|| panic!("not a timestamp: {line}"));
        }
    }
    panic!("the server log names no deletion of {id}");
}

/// `line` without ANSI colour sequences.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for skipped in chars.by_ref() {
                if skipped.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` as a time.
fn utc(stamp: &str) -> Option<SystemTime> {
    let (date, time) = stamp.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// The sum of a named nft counter (`family` `weft` table) over both nodes' VRF
/// namespaces.
fn counter(c: &ProcCluster, family: &str, name: &str) -> u64 {
    let mut total = 0;
    for node in &c.bed.nodes {
        let prefix = format!("{}-v", node.vrf_netns_prefix);
        let vrfs = weft_fabric::netns::list_with_prefix(&prefix)
            .into_iter()
            .filter(|ns| ns[prefix.len()..].chars().all(|c| c.is_ascii_digit()));
        for ns in vrfs {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "nft", "list", "counter", family])
                .args(["weft", name])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            total += text
                .split_whitespace()
                .skip_while(|w| *w != "packets")
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("counter {family} {name} in {ns}: {text}"));
        }
    }
    total
}

/// `ip -n NETNS ARGS`.
fn ip(netns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .arg("-n")
        .arg(netns)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {netns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `address` (in a /24) the only address of a port's interface, so that
/// everything its namespace sends comes from it (a nested container's address).
fn send_from(e: &Endpoint, address: &str) {
    ip(&e.netns, &["addr", "flush", "dev", "weft0"]);
    ip(
        &e.netns,
        &["addr", "add", &format!("{address}/24"), "dev", "weft0"],
    );
}

/// The cluster and the `openstack` CLI aimed at it.
struct Lab {
    os: OpenStackCluster,
    openstack: PathBuf,
    /// Held until the cluster is gone (fields drop in order).
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// `None` (skipped loudly) without the clients.
    fn new(test: &str, tag: &str) -> Option<Self> {
        let (openstack, _python) = clients(test)?;
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let os = OpenStackCluster::new(tag);
        Some(Self {
            os,
            openstack,
            _serial: serial,
        })
    }

    fn c(&self) -> &ProcCluster {
        &self.os.c
    }

    /// `openstack ARGS`: stdout, or a panic naming stderr.
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .os
            .command(&self.openstack)
            .args(["--os-cloud", "weft"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openstack {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `openstack ARGS -f json`.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["-f", "json"]);
        let out = self.run(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// A network with one subnet `SN-<net>`.
    fn network(&self, net: &str, cidr: &str) {
        self.run(&["network", "create", net]);
        let subnet = format!("SN-{net}");
        self.run(&[
            "subnet",
            "create",
            "--network",
            net,
            "--subnet-range",
            cidr,
            &subnet,
        ]);
    }

    /// A security group (Neutron's two egress rules) with `rules`, each the arguments of
    /// one `security group rule create`.
    fn group(&self, name: &str, rules: &[&[&str]]) {
        self.run(&["security", "group", "create", name]);
        for rule in rules {
            self.rule(name, rule);
        }
    }

    /// `security group rule create ARGS GROUP`: the rule's id.
    fn rule(&self, group: &str, args: &[&str]) -> String {
        let mut all = vec!["security", "group", "rule", "create"];
        all.extend(args);
        all.push(group);
        let made = self.json(&all);
        made["id"].as_str().unwrap().to_string()
    }

    /// `port create` on `host` with `extra` arguments (e.g. `--security-group G`).
    fn port(&self, name: &str, net: &str, host: &str, extra: &[&str]) {
        let mut args = vec!["port", "create", "--network", net, "--host", host];
        args.extend(extra);
        args.push(name);
        self.run(&args);
    }

    /// The weft endpoint behind port `name`: found by the fixed IP the CLI shows, then
    /// read with `GET /v1/endpoints/{name}` (its namespace).
    fn endpoint(&self, name: &str) -> Endpoint {
        let shown = self.json(&["port", "show", name]);
        let ip: IpAddr = shown["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let host = shown["binding_host_id"].as_str().unwrap();
        let c = self.c();
        let all = c.rt.block_on(c.client.endpoints()).unwrap();
        let listed = all
            .iter()
            .find(|e| e.ip == ip)
            .unwrap_or_else(|| panic!("no endpoint has port {name}'s address {ip}: {all:?}"));
        let e = c.rt.block_on(c.client.endpoint(&listed.name)).unwrap();
        assert!(e.name.starts_with("port-"), "{e:?}");
        assert_eq!(e.node, host, "port {name} is bound to {host}");
        e
    }
}

/// Echo servers (TCP and UDP) on `ports` in each endpoint's namespace.
fn servers(endpoints: &[&Endpoint], ports: &[u16]) -> Vec<EchoServer> {
    let mut all = Vec::new();
    for e in endpoints {
        for &port in ports {
            all.push(EchoServer::start(&e.netns, port).unwrap());
        }
    }
    all
}

#[test]
fn default_group_rules_from_a_prefix_and_deleting_a_rule_real_packets() {
    require_root!();
    let test = "default_group_rules_from_a_prefix_and_deleting_a_rule_real_packets";
    let Some(lab) = Lab::new(test, "ossg") else {
        return;
    };
    let c = lab.c();
    lab.network("net1", "10.10.0.0/24");
    // `open-out`: Neutron's egress rules and nothing in.
    lab.group("open-out", &[]);
    lab.port("A", "net1", "com1", &[]);
    lab.port("B", "net1", "com2", &[]);
    lab.port("N", "net1", "com1", &["--security-group", "open-out"]);
    c.wait_endpoints_ready();
    let (a, b, n) = (lab.endpoint("A"), lab.endpoint("B"), lab.endpoint("N"));
    // A and B are in `default` (no --security-group), N only in `open-out`.
    assert_eq!(
        a.security_groups.as_deref(),
        Some(&["default".to_string()][..])
    );
    assert_eq!(
        b.security_groups.as_deref(),
        Some(&["default".to_string()][..])
    );
    assert_eq!(n.security_groups.as_ref().map(Vec::len), Some(1), "{n:?}");
    let _servers = (
        servers(&[&a, &b], &[ECHO_PORT]),
        servers(&[&n], &[ECHO_PORT, 7000, 7001, 22]),
    );

    // Members of `default` talk to each other, on one node and across.
    passes_within(
        "A <-> B (both in default): ICMP, TCP, UDP",
        READY_BOUND,
        Instant::now(),
        &both_ways(&a, &b, &ALL),
    );
    // N is not a member: refused both ways, by the groups (one EPG: contracts permit).
    let denied = counter(c, "inet", "sg_denied");
    let n_all = [Proto::Icmp, Proto::Tcp(7000), Proto::Udp(7000)];
    let mut flows = one_way(&n, &a, &ALL);
    flows.extend(one_way(&a, &n, &n_all));
    flows.extend(one_way(&b, &n, &[Proto::Tcp(22)]));
    refused_throughout(
        "N -> A (not in default), A -> N, B -> N (open-out admits nothing)",
        &flows,
    );
    let now = counter(c, "inet", "sg_denied");
    assert!(
        now > denied,
        "the groups refused them: sg_denied {denied} -> {now}"
    );

    // tcp/7000 from A's address alone.
    let from_a = format!("{}/32", a.ip);
    let start = Instant::now();
    let r7000 = lab.rule(
        "open-out",
        &[
            "--ingress",
            "--protocol",
            "tcp",
            "--dst-port",
            "7000",
            "--remote-ip",
            &from_a,
        ],
    );
    let answered = Instant::now();
    passes_within(
        &format!("A -> N tcp/7000 after the rule from {from_a} (since the CLI exited)"),
        CHANGE_BOUND,
        answered,
        &one_way(&a, &n, &[Proto::Tcp(7000)]),
    );
    eprintln!("  (the CLI took {} ms)", (answered - start).as_millis());
    let mut flows = one_way(&a, &n, &[Proto::Udp(7000), Proto::Tcp(7001), Proto::Icmp]);
    flows.extend(one_way(&a, &n, &[Proto::Tcp(22)]));
    flows.extend(one_way(&b, &n, &[Proto::Tcp(7000)]));
    flows.extend(one_way(&n, &a, &ALL));
    refused_throughout(
        "A -> N udp/7000, tcp/7001, ICMP, tcp/22; B -> N tcp/7000; N -> A",
        &flows,
    );

    // tcp/22 from a remote_ip_prefix (B's address): B gets in, another source does not.
    let from_b = format!("{}/32", b.ip);
    let shown = lab.json(&[
        "security",
        "group",
        "rule",
        "create",
        "--ingress",
        "--protocol",
        "tcp",
        "--dst-port",
        "22",
        "--remote-ip",
        &from_b,
        "open-out",
    ]);
    assert_eq!(shown["remote_ip_prefix"], from_b.as_str(), "{shown}");
    assert_eq!(shown["port_range_min"], 22, "{shown}");
    assert_eq!(shown["port_range_max"], 22, "{shown}");
    passes_within(
        &format!("B -> N tcp/22 from remote_ip_prefix {from_b}"),
        CHANGE_BOUND,
        Instant::now(),
        &one_way(&b, &n, &[Proto::Tcp(22)]),
    );
    let mut flows = one_way(&a, &n, &[Proto::Tcp(22)]);
    flows.extend(one_way(
        &b,
        &n,
        &[Proto::Udp(22), Proto::Tcp(7001), Proto::Icmp],
    ));
    refused_throughout(
        "A -> N tcp/22 (another source); B -> N udp/22, tcp/7001, ICMP",
        &flows,
    );
    passes_within(
        "A -> N tcp/7000 still",
        CHANGE_BOUND,
        Instant::now(),
        &one_way(&a, &n, &[Proto::Tcp(7000)]),
    );

    // Deleting the tcp/7000 rule: new connections refused within DELETE_BOUND of the
    // controller's commit; one opened before keeps working (stateful).
    let mut held = tcp_connect(&a.netns, n.ip, 7000).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let echo = |held: &mut std::net::TcpStream, word: &[u8; 6]| {
        held.write_all(word).unwrap();
        let mut buf = [0u8; 6];
        held.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, word);
    };
    echo(&mut held, b"before");
    assert!(
        tcp_ok(&a.netns, n.ip, 7000),
        "a new connection before the deletion"
    );
    // Probes run while the CLI does; the refusal is timed from the controller's commit
    // (its log line), from the command's start, and against the command's exit.
    let prober = std::thread::spawn({
        let (ns, to) = (a.netns.clone(), n.ip);
        move || first_refusal(&ns, to, 7000)
    });
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    lab.run(&["security", "group", "rule", "delete", &r7000]);
    let exited = start.elapsed();
    let (refused_at, refused_wall) = prober.join().unwrap();
    let committed = committed_before(c, &r7000);
    let from_commit = signed_ms(refused_wall, committed);
    let from_start = signed_ms_instant(refused_at, start);
    eprintln!(
        "rule delete: new connections refused {from_commit} ms after the controller \
         committed, {from_start} ms after `openstack security group rule delete` started \
         (it exited after {} ms); bound {DELETE_BOUND:?} from the commit",
        exited.as_millis()
    );
    assert!(
        from_start >= 0 && from_commit > -250,
        "refused before the deletion: a spurious refusal ({from_commit} ms)"
    );
    assert!(
        from_commit <= i64::try_from(DELETE_BOUND.as_millis()).unwrap(),
        "refused {from_commit} ms after the commit, bound {DELETE_BOUND:?}"
    );
    refused_throughout(
        "A -> N tcp/7000 after its rule is deleted",
        &one_way(&a, &n, &[Proto::Tcp(7000)]),
    );
    echo(&mut held, b"after!");
    eprintln!("the connection opened before the deletion still echoes");
    drop(held);
    passes_within(
        "B -> N tcp/22 (the other rule) still",
        CHANGE_BOUND,
        Instant::now(),
        &one_way(&b, &n, &[Proto::Tcp(22)]),
    );

    // N joins `default`: its members' rule now admits N, and N admits them.
    lab.run(&["port", "set", "--security-group", "default", "N"]);
    let mut flows = both_ways(
        &a,
        &n,
        &[Proto::Icmp, Proto::Tcp(ECHO_PORT), Proto::Udp(ECHO_PORT)],
    );
    flows.extend(both_ways(&b, &n, &[Proto::Tcp(ECHO_PORT)]));
    passes_within(
        "N in default too: A <-> N, B <-> N",
        CHANGE_BOUND,
        Instant::now(),
        &flows,
    );
}

#[test]
fn a_contract_that_denies_wins_over_a_group_that_permits_real_packets() {
    require_root!();
    let test = "a_contract_that_denies_wins_over_a_group_that_permits_real_packets";
    let Some(lab) = Lab::new(test, "ossgepg") else {
        return;
    };
    let c = lab.c();
    lab.network("netx", "10.20.0.0/24");
    lab.network("nety", "10.21.0.0/24");
    // Everything in (any protocol from 0.0.0.0/0) and, as made, everything out.
    lab.group(
        "all-open",
        &[&["--ingress", "--protocol", "any", "--remote-ip", "0.0.0.0/0"]],
    );
    let rules = lab.json(&["security", "group", "rule", "list", "all-open"]);
    let rules: Vec<String> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or("any").to_string();
            format!(
                "{} {} {}",
                field("Direction"),
                field("Ethertype"),
                field("IP Range")
            )
        })
        .collect();
    for rule in [
        "ingress IPv4 0.0.0.0/0",
        "egress IPv4 0.0.0.0/0",
        "egress IPv6 ::/0",
    ] {
        assert!(rules.iter().any(|r| r == rule), "{rule} in {rules:?}");
    }
    let open = ["--security-group", "all-open"];
    lab.port("X1", "netx", "com1", &open);
    lab.port("X2", "netx", "com2", &open);
    lab.port("Y1", "nety", "com2", &open);
    c.wait_endpoints_ready();
    let (x1, x2, y1) = (lab.endpoint("X1"), lab.endpoint("X2"), lab.endpoint("Y1"));
    let _servers = servers(&[&x1, &x2, &y1], &[ECHO_PORT]);

    // The group is in force: one network passes.
    passes_within(
        "X1 <-> X2 (one network, all-open)",
        READY_BOUND,
        Instant::now(),
        &both_ways(&x1, &x2, &ALL),
    );
    // Two networks on no common router: no contract, so refused although the group
    // permits, by the contracts' default deny and not by the groups.
    let (deny, sg) = (
        counter(c, "inet", "default_deny"),
        counter(c, "inet", "sg_denied"),
    );
    let mut flows = both_ways(&x1, &y1, &ALL);
    flows.extend(both_ways(&x2, &y1, &ALL));
    refused_throughout("X1 <-> Y1, X2 <-> Y1 (no router)", &flows);
    let (deny2, sg2) = (
        counter(c, "inet", "default_deny"),
        counter(c, "inet", "sg_denied"),
    );
    assert!(
        deny2 > deny,
        "the contracts refused them: default_deny {deny} -> {deny2}"
    );
    assert_eq!(sg2, sg, "the groups admitted them: sg_denied {sg} -> {sg2}");
    let why =
        c.rt.block_on(c.client.explain(&x1.name, &y1.name, "tcp", ECHO_PORT))
            .unwrap();
    eprintln!("explain X1 -> Y1 tcp/{ECHO_PORT}: {}", why.intent.text);
    assert!(!why.intent.allowed, "{why:?}");

    // Both networks on a router: its contract permits, and now they pass.
    lab.run(&["router", "create", "rt"]);
    lab.run(&["router", "add", "subnet", "rt", "SN-netx"]);
    lab.run(&["router", "add", "subnet", "rt", "SN-nety"]);
    let mut flows = both_ways(&x1, &y1, &ALL);
    flows.extend(both_ways(&x2, &y1, &ALL));
    passes_within(
        "X1 <-> Y1, X2 <-> Y1 through router rt",
        CHANGE_BOUND,
        Instant::now(),
        &flows,
    );
    let why =
        c.rt.block_on(c.client.explain(&x1.name, &y1.name, "tcp", ECHO_PORT))
            .unwrap();
    eprintln!("explain X1 -> Y1 tcp/{ECHO_PORT}: {}", why.intent.text);
    assert!(why.intent.allowed, "{why:?}");
}

#[test]
fn open_problem_5_allowed_address_pairs_with_port_security_on_real_packets() {
    require_root!();
    let test = "open_problem_5_allowed_address_pairs_with_port_security_on_real_packets";
    let Some(lab) = Lab::new(test, "ossgps") else {
        return;
    };
    let c = lab.c();
    lab.network("netp", "10.30.0.0/24");
    // The receivers admit anyone, so only port security can refuse.
    lab.group("web", &[&["--ingress", "--remote-ip", "0.0.0.0/0"]]);
    let web = ["--security-group", "web"];
    lab.port("R1", "netp", "com1", &web);
    lab.port("R2", "netp", "com2", &web);
    lab.port("Q", "netp", "com1", &[]);
    lab.port("P", "netp", "com2", &[]);
    c.wait_endpoints_ready();
    let (r1, r2) = (lab.endpoint("R1"), lab.endpoint("R2"));
    let (q, p) = (lab.endpoint("Q"), lab.endpoint("P"));
    let (nested, anywhere) = ("10.30.0.200", "10.30.0.222");
    for e in [&r1, &r2, &q, &p] {
        assert!(
            ![nested, anywhere].contains(&e.ip.to_string().as_str()),
            "{e:?}"
        );
    }
    let _servers = servers(&[&r1, &r2], &[ECHO_PORT]);
    let to_receivers = |from| {
        let mut flows = one_way(from, &r1, &ALL);
        flows.extend(one_way(from, &r2, &ALL));
        flows
    };
    passes_within(
        "Q and P -> R1, R2 from their own addresses",
        READY_BOUND,
        Instant::now(),
        &[to_receivers(&q), to_receivers(&p)].concat(),
    );

    // A nested container in Q's namespace sends from its own address: dropped by port
    // security (the bridge's `spoofed` counter), on Q's node and across.
    send_from(&q, nested);
    let spoofed = counter(c, "bridge", "spoofed");
    refused_throughout(
        &format!("Q from nested {nested} -> R1, R2"),
        &to_receivers(&q),
    );
    let now = counter(c, "bridge", "spoofed");
    assert!(
        now > spoofed,
        "port security dropped them: spoofed {spoofed} -> {now}"
    );

    // The nested address as an allowed address pair of Q: through, port security on.
    lab.run(&[
        "port",
        "set",
        "--allowed-address",
        &format!("ip-address={nested}"),
        "Q",
    ]);
    passes_within(
        &format!("Q from nested {nested} (allowed address pair) -> R1, R2"),
        CHANGE_BOUND,
        Instant::now(),
        &to_receivers(&q),
    );
    let shown = lab.json(&["port", "show", "Q"]);
    assert_eq!(shown["port_security_enabled"], true, "{shown}");
    let pairs = shown["allowed_address_pairs"].to_string();
    assert!(pairs.contains(nested), "{shown}");
    assert_eq!(
        shown["security_group_ids"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    let q_now = lab.endpoint("Q");
    assert!(q_now.port_security, "{q_now:?}");
    assert_eq!(q_now.allowed_address_pairs.len(), 1, "{q_now:?}");

    // On that port only: the same address on P stays refused; Q still passes.
    send_from(&p, nested);
    refused_throughout(
        &format!("P from Q's pair {nested} -> R1, R2"),
        &to_receivers(&p),
    );
    passes_within(
        &format!("Q from {nested} still"),
        CHANGE_BOUND,
        Instant::now(),
        &to_receivers(&q),
    );

    // Port security off (and its groups with it, in one command): P sends from anywhere.
    lab.run(&[
        "port",
        "set",
        "--no-security-group",
        "--disable-port-security",
        "P",
    ]);
    send_from(&p, anywhere);
    passes_within(
        &format!("P (port security off) from {anywhere} -> R2 (its node)"),
        CHANGE_BOUND,
        Instant::now(),
        &one_way(&p, &r2, &ALL),
    );
    // Across nodes, a VXLAN port answers ARP from the fabric's neighbour entries
    // (`neigh_suppress`, nothing flooded), and no node has one for an address only P
    // knows it uses: R1's ARP for it goes unanswered. Given the entry ARP would have
    // made, the data path lets it through (P's class rides VXLAN-GBP; P receives for any
    // address).
    let before = one_way(&p, &r1, &[Proto::Tcp(ECHO_PORT)])[0].passes();
    eprintln!("P from {anywhere} -> R1 (other node) without a neighbour entry: {before}");
    let mac = p.mac.to_string();
    ip(
        &r1.netns,
        &["neigh", "replace", anywhere, "lladdr", &mac, "dev", "weft0"],
    );
    passes_within(
        &format!("P (port security off) from {anywhere} -> R1 (other node, neighbour entry)"),
        CHANGE_BOUND,
        Instant::now(),
        &one_way(&p, &r1, &ALL),
    );
    let shown = lab.json(&["port", "show", "P"]);
    assert_eq!(shown["port_security_enabled"], false, "{shown}");
    assert_eq!(
        shown["security_group_ids"],
        serde_json::json!([]),
        "{shown}"
    );
    let p_now = lab.endpoint("P");
    assert!(
        !p_now.port_security && p_now.security_groups.is_none(),
        "{p_now:?}"
    );
}

#[test]
fn utc_reads_tracing_stamps() {
    let at = |secs: u64, ms: u64| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms)
    };
    assert_eq!(utc("1970-01-02T00:00:01.5Z"), Some(at(86_401, 500)));
    assert_eq!(utc("2000-03-01T00:00:00Z"), Some(at(951_868_800, 0)));
    assert_eq!(
        utc("2026-12-05T18:12:00.992085Z"),
        Some(at(1_796_494_320, 992) + Duration::from_micros(85))
    );
    assert_eq!(utc("yesterday"), None);
    assert_eq!(
        plain("\u{1b}[2m2026-12-05T18:12:00Z\u{1b}[0m x"),
        "2026-12-05T18:12:00Z x"
    );
}
