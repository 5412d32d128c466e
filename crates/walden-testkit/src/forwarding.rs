//! A [`Storage`] that forwards every call to an inner storage, with hooks on the file calls:
//! the way a test counts what the engine asks of its storage (read sizes, hints) or injects
//! a fault or a delay into one call (a refused hint, a slow or gated `sync_data`) while
//! everything else behaves exactly as the inner storage does.
//!
//! Every method of [`Storage`] and [`StorageFile`] is forwarded, the optional ones
//! included (`advise_sequential`, `prefetch`, `write_zeroes`, `allocate`, `is_empty`): the
//! wrapper changes only what a hook changes. A hook receives the inner file and decides
//! whether, when and how to call it.
//!
//! ```
//! use std::io;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use walden_log::storage::{SimStorage, StorageFile};
//! use walden_testkit::forwarding::{FileHooks, Forwarding};
//!
//! /// Counts `sync_data` calls.
//! #[derive(Debug, Default)]
//! struct CountSyncs(AtomicU64);
//!
//! impl FileHooks for CountSyncs {
//!     fn sync_data(&self, file: &dyn StorageFile) -> io::Result<()> {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!         file.sync_data()
//!     }
//! }
//!
//! let storage = Forwarding::new(SimStorage::new(1), CountSyncs::default());
//! assert_eq!(storage.hooks().0.load(Ordering::Relaxed), 0);
//! ```

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use walden_log::storage::{DirLock, OpenMode, Storage, StorageFile};

/// What a [`Forwarding`] storage does on each file call. Every method has a default that
/// calls the same method on `file`, the inner storage's file; a test overrides the calls
/// it counts or breaks. Hooks are shared by every file the storage opens, from any thread.
pub trait FileHooks: Send + Sync + fmt::Debug + 'static {
    /// `StorageFile::read_at` on `file`.
    fn read_at(&self, file: &dyn StorageFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        file.read_at(buf, offset)
    }
    /// `StorageFile::write_all_at` on `file`.
    fn write_all_at(&self, file: &dyn StorageFile, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }
    /// `StorageFile::sync_data` on `file`.
    fn sync_data(&self, file: &dyn StorageFile) -> io::Result<()> {
        file.sync_data()
    }
    /// `StorageFile::len` on `file`.
    fn len(&self, file: &dyn StorageFile) -> io::Result<u64> {
        file.len()
    }
    /// `StorageFile::is_empty` on `file`.
    fn is_empty(&self, file: &dyn StorageFile) -> io::Result<bool> {
        file.is_empty()
    }
    /// `StorageFile::set_len` on `file`.
    fn set_len(&self, file: &dyn StorageFile, len_bytes: u64) -> io::Result<()> {
        file.set_len(len_bytes)
    }
    /// `StorageFile::advise_sequential` on `file` (a hint).
    fn advise_sequential(&self, file: &dyn StorageFile) -> io::Result<()> {
        file.advise_sequential()
    }
    /// `StorageFile::prefetch` on `file` (a hint).
    fn prefetch(&self, file: &dyn StorageFile, offset: u64, len_bytes: u64) -> io::Result<()> {
        file.prefetch(offset, len_bytes)
    }
    /// `StorageFile::write_zeroes` on `file`.
    fn write_zeroes(&self, file: &dyn StorageFile, offset: u64, len_bytes: u64) -> io::Result<()> {
        file.write_zeroes(offset, len_bytes)
    }
    /// `StorageFile::allocate` on `file`.
    fn allocate(&self, file: &dyn StorageFile, offset: u64, len_bytes: u64) -> io::Result<()> {
        file.allocate(offset, len_bytes)
    }
}

/// A [`Storage`] over `S` whose files go through the hooks `H`. Cloning shares the hooks
/// (and, for a `SimStorage`, the simulated file system).
#[derive(Debug)]
pub struct Forwarding<S, H> {
    inner: S,
    hooks: Arc<H>,
}

impl<S: Clone, H> Clone for Forwarding<S, H> {
    fn clone(&self) -> Self {
        Forwarding {
            inner: self.inner.clone(),
            hooks: self.hooks.clone(),
        }
    }
}

impl<S: Storage, H: FileHooks> Forwarding<S, H> {
    /// `inner` with its file calls going through `hooks`.
    pub fn new(inner: S, hooks: H) -> Self {
        Forwarding {
            inner,
            hooks: Arc::new(hooks),
        }
    }

    /// The inner storage (for a `SimStorage`: its crash and inspection helpers).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The hooks, to read what they counted or change what they do.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }
}

impl<S: Storage + Clone, H: FileHooks> Forwarding<S, H> {
    /// A clone of this storage as the shared handle `Wal::open_with` and `Store::open_with`
    /// take.
    pub fn shared(&self) -> Arc<dyn Storage> {
        Arc::new(self.clone())
    }
}

impl<S: Storage, H: FileHooks> Storage for Forwarding<S, H> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(HookedFile {
            inner: self.inner.open(path, mode)?,
            hooks: self.hooks.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        self.inner.lock_dir(dir)
    }
}

/// A file of a [`Forwarding`] storage: the inner file and the shared hooks.
#[derive(Debug)]
struct HookedFile<H> {
    inner: Arc<dyn StorageFile>,
    hooks: Arc<H>,
}

impl<H: FileHooks> StorageFile for HookedFile<H> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.hooks.read_at(&*self.inner, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.hooks.write_all_at(&*self.inner, buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.hooks.sync_data(&*self.inner)
    }
    fn len(&self) -> io::Result<u64> {
        self.hooks.len(&*self.inner)
    }
    fn is_empty(&self) -> io::Result<bool> {
        self.hooks.is_empty(&*self.inner)
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.hooks.set_len(&*self.inner, len_bytes)
    }
    fn advise_sequential(&self) -> io::Result<()> {
        self.hooks.advise_sequential(&*self.inner)
    }
    fn prefetch(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        self.hooks.prefetch(&*self.inner, offset, len_bytes)
    }
    fn write_zeroes(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        self.hooks.write_zeroes(&*self.inner, offset, len_bytes)
    }
    fn allocate(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        self.hooks.allocate(&*self.inner, offset, len_bytes)
    }
}
