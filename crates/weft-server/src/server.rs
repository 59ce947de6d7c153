//! Starting and stopping the controller.

use crate::auth::BootstrapTokens;
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::ipam::Ipam;
use crate::keys;
use crate::liveness::Liveness;
use crate::state::{Snapshot, as_revision};
use crate::watch::DesiredCache;
use crate::{routes, watch};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::sync::{broadcast, watch as tokio_watch};
use tokio::task::JoinHandle;
use weft_store::{KvStore, StoreOptions};
use weft_store_etcd::{AnyStore, EtcdOptions, OpenOptions};

/// Everything a handler can reach.
#[derive(Debug)]
pub struct AppState {
    pub store: AnyStore,
    pub config: ServerConfig,
    pub tokens: BootstrapTokens,
    snapshot: RwLock<Arc<Snapshot>>,
    /// The snapshot's revision, published after the snapshot is swapped in.
    pub revisions: tokio_watch::Sender<u64>,
    /// The newest store revision the watch delivered, including keys the snapshot
    /// ignores (for [`crate::watch::write_barrier`]).
    pub observed: tokio_watch::Sender<u64>,
    pub changes: broadcast::Sender<crate::watch::OrderedChange>,
    pub liveness: Liveness,
    pub ipam: Ipam,
    pub desired_cache: DesiredCache,
    /// Serialises this server's policy commits: they all guard on one key, so running them
    /// concurrently only makes them retry each other (the guard stays, for other writers).
    pub policy_lock: tokio::sync::Mutex<()>,
    /// Serialises app writes (API and scheduler).
    pub apps_lock: tokio::sync::Mutex<()>,
    /// What the scheduler keeps between passes (pending reasons, restart backoff).
    pub scheduler: crate::scheduler::Memory,
    /// Wakes the scheduler (node reports change task statuses without a commit).
    pub scheduler_wake: tokio::sync::Notify,
    /// Ticks when nodes, tasks or their reported states may have changed: wakes the
    /// Consul API's blocking catalog and health queries.
    pub catalog_changes: tokio_watch::Sender<u64>,
    /// Turns true when the server stops: ends blocking queries and event streams.
    pub shutdown: tokio_watch::Receiver<bool>,
    /// The Consul adapter's catalog for discovery views, once the Consul API runs.
    pub dns_source: std::sync::OnceLock<Arc<dyn weft_consul::DnsSource>>,
    /// The Consul API's advertised address, once it runs.
    pub consul_addr: std::sync::OnceLock<SocketAddr>,
    /// Whether this controller leads the loops, and its fence ([`crate::leader`]).
    pub leadership: crate::leader::Leadership,
    /// The live keys of the nodes this controller hears ([`crate::live_share`]).
    pub live_share: crate::live_share::LiveShare,
}

impl AppState {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn replace_snapshot(&self, snapshot: Snapshot) {
        *self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snapshot);
    }
}

/// A running controller.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    admin_token: String,
    join_token: String,
    stop: tokio_watch::Sender<bool>,
    server: JoinHandle<()>,
    follower: JoinHandle<()>,
    scheduler: JoinHandle<()>,
    leader: JoinHandle<()>,
    registry: JoinHandle<()>,
    live: JoinHandle<()>,
    consul: Option<ConsulTasks>,
    openstack: Option<crate::openstack::OpenStackTasks>,
}

impl ServerHandle {
    /// The address actually bound (the port is chosen when the config said `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Consul API's address, when it is served.
    pub fn consul_addr(&self) -> Option<SocketAddr> {
        self.consul.as_ref().map(|c| c.addr)
    }

    /// The OpenStack APIs' address, when they are served.
    pub fn openstack_addr(&self) -> Option<SocketAddr> {
        self.openstack.as_ref().map(|o| o.addr)
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn join_token(&self) -> &str {
        &self.join_token
    }

    /// Stops accepting, ends blocking queries and event streams, waits for in-flight
    /// requests, then closes the store (so the data dir can be opened again).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.server.await {
            tracing::error!(error = %err, "server task failed");
        }
        if let Err(err) = self.scheduler.await {
            tracing::error!(error = %err, "scheduler task failed");
        }
        for (what, task) in [
            ("leader election", self.leader),
            ("registry", self.registry),
            ("liveness follower", self.live),
        ] {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "{what} task failed");
            }
        }
        if let Err(err) = self.follower.await {
            tracing::error!(error = %err, "store follower task failed");
        }
        if let Some(openstack) = self.openstack
            && let Err(err) = openstack.server.await
        {
            tracing::error!(error = %err, "openstack API task failed");
        }
        if let Some(consul) = self.consul {
            for (what, task) in [
                ("consul API", consul.server),
                ("consul checks", consul.background),
            ] {
                if let Err(err) = task.await {
                    tracing::error!(error = %err, "{what} task failed");
                }
            }
        }
        tracing::info!(addr = %self.addr, "server stopped");
    }

    /// Waits until the server stops by itself (it does not, unless its listener fails).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}

