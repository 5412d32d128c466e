//! Preparing the next segment ahead of the writer.
//!
//! A prepared segment is a file named for its id, full length, with a blank header, whose
//! length and directory entry are durable. Released files are recycled by blanking their
//! header and first frame header (their old frames are salted with the old identity and can
//! never verify again). New files are made as [`Preallocation`] says:
//!
//! - **zero-filled** (the default): zeros written and synced over the whole file, so a later durable append
//!   overwrites written blocks and its `fdatasync` needs no metadata journal commit. One
//!   `fallocate(FALLOC_FL_WRITE_ZEROES)` where the kernel and device can, else `O_DIRECT`
//!   writes from one zero buffer (both are the storage's `write_zeroes`; remembered when it
//!   cannot), else buffered 1 MiB writes (synced every 8 MiB when the fill may be cut over).
//! - **reserved**: blocks reserved without being written (`fallocate`, else `set_len`), then
//!   synced: no data written, but the appends' syncs commit block metadata.
//! - **adaptive**: zero-filled, unless the writer takes segments faster than
//!   the last zero-fill's pace could make them (it would wait, and the disk would write every
//!   byte twice), or is waiting right now. A zero-fill under way when the writer starts
//!   waiting is cut over: the unsynced zeros are cut off, the rest reserved (only with the
//!   buffered fallback: the storage's `write_zeroes` fills a whole file in one call).
//!
//! Rotation then costs the writer no system call. Ids of prepared segments are always above
//! every initialized segment's id, and the writer takes the lowest, so a blank file never
//! sits between initialized ones.
//!
//! # Why every way keeps the durability contract
//! A durable append into a prepared segment is acknowledged only after `fdatasync` of that
//! segment returns, and `fdatasync` makes durable whatever metadata is needed to read back
//! the data written before it (block allocation, unwritten-to-written conversion, length).
//! So no way of preparing makes an acknowledgement depend on metadata that is not synced;
//! the ways differ only in how much that `fdatasync` has to commit. The preparer syncs the
//! file (length, reservation, zeros) and its directory entry before the writer gets it, so
//! a prepared segment never comes back short or nameless after a crash either.

use crate::error::{Error, Result};
use crate::format::{free_file_name, segment_file_name, DATA_OFFSET, FRAME_HEADER_BYTES};
use crate::options::Preallocation;
use crate::stats::Stats;
use crate::storage::{join, OpenMode, Storage, StorageFile};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Zeros written per call when filling a new segment.
const ZERO_FILL_CHUNK_BYTES: usize = 1 << 20;

/// Zeros synced at a time by a fill that may be cut over. An `fdatasync` cannot be cut
/// short, so this bounds how long a writer that starts waiting mid-fill waits before the
/// fill is cut over; what was synced stays written (cheap appends there).
const ZERO_FILL_SYNC_BYTES: u64 = 8 << 20;

/// `Adaptive` reserves when the writer took its last segment sooner than this many times
/// the time a zero-fill of one segment takes: the next zero-fill, sharing the disk with the
/// writer, would likely not be ready in time, and would write every byte twice.
const ZERO_FILL_PACE_MARGIN: u32 = 2;

/// A segment file ready to be initialized.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub id: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
}

#[derive(Debug)]
struct State {
    ready: VecDeque<Prepared>,
    free: Vec<(u64, PathBuf)>,
    /// The id the next new segment gets; `None` once `u64::MAX` was handed out (or a file
    /// name already uses it): ids never wrap, since a wrapped id would sort before every
    /// live segment and be reused.
    next_id: Option<u64>,
    /// The background preparation's failure, handed whole to the next `take`: kept as the
    /// typed error (a string lost `Error::NoSpace`, so ENOSPC reached the append as a plain
    /// I/O error; tests/matrix_enospc.rs).
    error: Option<Error>,
    wanted: bool,
    shutdown: bool,
    /// Segments taken so far. The first (usually at open) says nothing of the writer's pace.
    takes: u64,
    /// A writer is blocked in `take` waiting for a segment.
    writer_waiting: bool,
    /// When the last segment was taken, and how long after the one before.
    last_take_at: Option<Instant>,
    take_interval: Option<Duration>,
    /// How long the last zero-fill took per segment (measured, scaled to a whole segment
    /// when it was cut over).
    zero_fill_time: Option<Duration>,
}

