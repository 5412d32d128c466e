//! Transactions: read-your-writes, atomic commit, snapshot isolation, preconditions.
#![allow(clippy::unwrap_used)]

use walden_store::{Error, Precondition, Scan, Store, StoreOptions};

fn open(dir: &std::path::Path) -> Store {
    Store::open(StoreOptions::new(dir).checkpoints(0, None)).unwrap()
}

#[test]
fn a_transaction_sees_its_own_writes_and_commits_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut tx = store.begin();
    tx.put(b"conv", b"m1", b"hello").unwrap();
    tx.put(b"conv", b"m2", b"world").unwrap();
    assert_eq!(&*tx.get(b"conv", b"m1").unwrap().value, b"hello");
    assert!(
        store.get(b"conv", b"m1").is_none(),
        "not visible before commit"
    );
    let info = tx.commit().unwrap();
    assert_eq!(info.versions.len(), 2);
    assert_eq!(store.get(b"conv", b"m2").unwrap().lsn, info.lsn.get());
    let rows = store.scan(b"conv", &Scan::default());
    assert_eq!(
        rows.iter().map(|(k, _)| k.to_vec()).collect::<Vec<_>>(),
        vec![b"m1".to_vec(), b"m2".to_vec()]
    );
}

#[test]
fn first_committer_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store.put(b"ns", b"k", b"0").unwrap();
    let mut a = store.begin();
    let mut b = store.begin();
    // Read-modify-write in both: the second to commit would lose the first's update.
    for tx in [&mut a, &mut b] {
        let seen = tx.get(b"ns", b"k").unwrap().value;
        tx.put(b"ns", b"k", &[&*seen, b"+"].concat()).unwrap();
    }
    a.commit().unwrap();
    assert!(matches!(b.commit(), Err(Error::Conflict { .. })));
    assert_eq!(&*store.get(b"ns", b"k").unwrap().value, b"0+");
}

/// A scan is a read too: a transaction that scanned, then wrote a key someone else committed
/// meanwhile, conflicts.
#[test]
fn a_scan_counts_as_a_read_for_conflicts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut a = store.begin();
    assert!(a.scan(b"ns", &Scan::default()).is_empty());
    a.put(b"ns", b"k", b"a").unwrap();
    store.put(b"ns", b"k", b"other").unwrap();
    assert!(matches!(a.commit(), Err(Error::Conflict { .. })));
}

/// A transaction that reads nothing from its snapshot (reading back its own writes does not
/// count) is not checked for conflicts: it commits on top of whatever committed since it
/// began, as if it had begun at its commit. Preconditions still fence.
#[test]
fn write_only_transactions_commit_in_commit_order_without_conflicts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store.put(b"ns", b"k", b"0").unwrap();
    let mut a = store.begin();
    let mut b = store.begin();
    a.put(b"ns", b"k", b"a").unwrap();
    b.put(b"ns", b"k", b"b").unwrap();
    assert_eq!(&*b.get(b"ns", b"k").unwrap().value, b"b", "its own write");
    let a = a.commit().unwrap();
    let b = b.commit().unwrap();
    assert_eq!(a.versions[0].2, 2);
    assert_eq!(b.versions[0].2, 3, "on top of a's version");
    assert!(b.lsn > a.lsn);
    assert_eq!(&*store.get(b"ns", b"k").unwrap().value, b"b");
    // A precondition is still checked against the latest state at commit.
    let mut c = store.begin();
    c.require(b"ns", b"k", Precondition::Version(2)).unwrap();
    c.put(b"ns", b"k", b"c").unwrap();
    assert!(matches!(
        c.commit(),
        Err(Error::PreconditionFailed { current: 3, .. })
    ));
}

#[test]
fn preconditions_fence_writers_and_tombstones_keep_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let v1 = store
        .put_if(b"ns", b"k", b"x", Precondition::Absent)
        .unwrap()
        .versions[0]
        .2;
    assert_eq!(v1, 1);
    let err = store
        .put_if(b"ns", b"k", b"y", Precondition::Absent)
        .unwrap_err();
    assert!(matches!(err, Error::PreconditionFailed { current: 1, .. }));
    store.delete(b"ns", b"k").unwrap();
    assert!(store.get(b"ns", b"k").is_none());
    assert_eq!(store.version(b"ns", b"k"), 2);
    // A late write based on the version read before the delete is refused.
    assert!(store
        .put_if(b"ns", b"k", b"late", Precondition::Version(1))
        .is_err());
    assert_eq!(
        store
            .put_if(b"ns", b"k", b"new", Precondition::Version(2))
            .unwrap()
            .versions[0]
            .2,
        3
    );
    let history = store.history(b"ns", b"k");
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(
        history[1].value.is_none(),
        "the delete is a tombstone in history"
    );
}

