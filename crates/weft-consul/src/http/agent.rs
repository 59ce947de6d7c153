//! Agent: self, members, services and checks of the controller's own node, registration, TTL updates, maintenance; the rest answered as unsupported.

use super::health::tags_of;
use super::status::leader_addr;
use super::*;

pub(super) fn member<S>(c: &Consul<S>, name: String) -> Value {
    json!({
        "Name": name,
        "Addr": c.config.advertise.ip().to_string(),
        "Port": 8301,
        "Tags": {"dc": c.config.datacenter, "role": "consul", "build": "weft", "port": c.config.advertise.port().to_string()},
        "Status": 1,
        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    })
}

pub(super) async fn agent_self<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    let me = &c.config.node_name;
    Ok(axum::Json(json!({
        "Config": {
            "Datacenter": c.config.datacenter,
            "NodeName": me,
            "NodeID": crate::checks::stable_id(me),
            "Server": true,
            "Version": "1.22.0",
            "Revision": "weft",
            "BuildDate": "",
        },
        "DebugConfig": {},
        "Coord": null,
        "Member": member(&c, me.clone()),
        "Stats": {"consul": {"leader": "true", "leader_addr": leader_addr(&c), "server": "true"}},
        "Meta": {},
        "xDS": null,
    }))
    .into_response())
}

pub(super) async fn agent_members<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let me = c.config.node_name.clone();
    let name = if ctx.flag("wan") {
        format!("{me}.{}", c.config.datacenter)
    } else {
        me
    };
    Ok(axum::Json(json!([member(&c, name)])).into_response())
}

pub(super) async fn agent_reload<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    Ok(empty_ok())
}

pub(super) async fn agent_metrics<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    if ctx.get("format") == Some("prometheus") {
        return Ok((StatusCode::OK, String::new()).into_response());
    }
    Ok(axum::Json(json!({
        "Timestamp": format!("{}", now_ms() / 1000),
        "Gauges": [], "Points": [], "Counters": [], "Samples": [],
    }))
    .into_response())
}

pub(super) async fn agent_monitor<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let level = ctx.get("loglevel").unwrap_or("info");
    if !matches!(
        level.to_ascii_lowercase().as_str(),
        "trace" | "debug" | "info" | "warn" | "error"
    ) {
        return Err(ConsulError::BadRequest(format!(
            "Unknown log level: {level}"
        )));
    }
    Err(ConsulError::Refused(
        "log streaming is not served by weft's Consul API; read weft's logs".into(),
    ))
}

pub(super) async fn agent_force_leave<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(node): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    if !c.node_exists(&ctx.tenant, &node).await? {
        return Err(ConsulError::Refused(format!(
            "No node found with name '{node}'"
        )));
    }
    Err(ConsulError::Refused(
        "force-leave is not supported: weft nodes leave with `weft` node removal".into(),
    ))
}

pub(super) async fn agent_token<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    ctx(&c, &headers, params)?;
    Err(ConsulError::AclDisabled)
}

pub(super) async fn agent_maintenance<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let enable = enable_param(&ctx)?;
    c.maintenance(
        &ctx.tenant,
        None,
        enable,
        ctx.get("reason").unwrap_or_default(),
    )
    .await?;
    Ok(empty_ok())
}

pub(super) fn enable_param(ctx: &Ctx) -> Result<bool, ConsulError> {
    match ctx.get("enable") {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ConsulError::BadRequest(format!(
            "Invalid value for enable: {other:?}"
        ))),
        None => Err(ConsulError::BadRequest("Missing value for enable".into())),
    }
}

pub(super) async fn agent_services<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    c.hash_blocking(&ctx, |view| {
        let mut out = Map::new();
        for s in view
            .services
            .iter()
            .filter(|s| s.record.node == c.config.node_name && s.record.id != "consul")
        {
            let item = service_json(s, &c.config.datacenter);
            if keep(filter.as_ref(), &item) {
                out.insert(s.record.id.clone(), item);
            }
        }
        Value::Object(out)
    })
    .await
}

