//! Bearer tokens and roles.
//!
//! The admin and join tokens live in `<data>/admin.token` and `<data>/join.token` (0600),
//! created on first start; tenant tokens are minted by an admin and stored as SHA-256
//! hashes only. Every check compares hashes, never tokens.

use crate::error::{ApiFailure, ApiResult, ServerError};
use crate::server::AppState;
use crate::state::TokenGrant;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

pub const ADMIN_TOKEN_FILE: &str = "admin.token";
pub const JOIN_TOKEN_FILE: &str = "join.token";

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// A node agent (join token): nodes, endpoints and policy, read; its node, write.
    Agent,
    /// One tenant: its own policy and endpoints.
    Tenant(String),
}

impl Role {
    pub fn require_admin(&self) -> ApiResult<()> {
        match self {
            Role::Admin => Ok(()),
            _ => Err(ApiFailure::Forbidden("this needs the admin token".into())),
        }
    }

    /// Admin or agent (node operations, cluster-wide reads).
    pub fn require_agent(&self) -> ApiResult<()> {
        match self {
            Role::Admin | Role::Agent => Ok(()),
            Role::Tenant(_) => Err(ApiFailure::Forbidden(
                "this needs the admin or the join token".into(),
            )),
        }
    }

    /// May change `tenant`'s policy and endpoints.
    pub fn require_tenant_write(&self, tenant: &str) -> ApiResult<()> {
        match self {
            Role::Admin => Ok(()),
            Role::Tenant(own) if own == tenant => Ok(()),
            Role::Tenant(own) => Err(ApiFailure::Forbidden(format!(
                "a token of tenant {own} cannot touch tenant {tenant}"
            ))),
            Role::Agent => Err(ApiFailure::Forbidden(
                "the join token cannot change policy or endpoints".into(),
            )),
        }
    }

    /// May read `tenant`'s objects.
    pub fn can_read(&self, tenant: &str) -> bool {
        match self {
            Role::Admin | Role::Agent => true,
            Role::Tenant(own) => own == tenant,
        }
    }

    pub fn require_read(&self, tenant: &str) -> ApiResult<()> {
        if self.can_read(tenant) {
            Ok(())
        } else {
            Err(ApiFailure::Forbidden(format!(
                "this token may not read tenant {tenant}"
            )))
        }
    }
}

/// The admin and join tokens, as hashes.
#[derive(Debug)]
pub struct BootstrapTokens {
    admin_hash: String,
    join_hash: String,
    /// The tokens themselves, for [`crate::ServerHandle`] (tests, the binary's banner).
    pub admin: String,
    pub join: String,
}

impl BootstrapTokens {
    pub fn admin_hash(&self) -> &str {
        &self.admin_hash
    }

    /// Reads the token files, creating them on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, ServerError> {
        let admin = load_or_create(&data_dir.join(ADMIN_TOKEN_FILE))?;
        let join = load_or_create(&data_dir.join(JOIN_TOKEN_FILE))?;
        Ok(Self {
            admin_hash: hash(&admin),
            join_hash: hash(&join),
            admin,
            join,
        })
    }
}

