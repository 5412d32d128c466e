//! `--quick` end to end: every workload runs, and every peer is either measured or reported
//! missing (or not applicable) with a reason. Asserts that the benchmark ran, never a speed.

use std::path::PathBuf;
use walden_bench::{BenchArgs, Report, Row, Status, PEERS, SERVER_PEERS, WORKLOADS};

/// A row that is not measured must say why.
fn explained(w: &str, r: &Row) {
    if r.status != Status::Measured {
        assert!(
            r.reason.as_deref().is_some_and(|s| !s.is_empty()),
            "{w}: {} is {:?} without a reason",
            r.system,
            r.status
        );
    }
}

#[test]
fn quick_run_reports_every_workload_and_every_peer() {
    let out = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let json = out.path().join("report.json");
    let markdown = out.path().join("report.md");
    let args = BenchArgs {
        quick: true,
        // Same disk as the build, not /tmp (which may be tmpfs).
        dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
        json: Some(json.clone()),
        markdown: Some(markdown.clone()),
        recover_helper: Some(PathBuf::from(env!("CARGO_BIN_EXE_walden-bench"))),
        w2_record_bytes: 128,
        tail_rate: 2000,
        ..BenchArgs::default()
    };
    let report = walden_bench::run(args).unwrap();
    assert_eq!(report.mode, "quick");

    // The log workloads: every log peer has a row.
    for w in ["W1", "W2", "W3", "W4", "W5"] {
        let rows: Vec<_> = report.rows_of(w).collect();
        assert!(
            rows.iter()
                .any(|r| r.system == "walden" && r.status == Status::Measured),
            "{w}: walden was not measured"
        );
        for peer in PEERS {
            let mine: Vec<_> = rows.iter().filter(|r| r.family == peer).collect();
            assert!(!mine.is_empty(), "{w}: peer {peer} silently dropped");
            for r in mine {
                explained(w, r);
            }
        }
        for r in &rows {
            if r.status == Status::Measured {
                assert!(r.reps >= 1, "{w} {} {}: no repetition", r.case, r.system);
            }
        }
    }
    // W6: store commits beside walden-log at each writer count, recovery with and without
    // checkpoints at each store size.
    for case in ["1 writer", "4 writers"] {
        let store = report.find("W6", case, "walden").expect("W6 store commits");
        assert!(store.metrics.ops_per_sec.is_some() && store.metrics.fsyncs.is_some());
        let log: Vec<_> = report
            .rows_of("W6")
            .filter(|r| r.case == case && r.family == "walden-log")
            .collect();
        assert_eq!(log.len(), 1, "W6 {case}: no walden-log row");
        explained("W6", log[0]);
    }
    for system in ["walden, no checkpoints", "walden, checkpoints"] {
        let recovered: Vec<_> = report
            .rows_of("W6")
            .filter(|r| r.system == system && r.status == Status::Measured)
            .collect();
        assert_eq!(recovered.len(), 2, "W6: recovery rows of {system}");
        for r in recovered {
            assert!(r.metrics.recovery_ms.is_some() && r.metrics.log_records_read.is_some());
        }
    }
    // W7: walden measured at every client count; each server peer measured or missing.
    for case in ["1 client", "16 clients"] {
        assert!(
            report.find("W7", case, "walden").is_some(),
            "W7 {case}: walden"
        );
    }
    for peer in SERVER_PEERS {
        let mine: Vec<_> = report.rows_of("W7").filter(|r| r.family == peer).collect();
        assert!(!mine.is_empty(), "W7: peer {peer} silently dropped");
        for r in mine {
            explained("W7", r);
        }
    }
    // The floor runs in every write and read workload.
    for w in ["W1", "W3", "W4"] {
        assert!(
            report
                .rows_of(w)
                .any(|r| r.family == "floor" && r.status == Status::Measured),
            "{w}: no floor"
        );
    }
    // Machine description and outputs.
    assert!(report.machine.cores >= 1);
    assert!(!report.machine.filesystem.is_empty());
    assert!(!report.machine.kernel.is_empty());
    let parsed: Report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(parsed.rows.len(), report.rows.len());
    assert_eq!(parsed.targets.len(), report.targets.len());
    let md = std::fs::read_to_string(&markdown).unwrap();
    for w in WORKLOADS {
        assert!(md.contains(&format!("### {w} ")), "markdown lacks {w}");
    }
    assert!(
        report.targets.iter().all(|t| t.met.is_none()),
        "quick mode evaluates no target"
    );
}
