//! A task's output, read from the agent that runs it: the node's registered API
//! (`NodeRegistration::api`, `weft_agent::output`), with the cluster's join token. Nova's
//! console and `GET /v1/tasks/{id}/output` answer from here, whichever host the task's
//! node is on, as Kubernetes' API server reads a pod's log from its kubelet.

use crate::server::AppState;
use std::time::Duration;

/// How long an agent has to answer.
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a task's output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("node {node} registered no agent API (its agent runs with --api-listen off)")]
    NoApi { node: String },
    #[error("node {node}'s agent at {url} did not answer: {why}")]
    Unreachable {
        node: String,
        url: String,
        why: String,
    },
    #[error("task {task} is not running on node {node} (its agent has no output of it)")]
    NotThere { task: String, node: String },
    #[error("node {node}'s agent refused: {status} {message}")]
    Refused {
        node: String,
        status: u16,
        message: String,
    },
}

/// The last `lines` lines (at most `max_bytes`, the end kept) of task `task`'s output,
/// from node `node`'s agent.
pub async fn read(
    state: &AppState,
    task: &str,
    node: &str,
    lines: usize,
    max_bytes: usize,
) -> Result<Vec<u8>, OutputError> {
    let api = state
        .snapshot()
        .nodes
        .get(node)
        .and_then(|n| n.value.api.clone())
        .ok_or_else(|| OutputError::NoApi {
            node: node.to_string(),
        })?;
    let url = format!("{}/v1/tasks/{task}/output", api.trim_end_matches('/'));
    let unreachable = |why: String| OutputError::Unreachable {
        node: node.to_string(),
        url: api.clone(),
        why,
    };
    let client = reqwest::Client::builder()
        .timeout(AGENT_TIMEOUT)
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let response = client
        .get(&url)
        .query(&[("lines", lines), ("max_bytes", max_bytes)])
        .bearer_auth(&state.tokens.join)
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    match status.as_u16() {
        200 => Ok(body.to_vec()),
        404 => Err(OutputError::NotThere {
            task: task.to_string(),
            node: node.to_string(),
        }),
        code => Err(OutputError::Refused {
            node: node.to_string(),
            status: code,
            message: String::from_utf8_lossy(&body[..body.len().min(512)])
                .trim()
                .to_string(),
        }),
    }
}
