//! Matrix row 5: a missing segment file. A missing middle segment breaks the chain of first
//! LSNs: the log refuses, naming the segment before the gap and the first missing LSN. A
//! missing first segment cannot be told from `truncate_before`: the log opens starting at the
//! next segment, and reads before it return `Error::Truncated`.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::storage::SimStorage;
use walden_log::{Durability, Error, Lsn, RecoveryMode};

fn log_with_segments(seed: u64) -> (SimStorage, Records, Vec<u64>) {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let appended = append_n(&wal, "miss", 1000, Durability::Sync);
    wal.close().unwrap();
    let ids = wal_ids(&sim);
    assert!(ids.len() >= 4, "{ids:?}");
    (sim, appended, ids)
}

#[test]
fn row05_missing_middle_segment_refuses_naming_the_gap() {
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let (sim, _, ids) = log_with_segments(1);
        let missing_first_lsn = header_of(&sim, &seg_path(ids[2])).unwrap().first_lsn;
        let next_first_lsn = header_of(&sim, &seg_path(ids[3])).unwrap().first_lsn;
        let before = frames(&sim, &seg_path(ids[1]));
        let end_of_before = before.last().map(|f| f.offset + f.total_bytes).unwrap();
        sim.remove_file(&seg_path(ids[2])).unwrap();
        let err = open_mode(&sim, SMALL_SEGMENT_BYTES, mode).unwrap_err();
        let reason =
            assert_corruption_at(&err, &seg_path(ids[1]), end_of_before, missing_first_lsn);
        assert!(
            reason.contains(&format!(
                "segment ends at LSN {} but the next segment starts at LSN {next_first_lsn}",
                missing_first_lsn - 1
            )),
            "{mode:?}: {reason}"
        );
        if mode == RecoveryMode::TolerateTornTail {
            assert!(reason.contains("acknowledged data is damaged"), "{reason}");
        }
    }
}

#[test]
fn row05_missing_middle_segment_point_in_time_and_skip_corrupt() {
    let (sim, appended, ids) = log_with_segments(2);
    let missing = header_of(&sim, &seg_path(ids[2])).unwrap().first_lsn;
    let resume = header_of(&sim, &seg_path(ids[3])).unwrap().first_lsn;
    sim.remove_file(&seg_path(ids[2])).unwrap();
    let snapshot: Vec<(String, Vec<u8>)> = sim
        .file_names(&dir())
        .into_iter()
        .map(|n| {
            let bytes = sim.read_file(&dir().join(&n)).unwrap();
            (n, bytes)
        })
        .collect();

    let wal = open_mode(&sim, SMALL_SEGMENT_BYTES, RecoveryMode::SkipCorrupt).unwrap();
    assert_eq!(
        wal.recovery_report().skipped,
        vec![(Lsn(missing), Lsn(resume))]
    );
    let expected: Vec<_> = appended
        .iter()
        .filter(|r| r.0 < missing || r.0 >= resume)
        .cloned()
        .collect();
    assert_eq!(
        read_all(&wal),
        expected,
        "every record of the remaining segments"
    );
    drop(wal);

    let sim = SimStorage::new(3);
    for (n, bytes) in &snapshot {
        sim.write_file(&dir().join(n), bytes).unwrap();
    }
    let wal = open_mode(&sim, SMALL_SEGMENT_BYTES, RecoveryMode::PointInTime).unwrap();
    let expected: Vec<_> = appended.iter().filter(|r| r.0 < missing).cloned().collect();
    assert_eq!(read_all(&wal), expected, "stops at the gap");
}

#[test]
fn row05_missing_last_segment_is_indistinguishable_from_a_lost_rotation() {
    // The last segment's records were acknowledged, but nothing after them proves it: the
    // log ends where the previous segment ends (documented limit of the default mode).
    let (sim, appended, ids) = log_with_segments(4);
    let last = *ids.last().unwrap();
    let lost_from = header_of(&sim, &seg_path(last)).unwrap().first_lsn;
    sim.remove_file(&seg_path(last)).unwrap();
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let expected: Vec<_> = appended
        .iter()
        .filter(|r| r.0 < lost_from)
        .cloned()
        .collect();
    assert_eq!(read_all(&wal), expected);
    assert_eq!(wal.next_lsn(), Lsn(lost_from));
}

#[test]
fn row05_missing_first_segment_reads_as_truncate_before() {
    let (sim, appended, ids) = log_with_segments(5);
    let new_first = header_of(&sim, &seg_path(ids[1])).unwrap().first_lsn;
    sim.remove_file(&seg_path(ids[0])).unwrap();
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    assert_eq!(
        wal.recovery_report().damage,
        None,
        "nothing tells it from a released head"
    );
    assert_eq!(wal.first_lsn(), Lsn(new_first));
    assert_eq!(wal.recovery_report().first_lsn, Lsn(new_first));
    match wal.read_from(Lsn(1)) {
        Err(Error::Truncated { lsn, first }) => assert_eq!((lsn, first), (Lsn(1), Lsn(new_first))),
        other => panic!("expected Error::Truncated, got {other:?}"),
    }
    let expected: Vec<_> = appended
        .iter()
        .filter(|r| r.0 >= new_first)
        .cloned()
        .collect();
    assert_eq!(read_all(&wal), expected);
    let last = appended.last().unwrap().0;
    assert_eq!(wal.append(b"more").unwrap(), Lsn(last + 1));
}
