//! `weft dev [--nodes N] [--ha 3]`: a whole cluster on this machine until Ctrl-C or
//! SIGTERM. `weft dev down [--tag T]`: remove a cluster that was kept (`weft demo --keep`).
//!
//! With `--ha N` the control plane is N controllers over a three-member etcd cluster
//! (Debian's `etcd-server`, on loopback ports, its data in `/run/weft/<tag>/etcd`); the
//! agents and the CLI know every controller and move on when one fails (see
//! [`crate::cluster`]). Each controller then serves Consul's API and OpenStack on ports of
//! its own (the first on 8500 and 5000 when they are free; the summary lists them all);
//! the clouds.yaml entry names the first controller's Keystone.
//!
//! The cluster also serves OpenStack (Keystone and Neutron, on 127.0.0.1:5000 when that
//! port is free) with a user `demo` in project `demo`, and, as devstack does, names it
//! in `~/.config/openstack/clouds.yaml` as the cloud `<tag>` (`weft-dev`), so that
//! `openstack --os-cloud weft-dev network list` works with nothing else set. That entry,
//! and only it, is removed again when the cluster stops.

use crate::cluster::{self, DevCluster, Services};
use crate::cmd::clouds::{self, Cloud, Installed, Written};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;

/// The Keystone user and project of a dev cluster (devstack's `demo` in `demo`).
pub const OPENSTACK_USER: &str = "demo";
pub const OPENSTACK_PROJECT: &str = "demo";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Number of nodes (named com1, com2, ...).
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Run N controllers over a three-member etcd cluster (high availability; needs
    /// etcd from Debian's etcd-server) instead of one on its embedded store.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=9))]
    ha: Option<u8>,
    /// Prefix of everything the cluster creates.
    #[arg(long, default_value = "weft-dev", global = true)]
    tag: String,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Stop a kept cluster and remove its namespaces and files.
    Down,
}

