//! The sync-failure marker: a poisoned log leaves `DIR/SYNC_FAILED`, so that the next open
//! reads its segments from the device instead of the page cache.
//!
//! Why: after `fdatasync` fails, Linux marks the pages it could not write clean and keeps
//! them readable. A recovery that read them would accept frames that are not on disk, and the
//! next durable append would build on them: after a power loss, acknowledged records would
//! follow a hole (docs/DURABILITY.md, "Errors and poisoning"). With the marker present,
//! recovery first drops every segment's clean cached pages (`StorageFile::drop_cache`, on
//! Linux checked against direct reads of the device afterwards), so
//! those frames read as what the device holds (zeros or older bytes) and are cut like a torn
//! tail; pages still dirty stay cached, and are still to be written. A writable open removes
//! the marker once recovery's own syncs are done; a read-only open leaves it.
//!
//! Left by the call that hit the failure (a group commit's leader, `truncate_after`, or a
//! writable open after its scan), after it let go of the log's locks and before it returns.
//! Not synced: it only has to outlive the page cache, and a power loss empties that anyway.
//! Best effort by nature: if creating it fails too, or the process dies between the failure
//! and the marker, the next open trusts the page cache as before; a reboot clears the cache
//! either way.

use crate::error::Error;
use crate::storage::{OpenMode, Storage};
use std::io;
use std::path::Path;

/// The marker's file name in the log directory.
pub const MARKER: &str = "SYNC_FAILED";

/// Leaves the marker after `failure`, if it is an I/O error (a full disk leaves no cached
/// page unwritten: nothing to do). Best effort, and not synced: the marker only has to
/// outlive the page cache, and a power loss empties that anyway. Returns why it could not
/// be left, if it could not.
pub(crate) fn after_failure(storage: &dyn Storage, dir: &Path, failure: &Error) -> Option<String> {
    if !matches!(failure, Error::Io { .. }) {
        return None;
    }
    let path = dir.join(MARKER);
    let file = match storage.open(&path, OpenMode::CreateNew) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return None,
        Err(e) => return Some(format!("the {MARKER} marker could not be created: {e}")),
    };
    // The name alone is the marker; the text is for the operator.
    let _ = file.write_all_at(format!("poisoned by: {failure}\n").as_bytes(), 0);
    None
}

/// Removes the marker (durably): the log's segments were read from the device and every
/// accepted byte was synced since.
pub(crate) fn clear(storage: &dyn Storage, dir: &Path) -> io::Result<()> {
    storage.remove(&dir.join(MARKER))?;
    storage.sync_dir(dir)
}
