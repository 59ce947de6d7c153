//! Consul's KV semantics on weft's store: a Consul index is a store revision
//! (`CreateIndex` = create revision, `ModifyIndex` = mod revision), `cas` is a compare on
//! the mod revision, and locks are a session id in the entry, taken and given back in one
//! compare-and-swap transaction each.

use crate::error::ConsulError;
use crate::records::{KvRecord, kv_key, lock_key, prefix, session_key};
use crate::{Consul, now_ms};
use weft_store::{Compare, CompareOp, KeyValue, KvStore, Txn, TxnOp};

/// Consul's limit on one value.
pub const MAX_VALUE: usize = 512 * 1024;
/// Longest key accepted (Consul has no documented limit; this bounds the store key).
pub const MAX_KEY: usize = 2048;
/// Attempts of an optimistic write that keeps losing races before it gives up.
const ATTEMPTS: usize = 16;

/// One entry as read: its key (without the tenant prefix), store metadata and record.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub kv: KeyValue,
    pub record: KvRecord,
}

/// What a PUT asks for besides the value.
#[derive(Debug, Default, Clone)]
pub(crate) struct PutOptions<'a> {
    pub flags: Option<u64>,
    pub cas: Option<u64>,
    pub acquire: Option<&'a str>,
    pub release: Option<&'a str>,
}

