//! Preparing the next segment ahead of the writer.
//!
//! A prepared segment is a file named for its id, full length, with a blank header, whose
//! directory entry is durable. New files are written with zeros (so a later durable append
//! overwrites allocated blocks and `fdatasync` needs no metadata journal commit); released
//! files are recycled by blanking their header and first frame header (their old frames are
//! salted with the old identity and can never verify again). Rotation then costs the writer
//! no system call.
//!
//! Ids of prepared segments are always above every initialized segment's id, and the writer
//! takes the lowest, so a blank file never sits between initialized ones.

use crate::error::{Error, Result};
use crate::format::{free_file_name, segment_file_name, DATA_OFFSET, FRAME_HEADER_BYTES};
use crate::stats::Stats;
use crate::storage::{join, OpenMode, Storage, StorageFile};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Zeros written per call when filling a new segment.
const ZERO_FILL_CHUNK_BYTES: usize = 1 << 20;

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
}

#[derive(Debug)]
struct Shared {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    segment_bytes: u64,
    recycle_max: usize,
    stats: Arc<Stats>,
    state: Mutex<State>,
    cv: Condvar,
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
            }),
            cv: Condvar::new(),
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
                st.wanted = true;
                self.shared.cv.notify_all();
                return Ok(p);
            }
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            if self.thread.is_none() {
                drop(st);
                return self.shared.prepare_one();
            }
            st.wanted = true;
            self.shared.cv.notify_all();
            st = self.shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Releases a segment that no longer holds live records: kept for reuse (renamed to
    /// `.free`) while fewer than `recycle_max` wait, otherwise deleted. Durable on return.
    pub fn release(&self, id: u64, path: &std::path::Path) -> Result<()> {
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
            None => self.create(&path)?,
        }
        let file = self
            .storage
            .open(&path, OpenMode::ReadWrite)
            .map_err(|e| Error::io("open", &path, e))?;
        Ok(Prepared { id, path, file })
    }

    fn recycle(&self, from: &std::path::Path, to: &std::path::Path) -> Result<()> {
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

    fn create(&self, path: &std::path::Path) -> Result<()> {
        let made = self.create_zero_filled(path);
        if made.is_err() {
            // Best effort: a partial file with a blank header is harmless, but wastes space.
            let _ = self.storage.remove(path);
        }
        made
    }

    fn create_zero_filled(&self, path: &std::path::Path) -> Result<()> {
        let file = self
            .storage
            .open(path, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", path, e))?;
        let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
        let mut at = 0u64;
        while at < self.segment_bytes {
            let n = (self.segment_bytes - at).min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
            file.write_all_at(zeros.get(..n).unwrap_or_default(), at)
                .map_err(|e| Error::io("write", path, e))?;
            at += n as u64;
        }
        file.sync_data()
            .map_err(|e| Error::io("fdatasync", path, e))?;
        self.sync_dir()?;
        self.stats.segments_created.fetch_add(1, Relaxed);
        Ok(())
    }
}
