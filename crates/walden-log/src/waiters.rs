//! Commit waiters: a caller that needs a group commit while another caller leads one parks
//! its own thread here, and is woken only when what it waits for is reached, or to lead the
//! next group.
//!
//! Until this module, followers waited on one shared event that every finished group
//! notified in full: at 64 writers the writers that had appended *during* a sync woke with
//! it, found their records not yet durable and slept again, and the event's internal list
//! lock was contended by every registration. perf put 60% of W2's CPU in waking and
//! switching threads (2.7 context switches per append); see docs/BENCHMARKS.md. Here each
//! waiter is one entry (its target and its thread) in a list under the commit lock, and a
//! finished group wakes exactly the entries it satisfied, plus one that is not satisfied to
//! lead the next group.
//!
//! Written by hand rather than with a crate: the wake rule (by LSN, and one elected leader)
//! is the product, and the parts are `std::thread::park` and one atomic flag.
//!
//! Public for layers on the log that run group-commit turns of their own (walden-store's
//! publisher turns). A layer that counts one thing registers every wait as
//! [`Mark::Durable`] and passes its count as both arguments of [`Waiters::satisfied`].

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, Thread};

/// One parked thread.
#[derive(Debug)]
struct Waiter {
    thread: Thread,
    woken: AtomicBool,
}

/// Which count a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The durable LSN (the first argument of [`Waiters::satisfied`]).
    Durable,
    /// The written LSN (the second).
    Written,
}

/// A registered wait: for `target` to reach `mark`.
#[derive(Debug)]
struct Waiting {
    target: u64,
    mark: Mark,
    waiter: Arc<Waiter>,
}

/// The threads parked for a turn. Keep it under the lock that says whether a turn is under
/// way, so registering (under it, after seeing a turn at work) and waking (by that turn's
/// leader, under it) cannot miss each other.
#[derive(Debug, Default)]
pub struct Waiters {
    parked: Vec<Waiting>,
}

/// Threads to unpark, collected under the lock and woken (with [`Wake::now`]) after it is
/// released.
#[derive(Debug, Default)]
#[must_use = "the threads must be woken"]
pub struct Wake(Vec<Arc<Waiter>>);

thread_local! {
    /// Each thread's own waiter, reused for every wait (a thread waits for one log at a time).
    static ME: RefCell<Option<Arc<Waiter>>> = const { RefCell::new(None) };
}

impl Waiters {
    /// Registers the calling thread to wait until `mark` reaches `target`; call
    /// [`Parked::park`] after releasing the lock.
    pub fn register(&mut self, target: u64, mark: Mark) -> Parked {
        let waiter = ME.with(|me| {
            me.borrow_mut()
                .get_or_insert_with(|| {
                    Arc::new(Waiter {
                        thread: thread::current(),
                        woken: AtomicBool::new(false),
                    })
                })
                .clone()
        });
        waiter.woken.store(false, Ordering::Relaxed);
        self.parked.push(Waiting {
            target,
            mark,
            waiter: waiter.clone(),
        });
        Parked(waiter)
    }

    /// Takes the waits that `durable` and `written` satisfy, and if any remain, the one with
    /// the lowest target too: with no leader left, it leads the next group (a caller that
    /// arrives first may lead instead; the woken one then waits again).
    pub fn satisfied(&mut self, durable: u64, written: u64) -> Wake {
        let mut wake = Vec::new();
        let mut lowest: Option<usize> = None;
        let mut i = 0;
        while i < self.parked.len() {
            let w = &self.parked[i];
            let reached = match w.mark {
                Mark::Durable => durable,
                Mark::Written => written,
            };
            if w.target <= reached {
                wake.push(self.parked.swap_remove(i).waiter);
                continue;
            }
            if lowest.is_none_or(|l| w.target < self.parked[l].target) {
                lowest = Some(i);
            }
            i += 1;
        }
        if let Some(l) = lowest {
            // First in the list: the next leader gets going before the others are woken.
            wake.insert(0, self.parked.swap_remove(l).waiter);
        }
        Wake(wake)
    }

    /// Takes every wait (the log was closed or poisoned: all must see it).
    pub fn all(&mut self) -> Wake {
        Wake(self.parked.drain(..).map(|w| w.waiter).collect())
    }

    /// How many threads are parked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.parked.len()
    }
}

impl Wake {
    /// Wakes the threads; call it after releasing the commit lock.
    pub fn now(self) {
        for w in self.0 {
            w.woken.store(true, Ordering::Release);
            w.thread.unpark();
        }
    }
}

/// A registered wait of the calling thread.
#[derive(Debug)]
#[must_use = "a registered waiter must park"]
pub struct Parked(Arc<Waiter>);

impl Parked {
    /// Blocks until a [`Wake`] that took this wait has run (`park` may return spuriously,
    /// so the flag decides).
    pub fn park(self) {
        while !self.0.woken.load(Ordering::Acquire) {
            thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    const D: Mark = Mark::Durable;

    /// Parks a thread per (target, mark) wait; returns their handles and
    /// flags that say which have returned.
    fn park_all(
        waiters: &Arc<Mutex<Waiters>>,
        waits: &[(u64, Mark)],
    ) -> Vec<(thread::JoinHandle<()>, Arc<AtomicBool>)> {
        let parked: Vec<_> = waits
            .iter()
            .map(|&(target, mark)| {
                let waiters = waiters.clone();
                let done = Arc::new(AtomicBool::new(false));
                let flag = done.clone();
                let h = thread::spawn(move || {
                    let p = waiters.lock().unwrap().register(target, mark);
                    p.park();
                    flag.store(true, Ordering::Release);
                });
                (h, done)
            })
            .collect();
        while waiters.lock().unwrap().len() < waits.len() {
            thread::sleep(Duration::from_millis(1));
        }
        parked
    }

    fn returned(parked: &[(thread::JoinHandle<()>, Arc<AtomicBool>)]) -> Vec<bool> {
        thread::sleep(Duration::from_millis(50));
        parked
            .iter()
            .map(|(_, d)| d.load(Ordering::Acquire))
            .collect()
    }

    #[test]
    fn a_group_wakes_the_waits_it_satisfied_and_one_leader() {
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        // Durable 5 and 9, written 7, durable 12 and 20.
        let parked = park_all(
            &waiters,
            &[(5, D), (9, D), (7, Mark::Written), (12, D), (20, D)],
        );
        let wake = waiters.lock().unwrap().satisfied(5, 8);
        wake.now();
        // 5 (durable reached), 7 (written reached), and 9 as the lowest unmet: the leader.
        assert_eq!(returned(&parked), [true, true, true, false, false]);
        assert_eq!(waiters.lock().unwrap().len(), 2);
        waiters.lock().unwrap().all().now();
        assert_eq!(returned(&parked), [true; 5]);
        for (h, _) in parked {
            h.join().unwrap();
        }
    }

    #[test]
    fn with_every_wait_met_no_one_is_woken_to_lead() {
        let mut w = Waiters::default();
        let p = w.register(3, D);
        let wake = w.satisfied(3, 3);
        assert_eq!(wake.0.len(), 1);
        assert_eq!(w.len(), 0);
        wake.now();
        p.park(); // returns at once: the flag is set
    }

    #[test]
    fn a_thread_reuses_its_waiter() {
        let mut w = Waiters::default();
        let p = w.register(1, D);
        w.satisfied(1, 1).now();
        p.park();
        let again = w.register(2, D);
        assert!(
            !again.0.woken.load(Ordering::Acquire),
            "reset for the new wait"
        );
        w.all().now();
        again.park();
    }
}
