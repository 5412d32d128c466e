//! The counts `verify` and `inspect` print for the part of a log that verified.

use serde::Serialize;
use walden_log::Inspection;

/// Counts over the segments that verified.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Segments holding verified records.
    pub segments: usize,
    /// Verified records.
    pub records: u64,
    /// Frame bytes verified.
    pub bytes_verified: u64,
    /// First LSN in the log.
    pub first_lsn: u64,
    /// Last verified LSN; `None` when the log holds no record.
    pub last_lsn: Option<u64>,
    /// Where the next append would go (the durable end).
    pub next_lsn: u64,
}

impl Totals {
    /// The totals of an inspection.
    pub fn of(i: &Inspection) -> Self {
        let next_lsn = i.next_lsn.0;
        let first_lsn = i.segments.first().map_or(next_lsn, |s| s.first_lsn.0);
        let records = next_lsn.saturating_sub(first_lsn);
        Totals {
            segments: i.segments.len(),
            records,
            bytes_verified: i.bytes_scanned,
            first_lsn,
            last_lsn: (records > 0).then(|| next_lsn - 1),
            next_lsn,
        }
    }

    /// "3 segments, 200 records (LSN 1..=200), 12345 bytes verified".
    pub fn summary(&self) -> String {
        let range = match self.last_lsn {
            Some(last) => format!("LSN {}..={last}", self.first_lsn),
            None => format!("empty, next LSN {}", self.next_lsn),
        };
        format!(
            "{} segment{}, {} record{} ({range}), {} bytes verified",
            self.segments,
            plural(self.segments as u64),
            self.records,
            plural(self.records),
            self.bytes_verified
        )
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
