//! Matrix row 13: a lost write (a synced frame's bytes replaced by what was there before,
//! zeros in a prepared segment, with later durable frames after it) and a misdirected write
//! (a valid frame's bytes landing at another offset or in another segment) are detected by
//! the checksum (salted with the segment's identity), the LSN and the chain, and refused in the
//! default mode.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use walden_log::storage::SimStorage;
use walden_log::{Durability, RecoveryMode};

/// Fixed-size records, so any frame's bytes fit exactly over any other frame.
fn same_size_log(seed: u64, records: u64) -> (SimStorage, Records) {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let mut appended = Vec::new();
    for i in 0..records {
        let data = format!("record-{i:08}").into_bytes();
        let lsn = wal.append_with(&data, Durability::Sync).unwrap();
        appended.push((lsn.0, data));
    }
    wal.close().unwrap();
    (sim, appended)
}

fn frame_bytes_of(sim: &SimStorage, segment: u64, f: &FrameAt) -> Vec<u8> {
    let bytes = sim.read_file(&seg_path(segment)).unwrap();
    bytes[f.offset as usize..(f.offset + f.total_bytes) as usize].to_vec()
}

/// Overwrites `at` in segment `segment` with `bytes`, in both images (as a disk would).
fn overwrite(sim: &SimStorage, segment: u64, at: u64, bytes: &[u8]) {
    let mut file = sim.read_file(&seg_path(segment)).unwrap();
    file[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    sim.write_file(&seg_path(segment), &file).unwrap();
}

fn lost_write(seed: u64) -> MidDamage {
    let (sim, appended) = same_size_log(seed, 30);
    let (segment, f) = find_frame(&sim, 12);
    sim.zero_range(&seg_path(segment), f.offset..f.offset + f.total_bytes)
        .unwrap();
    MidDamage {
        sim,
        segment_bytes: SMALL_SEGMENT_BYTES,
        appended,
        bad_lsn: 12,
        hole_end: 13,
        segment,
        offset: f.offset,
        reason_has: "zeros where LSN 12 belongs",
    }
}

/// The frame of LSN 20 written over the frame of LSN 12 (the write meant for 20's place
/// landed on 12's): valid checksum, wrong LSN.
fn misdirected_within_segment(seed: u64) -> MidDamage {
    let (sim, appended) = same_size_log(seed, 30);
    let (segment, victim) = find_frame(&sim, 12);
    let (segment_20, source) = find_frame(&sim, 20);
    assert_eq!(
        (segment, victim.total_bytes),
        (segment_20, source.total_bytes)
    );
    overwrite(
        &sim,
        segment,
        victim.offset,
        &frame_bytes_of(&sim, segment, &source),
    );
    MidDamage {
        sim,
        segment_bytes: SMALL_SEGMENT_BYTES,
        appended,
        bad_lsn: 12,
        hole_end: 13,
        segment,
        offset: victim.offset,
        reason_has: "frame holds LSN 20 where LSN 12 belongs",
    }
}

/// A frame of segment 2 written over a frame of segment 1 at the same offset: its CRC is
/// salted with segment 2's identity, so it fails here even where LSN and chain could match.
fn misdirected_across_segments(seed: u64) -> MidDamage {
    let (sim, appended) = same_size_log(seed, 700);
    let ids = wal_ids(&sim);
    let first = frames(&sim, &seg_path(ids[0]));
    let second = frames(&sim, &seg_path(ids[1]));
    let victim = first[10];
    let source = second[10];
    assert_eq!(victim.offset, source.offset);
    overwrite(
        &sim,
        ids[0],
        victim.offset,
        &frame_bytes_of(&sim, ids[1], &source),
    );
    MidDamage {
        sim,
        segment_bytes: SMALL_SEGMENT_BYTES,
        appended,
        bad_lsn: victim.lsn,
        hole_end: victim.lsn + 1,
        segment: ids[0],
        offset: victim.offset,
        reason_has: "checksum mismatch",
    }
}

/// A frame re-encoded with this segment's seed but a stale chain value (what an old write of
/// the same LSN with other content would leave): the chain catches it even with a valid CRC.
/// Built by writing a second log with identical identity is impossible from outside, so the
/// check uses a frame duplicated one slot later: frame 12's bytes over frame 13's.
fn duplicated_frame(seed: u64) -> MidDamage {
    let (sim, appended) = same_size_log(seed, 30);
    let (segment, f12) = find_frame(&sim, 12);
    let (_, f13) = find_frame(&sim, 13);
    overwrite(
        &sim,
        segment,
        f13.offset,
        &frame_bytes_of(&sim, segment, &f12),
    );
    MidDamage {
        sim,
        segment_bytes: SMALL_SEGMENT_BYTES,
        appended,
        bad_lsn: 13,
        hole_end: 14,
        segment,
        offset: f13.offset,
        reason_has: "frame holds LSN 12 where LSN 13 belongs",
    }
}

#[test]
fn row13_lost_write_mid_log_is_refused_naming_it() {
    assert_mid_damage_every_mode(|| lost_write(1));
}

#[test]
fn row13_misdirected_write_within_a_segment_is_refused() {
    assert_mid_damage_every_mode(|| misdirected_within_segment(2));
}

#[test]
fn row13_misdirected_write_from_another_segment_is_refused() {
    assert_mid_damage_every_mode(|| misdirected_across_segments(3));
}

#[test]
fn row13_duplicated_frame_is_refused() {
    assert_mid_damage_every_mode(|| duplicated_frame(4));
}

/// A lost write of a whole segment's first frames after its header: the segment header is
/// durable, its data is zeros, later segments prove it.
#[test]
fn row13_lost_write_at_the_start_of_an_earlier_segment_is_refused() {
    let (sim, _) = same_size_log(5, 700);
    let ids = wal_ids(&sim);
    let fs = frames(&sim, &seg_path(ids[1]));
    let end = fs[3].offset;
    sim.zero_range(&seg_path(ids[1]), 4096..end).unwrap();
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let err = open_mode(&sim, SMALL_SEGMENT_BYTES, mode).unwrap_err();
        assert_corruption_at(&err, &seg_path(ids[1]), 4096, fs[0].lsn);
    }
}
