//! Links, addresses, neighbours and fdb entries of one VRF namespace, as a set of
//! facts. Reconciling = deleting facts that should go, then creating missing ones
//! with commands that are idempotent (`replace`, or `link add` guarded by existence),
//! so a restarted agent converges without tearing anything down.

use crate::desired::{DesiredNode, VrfDesired, subnet_of};
use crate::error::FabricError;
use crate::exec::{Cmd, Program, Runner};
use crate::names;
use crate::nl::{Netlink, NlOp, NlStep};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Variant order is creation order (deletion runs in reverse).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LinkFact {
    /// Bridge `weft-b<vni>` carrying the anycast gateway MAC.
    Bridge { vni: u32, mac: [u8; 6], mtu: u32 },
    /// A gateway address (with its subnet's prefix) on the bridge.
    GatewayAddr { vni: u32, addr: IpNet },
    /// VXLAN-GBP device `weft-x<vni>`, made in the node namespace (its underlay) and
    /// moved into the VRF namespace, as a bridge port without learning.
    Vxlan {
        vni: u32,
        underlay: Ipv4Addr,
        node_netns: Option<String>,
        mtu: u32,
    },
    /// An endpoint's veth: `name` on the bridge, `weft<interface>` in the endpoint
    /// namespace. Only interface 0 has gateways (the default routes).
    Port {
        name: String,
        vni: u32,
        endpoint_netns: String,
        #[serde(default)]
        interface: u8,
        mac: [u8; 6],
        addrs: Vec<IpNet>,
        gateways: Vec<IpAddr>,
        mtu: u32,
    },
    /// Static neighbour on the bridge: routing needs no ARP, and the bridge answers
    /// ARP for remote endpoints itself (neigh_suppress on the VXLAN port).
    Neigh { vni: u32, ip: IpAddr, mac: [u8; 6] },
    /// A remote MAC: bridge fdb to the VXLAN port, VXLAN fdb to the remote node.
    RemoteFdb {
        vni: u32,
        mac: [u8; 6],
        underlay: Ipv4Addr,
    },
}

impl LinkFact {
    pub fn vni(&self) -> u32 {
        match self {
            Self::Bridge { vni, .. }
            | Self::GatewayAddr { vni, .. }
            | Self::Vxlan { vni, .. }
            | Self::Port { vni, .. }
            | Self::Neigh { vni, .. }
            | Self::RemoteFdb { vni, .. } => *vni,
        }
    }
}

/// What one VRF namespace should hold.
pub fn desired_facts(node: &DesiredNode, vrf: &VrfDesired) -> BTreeSet<LinkFact> {
    let mtu = node.overlay_mtu;
    let mut out = BTreeSet::new();
    for bd in &vrf.policy.bridge_domains {
        out.insert(LinkFact::Bridge {
            vni: bd.vni,
            mac: bd.gateway_mac,
            mtu,
        });
        for (net, gw) in &bd.subnets {
            if let Ok(addr) = IpNet::new(*gw, net.prefix_len()) {
                out.insert(LinkFact::GatewayAddr { vni: bd.vni, addr });
            }
        }
        out.insert(LinkFact::Vxlan {
            vni: bd.vni,
            underlay: node.underlay_ip,
            node_netns: node.node_netns.clone(),
            mtu,
        });
    }
    for ep in &vrf.local {
        let Some(bd) = vrf
            .policy
            .bridge_domains
            .iter()
            .find(|b| b.path == ep.bridge_domain)
        else {
            continue; // rejected by validation
        };
        let mut addrs = Vec::new();
        let mut gateways: Vec<IpAddr> = Vec::new();
        for ip in &ep.ips {
            if let Some((net, gw)) = subnet_of(bd, *ip) {
                if let Ok(a) = IpNet::new(*ip, net.prefix_len()) {
                    addrs.push(a);
                }
                // The default route is the first interface's: the others reach their
                // own subnets only (Nova's second network has no gateway route either).
                if ep.interface == 0 && !gateways.iter().any(|g| g.is_ipv4() == gw.is_ipv4()) {
                    gateways.push(gw);
                }
            }
            out.insert(LinkFact::Neigh {
                vni: bd.vni,
                ip: *ip,
                mac: ep.mac,
            });
        }
        for pair in &ep.allowed_pairs {
            out.insert(LinkFact::Neigh {
                vni: bd.vni,
                ip: pair.ip,
                mac: pair.mac.unwrap_or(ep.mac),
            });
        }
        out.insert(LinkFact::Port {
            name: names::port(&ep.name),
            vni: bd.vni,
            endpoint_netns: ep.netns.clone(),
            interface: ep.interface,
            mac: ep.mac,
            addrs,
            gateways,
            mtu,
        });
    }
    for ep in &vrf.remote {
        out.insert(LinkFact::RemoteFdb {
            vni: ep.vni,
            mac: ep.mac,
            underlay: ep.node_underlay,
        });
        for ip in &ep.ips {
            out.insert(LinkFact::Neigh {
                vni: ep.vni,
                ip: *ip,
                mac: ep.mac,
            });
        }
    }
    out
}

