//! Neutron security groups and their rules over weft's model (ACI ML2's mapping: the
//! state is the tenant's, the adapter keeps none of its own).
//!
//! A group is a security group of the project's tenant: `sg-<8 hex>` when made here, and
//! the project's `default` group, which Neutron makes when a project first lists or
//! creates groups or creates a port (egress to anyone, ingress from members of `default`,
//! for IPv4 and IPv6). Its rules are the group's rules (`r-<8 hex>`). Every group and rule
//! of the tenant shows, whoever made it (`weft apply` too), with ids derived from its path
//! (`security_group:<tenant>/<group>`, `security_group_rule:<tenant>/<group>/<rule>`). A
//! weft rule for both IP versions (`ether_type = "ip"` without a prefix) shows as one
//! rule per version, ids suffixed `#IPv4` and `#IPv6`; deleting one leaves the other.
//! Name and description are kept by id under `/weft/openstack/ids/`. Every write is one
//! admission of the whole tenant.

use crate::error::NeutronError;
use crate::resource::{
    Adapter, Annotated, Answer, Collection, Removable, Removal, Standard, caller, finish_create,
    metas, only, project_tenant, required, resource, target_project, text, visible_tenants,
};
use crate::{Caller, Controller, OpenStack, derived_uuid, project_id, sha256_hex};
use axum::extract::State;
use axum::http::HeaderMap;
use ipnet::IpNet;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use weft_model::{
    Direction, EtherType, IpFamily, PortRange, Protocol, SecurityGroup, SecurityRule, Tenant,
};
use weft_store::KvStore;

/// The name prefixes of groups and rules made here, and the default group's name.
pub const GROUP_PREFIX: &str = "sg-";
pub const RULE_PREFIX: &str = "r-";
pub const DEFAULT: &str = "default";
const DEFAULT_DESCRIPTION: &str = "Default security group";

pub fn security_group_id(tenant: &str, group: &str) -> String {
    derived_uuid(&format!("security_group:{tenant}/{group}"))
}

pub fn security_group_rule_id(tenant: &str, group: &str, rule: &str) -> String {
    derived_uuid(&format!("security_group_rule:{tenant}/{group}/{rule}"))
}

/// The id of one IP version of a weft rule for both.
fn half_rule_id(tenant: &str, group: &str, rule: &str, family: IpFamily) -> String {
    derived_uuid(&format!(
        "security_group_rule:{tenant}/{group}/{rule}#{}",
        ethertype(family)
    ))
}

fn ethertype(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    }
}

fn family_of(net: &IpNet) -> IpFamily {
    if net.addr().is_ipv4() {
        IpFamily::V4
    } else {
        IpFamily::V6
    }
}

pub(crate) fn group_not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "SecurityGroupNotFound",
        format!("Security group {id} does not exist"),
    )
}

fn rule_not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "SecurityGroupRuleNotFound",
        format!("Security group rule {id} does not exist"),
    )
}

// ---- the default group and a new group's rules ----------------------------------------------

/// A rule's name derived from what it is, so the rules Neutron makes by itself keep
/// their ids.
fn derived_rule_name(what: &str) -> String {
    format!(
        "{RULE_PREFIX}{}",
        &sha256_hex(&[b"weft-openstack:rule:", what.as_bytes()])[..8]
    )
}

fn egress_rules() -> BTreeMap<String, SecurityRule> {
    [
        (EtherType::Ipv4, "egress-ipv4"),
        (EtherType::Ipv6, "egress-ipv6"),
    ]
    .into_iter()
    .map(|(ether_type, what)| {
        let rule = SecurityRule {
            direction: Direction::Egress,
            ether_type,
            ..SecurityRule::default()
        };
        (derived_rule_name(what), rule)
    })
    .collect()
}

