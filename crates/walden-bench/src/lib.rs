//! # walden-bench: walden beside the physical floor and its peers, in one run
//!
//! Users choose a log by its numbers, and we steer by ours. This crate measures walden-log
//! and, **in the same run, on the same disk, with the same record sizes and the same
//! durability**, the physical floor (plain `pwrite`+`fdatasync` loops, sequential write and
//! read) and the peers a user would pick instead: SQLite in WAL mode (FULL and NORMAL, via
//! rusqlite's bundled library), okaywal, RocksDB with sync writes (cargo feature `rocksdb`,
//! off by default because its C++ build is slow) and PostgreSQL (scripts/pg-peer.sh, which
//! runs a throwaway cluster). A peer that cannot run is reported as missing, with the reason.
//!
//! Workloads (issue 3):
//! - **W1** durable single writer, 128 B and 4 KiB records: ops/s, latency p50/p99/p99.9.
//! - **W2** group commit, 1, 4, 16, 64, 256 concurrent durable writers: ops/s, records per
//!   fsync, latency p50/p99.
//! - **W3** buffered ingest, one sync at the end, 128 B, 1 KiB, 64 KiB: MB/s, records/s.
//! - **W4** recovery of a log of `--recovery-bytes`, page cache warm and cold (evicted with
//!   `posix_fadvise(DONTNEED)`): GB/s and peak memory of a child process that only opens it.
//! - **W5** tailing: a durable writer at a fixed rate, a `tail_from` reader: lag p50/p99.
//!
//! Issue 4 (walden-store) and issue 5 (the server):
//! - **W6** store transactions: commits/s from 1 to 64 writers at `Durability::Sync`, beside
//!   walden-log appending the same bytes per durable operation; recovery time against log
//!   length with and without checkpoints (`store_workload`).
//! - **W7** server: durable single-key writes from 1 to 256 clients over loopback against
//!   the walden server (over HTTP, and over its RESP endpoint with Redis's own client loop),
//!   Redis (`appendfsync always`, scripts/redis-peer.sh) and PostgreSQL
//!   (`synchronous_commit=on`), driven the same way (`server_workload`).
//!
//! Every figure carries its durability; figures are medians of `--reps` repetitions (run
//! interleaved, so drift spreads over all systems); ratios of walden to every other system
//! are computed within the run. Speed is never asserted: `--quick` proves only that every
//! workload runs.
//!
//! Entry points: [`run`] (what `walden bench` calls), [`recover_only`] (the W4 child: the
//! binary answers `walden-bench recover-only DIR --segment-bytes N`), [`Report`].

mod args;
mod engines;
mod measure;
mod pg;
mod recover;
mod report;
mod server_workload;
mod store_workload;
mod workloads;

pub use args::{parse_bytes, BenchArgs, PEERS, SERVER_PEERS, WORKLOADS};
pub use recover::{recover_only, RecoverOnly};
pub use report::{Durability, Machine, Metrics, Ratio, Report, Row, Status, Target};

use anyhow::Context;
use args::Plan;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