/// One command; deletions of things that may already be gone are allowed to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub cmd: Cmd,
    pub may_fail: bool,
}

/// The commands that take `current` (what the namespace holds, as far as known) to
/// `desired`. `existing_links` = interface names present now in the VRF namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkPlan {
    pub steps: Vec<Step>,
    pub created: usize,
    pub deleted: usize,
    /// Namespaces where this plan creates interfaces (the VRF's, each new port's
    /// endpoint's), to be settled after it is applied: see [`LinkApplier::settle`].
    pub settle: BTreeSet<String>,
}

pub fn plan<'a>(
    vrf_ns: &str,
    current: &'a BTreeSet<LinkFact>,
    desired: &'a BTreeSet<LinkFact>,
    existing_links: &HashSet<String>,
) -> LinkPlan {
    let mut p = LinkPlan::default();
    // Whether a fact's interface exists, computed once per interface (not per fact:
    // a VRF holds tens of thousands of neighbours on a handful of bridges).
    let mut exists_cache: HashMap<LinkRef<'a>, bool> = HashMap::new();
    let mut exists = |f: &'a LinkFact| {
        let r = LinkRef::of(f);
        *exists_cache
            .entry(r)
            .or_insert_with(|| existing_links.contains(&r.name()))
    };
    // Interfaces nobody wants (the VRF namespace is weft's: all but `lo` are ours).
    let known: HashSet<String> = current
        .iter()
        .chain(desired.iter())
        .map(LinkRef::of)
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|r| r.name())
        .collect();
    let mut strays: Vec<&String> = existing_links
        .iter()
        .filter(|l| l.starts_with(names::PREFIX) && !known.contains(*l))
        .collect();
    strays.sort();
    for l in strays {
        p.steps
            .push(step(vrf_ns, Program::Ip, &["link", "del", l], true));
        p.deleted += 1;
    }
    // Facts whose interface vanished (e.g. the endpoint's namespace died) are not
    // current. One merge walk over both sorted sets.
    let mut gone: Vec<&LinkFact> = Vec::new();
    let mut missing: Vec<&LinkFact> = Vec::new();
    // In both, but only current if its interface exists and is not recreated.
    let mut kept: Vec<&LinkFact> = Vec::new();
    let (mut c, mut d) = (current.iter().peekable(), desired.iter().peekable());
    loop {
        match (c.peek(), d.peek()) {
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Less => {
                    if exists(x) {
                        gone.push(x);
                    }
                    c.next();
                }
                std::cmp::Ordering::Greater => {
                    missing.push(y);
                    d.next();
                }
                std::cmp::Ordering::Equal => {
                    if exists(x) {
                        kept.push(y);
                    } else {
                        missing.push(y);
                    }
                    c.next();
                    d.next();
                }
            },
            (Some(x), None) => {
                if exists(x) {
                    gone.push(x);
                }
                c.next();
            }
            (None, Some(y)) => {
                missing.push(y);
                d.next();
            }
            (None, None) => break,
        }
    }
    let recreated: HashSet<u32> = gone
        .iter()
        .filter(|f| matches!(f, LinkFact::Bridge { .. } | LinkFact::Vxlan { .. }))
        .map(|f| f.vni())
        .collect();
    for f in gone.iter().rev() {
        p.steps.extend(delete_steps(vrf_ns, f));
        p.deleted += 1;
    }
    // Whatever hung on a recreated bridge/VXLAN device has to be applied again.
    if !recreated.is_empty() {
        missing.extend(kept.iter().filter(|f| recreated.contains(&f.vni())));
        missing.sort();
    }
    for f in missing {
        p.steps.extend(create_steps(vrf_ns, f, existing_links));
        p.created += 1;
        match f {
            LinkFact::Bridge { .. } | LinkFact::Vxlan { .. } => {
                p.settle.insert(vrf_ns.to_string());
            }
            LinkFact::Port { endpoint_netns, .. } => {
                p.settle.insert(vrf_ns.to_string());
                p.settle.insert(endpoint_netns.clone());
            }
            _ => {}
        }
    }
    p
}

