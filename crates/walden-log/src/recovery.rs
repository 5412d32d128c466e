//! Recovery: reading a log directory back into a verified prefix.
//!
//! The scan reads every segment header, then every frame in LSN order, checking each frame's
//! CRC (salted with its segment's identity), its LSN (dense) and its chain value (the CRC of
//! the frame before it). Consecutive segments must link: a segment's `first_lsn` and
//! `prev_chain` name the exact frame the previous segment ends with. A segment's frames past
//! the next segment's `first_lsn` are superseded (that is how `truncate_after` and a cut torn
//! tail retire stale bytes without rewriting them) and are never read.
//!
//! # Decision table (what happens at the first damage, at LSN `B`)
//!
//! | mode                | damage, no later frame proves `B` durable | a later frame's `durable_lsn >= B` |
//! |---------------------|-------------------------------------------|-------------------------------------|
//! | AbsoluteConsistency | refuse                                    | refuse                              |
//! | TolerateTornTail    | cut at `B` (torn tail)                    | refuse, naming file, offset, LSN    |
//! | PointInTime         | cut at `B`                                | cut at `B`                          |
//! | SkipCorrupt         | skip to the next valid frame, else cut    | skip to the next valid frame        |
//!
//! "Damage" is anything that is not the next frame: a bad CRC, an impossible header, a frame
//! running past the end of its file, a read error, a wrong LSN or chain value, a segment
//! whose header is unreadable (both copies) with initialized segments after it, or segments
//! that do not link. A file whose header names another segment id or another log is refused
//! in every mode: identity comes from headers, and a mismatch means files were moved by hand.
//!
//! Every valid frame records the highest LSN that was durable when it was written. Frames
//! written after a sync are proof that everything up to that LSN reached the disk, so damage
//! to it is corruption of acknowledged data. Without such proof the damage is
//! indistinguishable from (and treated as) a write the crash interrupted.

use crate::cursor::{is_zero_after, resync, FrameCursor, Step, Stop};
use crate::error::{Error, Location, Result};
use crate::format::{
    self, parse_free_file_name, parse_segment_file_name, SegmentHeader, DATA_OFFSET,
    FRAME_ALIGN_BYTES, FRAME_HEADER_BYTES,
};
use crate::options::RecoveryMode;
use crate::storage::{join, read_exact_at, OpenMode, Storage, StorageFile};
use crate::Lsn;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Progress of a running recovery, passed to the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryProgress {
    /// Segment bytes verified so far.
    pub bytes_scanned: u64,
    /// Segment bytes to verify in all.
    pub bytes_total: u64,
    /// Segments finished.
    pub segments_done: usize,
    /// Segments to scan.
    pub segments_total: usize,
}

/// A segment file found in the directory.
#[derive(Debug, Clone)]
pub(crate) struct SegmentFile {
    pub id: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    pub len: u64,
    pub class: Class,
}

/// What a segment file's header says.
#[derive(Debug, Clone)]
pub(crate) enum Class {
    Init(SegmentHeader),
    Blank,
    Invalid(String),
}

/// A segment whose frames recovery accepted.
#[derive(Debug, Clone)]
pub(crate) struct ScannedSegment {
    pub path: PathBuf,
    pub header: SegmentHeader,
    pub file: Arc<dyn StorageFile>,
    pub file_len: u64,
    /// One past the last accepted LSN in this segment.
    pub end_lsn: u64,
    /// Byte offset just past the last accepted frame.
    pub end_offset: u64,
}

/// Damage found by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where.
    pub location: Location,
    /// What was wrong there.
    pub reason: String,
}

