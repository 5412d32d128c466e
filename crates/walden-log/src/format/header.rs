//! The segment header (64 bytes, stored at offset 0 and again at offset 512).
//!
//! ```text
//! offset size field
//!  0      8   magic            b"WALDNSEG"
//!  8      4   format_version   u32 = 1
//! 12      4   reserved         u32 = 0
//! 16      8   log_id           u64, random, the same in every segment of one log
//! 24      8   segment_id       u64, strictly increasing along the log, never reused
//! 32      8   salt             u64, random, new each time a file is initialized (generation)
//! 40      8   first_lsn        u64, LSN of the segment's first record
//! 48      4   prev_chain       u32, CRC of the previous segment's last frame up to first_lsn-1
//! 52      8   reserved         zeros
//! 60      4   header_crc       crc32c of bytes 0..60
//! ```

use super::FORMAT_VERSION;

/// Bytes in one header copy.
pub const HEADER_BYTES: usize = 64;
/// Offset of the second copy: a different 512-byte sector from the first.
pub const HEADER_COPY_OFFSET: usize = 512;
/// The first 8 bytes of every segment.
pub const MAGIC: [u8; 8] = *b"WALDNSEG";

const VERSION_AT: usize = 8;
const LOG_ID_AT: usize = 16;
const SEGMENT_ID_AT: usize = 24;
const SALT_AT: usize = 32;
const FIRST_LSN_AT: usize = 40;
const PREV_CHAIN_AT: usize = 48;
const CRC_AT: usize = 60;
const _: () = assert!(CRC_AT + 4 == HEADER_BYTES);

/// A segment's identity and its link to the segment before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Random id shared by every segment of one log.
    pub log_id: u64,
    /// Position of this segment in the log; strictly increasing, gaps allowed.
    pub segment_id: u64,
    /// Random value drawn each time a file is initialized as a segment (its generation).
    pub salt: u64,
    /// LSN of the first record this segment holds.
    pub first_lsn: u64,
    /// CRC of the frame holding LSN `first_lsn - 1` (0 for a log's very first segment).
    pub prev_chain: u32,
}

/// Why a header copy did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// All bytes are zero: the file was prepared but never initialized.
    Blank,
    /// Magic, version or checksum are wrong.
    Invalid,
    /// A well-formed header of a newer format version.
    UnsupportedVersion(u32),
}

