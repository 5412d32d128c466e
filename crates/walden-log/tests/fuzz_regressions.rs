//! Reproducers found by the fuzz targets in fuzz/ (see fuzz/README.md), kept as regression
//! tests. Each builds the exact directory the fuzzer found on a `SimStorage` and checks the
//! library returns instead of panicking (overflow checks are on in test builds).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use walden_log::format::{frame_crc, SegmentHeader, FRAME_HEADER_BYTES};
use walden_log::storage::SimStorage;
use walden_log::{Error, Lsn, Options, RecoveryMode, Wal};

const DIR: &str = "/fuzz/wal";
const SEGMENT_BYTES: u64 = 16 << 10;

fn options(mode: RecoveryMode) -> Options {
    Options::new(DIR)
        .segment_bytes(SEGMENT_BYTES)
        .prepare_in_background(false)
        .recovery(mode)
}

fn storage_with(files: &[(&str, Vec<u8>)]) -> Arc<SimStorage> {
    let sim = SimStorage::new(1);
    for (name, bytes) in files {
        sim.write_file(&Path::new(DIR).join(name), bytes).unwrap();
    }
    Arc::new(sim)
}

/// fuzz/segment_file, minimized input `00 0b 00 0b`: one empty file named
/// `fffffffffffffffe.wal`. Opening took the next segment id as `max_id + 1`; the id after
/// `u64::MAX - 1` is handed out, and the one after that overflowed in `Preparer::prepare_one`
/// (`st.next_id += 1`). A file named `ffffffffffffffff.wal` (or `.free`) overflowed already in
/// `Preparer::new` (`config.max_id + 1`). In a release build both wrapped to id 0, whose file
/// name sorts before every live segment.
#[test]
fn segment_file_named_with_the_top_ids_does_not_overflow() {
    // u64::MAX - 1 in use: the new segment gets u64::MAX, and the rotation after it fails.
    let sim = storage_with(&[("fffffffffffffffe.wal", Vec::new())]);
    let wal = Wal::open_with(
        options(RecoveryMode::TolerateTornTail),
        sim.clone(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(wal.segments().last().unwrap().id, u64::MAX);
    let record = vec![7u8; 5000];
    let mut outcome = Ok(Lsn(0));
    for _ in 0..4 {
        outcome = wal.append(&record);
        if outcome.is_err() {
            break;
        }
    }
    assert!(
        matches!(outcome, Err(Error::Io { .. })),
        "rotation past the last id: {outcome:?}"
    );
    drop(wal);

    // u64::MAX in use (a segment or a released file): no id is left for a new segment.
    for name in ["ffffffffffffffff.wal", "ffffffffffffffff.free"] {
        let sim = storage_with(&[(name, Vec::new())]);
        let opened = Wal::open_with(options(RecoveryMode::TolerateTornTail), sim, &mut |_| {});
        assert!(
            matches!(opened, Err(Error::Io { .. })),
            "{name}: {opened:?}"
        );
    }
}

/// fuzz/segment_file: an empty log (header only, first LSN 1), plus one batch frame with a
/// valid CRC at the end of the file whose LSN is `u64::MAX` (durable_lsn `u64::MAX - 214`,
/// prev_crc 1, payload `cd 69`). `SkipCorrupt` skips to it, so recovery's next LSN became
/// `u64::MAX`, and the first append overflowed `next_lsn += count` in `Inner::reserve`. The
/// same holds for any header whose `first_lsn` is `u64::MAX`. Appends are now refused.
#[test]
fn append_at_the_end_of_the_lsn_space_is_refused() {
    let header = SegmentHeader {
        log_id: 1,
        segment_id: 1,
        salt: 1,
        first_lsn: 1,
        prev_chain: 0,
    };
    let mut file = header.encode_page();
    file.resize(SEGMENT_BYTES as usize, 0);
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&2u32.to_le_bytes());
    frame.extend_from_slice(&u64::MAX.to_le_bytes());
    frame.extend_from_slice(&(u64::MAX - 214).to_le_bytes());
    frame.extend_from_slice(&1u32.to_le_bytes());
    frame.extend_from_slice(&2u16.to_le_bytes());
    frame.extend_from_slice(&[0; 2]);
    frame.extend_from_slice(&[0xcd, 0x69]);
    assert_eq!(frame.len(), FRAME_HEADER_BYTES + 2);
    let crc = frame_crc(header.frame_seed(), &frame);
    frame[..4].copy_from_slice(&crc.to_le_bytes());
    frame.resize(40, 0);
    file.extend_from_slice(&frame);

    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupt,
    ] {
        let sim = storage_with(&[("0000000000000001.wal", file.clone())]);
        let Ok(wal) = Wal::open_with(options(mode), sim, &mut |_| {}) else {
            continue;
        };
        match wal.append(b"after recovery") {
            Ok(lsn) => {
                let back = wal.read_from(lsn).unwrap().next().unwrap().unwrap();
                assert_eq!(back.data, b"after recovery", "{mode:?}");
            }
            Err(e) => assert!(matches!(e, Error::InvalidArgument(_)), "{mode:?}: {e}"),
        }
    }

    // A header that starts the log at the last LSN directly.
    let header = SegmentHeader {
        first_lsn: u64::MAX,
        ..header
    };
    let mut file = header.encode_page();
    file.resize(SEGMENT_BYTES as usize, 0);
    let sim = storage_with(&[("0000000000000001.wal", file)]);
    let wal = Wal::open_with(options(RecoveryMode::TolerateTornTail), sim, &mut |_| {}).unwrap();
    assert_eq!(wal.next_lsn(), Lsn(u64::MAX));
    assert!(matches!(wal.append(b"x"), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        wal.append_batch(&[b"a".as_slice(), b"b"], walden_log::Durability::Sync),
        Err(Error::InvalidArgument(_))
    ));
}

