//! Discovery at the gateways: the view each node's agent serves DNS from, and the
//! `weft dns query` / `weft explain --dns` answer for one endpoint.
//!
//! Everything is decided here, against the live snapshot and the Consul adapter's
//! catalog: which instances pass, which tenant asks, and which instances each asker's EPG
//! may reach (`explain`'s evaluation). The agent only encodes answers from the view, and
//! keeps answering from its last copy when the controller is down.

use crate::auth::Role;
use crate::error::{ApiFailure, ApiResult};
use crate::extract::ApiQuery;
use crate::server::AppState;
use crate::state::{EndpointRecord, Snapshot};
use crate::watch::parse_wait;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use weft_api::{
    DiscoveryView, DnsAsker, DnsDecision, DnsNode, DnsQueryResponse, DnsSettings, MAX_NODE_PROBES,
    ProbeReport, ProbeSpec, TenantDiscovery, VrfDiscovery,
};
use weft_consul::{Asker, DnsSource};
use weft_model::ObjectPath;

/// The adapter, once the Consul API is started; without it there is no discovery.
fn source(state: &AppState) -> ApiResult<&Arc<dyn DnsSource>> {
    state.dns_source.get().ok_or_else(|| {
        ApiFailure::not_found(
            "discovery is off: start the controller with --consul-listen",
            None,
        )
    })
}

/// How names are served, from the controller's settings.
pub fn dns_settings(state: &AppState) -> DnsSettings {
    let c = &state.config.consul;
    DnsSettings {
        domain: c.dns_domain.clone(),
        alt_domain: (c.dns_domain != "consul").then(|| "consul".to_string()),
        datacenter: c.datacenter.clone(),
        ttl: c.dns_ttl,
    }
}

/// Whether `vrf`'s DNS filters by policy (its `dns_policy`, on unless turned off).
fn policy_aware(snapshot: &Snapshot, vrf: &ObjectPath) -> bool {
    let Some((tenant, name)) = vrf.as_str().split_once("/vrf:") else {
        return true;
    };
    snapshot
        .model
        .tenants
        .get(tenant)
        .and_then(|t| t.vrfs.get(name))
        .is_none_or(|v| v.dns_policy)
}

fn nodes(snapshot: &Snapshot) -> Vec<DnsNode> {
    snapshot
        .nodes
        .values()
        .map(|n| DnsNode {
            name: n.value.name.clone(),
            address: n.value.underlay_ip.into(),
        })
        .collect()
}

/// One VRF's discovery for `askers` (endpoints of that VRF).
async fn vrf_discovery(
    state: &AppState,
    snapshot: &Snapshot,
    source: &dyn DnsSource,
    vrf: &ObjectPath,
    askers: &[&EndpointRecord],
) -> ApiResult<Option<VrfDiscovery>> {
    let Some(compiled) = snapshot.policy.vrfs.get(vrf) else {
        return Ok(None);
    };
    let mut classes: Vec<Asker> = Vec::new();
    let mut tenants: Vec<String> = Vec::new();
    let mut out_askers = Vec::new();
    for e in askers {
        let epg = e.epg.to_string();
        let class = match classes.iter().position(|c| c.epg == epg) {
            Some(i) => i,
            None => {
                classes.push(Asker {
                    endpoint: e.name.clone(),
                    tenant: e.epg.tenant.clone(),
                    epg,
                    vrf: vrf.to_string(),
                });
                classes.len() - 1
            }
        };
        let tenant = match tenants.iter().position(|t| *t == e.epg.tenant) {
            Some(i) => i,
            None => {
                tenants.push(e.epg.tenant.clone());
                tenants.len() - 1
            }
        };
        // An endpoint's allowed address pairs (nested containers) ask as the endpoint.
        let addresses = std::iter::once(e.ip).chain(e.allowed_address_pairs.iter().map(|p| p.ip));
        for address in addresses {
            out_askers.push(DnsAsker {
                address,
                endpoint: e.name.clone(),
                tenant: u32::try_from(tenant).unwrap_or(u32::MAX),
                class: u32::try_from(class).unwrap_or(u32::MAX),
            });
        }
    }
    let all_nodes = nodes(snapshot);
    let mut out_tenants = Vec::new();
    for tenant in tenants {
        let services = source.dns_services(&tenant, &classes).await?;
        out_tenants.push(TenantDiscovery {
            token: Some(crate::auth::gateway_token(&state.tokens, &tenant)),
            tenant,
            services,
            nodes: all_nodes.clone(),
        });
    }
    Ok(Some(VrfDiscovery {
        vrf: vrf.to_string(),
        vrf_id: compiled.id,
        policy_aware: policy_aware(snapshot, vrf),
        classes: classes.into_iter().map(|c| c.epg).collect(),
        askers: out_askers,
        tenants: out_tenants,
    }))
}

