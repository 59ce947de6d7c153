//! The compiler's output: per-VRF zoning rules keyed by class, never by endpoint.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use weft_model::{Action, EpgPath, IpFamily, ObjectPath, PortRange, Protocol};

/// A 16-bit EPG class ID, as ACI's pcTag. It travels in the packet mark and in the
/// VXLAN-GBP group-policy field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClassId(pub u16);

impl ClassId {
    /// Reserved for the fabric itself (0 means "unknown", never allocated).
    pub const SYSTEM: std::ops::RangeInclusive<u16> = 1..=15;
    /// EPGs that take part in a contract across VRFs: unique in the whole fabric.
    pub const GLOBAL: std::ops::RangeInclusive<u16> = 16..=16385;
    /// Every other EPG: unique inside its VRF only.
    pub const LOCAL: std::ops::RangeInclusive<u16> = 16386..=65535;
    /// Unknown source (a packet from a port with no class).
    pub const UNKNOWN: ClassId = ClassId(0);

    pub fn is_global(self) -> bool {
        Self::GLOBAL.contains(&self.0)
    }
}

impl fmt::Display for ClassId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which classes a rule's source or destination matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassSel {
    /// Exactly this class.
    Class(ClassId),
    /// Every EPG of the rule's VRF (ACI's vzAny).
    Vrf,
    /// Every class whatsoever, including EPGs of other VRFs (taboo sources).
    Any,
}

impl fmt::Display for ClassSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Class(c) => write!(f, "{c}"),
            Self::Vrf => f.write_str("vrf-any"),
            Self::Any => f.write_str("any"),
        }
    }
}

/// Precedence of a rule: a lower tier always wins over a higher one, whatever it
/// matches. Inside one tier every rule has the same action, except `IntraEpg`, whose
/// rules never overlap (one per EPG).
///
/// Intra-EPG traffic is decided before any taboo or deny subject, as ACI's zoning-rule
/// priorities do (class-eq rules come before black-list, EPG-to-EPG and vzAny rules):
/// contracts, taboos and vzAny govern traffic between EPGs, isolation governs traffic
/// inside one. Deny subjects and taboos still beat every permit between EPGs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// An unenforced VRF permits everything inside it.
    Unenforced,
    /// Traffic inside one EPG: permitted, or denied when the EPG is isolated.
    IntraEpg,
    /// Taboo contracts and deny subjects: deny beats any permit between EPGs.
    Deny,
    /// Permit subjects of contracts between a consumer and a provider.
    Contract,
    /// A VRF with a preferred group denies EPGs outside it (unless a contract permits).
    PreferredExclusion,
    /// Preferred-group members of a VRF talk freely.
    PreferredGroup,
}

/// Where a rule came from: enough to explain a verdict.
///
/// A compiled model can hold millions of rules (consumers x providers x entries), so a
/// trace shares what many rules have in common instead of copying it: every variant is
/// at most one `Arc` to the filter entry's site plus the two party names, and the rules
/// of one contract entry point at the same site. The JSON shape is that of plain fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Trace {
    Contract {
        #[serde(flatten)]
        site: Arc<ContractSite>,
        consumer: Arc<str>,
        provider: Arc<str>,
    },
    Taboo {
        #[serde(flatten)]
        site: Arc<TabooSite>,
    },
    IntraEpg {
        epg: Arc<EpgPath>,
    },
    Isolation {
        epg: Arc<EpgPath>,
    },
    PreferredGroup {
        vrf: Arc<ObjectPath>,
    },
    PreferredExclusion {
        epg: Arc<EpgPath>,
    },
    Unenforced {
        vrf: Arc<ObjectPath>,
    },
}

/// One filter entry of one subject of a contract: shared by every rule it produces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContractSite {
    pub contract: ObjectPath,
    pub subject: String,
    pub filter: String,
    pub entry: String,
}

/// One filter entry of one taboo subject, protecting one EPG.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TabooSite {
    pub taboo: ObjectPath,
    pub subject: String,
    pub filter: String,
    pub entry: String,
    pub protects: EpgPath,
}

impl Trace {
    /// The contract a rule came from, if it came from one.
    pub fn contract(&self) -> Option<&ObjectPath> {
        match self {
            Self::Contract { site, .. } => Some(&site.contract),
            _ => None,
        }
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Contract {
                site,
                consumer,
                provider,
            } => write!(
                f,
                "contract {} subject {} filter {} entry {} ({consumer} consumes, {provider} provides)",
                site.contract, site.subject, site.filter, site.entry
            ),
            Self::Taboo { site } => write!(
                f,
                "taboo {} subject {} filter {} entry {} protecting {}",
                site.taboo, site.subject, site.filter, site.entry, site.protects
            ),
            Self::IntraEpg { epg } => write!(f, "intra-EPG traffic inside {epg}"),
            Self::Isolation { epg } => write!(f, "intra-EPG isolation of {epg}"),
            Self::PreferredGroup { vrf } => write!(f, "preferred group of {vrf}"),
            Self::PreferredExclusion { epg } => {
                write!(
                    f,
                    "{epg} is outside the preferred group and no contract permits it"
                )
            }
            Self::Unenforced { vrf } => write!(f, "VRF {vrf} is unenforced"),
        }
    }
}

