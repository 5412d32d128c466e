//! Sequential, verified reading of the frames of one segment file, with a bounded buffer.
//! Used by recovery, by readers and by the operator tools.

use crate::format::{
    decode_frame_header, frame_bytes, frame_crc, FrameHeader, DATA_OFFSET, FRAME_ALIGN_BYTES,
    FRAME_HEADER_BYTES,
};
use crate::storage::StorageFile;
use std::sync::Arc;

/// Bytes read from the file at a time (a frame larger than this gets a buffer its size).
const READ_CHUNK_BYTES: usize = 1 << 20;

/// How far past the window being verified the cursor asks the storage to read ahead
/// ([`StorageFile::prefetch`]), and in what steps. See [`FrameCursor::read_ahead`].
const READ_AHEAD_BYTES: u64 = 16 << 20;
const READ_AHEAD_STEP_BYTES: u64 = 4 << 20;

/// One verified frame.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// The decoded header.
    pub header: FrameHeader,
    /// The payload (exactly `header.len` bytes), CRC verified.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Records in this frame (1 for a record frame).
    pub fn record_count(&self) -> u64 {
        match self.header.kind {
            crate::format::FrameKind::Record => 1,
            crate::format::FrameKind::Batch => self
                .payload
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, |b: [u8; 4]| u64::from(u32::from_le_bytes(b))),
        }
    }
}

/// Why a cursor stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Reached the end of the file exactly.
    Eof,
    /// The next frame header is all zeros: nothing was written here.
    Zeros,
    /// The bytes at this offset are not a valid frame of this segment.
    Damaged(String),
}

/// What [`FrameCursor::next_frame`] returns.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// A verified frame.
    Frame(Frame<'a>),
    /// No frame at the cursor's offset.
    Stop(Stop),
}

/// Reads verified frames from one segment file, front to back.
#[derive(Debug)]
pub(crate) struct FrameCursor {
    file: Arc<dyn StorageFile>,
    seed: u32,
    file_len: u64,
    offset: u64,
    buf: Vec<u8>,
    buf_at: u64,
    /// True once the storage was told this file is read sequentially.
    advised: bool,
    /// Read-ahead was asked for up to this offset.
    prefetched_to: u64,
    /// The file read after this one: its head is read ahead once this file's read-ahead
    /// reaches its end (taken then).
    next_file: Option<Arc<dyn StorageFile>>,
}

impl FrameCursor {
    /// A cursor at `offset`, which must be a frame boundary.
    pub fn at(file: Arc<dyn StorageFile>, seed: u32, file_len: u64, offset: u64) -> Self {
        FrameCursor {
            file,
            seed,
            file_len,
            offset,
            buf: Vec::new(),
            buf_at: 0,
            advised: false,
            prefetched_to: 0,
            next_file: None,
        }
    }

    /// Names the file read after this one, so that read-ahead continues into its head once
    /// it reaches the end of this one (the next cursor's first read then finds it cached).
    pub fn then_read_ahead(&mut self, next: Arc<dyn StorageFile>) {
        self.next_file = Some(next);
    }

    /// Offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Moves the cursor to `offset`, which must be a frame boundary.
    pub fn seek_to(&mut self, offset: u64) {
        self.offset = offset;
    }

