//! The link operations of a plan over rtnetlink instead of `ip`/`bridge` processes.
//!
//! The planner ([`crate::link::plan`]) still speaks in `ip`/`bridge` commands (that is
//! what the fakes record and what errors show); [`NlOp::parse`] maps each command
//! shape the planner emits onto one netlink request, and a command it does not know
//! stays on the `ip`/`bridge` path. Everything the reconcile path emits is covered
//! (unit-tested below), VXLAN-GBP and the bridge-port flags included.
//!
//! Threads and sockets: a batch for one namespace runs on a short-lived thread that
//! has `setns`-ed into it (see [`crate::netns::in_netns`]), with its own current-thread
//! tokio runtime and rtnetlink connection. When the batch ends, the runtime, the
//! connection and its socket are dropped with the thread, so no socket outlives the
//! batch and nothing keeps a namespace (or the VNIs of its VXLAN devices) alive after
//! its mount is gone. Namespaces are never created by rtnetlink
//! (`NetworkNamespace::add` forks): see [`crate::netns`].
//!
//! `WEFT_FABRIC_LINKS=ip` selects the old `ip`/`bridge` path for everything.

use crate::error::FabricError;
use crate::exec::{Cmd, Program};
use crate::names;
use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, State,
};
use netlink_packet_route::neighbour::{NeighbourFlags, NeighbourState};
use netlink_packet_route::route::RouteProtocol;
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder,
};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::sync::Mutex;

/// `NUD_*` values as `bridge fdb` sends them.
const NUD_REACHABLE: u16 = 0x02;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;

/// Whether link operations go through netlink (the default) or `ip`/`bridge`
/// (`WEFT_FABRIC_LINKS=ip`).
pub fn selected() -> bool {
    std::env::var("WEFT_FABRIC_LINKS").map_or(true, |v| v.trim() != "ip")
}

/// One netlink request; the planner's command it stands for is kept for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NlOp {
    LinkDel {
        name: String,
    },
    BridgeAdd {
        name: String,
    },
    /// `ip link set NAME [address MAC] [mtu MTU] [master BR] [group N] [netns NS] [up]`.
    LinkSet {
        name: String,
        mac: Option<[u8; 6]>,
        mtu: Option<u32>,
        master: Option<String>,
        group: Option<u32>,
        netns: Option<String>,
        up: bool,
    },
    /// `ip link add NAME netns NS mtu MTU type vxlan id VNI local IP dstport PORT
    /// nolearning gbp`: created in `NS`, its underlay socket where the request runs.
    VxlanAdd {
        name: String,
        netns: String,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
        mtu: u32,
    },
    /// `ip link add NAME mtu MTU type veth peer name PEER mtu MTU netns NS`.
    VethAdd {
        name: String,
        peer: String,
        mtu: u32,
        peer_netns: String,
    },
    /// `bridge link set dev NAME learning off neigh_suppress on`.
    BridgePort {
        name: String,
        learning: bool,
        neigh_suppress: bool,
    },
    AddrReplace {
        dev: String,
        addr: IpNet,
        nodad: bool,
    },
    AddrDel {
        dev: String,
        addr: IpNet,
    },
    RouteReplaceDefault {
        via: IpAddr,
        dev: String,
    },
    NeighReplace {
        dev: String,
        ip: IpAddr,
        mac: [u8; 6],
    },
    NeighDel {
        dev: String,
        ip: IpAddr,
    },
    /// `bridge fdb replace|del MAC dev DEV (master [static] | self [dst IP])`.
    Fdb {
        del: bool,
        dev: String,
        mac: [u8; 6],
        master: bool,
        dst: Option<Ipv4Addr>,
    },
}

