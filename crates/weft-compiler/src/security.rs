//! Security-group verdicts, for explaining a flow between two ports (Neutron's
//! semantics): a new connection from `src` to `dst` passes the groups when `src` is
//! governed by no groups or one of its groups has an egress rule admitting it, and
//! `dst` is governed by no groups or one of its groups has an ingress rule admitting
//! it. A rule admits a flow when its ether type, protocol (any, or the flow's) and
//! destination port range (TCP/UDP) match, and its peer is anyone, a prefix holding
//! the peer's address, or a group the peer port is a member of. Replies are not
//! judged (stateful). The fabric implements the same thing differently (expanded sets,
//! `weft_fabric::security`); this reads the model's groups directly.

use crate::rules::Flow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use weft_model::{Direction, IpFamily, SecurityGroup};

/// One side of a flow, as security groups see it.
#[derive(Debug, Clone, Copy)]
pub struct PortView<'a> {
    pub name: &'a str,
    pub tenant: &'a str,
    pub address: IpAddr,
    /// `None`: not governed by groups.
    pub groups: Option<&'a [String]>,
}

/// Why the groups admit or refuse a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityVerdict {
    pub allowed: bool,
    pub reasons: Vec<String>,
}

impl fmt::Display for SecurityVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = if self.allowed { "admitted" } else { "refused" };
        write!(f, "security groups: {word} ({})", self.reasons.join("; "))
    }
}

/// The groups' verdict on a new connection from `src` to `dst`, or `None` when
/// neither port is governed by groups. `groups`: every tenant's, by tenant and name
/// (a port's groups are its tenant's).
pub fn security_verdict(
    groups: &BTreeMap<String, BTreeMap<String, SecurityGroup>>,
    src: PortView<'_>,
    dst: PortView<'_>,
    flow: &Flow,
) -> Option<SecurityVerdict> {
    if src.groups.is_none() && dst.groups.is_none() {
        return None;
    }
    let mut reasons = Vec::new();
    let mut allowed = true;
    for (port, peer, direction) in [
        (src, dst, Direction::Egress),
        (dst, src, Direction::Ingress),
    ] {
        let Some(own) = port.groups else {
            continue;
        };
        let tenant_groups = groups.get(port.tenant);
        match tenant_groups.and_then(|g| admitting_rule(g, port.tenant, own, peer, direction, flow))
        {
            Some((g, r)) => reasons.push(format!("{direction} of {} by {g}/{r}", port.name)),
            None => {
                allowed = false;
                let named = if own.is_empty() {
                    "it is in no group".to_string()
                } else {
                    format!("no {direction} rule of {} matches", own.join(", "))
                };
                reasons.push(format!("{direction} of {}: {named}", port.name));
            }
        }
    }
    Some(SecurityVerdict { allowed, reasons })
}

fn admitting_rule<'g>(
    groups: &'g BTreeMap<String, SecurityGroup>,
    tenant: &str,
    own: &[String],
    peer: PortView<'_>,
    direction: Direction,
    flow: &Flow,
) -> Option<(&'g str, &'g str)> {
    let family = if peer.address.is_ipv4() {
        IpFamily::V4
    } else {
        IpFamily::V6
    };
    for name in own {
        let Some((gname, group)) = groups.get_key_value(name) else {
            continue;
        };
        for (rname, rule) in &group.rules {
            let peer_ok = match (&rule.remote_ip_prefix, &rule.remote_group) {
                (Some(net), _) => net.contains(&peer.address),
                (None, Some(g)) => {
                    peer.tenant == tenant && peer.groups.is_some_and(|pg| pg.contains(g))
                }
                (None, None) => true,
            };
            let ports_ok = !rule.protocol.has_ports() || rule.destination_port.contains(flow.dport);
            if rule.direction == direction
                && rule.ether_type.matches(family)
                && family == flow.family
                && rule.protocol.matches(flow.proto)
                && ports_ok
                && peer_ok
            {
                return Some((gname, rname));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::{PortRange, Protocol, SecurityRule};

    fn groups() -> BTreeMap<String, BTreeMap<String, SecurityGroup>> {
        let mut default = SecurityGroup::default();
        default.rules.insert(
            "in".into(),
            SecurityRule {
                direction: Direction::Ingress,
                remote_group: Some("default".into()),
                ..SecurityRule::default()
            },
        );
        default.rules.insert(
            "out".into(),
            SecurityRule {
                direction: Direction::Egress,
                ..SecurityRule::default()
            },
        );
        let mut ssh = SecurityGroup::default();
        ssh.rules.insert(
            "ssh".into(),
            SecurityRule {
                direction: Direction::Ingress,
                protocol: Protocol::Tcp,
                destination_port: PortRange::single(22),
                remote_ip_prefix: Some("192.0.2.0/24".parse().unwrap_or_else(|_| unreachable!())),
                ..SecurityRule::default()
            },
        );
        BTreeMap::from([(
            "t".into(),
            BTreeMap::from([("default".into(), default), ("ssh".into(), ssh)]),
        )])
    }

    fn port<'a>(name: &'a str, ip: &str, groups: Option<&'a [String]>) -> PortView<'a> {
        PortView {
            name,
            tenant: "t",
            address: ip.parse().unwrap_or_else(|_| unreachable!()),
            groups,
        }
    }

    #[test]
    fn verdicts_follow_neutron() {
        let g = groups();
        let d = vec!["default".to_string()];
        let s = vec!["ssh".to_string()];
        let none: Vec<String> = vec![];
        let tcp = |p| Flow::new(Protocol::Tcp, p);
        let a = port("a", "10.0.0.2", Some(&d));
        let b = port("b", "10.0.0.3", Some(&d));
        let n = port("n", "192.0.2.9", None);
        let sshd = port("s", "10.0.0.4", Some(&s));
        let closed = port("c", "10.0.0.5", Some(&none));
        assert!(security_verdict(&g, a, b, &tcp(80)).is_some_and(|v| v.allowed));
        assert!(security_verdict(&g, n, b, &tcp(80)).is_some_and(|v| !v.allowed));
        assert!(security_verdict(&g, b, n, &tcp(80)).is_some_and(|v| v.allowed));
        assert!(security_verdict(&g, n, sshd, &tcp(22)).is_some_and(|v| v.allowed));
        assert!(security_verdict(&g, n, sshd, &tcp(23)).is_some_and(|v| !v.allowed));
        assert!(
            security_verdict(&g, sshd, n, &tcp(80)).is_some_and(|v| !v.allowed),
            "ssh has no egress rule"
        );
        let v = security_verdict(&g, a, closed, &tcp(80)).unwrap_or_else(|| unreachable!());
        assert!(!v.allowed && v.to_string().contains("in no group"), "{v}");
        assert!(security_verdict(&g, n, n, &tcp(80)).is_none());
    }
}
