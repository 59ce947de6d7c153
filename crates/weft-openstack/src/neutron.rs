//! Neutron v2.0's routes: version discovery, the extensions weft really serves, and each
//! resource's handlers (networks and subnets, routers, ports, security groups and their
//! rules). Everything else answers Neutron's 404.

use crate::error::NeutronError;
use crate::network::{Networks, Subnets};
use crate::port::Ports;
use crate::resource::{Adapter, Answer, caller, delete, list, network_url, show, update};
use crate::router::Routers;
use crate::security_group::{Groups, Rules};
use crate::{Controller, OpenStack};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{any, get, put};
use serde_json::{Value, json};
use std::sync::Arc;
use weft_store::KvStore;

pub fn routes<S: KvStore + Clone, C: Controller>() -> Router<Arc<OpenStack<S, C>>> {
    use crate::{network as n, port as p, router as r, security_group as sg};
    Router::new()
        .route("/", get(versions::<S, C>))
        .route("/v2.0", get(resources::<S, C>))
        .route("/v2.0/", get(resources::<S, C>))
        .route("/v2.0/extensions", get(extensions::<S, C>))
        .route("/v2.0/extensions/{alias}", get(extension::<S, C>))
        .route(
            "/v2.0/networks",
            get(list::<Networks, S, C>).post(n::create_network::<S, C>),
        )
        .route(
            "/v2.0/networks/{id}",
            get(show::<Networks, S, C>)
                .put(update::<Networks, S, C>)
                .delete(delete::<Networks, S, C>),
        )
        .route(
            "/v2.0/subnets",
            get(list::<Subnets, S, C>).post(n::create_subnet::<S, C>),
        )
        .route(
            "/v2.0/subnets/{id}",
            get(show::<Subnets, S, C>)
                .put(update::<Subnets, S, C>)
                .delete(delete::<Subnets, S, C>),
        )
        .route(
            "/v2.0/routers",
            get(list::<Routers, S, C>).post(r::create::<S, C>),
        )
        .route(
            "/v2.0/routers/{id}",
            get(show::<Routers, S, C>)
                .put(update::<Routers, S, C>)
                .delete(delete::<Routers, S, C>),
        )
        .route(
            "/v2.0/routers/{id}/add_router_interface",
            put(r::add_interface::<S, C>),
        )
        .route(
            "/v2.0/routers/{id}/remove_router_interface",
            put(r::remove_interface::<S, C>),
        )
        .route(
            "/v2.0/ports",
            get(list::<Ports, S, C>).post(p::create::<S, C>),
        )
        .route(
            "/v2.0/ports/{id}",
            get(show::<Ports, S, C>)
                .put(p::update::<S, C>)
                .delete(p::delete::<S, C>),
        )
        .route(
            "/v2.0/security-groups",
            get(list::<Groups, S, C>).post(sg::create_group::<S, C>),
        )
        .route(
            "/v2.0/security-groups/{id}",
            get(show::<Groups, S, C>)
                .put(update::<Groups, S, C>)
                .delete(delete::<Groups, S, C>),
        )
        .route(
            "/v2.0/security-group-rules",
            get(list::<Rules, S, C>).post(sg::create_rule::<S, C>),
        )
        .route(
            "/v2.0/security-group-rules/{id}",
            get(show::<Rules, S, C>)
                .put(update::<Rules, S, C>)
                .delete(delete::<Rules, S, C>),
        )
        .route("/v2.0/floatingips", any(floating_ips))
        .route("/v2.0/floatingips/{id}", any(floating_ips))
        .fallback(|| async {
            NeutronError::not_found(
                "HTTPNotFound",
                "The resource could not be found. weft serves networks, subnets, routers, ports, security-groups, security-group-rules and extensions.",
            )
        })
}

/// What the extensions list says: exactly what is served. `router` is served without
/// its floating IPs (north-south does not exist yet; they answer 404).
const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
    ),
    (
        "router",
        "Neutron L3 Router",
        "Router abstraction for L3 forwarding between L2 Neutron networks (weft: a contract between their EPGs; no external gateway or floating IPs).",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
    ),
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",
    ),
    (
        "security-group",
        "security-group",
        "The security groups extension.",
    ),
    ("port-security", "Port Security", "Provides port security"),
];

pub(crate) async fn versions<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
) -> Json<Value> {
    Json(json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{}/v2.0/", network_url(&a.config.public_url))}],
    }]}))
}

async fn resources<S: KvStore + Clone, C: Controller>(State(a): Adapter<S, C>) -> Json<Value> {
    let base = format!("{}/v2.0", network_url(&a.config.public_url));
    let resources: Vec<Value> = [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("router", "routers"),
        ("port", "ports"),
        ("security_group", "security-groups"),
        ("security_group_rule", "security-group-rules"),
    ]
    .iter()
    .map(|(one, many)| {
        json!({"name": one, "collection": many,
               "links": [{"rel": "self", "href": format!("{base}/{many}")}]})
    })
    .collect();
    Json(json!({"resources": resources}))
}

fn extension_json(alias: &str, name: &str, description: &str) -> Value {
    json!({"alias": alias, "name": name, "description": description,
           "updated": "2017-01-01T00:00:00-00:00", "links": []})
}

async fn extensions<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    caller(&a, &headers)?;
    let all: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(alias, name, d)| extension_json(alias, name, d))
        .collect();
    Ok(Json(json!({"extensions": all})).into_response())
}

async fn extension<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(alias): Path<String>,
) -> Answer {
    caller(&a, &headers)?;
    EXTENSIONS
        .iter()
        .find(|(x, _, _)| *x == alias)
        .map(|(alias, name, d)| {
            Json(json!({"extension": extension_json(alias, name, d)})).into_response()
        })
        .ok_or_else(|| {
            NeutronError::not_found(
                "ExtensionNotFound",
                format!("Extension with alias {alias} does not exist"),
            )
        })
}

/// Floating IPs: Neutron answers a resource whose extension is not loaded with 404 "The
/// resource could not be found."; weft says why.
async fn floating_ips() -> NeutronError {
    NeutronError::not_found(
        "HTTPNotFound",
        "The resource could not be found. Floating IPs are not supported by weft yet (they need north-south routing).",
    )
}
