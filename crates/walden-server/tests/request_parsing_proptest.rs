//! Property: whatever arrives (arbitrary methods, paths, percent-escapes, query strings,
//! headers and bodies), the router answers without panicking, never with a 5xx, and every
//! error is a JSON body `{"error": {"code", "message"}}`. Runs the router in-process with
//! `tower::ServiceExt::oneshot` over a real store in a temporary directory.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use proptest::prelude::*;
use tower::ServiceExt as _;
use walden_server::{App, ServeConfig};

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,8}",
        "(%[0-9A-Fa-f]{2}|%[0-9a-zG-Z]{0,2}|[a-zA-Z0-9._~+-]){0,12}",
        "[ -~]{0,16}",
        Just("%".to_string()),
        Just("x".repeat(300)),
        Just("k".repeat(5000)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        (segment(), segment()).prop_map(|(n, k)| format!("/v1/ns/{n}/kv/{k}")),
        (segment(), segment()).prop_map(|(n, k)| format!("/v1/ns/{n}/kv/{k}/history")),
        segment().prop_map(|n| format!("/v1/ns/{n}/scan")),
        Just("/v1/txn".to_string()),
        Just("/v1/changes".to_string()),
        Just("/v1/checkpoint".to_string()),
        Just("/v1/status".to_string()),
        Just("/healthz".to_string()),
        Just("/metrics".to_string()),
        Just("/v1/openapi.json".to_string()),
        "/[ -~]{0,40}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("if_version"),
        Just("if_absent"),
        Just("prefix"),
        Just("start"),
        Just("end"),
        Just("reverse"),
        Just("limit"),
        Just("from_lsn"),
        Just("ns"),
        Just("bogus"),
    ];
    let value = prop_oneof![
        "[0-9]{1,25}",
        Just("true".to_string()),
        Just("-1".to_string()),
        "(%[0-9A-Fa-f]{2}|%|[a-z+&=])*",
    ];
    proptest::collection::vec((name, value), 0..4).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "\\{\"ops\": \\[\\{\"op\": \"(put|delete|x)\", \"ns\": \"[a-z]{0,3}\", \"key(_b64)?\": \"[a-zA-Z0-9=!]{0,6}\"(, \"value(_b64)?\": \"[a-z=]{0,4}\")?\\}\\](, \"preconditions\": \\[\\{\"ns\": \"a\", \"key\": \"b\", \"(absent|version)\": (true|1|-1|\"x\")\\}\\])?\\}"
            .prop_map(String::into_bytes),
        Just(b"{\"ops\": [".to_vec()),
        Just(vec![b'v'; 70_000]),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::PUT),
        Just(Method::POST),
        Just(Method::DELETE),
        Just(Method::HEAD),
        Just(Method::PATCH),
        Just(Method::OPTIONS),
        Just(Method::from_bytes(b"BREW").unwrap()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("last-event-id".to_string()),
        Just("content-length".to_string()),
        Just("content-type".to_string()),
        Just("authorization".to_string()),
        "[a-z-]{1,12}",
    ];
    let value = prop_oneof!["[ -~]{0,20}", "[0-9]{1,22}", Just("-5".to_string())];
    proptest::collection::vec((name, value), 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn garbage_never_gets_a_5xx_or_a_non_json_error(
        method in method(),
        path in path(),
        query in query(),
        headers in headers(),
        body in body(),
    ) {
        let (rt, app, _dir) = &*FIXTURE;
        let uri = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
        // Only requests that are valid HTTP reach the router; hyper rejects the rest.
        let Ok(uri) = uri.parse::<Uri>() else { return Ok(()) };
        let mut req = Request::builder().method(method.clone()).uri(uri);
        for (n, v) in &headers {
            // A Content-Length that lies about the body is hyper's to reject, not ours.
            if n == "content-length" {
                continue;
            }
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                req = req.header(n, v);
            }
        }
        let req = req.body(Body::from(body)).unwrap();
        let response = rt.block_on(app.router().oneshot(req)).unwrap();
        let status = response.status();
        prop_assert!(!status.is_server_error(), "{method} {path}?{query}: {status}");
        // HEAD answers carry headers only (axum strips the body), so only their type is checked.
    if status.is_client_error() {
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            prop_assert_eq!(content_type.as_deref(), Some("application/json"));
            if method == Method::HEAD {
                return Ok(());
            }
            let bytes = rt
                .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                TestCaseError::fail(format!("{method} {path}?{query}: {status} body is not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)))
            })?;
            prop_assert!(v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", v);
            prop_assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", v);
        }
    }
}

type Fixture = (tokio::runtime::Runtime, App, tempfile::TempDir);

static FIXTURE: std::sync::LazyLock<Fixture> = std::sync::LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new(dir.path().join("data"));
    config.limits.value_bytes_max = 65_536;
    config.limits.body_bytes_max = 65_536;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let app = App::open(&config).unwrap();
    (rt, app, dir)
});
