//! Glance v2: version discovery, and images that are Docker references registered
//! through the API (`POST /v2/images` with the property `weft_docker_ref`). An image is
//! a record under `/weft/openstack/ids/image/<uuid>` (name, reference, owner,
//! visibility, properties); it is `active` at once, as there is nothing to upload: the
//! nodes' Docker engines hold the image itself. The id may be given at registration
//! (so files naming an `image_id` keep working once it is registered), else it is random.
//! The property `weft:privileged=true` makes the servers booted from it privileged
//! (admitted only in a project an admin allowed); other `weft:` properties are refused.
//!
//! Every Docker image a registered node's engine holds (its agent reports them,
//! [`Controller::node_images`]) is an image too, unless a registered image names the same
//! reference: one image per `repo:tag`, its id derived from the reference
//! ([`crate::derived_uuid`] of `docker-image:<repo:tag>`, so it is the same on every
//! controller and every day), named as Nova-Docker named them, after the Docker repo
//! (`busybox` for `busybox:latest`; `repo:tag` for another tag), public, `active`, with
//! the engine's size and creation time and the property `weft_nodes` (the nodes that
//! hold it). Nothing is stored for it: it goes when no node holds it any more.

use crate::error::GlanceError;
use crate::resource::{metas, token_caller};
use crate::time::iso8601;
use crate::{
    Caller, Controller, KEY_ROOT, NodeDockerImage, OpenStack, OpenStackError, derived_uuid, now_ms,
    project_id,
};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_app::ImageRef;
use weft_store::KvStore;

/// The property naming an image's Docker reference.
pub const DOCKER_REF: &str = "weft_docker_ref";
/// The property naming the nodes whose Docker engines hold an image (comma-separated).
pub const NODES: &str = "weft_nodes";
/// A server is constrained to the nodes holding its image when at most this many do.
const MAX_HOLDERS_CONSTRAINT: usize = 64;

/// `text` matched literally in a regular expression.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '-' && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
/// Images one project (or the admin) may register.
const MAX_IMAGES_PER_OWNER: usize = 1000;
/// Extra properties of one image, as Glance's default `image_property_quota`.
const MAX_PROPERTIES: usize = 128;
const MAX_TAGS: usize = 128;

type Adapter<S, C> = State<Arc<OpenStack<S, C>>>;
type Answer = Result<Response, GlanceError>;

pub fn routes<S: KvStore + Clone, C: Controller>() -> Router<Arc<OpenStack<S, C>>> {
    Router::new()
        .route("/", get(versions_multiple::<S, C>))
        .route("/versions", get(versions::<S, C>))
        .route("/v2", get(versions_multiple::<S, C>))
        .route("/v2/", get(versions_multiple::<S, C>))
        .route(
            "/v2/images",
            get(list::<S, C>).post(create::<S, C>),
        )
        .route(
            "/v2/images/{id}",
            get(show::<S, C>).delete(remove::<S, C>),
        )
        .route(
            "/v2/images/{id}/file",
            axum::routing::put(upload::<S, C>).get(download::<S, C>),
        )
        .fallback(|| async {
            GlanceError::not_found(
                "The resource could not be found. weft's image service serves /v2/images (list, show, create, delete)",
            )
        })
}

/// An image as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ImageRecord {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) docker_ref: String,
    /// The owning tenant; `None` for an admin's image without an owner.
    #[serde(default)]
    pub(crate) owner: Option<String>,
    pub(crate) visibility: String,
    pub(crate) container_format: String,
    pub(crate) disk_format: String,
    #[serde(default)]
    pub(crate) min_ram: u64,
    #[serde(default)]
    pub(crate) min_disk: u64,
    #[serde(default)]
    pub(crate) protected: bool,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) properties: BTreeMap<String, String>,
    pub(crate) created_ms: u64,
    /// The nodes whose engines hold its reference, as their agents reported (not stored).
    #[serde(skip)]
    pub(crate) nodes: Vec<String>,
    /// Its size on those engines (not stored).
    #[serde(skip)]
    pub(crate) size: Option<u64>,
    /// Not registered: only some nodes' engines hold it (not stored).
    #[serde(skip)]
    pub(crate) discovered: bool,
}