/// Neutron's default group: egress to anyone, ingress from the group's members.
fn default_group() -> SecurityGroup {
    let mut rules = egress_rules();
    for (ether_type, what) in [
        (EtherType::Ipv4, "ingress-ipv4-default"),
        (EtherType::Ipv6, "ingress-ipv6-default"),
    ] {
        rules.insert(
            derived_rule_name(what),
            SecurityRule {
                direction: Direction::Ingress,
                ether_type,
                remote_group: Some(DEFAULT.to_string()),
                ..SecurityRule::default()
            },
        );
    }
    SecurityGroup {
        rules,
        ..SecurityGroup::default()
    }
}

/// Adds the default group to a tenant that lacks it; true when it did.
pub(crate) fn with_default(tenant: &mut Tenant) -> bool {
    if tenant.security_groups.contains_key(DEFAULT) {
        return false;
    }
    tenant
        .security_groups
        .insert(DEFAULT.to_string(), default_group());
    true
}

/// Makes the caller's project's default group (Neutron makes it on a project's first
/// look at its groups). The admin acts for no project of its own.
async fn ensure_default<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
) -> Result<(), NeutronError> {
    let Caller::Tenant(name) = who else {
        return Ok(());
    };
    let has = |a: &OpenStack<S, C>| {
        a.controller
            .tenant(name)
            .is_some_and(|t| t.security_groups.contains_key(DEFAULT))
    };
    if has(a) {
        return Ok(());
    }
    let _serialised = a.writes.lock().await;
    let mut tenant = project_tenant(a, name);
    if with_default(&mut tenant) {
        a.controller.commit(name, Some(tenant)).await?;
        tracing::info!(tenant = %name, "neutron default security group created");
    }
    Ok(())
}

/// Takes back a default group made for a create that was then refused, unless something
/// uses it by now.
pub(crate) async fn undo_default<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    tenant_name: &str,
) {
    let Some(mut tenant) = a.controller.tenant(tenant_name) else {
        return;
    };
    let used = a.controller.endpoints(tenant_name).iter().any(|e| {
        e.security_groups
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g == DEFAULT))
    }) || referenced_by_others(&tenant, DEFAULT);
    if used || tenant.security_groups.remove(DEFAULT).is_none() {
        return;
    }
    if let Err(e) = a.controller.commit(tenant_name, Some(tenant)).await {
        tracing::warn!(error = %e, tenant = %tenant_name, "could not take back the default security group of a refused port");
    }
}

/// Whether a rule of another group names `group` as its remote group.
fn referenced_by_others(tenant: &Tenant, group: &str) -> bool {
    tenant.security_groups.iter().any(|(name, g)| {
        name != group
            && g.rules
                .values()
                .any(|r| r.remote_group.as_deref() == Some(group))
    })
}

/// The model names of the groups `ids` of a tenant.
pub(crate) fn group_names(
    tenant_name: &str,
    tenant: &Tenant,
    ids: &[String],
) -> Result<Vec<String>, NeutronError> {
    ids.iter()
        .map(|id| {
            tenant
                .security_groups
                .keys()
                .find(|name| security_group_id(tenant_name, name) == *id)
                .cloned()
                .ok_or_else(|| group_not_found(id))
        })
        .collect()
}

// ---- the view ------------------------------------------------------------------------------

/// One Neutron rule: a weft rule, or one IP version of a weft rule for both.
#[derive(Debug, Clone)]
pub(crate) struct RuleView {
    id: String,
    tenant: String,
    group: String,
    group_id: String,
    name: String,
    family: IpFamily,
    /// One of two halves of a rule for both versions.
    half: bool,
    rule: SecurityRule,
}

impl RuleView {
    /// The weft rules of one group as Neutron's rules.
    fn of(tenant: &str, group: &str, name: &str, rule: &SecurityRule) -> Vec<RuleView> {
        let families = match (rule.remote_ip_prefix, rule.ether_type) {
            (Some(net), _) => vec![family_of(&net)],
            (None, EtherType::Ipv4) => vec![IpFamily::V4],
            (None, EtherType::Ipv6) => vec![IpFamily::V6],
            (None, EtherType::Ip) => vec![IpFamily::V4, IpFamily::V6],
        };
        let half = families.len() > 1;
        families
            .into_iter()
            .map(|family| RuleView {
                id: if half {
                    half_rule_id(tenant, group, name, family)
                } else {
                    security_group_rule_id(tenant, group, name)
                },
                tenant: tenant.to_string(),
                group: group.to_string(),
                group_id: security_group_id(tenant, group),
                name: name.to_string(),
                family,
                half,
                rule: rule.clone(),
            })
            .collect()
    }

