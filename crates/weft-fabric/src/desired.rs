//! The desired state of one node, as the control plane hands it to the agent.

use crate::error::FabricError;
use crate::names;
use crate::security::{self, GovernedPort, SecurityDesired};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use weft_compiler::{BridgeDomainPolicy, ClassId, CompiledPolicy, VrfPolicy};
use weft_model::{EpgPath, ObjectPath};

/// An extra source address a port may use (OpenStack's allowed address pair):
/// nested containers send from these. `mac: None` means the port's own MAC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AddressPair {
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
}

/// An endpoint attached to this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalEndpoint {
    pub name: String,
    /// The endpoint's own network namespace (must exist; weft adds a veth into it).
    pub netns: String,
    /// The veth's number in `netns` (`weft<n>`); only 0 gets the default route.
    #[serde(default)]
    pub interface: u8,
    pub class: ClassId,
    pub bridge_domain: ObjectPath,
    pub ips: Vec<IpAddr>,
    pub mac: [u8; 6],
    pub allowed_pairs: Vec<AddressPair>,
    /// Off: the port may send from any address (with its EPG's class) and receive for
    /// any address; see [`EndpointSpec::port_security`].
    #[serde(default = "yes")]
    pub port_security: bool,
}

fn yes() -> bool {
    true
}

/// An endpoint on another node: reached through VXLAN at `node_underlay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteEndpoint {
    pub name: String,
    pub class: ClassId,
    pub vni: u32,
    pub ips: Vec<IpAddr>,
    pub mac: [u8; 6],
    pub node_underlay: Ipv4Addr,
}

/// One VRF present on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrfDesired {
    pub policy: VrfPolicy,
    pub local: Vec<LocalEndpoint>,
    pub remote: Vec<RemoteEndpoint>,
    /// The security groups of the local ports that have any.
    #[serde(default)]
    pub security: SecurityDesired,
}

/// Everything one node should look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredNode {
    pub node: String,
    /// The node's namespace (the underlay side of VXLAN); `None` = the host's own.
    pub node_netns: Option<String>,
    pub underlay_ip: Ipv4Addr,
    /// VRF namespaces are named `<vrf_netns_prefix>-v<vrf id>`; must start with `weft`.
    pub vrf_netns_prefix: String,
    /// MTU of endpoint ports, bridges and VXLAN devices (underlay MTU minus 50).
    pub overlay_mtu: u32,
    pub vrfs: Vec<VrfDesired>,
}

/// An endpoint anywhere in the cluster, as the scheduler knows it: the input of
/// [`DesiredNode::from_policy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub name: String,
    pub node: String,
    pub netns: String,
    /// The veth's number in `netns` (`weft<n>`): a task in several networks has one
    /// endpoint per network in one namespace. Only 0 gets the default route.
    #[serde(default)]
    pub interface: u8,
    pub epg: EpgPath,
    pub ips: Vec<IpAddr>,
    pub mac: [u8; 6],
    pub allowed_pairs: Vec<AddressPair>,
    /// Port security (OpenStack's): on, the port sends only from its addresses and
    /// allowed pairs; off, from any address, and it has no security groups.
    #[serde(default = "yes")]
    pub port_security: bool,
    /// Security groups of the endpoint's tenant that govern its port; `None`: none,
    /// the EPG's contracts alone decide.
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
}

/// A node of the cluster as the control plane knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub netns: Option<String>,
    pub underlay_ip: Ipv4Addr,
    pub vrf_netns_prefix: String,
}

pub const DEFAULT_OVERLAY_MTU: u32 = 1450;

