//! Sessions: named holders of KV locks, with a TTL that must be renewed and a
//! lock-delay. Invalidating a session (destroy, or a missed renewal) releases or deletes
//! every key it holds, per its behavior, in the same transaction that removes it.

use crate::body::{Obj, format_duration};
use crate::catalog::{SERF_HEALTH, View};
use crate::error::ConsulError;
use crate::kv::rev;
use crate::records::Status;
use crate::records::{Behavior, KvRecord, SessionRecord, kind_prefix, kv_key, prefix, session_key};
use crate::{Consul, now_ms, uuid};
use serde_json::{Value, json};
use std::time::Duration;
use weft_store::{Compare, CompareOp, KvStore, Txn, TxnOp};

/// Consul's bounds on a session TTL.
const MIN_TTL: Duration = Duration::from_secs(10);
const MAX_TTL: Duration = Duration::from_secs(86_400);
/// Consul's default and largest lock-delay.
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a session's node exists and none of its node or service checks is critical; the reason
/// if not. The controller's own node is always healthy.
fn unhealthy(view: &View, s: &SessionRecord) -> Result<(), String> {
    if !view.nodes.contains_key(&s.node) {
        return Err(format!("node {:?} is not in the catalog", s.node));
    }
    for check in &s.node_checks {
        let found = view
            .checks
            .iter()
            .find(|c| c.record.node == s.node && &c.record.check_id == check);
        match found {
            // A node registered through the catalog has no serfHealth of its own.
            None if check == SERF_HEALTH => {}
            None => return Err(format!("check {check:?} of node {:?} is missing", s.node)),
            Some(c) if c.record.status == Status::Critical => {
                return Err(format!("check {check:?} of node {:?} is critical", s.node));
            }
            Some(_) => {}
        }
    }
    // Consul's ServiceChecks: `[{"ID": "service:web", "Namespace": ""}]`, checks of
    // services on the session's node; a critical or missing one ends the session.
    for item in &s.service_checks {
        let id = item
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("id")))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default();
        let found = view
            .checks
            .iter()
            .find(|c| c.record.node == s.node && c.record.check_id == id);
        match found {
            None => {
                return Err(format!(
                    "service check {id:?} of node {:?} is missing",
                    s.node
                ));
            }
            Some(c) if c.record.status == Status::Critical => {
                return Err(format!(
                    "service check {id:?} of node {:?} is critical",
                    s.node
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn decode(bytes: &[u8]) -> Result<SessionRecord, ConsulError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ConsulError::Internal(format!("stored session is unreadable: {e}")))
}

/// A session as Consul answers it.
pub(crate) fn session_json(s: &SessionRecord, create_index: u64, modify_index: u64) -> Value {
    json!({
        "ID": s.id,
        "Name": s.name,
        "Node": s.node,
        "LockDelay": s.lock_delay_ms.saturating_mul(1_000_000),
        "Behavior": match s.behavior { Behavior::Release => "release", Behavior::Delete => "delete" },
        "TTL": s.ttl_ms.map_or(String::new(), |t| format_duration(Duration::from_millis(t))),
        "NodeChecks": s.node_checks,
        "ServiceChecks": if s.service_checks.is_empty() { Value::Null } else { Value::from(s.service_checks.clone()) },
        "Checks": s.node_checks,
        "CreateIndex": create_index,
        "ModifyIndex": modify_index,
    })
}

impl<S: KvStore + Clone> Consul<S> {
    pub(crate) async fn session_create(
        &self,
        tenant: &str,
        body: Obj<'_>,
    ) -> Result<String, ConsulError> {
        let node = body
            .str("Node")?
            .map_or_else(|| self.config.node_name.clone(), str::to_string);
        if !self.node_exists(tenant, &node).await? {
            return Err(ConsulError::Refused(format!(
                "Missing node registration: node \"{node}\" is not in the catalog"
            )));
        }
        let ttl = body.duration("TTL")?;
        if let Some(ttl) = ttl
            && !(MIN_TTL..=MAX_TTL).contains(&ttl)
        {
            return Err(ConsulError::BadRequest(format!(
                "Invalid Session TTL '{}', must be between [10s=24h0m0s]",
                format_duration(ttl)
            )));
        }
        let lock_delay = body.duration("LockDelay")?.unwrap_or(DEFAULT_LOCK_DELAY);
        if lock_delay > MAX_LOCK_DELAY {
            return Err(ConsulError::BadRequest(
                "LockDelay must be at most 60s".into(),
            ));
        }
        let behavior = match body.str("Behavior")?.unwrap_or("release") {
            "release" | "" => Behavior::Release,
            "delete" => Behavior::Delete,
            other => {
                return Err(ConsulError::BadRequest(format!(
                    "Behavior must be \"release\" or \"delete\", not {other:?}"
                )));
            }
        };
        let mut node_checks = body.strings("NodeChecks")?;
        node_checks.extend(body.strings("Checks")?);
        if body.get("NodeChecks").is_none() && body.get("Checks").is_none() {
            node_checks.push("serfHealth".into());
        }
        let service_checks = match body.get("ServiceChecks") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        let probe = SessionRecord {
            id: String::new(),
            name: String::new(),
            node: node.clone(),
            lock_delay_ms: 0,
            behavior,
            ttl_ms: None,
            expires_ms: None,
            node_checks: node_checks.clone(),
            service_checks: service_checks.clone(),
        };
        unhealthy(&self.view(tenant).await?, &probe)
            .map_err(|why| ConsulError::Refused(format!("cannot create the session: {why}")))?;
        let record = SessionRecord {
            id: uuid(),
            name: body.string("Name")?,
            node,
            lock_delay_ms: ms(lock_delay),
            behavior,
            ttl_ms: ttl.map(ms),
            expires_ms: ttl.map(|t| now_ms().saturating_add(ms(t))),
            node_checks,
            service_checks,
        };
        let bytes =
            serde_json::to_vec(&record).map_err(|e| ConsulError::Internal(e.to_string()))?;
        let key = session_key(tenant, &record.id);
        self.admit_new(tenant, "session", &key, self.config.quota.sessions)
            .await?;
        let txn = Txn::new()
            .when([Compare::absent(key.as_bytes())])
            .and_then([TxnOp::put(key.as_bytes(), bytes)]);
        if !self.store.txn(txn).await?.succeeded {
            return Err(ConsulError::Internal("session id collision".into()));
        }
        Ok(record.id)
    }

    /// Every session of `tenant` with its create and modify index, in id order.
    pub(crate) async fn sessions(
        &self,
        tenant: &str,
    ) -> Result<(u64, Vec<(SessionRecord, u64, u64)>), ConsulError> {
        let read = self
            .store
            .range(prefix(tenant, "session").as_bytes(), None)
            .await?;
        let mut out = Vec::with_capacity(read.kvs.len());
        for kv in &read.kvs {
            out.push((
                decode(&kv.value)?,
                rev(kv.create_revision),
                rev(kv.mod_revision),
            ));
        }
        Ok((rev(read.revision), out))
    }

    /// Restarts a session's TTL; `None` if there is no such session.
    pub(crate) async fn session_renew(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(SessionRecord, u64, u64)>, ConsulError> {
        let key = session_key(tenant, id);
        for _ in 0..8 {
            let Some(kv) = self.store.get(key.as_bytes()).await?.kv else {
                return Ok(None);
            };
            let mut record = decode(&kv.value)?;
            let Some(ttl) = record.ttl_ms else {
                return Ok(Some((
                    record,
                    rev(kv.create_revision),
                    rev(kv.mod_revision),
                )));
            };
            record.expires_ms = Some(now_ms().saturating_add(ttl));
            let bytes =
                serde_json::to_vec(&record).map_err(|e| ConsulError::Internal(e.to_string()))?;
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.as_bytes(),
                    CompareOp::Equal,
                    kv.mod_revision,
                )])
                .and_then([TxnOp::put(key.as_bytes(), bytes)]);
            let done = self.store.txn(txn).await?;
            if done.succeeded {
                return Ok(Some((record, rev(kv.create_revision), rev(done.revision))));
            }
        }
        Err(ConsulError::Refused("session kept changing; retry".into()))
    }

    /// Destroys a session: its locks are released (with the lock-delay) or their keys
    /// deleted, in one transaction with the session's removal. `false` if it did not exist.
    pub(crate) async fn session_invalidate(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<bool, ConsulError> {
        let key = session_key(tenant, id);
        for _ in 0..8 {
            let Some(session_kv) = self.store.get(key.as_bytes()).await?.kv else {
                return Ok(false);
            };
            let session = decode(&session_kv.value)?;
            let locks = format!("{}{id}/", prefix(tenant, "lock"));
            let held = self.store.range(locks.as_bytes(), None).await?;
            let mut guards = vec![Compare::mod_revision(
                key.as_bytes(),
                CompareOp::Equal,
                session_kv.mod_revision,
            )];
            let mut ops = vec![
                TxnOp::delete(key.as_bytes()),
                TxnOp::delete_prefix(locks.as_bytes()),
            ];
            let delay_until = now_ms().saturating_add(session.lock_delay_ms);
            for lock in &held.kvs {
                let name = String::from_utf8_lossy(&lock.key[locks.len()..]).into_owned();
                let (_, Some(entry)) = self.kv_get(tenant, &name).await? else {
                    continue;
                };
                if entry.record.session.as_deref() != Some(id) {
                    continue;
                }
                let entry_key = kv_key(tenant, &name);
                guards.push(Compare::mod_revision(
                    entry_key.as_bytes(),
                    CompareOp::Equal,
                    entry.kv.mod_revision,
                ));
                match session.behavior {
                    Behavior::Delete => ops.push(TxnOp::delete(entry_key.as_bytes())),
                    Behavior::Release => {
                        let record = KvRecord {
                            session: None,
                            lock_delay_until_ms: delay_until,
                            ..entry.record.clone()
                        };
                        let bytes = serde_json::to_vec(&record)
                            .map_err(|e| ConsulError::Internal(e.to_string()))?;
                        ops.push(TxnOp::put(entry_key.as_bytes(), bytes));
                    }
                }
            }
            if self
                .store
                .txn(Txn::new().when(guards).and_then(ops))
                .await?
                .succeeded
            {
                tracing::debug!(tenant, session = id, "session invalidated");
                if session.behavior == Behavior::Delete && !held.kvs.is_empty() {
                    self.usage.forget(tenant);
                }
                return Ok(true);
            }
        }
        Err(ConsulError::Refused("session kept changing; retry".into()))
    }

    /// Invalidates every session whose TTL ran out, whose node left, or one of whose
    /// checks is critical (Consul's rule: a session lives only while its node and its
    /// health checks do, so a lock held by a dead node's task is released). Returns how
    /// many.
    pub(crate) async fn expire_sessions(&self) -> Result<usize, ConsulError> {
        let root = kind_prefix("session");
        let read = self.store.range(root.as_bytes(), None).await?;
        let now = now_ms();
        let mut views = std::collections::HashMap::new();
        let mut expired = Vec::new();
        for kv in &read.kvs {
            let key = String::from_utf8_lossy(&kv.key[root.len()..]).into_owned();
            let Some((tenant, id)) = key.split_once('/') else {
                continue;
            };
            let Ok(session) = decode(&kv.value) else {
                continue;
            };
            let why = if session.expires_ms.is_some_and(|at| at <= now) {
                Some("its TTL expired".to_string())
            } else {
                if !views.contains_key(tenant) {
                    views.insert(tenant.to_string(), self.view(tenant).await?);
                }
                let view = &views[tenant];
                unhealthy(view, &session).err()
            };
            if let Some(why) = why {
                tracing::info!(tenant, session = id, why, "session invalidated");
                expired.push((tenant.to_string(), id.to_string()));
            }
        }
        for (tenant, id) in &expired {
            self.session_invalidate(tenant, id).await?;
        }
        Ok(expired.len())
    }
}
