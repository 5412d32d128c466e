//! Matrix row 16: arbitrary bytes as segment files. Whatever the directory holds (random
//! bytes, a valid log mutated at random, headers and frames re-encoded with valid checksums
//! but impossible fields), opening in every recovery mode, opening read-only, inspecting and
//! dumping never panic and never allocate by a length field: each returns `Ok` or a clean
//! error, and a log that opens can be read and appended to. (`fuzz/` runs the same idea
//! unbounded; this runs a few hundred cases in the normal suite.)
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};
use walden_log::format::{
    encode_batch_frame, encode_record_frame, free_file_name, segment_file_name, SegmentHeader,
    DATA_OFFSET,
};
use walden_log::storage::SimStorage;
use walden_log::{dump_records, inspect_dir, Durability, Lsn, RecoveryMode, Wal};

/// A valid three-segment log (records, a batch, buffered and durable appends), built once.
fn valid_log() -> &'static Vec<(String, Vec<u8>)> {
    static LOG: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    LOG.get_or_init(|| {
        let sim = SimStorage::new(16);
        let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
        append_n(&wal, "base", 100, Durability::Sync);
        wal.append_batch(&[b"b1".as_slice(), b"b2", &[3u8; 100]], Durability::Sync)
            .unwrap();
        while wal.segments().len() < 3 {
            append_n(&wal, "more", 50, Durability::Buffered);
        }
        wal.close().unwrap();
        sim.file_names(&dir())
            .into_iter()
            .map(|n| {
                let bytes = sim.read_file(&dir().join(&n)).unwrap();
                (n, bytes)
            })
            .collect()
    })
}

