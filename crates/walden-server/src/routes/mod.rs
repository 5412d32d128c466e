//! The HTTP routes and the guard around them.
//!
//! Outside in: panic guard (a bug answers 500 JSON, the server lives on) → bearer token →
//! per-route metrics → routing → handler, the first three in one service ([`guard`]).
//! Unknown routes and methods answer JSON errors too.

mod admin;
mod guard;
pub(crate) mod kv;
mod scan;
mod txn;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt as _;

/// Every route: (method, path template as in the OpenAPI document).
pub const ROUTES: &[(&str, &str)] = &[
    ("put", "/v1/ns/{ns}/kv/{key}"),
    ("get", "/v1/ns/{ns}/kv/{key}"),
    ("delete", "/v1/ns/{ns}/kv/{key}"),
    ("get", "/v1/ns/{ns}/kv/{key}/history"),
    ("get", "/v1/ns/{ns}/scan"),
    ("post", "/v1/txn"),
    ("get", "/v1/changes"),
    ("post", "/v1/checkpoint"),
    ("get", "/v1/status"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
];

pub use guard::AppService;

/// The complete application: routes, auth, metrics, JSON errors.
pub fn service(state: AppState) -> AppService {
    AppService::new(router(state.clone()), state)
}

/// The routes alone (the guard adds auth, metrics and the panic guard).
fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/ns/{ns}/kv/{key}",
            get(kv::get_value)
                .put(kv::put_value)
                .delete(kv::delete_value),
        )
        .route("/v1/ns/{ns}/kv/{key}/history", get(kv::history))
        .route("/v1/ns/{ns}/scan", get(scan::scan))
        .route("/v1/txn", post(txn::txn))
        .route("/v1/changes", get(crate::sse::changes))
        .route("/v1/checkpoint", post(admin::checkpoint))
        .route("/v1/status", get(admin::status))
        .route("/healthz", get(admin::healthz))
        .route("/metrics", get(admin::metrics))
        .route("/v1/openapi.json", get(admin::openapi))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .with_state(state)
}

async fn no_route(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no route for {} {} (see /v1/openapi.json; keys and namespaces must be \
             percent-encoded, `/` as %2F)",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, p)| template_matches(p, req.uri().path()))
        .map(|(m, _)| *m)
        .collect();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {} (allowed: {})",
            req.method(),
            req.uri().path(),
            allowed.join(", ").to_uppercase()
        ),
    )
}

/// True when `path` has the shape of `template`: as many segments, literal ones equal,
/// `{param}` ones non-empty. Allocates nothing and compares bytes (it runs on every
/// request, for the metrics label).
fn template_matches(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.as_bytes(), path.as_bytes());
    loop {
        let t_end = t.iter().position(|&b| b == b'/').unwrap_or(t.len());
        let p_end = p.iter().position(|&b| b == b'/').unwrap_or(p.len());
        let (t_seg, t_rest) = t.split_at(t_end);
        let (p_seg, p_rest) = p.split_at(p_end);
        let param = t_seg.first() == Some(&b'{');
        if !((param && !p_seg.is_empty()) || t_seg == p_seg) {
            return false;
        }
        match (t_rest.split_first(), p_rest.split_first()) {
            (None, None) => return true,
            (Some((_, t_next)), Some((_, p_next))) => (t, p) = (t_next, p_next),
            _ => return false,
        }
    }
}

/// The raw (still percent-encoded) path segment at `index` (0 is the empty one before the
/// first `/`), decoded strictly.
pub(crate) fn path_segment(uri: &Uri, index: usize, what: &str) -> ApiResult<Vec<u8>> {
    let raw = uri.path().split('/').nth(index).unwrap_or("");
    crate::encoding::percent_decode(raw, false)
        .map_err(|e| ApiError::bad_request("bad_path", format!("{what} in the path: {e}")))
}

/// Reads the body, refusing more than `limit` bytes (413) before buffering them.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
    flag: &str,
) -> ApiResult<Vec<u8>> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(ApiError::too_large(what, len, limit as u64, flag));
        }
    }
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("bad_body", format!("could not read the request body: {e}"))
        })?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::too_large(
                what,
                (out.len() + chunk.len()) as u64,
                limit as u64,
                flag,
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A JSON 200 response.
pub(crate) fn json_ok(value: serde_json::Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// Checks a namespace against the limits (non-empty, not too long).
pub(crate) fn check_ns(state: &AppState, ns: &[u8]) -> ApiResult<()> {
    if ns.is_empty() {
        return Err(ApiError::bad_request(
            "bad_request",
            "the namespace must not be empty",
        ));
    }
    within(
        "namespace",
        ns,
        state.0.limits.namespace_bytes_max,
        "--max-namespace-bytes",
    )
}

/// Checks a key against the limits.
pub(crate) fn check_key(state: &AppState, key: &[u8]) -> ApiResult<()> {
    within("key", key, state.0.limits.key_bytes_max, "--max-key-bytes")
}

/// A value within `--max-value-bytes`.
pub(crate) fn check_value(state: &AppState, value: &[u8]) -> ApiResult<()> {
    within(
        "value",
        value,
        state.0.limits.value_bytes_max,
        "--max-value-bytes",
    )
}

/// 413 `too_large` when `bytes` exceeds `max` (set by `flag`).
fn within(what: &str, bytes: &[u8], max: usize, flag: &str) -> ApiResult<()> {
    if bytes.len() > max {
        return Err(ApiError::too_large(
            what,
            bytes.len() as u64,
            max as u64,
            flag,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    fn templates_match_paths() {
        assert!(template_matches("/v1/ns/{ns}/kv/{key}", "/v1/ns/a/kv/b"));
        assert!(!template_matches("/v1/ns/{ns}/kv/{key}", "/v1/ns/a/kv/"));
        assert!(!template_matches("/v1/status", "/v1/statu"));
        assert!(!template_matches("/v1/status", "/v1/status/"));
        assert!(!template_matches(
            "/v1/ns/{ns}/kv/{key}",
            "/v1/ns/a/kv/b/history"
        ));
    }
}