/// The interface a fact hangs on, without allocating its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LinkRef<'a> {
    Bridge(u32),
    Vxlan(u32),
    Port(&'a str),
}

impl<'a> LinkRef<'a> {
    fn of(f: &'a LinkFact) -> Self {
        match f {
            LinkFact::Vxlan { vni, .. } | LinkFact::RemoteFdb { vni, .. } => Self::Vxlan(*vni),
            LinkFact::Port { name, .. } => Self::Port(name),
            other => Self::Bridge(other.vni()),
        }
    }

    fn name(self) -> String {
        match self {
            Self::Bridge(vni) => names::bridge(vni),
            Self::Vxlan(vni) => names::vxlan(vni),
            Self::Port(name) => name.to_string(),
        }
    }
}

fn step(ns: &str, program: Program, args: &[&str], may_fail: bool) -> Step {
    Step {
        cmd: Cmd::new(Some(ns), program, args),
        may_fail,
    }
}

fn create_steps(ns: &str, fact: &LinkFact, existing: &HashSet<String>) -> Vec<Step> {
    let mut s = Vec::new();
    let ip = |s: &mut Vec<Step>, args: &[&str]| s.push(step(ns, Program::Ip, args, false));
    match fact {
        LinkFact::Bridge { vni, mac, mtu } => {
            let br = names::bridge(*vni);
            if !existing.contains(&br) {
                ip(&mut s, &["link", "add", &br, "type", "bridge"]);
            }
            let mac = names::mac_to_string(*mac);
            ip(
                &mut s,
                &[
                    "link",
                    "set",
                    &br,
                    "address",
                    &mac,
                    "mtu",
                    &mtu.to_string(),
                    "up",
                ],
            );
        }
        LinkFact::GatewayAddr { vni, addr } => {
            let a = addr.to_string();
            let br = names::bridge(*vni);
            match addr {
                IpNet::V4(_) => ip(&mut s, &["addr", "replace", &a, "dev", &br]),
                IpNet::V6(_) => ip(&mut s, &["addr", "replace", &a, "dev", &br, "nodad"]),
            }
        }
        LinkFact::Vxlan {
            vni,
            underlay,
            node_netns,
            mtu,
        } => {
            let vx = names::vxlan(*vni);
            if !existing.contains(&vx) {
                let node = node_netns.as_deref();
                let on_node = |args: &[&str], may_fail| Step {
                    cmd: Cmd::new(node, Program::Ip, args),
                    may_fail,
                };
                // A leftover from an interrupted run would make `add` fail.
                s.push(on_node(&["link", "del", &vx], true));
                let (id, local, port, mtu) = (
                    vni.to_string(),
                    underlay.to_string(),
                    names::VXLAN_PORT.to_string(),
                    mtu.to_string(),
                );
                // Created straight into the VRF namespace, its underlay socket in the
                // node's: moving a device between namespaces waits for RCU grace
                // periods (~25 ms here).
                s.push(on_node(
                    &[
                        "link",
                        "add",
                        &vx,
                        "netns",
                        ns,
                        "mtu",
                        &mtu,
                        "type",
                        "vxlan",
                        "id",
                        &id,
                        "local",
                        &local,
                        "dstport",
                        &port,
                        "nolearning",
                        "gbp",
                    ],
                    false,
                ));
            }
            let group = names::UPLINK_GROUP.to_string();
            ip(
                &mut s,
                &[
                    "link",
                    "set",
                    &vx,
                    "master",
                    &names::bridge(*vni),
                    "group",
                    &group,
                    "up",
                ],
            );
            s.push(step(
                ns,
                Program::Bridge,
                &[
                    "link",
                    "set",
                    "dev",
                    &vx,
                    "learning",
                    "off",
                    "neigh_suppress",
                    "on",
                ],
                false,
            ));
        }
        LinkFact::Port {
            name,
            vni,
            endpoint_netns,
            interface,
            mac,
            addrs,
            gateways,
            mtu,
        } => {
            let mtu = mtu.to_string();
            let ifname = names::endpoint_ifname(*interface);
            let ifname = ifname.as_str();
            if !existing.contains(name) {
                // The peer of a port that is gone with a deleted VRF namespace lingers
                // until the kernel has destroyed that namespace (asynchronously), and
                // would make `add` fail when the VRF comes back at once.
                s.push(step(
                    endpoint_netns,
                    Program::Ip,
                    &["link", "del", ifname],
                    true,
                ));
                ip(
                    &mut s,
                    &[
                        "link",
                        "add",
                        name,
                        "mtu",
                        &mtu,
                        "type",
                        "veth",
                        "peer",
                        "name",
                        ifname,
                        "mtu",
                        &mtu,
                        "netns",
                        endpoint_netns,
                    ],
                );
            }
            ip(
                &mut s,
                &["link", "set", name, "master", &names::bridge(*vni), "up"],
            );
            let ep = |args: &[&str]| step(endpoint_netns, Program::Ip, args, false);
            let mac = names::mac_to_string(*mac);
            s.push(ep(&["link", "set", ifname, "address", &mac, "up"]));
            for a in addrs {
                let text = a.to_string();
                let mut args = vec!["addr", "replace", &text, "dev", ifname];
                // The control plane hands out unique addresses: without `nodad` an IPv6
                // endpoint could not use its address for the first second or two.
                if matches!(a, IpNet::V6(_)) {
                    args.push("nodad");
                }
                s.push(ep(&args));
            }
            for gw in gateways {
                let g = gw.to_string();
                // The family follows the gateway address (`-4`/`-6` are not batch words).
                s.push(ep(&[
                    "route", "replace", "default", "via", &g, "dev", ifname,
                ]));
            }
        }
        LinkFact::Neigh { vni, ip: addr, mac } => {
            let (a, m) = (addr.to_string(), names::mac_to_string(*mac));
            ip(
                &mut s,
                &[
                    "neigh",
                    "replace",
                    &a,
                    "lladdr",
                    &m,
                    "dev",
                    &names::bridge(*vni),
                    "nud",
                    "permanent",
                ],
            );
        }
        LinkFact::RemoteFdb { vni, mac, underlay } => {
            let (vx, m, u) = (
                names::vxlan(*vni),
                names::mac_to_string(*mac),
                underlay.to_string(),
            );
            s.push(step(
                ns,
                Program::Bridge,
                &["fdb", "replace", &m, "dev", &vx, "master", "static"],
                false,
            ));
            s.push(step(
                ns,
                Program::Bridge,
                &["fdb", "replace", &m, "dev", &vx, "self", "dst", &u],
                false,
            ));
        }
    }
    s
}

