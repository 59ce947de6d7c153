//! Keystone: version discovery, v3 password (and token) authentication with a service
//! catalog, token validation and revocation, and the v2.0 token API.
//!
//! A user is a record under `/weft/openstack/users/<name>` (salted SHA-256 of the
//! password, and the one project, a weft tenant, it may scope to). A token is a weft
//! tenant token with an expiry, minted by the controller; what Keystone must say about it
//! on validation (user, issue time) is kept under `/weft/openstack/tokens/<sha256>`.
//!
//! weft's admin token is Keystone's admin: authenticating with it (method `token`, as
//! `auth_type: token` in clouds.yaml does) answers the same token with the catalog and
//! the `admin` role, so the clients act as the admin. Projects are weft's tenants
//! (`GET /v3/projects`, `GET /v3/projects/{id}`); the admin's `PATCH` sets or clears
//! `weft:privileged`, which is weft's allow-list of tenants that may run privileged
//! tasks (`openstack project set --property weft:privileged=true demo` with a client that
//! sends extra attributes; the tag `weft:privileged`, `openstack project set --tag
//! weft:privileged demo`, is the same switch for the SDK-based CLI, which drops them).

use crate::error::{KeystoneError, OpenStackError};
use crate::time::iso8601_micros;
use crate::{
    Caller, Controller, KEY_ROOT, OpenStack, UserInfo, derived_uuid, now_ms, project_id,
    random_hex, sha256_hex,
};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use weft_store::KvStore;

/// The only domain.
pub const DOMAIN_ID: &str = "default";
pub const DOMAIN_NAME: &str = "Default";

type Adapter<S, C> = State<Arc<OpenStack<S, C>>>;

pub fn routes<S: KvStore + Clone, C: Controller>() -> Router<Arc<OpenStack<S, C>>> {
    Router::new()
        .route("/", get(versions::<S, C>))
        .route("/v3", get(v3_version::<S, C>))
        .route("/v3/", get(v3_version::<S, C>))
        .route(
            "/v3/auth/tokens",
            post(issue_v3::<S, C>)
                .get(validate_v3::<S, C>)
                .head(check_v3::<S, C>)
                .delete(revoke_v3::<S, C>),
        )
        .route("/v3/auth/catalog", get(auth_catalog::<S, C>))
        .route("/v3/projects", get(list_projects::<S, C>))
        .route(
            "/v3/projects/{id}",
            get(show_project::<S, C>).patch(update_project::<S, C>),
        )
        .route("/v2.0", get(v2_version::<S, C>))
        .route("/v2.0/", get(v2_version::<S, C>))
        .route("/v2.0/tokens", post(issue_v2::<S, C>))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    name: String,
    project: String,
    salt: String,
    hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    user: String,
    project: String,
    issued_ms: u64,
    expires_ms: u64,
    methods: Vec<String>,
    /// weft's admin token (never stored).
    #[serde(default, skip_serializing)]
    admin: bool,
}

/// The admin token as Keystone shows it: user `admin`, scoped to the project asked for
/// (it acts for every project), the `admin` role.
fn admin_record<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    scope: Option<&Value>,
    methods: Vec<String>,
) -> TokenRecord {
    let project = scope
        .and_then(|s| s.pointer("/project/name"))
        .and_then(Value::as_str)
        .filter(|n| valid_tenant_name(n))
        .unwrap_or("admin");
    let issued_ms = now_ms();
    TokenRecord {
        user: "admin".into(),
        project: project.to_string(),
        issued_ms,
        expires_ms: issued_ms.saturating_add(a.config.token_ttl_ms),
        methods,
        admin: true,
    }
}

fn user_key(name: &str) -> String {
    format!("{KEY_ROOT}users/{name}")
}

fn token_key(token: &str) -> String {
    format!("{KEY_ROOT}tokens/{}", sha256_hex(&[token.as_bytes()]))
}

fn user_id(name: &str) -> String {
    sha256_hex(&[b"weft-openstack:user:", name.as_bytes()])[..32].to_string()
}

