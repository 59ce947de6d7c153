//! Security groups as elements of the inet table's `sg_*` sets.
//!
//! `sg_profile4/6` map a governed local port's address to its profile. The forward
//! chain looks the destination up, and a packet to a governed port must then be in
//! `sg_in4/6` (keyed by source address, profile, protocol, destination port); then the
//! source is looked up and a packet from a governed port must be in `sg_out4/6` (keyed
//! by destination address). Only new connections get here: replies are accepted
//! before, which makes groups stateful, and both checks come before the contract
//! tiers, so a contract deny still wins and a contract permit alone is not enough.
//!
//! nftables refuses overlapping elements in an interval set, so each profile's rules
//! are turned into disjoint boxes (address range, profile, protocol range, port
//! range) that together cover exactly what the rules allow.

use super::render::{Element, el};
use crate::security::{Allow, SecurityDesired};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// An inclusive range on one dimension (addresses need 128 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Range {
    lo: u128,
    hi: u128,
}

impl Range {
    fn overlaps(self, o: Range) -> bool {
        self.lo <= o.hi && o.lo <= self.hi
    }

    fn width(self) -> u128 {
        self.hi - self.lo
    }
}

/// Dimensions: address, protocol, destination port (the profile is fixed per call).
type Cube = [Range; 3];

/// A cube without its address: protocol, destination port.
type Service = [Range; 2];

fn overlaps(a: &Service, b: &Service) -> bool {
    a.iter().zip(b).all(|(x, y)| x.overlaps(*y))
}

/// `a` minus `b`, as disjoint pieces.
fn subtract(a: &Service, b: &Service) -> Vec<Service> {
    if !overlaps(a, b) {
        return vec![*a];
    }
    let mut rest = *a;
    let mut out = Vec::new();
    for d in 0..2 {
        if rest[d].lo < b[d].lo {
            let mut piece = rest;
            piece[d].hi = b[d].lo - 1;
            out.push(piece);
            rest[d].lo = b[d].lo;
        }
        if rest[d].hi > b[d].hi {
            let mut piece = rest;
            piece[d].lo = b[d].hi + 1;
            out.push(piece);
            rest[d].hi = b[d].hi;
        }
    }
    out
}

/// Disjoint (protocol, port) boxes covering the union of `services`. Few per address:
/// the services of the rules that cover one address range.
fn disjoint_services(services: &[Service]) -> Vec<Service> {
    let mut wide_first = services.to_vec();
    wide_first.sort_by_key(|s| std::cmp::Reverse((s[1].width(), s[0].width())));
    let mut out: Vec<Service> = Vec::new();
    for service in wide_first {
        let mut pieces = vec![service];
        for have in &out {
            pieces = pieces.iter().flat_map(|p| subtract(p, have)).collect();
        }
        out.extend(pieces);
    }
    out.sort();
    out
}

/// Disjoint cubes covering the union of `cubes`, by a sweep along the address axis:
/// between two consecutive range ends the same services apply, and runs of addresses
/// with the same services become one range. Cost O(n log n) in the rules (plus the
/// few services per range), so a group with thousands of members stays cheap, and
/// one member more changes one or two elements.
fn disjoint_union(cubes: Vec<Cube>) -> Vec<Cube> {
    // (address, +1 opens / -1 closes, service); a range closes after its last address.
    let mut events: Vec<(u128, i32, Service)> = Vec::with_capacity(cubes.len() * 2);
    for c in &cubes {
        let service = [c[1], c[2]];
        events.push((c[0].lo, 1, service));
        if let Some(after) = c[0].hi.checked_add(1) {
            events.push((after, -1, service));
        }
    }
    events.sort();
    let mut active: BTreeMap<Service, usize> = BTreeMap::new();
    let mut out = Vec::new();
    // The range being built: its start and its services' disjoint cover.
    let mut open: Option<(u128, Vec<Service>)> = None;
    let mut i = 0;
    while i < events.len() {
        let at = events[i].0;
        while i < events.len() && events[i].0 == at {
            let (_, delta, service) = events[i];
            if delta > 0 {
                *active.entry(service).or_default() += 1;
            } else if let Some(n) = active.get_mut(&service) {
                *n -= 1;
                if *n == 0 {
                    active.remove(&service);
                }
            }
            i += 1;
        }
        let services: Vec<Service> = active.keys().copied().collect();
        let cover = disjoint_services(&services);
        match &open {
            Some((_, have)) if *have == cover => continue,
            Some((start, have)) => {
                for s in have {
                    out.push([
                        Range {
                            lo: *start,
                            hi: at - 1,
                        },
                        s[0],
                        s[1],
                    ]);
                }
            }
            None => {}
        }
        open = (!cover.is_empty()).then_some((at, cover));
    }
    if let Some((start, have)) = open {
        let hi = cubes.iter().map(|c| c[0].hi).max().unwrap_or(start);
        for s in have {
            out.push([Range { lo: start, hi }, s[0], s[1]]);
        }
    }
    out
}

