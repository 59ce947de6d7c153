//! `weft server --listen ADDR --data-dir DIR`: the controller.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use weft_compiler::CompileBudget;
use weft_server::{ConsulSettings, OpenStackSettings, ServerConfig, serve};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Store, tokens and other state.
    #[arg(long, default_value = "/var/lib/weft/server")]
    data_dir: PathBuf,
    /// Seconds without a heartbeat after which a node is not ready.
    #[arg(long, default_value_t = 10)]
    node_deadline: u64,
    /// Milliseconds of the leader's lease: when the leading controller stops (crash,
    /// pause, partition), another leads the loops after at most this long.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(500..=60_000))]
    leader_ttl_ms: u64,
    #[command(flatten)]
    budget: BudgetArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    consul: ConsulArgs,
    #[command(flatten)]
    openstack: OpenStackArgs,
}

/// Consul's HTTP API, for existing Consul clients: KV with sessions, catalog, health,
/// agent and status over weft's own store and tasks.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsulArgs {
    /// Serve the Consul-compatible HTTP API on this address (Consul's port is 8500).
    #[arg(long, value_name = "ADDR")]
    consul_listen: Option<SocketAddr>,
    /// The tenant that requests without a token act for; without it they are refused.
    #[arg(long, value_name = "TENANT")]
    consul_anonymous_tenant: Option<String>,
    /// The datacenter name Consul clients see.
    #[arg(long, default_value = "dc1")]
    consul_datacenter: String,
    /// The node name of the controller's own agent endpoints.
    #[arg(long, default_value = "weft-controller")]
    consul_node_name: String,
    /// The DNS domain served at every gateway (`consul` is answered too).
    #[arg(long, default_value = "weft")]
    dns_domain: String,
    /// TTL of DNS answers, in seconds.
    #[arg(long, default_value_t = 0)]
    dns_ttl: u32,
    /// KV keys one tenant may keep.
    #[arg(long, default_value_t = 100_000)]
    consul_max_kv_keys: usize,
    /// MiB of KV values one tenant may keep.
    #[arg(long, default_value_t = 256)]
    consul_max_kv_mib: usize,
    /// Registered services (and catalog nodes) one tenant may keep.
    #[arg(long, default_value_t = 10_000)]
    consul_max_services: usize,
    /// Sessions one tenant may hold.
    #[arg(long, default_value_t = 10_000)]
    consul_max_sessions: usize,
}

impl ConsulArgs {
    pub fn settings(&self) -> ConsulSettings {
        ConsulSettings {
            listen: self.consul_listen,
            datacenter: self.consul_datacenter.clone(),
            node_name: self.consul_node_name.clone(),
            anonymous_tenant: self.consul_anonymous_tenant.clone(),
            dns_domain: self.dns_domain.trim_matches('.').to_ascii_lowercase(),
            dns_ttl: self.dns_ttl,
            quota: weft_server::ConsulQuota {
                kv_keys: self.consul_max_kv_keys,
                kv_bytes: self.consul_max_kv_mib.saturating_mul(1024 * 1024),
                services: self.consul_max_services,
                sessions: self.consul_max_sessions,
            },
        }
    }
}

/// OpenStack's identity (Keystone) and networking (Neutron) APIs over weft's policy, for
/// the `openstack` CLI, openstacksdk and Terraform.
#[derive(Debug, Clone, clap::Args)]
pub struct OpenStackArgs {
    /// Serve the OpenStack APIs on this address (identity at / and /identity, networking
    /// at /network; Keystone's port is 5000).
    #[arg(long, value_name = "ADDR")]
    openstack_listen: Option<SocketAddr>,
    /// The URL clients reach that listener at, for the service catalog (default:
    /// http://<bound address>).
    #[arg(long, value_name = "URL")]
    openstack_public_url: Option<String>,
    /// A fixed token and the tenant it acts for, for tests (repeatable).
    #[arg(long, value_name = "TOKEN:TENANT", value_parser = parse_static_token)]
    openstack_static_token: Vec<(String, String)>,
    /// Seconds an issued Keystone token lives.
    #[arg(long, default_value_t = 3600)]
    openstack_token_ttl: u64,
}

fn parse_static_token(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((token, tenant)) if !token.is_empty() && !tenant.is_empty() => {
            Ok((token.to_string(), tenant.to_string()))
        }
        _ => Err(format!("{text:?} is not TOKEN:TENANT")),
    }
}

impl OpenStackArgs {
    pub fn settings(&self) -> OpenStackSettings {
        OpenStackSettings {
            listen: self.openstack_listen,
            public_url: self.openstack_public_url.clone(),
            static_tokens: self.openstack_static_token.clone(),
            token_ttl: std::time::Duration::from_secs(self.openstack_token_ttl),
        }
    }
}

