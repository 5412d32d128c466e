//! Reading: an iterator over durable records from any LSN, and a tailing reader that waits for
//! new ones (blocking or async). Memory is bounded by one read buffer and one frame,
//! however long the log is.

use crate::cursor::{FrameCursor, Step, Stop};
use crate::error::{Error, Result};
use crate::format::{parse_frame_payload, FramePayload, DATA_OFFSET};
use crate::wal::{Inner, Wal};
use crate::Lsn;
use event_listener::Listener;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its bytes, exactly as appended.
    pub data: Vec<u8>,
}

/// Iterates over durable records in LSN order, starting at a given LSN. Ends (returns
/// `None`) at the durable end as it was when each call was made.
#[derive(Debug)]
pub struct LogReader {
    inner: Arc<Inner>,
    next: u64,
    segment: Option<(u64, FrameCursor)>,
    /// The chain value the next frame must carry (`prev_crc`), as recovery checked it;
    /// `None` right after stepping over a hole, where recovery resumed on any valid frame.
    chain: Option<u32>,
    batch: VecDeque<Record>,
}

impl Wal {
    /// A reader positioned at `from` (use `Lsn(1)` or [`Wal::first_lsn`] for the start).
    /// Positioning costs a binary search over segments plus a scan within one segment.
    pub fn read_from(&self, from: Lsn) -> Result<LogReader> {
        let first = self.inner.read_table().first_lsn();
        if from.0 < first {
            return Err(Error::Truncated {
                lsn: from,
                first: Lsn(first),
            });
        }
        Ok(LogReader {
            inner: self.inner.clone(),
            next: from.0,
            segment: None,
            chain: None,
            batch: VecDeque::new(),
        })
    }

    /// A tailing reader from `from`: like [`Wal::read_from`], but waits for records that
    /// are not durable yet.
    pub fn tail_from(&self, from: Lsn) -> Result<TailReader> {
        Ok(TailReader {
            reader: self.read_from(from)?,
        })
    }
}

impl LogReader {
    /// The LSN the next record read will have (or the first after a skipped hole).
    pub fn position(&self) -> Lsn {
        Lsn(self.next)
    }

