//! Catalog: register, deregister, datacenters, nodes, node, services, service; Connect lists (empty).

use super::*;
use crate::catalog::{NodeView, ServiceView};

pub(super) async fn catalog_datacenters<S: KvStore + Clone>(State(c): Shared<S>) -> Reply {
    Ok(axum::Json(json!([c.config.datacenter])).into_response())
}

pub(super) async fn catalog_register<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    let obj = Obj::root(&value)?;
    check_datacenter(&c, obj)?;
    c.catalog_register(&ctx.tenant, obj).await?;
    Ok(json_true())
}

/// A catalog write names its datacenter in the body too.
pub(super) fn check_datacenter<S>(c: &Consul<S>, body: Obj<'_>) -> Result<(), ConsulError> {
    match body.str("Datacenter")? {
        Some(dc) if !dc.is_empty() && dc != c.config.datacenter => {
            Err(ConsulError::no_datacenter())
        }
        _ => Ok(()),
    }
}

pub(super) async fn catalog_deregister<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    let obj = Obj::root(&value)?;
    check_datacenter(&c, obj)?;
    c.catalog_deregister(&ctx.tenant, obj).await?;
    Ok(json_true())
}

pub(super) fn node_meta_matches(ctx: &Ctx, meta: &BTreeMap<String, String>) -> bool {
    ctx.all("node-meta").all(|pair| match pair.split_once(':') {
        Some((k, v)) => meta.get(k).is_some_and(|x| x == v),
        None => false,
    })
}

pub(super) async fn catalog_nodes<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let dc = &c.config.datacenter;
    let nodes: Vec<Value> = view
        .nodes
        .values()
        .filter(|n| node_meta_matches(&ctx, &n.meta))
        .map(|n| node_json(n, dc))
        .filter(|n| keep(filter.as_ref(), n))
        .collect();
    Ok(json_at(view.index, Value::Array(nodes)))
}

pub(super) async fn catalog_node<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(node): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let dc = &c.config.datacenter;
    let Some(n) = view.nodes.get(&node) else {
        return Ok(json_at(view.index, Value::Null));
    };
    let mut services = Map::new();
    for s in view.services.iter().filter(|s| s.record.node == node) {
        let item = service_json(s, dc);
        if keep(filter.as_ref(), &item) {
            services.insert(s.record.id.clone(), item);
        }
    }
    Ok(json_at(
        view.index,
        json!({"Node": node_json(n, dc), "Services": services}),
    ))
}

pub(super) async fn catalog_services<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    let view = c.blocking_view(&ctx).await?;
    let dc = &c.config.datacenter;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &view.services {
        let Some(n) = view.nodes.get(&s.record.node) else {
            continue;
        };
        if !node_meta_matches(&ctx, &n.meta) {
            continue;
        }
        if !keep(filter.as_ref(), &catalog_service_json(n, s, dc)) {
            continue;
        }
        let tags = out.entry(s.record.service.clone()).or_default();
        for t in &s.record.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
    }
    Ok(json_at(view.index, json!(out)))
}

pub(super) async fn catalog_service<S: KvStore + Clone>(
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
    let items: Vec<Value> = instances(&view, &ctx, &name)
        .into_iter()
        .map(|(n, s)| catalog_service_json(n, s, dc))
        .filter(|item| keep(filter.as_ref(), item))
        .collect();
    Ok(json_at(view.index, Value::Array(items)))
}

/// The instances of service `name` with their nodes, as `?tag=` (every one given) and
/// `?node-meta=` select them.
pub(super) fn instances<'v>(
    view: &'v View,
    ctx: &Ctx,
    name: &str,
) -> Vec<(&'v NodeView, &'v ServiceView)> {
    let tags: Vec<&str> = ctx.all("tag").collect();
    view.services
        .iter()
        .filter(|s| s.record.service == name)
        .filter(|s| tags.iter().all(|t| s.record.tags.iter().any(|x| x == t)))
        .filter_map(|s| {
            let n = view.nodes.get(&s.record.node)?;
            node_meta_matches(ctx, &n.meta).then_some((n, s))
        })
        .collect()
}

/// weft has no Connect: no service is Connect-capable, no gateway routes anything.
pub(super) async fn nothing_connect<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    ctx.filter()?;
    let index = c.store.current_revision().await?;
    Ok(json_at(crate::kv::rev(index), json!([])))
}
