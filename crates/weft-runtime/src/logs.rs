//! Task output for `weft logs`: types shared by both runtimes, and the file follower of the
//! process runtime (stdout and stderr each go to a file in the task's state directory).

use std::path::PathBuf;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::error::{Result, RuntimeError};
use crate::task::TaskExit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub output: Output,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new output until the task exits.
    pub follow: bool,
}

pub type LogStream = BoxStream<'static, Result<LogChunk>>;

/// How often a follower looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(50);
const CHUNK: usize = 64 * 1024;

struct Follower {
    files: Vec<(Output, PathBuf, Option<tokio::fs::File>)>,
    follow: bool,
    /// `None`: the task is not running under this runtime any more.
    exit: Option<watch::Receiver<Option<TaskExit>>>,
    /// The task has exited; one last pass drains what it wrote.
    draining: bool,
}

impl Follower {
    async fn next_chunk(&mut self) -> Option<Result<LogChunk>> {
        loop {
            for (output, path, file) in &mut self.files {
                if file.is_none() {
                    match tokio::fs::File::open(&*path).await {
                        Ok(f) => *file = Some(f),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Some(Err(RuntimeError::io("open log", path.clone(), e))),
                    }
                }
                let Some(f) = file.as_mut() else { continue };
                let mut buf = vec![0u8; CHUNK];
                match f.read(&mut buf).await {
                    Ok(0) => {}
                    Ok(n) => {
                        buf.truncate(n);
                        return Some(Ok(LogChunk {
                            output: *output,
                            data: buf,
                        }));
                    }
                    Err(e) => return Some(Err(RuntimeError::io("read log", path.clone(), e))),
                }
            }
            if !self.follow || self.draining {
                return None;
            }
            let exited = self.exit.as_ref().is_none_or(|rx| rx.borrow().is_some());
            if exited {
                self.draining = true;
                continue;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

/// Streams `stdout` then `stderr` files (chunks of either, in the order they are read; the
/// relative order of the two outputs is not kept).
pub(crate) fn follow_files(
    stdout: PathBuf,
    stderr: PathBuf,
    options: LogOptions,
    exit: Option<watch::Receiver<Option<TaskExit>>>,
) -> LogStream {
    let follower = Follower {
        files: vec![
            (Output::Stdout, stdout, None),
            (Output::Stderr, stderr, None),
        ],
        follow: options.follow,
        exit,
        draining: false,
    };
    Box::pin(futures::stream::unfold(follower, |mut f| async move {
        f.next_chunk().await.map(|item| (item, f))
    }))
}

/// How much of the end of a log is read for its last line.
const TAIL_BYTES: u64 = 4096;
/// A last line longer than this is cut (on a character boundary) and marked with `...`.
const LINE_CHARS: usize = 300;

/// The last non-empty line of `text`, trimmed, control characters dropped, at most
/// [`LINE_CHARS`] characters.
pub fn last_line(text: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() > LINE_CHARS {
        let cut: String = clean.chars().take(LINE_CHARS).collect();
        Some(format!("{cut}..."))
    } else {
        Some(clean)
    }
}

/// The last non-empty line of a file, reading only its last [`TAIL_BYTES`].
pub(crate) fn last_line_of_file(path: &std::path::Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let from = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut buf = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut buf).ok()?;
    last_line(&buf)
}

/// Concatenates one output of a log stream (tests and small tools).
pub async fn collect_output(stream: LogStream, which: Output) -> Result<Vec<u8>> {
    use futures::TryStreamExt;
    stream
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            if chunk.output == which {
                acc.extend_from_slice(&chunk.data);
            }
            Ok(acc)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_the_last_non_empty_one_and_short() {
        assert_eq!(
            last_line(b"starting\nsh: 1: exec: busybox: not found\n\n").as_deref(),
            Some("sh: 1: exec: busybox: not found")
        );
        assert_eq!(last_line(b""), None);
        assert_eq!(last_line(b"\n  \n"), None);
        assert_eq!(last_line(b"a\x1b[31mred").as_deref(), Some("a[31mred"));
        let long = "\u{e9}".repeat(1000);
        let line = last_line(long.as_bytes()).expect("a line");
        assert_eq!(line.chars().count(), LINE_CHARS + 3);

        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("stderr.log");
        let mut text = "x".repeat(10_000);
        text.push_str("\nthe end\n");
        std::fs::write(&path, text).expect("write");
        assert_eq!(last_line_of_file(&path).as_deref(), Some("the end"));
        assert_eq!(last_line_of_file(&tmp.path().join("none")), None);
    }

    #[tokio::test]
    async fn follow_ends_when_the_task_exits() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("stdout.log");
        let err = tmp.path().join("stderr.log");
        std::fs::write(&out, b"one\n").expect("write");
        let (tx, rx) = watch::channel(None);
        let stream = follow_files(out.clone(), err, LogOptions { follow: true }, Some(rx));
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(120)).await;
            std::fs::write(&out, b"one\ntwo\n").expect("write");
            tokio::time::sleep(Duration::from_millis(120)).await;
            tx.send_replace(Some(TaskExit {
                code: Some(0),
                signal: None,
                oom_killed: false,
            }));
        });
        let text = collect_output(stream, Output::Stdout).await.expect("logs");
        writer.await.expect("writer");
        assert_eq!(text, b"one\ntwo\n");
    }
}
