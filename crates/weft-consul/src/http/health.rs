//! Health: service (passing, tag), checks, state, node; and weft's own explain of what an asker is told.

use super::catalog::instances;
use super::*;

pub(super) fn tags_of(view: &View, node: &str, service_id: &str) -> Vec<String> {
    view.services
        .iter()
        .find(|s| s.record.node == node && s.record.id == service_id)
        .map(|s| s.record.tags.clone())
        .unwrap_or_default()
}

pub(super) async fn health_service<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    if ctx.get("peer").is_some_and(|p| !p.is_empty()) {
        return Ok(json_at(view.index, json!([])));
    }
    let dc = &c.config.datacenter;
    let passing = ctx.flag("passing");
    let mut out = Vec::new();
    for (n, s) in instances(&view, &ctx, &name) {
        let checks: Vec<&CheckView> = view.checks_of(s).collect();
        if passing && checks.iter().any(|ch| ch.record.status != Status::Passing) {
            continue;
        }
        let item = json!({
            "Node": node_json(n, dc),
            "Service": service_json(s, dc),
            "Checks": checks.iter().map(|ch| check_json(ch, if ch.record.service_id.is_empty() { &[] } else { &s.record.tags })).collect::<Vec<_>>(),
        });
        if keep(filter.as_ref(), &item) {
            out.push(item);
        }
    }
    Ok(json_at(view.index, Value::Array(out)))
}

pub(super) fn checks_where(
    view: &View,
    filter: Option<&Expr>,
    pick: impl Fn(&CheckView) -> bool,
) -> Value {
    Value::Array(
        view.checks
            .iter()
            .filter(|ch| pick(ch))
            .map(|ch| check_json(ch, &tags_of(view, &ch.record.node, &ch.record.service_id)))
            .filter(|item| keep(filter, item))
            .collect(),
    )
}

pub(super) async fn health_checks<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let items = checks_where(&view, filter.as_ref(), |ch| ch.record.service_name == name);
    Ok(json_at(view.index, items))
}

pub(super) async fn health_state<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(state): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let wanted = match state.as_str() {
        "any" => None,
        other => Some(Status::parse(other).ok_or_else(|| {
            ConsulError::BadRequest(format!(
                "Invalid state {other:?}: must be any, passing, warning or critical"
            ))
        })?),
    };
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let items = checks_where(&view, filter.as_ref(), |ch| {
        wanted.is_none_or(|w| ch.record.status == w)
    });
    Ok(json_at(view.index, items))
}

pub(super) async fn health_node<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(node): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let items = checks_where(&view, filter.as_ref(), |ch| ch.record.node == node);
    Ok(json_at(view.index, items))
}

/// `GET /v1/weft/explain/<service>?vrf=<vrf>&source=<ip>`: every instance of the service
/// with whether an endpoint asking from `source` in `vrf` is told of it, and why.
pub(super) async fn weft_explain<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(service): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let asker = match (ctx.get("vrf"), ctx.get("source")) {
        (Some(vrf), Some(source)) => {
            let ip = source.parse().map_err(|_| {
                ConsulError::BadRequest(format!("source {source:?} is not an IP address"))
            })?;
            Some(c.asker(vrf, ip).ok_or_else(|| {
                ConsulError::NotFound(format!("no endpoint has address {source} in {vrf}"))
            })?)
        }
        (None, None) => None,
        _ => {
            return Err(ConsulError::BadRequest(
                "give both vrf and source, or neither".into(),
            ));
        }
    };
    let decisions = c
        .decide_service(&ctx.tenant, &service, asker.as_ref())
        .await?;
    let items: Vec<Value> = decisions
        .iter()
        .map(|d| json!({"ID": d.id, "Node": d.node, "Address": d.address, "Port": d.port, "Shown": d.shown, "Why": d.why}))
        .collect();
    Ok(axum::Json(json!({
        "Asker": asker.map(|a| json!({"Endpoint": a.endpoint, "EPG": a.epg, "VRF": a.vrf})),
        "Instances": items,
    }))
    .into_response())
}