fn valid_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub async fn create_user<S: KvStore>(
    store: &S,
    name: &str,
    password: &str,
    project: &str,
) -> Result<UserInfo, OpenStackError> {
    let invalid = |message: String| OpenStackError::Invalid {
        message,
        details: Vec::new(),
    };
    if name.is_empty() || name.len() > 255 || name.contains(['/', '\0']) {
        return Err(invalid(format!(
            "user name {name:?} must be 1 to 255 characters without / or NUL"
        )));
    }
    if password.is_empty() {
        return Err(invalid("the password must not be empty".into()));
    }
    if !valid_tenant_name(project) {
        return Err(invalid(format!(
            "project {project:?} is not a weft tenant name ([A-Za-z0-9._-], at most 64)"
        )));
    }
    let salt = random_hex(16)?;
    let record = UserRecord {
        name: name.to_string(),
        project: project.to_string(),
        hash: sha256_hex(&[salt.as_bytes(), password.as_bytes()]),
        salt,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| OpenStackError::Internal(e.to_string()))?;
    store.put(user_key(name).as_bytes(), &bytes, None).await?;
    tracing::info!(user = %name, %project, "openstack user created");
    Ok(UserInfo {
        id: user_id(name),
        name: name.to_string(),
        domain: DOMAIN_NAME.into(),
        project: project.to_string(),
        project_id: project_id(project),
    })
}

async fn versions<S: KvStore + Clone, C: Controller>(State(a): Adapter<S, C>) -> Response {
    let base = identity_url(&a.config.public_url);
    let body = json!({"versions": {"values": [
        v3_doc(&base),
        v2_doc(&base),
    ]}});
    (StatusCode::MULTIPLE_CHOICES, Json(body)).into_response()
}

async fn v3_version<S: KvStore + Clone, C: Controller>(State(a): Adapter<S, C>) -> Json<Value> {
    Json(json!({"version": v3_doc(&identity_url(&a.config.public_url))}))
}

async fn v2_version<S: KvStore + Clone, C: Controller>(State(a): Adapter<S, C>) -> Json<Value> {
    Json(json!({"version": v2_doc(&identity_url(&a.config.public_url))}))
}

fn identity_url(public: &str) -> String {
    format!("{public}/identity")
}

fn v3_doc(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

fn v2_doc(base: &str) -> Value {
    json!({
        "id": "v2.0",
        "status": "deprecated",
        "updated": "2016-08-04T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v2.0/")}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.identity-v2.0+json"}],
    })
}

/// The services of the catalog: type, name, URL below the public one.
fn services(public: &str) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("identity", "keystone", identity_url(public)),
        ("network", "neutron", format!("{public}/network")),
        ("compute", "nova", format!("{public}/compute/v2.1")),
        ("image", "glance", format!("{public}/image")),
    ]
}

fn catalog_v3(public: &str, region: &str) -> Value {
    let entries: Vec<Value> = services(public)
        .into_iter()
        .map(|(kind, name, url)| {
            let endpoints: Vec<Value> = ["public", "internal", "admin"]
                .iter()
                .map(|interface| {
                    json!({
                        "id": derived_uuid(&format!("endpoint:{kind}:{interface}")).replace('-', ""),
                        "interface": interface,
                        "region": region,
                        "region_id": region,
                        "url": url,
                    })
                })
                .collect();
            json!({
                "id": derived_uuid(&format!("service:{kind}")).replace('-', ""),
                "type": kind,
                "name": name,
                "endpoints": endpoints,
            })
        })
        .collect();
    Value::Array(entries)
}

fn catalog_v2(public: &str, region: &str) -> Value {
    let entries: Vec<Value> = services(public)
        .into_iter()
        .map(|(kind, name, url)| {
            // v2.0 clients (gophercloud) expect a versioned identity URL.
            let url = if kind == "identity" {
                format!("{url}/v2.0")
            } else {
                url
            };
            json!({
                "type": kind,
                "name": name,
                "endpoints": [{
                    "id": derived_uuid(&format!("endpoint:{kind}")).replace('-', ""),
                    "region": region,
                    "publicURL": url,
                    "internalURL": url,
                    "adminURL": url,
                }],
                "endpoints_links": [],
            })
        })
        .collect();
    Value::Array(entries)
}