    /// Reads the frame at the cursor and advances past it if it verifies.
    pub fn next_frame(&mut self) -> Step<'_> {
        let at = self.offset;
        let rest = self.file_len.saturating_sub(at);
        if rest == 0 {
            return Step::Stop(Stop::Eof);
        }
        let head_bytes = rest.min(FRAME_HEADER_BYTES as u64) as usize;
        if let Err(e) = self.fill(at, head_bytes) {
            return Step::Stop(Stop::Damaged(format!("read error: {e}")));
        }
        let head = self.slice(at, head_bytes);
        if head.iter().all(|&b| b == 0) {
            return Step::Stop(Stop::Zeros);
        }
        let Some(header) = decode_frame_header(head) else {
            return Step::Stop(Stop::Damaged("not a valid frame header".into()));
        };
        let total = frame_bytes(u64::from(header.len));
        if total > rest {
            return Step::Stop(Stop::Damaged(format!(
                "frame of {total} bytes runs past the end of the file ({rest} bytes left)"
            )));
        }
        let body = FRAME_HEADER_BYTES + header.len as usize;
        if let Err(e) = self.fill(at, body) {
            return Step::Stop(Stop::Damaged(format!("read error: {e}")));
        }
        if frame_crc(self.seed, self.slice(at, body)) != header.crc {
            return Step::Stop(Stop::Damaged("checksum mismatch".into()));
        }
        self.offset = at + total;
        let payload = self
            .slice(at, body)
            .get(FRAME_HEADER_BYTES..)
            .unwrap_or_default();
        Step::Frame(Frame { header, payload })
    }

    /// Moves past damage to the first valid frame of this segment holding an LSN of at least
    /// `min_lsn`; false when there is none. Only for logs recovered in `SkipCorrupt` mode,
    /// whose holes are known and accepted.
    pub fn skip_damage(&mut self, min_lsn: u64) -> bool {
        let mut found = None;
        resync(
            &self.file,
            self.seed,
            self.file_len,
            self.offset + FRAME_ALIGN_BYTES,
            |f| {
                if f.header.lsn >= min_lsn {
                    found = Some(f.offset);
                    return false;
                }
                true
            },
        );
        match found {
            Some(offset) => {
                self.offset = offset;
                true
            }
            None => false,
        }
    }

    /// Makes `[at, at + n)` available in the buffer.
    fn fill(&mut self, at: u64, n: usize) -> std::io::Result<()> {
        let have = at >= self.buf_at && at + n as u64 <= self.buf_at + self.buf.len() as u64;
        if have {
            return Ok(());
        }
        if !self.advised {
            self.advised = true;
            // Errors dropped on purpose, here and in `read_ahead`: a refused hint only means
            // no read-ahead, and the reads report any real fault.
            let _ = self.file.advise_sequential();
        }
        let want = (self.file_len - at).min(n.max(READ_CHUNK_BYTES) as u64) as usize;
        self.buf.resize(want, 0);
        self.buf_at = at;
        let got = read_fully(&*self.file, &mut self.buf, at);
        match got {
            Ok(len) if len >= n => {
                self.buf.truncate(len);
                // After the read: queued before it, the read-ahead would delay the bytes
                // needed now.
                self.read_ahead(at + len as u64);
                Ok(())
            }
            Ok(len) => {
                self.buf.truncate(len);
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shrank",
                ))
            }
            Err(_) if want > n => {
                // A large read failed; the bytes we need may still be readable on their own.
                self.buf.resize(n, 0);
                let len = read_fully(&*self.file, &mut self.buf, at)?;
                self.buf.truncate(len);
                if len < n {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "short",
                    ));
                }
                Ok(())
            }
            Err(e) => {
                self.buf.clear();
                Err(e)
            }
        }
    }

    /// Keeps the storage reading ahead of the cursor, so that cold recovery reads and
    /// verifies at once (it read a window, verified it, then read the next, and the disk idled
    /// while the CRCs ran: docs/BENCHMARKS.md, W4).
    ///
    /// Two hints, both measured on the 1 GiB W4 log with the page cache evicted (medians of 8
    /// interleaved runs at load 5, against a 1 MiB `read` loop of 0.6 s): sequential advice
    /// once per file (Linux doubles the file's read-ahead window) took the open from 1.21 s
    /// to 0.85 s, and asking for the next 16 MiB in 4 MiB steps as well to 0.73 s, steadier
    /// across runs. The kernel's own read-ahead is driven by the reader reaching marked pages,
    /// so a reader busy with CRCs (or descheduled on a loaded machine) requests late; the
    /// explicit request keeps up to 16 MiB queued. Smaller steps cost more: each call blocks
    /// ~190 us (strace) allocating pages and submitting reads. The read-ahead lands in the
    /// page cache, not in this process: the cursor's memory stays one window.
    fn read_ahead(&mut self, window_end: u64) {
        let from = self.prefetched_to.max(window_end);
        let to = window_end
            .saturating_add(READ_AHEAD_BYTES)
            .min(self.file_len);
        let reaches_end = to == self.file_len;
        if to > from && (to - from >= READ_AHEAD_STEP_BYTES || reaches_end) {
            let _ = self.file.prefetch(from, to - from);
            self.prefetched_to = to;
        }
        if reaches_end {
            if let Some(next) = self.next_file.take() {
                let left = window_end
                    .saturating_add(READ_AHEAD_BYTES)
                    .saturating_sub(self.file_len);
                let _ = next.advise_sequential();
                let _ = next.prefetch(0, left.max(READ_AHEAD_STEP_BYTES));
            }
        }
    }

    fn slice(&self, at: u64, n: usize) -> &[u8] {
        let start = (at - self.buf_at) as usize;
        self.buf.get(start..start + n).unwrap_or_default()
    }
}

