//! `weft compile -f PATH [-o json]`: the rule tables the fabric installs.

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
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let model = documents::load(&args.path)?;
    let policy = compile(&model, &Allocation::default())?;
    if matches!(args.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(&policy)?);
        return Ok(ExitCode::SUCCESS);
    }
    for epg in policy.epgs.values() {
        println!(
            "epg {:<30} class {:>5}  {}",
            epg.path.to_string(),
            epg.class,
            epg.bridge_domain
        );
    }
    for vrf in policy.vrfs.values() {
        let mode = if vrf.enforced {
            "enforced"
        } else {
            "unenforced"
        };
        println!(
            "\nvrf {} (id {}, {mode}), {} rule(s)",
            vrf.path,
            vrf.id,
            vrf.rules.len()
        );
        println!(
            "  {:<20} {:>8} {:>8} {:<5} {:<11} {:<11} {:<6} trace",
            "tier", "src", "dst", "proto", "sport", "dport", "action"
        );
        for r in &vrf.rules {
            println!(
                "  {:<20} {:>8} {:>8} {:<5} {:<11} {:<11} {:<6} {}",
                format!("{:?}", r.tier),
                r.src.to_string(),
                r.dst.to_string(),
                r.proto.to_string(),
                r.sport.to_string(),
                r.dport.to_string(),
                r.action.to_string(),
                r.trace
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
