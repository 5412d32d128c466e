//! `walden log inspect`: the operator's view of a log directory: its segments, its durable
//! end, what recovery would discard, and its health.

use super::file_name;
use super::health::{examine, Examination, Finding};
use super::totals::Totals;
use crate::exit::Status;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::io::{self, Write};
use std::path::PathBuf;
use walden_log::{InspectedSegment, Inspection};

/// The `--help` epilogue of `inspect`.
pub const INSPECT_HELP: &str = "\
Exit status:
  0  the directory was read as a log and described, whatever its health
     (use `walden log verify` for a status that reflects damage)
  3  error: missing directory, not a log, I/O failure, bad arguments";

/// Arguments of `walden log inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One segment row.
#[derive(Debug, Serialize)]
struct Row {
    id: u64,
    file: String,
    first_lsn: u64,
    /// `None` for a segment that holds no record yet.
    last_lsn: Option<u64>,
    records: u64,
    file_bytes: u64,
    used_bytes: u64,
    /// The generation salt, hex.
    salt: String,
}

impl Row {
    fn of(s: &InspectedSegment) -> Self {
        let records = s.end_lsn.0.saturating_sub(s.first_lsn.0);
        Row {
            id: s.id,
            file: file_name(&s.path),
            first_lsn: s.first_lsn.0,
            last_lsn: (records > 0).then(|| s.end_lsn.0 - 1),
            records,
            file_bytes: s.file_bytes,
            used_bytes: s.used_bytes,
            salt: hex(s.salt),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    dir: String,
    log_id: Option<String>,
    segments: Vec<Row>,
    spare_files: usize,
    free_files: usize,
    next_lsn: Option<u64>,
    discarded_files: Vec<String>,
    totals: Option<Totals>,
    health: &'static str,
    damage: Option<&'a Finding>,
    /// The log's SYNC_FAILED marker is present (see `Inspection::sync_failed`).
    sync_failed: bool,
}

/// Runs `walden log inspect`.
pub fn run(args: &InspectArgs) -> Result<Status> {
    let exam = examine(&args.dir)?;
    let report = report(args, &exam);
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &report, &exam)?;
    }
    out.flush()?;
    Ok(Status::Success)
}

fn report<'a>(args: &InspectArgs, exam: &'a Examination) -> Report<'a> {
    let i: Option<&Inspection> = exam.inspection.as_ref();
    Report {
        dir: args.dir.display().to_string(),
        log_id: i.and_then(|i| i.log_id).map(hex),
        segments: i.map_or_else(Vec::new, |i| i.segments.iter().map(Row::of).collect()),
        spare_files: i.map_or(0, |i| i.spare_files),
        free_files: i.map_or(0, |i| i.free_files),
        next_lsn: i.map(|i| i.next_lsn.0),
        discarded_files: i.map_or_else(Vec::new, |i| {
            i.discarded_files.iter().map(|p| file_name(p)).collect()
        }),
        totals: i.map(Totals::of),
        health: exam.health.label(),
        damage: exam.health.finding(),
        sync_failed: i.is_some_and(|i| i.sync_failed),
    }
}

fn write_text(out: &mut impl Write, r: &Report<'_>, exam: &Examination) -> io::Result<()> {
    let log_id = r.log_id.as_deref().unwrap_or("unknown");
    writeln!(out, "log {} (id {log_id})", r.dir)?;
    if r.segments.is_empty() {
        writeln!(out, "segments: none could be verified")?;
    } else {
        write_table(out, &r.segments)?;
    }
    if let Some(t) = &r.totals {
        writeln!(out, "totals: {}", t.summary())?;
        writeln!(out, "durable end: next LSN {}", t.next_lsn)?;
    }
    writeln!(
        out,
        "spare files: {}, free files: {}",
        r.spare_files, r.free_files
    )?;
    if r.discarded_files.is_empty() {
        writeln!(out, "recovery would discard: none")?;
    } else {
        writeln!(
            out,
            "recovery would discard: {}",
            r.discarded_files.join(", ")
        )?;
    }
    if r.sync_failed {
        writeln!(
            out,
            "sync failure: a failed write or fsync poisoned this log (its {} marker is \
             present); read past the page cache; the next writable open does the same, then \
             removes the marker",
            walden_log::SYNC_FAILED_MARKER
        )?;
    }
    writeln!(out, "health: {}", exam.health.summary())?;
    if let Some(f) = r.damage {
        writeln!(out, "recovery: {}", f.recovery)?;
    }
    Ok(())
}

/// A table with columns as wide as their widest cell; numbers right-aligned.
fn write_table(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    const HEADS: [&str; 8] = [
        "id",
        "file",
        "first LSN",
        "last LSN",
        "records",
        "file bytes",
        "used bytes",
        "salt",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.file.clone(),
                r.first_lsn.to_string(),
                r.last_lsn
                    .map_or_else(|| "-".to_string(), |l| l.to_string()),
                r.records.to_string(),
                r.file_bytes.to_string(),
                r.used_bytes.to_string(),
                r.salt.clone(),
            ]
        })
        .collect();
    let mut widths = HEADS.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cols: [&str; 8]| {
        let mut s = String::new();
        for (i, (cell, w)) in cols.iter().zip(widths).enumerate() {
            let sep = if i == 0 { "" } else { "  " };
            // The file and salt columns are text; the rest are numbers.
            if i == 1 || i == 7 {
                s.push_str(&format!("{sep}{cell:<w$}"));
            } else {
                s.push_str(&format!("{sep}{cell:>w$}"));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(HEADS))?;
    for row in &cells {
        writeln!(out, "{}", line(row.each_ref().map(String::as_str)))?;
    }
    Ok(())
}

fn hex(v: u64) -> String {
    format!("{v:#018x}")
}
