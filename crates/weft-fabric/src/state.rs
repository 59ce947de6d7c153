//! What weft last installed in each VRF namespace. Kept in memory and, so that a
//! restarted agent diffs instead of rebuilding, in `/run/weft-fabric/<netns>.json`
//! (tmpfs: gone after a reboot, like the namespaces themselves).

use crate::error::FabricError;
use crate::link::LinkFact;
use crate::nft::{Element, NftDesired};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub const DEFAULT_DIR: &str = "/run/weft-fabric";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrfState {
    pub links: BTreeSet<LinkFact>,
    pub nft: NftDesired,
}

/// One change on top of a snapshot: what a reconcile removed and added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDelta {
    pub links_removed: Vec<LinkFact>,
    pub links_added: Vec<LinkFact>,
    pub nft_removed: Vec<Element>,
    pub nft_added: Vec<Element>,
}

impl StateDelta {
    pub fn is_empty(&self) -> bool {
        self.links_removed.is_empty()
            && self.links_added.is_empty()
            && self.nft_removed.is_empty()
            && self.nft_added.is_empty()
    }

    pub fn apply_to(&self, state: &mut VrfState) {
        for f in &self.links_removed {
            state.links.remove(f);
        }
        state.links.extend(self.links_added.iter().cloned());
        for e in &self.nft_removed {
            state.nft.elements.remove(e);
        }
        state.nft.elements.extend(self.nft_added.iter().cloned());
    }
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    generation: u64,
    #[serde(flatten)]
    state: &'a VrfState,
}

#[derive(Deserialize)]
struct SnapshotIn {
    #[serde(default)]
    generation: u64,
    #[serde(flatten)]
    state: VrfState,
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    generation: u64,
    #[serde(flatten)]
    delta: StateDelta,
}

/// Per namespace: the snapshot's generation, its size and the journal's size.
#[derive(Debug, Clone, Copy)]
struct Files {
    generation: u64,
    snapshot_bytes: u64,
    journal_bytes: u64,
}

/// Where state survives an agent restart; `None` keeps it in memory only.
///
/// Per namespace, a snapshot `<netns>.json` and a journal `<netns>.journal` of the
/// changes made since, one JSON line each, tagged with the snapshot's generation (a
/// journal left over from an older snapshot is ignored). A change costs one appended
/// line, proportional to the change; the journal is folded into a new snapshot once
/// it is larger than the snapshot, so the amortised cost stays proportional too.
/// An unreadable snapshot or journal line makes the state unknown (the agent then
/// re-syncs every set in one transaction), never wrong.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: Option<PathBuf>,
    files: Arc<Mutex<HashMap<String, Files>>>,
}

/// Journals smaller than this are never folded, whatever the snapshot's size.
const MIN_FOLD_BYTES: u64 = 64 * 1024;

fn new_generation() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

