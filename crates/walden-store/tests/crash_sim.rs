//! Store-level crash simulation: a crash at every storage call of transactional workloads,
//! under every damage pattern, with crashes inside checkpoints and inside recovery
//! (ENGINEERING.md section 3, rows 7, 9, 10 and 18, at the store's level).
//!
//! For each workload (a seeded script of single-key puts and deletes, `put_if` with passing
//! and failing preconditions, multi-key transactions that commit, abort or are dropped,
//! duplicate writes of one key in one transaction, transactions changing dozens of keys,
//! transactions large enough to spill to the log before they commit, two transactions open
//! at once with a commit (conflicting or not) and a checkpoint between them, and explicit
//! checkpoints; in one workload, `Durability::Buffered` commits acknowledged by syncs), a dry run on a fresh [`SimStorage`] counts the storage calls, including
//! those of creating the store. Then, for every call `N` (and `N` = calls + 1: power fails
//! after a clean shutdown) and every [`CrashDamage`] pattern:
//!
//! 1. A fresh `SimStorage` with `crash_after_ops(Some(N))` runs the workload while the test
//!    records every transaction that passed its checks and reached the log (its writes, and
//!    its commit LSN if `commit` returned `Ok`). Every logical outcome is checked on the way
//!    against a [`ModelState`]: which commits fail on a precondition or a conflict, the
//!    versions `commit` reports, reads after commit. The first storage error ends the
//!    workload: the simulated process died there.
//! 2. The store is dropped, the storage crashes with the damage pattern, and the store is
//!    reopened: it must open.
//! 3. The recovered state (full scans of every namespace, version and history of every key
//!    the workload ever touched, commit LSNs) must equal the model after some prefix of the
//!    commit sequence that holds every acknowledged commit. That proves: every acknowledged
//!    commit is present; nothing of an aborted, dropped or failed transaction is visible;
//!    every transaction is all-or-nothing across its keys; versions come out exactly.
//! 4. Recovery after recovery (half of the states; every state in a soak): a few more
//!    transactions (and sometimes a checkpoint) run on the recovered store with a random
//!    crash point among them, the storage crashes again with a random pattern, and the next
//!    recovery must again hold a prefix with every acknowledged commit.
//! 5. Crash during recovery (one state in 50; every state in a soak): the crashed file
//!    system is copied, and the reopen is rerun with a crash at each of its own storage
//!    calls, then a crash with a random pattern, then a clean reopen, which must recover
//!    exactly the state the first recovery found.
//!
//! The dry runs count what the workloads exercised (conflicts, failed preconditions,
//! spilled commits and aborts, segment rotations, segments released by checkpoints), and
//! each test asserts that its workloads reached what it is about.
//!
//! A "commit is acknowledged" when `commit` returned `Ok` at `Durability::Sync`; in the
//! buffered workload, when a later `wal().sync()` or `checkpoint()` returned `Ok`.
//!
//! Environment (walden_testkit::sweep runs the seeds and crash points):
//! - `WALDEN_CRASH_SEED=<n>` runs only that seed (a replay; failure messages print it).
//! - `WALDEN_CRASH_POINT=<n>` with it, runs only that crash point;
//!   `WALDEN_CRASH_DAMAGE=<name>` only that damage pattern.
//! - `WALDEN_CRASH_STATES=<n>` raises the number of crash states of the whole file to at
//!   least `n` (a soak: more seeds, starting from a random one that is printed, and the
//!   crash-during-recovery sweep on every state).
//!
//! Every workload is single-threaded with segments prepared inline and no automatic
//! checkpoints, so a seed and a crash point replay exactly.
#![allow(clippy::unwrap_used)]

mod support;

use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use support::{
    describe_files, open, sim_options, snapshot, value_bytes, Key, ModelState, WriteOp,
    CHECKPOINT_DIR, LOG_DIR,
};
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::Durability;
use walden_store::{CommitInfo, Error, Precondition, Store, StoreOptions, Transaction};
use walden_testkit::seeds::rng_for;
use walden_testkit::simfs::{damage_name, random_damage, Snapshot};
use walden_testkit::sweep::{self, CrashState, Stop, Sweep, Tally};

/// The `#[test]` functions in this file (4, each a kind of workload), the crash states
/// (crash point x damage pattern) each checks at least per run (2,600), and how many
/// failure messages a test prints in full (3; it counts all of them).
const BUDGET: sweep::Budget = sweep::Budget::new(4, 2_600, 3);

/// In a normal run, the crash-during-recovery sweep covers one state in this many (picked
/// by the state's seed); a soak covers every state.
const RECOVERY_SWEEP_STRIDE: u64 = 50;

/// In a normal run, one state in this many (picked by the state's seed) also runs round two
/// (recovery after recovery); a soak runs it on every state.
const ROUND_TWO_STRIDE: u64 = 2;

/// Versions kept per key in every workload (small, so history trimming is exercised).
const HISTORY: usize = 3;

/// A precondition as the script states it; resolved against the model when it runs.
#[derive(Debug, Clone, Copy)]
enum Pre {
    /// `Precondition::Absent`.
    Absent,
    /// `Precondition::Version(current version)`: holds.
    Current,
    /// `Precondition::Version(current version + 1)`: never holds.
    Stale,
}

/// How a transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Commit,
    Abort,
    Drop,
}

/// One step of a workload.
#[derive(Debug, Clone)]
enum Step {
    Put(Vec<u8>, Vec<u8>, Vec<u8>),
    Delete(Vec<u8>, Vec<u8>),
    PutIf(Vec<u8>, Vec<u8>, Vec<u8>, Pre),
    /// One transaction: its preconditions, its writes in order, its end.
    Txn {
        requires: Vec<(Vec<u8>, Vec<u8>, Pre)>,
        writes: Vec<WriteOp>,
        end: End,
    },
    /// Two transactions open at once: A begins and writes `a_first` (it may spill), B
    /// begins and writes `b`, B commits, a checkpoint may run (its LSN is then above A's
    /// spills: its redo start must not be), A writes `a_rest` and ends. A conflicts with B
    /// where their keys overlap.
    Interleaved {
        a_first: Vec<WriteOp>,
        b: Vec<WriteOp>,
        checkpoint_between: bool,
        a_rest: Vec<WriteOp>,
        a_end: End,
    },
    Checkpoint,
    /// `store.wal().sync()`: acknowledges every buffered commit.
    Sync,
}

