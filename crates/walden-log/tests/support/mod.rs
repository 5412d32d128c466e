//! Shared helpers for tests that run the log on [`SimStorage`] and check what survives a
//! crash against a model of what was appended and acknowledged.
//!
//! Any test file may `mod support;` this; each uses a different subset, hence the
//! `dead_code` allowance below.
//!
//! The pieces:
//! - [`sim_options`], [`open`]: a log in [`DIR`] on a [`SimStorage`], deterministic by
//!   default (segments prepared inline, not on a thread).
//! - [`Model`]: what the workload appended and what the log acknowledged, as the durability
//!   contract (ENGINEERING.md section 1) defines it, and [`Model::check`], which says whether
//!   a recovered log is allowed by it.
//! - [`recover`]: reopen after a crash and read every record back into a [`Recovered`].
//! - [`snapshot`], [`restore`]: copy a crashed (fully durable) file system, so one crash
//!   state can be recovered many times, for example with a crash inside each recovery.
//!
//! Seeds, the `WALDEN_CRASH_*` knobs and damage patterns are walden-testkit's.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use walden_log::storage::SimStorage;
use walden_log::{Lsn, Options, Wal};
use walden_testkit::seeds::mix;
use walden_testkit::simfs::{self, Snapshot};

/// The log directory of every simulated log.
pub const DIR: &str = "/sim/wal";

/// The smallest segment size the engine accepts: rotations after a few KiB.
pub const SMALL_SEGMENT_BYTES: u64 = 16 << 10;

/// [`DIR`] as a path.
pub fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

/// Options for a log in [`DIR`] with `segment_bytes` segments, prepared inline (so that a
/// seed and a sequence of calls replay exactly). Everything else is the default, including
/// the recovery mode (`TolerateTornTail`).
pub fn sim_options(segment_bytes: u64) -> Options {
    Options::new(DIR)
        .segment_bytes(segment_bytes)
        .prepare_in_background(false)
}

/// Opens (creating or recovering) the log `options` describes on `sim`.
pub fn open(sim: &SimStorage, options: Options) -> walden_log::Result<Wal> {
    Wal::open_with(options, simfs::shared(sim), &mut |_| {})
}

/// `len` bytes that identify `tag` (text naming the writer, the record and its round): the
/// tag itself when it fits, then bytes derived from the whole tag. Shorter records are all
/// derived bytes, so even 1-byte records of different tags differ with probability 255/256.
pub fn record_bytes(tag: &str, len: usize) -> Vec<u8> {
    let mut state = tag
        .bytes()
        .fold(mix(7, tag.len() as u64), |h, b| mix(h, u64::from(b)));
    let mut out: Vec<u8> = if tag.len() <= len {
        tag.as_bytes().to_vec()
    } else {
        Vec::new()
    };
    while out.len() < len {
        state = mix(state, out.len() as u64);
        out.push(state as u8);
    }
    out
}

/// What a workload appended and what the log acknowledged, per the durability contract:
/// - Every appended record has its LSN and bytes in `known`, or, when a failed call never
///   told its LSN (concurrent writers), its bytes in `unplaced`. A call that failed may or
///   may not have reached the log, so its records are allowed but not required.
/// - `acked` is the highest LSN acknowledged: an append at `Durability::Sync` that returned
///   `Ok`, or a `sync()` that returned `Ok`, acknowledges its LSN and every LSN before it.
/// - `release_floor` is the highest LSN passed to a `truncate_before` that was called (even
///   if it failed: a crash in the middle may already have released segments). Records below
///   it may be gone; records at or above it must not be.
/// - `batches` lists the LSN ranges of atomic batches: a recovered log never holds part of one.
///
/// A recovered log `[first, end)` (records `first..end`, next append `end`) is allowed when:
/// every record in it was appended with exactly those bytes at that LSN (no stale record,
/// no reordering, no hole: the reader yields dense LSNs and each is checked); `end > acked`
/// (every acknowledged LSN is still covered: none lost, and LSNs never go backwards);
/// `first <= max(1, release_floor)` (nothing not released is missing at the head); and
/// neither `first` nor `end` falls strictly inside a batch.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Appended records by LSN.
    pub known: BTreeMap<u64, Vec<u8>>,
    /// Records of failed calls whose LSN is unknown (each may appear at most once).
    pub unplaced: Vec<Vec<u8>>,
    /// Highest acknowledged LSN (0 for none).
    pub acked: u64,
    /// Highest `truncate_before` argument of any call made (0 for none).
    pub release_floor: u64,
    /// LSN ranges of atomic batches.
    pub batches: Vec<Range<u64>>,
    /// The LSN the next append gets (single writer only).
    pub next: u64,
}

