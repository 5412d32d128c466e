//! Publication of commits under concurrency, on the real file system with `Durability::Sync`:
//! one committer at a time publishes a snapshot for every commit made before it, so these
//! are the promises that scheme must keep, checked while many writers commit:
//!
//! - Only durable commits are visible: a reader never sees a visible LSN above the durable
//!   LSN read after it.
//! - States are published in LSN order: the visible LSN never goes back.
//! - Commits are visible atomically: a snapshot holds both keys of a transaction or neither.
//! - A commit is visible when it returns: its writer reads its own commit at once, and the
//!   visible LSN is at least its commit LSN.
//! - A commit made while a turn runs, which that turn's snapshot missed, is published by
//!   the next turn even when no other commit comes to start one (a sync held open by a
//!   gate makes the interleaving certain).
//! - A failed `fdatasync` while many commits wait for their turn: every waiter returns (none
//!   is left waiting for a turn that never runs), with an error unless its commit was
//!   published before the failure, and no failed commit ever becomes visible.
#![allow(clippy::unwrap_used)]

mod support;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;
use support::{open, sim_options, LOG_DIR};
use walden_log::storage::{SimStorage, StorageFile};
use walden_store::{Store, StoreOptions};
use walden_testkit::forwarding::{FileHooks, Forwarding};

/// File hooks whose syncs wait while the gate is closed, counting the waiters: the state
/// is (closed, syncs waiting).
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(bool, usize)>,
    opened: Condvar,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        self.state.lock().unwrap().0 = closed;
        self.opened.notify_all();
    }
    fn syncs_waiting(&self) -> usize {
        self.state.lock().unwrap().1
    }
}

impl FileHooks for Gate {
    fn sync_data(&self, file: &dyn StorageFile) -> io::Result<()> {
        let mut g = self.state.lock().unwrap();
        g.1 += 1;
        while g.0 {
            g = self.opened.wait(g).unwrap();
        }
        g.1 -= 1;
        drop(g);
        file.sync_data()
    }
}

const WRITERS: usize = 16;
const COMMITS: u64 = 60;

fn value_at(tx: &walden_store::Transaction<'_>, key: &[u8]) -> u64 {
    tx.get(b"pub", key)
        .map_or(0, |v| u64::from_le_bytes(v.value[..8].try_into().unwrap()))
}

#[test]
fn only_durable_commits_become_visible_whole_and_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(tmp.path()).checkpoints(0, None)).unwrap();
    let done = AtomicBool::new(false);
    let observations = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut last_visible = 0;
            let mut observations = 0u64;
            while !done.load(Ordering::Acquire) {
                let visible = store.status().visible_lsn.get();
                let durable = store.wal().durable_lsn().get();
                assert!(
                    visible <= durable,
                    "visible LSN {visible} is not durable (durable LSN {durable})"
                );
                assert!(
                    visible >= last_visible,
                    "the visible LSN went back from {last_visible} to {visible}"
                );
                last_visible = visible;
                let tx = store.begin();
                for w in 0..WRITERS {
                    let a = value_at(&tx, format!("{w}-a").as_bytes());
                    let b = value_at(&tx, format!("{w}-b").as_bytes());
                    assert_eq!(a, b, "writer {w}: half a transaction is visible");
                }
                observations += 1;
            }
            observations
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = &store;
                s.spawn(move || {
                    for i in 1..=COMMITS {
                        let mut tx = store.begin();
                        tx.put(b"pub", format!("{w}-a").as_bytes(), &i.to_le_bytes())
                            .unwrap();
                        tx.put(b"pub", format!("{w}-b").as_bytes(), &i.to_le_bytes())
                            .unwrap();
                        let info = tx.commit().unwrap();
                        assert!(
                            store.status().visible_lsn >= info.lsn,
                            "commit {} returned before it was visible",
                            info.lsn
                        );
                        assert!(store.wal().durable_lsn() >= info.lsn);
                        let seen = store.get(b"pub", format!("{w}-a").as_bytes()).unwrap();
                        assert_eq!(seen.value[..8], i.to_le_bytes(), "writer {w}, commit {i}");
                        assert_eq!(seen.lsn, info.lsn.get());
                    }
                })
            })
            .collect();
        for h in writers {
            h.join().unwrap();
        }
        done.store(true, Ordering::Release);
        reader.join().unwrap()
    });
    assert!(observations > 0, "the reader never ran");
    let tx = store.begin();
    for w in 0..WRITERS {
        assert_eq!(value_at(&tx, format!("{w}-a").as_bytes()), COMMITS);
    }
    drop(tx);
    let commits = WRITERS as u64 * COMMITS;
    let stats = store.wal().stats();
    println!(
        "{commits} commits by {WRITERS} writers, {} fsyncs, {observations} reader observations",
        stats.fsyncs
    );
}

