//! Checkpoint files: a snapshot of the state at a commit LSN, written atomically.
//!
//! ```text
//! header (64 bytes)
//!   0  8  magic "WALDNCKP"
//!   8  4  version u32 = 1
//!  12  4  reserved
//!  16  8  checkpoint_lsn   every transaction with commit LSN <= this is in the snapshot
//!  24  8  redo_start_lsn   recovery reads the log from here (<= checkpoint_lsn + 1)
//!  32  8  next_txn_id
//!  40  8  entry_count
//!  48 12  reserved
//!  60  4  crc32c of bytes 0..60
//! blocks, each: len u32, crc32c u32 (of the payload), payload = entries
//!   entry: ns_len u32, ns, key_len u32, key, n u16, n x version
//!   version: version u64, lsn u64, commit_time_ms u64, kind u8 (1 value, 0 tombstone),
//!            [val_len u32, val]
//! end block: len 0, crc = crc32c of all block crcs in order
//! ```
//!
//! Written to `checkpoint.tmp`, fsynced, renamed to `checkpoint-<lsn hex>.ckpt`, and the
//! directory fsynced: a crash leaves the old checkpoint or the new one, never a mix. The
//! newest checkpoint that verifies wins; older ones are kept until a newer one is durable
//! (the log is never truncated past the oldest kept checkpoint's redo start).

use crate::chain::{Chain, Version};
use crate::codec::Bytes;
use crate::error::{Error, Result};
use crate::keys::EntryKey;
use crate::state::{Map, State};
use std::path::{Path, PathBuf};
use walden_log::storage::{OpenMode, Storage};

const MAGIC: [u8; 8] = *b"WALDNCKP";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 64;
/// Entries are written in blocks of about this size, each with its own CRC.
const BLOCK_BYTES: usize = 1 << 20;
/// A block larger than this is damage, not an allocation request.
const BLOCK_BYTES_MAX: u32 = 256 << 20;
const TMP_NAME: &str = "checkpoint.tmp";

/// What a checkpoint records besides the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointMeta {
    pub checkpoint_lsn: u64,
    pub redo_start_lsn: u64,
    pub next_txn_id: u64,
}

pub(crate) fn file_name(lsn: u64) -> String {
    format!("checkpoint-{lsn:016x}.ckpt")
}

fn parse_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("checkpoint-")?.strip_suffix(".ckpt")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Checkpoint files in `dir`, newest first: (checkpoint LSN, path).
pub(crate) fn list(storage: &dyn Storage, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let names = storage.list(dir).map_err(|e| io("list", dir, e))?;
    let mut found: Vec<_> = names
        .iter()
        .filter_map(|n| parse_name(n).map(|l| (l, dir.join(n))))
        .collect();
    found.sort_unstable_by_key(|(l, _)| std::cmp::Reverse(*l));
    Ok(found)
}

fn io(op: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::Log(walden_log::Error::Io {
        op,
        path: path.to_path_buf(),
        source: e,
    })
}

