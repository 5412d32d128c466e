//! Matrix row 12, second half: EIO on the `fdatasync` that *prepares* a segment (zeros and
//! header of a file no record is in yet), with the writer preparing inline.
//!
//! The contract (docs/DURABILITY.md, "fsync failure"): a failed sync poisons the log because
//! Linux marks the failed pages clean, so a retry "succeeds" and loses acknowledged data.
//! A failed *preparation* sync holds no record: the file is removed and never used, so there
//! is nothing a retry could lose. The append that needed the segment fails (nothing is
//! acknowledged), the log is not poisoned, and the next append prepares a fresh file.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::format::{frame_bytes, DATA_OFFSET};
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::{Error, Lsn};

/// Records of one fixed size, so that the append that rotates is known in advance.
const RECORD: [u8; 200] = [7; 200];

/// Appends that fill the first segment exactly as far as it goes.
fn per_segment() -> u64 {
    (SMALL_SEGMENT_BYTES - DATA_OFFSET) / frame_bytes(RECORD.len() as u64)
}

#[test]
fn row12_eio_preparing_a_segment_fails_that_append_only() {
    for damage in [CrashDamage::KeepAll, CrashDamage::DropAll] {
        let sim = SimStorage::new(12);
        let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
        let n = per_segment();
        for i in 1..=n {
            assert_eq!(wal.append(&RECORD).unwrap(), Lsn(i));
        }
        assert_eq!(
            wal.stats().rotations,
            0,
            "the first segment is full, not left"
        );
        let active = wal.segments()[0].path.clone();
        sim.fail_sync_after(1);
        let err = wal.append(&RECORD).unwrap_err();
        match &err {
            Error::Io {
                op: "fdatasync",
                path,
                ..
            } => assert_ne!(path, &active, "the failed sync is the new file's"),
            other => panic!("the append that needed a new segment fails: {other:?}"),
        }
        assert_eq!(wal.durable_lsn(), Lsn(n), "nothing acknowledged by it");
        assert_eq!(wal.next_lsn(), Lsn(n + 1), "no LSN was given out");
        wal.check()
            .expect("a preparation failure does not poison the log");

        // The next appends prepare a fresh file and go on.
        for i in n + 1..=n + 5 {
            assert_eq!(wal.append(&RECORD).unwrap(), Lsn(i));
        }
        assert_eq!(wal.stats().rotations, 1);

        sim.crash(damage);
        drop(wal);
        let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
        let got = read_all(&wal);
        assert_eq!(
            got.len() as u64,
            n + 5,
            "{damage:?}: every acknowledged record"
        );
        assert!(got.iter().all(|(_, data)| data[..] == RECORD[..]));
        assert_eq!(wal.recovery_report().damage, None, "{damage:?}");
    }
}