fn read_fully(file: &dyn StorageFile, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(buf.get_mut(done..).unwrap_or_default(), at + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// A valid frame found by [`resync`] after damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub offset: u64,
    pub header: FrameHeader,
    pub end_offset: u64,
}

/// Looks for valid frames of this segment at every aligned offset in `[from, file_len)`,
/// calling `visit` for each until it returns false. Used after damage: to find proof that the
/// damaged data was durable, or to skip past it. Never trusts a length field beyond the file.
pub(crate) fn resync(
    file: &Arc<dyn StorageFile>,
    seed: u32,
    file_len: u64,
    from: u64,
    mut visit: impl FnMut(Found) -> bool,
) {
    let mut at = crate::format::align_up(from.max(DATA_OFFSET));
    let mut cursor = FrameCursor::at(file.clone(), seed, file_len, at);
    while at + FRAME_HEADER_BYTES as u64 <= file_len {
        cursor.offset = at;
        match cursor.next_frame() {
            Step::Frame(f) => {
                let found = Found {
                    offset: at,
                    header: f.header,
                    end_offset: cursor.offset,
                };
                if !visit(found) {
                    return;
                }
                at = found.end_offset;
            }
            Step::Stop(Stop::Zeros) => at = cursor.next_nonzero(at),
            Step::Stop(_) => at += FRAME_ALIGN_BYTES,
        }
    }
}

impl FrameCursor {
    /// The aligned offset of the first nonzero byte at or after `at` within the buffered
    /// window, or the end of the window; always greater than `at`.
    fn next_nonzero(&self, at: u64) -> u64 {
        let start = at.saturating_sub(self.buf_at) as usize;
        let window = self.buf.get(start..).unwrap_or_default();
        // 64 bytes at a time: recovery skips tens of MiB of zeros at the end of the active
        // segment, and a byte-at-a-time search dominated recovery time (callgrind).
        let skip = window
            .chunks(64)
            .position(|c| c.iter().fold(0u8, |acc, &b| acc | b) != 0)
            .map_or(window.len(), |i| i * 64) as u64;
        let next = (at + skip) & !(FRAME_ALIGN_BYTES - 1);
        next.max(at + FRAME_ALIGN_BYTES)
    }
}

/// True when every byte of `[from, file_len)` is zero (nothing was ever written there).
pub(crate) fn is_zero_after(
    file: &dyn StorageFile,
    from: u64,
    file_len: u64,
) -> std::io::Result<bool> {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut at = from;
    while at < file_len {
        let want = ((file_len - at) as usize).min(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = read_fully(file, chunk, at)?;
        if chunk.get(..n).unwrap_or_default().iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if n < want {
            break;
        }
        at += n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::storage::{OpenMode, SimStorage, Storage};
    use std::path::Path;

    /// A file of `len` zero bytes on a fresh simulator, and a second one to read after it.
    fn files(len: u64) -> (SimStorage, Arc<dyn StorageFile>, Arc<dyn StorageFile>) {
        let sim = SimStorage::new(1);
        sim.create_dir_all(Path::new("/d")).unwrap();
        let open = |name: &str| {
            let f = sim
                .open(&Path::new("/d").join(name), OpenMode::CreateNew)
                .unwrap();
            f.set_len(len).unwrap();
            f
        };
        let (a, b) = (open("a"), open("b"));
        (sim, a, b)
    }

    #[test]
    fn read_ahead_runs_a_bounded_distance_ahead_in_steps() {
        let len = 40 << 20;
        let (sim, file, next) = files(len);
        let mut cursor = FrameCursor::at(file, 0, len, DATA_OFFSET);
        cursor.then_read_ahead(next);
        let mut windows = 0u64;
        let mut at = DATA_OFFSET;
        while at < len {
            cursor.fill(at, FRAME_HEADER_BYTES).unwrap();
            windows += 1;
            // Never asked for more than the read-ahead distance past the window.
            let window_end = cursor.buf_at + cursor.buf.len() as u64;
            assert!(cursor.prefetched_to <= window_end + READ_AHEAD_BYTES);
            assert!(cursor.prefetched_to >= window_end.min(len));
            assert!(
                cursor.buf.capacity() <= READ_CHUNK_BYTES,
                "one window of memory"
            );
            at = window_end;
        }
        let (advised, prefetched) = sim.hint_counts();
        // Once per file (the next file's advice given when read-ahead reaches it).
        assert_eq!(advised, 2);
        assert_eq!(cursor.prefetched_to, len);
        // One call per step: the first 16 MiB, then every 4 MiB up to 40 MiB, then the next
        // file's head.
        let steps = (len - (READ_AHEAD_BYTES + (1 << 20))).div_ceil(READ_AHEAD_STEP_BYTES);
        assert_eq!(prefetched, 1 + steps + 1, "{windows} windows");
        assert!(
            cursor.next_file.is_none(),
            "the next file's head was asked for"
        );
    }

    #[test]
    fn a_small_file_reads_ahead_into_the_next() {
        let (sim, file, next) = files(64 << 10);
        let mut cursor = FrameCursor::at(file, 0, 64 << 10, DATA_OFFSET);
        cursor.then_read_ahead(next);
        cursor.fill(DATA_OFFSET, FRAME_HEADER_BYTES).unwrap();
        assert_eq!(sim.hint_counts(), (2, 1));
        // Nothing more to ask for, however often the window is refilled.
        cursor.fill(DATA_OFFSET + 8, 56 << 10).unwrap();
        cursor.fill(8 << 10, 1024).unwrap();
        assert_eq!(sim.hint_counts(), (2, 1));
    }
}
