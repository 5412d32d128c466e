//! The change feed: committed transactions in commit order, from any LSN still in the log,
//! resumable after a restart from the last LSN seen (+1). Only durable commits appear.

use crate::codec::{decode, StoreRecord, Write};
use crate::error::Result;
use crate::store::{Store, StoreInner};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use walden_log::{Lsn, Record, TailReader};

/// One committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedTxn {
    /// LSN of its commit record (resume from `lsn + 1`).
    pub lsn: Lsn,
    /// The transaction's id.
    pub txn_id: u64,
    /// Commit time, milliseconds since the Unix epoch.
    pub commit_time_ms: u64,
    /// Its writes, in order (`value: None` is a delete).
    pub changes: Vec<Write>,
}

/// A subscription to committed transactions. See [`Store::changes`].
pub struct ChangeFeed {
    tail: TailReader,
    /// First LSN read from the log (one before `from` when possible).
    start: u64,
    /// First commit LSN yielded.
    from: u64,
    pending: HashMap<u64, Vec<Write>>,
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("position", &self.tail.position())
            .finish()
    }
}

impl Store {
    /// Committed transactions whose commit LSN is at least `from`, in commit order. Fails
    /// with `walden_log::Error::Truncated` if the log no longer holds `from`.
    pub fn changes(&self, from: Lsn) -> Result<ChangeFeed> {
        // A transaction's last Writes record sits just before its Commit in the same atomic
        // batch, so a feed starting exactly at a commit LSN must read one record earlier to
        // see that transaction's writes; commits before `from` are not yielded.
        let read_from = Lsn(from
            .get()
            .saturating_sub(1)
            .max(self.wal().first_lsn().get())
            .max(1));
        let tail = self.wal().tail_from(read_from.min(from))?;
        Ok(ChangeFeed {
            tail,
            start: read_from.min(from).get(),
            from: from.get(),
            pending: HashMap::new(),
            inner: self.inner.clone(),
        })
    }
}

impl ChangeFeed {
    /// The next committed transaction, waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<CommittedTxn>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Some(rec) = self.tail.next_timeout(left)? else {
                return Ok(None);
            };
            if let Some(txn) = self.absorb(rec)? {
                return Ok(Some(txn));
            }
        }
    }

    /// The next committed transaction, waiting as long as it takes.
    pub fn next_blocking(&mut self) -> Result<CommittedTxn> {
        loop {
            let rec = self.tail.next_blocking()?;
            if let Some(txn) = self.absorb(rec)? {
                return Ok(txn);
            }
        }
    }

    /// The next committed transaction, waiting asynchronously.
    pub async fn next_async(&mut self) -> Result<CommittedTxn> {
        loop {
            let rec = self.tail.next_async().await?;
            if let Some(txn) = self.absorb(rec)? {
                return Ok(txn);
            }
        }
    }

    fn absorb(&mut self, rec: Record) -> Result<Option<CommittedTxn>> {
        match decode(rec.lsn.get(), &rec.data)? {
            StoreRecord::Writes { txn_id, writes } => {
                self.pending.entry(txn_id).or_default().extend(writes);
                Ok(None)
            }
            StoreRecord::Abort { txn_id } => {
                self.pending.remove(&txn_id);
                Ok(None)
            }
            StoreRecord::Commit {
                txn_id,
                commit_time_ms,
                first_spill_lsn,
            } => {
                let mut changes = self.pending.remove(&txn_id).unwrap_or_default();
                if rec.lsn.get() < self.from {
                    return Ok(None);
                }
                if first_spill_lsn != 0 && first_spill_lsn < self.start {
                    changes = self.reread(txn_id, first_spill_lsn, rec.lsn.get())?;
                }
                Ok(Some(CommittedTxn {
                    lsn: rec.lsn,
                    txn_id,
                    commit_time_ms,
                    changes,
                }))
            }
        }
    }

    /// Collects a transaction's writes from `[from, commit)`: it spilled before the feed began.
    fn reread(&self, txn_id: u64, from: u64, commit: u64) -> Result<Vec<Write>> {
        let mut out = Vec::new();
        for rec in self.inner.wal_ref().read_from(Lsn(from))? {
            let rec = rec?;
            if rec.lsn.get() >= commit {
                break;
            }
            if let StoreRecord::Writes { txn_id: t, writes } = decode(rec.lsn.get(), &rec.data)? {
                if t == txn_id {
                    out.extend(writes);
                }
            }
        }
        Ok(out)
    }
}
