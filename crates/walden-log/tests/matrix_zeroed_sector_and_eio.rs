//! Matrix row 3: a zeroed sector or an EIO on read is treated as a checksum failure, then
//! decided by position: before durable records it is row 2 (refuse in the default mode, cut in
//! `PointInTime`, a hole in `SkipCorrupt`), at the tail it is row 1 (cut, nothing
//! acknowledged lost).
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::storage::{CrashDamage, SimStorage};

/// The simulator's sector (the unit of crash damage and of `zero_range` here).
const SECTOR_BYTES: usize = 512;
use walden_log::{Durability, Lsn, RecoveryMode};

/// Payload bytes that make every frame exactly one sector (32-byte header + 480).
const SECTOR_PAYLOAD: usize = SECTOR_BYTES - 32;

/// `records` durable appends of one sector each, so frame `k` fills sector `k` exactly.
fn sector_log(seed: u64, records: u64) -> (SimStorage, Records) {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let mut appended = Vec::new();
    for i in 0..records {
        let data = vec![b'0' + (i % 10) as u8; SECTOR_PAYLOAD];
        let lsn = wal.append(&data).unwrap();
        appended.push((lsn.0, data));
    }
    wal.close().unwrap();
    (sim, appended)
}

/// A whole sector zeroed: exactly the frame of `bad_lsn`, header included, so the scan sees
/// zeros where a frame header belongs, with durable frames after it.
fn zeroed_frame_sector(seed: u64) -> MidDamage {
    let (sim, appended) = sector_log(seed, 20);
    let (segment, f) = find_frame(&sim, 8);
    assert_eq!(f.total_bytes, SECTOR_BYTES as u64);
    assert_eq!(
        f.offset % SECTOR_BYTES as u64,
        0,
        "frames are sector aligned"
    );
    sim.zero_range(&seg_path(segment), f.offset..f.offset + f.total_bytes)
        .unwrap();
    MidDamage {
        sim,
        segment_bytes: SMALL_SEGMENT_BYTES,
        appended,
        bad_lsn: 8,
        hole_end: 9,
        segment,
        offset: f.offset,
        reason_has: "zero",
    }
}

/// A sector zeroed across the end of one frame and the start of the next (small records):
/// the first frame touched fails its checksum.
fn zeroed_sector_across_frames(seed: u64) -> MidDamage {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let appended = append_n(&wal, "zero", 60, Durability::Sync);
    wal.close().unwrap();
    let segment = wal_ids(&sim)[0];
    let sector = 4096 + SECTOR_BYTES as u64; // the second sector of frames
    let all = frames(&sim, &seg_path(segment));
    let victim = *all
        .iter()
        .find(|f| f.offset + f.total_bytes > sector)
        .unwrap();
    let after = *all
        .iter()
        .find(|f| f.offset >= sector + SECTOR_BYTES as u64)
        .unwrap();
    assert!(
        after.lsn > victim.lsn + 1,
        "the sector spans several frames"
    );
    sim.zero_range(&seg_path(segment), sector..sector + SECTOR_BYTES as u64)
        .unwrap();
    MidDamage {
        sim,
        segment_bytes: SMALL_SEGMENT_BYTES,
        appended,
        bad_lsn: victim.lsn,
        hole_end: after.lsn,
        segment,
        offset: victim.offset,
        reason_has: if victim.offset == sector {
            "zero"
        } else {
            "checksum mismatch"
        },
    }
}

/// EIO on any read of a few bytes inside the payload of the frame of LSN 8.
fn eio_mid(seed: u64) -> MidDamage {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let appended = append_n(&wal, "eio", 20, Durability::Sync);
    wal.close().unwrap();
    let (segment, f) = find_frame(&sim, 8);
    sim.fail_reads(&seg_path(segment), f.offset + 33..f.offset + 35);
    MidDamage {
        sim,
        segment_bytes: SMALL_SEGMENT_BYTES,
        appended,
        bad_lsn: 8,
        hole_end: 9,
        segment,
        offset: f.offset,
        reason_has: "read error",
    }
}

