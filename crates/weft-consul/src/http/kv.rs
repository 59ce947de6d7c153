//! KV: get (one key, recurse, keys with a separator, raw), put (cas, flags, acquire, release) and delete.

use super::*;

pub(super) async fn kv_get<S: KvStore + Clone>(
    State(c): Shared<S>,
    key: Option<Path<String>>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let key = key.map(|Path(k)| k).unwrap_or_default();
    let recurse = ctx.has("recurse");
    let keys = ctx.has("keys");
    crate::kv::check_key(&key, recurse || keys)?;
    // One key wakes only on itself; a listing on every key under it.
    let watched = Watched {
        keys: vec![format!("{}{key}", prefix(&ctx.tenant, "kv"))],
        exact: !(recurse || keys),
    };
    c.block(&ctx, &watched).await?;
    if keys {
        let (index, entries) = c.kv_list(&ctx.tenant, &key).await?;
        if entries.is_empty() {
            return Ok(not_found_at(index));
        }
        let names = list_keys(&entries, &key, ctx.get("separator"));
        return Ok(json_at(index, json!(names)));
    }
    if recurse {
        let (index, entries) = c.kv_list(&ctx.tenant, &key).await?;
        if entries.is_empty() {
            return Ok(not_found_at(index));
        }
        let items: Vec<Value> = entries.iter().map(entry_json).collect();
        return Ok(json_at(index, Value::Array(items)));
    }
    let (index, entry) = c.kv_get(&ctx.tenant, &key).await?;
    let Some(entry) = entry else {
        return Ok(not_found_at(index));
    };
    if ctx.has("raw") {
        return Ok(indexed(index, StatusCode::OK, entry.record.value));
    }
    Ok(json_at(index, json!([entry_json(&entry)])))
}

pub(super) fn entry_json(e: &crate::kv::Entry) -> Value {
    let mut m = Map::new();
    m.insert("LockIndex".into(), e.record.lock_index.into());
    m.insert("Key".into(), e.key.clone().into());
    m.insert("Flags".into(), e.record.flags.into());
    m.insert(
        "Value".into(),
        if e.record.value.is_empty() {
            Value::Null
        } else {
            STANDARD.encode(&e.record.value).into()
        },
    );
    if let Some(s) = &e.record.session {
        m.insert("Session".into(), s.clone().into());
    }
    m.insert(
        "CreateIndex".into(),
        crate::kv::rev(e.kv.create_revision).into(),
    );
    m.insert(
        "ModifyIndex".into(),
        crate::kv::rev(e.kv.mod_revision).into(),
    );
    Value::Object(m)
}

pub(super) async fn kv_put<S: KvStore + Clone>(
    State(c): Shared<S>,
    key: Option<Path<String>>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let key = key.map(|Path(k)| k).unwrap_or_default();
    let options = PutOptions {
        flags: ctx.u64("flags")?,
        cas: ctx.u64("cas")?,
        acquire: ctx.get("acquire"),
        release: ctx.get("release"),
    };
    Ok(boolean(c.kv_put(&ctx.tenant, &key, &body, &options).await?))
}

pub(super) async fn kv_delete<S: KvStore + Clone>(
    State(c): Shared<S>,
    key: Option<Path<String>>,
    headers: HeaderMap,
    params: Params,
) -> Reply {
    let ctx = ctx(&c, &headers, params)?;
    let key = key.map(|Path(k)| k).unwrap_or_default();
    let recurse = ctx.has("recurse");
    Ok(boolean(
        c.kv_delete(&ctx.tenant, &key, recurse, ctx.u64("cas")?)
            .await?,
    ))
}
