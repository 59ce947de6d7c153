//! The agent's loops: a session (register, heartbeat, periodic report) and a watch
//! (blocking query, reconcile, save, report), run together until shutdown.

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::controller::{Controller, ControllerError};
use crate::convert::{self, Inputs};
use crate::error::AgentError;
use crate::node::{NodeOps, SystemNode};
use crate::persist::LastApplied;
use crate::tasks::{TaskSettings, Tasks};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use weft_api::{
    Client, EndpointState, EndpointStatus, InstalledVrf, NodeDesired, NodeRegistration, NodeReport,
    TaskState,
};
use weft_fabric::DesiredNode;
use weft_fabric::desired::EndpointSpec;

/// What the agent did, for whoever listens ([`AgentConfig::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// A desired state was reconciled (`error: None`) or refused.
    Applied {
        revision: u64,
        /// The fabric's count of changes (0: the node already matched).
        changes: usize,
        /// Restored from the state file at start, not received from the controller.
        from_disk: bool,
        error: Option<String>,
    },
    /// The controller accepted the registration.
    Registered,
    /// A controller call failed; the next try is after `delay`.
    Retrying {
        error: ControllerError,
        delay: Duration,
    },
    /// A report reached the controller.
    Reported { applied_revision: u64 },
}

/// Runs the agent against the controllers at `config.server` (one URL, or several of one
/// store separated by commas) and the real fabric until `shutdown` completes. Returns an
/// error only for an invalid configuration.
pub async fn run(config: AgentConfig, shutdown: impl Future) -> Result<(), AgentError> {
    config.validate()?;
    // `config.server` may name several controllers of one store (comma-separated): the
    // client moves to the next on a connection error or a 5xx and keeps every watch's
    // index (see `weft_api::Client`).
    let servers = weft_api::client::split_servers(&config.server);
    let controller = Client::with_servers(&servers, Some(config.join_token.clone()));
    tracing::info!(controllers = ?controller.servers(), "agent starting");
    let node = SystemNode::new(&config.fabric_state_dir);
    let (stop_gateways, stopped) = watch::channel(false);
    if let Some(gateway) = config.gateway.clone() {
        tokio::spawn(crate::gateway::run(
            controller.clone(),
            config.registration.name.clone(),
            config.registration.netns_prefix.clone(),
            gateway,
            config.backoff,
            stopped,
        ));
    }
    let result = run_with(config, controller, node, shutdown).await;
    let _ = stop_gateways.send(true);
    result
}

/// [`run`] with the controller connection and the node operations chosen by the caller.
pub async fn run_with<C: Controller, N: NodeOps>(
    config: AgentConfig,
    controller: C,
    node: N,
    shutdown: impl Future,
) -> Result<(), AgentError> {
    config.validate()?;
    let api = config.api.clone();
    let join_token = config.join_token.clone();
    let mut agent = Agent::new(config, controller, node);
    if let Some(api) = api {
        let router = crate::output::router(agent.tasks.clone(), &join_token);
        match crate::output::serve(api.listen, api.advertise, router).await {
            Ok(url) => agent.me.api = Some(url),
            Err(e) if api.required => {
                return Err(AgentError::Config(format!(
                    "agent API on {}: {e}",
                    api.listen
                )));
            }
            Err(e) => {
                tracing::warn!(listen = %api.listen, error = %e, "no agent API: controllers cannot read this node's task output (set --api-listen)");
            }
        }
    }
    let stopped = tokio::select! {
        _ = shutdown => true,
        () = agent.run() => false,
    };
    if stopped {
        tracing::info!(node = %agent.me.name, "agent shutting down");
        agent.tasks.shutdown().await;
        let node = agent.node.clone();
        let prefix = agent.me.netns_prefix.clone();
        let _ = tokio::task::spawn_blocking(move || {
            node.lock()
                .unwrap_or_else(|p| p.into_inner())
                .shutdown(&prefix)
        })
        .await;
    }
    Ok(())
}

/// The outcome of one apply.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub report: NodeReport,
    /// Reconciled, and every local endpoint installed.
    pub complete: bool,
    /// The fabric reconciled (some endpoints may have failed).
    pub reconciled: bool,
    pub changes: usize,
    pub error: Option<String>,
}

/// One apply, synchronous (it runs on a blocking thread): endpoint namespaces, the
/// fabric's reconcile, pruning of deleted endpoints' namespaces, the report.
#[cfg(test)]
pub(crate) fn apply_once<N: NodeOps>(
    node: &mut N,
    me: &NodeRegistration,
    desired: &NodeDesired,
    inputs: &Inputs,
    previous: Option<&NodeReport>,
    prune: bool,
) -> Outcome {
    apply_once_with(node, me, desired, inputs, previous, prune, &BTreeSet::new())
}

