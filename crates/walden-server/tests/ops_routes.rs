//! Operations routes and commands: `/healthz`, `/v1/status` (LSNs, log size and segments,
//! uptime), `POST /v1/checkpoint`, `/metrics` (Prometheus text with the request, fsync and
//! group-commit histograms, bytes written, log size, subscriber lag), `/v1/openapi.json`
//! describing every route and copied verbatim into docs/API.md, and the `status` and
//! `checkpoint` client commands.
#![allow(clippy::unwrap_used)]

mod support;
use std::process::Command;
use support::*;

#[test]
fn status_checkpoint_metrics_and_commands() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &[]);
    let r = call("GET", &s.url("/healthz"), None, &[]);
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));

    let mut last = 0;
    for i in 0..20 {
        last = put(&s, "ns", &format!("k{i}"), b"value")["lsn"]
            .as_u64()
            .unwrap();
    }
    let st = call("GET", &s.url("/v1/status"), None, &[]).json();
    for field in ["appended_lsn", "durable_lsn", "visible_lsn"] {
        assert!(st[field].as_u64().unwrap() >= last, "{field}: {st}");
    }
    assert_eq!(st["checkpoint_lsn"], 0);
    assert!(st["log_segments"].as_u64().unwrap() >= 1);
    assert!(st["log_size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(st["keys"], 20);
    assert!(st["uptime_seconds"].as_f64().unwrap() >= 0.0);

    let c = call("POST", &s.url("/v1/checkpoint"), None, &[]);
    assert_eq!(c.status, 200, "{}", c.text());
    let c = c.json();
    assert!(c["lsn"].as_u64().unwrap() >= last);
    assert_eq!(c["keys"], 20);
    let st = call("GET", &s.url("/v1/status"), None, &[]).json();
    assert_eq!(st["checkpoint_lsn"], c["lsn"]);

    // A subscriber so the lag gauge has someone to measure.
    let (_, _events) = sse_events(&s.url("/v1/changes?from_lsn=1"), &[]);
    let m = call("GET", &s.url("/metrics"), None, &[]);
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = m.text();
    for needle in [
        "# TYPE walden_http_request_duration_seconds histogram",
        "walden_http_request_duration_seconds_bucket{route=\"/v1/ns/{ns}/kv/{key}\",method=\"PUT\",status=\"200\",le=\"+Inf\"} 20",
        "walden_http_request_duration_seconds_count{route=\"/v1/checkpoint\",method=\"POST\",status=\"200\"} 1",
        "# TYPE walden_log_fsync_duration_seconds histogram",
        "walden_log_fsync_duration_seconds_bucket{le=\"+Inf\"}",
        "# TYPE walden_log_records_per_group_commit histogram",
        "walden_log_bytes_written_total ",
        "walden_log_size_bytes ",
        "walden_log_segments ",
        "walden_lsn{kind=\"durable\"} ",
        "walden_subscribers 1",
        "walden_subscriber_lag_max_lsns ",
        "walden_uptime_seconds ",
    ] {
        assert!(text.contains(needle), "metrics lack `{needle}`:\n{text}");
    }
    // Every sample line is `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
    }

    // The client commands against the running server.
    let out = Command::new(BIN)
        .args(["status", "--server", &s.base])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("durable") && text.contains("keys        20"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["checkpoint", "--json", "--server", &s.base])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["keys"], 20);
    // Errors are one clear line and a non-zero exit.
    let out = Command::new(BIN)
        .args(["status", "--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[test]
fn openapi_describes_every_route_and_docs_carry_it() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &[]);
    let r = call("GET", &s.url("/v1/openapi.json"), None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in walden_server::ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "the OpenAPI document lacks {method} {path}"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| {
            p.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .count()
        })
        .sum();
    assert_eq!(
        documented,
        walden_server::ROUTES.len(),
        "no undocumented or stale routes"
    );

    // docs/API.md documents every route and carries the document verbatim.
    let api_md = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/API.md"),
    )
    .unwrap();
    for (method, path) in walden_server::ROUTES {
        let heading = format!("`{} {path}`", method.to_uppercase());
        assert!(api_md.contains(&heading), "docs/API.md lacks {heading}");
    }
    let start = api_md
        .find("<!-- openapi:start -->\n```json\n")
        .expect("openapi marker");
    let rest = &api_md[start + "<!-- openapi:start -->\n```json\n".len()..];
    let end = rest
        .find("```\n<!-- openapi:end -->")
        .expect("openapi end marker");
    assert_eq!(
        &rest[..end],
        walden_server::OPENAPI_DOCUMENT,
        "docs/API.md's copy of the OpenAPI document is stale: copy \
         crates/walden-server/src/openapi.json into it"
    );
}
