//! Rendering that costs what changed, not what is installed.
//!
//! [`VrfRenderer`] remembers, per VRF namespace, the inputs it rendered last (bridge
//! domains, local endpoints, each tier's rules) and what they rendered to. An update
//! compares inputs (cheap equality checks), renders only the parts whose inputs
//! changed and returns the element delta. The result always equals
//! [`render_vrf`](super::render_vrf) of the same input (unit-tested below).
//!
//! Per tier:
//! - single-class, single-port TCP/UDP rules ("exact" keys, the bulk of a big table)
//!   are reference-counted per key: an added or removed rule touches only its keys;
//! - everything else (wildcards, port ranges, portless protocols, tiers with mixed
//!   actions) is order-dependent (first match wins, disjoint intervals) and is
//!   re-rendered for the tier when one of those rules changes. Its cost is that of
//!   the tier's ordered rules only, never of its exact rules.
//!
//! Rule lists are compared by common prefix and suffix, then the middle as a
//! multiset, so one inserted contract costs O(rules) cheap comparisons plus the
//! rendering of the contract's own rules.

use super::boxes::{Disjoint, rule_boxes};
use super::render::{Element, TIERS, el, endpoint_elements, exact_keys, key_of, verdict};
use super::security::security_elements;
use crate::desired::{LocalEndpoint, VrfDesired};
use crate::security::SecurityDesired;
use std::collections::{BTreeSet, HashMap};
use weft_compiler::{ClassSel, Rule};
use weft_model::{Action, PortRange, Protocol};

/// What an update changes: remove `removed`, then add `added`. Disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderDelta {
    pub added: Vec<Element>,
    pub removed: Vec<Element>,
}

impl RenderDelta {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Drops elements that are both removed and added (moved between inputs).
    fn normalise(&mut self) {
        if self.added.is_empty() || self.removed.is_empty() {
            return;
        }
        let added: BTreeSet<Element> = std::mem::take(&mut self.added).into_iter().collect();
        let removed: BTreeSet<Element> = std::mem::take(&mut self.removed).into_iter().collect();
        self.added = added.difference(&removed).cloned().collect();
        self.removed = removed.difference(&added).cloned().collect();
    }
}

/// What rendering reads of a rule (everything but its trace): compact, so that
/// comparing 100k rules reads no heap memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct RuleKey {
    tier: weft_compiler::Tier,
    src: ClassSel,
    dst: ClassSel,
    family: Option<weft_model::IpFamily>,
    proto: Protocol,
    sport: PortRange,
    dport: PortRange,
    action: Action,
}

impl RuleKey {
    fn of(r: &Rule) -> Self {
        Self {
            tier: r.tier,
            src: r.src,
            dst: r.dst,
            family: r.family,
            proto: r.proto,
            sport: r.sport,
            dport: r.dport,
            action: r.action,
        }
    }

    /// A rule that renders like the original (the trace is not rendered).
    fn rule(self) -> Rule {
        Rule {
            tier: self.tier,
            src: self.src,
            dst: self.dst,
            family: self.family,
            proto: self.proto,
            sport: self.sport,
            dport: self.dport,
            action: self.action,
            trace: weft_compiler::Trace::IntraEpg {
                epg: weft_model::EpgPath::new("", "", "").into(),
            },
        }
    }
}

#[derive(Debug, Default)]
struct TierCache {
    /// The tier's rules as last rendered, in order.
    rules: Vec<RuleKey>,
    permits: usize,
    denies: usize,
    /// Exact-map keys -> (action, number of rules producing the key).
    exact: HashMap<String, (Action, u32)>,
    /// Range and portless elements (order-dependent), as last rendered.
    ordered: BTreeSet<Element>,
}

impl TierCache {
    fn mixed(&self) -> bool {
        self.permits > 0 && self.denies > 0
    }

    fn count(&mut self, rule: &Rule, up: bool) {
        let c = match rule.action {
            Action::Permit => &mut self.permits,
            Action::Deny => &mut self.denies,
        };
        if up {
            *c += 1;
        } else {
            *c -= 1;
        }
    }

