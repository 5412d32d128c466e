//! Checkpoints: they release the log (unless retention keeps it), they bound what recovery
//! reads, a damaged newest checkpoint falls back to the previous one, and nothing pins the
//! log forever. All on [`SimStorage`], checked against a [`ModelState`].
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use support::{open, sim_options, value_bytes, Key, ModelState, CHECKPOINT_DIR};
use walden_log::storage::{CrashDamage, SimStorage};
use walden_store::{Error, Precondition, Store, StoreOptions};

const HISTORY: usize = 4;

/// A store on a simulator plus the model of what it must hold.
struct Harness {
    sim: SimStorage,
    options: StoreOptions,
    store: Option<Arc<Store>>,
    model: ModelState,
    universe: BTreeSet<Key>,
    counter: u32,
}

impl Harness {
    fn new(seed: u64, options: StoreOptions) -> Self {
        let sim = SimStorage::new(seed);
        let store = open(&sim, options.clone()).unwrap();
        Harness {
            sim,
            options,
            store: Some(Arc::new(store)),
            model: ModelState::new(HISTORY),
            universe: BTreeSet::new(),
            counter: 0,
        }
    }

    /// The open store (drop every clone before a reopen).
    fn store(&self) -> Arc<Store> {
        self.store.clone().unwrap()
    }

    /// `n` committed puts of `len`-byte values over `keys` keys of namespace `ns`.
    fn puts(&mut self, ns: &[u8], n: usize, keys: usize, len: usize) {
        for _ in 0..n {
            self.counter += 1;
            let key = format!("k{:03}", self.counter as usize % keys).into_bytes();
            let value = value_bytes(&format!("{}:", self.counter), len);
            let info = self.store().put(ns, &key, &value).unwrap();
            self.model.apply(
                &[(ns.to_vec(), key.clone(), Some(value))],
                Some(info.lsn.get()),
            );
            self.universe.insert((ns.to_vec(), key));
        }
    }

    /// Closes the store cleanly and opens it again.
    fn reopen(&mut self) -> Arc<Store> {
        let store = Arc::try_unwrap(self.store.take().unwrap()).unwrap();
        store.close().unwrap();
        self.store = Some(Arc::new(open(&self.sim, self.options.clone()).unwrap()));
        self.store()
    }

    /// Drops the store, loses power with `damage`, opens it again.
    fn crash_and_reopen(&mut self, damage: CrashDamage) -> walden_store::Result<Arc<Store>> {
        if let Some(store) = self.store.take() {
            assert_eq!(
                Arc::strong_count(&store),
                1,
                "a clone of the store is still alive"
            );
        }
        self.sim.crash(damage);
        self.store = Some(Arc::new(open(&self.sim, self.options.clone())?));
        Ok(self.store())
    }

    fn check(&self) {
        if let Err(e) = self.model.check(&self.store(), &self.universe) {
            panic!("the store does not hold the model's state: {e}");
        }
    }
}

fn options() -> StoreOptions {
    sim_options(1 << 20, HISTORY)
}

#[test]
fn a_checkpoint_releases_the_log_before_its_redo_start() {
    let mut h = Harness::new(1, options());
    h.puts(b"ns", 300, 50, 400); // ~130 KiB of log: several 16 KiB segments
    assert!(h.store().wal().segments().len() > 4);
    assert_eq!(h.store().wal().first_lsn().get(), 1);
    let info = h.store().checkpoint().unwrap();
    let first = h.store().wal().first_lsn().get();
    assert!(first > 1, "the checkpoint released nothing");
    assert!(
        first <= info.redo_start_lsn.get(),
        "the log was released past the checkpoint's redo start"
    );
    assert_eq!(info.log_first_lsn.get(), first);
    assert!(
        h.store().wal().segments().len() <= 2,
        "segments before the checkpoint are still live: {:?}",
        h.store().wal().segments()
    );
    h.crash_and_reopen(CrashDamage::DropAll).unwrap();
    h.check();
}

#[test]
fn log_retention_keeps_log_before_the_checkpoint() {
    // Retention beyond the whole log: nothing is released.
    let mut h = Harness::new(2, options().log_retention_lsns(1_000_000));
    h.puts(b"ns", 300, 50, 400);
    let info = h.store().checkpoint().unwrap();
    assert_eq!(h.store().wal().first_lsn().get(), 1);
    assert_eq!(info.log_first_lsn.get(), 1);

    // Retention of 100 LSNs: released only up to 100 LSNs before the redo start.
    let retention = 100;
    let mut h = Harness::new(3, options().log_retention_lsns(retention));
    h.puts(b"ns", 300, 50, 400);
    let info = h.store().checkpoint().unwrap();
    let first = h.store().wal().first_lsn().get();
    assert!(
        first > 1,
        "a retention of {retention} LSNs released nothing"
    );
    assert!(
        first + retention <= info.redo_start_lsn.get(),
        "first LSN {first} leaves fewer than {retention} LSNs before redo start {}",
        info.redo_start_lsn
    );
    // The retained log is readable by a change feed from there.
    let mut feed = h.store().changes(walden_log::Lsn(first)).unwrap();
    assert!(feed
        .next_timeout(std::time::Duration::from_secs(1))
        .unwrap()
        .is_some());
    drop(feed);
    h.reopen();
    h.check();
}

