//! Options chosen when a log is opened.

use crate::error::{Error, Result};
use crate::format::{self, DATA_OFFSET, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX};
use std::path::PathBuf;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Returns once the record is in the log's memory buffer. It reaches the operating system
    /// when the buffer fills, at the next sync of any caller, or at `close`; until then a
    /// process crash loses it. Readers see it only once it is durable.
    Buffered,
    /// Returns once the record, and every record before it, is on stable storage
    /// (`fdatasync` returned). Survives process crash, kernel crash and power loss.
    /// Concurrent callers share one `fdatasync` (group commit).
    #[default]
    Sync,
}

/// What recovery does when it finds damage. See docs/DURABILITY.md for the decision table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Any damage, even a torn tail, refuses to open. For logs closed cleanly.
    AbsoluteConsistency,
    /// Cut a torn tail (damage after which nothing proves a later record was synced); refuse
    /// on damage to data that a later frame proves was durable. The default.
    #[default]
    TolerateTornTail,
    /// Stop at the first damage and cut everything after it, whatever it is. Opens any log
    /// whose beginning is sound, possibly losing acknowledged records after the damage.
    PointInTime,
    /// Skip damaged frames and keep every valid frame after them; the log then has holes
    /// (LSNs that read as missing). For salvage.
    SkipCorrupt,
}

/// How the segment preparer makes a new segment file (a released file is reused as it is).
///
/// The choice trades the cost of preparing a segment against the cost of every durable
/// append into it. Measured on ext4 here (fdatasync after each append, 64 MiB segments):
/// 4 KiB appends cost ~90 us into written blocks and ~130 us into reserved ones; 128 B
/// appends ~90 us either way (most land in a block an earlier append already wrote).
/// Zero-filling a segment writes (and syncs) 64 MiB more.
///
/// Only [`Preallocation::ZeroFill`], the default, keeps the durability contract when the file
/// system's journal aborts under a running writer. The other two leave blocks unwritten
/// (`fallocate`), so each first append into them needs an extent conversion at I/O
/// completion; ext4 drops a conversion that fails because the journal aborted without
/// reporting it, and an `fdatasync` in flight then returns success for a record that reads
/// back as zeros after remount. Seen in `tests/real_kernel.rs` (`xfs_io -x -c shutdown`
/// while the writer ran: 6 of 56 runs lost 1 to 3 acknowledged records, always in an
/// unwritten extent, never in a zero-filled segment). A real power cut stops the writer too,
/// so it cannot observe that success; a journal abort on an I/O error can. Use `Reserve` or
/// `Adaptive` only for logs whose acknowledgements you can afford to lose that way (bulk
/// loads you would redo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preallocation {
    /// Write zeros over the whole file and sync them before the writer gets it
    /// (`FALLOC_FL_WRITE_ZEROES` where the kernel and device support it, else `O_DIRECT`
    /// writes of zeros, else buffered 1 MiB writes):
    /// a durable append then overwrites written blocks and its `fdatasync` writes data only.
    /// Costs writing every segment twice; a writer faster than the disk waits for zeros.
    /// The default: the only way whose acknowledgements survive a journal abort.
    #[default]
    ZeroFill,
    /// Reserve the blocks without writing them (`fallocate`: unwritten extents on ext4 and
    /// XFS; `set_len` where it is not supported): costs no data writes, but each `fdatasync`
    /// after writing into blocks not written before also commits their metadata.
    Reserve,
    /// Zero-fill while the preparer keeps ahead of the writer; reserve when the writer
    /// takes segments faster than they can be zero-filled (buffered bulk ingest), so that
    /// it never waits for zeros and the disk writes each byte once. A zero-fill under way
    /// when the writer starts waiting is cut short: what was synced stays written, the rest
    /// is reserved. The first segment after open is zero-filled (nothing is known of the
    /// writer's pace yet). With [`Options::prepare_in_background`] off, always zero-fills.
    /// See the warning above: reserved segments are exposed to a journal abort.
    Adaptive,
}

