//! Matrix row 1: a torn tail. Durable appends, then appends written to the OS but not synced,
//! then power loss that keeps, loses, garbles or tears any subset of the unsynced sectors.
//! Recovery opens in the default mode, holds every acknowledged record, cuts at a prefix of
//! what was appended, and the report names where it cut.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use std::collections::BTreeMap;
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::{Durability, Lsn};

/// Where each LSN's frame was before the crash: LSN -> (segment id, offset, first LSN of the
/// segment).
fn layout(sim: &SimStorage) -> BTreeMap<u64, (u64, u64, u64)> {
    let mut out = BTreeMap::new();
    for id in wal_ids(sim) {
        let Some(h) = header_of(sim, &seg_path(id)) else {
            continue;
        };
        for f in frames(sim, &seg_path(id)) {
            out.insert(f.lsn, (id, f.offset, h.first_lsn));
        }
    }
    out
}

struct Outcome {
    recovered: usize,
    appended: usize,
    acked: usize,
    damaged: bool,
}

/// One run: `durable` Sync appends, then `unsynced` Buffered appends that each reach the OS
/// (buffer of 1 byte) without a sync, then a crash with `damage`.
fn run(seed: u64, damage: CrashDamage, durable: u64, unsynced: u64) -> Outcome {
    let sim = SimStorage::new(seed);
    let options = sim_options(SMALL_SEGMENT_BYTES).buffer_bytes(1);
    let wal = open(&sim, options.clone()).unwrap();
    let mut appended = append_n(&wal, "torn", durable, Durability::Sync);
    let acked = wal.durable_lsn().0;
    assert_eq!(acked, durable);
    appended.extend(append_n(&wal, "torn", unsynced, Durability::Buffered));
    assert_eq!(
        wal.durable_lsn().0,
        acked,
        "buffered appends are not synced"
    );
    let before = layout(&sim);
    assert_eq!(
        before.len() as u64,
        durable + unsynced,
        "every frame reached the OS"
    );
    sim.crash(damage);
    drop(wal);

    let ctx = format!("seed {seed} {damage:?}");
    let wal =
        open(&sim, options).unwrap_or_else(|e| panic!("{ctx}: refused after a pure crash: {e}"));
    let recovered = read_all(&wal);
    assert_prefix_with_acked(&recovered, &appended, acked, &ctx);
    let report = wal.recovery_report().clone();
    let next = recovered.len() as u64 + 1;
    assert_eq!(report.next_lsn, Lsn(next), "{ctx}");
    assert_eq!(wal.next_lsn(), Lsn(next), "{ctx}");
    if let Some(d) = &report.damage {
        // The report names exactly where the first missing record's frame was written.
        assert_eq!(d.location.lsn, Lsn(next), "{ctx}: {d:?}");
        let (id, offset, first) = *before
            .get(&next)
            .unwrap_or_else(|| panic!("{ctx}: damage reported past everything appended: {d:?}"));
        assert_eq!(d.location.path, seg_path(id), "{ctx}: {d:?}");
        let header_damaged = d.location.offset == 0 && first == next;
        assert!(
            d.location.offset == offset || header_damaged,
            "{ctx}: expected offset {offset}: {d:?}"
        );
    }
    // The log is usable at the cut, and the cut is final.
    let lsn = wal.append(b"after the crash").unwrap();
    assert_eq!(lsn, Lsn(next), "{ctx}");
    drop(wal);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    assert_eq!(
        wal.recovery_report().damage,
        None,
        "{ctx}: a second open finds nothing more"
    );
    let mut expected = recovered;
    expected.push((next, b"after the crash".to_vec()));
    assert_eq!(read_all(&wal), expected, "{ctx}");
    Outcome {
        recovered: next as usize - 1,
        appended: appended.len(),
        acked: acked as usize,
        damaged: report.damage.is_some(),
    }
}

fn sweep(damage: CrashDamage, durable: u64, unsynced: u64, seeds: u64) {
    let mut cut_inside = 0;
    let mut damaged = 0;
    for seed in 0..seeds {
        let o = run(seed, damage, durable, unsynced);
        cut_inside += usize::from(o.recovered > o.acked && o.recovered < o.appended);
        damaged += usize::from(o.damaged);
    }
    // The sweep must exercise real tears, not only "all lost" or "all kept".
    assert!(
        cut_inside > 0,
        "{damage:?}: no seed cut inside the unsynced region"
    );
    if damage != CrashDamage::TornPrefix {
        assert!(
            damaged > 0,
            "{damage:?}: no seed left damage for recovery to report"
        );
    }
}

#[test]
fn row01_torn_tail_random_garbled_keeps_acknowledged_prefix() {
    sweep(CrashDamage::RandomGarbled, 30, 40, 40);
}

#[test]
fn row01_torn_tail_torn_prefix_keeps_acknowledged_prefix() {
    sweep(CrashDamage::TornPrefix, 30, 40, 40);
}

#[test]
fn row01_torn_tail_random_subset_and_zeroed_keep_acknowledged_prefix() {
    sweep(CrashDamage::RandomSubset, 30, 40, 30);
    sweep(CrashDamage::RandomZeroed, 30, 40, 30);
}

/// The unsynced region spans a rotation: the new segment's header is unsynced too.
#[test]
fn row01_torn_tail_across_a_rotation() {
    for damage in [
        CrashDamage::RandomGarbled,
        CrashDamage::TornPrefix,
        CrashDamage::RandomZeroed,
    ] {
        sweep(damage, 200, 150, 25);
    }
}

/// Nothing unsynced survives, or everything does: the two extremes are exact.
#[test]
fn row01_torn_tail_extremes_are_exact() {
    let o = run(1, CrashDamage::DropAll, 30, 40);
    assert_eq!(
        (o.recovered, o.damaged),
        (30, false),
        "DropAll keeps exactly the synced records"
    );
    let o = run(1, CrashDamage::KeepAll, 30, 40);
    assert_eq!(
        (o.recovered, o.damaged),
        (70, false),
        "KeepAll keeps every written record"
    );
}

/// A garbled tail: the last frame's bytes replaced with garbage after a clean close (as a
/// torn write of it would leave) is cut, and the report names the frame.
#[test]
fn row01_garbage_over_last_unproven_frame_is_cut_and_reported() {
    let sim = SimStorage::new(9);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let appended = append_n(&wal, "tail", 10, Durability::Sync);
    drop(wal);
    let (segment, f) = find_frame(&sim, 10);
    for i in 0..f.total_bytes {
        sim.corrupt(&seg_path(segment), f.offset + i, 0xa5).unwrap();
    }
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let d = wal.recovery_report().damage.clone().expect("reported");
    assert_eq!(
        (d.location.path.clone(), d.location.offset, d.location.lsn),
        (seg_path(segment), f.offset, Lsn(10))
    );
    assert!(
        wal.recovery_report().started_new_segment,
        "garbage is superseded, not overwritten"
    );
    assert_eq!(read_all(&wal), appended[..9].to_vec());
}
