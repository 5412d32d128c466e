//! Read-only inspection for operator tools (`walden log inspect|verify|dump`): what segments
//! a directory holds, where the first damage is and what recovery would make of it, and
//! every record with its frame metadata. Nothing here writes.

use crate::cursor::{FrameCursor, Step};
use crate::error::{Error, Result};
use crate::format::{parse_frame_payload, FrameKind, FramePayload, DATA_OFFSET};
use crate::options::RecoveryMode;
use crate::recovery::{scan_log, Damage};
use crate::storage::{OpenMode, Storage};
use crate::wal::{SegmentTable, TableEntry};
use crate::{Lsn, Wal};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the first damage means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DamageKind {
    /// Nothing proves the damaged data was ever synced: recovery (default mode) cuts the log
    /// there, losing only records that were never acknowledged as durable.
    TornTail,
    /// Data that was durable is damaged: the default recovery mode refuses to open.
    Corruption {
        /// Why the damage is known to affect durable data.
        reason: String,
    },
}

/// One segment as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectedSegment {
    /// Segment id.
    pub id: u64,
    /// File path.
    pub path: PathBuf,
    /// First LSN.
    pub first_lsn: Lsn,
    /// One past the last valid LSN.
    pub end_lsn: Lsn,
    /// Generation salt.
    pub salt: u64,
    /// File size in bytes.
    pub file_bytes: u64,
    /// Bytes up to the end of the last valid frame.
    pub used_bytes: u64,
}

/// The state of a log directory.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The directory.
    pub dir: PathBuf,
    /// The log id, when any segment is initialized.
    pub log_id: Option<u64>,
    /// Segments holding valid records, in order.
    pub segments: Vec<InspectedSegment>,
    /// Prepared (blank) segment files.
    pub spare_files: usize,
    /// Released segment files awaiting reuse.
    pub free_files: usize,
    /// Files past the damage (or unused blanks) that recovery would release.
    pub discarded_files: Vec<PathBuf>,
    /// One past the last valid LSN: where the next append would go.
    pub next_lsn: Lsn,
    /// Frame bytes verified.
    pub bytes_scanned: u64,
    /// The first damage and what it means.
    pub damage: Option<(Damage, DamageKind)>,
    /// The log was poisoned by a failed write or sync and not reopened since: its
    /// `SYNC_FAILED` marker is present, so this inspection read past the page cache (as the
    /// next open will, which then removes the marker; docs/DURABILITY.md).
    pub sync_failed: bool,
}

impl Inspection {
    /// True when every checksum and link verified and nothing follows the last record.
    pub fn is_clean(&self) -> bool {
        self.damage.is_none()
    }
}

/// Inspects the log in `dir` without changing anything.
pub fn inspect_dir(storage: &dyn Storage, dir: &Path) -> Result<Inspection> {
    let names = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
    if !names
        .iter()
        .any(|n| crate::format::parse_segment_file_name(n).is_some())
    {
        return Err(Error::NotALog {
            dir: dir.to_path_buf(),
            reason: "no segment files (*.wal)".into(),
        });
    }
    let strict = scan_log(
        storage,
        dir,
        RecoveryMode::TolerateTornTail,
        OpenMode::Read,
        &mut |_| {},
    );
    let refusal = match strict {
        Err(Error::Corruption { location, reason }) => Some((location, reason)),
        Err(e) => return Err(e),
        Ok(_) => None,
    };
    let scan = scan_log(
        storage,
        dir,
        RecoveryMode::PointInTime,
        OpenMode::Read,
        &mut |_| {},
    )?;
    let damage = match (scan.damage.clone(), refusal) {
        (Some(d), Some((_, reason))) => Some((d, DamageKind::Corruption { reason })),
        (None, Some((location, reason))) => Some((
            Damage {
                location: *location,
                reason: reason.clone(),
            },
            DamageKind::Corruption { reason },
        )),
        (Some(d), None) => Some((d, DamageKind::TornTail)),
        (None, None) => None,
    };
    Ok(Inspection {
        dir: dir.to_path_buf(),
        log_id: scan.log_id,
        segments: scan
            .segments
            .iter()
            .map(|s| InspectedSegment {
                id: s.header.segment_id,
                path: s.path.clone(),
                first_lsn: Lsn(s.header.first_lsn),
                end_lsn: Lsn(s.end_lsn),
                salt: s.header.salt,
                file_bytes: s.file_len,
                used_bytes: s.end_offset,
            })
            .collect(),
        spare_files: scan.spares.len(),
        free_files: scan.free.len(),
        discarded_files: scan.discard.iter().map(|f| f.path.clone()).collect(),
        next_lsn: Lsn(scan.next_lsn),
        bytes_scanned: scan.bytes_scanned,
        damage,
        sync_failed: scan.read_past_cache,
    })
}

