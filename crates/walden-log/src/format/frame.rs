//! Frames: the unit written to a segment. A frame holds one record, or one atomic batch of
//! records that recovers whole or not at all.
//!
//! ```text
//! offset size field
//!  0      4   crc          crc32c(seed = segment seed) over bytes 4..32+len
//!  4      4   len          payload bytes (not counting padding)
//!  8      8   lsn          LSN of the first record in the frame
//! 16      8   durable_lsn  highest LSN known durable when the frame was written
//! 24      4   prev_crc     crc of the frame before this one in the log (the chain)
//! 28      2   kind         1 = record, 2 = batch
//! 30      2   reserved     0
//! 32    len   payload      record bytes, or a batch: u32 count, then count x (u32 len, bytes)
//!  ..         padding      zeros up to a multiple of 8
//! ```
//!
//! `durable_lsn` lets recovery tell a torn tail from lost acknowledged data: a valid frame
//! found after a damaged one, whose `durable_lsn` reaches the damaged LSN, proves the damaged
//! frame had been synced, so the damage is corruption, not a crash artifact.

use super::{align_up, BATCH_RECORDS_MAX, FRAME_PAYLOAD_BYTES_MAX};

/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 32;

const LEN_AT: usize = 4;
const LSN_AT: usize = 8;
const DURABLE_AT: usize = 16;
const PREV_AT: usize = 24;
const KIND_AT: usize = 28;
const RESERVED_AT: usize = 30;
const _: () = assert!(RESERVED_AT + 2 == FRAME_HEADER_BYTES);

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// One record; the payload is the record.
    Record,
    /// An atomic batch; the payload is a count and length-prefixed records.
    Batch,
}

impl FrameKind {
    fn code(self) -> u16 {
        match self {
            FrameKind::Record => 1,
            FrameKind::Batch => 2,
        }
    }
    fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(FrameKind::Record),
            2 => Some(FrameKind::Batch),
            _ => None,
        }
    }
}

/// A decoded frame header (its CRC not yet checked against the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The stored CRC.
    pub crc: u32,
    /// Payload bytes.
    pub len: u32,
    /// LSN of the first record.
    pub lsn: u64,
    /// Highest LSN durable when this frame was written.
    pub durable_lsn: u64,
    /// CRC of the previous frame in the log.
    pub prev_crc: u32,
    /// Record or batch.
    pub kind: FrameKind,
}

/// Total bytes a frame with `payload_bytes` of payload takes, padding included.
pub fn frame_bytes(payload_bytes: u64) -> u64 {
    align_up(FRAME_HEADER_BYTES as u64 + payload_bytes)
}

/// Decodes the 32 header bytes, rejecting impossible values (unknown kind, nonzero reserved
/// bytes, a length above [`FRAME_PAYLOAD_BYTES_MAX`], LSN 0). `None` means "not a frame".
pub fn decode_frame_header(b: &[u8]) -> Option<FrameHeader> {
    let b: &[u8; FRAME_HEADER_BYTES] = b.get(..FRAME_HEADER_BYTES)?.try_into().ok()?;
    let len = u32::from_le_bytes(arr(b, LEN_AT));
    let lsn = u64::from_le_bytes(arr(b, LSN_AT));
    let kind = FrameKind::from_code(u16::from_le_bytes(arr(b, KIND_AT)))?;
    if len > FRAME_PAYLOAD_BYTES_MAX || lsn == 0 || b[RESERVED_AT] != 0 || b[RESERVED_AT + 1] != 0 {
        return None;
    }
    Some(FrameHeader {
        crc: u32::from_le_bytes(arr(b, 0)),
        len,
        lsn,
        durable_lsn: u64::from_le_bytes(arr(b, DURABLE_AT)),
        prev_crc: u32::from_le_bytes(arr(b, PREV_AT)),
        kind,
    })
}

/// The CRC of a whole frame (header bytes 4.. and payload), seeded with the segment seed.
/// `frame` must hold the header and exactly `len` payload bytes.
pub fn frame_crc(seed: u32, frame: &[u8]) -> u32 {
    crc32c::crc32c_append(seed, frame.get(4..).unwrap_or_default())
}

/// Appends one record frame to `out`, returning its CRC. The caller has checked the size.
pub fn encode_record_frame(
    out: &mut Vec<u8>,
    seed: u32,
    lsn: u64,
    durable_lsn: u64,
    prev_crc: u32,
    record: &[u8],
) -> u32 {
    let start = out.len();
    push_header(
        out,
        record.len() as u32,
        lsn,
        durable_lsn,
        prev_crc,
        FrameKind::Record,
    );
    out.extend_from_slice(record);
    finish(out, start, seed)
}