/// Checks a user's password; the user's record when it matches.
async fn check_password<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    name: &str,
    password: &str,
) -> Result<UserRecord, KeystoneError> {
    let refused =
        || KeystoneError::Unauthorized("The request you have made requires authentication.".into());
    let got = a
        .store
        .get(user_key(name).as_bytes())
        .await
        .map_err(|e| KeystoneError::Internal(e.to_string()))?;
    let Some(kv) = got.kv else {
        return Err(refused());
    };
    let record: UserRecord =
        serde_json::from_slice(&kv.value).map_err(|e| KeystoneError::Internal(e.to_string()))?;
    if sha256_hex(&[record.salt.as_bytes(), password.as_bytes()]) != record.hash {
        tracing::debug!(user = %name, "wrong password");
        return Err(refused());
    }
    Ok(record)
}

/// The project a request scopes to (by name or id), which must be the user's.
fn scoped(record: &UserRecord, scope: Option<&Value>) -> Result<(), KeystoneError> {
    let Some(project) = scope.and_then(|s| s.get("project")) else {
        // Unscoped: the user's one project.
        return Ok(());
    };
    let by_name = project.get("name").and_then(Value::as_str);
    let by_id = project.get("id").and_then(Value::as_str);
    let matches = by_name == Some(record.project.as_str())
        || by_id == Some(project_id(&record.project).as_str())
        || by_id == Some(record.project.as_str());
    if matches {
        Ok(())
    } else {
        Err(KeystoneError::Unauthorized(format!(
            "User {} has no access to project {}",
            record.name,
            by_name.or(by_id).unwrap_or("?")
        )))
    }
}

async fn issue<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    user: &str,
    project: &str,
    methods: Vec<String>,
) -> Result<(String, TokenRecord), KeystoneError> {
    let issued_ms = now_ms();
    let expires_ms = issued_ms.saturating_add(a.config.token_ttl_ms);
    let token = a.controller.issue_token(project, expires_ms).await?;
    let record = TokenRecord {
        user: user.to_string(),
        project: project.to_string(),
        issued_ms,
        expires_ms,
        methods,
        admin: false,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| KeystoneError::Internal(e.to_string()))?;
    a.store
        .put(token_key(&token).as_bytes(), &bytes, None)
        .await
        .map_err(|e| KeystoneError::Internal(e.to_string()))?;
    tracing::info!(%user, %project, "keystone token issued");
    Ok((token, record))
}

fn token_body_v3(a_public: &str, region: &str, record: &TokenRecord) -> Value {
    let domain = json!({"id": DOMAIN_ID, "name": DOMAIN_NAME});
    json!({"token": {
        "methods": record.methods,
        "user": {
            "id": user_id(&record.user),
            "name": record.user,
            "domain": domain,
            "password_expires_at": null,
        },
        "project": {
            "id": project_id(&record.project),
            "name": record.project,
            "domain": domain,
        },
        "roles": roles(record.admin),
        "is_domain": false,
        "catalog": catalog_v3(a_public, region),
        "audit_ids": [sha256_hex(&[record.user.as_bytes(), &record.issued_ms.to_be_bytes()])[..22].to_string()],
        "issued_at": iso8601_micros(record.issued_ms),
        "expires_at": iso8601_micros(record.expires_ms),
    }})
}

fn roles(admin: bool) -> Value {
    let mut names = vec!["member", "reader"];
    if admin {
        names.insert(0, "admin");
    }
    Value::Array(
        names
            .into_iter()
            .map(|n| json!({"id": derived_uuid(&format!("role:{n}")).replace('-', ""), "name": n}))
            .collect(),
    )
}

