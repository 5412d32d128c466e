//! Crash simulation: a crash at every storage call of a workload, under every damage pattern
//! (ENGINEERING.md section 3, rows 7, 8, 9, 17 and 18).
//!
//! For each workload and seed, a dry run on a fresh [`SimStorage`] counts the storage calls
//! the workload makes. Then, for every call `N` and every [`CrashDamage`] pattern:
//! 1. A fresh `SimStorage` with `crash_after_ops(Some(N))` runs the workload while a
//!    [`Model`] records every record handed to the log and every acknowledgement (an append
//!    at `Durability::Sync` that returned `Ok`, or a `sync()` that returned `Ok`). The first
//!    error ends the workload: the simulated process died there.
//! 2. The log is dropped, the storage crashes with the damage pattern, and the log is
//!    reopened in the default recovery mode (`TolerateTornTail`). A refusal to open after a
//!    pure crash is a failure.
//! 3. What it reads back must be allowed by the model (see `support::Model`): a prefix of
//!    the appended stream, exact bytes, no hole, no reordering, no stale record, every
//!    acknowledged record, LSNs never going backwards, no torn batch, and a first LSN no
//!    later than the highest `truncate_before` argument. A `truncate_after` that returned
//!    `Ok` removes the records after the cut from the stream (they must never come back); one
//!    that failed lets the log end anywhere from the cut to the old end.
//! 4. Recovery after recovery: four more records are appended on the recovered log, the
//!    process dies (half the time at a random storage call among those appends), the storage
//!    crashes again with a random pattern, and the log must reopen holding everything it
//!    recovered before (the open made it durable) plus the new acknowledged records.
//! 5. Crash during recovery (row 18): for one damage pattern per crash point (rotating; every
//!    state in a soak), the crashed file system is copied and its recovery rerun with a crash
//!    at each of the recovery's own storage calls, then a crash with a random pattern, then
//!    a clean open that must again satisfy the model of step 3.
//!
//! A "crash state" (the count each test asserts, at least its share of [`BUDGET`]) is one
//! (workload crash point, damage pattern) pair; the crashes of steps 4 and 5 are counted
//! apart. Workloads: `single_writer`, `concurrent_durable_writers`, `rotation_heavy` and
//! `truncation_with_recycling`, each documented at its generator below. Every fourth seed
//! of the single-threaded ones (every other of the concurrent one) prepares segments on the
//! background thread. Every third seed makes new segments by reserving their blocks
//! (`Preallocation::Reserve`; in the simulator `fallocate` is a length change) instead of
//! zero-filling them; the others use the default (`Adaptive`: zero-fill inline, and on the
//! background thread zero-fill or reserve as the writer's pace says).
//!
//! Environment (walden_testkit::sweep runs the seeds and crash points):
//! - `WALDEN_CRASH_SEED=<n>` runs only that seed (a replay; failure messages print it).
//! - `WALDEN_CRASH_POINT=<n>` with it, runs only that crash point.
//! - `WALDEN_CRASH_STATES=<n>` raises the number of crash states of the whole file to at
//!   least `n` (a soak: more seeds, starting from a random one that is printed, and the
//!   crash-during-recovery sweep on every state).
//!
//! Replays are exact for the single-threaded workloads with segments prepared inline; the
//! concurrent workload and the seeds that prepare segments on a background thread depend on
//! thread timing, so a replay reaches the same states only approximately.
#![allow(clippy::unwrap_used)]

mod support;

use rand::rngs::SmallRng;
use rand::Rng;
use std::path::Path;
use support::{
    describe_files, open, read_all, record_bytes, recover, sim_options, snapshot, Model, Recovered,
    DIR, SMALL_SEGMENT_BYTES,
};
use walden_log::storage::SimStorage;
use walden_log::{Durability, Lsn, Options, Preallocation, StatsSnapshot, Wal};
use walden_testkit::seeds::{mix, rng_for};
use walden_testkit::simfs::{damage_name, random_damage, Snapshot};
use walden_testkit::sweep::{self, CrashState, Stop, Sweep, Tally};

