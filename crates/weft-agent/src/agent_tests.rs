use super::*;
use crate::backoff::BackoffConfig;
use crate::controller::Watched;
use crate::convert::tests::{endpoint, registration, three_tier};
use weft_fabric::{FabricError, ReconcileReport};

/// A node that only records.
#[derive(Debug, Default)]
struct FakeNodeState {
    netns: BTreeSet<String>,
    reconciled: Vec<DesiredNode>,
    fail_reconcile: Option<String>,
    fail_create: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct FakeNode(Arc<Mutex<FakeNodeState>>);

impl FakeNode {
    fn with<T>(&self, f: impl FnOnce(&mut FakeNodeState) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl NodeOps for FakeNode {
    fn netns_exists(&self, name: &str) -> bool {
        self.with(|s| s.netns.contains(name))
    }
    fn create_netns(&mut self, name: &str) -> Result<(), FabricError> {
        self.with(|s| {
            if s.fail_create.contains(name) {
                return Err(FabricError::InvalidName {
                    name: name.into(),
                    why: "refused by the fake",
                });
            }
            s.netns.insert(name.into());
            Ok(())
        })
    }
    fn delete_netns(&mut self, name: &str) -> Result<(), FabricError> {
        self.with(|s| s.netns.remove(name));
        Ok(())
    }
    fn list_netns(&self, prefix: &str) -> Vec<String> {
        self.with(|s| {
            s.netns
                .iter()
                .filter(|n| n.starts_with(prefix))
                .cloned()
                .collect()
        })
    }
    fn reconcile(&mut self, desired: &DesiredNode) -> Result<ReconcileReport, FabricError> {
        self.with(|s| {
            if let Some(why) = &s.fail_reconcile {
                return Err(FabricError::NftRejected {
                    netns: "weft-fake".into(),
                    stderr: why.clone(),
                });
            }
            let changes = if s.reconciled.last() == Some(desired) {
                0
            } else {
                1
            };
            s.reconciled.push(desired.clone());
            Ok(ReconcileReport {
                links_created: changes,
                ..Default::default()
            })
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    BadToken,
}

#[derive(Debug)]
struct FakeControllerState {
    mode: Mode,
    registrations: usize,
    heartbeats: usize,
    reports: Vec<NodeReport>,
}

#[derive(Debug, Clone)]
struct FakeController {
    state: Arc<Mutex<FakeControllerState>>,
    desired: watch::Sender<NodeDesired>,
}

impl FakeController {
    fn new(mode: Mode, desired: NodeDesired) -> Self {
        Self {
            state: Arc::new(Mutex::new(FakeControllerState {
                mode,
                registrations: 0,
                heartbeats: 0,
                reports: Vec::new(),
            })),
            desired: watch::Sender::new(desired),
        }
    }
    fn with<T>(&self, f: impl FnOnce(&mut FakeControllerState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
    fn check(&self) -> Result<(), ControllerError> {
        let url = "http://fake".to_string();
        match self.with(|s| s.mode) {
            Mode::Up => Ok(()),
            Mode::Down => Err(ControllerError::Unreachable {
                url,
                why: "connection refused".into(),
            }),
            Mode::BadToken => Err(ControllerError::Rejected {
                url,
                why: "401".into(),
            }),
        }
    }
}

impl Controller for FakeController {
    fn url(&self) -> &str {
        "http://fake"
    }
    async fn register(&self, _: &NodeRegistration) -> Result<(), ControllerError> {
        self.check()?;
        self.with(|s| s.registrations += 1);
        Ok(())
    }
    async fn heartbeat(&self, _: &str) -> Result<(), ControllerError> {
        self.check()?;
        self.with(|s| s.heartbeats += 1);
        Ok(())
    }
    async fn desired(
        &self,
        _: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Watched, ControllerError> {
        self.check()?;
        let mut rx = self.desired.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|d| d.revision > index)).await;
        self.check()?;
        let desired = rx.borrow().clone();
        Ok(Watched {
            index: desired.revision,
            desired,
        })
    }
    async fn report(&self, _: &str, report: &NodeReport) -> Result<(), ControllerError> {
        self.check()?;
        self.with(|s| s.reports.push(report.clone()));
        Ok(())
    }
}

fn config(
    dir: &std::path::Path,
) -> (
    AgentConfig,
    tokio::sync::mpsc::UnboundedReceiver<AgentEvent>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut c = AgentConfig::new("http://fake", "weft-token", registration("n1", 1), dir);
    c.heartbeat_every = Duration::from_millis(20);
    c.report_every = 2;
    c.watch_wait = Duration::from_millis(300);
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
    };
    c.events = Some(tx);
    (c, rx)
}

async fn next_matching(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<AgentEvent>,
    what: impl Fn(&AgentEvent) -> bool,
) -> AgentEvent {
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = rx.recv().await {
            if what(&e) {
                return Some(e);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        other => panic!("event not seen: {other:?}"),
    }
}

#[test]
fn apply_creates_endpoint_namespaces_and_reports_installed_rules() {
    let me = registration("n1", 1);
    let d = three_tier(3);
    let inputs = convert::inputs(&me, &d);
    let mut node = FakeNode::default();
    node.with(|s| {
        s.netns.insert("weft-test-n1-ep-old".into());
        s.netns.insert("weft-test-n1-other".into());
    });
    let out = apply_once(&mut node, &me, &d, &inputs, None, true);
    assert!(out.complete && out.reconciled, "{out:?}");
    let ns = node.with(|s| s.netns.clone());
    assert!(ns.contains("weft-test-n1-ep-web"));
    assert!(
        !ns.contains("weft-test-n1-ep-old"),
        "deleted endpoint pruned"
    );
    assert!(ns.contains("weft-test-n1-other"), "not ours to prune");
    assert_eq!(out.report.applied_revision, 3);
    assert_eq!(
        out.report.endpoints.get("web").map(|s| s.state),
        Some(EndpointState::Ready)
    );
    assert_eq!(out.report.installed.len(), 1);
    let vrf = &d.policy.vrfs[&out.report.installed[0].vrf];
    assert_eq!(out.report.installed[0].rules, vrf.rules);
    assert!(!vrf.rules.is_empty());
    // Without pruning (a restore), nothing is deleted.
    node.with(|s| s.netns.insert("weft-test-n1-ep-old".into()));
    apply_once(&mut node, &me, &d, &inputs, None, false);
    assert!(node.with(|s| s.netns.contains("weft-test-n1-ep-old")));
}

#[test]
fn a_failed_endpoint_namespace_fails_that_endpoint_only() {
    let me = registration("n1", 1);
    let mut d = three_tier(3);
    d.endpoints
        .push(endpoint("web2", "n1", "shop/store/web", "10.1.0.12", 4));
    d.endpoints
        .push(endpoint("ghost", "n1", "shop/store/nope", "10.1.0.13", 5));
    let inputs = convert::inputs(&me, &d);
    let mut node = FakeNode::default();
    node.with(|s| s.fail_create.insert("weft-test-n1-ep-web2".into()));
    let out = apply_once(&mut node, &me, &d, &inputs, None, true);
    assert!(out.reconciled && !out.complete);
    let state = |n: &str| out.report.endpoints.get(n).map(|s| s.state);
    assert_eq!(state("web"), Some(EndpointState::Ready));
    assert_eq!(state("web2"), Some(EndpointState::Failed));
    assert_eq!(state("ghost"), Some(EndpointState::Failed));
    let msg = out.report.endpoints["ghost"]
        .message
        .clone()
        .unwrap_or_default();
    assert!(msg.contains("not in the compiled policy"), "{msg}");
}

#[test]
fn a_refused_reconcile_keeps_the_last_good_report() {
    let me = registration("n1", 1);
    let d = three_tier(3);
    let mut node = FakeNode::default();
    let good = apply_once(&mut node, &me, &d, &convert::inputs(&me, &d), None, true);
    let mut next = three_tier(4);
    next.endpoints
        .push(endpoint("web2", "n1", "shop/store/web", "10.1.0.12", 4));
    node.with(|s| s.fail_reconcile = Some("syntax error".into()));
    let out = apply_once(
        &mut node,
        &me,
        &next,
        &convert::inputs(&me, &next),
        Some(&good.report),
        true,
    );
    assert!(!out.reconciled);
    assert_eq!(out.report.applied_revision, 3);
    assert_eq!(out.report.installed, good.report.installed);
    assert!(
        out.report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("syntax error"))
    );
    assert_eq!(out.report.endpoints["web"].state, EndpointState::Ready);
    assert_eq!(out.report.endpoints["web2"].state, EndpointState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_the_controller_answers_then_applies_saves_and_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, mut events) = config(dir.path());
    let controller = FakeController::new(Mode::Down, three_tier(5));
    let node = FakeNode::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_with(cfg, controller.clone(), node.clone(), stopped));

    let e = next_matching(&mut events, |e| matches!(e, AgentEvent::Retrying { .. })).await;
    assert!(
        matches!(
            e,
            AgentEvent::Retrying {
                error: ControllerError::Unreachable { .. },
                ..
            }
        ),
        "{e:?}"
    );
    controller.with(|s| s.mode = Mode::BadToken);
    next_matching(&mut events, |e| {
        matches!(
            e,
            AgentEvent::Retrying {
                error: ControllerError::Rejected { .. },
                ..
            }
        )
    })
    .await;
    // Retried with growing, capped delays; never exited.
    assert!(!task.is_finished());
    controller.with(|s| s.mode = Mode::Up);
    next_matching(&mut events, |e| *e == AgentEvent::Registered).await;
    let applied = next_matching(&mut events, |e| matches!(e, AgentEvent::Applied { .. })).await;
    assert_eq!(
        applied,
        AgentEvent::Applied {
            revision: 5,
            changes: 1,
            from_disk: false,
            error: None
        }
    );
    next_matching(&mut events, |e| {
        *e == AgentEvent::Reported {
            applied_revision: 5,
        }
    })
    .await;
    let saved = LastApplied::new(dir.path()).load("n1").expect("load");
    assert_eq!(saved.map(|d| d.revision), Some(5));

    // Same inputs at a newer revision: no reconcile, but reported and saved.
    let reconciles = node.with(|s| s.reconciled.len());
    controller.desired.send_replace(three_tier(6));
    next_matching(&mut events, |e| {
        *e == AgentEvent::Reported {
            applied_revision: 6,
        }
    })
    .await;
    assert_eq!(node.with(|s| s.reconciled.len()), reconciles);

    // A new endpoint: applied.
    let mut more = three_tier(7);
    more.endpoints
        .push(endpoint("web2", "n1", "shop/store/web", "10.1.0.12", 4));
    controller.desired.send_replace(more);
    next_matching(&mut events, |e| {
        matches!(e, AgentEvent::Applied { revision: 7, .. })
    })
    .await;
    assert!(node.with(|s| s.netns.contains("weft-test-n1-ep-web2")));

    // Heartbeats go on and reports repeat.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(controller.with(|s| s.heartbeats) >= 3);
    assert!(controller.with(|s| s.reports.len()) >= 3);

    let _ = stop.send(());
    let r = tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("exits on shutdown");
    assert!(matches!(r, Ok(Ok(()))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_controller_restores_from_disk_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = FakeNode::default();
    {
        let (cfg, mut events) = config(dir.path());
        let controller = FakeController::new(Mode::Up, three_tier(5));
        let task = tokio::spawn(run_with(
            cfg,
            controller,
            node.clone(),
            std::future::pending::<()>(),
        ));
        next_matching(&mut events, |e| matches!(e, AgentEvent::Applied { .. })).await;
        task.abort(); // killed, not shut down
        let _ = task.await;
    }
    let first = node.with(|s| s.reconciled.clone());
    assert_eq!(first.len(), 1);

    let (cfg, mut events) = config(dir.path());
    let controller = FakeController::new(Mode::Down, three_tier(1));
    let task = tokio::spawn(run_with(
        cfg,
        controller.clone(),
        node.clone(),
        std::future::pending::<()>(),
    ));
    let e = next_matching(&mut events, |e| matches!(e, AgentEvent::Applied { .. })).await;
    assert_eq!(
        e,
        AgentEvent::Applied {
            revision: 5,
            changes: 0,
            from_disk: true,
            error: None
        }
    );
    assert_eq!(
        node.with(|s| s.reconciled.last().cloned()),
        first.last().cloned()
    );
    // Keeps trying to reach the controller, and nothing else happens meanwhile.
    next_matching(&mut events, |e| matches!(e, AgentEvent::Retrying { .. })).await;
    next_matching(&mut events, |e| matches!(e, AgentEvent::Retrying { .. })).await;
    assert_eq!(node.with(|s| s.reconciled.len()), 2);
    assert!(node.with(|s| s.netns.contains("weft-test-n1-ep-web")));
    // Back, with news: applied.
    let mut more = three_tier(9);
    more.endpoints
        .push(endpoint("web2", "n1", "shop/store/web", "10.1.0.12", 4));
    controller.desired.send_replace(more);
    controller.with(|s| s.mode = Mode::Up);
    next_matching(&mut events, |e| {
        matches!(e, AgentEvent::Applied { revision: 9, .. })
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn invalid_configuration_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut cfg, _rx) = config(dir.path());
    cfg.registration.netns_prefix = "default".into();
    let r = run_with(
        cfg,
        FakeController::new(Mode::Up, three_tier(1)),
        FakeNode::default(),
        std::future::pending::<()>(),
    )
    .await;
    assert!(matches!(r, Err(AgentError::Config(_))), "{r:?}");
}