impl ImageRecord {
    /// Public and community images are everyone's; the others their owner's.
    pub(crate) fn visible_to(&self, who: &Caller) -> bool {
        matches!(self.visibility.as_str(), "public" | "community")
            || match (&self.owner, who) {
                (_, Caller::Admin) => true,
                (Some(owner), Caller::Tenant(t)) => owner == t,
                (None, Caller::Tenant(_)) => false,
            }
    }

    /// Whether its `weft:privileged` property makes a server's task privileged.
    pub(crate) fn privileged(&self) -> bool {
        self.properties
            .get(crate::flavor::PRIVILEGED)
            .is_some_and(|v| crate::flavor::is_true(v))
    }

    /// The constraint that places a server of this image on a node whose engine holds
    /// it (`hostname like (n1|n2)`), when nodes reported it (at most
    /// [`MAX_HOLDERS_CONSTRAINT`] of them; more, or none: no constraint, and a node
    /// without it fails the task with "image not found").
    pub(crate) fn holders_constraint(&self) -> Option<weft_app::Constraint> {
        if self.nodes.is_empty() || self.nodes.len() > MAX_HOLDERS_CONSTRAINT {
            return None;
        }
        let names: Vec<String> = self.nodes.iter().map(|n| regex_escape(n)).collect();
        let pattern = weft_app::Pattern::new(&format!("({})", names.join("|"))).ok()?;
        Some(weft_app::Constraint::Like {
            attribute: "hostname".into(),
            value: pattern,
        })
    }

    fn json(&self) -> Value {
        let mut item = Map::new();
        // Extra properties first: the standard attributes win over a same-named one.
        for (k, v) in &self.properties {
            item.insert(k.clone(), json!(v));
        }
        let created = iso8601(self.created_ms);
        let standard = json!({
            "id": self.id,
            "name": self.name,
            "status": "active",
            "visibility": self.visibility,
            "protected": self.protected,
            "os_hidden": false,
            "owner": self.owner.as_deref().map(project_id),
            "container_format": self.container_format,
            "disk_format": self.disk_format,
            "min_ram": self.min_ram,
            "min_disk": self.min_disk,
            "size": self.size,
            "virtual_size": null,
            "checksum": null,
            "os_hash_algo": null,
            "os_hash_value": null,
            "tags": self.tags,
            "created_at": created,
            "updated_at": created,
            DOCKER_REF: self.docker_ref,
            NODES: self.nodes.join(","),
            "self": format!("/v2/images/{}", self.id),
            "file": format!("/v2/images/{}/file", self.id),
            "schema": "/v2/schemas/image",
        });
        if let Value::Object(map) = standard {
            item.extend(map);
        }
        Value::Object(item)
    }
}

pub(crate) fn image_url(public: &str) -> String {
    format!("{public}/image")
}

fn versions_doc(public: &str) -> Value {
    let href = format!("{}/v2/", image_url(public));
    let values: Vec<Value> = [
        ("v2.9", "CURRENT"),
        ("v2.8", "SUPPORTED"),
        ("v2.7", "SUPPORTED"),
        ("v2.6", "SUPPORTED"),
        ("v2.5", "SUPPORTED"),
        ("v2.4", "SUPPORTED"),
        ("v2.3", "SUPPORTED"),
        ("v2.2", "SUPPORTED"),
        ("v2.1", "SUPPORTED"),
        ("v2.0", "SUPPORTED"),
    ]
    .iter()
    .map(|(id, status)| json!({"id": id, "status": status, "links": [{"rel": "self", "href": href}]}))
    .collect();
    json!({"versions": values})
}

/// `GET /`: Glance answers 300 with its versions.
pub(crate) async fn versions_multiple<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(versions_doc(&a.config.public_url)),
    )
        .into_response()
}

async fn versions<S: KvStore + Clone, C: Controller>(State(a): Adapter<S, C>) -> Response {
    Json(versions_doc(&a.config.public_url)).into_response()
}

fn caller<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    headers: &HeaderMap,
) -> Result<Caller, GlanceError> {
    token_caller(a, headers).ok_or_else(|| {
        GlanceError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    })
}