    /// Whether two rules admit the same traffic (a prefix of everything is no prefix).
    fn same(&self, other: &RuleView) -> bool {
        let everything = |p: Option<IpNet>| p.filter(|n| n.prefix_len() > 0);
        self.family == other.family
            && self.rule.direction == other.rule.direction
            && self.rule.protocol == other.rule.protocol
            && self.rule.destination_port == other.rule.destination_port
            && self.rule.remote_group == other.rule.remote_group
            && everything(self.rule.remote_ip_prefix) == everything(other.rule.remote_ip_prefix)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct GroupView {
    id: String,
    tenant: String,
    name: String,
    rules: Vec<RuleView>,
}

/// The security groups collection: every group of the caller's projects.
pub(crate) struct Groups {
    tenants: BTreeMap<String, Tenant>,
    groups: Vec<GroupView>,
    group_meta: BTreeMap<String, Standard>,
    rule_meta: BTreeMap<String, Standard>,
}

impl Groups {
    fn group(&self, id: &str) -> Result<&GroupView, NeutronError> {
        self.groups
            .iter()
            .find(|g| g.id == id)
            .ok_or_else(|| group_not_found(id))
    }

    fn rules(&self) -> impl Iterator<Item = &RuleView> {
        self.groups.iter().flat_map(|g| &g.rules)
    }

    fn rule(&self, id: &str) -> Result<&RuleView, NeutronError> {
        self.rules()
            .find(|r| r.id == id)
            .ok_or_else(|| rule_not_found(id))
    }

    /// The tenant holding a group, to change.
    fn tenant(&self, g: &GroupView) -> Result<Tenant, NeutronError> {
        self.tenants
            .get(&g.tenant)
            .cloned()
            .ok_or_else(|| group_not_found(&g.id))
    }

    /// A group's metadata, or what one without starts from.
    fn meta_of(&self, g: &GroupView) -> Standard {
        self.group_meta.get(&g.id).cloned().unwrap_or_else(|| {
            let mut meta = Standard::named(&g.name);
            if g.name == DEFAULT {
                meta.description = DEFAULT_DESCRIPTION.into();
            }
            meta
        })
    }

    fn group_json(&self, g: &GroupView) -> Value {
        let rules: Vec<Value> = g.rules.iter().map(|r| self.rule_json(r)).collect();
        let item = json!({
            "id": g.id,
            "security_group_rules": rules,
            "stateful": true,
            "shared": false,
            "weft:security_group": format!("{}/{}", g.tenant, g.name),
        });
        Standard::show(Some(&self.meta_of(g)), &g.name, &g.tenant, item)
    }

    fn rule_json(&self, r: &RuleView) -> Value {
        let protocol = match (r.rule.protocol, r.family) {
            (Protocol::Any, _) => Value::Null,
            (Protocol::Icmp, IpFamily::V6) => json!("ipv6-icmp"),
            (p, _) => json!(p.to_string()),
        };
        let ports = r.rule.destination_port;
        let (min, max) = if ports.is_any() {
            (Value::Null, Value::Null)
        } else {
            (json!(ports.lo), json!(ports.hi))
        };
        let prefix = r.rule.remote_ip_prefix.map(|n| n.to_string());
        let item = json!({
            "id": r.id,
            "security_group_id": r.group_id,
            "direction": r.rule.direction.to_string(),
            "ethertype": ethertype(r.family),
            "protocol": protocol,
            "port_range_min": min,
            "port_range_max": max,
            "remote_ip_prefix": prefix,
            "normalized_cidr": prefix,
            "remote_group_id": r.rule.remote_group.as_ref().map(|g| security_group_id(&r.tenant, g)),
            "remote_address_group_id": null,
            "belongs_to_default_sg": r.group == DEFAULT,
            "weft:rule": format!("{}/{}/{}", r.tenant, r.group, r.name),
        });
        let mut shown = Standard::show(self.rule_meta.get(&r.id), "", &r.tenant, item);
        if let Value::Object(map) = &mut shown {
            // Rules have no name or tags in Neutron.
            map.remove("name");
            map.remove("tags");
        }
        shown
    }
}

impl<S: KvStore + Clone, C: Controller> Collection<S, C> for Groups {
    const ONE: &'static str = "security_group";
    const PATH: &'static str = "security-groups";
    const MANY: &'static str = "security_groups";

    async fn prepare(a: &OpenStack<S, C>, who: &Caller) -> Result<(), NeutronError> {
        ensure_default(a, who).await
    }

    async fn read(a: &OpenStack<S, C>, who: &Caller) -> Result<Self, NeutronError> {
        let tenants = visible_tenants(a, who);
        let groups = tenants
            .iter()
            .flat_map(|(tname, t)| {
                t.security_groups.iter().map(move |(gname, g)| GroupView {
                    id: security_group_id(tname, gname),
                    tenant: tname.clone(),
                    name: gname.clone(),
                    rules: g
                        .rules
                        .iter()
                        .flat_map(|(rname, r)| RuleView::of(tname, gname, rname, r))
                        .collect(),
                })
            })
            .collect();
        Ok(Self {
            groups,
            group_meta: metas(&a.store, "security_group").await?,
            rule_meta: metas(&a.store, "security_group_rule").await?,
            tenants,
        })
    }

    fn items(&self) -> Vec<Value> {
        self.groups.iter().map(|g| self.group_json(g)).collect()
    }

    fn item(&self, id: &str) -> Result<Value, NeutronError> {
        self.group(id).map(|g| self.group_json(g))
    }
}

impl<S: KvStore + Clone, C: Controller> Annotated<S, C> for Groups {
    const KIND: &'static str = "security_group";
    const UPDATABLE: &'static [&'static str] = &["name", "description", "stateful"];
    type Meta = Standard;

    fn updated(&self, id: &str, object: &Map<String, Value>) -> Result<Standard, NeutronError> {
        only(object, "stateful", true)?;
        let g = self.group(id)?;
        let name = text(object, "name")?;
        if g.name == DEFAULT && name.as_ref().is_some_and(|n| n != DEFAULT) {
            return Err(NeutronError::conflict(
                "SecurityGroupCannotUpdateDefault",
                "Updating default security group not allowed.",
            ));
        }
        if g.name != DEFAULT && name.as_deref() == Some(DEFAULT) {
            return Err(default_exists());
        }
        let mut meta = self.meta_of(g);
        meta.update(object)?;
        Ok(meta)
    }
}

/// The rules collection: every rule of the caller's projects' groups.
pub(crate) struct Rules(Groups);

impl<S: KvStore + Clone, C: Controller> Collection<S, C> for Rules {
    const ONE: &'static str = "security_group_rule";
    const PATH: &'static str = "security-group-rules";
    const MANY: &'static str = "security_group_rules";

