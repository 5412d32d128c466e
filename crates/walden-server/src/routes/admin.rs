//! Operations: `POST /v1/checkpoint`, `GET /v1/status`, `GET /healthz`, `GET /metrics`,
//! `GET /v1/openapi.json`.

use super::json_ok;
use crate::encoding::Query;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use walden_store::Store;

/// Bytes of the live segment files (their allocated length, as on disk).
pub(crate) fn log_size_bytes(store: &Store) -> u64 {
    store
        .wal()
        .segments()
        .iter()
        .filter_map(|s| std::fs::metadata(&s.path).ok())
        .map(|m| m.len())
        .sum()
}

/// `POST /v1/checkpoint`: snapshot the state now and release the log it covers.
pub async fn checkpoint(State(state): State<AppState>, uri: Uri) -> ApiResult {
    Query::parse(uri.query(), &[])?;
    let info = state
        .blocking(|store| store.checkpoint().map_err(Into::into))
        .await?;
    Ok(json_ok(json!({
        "lsn": info.lsn.get(),
        "redo_start_lsn": info.redo_start_lsn.get(),
        "keys": info.keys,
        "log_first_lsn": info.log_first_lsn.get(),
        "path": info.path.display().to_string(),
    })))
}

/// `GET /v1/status`: positions, sizes, uptime.
pub async fn status(State(state): State<AppState>, uri: Uri) -> ApiResult {
    Query::parse(uri.query(), &[])?;
    let (status, log_bytes, stats) = state
        .blocking(|store| Ok((store.status(), log_size_bytes(store), store.wal().stats())))
        .await?;
    let (subscribers, max_lag, _) = state.0.subscribers.lag(status.durable_lsn.get());
    Ok(json_ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "data_dir": state.0.data_dir.display().to_string(),
        "uptime_seconds": state.0.started.elapsed().as_secs_f64(),
        "appended_lsn": status.appended_lsn.get(),
        "durable_lsn": status.durable_lsn.get(),
        "visible_lsn": status.visible_lsn.get(),
        "checkpoint_lsn": status.checkpoint_lsn.get(),
        "log_first_lsn": status.log_first_lsn.get(),
        "log_segments": status.log_segments,
        "log_size_bytes": log_bytes,
        "log_bytes_written": stats.bytes_appended,
        "fsyncs": stats.fsyncs,
        "mean_records_per_group_commit": stats.mean_records_per_group_commit(),
        "keys": status.keys,
        "subscribers": subscribers,
        "subscriber_lag_max_lsns": max_lag,
        "last_checkpoint_error": status.last_checkpoint_error,
    })))
}

/// `GET /healthz`: 200 while the server answers (no token needed).
pub async fn healthz() -> Response {
    json_ok(json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>, uri: Uri) -> ApiResult {
    Query::parse(uri.query(), &[])?;
    let s = state.clone();
    let body = state
        .blocking(move |store| Ok(crate::metrics::render(&s, log_size_bytes(store))))
        .await?;
    Ok(crate::metrics::response(body))
}

/// `GET /v1/openapi.json`: the OpenAPI 3.1 document of every route.
pub async fn openapi() -> Response {
    let mut r = crate::openapi::DOCUMENT.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
