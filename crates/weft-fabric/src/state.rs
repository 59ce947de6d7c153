//! What weft last installed in each VRF namespace. Kept in memory and, so that a
//! restarted agent diffs instead of rebuilding, in `/run/weft-fabric/<netns>.json`
//! (tmpfs: gone after a reboot, like the namespaces themselves).

use crate::error::FabricError;
use crate::link::LinkFact;
use crate::nft::NftDesired;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

pub const DEFAULT_DIR: &str = "/run/weft-fabric";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrfState {
    pub links: BTreeSet<LinkFact>,
    pub nft: NftDesired,
}

/// Where state survives an agent restart; `None` keeps it in memory only.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: Option<PathBuf>,
}

impl StateStore {
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    pub fn memory() -> Self {
        Self { dir: None }
    }

    fn path(&self, netns: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{netns}.json")))
    }

    pub fn load(&self, netns: &str) -> Option<VrfState> {
        let path = self.path(netns)?;
        let text = std::fs::read_to_string(&path).ok()?;
        match serde_json::from_str(&text) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable state");
                None
            }
        }
    }

    pub fn save(&self, netns: &str, state: &VrfState) -> Result<(), FabricError> {
        let Some(path) = self.path(netns) else {
            return Ok(());
        };
        let err = |why: String| FabricError::State {
            path: path.display().to_string(),
            why,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let text = serde_json::to_string(state).map_err(|e| err(e.to_string()))?;
        // Write then rename: a crash never leaves half a file.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))
    }

    pub fn remove(&self, netns: &str) {
        if let Some(path) = self.path(netns) {
            let _ = std::fs::remove_file(path);
        }
    }
}