impl NlOp {
    /// The netlink request for one of the planner's commands; `None` = not ported
    /// (it runs through `ip`/`bridge`).
    pub fn parse(cmd: &Cmd) -> Option<Self> {
        if cmd.stdin.is_some() {
            return None;
        }
        let a: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let s = |x: &str| x.to_string();
        match (cmd.program, a.as_slice()) {
            (Program::Ip, ["link", "del", name]) => Some(Self::LinkDel { name: s(name) }),
            (Program::Ip, ["link", "add", name, "type", "bridge"]) => {
                Some(Self::BridgeAdd { name: s(name) })
            }
            (Program::Ip, ["link", "set", name, rest @ ..]) => {
                let (mut m, mut mtu, mut master, mut group, mut netns, mut up) =
                    (None, None, None, None, None, false);
                let mut it = rest.iter();
                while let Some(k) = it.next() {
                    match *k {
                        "up" => up = true,
                        "address" => m = Some(names::mac_from_str(it.next()?)?),
                        "mtu" => mtu = Some(it.next()?.parse().ok()?),
                        "master" => master = Some(s(it.next()?)),
                        "group" => group = Some(it.next()?.parse().ok()?),
                        "netns" => netns = Some(s(it.next()?)),
                        _ => return None,
                    }
                }
                Some(Self::LinkSet {
                    name: s(name),
                    mac: m,
                    mtu,
                    master,
                    group,
                    netns,
                    up,
                })
            }
            (
                Program::Ip,
                [
                    "link",
                    "add",
                    name,
                    "netns",
                    netns,
                    "mtu",
                    mtu,
                    "type",
                    "vxlan",
                    "id",
                    id,
                    "local",
                    local,
                    "dstport",
                    port,
                    "nolearning",
                    "gbp",
                ],
            ) => Some(Self::VxlanAdd {
                name: s(name),
                netns: s(netns),
                vni: id.parse().ok()?,
                local: local.parse().ok()?,
                port: port.parse().ok()?,
                mtu: mtu.parse().ok()?,
            }),
            (
                Program::Ip,
                [
                    "link",
                    "add",
                    name,
                    "mtu",
                    mtu,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    peer,
                    "mtu",
                    peer_mtu,
                    "netns",
                    ns,
                ],
            ) if mtu == peer_mtu => Some(Self::VethAdd {
                name: s(name),
                peer: s(peer),
                mtu: mtu.parse().ok()?,
                peer_netns: s(ns),
            }),
            (Program::Ip, ["addr", "replace", addr, "dev", dev, rest @ ..]) => {
                let nodad = match rest {
                    [] => false,
                    ["nodad"] => true,
                    _ => return None,
                };
                Some(Self::AddrReplace {
                    dev: s(dev),
                    addr: addr.parse().ok()?,
                    nodad,
                })
            }
            (Program::Ip, ["addr", "del", addr, "dev", dev]) => Some(Self::AddrDel {
                dev: s(dev),
                addr: addr.parse().ok()?,
            }),
            (Program::Ip, ["route", "replace", "default", "via", via, "dev", dev]) => {
                Some(Self::RouteReplaceDefault {
                    via: via.parse().ok()?,
                    dev: s(dev),
                })
            }
            (
                Program::Ip,
                [
                    "neigh",
                    "replace",
                    ip,
                    "lladdr",
                    m,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ],
            ) => Some(Self::NeighReplace {
                dev: s(dev),
                ip: ip.parse().ok()?,
                mac: names::mac_from_str(m)?,
            }),
            (Program::Ip, ["neigh", "del", ip, "dev", dev]) => Some(Self::NeighDel {
                dev: s(dev),
                ip: ip.parse().ok()?,
            }),
            (
                Program::Bridge,
                [
                    "link",
                    "set",
                    "dev",
                    name,
                    "learning",
                    learning,
                    "neigh_suppress",
                    suppress,
                ],
            ) => {
                let onoff = |v: &str| match v {
                    "on" => Some(true),
                    "off" => Some(false),
                    _ => None,
                };
                Some(Self::BridgePort {
                    name: s(name),
                    learning: onoff(learning)?,
                    neigh_suppress: onoff(suppress)?,
                })
            }
            (Program::Bridge, ["fdb", verb, m, "dev", dev, rest @ ..]) => {
                let del = match *verb {
                    "replace" => false,
                    "del" => true,
                    _ => return None,
                };
                let (master, dst) = match rest {
                    ["master", "static"] if !del => (true, None),
                    ["master"] if del => (true, None),
                    ["self", "dst", ip] => (false, Some(ip.parse().ok()?)),
                    _ => return None,
                };
                Some(Self::Fdb {
                    del,
                    dev: s(dev),
                    mac: names::mac_from_str(m)?,
                    master,
                    dst,
                })
            }
            _ => None,
        }
    }
}

