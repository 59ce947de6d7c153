//! Nova's flavors: each a weft CPU and memory limit for the server's one task (`cpus` =
//! vCPUs, `mem` = RAM in MiB; the root disk is not reserved: a container writes to the
//! node's disk). The scheduler places by these limits, and the runtime enforces them
//! (cgroup CPU quota and memory limit).
//!
//! Four are built in (m1.tiny..m1.large, ids `1`..`4`); an admin creates more with
//! `POST /flavors` (an explicit id, such as a UUID, or a random UUID) and deletes them.
//! A custom flavor, and the extra specs of any flavor, is a record under
//! `/weft/openstack/ids/flavor/<id>` (a built-in flavor's record only adds extra specs;
//! its limits stay). Extra specs carry weft's options: `weft:privileged=true` makes the
//! server's task privileged (admitted only in a project an admin allowed). Other
//! namespaces (`hw:`, `quota:`, ...) are kept and shown, and do nothing; an unknown
//! `weft:` key is refused.

use crate::compute::{caller, compute_url, links};
use crate::error::NovaError;
use crate::resource::{delete_meta, metas, put_meta};
use crate::{Caller, Controller, OpenStack, now_ms};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_store::KvStore;

/// Custom flavors weft keeps.
pub const MAX_FLAVORS: usize = 1000;
/// The largest flavor: vCPUs, RAM (MiB), disk and ephemeral disk (GiB), swap (MiB).
pub const MAX_VCPUS: u64 = 1024;
pub const MAX_RAM_MIB: u64 = 4 * 1024 * 1024;
pub const MAX_DISK_GIB: u64 = 1024 * 1024;
/// Extra specs of one flavor (Nova's default quota of metadata items), and the lengths
/// of their keys and values.
pub const MAX_EXTRA_SPECS: usize = 128;
pub const MAX_SPEC_LENGTH: usize = 255;
/// The extra spec (and image property) that makes a server's task privileged.
pub const PRIVILEGED: &str = "weft:privileged";
/// The `weft:` extra specs weft knows.
const WEFT_SPECS: &[&str] = &[PRIVILEGED];

/// One flavor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    /// MiB.
    pub ram: u64,
    /// GiB, as shown (not reserved).
    pub disk: u64,
    /// MiB, as shown.
    #[serde(default)]
    pub swap: u64,
    /// GiB, as shown.
    #[serde(default)]
    pub ephemeral: u64,
    #[serde(default = "one")]
    pub rxtx_factor: f64,
    #[serde(default)]
    pub extra_specs: BTreeMap<String, String>,
    #[serde(default)]
    pub created_ms: u64,
}

fn one() -> f64 {
    1.0
}

impl Flavor {
    fn builtin(id: &str, name: &str, vcpus: u32, ram: u64, disk: u64) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            vcpus,
            ram,
            disk,
            swap: 0,
            ephemeral: 0,
            rxtx_factor: 1.0,
            extra_specs: BTreeMap::new(),
            created_ms: 0,
        }
    }

    /// weft's CPU limit of the server's task.
    pub fn cpus(&self) -> f64 {
        f64::from(self.vcpus)
    }

    /// Whether its extra specs make the server's task privileged.
    pub fn privileged(&self) -> bool {
        self.extra_specs.get(PRIVILEGED).is_some_and(|v| is_true(v))
    }
}

/// `true` as extra specs and image properties spell it.
pub(crate) fn is_true(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on"
    )
}

fn is_boolean(value: &str) -> bool {
    is_true(value)
        || matches!(
            value.to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        )
}

/// Nova's classic defaults, m1.tiny to m1.large.
pub fn builtin_flavors() -> Vec<Flavor> {
    vec![
        Flavor::builtin("1", "m1.tiny", 1, 512, 1),
        Flavor::builtin("2", "m1.small", 1, 2048, 20),
        Flavor::builtin("3", "m1.medium", 2, 4096, 40),
        Flavor::builtin("4", "m1.large", 4, 8192, 80),
    ]
}

fn is_builtin(id: &str) -> bool {
    builtin_flavors().iter().any(|f| f.id == id)
}

