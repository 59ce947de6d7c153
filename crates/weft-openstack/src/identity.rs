//! Keystone: version discovery, v3 password (and token) authentication with a service
//! catalog, token validation and revocation, and the v2.0 token API.
//!
//! A user is a record under `/weft/openstack/users/<name>` (salted SHA-256 of the
//! password, and the one project, a weft tenant, it may scope to). A token is a weft
//! tenant token with an expiry, minted by the controller; what Keystone must say about it
//! on validation (user, issue time) is kept under `/weft/openstack/tokens/<sha256>`.

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
        "roles": [
            {"id": derived_uuid("role:member").replace('-', ""), "name": "member"},
            {"id": derived_uuid("role:reader").replace('-', ""), "name": "reader"},
        ],
        "is_domain": false,
        "catalog": catalog_v3(a_public, region),
        "audit_ids": [sha256_hex(&[record.user.as_bytes(), &record.issued_ms.to_be_bytes()])[..22].to_string()],
        "issued_at": iso8601_micros(record.issued_ms),
        "expires_at": iso8601_micros(record.expires_ms),
    }})
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
    let mut response = (
        StatusCode::CREATED,
        Json(token_body_v3(
            &a.config.public_url,
            &a.config.region,
            &record,
        )),
    )
        .into_response();
    let value =
        HeaderValue::from_str(&token).map_err(|e| KeystoneError::Internal(e.to_string()))?;
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
    if a.controller.caller(token).is_none() {
        return Err(not_found());
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