/// Appends one batch frame holding `records` to `out`, returning its CRC. The caller has
/// checked the sizes (see [`batch_payload_bytes`]).
pub fn encode_batch_frame<R: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    seed: u32,
    lsn: u64,
    durable_lsn: u64,
    prev_crc: u32,
    records: &[R],
) -> u32 {
    let start = out.len();
    let len = batch_payload_bytes(records);
    push_header(
        out,
        len as u32,
        lsn,
        durable_lsn,
        prev_crc,
        FrameKind::Batch,
    );
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        out.extend_from_slice(&(r.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(r.as_ref());
    }
    finish(out, start, seed)
}

/// Payload bytes a batch of `records` encodes to.
pub fn batch_payload_bytes<R: AsRef<[u8]>>(records: &[R]) -> u64 {
    4 + records
        .iter()
        .map(|r| 4 + r.as_ref().len() as u64)
        .sum::<u64>()
}

fn push_header(out: &mut Vec<u8>, len: u32, lsn: u64, durable: u64, prev: u32, kind: FrameKind) {
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&durable.to_le_bytes());
    out.extend_from_slice(&prev.to_le_bytes());
    out.extend_from_slice(&kind.code().to_le_bytes());
    out.extend_from_slice(&[0u8; 2]);
}

fn finish(out: &mut Vec<u8>, start: usize, seed: u32) -> u32 {
    let crc = frame_crc(seed, out.get(start..).unwrap_or_default());
    if let Some(slot) = out.get_mut(start..start + 4) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
    let padded = align_up(out.len() as u64) as usize;
    out.resize(padded, 0);
    crc
}

/// The records of one verified frame payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramePayload<'a> {
    /// A single record.
    Record(&'a [u8]),
    /// The records of a batch, in order.
    Batch(Vec<&'a [u8]>),
}

/// Splits a verified payload into records. `None` when a batch's inner lengths do not add
/// up exactly (possible only if a CRC collision let a damaged frame through, or a bug).
pub fn parse_frame_payload(kind: FrameKind, payload: &[u8]) -> Option<FramePayload<'_>> {
    match kind {
        FrameKind::Record => Some(FramePayload::Record(payload)),
        FrameKind::Batch => {
            let count = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?);
            if count == 0 || count > BATCH_RECORDS_MAX {
                return None;
            }
            let mut records = Vec::with_capacity(count.min(1024) as usize);
            let mut at = 4usize;
            for _ in 0..count {
                let len = u32::from_le_bytes(payload.get(at..at + 4)?.try_into().ok()?) as usize;
                at += 4;
                records.push(payload.get(at..at.checked_add(len)?)?);
                at += len;
            }
            (at == payload.len()).then_some(FramePayload::Batch(records))
        }
    }
}

fn arr<const N: usize>(b: &[u8; FRAME_HEADER_BYTES], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_frame_matches_documented_layout() {
        let mut out = Vec::new();
        let crc = encode_record_frame(&mut out, 7, 42, 41, 99, b"hello");
        assert_eq!(out.len(), 40, "32 header + 5 payload padded to 8");
        assert_eq!(u32::from_le_bytes(out[0..4].try_into().unwrap()), crc);
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 5);
        assert_eq!(u64::from_le_bytes(out[8..16].try_into().unwrap()), 42);
        assert_eq!(u64::from_le_bytes(out[16..24].try_into().unwrap()), 41);
        assert_eq!(u32::from_le_bytes(out[24..28].try_into().unwrap()), 99);
        assert_eq!(u16::from_le_bytes(out[28..30].try_into().unwrap()), 1);
        assert_eq!(&out[32..37], b"hello");
        assert!(out[37..].iter().all(|&b| b == 0));
        let h = decode_frame_header(&out).unwrap();
        assert_eq!(frame_crc(7, &out[..37]), h.crc);
        assert_ne!(
            frame_crc(8, &out[..37]),
            h.crc,
            "another segment's seed fails"
        );
    }

    #[test]
    fn batch_round_trips() {
        let mut out = Vec::new();
        let recs: [&[u8]; 3] = [b"a", b"", b"ccc"];
        encode_batch_frame(&mut out, 1, 5, 4, 0, &recs);
        let h = decode_frame_header(&out).unwrap();
        assert_eq!(h.kind, FrameKind::Batch);
        let payload = &out[32..32 + h.len as usize];
        assert_eq!(
            parse_frame_payload(h.kind, payload),
            Some(FramePayload::Batch(recs.to_vec()))
        );
        assert_eq!(
            parse_frame_payload(h.kind, &payload[..payload.len() - 1]),
            None
        );
    }

    #[test]
    fn impossible_headers_are_not_frames() {
        assert_eq!(
            decode_frame_header(&[0u8; 32]),
            None,
            "zeros: LSN 0, kind 0"
        );
        let mut out = Vec::new();
        encode_record_frame(&mut out, 1, 1, 0, 0, b"x");
        let mut big = out.clone();
        big[4..8].copy_from_slice(&(FRAME_PAYLOAD_BYTES_MAX + 1).to_le_bytes());
        assert_eq!(decode_frame_header(&big), None);
        assert_eq!(decode_frame_header(&out[..31]), None);
    }
}
