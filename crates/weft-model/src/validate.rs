//! Whole-model checks that need more than one object: references, subnet overlaps,
//! gateways, and combinations of attributes.

use crate::model::*;
use crate::path::{EpgPath, ObjectPath};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, with where it is and what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Location,
    pub path: ObjectPath,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}: {}", self.loc, self.path, self.message)
    }
}

/// Everything [`validate`] found. A model with any error must be rejected whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    pub diagnostics: Vec<Diagnostic>,
}

impl ValidationReport {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

struct Checker {
    out: Vec<Diagnostic>,
}

impl Checker {
    fn error(&mut self, loc: &Location, path: &ObjectPath, message: String) {
        self.out.push(Diagnostic {
            severity: Severity::Error,
            loc: loc.clone(),
            path: path.clone(),
            message,
        });
    }

    fn warning(&mut self, loc: &Location, path: &ObjectPath, message: String) {
        self.out.push(Diagnostic {
            severity: Severity::Warning,
            loc: loc.clone(),
            path: path.clone(),
            message,
        });
    }

    /// Every name in `names` must be a key of `known`, and appear once.
    fn references<T>(
        &mut self,
        loc: &Location,
        path: &ObjectPath,
        attribute: &str,
        kind: &str,
        names: &[String],
        known: &BTreeMap<String, T>,
    ) {
        let mut seen = BTreeSet::new();
        for name in names {
            if !known.contains_key(name) {
                self.error(loc, path, format!("{attribute}: unknown {kind} {name:?}"));
            }
            if !seen.insert(name) {
                self.error(
                    loc,
                    path,
                    format!("{attribute}: {kind} {name:?} is listed twice"),
                );
            }
        }
    }
}

/// Checks a parsed model as a whole. Errors and warnings are all reported at once,
/// in a stable order (by file and line).
pub fn validate(model: &Model) -> ValidationReport {
    let mut c = Checker { out: Vec::new() };
    for (tname, tenant) in &model.tenants {
        check_tenant(&mut c, tname, tenant);
    }
    c.out
        .sort_by(|a, b| (&a.loc, a.severity).cmp(&(&b.loc, b.severity)));
    ValidationReport { diagnostics: c.out }
}

fn check_tenant(c: &mut Checker, tname: &str, t: &Tenant) {
    let tpath = ObjectPath::tenant(tname);

    for (fname, filter) in &t.filters {
        let fpath = tpath.child("filter", fname);
        if filter.entries.is_empty() {
            c.error(&filter.loc, &fpath, "filter has no entry".into());
        }
        for (ename, e) in &filter.entries {
            if !e.protocol.has_ports() && (!e.source_port.is_any() || !e.destination_port.is_any())
            {
                c.error(
                    &e.loc,
                    &fpath.child("entry", ename),
                    format!("ports need protocol tcp or udp, not {}", e.protocol),
                );
            }
        }
    }

    for (cname, contract) in &t.contracts {
        let cpath = tpath.child("contract", cname);
        if contract.subjects.is_empty() {
            c.warning(
                &contract.loc,
                &cpath,
                "contract has no subject and permits nothing".into(),
            );
        }
        for (sname, s) in &contract.subjects {
            let spath = cpath.child("subject", sname);
            c.references(&s.loc, &spath, "filters", "filter", &s.filters, &t.filters);
            if s.filters.is_empty() {
                c.error(&s.loc, &spath, "subject lists no filter".into());
            }
        }
    }
    for (name, taboo) in &t.taboos {
        let path = tpath.child("taboo", name);
        for (sname, s) in &taboo.subjects {
            let spath = path.child("subject", sname);
            c.references(&s.loc, &spath, "filters", "filter", &s.filters, &t.filters);
            if s.filters.is_empty() {
                c.error(&s.loc, &spath, "subject lists no filter".into());
            }
        }
    }

    check_security_groups(c, &tpath, t);

    let mut provided: BTreeSet<&str> = BTreeSet::new();
    let mut consumers: Vec<(&str, &Location, ObjectPath)> = Vec::new();
    for (vname, vrf) in &t.vrfs {
        let path = tpath.child("vrf", vname).child("any", "any");
        c.references(
            &vrf.any.loc,
            &path,
            "provides",
            "contract",
            &vrf.any.provides,
            &t.contracts,
        );
        c.references(
            &vrf.any.loc,
            &path,
            "consumes",
            "contract",
            &vrf.any.consumes,
            &t.contracts,
        );
        for name in vrf.any.provides.iter().chain(&vrf.any.consumes) {
            if t.contracts
                .get(name)
                .is_some_and(|k| k.scope == Scope::ApplicationProfile)
            {
                c.error(
                    &vrf.any.loc,
                    &path,
                    format!(
                        "contract {name:?} has scope application-profile, which \"any\" cannot use \
                         (use scope vrf or tenant)"
                    ),
                );
            }
        }
        provided.extend(vrf.any.provides.iter().map(String::as_str));
        consumers.extend(
            vrf.any
                .consumes
                .iter()
                .map(|n| (n.as_str(), &vrf.any.loc, path.clone())),
        );
    }

    for (bname, bd) in &t.bridge_domains {
        let path = tpath.child("bridge_domain", bname);
        if !t.vrfs.contains_key(&bd.vrf) {
            c.error(&bd.loc, &path, format!("vrf: unknown vrf {:?}", bd.vrf));
        }
        for (cidr, s) in &bd.subnets {
            let spath = path.child("subnet", cidr);
            if !s.cidr.contains(&s.gateway) {
                c.error(
                    &s.loc,
                    &spath,
                    format!("gateway {} is outside subnet {}", s.gateway, s.cidr),
                );
            } else if s.gateway == s.cidr.network() && s.cidr.prefix_len() < s.cidr.max_prefix_len()
            {
                c.error(
                    &s.loc,
                    &spath,
                    format!("gateway {} is the subnet's network address", s.gateway),
                );
            }
        }
    }
    check_overlaps(c, &tpath, t);

    for (aname, ap) in &t.app_profiles {
        for (ename, epg) in &ap.epgs {
            let path = ObjectPath::epg(&EpgPath::new(tname, aname, ename));
            if !t.bridge_domains.contains_key(&epg.bridge_domain) {
                c.error(
                    &epg.loc,
                    &path,
                    format!(
                        "bridge_domain: unknown bridge_domain {:?}",
                        epg.bridge_domain
                    ),
                );
            }
            c.references(
                &epg.loc,
                &path,
                "provides",
                "contract",
                &epg.provides,
                &t.contracts,
            );
            c.references(
                &epg.loc,
                &path,
                "consumes",
                "contract",
                &epg.consumes,
                &t.contracts,
            );
            c.references(&epg.loc, &path, "taboos", "taboo", &epg.taboos, &t.taboos);
            provided.extend(epg.provides.iter().map(String::as_str));
            consumers.extend(
                epg.consumes
                    .iter()
                    .map(|n| (n.as_str(), &epg.loc, path.clone())),
            );
        }
    }
    for (name, loc, path) in consumers {
        if t.contracts.contains_key(name) && !provided.contains(name) {
            c.warning(
                loc,
                &path,
                format!("consumes contract {name:?}, which nothing provides"),
            );
        }
    }
}

/// Subnets of all bridge domains of one VRF may not overlap; other VRFs may reuse them.
///
/// Each subnet that overlaps one listed before it (bridge domains by name, then subnets
/// by CIDR) is reported once, naming the first such subnet. CIDR blocks either nest or
/// are disjoint, so one sorted sweep per VRF finds them in O(n log n).
/// At most this many security groups per tenant, and rules per group: a group's rules
/// are installed per member port, so they bound the data path's work per port.
pub const MAX_SECURITY_GROUPS: usize = 1_000;
pub const MAX_SECURITY_RULES: usize = 1_000;

fn check_security_groups(c: &mut Checker, tpath: &ObjectPath, t: &Tenant) {
    if t.security_groups.len() > MAX_SECURITY_GROUPS {
        c.error(
            &t.loc,
            tpath,
            format!(
                "{} security groups; at most {MAX_SECURITY_GROUPS} per tenant",
                t.security_groups.len()
            ),
        );
    }
    for (gname, group) in &t.security_groups {
        let gpath = tpath.child("security_group", gname);
        if group.rules.len() > MAX_SECURITY_RULES {
            c.error(
                &group.loc,
                &gpath,
                format!(
                    "{} rules; at most {MAX_SECURITY_RULES} per security group",
                    group.rules.len()
                ),
            );
        }
        for (rname, r) in &group.rules {
            let rpath = gpath.child("rule", rname);
            if !r.protocol.has_ports() && !r.destination_port.is_any() {
                c.error(
                    &r.loc,
                    &rpath,
                    format!(
                        "destination_port needs protocol tcp or udp, not {}",
                        r.protocol
                    ),
                );
            }
            if r.remote_ip_prefix.is_some() && r.remote_group.is_some() {
                c.error(
                    &r.loc,
                    &rpath,
                    "remote_ip_prefix and remote_group are alternatives; set one".into(),
                );
            }
            if let Some(net) = r.remote_ip_prefix {
                let family = if net.addr().is_ipv4() {
                    IpFamily::V4
                } else {
                    IpFamily::V6
                };
                if !r.ether_type.matches(family) {
                    c.error(
                        &r.loc,
                        &rpath,
                        format!(
                            "remote_ip_prefix {net} does not match ether_type {:?}",
                            r.ether_type
                        ),
                    );
                }
            }
            if let Some(remote) = &r.remote_group
                && !t.security_groups.contains_key(remote)
            {
                c.error(
                    &r.loc,
                    &rpath,
                    format!("remote_group {remote:?} is not a security group of this tenant"),
                );
            }
        }
    }
}

fn check_overlaps(c: &mut Checker, tpath: &ObjectPath, t: &Tenant) {
    let mut by_vrf: BTreeMap<&str, Vec<(&str, &Subnet)>> = BTreeMap::new();
    for (bname, bd) in &t.bridge_domains {
        for s in bd.subnets.values() {
            by_vrf.entry(&bd.vrf).or_default().push((bname, s));
        }
    }
    for subnets in by_vrf.values() {
        let nets: Vec<IpNet> = subnets.iter().map(|(_, s)| s.cidr).collect();
        for (later, earlier) in first_overlaps(&nets) {
            let (abd, a) = subnets[earlier];
            let (bbd, b) = subnets[later];
            let path = tpath
                .child("bridge_domain", bbd)
                .child("subnet", &b.cidr.to_string());
            c.error(
                &b.loc,
                &path,
                format!(
                    "subnet {} overlaps subnet {} of bridge_domain {abd:?} ({}) in the same vrf",
                    b.cidr, a.cidr, a.loc
                ),
            );
        }
    }
}

/// For every net that overlaps a net before it in `nets`, the pair (its index, the
/// smallest index it overlaps), in increasing order of the first.
///
/// Two CIDR blocks overlap exactly when one contains the other. Sorted by (family,
/// network, prefix length), the blocks containing a block are the chain of open blocks
/// before it (a stack), and the blocks it contains follow it: a forest, walked forwards
/// for the smallest index among ancestors and backwards for the smallest among
/// descendants.
fn first_overlaps(nets: &[IpNet]) -> Vec<(usize, usize)> {
    // (family, first address, last address, prefix length) as comparable integers.
    let key = |n: &IpNet| match n {
        IpNet::V4(n) => (
            4u8,
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
            n.prefix_len(),
        ),
        IpNet::V6(n) => (
            6u8,
            u128::from(n.network()),
            u128::from(n.broadcast()),
            n.prefix_len(),
        ),
    };
    let keys: Vec<_> = nets.iter().map(key).collect();
    let mut order: Vec<usize> = (0..nets.len()).collect();
    order.sort_by_key(|&i| (keys[i].0, keys[i].1, keys[i].3, i));

    // parent[k]: the position in `order` of the innermost block containing order[k].
    let mut parent: Vec<Option<usize>> = vec![None; order.len()];
    let mut ancestors_min: Vec<usize> = vec![usize::MAX; order.len()];
    let mut open: Vec<usize> = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        let (family, first, _, _) = keys[i];
        while let Some(&top) = open.last() {
            let (tfamily, _, tlast, _) = keys[order[top]];
            if tfamily == family && first <= tlast {
                break;
            }
            open.pop();
        }
        if let Some(&p) = open.last() {
            parent[k] = Some(p);
            ancestors_min[k] = order[p].min(ancestors_min[p]);
        }
        open.push(k);
    }
    let mut descendants_min: Vec<usize> = vec![usize::MAX; order.len()];
    for k in (0..order.len()).rev() {
        if let Some(p) = parent[k] {
            descendants_min[p] = descendants_min[p].min(order[k]).min(descendants_min[k]);
        }
    }
    let mut found: Vec<(usize, usize)> = order
        .iter()
        .enumerate()
        .filter_map(|(k, &i)| {
            let first = ancestors_min[k].min(descendants_min[k]);
            (first < i).then_some((i, first))
        })
        .collect();
    found.sort_unstable();
    found
}

