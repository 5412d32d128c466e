//! Counters a user can read at any time. Updated with relaxed atomics on the hot path; the
//! fsync latency histogram is behind a mutex taken once per fsync.

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Live counters of one open log.
#[derive(Debug)]
pub(crate) struct Stats {
    pub records_appended: AtomicU64,
    pub bytes_appended: AtomicU64,
    pub frames_written: AtomicU64,
    pub fsyncs: AtomicU64,
    pub synced_records: AtomicU64,
    pub group_commits: AtomicU64,
    pub rotations: AtomicU64,
    pub segments_recycled: AtomicU64,
    pub segments_created: AtomicU64,
    pub segments_reserved: AtomicU64,
    pub segments_released: AtomicU64,
    fsync_micros: Mutex<Histogram<u64>>,
    group_sizes: Mutex<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            records_appended: AtomicU64::new(0),
            bytes_appended: AtomicU64::new(0),
            frames_written: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            synced_records: AtomicU64::new(0),
            group_commits: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            segments_recycled: AtomicU64::new(0),
            segments_created: AtomicU64::new(0),
            segments_reserved: AtomicU64::new(0),
            segments_released: AtomicU64::new(0),
            fsync_micros: Mutex::new(new_histogram()),
            group_sizes: Mutex::new(new_histogram()),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 3 significant digits from 1 to 2^40: bounds hdrhistogram accepts by construction.
    #[expect(clippy::expect_used, reason = "constant, valid bounds")]
    Histogram::new_with_bounds(1, 1 << 40, 3).expect("valid histogram bounds")
}

impl Stats {
    pub fn record_fsync(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Relaxed);
        let micros = (took.as_micros() as u64).max(1);
        let mut h = self.fsync_micros.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(micros);
    }

    pub fn record_group_commit(&self, records: u64) {
        self.group_commits.fetch_add(1, Relaxed);
        self.synced_records.fetch_add(records, Relaxed);
        let mut h = self.group_sizes.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(records.max(1));
    }

    pub fn snapshot(&self, live_segments: usize, spare_segments: usize) -> StatsSnapshot {
        let fsync = self
            .fsync_micros
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let groups = self
            .group_sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        StatsSnapshot {
            records_appended: self.records_appended.load(Relaxed),
            bytes_appended: self.bytes_appended.load(Relaxed),
            frames_written: self.frames_written.load(Relaxed),
            fsyncs: self.fsyncs.load(Relaxed),
            group_commits: self.group_commits.load(Relaxed),
            synced_records: self.synced_records.load(Relaxed),
            rotations: self.rotations.load(Relaxed),
            segments_live: live_segments,
            segments_spare: spare_segments,
            segments_created: self.segments_created.load(Relaxed),
            segments_reserved: self.segments_reserved.load(Relaxed),
            segments_recycled: self.segments_recycled.load(Relaxed),
            segments_released: self.segments_released.load(Relaxed),
            fsync_latency_micros: fsync,
            records_per_group_commit: groups,
        }
    }
}

/// A copy of a log's counters at one moment. See [`crate::Wal::stats`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Records appended since open (each record of a batch counts).
    pub records_appended: u64,
    /// Record payload bytes appended since open.
    pub bytes_appended: u64,
    /// Frames written (a batch is one frame).
    pub frames_written: u64,
    /// `fdatasync` calls on segment files.
    pub fsyncs: u64,
    /// Group commits: syncs made on behalf of waiting appenders.
    pub group_commits: u64,
    /// Records made durable by group commits.
    pub synced_records: u64,
    /// Segment rotations.
    pub rotations: u64,
    /// Segments holding live records now.
    pub segments_live: usize,
    /// Prepared or released segments ready for reuse now.
    pub segments_spare: usize,
    /// Segment files created since open (zero-filled or reserved).
    pub segments_created: u64,
    /// Of `segments_created`, those not zero-filled whole: reserved
    /// ([`crate::Preallocation::Reserve`], or `Adaptive` when the writer outran the
    /// zero-fill), their blocks written by the appends themselves.
    pub segments_reserved: u64,
    /// Released segment files reused since open.
    pub segments_recycled: u64,
    /// Segments released by `truncate_before`/`truncate_after` since open.
    pub segments_released: u64,
    /// Latency of each `fdatasync`, in microseconds.
    pub fsync_latency_micros: Histogram<u64>,
    /// Records made durable by each group commit.
    pub records_per_group_commit: Histogram<u64>,
}

impl StatsSnapshot {
    /// Mean records per group commit (0 when none happened).
    pub fn mean_records_per_group_commit(&self) -> f64 {
        if self.group_commits == 0 {
            0.0
        } else {
            self.synced_records as f64 / self.group_commits as f64
        }
    }
}
