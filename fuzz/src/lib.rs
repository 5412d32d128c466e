//! Shared code of the walden-log fuzz targets (`fuzz_targets/*.rs`) and of the seed corpus
//! generator (`src/bin/make_corpus.rs`).
//!
//! # How `segment_file` reads its input
//!
//! The first byte picks the shape of the rest:
//! - **bit 7 clear: raw files.** The rest is a list of up to [`MAX_FILES`] files, each
//!   `[name: u8][len: u16 LE][len bytes]` (the last file may be short). [`raw_name`] maps the
//!   name byte to a segment (`{id:016x}.wal`), a released segment (`.free`), or a stray file.
//!   The seed corpus holds logs written by the library in this shape ([`encode_raw`]).
//! - **bit 7 set: a built log, then damage.** The rest is read with `arbitrary` as a
//!   [`Built`]: a few appends, batches, syncs and truncations through `Wal::open_with` on a
//!   `SimStorage`, an optional simulated crash, then a list of [`Mutation`]s (bit flips,
//!   overwrites, truncations, appended garbage, headers and frames re-encoded with valid
//!   checksums but odd fields, extra/copied/renamed/removed files).
//!
//! Bits 0..=5 of the first byte give one extra LSN to start a dump from, and pick the modes.
//!
//! The resulting directory then goes through `inspect_dir`, `dump_records` (iterated to the
//! end) and `Wal::open_with` (on a fresh copy) followed by reading every record, one append
//! and reading that back, and `Wal::open_read_only`. The first byte's bits pick the recovery
//! modes (see [`check_case`]; `WALDEN_FUZZ_ALL_MODES=1` opens in all four). A built log that
//! was not damaged must also read back exactly what was appended ([`Oracle`]).

#![deny(unsafe_code)]

use arbitrary::{Arbitrary, Unstructured};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use walden_log::format::{
    decode_frame_header, encode_batch_frame, frame_crc, parse_frame_payload, FrameKind,
    FramePayload, SegmentHeader, DATA_OFFSET, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX,
    HEADER_BYTES, HEADER_COPY_OFFSET,
};
use walden_log::storage::{CrashDamage, SimStorage, Storage};
use walden_log::{dump_records, inspect_dir, Durability, Lsn, Options, RecoveryMode, Wal};

/// A global allocator for the fuzz targets that aborts on any single allocation above
/// [`ALLOC_BYTES_MAX`]. libFuzzer's `-malloc_limit_mb` needs a sanitizer's malloc hooks,
/// which `--sanitizer none` (the only choice on stable Rust) does not have; this does the
/// same job. An abort is a crash to libFuzzer: it saves the input. (`-rss_limit_mb` works
/// without a sanitizer and still bounds the total.)
pub struct CappedAlloc;

/// Largest single allocation the targets allow. Inputs stay under 1 MiB per file, so the
/// library has no reason to ask for more than a few MiB at once.
pub const ALLOC_BYTES_MAX: usize = 64 << 20;