    async fn prepare(a: &OpenStack<S, C>, who: &Caller) -> Result<(), NeutronError> {
        ensure_default(a, who).await
    }

    async fn read(a: &OpenStack<S, C>, who: &Caller) -> Result<Self, NeutronError> {
        <Groups as Collection<S, C>>::read(a, who).await.map(Self)
    }

    fn items(&self) -> Vec<Value> {
        self.0.rules().map(|r| self.0.rule_json(r)).collect()
    }

    fn item(&self, id: &str) -> Result<Value, NeutronError> {
        self.0.rule(id).map(|r| self.0.rule_json(r))
    }
}

impl<S: KvStore + Clone, C: Controller> Annotated<S, C> for Rules {
    const KIND: &'static str = "security_group_rule";
    const UPDATABLE: &'static [&'static str] = &["description"];
    type Meta = Standard;

    fn updated(&self, id: &str, object: &Map<String, Value>) -> Result<Standard, NeutronError> {
        self.0.rule(id)?;
        let mut meta = self.0.rule_meta.get(id).cloned().unwrap_or_default();
        meta.update(object)?;
        Ok(meta)
    }
}

impl<S: KvStore + Clone, C: Controller> Removable<S, C> for Groups {
    fn removal(&self, a: &OpenStack<S, C>, id: &str) -> Result<Removal, NeutronError> {
        let group = self.group(id)?;
        if group.name == DEFAULT {
            return Err(NeutronError::conflict(
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        let mut tenant = self.tenant(group)?;
        let on_a_port = a.controller.endpoints(&group.tenant).into_iter().any(|e| {
            e.security_groups
                .is_some_and(|names| names.contains(&group.name))
        }) || a.controller.apps(&group.tenant).iter().any(|app| {
            // A server (an app) whose task is not placed yet names it too.
            app.spec
                .security_groups
                .as_ref()
                .is_some_and(|names| names.contains(&group.name))
        });
        if on_a_port || referenced_by_others(&tenant, &group.name) {
            return Err(NeutronError::conflict(
                "SecurityGroupInUse",
                format!("Security Group {id} in use."),
            ));
        }
        tenant.security_groups.remove(&group.name);
        Ok(Removal {
            tenant_name: group.tenant.clone(),
            tenant,
            also: group
                .rules
                .iter()
                .map(|r| ("security_group_rule", r.id.clone()))
                .collect(),
        })
    }
}

impl<S: KvStore + Clone, C: Controller> Removable<S, C> for Rules {
    fn removal(&self, _a: &OpenStack<S, C>, id: &str) -> Result<Removal, NeutronError> {
        let rule = self.0.rule(id)?;
        let mut tenant = self.0.tenant(self.0.group(&rule.group_id)?)?;
        let rules = &mut tenant
            .security_groups
            .get_mut(&rule.group)
            .ok_or_else(|| rule_not_found(id))?
            .rules;
        if rule.half {
            // The other IP version stays.
            if let Some(r) = rules.get_mut(&rule.name) {
                r.ether_type = match rule.family {
                    IpFamily::V4 => EtherType::Ipv6,
                    IpFamily::V6 => EtherType::Ipv4,
                };
            }
        } else {
            rules.remove(&rule.name);
        }
        Ok(Removal {
            tenant_name: rule.tenant.clone(),
            tenant,
            also: Vec::new(),
        })
    }
}

async fn read<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    who: &Caller,
) -> Result<Groups, NeutronError> {
    <Groups as Collection<S, C>>::read(a, who).await
}

// ---- groups ----------------------------------------------------------------------------------

fn default_exists() -> NeutronError {
    NeutronError::conflict(
        "SecurityGroupDefaultAlreadyExists",
        "Default security group already exists.",
    )
}

pub(crate) async fn create_group<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(
        &body,
        "security_group",
        &["name", "description", "stateful", "project_id", "tenant_id"],
    )?;
    only(&object, "stateful", true)?;
    let meta = Standard::created(&object)?;
    if meta.name == DEFAULT {
        return Err(default_exists());
    }
    let tenant_name = target_project(&a, &who, &object)?;

    let _serialised = a.writes.lock().await;
    let mut tenant = project_tenant(&a, &tenant_name);
    with_default(&mut tenant);
    let name = loop {
        let candidate = format!("{GROUP_PREFIX}{}", crate::random_hex(4)?);
        if !tenant.security_groups.contains_key(&candidate) {
            break candidate;
        }
    };
    tenant.security_groups.insert(
        name.clone(),
        SecurityGroup {
            rules: egress_rules(),
            ..SecurityGroup::default()
        },
    );
    let id = security_group_id(&tenant_name, &name);
    finish_create::<Groups, S, C>(&a, &who, &tenant_name, tenant, &id, &meta).await
}

// ---- rules -----------------------------------------------------------------------------------

const RULE_ATTRS: &[&str] = &[
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "project_id",
    "tenant_id",
];

/// A rule as the body asks for it.
#[derive(Debug)]
struct AskedRule {
    group_id: String,
    remote_group_id: Option<String>,
    family: IpFamily,
    rule: SecurityRule,
}

fn invalid_attr(key: &str, reason: String) -> NeutronError {
    NeutronError::bad_request(format!("Invalid input for {key}. Reason: {reason}."))
}

fn parse_protocol(value: Option<&Value>, family: IpFamily) -> Result<Protocol, NeutronError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(Protocol::Any),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    };
    let icmpv6 = matches!(text.as_str(), "ipv6-icmp" | "icmpv6" | "58");
    if icmpv6 && family == IpFamily::V4 {
        return Err(NeutronError::bad_input(
            "SecurityGroupEthertypeConflictWithProtocol",
            format!("Invalid ethertype IPv4 for protocol {text}."),
        ));
    }
    match text.as_str() {
        "any" => Ok(Protocol::Any),
        "tcp" | "6" => Ok(Protocol::Tcp),
        "udp" | "17" => Ok(Protocol::Udp),
        "icmp" | "1" => Ok(Protocol::Icmp),
        _ if icmpv6 => Ok(Protocol::Icmp),
        _ => Err(NeutronError::bad_input(
            "SecurityGroupRuleInvalidProtocol",
            format!(
                "Security group rule protocol {text} is not supported by weft: only tcp (6), udp (17), icmp (1), ipv6-icmp (58) and any (null)."
            ),
        )),
    }
}

