//! The open log: shared state, opening (recovery applied), and the public handle.

use crate::commit::end_marker_end;
use crate::error::{Error, Result};
use crate::format::{SegmentHeader, DATA_OFFSET};
use crate::options::{Options, RecoveryMode};
use crate::prepare::{Prepared, Preparer, PreparerConfig};
use crate::recovery::{scan_log, Damage, LogScan, RecoveryProgress};
use crate::regroup::Regroup;
use crate::stats::{Stats, StatsSnapshot};
use crate::storage::{DirLock, OpenMode, StdStorage, Storage, StorageFile};
use crate::waiters::Waiters;
use crate::Lsn;
use event_listener::Event;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// One segment as readers see it.
#[derive(Debug, Clone)]
pub(crate) struct TableEntry {
    pub id: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    pub seed: u32,
    pub first_lsn: u64,
    pub prev_chain: u32,
    pub salt: u64,
}

/// The live segments in LSN order; the last one is the active segment.
#[derive(Debug, Default)]
pub(crate) struct SegmentTable {
    pub entries: Vec<TableEntry>,
}

impl SegmentTable {
    /// Index of the segment holding `lsn` (the last whose first LSN is at most `lsn`).
    pub fn locate(&self, lsn: u64) -> Option<usize> {
        let after = self.entries.partition_point(|e| e.first_lsn <= lsn);
        after.checked_sub(1)
    }

    /// Adds a segment, dropping any it supersedes (same or later first LSN).
    pub fn push(&mut self, entry: TableEntry) {
        while self
            .entries
            .last()
            .is_some_and(|e| e.first_lsn >= entry.first_lsn)
        {
            self.entries.pop();
        }
        self.entries.push(entry);
    }

    pub fn first_lsn(&self) -> u64 {
        self.entries.first().map_or(1, |e| e.first_lsn)
    }
}

/// The segment appends go to.
#[derive(Debug)]
pub(crate) struct Active {
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    pub seed: u32,
    /// Offset where the next frame goes (pending bytes included).
    pub offset: u64,
}

/// Bytes appended but not yet handed to the OS, for one contiguous region of one file.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    pub offset: u64,
    pub buf: Vec<u8>,
    pub records: u64,
}

/// Guarded by the append lock: held only to assign LSNs and copy bytes in.
#[derive(Debug)]
pub(crate) struct AppendState {
    pub active: Active,
    pub next_lsn: u64,
    pub last_crc: u32,
    pub pending: Vec<Chunk>,
    pub pending_bytes: usize,
    /// Records in `pending` (what a gathering leader counts).
    pub pending_records: u64,
    /// Nonzero while a leader gathers: notify `gather_cv` once `pending_records` reaches it.
    pub gather_target: u64,
    pub spare_bufs: Vec<Vec<u8>>,
}

/// Guarded by the commit lock: who leads, and what was written but not yet synced.
#[derive(Debug, Default)]
pub(crate) struct CommitState {
    pub leader: bool,
    pub written_lsn: u64,
    pub unsynced: Vec<(PathBuf, Arc<dyn StorageFile>)>,
    pub unsynced_records: u64,
    pub regroup: Regroup,
    /// Callers parked until a group reaches their LSN (see `crate::waiters`).
    pub waiters: Waiters,
}

/// What recovery found and did when the log was opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The mode it ran in.
    pub mode: RecoveryMode,
    /// Segments holding records after recovery.
    pub segments: usize,
    /// First LSN in the log.
    pub first_lsn: Lsn,
    /// The next LSN an append will get.
    pub next_lsn: Lsn,
    /// Frame bytes verified.
    pub bytes_scanned: u64,
    /// The first damage found, if any: where the log was cut, or the first range skipped.
    pub damage: Option<Damage>,
    /// LSN ranges `[from, to)` skipped as corrupt (SkipCorrupt mode only).
    pub skipped: Vec<(Lsn, Lsn)>,
    /// Files after the cut (or unused blanks) released.
    pub files_released: usize,
    /// True when appends continue in a fresh segment because the old tail held damaged or
    /// stale bytes (they are superseded, never overwritten in place).
    pub started_new_segment: bool,
    /// True when the log had been poisoned by a failed write or sync (its `SYNC_FAILED`
    /// marker was present), so recovery dropped the segments' cached pages first and read
    /// what the device holds (see docs/DURABILITY.md).
    pub read_past_cache: bool,
    /// How long recovery took.
    pub elapsed: Duration,
}

