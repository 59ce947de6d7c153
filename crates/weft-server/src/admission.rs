//! Policy writes: merge the change into the stored model, validate and compile it whole
//! with the stored allocation, then commit tenants and allocation in one transaction
//! guarded by the allocation key's `mod_revision` (the policy's version). Any finding
//! refuses the whole change and nothing is written; a lost race is retried from the read.

use crate::error::{ApiFailure, ApiResult};
use crate::keys;
use crate::server::AppState;
use crate::state::{as_revision, decode_tenant};
use crate::watch::caught_up;
use std::collections::BTreeMap;
use weft_api::ApplyResponse;
use weft_compiler::{Allocation, CompileError};
use weft_model::{Model, ParseErrors, Tenant};
use weft_store::{Compare, CompareOp, KvStore, Txn, TxnOp};

/// Attempts before a policy write gives up on a busy store.
const MAX_ATTEMPTS: usize = 32;

/// One tenant to create or replace (`Some`) or delete (`None`).
pub type TenantChange = (String, Option<Tenant>);

/// Completes tenants deserialized from a request (subnet keys → CIDRs, names checked).
pub fn resolve_request(model: &mut Model, field_prefix: &str) -> ApiResult<()> {
    weft_model::resolve_json_keys(model).map_err(|ParseErrors(errors)| {
        let field = errors
            .first()
            .and_then(|e| e.path.as_ref())
            .map(|p| format!("{field_prefix}{p}"));
        ApiFailure::BadRequest {
            message: "the model has invalid names or subnets".into(),
            field,
            details: errors.iter().map(ToString::to_string).collect(),
        }
    })
}

/// Commits `changes` if the resulting model is valid; see the module doc.
pub async fn commit(state: &AppState, changes: Vec<TenantChange>) -> ApiResult<ApplyResponse> {
    let names: Vec<String> = changes.iter().map(|(name, _)| name.clone()).collect();
    let _serialised = state.policy_lock.lock().await;
    for _ in 0..MAX_ATTEMPTS {
        let read = state.store.range(keys::POLICY.as_bytes(), None).await?;
        let mut stored = Model::default();
        let mut allocation = Allocation::default();
        let mut allocation_revision = 0;
        for kv in &read.kvs {
            let key = String::from_utf8_lossy(&kv.key);
            if let Some(name) = key.strip_prefix(keys::TENANTS) {
                let tenant = decode_tenant(name, &kv.value)
                    .map_err(|why| ApiFailure::Internal(format!("stored tenant {name}: {why}")))?;
                stored.tenants.insert(name.to_string(), tenant);
            } else if key == keys::ALLOCATION {
                allocation = serde_json::from_slice(&kv.value)
                    .map_err(|why| ApiFailure::Internal(format!("stored allocation: {why}")))?;
                allocation_revision = kv.mod_revision;
            }
        }

        let mut model = stored.clone();
        let mut ops = Vec::new();
        for (name, change) in &changes {
            match change {
                Some(tenant) => {
                    if stored.tenants.get(name) != Some(tenant) {
                        let bytes = serde_json::to_vec(tenant)
                            .map_err(|e| ApiFailure::Internal(e.to_string()))?;
                        ops.push(TxnOp::put(keys::tenant(name), bytes));
                    }
                    model.tenants.insert(name.clone(), tenant.clone());
                }
                None => {
                    if model.tenants.remove(name).is_none() {
                        return Err(ApiFailure::not_found(
                            format!("tenant {name} does not exist"),
                            Some("tenant"),
                        ));
                    }
                    ops.push(TxnOp::delete(keys::tenant(name)));
                }
            }
        }

        let report = weft_model::validate(&model);
        let warnings: Vec<String> = report.warnings().map(ToString::to_string).collect();
        if report.has_errors() {
            let errors: Vec<_> = report.errors().collect();
            return Err(ApiFailure::Unprocessable {
                message: format!("the model is invalid ({} errors)", errors.len()),
                field: errors.first().map(|d| d.path.to_string()),
                details: errors.iter().map(ToString::to_string).collect(),
            });
        }
        let budget = state.config.compile_budget;
        let policy =
            weft_compiler::compile_within(&model, &allocation, budget).map_err(
                |why| match &why {
                    CompileError::OverBudget(over) => ApiFailure::Unprocessable {
                        message: "the model is over the compile budget; nothing was committed"
                            .into(),
                        field: over.largest.as_ref().map(|s| s.contract.to_string()),
                        details: vec![why.to_string()],
                    },
                    _ => ApiFailure::Unprocessable {
                        message: "the model does not compile".into(),
                        field: None,
                        details: vec![why.to_string()],
                    },
                },
            )?;
        check_endpoints_stay(state, &model)?;

        if ops.is_empty() && policy.allocation == allocation {
            // Nothing changes: do not bump the revision (it would wake every watcher).
            return Ok(ApplyResponse {
                revision: as_revision(read.revision),
                tenants: names,
                warnings,
            });
        }
        let allocation_bytes = serde_json::to_vec(&policy.allocation)
            .map_err(|e| ApiFailure::Internal(e.to_string()))?;
        ops.push(TxnOp::put(keys::ALLOCATION, allocation_bytes));
        let txn = Txn::new()
            .when([Compare::mod_revision(
                keys::ALLOCATION,
                CompareOp::Equal,
                allocation_revision,
            )])
            .and_then(ops);
        let response = state.store.txn(txn).await?;
        if !response.succeeded {
            tracing::debug!("policy changed under us; retrying");
            continue;
        }
        let revision = as_revision(response.revision);
        caught_up(state, revision).await;
        tracing::info!(revision, tenants = ?names, "policy committed");
        return Ok(ApplyResponse {
            revision,
            tenants: names,
            warnings,
        });
    }
    Err(ApiFailure::conflict(
        "the policy kept changing while this change was checked; retry",
        None,
    ))
}