/// The discovery view of `node`: every VRF with endpoints on it.
pub async fn node_view(state: &AppState, node: &str) -> ApiResult<DiscoveryView> {
    let source = source(state)?;
    let snapshot = state.snapshot();
    let mut by_vrf: BTreeMap<&ObjectPath, Vec<&EndpointRecord>> = BTreeMap::new();
    for e in snapshot.endpoints.values().filter(|e| e.value.node == node) {
        by_vrf.entry(&e.value.vrf).or_default().push(&e.value);
    }
    let mut vrfs = Vec::new();
    for (vrf, askers) in by_vrf {
        if let Some(v) = vrf_discovery(state, &snapshot, source.as_ref(), vrf, &askers).await? {
            vrfs.push(v);
        }
    }
    let probes = node_probes(source.as_ref(), node, &vrfs).await?;
    let mut view = DiscoveryView {
        digest: 0,
        dns: dns_settings(state),
        consul: state.consul_addr.get().copied(),
        vrfs,
        probes,
    };
    view.digest = digest(&view);
    Ok(view)
}

/// The checks `node`'s agent runs: those of the tenants with endpoints in `vrfs` that aim
/// at an endpoint on this node, at most [`MAX_NODE_PROBES`].
async fn node_probes(
    source: &dyn DnsSource,
    node: &str,
    vrfs: &[VrfDiscovery],
) -> ApiResult<Vec<ProbeSpec>> {
    let vrf_ids: BTreeMap<&str, u32> = vrfs.iter().map(|v| (v.vrf.as_str(), v.vrf_id)).collect();
    let tenants: std::collections::BTreeSet<&str> = vrfs
        .iter()
        .flat_map(|v| v.tenants.iter().map(|t| t.tenant.as_str()))
        .collect();
    let mut out = Vec::new();
    let mut left_out = 0usize;
    for tenant in tenants {
        for a in source.assigned_probes(tenant).await? {
            if a.site.node != node {
                continue;
            }
            let Some(&vrf_id) = vrf_ids.get(a.site.vrf.as_str()) else {
                continue;
            };
            if out.len() >= MAX_NODE_PROBES {
                left_out += 1;
                continue;
            }
            out.push(ProbeSpec {
                vrf: a.site.vrf,
                vrf_id,
                tenant: a.tenant,
                node: a.node,
                check_id: a.check_id,
                kind: a.kind,
            });
        }
    }
    if left_out > 0 {
        tracing::warn!(
            node,
            max = MAX_NODE_PROBES,
            left_out,
            "too many HTTP/TCP checks aim at this node's endpoints: the rest are not run (and stay critical)"
        );
    }
    Ok(out)
}

/// The most reports one request may carry: every probe of a node, once.
const MAX_REPORTS: usize = MAX_NODE_PROBES;

/// `PUT /v1/nodes/{name}/probes`: the results of the checks the node's agent runs.
pub async fn put_node_probes(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    crate::extract::ApiJson(reports): crate::extract::ApiJson<Vec<ProbeReport>>,
) -> ApiResult<Response> {
    role.require_agent()?;
    let source = source(&state)?;
    if !state.snapshot().nodes.contains_key(&name) {
        return Err(ApiFailure::not_found(
            format!("no node {name}"),
            Some("name"),
        ));
    }
    if reports.len() > MAX_REPORTS {
        return Err(ApiFailure::bad_request(
            format!(
                "{} reports in one request; at most {MAX_REPORTS}",
                reports.len()
            ),
            None,
        ));
    }
    let outcome = source.report_probes(&name, &reports).await?;
    if outcome.ignored > 0 {
        tracing::debug!(node = %name, ignored = outcome.ignored, "reports of checks not assigned to the node ignored");
    }
    Ok(crate::routes::indexed(state.snapshot().revision, &outcome))
}

fn digest(view: &DiscoveryView) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(view).unwrap_or_default().hash(&mut h);
    // 0 means "no view yet" to a client.
    h.finish().max(1)
}

#[derive(Debug, Deserialize)]
pub struct DiscoveryParams {
    pub index: Option<u64>,
    pub wait: Option<String>,
}

