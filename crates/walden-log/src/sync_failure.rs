//! The sync-failure marker: a poisoned log leaves `DIR/SYNC_FAILED`, so that the next open
//! reads its segments from the device instead of the page cache.
//!
//! Why: after `fdatasync` fails, Linux marks the pages it could not write clean and keeps
//! them readable. A recovery that read them would accept frames that are not on disk, and the
//! next durable append would build on them: after a power loss, acknowledged records would
//! follow a hole (docs/DURABILITY.md, "Errors and poisoning"). With the marker present,
//! recovery first drops every segment's clean cached pages (`StorageFile::drop_cache`), so
//! those frames read as what the device holds (zeros or older bytes) and are cut like a torn
//! tail; pages still dirty stay cached, and are still to be written. A writable open removes
//! the marker once recovery's own syncs are done; a read-only open leaves it.
//!
//! Best effort by nature: the marker is written by the call that hit the failure, on the same
//! disk. If writing it fails too, or the process dies between the failure and the marker, the
//! next open trusts the page cache as before; a reboot clears the cache either way.

use crate::storage::{OpenMode, Storage};
use std::io;
use std::path::Path;

/// The marker's file name in the log directory.
pub const MARKER: &str = "SYNC_FAILED";

/// Writes (and syncs) the marker, with the failure that poisoned the log as its content.
pub(crate) fn record(storage: &dyn Storage, dir: &Path, cause: &str) -> io::Result<()> {
    let path = dir.join(MARKER);
    let file = match storage.open(&path, OpenMode::CreateNew) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            storage.open(&path, OpenMode::ReadWrite)?
        }
        other => other?,
    };
    let text = format!("the log was poisoned by: {cause}\n");
    file.set_len(0)?;
    file.write_all_at(text.as_bytes(), 0)?;
    file.sync_data()?;
    storage.sync_dir(dir)
}

/// Whether the marker is present.
pub(crate) fn present(storage: &dyn Storage, dir: &Path) -> io::Result<bool> {
    Ok(storage.list(dir)?.iter().any(|name| name == MARKER))
}

/// Removes the marker (durably): the log's segments were read from the device and every
/// accepted byte was synced since.
pub(crate) fn clear(storage: &dyn Storage, dir: &Path) -> io::Result<()> {
    storage.remove(&dir.join(MARKER))?;
    storage.sync_dir(dir)
}
