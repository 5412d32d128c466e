//! How new segments are made (`Options::preallocation`): zero-filled, reserved with
//! `fallocate`, or either as the writer's pace says. Whatever the way and whatever the file
//! system supports, a prepared segment is durable, full length and blank, recovery takes it
//! as a spare, and records appended into it come back. On the real file system, `Adaptive`
//! reserves only when a writer outruns the zero-fill.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;
use support::{dir, open, sim_options, SMALL_SEGMENT_BYTES};
use walden_log::format::parse_segment_file_name;
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::{Durability, Lsn, Options, Preallocation, Wal};

/// Every way of making a segment, with the `fallocate` modes the file system supports:
/// `(how, allocate supported, write_zeroes supported)`.
const WAYS: [(Preallocation, bool, bool); 6] = [
    (Preallocation::ZeroFill, true, false),
    (Preallocation::ZeroFill, true, true),
    (Preallocation::Reserve, true, false),
    (Preallocation::Reserve, false, false),
    (Preallocation::Adaptive, true, false),
    (Preallocation::Adaptive, false, true),
];

fn record(i: u64, len: usize) -> Vec<u8> {
    let mut r = format!("record {i} ").into_bytes();
    r.resize(len, (i % 251) as u8);
    r
}

fn read_all(wal: &Wal) -> Vec<Vec<u8>> {
    wal.read_from(wal.first_lsn())
        .unwrap()
        .map(|r| r.unwrap().data)
        .collect()
}

#[test]
fn a_prepared_segment_is_durable_blank_full_length_and_a_spare() {
    for (seed, (how, allocate, write_zeroes)) in WAYS.into_iter().enumerate() {
        let ctx = format!("{how:?}, allocate {allocate}, write_zeroes {write_zeroes}");
        let sim = SimStorage::new(seed as u64);
        sim.set_fallocate_support(allocate, write_zeroes);
        let options = sim_options(SMALL_SEGMENT_BYTES).preallocation(how);
        let wal = open(&sim, options.clone()).unwrap();
        // Buffered appends up to the first rotation: the new segment is prepared (inline),
        // its header only pending in memory.
        let mut i = 0;
        while wal.stats().rotations == 0 {
            wal.append_with(&record(i, 700), Durability::Buffered)
                .unwrap();
            i += 1;
        }
        let stats = wal.stats();
        let want_reserved = u64::from(how == Preallocation::Reserve);
        // The first segment (made at open) and the rotation's.
        assert_eq!(stats.segments_created, 2, "{ctx}");
        assert_eq!(stats.segments_reserved, 2 * want_reserved, "{ctx}");
        sim.crash(CrashDamage::DropAll);
        drop(wal);
        let newest = sim
            .file_names(&dir())
            .iter()
            .filter_map(|n| parse_segment_file_name(n))
            .max()
            .unwrap();
        assert_eq!(newest, 2, "{ctx}: the prepared segment's entry is durable");
        let bytes = sim
            .read_file(&dir().join(walden_log::format::segment_file_name(newest)))
            .unwrap();
        assert_eq!(
            bytes.len() as u64,
            SMALL_SEGMENT_BYTES,
            "{ctx}: full length"
        );
        assert!(bytes.iter().all(|&b| b == 0), "{ctx}: blank");

        // Recovery takes it as a spare (nothing created), and appends go into it.
        let wal = open(&sim, options.clone()).unwrap();
        assert_eq!(wal.stats().segments_spare, 1, "{ctx}");
        assert!(wal.recovery_report().damage.is_none(), "{ctx}");
        let mut appended = Vec::new();
        while wal.stats().rotations == 0 {
            let r = record(i, 900);
            wal.append_with(&r, Durability::Sync).unwrap();
            appended.push(r);
            i += 1;
        }
        assert_eq!(wal.stats().segments_created, 0, "{ctx}: the spare was used");
        assert_eq!(wal.segments().get(1).map(|s| s.id), Some(2), "{ctx}");
        drop(wal);
        sim.crash(CrashDamage::DropAll);
        let wal = open(&sim, options).unwrap();
        assert_eq!(read_all(&wal), appended, "{ctx}");
    }
}

