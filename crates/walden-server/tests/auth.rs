//! Authentication: without a token the server is open (on loopback); with one (from
//! `--token-file` or `WALDEN_TOKEN`) every route but `/healthz` answers 401 JSON without
//! the right `Authorization: Bearer` header; a non-loopback address without a token is
//! refused at startup.
#![allow(clippy::unwrap_used)]

mod support;
use support::*;

const ROUTES_TO_PROBE: &[(&str, &str)] = &[
    ("GET", "/v1/ns/a/kv/b"),
    ("PUT", "/v1/ns/a/kv/b"),
    ("DELETE", "/v1/ns/a/kv/b"),
    ("GET", "/v1/ns/a/kv/b/history"),
    ("GET", "/v1/ns/a/scan"),
    ("POST", "/v1/txn"),
    ("GET", "/v1/changes"),
    ("POST", "/v1/checkpoint"),
    ("GET", "/v1/status"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/no/such/route"),
];

#[test]
fn without_a_token_everything_is_open_on_loopback() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &[]);
    assert_eq!(call("GET", &s.url("/v1/status"), None, &[]).status, 200);
    put(&s, "a", "b", b"1");
    // A token sent to a server without one is ignored.
    let r = call(
        "GET",
        &s.url("/v1/ns/a/kv/b"),
        None,
        &[("authorization", "Bearer x")],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn with_a_token_every_route_but_healthz_needs_it() {
    let dir = tempdir();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &["--token-file", token_file.to_str().unwrap()],
    );
    let good = [("authorization", "Bearer s3cret-token")];
    for (method, path) in ROUTES_TO_PROBE {
        let body = (*method == "PUT" || *method == "POST").then_some(b"{}".as_slice());
        call(method, &s.url(path), body, &[]).assert_error(401, "unauthorized");
        let r = call(
            method,
            &s.url(path),
            body,
            &[("authorization", "Bearer s3cret-tokeN")],
        );
        r.assert_error(401, "unauthorized");
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        let r = call(
            method,
            &s.url(path),
            body,
            &[("authorization", "Bearer s3cret-token-longer")],
        );
        r.assert_error(401, "unauthorized");
        call(
            method,
            &s.url(path),
            body,
            &[("authorization", "Basic czNjcmV0LXRva2Vu")],
        )
        .assert_error(401, "unauthorized");
    }
    // Nothing was written by the rejected PUT.
    let r = call("GET", &s.url("/v1/ns/a/kv/b"), None, &good);
    r.assert_error(404, "not_found");
    // With the token: normal answers.
    let r = call("PUT", &s.url("/v1/ns/a/kv/b"), Some(b"v"), &good);
    assert_eq!(r.status, 200);
    assert_eq!(call("GET", &s.url("/v1/ns/a/kv/b"), None, &good).body, b"v");
    assert_eq!(call("GET", &s.url("/v1/status"), None, &good).status, 200);
    // /healthz is open.
    let r = call("GET", &s.url("/healthz"), None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}

#[test]
fn token_from_the_environment() {
    let dir = tempdir();
    let s = Server::start_env(
        &dir.path().join("data"),
        &[],
        &[("WALDEN_TOKEN", "envtoken")],
    )
    .unwrap();
    call("GET", &s.url("/v1/status"), None, &[]).assert_error(401, "unauthorized");
    let r = call(
        "GET",
        &s.url("/v1/status"),
        None,
        &[("authorization", "Bearer envtoken")],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn non_loopback_without_a_token_is_refused() {
    let dir = tempdir();
    let failure = Server::start_env(&dir.path().join("data"), &["--listen", "0.0.0.0:0"], &[])
        .err()
        .expect("must refuse");
    assert!(!failure.status.unwrap().success());
    assert!(
        failure.stderr.contains("without a bearer token"),
        "stderr: {}",
        failure.stderr
    );
    // An empty token file is refused too.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let failure = Server::start_env(
        &dir.path().join("data"),
        &["--token-file", empty.to_str().unwrap()],
        &[],
    )
    .err()
    .expect("must refuse an empty token");
    assert!(
        failure.stderr.contains("empty"),
        "stderr: {}",
        failure.stderr
    );
}
