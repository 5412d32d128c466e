//! Matrix row 7, focused: a crash at every storage call of one small mixed workload (single
//! appends at both durability levels, an atomic batch, explicit syncs, a rotation), under
//! every damage pattern. After each crash the log opens in the default mode and holds a
//! prefix of what was appended, with every acknowledged record and no torn batch. The heavy
//! randomized sweeps live in tests/crash_sim.rs.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::{Durability, Wal};

fn setup(_: &SimStorage, wal: &Wal, m: &mut Model) {
    // Leave a few hundred bytes in the first segment so the workload rotates.
    m.append_n(wal, "setup", 200, Durability::Sync).unwrap();
}

fn workload(_: &SimStorage, wal: &Wal, m: &mut Model) -> walden_log::Result<()> {
    m.append_n(wal, "w", 2, Durability::Sync)?;
    m.append_n(wal, "w", 3, Durability::Buffered)?;
    m.append_batch(
        wal,
        vec![b"batch-a".to_vec(), b"batch-b".to_vec(), vec![7u8; 300]],
        Durability::Buffered,
    )?;
    m.sync(wal)?;
    m.append_n(wal, "w", 40, Durability::Buffered)?;
    m.append_batch(wal, vec![vec![1u8; 200], vec![2u8; 200]], Durability::Sync)?;
    m.append_n(wal, "w", 2, Durability::Sync)?;
    Ok(())
}

/// A batch is one frame: every recovered log holds all of a batch or none of it.
fn batch_whole(_: &SimStorage, wal: &Wal, m: &Model, ctx: &str) {
    let last = wal.next_lsn().0 - 1;
    for (lsn, data) in &m.appended {
        if data == b"batch-a" {
            assert!(
                last < *lsn || last >= lsn + 2,
                "{ctx}: torn batch at {lsn}, log ends at {last}"
            );
        }
        if data == &vec![1u8; 200] {
            assert!(
                last != *lsn,
                "{ctx}: torn batch at {lsn}, log ends at {last}"
            );
        }
    }
}

#[test]
fn row07_crash_at_every_call_of_a_mixed_workload_every_damage() {
    let sweep = Sweep {
        seed: 7,
        options: sim_options(SMALL_SEGMENT_BYTES).buffer_bytes(512),
        damages: &CrashDamage::ALL,
        setup: &setup,
        workload: &workload,
        after_crash: &no_check_after_crash,
        after_open: &batch_whole,
    };
    let states = sweep.run_all();
    assert!(states >= 100, "{states} crash states");
}