/// The pace the adaptive choice looks at (a copy of the state's clock readings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pace {
    /// A writer waits for a segment now, after at least one earlier take.
    writer_waiting: bool,
    take_interval: Option<Duration>,
    zero_fill_time: Option<Duration>,
}

/// How one new segment file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    ZeroFill {
        /// Cut the fill over to reserving when a writer starts waiting.
        cut_over: bool,
    },
    Reserve,
}

/// The method for the next new segment (see [`Preallocation`]).
fn choose(policy: Preallocation, background: bool, pace: Pace) -> Method {
    match policy {
        Preallocation::ZeroFill => Method::ZeroFill { cut_over: false },
        Preallocation::Reserve => Method::Reserve,
        // Inline preparation is the crash simulator's deterministic mode: no clocks.
        Preallocation::Adaptive if !background => Method::ZeroFill { cut_over: false },
        Preallocation::Adaptive => {
            let outpaced = match (pace.take_interval, pace.zero_fill_time) {
                (Some(interval), Some(fill)) => {
                    interval < fill.saturating_mul(ZERO_FILL_PACE_MARGIN)
                }
                _ => false,
            };
            if pace.writer_waiting || outpaced {
                Method::Reserve
            } else {
                Method::ZeroFill { cut_over: true }
            }
        }
    }
}

impl State {
    fn pace(&self) -> Pace {
        Pace {
            writer_waiting: self.writer_waiting && self.takes > 0,
            take_interval: self.take_interval,
            zero_fill_time: self.zero_fill_time,
        }
    }

    fn note_take(&mut self, now: Instant) {
        self.takes += 1;
        self.writer_waiting = false;
        self.take_interval = self
            .last_take_at
            .map(|at| now.saturating_duration_since(at));
        self.last_take_at = Some(now);
    }
}

/// How a new segment came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    ZeroFilled,
    /// Reserved from this offset on (0: reserved whole; more: a zero-fill cut over).
    ReservedFrom(u64),
}

#[derive(Debug)]
struct Shared {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    segment_bytes: u64,
    recycle_max: usize,
    preallocation: Preallocation,
    background: bool,
    stats: Arc<Stats>,
    state: Mutex<State>,
    cv: Condvar,
    /// Set once `write_zeroes` or `allocate` answered `Unsupported`: not asked again.
    write_zeroes_unsupported: AtomicBool,
    allocate_unsupported: AtomicBool,
}

/// Hands prepared segments to the writer; prepares them inline or on a thread.
#[derive(Debug)]
pub(crate) struct Preparer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Settings for [`Preparer::new`].
pub(crate) struct PreparerConfig {
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub recycle_max: usize,
    pub background: bool,
    pub preallocation: Preallocation,
    pub stats: Arc<Stats>,
    /// Blank spares found by recovery, in id order.
    pub ready: Vec<Prepared>,
    /// Released files found by recovery.
    pub free: Vec<(u64, PathBuf)>,
    /// Highest id in use by any file.
    pub max_id: u64,
}

impl Preparer {
    pub fn new(config: PreparerConfig) -> Result<Self> {
        let shared = Arc::new(Shared {
            storage: config.storage,
            dir: config.dir,
            segment_bytes: config.segment_bytes,
            recycle_max: config.recycle_max,
            preallocation: config.preallocation,
            background: config.background,
            stats: config.stats,
            state: Mutex::new(State {
                ready: config.ready.into(),
                free: config.free,
                // A file named with the highest id (say, ffffffffffffffff.wal copied in by
                // hand) leaves no id for a new segment: `take` then fails instead of the
                // addition overflowing (found by fuzz/segment_file).
                next_id: config.max_id.checked_add(1),
                error: None,
                wanted: true,
                shutdown: false,
                takes: 0,
                writer_waiting: false,
                last_take_at: None,
                take_interval: None,
                zero_fill_time: None,
            }),
            cv: Condvar::new(),
            write_zeroes_unsupported: AtomicBool::new(false),
            allocate_unsupported: AtomicBool::new(false),
        });
        let thread = if config.background {
            let worker = shared.clone();
            let handle = std::thread::Builder::new()
                .name("walden-prepare".into())
                .spawn(move || worker.run())
                .map_err(|e| Error::io("spawn preparer thread", PathBuf::new(), e))?;
            Some(handle)
        } else {
            None
        };
        Ok(Preparer { shared, thread })
    }

