//! Plain data types of the policy model. Names are map keys; every object remembers
//! where it was declared so that diagnostics can point at it.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Where an object was declared: file name and 1-based line. Empty for objects built
/// in code or received as JSON without position information.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: String,
    pub line: u32,
}

impl Location {
    pub fn new(file: impl Into<String>, line: u32) -> Self {
        Self {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            (true, 0) => write!(f, "<input>"),
            (true, line) => write!(f, "<input>:{line}"),
            (false, 0) => write!(f, "{}", self.file),
            (false, line) => write!(f, "{}:{line}", self.file),
        }
    }
}

/// The whole desired policy: every tenant, keyed by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    #[serde(rename = "tenant", default)]
    pub tenants: BTreeMap<String, Tenant>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    #[serde(rename = "vrf", default)]
    pub vrfs: BTreeMap<String, Vrf>,
    #[serde(rename = "bridge_domain", default)]
    pub bridge_domains: BTreeMap<String, BridgeDomain>,
    #[serde(rename = "filter", default)]
    pub filters: BTreeMap<String, Filter>,
    #[serde(rename = "contract", default)]
    pub contracts: BTreeMap<String, Contract>,
    #[serde(rename = "taboo", default)]
    pub taboos: BTreeMap<String, Taboo>,
    #[serde(rename = "application_profile", default)]
    pub app_profiles: BTreeMap<String, AppProfile>,
    /// Per-port stateful allow rules (OpenStack's security groups), applied to the
    /// endpoints that name them, in addition to the EPG contracts: both must permit.
    #[serde(
        rename = "security_group",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub security_groups: BTreeMap<String, SecurityGroup>,
    #[serde(skip)]
    pub loc: Location,
}

/// A routing domain (ACI's context). Unenforced VRFs permit all traffic inside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vrf {
    #[serde(default = "default_true")]
    pub enforced: bool,
    /// ACI's vzAny: every EPG of this VRF as one consumer or provider.
    #[serde(default)]
    pub any: AnyEpg,
    /// Discovery that knows policy: DNS at this VRF's gateways answers an endpoint only
    /// with the instances its EPG may reach (the data path enforces policy either way).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub dns_policy: bool,
    #[serde(skip)]
    pub loc: Location,
}

impl Default for Vrf {
    fn default() -> Self {
        Self {
            enforced: true,
            any: AnyEpg::default(),
            dns_policy: true,
            loc: Location::default(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnyEpg {
    #[serde(default)]
    pub provides: Vec<String>,
    #[serde(default)]
    pub consumes: Vec<String>,
    #[serde(skip)]
    pub loc: Location,
}

/// A layer-2 domain inside a VRF, with the subnets its gateway serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeDomain {
    pub vrf: String,
    /// Keyed by CIDR, e.g. `10.1.0.0/24`.
    #[serde(rename = "subnet", default)]
    pub subnets: BTreeMap<String, Subnet>,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    /// The network, parsed from the map key (host bits must be zero).
    #[serde(skip, default = "unspecified_net")]
    pub cidr: IpNet,
    pub gateway: IpAddr,
    #[serde(skip)]
    pub loc: Location,
}

fn unspecified_net() -> IpNet {
    IpNet::V4(ipnet::Ipv4Net::default())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppProfile {
    #[serde(rename = "epg", default)]
    pub epgs: BTreeMap<String, Epg>,
    #[serde(skip)]
    pub loc: Location,
}

/// An endpoint group: the unit of policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Epg {
    pub bridge_domain: String,
    #[serde(default)]
    pub provides: Vec<String>,
    #[serde(default)]
    pub consumes: Vec<String>,
    /// Taboo contracts protecting this EPG: matching traffic to it is denied.
    #[serde(default)]
    pub taboos: Vec<String>,
    /// Intra-EPG isolation: members may not talk to each other.
    #[serde(default)]
    pub isolated: bool,
    /// Preferred-group members of one VRF talk freely to each other.
    #[serde(default)]
    pub preferred_group: bool,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    ApplicationProfile,
    #[default]
    Vrf,
    Tenant,
}

impl Scope {
    pub const NAMES: &'static [&'static str] = &["application-profile", "vrf", "tenant"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "application-profile" => Some(Self::ApplicationProfile),
            "vrf" => Some(Self::Vrf),
            "tenant" => Some(Self::Tenant),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ApplicationProfile => "application-profile",
            Self::Vrf => "vrf",
            Self::Tenant => "tenant",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    #[serde(default)]
    pub scope: Scope,
    #[serde(rename = "subject", default)]
    pub subjects: BTreeMap<String, Subject>,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Permit,
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Permit => "permit",
            Self::Deny => "deny",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub filters: Vec<String>,
    #[serde(default)]
    pub action: Action,
    #[serde(skip)]
    pub loc: Location,
}

/// A security group: a set of allow rules for the ports (endpoints) that are its
/// members. Traffic to a member must match one of its `ingress` rules, traffic from a
/// member one of its `egress` rules; replies of an allowed connection always pass
/// (stateful). A member with no matching rule is closed in that direction. Groups
/// govern only endpoints that name them; endpoints without groups are governed by
/// contracts alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    #[serde(rename = "rule", default)]
    pub rules: BTreeMap<String, SecurityRule>,
    #[serde(skip)]
    pub loc: Location,
}

/// One allow rule of a security group. The peer is `remote_ip_prefix`, or the
/// members of `remote_group` (of the same tenant), or anyone when neither is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityRule {
    pub direction: Direction,
    #[serde(default)]
    pub ether_type: EtherType,
    #[serde(default)]
    pub protocol: Protocol,
    /// Only with `tcp` or `udp`.
    #[serde(default)]
    pub destination_port: PortRange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip_prefix: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_group: Option<String>,
    #[serde(skip)]
    pub loc: Location,
}

/// Which traffic of a member a security rule admits: to it, or from it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Ingress,
    Egress,
}

