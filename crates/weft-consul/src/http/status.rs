//! Status: the leader and peers (the controller).

use super::*;

/// The address Consul's raft would name: the controller's.
pub(super) fn leader_addr<S>(c: &Consul<S>) -> String {
    c.config.advertise.to_string()
}

pub(super) async fn status_leader<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    Ok(axum::Json(leader_addr(&c)).into_response())
}

pub(super) async fn status_peers<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    Ok(axum::Json(json!([leader_addr(&c)])).into_response())
}