/// The `#[test]` functions in this file (4, each a workload), the crash states (workload
/// crash point x damage pattern) each checks at least per run (4,000), and how many failure
/// messages a test prints in full (4; it counts all of them).
const BUDGET: sweep::Budget = sweep::Budget::new(4, 4_000, 4);

/// One call a single-threaded workload makes.
#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>, Durability),
    Batch(Vec<Vec<u8>>, Durability),
    Sync,
    TruncateBefore(u64),
    TruncateAfter(u64),
}

impl Op {
    fn label(&self) -> String {
        match self {
            Op::Append(d, durability) => format!("append {} bytes {durability:?}", d.len()),
            Op::Batch(r, durability) => format!("batch of {} {durability:?}", r.len()),
            Op::Sync => "sync".into(),
            Op::TruncateBefore(l) => format!("truncate_before({l})"),
            Op::TruncateAfter(l) => format!("truncate_after({l})"),
        }
    }
}

/// What a workload does.
enum Plan {
    /// One thread, these calls in order.
    Script(Vec<Op>),
    /// One thread per list, each appending its records at `Durability::Sync`.
    Concurrent(Vec<Vec<Vec<u8>>>),
}

/// A workload with its seed and options.
struct Workload {
    /// The `#[test]` function that runs it (for the replay command).
    test: &'static str,
    seed: u64,
    options: Options,
    plan: Plan,
    /// True when the same seed makes the same storage calls (no thread timing involved).
    deterministic: bool,
    /// What a complete run must have exercised (rotations, recycling, ...), judged from the
    /// log's counters at the end of the dry run; `Err` says what is missing.
    exercises: fn(&StatsSnapshot) -> Result<(), String>,
}

/// What one run of a workload left behind.
struct Run {
    model: Model,
    /// A breach of the contract seen while running (a wrong LSN returned, ...).
    violation: Option<String>,
    /// The error that ended the workload early, if any (the simulated death).
    stopped_by: Option<String>,
    /// The log's counters at the end of the workload (if it opened).
    stats: Option<StatsSnapshot>,
}

fn died(e: walden_log::Error) -> Stop {
    Stop::Died(e.to_string())
}

fn run_workload(w: &Workload, sim: &SimStorage) -> Run {
    match &w.plan {
        Plan::Script(ops) => run_script(sim, &w.options, ops),
        Plan::Concurrent(threads) => run_concurrent(sim, &w.options, threads),
    }
}

fn run_script(sim: &SimStorage, options: &Options, ops: &[Op]) -> Run {
    let mut run = Run {
        model: Model::new(),
        violation: None,
        stopped_by: None,
        stats: None,
    };
    let wal = match open(sim, options.clone()) {
        Ok(wal) => wal,
        Err(e) => {
            run.stopped_by = Some(format!("open: {e}"));
            return run;
        }
    };
    for (i, op) in ops.iter().enumerate() {
        match apply(&wal, op, &mut run.model) {
            Ok(()) => {}
            Err(Stop::Died(e)) => {
                run.stopped_by = Some(format!("op {i} ({}): {e}", op.label()));
                break;
            }
            Err(Stop::Violation(v)) => {
                run.violation = Some(format!("op {i} ({}): {v}", op.label()));
                break;
            }
        }
    }
    run.stats = Some(wal.stats());
    // Dropping syncs what is buffered (best effort); those calls are crash points too.
    drop(wal);
    run
}

