//! The crash-sweep driver (ENGINEERING.md section 3, row 7): run a workload on
//! `SimStorage`, crash at every storage call it makes with every damage pattern, recover,
//! and check what recovery yields; over seeds until a test's share of crash states is
//! checked. A test file supplies the workload, the run and the checks ([`Sweep`]); the
//! driver supplies the loops, the seeds, the environment knobs, the crash itself, panic
//! capture and the report ([`run`], [`Outcome`]).
//!
//! Each crash state goes the same way: a fresh `SimStorage` seeded with the state's seed
//! and set to fail from the crash point on ([`SimStorage::crash_after_ops`]: the simulated
//! process dies there); [`Sweep::run`] runs the workload on it; a contract breach seen
//! while running ([`Sweep::violation`]) fails the state; else the storage crashes with the
//! state's damage pattern and [`Sweep::recover`] reopens and checks.
//!
//! A "crash state" is one (crash point, damage pattern) pair of one seed's workload. Crash
//! point `calls + 1` crashes nowhere during the workload: power fails after it ends.
//!
//! Environment (the same for every sweep):
//! - `WALDEN_CRASH_SEED=<n>` runs only that seed (a replay; failure messages print it).
//! - `WALDEN_CRASH_POINT=<n>` with it, runs only that crash point.
//! - `WALDEN_CRASH_STATES=<n>` raises the number of crash states of the whole test file to
//!   at least `n` (a soak: more seeds, starting from a random one that is printed; each
//!   sweep decides what more a soak checks per state).

use crate::seeds::{env_u64, mix, rng_for, CRASH_SEED_VAR};
use crate::simfs::{damage_name, random_damage, restore, Snapshot};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use walden_log::storage::{CrashDamage, SimStorage};

/// Runs only this crash point (with [`CRASH_SEED_VAR`]).
pub const CRASH_POINT_VAR: &str = "WALDEN_CRASH_POINT";

/// Raises the crash states of a test file to at least this many: a soak.
pub const CRASH_STATES_VAR: &str = "WALDEN_CRASH_STATES";

/// Crash states checked by every sweep of this test binary so far (printed as each ends).
static STATES_CHECKED: AtomicU64 = AtomicU64::new(0);

/// What a test file plugs into the driver: how to build one seed's workload, count its
/// storage calls, and check one crash state of it.
pub trait Sweep {
    /// One seed's workload.
    type Workload;

    /// What one run of a workload left behind (its model of what was appended and
    /// acknowledged, ...).
    type Run;

    /// The workload of `seed`.
    fn make(&self, seed: u64) -> Self::Workload;

    /// Runs the workload without a crash: the number of storage calls it makes, or the
    /// whole failure message when it fails or breaks the contract without any crash.
    fn dry_run(&mut self, w: &Self::Workload) -> Result<u64, String>;

    /// Whether the sweep covers `damage` (default: every pattern).
    fn covers(&self, damage: CrashDamage) -> bool {
        let _ = damage;
        true
    }

    /// Runs the workload on `sim`, which fails every call from the state's crash point on.
    fn run(&mut self, w: &Self::Workload, state: &CrashState, sim: &SimStorage) -> Self::Run;

    /// The breach of the contract `run` saw while running (a wrong LSN, a wrong outcome),
    /// if any.
    fn violation(run: &Self::Run) -> Option<&str>;

    /// After the crash: recovers `sim`, checks it against `run`, and runs whatever later
    /// crashes the test adds; every failure goes to `tally`. `soak` is true in a soak.
    fn recover(
        &mut self,
        w: &Self::Workload,
        state: &CrashState,
        run: Self::Run,
        sim: &SimStorage,
        soak: bool,
        tally: &mut Tally,
    );

    /// The failure message of `state` at `stage` (what went wrong: `detail`), with what the
    /// run recorded (`None` when it panicked before it returned) and the files on `sim`.
    fn failure(
        &self,
        w: &Self::Workload,
        state: &CrashState,
        run: Option<&Self::Run>,
        stage: &str,
        detail: &str,
        sim: &SimStorage,
    ) -> String;
}

/// One crash state of a seed's workload.
#[derive(Debug, Clone, Copy)]
pub struct CrashState {
    /// The storage call the simulated process dies at (1-based; `calls + 1`: after the end).
    pub point: u64,
    /// How many storage calls the dry run made.
    pub calls: u64,
    /// The damage pattern of the crash.
    pub damage: CrashDamage,
    /// The position of `damage` in `CrashDamage::ALL`.
    pub damage_index: u64,
    /// The seed of this state's storage and of its later random choices.
    pub seed: u64,
    /// The seed of the workload (what `WALDEN_CRASH_SEED` replays).
    pub workload_seed: u64,
}

impl CrashState {
    /// The head of a failure message: which test, seed, crash point and damage, at what
    /// stage, and the detail.
    pub fn failure(&self, test: &str, stage: &str, detail: &str) -> String {
        format!(
            "crash_sim FAILURE in workload `{test}`, seed {seed}, crash point {point} of {calls} \
             storage calls, damage {damage}; stage: {stage}\n  {detail}",
            seed = self.workload_seed,
            point = self.point,
            calls = self.calls,
            damage = damage_name(self.damage),
        )
    }