impl StateStore {
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            files: Default::default(),
        }
    }

    pub fn memory() -> Self {
        Self {
            dir: None,
            files: Default::default(),
        }
    }

    fn path(&self, netns: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{netns}.json")))
    }

    fn journal_path(&self, netns: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{netns}.journal")))
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Files>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn load(&self, netns: &str) -> Option<VrfState> {
        let path = self.path(netns)?;
        let text = std::fs::read_to_string(&path).ok()?;
        let snap: SnapshotIn = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable state");
                return None;
            }
        };
        let mut state = snap.state;
        let mut journal_bytes = 0;
        if let Some(jpath) = self.journal_path(netns)
            && let Ok(journal) = std::fs::read_to_string(&jpath)
        {
            for line in journal.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<JournalLine>(line) {
                    Ok(j) if j.generation == snap.generation => {
                        j.delta.apply_to(&mut state);
                        journal_bytes += line.len() as u64 + 1;
                    }
                    Ok(_) => {} // of an older snapshot
                    Err(e) => {
                        tracing::warn!(path = %jpath.display(), error = %e, "unreadable journal: state unknown");
                        return None;
                    }
                }
            }
        }
        self.files().insert(
            netns.to_string(),
            Files {
                generation: snap.generation,
                snapshot_bytes: text.len() as u64,
                journal_bytes,
            },
        );
        Some(state)
    }

    /// Writes a full snapshot (and forgets the journal).
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
        let generation = new_generation();
        let text = serde_json::to_string(&SnapshotOut { generation, state })
            .map_err(|e| err(e.to_string()))?;
        // Write then rename: a crash never leaves half a file. A journal left behind
        // carries the old generation and is ignored.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, &text).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))?;
        if let Some(j) = self.journal_path(netns) {
            let _ = std::fs::remove_file(j);
        }
        self.files().insert(
            netns.to_string(),
            Files {
                generation,
                snapshot_bytes: text.len() as u64,
                journal_bytes: 0,
            },
        );
        Ok(())
    }

    /// Records `delta`, applied to the state last saved or loaded, which is `state`
    /// once the delta is in. Falls back to a snapshot when there is no base yet or
    /// the journal has outgrown the snapshot.
    pub fn append(
        &self,
        netns: &str,
        delta: &StateDelta,
        state: &VrfState,
    ) -> Result<(), FabricError> {
        let (Some(jpath), Some(files)) =
            (self.journal_path(netns), self.files().get(netns).copied())
        else {
            return self.save(netns, state);
        };
        if delta.is_empty() {
            return Ok(());
        }
        let err = |why: String| FabricError::State {
            path: jpath.display().to_string(),
            why,
        };
        let mut line = serde_json::to_string(&JournalLine {
            generation: files.generation,
            delta: delta.clone(),
        })
        .map_err(|e| err(e.to_string()))?;
        line.push('\n');
        let journal_bytes = files.journal_bytes + line.len() as u64;
        if journal_bytes > files.snapshot_bytes.max(MIN_FOLD_BYTES) {
            return self.save(netns, state);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&jpath)
            .map_err(|e| err(e.to_string()))?;
        f.write_all(line.as_bytes())
            .map_err(|e| err(e.to_string()))?;
        if let Some(entry) = self.files().get_mut(netns) {
            entry.journal_bytes = journal_bytes;
        }
        Ok(())
    }

    pub fn remove(&self, netns: &str) {
        self.files().remove(netns);
        if let Some(path) = self.path(netns) {
            let _ = std::fs::remove_file(path);
        }
        if let Some(path) = self.journal_path(netns) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(key: &str) -> Element {
        Element {
            family: "inet".into(),
            set: "dst_class4".into(),
            key: key.into(),
            value: Some("5".into()),
        }
    }

    #[test]
    fn journal_replays_on_its_snapshot_only() {
        let dir = std::env::temp_dir().join(format!("weft-state-test-{}", std::process::id()));
        let store = StateStore::in_dir(&dir);
        let mut state = VrfState::default();
        state.nft.elements.insert(element("10.0.0.1"));
        store.save("weft-x", &state).expect("save");
        let delta = StateDelta {
            nft_added: vec![element("10.0.0.2")],
            nft_removed: vec![element("10.0.0.1")],
            ..Default::default()
        };
        delta.apply_to(&mut state);
        store.append("weft-x", &delta, &state).expect("append");
        assert!(dir.join("weft-x.journal").exists());
        assert_eq!(StateStore::in_dir(&dir).load("weft-x"), Some(state.clone()));
        // A new snapshot makes an old journal irrelevant, even if it were left behind.
        let journal = std::fs::read_to_string(dir.join("weft-x.journal")).expect("journal");
        store.save("weft-x", &state).expect("save");
        std::fs::write(dir.join("weft-x.journal"), journal).expect("write");
        assert_eq!(StateStore::in_dir(&dir).load("weft-x"), Some(state.clone()));
        // A torn line: unknown, never wrong.
        std::fs::write(dir.join("weft-x.journal"), "{\"generation\":1,\"nft_ad").expect("write");
        assert_eq!(StateStore::in_dir(&dir).load("weft-x"), None);
        // No snapshot: unknown, whatever the journal says.
        store.remove("weft-x");
        assert_eq!(store.load("weft-x"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
