//! # walden-log: an embeddable write-ahead log, proven under simulated and real crashes
//!
//! A [`Wal`] is a directory of segment files holding records in LSN order. Appends return
//! the record's [`Lsn`]; with [`Durability::Sync`] the record is on stable storage when the
//! call returns, and concurrent durable appends share one `fdatasync` (group commit).
//! Recovery on open verifies every checksum and the chain that links frames and segments,
//! cuts a torn tail, and refuses to open when data that was acknowledged is damaged.
//!
//! ```
//! use walden_log::{Durability, Lsn, Options, Wal};
//! # fn main() -> walden_log::Result<()> {
//! # let tmp = tempfile::tempdir().map_err(|e| walden_log::Error::InvalidArgument(e.to_string()))?;
//! let wal = Wal::open(Options::new(tmp.path().join("wal")).segment_bytes(1 << 20))?;
//! let first = wal.append(b"task 17 assigned to agent-a")?;            // durable on return
//! wal.append_with(b"context: buffered", Durability::Buffered)?;       // in memory
//! wal.append_batch(&[b"debit".as_slice(), b"credit"], Durability::Sync)?; // all or nothing
//! let records: Vec<_> = wal.read_from(first)?.collect::<Result<_, _>>()?;
//! assert_eq!(records.len(), 4);
//! assert_eq!(records[0].data, b"task 17 assigned to agent-a");
//! assert_eq!(wal.durable_lsn(), Lsn(4));
//! # Ok(()) }
//! ```
//!
//! The layers, bottom up: [`storage`] (every file operation, real or simulated), `format`
//! (bytes on disk, see docs/FORMAT.md), `cursor` (verified frame reading), `recovery` (the
//! decision table), `prepare` (segments made ready off the writer's path), `append` and
//! `commit` (the write path), `reader`, and `truncate`.

mod append;
mod commit;
mod cursor;
mod error;
pub mod format;
mod inspect;
mod lsn;
mod options;
mod prepare;
mod reader;
mod recovery;
pub mod regroup;
mod stats;
pub mod storage;
mod sync_failure;
mod truncate;
pub mod waiters;
mod wal;
mod watch;

pub use error::{Error, Location, Result};
pub use inspect::{
    dump_records, inspect_dir, DamageKind, InspectedSegment, Inspection, RecordView,
};
pub use lsn::Lsn;
pub use options::{Durability, Options, Preallocation, RecoveryMode};
pub use reader::{LogReader, Record, TailReader};
pub use recovery::{Damage, RecoveryProgress};
pub use stats::StatsSnapshot;
pub use sync_failure::MARKER as SYNC_FAILED_MARKER;
pub use wal::{RecoveryReport, SegmentInfo, Wal};

/// The README's Rust example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctest;
