//! What the Consul adapter (`weft-consul`) reads of the controller: tokens to tenants,
//! weft's nodes with their liveness, and the running tasks of a tenant's apps as service
//! instances. Read from the live snapshot and node reports on every request: the adapter
//! keeps no copy.

use crate::apps::task_status;
use crate::auth::hash;
use crate::liveness::Liveness;
use crate::server::AppState;
use std::net::IpAddr;
use std::sync::Arc;
use weft_api::{Health, TaskState};
use weft_compiler::Flow;
use weft_consul::Status;
use weft_consul::{
    Asker, ConsulError, Directory, EndpointSite, InstanceHealth, Reach, WeftInstance, WeftNode,
};
use weft_model::{Action, EpgPath, Protocol};

/// The controller as the Consul adapter sees it.
#[derive(Debug)]
pub struct ServerDirectory {
    pub(crate) state: Arc<AppState>,
}

impl Directory for ServerDirectory {
    fn tenant(&self, token: Option<&str>) -> Result<String, ConsulError> {
        let anonymous = || {
            self.state
                .config
                .consul
                .anonymous_tenant
                .clone()
                .ok_or_else(|| {
                    ConsulError::PermissionDenied(
                        "a token is required (X-Consul-Token or ?token=)".into(),
                    )
                })
        };
        let Some(token) = token else {
            return anonymous();
        };
        if let Some(tenant) = crate::auth::gateway_tenant(&self.state.tokens, token) {
            return Ok(tenant);
        }
        let hashed = hash(token);
        // The admin token acts for the anonymous tenant; a tenant token for its tenant.
        if hashed == self.state.tokens.admin_hash() {
            return anonymous();
        }
        self.state
            .snapshot()
            .tokens
            .get(&hashed)
            .filter(|grant| grant.is_live(crate::liveness::now_ms()))
            .map(|grant| grant.tenant.clone())
            .ok_or_else(|| ConsulError::PermissionDenied("ACL not found".into()))
    }

    fn nodes(&self) -> Vec<WeftNode> {
        let deadline = self.state.config.node_deadline;
        self.state
            .snapshot()
            .nodes
            .values()
            .map(|n| WeftNode {
                name: n.value.name.clone(),
                address: n.value.underlay_ip.into(),
                alive: Liveness::is_ready(&self.state.liveness.get(&n.value.name), deadline),
            })
            .collect()
    }

    fn instances(&self, tenant: &str) -> Vec<WeftInstance> {
        let snapshot = self.state.snapshot();
        snapshot
            .tasks
            .values()
            .filter(|t| t.value.spec.epg.tenant == tenant)
            .filter_map(|stored| {
                let task = &stored.value;
                let st = task_status(&self.state, stored);
                // Only tasks that run are instances; one that starts or stopped is not.
                if st.state != TaskState::Running {
                    return None;
                }
                let (health, output) = match st.health {
                    Health::Unhealthy => (
                        Status::Critical,
                        st.message.unwrap_or_else(|| "health check failing".into()),
                    ),
                    Health::Healthy => (
                        Status::Passing,
                        "task running, health checks passing".into(),
                    ),
                    Health::Unknown => (Status::Passing, "task running".into()),
                };
                // The first named port, else the port a health check probes.
                let port = task
                    .spec
                    .ports
                    .values()
                    .next()
                    .copied()
                    .or_else(|| task.spec.health_checks.iter().find_map(|c| c.port))
                    .unwrap_or(0);
                let mut meta = task.spec.meta.clone();
                meta.insert("weft-epg".to_string(), task.spec.epg.to_string());
                meta.insert("weft-version".to_string(), task.version.to_string());
                Some(WeftInstance {
                    service: task.app.clone(),
                    id: task.id.clone(),
                    node: task.node.clone(),
                    address: task.ip,
                    port,
                    ports: task.spec.ports.clone(),
                    tags: task.spec.tags.clone(),
                    meta,
                    health: InstanceHealth {
                        status: health,
                        output,
                    },
                })
            })
            .collect()
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.state.catalog_changes.subscribe()
    }

    fn asker(&self, vrf: &str, source: IpAddr) -> Option<Asker> {
        let snapshot = self.state.snapshot();
        snapshot
            .endpoints
            .values()
            .find(|e| e.value.ip == source && e.value.vrf.to_string() == vrf)
            .map(|e| Asker {
                endpoint: e.value.name.clone(),
                tenant: e.value.epg.tenant.clone(),
                epg: e.value.epg.to_string(),
                vrf: vrf.to_string(),
            })
    }

    fn may_reach(&self, asker: &Asker, address: IpAddr, port: u16) -> Option<Reach> {
        let snapshot = self.state.snapshot();
        let target = snapshot
            .endpoints
            .values()
            .find(|e| e.value.ip == address && e.value.vrf.to_string() == asker.vrf)?;
        let from: EpgPath = asker.epg.parse().ok()?;
        let flow = if port == 0 {
            Flow::new(Protocol::Icmp, 0)
        } else {
            Flow::new(Protocol::Tcp, port)
        };
        // The verdict for a flow explain would give; an EPG the policy no longer knows
        // cannot be reached.
        Some(
            match weft_compiler::explain(&snapshot.policy, &from, &target.value.epg, &flow) {
                Ok(e) => Reach {
                    allowed: e.action == Action::Permit,
                    why: e.to_string(),
                },
                Err(why) => Reach {
                    allowed: false,
                    why: why.to_string(),
                },
            },
        )
    }

    fn endpoint_at(&self, tenant: &str, ip: IpAddr) -> Option<EndpointSite> {
        let snapshot = self.state.snapshot();
        let mut found = snapshot
            .endpoints
            .values()
            .filter(|e| {
                e.value.epg.tenant == tenant
                    && (e.value.ip == ip
                        || e.value.allowed_address_pairs.iter().any(|p| p.ip == ip))
            })
            .map(|e| EndpointSite {
                node: e.value.node.clone(),
                vrf: e.value.vrf.to_string(),
            });
        let site = found.next()?;
        // Addresses are unique per VRF only: with two VRFs of the tenant holding it,
        // the address names no one endpoint, and the controller keeps the check.
        if found.next().is_some() {
            tracing::debug!(tenant, %ip, "check target is ambiguous across VRFs; not assigned to an agent");
            return None;
        }
        Some(site)
    }

    fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let snapshot = self.state.snapshot();
        let deadline = self.state.config.node_deadline;
        for (name, _) in snapshot.nodes.iter() {
            (
                name,
                Liveness::is_ready(&self.state.liveness.get(name), deadline),
            )
                .hash(&mut h);
        }
        for (id, stored) in snapshot.tasks.iter() {
            let st = task_status(&self.state, stored);
            let running = st.state == TaskState::Running;
            (
                id,
                stored.revision,
                running,
                running.then_some(st.health as u8),
            )
                .hash(&mut h);
        }
        h.finish()
    }
}