#[test]
fn recovery_after_a_checkpoint_reads_less_log() {
    let mut h = Harness::new(4, options());
    h.puts(b"ns", 200, 40, 200);
    let without = h.reopen().recovery_report().clone();
    h.check();
    assert_eq!(without.checkpoint_lsn, 0);
    assert!(without.log_records_read >= 200);

    let info = h.store().checkpoint().unwrap();
    h.puts(b"ns", 10, 40, 200);
    let with = h.reopen().recovery_report().clone();
    h.check();
    assert_eq!(with.checkpoint_lsn, info.lsn.get());
    assert!(
        with.log_records_read < without.log_records_read / 4,
        "recovery from a checkpoint read {} log records, without one {}",
        with.log_records_read,
        without.log_records_read
    );
    assert_eq!(with.transactions_redone, 10);
}

/// Two checkpoints, more commits, then the newest checkpoint file damaged at `offset`.
fn damaged_newest_checkpoint(seed: u64, offset: Option<u64>) {
    let mut h = Harness::new(seed, options());
    h.puts(b"ns", 120, 30, 300);
    let first = h.store().checkpoint().unwrap();
    h.puts(b"ns", 80, 30, 300);
    h.puts(b"other", 10, 5, 100);
    let second = h.store().checkpoint().unwrap();
    h.puts(b"ns", 20, 30, 300);
    let path = second.path.clone();
    let len = h.sim.read_file(&path).unwrap().len() as u64;
    drop(h.store.take());
    let at = offset.unwrap_or(len / 2).min(len - 1);
    h.sim.corrupt(&path, at, 0x40).unwrap();
    let report = h
        .crash_and_reopen(CrashDamage::DropAll)
        .unwrap()
        .recovery_report()
        .clone();
    assert_eq!(
        report.checkpoint_lsn,
        first.lsn.get(),
        "byte {at} of {len} flipped: recovery did not fall back to the previous checkpoint"
    );
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        report.damaged_checkpoints.iter().any(|d| d.contains(&name)),
        "the report does not list the damaged checkpoint {name}: {:?}",
        report.damaged_checkpoints
    );
    // Moved aside, not left to be judged (and reported) again at every open.
    assert!(
        h.sim.read_file(&path).is_none(),
        "{name} is still a checkpoint"
    );
    let mut aside = path.clone().into_os_string();
    aside.push(".damaged");
    assert!(h.sim.read_file(std::path::Path::new(&aside)).is_some());
    h.check();
    // The store goes on from there: a new checkpoint, a clean reopen, same state.
    h.puts(b"ns", 5, 30, 300);
    h.store().checkpoint().unwrap();
    h.reopen();
    assert!(h.store().recovery_report().damaged_checkpoints.is_empty());
    h.check();
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    // Header, first block's length, inside the entries, the end block's CRC.
    for (i, offset) in [Some(20), Some(64), None, Some(u64::MAX)]
        .into_iter()
        .enumerate()
    {
        damaged_newest_checkpoint(10 + i as u64, offset);
    }
}

#[test]
fn with_every_checkpoint_damaged_and_the_log_released_recovery_refuses() {
    let mut h = Harness::new(20, options());
    h.puts(b"ns", 150, 30, 300);
    h.store().checkpoint().unwrap();
    h.puts(b"ns", 150, 30, 300);
    h.store().checkpoint().unwrap();
    assert!(h.store().wal().first_lsn().get() > 1);
    drop(h.store.take());
    let dir = std::path::Path::new(CHECKPOINT_DIR);
    for name in h.sim.file_names(dir) {
        h.sim.corrupt(&dir.join(name), 70, 0x01).unwrap();
    }
    // Never a silently wrong state: the log no longer holds what a lost checkpoint covered.
    let err = h.crash_and_reopen(CrashDamage::DropAll).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Log(walden_log::Error::Truncated { .. }) | Error::CorruptCheckpoint { .. }
        ),
        "unexpected error: {err}"
    );
    // A recovery that fails moves nothing aside: the files are as the operator left them.
    let names = h.sim.file_names(dir);
    assert!(
        names.iter().all(|n| n.ends_with(".ckpt")) && names.len() == 2,
        "{names:?}"
    );
}

