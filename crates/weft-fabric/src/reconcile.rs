//! The node agent: desired state in, minimal changes out.

use crate::desired::DesiredNode;
use crate::desired::VrfDesired;
use crate::error::FabricError;
use crate::exec::{Runner, SystemRunner};
use crate::link::{self, LinkApplier};
use crate::names;
use crate::netns;
use crate::nft::{
    NftApplier, NftDesired, VrfRenderer,
    apply::{delta_batch, diff_batch},
    render::{replace_structure, structure},
};
use crate::spare::SpareVrf;
use crate::state::{DEFAULT_DIR, StateDelta, StateStore, VrfState};
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
    fn rename(&self, from: &str, to: &str) -> Result<(), FabricError>;
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
    fn rename(&self, from: &str, to: &str) -> Result<(), FabricError> {
        netns::rename(from, to)
    }
}

/// Forwarding on, and bridged IP through the inet hooks (where conntrack and the class
/// lookups live): what every VRF namespace needs before its tables mean anything.
pub(crate) fn init_vrf_namespace(ns: &dyn NetnsOps, name: &str) -> Result<(), FabricError> {
    for (key, value) in [
        ("net/ipv4/ip_forward", "1"),
        ("net/ipv6/conf/all/forwarding", "1"),
        ("net/bridge/bridge-nf-call-iptables", "1"),
        ("net/bridge/bridge-nf-call-ip6tables", "1"),
    ] {
        ns.sysctl(name, key, value)?;
    }
    Ok(())
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
    /// Time spent on links: listing the VRF namespace's interfaces, planning and
    /// applying (netlink or `ip`/`bridge`).
    pub link_time: Duration,
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
    /// Per VRF namespace: the renderer that produced `installed` (it remembers its
    /// inputs, so the next reconcile renders only what changed).
    renderers: BTreeMap<String, VrfRenderer>,
    /// The spare VRF namespace, when enabled ([`Fabric::with_spare_vrf`]).
    spare: Option<SpareVrf>,
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
            renderers: BTreeMap::new(),
            spare: None,
        }
    }

    /// Keeps a spare VRF namespace ready in the background (see [`crate::spare`]).
    pub fn with_spare_vrf(mut self) -> Self {
        self.spare = Some(SpareVrf::default());
        self
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
            self.reconcile_vrf(&ns, &desired.vrf_netns_prefix, facts, vrf, &mut report)?;
        }
        // VRF namespaces of this node that are no longer wanted.
        let mine = format!("{}-v", desired.vrf_netns_prefix);
        for ns in self.ns.list(&mine) {
            let is_vrf_ns = ns[mine.len()..].chars().all(|c| c.is_ascii_digit());
            if is_vrf_ns && !wanted.contains(&ns) {
                self.delete_vrf_namespace(&ns)?;
                report.namespaces_deleted.push(ns);
            }
        }
        // A node that has never served a VRF keeps nothing of weft's.
        if let Some(spare) = self.spare.as_mut().filter(|_| !desired.vrfs.is_empty()) {
            spare.ensure(&desired.vrf_netns_prefix, self.ns.clone(), self.nft.clone());
        }
        report.total_time = started.elapsed();
        tracing::info!(node = %desired.node, changes = report.changes(), total = ?report.total_time,
            nft = ?report.nft_time, links = ?report.link_time, "reconciled");
        Ok(report)
    }

    fn reconcile_vrf(
        &mut self,
        ns: &str,
        prefix: &str,
        facts: std::collections::BTreeSet<link::LinkFact>,
        vrf: &VrfDesired,
        report: &mut ReconcileReport,
    ) -> Result<(), FabricError> {
        let fresh = !self.ns.exists(ns);
        // A spare already has its sysctls and (empty) tables.
        let adopted = fresh && self.adopt_spare(prefix, ns);
        if fresh {
            if !adopted {
                self.ns.create(ns)?;
                init_vrf_namespace(self.ns.as_ref(), ns)?;
            }
            self.installed.remove(ns);
            self.renderers.remove(ns);
            self.store.remove(ns);
            report.namespaces_created.push(ns.to_string());
        }
        let tables_exist = adopted || (!fresh && self.nft.tables_exist(ns)?);
        // Taken, not cloned (200k elements): after a failure the saved state, which
        // holds the last good state, is read again, and rendering starts over.
        let in_memory = self.installed.remove(ns);
        let renderer = self.renderers.remove(ns);
        let (mut known, mut renderer) = match (in_memory, renderer) {
            // The common case: this agent installed the current state and remembers
            // how it rendered it; only what changed is rendered.
            (None, _) if adopted => (Some(VrfState::default()), None),
            (Some(s), Some(r)) if tables_exist => (Some(s), Some(r)),
            (Some(s), _) if tables_exist => (Some(s), None),
            (None, _) if tables_exist => (self.store.load(ns), None),
            _ => (None, None),
        };
        // Tables first (empty = every port dropped), so that a new port never passes a
        // packet before its class and rules are in.
        if !tables_exist {
            let t = Instant::now();
            let batch = crate::nft::NftBatch {
                // An existing namespace may hold tables of an older layout.
                text: if fresh {
                    structure()
                } else {
                    replace_structure()
                },
                ..Default::default()
            };
            self.nft.apply(ns, &batch)?;
            report.nft_time += t.elapsed();
            // The links, if known, are still there; the sets start empty.
            known = Some(VrfState {
                links: known.map(|k| k.links).unwrap_or_default(),
                nft: NftDesired::default(),
            });
            renderer = None;
        }
        let t = Instant::now();
        let existing = self.links.links(ns)?;
        let no_links = std::collections::BTreeSet::new();
        let link_current = known.as_ref().map_or(&no_links, |k| &k.links);
        let plan = link::plan(ns, link_current, &facts, &existing);
        self.links.apply(&plan)?;
        // New interfaces pass packets once the kernel's link watch has run for them;
        // the endpoint is reported installed only then.
        self.links.settle(&plan.settle);
        report.links_created += plan.created;
        report.links_deleted += plan.deleted;
        report.link_time += t.elapsed();

        let (state, delta, batch) = match (known, renderer.as_mut()) {
            (Some(mut state), Some(r)) => {
                let nft = r.update(vrf);
                let batch = delta_batch(&nft);
                let delta = StateDelta {
                    links_removed: state.links.difference(&facts).cloned().collect(),
                    links_added: facts.difference(&state.links).cloned().collect(),
                    nft_removed: nft.removed,
                    nft_added: nft.added,
                };
                delta.apply_to(&mut state);
                (state, Some(delta), batch)
            }
            (known, _) => {
                let mut r = VrfRenderer::new();
                let elements = NftDesired {
                    elements: r.update(vrf).added.into_iter().collect(),
                };
                renderer = Some(r);
                // After a fresh table creation the known state is empty: plain adds.
                let batch = diff_batch(known.as_ref().map(|k| &k.nft), true, &elements);
                let delta = match &known {
                    Some(k) if k.nft == elements && k.links == facts => Some(StateDelta::default()),
                    _ => None,
                };
                (
                    VrfState {
                        links: facts,
                        nft: elements,
                    },
                    delta,
                    batch,
                )
            }
        };
        let t = Instant::now();
        self.nft.apply(ns, &batch)?;
        report.nft_time += t.elapsed();
        report.nft_elements_added += batch.added;
        report.nft_elements_removed += batch.removed;

        match &delta {
            Some(d) => self.store.append(ns, d, &state)?,
            None => self.store.save(ns, &state)?,
        }
        self.installed.insert(ns.to_string(), state);
        if let Some(r) = renderer {
            self.renderers.insert(ns.to_string(), r);
        }
        Ok(())
    }

    /// Renames the ready spare of `prefix` to `ns`; false if there is none (or the
    /// rename failed, then the spare is gone and `ns` is built as usual).
    fn adopt_spare(&mut self, prefix: &str, ns: &str) -> bool {
        let Some(spare) = self.spare.as_mut().and_then(|s| s.take(prefix)) else {
            return false;
        };
        match self.ns.rename(&spare, ns) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(spare = %spare, netns = %ns, error = %e, "cannot take the spare VRF namespace");
                let _ = self.ns.delete(&spare);
                false
            }
        }
    }

    /// Deletes a VRF namespace and forgets it. Its VXLAN devices go first, and at once:
    /// the kernel destroys a namespace's devices asynchronously, and until it has, their
    /// sockets in the node namespace keep the VNIs, so the VRF could not come back.
    fn delete_vrf_namespace(&mut self, ns: &str) -> Result<(), FabricError> {
        let devices = self.links.vxlan_devices(ns);
        self.links.delete_links(ns, &devices)?;
        self.ns.delete(ns)?;
        self.store.remove(ns);
        self.installed.remove(ns);
        self.renderers.remove(ns);
        Ok(())
    }

    /// Removes the spare VRF namespace of `vrf_netns_prefix`, if any (waiting for a build
    /// in progress); the installed VRFs stay.
    pub fn remove_spare(&mut self, vrf_netns_prefix: &str) -> Result<(), FabricError> {
        match &mut self.spare {
            Some(spare) => spare.remove(vrf_netns_prefix, self.ns.as_ref()),
            None => Ok(()),
        }
    }

    /// Removes every VRF namespace of this node (names `<vrf_netns_prefix>-v<id>`) and
    /// its saved state. Endpoint and node namespaces belong to their creators.
    pub fn teardown(&mut self, vrf_netns_prefix: &str) -> Result<Vec<String>, FabricError> {
        names::check_netns_name(vrf_netns_prefix)?;
        if let Some(spare) = &mut self.spare {
            spare.remove(vrf_netns_prefix, self.ns.as_ref())?;
        }
        let mine = format!("{vrf_netns_prefix}-v");
        let mut removed = Vec::new();
        for ns in self.ns.list(&mine) {
            if ns[mine.len()..].chars().all(|c| c.is_ascii_digit()) {
                self.delete_vrf_namespace(&ns)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{LocalEndpoint, VrfDesired};
    use crate::exec::FakeRunner;
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use weft_compiler::{BridgeDomainPolicy, ClassId, VrfPolicy};
    use weft_model::{EpgPath, ObjectPath};

    #[derive(Debug, Default)]
    struct FakeNetns(Mutex<BTreeSet<String>>);

    impl NetnsOps for FakeNetns {
        fn exists(&self, name: &str) -> bool {
            self.0.lock().map(|s| s.contains(name)).unwrap_or(false)
        }
        fn create(&self, name: &str) -> Result<(), FabricError> {
            self.0.lock().map(|mut s| s.insert(name.to_string())).ok();
            Ok(())
        }
        fn delete(&self, name: &str) -> Result<(), FabricError> {
            self.0.lock().map(|mut s| s.remove(name)).ok();
            Ok(())
        }
        fn list(&self, prefix: &str) -> Vec<String> {
            self.0
                .lock()
                .map(|s| {
                    s.iter()
                        .filter(|n| n.starts_with(prefix))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        }
        fn sysctl(&self, _: &str, _: &str, _: &str) -> Result<(), FabricError> {
            Ok(())
        }
        fn rename(&self, from: &str, to: &str) -> Result<(), FabricError> {
            self.0
                .lock()
                .map(|mut s| {
                    s.remove(from);
                    s.insert(to.to_string());
                })
                .ok();
            Ok(())
        }
    }

    fn node(endpoints: &[(&str, &str)]) -> DesiredNode {
        let bd = ObjectPath::tenant("t").child("bd", "net");
        let local = endpoints
            .iter()
            .enumerate()
            .map(|(i, (name, ip))| LocalEndpoint {
                name: (*name).into(),
                netns: format!("weft-ep-{name}"),
                interface: 0,
                class: ClassId(100),
                bridge_domain: bd.clone(),
                ips: vec![ip.parse().expect("ip")],
                mac: [2, 0, 0, 0, 0, i as u8 + 1],
                allowed_pairs: vec![],
                port_security: true,
            })
            .collect();
        DesiredNode {
            node: "n1".into(),
            node_netns: Some("weft-n1".into()),
            underlay_ip: "10.255.0.1".parse().expect("ip"),
            vrf_netns_prefix: "weft-n1".into(),
            overlay_mtu: 1450,
            vrfs: vec![VrfDesired {
                policy: VrfPolicy {
                    path: ObjectPath::tenant("t").child("vrf", "main"),
                    id: 7,
                    enforced: true,
                    bridge_domains: vec![BridgeDomainPolicy {
                        path: bd,
                        vni: 70,
                        gateway_mac: [2, 0x77, 0x66, 0, 0, 70],
                        subnets: vec![(
                            "10.1.0.0/24".parse().expect("net"),
                            "10.1.0.1".parse().expect("ip"),
                        )],
                    }],
                    members: BTreeMap::from([(ClassId(100), EpgPath::new("t", "a", "e"))]),
                    rules: vec![],
                },
                local,
                remote: vec![],
                security: Default::default(),
            }],
        }
    }

    /// `listed`: endpoints whose ports the fake kernel lists.
    fn setup(listed: &[&str]) -> (Arc<FakeRunner>, Arc<FakeNetns>, Fabric) {
        let runner = Arc::new(FakeRunner::default());
        let ns = Arc::new(FakeNetns::default());
        for n in ["weft-n1", "weft-ep-a", "weft-ep-b"] {
            let _ = ns.create(n);
        }
        // What the kernel would list after the first reconcile.
        let mut links = vec!["weft-b70".to_string(), "weft-x70".into()];
        links.extend(listed.iter().map(|e| names::port(e)));
        let links: Vec<String> = links
            .iter()
            .map(|l| format!("{{\"ifname\":\"{l}\"}}"))
            .collect();
        runner.reply("-j link show", Ok(format!("[{}]", links.join(","))));
        let fabric = Fabric::new(runner.clone(), ns.clone(), StateStore::memory());
        (runner, ns, fabric)
    }

    #[test]
    fn first_reconcile_creates_tables_before_ports_and_second_does_nothing() {
        let (runner, ns, mut fabric) = setup(&["a"]);
        let report = fabric
            .reconcile(&node(&[("a", "10.1.0.10")]))
            .expect("reconcile");
        assert_eq!(report.namespaces_created, vec!["weft-n1-v7".to_string()]);
        assert!(ns.exists("weft-n1-v7"));
        let log: Vec<String> = runner.commands().iter().map(|c| c.to_string()).collect();
        let tables = log
            .iter()
            .position(|c| c.starts_with("nft -n weft-n1-v7 -f -"))
            .expect("tables");
        let port = log
            .iter()
            .position(|c| c.contains("-batch") || c.contains("veth"))
            .expect("links");
        assert!(tables < port, "tables must exist before any port: {log:#?}");
        let first_batch = &runner.commands()[tables];
        assert!(
            first_batch
                .stdin
                .as_deref()
                .is_some_and(|s| s.starts_with("table bridge weft"))
        );

        runner.clear();
        runner.reply(
            "list tables",
            Ok("table bridge weft\ntable inet weft\n".into()),
        );
        let again = fabric
            .reconcile(&node(&[("a", "10.1.0.10")]))
            .expect("reconcile");
        assert_eq!(again.changes(), 0, "{again:?}");
        assert!(
            runner
                .commands()
                .iter()
                .all(|c| !c.args.contains(&"-f".to_string())),
            "no nft batch"
        );
    }

    #[test]
    fn a_new_vrf_takes_the_spare_namespace_and_loads_no_tables() {
        let (runner, ns, fabric) = setup(&["a"]);
        let mut fabric = fabric.with_spare_vrf();
        let wait_built = |f: &Fabric| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while f.spare.as_ref().is_some_and(|s| s.building()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let mut empty = node(&[]);
        empty.vrfs.clear();
        fabric.reconcile(&empty).expect("reconcile");
        wait_built(&fabric);
        assert!(
            !ns.exists("weft-n1-vspare"),
            "a node that never served a VRF keeps nothing"
        );
        // The first VRF is built in place; a spare follows, and stays when the VRF goes.
        fabric
            .reconcile(&node(&[("a", "10.1.0.10")]))
            .expect("reconcile");
        wait_built(&fabric);
        fabric.reconcile(&empty).expect("reconcile");
        assert!(!ns.exists("weft-n1-v7"));
        assert!(ns.exists("weft-n1-vspare"), "the spare was built");
        runner.clear();

        let report = fabric
            .reconcile(&node(&[("a", "10.1.0.10")]))
            .expect("reconcile");
        assert_eq!(report.namespaces_created, vec!["weft-n1-v7".to_string()]);
        assert!(ns.exists("weft-n1-v7"));
        let tables_loaded = runner.commands().iter().any(|c| {
            c.netns.as_deref() == Some("weft-n1-v7")
                && c.stdin
                    .as_deref()
                    .is_some_and(|s| s.contains("table bridge weft"))
        });
        assert!(!tables_loaded, "the spare's tables were reused");
        assert!(
            report.nft_elements_added > 0,
            "the endpoint's elements went in: {report:?}"
        );

        // The next spare is on its way, and teardown removes it with the VRFs.
        fabric.teardown("weft-n1").expect("teardown");
        assert!(!ns.exists("weft-n1-vspare") && !ns.exists("weft-n1-v7"));
    }

    #[test]
    fn an_added_endpoint_costs_only_its_elements() {
        let (runner, _, mut fabric) = setup(&["a", "b"]);
        fabric
            .reconcile(&node(&[("a", "10.1.0.10")]))
            .expect("reconcile");
        runner.clear();
        runner.reply(
            "list tables",
            Ok("table bridge weft\ntable inet weft\n".into()),
        );
        let r = fabric
            .reconcile(&node(&[("a", "10.1.0.10"), ("b", "10.1.0.11")]))
            .expect("reconcile");
        assert_eq!((r.links_created, r.links_deleted), (2, 0), "{r:?}");
        assert_eq!(
            (r.nft_elements_added, r.nft_elements_removed),
            (6, 0),
            "{r:?}"
        );
        let batch = runner
            .commands()
            .into_iter()
            .find(|c| c.program == crate::exec::Program::Nft && c.stdin.is_some())
            .and_then(|c| c.stdin)
            .expect("batch");
        assert!(
            batch.lines().all(|l| l.starts_with("add element")),
            "{batch}"
        );
    }

    #[test]
    fn refused_states_touch_nothing() {
        let (runner, _, mut fabric) = setup(&["a"]);
        let mut missing = node(&[("a", "10.1.0.10")]);
        missing.vrfs[0].local[0].netns = "weft-ep-gone".into();
        let err = fabric.reconcile(&missing).expect_err("missing namespace");
        assert!(
            matches!(err, FabricError::MissingNamespace { ref endpoint, .. } if endpoint == "a")
        );
        let mut outside = node(&[("a", "10.2.0.10")]);
        outside.vrfs[0].local[0].netns = "weft-ep-a".into();
        let err = fabric
            .reconcile(&outside)
            .expect_err("address outside subnet");
        assert!(
            err.to_string().contains("10.2.0.10 is in no subnet"),
            "{err}"
        );
        assert!(runner.commands().is_empty());
    }

    #[test]
    fn nft_refusal_is_typed() {
        let (runner, _, mut fabric) = setup(&["a"]);
        runner.reply("-f -", Err("Error: syntax error".into()));
        let err = fabric
            .reconcile(&node(&[("a", "10.1.0.10")]))
            .expect_err("refused");
        assert!(
            matches!(err, FabricError::NftRejected { ref netns, .. } if netns == "weft-n1-v7"),
            "{err}"
        );
    }
}