/// Directories on the file systems these machines have: a temporary directory under the
/// working directory (ext4 here, the disk the benchmarks use) and /dev/shm (tmpfs: no
/// `FALLOC_FL_WRITE_ZEROES`) when it exists.
fn real_dirs() -> Vec<tempfile::TempDir> {
    let mut dirs = vec![tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()];
    if Path::new("/dev/shm").is_dir() {
        if let Ok(d) = tempfile::tempdir_in("/dev/shm") {
            dirs.push(d);
        }
    }
    dirs
}

#[test]
fn every_way_round_trips_on_the_real_file_system() {
    for tmp in real_dirs() {
        for how in [
            Preallocation::ZeroFill,
            Preallocation::Reserve,
            Preallocation::Adaptive,
        ] {
            let ctx = format!("{how:?} in {}", tmp.path().display());
            let options = Options::new(tmp.path().join(format!("{how:?}")))
                .segment_bytes(64 << 10)
                .preallocation(how);
            let wal = Wal::open(options.clone()).unwrap();
            let mut appended = Vec::new();
            for i in 0..300u64 {
                let r = record(i, 200 + (i as usize * 61) % 1800);
                let lsn = wal.append_with(&r, Durability::Sync).unwrap();
                assert_eq!(lsn, Lsn(i + 1));
                appended.push(r);
            }
            assert!(wal.stats().rotations >= 4, "{ctx}");
            let segments: Vec<_> = wal.segments().into_iter().map(|s| s.path).collect();
            wal.close().unwrap();
            for path in &segments {
                let len = std::fs::metadata(path).unwrap().len();
                assert_eq!(len, 64 << 10, "{ctx}: {}", path.display());
            }
            let wal = Wal::open(options).unwrap();
            assert!(wal.recovery_report().damage.is_none(), "{ctx}");
            assert_eq!(read_all(&wal), appended, "{ctx}");
        }
    }
}

#[test]
fn adaptive_reserves_when_a_buffered_writer_outruns_the_zero_fill() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = Options::new(tmp.path().join("wal"))
        .segment_bytes(1 << 20)
        .durability(Durability::Buffered);
    assert_eq!(
        options.preallocation,
        Preallocation::ZeroFill,
        "the default: the only way safe against a journal abort (options.rs)"
    );
    let options = options.preallocation(Preallocation::Adaptive);
    let wal = Wal::open(options.clone()).unwrap();
    // 48 MiB in 64 KiB records on 1 MiB segments: the writer fills a segment in the page
    // cache far faster than the preparer writes and syncs one of zeros.
    let records = 768u64;
    for i in 0..records {
        wal.append(&record(i, 64 << 10)).unwrap();
    }
    wal.sync().unwrap();
    let stats = wal.stats();
    assert!(stats.rotations >= 40);
    assert!(
        stats.segments_reserved >= 1,
        "no segment reserved in {} created",
        stats.segments_created
    );
    assert!(
        stats.segments_created > stats.segments_reserved,
        "the first segment is zero-filled: {} created, {} reserved",
        stats.segments_created,
        stats.segments_reserved
    );
    wal.close().unwrap();
    let wal = Wal::open(options).unwrap();
    assert!(wal.recovery_report().damage.is_none());
    assert_eq!(wal.next_lsn(), Lsn(records + 1));
    let back = read_all(&wal);
    assert_eq!(back.len() as u64, records);
    for (i, r) in back.iter().enumerate() {
        assert_eq!(*r, record(i as u64, 64 << 10), "record {i}");
    }
}

#[test]
fn adaptive_zero_fills_for_a_writer_the_preparer_keeps_ahead_of() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = Options::new(tmp.path().join("wal")).segment_bytes(1 << 20);
    let wal = Wal::open(options).unwrap();
    // Durable appends with a pause before each segment fills (the first too: the pace is
    // measured from the open's take): over 500 ms per segment against a zero-fill of 1 MiB
    // (a few ms here, a few tens under load).
    let mut i = 0u64;
    while wal.stats().rotations < 3 {
        std::thread::sleep(Duration::from_millis(500));
        let before = wal.stats().rotations;
        while wal.stats().rotations == before {
            wal.append(&record(i, 60 << 10)).unwrap();
            i += 1;
        }
    }
    let stats = wal.stats();
    assert!(stats.segments_created >= 4, "{}", stats.segments_created);
    assert_eq!(
        stats.segments_reserved, 0,
        "a slow writer gets zero-filled segments"
    );
}