async fn issue_v3<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    body: axum::body::Bytes,
) -> Result<Response, KeystoneError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| KeystoneError::BadRequest(format!("invalid JSON body: {e}")))?;
    let auth = request
        .get("auth")
        .ok_or_else(|| KeystoneError::BadRequest("'auth' is a required property".into()))?;
    let identity = auth
        .get("identity")
        .ok_or_else(|| KeystoneError::BadRequest("'identity' is a required property".into()))?;
    let methods: Vec<String> = identity
        .get("methods")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let scope = auth.get("scope");
    let (user, project) = if methods.iter().any(|m| m == "password") {
        let user = identity
            .pointer("/password/user")
            .ok_or_else(|| KeystoneError::BadRequest("'user' is a required property".into()))?;
        let password = user
            .get("password")
            .and_then(Value::as_str)
            .ok_or_else(|| KeystoneError::BadRequest("'password' is a required property".into()))?;
        let domain_ok = match user.get("domain") {
            None => true,
            Some(d) => {
                d.get("id").and_then(Value::as_str) == Some(DOMAIN_ID)
                    || d.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(DOMAIN_NAME))
            }
        };
        let name = match (
            user.get("name").and_then(Value::as_str),
            user.get("id").and_then(Value::as_str),
        ) {
            (Some(name), _) => name.to_string(),
            (None, Some(id)) => find_user_by_id(&a, id).await?,
            (None, None) => {
                return Err(KeystoneError::BadRequest(
                    "the user needs a name or an id".into(),
                ));
            }
        };
        if !domain_ok {
            return Err(KeystoneError::Unauthorized(
                "The request you have made requires authentication.".into(),
            ));
        }
        let record = check_password(&a, &name, password).await?;
        scoped(&record, scope)?;
        (record.name, record.project)
    } else if methods.iter().any(|m| m == "token") {
        // Rescoping an existing token: the same user and project.
        let token = identity
            .pointer("/token/id")
            .and_then(Value::as_str)
            .ok_or_else(|| KeystoneError::BadRequest("'id' is a required property".into()))?;
        if a.controller.caller(token) == Some(Caller::Admin) {
            // weft's admin token: the same token, as Keystone's admin.
            let record = admin_record(&a, scope, methods);
            let response = token_v3_response(&a, token, &record)?;
            tracing::info!("keystone: authenticated with weft's admin token");
            return Ok(response);
        }
        let record = live_token(&a, token).await?;
        let user = UserRecord {
            name: record.user.clone(),
            project: record.project.clone(),
            salt: String::new(),
            hash: String::new(),
        };
        scoped(&user, scope)?;
        (record.user, record.project)
    } else {
        return Err(KeystoneError::Unauthorized(format!(
            "Unsupported authentication methods {methods:?}: weft accepts password and token"
        )));
    };
    let (token, record) = issue(&a, &user, &project, methods).await?;
    token_v3_response(&a, &token, &record)
}

/// The v3 answer to an authentication: 201, the token's body, and the token itself in
/// `X-Subject-Token`.
fn token_v3_response<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    token: &str,
    record: &TokenRecord,
) -> Result<Response, KeystoneError> {
    let mut response = (
        StatusCode::CREATED,
        Json(token_body_v3(
            &a.config.public_url,
            &a.config.region,
            record,
        )),
    )
        .into_response();
    let value = HeaderValue::from_str(token).map_err(|e| KeystoneError::Internal(e.to_string()))?;
    response.headers_mut().insert("x-subject-token", value);
    Ok(response)
}

async fn find_user_by_id<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    id: &str,
) -> Result<String, KeystoneError> {
    let all = a
        .store
        .range(format!("{KEY_ROOT}users/").as_bytes(), None)
        .await
        .map_err(|e| KeystoneError::Internal(e.to_string()))?;
    all.kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<UserRecord>(&kv.value).ok())
        .find(|u| user_id(&u.name) == id)
        .map(|u| u.name)
        .ok_or_else(|| {
            KeystoneError::Unauthorized("The request you have made requires authentication.".into())
        })
}

/// The record of a token that is still valid (known to weft and not expired).
async fn live_token<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    token: &str,
) -> Result<TokenRecord, KeystoneError> {
    let not_found = || KeystoneError::NotFound("Could not find token.".into());
    match a.controller.caller(token) {
        None => return Err(not_found()),
        Some(Caller::Admin) => return Ok(admin_record(a, None, vec!["token".into()])),
        Some(Caller::Tenant(_)) => {}
    }
    let got = a
        .store
        .get(token_key(token).as_bytes())
        .await
        .map_err(|e| KeystoneError::Internal(e.to_string()))?;
    let kv = got.kv.ok_or_else(not_found)?;
    let record: TokenRecord =
        serde_json::from_slice(&kv.value).map_err(|e| KeystoneError::Internal(e.to_string()))?;
    if record.expires_ms <= now_ms() {
        return Err(not_found());
    }
    Ok(record)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The caller of an identity request (`X-Auth-Token`).
fn authenticated<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    headers: &HeaderMap,
) -> Result<Caller, KeystoneError> {
    crate::resource::token_caller(a, headers).ok_or_else(|| {
        KeystoneError::Unauthorized("The request you have made requires authentication.".into())
    })
}