/// The admin and join tokens as the cluster shares them (`/weft/cluster/bootstrap`):
/// the first controller to start stores its own; every other adopts the stored ones
/// and writes them to its token files, so that controllers over one store accept the
/// same tokens.
pub async fn shared_tokens<S: weft_store::KvStore>(
    store: &S,
    local: BootstrapTokens,
    data_dir: &Path,
) -> Result<BootstrapTokens, ServerError> {
    use weft_store::{Compare, Txn, TxnOp, TxnOpResponse};
    let mine = format!("{}\n{}", local.admin, local.join);
    let response = store
        .txn(
            Txn::new()
                .when([Compare::absent(crate::keys::BOOTSTRAP)])
                .and_then([TxnOp::put(crate::keys::BOOTSTRAP, mine.clone())])
                .or_else([TxnOp::get(crate::keys::BOOTSTRAP)]),
        )
        .await?;
    if response.succeeded {
        return Ok(local);
    }
    let stored = match response.responses.first() {
        Some(TxnOpResponse::Get(get)) => get
            .kv
            .as_ref()
            .map(|kv| String::from_utf8_lossy(&kv.value).to_string()),
        _ => None,
    }
    .unwrap_or_default();
    let Some((admin, join)) = stored.split_once('\n') else {
        return Err(ServerError::Random(format!(
            "{} in the store is malformed",
            crate::keys::BOOTSTRAP
        )));
    };
    if stored == mine {
        return Ok(local);
    }
    for (file, token) in [(ADMIN_TOKEN_FILE, admin), (JOIN_TOKEN_FILE, join)] {
        let path = data_dir.join(file);
        std::fs::write(&path, format!("{token}\n")).map_err(|source| ServerError::Io {
            path: path.clone(),
            source,
        })?;
    }
    tracing::info!("adopted the cluster's admin and join tokens from the store");
    Ok(BootstrapTokens {
        admin_hash: hash(admin),
        join_hash: hash(join),
        admin: admin.to_string(),
        join: join.to_string(),
    })
}

/// This controller's persistent id (`controller.id`), created on first start.
pub fn controller_id(data_dir: &Path) -> Result<String, ServerError> {
    let token = load_or_create(&data_dir.join("controller.id"))?;
    Ok(format!("c-{}", &token[..token.len().min(12)]))
}

fn load_or_create(path: &Path) -> Result<String, ServerError> {
    let io = |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io(err)),
    }
    let token = new_token()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    tracing::info!(path = %path.display(), "token created");
    Ok(token)
}

/// 32 random bytes, hex.
pub fn new_token() -> Result<String, ServerError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServerError::Random(e.to_string()))?;
    Ok(hex(&bytes))
}

/// The token a node's gateway adds to the Consul API requests of `tenant`'s tasks that
/// carry none: `weft-gw.<tenant>.<mac>`, where the MAC binds the tenant to this
/// controller's admin secret. Stateless: nothing is stored, and it acts for `tenant`
/// only (see [`gateway_tenant`]).
pub fn gateway_token(tokens: &BootstrapTokens, tenant: &str) -> String {
    let mac = hash(&format!("gateway/{}/{tenant}", tokens.admin_hash()));
    format!("weft-gw.{tenant}.{}", &mac[..32])
}

/// The tenant a gateway token acts for, if it is one and its MAC holds.
pub fn gateway_tenant(tokens: &BootstrapTokens, token: &str) -> Option<String> {
    let rest = token.strip_prefix("weft-gw.")?;
    let (tenant, _) = rest.rsplit_once('.')?;
    (gateway_token(tokens, tenant) == token).then(|| tenant.to_string())
}

pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl FromRequestParts<Arc<AppState>> for Role {
    type Rejection = ApiFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiFailure::Unauthorized)?;
        let hashed = hash(token);
        if hashed == state.tokens.admin_hash {
            return Ok(Role::Admin);
        }
        if hashed == state.tokens.join_hash {
            return Ok(Role::Agent);
        }
        tenant_role(
            state.snapshot().tokens.get(&hashed),
            crate::liveness::now_ms(),
        )
        .ok_or(ApiFailure::Unauthorized)
    }
}

/// The role a stored tenant grant gives at `now_ms`: none once it expired.
pub fn tenant_role(grant: Option<&TokenGrant>, now_ms: u64) -> Option<Role> {
    grant
        .filter(|grant| grant.is_live(now_ms))
        .map(|grant| Role::Tenant(grant.tenant.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_grants_give_no_role() {
        let grant = TokenGrant {
            tenant: "shop".into(),
            expires_ms: Some(10_000),
        };
        assert_eq!(
            tenant_role(Some(&grant), 9_999),
            Some(Role::Tenant("shop".into()))
        );
        assert_eq!(tenant_role(Some(&grant), 10_000), None);
        let forever = TokenGrant {
            tenant: "shop".into(),
            expires_ms: None,
        };
        assert_eq!(
            tenant_role(Some(&forever), u64::MAX),
            Some(Role::Tenant("shop".into()))
        );
        assert_eq!(tenant_role(None, 0), None);
    }
}
