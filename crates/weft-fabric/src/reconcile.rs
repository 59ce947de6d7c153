//! The node agent: desired state in, minimal changes out.

use crate::desired::DesiredNode;
use crate::error::FabricError;
use crate::exec::{Runner, SystemRunner};
use crate::link::{self, LinkApplier};
use crate::names;
use crate::netns;
use crate::nft::{NftApplier, NftDesired, apply::diff_batch, render::structure, render_vrf};
use crate::state::{DEFAULT_DIR, StateStore, VrfState};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Namespace operations, faked in unit tests.
pub trait NetnsOps: Send + Sync + std::fmt::Debug {
    fn exists(&self, name: &str) -> bool;
    fn create(&self, name: &str) -> Result<(), FabricError>;
    fn delete(&self, name: &str) -> Result<(), FabricError>;
    fn list(&self, prefix: &str) -> Vec<String>;
    fn sysctl(&self, name: &str, key: &str, value: &str) -> Result<(), FabricError>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemNetns;

impl NetnsOps for SystemNetns {
    fn exists(&self, name: &str) -> bool {
        netns::exists(name)
    }
    fn create(&self, name: &str) -> Result<(), FabricError> {
        netns::create(name)
    }
    fn delete(&self, name: &str) -> Result<(), FabricError> {
        netns::delete(name)
    }
    fn list(&self, prefix: &str) -> Vec<String> {
        netns::list_with_prefix(prefix)
    }
    fn sysctl(&self, name: &str, key: &str, value: &str) -> Result<(), FabricError> {
        netns::sysctl(name, key, value)
    }
}

/// What one reconcile changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub namespaces_created: Vec<String>,
    pub namespaces_deleted: Vec<String>,
    pub links_created: usize,
    pub links_deleted: usize,
    pub nft_elements_added: usize,
    pub nft_elements_removed: usize,
    /// Time spent in `nft -f` (the kernel transaction included).
    pub nft_time: Duration,
    pub total_time: Duration,
}

impl ReconcileReport {
    /// Number of changes; 0 means the system already matched.
    pub fn changes(&self) -> usize {
        self.namespaces_created.len()
            + self.namespaces_deleted.len()
            + self.links_created
            + self.links_deleted
            + self.nft_elements_added
            + self.nft_elements_removed
    }
}

/// The fabric agent of one node.
#[derive(Debug)]
pub struct Fabric {
    ns: Arc<dyn NetnsOps>,
    links: LinkApplier,
    nft: NftApplier,
    store: StateStore,
    /// Per VRF namespace: what was installed last (None = unknown, e.g. fresh agent).
    installed: BTreeMap<String, VrfState>,
}

impl Fabric {
    /// An agent on the real system, with its state under `/run/weft-fabric`.
    pub fn system() -> Self {
        Self::new(
            Arc::new(SystemRunner),
            Arc::new(SystemNetns),
            StateStore::in_dir(DEFAULT_DIR),
        )
    }

    pub fn new(runner: Arc<dyn Runner>, ns: Arc<dyn NetnsOps>, store: StateStore) -> Self {
        Self {
            ns,
            links: LinkApplier::new(runner.clone()),
            nft: NftApplier::new(runner),
            store,
            installed: BTreeMap::new(),
        }
    }

    pub fn nft(&self) -> &NftApplier {
        &self.nft
    }

    /// Brings the node to `desired`. Checks everything checkable first: a state that
    /// cannot be installed is refused before anything is touched.
    pub fn reconcile(&mut self, desired: &DesiredNode) -> Result<ReconcileReport, FabricError> {
        let started = Instant::now();
        desired.validate()?;
        if let Some(node) = &desired.node_netns
            && !self.ns.exists(node)
        {
            return Err(FabricError::Endpoint {
                endpoint: format!("node {}", desired.node),
                why: format!("node namespace {node:?} does not exist"),
            });
        }
        for vrf in &desired.vrfs {
            for ep in &vrf.local {
                if !self.ns.exists(&ep.netns) {
                    return Err(FabricError::MissingNamespace {
                        endpoint: ep.name.clone(),
                        netns: ep.netns.clone(),
                    });
                }
            }
        }
        let mut report = ReconcileReport::default();
        let mut wanted: HashSet<String> = HashSet::new();
        for vrf in &desired.vrfs {
            let ns = names::vrf_netns(&desired.vrf_netns_prefix, vrf.policy.id);
            wanted.insert(ns.clone());
            let facts = link::desired_facts(desired, vrf);
            let elements = render_vrf(vrf);
            self.reconcile_vrf(&ns, facts, elements, &mut report)?;
        }
        // VRF namespaces of this node that are no longer wanted.
        let mine = format!("{}-v", desired.vrf_netns_prefix);
        for ns in self.ns.list(&mine) {
            let is_vrf_ns = ns[mine.len()..].chars().all(|c| c.is_ascii_digit());
            if is_vrf_ns && !wanted.contains(&ns) {
                self.ns.delete(&ns)?;
                self.store.remove(&ns);
                self.installed.remove(&ns);
                report.namespaces_deleted.push(ns);
            }
        }
        report.total_time = started.elapsed();
        tracing::info!(node = %desired.node, changes = report.changes(), ?report.total_time, "reconciled");
        Ok(report)
    }

