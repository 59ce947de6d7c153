//! `GET /v1/events`: server-sent events, one `change` event per committed key change
//! (internal bookkeeping keys excepted). `curl -N -H 'Authorization: Bearer …'` follows it.
//!
//! Each event's id is `<revision>.<ordinal>`: the ordinal numbers the changes of one
//! revision (a transaction changes several keys at once) in the store's order, which every
//! controller sees alike. A client that reconnects, to this controller or another, with
//! `Last-Event-ID` (browsers' `EventSource` sends it by itself) or `?index=N` (after
//! revision N entirely) gets every later change exactly once: none missed, none repeated.
//!
//! A stream follows the controller's broadcast of changes (one store watch for all
//! followers); a resumed stream, or one that fell behind the broadcast's buffer, follows
//! its own store watch from where it stands instead. Each change is sent only once this
//! controller's state holds it, so a read made after an event sees the change. When the
//! store no longer has the history asked for (compacted), the request gets 410, or a
//! streaming client a `compacted` event, and must re-read the state.

use crate::auth::Role;
use crate::error::{ApiFailure, ApiResult};
use crate::extract::ApiQuery;
use crate::keys;
use crate::server::AppState;
use crate::state::as_revision;
use crate::watch::{ChangeOrder, OrderedChange, public_change};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch as tokio_watch;
use weft_store::{KvStore, StoreError, WatchStream};
use weft_store_etcd::AnyStore;

#[derive(Debug, Default, Deserialize)]
pub struct EventsParams {
    /// Resume after this position: `N` (revision N entirely) or `N.k` (an event id).
    pub index: Option<String>,
}

/// What a client has seen: all of revision `revision`, or its changes up to `ordinal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    revision: u64,
    ordinal: Option<u32>,
}

impl Position {
    /// `N` or `N.k`, as `?index=` or `Last-Event-ID` carry it.
    pub fn parse(text: &str, field: &str) -> ApiResult<Self> {
        let bad = || {
            ApiFailure::bad_request(
                format!("{field} must be a revision N or an event id N.k, not {text:?}"),
                Some(field),
            )
        };
        let text = text.trim();
        let (revision, ordinal) = match text.split_once('.') {
            Some((revision, ordinal)) => (revision, Some(ordinal.parse().map_err(|_| bad())?)),
            None => (text, None),
        };
        let revision: u64 = revision.parse().map_err(|_| bad())?;
        if i64::try_from(revision).is_err() {
            return Err(bad());
        }
        Ok(Self { revision, ordinal })
    }

    /// The event id of the `ordinal`-th change of `revision`.
    pub fn id(revision: u64, ordinal: u32) -> String {
        format!("{revision}.{ordinal}")
    }

    /// Whether the change `ordinal` of `revision` comes after this position.
    fn precedes(&self, revision: u64, ordinal: u32) -> bool {
        revision > self.revision
            || (revision == self.revision && self.ordinal.is_some_and(|seen| ordinal > seen))
    }

    /// The first store revision that may hold a change after this position.
    fn watch_from(&self) -> i64 {
        let revision = i64::try_from(self.revision).unwrap_or(i64::MAX);
        if self.ordinal.is_some() {
            revision
        } else {
            revision.saturating_add(1)
        }
    }
}