impl DesiredNode {
    /// Builds `node`'s desired state from the compiled policy and the cluster's
    /// endpoints: a VRF is instantiated on a node that has at least one of its
    /// endpoints; every other endpoint of that VRF becomes a remote endpoint.
    pub fn from_policy(
        node: &NodeSpec,
        nodes: &[NodeSpec],
        policy: &CompiledPolicy,
        endpoints: &[EndpointSpec],
    ) -> Result<Self, FabricError> {
        let underlay: HashMap<&str, Ipv4Addr> = nodes
            .iter()
            .map(|n| (n.name.as_str(), n.underlay_ip))
            .collect();
        let mut vrfs: BTreeMap<&ObjectPath, VrfDesired> = BTreeMap::new();
        let epg_of = |ep: &EndpointSpec| {
            policy
                .epgs
                .get(&ep.epg)
                .ok_or_else(|| FabricError::Endpoint {
                    endpoint: ep.name.clone(),
                    why: format!("EPG {} is not in the compiled policy", ep.epg),
                })
        };
        for ep in endpoints.iter().filter(|e| e.node == node.name) {
            let epg = epg_of(ep)?;
            let vrf = policy
                .vrfs
                .get(&epg.vrf)
                .ok_or_else(|| FabricError::Endpoint {
                    endpoint: ep.name.clone(),
                    why: format!("VRF {} is not in the compiled policy", epg.vrf),
                })?;
            let entry = vrfs.entry(&epg.vrf).or_insert_with(|| VrfDesired {
                policy: vrf.clone(),
                local: Vec::new(),
                remote: Vec::new(),
                security: SecurityDesired::default(),
            });
            entry.local.push(LocalEndpoint {
                name: ep.name.clone(),
                netns: ep.netns.clone(),
                interface: ep.interface,
                class: epg.class,
                bridge_domain: epg.bridge_domain.clone(),
                ips: ep.ips.clone(),
                mac: ep.mac,
                allowed_pairs: ep.allowed_pairs.clone(),
                port_security: ep.port_security,
            });
        }
        for ep in endpoints.iter().filter(|e| e.node != node.name) {
            let epg = epg_of(ep)?;
            let Some(entry) = vrfs.get_mut(&epg.vrf) else {
                continue;
            };
            let vni = entry
                .policy
                .bridge_domains
                .iter()
                .find(|bd| bd.path == epg.bridge_domain)
                .map(|bd| bd.vni)
                .ok_or_else(|| FabricError::Endpoint {
                    endpoint: ep.name.clone(),
                    why: format!("bridge domain {} is not in its VRF", epg.bridge_domain),
                })?;
            let node_underlay =
                underlay
                    .get(ep.node.as_str())
                    .copied()
                    .ok_or_else(|| FabricError::Endpoint {
                        endpoint: ep.name.clone(),
                        why: format!("node {:?} is unknown", ep.node),
                    })?;
            // Allowed address pairs are reachable too: same MAC, or a MAC of their own.
            let mut ips = ep.ips.clone();
            ips.extend(
                ep.allowed_pairs
                    .iter()
                    .filter(|p| p.mac.is_none())
                    .map(|p| p.ip),
            );
            entry.remote.push(RemoteEndpoint {
                name: ep.name.clone(),
                class: epg.class,
                vni,
                ips,
                mac: ep.mac,
                node_underlay,
            });
            for (i, pair) in ep.allowed_pairs.iter().enumerate() {
                if let Some(mac) = pair.mac {
                    entry.remote.push(RemoteEndpoint {
                        name: format!("{}#pair{i}", ep.name),
                        class: epg.class,
                        vni,
                        ips: vec![pair.ip],
                        mac,
                        node_underlay,
                    });
                }
            }
        }
        if endpoints.iter().any(|e| e.security_groups.is_some()) {
            for (path, vrf) in &mut vrfs {
                vrf.security = security_of(node, path, policy, endpoints);
            }
        }
        Ok(Self {
            node: node.name.clone(),
            node_netns: node.netns.clone(),
            underlay_ip: node.underlay_ip,
            vrf_netns_prefix: node.vrf_netns_prefix.clone(),
            overlay_mtu: DEFAULT_OVERLAY_MTU,
            vrfs: vrfs.into_values().collect(),
        })
    }

