//! Writes above the inline-commit size (64 KiB of keys and values) take the blocking-pool
//! path, small ones the deferred path on the async workers: both answer durable versions in
//! commit order, interleave correctly with each other, and survive a SIGKILL.
#![allow(clippy::unwrap_used)]

mod support;
use serde_json::json;
use support::*;

#[test]
fn large_and_small_writes_interleave_and_survive_a_kill() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]);
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let small = put(&s, "ns", "k", b"small");
    assert_eq!(small["version"], 1);
    let large = put(&s, "ns", "k", &big);
    assert_eq!(large["version"], 2);
    assert!(large["lsn"].as_u64().unwrap() > small["lsn"].as_u64().unwrap());
    // A transaction of three 100 KiB values (base64 in JSON), after a small write.
    let part = "QUJD".repeat(100 << 10 >> 2);
    let r = call(
        "POST",
        &s.url("/v1/txn"),
        Some(
            json!({"ops": [
                {"op": "put", "ns": "ns", "key": "t1", "value_b64": part},
                {"op": "put", "ns": "ns", "key": "t2", "value_b64": part},
                {"op": "put", "ns": "ns", "key": "k", "value": "after"},
            ]})
            .to_string()
            .as_bytes(),
        ),
        &[("content-type", "application/json")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let versions = r.json()["versions"].clone();
    assert_eq!(versions[2]["version"], 3, "{versions}");
    let last = put(&s, "ns", "k", b"last");
    assert_eq!(last["version"], 4);
    s.kill();
    let s = Server::start(&data, &[]);
    assert_eq!(get(&s, "ns", "k").body, b"last");
    let history = call("GET", &s.url("/v1/ns/ns/kv/k/history"), None, &[]).json();
    let lens: Vec<u64> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert!(lens.ends_with(&[3, 4]), "{history}");
    let t1 = get(&s, "ns", "t1");
    assert_eq!(t1.body.len(), 3 * (100 << 10) / 4);
    assert_eq!(&t1.body[..3], b"ABC");
}