pub async fn stream(
    State(state): State<Arc<AppState>>,
    role: Role,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<EventsParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    role.require_agent()?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?"));
    let resume = match (params.index.as_deref(), last_event_id) {
        (Some(index), _) => Some(Position::parse(index, "index")?),
        (None, Some(id)) => Some(Position::parse(id, "Last-Event-ID")?),
        (None, None) => None,
    };
    let (store, observed, shutdown) = (
        state.store.clone(),
        state.observed.subscribe(),
        state.shutdown.clone(),
    );
    let follower = match resume {
        Some(seen) => Follower {
            source: Source::Store(open_watch(&store, &seen).await?, ChangeOrder::default()),
            seen,
            store,
            observed,
            shutdown,
        },
        None => {
            let changes = state.changes.subscribe();
            // Everything after this is in the broadcast; a stream that falls behind goes
            // on from the store at the last change it sent, or here.
            let seen = Position {
                revision: state.snapshot().revision,
                ordinal: None,
            };
            Follower {
                source: Source::Live(changes),
                seen,
                store,
                observed,
                shutdown,
            }
        }
    };
    let events = futures::stream::unfold(Some(follower), |follower| async move {
        let mut follower = follower?;
        match follower.next().await {
            Next::Change(OrderedChange { change, ordinal }) => {
                let event = Event::default()
                    .event("change")
                    .id(Position::id(change.revision, ordinal))
                    .data(serde_json::to_string(&change).unwrap_or_default());
                Some((Ok(event), Some(follower)))
            }
            Next::Compacted(why) => {
                let event = Event::default().event("compacted").data(why);
                Some((Ok(event), None))
            }
            Next::End => None,
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

async fn open_watch(store: &AnyStore, seen: &Position) -> ApiResult<WatchStream> {
    match store
        .watch(keys::ROOT.as_bytes(), Some(seen.watch_from()))
        .await
    {
        Ok(stream) => Ok(stream),
        Err(StoreError::Compacted {
            compact_revision, ..
        }) => Err(ApiFailure::Gone(format!(
            "the changes after {} are compacted away (the oldest kept revision is {compact_revision}); re-read the state and follow from its index",
            seen.revision
        ))),
        Err(err) => Err(err.into()),
    }
}

enum Source {
    /// The controller's broadcast of the changes its store watch delivers.
    Live(broadcast::Receiver<OrderedChange>),
    /// A watch of its own, numbering the changes as the broadcast does.
    Store(WatchStream, ChangeOrder),
}

struct Follower {
    source: Source,
    /// The last change sent (or where the stream started).
    seen: Position,
    store: AnyStore,
    /// The newest store revision this controller's state holds.
    observed: tokio_watch::Receiver<u64>,
    shutdown: tokio_watch::Receiver<bool>,
}

#[derive(Debug)]
enum Next {
    Change(OrderedChange),
    /// The history to go on from is gone: the client must re-read; the stream ends.
    Compacted(String),
    End,
}

impl Follower {
    async fn next(&mut self) -> Next {
        let mut shutdown = self.shutdown.clone();
        loop {
            let received = tokio::select! {
                received = self.receive() => received,
                _ = shutdown.wait_for(|stop| *stop) => return Next::End,
            };
            let ordered = match received {
                Received::Change(ordered) => ordered,
                Received::Skip => continue,
                Received::Ended => return Next::End,
                Received::Lagged => match open_watch(&self.store, &self.seen).await {
                    Ok(stream) => {
                        tracing::debug!(from = ?self.seen, "event stream fell behind; following the store");
                        self.source = Source::Store(stream, ChangeOrder::default());
                        continue;
                    }
                    Err(err) => return Next::Compacted(err.to_string()),
                },
            };
            let revision = ordered.change.revision;
            if !self.seen.precedes(revision, ordered.ordinal) {
                continue;
            }
            if matches!(self.source, Source::Store(..)) {
                // Not before this controller's state holds it (reads after the event see it).
                tokio::select! {
                    _ = self.observed.wait_for(|seen| *seen >= revision) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return Next::End,
                }
            }
            self.seen = Position {
                revision,
                ordinal: Some(ordered.ordinal),
            };
            return Next::Change(ordered);
        }
    }

    async fn receive(&mut self) -> Received {
        match &mut self.source {
            Source::Live(changes) => match changes.recv().await {
                Ok(ordered) => Received::Change(ordered),
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "event stream lagged behind the broadcast");
                    Received::Lagged
                }
                Err(RecvError::Closed) => Received::Ended,
            },
            Source::Store(stream, order) => match stream.next().await {
                Some(Ok(event)) => match public_change(&event) {
                    Some(change) => {
                        let ordinal = order.number(as_revision(event.revision()));
                        Received::Change(OrderedChange { change, ordinal })
                    }
                    None => Received::Skip,
                },
                Some(Err(err)) => {
                    // The client reconnects (here or elsewhere) with its last event id.
                    tracing::warn!(error = %err, "an event stream's store watch ended");
                    Received::Ended
                }
                None => Received::Ended,
            },
        }
    }
}

enum Received {
    Change(OrderedChange),
    Skip,
    Lagged,
    Ended,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_store::RedbStore;

    /// A store holding `count` public changes (revisions 1..=count), the same changes as
    /// the broadcast carries them, and a follower of a broadcast of `capacity` changes.
    async fn lagging(
        count: usize,
        capacity: usize,
    ) -> (
        tempfile::TempDir,
        Vec<OrderedChange>,
        broadcast::Sender<OrderedChange>,
        Follower,
        tokio_watch::Sender<bool>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::from(RedbStore::open(dir.path()).unwrap());
        let mut watch = store.watch(keys::ROOT.as_bytes(), Some(1)).await.unwrap();
        let mut changes = Vec::new();
        for i in 0..count {
            let key = keys::endpoint(&format!("e{i}"));
            store.put(key.as_bytes(), b"{}", None).await.unwrap();
            let event = watch.next().await.unwrap().unwrap();
            changes.push(OrderedChange {
                change: public_change(&event).unwrap(),
                ordinal: 0,
            });
        }
        let (sender, receiver) = broadcast::channel(capacity);
        let (stop, shutdown) = tokio_watch::channel(false);
        let follower = Follower {
            source: Source::Live(receiver),
            seen: Position {
                revision: 0,
                ordinal: None,
            },
            store,
            observed: tokio_watch::channel(u64::MAX).1,
            shutdown,
        };
        (dir, changes, sender, follower, stop)
    }

    async fn next_change(follower: &mut Follower) -> OrderedChange {
        let limit = std::time::Duration::from_secs(5);
        match tokio::time::timeout(limit, follower.next()).await {
            Ok(Next::Change(change)) => change,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    fn keys_of(changes: &[OrderedChange]) -> Vec<(u64, String)> {
        changes
            .iter()
            .map(|c| (c.change.revision, c.change.key.clone()))
            .collect()
    }

    #[tokio::test]
    async fn a_follower_that_falls_behind_the_broadcast_goes_on_from_the_store_exactly() {
        let (_dir, changes, sender, mut follower, _stop) = lagging(10, 2).await;
        // Two arrive and are read, then eight more overflow the buffer of two.
        for change in &changes[..2] {
            sender.send(change.clone()).unwrap();
        }
        let mut got = vec![
            next_change(&mut follower).await,
            next_change(&mut follower).await,
        ];
        assert!(matches!(follower.source, Source::Live(..)));
        for change in &changes[2..] {
            sender.send(change.clone()).unwrap();
        }
        while got.len() < changes.len() {
            got.push(next_change(&mut follower).await);
        }
        assert!(
            matches!(follower.source, Source::Store(..)),
            "switched to the store"
        );
        assert_eq!(keys_of(&got), keys_of(&changes));
    }

    #[tokio::test]
    async fn a_follower_ends_at_shutdown() {
        let (_dir, _changes, _sender, mut follower, stop) = lagging(1, 4).await;
        stop.send_replace(true);
        assert!(matches!(follower.next().await, Next::End));
    }

    #[test]
    fn positions_parse_revisions_and_event_ids_and_name_the_field() {
        assert_eq!(
            Position::parse("57", "index").unwrap(),
            Position {
                revision: 57,
                ordinal: None
            }
        );
        assert_eq!(
            Position::parse(" 57.3 ", "Last-Event-ID").unwrap(),
            Position {
                revision: 57,
                ordinal: Some(3)
            }
        );
        for bad in [
            "",
            "x",
            "57.",
            "57.x",
            "-1",
            "1.2.3",
            "18446744073709551615",
        ] {
            let err = Position::parse(bad, "Last-Event-ID").unwrap_err();
            assert!(err.to_string().contains("Last-Event-ID"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_position_admits_exactly_the_changes_after_it() {
        let whole = Position::parse("10", "index").unwrap();
        assert!(!whole.precedes(10, 0));
        assert!(whole.precedes(11, 0));
        assert_eq!(whole.watch_from(), 11);
        let part = Position::parse("10.1", "index").unwrap();
        assert!(!part.precedes(10, 0));
        assert!(!part.precedes(10, 1));
        assert!(part.precedes(10, 2));
        assert!(part.precedes(11, 0));
        assert_eq!(part.watch_from(), 10);
    }
}