/// Every flavor: the built-in ones (with their extra specs), then the custom ones by id.
pub(crate) async fn all<S: KvStore + Clone>(store: &S) -> Result<Vec<Flavor>, NovaError> {
    let mut stored: BTreeMap<String, Flavor> = metas(store, "flavor").await?;
    let mut flavors: Vec<Flavor> = builtin_flavors()
        .into_iter()
        .map(|mut f| {
            if let Some(record) = stored.remove(&f.id) {
                f.extra_specs = record.extra_specs;
            }
            f
        })
        .collect();
    flavors.extend(stored.into_values());
    Ok(flavors)
}

/// The flavor a reference names: its id, or a URL ending in it.
pub(crate) async fn find<S: KvStore + Clone>(
    store: &S,
    reference: &str,
) -> Result<Option<Flavor>, NovaError> {
    let id = reference.rsplit('/').next().unwrap_or(reference);
    Ok(all(store).await?.into_iter().find(|f| f.id == id))
}

fn brief(base: &str, f: &Flavor) -> Value {
    json!({"id": f.id, "name": f.name, "links": links(base, "flavors", &f.id)})
}

fn detail(base: &str, f: &Flavor) -> Value {
    json!({
        "id": f.id,
        "name": f.name,
        "vcpus": f.vcpus,
        "ram": f.ram,
        "disk": f.disk,
        "swap": if f.swap == 0 { json!("") } else { json!(f.swap) },
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
        "OS-FLV-DISABLED:disabled": false,
        "os-flavor-access:is_public": true,
        "rxtx_factor": f.rxtx_factor,
        "links": links(base, "flavors", &f.id),
    })
}

type Adapter<S, C> = State<Arc<OpenStack<S, C>>>;
type Answer = Result<Response, NovaError>;

/// The flavor routes, below `/compute/v2.1`.
pub(crate) fn routes<S: KvStore + Clone, C: Controller>() -> Router<Arc<OpenStack<S, C>>> {
    Router::new()
        .route("/v2.1/flavors", get(list::<S, C>).post(create::<S, C>))
        .route("/v2.1/flavors/detail", get(list_detail::<S, C>))
        .route(
            "/v2.1/flavors/{id}",
            get(show::<S, C>).delete(remove::<S, C>),
        )
        .route(
            "/v2.1/flavors/{id}/os-extra_specs",
            get(extra_specs::<S, C>).post(add_extra_specs::<S, C>),
        )
        .route(
            "/v2.1/flavors/{id}/os-extra_specs/{key}",
            get(extra_spec::<S, C>)
                .put(put_extra_spec::<S, C>)
                .delete(delete_extra_spec::<S, C>),
        )
}

pub(crate) async fn list<S: KvStore + Clone, C: Controller>(
    a: Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    listing(a, headers, brief).await
}

pub(crate) async fn list_detail<S: KvStore + Clone, C: Controller>(
    a: Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    listing(a, headers, detail).await
}

/// `GET /flavors` and `/flavors/detail`: every flavor, each rendered by `render`.
async fn listing<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    render: fn(&str, &Flavor) -> Value,
) -> Answer {
    caller(&a, &headers)?;
    let base = compute_url(&a.config.public_url);
    let all: Vec<Value> = all(&a.store)
        .await?
        .iter()
        .map(|f| render(&base, f))
        .collect();
    Ok(Json(json!({"flavors": all})).into_response())
}

fn not_found(id: &str) -> NovaError {
    NovaError::not_found(format!("Flavor {id:.64} could not be found."))
}

async fn existing<S: KvStore + Clone>(store: &S, id: &str) -> Result<Flavor, NovaError> {
    all(store)
        .await?
        .into_iter()
        .find(|f| f.id == id)
        .ok_or_else(|| not_found(id))
}

pub(crate) async fn show<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    caller(&a, &headers)?;
    let flavor = existing(&a.store, &id).await?;
    let base = compute_url(&a.config.public_url);
    Ok(Json(json!({"flavor": detail(&base, &flavor)})).into_response())
}

