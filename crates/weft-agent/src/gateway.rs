//! Discovery at the gateways: every VRF namespace of this node answers DNS (UDP and TCP
//! port 53) and Consul's HTTP API (port 8500) on its anycast gateway addresses, so a task
//! resolves with its gateway as nameserver and finds Consul at `$WEFT_GATEWAY:8500`
//! with nothing installed.
//!
//! The agent keeps the controller's discovery view for this node (a blocking query on
//! its digest) and a copy on disk. DNS answers come from that copy only, so they go on,
//! unchanged, while the controller is down, and after an agent restart without it.
//! The HTTP API is forwarded to the controller (see [`crate::gateway_http`]), with reads
//! served from the last answer when the controller is unreachable.
//!
//! The HTTP and TCP checks the controller assigns to this node (those aiming at its
//! endpoints) run from each VRF namespace along with its servers, and their results go
//! back to the controller (see [`crate::gateway_probes`]).
//!
//! Sockets are bound inside each VRF namespace (on `0.0.0.0`, so every gateway address
//! of the VRF's bridge domains); the source address of a query names the endpoint that
//! asks, which port security guarantees.

use crate::backoff::{Backoff, BackoffConfig};
use crate::gateway_probes::{Results, VrfProbes};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use weft_api::{Client, DiscoveryView, MAX_NODE_PROBES, ProbeSpec, VrfDiscovery};
use weft_dns::{Limits, Service, SharedZone, Zone};

/// What the gateways serve, and where.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// DNS's port in every VRF namespace (53).
    pub dns_port: u16,
    /// The Consul HTTP API's port in every VRF namespace (8500); `None`: not served.
    pub http_port: Option<u16>,
    /// Where names outside weft's domains go; empty: refused.
    pub recursors: Vec<SocketAddr>,
    /// Threads answering UDP per VRF namespace.
    pub udp_threads: usize,
    /// How long one blocking query for the view may wait.
    pub watch_wait: Duration,
    /// The last view, kept across agent restarts.
    pub state_file: PathBuf,
}

impl GatewayConfig {
    pub fn new(state_dir: &std::path::Path) -> Self {
        Self {
            dns_port: 53,
            http_port: Some(8500),
            recursors: Vec::new(),
            udp_threads: 2,
            watch_wait: Duration::from_secs(30),
            state_file: state_dir.join("discovery.json"),
        }
    }
}

/// One VRF namespace's servers.
struct Served {
    zone: SharedZone,
    /// The namespace's inode when bound: a namespace re-created by the fabric needs new
    /// sockets.
    inode: u64,
    stop: Arc<AtomicBool>,
    stop_async: watch::Sender<bool>,
    http: Option<crate::gateway_http::Gateway>,
    /// The checks run from this namespace.
    probes: VrfProbes,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stop_async.send(true);
    }
}

