//! The agent's view of the controller: four calls, behind a trait so that the loop is
//! tested with a fake.

use std::future::Future;
use std::time::Duration;
use weft_api::{Client, ClientError, NodeDesired, NodeImages, NodeRegistration, NodeReport};

/// Why a call to the controller failed, sorted by what the agent does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// Nothing answered (wrong address, controller down, connection broken).
    #[error("cannot reach controller at {url}: {why}")]
    Unreachable { url: String, why: String },
    /// The controller refused the join token.
    #[error("join token rejected by {url}: {why}")]
    Rejected { url: String, why: String },
    /// The controller does not know this node (it restarted, or we never registered).
    #[error("controller at {url} does not know this node: {why}")]
    UnknownNode { url: String, why: String },
    /// Anything else the controller answered.
    #[error("controller at {url}: {why}")]
    Other { url: String, why: String },
}

impl ControllerError {
    pub fn from_client(url: &str, e: ClientError) -> Self {
        let url = url.to_string();
        let why = match &e {
            // reqwest's own message hides the cause ("connection refused") in its sources.
            ClientError::Transport { source, .. } => error_chain(source),
            other => other.to_string(),
        };
        if e.is_auth() {
            Self::Rejected { url, why }
        } else if matches!(e, ClientError::Transport { .. }) {
            Self::Unreachable { url, why }
        } else if e.status().is_some_and(|s| s.as_u16() == 404) {
            Self::UnknownNode { url, why }
        } else {
            Self::Other { url, why }
        }
    }
}

/// An error and its sources, joined with ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cur = s.source();
    }
    text
}

/// A desired state with the index to wait on next.
#[derive(Debug, Clone)]
pub struct Watched {
    pub index: u64,
    pub desired: NodeDesired,
}

pub trait Controller: Send + Sync {
    /// Where the controller is (for logs).
    fn url(&self) -> &str;
    fn register(
        &self,
        registration: &NodeRegistration,
    ) -> impl Future<Output = Result<(), ControllerError>> + Send;
    fn heartbeat(&self, node: &str) -> impl Future<Output = Result<(), ControllerError>> + Send;
    /// The blocking query: returns once the view is newer than `index`, or after `wait`.
    fn desired(
        &self,
        node: &str,
        index: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<Watched, ControllerError>> + Send;
    fn report(
        &self,
        node: &str,
        report: &NodeReport,
    ) -> impl Future<Output = Result<(), ControllerError>> + Send;
    /// The Docker images the node's engine holds (a controller that does not take them
    /// accepts and forgets).
    fn images(
        &self,
        node: &str,
        images: &NodeImages,
    ) -> impl Future<Output = Result<(), ControllerError>> + Send {
        let _ = (node, images);
        async { Ok(()) }
    }
}

impl Controller for Client {
    fn url(&self) -> &str {
        self.base()
    }

    async fn register(&self, registration: &NodeRegistration) -> Result<(), ControllerError> {
        self.register_node(registration)
            .await
            .map(|_| ())
            .map_err(|e| ControllerError::from_client(self.base(), e))
    }

    async fn heartbeat(&self, node: &str) -> Result<(), ControllerError> {
        Client::heartbeat(self, node)
            .await
            .map_err(|e| ControllerError::from_client(self.base(), e))
    }

    async fn desired(
        &self,
        node: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Watched, ControllerError> {
        self.node_desired(node, index, wait)
            .await
            .map(|r| Watched {
                index: r.index.max(r.value.revision),
                desired: r.value,
            })
            .map_err(|e| ControllerError::from_client(self.base(), e))
    }

    async fn report(&self, node: &str, report: &NodeReport) -> Result<(), ControllerError> {
        Client::report(self, node, report)
            .await
            .map_err(|e| ControllerError::from_client(self.base(), e))
    }

    async fn images(&self, node: &str, images: &NodeImages) -> Result<(), ControllerError> {
        self.report_images(node, images)
            .await
            .map_err(|e| ControllerError::from_client(self.base(), e))
    }
}