/// Every image record, by id.
pub(crate) async fn records<S: KvStore + Clone>(
    store: &S,
) -> Result<BTreeMap<String, ImageRecord>, OpenStackError> {
    metas(store, "image")
        .await
        .map_err(|e| OpenStackError::Internal(e.message))
}

/// A Docker reference as one key: parsed and printed again, `:latest` when it names no
/// tag or digest; `None` when it is not a reference.
pub(crate) fn canonical_ref(reference: &str) -> Option<String> {
    let mut parsed = reference.parse::<ImageRef>().ok()?;
    if parsed.tag.is_none() && parsed.digest.is_none() {
        parsed.tag = Some("latest".into());
    }
    Some(parsed.to_string())
}

/// The stable id of the discovered image of `reference` (canonical).
pub(crate) fn discovered_id(reference: &str) -> String {
    derived_uuid(&format!("docker-image:{reference}"))
}

/// The name of a discovered image, as Nova-Docker named them: the Docker repo, with the
/// tag when it is not `latest`.
pub(crate) fn discovered_name(reference: &str) -> String {
    reference
        .strip_suffix(":latest")
        .unwrap_or(reference)
        .to_string()
}

/// The registered images, each with the nodes that hold its reference, and one image
/// per reference the nodes hold that no registered image names (by id).
pub(crate) fn merge(
    registered: BTreeMap<String, ImageRecord>,
    held: Vec<NodeDockerImage>,
) -> BTreeMap<String, ImageRecord> {
    // Per canonical reference: holders, largest size, newest creation.
    let mut by_ref: BTreeMap<String, (Vec<String>, u64, u64)> = BTreeMap::new();
    for image in held {
        for tag in &image.tags {
            let Some(reference) = canonical_ref(tag) else {
                continue;
            };
            let entry = by_ref.entry(reference).or_default();
            if !entry.0.contains(&image.node) {
                entry.0.push(image.node.clone());
            }
            entry.1 = entry.1.max(image.size);
            entry.2 = entry.2.max(image.created_ms);
        }
    }
    let mut all = registered;
    for record in all.values_mut() {
        if let Some((nodes, size, _)) = canonical_ref(&record.docker_ref)
            .as_ref()
            .and_then(|r| by_ref.remove(r))
        {
            record.nodes = nodes;
            record.nodes.sort();
            record.size = Some(size);
        }
    }
    // What is left is named by no registered image.
    for (reference, (mut nodes, size, created_ms)) in by_ref {
        nodes.sort();
        let id = discovered_id(&reference);
        all.entry(id.clone()).or_insert(ImageRecord {
            id,
            name: discovered_name(&reference),
            docker_ref: reference,
            owner: None,
            visibility: "public".into(),
            container_format: "docker".into(),
            disk_format: "raw".into(),
            min_ram: 0,
            min_disk: 0,
            protected: false,
            tags: Vec::new(),
            properties: BTreeMap::new(),
            created_ms,
            nodes,
            size: Some(size),
            discovered: true,
        });
    }
    all
}

/// Every image `who` may see: the registered ones it may see and the images nodes hold
/// that none of those names ([`merge`]; a project's own image of a reference hides the
/// public discovered one from that project only).
pub(crate) async fn all_images<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
) -> Result<BTreeMap<String, ImageRecord>, OpenStackError> {
    let mut registered = records(&a.store).await?;
    registered.retain(|_, r| r.visible_to(who));
    let held = a.controller.node_images().await?;
    Ok(merge(registered, held))
}

/// The image `id` (registered or held by a node) as `who` may see it.
pub(crate) async fn find<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
    id: &str,
) -> Result<Option<ImageRecord>, OpenStackError> {
    Ok(all_images(a, who)
        .await?
        .remove(id)
        .filter(|r| r.visible_to(who)))
}

fn not_found(id: &str) -> GlanceError {
    GlanceError::not_found(format!("No image found with ID {id}"))
}