fn delete_steps(ns: &str, fact: &LinkFact) -> Vec<Step> {
    match fact {
        LinkFact::Bridge { vni, .. } => vec![step(
            ns,
            Program::Ip,
            &["link", "del", &names::bridge(*vni)],
            true,
        )],
        LinkFact::Vxlan { vni, .. } => vec![step(
            ns,
            Program::Ip,
            &["link", "del", &names::vxlan(*vni)],
            true,
        )],
        LinkFact::Port { name, .. } => vec![step(ns, Program::Ip, &["link", "del", name], true)],
        LinkFact::GatewayAddr { vni, addr } => {
            vec![step(
                ns,
                Program::Ip,
                &[
                    "addr",
                    "del",
                    &addr.to_string(),
                    "dev",
                    &names::bridge(*vni),
                ],
                true,
            )]
        }
        LinkFact::Neigh { vni, ip, .. } => {
            vec![step(
                ns,
                Program::Ip,
                &["neigh", "del", &ip.to_string(), "dev", &names::bridge(*vni)],
                true,
            )]
        }
        LinkFact::RemoteFdb { vni, mac, underlay } => {
            let (vx, m, u) = (
                names::vxlan(*vni),
                names::mac_to_string(*mac),
                underlay.to_string(),
            );
            vec![
                step(
                    ns,
                    Program::Bridge,
                    &["fdb", "del", &m, "dev", &vx, "master"],
                    true,
                ),
                step(
                    ns,
                    Program::Bridge,
                    &["fdb", "del", &m, "dev", &vx, "self", "dst", &u],
                    true,
                ),
            ]
        }
    }
}