/// An endpoint's EPG and security groups must survive the change; take the endpoints
/// away first (delete them, or take them out of the groups).
fn check_endpoints_stay(state: &AppState, model: &Model) -> ApiResult<()> {
    let snapshot = state.snapshot();
    let mut orphans: Vec<String> = Vec::new();
    let mut unguarded: Vec<String> = Vec::new();
    for ep in snapshot.endpoints.values() {
        let epg = &ep.value.epg;
        let tenant = model.tenants.get(&epg.tenant);
        if !tenant
            .and_then(|t| t.app_profiles.get(&epg.app_profile))
            .is_some_and(|ap| ap.epgs.contains_key(&epg.epg))
        {
            orphans.push(format!("endpoint {} is in EPG {}", ep.value.name, epg));
        }
        for group in ep.value.security_groups.iter().flatten() {
            if !tenant.is_some_and(|t| t.security_groups.contains_key(group)) {
                unguarded.push(format!(
                    "endpoint {} is in security group {group} of tenant {}",
                    ep.value.name, epg.tenant
                ));
            }
        }
    }
    if !orphans.is_empty() {
        return Err(ApiFailure::Conflict {
            message: format!(
                "the change removes EPGs that still have {} endpoints; delete them first",
                orphans.len()
            ),
            field: None,
            details: orphans,
        });
    }
    if !unguarded.is_empty() {
        return Err(ApiFailure::Conflict {
            message: format!(
                "the change removes security groups that {} endpoints are in; take them out first",
                unguarded.len()
            ),
            field: Some("security_group".into()),
            details: unguarded,
        });
    }
    Ok(())
}

/// Changes that upsert every tenant of `model`.
pub fn upserts(model: Model) -> Vec<TenantChange> {
    model
        .tenants
        .into_iter()
        .map(|(name, tenant)| (name, Some(tenant)))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect()
}