impl Step {
    fn label(&self) -> String {
        fn bytes(writes: &[WriteOp]) -> usize {
            writes
                .iter()
                .map(|(_, _, v)| v.as_ref().map_or(0, Vec::len))
                .sum()
        }
        match self {
            Step::Put(ns, k, v) => format!("put {}/{} ({} B)", s(ns), s(k), v.len()),
            Step::Delete(ns, k) => format!("delete {}/{}", s(ns), s(k)),
            Step::PutIf(ns, k, v, p) => format!("put_if {}/{} ({} B) {p:?}", s(ns), s(k), v.len()),
            Step::Txn {
                requires,
                writes,
                end,
            } => format!(
                "txn of {} writes ({} B), {} preconditions, {end:?}",
                writes.len(),
                bytes(writes),
                requires.len()
            ),
            Step::Interleaved {
                a_first,
                b,
                checkpoint_between,
                a_rest,
                a_end,
            } => format!(
                "interleaved: A {}+{} writes ({} B) {a_end:?}, B {} writes{}",
                a_first.len(),
                a_rest.len(),
                bytes(a_first) + bytes(a_rest),
                b.len(),
                if *checkpoint_between {
                    ", checkpoint between"
                } else {
                    ""
                }
            ),
            Step::Checkpoint => "checkpoint".into(),
            Step::Sync => "sync".into(),
        }
    }

    fn keys(&self) -> Vec<Key> {
        let of = |w: &[WriteOp]| -> Vec<Key> {
            w.iter().map(|(ns, k, _)| (ns.clone(), k.clone())).collect()
        };
        match self {
            Step::Put(ns, k, _) | Step::Delete(ns, k) | Step::PutIf(ns, k, _, _) => {
                vec![(ns.clone(), k.clone())]
            }
            Step::Txn { writes, .. } => of(writes),
            Step::Interleaved {
                a_first, b, a_rest, ..
            } => [of(a_first), of(b), of(a_rest)].concat(),
            Step::Checkpoint | Step::Sync => Vec::new(),
        }
    }
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A workload with its seed and options.
struct Workload {
    /// The `#[test]` function that runs it (for the replay command).
    test: &'static str,
    seed: u64,
    options: StoreOptions,
    steps: Vec<Step>,
    /// Every key any step writes.
    universe: BTreeSet<Key>,
}

impl Workload {
    fn new(test: &'static str, seed: u64, options: StoreOptions, steps: Vec<Step>) -> Self {
        let universe = steps.iter().flat_map(Step::keys).collect();
        Workload {
            test,
            seed,
            options,
            steps,
            universe,
        }
    }

    fn buffered(&self) -> bool {
        self.options.durability == Durability::Buffered
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, step) in self.steps.iter().enumerate() {
            let _ = write!(out, "\n      {i:2}: {}", step.label());
        }
        out
    }
}

/// A transaction that passed its checks and was handed to the log.
#[derive(Debug, Clone)]
struct CommitRec {
    writes: Vec<WriteOp>,
    /// Its commit LSN, known when `commit` returned `Ok`.
    lsn: Option<u64>,
    acked: bool,
}

/// The commit sequence a run produced, in commit order (single-threaded: call order).
#[derive(Debug, Clone, Default)]
struct History {
    commits: Vec<CommitRec>,
}

impl History {
    /// The model after the first `k` commits.
    fn model(&self, k: usize) -> ModelState {
        let mut m = ModelState::new(HISTORY);
        for c in self.commits.iter().take(k) {
            m.apply(&c.writes, c.lsn);
        }
        m
    }

    /// The prefixes the recovered state may be: at least every acknowledged commit.
    fn allowed(&self) -> std::ops::RangeInclusive<usize> {
        let least = self
            .commits
            .iter()
            .rposition(|c| c.acked)
            .map_or(0, |i| i + 1);
        least..=self.commits.len()
    }

    fn ack_through(&mut self, lsn: u64) {
        for c in &mut self.commits {
            if c.lsn.is_some_and(|l| l <= lsn) {
                c.acked = true;
            }
        }
    }

    fn ack_all(&mut self) {
        for c in &mut self.commits {
            c.acked = true;
        }
    }

    fn summary(&self) -> String {
        let acked = self.commits.iter().filter(|c| c.acked).count();
        let last_lsn = self.commits.iter().filter_map(|c| c.lsn).max().unwrap_or(0);
        format!(
            "{} commits reached the log, {acked} acknowledged, last known commit LSN {last_lsn}",
            self.commits.len()
        )
    }

    /// Checks `store` against every allowed prefix; returns the prefix it holds. After a
    /// match, the commit LSNs the run did not know are filled in from the store, so later
    /// rounds can check them.
    fn check(&mut self, store: &Store, universe: &BTreeSet<Key>) -> Result<usize, String> {
        let allowed = self.allowed();
        let mut errors = Vec::new();
        let mut model = self.model(*allowed.start());
        for k in allowed.clone() {
            if k > *allowed.start() {
                let c = &self.commits[k - 1];
                model.apply(&c.writes, c.lsn);
            }
            match model.check(store, universe) {
                Ok(()) => {
                    self.learn_lsns(store, k);
                    return Ok(k);
                }
                Err(e) => errors.push(format!(
                    "against prefix {k} (every acknowledged commit{}): {e}",
                    if k == *allowed.end() {
                        " and every other commit that reached the log"
                    } else {
                        ""
                    }
                )),
            }
        }
        // The shortest and the longest allowed prefix are the likeliest intended states.
        if errors.len() > 2 {
            errors.drain(1..errors.len() - 1);
        }
        Err(format!(
            "the recovered state is no allowed prefix of the commit sequence (prefixes \
             {allowed:?} allowed)\n  {}",
            errors.join("\n  ")
        ))
    }

