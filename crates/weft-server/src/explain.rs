//! Live explain: the verdict of the stored intent next to the verdict of the rules the
//! destination's node reports as installed.

use crate::error::{ApiFailure, ApiResult};
use crate::liveness::NodeLive;
use crate::state::{EndpointRecord, Snapshot};
use weft_api::{LiveExplanation, VerdictText};
use weft_compiler::{CompiledPolicy, Flow, PortView};
use weft_model::{Action, IpFamily, Protocol};

/// Builds the flow of `proto`/`port` towards `to`.
pub fn flow(to: &EndpointRecord, proto: &str, port: Option<u16>) -> ApiResult<Flow> {
    let protocol = match Protocol::parse(proto) {
        Some(p) if p != Protocol::Any => p,
        _ => {
            return Err(ApiFailure::bad_request(
                format!("proto {proto:?} must be tcp, udp or icmp"),
                Some("proto"),
            ));
        }
    };
    if protocol.has_ports() && port.is_none() {
        return Err(ApiFailure::bad_request(
            format!("{protocol} needs a port"),
            Some("port"),
        ));
    }
    let mut flow = Flow::new(protocol, port.unwrap_or(0));
    flow.family = if to.ip.is_ipv4() {
        IpFamily::V4
    } else {
        IpFamily::V6
    };
    Ok(flow)
}

pub fn explain(
    snapshot: &Snapshot,
    from: &EndpointRecord,
    to: &EndpointRecord,
    flow: &Flow,
    node: &NodeLive,
) -> ApiResult<LiveExplanation> {
    let policy: &CompiledPolicy = &snapshot.policy;
    let intent = weft_compiler::explain(policy, &from.epg, &to.epg, flow).map_err(|why| {
        ApiFailure::Conflict {
            message: "an endpoint's EPG is not in the compiled policy".into(),
            field: None,
            details: vec![why.to_string()],
        }
    })?;
    // Both contracts and security groups must permit; the groups are judged from the
    // stored intent on both sides (nodes report their rule tables, not their groups).
    let groups = security(policy, from, to, flow);
    let with_groups = |allowed: bool, text: String| match &groups {
        None => VerdictText { allowed, text },
        Some(v) => VerdictText {
            allowed: allowed && v.allowed,
            text: format!("{text}; {v}"),
        },
    };
    let intent = with_groups(intent.action == Action::Permit, intent.to_string());
    let intent_allowed = intent.allowed;

    let mut notes = Vec::new();
    let installed = match &node.report {
        None => {
            notes.push(format!("node {} has not reported yet", to.node));
            None
        }
        Some(report) => {
            if report.applied_revision < snapshot.desired_revision {
                notes.push(format!(
                    "node {} installed revision {}, the desired state is at {}",
                    to.node, report.applied_revision, snapshot.desired_revision
                ));
            }
            if let Some(error) = &report.error {
                notes.push(format!("node {} reports: {error}", to.node));
            }
            installed_verdict(policy, from, to, flow, report, &mut notes)
                .map(|v| with_groups(v.allowed, v.text))
        }
    };
    let stale = node
        .report
        .as_ref()
        .is_none_or(|r| r.applied_revision < snapshot.desired_revision);
    let differs = stale
        || installed
            .as_ref()
            .is_none_or(|v| v.allowed != intent_allowed);
    Ok(LiveExplanation {
        from: from.name.clone(),
        to: to.name.clone(),
        intent,
        installed,
        node: to.node.clone(),
        differs,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// The security groups' verdict on the flow, when either endpoint has groups.
fn security(
    policy: &CompiledPolicy,
    from: &EndpointRecord,
    to: &EndpointRecord,
    flow: &Flow,
) -> Option<weft_compiler::SecurityVerdict> {
    weft_compiler::security_verdict(&policy.security_groups, view(from), view(to), flow)
}

fn view(e: &EndpointRecord) -> PortView<'_> {
    PortView {
        name: &e.name,
        tenant: &e.epg.tenant,
        address: e.ip,
        groups: e.security_groups.as_deref().filter(|_| e.port_security),
    }
}

/// Evaluates the installed rule table of the destination's VRF the way
/// `VrfPolicy::evaluate` does, with the classes of the compiled policy.
fn installed_verdict(
    policy: &CompiledPolicy,
    from: &EndpointRecord,
    to: &EndpointRecord,
    flow: &Flow,
    report: &weft_api::NodeReport,
    notes: &mut Vec<String>,
) -> Option<VerdictText> {
    let src = policy.epgs.get(&from.epg)?;
    let dst = policy.epgs.get(&to.epg)?;
    let Some(table) = policy.vrfs.get(&dst.vrf) else {
        notes.push(format!("VRF {} is not in the compiled policy", dst.vrf));
        return None;
    };
    let Some(installed) = report.installed.iter().find(|v| v.vrf == dst.vrf) else {
        notes.push(format!(
            "node {} reports no rules for VRF {}",
            to.node, dst.vrf
        ));
        return None;
    };
    let mut as_installed = table.clone();
    as_installed.rules = installed.rules.clone();
    // Same rule as CompiledPolicy::evaluate: a VRF-local class means nothing elsewhere.
    let (action, text) = if src.vrf != dst.vrf && !src.class.is_global() {
        (
            Action::Deny,
            "denied: source class is local to another VRF".to_string(),
        )
    } else {
        let verdict = as_installed.evaluate(src.class, dst.class, flow);
        let text = match verdict.rule {
            Some(rule) => format!(
                "{}: {} (tier {:?}, {} -> {}, {} dport {})",
                verdict_word(verdict.action),
                rule.trace,
                rule.tier,
                rule.src,
                rule.dst,
                rule.proto,
                rule.dport
            ),
            None => format!(
                "denied: no installed rule matches (default deny in {})",
                dst.vrf
            ),
        };
        (verdict.action, text)
    };
    Some(VerdictText {
        allowed: action == Action::Permit,
        text,
    })
}

fn verdict_word(action: Action) -> &'static str {
    match action {
        Action::Permit => "allowed",
        Action::Deny => "denied",
    }
}
