//! The real file system, through `std::fs` and positional I/O (`pread`/`pwrite`).

use super::{DirLock, OpenMode, Storage, StorageFile};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// [`Storage`] on the operating system's file system. `sync_data` is `fdatasync(2)`,
/// `sync_dir` is `fsync(2)` of the directory, `lock_dir` is `flock(2)` on `DIR/LOCK`,
/// `advise_sequential` is `posix_fadvise(POSIX_FADV_SEQUENTIAL)` (nothing on other systems
/// than Linux).
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
}

#[cfg(target_os = "linux")]
fn advise_sequential(file: &File) -> io::Result<()> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Sequential).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn advise_sequential(_file: &File) -> io::Result<()> {
    Ok(())
}

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
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdDirLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another writer", dir.display()),
            )),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sequential_advice_is_accepted_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let storage = StdStorage::new();
        let file = storage.open(&path, OpenMode::CreateNew).unwrap();
        let bytes: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        file.write_all_at(&bytes, 0).unwrap();
        file.advise_sequential().unwrap();
        let mut back = vec![0u8; bytes.len()];
        super::super::read_exact_at(&*file, &mut back, 0).unwrap();
        assert_eq!(back, bytes);
        assert_eq!(file.len().unwrap(), bytes.len() as u64);
    }
}