    /// Keeps the first `k` commits (the ones recovered; all durable now) and learns the LSNs
    /// the run did not know.
    fn learn_lsns(&mut self, store: &Store, k: usize) {
        self.commits.truncate(k);
        for c in &mut self.commits {
            c.acked = true;
            if c.lsn.is_none() {
                if let Some((ns, key, _)) = c.writes.last() {
                    c.lsn = store.history(ns, key).last().map(|v| v.lsn);
                }
            }
        }
    }
}

/// What a run exercised (from the dry runs), so a test can prove its workloads reach the
/// paths it claims to cover.
#[derive(Debug, Clone, Copy, Default)]
struct Coverage {
    commits: u64,
    precondition_failures: u64,
    conflicts: u64,
    /// Transactions that reached the log before their commit (spilled), by how they ended.
    spilled_commits: u64,
    spilled_aborts: u64,
    spilled_failed_commits: u64,
    aborts: u64,
    checkpoints: u64,
    segment_rotations: u64,
    segments_released: u64,
}

impl Coverage {
    fn add(&mut self, o: &Coverage) {
        self.commits += o.commits;
        self.precondition_failures += o.precondition_failures;
        self.conflicts += o.conflicts;
        self.spilled_commits += o.spilled_commits;
        self.spilled_aborts += o.spilled_aborts;
        self.spilled_failed_commits += o.spilled_failed_commits;
        self.aborts += o.aborts;
        self.checkpoints += o.checkpoints;
        self.segment_rotations += o.segment_rotations;
        self.segments_released += o.segments_released;
    }
}

/// What one run of a workload left behind.
struct Run {
    history: History,
    cover: Coverage,
    /// A breach of the contract seen while running (a wrong logical outcome, ...).
    violation: Option<String>,
    /// The error that ended the workload early, if any (the simulated death).
    stopped_by: Option<String>,
    /// Storage-call ranges `(first, last)` of each `checkpoint()` call, relative to the
    /// start of the run.
    checkpoint_calls: Vec<(u64, u64)>,
}

fn died(e: Error) -> Stop {
    match e {
        Error::Log(_) | Error::Poisoned(_) => Stop::Died(e.to_string()),
        other => Stop::Violation(format!("unexpected error: {other}")),
    }
}

/// Runs a workload on `sim` (opening the store first, then dropping it); `measure` fills in
/// the log's counters in the run's coverage.
fn run_workload(w: &Workload, sim: &SimStorage, measure: bool) -> Run {
    let mut run = Run {
        history: History::default(),
        cover: Coverage::default(),
        violation: None,
        stopped_by: None,
        checkpoint_calls: Vec::new(),
    };
    let start = sim.op_count();
    let store = match open(sim, w.options.clone()) {
        Ok(store) => store,
        Err(e) => {
            run.stopped_by = Some(format!("open: {e}"));
            return run;
        }
    };
    let mut exec = Exec {
        store: &store,
        sim,
        start,
        latest: ModelState::new(HISTORY),
        run: &mut run,
        buffered: w.buffered(),
    };
    for (i, step) in w.steps.iter().enumerate() {
        match exec.step(step) {
            Ok(()) => {}
            Err(Stop::Died(e)) => {
                exec.run.stopped_by = Some(format!("step {i} ({}): {e}", step.label()));
                break;
            }
            Err(Stop::Violation(v)) => {
                exec.run.violation = Some(format!("step {i} ({}): {v}", step.label()));
                break;
            }
        }
    }
    if measure {
        // (Only in dry runs: a stats snapshot copies two histograms.)
        let stats = store.wal().stats();
        run.cover.segment_rotations = stats.rotations;
        run.cover.segments_released = stats.segments_released;
    }
    // Dropping syncs what is buffered (best effort); those calls are crash points too.
    drop(store);
    run
}

/// Runs steps against a store and the model of what it must do.
struct Exec<'a> {
    store: &'a Store,
    sim: &'a SimStorage,
    start: u64,
    /// The model after every commit handed to the log (what `commit` checks against).
    latest: ModelState,
    run: &'a mut Run,
    buffered: bool,
}

/// What a commit must do, by the model.
struct Expect {
    precondition_fails: bool,
    conflicts: bool,
}

