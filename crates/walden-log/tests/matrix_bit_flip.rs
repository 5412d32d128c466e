//! Matrix row 2: a bit flip in the middle of the log, with valid durable records after it.
//! The default mode refuses and names segment, offset and LSN; `PointInTime` stops before the
//! damage; `SkipCorrupt` keeps the records after it (a hole); `AbsoluteConsistency` refuses.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::storage::SimStorage;
use walden_log::{Durability, RecoveryMode};

/// `records` durable appends (each `Sync`, so every later frame proves the earlier ones
/// durable), then one bit flipped at `offset_in_frame` of the frame holding `bad_lsn`.
fn flipped(
    seed: u64,
    records: u64,
    bad_lsn: u64,
    offset_in_frame: impl Fn(&FrameAt) -> u64,
) -> MidDamage {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let appended = append_n(&wal, "flip", records, Durability::Sync);
    wal.close().unwrap();
    let (segment, frame) = find_frame(&sim, bad_lsn);
    assert!(frame.durable_lsn < bad_lsn);
    sim.corrupt(
        &seg_path(segment),
        frame.offset + offset_in_frame(&frame),
        0x10,
    )
    .unwrap();
    MidDamage {
        sim,
        segment_bytes: SMALL_SEGMENT_BYTES,
        appended,
        bad_lsn,
        hole_end: bad_lsn + 1,
        segment,
        offset: frame.offset,
        reason_has: "checksum mismatch",
    }
}

fn in_payload(f: &FrameAt) -> u64 {
    32 + u64::from(f.payload_bytes) / 2
}

#[test]
fn row02_bit_flip_mid_segment_default_mode_refuses_naming_segment_offset_lsn() {
    flipped(1, 20, 8, in_payload).assert_refused(RecoveryMode::TolerateTornTail);
}

#[test]
fn row02_bit_flip_mid_segment_absolute_consistency_refuses() {
    flipped(2, 20, 8, in_payload).assert_refused(RecoveryMode::AbsoluteConsistency);
}

#[test]
fn row02_bit_flip_mid_segment_point_in_time_stops_before_it() {
    flipped(3, 20, 8, in_payload).assert_point_in_time_cuts();
}

#[test]
fn row02_bit_flip_mid_segment_skip_corrupt_keeps_records_after_the_hole() {
    flipped(4, 20, 8, in_payload).assert_skip_corrupt_keeps_the_rest();
}

/// The damage in the first of several segments, the proof in later ones.
#[test]
fn row02_bit_flip_in_earlier_segment_every_mode() {
    let probe = flipped(5, 900, 40, in_payload);
    let ids = wal_ids(&probe.sim);
    assert!(ids.len() >= 3, "spans several segments: {ids:?}");
    assert_eq!(probe.segment, ids[0]);
    assert_mid_damage_every_mode(|| flipped(5, 900, 40, in_payload));
}

/// A flipped bit in the frame header's CRC or chain field is damage too.
#[test]
fn row02_bit_flip_in_frame_header_fields_every_mode() {
    for field_at in [0u64, 24] {
        assert_mid_damage_every_mode(|| flipped(6, 20, 5, |_| field_at));
    }
}

/// A flipped bit in the LSN field makes the header name another LSN: damage, refused.
#[test]
fn row02_bit_flip_in_frame_lsn_field_refuses() {
    let d = flipped(7, 20, 5, |_| 8);
    let err = open_mode(&d.sim, SMALL_SEGMENT_BYTES, RecoveryMode::TolerateTornTail).unwrap_err();
    let reason = assert_corruption_at(&err, &seg_path(d.segment), d.offset, 5);
    assert!(reason.contains("acknowledged data is damaged"), "{reason}");
}