impl SegmentHeader {
    /// The 64 encoded bytes of one copy.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[..8].copy_from_slice(&MAGIC);
        b[VERSION_AT..VERSION_AT + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[LOG_ID_AT..LOG_ID_AT + 8].copy_from_slice(&self.log_id.to_le_bytes());
        b[SEGMENT_ID_AT..SEGMENT_ID_AT + 8].copy_from_slice(&self.segment_id.to_le_bytes());
        b[SALT_AT..SALT_AT + 8].copy_from_slice(&self.salt.to_le_bytes());
        b[FIRST_LSN_AT..FIRST_LSN_AT + 8].copy_from_slice(&self.first_lsn.to_le_bytes());
        b[PREV_CHAIN_AT..PREV_CHAIN_AT + 4].copy_from_slice(&self.prev_chain.to_le_bytes());
        let crc = crc32c::crc32c(&b[..CRC_AT]);
        b[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The first [`super::DATA_OFFSET`]-sized page of a segment with both copies in place.
    pub fn encode_page(&self) -> Vec<u8> {
        let mut page = vec![0u8; super::DATA_OFFSET as usize];
        let one = self.encode();
        page[..HEADER_BYTES].copy_from_slice(&one);
        page[HEADER_COPY_OFFSET..HEADER_COPY_OFFSET + HEADER_BYTES].copy_from_slice(&one);
        page
    }

    /// Decodes one 64-byte copy, verifying magic, version and checksum, and refusing a first
    /// LSN of 0 (impossible: LSNs start at 1).
    pub fn decode(bytes: &[u8; HEADER_BYTES]) -> Result<Self, HeaderProblem> {
        if bytes.iter().all(|&b| b == 0) {
            return Err(HeaderProblem::Blank);
        }
        let crc = u32::from_le_bytes(le4(bytes, CRC_AT));
        if bytes[..8] != MAGIC || crc != crc32c::crc32c(&bytes[..CRC_AT]) {
            return Err(HeaderProblem::Invalid);
        }
        let version = u32::from_le_bytes(le4(bytes, VERSION_AT));
        if version != FORMAT_VERSION {
            return Err(HeaderProblem::UnsupportedVersion(version));
        }
        let first_lsn = u64::from_le_bytes(le8(bytes, FIRST_LSN_AT));
        if first_lsn == 0 {
            // LSNs start at 1 (`decode_frame_header` likewise refuses LSN 0); the engine never
            // writes 0 here. Accepting it made recovery's next LSN 0 and `next_lsn - 1`
            // overflow when the log was opened (found by fuzz/segment_file).
            return Err(HeaderProblem::Invalid);
        }
        Ok(SegmentHeader {
            log_id: u64::from_le_bytes(le8(bytes, LOG_ID_AT)),
            segment_id: u64::from_le_bytes(le8(bytes, SEGMENT_ID_AT)),
            salt: u64::from_le_bytes(le8(bytes, SALT_AT)),
            first_lsn,
            prev_chain: u32::from_le_bytes(le4(bytes, PREV_CHAIN_AT)),
        })
    }

    /// Decodes the header page: the first copy that verifies wins. When neither does, the
    /// problem of the first copy is returned (`Blank` only when both copies are blank).
    pub fn decode_page(page: &[u8]) -> Result<Self, HeaderProblem> {
        let first = copy_at(page, 0).map_or(Err(HeaderProblem::Invalid), |c| Self::decode(&c));
        if first.is_ok() {
            return first;
        }
        let second = copy_at(page, HEADER_COPY_OFFSET)
            .map_or(Err(HeaderProblem::Invalid), |c| Self::decode(&c));
        match (first, second) {
            (_, Ok(h)) => Ok(h),
            (Err(HeaderProblem::Blank), Err(HeaderProblem::Blank)) => Err(HeaderProblem::Blank),
            (Err(HeaderProblem::UnsupportedVersion(v)), _)
            | (_, Err(HeaderProblem::UnsupportedVersion(v))) => {
                Err(HeaderProblem::UnsupportedVersion(v))
            }
            _ => Err(HeaderProblem::Invalid),
        }
    }

    /// The CRC seed every frame of this segment starts from.
    pub fn frame_seed(&self) -> u32 {
        super::segment_seed(self.log_id, self.segment_id, self.salt)
    }
}

fn copy_at(page: &[u8], at: usize) -> Option<[u8; HEADER_BYTES]> {
    page.get(at..at + HEADER_BYTES)?.try_into().ok()
}

fn le4(b: &[u8; HEADER_BYTES], at: usize) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(&b[at..at + 4]);
    out
}

fn le8(b: &[u8; HEADER_BYTES], at: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[at..at + 8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentHeader {
        SegmentHeader {
            log_id: 11,
            segment_id: 2,
            salt: 33,
            first_lsn: 44,
            prev_chain: 55,
        }
    }

    #[test]
    fn round_trips_and_matches_documented_offsets() {
        let h = sample();
        let b = h.encode();
        assert_eq!(&b[..8], b"WALDNSEG");
        assert_eq!(b[8], 1);
        assert_eq!(b[16], 11);
        assert_eq!(b[24], 2);
        assert_eq!(b[32], 33);
        assert_eq!(b[40], 44);
        assert_eq!(b[48], 55);
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        let b = sample().encode();
        for i in 0..HEADER_BYTES * 8 {
            let mut c = b;
            c[i / 8] ^= 1 << (i % 8);
            assert!(SegmentHeader::decode(&c).is_err(), "bit {i}");
        }
    }

    #[test]
    fn second_copy_rescues_a_damaged_first() {
        let mut page = sample().encode_page();
        page[..HEADER_BYTES].fill(0xff);
        assert_eq!(SegmentHeader::decode_page(&page), Ok(sample()));
        page[HEADER_COPY_OFFSET] ^= 1;
        assert_eq!(
            SegmentHeader::decode_page(&page),
            Err(HeaderProblem::Invalid)
        );
        assert_eq!(
            SegmentHeader::decode_page(&[0u8; 4096]),
            Err(HeaderProblem::Blank)
        );
    }
}
