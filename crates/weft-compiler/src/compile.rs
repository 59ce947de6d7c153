//! Model → per-VRF rule tables. Contracts are compiled one at a time and cached by a
//! fingerprint of everything they read, so that a change recompiles only what it touches.

use crate::alloc::{Allocation, AllocationError, ClassRequest};
use crate::budget::{CompileBudget, OverBudget};
use crate::rules::{
    BridgeDomainPolicy, ClassId, ClassSel, ContractSite, EpgPolicy, Flow, Rule, TabooSite, Tier,
    Trace, Verdict, VrfPolicy,
};
use ipnet::IpNet;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use weft_model::{
    Action, Contract, Epg, EpgPath, EtherType, Filter, IpFamily, Model, ObjectPath, PortRange,
    Scope,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Allocation(#[from] AllocationError),
    /// The model was not validated first.
    #[error("{object} refers to unknown {kind} {name:?}")]
    UnknownReference {
        object: ObjectPath,
        kind: &'static str,
        name: String,
    },
    #[error("unknown EPG {0}")]
    UnknownEpg(EpgPath),
    /// The model would compile to more rules or memory than the budget allows.
    #[error(transparent)]
    OverBudget(Box<OverBudget>),
}

/// The compiled policy of the whole model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompiledPolicy {
    pub vrfs: BTreeMap<ObjectPath, VrfPolicy>,
    pub epgs: BTreeMap<EpgPath, EpgPolicy>,
    /// Feed this back into the next compile to keep numbers stable.
    pub allocation: Allocation,
    /// Every tenant's security groups, by tenant and name, as the model states them:
    /// the fabric expands them per member port (`weft_fabric::desired`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub security_groups: BTreeMap<String, BTreeMap<String, weft_model::SecurityGroup>>,
}

impl CompiledPolicy {
    pub fn rule_count(&self) -> usize {
        self.vrfs.values().map(|v| v.rules.len()).sum()
    }

    /// Evaluates a flow from `src` to `dst` in the destination's VRF table, where the
    /// fabric enforces it.
    pub fn evaluate(
        &self,
        src: &EpgPath,
        dst: &EpgPath,
        flow: &Flow,
    ) -> Result<(Verdict<'_>, &VrfPolicy), CompileError> {
        let s = self
            .epgs
            .get(src)
            .ok_or_else(|| CompileError::UnknownEpg(src.clone()))?;
        let d = self
            .epgs
            .get(dst)
            .ok_or_else(|| CompileError::UnknownEpg(dst.clone()))?;
        let table = self
            .vrfs
            .get(&d.vrf)
            .ok_or_else(|| CompileError::UnknownEpg(dst.clone()))?;
        // A VRF-local class means nothing in another VRF: no path between them.
        if s.vrf != d.vrf && !s.class.is_global() {
            return Ok((
                Verdict {
                    action: Action::Deny,
                    rule: None,
                },
                table,
            ));
        }
        Ok((table.evaluate(s.class, d.class, flow), table))
    }
}

/// How much the last compile did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileStats {
    pub contracts: usize,
    pub contracts_recompiled: usize,
    pub rules: usize,
    pub rules_added: usize,
    pub rules_removed: usize,
}

/// What the compiler remembers of a contract: enough to know whether it changed and
/// which tables hold its rules. The rules themselves live only in those tables (a
/// contract's rules are found there by their trace), so a rule is stored once.
#[derive(Debug, Clone)]
struct CachedContract {
    fingerprint: u64,
    tables: BTreeSet<ObjectPath>,
}

/// A compiler that remembers its last output between runs, so that a change costs in
/// proportion to what it touches: unchanged contracts are neither recompiled nor copied.
#[derive(Debug, Default)]
pub struct Compiler {
    allocation: Allocation,
    cache: HashMap<ObjectPath, CachedContract>,
    /// Rules that come from EPGs and VRFs rather than contracts, per VRF, as last installed.
    base: BTreeMap<ObjectPath, Vec<Rule>>,
    last: Option<CompiledPolicy>,
    stats: CompileStats,
    budget: CompileBudget,
}

/// Compiles `model` once, keeping the numbers of `previous`, within the default budget.
pub fn compile(model: &Model, previous: &Allocation) -> Result<CompiledPolicy, CompileError> {
    compile_within(model, previous, CompileBudget::default())
}

