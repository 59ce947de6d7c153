//! `weft logs TASK [-f]`: a task's stdout (to stdout) and stderr (to stderr).
//!
//! Process tasks write `<log dir>/<task>/stdout.log` and `stderr.log` on their node; the
//! log dir is the one the controller hands to agents (`/var/lib/weft/tasks` unless
//! `--log-dir` or `WEFT_TASK_LOG_DIR` say otherwise). On a dev cluster every node shares
//! this machine's disk, so the files are read directly. Otherwise (another host's task,
//! or a container's output) the controller reads the end of it from the task's agent
//! (`GET /v1/tasks/{id}/output`: stdout then stderr, to stdout; no `-f`).

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Result, anyhow, bail};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub const DEFAULT_LOG_DIR: &str = "/var/lib/weft/tasks";

/// Lines and bytes of a task's output read through the controller (the agent's bounds).
const REMOTE_LINES: usize = 10_000;
const REMOTE_BYTES: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    task: String,
    /// Keep printing what the task writes, until Ctrl-C or the task is gone.
    #[arg(short = 'f', long)]
    follow: bool,
    #[arg(long, env = "WEFT_TASK_LOG_DIR", default_value = DEFAULT_LOG_DIR)]
    log_dir: PathBuf,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// Copies what was appended to `path` since `offset` to `out`; returns the new offset.
fn copy_new(path: &PathBuf, offset: u64, out: &mut dyn Write) -> u64 {
    let Ok(mut file) = std::fs::File::open(path) else {
        return offset;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    // A restarted task starts a fresh file.
    let from = if len < offset { 0 } else { offset };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return offset;
    }
    let mut buf = Vec::new();
    if file.read_to_end(&mut buf).is_err() {
        return offset;
    }
    let _ = out.write_all(&buf);
    let _ = out.flush();
    from + buf.len() as u64
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = args.remote.client();
    let task = block_on(client.task(&args.task))?.map_err(|e| anyhow!(describe(&e)))?;
    let dir = args.log_dir.join(&task.id);
    let (stdout_path, stderr_path) = (dir.join("stdout.log"), dir.join("stderr.log"));
    if !stdout_path.exists() && !stderr_path.exists() {
        // Not on this machine's disk (or a container): the controller reads it from
        // the agent that runs the task.
        if args.follow {
            bail!(
                "no logs of task {} in {} to follow (it runs on node {}); without -f the controller reads its output from that node's agent",
                task.id,
                dir.display(),
                task.node
            );
        }
        let output = block_on(client.task_output(&task.id, REMOTE_LINES, REMOTE_BYTES))?
            .map_err(|e| anyhow!(describe(&e)))?;
        let mut out = std::io::stdout();
        out.write_all(output.output.as_bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut offsets = (
        copy_new(&stdout_path, 0, &mut out),
        copy_new(&stderr_path, 0, &mut err),
    );
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        offsets.0 = copy_new(&stdout_path, offsets.0, &mut out);
        offsets.1 = copy_new(&stderr_path, offsets.1, &mut err);
        if block_on(client.task(&args.task))?.is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}
