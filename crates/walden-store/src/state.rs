//! The in-memory state: an ordered, persistent (copy-on-write) set of entries, each a
//! (namespace, key) with the key's recent versions. Cloning a state is O(1), so snapshots for
//! transactions, readers and checkpoints are free to take and never block writers.
//!
//! The set holds `Arc<Entry>`, one pointer per element, rather than a map from an owned
//! `(Bytes, Bytes)` key to `Arc<Entry>` (40 bytes and three reference counts per element):
//! the tree's nodes are copied on write whenever a snapshot shares them, and every copy
//! clones, and every free drops, each element of the node. Lookups compare borrowed bytes
//! ([`KeyRef`], [`PastNamespace`]), so none allocates.

use crate::codec::{Bytes, Write};
use equivalent::{Comparable, Equivalent};
use imbl::OrdSet;
use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

/// Map key: namespace then key, ordered bytewise (preconditions and a transaction's own
/// writes are keyed by it).
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

/// A key and its recent versions (at most `history_versions`).
///
/// Ordered, and equal, by namespace then key only (bytewise): that is its place in the
/// state's set; the versions are what the set maps it to.
///
/// The current version is inline: a key's first version costs no allocation besides the
/// entry's own (a deque of one version cost a second one for every new key).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub ns: Bytes,
    pub key: Bytes,
    /// The versions before `current`, oldest first (at most `history_versions - 1`).
    older: Vec<Version>,
    current: Version,
}

impl Entry {
    /// An entry of `older` versions (oldest first), then `current`.
    pub fn new(ns: Bytes, key: Bytes, older: Vec<Version>, current: Version) -> Self {
        Entry {
            ns,
            key,
            older,
            current,
        }
    }

    /// The newest version (a tombstone if the key was deleted).
    pub fn current(&self) -> &Version {
        &self.current
    }

    /// All kept versions, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = &Version> {
        self.older.iter().chain(std::iter::once(&self.current))
    }

    /// How many versions are kept (at least 1).
    pub fn version_count(&self) -> usize {
        self.older.len() + 1
    }

    fn key_ref(&self) -> KeyRef<'_> {
        KeyRef {
            ns: &self.ns,
            key: &self.key,
        }
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key_ref().cmp_parts(&other.ns, &other.key)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

/// A (namespace, key) to look up, borrowed: no allocation per lookup.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub ns: &'a [u8],
    pub key: &'a [u8],
}

impl KeyRef<'_> {
    fn cmp_parts(&self, ns: &[u8], key: &[u8]) -> Ordering {
        self.ns.cmp(ns).then_with(|| self.key.cmp(key))
    }
}

impl Equivalent<Arc<Entry>> for KeyRef<'_> {
    fn equivalent(&self, e: &Arc<Entry>) -> bool {
        *self.ns == *e.ns && *self.key == *e.key
    }
}

impl Comparable<Arc<Entry>> for KeyRef<'_> {
    fn compare(&self, e: &Arc<Entry>) -> Ordering {
        self.cmp_parts(&e.ns, &e.key)
    }
}

/// A bound between the last key of a namespace and the first key of the next one: the
/// exclusive end of a scan to the end of the namespace. Equal to no entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PastNamespace<'a>(pub &'a [u8]);

impl Equivalent<Arc<Entry>> for PastNamespace<'_> {
    fn equivalent(&self, _: &Arc<Entry>) -> bool {
        false
    }
}

impl Comparable<Arc<Entry>> for PastNamespace<'_> {
    fn compare(&self, e: &Arc<Entry>) -> Ordering {
        match self.0.cmp(&e.ns) {
            Ordering::Equal => Ordering::Greater,
            o => o,
        }
    }
}

/// A scan bound: a key, or past a whole namespace.
#[derive(Debug, Clone, Copy)]
enum Probe<'a> {
    Key(KeyRef<'a>),
    PastNamespace(PastNamespace<'a>),
}

impl Equivalent<Arc<Entry>> for Probe<'_> {
    fn equivalent(&self, e: &Arc<Entry>) -> bool {
        match self {
            Probe::Key(k) => k.equivalent(e),
            Probe::PastNamespace(p) => p.equivalent(e),
        }
    }
}

impl Comparable<Arc<Entry>> for Probe<'_> {
    fn compare(&self, e: &Arc<Entry>) -> Ordering {
        match self {
            Probe::Key(k) => k.compare(e),
            Probe::PastNamespace(p) => p.compare(e),
        }
    }
}

/// A consistent state of the whole store as of commit LSN `lsn`.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// Every key ever written (tombstones included), by namespace then key.
    pub map: OrdSet<Arc<Entry>>,
    /// Commit LSN of the last transaction applied.
    pub lsn: u64,
}

impl State {
    pub fn get(&self, ns: &[u8], key: &[u8]) -> Option<&Arc<Entry>> {
        self.map.get(&KeyRef { ns, key })
    }

    /// The current version number of a key (0 when it was never written).
    pub fn version_of(&self, ns: &[u8], key: &[u8]) -> u64 {
        self.get(ns, key).map_or(0, |e| e.current().version)
    }

    /// Applies one committed write; returns the key's new version.
    ///
    /// Callers pass only a transaction's [`final_writes`]: one new version per key per
    /// committed transaction.
    pub fn apply(&mut self, w: &Write, lsn: u64, commit_time_ms: u64, history: usize) -> u64 {
        let current = self.get(&w.ns, &w.key).cloned();
        self.apply_over(w, current.as_deref(), lsn, commit_time_ms, history)
    }

