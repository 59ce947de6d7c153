//! `weft exec ENDPOINT -- CMD...`: run a command in an endpoint's network namespace.

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Context, Result, anyhow};
use std::process::{Command, ExitCode};

#[derive(Debug, clap::Args)]
pub struct Args {
    endpoint: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = args.remote.client();
    let ep = block_on(client.endpoint(&args.endpoint))?.map_err(|e| anyhow!(describe(&e)))?;
    let status = Command::new("ip")
        .args(["netns", "exec", &ep.netns])
        .args(&args.command)
        .status()
        .with_context(|| format!("cannot run a command in namespace {}", ep.netns))?;
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(crate::EXIT_ERROR);
    Ok(ExitCode::from(code))
}
