//! Security groups, expanded for one VRF namespace: which local addresses belong to a
//! port governed by groups, and what each such port admits.
//!
//! Ports with the same groups share a *profile* (their rules are the union of their
//! groups' rules), so rules whose peer is a remote group are expanded once per profile
//! and member address, not once per port: one membership change adds or removes one
//! element per profile that refers to the group. Pure: no I/O.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use weft_model::{Direction, IpFamily, PortRange, Protocol, SecurityGroup};

/// A profile's number in the VRF namespace's sets; never 0 (0 means "no profile").
pub type ProfileId = u32;

/// One allowed peer and service: packets whose peer address is in `remote`, of IP
/// protocol `proto` (`None`: any) and destination port in `ports` (the whole range for
/// protocols without ports).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Allow {
    pub remote: IpNet,
    pub proto: Option<u8>,
    pub ports: PortRange,
}

/// What the ports of one profile admit, per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRules {
    /// Traffic to the port: `remote` is the source.
    pub ingress: BTreeSet<Allow>,
    /// Traffic from the port: `remote` is the destination.
    pub egress: BTreeSet<Allow>,
}

/// The security groups of one VRF namespace's local ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityDesired {
    /// Every address of a local governed port (its own and its allowed pairs) and the
    /// port's profile.
    pub addresses: BTreeMap<IpAddr, ProfileId>,
    pub profiles: BTreeMap<ProfileId, ProfileRules>,
}

impl SecurityDesired {
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}

/// A port governed by security groups, anywhere in the cluster.
#[derive(Debug, Clone, Copy)]
pub struct GovernedPort<'a> {
    pub tenant: &'a str,
    pub groups: &'a [String],
    /// Its own addresses and its allowed pairs' addresses.
    pub addresses: &'a [IpAddr],
    pub local: bool,
}

/// Expands the groups of the local ports in `ports` (all governed ports of the
/// cluster's tenants in this VRF namespace's view; remote ones count as group members).
/// A group that does not exist (removed under a port) admits nothing: fail closed.
pub fn expand(
    groups: &BTreeMap<String, BTreeMap<String, SecurityGroup>>,
    ports: &[GovernedPort<'_>],
) -> SecurityDesired {
    // Members of each (tenant, group), by address.
    let mut members: BTreeMap<(&str, &str), BTreeSet<IpAddr>> = BTreeMap::new();
    for p in ports {
        for g in p.groups {
            members
                .entry((p.tenant, g.as_str()))
                .or_default()
                .extend(p.addresses.iter().copied());
        }
    }
    let mut profile_of: BTreeMap<(&str, BTreeSet<&str>), ProfileId> = BTreeMap::new();
    let mut used: BTreeSet<ProfileId> = BTreeSet::new();
    let mut out = SecurityDesired::default();
    let mut keys: Vec<(&str, BTreeSet<&str>)> = ports
        .iter()
        .filter(|p| p.local)
        .map(|p| (p.tenant, p.groups.iter().map(String::as_str).collect()))
        .collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let id = profile_id(key.0, &key.1, &used);
        used.insert(id);
        let rules = profile_rules(groups.get(key.0), key.0, &key.1, &members);
        out.profiles.insert(id, rules);
        profile_of.insert(key, id);
    }
    for p in ports.iter().filter(|p| p.local) {
        let key = (p.tenant, p.groups.iter().map(String::as_str).collect());
        if let Some(id) = profile_of.get(&key) {
            for a in p.addresses {
                out.addresses.insert(*a, *id);
            }
        }
    }
    out
}

/// A stable number for a profile (FNV-1a of tenant and groups), probing past numbers
/// already taken, so that a profile keeps its number while others come and go (only
/// a collision, vanishingly rare, can shift one).
fn profile_id(tenant: &str, groups: &BTreeSet<&str>, used: &BTreeSet<ProfileId>) -> ProfileId {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    eat(tenant.as_bytes());
    for g in groups {
        eat(b"\0");
        eat(g.as_bytes());
    }
    let mut id = h.max(1);
    while used.contains(&id) {
        id = id.wrapping_add(1).max(1);
    }
    id
}

