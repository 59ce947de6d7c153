//! The HTTP surface: one module per resource family, mounted at exactly
//! [`weft_api::paths`].

mod apps;
mod endpoints;
mod events;
mod explain;
mod meta;
mod nodes;
mod policy;
mod privilege;
mod skeleton;
mod tokens;

use crate::extract::{BodyLimit, json_errors};
use crate::server::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Serialize;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use weft_api::paths;

pub(crate) use apps::{apply_request as apply_apps, remove_app, scale_app};
pub(crate) use endpoints::delete_txn as endpoint_delete_txn;
pub(crate) use endpoints::plan as plan_endpoint;
pub(crate) use endpoints::update_port;
pub(crate) use privilege::set as set_privilege;

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .route(paths::HEALTH, get(meta::health))
        .route(paths::LEADER, get(meta::leader))
        .route(paths::OPENAPI, get(meta::openapi))
        .route(paths::APPLY, post(policy::apply))
        .route(paths::TENANTS, get(policy::list_tenants))
        .route(
            "/v1/tenants/{name}",
            get(policy::get_tenant)
                .put(policy::put_tenant)
                .delete(policy::delete_tenant),
        )
        .route(paths::EPGS, get(policy::list_epgs))
        .route(paths::CONTRACTS, get(policy::list_contracts))
        .route(paths::POLICY, get(policy::compiled))
        .route(paths::TOKENS, post(tokens::create))
        .route(paths::PRIVILEGE, get(privilege::list))
        .route(
            "/v1/privilege/{tenant}",
            get(privilege::get_one)
                .put(privilege::allow)
                .delete(privilege::deny),
        )
        .route("/v1/openstack/users", post(crate::openstack::create_user))
        .route(paths::NODES, get(nodes::list).post(nodes::register))
        .route(
            "/v1/nodes/{name}",
            get(nodes::get_one).delete(nodes::remove),
        )
        .route("/v1/nodes/{name}/heartbeat", put(nodes::heartbeat))
        .route("/v1/nodes/{name}/desired", get(nodes::desired))
        .route("/v1/nodes/{name}/report", put(nodes::report))
        .route("/v1/nodes/{name}/images", put(nodes::images))
        .route(
            "/v1/nodes/{name}/discovery",
            get(crate::discovery::get_node_view),
        )
        .route(
            "/v1/nodes/{name}/probes",
            put(crate::discovery::put_node_probes),
        )
        .route(paths::DNS, get(crate::discovery::query))
        .route(
            paths::ENDPOINTS,
            get(endpoints::list).post(endpoints::create),
        )
        .route(
            "/v1/endpoints/{name}",
            get(endpoints::get_one)
                .patch(endpoints::update)
                .delete(endpoints::remove),
        )
        .route(paths::APPS, get(apps::list).post(apps::apply))
        .route("/v1/apps/{id}", get(apps::get_one).delete(apps::remove))
        .route("/v1/apps/{id}/scale", put(apps::scale))
        .route("/v1/apps/{id}/restart", post(apps::restart))
        .route("/v1/apps/{id}/deployment", delete(apps::cancel_deployment))
        .route(paths::TASKS, get(apps::list_tasks))
        .route("/v1/tasks/{id}", get(apps::get_task))
        .route("/v1/tasks/{id}/output", get(apps::task_output))
        .route(paths::EVENTS, get(events::stream))
        .route(paths::EXPLAIN, get(explain::live))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::watch::write_barrier,
        ))
        .layer(axum::middleware::map_response(json_errors))
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(BodyLimit(limit)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A bug must not take the connection down with it: answer 500 and log.
fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    crate::error::ApiFailure::Internal("handler panicked".into()).into_response()
}

pub const INDEX_HEADER: HeaderName = HeaderName::from_static(weft_api::client::INDEX_HEADER);

/// A JSON body with the `X-Weft-Index` it was read at.
pub fn indexed<T: Serialize>(index: u64, body: &T) -> Response {
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(INDEX_HEADER, HeaderValue::from(index));
    response
}

/// A pre-serialized JSON body with its `X-Weft-Index`.
pub fn indexed_bytes(index: u64, body: axum::body::Bytes) -> Response {
    let mut response = (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    response
        .headers_mut()
        .insert(INDEX_HEADER, HeaderValue::from(index));
    response
}