    /// The next durable record, or `None` at the durable end.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        if let Some(r) = self.batch.pop_front() {
            // Saturating here and below: a frame recovery never accepted (say, one skipped
            // in SkipCorrupt mode) may claim LSNs up to u64::MAX; LSNs never wrap (found by
            // fuzz/segment_file).
            self.next = r.lsn.0.saturating_add(1);
            return Ok(Some(r));
        }
        let mut refreshed = false;
        loop {
            let durable = self.inner.durable.load(Ordering::Acquire);
            if self.next > durable {
                return Ok(None);
            }
            self.ensure_segment()?;
            let Some((id, cursor)) = self.segment.as_mut() else {
                return Ok(None);
            };
            let id = *id;
            let at = cursor.offset();
            match cursor.next_frame() {
                Step::Frame(f) => {
                    let count = f.record_count();
                    let first = f.header.lsn;
                    // Follow the chain as recovery did: a frame with a valid checksum that
                    // does not follow the frame before it was rejected by recovery (or is
                    // damage); it must never be returned (found by fuzz/segment_file).
                    if self.chain.is_some_and(|c| c != f.header.prev_crc) {
                        if !self.inner.report.skipped.is_empty() {
                            if let Some((_, cursor)) = self.segment.as_mut() {
                                cursor.seek_to(at);
                                if cursor.skip_damage(self.next) {
                                    self.chain = None;
                                    continue;
                                }
                            }
                        }
                        return Err(self.damage(
                            id,
                            at,
                            "chain broken: frame does not follow the frame before it",
                        ));
                    }
                    self.chain = Some(f.header.crc);
                    if first.saturating_add(count) <= self.next {
                        continue;
                    }
                    // Records are dense except across a hole recovery skipped (SkipCorrupt).
                    // A valid frame of this segment holding a later LSN anywhere else is a
                    // misdirected write: returning it skipped recovered records and returned
                    // one recovery did not accept. Step over it like damage, or fail.
                    let after_hole = self
                        .inner
                        .report
                        .skipped
                        .iter()
                        .any(|(from, to)| from.0 <= self.next && to.0 == first);
                    if first > self.next && !after_hole {
                        if !self.inner.report.skipped.is_empty() {
                            if let Some((_, cursor)) = self.segment.as_mut() {
                                cursor.seek_to(at);
                                if cursor.skip_damage(self.next) {
                                    self.chain = None;
                                    continue;
                                }
                            }
                        }
                        let why =
                            format!("frame holds LSN {first} where LSN {} belongs", self.next);
                        return Err(self.damage(id, at, &why));
                    }
                    let Some(payload) = parse_frame_payload(f.header.kind, f.payload) else {
                        return Err(self.damage(id, at, "batch payload does not parse"));
                    };
                    self.next = self.next.max(first);
                    match payload {
                        FramePayload::Record(data) => {
                            let r = Record {
                                lsn: Lsn(first),
                                data: data.to_vec(),
                            };
                            self.next = first.saturating_add(1);
                            return Ok(Some(r));
                        }
                        FramePayload::Batch(records) => {
                            for (i, data) in records.into_iter().enumerate() {
                                let Some(lsn) = first.checked_add(i as u64) else {
                                    break;
                                };
                                if lsn >= self.next {
                                    self.batch.push_back(Record {
                                        lsn: Lsn(lsn),
                                        data: data.to_vec(),
                                    });
                                }
                            }
                            let r = self.batch.pop_front();
                            if let Some(r) = &r {
                                self.next = r.lsn.0.saturating_add(1);
                            }
                            return Ok(r);
                        }
                    }
                }
                Step::Stop(stop) => {
                    if !self.inner.read_table().entries.iter().any(|e| e.id == id) {
                        let first = self.inner.read_table().first_lsn();
                        return Err(Error::Truncated {
                            lsn: Lsn(self.next),
                            first: Lsn(first),
                        });
                    }
                    // Holes recovery skipped (SkipCorrupt): step over damage to the first
                    // frame holding `next` or later in this segment; if there is none, and
                    // `next` is inside a hole, continue where the hole ends. A hole can be
                    // zeros (a lost write) and can run past the segment's end (a truncated
                    // or missing segment); stepping over damage only inside the segment made
                    // such holes read as errors.
                    let skipped = &self.inner.report.skipped;
                    let hole_end = skipped
                        .iter()
                        .find(|(from, to)| from.0 <= self.next && self.next < to.0)
                        .map(|(_, to)| to.0);
                    if !skipped.is_empty() && matches!(stop, Stop::Damaged(_) | Stop::Zeros) {
                        if let Some((_, cursor)) = self.segment.as_mut() {
                            cursor.seek_to(at);
                            if cursor.skip_damage(self.next) {
                                self.chain = None;
                                continue;
                            }
                        }
                    }
                    if let Some(hole_end) = hole_end {
                        self.next = hole_end;
                        self.segment = None;
                        continue;
                    }
                    if !refreshed {
                        // The segment may have been superseded (truncate_after) or grown.
                        refreshed = true;
                        self.segment = None;
                        continue;
                    }
                    let why = match stop {
                        Stop::Damaged(r) => r,
                        Stop::Eof | Stop::Zeros => "durable record missing".into(),
                    };
                    return Err(self.damage(id, at, &why));
                }
            }
        }
    }

    /// Opens a cursor on the segment holding `self.next` if the current one is not it.
    fn ensure_segment(&mut self) -> Result<()> {
        let table = self.inner.read_table();
        let Some(index) = table.locate(self.next) else {
            return Err(Error::Truncated {
                lsn: Lsn(self.next),
                first: Lsn(table.first_lsn()),
            });
        };
        let entry = &table.entries[index];
        if self.segment.as_ref().is_some_and(|(id, _)| *id == entry.id) {
            return Ok(());
        }
        let len = entry
            .file
            .len()
            .map_err(|e| Error::io("stat", &entry.path, e))?;
        let cursor = FrameCursor::at(entry.file.clone(), entry.seed, len, DATA_OFFSET);
        self.segment = Some((entry.id, cursor));
        self.chain = Some(entry.prev_chain);
        Ok(())
    }

    fn damage(&self, id: u64, offset: u64, why: &str) -> Error {
        let path = self
            .inner
            .read_table()
            .entries
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.path.clone())
            .unwrap_or_default();
        Error::corruption(path, offset, self.next, why.to_string())
    }
}

impl Iterator for LogReader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// A reader that waits for new durable records. Wakes with [`Error::Closed`] when the log
/// is closed.
#[derive(Debug)]
pub struct TailReader {
    reader: LogReader,
}

impl TailReader {
    /// The LSN the next record will have.
    pub fn position(&self) -> Lsn {
        self.reader.position()
    }

    /// The next record, waiting as long as it takes.
    pub fn next_blocking(&mut self) -> Result<Record> {
        loop {
            if let Some(r) = self.next_timeout(Duration::from_secs(3600))? {
                return Ok(r);
            }
        }
    }

    /// The next record, or `None` if none became durable within `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.reader.next_record()? {
                return Ok(Some(r));
            }
            let listener = self.reader.inner.durable_event.listen();
            self.reader.inner.check_open()?;
            if self.has_more() {
                continue;
            }
            if listener.wait_deadline(deadline).is_none() {
                return self.reader.next_record();
            }
        }
    }

    /// The next record, waiting asynchronously (works on any executor).
    pub async fn next_async(&mut self) -> Result<Record> {
        loop {
            if let Some(r) = self.reader.next_record()? {
                return Ok(r);
            }
            let listener = self.reader.inner.durable_event.listen();
            self.reader.inner.check_open()?;
            if self.has_more() {
                continue;
            }
            listener.await;
        }
    }

    fn has_more(&self) -> bool {
        self.reader.inner.durable.load(Ordering::Acquire) >= self.reader.next
    }
}
