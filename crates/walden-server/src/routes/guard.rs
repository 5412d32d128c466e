//! The guard around the router, in one service: panic guard (a bug answers 500 JSON, the
//! server lives on) → bearer token → request metrics (for requests that match a route) →
//! the router.
//!
//! One hand-written service instead of three `axum::middleware::from_fn` layers: each of
//! those cloned the boxed service below it and boxed a future of its own on every request,
//! and, as router layers, wrapped every route in more boxed services. callgrind, W7 at 64
//! clients: the three cost about 20,000 instructions per durable PUT, a quarter of the
//! server's work; this costs one boxed future.

use super::{template_matches, ROUTES};
use crate::error::ApiError;
use crate::metrics::method_label;
use crate::state::AppState;
use axum::body::HttpBody;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::FutureExt as _;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// The whole HTTP application: the router behind the guard. Cheap to clone (two `Arc`s).
/// Serve it with `axum::serve(listener, service.into_make_service())` (`axum::ServiceExt`),
/// or call it in-process with `tower::ServiceExt::oneshot` (or through [`App::router`]).
///
/// [`App::router`]: crate::App::router
#[derive(Clone, Debug)]
pub struct AppService {
    router: Router,
    state: AppState,
}

impl AppService {
    pub(crate) fn new(router: Router, state: AppState) -> Self {
        AppService { router, state }
    }
}

/// The route template (as in [`ROUTES`]) that `method` and `path` select, if any: the label
/// of the request metrics. Matches what the router matches: the same number of segments,
/// literal segments equal, a `{param}` segment non-empty; `HEAD` is routed as `GET`.
pub(crate) fn route_of(method: &Method, path: &str) -> Option<&'static str> {
    let method = match *method {
        Method::GET | Method::HEAD => "get",
        Method::PUT => "put",
        Method::POST => "post",
        Method::DELETE => "delete",
        _ => return None,
    };
    ROUTES
        .iter()
        .find(|(m, template)| *m == method && template_matches(template, path))
        .map(|(_, template)| *template)
}

impl tower_service::Service<Request> for AppService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready (axum's `Router::poll_ready`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let router = self.router.clone();
        let state = self.state.clone();
        let method = req.method().clone();
        let uri = req.uri().clone();
        Box::pin(async move {
            let guarded = AssertUnwindSafe(guarded(router, state, req)).catch_unwind();
            Ok(match guarded.await {
                Ok(response) => response,
                Err(_) => {
                    tracing::error!(%method, path = uri.path(), "handler panicked");
                    ApiError::internal(
                        "the server hit a bug handling this request; it was not applied",
                    )
                    .into_response()
                }
            })
        })
    }
}

/// The template of the single-key routes.
const KV_ROUTE: &str = "/v1/ns/{ns}/kv/{key}";

/// Token check, then the router, timed for the metrics when a route matches.
async fn guarded(router: Router, state: AppState, req: Request) -> Response {
    if let Err(refused) = crate::auth::check(&state, &req) {
        return refused.into_response();
    }
    let Some(route) = route_of(req.method(), req.uri().path()) else {
        // 404 and 405 answers: not a route, not in the metrics.
        return call_router(router, req).await;
    };
    let method = method_label(req.method());
    let started = Instant::now();
    let response = if route == KV_ROUTE && req.method() == Method::PUT {
        put_value(state.clone(), req).await
    } else {
        call_router(router, req).await
    };
    // For the change stream this is the time to the start of the stream.
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    tracing::debug!(
        method,
        route,
        status,
        micros = (seconds * 1e6) as u64,
        "request"
    );
    state.0.metrics.record(route, method, status, seconds);
    response
}

/// `PUT /v1/ns/{ns}/kv/{key}`, the write path, called directly: what the router would do for
/// it (its handler, then a `Content-Length` for a body of known size), without the router's
/// work that this route does not use. The router matched the path again, percent-decoded
/// the two path parameters (the handler decodes them itself, strictly), stored them and the
/// matched path in the request's extensions, and boxed the handler's service and future:
/// 8 of the 48 allocations and ~9,000 instructions of a durable PUT (callgrind, W7). The
/// metrics label comes from [`route_of`] either way. A test compares the answers of both
/// paths.
async fn put_value(state: AppState, req: Request) -> Response {
    let mut response = super::kv::put_value(axum::extract::State(state), req)
        .await
        .into_response();
    if !response.headers().contains_key(header::CONTENT_LENGTH) {
        if let Some(size) = HttpBody::size_hint(response.body()).exact() {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        }
    }
    response
}