pub(super) async fn agent_service<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let view = c.view(&ctx.tenant).await?;
    view.services
        .iter()
        .find(|s| s.record.node == c.config.node_name && s.record.id == id && id != "consul")
        .map(|s| axum::Json(service_json(s, &c.config.datacenter)).into_response())
        .ok_or_else(|| ConsulError::NotFound(format!("unknown service ID: {id}")))
}

pub(super) async fn agent_service_register<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    c.agent_service_register(&ctx.tenant, Obj::root(&value)?)
        .await?;
    Ok(empty_ok())
}

pub(super) async fn agent_service_deregister<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let ops = c
        .service_removal(&ctx.tenant, &c.config.node_name, &id)
        .await?;
    c.store.txn(weft_store::Txn::new().and_then(ops)).await?;
    Ok(empty_ok())
}

pub(super) async fn agent_service_maintenance<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let enable = enable_param(&ctx)?;
    c.maintenance(
        &ctx.tenant,
        Some(&id),
        enable,
        ctx.get("reason").unwrap_or_default(),
    )
    .await?;
    Ok(empty_ok())
}

pub(super) async fn agent_checks<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let filter = ctx.filter()?;
    c.hash_blocking(&ctx, |view| {
        let mut out = Map::new();
        for ch in view
            .checks
            .iter()
            .filter(|ch| ch.record.node == c.config.node_name && ch.record.check_id != SERF_HEALTH)
        {
            let item = check_json(ch, &tags_of(view, &ch.record.node, &ch.record.service_id));
            if keep(filter.as_ref(), &item) {
                out.insert(ch.record.check_id.clone(), item);
            }
        }
        Value::Object(out)
    })
    .await
}

pub(super) async fn agent_check_register<S: KvStore + Clone>(
    State(c): Shared<S>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    c.agent_check_register(&ctx.tenant, Obj::root(&value)?)
        .await?;
    Ok(empty_ok())
}

pub(super) async fn agent_check_deregister<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let key = crate::records::check_key(&ctx.tenant, &c.config.node_name, &id);
    if c.store.delete(key.as_bytes()).await?.deleted() == 0 {
        return Err(ConsulError::NotFound(format!("Unknown check ID \"{id}\"")));
    }
    Ok(empty_ok())
}

pub(super) async fn set_check<S: KvStore + Clone>(
    c: &Consul<S>,
    ctx: &Ctx,
    id: &str,
    status: Status,
    output: Option<&str>,
) -> Reply {
    if c.agent_check_update(&ctx.tenant, id, status, output)
        .await?
    {
        Ok(empty_ok())
    } else {
        Err(ConsulError::NotFound(format!("Unknown check ID \"{id}\"")))
    }
}

/// `agent/check/pass|warn|fail/<id>?note=`: a TTL update.
pub(super) async fn check_ttl<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path((verb, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let status = match verb.as_str() {
        "pass" => Status::Passing,
        "warn" => Status::Warning,
        "fail" => Status::Critical,
        _ => {
            return Err(ConsulError::NotFound(format!(
                "no such check action {verb:?}"
            )));
        }
    };
    let ctx = ctx(&c, &headers, params)?;
    set_check(&c, &ctx, &id, status, ctx.get("note")).await
}

pub(super) async fn check_update<S: KvStore + Clone>(
    State(c): Shared<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let value = body::parse(&body)?;
    let obj = Obj::root(&value)?;
    let status = match obj.str("Status")? {
        Some(s) => Status::parse(s)
            .filter(|s| *s != Status::Maintenance)
            .ok_or_else(|| ConsulError::BadRequest(format!("Invalid check status: {s:?}")))?,
        None => return Err(ConsulError::BadRequest("Missing check status".into())),
    };
    let output = obj.string("Output")?;
    set_check(&c, &ctx, &id, status, Some(&output)).await
}
