//! Single keys: `PUT`, `GET`, `DELETE /v1/ns/{ns}/kv/{key}` and `.../history`.

use super::{check_key, check_ns, json_ok, path_segment, read_body};
use crate::encoding::{put_bytes, Query};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use walden_store::{CommitInfo, Precondition, Store, Transaction};

/// Response header: the value's version.
pub const VERSION_HEADER: &str = "x-walden-version";
/// Response header: the LSN of the commit that wrote the value.
pub const LSN_HEADER: &str = "x-walden-lsn";
/// Response header: commit time of the value, milliseconds since the Unix epoch.
pub const COMMIT_TIME_HEADER: &str = "x-walden-commit-time-ms";

/// Namespace (segment 3) and key (segment 5) of `/v1/ns/{ns}/kv/{key}...`, checked.
fn ns_key(state: &AppState, uri: &Uri) -> ApiResult<(Vec<u8>, Vec<u8>)> {
    let ns = path_segment(uri, 3, "namespace")?;
    let key = path_segment(uri, 5, "key")?;
    check_ns(state, &ns)?;
    check_key(state, &key)?;
    Ok((ns, key))
}

/// A write whose payload is at most this many bytes commits inline on the async worker
/// ([`commit`]); a larger one on the blocking pool. Building and logging a small
/// transaction takes microseconds and no system call. A large one copies megabytes, may
/// spill to the log before it commits, and may fill the log's buffer, whose write waits
/// for a sync in progress: that must not stall a worker and every connection on it.
pub(crate) const INLINE_COMMIT_BYTES_MAX: usize = 64 << 10;

