//! Transactions: snapshot reads, buffered writes (read-your-writes), preconditions, and
//! commit with first-committer-wins conflict detection (snapshot isolation).

use crate::chain::Version;
use crate::codec::{Bytes, Write};
use crate::deferred::PendingCommit;
use crate::error::{Error, Result};
use crate::keys::MapKey;
use crate::state::State;
use crate::store::{CommitInfo, Store};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

/// Up to this many writes, a transaction finds a key's last write by scanning its writes
/// backwards; past it, through a hash table.
const SMALL_TXN_WRITES: usize = 16;

/// A condition a key must meet at commit, checked against the latest committed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The key has no live value (never written, or deleted).
    Absent,
    /// The key's current version is exactly this (0: never written). A deleted key keeps
    /// counting versions, so a write based on a version read before a delete fails.
    Version(u64),
    /// The key has a live value (written, and not deleted since): a delete of "whatever is
    /// there" that must not write a second tombstone.
    Present,
}

/// A value with its version metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value.
    pub value: Bytes,
    /// Its version.
    pub version: u64,
    /// LSN of the commit that wrote it (0 for a write of this transaction, not yet committed).
    pub lsn: u64,
    /// Commit time in milliseconds since the Unix epoch (0 for an uncommitted write).
    pub commit_time_ms: u64,
}

impl Versioned {
    pub(crate) fn from_version(v: &Version) -> Option<Self> {
        Some(Versioned {
            value: v.value.clone()?,
            version: v.version,
            lsn: v.lsn,
            commit_time_ms: v.commit_time_ms,
        })
    }
}

/// Optional inclusive start and exclusive end of a key range.
pub(crate) type KeyBounds = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Which keys of a namespace a scan returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Only keys starting with this.
    pub prefix: Option<Vec<u8>>,
    /// Only keys at or after this.
    pub start: Option<Vec<u8>>,
    /// Only keys before this.
    pub end: Option<Vec<u8>>,
    /// Highest key first.
    pub reverse: bool,
    /// At most this many (0: no limit).
    pub limit: usize,
}

impl Scan {
    /// The effective `[start, end)` bounds: the intersection of prefix and explicit bounds;
    /// `None` when empty.
    pub(crate) fn bounds(&self) -> Option<KeyBounds> {
        let mut start = self.start.clone();
        let mut end = self.end.clone();
        if let Some(p) = &self.prefix {
            if start.as_ref().is_none_or(|s| s < p) {
                start = Some(p.clone());
            }
            if let Some(pe) = prefix_end(p) {
                if end.as_ref().is_none_or(|e| *e > pe) {
                    end = Some(pe);
                }
            }
        }
        match (&start, &end) {
            (Some(s), Some(e)) if s >= e => None,
            _ => Some((start, end)),
        }
    }
}

/// The smallest key greater than every key with `prefix` (None when there is none).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A transaction. Reads see the snapshot taken at `begin` plus this transaction's own
/// writes. Nothing is visible to others until `commit` returns. Dropping it aborts.
#[derive(Debug)]
pub struct Transaction<'s> {
    store: &'s Store,
    txn_id: u64,
    snapshot: State,
    writes: Vec<Write>,
    /// Each key's last write (an index into `writes`), once the transaction has more than
    /// [`SMALL_TXN_WRITES`] writes; below that, a backward scan of `writes` finds it, and the
    /// common small transaction neither allocates a table nor hashes every key.
    index: Option<HashMap<MapKey, usize>>,
    preconditions: Vec<(MapKey, Precondition)>,
    bytes: usize,
    unspilled_from: usize,
    unspilled_bytes: usize,
    first_spill_lsn: u64,
    /// Whether anything was read from the snapshot (`get` of a key this transaction has not
    /// written, `scan`): only then is the commit checked for write-write conflicts.
    read_snapshot: AtomicBool,
    finished: bool,
}

impl<'s> Transaction<'s> {
    pub(crate) fn new(store: &'s Store, txn_id: u64, snapshot: State) -> Self {
        Transaction {
            store,
            txn_id,
            snapshot,
            writes: Vec::new(),
            index: None,
            preconditions: Vec::new(),
            bytes: 0,
            unspilled_from: 0,
            unspilled_bytes: 0,
            first_spill_lsn: 0,
            read_snapshot: AtomicBool::new(false),
            finished: false,
        }
    }

