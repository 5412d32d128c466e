//! Deferred commits (`Transaction::commit_deferred`, `PendingCommit::durable`, `Store::sync`):
//! the same contract as a blocking commit, with the wait moved off the thread.
//! - Nothing is visible, and `durable` does not complete, before someone syncs; the wait
//!   itself never syncs.
//! - Many pending commits complete with one shared sync, then are visible with their
//!   versions.
//! - A pending commit dropped unanswered becomes durable and visible with the next sync.
//! - Refused commits (preconditions) fail at `commit_deferred` and log nothing.
//! - A failed fsync fails the waits: nothing is acknowledged or visible.
//! - After a power cut, every commit whose `durable` answered `Ok` is there.
#![allow(clippy::unwrap_used)]

mod support;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use support::{open, sim_options};
use walden_log::storage::{CrashDamage, SimStorage};
use walden_store::{Error, Precondition, Store, StoreOptions};
use walden_testkit::exec::block_on;

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = Waker::noop();
    std::pin::Pin::new(f).poll(&mut Context::from_waker(waker))
}

fn store_in(dir: &std::path::Path) -> Store {
    Store::open(StoreOptions::new(dir).checkpoints(0, None)).unwrap()
}

#[test]
fn a_deferred_commit_is_invisible_and_unacknowledged_until_someone_syncs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let fsyncs_before = store.wal().stats().fsyncs;
    let mut tx = store.begin();
    tx.put(b"ns", b"k", b"v1").unwrap();
    let pending = tx.commit_deferred().unwrap();
    let lsn = pending.lsn();
    assert!(store.wal().durable_lsn() < lsn, "durable before any sync");
    assert!(store.get(b"ns", b"k").is_none(), "visible before durable");
    let mut waiting = Box::pin(pending.durable());
    for _ in 0..3 {
        assert!(
            poll_once(&mut waiting).is_pending(),
            "answered before a sync"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(store.wal().stats().fsyncs, fsyncs_before, "waiting synced");
    assert!(store.get(b"ns", b"k").is_none(), "visible before durable");
    let synced = store.sync().unwrap();
    assert!(synced >= lsn);
    let info = block_on(waiting).unwrap();
    assert_eq!(info.lsn, lsn);
    assert_eq!(info.versions.len(), 1);
    assert_eq!(info.versions[0].2, 1);
    let got = store.get(b"ns", b"k").unwrap();
    assert_eq!(&*got.value, b"v1");
    assert_eq!(got.lsn, lsn.get());
}

#[test]
fn pending_commits_complete_together_on_one_sync_from_another_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(store_in(tmp.path()));
    let fsyncs_before = store.wal().stats().fsyncs;
    let mut pendings = Vec::new();
    for i in 0..50u32 {
        let mut tx = store.begin();
        tx.put(b"ns", &i.to_be_bytes(), &[7; 100]).unwrap();
        pendings.push(tx.commit_deferred().unwrap());
    }
    let lsns: Vec<_> = pendings.iter().map(|p| p.lsn()).collect();
    assert!(
        lsns.windows(2).all(|w| w[0] < w[1]),
        "commit order: {lsns:?}"
    );
    let syncer = {
        let store = store.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            store.sync().unwrap()
        })
    };
    for (i, p) in pendings.into_iter().enumerate() {
        let info = block_on(p.durable()).unwrap();
        assert_eq!(info.lsn, lsns[i]);
    }
    assert!(syncer.join().unwrap() >= lsns[49]);
    assert_eq!(
        store.wal().stats().fsyncs - fsyncs_before,
        1,
        "50 commits, one shared fdatasync"
    );
    for i in 0..50u32 {
        assert_eq!(store.get(b"ns", &i.to_be_bytes()).unwrap().version, 1);
    }
}

#[test]
fn an_abandoned_pending_commit_becomes_visible_with_the_next_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let mut tx = store.begin();
    tx.put(b"ns", b"k", b"dropped").unwrap();
    let lsn = tx.commit_deferred().unwrap().lsn();
    assert!(store.get(b"ns", b"k").is_none());
    assert!(store.sync().unwrap() >= lsn);
    let got = store.get(b"ns", b"k").unwrap();
    assert_eq!(&*got.value, b"dropped");
    assert_eq!(got.lsn, lsn.get());
    // A blocking commit after it sees it too (no conflict: it is the latest state).
    store
        .put_if(b"ns", b"k", b"next", Precondition::Version(1))
        .unwrap();
}

