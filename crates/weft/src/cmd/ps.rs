//! `weft ps [--app ID]`: tasks with node, IP, EPG, state and health.

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Result, anyhow};
use std::collections::BTreeMap;
use std::process::ExitCode;
use weft_api::{TaskState, TaskStatus};

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

/// A task's state in words, with its restarts and why it is in that state:
/// `failed (restarted 3 times): exited with code 127 (command not found): sh: 1: exec:
/// busybox: not found`. `weft app why-pending` and `weft demo` say it this way.
pub fn state_and_reason(status: &TaskStatus) -> String {
    let mut text = format!("{:?}", status.state).to_lowercase();
    match status.restarts {
        0 => {}
        1 => text.push_str(" (restarted once)"),
        n => text.push_str(&format!(" (restarted {n} times)")),
    }
    match &status.message {
        Some(m) if !m.is_empty() => text.push_str(&format!(": {m}")),
        _ if status.state != TaskState::Running => match status.exit_code {
            Some(code) => text.push_str(&format!(": last exit code {code}")),
            None => text.push_str(": no reason reported yet"),
        },
        _ => {}
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::EndpointState;

    #[test]
    fn a_task_that_does_not_run_says_why() {
        let mut s = TaskStatus::pending(None, EndpointState::Ready);
        assert_eq!(state_and_reason(&s), "pending: no reason reported yet");
        s.state = TaskState::Failed;
        s.restarts = 3;
        s.exit_code = Some(127);
        assert_eq!(
            state_and_reason(&s),
            "failed (restarted 3 times): last exit code 127"
        );
        s.message = Some(
            "exited with code 127 (command not found): sh: 1: exec: busybox: not found".into(),
        );
        assert_eq!(
            state_and_reason(&s),
            "failed (restarted 3 times): exited with code 127 (command not found): sh: 1: exec: busybox: not found"
        );
        s.state = TaskState::Running;
        s.message = None;
        s.restarts = 1;
        assert_eq!(state_and_reason(&s), "running (restarted once)");
    }
}