#[cfg(test)]
mod tests {
    use super::first_overlaps;
    use ipnet::IpNet;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("a CIDR")).collect()
    }

    /// The quadratic definition the sweep must agree with.
    fn naive(nets: &[IpNet]) -> Vec<(usize, usize)> {
        (0..nets.len())
            .filter_map(|j| {
                (0..j)
                    .find(|&i| {
                        nets[i].contains(&nets[j].network()) || nets[j].contains(&nets[i].network())
                    })
                    .map(|i| (j, i))
            })
            .collect()
    }

    #[test]
    fn nested_identical_and_adjacent_subnets() {
        let list = nets(&[
            "10.0.0.0/24",   // 0
            "10.0.1.0/24",   // 1: adjacent to 0, no overlap
            "10.0.0.128/25", // 2: inside 0
            "10.0.1.0/24",   // 3: identical to 1
            "10.0.0.0/16",   // 4: contains 0, 1, 2, 3
            "10.0.2.0/30",   // 5: inside 4 only
            "10.0.2.4/30",   // 6: inside 4, adjacent to 5
            "10.1.0.0/24",   // 7: outside everything
            "fd00::/64",     // 8: IPv6, never overlaps IPv4
            "fd00::/120",    // 9: inside 8
            "0.0.0.0/0",     // 10: every IPv4 block
            "::/0",          // 11: every IPv6 block
        ]);
        let found = first_overlaps(&list);
        assert_eq!(
            found,
            vec![
                (2, 0),
                (3, 1),
                (4, 0),
                (5, 4),
                (6, 4),
                (9, 8),
                (10, 0),
                (11, 8)
            ]
        );
        assert_eq!(found, naive(&list));
    }

    #[test]
    fn the_sweep_agrees_with_the_pairwise_definition() {
        // A deterministic mix of nested, identical and disjoint blocks of both families.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let n = usize::try_from(next() % 40).unwrap_or(0);
            let list: Vec<IpNet> = (0..n)
                .map(|_| {
                    let r = next();
                    if r % 5 == 0 {
                        let prefix = 112 + u8::try_from(r % 17).unwrap_or(0);
                        let addr = std::net::Ipv6Addr::from(
                            0xfd00_u128 << 112 | u128::from((r >> 8) % 64),
                        );
                        IpNet::V6(ipnet::Ipv6Net::new(addr, prefix).expect("prefix").trunc())
                    } else {
                        let prefix = 24 + u8::try_from(r % 9).unwrap_or(0);
                        let addr = std::net::Ipv4Addr::from(
                            0x0a00_0000 | u32::try_from((r >> 8) % 512).unwrap_or(0),
                        );
                        IpNet::V4(ipnet::Ipv4Net::new(addr, prefix).expect("prefix").trunc())
                    }
                })
                .collect();
            assert_eq!(first_overlaps(&list), naive(&list), "{list:?}");
        }
    }
}