/// What differs between a writable and a read-only open; the rest comes from the scan.
struct Parts {
    log_id: u64,
    read_only: bool,
    active: Active,
    table: SegmentTable,
    stats: Arc<Stats>,
    preparer: Option<Preparer>,
    report: RecoveryReport,
    lock: Option<Box<dyn DirLock>>,
    /// Where a poisoned writable log leaves its sync-failure marker (None: read-only).
    storage: Option<Arc<dyn Storage>>,
}

impl RecoveryReport {
    fn from_scan(
        mode: RecoveryMode,
        scan: &LogScan,
        table: &SegmentTable,
        files_released: usize,
        started_new_segment: bool,
        started: Instant,
    ) -> Self {
        RecoveryReport {
            mode,
            segments: scan.segments.len(),
            first_lsn: Lsn(table.first_lsn()),
            next_lsn: Lsn(scan.next_lsn),
            bytes_scanned: scan.bytes_scanned,
            damage: scan.damage.clone(),
            skipped: scan.skipped.clone(),
            files_released,
            started_new_segment,
            read_past_cache: scan.read_past_cache,
            elapsed: started.elapsed(),
        }
    }
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub options: Options,
    pub log_id: u64,
    pub read_only: bool,
    pub append: Mutex<AppendState>,
    pub commit: Mutex<CommitState>,
    /// Paired with `append`: wakes a gathering leader (see `crate::regroup`).
    pub gather_cv: Condvar,
    pub durable: AtomicU64,
    pub durable_event: Event,
    pub table: RwLock<SegmentTable>,
    pub maintenance: Mutex<()>,
    pub poison: Mutex<Option<String>>,
    pub poisoned: AtomicBool,
    pub closed: AtomicBool,
    pub stats: Arc<Stats>,
    pub preparer: Option<Preparer>,
    pub report: RecoveryReport,
    pub _lock: Option<Box<dyn DirLock>>,
    /// Where poisoning writes the sync-failure marker (None: read-only).
    pub storage: Option<Arc<dyn Storage>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("log_id", &self.log_id)
            .finish()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open write-ahead log. `Send + Sync`: share it between threads with an `Arc`.
///
/// Appends are totally ordered by LSN. Concurrent durable appends share `fdatasync` calls
/// (group commit); the sync runs outside the append lock. Dropping the handle syncs what was
/// appended (best effort; call [`Wal::close`] to see errors) and wakes tailing readers.
#[derive(Debug)]
pub struct Wal {
    pub(crate) inner: Arc<Inner>,
}

impl Wal {
    /// Opens (or creates) the log in `options.dir` on the real file system, running recovery.
    pub fn open(options: Options) -> Result<Wal> {
        Self::open_with(options, Arc::new(StdStorage::new()), &mut |_| {})
    }

