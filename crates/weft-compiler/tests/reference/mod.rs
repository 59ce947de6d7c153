//! The specification the compiled tables are checked against, written from ACI's
//! documented semantics and read straight from the model: no classes, no rules, no
//! tiers. Each step cites the behaviour it models, in the order ACI's zoning-rule
//! priorities apply them (Cisco ACI Contract Guide, "Rule priorities": class-eq rules
//! (intra-EPG) first, then taboo (black_list) rules, then EPG-to-EPG contract rules with
//! deny before permit, then vzAny rules, preferred group, and the default deny).

use weft_compiler::Flow;
use weft_model::{Action, Epg, EpgPath, FilterEntry, Model, Scope, Tenant};

struct Side<'m> {
    path: &'m EpgPath,
    epg: &'m Epg,
    vrf: &'m str,
}

fn side<'m>(t: &'m Tenant, path: &'m EpgPath) -> Side<'m> {
    let epg = &t.app_profiles[&path.app_profile].epgs[&path.epg];
    let vrf = t.bridge_domains[&epg.bridge_domain].vrf.as_str();
    Side { path, epg, vrf }
}

/// A filter entry classifies a packet by ethertype, IP protocol and, for TCP and UDP,
/// source and destination port ranges.
fn entry_matches(e: &FilterEntry, flow: &Flow) -> bool {
    e.ether_type.matches(flow.family)
        && e.protocol.matches(flow.proto)
        && (!flow.proto.has_ports()
            || !e.protocol.has_ports()
            || (e.source_port.contains(flow.sport) && e.destination_port.contains(flow.dport)))
}

fn filters_match(t: &Tenant, filters: &[String], flow: &Flow) -> bool {
    filters.iter().any(|f| {
        t.filters[f]
            .entries
            .values()
            .any(|e| entry_matches(e, flow))
    })
}

/// Whether `s` consumes and `d` provides contract `c` in a way its scope honours.
/// An EPG consumes a contract when it lists it, or when its VRF's vzAny does; vzAny
/// stands for every EPG of its own VRF only. Scope: application-profile needs one
/// profile (and VRF), vrf one VRF, tenant any VRF of the tenant. vzAny cannot take part in
/// an application-profile-scoped contract.
fn related_by(t: &Tenant, c: &str, s: &Side<'_>, d: &Side<'_>) -> bool {
    let listed = |list: &[String]| list.iter().any(|x| x == c);
    let s_epg = listed(&s.epg.consumes);
    let d_epg = listed(&d.epg.provides);
    let s_any = listed(&t.vrfs[s.vrf].any.consumes);
    let d_any = listed(&t.vrfs[d.vrf].any.provides);
    let same_vrf = s.vrf == d.vrf;
    let scope = t.contracts[c].scope;
    let epg_to_epg = s_epg
        && d_epg
        && match scope {
            Scope::ApplicationProfile => s.path.app_profile == d.path.app_profile && same_vrf,
            Scope::Vrf => same_vrf,
            Scope::Tenant => true,
        };
    let with_any =
        same_vrf && scope != Scope::ApplicationProfile && (s_epg || s_any) && (d_epg || d_any);
    epg_to_epg || with_any
}

/// Whether some contract between `s` (consumer) and `d` (provider) has a subject with
/// `action` whose filters match the flow.
fn contract_says(t: &Tenant, s: &Side<'_>, d: &Side<'_>, flow: &Flow, action: Action) -> bool {
    t.contracts.iter().any(|(name, contract)| {
        related_by(t, name, s, d)
            && contract
                .subjects
                .values()
                .any(|sub| sub.action == action && filters_match(t, &sub.filters, flow))
    })
}

/// The verdict for `flow` from `s` to `d`, straight from the model.
pub fn verdict(model: &Model, s: &EpgPath, d: &EpgPath, flow: &Flow) -> Action {
    // Tenants share nothing: contracts are scoped to their tenant.
    if s.tenant != d.tenant {
        return Action::Deny;
    }
    let t = &model.tenants[&s.tenant];
    let (src, dst) = (side(t, s), side(t, d));

    // Policy control enforcement "unenforced": no zoning rules inside the VRF at all.
    if src.vrf == dst.vrf && !t.vrfs[src.vrf].enforced {
        return Action::Permit;
    }
    // Intra-EPG traffic is governed by intra-EPG isolation alone: endpoints of one EPG
    // talk freely unless it is isolated. Contracts, taboos and vzAny govern traffic
    // between EPGs (class-eq rules come first in ACI's priorities).
    if s == d {
        return if src.epg.isolated {
            Action::Deny
        } else {
            Action::Permit
        };
    }
    // A taboo contract on the destination EPG denies what its filters match, from anyone.
    let taboo = dst.epg.taboos.iter().any(|name| {
        t.taboos[name]
            .subjects
            .values()
            .any(|sub| filters_match(t, &sub.filters, flow))
    });
    if taboo {
        return Action::Deny;
    }
    // Between a consumer and a provider, a deny subject wins over a permit subject.
    if contract_says(t, &src, &dst, flow, Action::Deny) {
        return Action::Deny;
    }
    if contract_says(t, &src, &dst, flow, Action::Permit) {
        return Action::Permit;
    }
    // Preferred group: members of one VRF's group talk without contracts.
    if src.vrf == dst.vrf && src.epg.preferred_group && dst.epg.preferred_group {
        return Action::Permit;
    }
    // Everything else is denied (an enforced VRF is allow-list).
    Action::Deny
}
