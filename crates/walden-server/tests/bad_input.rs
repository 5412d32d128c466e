//! Bad input gets a 4xx with a JSON error that says what is wrong, and nothing is stored:
//! malformed percent-encoding, empty namespace, oversized key, namespace, value and body
//! (checked before reading it all), bad JSON, unknown query parameters, unknown routes and
//! methods, raw garbage on the socket. The server stays up throughout.
#![allow(clippy::unwrap_used)]

mod support;
use std::io::{Read, Write};
use support::*;

#[test]
fn bad_requests_get_json_errors_and_store_nothing() {
    let dir = tempdir();
    let s = Server::start(
        &dir.path().join("data"),
        &[
            "--max-key-bytes",
            "16",
            "--max-value-bytes",
            "1024",
            "--max-namespace-bytes",
            "8",
            "--max-body-bytes",
            "2048",
        ],
    );
    let url = |p: &str| s.url(p);
    let message = |r: &Resp, status: u16, code: &str| {
        r.assert_error(status, code)["message"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Malformed percent-encoding in the path and in the query.
    let m = message(
        &call("PUT", &url("/v1/ns/a/kv/bad%zz"), Some(b"v"), &[]),
        400,
        "bad_path",
    );
    assert!(m.contains("percent"), "{m}");
    message(
        &call("GET", &url("/v1/ns/a%4/kv/k"), None, &[]),
        400,
        "bad_path",
    );
    message(
        &call("GET", &url("/v1/ns/a/scan?prefix=%G0"), None, &[]),
        400,
        "bad_query",
    );

    // Oversized key, namespace and value: 413 naming the limit and its flag.
    let long_key = "k".repeat(17);
    let m = message(
        &call(
            "PUT",
            &url(&format!("/v1/ns/a/kv/{long_key}")),
            Some(b"v"),
            &[],
        ),
        413,
        "too_large",
    );
    assert!(
        m.contains("key of 17 bytes") && m.contains("--max-key-bytes"),
        "{m}"
    );
    message(
        &call("PUT", &url("/v1/ns/ninechars/kv/k"), Some(b"v"), &[]),
        413,
        "too_large",
    );
    let big = vec![b'x'; 1025];
    let m = message(
        &call("PUT", &url("/v1/ns/a/kv/big"), Some(&big), &[]),
        413,
        "too_large",
    );
    assert!(m.contains("--max-value-bytes"), "{m}");
    let ops: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"op":"put","ns":"a","key":"t{i}","value":"{}"}}"#,
                "v".repeat(40)
            )
        })
        .collect();
    let body = format!(r#"{{"ops":[{}]}}"#, ops.join(","));
    assert!(body.len() > 2048);
    message(
        &call("POST", &url("/v1/txn"), Some(body.as_bytes()), &[]),
        413,
        "too_large",
    );
    // A txn with an oversized value inside.
    let body = format!(
        r#"{{"ops":[{{"op":"put","ns":"a","key":"t","value":"ok"}},{{"op":"put","ns":"a","key":"u","value":"{}"}}]}}"#,
        "v".repeat(1100)
    );
    message(
        &call("POST", &url("/v1/txn"), Some(body.as_bytes()), &[]),
        413,
        "too_large",
    );

    // Empty namespace, bad JSON, unknown parameters, bad integers.
    message(
        &call("PUT", &url("/v1/ns//kv/k"), Some(b"v"), &[]),
        400,
        "bad_request",
    );
    message(
        &call("PUT", &url("/v1/ns/%20/kv/k?if_version=x"), Some(b"v"), &[]),
        400,
        "bad_query",
    );
    message(
        &call("POST", &url("/v1/txn"), Some(b"not json"), &[]),
        400,
        "bad_json",
    );
    message(
        &call("POST", &url("/v1/txn"), Some(b""), &[]),
        400,
        "bad_json",
    );
    let m = message(
        &call("PUT", &url("/v1/ns/a/kv/k?if_versoin=1"), Some(b"v"), &[]),
        400,
        "bad_query",
    );
    assert!(m.contains("if_versoin"), "{m}");
    message(
        &call(
            "PUT",
            &url("/v1/ns/a/kv/k?if_version=1&if_version=2"),
            Some(b"v"),
            &[],
        ),
        400,
        "bad_query",
    );
    message(
        &call("GET", &url("/v1/ns/a/kv/k?x=1"), None, &[]),
        400,
        "bad_query",
    );

    // Unknown routes and methods.
    let m = message(
        &call("GET", &url("/v2/whatever"), None, &[]),
        404,
        "no_route",
    );
    assert!(m.contains("/v2/whatever"), "{m}");
    message(
        &call("GET", &url("/v1/ns/a/kv/k/b/c"), None, &[]),
        404,
        "no_route",
    );
    message(
        &call("POST", &url("/v1/ns/a/kv/k"), Some(b"v"), &[]),
        405,
        "method_not_allowed",
    );
    message(
        &call("DELETE", &url("/v1/status"), None, &[]),
        405,
        "method_not_allowed",
    );
    message(
        &call("PATCH", &url("/v1/txn"), Some(b"{}"), &[]),
        405,
        "method_not_allowed",
    );

    // Garbage on the socket: the server answers 400 (or closes) and lives on.
    for garbage in [
        &b"\x00\x01\x02 garbage\r\n\r\n"[..],
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"PUT /v1/ns/a/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ] {
        let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        c.write_all(garbage).unwrap();
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 4"),
            "answer to garbage: {text}"
        );
    }

    // A body larger than the limit is refused from its Content-Length, before it is read.
    let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    c.write_all(b"PUT /v1/ns/a/kv/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = c.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"));

    // Nothing was stored by any of it; the server still works.
    let scan = call("GET", &url("/v1/ns/a/scan"), None, &[]).json();
    assert_eq!(scan["count"], 0, "{scan}");
    let status = call("GET", &url("/v1/status"), None, &[]).json();
    assert_eq!(status["keys"], 0, "{status}");
    put(&s, "a", "fine", b"ok");
    assert_eq!(get(&s, "a", "fine").body, b"ok");
}
