//! Endpoints: creation with IPAM, listing (filtered by tenant), deletion.

use super::indexed;
use super::skeleton::{commit_guarded, read, retry_txn};
use crate::auth::Role;
use crate::error::{ApiFailure, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::ipam::mac_is_assignable;
use crate::keys;
use crate::server::AppState;
use crate::state::{EndpointRecord, Snapshot, Stored};
use crate::watch::BlockingParams;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use weft_api::{Endpoint, EndpointRequest, EndpointUpdate};
use weft_store::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse};

/// Attempts before creation gives up on a busy store.
const MAX_ATTEMPTS: usize = 64;

pub async fn list(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    read(&state, &wait, |snapshot| {
        Ok(wire_endpoints(&state, snapshot, &role))
    })
    .await
}

pub async fn get_one(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    read(&state, &wait, |snapshot| {
        let stored = find(snapshot, &name)?;
        role.require_read(&stored.value.epg.tenant)?;
        Ok(wire(&state, stored))
    })
    .await
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiJson(request): ApiJson<EndpointRequest>,
) -> ApiResult<Response> {
    check_name(&request.name)?;
    role.require_tenant_write(&request.epg.tenant)?;
    if let Some(mac) = request.mac
        && !mac_is_assignable(mac)
    {
        return Err(ApiFailure::bad_request(
            format!("{mac} is a multicast or zero MAC"),
            Some("mac"),
        ));
    }
    // The reservation holds the picked address against concurrent creations until the
    // snapshot shows it taken.
    let (revision, (record, _reservation)) = retry_txn(
        &state,
        MAX_ATTEMPTS,
        |snapshot| {
            let planned = plan(&state, snapshot, &request)?;
            Ok((claim(snapshot, &planned.0)?, planned))
        },
        |(record, _), lost| refusal(&request, record, lost),
        || {
            ApiFailure::conflict(
                "too many concurrent changes to place this endpoint; retry",
                None,
            )
        },
    )
    .await?;
    let snapshot = state.snapshot();
    let stored = find(&snapshot, &record.name)?;
    tracing::debug!(endpoint = %record.name, ip = %record.ip, "endpoint created");
    let mut created = indexed(revision, &wire(&state, stored));
    *created.status_mut() = StatusCode::CREATED;
    Ok(created.into_response())
}

/// The transaction that creates `record`: its name, address and MAC must be free, its
/// node registered and the policy unchanged since `snapshot`; on failure it reads back
/// which of them was not (for [`refusal`]).
fn claim(snapshot: &Snapshot, record: &EndpointRecord) -> ApiResult<Txn> {
    let endpoint_key = keys::endpoint(&record.name);
    let ip_key = keys::ip_claim(&record.vrf, record.ip);
    let mac_key = keys::mac_claim(record.mac);
    let node_key = keys::node(&record.node);
    let bytes = serde_json::to_vec(record).map_err(|e| ApiFailure::Internal(e.to_string()))?;
    Ok(Txn::new()
        .when([
            Compare::absent(endpoint_key.clone()),
            Compare::create_revision(ip_key.clone(), CompareOp::Equal, 0),
            Compare::create_revision(mac_key.clone(), CompareOp::Equal, 0),
            Compare::version(node_key.clone(), CompareOp::Greater, 0),
            Compare::mod_revision(
                keys::ALLOCATION,
                CompareOp::Equal,
                i64::try_from(snapshot.policy_revision).unwrap_or(i64::MAX),
            ),
        ])
        .and_then([
            TxnOp::put(endpoint_key.clone(), bytes),
            TxnOp::put(ip_key.clone(), record.name.clone()),
            TxnOp::put(mac_key.clone(), record.name.clone()),
        ])
        .or_else([
            TxnOp::get(endpoint_key),
            TxnOp::get(ip_key),
            TxnOp::get(mac_key),
            TxnOp::get(node_key),
        ]))
}

/// Why a lost [`claim`] refuses the request, or `Ok` to plan again (an address the
/// server picked was taken, or the policy changed under us).
fn refusal(
    request: &EndpointRequest,
    record: &EndpointRecord,
    lost: &TxnResponse,
) -> ApiResult<()> {
    let exists: Vec<bool> = lost
        .responses
        .iter()
        .map(|r| matches!(r, TxnOpResponse::Get(get) if get.kv.is_some()))
        .collect();
    let [endpoint_taken, ip_taken, mac_taken, node_known] = exists[..] else {
        return Err(ApiFailure::Internal("unexpected txn answer".into()));
    };
    if endpoint_taken {
        return Err(ApiFailure::conflict(
            format!("endpoint {} already exists", request.name),
            Some("name"),
        ));
    }
    if ip_taken && request.ip.is_some() {
        return Err(ApiFailure::conflict(
            format!("{} is taken in VRF {}", record.ip, record.vrf),
            Some("ip"),
        ));
    }
    if mac_taken && request.mac.is_some() {
        return Err(ApiFailure::conflict(
            format!("MAC {} is taken", record.mac),
            Some("mac"),
        ));
    }
    if !node_known {
        return Err(ApiFailure::unprocessable(
            format!("node {} is not registered", request.node),
            Some("node"),
        ));
    }
    Ok(())
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let snapshot = state.snapshot();
    let stored = find(&snapshot, &name)?;
    role.require_tenant_write(&stored.value.epg.tenant)?;
    let txn =
        delete_txn(&snapshot, stored, &name).map_err(|why| ApiFailure::conflict(why, None))?;
    let revision = commit_guarded(&state, txn, format!("endpoint {name}")).await?;
    Ok(indexed(revision, &serde_json::json!({ "deleted": name })))
}

