//! Watches on etcd, with reconnection.
//!
//! One task per watch forwards etcd's events into a [`WatchStream`]. It remembers only the
//! next revision it owes its consumer: events arrive in revision order and etcd never splits
//! one revision over two responses (no `fragment`), so after a response is forwarded every
//! event up to its last revision is delivered. When the gRPC stream breaks (member down,
//! connection reset, leader lost) the task opens a new etcd watch from that revision, after a
//! backoff, for as long as the consumer holds the stream: no gap and no duplicate. If that
//! revision has been compacted meanwhile, the watch ends with [`StoreError::Compacted`].

use etcd_client::WatchOptions;
use tokio::sync::mpsc;
use weft_store::{Result, Revision, StoreError, WatchEvent, WatchStream};

use crate::etcd_store::{EtcdStore, Failure, classify};

/// Events buffered between the forwarder and its consumer (as RedbStore's watches).
const CHANNEL_CAPACITY: usize = 256;

pub(crate) fn spawn(store: EtcdStore, key: Vec<u8>, end: Vec<u8>, start: Revision) -> WatchStream {
    let (events, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(forward(store, key, end, start, events));
    WatchStream::from_receiver(receiver)
}

/// Why one etcd watch stream stopped.
enum Ended {
    /// The consumer dropped the stream, or the watch ended for good (error sent).
    Done,
    /// The stream broke; open another one from the next revision.
    Broken(String),
}

async fn forward(
    store: EtcdStore,
    key: Vec<u8>,
    end: Vec<u8>,
    mut next: Revision,
    events: mpsc::Sender<Result<WatchEvent>>,
) {
    let options = store.inner.options.clone();
    let endpoints = store.inner.endpoints.join(",");
    let mut backoff = options.initial_backoff;
    let mut failures = 0u32;
    loop {
        let ended = tokio::select! {
            ended = follow(&store, &key, &end, &mut next, &events, &mut failures) => ended,
            () = events.closed() => Ended::Done,
        };
        let reason = match ended {
            Ended::Done => return,
            Ended::Broken(reason) => reason,
        };
        failures += 1;
        if failures == 1 {
            // The watch worked since the last outage: start over with a short pause.
            backoff = options.initial_backoff;
        }
        // Say it loudly once, then only when the outage keeps going (1, 2, 4, 8, ... tries).
        if failures.is_power_of_two() {
            tracing::warn!(
                endpoints = %endpoints,
                next_revision = next,
                attempt = failures,
                error = %reason,
                "etcd watch broken; re-establishing from the next revision"
            );
        } else {
            tracing::debug!(next_revision = next, error = %reason, "etcd watch still broken");
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = events.closed() => return,
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

/// Runs one etcd watch from `*next` until it breaks or ends; advances `*next` past every
/// forwarded response and resets `*failures` once the watch delivers anything.
async fn follow(
    store: &EtcdStore,
    key: &[u8],
    end: &[u8],
    next: &mut Revision,
    events: &mpsc::Sender<Result<WatchEvent>>,
    failures: &mut u32,
) -> Ended {
    let request = WatchOptions::new()
        .with_range(end.to_vec())
        .with_start_revision(*next)
        .with_prev_key();
    let mut client = store.inner.watch.clone();
    let opened = tokio::time::timeout(
        store.inner.options.request_timeout,
        client.watch(key.to_vec(), Some(request)),
    )
    .await;
    let mut stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            return match classify(&err) {
                Failure::InvalidArgument(reason) => {
                    let _ = events.send(Err(StoreError::InvalidArgument(reason))).await;
                    Ended::Done
                }
                _ => Ended::Broken(err.to_string()),
            };
        }
        Err(_) => return Ended::Broken("opening the watch timed out".to_string()),
    };
    loop {
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return Ended::Broken("etcd closed the watch stream".to_string()),
            Err(err) => return Ended::Broken(err.to_string()),
        };
        if response.compact_revision() > 0 {
            let _ = events
                .send(Err(StoreError::Compacted {
                    requested: *next,
                    compact_revision: response.compact_revision(),
                }))
                .await;
            return Ended::Done;
        }
        if response.canceled() {
            // E.g. the member lost its leader (require_leader): try again, maybe elsewhere.
            return Ended::Broken(format!(
                "etcd canceled the watch: {}",
                response.cancel_reason()
            ));
        }
        if response.created() {
            *failures = 0;
        }
        let mut last = None;
        for event in response.events() {
            let Some(event) = store.convert_event(event) else {
                continue;
            };
            let revision = event.revision();
            // Defensive: a re-established watch starts at `next`, so this never drops one.
            if revision < *next {
                continue;
            }
            if events.send(Ok(event)).await.is_err() {
                return Ended::Done;
            }
            last = Some(revision);
        }
        if let Some(last) = last {
            *next = last + 1;
        }
    }
}