/// Runs plans. With a netlink backend (the default on a real system), every command
/// [`NlOp::parse`] knows becomes a netlink request, one batch (thread + connection) per
/// run of consecutive steps in one namespace. Otherwise, consecutive commands of one
/// tool in one namespace go through a single `-batch -` invocation (one process for
/// thousands of neighbours).
#[derive(Debug, Clone)]
pub struct LinkApplier {
    runner: Arc<dyn Runner>,
    netlink: Option<Arc<dyn Netlink>>,
}

impl LinkApplier {
    /// Uses the netlink backend that comes with `runner`, if any.
    pub fn new(runner: Arc<dyn Runner>) -> Self {
        let netlink = runner.netlink();
        Self { runner, netlink }
    }

    /// Link operations through `netlink` (what it cannot do through `runner`).
    pub fn with_netlink(runner: Arc<dyn Runner>, netlink: Arc<dyn Netlink>) -> Self {
        Self {
            runner,
            netlink: Some(netlink),
        }
    }

    pub fn uses_netlink(&self) -> bool {
        self.netlink.is_some()
    }

    /// Interface names in a namespace.
    pub fn links(&self, netns: &str) -> Result<HashSet<String>, FabricError> {
        if let Some(nl) = &self.netlink {
            return Ok(nl.links(netns)?.into_iter().map(|l| l.name).collect());
        }
        let out = self
            .runner
            .run(&Cmd::new(Some(netns), Program::Ip, &["-j", "link", "show"]))?;
        parse_link_names(netns, &out)
    }