fn address_range(net: &IpNet) -> Range {
    match net {
        IpNet::V4(n) => Range {
            lo: u128::from(u32::from(n.network())),
            hi: u128::from(u32::from(n.broadcast())),
        },
        IpNet::V6(n) => Range {
            lo: u128::from(n.network()),
            hi: u128::from(n.broadcast()),
        },
    }
}

fn cube(a: &Allow) -> Cube {
    let proto = match a.proto {
        Some(p) => Range {
            lo: u128::from(p),
            hi: u128::from(p),
        },
        None => Range { lo: 0, hi: 255 },
    };
    [
        address_range(&a.remote),
        proto,
        Range {
            lo: u128::from(a.ports.lo),
            hi: u128::from(a.ports.hi),
        },
    ]
}

fn address_text(v: u128, v4: bool) -> String {
    if v4 {
        Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX)).to_string()
    } else {
        Ipv6Addr::from(v).to_string()
    }
}

/// Always `lo-hi`, even for one value: nft 1.0.6 cannot delete an element of a
/// concatenated interval set written as single values (it sends no range end).
fn range_text(r: Range, text: impl Fn(u128) -> String) -> String {
    format!("{}-{}", text(r.lo), text(r.hi))
}

/// Set key order: address first (nft 1.0.6 mis-reads interval sets that start with
/// a `mark` when it lists them back), then profile, protocol, port.
fn key(c: &Cube, profile: u32, v4: bool) -> String {
    format!(
        "{} . {profile} . {} . {}",
        range_text(c[0], |v| address_text(v, v4)),
        range_text(c[1], |v| v.to_string()),
        range_text(c[2], |v| v.to_string()),
    )
}

/// Every element of the `sg_*` sets for `security`.
pub fn security_elements(security: &SecurityDesired) -> BTreeSet<Element> {
    let mut out = BTreeSet::new();
    for (addr, profile) in &security.addresses {
        let map = if addr.is_ipv4() {
            "sg_profile4"
        } else {
            "sg_profile6"
        };
        out.insert(el("inet", map, addr.to_string(), Some(profile.to_string())));
    }
    for (profile, rules) in &security.profiles {
        for (allows, stem) in [(&rules.ingress, "sg_in"), (&rules.egress, "sg_out")] {
            for v4 in [true, false] {
                let set = format!("{stem}{}", if v4 { 4 } else { 6 });
                let mut intervals = Vec::new();
                for a in allows.iter().filter(|a| a.remote.addr().is_ipv4() == v4) {
                    match hashed(a, *profile) {
                        Some((kind, key)) => {
                            out.insert(el("inet", &format!("{set}{kind}"), key, None));
                        }
                        None => intervals.push(cube(a)),
                    }
                }
                for c in disjoint_union(intervals) {
                    out.insert(el("inet", &set, key(&c, *profile, v4), None));
                }
            }
        }
    }
    out
}

