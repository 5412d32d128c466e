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
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::{dir, open, restore, sim_options, snapshot, SMALL_SEGMENT_BYTES};
use walden_log::storage::{CrashDamage, DirLock, OpenMode, SimStorage, Storage, StorageFile};
use walden_log::{Durability, Wal};

/// A [`SimStorage`] whose files refuse every hint (and count the refusals).
#[derive(Debug, Clone)]
struct RefusesHints {
    sim: SimStorage,
    refused: Arc<AtomicU64>,
}

#[derive(Debug)]
struct RefusingFile {
    file: Arc<dyn StorageFile>,
    refused: Arc<AtomicU64>,
}

impl StorageFile for RefusingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)
    }
    fn advise_sequential(&self) -> io::Result<()> {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(io::Error::other("this storage refuses hints"))
    }
    fn prefetch(&self, _offset: u64, _len_bytes: u64) -> io::Result<()> {
        self.refused.fetch_add(1 << 32, Ordering::Relaxed);
        Err(io::Error::other("this storage refuses hints"))
    }
}

impl Storage for RefusesHints {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.sim.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.sim.list(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(RefusingFile {
            file: self.sim.open(path, mode)?,
            refused: self.refused.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.sim.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.sim.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sim.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        self.sim.lock_dir(dir)
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
        let refusing = RefusesHints {
            sim: restore(seed, &files),
            refused: Arc::new(AtomicU64::new(0)),
        };
        let wal = Wal::open_with(
            sim_options(SMALL_SEGMENT_BYTES),
            Arc::new(refusing.clone()) as Arc<dyn Storage>,
            &mut |_| {},
        )
        .unwrap();
        let refused = refusing.refused.load(Ordering::Relaxed);
        assert!(refused & 0xffff_ffff > 0, "seed {seed}: no sequential hint");
        assert!(refused >> 32 > 0, "seed {seed}: no read-ahead");
        assert_eq!(outcome(&wal), with_hints, "seed {seed}");
        // (File contents differ: a new segment gets a random salt.)
        assert_eq!(
            refusing.sim.file_names(&dir()),
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
