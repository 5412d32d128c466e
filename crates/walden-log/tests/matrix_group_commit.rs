//! Group commit under concurrency: 16 threads each make 300 durable appends, on the real file
//! system and on `SimStorage`. Every acknowledged LSN is unique, all of them together are
//! dense, each is durable when its append returns, each thread sees its own LSNs increase,
//! every record reads back with its bytes after reopening, and appenders share fsyncs.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use std::io;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use walden_log::storage::{CrashDamage, SimStorage, Storage, StorageFile};
use walden_log::{Durability, Lsn, Options, StatsSnapshot, Wal};
use walden_testkit::forwarding::{FileHooks, Forwarding};

const THREADS: usize = 16;
const PER_THREAD: usize = 300;
const TOTAL: usize = THREADS * PER_THREAD;

fn record(thread: usize, i: usize) -> Vec<u8> {
    let mut r = format!("thread {thread:02} record {i:04} ").into_bytes();
    r.extend(std::iter::repeat_n(
        b'a' + (thread % 26) as u8,
        (thread * 7 + i) % 50,
    ));
    r
}

/// Runs the stress on an open log; returns every (lsn, bytes) acknowledged, sorted by LSN,
/// and the log's counters.
fn stress(wal: Wal) -> (Vec<(u64, Vec<u8>)>, StatsSnapshot) {
    let wal = Arc::new(wal);
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = wal.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let mut mine = Vec::with_capacity(PER_THREAD);
                for i in 0..PER_THREAD {
                    let data = record(t, i);
                    let lsn = wal.append_with(&data, Durability::Sync).unwrap();
                    assert!(
                        wal.durable_lsn() >= lsn,
                        "LSN {lsn} acknowledged before it was durable"
                    );
                    if let Some((prev, _)) = mine.last() {
                        assert!(lsn.0 > *prev, "a thread's LSNs increase");
                    }
                    mine.push((lsn.0, data));
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<(u64, Vec<u8>)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_by_key(|r| r.0);
    let stats = wal.stats();
    Arc::try_unwrap(wal).unwrap().close().unwrap();
    (all, stats)
}

fn check(all: &[(u64, Vec<u8>)], stats: &StatsSnapshot, reopened: &Wal) {
    let lsns: Vec<u64> = all.iter().map(|r| r.0).collect();
    assert_eq!(
        lsns,
        (1..=TOTAL as u64).collect::<Vec<_>>(),
        "unique and dense"
    );
    assert_eq!(stats.records_appended, TOTAL as u64);
    assert!(stats.fsyncs > 0);
    assert!(stats.rotations > 0, "the stress crosses segment rotations");
    assert_eq!(reopened.recovery_report().damage, None);
    assert_eq!(reopened.next_lsn(), Lsn(TOTAL as u64 + 1));
    assert!(
        read_all(reopened) == all,
        "every record reads back with its bytes"
    );
}

#[test]
fn group_commit_stress_real_fs() {
    let tmp = tempfile::tempdir().unwrap();
    let options = Options::new(tmp.path().join("wal")).segment_bytes(64 << 10);
    let (all, stats) = stress(Wal::open(options.clone()).unwrap());
    let reopened = Wal::open(options).unwrap();
    check(&all, &stats, &reopened);
    assert!(
        stats.fsyncs < TOTAL as u64,
        "{} fsyncs for {TOTAL} durable appends: no group commit",
        stats.fsyncs
    );
    eprintln!(
        "real fs: {} fsyncs, {} group commits, {:.2} records per group commit",
        stats.fsyncs,
        stats.group_commits,
        stats.mean_records_per_group_commit()
    );
}

/// File hooks that make `sync_data` take as long as a fast real disk's (100 µs): the plain
/// simulator syncs in nanoseconds, so a leader is done before other appenders queue up and
/// batching there is a matter of scheduling luck.
#[derive(Debug)]
struct SlowSync;

impl FileHooks for SlowSync {
    fn sync_data(&self, file: &dyn StorageFile) -> io::Result<()> {
        std::thread::sleep(Duration::from_micros(100));
        file.sync_data()
    }
}

fn stress_sim(storage: Arc<dyn Storage>, sim: &SimStorage) -> StatsSnapshot {
    stress_sim_with(storage, sim, true)
}

fn stress_sim_with(storage: Arc<dyn Storage>, sim: &SimStorage, regroup: bool) -> StatsSnapshot {
    let options = Options::new(DIR)
        .segment_bytes(SMALL_SEGMENT_BYTES * 4)
        .regroup(regroup);
    let (all, stats) =
        stress(Wal::open_with(options.clone(), storage.clone(), &mut |_| {}).unwrap());
    // A power loss right after: every acknowledged record was durable.
    sim.crash(CrashDamage::DropAll);
    let reopened = Wal::open_with(options, storage, &mut |_| {}).unwrap();
    check(&all, &stats, &reopened);
    stats
}

/// The plain simulator: everything above holds; batching is not guaranteed (a sync costs
/// nanoseconds), so only what is: one group commit per sync round, never more fsyncs than
/// appends plus rotations (a group that spans a rotation syncs both files).
#[test]
fn group_commit_stress_sim() {
    let sim = SimStorage::new(42);
    let stats = stress_sim(Arc::new(sim.clone()), &sim);
    assert_eq!(
        stats.synced_records, TOTAL as u64,
        "every record made durable by exactly one group commit"
    );
    assert!(stats.group_commits <= TOTAL as u64);
    assert!(stats.fsyncs <= TOTAL as u64 + stats.rotations);
    eprintln!(
        "sim: {} fsyncs, {} group commits, {:.2} records per group commit",
        stats.fsyncs,
        stats.group_commits,
        stats.mean_records_per_group_commit()
    );
}

/// The simulator with a real disk's fsync latency: appenders queue behind the leader and
/// share its next sync.
#[test]
fn group_commit_stress_sim_with_fsync_latency() {
    let sim = SimStorage::new(43);
    let stats = stress_sim(Forwarding::new(sim.clone(), SlowSync).shared(), &sim);
    assert_eq!(stats.synced_records, TOTAL as u64);
    assert!(
        stats.mean_records_per_group_commit() > 2.0,
        "concurrent durable appends share group commits: {:.2} records per group commit",
        stats.mean_records_per_group_commit()
    );
    eprintln!(
        "sim with 100 µs fsync: {} fsyncs, {} group commits, {:.2} records per group commit",
        stats.fsyncs,
        stats.group_commits,
        stats.mean_records_per_group_commit()
    );
}

/// The same with regrouping off (`Options::regroup(false)`): the leader syncs at once, the
/// path every group took before regrouping existed; it must keep every guarantee too.
#[test]
fn group_commit_stress_sim_with_fsync_latency_regroup_off() {
    let sim = SimStorage::new(44);
    let stats = stress_sim_with(Forwarding::new(sim.clone(), SlowSync).shared(), &sim, false);
    assert_eq!(stats.synced_records, TOTAL as u64);
    assert!(stats.mean_records_per_group_commit() > 1.0);
    eprintln!(
        "sim with 100 µs fsync, regroup off: {} fsyncs, {} group commits, {:.2} records per \
         group commit",
        stats.fsyncs,
        stats.group_commits,
        stats.mean_records_per_group_commit()
    );
}