/// Compiles `model` once, keeping the numbers of `previous`, refusing before any rule is
/// expanded if the result would exceed `budget`.
pub fn compile_within(
    model: &Model,
    previous: &Allocation,
    budget: CompileBudget,
) -> Result<CompiledPolicy, CompileError> {
    Compiler::new(previous.clone())
        .with_budget(budget)
        .build(model)
}

/// Rules to take out of and put into one VRF table.
#[derive(Default)]
struct Patch {
    /// Rules that do not come from contracts (base rules), by value.
    remove: HashSet<Rule>,
    /// Contracts whose every rule leaves the table.
    remove_contracts: HashSet<ObjectPath>,
    add: Vec<Rule>,
}

/// One EPG as the compiler sees it.
pub(crate) struct EpgNode<'m> {
    pub(crate) path: EpgPath,
    pub(crate) epg: &'m Epg,
    pub(crate) vrf: ObjectPath,
    pub(crate) bd: ObjectPath,
    pub(crate) class: ClassId,
}

/// A consumer or provider of a contract: one EPG, or every EPG of a VRF.
#[derive(Clone, Copy)]
pub(crate) enum Party<'a, 'm> {
    Epg(&'a EpgNode<'m>),
    Any(&'a ObjectPath),
}

impl Party<'_, '_> {
    pub(crate) fn vrf(&self) -> &ObjectPath {
        match self {
            Party::Epg(n) => &n.vrf,
            Party::Any(v) => v,
        }
    }

    fn sel(&self) -> ClassSel {
        match self {
            Party::Epg(n) => ClassSel::Class(n.class),
            Party::Any(_) => ClassSel::Vrf,
        }
    }

    fn name(&self) -> Arc<str> {
        match self {
            Party::Epg(n) => n.path.to_string().into(),
            Party::Any(v) => format!("{v}/any").into(),
        }
    }

    fn fingerprint(&self, h: &mut DefaultHasher) {
        match self {
            Party::Epg(n) => (0u8, &n.path, n.class, &n.vrf).hash(h),
            Party::Any(v) => (1u8, v).hash(h),
        }
    }
}

pub(crate) fn vrf_path(tenant: &str, vrf: &str) -> ObjectPath {
    ObjectPath::tenant(tenant).child("vrf", vrf)
}

pub(crate) fn bd_path(tenant: &str, bd: &str) -> ObjectPath {
    ObjectPath::tenant(tenant).child("bd", bd)
}

/// The anycast gateway MAC of a bridge domain: locally administered, derived from the VNI.
pub fn gateway_mac(vni: u32) -> [u8; 6] {
    let [_, a, b, c] = vni.to_be_bytes();
    [0x02, 0x77, 0x66, a, b, c]
}

impl Compiler {
    pub fn new(previous: Allocation) -> Self {
        Self {
            allocation: previous,
            ..Self::default()
        }
    }

    /// Sets the size budget every later compile is checked against.
    pub fn with_budget(mut self, budget: CompileBudget) -> Self {
        self.budget = budget;
        self
    }

    pub fn last_stats(&self) -> CompileStats {
        self.stats
    }

    /// Compiles `model`, reusing everything the last compile produced that still holds.
    pub fn compile(&mut self, model: &Model) -> Result<&CompiledPolicy, CompileError> {
        let policy = self.build(model)?;
        Ok(self.last.insert(policy))
    }

