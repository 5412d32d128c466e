//! Preconditions and conflicts: `?if_absent=true` and `?if_version=N` on PUT and DELETE,
//! 409 `precondition_failed` with the current version and nothing written; many agents
//! racing to claim one task: exactly one wins; blind concurrent writes to one key all
//! succeed (the store does not check write-write conflicts for transactions that read
//! nothing); racing DELETEs of one key: exactly one deletes, the others answer 404.
#![allow(clippy::unwrap_used)]

mod support;
use support::*;

#[test]
fn preconditions_fence_writers() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &[]);
    let url = s.url("/v1/ns/tasks/kv/t1");
    let put_q = |q: &str, v: &[u8]| call("PUT", &format!("{url}?{q}"), Some(v), &[]);

    // Insert-if-absent: the first wins, the second gets 409 with the current version.
    assert_eq!(put_q("if_absent=true", b"agent-a").status, 200);
    let e = put_q("if_absent=true", b"agent-b").assert_error(409, "precondition_failed");
    assert_eq!(e["current_version"], 1);
    assert_eq!(get(&s, "tasks", "t1").body, b"agent-a");

    // Compare-and-set on the version.
    let e = put_q("if_version=7", b"x").assert_error(409, "precondition_failed");
    assert_eq!(e["current_version"], 1);
    let r = put_q("if_version=1", b"agent-a-done");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"], 2);
    put_q("if_version=1", b"stale").assert_error(409, "precondition_failed");
    assert_eq!(get(&s, "tasks", "t1").body, b"agent-a-done");
    // if_absent=false is no precondition; both at once is a bad request.
    assert_eq!(put_q("if_absent=false", b"v3").status, 200);
    put_q("if_absent=true&if_version=3", b"x").assert_error(400, "bad_query");

    // Version 0 means "never written".
    assert_eq!(
        call(
            "PUT",
            &s.url("/v1/ns/tasks/kv/fresh?if_version=0"),
            Some(b"1"),
            &[]
        )
        .status,
        200
    );

    // Conditional delete.
    let e = call("DELETE", &format!("{url}?if_version=1"), None, &[])
        .assert_error(409, "precondition_failed");
    assert_eq!(e["current_version"], 3);
    assert_eq!(
        call("DELETE", &format!("{url}?if_version=3"), None, &[]).status,
        200
    );
    // A deleted key is absent again: if_absent succeeds, continuing the version count.
    let r = put_q("if_absent=true", b"again");
    assert_eq!(r.json()["version"], 5);
}

#[test]
fn racing_claims_have_one_winner_and_blind_writes_all_land() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &[]);
    let base = s.base.clone();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut won = 0;
                for task in 0..20 {
                    let url = format!("{base}/v1/ns/claims/kv/task-{task}?if_absent=true");
                    let r = try_call(
                        &agent,
                        "PUT",
                        &url,
                        Some(format!("agent-{i}").as_bytes()),
                        &[],
                    )
                    .unwrap();
                    match r.status {
                        200 => won += 1,
                        409 => assert_eq!(r.json()["error"]["code"], "precondition_failed"),
                        other => panic!("unexpected {other}: {}", r.text()),
                    }
                    // Blind writes to one hot key never fail.
                    let r = try_call(
                        &agent,
                        "PUT",
                        &format!("{base}/v1/ns/hot/kv/k"),
                        Some(b"x"),
                        &[],
                    )
                    .unwrap();
                    assert_eq!(r.status, 200, "{}", r.text());
                }
                won
            })
        })
        .collect();
    let wins: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(wins, 20, "every task claimed exactly once");
    let r = call("GET", &s.url("/v1/ns/hot/kv/k"), None, &[]);
    assert_eq!(r.header("x-walden-version"), Some("160"));
}

/// DELETE without `if_version` deletes whatever version is live when it commits: of 8
/// clients racing to delete one key, exactly one writes the tombstone, the others answer
/// 404, never 409 and never a second tombstone; mixed with PUTs, every DELETE answers 200
/// or 404.
#[test]
fn racing_deletes_write_one_tombstone() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &[]);
    let base = s.base.clone();
    for round in 0..10u32 {
        put(&s, "del", "k", format!("round {round}").as_bytes());
        let before = call("GET", &s.url("/v1/ns/del/kv/k"), None, &[]);
        let version: u64 = before.header("x-walden-version").unwrap().parse().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let base = base.clone();
                std::thread::spawn(move || {
                    let r = try_call(
                        &agent(),
                        "DELETE",
                        &format!("{base}/v1/ns/del/kv/k"),
                        None,
                        &[],
                    )
                    .unwrap();
                    r.status
                })
            })
            .collect();
        let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            statuses.iter().filter(|&&c| c == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|&c| c == 200 || c == 404),
            "{statuses:?}"
        );
        let e = get(&s, "del", "k").assert_error(404, "not_found");
        assert_eq!(
            e["current_version"],
            version + 1,
            "one tombstone, round {round}"
        );
    }
    // Deletes racing writes: each answers 200 (it deleted a live version) or 404.
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let agent = agent();
                for _ in 0..25 {
                    let url = format!("{base}/v1/ns/del/kv/mixed");
                    let r = if i % 2 == 0 {
                        try_call(&agent, "PUT", &url, Some(b"v"), &[]).unwrap()
                    } else {
                        try_call(&agent, "DELETE", &url, None, &[]).unwrap()
                    };
                    assert!(
                        r.status == 200 || r.status == 404,
                        "{} {}",
                        r.status,
                        r.text()
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
