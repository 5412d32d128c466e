//! Group commit: one caller at a time leads, writing every pending chunk and syncing every
//! written file on behalf of all who wait; the others wait for its event. There is no fixed
//! waiting window: while the leader syncs, new appends accumulate, and the next leader takes
//! them all, so batching grows with concurrency; before it takes them, a leader may wait for
//! the writers the last group just released, never longer than about one sync (see
//! [`crate::regroup`]). The leader holds neither the append lock nor the commit lock while
//! it does I/O.
//!
//! Followers park in [`crate::waiters`]; a finished group wakes only the ones it
//! satisfied, and one more to lead the next group.
//!
//! Files are synced in the order they were first written, so a segment is always durable
//! before the segment after it: a durable frame in a later segment proves every earlier one.
//! A failed write or sync poisons the log (no retry: see docs/DURABILITY.md).

use crate::append::recycle_bufs;
use crate::error::{Error, Result};
use crate::format::FRAME_HEADER_BYTES;

/// The page size the end marker pads to (the common 4 KiB; a larger page only means some
/// writes still read their last page first).
const PAGE_BYTES: u64 = 4096;

/// Where the zeros written after frames that end at `end` stop: past the next frame
/// header's place, at the end of the page that place ends in, or at the segment's end
/// (see [`Inner::lead`] for why).
pub(crate) fn end_marker_end(end: u64, segment_bytes: u64) -> u64 {
    (end + FRAME_HEADER_BYTES as u64)
        .next_multiple_of(PAGE_BYTES)
        .min(segment_bytes)
}
use crate::regroup::Gather;
use crate::waiters::Mark;
use crate::wal::{lock, Inner};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one leader's turn did.
struct Group {
    /// The highest LSN now written (and synced, if asked).
    written: u64,
    /// Records made durable by this group (0 when not syncing).
    records: u64,
    /// Time spent in fdatasync.
    sync_time: Duration,
}

impl Inner {
    /// Returns once `target` is durable (`durable = true`) or at least handed to the OS.
    pub(crate) fn sync_to(&self, target: u64, durable: bool) -> Result<()> {
        loop {
            self.check_open()?;
            // Followers released by a group see it here without touching the commit lock,
            // so the next leader does not queue behind them for it.
            if durable && self.durable.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            let mut st = lock(&self.commit);
            // Checked under the commit lock, which a failed leader holds until it has
            // poisoned the log: a caller must never lead after a failed group, whose chunks
            // are gone, or it would mark them durable (found by crash_sim).
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
                // Registered under the lock the leader takes before it wakes anyone: no lost
                // wake-up. Woken once: when `target` is reached, or to lead.
                let mark = if durable {
                    Mark::Durable
                } else {
                    Mark::Written
                };
                let parked = st.waiters.register(target, mark);
                drop(st);
                parked.park();
                continue;
            }
            st.leader = true;
            drop(st);
            // Only a leader reads the pending count (followers never take the append lock
            // here); it is read between the two commit locks because truncation takes the
            // append lock before the commit lock.
            let plan = if durable && self.options.regroup {
                let pending = lock(&self.append).pending_records;
                lock(&self.commit).regroup.plan(pending)
            } else {
                None
            };
            if let Some(plan) = plan {
                let (started_with, gathered, reached) = self.gather(plan);
                lock(&self.commit)
                    .regroup
                    .gathered(plan, started_with, gathered, reached);
            }
            let mut st = lock(&self.commit);
            let mut unsynced = std::mem::take(&mut st.unsynced);
            let mut records = std::mem::take(&mut st.unsynced_records);
            drop(st);
            let outcome = self.lead(durable, &mut unsynced, &mut records);
            let pending_after = lock(&self.append).pending_records;
            let mut st = lock(&self.commit);
            st.leader = false;
            match outcome {
                Ok(group) => {
                    st.written_lsn = st.written_lsn.max(group.written);
                    if durable {
                        st.regroup
                            .group_done(group.records, pending_after, group.sync_time);
                        self.durable.fetch_max(group.written, Ordering::AcqRel);
                    } else {
                        st.unsynced = unsynced;
                        st.unsynced_records = records;
                    }
                    let durable_now = self.durable.load(Ordering::Acquire);
                    let written = st.written_lsn;
                    let wake = st.waiters.satisfied(durable_now, written);
                    drop(st);
                    wake.now();
                    if durable {
                        self.durable_event.notify(usize::MAX);
                    }
                }
                Err(e) => {
                    // Poisoned before the commit lock is released: see above.
                    self.poison_with(&e);
                    let wake = st.waiters.all();
                    drop(st);
                    wake.now();
                    // I/O on a failing disk: not under the commit lock.
                    self.leave_sync_failure_marker(&e);
                    return Err(e);
                }
            }
        }
    }

    /// Waits (as the leader, before it takes the pending chunks) until `plan.records` are
    /// pending or `plan.wait` has passed: see [`crate::regroup`]. Returns the records pending
    /// at the start and at the end, and whether the goal was met.
    fn gather(&self, plan: Gather) -> (u64, u64, bool) {
        let deadline = Instant::now() + plan.wait;
        let mut a = lock(&self.append);
        let started_with = a.pending_records;
        loop {
            if a.pending_records >= plan.records {
                a.gather_target = 0;
                return (started_with, a.pending_records, true);
            }
            let now = Instant::now();
            if now >= deadline || self.check_open().is_err() {
                a.gather_target = 0;
                return (started_with, a.pending_records, false);
            }
            a.gather_target = plan.records;
            a = self
                .gather_cv
                .wait_timeout(a, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Writes all pending chunks, then (if `durable`) syncs every file written since the last
    /// sync. Returns the highest LSN now written (and synced, if asked).
    fn lead(
        &self,
        durable: bool,
        unsynced: &mut Vec<(std::path::PathBuf, Arc<dyn crate::storage::StorageFile>)>,
        records: &mut u64,
    ) -> Result<Group> {
        let (mut chunks, written) = {
            let mut a = lock(&self.append);
            a.pending_bytes = 0;
            a.pending_records = 0;
            (std::mem::take(&mut a.pending), a.next_lsn - 1)
        };
        for c in &mut chunks {
            // End marker: zeros where the next frame header goes, written with the frames
            // (the next write overwrites them). Recovery ends a segment cleanly only at zeros;
            // in a recycled file the bytes there are stale frames of its earlier use, so
            // without the marker a cleanly closed log read as a torn tail there.
            //
            // The zeros run on to the end of the page the marker ends in: a buffered write
            // of part of a page that is not in the page cache makes the kernel read that
            // page first, and segments zero-filled with O_DIRECT are not in the cache. Cut
            // at the marker, every 4 KiB append read a page before its fdatasync (W1 4 KiB
            // fell from 0.97x to 0.70x of the floor); padded, the next write's first page
            // is the one this write left in the cache.
            let end = c.offset + c.buf.len() as u64;
            let marker_end = end_marker_end(end, self.options.segment_bytes);
            let marker_bytes = marker_end.saturating_sub(end) as usize;
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
        let mut group = Group {
            written,
            records: 0,
            sync_time: Duration::ZERO,
        };
        if durable {
            for (path, file) in unsynced.iter() {
                let started = Instant::now();
                file.sync_data()
                    .map_err(|e| Error::io("fdatasync", path, e))?;
                let took = started.elapsed();
                self.stats.record_fsync(took);
                group.sync_time += took;
            }
            unsynced.clear();
            if *records > 0 {
                self.stats.record_group_commit(*records);
            }
            group.records = std::mem::take(records);
        }
        Ok(group)
    }
}