    fn reconcile_vrf(
        &mut self,
        ns: &str,
        facts: std::collections::BTreeSet<link::LinkFact>,
        elements: NftDesired,
        report: &mut ReconcileReport,
    ) -> Result<(), FabricError> {
        let fresh = !self.ns.exists(ns);
        if fresh {
            self.ns.create(ns)?;
            for (key, value) in [
                ("net/ipv4/ip_forward", "1"),
                ("net/ipv6/conf/all/forwarding", "1"),
                // Bridged IP goes through the inet hooks: that is where conntrack and
                // the class lookups live.
                ("net/bridge/bridge-nf-call-iptables", "1"),
                ("net/bridge/bridge-nf-call-ip6tables", "1"),
            ] {
                self.ns.sysctl(ns, key, value)?;
            }
            self.installed.remove(ns);
            self.store.remove(ns);
            report.namespaces_created.push(ns.to_string());
        }
        let tables_exist = !fresh && self.nft.tables_exist(ns)?;
        let known = match self.installed.get(ns) {
            Some(s) => Some(s.clone()),
            None if tables_exist => self.store.load(ns),
            None => None,
        };
        // Tables first (empty = every port dropped), so that a new port never passes a
        // packet before its class and rules are in.
        let mut nft_current = known.as_ref().map(|k| k.nft.clone());
        if !tables_exist {
            let t = Instant::now();
            let batch = crate::nft::NftBatch {
                text: structure(),
                ..Default::default()
            };
            self.nft.apply(ns, &batch)?;
            report.nft_time += t.elapsed();
            nft_current = Some(NftDesired::default());
        }
        let existing = self.links.links(ns)?;
        let link_current = known.as_ref().map(|k| k.links.clone()).unwrap_or_default();
        let plan = link::plan(ns, &link_current, &facts, &existing);
        self.links.apply(&plan)?;
        report.links_created += plan.created;
        report.links_deleted += plan.deleted;

        let batch = diff_batch(nft_current.as_ref(), true, &elements);
        let t = Instant::now();
        self.nft.apply(ns, &batch)?;
        report.nft_time += t.elapsed();
        report.nft_elements_added += batch.added;
        report.nft_elements_removed += batch.removed;

        let state = VrfState {
            links: facts,
            nft: elements,
        };
        if plan.created + plan.deleted + batch.added + batch.removed > 0 || known.is_none() {
            self.store.save(ns, &state)?;
        }
        self.installed.insert(ns.to_string(), state);
        Ok(())
    }

    /// Removes every VRF namespace of this node (names `<vrf_netns_prefix>-v<id>`) and
    /// its saved state. Endpoint and node namespaces belong to their creators.
    pub fn teardown(&mut self, vrf_netns_prefix: &str) -> Result<Vec<String>, FabricError> {
        names::check_netns_name(vrf_netns_prefix)?;
        let mine = format!("{vrf_netns_prefix}-v");
        let mut removed = Vec::new();
        for ns in self.ns.list(&mine) {
            if ns[mine.len()..].chars().all(|c| c.is_ascii_digit()) {
                self.ns.delete(&ns)?;
                self.store.remove(&ns);
                self.installed.remove(&ns);
                removed.push(ns);
            }
        }
        Ok(removed)
    }
}

/// Removes every namespace whose name starts with `prefix` (which must start with
/// `weft`), one exact name at a time, with saved state. For tests and the dev cluster.
pub fn cleanup(prefix: &str) -> Result<Vec<String>, FabricError> {
    names::check_netns_name(prefix)?;
    let store = StateStore::in_dir(DEFAULT_DIR);
    let mut removed = Vec::new();
    for ns in netns::list_with_prefix(prefix) {
        netns::delete(&ns)?;
        store.remove(&ns);
        removed.push(ns);
    }
    Ok(removed)
}