async fn list<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    let who = caller(&a, &headers)?;
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| GlanceError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let mut images: Vec<ImageRecord> = all_images(&a, &who)
        .await?
        .into_values()
        .filter(|r| r.visible_to(&who))
        .collect();
    // Newest first, as Glance sorts by default; ties by id.
    images.sort_by(|x, y| {
        y.created_ms
            .cmp(&x.created_ms)
            .then_with(|| x.id.cmp(&y.id))
    });
    let mut limit = None;
    let mut marker = None;
    for (key, value) in &pairs {
        match key.as_str() {
            "limit" => {
                limit = Some(value.parse::<usize>().map_err(|_| {
                    GlanceError::bad_request(format!("limit {value:?} is not a number"))
                })?);
            }
            "marker" => marker = Some(value.clone()),
            // `in:a,b` is any of them (the CLI's `server list` asks `id=in:...`).
            "name" => images.retain(|r| one_of(value, &r.name)),
            "id" => images.retain(|r| one_of(value, &r.id)),
            "status" => images.retain(|_| value.eq_ignore_ascii_case("active")),
            "visibility" if value != "all" => images.retain(|r| r.visibility == *value),
            "owner" => {
                images.retain(|r| r.owner.as_deref().is_some_and(|o| project_id(o) == *value))
            }
            "tag" => images.retain(|r| r.tags.contains(value)),
            // Sorting and other filters are not served: the default order stands.
            _ => {}
        }
    }
    if let Some(marker) = marker {
        let at = images
            .iter()
            .position(|r| r.id == marker)
            .ok_or_else(|| GlanceError::bad_request(format!("marker {marker} not found")))?;
        images.drain(..=at);
    }
    let mut body = json!({"schema": "/v2/schemas/images", "first": "/v2/images"});
    if let Some(limit) = limit
        && images.len() > limit
    {
        images.truncate(limit);
        if let Some(last) = images.last() {
            body["next"] = json!(format!("/v2/images?marker={}&limit={limit}", last.id));
        }
    }
    body["images"] = Value::Array(images.iter().map(ImageRecord::json).collect());
    Ok(Json(body).into_response())
}

/// Whether `actual` is what a filter value names: itself, or one of `in:a,b,...`
/// (values may be quoted).
fn one_of(filter: &str, actual: &str) -> bool {
    match filter.strip_prefix("in:") {
        Some(list) => list
            .split(',')
            .any(|v| v.trim().trim_matches('"') == actual),
        None => filter == actual,
    }
}

async fn show<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let image = find(&a, &who, &id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(image.json()).into_response())
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn short_text(object: &Map<String, Value>, key: &str) -> Result<Option<String>, GlanceError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 255 => Ok(Some(s.clone())),
        Some(_) => Err(GlanceError::bad_request(format!(
            "Provided object does not match schema 'image': {key} is not a string of at most 255 characters"
        ))),
    }
}

fn number(object: &Map<String, Value>, key: &str) -> Result<u64, GlanceError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().filter(|n| *n <= 1 << 40).ok_or_else(|| {
            GlanceError::bad_request(format!(
                "Provided object does not match schema 'image': {key} is not a non-negative integer"
            ))
        }),
    }
}

