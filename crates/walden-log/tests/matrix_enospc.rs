//! Matrix row 11: ENOSPC. The append that needs space gets a typed `Error::NoSpace` (or
//! `Error::Poisoned` caused by it), nothing it tried is acknowledged, its LSN is not consumed,
//! and after a restart without the limit every acknowledged record is there.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use std::time::{Duration, Instant};
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::{Durability, Error, Lsn, Options, Wal};

/// Fills the active segment until the next append must rotate, returning what was appended.
/// Rotation is the only time a preallocated log allocates space.
fn fill_until_rotation_is_next(wal: &Wal, sim: &SimStorage) -> Vec<(u64, Vec<u8>)> {
    let mut appended = Vec::new();
    let start = wal.stats().rotations;
    loop {
        // Probe with a copy of the storage state: append, and if it rotated, stop before it.
        let lsn = wal.next_lsn().0;
        let data = payload("nospc", lsn);
        let room = wal.segments().last().map(|s| s.id).unwrap();
        let active = frames(sim, &seg_path(room));
        let used = active.last().map_or(4096, |f| f.offset + f.total_bytes);
        let need = walden_log::format::frame_bytes(data.len() as u64);
        if used + need > SMALL_SEGMENT_BYTES {
            assert_eq!(wal.stats().rotations, start);
            return appended;
        }
        wal.append_with(&data, Durability::Sync).unwrap();
        appended.push((lsn, data));
    }
}

fn check_no_space(err: &Error) {
    match err {
        Error::NoSpace { source, .. } => assert_eq!(source.raw_os_error(), Some(28)),
        Error::Poisoned { cause } => assert!(cause.contains("no space"), "{cause}"),
        other => panic!("expected Error::NoSpace, got {other:?}"),
    }
}

fn enospc_at_rotation(options: Options, seed: u64) {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, options.clone()).unwrap();
    if options.prepare_in_background {
        // Let the preparer make the next segment, then fill the disk: the rotation after the
        // next one finds no prepared segment and no space to make one.
        wait_for(|| wal.stats().segments_spare >= 1);
    }
    let mut appended = append_n(&wal, "pre", 5, Durability::Sync);
    sim.set_space_limit(Some(sim.total_bytes()));
    if options.prepare_in_background {
        // Use up the segment prepared before the limit.
        appended.extend(fill_until_rotation_is_next(&wal, &sim));
        appended.extend(append_n(&wal, "rot", 1, Durability::Sync));
    }
    appended.extend(fill_until_rotation_is_next(&wal, &sim));
    let acked = wal.durable_lsn().0;
    assert_eq!(acked, appended.last().unwrap().0);
    let next = wal.next_lsn();

    for durability in [Durability::Sync, Durability::Buffered] {
        let err = wal
            .append_with(b"needs a new segment", durability)
            .unwrap_err();
        check_no_space(&err);
        assert_eq!(wal.next_lsn(), next, "the LSN was not consumed");
        assert_eq!(wal.durable_lsn().0, acked);
    }
    let err = wal
        .append_batch(&[b"a".as_slice(), b"b"], Durability::Sync)
        .unwrap_err();
    check_no_space(&err);
    assert_eq!(wal.next_lsn(), next);
    assert_eq!(
        read_all(&wal),
        appended,
        "readers see exactly the acknowledged records"
    );

    // Space comes back: the log was not poisoned by a failed preparation, and the same LSN
    // is handed out.
    sim.set_space_limit(None);
    let lsn = wal.append(b"after space came back").unwrap();
    assert_eq!(lsn, next);
    appended.push((lsn.0, b"after space came back".to_vec()));
    sim.crash(CrashDamage::DropAll);
    drop(wal);
    let wal = open(&sim, options).unwrap();
    assert_eq!(read_all(&wal), appended, "consistent after restart");
}

fn wait_for(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn row11_enospc_preparing_a_segment_inline_is_typed_and_acknowledges_nothing() {
    enospc_at_rotation(sim_options(SMALL_SEGMENT_BYTES), 1);
}

#[test]
fn row11_enospc_preparing_a_segment_in_background_is_typed_and_acknowledges_nothing() {
    enospc_at_rotation(
        sim_options(SMALL_SEGMENT_BYTES).prepare_in_background(true),
        2,
    );
}

/// Restart while the disk is still full: recovery needs no new space when the tail is
/// clean, and every acknowledged record is there; after a crash it needs a new segment only
/// if the tail is damaged.
#[test]
fn row11_restart_after_enospc_without_freeing_space() {
    let sim = SimStorage::new(3);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let appended = fill_until_rotation_is_next(&wal, &sim);
    sim.set_space_limit(Some(sim.total_bytes()));
    check_no_space(&wal.append(b"x").unwrap_err());
    sim.crash(CrashDamage::DropAll);
    drop(wal);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    assert_eq!(read_all(&wal), appended);
    check_no_space(&wal.append(b"x").unwrap_err());
    assert_eq!(wal.next_lsn(), Lsn(appended.len() as u64 + 1));
}

/// ENOSPC while a write grows a file (a segment shorter than the configured size, as after
/// raising `segment_bytes`): the group commit's write fails, the log is poisoned, nothing is
/// acknowledged, and the restart shows every acknowledged record.
#[test]
fn row11_enospc_on_a_growing_write_poisons_and_acknowledges_nothing() {
    let sim = SimStorage::new(4);
    let small = sim_options(SMALL_SEGMENT_BYTES);
    let wal = open(&sim, small.clone()).unwrap();
    let mut appended = append_n(&wal, "grow", 10, Durability::Sync);
    wal.close().unwrap();
    // Reopen with bigger segments: appends continue in the 16 KiB file and grow it past its end.
    let big = sim_options(4 * SMALL_SEGMENT_BYTES);
    let wal = open(&sim, big.clone()).unwrap();
    appended.extend(fill_until_len(&wal, &sim, SMALL_SEGMENT_BYTES - 200));
    sim.set_space_limit(Some(sim.total_bytes()));
    let next = wal.next_lsn();
    let mut err = None;
    for _ in 0..20 {
        match wal.append(&[9u8; 100]) {
            Ok(lsn) => appended.push((lsn.0, vec![9u8; 100])),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("the file had to grow");
    check_no_space(&err);
    assert!(wal.next_lsn() >= next);
    // Every later call refuses; nothing is retried.
    let ops = sim.op_count();
    assert!(matches!(wal.append(b"y"), Err(Error::Poisoned { .. })));
    assert!(matches!(wal.sync(), Err(Error::Poisoned { .. })));
    assert_eq!(sim.op_count(), ops);
    sim.set_space_limit(None);
    sim.crash(CrashDamage::KeepAll);
    drop(wal);
    let wal = open(&sim, big).unwrap();
    assert_prefix_with_acked(
        &read_all(&wal),
        &appended,
        appended.last().unwrap().0,
        "after ENOSPC",
    );
    assert_eq!(
        read_all(&wal),
        appended,
        "the failed append left nothing behind"
    );
}

fn fill_until_len(wal: &Wal, sim: &SimStorage, len: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let active = wal.segments().last().unwrap().id;
    loop {
        let fs = frames(sim, &seg_path(active));
        if fs.last().is_some_and(|f| f.offset + f.total_bytes >= len) {
            return out;
        }
        out.extend(append_n(wal, "fill", 1, Durability::Sync));
    }
}
