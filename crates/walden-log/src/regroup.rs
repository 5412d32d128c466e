//! Regrouping: when a group commit finishes, the writers it releases come back with new
//! records a few microseconds later, while the writers that appended *during* that sync are
//! already waiting. A leader that syncs at once takes only the second set; the first set then
//! waits a whole sync for the next leader, and N closed-loop writers settle into two
//! alternating groups of about N/2 records each (measured: 21 records per fsync at 64
//! writers; docs/BENCHMARKS.md).
//!
//! So a new leader may first *gather*: wait until the records pending reach the records the
//! last group held plus those that were pending when it finished (every writer known to be
//! active), then sync them together. This is not a fixed waiting window:
//! - it waits only for writers that were just seen, and ends the moment they are all back;
//! - a lone writer never waits (its goal is one record: its own);
//! - the wait is bounded by the recent fdatasync time, and never more than
//!   [`GATHER_WAIT_MAX`]: N writers in two alternating groups get N records per two syncs;
//!   gathered, they get N per one sync plus the wait, so a wait under one sync pays (at 64
//!   writers on 2 cores the released writers need most of a sync to come back: capped at half
//!   a sync, gathers merged 23 records per fsync; at one sync, 43; docs/BENCHMARKS.md);
//! - when a gather times out with fewer than a quarter of the writers it waited for back
//!   (writers that do not come straight back, an open-loop load), gathering is switched off
//!   for the next [`SKIP_AFTER_TIMEOUT`] groups, so such a load pays the wait on at most one
//!   commit in that many.
//!
//! Public for layers on the log that run turns of their own over it (walden-store's
//! publisher turns gather commits the same way); the unit of "records" is theirs.

use std::time::Duration;

/// The longest a leader waits for released writers, whatever the fsync time.
pub const GATHER_WAIT_MAX: Duration = Duration::from_millis(2);

/// Groups synced without gathering after a gather that timed out short of its goal.
pub const SKIP_AFTER_TIMEOUT: u32 = 8;

/// What the next leader should gather, learned from the groups before it. Lives under the
/// commit lock.
#[derive(Debug, Default)]
pub struct Regroup {
    /// Records the next group should hold: the last group plus what was pending after it.
    goal: u64,
    /// Smoothed duration of one group's syncs.
    sync_time: Duration,
    /// Groups left to sync without gathering.
    skip: u32,
}

/// A leader's instruction: wait until `records` are pending, or until `wait` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gather {
    /// Records to wait for (those pending included).
    pub records: u64,
    /// The longest to wait.
    pub wait: Duration,
}

impl Regroup {
    /// Whether (and for what) a new leader should gather, given the records already pending.
    pub fn plan(&mut self, pending: u64) -> Option<Gather> {
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        if self.goal <= pending.max(1) || self.sync_time.is_zero() {
            return None;
        }
        Some(Gather {
            records: self.goal,
            wait: self.sync_time.min(GATHER_WAIT_MAX),
        })
    }

    /// A gather ended with `gathered` records pending, `reached` if it met its goal before
    /// its deadline. Fewer than a quarter of what it waited for came: the writers are not
    /// coming straight back, so stop gathering for a while.
    pub fn gathered(&mut self, plan: Gather, started_with: u64, gathered: u64, reached: bool) {
        if reached {
            return;
        }
        let wanted = plan.records.saturating_sub(started_with);
        let came = gathered.saturating_sub(started_with);
        if came * 4 < wanted {
            self.skip = SKIP_AFTER_TIMEOUT;
        }
    }

    /// A durable group of `records` finished its syncs in `sync_time`, and `pending_after`
    /// records were appended meanwhile.
    pub fn group_done(&mut self, records: u64, pending_after: u64, sync_time: Duration) {
        self.goal = records + pending_after;
        self.sync_time = if self.sync_time.is_zero() {
            sync_time
        } else {
            (self.sync_time * 3 + sync_time) / 4
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC: Duration = Duration::from_micros(200);

    #[test]
    fn a_lone_writer_never_waits() {
        let mut r = Regroup::default();
        assert_eq!(r.plan(1), None, "no history yet");
        r.group_done(1, 0, SYNC);
        assert_eq!(
            r.plan(1),
            None,
            "goal of one record is met by the leader's own"
        );
    }

    #[test]
    fn alternating_half_groups_are_merged() {
        let mut r = Regroup::default();
        // 32 records synced while 32 others were appended: wait for all 64.
        r.group_done(32, 32, SYNC);
        assert_eq!(
            r.plan(32),
            Some(Gather {
                records: 64,
                wait: SYNC
            })
        );
        // Once merged, the whole group is the goal for the next leader, who starts alone.
        r.group_done(64, 0, SYNC);
        assert_eq!(r.plan(1).map(|g| g.records), Some(64));
    }

    #[test]
    fn the_wait_follows_the_sync_time_and_is_capped() {
        let mut r = Regroup::default();
        r.group_done(8, 0, Duration::from_micros(100));
        r.group_done(8, 0, Duration::from_micros(500));
        // Smoothed sync time (3 x 100 + 500) / 4 = 200 us.
        assert_eq!(r.plan(1).unwrap().wait, Duration::from_micros(200));
        r.group_done(8, 0, Duration::from_secs(1));
        assert_eq!(r.plan(1).unwrap().wait, GATHER_WAIT_MAX);
    }

    #[test]
    fn a_gather_that_times_out_short_switches_gathering_off_for_a_while() {
        let mut r = Regroup::default();
        r.group_done(16, 0, SYNC);
        let plan = r.plan(1).unwrap();
        // 2 of the 15 awaited came back: fewer than a quarter.
        r.gathered(plan, 1, 3, false);
        for _ in 0..SKIP_AFTER_TIMEOUT {
            assert_eq!(r.plan(1), None);
        }
        r.group_done(16, 0, SYNC);
        assert!(r.plan(1).is_some(), "gathering resumes after the pause");
    }

    #[test]
    fn a_gather_that_got_most_of_its_writers_back_keeps_gathering() {
        let mut r = Regroup::default();
        r.group_done(16, 0, SYNC);
        let plan = r.plan(1).unwrap();
        // 5 of the 15 awaited came back: a third, enough to keep gathering.
        r.gathered(plan, 1, 6, false);
        assert!(r.plan(1).is_some());
    }
}