/// What a scan found and decided.
#[derive(Debug)]
pub(crate) struct LogScan {
    pub log_id: Option<u64>,
    pub segments: Vec<ScannedSegment>,
    /// The first damage, if any (the cut point, or the first skipped range).
    pub damage: Option<Damage>,
    /// LSN ranges `[from, to)` skipped in `SkipCorrupt` mode.
    pub skipped: Vec<(Lsn, Lsn)>,
    /// Files after the cut, or with torn headers at the end: to release before writing.
    pub discard: Vec<SegmentFile>,
    /// Blank (prepared, never initialized) files after every initialized one.
    pub spares: Vec<SegmentFile>,
    /// Released segments waiting for reuse: (id, path).
    pub free: Vec<(u64, PathBuf)>,
    /// True when nothing but zeros follows the last accepted frame of the last segment.
    pub tail_clean: bool,
    /// The next LSN to append.
    pub next_lsn: u64,
    /// Chain value (CRC) of the last accepted frame.
    pub last_crc: u32,
    /// Highest segment id seen in any file name (live, spare or free).
    pub max_id: u64,
    pub bytes_scanned: u64,
    /// The sync-failure marker was present: every segment's cache was dropped before reading.
    pub read_past_cache: bool,
}

/// Reads and classifies every segment of `dir`, then verifies the log as `mode` says.
/// Never modifies anything; the caller applies the decisions.
pub(crate) fn scan_log(
    storage: &dyn Storage,
    dir: &Path,
    mode: RecoveryMode,
    open_mode: OpenMode,
    progress: &mut dyn FnMut(RecoveryProgress),
) -> Result<LogScan> {
    let names = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    let mut free: Vec<(u64, PathBuf)> = names
        .iter()
        .filter_map(|n| parse_free_file_name(n).map(|id| (id, join(dir, n))))
        .collect();
    free.sort_unstable();
    // A poisoned log's pages may be cached but not on the device: read past the cache.
    let read_past_cache = names.iter().any(|n| n == crate::sync_failure::MARKER);
    let mut files = Vec::with_capacity(ids.len());
    for id in &ids {
        files.push(classify(storage, dir, *id, open_mode, read_past_cache)?);
    }
    let log_id = check_identity(&files)?;
    let max_id = ids
        .iter()
        .chain(free.iter().map(|(id, _)| id))
        .copied()
        .max()
        .unwrap_or(0);
    let last_init = files
        .iter()
        .rposition(|f| matches!(f.class, Class::Init(_)));
    let (live, trailing) = match last_init {
        Some(i) => files.split_at(i + 1),
        None => files.split_at(0),
    };
    let mut scan = LogScan {
        log_id,
        segments: Vec::new(),
        damage: None,
        skipped: Vec::new(),
        discard: Vec::new(),
        spares: Vec::new(),
        free,
        tail_clean: true,
        next_lsn: 1,
        last_crc: 0,
        max_id,
        bytes_scanned: 0,
        read_past_cache,
    };
    for f in trailing {
        match &f.class {
            Class::Blank => scan.spares.push(f.clone()),
            Class::Invalid(reason) if mode == RecoveryMode::AbsoluteConsistency => {
                return Err(Error::corruption(&f.path, 0, scan.next_lsn, reason.clone()));
            }
            _ => scan.discard.push(f.clone()),
        }
    }
    let mut walker = Walker {
        mode,
        live,
        scan,
        progress,
        bytes_total: 0,
        segments_done: 0,
        cut_inside_last: false,
    };
    walker.bytes_total = live.iter().map(|f| f.len).sum();
    walker.run()?;
    let mut scan = walker.scan;
    if scan.damage.is_none() {
        judge_torn_rotation(&mut scan, trailing, mode)?;
    }
    Ok(scan)
}

