//! Releasing the log's head (`truncate_before`) and cutting its suffix (`truncate_after`).
//!
//! Both are crash-safe by ordering alone:
//! - `truncate_before` releases whole segments oldest first, with a directory fsync after
//!   each, so a crash leaves a contiguous log that starts at some segment boundary.
//! - `truncate_after` releases whole segments after the cut newest first (directory fsync
//!   each), then starts a new segment whose header names the cut LSN and its chain value,
//!   synced before the call returns. That header supersedes the stale frames that remain
//!   in the cut segment (recovery never reads past it), so nothing is rewritten in place and
//!   a crash at any point leaves either the old log or a prefix of it ending at or after
//!   the cut.

use crate::cursor::{FrameCursor, Step};
use crate::error::{Error, Result};
use crate::format::{SegmentHeader, DATA_OFFSET};
use crate::wal::{lock, start_segment, Active, TableEntry, Wal};
use crate::Lsn;
use std::sync::atomic::Ordering;

impl Wal {
    /// Releases every whole segment whose records all precede `lsn` (and are durable), for
    /// example once a checkpoint covering them is durable. The active segment is never
    /// released, nor a segment until the one after it holds a durable record (so a crash
    /// always leaves an initialized segment that carries the log's position). Released files
    /// are recycled or deleted. Returns how many were released.
    pub fn truncate_before(&self, lsn: Lsn) -> Result<usize> {
        let inner = &*self.inner;
        inner.check_writable()?;
        let _m = lock(&inner.maintenance);
        let mut released = 0;
        loop {
            let durable = inner.durable.load(Ordering::Acquire);
            let victim: Option<TableEntry> = {
                let table = inner.read_table();
                match table.entries.get(1) {
                    // The next segment must hold a durable record, not merely follow the
                    // durable end: only then is its header durable too (the group commit
                    // that synced the record synced its file). Released before that, a
                    // crash could lose the next header and, with it, every initialized
                    // segment: the log would reopen empty at LSN 1, reusing acknowledged
                    // LSNs (found by tests/crash_sim.rs, truncation_with_recycling seed 4002).
                    Some(next) if next.first_lsn <= lsn.0 && next.first_lsn <= durable => {
                        table.entries.first().cloned()
                    }
                    _ => None,
                }
            };
            let Some(victim) = victim else { break };
            inner.preparer()?.release(victim.id, &victim.path)?;
            inner.write_table().entries.retain(|e| e.id != victim.id);
            released += 1;
        }
        Ok(released)
    }

    /// Removes every record after `lsn`, so the next append gets `lsn + 1` (a consensus log
    /// drops uncommitted entries this way). Durable on return. `lsn` may be `first_lsn - 1`
    /// to empty the log; it may not fall inside an atomic batch.
    pub fn truncate_after(&self, lsn: Lsn) -> Result<()> {
        let inner = &*self.inner;
        inner.check_writable()?;
        let _m = lock(&inner.maintenance);
        self.sync()?;
        let mut a = lock(&inner.append);
        let last = a.next_lsn - 1;
        let first = inner.read_table().first_lsn();
        if lsn.0 >= last {
            return Ok(());
        }
        if lsn.0 + 1 < first {
            return Err(Error::Truncated {
                lsn,
                first: Lsn(first),
            });
        }
        let entries = inner.read_table().entries.clone();
        let keep = entries.iter().rposition(|e| e.first_lsn <= lsn.0);
        let prev_chain = match keep {
            Some(i) => chain_value_at(&entries[i], lsn.0)?,
            None => entries.first().map_or(0, |e| e.prev_chain),
        };
        // Newest first, so a crash leaves a contiguous prefix. Keep entries[0] while it is
        // the only proof of where the log starts (truncating everything).
        let release_from = keep.map_or(1, |i| i + 1);
        let cut = || -> Result<(TableEntry, Active)> {
            for e in entries.iter().skip(release_from).rev() {
                inner.preparer()?.release(e.id, &e.path)?;
            }
            let template = SegmentHeader {
                log_id: inner.log_id,
                segment_id: 0,
                salt: 0,
                first_lsn: lsn.0 + 1,
                prev_chain,
            };
            let (entry, active) = start_segment(inner.preparer()?, template, true)?;
            if keep.is_none() {
                if let Some(e) = entries.first() {
                    inner.preparer()?.release(e.id, &e.path)?;
                }
            }
            Ok((entry, active))
        };
        let (entry, active) = match cut() {
            Ok(done) => done,
            Err(e) => {
                // Files may be released and the new segment not durable: the open log no
                // longer matches the disk, so it must take no more appends (one into a
                // released file was acknowledged and then lost: found in review). The next
                // open recovers what the disk holds.
                inner.poison_with(&e);
                drop(a);
                let wake = lock(&inner.commit).waiters.all();
                wake.now();
                inner.leave_sync_failure_marker(&e);
                return Err(e);
            }
        };
        {
            let mut table = inner.write_table();
            table
                .entries
                .retain(|e| e.first_lsn <= lsn.0 && keep.is_some());
            table.push(entry);
        }
        a.active = active;
        a.next_lsn = lsn.0 + 1;
        a.last_crc = prev_chain;
        a.pending.clear();
        a.pending_bytes = 0;
        a.pending_records = 0;
        drop(a);
        let mut st = lock(&inner.commit);
        st.written_lsn = lsn.0;
        inner.durable.store(lsn.0, Ordering::Release);
        inner.durable_event.notify(usize::MAX);
        Ok(())
    }
}

/// The CRC of the frame that ends exactly at `lsn` in segment `e`.
fn chain_value_at(e: &TableEntry, lsn: u64) -> Result<u32> {
    if lsn + 1 == e.first_lsn {
        return Ok(e.prev_chain);
    }
    let len = e
        .file
        .len()
        .map_err(|err| Error::io("stat", &e.path, err))?;
    let mut cursor = FrameCursor::at(e.file.clone(), e.seed, len, DATA_OFFSET);
    loop {
        let at = cursor.offset();
        match cursor.next_frame() {
            Step::Frame(f) => {
                let end = f.header.lsn + f.record_count() - 1;
                if end == lsn {
                    return Ok(f.header.crc);
                }
                if end > lsn {
                    return Err(Error::InvalidArgument(format!(
                        "LSN {lsn} is inside the atomic batch {}..={end}",
                        f.header.lsn
                    )));
                }
            }
            Step::Stop(_) => {
                return Err(Error::corruption(
                    &e.path,
                    at,
                    lsn,
                    "record to truncate after not found",
                ));
            }
        }
    }
}