    fn build(&mut self, model: &Model) -> Result<CompiledPolicy, CompileError> {
        let (vrf_list, bd_list, requests, epg_homes) = index(model)?;
        let allocation = Allocation::assign(&self.allocation, &requests, &vrf_list, &bd_list)?;

        let mut nodes: BTreeMap<EpgPath, EpgNode<'_>> = BTreeMap::new();
        for (path, epg, vrf, bd) in epg_homes {
            let class = allocation
                .classes
                .get(&path)
                .copied()
                .unwrap_or(ClassId::UNKNOWN);
            nodes.insert(
                path.clone(),
                EpgNode {
                    path,
                    epg,
                    vrf,
                    bd,
                    class,
                },
            );
        }
        let mut vrfs = build_vrfs(model, &allocation, &nodes);
        let base = base_rules(model, &nodes, &vrfs)?;

        // Start each table from last time's rules (moved, not copied). When the set of
        // VRFs changed, start over: cached rules may point at tables that were rebuilt.
        match self.last.take() {
            Some(last) if last.vrfs.keys().eq(vrfs.keys()) => {
                for (path, old) in last.vrfs {
                    if let Some(table) = vrfs.get_mut(&path) {
                        table.rules = old.rules;
                    }
                }
            }
            _ => {
                self.cache.clear();
                self.base.clear();
            }
        }

        let mut patches: BTreeMap<ObjectPath, Patch> = BTreeMap::new();
        let mut stats = CompileStats::default();
        let mut cache = HashMap::with_capacity(self.cache.len());
        let vrf_paths: BTreeMap<(&str, &str), ObjectPath> = model
            .tenants
            .iter()
            .flat_map(|(t, tenant)| {
                tenant
                    .vrfs
                    .keys()
                    .map(move |v| ((t.as_str(), v.as_str()), vrf_path(t, v)))
            })
            .collect();
        let relations = relations(model, &nodes, &vrf_paths);
        let nobody = (Vec::new(), Vec::new());
        // Admission: count what the model would compile to before expanding anything.
        self.budget
            .check(model, &relations, &base)
            .map_err(|over| CompileError::OverBudget(Box::new(over)))?;
        for (tname, tenant) in &model.tenants {
            let tpath = ObjectPath::tenant(tname);
            for (cname, contract) in &tenant.contracts {
                let cpath = tpath.child("contract", cname);
                let (consumers, providers) = relations
                    .get(&(tname.as_str(), cname.as_str()))
                    .unwrap_or(&nobody);
                let fingerprint =
                    contract_fingerprint(contract, &tenant.filters, consumers, providers);
                stats.contracts += 1;
                let entry = match self.cache.remove(&cpath) {
                    Some(hit) if hit.fingerprint == fingerprint => hit,
                    old => {
                        stats.contracts_recompiled += 1;
                        for vrf in old.into_iter().flat_map(|o| o.tables) {
                            let patch = patches.entry(vrf).or_default();
                            patch.remove_contracts.insert(cpath.clone());
                        }
                        let mut tables = BTreeSet::new();
                        contract_rules(
                            &cpath,
                            contract,
                            &tenant.filters,
                            consumers,
                            providers,
                            &mut |vrf, rule| {
                                if !tables.contains(vrf) {
                                    tables.insert(vrf.clone());
                                }
                                patches.entry(vrf.clone()).or_default().add.push(rule);
                            },
                        )?;
                        CachedContract {
                            fingerprint,
                            tables,
                        }
                    }
                };
                cache.insert(cpath, entry);
            }
        }
        // Contracts that are gone take their rules with them.
        for (cpath, gone) in self.cache.drain() {
            for vrf in gone.tables {
                let patch = patches.entry(vrf).or_default();
                patch.remove_contracts.insert(cpath.clone());
            }
        }
        for (vrf, rules) in &base {
            let old = self.base.remove(vrf).unwrap_or_default();
            if old != *rules {
                let patch = patches.entry(vrf.clone()).or_default();
                patch.remove.extend(old);
                patch.add.extend(rules.iter().cloned());
            }
        }

        for (vrf, patch) in patches {
            let Some(table) = vrfs.get_mut(&vrf) else {
                continue;
            };
            stats.rules_added += patch.add.len();
            stats.rules_removed += apply_patch(&mut table.rules, patch);
        }
        stats.rules = vrfs.values().map(|v| v.rules.len()).sum();

        let epgs = nodes
            .values()
            .map(|n| {
                let policy = EpgPolicy {
                    path: n.path.clone(),
                    class: n.class,
                    vrf: n.vrf.clone(),
                    bridge_domain: n.bd.clone(),
                };
                (n.path.clone(), policy)
            })
            .collect();

        self.cache = cache;
        self.base = base;
        self.allocation = allocation.clone();
        self.stats = stats;
        let security_groups = model
            .tenants
            .iter()
            .filter(|(_, t)| !t.security_groups.is_empty())
            .map(|(name, t)| (name.clone(), t.security_groups.clone()))
            .collect();
        Ok(CompiledPolicy {
            vrfs,
            epgs,
            allocation,
            security_groups,
        })
    }
}

/// Takes a patch's rules out of a sorted table and merges its new ones in, keeping the
/// table sorted: linear in the table, with no rule copied. Returns how many it removed.
fn apply_patch(rules: &mut Vec<Rule>, mut patch: Patch) -> usize {
    let before = rules.len();
    if !patch.remove.is_empty() || !patch.remove_contracts.is_empty() {
        rules.retain(|r| {
            !patch.remove.contains(r)
                && r.trace
                    .contract()
                    .is_none_or(|c| !patch.remove_contracts.contains(c))
        });
    }
    let removed = before - rules.len();
    if patch.add.is_empty() {
        return removed;
    }
    patch.add.sort_unstable();
    if rules.is_empty() {
        // A fresh table (the first compile): the sorted additions are the table.
        patch.add.dedup();
        *rules = patch.add;
        return removed;
    }
    let old = std::mem::take(rules);
    let mut merged = Vec::with_capacity(old.len() + patch.add.len());
    let mut new = patch.add.into_iter().peekable();
    for rule in old {
        while let Some(n) = new.next_if(|n| *n < rule) {
            merged.push(n);
        }
        merged.push(rule);
    }
    merged.extend(new);
    merged.dedup();
    *rules = merged;
    removed
}

type Index<'m> = (
    Vec<ObjectPath>,
    Vec<ObjectPath>,
    Vec<ClassRequest>,
    Vec<(EpgPath, &'m Epg, ObjectPath, ObjectPath)>,
);

/// Lists every VRF, bridge domain and EPG, and decides which EPGs need a global class.
fn index(model: &Model) -> Result<Index<'_>, CompileError> {
    let mut vrfs = Vec::new();
    let mut bds = Vec::new();
    let mut homes = Vec::new();
    for (tname, tenant) in &model.tenants {
        vrfs.extend(tenant.vrfs.keys().map(|v| vrf_path(tname, v)));
        for (bname, bd) in &tenant.bridge_domains {
            if !tenant.vrfs.contains_key(&bd.vrf) {
                return Err(CompileError::UnknownReference {
                    object: bd_path(tname, bname),
                    kind: "vrf",
                    name: bd.vrf.clone(),
                });
            }
            bds.push(bd_path(tname, bname));
        }
        for (aname, ap) in &tenant.app_profiles {
            for (ename, epg) in &ap.epgs {
                let path = EpgPath::new(tname, aname, ename);
                let bd = tenant
                    .bridge_domains
                    .get(&epg.bridge_domain)
                    .ok_or_else(|| CompileError::UnknownReference {
                        object: ObjectPath::epg(&path),
                        kind: "bridge_domain",
                        name: epg.bridge_domain.clone(),
                    })?;
                homes.push((
                    path,
                    epg,
                    vrf_path(tname, &bd.vrf),
                    bd_path(tname, &epg.bridge_domain),
                ));
            }
        }
    }

