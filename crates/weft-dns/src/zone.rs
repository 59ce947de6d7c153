//! A VRF's names as each asker may see them, built once per discovery view.
//!
//! Every asker (an endpoint of the node, by source address) maps to one table: per
//! tenant and, when the VRF's DNS knows policy, per EPG. A table holds only what its
//! askers may be told, so answering is a hash lookup and a copy: policy, health and
//! tenancy were decided when the view was built, not per query.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use weft_api::{DnsSettings, VrfDiscovery};

/// A name's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A service name (`web.service`, `v1.web.service`, `_web._v1.service`): its
    /// instances the table's askers may reach.
    Service(Vec<Target>),
    /// `<node>.node` or `<hex>.addr`: one address.
    Host(IpAddr),
    /// A name that exists only because longer names end in it (`service`): NODATA,
    /// never NXDOMAIN (RFC 8020).
    EmptyNonTerminal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub address: IpAddr,
    pub port: u16,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    pub names: HashMap<Box<str>, Entry>,
}

/// Everything DNS answers in one VRF of one node.
#[derive(Debug)]
pub struct Zone {
    /// Lowercase labels of each served domain (`weft`, `consul`).
    pub(crate) domains: Vec<Vec<Vec<u8>>>,
    pub(crate) datacenter: Vec<u8>,
    pub(crate) ttl: u32,
    pub(crate) serial: u32,
    pub(crate) askers: HashMap<IpAddr, usize>,
    /// The table for a source that is not an endpoint (the controller's own listener).
    pub(crate) default_table: Option<usize>,
    pub(crate) tables: Vec<Table>,
    /// Names outside the domains are forwarded (else refused).
    pub(crate) recursion: bool,
}

impl Zone {
    /// The zone of `vrf`: endpoints outside its askers are refused.
    pub fn build(settings: &DnsSettings, vrf: &VrfDiscovery, digest: u64) -> Self {
        let mut zone = Self::empty(settings, digest);
        let mut by_key: HashMap<(u32, Option<u32>), usize> = HashMap::new();
        for asker in &vrf.askers {
            let class = vrf.policy_aware.then_some(asker.class);
            let key = (asker.tenant, class);
            let table = match by_key.get(&key) {
                Some(t) => *t,
                None => {
                    let Some(tenant) = vrf.tenants.get(asker.tenant as usize) else {
                        continue;
                    };
                    zone.tables.push(table_for(tenant, class));
                    by_key.insert(key, zone.tables.len() - 1);
                    zone.tables.len() - 1
                }
            };
            zone.askers.insert(asker.address, table);
        }
        zone
    }

    /// A zone that answers every source with `tenant`'s names, unfiltered by policy:
    /// the controller's own listener, outside the fabric.
    pub fn for_anyone(settings: &DnsSettings, tenant: &weft_api::TenantDiscovery) -> Self {
        let mut zone = Self::empty(settings, 0);
        zone.tables.push(table_for(tenant, None));
        zone.default_table = Some(0);
        zone
    }

    /// A zone that knows nothing (before the first view arrives): refuses everyone.
    pub fn empty(settings: &DnsSettings, digest: u64) -> Self {
        let labels = |d: &str| -> Vec<Vec<u8>> {
            d.trim_matches('.')
                .split('.')
                .filter(|l| !l.is_empty())
                .map(|l| l.to_ascii_lowercase().into_bytes())
                .collect()
        };
        let mut domains = vec![labels(&settings.domain)];
        if let Some(alt) = &settings.alt_domain {
            domains.push(labels(alt));
        }
        Self {
            domains,
            datacenter: settings.datacenter.to_ascii_lowercase().into_bytes(),
            ttl: settings.ttl,
            serial: (digest as u32).max(1),
            askers: HashMap::new(),
            default_table: None,
            tables: Vec::new(),
            recursion: false,
        }
    }

    /// Forwards names outside the domains (the agent has recursors) or refuses them.
    pub fn with_recursion(mut self, recursion: bool) -> Self {
        self.recursion = recursion;
        self
    }

    pub(crate) fn table_for(&self, source: IpAddr) -> Option<&Table> {
        self.askers
            .get(&source)
            .or(self.default_table.as_ref())
            .and_then(|t| self.tables.get(*t))
    }

    /// How many askers this zone knows (for logs and tests).
    pub fn askers(&self) -> usize {
        self.askers.len()
    }
}

/// A DNS label weft serves: letters, digits, `-` and `_`, 1 to 63 bytes, lowercased.
fn label(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| s.to_ascii_lowercase())
}

/// `c0a80001` for 192.168.0.1, 32 digits for IPv6: Consul's `.addr.` names.
pub(crate) fn hex_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.octets().iter().map(|b| format!("{b:02x}")).collect(),
        IpAddr::V6(v6) => v6.octets().iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn table_for(tenant: &weft_api::TenantDiscovery, class: Option<u32>) -> Table {
    let mut names: HashMap<Box<str>, Entry> = HashMap::new();
    let mut add = |name: String, target: Target| {
        if let Entry::Service(targets) = names
            .entry(name.into_boxed_str())
            .or_insert_with(|| Entry::Service(Vec::new()))
            && !targets.contains(&target)
        {
            targets.push(target);
        }
    };
    for service in &tenant.services {
        let Some(svc) = label(&service.name) else {
            continue;
        };
        for i in &service.instances {
            if class.is_some_and(|c| i.hidden_from.binary_search(&c).is_ok()) {
                continue;
            }
            let target = Target {
                address: i.address,
                port: i.port,
            };
            add(format!("{svc}.service"), target);
            // `_web._tcp` is RFC 2782's form without a tag (Consul's too).
            add(format!("_{svc}._tcp.service"), target);
            for tag in i.tags.iter().filter_map(|t| label(t)) {
                add(format!("{tag}.{svc}.service"), target);
                add(format!("_{svc}._{tag}.service"), target);
            }
        }
    }
    let mut hosts: Vec<(String, IpAddr)> = tenant
        .nodes
        .iter()
        .filter_map(|n| Some((format!("{}.node", label(&n.name)?), n.address)))
        .collect();
    for entry in names.values() {
        if let Entry::Service(targets) = entry {
            for t in targets {
                hosts.push((format!("{}.addr", hex_address(t.address)), t.address));
            }
        }
    }
    for (name, address) in hosts {
        names.insert(name.into_boxed_str(), Entry::Host(address));
    }
    let mut parents = HashSet::new();
    for name in names.keys() {
        let mut rest: &str = name;
        while let Some((_, parent)) = rest.split_once('.') {
            parents.insert(parent.to_string());
            rest = parent;
        }
    }
    for parent in parents {
        names
            .entry(parent.into_boxed_str())
            .or_insert(Entry::EmptyNonTerminal);
    }
    Table { names }
}
