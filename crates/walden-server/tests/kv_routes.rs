//! PUT, GET, DELETE and history of single keys against the real binary: values are raw
//! bytes, keys and namespaces percent-encoded bytes, every write answers its durable LSN
//! and version, reads carry version and LSN in headers, absent keys are 404.
#![allow(clippy::unwrap_used)]

mod support;
use support::*;

#[test]
fn single_key_routes_round_trip() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &[]);

    // PUT answers the commit LSN and the new version.
    let w1 = put(&s, "tasks", "task-17", b"agent-a");
    assert_eq!(w1["version"], 1);
    let lsn1 = w1["lsn"].as_u64().unwrap();
    assert!(lsn1 >= 1);
    let w2 = put(&s, "tasks", "task-17", b"agent-b");
    assert_eq!(w2["version"], 2);
    assert!(w2["lsn"].as_u64().unwrap() > lsn1);

    // GET: raw bytes, version and LSN in headers.
    let r = get(&s, "tasks", "task-17");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"agent-b");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("x-walden-version"), Some("2"));
    assert_eq!(
        r.header("x-walden-lsn").unwrap(),
        w2["lsn"].as_u64().unwrap().to_string()
    );
    assert!(
        r.header("x-walden-commit-time-ms")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );

    // Binary keys, namespaces and values; `/` inside a key as %2F.
    let value: Vec<u8> = (0..=255u8).collect();
    let r = call(
        "PUT",
        &s.url("/v1/ns/%00bin%FF/kv/a%2Fb%20c%FF"),
        Some(&value),
        &[("content-type", "application/octet-stream")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call("GET", &s.url("/v1/ns/%00bin%FF/kv/a%2Fb%20c%FF"), None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, value);
    // Encoded and unencoded spellings of the same bytes are the same key.
    put(&s, "tasks", "plain", b"1");
    assert_eq!(get(&s, "tasks", "%70lain").body, b"1");
    // Empty values are values.
    put(&s, "tasks", "empty", b"");
    let r = get(&s, "tasks", "empty");
    assert_eq!((r.status, r.body.len()), (200, 0));

    // Absent keys: 404 JSON with the current version.
    let e = get(&s, "tasks", "nope").assert_error(404, "not_found");
    assert_eq!(e["current_version"], 0);

    // DELETE answers LSN and version (a tombstone is a version); then 404, and a second
    // DELETE is 404 and writes nothing.
    let r = call("DELETE", &s.url("/v1/ns/tasks/kv/task-17"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], 3);
    let e = get(&s, "tasks", "task-17").assert_error(404, "not_found");
    assert_eq!(e["current_version"], 3);
    call("DELETE", &s.url("/v1/ns/tasks/kv/task-17"), None, &[]).assert_error(404, "not_found");

    // History: every version, oldest first, the tombstone included.
    let r = call("GET", &s.url("/v1/ns/tasks/kv/task-17/history"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let h = r.json();
    assert_eq!(h["ns"], "tasks");
    assert_eq!(h["key"], "task-17");
    let versions = h["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[0]["value"], "agent-a");
    assert_eq!(versions[0]["value_b64"], "YWdlbnQtYQ==");
    assert_eq!(versions[0]["lsn"].as_u64().unwrap(), lsn1);
    assert_eq!(versions[1]["value"], "agent-b");
    assert_eq!(versions[2]["deleted"], true);
    assert!(versions[2].get("value").is_none());
    call("GET", &s.url("/v1/ns/tasks/kv/never/history"), None, &[]).assert_error(404, "not_found");

    // A non-UTF-8 value shows as null text plus base64.
    let h = call(
        "GET",
        &s.url("/v1/ns/%00bin%FF/kv/a%2Fb%20c%FF/history"),
        None,
        &[],
    )
    .json();
    assert_eq!(h["ns"], serde_json::Value::Null);
    assert_eq!(h["ns_b64"], "AGJpbv8=");
    assert_eq!(h["versions"][0]["value"], serde_json::Value::Null);

    // Writes survive a restart.
    let data = s.data.clone();
    assert!(s.terminate().success());
    let s = Server::start(&data, &[]);
    assert_eq!(get(&s, "tasks", "plain").body, b"1");
    get(&s, "tasks", "task-17").assert_error(404, "not_found");
}
