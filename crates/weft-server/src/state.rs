//! The in-memory snapshot of everything stored: model, compiled policy, nodes, endpoints and
//! tenant tokens, at one store revision. Built once from a range read at start, then kept
//! current by the store watch ([`crate::watch`]); handlers read it without touching the store.

use crate::apps::{DeploymentRecord, TaskRecord};
use crate::keys;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use weft_api::{AddressPair, MacAddr, NodeRegistration};
use weft_compiler::{Allocation, CompiledPolicy};
use weft_model::{EpgPath, Model, ObjectPath, Tenant};
use weft_store::{EventKind, KeyValue, WatchEvent};

/// A stored value with the revision of its last write.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub value: T,
    pub revision: u64,
}

/// An endpoint as stored: the wire [`weft_api::Endpoint`] without its derived status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub name: String,
    pub epg: EpgPath,
    pub node: String,
    pub netns: String,
    /// The interface's number in `netns` (`weft<n>`); 0, the default, has the default
    /// route. A task in several networks has one endpoint per network in one namespace.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interface: u8,
    pub ip: IpAddr,
    pub prefix_len: u8,
    pub gateway: IpAddr,
    pub mac: MacAddr,
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Port security (anti-spoofing) on; see [`weft_api::Endpoint::port_security`].
    #[serde(default = "port_security_default")]
    pub port_security: bool,
    /// Security groups of the endpoint's tenant; `None`: contracts alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    /// The VRF whose address space holds `ip`: needed to free the claim even after the
    /// EPG moved or vanished.
    pub vrf: ObjectPath,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

fn port_security_default() -> bool {
    true
}

/// An admin's allowance for a tenant to run privileged tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivilegeGrant {
    /// When it was allowed (Unix milliseconds).
    pub since_ms: u64,
}

/// What a tenant token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    pub tenant: String,
    /// Unix milliseconds from which the token is refused (Keystone's tokens expire);
    /// `None`: it never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

impl TokenGrant {
    /// Whether the grant still holds at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|expires| now_ms < expires)
    }
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The store revision this snapshot reflects.
    pub revision: u64,
    /// `mod_revision` of the allocation key: the version of the whole policy.
    pub policy_revision: u64,
    /// Last revision that changed what agents program (policy, nodes, endpoints).
    pub desired_revision: u64,
    pub model: Arc<Model>,
    pub tenant_revisions: Arc<BTreeMap<String, u64>>,
    pub allocation: Arc<Allocation>,
    pub policy: Arc<CompiledPolicy>,
    pub nodes: Arc<BTreeMap<String, Stored<NodeRegistration>>>,
    pub endpoints: Arc<BTreeMap<String, Stored<EndpointRecord>>>,
    /// Token hash → grant.
    pub tokens: Arc<HashMap<String, TokenGrant>>,
    /// App specs by id; `revision` is the app's version.
    pub apps: Arc<BTreeMap<String, Stored<weft_app::AppSpec>>>,
    /// Instance counts by app id.
    pub instances: Arc<BTreeMap<String, u32>>,
    pub deployments: Arc<BTreeMap<String, Stored<DeploymentRecord>>>,
    pub tasks: Arc<BTreeMap<String, Stored<TaskRecord>>>,
    /// Tenants allowed to run privileged tasks ([`keys::PRIVILEGE`]).
    pub privileged: Arc<BTreeMap<String, Stored<PrivilegeGrant>>>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            revision: 0,
            policy_revision: 0,
            desired_revision: 0,
            model: Arc::default(),
            tenant_revisions: Arc::default(),
            allocation: Arc::default(),
            policy: Arc::new(CompiledPolicy {
                vrfs: BTreeMap::new(),
                epgs: BTreeMap::new(),
                allocation: Allocation::default(),
                security_groups: BTreeMap::new(),
            }),
            nodes: Arc::default(),
            endpoints: Arc::default(),
            tokens: Arc::default(),
            apps: Arc::default(),
            instances: Arc::default(),
            deployments: Arc::default(),
            tasks: Arc::default(),
            privileged: Arc::default(),
        }
    }
}

