//! The in-memory state: one ordered map from (namespace, key) to the key's version chain
//! ([`Chain`]), shared by every snapshot and changed in place by commits; and snapshots
//! ([`State`]), which are an LSN: a snapshot at LSN `s` reads, for each key, its newest
//! version at or below `s`.
//!
//! Why not a persistent (copy-on-write) map, as before: every commit after a publication
//! copied the tree nodes the published snapshot shared (64 elements a node, each a
//! reference count to touch), and the publisher freed the old ones; in W7 that was about a
//! fifth of the server's CPU per write. Here a commit inserts into the map in place, and a
//! snapshot costs one reference count.
//!
//! What makes this correct:
//! - **Keys are never removed** (a delete is a tombstone version), so the map only grows,
//!   and a key a snapshot cannot see yet simply has no version at or below its LSN.
//! - **Versions carry their commit LSN** and are added in LSN order, under the commit mutex.
//!   Commits apply before they are durable; readers only ever hold snapshots at published
//!   LSNs, so they never see them early.
//! - **Versions are dropped only when no snapshot needs them**: publisher turns register
//!   their snapshots ([`Table::snapshot`]); every other snapshot is a clone of one of them.
//!   The oldest one still alive is the *floor*; each key keeps every version above it and
//!   the newest `history` at or below it ([`Chain::push`]).
//! - **Readers lock the map for reading**, writers for writing, never across I/O: a scan and
//!   a checkpoint visit it in chunks of [`CHUNK_ENTRIES`], resuming after the last key seen;
//!   keys that appear meanwhile have no version at their LSN, so the result is the
//!   snapshot's.

use crate::chain::{Chain, Version};
use crate::codec::{Bytes, Write};
use crate::keys::{EntryKey, KeyPair, KeyRef};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

/// The map: every key ever written (tombstones included) and its kept versions.
pub(crate) type Map = BTreeMap<EntryKey, Chain>;

/// Entries a scan or checkpoint visits per hold of the read lock: short enough that a
/// commit waiting for the write lock waits for about 100 µs at most.
pub(crate) const CHUNK_ENTRIES: usize = 1024;

fn read(lock: &RwLock<Map>) -> RwLockReadGuard<'_, Map> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// Registered snapshots at which dead entries behind a live one are swept (and at every
/// doubling after).
const PINS_SWEEP_MIN: usize = 64;

/// The shared map and the registry of snapshots that keep versions alive.
#[derive(Debug)]
pub(crate) struct Table {
    map: RwLock<Map>,
    /// Snapshots registered by [`Table::snapshot`], in LSN order; dead ones are dropped from
    /// the front. Its first live one is the floor.
    pins: Mutex<VecDeque<Weak<Snap>>>,
    /// Versions each snapshot sees of a key (`Limits::history_versions`, at least 1).
    history: usize,
}

impl Table {
    /// A table holding `map`, whose every version is at or below `lsn`, and a snapshot at
    /// `lsn` of its `keys` keys.
    pub fn open(map: Map, lsn: u64, history: usize) -> State {
        let keys = map.len() as u64;
        let table = Arc::new(Table {
            map: RwLock::new(map),
            pins: Mutex::new(VecDeque::new()),
            history: history.max(1),
        });
        table.snapshot(lsn, keys)
    }

