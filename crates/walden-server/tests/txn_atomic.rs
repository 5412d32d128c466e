//! `POST /v1/txn`: several puts and deletes with preconditions commit atomically and
//! durably under one LSN; a failed precondition writes nothing at all; text and base64
//! byte forms; malformed transactions are 400 and write nothing.
#![allow(clippy::unwrap_used)]

mod support;
use serde_json::json;
use support::*;

fn txn(s: &Server, body: &serde_json::Value) -> Resp {
    call(
        "POST",
        &s.url("/v1/txn"),
        Some(body.to_string().as_bytes()),
        &[("content-type", "application/json")],
    )
}

#[test]
fn transactions_are_all_or_nothing() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &[]);
    put(&s, "acct", "b", b"old");

    let r = txn(
        &s,
        &json!({
            "ops": [
                {"op": "put", "ns": "acct", "key": "a", "value": "100"},
                {"op": "put", "ns_b64": "YWNjdA==", "key_b64": "/w==", "value_b64": "AAE="},
                {"op": "delete", "ns": "acct", "key": "b"}
            ],
            "preconditions": [
                {"ns": "acct", "key": "a", "absent": true},
                {"ns": "acct", "key": "b", "version": 1}
            ]
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    let lsn = out["lsn"].as_u64().unwrap();
    let versions = out["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[0]["key"], "a");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[1]["key_b64"], "/w==");
    assert_eq!(versions[2]["version"], 2);
    // One commit LSN for every write.
    let a = get(&s, "acct", "a");
    assert_eq!(a.body, b"100");
    assert_eq!(a.header("x-walden-lsn").unwrap(), lsn.to_string());
    let ff = call("GET", &s.url("/v1/ns/acct/kv/%FF"), None, &[]);
    assert_eq!(ff.body, [0u8, 1]);
    assert_eq!(ff.header("x-walden-lsn").unwrap(), lsn.to_string());
    get(&s, "acct", "b").assert_error(404, "not_found");

    // A failed precondition: 409 with the current version, nothing written.
    let e = txn(
        &s,
        &json!({
            "ops": [
                {"op": "put", "ns": "acct", "key": "c", "value": "new"},
                {"op": "put", "ns": "acct", "key": "a", "value": "200"}
            ],
            "preconditions": [{"ns": "acct", "key": "a", "version": 5}]
        }),
    )
    .assert_error(409, "precondition_failed");
    assert_eq!(e["current_version"], 1);
    get(&s, "acct", "c").assert_error(404, "not_found");
    assert_eq!(get(&s, "acct", "a").body, b"100");

    // `present`: a live value. "b" was deleted above: refused; "a" is live: deleted.
    let e = txn(
        &s,
        &json!({
            "ops": [{"op": "delete", "ns": "acct", "key": "b"}],
            "preconditions": [{"ns": "acct", "key": "b", "present": true}]
        }),
    )
    .assert_error(409, "precondition_failed");
    assert_eq!(e["current_version"], 2, "the tombstone's version");
    let r = txn(
        &s,
        &json!({
            "ops": [{"op": "delete", "ns": "acct", "key": "a"}],
            "preconditions": [{"ns": "acct", "key": "a", "present": true}]
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    get(&s, "acct", "a").assert_error(404, "not_found");

    // Malformed transactions: 400, nothing written.
    for (body, code) in [
        (json!({"ops": []}), "bad_txn"),
        (
            json!({"ops": [{"op": "put", "ns": "acct", "key": "d"}]}),
            "bad_txn",
        ),
        (
            json!({"ops": [{"op": "delete", "ns": "acct", "key": "d", "value": "x"}]}),
            "bad_txn",
        ),
        (
            json!({"ops": [{"op": "put", "ns": "acct", "key": "d", "key_b64": "ZA==", "value": "x"}]}),
            "bad_txn",
        ),
        (
            json!({"ops": [{"op": "put", "ns": "acct", "key_b64": "!!", "value": "x"}]}),
            "bad_txn",
        ),
        (
            json!({"ops": [{"op": "put", "key": "d", "value": "x"}]}),
            "bad_txn",
        ),
        (
            json!({"ops": [{"op": "put", "ns": "", "key": "d", "value": "x"}]}),
            "bad_request",
        ),
        (
            json!({"ops": [{"op": "upsert", "ns": "acct", "key": "d", "value": "x"}]}),
            "bad_json",
        ),
        (
            json!({"ops": [{"op": "put", "ns": "acct", "key": "d", "value": "x", "ttl": 3}]}),
            "bad_json",
        ),
        (
            json!({"ops": [{"op": "put", "ns": "acct", "key": "d", "value": "x"}],
                "preconditions": [{"ns": "acct", "key": "d", "absent": true, "version": 1}]}),
            "bad_txn",
        ),
        (
            json!({"ops": [{"op": "put", "ns": "acct", "key": "d", "value": "x"}],
                "preconditions": [{"ns": "acct", "key": "d", "absent": true, "present": true}]}),
            "bad_txn",
        ),
        (
            json!({"ops": [{"op": "put", "ns": "acct", "key": "d", "value": "x"}],
                "preconditions": [{"ns": "acct", "key": "d", "present": false}]}),
            "bad_txn",
        ),
        (json!([1, 2]), "bad_json"),
    ] {
        txn(&s, &body).assert_error(400, code);
    }
    get(&s, "acct", "d").assert_error(404, "not_found");
    let r = call("POST", &s.url("/v1/txn"), Some(b"{\"ops\": [tru"), &[]);
    let e = r.assert_error(400, "bad_json");
    assert!(e["message"].as_str().unwrap().contains("line 1"), "{e}");
}
