//! Desired state of one VRF namespace -> the set elements of weft's two tables.
//! The table structure is constant; only elements change, so an update is a batch of
//! element additions and deletions.

use super::boxes::{Disjoint, IPPROTO_TCP, IPPROTO_UDP, NFPROTO_IPV4, NFPROTO_IPV6, Span};
use crate::desired::{LocalEndpoint, VrfDesired};
use crate::names;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use weft_compiler::Tier;
use weft_model::Action;

pub const TABLE: &str = "weft";

/// Tier order and the map-name stem of each tier: the order of the lookups in the
/// enforce chains, which must be the compiler's [`Tier`] order (intra-EPG before deny).
pub const TIERS: [(Tier, &str); 6] = [
    (Tier::Unenforced, "t0_unenforced"),
    (Tier::IntraEpg, "t1_intra_epg"),
    (Tier::Deny, "t2_deny"),
    (Tier::Contract, "t3_contract"),
    (Tier::PreferredExclusion, "t4_preferred_exclusion"),
    (Tier::PreferredGroup, "t5_preferred_group"),
];

/// One element of one of weft's sets or maps, rendered in nft syntax.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Element {
    /// `bridge` or `inet`.
    pub family: String,
    pub set: String,
    pub key: String,
    /// The mapped value, for maps.
    pub value: Option<String>,
}

/// Every element weft's tables should hold in one VRF namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftDesired {
    pub elements: BTreeSet<Element>,
}

pub(crate) fn el(family: &str, set: &str, key: String, value: Option<String>) -> Element {
    Element {
        family: family.into(),
        set: set.into(),
        key,
        value,
    }
}

pub(crate) fn verdict(a: Action) -> String {
    match a {
        Action::Permit => "accept".into(),
        Action::Deny => "drop".into(),
    }
}

fn span(s: Span) -> String {
    if s.is_point() {
        s.lo.to_string()
    } else {
        format!("{}-{}", s.lo, s.hi)
    }
}

/// Key order: family first. nft 1.0.6 mis-reads an interval map whose first field is
/// a `mark` when it loads the map back from the kernel (it sees a zero-width bitmask).
pub(crate) fn key_of(spans: &[Span]) -> String {
    let mut order: Vec<Span> = vec![spans[2], spans[0], spans[1]];
    order.extend_from_slice(&spans[3..]);
    order
        .iter()
        .map(|s| span(*s))
        .collect::<Vec<_>>()
        .join(" . ")
}

/// Names the layout of [`structure`]: an empty set of the bridge table, probed to tell
/// the current layout from an older one. A set, because nft lists one set without
/// loading the others' elements; listing a counter loads them all (seconds at 200k).
pub const LAYOUT: &str = "layout_6";

/// [`structure`] after deleting whatever tables named `weft` exist (`add table` first,
/// so the deletion never fails): in one transaction, packets see either the old
/// tables or the new ones. conntrack entries, and so established connections, stay.
pub fn replace_structure() -> String {
    let mut t = String::new();
    for family in ["bridge", "inet"] {
        let _ = writeln!(
            t,
            "add table {family} {TABLE}\ndelete table {family} {TABLE}"
        );
    }
    t.push_str(&structure());
    t
}