/// One request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlStep {
    pub op: NlOp,
    /// The command it replaces, for messages.
    pub label: String,
    /// A deletion of something that may already be gone.
    pub may_fail: bool,
}

/// An interface as listed in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlLink {
    pub name: String,
    pub vxlan: bool,
    /// Up with its carrier on, but not yet operational (operstate still down): the
    /// kernel's link watch has not run for it yet.
    pub carrier_pending: bool,
}

/// Netlink in a namespace, faked in unit tests.
pub trait Netlink: Send + Sync + fmt::Debug {
    /// Runs `steps` in order inside `netns` (`None` = the agent's own namespace); stops
    /// at the first failure of a step that may not fail.
    fn apply(&self, netns: Option<&str>, steps: &[NlStep]) -> Result<(), FabricError>;
    /// The interfaces of `netns`.
    fn links(&self, netns: &str) -> Result<Vec<NlLink>, FabricError>;
}

/// The real thing: rtnetlink on a short-lived thread inside the namespace.
#[derive(Debug, Default, Clone, Copy)]
pub struct RtNetlink;

fn ns_label(netns: Option<&str>) -> String {
    netns.unwrap_or("(own)").to_string()
}

/// Runs `f` with a fresh connection on the calling thread (which must not be inside
/// a tokio runtime); the connection and its socket are gone when this returns.
fn block_on_handle<T, F, Fut>(label: &str, f: F) -> Result<T, FabricError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: std::future::Future<Output = Result<T, FabricError>>,
{
    let fail = |e: std::io::Error| FabricError::netns(label, "netlink", e);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(fail)?;
    rt.block_on(async move {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(fail)?;
        let conn = tokio::spawn(conn);
        let out = f(handle).await;
        conn.abort();
        out
    })
}

/// [`block_on_handle`] on a new thread inside `netns` (`None`: the agent's own).
fn with_handle<T, F, Fut>(netns: Option<&str>, f: F) -> Result<T, FabricError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, FabricError>>,
{
    let label = ns_label(netns);
    let work = move || block_on_handle(&label, f);
    match netns {
        Some(ns) => crate::netns::in_netns(ns, work)?,
        None => std::thread::Builder::new()
            .name("netlink-own".into())
            .spawn(work)
            .map_err(|e| FabricError::netns("(own)", "spawn thread", e))?
            .join()
            .map_err(|_| {
                FabricError::netns("(own)", "thread", std::io::Error::other("panicked"))
            })?,
    }
}

impl Netlink for RtNetlink {
    fn apply(&self, netns: Option<&str>, steps: &[NlStep]) -> Result<(), FabricError> {
        let steps = steps.to_vec();
        let label = ns_label(netns);
        with_handle(netns, move |handle| async move {
            let mut idx = Indexes::default();
            for step in &steps {
                match run(&handle, &mut idx, &step.op).await {
                    Ok(()) => {}
                    Err(e) if step.may_fail => {
                        tracing::debug!(command = %step.label, error = %e, "tolerated failure");
                    }
                    Err(e) => {
                        return Err(FabricError::Command {
                            netns: label.clone(),
                            command: step.label.clone(),
                            stderr: format!("netlink: {e}"),
                        });
                    }
                }
            }
            Ok(())
        })
    }