#[test]
fn wait_is_the_blocking_form_and_syncs_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let mut tx = store.begin();
    tx.put(b"ns", b"k", b"v").unwrap();
    let pending = tx.commit_deferred().unwrap();
    let lsn = pending.lsn();
    let info = pending.wait().unwrap();
    assert_eq!(info.lsn, lsn);
    assert!(store.wal().durable_lsn() >= lsn);
    assert_eq!(&*store.get(b"ns", b"k").unwrap().value, b"v");
}

#[test]
fn a_refused_deferred_commit_fails_at_once_and_logs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    store.put(b"ns", b"k", b"taken").unwrap();
    let next_before = store.wal().next_lsn();
    let mut tx = store.begin();
    tx.require(b"ns", b"k", Precondition::Absent).unwrap();
    tx.put(b"ns", b"k", b"mine").unwrap();
    let err = tx.commit_deferred().unwrap_err();
    assert!(matches!(err, Error::PreconditionFailed { .. }), "{err}");
    assert_eq!(
        store.wal().next_lsn(),
        next_before,
        "a refused commit logged"
    );
    assert_eq!(&*store.get(b"ns", b"k").unwrap().value, b"taken");
}

#[test]
fn a_failed_fsync_fails_the_pending_commits_and_shows_nothing() {
    let sim = SimStorage::new(11);
    let store = open(&sim, sim_options(1 << 20, 4)).unwrap();
    store.put(b"ns", b"before", b"ok").unwrap();
    let mut pendings = Vec::new();
    for k in [b"a", b"b"] {
        let mut tx = store.begin();
        tx.put(b"ns", k, b"lost").unwrap();
        pendings.push(tx.commit_deferred().unwrap());
    }
    sim.fail_sync_after(1);
    assert!(store.sync().is_err(), "the sync must fail");
    for p in pendings {
        let err = block_on(p.durable()).unwrap_err();
        assert!(matches!(err, Error::Log(_) | Error::Poisoned(_)), "{err}");
    }
    assert!(
        store.get(b"ns", b"a").is_none(),
        "a failed commit is visible"
    );
    assert!(
        store.get(b"ns", b"b").is_none(),
        "a failed commit is visible"
    );
    assert_eq!(&*store.get(b"ns", b"before").unwrap().value, b"ok");
}

#[test]
fn every_acknowledged_deferred_commit_survives_a_power_cut() {
    for damage in CrashDamage::ALL {
        let sim = SimStorage::new(23);
        let options = sim_options(1 << 20, 4);
        let store = Arc::new(open(&sim, options.clone()).unwrap());
        let mut acknowledged = Vec::new();
        let mut syncers = Vec::new();
        for round in 0..20u32 {
            let mut pendings = Vec::new();
            for i in 0..5u32 {
                let key = (round * 5 + i).to_be_bytes();
                let mut tx = store.begin();
                tx.put(b"ns", &key, &round.to_le_bytes()).unwrap();
                pendings.push((key, tx.commit_deferred().unwrap()));
            }
            // Every other round is synced by another thread, a little later; the rest are
            // never waited for: not acknowledged, they may be lost.
            if round % 2 == 0 {
                syncers.push({
                    let store = store.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(2));
                        store.sync()
                    })
                });
                for (key, p) in pendings {
                    let info = block_on(p.durable()).unwrap();
                    acknowledged.push((key, info.lsn));
                }
            }
        }
        // The power fails right after the last acknowledgement, before anything else.
        sim.crash(damage);
        for s in syncers {
            let _ = s.join().unwrap();
        }
        drop(store);
        let store = open(&sim, options).unwrap();
        for (key, lsn) in &acknowledged {
            let got = store.get(b"ns", key);
            assert_eq!(
                got.map(|v| v.lsn),
                Some(lsn.get()),
                "{damage:?}: acknowledged commit of key {key:?} lost"
            );
        }
    }
}