/// Only the admin manages flavors: Nova's policy refusal otherwise.
fn admin_only(who: &Caller, action: &str) -> Result<(), NovaError> {
    match who {
        Caller::Admin => Ok(()),
        Caller::Tenant(_) => Err(NovaError::forbidden(format!(
            "Policy doesn't allow os_compute_api:{action} to be performed."
        ))),
    }
}

fn invalid(field: &str, value: &Value, why: &str) -> NovaError {
    let shown = value.to_string();
    NovaError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {shown:.80}. {why}"
    ))
}

/// An integer attribute (a number or a string of digits, as Nova's schema takes it)
/// within `min..=max`.
fn integer(object: &Map<String, Value>, key: &str, min: u64, max: u64) -> Result<u64, NovaError> {
    let value = object.get(key).cloned().unwrap_or(Value::Null);
    let n = match &value {
        Value::Number(n) => n.as_i64().map(i128::from),
        Value::String(s)
            if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<i128>().ok()
        }
        _ => None,
    }
    .ok_or_else(|| {
        invalid(
            key,
            &value,
            &format!("{value:.40} is not of type 'integer'"),
        )
    })?;
    if n < i128::from(min) {
        return Err(invalid(
            key,
            &value,
            &format!("{n} is less than the minimum of {min}"),
        ));
    }
    if n > i128::from(max) {
        return Err(invalid(
            key,
            &value,
            &format!("{n} is greater than the maximum of {max}"),
        ));
    }
    u64::try_from(n).map_err(|_| invalid(key, &value, "out of range"))
}

/// A flavor id as Nova's schema takes it: 1 to 255 of `[a-zA-Z0-9. _-]`, no surrounding
/// spaces.
fn valid_id(id: &str) -> bool {
    (1..=255).contains(&id.len())
        && !id.starts_with(' ')
        && !id.ends_with(' ')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ' ' | '_' | '-'))
}

/// A name as Nova's `parameter_types.name`: 1 to 255 printable characters without
/// leading or trailing whitespace.
fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.chars().count())
        && !name.starts_with(char::is_whitespace)
        && !name.ends_with(char::is_whitespace)
        && !name.chars().any(char::is_control)
}

const CREATE_KEYS: &[&str] = &[
    "name",
    "id",
    "ram",
    "vcpus",
    "disk",
    "swap",
    "OS-FLV-EXT-DATA:ephemeral",
    "rxtx_factor",
    "os-flavor-access:is_public",
];