/// Runs the benchmark as `args` say and returns the report; writes it to `--json` and
/// `--markdown` when given. Progress goes to stderr.
pub fn run(args: BenchArgs) -> anyhow::Result<Report> {
    let plan = Plan::from_args(&args)?;
    let started = Instant::now();
    let date_utc = measure::now_utc();
    let parent = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("current directory")?,
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("create {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("walden-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("make a directory in {}", parent.display()))?;
    // Other users (the PostgreSQL server runs as `postgres`) must be able to enter it.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    let root = tmp.path().to_path_buf();
    let mut machine = measure::machine(&root);
    let mut notes = Vec::new();
    if measure::is_memory_fs(&machine.filesystem) {
        notes.push(format!(
            "WARNING: {} is on {}: fsync costs nothing there, so no durable figure means anything. Pass --dir on a real disk.",
            root.display(),
            machine.filesystem
        ));
    }
    eprintln!(
        "walden-bench ({} mode) in {} on {}, {} cores, load {}",
        if plan.quick { "quick" } else { "full" },
        root.display(),
        machine.filesystem,
        machine.cores,
        machine.load_at_start
    );

    let mut rows = Vec::new();
    if plan.runs("W1") {
        workloads::w1(&plan, &root, &mut rows)?;
    }
    if plan.runs("W2") {
        workloads::w2(&plan, &root, &mut rows)?;
    }
    if plan.runs("W1") || plan.runs("W2") {
        let pg_dir = root.join("pg");
        std::fs::create_dir_all(&pg_dir)?;
        std::fs::set_permissions(&pg_dir, std::fs::Permissions::from_mode(0o755))?;
        let outcome = pg::run(&plan, args.pg_script.as_deref(), &pg_dir);
        rows.extend(pg::rows(&plan, &outcome));
    }
    if plan.runs("W3") {
        workloads::w3(&plan, &root, &mut rows)?;
    }
    if plan.runs("W4") {
        let helper = recover::find_helper(args.recover_helper.as_deref());
        recover::w4(&plan, &root, &helper, &mut rows)?;
    }
    if plan.runs("W5") {
        workloads::w5(&plan, &root, &mut rows)?;
    }
    if plan.runs("W6") {
        store_workload::w6(&plan, &root, &mut rows)?;
    }
    if plan.runs("W7") {
        server_workload::w7(&plan, &root, args.redis_script.as_deref(), &mut rows)?;
    }
    for w in WORKLOADS {
        if !plan.runs(w) {
            notes.push(format!("{w} was not run (--workloads)."));
        }
    }
    // Report order: workload, then case in the order first measured (walden first within
    // a case), then the rows of peers that did not run.
    let mut cases: Vec<(String, String)> = Vec::new();
    for r in &rows {
        let key = (r.workload.clone(), r.case.clone());
        if !cases.contains(&key) {
            cases.push(key);
        }
    }
    rows.sort_by_key(|r| {
        (
            WORKLOADS.iter().position(|w| *w == r.workload),
            r.case == "all",
            cases
                .iter()
                .position(|(w, c)| *w == r.workload && *c == r.case),
        )
    });
    machine.load_at_end = measure::loadavg();
    let ratios = ratios(&rows);
    let mut report = Report {
        mode: if plan.quick { "quick" } else { "full" }.into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        date_utc,
        elapsed_secs: started.elapsed().as_secs_f64(),
        machine,
        seconds_per_measurement: plan.measure.as_secs_f64(),
        reps: plan.reps,
        rows,
        ratios,
        targets: Vec::new(),
        notes,
    };
    report.targets = targets(&report, plan.quick);
    if args.keep {
        let kept = tmp.keep();
        report
            .notes
            .push(format!("Bench directory kept: {}", kept.display()));
    } else {
        drop(tmp);
    }
    if let Some(p) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(p, json + "\n").with_context(|| format!("write {}", p.display()))?;
    }
    if let Some(p) = &args.markdown {
        std::fs::write(p, report.to_markdown())
            .with_context(|| format!("write {}", p.display()))?;
    }
    Ok(report)
}

/// The figure each workload is compared on.
fn primary(workload: &str, m: &Metrics) -> Option<(&'static str, f64)> {
    match workload {
        "W1" | "W2" | "W6" | "W7" => m.ops_per_sec.map(|v| ("ops_per_sec", v)),
        "W3" => m.mb_per_sec.map(|v| ("mb_per_sec", v)),
        "W4" => m.gb_per_sec.map(|v| ("gb_per_sec", v)),
        _ => None,
    }
}