    /// The index in `writes` of the last write to a key.
    fn last_write(&self, ns: &[u8], key: &[u8]) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&(ns.into(), key.into())).copied(),
            None => self
                .writes
                .iter()
                .rposition(|w| *w.ns == *ns && *w.key == *key),
        }
    }

    /// Indexes in `writes` of the writes that take effect, the last per key, ascending
    /// (what `state::final_writes` yields).
    fn final_writes(&self) -> Vec<usize> {
        let mut last: Vec<usize> = match &self.index {
            Some(index) => index.values().copied().collect(),
            None => (0..self.writes.len())
                .filter(|&i| {
                    let later = self.writes.get(i + 1..).unwrap_or_default();
                    self.writes
                        .get(i)
                        .is_some_and(|w| !later.iter().any(|l| l.ns == w.ns && l.key == w.key))
                })
                .collect(),
        };
        last.sort_unstable();
        last
    }

    /// The value of a key as this transaction sees it.
    pub fn get(&self, ns: &[u8], key: &[u8]) -> Option<Versioned> {
        if let Some(i) = self.last_write(ns, key) {
            let w = self.writes.get(i)?;
            return Some(Versioned {
                value: w.value.clone()?,
                version: 0,
                lsn: 0,
                commit_time_ms: 0,
            });
        }
        self.read_snapshot.store(true, Ordering::Relaxed);
        Versioned::from_version(&self.snapshot.get(ns, key)?)
    }

    /// Live keys of `ns` selected by `scan`, merged with this transaction's own writes.
    pub fn scan(&self, ns: &[u8], scan: &Scan) -> Vec<(Bytes, Versioned)> {
        self.read_snapshot.store(true, Ordering::Relaxed);
        let Some((start, end)) = scan.bounds() else {
            return Vec::new();
        };
        let in_range = |k: &[u8]| {
            start.as_deref().is_none_or(|s| k >= s) && end.as_deref().is_none_or(|e| k < e)
        };
        let own: BTreeMap<Bytes, Option<Versioned>> = self
            .final_writes()
            .into_iter()
            .filter_map(|i| self.writes.get(i))
            .filter(|w| *w.ns == *ns && in_range(&w.key))
            .map(|w| {
                let v = w.value.clone().map(|value| Versioned {
                    value,
                    version: 0,
                    lsn: 0,
                    commit_time_ms: 0,
                });
                (w.key.clone(), v)
            })
            .collect();
        if own.is_empty() {
            let rows = self.snapshot.range(
                ns,
                start.as_deref(),
                end.as_deref(),
                scan.reverse,
                scan.limit,
            );
            return rows
                .into_iter()
                .filter_map(|(k, v)| Some((k, Versioned::from_version(&v)?)))
                .collect();
        }
        let mut merged: BTreeMap<Bytes, Versioned> = self
            .snapshot
            .range(ns, start.as_deref(), end.as_deref(), false, 0)
            .into_iter()
            .filter_map(|(k, v)| Some((k, Versioned::from_version(&v)?)))
            .collect();
        for (k, v) in own {
            match v {
                Some(v) => merged.insert(k, v),
                None => merged.remove(&k),
            };
        }
        if scan.reverse {
            take(merged.into_iter().rev(), scan.limit)
        } else {
            take(merged.into_iter(), scan.limit)
        }
    }

    /// Sets a key.
    pub fn put(&mut self, ns: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        self.write(ns, key, Some(value))
    }

    /// Deletes a key (leaves a tombstone that keeps its version count).
    pub fn delete(&mut self, ns: &[u8], key: &[u8]) -> Result<()> {
        self.write(ns, key, None)
    }

    /// Requires `pre` to hold for the key at commit, or the commit fails with
    /// [`Error::PreconditionFailed`] and nothing is written.
    pub fn require(&mut self, ns: &[u8], key: &[u8], pre: Precondition) -> Result<()> {
        self.store.check_key(ns, key)?;
        self.preconditions.push(((ns.into(), key.into()), pre));
        Ok(())
    }

    fn write(&mut self, ns: &[u8], key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.store.check_key(ns, key)?;
        let limits = self.store.limits();
        if let Some(v) = value {
            if v.len() > limits.value_bytes_max {
                return Err(Error::TooLarge {
                    what: "value",
                    bytes: v.len() as u64,
                    limit: limits.value_bytes_max as u64,
                });
            }
        }
        // Writes to one namespace share its bytes (one allocation fewer per write).
        let ns = match self.writes.last() {
            Some(last) if *last.ns == *ns => last.ns.clone(),
            _ => ns.into(),
        };
        let w = Write {
            ns,
            key: key.into(),
            value: value.map(Into::into),
        };
        let size = w.encoded_len();
        if self.bytes + size > limits.txn_bytes_max {
            return Err(Error::TooLarge {
                what: "transaction",
                bytes: (self.bytes + size) as u64,
                limit: limits.txn_bytes_max as u64,
            });
        }
        self.bytes += size;
        self.unspilled_bytes += size;
        if self.index.is_none() && self.writes.len() >= SMALL_TXN_WRITES {
            let mut index = HashMap::with_capacity(self.writes.len() * 2);
            for (i, w) in self.writes.iter().enumerate() {
                index.insert((w.ns.clone(), w.key.clone()), i);
            }
            self.index = Some(index);
        }
        let i = self.writes.len();
        let previous = self
            .index
            .as_mut()
            .map(|index| index.insert((w.ns.clone(), w.key.clone()), i));
        self.writes.push(w);
        if self.unspilled_bytes >= self.store.spill_bytes() {
            if let Err(e) = self.spill() {
                // A write that returns an error must not be part of the transaction: undo
                // it, or a later commit (say after ENOSPC cleared) would commit a put the
                // caller was told failed (found by tests/fsync_failure.rs). A failed spill
                // changed nothing else: the earlier writes stay pending for the commit.
                let undone = self.writes.pop();
                if let (Some(index), Some(previous), Some(w)) =
                    (self.index.as_mut(), previous, undone)
                {
                    let k = (w.ns, w.key);
                    match previous {
                        Some(i) => index.insert(k, i),
                        None => index.remove(&k),
                    };
                }
                self.bytes -= size;
                self.unspilled_bytes -= size;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Logs the writes made since the last spill as a `Writes` record, so a large
    /// transaction reaches the log in pieces (interleaved with others) before it commits.
    fn spill(&mut self) -> Result<()> {
        let pending = self.writes.get(self.unspilled_from..).unwrap_or_default();
        let lsn = self.store.spill(self.txn_id, pending)?;
        if self.first_spill_lsn == 0 {
            self.first_spill_lsn = lsn;
        }
        self.unspilled_from = self.writes.len();
        self.unspilled_bytes = 0;
        Ok(())
    }

    /// Commits: checks preconditions against the latest state, and write conflicts if this
    /// transaction read from its snapshot (see docs/STORE.md), logs the
    /// remaining writes and the commit as one atomic batch, applies them, and returns once
    /// the commit is durable (at the store's durability) and visible.
    pub fn commit(self) -> Result<CommitInfo> {
        self.commit_deferred()?.wait()
    }

    /// Commits without waiting: checks, logs and applies exactly like [`Transaction::commit`],
    /// then returns at once, before the commit is durable or visible: no sync, no sleeping
    /// (a log write happens only when its buffer is full). Await [`PendingCommit::durable`]
    /// for the acknowledgement.
    ///
    /// Durability: the commit's place in the log is fixed, but it is durable only once
    /// someone syncs the log ([`Store::sync`], or another commit's wait). Concurrency: what
    /// `commit` takes; no thread blocks for I/O.
    pub fn commit_deferred(mut self) -> Result<PendingCommit<'s>> {
        let store = self.store;
        let request = self.commit_request();
        let (lsn, versions) = store.log_and_apply(request)?;
        Ok(PendingCommit::new(store, lsn, versions))
    }

    /// Ends the transaction (it no longer aborts on drop) and hands its writes over for
    /// commit.
    fn commit_request(&mut self) -> crate::store::CommitRequest {
        self.finished = true;
        let final_writes = self.final_writes();
        crate::store::CommitRequest {
            txn_id: self.txn_id,
            writes: std::mem::take(&mut self.writes),
            final_writes,
            unspilled_from: self.unspilled_from,
            read_snapshot_lsn: self
                .read_snapshot
                .load(Ordering::Relaxed)
                .then(|| self.snapshot.lsn()),
            preconditions: std::mem::take(&mut self.preconditions),
            first_spill_lsn: self.first_spill_lsn,
        }
    }

    /// Aborts: nothing this transaction wrote becomes visible.
    pub fn abort(mut self) {
        self.finished = true;
        self.store.abort(self.txn_id, self.first_spill_lsn);
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.store.abort(self.txn_id, self.first_spill_lsn);
        }
    }
}

fn take<T>(iter: impl Iterator<Item = T>, limit: usize) -> Vec<T> {
    if limit == 0 {
        iter.collect()
    } else {
        iter.take(limit).collect()
    }
}
