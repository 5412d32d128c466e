//! The in-memory state: an ordered, persistent (copy-on-write) map from (namespace, key) to
//! the key's recent versions. Cloning a state is O(1), so snapshots for transactions,
//! readers and checkpoints are free to take and never block writers.

use crate::codec::{Bytes, Write};
use equivalent::{Comparable, Equivalent};
use imbl::OrdMap;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

/// Map key: namespace then key, ordered bytewise.
pub(crate) type MapKey = (Bytes, Bytes);

/// A borrowed [`MapKey`] for lookups. Building an owned key for every lookup allocated two
/// `Arc<[u8]>` under the commit mutex (two lookups per written key per commit); this
/// compares in place, in the same order as the tuple.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub ns: &'a [u8],
    pub key: &'a [u8],
}

impl Equivalent<MapKey> for KeyRef<'_> {
    fn equivalent(&self, k: &MapKey) -> bool {
        *self.ns == *k.0 && *self.key == *k.1
    }
}

impl Comparable<MapKey> for KeyRef<'_> {
    fn compare(&self, k: &MapKey) -> Ordering {
        self.ns.cmp(&k.0).then_with(|| self.key.cmp(&k.1))
    }
}

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
        self.map.get(&KeyRef { ns, key })
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
        let current = self.get(&w.ns, &w.key).cloned();
        self.apply_over(w, current.as_deref(), lsn, commit_time_ms, history)
    }

    /// [`State::apply`] for a caller that already looked up the key's entry in this state
    /// (`current`: `None` when absent), saving a second descent of the map.
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
        let history = history.max(1);
        let version = current.and_then(Entry::current).map_or(0, |v| v.version) + 1;
        // Exactly sized: cloning the entry and then pushing grew a full deque (a realloc
        // and copy) just before trimming it again.
        let old = current.map(|e| &e.versions);
        let keep = old.map_or(0, |v| v.len().min(history - 1));
        let mut versions = VecDeque::with_capacity(keep + 1);
        if let Some(old) = old {
            versions.extend(old.iter().skip(old.len() - keep).cloned());
        }
        versions.push_back(Version {
            version,
            lsn,
            commit_time_ms,
            value: w.value.clone(),
        });
        self.map
            .insert((w.ns.clone(), w.key.clone()), Arc::new(Entry { versions }));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &[u8]) -> Bytes {
        s.into()
    }

    /// A borrowed lookup must order exactly like the owned tuple key, or lookups in the map
    /// descend the wrong way and miss keys that are there.
    #[test]
    fn borrowed_keys_order_like_tuples() {
        let parts: [&[u8]; 7] = [b"", b"a", b"a\0", b"ab", b"b", b"\xff", b"a\xff"];
        for ns1 in parts {
            for k1 in parts {
                for ns2 in parts {
                    for k2 in parts {
                        let owned = (b(ns2), b(k2));
                        let r = KeyRef { ns: ns1, key: k1 };
                        assert_eq!(
                            r.compare(&owned),
                            (b(ns1), b(k1)).cmp(&owned),
                            "{ns1:?}/{k1:?} against {ns2:?}/{k2:?}"
                        );
                        assert_eq!(r.equivalent(&owned), ns1 == ns2 && k1 == k2);
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
        let kept: Vec<u64> = e.versions.iter().map(|v| v.lsn).collect();
        assert_eq!(kept, [3, 4, 5], "the last 3 versions, oldest first");
        assert!(
            e.versions.capacity() < 6,
            "sized for the kept versions, never grown"
        );
        assert_eq!(s.version_of(b"ns", b"k"), 5);
        assert_eq!(s.version_of(b"ns", b"k\0"), 0);
        assert_eq!(s.version_of(b"ns\0", b"k"), 0);
    }
}
