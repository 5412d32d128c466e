//! Automatic checkpoints across restarts: the log written after the newest checkpoint by
//! earlier runs counts towards the next one. A store restarted more often than it logs a
//! checkpoint's worth per run still checkpoints, so its replay stays bounded.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};
use walden_store::{Store, StoreOptions};

const EVERY_BYTES: u64 = 64 << 10;

fn open(dir: &std::path::Path) -> Store {
    Store::open(StoreOptions::new(dir).checkpoints(EVERY_BYTES, None)).unwrap()
}

/// Writes `n` keys of 1 KiB from `from` on.
fn write(store: &Store, from: u32, n: u32) {
    for i in from..from + n {
        let mut tx = store.begin();
        tx.put(b"ns", &i.to_be_bytes(), &[7u8; 1024]).unwrap();
        tx.commit().unwrap();
    }
}

#[test]
fn log_from_earlier_runs_counts_towards_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // A state of about 2 MiB and a checkpoint of it: the next size-triggered checkpoint
    // waits for about 2 MiB of log.
    let store = open(dir.path());
    write(&store, 0, 2048);
    let first = store.checkpoint().unwrap().lsn;
    store.close().unwrap();
    // Runs of about 600 KiB each: none logs a checkpoint's worth by itself.
    let mut replayed = Vec::new();
    let mut later = None;
    for run in 0..8u32 {
        let store = open(dir.path());
        replayed.push(store.recovery_report().log_records_read);
        write(&store, 10_000 + run * 600, 600);
        // The ticker checks every 100 ms.
        let until = Instant::now() + Duration::from_millis(600);
        while Instant::now() < until && later.is_none() {
            let lsn = store.status().checkpoint_lsn;
            if lsn > first {
                later = Some(lsn);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        store.close().unwrap();
        if later.is_some() {
            break;
        }
    }
    assert!(
        later.is_some(),
        "no automatic checkpoint in 8 restarts; records replayed per open: {replayed:?}"
    );
}
