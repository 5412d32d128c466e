//! The PostgreSQL peer: runs scripts/pg-peer.sh (a throwaway cluster on a Unix socket, with
//! its data directory on the bench disk) and turns its JSON into W1 and W2 rows.

use crate::args::Plan;
use crate::measure::median;
use crate::report::{Durability, Metrics, Row, Status};
use crate::workloads::absent;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Deserialize)]
struct ScriptOutput {
    status: String,
    reason: Option<String>,
    version: Option<String>,
    #[serde(default)]
    runs: Vec<PgRun>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PgRun {
    clients: usize,
    record_bytes: usize,
    transactions: f64,
    tps: f64,
    wal_syncs: Option<f64>,
    lat_p50_us: Option<f64>,
    lat_p99_us: Option<f64>,
    lat_p999_us: Option<f64>,
}

/// What the PostgreSQL peer produced.
pub(crate) enum PgOutcome {
    Ran { version: String, runs: Vec<PgRun> },
    Missing(String),
}

fn find_script(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    let candidates = [
        PathBuf::from("scripts/pg-peer.sh"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-peer.sh"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

/// Runs the script for the (clients, record size) pairs W1 and W2 need.
pub(crate) fn run(plan: &Plan, script: Option<&Path>, dir: &Path) -> PgOutcome {
    if !plan.wants("postgresql") {
        return PgOutcome::Missing("left out by --peers".into());
    }
    let Some(script) = find_script(script) else {
        return PgOutcome::Missing("scripts/pg-peer.sh not found (pass --pg-script)".into());
    };
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    if plan.runs("W1") {
        pairs.extend(plan.w1_sizes.iter().map(|&s| (1, s)));
    }
    if plan.runs("W2") {
        for &w in &plan.writers {
            if !pairs.contains(&(w, plan.w2_record_bytes)) {
                pairs.push((w, plan.w2_record_bytes));
            }
        }
    }
    if pairs.is_empty() {
        return PgOutcome::Missing("neither W1 nor W2 runs".into());
    }
    let runs = pairs
        .iter()
        .map(|(c, s)| format!("{c}:{s}"))
        .collect::<Vec<_>>()
        .join(",");
    let seconds = plan.measure.as_secs_f64().ceil().max(1.0) as u64;
    eprintln!(
        "[postgresql] {} runs of {seconds} s x {} reps",
        pairs.len(),
        plan.reps
    );
    let out = Command::new("bash")
        .arg(&script)
        .arg("--dir")
        .arg(dir)
        .args(["--seconds", &seconds.to_string()])
        .args(["--reps", &plan.reps.to_string()])
        .args(["--runs", &runs])
        .stderr(std::process::Stdio::inherit())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return PgOutcome::Missing(format!("could not run {}: {e}", script.display())),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
        return PgOutcome::Missing(format!(
            "{} printed no result (exit {})",
            script.display(),
            out.status
        ));
    };
    match serde_json::from_str::<ScriptOutput>(line) {
        Ok(o) if o.status == "ok" => PgOutcome::Ran {
            version: o.version.unwrap_or_default(),
            runs: o.runs,
        },
        Ok(o) => PgOutcome::Missing(o.reason.unwrap_or_else(|| "no reason given".into())),
        Err(e) => PgOutcome::Missing(format!("unreadable script output: {e}")),
    }
}

/// The W1 and W2 rows of the PostgreSQL peer.
pub(crate) fn rows(plan: &Plan, outcome: &PgOutcome) -> Vec<Row> {
    let (version, runs) = match outcome {
        PgOutcome::Missing(why) => {
            return ["W1", "W2"]
                .iter()
                .filter(|w| plan.runs(w))
                .map(|w| absent(w, "postgresql", "postgresql", Status::Missing, why.clone()))
                .collect();
        }
        PgOutcome::Ran { version, runs } => (version, runs),
    };
    let mut out = Vec::new();
    let mut cell = |workload: &str, case: String, clients: usize, size: usize| {
        let mine: Vec<&PgRun> = runs
            .iter()
            .filter(|r| r.clients == clients && r.record_bytes == size)
            .collect();
        let durability = if clients > 1 {
            Durability::GroupCommit
        } else {
            Durability::FsyncPerCommit
        };
        let metrics = Metrics {
            ops_per_sec: median(mine.iter().map(|r| Some(r.tps))),
            mb_per_sec: median(mine.iter().map(|r| Some(r.tps * size as f64 / 1e6))),
            p50_us: median(mine.iter().map(|r| r.lat_p50_us)),
            p99_us: median(mine.iter().map(|r| r.lat_p99_us)),
            p999_us: median(mine.iter().map(|r| r.lat_p999_us)),
            records_per_fsync: median(
                mine.iter()
                    .map(|r| r.wal_syncs.filter(|&s| s > 0.0).map(|s| r.transactions / s)),
            ),
            count: Some(mine.iter().map(|r| r.transactions).sum()),
            ..Metrics::default()
        };
        let (status, reason) = if mine.is_empty() {
            (Status::Missing, Some("no run for this case".to_string()))
        } else {
            (
                Status::Measured,
                Some(format!(
                    "PostgreSQL {version} via pgbench (one client per writer), synchronous_commit=on, one INSERT per transaction; records/fsync from pg_stat_wal.wal_sync"
                )),
            )
        };
        out.push(Row {
            workload: workload.to_string(),
            case,
            system: "postgresql".into(),
            family: "postgresql".into(),
            durability,
            status,
            reason,
            metrics,
            reps: mine.len() as u32,
        });
    };
    if plan.runs("W1") {
        for &s in &plan.w1_sizes {
            cell("W1", format!("{s} B"), 1, s);
        }
    }
    if plan.runs("W2") {
        for &w in &plan.writers {
            cell(
                "W2",
                crate::workloads::writers_case(w),
                w,
                plan.w2_record_bytes,
            );
        }
    }
    out
}
