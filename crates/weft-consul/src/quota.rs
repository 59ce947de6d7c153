//! What one tenant may keep in the adapter: KV keys and bytes, registered services and
//! sessions. Checked before a write creates something new, so a tenant that is over a
//! limit can still update and delete what it has.
//!
//! Services and sessions are counted in the store at admission (a bounded read: at most
//! the limit plus one record). KV usage is kept in memory per tenant, taken from one
//! scan of the tenant's keys when first needed and adjusted by every write through this
//! adapter; deletes of many keys at once (recursive deletes, session invalidation) drop
//! it, and it is taken again after [`USAGE_MAX_AGE_MS`] in any case, so other writers (a
//! second controller) are seen within that time.

use crate::error::ConsulError;
use crate::records::prefix;
use crate::{Consul, now_ms};
use std::collections::HashMap;
use std::sync::Mutex;
use weft_store::KvStore;

/// How old the remembered KV usage of a tenant may get before it is counted again.
pub const USAGE_MAX_AGE_MS: u64 = 60_000;

/// Per-tenant limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub kv_keys: usize,
    pub kv_bytes: usize,
    pub services: usize,
    pub sessions: usize,
}

impl Default for Quota {
    /// 100,000 keys and 256 MiB of values, 10,000 services and 10,000 sessions.
    fn default() -> Self {
        Self {
            kv_keys: 100_000,
            kv_bytes: 256 * 1024 * 1024,
            services: 10_000,
            sessions: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct KvUsage {
    keys: usize,
    bytes: usize,
    taken_ms: u64,
}

/// The remembered KV usage of each tenant.
#[derive(Debug, Default)]
pub(crate) struct Usage(Mutex<HashMap<String, KvUsage>>);

impl Usage {
    fn get(&self, tenant: &str) -> Option<KvUsage> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(tenant)
            .copied()
            .filter(|u| now_ms().saturating_sub(u.taken_ms) < USAGE_MAX_AGE_MS)
    }

    /// A write through this adapter changed the tenant's usage.
    pub(crate) fn adjust(&self, tenant: &str, keys: isize, bytes: isize) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = map.get_mut(tenant) {
            u.keys = u.keys.saturating_add_signed(keys);
            u.bytes = u.bytes.saturating_add_signed(bytes);
        }
    }

    /// Many keys went at once: count again next time.
    pub(crate) fn forget(&self, tenant: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
    }
}

impl<S: KvStore + Clone> Consul<S> {
    async fn kv_usage(&self, tenant: &str) -> Result<KvUsage, ConsulError> {
        if let Some(u) = self.usage.get(tenant) {
            return Ok(u);
        }
        let read = self
            .store
            .range(prefix(tenant, "kv").as_bytes(), None)
            .await?;
        let u = KvUsage {
            keys: read.kvs.len(),
            bytes: read.kvs.iter().map(|kv| kv.value.len()).sum(),
            taken_ms: now_ms(),
        };
        self.usage
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string(), u);
        Ok(u)
    }

    /// Whether `tenant` may write a value of `new_len` bytes where `old_len` bytes are
    /// (`None`: a new key).
    pub(crate) async fn admit_kv(
        &self,
        tenant: &str,
        old_len: Option<usize>,
        new_len: usize,
    ) -> Result<(), ConsulError> {
        let quota = self.config.quota;
        let u = self.kv_usage(tenant).await?;
        if old_len.is_none() && u.keys >= quota.kv_keys {
            return Err(ConsulError::TooLarge(format!(
                "tenant {tenant} holds {} keys, its limit; delete some first",
                u.keys
            )));
        }
        let after = u.bytes.saturating_sub(old_len.unwrap_or(0)) + new_len;
        if new_len > old_len.unwrap_or(0) && after > quota.kv_bytes {
            return Err(ConsulError::TooLarge(format!(
                "tenant {tenant} would hold {after} bytes of values, over its limit of {}",
                quota.kv_bytes
            )));
        }
        Ok(())
    }

    /// Whether `tenant` may create one more record under `kind` (`service`, `session`)
    /// where `key` does not exist yet.
    pub(crate) async fn admit_new(
        &self,
        tenant: &str,
        kind: &str,
        key: &str,
        limit: usize,
    ) -> Result<(), ConsulError> {
        if self.store.get(key.as_bytes()).await?.kv.is_some() {
            return Ok(());
        }
        let read = self
            .store
            .range(prefix(tenant, kind).as_bytes(), Some(limit + 1))
            .await?;
        if read.kvs.len() >= limit {
            return Err(ConsulError::TooLarge(format!(
                "tenant {tenant} has {limit} {kind} records, its limit; remove some first"
            )));
        }
        Ok(())
    }
}
