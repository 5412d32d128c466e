//! Matrix row 8: a crash during segment rotation (prepare the next file inline: create,
//! zero-fill, fsync, fsync the directory; then its header and first frames written and synced
//! by the group commit). At every call of it and under every damage pattern, the old segment
//! stays byte-for-byte intact and the new one is either discarded or recovered.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use std::cell::RefCell;
use walden_log::storage::SimStorage;
use walden_log::{Durability, Wal};

/// Bytes used in segment `id` (header page plus frames).
fn used(sim: &SimStorage, id: u64) -> u64 {
    frames(sim, &seg_path(id))
        .last()
        .map_or(4096, |f| f.offset + f.total_bytes)
}

/// Appends durably until the first segment has room for about two more records.
fn fill_first_segment(sim: &SimStorage, wal: &Wal, m: &mut Model) {
    let first = wal.segments()[0].id;
    while SMALL_SEGMENT_BYTES - used(sim, first) > 150 {
        m.append_n(wal, "old", 1, Durability::Sync).unwrap();
        assert_eq!(wal.segments().len(), 1, "setup must not rotate");
    }
}

// The first segment's bytes up to the end of its frames, as the setup left them (log ids
// and salts are random, so each run records its own).
thread_local! {
    static OLD_IMAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn fill_and_remember(sim: &SimStorage, wal: &Wal, m: &mut Model) {
    fill_first_segment(sim, wal, m);
    let id = wal.segments()[0].id;
    let bytes = sim.read_file(&seg_path(id)).unwrap();
    OLD_IMAGE.with(|i| *i.borrow_mut() = bytes[..used(sim, id) as usize].to_vec());
}

fn old_segment_intact(sim: &SimStorage, _: &Model, ctx: &str) {
    let id = wal_ids(sim)[0];
    let now = sim.read_file(&seg_path(id)).unwrap();
    OLD_IMAGE.with(|image| {
        let image = image.borrow();
        assert!(image.len() > 4096);
        assert!(now.len() >= image.len(), "{ctx}: the old segment shrank");
        assert!(
            now[..image.len()] == image[..],
            "{ctx}: the old segment's bytes changed"
        );
    });
}

/// The new segment is either gone (discarded) or a live segment after the old one, and the
/// old segment's records all read back.
fn new_segment_discarded_or_recovered(sim: &SimStorage, wal: &Wal, m: &Model, ctx: &str) {
    let segments = wal.segments();
    assert_eq!(
        segments[0].id,
        wal_ids(sim)[0],
        "{ctx}: the old segment is still the first"
    );
    for pair in segments.windows(2) {
        assert!(
            pair[0].id < pair[1].id && pair[0].first_lsn <= pair[1].first_lsn,
            "{ctx}: {segments:?}"
        );
    }
    let old_records = m
        .appended
        .iter()
        .filter(|r| r.1.starts_with(b"old-"))
        .count() as u64;
    assert!(
        wal.next_lsn().0 > old_records,
        "{ctx}: records of the old segment lost"
    );
}

#[test]
fn row08_crash_during_rotation_with_durable_appends() {
    let sweep = Sweep {
        seed: 8,
        options: sim_options(SMALL_SEGMENT_BYTES),
        damages: &SWEEP_DAMAGES,
        setup: &fill_and_remember,
        workload: &|_, wal, m| m.append_n(wal, "new", 4, Durability::Sync),
        after_crash: &old_segment_intact,
        after_open: &new_segment_discarded_or_recovered,
    };
    assert!(sweep.run_all() >= 50);
}

/// Buffered appends across the rotation, then one sync for both segments: the old segment's
/// tail and the new segment are synced by the same group commit, old first.
#[test]
fn row08_crash_during_rotation_with_one_group_commit_for_both_segments() {
    let sweep = Sweep {
        seed: 9,
        options: sim_options(SMALL_SEGMENT_BYTES),
        damages: &SWEEP_DAMAGES,
        setup: &fill_first_segment,
        workload: &|_, wal, m| {
            m.append_n(wal, "new", 6, Durability::Buffered)?;
            m.sync(wal)?;
            m.append_n(wal, "new", 2, Durability::Sync)
        },
        after_crash: &no_check_after_crash,
        after_open: &new_segment_discarded_or_recovered,
    };
    assert!(sweep.run_all() >= 30);
}

/// The rotation actually happened in the workload (guards the sweeps above from testing
/// nothing).
#[test]
fn row08_workload_rotates_once() {
    let sim = SimStorage::new(8);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let mut m = Model::new();
    fill_first_segment(&sim, &wal, &mut m);
    let before = wal.stats().rotations;
    m.append_n(&wal, "new", 4, Durability::Sync).unwrap();
    assert_eq!(wal.stats().rotations, before + 1);
    assert_eq!(wal.segments().len(), 2);
}
