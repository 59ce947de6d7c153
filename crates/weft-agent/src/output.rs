//! The agent's own API: its tasks' output, for the controllers. A controller answers
//! Nova's console (and any client asking a task's output) by reading it here, from the
//! node that runs the task, as Kubernetes' API server reads a pod's log from its kubelet.
//!
//! `GET /v1/tasks/{task}/output?lines=N&max_bytes=M` with `Authorization: Bearer <join
//! token>` (the cluster's agents' and controllers' shared secret): the last `lines`
//! lines of what the task printed, at most `max_bytes` (the end kept). A Docker task's
//! is its container's log (stdout and stderr as the engine interleaved them); a process
//! task's, its `stdout.log` then its `stderr.log`, each cut to the bounds. 401 without
//! the token, 404 for a task this agent does not run, 400 beyond the bounds.

use crate::tasks::Tasks;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::sync::Arc;

/// At most this many lines in one answer.
pub const MAX_LINES: usize = 10_000;
/// At most this many bytes in one answer.
pub const MAX_BYTES: usize = 1 << 20;

/// Why a task's output cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("the task does not run on this node")]
    NotHere,
    #[error("cannot read the task's output: {0}")]
    Read(String),
}

/// A process task's output: the end of `<dir>/stdout.log` then of `<dir>/stderr.log`,
/// each at most `lines` lines, both together at most `max_bytes` (the end kept).
pub fn tail_logs(
    dir: &std::path::Path,
    lines: usize,
    max_bytes: usize,
) -> Result<Vec<u8>, OutputError> {
    let mut out = Vec::new();
    for name in ["stdout.log", "stderr.log"] {
        out.extend_from_slice(&tail_file(&dir.join(name), lines, max_bytes)?);
    }
    if out.len() > max_bytes {
        out.drain(..out.len() - max_bytes);
    }
    Ok(out)
}

/// The last `lines` lines of the file, read from at most its last `max_bytes`; a
/// missing file is empty (the task wrote nothing there yet).
fn tail_file(
    path: &std::path::Path,
    lines: usize,
    max_bytes: usize,
) -> Result<Vec<u8>, OutputError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(OutputError::Read(format!("{}: {e}", path.display()))),
    };
    let read = |e: std::io::Error| OutputError::Read(format!("{}: {e}", path.display()));
    let len = file.metadata().map_err(read)?.len();
    let from = len.saturating_sub(u64::try_from(max_bytes).unwrap_or(u64::MAX));
    file.seek(SeekFrom::Start(from)).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(len - from)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    let start = bytes.len() - last_lines(&bytes, lines).len();
    bytes.drain(..start);
    Ok(bytes)
}

/// The last `lines` lines of `bytes` (a final newline ends the last line, it does not
/// start another).
fn last_lines(bytes: &[u8], lines: usize) -> &[u8] {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let newline = body
        .iter()
        .rev()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(lines.saturating_sub(1));
    match newline {
        Some((from_end, _)) => &bytes[body.len() - from_end..],
        None => bytes,
    }
}

#[derive(Clone)]
struct Service {
    tasks: Arc<Tasks>,
    join_token: Arc<str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputQuery {
    lines: usize,
    max_bytes: usize,
}

/// The API's routes over this agent's tasks.
pub fn router(tasks: Arc<Tasks>, join_token: &str) -> Router {
    Router::new()
        .route("/v1/tasks/{task}/output", get(output))
        .with_state(Service {
            tasks,
            join_token: join_token.into(),
        })
}

/// Whether `given` is `want`, in time independent of where they differ.
fn same_secret(given: &[u8], want: &[u8]) -> bool {
    given.len() == want.len() && given.iter().zip(want).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}

async fn output(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(task): Path<String>,
    Query(query): Query<OutputQuery>,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| same_secret(t.as_bytes(), service.join_token.as_bytes())) {
        return (StatusCode::UNAUTHORIZED, "the join token is required\n").into_response();
    }
    if query.lines == 0
        || query.lines > MAX_LINES
        || query.max_bytes == 0
        || query.max_bytes > MAX_BYTES
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("lines must be 1 to {MAX_LINES} and max_bytes 1 to {MAX_BYTES}\n"),
        )
            .into_response();
    }
    match service
        .tasks
        .output(&task, query.lines, query.max_bytes)
        .await
    {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(OutputError::NotHere) => (
            StatusCode::NOT_FOUND,
            format!("task {task} does not run on this node\n"),
        )
            .into_response(),
        Err(OutputError::Read(why)) => {
            tracing::warn!(%task, error = %why, "cannot read a task's output");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n")).into_response()
        }
    }
}

/// Binds `listen` and serves the API until the process ends; the URL controllers should
/// use (`advertise`, or the bound address).
pub async fn serve(
    listen: std::net::SocketAddr,
    advertise: Option<String>,
    router: Router,
) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let url = advertise.unwrap_or_else(|| format!("http://{bound}"));
    tracing::info!(%bound, %url, "agent API listening (task output for the controllers)");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "agent API stopped");
        }
    });
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::{last_lines, same_secret};

    #[test]
    fn the_last_lines_are_whole_lines() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 1), b"c");
        assert_eq!(last_lines(b"a\nb\nc\n", 1), b"c\n");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"", 3), b"");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}
