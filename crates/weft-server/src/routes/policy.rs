//! Policy: apply, tenants, EPG and contract listings, the compiled policy.

use super::indexed;
use super::skeleton::{fresh, read};
use crate::admission::{self, resolve_request};
use crate::auth::Role;
use crate::error::{ApiFailure, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::server::AppState;
use crate::state::Snapshot;
use crate::watch::BlockingParams;
use axum::extract::{Path, State};
use axum::response::Response;
use std::sync::Arc;
use weft_api::{ApplyRequest, ContractInfo, EpgInfo, TenantSummary};
use weft_compiler::CompiledPolicy;
use weft_model::{EpgPath, Model, ObjectPath, Tenant};

pub async fn apply(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiJson(request): ApiJson<ApplyRequest>,
) -> ApiResult<Response> {
    let mut model = request.model;
    if model.tenants.is_empty() {
        return Err(ApiFailure::bad_request(
            "the model has no tenant to apply",
            Some("model.tenant"),
        ));
    }
    for name in model.tenants.keys() {
        role.require_tenant_write(name)?;
    }
    resolve_request(&mut model, "model.")?;
    let response = admission::commit(&state, admission::upserts(model)).await?;
    Ok(indexed(response.revision, &response))
}

pub async fn list_tenants(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    read(&state, &wait, |snapshot| {
        let rows: Vec<TenantSummary> = snapshot
            .model
            .tenants
            .iter()
            .filter(|(name, _)| role.can_read(name))
            .map(|(name, tenant)| TenantSummary {
                name: name.clone(),
                revision: snapshot.tenant_revisions.get(name).copied().unwrap_or(0),
                vrfs: tenant.vrfs.len(),
                bridge_domains: tenant.bridge_domains.len(),
                epgs: tenant.app_profiles.values().map(|ap| ap.epgs.len()).sum(),
                contracts: tenant.contracts.len(),
            })
            .collect();
        Ok(rows)
    })
    .await
}

pub async fn get_tenant(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    role.require_read(&name)?;
    read(&state, &wait, |snapshot| {
        snapshot
            .model
            .tenants
            .get(&name)
            .cloned()
            .ok_or_else(|| ApiFailure::not_found(format!("tenant {name} does not exist"), None))
    })
    .await
}

pub async fn put_tenant(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
    ApiJson(tenant): ApiJson<Tenant>,
) -> ApiResult<Response> {
    role.require_tenant_write(&name)?;
    let mut model = Model::default();
    model.tenants.insert(name, tenant);
    resolve_request(&mut model, "")?;
    let response = admission::commit(&state, admission::upserts(model)).await?;
    Ok(indexed(response.revision, &response))
}

pub async fn delete_tenant(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    role.require_tenant_write(&name)?;
    let response = admission::commit(&state, vec![(name, None)]).await?;
    Ok(indexed(response.revision, &response))
}

pub async fn list_epgs(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    read(&state, &wait, |snapshot| Ok(epg_rows(snapshot, &role))).await
}

/// The EPGs `role` may read, with their classes and endpoint counts.
fn epg_rows(snapshot: &Snapshot, role: &Role) -> Vec<EpgInfo> {
    // Counted once, not once per EPG: the listing stays linear in endpoints.
    let mut endpoints_of: std::collections::HashMap<&EpgPath, usize> =
        std::collections::HashMap::new();
    for ep in snapshot.endpoints.values() {
        *endpoints_of.entry(&ep.value.epg).or_default() += 1;
    }
    let mut rows = Vec::new();
    for (tname, tenant) in snapshot.model.tenants.iter() {
        if !role.can_read(tname) {
            continue;
        }
        for (aname, ap) in &tenant.app_profiles {
            for (ename, epg) in &ap.epgs {
                let path = EpgPath::new(tname, aname, ename);
                let Some(compiled) = snapshot.policy.epgs.get(&path) else {
                    continue;
                };
                let endpoints = endpoints_of.get(&path).copied().unwrap_or(0);
                rows.push(EpgInfo {
                    class: compiled.class.0,
                    vrf: compiled.vrf.clone(),
                    bridge_domain: compiled.bridge_domain.clone(),
                    provides: epg.provides.clone(),
                    consumes: epg.consumes.clone(),
                    endpoints,
                    path,
                });
            }
        }
    }
    rows
}

pub async fn list_contracts(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    read(&state, &wait, |snapshot| Ok(contract_rows(snapshot, &role))).await
}

/// The contracts `role` may read, with their providers and consumers.
fn contract_rows(snapshot: &Snapshot, role: &Role) -> Vec<ContractInfo> {
    let mut rows = Vec::new();
    for (tname, tenant) in snapshot.model.tenants.iter() {
        if !role.can_read(tname) {
            continue;
        }
        let epgs: Vec<(EpgPath, &weft_model::Epg)> = tenant
            .app_profiles
            .iter()
            .flat_map(|(aname, ap)| {
                ap.epgs
                    .iter()
                    .map(move |(ename, epg)| (EpgPath::new(tname, aname, ename), epg))
            })
            .collect();
        for (cname, contract) in &tenant.contracts {
            let parties = |pick: fn(&weft_model::Epg) -> &Vec<String>| {
                epgs.iter()
                    .filter(|(_, epg)| pick(epg).contains(cname))
                    .map(|(path, _)| path.to_string())
                    .collect::<Vec<_>>()
            };
            rows.push(ContractInfo {
                path: ObjectPath::tenant(tname).child("contract", cname),
                scope: contract.scope.to_string(),
                subjects: contract.subjects.len(),
                providers: parties(|epg| &epg.provides),
                consumers: parties(|epg| &epg.consumes),
            });
        }
    }
    rows
}

pub async fn compiled(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    let snapshot = fresh(&state, &wait).await?;
    match &role {
        Role::Tenant(own) => Ok(indexed(
            snapshot.revision,
            &tenant_view(&snapshot.policy, own),
        )),
        Role::Admin | Role::Agent => Ok(indexed(snapshot.revision, &*snapshot.policy)),
    }
}

/// The part of the compiled policy that belongs to one tenant.
fn tenant_view(policy: &CompiledPolicy, tenant: &str) -> CompiledPolicy {
    let prefix = format!("{tenant}/");
    let mut view = policy.clone();
    view.vrfs
        .retain(|path, _| path.as_str().starts_with(&prefix));
    view.epgs.retain(|path, _| path.tenant == tenant);
    view.security_groups.retain(|name, _| name == tenant);
    view.allocation
        .classes
        .retain(|path, _| path.tenant == tenant);
    view.allocation
        .vrf_ids
        .retain(|path, _| path.as_str().starts_with(&prefix));
    view.allocation
        .vnis
        .retain(|path, _| path.as_str().starts_with(&prefix));
    view
}
