//! Matrix row 4: a truncated segment file. The last segment cut mid-frame follows the tail
//! rule (cut there, the log opens); an earlier segment cut refuses, naming where its records
//! stop, because the next segment's first LSN proves records are missing.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::storage::SimStorage;
use walden_log::{Durability, Lsn, RecoveryMode};

fn multi_segment_log(seed: u64, records: u64) -> (SimStorage, Records) {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let appended = append_n(&wal, "trunc", records, Durability::Sync);
    wal.close().unwrap();
    assert!(wal_ids(&sim).len() >= 3);
    (sim, appended)
}

#[test]
fn row04_last_segment_truncated_mid_frame_is_cut_as_a_torn_tail() {
    let (sim, appended) = multi_segment_log(1, 700);
    let last = *wal_ids(&sim).last().unwrap();
    let fs = frames(&sim, &seg_path(last));
    assert!(fs.len() >= 4);
    let victim = fs[fs.len() - 3];
    // The header whole, the payload cut.
    sim.truncate_file(&seg_path(last), victim.offset + 33)
        .unwrap();
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let report = wal.recovery_report().clone();
    let d = report.damage.expect("the cut is reported");
    assert_eq!(
        (d.location.path, d.location.offset, d.location.lsn),
        (seg_path(last), victim.offset, Lsn(victim.lsn))
    );
    assert!(
        d.reason.contains("runs past the end of the file"),
        "{}",
        d.reason
    );
    // The records of the cut frames were acknowledged, but the file's own length is all that
    // says they existed: nothing later proves them, exactly like a torn write (row 1).
    let expected: Vec<_> = appended
        .iter()
        .filter(|r| r.0 < victim.lsn)
        .cloned()
        .collect();
    assert_eq!(read_all(&wal), expected);
    assert_eq!(wal.append(b"x").unwrap(), Lsn(victim.lsn));
}

#[test]
fn row04_last_segment_truncated_at_a_frame_boundary_opens_without_damage() {
    let (sim, appended) = multi_segment_log(2, 700);
    let last = *wal_ids(&sim).last().unwrap();
    let fs = frames(&sim, &seg_path(last));
    let victim = fs[fs.len() - 3];
    sim.truncate_file(&seg_path(last), victim.offset).unwrap();
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    assert_eq!(
        wal.recovery_report().damage,
        None,
        "a file ending at a frame boundary is a clean end"
    );
    let expected: Vec<_> = appended
        .iter()
        .filter(|r| r.0 < victim.lsn)
        .cloned()
        .collect();
    assert_eq!(read_all(&wal), expected);
    assert_eq!(wal.append(b"x").unwrap(), Lsn(victim.lsn));
    drop(wal);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    assert_eq!(read_all(&wal).last().unwrap(), &(victim.lsn, b"x".to_vec()));
}

/// Segment 1 cut at a frame boundary, inside a frame header (`Some(20)`), or inside a
/// payload (`Some(33)`).
fn truncated_earlier(seed: u64, into_frame: Option<u64>) -> (SimStorage, u64, FrameAt) {
    let (sim, _) = multi_segment_log(seed, 700);
    let first = wal_ids(&sim)[0];
    let fs = frames(&sim, &seg_path(first));
    let victim = fs[fs.len() / 2];
    let len = victim.offset + into_frame.unwrap_or(0);
    sim.truncate_file(&seg_path(first), len).unwrap();
    (sim, first, victim)
}

#[test]
fn row04_earlier_segment_truncated_refuses_in_strict_modes() {
    let cases = [
        (None, "the next segment starts at LSN"),
        (Some(20), "not a valid frame header"),
        (Some(33), "runs past the end of the file"),
    ];
    for (into_frame, want) in cases {
        for mode in [
            RecoveryMode::TolerateTornTail,
            RecoveryMode::AbsoluteConsistency,
        ] {
            let (sim, first, victim) = truncated_earlier(3, into_frame);
            let err = open_mode(&sim, SMALL_SEGMENT_BYTES, mode).unwrap_err();
            let reason = assert_corruption_at(&err, &seg_path(first), victim.offset, victim.lsn);
            assert!(reason.contains(want), "{mode:?}: {reason}");
        }
    }
}

#[test]
fn row04_earlier_segment_truncated_point_in_time_cuts_there() {
    let (sim, first, victim) = truncated_earlier(4, Some(33));
    let wal = open_mode(&sim, SMALL_SEGMENT_BYTES, RecoveryMode::PointInTime).unwrap();
    assert_eq!(wal.next_lsn(), Lsn(victim.lsn));
    assert_eq!(
        wal.segments().len(),
        2,
        "the cut segment plus a fresh one; later ones released"
    );
    assert_eq!(wal.segments()[0].id, first);
    assert_eq!(read_all(&wal).len() as u64, victim.lsn - 1);
}

#[test]
fn row04_earlier_segment_truncated_skip_corrupt_cannot_invent_the_missing_records() {
    let (sim, _, victim) = truncated_earlier(5, Some(33));
    let wal = open_mode(&sim, SMALL_SEGMENT_BYTES, RecoveryMode::SkipCorrupt).unwrap();
    let skipped = wal.recovery_report().skipped.clone();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, Lsn(victim.lsn), "the hole starts at the cut");
    let second = wal.segments()[1].first_lsn;
    assert_eq!(
        skipped[0].1, second,
        "and ends where the next segment starts"
    );
    let got = read_all(&wal);
    assert!(got.iter().all(|r| r.0 < victim.lsn || r.0 >= second.0));
    assert_eq!(
        got.last().unwrap().0,
        700,
        "every record after the hole reads back"
    );
    assert_eq!(
        got.len() as u64,
        700 - (second.0 - victim.lsn),
        "exactly the hole is missing"
    );
}