impl Direction {
    pub const NAMES: &'static [&'static str] = &["ingress", "egress"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingress" => Some(Self::Ingress),
            "egress" => Some(Self::Egress),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        })
    }
}

/// A taboo contract: its subjects deny, and it beats every permit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taboo {
    #[serde(rename = "subject", default)]
    pub subjects: BTreeMap<String, TabooSubject>,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabooSubject {
    pub filters: Vec<String>,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(rename = "entry", default)]
    pub entries: BTreeMap<String, FilterEntry>,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterEntry {
    #[serde(default)]
    pub ether_type: EtherType,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub source_port: PortRange,
    #[serde(default)]
    pub destination_port: PortRange,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EtherType {
    /// IPv4 and IPv6.
    #[default]
    Ip,
    Ipv4,
    Ipv6,
}

impl EtherType {
    pub const NAMES: &'static [&'static str] = &["ip", "ipv4", "ipv6"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ip" => Some(Self::Ip),
            "ipv4" => Some(Self::Ipv4),
            "ipv6" => Some(Self::Ipv6),
            _ => None,
        }
    }

    pub fn matches(self, family: IpFamily) -> bool {
        matches!(
            (self, family),
            (Self::Ip, _) | (Self::Ipv4, IpFamily::V4) | (Self::Ipv6, IpFamily::V6)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    V4,
    V6,
}

/// IP protocol of a filter entry. `Icmp` means ICMP for IPv4 and ICMPv6 for IPv6.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Any,
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    pub const NAMES: &'static [&'static str] = &["any", "tcp", "udp", "icmp"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "any" => Some(Self::Any),
            "tcp" => Some(Self::Tcp),
            "udp" => Some(Self::Udp),
            "icmp" => Some(Self::Icmp),
            _ => None,
        }
    }

    /// Whether ports mean anything for this protocol.
    pub fn has_ports(self) -> bool {
        matches!(self, Self::Tcp | Self::Udp)
    }

    /// Whether an entry for `self` matches a packet of protocol `packet` (never `Any`).
    pub fn matches(self, packet: Protocol) -> bool {
        self == Self::Any || self == packet
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Any => "any",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        })
    }
}

/// An inclusive port range. The default covers every port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    pub fn single(port: u16) -> Self {
        Self { lo: port, hi: port }
    }

    pub fn is_any(self) -> bool {
        self == Self::ANY
    }

    pub fn contains(self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }

    /// Parses `"any"`, `"8080"` or `"8000-8100"`, checking bounds and order.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "any" || text == "*" {
            return Ok(Self::ANY);
        }
        let (lo, hi) = match text.split_once('-') {
            Some((lo, hi)) => (lo.trim(), hi.trim()),
            None => (text, text),
        };
        let lo = parse_port(lo)?;
        let hi = parse_port(hi)?;
        if lo > hi {
            return Err(format!("port range {text:?} is reversed ({lo} > {hi})"));
        }
        Ok(Self { lo, hi })
    }

    /// Checks a numeric range given as two integers of any size.
    pub fn from_bounds(lo: i128, hi: i128) -> Result<Self, String> {
        let check =
            |p: i128| u16::try_from(p).map_err(|_| format!("port {p} is out of range 0..65535"));
        let (lo, hi) = (check(lo)?, check(hi)?);
        if lo > hi {
            return Err(format!("port range {lo}-{hi} is reversed ({lo} > {hi})"));
        }
        Ok(Self { lo, hi })
    }
}

/// What a port that is a fraction or does not fit 64 bits deserializes to, before the
/// JSON reader puts the number as written in its place.
pub(crate) const PORT_NOT_AN_INTEGER: &str = "a port must be an integer from 0 to 65535";

fn parse_port(text: &str) -> Result<u16, String> {
    port_from_literal(text)
}

/// A port written as an integer literal of any length; errors quote it as written.
pub(crate) fn port_from_literal(text: &str) -> Result<u16, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a port number"));
    }
    text.parse::<u16>()
        .map_err(|_| format!("port {text} is out of range 0..65535"))
}

impl Default for PortRange {
    fn default() -> Self {
        Self::ANY
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.is_any() && self.lo == self.hi {
            s.serialize_u16(self.lo)
        } else {
            s.serialize_str(&self.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PortVisitor;
        impl serde::de::Visitor<'_> for PortVisitor {
            type Value = PortRange;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a range string like \"8000-8100\"")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortRange, E> {
                PortRange::from_bounds(v.into(), v.into()).map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortRange, E> {
                PortRange::from_bounds(v.into(), v.into()).map_err(E::custom)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortRange, E> {
                PortRange::parse(v).map_err(E::custom)
            }

            /// A fraction, or an integer too large for 64 bits (JSON reads it as a
            /// float): the document reader replaces this with the number as written.
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<PortRange, E> {
                Err(E::custom(PORT_NOT_AN_INTEGER))
            }
        }
        d.deserialize_any(PortVisitor)
    }
}