fn profile_rules(
    tenant_groups: Option<&BTreeMap<String, SecurityGroup>>,
    tenant: &str,
    groups: &BTreeSet<&str>,
    members: &BTreeMap<(&str, &str), BTreeSet<IpAddr>>,
) -> ProfileRules {
    let mut out = ProfileRules::default();
    let Some(tenant_groups) = tenant_groups else {
        return out;
    };
    for g in groups {
        let Some(group) = tenant_groups.get(*g) else {
            continue;
        };
        for rule in group.rules.values() {
            let set = match rule.direction {
                Direction::Ingress => &mut out.ingress,
                Direction::Egress => &mut out.egress,
            };
            let remotes: Vec<IpNet> = match (&rule.remote_ip_prefix, &rule.remote_group) {
                (Some(net), _) => vec![net.trunc()],
                (None, Some(remote)) => members
                    .get(&(tenant, remote.as_str()))
                    .into_iter()
                    .flatten()
                    .map(|a| IpNet::from(*a))
                    .collect(),
                (None, None) => vec![IpNet::V4(Ipv4Net::default()), IpNet::V6(Ipv6Net::default())],
            };
            for remote in remotes {
                let family = if remote.addr().is_ipv4() {
                    IpFamily::V4
                } else {
                    IpFamily::V6
                };
                if !rule.ether_type.matches(family) {
                    continue;
                }
                let proto = match rule.protocol {
                    Protocol::Any => None,
                    Protocol::Tcp => Some(6),
                    Protocol::Udp => Some(17),
                    Protocol::Icmp if family == IpFamily::V4 => Some(1),
                    Protocol::Icmp => Some(58),
                };
                let ports = if rule.protocol.has_ports() {
                    rule.destination_port
                } else {
                    PortRange::ANY
                };
                set.insert(Allow {
                    remote,
                    proto,
                    ports,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::{EtherType, SecurityRule};

    fn rule(direction: Direction, protocol: Protocol, port: Option<u16>) -> SecurityRule {
        SecurityRule {
            direction,
            protocol,
            destination_port: port.map_or(PortRange::ANY, PortRange::single),
            ..SecurityRule::default()
        }
    }

    fn groups() -> BTreeMap<String, BTreeMap<String, SecurityGroup>> {
        let mut default = SecurityGroup::default();
        for (name, ether) in [("in4", EtherType::Ipv4), ("in6", EtherType::Ipv6)] {
            let mut r = rule(Direction::Ingress, Protocol::Any, None);
            r.ether_type = ether;
            r.remote_group = Some("default".into());
            default.rules.insert(name.into(), r);
        }
        default
            .rules
            .insert("out".into(), rule(Direction::Egress, Protocol::Any, None));
        let mut ssh = SecurityGroup::default();
        let mut r = rule(Direction::Ingress, Protocol::Tcp, Some(22));
        r.remote_ip_prefix = Some("192.0.2.0/24".parse().unwrap_or_else(|_| unreachable!()));
        ssh.rules.insert("ssh".into(), r);
        BTreeMap::from([(
            "t".to_string(),
            BTreeMap::from([("default".to_string(), default), ("ssh".to_string(), ssh)]),
        )])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn ports_with_the_same_groups_share_a_profile_and_remote_groups_expand_to_members() {
        let g = groups();
        let d = vec!["default".to_string()];
        let ds = vec!["default".to_string(), "ssh".to_string()];
        let (a, b, c, r) = (
            [ip("10.0.0.2")],
            [ip("10.0.0.3")],
            [ip("10.0.0.4")],
            [ip("10.0.0.9")],
        );
        let ports = [
            GovernedPort {
                tenant: "t",
                groups: &d,
                addresses: &a,
                local: true,
            },
            GovernedPort {
                tenant: "t",
                groups: &d,
                addresses: &b,
                local: true,
            },
            GovernedPort {
                tenant: "t",
                groups: &ds,
                addresses: &c,
                local: true,
            },
            GovernedPort {
                tenant: "t",
                groups: &d,
                addresses: &r,
                local: false,
            },
        ];
        let s = expand(&g, &ports);
        assert_eq!(s.profiles.len(), 2);
        assert_eq!(
            s.addresses.len(),
            3,
            "remote ports are members, not local addresses"
        );
        assert_eq!(s.addresses[&ip("10.0.0.2")], s.addresses[&ip("10.0.0.3")]);
        assert_ne!(s.addresses[&ip("10.0.0.2")], s.addresses[&ip("10.0.0.4")]);
        let plain = &s.profiles[&s.addresses[&ip("10.0.0.2")]];
        let sources: BTreeSet<IpNet> = plain.ingress.iter().map(|a| a.remote).collect();
        // Every member of default, local or remote; c is in default too.
        for m in ["10.0.0.2/32", "10.0.0.3/32", "10.0.0.4/32", "10.0.0.9/32"] {
            assert!(
                sources.contains(&m.parse().unwrap_or_else(|_| unreachable!())),
                "{m}"
            );
        }
        assert_eq!(plain.egress.len(), 2, "egress any: IPv4 and IPv6");
        let with_ssh = &s.profiles[&s.addresses[&ip("10.0.0.4")]];
        assert!(with_ssh.ingress.iter().any(|a| a.proto == Some(6)
            && a.ports == PortRange::single(22)
            && a.remote.to_string() == "192.0.2.0/24"));
    }

    #[test]
    fn a_missing_group_admits_nothing() {
        let g = groups();
        let gone = vec!["gone".to_string()];
        let a = [ip("10.0.0.2")];
        let s = expand(
            &g,
            &[GovernedPort {
                tenant: "t",
                groups: &gone,
                addresses: &a,
                local: true,
            }],
        );
        let p = &s.profiles[&s.addresses[&ip("10.0.0.2")]];
        assert!(p.ingress.is_empty() && p.egress.is_empty());
    }
}