fn apply(wal: &Wal, op: &Op, model: &mut Model) -> Result<(), Stop> {
    match op {
        Op::Append(data, durability) => {
            let lsn = model.append(std::slice::from_ref(data));
            let got = wal.append_with(data, *durability).map_err(died)?;
            expect_lsn(got, lsn)?;
            if *durability == Durability::Sync {
                model.ack(lsn);
            }
        }
        Op::Batch(records, durability) => {
            let first = model.append(records);
            let got = wal.append_batch(records, *durability).map_err(died)?;
            expect_lsn(got, first)?;
            if *durability == Durability::Sync {
                model.ack(first + records.len() as u64 - 1);
            }
        }
        Op::Sync => {
            let last = model.next - 1;
            let durable = wal.sync().map_err(died)?;
            if durable.0 < last {
                return Err(Stop::Violation(format!(
                    "sync returned durable LSN {durable} after LSN {last} was appended"
                )));
            }
            model.ack(last);
        }
        Op::TruncateBefore(lsn) => {
            model.release_before(*lsn);
            wal.truncate_before(Lsn(*lsn)).map_err(died)?;
            let first = wal.first_lsn();
            if first.0 > *lsn {
                return Err(Stop::Violation(format!(
                    "truncate_before({lsn}) left the log starting at LSN {first}"
                )));
            }
        }
        Op::TruncateAfter(lsn) => {
            model.truncating_after(*lsn);
            wal.truncate_after(Lsn(*lsn)).map_err(died)?;
            model.cut_after(*lsn);
            let next = wal.next_lsn();
            if next.0 != lsn + 1 {
                return Err(Stop::Violation(format!(
                    "after truncate_after({lsn}) the next LSN is {next}"
                )));
            }
        }
    }
    Ok(())
}

fn expect_lsn(got: Lsn, want: u64) -> Result<(), Stop> {
    if got.0 == want {
        Ok(())
    } else {
        Err(Stop::Violation(format!(
            "the log assigned LSN {got} where LSN {want} was next"
        )))
    }
}

