//! One store per test, on either backend, and the macro that runs a test on both.

use std::time::Duration;

use weft_store::{EventKind, Revision, WatchEvent, WatchStream};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};
use weft_store_etcd::{AnyStore, EtcdOptions, EtcdStore};

/// A store under test and what keeps it alive.
pub struct TestStore {
    pub store: AnyStore,
    /// Revision of the empty store: 0 for redb, 1 for a fresh etcd. Tests name revisions
    /// relative to it (`t.rev(3)`: the third write), so they check exactly the same thing on
    /// both backends.
    pub base: Revision,
    backing: Backing,
}

enum Backing {
    Redb(tempfile::TempDir),
    Etcd(EtcdCluster),
}

impl TestStore {
    pub fn redb() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = weft_store::RedbStore::open(dir.path()).unwrap();
        TestStore {
            store: AnyStore::Redb(store),
            base: 0,
            backing: Backing::Redb(dir),
        }
    }

    /// A store on a fresh single-member etcd; `None` (test skipped) if etcd is not installed.
    pub async fn etcd(test: &str) -> Option<Self> {
        if !etcd_available_for_test(test) {
            return None;
        }
        let cluster = EtcdCluster::start(ClusterOptions::single()).await.unwrap();
        let store = connect(&cluster.endpoints()).await;
        let base = weft_store::KvStore::current_revision(&store).await.unwrap();
        assert_eq!(base, 1, "a fresh etcd is at revision 1");
        Some(TestStore {
            store: AnyStore::Etcd(store),
            base,
            backing: Backing::Etcd(cluster),
        })
    }

    /// The revision of the `n`th write to the empty store.
    pub fn rev(&self, n: i64) -> Revision {
        self.base + n
    }

    pub fn is_etcd(&self) -> bool {
        matches!(self.backing, Backing::Etcd(_))
    }

    /// Closes the store and opens it again on the same data: redb reopens its file, etcd is
    /// killed, restarted on its data dir and connected to anew.
    pub async fn reopen(&mut self) {
        match &mut self.backing {
            Backing::Redb(dir) => {
                // Close the file (redb allows one open) before reopening it.
                let placeholder = AnyStore::Redb(weft_store::memory::open().unwrap());
                drop(std::mem::replace(&mut self.store, placeholder));
                self.store = AnyStore::Redb(weft_store::RedbStore::open(dir.path()).unwrap());
            }
            Backing::Etcd(cluster) => {
                cluster.stop_member(0).unwrap();
                cluster.restart_member(0).await.unwrap();
                self.store = AnyStore::Etcd(connect(&cluster.endpoints()).await);
            }
        }
    }
}

pub async fn connect(endpoints: &[String]) -> EtcdStore {
    EtcdStore::connect(endpoints, Vec::new(), EtcdOptions::default())
        .await
        .unwrap()
}

/// The next event, within 10 s.
pub async fn next(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("watch event within 10s")
        .expect("watch still open")
        .expect("watch event, not an error")
}

pub fn summary(event: &WatchEvent) -> (EventKind, String, i64) {
    (
        event.kind,
        String::from_utf8_lossy(&event.kv.key).into_owned(),
        event.revision(),
    )
}

/// `both_backends!(a, b)` turns `async fn a(t: TestStore)` into the tests `redb::a` and
/// `etcd::a` of the calling module.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::TestStore::redb()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    let Some(store) = $crate::harness::TestStore::etcd(test).await else {
                        return;
                    };
                    super::$name(store).await;
                }
            )*
        }
    };
}
