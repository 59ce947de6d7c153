//! The skeleton every Neutron resource shares, so each resource module holds only its
//! mapping: who calls (the token's caller), the request body's one object and its typed
//! attributes, the Neutron-only metadata kept by id under `/weft/openstack/ids/<kind>/`
//! (name, description, timestamps, revision: [`Standard`]), admission of a whole tenant
//! with the metadata undone on refusal, and the list and show handlers over a
//! [`Collection`] (filters, `fields`, paging, `next` links: [`crate::query`]).

use crate::error::NeutronError;
use crate::query::ListQuery;
use crate::time::iso8601;
use crate::{Caller, Controller, KEY_ROOT, OpenStack, OpenStackError, now_ms, project_id};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use weft_model::{AppProfile, Tenant, Vrf};
use weft_store::KvStore;

pub(crate) type Adapter<S, C> = State<Arc<OpenStack<S, C>>>;
pub(crate) type Answer = Result<Response, NeutronError>;

/// The application profile and VRF of what is made through Neutron in a project's
/// tenant.
pub const APP_PROFILE: &str = "openstack";
pub const VRF: &str = "openstack";

// ---- who calls ---------------------------------------------------------------------------

/// The caller a token stands for: a static token, or a weft token.
pub(crate) fn caller_of<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    token: &str,
) -> Option<Caller> {
    a.config
        .static_tokens
        .iter()
        .find(|(t, _)| t == token)
        .map(|(_, tenant)| Caller::Tenant(tenant.clone()))
        .or_else(|| a.controller.caller(token))
}

/// The caller the request's `X-Auth-Token` names, if any (each API answers its own 401).
pub(crate) fn token_caller<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    headers: &HeaderMap,
) -> Option<Caller> {
    headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| caller_of(a, t))
}

pub(crate) fn caller<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    headers: &HeaderMap,
) -> Result<Caller, NeutronError> {
    token_caller(a, headers).ok_or_else(NeutronError::unauthorized)
}

pub(crate) fn network_url(public: &str) -> String {
    format!("{public}/network")
}

/// The tenants of the current model the caller may see.
pub(crate) fn visible_tenants<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
) -> BTreeMap<String, Tenant> {
    a.controller
        .tenants()
        .into_iter()
        .filter(|name| who.may(name))
        .filter_map(|name| a.controller.tenant(&name).map(|t| (name, t)))
        .collect()
}

/// A project's tenant as a Neutron write starts from: the current one, or a new one
/// with VRF and application profile `openstack` (a project's first write creates it).
pub(crate) fn project_tenant<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    name: &str,
) -> Tenant {
    a.controller.tenant(name).unwrap_or_else(|| {
        let mut tenant = Tenant::default();
        tenant.vrfs.insert(VRF.to_string(), Vrf::default());
        tenant
            .app_profiles
            .insert(APP_PROFILE.to_string(), AppProfile::default());
        tenant
    })
}

/// The project a create acts in: the caller's, or for the admin the body's.
pub(crate) fn target_project<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
    object: &Map<String, Value>,
) -> Result<String, NeutronError> {
    let asked = text(object, "project_id")?.or(text(object, "tenant_id")?);
    let resolve = |p: &str| {
        a.controller
            .tenants()
            .into_iter()
            .find(|t| project_id(t) == p || t == p)
    };
    match (who, asked) {
        (Caller::Tenant(own), None) => Ok(own.clone()),
        (Caller::Tenant(own), Some(p)) if p == project_id(own) || p == *own => Ok(own.clone()),
        (Caller::Tenant(_), Some(_)) => Err(NeutronError::new(
            StatusCode::FORBIDDEN,
            "HTTPForbidden",
            "a project may only create resources in itself",
        )),
        (Caller::Admin, Some(p)) => resolve(&p)
            .ok_or_else(|| NeutronError::bad_request(format!("project {p} is not a weft tenant"))),
        (Caller::Admin, None) => Err(NeutronError::bad_request(
            "the admin token must name project_id (a weft tenant)",
        )),
    }
}

// ---- the request body --------------------------------------------------------------------

/// The body's one resource object (`{"network": {...}}`), with unknown attributes refused
/// as Neutron refuses them.
pub(crate) fn resource(
    body: &[u8],
    key: &str,
    known: &[&str],
) -> Result<Map<String, Value>, NeutronError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| NeutronError::bad_request(format!("Malformed request body: {e}")))?;
    let Some(Value::Object(object)) = value.get(key).cloned() else {
        return Err(NeutronError::bad_request(format!(
            "Resource body required: a JSON object under \"{key}\""
        )));
    };
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        )));
    }
    Ok(object)
}