    // EPGs on either side of a tenant-scope contract that crosses VRFs need a class
    // that means the same thing in every VRF.
    let vrf_of: HashMap<&EpgPath, &ObjectPath> = homes.iter().map(|(p, _, v, _)| (p, v)).collect();
    let mut sides: HashMap<(&str, &str), Sides<&EpgPath>> = HashMap::new();
    for (path, epg, _, _) in &homes {
        let tenant = model.tenants.get(&path.tenant);
        let is_tenant_scope = |c: &String| {
            tenant
                .and_then(|t| t.contracts.get(c))
                .is_some_and(|c| c.scope == Scope::Tenant)
        };
        for c in epg.consumes.iter().filter(|c| is_tenant_scope(c)) {
            sides.entry((&path.tenant, c)).or_default().0.push(path);
        }
        for c in epg.provides.iter().filter(|c| is_tenant_scope(c)) {
            sides.entry((&path.tenant, c)).or_default().1.push(path);
        }
    }
    let mut global: BTreeSet<&EpgPath> = BTreeSet::new();
    for (consumers, providers) in sides.values() {
        for c in consumers {
            for p in providers {
                if vrf_of.get(c) != vrf_of.get(p) {
                    global.insert(c);
                    global.insert(p);
                }
            }
        }
    }
    let requests = homes
        .iter()
        .map(|(path, _, vrf, _)| ClassRequest {
            epg: path.clone(),
            vrf: vrf.clone(),
            global: global.contains(path),
        })
        .collect();
    Ok((vrfs, bds, requests, homes))
}