/// The subject token, which the caller may look at: its own, or any for the admin.
async fn subject<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    headers: &HeaderMap,
) -> Result<(String, TokenRecord), KeystoneError> {
    let caller = authenticated(a, headers)?;
    let token = header(headers, "x-subject-token")
        .ok_or_else(|| KeystoneError::BadRequest("X-Subject-Token is required".into()))?
        .to_string();
    let record = live_token(a, &token).await?;
    if !caller.may(&record.project) {
        return Err(KeystoneError::Forbidden(
            "You are not authorized to perform the requested action.".into(),
        ));
    }
    Ok((token, record))
}

async fn validate_v3<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Result<Response, KeystoneError> {
    let (token, record) = subject(&a, &headers).await?;
    let mut response = Json(token_body_v3(
        &a.config.public_url,
        &a.config.region,
        &record,
    ))
    .into_response();
    let value =
        HeaderValue::from_str(&token).map_err(|e| KeystoneError::Internal(e.to_string()))?;
    response.headers_mut().insert("x-subject-token", value);
    Ok(response)
}

async fn check_v3<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Result<StatusCode, KeystoneError> {
    subject(&a, &headers).await?;
    Ok(StatusCode::OK)
}

async fn revoke_v3<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Result<StatusCode, KeystoneError> {
    let (token, record) = subject(&a, &headers).await?;
    if record.admin {
        return Err(KeystoneError::Forbidden(
            "weft's admin token is not revoked through Keystone".into(),
        ));
    }
    a.controller.revoke_token(&token).await?;
    a.store
        .delete(token_key(&token).as_bytes())
        .await
        .map_err(|e| KeystoneError::Internal(e.to_string()))?;
    tracing::info!(user = %record.user, "keystone token revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn auth_catalog<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Result<Json<Value>, KeystoneError> {
    authenticated(&a, &headers)?;
    Ok(Json(json!({
        "catalog": catalog_v3(&a.config.public_url, &a.config.region),
        "links": {"self": format!("{}/v3/auth/catalog", identity_url(&a.config.public_url))},
    })))
}

#[derive(Debug, Deserialize)]
struct V2Request {
    auth: V2Auth,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Auth {
    password_credentials: Option<V2Credentials>,
    tenant_name: Option<String>,
    tenant_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V2Credentials {
    username: String,
    password: String,
}

async fn issue_v2<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, KeystoneError> {
    let request: V2Request = serde_json::from_slice(&body)
        .map_err(|e| KeystoneError::BadRequest(format!("invalid JSON body: {e}")))?;
    let credentials = request.auth.password_credentials.ok_or_else(|| {
        KeystoneError::BadRequest("passwordCredentials is required (the only v2.0 method)".into())
    })?;
    let record = check_password(&a, &credentials.username, &credentials.password).await?;
    let scope = match (&request.auth.tenant_name, &request.auth.tenant_id) {
        (Some(name), _) => Some(json!({"project": {"name": name}})),
        (None, Some(id)) => Some(json!({"project": {"id": id}})),
        (None, None) => None,
    };
    scoped(&record, scope.as_ref())?;
    let (token, issued) = issue(&a, &record.name, &record.project, vec!["password".into()]).await?;
    let tenant = json!({
        "id": project_id(&issued.project),
        "name": issued.project,
        "enabled": true,
        "description": null,
    });
    Ok(Json(json!({"access": {
        "token": {
            "id": token,
            "issued_at": iso8601_micros(issued.issued_ms),
            "expires": iso8601_micros(issued.expires_ms),
            "tenant": tenant,
            "audit_ids": [],
        },
        "serviceCatalog": catalog_v2(&a.config.public_url, &a.config.region),
        "user": {
            "id": user_id(&issued.user),
            "name": issued.user,
            "username": issued.user,
            "roles": [{"name": "member"}],
            "roles_links": [],
        },
        "metadata": {"is_admin": 0, "roles": []},
    }})))
}

// ---- projects (weft's tenants) --------------------------------------------------------

/// The project attribute that is weft's allow-list of privileged tenants.
pub const PRIVILEGED_PROPERTY: &str = "weft:privileged";

/// Every project weft knows: its tenants and the projects of its users.
async fn known_projects<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
) -> Result<std::collections::BTreeSet<String>, KeystoneError> {
    let mut names: std::collections::BTreeSet<String> =
        a.controller.tenants().into_iter().collect();
    let users = a
        .store
        .range(format!("{KEY_ROOT}users/").as_bytes(), None)
        .await
        .map_err(|e| KeystoneError::Internal(e.to_string()))?;
    names.extend(
        users
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice::<UserRecord>(&kv.value).ok())
            .map(|u| u.project),
    );
    Ok(names)
}

fn project_json<S: KvStore + Clone, C: Controller>(a: &OpenStack<S, C>, name: &str) -> Value {
    let id = project_id(name);
    let privileged = a.controller.privileged(name);
    json!({
        "id": id,
        "name": name,
        "domain_id": DOMAIN_ID,
        "description": "",
        "enabled": true,
        "parent_id": DOMAIN_ID,
        "is_domain": false,
        "tags": if privileged { json!([PRIVILEGED_PROPERTY]) } else { json!([]) },
        "options": {},
        PRIVILEGED_PROPERTY: if privileged { "true" } else { "false" },
        "links": {"self": format!("{}/v3/projects/{id}", identity_url(&a.config.public_url))},
    })
}

/// `GET /v3/projects` (`?name=`, `?domain_id=`): the admin sees every project, a project
/// itself.
async fn list_projects<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Json<Value>, KeystoneError> {
    let who = authenticated(&a, &headers)?;
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| KeystoneError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let mut names: Vec<String> = known_projects(&a)
        .await?
        .into_iter()
        .filter(|n| who.may(n))
        .collect();
    for (key, value) in &pairs {
        match key.as_str() {
            "name" => names.retain(|n| n == value),
            "id" => names.retain(|n| project_id(n) == *value),
            "domain_id" if value != DOMAIN_ID => names.clear(),
            "enabled" if value.eq_ignore_ascii_case("false") => names.clear(),
            _ => {}
        }
    }
    let projects: Vec<Value> = names.iter().map(|n| project_json(&a, n)).collect();
    Ok(Json(json!({
        "projects": projects,
        "links": {
            "self": format!("{}/v3/projects", identity_url(&a.config.public_url)),
            "previous": null,
            "next": null,
        },
    })))
}

/// The project whose id is `id`, which the caller may see.
async fn project_named<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
    id: &str,
) -> Result<String, KeystoneError> {
    let name = known_projects(a)
        .await?
        .into_iter()
        .find(|n| project_id(n) == id)
        .ok_or_else(|| KeystoneError::NotFound(format!("Could not find project: {id:.64}.")))?;
    if !who.may(&name) {
        return Err(KeystoneError::Forbidden(
            "You are not authorized to perform the requested action: identity:get_project.".into(),
        ));
    }
    Ok(name)
}