fn parse_port(value: Option<&Value>) -> Result<Option<u16>, NeutronError> {
    let invalid = |v: &Value| {
        NeutronError::bad_input(
            "SecurityGroupInvalidPortValue",
            format!(
                "Invalid value for port {}",
                v.as_str().map_or(v.to_string(), String::from)
            ),
        )
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| invalid(v))?;
            u16::try_from(n).map(Some).map_err(|_| invalid(v))
        }
    }
}

fn parse_prefix(text: &str) -> Result<IpNet, NeutronError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            NeutronError::bad_input(
                "InvalidCIDR",
                format!("Invalid CIDR {text} given as IP prefix."),
            )
        })
}

fn parse_rule(object: &Map<String, Value>) -> Result<AskedRule, NeutronError> {
    let group_id = required(object, "security_group_id")?;
    let direction = required(object, "direction")?;
    let direction = Direction::parse(&direction).ok_or_else(|| {
        invalid_attr(
            "direction",
            format!("'{direction}' is not in ['ingress', 'egress']"),
        )
    })?;
    let family = match text(object, "ethertype")?.map(|e| e.to_ascii_lowercase()) {
        None => IpFamily::V4,
        Some(e) if e == "ipv4" => IpFamily::V4,
        Some(e) if e == "ipv6" => IpFamily::V6,
        Some(e) => {
            return Err(invalid_attr(
                "ethertype",
                format!("'{e}' is not in ['IPv4', 'IPv6']"),
            ));
        }
    };
    let protocol = parse_protocol(object.get("protocol"), family)?;
    let min = parse_port(object.get("port_range_min"))?;
    let max = parse_port(object.get("port_range_max"))?;
    let destination_port = match (protocol, min, max) {
        (_, None, None) => PortRange::ANY,
        (Protocol::Any, _, _) => {
            return Err(NeutronError::bad_input(
                "SecurityGroupProtocolRequiredWithPorts",
                "Must also specify protocol if port range is given.",
            ));
        }
        (Protocol::Icmp, _, _) => {
            return Err(NeutronError::bad_input(
                "InvalidInput",
                "Invalid input for operation: ICMP type/code matching is not supported by weft: port_range_min and port_range_max must be null for icmp.",
            ));
        }
        (_, Some(0), _) | (_, _, Some(0)) => {
            return Err(NeutronError::bad_input(
                "SecurityGroupInvalidPortValue",
                "Invalid value for port 0",
            ));
        }
        (_, Some(lo), Some(hi)) if lo <= hi => PortRange { lo, hi },
        _ => {
            return Err(NeutronError::bad_input(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            ));
        }
    };
    let remote_ip_prefix = text(object, "remote_ip_prefix")?
        .map(|p| parse_prefix(&p))
        .transpose()?;
    let remote_group_id = text(object, "remote_group_id")?;
    if remote_ip_prefix.is_some() && remote_group_id.is_some() {
        return Err(NeutronError::bad_input(
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
            "Only remote_ip_prefix or remote_group_id may be provided.",
        ));
    }
    if let Some(net) = remote_ip_prefix
        && family_of(&net) != family
    {
        return Err(NeutronError::bad_input(
            "SecurityGroupRuleParameterConflict",
            format!(
                "Conflicting value ethertype {} for CIDR {net}",
                ethertype(family)
            ),
        ));
    }
    if object
        .get("remote_address_group_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(NeutronError::bad_request(
            "remote_address_group_id is not supported by weft (no address groups)",
        ));
    }
    Ok(AskedRule {
        group_id,
        remote_group_id,
        family,
        rule: SecurityRule {
            direction,
            ether_type: match family {
                IpFamily::V4 => EtherType::Ipv4,
                IpFamily::V6 => EtherType::Ipv6,
            },
            protocol,
            destination_port,
            remote_ip_prefix,
            remote_group: None,
            loc: weft_model::Location::default(),
        },
    })
}