/// [`apply_once`], where the namespaces of the endpoints named in `published` are
/// created by a runtime with their task (Docker): such an endpoint is left out, and
/// reported `Pending`, until its namespace exists.
pub(crate) fn apply_once_with<N: NodeOps>(
    node: &mut N,
    me: &NodeRegistration,
    desired: &NodeDesired,
    inputs: &Inputs,
    previous: Option<&NodeReport>,
    prune: bool,
    published: &BTreeSet<String>,
) -> Outcome {
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut waiting: BTreeMap<String, String> = BTreeMap::new();
    let mut usable: Vec<EndpointSpec> = Vec::with_capacity(inputs.endpoints.len());
    for ep in &inputs.endpoints {
        let local = ep.node == me.name;
        if !inputs.policy.epgs.contains_key(&ep.epg) {
            if local {
                failed.insert(
                    ep.name.clone(),
                    format!("EPG {} is not in the compiled policy", ep.epg),
                );
            } else {
                tracing::warn!(endpoint = %ep.name, epg = %ep.epg, "remote endpoint of an unknown EPG left out");
            }
            continue;
        }
        if local && published.contains(&ep.name) && !node.netns_exists(&ep.netns) {
            tracing::info!(endpoint = %ep.name, netns = %ep.netns, "endpoint waits for its task's container to publish its namespace");
            waiting.insert(
                ep.name.clone(),
                format!("namespace {} appears with the task's container", ep.netns),
            );
            continue;
        }
        if local && !node.netns_exists(&ep.netns) {
            match node.create_netns(&ep.netns) {
                Ok(()) => {
                    tracing::info!(endpoint = %ep.name, netns = %ep.netns, "created endpoint namespace")
                }
                Err(e) => {
                    tracing::warn!(endpoint = %ep.name, netns = %ep.netns, error = %e, "cannot create endpoint namespace");
                    failed.insert(
                        ep.name.clone(),
                        format!("cannot create namespace {}: {e}", ep.netns),
                    );
                    continue;
                }
            }
        }
        usable.push(ep.clone());
    }
    let result = DesiredNode::from_policy(&inputs.me, &inputs.nodes, &inputs.policy, &usable)
        .and_then(|dn| node.reconcile(&dn).map(|r| (dn, r)));
    match result {
        Ok((dn, r)) => {
            if prune {
                prune_endpoint_netns(node, me, inputs);
            }
            let mut endpoints: BTreeMap<String, EndpointStatus> = dn
                .vrfs
                .iter()
                .flat_map(|v| v.local.iter())
                .map(|ep| {
                    (
                        ep.name.clone(),
                        EndpointStatus {
                            state: EndpointState::Ready,
                            message: None,
                        },
                    )
                })
                .collect();
            for (name, why) in &waiting {
                endpoints.insert(
                    name.clone(),
                    EndpointStatus {
                        state: EndpointState::Pending,
                        message: Some(why.clone()),
                    },
                );
            }
            for (name, why) in &failed {
                endpoints.insert(
                    name.clone(),
                    EndpointStatus {
                        state: EndpointState::Failed,
                        message: Some(why.clone()),
                    },
                );
            }
            Outcome {
                report: NodeReport {
                    applied_revision: desired.revision,
                    installed: dn
                        .vrfs
                        .iter()
                        .map(|v| InstalledVrf {
                            vrf: v.policy.path.clone(),
                            rules: v.policy.rules.clone(),
                        })
                        .collect(),
                    endpoints,
                    tasks: Default::default(),
                    error: None,
                },
                complete: failed.is_empty(),
                reconciled: true,
                changes: r.changes(),
                error: None,
            }
        }
        Err(e) => {
            let why = e.to_string();
            tracing::error!(node = %me.name, revision = desired.revision, error = %why, "reconcile failed; the last good state stays");
            let mut endpoints = BTreeMap::new();
            for ep in inputs.local() {
                let kept = previous
                    .and_then(|p| p.endpoints.get(&ep.name))
                    .filter(|s| s.state == EndpointState::Ready && !failed.contains_key(&ep.name))
                    .cloned();
                let status = kept.unwrap_or_else(|| EndpointStatus {
                    state: EndpointState::Failed,
                    message: Some(failed.get(&ep.name).cloned().unwrap_or_else(|| why.clone())),
                });
                endpoints.insert(ep.name.clone(), status);
            }
            Outcome {
                report: NodeReport {
                    applied_revision: previous.map_or(0, |p| p.applied_revision),
                    installed: previous.map(|p| p.installed.clone()).unwrap_or_default(),
                    endpoints,
                    tasks: Default::default(),
                    error: Some(why.clone()),
                },
                complete: false,
                reconciled: false,
                changes: 0,
                error: Some(why),
            }
        }
    }
}

