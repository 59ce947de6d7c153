//! Admission control for compiled size. A contract with N consumers and M providers
//! compiles to N x M x entries rules, so a small document can ask for millions of rules.
//! The budget is checked by counting, before any rule is expanded: the count is linear
//! in the relations, whatever the product.

use crate::compile::{EpgNode, Party, Relations, Sides};
use crate::rules::Rule;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use weft_model::{Contract, EpgPath, Filter, Model, ObjectPath, Scope};

/// How large a compiled policy may grow. `weft server` takes each limit as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileBudget {
    /// Rules in one VRF's table (every node that hosts the VRF installs all of them).
    pub max_rules_per_vrf: usize,
    /// Rules in all tables together.
    pub max_rules: usize,
    /// Memory the compiled rules may take, in bytes ([`CompileBudget::rule_bytes`] each).
    pub max_bytes: usize,
}

impl Default for CompileBudget {
    /// 250,000 rules per VRF is about four times what an ACI leaf's policy TCAM holds;
    /// a million rules take about 100 MiB in the controller.
    fn default() -> Self {
        Self {
            max_rules_per_vrf: 250_000,
            max_rules: 1_000_000,
            max_bytes: 256 << 20,
        }
    }
}

impl CompileBudget {
    /// No limit: for state that was admitted before (a restart recompiles what it stored).
    pub const UNLIMITED: Self = Self {
        max_rules_per_vrf: usize::MAX,
        max_rules: usize::MAX,
        max_bytes: usize::MAX,
    };

    /// What one compiled rule costs in memory: the rule itself; its trace shares the
    /// names and filter entry it came from with every other rule of the same entry.
    pub const fn rule_bytes() -> usize {
        std::mem::size_of::<Rule>()
    }

    /// Counts the rules `model` would compile to, per VRF table, and refuses it if any
    /// limit is exceeded. `base` holds the rules that come from VRFs and EPGs.
    pub(crate) fn check(
        &self,
        model: &Model,
        relations: &Relations<'_, '_>,
        base: &BTreeMap<ObjectPath, Vec<Rule>>,
    ) -> Result<(), OverBudget> {
        let mut per_vrf: BTreeMap<&ObjectPath, usize> =
            base.iter().map(|(vrf, rules)| (vrf, rules.len())).collect();
        let mut shares: Vec<ContractShare> = Vec::new();
        for (tname, tenant) in &model.tenants {
            for (cname, contract) in &tenant.contracts {
                let Some(sides) = relations.get(&(tname.as_str(), cname.as_str())) else {
                    continue;
                };
                let entries = entries_of(contract, &tenant.filters);
                let counts = pair_counts(contract.scope, sides);
                if entries == 0 || counts.is_empty() {
                    continue;
                }
                let mut rules = 0usize;
                for (vrf, pairs) in &counts {
                    let n = pairs.saturating_mul(entries);
                    rules = rules.saturating_add(n);
                    let slot = per_vrf.entry(vrf).or_insert(0);
                    *slot = slot.saturating_add(n);
                }
                shares.push(ContractShare {
                    contract: ObjectPath::tenant(tname).child("contract", cname),
                    consumers: sides.0.len(),
                    providers: sides.1.len(),
                    entries,
                    rules,
                    vrfs: counts.keys().map(|v| (*v).clone()).collect(),
                });
            }
        }
        let largest_in = |vrf: Option<&ObjectPath>| {
            shares
                .iter()
                .filter(|s| vrf.is_none_or(|v| s.vrfs.contains(v)))
                .max_by_key(|s| s.rules)
                .cloned()
        };
        if let Some((vrf, rules)) = per_vrf
            .iter()
            .filter(|(_, n)| **n > self.max_rules_per_vrf)
            .max_by_key(|(_, n)| **n)
        {
            return Err(OverBudget {
                limit: Limit::RulesPerVrf((*vrf).clone()),
                value: *rules,
                max: self.max_rules_per_vrf,
                largest: largest_in(Some(vrf)),
            });
        }
        let total = per_vrf.values().fold(0usize, |a, n| a.saturating_add(*n));
        if total > self.max_rules {
            return Err(OverBudget {
                limit: Limit::Rules,
                value: total,
                max: self.max_rules,
                largest: largest_in(None),
            });
        }
        let bytes = total.saturating_mul(Self::rule_bytes());
        if bytes > self.max_bytes {
            return Err(OverBudget {
                limit: Limit::Bytes,
                value: bytes,
                max: self.max_bytes,
                largest: largest_in(None),
            });
        }
        Ok(())
    }
}