/// Each thread appends its records at `Durability::Sync` until its first error. LSNs of
/// failed appends are unknown, so those records go to `Model::unplaced`.
fn run_concurrent(sim: &SimStorage, options: &Options, threads: &[Vec<Vec<u8>>]) -> Run {
    let mut run = Run {
        model: Model::new(),
        violation: None,
        stopped_by: None,
        stats: None,
    };
    let wal = match open(sim, options.clone()) {
        Ok(wal) => wal,
        Err(e) => {
            run.stopped_by = Some(format!("open: {e}"));
            return run;
        }
    };
    type Outcome = (Vec<(u64, Vec<u8>)>, Option<(Vec<u8>, String)>);
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = threads
            .iter()
            .map(|records| {
                let wal = &wal;
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for record in records {
                        match wal.append_with(record, Durability::Sync) {
                            Ok(lsn) => acked.push((lsn.0, record.clone())),
                            Err(e) => return (acked, Some((record.clone(), e.to_string()))),
                        }
                    }
                    (acked, None)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    run.stats = Some(wal.stats());
    drop(wal);
    let model = &mut run.model;
    for (thread, (acked, failed)) in outcomes.into_iter().enumerate() {
        let mut previous = 0;
        for (lsn, data) in acked {
            if lsn <= previous {
                run.violation.get_or_insert(format!(
                    "thread {thread} got LSN {lsn} after LSN {previous}"
                ));
            }
            previous = lsn;
            if model.known.insert(lsn, data).is_some() {
                run.violation
                    .get_or_insert(format!("LSN {lsn} was assigned to two appends"));
            }
            model.ack(lsn);
        }
        if let Some((data, error)) = failed {
            model.unplaced.push(data);
            run.stopped_by
                .get_or_insert(format!("thread {thread}: {error}"));
        }
    }
    let last = model.known.keys().next_back().copied().unwrap_or(0);
    let holes = last - model.known.len() as u64;
    if holes > model.unplaced.len() as u64 {
        run.violation.get_or_insert(format!(
            "{holes} LSNs up to {last} were handed to no successful append, but only {} \
             appends failed",
            model.unplaced.len()
        ));
    }
    model.next = last + 1;
    run
}

/// The failure message of a crash state: where, what, and the replay command.
fn message(
    w: &Workload,
    state: &CrashState,
    stage: &str,
    detail: &str,
    model: &Model,
    sim: &SimStorage,
) -> String {
    let exact = if w.deterministic {
        ""
    } else {
        " (thread timing varies, so the replay is approximate)"
    };
    format!(
        "{head}\n  {summary}\n  files now: {files}\n  replay{exact}: {vars} cargo test -p \
         walden-log --test crash_sim {test}",
        head = state.failure(w.test, stage, detail),
        summary = model.summary(),
        files = describe_files(sim),
        vars = state.replay_vars(),
        test = w.test,
    )
}

/// The sweep of one `#[test]`: its workload generator.
struct LogSweep {
    test: &'static str,
    make: fn(&'static str, u64) -> Workload,
}

impl Sweep for LogSweep {
    type Workload = Workload;
    type Run = Run;

    fn make(&self, seed: u64) -> Workload {
        (self.make)(self.test, seed)
    }

    /// Counts the storage calls and makes sure the workload itself is valid; the
    /// nondeterministic ones run three times and take the most calls.
    fn dry_run(&mut self, w: &Workload) -> Result<u64, String> {
        let dry_runs = if w.deterministic { 1 } else { 3 };
        let mut calls = 0;
        for i in 0..dry_runs {
            let sim = SimStorage::new(mix(w.seed, i));
            let before = sim.op_count();
            let run = run_workload(w, &sim);
            calls = calls.max(sim.op_count() - before);
            let missing = match run.stats.as_ref().map(w.exercises) {
                Some(Err(missing)) => {
                    Some(format!("it did not exercise what it is for: {missing}"))
                }
                _ => None,
            };
            if let Some(problem) = run.violation.or(run.stopped_by).or(missing) {
                return Err(format!(
                    "crash_sim FAILURE in workload `{}`, seed {}: the workload fails without any \
                     crash: {problem}",
                    w.test, w.seed
                ));
            }
        }
        Ok(calls)
    }

    fn run(&mut self, w: &Workload, _state: &CrashState, sim: &SimStorage) -> Run {
        run_workload(w, sim)
    }

    fn violation(run: &Run) -> Option<&str> {
        run.violation.as_deref()
    }

    /// The crash-during-recovery sweep runs, in a normal run, at every crash point with one
    /// damage pattern (rotating through the six); in a soak, at every state.
    fn recover(
        &mut self,
        w: &Workload,
        state: &CrashState,
        run: Run,
        sim: &SimStorage,
        soak: bool,
        tally: &mut Tally,
    ) {
        let sweep_recovery = soak || state.point % 6 == state.damage_index;
        recover_and_check(w, state, &run, sim, sweep_recovery, tally);
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
        let model = run.map_or_else(Model::new, |r| r.model.clone());
        message(w, state, stage, detail, &model, sim)
    }
}

/// After the crash of one state: recover and check; then the later crashes.
fn recover_and_check(
    w: &Workload,
    state: &CrashState,
    run: &Run,
    sim: &SimStorage,
    sweep_recovery: bool,
    tally: &mut Tally,
) {
    let state_seed = state.seed;
    let crashed = if sweep_recovery {
        Some(snapshot(sim))
    } else {
        None
    };
    let before = sim.op_count();
    let wal = match open(sim, w.options.clone()) {
        Ok(wal) => wal,
        Err(e) => {
            let detail = format!("recovery refused to open after a crash: {e}");
            let m = message(w, state, "recovery", &detail, &run.model, sim);
            tally.fail(m);
            return;
        }
    };
    let recovery_calls = sim.op_count() - before;
    let recovered = match read_all(&wal).and_then(|r| run.model.check(&r).map(|()| r)) {
        Ok(r) => r,
        Err(detail) => {
            let m = message(w, state, "first recovery", &detail, &run.model, sim);
            tally.fail(m);
            return;
        }
    };
    let mut rng = rng_for(state_seed, 2);
    tally.later_crashes += 1;
    if let Err(failure) = round_two(w, sim, wal, &run.model, &recovered, &mut rng) {
        let (stage, detail, model) = *failure;
        let m = message(w, state, &stage, &detail, &model, sim);
        tally.fail(m);
    }
    if let Some(crashed) = crashed {
        sweep::sweep_recovery(tally, state_seed, recovery_calls, |k, seed| {
            let calls = (k, recovery_calls);
            crash_during_recovery(w, &crashed, &run.model, calls, seed).map_err(
                |(stage, detail, sim)| message(w, state, &stage, &detail, &run.model, &sim),
            )
        });
    }
}

/// Appends a few records on a recovered log, kills the process (half the time at a random
/// storage call among them, else after them), crashes the storage with a random pattern and
/// checks the next recovery: everything recovered before (it is durable now) plus every
/// new acknowledged record.
fn round_two(
    w: &Workload,
    sim: &SimStorage,
    wal: Wal,
    model: &Model,
    recovered: &Recovered,
    rng: &mut SmallRng,
) -> Result<(), Box<(String, String, Model)>> {
    let mut m = model.after_recovery(recovered);
    let appends = [
        (Durability::Sync, rng.gen_range(8..200)),
        (Durability::Buffered, rng.gen_range(200..3000)),
        (Durability::Sync, rng.gen_range(2000..6000)),
        (Durability::Buffered, rng.gen_range(8..100)),
    ];
    // The four appends make about a dozen storage calls (more when one rotates).
    let death = rng.gen_bool(0.5).then(|| rng.gen_range(1..=14u64));
    sim.crash_after_ops(death);
    let mut died = None;
    for (i, (durability, len)) in appends.into_iter().enumerate() {
        let lsn = m.next;
        let data = record_bytes(&format!("round2 seed {} #{i} lsn {lsn}", w.seed), len);
        m.append(std::slice::from_ref(&data));
        match wal.append_with(&data, durability) {
            Ok(got) if got.0 == lsn => {}
            Ok(got) => {
                let detail = format!("append after recovery got LSN {got}, expected {lsn}");
                return Err(Box::new(("round two".into(), detail, m)));
            }
            Err(_) if death.is_some() => {
                died = Some(i);
                break;
            }
            Err(e) => {
                let detail = format!("append after recovery failed: {e}");
                return Err(Box::new(("round two".into(), detail, m)));
            }
        }
        if durability == Durability::Sync {
            m.ack(lsn);
        }
    }
    // The process dies (every later call fails), then the power.
    sim.crash_after_ops(Some(1));
    drop(wal);
    let damage = random_damage(rng);
    sim.crash(damage);
    let death = match (death, died) {
        (Some(k), Some(i)) => format!("the process died at call {k}, in append #{i}"),
        _ => "the process died after them".into(),
    };
    let stage = format!(
        "round two (4 appends on the recovered log; {death}; then a crash with {})",
        damage_name(damage)
    );
    let second = recover(sim, w.options.clone()).and_then(|(_wal, r)| m.check(&r));
    second.map_err(|detail| Box::new((stage, detail, m)))
}

/// Reruns the recovery of a crashed file system with a crash at its `k`-th storage call
/// (`calls`: `k` and the recovery's count), crashes with a random pattern, and checks the
/// recovery after that.
fn crash_during_recovery(
    w: &Workload,
    crashed: &Snapshot,
    model: &Model,
    calls: (u64, u64),
    seed: u64,
) -> Result<(), (String, String, SimStorage)> {
    let (sim, stage) =
        sweep::crashed_inside_recovery(seed, &[Path::new(DIR)], crashed, calls, |sim| {
            drop(open(sim, w.options.clone()));
        });
    let outcome = recover(&sim, w.options.clone()).and_then(|(_wal, r)| model.check(&r));
    outcome.map_err(|detail| (stage, detail, sim))
}

/// Runs seeds of one workload until this test's share of crash states is checked (or only
/// the replayed seed), then reports, and fails with the first messages if anything failed.
fn run_test(test: &'static str, base_seed: u64, make: fn(&'static str, u64) -> Workload) {
    let outcome = sweep::run(&mut LogSweep { test, make }, test, base_seed, &BUDGET);
    outcome.print("");
    outcome.assert_passed();
}

/// A record size: some 1-byte, many small, some medium, some of a few KiB.
fn mixed_size(rng: &mut SmallRng) -> usize {
    match rng.gen_range(0..10) {
        0 | 1 => 1,
        2..=4 => rng.gen_range(2..64),
        5..=7 => rng.gen_range(64..1024),
        _ => rng.gen_range(2048..5000),
    }
}

/// `Ok` when the counter `what` reached `min`.
fn at_least(what: &str, value: u64, min: u64) -> Result<(), String> {
    if value >= min {
        Ok(())
    } else {
        Err(format!("{what}: {value}, expected at least {min}"))
    }
}

fn durability(rng: &mut SmallRng, sync_share: f64) -> Durability {
    if rng.gen_bool(sync_share) {
        Durability::Sync
    } else {
        Durability::Buffered
    }
}

/// Builds a script while tracking the LSNs it will get (the engine assigns them densely).
struct ScriptBuilder {
    rng: SmallRng,
    ops: Vec<Op>,
    next: u64,
    /// Bumped by each `truncate_after`, so records at reused LSNs differ from the old ones.
    generation: u32,
    batches: Vec<std::ops::Range<u64>>,
    tag: String,
}

impl ScriptBuilder {
    fn new(tag: String, seed: u64) -> Self {
        ScriptBuilder {
            rng: rng_for(seed, 1),
            ops: Vec::new(),
            next: 1,
            generation: 0,
            batches: Vec::new(),
            tag,
        }
    }

    fn record(&self, lsn: u64, len: usize) -> Vec<u8> {
        let tag = format!("{} g{} lsn {lsn}", self.tag, self.generation);
        record_bytes(&tag, len)
    }

    fn append(&mut self, len: usize, durability: Durability) {
        let data = self.record(self.next, len);
        self.ops.push(Op::Append(data, durability));
        self.next += 1;
    }

    fn batch(&mut self, lens: &[usize], durability: Durability) {
        let records: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, len)| self.record(self.next + i as u64, *len))
            .collect();
        self.batches.push(self.next..self.next + lens.len() as u64);
        self.next += lens.len() as u64;
        self.ops.push(Op::Batch(records, durability));
    }

    /// `n` appends (a sixth of them batches of 2 or 3) of sizes in `sizes`.
    fn appends(&mut self, n: usize, sizes: std::ops::Range<usize>, sync_share: f64) {
        for _ in 0..n {
            let d = durability(&mut self.rng, sync_share);
            if self.rng.gen_range(0..6) == 0 {
                let count = self.rng.gen_range(2..=3);
                let lens: Vec<usize> = (0..count)
                    .map(|_| self.rng.gen_range(sizes.clone()) / 2)
                    .collect();
                self.batch(&lens, d);
            } else {
                let len = self.rng.gen_range(sizes.clone());
                self.append(len, d);
            }
        }
    }

    /// True when a log cut after `lsn` would split a batch.
    fn splits_batch(&self, lsn: u64) -> bool {
        self.batches
            .iter()
            .any(|b| b.start <= lsn && lsn + 1 < b.end)
    }

    fn truncate_after(&mut self, lsn: u64) {
        self.ops.push(Op::TruncateAfter(lsn));
        self.next = lsn + 1;
        self.batches.retain(|b| b.end <= lsn + 1);
        self.generation += 1;
    }
}

