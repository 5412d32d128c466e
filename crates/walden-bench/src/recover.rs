//! W4 recovery: build a log, then time `Wal::open` (which verifies every frame) with the
//! page cache warm and cold, against the floor's sequential read of the same files. Peak
//! memory is the VmHWM of a child process that does nothing but open the log.

use crate::args::Plan;
use crate::engines::wait_for_spare;
use crate::measure::{evict, evict_dir, proc_status_kib, record_bytes, reset_peak_rss};
use crate::report::{Durability, Metrics, Row, Status};
use crate::workloads::{absent, Cell};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What one recovery (one `Wal::open`) measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoverOnly {
    /// Seconds `Wal::open` took.
    pub open_secs: f64,
    /// Frame bytes recovery verified.
    pub bytes_scanned: u64,
    /// Segments holding records.
    pub segments: usize,
    /// Peak resident memory (VmHWM) at the end of the open, KiB.
    pub peak_rss_kib: u64,
    /// Peak resident memory before the open, KiB (the program itself).
    pub baseline_rss_kib: u64,
}

/// Opens the log in `dir` once and reports how long it took and the process's peak memory.
/// Run in a fresh process (`walden-bench recover-only DIR --segment-bytes N`) so the peak is
/// recovery's own.
pub fn recover_only(dir: &Path, segment_bytes: u64) -> anyhow::Result<RecoverOnly> {
    let baseline_rss_kib = proc_status_kib("VmHWM").unwrap_or(0);
    let started = Instant::now();
    let wal = walden_log::Wal::open(walden_log::Options::new(dir).segment_bytes(segment_bytes))
        .with_context(|| format!("open the log in {}", dir.display()))?;
    let open_secs = started.elapsed().as_secs_f64();
    let peak_rss_kib = proc_status_kib("VmHWM").unwrap_or(0);
    let report = wal.recovery_report();
    let out = RecoverOnly {
        open_secs,
        bytes_scanned: report.bytes_scanned,
        segments: report.segments,
        peak_rss_kib,
        baseline_rss_kib,
    };
    wal.close()?;
    Ok(out)
}

/// How W4 gets a fresh process to open the log in.
#[derive(Debug, Clone)]
pub(crate) enum Helper {
    /// A binary that understands `recover-only`.
    Exe(PathBuf),
    /// None found: open in this process after resetting its peak RSS.
    InProcess(String),
}

/// The helper: the flag, else this program if it is walden-bench, else a walden-bench
/// binary beside it (or one directory up, for test binaries in target/*/deps).
pub(crate) fn find_helper(flag: Option<&Path>) -> Helper {
    if let Some(p) = flag {
        return Helper::Exe(p.to_path_buf());
    }
    let Ok(me) = std::env::current_exe() else {
        return Helper::InProcess("current_exe unknown".into());
    };
    if me
        .file_stem()
        .is_some_and(|s| s.to_string_lossy() == "walden-bench")
    {
        return Helper::Exe(me);
    }
    let mut dir = me.parent();
    for _ in 0..2 {
        if let Some(d) = dir {
            let candidate = d.join("walden-bench");
            if candidate.is_file() {
                return Helper::Exe(candidate);
            }
            dir = d.parent();
        }
    }
    Helper::InProcess("no walden-bench binary found beside this program".into())
}

