//! A spare VRF namespace per node, built in the background: the first endpoint of a VRF
//! on a node then finds its namespace ready (forwarding sysctls set, weft's two tables
//! loaded) and takes it by a rename, instead of waiting for an `nft` process to load
//! the tables (~9 ms of a ~12 ms cold reconcile). The next spare is built after each use.
//!
//! The spare is `<vrf_netns_prefix>-vspare`: not a VRF namespace to the reconcile (those
//! end in digits), removed by [`Fabric::teardown`](crate::Fabric::teardown), and rebuilt
//! from scratch by a new agent (a leftover's contents are unknown).

use crate::error::FabricError;
use crate::nft::NftApplier;
use crate::nft::NftBatch;
use crate::nft::render::structure;
use crate::reconcile::{NetnsOps, init_vrf_namespace};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A spare is built this long after it is asked for: the VRF that just took the last
/// one is still starting its first task, which should not share the CPU with an `nft`
/// process.
const BUILD_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

pub(crate) fn spare_name(prefix: &str) -> String {
    format!("{prefix}-vspare")
}

#[derive(Debug, Default)]
pub(crate) struct SpareVrf {
    /// The name of the spare that is ready, if one is.
    ready: Arc<Mutex<Option<String>>>,
    builder: Option<JoinHandle<()>>,
}

impl SpareVrf {
    pub fn building(&self) -> bool {
        self.builder.as_ref().is_some_and(|b| !b.is_finished())
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts building the spare of `prefix` unless it is ready or being built.
    pub fn ensure(&mut self, prefix: &str, ns: Arc<dyn NetnsOps>, nft: NftApplier) {
        let name = spare_name(prefix);
        if self.building() || self.ready().as_deref() == Some(name.as_str()) {
            return;
        }
        if let Some(done) = self.builder.take() {
            let _ = done.join();
        }
        let ready = self.ready.clone();
        let spawned = std::thread::Builder::new()
            .name("weft-spare-vrf".into())
            .spawn(move || {
                std::thread::sleep(BUILD_DELAY);
                match build(&name, ns.as_ref(), &nft) {
                    Ok(()) => {
                        tracing::debug!(netns = %name, "spare VRF namespace ready");
                        *ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
                    }
                    Err(e) => {
                        tracing::warn!(netns = %name, error = %e, "cannot build a spare VRF namespace; new VRFs are built when needed");
                        let _ = ns.delete(&name);
                    }
                }
            });
        match spawned {
            Ok(handle) => self.builder = Some(handle),
            Err(e) => tracing::warn!(error = %e, "cannot start the spare VRF builder"),
        }
    }

    /// The ready spare of `prefix`, which the caller now owns (and renames).
    pub fn take(&mut self, prefix: &str) -> Option<String> {
        let mut ready = self.ready();
        (ready.as_deref() == Some(spare_name(prefix).as_str()))
            .then(|| ready.take())
            .flatten()
    }

    /// Waits for a build in progress, then deletes the spare of `prefix`.
    pub fn remove(&mut self, prefix: &str, ns: &dyn NetnsOps) -> Result<(), FabricError> {
        if let Some(b) = self.builder.take() {
            let _ = b.join();
        }
        *self.ready() = None;
        ns.delete(&spare_name(prefix))
    }
}

fn build(name: &str, ns: &dyn NetnsOps, nft: &NftApplier) -> Result<(), FabricError> {
    if ns.exists(name) {
        ns.delete(name)?;
    }
    ns.create(name)?;
    init_vrf_namespace(ns, name)?;
    nft.apply(
        name,
        &NftBatch {
            text: structure(),
            ..Default::default()
        },
    )
}