    fn links(&self, netns: &str) -> Result<Vec<NlLink>, FabricError> {
        let label = netns.to_string();
        with_handle(Some(netns), move |handle| async move {
            let mut out = Vec::new();
            let mut dump = handle.link().get().execute();
            while let Some(msg) = dump.try_next().await.map_err(|e| FabricError::Command {
                netns: label.clone(),
                command: "ip -j link show".into(),
                stderr: format!("netlink: {e}"),
            })? {
                let mut name = None;
                let mut vxlan = false;
                let mut oper_down = false;
                for attr in &msg.attributes {
                    match attr {
                        LinkAttribute::IfName(n) => name = Some(n.clone()),
                        LinkAttribute::OperState(state) => oper_down = *state == State::Down,
                        LinkAttribute::LinkInfo(infos) => {
                            vxlan = infos
                                .iter()
                                .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vxlan)));
                        }
                        _ => {}
                    }
                }
                let flags = msg.header.flags;
                let carrier_pending = oper_down
                    && flags.contains(LinkFlags::Up)
                    && flags.contains(LinkFlags::LowerUp);
                if let Some(name) = name {
                    out.push(NlLink {
                        name,
                        vxlan,
                        carrier_pending,
                    });
                }
            }
            Ok(out)
        })
    }
}

/// Sets `lo` up in the calling thread's namespace (a thread that entered it, outside
/// any tokio runtime).
pub fn loopback_up() -> Result<(), FabricError> {
    block_on_handle("(current)", |handle| async move {
        // `lo` is always index 1.
        handle
            .link()
            .change(LinkUnspec::new_with_index(1).up().build())
            .execute()
            .await
            .map_err(|e| FabricError::Command {
                netns: "(current)".into(),
                command: "ip link set lo up".into(),
                stderr: format!("netlink: {e}"),
            })
    })
}

/// Interface indexes by name, resolved once per batch and name.
#[derive(Debug, Default)]
struct Indexes(HashMap<String, u32>);

