//! Matrix row 9: a crash during `truncate_before` (releasing the head: rename to `.free` or
//! remove, then fsync the directory, segment by segment) or `truncate_after` (release the
//! segments after the cut, start a superseding segment). At every call and under every damage
//! pattern, recovery finds the old log or the new one: a contiguous log starting at a segment
//! boundary no later than asked, ending no earlier than the cut, every acknowledged record
//! there. And no segment is released before the records it holds are durable.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::storage::SimStorage;
use walden_log::{Durability, Lsn, Wal};

fn five_segments(_: &SimStorage, wal: &Wal, m: &mut Model) {
    while wal.segments().len() < 5 {
        m.append_n(wal, "seg", 25, Durability::Sync).unwrap();
    }
}

/// A target inside the fourth segment: three segments to release.
fn target(wal: &Wal) -> u64 {
    wal.segments()[3].first_lsn.0 + 3
}

fn segment_boundaries_ok(sim: &SimStorage, wal: &Wal, m: &Model, ctx: &str) {
    let _ = sim;
    let first = wal.first_lsn().0;
    let starts: Vec<u64> = wal.segments().iter().map(|s| s.first_lsn.0).collect();
    assert_eq!(
        starts[0], first,
        "{ctx}: the log starts at a segment boundary"
    );
    assert!(first <= m.first_max, "{ctx}: released more than asked");
}

#[test]
fn row09_crash_during_truncate_before_recycling() {
    for recycle in [0, 2, 8] {
        let sweep = Sweep {
            seed: 90 + recycle as u64,
            options: sim_options(SMALL_SEGMENT_BYTES).recycle_segments_max(recycle),
            damages: &SWEEP_DAMAGES,
            setup: &five_segments,
            workload: &|_, wal, m| {
                let lsn = target(wal);
                assert_eq!(m.truncate_before(wal, lsn)?, 3);
                m.append_n(wal, "after", 2, Durability::Sync)
            },
            after_crash: &no_check_after_crash,
            after_open: &segment_boundaries_ok,
        };
        assert!(sweep.run_all() >= 40);
    }
}

#[test]
fn row09_crash_during_truncate_after_then_new_appends() {
    for (seed, cut_in) in [(95, 1usize), (96, 3), (97, 4)] {
        let sweep = Sweep {
            seed,
            options: sim_options(SMALL_SEGMENT_BYTES),
            damages: &SWEEP_DAMAGES,
            setup: &five_segments,
            workload: &|_, wal, m| {
                let cut = wal.segments()[cut_in].first_lsn.0 + 5;
                m.truncate_after(wal, cut)?;
                assert_eq!(wal.next_lsn(), Lsn(cut + 1));
                m.append_n(wal, "replaced", 3, Durability::Sync)
            },
            after_crash: &no_check_after_crash,
            after_open: &no_check_after_open,
        };
        assert!(sweep.run_all() >= 20);
    }
}

/// Emptying the whole log (`truncate_after(first - 1)`), crashed at every call.
#[test]
fn row09_crash_during_truncate_after_to_empty() {
    let sweep = Sweep {
        seed: 98,
        options: sim_options(SMALL_SEGMENT_BYTES),
        damages: &SWEEP_DAMAGES,
        setup: &five_segments,
        workload: &|_, wal, m| {
            m.truncate_after(wal, 0)?;
            assert_eq!(wal.next_lsn(), Lsn(1));
            m.append_n(wal, "fresh", 2, Durability::Sync)
        },
        after_crash: &no_check_after_crash,
        after_open: &no_check_after_open,
    };
    assert!(sweep.run_all() >= 10);
}

/// No segment is released before the records in it are durable: buffered records spanning
/// several segments are not released by `truncate_before`, whatever LSN it is given.
#[test]
fn row09_truncate_before_never_releases_records_that_are_not_durable() {
    let sim = SimStorage::new(99);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    append_n(&wal, "buffered", 800, Durability::Buffered);
    assert!(wal.segments().len() >= 3, "{:?}", wal.segments());
    assert_eq!(wal.durable_lsn(), Lsn(0));
    let files = sim.file_names(&dir());
    assert_eq!(wal.truncate_before(Lsn(700)).unwrap(), 0);
    assert_eq!(wal.first_lsn(), Lsn(1));
    assert_eq!(sim.file_names(&dir()), files, "no file released or renamed");
    // Once durable, the same call releases them.
    wal.sync().unwrap();
    assert!(wal.truncate_before(Lsn(700)).unwrap() >= 1);
    assert!(wal.first_lsn() > Lsn(1) && wal.first_lsn() <= Lsn(700));
}