/// `GET /v3/projects/{id}`.
async fn show_project<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, KeystoneError> {
    let who = authenticated(&a, &headers)?;
    let name = project_named(&a, &who, &id).await?;
    Ok(Json(json!({"project": project_json(&a, &name)})))
}

/// What a `PATCH` of a project may carry: `weft:privileged` (a boolean or its text), and
/// the other attributes only as they are.
pub(crate) fn privileged_change(
    name: &str,
    object: &serde_json::Map<String, Value>,
) -> Result<Option<bool>, KeystoneError> {
    let mut change = None;
    for (key, value) in object {
        let same = match key.as_str() {
            PRIVILEGED_PROPERTY => {
                let text = match value {
                    Value::Bool(b) => b.to_string(),
                    Value::String(s) => s.to_ascii_lowercase(),
                    _ => String::new(),
                };
                change = Some(match text.as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => {
                        return Err(KeystoneError::BadRequest(format!(
                            "{PRIVILEGED_PROPERTY} is true or false, not {:.40}",
                            value.to_string()
                        )));
                    }
                });
                continue;
            }
            "name" => value.as_str() == Some(name),
            "domain_id" | "parent_id" => value.as_str() == Some(DOMAIN_ID),
            "enabled" => *value == Value::Bool(true),
            "is_domain" => *value == Value::Bool(false),
            "description" => value.as_str().is_some_and(str::is_empty) || value.is_null(),
            // `openstack project set --tag weft:privileged` (the SDK's clients send no
            // other attributes): the tag is the same switch as the property.
            "tags" => {
                let Some(tags) = value.as_array() else {
                    return Err(KeystoneError::BadRequest("tags is a list".into()));
                };
                if let Some(other) = tags
                    .iter()
                    .find(|t| t.as_str() != Some(PRIVILEGED_PROPERTY))
                {
                    return Err(KeystoneError::BadRequest(format!(
                        "weft's projects keep no tags but {PRIVILEGED_PROPERTY} ({:.64} was given)",
                        other.to_string()
                    )));
                }
                change = Some(!tags.is_empty());
                continue;
            }
            "options" => value.as_object().is_some_and(serde_json::Map::is_empty),
            other if other.starts_with("weft:") => {
                return Err(KeystoneError::BadRequest(format!(
                    "Invalid project attribute {other:.64}: weft knows {PRIVILEGED_PROPERTY} only"
                )));
            }
            _ => false,
        };
        if !same {
            return Err(KeystoneError::BadRequest(format!(
                "weft's projects are its tenants: only {PRIVILEGED_PROPERTY} may be changed ({key:.64} was given)"
            )));
        }
    }
    Ok(change)
}

