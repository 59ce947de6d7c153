//! Why a flow is allowed or denied: the deciding rule and its origin, or the reason
//! nothing permitted it.

use crate::compile::{CompileError, CompiledPolicy};
use crate::rules::{ClassId, Flow, Rule};
use std::fmt;
use weft_model::{Action, EpgPath, ObjectPath};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub action: Action,
    pub src_class: ClassId,
    pub dst_class: ClassId,
    /// The VRF table that decided (the destination's).
    pub table: ObjectPath,
    /// The deciding rule; `None` for the default deny.
    pub rule: Option<Rule>,
    /// A human reason when no rule decided.
    pub reason: String,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.action {
            Action::Permit => "allowed",
            Action::Deny => "denied",
        };
        write!(f, "{verdict}: ")?;
        match &self.rule {
            Some(rule) => write!(
                f,
                "{}\n  rule: tier {:?}, {} -> {}, {} sport {} dport {}, {} (in {})",
                rule.trace,
                rule.tier,
                rule.src,
                rule.dst,
                rule.proto,
                rule.sport,
                rule.dport,
                rule.action,
                self.table
            ),
            None => write!(f, "{} (default deny in {})", self.reason, self.table),
        }
    }
}

/// Explains the verdict for `flow` from `src` to `dst` against the compiled policy.
pub fn explain(
    policy: &CompiledPolicy,
    src: &EpgPath,
    dst: &EpgPath,
    flow: &Flow,
) -> Result<Explanation, CompileError> {
    let (verdict, table) = policy.evaluate(src, dst, flow)?;
    let (src_epg, dst_epg) = (&policy.epgs[src], &policy.epgs[dst]);
    let reason = match verdict.rule {
        Some(_) => String::new(),
        None => default_deny_reason(policy, src, dst, flow),
    };
    Ok(Explanation {
        action: verdict.action,
        src_class: src_epg.class,
        dst_class: dst_epg.class,
        table: table.path.clone(),
        rule: verdict.rule.cloned(),
        reason,
    })
}

fn default_deny_reason(
    policy: &CompiledPolicy,
    src: &EpgPath,
    dst: &EpgPath,
    flow: &Flow,
) -> String {
    let (s, d) = (&policy.epgs[src], &policy.epgs[dst]);
    let Some(table) = policy.vrfs.get(&d.vrf) else {
        return format!("no table for VRF {}", d.vrf);
    };
    // Rules between the two classes that only missed on protocol or port.
    let near: Vec<String> = table
        .rules
        .iter()
        .filter(|r| r.action == Action::Permit && !r.matches_flow(flow))
        .filter(|r| table.selects(r.src, s.class) && table.selects(r.dst, d.class))
        .filter_map(|r| {
            let contract = r.trace.contract()?;
            Some(format!(
                "{} {} dport {} ({contract})",
                r.proto,
                r.family_name(),
                r.dport
            ))
        })
        .collect();
    if !near.is_empty() {
        return format!(
            "contracts between {src} and {dst} permit only: {}; {} dport {} matches none",
            near.join(", "),
            flow.proto,
            flow.dport
        );
    }
    if s.vrf != d.vrf {
        return format!(
            "{src} is in {} and {dst} in {}: only a tenant-scope contract connects VRFs, and none does",
            s.vrf, d.vrf
        );
    }
    format!("no contract between {src} and {dst} (as consumer and provider)")
}

impl Rule {
    fn family_name(&self) -> &'static str {
        match self.family {
            None => "ip",
            Some(weft_model::IpFamily::V4) => "ipv4",
            Some(weft_model::IpFamily::V6) => "ipv6",
        }
    }
}
