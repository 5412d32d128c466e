//! Found in review: a checkpoint stores a key's version count in 16 bits, but
//! `Limits::history_versions` was unchecked. A key with more kept versions wrapped the count,
//! and the checkpoint, written and synced, and the log before it released, read back as
//! damaged: every acknowledged commit was lost. The limit is now refused at open, and the
//! largest accepted one round-trips through a checkpoint.
#![allow(clippy::unwrap_used)]

use walden_log::Durability;
use walden_store::{Error, Limits, Store, StoreOptions, HISTORY_VERSIONS_MAX};

fn open(dir: &std::path::Path, history: usize) -> walden_store::Result<Store> {
    let mut limits = Limits::default();
    limits.history_versions = history;
    Store::open(
        StoreOptions::new(dir)
            // Small segments, so that the checkpoint really releases the log before it.
            .log(walden_log::Options::new(dir.join("log")).segment_bytes(64 << 10))
            .limits(limits)
            .checkpoints(0, None)
            .durability(Durability::Buffered),
    )
}

#[test]
fn a_history_limit_past_the_checkpoint_count_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    match open(tmp.path(), HISTORY_VERSIONS_MAX + 1) {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("history_versions"), "{why}"),
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn the_largest_history_limit_survives_a_checkpoint_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let n = HISTORY_VERSIONS_MAX as u32 + 2;
    {
        let store = open(tmp.path(), HISTORY_VERSIONS_MAX).unwrap();
        for i in 0..n {
            store.put(b"ns", b"k", &i.to_le_bytes()).unwrap();
        }
        store.checkpoint().unwrap();
        store.close().unwrap();
    }
    let store = open(tmp.path(), HISTORY_VERSIONS_MAX).unwrap();
    assert!(store.recovery_report().damaged_checkpoints.is_empty());
    assert_eq!(store.version(b"ns", b"k"), u64::from(n));
    let history = store.history(b"ns", b"k");
    assert_eq!(history.len(), HISTORY_VERSIONS_MAX);
    assert_eq!(
        history.last().unwrap().value.as_deref(),
        Some(&(n - 1).to_le_bytes()[..])
    );
}
