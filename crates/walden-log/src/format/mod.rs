//! The on-disk format, byte for byte as docs/FORMAT.md draws it. Offsets here mirror that
//! document; every integer is little-endian and fixed-width.
//!
//! A segment file is:
//!
//! ```text
//! 0      512    1024                 4096
//! +------+------+------ zeros -------+-------+-------+-----+----------------+
//! |header|header|                    | frame | frame | ... | zeros or stale |
//! |      | copy |                    |       |       |     |                |
//! +------+------+--------------------+-------+-------+-----+----------------+
//! ```
//!
//! Frames start at [`DATA_OFFSET`] and are 8-byte aligned. The header is stored twice, in two
//! different sectors, so that a single damaged sector never loses a segment's identity.

mod frame;
pub(crate) mod header;

pub use frame::{
    batch_payload_bytes, decode_frame_header, encode_batch_frame, encode_record_frame, frame_bytes,
    frame_crc, parse_frame_payload, FrameHeader, FrameKind, FramePayload, FRAME_HEADER_BYTES,
};
pub use header::{SegmentHeader, HEADER_BYTES, HEADER_COPY_OFFSET, MAGIC};

/// Version of the format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Byte offset of the first frame in every segment: one 4 KiB page, so frames never share a
/// page with the header.
pub const DATA_OFFSET: u64 = 4096;

/// Frames are padded to a multiple of this, so a frame header never straddles a sector.
pub const FRAME_ALIGN_BYTES: u64 = 8;

/// Largest payload of one frame (a record, or a whole batch with its length prefixes):
/// 64 MiB. Checked before writing and before allocating on read; a length field above it is
/// corruption, whatever it says.
pub const FRAME_PAYLOAD_BYTES_MAX: u32 = 64 << 20;

/// Most records one batch frame may hold.
pub const BATCH_RECORDS_MAX: u32 = 1 << 20;

/// Smallest segment size accepted: room for the header page and a few frames.
pub const SEGMENT_BYTES_MIN: u64 = 16 << 10;

/// Largest segment size accepted: offsets inside a segment must stay far from `u32` limits of
/// the frame length field and allocation limits of tools.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;

/// The value `crc32c` starts from for every frame of one segment: the CRC of the segment's
/// identity (log id, segment id, salt). Mixing it into each frame's CRC means bytes left from
/// any other segment, or from an earlier use of the same file, can never verify here.
pub fn segment_seed(log_id: u64, segment_id: u64, salt: u64) -> u32 {
    let mut identity = [0u8; 24];
    identity[..8].copy_from_slice(&log_id.to_le_bytes());
    identity[8..16].copy_from_slice(&segment_id.to_le_bytes());
    identity[16..].copy_from_slice(&salt.to_le_bytes());
    crc32c::crc32c(&identity)
}

/// Rounds `bytes` up to the frame alignment.
pub const fn align_up(bytes: u64) -> u64 {
    (bytes + FRAME_ALIGN_BYTES - 1) & !(FRAME_ALIGN_BYTES - 1)
}

/// The file name of segment `segment_id`: zero-padded hex so names sort by id. The name is
/// only a hint; identity comes from the header.
pub fn segment_file_name(segment_id: u64) -> String {
    format!("{segment_id:016x}.wal")
}

/// The name a released segment carries while it waits to be recycled.
pub fn free_file_name(segment_id: u64) -> String {
    format!("{segment_id:016x}.free")
}

/// Parses a segment file name back to its id; `None` for any other file.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_hex_name(name, ".wal")
}

/// Parses a released segment's file name back to its id; `None` for any other file.
pub fn parse_free_file_name(name: &str) -> Option<u64> {
    parse_hex_name(name, ".free")
}

fn parse_hex_name(name: &str, suffix: &str) -> Option<u64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 16 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

const _: () = assert!(DATA_OFFSET.is_multiple_of(FRAME_ALIGN_BYTES));
const _: () = assert!(HEADER_COPY_OFFSET as u64 + HEADER_BYTES as u64 <= DATA_OFFSET);
const _: () = assert!(SEGMENT_BYTES_MIN > DATA_OFFSET);
const _: () = assert!((FRAME_PAYLOAD_BYTES_MAX as u64) < SEGMENT_BYTES_MAX);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_id() {
        assert_eq!(
            parse_segment_file_name(&segment_file_name(0xabc)),
            Some(0xabc)
        );
        assert_eq!(parse_free_file_name(&free_file_name(7)), Some(7));
        assert_eq!(parse_segment_file_name("0000000000000abc.free"), None);
        assert_eq!(parse_segment_file_name("abc.wal"), None);
        assert_eq!(parse_segment_file_name("zzzzzzzzzzzzzzzz.wal"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn seed_depends_on_every_identity_field() {
        let base = segment_seed(1, 2, 3);
        assert_ne!(base, segment_seed(9, 2, 3));
        assert_ne!(base, segment_seed(1, 9, 3));
        assert_ne!(base, segment_seed(1, 2, 9));
    }
}
