//! Recovery tells the storage it reads each segment front to back
//! (`StorageFile::advise_sequential`, `POSIX_FADV_SEQUENTIAL` on Linux) and asks for the
//! bytes ahead of the window it verifies, into the next segment's head
//! (`StorageFile::prefetch`, `POSIX_FADV_WILLNEED`), so the disk reads while the CRCs run
//! (docs/BENCHMARKS.md, W4 cold). The hints must reach every segment recovery verifies, and
//! must change nothing: not the records, not the cut, not the report, even when the storage
//! refuses them.
#![allow(clippy::unwrap_used)]

mod support;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use support::{dir, open, restore, sim_options, snapshot, SMALL_SEGMENT_BYTES};
use walden_log::storage::{CrashDamage, SimStorage, StorageFile};
use walden_log::{Durability, Wal};
use walden_testkit::forwarding::{FileHooks, Forwarding};

/// File hooks that refuse every hint, counting the refusals: sequential advice in the low
/// 32 bits, read-aheads in the high ones.
#[derive(Debug, Default)]
struct RefusesHints {
    refused: AtomicU64,
}

impl FileHooks for RefusesHints {
    fn advise_sequential(&self, _file: &dyn StorageFile) -> io::Result<()> {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(io::Error::other("this storage refuses hints"))
    }
    fn prefetch(&self, _file: &dyn StorageFile, _offset: u64, _len_bytes: u64) -> io::Result<()> {
        self.refused.fetch_add(1 << 32, Ordering::Relaxed);
        Err(io::Error::other("this storage refuses hints"))
    }
}

/// A log of several segments on `sim` whose last frames were written but not synced, then a
/// crash that garbles them: recovery has a torn tail to cut.
fn torn_log(sim: &SimStorage) -> u64 {
    // Buffered appends go to the storage at once (but unsynced) with a 1-byte buffer.
    let wal = open(sim, sim_options(SMALL_SEGMENT_BYTES).buffer_bytes(1)).unwrap();
    for i in 0..40u32 {
        let rec = vec![i as u8; 900 + (i as usize * 37) % 700];
        wal.append_with(&rec, Durability::Sync).unwrap();
    }
    for i in 0..6u32 {
        let rec = vec![0xa0 | i as u8; 1200];
        wal.append_with(&rec, Durability::Buffered).unwrap();
    }
    let segments = wal.segments().len() as u64;
    sim.crash(CrashDamage::RandomGarbled);
    // The process died with the crash: closing now fails on stale handles.
    drop(wal);
    segments
}

/// What a recovery decided, in comparable form.
fn outcome(wal: &Wal) -> (Vec<(u64, Vec<u8>)>, String, usize, u64) {
    let records = wal
        .read_from(wal.first_lsn())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.lsn.0, r.data)
        })
        .collect();
    let report = wal.recovery_report();
    (
        records,
        format!("{:?}", report.damage),
        report.segments,
        report.bytes_scanned,
    )
}

#[test]
fn recovery_advises_every_segment_it_verifies() {
    let sim = SimStorage::new(11);
    let segments = torn_log(&sim);
    assert!(segments >= 3, "the log must span segments, has {segments}");
    let before = sim.hint_counts();
    let wal = open(&sim, sim_options(SMALL_SEGMENT_BYTES)).unwrap();
    let after = sim.hint_counts();
    let (advised, prefetched) = (after.0 - before.0, after.1 - before.1);
    let verified = wal.recovery_report().segments as u64;
    assert!(
        advised >= verified,
        "{advised} sequential hints for {verified} verified segments"
    );
    // Small segments are read in one window each: the read-ahead goes to the next one's head.
    assert!(
        prefetched + 1 >= verified,
        "{prefetched} read-aheads for {verified} verified segments"
    );
    assert!(wal.recovery_report().bytes_scanned > 0);
}

#[test]
fn a_refused_hint_changes_no_recovery_outcome() {
    let mut cut = 0u32;
    for seed in 0..8u64 {
        let sim = SimStorage::new(100 + seed);
        torn_log(&sim);
        let files = snapshot(&sim);
        // The same crashed state, recovered once with hints taken and once with every hint
        // refused.
        let taking = restore(seed, &files);
        let with_hints = outcome(&open(&taking, sim_options(SMALL_SEGMENT_BYTES)).unwrap());
        let refusing = Forwarding::new(restore(seed, &files), RefusesHints::default());
        let wal = Wal::open_with(
            sim_options(SMALL_SEGMENT_BYTES),
            refusing.shared(),
            &mut |_| {},
        )
        .unwrap();
        let refused = refusing.hooks().refused.load(Ordering::Relaxed);
        assert!(refused & 0xffff_ffff > 0, "seed {seed}: no sequential hint");
        assert!(refused >> 32 > 0, "seed {seed}: no read-ahead");
        assert_eq!(outcome(&wal), with_hints, "seed {seed}");
        // (File contents differ: a new segment gets a random salt.)
        assert_eq!(
            refusing.inner().file_names(&dir()),
            taking.file_names(&dir()),
            "seed {seed}: the same files after both recoveries"
        );
        cut += u32::from(!with_hints.1.contains("None"));
    }
    assert!(
        cut > 0,
        "no seed left a torn tail to cut: the test checks too little"
    );
}