    /// The next prepared segment (lowest id), preparing one now if none is ready and no
    /// thread is running. An error here leaves the log untouched; a later call retries.
    pub fn take(&self) -> Result<Prepared> {
        let mut st = self.shared.lock();
        loop {
            if let Some(p) = st.ready.pop_front() {
                st.note_take(Instant::now());
                st.wanted = true;
                self.shared.cv.notify_all();
                return Ok(p);
            }
            if let Some(e) = st.error.take() {
                st.writer_waiting = false;
                return Err(e);
            }
            if self.thread.is_none() {
                drop(st);
                let prepared = self.shared.prepare_one()?;
                self.shared.lock().note_take(Instant::now());
                return Ok(prepared);
            }
            st.wanted = true;
            // Seen by the preparer between zero-fill chunks: it cuts the fill over.
            st.writer_waiting = true;
            self.shared.cv.notify_all();
            st = self.shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Releases a segment that no longer holds live records: kept for reuse (renamed to
    /// `.free`) while fewer than `recycle_max` wait, otherwise deleted. Durable on return.
    pub fn release(&self, id: u64, path: &Path) -> Result<()> {
        let sh = &self.shared;
        let keep = sh.lock().free.len() < sh.recycle_max;
        if keep {
            let to = join(&sh.dir, &free_file_name(id));
            sh.storage
                .rename(path, &to)
                .map_err(|e| Error::io("rename", path, e))?;
            sh.sync_dir()?;
            sh.lock().free.push((id, to));
        } else {
            sh.storage
                .remove(path)
                .map_err(|e| Error::io("remove", path, e))?;
            sh.sync_dir()?;
        }
        sh.stats.segments_released.fetch_add(1, Relaxed);
        Ok(())
    }

    /// The size of every segment it prepares.
    pub fn segment_bytes(&self) -> u64 {
        self.shared.segment_bytes
    }

    /// Prepared plus released segments waiting now.
    pub fn spare_count(&self) -> usize {
        let st = self.shared.lock();
        st.ready.len() + st.free.len()
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sync_dir(&self) -> Result<()> {
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))
    }

    fn run(&self) {
        let mut st = self.lock();
        while !st.shutdown {
            if st.wanted && st.ready.is_empty() && st.error.is_none() {
                drop(st);
                let outcome = self.prepare_one();
                st = self.lock();
                match outcome {
                    Ok(p) => st.ready.push_back(p),
                    Err(e) => st.error = Some(e),
                }
                st.wanted = false;
                self.cv.notify_all();
                continue;
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Prepares one segment with a fresh id, recycling a released file when there is one.
    fn prepare_one(&self) -> Result<Prepared> {
        let (id, recycle) = {
            let mut st = self.lock();
            let Some(id) = st.next_id else {
                return Err(Error::io(
                    "prepare segment",
                    &self.dir,
                    std::io::Error::other("segment ids exhausted: id 0xffffffffffffffff is in use"),
                ));
            };
            st.next_id = id.checked_add(1);
            (id, st.free.pop())
        };
        let path = join(&self.dir, &segment_file_name(id));
        match recycle {
            Some((_, from)) => self.recycle(&from, &path)?,
            None => {
                let method = {
                    let st = self.lock();
                    choose(self.preallocation, self.background, st.pace())
                };
                self.create(&path, method)?;
            }
        }
        let file = self
            .storage
            .open(&path, OpenMode::ReadWrite)
            .map_err(|e| Error::io("open", &path, e))?;
        Ok(Prepared { id, path, file })
    }

    fn recycle(&self, from: &Path, to: &Path) -> Result<()> {
        let file = self
            .storage
            .open(from, OpenMode::ReadWrite)
            .map_err(|e| Error::io("open", from, e))?;
        // Blank the header page and the first frame's header: the old frames stay (their CRCs
        // are salted with the old identity), but none can sit where a new first frame goes.
        // Recovery walks the frame headers of a file whose own header was torn, without CRCs,
        // to tell a lost rotation from lost acknowledged data; after `truncate_after`, a
        // recycled file's old first frames continue the log's chain exactly, and read as
        // proof of acknowledged data (tests/matrix_truncate_crash.rs).
        file.write_all_at(&[0u8; DATA_OFFSET as usize + FRAME_HEADER_BYTES], 0)
            .map_err(|e| Error::io("write", from, e))?;
        if file.len().map_err(|e| Error::io("stat", from, e))? != self.segment_bytes {
            file.set_len(self.segment_bytes)
                .map_err(|e| Error::io("set length", from, e))?;
        }
        file.sync_data()
            .map_err(|e| Error::io("fdatasync", from, e))?;
        self.storage
            .rename(from, to)
            .map_err(|e| Error::io("rename", from, e))?;
        self.sync_dir()?;
        self.stats.segments_recycled.fetch_add(1, Relaxed);
        Ok(())
    }

    fn create(&self, path: &Path, method: Method) -> Result<()> {
        let made = self.create_as(path, method);
        if made.is_err() {
            // Best effort: a partial file with a blank header is harmless, but wastes space.
            let _ = self.storage.remove(path);
        }
        let made = made?;
        self.stats.segments_created.fetch_add(1, Relaxed);
        if made != Made::ZeroFilled {
            self.stats.segments_reserved.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Creates the file, makes it full length as `method` says, and syncs its data and
    /// directory entry.
    fn create_as(&self, path: &Path, method: Method) -> Result<Made> {
        let file = self
            .storage
            .open(path, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", path, e))?;
        let made = match method {
            Method::ZeroFill { cut_over } => self.zero_fill(path, &*file, cut_over)?,
            Method::Reserve => {
                self.reserve(path, &*file, 0)?;
                file.sync_data()
                    .map_err(|e| Error::io("fdatasync", path, e))?;
                Made::ReservedFrom(0)
            }
        };
        self.sync_dir()?;
        Ok(made)
    }

    /// Writes zeros over the whole file and syncs them; with `cut_over`, stops as soon as a
    /// writer waits, keeps the synced zeros and reserves the rest (then synced too).
    fn zero_fill(&self, path: &Path, file: &dyn StorageFile, cut_over: bool) -> Result<Made> {
        let started = Instant::now();
        if !self.write_zeroes_unsupported.load(Relaxed) {
            match file.write_zeroes(0, self.segment_bytes) {
                Ok(()) => {
                    file.sync_data()
                        .map_err(|e| Error::io("fdatasync", path, e))?;
                    self.lock().zero_fill_time = Some(started.elapsed());
                    return Ok(Made::ZeroFilled);
                }
                Err(e) if e.kind() == ErrorKind::Unsupported => {
                    self.write_zeroes_unsupported.store(true, Relaxed);
                }
                Err(e) => return Err(Error::io("write zeroes", path, e)),
            }
        }
        let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
        let (mut at, mut synced) = (0u64, 0u64);
        while at < self.segment_bytes {
            if cut_over && self.lock().pace().writer_waiting {
                // The writer outran the fill: the unsynced zeros go (nothing to flush), the
                // rest is reserved. Its pace, scaled from what was done, steers the next
                // choice towards reserving.
                if synced > 0 {
                    let whole =
                        started.elapsed().as_secs_f64() * self.segment_bytes as f64 / synced as f64;
                    self.lock().zero_fill_time = Some(Duration::from_secs_f64(whole));
                }
                file.set_len(synced)
                    .map_err(|e| Error::io("set length", path, e))?;
                self.reserve(path, file, synced)?;
                file.sync_data()
                    .map_err(|e| Error::io("fdatasync", path, e))?;
                return Ok(Made::ReservedFrom(synced));
            }
            let n = (self.segment_bytes - at).min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
            file.write_all_at(zeros.get(..n).unwrap_or_default(), at)
                .map_err(|e| Error::io("write", path, e))?;
            at += n as u64;
            // Synced in steps only when the fill may be cut over (one sync otherwise).
            let step_done = cut_over && at - synced >= ZERO_FILL_SYNC_BYTES;
            if step_done || at == self.segment_bytes {
                file.sync_data()
                    .map_err(|e| Error::io("fdatasync", path, e))?;
                synced = at;
            }
        }
        self.lock().zero_fill_time = Some(started.elapsed());
        Ok(Made::ZeroFilled)
    }

    /// Extends the file to full length from `from` by reserving blocks (`allocate`), or by
    /// `set_len` where reserving is unsupported. Not synced.
    fn reserve(&self, path: &Path, file: &dyn StorageFile, from: u64) -> Result<()> {
        let len = self.segment_bytes - from;
        if !self.allocate_unsupported.load(Relaxed) {
            match file.allocate(from, len) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Unsupported => {
                    self.allocate_unsupported.store(true, Relaxed);
                }
                Err(e) => return Err(Error::io("allocate", path, e)),
            }
        }
        file.set_len(self.segment_bytes)
            .map_err(|e| Error::io("set length", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pace(waiting: bool, interval_ms: Option<u32>, fill_ms: Option<u32>) -> Pace {
        Pace {
            writer_waiting: waiting,
            take_interval: interval_ms.map(|m| MS * m),
            zero_fill_time: fill_ms.map(|m| MS * m),
        }
    }

    #[test]
    fn fixed_policies_ignore_the_pace() {
        for p in [
            pace(true, Some(1), Some(100)),
            pace(false, None, None),
            pace(false, Some(10_000), Some(1)),
        ] {
            for background in [false, true] {
                assert_eq!(
                    choose(Preallocation::ZeroFill, background, p),
                    Method::ZeroFill { cut_over: false }
                );
                assert_eq!(
                    choose(Preallocation::Reserve, background, p),
                    Method::Reserve
                );
            }
            assert_eq!(
                choose(Preallocation::Adaptive, false, p),
                Method::ZeroFill { cut_over: false },
                "inline preparation is deterministic"
            );
        }
    }

    #[test]
    fn adaptive_reserves_only_for_a_writer_that_outruns_the_zero_fill() {
        let adaptive = |p| choose(Preallocation::Adaptive, true, p);
        let zero_fill = Method::ZeroFill { cut_over: true };
        // Nothing known yet (the first segments): zero-fill, ready to cut over.
        assert_eq!(adaptive(pace(false, None, None)), zero_fill);
        assert_eq!(adaptive(pace(false, Some(5), None)), zero_fill);
        assert_eq!(adaptive(pace(false, None, Some(50))), zero_fill);
        // A segment every 99 ms against a 50 ms zero-fill: within the margin, reserve.
        assert_eq!(adaptive(pace(false, Some(99), Some(50))), Method::Reserve);
        assert_eq!(adaptive(pace(false, Some(100), Some(50))), zero_fill);
        assert_eq!(adaptive(pace(false, Some(60_000), Some(50))), zero_fill);
        // A writer waiting now: reserve, whatever the history.
        assert_eq!(adaptive(pace(true, Some(60_000), Some(1))), Method::Reserve);
        assert_eq!(adaptive(pace(true, None, None)), Method::Reserve);
    }

    #[test]
    fn the_first_take_says_nothing_of_the_pace() {
        let mut st = State {
            ready: VecDeque::new(),
            free: Vec::new(),
            next_id: Some(1),
            error: None,
            wanted: true,
            shutdown: false,
            takes: 0,
            writer_waiting: true,
            last_take_at: None,
            take_interval: None,
            zero_fill_time: None,
        };
        // The open waits for its first segment: not a writer outrunning the preparer.
        assert!(!st.pace().writer_waiting);
        let t0 = Instant::now();
        st.note_take(t0);
        assert_eq!((st.takes, st.take_interval), (1, None));
        assert!(!st.writer_waiting, "a take ends the wait");
        st.writer_waiting = true;
        assert!(st.pace().writer_waiting, "a rotation waits");
        st.note_take(t0 + MS * 40);
        assert_eq!(st.take_interval, Some(MS * 40));
        assert_eq!(st.pace().take_interval, Some(MS * 40));
    }
}
