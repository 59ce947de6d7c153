//! `weft ps [--app ID]`: tasks with node, IP, EPG, state and health.

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Result, anyhow};
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    app: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = args.remote.client();
    let fail = |e: weft_api::ClientError| anyhow!(describe(&e));
    let tasks = block_on(client.tasks(args.app.as_deref()))?.map_err(fail)?;
    if matches!(args.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(&tasks)?);
        return Ok(ExitCode::SUCCESS);
    }
    let epgs: BTreeMap<String, String> = block_on(client.apps())?
        .map_err(fail)?
        .into_iter()
        .map(|a| (a.id, a.spec.epg.to_string()))
        .collect();
    println!(
        "{:<16} {:<12} {:<8} {:<15} {:<22} {:<9} {:<9} {:>8}  NOTE",
        "TASK", "APP", "NODE", "IP", "EPG", "STATE", "HEALTH", "RESTARTS"
    );
    for t in tasks {
        let lower = |s: String| s.to_lowercase();
        println!(
            "{:<16} {:<12} {:<8} {:<15} {:<22} {:<9} {:<9} {:>8}  {}",
            t.id,
            t.app,
            t.node,
            t.ip.to_string(),
            epgs.get(&t.app).map_or("-", String::as_str),
            lower(format!("{:?}", t.status.state)),
            lower(format!("{:?}", t.status.health)),
            t.status.restarts,
            t.status.message.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