    /// The environment that replays this state: `WALDEN_CRASH_SEED=.. WALDEN_CRASH_POINT=..`.
    pub fn replay_vars(&self) -> String {
        format!(
            "{CRASH_SEED_VAR}={} {CRASH_POINT_VAR}={}",
            self.workload_seed, self.point
        )
    }
}

/// Crash states a test file of sweeps checks at least per run (ENGINEERING.md, row 7).
pub const FILE_STATES_MIN: u64 = 10_000;

/// The constants of a test file of sweeps.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// How many `#[test]` functions of the file run sweeps (they share a soak's states).
    pub tests_in_file: u64,
    /// Crash states each test checks at least, per run.
    pub states_per_test: u64,
    /// How many failure messages a test prints in full (all are counted).
    pub failures_shown: usize,
}

impl Budget {
    /// The budget of a file; used in a `const`, it fails the build when the file's tests
    /// together would check fewer than [`FILE_STATES_MIN`] crash states.
    pub const fn new(tests_in_file: u64, states_per_test: u64, failures_shown: usize) -> Self {
        assert!(
            tests_in_file * states_per_test >= FILE_STATES_MIN,
            "the file must check 10,000 states"
        );
        Budget {
            tests_in_file,
            states_per_test,
            failures_shown,
        }
    }
}

/// Counts of one test's run, and its failures.
#[derive(Debug, Default)]
pub struct Tally {
    /// Workload crash states (crash point x damage pattern) checked.
    pub states: u64,
    /// Further crashes checked: after recovery and during recovery.
    pub later_crashes: u64,
    failures: Vec<String>,
    failure_count: u64,
    failures_shown: usize,
}

impl Tally {
    /// Counts a failure; keeps its message if fewer than the budget's are kept.
    pub fn fail(&mut self, message: String) {
        self.failure_count += 1;
        if self.failures.len() < self.failures_shown {
            self.failures.push(message);
        }
    }

    /// How many failures were counted.
    pub fn failure_count(&self) -> u64 {
        self.failure_count
    }
}

/// Runs seeds of the `#[test]` function `test`'s workload, from `base_seed` on, until its
/// share of crash states is checked (or only the replayed seed); a normal run stops at the
/// first seed with a failure. Report and verdict are the caller's: [`Outcome::print`],
/// [`Outcome::assert_passed`].
pub fn run<S: Sweep>(
    sweep: &mut S,
    test: &'static str,
    base_seed: u64,
    budget: &Budget,
) -> Outcome {
    let started = Instant::now();
    let replay = env_u64(CRASH_SEED_VAR);
    let soak_total = env_u64(CRASH_STATES_VAR);
    let soak = soak_total.is_some() && replay.is_none();
    let share = soak_total.map_or(budget.states_per_test, |n| {
        n.div_ceil(budget.tests_in_file).max(budget.states_per_test)
    });
    let mut tally = Tally {
        failures_shown: budget.failures_shown,
        ..Tally::default()
    };
    let seeds = match replay {
        Some(seed) => {
            sweep_seed(sweep, seed, false, &mut tally);
            1
        }
        None => {
            let first_seed = if soak {
                let start: u64 = rand::random::<u32>().into();
                println!("{}: soak of {share} crash states from seed {start}", test);
                start
            } else {
                base_seed
            };
            let mut seeds = 0;
            while tally.states < share {
                sweep_seed(sweep, first_seed + seeds, soak, &mut tally);
                seeds += 1;
                if tally.failure_count > 0 && !soak {
                    break;
                }
            }
            seeds
        }
    };
    let total = STATES_CHECKED.fetch_add(tally.states, Ordering::Relaxed) + tally.states;
    Outcome {
        test,
        tally,
        seeds,
        elapsed: started.elapsed(),
        total,
        share,
        replay: replay.is_some(),
    }
}

/// Runs every crash state of one seed's workload.
fn sweep_seed<S: Sweep>(sweep: &mut S, seed: u64, soak: bool, tally: &mut Tally) {
    let w = sweep.make(seed);
    let calls = match sweep.dry_run(&w) {
        Ok(calls) => calls,
        Err(message) => return tally.fail(message),
    };
    let points: Vec<u64> = match env_u64(CRASH_POINT_VAR) {
        Some(point) => vec![point],
        None => (1..=calls + 1).collect(),
    };
    for point in points {
        for (index, damage) in (0u64..).zip(CrashDamage::ALL) {
            if !sweep.covers(damage) {
                continue;
            }
            let state = CrashState {
                point,
                calls,
                damage,
                damage_index: index,
                seed: mix(seed, point * 16 + index + 1),
                workload_seed: seed,
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                check_state(sweep, &w, &state, soak, tally)
            }));
            if let Err(panic) = outcome {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let sim = SimStorage::new(0);
                tally.fail(sweep.failure(&w, &state, None, "panic", &what, &sim));
            }
        }
    }
}