pub fn node_names(count: usize) -> Vec<String> {
    (1..=count.max(1)).map(|i| format!("com{i}")).collect()
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(Action::Down) = args.action {
        let removed = cluster::down(&args.tag)?;
        println!(
            "cluster {} removed ({} namespaces)",
            args.tag,
            removed.len()
        );
        let path = clouds::default_path();
        if clouds::remove_entry(&path, &args.tag, false)
            .with_context(|| format!("removing the cloud {} from clouds.yaml", args.tag))?
            != Written::Unchanged
        {
            println!("cloud {} removed from {}", args.tag, path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let needs = if args.ha.is_some() {
        crate::preflight::dev_cluster_ha()
    } else {
        crate::preflight::dev_cluster()
    };
    crate::preflight::check("dev", &needs)?;
    // A clouds.yaml that cannot take the entry stops us before anything is created.
    let clouds_path = clouds::default_path();
    clouds::check(&clouds_path)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let progress = |step: &str| eprintln!("==> {step}");
        let services = Services { openstack: true };
        let cluster = DevCluster::start_ha(
            &args.tag,
            &node_names(args.nodes),
            &progress,
            services,
            args.ha.map(usize::from),
        )
        .await?;
        progress("creating the OpenStack user and the clouds.yaml entry");
        let (entry, password) = match openstack_cloud(&cluster, &clouds_path).await {
            Ok(made) => made,
            Err(err) => {
                cluster.stop()?;
                return Err(err);
            }
        };
        println!(
            "weft dev cluster {} is up with {} node(s)",
            cluster.tag, args.nodes
        );
        if cluster.is_ha() {
            print_controllers(&cluster).await;
        } else {
            println!("  API:    {}", cluster.api);
        }
        println!(
            "  Consul: {} (without a token, requests act for tenant {}; X-Consul-Token takes a tenant token)",
            cluster.consul,
            crate::cluster::CONSUL_TENANT
        );
        println!(
            "  DNS:    at every endpoint's gateway, port 53 (e.g. dig @10.1.0.1 web.service.weft), and Consul's API there on 8500"
        );
        println!(
            "  OpenStack: {}/v3 (Keystone; Neutron at /network), user {OPENSTACK_USER}, project {OPENSTACK_PROJECT}, password {password}",
            cluster.openstack.as_deref().unwrap_or_default()
        );
        println!(
            "             as the cloud {} in {}{} until the cluster stops",
            entry.name,
            entry.path.display(),
            if entry.written == Written::Rewritten {
                " (written again without its comments)"
            } else {
                ""
            },
        );
        for first in clouds::shadowing(&entry.path) {
            println!(
                "             note: OpenStack clients read {} first, and then not this one",
                first.display()
            );
        }
        println!("  token:  {}", cluster.admin_token);
        println!("  logs:   {}", cluster.dir.display());
        println!("the CLI finds both by itself; try:");
        println!("  weft apply -f examples/three-tier.hcl");
        println!("  weft endpoint create web-1 --epg shop/store/web --node com1 --wait");
        println!("  weft get endpoints");
        println!("  openstack --os-cloud {} network list", entry.name);
        println!("Ctrl-C stops the cluster and removes everything it created.");
        let waited = wait_for_signal().await;
        eprintln!("==> stopping");
        let (path, name) = (entry.path.clone(), entry.name.clone());
        let removed = entry.remove();
        cluster.stop()?;
        waited?;
        match removed.with_context(|| format!("the cloud {name} is still in {}", path.display()))? {
            Written::Deleted => eprintln!("==> deleted {} (weft had created it)", path.display()),
            _ => eprintln!("==> removed the cloud {name} from {}", path.display()),
        }
        eprintln!("==> stopped; nothing left behind");
        Ok(ExitCode::SUCCESS)
    })
}

/// An HA cluster's controllers: their APIs (and Consul's and Keystone's, which each
/// serves on its own port), who leads, and where etcd runs.
async fn print_controllers(cluster: &DevCluster) {
    let status = cluster.client().controllers().await;
    let leader = status.as_ref().ok().and_then(|s| s.leader_url.clone());
    println!(
        "  controllers: {} over a {}-member etcd cluster (data and logs in {})",
        cluster.controllers.len(),
        cluster::HA_ETCD_MEMBERS,
        cluster.dir.join("etcd").display()
    );
    for (i, c) in cluster.controllers.iter().enumerate() {
        let leads = if leader.as_deref() == Some(c.url.as_str()) {
            "  (leader)"
        } else {
            ""
        };
        let openstack = c
            .openstack
            .as_deref()
            .map(|o| format!(", Keystone {o}/v3"))
            .unwrap_or_default();
        println!(
            "    {}. API {}, Consul {}{openstack}{leads}",
            i + 1,
            c.url,
            c.consul
        );
    }
    println!("    etcd: {}", cluster.etcd_endpoints().join(","));
    match status {
        Ok(s) if s.leader_url.is_none() => println!("    no leader yet"),
        Ok(_) => {}
        Err(e) => println!("    who leads is unknown: {e}"),
    }
    println!("    weft get controllers shows the leader; kill -9 it and another leads within ~3 s");
}

/// Creates the Keystone user with a new password and writes the cluster's clouds.yaml
/// entry. Returns the entry and the password.
async fn openstack_cloud(cluster: &DevCluster, path: &Path) -> Result<(Installed, String)> {
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no random password: {e}"))?;
    let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let auth_url = cluster
        .openstack_user(OPENSTACK_USER, &password, OPENSTACK_PROJECT)
        .await?;
    let cloud = Cloud {
        auth_url,
        username: OPENSTACK_USER.to_string(),
        password: password.clone(),
        project_name: OPENSTACK_PROJECT.to_string(),
    };
    let entry = clouds::install(path, &cluster.tag, &cloud)?;
    Ok((entry, password))
}

/// Ctrl-C or SIGTERM.
pub async fn wait_for_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot watch Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}