    /// Opens the log through `storage` (for example a [`crate::storage::SimStorage`]),
    /// calling `progress` as recovery advances.
    pub fn open_with(
        options: Options,
        storage: Arc<dyn Storage>,
        progress: &mut dyn FnMut(RecoveryProgress),
    ) -> Result<Wal> {
        let started = Instant::now();
        options.validate()?;
        let dir = options.dir.clone();
        storage
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        sync_parent(&*storage, &dir)?;
        let dir_lock = storage.lock_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => Error::Locked { dir: dir.clone() },
            _ => Error::io("lock", &dir, e),
        })?;
        let scan = scan_log(
            &*storage,
            &dir,
            options.recovery,
            OpenMode::ReadWrite,
            progress,
        )?;
        // A failure from here on may be a failed fsync of bytes recovery accepted or wrote:
        // leave the sync-failure marker (sync_failure.rs) before the directory lock goes, so
        // that the next open does not trust pages that failed sync left in the cache.
        Self::finish_open(options, storage.clone(), scan, dir_lock, started).inspect_err(|e| {
            crate::sync_failure::after_failure(&*storage, &dir, e);
        })
    }

    /// The writable open after the scan: syncs what recovery accepted, releases what it cut,
    /// starts a new segment if the tail was cut, and clears the sync-failure marker.
    fn finish_open(
        options: Options,
        storage: Arc<dyn Storage>,
        scan: LogScan,
        dir_lock: Box<dyn DirLock>,
        started: Instant,
    ) -> Result<Wal> {
        let dir = options.dir.clone();
        for seg in &scan.segments {
            // A crashed process may have left accepted bytes in the page cache only.
            seg.file
                .sync_data()
                .map_err(|e| Error::io("fdatasync", &seg.path, e))?;
        }
        let stats = Arc::new(Stats::default());
        let preparer = Preparer::new(PreparerConfig {
            storage: storage.clone(),
            dir: dir.clone(),
            segment_bytes: options.segment_bytes,
            recycle_max: options.recycle_segments_max,
            background: options.prepare_in_background,
            // log-io branch: the one wal.rs line of the preallocation work (prepare.rs).
            preallocation: options.preallocation,
            stats: stats.clone(),
            ready: spares(&scan, options.segment_bytes),
            free: scan.free.clone(),
            max_id: scan.max_id,
        })?;
        let mut discard: Vec<_> = scan
            .discard
            .iter()
            .map(|f| (f.id, f.path.clone()))
            .collect();
        discard.extend(odd_spares(&scan, options.segment_bytes));
        discard.sort_unstable_by_key(|(id, _)| std::cmp::Reverse(*id));
        for (id, path) in &discard {
            preparer.release(*id, path)?;
        }
        let log_id = scan.log_id.unwrap_or_else(rand::random);
        let mut table = SegmentTable::default();
        for seg in &scan.segments {
            table.push(entry_for(seg.header, &seg.path, &seg.file));
        }
        let needs_new = scan.segments.is_empty() || !scan.tail_clean;
        let active = if needs_new {
            let header_page = SegmentHeader {
                log_id,
                segment_id: 0,
                salt: 0,
                first_lsn: scan.next_lsn,
                prev_chain: scan.last_crc,
            };
            let (entry, active) = start_segment(&preparer, header_page, true)?;
            table.push(entry);
            active
        } else {
            let last = scan
                .segments
                .last()
                .ok_or_else(|| Error::InvalidArgument("no segment".into()))?;
            Active {
                path: last.path.clone(),
                file: last.file.clone(),
                seed: last.header.frame_seed(),
                offset: last.end_offset,
            }
        };
        // A scanned segment the table dropped (a later one starts at the same LSN: a cut
        // that accepted none of its frames, or a crash inside `truncate_after`) holds nothing
        // live. Release it now that the segment superseding it is durable: left in place, it
        // came back as the log's start once `truncate_after` released its successor, taking
        // the log's position (and, after a crash, stale frames) with it
        // (tests/model_proptest.rs).
        let superseded: Vec<(u64, PathBuf)> = scan
            .segments
            .iter()
            .filter(|s| !table.entries.iter().any(|e| e.id == s.header.segment_id))
            .map(|s| (s.header.segment_id, s.path.clone()))
            .collect();
        for (id, path) in &superseded {
            preparer.release(*id, path)?;
        }
        if scan.read_past_cache {
            // Read from the device, cut where it ends, synced: the cache no longer matters.
            crate::sync_failure::clear(&*storage, &dir)
                .map_err(|e| Error::io("remove", dir.join(crate::sync_failure::MARKER), e))?;
        }
        let report = RecoveryReport::from_scan(
            options.recovery,
            &scan,
            &table,
            discard.len() + superseded.len(),
            needs_new && !scan.segments.is_empty(),
            started,
        );
        let parts = Parts {
            log_id,
            read_only: false,
            active,
            table,
            stats,
            preparer: Some(preparer),
            report,
            lock: Some(dir_lock),
            storage: Some(storage.clone()),
        };
        Ok(Wal::assemble(dir, options, &scan, parts))
    }

    /// Opens an existing log for reading only: verifies it as `mode` says but changes
    /// nothing on disk and takes no lock (a writer may be running). Appends fail.
    pub fn open_read_only(
        dir: impl Into<PathBuf>,
        mode: RecoveryMode,
        storage: Arc<dyn Storage>,
    ) -> Result<Wal> {
        let started = Instant::now();
        let dir = dir.into();
        let scan = scan_log(&*storage, &dir, mode, OpenMode::Read, &mut |_| {})?;
        if let (None, Some(d)) = (scan.segments.last(), &scan.damage) {
            return Err(Error::Corruption {
                location: Box::new(d.location.clone()),
                reason: format!("{}; no record precedes the damage", d.reason),
            });
        }
        let Some(last) = scan.segments.last() else {
            return Err(Error::NotALog {
                dir,
                reason: "no initialized segment file (*.wal)".into(),
            });
        };
        let mut table = SegmentTable::default();
        for seg in &scan.segments {
            table.push(entry_for(seg.header, &seg.path, &seg.file));
        }
        let active = Active {
            path: last.path.clone(),
            file: last.file.clone(),
            seed: last.header.frame_seed(),
            offset: last.end_offset,
        };
        let options = Options::new(&dir).recovery(mode);
        let report = RecoveryReport::from_scan(mode, &scan, &table, 0, false, started);
        let parts = Parts {
            log_id: scan.log_id.unwrap_or(0),
            read_only: true,
            active,
            table,
            stats: Arc::new(Stats::default()),
            preparer: None,
            report,
            lock: None,
            storage: None,
        };
        Ok(Wal::assemble(dir, options, &scan, parts))
    }

    /// Builds the open log from recovery's outcome: the durable end is the next LSN - 1 (every
    /// accepted frame was synced, or, read-only, is what a reader may see).
    fn assemble(dir: PathBuf, options: Options, scan: &LogScan, parts: Parts) -> Wal {
        let durable = scan.next_lsn - 1;
        let append = AppendState {
            active: parts.active,
            next_lsn: scan.next_lsn,
            last_crc: scan.last_crc,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_records: 0,
            gather_target: 0,
            spare_bufs: Vec::new(),
        };
        let commit = CommitState {
            written_lsn: durable,
            ..CommitState::default()
        };
        Wal {
            inner: Arc::new(Inner {
                dir,
                options,
                log_id: parts.log_id,
                read_only: parts.read_only,
                append: Mutex::new(append),
                commit: Mutex::new(commit),
                gather_cv: Condvar::new(),
                durable: AtomicU64::new(durable),
                durable_event: Event::new(),
                table: RwLock::new(parts.table),
                maintenance: Mutex::new(()),
                poison: Mutex::new(None),
                poisoned: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                stats: parts.stats,
                preparer: parts.preparer,
                report: parts.report,
                _lock: parts.lock,
                storage: parts.storage,
            }),
        }
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The random id shared by all segments of this log.
    pub fn log_id(&self) -> u64 {
        self.inner.log_id
    }

    /// What recovery found when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// `Ok` while the log accepts appends; [`Error::Closed`] once closed, or
    /// [`Error::Poisoned`] after a failed write or sync. For waiters that must not wait on a
    /// log that can no longer make anything durable.
    pub fn check(&self) -> Result<()> {
        self.inner.check_open()
    }

    /// Highest LSN whose record, and every record before it, is on stable storage.
    /// `Lsn::ZERO` when nothing is. Never decreases, except through `truncate_after`.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.inner.durable.load(Ordering::Acquire))
    }

    /// The LSN the next append will get.
    pub fn next_lsn(&self) -> Lsn {
        Lsn(lock(&self.inner.append).next_lsn)
    }

    /// The first LSN still in the log (moves forward with `truncate_before`).
    pub fn first_lsn(&self) -> Lsn {
        Lsn(self.inner.read_table().first_lsn())
    }

    /// Record payload bytes appended since open; cheap (one atomic load), unlike
    /// [`Wal::stats`], which copies the latency histograms.
    pub fn bytes_appended(&self) -> u64 {
        self.inner.stats.bytes_appended.load(Ordering::Relaxed)
    }

    /// A copy of the log's counters.
    pub fn stats(&self) -> StatsSnapshot {
        let live = self.inner.read_table().entries.len();
        let spare = self
            .inner
            .preparer
            .as_ref()
            .map_or(0, Preparer::spare_count);
        self.inner.stats.snapshot(live, spare)
    }

    /// The live segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let table = self.inner.read_table();
        let durable = self.inner.durable.load(Ordering::Acquire);
        let n = table.entries.len();
        table
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| SegmentInfo {
                id: e.id,
                path: e.path.clone(),
                first_lsn: Lsn(e.first_lsn),
                last_lsn: Lsn(if i + 1 < n {
                    table.entries[i + 1].first_lsn - 1
                } else {
                    durable.max(e.first_lsn - 1)
                }),
                salt: e.salt,
                active: i + 1 == n,
            })
            .collect()
    }

    /// Makes every record appended so far durable; returns the durable LSN.
    pub fn sync(&self) -> Result<Lsn> {
        let target = lock(&self.inner.append).next_lsn - 1;
        self.inner.sync_to(target, true)?;
        Ok(self.durable_lsn())
    }

    /// Waits until `lsn` is durable, syncing (with any concurrent syncs) if needed. Fails
    /// for an LSN not yet appended.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        let next = lock(&self.inner.append).next_lsn;
        if lsn.0 >= next {
            return Err(Error::InvalidArgument(format!(
                "LSN {lsn} was not appended yet (next is {next})"
            )));
        }
        self.inner.sync_to(lsn.0, true)
    }

    /// Syncs, then closes the log: later calls fail with [`Error::Closed`] and tailing
    /// readers wake up with it.
    pub fn close(self) -> Result<()> {
        let outcome = if self.inner.read_only || self.inner.poisoned.load(Ordering::Acquire) {
            Ok(())
        } else {
            self.sync().map(|_| ())
        };
        self.inner.mark_closed();
        outcome
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if !self.inner.closed.load(Ordering::Acquire) && !self.inner.read_only {
            let _ = self.sync();
        }
        self.inner.mark_closed();
    }
}