/// The router is always ready (`Router::poll_ready` answers `Ready` at once), so it is
/// called without `poll_ready`.
async fn call_router(mut router: Router, req: Request) -> Response {
    match tower_service::Service::call(&mut router, req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{route_of, AppService};
    use crate::state::AppState;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use std::sync::Arc;
    use tower_service::Service as _;

    /// Server state over a store in `dir`, with `token`.
    fn state(dir: &std::path::Path, token: Option<&str>) -> AppState {
        let store =
            walden_store::Store::open(walden_store::StoreOptions::new(dir).checkpoints(0, None))
                .unwrap();
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        AppState::new(
            Arc::new(store),
            crate::ServerLimits::default(),
            token.map(String::from),
            stopped,
            dir.to_path_buf(),
            4096,
        )
        .unwrap()
    }

    /// A guard over `router`, with a store in `dir` and `token`.
    fn guard(dir: &std::path::Path, router: Router, token: Option<&str>) -> AppService {
        AppService::new(router, state(dir, token))
    }

    type Answer = (u16, axum::http::HeaderMap, Vec<u8>);

    /// Status, headers and body of `method path` with `body`, through `service`.
    async fn exchange<S>(service: &mut S, method: &str, path: &str, body: &[u8]) -> Answer
    where
        S: tower_service::Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        >,
    {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/octet-stream")
            .body(Body::from(body.to_vec()))
            .unwrap();
        let response = service.call(req).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (parts.status.as_u16(), parts.headers, body.to_vec())
    }

    #[test]
    fn a_put_answers_the_same_directly_as_through_the_router() {
        let tmp = tempfile::tempdir().unwrap();
        let state = state(tmp.path(), None);
        let mut direct = AppService::new(super::super::router(state.clone()), state.clone());
        let mut routed = super::super::router(state);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // Successful writes of two fresh keys: same shape, same version.
            let a = exchange(&mut direct, "PUT", "/v1/ns/n/kv/a", b"v").await;
            let b = exchange(&mut routed, "PUT", "/v1/ns/n/kv/b", b"v").await;
            assert_eq!((a.0, b.0), (200, 200));
            let keys = |h: &axum::http::HeaderMap| {
                let mut k: Vec<String> = h.keys().map(|k| k.to_string()).collect();
                k.sort();
                k
            };
            assert_eq!(keys(&a.1), keys(&b.1));
            assert_eq!(a.1.get("content-type"), b.1.get("content-type"));
            for (headers, body) in [(&a.1, &a.2), (&b.1, &b.2)] {
                let length = headers.get("content-length").unwrap().to_str().unwrap();
                assert_eq!(length, body.len().to_string());
                let v: serde_json::Value = serde_json::from_slice(body).unwrap();
                assert_eq!(v["version"], 1, "{v}");
            }
            // Refusals: identical answers.
            let too_large = vec![b'x'; (4 << 20) + 1];
            for (path, body) in [
                ("/v1/ns/n/kv/a?bogus=1", &b"v"[..]),
                ("/v1/ns/n/kv/a?if_version=7", b"v"),
                ("/v1/ns/n/kv/a?if_version=1&if_absent=true", b"v"),
                ("/v1/ns/n/kv/%zz", b"v"),
                ("/v1/ns/n/kv/a", &too_large),
            ] {
                let a = exchange(&mut direct, "PUT", path, body).await;
                let b = exchange(&mut routed, "PUT", path, body).await;
                assert!(a.0 >= 400, "{path}: {}", a.0);
                assert_eq!(a, b, "{path}");
            }
        });
    }

    async fn answer(service: &mut AppService, path: &str, auth: Option<&str>) -> (u16, String) {
        let mut req = Request::builder().uri(path);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let response = service
            .call(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn a_panicking_handler_answers_500_json_and_the_service_lives_on() {
        let tmp = tempfile::tempdir().unwrap();
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/v1/status",
                get(|| async { panic!("a bug") as &'static str }),
            );
        let mut service = guard(tmp.path(), router, None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (status, body) = answer(&mut service, "/v1/status", None).await;
            assert_eq!(status, 500);
            assert!(body.contains("\"code\":\"internal\""), "{body}");
            assert_eq!(answer(&mut service, "/healthz", None).await.0, 200);
        });
    }

    #[test]
    fn the_token_is_checked_before_routing_and_only_routes_are_measured() {
        let tmp = tempfile::tempdir().unwrap();
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/v1/status", get(|| async { StatusCode::ACCEPTED }));
        let mut service = guard(tmp.path(), router, Some("s3cret"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(answer(&mut service, "/v1/status", None).await.0, 401);
            let wrong = Some("Bearer nope");
            assert_eq!(answer(&mut service, "/v1/status", wrong).await.0, 401);
            let right = Some("Bearer s3cret");
            assert_eq!(answer(&mut service, "/v1/status", right).await.0, 202);
            assert_eq!(answer(&mut service, "/healthz", None).await.0, 200);
            assert_eq!(answer(&mut service, "/nowhere", right).await.0, 404);
        });
        let recorded: Vec<_> = service.state.0.metrics.counts().into_iter().collect();
        assert_eq!(
            recorded,
            vec![
                (("/healthz", "GET", 200), 1),
                (("/v1/status", "GET", 202), 1)
            ]
        );
    }

    #[test]
    fn requests_map_to_their_route_templates() {
        let kv = Some("/v1/ns/{ns}/kv/{key}");
        assert_eq!(route_of(&Method::PUT, "/v1/ns/a/kv/b"), kv);
        assert_eq!(route_of(&Method::GET, "/v1/ns/a%2F/kv/b%20c"), kv);
        assert_eq!(route_of(&Method::HEAD, "/v1/ns/a/kv/b"), kv);
        assert_eq!(
            route_of(&Method::GET, "/v1/ns/a/kv/b/history"),
            Some("/v1/ns/{ns}/kv/{key}/history")
        );
        assert_eq!(route_of(&Method::POST, "/v1/txn"), Some("/v1/txn"));
        assert_eq!(route_of(&Method::GET, "/healthz"), Some("/healthz"));
        // Not routes: the router answers 404 or 405, and they are not measured.
        assert_eq!(route_of(&Method::POST, "/v1/ns/a/kv/b"), None);
        assert_eq!(route_of(&Method::PUT, "/v1/ns//kv/b"), None);
        assert_eq!(route_of(&Method::PUT, "/v1/ns/a/kv/"), None);
        assert_eq!(route_of(&Method::PUT, "/v1/ns/a/kv/b/"), None);
        assert_eq!(route_of(&Method::GET, "/v1/statu"), None);
        assert_eq!(route_of(&Method::PATCH, "/v1/ns/a/kv/b"), None);
    }
}