/// Every VRF's table, with its bridge domains and member classes but no rules yet.
fn build_vrfs(
    model: &Model,
    allocation: &Allocation,
    nodes: &BTreeMap<EpgPath, EpgNode<'_>>,
) -> BTreeMap<ObjectPath, VrfPolicy> {
    let mut vrfs: BTreeMap<ObjectPath, VrfPolicy> = BTreeMap::new();
    for (tname, tenant) in &model.tenants {
        for (vname, vrf) in &tenant.vrfs {
            let path = vrf_path(tname, vname);
            let table = VrfPolicy {
                path: path.clone(),
                id: allocation.vrf_ids.get(&path).copied().unwrap_or(0),
                enforced: vrf.enforced,
                bridge_domains: Vec::new(),
                members: BTreeMap::new(),
                rules: Vec::new(),
            };
            vrfs.insert(path, table);
        }
        for (bname, bd) in &tenant.bridge_domains {
            let path = bd_path(tname, bname);
            let vni = allocation.vnis.get(&path).copied().unwrap_or(0);
            let subnets: Vec<(IpNet, IpAddr)> =
                bd.subnets.values().map(|s| (s.cidr, s.gateway)).collect();
            if let Some(v) = vrfs.get_mut(&vrf_path(tname, &bd.vrf)) {
                v.bridge_domains.push(BridgeDomainPolicy {
                    path,
                    vni,
                    gateway_mac: gateway_mac(vni),
                    subnets,
                });
            }
        }
    }
    for node in nodes.values() {
        if let Some(v) = vrfs.get_mut(&node.vrf) {
            v.members.insert(node.class, node.path.clone());
        }
    }
    vrfs
}

/// A rule on every protocol and port.
fn whole_rule(src: ClassSel, dst: ClassSel, tier: Tier, action: Action, trace: Trace) -> Rule {
    Rule {
        tier,
        src,
        dst,
        family: None,
        proto: weft_model::Protocol::Any,
        sport: PortRange::ANY,
        dport: PortRange::ANY,
        action,
        trace,
    }
}

/// The rules that come from VRFs and EPGs rather than contracts, per VRF, sorted:
/// unenforced VRFs, preferred groups, intra-EPG traffic and taboos.
fn base_rules(
    model: &Model,
    nodes: &BTreeMap<EpgPath, EpgNode<'_>>,
    vrfs: &BTreeMap<ObjectPath, VrfPolicy>,
) -> Result<BTreeMap<ObjectPath, Vec<Rule>>, CompileError> {
    let mut out: BTreeMap<ObjectPath, Vec<Rule>> =
        vrfs.keys().map(|v| (v.clone(), Vec::new())).collect();
    for (path, table) in vrfs {
        let Some(rules) = out.get_mut(path) else {
            continue;
        };
        if !table.enforced {
            let trace = Trace::Unenforced {
                vrf: Arc::new(path.clone()),
            };
            rules.push(whole_rule(
                ClassSel::Vrf,
                ClassSel::Vrf,
                Tier::Unenforced,
                Action::Permit,
                trace,
            ));
        }
        // Preferred group: members talk freely; everybody else needs a contract.
        let in_vrf: Vec<&EpgNode<'_>> = nodes.values().filter(|n| n.vrf == *path).collect();
        if in_vrf.iter().any(|n| n.epg.preferred_group) {
            let trace = Trace::PreferredGroup {
                vrf: Arc::new(path.clone()),
            };
            rules.push(whole_rule(
                ClassSel::Vrf,
                ClassSel::Vrf,
                Tier::PreferredGroup,
                Action::Permit,
                trace,
            ));
            for n in in_vrf.iter().filter(|n| !n.epg.preferred_group) {
                let c = ClassSel::Class(n.class);
                let epg = Arc::new(n.path.clone());
                for (src, dst) in [(c, ClassSel::Vrf), (ClassSel::Vrf, c)] {
                    let trace = Trace::PreferredExclusion { epg: epg.clone() };
                    rules.push(whole_rule(
                        src,
                        dst,
                        Tier::PreferredExclusion,
                        Action::Deny,
                        trace,
                    ));
                }
            }
        }
    }
    for node in nodes.values() {
        if let Some(rules) = out.get_mut(&node.vrf) {
            epg_rules(model, node, rules)?;
        }
    }
    for rules in out.values_mut() {
        rules.sort_unstable();
        rules.dedup();
    }
    Ok(out)
}