/// A live segment, as [`Wal::segments`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment's id (also in its file name).
    pub id: u64,
    /// Its file.
    pub path: PathBuf,
    /// First LSN it holds.
    pub first_lsn: Lsn,
    /// Last durable LSN it holds (`first_lsn - 1` when empty).
    pub last_lsn: Lsn,
    /// Its generation salt.
    pub salt: u64,
    /// True for the segment appends go to.
    pub active: bool,
}

impl Inner {
    pub fn read_table(&self) -> std::sync::RwLockReadGuard<'_, SegmentTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write_table(&self) -> std::sync::RwLockWriteGuard<'_, SegmentTable> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::InvalidArgument("log was opened read-only".into()));
        }
        self.check_open()
    }

    pub fn check_open(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            let cause = lock(&self.poison).clone().unwrap_or_default();
            return Err(Error::Poisoned { cause });
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub fn poison_with(&self, e: &Error) {
        let mut p = lock(&self.poison);
        if p.is_none() {
            *p = Some(e.to_string());
        }
        self.poisoned.store(true, Ordering::Release);
        // Parked waiters are woken by the failed leader, which holds the commit lock here.
        self.gather_cv.notify_all();
        self.durable_event.notify(usize::MAX);
    }

    /// After `poison_with(e)`, with the log's locks released: leaves the sync-failure marker
    /// (sync_failure.rs), so that the next open reads the device, not pages a failed sync
    /// left cached. If it cannot, the poison cause says so.
    pub fn leave_sync_failure_marker(&self, e: &Error) {
        let Some(storage) = &self.storage else { return };
        if let Some(why) = crate::sync_failure::after_failure(&**storage, &self.dir, e) {
            if let Some(cause) = lock(&self.poison).as_mut() {
                cause.push_str(&format!(
                    " ({why}: reboot before reopening this log, or its next open may accept \
                     records that are only in the page cache)"
                ));
            }
        }
    }

    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        // Under the commit lock, so a caller that saw the log open and registered is woken.
        let wake = lock(&self.commit).waiters.all();
        wake.now();
        self.gather_cv.notify_all();
        self.durable_event.notify(usize::MAX);
    }

    pub fn preparer(&self) -> Result<&Preparer> {
        self.preparer
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("log was opened read-only".into()))
    }
}

