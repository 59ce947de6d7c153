//! `GET /v1/events`: server-sent events, one `change` event per committed key change
//! (internal bookkeeping keys excepted). `curl -N -H 'Authorization: Bearer …'` follows it.

use crate::auth::Role;
use crate::error::ApiResult;
use crate::server::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

pub async fn stream(
    State(state): State<Arc<AppState>>,
    role: Role,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    role.require_agent()?;
    let changes = state.changes.subscribe();
    let shutdown = state.shutdown.clone();
    let events = futures::stream::unfold(
        (changes, shutdown),
        |(mut changes, mut shutdown)| async move {
            let event = tokio::select! {
                received = changes.recv() => match received {
                    Ok(change) => Event::default()
                        .event("change")
                        .id(change.revision.to_string())
                        .data(serde_json::to_string(&change).unwrap_or_default()),
                    // A follower too slow for the buffer is told how much it missed; it
                    // should re-read the state.
                    Err(RecvError::Lagged(missed)) => {
                        Event::default().event("lagged").data(missed.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = shutdown.wait_for(|stop| *stop) => return None,
            };
            Some((Ok(event), (changes, shutdown)))
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