pub(crate) async fn create_rule<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let object = resource(&body, "security_group_rule", RULE_ATTRS)?;
    let mut asked = parse_rule(&object)?;
    let meta = Standard::created(&object)?;
    let named = text(&object, "project_id")?.or(text(&object, "tenant_id")?);

    let _serialised = a.writes.lock().await;
    let g = read(&a, &who).await?;
    let group = g.group(&asked.group_id)?;
    if named.is_some_and(|p| p != project_id(&group.tenant) && p != group.tenant) {
        return Err(NeutronError::bad_request(format!(
            "a rule is in its security group's project ({})",
            project_id(&group.tenant)
        )));
    }
    if let Some(remote) = &asked.remote_group_id {
        let r = g.group(remote)?;
        if r.tenant != group.tenant {
            return Err(NeutronError::bad_request(format!(
                "remote_group_id {remote} is in another project: weft's rules name groups of their own project"
            )));
        }
        asked.rule.remote_group = Some(r.name.clone());
    }
    let new = RuleView {
        id: String::new(),
        tenant: group.tenant.clone(),
        group: group.name.clone(),
        group_id: group.id.clone(),
        name: String::new(),
        family: asked.family,
        half: false,
        rule: asked.rule.clone(),
    };
    if let Some(same) = group.rules.iter().find(|r| r.same(&new)) {
        return Err(NeutronError::conflict(
            "SecurityGroupRuleExists",
            format!(
                "Security group rule already exists. Rule id is {}.",
                same.id
            ),
        ));
    }
    let mut tenant = g.tenant(group)?;
    let rules = &mut tenant
        .security_groups
        .get_mut(&group.name)
        .ok_or_else(|| group_not_found(&group.id))?
        .rules;
    let name = loop {
        let candidate = format!("{RULE_PREFIX}{}", crate::random_hex(4)?);
        if !rules.contains_key(&candidate) {
            break candidate;
        }
    };
    rules.insert(name.clone(), asked.rule);
    let id = security_group_rule_id(&group.tenant, &group.name, &name);
    let tenant_name = group.tenant.clone();
    finish_create::<Rules, S, C>(&a, &who, &tenant_name, tenant, &id, &meta).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(body: Value) -> Result<AskedRule, NeutronError> {
        let Value::Object(o) = body else {
            unreachable!()
        };
        parse_rule(&o)
    }

    #[test]
    fn rules_as_neutron_reads_them() {
        let g = "00000000-0000-5000-8000-000000000000";
        let ok = rule(json!({"security_group_id": g, "direction": "ingress",
            "protocol": "6", "port_range_min": 22, "port_range_max": "22",
            "remote_ip_prefix": "10.0.0.5/24"}))
        .unwrap();
        assert_eq!(ok.rule.protocol, Protocol::Tcp);
        assert_eq!(ok.rule.destination_port, PortRange::single(22));
        assert_eq!(ok.rule.remote_ip_prefix, "10.0.0.0/24".parse().ok());
        assert_eq!(ok.family, IpFamily::V4);
        let v6 = rule(json!({"security_group_id": g, "direction": "egress",
            "ethertype": "ipv6", "protocol": "ipv6-icmp", "remote_ip_prefix": "::1"}))
        .unwrap();
        assert_eq!(v6.rule.protocol, Protocol::Icmp);
        assert_eq!(v6.rule.remote_ip_prefix, "::1/128".parse().ok());
        for (body, kind) in [
            (json!({"direction": "ingress"}), "HTTPBadRequest"),
            (
                json!({"security_group_id": g, "direction": "up"}),
                "HTTPBadRequest",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "ethertype": "IPv5"}),
                "HTTPBadRequest",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "protocol": "gre"}),
                "SecurityGroupRuleInvalidProtocol",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "protocol": 58}),
                "SecurityGroupEthertypeConflictWithProtocol",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "protocol": "icmp", "port_range_min": 8}),
                "InvalidInput",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "port_range_min": 8, "port_range_max": 8}),
                "SecurityGroupProtocolRequiredWithPorts",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "protocol": "tcp", "port_range_min": 9, "port_range_max": 8}),
                "SecurityGroupInvalidPortRange",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "protocol": "tcp", "port_range_min": 70000, "port_range_max": 70000}),
                "SecurityGroupInvalidPortValue",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "remote_ip_prefix": "10.0.0.0/33"}),
                "InvalidCIDR",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "remote_ip_prefix": "::/0"}),
                "SecurityGroupRuleParameterConflict",
            ),
            (
                json!({"security_group_id": g, "direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": g}),
                "SecurityGroupRemoteGroupAndRemoteIpPrefix",
            ),
        ] {
            let err = rule(body.clone()).unwrap_err();
            assert_eq!(
                (err.status.as_u16(), err.kind),
                (400, kind),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn a_weft_rule_for_both_versions_shows_as_two() {
        let both = SecurityRule {
            direction: Direction::Ingress,
            ..SecurityRule::default()
        };
        let shown = RuleView::of("t", "web", "r1", &both);
        assert_eq!(shown.len(), 2);
        assert!(shown.iter().all(|r| r.half));
        assert_ne!(shown[0].id, shown[1].id);
        let v4 = SecurityRule {
            remote_ip_prefix: "10.0.0.0/8".parse().ok(),
            ..both
        };
        let shown = RuleView::of("t", "web", "r1", &v4);
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].id, security_group_rule_id("t", "web", "r1"));
        // 0.0.0.0/0 is the same as no prefix.
        let any = RuleView::of(
            "t",
            "web",
            "r2",
            &SecurityRule {
                ether_type: EtherType::Ipv4,
                ..SecurityRule::default()
            },
        );
        let everything = RuleView::of(
            "t",
            "web",
            "r3",
            &SecurityRule {
                remote_ip_prefix: "0.0.0.0/0".parse().ok(),
                ..SecurityRule::default()
            },
        );
        assert!(any[0].same(&everything[0]));
    }

    #[test]
    fn the_default_group_is_neutrons() {
        let g = default_group();
        assert_eq!(g.rules.len(), 4);
        let ingress: Vec<_> = g
            .rules
            .values()
            .filter(|r| r.direction == Direction::Ingress)
            .collect();
        assert_eq!(ingress.len(), 2);
        assert!(
            ingress
                .iter()
                .all(|r| r.remote_group.as_deref() == Some(DEFAULT))
        );
        let mut t = Tenant::default();
        assert!(with_default(&mut t));
        assert!(!with_default(&mut t));
    }
}