impl Exec<'_> {
    fn resolve(&self, ns: &[u8], key: &[u8], pre: Pre) -> Precondition {
        match pre {
            Pre::Absent => Precondition::Absent,
            Pre::Current => Precondition::Version(self.latest.version(ns, key)),
            Pre::Stale => Precondition::Version(self.latest.version(ns, key) + 1),
        }
    }

    fn expect(
        &self,
        requires: &[(Vec<u8>, Vec<u8>, Precondition)],
        writes: &[WriteOp],
        read_snapshot: Option<&ModelState>,
    ) -> Expect {
        Expect {
            precondition_fails: requires
                .iter()
                .any(|(ns, k, p)| !self.latest.holds(ns, k, *p)),
            // Only a transaction that read from its snapshot is checked for conflicts.
            conflicts: read_snapshot.is_some_and(|snapshot| {
                writes
                    .iter()
                    .any(|(ns, k, _)| self.latest.version(ns, k) != snapshot.version(ns, k))
            }),
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), Stop> {
        match step {
            Step::Put(ns, k, v) => {
                let writes = vec![(ns.clone(), k.clone(), Some(v.clone()))];
                let expect = self.expect(&[], &writes, None);
                let result = self.store.put(ns, k, v);
                self.finish(result, writes, expect)
            }
            Step::Delete(ns, k) => {
                let writes = vec![(ns.clone(), k.clone(), None)];
                let expect = self.expect(&[], &writes, None);
                let result = self.store.delete(ns, k);
                self.finish(result, writes, expect)
            }
            Step::PutIf(ns, k, v, pre) => {
                let pre = self.resolve(ns, k, *pre);
                let writes = vec![(ns.clone(), k.clone(), Some(v.clone()))];
                let expect = self.expect(&[(ns.clone(), k.clone(), pre)], &writes, None);
                let result = self.store.put_if(ns, k, v, pre);
                self.finish(result, writes, expect)
            }
            Step::Txn {
                requires,
                writes,
                end,
            } => {
                let requires: Vec<_> = requires
                    .iter()
                    .map(|(ns, k, p)| (ns.clone(), k.clone(), self.resolve(ns, k, *p)))
                    .collect();
                let mut tx = self.store.begin();
                for (ns, k, p) in &requires {
                    tx.require(ns, k, *p).map_err(died)?;
                }
                let before = self.store.wal().next_lsn();
                self.write_all(&mut tx, writes)?;
                let spilled = self.store.wal().next_lsn() > before;
                // Reads only its own writes: not checked for conflicts.
                self.end_counted(tx, *end, &requires, writes.clone(), None, spilled)
            }
            Step::Interleaved {
                a_first,
                b,
                checkpoint_between,
                a_rest,
                a_end,
            } => {
                let snap_a = self.latest.clone();
                let mut a = self.store.begin();
                // A reads before it writes (a read-modify-write): it is checked for
                // conflicts, and conflicts with B where their keys overlap.
                if let Some((ns, k, _)) = a_first.first() {
                    reads_as_in_snapshot(&a, &snap_a, ns, k)?;
                }
                let before = self.store.wal().next_lsn();
                self.write_all(&mut a, a_first)?;
                let spilled = self.store.wal().next_lsn() > before;
                let mut tb = self.store.begin();
                self.write_all(&mut tb, b)?;
                self.end(tb, End::Commit, &[], b.clone(), None)?;
                if *checkpoint_between {
                    self.checkpoint()?;
                }
                // A's snapshot predates B's commit: it must not see it.
                for (ns, k, _) in b {
                    if a_first.iter().any(|(n, key, _)| n == ns && key == k) {
                        continue;
                    }
                    reads_as_in_snapshot(&a, &snap_a, ns, k)?;
                }
                self.write_all(&mut a, a_rest)?;
                let all = [a_first.clone(), a_rest.clone()].concat();
                self.end_counted(a, *a_end, &[], all, Some(&snap_a), spilled)
            }
            Step::Checkpoint => self.checkpoint(),
            Step::Sync => {
                self.store.wal().sync().map_err(|e| died(e.into()))?;
                self.run.history.ack_all();
                Ok(())
            }
        }
    }

    /// Writes, checking read-your-writes on the way.
    fn write_all(&mut self, tx: &mut Transaction<'_>, writes: &[WriteOp]) -> Result<(), Stop> {
        for (ns, k, v) in writes {
            match v {
                Some(v) => tx.put(ns, k, v).map_err(died)?,
                None => tx.delete(ns, k).map_err(died)?,
            }
            let seen = tx.get(ns, k).map(|x| x.value.to_vec());
            if seen != *v {
                return Err(Stop::Violation(format!(
                    "a transaction does not read its own write of {}/{}",
                    s(ns),
                    s(k)
                )));
            }
        }
        Ok(())
    }

    /// Ends a transaction, counting how a spilled one ended.
    fn end_counted(
        &mut self,
        tx: Transaction<'_>,
        end: End,
        requires: &[(Vec<u8>, Vec<u8>, Precondition)],
        writes: Vec<WriteOp>,
        read_snapshot: Option<&ModelState>,
        spilled: bool,
    ) -> Result<(), Stop> {
        let commits = self.run.cover.commits;
        let outcome = self.end(tx, end, requires, writes, read_snapshot);
        if spilled && outcome.is_ok() {
            let c = &mut self.run.cover;
            match end {
                End::Commit if c.commits > commits => c.spilled_commits += 1,
                End::Commit => c.spilled_failed_commits += 1,
                End::Abort | End::Drop => c.spilled_aborts += 1,
            }
        }
        outcome
    }

    fn end(
        &mut self,
        tx: Transaction<'_>,
        end: End,
        requires: &[(Vec<u8>, Vec<u8>, Precondition)],
        writes: Vec<WriteOp>,
        read_snapshot: Option<&ModelState>,
    ) -> Result<(), Stop> {
        match end {
            End::Abort => {
                tx.abort();
                self.run.cover.aborts += 1;
                Ok(())
            }
            End::Drop => {
                drop(tx);
                self.run.cover.aborts += 1;
                Ok(())
            }
            End::Commit => {
                let expect = self.expect(requires, &writes, read_snapshot);
                let result = tx.commit();
                self.finish(result, writes, expect)
            }
        }
    }

    fn checkpoint(&mut self) -> Result<(), Stop> {
        let before = self.sim.op_count() - self.start;
        let result = self.store.checkpoint();
        let after = self.sim.op_count() - self.start;
        self.run.checkpoint_calls.push((before + 1, after));
        let info = result.map_err(died)?;
        self.run.cover.checkpoints += 1;
        let last = self
            .run
            .history
            .commits
            .iter()
            .filter_map(|c| c.lsn)
            .max()
            .unwrap_or(0);
        if info.lsn.get() != last {
            return Err(Stop::Violation(format!(
                "a checkpoint taken with nothing in flight covers LSN {}, but the last commit \
                 is at LSN {last}",
                info.lsn
            )));
        }
        self.run.history.ack_through(info.lsn.get());
        Ok(())
    }

    /// Checks a commit's outcome against the model and records it.
    fn finish(
        &mut self,
        result: walden_store::Result<CommitInfo>,
        writes: Vec<WriteOp>,
        expect: Expect,
    ) -> Result<(), Stop> {
        let should_fail = expect.precondition_fails || expect.conflicts;
        match result {
            Ok(info) => {
                if should_fail {
                    return Err(Stop::Violation(format!(
                        "commit succeeded at LSN {} but the model says it must fail ({})",
                        info.lsn,
                        if expect.precondition_fails {
                            "a precondition does not hold"
                        } else {
                            "a key it writes changed since its snapshot"
                        }
                    )));
                }
                let lsn = info.lsn.get();
                let previous = self
                    .run
                    .history
                    .commits
                    .iter()
                    .filter_map(|c| c.lsn)
                    .max()
                    .unwrap_or(0);
                if lsn <= previous {
                    return Err(Stop::Violation(format!(
                        "commit LSN {lsn} is not above the previous commit LSN {previous}"
                    )));
                }
                // One entry per key written, with its new version (order not compared).
                let mut versions = self.latest.apply(&writes, Some(lsn));
                versions.sort();
                let mut reported: Vec<(Key, u64)> = info
                    .versions
                    .iter()
                    .map(|(ns, k, v)| ((ns.to_vec(), k.to_vec()), *v))
                    .collect();
                reported.sort();
                if reported != versions {
                    return Err(Stop::Violation(format!(
                        "commit reports versions {:?}, the model {:?}",
                        reported
                            .iter()
                            .map(|((_, k), v)| format!("{}=v{v}", s(k)))
                            .collect::<Vec<_>>(),
                        versions
                            .iter()
                            .map(|((_, k), v)| format!("{}=v{v}", s(k)))
                            .collect::<Vec<_>>()
                    )));
                }
                for ((ns, k), _) in &versions {
                    let got = self.store.get(ns, k).map(|v| v.value.to_vec());
                    if got.as_deref() != self.latest.value(ns, k) {
                        return Err(Stop::Violation(format!(
                            "after its commit returned, {}/{} reads {:?}",
                            s(ns),
                            s(k),
                            got.map(|v| s(&v))
                        )));
                    }
                }
                self.run.history.commits.push(CommitRec {
                    writes,
                    lsn: Some(lsn),
                    acked: !self.buffered,
                });
                self.run.cover.commits += 1;
                Ok(())
            }
            Err(Error::PreconditionFailed { .. }) if expect.precondition_fails => {
                self.run.cover.precondition_failures += 1;
                Ok(())
            }
            Err(Error::Conflict { .. }) if expect.conflicts => {
                self.run.cover.conflicts += 1;
                Ok(())
            }
            Err(e @ (Error::Log(_) | Error::Poisoned(_))) if !should_fail => {
                // Died while committing: the commit may or may not have reached the log.
                self.latest.apply(&writes, None);
                self.run.history.commits.push(CommitRec {
                    writes,
                    lsn: None,
                    acked: false,
                });
                Err(Stop::Died(format!("commit: {e}")))
            }
            Err(e @ (Error::Log(_) | Error::Poisoned(_))) => {
                // It would have been refused, but a spill of its writes (the single-key
                // helpers spill too, when the value exceeds `spill_bytes`) died first: no
                // commit either way.
                Err(Stop::Died(format!("writing a refused transaction: {e}")))
            }
            Err(e) => Err(Stop::Violation(format!(
                "commit failed with {e}, but the model says {}",
                if should_fail {
                    "it fails on a precondition or conflict"
                } else {
                    "it succeeds"
                }
            ))),
        }
    }
}

