//! Found in review: a spilled transaction (writes logged before its commit) whose commit
//! record could not be appended (ENOSPC preparing the next segment, which does not poison
//! the log) stayed in the store's table of open spills, and held every later checkpoint's
//! redo start, and so the log's head, at its first spill until a restart. It now ends like
//! a refused commit.
#![allow(clippy::unwrap_used)]

mod support;

use support::{open, sim_options};
use walden_log::storage::SimStorage;
use walden_store::Error;

#[test]
fn a_spilled_commit_refused_for_lack_of_space_does_not_hold_the_log() {
    let sim = SimStorage::new(21);
    let store = open(&sim, sim_options(256, 4)).unwrap();
    // Spilled before space runs out: its writes are in the log already.
    let mut tx = store.begin();
    for i in 0..8u8 {
        tx.put(b"big", &[i], &[i; 300]).unwrap();
    }
    // Fill the active segment with one-byte log records (frames smaller than a commit
    // record's) until one needs a new segment and cannot have it: the commit then needs one
    // too. The store is not reopened, so it never reads these foreign records.
    sim.set_space_limit(Some(sim.total_bytes() + 100));
    let mut filled = false;
    for _ in 0..100_000 {
        match store
            .wal()
            .append_with(b"x", walden_log::Durability::Buffered)
        {
            Ok(_) => {}
            Err(walden_log::Error::NoSpace { .. }) => {
                filled = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(filled, "the space limit was never reached");
    match tx.commit() {
        Err(Error::Log(walden_log::Error::NoSpace { .. })) => {}
        other => panic!("expected the commit to fail with NoSpace: {other:?}"),
    }
    assert!(
        store.get(b"big", &[0]).is_none(),
        "nothing of it is visible"
    );
    sim.set_space_limit(None);
    let after = store.put(b"ns", b"after", b"ok").unwrap();
    let checkpoint = store.checkpoint().unwrap();
    assert_eq!(checkpoint.lsn, after.lsn);
    assert_eq!(
        checkpoint.redo_start_lsn.get(),
        after.lsn.get() + 1,
        "the refused transaction's spills no longer hold the redo start"
    );
}
