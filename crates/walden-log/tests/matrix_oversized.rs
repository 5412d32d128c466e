//! Matrix row 15: oversized records and length fields. A record or batch above the limit is
//! rejected before anything is written (`Error::TooLarge`, no storage call, the LSN not
//! consumed). On disk, a frame header claiming a huge length is damage; it is never trusted
//! for an allocation (checked on the size of every read buffer).
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use walden_log::format::FRAME_PAYLOAD_BYTES_MAX;
use walden_log::storage::{SimStorage, StorageFile};
use walden_log::{dump_records, inspect_dir, Durability, Error, Lsn, RecoveryMode, Wal};
use walden_testkit::forwarding::{FileHooks, Forwarding};

/// File hooks that record the largest buffer any read was given: the engine reads into
/// buffers it sized itself, so a length field trusted for an allocation would show up here.
/// (A counting global allocator would need `unsafe`, which the workspace forbids.)
#[derive(Debug, Default)]
struct LargestRead(AtomicUsize);

impl FileHooks for LargestRead {
    fn read_at(&self, file: &dyn StorageFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.fetch_max(buf.len(), Ordering::Relaxed);
        file.read_at(buf, offset)
    }
}

/// A [`SimStorage`] whose reads are recorded by [`LargestRead`].
type Recording = Forwarding<SimStorage, LargestRead>;

fn recording(sim: &SimStorage) -> Recording {
    Forwarding::new(sim.clone(), LargestRead::default())
}

fn largest_read(storage: &Recording) -> usize {
    storage.hooks().0.load(Ordering::Relaxed)
}

/// Far above any buffer the engine needs (1 MiB read chunks), far below the lengths claimed.
const READ_BUFFER_LIMIT: usize = 2 << 20;

