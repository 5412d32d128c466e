//! The storage boundary: every file operation the engine makes goes through [`Storage`].
//!
//! Two implementations ship with the crate:
//! - [`StdStorage`]: the real file system (`std::fs` plus positional I/O).
//! - [`SimStorage`]: an in-memory file system for tests that keeps durable bytes apart from
//!   pending (unsynced) writes and can crash, losing, tearing, zeroing or garbling what was
//!   not synced (see its module doc for the full fault list).
//!
//! # Contract every implementation keeps
//! - `write_at` may reach durable storage in any order and in any subset of sectors until
//!   `sync_data` on that file returns `Ok`. After `sync_data` returns `Ok`, every byte written
//!   to that file before the call is durable, and so is the file's length.
//! - `create`, `rename` and `remove` change the directory immediately for every later call,
//!   but are durable only after `sync_dir` on the parent directory returns `Ok`.
//! - An error from `sync_data` means the durable state of that file is unknown; the engine
//!   never retries it (see docs/DURABILITY.md, "fsync failure").
//! - Reads see every write made before them, synced or not; except that after a failed
//!   `sync_data`, [`StorageFile::drop_cache`] makes the writes that sync did not make durable
//!   read as what the device holds (Linux: they are never written, yet stay cached).
//! - `write_zeroes`, `allocate` and `set_len` are changes like writes: durable (content,
//!   length, reservation) after `sync_data` on that file, and until then in any state a
//!   crash leaves a write or a length change in. `advise_sequential` and `prefetch` are
//!   hints: they change nothing.
//!
//! All paths are absolute or relative to the process working directory; the engine only
//! ever passes paths inside the log directory.

#[cfg(target_os = "linux")]
mod direct_io;
mod sim;
mod std_fs;

pub use sim::{CrashDamage, SimStorage};
pub use std_fs::StdStorage;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file opened through a [`Storage`]. Positional I/O only: no shared cursor, so one handle
/// may be used from many threads at once.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at or past
    /// the end of the file). A short read happens only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`, extending the file if needed. Not durable until
    /// [`StorageFile::sync_data`] returns `Ok`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes every earlier write to this file, and its length, durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// The file's current length in bytes (including unsynced writes).
    fn len(&self) -> io::Result<u64>;

    /// True when the file has no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Sets the file's length, cutting or extending with zeros. Durable after `sync_data`.
    fn set_len(&self, len_bytes: u64) -> io::Result<()>;

    /// Says that the file will be read front to back, so the storage may read further
    /// ahead in the background (`posix_fadvise(POSIX_FADV_SEQUENTIAL)`: Linux doubles the
    /// read-ahead window of this open file). A hint only: it changes no content, no length,
    /// no durability and nothing a later call returns; read-ahead lands in the page cache,
    /// not in this process's memory. An error means only that no hint was taken: the reads
    /// that follow report any real fault.
    ///
    /// The default does nothing (a storage without read-ahead is still correct).
    fn advise_sequential(&self) -> io::Result<()> {
        Ok(())
    }

    /// Says that `[offset, offset + len_bytes)` will be read soon, so the storage may start
    /// reading it now (`posix_fadvise(POSIX_FADV_WILLNEED)`: Linux queues the reads and
    /// returns). A hint with the same guarantees as [`StorageFile::advise_sequential`]: it
    /// changes nothing a later call returns, and an error means only that no read-ahead
    /// happens.
    ///
    /// The default does nothing.
    fn prefetch(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        let _ = (offset, len_bytes);
        Ok(())
    }

    /// Drops the file's clean cached pages, so that later reads of them come from the device
    /// (`posix_fadvise(POSIX_FADV_DONTNEED)`). Pages not yet written back (dirty) stay and
    /// still read as written. What it is for: after a failed `sync_data`, Linux marks the
    /// pages that never reached the device clean but keeps them readable; after this call
    /// they read as what the device holds. Changes no durable state. Fails if it cannot
    /// make sure of that (`StdStorage` compares the file with direct reads afterwards).
    ///
    /// The default does nothing (a storage without a cache apart from its durable state).
    fn drop_cache(&self) -> io::Result<()> {
        Ok(())
    }

    /// Makes `[offset, offset + len_bytes)` read as zeros, backed by blocks the file system
    /// treats as written (initialized), extending the file if the range ends past it, without
    /// copying zeros through the page cache (`fallocate(FALLOC_FL_WRITE_ZEROES)`, Linux
    /// 6.17+). A later overwrite of that range then changes data only, so its `sync_data`
    /// needs no metadata commit. Durable after `sync_data`, like a write.
    ///
    /// Fails with [`io::ErrorKind::Unsupported`], changing nothing, where the kernel, the
    /// file system or the device cannot do it (ext4 needs a device with an unmapping
    /// write-zeroes command; tmpfs never can): the caller writes zeros instead. That is
    /// what the default does.
    fn write_zeroes(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        let _ = (offset, len_bytes);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "write_zeroes is not implemented by this storage",
        ))
    }

    /// Reserves blocks for `[offset, offset + len_bytes)` without writing them, extending the
    /// file if the range ends past it (`fallocate` mode 0: unwritten extents on ext4 and XFS).
    /// Reads there return zeros. Content already in the range is unchanged. Cheap (metadata
    /// only), but the first write to each reserved block turns it into a written block, a
    /// metadata change that the next `sync_data` commits: dearer per sync than overwriting
    /// written blocks. Durable (length and reservation) after `sync_data`.
    ///
    /// Fails with [`io::ErrorKind::Unsupported`], changing nothing, where the file system
    /// cannot reserve: the caller extends with `set_len` instead. That is what the default
    /// does.
    fn allocate(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        let _ = (offset, len_bytes);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "allocate is not implemented by this storage",
        ))
    }
}

/// How [`Storage::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file for reading only.
    Read,
    /// Open an existing file for reading and writing.
    ReadWrite,
    /// Create a new file for reading and writing; fails with `AlreadyExists` if it exists.
    CreateNew,
}

/// A held exclusive lock on a directory; released when dropped.
pub trait DirLock: Send + Sync + fmt::Debug {}

/// The file-system operations the engine needs, and nothing more.
///
/// See the module documentation for the durability contract of each call.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Creates `dir` and its parents if missing. Durable after `sync_dir` of each parent.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// The names (not paths) of the regular files directly inside `dir`, in no set order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Opens `path` as `mode` says.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;

    /// Renames `from` to `to`, replacing `to` if it exists. Durable after `sync_dir`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file at `path`. Durable after `sync_dir`.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Makes every earlier create, rename and remove inside `dir` durable (fsync of the
    /// directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on `dir` so that a second writer (in this or another process)
    /// fails to open the same log. Fails with `WouldBlock` when already held (the real file
    /// system first waits a moment for a lock that a child process inherited: see
    /// [`StdStorage`]).
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>>;
}

/// `dir/name` as a path; a small helper shared by the engine's modules.
pub(crate) fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
pub(crate) fn read_exact_at(file: &dyn StorageFile, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or_default();
        let n = file.read_at(rest, offset + done as u64)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("short read: wanted {} bytes at offset {offset}", buf.len()),
            ));
        }
        done += n;
    }
    Ok(())
}
