//! Privileged tasks per tenant (the seed paper's open problem 4): an allow-list only the
//! admin writes (`/weft/privilege/<tenant>`), read by app admission. A tenant token may
//! create, change or scale up an app with `privileged = true` only while its tenant is
//! on the list; the admin may always. Denying leaves running apps alone (their tasks
//! keep running and are replaced as usual) but refuses every new admission.

use super::indexed;
use super::skeleton::{commit_guarded, read};
use crate::auth::Role;
use crate::error::{ApiFailure, ApiResult};
use crate::extract::ApiQuery;
use crate::keys;
use crate::liveness::now_ms;
use crate::server::AppState;
use crate::state::{PrivilegeGrant, Snapshot};
use crate::watch::BlockingParams;
use axum::extract::{Path, State};
use axum::response::Response;
use std::sync::Arc;
use weft_api::TenantPrivilege;
use weft_store::{Compare, CompareOp, Txn, TxnOp};

/// Tenants the list may hold.
pub const MAX_PRIVILEGED_TENANTS: usize = 10_000;

/// A tenant name as tokens and Keystone projects have them.
pub(crate) fn valid_tenant(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn checked(tenant: &str) -> ApiResult<()> {
    if valid_tenant(tenant) {
        Ok(())
    } else {
        Err(ApiFailure::bad_request(
            format!("{tenant:.80?} is not a tenant name ([A-Za-z0-9._-], 1 to 64)"),
            Some("tenant"),
        ))
    }
}

/// Whether `role` may admit privileged tasks in `tenant` now, and if so the compare that
/// keeps it so until the commit (`None` for the admin, who needs none).
pub(crate) fn privilege_guard(
    snapshot: &Snapshot,
    role: &Role,
    tenant: &str,
    app: &str,
) -> ApiResult<Option<Compare>> {
    if *role == Role::Admin {
        return Ok(None);
    }
    match snapshot.privileged.get(tenant) {
        Some(stored) => Ok(Some(Compare::mod_revision(
            keys::privilege(tenant),
            CompareOp::Equal,
            i64::try_from(stored.revision).unwrap_or(i64::MAX),
        ))),
        None => Err(ApiFailure::Forbidden(format!(
            "app {app}: tenant {tenant} may not run privileged tasks (privileged = true, or weft:privileged=true in an OpenStack flavor's extra specs or image's properties); an admin allows it with `weft tenant privilege allow {tenant}` or through Keystone `openstack project set --tag weft:privileged {tenant}`"
        ))),
    }
}

/// The tenant's entry as the API shows it.
pub(crate) fn entry(snapshot: &Snapshot, tenant: &str) -> TenantPrivilege {
    TenantPrivilege {
        tenant: tenant.to_string(),
        allowed: snapshot.privileged.contains_key(tenant),
        since_ms: snapshot.privileged.get(tenant).map(|g| g.value.since_ms),
        privileged_apps: snapshot
            .apps
            .iter()
            .filter(|(_, a)| a.value.privileged && a.value.epg.tenant == tenant)
            .map(|(id, _)| id.clone())
            .collect(),
    }
}

/// `GET /v1/privilege`: the admin sees every allowed tenant, a tenant itself if allowed.
pub async fn list(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    read(&state, &wait, |snapshot| {
        Ok(snapshot
            .privileged
            .keys()
            .filter(|t| role.can_read(t))
            .map(|t| entry(snapshot, t))
            .collect::<Vec<_>>())
    })
    .await
}

/// `GET /v1/privilege/{tenant}`: whoever may read the tenant.
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(tenant): Path<String>,
    ApiQuery(wait): ApiQuery<BlockingParams>,
) -> ApiResult<Response> {
    checked(&tenant)?;
    role.require_read(&tenant)?;
    read(&state, &wait, |snapshot| Ok(entry(snapshot, &tenant))).await
}

/// `PUT /v1/privilege/{tenant}` (admin): allows it; idempotent.
pub async fn allow(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(tenant): Path<String>,
) -> ApiResult<Response> {
    role.require_admin()?;
    let revision = set(&state, &tenant, true).await?;
    Ok(indexed(revision, &entry(&state.snapshot(), &tenant)))
}

/// `DELETE /v1/privilege/{tenant}` (admin): denies it; idempotent. The answer names the
/// tenant's privileged apps, which keep running.
pub async fn deny(
    State(state): State<Arc<AppState>>,
    role: Role,
    Path(tenant): Path<String>,
) -> ApiResult<Response> {
    role.require_admin()?;
    let revision = set(&state, &tenant, false).await?;
    Ok(indexed(revision, &entry(&state.snapshot(), &tenant)))
}

/// Allows or denies `tenant` (the caller is the admin); the revision the snapshot then
/// includes. Also the Keystone adapter's `PATCH /v3/projects/{id}`.
pub(crate) async fn set(state: &AppState, tenant: &str, allowed: bool) -> ApiResult<u64> {
    checked(tenant)?;
    let snapshot = state.snapshot();
    let key = keys::privilege(tenant);
    let present = snapshot.privileged.contains_key(tenant);
    if present == allowed {
        return Ok(snapshot.revision);
    }
    let txn = if allowed {
        if snapshot.privileged.len() >= MAX_PRIVILEGED_TENANTS {
            return Err(ApiFailure::Forbidden(format!(
                "at most {MAX_PRIVILEGED_TENANTS} tenants may be allowed privileged tasks"
            )));
        }
        let grant = serde_json::to_vec(&PrivilegeGrant { since_ms: now_ms() })
            .map_err(|e| ApiFailure::Internal(e.to_string()))?;
        Txn::new()
            .when([Compare::absent(key.clone())])
            .and_then([TxnOp::put(key, grant)])
    } else {
        Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Greater, 0)])
            .and_then([TxnOp::delete(key)])
    };
    let revision = commit_guarded(state, txn, format!("tenant {tenant}'s privilege")).await?;
    let left = entry(&state.snapshot(), tenant).privileged_apps;
    if allowed {
        tracing::info!(%tenant, "tenant allowed privileged tasks");
    } else {
        tracing::info!(%tenant, still_running = ?left, "tenant denied privileged tasks");
    }
    Ok(revision)
}