/// Commits the transaction `build` makes and answers once the commit is durable.
/// `payload_bytes` (keys and values written) picks the path: up to
/// [`INLINE_COMMIT_BYTES_MAX`] a deferred commit on this worker, made durable by the sync
/// thread while this task awaits it without holding a thread; above it [`commit_blocking`]
/// on the blocking pool.
///
/// The transactions of the API read nothing (they write and `require`), so walden-store
/// never refuses them for a write-write conflict: they commit at their place in commit
/// order, and their preconditions are checked against the latest state there.
pub(crate) async fn commit<B>(
    state: &AppState,
    payload_bytes: usize,
    build: B,
) -> ApiResult<CommitInfo>
where
    B: FnOnce(&mut Transaction<'_>) -> walden_store::Result<()> + Send + 'static,
{
    let result = if payload_bytes > INLINE_COMMIT_BYTES_MAX {
        state
            .blocking(move |store| commit_blocking(store, build))
            .await
    } else {
        commit_inline(state, build).await
    };
    match result {
        Err(e) if is_refusal(&e) => {
            settle_refusal(state).await?;
            Err(e)
        }
        other => other,
    }
}

async fn commit_inline<B>(state: &AppState, build: B) -> ApiResult<CommitInfo>
where
    B: FnOnce(&mut Transaction<'_>) -> walden_store::Result<()>,
{
    let store = state.store();
    let mut tx = store.begin();
    build(&mut tx)?;
    let pending = tx.commit_deferred()?;
    // Asked after the commit is logged, so the sync it starts covers it.
    state.0.syncer.request();
    pending.durable().await.map_err(ApiError::from)
}

/// A commit the store refused for what other commits wrote: a failed precondition or a
/// write-write conflict.
fn is_refusal(e: &ApiError) -> bool {
    matches!(e.code, "precondition_failed" | "conflict")
}

/// Waits until readers see every commit applied so far. A refusal is checked against the
/// latest applied state, which may hold commits not yet durable (their writers are still
/// waiting); answering it at once would let a client act on a write that a crash can still
/// undo (a claim lost to a write that then vanished), or read right after it a state that
/// does not show the write that refused it. Called before answering a refusal: usually one
/// shared sync.
pub(crate) async fn settle_refusal(state: &AppState) -> ApiResult<()> {
    let store = state.store();
    let applied = store.applied_lsn();
    if store.visible_lsn() < applied {
        state.0.syncer.request();
        store.visible_at_least(applied).await?;
    }
    Ok(())
}

/// Commits the transaction `build` makes. Blocking: returns once the commit is durable.
pub(crate) fn commit_blocking(
    store: &Store,
    build: impl FnOnce(&mut Transaction<'_>) -> walden_store::Result<()>,
) -> ApiResult<CommitInfo> {
    let mut tx = store.begin();
    build(&mut tx)?;
    tx.commit().map_err(ApiError::from)
}

fn precondition(q: &Query) -> ApiResult<Option<Precondition>> {
    match (q.u64("if_version")?, q.bool("if_absent")?) {
        (Some(_), Some(true)) => Err(ApiError::bad_request(
            "bad_query",
            "give either if_version or if_absent=true, not both",
        )),
        (Some(v), _) => Ok(Some(Precondition::Version(v))),
        (None, Some(true)) => Ok(Some(Precondition::Absent)),
        (None, _) => Ok(None),
    }
}

/// The answer to a single-key write: `{"lsn":N,"version":V}`, the bytes and content type
/// `json_ok(json!(...))` gives, written directly: every PUT and DELETE answers this, and
/// building and serializing a `serde_json::Value` cost more than the rest of the handler
/// outside the store (callgrind).
fn written(info: &CommitInfo) -> Response {
    let version = info.versions.first().map_or(0, |(_, _, v)| *v);
    let body = format!("{{\"lsn\":{},\"version\":{version}}}", info.lsn.get());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `PUT /v1/ns/{ns}/kv/{key}`: body = value; answers once durable.
pub async fn put_value(State(state): State<AppState>, req: Request) -> ApiResult {
    // The whole request, not `Uri` and `HeaderMap` extractors: those clone.
    let (parts, body) = req.into_parts();
    let (ns, key) = ns_key(&state, &parts.uri)?;
    let q = Query::parse(parts.uri.query(), &["if_version", "if_absent"])?;
    let pre = precondition(&q)?;
    let limit = state.0.limits.value_bytes_max;
    let value = read_body(&parts.headers, body, limit, "value", "--max-value-bytes").await?;
    let payload_bytes = ns.len() + key.len() + value.len();
    let info = commit(&state, payload_bytes, move |tx| {
        if let Some(p) = pre {
            tx.require(&ns, &key, p)?;
        }
        tx.put(&ns, &key, &value)
    })
    .await?;
    Ok(written(&info))
}

fn not_found(current_version: u64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such key")
        .with("current_version", current_version)
}

/// `GET /v1/ns/{ns}/kv/{key}`: the raw value, version and LSN in headers.
pub async fn get_value(State(state): State<AppState>, uri: Uri) -> ApiResult {
    let (ns, key) = ns_key(&state, &uri)?;
    Query::parse(uri.query(), &[])?;
    let store = state.store();
    let Some(v) = store.get(&ns, &key) else {
        return Err(not_found(store.version(&ns, &key)));
    };
    let mut r = v.value.to_vec().into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, n) in [
        (VERSION_HEADER, v.version),
        (LSN_HEADER, v.lsn),
        (COMMIT_TIME_HEADER, v.commit_time_ms),
    ] {
        h.insert(HeaderName::from_static(name), HeaderValue::from(n));
    }
    Ok(r)
}

/// `DELETE /v1/ns/{ns}/kv/{key}`: 404 when there is no live value (nothing is written);
/// `?if_version=N` deletes only that version. Without it, deletes whatever version is live
/// when the delete commits (`Precondition::Present`: a racing delete that commits first
/// makes this one a 404, never a second tombstone).
pub async fn delete_value(State(state): State<AppState>, uri: Uri) -> ApiResult {
    let (ns, key) = ns_key(&state, &uri)?;
    let q = Query::parse(uri.query(), &["if_version"])?;
    let wanted = q.u64("if_version")?;
    let store = state.store();
    // A precondition that fails refuses the commit before anything is logged.
    let pre = wanted.map_or(Precondition::Present, Precondition::Version);
    let (n, k) = (ns.clone(), key.clone());
    let outcome = commit(&state, ns.len() + key.len(), move |tx| {
        tx.require(&n, &k, pre)?;
        tx.delete(&n, &k)
    })
    .await;
    let info = match outcome {
        Err(e) if e.code == "precondition_failed" && wanted.is_none() => {
            return Err(not_found(store.version(&ns, &key)));
        }
        other => other?,
    };
    Ok(written(&info))
}

/// `GET /v1/ns/{ns}/kv/{key}/history`: the kept versions, oldest first.
pub async fn history(State(state): State<AppState>, uri: Uri) -> ApiResult {
    let (ns, key) = ns_key(&state, &uri)?;
    Query::parse(uri.query(), &[])?;
    let versions = state.store().history(&ns, &key);
    if versions.is_empty() {
        return Err(not_found(0));
    }
    let list: Vec<Value> = versions
        .iter()
        .map(|v| {
            let mut m = Map::new();
            m.insert("version".into(), json!(v.version));
            m.insert("lsn".into(), json!(v.lsn));
            m.insert("commit_time_ms".into(), json!(v.commit_time_ms));
            m.insert("deleted".into(), json!(v.value.is_none()));
            if let Some(value) = &v.value {
                put_bytes(&mut m, "value", value);
            }
            Value::Object(m)
        })
        .collect();
    let mut out = Map::new();
    put_bytes(&mut out, "ns", &ns);
    put_bytes(&mut out, "key", &key);
    out.insert("versions".into(), Value::Array(list));
    Ok(json_ok(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{commit, json_ok, written};
    use serde_json::json;
    use walden_log::Lsn;
    use walden_store::{CommitInfo, Precondition};

    /// A refusal waits until the state that refused it is durable: a claim (`if_absent`)
    /// lost to a commit that is logged but not yet durable is answered only once that
    /// commit is durable, so a crash cannot undo the write the client was told about.
    #[test]
    fn a_refusal_is_answered_only_once_the_state_that_refused_it_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::App::open(&crate::ServeConfig::new(dir.path())).unwrap();
        let state = app.state().clone();
        let store = state.store().clone();
        let mut tx = store.begin();
        tx.put(b"ns", b"k", b"first").unwrap();
        // Logged and applied; no sync asked for, so not durable.
        let pending = tx.commit_deferred().unwrap();
        let lsn = pending.lsn();
        assert!(store.wal().durable_lsn() < lsn);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let refused = rt.block_on(commit(&state, 16, |tx| {
            tx.require(b"ns", b"k", Precondition::Absent)?;
            tx.put(b"ns", b"k", b"second")
        }));
        let e = refused.unwrap_err();
        assert_eq!(e.code, "precondition_failed");
        assert!(
            store.wal().durable_lsn() >= lsn,
            "refused before the refusing commit was durable"
        );
        assert_eq!(
            &*store.get(b"ns", b"k").unwrap().value,
            b"first",
            "refused before readers could see the refusing commit"
        );
        drop(pending);
        drop((store, state));
        app.close().unwrap();
    }

    #[test]
    fn the_write_answer_is_the_json_a_value_would_give() {
        for (lsn, version) in [(1, 1), (18_446_744_073_709_551_615, 0), (7_340_032, 42)] {
            let info = CommitInfo {
                lsn: Lsn(lsn),
                versions: vec![(b"ns"[..].into(), b"k"[..].into(), version)],
            };
            let fast = written(&info);
            let slow = json_ok(json!({ "lsn": lsn, "version": version }));
            assert_eq!(fast.status(), slow.status());
            assert_eq!(fast.headers(), slow.headers());
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let (fast, slow) = rt.block_on(async {
                (
                    axum::body::to_bytes(fast.into_body(), 1024).await.unwrap(),
                    axum::body::to_bytes(slow.into_body(), 1024).await.unwrap(),
                )
            });
            assert_eq!(fast, slow);
        }
    }
}
