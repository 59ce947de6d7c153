//! A deliberately simple evaluator that reads the model directly, with no classes and
//! no rules: the specification the compiled tables are checked against.

use weft_compiler::Flow;
use weft_model::{Action, Epg, EpgPath, FilterEntry, Model, Scope, Tenant};

fn epg<'m>(t: &'m Tenant, p: &EpgPath) -> &'m Epg {
    &t.app_profiles[&p.app_profile].epgs[&p.epg]
}

fn vrf_of(t: &Tenant, e: &Epg) -> String {
    t.bridge_domains[&e.bridge_domain].vrf.clone()
}

fn entry_matches(e: &FilterEntry, flow: &Flow) -> bool {
    e.ether_type.matches(flow.family)
        && e.protocol.matches(flow.proto)
        && (!flow.proto.has_ports()
            || !e.protocol.has_ports()
            || (e.source_port.contains(flow.sport) && e.destination_port.contains(flow.dport)))
}

/// Whether contract `c` applies with `s` consuming and `d` providing.
fn applies(t: &Tenant, c: &str, s: &EpgPath, d: &EpgPath) -> bool {
    let (se, de) = (epg(t, s), epg(t, d));
    let (sv, dv) = (vrf_of(t, se), vrf_of(t, de));
    let scope = t.contracts[c].scope;
    let s_any = t.vrfs[&sv].any.consumes.iter().any(|x| x == c);
    let d_any = t.vrfs[&dv].any.provides.iter().any(|x| x == c);
    let s_direct = se.consumes.iter().any(|x| x == c);
    let d_direct = de.provides.iter().any(|x| x == c);
    let direct = s_direct
        && d_direct
        && s != d
        && match scope {
            Scope::ApplicationProfile => s.app_profile == d.app_profile && sv == dv,
            Scope::Vrf => sv == dv,
            Scope::Tenant => true,
        };
    // "any" is every EPG of its own VRF, and never crosses VRFs.
    let via_any = sv == dv
        && scope != Scope::ApplicationProfile
        && ((s_any && (d_direct || d_any)) || (s_direct && d_any));
    direct || via_any
}

/// The verdict for `flow` from `s` to `d`, straight from the model.
pub fn verdict(model: &Model, s: &EpgPath, d: &EpgPath, flow: &Flow) -> Action {
    if s.tenant != d.tenant {
        return Action::Deny;
    }
    let t = &model.tenants[&s.tenant];
    let (se, de) = (epg(t, s), epg(t, d));
    let (sv, dv) = (vrf_of(t, se), vrf_of(t, de));

    if sv == dv && !t.vrfs[&sv].enforced {
        return Action::Permit;
    }
    // Deny beats everything: taboos protecting the destination, then deny subjects.
    for taboo in &de.taboos {
        for subject in t.taboos[taboo].subjects.values() {
            for f in &subject.filters {
                if t.filters[f]
                    .entries
                    .values()
                    .any(|e| entry_matches(e, flow))
                {
                    return Action::Deny;
                }
            }
        }
    }
    let subjects_match = |action: Action| {
        t.contracts.iter().any(|(name, c)| {
            applies(t, name, s, d)
                && c.subjects.values().any(|sub| {
                    sub.action == action
                        && sub.filters.iter().any(|f| {
                            t.filters[f]
                                .entries
                                .values()
                                .any(|e| entry_matches(e, flow))
                        })
                })
        })
    };
    if subjects_match(Action::Deny) {
        return Action::Deny;
    }
    if s == d {
        return if se.isolated {
            Action::Deny
        } else {
            Action::Permit
        };
    }
    if subjects_match(Action::Permit) {
        return Action::Permit;
    }
    if sv == dv && se.preferred_group && de.preferred_group {
        return Action::Permit;
    }
    Action::Deny
}