#[test]
fn a_failed_sync_under_many_waiters_wakes_every_one_and_publishes_nothing_after() {
    const WRITERS: usize = 16;
    for fail_after in [1u64, 3, 10] {
        let sim = SimStorage::new(fail_after);
        // Segments large enough never to rotate here: the only syncs are group commits (a
        // failed sync while preparing a segment is the log's own business).
        let log = walden_log::Options::new(LOG_DIR)
            .segment_bytes(16 << 20)
            .prepare_in_background(false);
        let store = open(&sim, sim_options(1 << 20, 4).log(log)).unwrap();
        for i in 0..20u64 {
            store
                .put(b"pub", format!("warm-{i}").as_bytes(), b"v")
                .unwrap();
        }
        let (done_tx, done_rx) = mpsc::channel();
        let acked_total = AtomicU64::new(0);
        let outcomes = std::thread::scope(|s| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (store, acked_total) = (&store, &acked_total);
                    let done_tx = done_tx.clone();
                    s.spawn(move || {
                        let mut acked = Vec::new();
                        let mut failed = None;
                        // Bounded: the log fails well before (the main thread arms it).
                        for i in 0..5_000u64 {
                            let key = format!("{w}-{i}").into_bytes();
                            match store.put(b"pub", &key, b"v") {
                                Ok(info) => {
                                    acked.push((key, info.lsn));
                                    acked_total.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(_) => {
                                    failed = Some(key);
                                    break;
                                }
                            }
                        }
                        done_tx.send(()).unwrap();
                        (acked, failed)
                    })
                })
                .collect();
            // Every writer is committing by now, most of them waiting for a turn.
            while acked_total.load(Ordering::Relaxed) < 20 * WRITERS as u64 {
                std::thread::yield_now();
            }
            sim.fail_sync_after(fail_after);
            for _ in 0..WRITERS {
                done_rx
                    .recv_timeout(Duration::from_secs(60))
                    .expect("a committer never returned after the failed sync");
            }
            writers
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        let visible = store.status().visible_lsn;
        assert!(visible <= store.wal().durable_lsn());
        let mut failures = 0;
        for (acked, failed) in &outcomes {
            for (key, lsn) in acked {
                assert!(
                    *lsn <= visible,
                    "acknowledged {lsn} above the visible {visible}"
                );
                assert!(
                    store.get(b"pub", key).is_some(),
                    "an acknowledged commit is gone"
                );
            }
            if let Some(key) = failed {
                failures += 1;
                assert!(
                    store.get(b"pub", key).is_none(),
                    "a failed commit is visible"
                );
            }
        }
        assert_eq!(failures, WRITERS, "every writer ends on the poisoned log");
        assert!(store.put(b"pub", b"after", b"v").is_err());
    }
}

#[test]
fn a_commit_the_running_turn_missed_is_published_with_no_later_commit() {
    let gated = Forwarding::new(SimStorage::new(3), Gate::default());
    let store =
        Arc::new(Store::open_with(sim_options(1 << 20, 4), gated.shared(), &mut |_| {}).unwrap());
    store.put(b"pub", b"warm", b"v").unwrap();
    gated.hooks().set_closed(true);
    // Detached threads: if a commit is never published, the test fails on the timeout
    // below instead of hanging in a join.
    let (done_tx, done_rx) = mpsc::channel();
    let commit_in_thread = |key: &'static [u8]| {
        let (store, done_tx) = (store.clone(), done_tx.clone());
        std::thread::spawn(move || {
            store.put(b"pub", key, b"v").unwrap();
            done_tx.send(key).unwrap();
        })
    };
    // A commits and runs a turn, which waits in its sync at the closed gate.
    commit_in_thread(b"a");
    while gated.hooks().syncs_waiting() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // B commits now: A's turn has its snapshot, so B waits for the next turn.
    let appended = store.wal().next_lsn();
    commit_in_thread(b"b");
    while store.wal().next_lsn() == appended {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Time for B to go from applying its commit to waiting for its turn.
    std::thread::sleep(Duration::from_millis(200));
    gated.hooks().set_closed(false);
    let mut done: Vec<&[u8]> = (0..2)
        .map(|_| {
            done_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("a commit was never published")
        })
        .collect();
    done.sort_unstable();
    assert_eq!(done, [b"a", b"b"]);
    assert!(store.get(b"pub", b"b").is_some());
}