#[test]
fn row03_zeroed_sector_holding_a_whole_frame_mid_log_every_mode() {
    assert_mid_damage_every_mode(|| zeroed_frame_sector(1));
}

#[test]
fn row03_zeroed_sector_across_frames_mid_log_every_mode() {
    assert_mid_damage_every_mode(|| zeroed_sector_across_frames(2));
}

#[test]
fn row03_eio_on_read_mid_log_every_mode() {
    assert_mid_damage_every_mode(|| eio_mid(3));
}

/// `durable` Sync appends, then one Buffered append written to the OS but never synced
/// (as if the crash hit before its sync), kept by the crash: the unacknowledged tail.
fn with_unsynced_tail(seed: u64, durable: u64) -> (SimStorage, Records) {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES).buffer_bytes(1)).unwrap();
    let mut appended = append_n(&wal, "tail", durable, Durability::Sync);
    appended.extend(append_n(&wal, "tail", 1, Durability::Buffered));
    sim.crash(CrashDamage::KeepAll);
    drop(wal);
    (sim, appended)
}

#[test]
fn row03_eio_on_read_at_the_tail_is_cut_like_a_torn_write() {
    let (sim, appended) = with_unsynced_tail(4, 10);
    let (segment, f) = find_frame(&sim, 11);
    sim.fail_reads(&seg_path(segment), f.offset + 40..f.offset + 41);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let report = wal.recovery_report().clone();
    let d = report.damage.expect("the cut is reported");
    assert_eq!(d.location.path, seg_path(segment));
    assert_eq!(d.location.offset, f.offset);
    assert_eq!(d.location.lsn, Lsn(11));
    assert!(d.reason.contains("read error"), "{}", d.reason);
    assert_eq!(
        read_all(&wal),
        appended[..10].to_vec(),
        "every acknowledged record, nothing more"
    );
    assert!(
        report.started_new_segment,
        "unreadable bytes are superseded, never rewritten in place"
    );
    assert_eq!(wal.append(b"next").unwrap(), Lsn(11));
    drop(wal);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    assert_eq!(wal.recovery_report().damage, None);
    assert_eq!(read_all(&wal).len(), 11);
}

#[test]
fn row03_zeroed_sector_at_the_tail_is_cut_like_a_torn_write() {
    for (seed, whole_frame) in [(5, true), (6, false)] {
        let (sim, appended) = with_unsynced_tail(seed, 10);
        let (segment, f) = find_frame(&sim, 11);
        // The whole frame (what a lost write leaves in a zero-filled file), or only its
        // payload (a torn write whose header sector persisted).
        let start = if whole_frame { f.offset } else { f.offset + 32 };
        sim.zero_range(&seg_path(segment), start..f.offset + f.total_bytes)
            .unwrap();
        let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
        let report = wal.recovery_report().clone();
        if whole_frame {
            assert_eq!(
                report.damage, None,
                "zeros where nothing was synced are the end of the log"
            );
        } else {
            let d = report
                .damage
                .expect("a frame with a zeroed payload is reported");
            assert_eq!(
                (d.location.path, d.location.offset, d.location.lsn),
                (seg_path(segment), f.offset, Lsn(11))
            );
        }
        assert_eq!(read_all(&wal), appended[..10].to_vec());
        assert_eq!(wal.append(b"next").unwrap(), Lsn(11));
    }
}

/// `AbsoluteConsistency` refuses even a tail it could cut.
#[test]
fn row03_absolute_consistency_refuses_a_damaged_tail() {
    let (sim, _) = with_unsynced_tail(7, 10);
    let (segment, f) = find_frame(&sim, 11);
    sim.fail_reads(&seg_path(segment), f.offset + 40..f.offset + 41);
    let err = open_mode(&sim, SMALL_SEGMENT_BYTES, RecoveryMode::AbsoluteConsistency).unwrap_err();
    assert_corruption_at(&err, &seg_path(segment), f.offset, 11);
}
