//! The in-memory state: an ordered, persistent (copy-on-write) map from (namespace, key) to
//! the key's recent versions. Cloning a state is O(1), so snapshots for transactions,
//! readers and checkpoints are free to take and never block writers.

use crate::codec::{Bytes, Write};
use imbl::OrdMap;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

/// Map key: namespace then key, ordered bytewise.
pub(crate) type MapKey = (Bytes, Bytes);

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The key's version number: 1 for its first write, +1 for each write or delete after.
    pub version: u64,
    /// LSN of the commit that wrote it.
    pub lsn: u64,
    /// Commit time, milliseconds since the Unix epoch.
    pub commit_time_ms: u64,
    /// The value, or `None` for a tombstone (deleted).
    pub value: Option<Bytes>,
}

/// A key's recent versions, oldest first (at most `history_versions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Entry {
    pub versions: VecDeque<Version>,
}

impl Entry {
    pub fn current(&self) -> Option<&Version> {
        self.versions.back()
    }
}

/// A consistent state of the whole store as of commit LSN `lsn`.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub map: OrdMap<MapKey, Arc<Entry>>,
    /// Commit LSN of the last transaction applied.
    pub lsn: u64,
}

impl State {
    pub fn get(&self, ns: &[u8], key: &[u8]) -> Option<&Arc<Entry>> {
        self.map.get(&(Bytes::from(ns), Bytes::from(key)))
    }

    /// The current version number of a key (0 when it was never written).
    pub fn version_of(&self, ns: &[u8], key: &[u8]) -> u64 {
        self.get(ns, key)
            .and_then(|e| e.current())
            .map_or(0, |v| v.version)
    }

    /// Applies one committed write; returns the key's new version.
    ///
    /// Callers pass only a transaction's [`final_writes`]: one new version per key per
    /// committed transaction.
    pub fn apply(&mut self, w: &Write, lsn: u64, commit_time_ms: u64, history: usize) -> u64 {
        let k: MapKey = (w.ns.clone(), w.key.clone());
        let mut entry = self
            .map
            .get(&k)
            .map(|e| Entry::clone(e))
            .unwrap_or_default();
        let version = entry.current().map_or(0, |v| v.version) + 1;
        entry.versions.push_back(Version {
            version,
            lsn,
            commit_time_ms,
            value: w.value.clone(),
        });
        while entry.versions.len() > history.max(1) {
            entry.versions.pop_front();
        }
        self.map.insert(k, Arc::new(entry));
        version
    }

    /// Live (non-tombstone) entries of `ns` with keys in `[start, end)` (each bound
    /// optional), in key order or reversed.
    pub fn range<'a>(
        &'a self,
        ns: &'a [u8],
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = (Bytes, Version)> + 'a> {
        let ns_b: Bytes = ns.into();
        let lo = Bound::Included((ns_b.clone(), Bytes::from(start.unwrap_or_default())));
        let hi = match end {
            Some(e) => Bound::Excluded((ns_b, Bytes::from(e))),
            // (ns ++ 0x00, "") is the smallest map key past every key of `ns`.
            None => {
                let mut next_ns = ns.to_vec();
                next_ns.push(0);
                Bound::Excluded((Bytes::from(next_ns), Bytes::from(&[][..])))
            }
        };
        let live = |(k, e): (&MapKey, &Arc<Entry>)| {
            let v = e.current()?;
            v.value.as_ref()?;
            Some((k.1.clone(), v.clone()))
        };
        let range = self.map.range((lo, hi));
        if reverse {
            Box::new(range.rev().filter_map(live))
        } else {
            Box::new(range.filter_map(live))
        }
    }
}

/// The writes of a committed transaction that take effect: the last write to each key, in
/// write order. An earlier write to a key that the same transaction wrote again was never
/// committed state; giving it a version of its own would show a transaction's intermediate
/// value in `history` (an "intermediate read", Adya's G1b, which snapshot isolation rules
/// out), count versions twice, and push real versions out of the kept history. Commit and
/// redo both apply exactly these, so versions come out the same after recovery.
pub(crate) fn final_writes(writes: &[Write]) -> impl Iterator<Item = &Write> {
    let mut last: std::collections::HashMap<(&[u8], &[u8]), usize> =
        std::collections::HashMap::with_capacity(writes.len());
    for (i, w) in writes.iter().enumerate() {
        last.insert((&w.ns, &w.key), i);
    }
    writes
        .iter()
        .enumerate()
        .filter(move |(i, w)| last.get(&(&*w.ns, &*w.key)) == Some(i))
        .map(|(_, w)| w)
}
