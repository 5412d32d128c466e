//! Matrix row 17: recycled (or preallocated) files keep their old content under the new
//! frames, and a crash mid-overwrite leaves any mix of old and new sectors. Old records are
//! never resurrected: every frame is salted with its segment's identity (log, id, salt), and a
//! recycled file gets a new id and salt.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use std::sync::Arc;
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::{dump_records, inspect_dir, Durability, Wal};

/// Old records fill several segments, which are then released for recycling; LSNs are
/// rewound with `truncate_after` too, so new records reuse the old records' LSNs and a
/// resurrected old frame could pass for a new one by LSN alone.
fn old_content_everywhere(_: &SimStorage, wal: &Wal, m: &mut Model) {
    while wal.segments().len() < 6 {
        m.append_n(wal, "OLD", 40, Durability::Sync).unwrap();
    }
    let keep = wal.segments()[1].first_lsn.0 + 2;
    m.truncate_after(wal, keep).unwrap();
    m.truncate_before(wal, keep).unwrap();
}

/// Buffered and durable appends interleaved, rotating through recycled files.
fn new_content(_: &SimStorage, wal: &Wal, m: &mut Model) -> walden_log::Result<()> {
    for round in 0..6 {
        m.append_n(wal, "new", 100, Durability::Buffered)?;
        if round % 2 == 0 {
            m.sync(wal)?;
        } else {
            m.append_n(wal, "new", 1, Durability::Sync)?;
        }
    }
    Ok(())
}

fn options() -> walden_log::Options {
    sim_options(SMALL_SEGMENT_BYTES)
        .recycle_segments_max(8)
        .buffer_bytes(700)
}

/// No old record anywhere a tool can see: the recovered log, and every recovery mode's view,
/// the most permissive (`SkipCorrupt`, which scans past damage for any valid frame) included.
fn no_old_record_resurrected(sim: &SimStorage, wal: &Wal, m: &Model, ctx: &str) {
    let first_new = m
        .appended
        .iter()
        .find(|r| r.1.starts_with(b"new-"))
        .map_or(u64::MAX, |r| r.0);
    for r in read_all(wal) {
        assert!(
            !(r.0 >= first_new && r.1.starts_with(b"OLD-")),
            "{ctx}: old record at LSN {}",
            r.0
        );
    }
    let storage = Arc::new(sim.clone());
    for mode in ALL_MODES {
        if let Ok(dump) = dump_records(storage.clone(), &dir(), mode, wal.first_lsn()) {
            for r in dump.flatten() {
                assert!(
                    !(r.lsn.0 >= first_new && r.data.starts_with(b"OLD-")),
                    "{ctx} {mode:?}: old record at {}",
                    r.lsn
                );
            }
        }
    }
    assert!(
        inspect_dir(sim, &dir()).unwrap().damage.is_none(),
        "{ctx}: recovery left the log clean"
    );
}

#[test]
fn row17_recycling_really_reuses_files_with_old_content() {
    let sim = SimStorage::new(17);
    let wal = open(&sim, options()).unwrap();
    let mut m = Model::new();
    old_content_everywhere(&sim, &wal, &mut m);
    let recycled = wal.stats().segments_recycled;
    new_content(&sim, &wal, &mut m).unwrap();
    let now = wal.stats().segments_recycled;
    assert!(
        now >= recycled + 2,
        "the workload reuses released files: {recycled} -> {now}, {} rotations",
        wal.stats().rotations
    );
    // The reused files still hold old frames beyond the new ones.
    let stale = wal_ids(&sim).iter().any(|&id| {
        let bytes = sim.read_file(&seg_path(id)).unwrap();
        bytes.windows(4).any(|w| w == b"OLD-")
    });
    assert!(stale, "old bytes remain under the new segments");
    wal.close().unwrap();
    for mode in ALL_MODES {
        let wal = open_mode(&sim, SMALL_SEGMENT_BYTES, mode).unwrap();
        assert_eq!(
            wal.recovery_report().damage,
            None,
            "{mode:?}: a clean close is clean, stale bytes or not"
        );
        m.check(&wal, &format!("{mode:?}"));
        no_old_record_resurrected(&sim, &wal, &m, &format!("{mode:?}"));
    }
}

#[test]
fn row17_crash_mid_overwrite_of_recycled_files_never_resurrects_old_records() {
    let sweep = Sweep {
        seed: 170,
        options: options(),
        damages: &SWEEP_DAMAGES,
        setup: &old_content_everywhere,
        workload: &new_content,
        after_crash: &no_check_after_crash,
        after_open: &no_old_record_resurrected,
    };
    assert!(sweep.run_all() >= 200);
}

/// Random crash points and damage over many seeds.
#[test]
fn row17_random_crashes_over_recycled_files() {
    let probe = Sweep {
        seed: 0,
        options: options(),
        damages: &[],
        setup: &old_content_everywhere,
        workload: &new_content,
        after_crash: &no_check_after_crash,
        after_open: &no_old_record_resurrected,
    };
    let ops = probe.workload_ops();
    for seed in 1..40u64 {
        let sweep = Sweep {
            seed,
            options: options(),
            damages: &[],
            setup: &old_content_everywhere,
            workload: &new_content,
            after_crash: &no_check_after_crash,
            after_open: &no_old_record_resurrected,
        };
        let point = 1 + (seed * 7919) % (ops + 1);
        sweep.run_one(point, CrashDamage::ALL[(seed % 6) as usize]);
    }
}
