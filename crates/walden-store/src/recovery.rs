//! Recovery in three phases, from the newest valid checkpoint:
//!
//! 1. **Analysis** reads the log from the checkpoint's redo start and learns which
//!    transactions committed (and at which LSN), which aborted, and which never finished.
//! 2. **Redo** reads it again and applies, in commit order, the writes of every transaction
//!    whose commit LSN is above the checkpoint LSN. A commit at or below it is already in the
//!    snapshot and is skipped, so redo is idempotent. Versions are recomputed exactly as they
//!    were (each write is the key's previous version + 1).
//! 3. **Discard**: transactions that wrote but never committed or aborted get an `Abort`
//!    record, synced, so no later recovery or change-feed reader waits for them. Their writes
//!    were never applied (no-steal: nothing reaches the state before its commit is logged),
//!    so nothing needs undoing.
//!
//! Recovery writes nothing but those `Abort` records (idempotent to append again) and the
//! log's own recovery steps, so a crash during recovery is followed by the same recovery.

use crate::checkpoint::{self, CheckpointMeta};
use crate::codec::{decode, StoreRecord, Write};
use crate::error::{Error, Result};
use crate::state::{apply, final_writes, Map};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use walden_log::storage::Storage;
use walden_log::{Durability, Lsn, Wal};

/// Where recovery stands, passed to the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreRecoveryProgress {
    /// "checkpoint", "analysis", "redo" or "discard".
    pub phase: &'static str,
    /// Log records processed in this phase.
    pub records_done: u64,
    /// Log records this phase reads.
    pub records_total: u64,
}

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreRecoveryReport {
    /// LSN of the checkpoint recovery started from (0: none).
    pub checkpoint_lsn: u64,
    /// Checkpoint files that failed verification: skipped, and moved aside to
    /// `NAME.damaged` (kept for investigation; nothing reads or removes them).
    pub damaged_checkpoints: Vec<String>,
    /// Log records read per phase (analysis and redo read the same range).
    pub log_records_read: u64,
    /// Payload bytes of those records: the log behind the newest checkpoint, which counts
    /// towards the next automatic checkpoint.
    pub log_bytes_read: u64,
    /// Size in bytes of the checkpoint recovery started from (0: none): the next
    /// size-triggered checkpoint's interval.
    pub checkpoint_bytes: u64,
    /// Transactions redone.
    pub transactions_redone: u64,
    /// Transactions discarded (never committed).
    pub transactions_discarded: u64,
}

pub(crate) struct Recovered {
    /// The recovered state: every key, with versions at or below `lsn`.
    pub map: Map,
    /// Commit LSN of the last transaction recovered.
    pub lsn: u64,
    pub next_txn_id: u64,
    pub kept_checkpoints: Vec<CheckpointMeta>,
    pub report: StoreRecoveryReport,
}

/// Loads the newest checkpoint that verifies (newest first); damaged ones are reported, and
/// returned so that a recovery that succeeds without them can move them aside.
pub(crate) fn load_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    report: &mut StoreRecoveryReport,
) -> Result<(Map, CheckpointMeta, Vec<CheckpointMeta>, Vec<PathBuf>)> {
    let mut kept = Vec::new();
    let mut found = None;
    let mut damaged = Vec::new();
    for (_, path) in checkpoint::list(storage, dir)? {
        match checkpoint::read(storage, &path) {
            Ok((map, meta, bytes)) => {
                kept.push(meta);
                if found.is_none() {
                    report.checkpoint_bytes = bytes;
                    found = Some((map, meta));
                }
            }
            Err(Error::CorruptCheckpoint { path, reason }) => {
                report
                    .damaged_checkpoints
                    .push(format!("{}: {reason}", path.display()));
                damaged.push(path);
            }
            Err(e) => return Err(e),
        }
    }
    let none = CheckpointMeta {
        checkpoint_lsn: 0,
        redo_start_lsn: 1,
        next_txn_id: 1,
    };
    let (map, meta) = found.unwrap_or((Map::new(), none));
    Ok((map, meta, kept, damaged))
}

/// Moves a damaged checkpoint out of the way, to `NAME.damaged` beside it: no longer a
/// checkpoint (not read, not counted) but kept for whoever investigates the damage; nothing
/// removes it. Returns what happened, for the report.
fn quarantine(storage: &dyn Storage, path: &Path) -> String {
    let mut name = path.as_os_str().to_owned();
    name.push(DAMAGED_SUFFIX);
    let to = PathBuf::from(name);
    match storage.rename(path, &to) {
        Ok(()) => format!("moved to {}", to.display()),
        Err(e) => format!("could not be moved aside ({e}); judged again at the next open"),
    }
}

/// Suffix of a damaged checkpoint file moved aside at open.
pub(crate) const DAMAGED_SUFFIX: &str = ".damaged";