/// The two tables, empty. Created once per VRF namespace; never flushed afterwards.
pub fn structure() -> String {
    let mut t = BRIDGE_TABLE.replace("UPLINK_GROUP", &names::UPLINK_GROUP.to_string());
    t.push_str("table inet weft {\n");
    t.push_str("  map dst_class4 { type ipv4_addr : mark; }\n");
    t.push_str("  map dst_class6 { type ipv6_addr : mark; }\n");
    t.push_str("  counter default_deny {}\n");
    t.push_str(&security_structure());
    for (_, stem) in TIERS {
        let _ = writeln!(
            t,
            "  map {stem}_exact {{ type nf_proto . mark . mark . inet_proto . inet_service : verdict; counter; }}"
        );
        let _ = writeln!(
            t,
            "  map {stem}_range {{ type nf_proto . mark . mark . inet_proto . inet_service . inet_service : verdict; flags interval; counter; }}"
        );
        let _ = writeln!(
            t,
            "  map {stem}_noport {{ type nf_proto . mark . mark . inet_proto : verdict; flags interval; counter; }}"
        );
    }
    t.push_str(INET_FORWARD);
    t.push_str("  chain enforce_ports {\n");
    for (_, stem) in TIERS {
        let _ = writeln!(
            t,
            "    meta nfproto . meta mark . ct mark . meta l4proto . th dport vmap @{stem}_exact"
        );
        let _ = writeln!(
            t,
            "    meta nfproto . meta mark . ct mark . meta l4proto . th sport . th dport vmap @{stem}_range"
        );
    }
    t.push_str("    counter name default_deny drop\n  }\n");
    t.push_str("  chain enforce_noports {\n");
    for (_, stem) in TIERS {
        let _ = writeln!(
            t,
            "    meta nfproto . meta mark . ct mark . meta l4proto vmap @{stem}_noport"
        );
    }
    t.push_str("    counter name default_deny drop\n  }\n}\n");
    t
}

/// Per packet, the common cases cost: a frame from an endpoint port one
/// concatenated-map lookup (source check and class in one) at ingress and one set lookup
/// at egress; a frame from or to a VXLAN uplink one integer compare of its device group
/// ([`names::UPLINK_GROUP`], set by weft on its VXLAN devices only; no name is copied or
/// hashed, which measurably mattered across nodes, where every packet crosses four
/// bridge chains).
///
/// The layout is recognised by the (always empty) set named [`LAYOUT`] (see
/// [`NftApplier::tables_exist`](super::NftApplier::tables_exist)); tables of an older
/// layout are replaced in one transaction ([`replace_structure`]). A change to any
/// chain or set type must bump it.
const BRIDGE_TABLE: &str = r#"table bridge weft {
  set ports { type ifname; }
  map port_class { type ifname : mark; }
  set port_mac { type ifname . ether_addr; }
  map port_src4 { type ifname . ether_addr . ipv4_addr : mark; }
  map port_src6 { type ifname . ether_addr . ipv6_addr : mark; }
  set port_dst4 { type ifname . ipv4_addr; }
  set port_dst6 { type ifname . ipv6_addr; }
  counter spoofed {}
  counter misdelivered {}
  map port_open { type ifname : mark; }
  set ports_open { type ifname; }
  set layout_6 { type mark; }
  chain prerouting {
    type filter hook prerouting priority -200; policy drop;
    meta iifgroup UPLINK_GROUP meta mark set meta mark and 0xffff accept
    ether type ip meta mark set iifname . ether saddr . ip saddr map @port_src4 accept
    ether type arp meta mark set iifname . ether saddr . arp saddr ip map @port_src4 accept
    ether type ip6 meta mark set iifname . ether saddr . ip6 saddr map @port_src6 accept
    ether type ip6 ip6 saddr { ::, fe80::/10 } iifname . ether saddr @port_mac meta mark set iifname map @port_class accept
    meta mark set iifname map @port_open accept
    counter name spoofed drop
  }
  chain postrouting {
    type filter hook postrouting priority 0; policy drop;
    meta oifgroup UPLINK_GROUP accept
    oifname @ports_open accept
    ether type ip oifname . ip daddr @port_dst4 accept
    oifname != @ports counter name misdelivered drop
    ether type arp accept
    ether type ip6 oifname . ip6 daddr @port_dst6 accept
    ether type ip6 ip6 daddr { ff00::/8, fe80::/10 } accept
    counter name misdelivered drop
  }
}
"#;