/// A required attribute, as Neutron names a missing one.
pub(crate) fn required(object: &Map<String, Value>, key: &str) -> Result<String, NeutronError> {
    text(object, key)?.ok_or_else(|| {
        NeutronError::bad_request(format!(
            "Failed to parse request. Required attribute '{key}' not specified"
        ))
    })
}

/// A string attribute of at most 255 characters.
pub(crate) fn text(object: &Map<String, Value>, key: &str) -> Result<Option<String>, NeutronError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 255 => Ok(Some(s.clone())),
        Some(_) => Err(NeutronError::invalid_input(format!(
            "Invalid input for {key}. Reason: not a string of at most 255 characters."
        ))),
    }
}

/// A list of strings, at most `max` of them.
pub(crate) fn strings(
    object: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<Vec<String>>, NeutronError> {
    let bad =
        |why: &str| NeutronError::invalid_input(format!("Invalid input for {key}. Reason: {why}."));
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() > max => {
            Err(bad(&format!("more than {max} items")))
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .filter(|s| s.len() <= 255)
                    .map(String::from)
                    .ok_or_else(|| bad("not a list of strings of at most 255 characters"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad("not a list")),
    }
}

/// A boolean attribute.
pub(crate) fn boolean(
    object: &Map<String, Value>,
    key: &str,
) -> Result<Option<bool>, NeutronError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(NeutronError::invalid_input(format!(
            "Invalid input for {key}. Reason: not a boolean."
        ))),
    }
}

/// A boolean attribute weft supports with one value only.
pub(crate) fn only(
    object: &Map<String, Value>,
    key: &str,
    supported: bool,
) -> Result<(), NeutronError> {
    match boolean(object, key)? {
        Some(b) if b != supported => Err(NeutronError::bad_request(format!(
            "{key}={b} is not supported by weft yet"
        ))),
        _ => Ok(()),
    }
}

/// An attribute weft supports only absent, null, false or empty.
pub(crate) fn empty_or_null(object: &Map<String, Value>, key: &str) -> Result<(), NeutronError> {
    empty_or(object, key, &format!("{key} is not supported by weft yet"))
}

/// The same, refused with `why`.
pub(crate) fn empty_or(
    object: &Map<String, Value>,
    key: &str,
    why: &str,
) -> Result<(), NeutronError> {
    match object.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(Value::Array(a)) if a.is_empty() => Ok(()),
        Some(Value::Object(o)) if o.is_empty() => Ok(()),
        Some(_) => Err(NeutronError::bad_request(why)),
    }
}

// ---- Neutron-only metadata, by id ----------------------------------------------------------

/// What every Neutron resource has and weft's model does not: its name and description,
/// when it was made and changed, and how often.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Standard {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) created_ms: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) updated_ms: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) revision: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Standard {
    /// A new resource's: name and description from the body, made now.
    pub(crate) fn created(object: &Map<String, Value>) -> Result<Self, NeutronError> {
        Ok(Self {
            name: text(object, "name")?.unwrap_or_default(),
            description: text(object, "description")?.unwrap_or_default(),
            created_ms: now_ms(),
            ..Self::default()
        })
    }

    /// What a resource without metadata (made with weft) starts from.
    pub(crate) fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Self::default()
        }
    }

    /// Takes the body's name and description, and counts the change.
    pub(crate) fn update(&mut self, object: &Map<String, Value>) -> Result<(), NeutronError> {
        if let Some(name) = text(object, "name")? {
            self.name = name;
        }
        if let Some(description) = text(object, "description")? {
            self.description = description;
        }
        self.updated_ms = now_ms();
        self.revision += 1;
        Ok(())
    }

    /// The standard attributes as Neutron shows them, added to `item`: `name` is the
    /// weft object's when there is no metadata.
    pub(crate) fn show(meta: Option<&Self>, name: &str, tenant: &str, mut item: Value) -> Value {
        let project = project_id(tenant);
        let created = meta.map_or(0, |m| m.created_ms);
        let updated = meta.map_or(0, |m| m.updated_ms.max(m.created_ms));
        if let Value::Object(map) = &mut item {
            for (key, value) in [
                ("name", json!(meta.map_or(name, |m| m.name.as_str()))),
                (
                    "description",
                    json!(meta.map_or("", |m| m.description.as_str())),
                ),
                ("tenant_id", json!(project)),
                ("project_id", json!(project)),
                ("created_at", json!(iso8601(created))),
                ("updated_at", json!(iso8601(updated))),
                ("revision_number", json!(meta.map_or(0, |m| m.revision))),
            ] {
                map.entry(key).or_insert(value);
            }
            map.entry("tags").or_insert(json!([]));
        }
        item
    }
}