#[test]
fn scans_honour_prefix_bounds_reverse_and_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    for k in ["a1", "a2", "a3", "b1"] {
        store.put(b"ns", k.as_bytes(), b"v").unwrap();
    }
    store.put(b"other", b"a9", b"v").unwrap();
    let keys = |s: Scan| {
        store
            .scan(b"ns", &s)
            .into_iter()
            .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(Scan {
            prefix: Some(b"a".to_vec()),
            ..Scan::default()
        }),
        ["a1", "a2", "a3"]
    );
    assert_eq!(
        keys(Scan {
            prefix: Some(b"a".to_vec()),
            reverse: true,
            limit: 2,
            ..Scan::default()
        }),
        ["a3", "a2"]
    );
    assert_eq!(
        keys(Scan {
            start: Some(b"a2".to_vec()),
            end: Some(b"b1".to_vec()),
            ..Scan::default()
        }),
        ["a2", "a3"]
    );
    assert_eq!(
        keys(Scan {
            reverse: true,
            ..Scan::default()
        }),
        ["b1", "a3", "a2", "a1"]
    );
    assert!(keys(Scan {
        start: Some(b"z".to_vec()),
        end: Some(b"a".to_vec()),
        ..Scan::default()
    })
    .is_empty());
}

#[test]
fn state_survives_reopen_with_and_without_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(tmp.path());
        for i in 0..300u32 {
            store
                .put(
                    b"ns",
                    format!("k{:03}", i % 100).as_bytes(),
                    &i.to_le_bytes(),
                )
                .unwrap();
            if i == 150 {
                store.checkpoint().unwrap();
            }
        }
        let mut big = store.begin();
        for i in 0..50u32 {
            big.put(b"big", &i.to_le_bytes(), &vec![7u8; 100 << 10])
                .unwrap();
        }
        big.commit().unwrap();
        store.close().unwrap();
    }
    let store = open(tmp.path());
    assert!(store.recovery_report().checkpoint_lsn > 0);
    assert_eq!(
        &*store.get(b"ns", b"k099").unwrap().value,
        &299u32.to_le_bytes()
    );
    assert_eq!(store.version(b"ns", b"k000"), 3);
    assert_eq!(store.scan(b"big", &Scan::default()).len(), 50);
}

#[test]
fn oversized_input_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let before = store.status().appended_lsn;
    assert!(matches!(
        store.put(b"ns", &vec![0u8; 5000], b"v"),
        Err(Error::TooLarge { what: "key", .. })
    ));
    assert!(matches!(
        store.put(b"ns", b"k", &vec![0u8; 5 << 20]),
        Err(Error::TooLarge { what: "value", .. })
    ));
    assert!(matches!(
        store.put(b"", b"k", b"v"),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(store.status().appended_lsn, before);
}

/// A transaction that writes keys several times reads, scans and commits each key's last
/// write, at sizes below, at and above the point where it starts indexing its writes (16
/// writes; each step here makes two), and commits one version per key, in the order of the
/// keys' last writes.
#[test]
fn repeated_writes_read_scan_and_commit_as_each_keys_last_write() {
    for writes in [3usize, 7, 8, 9, 40] {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        store.put(b"ns", b"k0", b"before").unwrap();
        let mut tx = store.begin();
        let mut model = std::collections::BTreeMap::new();
        let mut last_write = Vec::new();
        for i in 0..writes {
            let key = format!("k{}", (i * 7) % 5).into_bytes();
            let value = if i % 6 == 5 {
                tx.delete(b"ns", &key).unwrap();
                None
            } else {
                let v = format!("v{i}").into_bytes();
                tx.put(b"ns", &key, &v).unwrap();
                Some(v)
            };
            // A write elsewhere must not hide or replace a write to "ns".
            tx.put(b"other", &key, b"x").unwrap();
            model.insert(key.clone(), value);
            last_write.retain(|k| *k != key);
            last_write.push(key);
        }
        for (key, value) in &model {
            let seen = tx.get(b"ns", key).map(|v| v.value.to_vec());
            assert_eq!(seen, *value, "{writes} writes: {key:?}");
        }
        let live: Vec<(Vec<u8>, Vec<u8>)> = model
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        let scanned: Vec<(Vec<u8>, Vec<u8>)> = tx
            .scan(b"ns", &Scan::default())
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.value.to_vec()))
            .collect();
        assert_eq!(scanned, live, "{writes} writes: scan");
        let info = tx.commit().unwrap();
        let ns_keys: Vec<Vec<u8>> = info
            .versions
            .iter()
            .filter(|(ns, _, _)| &**ns == b"ns")
            .map(|(_, k, _)| k.to_vec())
            .collect();
        assert_eq!(ns_keys, last_write, "{writes} writes: one version per key");
        for (key, value) in &model {
            let seen = store.get(b"ns", key).map(|v| v.value.to_vec());
            assert_eq!(seen, *value, "{writes} writes, committed: {key:?}");
        }
        // k0 (written first, at i = 0) had a version before: one more, however often written.
        assert_eq!(store.version(b"ns", b"k0"), 2, "{writes} writes");
    }
}