impl Model {
    /// An empty log: the next append gets LSN 1.
    pub fn new() -> Self {
        Model {
            next: 1,
            ..Model::default()
        }
    }

    /// Records that `records` were handed to the log as one frame at `self.next` (call it
    /// before the append, since a failed append may still have reached the log).
    pub fn append(&mut self, records: &[Vec<u8>]) -> u64 {
        let first = self.next;
        for (i, r) in records.iter().enumerate() {
            self.known.insert(first + i as u64, r.clone());
        }
        if records.len() > 1 {
            self.batches.push(first..first + records.len() as u64);
        }
        self.next = first + records.len() as u64;
        first
    }

    /// Everything up to `lsn` is acknowledged.
    pub fn ack(&mut self, lsn: u64) {
        self.acked = self.acked.max(lsn);
    }

    /// A `truncate_before(lsn)` is being called.
    pub fn release_before(&mut self, lsn: u64) {
        self.release_floor = self.release_floor.max(lsn);
    }

    /// A `truncate_after(lsn)` is being called: acknowledged records after `lsn` may go.
    /// Call [`Model::cut_after`] too once it returns `Ok`.
    pub fn truncating_after(&mut self, lsn: u64) {
        self.acked = self.acked.min(lsn);
    }

    /// A `truncate_after(lsn)` returned `Ok`: records after `lsn` are gone for good and the
    /// next append gets `lsn + 1`. If it failed instead, the log may end anywhere from the
    /// cut to the old end, which the model (with [`Model::truncating_after`]) already allows.
    pub fn cut_after(&mut self, lsn: u64) {
        self.acked = self.acked.min(lsn);
        self.known.retain(|&l, _| l <= lsn);
        self.batches.retain(|b| b.end <= lsn + 1);
        self.next = lsn + 1;
    }

    /// The model of a log that recovered as `r`: everything in it is durable now (the open
    /// synced it), so a later crash must keep all of it. Records below `r.first` stay known
    /// (they may not come back, but if they do they must be the right ones).
    pub fn after_recovery(&self, r: &Recovered) -> Model {
        let mut known: BTreeMap<u64, Vec<u8>> = self
            .known
            .range(..r.first)
            .map(|(l, d)| (*l, d.clone()))
            .collect();
        known.extend(r.records.iter().map(|(l, d)| (*l, d.clone())));
        Model {
            known,
            unplaced: Vec::new(),
            acked: r.end - 1,
            release_floor: r.first,
            batches: self
                .batches
                .iter()
                .filter(|b| b.end <= r.end)
                .cloned()
                .collect(),
            next: r.end,
        }
    }

    /// Whether the recovered log `r` is one the contract allows; `Err` says why not.
    pub fn check(&self, r: &Recovered) -> Result<(), String> {
        if r.first == 0 || r.first > r.end {
            return Err(format!(
                "impossible range: first LSN {} next LSN {}",
                r.first, r.end
            ));
        }
        if r.end <= self.acked {
            return Err(format!(
                "acknowledged records lost: the log recovered up to LSN {} (next LSN {}) but \
                 LSN {} was acknowledged",
                r.end - 1,
                r.end,
                self.acked
            ));
        }
        let head_limit = self.release_floor.max(1);
        if r.first > head_limit {
            return Err(format!(
                "records missing at the head: the log starts at LSN {} but nothing before \
                 LSN {head_limit} was released",
                r.first
            ));
        }
        let mut unplaced: Vec<&Vec<u8>> = self.unplaced.iter().collect();
        let mut expect = r.first;
        for (lsn, data) in &r.records {
            if *lsn != expect {
                return Err(format!(
                    "hole or reordering: read LSN {lsn} where LSN {expect} belongs"
                ));
            }
            expect += 1;
            match self.known.get(lsn) {
                Some(want) if want == data => {}
                Some(want) => {
                    return Err(format!(
                        "LSN {lsn} holds {} bytes {} but {} bytes {} were appended there \
                         (a stale or corrupt record)",
                        data.len(),
                        preview(data),
                        want.len(),
                        preview(want)
                    ))
                }
                None => match unplaced.iter().position(|u| *u == data) {
                    Some(i) => {
                        unplaced.swap_remove(i);
                    }
                    None => {
                        return Err(format!(
                            "LSN {lsn} holds {} bytes {} that were never appended",
                            data.len(),
                            preview(data)
                        ))
                    }
                },
            }
        }
        if expect != r.end {
            return Err(format!(
                "read {} records from LSN {} but the log says the next LSN is {}",
                r.records.len(),
                r.first,
                r.end
            ));
        }
        for b in &self.batches {
            for (what, at) in [("starts", r.first), ("ends", r.end)] {
                if b.start < at && at < b.end {
                    return Err(format!(
                        "batch {}..={} is torn: the recovered log {what} at LSN {at}",
                        b.start,
                        b.end - 1
                    ));
                }
            }
        }
        Ok(())
    }

