//! The app spec: what Marathon and Nomad users declare. The JSON twin is this same
//! structure through serde; HCL documents are read into it by [`crate::parse_apps_hcl`].

use crate::duration::Duration;
use crate::image::ImageRef;
use crate::template::EnvTemplate;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use weft_model::{EpgPath, Location};

/// A set of apps, keyed by id: `{"app": {"master": {...}}}` in JSON, `app "master" {...}` in HCL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Apps {
    #[serde(rename = "app", default)]
    pub apps: BTreeMap<String, AppSpec>,
}

impl Apps {
    pub fn get(&self, id: &str) -> Option<&AppSpec> {
        self.apps.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &AppSpec> {
        self.apps.values()
    }
}

/// One app: N identical tasks of a process or a container, joined to one EPG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// The app's name; the key it is stored under.
    #[serde(skip)]
    pub id: String,
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// Process runtime: a shell command. Exactly one of `cmd` and `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Docker runtime: the image to run, with `args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    pub cpus: f64,
    /// MiB.
    pub mem: u64,
    /// MiB; 0 (the default) reserves no disk.
    #[serde(default)]
    pub disk: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvTemplate>,
    /// The EPG the app's tasks join.
    pub epg: EpgPath,
    #[serde(rename = "constraint", default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    #[serde(
        rename = "health_check",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub health_checks: Vec<HealthCheck>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// Only apps that run nested containers need it (the paper's problem 4): per app, never global.
    #[serde(default)]
    pub privileged: bool,
    /// Named ports the tasks listen on (`http = 8080`). Discovery shows them: the
    /// service's port is the first by name, each one also under its own name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u16>,
    /// Tags of the app's service in discovery (`<tag>.<app>.service.weft`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Metadata of the app's service in discovery.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Security groups (of the EPG's tenant) of every task's endpoint; absent: the EPG's
    /// contracts alone, as for any endpoint without groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    /// An existing endpoint (a Neutron port) the app's one task uses instead of getting
    /// its own: the task is placed on the endpoint's node and has its address, MAC,
    /// security groups and address pairs; the endpoint outlives the task. At most one
    /// instance, replaced stop-first (`upgrade_strategy` 0 and 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The address of the one task's own endpoint (in the EPG's subnet and free), instead
    /// of one from weft's IPAM (Nova's `fixed_ip`). At most one instance, replaced
    /// stop-first, as with `endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::IpAddr>,
    /// More networks each task joins after its first (`epg`): each through an endpoint
    /// of the task's own ([`AppSpec::extra_endpoint`]), the namespace's interface
    /// `weft<i>`. Only the first network has the default route.
    #[serde(rename = "network", default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<AppNetwork>,
    #[serde(skip)]
    pub loc: Location,
}

/// One more network of an app's tasks (Nova's second, third... `networks` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppNetwork {
    /// The EPG this interface joins.
    pub epg: EpgPath,
    /// Its address (in the EPG's subnet and free) instead of one from weft's IPAM: at
    /// most one instance, replaced stop-first, as with the app's `ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::IpAddr>,
}

/// At most this many networks after the first: interfaces `weft1` to `weft7`.
pub const MAX_EXTRA_NETWORKS: usize = 7;

fn default_instances() -> u32 {
    1
}

/// How a task runs, derived from `cmd` / `image`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime<'a> {
    Process {
        cmd: &'a str,
    },
    Docker {
        image: &'a ImageRef,
        args: &'a [String],
    },
}

impl AppSpec {
    /// A minimal valid spec, for tests and builders.
    pub fn new(id: &str, epg: EpgPath, cpus: f64, mem: u64) -> Self {
        Self {
            id: id.to_string(),
            instances: 1,
            cmd: Some("true".into()),
            image: None,
            args: Vec::new(),
            cpus,
            mem,
            disk: 0,
            env: BTreeMap::new(),
            epg,
            constraints: Vec::new(),
            health_checks: Vec::new(),
            restart: RestartPolicy::default(),
            upgrade_strategy: UpgradeStrategy::default(),
            ports: BTreeMap::new(),
            tags: Vec::new(),
            meta: BTreeMap::new(),
            security_groups: None,
            endpoint: None,
            ip: None,
            networks: Vec::new(),
            privileged: false,
            loc: Location::default(),
        }
    }

    /// The runtime; `None` only for a spec that failed validation (both or neither set).
    pub fn runtime(&self) -> Option<Runtime<'_>> {
        match (&self.cmd, &self.image) {
            (Some(cmd), None) => Some(Runtime::Process { cmd }),
            (None, Some(image)) => Some(Runtime::Docker {
                image,
                args: &self.args,
            }),
            _ => None,
        }
    }

    /// The endpoint a task of this app runs in: [`AppSpec::endpoint`], or its own,
    /// named after the task.
    pub fn endpoint_of<'a>(&'a self, task: &'a str) -> &'a str {
        self.endpoint.as_deref().unwrap_or(task)
    }

    /// The endpoint of task `task` in the app's `i`-th network after the first (from 1):
    /// `<task>-n<i>`, which no task id is (task ids end in a number after a `-`).
    pub fn extra_endpoint(task: &str, i: usize) -> String {
        format!("{task}-n{i}")
    }

    /// Every endpoint a task of this app runs in, its first network's first; the
    /// position is the interface's number (`weft0`, `weft1`...).
    pub fn endpoints_of(&self, task: &str) -> Vec<String> {
        std::iter::once(self.endpoint_of(task).to_string())
            .chain((1..=self.networks.len()).map(|i| Self::extra_endpoint(task, i)))
            .collect()
    }

    /// Apps whose addresses this app's environment needs.
    pub fn dependencies(&self) -> BTreeSet<&str> {
        self.env
            .values()
            .flat_map(EnvTemplate::referenced_apps)
            .collect()
    }

    /// The health check whose failures replace tasks: the one tolerating fewest failures.
    pub fn max_consecutive_failures(&self) -> Option<u32> {
        self.health_checks
            .iter()
            .map(|h| h.max_consecutive_failures)
            .min()
    }
}