/// Reads `POST /flavors`' body into a flavor, checked against Nova's schema, weft's
/// bounds and the flavors there are. `id` stays empty when the body asks for a random
/// one.
pub(crate) fn parse_create(body: &[u8], flavors: &[Flavor]) -> Result<Flavor, NovaError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| NovaError::bad_request(format!("Malformed request body: {e}")))?;
    let Some(Value::Object(object)) = value.get("flavor") else {
        return Err(NovaError::bad_request(
            "Invalid input for field/attribute flavor. Value: 'flavor' is a required property",
        ));
    };
    if let Some(unknown) = object.keys().find(|k| !CREATE_KEYS.contains(&k.as_str())) {
        return Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute flavor. Additional properties are not allowed ('{unknown:.64}' was unexpected)"
        )));
    }
    for required in ["name", "ram", "vcpus", "disk"] {
        if !object.contains_key(required) {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute flavor. Value: '{required}' is a required property"
            )));
        }
    }
    let name = match &object["name"] {
        Value::String(n) if valid_name(n) => n.clone(),
        other => {
            return Err(invalid(
                "name",
                other,
                "A name is 1 to 255 printable characters without leading or trailing whitespace.",
            ));
        }
    };
    let id = match object.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s == "auto" => String::new(),
        Some(Value::String(s)) if valid_id(s) => s.clone(),
        Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
        Some(other) => {
            return Err(invalid(
                "id",
                other,
                "An id is 1 to 255 characters of [a-zA-Z0-9. _-] without leading or trailing spaces.",
            ));
        }
    };
    let vcpus = integer(object, "vcpus", 1, MAX_VCPUS)?;
    let ram = integer(object, "ram", 1, MAX_RAM_MIB)?;
    let disk = integer(object, "disk", 0, MAX_DISK_GIB)?;
    let swap = match object.get("swap") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(_) => integer(object, "swap", 0, MAX_RAM_MIB)?,
    };
    let ephemeral = match object.get("OS-FLV-EXT-DATA:ephemeral") {
        None | Some(Value::Null) => 0,
        Some(_) => integer(object, "OS-FLV-EXT-DATA:ephemeral", 0, MAX_DISK_GIB)?,
    };
    let rxtx_factor = match object.get("rxtx_factor") {
        None | Some(Value::Null) => 1.0,
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|f: &f64| f.is_finite() && *f > 0.0 && *f <= 3.4e38)
            .ok_or_else(|| invalid("rxtx_factor", v, "rxtx_factor is a number above 0."))?,
    };
    match object.get("os-flavor-access:is_public") {
        None | Some(Value::Null) | Some(Value::Bool(true)) => {}
        Some(Value::String(s)) if is_true(s) => {}
        Some(other) => {
            return Err(invalid(
                "os-flavor-access:is_public",
                other,
                "weft's flavors are all public (flavor access lists are not served).",
            ));
        }
    }
    if flavors.iter().any(|f| f.name == name) {
        return Err(NovaError::conflict(format!(
            "Flavor with name {name} already exists."
        )));
    }
    if !id.is_empty() && flavors.iter().any(|f| f.id == id) {
        return Err(NovaError::conflict(format!(
            "Flavor with ID {id} already exists."
        )));
    }
    let custom = flavors.iter().filter(|f| !is_builtin(&f.id)).count();
    if custom >= MAX_FLAVORS {
        return Err(NovaError::forbidden(format!(
            "Quota exceeded for flavors: weft keeps at most {MAX_FLAVORS} custom flavors"
        )));
    }
    Ok(Flavor {
        id,
        name,
        vcpus: u32::try_from(vcpus).unwrap_or(u32::MAX),
        ram,
        disk,
        swap,
        ephemeral,
        rxtx_factor,
        extra_specs: BTreeMap::new(),
        created_ms: now_ms(),
    })
}

/// `POST /flavors` (admin): 200 with the flavor, as Nova answers.
async fn create<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    admin_only(&who, "os-flavor-manage:create")?;
    let _serialised = a.writes.lock().await;
    let mut flavor = parse_create(&body, &all(&a.store).await?)?;
    if flavor.id.is_empty() {
        flavor.id = crate::random_uuid()?;
    }
    put_meta(&a, "flavor", &flavor.id, &flavor).await?;
    tracing::info!(flavor = %flavor.id, name = %flavor.name, vcpus = flavor.vcpus, ram = flavor.ram, "flavor created");
    let base = compute_url(&a.config.public_url);
    Ok(Json(json!({"flavor": detail(&base, &flavor)})).into_response())
}

/// `DELETE /flavors/{id}` (admin): 202. The built-in flavors stay; servers made with a
/// deleted flavor keep their limits.
async fn remove<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    admin_only(&who, "os-flavor-manage:delete")?;
    let _serialised = a.writes.lock().await;
    existing(&a.store, &id).await?;
    if is_builtin(&id) {
        return Err(NovaError::forbidden(format!(
            "Flavor {id} is one of weft's built-in flavors (m1.tiny..m1.large) and cannot be deleted."
        )));
    }
    delete_meta(&a, "flavor", &id).await?;
    tracing::info!(flavor = %id, "flavor deleted");
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Checks extra specs to add to `current`: keys 1 to 255 of `[a-zA-Z0-9-_:. ]`, values
/// strings (or numbers and booleans, kept as text) of at most 255, at most
/// [`MAX_EXTRA_SPECS`] in all, `weft:` keys only those weft knows with their values.
/// The specs after the change.
pub(crate) fn merge_specs(
    current: &BTreeMap<String, String>,
    specs: &Value,
) -> Result<BTreeMap<String, String>, NovaError> {
    let Value::Object(specs) = specs else {
        return Err(NovaError::bad_request(
            "Invalid input for field/attribute extra_specs. Value: extra_specs must be an object",
        ));
    };
    let mut merged = current.clone();
    for (key, value) in specs {
        let key_ok = (1..=MAX_SPEC_LENGTH).contains(&key.len())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | ' '));
        if !key_ok {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute extra_specs. Value: {key:.64}. Keys are 1 to {MAX_SPEC_LENGTH} characters of [a-zA-Z0-9-_:. ]"
            )));
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(invalid(
                    &format!("extra_specs.{key:.64}"),
                    other,
                    "Values are strings, numbers or booleans.",
                ));
            }
        };
        if text.len() > MAX_SPEC_LENGTH {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute extra_specs.{key:.64}. Value: {text:.40}... is longer than {MAX_SPEC_LENGTH} characters"
            )));
        }
        if let Some(rest) = key.strip_prefix("weft:") {
            if !WEFT_SPECS.contains(&key.as_str()) {
                return Err(NovaError::bad_request(format!(
                    "Invalid extra spec {key:.64}: weft knows no option weft:{rest:.58} (it knows {})",
                    WEFT_SPECS.join(", ")
                )));
            }
            if !is_boolean(&text) {
                return Err(NovaError::bad_request(format!(
                    "Invalid extra spec {key}: {text:.40} is not a boolean (true or false)"
                )));
            }
        }
        merged.insert(key.clone(), text);
    }
    if merged.len() > MAX_EXTRA_SPECS {
        return Err(NovaError::forbidden(format!(
            "Quota exceeded for extra specs: a flavor has at most {MAX_EXTRA_SPECS}"
        )));
    }
    Ok(merged)
}