/// Interesting integers: edges, small values, anything.
fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(u64::from(u32::MAX)),
        0..400u64,
        any::<u64>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        mask: u8,
    },
    Write {
        at: usize,
        bytes: Vec<u8>,
    },
    Zero {
        at: usize,
        len: usize,
    },
    Truncate {
        len: usize,
    },
    Extend {
        bytes: Vec<u8>,
    },
    Copy {
        from: usize,
        to: usize,
        len: usize,
    },
    /// Re-encodes the header (copy 0, 1 or both) with these fields and a valid checksum.
    Header {
        copies: u8,
        segment_id: Option<u64>,
        first_lsn: u64,
        prev_chain: u32,
        salt: Option<u64>,
    },
    /// Writes a frame with a valid checksum for this segment but arbitrary fields.
    Frame {
        at: usize,
        lsn: u64,
        durable_lsn: u64,
        prev_crc: Option<u32>,
        batch: Option<Vec<Vec<u8>>>,
        record: Vec<u8>,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = 0..(3 * SMALL_SEGMENT_BYTES as usize);
    prop_oneof![
        (at.clone(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Mutation::Write { at, bytes }),
        (at.clone(), 1..2048usize).prop_map(|(at, len)| Mutation::Zero { at, len }),
        (0..(SMALL_SEGMENT_BYTES as usize + 100)).prop_map(|len| Mutation::Truncate { len }),
        prop::collection::vec(any::<u8>(), 1..600).prop_map(|bytes| Mutation::Extend { bytes }),
        (at.clone(), at.clone(), 1..1024usize).prop_map(|(from, to, len)| Mutation::Copy {
            from,
            to,
            len
        }),
        (
            0..3u8,
            prop::option::of(edgy_u64()),
            edgy_u64(),
            any::<u32>(),
            prop::option::of(any::<u64>())
        )
            .prop_map(|(copies, segment_id, first_lsn, prev_chain, salt)| {
                Mutation::Header {
                    copies,
                    segment_id,
                    first_lsn,
                    prev_chain,
                    salt,
                }
            }),
        (
            at,
            edgy_u64(),
            edgy_u64(),
            prop::option::of(any::<u32>()),
            prop::option::of(prop::collection::vec(
                prop::collection::vec(any::<u8>(), 0..20),
                1..5
            )),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(
                |(at, lsn, durable_lsn, prev_crc, batch, record)| Mutation::Frame {
                    at,
                    lsn,
                    durable_lsn,
                    prev_crc,
                    batch,
                    record
                }
            ),
    ]
}

fn apply(file: &mut Vec<u8>, m: &Mutation) {
    let len = file.len().max(1);
    match m {
        Mutation::Flip { at, mask } => {
            if let Some(b) = file.get_mut(at % len) {
                *b ^= mask;
            }
        }
        Mutation::Write { at, bytes } => overwrite(file, at % len, bytes),
        Mutation::Zero { at, len: n } => {
            let start = (at % len).min(file.len());
            let end = (start + n).min(file.len());
            file[start..end].fill(0);
        }
        Mutation::Truncate { len: n } => file.truncate(*n),
        Mutation::Extend { bytes } => file.extend_from_slice(bytes),
        Mutation::Copy { from, to, len: n } => {
            let from = (from % len).min(file.len());
            let end = (from + n).min(file.len());
            let chunk = file[from..end].to_vec();
            overwrite(file, to % len, &chunk);
        }
        Mutation::Header {
            copies,
            segment_id,
            first_lsn,
            prev_chain,
            salt,
        } => {
            let Some(old) = file
                .get(..DATA_OFFSET as usize)
                .and_then(|p| SegmentHeader::decode_page(p).ok())
            else {
                return;
            };
            let header = SegmentHeader {
                log_id: old.log_id,
                segment_id: segment_id.unwrap_or(old.segment_id),
                salt: salt.unwrap_or(old.salt),
                first_lsn: *first_lsn,
                prev_chain: *prev_chain,
            };
            let one = header.encode();
            if *copies != 1 {
                overwrite(file, 0, &one);
            }
            if *copies != 0 {
                overwrite(file, 512, &one);
            }
        }
        Mutation::Frame {
            at,
            lsn,
            durable_lsn,
            prev_crc,
            batch,
            record,
        } => {
            let Some(h) = file
                .get(..DATA_OFFSET as usize)
                .and_then(|p| SegmentHeader::decode_page(p).ok())
            else {
                return;
            };
            let mut frame = Vec::new();
            let prev = prev_crc.unwrap_or(0);
            match batch {
                Some(records) => encode_batch_frame(
                    &mut frame,
                    h.frame_seed(),
                    *lsn,
                    *durable_lsn,
                    prev,
                    records,
                ),
                None => encode_record_frame(
                    &mut frame,
                    h.frame_seed(),
                    *lsn,
                    *durable_lsn,
                    prev,
                    record,
                ),
            };
            // Frame-aligned, at or after the data offset.
            let at = (DATA_OFFSET as usize + (at % len)) & !7;
            overwrite(file, at, &frame);
        }
    }
}

fn overwrite(file: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let end = at + bytes.len();
    if file.len() < end {
        file.resize(end, 0);
    }
    file[at..end].copy_from_slice(bytes);
}

/// Opens, inspects and dumps the directory every way there is; nothing may panic. Every
/// open works on its own copy (a tolerant open writes).
fn exercise(files: &[(String, Vec<u8>)]) {
    let load = || {
        let sim = SimStorage::new(1);
        for (name, bytes) in files {
            sim.write_file(&dir().join(name), bytes).unwrap();
        }
        sim
    };
    let sim = load();
    let _ = inspect_dir(&sim, &dir());
    for mode in ALL_MODES {
        let storage = Arc::new(sim.clone());
        if let Ok(wal) = Wal::open_read_only(dir(), mode, storage.clone()) {
            drain(&wal);
        }
        if let Ok(dump) = dump_records(storage, &dir(), mode, Lsn(1)) {
            for r in dump.take(100_000) {
                let _ = r;
            }
        }
    }
    for mode in ALL_MODES {
        let sim = load();
        let Ok(wal) = open_mode(&sim, SMALL_SEGMENT_BYTES, mode) else {
            continue;
        };
        drain(&wal);
        let appended = wal.append(b"after arbitrary bytes");
        drop(wal);
        // A log that opened and accepted an append opens again, holding that record.
        if let Ok(lsn) = appended {
            let wal = open_mode(&sim, SMALL_SEGMENT_BYTES, mode)
                .unwrap_or_else(|e| panic!("{mode:?}: opened once, refused after an append: {e}"));
            let last = wal
                .read_from(lsn)
                .ok()
                .and_then(|mut r| r.next())
                .map(|r| r.map(|r| r.data));
            if mode != RecoveryMode::SkipCorrupt {
                assert_eq!(last.unwrap().unwrap(), b"after arbitrary bytes", "{mode:?}");
            }
        }
    }
}

fn drain(wal: &Wal) {
    if let Ok(reader) = wal.read_from(wal.first_lsn()) {
        for r in reader.take(100_000) {
            if r.is_err() {
                break;
            }
        }
    }
    let _ = wal.segments();
    let _ = wal.stats();
}

/// 256 cases in the normal suite; `WALDEN_PROPTEST_CASES=<n>` runs more (a soak) or fewer.
fn config() -> ProptestConfig {
    let cases = std::env::var("WALDEN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Random bytes as the only segment file, or after a valid first segment.
    #[test]
    fn row16_random_bytes_as_a_segment_file(
        bytes in prop::collection::vec(any::<u8>(), 0..9000),
        with_header in any::<bool>(),
        after_valid in any::<bool>(),
        id in prop_oneof![Just(1u64), Just(2), Just(u64::MAX), any::<u64>()],
    ) {
        let mut bytes = bytes;
        if with_header && bytes.len() > 600 {
            // A valid header in front of garbage: identity passes, frames must not.
            let h = SegmentHeader { log_id: 9, segment_id: id, salt: 1, first_lsn: 1, prev_chain: 0 };
            overwrite(&mut bytes, 0, &h.encode());
        }
        let mut files = Vec::new();
        if after_valid {
            files.push(valid_log()[0].clone());
        }
        files.push((segment_file_name(id), bytes));
        exercise(&files);
    }

    /// A valid log with a handful of random mutations to its files.
    #[test]
    fn row16_mutated_valid_log(
        mutations in prop::collection::vec((0..3usize, mutation()), 1..6),
    ) {
        let mut files = valid_log().clone();
        let segments: Vec<usize> = (0..files.len()).filter(|&i| files[i].0.ends_with(".wal")).collect();
        for (which, m) in &mutations {
            let i = segments[which % segments.len()];
            apply(&mut files[i].1, m);
        }
        exercise(&files);
    }

    /// Valid segment files under arbitrary names, plus arbitrary `.free` files.
    #[test]
    fn row16_valid_segments_under_arbitrary_names(
        names in prop::collection::vec(prop_oneof![Just(u64::MAX), 0..8u64, any::<u64>()], 1..4),
        free in prop::collection::vec((prop_oneof![Just(u64::MAX), 0..8u64], prop::collection::vec(any::<u8>(), 0..5000)), 0..3),
    ) {
        let base = valid_log();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, id) in names.iter().enumerate() {
            files.push((segment_file_name(*id), base[i % base.len()].1.clone()));
        }
        for (id, bytes) in free {
            files.push((free_file_name(id), bytes));
        }
        files.dedup_by(|a, b| a.0 == b.0);
        exercise(&files);
    }
}

/// The base log is what the cases mutate: check it is valid, so mutations start from a log
/// that opens cleanly in every mode.
#[test]
fn row16_base_log_is_valid() {
    let files = valid_log();
    assert!(files.iter().filter(|f| f.0.ends_with(".wal")).count() >= 3);
    for mode in ALL_MODES {
        let sim = SimStorage::new(2);
        for (name, bytes) in files {
            sim.write_file(&dir().join(name), bytes).unwrap();
        }
        let wal = open_mode(&sim, SMALL_SEGMENT_BYTES, mode).unwrap();
        assert_eq!(wal.recovery_report().damage, None, "{mode:?}");
        assert!(read_all(&wal).len() > 200);
    }
}
