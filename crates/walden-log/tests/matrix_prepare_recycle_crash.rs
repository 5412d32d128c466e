//! Matrix row 10: a crash around write / fsync / rename / fsync-dir. The segment preparer
//! creates new files (create, zero-fill or reserve, fsync, fsync the directory; the
//! zero-fill through `write_zeroes` or plain writes, the reservation through `allocate` or
//! `set_len`, as the file system supports) and recycles released ones (blank the header, fsync, rename `.free` to `.wal`, fsync the directory);
//! `truncate_before` releases them (rename `.wal` to `.free` or remove, fsync the directory).
//! At every call and under every damage pattern each file is in its old state or its new
//! one, never a mix: a `*.wal` file holds a blank header or a header naming its own id, a
//! `*.free` file likewise, and the log recovers.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::format::{
    parse_free_file_name, parse_segment_file_name, SegmentHeader, DATA_OFFSET,
};
use walden_log::storage::SimStorage;
use walden_log::{Durability, Preallocation, Wal};

/// No file carries another file's identity: every valid header names the file's own id and
/// the log's id. (A renamed file is always blank first: recycling blanks and syncs the header
/// before the rename.) Headers that are neither blank nor valid are the torn initialization of
/// the newest segment (written by the group commit, unsynced), or a `.free` file whose
/// blanking was torn: both are legitimately half-written, and neither holds a record.
fn files_old_or_new(sim: &SimStorage, _: &Model, ctx: &str) {
    let mut log_id = None;
    let newest = wal_ids(sim).into_iter().max();
    for name in sim.file_names(&dir()) {
        let (id, free) = match (parse_segment_file_name(&name), parse_free_file_name(&name)) {
            (Some(id), _) => (id, false),
            (_, Some(id)) => (id, true),
            _ => panic!("{ctx}: unexpected file {name}"),
        };
        let bytes = sim.read_file(&dir().join(&name)).unwrap();
        let page = &bytes[..bytes.len().min(DATA_OFFSET as usize)];
        if page.iter().all(|&b| b == 0) {
            continue;
        }
        match SegmentHeader::decode_page(page) {
            Ok(header) => {
                assert_eq!(
                    header.segment_id, id,
                    "{ctx}: {name} carries another segment's header"
                );
                assert_eq!(
                    *log_id.get_or_insert(header.log_id),
                    header.log_id,
                    "{ctx}: {name}"
                );
            }
            Err(_) => assert!(
                free || Some(id) == newest,
                "{ctx}: {name} has a damaged header"
            ),
        }
    }
}

/// After recovery every `*.wal` file is a live segment or a blank spare.
fn no_stray_segment(sim: &SimStorage, wal: &Wal, _: &Model, ctx: &str) {
    let live: Vec<u64> = wal.segments().iter().map(|s| s.id).collect();
    for id in wal_ids(sim) {
        if !live.contains(&id) {
            let bytes = sim.read_file(&seg_path(id)).unwrap();
            assert!(
                bytes[..DATA_OFFSET as usize].iter().all(|&b| b == 0),
                "{ctx}: segment {id} is neither live nor blank"
            );
        }
    }
}

/// Six durable segments, four released (two kept as `.free`), and the active segment
/// nearly full, so the workload's rotation recycles a released file.
fn released_and_nearly_full(sim: &SimStorage, wal: &Wal, m: &mut Model) {
    while wal.segments().len() < 6 {
        m.append_n(wal, "first", 20, Durability::Sync).unwrap();
    }
    let lsn = wal.segments()[4].first_lsn.0;
    assert_eq!(m.truncate_before(wal, lsn).unwrap(), 4);
    assert_eq!(
        sim.file_names(&dir())
            .iter()
            .filter(|n| n.ends_with(".free"))
            .count(),
        2
    );
    let active = wal.segments().last().unwrap().id;
    loop {
        let used = frames(sim, &seg_path(active))
            .last()
            .map_or(4096, |f| f.offset + f.total_bytes);
        if SMALL_SEGMENT_BYTES - used < 150 {
            break;
        }
        m.append_n(wal, "fill", 1, Durability::Sync).unwrap();
    }
}

#[test]
fn row10_crash_while_recycling_a_released_segment() {
    let sweep = Sweep {
        seed: 10,
        options: sim_options(SMALL_SEGMENT_BYTES).recycle_segments_max(2),
        damages: &SWEEP_DAMAGES,
        setup: &released_and_nearly_full,
        workload: &|_, wal, m| {
            let recycled = wal.stats().segments_recycled;
            m.append_n(wal, "second", 5, Durability::Sync)?;
            assert_eq!(
                wal.stats().segments_recycled,
                recycled + 1,
                "the rotation recycled"
            );
            Ok(())
        },
        after_crash: &files_old_or_new,
        after_open: &no_stray_segment,
    };
    assert!(sweep.run_all() >= 50);
}