fn recover_with(helper: &Helper, dir: &Path, segment_bytes: u64) -> anyhow::Result<RecoverOnly> {
    match helper {
        Helper::Exe(exe) => {
            let out = Command::new(exe)
                .arg("recover-only")
                .arg(dir)
                .arg("--segment-bytes")
                .arg(segment_bytes.to_string())
                .output()
                .with_context(|| format!("run {}", exe.display()))?;
            if !out.status.success() {
                bail!(
                    "{} recover-only failed: {}",
                    exe.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout.lines().last().unwrap_or_default();
            serde_json::from_str(line)
                .with_context(|| format!("parse recover-only output {line:?}"))
        }
        Helper::InProcess(_) => {
            reset_peak_rss();
            recover_only(dir, segment_bytes)
        }
    }
}

/// Appends buffered records until the log holds `bytes` of payload; returns the live
/// segment files.
fn build_log(dir: &Path, plan: &Plan) -> anyhow::Result<Vec<PathBuf>> {
    let options = walden_log::Options::new(dir)
        .segment_bytes(plan.segment_bytes)
        .durability(walden_log::Durability::Buffered);
    let wal = walden_log::Wal::open(options).context("open the W4 log")?;
    let records: Vec<Vec<u8>> = (0..16)
        .map(|i| record_bytes(plan.recovery_record_bytes, 100 + i))
        .collect();
    let mut appended = 0u64;
    let mut i = 0usize;
    while appended < plan.recovery_bytes {
        let rec = &records[i % records.len()];
        wal.append(rec)?;
        appended += rec.len() as u64;
        i += 1;
    }
    wal.sync()?;
    wait_for_spare(&wal, Duration::from_secs(120));
    let files = wal.segments().into_iter().map(|s| s.path).collect();
    wal.close()?;
    Ok(files)
}

/// Reads `files` sequentially in 1 MiB reads; returns (bytes, seconds).
fn floor_read(files: &[PathBuf]) -> anyhow::Result<(u64, f64)> {
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut total = 0u64;
    for path in files {
        let mut f = File::open(path).with_context(|| format!("open {}", path.display()))?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok((total, started.elapsed().as_secs_f64()))
}

/// W4: warm and cold recovery against the floor's sequential read.
pub(crate) fn w4(
    plan: &Plan,
    root: &Path,
    helper: &Helper,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let dir = root.join("w4-log");
    eprintln!(
        "[W4] building a log of {} MiB ({} B records)",
        plan.recovery_bytes >> 20,
        plan.recovery_record_bytes
    );
    let files = build_log(&dir, plan)?;
    // A first open settles the directory (spares, released files) before anything is timed.
    recover_only(&dir, plan.segment_bytes)?;
    let note = match helper {
        Helper::Exe(p) => format!(
            "Wal::open in a child process ({} recover-only); peak RSS is that process's VmHWM, RSS added is the VmHWM minus the one before the open (the program's own); cold and warm opens alternate with the floor's reads in which goes first",
            p.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ),
        Helper::InProcess(why) => format!(
            "Wal::open in the bench process ({why}); peak RSS is its VmHWM after a reset, so it includes the bench itself"
        ),
    };
    let mut cells = Vec::new();
    for case in ["warm", "cold"] {
        let mut walden = Cell::new("W4", case, "walden", "walden", Durability::NotApplicable);
        walden.note = Some(note.clone());
        let mut floor = Cell::new(
            "W4",
            case,
            "floor: sequential read",
            "floor",
            Durability::NotApplicable,
        );
        floor.note = Some("1 MiB reads of the same segment files".into());
        cells.push((walden, floor));
    }
    for rep in 0..plan.reps {
        // Which of walden and the floor reads cold first alternates with the repetition:
        // the floor's cold read varied 0.82-2.16 GB/s with what was read just before it.
        let ((cold, warm), (cold_floor, warm_floor)) = if rep % 2 == 1 {
            let walden = recover_cold_then_warm(helper, &dir, plan.segment_bytes)?;
            (walden, floor_cold_then_warm(&files)?)
        } else {
            let floor = floor_cold_then_warm(&files)?;
            (
                recover_cold_then_warm(helper, &dir, plan.segment_bytes)?,
                floor,
            )
        };
        for ((walden, floor), (r, floor_m)) in cells
            .iter_mut()
            .zip([(warm, warm_floor), (cold, cold_floor)])
        {
            let m = Metrics {
                gb_per_sec: Some(r.bytes_scanned as f64 / r.open_secs.max(1e-9) / 1e9),
                peak_rss_mib: Some(r.peak_rss_kib as f64 / 1024.0),
                rss_added_mib: Some(
                    r.peak_rss_kib.saturating_sub(r.baseline_rss_kib) as f64 / 1024.0,
                ),
                count: Some(r.bytes_scanned as f64),
                ..Metrics::default()
            };
            report_progress(walden, rep, plan.reps, &m, r.segments);
            walden.samples.push(m);
            report_progress(floor, rep, plan.reps, &floor_m, files.len());
            floor.samples.push(floor_m);
        }
    }
    // The log goes with the bench directory (kept with --keep, for profiling recovery).
    for (walden, floor) in cells {
        rows.push(walden.into_row());
        rows.push(floor.into_row());
    }
    for (system, family) in [
        ("sqlite", "sqlite"),
        ("okaywal", "okaywal"),
        ("rocksdb", "rocksdb"),
        ("postgresql", "postgresql"),
    ] {
        let (status, reason) = if plan.wants(family) {
            (
                Status::NotApplicable,
                "the issue sets W4 against the floor's sequential read; peers' recovery is not measured",
            )
        } else {
            (Status::Missing, "left out by --peers")
        };
        rows.push(absent("W4", system, family, status, reason));
    }
    Ok(())
}

/// Opens the log with the page cache emptied of it, then again with it warm: (cold, warm).
fn recover_cold_then_warm(
    helper: &Helper,
    dir: &Path,
    segment_bytes: u64,
) -> anyhow::Result<(RecoverOnly, RecoverOnly)> {
    evict_dir(dir)?;
    let cold = recover_with(helper, dir, segment_bytes)?;
    let warm = recover_with(helper, dir, segment_bytes)?;
    Ok((cold, warm))
}

/// Reads the segment files with the page cache emptied of them, then again: (cold, warm).
fn floor_cold_then_warm(files: &[PathBuf]) -> anyhow::Result<(Metrics, Metrics)> {
    for path in files {
        evict(path)?;
    }
    let (bytes, secs) = floor_read(files)?;
    let cold = gb(bytes, secs);
    let (bytes, secs) = floor_read(files)?;
    Ok((cold, gb(bytes, secs)))
}

fn gb(bytes: u64, secs: f64) -> Metrics {
    Metrics {
        gb_per_sec: Some(bytes as f64 / secs.max(1e-9) / 1e9),
        count: Some(bytes as f64),
        ..Metrics::default()
    }
}

fn report_progress(cell: &Cell, rep: u32, reps: u32, m: &Metrics, segments: usize) {
    eprintln!(
        "[W4 {}] {} rep {}/{}: {:.2} GB/s over {} segments{}{}",
        cell.case,
        cell.system,
        rep + 1,
        reps,
        m.gb_per_sec.unwrap_or(0.0),
        segments,
        m.peak_rss_mib
            .map_or_else(String::new, |p| format!(", peak RSS {p:.1} MiB")),
        m.rss_added_mib.map_or_else(String::new, |a| format!(
            " (+{a:.1} MiB over the program's own)"
        ))
    );
}