/// A file after the last readable segment whose header copies are both unreadable is a
/// rotation the crash interrupted, unless its frames say otherwise: frames chained from the
/// log's end (checked without their CRCs, whose seed died with the header) that record a
/// durable LSN at or past that end prove the header had been synced. Such damage is
/// corruption of acknowledged data; otherwise it is reported as a torn tail.
fn judge_torn_rotation(
    scan: &mut LogScan,
    trailing: &[SegmentFile],
    mode: RecoveryMode,
) -> Result<()> {
    if scan.log_id.is_none() {
        // No readable segment at all: a new log whose first header write was torn (a
        // writer starts afresh), or not a log (read-only tools say so).
        return Ok(());
    }
    let Some(f) = trailing
        .iter()
        .find(|f| matches!(f.class, Class::Invalid(_)))
    else {
        return Ok(());
    };
    let location = Location {
        path: f.path.clone(),
        offset: 0,
        lsn: Lsn(scan.next_lsn),
    };
    if let Some(proof) = unverified_chain_proof(f, scan.next_lsn, scan.last_crc) {
        if mode == RecoveryMode::TolerateTornTail {
            return Err(Error::Corruption {
                location: Box::new(location),
                reason: format!("both header copies are unreadable, yet {proof}"),
            });
        }
    }
    scan.damage = Some(Damage {
        location,
        reason: "both header copies are unreadable: a segment rotation the crash interrupted \
                 (nothing in it was synced); it is released"
            .into(),
    });
    Ok(())
}

/// Walks frame headers from the data offset without verifying CRCs, following LSNs and the
/// chain from `(lsn, chain)`; returns a description of the first frame whose durable LSN
/// reaches `lsn`. Bounded by the file's length; never trusts a length beyond it.
fn unverified_chain_proof(f: &SegmentFile, lsn: u64, chain: u32) -> Option<String> {
    let (mut at, mut expected, mut prev) = (DATA_OFFSET, lsn, chain);
    let mut head = [0u8; FRAME_HEADER_BYTES];
    while at + FRAME_HEADER_BYTES as u64 <= f.len {
        read_exact_at(&*f.file, &mut head, at).ok()?;
        let h = format::decode_frame_header(&head)?;
        if h.lsn != expected || h.prev_crc != prev {
            return None;
        }
        if h.durable_lsn >= lsn {
            return Some(format!(
                "the frame at byte offset {at} (LSN {}) was written after LSN {} was durable",
                h.lsn, h.durable_lsn
            ));
        }
        let count = match h.kind {
            format::FrameKind::Record => 1,
            format::FrameKind::Batch => {
                let mut c = [0u8; 4];
                read_exact_at(&*f.file, &mut c, at + FRAME_HEADER_BYTES as u64).ok()?;
                u64::from(u32::from_le_bytes(c)).max(1)
            }
        };
        expected = expected.checked_add(count)?;
        prev = h.crc;
        at += format::frame_bytes(u64::from(h.len));
    }
    None
}

fn classify(
    storage: &dyn Storage,
    dir: &Path,
    id: u64,
    mode: OpenMode,
    read_past_cache: bool,
) -> Result<SegmentFile> {
    let path = join(dir, &format::segment_file_name(id));
    let file = storage
        .open(&path, mode)
        .map_err(|e| Error::io("open", &path, e))?;
    if read_past_cache {
        file.drop_cache()
            .map_err(|e| Error::io("read past the page cache (sync-failure marker)", &path, e))?;
    }
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let mut page = vec![0u8; len.min(DATA_OFFSET) as usize];
    let class = match read_exact_at(&*file, &mut page, 0) {
        Err(e) => Class::Invalid(format!("header unreadable: {e}")),
        Ok(()) if page.iter().all(|&b| b == 0) => Class::Blank,
        Ok(()) => match SegmentHeader::decode_page(&page) {
            Ok(h) => Class::Init(h),
            Err(format::header::HeaderProblem::UnsupportedVersion(v)) => {
                return Err(Error::NotALog {
                    dir: dir.to_path_buf(),
                    reason: format!(
                        "{} uses format version {v}, which this build cannot read",
                        path.display()
                    ),
                });
            }
            Err(p) => Class::Invalid(describe(p)),
        },
    };
    if let Class::Init(h) = &class {
        if h.segment_id != id {
            return Err(Error::corruption(
                &path,
                0,
                h.first_lsn,
                format!(
                    "header says segment {:#x} but the file name says {id:#x}: \
                     a misnamed, copied or stale segment file",
                    h.segment_id
                ),
            ));
        }
    }
    Ok(SegmentFile {
        id,
        path,
        file,
        len,
        class,
    })
}

