//! A typed client of the REST API, used by the CLI and the agent.

use crate::apps::*;
use crate::paths;
use crate::types::*;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use weft_compiler::CompiledPolicy;
use weft_model::{Model, Tenant};

/// Header carrying the store revision a response was read at.
pub const INDEX_HEADER: &str = "x-weft-index";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{status}: {}{}", body.error, body.field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Api { status: StatusCode, body: ApiError },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    /// The server answered something this client cannot read.
    #[error("unexpected answer from {url}: {why}")]
    Decode { url: String, why: String },
}

impl ClientError {
    /// Unauthorized or forbidden: retrying with the same token will not help.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Api { status, .. } if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN)
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A response body with the revision it was read at.
#[derive(Debug, Clone)]
pub struct Indexed<T> {
    pub index: u64,
    pub value: T,
}

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// `base` is like `http://127.0.0.1:7070` (no trailing slash needed).
    pub fn new(base: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Indexed<T>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .query(query)
            .timeout(timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        let index = resp
            .headers()
            .get(INDEX_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        if !status.is_success() {
            let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| ApiError {
                error: String::from_utf8_lossy(&bytes).trim().to_string(),
                field: None,
                details: Vec::new(),
            });
            return Err(ClientError::Api { status, body });
        }
        let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        let value = serde_json::from_slice(body).map_err(|e| ClientError::Decode {
            url,
            why: e.to_string(),
        })?;
        Ok(Indexed { index, value })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let none: Option<&()> = None;
        Ok(self
            .call(Method::GET, path, &[], none, DEFAULT_TIMEOUT)
            .await?
            .value)
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        Ok(self
            .call(method, path, &[], Some(body), DEFAULT_TIMEOUT)
            .await?
            .value)
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        let none: Option<&()> = None;
        let _: Indexed<serde_json::Value> = self
            .call(Method::DELETE, path, &[], none, DEFAULT_TIMEOUT)
            .await?;
        Ok(())
    }

    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        self.get(paths::HEALTH).await
    }

    pub async fn apply(&self, model: &Model) -> Result<ApplyResponse, ClientError> {
        self.send(
            Method::POST,
            paths::APPLY,
            &ApplyRequest {
                model: model.clone(),
            },
        )
        .await
    }

    pub async fn tenants(&self) -> Result<Vec<TenantSummary>, ClientError> {
        self.get(paths::TENANTS).await
    }

    pub async fn tenant(&self, name: &str) -> Result<Tenant, ClientError> {
        self.get(&paths::tenant(name)).await
    }

    pub async fn put_tenant(
        &self,
        name: &str,
        tenant: &Tenant,
    ) -> Result<ApplyResponse, ClientError> {
        self.send(Method::PUT, &paths::tenant(name), tenant).await
    }