/// `GET /flavors/{id}/os-extra_specs`.
pub(crate) async fn extra_specs<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    caller(&a, &headers)?;
    let flavor = existing(&a.store, &id).await?;
    Ok(Json(json!({"extra_specs": flavor.extra_specs})).into_response())
}

/// Writes `flavor` with its new specs: a built-in flavor's record holds only them.
async fn save_specs<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    flavor: &Flavor,
) -> Result<(), NovaError> {
    put_meta(a, "flavor", &flavor.id, flavor).await?;
    Ok(())
}

/// `POST /flavors/{id}/os-extra_specs` (admin): adds or replaces the body's specs.
async fn add_extra_specs<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    admin_only(&who, "os-flavor-extra-specs:create")?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| NovaError::bad_request(format!("Malformed request body: {e}")))?;
    let Some(specs) = value.get("extra_specs") else {
        return Err(NovaError::bad_request(
            "Invalid input for field/attribute extra_specs. Value: 'extra_specs' is a required property",
        ));
    };
    let _serialised = a.writes.lock().await;
    let mut flavor = existing(&a.store, &id).await?;
    flavor.extra_specs = merge_specs(&flavor.extra_specs, specs)?;
    save_specs(&a, &flavor).await?;
    let given: BTreeMap<&String, &String> = flavor
        .extra_specs
        .iter()
        .filter(|(k, _)| specs.get(k.as_str()).is_some())
        .collect();
    tracing::info!(flavor = %id, specs = ?given, "flavor extra specs set");
    Ok(Json(json!({"extra_specs": given})).into_response())
}

fn spec_not_found(id: &str, key: &str) -> NovaError {
    NovaError::not_found(format!(
        "Flavor {id:.64} has no extra specs with key {key:.64}."
    ))
}

/// `GET /flavors/{id}/os-extra_specs/{key}`: `{key: value}`.
async fn extra_spec<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
) -> Answer {
    caller(&a, &headers)?;
    let flavor = existing(&a.store, &id).await?;
    let value = flavor
        .extra_specs
        .get(&key)
        .ok_or_else(|| spec_not_found(&id, &key))?;
    Ok(Json(json!({ key: value })).into_response())
}

/// `PUT /flavors/{id}/os-extra_specs/{key}` (admin): the body is `{key: value}`.
async fn put_extra_spec<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    admin_only(&who, "os-flavor-extra-specs:update")?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| NovaError::bad_request(format!("Malformed request body: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(NovaError::bad_request("Malformed request body: an object"));
    };
    if object.len() > 1 {
        return Err(NovaError::bad_request(
            "Request body contains too many items",
        ));
    }
    if !object.contains_key(&key) {
        return Err(NovaError::bad_request("Request body and URI mismatch"));
    }
    let _serialised = a.writes.lock().await;
    let mut flavor = existing(&a.store, &id).await?;
    flavor.extra_specs = merge_specs(&flavor.extra_specs, &value)?;
    save_specs(&a, &flavor).await?;
    let stored = flavor.extra_specs.get(&key).cloned().unwrap_or_default();
    tracing::info!(flavor = %id, %key, value = %stored, "flavor extra spec set");
    Ok(Json(json!({ key: stored })).into_response())
}