/// A crash at every call of a rotation that creates a new segment made as `how` says, on a
/// file system supporting `allocate` and `write_zeroes` as given.
fn crash_while_creating(seed: u64, how: Preallocation, allocate: bool, write_zeroes: bool) {
    let sweep = Sweep {
        seed,
        options: sim_options(SMALL_SEGMENT_BYTES)
            .recycle_segments_max(0)
            .preallocation(how),
        damages: &SWEEP_DAMAGES,
        setup: &|sim, wal, m| {
            sim.set_fallocate_support(allocate, write_zeroes);
            let active = wal.segments()[0].id;
            loop {
                let used = frames(sim, &seg_path(active))
                    .last()
                    .map_or(4096, |f| f.offset + f.total_bytes);
                if SMALL_SEGMENT_BYTES - used < 150 {
                    break;
                }
                m.append_n(wal, "fill", 1, Durability::Sync).unwrap();
            }
        },
        workload: &|_, wal, m| {
            let created = wal.stats().segments_created;
            let reserved = wal.stats().segments_reserved;
            m.append_n(wal, "second", 5, Durability::Sync)?;
            assert_eq!(wal.stats().segments_created, created + 1);
            let want = u64::from(how == Preallocation::Reserve);
            assert_eq!(wal.stats().segments_reserved, reserved + want);
            Ok(())
        },
        after_crash: &files_old_or_new,
        after_open: &no_stray_segment,
    };
    assert!(sweep.run_all() >= 40);
}

#[test]
fn row10_crash_while_creating_a_new_segment() {
    // Zero-filled with 1 MiB writes (no FALLOC_FL_WRITE_ZEROES, like ext4 here).
    crash_while_creating(11, Preallocation::Adaptive, true, false);
}

#[test]
fn row10_crash_while_zero_filling_with_write_zeroes() {
    crash_while_creating(13, Preallocation::ZeroFill, true, true);
}

#[test]
fn row10_crash_while_reserving_a_new_segment() {
    crash_while_creating(14, Preallocation::Reserve, true, false);
}

#[test]
fn row10_crash_while_reserving_without_fallocate() {
    // The set_len fallback.
    crash_while_creating(15, Preallocation::Reserve, false, false);
}

#[test]
fn row10_crash_while_releasing_segments() {
    let sweep = Sweep {
        seed: 12,
        options: sim_options(SMALL_SEGMENT_BYTES).recycle_segments_max(2),
        damages: &SWEEP_DAMAGES,
        setup: &|_, wal, m| {
            while wal.segments().len() < 6 {
                m.append_n(wal, "first", 20, Durability::Sync).unwrap();
            }
        },
        workload: &|_, wal, m| {
            let lsn = wal.segments()[4].first_lsn.0;
            m.truncate_before(wal, lsn).map(drop)
        },
        after_crash: &files_old_or_new,
        after_open: &no_stray_segment,
    };
    assert!(sweep.run_all() >= 40);
}

/// The real file system: a log reopened after `truncate_before` and recycling holds exactly
/// its records, and its directory only segment files (no temporary left behind).
#[test]
fn row10_real_fs_recycling_leaves_only_segment_files() {
    let tmp = tempfile::tempdir().unwrap();
    let options = walden_log::Options::new(tmp.path().join("wal"))
        .segment_bytes(SMALL_SEGMENT_BYTES)
        .recycle_segments_max(2);
    let mut expected = Vec::new();
    {
        let wal = Wal::open(options.clone()).unwrap();
        expected.extend(append_n(&wal, "fs", 1500, Durability::Buffered));
        wal.sync().unwrap();
        let cut = wal.segments()[wal.segments().len() - 2].first_lsn;
        wal.truncate_before(cut).unwrap();
        expected.retain(|r| r.0 >= cut.0);
        expected.extend(append_n(&wal, "fs2", 800, Durability::Buffered));
        assert!(wal.stats().segments_recycled >= 1);
        wal.close().unwrap();
    }
    let wal = Wal::open(options).unwrap();
    assert_eq!(wal.recovery_report().damage, None);
    assert_eq!(read_all(&wal), expected);
    for entry in std::fs::read_dir(tmp.path().join("wal")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let known = parse_segment_file_name(&name).is_some()
            || parse_free_file_name(&name).is_some()
            || name == "LOCK";
        assert!(known, "unexpected file {name}");
    }
}