/// How a seed's workload makes new segments: every third seed reserves them.
fn preallocation(seed: u64) -> Preallocation {
    if seed % 3 == 1 {
        Preallocation::Reserve
    } else {
        Preallocation::Adaptive
    }
}

/// ~40 appends of mixed sizes (1 byte to a few KiB), a few batches and syncs, mixed Sync
/// and Buffered, on the smallest segments: several rotations (row 8).
fn single_writer_workload(test: &'static str, seed: u64) -> Workload {
    let mut b = ScriptBuilder::new(format!("single seed {seed}"), seed);
    for _ in 0..40 {
        let roll = b.rng.gen_range(0..100);
        let d = durability(&mut b.rng, 0.5);
        if roll < 8 {
            b.ops.push(Op::Sync);
        } else if roll < 16 {
            let count = b.rng.gen_range(2..=4);
            let lens: Vec<usize> = (0..count).map(|_| mixed_size(&mut b.rng)).collect();
            b.batch(&lens, d);
        } else {
            let len = mixed_size(&mut b.rng);
            b.append(len, d);
        }
    }
    // Every fourth seed prepares segments on the background thread.
    let background = seed % 4 == 3;
    Workload {
        test,
        seed,
        options: sim_options(SMALL_SEGMENT_BYTES)
            .prepare_in_background(background)
            .preallocation(preallocation(seed)),
        plan: Plan::Script(b.ops),
        deterministic: !background,
        exercises: |stats| at_least("rotations", stats.rotations, 1),
    }
}

