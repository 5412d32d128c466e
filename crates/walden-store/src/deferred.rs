//! Deferred commits: log and apply now, await durability later without holding a thread.
//!
//! [`Transaction::commit`](crate::Transaction::commit) blocks its thread until the commit is
//! durable, so a server answering N concurrent writers that way parks N threads on the log's
//! group commit, and pays a thread wake-up per commit. A deferred commit splits the same
//! commit in two:
//!
//! 1. [`Transaction::commit_deferred`](crate::Transaction::commit_deferred): the checks, the
//!    buffered append and the apply, under the commit mutex, exactly as `commit` does them;
//!    it returns a [`PendingCommit`] at once.
//! 2. [`PendingCommit::durable`]: an async wait, on any executor, until the log's durable
//!    LSN reaches the commit. It never syncs by itself: someone must call [`Store::sync`]
//!    (a server runs one syncing thread for all its requests) or commit with `commit`.
//!    Then it publishes the commit (and every durable one before it) and answers.
//!
//! The contract is the blocking commit's: nobody sees the commit before it is durable, and
//! `durable` answers `Ok` only once it is. A `PendingCommit` dropped unanswered is still
//! committed: it becomes durable and visible with the next sync.

use crate::error::Result;
use crate::store::{CommitInfo, KeyVersions, Store};
use std::sync::atomic::Ordering;
use walden_log::{Durability, Lsn};

/// A commit that is logged and applied but not yet known durable, nor visible to readers.
/// Finish it with [`PendingCommit::durable`] (async) or [`PendingCommit::wait`] (blocking).
#[derive(Debug)]
#[must_use = "a pending commit is acknowledged only by `durable` or `wait`"]
pub struct PendingCommit<'s> {
    store: &'s Store,
    lsn: u64,
    versions: KeyVersions,
}

impl<'s> PendingCommit<'s> {
    pub(crate) fn new(store: &'s Store, lsn: u64, versions: KeyVersions) -> Self {
        debug_assert!(lsn > 0, "a commit record has an LSN");
        PendingCommit {
            store,
            lsn,
            versions,
        }
    }

    /// LSN of the commit record: the transaction's place in commit order.
    pub fn lsn(&self) -> Lsn {
        Lsn(self.lsn)
    }

    /// Waits, without syncing and without blocking a thread, until the commit is durable
    /// (at the store's durability: with `Buffered` at once) and visible, and returns what
    /// `commit` returns. Someone else publishes it: [`Store::sync`] (a server runs one
    /// syncing thread for all its requests) or a blocking commit's publisher turn. Fails if
    /// the log is closed or poisoned (a failed write or sync): then the commit was not
    /// acknowledged and must not be reported as done. Cancel-safe: dropping the future
    /// leaves the commit to the next sync.
    pub async fn durable(self) -> Result<CommitInfo> {
        self.store.visible_at_least(Lsn(self.lsn)).await?;
        Ok(self.finish())
    }

    /// Blocks until the commit is durable and visible, syncing the log with any concurrent
    /// syncs if needed: the deferred form of `commit`.
    pub fn wait(self) -> Result<CommitInfo> {
        self.store.inner.publish_through(self.lsn)?;
        Ok(self.finish())
    }

    fn finish(self) -> CommitInfo {
        CommitInfo {
            lsn: Lsn(self.lsn),
            // One per key already: a commit reports its final writes (see final_writes).
            versions: self.versions,
        }
    }
}

impl Store {
    /// LSN of the newest commit applied: logged, and seen by preconditions and conflict
    /// checks, though perhaps not durable or visible to readers yet.
    pub fn applied_lsn(&self) -> Lsn {
        Lsn(self.inner.applied_lsn())
    }

    /// LSN of the newest commit readers see (published). Cheap: one atomic load.
    pub fn visible_lsn(&self) -> Lsn {
        Lsn(self.inner.published_lsn.load(Ordering::Acquire))
    }

    /// Waits, without syncing and without blocking a thread, until readers see every commit
    /// up to `lsn` (at `Sync` durability: until they are durable and published). Someone
    /// else must sync: [`Store::sync`] or a blocking commit. Fails if the log is closed or
    /// poisoned. Cancel-safe. A server answers a refused commit only after
    /// `visible_at_least(applied_lsn())`: the state that refused it is then durable, and
    /// the client's next read sees it.
    pub async fn visible_at_least(&self, lsn: Lsn) -> Result<()> {
        let inner = &self.inner;
        let lsn = lsn.get();
        if self.durability() == Durability::Sync {
            self.wal().durable_at_least(Lsn(lsn)).await?;
        } else {
            // Nothing to wait for: the turn that publishes it makes no system call.
            inner.publish_through(lsn)?;
        }
        loop {
            if inner.published_lsn.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            let listener = inner.published_event.listen();
            if inner.published_lsn.load(Ordering::Acquire) >= lsn {
                continue;
            }
            // A turn that failed poisoned the log: then nothing will publish this commit.
            self.wal().check()?;
            listener.await;
        }
    }

    /// Makes every commit logged so far durable (one `fdatasync`, shared with concurrent
    /// syncs and blocking commits) and visible; returns the durable LSN. This is what
    /// completes [`PendingCommit::durable`] waits. Blocking.
    pub fn sync(&self) -> Result<Lsn> {
        let durable = self.wal().sync()?;
        let applied = self.inner.applied_lsn();
        if applied > self.inner.published_lsn.load(Ordering::Acquire) {
            self.inner.publish_through(applied)?;
        }
        Ok(durable)
    }
}