/// How to open a log. Build with [`Options::new`] and the setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The log's directory (created if missing).
    pub dir: PathBuf,
    /// Size of each segment file in bytes (default 64 MiB).
    pub segment_bytes: u64,
    /// Durability of [`crate::Wal::append`] (default [`Durability::Sync`]).
    pub durability: Durability,
    /// What recovery does on damage (default [`RecoveryMode::TolerateTornTail`]).
    pub recovery: RecoveryMode,
    /// Largest record (or batch payload) accepted, in bytes (default 16 MiB).
    pub record_bytes_max: u32,
    /// How many released segments are kept for reuse instead of deleted (default 2).
    pub recycle_segments_max: usize,
    /// Prepare the next segment on a background thread (default true). When false, the
    /// writer prepares it at rotation time: deterministic, used by the crash simulator.
    pub prepare_in_background: bool,
    /// Buffered appends are written to the OS once this many bytes are pending (default 1 MiB).
    pub buffer_bytes: usize,
    /// Group commit regrouping (default true): a new group-commit leader first waits, at
    /// most one recent fdatasync, for the writers the previous group just released, so
    /// concurrent durable writers share one sync instead of alternating between two half
    /// groups. A lone writer never waits. Turn it off to sync at once, always (lowest latency
    /// for writers that do not come straight back). See docs/DURABILITY.md.
    pub regroup: bool,
    /// How new segment files are made (default [`Preallocation::ZeroFill`]).
    pub preallocation: Preallocation,
}

impl Options {
    /// Defaults for a log in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Options {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            durability: Durability::Sync,
            recovery: RecoveryMode::TolerateTornTail,
            record_bytes_max: 16 << 20,
            recycle_segments_max: 2,
            prepare_in_background: true,
            buffer_bytes: 1 << 20,
            regroup: true,
            preallocation: Preallocation::ZeroFill,
        }
    }

    /// Sets [`Options::segment_bytes`].
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets [`Options::durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`Options::recovery`].
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// Sets [`Options::record_bytes_max`].
    pub fn record_bytes_max(mut self, bytes: u32) -> Self {
        self.record_bytes_max = bytes;
        self
    }

    /// Sets [`Options::recycle_segments_max`].
    pub fn recycle_segments_max(mut self, count: usize) -> Self {
        self.recycle_segments_max = count;
        self
    }

    /// Sets [`Options::prepare_in_background`].
    pub fn prepare_in_background(mut self, yes: bool) -> Self {
        self.prepare_in_background = yes;
        self
    }

    /// Sets [`Options::regroup`].
    pub fn regroup(mut self, yes: bool) -> Self {
        self.regroup = yes;
        self
    }

    /// Sets [`Options::buffer_bytes`].
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Sets [`Options::preallocation`].
    pub fn preallocation(mut self, how: Preallocation) -> Self {
        self.preallocation = how;
        self
    }

    /// The largest frame payload a segment of this size can hold.
    pub(crate) fn frame_payload_max(&self) -> u64 {
        let room = self
            .segment_bytes
            .saturating_sub(DATA_OFFSET + FRAME_HEADER_BYTES as u64);
        room.min(u64::from(self.record_bytes_max))
            .min(u64::from(FRAME_PAYLOAD_BYTES_MAX))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(format::SEGMENT_BYTES_MIN..=format::SEGMENT_BYTES_MAX).contains(&self.segment_bytes)
            || !self.segment_bytes.is_multiple_of(format::FRAME_ALIGN_BYTES)
        {
            return Err(Error::InvalidArgument(format!(
                "segment_bytes {} must be a multiple of 8 within {}..={}",
                self.segment_bytes,
                format::SEGMENT_BYTES_MIN,
                format::SEGMENT_BYTES_MAX
            )));
        }
        if self.record_bytes_max == 0 || self.record_bytes_max > FRAME_PAYLOAD_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "record_bytes_max {} must be within 1..={FRAME_PAYLOAD_BYTES_MAX}",
                self.record_bytes_max
            )));
        }
        Ok(())
    }
}