/// Reads a registration body into a record (without an id when none was given).
fn registration(who: &Caller, body: &[u8], tenants: &[String]) -> Result<ImageRecord, GlanceError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GlanceError::bad_request(format!("Malformed JSON in request body: {e}")))?;
    let Value::Object(object) = value else {
        return Err(GlanceError::bad_request(
            "the body must be a JSON object of the image's attributes",
        ));
    };
    let id = match short_text(&object, "id")? {
        Some(id) if is_uuid(&id) => id.to_ascii_lowercase(),
        Some(id) => {
            return Err(GlanceError::bad_request(format!(
                "Provided object does not match schema 'image': {id:?} is not a 'uuid'"
            )));
        }
        None => String::new(),
    };
    let name = short_text(&object, "name")?.unwrap_or_default();
    let docker_ref = short_text(&object, DOCKER_REF)?.ok_or_else(|| {
        GlanceError::bad_request(format!(
            "weft needs the property {DOCKER_REF} (a Docker image reference the nodes hold, e.g. busybox:latest): images are not uploaded"
        ))
    })?;
    docker_ref
        .parse::<ImageRef>()
        .map_err(|e| GlanceError::bad_request(format!("{DOCKER_REF}: {e}")))?;
    let container_format = short_text(&object, "container_format")?.unwrap_or("docker".into());
    if !matches!(container_format.as_str(), "docker" | "bare") {
        return Err(GlanceError::bad_request(format!(
            "container_format {container_format:?}: weft's images are Docker images (docker or bare)"
        )));
    }
    let disk_format = short_text(&object, "disk_format")?.unwrap_or("raw".into());
    let visibility = short_text(&object, "visibility")?.unwrap_or(match who {
        Caller::Admin => "public".into(),
        Caller::Tenant(_) => "shared".into(),
    });
    match (visibility.as_str(), who) {
        ("private" | "shared", _) | ("public" | "community", Caller::Admin) => {}
        ("public" | "community", Caller::Tenant(_)) => {
            return Err(GlanceError::new(
                StatusCode::FORBIDDEN,
                format!("You are not authorized to create {visibility} images: only the admin is"),
            ));
        }
        (other, _) => {
            return Err(GlanceError::bad_request(format!(
                "Provided object does not match schema 'image': visibility {other:?} is not one of public, community, shared, private"
            )));
        }
    }
    let owner = match who {
        Caller::Tenant(t) => Some(t.clone()),
        Caller::Admin => match short_text(&object, "owner")? {
            None => None,
            Some(p) => Some(
                tenants
                    .iter()
                    .find(|t| project_id(t) == p || **t == p)
                    .cloned()
                    .ok_or_else(|| {
                        GlanceError::bad_request(format!("owner {p} is not a weft tenant"))
                    })?,
            ),
        },
    };
    let protected = match object.get("protected") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(GlanceError::bad_request("protected must be a boolean")),
    };
    let tags = match object.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_TAGS => items
            .iter()
            .map(|t| {
                t.as_str()
                    .filter(|s| s.len() <= 255)
                    .map(String::from)
                    .ok_or_else(|| {
                        GlanceError::bad_request("tags are strings of at most 255 characters")
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(GlanceError::bad_request(format!(
                "tags must be a list of at most {MAX_TAGS} strings"
            )));
        }
    };
    const STANDARD: &[&str] = &[
        "id",
        "name",
        DOCKER_REF,
        "container_format",
        "disk_format",
        "visibility",
        "owner",
        "protected",
        "tags",
        "min_ram",
        "min_disk",
    ];
    const READ_ONLY: &[&str] = &[
        "status",
        "created_at",
        "updated_at",
        "size",
        "virtual_size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "self",
        "file",
        "schema",
        "direct_url",
        "locations",
    ];
    let mut properties = BTreeMap::new();
    for (key, value) in &object {
        if STANDARD.contains(&key.as_str()) {
            continue;
        }
        if READ_ONLY.contains(&key.as_str()) {
            return Err(GlanceError::new(
                StatusCode::FORBIDDEN,
                format!("Attribute '{key}' is read-only."),
            ));
        }
        let Some(text) = value.as_str() else {
            return Err(GlanceError::bad_request(format!(
                "property {key} must be a string"
            )));
        };
        if key.is_empty() || key.len() > 255 || text.len() > 255 {
            return Err(GlanceError::bad_request(format!(
                "property {key:.40}: names are 1 to 255 characters, values at most 255"
            )));
        }
        if key.starts_with("weft:") {
            if key != crate::flavor::PRIVILEGED {
                return Err(GlanceError::bad_request(format!(
                    "property {key:.64}: weft knows no such option (it knows {})",
                    crate::flavor::PRIVILEGED
                )));
            }
            if !matches!(
                text.to_ascii_lowercase().as_str(),
                "true" | "false" | "1" | "0" | "yes" | "no" | "on" | "off"
            ) {
                return Err(GlanceError::bad_request(format!(
                    "property {key}: {text:.40} is not a boolean (true or false)"
                )));
            }
        }
        properties.insert(key.clone(), text.to_string());
    }
    if properties.len() > MAX_PROPERTIES {
        return Err(GlanceError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Maximum number of image properties ({MAX_PROPERTIES}) exceeded"),
        ));
    }
    Ok(ImageRecord {
        id,
        name,
        docker_ref,
        owner,
        visibility,
        container_format,
        disk_format,
        min_ram: number(&object, "min_ram")?,
        min_disk: number(&object, "min_disk")?,
        protected,
        tags,
        properties,
        created_ms: now_ms(),
        nodes: Vec::new(),
        size: None,
        discovered: false,
    })
}