/// The failure message of a crash state: where, what, the replay command and the workload.
fn message(
    w: &Workload,
    state: &CrashState,
    stage: &str,
    detail: &str,
    history: &History,
    sim: &SimStorage,
) -> String {
    format!(
        "{head}\n  {summary}\n  files now: {files}\n  replay: {vars} WALDEN_CRASH_DAMAGE={damage} \
         cargo test -p walden-store --test crash_sim {test} -- --nocapture\n  workload:{steps}",
        head = state.failure(w.test, stage, detail),
        summary = history.summary(),
        files = describe_files(sim),
        vars = state.replay_vars(),
        damage = damage_name(state.damage),
        test = w.test,
        steps = w.describe(),
    )
}

/// The sweep of one `#[test]`: its workload generator, and what its dry runs exercised.
struct StoreSweep {
    test: &'static str,
    make: fn(&'static str, u64) -> Workload,
    /// `WALDEN_CRASH_DAMAGE`: only this damage pattern, by name.
    only_damage: Option<String>,
    /// What the dry runs of the workloads exercised.
    cover: Coverage,
    /// Crash states whose crash point is inside a `checkpoint()` call.
    in_checkpoint: u64,
    /// The storage-call ranges of the current workload's checkpoints (from its dry run).
    checkpoint_calls: Vec<(u64, u64)>,
}

impl Sweep for StoreSweep {
    type Workload = Workload;
    type Run = Run;

    fn make(&self, seed: u64) -> Workload {
        (self.make)(self.test, seed)
    }

    /// Counts the storage calls, makes sure the workload itself is valid, and records what
    /// it exercised.
    fn dry_run(&mut self, w: &Workload) -> Result<u64, String> {
        let sim = SimStorage::new(w.seed);
        let before = sim.op_count();
        let mut dry = run_workload(w, &sim, true);
        let calls = sim.op_count() - before;
        if let Some(problem) = dry.violation.take().or(dry.stopped_by.take()) {
            return Err(format!(
                "crash_sim FAILURE in workload `{}`, seed {}: the workload fails without any \
                 crash: {problem}\n  workload:{}",
                w.test,
                w.seed,
                w.describe()
            ));
        }
        self.checkpoint_calls = dry.checkpoint_calls;
        self.cover.add(&dry.cover);
        Ok(calls)
    }

    fn covers(&self, damage: CrashDamage) -> bool {
        self.only_damage
            .as_deref()
            .is_none_or(|d| d == damage_name(damage))
    }

    fn run(&mut self, w: &Workload, state: &CrashState, sim: &SimStorage) -> Run {
        let point = state.point;
        if self
            .checkpoint_calls
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&point))
        {
            self.in_checkpoint += 1;
        }
        run_workload(w, sim, false)
    }

    fn violation(run: &Run) -> Option<&str> {
        run.violation.as_deref()
    }

    fn recover(
        &mut self,
        w: &Workload,
        state: &CrashState,
        run: Run,
        sim: &SimStorage,
        soak: bool,
        tally: &mut Tally,
    ) {
        recover_and_check(w, state, run, sim, soak, tally);
    }

    fn failure(
        &self,
        w: &Workload,
        state: &CrashState,
        run: Option<&Run>,
        stage: &str,
        detail: &str,
        sim: &SimStorage,
    ) -> String {
        let history = run.map_or_else(History::default, |r| r.history.clone());
        message(w, state, stage, detail, &history, sim)
    }
}