    /// How many snapshots are registered (live or not yet swept).
    #[cfg(test)]
    pub fn pins_len(&self) -> usize {
        self.pins.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Registers and returns a snapshot at `lsn`, which every commit at or below it has
    /// been applied to, holding `keys` keys. Snapshots are registered in LSN order.
    pub fn snapshot(self: &Arc<Self>, lsn: u64, keys: u64) -> State {
        let snap = Arc::new(Snap {
            table: self.clone(),
            lsn,
            keys,
        });
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        while pins.front().is_some_and(|w| w.strong_count() == 0) {
            pins.pop_front();
        }
        // A long-lived snapshot at the front keeps every later entry, dead or alive, from
        // the loop above: sweep them all whenever the list doubles (amortized O(1); found
        // in review: one entry per publication, for as long as the snapshot lives).
        if pins.len() >= PINS_SWEEP_MIN && pins.len().is_power_of_two() {
            pins.retain(|w| w.strong_count() > 0);
        }
        debug_assert!(
            pins.back()
                .and_then(Weak::upgrade)
                .is_none_or(|last| last.lsn <= lsn),
            "snapshots are registered in LSN order"
        );
        pins.push_back(Arc::downgrade(&snap));
        State(snap)
    }

    /// LSN of the oldest snapshot alive: no snapshot below it can be taken any more.
    /// `None` when none is alive.
    fn floor(&self) -> Option<u64> {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(front) = pins.front() {
            // A snapshot whose count reached zero is gone for good: new ones are clones
            // of live ones or new registrations.
            match front.upgrade() {
                Some(live) => return Some(live.lsn),
                None => drop(pins.pop_front()),
            }
        }
        None
    }

    /// The map, for reading (commit checks against the newest versions).
    pub fn read(&self) -> RwLockReadGuard<'_, Map> {
        read(&self.map)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a committed transaction's final writes at commit LSN `lsn`, above every
    /// version in the map. Returns each key's new version, in `writes` order, and how many
    /// keys are new.
    pub fn apply<'w>(
        &self,
        writes: impl Iterator<Item = &'w Write>,
        lsn: u64,
        commit_time_ms: u64,
    ) -> (Vec<(Bytes, Bytes, u64)>, u64) {
        let mut versions = Vec::with_capacity(writes.size_hint().1.unwrap_or(0));
        let mut new_keys = 0;
        // Computed once, and only when some key has versions to drop.
        let mut floor_lsn = None;
        let mut map = self.write();
        for w in writes {
            let floor = || *floor_lsn.get_or_insert_with(|| self.floor().unwrap_or(lsn).min(lsn));
            let (version, new) = apply(&mut map, w, lsn, commit_time_ms, self.history, floor);
            new_keys += u64::from(new);
            versions.push((w.ns.clone(), w.key.clone(), version));
        }
        (versions, new_keys)
    }
}

/// The newest version of a key in `map`, visible or not yet (0 versions: `None`).
pub(crate) fn newest<'m>(map: &'m Map, ns: &[u8], key: &[u8]) -> Option<&'m Version> {
    map.get(&KeyRef::new(ns, key) as &dyn KeyPair)
        .map(Chain::newest)
}

/// Applies one committed write at `lsn` (above every version of the key); returns the key's
/// new version and whether the key is new. `floor()`: the oldest snapshot LSN still to be
/// served (see [`Chain::push`]).
pub(crate) fn apply(
    map: &mut Map,
    w: &Write,
    lsn: u64,
    commit_time_ms: u64,
    history: usize,
    floor: impl FnOnce() -> u64,
) -> (u64, bool) {
    let new = |version| Version {
        version,
        lsn,
        commit_time_ms,
        value: w.value.clone(),
    };
    // One descent of the tree whether the key is new or not (a lookup, then an insert for
    // a new key, were two); the owned key costs two reference counts, dropped at once when
    // the key is there.
    let key = EntryKey::new(w.ns.clone(), w.key.clone());
    match map.entry(key) {
        Entry::Occupied(mut entry) => {
            let chain = entry.get_mut();
            let version = chain.newest().version + 1;
            chain.push(new(version), history, floor);
            (version, false)
        }
        Entry::Vacant(entry) => {
            entry.insert(Chain::first(new(1)));
            (1, true)
        }
    }
}

/// A registered snapshot.
#[derive(Debug)]
pub(crate) struct Snap {
    table: Arc<Table>,
    lsn: u64,
    keys: u64,
}

/// A consistent state of the whole store as of commit LSN `lsn()`: every commit at or below
/// it, none above. Cloning is one reference count; while any clone lives, the versions it
/// reads are kept.
#[derive(Debug, Clone)]
pub(crate) struct State(Arc<Snap>);

impl State {
    /// Commit LSN of the last transaction in it.
    pub fn lsn(&self) -> u64 {
        self.0.lsn
    }

    /// Keys in it, tombstones included.
    pub fn keys(&self) -> u64 {
        self.0.keys
    }

    /// The table it reads.
    pub fn table(&self) -> &Arc<Table> {
        &self.0.table
    }