/// A placement rule over node attributes (`hostname` is always an attribute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operator", deny_unknown_fields)]
pub enum Constraint {
    /// At most one task per value of `attribute` (per node, with `hostname`).
    #[serde(rename = "unique")]
    Unique { attribute: String },
    /// Only nodes whose `attribute` equals `value`.
    #[serde(rename = "=")]
    Equal { attribute: String, value: String },
    /// Only nodes whose `attribute` matches the regular expression `value` (whole value).
    #[serde(rename = "like")]
    Like { attribute: String, value: Pattern },
    /// At most `value` tasks per value of `attribute`.
    #[serde(rename = "max_per")]
    MaxPer { attribute: String, value: u32 },
    /// Tasks spread evenly over the values of `attribute`: a task goes only to a value
    /// that has the fewest tasks (Marathon's GROUP_BY).
    #[serde(rename = "spread")]
    Spread { attribute: String },
}

impl Constraint {
    pub const OPERATORS: &[&str] = &["unique", "=", "like", "max_per", "spread"];

    pub fn attribute(&self) -> &str {
        match self {
            Self::Unique { attribute }
            | Self::Equal { attribute, .. }
            | Self::Like { attribute, .. }
            | Self::MaxPer { attribute, .. }
            | Self::Spread { attribute } => attribute,
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unique { attribute } => write!(f, "{attribute} unique"),
            Self::Equal { attribute, value } => write!(f, "{attribute} = {value:?}"),
            Self::Like { attribute, value } => write!(f, "{attribute} like {:?}", value.as_str()),
            Self::MaxPer { attribute, value } => write!(f, "{attribute} max_per {value}"),
            Self::Spread { attribute } => write!(f, "spread over {attribute}"),
        }
    }
}

/// A regular expression that must match a whole attribute value.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    anchored: Regex,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_text:?} is not a regular expression: {reason}")]
pub struct PatternError {
    pub source_text: String,
    pub reason: String,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Self, PatternError> {
        let anchored = Regex::new(&format!("^(?:{source})$")).map_err(|e| PatternError {
            source_text: source.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            source: source.to_string(),
            anchored,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, value: &str) -> bool {
        self.anchored.is_match(value)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Self::new(&source).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    Http,
    Tcp,
    Command,
}

impl HealthCheckKind {
    pub const NAMES: &[&str] = &["http", "tcp", "command"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http" => Some(Self::Http),
            "tcp" => Some(Self::Tcp),
            "command" => Some(Self::Command),
            _ => None,
        }
    }
}

/// A health check, with Marathon's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(rename = "type")]
    pub kind: HealthCheckKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP path; `/` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Failures during this time after start do not count.
    #[serde(default = "HealthCheck::default_grace_period")]
    pub grace_period: Duration,
    #[serde(default = "HealthCheck::default_interval")]
    pub interval: Duration,
    #[serde(default = "HealthCheck::default_timeout")]
    pub timeout: Duration,
    #[serde(default = "HealthCheck::default_max_consecutive_failures")]
    pub max_consecutive_failures: u32,
}

impl HealthCheck {
    pub fn default_grace_period() -> Duration {
        Duration::from_secs(300)
    }
    pub fn default_interval() -> Duration {
        Duration::from_secs(60)
    }
    pub fn default_timeout() -> Duration {
        Duration::from_secs(20)
    }
    pub fn default_max_consecutive_failures() -> u32 {
        3
    }

    pub fn new(kind: HealthCheckKind) -> Self {
        Self {
            kind,
            port: None,
            path: None,
            command: None,
            grace_period: Self::default_grace_period(),
            interval: Self::default_interval(),
            timeout: Self::default_timeout(),
            max_consecutive_failures: Self::default_max_consecutive_failures(),
        }
    }
}

/// Delay before relaunching a failed task: `backoff * backoff_factor^(failures-1)`,
/// capped at `max_delay` (Marathon's backoffSeconds / backoffFactor / maxLaunchDelay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    #[serde(default = "RestartPolicy::default_backoff")]
    pub backoff: Duration,
    #[serde(default = "RestartPolicy::default_backoff_factor")]
    pub backoff_factor: f64,
    #[serde(default = "RestartPolicy::default_max_delay")]
    pub max_delay: Duration,
}

impl RestartPolicy {
    fn default_backoff() -> Duration {
        Duration::from_secs(1)
    }
    fn default_backoff_factor() -> f64 {
        1.15
    }
    fn default_max_delay() -> Duration {
        Duration::from_secs(3600)
    }
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff: Self::default_backoff(),
            backoff_factor: Self::default_backoff_factor(),
            max_delay: Self::default_max_delay(),
        }
    }
}

/// Marathon's rolling-update bounds, fractions of `instances` in 0..=1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeStrategy {
    /// Healthy tasks never drop below `ceil(instances * minimum_health_capacity)`.
    #[serde(default = "one")]
    pub minimum_health_capacity: f64,
    /// Tasks never exceed `floor(instances * (1 + maximum_over_capacity))`.
    #[serde(default = "one")]
    pub maximum_over_capacity: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        Self {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}
