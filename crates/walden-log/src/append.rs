//! The append path: assign LSNs and copy encoded frames into the pending buffer under the
//! append lock (no system call there, not even at rotation), then make them durable through
//! the group commit in [`crate::commit`].

use crate::error::{Error, Result};
use crate::format::{
    batch_payload_bytes, encode_batch_frame, encode_record_frame, frame_bytes, SegmentHeader,
    BATCH_RECORDS_MAX,
};
use crate::options::Durability;
use crate::wal::{lock, start_segment, AppendState, Chunk, Inner, Wal};
use crate::Lsn;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;

/// Pending buffers kept for reuse, and the largest capacity worth keeping.
const SPARE_BUFS_MAX: usize = 4;
const SPARE_BUF_BYTES_MAX: usize = 8 << 20;

impl Wal {
    /// Appends one record at the log's default durability; returns its LSN.
    pub fn append(&self, record: &[u8]) -> Result<Lsn> {
        self.append_with(record, self.inner.options.durability)
    }

    /// Appends one record; with [`Durability::Sync`] it is on stable storage when this
    /// returns `Ok`. On `Err` nothing is acknowledged.
    pub fn append_with(&self, record: &[u8], durability: Durability) -> Result<Lsn> {
        let inner = &*self.inner;
        inner.check_writable()?;
        check_size(inner, "record", record.len() as u64)?;
        let (lsn, pending) =
            inner.reserve(record.len() as u64, 1, |buf, seed, lsn, durable, prev| {
                encode_record_frame(buf, seed, lsn, durable, prev, record)
            })?;
        inner
            .stats
            .bytes_appended
            .fetch_add(record.len() as u64, Relaxed);
        inner.after_append(lsn, pending, durability)?;
        Ok(Lsn(lsn))
    }

    /// Appends records as one atomic batch: after a crash either all of them are in the log or
    /// none is. Returns the LSN of the first; the others follow densely.
    pub fn append_batch<R: AsRef<[u8]>>(
        &self,
        records: &[R],
        durability: Durability,
    ) -> Result<Lsn> {
        let inner = &*self.inner;
        inner.check_writable()?;
        if records.is_empty() || records.len() as u64 > u64::from(BATCH_RECORDS_MAX) {
            return Err(Error::InvalidArgument(format!(
                "a batch holds 1..={BATCH_RECORDS_MAX} records, not {}",
                records.len()
            )));
        }
        let payload = batch_payload_bytes(records);
        check_size(inner, "batch", payload)?;
        let count = records.len() as u64;
        let (first, pending) = inner.reserve(payload, count, |buf, seed, lsn, durable, prev| {
            encode_batch_frame(buf, seed, lsn, durable, prev, records)
        })?;
        let bytes: u64 = records.iter().map(|r| r.as_ref().len() as u64).sum();
        inner.stats.bytes_appended.fetch_add(bytes, Relaxed);
        inner.after_append(first + count - 1, pending, durability)?;
        Ok(Lsn(first))
    }
}

fn check_size(inner: &Inner, what: &'static str, bytes: u64) -> Result<()> {
    let limit = inner.options.frame_payload_max();
    if bytes > limit {
        return Err(Error::TooLarge { what, bytes, limit });
    }
    Ok(())
}

