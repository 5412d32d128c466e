//! Zero-filling a file with direct I/O, where `FALLOC_FL_WRITE_ZEROES` is not supported.
//!
//! Buffered zero-filling copies every zero into the page cache and then writes it back: on
//! the W3 64 KiB ingest (docs/BENCHMARKS.md) that copy and its writeback competed with the
//! writer's own for the CPU, and the writer waited for zeros. Direct writes from one aligned
//! zero buffer cost the device's bandwidth only. The blocks are written (not reserved) once
//! the caller's `sync_data` returns, exactly as with buffered zeros.
//!
//! The file is opened a second time, by its `/proc/self/fd` link, with `O_DIRECT`: the flag
//! is never toggled on the caller's descriptor, which other threads may use.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// Alignment of direct I/O offsets, lengths and buffers (the largest logical block size in
/// common use; a device with a larger one rejects the writes with `EINVAL`).
const ALIGN: u64 = 4096;

/// Bytes per direct write.
const CHUNK: usize = 1 << 20;

/// Writes zeros over `[offset, offset + len_bytes)` of `file` with `O_DIRECT`, extending it
/// if the range ends past its end; an unaligned start or tail is written through `file`.
/// [`io::ErrorKind::Unsupported`] when direct I/O cannot be used here (no `/proc`, a file
/// system without `O_DIRECT`, a device needing larger alignment), after which the caller
/// writes the zeros itself; what was written by then is zeros, so nothing is lost.
pub(super) fn write_zeroes_direct(file: &File, offset: u64, len_bytes: u64) -> io::Result<()> {
    let end = offset
        .checked_add(len_bytes)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range past u64::MAX"))?;
    let start = offset.next_multiple_of(ALIGN).min(end);
    let aligned_end = start + (end - start) / ALIGN * ALIGN;
    let head = vec![0u8; usize::try_from(start - offset).unwrap_or(0)];
    file.write_all_at(&head, offset)?;
    if aligned_end > start {
        let direct = open_direct(file)?;
        let buf = AlignedZeros::new();
        let mut at = start;
        while at < aligned_end {
            let n = (aligned_end - at).min(CHUNK as u64) as usize;
            direct
                .write_all_at(buf.get(n), at)
                .map_err(|e| unsupported_if_rejected(e, "direct write"))?;
            at += n as u64;
        }
    }
    let tail = vec![0u8; usize::try_from(end - aligned_end).unwrap_or(0)];
    file.write_all_at(&tail, aligned_end)
}

fn open_direct(file: &File) -> io::Result<File> {
    let link = format!("/proc/self/fd/{}", file.as_raw_fd());
    OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&link)
        .map_err(|e| unsupported_if_rejected(e, "open O_DIRECT"))
}

/// `EINVAL` (no `O_DIRECT`, or misaligned for this device) and a missing `/proc` mean
/// "not here", not a failure of the disk.
fn unsupported_if_rejected(e: io::Error, what: &str) -> io::Error {
    match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::INVAL.raw_os_error() => {
            io::Error::new(io::ErrorKind::Unsupported, format!("{what}: {e}"))
        }
        _ if e.kind() == io::ErrorKind::NotFound => {
            io::Error::new(io::ErrorKind::Unsupported, format!("{what}: {e}"))
        }
        _ => e,
    }
}

/// A zero buffer whose start is aligned to [`ALIGN`] (a plain `Vec` offers no alignment
/// guarantee; the slack at its start is skipped).
struct AlignedZeros {
    buf: Vec<u8>,
    start: usize,
}

impl AlignedZeros {
    fn new() -> Self {
        let buf = vec![0u8; CHUNK + ALIGN as usize];
        let start = buf.as_ptr().align_offset(ALIGN as usize);
        AlignedZeros { buf, start }
    }

    fn get(&self, n: usize) -> &[u8] {
        self.buf.get(self.start..self.start + n).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(offset: u64, len: u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.write_all_at(&vec![7u8; 3 * CHUNK], 0).unwrap();
        let outcome = write_zeroes_direct(&file, offset, len);
        let back = std::fs::read(&path).unwrap();
        let (o, e) = (offset as usize, (offset + len) as usize);
        assert!(back[..o].iter().all(|&b| b == 7), "before the range kept");
        match outcome {
            Ok(()) => {
                assert_eq!(back.len(), (3 * CHUNK).max(e));
                assert!(back[o..e].iter().all(|&b| b == 0), "range zeroed");
                assert!(back[e..].iter().all(|&b| b == 7), "after the range kept");
            }
            // Where direct I/O is refused, what was written by then is zeros: the caller
            // writes the rest and loses nothing.
            Err(err) if err.kind() == io::ErrorKind::Unsupported => {
                let inside = back.get(o..e.min(back.len())).unwrap_or_default();
                assert!(inside.iter().all(|&b| b == 0 || b == 7), "{err}");
                let after = back.get(e..).unwrap_or_default();
                assert!(after.iter().all(|&b| b == 7), "after the range kept: {err}");
            }
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn zeroes_aligned_and_unaligned_ranges_and_extends() {
        check(0, 2 * CHUNK as u64);
        check(100, 5000);
        check(4096, 4096);
        check(12_345, 2 * CHUNK as u64 + 777);
        check(2 * CHUNK as u64, 2 * CHUNK as u64 + 10);
    }
}
