//! The catalog as Consul clients see it: weft's nodes and running tasks (read live from
//! the controller), the controller's own node with the `consul` service, and what clients
//! registered through the catalog and agent APIs (kept in weft's store). Nothing of
//! weft's own is copied: a view is built per request.

use crate::body::Obj;
use crate::checks;
use crate::error::ConsulError;
use crate::kv::rev;
use crate::records::{
    CheckRecord, NodeRecord, Probe, ServiceRecord, Status, WeftInstance, check_key, node_key,
    prefix, service_key,
};
use crate::{Consul, now_ms, uuid};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use weft_store::{Compare, CompareOp, KvStore, Txn, TxnOp};

/// The node-level check every catalog node carries, as Consul's gossip layer adds it.
pub(crate) const SERF_HEALTH: &str = "serfHealth";

#[derive(Debug, Clone)]
pub(crate) struct NodeView {
    pub name: String,
    pub id: String,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct ServiceView {
    pub record: ServiceRecord,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct CheckView {
    pub record: CheckRecord,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Everything one tenant sees, at one store revision.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub index: u64,
    pub nodes: BTreeMap<String, NodeView>,
    /// Sorted by service name, then node, then id.
    pub services: Vec<ServiceView>,
    /// Sorted by node, then check id.
    pub checks: Vec<CheckView>,
}

impl View {
    /// The checks that decide an instance's health: its own and its node's.
    pub(crate) fn checks_of<'v>(
        &'v self,
        s: &'v ServiceView,
    ) -> impl Iterator<Item = &'v CheckView> {
        self.checks.iter().filter(move |c| {
            c.record.node == s.record.node
                && (c.record.service_id.is_empty() || c.record.service_id == s.record.id)
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ConsulError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ConsulError::Internal(format!("stored {what} is unreadable: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ConsulError> {
    serde_json::to_vec(value).map_err(|e| ConsulError::Internal(e.to_string()))
}

/// The check weft's own verdict on a task becomes.
fn task_check(i: &WeftInstance) -> CheckRecord {
    CheckRecord {
        check_id: format!("weft-task:{}", i.id),
        name: format!("weft task {}", i.id),
        node: i.node.clone(),
        service_id: i.id.clone(),
        service_name: i.service.clone(),
        status: i.health.status,
        notes: "the task's state and health checks, as its node's agent reports them".into(),
        output: i.health.output.clone(),
        probe: Probe::None,
        updated_ms: 0,
        deregister_after_ms: None,
    }
}

fn serf_check(node: &str, alive: bool) -> CheckRecord {
    CheckRecord {
        check_id: SERF_HEALTH.into(),
        name: "Serf Health Status".into(),
        node: node.into(),
        service_id: String::new(),
        service_name: String::new(),
        status: if alive {
            Status::Passing
        } else {
            Status::Critical
        },
        notes: String::new(),
        output: if alive {
            "Agent alive and reachable".into()
        } else {
            "Agent not live or unreachable".into()
        },
        probe: Probe::None,
        updated_ms: 0,
        deregister_after_ms: None,
    }
}

impl<S: KvStore + Clone> Consul<S> {
    /// Builds the catalog of `tenant` as of now.
    pub(crate) async fn view(&self, tenant: &str) -> Result<View, ConsulError> {
        let nodes = self
            .store
            .range(prefix(tenant, "node").as_bytes(), None)
            .await?;
        let services = self
            .store
            .range(prefix(tenant, "service").as_bytes(), None)
            .await?;
        let checks = self
            .store
            .range(prefix(tenant, "check").as_bytes(), None)
            .await?;
        let index = rev(checks.revision);
        let mut view = View {
            index,
            ..View::default()
        };

        // The controller's own node first: it serves this API and the `consul` service.
        let me = &self.config.node_name;
        let own = NodeView {
            name: me.clone(),
            id: checks::stable_id(me),
            address: self.config.advertise.ip().to_string(),
            tagged_addresses: BTreeMap::new(),
            meta: BTreeMap::new(),
            create_index: 1,
            modify_index: 1,
        };
        view.nodes.insert(me.clone(), own);
        view.checks.push(CheckView {
            record: serf_check(me, true),
            create_index: 1,
            modify_index: 1,
        });
        view.services.push(ServiceView {
            record: ServiceRecord {
                id: "consul".into(),
                service: "consul".into(),
                node: me.clone(),
                port: self.config.advertise.port(),
                ..ServiceRecord::default()
            },
            create_index: 1,
            modify_index: 1,
        });
        for n in self.directory.nodes() {
            view.checks.push(CheckView {
                record: serf_check(&n.name, n.alive),
                create_index: 1,
                modify_index: 1,
            });
            view.nodes.insert(
                n.name.clone(),
                NodeView {
                    id: checks::stable_id(&n.name),
                    name: n.name,
                    address: n.address.to_string(),
                    tagged_addresses: BTreeMap::new(),
                    meta: BTreeMap::from([("weft".to_string(), "node".to_string())]),
                    create_index: 1,
                    modify_index: 1,
                },
            );
        }
        for kv in &nodes.kvs {
            let n: NodeRecord = decode(&kv.value, "node")?;
            view.nodes.entry(n.node.clone()).or_insert(NodeView {
                name: n.node,
                id: n.id,
                address: n.address,
                tagged_addresses: n.tagged_addresses,
                meta: n.meta,
                create_index: rev(kv.create_revision),
                modify_index: rev(kv.mod_revision),
            });
        }
        for i in self.directory.instances(tenant) {
            view.checks.push(CheckView {
                record: task_check(&i),
                create_index: 1,
                modify_index: 1,
            });
            let address = i.address.to_string();
            let tagged_addresses = i
                .ports
                .iter()
                .map(|(name, port)| (name.clone(), json!({"Address": address, "Port": port})))
                .collect();
            view.services.push(ServiceView {
                record: ServiceRecord {
                    id: i.id,
                    service: i.service,
                    node: i.node,
                    tags: i.tags,
                    address,
                    port: i.port,
                    meta: i.meta,
                    tagged_addresses,
                    ..ServiceRecord::default()
                },
                create_index: 1,
                modify_index: 1,
            });
        }
        for kv in &services.kvs {
            view.services.push(ServiceView {
                record: decode(&kv.value, "service")?,
                create_index: rev(kv.create_revision),
                modify_index: rev(kv.mod_revision),
            });
        }
        let now = now_ms();
        for kv in &checks.kvs {
            let record: CheckRecord = decode(&kv.value, "check")?;
            let record = self.checks.evaluate(tenant, record, now);
            view.checks.push(CheckView {
                record,
                create_index: rev(kv.create_revision),
                modify_index: rev(kv.mod_revision),
            });
        }
        view.services.sort_by(|a, b| {
            (&a.record.service, &a.record.node, &a.record.id).cmp(&(
                &b.record.service,
                &b.record.node,
                &b.record.id,
            ))
        });
        view.checks.sort_by(|a, b| {
            (&a.record.node, &a.record.check_id).cmp(&(&b.record.node, &b.record.check_id))
        });
        Ok(view)
    }

    pub(crate) async fn node_exists(&self, tenant: &str, node: &str) -> Result<bool, ConsulError> {
        if node == self.config.node_name || self.directory.nodes().iter().any(|n| n.name == node) {
            return Ok(true);
        }
        Ok(self
            .store
            .get(node_key(tenant, node).as_bytes())
            .await?
            .kv
            .is_some())
    }

    /// `PUT /v1/catalog/register`: a node, optionally a service and checks, in one txn.
    pub(crate) async fn catalog_register(
        &self,
        tenant: &str,
        body: Obj<'_>,
    ) -> Result<(), ConsulError> {
        let node = body.string("Node")?;
        if node.is_empty() {
            return Err(ConsulError::BadRequest("Must provide node".into()));
        }
        let address = body.string("Address")?;
        if address.is_empty() {
            return Err(ConsulError::BadRequest("Must provide address".into()));
        }
        let mut ops = Vec::new();
        let key = node_key(tenant, &node);
        let existing: Option<NodeRecord> = match self.store.get(key.as_bytes()).await?.kv {
            Some(kv) => Some(decode(&kv.value, "node")?),
            None => None,
        };
        if !(body.bool("SkipNodeUpdate")? && existing.is_some()) {
            let record = NodeRecord {
                id: body
                    .str("ID")?
                    .map(str::to_string)
                    .or_else(|| existing.as_ref().map(|n| n.id.clone()))
                    .unwrap_or_else(uuid),
                node: node.clone(),
                address,
                tagged_addresses: body.string_map("TaggedAddresses")?,
                meta: body.string_map("NodeMeta")?,
            };
            ops.push(TxnOp::put(key.as_bytes(), encode(&record)?));
        }
        let mut service_names = BTreeMap::new();
        if existing.is_none() {
            self.admit_new(tenant, "node", &key, self.config.quota.services)
                .await?;
        }
        if let Some(service) = body.obj("Service")? {
            let record = service_record(&node, service)?;
            service_names.insert(record.id.clone(), record.service.clone());
            let skey = service_key(tenant, &node, &record.id);
            self.admit_new(tenant, "service", &skey, self.config.quota.services)
                .await?;
            ops.push(TxnOp::put(
                service_key(tenant, &node, &record.id).as_bytes(),
                encode(&record)?,
            ));
        }
        let mut checks = body.objs("Checks")?;
        checks.extend(body.obj("Check")?);
        for check in checks {
            let mut record = checks::check_record(&node, check, None)?;
            if record.check_id.is_empty() {
                record.check_id.clone_from(&record.name);
            }
            if record.check_id.is_empty() {
                return Err(ConsulError::BadRequest("Missing check ID or name".into()));
            }
            if !record.service_id.is_empty() {
                record.service_name = service_names
                    .get(&record.service_id)
                    .cloned()
                    .unwrap_or_default();
            }
            if let Some(status) = check.str("Status")? {
                record.status = Status::parse(status).ok_or_else(|| {
                    ConsulError::BadRequest(format!("Check.Status: invalid status {status:?}"))
                })?;
            } else {
                record.status = Status::Critical;
            }
            ops.push(TxnOp::put(
                check_key(tenant, &node, &record.check_id).as_bytes(),
                encode(&record)?,
            ));
        }
        self.store.txn(Txn::new().and_then(ops)).await?;
        Ok(())
    }

    /// `PUT /v1/catalog/deregister`: a check, a service (with its checks) or a whole node.
    pub(crate) async fn catalog_deregister(
        &self,
        tenant: &str,
        body: Obj<'_>,
    ) -> Result<(), ConsulError> {
        let node = body.string("Node")?;
        if node.is_empty() {
            return Err(ConsulError::BadRequest("Must provide node".into()));
        }
        let ops = if let Some(check) = body.str("CheckID")? {
            vec![TxnOp::delete(check_key(tenant, &node, check).as_bytes())]
        } else if let Some(service) = body.str("ServiceID")? {
            self.service_removal(tenant, &node, service).await?
        } else {
            vec![
                TxnOp::delete(node_key(tenant, &node).as_bytes()),
                TxnOp::delete_prefix(format!("{}{node}/", prefix(tenant, "service")).as_bytes()),
                TxnOp::delete_prefix(format!("{}{node}/", prefix(tenant, "check")).as_bytes()),
            ]
        };
        self.store.txn(Txn::new().and_then(ops)).await?;
        Ok(())
    }

    /// Ops that remove a service and every check bound to it.
    pub(crate) async fn service_removal(
        &self,
        tenant: &str,
        node: &str,
        service_id: &str,
    ) -> Result<Vec<TxnOp>, ConsulError> {
        let mut ops = vec![TxnOp::delete(
            service_key(tenant, node, service_id).as_bytes(),
        )];
        let checks = self
            .store
            .range(
                format!("{}{node}/", prefix(tenant, "check")).as_bytes(),
                None,
            )
            .await?;
        for kv in &checks.kvs {
            let check: CheckRecord = decode(&kv.value, "check")?;
            if check.service_id == service_id {
                ops.push(TxnOp::delete(kv.key.clone()));
            }
        }
        Ok(ops)
    }

    /// Registers a service with the controller's own agent, with its checks.
    pub(crate) async fn agent_service_register(
        &self,
        tenant: &str,
        body: Obj<'_>,
    ) -> Result<(), ConsulError> {
        let node = self.config.node_name.clone();
        let record = service_record(&node, body)?;
        if record.service.is_empty() {
            return Err(ConsulError::BadRequest("Missing service name".into()));
        }
        if body.get("Connect").is_some_and(|c| {
            c.get("sidecar_service").is_some() || c.get("SidecarService").is_some()
        }) {
            return Err(ConsulError::BadRequest(
                "Connect sidecar services are not supported by weft (Connect is not implemented)"
                    .into(),
            ));
        }
        let mut check_bodies = Vec::new();
        check_bodies.extend(body.obj("Check")?);
        check_bodies.extend(body.objs("Checks")?);
        let numbered = check_bodies.len() > 1;
        let mut puts: Vec<(String, Vec<u8>)> = Vec::new();
        for (n, check) in check_bodies.into_iter().enumerate() {
            let mut c = checks::check_record(&node, check, Some(&record))?;
            if c.check_id.is_empty() {
                c.check_id = if numbered {
                    format!("service:{}:{}", record.id, n + 1)
                } else {
                    format!("service:{}", record.id)
                };
            }
            if c.name.is_empty() {
                c.name = format!("Service '{}' check", record.service);
            }
            puts.push((check_key(tenant, &node, &c.check_id), encode(&c)?));
        }
        let skey = service_key(tenant, &node, &record.id);
        self.admit_new(tenant, "service", &skey, self.config.quota.services)
            .await?;
        puts.push((skey, encode(&record)?));
        // Replace the service and the checks it had: what is not written again goes.
        let mut ops: Vec<TxnOp> = self
            .service_removal(tenant, &node, &record.id)
            .await?
            .into_iter()
            .filter(|op| match op {
                TxnOp::Delete { key } => !puts.iter().any(|(k, _)| k.as_bytes() == key.as_slice()),
                _ => true,
            })
            .collect();
        ops.extend(puts.into_iter().map(|(k, v)| TxnOp::put(k.as_bytes(), v)));
        self.store.txn(Txn::new().and_then(ops)).await?;
        Ok(())
    }

    /// Registers a check with the controller's own agent.
    pub(crate) async fn agent_check_register(
        &self,
        tenant: &str,
        body: Obj<'_>,
    ) -> Result<(), ConsulError> {
        let node = self.config.node_name.clone();
        let service = match body.str("ServiceID")? {
            Some(id) if !id.is_empty() => {
                let key = service_key(tenant, &node, id);
                match self.store.get(key.as_bytes()).await?.kv {
                    Some(kv) => Some(decode::<ServiceRecord>(&kv.value, "service")?),
                    None => {
                        return Err(ConsulError::NotFound(format!(
                            "ServiceID \"{id}\" does not exist"
                        )));
                    }
                }
            }
            _ => None,
        };
        let mut record = checks::check_record(&node, body, service.as_ref())?;
        if record.check_id.is_empty() {
            record.check_id.clone_from(&record.name);
        }
        if record.check_id.is_empty() {
            return Err(ConsulError::BadRequest("Missing check name".into()));
        }
        let key = check_key(tenant, &node, &record.check_id);
        self.store
            .put(key.as_bytes(), &encode(&record)?, None)
            .await?;
        Ok(())
    }

    /// Sets a check's status by hand (`agent/check/pass|warn|fail`, maintenance). `false`
    /// if the agent has no such check.
    pub(crate) async fn agent_check_update(
        &self,
        tenant: &str,
        check_id: &str,
        status: Status,
        output: Option<&str>,
    ) -> Result<bool, ConsulError> {
        let key = check_key(tenant, &self.config.node_name, check_id);
        for _ in 0..8 {
            let Some(kv) = self.store.get(key.as_bytes()).await?.kv else {
                return Ok(false);
            };
            let mut record: CheckRecord = decode(&kv.value, "check")?;
            record.status = status;
            record.output = output.unwrap_or_default().to_string();
            record.updated_ms = now_ms();
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.as_bytes(),
                    CompareOp::Equal,
                    kv.mod_revision,
                )])
                .and_then([TxnOp::put(key.as_bytes(), encode(&record)?)]);
            if self.store.txn(txn).await?.succeeded {
                return Ok(true);
            }
        }
        Err(ConsulError::Refused("check kept changing; retry".into()))
    }

    /// Puts a service (or with `service_id` None, the whole node) in or out of maintenance:
    /// a critical check named as Consul names it.
    pub(crate) async fn maintenance(
        &self,
        tenant: &str,
        service_id: Option<&str>,
        enable: bool,
        reason: &str,
    ) -> Result<(), ConsulError> {
        let node = self.config.node_name.clone();
        let (check_id, name, service) = match service_id {
            Some(id) => {
                let key = service_key(tenant, &node, id);
                let Some(kv) = self.store.get(key.as_bytes()).await?.kv else {
                    return Err(ConsulError::NotFound(format!(
                        "Unknown service ID \"{id}\""
                    )));
                };
                let service: ServiceRecord = decode(&kv.value, "service")?;
                (
                    format!("_service_maintenance:{id}"),
                    "Service Maintenance Mode",
                    Some(service),
                )
            }
            None => (
                "_node_maintenance".to_string(),
                "Node Maintenance Mode",
                None,
            ),
        };
        let key = check_key(tenant, &node, &check_id);
        if !enable {
            self.store.delete(key.as_bytes()).await?;
            return Ok(());
        }
        let record = CheckRecord {
            check_id,
            name: name.into(),
            node,
            service_id: service.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
            service_name: service.map(|s| s.service).unwrap_or_default(),
            status: Status::Critical,
            notes: if reason.is_empty() {
                "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.".into()
            } else {
                reason.to_string()
            },
            output: String::new(),
            probe: Probe::None,
            updated_ms: now_ms(),
            deregister_after_ms: None,
        };
        self.store
            .put(key.as_bytes(), &encode(&record)?, None)
            .await?;
        Ok(())
    }
}

/// A service from a registration body (catalog `Service` or agent service register).
fn service_record(node: &str, body: Obj<'_>) -> Result<ServiceRecord, ConsulError> {
    // The catalog calls the name `Service`, the agent `Name`.
    let service = body
        .str("Service")?
        .or(body.str("Name")?)
        .unwrap_or_default()
        .to_string();
    if service.is_empty() {
        return Err(ConsulError::BadRequest("Missing service name".into()));
    }
    let id = body
        .str("ID")?
        .filter(|s| !s.is_empty())
        .map_or_else(|| service.clone(), str::to_string);
    if id.contains('/') || id.contains('\0') {
        return Err(ConsulError::BadRequest(format!(
            "Service ID {id:?} must not contain '/' or NUL"
        )));
    }
    let mut tagged = BTreeMap::new();
    if let Some(addresses) = body.obj("TaggedAddresses")?
        && let Some(Value::Object(m)) = body.get("TaggedAddresses")
    {
        for name in m.keys() {
            let Some(one) = addresses.obj(name)? else {
                continue;
            };
            tagged.insert(
                name.clone(),
                json!({"Address": one.string("Address")?, "Port": one.port("Port")?}),
            );
        }
    }
    Ok(ServiceRecord {
        id,
        service,
        node: node.to_string(),
        tags: body.strings("Tags")?,
        address: body.string("Address")?,
        port: body.port("Port")?,
        meta: body.string_map("Meta")?,
        kind: body.string("Kind")?,
        tagged_addresses: tagged,
        enable_tag_override: body.bool("EnableTagOverride")?,
        proxy: body.raw("Proxy"),
        connect: body.raw("Connect"),
        locality: body.raw("Locality"),
    })
}

// ---- JSON as Consul answers it ----

pub(crate) fn node_json(n: &NodeView, dc: &str) -> Value {
    json!({
        "ID": n.id,
        "Node": n.name,
        "Address": n.address,
        "Datacenter": dc,
        "TaggedAddresses": n.tagged_addresses,
        "Meta": n.meta,
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    })
}

fn weights() -> Value {
    json!({"Passing": 1, "Warning": 1})
}

/// A service as the agent and health endpoints show it.
pub(crate) fn service_json(s: &ServiceView, dc: &str) -> Value {
    let r = &s.record;
    let mut m = Map::new();
    m.insert("ID".into(), r.id.clone().into());
    m.insert("Service".into(), r.service.clone().into());
    m.insert("Tags".into(), json!(r.tags));
    m.insert("Meta".into(), json!(r.meta));
    m.insert("Port".into(), r.port.into());
    m.insert("Address".into(), r.address.clone().into());
    m.insert("TaggedAddresses".into(), json!(r.tagged_addresses));
    m.insert("Weights".into(), weights());
    m.insert("EnableTagOverride".into(), r.enable_tag_override.into());
    m.insert("Datacenter".into(), dc.into());
    m.insert("Kind".into(), r.kind.clone().into());
    if let Some(p) = &r.proxy {
        m.insert("Proxy".into(), p.clone());
    }
    if let Some(c) = &r.connect {
        m.insert("Connect".into(), c.clone());
    }
    if let Some(l) = &r.locality {
        m.insert("Locality".into(), l.clone());
    }
    m.insert("CreateIndex".into(), s.create_index.into());
    m.insert("ModifyIndex".into(), s.modify_index.into());
    Value::Object(m)
}

/// One entry of `catalog/service/<name>`: the node's fields and the service's, flattened.
pub(crate) fn catalog_service_json(n: &NodeView, s: &ServiceView, dc: &str) -> Value {
    let r = &s.record;
    json!({
        "ID": n.id,
        "Node": n.name,
        "Address": n.address,
        "Datacenter": dc,
        "TaggedAddresses": n.tagged_addresses,
        "NodeMeta": n.meta,
        "ServiceKind": r.kind,
        "ServiceID": r.id,
        "ServiceName": r.service,
        "ServiceTags": r.tags,
        "ServiceAddress": r.address,
        "ServiceTaggedAddresses": r.tagged_addresses,
        "ServiceWeights": weights(),
        "ServiceMeta": r.meta,
        "ServicePort": r.port,
        "ServiceEnableTagOverride": r.enable_tag_override,
        "ServiceProxy": r.proxy.clone().unwrap_or_else(|| json!({})),
        "ServiceConnect": r.connect.clone().unwrap_or_else(|| json!({})),
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    })
}

pub(crate) fn check_json(c: &CheckView, tags: &[String]) -> Value {
    let r = &c.record;
    json!({
        "Node": r.node,
        "CheckID": r.check_id,
        "Name": r.name,
        "Status": r.status.as_str(),
        "Notes": r.notes,
        "Output": r.output,
        "ServiceID": r.service_id,
        "ServiceName": r.service_name,
        "ServiceTags": tags,
        "Type": r.probe.type_name(),
        "Interval": checks::interval_text(&r.probe),
        "Timeout": checks::timeout_text(&r.probe),
        "Definition": {},
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    })
}
