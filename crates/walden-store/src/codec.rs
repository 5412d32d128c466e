//! Store records inside walden-log records. Little-endian, length-prefixed; every length is
//! checked against the bytes present before use (the log already verified a CRC, but a
//! decoder never trusts a length for allocation).
//!
//! ```text
//! Writes  = 0x01, txn_id u64, count u32, count x Write
//! Write   = op u8 (1 put, 2 delete), ns_len u32, ns, key_len u32, key, [val_len u32, val if put]
//! Commit  = 0x02, txn_id u64, commit_time_ms u64, first_spill_lsn u64 (0: none)
//! Abort   = 0x03, txn_id u64
//! ```
//!
//! A transaction's last writes and its commit are one atomic batch `[Writes, Commit]`; a large
//! transaction may have spilled earlier `Writes` records, which its commit names.

use crate::error::{Error, Result};
use std::sync::Arc;

const WRITES: u8 = 1;
const COMMIT: u8 = 2;
const ABORT: u8 = 3;
const PUT: u8 = 1;
const DELETE: u8 = 2;

/// Bytes: shared, immutable.
pub type Bytes = Arc<[u8]>;

/// One change a transaction makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Namespace.
    pub ns: Bytes,
    /// Key.
    pub key: Bytes,
    /// The new value, or `None` for a delete (tombstone).
    pub value: Option<Bytes>,
}

impl Write {
    /// Bytes this write takes in a `Writes` record.
    pub fn encoded_len(&self) -> usize {
        1 + 4 + self.ns.len() + 4 + self.key.len() + self.value.as_ref().map_or(0, |v| 4 + v.len())
    }
}

/// A decoded store record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRecord {
    /// Writes of a transaction (possibly one of several).
    Writes {
        /// The transaction.
        txn_id: u64,
        /// Its writes, in order.
        writes: Vec<Write>,
    },
    /// A transaction committed.
    Commit {
        /// The transaction.
        txn_id: u64,
        /// Wall-clock commit time, milliseconds since the Unix epoch.
        commit_time_ms: u64,
        /// LSN of its first spilled `Writes` record, or 0.
        first_spill_lsn: u64,
    },
    /// A transaction will never commit.
    Abort {
        /// The transaction.
        txn_id: u64,
    },
}

/// Encodes a `Writes` record.
pub fn encode_writes<'a>(
    txn_id: u64,
    writes: impl ExactSizeIterator<Item = &'a Write> + Clone,
) -> Vec<u8> {
    // Sized once: growing from a guess reallocated and copied several times per commit.
    let len = 13 + writes.clone().map(Write::encoded_len).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(WRITES);
    out.extend_from_slice(&txn_id.to_le_bytes());
    out.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for w in writes {
        out.push(if w.value.is_some() { PUT } else { DELETE });
        put_bytes(&mut out, &w.ns);
        put_bytes(&mut out, &w.key);
        if let Some(v) = &w.value {
            put_bytes(&mut out, v);
        }
    }
    debug_assert_eq!(out.len(), len, "Write::encoded_len is exact");
    out
}

/// Bytes of a `Commit` record.
pub const COMMIT_BYTES: usize = 25;

/// Encodes a `Commit` record (on the stack: one allocation fewer per commit).
pub fn encode_commit(txn_id: u64, commit_time_ms: u64, first_spill_lsn: u64) -> [u8; COMMIT_BYTES] {
    let mut out = [0u8; COMMIT_BYTES];
    out[0] = COMMIT;
    out[1..9].copy_from_slice(&txn_id.to_le_bytes());
    out[9..17].copy_from_slice(&commit_time_ms.to_le_bytes());
    out[17..25].copy_from_slice(&first_spill_lsn.to_le_bytes());
    out
}

/// Encodes an `Abort` record.
pub fn encode_abort(txn_id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(ABORT);
    out.extend_from_slice(&txn_id.to_le_bytes());
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Decodes one store record read at `lsn`.
pub fn decode(lsn: u64, bytes: &[u8]) -> Result<StoreRecord> {
    let bad = |reason: &str| Error::BadRecord {
        lsn,
        reason: reason.to_string(),
    };
    let mut r = Reader { bytes, at: 0 };
    let kind = r.u8().ok_or_else(|| bad("empty record"))?;
    let txn_id = r.u64().ok_or_else(|| bad("missing transaction id"))?;
    let record = match kind {
        WRITES => {
            let count = r.u32().ok_or_else(|| bad("missing write count"))?;
            // Each write takes at least 9 bytes: never allocate more than the bytes allow.
            let mut writes = Vec::with_capacity((count as usize).min(bytes.len() / 9));
            for _ in 0..count {
                let op = r.u8().ok_or_else(|| bad("truncated write"))?;
                let ns = r.bytes().ok_or_else(|| bad("truncated namespace"))?;
                let key = r.bytes().ok_or_else(|| bad("truncated key"))?;
                let value = match op {
                    PUT => Some(r.bytes().ok_or_else(|| bad("truncated value"))?),
                    DELETE => None,
                    _ => return Err(bad("unknown write op")),
                };
                writes.push(Write {
                    ns: ns.into(),
                    key: key.into(),
                    value: value.map(Into::into),
                });
            }
            StoreRecord::Writes { txn_id, writes }
        }
        COMMIT => StoreRecord::Commit {
            txn_id,
            commit_time_ms: r.u64().ok_or_else(|| bad("truncated commit"))?,
            first_spill_lsn: r.u64().ok_or_else(|| bad("truncated commit"))?,
        },
        ABORT => StoreRecord::Abort { txn_id },
        _ => return Err(bad("unknown record type")),
    };
    if r.at != bytes.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(record)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(ns: &str, key: &str, value: Option<&str>) -> Write {
        Write {
            ns: ns.as_bytes().into(),
            key: key.as_bytes().into(),
            value: value.map(|v| v.as_bytes().into()),
        }
    }

    #[test]
    fn records_round_trip() {
        let writes = vec![w("agents", "a", Some("1")), w("agents", "b", None)];
        let enc = encode_writes(7, writes.iter());
        assert_eq!(
            decode(1, &enc).unwrap(),
            StoreRecord::Writes { txn_id: 7, writes }
        );
        assert_eq!(
            decode(2, &encode_commit(7, 99, 3)).unwrap(),
            StoreRecord::Commit {
                txn_id: 7,
                commit_time_ms: 99,
                first_spill_lsn: 3
            }
        );
        assert_eq!(
            decode(3, &encode_abort(7)).unwrap(),
            StoreRecord::Abort { txn_id: 7 }
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let enc = encode_writes(7, [w("n", "k", Some("v"))].iter());
        for cut in 0..enc.len() {
            assert!(decode(1, &enc[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = encode_writes(7, [].iter());
        huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(1, &huge).is_err());
    }
}
