//! Watches, served from the event log.
//!
//! A watcher never receives events pushed by the writer. It waits for the committed revision
//! to move, then reads the new events from the `events` table. Replaying history and following
//! live changes are therefore the same code path, which is what makes "no gaps, no duplicates"
//! hold by construction: the watcher only remembers the next revision it has to read. A slow
//! consumer holds back only its own watcher (the channel is bounded), never the writer, and
//! costs no memory beyond that channel. The price is one read transaction per commit per
//! watcher, fine for the controller's handful of watchers; an etcd-scale fan-out would push
//! live events in memory and fall back to the log only for lagging watchers, as etcd does.

use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, watch};

use crate::error::{Result, StoreError};
use crate::redb_store::Shared;
use crate::types::{Revision, WatchEvent};

/// Events buffered between a watcher and its consumer.
const CHANNEL_CAPACITY: usize = 256;
/// Revisions read per history read transaction, to bound a catching-up watcher's memory.
const REVISIONS_PER_READ: Revision = 512;

/// The stream of a watch: events in revision order, then `None` once the store is closed.
/// An `Err` item (e.g. [`StoreError::Compacted`]) is always the last item.
/// Dropping the stream cancels the watch.
#[derive(Debug)]
pub struct WatchStream {
    events: mpsc::Receiver<Result<WatchEvent>>,
}

impl WatchStream {
    /// The next event; `None` when the watch has ended.
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        self.events.recv().await
    }

    /// An event that is already available, without waiting.
    pub fn try_next(&mut self) -> Option<Result<WatchEvent>> {
        self.events.try_recv().ok()
    }

    /// Wraps a channel fed by another implementation (e.g. an etcd watch forwarder).
    pub fn from_receiver(events: mpsc::Receiver<Result<WatchEvent>>) -> Self {
        WatchStream { events }
    }
}

impl futures::Stream for WatchStream {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// Starts a watcher task delivering events of keys under `prefix` from `start` on.
pub(crate) fn spawn_watcher(
    shared: Weak<Shared>,
    committed: watch::Receiver<Revision>,
    prefix: Vec<u8>,
    start: Revision,
) -> WatchStream {
    let (events, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(run_watcher(shared, committed, prefix, start, events));
    WatchStream { events: receiver }
}

async fn run_watcher(
    shared: Weak<Shared>,
    mut committed: watch::Receiver<Revision>,
    prefix: Vec<u8>,
    mut next: Revision,
    events: mpsc::Sender<Result<WatchEvent>>,
) {
    loop {
        let head = *committed.borrow_and_update();
        if next <= head {
            // Holding the store only for the read lets a dropped store close its file.
            let Some(store) = shared.upgrade() else {
                return;
            };
            let upto = head.min(next + REVISIONS_PER_READ - 1);
            let read_prefix = prefix.clone();
            let read =
                tokio::task::spawn_blocking(move || store.read_events(&read_prefix, next, upto))
                    .await
                    .unwrap_or_else(|err| {
                        Err(StoreError::Internal(format!("watch read failed: {err}")))
                    });
            match read {
                Ok(batch) => {
                    for event in batch {
                        if events.send(Ok(event)).await.is_err() {
                            return; // consumer dropped the stream
                        }
                    }
                    next = upto + 1;
                }
                Err(err) => {
                    tracing::debug!(error = %err, next, "watch ended");
                    let _ = events.send(Err(err)).await;
                    return;
                }
            }
            continue;
        }
        tokio::select! {
            changed = committed.changed() => {
                if changed.is_err() {
                    return; // store closed
                }
            }
            () = events.closed() => return,
        }
    }
}