/// Deletes the namespaces of endpoints that left this node: only names under
/// `<netns_prefix>-ep-`, which this agent created.
fn prune_endpoint_netns<N: NodeOps>(node: &mut N, me: &NodeRegistration, inputs: &Inputs) {
    let prefix = convert::endpoint_netns_prefix(me);
    let wanted: BTreeSet<&str> = inputs.local().map(|e| e.netns.as_str()).collect();
    for ns in node.list_netns(&prefix) {
        if !ns.starts_with(&prefix) || wanted.contains(ns.as_str()) {
            continue;
        }
        match node.delete_netns(&ns) {
            Ok(()) => tracing::info!(netns = %ns, "deleted namespace of a removed endpoint"),
            Err(e) => tracing::warn!(netns = %ns, error = %e, "cannot delete namespace"),
        }
    }
}

struct Agent<C, N> {
    me: NodeRegistration,
    config: AgentConfig,
    controller: C,
    node: Arc<Mutex<N>>,
    store: LastApplied,
    tasks: Arc<Tasks>,
    /// The last report (what is installed), shared by both loops.
    report: watch::Sender<Option<NodeReport>>,
    /// Held while a report is built and sent (see [`Agent::send_report`]).
    reporting: tokio::sync::Mutex<()>,
    /// Whether the controller knows this node right now.
    registered: watch::Sender<bool>,
}

/// What the watch loop remembers between polls.
#[derive(Default)]
struct Applied {
    /// Inputs of the last complete apply: equal inputs need no reconcile.
    inputs: Option<Inputs>,
    /// The endpoints whose namespace a runtime published at that apply: when one leaves
    /// the set (its container stopped; the endpoint, an existing port, stays), the agent
    /// must make its namespace, so equal inputs alone do not skip the reconcile.
    published: BTreeSet<String>,
    /// The revision in the state file.
    saved_revision: Option<u64>,
    /// The last desired state applied (re-applied when a task asks for it).
    last: Option<NodeDesired>,
}

impl<C: Controller, N: NodeOps> Agent<C, N> {
    fn new(config: AgentConfig, controller: C, node: N) -> Self {
        let tasks = Arc::new(Tasks::new(TaskSettings {
            node: config.registration.name.clone(),
            controller: Some(config.server.clone()),
            default_log_dir: config.task_log_dir.clone(),
            docker_socket: config.docker_socket.clone(),
            stop_grace: config.task_stop_grace,
            shim: config.task_shim.clone(),
            cgroup_scope: config.registration.netns_prefix.clone(),
            docker_spares: config.docker_spares.as_ref().map(|(shell, per_key)| {
                weft_runtime::docker_spare::DockerSpareConfig {
                    shell: shell.clone(),
                    dir: config.state_dir.join("docker-spares"),
                    per_key: *per_key,
                    scope: config.registration.netns_prefix.clone(),
                }
            }),
        }));
        Self {
            me: config.registration.clone(),
            store: LastApplied::new(&config.state_dir),
            tasks,
            config,
            controller,
            node: Arc::new(Mutex::new(node)),
            report: watch::Sender::new(None),
            reporting: tokio::sync::Mutex::new(()),
            registered: watch::Sender::new(false),
        }
    }

    fn emit(&self, event: AgentEvent) {
        if let Some(tx) = &self.config.events {
            let _ = tx.send(event);
        }
    }

    async fn run(&self) {
        let mut applied = Applied::default();
        self.tasks.prepare_spares();
        self.tasks.sweep_docker_spares().await;
        self.restore(&mut applied).await;
        tokio::join!(
            self.session(),
            self.watch(applied),
            self.report_tasks(),
            self.report_images()
        );
    }