impl Snapshot {
    /// Builds the snapshot from a full range read of [`keys::ROOT`].
    pub fn load(kvs: &[KeyValue], revision: u64) -> Self {
        let mut snapshot = Snapshot {
            revision,
            ..Snapshot::default()
        };
        for kv in kvs {
            snapshot.put(kv);
        }
        snapshot.recompile();
        snapshot
    }

    /// Applies one watch event; returns whether the policy must be recompiled.
    pub fn apply(&mut self, event: &WatchEvent) -> bool {
        let revision = as_revision(event.revision());
        self.revision = self.revision.max(revision);
        let key = String::from_utf8_lossy(&event.kv.key);
        let policy = key.starts_with(keys::POLICY);
        if policy
            || key.starts_with(keys::NODES)
            || key.starts_with(keys::ENDPOINTS)
            || key.starts_with(keys::TASKS)
        {
            self.desired_revision = self.desired_revision.max(revision);
        }
        match event.kind {
            EventKind::Put => self.put(&event.kv),
            EventKind::Delete => self.delete(&key),
        }
        policy
    }

    fn put(&mut self, kv: &KeyValue) {
        let key = String::from_utf8_lossy(&kv.key);
        let revision = as_revision(kv.mod_revision);
        if let Some(name) = key.strip_prefix(keys::TENANTS) {
            match decode_tenant(name, &kv.value) {
                Ok(tenant) => {
                    Arc::make_mut(&mut self.model)
                        .tenants
                        .insert(name.to_string(), tenant);
                    Arc::make_mut(&mut self.tenant_revisions).insert(name.to_string(), revision);
                }
                Err(why) => tracing::error!(%key, %why, "stored tenant is unreadable; skipped"),
            }
        } else if key == keys::ALLOCATION {
            match serde_json::from_slice(&kv.value) {
                Ok(allocation) => {
                    self.allocation = Arc::new(allocation);
                    self.policy_revision = revision;
                }
                Err(why) => tracing::error!(%key, %why, "stored allocation is unreadable"),
            }
        } else if let Some(name) = key.strip_prefix(keys::NODES) {
            match serde_json::from_slice(&kv.value) {
                Ok(value) => {
                    Arc::make_mut(&mut self.nodes)
                        .insert(name.to_string(), Stored { value, revision });
                }
                Err(why) => tracing::error!(%key, %why, "stored node is unreadable; skipped"),
            }
        } else if let Some(name) = key.strip_prefix(keys::ENDPOINTS) {
            match serde_json::from_slice(&kv.value) {
                Ok(value) => {
                    Arc::make_mut(&mut self.endpoints)
                        .insert(name.to_string(), Stored { value, revision });
                }
                Err(why) => tracing::error!(%key, %why, "stored endpoint is unreadable; skipped"),
            }
        } else if let Some(hash) = key.strip_prefix(keys::TOKENS) {
            match serde_json::from_slice(&kv.value) {
                Ok(grant) => {
                    Arc::make_mut(&mut self.tokens).insert(hash.to_string(), grant);
                }
                Err(why) => tracing::error!(%key, %why, "stored token is unreadable; skipped"),
            }
        } else if let Some(id) = key.strip_prefix(keys::APPS) {
            match serde_json::from_slice::<weft_app::AppSpec>(&kv.value) {
                Ok(mut value) => {
                    value.id = id.to_string();
                    Arc::make_mut(&mut self.apps)
                        .insert(id.to_string(), Stored { value, revision });
                }
                Err(why) => tracing::error!(%key, %why, "stored app is unreadable; skipped"),
            }
        } else if let Some(id) = key.strip_prefix(keys::APP_INSTANCES) {
            match serde_json::from_slice(&kv.value) {
                Ok(n) => {
                    Arc::make_mut(&mut self.instances).insert(id.to_string(), n);
                }
                Err(why) => tracing::error!(%key, %why, "stored instances are unreadable"),
            }
        } else if let Some(id) = key.strip_prefix(keys::DEPLOYMENTS) {
            match serde_json::from_slice(&kv.value) {
                Ok(value) => {
                    Arc::make_mut(&mut self.deployments)
                        .insert(id.to_string(), Stored { value, revision });
                }
                Err(why) => tracing::error!(%key, %why, "stored deployment is unreadable"),
            }
        } else if let Some(tenant) = key.strip_prefix(keys::PRIVILEGE) {
            match serde_json::from_slice(&kv.value) {
                Ok(value) => {
                    Arc::make_mut(&mut self.privileged)
                        .insert(tenant.to_string(), Stored { value, revision });
                }
                Err(why) => tracing::error!(%key, %why, "stored privilege is unreadable; skipped"),
            }
        } else if let Some(id) = key.strip_prefix(keys::TASKS) {
            match serde_json::from_slice::<TaskRecord>(&kv.value) {
                Ok(mut value) => {
                    value.spec.id.clone_from(&value.app);
                    Arc::make_mut(&mut self.tasks)
                        .insert(id.to_string(), Stored { value, revision });
                }
                Err(why) => tracing::error!(%key, %why, "stored task is unreadable; skipped"),
            }
        }
    }