#[derive(Debug)]
enum RunError {
    Netlink(rtnetlink::Error),
    NoDevice(String),
    Io(std::io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Netlink(e) => write!(f, "{e}"),
            Self::NoDevice(n) => write!(f, "cannot find device {n:?}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<rtnetlink::Error> for RunError {
    fn from(e: rtnetlink::Error) -> Self {
        Self::Netlink(e)
    }
}

impl Indexes {
    async fn get(&mut self, handle: &Handle, name: &str) -> Result<u32, RunError> {
        if let Some(i) = self.0.get(name) {
            return Ok(*i);
        }
        let mut req = handle.link().get().match_name(name.to_string()).execute();
        let found = match req.try_next().await {
            Ok(Some(msg)) => msg.header.index,
            Ok(None) | Err(_) => return Err(RunError::NoDevice(name.to_string())),
        };
        self.0.insert(name.to_string(), found);
        Ok(found)
    }

    fn forget(&mut self, name: &str) {
        self.0.remove(name);
    }
}

fn open_netns(name: &str) -> Result<File, RunError> {
    File::open(crate::netns::path(name)).map_err(RunError::Io)
}

fn fdb_state(master: bool) -> NeighbourState {
    // As `bridge fdb`: `master static` = NOARP|REACHABLE; `self` without a state
    // word = NOARP|PERMANENT.
    NeighbourState::Other(if master {
        NUD_NOARP | NUD_REACHABLE
    } else {
        NUD_NOARP | NUD_PERMANENT
    })
}

async fn run(handle: &Handle, idx: &mut Indexes, op: &NlOp) -> Result<(), RunError> {
    match op {
        NlOp::LinkDel { name } => {
            let i = idx.get(handle, name).await?;
            idx.forget(name);
            handle.link().del(i).execute().await?;
        }
        NlOp::BridgeAdd { name } => {
            handle
                .link()
                .add(LinkBridge::new(name).build())
                .execute()
                .await?;
        }
        NlOp::LinkSet {
            name,
            mac,
            mtu,
            master,
            group,
            netns,
            up,
        } => {
            let i = idx.get(handle, name).await?;
            let mut b = LinkUnspec::new_with_index(i);
            if let Some(g) = group {
                b = b.append_extra_attribute(LinkAttribute::Group(*g));
            }
            if let Some(m) = mac {
                b = b.address(m.to_vec());
            }
            if let Some(m) = mtu {
                b = b.mtu(*m);
            }
            if let Some(br) = master {
                b = b.controller(idx.get(handle, br).await?);
            }
            let file = match netns {
                Some(ns) => Some(open_netns(ns)?),
                None => None,
            };
            if let Some(f) = &file {
                b = b.setns_by_fd(f.as_raw_fd());
                idx.forget(name);
            }
            // Up in a second request: the kernel derives the IPv6 link-local address
            // when the link comes up, which must see the new MAC (as with `ip`).
            let up_too = *up && mac.is_none();
            if up_too {
                b = b.up();
            }
            handle.link().change(b.build()).execute().await?;
            drop(file);
            if *up && !up_too {
                let i = idx.get(handle, name).await?;
                let msg = LinkUnspec::new_with_index(i).up().build();
                handle.link().change(msg).execute().await?;
            }
        }
        NlOp::VxlanAdd {
            name,
            netns,
            vni,
            local,
            port,
            mtu,
        } => {
            let file = open_netns(netns)?;
            let msg = LinkVxlan::new(name, *vni)
                .mtu(*mtu)
                .local(*local)
                .port(*port)
                .learning(false)
                .gbp()
                .setns_by_fd(file.as_raw_fd())
                .build();
            handle.link().add(msg).execute().await?;
            drop(file);
        }
        NlOp::VethAdd {
            name,
            peer,
            mtu,
            peer_netns,
        } => {
            let file = open_netns(peer_netns)?;
            let peer_msg = LinkUnspec::new_with_name(peer)
                .mtu(*mtu)
                .setns_by_fd(file.as_raw_fd())
                .build();
            let msg = LinkVeth::new(name, peer)
                .mtu(*mtu)
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
                .build();
            handle.link().add(msg).execute().await?;
            drop(file);
        }
        NlOp::BridgePort {
            name,
            learning,
            neigh_suppress,
        } => {
            let i = idx.get(handle, name).await?;
            let msg = LinkBridgePort::new(i)
                .learning(*learning)
                .neigh_suppress(*neigh_suppress)
                .build();
            handle.link().set_port(msg).execute().await?;
        }
        NlOp::AddrReplace { dev, addr, nodad } => {
            let i = idx.get(handle, dev).await?;
            let mut req = handle
                .address()
                .add(i, addr.addr(), addr.prefix_len())
                .replace();
            // As `ip addr replace` without `brd`: no broadcast address.
            req.message_mut()
                .attributes
                .retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
            if *nodad {
                let m = req.message_mut();
                m.header.flags |= AddressHeaderFlags::Nodad;
                m.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            req.execute().await?;
        }
        NlOp::AddrDel { dev, addr } => {
            let i = idx.get(handle, dev).await?;
            let mut req = handle.address().add(i, addr.addr(), addr.prefix_len());
            let msg = req.message_mut().clone();
            handle.address().del(msg).execute().await?;
        }
        NlOp::RouteReplaceDefault { via, dev } => {
            let i = idx.get(handle, dev).await?;
            let msg = match via {
                IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(*g)
                    .output_interface(i)
                    .protocol(RouteProtocol::Boot)
                    .build(),
                IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new()
                    .gateway(*g)
                    .output_interface(i)
                    .protocol(RouteProtocol::Boot)
                    .build(),
            };
            handle.route().add(msg).replace().execute().await?;
        }
        NlOp::NeighReplace { dev, ip, mac } => {
            let i = idx.get(handle, dev).await?;
            handle
                .neighbours()
                .add(i, *ip)
                .link_layer_address(mac)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await?;
        }
        NlOp::NeighDel { dev, ip } => {
            let i = idx.get(handle, dev).await?;
            let mut req = handle.neighbours().add(i, *ip);
            let msg = req.message_mut().clone();
            handle.neighbours().del(msg).execute().await?;
        }
        NlOp::Fdb {
            del,
            dev,
            mac,
            master,
            dst,
        } => {
            let i = idx.get(handle, dev).await?;
            let mut req = handle
                .neighbours()
                .add_bridge(i, mac)
                .state(fdb_state(*master))
                .flags(if *master {
                    NeighbourFlags::Controller
                } else {
                    NeighbourFlags::Own
                })
                .replace();
            if let Some(d) = dst {
                req = req.destination(IpAddr::V4(*d));
            }
            if *del {
                let msg = req.message_mut().clone();
                handle.neighbours().del(msg).execute().await?;
            } else {
                req.execute().await?;
            }
        }
    }
    Ok(())
}

/// Records batches instead of running them; lists canned links.
#[derive(Debug, Default)]
pub struct FakeNetlink {
    pub log: Mutex<Vec<(Option<String>, NlStep)>>,
    pub listed: Mutex<HashMap<String, Vec<NlLink>>>,
}

impl FakeNetlink {
    pub fn steps(&self) -> Vec<(Option<String>, NlStep)> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Netlink for FakeNetlink {
    fn apply(&self, netns: Option<&str>, steps: &[NlStep]) -> Result<(), FabricError> {
        if let Ok(mut l) = self.log.lock() {
            l.extend(steps.iter().map(|s| (netns.map(str::to_string), s.clone())));
        }
        Ok(())
    }

    fn links(&self, netns: &str) -> Result<Vec<NlLink>, FabricError> {
        Ok(self
            .listed
            .lock()
            .ok()
            .and_then(|l| l.get(netns).cloned())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::FakeRunner;
    use crate::link::{LinkApplier, LinkFact, plan};
    use std::collections::{BTreeSet, HashSet};
    use std::sync::Arc;

    fn facts() -> BTreeSet<LinkFact> {
        BTreeSet::from([
            LinkFact::Bridge {
                vni: 70,
                mac: [2, 0x77, 0, 0, 0, 70],
                mtu: 1450,
            },
            LinkFact::GatewayAddr {
                vni: 70,
                addr: "10.1.0.1/24".parse().expect("net"),
            },
            LinkFact::GatewayAddr {
                vni: 70,
                addr: "fd00::1/64".parse().expect("net"),
            },
            LinkFact::Vxlan {
                vni: 70,
                underlay: Ipv4Addr::new(10, 255, 0, 1),
                node_netns: Some("weft-n1".into()),
                mtu: 1450,
            },
            LinkFact::Port {
                name: "weft-pa".into(),
                vni: 70,
                endpoint_netns: "weft-ep-a".into(),
                interface: 0,
                mac: [2, 0, 0, 0, 0, 1],
                addrs: vec![
                    "10.1.0.10/24".parse().expect("net"),
                    "fd00::10/64".parse().expect("net"),
                ],
                gateways: vec![
                    "10.1.0.1".parse().expect("ip"),
                    "fd00::1".parse().expect("ip"),
                ],
                mtu: 1450,
            },
            LinkFact::Neigh {
                vni: 70,
                ip: "10.1.0.20".parse().expect("ip"),
                mac: [2, 0, 0, 0, 0, 2],
            },
            LinkFact::RemoteFdb {
                vni: 70,
                mac: [2, 0, 0, 0, 0, 2],
                underlay: Ipv4Addr::new(10, 255, 0, 2),
            },
        ])
    }

    #[test]
    fn every_command_of_the_reconcile_path_has_a_netlink_request() {
        let all = facts();
        let none = BTreeSet::new();
        let create = plan("weft-n1-v7", &none, &all, &HashSet::new());
        // Deleting everything that exists, strays included.
        let existing: HashSet<String> = ["weft-b70", "weft-x70", "weft-pa", "weft-stray"]
            .map(String::from)
            .into();
        let delete = plan("weft-n1-v7", &all, &none, &existing);
        for s in create.steps.iter().chain(&delete.steps) {
            assert!(NlOp::parse(&s.cmd).is_some(), "not ported: {}", s.cmd);
        }
        let ops: Vec<NlOp> = create
            .steps
            .iter()
            .filter_map(|s| NlOp::parse(&s.cmd))
            .collect();
        assert!(ops.contains(&NlOp::VxlanAdd {
            name: "weft-x70".into(),
            netns: "weft-n1-v7".into(),
            vni: 70,
            local: Ipv4Addr::new(10, 255, 0, 1),
            port: crate::names::VXLAN_PORT,
            mtu: 1450,
        }));
        assert!(ops.contains(&NlOp::LinkSet {
            name: "weft-x70".into(),
            mac: None,
            mtu: None,
            master: Some("weft-b70".into()),
            group: Some(crate::names::UPLINK_GROUP),
            netns: None,
            up: true,
        }));
        assert!(ops.contains(&NlOp::BridgePort {
            name: "weft-x70".into(),
            learning: false,
            neigh_suppress: true,
        }));
        assert!(ops.contains(&NlOp::VethAdd {
            name: "weft-pa".into(),
            peer: crate::names::ENDPOINT_IFNAME.into(),
            mtu: 1450,
            peer_netns: "weft-ep-a".into(),
        }));
        assert!(ops.contains(&NlOp::Fdb {
            del: false,
            dev: "weft-x70".into(),
            mac: [2, 0, 0, 0, 0, 2],
            master: false,
            dst: Some(Ipv4Addr::new(10, 255, 0, 2)),
        }));
        assert!(ops.contains(&NlOp::AddrReplace {
            dev: "weft-b70".into(),
            addr: "fd00::1/64".parse().expect("net"),
            nodad: true,
        }));
        // An endpoint's IPv6 address is usable at once (no DAD), its IPv4 one as ever.
        assert!(ops.contains(&NlOp::AddrReplace {
            dev: crate::names::ENDPOINT_IFNAME.into(),
            addr: "fd00::10/64".parse().expect("net"),
            nodad: true,
        }));
        assert!(ops.contains(&NlOp::AddrReplace {
            dev: crate::names::ENDPOINT_IFNAME.into(),
            addr: "10.1.0.10/24".parse().expect("net"),
            nodad: false,
        }));
    }

    #[test]
    fn unknown_commands_are_not_guessed() {
        for args in [
            &["link", "set", "x", "promisc", "on"][..],
            &[
                "addr",
                "replace",
                "10.0.0.1/24",
                "dev",
                "x",
                "scope",
                "link",
            ],
            &[
                "neigh",
                "replace",
                "10.0.0.1",
                "lladdr",
                "zz",
                "dev",
                "x",
                "nud",
                "permanent",
            ],
        ] {
            assert_eq!(NlOp::parse(&Cmd::new(None, Program::Ip, args)), None);
        }
        let nft = Cmd::new(Some("weft-x"), Program::Nft, &["list", "tables"]);
        assert_eq!(NlOp::parse(&nft), None);
    }

    #[test]
    fn applier_batches_per_namespace_and_runs_no_commands() {
        let runner = Arc::new(FakeRunner::default());
        let nl = Arc::new(FakeNetlink::default());
        let applier = LinkApplier::with_netlink(runner.clone(), nl.clone());
        let p = plan("weft-n1-v7", &BTreeSet::new(), &facts(), &HashSet::new());
        applier.apply(&p).expect("apply");
        assert!(runner.commands().is_empty(), "{:?}", runner.commands());
        let steps = nl.steps();
        assert_eq!(steps.len(), p.steps.len());
        // In plan order, each in its own namespace.
        for (s, (ns, nl_step)) in p.steps.iter().zip(&steps) {
            assert_eq!(&s.cmd.netns, ns);
            assert_eq!(s.cmd.to_string(), nl_step.label);
            assert_eq!(s.may_fail, nl_step.may_fail);
        }
        assert!(steps.iter().any(|(ns, _)| ns.as_deref() == Some("weft-n1")));
        assert!(
            steps
                .iter()
                .any(|(ns, _)| ns.as_deref() == Some("weft-ep-a"))
        );
    }
}
