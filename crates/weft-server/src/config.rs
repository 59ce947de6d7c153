//! What `weft server` can be told.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use weft_compiler::CompileBudget;
use weft_store::SyncPolicy;
use weft_store_etcd::StoreBackend;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen, e.g. `127.0.0.1:7070` (`:0` picks a free port).
    pub listen: SocketAddr,
    /// Holds the store file and the `admin.token` / `join.token` files.
    pub data_dir: PathBuf,
    /// A node is ready while its last heartbeat is younger than this.
    pub node_deadline: Duration,
    /// Largest request body accepted; larger ones get 413.
    pub body_limit: usize,
    /// Longest `?wait=` a blocking query may ask for; longer asks are cut to this.
    pub max_wait: Duration,
    /// When acknowledged writes reach the disk. Keep `EveryCommit` for real state.
    /// (redb only; etcd has its own durability.)
    pub sync: SyncPolicy,
    /// Where the state lives: the redb file in `data_dir` (default) or an etcd cluster.
    pub store: StoreBackend,
    /// How long the server keeps retrying an unreachable etcd at startup before it fails.
    pub store_connect_timeout: Duration,
    /// TLS to etcd (`https://` endpoints), as etcdctl's `--cacert --cert --key`.
    pub etcd_tls: Option<weft_store_etcd::EtcdTls>,
    /// A node whose last heartbeat is older than this is lost: the scheduler replaces its
    /// tasks on other nodes, within this plus one `schedule_interval`.
    pub task_lost_deadline: Duration,
    /// The scheduler runs at least this often (and on every change).
    pub schedule_interval: Duration,
    /// The leader's lease: a controller that stops leads no more after this long, and
    /// another takes over ([`crate::leader`]).
    pub leader_ttl: Duration,
    /// A deployment that makes no progress (an old task gone or a new one healthy) for
    /// this long fails.
    pub deployment_progress_deadline: Duration,
    /// Where agents put the stdout and stderr of tasks (`TaskAssignment::log_dir`).
    pub task_log_dir: String,
    /// How large a policy write may compile; a larger model is refused at admission.
    pub compile_budget: CompileBudget,
    /// Consul's HTTP API, on its own listener.
    pub consul: ConsulSettings,
    /// OpenStack's identity and networking APIs, on their own listener.
    pub openstack: OpenStackSettings,
}

/// Where and how the OpenStack APIs (Keystone, Neutron) answer.
#[derive(Debug, Clone)]
pub struct OpenStackSettings {
    /// `None`: not served.
    pub listen: Option<SocketAddr>,
    /// The base URL clients reach the listener at (the catalog's URLs); by default
    /// `http://<bound address>`.
    pub public_url: Option<String>,
    /// Fixed tokens and the tenant each acts for (`--openstack-static-token T:TENANT`).
    pub static_tokens: Vec<(String, String)>,
    /// How long an issued Keystone token lives.
    pub token_ttl: Duration,
}

impl Default for OpenStackSettings {
    fn default() -> Self {
        Self {
            listen: None,
            public_url: None,
            static_tokens: Vec::new(),
            token_ttl: Duration::from_secs(3600),
        }
    }
}

/// Where and as what the Consul-compatible API answers.
#[derive(Debug, Clone)]
pub struct ConsulSettings {
    /// `None`: not served.
    pub listen: Option<SocketAddr>,
    pub datacenter: String,
    /// The node the controller's own agent endpoints stand for.
    pub node_name: String,
    /// The tenant of requests without a token (and of the admin token); `None` refuses
    /// requests without a token.
    pub anonymous_tenant: Option<String>,
    /// DNS's domain (`weft`); `consul` is answered too.
    pub dns_domain: String,
    /// TTL of DNS answers, in seconds.
    pub dns_ttl: u32,
    /// What one tenant may keep in KV, services and sessions.
    pub quota: weft_consul::Quota,
}

impl Default for ConsulSettings {
    fn default() -> Self {
        Self {
            listen: None,
            datacenter: "dc1".into(),
            node_name: "weft-controller".into(),
            anonymous_tenant: None,
            dns_domain: "weft".into(),
            dns_ttl: 0,
            quota: weft_consul::Quota::default(),
        }
    }
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            node_deadline: Duration::from_secs(10),
            body_limit: 1024 * 1024,
            max_wait: Duration::from_secs(300),
            sync: SyncPolicy::EveryCommit,
            store: StoreBackend::Redb,
            store_connect_timeout: Duration::from_secs(30),
            etcd_tls: None,
            task_lost_deadline: Duration::from_secs(15),
            schedule_interval: Duration::from_secs(1),
            leader_ttl: Duration::from_secs(3),
            deployment_progress_deadline: Duration::from_secs(600),
            task_log_dir: "/var/lib/weft/tasks".to_string(),
            compile_budget: CompileBudget::default(),
            consul: ConsulSettings::default(),
            openstack: OpenStackSettings::default(),
        }
    }
}

impl ServerConfig {
    /// Keeps the state in the etcd cluster at `endpoints` (`http://host:port`), under `prefix`
    /// if given, instead of the redb file in `data_dir`.
    pub fn with_etcd(mut self, endpoints: Vec<String>, prefix: Option<String>) -> Self {
        self.store = StoreBackend::Etcd { endpoints, prefix };
        self
    }
}
