//! The change feed yields committed transactions in commit order, resumable by LSN, and
//! never an aborted or uncommitted one.
#![allow(clippy::unwrap_used)]

use std::time::Duration;
use walden_log::Lsn;
use walden_store::{Store, StoreOptions};

#[test]
fn feed_is_ordered_resumable_and_skips_aborts() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = || {
        StoreOptions::new(tmp.path())
            .checkpoints(0, None)
            .spill_bytes(64)
    };
    let first_commit;
    {
        let store = Store::open(opts()).unwrap();
        let mut feed = store.changes(Lsn(1)).unwrap();
        first_commit = store.put(b"ns", b"a", b"1").unwrap().lsn;
        let mut aborted = store.begin();
        aborted.put(b"ns", b"zz", &[9u8; 200]).unwrap(); // spills, then aborts
        aborted.abort();
        let mut big = store.begin();
        for i in 0..10u8 {
            big.put(b"ns", &[b'k', i], &[i; 100]).unwrap(); // spills several times
        }
        let big_lsn = big.commit().unwrap().lsn;
        store.delete(b"ns", b"a").unwrap();

        let t1 = feed.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(t1.lsn, first_commit);
        assert_eq!(t1.changes.len(), 1);
        let t2 = feed.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(t2.lsn, big_lsn);
        assert_eq!(
            t2.changes.len(),
            10,
            "all spilled writes arrive with their commit"
        );
        let t3 = feed.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(t3.changes[0].value, None, "a delete");
        assert!(feed
            .next_timeout(Duration::from_millis(50))
            .unwrap()
            .is_none());
        store.close().unwrap();
    }
    // Resume after a restart from just past the first commit: the big transaction spilled
    // before that point, and still arrives whole.
    let store = Store::open(opts()).unwrap();
    let mut feed = store.changes(first_commit.next()).unwrap();
    let t = feed.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(t.changes.len(), 10);
}

#[test]
fn a_feed_starting_exactly_at_a_commit_lsn_gets_that_commit_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(tmp.path()).checkpoints(0, None)).unwrap();
    store.put(b"ns", b"a", b"1").unwrap();
    let mut tx = store.begin();
    tx.put(b"ns", b"b", b"2").unwrap();
    tx.put(b"ns", b"c", b"3").unwrap();
    let lsn = tx.commit().unwrap().lsn;
    let mut feed = store.changes(lsn).unwrap();
    let t = feed.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(t.lsn, lsn);
    assert_eq!(
        t.changes.len(),
        2,
        "the writes logged just before the commit record"
    );
    assert!(feed
        .next_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());
}
