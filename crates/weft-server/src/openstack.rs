//! What the OpenStack adapter (`weft-openstack`) asks of the controller: tokens (a
//! Keystone token is a weft tenant token with an expiry), the current model and its
//! endpoints from the live snapshot, and admission for every network write. Also the
//! listener (`start_openstack`) and weft's own route that creates Keystone users.

use crate::admission;
use crate::auth::{self, Role, tenant_role};
use crate::error::{ApiFailure, ApiResult, ServerError};
use crate::extract::ApiJson;
use crate::keys;
use crate::liveness::now_ms;
use crate::server::AppState;
use crate::state::{TokenGrant, as_revision};
use crate::watch::caught_up;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use weft_model::{Model, Tenant};
use weft_openstack::{Caller, Controller, OpenStackError, WeftEndpoint};
use weft_store::KvStore;

/// The controller as the OpenStack adapter sees it.
#[derive(Debug)]
pub struct ServerController {
    pub(crate) state: Arc<AppState>,
}

fn internal(err: impl std::fmt::Display) -> OpenStackError {
    OpenStackError::Internal(err.to_string())
}

impl From<ApiFailure> for OpenStackError {
    fn from(failure: ApiFailure) -> Self {
        match failure {
            ApiFailure::BadRequest {
                message, details, ..
            }
            | ApiFailure::Unprocessable {
                message, details, ..
            } => OpenStackError::Invalid { message, details },
            ApiFailure::Conflict {
                message, details, ..
            } => OpenStackError::Conflict { message, details },
            ApiFailure::NotFound { message, .. } => OpenStackError::NotFound(message),
            other => OpenStackError::Internal(other.to_string()),
        }
    }
}

impl Controller for ServerController {
    fn caller(&self, token: &str) -> Option<Caller> {
        let hashed = auth::hash(token);
        if hashed == self.state.tokens.admin_hash() {
            return Some(Caller::Admin);
        }
        match tenant_role(self.state.snapshot().tokens.get(&hashed), now_ms())? {
            Role::Tenant(tenant) => Some(Caller::Tenant(tenant)),
            Role::Admin | Role::Agent => None,
        }
    }

    async fn issue_token(&self, tenant: &str, expires_ms: u64) -> Result<String, OpenStackError> {
        let token = auth::new_token().map_err(internal)?;
        let grant = serde_json::to_vec(&TokenGrant {
            tenant: tenant.to_string(),
            expires_ms: Some(expires_ms),
        })
        .map_err(internal)?;
        let put = self
            .state
            .store
            .put(keys::token(&auth::hash(&token)).as_bytes(), &grant, None)
            .await?;
        // The token must work on the next request, on either listener.
        caught_up(&self.state, as_revision(put.revision)).await;
        Ok(token)
    }

    async fn revoke_token(&self, token: &str) -> Result<bool, OpenStackError> {
        let deleted = self
            .state
            .store
            .delete(keys::token(&auth::hash(token)).as_bytes())
            .await?;
        caught_up(&self.state, as_revision(deleted.revision)).await;
        Ok(deleted.deleted() > 0)
    }

    fn tenants(&self) -> Vec<String> {
        self.state
            .snapshot()
            .model
            .tenants
            .keys()
            .cloned()
            .collect()
    }

    fn tenant(&self, name: &str) -> Option<Tenant> {
        self.state.snapshot().model.tenants.get(name).cloned()
    }

    fn endpoints(&self, tenant: &str) -> Vec<WeftEndpoint> {
        self.state
            .snapshot()
            .endpoints
            .values()
            .filter(|e| e.value.epg.tenant == tenant)
            .map(|e| WeftEndpoint {
                name: e.value.name.clone(),
                epg: e.value.epg.to_string(),
                ip: e.value.ip,
            })
            .collect()
    }

    async fn commit(&self, name: &str, tenant: Option<Tenant>) -> Result<(), OpenStackError> {
        let change = match tenant {
            Some(tenant) => {
                let mut model = Model::default();
                model.tenants.insert(name.to_string(), tenant);
                admission::resolve_request(&mut model, "")?;
                admission::upserts(model)
            }
            None => vec![(name.to_string(), None)],
        };
        admission::commit(&self.state, change).await?;
        Ok(())
    }
}

/// The OpenStack listener.
#[derive(Debug)]
pub struct OpenStackTasks {
    pub addr: SocketAddr,
    pub server: JoinHandle<()>,
}

/// Binds and serves the OpenStack APIs when the config asks for it.
pub async fn start_openstack(
    state: &Arc<AppState>,
    api_addr: SocketAddr,
) -> Result<Option<OpenStackTasks>, ServerError> {
    let settings = &state.config.openstack;
    let Some(listen) = settings.listen else {
        return Ok(None);
    };
    let bind_error = |source| ServerError::Bind {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let public_url = settings.public_url.clone().unwrap_or_else(|| {
        // An unspecified bind address is reached at the API's address, else loopback.
        let ip = if !addr.ip().is_unspecified() {
            addr.ip()
        } else if !api_addr.ip().is_unspecified() {
            api_addr.ip()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        };
        format!("http://{}", SocketAddr::new(ip, addr.port()))
    });
    let mut config = weft_openstack::OpenStackConfig::new(public_url.clone());
    config.static_tokens.clone_from(&settings.static_tokens);
    config.token_ttl_ms = u64::try_from(settings.token_ttl.as_millis()).unwrap_or(u64::MAX);
    let controller = ServerController {
        state: Arc::clone(state),
    };
    let adapter = Arc::new(weft_openstack::OpenStack::new(
        state.store.clone(),
        controller,
        config,
    ));
    let app = weft_openstack::router(adapter)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.body_limit,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    let mut stopped = state.shutdown.clone();
    let server = tokio::spawn(async move {
        let graceful = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!(error = %err, "openstack API server failed");
        }
    });
    tracing::info!(%addr, %public_url, "openstack API listening");
    Ok(Some(OpenStackTasks { addr, server }))
}

/// `POST /v1/openstack/users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    pub name: String,
    pub password: String,
    /// The weft tenant (Keystone project) the user's tokens act for.
    pub project: String,
}

/// `POST /v1/openstack/users`: the admin creates (or replaces) a Keystone user.
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    role: Role,
    ApiJson(request): ApiJson<UserRequest>,
) -> ApiResult<Response> {
    role.require_admin()?;
    let user = weft_openstack::create_user(
        &state.store,
        &request.name,
        &request.password,
        &request.project,
    )
    .await
    .map_err(|err| match err {
        OpenStackError::Invalid { message, .. } => ApiFailure::bad_request(message, None),
        other => ApiFailure::Internal(other.to_string()),
    })?;
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}