/// Four threads appending at `Durability::Sync` at once (group commit under crashes).
fn concurrent_workload(test: &'static str, seed: u64) -> Workload {
    let mut rng = rng_for(seed, 1);
    let threads: Vec<Vec<Vec<u8>>> = (0..4)
        .map(|t| {
            (0..8)
                .map(|i| {
                    let len = rng.gen_range(16..1500);
                    record_bytes(&format!("concurrent seed {seed} thread {t} #{i}"), len)
                })
                .collect()
        })
        .collect();
    let background = seed % 2 == 1;
    Workload {
        test,
        seed,
        options: sim_options(SMALL_SEGMENT_BYTES)
            .prepare_in_background(background)
            .preallocation(preallocation(seed)),
        plan: Plan::Concurrent(threads),
        deterministic: false,
        exercises: |stats| {
            at_least("records appended", stats.records_appended, 32)?;
            at_least("rotations", stats.rotations, 1)
        },
    }
}

/// Records of 3-4 KiB on 16 KiB segments (12 KiB of frames each): a rotation every three
/// appends. Runs of up to seven buffered appends (up to two rotations) end with a durable
/// call, so one group commit often writes the headers of two new segments at once and a
/// crash can keep the later header while losing the earlier one.
fn rotation_heavy_workload(test: &'static str, seed: u64) -> Workload {
    let mut b = ScriptBuilder::new(format!("rotation seed {seed}"), seed);
    while b.ops.len() < 24 {
        for _ in 0..b.rng.gen_range(0..=7) {
            if b.rng.gen_range(0..5) == 0 {
                let lens = [b.rng.gen_range(1400..2000), b.rng.gen_range(1400..2000)];
                b.batch(&lens, Durability::Buffered);
            } else {
                let len = b.rng.gen_range(2900..4100);
                b.append(len, Durability::Buffered);
            }
        }
        match b.rng.gen_range(0..3) {
            0 => b.ops.push(Op::Sync),
            1 => {
                let lens = [b.rng.gen_range(1400..2000), b.rng.gen_range(1400..2000)];
                b.batch(&lens, Durability::Sync);
            }
            _ => {
                let len = b.rng.gen_range(2900..4100);
                b.append(len, Durability::Sync);
            }
        }
    }
    let background = seed % 4 == 3;
    Workload {
        test,
        seed,
        options: sim_options(SMALL_SEGMENT_BYTES)
            .prepare_in_background(background)
            .preallocation(preallocation(seed)),
        plan: Plan::Script(b.ops),
        deterministic: !background,
        exercises: |stats| at_least("rotations", stats.rotations, 4),
    }
}