/// One record with the metadata of the frame that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// The record's LSN.
    pub lsn: Lsn,
    /// "record", or "batch" for a record inside an atomic batch.
    pub kind: &'static str,
    /// Index in its batch and the batch's size (`(0, 1)` for a lone record).
    pub batch_position: (u32, u32),
    /// The segment holding it.
    pub segment_id: u64,
    /// Byte offset of its frame in the segment file.
    pub frame_offset: u64,
    /// The frame's CRC32C.
    pub frame_crc: u32,
    /// The record's bytes.
    pub data: Vec<u8>,
}

/// Iterates over the records of a log opened read-only with `mode`, from `from` on, with
/// frame metadata. Memory: one read buffer and one frame.
pub fn dump_records(
    storage: Arc<dyn Storage>,
    dir: &Path,
    mode: RecoveryMode,
    from: Lsn,
) -> Result<RecordDump> {
    let wal = Wal::open_read_only(dir, mode, storage)?;
    let table = wal.inner.read_table();
    let entries = table.entries.clone();
    let end = wal.inner.durable.load(std::sync::atomic::Ordering::Acquire) + 1;
    drop(table);
    let start = SegmentTable {
        entries: entries.clone(),
    }
    .locate(from.0)
    .unwrap_or(0);
    let has_holes = !wal.recovery_report().skipped.is_empty();
    Ok(RecordDump {
        entries,
        index: start,
        cursor: None,
        from: from.0,
        end,
        pending: VecDeque::new(),
        last_lsn: 0,
        has_holes,
    })
}

/// The iterator [`dump_records`] returns.
#[derive(Debug)]
pub struct RecordDump {
    entries: Vec<TableEntry>,
    index: usize,
    cursor: Option<FrameCursor>,
    from: u64,
    end: u64,
    pending: VecDeque<RecordView>,
    /// Highest LSN seen so far, so a skip past a hole never goes backwards.
    last_lsn: u64,
    /// True when recovery skipped corrupt ranges (SkipCorrupt mode): damage inside a segment
    /// is then a known hole to step over, not the end.
    has_holes: bool,
}

impl RecordDump {
    /// One past the last LSN this dump will yield.
    pub fn end_lsn(&self) -> Lsn {
        Lsn(self.end)
    }

    fn step(&mut self) -> Result<Option<RecordView>> {
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Ok(Some(v));
            }
            let Some(entry) = self.entries.get(self.index) else {
                return Ok(None);
            };
            let seg_end = self
                .entries
                .get(self.index + 1)
                .map_or(self.end, |n| n.first_lsn)
                .min(self.end);
            let cursor = match self.cursor.as_mut() {
                Some(c) => c,
                None => {
                    let len = entry
                        .file
                        .len()
                        .map_err(|e| Error::io("stat", &entry.path, e))?;
                    self.cursor.insert(FrameCursor::at(
                        entry.file.clone(),
                        entry.seed,
                        len,
                        DATA_OFFSET,
                    ))
                }
            };
            let at = cursor.offset();
            let at_lsn = self.last_lsn.saturating_add(1);
            let (id, path) = (entry.id, entry.path.clone());
            match cursor.next_frame() {
                Step::Frame(f) if f.header.lsn < seg_end => {
                    let payload =
                        parse_frame_payload(f.header.kind, f.payload).ok_or_else(|| {
                            Error::corruption(
                                &path,
                                at,
                                f.header.lsn,
                                "batch payload does not parse",
                            )
                        })?;
                    let records: Vec<&[u8]> = match payload {
                        FramePayload::Record(r) => vec![r],
                        FramePayload::Batch(rs) => rs,
                    };
                    let n = records.len() as u32;
                    for (i, data) in records.into_iter().enumerate() {
                        // A frame recovery never accepted may claim LSNs past u64::MAX; LSNs
                        // never wrap (found by fuzz/segment_file).
                        let Some(lsn) = f.header.lsn.checked_add(i as u64) else {
                            break;
                        };
                        self.last_lsn = self.last_lsn.max(lsn);
                        if lsn >= self.from && lsn < seg_end {
                            self.pending.push_back(RecordView {
                                lsn: Lsn(lsn),
                                kind: if f.header.kind == FrameKind::Batch {
                                    "batch"
                                } else {
                                    "record"
                                },
                                batch_position: (i as u32, n),
                                segment_id: id,
                                frame_offset: at,
                                frame_crc: f.header.crc,
                                data: data.to_vec(),
                            });
                        }
                    }
                }
                // Zeros can be a hole too (a lost write, see `recovery::walk_segment`).
                Step::Stop(crate::cursor::Stop::Damaged(_) | crate::cursor::Stop::Zeros)
                    if self.has_holes =>
                {
                    cursor.seek_to(at);
                    if !cursor.skip_damage(self.from.max(at_lsn)) {
                        self.index += 1;
                        self.cursor = None;
                    }
                }
                _ => {
                    self.index += 1;
                    self.cursor = None;
                }
            }
        }
    }
}

impl Iterator for RecordDump {
    type Item = Result<RecordView>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}