/// How large a policy may compile; a policy write over any limit is refused, naming the
/// contract with the largest share.
#[derive(Debug, Clone, clap::Args)]
pub struct BudgetArgs {
    /// Most rules in one VRF's table.
    #[arg(long, default_value_t = CompileBudget::default().max_rules_per_vrf)]
    max_rules_per_vrf: usize,
    /// Most rules in all VRF tables together.
    #[arg(long, default_value_t = CompileBudget::default().max_rules)]
    max_rules: usize,
    /// Most memory the compiled rules may take, in MiB.
    #[arg(long, default_value_t = CompileBudget::default().max_bytes >> 20)]
    max_policy_mib: usize,
}

impl BudgetArgs {
    pub fn budget(&self) -> CompileBudget {
        CompileBudget {
            max_rules_per_vrf: self.max_rules_per_vrf,
            max_rules: self.max_rules,
            max_bytes: self.max_policy_mib.saturating_mul(1 << 20),
        }
    }
}

/// Where the controller keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StoreKind {
    /// The embedded redb file in --data-dir (one controller).
    Redb,
    /// An etcd cluster (--etcd-endpoints).
    Etcd,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Store backend: the embedded redb file, or an etcd cluster.
    #[arg(long, value_enum, default_value_t = StoreKind::Redb)]
    store: StoreKind,
    /// etcd client URLs, comma-separated (with --store etcd).
    #[arg(long, value_name = "URL,URL,...", value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Key prefix of this installation in etcd (default: none).
    #[arg(long, value_name = "PREFIX")]
    etcd_prefix: Option<String>,
    /// Seconds to keep retrying an unreachable etcd at startup.
    #[arg(long, default_value_t = 30)]
    etcd_connect_timeout: u64,
    /// TLS to etcd: the CA that signed etcd's certificate (PEM), for https:// endpoints.
    #[arg(long, value_name = "FILE")]
    etcd_cacert: Option<std::path::PathBuf>,
    /// TLS client certificate (PEM), when etcd checks clients (--client-cert-auth).
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    etcd_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    etcd_key: Option<std::path::PathBuf>,
}

impl StoreArgs {
    fn apply(&self, config: ServerConfig) -> Result<ServerConfig> {
        match self.store {
            StoreKind::Redb => {
                if !self.etcd_endpoints.is_empty() {
                    anyhow::bail!("--etcd-endpoints needs --store etcd");
                }
                if self.etcd_cacert.is_some() || self.etcd_cert.is_some() {
                    anyhow::bail!("--etcd-cacert, --etcd-cert and --etcd-key need --store etcd");
                }
                Ok(config)
            }
            StoreKind::Etcd => {
                if self.etcd_endpoints.is_empty() {
                    anyhow::bail!("--store etcd needs --etcd-endpoints URL[,URL...]");
                }
                let mut config =
                    config.with_etcd(self.etcd_endpoints.clone(), self.etcd_prefix.clone());
                config.store_connect_timeout =
                    std::time::Duration::from_secs(self.etcd_connect_timeout);
                config.etcd_tls = match (&self.etcd_cacert, &self.etcd_cert) {
                    (Some(cacert), _) => Some(weft_store_etcd::EtcdTls {
                        cacert: cacert.clone(),
                        cert: self.etcd_cert.clone(),
                        key: self.etcd_key.clone(),
                    }),
                    (None, Some(_)) => {
                        anyhow::bail!(
                            "--etcd-cert needs --etcd-cacert (the CA of etcd's certificate)"
                        )
                    }
                    (None, None) => None,
                };
                Ok(config)
            }
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let mut config = ServerConfig::new(args.listen, &args.data_dir);
        config.node_deadline = std::time::Duration::from_secs(args.node_deadline);
        config.leader_ttl = std::time::Duration::from_millis(args.leader_ttl_ms);
        config.compile_budget = args.budget.budget();
        config.consul = args.consul.settings();
        config.openstack = args.openstack.settings();
        let config = args.store.apply(config)?;
        let server = serve(config)
            .await
            .with_context(|| format!("cannot start the controller on {}", args.listen))?;
        eprintln!(
            "weft server listening on {} (data in {}; admin token in {})",
            server.base_url(),
            args.data_dir.display(),
            args.data_dir.join("admin.token").display()
        );
        if let Some(consul) = server.consul_addr() {
            eprintln!("weft server: Consul API on http://{consul}");
        }
        if let Some(openstack) = server.openstack_addr() {
            eprintln!(
                "weft server: OpenStack APIs on http://{openstack} (auth_url http://{openstack}/v3)"
            );
        }
        super::dev::wait_for_signal().await?;
        eprintln!("weft server: shutting down");
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
