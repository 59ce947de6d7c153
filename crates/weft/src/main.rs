//! `weft`: one binary for the CLI, and later the controller and the node agent.

mod cluster;
mod cmd;
mod documents;
mod preflight;
mod remote;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "weft",
    version,
    about = "Application-centric microservice platform"
)]
struct Cli {
    /// Log filter, e.g. `info` or `weft=debug` (also RUST_LOG); default `info` for the
    /// long-running commands (server, agent, dev, demo), `warn` for the others.
    #[arg(long, global = true, env = "WEFT_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check policy documents; print every error and warning with file:line.
    Validate(cmd::validate::Args),
    /// Explain whether a flow between two EPGs is allowed, and why (offline or live), or
    /// with --dns what an endpoint's gateway answers for a name, and why.
    Explain(cmd::explain::Args),
    /// Print the compiled rule tables of policy documents.
    Compile(cmd::compile::Args),
    /// Send policy documents to the controller.
    Apply(cmd::apply::Args),
    /// List nodes, tenants, EPGs, contracts or endpoints from the controller.
    Get(cmd::get::Args),
    /// Create or delete endpoints.
    Endpoint(cmd::endpoint::Args),
    /// Run a command in an endpoint's network namespace.
    Exec(cmd::exec::Args),
    /// The controller: REST API, store, IPAM.
    Server(Box<cmd::server::Args>),
    /// The node agent: registers, watches its desired state, programs the fabric.
    Agent(cmd::agent::Args),
    /// A whole cluster on this machine: controller and one agent per node namespace.
    Dev(cmd::dev::Args),
    /// Build the seed's Table 1 and the three-tier example in a fresh dev cluster and
    /// check every pair with real packets.
    Demo(cmd::demo::Args),
    /// Marathon-style apps: apply, status, scale, restart, rm, cancel, why-pending.
    App(cmd::app::Args),
    /// Tasks with their node, IP, EPG, state and health.
    Ps(cmd::ps::Args),
    /// A task's output; -f follows it.
    Logs(cmd::logs::Args),
    /// Benchmarks that print figures (not tests).
    Bench(cmd::bench::Args),
    /// Services and their instances with health, through the Consul-compatible API.
    Services(cmd::discovery::ServicesArgs),
    /// The KV store, through the Consul-compatible API: get, put, delete, ls.
    Kv(cmd::discovery::KvArgs),
    /// DNS at an endpoint's gateway: `weft dns query NAME --from ENDPOINT`.
    Dns(cmd::dns::Args),
    /// Tenant settings only the admin changes: `weft tenant privilege allow|deny|show|list`.
    Tenant(cmd::tenant::Args),
}

/// Exit status for "the input was wrong or something failed".
pub const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    // A spare task process of the agent: becomes a task, never returns.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(weft_runtime::spare::SHIM_ARG))
    {
        weft_runtime::spare::shim_main();
    }
    let cli = Cli::parse();
    let long_running = matches!(
        cli.command,
        Command::Server(_) | Command::Agent(_) | Command::Dev(_) | Command::Demo(_)
    );
    let level = cli
        .log
        .clone()
        .unwrap_or_else(|| if long_running { "info" } else { "warn" }.into());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let result = match cli.command {
        Command::Validate(args) => cmd::validate::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Compile(args) => cmd::compile::run(args),
        Command::Apply(args) => cmd::apply::run(args),
        Command::Get(args) => cmd::get::run(args),
        Command::Endpoint(args) => cmd::endpoint::run(args),
        Command::Exec(args) => cmd::exec::run(args),
        Command::Server(args) => cmd::server::run(*args),
        Command::Agent(args) => cmd::agent::run(args),
        Command::Dev(args) => cmd::dev::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::App(args) => cmd::app::run(args),
        Command::Ps(args) => cmd::ps::run(args),
        Command::Logs(args) => cmd::logs::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Services(args) => cmd::discovery::services(args),
        Command::Kv(args) => cmd::discovery::kv(args),
        Command::Dns(args) => cmd::dns::run(args),
        Command::Tenant(args) => cmd::tenant::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Reports of documents (policy and apps) name the level of each of their
            // lines themselves ("error: f.hcl:3: ..."); say it once.
            let text = format!("{e:#}");
            if text.starts_with("error: ") {
                eprintln!("{text}");
            } else {
                eprintln!("error: {text}");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}