/// One crash state: run to the crash point, crash, recover and check.
fn check_state<S: Sweep>(
    sweep: &mut S,
    w: &S::Workload,
    state: &CrashState,
    soak: bool,
    tally: &mut Tally,
) {
    let sim = SimStorage::new(state.seed);
    sim.crash_after_ops(Some(state.point));
    let run = sweep.run(w, state, &sim);
    tally.states += 1;
    if let Some(violation) = S::violation(&run) {
        let stage = "running the workload";
        return tally.fail(sweep.failure(w, state, Some(&run), stage, violation, &sim));
    }
    sim.crash(state.damage);
    sweep.recover(w, state, run, &sim, soak, tally);
}

/// What one test's sweep did.
#[derive(Debug)]
pub struct Outcome {
    /// The test's name.
    pub test: &'static str,
    /// Its counts and failures.
    pub tally: Tally,
    /// How many seeds it ran.
    pub seeds: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// Crash states checked by every sweep of this test binary so far, this one included.
    pub total: u64,
    /// The crash states it had to check.
    pub share: u64,
    /// True when it replayed one seed (`WALDEN_CRASH_SEED`).
    pub replay: bool,
}

impl Outcome {
    /// Prints the one-line report; `states_note` follows the crash-state count (a test's
    /// own breakdown, such as " (12 inside checkpoints)").
    pub fn print(&self, states_note: &str) {
        let t = &self.tally;
        println!(
            "{}: {} crash states{states_note} over {} seeds, plus {} crashes after or during \
             recovery, in {:.1?}; {} failures; crash_sim total so far: {} crash states",
            self.test,
            t.states,
            self.seeds,
            t.later_crashes,
            self.elapsed,
            t.failure_count,
            self.total
        );
    }

    /// Panics with the first failure messages if anything failed, and, unless this was a
    /// replay, if fewer crash states than the share were checked.
    pub fn assert_passed(&self) {
        let t = &self.tally;
        if t.failure_count > 0 {
            panic!(
                "{} failures in {}; the first {}:\n\n{}",
                t.failure_count,
                self.test,
                t.failures.len(),
                t.failures.join("\n\n")
            );
        }
        if !self.replay {
            assert!(
                t.states >= self.share,
                "{} checked only {} crash states, fewer than its share of {}",
                self.test,
                t.states,
                self.share
            );
        }
    }
}

/// The crash-during-recovery sweep (row 18) of one crash state: for every storage call
/// `k` of the recovery (`recovery_calls` of them), `check(k, seed)` reruns the recovery
/// with a crash there and checks the one after (see [`crashed_inside_recovery`]). Each
/// counts as a later crash; the first failure is kept and ends the sweep.
pub fn sweep_recovery(
    tally: &mut Tally,
    state_seed: u64,
    recovery_calls: u64,
    mut check: impl FnMut(u64, u64) -> Result<(), String>,
) {
    for k in 1..=recovery_calls {
        tally.later_crashes += 1;
        if let Err(message) = check(k, mix(state_seed, 1000 + k)) {
            tally.fail(message);
            break;
        }
    }
}

/// A copy of the crashed file system `crashed` (directories `dirs`, storage seeded with
/// `seed`) whose recovery, `reopen`, died at its storage call `call` of `recovery_calls`,
/// after which the storage crashed with a damage pattern picked by `seed`. Returns it with
/// the stage line that names what happened, for failure messages.
pub fn crashed_inside_recovery(
    seed: u64,
    dirs: &[&Path],
    crashed: &Snapshot,
    (call, recovery_calls): (u64, u64),
    reopen: impl FnOnce(&SimStorage),
) -> (SimStorage, String) {
    let sim = restore(seed, dirs, crashed);
    sim.crash_after_ops(Some(call));
    reopen(&sim);
    let damage = random_damage(&mut rng_for(seed, 3));
    sim.crash(damage);
    let stage = format!(
        "crash during recovery at its call {call} of {recovery_calls}, then damage {}, then \
         recovery",
        damage_name(damage)
    );
    (sim, stage)
}

/// Why a workload stopped early.
#[derive(Debug)]
pub enum Stop {
    /// A storage error: the simulated process died there.
    Died(String),
    /// A breach of the contract seen while running (a wrong LSN, a wrong outcome, ...).
    Violation(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failure messages name the state and the environment that replays it.
    #[test]
    fn a_failure_names_its_state_and_replay() {
        let state = CrashState {
            point: 7,
            calls: 40,
            damage: CrashDamage::TornPrefix,
            damage_index: 5,
            seed: 99,
            workload_seed: 1_003,
        };
        assert_eq!(
            state.failure("t", "recovery", "lost LSN 3"),
            "crash_sim FAILURE in workload `t`, seed 1003, crash point 7 of 40 storage calls, \
             damage TornPrefix; stage: recovery\n  lost LSN 3"
        );
        assert_eq!(
            state.replay_vars(),
            "WALDEN_CRASH_SEED=1003 WALDEN_CRASH_POINT=7"
        );
    }

    #[test]
    #[should_panic(expected = "the file must check 10,000 states")]
    fn a_budget_below_the_file_minimum_is_refused() {
        let _ = Budget::new(4, 2_000, 1);
    }
}