/// Opens the store in `config.data_dir`, loads the state, binds `config.listen` and serves.
pub async fn serve(config: ServerConfig) -> Result<ServerHandle, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::Io {
        path: config.data_dir.clone(),
        source,
    })?;
    let tokens = BootstrapTokens::load_or_create(&config.data_dir)?;
    let store = weft_store_etcd::open(
        &config.store,
        &config.data_dir,
        OpenOptions {
            redb: StoreOptions {
                sync: config.sync,
                ..StoreOptions::default()
            },
            etcd: EtcdOptions {
                connect_timeout: config.store_connect_timeout,
                tls: config.etcd_tls.clone(),
                ..EtcdOptions::default()
            },
        },
    )
    .await?;
    tracing::info!(backend = store.backend_name(), "store opened");
    let tokens = crate::auth::shared_tokens(&store, tokens, &config.data_dir).await?;
    let controller_id = crate::auth::controller_id(&config.data_dir)?;
    let loaded = store.range(keys::ROOT.as_bytes(), None).await?;
    let snapshot = Snapshot::load(&loaded.kvs, as_revision(loaded.revision));
    let loaded_revision = as_revision(loaded.revision);
    // Watch from right after the read, so nothing between the two is missed.
    let stream = store
        .watch(keys::ROOT.as_bytes(), Some(loaded.revision + 1))
        .await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;

    let (stop, shutdown) = tokio_watch::channel(false);
    let (revisions, _) = tokio_watch::channel(snapshot.revision);
    let (changes, _) = broadcast::channel(4096);
    let ipam = Ipam::new(&snapshot);
    tracing::info!(
        %addr,
        revision = snapshot.revision,
        tenants = snapshot.model.tenants.len(),
        endpoints = snapshot.endpoints.len(),
        "controller starting"
    );
    let admin_token = tokens.admin.clone();
    let join_token = tokens.join.clone();
    let state = Arc::new(AppState {
        store,
        config,
        tokens,
        snapshot: RwLock::new(Arc::new(snapshot)),
        revisions,
        observed: tokio_watch::channel(loaded_revision).0,
        changes,
        liveness: Liveness::default(),
        ipam,
        desired_cache: DesiredCache::default(),
        policy_lock: tokio::sync::Mutex::new(()),
        apps_lock: tokio::sync::Mutex::new(()),
        scheduler: crate::scheduler::Memory::default(),
        scheduler_wake: tokio::sync::Notify::new(),
        catalog_changes: tokio_watch::channel(0).0,
        shutdown: shutdown.clone(),
        dns_source: std::sync::OnceLock::new(),
        consul_addr: std::sync::OnceLock::new(),
        leadership: crate::leader::Leadership::new(crate::leader::LeaderRecord {
            id: controller_id,
            url: format!("http://{addr}"),
            since_ms: 0,
        }),
        live_share: crate::live_share::LiveShare::default(),
    });
    let live = tokio::spawn(crate::live_share::follow(Arc::clone(&state)));
    // Register and campaign before answering: a controller that starts alone leads
    // from its first request on.
    let ttl = state.config.leader_ttl;
    let registered = crate::leader::register_once(&state, ttl).await;
    let term = crate::leader::campaign(&state, ttl)
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "leader election");
            None
        });
    let leader = tokio::spawn(crate::leader::run(Arc::clone(&state), ttl, term));
    let registry = tokio::spawn(crate::leader::register(Arc::clone(&state), ttl, registered));
    let follower = tokio::spawn(watch::follow_store(Arc::clone(&state), stream));
    let scheduler = tokio::spawn(crate::scheduler::run(Arc::clone(&state)));
    let consul = start_consul(&state, addr).await?;
    let openstack = crate::openstack::start_openstack(&state, addr).await?;
    let app = routes::router(state);
    let mut stopped = shutdown;
    let server = tokio::spawn(async move {
        let graceful = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!(error = %err, "server failed");
        }
    });
    Ok(ServerHandle {
        addr,
        admin_token,
        join_token,
        stop,
        server,
        follower,
        scheduler,
        leader,
        registry,
        live,
        consul,
        openstack,
    })
}

/// The Consul listener and its background loop (probes, session expiry).
#[derive(Debug)]
struct ConsulTasks {
    addr: SocketAddr,
    server: JoinHandle<()>,
    background: JoinHandle<()>,
}

/// Binds and serves the Consul-compatible API when the config asks for it.
async fn start_consul(
    state: &Arc<AppState>,
    api_addr: SocketAddr,
) -> Result<Option<ConsulTasks>, ServerError> {
    let settings = &state.config.consul;
    let Some(listen) = settings.listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: listen,
        source,
    })?;
    let directory = Arc::new(crate::consul::ServerDirectory {
        state: Arc::clone(state),
    });
    let config_advertise = SocketAddr::new(api_addr.ip(), addr.port());
    let config = weft_consul::ConsulConfig {
        datacenter: settings.datacenter.clone(),
        node_name: settings.node_name.clone(),
        advertise: config_advertise,
        anonymous_tenant: settings.anonymous_tenant.clone(),
        quota: settings.quota,
    };
    let consul = Arc::new(weft_consul::Consul::new(
        state.store.clone(),
        directory,
        config,
    ));
    let _ = state.dns_source.set(consul.clone());
    let _ = state.consul_addr.set(config_advertise);
    let background = tokio::spawn(Arc::clone(&consul).run_background(state.shutdown.clone()));
    let app = weft_consul::router(consul).layer(tower_http::trace::TraceLayer::new_for_http());
    let mut stopped = state.shutdown.clone();
    let server = tokio::spawn(async move {
        let graceful = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!(error = %err, "consul API server failed");
        }
    });
    tracing::info!(%addr, "consul API listening");
    Ok(Some(ConsulTasks {
        addr,
        server,
        background,
    }))
}
