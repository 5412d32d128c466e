//! Gathering commits before a publisher turn snapshots, as the log's group-commit leader
//! gathers appends (`walden_log::regroup`).
//!
//! A turn publishes the commits applied before its snapshot, after one wait for the log to
//! make them durable. Without gathering, the committers a turn releases apply their next
//! commits a few microseconds after the next turn has already snapshotted, and N closed-loop
//! committers settle into two alternating turns of N/2 (W6 at 64 writers: 27 commits per
//! fsync against the log's 50 for the same batches). So a new publisher may first wait until
//! the commits applied since the last snapshot reach what the last turn published plus what
//! was applied during it, never longer than about one turn's durability wait; the policy
//! (lone committer never waits, pause after a gather that came back short) is the log's
//! [`Regroup`].

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use walden_log::regroup::{Gather, Regroup};

/// Commit counting and the gathering publisher's wake-up.
#[derive(Debug, Default)]
pub(crate) struct Gathering {
    /// Commits applied since the store opened.
    applied: AtomicU64,
    /// Nonzero while a publisher gathers: the applied count it waits for.
    target: AtomicU64,
    /// Paired with `cv`; holds nothing (the counts are atomics).
    lock: Mutex<()>,
    cv: Condvar,
}

/// What the running turn needs to tell the policy when it ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TurnCounts {
    /// Applied count at the previous turn's snapshot.
    pub before: u64,
    /// Applied count at this turn's snapshot.
    pub at_snapshot: u64,
}

impl Gathering {
    /// A commit was applied (called under the store's commit mutex). Wakes a gathering
    /// publisher whose goal it meets.
    pub fn applied_one(&self) {
        let applied = self.applied.fetch_add(1, SeqCst) + 1;
        let target = self.target.load(SeqCst);
        if target != 0 && applied >= target {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.cv.notify_one();
        }
    }

    /// Commits applied so far.
    pub fn applied(&self) -> u64 {
        self.applied.load(SeqCst)
    }

    /// Waits until `plan.records` commits were applied since `since`, or `plan.wait` passed.
    /// Returns the count pending (applied since `since`) at the end, and whether the goal
    /// was met.
    pub fn gather(&self, plan: Gather, since: u64) -> (u64, bool) {
        let target = since.saturating_add(plan.records);
        let deadline = Instant::now() + plan.wait;
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.target.store(target, SeqCst);
        let reached = loop {
            if self.applied.load(SeqCst) >= target {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            guard = self
                .cv
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        self.target.store(0, SeqCst);
        drop(guard);
        (self.applied().saturating_sub(since), reached)
    }
}

/// The publisher turns' gathering policy and its bookkeeping; lives under the publish mutex.
#[derive(Debug, Default)]
pub(crate) struct TurnPolicy {
    regroup: Regroup,
    /// Applied count at the last turn's snapshot.
    last_snapshot: u64,
}

impl TurnPolicy {
    /// What a new publisher should gather, given the applied count now; and the count its
    /// turn starts from.
    pub fn plan(&mut self, applied_now: u64) -> (Option<Gather>, u64) {
        let since = self.last_snapshot;
        (self.regroup.plan(applied_now.saturating_sub(since)), since)
    }

    /// A gather planned by [`TurnPolicy::plan`] ended with `pending` commits since the last
    /// snapshot (`started_with` when it began).
    pub fn gathered(&mut self, plan: Gather, started_with: u64, pending: u64, reached: bool) {
        self.regroup.gathered(plan, started_with, pending, reached);
    }

    /// A turn snapshotted at `counts.at_snapshot`; it ended (published, after waiting
    /// `durable_wait` for the log) with `applied_now` commits applied.
    pub fn turn_done(&mut self, counts: TurnCounts, applied_now: u64, durable_wait: Duration) {
        self.last_snapshot = self.last_snapshot.max(counts.at_snapshot);
        let published = counts.at_snapshot.saturating_sub(counts.before);
        let pending_after = applied_now.saturating_sub(counts.at_snapshot);
        self.regroup
            .group_done(published, pending_after, durable_wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_gather_ends_when_the_applied_commits_reach_its_goal() {
        let g = Arc::new(Gathering::default());
        g.applied_one();
        let plan = Gather {
            records: 3,
            wait: Duration::from_secs(30),
        };
        let committer = {
            let g = g.clone();
            std::thread::spawn(move || {
                for _ in 0..3 {
                    std::thread::sleep(Duration::from_millis(5));
                    g.applied_one();
                }
            })
        };
        // Since 1: the goal is 4 applied in all.
        let (pending, reached) = g.gather(plan, 1);
        assert!(reached);
        assert_eq!(pending, 3);
        committer.join().unwrap();
    }

    #[test]
    fn a_gather_times_out_when_no_one_comes() {
        let g = Gathering::default();
        let plan = Gather {
            records: 5,
            wait: Duration::from_millis(20),
        };
        let started = Instant::now();
        assert_eq!(g.gather(plan, 0), (0, false));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn alternating_half_turns_are_merged() {
        let mut p = TurnPolicy::default();
        let wait = Duration::from_micros(200);
        // A turn snapshotted 32 commits; 32 more were applied while it waited for the log.
        let counts = TurnCounts {
            before: 0,
            at_snapshot: 32,
        };
        p.turn_done(counts, 64, wait);
        // The next publisher, with 32 pending, waits for all 64.
        let (plan, since) = p.plan(64);
        assert_eq!(since, 32);
        assert_eq!(plan.map(|g| g.records), Some(64));
    }

    #[test]
    fn a_lone_committer_never_gathers() {
        let mut p = TurnPolicy::default();
        for n in 1..5 {
            let counts = TurnCounts {
                before: n - 1,
                at_snapshot: n,
            };
            p.turn_done(counts, n, Duration::from_micros(100));
            assert_eq!(p.plan(n + 1).0, None);
        }
    }
}
