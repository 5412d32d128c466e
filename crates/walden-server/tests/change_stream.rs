//! The change stream (`GET /v1/changes`, Server-Sent Events): one `commit` event per
//! committed transaction in commit order with `id` = commit LSN; `ns` and `prefix` filter;
//! `from_lsn` replays; and after a server restart a client reconnecting with
//! `Last-Event-ID` gets exactly the commits after it: none lost, none repeated.
#![allow(clippy::unwrap_used)]

mod support;
use serde_json::json;
use std::sync::mpsc::Receiver;
use std::time::Duration;
use support::*;

fn next_commit(rx: &Receiver<SseEvent>) -> (u64, serde_json::Value) {
    loop {
        let ev = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("an event within 20 s");
        if ev.event == "commit" {
            let data: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
            let id: u64 = ev.id.unwrap().parse().unwrap();
            assert_eq!(
                data["lsn"].as_u64().unwrap(),
                id,
                "event id is the commit LSN"
            );
            return (id, data);
        }
        assert_ne!(ev.event, "error", "stream error: {}", ev.data);
    }
}

#[test]
fn change_stream_orders_filters_and_resumes_across_restart() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]);

    // A live subscriber from "now", and a filtered one.
    let (status, all) = sse_events(&s.url("/v1/changes"), &[]);
    assert_eq!(status, 200);
    let (_, filtered) = sse_events(&s.url("/v1/changes?ns=tasks&prefix=t-"), &[]);

    let mut lsns = Vec::new();
    for i in 0..5 {
        lsns.push(
            put(&s, "tasks", &format!("t-{i}"), format!("v{i}").as_bytes())["lsn"]
                .as_u64()
                .unwrap(),
        );
        put(&s, "notes", &format!("t-{i}"), b"ignored by the filter");
    }
    let body = json!({"ops": [
        {"op": "put", "ns": "tasks", "key": "t-9", "value": "x"},
        {"op": "put", "ns": "tasks", "key": "other", "value": "y"},
        {"op": "delete", "ns": "tasks", "key": "t-0"}
    ]});
    let r = call(
        "POST",
        &s.url("/v1/txn"),
        Some(body.to_string().as_bytes()),
        &[],
    );
    let txn_lsn = r.json()["lsn"].as_u64().unwrap();

    // Unfiltered: all 11 commits, in commit order.
    let mut seen = Vec::new();
    for _ in 0..11 {
        seen.push(next_commit(&all));
    }
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "commit order");
    let (first_lsn, first) = &seen[0];
    assert_eq!(*first_lsn, lsns[0]);
    assert_eq!(first["changes"][0]["op"], "put");
    assert_eq!(first["changes"][0]["ns"], "tasks");
    assert_eq!(first["changes"][0]["key"], "t-0");
    assert_eq!(first["changes"][0]["value"], "v0");
    assert_eq!(first["changes"][0]["value_b64"], "djA=");
    let (last_lsn, last) = &seen[10];
    assert_eq!(*last_lsn, txn_lsn);
    assert_eq!(
        last["changes"].as_array().unwrap().len(),
        3,
        "a transaction is one event"
    );

    // Filtered: only tasks/t-*, and in the transaction only its matching changes.
    for lsn in &lsns {
        assert_eq!(next_commit(&filtered).0, *lsn);
    }
    let (lsn, ev) = next_commit(&filtered);
    assert_eq!(lsn, txn_lsn);
    let changes = ev["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1]["op"], "delete");
    assert!(changes[1].get("value").is_none());

    // from_lsn replays from any LSN the log holds.
    let (_, replay) = sse_events(&s.url(&format!("/v1/changes?from_lsn={}", lsns[3])), &[]);
    assert_eq!(next_commit(&replay).0, lsns[3]);

    // Restart. The subscriber read up to lsns[2]; meanwhile more commits happen.
    let resume_after = lsns[2];
    assert!(s.terminate().success());
    let s = Server::start(&data, &[]);
    let after_restart = put(&s, "tasks", "t-after", b"z")["lsn"].as_u64().unwrap();
    let (status, resumed) = sse_events(
        &s.url("/v1/changes"),
        &[("Last-Event-ID", &resume_after.to_string())],
    );
    assert_eq!(status, 200);
    let mut expected: Vec<u64> = seen
        .iter()
        .map(|(l, _)| *l)
        .filter(|l| *l > resume_after)
        .collect();
    expected.push(after_restart);
    for want in expected {
        assert_eq!(
            next_commit(&resumed).0,
            want,
            "resume misses or repeats nothing"
        );
    }
    // Last-Event-ID wins over from_lsn; a bad one is 400.
    let (_, both) = sse_events(
        &s.url("/v1/changes?from_lsn=1"),
        &[("Last-Event-ID", &txn_lsn.to_string())],
    );
    assert_eq!(next_commit(&both).0, after_restart);
    let (status, _) = sse_events(&s.url("/v1/changes"), &[("Last-Event-ID", "yesterday")]);
    assert_eq!(status, 400);
    let r = call("GET", &s.url("/v1/changes?from_lsn=x"), None, &[]);
    r.assert_error(400, "bad_query");

    // The stream ends when the server shuts down; the server still exits 0.
    let (_, open) = sse_events(&s.url("/v1/changes"), &[]);
    assert!(s.terminate().success());
    let ended = loop {
        match open.recv_timeout(Duration::from_secs(10)) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(ended, std::sync::mpsc::RecvTimeoutError::Disconnected);
}
