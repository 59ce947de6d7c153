//! `weft validate -f PATH`

use crate::documents;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use weft_compiler::{Allocation, compile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A policy document, or a directory of them.
    #[arg(short = 'f', long = "file")]
    path: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let model = documents::load(&args.path)?;
    // Admission includes compiling: class-ID exhaustion is refused here, not at install.
    let policy = compile(&model, &Allocation::default())?;
    let epgs = policy.epgs.len();
    let contracts: usize = model.tenants.values().map(|t| t.contracts.len()).sum();
    println!(
        "ok: {} tenant(s), {epgs} EPG(s), {contracts} contract(s), {} rule(s) in {} VRF(s)",
        model.tenants.len(),
        policy.rule_count(),
        policy.vrfs.len()
    );
    Ok(ExitCode::SUCCESS)
}
