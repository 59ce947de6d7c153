//! The last applied desired state on local disk: written to a temporary file, fsynced,
//! renamed over the old one, and the directory fsynced, so that a crash leaves either
//! the old or the new file, never half of one.

use crate::error::AgentError;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use weft_api::NodeDesired;

pub const FILE_NAME: &str = "last-applied.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The node this state was applied on (a state dir moved to another node is ignored).
    pub node: String,
    pub desired: NodeDesired,
}

#[derive(Debug, Clone)]
pub struct LastApplied {
    dir: PathBuf,
}

impl LastApplied {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn err(&self, path: &Path, why: impl ToString) -> AgentError {
        AgentError::State {
            path: path.to_path_buf(),
            why: why.to_string(),
        }
    }

    /// The saved state of `node`; `Ok(None)` when there is none (or it is another
    /// node's). An unreadable file is an error, to be logged, not fatal.
    pub fn load(&self, node: &str) -> Result<Option<NodeDesired>, AgentError> {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(&path, e)),
        };
        let saved: Saved = serde_json::from_slice(&text).map_err(|e| self.err(&path, e))?;
        if saved.node != node {
            tracing::warn!(path = %path.display(), saved = %saved.node, node, "state file is another node's; ignored");
            return Ok(None);
        }
        Ok(Some(saved.desired))
    }

    pub fn save(&self, node: &str, desired: &NodeDesired) -> Result<(), AgentError> {
        let path = self.path();
        std::fs::create_dir_all(&self.dir).map_err(|e| self.err(&self.dir, e))?;
        let text = serde_json::to_vec(&Saved {
            node: node.to_string(),
            desired: desired.clone(),
        })
        .map_err(|e| self.err(&path, e))?;
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.err(&path, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::tests::three_tier;

    #[test]
    fn round_trip_and_foreign_or_broken_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LastApplied::new(dir.path().join("sub"));
        assert_eq!(store.load("n1").expect("load"), None);
        let d = three_tier(7);
        store.save("n1", &d).expect("save");
        assert_eq!(store.load("n1").expect("load"), Some(d.clone()));
        assert_eq!(store.load("n2").expect("load"), None);
        let mut newer = d;
        newer.revision = 8;
        store.save("n1", &newer).expect("save");
        assert_eq!(store.load("n1").expect("load").map(|d| d.revision), Some(8));
        assert!(
            !dir.path()
                .join("sub")
                .join("last-applied.json.tmp")
                .exists()
        );
        std::fs::write(store.path(), b"{not json").expect("write");
        assert!(store.load("n1").is_err());
    }
}
