//! The real file system, through `std::fs` and positional I/O (`pread`/`pwrite`).

#[cfg(target_os = "linux")]
use super::direct_io::{drop_and_verify, write_zeroes_direct};
use super::{DirLock, OpenMode, Storage, StorageFile};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// [`Storage`] on the operating system's file system. `sync_data` is `fdatasync(2)`,
/// `sync_dir` is `fsync(2)` of the directory, `lock_dir` is `flock(2)` on `DIR/LOCK` (waiting
/// up to 250 ms for a lock held that briefly, as by a child between `fork` and `exec`),
/// `advise_sequential`, `prefetch` and `drop_cache` are `posix_fadvise`
/// (`POSIX_FADV_SEQUENTIAL`, `POSIX_FADV_WILLNEED`, `POSIX_FADV_DONTNEED`; the drop is then
/// checked against `O_DIRECT` reads, see `direct_io`), `allocate` is `fallocate(2)` mode 0, and `write_zeroes` is
/// `fallocate(2)` with `FALLOC_FL_WRITE_ZEROES`, or where that is not supported, `O_DIRECT`
/// writes of zeros (see `direct_io`). On other systems than Linux, the hints do nothing
/// and both `allocate` and `write_zeroes` report `Unsupported`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdStorage;

impl StdStorage {
    /// The real file system.
    pub fn new() -> Self {
        StdStorage
    }
}

#[derive(Debug)]
struct StdFile(File);

impl StorageFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.0.set_len(len_bytes)
    }

    fn advise_sequential(&self) -> io::Result<()> {
        advise_sequential(&self.0)
    }

    fn prefetch(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        prefetch(&self.0, offset, len_bytes)
    }

    fn drop_cache(&self) -> io::Result<()> {
        drop_cache(&self.0)
    }

    fn write_zeroes(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        match fallocate(&self.0, Fallocate::WriteZeroes, offset, len_bytes) {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                write_zeroes_direct(&self.0, offset, len_bytes)
            }
            other => other,
        }
    }

    fn allocate(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        fallocate(&self.0, Fallocate::Reserve, offset, len_bytes)
    }
}

/// The two `fallocate` modes the engine uses.
#[derive(Debug, Clone, Copy)]
enum Fallocate {
    /// Mode 0: reserve blocks (unwritten extents).
    Reserve,
    /// `FALLOC_FL_WRITE_ZEROES`: written, zeroed blocks.
    WriteZeroes,
}

#[cfg(target_os = "linux")]
fn advise_sequential(file: &File) -> io::Result<()> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Sequential).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn advise_sequential(_file: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
fn drop_cache(file: &File) -> io::Result<()> {
    drop_and_verify(file)
}

#[cfg(not(target_os = "linux"))]
fn drop_cache(_file: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
fn prefetch(file: &File, offset: u64, len_bytes: u64) -> io::Result<()> {
    // A zero length means "to the end of the file" to posix_fadvise: never what is meant.
    let Some(len) = std::num::NonZeroU64::new(len_bytes) else {
        return Ok(());
    };
    rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::WillNeed)
        .map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn prefetch(_file: &File, _offset: u64, _len_bytes: u64) -> io::Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
fn fallocate(file: &File, how: Fallocate, offset: u64, len_bytes: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    use rustix::io::Errno;
    /// `FALLOC_FL_WRITE_ZEROES` (Linux 6.17, include/uapi/linux/falloc.h); rustix 1.1 has
    /// no name for it yet.
    const FALLOC_FL_WRITE_ZEROES: u32 = 0x80;
    let mode = match how {
        Fallocate::Reserve => FallocateFlags::empty(),
        Fallocate::WriteZeroes => FallocateFlags::from_bits_retain(FALLOC_FL_WRITE_ZEROES),
    };
    if len_bytes == 0 {
        // fallocate(2) rejects a zero length with EINVAL; reserving nothing is done.
        return Ok(());
    }
    loop {
        match rustix::fs::fallocate(file, mode, offset, len_bytes) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => continue,
            // Kernels before 6.17 reject the unknown mode bit with EOPNOTSUPP, as do file
            // systems and devices that cannot do it; ENOSYS where there is no fallocate.
            Err(Errno::OPNOTSUPP | Errno::NOSYS) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("fallocate {how:?} is not supported here"),
                ))
            }
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn fallocate(_file: &File, how: Fallocate, _offset: u64, _len_bytes: u64) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("fallocate {how:?} is Linux only"),
    ))
}

#[cfg(not(target_os = "linux"))]
fn write_zeroes_direct(_file: &File, _offset: u64, _len_bytes: u64) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "direct zero-filling is Linux only",
    ))
}

/// How long `lock_dir` waits for a lock held by someone else before reporting it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

#[derive(Debug)]
struct StdDirLock {
    _file: File,
}