#[test]
fn row15_oversized_record_is_rejected_before_writing() {
    let sim = SimStorage::new(1);
    let wal = open(
        &sim,
        sim_options(SMALL_SEGMENT_BYTES).record_bytes_max(1000),
    )
    .unwrap();
    wal.append(b"first").unwrap();
    let ops = sim.op_count();
    let files = sim.file_names(&dir());
    let image = sim.read_file(&seg_path(wal_ids(&sim)[0])).unwrap();
    for durability in [Durability::Sync, Durability::Buffered] {
        match wal.append_with(&[7u8; 1001], durability) {
            Err(Error::TooLarge { what, bytes, limit }) => {
                assert_eq!((what, bytes, limit), ("record", 1001, 1000))
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // A batch whose payload (4-byte count, 4-byte length per record) passes the limit.
        let records = [vec![1u8; 500], vec![2u8; 489]];
        match wal.append_batch(&records, durability) {
            Err(Error::TooLarge { what, bytes, limit }) => {
                assert_eq!((what, bytes, limit), ("batch", 4 + 8 + 989, 1000))
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
    assert_eq!(sim.op_count(), ops, "no storage call was made");
    assert_eq!(sim.file_names(&dir()), files);
    assert_eq!(
        sim.read_file(&seg_path(wal_ids(&sim)[0])).unwrap(),
        image,
        "nothing was written"
    );
    assert_eq!(wal.next_lsn(), Lsn(2), "no LSN consumed");
    assert_eq!(wal.stats().records_appended, 1);
    // Exactly at the limit is fine, and gets the next LSN.
    assert_eq!(wal.append(&[7u8; 1000]).unwrap(), Lsn(2));
    assert_eq!(
        wal.append_batch(&[vec![1u8; 500], vec![2u8; 488]], Durability::Sync)
            .unwrap(),
        Lsn(3)
    );
    drop(wal);
    let wal = open(
        &sim,
        sim_options(SMALL_SEGMENT_BYTES).record_bytes_max(1000),
    )
    .unwrap();
    let lens: Vec<usize> = read_all(&wal).iter().map(|r| r.1.len()).collect();
    assert_eq!(lens, vec![5, 1000, 500, 488]);
}

#[test]
fn row15_record_larger_than_a_segment_is_rejected() {
    let sim = SimStorage::new(2);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let room = SMALL_SEGMENT_BYTES - 4096 - 32;
    let ops = sim.op_count();
    match wal.append(&vec![0u8; room as usize + 1]) {
        Err(Error::TooLarge {
            what: "record",
            bytes,
            limit,
        }) => assert_eq!((bytes, limit), (room + 1, room)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(sim.op_count(), ops);
    assert_eq!(
        wal.append(&vec![0u8; room as usize]).unwrap(),
        Lsn(1),
        "a record filling a whole segment fits"
    );
    assert_eq!(wal.append(b"next").unwrap(), Lsn(2));
}

/// A log whose frame of LSN 6 claims `len` payload bytes (nothing else changed), followed by
/// durable frames that prove it.
fn log_with_length_field(seed: u64, len: u32) -> (SimStorage, u64, u64) {
    let sim = SimStorage::new(seed);
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    append_n(&wal, "len", 12, Durability::Sync);
    wal.close().unwrap();
    let (segment, f) = find_frame(&sim, 6);
    let path = seg_path(segment);
    let mut bytes = sim.read_file(&path).unwrap();
    bytes[f.offset as usize + 4..f.offset as usize + 8].copy_from_slice(&len.to_le_bytes());
    sim.write_file(&path, &bytes).unwrap();
    (sim, segment, f.offset)
}

#[test]
fn row15_huge_length_field_on_disk_is_damage_never_an_allocation() {
    for (seed, len) in [
        (3, FRAME_PAYLOAD_BYTES_MAX),
        (4, FRAME_PAYLOAD_BYTES_MAX + 1),
        (5, u32::MAX),
        (6, 1 << 30),
    ] {
        let (sim, segment, offset) = log_with_length_field(seed, len);
        for mode in ALL_MODES {
            // Each mode on its own copy: opening in a tolerant mode writes.
            let copy = SimStorage::new(seed);
            for name in sim.file_names(&dir()) {
                copy.write_file(
                    &dir().join(&name),
                    &sim.read_file(&dir().join(&name)).unwrap(),
                )
                .unwrap();
            }
            let storage = recording(&copy);
            let options = sim_options(SMALL_SEGMENT_BYTES).recovery(mode);
            match Wal::open_with(options, storage.shared(), &mut |_| {}) {
                Err(e) => {
                    assert!(
                        matches!(
                            mode,
                            RecoveryMode::TolerateTornTail | RecoveryMode::AbsoluteConsistency
                        ),
                        "{mode:?} should open: {e}"
                    );
                    let reason = assert_corruption_at(&e, &seg_path(segment), offset, 6);
                    let what = if len > FRAME_PAYLOAD_BYTES_MAX {
                        "not a valid frame header"
                    } else {
                        "runs past the end"
                    };
                    assert!(reason.contains(what), "len {len:#x}: {reason}");
                }
                Ok(wal) => {
                    assert!(matches!(
                        mode,
                        RecoveryMode::PointInTime | RecoveryMode::SkipCorrupt
                    ));
                    let got = read_all(&wal);
                    assert!(got.iter().all(|r| r.0 != 6));
                    assert_eq!(
                        got.len(),
                        if mode == RecoveryMode::PointInTime {
                            5
                        } else {
                            11
                        }
                    );
                }
            }
            let largest = largest_read(&storage);
            assert!(
                largest <= READ_BUFFER_LIMIT,
                "len {len:#x} {mode:?}: a read buffer of {largest} bytes"
            );
        }
    }
}

#[test]
fn row15_huge_length_field_read_only_tools_never_allocate_it() {
    let (sim, _, _) = log_with_length_field(7, FRAME_PAYLOAD_BYTES_MAX - 7);
    let storage = recording(&sim);
    let inspection = inspect_dir(&storage, &dir()).unwrap();
    assert!(inspection.damage.is_some());
    for mode in ALL_MODES {
        if let Ok(dump) = dump_records(storage.shared(), &dir(), mode, Lsn(1)) {
            let n = dump.map(|r| r.unwrap()).filter(|r| r.lsn != Lsn(6)).count();
            assert!(n >= 5, "{mode:?}");
        }
        let _ = Wal::open_read_only(dir(), mode, storage.shared());
    }
    let largest = largest_read(&storage);
    assert!(
        largest <= READ_BUFFER_LIMIT,
        "a read buffer of {largest} bytes"
    );
}