fn meta_key(kind: &str, id: &str) -> String {
    format!("{KEY_ROOT}ids/{kind}/{id}")
}

fn store_error(e: weft_store::StoreError) -> NeutronError {
    NeutronError::from(OpenStackError::from(e))
}

/// Every metadata record of `kind`, by id.
pub(crate) async fn metas<S: KvStore + Clone, T: for<'de> Deserialize<'de>>(
    store: &S,
    kind: &str,
) -> Result<BTreeMap<String, T>, NeutronError> {
    let prefix = format!("{KEY_ROOT}ids/{kind}/");
    let read = store
        .range(prefix.as_bytes(), None)
        .await
        .map_err(store_error)?;
    Ok(read
        .kvs
        .iter()
        .filter_map(|kv| {
            let key = String::from_utf8_lossy(&kv.key);
            let id = key.strip_prefix(&prefix)?.to_string();
            serde_json::from_slice(&kv.value).ok().map(|m| (id, m))
        })
        .collect())
}

pub(crate) async fn put_meta<S: KvStore + Clone, C: Controller, T: Serialize>(
    a: &OpenStack<S, C>,
    kind: &str,
    id: &str,
    meta: &T,
) -> Result<(), NeutronError> {
    let bytes = serde_json::to_vec(meta)
        .map_err(|e| NeutronError::from(OpenStackError::Internal(e.to_string())))?;
    a.store
        .put(meta_key(kind, id).as_bytes(), &bytes, None)
        .await
        .map_err(store_error)?;
    Ok(())
}

pub(crate) async fn delete_meta<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    kind: &str,
    id: &str,
) -> Result<(), NeutronError> {
    a.store
        .delete(meta_key(kind, id).as_bytes())
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Deletes metadata after its object is gone: a failure is logged, not answered (the
/// change it describes is committed).
pub(crate) async fn forget<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    kind: &str,
    id: &str,
) {
    if let Err(e) = delete_meta(a, kind, id).await {
        tracing::warn!(error = %e, kind, id, "could not remove the metadata of a deleted object");
    }
}

/// Commits a tenant through admission; on refusal, `undo` the metadata written first.
pub(crate) async fn commit_or_undo<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    tenant: &str,
    model: Option<Tenant>,
    undo: &[(&str, &str)],
) -> Result<(), NeutronError> {
    if let Err(err) = a.controller.commit(tenant, model).await {
        for (kind, id) in undo {
            if let Err(e) = delete_meta(a, kind, id).await {
                tracing::warn!(error = %e, "could not remove the metadata of a refused create");
            }
        }
        return Err(err.into());
    }
    Ok(())
}

// ---- collections: list and show ------------------------------------------------------------

/// A Neutron collection as one request reads it.
pub(crate) trait Collection<S: KvStore + Clone, C: Controller>: Sized + Send {
    /// The key of one object (`network`).
    const ONE: &'static str;
    /// The collection's path and the key of a list (`networks`, `security-groups`).
    const PATH: &'static str;
    /// The key of a list in a body, when it is not the path (`security_groups`).
    const MANY: &'static str = Self::PATH;

    /// Done before a read that a client asks for (Neutron makes a project's default
    /// security group then); never while this adapter's write lock is held.
    fn prepare(
        _a: &OpenStack<S, C>,
        _who: &Caller,
    ) -> impl Future<Output = Result<(), NeutronError>> + Send {
        async { Ok(()) }
    }

    /// What the caller may see of the collection, read once.
    fn read(
        a: &OpenStack<S, C>,
        who: &Caller,
    ) -> impl Future<Output = Result<Self, NeutronError>> + Send;

    /// Every object, as Neutron shows it.
    fn items(&self) -> Vec<Value>;

    /// One object, or the collection's not-found error.
    fn item(&self, id: &str) -> Result<Value, NeutronError>;
}

