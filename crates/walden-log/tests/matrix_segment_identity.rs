//! Matrix row 6: identity comes from the header, never from the file name. A misnamed
//! segment, a duplicated one, or a segment from another log refuses to open in every recovery
//! mode, and the read-only tools report the same error instead of guessing.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use walden_log::storage::SimStorage;
use walden_log::{dump_records, inspect_dir, Durability, Error, Lsn, Wal};

fn log(seed: u64) -> (SimStorage, Vec<u64>) {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    append_n(&wal, "ident", 700, Durability::Sync);
    wal.close().unwrap();
    let ids = wal_ids(&sim);
    assert!(ids.len() >= 3);
    (sim, ids)
}

/// Every way to open or inspect the log refuses with `Error::Corruption` naming `path`, and
/// the reason contains `why`.
fn assert_refused_everywhere(sim: &SimStorage, path: &Path, why: &str) {
    for mode in ALL_MODES {
        let err = open_mode(sim, SMALL_SEGMENT_BYTES, mode).unwrap_err();
        match &err {
            Error::Corruption { location, reason } => {
                assert_eq!(location.path, path, "{mode:?}: {err}");
                assert_eq!(location.offset, 0, "{mode:?}: the header is at fault");
                assert!(reason.contains(why), "{mode:?}: {reason}");
            }
            other => panic!("{mode:?}: expected Error::Corruption, got {other:?}"),
        }
        let err = Wal::open_read_only(dir(), mode, Arc::new(sim.clone())).unwrap_err();
        assert!(err.is_corruption(), "{mode:?} read-only: {err}");
        let err = dump_records(Arc::new(sim.clone()), &dir(), mode, Lsn(1)).unwrap_err();
        assert!(err.is_corruption(), "{mode:?} dump: {err}");
    }
    assert!(inspect_dir(sim, &dir()).unwrap_err().is_corruption());
}

#[test]
fn row06_misnamed_segment_refuses_in_every_mode() {
    let (sim, ids) = log(1);
    // Segment 2 renamed to an unused id above the last: header and name disagree.
    let to: PathBuf = seg_path(ids.last().unwrap() + 5);
    sim.rename_file(&seg_path(ids[1]), &to).unwrap();
    assert_refused_everywhere(&sim, &to, "file name says");
}

#[test]
fn row06_segments_swapped_by_name_refuse_in_every_mode() {
    let (sim, ids) = log(2);
    let tmp = dir().join("swap.tmp");
    sim.rename_file(&seg_path(ids[0]), &tmp).unwrap();
    sim.rename_file(&seg_path(ids[1]), &seg_path(ids[0]))
        .unwrap();
    sim.rename_file(&tmp, &seg_path(ids[1])).unwrap();
    assert_refused_everywhere(&sim, &seg_path(ids[0]), "file name says");
}

#[test]
fn row06_duplicated_segment_refuses_in_every_mode() {
    // A copy of segment 1 under a new id (as a careless backup restore would leave it).
    let (sim, ids) = log(3);
    let copy = seg_path(ids.last().unwrap() + 1);
    sim.write_file(&copy, &sim.read_file(&seg_path(ids[0])).unwrap())
        .unwrap();
    assert_refused_everywhere(&sim, &copy, "file name says");

    // A copy of segment 1 over segment 2's name.
    let (sim, ids) = log(4);
    sim.write_file(
        &seg_path(ids[1]),
        &sim.read_file(&seg_path(ids[0])).unwrap(),
    )
    .unwrap();
    assert_refused_everywhere(&sim, &seg_path(ids[1]), "file name says");
}

#[test]
fn row06_stale_segment_from_another_log_refuses_in_every_mode() {
    // Two logs with the same layout (same segment ids) but different log ids; segment 2 of
    // the second log copied into the first under its own (matching) name.
    let (sim_a, ids_a) = log(5);
    let (sim_b, ids_b) = log(6);
    assert_eq!(ids_a[..3], ids_b[..3]);
    let log_a = header_of(&sim_a, &seg_path(ids_a[0])).unwrap().log_id;
    let log_b = header_of(&sim_b, &seg_path(ids_b[1])).unwrap().log_id;
    assert_ne!(log_a, log_b);
    sim_a
        .write_file(
            &seg_path(ids_a[1]),
            &sim_b.read_file(&seg_path(ids_b[1])).unwrap(),
        )
        .unwrap();
    assert_refused_everywhere(&sim_a, &seg_path(ids_a[1]), "belongs to log");

    // The same stale file appended after the last segment, under a fresh id it matches.
    let (sim_a, ids_a) = log(7);
    let sim_b = SimStorage::new(8);
    let wal_b = open(&sim_b, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    // Make log B reach a segment id above log A's last one.
    while wal_ids(&sim_b).last().unwrap() <= ids_a.last().unwrap() {
        append_n(&wal_b, "other", 50, Durability::Sync);
    }
    wal_b.close().unwrap();
    let stale_id = *wal_ids(&sim_b)
        .iter()
        .find(|id| *id > ids_a.last().unwrap())
        .unwrap();
    let stale = seg_path(stale_id);
    sim_a
        .write_file(&stale, &sim_b.read_file(&stale).unwrap())
        .unwrap();
    assert_refused_everywhere(&sim_a, &stale, "belongs to log");
}