    /// [`State::apply`] for a caller that already looked up the key's entry in this state
    /// (`current`: `None` when absent), saving a second descent of the tree.
    pub fn apply_over(
        &mut self,
        w: &Write,
        current: Option<&Entry>,
        lsn: u64,
        commit_time_ms: u64,
        history: usize,
    ) -> u64 {
        // Conflict detection compares version LSNs with snapshot LSNs: no version may carry
        // an LSN above its state's.
        debug_assert!(lsn > self.lsn, "commits apply in LSN order");
        debug_assert!(current.is_none_or(|e| *e.ns == *w.ns && *e.key == *w.key));
        let history = history.max(1);
        let version = current.map_or(0, |e| e.current().version) + 1;
        // The newest `history - 1` versions before this one, oldest first, exactly sized.
        let older = match current {
            Some(e) if history > 1 => {
                let keep = e.version_count().min(history - 1);
                let mut older = Vec::with_capacity(keep);
                older.extend(e.versions().skip(e.version_count() - keep).cloned());
                older
            }
            _ => Vec::new(),
        };
        let new = Version {
            version,
            lsn,
            commit_time_ms,
            value: w.value.clone(),
        };
        // The key's bytes: those the state already holds, if any.
        let (ns, key) = current.map_or((&w.ns, &w.key), |e| (&e.ns, &e.key));
        self.map
            .insert(Arc::new(Entry::new(ns.clone(), key.clone(), older, new)));
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
        let lo = Bound::Included(Probe::Key(KeyRef {
            ns,
            key: start.unwrap_or_default(),
        }));
        let hi = Bound::Excluded(match end {
            Some(key) => Probe::Key(KeyRef { ns, key }),
            None => Probe::PastNamespace(PastNamespace(ns)),
        });
        let live = |e: &Arc<Entry>| {
            let v = e.current();
            v.value.as_ref()?;
            Some((e.key.clone(), v.clone()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &[u8]) -> Bytes {
        s.into()
    }

    /// Entries, borrowed lookups and scan bounds must order exactly like (namespace, key)
    /// tuples, or lookups descend the wrong way and miss keys that are there.
    #[test]
    fn borrowed_keys_order_like_tuples() {
        let parts: [&[u8]; 7] = [b"", b"a", b"a\0", b"ab", b"b", b"\xff", b"a\xff"];
        for ns1 in parts {
            for k1 in parts {
                for ns2 in parts {
                    for k2 in parts {
                        let entry = |ns: &[u8], key: &[u8]| {
                            let v = Version {
                                version: 1,
                                lsn: 1,
                                commit_time_ms: 0,
                                value: None,
                            };
                            Arc::new(Entry::new(b(ns), b(key), Vec::new(), v))
                        };
                        let (e1, e2) = (entry(ns1, k1), entry(ns2, k2));
                        let tuples = (b(ns1), b(k1)).cmp(&(b(ns2), b(k2)));
                        let r = KeyRef { ns: ns1, key: k1 };
                        let at = format!("{ns1:?}/{k1:?} against {ns2:?}/{k2:?}");
                        assert_eq!(r.compare(&e2), tuples, "{at}");
                        assert_eq!(e1.cmp(&e2), tuples, "{at}");
                        assert_eq!(r.equivalent(&e2), ns1 == ns2 && k1 == k2, "{at}");
                        assert_eq!(e1 == e2, ns1 == ns2 && k1 == k2, "{at}");
                        // Past ns1: after every key of ns1, before every later namespace.
                        let past = PastNamespace(ns1).compare(&e2);
                        let want = if ns1 == ns2 {
                            Ordering::Greater
                        } else {
                            ns1.cmp(ns2)
                        };
                        assert_eq!(past, want, "past {at}");
                    }
                }
            }
        }
    }

    #[test]
    fn apply_counts_versions_and_keeps_the_newest_history() {
        let mut s = State::default();
        let w = |v: &[u8]| Write {
            ns: b(b"ns"),
            key: b(b"k"),
            value: Some(b(v)),
        };
        for lsn in 1..=5u64 {
            assert_eq!(s.apply(&w(&[lsn as u8]), lsn, 0, 3), lsn);
            s.lsn = lsn;
        }
        let e = s.get(b"ns", b"k").expect("applied");
        let kept: Vec<u64> = e.versions().map(|v| v.lsn).collect();
        assert_eq!(kept, [3, 4, 5], "the last 3 versions, oldest first");
        assert_eq!(e.version_count(), 3);
        assert_eq!(
            e.older.capacity(),
            2,
            "sized for the kept versions, never grown"
        );
        // A history of one keeps the current version only, with nothing allocated for more.
        let mut one = State::default();
        for lsn in 1..=3u64 {
            assert_eq!(one.apply(&w(&[lsn as u8]), lsn, 0, 1), lsn);
            one.lsn = lsn;
        }
        let e = one.get(b"ns", b"k").expect("applied");
        assert_eq!(e.versions().map(|v| v.lsn).collect::<Vec<_>>(), [3]);
        assert_eq!(e.older.capacity(), 0);
        assert_eq!(s.version_of(b"ns", b"k"), 5);
        assert_eq!(s.version_of(b"ns", b"k\0"), 0);
        assert_eq!(s.version_of(b"ns\0", b"k"), 0);
    }
}