/// Consumers and providers of every contract, keyed by (tenant, contract name).
pub(crate) type Relations<'a, 'm> = HashMap<(&'m str, &'m str), Sides<Party<'a, 'm>>>;

/// (consumers, providers) of one contract.
pub(crate) type Sides<T> = (Vec<T>, Vec<T>);

/// Indexes every provide/consume relation once, EPGs and VRF-wide "any".
fn relations<'a, 'm>(
    model: &'m Model,
    nodes: &'a BTreeMap<EpgPath, EpgNode<'m>>,
    vrf_paths: &'a BTreeMap<(&'m str, &'m str), ObjectPath>,
) -> Relations<'a, 'm> {
    let mut out: Relations<'a, 'm> = HashMap::new();
    for node in nodes.values() {
        let tenant = model
            .tenants
            .get_key_value(&node.path.tenant)
            .map(|(k, _)| k.as_str());
        let Some(tenant) = tenant else { continue };
        for c in &node.epg.consumes {
            out.entry((tenant, c.as_str()))
                .or_default()
                .0
                .push(Party::Epg(node));
        }
        for c in &node.epg.provides {
            out.entry((tenant, c.as_str()))
                .or_default()
                .1
                .push(Party::Epg(node));
        }
    }
    for ((tname, vname), path) in vrf_paths {
        let Some(vrf) = model.tenants.get(*tname).and_then(|t| t.vrfs.get(*vname)) else {
            continue;
        };
        for c in &vrf.any.consumes {
            out.entry((tname, c.as_str()))
                .or_default()
                .0
                .push(Party::Any(path));
        }
        for c in &vrf.any.provides {
            out.entry((tname, c.as_str()))
                .or_default()
                .1
                .push(Party::Any(path));
        }
    }
    out
}

fn contract_fingerprint(
    contract: &Contract,
    filters: &BTreeMap<String, Filter>,
    consumers: &[Party<'_, '_>],
    providers: &[Party<'_, '_>],
) -> u64 {
    let mut h = DefaultHasher::new();
    contract.hash(&mut h);
    for subject in contract.subjects.values() {
        for f in &subject.filters {
            (f, filters.get(f)).hash(&mut h);
        }
    }
    for (tag, side) in [(0u8, consumers), (1, providers)] {
        tag.hash(&mut h);
        side.len().hash(&mut h);
        for p in side {
            p.fingerprint(&mut h);
        }
    }
    h.finish()
}

/// Whether a contract applies between a consumer and a provider, per its scope.
pub(crate) fn in_scope(scope: Scope, consumer: &Party<'_, '_>, provider: &Party<'_, '_>) -> bool {
    match (consumer, provider) {
        (Party::Epg(c), Party::Epg(p)) => {
            c.path != p.path
                && match scope {
                    Scope::ApplicationProfile => {
                        c.path.app_profile == p.path.app_profile && c.vrf == p.vrf
                    }
                    Scope::Vrf => c.vrf == p.vrf,
                    Scope::Tenant => true,
                }
        }
        // "any" only ever applies inside its own VRF, and not to application-profile scope.
        _ => scope != Scope::ApplicationProfile && consumer.vrf() == provider.vrf(),
    }
}

