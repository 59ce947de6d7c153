//! JSON wire types. Every struct refuses unknown fields, so a typo is a 400 naming it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use weft_compiler::{CompiledPolicy, Rule};
use weft_model::{EpgPath, Model, ObjectPath};

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiError {
    pub error: String,
    /// The request field at fault, when there is one (`epg`, `tenant.shop.vrf.main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every finding, for validation failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// A MAC address, written `02:42:ac:11:00:02`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a MAC address like 02:42:ac:11:00:02");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `POST /v1/apply`: whole tenants to create or replace, validated as one model together
/// with every other tenant already stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    pub model: Model,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyResponse {
    pub revision: u64,
    pub tenants: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSummary {
    pub name: String,
    pub revision: u64,
    pub vrfs: usize,
    pub bridge_domains: usize,
    pub epgs: usize,
    pub contracts: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpgInfo {
    pub path: EpgPath,
    pub class: u16,
    pub vrf: ObjectPath,
    pub bridge_domain: ObjectPath,
    pub provides: Vec<String>,
    pub consumes: Vec<String>,
    pub endpoints: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractInfo {
    pub path: ObjectPath,
    pub scope: String,
    pub subjects: usize,
    pub providers: Vec<String>,
    pub consumers: Vec<String>,
}

/// `POST /v1/tokens` (admin only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub tenant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    pub token: String,
}

/// Whether a tenant may run privileged tasks (`GET`, `PUT`, `DELETE
/// /v1/privilege/{tenant}`; only the admin changes it). Apps whose spec says `privileged
/// = true` are admitted for a tenant token only while its tenant is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPrivilege {
    pub tenant: String,
    pub allowed: bool,
    /// When the admin allowed it (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// The tenant's privileged apps (they keep running after a deny; new ones, changes
    /// and scaling up are refused).
    #[serde(default)]
    pub privileged_apps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpus: f64,
    pub mem_mb: u64,
    pub disk_mb: u64,
}

/// What an agent says about its node when it joins (with the join token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRegistration {
    pub name: String,
    /// The node's address on the underlay: VXLAN tunnels end here.
    pub underlay_ip: Ipv4Addr,
    /// The node's network namespace; `None` means the host's own.
    #[serde(default)]
    pub netns: Option<String>,
    /// Prefix of every namespace the agent creates on this node (VRFs, endpoints);
    /// starts with `weft`.
    pub netns_prefix: String,
    /// The agent's own API (`http://HOST:PORT`), where controllers read its tasks'
    /// output (Nova's console, `weft logs` from another host), authenticated with the
    /// join token; `None`: it serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    pub resources: Resources,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub registration: NodeRegistration,
    pub revision: u64,
    /// Heartbeat seen within the node deadline.
    pub ready: bool,
    /// Unix time of the last heartbeat, in milliseconds.
    pub last_heartbeat_ms: u64,
    #[serde(default)]
    pub report: Option<NodeReport>,
}

/// `PUT /v1/nodes/{name}/report`: what the agent has installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeReport {
    /// The [`NodeDesired::revision`] last installed.
    pub applied_revision: u64,
    /// The rule tables installed, per VRF present on the node.
    #[serde(default)]
    pub installed: Vec<InstalledVrf>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointStatus>,
    /// The tasks this node runs, by task id.
    #[serde(default)]
    pub tasks: BTreeMap<String, crate::apps::TaskStatus>,
    /// Why the last reconcile failed, if it did (the last good state stays installed).
    #[serde(default)]
    pub error: Option<String>,
}

/// `PUT /v1/nodes/{name}/images`: the Docker images the node's engine holds. Sent by
/// the agent when the set changes (its `digest` changes), not with every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeImages {
    /// A digest of `images` ([`NodeImages::digest_of`]): the controller writes nothing
    /// when it is the one it holds.
    pub digest: String,
    pub images: Vec<NodeImage>,
}

/// One image of a node's Docker engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeImage {
    /// Its `repo:tag` references (no `<none>`).
    pub tags: Vec<String>,
    /// The engine's image id (`sha256:...`).
    pub id: String,
    /// Bytes.
    #[serde(default)]
    pub size: u64,
    /// Creation time, Unix milliseconds.
    #[serde(default)]
    pub created_ms: u64,
}

impl NodeImages {
    /// At most this many images per node.
    pub const MAX_IMAGES: usize = 1000;
    /// At most this many tags per image.
    pub const MAX_TAGS: usize = 64;
    /// A tag or id is at most this long.
    pub const MAX_TEXT: usize = 255;

