//! `weft get nodes|tenants|epgs|contracts|endpoints|controllers [-o json]`

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Result, anyhow};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;
use weft_api::{Client, ControllersStatus};

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
    /// The controllers serving the cluster's store: who leads, since when, each one's
    /// refused loop writes and whether it answers (`GET /v1/status/leader`).
    Controllers,
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
        What::Controllers => {
            let status = block_on(client.controllers())?.map_err(fail)?;
            if as_json {
                return json(&status).map(|()| ExitCode::SUCCESS);
            }
            let own = block_on(ask_each(&status))?;
            let (header, rows) = controller_rows(&status, &own);
            table(&header, rows);
            println!("{}", leader_line(&status));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Each controller's own status, asked at its registered address (the refused count is
/// per controller); `None`: it did not answer there within 2 s. The controller that
/// answered the list is not asked again.
async fn ask_each(status: &ControllersStatus) -> Vec<Option<ControllersStatus>> {
    let mut asks = tokio::task::JoinSet::new();
    for (at, c) in status.controllers.iter().enumerate() {
        if c.id == status.this {
            continue;
        }
        let one = Client::new(&c.url, None)
            .with_failover(weft_api::client::Failover::once())
            .with_timeout(Duration::from_secs(2));
        asks.spawn(async move { (at, one.controllers().await.ok()) });
    }
    let mut own: Vec<Option<ControllersStatus>> = status
        .controllers
        .iter()
        .map(|c| (c.id == status.this).then(|| status.clone()))
        .collect();
    while let Some(done) = asks.join_next().await {
        if let Ok((at, answer)) = done {
            own[at] = answer;
        }
    }
    own
}

/// The table of `weft get controllers`: one row per registered controller.
fn controller_rows(
    status: &ControllersStatus,
    own: &[Option<ControllersStatus>],
) -> ([&'static str; 6], Vec<Vec<String>>) {
    let rows = status
        .controllers
        .iter()
        .enumerate()
        .map(|(at, c)| {
            let answer = own.get(at).and_then(Option::as_ref);
            let leads = c.leader || status.leader.as_deref() == Some(c.id.as_str());
            vec![
                c.id.clone(),
                c.url.clone(),
                utc(c.started_ms),
                if leads {
                    "LEADER".into()
                } else {
                    String::new()
                },
                answer.map_or("-".into(), |a| a.refused_loop_writes.to_string()),
                match answer {
                    Some(a) if a.this == c.id => "ok".into(),
                    Some(a) => format!("{} answers there", a.this),
                    None => "unreachable".into(),
                },
            ]
        })
        .collect();
    (
        ["id", "url", "started", "leader", "refused writes", "health"],
        rows,
    )
}

fn leader_line(status: &ControllersStatus) -> String {
    match (&status.leader, status.leader_since_ms) {
        (Some(id), since) => {
            let url = status
                .leader_url
                .as_deref()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default();
            let since = since
                .map(|ms| format!(" since {}", utc(ms)))
                .unwrap_or_default();
            format!("leader: {id}{url}{since}")
        }
        (None, _) => "leader: none (scheduling, deployments and node liveness wait for one)".into(),
    }
}

/// Unix milliseconds as `2026-12-05T18:04:39Z` (UTC).
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::ControllerInfo;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_494_479_123), "2026-12-05T18:14:39Z");
    }

    #[test]
    fn controllers_show_the_leader_and_each_ones_refusals() {
        let info = |id: &str, leader: bool| ControllerInfo {
            id: id.into(),
            url: format!("http://{id}:7070"),
            started_ms: 0,
            leader,
        };
        let status = ControllersStatus {
            leader: Some("c1".into()),
            leader_url: Some("http://c1:7070".into()),
            leader_since_ms: Some(1_000),
            this: "c2".into(),
            refused_loop_writes: 3,
            controllers: vec![info("c1", true), info("c2", false), info("c3", false)],
        };
        let c1 = ControllersStatus {
            this: "c1".into(),
            refused_loop_writes: 0,
            ..status.clone()
        };
        let own = vec![Some(c1), Some(status.clone()), None];
        let (header, rows) = controller_rows(&status, &own);
        assert_eq!(header[3], "leader");
        assert_eq!(rows[0][3], "LEADER");
        assert_eq!(rows[1][3], "");
        assert_eq!((rows[0][4].as_str(), rows[0][5].as_str()), ("0", "ok"));
        assert_eq!((rows[1][4].as_str(), rows[1][5].as_str()), ("3", "ok"));
        assert_eq!(
            (rows[2][4].as_str(), rows[2][5].as_str()),
            ("-", "unreachable")
        );
        assert_eq!(
            leader_line(&status),
            "leader: c1 (http://c1:7070) since 1970-01-01T00:00:01Z"
        );
    }
}
