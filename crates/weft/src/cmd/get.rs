//! `weft get nodes|tenants|epgs|contracts|endpoints [-o json]`

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Result, anyhow};
use serde::Serialize;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    what: What,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum What {
    Nodes,
    Tenants,
    Epgs,
    Contracts,
    Endpoints,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

/// Prints rows as aligned columns.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
}

fn json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = args.remote.client();
    let as_json = matches!(args.output, Output::Json);
    let fail = |e: weft_api::ClientError| anyhow!(describe(&e));
    match args.what {
        What::Nodes => {
            let nodes = block_on(client.nodes())?.map_err(fail)?;
            if as_json {
                return json(&nodes).map(|()| ExitCode::SUCCESS);
            }
            let rows = nodes
                .iter()
                .map(|n| {
                    let r = &n.registration;
                    vec![
                        r.name.clone(),
                        if n.ready {
                            "ready".into()
                        } else {
                            "not-ready".into()
                        },
                        r.underlay_ip.to_string(),
                        format!("{}", r.resources.cpus),
                        format!("{} MiB", r.resources.mem_mb),
                        n.report
                            .as_ref()
                            .map_or("-".into(), |p| p.applied_revision.to_string()),
                    ]
                })
                .collect();
            table(
                &["name", "status", "underlay", "cpus", "memory", "applied"],
                rows,
            );
        }
        What::Tenants => {
            let tenants = block_on(client.tenants())?.map_err(fail)?;
            if as_json {
                return json(&tenants).map(|()| ExitCode::SUCCESS);
            }
            let rows = tenants
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.vrfs.to_string(),
                        t.bridge_domains.to_string(),
                        t.epgs.to_string(),
                        t.contracts.to_string(),
                        t.revision.to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "name",
                    "vrfs",
                    "bridge domains",
                    "epgs",
                    "contracts",
                    "revision",
                ],
                rows,
            );
        }
        What::Epgs => {
            let epgs = block_on(client.epgs())?.map_err(fail)?;
            if as_json {
                return json(&epgs).map(|()| ExitCode::SUCCESS);
            }
            let rows = epgs
                .iter()
                .map(|e| {
                    vec![
                        e.path.to_string(),
                        e.class.to_string(),
                        e.bridge_domain.to_string(),
                        e.provides.join(","),
                        e.consumes.join(","),
                        e.endpoints.to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "epg",
                    "class",
                    "bridge domain",
                    "provides",
                    "consumes",
                    "endpoints",
                ],
                rows,
            );
        }
        What::Contracts => {
            let contracts = block_on(client.contracts())?.map_err(fail)?;
            if as_json {
                return json(&contracts).map(|()| ExitCode::SUCCESS);
            }
            let rows = contracts
                .iter()
                .map(|c| {
                    vec![
                        c.path.to_string(),
                        c.scope.clone(),
                        c.subjects.to_string(),
                        c.consumers.join(","),
                        c.providers.join(","),
                    ]
                })
                .collect();
            table(
                &["contract", "scope", "subjects", "consumers", "providers"],
                rows,
            );
        }
        What::Endpoints => {
            let endpoints = block_on(client.endpoints())?.map_err(fail)?;
            if as_json {
                return json(&endpoints).map(|()| ExitCode::SUCCESS);
            }
            let rows = endpoints
                .iter()
                .map(|e| {
                    vec![
                        e.name.clone(),
                        e.epg.to_string(),
                        e.node.clone(),
                        format!("{}/{}", e.ip, e.prefix_len),
                        e.mac.to_string(),
                        format!("{:?}", e.status.state).to_lowercase(),
                    ]
                })
                .collect();
            table(&["name", "epg", "node", "ip", "mac", "state"], rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}