    pub async fn delete_tenant(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&paths::tenant(name)).await
    }

    pub async fn epgs(&self) -> Result<Vec<EpgInfo>, ClientError> {
        self.get(paths::EPGS).await
    }

    pub async fn contracts(&self) -> Result<Vec<ContractInfo>, ClientError> {
        self.get(paths::CONTRACTS).await
    }

    pub async fn policy(&self) -> Result<CompiledPolicy, ClientError> {
        self.get(paths::POLICY).await
    }

    pub async fn create_token(&self, tenant: &str) -> Result<TokenResponse, ClientError> {
        self.send(
            Method::POST,
            paths::TOKENS,
            &TokenRequest {
                tenant: tenant.to_string(),
            },
        )
        .await
    }

    pub async fn nodes(&self) -> Result<Vec<Node>, ClientError> {
        self.get(paths::NODES).await
    }

    pub async fn register_node(
        &self,
        registration: &NodeRegistration,
    ) -> Result<Node, ClientError> {
        self.send(Method::POST, paths::NODES, registration).await
    }

    pub async fn heartbeat(&self, node: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .send(Method::PUT, &paths::node_heartbeat(node), &())
            .await?;
        Ok(())
    }

    /// A blocking query: returns at once if the view is newer than `index`, else waits
    /// up to `wait` for a change.
    pub async fn node_desired(
        &self,
        node: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Indexed<NodeDesired>, ClientError> {
        let none: Option<&()> = None;
        let query = [
            ("index", index.to_string()),
            ("wait", format!("{}s", wait.as_secs())),
        ];
        let timeout = wait + DEFAULT_TIMEOUT;
        self.call(
            Method::GET,
            &paths::node_desired(node),
            &query,
            none,
            timeout,
        )
        .await
    }

    /// A blocking query: returns at once if the view's digest differs from `digest`,
    /// else waits up to `wait` for a change.
    pub async fn node_discovery(
        &self,
        node: &str,
        digest: u64,
        wait: Duration,
    ) -> Result<crate::DiscoveryView, ClientError> {
        let none: Option<&()> = None;
        let query = [
            ("index", digest.to_string()),
            ("wait", format!("{}ms", wait.as_millis())),
        ];
        let timeout = wait + DEFAULT_TIMEOUT;
        Ok(self
            .call(
                Method::GET,
                &paths::node_discovery(node),
                &query,
                none,
                timeout,
            )
            .await?
            .value)
    }

    /// What DNS at `from`'s gateway answers for `name`, and why.
    pub async fn dns_query(
        &self,
        name: &str,
        qtype: &str,
        from: &str,
    ) -> Result<crate::DnsQueryResponse, ClientError> {
        let none: Option<&()> = None;
        let query = [
            ("name", name.to_string()),
            ("type", qtype.to_string()),
            ("from", from.to_string()),
        ];
        Ok(self
            .call(Method::GET, paths::DNS, &query, none, DEFAULT_TIMEOUT)
            .await?
            .value)
    }

    pub async fn report(&self, node: &str, report: &NodeReport) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .send(Method::PUT, &paths::node_report(node), report)
            .await?;
        Ok(())
    }

    /// Results of the checks this node's agent runs.
    pub async fn report_probes(
        &self,
        node: &str,
        reports: &[crate::ProbeReport],
    ) -> Result<crate::ProbeReportResponse, ClientError> {
        self.send(Method::PUT, &paths::node_probes(node), &reports)
            .await
    }

    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, ClientError> {
        self.get(paths::ENDPOINTS).await
    }

    pub async fn endpoint(&self, name: &str) -> Result<Endpoint, ClientError> {
        self.get(&paths::endpoint(name)).await
    }

    pub async fn create_endpoint(
        &self,
        request: &EndpointRequest,
    ) -> Result<Endpoint, ClientError> {
        self.send(Method::POST, paths::ENDPOINTS, request).await
    }

    /// Changes a live endpoint's port guard: address pairs, port security, groups.
    pub async fn update_endpoint(
        &self,
        name: &str,
        change: &EndpointUpdate,
    ) -> Result<Endpoint, ClientError> {
        self.send(Method::PATCH, &paths::endpoint(name), change)
            .await
    }

    pub async fn delete_endpoint(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&paths::endpoint(name)).await
    }

    pub async fn explain(
        &self,
        from: &str,
        to: &str,
        proto: &str,
        port: u16,
    ) -> Result<LiveExplanation, ClientError> {
        let none: Option<&()> = None;
        let query = [
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("proto", proto.to_string()),
            ("port", port.to_string()),
        ];
        Ok(self
            .call(Method::GET, paths::EXPLAIN, &query, none, DEFAULT_TIMEOUT)
            .await?
            .value)
    }

    pub async fn apply_apps(&self, apps: serde_json::Value) -> Result<AppsResponse, ClientError> {
        self.send(Method::POST, paths::APPS, &AppsRequest { apps })
            .await
    }

    pub async fn apps(&self) -> Result<Vec<App>, ClientError> {
        self.get(paths::APPS).await
    }

    pub async fn app(&self, id: &str) -> Result<App, ClientError> {
        self.get(&paths::app(id)).await
    }

    pub async fn scale_app(&self, id: &str, instances: u32) -> Result<App, ClientError> {
        self.send(
            Method::PUT,
            &paths::app_scale(id),
            &ScaleRequest { instances },
        )
        .await
    }

    pub async fn restart_app(&self, id: &str) -> Result<App, ClientError> {
        self.send(Method::POST, &paths::app_restart(id), &()).await
    }

    pub async fn delete_app(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&paths::app(id)).await
    }

    pub async fn cancel_deployment(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&paths::app_deployment(id)).await
    }

    /// Every task, or only `app`'s.
    pub async fn tasks(&self, app: Option<&str>) -> Result<Vec<Task>, ClientError> {
        let none: Option<&()> = None;
        let query: Vec<(&str, String)> = app.map(|a| ("app", a.to_string())).into_iter().collect();
        Ok(self
            .call(Method::GET, paths::TASKS, &query, none, DEFAULT_TIMEOUT)
            .await?
            .value)
    }

    pub async fn task(&self, id: &str) -> Result<Task, ClientError> {
        self.get(&paths::task(id)).await
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