impl Inner {
    /// Reserves LSNs and encodes one frame into the pending buffer; returns the first LSN and
    /// the pending byte count.
    fn reserve(
        &self,
        payload: u64,
        count: u64,
        encode: impl FnOnce(&mut Vec<u8>, u32, u64, u64, u32) -> u32,
    ) -> Result<(u64, usize)> {
        let total = frame_bytes(payload);
        let mut a = lock(&self.append);
        self.check_open()?;
        // LSNs never wrap. Only a damaged or hand-made header (valid checksum, `first_lsn`
        // near u64::MAX) can make recovery start this close to the end; refuse the append
        // instead of overflowing `next_lsn` (found by fuzz/segment_file).
        if a.next_lsn.checked_add(count).is_none() {
            return Err(Error::InvalidArgument(format!(
                "LSN space exhausted: {count} record(s) at LSN {} would pass u64::MAX",
                a.next_lsn
            )));
        }
        if a.active.offset + total > self.options.segment_bytes {
            self.rotate(&mut a)?;
        }
        let lsn = a.next_lsn;
        let durable = self.durable.load(Acquire);
        let (seed, prev) = (a.active.seed, a.last_crc);
        let chunk = active_chunk(&mut a);
        let before = chunk.buf.len();
        let crc = encode(&mut chunk.buf, seed, lsn, durable, prev);
        debug_assert_eq!(
            (chunk.buf.len() - before) as u64,
            total,
            "frame size as computed"
        );
        chunk.records += count;
        a.last_crc = crc;
        a.next_lsn += count;
        a.active.offset += total;
        a.pending_bytes += total as usize;
        a.pending_records += count;
        if a.gather_target != 0 && a.pending_records >= a.gather_target {
            a.gather_target = 0;
            self.gather_cv.notify_one();
        }
        self.stats.records_appended.fetch_add(count, Relaxed);
        self.stats.frames_written.fetch_add(1, Relaxed);
        Ok((lsn, a.pending_bytes))
    }

    fn after_append(
        &self,
        last_lsn: u64,
        pending_bytes: usize,
        durability: Durability,
    ) -> Result<()> {
        match durability {
            Durability::Sync => self.sync_to(last_lsn, true),
            Durability::Buffered if pending_bytes >= self.options.buffer_bytes => {
                self.sync_to(last_lsn, false)
            }
            Durability::Buffered => Ok(()),
        }
    }

    /// Switches appends to a prepared segment. Its header becomes the first pending bytes
    /// for that file, written and synced by the next group commit together with frames;
    /// the previous segment is synced first (see `commit`).
    fn rotate(&self, a: &mut AppendState) -> Result<()> {
        let template = SegmentHeader {
            log_id: self.log_id,
            segment_id: 0,
            salt: 0,
            first_lsn: a.next_lsn,
            prev_chain: a.last_crc,
        };
        let (entry, active) = start_segment(self.preparer()?, template, false)?;
        let header = SegmentHeader {
            segment_id: entry.id,
            salt: entry.salt,
            ..template
        };
        let mut buf = take_buf(a);
        buf.extend_from_slice(&header.encode_page());
        a.pending_bytes += buf.len();
        a.pending.push(Chunk {
            path: active.path.clone(),
            file: active.file.clone(),
            offset: 0,
            buf,
            records: 0,
        });
        a.active = active;
        self.write_table().push(entry);
        self.stats.rotations.fetch_add(1, Relaxed);
        Ok(())
    }
}

/// The pending chunk that ends where the active segment's next frame goes.
fn active_chunk(a: &mut AppendState) -> &mut Chunk {
    let offset = a.active.offset;
    // Identity by file handle, not path: this runs on every append, and comparing (let alone
    // cloning) a PathBuf here cost a third of the append path's instructions (callgrind).
    let extend = a.pending.last().is_some_and(|c| {
        Arc::ptr_eq(&c.file, &a.active.file) && c.offset + c.buf.len() as u64 == offset
    });
    if !extend {
        let buf = take_buf(a);
        a.pending.push(Chunk {
            path: a.active.path.clone(),
            file: a.active.file.clone(),
            offset,
            buf,
            records: 0,
        });
    }
    let last = a.pending.len() - 1;
    &mut a.pending[last]
}

fn take_buf(a: &mut AppendState) -> Vec<u8> {
    a.spare_bufs.pop().unwrap_or_default()
}

/// Returns written buffers for reuse, keeping a bounded number of bounded size.
pub(crate) fn recycle_bufs(a: &mut AppendState, chunks: Vec<Chunk>) {
    for mut c in chunks {
        if a.spare_bufs.len() < SPARE_BUFS_MAX && c.buf.capacity() <= SPARE_BUF_BYTES_MAX {
            c.buf.clear();
            a.spare_bufs.push(c.buf);
        }
    }
}
