//! `GET /v1/ns/{ns}/scan?prefix=&start=&end=&reverse=&limit=`: live keys in order.

use super::{check_key, check_ns, json_ok, path_segment};
use crate::encoding::{put_bytes, Query};
use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::State;
use axum::http::Uri;
use serde_json::{json, Map, Value};
use walden_store::Scan;

/// Scans a namespace. `prefix`, `start` (inclusive) and `end` (exclusive) are raw bytes,
/// percent-encoded; `limit` is capped at `--max-scan-items`, and a page also ends after
/// about `--max-body-bytes` of keys and values. `more: true` says a page was cut; continue
/// from `last_key` (forward: `start=` last key + `%00`; reverse: `end=` last key).
pub async fn scan(State(state): State<AppState>, uri: Uri) -> ApiResult {
    let ns = path_segment(&uri, 3, "namespace")?;
    check_ns(&state, &ns)?;
    let q = Query::parse(uri.query(), &["prefix", "start", "end", "reverse", "limit"])?;
    for name in ["prefix", "start", "end"] {
        if let Some(b) = q.bytes(name) {
            check_key(&state, b)?;
        }
    }
    let max = state.0.limits.scan_items_max;
    let limit = match q.u64("limit")? {
        Some(0) | None => max,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(max),
    };
    let scan = Scan {
        prefix: q.bytes("prefix").map(<[u8]>::to_vec),
        start: q.bytes("start").map(<[u8]>::to_vec),
        end: q.bytes("end").map(<[u8]>::to_vec),
        reverse: q.bool("reverse")?.unwrap_or(false),
        limit: limit.saturating_add(1),
    };
    let bytes_max = state.0.limits.body_bytes_max;
    let rows = state
        .blocking(move |store| Ok(store.scan(&ns, &scan)))
        .await?;
    let mut items = Vec::with_capacity(rows.len().min(limit));
    let mut bytes = 0usize;
    let mut more = false;
    let mut last_key = None;
    for (key, v) in rows {
        if items.len() >= limit || (bytes > 0 && bytes + key.len() + v.value.len() > bytes_max) {
            more = true;
            break;
        }
        bytes += key.len() + v.value.len();
        let mut m = Map::new();
        put_bytes(&mut m, "key", &key);
        put_bytes(&mut m, "value", &v.value);
        m.insert("version".into(), json!(v.version));
        m.insert("lsn".into(), json!(v.lsn));
        m.insert("commit_time_ms".into(), json!(v.commit_time_ms));
        items.push(Value::Object(m));
        last_key = Some(key);
    }
    let mut out = Map::new();
    out.insert("count".into(), json!(items.len()));
    out.insert("more".into(), json!(more));
    if let (true, Some(k)) = (more, &last_key) {
        put_bytes(&mut out, "last_key", k);
    }
    out.insert("items".into(), Value::Array(items));
    Ok(json_ok(Value::Object(out)))
}
