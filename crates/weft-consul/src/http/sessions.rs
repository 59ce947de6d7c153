//! Sessions: create, destroy, renew, info, node, list.

use super::*;

pub(super) async fn session_create<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    let id = c.session_create(&ctx.tenant, Obj::root(&value)?).await?;
    Ok(axum::Json(json!({ "ID": id })).into_response())
}

pub(super) async fn session_destroy<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    c.session_invalidate(&ctx.tenant, &id).await?;
    Ok(json_true())
}

pub(super) async fn session_renew<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    match c.session_renew(&ctx.tenant, &id).await? {
        Some((s, ci, mi)) => Ok(axum::Json(json!([session_json(&s, ci, mi)])).into_response()),
        None => Err(ConsulError::NotFound(format!(
            "Session id '{id}' not found"
        ))),
    }
}

pub(super) async fn sessions_where<S: KvStore + Clone>(
    c: &Consul<S>,
    ctx: &Ctx,
    keep: impl Fn(&crate::records::SessionRecord) -> bool,
) -> Reply {
    let watched = Watched::prefixes(vec![prefix(&ctx.tenant, "session")]);
    c.block(ctx, &watched).await?;
    let (index, sessions) = c.sessions(&ctx.tenant).await?;
    let items: Vec<Value> = sessions
        .iter()
        .filter(|(s, _, _)| keep(s))
        .map(|(s, ci, mi)| session_json(s, *ci, *mi))
        .collect();
    Ok(json_at(index, Value::Array(items)))
}

pub(super) async fn session_info<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    sessions_where(&c, &ctx, |s| s.id == id).await
}

pub(super) async fn session_node<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(node): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    sessions_where(&c, &ctx, |s| s.node == node).await
}

pub(super) async fn session_list<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    sessions_where(&c, &ctx, |_| true).await
}