pub(crate) fn entry_for(h: SegmentHeader, path: &Path, file: &Arc<dyn StorageFile>) -> TableEntry {
    TableEntry {
        id: h.segment_id,
        path: path.to_path_buf(),
        file: file.clone(),
        seed: h.frame_seed(),
        first_lsn: h.first_lsn,
        prev_chain: h.prev_chain,
        salt: h.salt,
    }
}

/// Initializes the next prepared segment with `template`'s log id, first LSN and chain
/// value (a fresh id and salt). With `sync`, the header is durable on return; otherwise the
/// caller writes it with the next group commit (returned as the active segment's first bytes).
pub(crate) fn start_segment(
    preparer: &Preparer,
    template: SegmentHeader,
    sync: bool,
) -> Result<(TableEntry, Active)> {
    let Prepared { id, path, file } = preparer.take()?;
    let header = SegmentHeader {
        segment_id: id,
        salt: rand::random(),
        ..template
    };
    if sync {
        // The header page, then zeros where the first frame goes: the end marker the group
        // commit writes after every chunk (see `commit.rs`), since a recycled file holds
        // stale bytes there.
        let mut page = header.encode_page();
        // As the group commit pads (see `commit.rs`).
        page.resize(
            end_marker_end(DATA_OFFSET, preparer.segment_bytes()) as usize,
            0,
        );
        file.write_all_at(&page, 0)
            .map_err(|e| Error::io("write", &path, e))?;
        file.sync_data()
            .map_err(|e| Error::io("fdatasync", &path, e))?;
    }
    let entry = entry_for(header, &path, &file);
    let active = Active {
        path,
        file,
        seed: header.frame_seed(),
        offset: DATA_OFFSET,
    };
    Ok((entry, active))
}

/// Blank spares of the right size, lowest id first.
fn spares(scan: &LogScan, segment_bytes: u64) -> Vec<Prepared> {
    scan.spares
        .iter()
        .filter(|f| f.len == segment_bytes)
        .map(|f| Prepared {
            id: f.id,
            path: f.path.clone(),
            file: f.file.clone(),
        })
        .collect()
}

/// Blank spares of another size (segment size changed): released, then recycled.
fn odd_spares(scan: &LogScan, segment_bytes: u64) -> Vec<(u64, PathBuf)> {
    scan.spares
        .iter()
        .filter(|f| f.len != segment_bytes)
        .map(|f| (f.id, f.path.clone()))
        .collect()
}

fn sync_parent(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    storage
        .sync_dir(parent)
        .map_err(|e| Error::io("fsync directory", parent, e))
}