/// Writes `state` as the checkpoint `meta` describes, atomically and durably. Returns its
/// path.
pub(crate) fn write(
    storage: &dyn Storage,
    dir: &Path,
    state: &State,
    meta: CheckpointMeta,
) -> Result<(PathBuf, u64)> {
    let tmp = dir.join(TMP_NAME);
    let _ = storage.remove(&tmp);
    let file = storage
        .open(&tmp, OpenMode::CreateNew)
        .map_err(|e| io("create", &tmp, e))?;
    // The header goes last, at offset 0, with the count of entries written.
    let mut at = HEADER_BYTES as u64;
    let mut put = |bytes: &[u8]| -> Result<()> {
        file.write_all_at(bytes, at)
            .map_err(|e| io("write", &tmp, e))?;
        at += bytes.len() as u64;
        Ok(())
    };
    let mut block = Vec::with_capacity(BLOCK_BYTES + 4096);
    let mut block_crcs = Vec::new();
    let mut entries = 0u64;
    // Encoded in chunks under the state's read lock, written between them (no I/O under
    // the lock: commits wait for it).
    let mut cursor = None;
    loop {
        let more = state.for_each_chunk(cursor.take(), |key, versions| {
            encode_entry(&mut block, key, versions);
            entries += 1;
            block.len() < BLOCK_BYTES
        });
        if block.len() >= BLOCK_BYTES || (more.is_none() && !block.is_empty()) {
            block_crcs.extend_from_slice(&flush_block(&mut put, &mut block)?.to_le_bytes());
        }
        match more {
            Some(after) => cursor = Some(after),
            None => break,
        }
    }
    debug_assert_eq!(entries, state.keys(), "every key of the snapshot, once");
    let mut end = [0u8; 8];
    end[4..].copy_from_slice(&crc32c::crc32c(&block_crcs).to_le_bytes());
    put(&end)?;
    let bytes = at;
    file.write_all_at(&encode_header(meta, entries), 0)
        .map_err(|e| io("write", &tmp, e))?;
    file.sync_data().map_err(|e| io("fdatasync", &tmp, e))?;
    let path = dir.join(file_name(meta.checkpoint_lsn));
    storage
        .rename(&tmp, &path)
        .map_err(|e| io("rename", &tmp, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| io("fsync directory", dir, e))?;
    Ok((path, bytes))
}

fn flush_block(put: &mut impl FnMut(&[u8]) -> Result<()>, block: &mut Vec<u8>) -> Result<u32> {
    let crc = crc32c::crc32c(block);
    let mut head = [0u8; 8];
    head[..4].copy_from_slice(&(block.len() as u32).to_le_bytes());
    head[4..].copy_from_slice(&crc.to_le_bytes());
    put(&head)?;
    put(block)?;
    block.clear();
    Ok(crc)
}

fn encode_header(meta: CheckpointMeta, entries: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&meta.checkpoint_lsn.to_le_bytes());
    h[24..32].copy_from_slice(&meta.redo_start_lsn.to_le_bytes());
    h[32..40].copy_from_slice(&meta.next_txn_id.to_le_bytes());
    h[40..48].copy_from_slice(&entries.to_le_bytes());
    let crc = crc32c::crc32c(&h[..60]);
    h[60..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn encode_entry(out: &mut Vec<u8>, key: &EntryKey, versions: &mut dyn Iterator<Item = &Version>) {
    put_bytes(out, key.ns_bytes());
    put_bytes(out, key.key_bytes());
    // The count, patched once the versions are written.
    let count_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut count = 0u16;
    for v in versions {
        count += 1;
        out.extend_from_slice(&v.version.to_le_bytes());
        out.extend_from_slice(&v.lsn.to_le_bytes());
        out.extend_from_slice(&v.commit_time_ms.to_le_bytes());
        match &v.value {
            Some(val) => {
                out.push(1);
                put_bytes(out, val);
            }
            None => out.push(0),
        }
    }
    if let Some(c) = out.get_mut(count_at..count_at + 2) {
        c.copy_from_slice(&count.to_le_bytes());
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Reads and fully verifies a checkpoint: its state, its metadata and its size in bytes.
pub(crate) fn read(storage: &dyn Storage, path: &Path) -> Result<(Map, CheckpointMeta, u64)> {
    let bad = |reason: &str| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let file = storage
        .open(path, OpenMode::Read)
        .map_err(|e| io("open", path, e))?;
    let len = file.len().map_err(|e| io("stat", path, e))?;
    let mut at = 0u64;
    let mut get = |n: usize| -> Result<Vec<u8>> {
        if at + n as u64 > len {
            return Err(bad("file ends early"));
        }
        let mut buf = vec![0u8; n];
        let mut done = 0;
        while done < n {
            let got = file
                .read_at(&mut buf[done..], at + done as u64)
                .map_err(|e| io("read", path, e))?;
            if got == 0 {
                return Err(bad("file ends early"));
            }
            done += got;
        }
        at += n as u64;
        Ok(buf)
    };
    let h = get(HEADER_BYTES)?;
    if h[..8] != MAGIC || crc32c::crc32c(&h[..60]).to_le_bytes() != h[60..64] {
        return Err(bad("bad header"));
    }
    if h[8..12] != VERSION.to_le_bytes() {
        return Err(Error::UnsupportedCheckpoint {
            path: path.to_path_buf(),
            version: u32::from_le_bytes(h[8..12].try_into().unwrap_or_default()),
        });
    }
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or_default());
    let meta = CheckpointMeta {
        checkpoint_lsn: u64_at(16),
        redo_start_lsn: u64_at(24),
        next_txn_id: u64_at(32),
    };
    let entries = u64_at(40);
    let mut map = Map::new();
    let mut block_crcs = Vec::new();
    loop {
        let head = get(8)?;
        let block_len = u32::from_le_bytes(head[..4].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap_or_default());
        if block_len == 0 {
            if crc != crc32c::crc32c(&block_crcs) {
                return Err(bad("end block checksum mismatch"));
            }
            break;
        }
        if block_len > BLOCK_BYTES_MAX {
            return Err(bad("block length out of range"));
        }
        let block = get(block_len as usize)?;
        if crc32c::crc32c(&block) != crc {
            return Err(bad("block checksum mismatch"));
        }
        block_crcs.extend_from_slice(&crc.to_le_bytes());
        decode_block(&block, &mut map).ok_or_else(|| bad("block does not decode"))?;
    }
    if map.len() as u64 != entries {
        return Err(bad("entry count mismatch"));
    }
    Ok((map, meta, len))
}

fn decode_block(block: &[u8], map: &mut Map) -> Option<()> {
    let mut r = Cursor { b: block, at: 0 };
    while r.at < block.len() {
        let ns: Bytes = r.bytes()?.into();
        let key: Bytes = r.bytes()?.into();
        let n = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        // Every entry has a current version; a count of 0 is not a state this writes.
        let mut older = Vec::with_capacity(usize::from(n.checked_sub(1)?));
        let mut current = None;
        for _ in 0..n {
            let version = r.u64()?;
            let lsn = r.u64()?;
            let commit_time_ms = r.u64()?;
            let value = match r.take(1)?.first()? {
                1 => Some(Bytes::from(r.bytes()?)),
                0 => None,
                _ => return None,
            };
            let v = Version {
                version,
                lsn,
                commit_time_ms,
                value,
            };
            older.extend(current.replace(v));
        }
        let chain = Chain::from_versions(older, current?)?;
        map.insert(EntryKey::new(ns, key), chain);
    }
    Some(())
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(n)
    }
}
