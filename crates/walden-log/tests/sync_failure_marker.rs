//! The sync-failure marker on the real file system (`StdStorage`): a log whose directory
//! holds `SYNC_FAILED` (left by a log poisoned by a failed write or sync) is recovered after
//! dropping its segments' cached pages (`posix_fadvise(POSIX_FADV_DONTNEED)`, then a
//! comparison with `O_DIRECT` reads), which loses nothing that is on disk or still to be
//! written; the marker is cleared by a writable open,
//! kept by a read-only one. What the marker is for (pages a failed fsync left cached but not
//! on disk) is tested with the simulator (`matrix_fsync_eio.rs`): this kernel offers no way
//! to make a real fsync fail short of a device-mapper target.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::read_all;
use std::sync::Arc;
use walden_log::storage::{OpenMode, StdStorage, Storage};
use walden_log::{Durability, Options, RecoveryMode, Wal, SYNC_FAILED_MARKER};

fn options(dir: &std::path::Path) -> Options {
    Options::new(dir).segment_bytes(1 << 20)
}

#[test]
fn a_marked_log_is_read_past_the_cache_and_unmarked_by_a_writable_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let wal = Wal::open(options(&dir)).unwrap();
    let mut want = Vec::new();
    for i in 0..6000u32 {
        let record = format!("record {i} {}", "x".repeat((i % 600) as usize)).into_bytes();
        let durability = if i % 10 == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        let lsn = wal.append_with(&record, durability).unwrap();
        want.push((lsn.get(), record));
    }
    wal.sync().unwrap();
    assert!(wal.segments().len() > 1, "spans segments");
    drop(wal);
    let marker = dir.join(SYNC_FAILED_MARKER);
    std::fs::write(&marker, b"test\n").unwrap();

    let ro = Wal::open_read_only(
        &dir,
        RecoveryMode::TolerateTornTail,
        Arc::new(StdStorage::new()),
    )
    .unwrap();
    assert!(ro.recovery_report().read_past_cache);
    assert_eq!(read_all(&ro), want);
    drop(ro);
    assert!(marker.exists(), "a read-only open keeps the marker");

    let wal = Wal::open(options(&dir)).unwrap();
    assert!(wal.recovery_report().read_past_cache);
    assert_eq!(read_all(&wal), want, "nothing on disk was lost");
    assert!(!marker.exists(), "a writable open clears the marker");
    let lsn = wal.append(b"after").unwrap();
    want.push((lsn.get(), b"after".to_vec()));
    drop(wal);
    let wal = Wal::open(options(&dir)).unwrap();
    assert!(!wal.recovery_report().read_past_cache);
    assert_eq!(read_all(&wal), want);
}

/// Dropping the cache keeps pages not yet written back: they read as written.
#[test]
fn drop_cache_keeps_unsynced_writes_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f");
    let storage = StdStorage::new();
    let file = storage.open(&path, OpenMode::CreateNew).unwrap();
    let synced = vec![7u8; 64 << 10];
    file.write_all_at(&synced, 0).unwrap();
    file.sync_data().unwrap();
    let unsynced = vec![9u8; 64 << 10];
    file.write_all_at(&unsynced, 32 << 10).unwrap();
    file.drop_cache().unwrap();
    let mut got = vec![0u8; 96 << 10];
    let mut at = 0;
    while at < got.len() {
        let n = file.read_at(&mut got[at..], at as u64).unwrap();
        assert!(n > 0, "short file");
        at += n;
    }
    assert_eq!(&got[..32 << 10], &synced[..32 << 10]);
    assert_eq!(&got[32 << 10..], &unsynced[..]);
}