/// Security groups ([`super::security`]): a governed port's address -> its profile,
/// what each profile admits (by peer address, profile, protocol, port: hash sets for
/// single peer addresses, whose updates cost O(1) and which hold nearly all elements;
/// an interval set for prefixes and port ranges), and one check chain per direction
/// and family that returns on the first set that admits the packet.
fn security_structure() -> String {
    let mut t = String::from(
        "  map sg_profile4 { type ipv4_addr : mark; }\n  map sg_profile6 { type ipv6_addr : mark; }\n  counter sg_denied {}\n",
    );
    for (fam, addr, ip) in [("4", "ipv4_addr", "ip"), ("6", "ipv6_addr", "ip6")] {
        for (dir, peer) in [("in", "saddr"), ("out", "daddr")] {
            let set = format!("sg_{dir}{fam}");
            let _ = writeln!(
                t,
                "  set {set}_any {{ type {addr} . mark; }}\n  set {set}_proto {{ type {addr} . mark . inet_proto; }}\n  set {set}_port {{ type {addr} . mark . inet_proto . inet_service; }}\n  set {set} {{ type {addr} . mark . inet_proto . inet_service; flags interval; }}"
            );
            let _ = writeln!(
                t,
                "  chain sg_check_{dir}{fam} {{\n    {ip} {peer} . ct mark @{set}_any return\n    {ip} {peer} . ct mark . meta l4proto @{set}_proto return\n    {ip} {peer} . ct mark . meta l4proto . th dport @{set}_port return\n    {ip} {peer} . ct mark . meta l4proto . th dport @{set} return\n    counter name sg_denied drop\n  }}"
            );
        }
    }
    t
}

/// New connections only (replies are accepted first: groups and contracts are
/// stateful). The conntrack mark is scratch space until the destination class goes
/// there: first the destination port's security profile, then the source port's. It is
/// cleared first: a retransmitted SYN of an unanswered connection is still "new" but its
/// conntrack entry already holds the destination class from the first pass.
const INET_FORWARD: &str = r#"  chain forward {
    type filter hook forward priority 0; policy accept;
    ct state established,related accept
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept
    ct mark set 0
    ct mark set ip daddr map @sg_profile4
    ct mark set ip6 daddr map @sg_profile6
    ct mark != 0 meta nfproto ipv4 jump sg_check_in4
    ct mark != 0 meta nfproto ipv6 jump sg_check_in6
    ct mark set 0
    ct mark set ip saddr map @sg_profile4
    ct mark set ip6 saddr map @sg_profile6
    ct mark != 0 meta nfproto ipv4 jump sg_check_out4
    ct mark != 0 meta nfproto ipv6 jump sg_check_out6
    ct mark set 0
    ct mark set ip daddr map @dst_class4
    ct mark set ip6 daddr map @dst_class6
    ct mark 0 accept
    meta l4proto { tcp, udp } goto enforce_ports
    goto enforce_noports
  }
"#;

/// Renders the elements of one VRF namespace.
pub fn render_vrf(vrf: &VrfDesired) -> NftDesired {
    let mut out = BTreeSet::new();
    for ep in &vrf.local {
        out.extend(endpoint_elements(ep));
    }
    out.extend(super::security::security_elements(&vrf.security));
    render_rules(vrf, &mut out);
    NftDesired { elements: out }
}