/// Refuses keys Consul clients could not read back, or that could escape the tenant's
/// prefix when joined into a store key.
pub(crate) fn check_key(key: &str, allow_empty: bool) -> Result<(), ConsulError> {
    if key.is_empty() && !allow_empty {
        return Err(ConsulError::BadRequest("Missing key name".into()));
    }
    if key.len() > MAX_KEY {
        return Err(ConsulError::BadRequest(format!(
            "Key is {} bytes long, over the limit of {MAX_KEY}",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(ConsulError::BadRequest(
            "Key must not contain a NUL byte".into(),
        ));
    }
    if key.split('/').any(|segment| segment == "..") {
        return Err(ConsulError::BadRequest(
            "Key must not contain a \"..\" segment".into(),
        ));
    }
    Ok(())
}

fn decode(kv: &KeyValue) -> Result<KvRecord, ConsulError> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| ConsulError::Internal(format!("stored KV entry is unreadable: {e}")))
}

fn encode(record: &KvRecord) -> Result<Vec<u8>, ConsulError> {
    serde_json::to_vec(record).map_err(|e| ConsulError::Internal(e.to_string()))
}

impl<S: KvStore + Clone> Consul<S> {
    pub(crate) async fn kv_get(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<(u64, Option<Entry>), ConsulError> {
        let got = self.store.get(kv_key(tenant, key).as_bytes()).await?;
        let index = rev(got.revision);
        let entry = match got.kv {
            Some(kv) => Some(Entry {
                key: key.to_string(),
                record: decode(&kv)?,
                kv,
            }),
            None => None,
        };
        Ok((index, entry))
    }

    /// Every entry whose key starts with `key_prefix`, in key order.
    pub(crate) async fn kv_list(
        &self,
        tenant: &str,
        key_prefix: &str,
    ) -> Result<(u64, Vec<Entry>), ConsulError> {
        let root = prefix(tenant, "kv");
        let read = self
            .store
            .range(format!("{root}{key_prefix}").as_bytes(), None)
            .await?;
        let mut out = Vec::with_capacity(read.kvs.len());
        for kv in read.kvs {
            let key = String::from_utf8_lossy(&kv.key[root.len()..]).into_owned();
            out.push(Entry {
                key,
                record: decode(&kv)?,
                kv,
            });
        }
        Ok((rev(read.revision), out))
    }

    /// Writes `value` under `key` as Consul's PUT does; `Ok(false)` when a `cas`,
    /// `acquire` or `release` condition does not hold (nothing is written then).
    pub(crate) async fn kv_put(
        &self,
        tenant: &str,
        key: &str,
        value: &[u8],
        options: &PutOptions<'_>,
    ) -> Result<bool, ConsulError> {
        check_key(key, false)?;
        if value.len() > MAX_VALUE {
            return Err(ConsulError::TooLarge(format!(
                "value is {} bytes, over Consul's limit of {MAX_VALUE}",
                value.len()
            )));
        }
        let store_key = kv_key(tenant, key);
        for _ in 0..ATTEMPTS {
            let current = self.store.get(store_key.as_bytes()).await?.kv;
            let mod_revision = current.as_ref().map_or(0, |kv| kv.mod_revision);
            if let Some(cas) = options.cas
                && u64::try_from(mod_revision).unwrap_or(0) != cas
            {
                return Ok(false);
            }
            let old = current.as_ref().map(decode).transpose()?;
            let old_len = old.as_ref().map(|r| r.value.len());
            self.admit_kv(tenant, old_len, value.len()).await?;
            let mut record = old.clone().unwrap_or_default();
            record.value = value.to_vec();
            record.flags = options.flags.unwrap_or(0);
            let mut guards = vec![Compare::mod_revision(
                store_key.as_bytes(),
                CompareOp::Equal,
                mod_revision,
            )];
            let mut ops = Vec::new();
            if let Some(session) = options.acquire {
                let session_store_key = session_key(tenant, session);
                if self
                    .store
                    .get(session_store_key.as_bytes())
                    .await?
                    .kv
                    .is_none()
                {
                    return Err(ConsulError::Refused(format!(
                        "invalid session \"{session}\""
                    )));
                }
                match &record.session {
                    Some(holder) if holder == session => {}
                    Some(_) => return Ok(false),
                    None if record.lock_delay_until_ms > now_ms() => return Ok(false),
                    None => {
                        record.session = Some(session.to_string());
                        record.lock_index += 1;
                        ops.push(TxnOp::put(lock_key(tenant, session, key).as_bytes(), []));
                    }
                }
                // The session must still exist when the lock is taken.
                guards.push(Compare::version(
                    session_store_key.as_bytes(),
                    CompareOp::Greater,
                    0,
                ));
            } else if let Some(session) = options.release {
                if record.session.as_deref() != Some(session) {
                    return Ok(false);
                }
                record.session = None;
                ops.push(TxnOp::delete(lock_key(tenant, session, key).as_bytes()));
            }
            ops.push(TxnOp::put(store_key.as_bytes(), encode(&record)?));
            let txn = Txn::new().when(guards).and_then(ops);
            if self.store.txn(txn).await?.succeeded {
                let grown = value.len() as isize - old_len.unwrap_or(0) as isize;
                self.usage
                    .adjust(tenant, isize::from(old_len.is_none()), grown);
                return Ok(true);
            }
            if options.cas.is_some() {
                // Someone wrote in between: the index the client held is stale.
                return Ok(false);
            }
        }
        Err(ConsulError::Refused(format!(
            "key \"{key}\" kept changing; retry"
        )))
    }

    /// Deletes `key` (or every key under it with `recurse`); `cas` guards a single key.
    pub(crate) async fn kv_delete(
        &self,
        tenant: &str,
        key: &str,
        recurse: bool,
        cas: Option<u64>,
    ) -> Result<bool, ConsulError> {
        check_key(key, recurse)?;
        let store_key = kv_key(tenant, key);
        // What went, for the tenant's usage (see quota).
        let released = |gone: &weft_store::DeleteResponse| {
            let bytes: usize = gone
                .prev_kvs
                .iter()
                .map(|kv| decode(kv).map_or(0, |r| r.value.len()))
                .sum();
            self.usage
                .adjust(tenant, -(gone.deleted() as isize), -(bytes as isize));
        };
        if recurse {
            released(&self.store.delete_prefix(store_key.as_bytes()).await?);
            return Ok(true);
        }
        let Some(cas) = cas else {
            released(&self.store.delete(store_key.as_bytes()).await?);
            return Ok(true);
        };
        let cas = i64::try_from(cas).unwrap_or(i64::MAX);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                store_key.as_bytes(),
                CompareOp::Equal,
                cas,
            )])
            .and_then([TxnOp::delete(store_key.as_bytes())]);
        let deleted = self.store.txn(txn).await?.succeeded;
        if deleted {
            // The size of what went is not at hand: count again next time.
            self.usage.forget(tenant);
        }
        Ok(deleted)
    }
}

/// A store revision as a Consul index.
pub(crate) fn rev(revision: i64) -> u64 {
    u64::try_from(revision).unwrap_or(0)
}

/// The keys under `key_prefix`, cut after the first `separator` past the prefix and
/// deduplicated, as `?keys&separator=` lists them.
pub(crate) fn list_keys(
    entries: &[Entry],
    key_prefix: &str,
    separator: Option<&str>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for entry in entries {
        let key = match separator.filter(|s| !s.is_empty()) {
            Some(sep) => match entry.key[key_prefix.len()..].find(sep) {
                Some(at) => entry.key[..key_prefix.len() + at + sep.len()].to_string(),
                None => entry.key.clone(),
            },
            None => entry.key.clone(),
        };
        if out.last() != Some(&key) {
            out.push(key);
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_or_cannot_be_read_back_are_refused() {
        assert!(check_key("a/b", false).is_ok());
        assert!(check_key("", false).is_err());
        assert!(check_key("", true).is_ok());
        assert!(check_key("a/../b", false).is_err());
        assert!(check_key("..", false).is_err());
        assert!(check_key("a/..b", false).is_ok());
        assert!(check_key("a\0b", false).is_err());
        assert!(check_key(&"k".repeat(MAX_KEY + 1), false).is_err());
    }
}