    /// A key's version in this state (a tombstone if deleted), if it existed.
    pub fn get(&self, ns: &[u8], key: &[u8]) -> Option<Version> {
        let map = self.table().read();
        let chain = map.get(&KeyRef::new(ns, key) as &dyn KeyPair)?;
        chain.at(self.lsn()).cloned()
    }

    /// The version number of a key in this state (0 when it was never written).
    pub fn version_of(&self, ns: &[u8], key: &[u8]) -> u64 {
        self.get(ns, key).map_or(0, |v| v.version)
    }

    /// A key's last `history_versions` versions in this state, oldest first.
    pub fn history(&self, ns: &[u8], key: &[u8]) -> Vec<Version> {
        let map = self.table().read();
        map.get(&KeyRef::new(ns, key) as &dyn KeyPair)
            .map(|c| {
                c.history_at(self.lsn(), self.table().history)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live (non-tombstone) entries of `ns` with keys in `[start, end)` (each bound
    /// optional), in key order or reversed; at most `limit` (0: no limit).
    pub fn range(
        &self,
        ns: &[u8],
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Vec<(Bytes, Version)> {
        let lo = EntryKey::new(ns.into(), start.unwrap_or_default().into());
        // Past the namespace: (ns + [0], "") is the first pair after every key of `ns`.
        let hi = match end {
            Some(key) => EntryKey::new(lo.ns_bytes().clone(), key.into()),
            None => EntryKey::new([ns, &[0]].concat().into(), Bytes::from(&[][..])),
        };
        let mut out = Vec::new();
        if lo >= hi {
            return out;
        }
        let full = |out: &Vec<_>| limit != 0 && out.len() >= limit;
        let mut cursor: Option<EntryKey> = None;
        loop {
            let (from, to) = match (&cursor, reverse) {
                (None, _) => (Bound::Included(&lo), Bound::Excluded(&hi)),
                (Some(c), false) => (Bound::Excluded(c), Bound::Excluded(&hi)),
                (Some(c), true) => (Bound::Included(&lo), Bound::Excluded(c)),
            };
            cursor = self.visit(from, to, reverse, |k, c| {
                let v = c.at(self.lsn()).filter(|v| v.value.is_some());
                out.extend(v.map(|v| (k.key_bytes().clone(), v.clone())));
                !full(&out)
            });
            if cursor.is_none() || full(&out) {
                return out;
            }
        }
    }

    /// Calls `f` with keys of this state after `after` (from the first when `None`), in key
    /// order, each with its last `history_versions` versions (oldest first), for up to
    /// [`CHUNK_ENTRIES`] map entries and while `f` returns true. Returns the key to resume
    /// after, or `None` when every key was visited. `f` runs under the map's read lock: no
    /// I/O in it (commits wait for the lock).
    pub fn for_each_chunk(
        &self,
        after: Option<EntryKey>,
        mut f: impl FnMut(&EntryKey, &mut dyn Iterator<Item = &Version>) -> bool,
    ) -> Option<EntryKey> {
        let (lsn, history) = (self.lsn(), self.table().history);
        let from = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        self.visit(from, Bound::Unbounded, false, |k, c| {
            let mut versions = c.history_at(lsn, history).peekable();
            // A key written after this snapshot: not in it.
            versions.peek().is_none() || f(k, &mut versions)
        })
    }

    /// Visits entries between `from` and `to` under one hold of the read lock: up to
    /// [`CHUNK_ENTRIES`] of them, and while `f` (which sees each entry) returns true.
    /// Returns the last key visited if it stopped before `to`, to resume after; `None` once
    /// the range is done.
    fn visit(
        &self,
        from: Bound<&EntryKey>,
        to: Bound<&EntryKey>,
        reverse: bool,
        mut f: impl FnMut(&EntryKey, &Chain) -> bool,
    ) -> Option<EntryKey> {
        fn as_pair(b: Bound<&EntryKey>) -> Bound<&dyn KeyPair> {
            b.map(|k| k as &dyn KeyPair)
        }
        let map = self.table().read();
        let range = map.range::<dyn KeyPair, _>((as_pair(from), as_pair(to)));
        let mut entries: Box<dyn Iterator<Item = (&EntryKey, &Chain)>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut last = None;
        for _ in 0..CHUNK_ENTRIES {
            let (k, c) = entries.next()?;
            if !f(k, c) {
                return Some(k.clone());
            }
            last = Some(k);
        }
        // A full chunk: resume after its last key (the next chunk may be empty).
        last.cloned()
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

    fn put(ns: &[u8], key: &[u8], v: &[u8]) -> Write {
        Write {
            ns: b(ns),
            key: b(key),
            value: Some(b(v)),
        }
    }

    #[test]
    fn a_long_lived_snapshot_does_not_keep_every_later_registration() {
        let first = Table::open(Map::new(), 0, 1);
        let table = first.table().clone();
        for lsn in 1..10_000 {
            drop(table.snapshot(lsn, 0));
        }
        assert!(
            table.pins_len() < 2 * PINS_SWEEP_MIN,
            "{} entries kept behind the live one",
            table.pins_len()
        );
        drop(first);
    }

    #[test]
    fn snapshots_see_their_lsn_only_and_keep_what_they_read() {
        let s0 = Table::open(Map::new(), 0, 2);
        let table = s0.table().clone();
        let (v, new) = table.apply([put(b"ns", b"k", b"1")].iter(), 1, 0);
        assert_eq!((v[0].2, new), (1, 1));
        let s1 = table.snapshot(1, 1);
        drop(s0);
        for lsn in 2..=6u64 {
            let (v, new) = table.apply([put(b"ns", b"k", &[lsn as u8])].iter(), lsn, 0);
            assert_eq!((v[0].2, new), (lsn, 0));
        }
        table.apply([put(b"ns", b"j", b"j")].iter(), 7, 0);
        let s7 = table.snapshot(7, 2);
        // s1, alive all along, still reads its state.
        assert_eq!(s1.get(b"ns", b"k").map(|v| v.lsn), Some(1));
        assert_eq!(s1.get(b"ns", b"j"), None);
        assert_eq!(s1.range(b"ns", None, None, false, 0).len(), 1);
        assert_eq!(s7.version_of(b"ns", b"k"), 6);
        let lsns =
            |s: &State| -> Vec<u64> { s.history(b"ns", b"k").iter().map(|v| v.lsn).collect() };
        assert_eq!(lsns(&s1), [1]);
        assert_eq!(lsns(&s7), [5, 6]);
        let keys = s7.range(b"ns", None, None, true, 0);
        assert_eq!(
            keys.iter().map(|(k, _)| &**k).collect::<Vec<_>>(),
            [b"k", b"j"]
        );
        // Once s1 is gone, the next write drops what only it needed.
        drop(s1);
        table.apply([put(b"ns", b"k", b"7")].iter(), 8, 0);
        let map = table.read();
        let chain = map.get(&KeyRef::new(b"ns", b"k") as &dyn KeyPair);
        assert_eq!(
            chain.map(Chain::len),
            Some(3),
            "s7's two versions and the new one"
        );
    }

    #[test]
    fn scans_resume_across_chunks_in_both_directions() {
        let s = Table::open(Map::new(), 0, 1);
        let table = s.table().clone();
        let n = CHUNK_ENTRIES * 2 + 7;
        let writes: Vec<Write> = (0..n)
            .map(|i| put(b"ns", format!("{i:06}").as_bytes(), b"v"))
            .collect();
        table.apply(writes.iter(), 1, 0);
        table.apply(
            [put(b"ns\0", b"", b"x"), put(b"nr", b"z", b"x")].iter(),
            2,
            0,
        );
        let s = table.snapshot(2, n as u64 + 2);
        let all = s.range(b"ns", None, None, false, 0);
        assert_eq!(all.len(), n);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        let back = s.range(b"ns", None, None, true, 0);
        assert_eq!(back.len(), n);
        assert_eq!(
            back.first().map(|(k, _)| k.clone()),
            all.last().map(|(k, _)| k.clone())
        );
        let some = s.range(b"ns", Some(b"000100"), Some(b"002000"), false, 1500);
        assert_eq!(some.len(), 1500);
        assert_eq!(&*some[0].0, b"000100");
        assert!(s.range(b"ns", Some(b"5"), Some(b"1"), false, 0).is_empty());
        let (mut seen, mut cursor) = (0, None);
        loop {
            cursor = s.for_each_chunk(cursor, |_, versions| {
                seen += 1;
                assert_eq!(versions.count(), 1);
                true
            });
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, n + 2);
    }
}
