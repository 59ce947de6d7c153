//! `weft apply -f PATH`: send policy documents to the controller.

use crate::documents;
use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Result, anyhow};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A policy document, or a directory of them.
    #[arg(short = 'f', long = "file")]
    path: PathBuf,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    // Checked here first, so that errors name the file and line.
    let model = documents::load(&args.path)?;
    let client = args.remote.client();
    let applied = block_on(client.apply(&model))?.map_err(|e| anyhow!(describe(&e)))?;
    for warning in &applied.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "applied tenant(s) {} at revision {}",
        applied.tenants.join(", "),
        applied.revision
    );
    Ok(ExitCode::SUCCESS)
}