/// A checkpoint in a format version this build cannot read (written by a newer build) is
/// refused, never skipped as damaged nor moved aside: a downgrade must not fall back to an
/// older checkpoint and lose the newer one (found in review).
#[test]
fn a_checkpoint_of_an_unknown_format_version_refuses_the_open() {
    let mut h = Harness::new(21, options());
    h.puts(b"ns", 50, 30, 300);
    let info = h.store().checkpoint().unwrap();
    drop(h.store.take());
    let mut header = h.sim.read_file(&info.path).unwrap()[..64].to_vec();
    header[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&header[..60]);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    for (i, b) in header.iter().enumerate() {
        let old = h.sim.read_file(&info.path).unwrap()[i];
        if old != *b {
            h.sim.corrupt(&info.path, i as u64, old ^ b).unwrap();
        }
    }
    let err = h.crash_and_reopen(CrashDamage::DropAll).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedCheckpoint { version: 2, .. }),
        "unexpected error: {err}"
    );
    assert!(
        h.sim.read_file(&info.path).is_some(),
        "the checkpoint was moved"
    );
}

/// A transaction that spilled to the log and then failed at commit (a precondition, or a
/// conflict) will never commit: it must not hold the log's head back forever.
#[test]
fn a_spilled_transaction_refused_at_commit_does_not_pin_the_log() {
    for conflict in [false, true] {
        let mut h = Harness::new(30, sim_options(512, HISTORY));
        h.puts(b"ns", 5, 5, 50);
        let store = h.store();
        let mut tx = store.begin();
        if conflict {
            // A read: only a transaction that read is checked for conflicts.
            assert!(tx.get(b"big", &[b'b', 0]).is_none());
        } else {
            tx.require(b"ns", b"k001", Precondition::Version(99))
                .unwrap();
        }
        for i in 0..8u8 {
            tx.put(b"big", &[b'b', i], &[i; 300]).unwrap(); // spills
        }
        if conflict {
            // Another writer commits one of its keys first.
            let other = h.store().put(b"big", &[b'b', 0], b"first").unwrap();
            h.model.apply(
                &[(b"big".to_vec(), vec![b'b', 0], Some(b"first".to_vec()))],
                Some(other.lsn.get()),
            );
        }
        for i in 0..8u8 {
            h.universe.insert((b"big".to_vec(), vec![b'b', i]));
        }
        let spilled_at = h.store().wal().next_lsn().get();
        let err = tx.commit().unwrap_err();
        assert!(
            matches!(
                err,
                Error::PreconditionFailed { .. } | Error::Conflict { .. }
            ),
            "{err}"
        );
        drop(store);
        h.puts(b"ns", 300, 50, 400); // several segments after the failed transaction
        let info = h.store().checkpoint().unwrap();
        assert!(
            info.redo_start_lsn.get() > spilled_at,
            "(conflict: {conflict}) the checkpoint's redo start {} is held back by a \
             transaction that failed at commit (spilled before LSN {spilled_at})",
            info.redo_start_lsn
        );
        assert!(
            h.store().wal().first_lsn().get() > spilled_at,
            "(conflict: {conflict}) the log is still pinned at LSN {}",
            h.store().wal().first_lsn()
        );
        h.crash_and_reopen(CrashDamage::RandomGarbled).unwrap();
        h.check();
    }
}

/// A spilled transaction still open when a checkpoint is taken keeps its spills in the log,
/// and commits whole after a crash and recovery from that checkpoint.
#[test]
fn a_transaction_open_across_a_checkpoint_recovers_whole() {
    let mut h = Harness::new(40, sim_options(512, HISTORY));
    h.puts(b"ns", 50, 10, 300);
    let store = h.store();
    let mut tx = store.begin();
    let mut writes = Vec::new();
    for i in 0..6u8 {
        let value = vec![i; 400];
        tx.put(b"big", &[b'b', i], &value).unwrap(); // spills
        writes.push((b"big".to_vec(), vec![b'b', i], Some(value)));
    }
    let spilled_at = h.store().wal().next_lsn().get() - 1;
    h.puts(b"ns", 100, 10, 300);
    let info = h.store().checkpoint().unwrap();
    assert!(info.redo_start_lsn.get() <= spilled_at);
    for i in 6..10u8 {
        let value = vec![i; 400];
        tx.put(b"big", &[b'b', i], &value).unwrap();
        writes.push((b"big".to_vec(), vec![b'b', i], Some(value)));
    }
    let commit = tx.commit().unwrap();
    drop(store);
    h.model.apply(&writes, Some(commit.lsn.get()));
    for (ns, k, _) in &writes {
        h.universe.insert((ns.clone(), k.clone()));
    }
    h.puts(b"ns", 100, 10, 300);
    h.crash_and_reopen(CrashDamage::TornPrefix).unwrap();
    assert_eq!(h.store().recovery_report().checkpoint_lsn, info.lsn.get());
    h.check();
}
