//! `walden log verify`: a pass/fail check for scripts, with the location of any damage.

use super::health::{examine, Finding, Health};
use super::totals::Totals;
use crate::exit::Status;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::io::{self, Write};
use std::path::PathBuf;

/// The exit statuses of `verify`, in its `--help`.
pub const VERIFY_HELP: &str = "\
Exit status:
  0  clean: every checksum and link verified
  1  corruption: data that was durable is damaged; the default recovery mode refuses to
     open (choose --recovery-mode point-in-time or skip-corrupt explicitly to salvage)
  2  torn tail: the end holds a partial write; the default recovery mode cuts it, losing
     only records that were never acknowledged as durable
  3  error: missing directory, not a log, I/O failure, bad arguments";

/// Arguments of `walden log verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    dir: String,
    status: &'static str,
    exit_code: u8,
    /// `None` when a segment file is refused outright and nothing could be counted.
    totals: Option<Totals>,
    damage: Option<&'a Finding>,
}

/// Runs `walden log verify`.
pub fn run(args: &VerifyArgs) -> Result<Status> {
    let exam = examine(&args.dir)?;
    let status = match exam.health {
        Health::Clean => Status::Success,
        Health::TornTail(_) => Status::TornTail,
        Health::Corruption(_) => Status::Corruption,
    };
    let totals = exam.inspection.as_ref().map(Totals::of);
    let mut out = io::stdout().lock();
    if args.json {
        let report = Report {
            dir: args.dir.display().to_string(),
            status: exam.health.label(),
            exit_code: status as u8,
            totals,
            damage: exam.health.finding(),
        };
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        match (exam.health.finding(), totals) {
            (None, Some(t)) => writeln!(out, "clean: {}", t.summary())?,
            (None, None) => writeln!(out, "clean")?,
            (Some(f), totals) => {
                writeln!(out, "{}", exam.health.summary())?;
                writeln!(out, "recovery: {}", f.recovery)?;
                if let Some(t) = totals {
                    writeln!(out, "before the damage: {}", t.summary())?;
                }
            }
        }
    }
    out.flush()?;
    Ok(status)
}