/// The transaction that deletes endpoint `name` (as `stored` shows it) with its address
/// claims, guarded on it being unchanged; `Err` when an app runs in it (a task would
/// lose its network under it).
pub(crate) fn delete_txn(
    snapshot: &Snapshot,
    stored: &crate::state::Stored<EndpointRecord>,
    name: &str,
) -> Result<Txn, String> {
    if let Some((app, _)) = snapshot
        .apps
        .iter()
        .find(|(_, a)| a.value.endpoint.as_deref() == Some(name))
    {
        return Err(format!(
            "endpoint {name} is app {app}'s (its task runs in it): delete the app first"
        ));
    }
    let record = &stored.value;
    let endpoint_key = keys::endpoint(name);
    Ok(Txn::new()
        .when([Compare::mod_revision(
            endpoint_key.clone(),
            CompareOp::Equal,
            i64::try_from(stored.revision).unwrap_or(i64::MAX),
        )])
        .and_then([
            TxnOp::delete(endpoint_key),
            TxnOp::delete(keys::ip_claim(&record.vrf, record.ip)),
            TxnOp::delete(keys::mac_claim(record.mac)),
        ]))
}

/// Checks the request against the snapshot and picks the address and MAC.
pub(crate) fn plan(
    state: &AppState,
    snapshot: &Snapshot,
    request: &EndpointRequest,
) -> ApiResult<(EndpointRecord, crate::ipam::Reservation)> {
    if snapshot.endpoints.contains_key(&request.name) {
        return Err(ApiFailure::conflict(
            format!("endpoint {} already exists", request.name),
            Some("name"),
        ));
    }
    let epg = snapshot.policy.epgs.get(&request.epg).ok_or_else(|| {
        ApiFailure::unprocessable(format!("EPG {} does not exist", request.epg), Some("epg"))
    })?;
    let node = snapshot.nodes.get(&request.node).ok_or_else(|| {
        ApiFailure::unprocessable(
            format!("node {} is not registered", request.node),
            Some("node"),
        )
    })?;
    let subnets = snapshot
        .policy
        .vrfs
        .get(&epg.vrf)
        .and_then(|vrf| {
            vrf.bridge_domains
                .iter()
                .find(|bd| bd.path == epg.bridge_domain)
        })
        .map(|bd| bd.subnets.clone())
        .unwrap_or_default();
    if subnets.is_empty() {
        return Err(ApiFailure::unprocessable(
            format!(
                "bridge domain {} of EPG {} has no subnet to take an address from",
                epg.bridge_domain, request.epg
            ),
            Some("epg"),
        ));
    }
    let reservation = match request.ip {
        Some(ip) => state
            .ipam
            .requested(&subnets, ip)
            .map_err(|why| ApiFailure::unprocessable(why, Some("ip")))?,
        None => {
            let used: HashSet<IpAddr> = snapshot
                .endpoints
                .values()
                .filter(|ep| ep.value.vrf == epg.vrf)
                .map(|ep| ep.value.ip)
                .collect();
            state
                .ipam
                .reserve_lowest(&epg.vrf, &subnets, &used)
                .ok_or_else(|| {
                    ApiFailure::conflict(
                        format!("bridge domain {} has no free address", epg.bridge_domain),
                        Some("epg"),
                    )
                })?
        }
    };
    let record = EndpointRecord {
        name: request.name.clone(),
        epg: request.epg.clone(),
        node: request.node.clone(),
        netns: format!("{}-ep-{}", node.value.netns_prefix, request.name),
        interface: 0,
        ip: reservation.ip,
        prefix_len: reservation.subnet.prefix_len(),
        gateway: reservation.gateway,
        mac: request.mac.unwrap_or_else(|| state.ipam.next_mac(snapshot)),
        allowed_address_pairs: request.allowed_address_pairs.clone(),
        port_security: request.port_security,
        security_groups: request.security_groups.clone(),
        vrf: epg.vrf.clone(),
    };
    check_security(snapshot, &record)?;
    Ok((record, reservation))
}

/// At most this many security groups on one endpoint.
pub const MAX_ENDPOINT_SECURITY_GROUPS: usize = 64;

