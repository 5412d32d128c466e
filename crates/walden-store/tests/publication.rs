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
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use walden_store::{Store, StoreOptions};

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