/// `DELETE /flavors/{id}/os-extra_specs/{key}` (admin): 202.
async fn delete_extra_spec<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
) -> Answer {
    let who = caller(&a, &headers)?;
    admin_only(&who, "os-flavor-extra-specs:delete")?;
    let _serialised = a.writes.lock().await;
    let mut flavor = existing(&a.store, &id).await?;
    if flavor.extra_specs.remove(&key).is_none() {
        return Err(spec_not_found(&id, &key));
    }
    if is_builtin(&id) && flavor.extra_specs.is_empty() {
        delete_meta(&a, "flavor", &id).await?;
    } else {
        save_specs(&a, &flavor).await?;
    }
    tracing::info!(flavor = %id, %key, "flavor extra spec deleted");
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: Value, flavors: &[Flavor]) -> Result<Flavor, NovaError> {
        parse_create(body.to_string().as_bytes(), flavors)
    }

    #[test]
    fn builtin_flavors_are_nova_defaults() {
        let all = builtin_flavors();
        let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["m1.tiny", "m1.small", "m1.medium", "m1.large"]);
        assert_eq!((all[0].vcpus, all[0].ram), (1, 512));
        assert_eq!((all[3].vcpus, all[3].ram), (4, 8192));
        assert!(all.iter().all(|f| !f.privileged()));
        assert!(is_builtin("1") && !is_builtin("5"));
    }

    #[test]
    fn create_takes_the_papers_uuid_or_makes_one() {
        let f = create(
            json!({"flavor": {"name": "m1.paper", "id": "34af1383-3836-4815-8060-503bc5d1b61b",
                              "vcpus": 2, "ram": 256, "disk": 1, "swap": 0,
                              "OS-FLV-EXT-DATA:ephemeral": 0, "rxtx_factor": 1.0,
                              "os-flavor-access:is_public": true}}),
            &builtin_flavors(),
        )
        .unwrap();
        assert_eq!(f.id, "34af1383-3836-4815-8060-503bc5d1b61b");
        assert_eq!((f.vcpus, f.ram, f.disk), (2, 256, 1));
        for auto in [json!(null), json!("auto")] {
            let f = create(
                json!({"flavor": {"name": "x", "id": auto, "vcpus": "1", "ram": "64", "disk": 0}}),
                &builtin_flavors(),
            )
            .unwrap();
            assert_eq!(f.id, "", "a random id is made at the create");
            assert_eq!(f.ram, 64);
        }
        let numeric = create(
            json!({"flavor": {"name": "n", "id": 42, "vcpus": 1, "ram": 64, "disk": 0}}),
            &builtin_flavors(),
        )
        .unwrap();
        assert_eq!(numeric.id, "42");
    }

    #[test]
    fn create_refuses_as_nova_does() {
        let flavors = builtin_flavors();
        let cases = [
            (json!({}), 400, "'flavor' is a required property"),
            (
                json!({"flavor": {"name": "x", "vcpus": 1, "ram": 64}}),
                400,
                "'disk' is a required property",
            ),
            (
                json!({"flavor": {"name": "x", "vcpus": 1, "ram": 64, "disk": 0, "description": "d"}}),
                400,
                "Additional properties are not allowed ('description' was unexpected)",
            ),
            (
                json!({"flavor": {"name": "x", "vcpus": 0, "ram": 64, "disk": 0}}),
                400,
                "Invalid input for field/attribute vcpus. Value: 0. 0 is less than the minimum of 1",
            ),
            (
                json!({"flavor": {"name": "x", "vcpus": 1025, "ram": 64, "disk": 0}}),
                400,
                "1025 is greater than the maximum of 1024",
            ),
            (
                json!({"flavor": {"name": "x", "vcpus": 1, "ram": -1, "disk": 0}}),
                400,
                "Invalid input for field/attribute ram. Value: -1. -1 is less than the minimum of 1",
            ),
            (
                json!({"flavor": {"name": "x", "vcpus": 1, "ram": 4194305, "disk": 0}}),
                400,
                "greater than the maximum of 4194304",
            ),
            (
                json!({"flavor": {"name": "x", "vcpus": 1.5, "ram": 64, "disk": 0}}),
                400,
                "is not of type 'integer'",
            ),
            (
                json!({"flavor": {"name": "x", "vcpus": 1, "ram": 64, "disk": -1}}),
                400,
                "less than the minimum of 0",
            ),
            (
                json!({"flavor": {"name": "", "vcpus": 1, "ram": 64, "disk": 0}}),
                400,
                "field/attribute name",
            ),
            (
                json!({"flavor": {"name": " x", "vcpus": 1, "ram": 64, "disk": 0}}),
                400,
                "field/attribute name",
            ),
            (
                json!({"flavor": {"name": "x".repeat(256), "vcpus": 1, "ram": 64, "disk": 0}}),
                400,
                "field/attribute name",
            ),
            (
                json!({"flavor": {"name": "x", "id": "a/b", "vcpus": 1, "ram": 64, "disk": 0}}),
                400,
                "field/attribute id",
            ),
            (
                json!({"flavor": {"name": "x", "id": "i".repeat(256), "vcpus": 1, "ram": 64, "disk": 0}}),
                400,
                "field/attribute id",
            ),
            (
                json!({"flavor": {"name": "x", "vcpus": 1, "ram": 64, "disk": 0, "os-flavor-access:is_public": false}}),
                400,
                "all public",
            ),
            (
                json!({"flavor": {"name": "m1.tiny", "vcpus": 1, "ram": 64, "disk": 0}}),
                409,
                "Flavor with name m1.tiny already exists.",
            ),
            (
                json!({"flavor": {"name": "y", "id": "1", "vcpus": 1, "ram": 64, "disk": 0}}),
                409,
                "Flavor with ID 1 already exists.",
            ),
        ];
        for (body, status, message) in cases {
            let err = create(body.clone(), &flavors).unwrap_err();
            assert_eq!(err.status.as_u16(), status, "{body}: {err}");
            assert!(err.message.contains(message), "{body}: {}", err.message);
        }
        let mut many = builtin_flavors();
        for i in 0..MAX_FLAVORS {
            let mut f = many[0].clone();
            f.id = format!("c{i}");
            f.name = format!("c{i}");
            many.push(f);
        }
        let err = create(
            json!({"flavor": {"name": "one-more", "vcpus": 1, "ram": 64, "disk": 0}}),
            &many,
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN, "{err}");
    }

    #[test]
    fn extra_specs_are_bounded_and_weft_keys_known() {
        let none = BTreeMap::new();
        let specs = merge_specs(
            &none,
            &json!({"weft:privileged": "true", "hw:cpu_policy": "dedicated", "n": 4, "b": false}),
        )
        .unwrap();
        assert_eq!(specs["weft:privileged"], "true");
        assert_eq!(specs["n"], "4");
        assert_eq!(specs["b"], "false");
        let mut f = builtin_flavors().remove(0);
        f.extra_specs = specs;
        assert!(f.privileged());
        f.extra_specs.insert(PRIVILEGED.into(), "False".into());
        assert!(!f.privileged());

        let err = merge_specs(&none, &json!({"weft:nope": "1"})).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("weft:nope"), "{}", err.message);
        for bad in [
            json!({"weft:privileged": "maybe"}),
            json!({"": "v"}),
            json!({"k/x": "v"}),
            json!({"k".repeat(256): "v"}),
            json!({"k": "v".repeat(256)}),
            json!({"k": ["v"]}),
            json!({"k": null}),
            json!(["k"]),
        ] {
            let err = merge_specs(&none, &bad).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let full: BTreeMap<String, String> = (0..MAX_EXTRA_SPECS)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(merge_specs(&full, &json!({"k0": "w"})).is_ok());
        let err = merge_specs(&full, &json!({"one-more": "v"})).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
    }
}