fn image_key(id: &str) -> String {
    format!("{KEY_ROOT}ids/image/{id}")
}

/// `POST /v2/images`: registers a Docker reference as an image (201).
async fn create<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let mut record = registration(&who, &body, &a.controller.tenants())?;
    let _serialised = a.writes.lock().await;
    let all = records(&a.store).await?;
    if all.values().filter(|r| r.owner == record.owner).count() >= MAX_IMAGES_PER_OWNER {
        return Err(GlanceError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {MAX_IMAGES_PER_OWNER} images per project"),
        ));
    }
    if record.id.is_empty() {
        record.id = crate::random_uuid()?;
    } else if all.contains_key(&record.id) {
        return Err(GlanceError::new(
            StatusCode::CONFLICT,
            format!("Image with identifier {} already exists!", record.id),
        ));
    }
    let bytes = serde_json::to_vec(&record).map_err(|e| OpenStackError::Internal(e.to_string()))?;
    a.store
        .put(image_key(&record.id).as_bytes(), &bytes, None)
        .await
        .map_err(OpenStackError::from)?;
    tracing::info!(image = %record.id, name = %record.name, docker = %record.docker_ref, "image registered");
    Ok((StatusCode::CREATED, Json(record.json())).into_response())
}

/// `PUT /v2/images/{id}/file`: there is nothing to upload (the nodes' Docker engines
/// hold the image); the empty upload the CLI sends after a create without `--file` is
/// answered 204, any data 400.
async fn upload<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    find(&a, &who, &id).await?.ok_or_else(|| not_found(&id))?;
    if !body.is_empty() {
        return Err(GlanceError::bad_request(format!(
            "weft's images are Docker references ({DOCKER_REF}); image data is not uploaded: load the image into the nodes' Docker engines"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v2/images/{id}/file`: no data (204), as Glance answers for an image without.
async fn download<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    find(&a, &who, &id).await?.ok_or_else(|| not_found(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v2/images/{id}`: the owner or the admin (204); servers that run it keep
/// running.
async fn remove<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&a, &headers)?;
    let _serialised = a.writes.lock().await;
    let image = find(&a, &who, &id).await?.ok_or_else(|| not_found(&id))?;
    let owns = match (&who, &image.owner) {
        (Caller::Admin, _) => true,
        (Caller::Tenant(t), Some(owner)) => t == owner,
        (Caller::Tenant(_), None) => false,
    };
    if !owns {
        return Err(GlanceError::new(
            StatusCode::FORBIDDEN,
            format!("You are not permitted to delete image {id}"),
        ));
    }
    if image.discovered {
        return Err(GlanceError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Image {id} is the Docker image {} on nodes {}; weft does not delete it from their engines",
                image.docker_ref,
                image.nodes.join(",")
            ),
        ));
    }
    if image.protected {
        return Err(GlanceError::new(
            StatusCode::FORBIDDEN,
            format!("Image {id} is protected and cannot be deleted."),
        ));
    }
    a.store
        .delete(image_key(&id).as_bytes())
        .await
        .map_err(OpenStackError::from)?;
    tracing::info!(image = %id, "image deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(node: &str, tags: &[&str], id: &str, created_ms: u64) -> NodeDockerImage {
        NodeDockerImage {
            node: node.into(),
            tags: tags.iter().map(|t| (*t).to_string()).collect(),
            id: id.into(),
            size: 1000,
            created_ms,
        }
    }

    #[test]
    fn node_images_are_images_with_derived_ids_and_registered_ones_win() {
        assert_eq!(canonical_ref("busybox").as_deref(), Some("busybox:latest"));
        assert_eq!(canonical_ref("a/b:2").as_deref(), Some("a/b:2"));
        assert_eq!(canonical_ref("Not A Ref"), None);
        assert_eq!(discovered_name("busybox:latest"), "busybox");
        assert_eq!(discovered_name("weft-test/app:2"), "weft-test/app:2");
        let nodes = vec![
            held("n2", &["busybox:latest"], "sha256:b2", 5),
            held("n1", &["busybox:latest", "weft-test/app:2"], "sha256:b1", 7),
            held("n1", &["NOT VALID"], "sha256:c", 9),
        ];
        let all = merge(BTreeMap::new(), nodes.clone());
        assert_eq!(all.len(), 2, "{all:?}");
        let busybox = &all[&discovered_id("busybox:latest")];
        assert_eq!(busybox.name, "busybox");
        assert_eq!(busybox.docker_ref, "busybox:latest");
        assert_eq!(busybox.nodes, ["n1", "n2"]);
        assert_eq!(busybox.created_ms, 7);
        assert!(busybox.discovered);
        let json = busybox.json();
        assert_eq!(json["weft_nodes"], "n1,n2");
        assert_eq!(json["visibility"], "public");
        assert_eq!(json["size"], 1000);
        assert_eq!(json["status"], "active");
        // The same reference always has the same id, whoever holds it.
        assert_eq!(
            discovered_id("busybox:latest"),
            merge(BTreeMap::new(), nodes[..1].to_vec())
                .into_keys()
                .next()
                .unwrap()
        );
        assert_ne!(discovered_id("busybox:latest"), discovered_id("busybox:1"));
        // A registered image of the same reference (`busybox` is `busybox:latest`) wins.
        let mine = registration(
            &Caller::Tenant("lab".into()),
            br#"{"name":"bb","weft_docker_ref":"busybox","id":"6f1b4c7e-0000-4000-8000-000000000001"}"#,
            &[],
        )
        .unwrap();
        let all = merge(BTreeMap::from([(mine.id.clone(), mine.clone())]), nodes);
        assert_eq!(all.len(), 2);
        assert!(!all.contains_key(&discovered_id("busybox:latest")));
        assert_eq!(all[&mine.id].nodes, ["n1", "n2"]);
        assert!(!all[&mine.id].discovered);
        let holders = all[&mine.id].holders_constraint().unwrap();
        assert_eq!(serde_json::to_value(&holders).unwrap()["value"], r"(n1|n2)");
        assert_eq!(regex_escape("a.b-c"), r"a\.b-c");
        assert!(mine.holders_constraint().is_none());
    }

    #[test]
    fn registration_reads_and_bounds() {
        let who = Caller::Tenant("lab".into());
        let ok = registration(
            &who,
            br#"{"name":"busybox","weft_docker_ref":"weft-test/busybox:1","id":"6F1B4C7E-0000-4000-8000-000000000001","os_distro":"busybox"}"#,
            &[],
        )
        .unwrap();
        assert_eq!(ok.id, "6f1b4c7e-0000-4000-8000-000000000001");
        assert_eq!(ok.visibility, "shared");
        assert_eq!(ok.owner.as_deref(), Some("lab"));
        assert_eq!(ok.properties["os_distro"], "busybox");
        assert!(!ok.privileged());
        let root = registration(
            &who,
            br#"{"name":"root","weft_docker_ref":"a","weft:privileged":"true"}"#,
            &[],
        )
        .unwrap();
        assert!(root.privileged());
        assert_eq!(root.json()["weft:privileged"], "true");
        for bad in [
            r#"{"name":"x"}"#,
            r#"{"weft_docker_ref":"UPPER/Case"}"#,
            r#"{"weft_docker_ref":"a","id":"nope"}"#,
            r#"{"weft_docker_ref":"a","visibility":"public"}"#,
            r#"{"weft_docker_ref":"a","status":"active"}"#,
            r#"{"weft_docker_ref":"a","container_format":"ovf"}"#,
            r#"{"weft_docker_ref":"a","weft:privileged":"maybe"}"#,
            r#"{"weft_docker_ref":"a","weft:other":"true"}"#,
            r#"[1]"#,
        ] {
            assert!(registration(&who, bad.as_bytes(), &[]).is_err(), "{bad}");
        }
    }
}