    fn delete(&mut self, key: &str) {
        if let Some(name) = key.strip_prefix(keys::TENANTS) {
            Arc::make_mut(&mut self.model).tenants.remove(name);
            Arc::make_mut(&mut self.tenant_revisions).remove(name);
        } else if let Some(name) = key.strip_prefix(keys::NODES) {
            Arc::make_mut(&mut self.nodes).remove(name);
        } else if let Some(name) = key.strip_prefix(keys::ENDPOINTS) {
            Arc::make_mut(&mut self.endpoints).remove(name);
        } else if let Some(hash) = key.strip_prefix(keys::TOKENS) {
            Arc::make_mut(&mut self.tokens).remove(hash);
        } else if let Some(id) = key.strip_prefix(keys::APPS) {
            Arc::make_mut(&mut self.apps).remove(id);
        } else if let Some(id) = key.strip_prefix(keys::APP_INSTANCES) {
            Arc::make_mut(&mut self.instances).remove(id);
        } else if let Some(id) = key.strip_prefix(keys::DEPLOYMENTS) {
            Arc::make_mut(&mut self.deployments).remove(id);
        } else if let Some(id) = key.strip_prefix(keys::TASKS) {
            Arc::make_mut(&mut self.tasks).remove(id);
        } else if let Some(tenant) = key.strip_prefix(keys::PRIVILEGE) {
            Arc::make_mut(&mut self.privileged).remove(tenant);
        }
    }

    /// Recompiles the cached policy from the stored model and allocation. The model was
    /// validated and compiled before it was committed, so a failure here means the stored
    /// state was altered: keep the last good policy and say so. No budget: what was
    /// admitted stays in force even if the budget was lowered since.
    pub fn recompile(&mut self) {
        let unlimited = weft_compiler::CompileBudget::UNLIMITED;
        match weft_compiler::compile_within(&self.model, &self.allocation, unlimited) {
            Ok(policy) => self.policy = Arc::new(policy),
            Err(why) => tracing::error!(%why, "stored model does not compile; keeping last policy"),
        }
    }
}

/// Reads a stored tenant, turning its subnet keys into CIDRs as the API does.
pub fn decode_tenant(name: &str, bytes: &[u8]) -> Result<Tenant, String> {
    let tenant: Tenant = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut model = Model::default();
    model.tenants.insert(name.to_string(), tenant);
    weft_model::resolve_json_keys(&mut model).map_err(|e| e.to_string())?;
    model
        .tenants
        .remove(name)
        .ok_or_else(|| "tenant vanished while decoding".to_string())
}

/// Store revisions are never negative; clamp defensively instead of wrapping.
pub fn as_revision(revision: i64) -> u64 {
    u64::try_from(revision).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_expire_and_old_grants_never_do() {
        // A grant stored before expiry existed reads as one that never expires.
        let old: TokenGrant = serde_json::from_str(r#"{"tenant":"shop"}"#).unwrap();
        assert_eq!(old.expires_ms, None);
        assert!(old.is_live(u64::MAX));
        assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"tenant":"shop"}"#);
        let keystone = TokenGrant {
            tenant: "shop".into(),
            expires_ms: Some(1_000),
        };
        assert!(keystone.is_live(999));
        assert!(!keystone.is_live(1_000));
        assert!(!keystone.is_live(5_000));
    }
}
