//! The verdict shared by `verify` and `inspect`: is the log clean, does it end in a torn
//! tail, or is durable data damaged, and what would default recovery do about it.

use super::check_dir;
use anyhow::Result;
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use walden_log::storage::StdStorage;
use walden_log::{DamageKind, Inspection, Location, Lsn};

/// What default recovery says about torn tails (the words the operator acts on).
const TORN_TAIL_ADVICE: &str = "the default recovery mode cuts the log here: records from LSN {lsn} on were never acknowledged as durable";
/// What default recovery says about corruption.
const CORRUPTION_ADVICE: &str = "the default recovery mode refuses to open; choose --recovery-mode point-in-time or skip-corrupt explicitly to salvage";

/// Where damage is and why it is damage.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The segment file.
    pub segment_file: PathBuf,
    /// Byte offset inside it.
    pub offset: u64,
    /// The LSN expected there.
    pub lsn: u64,
    /// What is wrong.
    pub reason: String,
    /// What the default recovery mode would do.
    pub recovery: String,
}

impl Finding {
    fn at(location: &Location, reason: String, recovery: String) -> Self {
        Finding {
            segment_file: location.path.clone(),
            offset: location.offset,
            lsn: location.lsn.0,
            reason,
            recovery,
        }
    }
}

/// The health of a log directory.
#[derive(Debug, Clone)]
pub enum Health {
    /// Every checksum and link verified.
    Clean,
    /// Damage that nothing proves was ever durable; default recovery cuts it.
    TornTail(Finding),
    /// Damage to durable data; default recovery refuses to open.
    Corruption(Finding),
}

impl Health {
    /// "clean", "torn_tail" or "corruption", for JSON.
    pub fn label(&self) -> &'static str {
        match self {
            Health::Clean => "clean",
            Health::TornTail(_) => "torn_tail",
            Health::Corruption(_) => "corruption",
        }
    }

    /// The finding, unless clean.
    pub fn finding(&self) -> Option<&Finding> {
        match self {
            Health::Clean => None,
            Health::TornTail(f) | Health::Corruption(f) => Some(f),
        }
    }

    /// One line: "clean", or "torn tail at FILE byte offset N (LSN L): REASON".
    pub fn summary(&self) -> String {
        let (what, f) = match self {
            Health::Clean => return "clean".into(),
            Health::TornTail(f) => ("torn tail", f),
            Health::Corruption(f) => ("corruption", f),
        };
        format!(
            "{what} at {} byte offset {} (LSN {}): {}",
            f.segment_file.display(),
            f.offset,
            f.lsn,
            f.reason
        )
    }
}

/// A log examined: the inspection when the directory could be read as a log, and its health.
#[derive(Debug)]
pub struct Examination {
    /// `None` only when the log is so damaged (a misnamed or foreign segment file) that no
    /// scan could finish; `health` then says why.
    pub inspection: Option<Inspection>,
    /// The verdict.
    pub health: Health,
}

/// Inspects `dir` and judges it. Errors are for a directory that is not a log at all, or
/// that cannot be read.
pub fn examine(dir: &Path) -> Result<Examination> {
    check_dir(dir)?;
    let inspection = match walden_log::inspect_dir(&StdStorage::new(), dir) {
        Ok(i) => i,
        // Refused in every recovery mode (a segment of another log, a misnamed file): there
        // is no inspection, but there is a location to report.
        Err(walden_log::Error::Corruption { location, reason }) => {
            let health =
                Health::Corruption(Finding::at(&location, reason, CORRUPTION_ADVICE.into()));
            return Ok(Examination {
                inspection: None,
                health,
            });
        }
        Err(e) => return Err(e.into()),
    };
    // No readable segment header at all: nothing here was ever a log. (Segments may also
    // be empty because damage before the first one cuts them all; that is damage to report.)
    if inspection.log_id.is_none() {
        let reason = match inspection.discarded_files.len() {
            0 => "no initialized segment file (*.wal)".to_string(),
            n => format!(
                "no initialized segment file; {n} file(s) named like segments have no valid header"
            ),
        };
        return Err(walden_log::Error::NotALog {
            dir: dir.to_path_buf(),
            reason,
        }
        .into());
    }
    let health = judge(&inspection);
    Ok(Examination {
        inspection: Some(inspection),
        health,
    })
}

fn judge(inspection: &Inspection) -> Health {
    let Some((damage, kind)) = &inspection.damage else {
        return judge_discarded(inspection);
    };
    let at = &damage.location;
    match kind {
        DamageKind::TornTail => {
            let advice = torn_tail_advice(at.lsn);
            Health::TornTail(Finding::at(at, damage.reason.clone(), advice))
        }
        // The refusal's reason names the frame that proves the data was durable.
        DamageKind::Corruption { reason } => {
            Health::Corruption(Finding::at(at, reason.clone(), CORRUPTION_ADVICE.into()))
        }
    }
}

/// walden-log reports no damage when the only problem is a segment file after the last
/// readable one whose header copies are both unreadable, yet recovery discards that file
/// with whatever it held. A clean verdict would hide that, so such a file counts as a torn
/// tail (what default recovery does with it). Blank files (prepared, never used) are fine.
fn judge_discarded(inspection: &Inspection) -> Health {
    let Some(path) = inspection.discarded_files.iter().find(|p| !is_blank(p)) else {
        return Health::Clean;
    };
    let lsn = inspection.next_lsn;
    let reason = "segment file holds data but neither header copy is valid".to_string();
    // Not the usual torn-tail advice: nothing proves this file's records were unacknowledged.
    let advice = format!(
        "the default recovery mode discards this file and continues the log at LSN {lsn}: \
         any records it held are lost, acknowledged or not"
    );
    let at = Location {
        path: path.clone(),
        offset: 0,
        lsn,
    };
    Health::TornTail(Finding::at(&at, reason, advice))
}

/// True when the header page (first 4 KiB) is all zeros. An unreadable file is not blank:
/// when in doubt, report.
fn is_blank(path: &Path) -> bool {
    let mut page = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| {
        f.take(walden_log::format::DATA_OFFSET)
            .read_to_end(&mut page)
    });
    read.is_ok() && page.iter().all(|&b| b == 0)
}

fn torn_tail_advice(lsn: Lsn) -> String {
    TORN_TAIL_ADVICE.replace("{lsn}", &lsn.to_string())
}
