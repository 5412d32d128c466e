//! Watching the durable LSN wakes on group commits made by others and never syncs by itself.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;
use walden_log::{Durability, Lsn, Options, Wal};
use walden_testkit::exec::block_on;

#[test]
fn a_watcher_wakes_when_another_thread_makes_its_lsn_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let wal =
        Arc::new(Wal::open(Options::new(tmp.path().join("wal")).segment_bytes(1 << 20)).unwrap());
    let lsn = wal.append_with(b"buffered", Durability::Buffered).unwrap();
    let fsyncs_before = wal.stats().fsyncs;
    // Nobody syncs: the watch times out and reports the durable LSN as it is.
    assert_eq!(
        wal.wait_for_durable(lsn, Duration::from_millis(50))
            .unwrap(),
        Lsn::ZERO
    );
    assert_eq!(wal.stats().fsyncs, fsyncs_before, "watching never syncs");
    let watcher = {
        let wal = wal.clone();
        std::thread::spawn(move || wal.wait_for_durable(lsn, Duration::from_secs(30)).unwrap())
    };
    std::thread::sleep(Duration::from_millis(20));
    let synced = wal.append(b"durable").unwrap();
    let seen = watcher.join().unwrap();
    assert!(seen >= lsn && seen <= synced, "woke with {seen}");
}

#[test]
fn async_watch_wakes_on_a_later_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let wal =
        Arc::new(Wal::open(Options::new(tmp.path().join("wal")).segment_bytes(1 << 20)).unwrap());
    let lsn = wal.append_with(b"x", Durability::Buffered).unwrap();
    let syncer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            wal.sync().unwrap()
        })
    };
    let got = block_on(wal.durable_at_least(lsn)).unwrap();
    assert!(got >= lsn);
    assert_eq!(syncer.join().unwrap(), got);
}