/// The elements of one local endpoint's port.
pub(crate) fn endpoint_elements(ep: &LocalEndpoint) -> BTreeSet<Element> {
    let mut out = BTreeSet::new();
    let port = quote(&names::port(&ep.name));
    let mac = names::mac_to_string(ep.mac);
    let class = ep.class.0.to_string();
    out.insert(el("bridge", "ports", port.clone(), None));
    if !ep.port_security {
        out.insert(el("bridge", "ports_open", port.clone(), None));
        out.insert(el("bridge", "port_open", port.clone(), Some(class.clone())));
    }
    out.insert(el(
        "bridge",
        "port_class",
        port.clone(),
        Some(class.clone()),
    ));
    let own = ep.ips.iter().map(|ip| (mac.clone(), *ip));
    let pairs = ep.allowed_pairs.iter().map(|p| {
        (
            p.mac
                .map(names::mac_to_string)
                .unwrap_or_else(|| mac.clone()),
            p.ip,
        )
    });
    for (m, ip) in own.chain(pairs) {
        out.insert(el("bridge", "port_mac", format!("{port} . {m}"), None));
        let (src, dst, dst_class) = match ip {
            IpAddr::V4(_) => ("port_src4", "port_dst4", "dst_class4"),
            IpAddr::V6(_) => ("port_src6", "port_dst6", "dst_class6"),
        };
        out.insert(el(
            "bridge",
            src,
            format!("{port} . {m} . {ip}"),
            Some(class.clone()),
        ));
        out.insert(el("bridge", dst, format!("{port} . {ip}"), None));
        out.insert(el("inet", dst_class, ip.to_string(), Some(class.clone())));
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn render_rules(vrf: &VrfDesired, out: &mut BTreeSet<Element>) {
    for (tier, stem) in TIERS {
        let rules: Vec<_> = vrf.policy.rules.iter().filter(|r| r.tier == tier).collect();
        let mixed = rules.windows(2).any(|w| w[0].action != w[1].action);
        let mut exact: BTreeMap<String, Action> = BTreeMap::new();
        let mut range: Disjoint<6, Action> = Disjoint::default();
        let mut noport: Disjoint<4, Action> = Disjoint::default();
        for rule in rules {
            let (ported, portless) = super::boxes::rule_boxes(rule);
            for b in ported {
                // With one action per tier, exact and range elements may overlap
                // (both give the same verdict); with mixed actions, first match wins
                // and only the disjoint range map keeps that order.
                match exact_keys(&b.0) {
                    Some(keys) if !mixed => {
                        for k in keys {
                            exact.entry(k).or_insert(rule.action);
                        }
                    }
                    _ => range.add(b, rule.action),
                }
            }
            for b in portless {
                noport.add(b, rule.action);
            }
        }
        for (k, a) in exact {
            out.insert(el("inet", &format!("{stem}_exact"), k, Some(verdict(a))));
        }
        for (b, a) in range.boxes {
            out.insert(el(
                "inet",
                &format!("{stem}_range"),
                key_of(&b.0),
                Some(verdict(a)),
            ));
        }
        for (b, a) in noport.boxes {
            out.insert(el(
                "inet",
                &format!("{stem}_noport"),
                key_of(&b.0),
                Some(verdict(a)),
            ));
        }
    }
}

/// Keys for the hash map when the box is single classes, any source port and one
/// destination port (family and TCP/UDP may expand into a few points).
pub(crate) fn exact_keys(b: &[Span; 6]) -> Option<Vec<String>> {
    let [s, d, fam, l4, sport, dport] = *b;
    if !(s.is_point() && d.is_point() && dport.is_point() && sport == Span::new(0, 65535)) {
        return None;
    }
    let fams: Vec<u32> = [NFPROTO_IPV4, NFPROTO_IPV6]
        .into_iter()
        .filter(|f| fam.lo <= *f && *f <= fam.hi)
        .collect();
    let l4s: Vec<u32> = [IPPROTO_TCP, IPPROTO_UDP]
        .into_iter()
        .filter(|p| l4.lo <= *p && *p <= l4.hi)
        .collect();
    let mut keys = Vec::new();
    for f in &fams {
        for p in &l4s {
            keys.push(format!("{f} . {} . {} . {p} . {}", s.lo, d.lo, dport.lo));
        }
    }
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{AddressPair, LocalEndpoint};

    #[test]
    fn the_chains_look_up_tiers_in_the_compilers_order() {
        // The first matching map decides, so the chain order is the precedence.
        assert!(TIERS.windows(2).all(|w| w[0].0 < w[1].0));
        let chain = structure();
        let at = |stem: &str| chain.find(&format!("@{stem}_exact")).unwrap_or(usize::MAX);
        assert!(at("t1_intra_epg") < at("t2_deny"));
    }
    use std::collections::BTreeMap;
    use weft_compiler::{BridgeDomainPolicy, ClassId, ClassSel, Rule, Trace, VrfPolicy};
    use weft_model::{EpgPath, ObjectPath, PortRange, Protocol};

    fn rule(
        tier: Tier,
        src: ClassSel,
        dst: ClassSel,
        proto: Protocol,
        dport: PortRange,
        action: Action,
    ) -> Rule {
        Rule {
            tier,
            src,
            dst,
            family: None,
            proto,
            sport: PortRange::ANY,
            dport,
            action,
            trace: Trace::IntraEpg {
                epg: EpgPath::new("t", "a", "e").into(),
            },
        }
    }

    fn vrf(rules: Vec<Rule>) -> VrfDesired {
        let bd = ObjectPath::tenant("t").child("bd", "net");
        VrfDesired {
            policy: VrfPolicy {
                path: ObjectPath::tenant("t").child("vrf", "main"),
                id: 1,
                enforced: true,
                bridge_domains: vec![BridgeDomainPolicy {
                    path: bd.clone(),
                    vni: 5000,
                    gateway_mac: [2, 0x77, 0x66, 0, 0x13, 0x88],
                    subnets: vec![("10.1.0.0/24".parse().unwrap(), "10.1.0.1".parse().unwrap())],
                }],
                members: BTreeMap::from([(ClassId(100), EpgPath::new("t", "a", "web"))]),
                rules,
            },
            local: vec![LocalEndpoint {
                name: "web-1".into(),
                netns: "weft-ep".into(),
                interface: 0,
                class: ClassId(100),
                bridge_domain: bd,
                ips: vec!["10.1.0.10".parse().unwrap()],
                mac: [2, 0, 0, 0, 0, 10],
                allowed_pairs: vec![AddressPair {
                    ip: "10.1.0.99".parse().unwrap(),
                    mac: None,
                }],
                port_security: true,
            }],
            remote: vec![],
            security: Default::default(),
        }
    }

    fn keys(d: &NftDesired, set: &str) -> Vec<String> {
        d.elements
            .iter()
            .filter(|e| e.set == set)
            .map(|e| match &e.value {
                Some(v) => format!("{} : {v}", e.key),
                None => e.key.clone(),
            })
            .collect()
    }

    #[test]
    fn ports_get_their_class_and_addresses() {
        let d = render_vrf(&vrf(vec![]));
        let port = names::port("web-1");
        assert_eq!(keys(&d, "port_class"), vec![format!("\"{port}\" : 100")]);
        assert_eq!(
            keys(&d, "port_src4"),
            vec![
                format!("\"{port}\" . 02:00:00:00:00:0a . 10.1.0.10 : 100"),
                format!("\"{port}\" . 02:00:00:00:00:0a . 10.1.0.99 : 100"),
            ]
        );
        assert_eq!(
            keys(&d, "dst_class4"),
            vec!["10.1.0.10 : 100", "10.1.0.99 : 100"]
        );
    }

    #[test]
    fn single_port_contracts_go_to_the_hash_map() {
        let r = rule(
            Tier::Contract,
            ClassSel::Class(ClassId(100)),
            ClassSel::Class(ClassId(200)),
            Protocol::Tcp,
            PortRange::single(8080),
            Action::Permit,
        );
        let d = render_vrf(&vrf(vec![r]));
        assert_eq!(
            keys(&d, "t3_contract_exact"),
            vec![
                "10 . 100 . 200 . 6 . 8080 : accept",
                "2 . 100 . 200 . 6 . 8080 : accept"
            ]
        );
        assert!(keys(&d, "t3_contract_range").is_empty());
    }

    #[test]
    fn wildcards_and_ranges_go_to_the_interval_map_disjoint() {
        let taboo = rule(
            Tier::Deny,
            ClassSel::Any,
            ClassSel::Class(ClassId(200)),
            Protocol::Tcp,
            PortRange { lo: 20, hi: 30 },
            Action::Deny,
        );
        let overlapping = rule(
            Tier::Deny,
            ClassSel::Class(ClassId(100)),
            ClassSel::Class(ClassId(200)),
            Protocol::Tcp,
            PortRange { lo: 25, hi: 40 },
            Action::Deny,
        );
        let d = render_vrf(&vrf(vec![taboo, overlapping]));
        assert_eq!(
            keys(&d, "t2_deny_range"),
            vec![
                "2-10 . 1-65535 . 200 . 6 . 0-65535 . 20-30 : drop",
                "2-10 . 100 . 200 . 6 . 0-65535 . 31-40 : drop",
            ]
        );
    }

    #[test]
    fn icmp_and_any_protocol_use_the_portless_map() {
        let icmp = rule(
            Tier::Contract,
            ClassSel::Class(ClassId(1)),
            ClassSel::Class(ClassId(2)),
            Protocol::Icmp,
            PortRange::ANY,
            Action::Permit,
        );
        let ip = rule(
            Tier::Contract,
            ClassSel::Class(ClassId(1)),
            ClassSel::Class(ClassId(3)),
            Protocol::Any,
            PortRange::ANY,
            Action::Permit,
        );
        let d = render_vrf(&vrf(vec![icmp, ip]));
        assert_eq!(
            keys(&d, "t3_contract_noport"),
            vec![
                "10 . 1 . 2 . 58 : accept",
                "2 . 1 . 2 . 1 : accept",
                "2-10 . 1 . 3 . 0-255 : accept"
            ]
        );
        assert_eq!(
            keys(&d, "t3_contract_range"),
            vec!["2-10 . 1 . 3 . 6-17 . 0-65535 . 0-65535 : accept"]
        );
    }

    #[test]
    fn intra_epg_mixed_actions_stay_ordered() {
        let iso = rule(
            Tier::IntraEpg,
            ClassSel::Class(ClassId(5)),
            ClassSel::Class(ClassId(5)),
            Protocol::Any,
            PortRange::ANY,
            Action::Deny,
        );
        let ok = rule(
            Tier::IntraEpg,
            ClassSel::Class(ClassId(6)),
            ClassSel::Class(ClassId(6)),
            Protocol::Any,
            PortRange::ANY,
            Action::Permit,
        );
        let d = render_vrf(&vrf(vec![iso, ok]));
        assert_eq!(
            keys(&d, "t1_intra_epg_range"),
            vec![
                "2-10 . 5 . 5 . 6-17 . 0-65535 . 0-65535 : drop",
                "2-10 . 6 . 6 . 6-17 . 0-65535 . 0-65535 : accept"
            ]
        );
    }

    #[test]
    fn layout_set_and_uplink_group_are_in_the_structure() {
        let t = structure();
        assert!(t.contains(&format!("set {LAYOUT} {{ type mark; }}")));
        // Uplinks are told apart by device group, not by a set of names.
        let group = names::UPLINK_GROUP;
        assert!(t.contains(&format!("meta iifgroup {group} meta mark set")));
        assert!(t.contains(&format!("meta oifgroup {group} accept")));
        assert!(!t.contains("UPLINK_GROUP"));
        let r = replace_structure();
        assert!(r.starts_with("add table bridge weft\ndelete table bridge weft\n"));
        assert!(r.ends_with(&structure()));
    }

    #[test]
    fn structure_has_constant_lookups() {
        let s = structure();
        assert_eq!(s.matches("vmap @").count(), TIERS.len() * 3);
        assert!(!s.contains("flush"));
    }
}
