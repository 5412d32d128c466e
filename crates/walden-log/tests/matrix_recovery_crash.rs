//! Matrix row 18: a fault during recovery. The open itself is crashed at each of its storage
//! calls (it syncs accepted segments, releases files after the cut, starts a superseding
//! segment, prepares a new one), under every damage pattern; recovery simply runs again and
//! yields a prefix holding every acknowledged record, and a third open agrees.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::{Durability, Options};

fn options() -> Options {
    sim_options(SMALL_SEGMENT_BYTES)
        .buffer_bytes(1)
        .recycle_segments_max(1)
}

/// A log that needs recovery work: durable segments, a released head, unsynced appends
/// across a rotation, then a crash that garbles the unsynced tail.
fn crashed_log(seed: u64) -> (SimStorage, Model) {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, options()).unwrap();
    let mut m = Model::new();
    while wal.segments().len() < 4 {
        m.append_n(&wal, "dur", 30, Durability::Sync).unwrap();
    }
    let lsn = wal.segments()[1].first_lsn.0;
    m.truncate_before(&wal, lsn).unwrap();
    let start = wal.segments().len();
    while wal.segments().len() < start + 2 {
        m.append_n(&wal, "unsynced", 10, Durability::Buffered)
            .unwrap();
    }
    sim.crash(CrashDamage::RandomGarbled);
    drop(wal);
    (sim, m)
}

/// The storage calls one recovery open makes on this state.
fn open_ops(seed: u64) -> u64 {
    let (sim, _) = crashed_log(seed);
    let before = sim.op_count();
    let wal = open(&sim, options()).unwrap();
    let ops = sim.op_count() - before;
    drop(wal);
    ops
}

#[test]
fn row18_crash_at_every_call_of_recovery_then_recover_again() {
    let mut states = 0;
    let mut did_work = 0;
    for seed in [180u64, 181, 182, 183] {
        let ops = open_ops(seed);
        for point in 1..=ops {
            for damage in SWEEP_DAMAGES {
                let ctx = format!("seed {seed} recovery crashed at call {point}/{ops} {damage:?}");
                let (sim, mut m) = crashed_log(seed);
                sim.crash_after_ops(Some(point));
                let first = open(&sim, options());
                assert!(first.is_err(), "{ctx}: the crash point is inside the open");
                sim.crash(damage);
                let wal = open(&sim, options())
                    .unwrap_or_else(|e| panic!("{ctx}: second recovery refused: {e}"));
                let recovered = m.check(&wal, &ctx);
                did_work += usize::from(
                    wal.recovery_report().files_released > 0
                        || wal.recovery_report().started_new_segment,
                );
                // And once more, after a crash that keeps nothing unsynced: the same log.
                sim.crash(CrashDamage::DropAll);
                drop(wal);
                let wal = open(&sim, options())
                    .unwrap_or_else(|e| panic!("{ctx}: third recovery refused: {e}"));
                assert_eq!(
                    m.check(&wal, &ctx),
                    recovered,
                    "{ctx}: recovery is idempotent"
                );
                m.adopt(&wal, recovered);
                m.append(&wal, b"after".to_vec(), Durability::Sync).unwrap();
                states += 1;
            }
        }
    }
    assert!(states >= 100, "{states}");
    assert!(did_work > 0, "recovery had work to crash in");
}

/// The recovery open fails with an I/O error of its own (EIO on the fsync of an accepted
/// segment): the open returns the error, and the next open recovers.
#[test]
fn row18_fsync_failure_during_recovery_then_recover_again() {
    let (sim, m) = crashed_log(184);
    sim.fail_sync_after(1);
    let err = open(&sim, options()).unwrap_err();
    assert!(err.to_string().contains("fdatasync"), "{err}");
    sim.crash(CrashDamage::RandomGarbled);
    let wal = open(&sim, options()).unwrap();
    m.check(&wal, "after a failed recovery");
}