/// After the crash of one state: recover and check; then the later crashes.
fn recover_and_check(
    w: &Workload,
    state: &CrashState,
    mut run: Run,
    sim: &SimStorage,
    soak: bool,
    tally: &mut Tally,
) {
    let state_seed = state.seed;
    let sweep_recovery = soak || state_seed.is_multiple_of(RECOVERY_SWEEP_STRIDE);
    let crashed = sweep_recovery.then(|| snapshot(sim));
    let before = sim.op_count();
    let store = match open(sim, w.options.clone()) {
        Ok(store) => store,
        Err(e) => {
            let detail = format!("the store refused to open after a crash: {e}");
            tally.fail(message(w, state, "recovery", &detail, &run.history, sim));
            return;
        }
    };
    let recovery_calls = sim.op_count() - before;
    let original = run.history.clone();
    let k = match run.history.check(&store, &w.universe) {
        Ok(k) => k,
        Err(detail) => {
            tally.fail(message(w, state, "first recovery", &detail, &original, sim));
            return;
        }
    };
    let recovered = run.history.model(k);
    if soak || (state_seed >> 8).is_multiple_of(ROUND_TWO_STRIDE) {
        let mut rng = rng_for(state_seed, 2);
        tally.later_crashes += 1;
        if let Err((stage, detail, history)) = round_two(w, sim, store, run.history, &mut rng) {
            tally.fail(message(w, state, &stage, &detail, &history, sim));
        }
    } else {
        drop(store);
    }
    if let Some(crashed) = crashed {
        sweep::sweep_recovery(tally, state_seed, recovery_calls, |call, seed| {
            let calls = (call, recovery_calls);
            crash_during_recovery(w, &crashed, &recovered, k, calls, seed)
                .map_err(|(stage, detail, sim)| message(w, state, &stage, &detail, &original, &sim))
        });
    }
}

/// Runs a few more transactions on a recovered store with a random crash point among them,
/// crashes the storage with a random pattern, and checks the next recovery: everything
/// recovered before (durable now) plus every new acknowledged commit.
fn round_two(
    w: &Workload,
    sim: &SimStorage,
    store: Store,
    history: History,
    rng: &mut SmallRng,
) -> Result<(), (String, String, History)> {
    let mut universe = w.universe.clone();
    let ns = b"round2".to_vec();
    let mut steps = Vec::new();
    for i in 0..4u8 {
        let key = vec![b'r', b'0' + rng.gen_range(0..3u8)];
        universe.insert((ns.clone(), key.clone()));
        let value = value_bytes(&format!("round2-{i}"), rng.gen_range(4..600));
        steps.push(Step::Put(ns.clone(), key, value));
        if rng.gen_bool(0.3) {
            steps.push(Step::Checkpoint);
        }
    }
    if let Some((ns, key)) = w.universe.iter().next() {
        steps.push(Step::Delete(ns.clone(), key.clone()));
    }
    if w.buffered() && rng.gen_bool(0.5) {
        steps.push(Step::Sync);
    }
    let mut run = Run {
        history,
        cover: Coverage::default(),
        violation: None,
        stopped_by: None,
        checkpoint_calls: Vec::new(),
    };
    let latest = run.history.model(run.history.commits.len());
    sim.crash_after_ops(Some(rng.gen_range(1..40)));
    {
        let mut exec = Exec {
            store: &store,
            sim,
            start: sim.op_count(),
            latest,
            run: &mut run,
            buffered: w.buffered(),
        };
        for step in &steps {
            match exec.step(step) {
                Ok(()) => {}
                Err(Stop::Died(_)) => break,
                Err(Stop::Violation(v)) => {
                    return Err(("round two".into(), v, exec.run.history.clone()));
                }
            }
        }
    }
    drop(store);
    let damage = random_damage(rng);
    sim.crash(damage);
    let stage = format!(
        "round two ({} steps on the recovered store, a crash point among them, then a crash \
         with {})",
        steps.len(),
        damage_name(damage)
    );
    let mut history = run.history;
    let store = open(sim, w.options.clone()).map_err(|e| {
        (
            stage.clone(),
            format!("refused to open: {e}"),
            history.clone(),
        )
    })?;
    let before = history.clone();
    history
        .check(&store, &universe)
        .map(|_| ())
        .map_err(|detail| (stage, detail, before))
}

/// Reruns the recovery of a crashed file system with a crash at its `call`-th storage call
/// (`calls`: that and the recovery's count), crashes with a random pattern, and checks that
/// the recovery after that finds exactly the first `k` commits, as the uninterrupted
/// recovery did.
fn crash_during_recovery(
    w: &Workload,
    crashed: &Snapshot,
    recovered: &ModelState,
    k: usize,
    calls: (u64, u64),
    seed: u64,
) -> Result<(), (String, String, SimStorage)> {
    let dirs = [Path::new(LOG_DIR), Path::new(CHECKPOINT_DIR)];
    let (sim, stage) = sweep::crashed_inside_recovery(seed, &dirs, crashed, calls, |sim| {
        drop(open(sim, w.options.clone()));
    });
    let store = match open(&sim, w.options.clone()) {
        Ok(store) => store,
        Err(e) => return Err((stage, format!("refused to open: {e}"), sim)),
    };
    let outcome = recovered.check(&store, &w.universe);
    drop(store);
    outcome.map_err(|detail| {
        (
            stage,
            format!("not the state the uninterrupted recovery found (prefix {k}): {detail}"),
            sim,
        )
    })
}