    /// Brings the tier to `rules`; appends the element changes to `delta`.
    fn update(&mut self, stem: &str, rules: &[Rule], delta: &mut RenderDelta) {
        let old = &self.rules;
        let prefix = old
            .iter()
            .zip(rules.iter())
            .take_while(|(a, b)| **a == RuleKey::of(b))
            .count();
        if prefix == old.len() && prefix == rules.len() {
            return;
        }
        let max_suffix = old.len().min(rules.len()) - prefix;
        let suffix = old[prefix..]
            .iter()
            .rev()
            .zip(rules[prefix..].iter().rev())
            .take(max_suffix)
            .take_while(|(a, b)| **a == RuleKey::of(b))
            .count();
        let old_mid = &old[prefix..old.len() - suffix];
        let new_mid: Vec<RuleKey> = rules[prefix..rules.len() - suffix]
            .iter()
            .map(RuleKey::of)
            .collect();
        let (gone, came) = multiset_diff(old_mid, &new_mid);
        let was_mixed = self.mixed();
        let order_sensitive = old_mid
            .iter()
            .chain(new_mid.iter())
            .any(|r| !cheap_exact(&r.rule(), false));
        let gone: Vec<Rule> = gone.into_iter().map(|k| k.rule()).collect();
        let came: Vec<Rule> = came.into_iter().map(|k| k.rule()).collect();
        for r in &gone {
            self.count(r, false);
        }
        for r in &came {
            self.count(r, true);
        }
        let mixed = self.mixed();
        let exact_name = format!("{stem}_exact");
        if mixed != was_mixed {
            // Every rule changes map: start the tier over.
            for (k, (a, _)) in self.exact.drain() {
                delta
                    .removed
                    .push(el("inet", &exact_name, k, Some(verdict(a))));
            }
            for r in rules {
                add_exact(&mut self.exact, r, mixed, &exact_name, &mut delta.added);
            }
        } else {
            for r in &gone {
                remove_exact(&mut self.exact, r, mixed, &exact_name, &mut delta.removed);
            }
            for r in &came {
                add_exact(&mut self.exact, r, mixed, &exact_name, &mut delta.added);
            }
        }
        if mixed != was_mixed || order_sensitive || mixed {
            let ordered = render_ordered(stem, rules, mixed);
            delta
                .removed
                .extend(self.ordered.difference(&ordered).cloned());
            delta
                .added
                .extend(ordered.difference(&self.ordered).cloned());
            self.ordered = ordered;
        }
        // Patch the middle only: cloning a whole 100k-rule tier costs more than the rest.
        let end = self.rules.len() - suffix;
        self.rules.splice(prefix..end, new_mid);
    }
}

/// A sufficient condition (checked on fields, no allocation) for a rule to render
/// into exact keys only.
fn cheap_exact(rule: &Rule, mixed: bool) -> bool {
    !mixed
        && matches!(rule.proto, Protocol::Tcp | Protocol::Udp)
        && matches!(rule.src, ClassSel::Class(_))
        && matches!(rule.dst, ClassSel::Class(_))
        && rule.sport == PortRange::ANY
        && rule.dport.lo == rule.dport.hi
}

fn exact_keys_of(rule: &Rule, mixed: bool) -> Vec<String> {
    if mixed {
        return Vec::new();
    }
    let (ported, _) = rule_boxes(rule);
    ported
        .iter()
        .filter_map(|b| exact_keys(&b.0))
        .flatten()
        .collect()
}

fn add_exact(
    exact: &mut HashMap<String, (Action, u32)>,
    rule: &Rule,
    mixed: bool,
    set: &str,
    added: &mut Vec<Element>,
) {
    for k in exact_keys_of(rule, mixed) {
        let e = exact.entry(k.clone()).or_insert((rule.action, 0));
        e.1 += 1;
        if e.1 == 1 {
            added.push(el("inet", set, k, Some(verdict(e.0))));
        }
    }
}