/// The hash set and key for an allow whose peer is one address and whose ports are
/// all, one or none: nearly every element (remote groups expand to addresses).
/// Hash sets may overlap each other and the interval set (any hit admits), and their
/// updates cost O(1); the interval set's cost grows with its size, so it keeps only
/// prefixes and port ranges.
fn hashed(a: &Allow, profile: u32) -> Option<(&'static str, String)> {
    if a.remote.prefix_len() != a.remote.max_prefix_len() {
        return None;
    }
    let addr = a.remote.addr();
    match a.proto {
        None => Some(("_any", format!("{addr} . {profile}"))),
        Some(p) if a.ports.is_any() => Some(("_proto", format!("{addr} . {profile} . {p}"))),
        Some(p) if a.ports.lo == a.ports.hi => Some((
            "_port",
            format!("{addr} . {profile} . {p} . {}", a.ports.lo),
        )),
        Some(_) => None,
    }
}

/// Whether `ip` is admitted, per the rendered cubes (for tests: reads the elements
/// back rather than the rules).
#[cfg(test)]
use std::net::IpAddr;

#[cfg(test)]
fn admitted(
    elements: &BTreeSet<Element>,
    set: &str,
    ip: IpAddr,
    profile: u32,
    proto: u8,
    port: u16,
) -> bool {
    let v = match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let point = [v, u128::from(profile), u128::from(proto), u128::from(port)];
    let sets = [
        set.to_string(),
        format!("{set}_any"),
        format!("{set}_proto"),
        format!("{set}_port"),
    ];
    elements.iter().filter(|e| sets.contains(&e.set)).any(|e| {
        key_ranges(&e.key)
            .iter()
            .zip(point)
            .all(|((lo, hi), x)| *lo <= x && x <= *hi)
    })
}

/// The element's key as ranges, one per field.
#[cfg(test)]
fn key_ranges(key: &str) -> Vec<(u128, u128)> {
    let num = |s: &str| -> u128 {
        s.parse::<u128>()
            .ok()
            .unwrap_or_else(|| match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => u128::from(u32::from(a)),
                Ok(IpAddr::V6(a)) => u128::from(a),
                Err(_) => panic!("bad field {s}"),
            })
    };
    key.split(" . ")
        .map(|t| match t.split_once('-') {
            Some((lo, hi)) => (num(lo), num(hi)),
            None => (num(t), num(t)),
        })
        .collect()
}