/// Appends, sync, `truncate_before` (released segments are recycled as new ones, row 17),
/// more appends, `truncate_after` (LSNs reused with new bytes), more appends and releases.
fn truncation_workload(test: &'static str, seed: u64) -> Workload {
    let mut b = ScriptBuilder::new(format!("truncation seed {seed}"), seed);
    b.appends(14, 700..2500, 0.4);
    b.ops.push(Op::Sync);
    let low = b.rng.gen_range(b.next / 2..b.next);
    b.ops.push(Op::TruncateBefore(low));
    // A buffered append that may rotate, then a release up to it: the segment released
    // last is followed by one whose header may not be durable yet.
    let len = b.rng.gen_range(2000..3000);
    b.append(len, Durability::Buffered);
    let floor = b.next - 1;
    b.ops.push(Op::TruncateBefore(floor));
    // Enough appends that a cut in the first third releases two or three whole segments
    // (newest first: a crash in between must leave a contiguous log).
    b.appends(18, 700..2500, 0.4);
    b.ops.push(Op::Sync);
    let options = sim_options(SMALL_SEGMENT_BYTES).recycle_segments_max(2);
    // Half the seeds cut exactly at a segment boundary: then the segment after the cut is
    // released whole and (recycled) becomes the new segment, whose old frames continue the
    // log's chain exactly. Otherwise the cut falls in the first third of the records since
    // the floor.
    let boundaries: Vec<u64> = segment_first_lsns(&options, &b.ops)
        .into_iter()
        .map(|first| first - 1)
        .filter(|&cut| floor <= cut && cut + 1 < b.next && !b.splits_batch(cut))
        .collect();
    let mut cut = b.rng.gen_range(floor..floor + (b.next - floor) / 3);
    while b.splits_batch(cut) {
        cut += 1;
    }
    if !boundaries.is_empty() && b.rng.gen_bool(0.5) {
        cut = boundaries[b.rng.gen_range(0..boundaries.len())];
    }
    b.truncate_after(cut);
    b.appends(8, 700..2500, 0.5);
    b.ops.push(Op::Sync);
    let release = b.next - 2;
    b.ops.push(Op::TruncateBefore(release));
    b.appends(6, 700..2500, 0.5);
    let background = seed % 4 == 3;
    Workload {
        test,
        seed,
        options: options
            .prepare_in_background(background)
            .preallocation(preallocation(seed)),
        plan: Plan::Script(b.ops),
        deterministic: !background,
        exercises: |stats| {
            at_least("segments released", stats.segments_released, 3)?;
            at_least("segments recycled", stats.segments_recycled, 1)
        },
    }
}

/// The first LSN of every live segment after `ops` run without a crash (segment boundaries
/// depend only on record sizes and options, not on timing).
fn segment_first_lsns(options: &Options, ops: &[Op]) -> Vec<u64> {
    let sim = SimStorage::new(0);
    let wal = open(&sim, options.clone()).unwrap();
    let mut model = Model::new();
    for op in ops {
        assert!(
            apply(&wal, op, &mut model).is_ok(),
            "the script prefix failed without a crash at {}",
            op.label()
        );
    }
    wal.segments().iter().map(|s| s.first_lsn.0).collect()
}

#[test]
fn single_writer() {
    run_test("single_writer", 1_000, single_writer_workload);
}

#[test]
fn concurrent_durable_writers() {
    run_test("concurrent_durable_writers", 2_000, concurrent_workload);
}

#[test]
fn rotation_heavy() {
    run_test("rotation_heavy", 3_000, rotation_heavy_workload);
}

#[test]
fn truncation_with_recycling() {
    run_test("truncation_with_recycling", 4_000, truncation_workload);
}