    /// One line describing the model, for failure messages.
    pub fn summary(&self) -> String {
        format!(
            "model: {} records appended (last LSN {}), acked through LSN {}, released below \
             LSN {}, {} batches, {} records of failed calls with unknown LSN",
            self.known.len(),
            self.known.keys().next_back().copied().unwrap_or(0),
            self.acked,
            self.release_floor,
            self.batches.len(),
            self.unplaced.len()
        )
    }
}

/// A log as recovery left it: records `first..end`, in order.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// `wal.first_lsn()`.
    pub first: u64,
    /// The LSN the next append gets (`wal.next_lsn()`).
    pub end: u64,
    /// Every record read from `first`, with its LSN.
    pub records: Vec<(u64, Vec<u8>)>,
}

/// Opens the log with `options` on `sim` (after a crash) and reads every record. `Err`
/// describes a refusal to open, a read failure, or a log whose own counters disagree.
pub fn recover(sim: &SimStorage, options: Options) -> Result<(Wal, Recovered), String> {
    let wal = open(sim, options).map_err(|e| format!("recovery refused to open: {e}"))?;
    let recovered = read_all(&wal)?;
    Ok((wal, recovered))
}

/// Reads every record of an open log; checks the log's counters against what was read.
pub fn read_all(wal: &Wal) -> Result<Recovered, String> {
    let first = wal.first_lsn().0;
    let end = wal.next_lsn().0;
    let durable = wal.durable_lsn().0;
    if durable + 1 != end {
        return Err(format!(
            "after recovery the durable LSN is {durable} but the next LSN is {end}"
        ));
    }
    let report = wal.recovery_report();
    if report.next_lsn.0 != end || report.first_lsn.0 != first {
        return Err(format!(
            "recovery report says LSNs {}..{} but the log says {first}..{end}",
            report.first_lsn, report.next_lsn
        ));
    }
    let reader = wal
        .read_from(Lsn(first))
        .map_err(|e| format!("read_from({first}) failed after recovery: {e}"))?;
    let mut records = Vec::new();
    for item in reader {
        let record = item.map_err(|e| {
            format!(
                "reading after recovery failed after {} records: {e}",
                records.len()
            )
        })?;
        records.push((record.lsn.0, record.data));
    }
    Ok(Recovered {
        first,
        end,
        records,
    })
}

/// The files of [`DIR`] on `sim` (see [`Snapshot`]).
pub fn snapshot(sim: &SimStorage) -> Snapshot {
    simfs::snapshot(sim, &[Path::new(DIR)])
}

/// A new [`SimStorage`] seeded with `seed` holding exactly `files` in [`DIR`], all durable.
pub fn restore(seed: u64, files: &Snapshot) -> SimStorage {
    simfs::restore(seed, &[Path::new(DIR)], files)
}

/// The names and lengths of the files in [`DIR`], for failure messages.
pub fn describe_files(sim: &SimStorage) -> String {
    simfs::describe_files(sim, &[Path::new(DIR)])
}

/// A short hex preview of `bytes` for messages.
pub fn preview(bytes: &[u8]) -> String {
    let mut out = String::from("[");
    for b in bytes.iter().take(12) {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > 12 {
        out.push_str("..");
    }
    out.push(']');
    out
}