    /// Names of the VXLAN devices in a namespace (none if it cannot be listed).
    pub fn vxlan_devices(&self, netns: &str) -> Vec<String> {
        if let Some(nl) = &self.netlink {
            return nl
                .links(netns)
                .map(|l| l.into_iter().filter(|l| l.vxlan).map(|l| l.name).collect())
                .unwrap_or_default();
        }
        self.runner
            .run(&Cmd::new(
                Some(netns),
                Program::Ip,
                &["-j", "link", "show", "type", "vxlan"],
            ))
            .ok()
            .and_then(|out| parse_link_names(netns, &out).ok())
            .map(|n| {
                let mut v: Vec<String> = n.into_iter().collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    }

    /// Deletes interfaces of a namespace, in order; the first failure is returned.
    pub fn delete_links(&self, netns: &str, names: &[String]) -> Result<(), FabricError> {
        let plan = LinkPlan {
            steps: names
                .iter()
                .map(|n| step(netns, Program::Ip, &["link", "del", n], false))
                .collect(),
            ..Default::default()
        };
        self.apply(&plan)
    }

    pub fn apply(&self, plan: &LinkPlan) -> Result<(), FabricError> {
        let ops: Vec<Option<NlOp>> = match &self.netlink {
            Some(_) => plan.steps.iter().map(|s| NlOp::parse(&s.cmd)).collect(),
            None => vec![None; plan.steps.len()],
        };
        let mut i = 0;
        while i < plan.steps.len() {
            let first = &plan.steps[i];
            if let (Some(nl), Some(_)) = (&self.netlink, &ops[i]) {
                let mut batch = Vec::new();
                let mut j = i;
                while j < plan.steps.len() && plan.steps[j].cmd.netns == first.cmd.netns {
                    let Some(op) = &ops[j] else { break };
                    batch.push(NlStep {
                        op: op.clone(),
                        label: plan.steps[j].cmd.to_string(),
                        may_fail: plan.steps[j].may_fail,
                    });
                    j += 1;
                }
                nl.apply(first.cmd.netns.as_deref(), &batch)?;
                i = j;
                continue;
            }
            if first.may_fail {
                if let Err(e) = self.runner.run(&first.cmd) {
                    tracing::debug!(error = %e, "tolerated failure");
                }
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < plan.steps.len()
                && ops[j].is_none()
                && !plan.steps[j].may_fail
                && plan.steps[j].cmd.program == first.cmd.program
                && plan.steps[j].cmd.netns == first.cmd.netns
            {
                j += 1;
            }
            if j == i + 1 {
                self.runner.run(&first.cmd)?;
            } else {
                let lines: Vec<String> = plan.steps[i..j]
                    .iter()
                    .map(|s| s.cmd.args.join(" "))
                    .collect();
                let mut batch = Cmd::new(
                    first.cmd.netns.as_deref(),
                    first.cmd.program,
                    &["-batch", "-"],
                );
                batch.stdin = Some(lines.join("\n") + "\n");
                self.runner.run(&batch)?;
            }
            i = j;
        }
        Ok(())
    }
}

/// How long [`LinkApplier::settle`] waits for new interfaces to come up before it goes
/// on (with a warning): the kernel's link watch normally takes microseconds to a few
/// milliseconds, longer only on a starved machine.
pub const SETTLE_BOUND: Duration = Duration::from_secs(2);

impl LinkApplier {
    /// Waits until no interface of `netns` has its carrier on while the kernel still
    /// counts it down: between the two, the kernel's link watch (a worker thread) has
    /// not yet attached the device's queue nor moved the bridge port to forwarding, so
    /// the first packets of a brand-new endpoint (its ARP, its SYN) are dropped and a
    /// client waits out a retransmission. Bounded by [`SETTLE_BOUND`]; how long it took.
    pub fn settle(&self, netns: &BTreeSet<String>) -> Duration {
        let started = Instant::now();
        for ns in netns {
            loop {
                let pending = match self.carrier_pending(ns) {
                    Ok(pending) => pending,
                    Err(e) => {
                        tracing::debug!(netns = %ns, error = %e, "cannot list links to settle");
                        break;
                    }
                };
                if pending.is_empty() {
                    break;
                }
                if started.elapsed() > SETTLE_BOUND {
                    tracing::warn!(netns = %ns, links = ?pending, bound = ?SETTLE_BOUND,
                        "new links still not operationally up; going on");
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        started.elapsed()
    }

    /// Interfaces of `netns` that are up, have a carrier, and are not yet operational.
    fn carrier_pending(&self, netns: &str) -> Result<Vec<String>, FabricError> {
        if let Some(nl) = &self.netlink {
            return Ok(nl
                .links(netns)?
                .into_iter()
                .filter(|l| l.carrier_pending)
                .map(|l| l.name)
                .collect());
        }
        let out = self
            .runner
            .run(&Cmd::new(Some(netns), Program::Ip, &["-j", "link", "show"]))?;
        Ok(parse_carrier_pending(&out))
    }
}

/// [`LinkApplier::carrier_pending`] from `ip -j link show`: flags hold `UP` and
/// `LOWER_UP` while `operstate` is still `DOWN`.
fn parse_carrier_pending(out: &str) -> Vec<String> {
    let Ok(serde_json::Value::Array(links)) = serde_json::from_str(out) else {
        return Vec::new();
    };
    links
        .iter()
        .filter(|l| {
            let flags: Vec<&str> = l["flags"]
                .as_array()
                .map(|f| f.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            flags.contains(&"UP") && flags.contains(&"LOWER_UP") && l["operstate"] == "DOWN"
        })
        .filter_map(|l| l["ifname"].as_str().map(String::from))
        .collect()
}

fn parse_link_names(netns: &str, out: &str) -> Result<HashSet<String>, FabricError> {
    let v: serde_json::Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { out })
        .map_err(|e| FabricError::Command {
            netns: netns.into(),
            command: "ip -j link show".into(),
            stderr: format!("unparseable output: {e}"),
        })?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.get("ifname")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, endpoint_netns: &str) -> LinkFact {
        LinkFact::Port {
            name: name.into(),
            vni: 7,
            endpoint_netns: endpoint_netns.into(),
            interface: 0,
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec!["10.1.0.11/24".parse().expect("net")],
            gateways: vec!["10.1.0.1".parse().expect("ip")],
            mtu: 1450,
        }
    }

    #[test]
    fn a_plan_settles_the_namespaces_of_the_interfaces_it_creates() {
        let bridge = LinkFact::Bridge {
            vni: 7,
            mac: [2, 0, 0, 0, 0, 9],
            mtu: 1450,
        };
        let neigh = LinkFact::Neigh {
            vni: 7,
            ip: "10.1.0.22".parse().expect("ip"),
            mac: [2, 0, 0, 0, 0, 2],
        };
        let existing: HashSet<String> = ["weft-b7".to_string()].into();
        let current: BTreeSet<LinkFact> = [bridge.clone()].into();
        // A new port: its VRF and its endpoint's namespace.
        let desired: BTreeSet<LinkFact> = [bridge.clone(), port("weft-p1", "weft-ep-1")].into();
        let p = plan("weft-vrf", &current, &desired, &existing);
        assert_eq!(p.created, 1);
        assert_eq!(
            p.settle,
            ["weft-ep-1".to_string(), "weft-vrf".to_string()].into()
        );
        // A neighbour alone creates no interface: nothing to settle.
        let desired: BTreeSet<LinkFact> = [bridge, neigh].into();
        let p = plan("weft-vrf", &current, &desired, &existing);
        assert_eq!(p.created, 1);
        assert!(p.settle.is_empty(), "{:?}", p.settle);
    }

    #[test]
    fn carrier_pending_is_up_with_carrier_and_operstate_down() {
        let out = r#"[
            {"ifname": "lo", "flags": ["LOOPBACK","UP","LOWER_UP"], "operstate": "UNKNOWN"},
            {"ifname": "weft-p1", "flags": ["BROADCAST","UP","LOWER_UP"], "operstate": "DOWN"},
            {"ifname": "weft-p2", "flags": ["BROADCAST","UP","LOWER_UP"], "operstate": "UP"},
            {"ifname": "weft-p3", "flags": ["NO-CARRIER","BROADCAST","UP"], "operstate": "DOWN"},
            {"ifname": "weft-p4", "flags": ["BROADCAST"], "operstate": "DOWN"}
        ]"#;
        assert_eq!(parse_carrier_pending(out), vec!["weft-p1".to_string()]);
        assert!(parse_carrier_pending("not json").is_empty());
    }
}