fn remove_exact(
    exact: &mut HashMap<String, (Action, u32)>,
    rule: &Rule,
    mixed: bool,
    set: &str,
    removed: &mut Vec<Element>,
) {
    for k in exact_keys_of(rule, mixed) {
        if let Some(e) = exact.get_mut(&k) {
            e.1 -= 1;
            if e.1 == 0 {
                let a = e.0;
                exact.remove(&k);
                removed.push(el("inet", set, k, Some(verdict(a))));
            }
        }
    }
}

/// The order-dependent elements of one tier (same as the full renderer's).
fn render_ordered(stem: &str, rules: &[Rule], mixed: bool) -> BTreeSet<Element> {
    let mut range: Disjoint<6, Action> = Disjoint::default();
    let mut noport: Disjoint<4, Action> = Disjoint::default();
    for rule in rules.iter().filter(|r| !cheap_exact(r, mixed)) {
        let (ported, portless) = rule_boxes(rule);
        for b in ported {
            if mixed || exact_keys(&b.0).is_none() {
                range.add(b, rule.action);
            }
        }
        for b in portless {
            noport.add(b, rule.action);
        }
    }
    let mut out = BTreeSet::new();
    let (range_name, noport_name) = (format!("{stem}_range"), format!("{stem}_noport"));
    for (b, a) in range.boxes {
        out.insert(el("inet", &range_name, key_of(&b.0), Some(verdict(a))));
    }
    for (b, a) in noport.boxes {
        out.insert(el("inet", &noport_name, key_of(&b.0), Some(verdict(a))));
    }
    out
}