/// nftables refuses overlapping elements: no two elements of `set` may share a point.
#[cfg(test)]
fn assert_pairwise_disjoint(elements: &BTreeSet<Element>, set: &str) {
    let keys: Vec<Vec<(u128, u128)>> = elements
        .iter()
        .filter(|e| e.set == set)
        .map(|e| key_ranges(&e.key))
        .collect();
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            let overlap = a.iter().zip(b).all(|(x, y)| x.0 <= y.1 && y.0 <= x.1);
            assert!(!overlap, "{set}: {a:?} overlaps {b:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::ProfileRules;
    use weft_model::PortRange;

    fn allow(remote: &str, proto: Option<u8>, ports: PortRange) -> Allow {
        Allow {
            remote: remote.parse().unwrap_or_else(|_| unreachable!()),
            proto,
            ports,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn overlapping_rules_become_disjoint_elements_that_cover_the_same_space() {
        let rules = ProfileRules {
            ingress: [
                allow("10.0.0.0/24", Some(6), PortRange::single(22)),
                allow("10.0.0.5/32", None, PortRange::ANY),
                allow("10.0.0.0/16", Some(6), PortRange { lo: 20, hi: 30 }),
                allow("fd00::/64", Some(58), PortRange::ANY),
            ]
            .into(),
            egress: [allow("0.0.0.0/0", None, PortRange::ANY)].into(),
        };
        let s = SecurityDesired {
            addresses: [(ip("10.0.0.9"), 7)].into(),
            profiles: [(7, rules)].into(),
        };
        let els = security_elements(&s);
        assert_pairwise_disjoint(&els, "sg_in4");
        assert_pairwise_disjoint(&els, "sg_in6");
        assert!(admitted(&els, "sg_in4", ip("10.0.0.5"), 7, 17, 53));
        assert!(admitted(&els, "sg_in4", ip("10.0.0.77"), 7, 6, 22));
        assert!(admitted(&els, "sg_in4", ip("10.0.200.1"), 7, 6, 25));
        assert!(!admitted(&els, "sg_in4", ip("10.0.200.1"), 7, 6, 31));
        assert!(!admitted(&els, "sg_in4", ip("10.0.0.77"), 7, 17, 22));
        assert!(!admitted(&els, "sg_in4", ip("10.1.0.1"), 7, 6, 22));
        assert!(
            !admitted(&els, "sg_in4", ip("10.0.0.5"), 8, 6, 22),
            "other profile"
        );
        assert!(admitted(&els, "sg_in6", ip("fd00::1"), 7, 58, 0));
        assert!(!admitted(&els, "sg_in6", ip("fd00::1"), 7, 6, 22));
        assert!(admitted(&els, "sg_out4", ip("192.0.2.1"), 7, 6, 443));
        assert!(els.iter().any(|e| e.set == "sg_profile4"
            && e.key == "10.0.0.9"
            && e.value.as_deref() == Some("7")));
    }

    #[test]
    fn the_union_is_exact_on_a_grid() {
        // Random-ish overlapping cubes; every grid point is admitted iff some rule says so.
        let mut allows = Vec::new();
        for i in 0..12u8 {
            let net = format!("10.0.{}.{}/{}", i % 3, (i * 16) % 64, 26 + (i % 5));
            let ports = PortRange {
                lo: u16::from(i) * 3,
                hi: u16::from(i) * 3 + 7,
            };
            allows.push(allow(&net, if i % 4 == 0 { None } else { Some(6) }, ports));
        }
        let rules = ProfileRules {
            ingress: allows.iter().cloned().collect(),
            egress: BTreeSet::new(),
        };
        let s = SecurityDesired {
            addresses: BTreeSet::from([ip("10.9.9.9")])
                .into_iter()
                .map(|a| (a, 3))
                .collect(),
            profiles: [(3, rules)].into(),
        };
        let els = security_elements(&s);
        assert_pairwise_disjoint(&els, "sg_in4");
        for third in 0..3u8 {
            for fourth in (0..80u8).step_by(3) {
                let a = ip(&format!("10.0.{third}.{fourth}"));
                for proto in [6u8, 17] {
                    for port in 0..45u16 {
                        let want = allows.iter().any(|r| {
                            r.remote.contains(&a)
                                && r.proto.is_none_or(|p| p == proto)
                                && r.ports.contains(port)
                        });
                        assert_eq!(
                            admitted(&els, "sg_in4", a, 3, proto, port),
                            want,
                            "{a} {proto} {port}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn one_more_member_is_one_more_element() {
        let members = |n: u32| -> BTreeSet<Allow> {
            (0..n)
                .map(|i| {
                    allow(
                        &format!("10.2.{}.{}/32", i / 100, 2 * (i % 100)),
                        None,
                        PortRange::ANY,
                    )
                })
                .chain([allow("10.9.0.0/16", Some(6), PortRange::single(22))])
                .collect()
        };
        let with = |n: u32| SecurityDesired {
            addresses: [(ip("10.2.0.0"), 1)].into(),
            profiles: [(
                1,
                ProfileRules {
                    ingress: members(n),
                    egress: BTreeSet::new(),
                },
            )]
            .into(),
        };
        let before = security_elements(&with(1000));
        let after = security_elements(&with(1001));
        assert_pairwise_disjoint(&after, "sg_in4");
        let changed = before.symmetric_difference(&after).count();
        assert_eq!(changed, 1, "one member more is one element more");
    }
}