pub(crate) fn recover(
    wal: &Wal,
    storage: &dyn Storage,
    checkpoint_dir: &Path,
    history: usize,
    progress: &mut dyn FnMut(StoreRecoveryProgress),
) -> Result<Recovered> {
    let mut report = StoreRecoveryReport::default();
    let (mut map, meta, kept, damaged) = load_checkpoint(storage, checkpoint_dir, &mut report)?;
    let mut state_lsn = meta.checkpoint_lsn;
    report.checkpoint_lsn = meta.checkpoint_lsn;
    let first = wal.first_lsn().get();
    if first > meta.redo_start_lsn {
        return Err(Error::Log(walden_log::Error::Truncated {
            lsn: Lsn(meta.redo_start_lsn),
            first: Lsn(first),
        }));
    }
    let start = meta.redo_start_lsn.max(first);
    let total = wal
        .durable_lsn()
        .get()
        .saturating_add(1)
        .saturating_sub(start);

    // Phase 1: analysis.
    let mut committed: HashMap<u64, u64> = HashMap::new();
    let mut finished: HashSet<u64> = HashSet::new();
    let mut writers: HashSet<u64> = HashSet::new();
    let mut max_txn = 0u64;
    let mut done = 0u64;
    for rec in wal.read_from(Lsn(start))? {
        let rec = rec?;
        report.log_bytes_read += rec.data.len() as u64;
        match decode(rec.lsn.get(), &rec.data)? {
            StoreRecord::Writes { txn_id, .. } => {
                writers.insert(txn_id);
                max_txn = max_txn.max(txn_id);
            }
            StoreRecord::Commit { txn_id, .. } => {
                committed.insert(txn_id, rec.lsn.get());
                finished.insert(txn_id);
                max_txn = max_txn.max(txn_id);
            }
            StoreRecord::Abort { txn_id } => {
                finished.insert(txn_id);
            }
        }
        done += 1;
        tick(progress, "analysis", done, total);
    }
    report.log_records_read = done;

    // Phase 2: redo, in commit order; only writes of transactions that commit later.
    let mut pending: HashMap<u64, Vec<Write>> = HashMap::new();
    done = 0;
    for rec in wal.read_from(Lsn(start))? {
        let rec = rec?;
        let lsn = rec.lsn.get();
        match decode(lsn, &rec.data)? {
            StoreRecord::Writes { txn_id, writes }
                if committed
                    .get(&txn_id)
                    .is_some_and(|&c| c > meta.checkpoint_lsn) =>
            {
                pending.entry(txn_id).or_default().extend(writes);
            }
            StoreRecord::Commit {
                txn_id,
                commit_time_ms,
                ..
            } if lsn > meta.checkpoint_lsn => {
                // The same writes commit applied: the last per key (see final_writes).
                let writes = pending.remove(&txn_id).unwrap_or_default();
                for w in final_writes(&writes) {
                    // No snapshot exists yet: keep the newest `history` versions.
                    apply(&mut map, w, lsn, commit_time_ms, history, || lsn);
                }
                state_lsn = lsn;
                report.transactions_redone += 1;
            }
            _ => {}
        }
        done += 1;
        tick(progress, "redo", done, total);
    }

    // Phase 3: discard transactions that will never commit.
    let unfinished: Vec<u64> = writers.difference(&finished).copied().collect();
    if !unfinished.is_empty() {
        let aborts: Vec<Vec<u8>> = unfinished
            .iter()
            .map(|t| crate::codec::encode_abort(*t))
            .collect();
        wal.append_batch(&aborts, Durability::Sync)?;
        report.transactions_discarded = unfinished.len() as u64;
    }
    tick(
        progress,
        "discard",
        unfinished.len() as u64,
        unfinished.len() as u64,
    );
    // Recovered without them: only now move the damaged checkpoints aside (a recovery that
    // fails leaves every file where it was; found in review).
    for (entry, path) in report.damaged_checkpoints.iter_mut().zip(&damaged) {
        entry.push_str("; ");
        entry.push_str(&quarantine(storage, path));
    }
    if !damaged.is_empty() {
        // Best effort: a rename lost by a crash only means the file is judged again.
        let _ = storage.sync_dir(checkpoint_dir);
    }
    Ok(Recovered {
        map,
        lsn: state_lsn,
        next_txn_id: meta.next_txn_id.max(max_txn + 1),
        kept_checkpoints: kept,
        report,
    })
}

fn tick(
    progress: &mut dyn FnMut(StoreRecoveryProgress),
    phase: &'static str,
    done: u64,
    total: u64,
) {
    if done.is_multiple_of(4096) || done == total {
        progress(StoreRecoveryProgress {
            phase,
            records_done: done,
            records_total: total,
        });
    }
}