/// (in `old` only, in `new` only), counting duplicates.
fn multiset_diff<'a, T: Ord + std::hash::Hash>(
    old: &'a [T],
    new: &'a [T],
) -> (Vec<&'a T>, Vec<&'a T>) {
    if old.is_sorted() && new.is_sorted() {
        let (mut i, mut j) = (0, 0);
        let (mut gone, mut came) = (Vec::new(), Vec::new());
        while i < old.len() && j < new.len() {
            match old[i].cmp(&new[j]) {
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Less => {
                    gone.push(&old[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    came.push(&new[j]);
                    j += 1;
                }
            }
        }
        gone.extend(old[i..].iter());
        came.extend(new[j..].iter());
        return (gone, came);
    }
    let mut counts: HashMap<&T, i64> = HashMap::new();
    for r in old {
        *counts.entry(r).or_default() += 1;
    }
    for r in new {
        *counts.entry(r).or_default() -= 1;
    }
    let (mut gone, mut came) = (Vec::new(), Vec::new());
    for r in old {
        if let Some(c) = counts.get_mut(r)
            && *c > 0
        {
            *c -= 1;
            gone.push(r);
        }
    }
    for r in new {
        if let Some(c) = counts.get_mut(r)
            && *c < 0
        {
            *c += 1;
            came.push(r);
        }
    }
    (gone, came)
}

/// The incremental renderer of one VRF namespace.
#[derive(Debug, Default)]
pub struct VrfRenderer {
    endpoints: HashMap<String, (LocalEndpoint, Vec<Element>)>,
    tiers: Vec<TierCache>,
    /// The security groups rendered last and their elements: re-rendered as a whole
    /// when they change (their cost is the groups' own, never the rule tables').
    security: (SecurityDesired, BTreeSet<Element>),
}

impl VrfRenderer {
    pub fn new() -> Self {
        Self {
            tiers: TIERS.iter().map(|_| TierCache::default()).collect(),
            ..Default::default()
        }
    }

    /// Renders what changed since the last update (everything, the first time).
    pub fn update(&mut self, vrf: &VrfDesired) -> RenderDelta {
        let mut delta = RenderDelta::default();

        let mut seen: HashMap<&str, ()> = HashMap::with_capacity(vrf.local.len());
        for ep in &vrf.local {
            seen.insert(&ep.name, ());
            match self.endpoints.get(&ep.name) {
                Some((old, _)) if old == ep => {}
                _ => {
                    let els: Vec<Element> = endpoint_elements(ep).into_iter().collect();
                    delta.added.extend(els.iter().cloned());
                    if let Some((_, old)) =
                        self.endpoints.insert(ep.name.clone(), (ep.clone(), els))
                    {
                        delta.removed.extend(old);
                    }
                }
            }
        }
        if seen.len() != self.endpoints.len() {
            let gone: Vec<String> = self
                .endpoints
                .keys()
                .filter(|n| !seen.contains_key(n.as_str()))
                .cloned()
                .collect();
            for n in gone {
                if let Some((_, old)) = self.endpoints.remove(&n) {
                    delta.removed.extend(old);
                }
            }
        }

        if vrf.security != self.security.0 {
            let els = security_elements(&vrf.security);
            delta
                .removed
                .extend(self.security.1.difference(&els).cloned());
            delta
                .added
                .extend(els.difference(&self.security.1).cloned());
            self.security = (vrf.security.clone(), els);
        }

        let rules = &vrf.policy.rules;
        let tier_sorted = rules.is_sorted_by_key(|r| r.tier);
        for (i, (tier, stem)) in TIERS.iter().enumerate() {
            if tier_sorted {
                let lo = rules.partition_point(|r| r.tier < *tier);
                let hi = rules.partition_point(|r| r.tier <= *tier);
                self.tiers[i].update(stem, &rules[lo..hi], &mut delta);
            } else {
                let of_tier: Vec<Rule> =
                    rules.iter().filter(|r| r.tier == *tier).cloned().collect();
                self.tiers[i].update(stem, &of_tier, &mut delta);
            }
        }
        delta.normalise();
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::AddressPair;
    use crate::nft::render_vrf;
    use std::collections::BTreeMap;
    use weft_compiler::{BridgeDomainPolicy, ClassId, Tier, Trace, VrfPolicy};
    use weft_model::{EpgPath, ObjectPath};

    fn rule(
        tier: Tier,
        src: u16,
        dst: Option<u16>,
        proto: Protocol,
        dport: (u16, u16),
        action: Action,
    ) -> Rule {
        Rule {
            tier,
            src: ClassSel::Class(ClassId(src)),
            dst: dst.map_or(ClassSel::Vrf, |d| ClassSel::Class(ClassId(d))),
            family: None,
            proto,
            sport: PortRange::ANY,
            dport: PortRange {
                lo: dport.0,
                hi: dport.1,
            },
            action,
            trace: Trace::IntraEpg {
                epg: EpgPath::new("t", "a", "e").into(),
            },
        }
    }

    fn ep(i: u8, class: u16) -> LocalEndpoint {
        LocalEndpoint {
            name: format!("ep{i}"),
            netns: format!("weft-ep{i}"),
            interface: 0,
            class: ClassId(class),
            bridge_domain: ObjectPath::tenant("t").child("bd", "net"),
            ips: vec![format!("10.1.0.{}", 10 + i).parse().unwrap()],
            mac: [2, 0, 0, 0, 0, i],
            allowed_pairs: if i.is_multiple_of(2) {
                vec![AddressPair {
                    ip: format!("10.1.1.{i}").parse().unwrap(),
                    mac: Some([2, 0, 0, 0, 1, i]),
                }]
            } else {
                vec![]
            },
            port_security: true,
        }
    }

    fn vrf(rules: Vec<Rule>, local: Vec<LocalEndpoint>, vnis: &[u32]) -> VrfDesired {
        VrfDesired {
            policy: VrfPolicy {
                path: ObjectPath::tenant("t").child("vrf", "main"),
                id: 1,
                enforced: true,
                bridge_domains: vnis
                    .iter()
                    .map(|v| BridgeDomainPolicy {
                        path: ObjectPath::tenant("t").child("bd", &format!("bd{v}")),
                        vni: *v,
                        gateway_mac: [2, 0, 0, 0, 0, 1],
                        subnets: vec![],
                    })
                    .collect(),
                members: BTreeMap::new(),
                rules,
            },
            local,
            remote: vec![],
            security: Default::default(),
        }
    }

    /// A small deterministic generator (no dev-dependency needed).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    fn random_rule(g: &mut Lcg) -> Rule {
        let tiers = [
            Tier::Deny,
            Tier::IntraEpg,
            Tier::Contract,
            Tier::PreferredGroup,
        ];
        let protos = [
            Protocol::Tcp,
            Protocol::Tcp,
            Protocol::Udp,
            Protocol::Icmp,
            Protocol::Any,
        ];
        let tier = tiers[g.next(4) as usize];
        let lo = 80 + g.next(4) as u16;
        let hi = if g.next(3) == 0 {
            lo + g.next(5) as u16
        } else {
            lo
        };
        let isolated = tier == Tier::IntraEpg && g.next(3) == 0;
        let action = if isolated || tier == Tier::Deny {
            Action::Deny
        } else {
            Action::Permit
        };
        let dst = if g.next(6) == 0 {
            None
        } else {
            Some(1 + g.next(4) as u16)
        };
        rule(
            tier,
            1 + g.next(4) as u16,
            dst,
            protos[g.next(5) as usize],
            (lo, hi),
            action,
        )
    }

    #[test]
    fn incremental_updates_equal_a_full_render() {
        let mut g = Lcg(7);
        for sorted in [true, false] {
            let mut r = VrfRenderer::new();
            let mut installed: BTreeSet<Element> = BTreeSet::new();
            let mut rules: Vec<Rule> = Vec::new();
            let mut local: Vec<LocalEndpoint> = Vec::new();
            let mut vnis = vec![5000];
            for step in 0..300 {
                match g.next(6) {
                    0 | 1 => {
                        let n = 1 + g.next(3);
                        for _ in 0..n {
                            let at = g.next(rules.len() as u64 + 1) as usize;
                            rules.insert(at, random_rule(&mut g));
                        }
                    }
                    2 if !rules.is_empty() => {
                        let at = g.next(rules.len() as u64) as usize;
                        rules.remove(at);
                    }
                    3 => {
                        let i = g.next(8) as u8;
                        local.retain(|e| e.name != format!("ep{i}"));
                        if g.next(2) == 0 {
                            local.push(ep(i, 1 + g.next(4) as u16));
                        }
                    }
                    4 => {
                        vnis = if vnis.len() == 1 {
                            vec![5000, 5001]
                        } else {
                            vec![5001]
                        }
                    }
                    _ => {}
                }
                if sorted {
                    rules.sort();
                }
                let v = vrf(rules.clone(), local.clone(), &vnis);
                let d = r.update(&v);
                for e in &d.removed {
                    assert!(installed.remove(e), "step {step}: removing absent {e:?}");
                }
                for e in d.added {
                    assert!(
                        installed.insert(e.clone()),
                        "step {step}: adding present {e:?}"
                    );
                }
                assert_eq!(
                    installed,
                    render_vrf(&v).elements,
                    "step {step} (sorted: {sorted})"
                );
            }
        }
    }

    #[test]
    fn one_added_rule_renders_only_its_keys() {
        let base: Vec<Rule> = (0..1000)
            .map(|k| {
                rule(
                    Tier::Contract,
                    1 + (k % 30) as u16,
                    Some(1 + (k / 30) as u16),
                    Protocol::Tcp,
                    (1000, 1000),
                    Action::Permit,
                )
            })
            .collect();
        let mut r = VrfRenderer::new();
        let mut sorted = base.clone();
        sorted.sort();
        assert_eq!(
            r.update(&vrf(sorted.clone(), vec![], &[1])).added.len(),
            2000
        );
        assert!(r.update(&vrf(sorted.clone(), vec![], &[1])).is_empty());
        sorted.push(rule(
            Tier::Contract,
            99,
            Some(98),
            Protocol::Tcp,
            (443, 443),
            Action::Permit,
        ));
        sorted.sort();
        let d = r.update(&vrf(sorted, vec![], &[1]));
        assert_eq!((d.added.len(), d.removed.len()), (2, 0), "{d:?}");
    }
}