/// Runs seeds of one workload until this test's share of crash states is checked (or only
/// the replayed seed), then reports, and fails with the first messages if anything failed
/// or (unless replaying) if the workloads never exercised what the test is about.
fn run_test(
    test: &'static str,
    base_seed: u64,
    make: fn(&'static str, u64) -> Workload,
    cover: &[&str],
) {
    let mut s = StoreSweep {
        test,
        make,
        only_damage: std::env::var("WALDEN_CRASH_DAMAGE").ok(),
        cover: Coverage::default(),
        in_checkpoint: 0,
        checkpoint_calls: Vec::new(),
    };
    let outcome = sweep::run(&mut s, test, base_seed, &BUDGET);
    outcome.print(&format!(" ({} inside checkpoints)", s.in_checkpoint));
    println!("{test}: the dry runs exercised {:?}", s.cover);
    outcome.assert_passed();
    if !outcome.replay {
        assert_exercised(test, &s, cover);
    }
}

/// Asserts that a crash point fell inside a checkpoint and that the dry runs exercised
/// every path the test is about (`cover` adds "release" and "spill-abort" to the common
/// ones).
fn assert_exercised(test: &str, s: &StoreSweep, cover: &[&str]) {
    assert!(
        s.in_checkpoint > 0,
        "{test}: no crash point fell inside a checkpoint"
    );
    let c = s.cover;
    let mut needed = vec![
        ("commits", c.commits),
        ("precondition failures", c.precondition_failures),
        ("conflicts", c.conflicts),
        ("spilled commits", c.spilled_commits),
        ("aborts", c.aborts),
        ("checkpoints", c.checkpoints),
        ("segment rotations", c.segment_rotations),
    ];
    if cover.contains(&"release") {
        needed.push(("segments released by checkpoints", c.segments_released));
    }
    if cover.contains(&"spill-abort") {
        needed.push(("spilled aborts", c.spilled_aborts));
        needed.push(("spilled commits refused", c.spilled_failed_commits));
    }
    for (what, n) in needed {
        assert!(n > 0, "{test}: the workloads never exercised {what}");
    }
}

/// Transaction A's read of `ns`/`k` must be what its snapshot holds.
fn reads_as_in_snapshot(
    a: &Transaction<'_>,
    snapshot: &ModelState,
    ns: &[u8],
    k: &[u8],
) -> Result<(), Stop> {
    let seen = a.get(ns, k).map(|v| v.value.to_vec());
    if seen.as_deref() != snapshot.value(ns, k) {
        return Err(Stop::Violation(format!(
            "transaction A reads {}/{} as {:?}, not as in its snapshot",
            s(ns),
            s(k),
            seen.map(|v| s(&v))
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Workloads.

const NAMESPACES: [&[u8]; 3] = [b"agents", b"tasks", b"conv"];

/// Builds random steps from one seed.
struct Gen {
    rng: SmallRng,
    /// Distinct values: each carries the step that wrote it.
    counter: u32,
    keys_per_ns: u8,
    value_max: usize,
}

impl Gen {
    fn new(seed: u64, keys_per_ns: u8, value_max: usize) -> Self {
        Gen {
            rng: rng_for(seed, 1),
            counter: 0,
            keys_per_ns,
            value_max,
        }
    }

    fn key(&mut self) -> (Vec<u8>, Vec<u8>) {
        let ns = NAMESPACES[self.rng.gen_range(0..NAMESPACES.len())].to_vec();
        let k = format!("k{}", self.rng.gen_range(0..self.keys_per_ns)).into_bytes();
        (ns, k)
    }

    fn value(&mut self, len: usize) -> Vec<u8> {
        self.counter += 1;
        value_bytes(&format!("v{}:", self.counter), len.max(1))
    }

    fn small_value(&mut self) -> Vec<u8> {
        let len = self.rng.gen_range(1..self.value_max);
        self.value(len)
    }

    fn pre(&mut self) -> Pre {
        match self.rng.gen_range(0..3) {
            0 => Pre::Absent,
            1 => Pre::Current,
            _ => Pre::Stale,
        }
    }

    fn end(&mut self) -> End {
        match self.rng.gen_range(0..10) {
            0 => End::Abort,
            1 => End::Drop,
            _ => End::Commit,
        }
    }

    /// `n` writes to random keys (some deletes; sometimes the same key twice).
    fn writes(&mut self, n: usize, value_len: Option<usize>) -> Vec<WriteOp> {
        let mut out: Vec<WriteOp> = Vec::new();
        for _ in 0..n {
            let (ns, k) = if !out.is_empty() && self.rng.gen_bool(0.15) {
                let i = self.rng.gen_range(0..out.len());
                (out[i].0.clone(), out[i].1.clone())
            } else {
                self.key()
            };
            let value = if self.rng.gen_bool(0.15) {
                None
            } else {
                Some(match value_len {
                    Some(len) => self.value(len),
                    None => self.small_value(),
                })
            };
            out.push((ns, k, value));
        }
        out
    }

    /// One transaction changing `n` keys of the "bulk" namespace.
    fn many_keys(&mut self, n: usize) -> Step {
        let writes = (0..n)
            .map(|i| {
                let len = self.rng.gen_range(1..64);
                (
                    b"bulk".to_vec(),
                    format!("b{i:03}").into_bytes(),
                    Some(self.value(len)),
                )
            })
            .collect();
        Step::Txn {
            requires: Vec::new(),
            writes,
            end: End::Commit,
        }
    }

    /// A transaction whose writes total about `bytes`, so it spills at least once.
    fn spilling(&mut self, bytes: usize, end: End, stale: bool) -> Step {
        let n = 6;
        let writes = self.writes(n, Some(bytes / n));
        let requires = if stale {
            let (ns, k) = self.key();
            vec![(ns, k, Pre::Stale)]
        } else {
            Vec::new()
        };
        Step::Txn {
            requires,
            writes,
            end,
        }
    }

    /// Two transactions open at once (see [`Step::Interleaved`]). A writes keys of its own
    /// namespace, so it conflicts with B exactly when `overlap` gives B one of them; without
    /// overlap A commits, so a spilled transaction open across the checkpoint (if any)
    /// reaches its commit.
    fn interleaved(&mut self, a_bytes: usize, checkpoint_between: bool, overlap: bool) -> Step {
        let own = |g: &mut Gen, n: usize| -> Vec<WriteOp> {
            (0..n)
                .map(|_| {
                    let k = format!("l{}", g.rng.gen_range(0..6)).into_bytes();
                    (b"long".to_vec(), k, Some(g.value(a_bytes / 5)))
                })
                .collect()
        };
        let a_first = own(self, 3);
        let mut b = self.writes(2, None);
        if overlap {
            let (ns, k, _) = a_first[0].clone();
            let value = self.small_value();
            b.push((ns, k, Some(value)));
        }
        let a_rest = own(self, 2);
        let a_end = if overlap { self.end() } else { End::Commit };
        Step::Interleaved {
            a_first,
            b,
            checkpoint_between,
            a_rest,
            a_end,
        }
    }

    /// A random small step.
    fn random_step(&mut self) -> Step {
        match self.rng.gen_range(0..20) {
            0..=5 => {
                let (ns, k) = self.key();
                let v = self.small_value();
                Step::Put(ns, k, v)
            }
            6..=7 => {
                let (ns, k) = self.key();
                Step::Delete(ns, k)
            }
            8..=11 => {
                let (ns, k) = self.key();
                let v = self.small_value();
                let pre = self.pre();
                Step::PutIf(ns, k, v, pre)
            }
            _ => {
                let n = self.rng.gen_range(1..6);
                let writes = self.writes(n, None);
                let requires = (0..self.rng.gen_range(0..3))
                    .map(|_| {
                        let (ns, k) = self.key();
                        let pre = if self.rng.gen_bool(0.8) {
                            Pre::Current
                        } else {
                            self.pre()
                        };
                        (ns, k, pre)
                    })
                    .collect();
                let end = self.end();
                Step::Txn {
                    requires,
                    writes,
                    end,
                }
            }
        }
    }

    /// `fillers` random steps with `special` steps spread among them at random places.
    fn mix(&mut self, fillers: usize, special: Vec<Step>) -> Vec<Step> {
        let mut steps: Vec<Step> = (0..fillers).map(|_| self.random_step()).collect();
        for step in special {
            let at = self.rng.gen_range(0..=steps.len());
            steps.insert(at, step);
        }
        steps
    }
}

/// The mix of everything: small transactions, a spilling commit, a spilling abort, a
/// spilling transaction whose precondition fails, a transaction changing many keys, two
/// interleaved transactions that conflict, two checkpoints.
fn mixed_workload(test: &'static str, seed: u64) -> Workload {
    let mut g = Gen::new(seed, 8, 900);
    let special = vec![
        g.many_keys(40),
        g.spilling(9000, End::Commit, false),
        g.spilling(3000, End::Abort, false),
        g.spilling(3000, End::Commit, true),
        g.interleaved(600, false, true),
    ];
    let mut steps = g.mix(22, special);
    let n = steps.len();
    steps.insert(2 * n / 3, Step::Checkpoint);
    steps.insert(n / 3, Step::Checkpoint);
    Workload::new(test, seed, sim_options(2048, HISTORY), steps)
}

/// Checkpoints every few steps with values large enough to fill several 16 KiB segments, so
/// that checkpoints release the log's head while transactions keep committing.
fn checkpoint_workload(test: &'static str, seed: u64) -> Workload {
    let mut g = Gen::new(seed, 6, 1500);
    let mut steps = Vec::new();
    for round in 0..7 {
        for _ in 0..g.rng.gen_range(2..5) {
            steps.push(g.random_step());
        }
        if round == 3 {
            steps.push(g.many_keys(30));
        }
        if round == 5 {
            steps.push(g.interleaved(3000, false, true));
        }
        steps.push(Step::Checkpoint);
    }
    Workload::new(test, seed, sim_options(4096, HISTORY), steps)
}

/// Small spill threshold: most multi-key transactions spill; spilled transactions stay open
/// across checkpoints and other commits, abort, get dropped, or fail on a precondition.
fn spill_workload(test: &'static str, seed: u64) -> Workload {
    let mut g = Gen::new(seed, 6, 500);
    let special = vec![
        g.interleaved(4000, true, false),
        g.interleaved(4000, true, true),
        g.interleaved(800, false, false),
        g.spilling(1200, End::Drop, false),
        g.spilling(1200, End::Commit, true),
        g.spilling(1200, End::Commit, false),
        g.many_keys(25),
    ];
    let mut steps = g.mix(12, special);
    steps.push(Step::Checkpoint);
    Workload::new(test, seed, sim_options(256, HISTORY), steps)
}

/// `Durability::Buffered`: commits are acknowledged only by a later `wal().sync()` or
/// `checkpoint()`; in between, any prefix of them may survive.
fn buffered_workload(test: &'static str, seed: u64) -> Workload {
    let mut g = Gen::new(seed, 8, 400);
    let special = vec![
        Step::Sync,
        Step::Sync,
        Step::Checkpoint,
        Step::Checkpoint,
        g.spilling(3000, End::Commit, false),
        g.interleaved(600, true, true),
        g.many_keys(20),
    ];
    let steps = g.mix(26, special);
    let options = sim_options(2048, HISTORY).durability(Durability::Buffered);
    Workload::new(test, seed, options, steps)
}

#[test]
fn mixed_transactions_survive_every_crash() {
    run_test(
        "mixed_transactions_survive_every_crash",
        1_000,
        mixed_workload,
        &["spill-abort"],
    );
}

#[test]
fn checkpoints_and_log_release_survive_every_crash() {
    run_test(
        "checkpoints_and_log_release_survive_every_crash",
        2_000,
        checkpoint_workload,
        &["release"],
    );
}

#[test]
fn spilled_and_interleaved_transactions_survive_every_crash() {
    run_test(
        "spilled_and_interleaved_transactions_survive_every_crash",
        3_000,
        spill_workload,
        &["spill-abort"],
    );
}

#[test]
fn buffered_commits_survive_every_crash_once_synced() {
    run_test(
        "buffered_commits_survive_every_crash_once_synced",
        4_000,
        buffered_workload,
        &[],
    );
}