/// `GET /v2.0/<collection>`: filtered, projected and paged.
pub(crate) async fn list<K: Collection<S, C>, S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    let who = caller(&a, &headers)?;
    let query = ListQuery::parse(pairs_of(&uri)?)?;
    K::prepare(&a, &who).await?;
    let read = K::read(&a, &who).await?;
    let url = format!("{}/v2.0/{}", network_url(&a.config.public_url), K::PATH);
    let (items, links) = query.apply(read.items(), &url);
    let mut body = Map::new();
    body.insert(K::MANY.to_string(), Value::Array(items));
    if !links.is_empty() {
        body.insert(format!("{}_links", K::MANY), Value::Array(links));
    }
    Ok(Json(Value::Object(body)).into_response())
}

/// `GET /v2.0/<collection>/{id}`.
pub(crate) async fn show<K: Collection<S, C>, S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    K::prepare(&a, &who).await?;
    answer::<K, S, C>(&a, &who, &id, StatusCode::OK).await
}

/// One object as it is now (after a write: 200 or 201).
pub(crate) async fn answer<K: Collection<S, C>, S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
    id: &str,
    status: StatusCode,
) -> Answer {
    let read = K::read(a, who).await?;
    let mut body = Map::new();
    body.insert(K::ONE.to_string(), read.item(id)?);
    Ok((status, Json(Value::Object(body))).into_response())
}

/// A collection whose objects' Neutron-only attributes (their metadata) change with
/// `PUT`; the model does not.
pub(crate) trait Annotated<S: KvStore + Clone, C: Controller>: Collection<S, C> {
    /// The metadata's kind (`/weft/openstack/ids/<kind>/<id>`).
    const KIND: &'static str;
    /// The attributes a `PUT` may name.
    const UPDATABLE: &'static [&'static str];
    type Meta: Serialize + Send + Sync;

    /// Checks the body against object `id` and gives its metadata with the body applied.
    fn updated(&self, id: &str, object: &Map<String, Value>) -> Result<Self::Meta, NeutronError>;
}

/// `PUT /v2.0/<collection>/{id}` of a collection whose changes are metadata only.
pub(crate) async fn update<K: Annotated<S, C>, S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(&body, K::ONE, K::UPDATABLE)?;
    let _serialised = a.writes.lock().await;
    let meta = K::read(&a, &who).await?.updated(&id, &object)?;
    put_meta(&a, K::KIND, &id, &meta).await?;
    answer::<K, S, C>(&a, &who, &id, StatusCode::OK).await
}

/// What deleting an object leaves: its tenant without it, and the metadata of what goes
/// with it (a network's subnets, a group's rules).
pub(crate) struct Removal {
    pub(crate) tenant_name: String,
    pub(crate) tenant: Tenant,
    pub(crate) also: Vec<(&'static str, String)>,
}

/// A collection whose objects are deleted from their tenant's model.
pub(crate) trait Removable<S: KvStore + Clone, C: Controller>: Annotated<S, C> {
    /// Object `id`'s tenant without it, or why it may not go (in use: 409).
    fn removal(&self, a: &OpenStack<S, C>, id: &str) -> Result<Removal, NeutronError>;
}

/// `DELETE /v2.0/<collection>/{id}`: one admission of the tenant without the object,
/// then its metadata goes.
pub(crate) async fn delete<K: Removable<S, C>, S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let _serialised = a.writes.lock().await;
    let removal = K::read(&a, &who).await?.removal(&a, &id)?;
    let tenant_name = removal.tenant_name;
    commit_or_undo(&a, &tenant_name, Some(removal.tenant), &[]).await?;
    forget(&a, K::KIND, &id).await;
    for (kind, other) in &removal.also {
        forget(&a, kind, other).await;
    }
    tracing::info!(kind = K::KIND, %id, tenant = %tenant_name, "neutron object deleted");
    deleted()
}

/// The end of a create: the new object's metadata, then its tenant through admission
/// (the metadata removed again on refusal), then the object as it is now (201).
pub(crate) async fn finish_create<K: Annotated<S, C>, S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
    tenant_name: &str,
    tenant: Tenant,
    id: &str,
    meta: &K::Meta,
) -> Answer {
    put_meta(a, K::KIND, id, meta).await?;
    commit_or_undo(a, tenant_name, Some(tenant), &[(K::KIND, id)]).await?;
    tracing::info!(kind = K::KIND, %id, tenant = %tenant_name, "neutron object created");
    answer::<K, S, C>(a, who, id, StatusCode::CREATED).await
}

/// A delete's answer.
pub(crate) fn deleted() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The query string as pairs, repeated keys kept.
pub(crate) fn pairs_of(uri: &Uri) -> Result<Vec<(String, String)>, NeutronError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| NeutronError::bad_request(format!("invalid query: {}", e.body_text())))
}