/// Walden divided by every other measured system, case by case.
fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for w in rows
        .iter()
        .filter(|r| r.system == "walden" && r.status == Status::Measured)
    {
        let Some((metric, mine)) = primary(&w.workload, &w.metrics) else {
            continue;
        };
        for o in rows.iter().filter(|o| {
            o.workload == w.workload
                && o.case == w.case
                && o.system != "walden"
                && o.status == Status::Measured
        }) {
            if let Some((_, other)) = primary(&o.workload, &o.metrics) {
                if other > 0.0 {
                    out.push(Ratio {
                        workload: w.workload.clone(),
                        case: w.case.clone(),
                        against: o.system.clone(),
                        metric: metric.into(),
                        walden: mine,
                        other,
                        ratio: mine / other,
                    });
                }
            }
        }
    }
    out
}

/// The targets, checked against this run (not evaluated in quick mode).
fn targets(r: &Report, quick: bool) -> Vec<Target> {
    let mut t = Vec::new();
    let ratio = |w: &str, case: &str, against: &str| {
        r.ratios
            .iter()
            .find(|x| x.workload == w && x.case == case && x.against == against)
            .map(|x| x.ratio)
    };
    let walden = |w: &str, case: &str| r.find(w, case, "walden").map(|row| row.metrics.clone());
    let mut push = |target: &str, measured: String, met: Option<bool>| {
        t.push(Target {
            target: target.into(),
            measured,
            met: if quick { None } else { met },
        });
    };
    let fmt_ratio = |x: Option<f64>| x.map_or("no data".to_string(), |v| format!("{v:.2}×"));

    let floor = ratio("W1", "128 B", "floor: pwrite+fdatasync, written file");
    push(
        "W1 128 B: walden ≥ 0.8× the floor (fdatasync into written blocks)",
        fmt_ratio(floor),
        floor.map(|v| v >= 0.8),
    );
    for peer in ["sqlite FULL", "okaywal", "rocksdb"] {
        let x = ratio("W1", "128 B", peer);
        push(
            &format!("W1 128 B: walden ahead of {peer}"),
            fmt_ratio(x),
            x.map(|v| v > 1.0),
        );
    }
    let rpf = walden("W2", "64 writers").and_then(|m| m.records_per_fsync);
    push(
        "W2 64 writers: ≥ 40 records per fsync",
        rpf.map_or("no data".into(), |v| format!("{v:.1}")),
        rpf.map(|v| v >= 40.0),
    );
    // Against the peers that are durable per commit, as walden is here; SQLite NORMAL is
    // listed for reference (it syncs only at checkpoints), and walden's own ablation rows
    // ("walden, regroup off") are not peers.
    let durable = |x: &&Ratio| {
        r.rows.iter().any(|row| {
            row.workload == x.workload
                && row.case == x.case
                && row.system == x.against
                && row.family != "walden"
                && row.durability != Durability::None
        })
    };
    let behind: Vec<String> = r
        .ratios
        .iter()
        .filter(|x| x.workload == "W2" && x.ratio <= 1.0)
        .filter(durable)
        .map(|x| format!("{} at {} ({:.2}×)", x.against, x.case, x.ratio))
        .collect();
    let any_w2 = r.ratios.iter().any(|x| x.workload == "W2");
    push(
        "W2: ahead of every durable peer at every concurrency",
        if !any_w2 {
            "no data".into()
        } else if behind.is_empty() {
            "ahead everywhere".into()
        } else {
            format!("behind: {}", behind.join(", "))
        },
        any_w2.then_some(behind.is_empty()),
    );
    for peer in ["rocksdb", "postgresql"] {
        let x = ratio("W2", "64 writers", peer);
        push(
            &format!("W2 64 writers: ≥ 3× {peer}"),
            fmt_ratio(x),
            x.map(|v| v >= 3.0),
        );
    }
    let x = ratio("W3", "64 KiB", "floor: sequential write");
    push(
        "W3 64 KiB: ≥ 0.8× the floor's sequential write",
        fmt_ratio(x),
        x.map(|v| v >= 0.8),
    );
    let rps = walden("W3", "128 B").and_then(|m| m.ops_per_sec);
    push(
        "W3 128 B: ≥ 1.5 M records/s",
        rps.map_or("no data".into(), |v| format!("{:.2} M/s", v / 1e6)),
        rps.map(|v| v >= 1.5e6),
    );
    let warm = walden("W4", "warm").and_then(|m| m.gb_per_sec);
    push(
        "W4 warm: ≥ 1 GB/s",
        warm.map_or("no data".into(), |v| format!("{v:.2} GB/s")),
        warm.map(|v| v >= 1.0),
    );
    let x = ratio("W4", "cold", "floor: sequential read");
    push(
        "W4 cold: ≥ 0.8× the floor's sequential read",
        fmt_ratio(x),
        x.map(|v| v >= 0.8),
    );
    let peak = ["warm", "cold"]
        .iter()
        .filter_map(|c| walden("W4", c).and_then(|m| m.peak_rss_mib))
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
    push(
        "W4: peak memory < 64 MiB",
        peak.map_or("no data".into(), |v| format!("{v:.1} MiB")),
        peak.map(|v| v < 64.0),
    );
    let x = ratio("W6", "64 writers", store_workload::LOG_SYSTEM);
    push(
        "W6 64 writers: store commits ≥ 0.8× walden-log's W2 rate for the same bytes",
        fmt_ratio(x),
        x.map(|v| v >= 0.8),
    );
    let flat = recovery_growth(r, store_workload::CHECKPOINTS);
    let linear = recovery_growth(r, store_workload::NO_CHECKPOINTS);
    push(
        "W6 recovery with checkpoints flat as the log grows (largest store ≤ 2× the smallest's time)",
        match (flat, linear) {
            (Some((a, b, grew)), Some((c, d, _))) => format!(
                "{a:.1} → {b:.1} ms as the log grew {grew:.0}× (without checkpoints {c:.1} → {d:.1} ms)"
            ),
            _ => "no data".into(),
        },
        flat.map(|(a, b, _)| b <= 2.0 * a),
    );
    // Walden answers on two endpoints, each its own row: HTTP (the ratio column's
    // "walden") and RESP, which the very client loop that drives Redis drives.
    let x = ratio("W7", "64 clients", "redis");
    push(
        "W7 64 clients: acknowledged durable writes ≥ Redis (appendfsync always), over HTTP",
        fmt_ratio(x),
        x.map(|v| v >= 1.0),
    );
    let x = ops_ratio(r, "W7", "64 clients", server_workload::RESP_SYSTEM, "redis");
    push(
        "W7 64 clients: the same over walden's RESP endpoint (Redis's protocol and client loop)",
        fmt_ratio(x),
        x.map(|v| v >= 1.0),
    );
    let x = ratio("W7", "64 clients", "postgresql");
    push(
        "W7 64 clients: ≥ 2× PostgreSQL (synchronous_commit on)",
        fmt_ratio(x),
        x.map(|v| v >= 2.0),
    );
    t
}

/// `system`'s ops/s over `other`'s in one case, both measured.
fn ops_ratio(r: &Report, w: &str, case: &str, system: &str, other: &str) -> Option<f64> {
    let ops = |sys: &str| {
        r.find(w, case, sys)
            .filter(|row| row.status == Status::Measured)
            .and_then(|row| row.metrics.ops_per_sec)
    };
    let (a, b) = (ops(system)?, ops(other)?);
    (b > 0.0).then(|| a / b)
}

/// W6 recovery of `system`: (ms at the smallest store, ms at the largest, how many times
/// more transactions the largest holds).
fn recovery_growth(r: &Report, system: &str) -> Option<(f64, f64, f64)> {
    let rows: Vec<&Row> = r
        .rows_of("W6")
        .filter(|x| x.system == system && x.status == Status::Measured)
        .collect();
    let first = rows.first()?;
    let last = rows.last()?;
    Some((
        first.metrics.recovery_ms?,
        last.metrics.recovery_ms?,
        last.metrics.count? / first.metrics.count?.max(1.0),
    ))
}
