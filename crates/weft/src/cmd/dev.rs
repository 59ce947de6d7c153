//! `weft dev [--nodes N]`: a whole cluster on this machine until Ctrl-C or SIGTERM.
//! `weft dev down [--tag T]`: remove a cluster that was kept (`weft demo --keep`).

use crate::cluster::{self, DevCluster};
use anyhow::{Context, Result};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Number of nodes (named com1, com2, ...).
    #[arg(long, default_value_t = 2)]
    nodes: usize,
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
        return Ok(ExitCode::SUCCESS);
    }
    crate::preflight::check("dev", &crate::preflight::dev_cluster())?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let progress = |step: &str| eprintln!("==> {step}");
        let cluster = DevCluster::start(&args.tag, &node_names(args.nodes), &progress).await?;
        println!(
            "weft dev cluster {} is up with {} node(s)",
            cluster.tag, args.nodes
        );
        println!("  API:    {}", cluster.api);
        println!(
            "  Consul: {} (without a token, requests act for tenant {}; X-Consul-Token takes a tenant token)",
            cluster.consul,
            crate::cluster::CONSUL_TENANT
        );
        println!(
            "  DNS:    at every endpoint's gateway, port 53 (e.g. dig @10.1.0.1 web.service.weft), and Consul's API there on 8500"
        );
        println!("  token:  {}", cluster.admin_token);
        println!("  logs:   {}", cluster.dir.display());
        println!("the CLI finds both by itself; try:");
        println!("  weft apply -f examples/three-tier.hcl");
        println!("  weft endpoint create web-1 --epg shop/store/web --node com1 --wait");
        println!("  weft get endpoints");
        println!("Ctrl-C stops the cluster and removes everything it created.");
        wait_for_signal().await?;
        eprintln!("==> stopping");
        cluster.stop()?;
        eprintln!("==> stopped; nothing left behind");
        Ok(ExitCode::SUCCESS)
    })
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
