//! Concurrent requests share group commits: the library's load generator drives 32
//! keep-alive clients of durable single-key PUTs; every write is acknowledged, and the log
//! made them durable with fewer fdatasyncs than commits (more than one commit, i.e. more
//! than two records, per group commit on average).
#![allow(clippy::unwrap_used)]

mod support;
use std::time::Duration;
use support::*;

#[test]
fn concurrent_writes_share_fsyncs() {
    let dir = tempdir();
    let s = Server::start(&dir.path().join("data"), &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(walden_server::load(
            s.addr(),
            32,
            Duration::from_millis(1500),
        ))
        .unwrap();
    eprintln!(
        "32 clients: {} acknowledged writes, {:.0}/s, p50 {} µs, p99 {} µs, {} errors",
        report.ok,
        report.ops_per_sec(),
        report.latency_quantile_micros(0.5),
        report.latency_quantile_micros(0.99),
        report.errors
    );
    assert_eq!(report.errors, 0);
    assert!(report.ok > 100, "{report:?}");
    let status = call("GET", &s.url("/v1/status"), None, &[]).json();
    let per_group = status["mean_records_per_group_commit"].as_f64().unwrap();
    let fsyncs = status["fsyncs"].as_u64().unwrap();
    eprintln!("{fsyncs} fsyncs, {per_group:.1} records per group commit");
    // Each commit is two records (writes + commit): above 2 means commits shared fsyncs.
    assert!(per_group > 2.5, "no group commit: {status}");
    assert!(
        fsyncs < report.ok,
        "{fsyncs} fsyncs for {} writes",
        report.ok
    );
    // Every acknowledged write is readable.
    let scan = call("GET", &s.url("/v1/ns/load/scan?limit=1"), None, &[]).json();
    assert_eq!(scan["count"], 1);
    assert_eq!(status["keys"].as_u64().unwrap(), report.ok);
}
