//! Unreadable segment headers at the edges of the log: after the last segment (a torn
//! rotation, unless its frames prove they were synced) and before the first (never left by a
//! crash: refused, or skipped by salvage modes).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use walden_log::storage::{SimStorage, Storage};
use walden_log::{Durability, Error, Lsn, Options, RecoveryMode, Wal};

const DIR: &str = "/log";

fn options(mode: RecoveryMode) -> Options {
    Options::new(DIR)
        .segment_bytes(16 << 10)
        .prepare_in_background(false)
        .recovery(mode)
}

fn open(sim: &SimStorage, mode: RecoveryMode) -> walden_log::Result<Wal> {
    Wal::open_with(
        options(mode),
        Arc::new(sim.clone()) as Arc<dyn Storage>,
        &mut |_| {},
    )
}

/// 300 durable 100-byte records over several segments; returns the segment paths.
fn durable_log(sim: &SimStorage) -> Vec<PathBuf> {
    let wal = open(sim, RecoveryMode::TolerateTornTail).unwrap();
    for i in 0..300u32 {
        wal.append_with(&[i as u8; 100], Durability::Sync).unwrap();
    }
    let paths = wal
        .segments()
        .into_iter()
        .map(|s| s.path)
        .collect::<Vec<_>>();
    assert!(paths.len() >= 3);
    wal.close().unwrap();
    paths
}

fn garble_headers(sim: &SimStorage, path: &Path) {
    for at in (0..64).chain(512..576) {
        sim.corrupt(path, at, 0x5a).unwrap();
    }
}

fn count(wal: &Wal) -> usize {
    let records: Vec<_> = wal
        .read_from(wal.first_lsn())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    records.len()
}

#[test]
fn synced_records_behind_an_unreadable_last_header_refuse_to_open() {
    let sim = SimStorage::new(1);
    let paths = durable_log(&sim);
    let last = paths.last().unwrap();
    garble_headers(&sim, last);
    let err = open(&sim, RecoveryMode::TolerateTornTail).unwrap_err();
    match err {
        Error::Corruption { location, reason } => {
            assert_eq!(&location.path, last);
            assert_eq!(location.offset, 0);
            assert!(
                reason.contains("both header copies are unreadable"),
                "{reason}"
            );
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Salvage is an explicit choice: PointInTime opens with what precedes it.
    let wal = open(&sim, RecoveryMode::PointInTime).unwrap();
    assert!(wal.recovery_report().damage.is_some());
    assert!(count(&wal) < 300);
}

#[test]
fn an_unreadable_header_with_nothing_synced_behind_it_is_a_torn_rotation() {
    let sim = SimStorage::new(2);
    let paths = durable_log(&sim);
    // A file after the last segment whose header write tore and held no synced frame.
    let id = paths.len() as u64 + 10;
    let torn = PathBuf::from(DIR).join(format!("{id:016x}.wal"));
    sim.write_file(&torn, &vec![0x77u8; 16 << 10]).unwrap();
    let wal = open(&sim, RecoveryMode::TolerateTornTail).unwrap();
    let damage = wal.recovery_report().damage.clone().unwrap();
    assert_eq!(damage.location.path, torn);
    assert_eq!(count(&wal), 300, "every record before it is kept");
    assert_eq!(wal.append(b"next").unwrap(), Lsn(301));
    drop(wal);
    let wal = open(&sim, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(
        count(&wal),
        301,
        "the torn file was released; the log is clean again"
    );
}

#[test]
fn a_stray_unreadable_file_before_the_first_segment_is_refused_not_cut_at() {
    let sim = SimStorage::new(3);
    durable_log(&sim);
    let stray = PathBuf::from(DIR).join(format!("{:016x}.wal", 0));
    sim.write_file(&stray, &vec![0x42u8; 8192]).unwrap();
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let err = open(&sim, mode).unwrap_err();
        assert!(err.is_corruption(), "{mode:?}: {err:?}");
        assert!(
            err.to_string()
                .contains("before the first readable segment"),
            "{err}"
        );
    }
    let wal = open(&sim, RecoveryMode::PointInTime).unwrap();
    assert_eq!(
        count(&wal),
        300,
        "salvage skips the stray file and keeps the whole log"
    );
    assert_eq!(
        wal.recovery_report().damage.as_ref().unwrap().location.path,
        stray
    );
}