fn check_alloc(bytes: usize) {
    if bytes > ALLOC_BYTES_MAX {
        use std::io::Write as _;
        // No formatting: allocating here would recurse.
        let _ =
            std::io::stderr().write_all(b"==walden-fuzz== single allocation above 64 MiB: abort\n");
        std::process::abort();
    }
}

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` unchanged, after a size check that only aborts.
unsafe impl std::alloc::GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        check_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        check_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        check_alloc(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

/// The log directory inside every `SimStorage`.
pub const DIR: &str = "/fuzz/wal";
/// Segment size used to build logs and to reopen them (the smallest the library accepts,
/// so a few KiB of records already rotate).
pub const SEGMENT_BYTES: u64 = 16 << 10;
/// Most files a raw input describes.
pub const MAX_FILES: usize = 12;
/// Harness cap on one file's size after mutations (keeps memory far below libFuzzer's limits;
/// the library itself must stay bounded whatever the content).
pub const FILE_BYTES_CAP: usize = 1 << 20;
/// Every recovery mode.
pub const MODES: [RecoveryMode; 4] = [
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::TolerateTornTail,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipCorrupt,
];

/// A directory's files: (name, content), sorted by name.
pub type Files = Vec<(String, Vec<u8>)>;

// ---------------------------------------------------------------------------------------------
// Target 1: decode
// ---------------------------------------------------------------------------------------------

/// Runs every public decoder over `data`: the header page, a header copy and a frame header at
/// every 8-aligned offset, and both payload kinds on every suffix and on every declared payload.
pub fn decode_all(data: &[u8]) {
    if let Ok(h) = SegmentHeader::decode_page(data) {
        assert_eq!(
            SegmentHeader::decode_page(&h.encode_page()),
            Ok(h),
            "header page round trip"
        );
    }
    let seed = data
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        if let Some(copy) = rest
            .get(..HEADER_BYTES)
            .and_then(|b| <&[u8; HEADER_BYTES]>::try_from(b).ok())
        {
            if let Ok(h) = SegmentHeader::decode(copy) {
                assert_eq!(
                    SegmentHeader::decode(&h.encode()),
                    Ok(h),
                    "header copy round trip"
                );
            }
        }
        if let Some(fh) = decode_frame_header(rest) {
            assert!(
                fh.len <= FRAME_PAYLOAD_BYTES_MAX && fh.lsn != 0,
                "decoder let through {fh:?}"
            );
            let end = (FRAME_HEADER_BYTES + fh.len as usize).min(rest.len());
            check_payload(fh.kind, &rest[FRAME_HEADER_BYTES.min(end)..end]);
            if end == FRAME_HEADER_BYTES + fh.len as usize {
                // A frame that fits: its CRC is computable, and a frame re-encoded from the
                // decoded fields verifies with the CRC the encoder returns.
                let _ = frame_crc(seed, &rest[..end]);
                if let (FrameKind::Batch, Some(FramePayload::Batch(records))) = (
                    fh.kind,
                    parse_frame_payload(fh.kind, &rest[FRAME_HEADER_BYTES..end]),
                ) {
                    let mut out = Vec::new();
                    let crc = encode_batch_frame(
                        &mut out,
                        seed,
                        fh.lsn,
                        fh.durable_lsn,
                        fh.prev_crc,
                        &records,
                    );
                    let again = decode_frame_header(&out).expect("encoded batch frame decodes");
                    assert_eq!((again.len, again.crc), (fh.len, crc), "batch re-encoding");
                    assert_eq!(
                        &out[FRAME_HEADER_BYTES..end],
                        &rest[FRAME_HEADER_BYTES..end]
                    );
                }
            }
        }
        check_payload(FrameKind::Record, rest);
        check_payload(FrameKind::Batch, rest);
        at += 8;
    }
}

fn check_payload(kind: FrameKind, payload: &[u8]) {
    match (kind, parse_frame_payload(kind, payload)) {
        (FrameKind::Record, Some(FramePayload::Record(r))) => assert_eq!(r, payload),
        (FrameKind::Batch, Some(FramePayload::Batch(records))) => {
            let count = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
            assert_eq!(records.len() as u64, u64::from(count), "batch count");
            let total: u64 = 4 + records.iter().map(|r| 4 + r.len() as u64).sum::<u64>();
            assert_eq!(
                total,
                payload.len() as u64,
                "batch lengths add up to the payload"
            );
        }
        (FrameKind::Batch, None) => {}
        (k, p) => panic!("parse_frame_payload({k:?}) gave {p:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Target 2: segment_file — input decoding
// ---------------------------------------------------------------------------------------------

/// The name byte of a raw file: segment ids 0..=63 (`.wal`), released ids 0..=63 (`.free`),
/// and a few odd names (ids at the top of the range, near-miss names, a stray file).
pub fn raw_name(b: u8) -> String {
    let id = u64::from(b >> 2);
    match b & 3 {
        0 | 1 => format!("{id:016x}.wal"),
        2 => format!("{id:016x}.free"),
        _ => match id {
            0 => format!("{:016x}.wal", u64::MAX),
            1 => format!("{:016x}.free", u64::MAX),
            2 => format!("{:016x}.wal", u64::MAX - 1),
            3 => "not-a-segment.txt".into(),
            4 => "0000000000000001.wal.tmp".into(),
            5 => "000000000000001.wal".into(),
            6 => "000000000000000G.wal".into(),
            7 => "000000000000000A.wal".into(),
            n => format!("{:016x}.wal", 1u64 << (n % 64)),
        },
    }
}

/// The name byte [`raw_name`] maps to a segment file of id `id` (0..=63).
pub fn raw_segment_byte(id: u8) -> u8 {
    (id & 63) << 2
}

/// Decodes the raw-files shape (see the crate doc).
pub fn decode_raw(mut data: &[u8]) -> Files {
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    while files.len() < MAX_FILES {
        let [name, l0, l1, rest @ ..] = data else {
            break;
        };
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(rest.len());
        files.insert(raw_name(*name), rest[..len].to_vec());
        data = &rest[len..];
    }
    sorted(files)
}

/// Encodes files in the raw shape (tag byte `tag & 0x7f` first); files over 64 KiB are cut.
pub fn encode_raw(tag: u8, files: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![tag & 0x7f];
    for (name, bytes) in files {
        let len = bytes.len().min(usize::from(u16::MAX));
        out.push(*name);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&bytes[..len]);
    }
    out
}

fn sorted(files: HashMap<String, Vec<u8>>) -> Files {
    let mut v: Files = files.into_iter().collect();
    v.sort();
    v
}

/// A value for a header or frame field: kept, or replaced by an interesting one.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Val {
    /// The original value.
    Keep,
    /// 0.
    Zero,
    /// 1.
    One,
    /// `u64::MAX` (or `u32::MAX` for 32-bit fields).
    Max,
    /// A small number.
    Small(u8),
    /// `MAX - n`.
    NearMax(u8),
    /// The original value plus a small signed delta (wrapping).
    Delta(i8),
    /// Anything.
    Raw(u64),
}

impl Val {
    fn u64(self, orig: u64) -> u64 {
        match self {
            Val::Keep => orig,
            Val::Zero => 0,
            Val::One => 1,
            Val::Max => u64::MAX,
            Val::Small(n) => u64::from(n),
            Val::NearMax(n) => u64::MAX - u64::from(n),
            Val::Delta(d) => orig.wrapping_add_signed(i64::from(d)),
            Val::Raw(v) => v,
        }
    }
    fn u32(self, orig: u32) -> u32 {
        match self {
            Val::Max => u32::MAX,
            Val::NearMax(n) => u32::MAX - u32::from(n),
            v => v.u64(u64::from(orig)) as u32,
        }
    }
}

/// One operation on the log while it is built.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// One record of `len % 6000` bytes of `fill`.
    Append { len: u16, fill: u8, sync: bool },
    /// An atomic batch of records of the given sizes.
    Batch { lens: Vec<u8>, fill: u8, sync: bool },
    /// `Wal::sync`.
    Sync,
    /// `truncate_after(next_lsn - 1 - back)`.
    TruncateAfter { back: u8 },
    /// `truncate_before(next_lsn - back)`.
    TruncateBefore { back: u8 },
}

/// How building the log ends.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum End {
    /// `Wal::close`.
    Close,
    /// A simulated power loss (`SimStorage::crash`), variant `n % 6`, then the handle dropped.
    Crash(u8),
}

/// Which file a mutation targets: an index into the sorted file list (modulo its length).
pub type FileSel = u8;

/// Which frame kind an injected frame claims.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum KindSel {
    /// 1.
    Record,
    /// 2.
    Batch,
    /// Any code (0 and >= 3 are invalid).
    Code(u16),
}

/// The payload of an injected frame.
#[derive(Arbitrary, Debug)]
pub enum PayloadSel {
    /// A well-formed batch of these records (or, for a record frame, their concatenation).
    Records(Vec<Vec<u8>>),
    /// Exactly these bytes (a batch payload that may not parse).
    Raw(Vec<u8>),
}

/// One change to the directory after the log was built.
#[derive(Arbitrary, Debug)]
pub enum Mutation {
    /// XOR one byte.
    Flip { file: FileSel, at: u16, mask: u8 },
    /// Overwrite bytes (extending the file if they run past its end).
    Overwrite {
        file: FileSel,
        at: u16,
        bytes: Vec<u8>,
    },
    /// Zero a range.
    Zero { file: FileSel, at: u16, len: u16 },
    /// Cut the file at `at % (len + 1)`.
    Truncate { file: FileSel, at: u16 },
    /// Grow the file with zeros.
    Extend { file: FileSel, len: u16 },
    /// Append bytes.
    Append { file: FileSel, bytes: Vec<u8> },
    /// Re-encode a header copy (valid CRC) with some fields changed; optionally a wrong
    /// format version or nonzero reserved bytes (CRC recomputed).
    SetHeader {
        file: FileSel,
        /// 0: both copies, 1: the first, 2: the second.
        copies: u8,
        log_id: Val,
        segment_id: Val,
        salt: Val,
        first_lsn: Val,
        prev_chain: Val,
        version: Option<u32>,
        reserved: Option<u32>,
    },
    /// Write a frame with a valid CRC (by default for its own segment's seed and chain) at
    /// aligned offset `4096 + 8 * at` (at most the file's aligned end).
    InjectFrame {
        file: FileSel,
        at: u16,
        lsn: Val,
        durable_lsn: Val,
        prev_crc: Val,
        kind: KindSel,
        payload: PayloadSel,
        /// Seed from another file's header (index), instead of the file's own.
        other_seed: Option<FileSel>,
    },
    /// A new file with this content.
    AddFile { name: u8, bytes: Vec<u8> },
    /// A copy of a file under another name.
    CopyFile { file: FileSel, name: u8 },
    /// Rename a file.
    Rename { file: FileSel, name: u8 },
    /// Remove a file.
    Remove { file: FileSel },
}

/// The built-log shape (see the crate doc).
#[derive(Arbitrary, Debug)]
pub struct Built {
    /// Operations, at most 24 are applied (and appends stop after about 48 KiB).
    pub ops: Vec<Op>,
    /// How building ends.
    pub end: End,
    /// Damage, at most 24 are applied.
    pub mutations: Vec<Mutation>,
}

/// What a built log must read back as.
#[derive(Debug, Clone)]
pub struct Oracle {
    /// Record `i` has LSN `i + 1`.
    pub records: Vec<Vec<u8>>,
    /// Every LSN up to this one was acknowledged durable.
    pub durable: u64,
    /// The log was closed cleanly (no crash): every mode must open it without damage.
    pub clean: bool,
}

/// Builds a log through `Wal::open_with` on a `SimStorage` by running `ops`, then ends it as
/// `end` says. Returns the directory's files (with deterministic log id and salts, see
/// [`canonicalize`]) and what it must read back as (`None` if an operation failed).
pub fn build_log(ops: &[Op], end: End) -> (Files, Option<Oracle>) {
    let sim = SimStorage::new(0x5eed);
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let options = Options::new(DIR)
        .segment_bytes(SEGMENT_BYTES)
        .prepare_in_background(false);
    let mut model = Some(Vec::<Vec<u8>>::new());
    let wal = Wal::open_with(options, storage, &mut |_| {}).expect("a new log opens");
    let mut appended = 0usize;
    for op in ops.iter().take(24) {
        let next = wal.next_lsn().0;
        let ok = match op {
            Op::Append { len, fill, sync } => {
                let rec = vec![*fill; usize::from(*len) % 6000];
                appended += rec.len();
                let d = if *sync {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                let r = wal.append_with(&rec, d);
                if let (Ok(_), Some(m)) = (&r, model.as_mut()) {
                    m.push(rec);
                }
                r.is_ok()
            }
            Op::Batch { lens, fill, sync } => {
                let recs: Vec<Vec<u8>> = lens
                    .iter()
                    .take(64)
                    .enumerate()
                    .map(|(i, l)| vec![fill.wrapping_add(i as u8); usize::from(*l)])
                    .collect();
                appended += recs.iter().map(Vec::len).sum::<usize>();
                let d = if *sync {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                let r = wal.append_batch(&recs, d);
                // An empty batch is refused, as documented.
                let ok = r.is_ok() || recs.is_empty();
                if let (Ok(_), Some(m)) = (&r, model.as_mut()) {
                    m.extend(recs);
                }
                ok
            }
            Op::Sync => wal.sync().is_ok(),
            Op::TruncateAfter { back } => {
                let lsn = next.saturating_sub(1 + u64::from(*back));
                let r = wal.truncate_after(Lsn(lsn));
                if let (Ok(()), Some(m)) = (&r, model.as_mut()) {
                    m.truncate(usize::try_from(lsn).unwrap_or(usize::MAX));
                }
                // Cutting inside a batch is refused, as documented.
                r.is_ok() || matches!(r, Err(walden_log::Error::InvalidArgument(_)))
            }
            Op::TruncateBefore { back } => wal
                .truncate_before(Lsn(next.saturating_sub(u64::from(*back))))
                .is_ok(),
        };
        if !ok {
            model = None;
        }
        if appended > 48 << 10 {
            break;
        }
    }
    let (durable, clean) = match end {
        End::Close => {
            let durable = wal.next_lsn().0 - 1;
            if wal.close().is_err() {
                model = None;
            }
            (durable, true)
        }
        End::Crash(n) => {
            let durable = wal.durable_lsn().0;
            sim.crash(CrashDamage::ALL[usize::from(n) % CrashDamage::ALL.len()]);
            drop(wal);
            (durable, false)
        }
    };
    let dir = Path::new(DIR);
    let mut files: Files = sim
        .file_names(dir)
        .into_iter()
        .filter_map(|n| sim.read_file(&dir.join(&n)).map(|b| (n, b)))
        .collect();
    files.sort();
    canonicalize(&mut files);
    (
        files,
        model.map(|records| Oracle {
            records,
            durable,
            clean,
        }),
    )
}

/// Rewrites a log so its bytes (almost) no longer depend on the random log id and salts the
/// library draws: every segment (and released file) gets log id 1 and salt = its id, and every
/// frame that verified under the old seed is re-encoded under the new one, with chain values
/// mapped from old CRCs to new ones. Frames that did not verify (stale ones from an earlier
/// generation of a recycled file, torn ones) get the complement of their new CRC, so they still
/// do not verify. What verified before verifies after, and what did not still does not, so
/// fuzzing stays reproducible. (A torn frame header whose decode fails keeps its random CRC
/// bytes; that changes no outcome.)
pub fn canonicalize(files: &mut Files) {
    let mut chain: HashMap<u32, u32> = HashMap::new();
    for (name, bytes) in files.iter_mut() {
        let fmt = |n: &str| {
            walden_log::format::parse_segment_file_name(n)
                .or_else(|| walden_log::format::parse_free_file_name(n))
        };
        if fmt(name).is_none() {
            continue;
        }
        let Ok(old) = SegmentHeader::decode_page(bytes) else {
            continue;
        };
        let new = SegmentHeader {
            log_id: 1,
            salt: old.segment_id,
            prev_chain: chain
                .get(&old.prev_chain)
                .copied()
                .unwrap_or(old.prev_chain),
            ..old
        };
        for at in [0, HEADER_COPY_OFFSET] {
            let copy = bytes
                .get(at..at + HEADER_BYTES)
                .and_then(|c| <&[u8; HEADER_BYTES]>::try_from(c).ok());
            if copy.is_some_and(|c| SegmentHeader::decode(c) == Ok(old)) {
                bytes[at..at + HEADER_BYTES].copy_from_slice(&new.encode());
            }
        }
        let (old_seed, new_seed) = (old.frame_seed(), new.frame_seed());
        // Pass 1: the frames that verify, walking as a reader would (and past damage).
        let mut verified = Vec::new();
        let mut at = DATA_OFFSET as usize;
        while at + FRAME_HEADER_BYTES <= bytes.len() {
            match frame_at(bytes, at) {
                Some((h, end)) if frame_crc(old_seed, &bytes[at..end]) == h.crc => {
                    verified.push((at, end, h.crc, h.prev_crc));
                    at = walden_log::format::align_up(end as u64) as usize;
                }
                _ => at += 8,
            }
        }
        // Pass 2: re-encode them in order, mapping chain values.
        for &(at, end, old_crc, old_prev) in &verified {
            let prev = chain.get(&old_prev).copied().unwrap_or(old_prev);
            bytes[at + 24..at + 28].copy_from_slice(&prev.to_le_bytes());
            let crc = frame_crc(new_seed, &bytes[at..end]);
            bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
            chain.insert(old_crc, crc);
        }
        // Pass 3: frame headers that do not verify, clear of every verified frame, get a
        // deterministic CRC that still does not verify.
        let mut at = DATA_OFFSET as usize;
        let mut next_verified = verified.iter().peekable();
        while at + FRAME_HEADER_BYTES <= bytes.len() {
            while next_verified.next_if(|v| v.1 <= at).is_some() {}
            if next_verified
                .peek()
                .is_some_and(|v| v.0 < at + FRAME_HEADER_BYTES)
            {
                at += 8;
                continue;
            }
            let Some((h, end)) = frame_at(bytes, at) else {
                at += 8;
                continue;
            };
            // A zero field stays zero: these bytes may overlap the zeros the library writes
            // after the last frame (its end marker), and zeros there are what a clean end
            // is. A nonzero one stays nonzero.
            if h.prev_crc != 0 {
                let prev = chain.get(&h.prev_crc).copied().unwrap_or(1);
                bytes[at + 24..at + 28].copy_from_slice(&prev.to_le_bytes());
            }
            if h.crc != 0 {
                let crc = !frame_crc(new_seed, &bytes[at..end]);
                bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
            }
            at += FRAME_HEADER_BYTES;
        }
    }
}

/// The frame header at `at` and the end of its payload, when it decodes and fits the file.
fn frame_at(bytes: &[u8], at: usize) -> Option<(walden_log::format::FrameHeader, usize)> {
    let h = decode_frame_header(bytes.get(at..)?)?;
    let end = at + FRAME_HEADER_BYTES + h.len as usize;
    (end <= bytes.len()).then_some((h, end))
}

fn pick(files: &Files, sel: FileSel) -> Option<usize> {
    (!files.is_empty()).then(|| usize::from(sel) % files.len())
}

fn offset_in(at: u16, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        usize::from(at) % len
    }
}

/// The header a file's frames are judged by (either copy), else a zeroed one.
fn header_of(bytes: &[u8]) -> SegmentHeader {
    SegmentHeader::decode_page(bytes).unwrap_or(SegmentHeader {
        log_id: 0,
        segment_id: 0,
        salt: 0,
        first_lsn: 0,
        prev_chain: 0,
    })
}

/// For an injected frame at `offset`: the (lsn, durable_lsn, prev_crc) the frame already there
/// has, or the ones a frame appended after the verified frames before `offset` would have.
fn frame_context(bytes: &[u8], seed: u32, offset: usize) -> (u64, u64, u32) {
    let h = header_of(bytes);
    let (mut lsn, mut prev) = (h.first_lsn, h.prev_chain);
    let mut at = DATA_OFFSET as usize;
    while at + FRAME_HEADER_BYTES <= bytes.len() && at <= offset {
        let Some(fh) = decode_frame_header(&bytes[at..]) else {
            break;
        };
        let end = at + FRAME_HEADER_BYTES + fh.len as usize;
        if end > bytes.len() || frame_crc(seed, &bytes[at..end]) != fh.crc {
            break;
        }
        if at == offset {
            return (fh.lsn, fh.durable_lsn, fh.prev_crc);
        }
        let count = match parse_frame_payload(fh.kind, &bytes[at + FRAME_HEADER_BYTES..end]) {
            Some(FramePayload::Batch(r)) => r.len() as u64,
            _ => 1,
        };
        lsn = fh.lsn.wrapping_add(count);
        prev = fh.crc;
        at = walden_log::format::align_up(end as u64) as usize;
    }
    (lsn, lsn.saturating_sub(1), prev)
}

fn write_at(bytes: &mut Vec<u8>, at: usize, data: &[u8]) {
    let end = at + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[at..end].copy_from_slice(data);
}

/// Applies one mutation.
pub fn mutate(files: &mut Files, m: &Mutation) {
    match m {
        Mutation::Flip { file, at, mask } => {
            if let Some(i) = pick(files, *file) {
                let b = &mut files[i].1;
                let at = offset_in(*at, b.len());
                if let Some(x) = b.get_mut(at) {
                    *x ^= mask;
                }
            }
        }
        Mutation::Overwrite { file, at, bytes } => {
            if let Some(i) = pick(files, *file) {
                let b = &mut files[i].1;
                let at = offset_in(*at, b.len() + 1);
                write_at(b, at, bytes);
            }
        }
        Mutation::Zero { file, at, len } => {
            if let Some(i) = pick(files, *file) {
                let b = &mut files[i].1;
                let at = offset_in(*at, b.len());
                let end = (at + usize::from(*len)).min(b.len());
                b[at.min(end)..end].fill(0);
            }
        }
        Mutation::Truncate { file, at } => {
            if let Some(i) = pick(files, *file) {
                let b = &mut files[i].1;
                b.truncate(offset_in(*at, b.len() + 1));
            }
        }
        Mutation::Extend { file, len } => {
            if let Some(i) = pick(files, *file) {
                let b = &mut files[i].1;
                b.resize(b.len() + usize::from(*len), 0);
            }
        }
        Mutation::Append { file, bytes } => {
            if let Some(i) = pick(files, *file) {
                files[i].1.extend_from_slice(bytes);
            }
        }
        Mutation::SetHeader {
            file,
            copies,
            log_id,
            segment_id,
            salt,
            first_lsn,
            prev_chain,
            version,
            reserved,
        } => {
            let Some(i) = pick(files, *file) else { return };
            let b = &mut files[i].1;
            let mut h = header_of(b);
            if h.segment_id == 0 && h.log_id == 0 {
                h.segment_id =
                    walden_log::format::parse_segment_file_name(&files[i].0).unwrap_or(0);
            }
            let h = SegmentHeader {
                log_id: log_id.u64(h.log_id),
                segment_id: segment_id.u64(h.segment_id),
                salt: salt.u64(h.salt),
                first_lsn: first_lsn.u64(h.first_lsn),
                prev_chain: prev_chain.u32(h.prev_chain),
            };
            let mut enc = h.encode();
            if let Some(v) = version {
                enc[8..12].copy_from_slice(&v.to_le_bytes());
            }
            if let Some(r) = reserved {
                enc[12..16].copy_from_slice(&r.to_le_bytes());
            }
            let crc = crc32c_of(&enc[..60]);
            enc[60..].copy_from_slice(&crc.to_le_bytes());
            let b = &mut files[i].1;
            if copies % 3 != 2 {
                write_at(b, 0, &enc);
            }
            if copies % 3 != 1 {
                write_at(b, HEADER_COPY_OFFSET, &enc);
            }
        }
        Mutation::InjectFrame {
            file,
            at,
            lsn,
            durable_lsn,
            prev_crc,
            kind,
            payload,
            other_seed,
        } => {
            let Some(i) = pick(files, *file) else { return };
            let seed_file = other_seed.and_then(|s| pick(files, s)).unwrap_or(i);
            let seed = header_of(&files[seed_file].1).frame_seed();
            let b = &mut files[i].1;
            let end = walden_log::format::align_up(b.len() as u64).max(DATA_OFFSET) as usize;
            let offset = (DATA_OFFSET as usize + 8 * usize::from(*at)).min(end);
            let (l, d, p) = frame_context(b, seed, offset);
            let code = match kind {
                KindSel::Record => 1,
                KindSel::Batch => 2,
                KindSel::Code(c) => *c,
            };
            let body = match payload {
                PayloadSel::Raw(raw) => raw.clone(),
                PayloadSel::Records(recs) if code == 2 => {
                    let mut out = Vec::new();
                    encode_batch_frame(&mut out, 0, 1, 0, 0, recs);
                    let h = decode_frame_header(&out).expect("batch frame decodes");
                    out[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + h.len as usize].to_vec()
                }
                PayloadSel::Records(recs) => recs.concat(),
            };
            let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + body.len() + 8);
            frame.extend_from_slice(&[0; 4]);
            frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
            frame.extend_from_slice(&lsn.u64(l).to_le_bytes());
            frame.extend_from_slice(&durable_lsn.u64(d).to_le_bytes());
            frame.extend_from_slice(&prev_crc.u32(p).to_le_bytes());
            frame.extend_from_slice(&code.to_le_bytes());
            frame.extend_from_slice(&[0; 2]);
            frame.extend_from_slice(&body);
            let crc = frame_crc(seed, &frame);
            frame[..4].copy_from_slice(&crc.to_le_bytes());
            frame.resize(walden_log::format::align_up(frame.len() as u64) as usize, 0);
            write_at(b, offset, &frame);
        }
        Mutation::AddFile { name, bytes } => put(files, raw_name(*name), bytes.clone()),
        Mutation::CopyFile { file, name } => {
            if let Some(i) = pick(files, *file) {
                let bytes = files[i].1.clone();
                put(files, raw_name(*name), bytes);
            }
        }
        Mutation::Rename { file, name } => {
            if let Some(i) = pick(files, *file) {
                let (_, bytes) = files.remove(i);
                put(files, raw_name(*name), bytes);
            }
        }
        Mutation::Remove { file } => {
            if let Some(i) = pick(files, *file) {
                files.remove(i);
            }
        }
    }
}

fn put(files: &mut Files, name: String, bytes: Vec<u8>) {
    files.retain(|(n, _)| *n != name);
    files.push((name, bytes));
    files.sort();
}

/// CRC32C without a dependency: `frame_crc(seed, b)` is `crc32c_append(seed, b[4..])`, so a
/// 4-byte prefix makes it the plain CRC of `data`.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut buf = Vec::with_capacity(data.len() + 4);
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(data);
    frame_crc(0, &buf)
}

/// One fuzz case: the directory, one extra LSN to dump from, and the oracle if any.
#[derive(Debug)]
pub struct Case {
    /// The files.
    pub files: Files,
    /// An LSN to start one more dump from.
    pub from: u64,
    /// What the log must read back as (undamaged built logs only).
    pub oracle: Option<Oracle>,
}

/// Decodes a fuzz input into a case (see the crate doc).
pub fn decode_case(data: &[u8]) -> Option<Case> {
    let (&tag, rest) = data.split_first()?;
    let from = u64::from(tag & 0x3f);
    if tag & 0x80 == 0 {
        return Some(Case {
            files: decode_raw(rest),
            from,
            oracle: None,
        });
    }
    let built = Built::arbitrary_take_rest(Unstructured::new(rest)).ok()?;
    let (mut files, oracle) = build_log(&built.ops, built.end);
    let damaged = !built.mutations.is_empty();
    for m in built.mutations.iter().take(24) {
        mutate(&mut files, m);
    }
    for (_, b) in files.iter_mut() {
        b.truncate(FILE_BYTES_CAP);
    }
    Some(Case {
        files,
        from,
        oracle: oracle.filter(|_| !damaged),
    })
}

// ---------------------------------------------------------------------------------------------
// Target 2: segment_file — checks
// ---------------------------------------------------------------------------------------------

/// Entry point of the `segment_file` target.
pub fn run_segment_file(data: &[u8]) {
    if let Some(case) = decode_case(data) {
        check_case(&case);
    }
}

/// A fresh `SimStorage` holding `files` in [`DIR`].
pub fn storage_with(files: &Files) -> SimStorage {
    let sim = SimStorage::new(1);
    let dir = Path::new(DIR);
    sim.create_dir_all(dir).expect("create dir");
    for (name, bytes) in files {
        sim.write_file(&dir.join(name), bytes).expect("write_file");
    }
    sim
}

fn snapshot(sim: &SimStorage) -> Files {
    let dir = Path::new(DIR);
    sim.file_names(dir)
        .into_iter()
        .filter_map(|n| sim.read_file(&dir.join(&n)).map(|b| (n, b)))
        .collect()
}

/// Runs every reader of the library over the case's directory: `inspect_dir`; `dump_records`
/// iterated to the end (in the mode `from % 4` picks, from LSN 1 and from `from`);
/// `Wal::open_with` on a fresh copy in the mode `from / 16 % 4` picks (in every mode, one
/// after the other, when the environment variable `WALDEN_FUZZ_ALL_MODES` is set), reading
/// every record, one append read back, and `close`; then `Wal::open_read_only` (in the mode
/// `from / 4 % 4` picks, if that one was opened) on what that recovery left.
///
/// One mode per input keeps the target fast (it is dominated by full scans of the log):
/// the mode bits are part of the input, so libFuzzer mutates them like the rest and every
/// mode is covered; `WALDEN_FUZZ_ALL_MODES=1` replays an input through all four.
///
/// Panics on any panic of the library (naturally), on an iterator that yields more records
/// than the bytes could hold, on a read-only path that changed the directory, and when a
/// built log that was not damaged does not read back what was appended ([`Oracle`]).
pub fn check_case(case: &Case) {
    let dir = PathBuf::from(DIR);
    let total: usize = case.files.iter().map(|(_, b)| b.len()).sum();
    // Every record takes at least 4 bytes of some file (a zero-length record in a batch).
    let cap = total / 4 + 64;
    let dump_mode = MODES[(case.from % 4) as usize];
    let read_only_mode = MODES[(case.from / 4 % 4) as usize];
    let open_modes: &[RecoveryMode] = if all_modes() {
        &MODES
    } else {
        std::slice::from_ref(&MODES[(case.from / 16 % 4) as usize])
    };
    let clean = case.oracle.as_ref().is_some_and(|o| o.clean);

    let sim = storage_with(&case.files);
    let before = snapshot(&sim);
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let inspection = inspect_dir(&*storage, &dir);
    if clean {
        let i = inspection
            .as_ref()
            .expect("inspect of a cleanly closed log");
        assert!(
            i.is_clean(),
            "cleanly closed log inspects as damaged: {:?}",
            i.damage
        );
    }
    for from in [1, case.from] {
        if from == 1 && case.from == 1 {
            continue;
        }
        let Ok(dump) = dump_records(storage.clone(), &dir, dump_mode, Lsn(from)) else {
            continue;
        };
        let mut n = 0usize;
        for r in dump {
            n += 1;
            assert!(
                n <= cap,
                "dump_records({dump_mode:?}) yields more records than {total} bytes can hold"
            );
            match r {
                Ok(v) => {
                    if let Some(o) = &case.oracle {
                        check_record(o, v.lsn.0, &v.data, "dump_records");
                    }
                }
                Err(_) => break,
            }
        }
    }
    assert_eq!(
        snapshot(&sim),
        before,
        "inspect_dir / dump_records changed the directory"
    );
    drop(storage);

    for &mode in open_modes {
        let sim = storage_with(&case.files);
        let storage: Arc<dyn Storage> = Arc::new(sim);
        let options = Options::new(DIR)
            .segment_bytes(SEGMENT_BYTES)
            .prepare_in_background(false)
            .recovery(mode);
        let mut calls = 0usize;
        let wal = match Wal::open_with(options, storage.clone(), &mut |_| calls += 1) {
            Ok(wal) => wal,
            Err(e) => {
                if case.oracle.is_some() {
                    // After a simulated crash only AbsoluteConsistency may refuse (a torn tail).
                    let may_refuse = mode == RecoveryMode::AbsoluteConsistency && !clean;
                    assert!(may_refuse, "{mode:?} refused an undamaged log: {e}");
                }
                continue;
            }
        };
        exercise(&wal, cap, case.oracle.as_ref(), mode);
        let _ = wal.close();
        if mode == read_only_mode {
            // (No oracle: recovery and the append above changed the log.)
            if let Ok(ro) = Wal::open_read_only(DIR, mode, storage) {
                read_all(&ro, cap, None, "open_read_only");
            }
        }
    }
}

fn all_modes() -> bool {
    static ALL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALL.get_or_init(|| std::env::var_os("WALDEN_FUZZ_ALL_MODES").is_some())
}

fn check_record(o: &Oracle, lsn: u64, data: &[u8], who: &str) {
    if let Some(want) = usize::try_from(lsn)
        .ok()
        .and_then(|l| l.checked_sub(1))
        .and_then(|i| o.records.get(i))
    {
        assert_eq!(
            data,
            &want[..],
            "{who}: LSN {lsn} reads back different bytes"
        );
    } else {
        assert!(!o.clean, "{who}: LSN {lsn} was never appended");
    }
}

fn read_all(wal: &Wal, cap: usize, oracle: Option<&Oracle>, who: &str) -> usize {
    // (Not `stats()`: it copies latency histograms, slow and beside the point here.)
    let _ = (
        wal.recovery_report(),
        wal.segments(),
        wal.durable_lsn(),
        wal.next_lsn(),
    );
    let Ok(reader) = wal.read_from(wal.first_lsn()) else {
        return 0;
    };
    let mut n = 0;
    for r in reader {
        n += 1;
        assert!(
            n <= cap + 1,
            "{who}: reader yields more records than the bytes can hold"
        );
        match r {
            Ok(rec) => {
                if let Some(o) = oracle {
                    check_record(o, rec.lsn.0, &rec.data, who);
                }
            }
            Err(e) => {
                assert!(
                    oracle.is_none_or(|o| !o.clean),
                    "{who}: reading an undamaged log failed: {e}"
                );
                break;
            }
        }
    }
    n
}

fn exercise(wal: &Wal, cap: usize, oracle: Option<&Oracle>, mode: RecoveryMode) {
    let n = read_all(wal, cap, oracle, "open_with");
    if let Some(o) = oracle {
        let first = wal.first_lsn().0;
        let next = wal.next_lsn().0;
        if o.clean {
            assert!(
                wal.recovery_report().damage.is_none(),
                "{mode:?}: damage in an undamaged log"
            );
            assert_eq!(
                next,
                o.records.len() as u64 + 1,
                "{mode:?}: next LSN of an undamaged log"
            );
            assert_eq!(n as u64, next - first, "{mode:?}: records read");
        } else if mode != RecoveryMode::SkipCorrupt {
            assert!(
                next > o.durable,
                "{mode:?}: lost durable records: next LSN {next}, durable {}",
                o.durable
            );
        }
    }
    // The recovered log must take a new record and give it back.
    //
    // Known open issue (fuzz/README.md, "Findings"): after SkipCorrupt skipped a hole, the
    // reader can return a record of a frame recovery rejected (valid CRC, broken chain) for
    // the appended LSN, or fail on such a frame ("batch payload does not parse"). Until that
    // is fixed the read-back is not checked there (a panic still fails), so fuzzing goes on.
    let holes = mode == RecoveryMode::SkipCorrupt && !wal.recovery_report().skipped.is_empty();
    let record = b"appended after recovery";
    if let Ok(lsn) = wal.append(record) {
        let got = wal.read_from(lsn).ok().and_then(|mut r| r.next());
        match got {
            _ if holes => {}
            Some(Ok(r)) => {
                assert!(
                    r.lsn == lsn && r.data == record,
                    "{mode:?}: read back {r:?} for {lsn}"
                )
            }
            other => {
                panic!("{mode:?}: record appended at {lsn} after recovery reads back as {other:?}")
            }
        }
    }
}