/// An endpoint's security groups must be groups of its tenant, and need port security.
pub(crate) fn check_security(snapshot: &Snapshot, record: &EndpointRecord) -> ApiResult<()> {
    let Some(groups) = &record.security_groups else {
        return Ok(());
    };
    if !record.port_security && !groups.is_empty() {
        return Err(ApiFailure::conflict(
            format!(
                "endpoint {} has security groups ({}): they need port security, so it cannot be off",
                record.name,
                groups.join(", ")
            ),
            Some("port_security"),
        ));
    }
    if groups.len() > MAX_ENDPOINT_SECURITY_GROUPS {
        return Err(ApiFailure::bad_request(
            format!(
                "{} security groups; at most {MAX_ENDPOINT_SECURITY_GROUPS} per endpoint",
                groups.len()
            ),
            Some("security_groups"),
        ));
    }
    let tenant = &record.epg.tenant;
    let known = snapshot.model.tenants.get(tenant);
    for group in groups {
        if !known.is_some_and(|t| t.security_groups.contains_key(group)) {
            return Err(ApiFailure::unprocessable(
                format!("security group {group:?} does not exist in tenant {tenant}"),
                Some("security_groups"),
            ));
        }
    }
    Ok(())
}

/// `PATCH /v1/endpoints/{name}`: what may change on a live endpoint, its port's guard.
pub async fn update(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    ApiJson(change): ApiJson<EndpointUpdate>,
) -> ApiResult<Response> {
    let snapshot = state.snapshot();
    let stored = find(&snapshot, &name)?;
    role.require_tenant_write(&stored.value.epg.tenant)?;
    let (revision, _) = update_port(&state, &name, &change).await?;
    let snapshot = state.snapshot();
    Ok(indexed(revision, &wire(&state, find(&snapshot, &name)?)).into_response())
}

/// Applies `change` to endpoint `name`, guarded by the policy revision (so the groups
/// it names still exist) and the endpoint's own revision. Returns the commit's
/// revision and the record written.
pub(crate) async fn update_port(
    state: &AppState,
    name: &str,
    change: &EndpointUpdate,
) -> ApiResult<(u64, EndpointRecord)> {
    retry_txn(
        state,
        MAX_ATTEMPTS,
        |snapshot| {
            let stored = find(snapshot, name)?;
            let mut record = stored.value.clone();
            if let Some(pairs) = &change.allowed_address_pairs {
                record.allowed_address_pairs = pairs.clone();
            }
            if let Some(on) = change.port_security {
                record.port_security = on;
            }
            if let Some(groups) = &change.security_groups {
                record.security_groups = groups.clone();
            }
            check_security(snapshot, &record)?;
            let key = keys::endpoint(name);
            let bytes =
                serde_json::to_vec(&record).map_err(|e| ApiFailure::Internal(e.to_string()))?;
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        i64::try_from(stored.revision).unwrap_or(i64::MAX),
                    ),
                    Compare::mod_revision(
                        keys::ALLOCATION,
                        CompareOp::Equal,
                        i64::try_from(snapshot.policy_revision).unwrap_or(i64::MAX),
                    ),
                ])
                .and_then([TxnOp::put(key, bytes)]);
            Ok((txn, record))
        },
        |_, _| Ok(()),
        || ApiFailure::conflict(format!("endpoint {name} keeps changing; retry"), None),
    )
    .await
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiFailure::bad_request(
            format!("endpoint name {name:?} must be 1 to 32 characters of [a-z0-9-]"),
            Some("name"),
        ))
    }
}

fn find<'a>(snapshot: &'a Snapshot, name: &str) -> ApiResult<&'a Stored<EndpointRecord>> {
    snapshot
        .endpoints
        .get(name)
        .ok_or_else(|| ApiFailure::not_found(format!("endpoint {name} does not exist"), None))
}

pub fn wire(state: &AppState, stored: &Stored<EndpointRecord>) -> Endpoint {
    let record = &stored.value;
    Endpoint {
        name: record.name.clone(),
        epg: record.epg.clone(),
        node: record.node.clone(),
        netns: record.netns.clone(),
        interface: record.interface,
        ip: record.ip,
        prefix_len: record.prefix_len,
        gateway: record.gateway,
        mac: record.mac,
        allowed_address_pairs: record.allowed_address_pairs.clone(),
        port_security: record.port_security,
        security_groups: record.security_groups.clone(),
        revision: stored.revision,
        status: state.liveness.endpoint_status(&record.node, &record.name),
    }
}

/// The endpoints `role` may see.
pub fn wire_endpoints(state: &AppState, snapshot: &Snapshot, role: &Role) -> Vec<Endpoint> {
    snapshot
        .endpoints
        .values()
        .filter(|ep| role.can_read(&ep.value.epg.tenant))
        .map(|ep| wire(state, ep))
        .collect()
}