impl DirLock for StdDirLock {}

impl Storage for StdStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::CreateNew => options.read(true).write(true).create_new(true),
        };
        Ok(Arc::new(StdFile(options.open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("LOCK"))?;
        // A lock held for a moment only is waited for: `flock` belongs to the open file
        // description, which a child process shares from `fork` until its `exec` closes it,
        // so a process that spawns children can find its own just-released lock still held
        // (seen as a flaky `Error::Locked` in walden-cli's tests). A real other writer holds
        // it for longer than `LOCK_WAIT` and is reported.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let mut pause = std::time::Duration::from_micros(500);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Box::new(StdDirLock { _file: file })),
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("{} is locked by another writer", dir.display()),
                    ))
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_lock_held_for_a_moment_is_waited_for_and_a_held_one_reported() {
        let dir = tempfile::tempdir().unwrap();
        let storage = StdStorage::new();
        let held = storage.lock_dir(dir.path()).unwrap();
        let err = storage.lock_dir(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // Released 30 ms later (as a child process's exec would): the wait gets it.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            drop(held);
        });
        let started = std::time::Instant::now();
        storage.lock_dir(dir.path()).unwrap();
        assert!(started.elapsed() < LOCK_WAIT);
        releaser.join().unwrap();
    }

    #[test]
    fn sequential_advice_is_accepted_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let storage = StdStorage::new();
        let file = storage.open(&path, OpenMode::CreateNew).unwrap();
        let bytes: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        file.write_all_at(&bytes, 0).unwrap();
        file.advise_sequential().unwrap();
        file.prefetch(1 << 20, 2 << 20).unwrap();
        file.prefetch(0, 0).unwrap();
        file.prefetch(10 << 20, 1 << 20).unwrap();
        let mut back = vec![0u8; bytes.len()];
        super::super::read_exact_at(&*file, &mut back, 0).unwrap();
        assert_eq!(back, bytes);
        assert_eq!(file.len().unwrap(), bytes.len() as u64);
    }

    /// Directories on the file systems these machines have: the test's temporary
    /// directory (ext4 here) and /dev/shm (tmpfs) when it exists.
    fn dirs() -> Vec<tempfile::TempDir> {
        let mut dirs = vec![tempfile::tempdir().unwrap()];
        if Path::new("/dev/shm").is_dir() {
            if let Ok(d) = tempfile::tempdir_in("/dev/shm") {
                dirs.push(d);
            }
        }
        dirs
    }

    #[test]
    fn allocate_extends_with_zeros_and_keeps_content() {
        for dir in dirs() {
            let path = dir.path().join("f");
            let file = StdStorage::new().open(&path, OpenMode::CreateNew).unwrap();
            file.write_all_at(b"abc", 0).unwrap();
            match file.allocate(0, 1 << 20) {
                Ok(()) => {}
                // Not Linux, or a file system without fallocate: nothing may have changed.
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    assert_eq!(file.len().unwrap(), 3);
                    continue;
                }
                Err(e) => panic!("allocate in {}: {e}", dir.path().display()),
            }
            assert_eq!(file.len().unwrap(), 1 << 20);
            let mut back = vec![1u8; 1 << 20];
            super::super::read_exact_at(&*file, &mut back, 0).unwrap();
            assert_eq!(back.get(..3).unwrap(), b"abc");
            assert!(back.get(3..).unwrap().iter().all(|&b| b == 0));
            // Inside the file it changes neither length nor content.
            file.allocate(0, 4096).unwrap();
            assert_eq!(file.len().unwrap(), 1 << 20);
            file.allocate(5, 0).unwrap();
            file.sync_data().unwrap();
        }
    }

    #[test]
    fn write_zeroes_zeroes_or_says_unsupported() {
        for dir in dirs() {
            let path = dir.path().join("f");
            let file = StdStorage::new().open(&path, OpenMode::CreateNew).unwrap();
            file.write_all_at(&[9u8; 8192], 0).unwrap();
            match file.write_zeroes(4096, 8192) {
                Ok(()) => {
                    assert_eq!(file.len().unwrap(), 12288);
                    let mut back = vec![1u8; 12288];
                    super::super::read_exact_at(&*file, &mut back, 0).unwrap();
                    assert!(back.get(..4096).unwrap().iter().all(|&b| b == 9));
                    assert!(back.get(4096..).unwrap().iter().all(|&b| b == 0));
                }
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    let mut back = vec![1u8; 8192];
                    super::super::read_exact_at(&*file, &mut back, 0).unwrap();
                    assert!(back.iter().all(|&b| b == 9), "unchanged");
                    assert_eq!(file.len().unwrap(), 8192);
                }
                Err(e) => panic!("write_zeroes in {}: {e}", dir.path().display()),
            }
        }
    }
}
