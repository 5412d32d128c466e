//! `GET /v1/changes`: the change stream as Server-Sent Events.
//!
//! One `commit` event per committed transaction, in commit order, with `id:` = its commit
//! LSN; the data is JSON (`lsn`, `txn_id`, `commit_time_ms`, `changes`). Only durable
//! commits appear. Start: `Last-Event-ID: N` (what browsers' EventSource send on reconnect)
//! resumes after N; else `?from_lsn=N` starts at N; else the stream starts at the next
//! commit. `ns` and `prefix` keep only the changes of that namespace / with that key prefix
//! (a transaction with none left is skipped). The stream ends on server shutdown; clients
//! reconnect with `Last-Event-ID` and miss nothing, as long as the log still holds that LSN
//! (else 410 `truncated`).

use crate::encoding::{put_bytes, Query};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Subscribers, Subscription};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures_util::StreamExt as _;
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use walden_log::Lsn;
use walden_store::{ChangeFeed, CommittedTxn};

/// Comment lines sent while nothing happens, so proxies keep the connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Follow {
    feed: ChangeFeed,
    ns: Option<Vec<u8>>,
    prefix: Option<Vec<u8>>,
    sub: Subscription,
    shutdown: watch::Receiver<bool>,
}

/// The event for `txn`, or `None` when the filters leave no change in it.
fn event_for(txn: &CommittedTxn, ns: Option<&[u8]>, prefix: Option<&[u8]>) -> Option<Event> {
    let changes: Vec<Value> = txn
        .changes
        .iter()
        .filter(|w| ns.is_none_or(|n| *w.ns == *n))
        .filter(|w| prefix.is_none_or(|p| w.key.starts_with(p)))
        .map(|w| {
            let mut m = Map::new();
            m.insert(
                "op".into(),
                json!(if w.value.is_some() { "put" } else { "delete" }),
            );
            put_bytes(&mut m, "ns", &w.ns);
            put_bytes(&mut m, "key", &w.key);
            if let Some(v) = &w.value {
                put_bytes(&mut m, "value", v);
            }
            Value::Object(m)
        })
        .collect();
    if changes.is_empty() {
        return None;
    }
    let data = json!({
        "lsn": txn.lsn.get(),
        "txn_id": txn.txn_id,
        "commit_time_ms": txn.commit_time_ms,
        "changes": changes,
    });
    Some(
        Event::default()
            .event("commit")
            .id(txn.lsn.get().to_string())
            .data(data.to_string()),
    )
}

/// `GET /v1/changes?from_lsn=&ns=&prefix=`.
pub async fn changes(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult {
    let q = Query::parse(uri.query(), &["from_lsn", "ns", "prefix"])?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_header",
                        "Last-Event-ID must be the LSN of the last event seen",
                    )
                })?,
        ),
    };
    let from = match (last_event_id, q.u64("from_lsn")?) {
        (Some(id), _) => id.saturating_add(1),
        (None, Some(n)) => n.max(1),
        (None, None) => state.store().status().visible_lsn.get().saturating_add(1),
    };
    let ns = q.bytes("ns").map(<[u8]>::to_vec);
    if let Some(n) = &ns {
        crate::routes::check_ns(&state, n)?;
    }
    let prefix = q.bytes("prefix").map(<[u8]>::to_vec);
    // A commit's own writes are logged just before it (same batch), at `commit LSN - 1`:
    // a feed that starts exactly at a commit LSN would miss them, so it starts one record
    // earlier and drops commits before `from`.
    let feed = state
        .blocking(move |store| {
            let first = store.wal().first_lsn().get();
            let start = if from > first { from - 1 } else { from };
            store.changes(Lsn(start)).map_err(Into::into)
        })
        .await?;
    let follow = Follow {
        feed,
        ns,
        prefix,
        sub: Subscribers::register(&state, from.saturating_sub(1)),
        shutdown: state.0.shutdown.clone(),
    };
    let opening = Event::default().comment(format!("walden change stream from LSN {from}"));
    let events = futures_util::stream::unfold(Some(follow), move |follow| async move {
        let mut f = follow?;
        loop {
            let next = tokio::select! {
                r = f.feed.next_async() => r,
                _ = f.shutdown.wait_for(|stop| *stop) => return None,
            };
            match next {
                Ok(txn) if txn.lsn.get() < from => continue,
                Ok(txn) => {
                    f.sub.position.store(txn.lsn.get(), Ordering::Relaxed);
                    if let Some(ev) = event_for(&txn, f.ns.as_deref(), f.prefix.as_deref()) {
                        return Some((Ok::<_, Infallible>(ev), Some(f)));
                    }
                }
                Err(e) => {
                    let err = ApiError::from(e);
                    tracing::warn!(error = %err, "change stream ended by an error");
                    let ev = Event::default().event("error").data(err.body().to_string());
                    return Some((Ok(ev), None));
                }
            }
        }
    });
    let stream =
        futures_util::stream::once(async move { Ok::<_, Infallible>(opening) }).chain(events);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}