    /// Reinstalls the state file's desired state at once, before any controller is
    /// reached; deletes nothing of its own.
    async fn restore(&self, applied: &mut Applied) {
        let desired = match self.store.load(&self.me.name) {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot restore the last applied state; waiting for the controller");
                return;
            }
        };
        tracing::info!(node = %self.me.name, revision = desired.revision, "restoring the last applied state");
        applied.saved_revision = Some(desired.revision);
        self.apply(desired, true, applied).await;
    }

    /// Applies on a blocking thread, saves, publishes the report.
    async fn apply(&self, desired: NodeDesired, from_disk: bool, applied: &mut Applied) -> bool {
        let inputs = convert::inputs(&self.me, &desired);
        let node = self.node.clone();
        let me = self.me.clone();
        let previous = self.report.borrow().clone();
        let job_inputs = inputs.clone();
        let job_desired = desired.clone();
        let published = self.tasks.runtime_owned_endpoints(&desired);
        let job_published = published.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut node = node.lock().unwrap_or_else(|p| p.into_inner());
            apply_once_with(
                &mut *node,
                &me,
                &job_desired,
                &job_inputs,
                previous.as_ref(),
                !from_disk,
                &job_published,
            )
        })
        .await;
        let outcome = match joined {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "reconcile task failed");
                return false;
            }
        };
        if outcome.reconciled && !from_disk {
            self.save(&desired, applied);
        }
        applied.inputs = outcome.complete.then_some(inputs);
        applied.published = published;
        self.emit(AgentEvent::Applied {
            revision: desired.revision,
            changes: outcome.changes,
            from_disk,
            error: outcome.error.clone(),
        });
        // Tasks start only now: after the reconcile that installed their endpoint.
        self.tasks.sync(&desired, &outcome.report.endpoints);
        applied.last = Some(desired);
        self.report.send_replace(Some(outcome.report));
        outcome.reconciled
    }

    /// Starts what waited for news that needed no reconcile (an `env` resolved).
    fn sync_tasks(&self, desired: &NodeDesired, applied: &mut Applied) {
        let endpoints = self
            .report
            .borrow()
            .as_ref()
            .map(|r| r.endpoints.clone())
            .unwrap_or_default();
        self.tasks.sync(desired, &endpoints);
        applied.last = Some(desired.clone());
    }

    /// Reports whenever a task's state or health changes. A task in the middle of its
    /// start is waited for (up to 3 ms, so that "running" comes in the same report);
    /// otherwise the report goes at once: it is on the path of submit-to-running.
    async fn report_tasks(&self) {
        let mut changes = self.tasks.subscribe();
        loop {
            if changes.changed().await.is_err() {
                return;
            }
            let settle = tokio::time::sleep(Duration::from_millis(3));
            tokio::pin!(settle);
            while changes
                .borrow_and_update()
                .values()
                .any(|s| s.state == TaskState::Starting)
            {
                tokio::select! {
                    () = &mut settle => break,
                    changed = changes.changed() => if changed.is_err() { return },
                }
            }
            if *self.registered.borrow() {
                self.send_report().await;
            }
        }
    }

    fn save(&self, desired: &NodeDesired, applied: &mut Applied) {
        match self.store.save(&self.me.name, desired) {
            Ok(()) => applied.saved_revision = Some(desired.revision),
            Err(e) => tracing::warn!(error = %e, "cannot save the applied state"),
        }
    }

    /// Sends the current report. One at a time, each built once the previous one is
    /// answered: two reports in flight (the watch loop's and the task loop's) could
    /// reach the controller out of order, and an older one would undo a newer one
    /// (a task seen "starting" again after "running", until the next periodic report).
    async fn send_report(&self) {
        let _in_order = self.reporting.lock().await;
        let Some(mut report) = self.report.borrow().clone() else {
            return;
        };
        report.tasks = self.tasks.statuses();
        match self.controller.report(&self.me.name, &report).await {
            Ok(()) => self.emit(AgentEvent::Reported {
                applied_revision: report.applied_revision,
            }),
            Err(e) => tracing::warn!(error = %e, "report not delivered"),
        }
    }

    async fn retry_later(&self, error: ControllerError, backoff: &mut Backoff) {
        let delay = backoff.next_delay();
        match &error {
            ControllerError::Rejected { .. } => {
                tracing::error!("{error}; check the join token; retrying in {delay:.1?}")
            }
            _ => tracing::warn!("{error}; retrying in {delay:.1?}"),
        }
        self.emit(AgentEvent::Retrying { error, delay });
        tokio::time::sleep(delay).await;
    }

    /// Lists the Docker engine's images every `images_every` and sends them when the
    /// set (its digest) changed since the controller last took it, or the session is
    /// new (another controller, or one that restarted). No engine: nothing is sent.
    async fn report_images(&self) {
        if self.config.images_every.is_zero() {
            return;
        }
        let docker = weft_runtime::DockerRuntime::new(self.config.docker_socket.clone());
        let mut registered = self.registered.subscribe();
        let mut sent: Option<String> = None;
        loop {
            if *registered.borrow_and_update() {
                match docker.images().await {
                    Ok(list) => {
                        let images = weft_api::NodeImages::bounded(
                            list.into_iter()
                                .map(|i| weft_api::NodeImage {
                                    tags: i.tags,
                                    id: i.id,
                                    size: i.size,
                                    created_ms: i.created_ms,
                                })
                                .collect(),
                        );
                        if sent.as_ref() != Some(&images.digest) {
                            match self.controller.images(&self.me.name, &images).await {
                                Ok(()) => {
                                    tracing::debug!(
                                        images = images.images.len(),
                                        "images reported"
                                    );
                                    sent = Some(images.digest);
                                }
                                Err(e) => tracing::warn!(error = %e, "images not delivered"),
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "no Docker images to report"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.images_every) => {}
                changed = registered.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // A new session: the controller may not have them.
                    sent = None;
                }
            }
        }
    }

    /// Register, then heartbeat; any heartbeat failure means registering again.
    async fn session(&self) {
        let mut backoff = Backoff::new(self.config.backoff);
        loop {
            match self.controller.register(&self.me).await {
                Ok(()) => {}
                Err(e) => {
                    self.retry_later(e, &mut backoff).await;
                    continue;
                }
            }
            backoff.reset();
            tracing::info!(node = %self.me.name, controller = %self.controller.url(), "registered");
            self.registered.send_replace(true);
            self.emit(AgentEvent::Registered);
            // The controller may have restarted and forgotten what we installed.
            self.send_report().await;
            let mut beats: u32 = 0;
            loop {
                tokio::time::sleep(self.config.heartbeat_every).await;
                match self.controller.heartbeat(&self.me.name).await {
                    Ok(()) => {
                        beats = beats.wrapping_add(1);
                        if self.config.report_every > 0
                            && beats.is_multiple_of(self.config.report_every)
                        {
                            self.send_report().await;
                        }
                    }
                    Err(e) => {
                        self.registered.send_replace(false);
                        self.retry_later(e, &mut backoff).await;
                        break;
                    }
                }
            }
        }
    }

    /// Blocking queries for the desired state; each news is applied and reported.
    async fn watch(&self, mut applied: Applied) {
        let mut backoff = Backoff::new(self.config.backoff);
        let mut registered = self.registered.subscribe();
        let mut index = 0;
        loop {
            if registered.wait_for(|r| *r).await.is_err() {
                return;
            }
            let polled = tokio::select! {
                polled = self.controller.desired(&self.me.name, index, self.config.watch_wait) => polled,
                () = self.tasks.reapply_requested() => {
                    // A container published its namespace: plumb its endpoint now.
                    if let Some(last) = applied.last.clone() {
                        tracing::info!(node = %self.me.name, revision = last.revision, "reconciling again for a task's namespace");
                        self.apply(last, false, &mut applied).await;
                        self.send_report().await;
                    }
                    continue;
                }
            };
            let watched = match polled {
                Ok(w) => w,
                Err(e) => {
                    // Nothing destructive: what is installed keeps being enforced.
                    index = 0;
                    self.retry_later(e, &mut backoff).await;
                    continue;
                }
            };
            let news = watched.index != index;
            index = watched.index;
            let desired = watched.desired;
            self.tasks.sweep_leftovers_once(&desired).await;
            // Tasks leaving go before the reconcile that prunes their namespaces.
            self.tasks.stop_removed(&desired).await;
            let inputs = convert::inputs(&self.me, &desired);
            if applied.inputs.as_ref() == Some(&inputs)
                && applied.published == self.tasks.runtime_owned_endpoints(&desired)
            {
                backoff.reset();
                self.sync_tasks(&desired, &mut applied);
                self.bump_revision(&desired, &mut applied).await;
                continue;
            }
            if !news && applied.inputs.is_none() && backoff.attempts() > 0 {
                // The last apply failed and nothing changed: do not spin.
                tokio::time::sleep(backoff.next_delay()).await;
            }
            let ok = self.apply(desired, false, &mut applied).await;
            if ok {
                backoff.reset();
            } else {
                let _ = backoff.next_delay();
            }
            self.send_report().await;
        }
    }

    /// Same inputs at a newer revision: nothing to install, but the report and the
    /// state file move to the new revision.
    async fn bump_revision(&self, desired: &NodeDesired, applied: &mut Applied) {
        let current = self.report.borrow().as_ref().map(|r| r.applied_revision);
        if current == Some(desired.revision) {
            return;
        }
        self.report.send_modify(|r| {
            if let Some(r) = r {
                r.applied_revision = desired.revision;
            }
        });
        if applied.saved_revision != Some(desired.revision) {
            self.save(desired, applied);
        }
        self.send_report().await;
    }
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