/// Expands one contract into rules, handing each to `emit` with the table it belongs in.
fn contract_rules(
    cpath: &ObjectPath,
    contract: &Contract,
    filters: &BTreeMap<String, Filter>,
    consumers: &[Party<'_, '_>],
    providers: &[Party<'_, '_>],
    emit: &mut dyn FnMut(&ObjectPath, Rule),
) -> Result<(), CompileError> {
    // Every (subject, filter, entry) site once, shared by the rules of every pair.
    let mut sites = Vec::new();
    for (sname, subject) in &contract.subjects {
        let tier = match subject.action {
            Action::Permit => Tier::Contract,
            Action::Deny => Tier::Deny,
        };
        for fname in &subject.filters {
            let filter = filters
                .get(fname)
                .ok_or_else(|| CompileError::UnknownReference {
                    object: cpath.child("subject", sname),
                    kind: "filter",
                    name: fname.clone(),
                })?;
            for (ename, entry) in &filter.entries {
                let site = Arc::new(ContractSite {
                    contract: cpath.clone(),
                    subject: sname.clone(),
                    filter: fname.clone(),
                    entry: ename.clone(),
                });
                sites.push((tier, subject.action, entry, site));
            }
        }
    }
    let provider_names: Vec<Arc<str>> = providers.iter().map(Party::name).collect();
    for consumer in consumers {
        let consumer_name = consumer.name();
        for (provider, provider_name) in providers.iter().zip(&provider_names) {
            if !in_scope(contract.scope, consumer, provider) {
                continue;
            }
            // Enforced where the provider lives: the destination's node and VRF.
            let table = provider.vrf();
            for (tier, action, entry, site) in &sites {
                let trace = Trace::Contract {
                    site: site.clone(),
                    consumer: consumer_name.clone(),
                    provider: provider_name.clone(),
                };
                let rule = entry_rule(*tier, consumer.sel(), provider.sel(), entry, *action, trace);
                emit(table, rule);
            }
        }
    }
    Ok(())
}

fn entry_rule(
    tier: Tier,
    src: ClassSel,
    dst: ClassSel,
    entry: &weft_model::FilterEntry,
    action: Action,
    trace: Trace,
) -> Rule {
    let family = match entry.ether_type {
        EtherType::Ip => None,
        EtherType::Ipv4 => Some(IpFamily::V4),
        EtherType::Ipv6 => Some(IpFamily::V6),
    };
    let (sport, dport) = if entry.protocol.has_ports() {
        (entry.source_port, entry.destination_port)
    } else {
        (PortRange::ANY, PortRange::ANY)
    };
    Rule {
        tier,
        src,
        dst,
        family,
        proto: entry.protocol,
        sport,
        dport,
        action,
        trace,
    }
}

/// Rules that belong to one EPG: intra-EPG permit or isolation, and its taboos.
fn epg_rules(model: &Model, node: &EpgNode<'_>, out: &mut Vec<Rule>) -> Result<(), CompileError> {
    let me = ClassSel::Class(node.class);
    let epg = Arc::new(node.path.clone());
    let (action, trace) = if node.epg.isolated {
        (Action::Deny, Trace::Isolation { epg })
    } else {
        (Action::Permit, Trace::IntraEpg { epg })
    };
    out.push(whole_rule(me, me, Tier::IntraEpg, action, trace));

    let Some(tenant) = model.tenants.get(&node.path.tenant) else {
        return Ok(());
    };
    let tpath = ObjectPath::tenant(&node.path.tenant);
    for tname in &node.epg.taboos {
        let taboo_path = tpath.child("taboo", tname);
        let taboo = tenant
            .taboos
            .get(tname)
            .ok_or_else(|| CompileError::UnknownReference {
                object: ObjectPath::epg(&node.path),
                kind: "taboo",
                name: tname.clone(),
            })?;
        for (sname, subject) in &taboo.subjects {
            for fname in &subject.filters {
                let filter =
                    tenant
                        .filters
                        .get(fname)
                        .ok_or_else(|| CompileError::UnknownReference {
                            object: taboo_path.child("subject", sname),
                            kind: "filter",
                            name: fname.clone(),
                        })?;
                for (ename, entry) in &filter.entries {
                    let trace = Trace::Taboo {
                        site: Arc::new(TabooSite {
                            taboo: taboo_path.clone(),
                            subject: sname.clone(),
                            filter: fname.clone(),
                            entry: ename.clone(),
                            protects: node.path.clone(),
                        }),
                    };
                    out.push(entry_rule(
                        Tier::Deny,
                        ClassSel::Any,
                        me,
                        entry,
                        Action::Deny,
                        trace,
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_mac_is_locally_administered_unicast() {
        let mac = gateway_mac(0x0A_0B0C);
        assert_eq!(mac, [0x02, 0x77, 0x66, 0x0A, 0x0B, 0x0C]);
        assert_eq!(mac[0] & 0b11, 0b10);
    }
}