/// Runs the gateways of this node until `stop` turns true.
pub async fn run(
    client: Client,
    node: String,
    netns_prefix: String,
    config: GatewayConfig,
    backoff: BackoffConfig,
    mut stop: watch::Receiver<bool>,
) {
    let service_limits = Limits::default();
    let mut served: BTreeMap<u32, Served> = BTreeMap::new();
    let mut view = load(&config.state_file).unwrap_or_default();
    let mut fresh = false;
    let mut backoff = Backoff::new(backoff);
    let controller = Arc::new(crate::gateway_http::Upstream::default());
    let results = Arc::new(Results::default());
    tokio::spawn(crate::gateway_probes::report_loop(
        client.clone(),
        node.clone(),
        Arc::clone(&results),
        stop.clone(),
    ));
    loop {
        reconcile(
            &mut served,
            &view,
            &netns_prefix,
            &config,
            &service_limits,
            &controller,
            &results,
        );
        let wait = if fresh {
            config.watch_wait
        } else {
            Duration::ZERO
        };
        let polled = tokio::select! {
            r = client.node_discovery(&node, view.digest, wait) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match polled {
            Ok(next) => {
                backoff.reset();
                fresh = true;
                controller.set_reachable(next.consul);
                if next.digest != view.digest {
                    tracing::info!(
                        node = %node,
                        vrfs = next.vrfs.len(),
                        "discovery view updated"
                    );
                    save(&config.state_file, &next);
                    view = next;
                }
            }
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => {
                // Discovery is off at the controller (no --consul-listen), or it does
                // not know this node yet (the agent registers it): ask again soon,
                // quietly.
                tracing::debug!(error = %e, "no discovery view for this node yet");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            Err(e) => {
                controller.set_unreachable();
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, ?delay, "discovery view: controller unreachable; gateways answer from the last view");
                tokio::select! {
                    () = tokio::time::sleep(delay.min(Duration::from_secs(1))) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}

/// Brings the servers in line with `view`: binds in new (or re-created) VRF
/// namespaces, swaps zones, and stops servers of VRFs that left.
fn reconcile(
    served: &mut BTreeMap<u32, Served>,
    view: &DiscoveryView,
    prefix: &str,
    config: &GatewayConfig,
    limits: &Limits,
    upstream: &Arc<crate::gateway_http::Upstream>,
    results: &Arc<Results>,
) {
    let wanted: BTreeMap<u32, &VrfDiscovery> = view.vrfs.iter().map(|v| (v.vrf_id, v)).collect();
    // The controller bounds the list; so does the agent, whatever the view says.
    let mut probes: BTreeMap<u32, Vec<&ProbeSpec>> = BTreeMap::new();
    for p in view.probes.iter().take(MAX_NODE_PROBES) {
        probes.entry(p.vrf_id).or_default().push(p);
    }
    served.retain(|id, _| wanted.contains_key(id));
    for (id, vrf) in wanted {
        let netns = weft_fabric::names::vrf_netns(prefix, id);
        let Ok(meta) = std::fs::metadata(weft_fabric::netns::path(&netns)) else {
            // The fabric has not created it yet: the next pass binds.
            served.remove(&id);
            continue;
        };
        let zone =
            Zone::build(&view.dns, vrf, view.digest).with_recursion(!config.recursors.is_empty());
        let checks = probes.remove(&id).unwrap_or_default();
        if let Some(s) = served.get_mut(&id)
            && s.inode == meta.ino()
        {
            s.zone.set(zone);
            if let Some(http) = &s.http {
                http.set_vrf(vrf.clone());
            }
            s.probes.set(checks);
            continue;
        }
        match bind(&netns, zone, vrf, config, limits, upstream, results) {
            Ok(mut s) => {
                s.inode = meta.ino();
                s.probes.set(checks);
                tracing::info!(%netns, port = config.dns_port, http = ?config.http_port, checks = s.probes.len(), "gateway DNS and Consul API serving");
                served.insert(id, s);
            }
            Err(e) => {
                tracing::warn!(%netns, error = %e, "cannot serve discovery in the VRF namespace; retrying");
                served.remove(&id);
            }
        }
    }
}

fn bind(
    netns: &str,
    zone: Zone,
    vrf: &VrfDiscovery,
    config: &GatewayConfig,
    limits: &Limits,
    upstream: &Arc<crate::gateway_http::Upstream>,
    results: &Arc<Results>,
) -> std::io::Result<Served> {
    let dns_port = config.dns_port;
    let http_port = config.http_port;
    let (udp, tcp, http) = weft_fabric::netns::in_netns(netns, move || {
        let any = std::net::Ipv4Addr::UNSPECIFIED;
        let udp = std::net::UdpSocket::bind((any, dns_port))?;
        let tcp = std::net::TcpListener::bind((any, dns_port))?;
        let http = match http_port {
            Some(p) => Some(std::net::TcpListener::bind((any, p))?),
            None => None,
        };
        Ok::<_, std::io::Error>((udp, tcp, http))
    })
    .map_err(std::io::Error::other)??;
    let shared = SharedZone::new(zone);
    let service = Service::new(shared.clone(), config.recursors.clone(), limits.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let (stop_async, stop_rx) = watch::channel(false);
    weft_dns::serve::spawn_udp(udp, service.clone(), config.udp_threads, stop.clone())?;
    tcp.set_nonblocking(true)?;
    let tcp = tokio::net::TcpListener::from_std(tcp)?;
    tokio::spawn(weft_dns::serve::serve_tcp(tcp, service, stop_rx.clone()));
    let http = match http {
        Some(listener) => Some(crate::gateway_http::Gateway::start(
            listener,
            vrf.clone(),
            upstream.clone(),
            stop_rx,
        )?),
        None => None,
    };
    Ok(Served {
        zone: shared,
        inode: 0,
        stop,
        stop_async,
        http,
        probes: VrfProbes::start(netns, Arc::clone(results))?,
    })
}

fn load(path: &std::path::Path) -> Option<DiscoveryView> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable saved discovery view");
            None
        }
    }
}

/// Write, fsync, rename: a crash leaves the old view or the new one.
fn save(path: &std::path::Path, view: &DiscoveryView) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(view).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "cannot save the discovery view");
    }
}
