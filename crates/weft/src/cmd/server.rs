//! `weft server --listen ADDR --data-dir DIR`: the controller.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use weft_compiler::CompileBudget;
use weft_server::{ServerConfig, serve};

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
    #[command(flatten)]
    budget: BudgetArgs,
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

pub fn run(args: Args) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let mut config = ServerConfig::new(args.listen, &args.data_dir);
        config.node_deadline = std::time::Duration::from_secs(args.node_deadline);
        config.compile_budget = args.budget.budget();
        let server = serve(config)
            .await
            .with_context(|| format!("cannot start the controller on {}", args.listen))?;
        eprintln!(
            "weft server listening on {} (data in {}; admin token in {})",
            server.base_url(),
            args.data_dir.display(),
            args.data_dir.join("admin.token").display()
        );
        super::dev::wait_for_signal().await?;
        eprintln!("weft server: shutting down");
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