    /// The images an engine listed, bounded as the controller admits them: `<none>`
    /// tags and untagged images left out, tags and ids longer than [`Self::MAX_TEXT`]
    /// dropped, at most [`Self::MAX_TAGS`] tags an image and [`Self::MAX_IMAGES`]
    /// images (the newest kept), sorted, with their digest.
    pub fn bounded(mut images: Vec<NodeImage>) -> Self {
        for image in &mut images {
            image
                .tags
                .retain(|t| !t.contains("<none>") && !t.is_empty() && t.len() <= Self::MAX_TEXT);
            image.tags.sort();
            image.tags.dedup();
            image.tags.truncate(Self::MAX_TAGS);
        }
        images.retain(|i| !i.tags.is_empty() && !i.id.is_empty() && i.id.len() <= Self::MAX_TEXT);
        images.sort_by(|a, b| {
            b.created_ms
                .cmp(&a.created_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        images.truncate(Self::MAX_IMAGES);
        images.sort_by(|a, b| a.id.cmp(&b.id));
        let digest = Self::digest_of(&images);
        NodeImages { digest, images }
    }

    /// A digest of a list of images (FNV-1a 64 of their JSON, as hex): equal lists have
    /// equal digests.
    pub fn digest_of(images: &[NodeImage]) -> String {
        let bytes = serde_json::to_vec(images).unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// Why these images are not admitted, if they are not: more than the bounds, a
    /// `<none>` or empty tag, or a digest that is not theirs.
    pub fn check(&self) -> Result<(), String> {
        if self.images.len() > Self::MAX_IMAGES {
            return Err(format!(
                "{} images: at most {} per node",
                self.images.len(),
                Self::MAX_IMAGES
            ));
        }
        for image in &self.images {
            if image.id.is_empty() || image.id.len() > Self::MAX_TEXT {
                return Err(format!(
                    "image id {:.64}: 1 to {} characters",
                    image.id,
                    Self::MAX_TEXT
                ));
            }
            if image.tags.is_empty() || image.tags.len() > Self::MAX_TAGS {
                return Err(format!(
                    "image {:.64}: 1 to {} tags",
                    image.id,
                    Self::MAX_TAGS
                ));
            }
            if let Some(tag) = image
                .tags
                .iter()
                .find(|t| t.is_empty() || t.len() > Self::MAX_TEXT || t.contains("<none>"))
            {
                return Err(format!(
                    "image {:.64}: tag {tag:.64} is empty, <none> or longer than {}",
                    image.id,
                    Self::MAX_TEXT
                ));
            }
        }
        if self.digest != Self::digest_of(&self.images) {
            return Err("digest does not match the images".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledVrf {
    pub vrf: ObjectPath,
    pub rules: Vec<Rule>,
}

/// An extra source address an endpoint's port may use (nested containers).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPair {
    pub ip: IpAddr,
    #[serde(default)]
    pub mac: Option<MacAddr>,
}

/// `POST /v1/endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    pub name: String,
    pub epg: EpgPath,
    pub node: String,
    /// Chosen from the bridge domain's subnet when absent.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    #[serde(default)]
    pub mac: Option<MacAddr>,
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// On (the default), the port sends only from its own addresses and allowed
    /// address pairs. Off, it may send from any address (with its EPG's class) and
    /// has no security groups.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub port_security: bool,
    /// Names of security groups of the endpoint's tenant. Absent: the port is governed
    /// by contracts alone. Present (even empty): traffic to and from the port must
    /// also match one of the groups' rules; replies always pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
}

impl EndpointRequest {
    /// An endpoint in `epg` on `node`, with its address and MAC chosen by the
    /// controller, port security on and no security groups (contracts alone).
    pub fn new(name: impl Into<String>, epg: EpgPath, node: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            epg,
            node: node.into(),
            ip: None,
            mac: None,
            allowed_address_pairs: Vec::new(),
            port_security: true,
            security_groups: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// `PATCH /v1/endpoints/{name}`: the fields given replace the endpoint's; the others
/// stay. `"security_groups": null` takes the port out of security groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_address_pairs: Option<Vec<AddressPair>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_security: Option<bool>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub security_groups: Option<Option<Vec<String>>>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointState {
    /// Stored; its node has not installed its port and policy yet.
    Pending,
    /// Port and policy installed on its node.
    Ready,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointStatus {
    pub state: EndpointState,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    pub epg: EpgPath,
    pub node: String,
    /// `<node netns_prefix>-ep-<name>`, created by the node's agent; a task's endpoint
    /// in its second, third... network is in its first endpoint's namespace.
    pub netns: String,
    /// The interface's number in `netns`: `weft<n>`. Only 0 (the default) has the
    /// default route.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interface: u8,
    pub ip: IpAddr,
    pub prefix_len: u8,
    pub gateway: IpAddr,
    pub mac: MacAddr,
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// On (the default), the port sends only from its own addresses and allowed
    /// address pairs. Off, it may send from any address (with its EPG's class) and
    /// has no security groups.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub port_security: bool,
    /// Names of security groups of the endpoint's tenant. Absent: the port is governed
    /// by contracts alone. Present (even empty): traffic to and from the port must
    /// also match one of the groups' rules; replies always pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    pub revision: u64,
    pub status: EndpointStatus,
}

/// `GET /v1/nodes/{name}/desired`: everything an agent needs to program its node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDesired {
    /// The store revision this view was read at; pass it as `?index=` to wait for news.
    pub revision: u64,
    pub policy: CompiledPolicy,
    /// Every registered node, as it registered: what an agent needs of its peers (their
    /// underlay addresses for the tunnels). Not their heartbeats or reports: those
    /// change without a revision, and a node's report carries its installed rule
    /// tables, so every view would grow with the square of the node count.
    pub nodes: Vec<NodeRegistration>,
    pub endpoints: Vec<Endpoint>,
    /// Tasks placed on this node; an agent starts one once its endpoint is installed
    /// and its `env` is resolved.
    #[serde(default)]
    pub tasks: Vec<crate::apps::TaskAssignment>,
}

/// One committed change, as `GET /v1/events` streams it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeEvent {
    pub revision: u64,
    pub kind: ChangeKind,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Put,
    Delete,
}

/// `GET /v1/explain?from=EP&to=EP&proto=tcp&port=N` against the live cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveExplanation {
    pub from: String,
    pub to: String,
    /// The verdict of the stored intent (the compiled policy).
    pub intent: VerdictText,
    /// The verdict of the rules the destination's node reports as installed.
    pub installed: Option<VerdictText>,
    /// The node that enforces (the destination's).
    pub node: String,
    /// Intent and installed state disagree, or the node has not installed this revision.
    pub differs: bool,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictText {
    pub allowed: bool,
    pub text: String,
}

/// One controller serving the cluster's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerInfo {
    pub id: String,
    /// Its API address.
    pub url: String,
    /// Unix milliseconds when it started.
    pub started_ms: u64,
    pub leader: bool,
}

/// `GET /v1/status/leader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllersStatus {
    /// The controller holding the leader key, if any.
    pub leader: Option<String>,
    pub leader_url: Option<String>,
    /// Unix milliseconds when it took the lead.
    pub leader_since_ms: Option<u64>,
    /// The controller that answered.
    pub this: String,
    /// Loop writes this controller had refused because it did not lead (any more).
    pub refused_loop_writes: u64,
    /// Every controller registered in the store (each bound to its lease).
    pub controllers: Vec<ControllerInfo>,
}

#[cfg(test)]
mod node_images_tests {
    use super::*;

    fn image(tags: &[&str], id: &str, created_ms: u64) -> NodeImage {
        NodeImage {
            tags: tags.iter().map(|t| (*t).to_string()).collect(),
            id: id.into(),
            size: 1,
            created_ms,
        }
    }

    #[test]
    fn node_images_are_bounded_and_digested() {
        let long = "a".repeat(256);
        let bounded = NodeImages::bounded(vec![
            image(&["<none>:<none>"], "sha256:1", 1),
            image(&["b:1", "a:1", "a:1", &long], "sha256:2", 2),
            image(&[], "sha256:3", 3),
        ]);
        assert_eq!(bounded.images.len(), 1);
        assert_eq!(bounded.images[0].tags, ["a:1", "b:1"]);
        assert!(bounded.check().is_ok());
        // The digest follows the set, not the engine's order.
        let again = NodeImages::bounded(vec![
            image(&["a:1", "b:1"], "sha256:2", 2),
            image(&["<none>:<none>"], "sha256:1", 1),
        ]);
        assert_eq!(again.digest, bounded.digest);
        let other = NodeImages::bounded(vec![image(&["a:2"], "sha256:2", 2)]);
        assert_ne!(other.digest, bounded.digest);
        // At most MAX_IMAGES, the newest kept.
        let many: Vec<NodeImage> = (0..1500u64)
            .map(|n| image(&[&format!("x:{n}")], &format!("sha256:{n}"), n))
            .collect();
        let kept = NodeImages::bounded(many);
        assert_eq!(kept.images.len(), NodeImages::MAX_IMAGES);
        assert!(kept.images.iter().all(|i| i.created_ms >= 500));
        assert!(kept.check().is_ok());
        // What admission refuses.
        let mut bad = bounded.clone();
        bad.digest = "0".into();
        assert!(bad.check().is_err());
        for images in [
            vec![image(&["<none>:<none>"], "sha256:1", 1)],
            vec![image(&[], "sha256:1", 1)],
            vec![image(&[&long], "sha256:1", 1)],
            vec![image(&["a:1"], "", 1)],
        ] {
            let digest = NodeImages::digest_of(&images);
            assert!(NodeImages { digest, images }.check().is_err());
        }
        let images: Vec<NodeImage> = (0..=NodeImages::MAX_IMAGES as u64)
            .map(|n| image(&["x:1"], &format!("sha256:{n}"), n))
            .collect();
        let digest = NodeImages::digest_of(&images);
        assert!(NodeImages { digest, images }.check().is_err());
    }
}
