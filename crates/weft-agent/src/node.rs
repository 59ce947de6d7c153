//! What the agent does to its node, behind a trait so that the loop is tested with a
//! fake: endpoint namespaces and the fabric's reconcile.

use std::sync::Arc;
use weft_fabric::exec::SystemRunner;
use weft_fabric::reconcile::SystemNetns;
use weft_fabric::state::StateStore;
use weft_fabric::{DesiredNode, Fabric, FabricError, ReconcileReport, netns};

pub trait NodeOps: Send + 'static {
    fn netns_exists(&self, name: &str) -> bool;
    fn create_netns(&mut self, name: &str) -> Result<(), FabricError>;
    fn delete_netns(&mut self, name: &str) -> Result<(), FabricError>;
    fn list_netns(&self, prefix: &str) -> Vec<String>;
    fn reconcile(&mut self, desired: &DesiredNode) -> Result<ReconcileReport, FabricError>;
    /// On a clean shutdown: removes what is only a speed-up (the spare VRF namespace);
    /// the installed fabric stays.
    fn shutdown(&mut self, _vrf_netns_prefix: &str) {}
}

/// The real node: namespaces under `/run/netns`, the fabric with its state in a
/// directory (by default `/run/weft-fabric`).
#[derive(Debug)]
pub struct SystemNode {
    fabric: Fabric,
}

impl SystemNode {
    pub fn new(fabric_state_dir: &std::path::Path) -> Self {
        Self {
            fabric: Fabric::new(
                Arc::new(SystemRunner),
                Arc::new(SystemNetns),
                StateStore::in_dir(fabric_state_dir),
            )
            .with_spare_vrf(),
        }
    }
}

impl NodeOps for SystemNode {
    fn netns_exists(&self, name: &str) -> bool {
        netns::exists(name)
    }
    fn create_netns(&mut self, name: &str) -> Result<(), FabricError> {
        netns::create(name)
    }
    fn delete_netns(&mut self, name: &str) -> Result<(), FabricError> {
        netns::delete(name)
    }
    fn list_netns(&self, prefix: &str) -> Vec<String> {
        netns::list_with_prefix(prefix)
    }
    fn reconcile(&mut self, desired: &DesiredNode) -> Result<ReconcileReport, FabricError> {
        self.fabric.reconcile(desired)
    }
    fn shutdown(&mut self, vrf_netns_prefix: &str) {
        if let Err(e) = self.fabric.remove_spare(vrf_netns_prefix) {
            tracing::warn!(error = %e, "cannot remove the spare VRF namespace");
        }
    }
}