/// `GET /v1/nodes/{name}/discovery?index=DIGEST&wait=D`: returns when the view's digest
/// differs from `index`, or when the wait ends.
pub async fn get_node_view(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<DiscoveryParams>,
) -> ApiResult<Response> {
    role.require_agent()?;
    if !state.snapshot().nodes.contains_key(&name) {
        return Err(ApiFailure::not_found(
            format!("no node {name}"),
            Some("name"),
        ));
    }
    let wait = match &params.wait {
        Some(text) => parse_wait(text).ok_or_else(|| {
            ApiFailure::bad_request(
                format!("wait {text:?} is not a duration like 30s, 500ms or 1m"),
                Some("wait"),
            )
        })?,
        None => Duration::ZERO,
    }
    .min(state.config.max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut revisions = state.revisions.subscribe();
    let mut catalog = state.catalog_changes.subscribe();
    let mut shutdown = state.shutdown.clone();
    loop {
        revisions.borrow_and_update();
        catalog.borrow_and_update();
        let view = node_view(&state, &name).await?;
        if params.index != Some(view.digest) || tokio::time::Instant::now() >= deadline {
            return Ok(crate::routes::indexed(state.snapshot().revision, &view));
        }
        tokio::select! {
            _ = revisions.changed() => {}
            _ = catalog.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.wait_for(|stop| *stop) => {
                return Ok(crate::routes::indexed(state.snapshot().revision, &view));
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DnsQueryParams {
    pub name: String,
    #[serde(rename = "type", default = "default_type")]
    pub qtype: String,
    pub from: String,
}

fn default_type() -> String {
    "A".into()
}

/// The service a name asks for: `web` in `web.service.weft`, `v1.web.service.weft` and
/// `_web._v1.service.weft`.
fn service_of(name: &str) -> Option<String> {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let at = labels
        .iter()
        .position(|l| l.eq_ignore_ascii_case("service"))?;
    let before = labels.get(..at)?;
    match before {
        [.., first, second] if first.starts_with('_') && second.starts_with('_') => {
            Some(first[1..].to_ascii_lowercase())
        }
        [.., last] => Some(last.trim_start_matches('_').to_ascii_lowercase()),
        [] => None,
    }
}

/// `GET /v1/dns?name=&type=&from=EP`: what DNS at `from`'s gateway answers, and why
/// each instance of the service is shown or hidden.
pub async fn query(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(params): ApiQuery<DnsQueryParams>,
) -> ApiResult<Response> {
    let source = source(&state)?;
    let snapshot = state.snapshot();
    let from = snapshot.endpoints.get(&params.from).ok_or_else(|| {
        ApiFailure::not_found(format!("no endpoint {}", params.from), Some("from"))
    })?;
    let from = &from.value;
    role.require_read(&from.epg.tenant)?;
    let message = weft_dns::query_message(&params.name, &params.qtype)
        .map_err(|why| ApiFailure::bad_request(why, Some("name")))?;
    let vrf = vrf_discovery(&state, &snapshot, source.as_ref(), &from.vrf, &[from])
        .await?
        .ok_or_else(|| ApiFailure::not_found(format!("no VRF {}", from.vrf), Some("from")))?;
    let zone = weft_dns::Zone::build(&dns_settings(&state), &vrf, 0);
    let mut out = Vec::new();
    let (rcode, answers) =
        match weft_dns::answer(&zone, &message, from.ip, weft_dns::Transport::Tcp, &mut out) {
            weft_dns::Reply::Send => weft_dns::describe(&out).map_err(ApiFailure::Internal)?,
            weft_dns::Reply::Forward => ("FORWARDED".to_string(), Vec::new()),
            weft_dns::Reply::Drop => ("DROPPED".to_string(), Vec::new()),
        };
    let mut decisions = Vec::new();
    if let Some(service) = service_of(&params.name) {
        let asker = Asker {
            endpoint: from.name.clone(),
            tenant: from.epg.tenant.clone(),
            epg: from.epg.to_string(),
            vrf: from.vrf.to_string(),
        };
        for d in source
            .decide(&from.epg.tenant, &service, Some(&asker))
            .await?
        {
            let passing = !d.why.starts_with("not passing");
            let (shown, why) = if !d.shown && passing && !vrf.policy_aware {
                (
                    true,
                    format!("{}; shown anyway: the VRF's dns_policy is off", d.why),
                )
            } else {
                (d.shown, d.why)
            };
            decisions.push(DnsDecision {
                id: d.id,
                node: d.node,
                address: d.address,
                port: d.port,
                shown,
                why,
            });
        }
    }
    let body = DnsQueryResponse {
        name: params.name,
        qtype: params.qtype.to_ascii_uppercase(),
        from: params.from,
        rcode,
        answers,
        decisions,
    };
    Ok(crate::routes::indexed(snapshot.revision, &body))
}

#[cfg(test)]
mod tests {
    use super::service_of;

    #[test]
    fn the_service_a_name_asks_for() {
        assert_eq!(service_of("web.service.weft").as_deref(), Some("web"));
        assert_eq!(
            service_of("v1.web.service.dc1.weft.").as_deref(),
            Some("web")
        );
        assert_eq!(service_of("_web._v1.service.weft").as_deref(), Some("web"));
        assert_eq!(
            service_of("_web._tcp.service.consul").as_deref(),
            Some("web")
        );
        assert_eq!(service_of("n1.node.weft"), None);
        assert_eq!(service_of("service.weft"), None);
    }
}
