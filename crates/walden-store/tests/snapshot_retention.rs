//! Snapshots over the shared, in-place version map: what an open transaction, a scan or a
//! checkpoint reads must stay exactly its snapshot's while commits go on, however many
//! versions they add (more than `history_versions`) and however many keys (more than one
//! chunk of a scan).
#![allow(clippy::unwrap_used)]

use walden_store::{Limits, Scan, Store, StoreOptions};

fn store(dir: &std::path::Path, history: usize) -> Store {
    let mut limits = Limits::default();
    limits.history_versions = history;
    Store::open(
        StoreOptions::new(dir)
            .limits(limits)
            .checkpoints(0, None)
            .durability(walden_log::Durability::Buffered),
    )
    .unwrap()
}

#[test]
fn an_open_transaction_reads_its_snapshot_after_many_more_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), 2);
    s.put(b"ns", b"k", b"v1").unwrap();
    s.put(b"ns", b"k", b"v2").unwrap();
    let old = s.begin();
    for i in 3..=40u32 {
        s.put(b"ns", b"k", format!("v{i}").as_bytes()).unwrap();
        s.put(b"ns", format!("new-{i}").as_bytes(), b"x").unwrap();
    }
    assert_eq!(&*old.get(b"ns", b"k").unwrap().value, b"v2");
    assert_eq!(old.get(b"ns", b"new-3"), None);
    let rows = old.scan(b"ns", &Scan::default());
    assert_eq!(
        rows.len(),
        1,
        "keys written after the snapshot are not in it"
    );
    // The store itself keeps only the newest two in history.
    let h: Vec<u64> = s.history(b"ns", b"k").iter().map(|v| v.version).collect();
    assert_eq!(h, [39, 40]);
    drop(old);
    // Once the old snapshot is gone, writes drop the versions only it needed.
    s.put(b"ns", b"k", b"last").unwrap();
    let h: Vec<u64> = s.history(b"ns", b"k").iter().map(|v| v.version).collect();
    assert_eq!(h, [40, 41]);
}

#[test]
fn scans_and_checkpoints_are_their_snapshot_while_writers_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), 1);
    let keys = 5000u32;
    for i in 0..keys {
        s.put(b"ns", format!("{i:05}").as_bytes(), b"a").unwrap();
    }
    let snapshot = s.begin();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Overwrites every key and inserts new ones between the old ones, while the
            // scans below walk the map chunk by chunk.
            for i in 0..keys {
                s.put(b"ns", format!("{i:05}").as_bytes(), b"b").unwrap();
                s.put(b"ns", format!("{i:05}+").as_bytes(), b"b").unwrap();
            }
        });
        for _ in 0..20 {
            let rows = snapshot.scan(b"ns", &Scan::default());
            assert_eq!(rows.len(), keys as usize);
            assert!(rows.iter().all(|(_, v)| &*v.value == b"a"));
            let back = snapshot.scan(
                b"ns",
                &Scan {
                    reverse: true,
                    ..Scan::default()
                },
            );
            assert_eq!(back.len(), keys as usize);
            assert!(back.windows(2).all(|w| w[0].0 > w[1].0));
        }
    });
    drop(snapshot);
    let info = s.checkpoint().unwrap();
    assert_eq!(info.keys, u64::from(keys) * 2);
    drop(s);
    // Reopened from the checkpoint: the same state, with no log left to redo it from.
    let s = store(tmp.path(), 1);
    assert_eq!(s.recovery_report().checkpoint_lsn, info.lsn.get());
    let rows = s.scan(b"ns", &Scan::default());
    assert_eq!(rows.len(), keys as usize * 2);
    assert!(rows.iter().all(|(_, v)| &*v.value == b"b"));
    assert_eq!(s.get(b"ns", b"00017").unwrap().version, 2);
}
