//! Running `ip`, `bridge` and `nft` behind a trait, so that planning is tested with a
//! fake that only records what would run.

use crate::error::FabricError;
use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One command, run inside `netns` (`None` = the agent's own namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub netns: Option<String>,
    pub program: Program,
    pub args: Vec<String>,
    pub stdin: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Ip,
    Bridge,
    Nft,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Bridge => "bridge",
            Self::Nft => "nft",
        }
    }
}

impl Cmd {
    pub fn new(netns: Option<&str>, program: Program, args: &[&str]) -> Self {
        Self {
            netns: netns.map(str::to_string),
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            stdin: None,
        }
    }

    pub fn with_stdin(mut self, stdin: String) -> Self {
        self.stdin = Some(stdin);
        self
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.name())?;
        if let Some(ns) = &self.netns {
            write!(f, " -n {ns}")?;
        }
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

pub trait Runner: Send + Sync + fmt::Debug {
    /// Runs the command; a non-zero exit is an error carrying stderr. Returns stdout.
    fn run(&self, cmd: &Cmd) -> Result<String, FabricError>;

    /// The netlink backend for link operations that come with this runner, if any
    /// (`None`: everything runs as commands).
    fn netlink(&self) -> Option<std::sync::Arc<dyn crate::nl::Netlink>> {
        None
    }

    /// The nf_tables netlink backend for element changes that comes with this runner,
    /// if any (`None`: every batch runs as `nft -f`).
    fn nft_netlink(&self) -> Option<std::sync::Arc<dyn crate::nft::netlink::NftNetlink>> {
        None
    }
}

/// Runs the real tools. `ip` and `bridge` enter the namespace themselves (`-n`);
/// `nft` is spawned from a thread inside the namespace.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn nft_netlink(&self) -> Option<std::sync::Arc<dyn crate::nft::netlink::NftNetlink>> {
        crate::nft::netlink::selected().then(|| {
            std::sync::Arc::new(crate::nft::netlink::NfNetlink)
                as std::sync::Arc<dyn crate::nft::netlink::NftNetlink>
        })
    }

    fn netlink(&self) -> Option<std::sync::Arc<dyn crate::nl::Netlink>> {
        crate::nl::selected().then(|| {
            std::sync::Arc::new(crate::nl::RtNetlink) as std::sync::Arc<dyn crate::nl::Netlink>
        })
    }

    fn run(&self, cmd: &Cmd) -> Result<String, FabricError> {
        if let (Program::Nft, Some(ns)) = (cmd.program, &cmd.netns) {
            // `nft` has no `-n`: it is spawned from a thread that entered the namespace
            // (a child inherits its thread's network namespace). Cheaper than
            // `ip netns exec`, which also execs `ip` and remounts /sys.
            let mut local = cmd.clone();
            local.netns = None;
            let netns = ns.clone();
            return crate::netns::in_netns(ns, move || SystemRunner.run(&local))?.map_err(
                |e| match e {
                    FabricError::Command {
                        command, stderr, ..
                    } => FabricError::Command {
                        netns,
                        command,
                        stderr,
                    },
                    other => other,
                },
            );
        }
        let mut command = match (cmd.program, &cmd.netns) {
            (p, Some(ns)) => {
                let mut c = Command::new(p.name());
                c.args(["-n", ns]);
                c
            }
            (p, None) => Command::new(p.name()),
        };
        command.args(&cmd.args);
        command.stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let fail = |stderr: String| FabricError::Command {
            netns: cmd.netns.clone().unwrap_or_else(|| "(own)".into()),
            command: cmd.to_string(),
            stderr,
        };
        let mut child = command.spawn().map_err(|e| fail(e.to_string()))?;
        if let Some(input) = &cmd.stdin {
            let mut pipe = child
                .stdin
                .take()
                .ok_or_else(|| fail("no stdin pipe".into()))?;
            // A writer thread: large batches would otherwise deadlock against a full stdout.
            let input = input.clone();
            let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
            let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
            writer
                .join()
                .map_err(|_| fail("stdin writer panicked".into()))?
                .map_err(|e| fail(format!("writing stdin: {e}")))?;
            return finish(out, fail);
        }
        let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        finish(out, fail)
    }
}

fn finish(
    out: std::process::Output,
    fail: impl Fn(String) -> FabricError,
) -> Result<String, FabricError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Records commands instead of running them; answers with canned output.
#[derive(Debug, Default)]
pub struct FakeRunner {
    pub log: Mutex<Vec<Cmd>>,
    /// (substring of the rendered command, reply): the first match answers.
    pub replies: Mutex<Vec<(String, Result<String, String>)>>,
}

impl FakeRunner {
    pub fn commands(&self) -> Vec<Cmd> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
    }

    pub fn reply(&self, matching: &str, reply: Result<String, String>) {
        if let Ok(mut r) = self.replies.lock() {
            r.push((matching.to_string(), reply));
        }
    }
}

impl Runner for FakeRunner {
    fn run(&self, cmd: &Cmd) -> Result<String, FabricError> {
        if let Ok(mut l) = self.log.lock() {
            l.push(cmd.clone());
        }
        let text = cmd.to_string();
        let replies = self.replies.lock().map(|r| r.clone()).unwrap_or_default();
        match replies.into_iter().find(|(m, _)| text.contains(m.as_str())) {
            Some((_, Ok(out))) => Ok(out),
            Some((_, Err(stderr))) => Err(FabricError::Command {
                netns: cmd.netns.clone().unwrap_or_default(),
                command: text,
                stderr,
            }),
            None => Ok(String::new()),
        }
    }
}