/// One zoning rule: (source class, destination class, protocol, ports) → action.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub tier: Tier,
    pub src: ClassSel,
    pub dst: ClassSel,
    /// `None` matches IPv4 and IPv6.
    pub family: Option<IpFamily>,
    pub proto: Protocol,
    pub sport: PortRange,
    pub dport: PortRange,
    pub action: Action,
    pub trace: Trace,
}

impl Rule {
    /// Whether the rule matches the flow's protocol fields (classes are checked by the table).
    pub fn matches_flow(&self, flow: &Flow) -> bool {
        self.family.is_none_or(|f| f == flow.family)
            && self.proto.matches(flow.proto)
            && (!flow.proto.has_ports()
                || (self.sport.contains(flow.sport) && self.dport.contains(flow.dport)))
    }
}

/// A new connection's first packet, as the fabric sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flow {
    pub family: IpFamily,
    /// Never `Protocol::Any`.
    pub proto: Protocol,
    pub sport: u16,
    pub dport: u16,
}

impl Flow {
    pub fn new(proto: Protocol, dport: u16) -> Self {
        Self {
            family: IpFamily::V4,
            proto,
            sport: 40000,
            dport,
        }
    }
}

/// A bridge domain as the fabric needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeDomainPolicy {
    pub path: ObjectPath,
    /// 24-bit VXLAN network identifier, stable across compiles.
    pub vni: u32,
    /// The anycast gateway MAC, the same on every node.
    pub gateway_mac: [u8; 6],
    /// (subnet, gateway address)
    pub subnets: Vec<(IpNet, IpAddr)>,
}

/// An EPG as the fabric needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpgPolicy {
    pub path: EpgPath,
    pub class: ClassId,
    pub vrf: ObjectPath,
    pub bridge_domain: ObjectPath,
}

/// Everything one VRF needs: its bridge domains, its EPGs' classes and its rule table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrfPolicy {
    pub path: ObjectPath,
    /// 24-bit VRF identifier, stable across compiles.
    pub id: u32,
    pub enforced: bool,
    pub bridge_domains: Vec<BridgeDomainPolicy>,
    /// Classes that belong to this VRF (what `ClassSel::Vrf` matches).
    pub members: BTreeMap<ClassId, EpgPath>,
    /// Sorted by tier, then by key: deterministic for the same input.
    pub rules: Vec<Rule>,
}

/// The verdict for a flow, with the rule that decided it (none for the default deny).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'a> {
    pub action: Action,
    pub rule: Option<&'a Rule>,
}

impl VrfPolicy {
    /// Whether `sel` matches `class` in this VRF's table.
    pub fn selects(&self, sel: ClassSel, class: ClassId) -> bool {
        match sel {
            ClassSel::Class(c) => c == class,
            ClassSel::Vrf => self.members.contains_key(&class),
            ClassSel::Any => true,
        }
    }

    /// Evaluates a flow against this table: the first matching rule by tier wins;
    /// nothing matching means deny. This is the semantics the fabric must reproduce.
    pub fn evaluate(&self, src: ClassId, dst: ClassId, flow: &Flow) -> Verdict<'_> {
        self.rules
            .iter()
            .find(|r| self.selects(r.src, src) && self.selects(r.dst, dst) && r.matches_flow(flow))
            .map_or(
                Verdict {
                    action: Action::Deny,
                    rule: None,
                },
                |r| Verdict {
                    action: r.action,
                    rule: Some(r),
                },
            )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_trace_keeps_its_plain_json_shape() {
        // Agents keep the last desired state on disk: the shape must not depend on how
        // the compiler shares a trace's parts in memory.
        let trace = Trace::Contract {
            site: Arc::new(ContractSite {
                contract: ObjectPath::tenant("t").child("contract", "c"),
                subject: "s".into(),
                filter: "f".into(),
                entry: "e".into(),
            }),
            consumer: "t/a/web".into(),
            provider: "t/a/app".into(),
        };
        let json = serde_json::to_value(&trace).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "contract", "contract": "t/contract:c", "subject": "s", "filter": "f",
                "entry": "e", "consumer": "t/a/web", "provider": "t/a/app"
            })
        );
        assert_eq!(serde_json::from_value::<Trace>(json).unwrap(), trace);
        let intra = Trace::IntraEpg {
            epg: Arc::new(EpgPath::new("t", "a", "web")),
        };
        let json = serde_json::to_string(&intra).unwrap();
        assert_eq!(serde_json::from_str::<Trace>(&json).unwrap(), intra);
    }
}
