//! Direct I/O (`O_DIRECT`) where the page cache must be bypassed: zero-filling a file where
//! `FALLOC_FL_WRITE_ZEROES` is not supported, and checking that a file reads as the device
//! holds it after its cached pages were dropped.
//!
//! Zero-fill: buffered zero-filling copies every zero into the page cache and then writes it
//! back: on the W3 64 KiB ingest (docs/BENCHMARKS.md) that copy and its writeback competed
//! with the writer's own for the CPU, and the writer waited for zeros. Direct writes from one
//! aligned zero buffer cost the device's bandwidth only. The blocks are written (not
//! reserved) once the caller's `sync_data` returns, exactly as with buffered zeros.
//!
//! Check after a drop: see [`drop_and_verify`].
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
        let direct = open_direct(file, true)?;
        let buf = Aligned::new(CHUNK);
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

/// Times a range that reads differently from the cache and the device is dropped again
/// before [`drop_and_verify`] gives up.
const VERIFY_TRIES: u32 = 3;

/// Drops `file`'s cached pages (`posix_fadvise(POSIX_FADV_DONTNEED)`), then checks, chunk by
/// chunk, that buffered reads return what `O_DIRECT` reads return. A direct read first writes
/// back the range's dirty pages and then reads the device, so the two differ only where a
/// page stayed cached with content the device does not hold: a page whose sync failed that
/// the drop skipped (it skips pages locked, mapped or under writeback at that instant). Such
/// a range is dropped and compared again, [`VERIFY_TRIES`] times, then it is an error: reads
/// of this file cannot be trusted until the machine restarts. Where direct I/O is refused
/// (tmpfs has no device behind its cache), the drop alone.
pub(super) fn drop_and_verify(file: &File) -> io::Result<()> {
    use rustix::fs::{fadvise, Advice};
    fadvise(file, 0, None, Advice::DontNeed)?;
    let direct = match open_direct(file, false) {
        Ok(direct) => direct,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut cached = vec![0u8; CHUNK];
    let mut device = Aligned::new(CHUNK);
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(CHUNK as u64) as usize;
        let mut tries = 0;
        loop {
            let cached = cached.get_mut(..n).unwrap_or_default();
            file.read_exact_at(cached, at)?;
            // `at` is a multiple of CHUNK: aligned; a read past the end returns short.
            let want = device.get_mut(n.next_multiple_of(ALIGN as usize));
            let got = match read_direct(&direct, want, at) {
                Ok(got) => got,
                // Opened, but reads refused (an alignment this device or file system wants
                // larger than ALIGN): no check possible here, as where O_DIRECT is refused.
                Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(()),
                Err(e) => return Err(e),
            };
            if got >= n && device.get(n) == &cached[..] {
                break;
            }
            tries += 1;
            if tries >= VERIFY_TRIES {
                return Err(io::Error::other(format!(
                    "bytes {at}..{} read from the page cache differ from the device after \
                     dropping the cache {VERIFY_TRIES} times (pages a failed sync left cached, \
                     or the file changed meanwhile)",
                    at + n as u64
                )));
            }
            fadvise(
                file,
                at,
                std::num::NonZeroU64::new(n as u64),
                Advice::DontNeed,
            )?;
            std::thread::sleep(std::time::Duration::from_millis(1 << tries));
        }
        at += n as u64;
    }
    Ok(())
}

/// Fills `buf` from `offset` with direct reads; returns the bytes read (short only at the
/// end of the file). A read the device refuses for alignment is `Unsupported`.
fn read_direct(direct: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or_default();
        match direct.read_at(rest, offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unsupported_if_rejected(e, "direct read")),
        }
        if done % ALIGN as usize != 0 {
            break; // a short read ends at the end of the file
        }
    }
    Ok(done)
}

fn open_direct(file: &File, write: bool) -> io::Result<File> {
    let link = format!("/proc/self/fd/{}", file.as_raw_fd());
    OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&link)
        .map_err(|e| unsupported_if_rejected(e, "open O_DIRECT"))
}

/// `EINVAL` (no `O_DIRECT`, or misaligned for this device), and a `/proc` that is missing or
/// refused (hidepid, sandboxes), mean "not here", not a failure of the disk.
fn unsupported_if_rejected(e: io::Error, what: &str) -> io::Error {
    match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::INVAL.raw_os_error() => {
            io::Error::new(io::ErrorKind::Unsupported, format!("{what}: {e}"))
        }
        _ if matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
        ) =>
        {
            io::Error::new(io::ErrorKind::Unsupported, format!("{what}: {e}"))
        }
        _ => e,
    }
}

/// A buffer of zeros whose start is aligned to [`ALIGN`] (a plain `Vec` offers no alignment
/// guarantee; the slack at its start is skipped).
struct Aligned {
    buf: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let buf = vec![0u8; len + ALIGN as usize];
        let start = buf.as_ptr().align_offset(ALIGN as usize);
        Aligned { buf, start }
    }

    fn get(&self, n: usize) -> &[u8] {
        self.buf.get(self.start..self.start + n).unwrap_or_default()
    }

    fn get_mut(&mut self, n: usize) -> &mut [u8] {
        self.buf
            .get_mut(self.start..self.start + n)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new file `f` in `dir`, open for reading and writing.
    fn new_file(dir: &std::path::Path) -> (std::path::PathBuf, File) {
        let path = dir.join("f");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    fn check(offset: u64, len: u64) {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = new_file(dir.path());
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

    /// A file with synced and dirty pages, of a length that is no multiple of a block,
    /// verifies (dirty pages are written back by the direct read, not lost) and reads the
    /// same afterwards.
    #[test]
    fn drop_and_verify_passes_and_keeps_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (_, file) = new_file(dir.path());
        let len = 3 * CHUNK + 123;
        let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        file.write_all_at(&content[..CHUNK], 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(&content[CHUNK..], CHUNK as u64).unwrap(); // dirty
        drop_and_verify(&file).unwrap();
        let mut back = vec![0u8; len];
        file.read_exact_at(&mut back, 0).unwrap();
        assert!(back == content, "a byte changed");
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