/// Filter entries a contract expands into per consumer-provider pair.
fn entries_of(contract: &Contract, filters: &BTreeMap<String, Filter>) -> usize {
    contract
        .subjects
        .values()
        .flat_map(|s| &s.filters)
        .map(|f| filters.get(f).map_or(0, |f| f.entries.len()))
        .sum()
}

/// Consumer-provider pairs a contract applies between, per table (the provider's VRF),
/// counted the way `compile::in_scope` decides them, without visiting each pair.
fn pair_counts<'v>(
    scope: Scope,
    sides: &'v Sides<Party<'_, '_>>,
) -> HashMap<&'v ObjectPath, usize> {
    let (consumers, providers) = sides;
    let mut epgs_in_vrf: HashMap<&ObjectPath, usize> = HashMap::new();
    let mut epgs_in_profile: HashMap<(&str, &ObjectPath), usize> = HashMap::new();
    let mut anys_in_vrf: HashMap<&ObjectPath, usize> = HashMap::new();
    let mut occurrences: HashMap<&EpgPath, usize> = HashMap::new();
    let mut epgs = 0usize;
    for consumer in consumers {
        match consumer {
            Party::Epg(n) => {
                epgs += 1;
                *epgs_in_vrf.entry(&n.vrf).or_default() += 1;
                *epgs_in_profile
                    .entry((n.path.app_profile.as_str(), &n.vrf))
                    .or_default() += 1;
                *occurrences.entry(&n.path).or_default() += 1;
            }
            Party::Any(v) => *anys_in_vrf.entry(v).or_default() += 1,
        }
    }
    let any_allowed = scope != Scope::ApplicationProfile;
    let mut out: HashMap<&ObjectPath, usize> = HashMap::new();
    for provider in providers {
        let pairs = match provider {
            Party::Epg(p) => {
                let node: &EpgNode<'_> = p;
                let same_group = match scope {
                    Scope::ApplicationProfile => epgs_in_profile
                        .get(&(node.path.app_profile.as_str(), &node.vrf))
                        .copied()
                        .unwrap_or(0),
                    Scope::Vrf => epgs_in_vrf.get(&node.vrf).copied().unwrap_or(0),
                    Scope::Tenant => epgs,
                };
                // An EPG never pairs with itself; it sits in its own group.
                let itself = occurrences.get(&node.path).copied().unwrap_or(0);
                let via_any = if any_allowed {
                    anys_in_vrf.get(&node.vrf).copied().unwrap_or(0)
                } else {
                    0
                };
                same_group - itself + via_any
            }
            Party::Any(v) if any_allowed => {
                epgs_in_vrf.get(v).copied().unwrap_or(0) + anys_in_vrf.get(v).copied().unwrap_or(0)
            }
            Party::Any(_) => 0,
        };
        if pairs > 0 {
            *out.entry(provider.vrf()).or_default() += pairs;
        }
    }
    out
}

/// Which limit a model exceeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    RulesPerVrf(ObjectPath),
    Rules,
    Bytes,
}

/// One contract's part of the compiled size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractShare {
    pub contract: ObjectPath,
    pub consumers: usize,
    pub providers: usize,
    /// Filter entries per consumer-provider pair.
    pub entries: usize,
    pub rules: usize,
    pub vrfs: Vec<ObjectPath>,
}

/// A model refused at admission: what it would compile to, the limit, and the contract
/// with the largest share.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct OverBudget {
    pub limit: Limit,
    pub value: usize,
    pub max: usize,
    pub largest: Option<ContractShare>,
}

impl fmt::Display for OverBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.limit {
            Limit::RulesPerVrf(vrf) => write!(
                f,
                "the policy would compile to {} rules in VRF {vrf}, over the budget of {} rules per VRF",
                self.value, self.max
            )?,
            Limit::Rules => write!(
                f,
                "the policy would compile to {} rules, over the budget of {} rules in total",
                self.value, self.max
            )?,
            Limit::Bytes => write!(
                f,
                "the policy's rules would take {} MiB, over the budget of {} MiB",
                self.value >> 20,
                self.max >> 20
            )?,
        }
        if let Some(s) = &self.largest {
            write!(
                f,
                "; the largest share is contract {}: {} consuming x {} providing EPGs x {} filter \
                 entries = {} rules",
                s.contract, s.consumers, s.providers, s.entries, s.rules
            )?;
        }
        f.write_str(
            ". For many-to-many traffic, let the VRF's `any` block (vzAny) consume or provide \
             the contract instead of every EPG, or put the EPGs in a preferred group; or raise \
             the budget (weft server --max-rules-per-vrf, --max-rules, --max-policy-mib)",
        )
    }
}