/// `PATCH /v3/projects/{id}` (admin): `weft:privileged` true puts the project's tenant on
/// weft's allow-list of privileged tenants, false takes it off.
async fn update_project<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, KeystoneError> {
    let who = authenticated(&a, &headers)?;
    if who != Caller::Admin {
        return Err(KeystoneError::Forbidden(
            "You are not authorized to perform the requested action: identity:update_project."
                .into(),
        ));
    }
    let name = project_named(&a, &who, &id).await?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| KeystoneError::BadRequest(format!("invalid JSON body: {e}")))?;
    let Some(Value::Object(object)) = request.get("project") else {
        return Err(KeystoneError::BadRequest(
            "'project' is a required property".into(),
        ));
    };
    if let Some(allowed) = privileged_change(&name, object)? {
        a.controller.set_privileged(&name, allowed).await?;
        tracing::info!(project = %name, allowed, "keystone: project's weft:privileged set");
    }
    Ok(Json(json!({"project": project_json(&a, &name)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_patch_sets_privilege_only() {
        let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(
            privileged_change("lab", &obj(json!({"weft:privileged": "true"}))).unwrap(),
            Some(true)
        );
        assert_eq!(
            privileged_change(
                "lab",
                &obj(json!({"weft:privileged": false, "enabled": true}))
            )
            .unwrap(),
            Some(false)
        );
        assert_eq!(
            privileged_change("lab", &obj(json!({"name": "lab"}))).unwrap(),
            None
        );
        assert_eq!(
            privileged_change("lab", &obj(json!({"tags": ["weft:privileged"]}))).unwrap(),
            Some(true)
        );
        assert_eq!(
            privileged_change("lab", &obj(json!({"tags": []}))).unwrap(),
            Some(false)
        );
        for bad in [
            json!({"weft:privileged": "maybe"}),
            json!({"weft:other": "true"}),
            json!({"name": "other"}),
            json!({"color": "blue"}),
            json!({"enabled": false}),
            json!({"tags": ["blue"]}),
        ] {
            assert!(
                privileged_change("lab", &obj(bad.clone())).is_err(),
                "{bad}"
            );
        }
    }
}