fn check_identity(files: &[SegmentFile]) -> Result<Option<u64>> {
    let mut log_id = None;
    for f in files {
        if let Class::Init(h) = &f.class {
            match log_id {
                None => log_id = Some(h.log_id),
                Some(id) if id != h.log_id => {
                    return Err(Error::corruption(
                        &f.path,
                        0,
                        h.first_lsn,
                        format!(
                            "segment belongs to log {:#x}, the others to log {id:#x}",
                            h.log_id
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(log_id)
}

/// Where the scan stands: the next LSN expected and the chain value it must link to.
#[derive(Debug, Clone, Copy)]
struct Position {
    file: usize,
    offset: u64,
    expected: u64,
    chain: u32,
    /// True right after `SkipCorrupt` resumed at this position: the link to the segment
    /// before was already judged (it is the skipped hole), so `walk_segment` must not check
    /// it again. Checking it sent a segment whose header disagrees with its first frame back
    /// to that same frame forever, growing `skipped` without bound (found by
    /// tests/matrix_arbitrary_bytes.rs).
    resumed: bool,
}

struct Walker<'a> {
    mode: RecoveryMode,
    live: &'a [SegmentFile],
    scan: LogScan,
    progress: &'a mut dyn FnMut(RecoveryProgress),
    bytes_total: u64,
    segments_done: usize,
    /// True when the log was cut inside the last accepted segment (damage after some of its
    /// frames): what follows the cut may hold valid frames of that segment, so appends must
    /// not continue in it.
    cut_inside_last: bool,
}

enum SegmentEnd {
    Clean { offset: u64 },
    Damaged { offset: u64, reason: String },
}

impl Walker<'_> {
    fn run(&mut self) -> Result<()> {
        let first_init = self.live.iter().find_map(|f| match &f.class {
            Class::Init(h) => Some(*h),
            _ => None,
        });
        let Some(h0) = first_init else { return Ok(()) };
        let first_init_index = self
            .live
            .iter()
            .position(|f| matches!(f.class, Class::Init(_)))
            .unwrap_or(0);
        let mut pos = Position {
            file: 0,
            offset: DATA_OFFSET,
            expected: h0.first_lsn,
            chain: h0.prev_chain,
            resumed: false,
        };
        while pos.file < self.live.len() {
            let f = &self.live[pos.file];
            let outcome = match &f.class {
                Class::Init(h) => self.walk_segment(f, h, &mut pos),
                Class::Blank => {
                    // A prepared file that was never used (left by a failed preparation):
                    // it holds no data; the next segment's link check proves nothing is
                    // missing. Removed when the log opens for writing.
                    self.scan.discard.push(f.clone());
                    pos.file += 1;
                    continue;
                }
                // Before the first readable segment no crash leaves a file (new segments
                // always get ids above every existing one): a stray or damaged file. Refuse
                // rather than cut the whole log at it, unless the mode salvages.
                Class::Invalid(r) if pos.file < first_init_index => {
                    let reason = format!(
                        "{r} (both header copies), in a file before the first readable segment"
                    );
                    let location = Location {
                        path: f.path.clone(),
                        offset: 0,
                        lsn: Lsn(pos.expected),
                    };
                    match self.mode {
                        RecoveryMode::AbsoluteConsistency | RecoveryMode::TolerateTornTail => {
                            return Err(Error::Corruption {
                                location: Box::new(location),
                                reason,
                            });
                        }
                        RecoveryMode::PointInTime | RecoveryMode::SkipCorrupt => {
                            if self.scan.damage.is_none() {
                                self.scan.damage = Some(Damage { location, reason });
                            }
                            self.scan.discard.push(f.clone());
                            pos.file += 1;
                            continue;
                        }
                    }
                }
                Class::Invalid(r) => SegmentEnd::Damaged {
                    offset: 0,
                    reason: format!("{r} (both header copies)"),
                },
            };
            match outcome {
                SegmentEnd::Clean { offset } => {
                    self.finish_segment(pos.file, pos.expected, offset);
                    pos.file += 1;
                    pos.offset = DATA_OFFSET;
                }
                SegmentEnd::Damaged { offset, reason } => {
                    let damage = Damage {
                        location: Location {
                            path: f.path.clone(),
                            offset,
                            lsn: Lsn(pos.expected),
                        },
                        reason,
                    };
                    self.finish_segment(pos.file, pos.expected, offset);
                    match self.on_damage(&pos, offset, damage)? {
                        Some(resume) => pos = resume,
                        None => break,
                    }
                }
            }
        }
        self.scan.next_lsn = pos.expected;
        self.scan.last_crc = pos.chain;
        if let Some(last) = self.scan.segments.last_mut() {
            // Appends may continue in place after a clean end: zeros (or the end of the file)
            // where the next frame header belongs, with no valid frame of this segment after
            // them (`walk_segment` checks that). Bytes further on may be stale frames from an
            // earlier use of a recycled file; they can never verify under this segment's seed,
            // so overwriting them is what every append into a recycled file does. Requiring
            // the whole rest of the file to be zero made every reopen of a cleanly closed
            // recycled segment report its stale bytes as damage, start a new segment, and
            // `AbsoluteConsistency` refuse to open (tests/matrix_recycled_stale.rs).
            // A read error here only means we cannot prove the tail clean.
            let marker_end = last
                .end_offset
                .saturating_add(FRAME_HEADER_BYTES as u64)
                .min(last.file_len);
            self.scan.tail_clean = !self.cut_inside_last
                && is_zero_after(&*last.file, last.end_offset, marker_end).unwrap_or(false);
        }
        Ok(())
    }

    /// Checks the link from the previous segment, then walks frames until the next
    /// segment's first LSN (frames past it are superseded), the end, or damage.
    fn walk_segment(
        &mut self,
        f: &SegmentFile,
        h: &SegmentHeader,
        pos: &mut Position,
    ) -> SegmentEnd {
        let resumed = std::mem::take(&mut pos.resumed);
        if pos.offset == DATA_OFFSET && !self.scan.segments.is_empty() && !resumed {
            if h.first_lsn != pos.expected {
                return SegmentEnd::Damaged {
                    offset: 0,
                    reason: format!(
                        "segment starts at LSN {} but the segment before it ends at LSN {}",
                        h.first_lsn,
                        pos.expected - 1
                    ),
                };
            }
            if h.prev_chain != pos.chain {
                return SegmentEnd::Damaged {
                    offset: 0,
                    reason: "chain value does not match the previous segment's last frame".into(),
                };
            }
        }
        let stop_at = self.next_first_lsn(pos.file);
        let mut cursor = FrameCursor::at(f.file.clone(), h.frame_seed(), f.len, pos.offset);
        if let Some(next) = self.live.get(pos.file + 1) {
            cursor.then_read_ahead(next.file.clone());
        }
        loop {
            if stop_at == Some(pos.expected) {
                return SegmentEnd::Clean {
                    offset: cursor.offset(),
                };
            }
            let at = cursor.offset();
            match cursor.next_frame() {
                Step::Frame(frame) => {
                    let count = frame.record_count();
                    if frame.header.lsn != pos.expected {
                        return damaged(
                            at,
                            format!(
                                "frame holds LSN {} where LSN {} belongs",
                                frame.header.lsn, pos.expected
                            ),
                        );
                    }
                    if frame.header.prev_crc != pos.chain {
                        return damaged(
                            at,
                            "chain broken: frame does not follow the frame before it".into(),
                        );
                    }
                    // LSNs never wrap: a frame whose records would run past u64::MAX (only a
                    // damaged or hand-made frame with a valid CRC can say so) is damage, not
                    // an overflow (found by fuzz/segment_file).
                    let Some(end_lsn) = pos.expected.checked_add(count) else {
                        return damaged(
                            at,
                            format!(
                                "frame's {count} record(s) at LSN {} run past u64::MAX",
                                pos.expected
                            ),
                        );
                    };
                    if count == 0 || stop_at.is_some_and(|s| end_lsn > s) {
                        return damaged(at, "frame overlaps the next segment's first LSN".into());
                    }
                    pos.expected = end_lsn;
                    pos.chain = frame.header.crc;
                    self.scan.bytes_scanned += cursor.offset() - at;
                }
                Step::Stop(Stop::Eof | Stop::Zeros) => {
                    return match stop_at {
                        Some(s) => damaged(
                            at,
                            format!(
                                "segment ends at LSN {} but the next segment starts at LSN {s}",
                                pos.expected - 1
                            ),
                        ),
                        // Zeros where the next frame belongs end the log only if no valid
                        // frame of this segment follows them; if one does, a write was lost
                        // or a sector zeroed under it (rows 3 and 13), and the mode decides
                        // like for any damage. Taking them as the end silently dropped
                        // acknowledged records that later frames prove durable.
                        None if frame_follows(f, h, at) => damaged(
                            at,
                            format!(
                                "zeros where LSN {} belongs, but valid frames of this segment \
                                 follow (a lost write or a zeroed sector)",
                                pos.expected
                            ),
                        ),
                        None => SegmentEnd::Clean { offset: at },
                    };
                }
                Step::Stop(Stop::Damaged(reason)) => return damaged(at, reason),
            }
        }
    }

    /// The first LSN of the next file, when it is an initialized segment.
    fn next_first_lsn(&self, file: usize) -> Option<u64> {
        match self.live.get(file + 1).map(|f| &f.class) {
            Some(Class::Init(h)) => Some(h.first_lsn),
            _ => None,
        }
    }

    fn finish_segment(&mut self, file: usize, end_lsn: u64, end_offset: u64) {
        let f = &self.live[file];
        // Damage at offset 0 is the segment's header or its link to the segment before:
        // none of its frames belong to the log, so it is not a scanned segment (see the
        // cut in `on_damage`).
        if let (Class::Init(h), true) = (&f.class, end_offset >= DATA_OFFSET) {
            match self.scan.segments.last_mut() {
                Some(last) if last.header.segment_id == h.segment_id => {
                    last.end_lsn = end_lsn;
                    last.end_offset = end_offset;
                }
                _ => self.scan.segments.push(ScannedSegment {
                    path: f.path.clone(),
                    header: *h,
                    file: f.file.clone(),
                    file_len: f.len,
                    end_lsn,
                    end_offset,
                }),
            }
        }
        self.segments_done += 1;
        (self.progress)(RecoveryProgress {
            bytes_scanned: self.scan.bytes_scanned,
            bytes_total: self.bytes_total,
            segments_done: self.segments_done.min(self.live.len()),
            segments_total: self.live.len(),
        });
    }

    /// Applies the recovery mode to damage at `pos`; returns where to resume (SkipCorrupt)
    /// or `None` to cut there.
    fn on_damage(
        &mut self,
        pos: &Position,
        offset: u64,
        damage: Damage,
    ) -> Result<Option<Position>> {
        let first_damage = self.scan.damage.is_none();
        let refuse = |d: &Damage, why: String| Error::Corruption {
            location: Box::new(d.location.clone()),
            reason: why,
        };
        match self.mode {
            RecoveryMode::AbsoluteConsistency => {
                return Err(refuse(&damage, damage.reason.clone()))
            }
            RecoveryMode::TolerateTornTail => {
                if let Some(proof) = self.proof_of_durability(pos.file, offset, pos.expected) {
                    return Err(refuse(
                        &damage,
                        format!("{}; acknowledged data is damaged: {proof}", damage.reason),
                    ));
                }
            }
            RecoveryMode::PointInTime => {}
            RecoveryMode::SkipCorrupt => {
                if first_damage {
                    self.scan.damage = Some(damage.clone());
                }
                if let Some(resume) = self.next_valid_frame(pos.file, offset, pos.expected) {
                    self.scan
                        .skipped
                        .push((Lsn(pos.expected), Lsn(resume.expected)));
                    return Ok(Some(resume));
                }
            }
        }
        if first_damage {
            self.scan.damage = Some(damage);
        }
        let cut_file = pos.file;
        // Keep the cut file only if some of it was accepted. A segment whose link to the one
        // before fails (offset 0) goes whole: that happens when an earlier segment's header
        // was lost (it reads as blank) while a later header survived. Kept, its header would
        // still claim its first LSN on disk, the next recovery would find the log ending
        // before it, and frames appended after this recovery would "prove" that gap was
        // acknowledged data: a refusal to open (found by tests/crash_sim.rs,
        // rotation_heavy seed 3000, truncation_with_recycling seed 4002).
        let keep_cut_file =
            matches!(self.live[cut_file].class, Class::Init(_)) && offset >= DATA_OFFSET;
        self.cut_inside_last = keep_cut_file;
        let first_discard = if keep_cut_file {
            cut_file + 1
        } else {
            cut_file
        };
        self.scan
            .discard
            .splice(0..0, self.live[first_discard..].iter().cloned());
        Ok(None)
    }

    /// Looks after the damage for a valid frame written when LSN `lsn` was already durable.
    fn proof_of_durability(&self, file: usize, offset: u64, lsn: u64) -> Option<String> {
        let mut proof = None;
        self.for_each_frame_after(file, offset, |f, found| {
            if found.header.durable_lsn >= lsn {
                proof = Some(format!(
                    "the frame at {} byte offset {} (LSN {}) was written after LSN {} was durable",
                    f.path.display(),
                    found.offset,
                    found.header.lsn,
                    found.header.durable_lsn
                ));
                return false;
            }
            true
        });
        proof
    }

    /// The first valid frame after the damage whose LSN is at least `lsn`.
    fn next_valid_frame(&self, file: usize, offset: u64, lsn: u64) -> Option<Position> {
        let mut resume = None;
        self.for_each_frame_after(file, offset, |f, found| {
            if found.header.lsn >= lsn {
                let index = self.live.iter().position(|g| g.id == f.id).unwrap_or(file);
                resume = Some(Position {
                    file: index,
                    offset: found.offset,
                    expected: found.header.lsn,
                    chain: found.header.prev_crc,
                    resumed: true,
                });
                return false;
            }
            true
        });
        resume
    }

    fn for_each_frame_after(
        &self,
        file: usize,
        offset: u64,
        mut visit: impl FnMut(&SegmentFile, crate::cursor::Found) -> bool,
    ) {
        let mut go_on = true;
        for (i, f) in self.live.iter().enumerate().skip(file) {
            let Class::Init(h) = &f.class else { continue };
            let from = if i == file {
                offset + FRAME_ALIGN_BYTES
            } else {
                DATA_OFFSET
            };
            resync(&f.file, h.frame_seed(), f.len, from, |found| {
                go_on = visit(f, found);
                go_on
            });
            if !go_on {
                return;
            }
        }
    }
}

/// True when a valid frame of segment `f` (header `h`) lies after offset `at`.
fn frame_follows(f: &SegmentFile, h: &SegmentHeader, at: u64) -> bool {
    let mut found = false;
    resync(
        &f.file,
        h.frame_seed(),
        f.len,
        at + FRAME_ALIGN_BYTES,
        |_| {
            found = true;
            false
        },
    );
    found
}

fn damaged(offset: u64, reason: String) -> SegmentEnd {
    SegmentEnd::Damaged { offset, reason }
}

fn describe(p: format::header::HeaderProblem) -> String {
    match p {
        format::header::HeaderProblem::Blank => "blank header".into(),
        format::header::HeaderProblem::Invalid => "invalid segment header".into(),
        format::header::HeaderProblem::UnsupportedVersion(v) => {
            format!("segment format version {v} is not supported by this build")
        }
    }
}
