//! Group commit: one caller at a time leads, writing every pending chunk and syncing every
//! written file on behalf of all who wait; the others wait on a condition variable. There is
//! no waiting window: while the leader syncs, new appends accumulate, and the next leader
//! takes them all, so batching grows with concurrency. The leader holds neither the append
//! lock nor the commit lock while it does I/O.
//!
//! Files are synced in the order they were first written, so a segment is always durable
//! before the segment after it: a durable frame in a later segment proves every earlier one.
//! A failed write or sync poisons the log (no retry: see docs/DURABILITY.md).

use crate::append::recycle_bufs;
use crate::error::{Error, Result};
use crate::format::FRAME_HEADER_BYTES;
use crate::wal::{lock, Inner};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl Inner {
    /// Returns once `target` is durable (`durable = true`) or at least handed to the OS.
    pub(crate) fn sync_to(&self, target: u64, durable: bool) -> Result<()> {
        let mut st = lock(&self.commit);
        loop {
            self.check_open()?;
            let reached = if durable {
                self.durable.load(Ordering::Acquire) >= target
            } else {
                st.written_lsn >= target
            };
            if reached {
                return Ok(());
            }
            if st.leader {
                st = self.commit_cv.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.leader = true;
            let mut unsynced = std::mem::take(&mut st.unsynced);
            let mut records = std::mem::take(&mut st.unsynced_records);
            drop(st);
            let outcome = self.lead(durable, &mut unsynced, &mut records);
            st = lock(&self.commit);
            st.leader = false;
            match outcome {
                Ok(written) => {
                    st.written_lsn = st.written_lsn.max(written);
                    if durable {
                        self.durable.fetch_max(written, Ordering::AcqRel);
                        self.durable_event.notify(usize::MAX);
                    } else {
                        st.unsynced = unsynced;
                        st.unsynced_records = records;
                    }
                    self.commit_cv.notify_all();
                }
                Err(e) => {
                    self.poison_with(&e);
                    return Err(e);
                }
            }
        }
    }

    /// Writes all pending chunks, then (if `durable`) syncs every file written since the last
    /// sync. Returns the highest LSN now written (and synced, if asked).
    fn lead(
        &self,
        durable: bool,
        unsynced: &mut Vec<(std::path::PathBuf, Arc<dyn crate::storage::StorageFile>)>,
        records: &mut u64,
    ) -> Result<u64> {
        let (mut chunks, written) = {
            let mut a = lock(&self.append);
            a.pending_bytes = 0;
            (std::mem::take(&mut a.pending), a.next_lsn - 1)
        };
        for c in &mut chunks {
            // End marker: zeros where the next frame header goes, written with the frames
            // (the next write overwrites them). Recovery ends a segment cleanly only at zeros;
            // in a recycled file the bytes there are stale frames of its earlier use, so
            // without the marker a cleanly closed log read as a torn tail there.
            let end = c.offset + c.buf.len() as u64;
            let marker_bytes = (self.options.segment_bytes.saturating_sub(end))
                .min(FRAME_HEADER_BYTES as u64) as usize;
            c.buf.resize(c.buf.len() + marker_bytes, 0);
            c.file
                .write_all_at(&c.buf, c.offset)
                .map_err(|e| Error::io("write", &c.path, e))?;
            *records += c.records;
            if !unsynced.iter().any(|(p, _)| *p == c.path) {
                unsynced.push((c.path.clone(), c.file.clone()));
            }
        }
        recycle_bufs(&mut lock(&self.append), chunks);
        if durable {
            for (path, file) in unsynced.iter() {
                let started = Instant::now();
                file.sync_data()
                    .map_err(|e| Error::io("fdatasync", path, e))?;
                self.stats.record_fsync(started.elapsed());
            }
            unsynced.clear();
            if *records > 0 {
                self.stats.record_group_commit(*records);
            }
            *records = 0;
        }
        Ok(written)
    }
}