    /// Checks everything that can be checked without touching the system.
    pub fn validate(&self) -> Result<(), FabricError> {
        names::check_netns_name(&self.vrf_netns_prefix)?;
        if let Some(ns) = &self.node_netns {
            names::check_netns_name(ns)?;
        }
        let mut ports: HashMap<String, &str> = HashMap::new();
        for vrf in &self.vrfs {
            validate_vrf(vrf)?;
            for ep in &vrf.local {
                if let Some(other) = ports.insert(names::port(&ep.name), &ep.name) {
                    return Err(FabricError::Endpoint {
                        endpoint: ep.name.clone(),
                        why: format!("its port name collides with endpoint {other}; rename one"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The expanded security groups of `vrf`'s local ports on `node`: every governed port
/// of the cluster is a group member; the local ones of this VRF get profiles.
fn security_of(
    node: &NodeSpec,
    vrf: &ObjectPath,
    policy: &CompiledPolicy,
    endpoints: &[EndpointSpec],
) -> SecurityDesired {
    let addresses: Vec<Vec<IpAddr>> = endpoints
        .iter()
        .map(|e| {
            e.ips
                .iter()
                .copied()
                .chain(e.allowed_pairs.iter().map(|p| p.ip))
                .collect()
        })
        .collect();
    let ports: Vec<GovernedPort<'_>> = endpoints
        .iter()
        .zip(&addresses)
        .filter(|(e, _)| e.port_security)
        .filter_map(|(e, addresses)| {
            let groups = e.security_groups.as_deref()?;
            let local =
                e.node == node.name && policy.epgs.get(&e.epg).is_some_and(|epg| &epg.vrf == vrf);
            Some(GovernedPort {
                tenant: &e.epg.tenant,
                groups,
                addresses,
                local,
            })
        })
        .collect();
    security::expand(&policy.security_groups, &ports)
}

/// The subnet (and its gateway) of a bridge domain that contains `ip`.
pub fn subnet_of(bd: &BridgeDomainPolicy, ip: IpAddr) -> Option<(IpNet, IpAddr)> {
    bd.subnets
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .copied()
}

fn validate_vrf(vrf: &VrfDesired) -> Result<(), FabricError> {
    let vrf_name = vrf.policy.path.to_string();
    let subnets: Vec<(&BridgeDomainPolicy, IpNet)> = vrf
        .policy
        .bridge_domains
        .iter()
        .flat_map(|bd| bd.subnets.iter().map(move |(net, _)| (bd, *net)))
        .collect();
    for (i, (bd, net)) in subnets.iter().enumerate() {
        for (other_bd, other) in &subnets[i + 1..] {
            if net.contains(&other.network()) || other.contains(&net.network()) {
                return Err(FabricError::SubnetClash {
                    vrf: vrf_name,
                    bridge_domain: bd.path.to_string(),
                    subnet: *net,
                    other_bridge_domain: other_bd.path.to_string(),
                    other: *other,
                });
            }
        }
    }
    let mut owners: HashMap<IpAddr, &str> = HashMap::new();
    for ep in &vrf.local {
        let bad = |why: String| FabricError::Endpoint {
            endpoint: ep.name.clone(),
            why,
        };
        names::check_netns_name(&ep.netns).or_else(|e| {
            // Endpoint namespaces may belong to a container runtime: any safe name will do.
            if ep
                .netns
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        let bd = vrf
            .policy
            .bridge_domains
            .iter()
            .find(|bd| bd.path == ep.bridge_domain)
            .ok_or_else(|| {
                bad(format!(
                    "bridge domain {} is not in VRF {vrf_name}",
                    ep.bridge_domain
                ))
            })?;
        if !vrf.policy.members.contains_key(&ep.class) {
            return Err(bad(format!(
                "class {} is not an EPG of VRF {vrf_name}",
                ep.class
            )));
        }
        if ep.ips.is_empty() {
            return Err(bad("has no IP address".into()));
        }
        for ip in &ep.ips {
            if subnet_of(bd, *ip).is_none() {
                return Err(bad(format!("{ip} is in no subnet of {}", bd.path)));
            }
            if bd.subnets.iter().any(|(_, gw)| gw == ip) {
                return Err(bad(format!("{ip} is the gateway of {}", bd.path)));
            }
        }
        if ep.mac[0] & 1 == 1 {
            return Err(bad("its MAC is a multicast address".into()));
        }
        for ip in ep.ips.iter().chain(ep.allowed_pairs.iter().map(|p| &p.ip)) {
            claim(&mut owners, &vrf_name, *ip, &ep.name)?;
        }
    }
    for ep in &vrf.remote {
        for ip in &ep.ips {
            claim(&mut owners, &vrf_name, *ip, &ep.name)?;
        }
    }
    Ok(())
}

fn claim<'a>(
    owners: &mut HashMap<IpAddr, &'a str>,
    vrf: &str,
    ip: IpAddr,
    who: &'a str,
) -> Result<(), FabricError> {
    match owners.insert(ip, who) {
        Some(first) if first != who => Err(FabricError::DuplicateAddress {
            vrf: vrf.to_string(),
            ip,
            first: first.to_string(),
            second: who.to_string(),
        }),
        _ => Ok(()),
    }
}