/// fuzz/segment_file: a segment whose header (valid CRC, in either copy) says `first_lsn` 0.
/// Recovery took it, its next LSN became 0, and `scan.next_lsn - 1` overflowed in
/// `Wal::open_with` and `Wal::open_read_only` (so in `inspect`/`dump` too). Such a header is
/// now invalid, like a frame with LSN 0.
#[test]
fn header_with_first_lsn_zero_is_invalid() {
    let header = SegmentHeader {
        log_id: 0,
        segment_id: 1,
        salt: 0,
        first_lsn: 0,
        prev_chain: 0,
    };
    assert!(SegmentHeader::decode_page(&header.encode_page()).is_err());
    let mut file = header.encode_page();
    file.truncate(576);
    for mode in [
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::TolerateTornTail,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupt,
    ] {
        let sim = storage_with(&[("0000000000000001.wal", file.clone())]);
        let _ = walden_log::inspect_dir(&*sim, Path::new(DIR));
        let _ = Wal::open_read_only(DIR, mode, sim.clone());
        if let Ok(wal) = Wal::open_with(options(mode), sim, &mut |_| {}) {
            assert!(wal.next_lsn().0 >= 1);
            let lsn = wal.append(b"x").unwrap();
            assert_eq!(
                wal.read_from(lsn).unwrap().next().unwrap().unwrap().data,
                b"x"
            );
        }
    }
}

/// fuzz/segment_file, minimized input (59 bytes, hex)
/// `ffffffffff27561ff65a77c37f7f000000000000007f7f7f7fe75f419b000000000007151c7f7f7f7f7f7f7f537be75f417f7f7f7f76bbac7be741`:
/// segment 1 holds a valid batch frame for LSNs 1..=3 at offset 4096 whose chain value is
/// wrong (a misdirected write of this segment's own frame), then the real frame of LSN 2.
/// `SkipCorrupt` skips LSN 1 and resumes at LSN 2, so the next append gets LSN 3; but
/// `read_from(3)` walks the segment from its start, takes the rejected batch (its CRC
/// verifies; the reader does not check the chain) and returns that batch's third record as
/// LSN 3 instead of the appended one. Fixed: the reader follows the chain as recovery did.
#[test]
fn skip_corrupt_reader_does_not_return_rejected_frames() {
    use walden_log::format::{encode_batch_frame, encode_record_frame};
    let header = SegmentHeader {
        log_id: 1,
        segment_id: 1,
        salt: 1,
        first_lsn: 1,
        prev_chain: 0,
    };
    let seed = header.frame_seed();
    let mut frames = Vec::new();
    let crc1 = encode_record_frame(&mut frames, seed, 1, 0, 0, &[246u8; 2022]);
    encode_record_frame(&mut frames, seed, 2, 0, crc1, b"");
    let mut rejected = Vec::new();
    encode_batch_frame(
        &mut rejected,
        seed,
        1,
        u64::MAX,
        u32::MAX,
        &[b"".as_slice(), b"", b"A"],
    );
    frames[..rejected.len()].copy_from_slice(&rejected);
    let mut file = header.encode_page();
    file.extend_from_slice(&frames);
    file.resize(SEGMENT_BYTES as usize, 0);

    let sim = storage_with(&[("0000000000000001.wal", file)]);
    let wal = Wal::open_with(options(RecoveryMode::SkipCorrupt), sim, &mut |_| {}).unwrap();
    assert_eq!(wal.recovery_report().skipped, vec![(Lsn(1), Lsn(2))]);
    let lsn = wal.append(b"appended after recovery").unwrap();
    assert_eq!(lsn, Lsn(3));
    let back = wal.read_from(lsn).unwrap().next().unwrap().unwrap();
    assert_eq!(
        (back.lsn, back.data.as_slice()),
        (lsn, b"appended after recovery".as_slice())
    );
}
