//! A key's versions, newest last, each stamped with its commit LSN: what a snapshot at LSN
//! `s` reads is the newest version at or below `s`. Versions are added in place (the state
//! is one shared mutable map, not a copy per snapshot) and dropped only once no snapshot
//! that is alive, or that can still be taken, needs them.

use crate::codec::Bytes;

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

/// A key's kept versions, in commit order (ascending LSN and version number).
///
/// Keeps, for every snapshot at or above the *floor* (the LSN of the oldest snapshot alive
/// or still to be taken), the last `history` versions that snapshot sees: every version above
/// the floor, and the newest `history` at or below it.
///
/// The newest version is inline: a key's first version costs no allocation besides the
/// map's own (most keys have one version).
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    /// The versions before `newest`, oldest first.
    older: Vec<Version>,
    newest: Version,
}

impl Chain {
    /// A key's first version.
    pub fn first(newest: Version) -> Self {
        Chain {
            older: Vec::new(),
            newest,
        }
    }

    /// A chain of `older` versions (oldest first), then `newest`; `None` unless they are in
    /// commit order (ascending LSNs and version numbers).
    pub fn from_versions(older: Vec<Version>, newest: Version) -> Option<Self> {
        let before = |a: &Version, b: &Version| a.lsn < b.lsn && a.version < b.version;
        // Pairwise, without collecting: recovery checks every key of a checkpoint.
        let in_order = older
            .windows(2)
            .all(|p| matches!(p, [a, b] if before(a, b)))
            && older.last().is_none_or(|a| before(a, &newest));
        in_order.then_some(Chain { older, newest })
    }

    /// The newest version, committed or not yet visible (what commits check against).
    pub fn newest(&self) -> &Version {
        &self.newest
    }

    /// The version a snapshot at `lsn` sees (a tombstone if deleted), if any.
    pub fn at(&self, lsn: u64) -> Option<&Version> {
        if self.newest.lsn <= lsn {
            return Some(&self.newest);
        }
        // Binary search: a long snapshot reading a hot key would otherwise walk every
        // version written since it began (found in review).
        let seen = self.older.partition_point(|v| v.lsn <= lsn);
        seen.checked_sub(1).and_then(|i| self.older.get(i))
    }

    /// The last `history` versions a snapshot at `lsn` sees, oldest first (empty when the
    /// key did not exist yet at `lsn`).
    pub fn history_at(&self, lsn: u64, history: usize) -> impl Iterator<Item = &Version> {
        let seen =
            self.older.partition_point(|v| v.lsn <= lsn) + usize::from(self.newest.lsn <= lsn);
        self.all()
            .take(seen)
            .skip(seen.saturating_sub(history.max(1)))
    }

    /// Every kept version, oldest first.
    fn all(&self) -> impl Iterator<Item = &Version> {
        self.older.iter().chain(std::iter::once(&self.newest))
    }

    /// How many versions are kept (at least 1).
    pub fn len(&self) -> usize {
        self.older.len() + 1
    }

    /// Adds `v` as the newest version, then drops the versions no snapshot at or above
    /// `floor()` needs: of those at or below it, all but the newest `history` (`floor()` is
    /// called only when the chain holds more than `history`). `v` must come after every
    /// version kept.
    pub fn push(&mut self, v: Version, history: usize, floor: impl FnOnce() -> u64) {
        debug_assert!(v.lsn > self.newest.lsn && v.version > self.newest.version);
        let previous = std::mem::replace(&mut self.newest, v);
        self.older.push(previous);
        let history = history.max(1);
        if self.len() <= history {
            return;
        }
        let floor = floor();
        let at_or_below =
            self.older.partition_point(|x| x.lsn <= floor) + usize::from(self.newest.lsn <= floor);
        // At most `older.len()`: `history` is at least 1, and `newest` is counted last.
        let drop = at_or_below.saturating_sub(history).min(self.older.len());
        if drop > 0 {
            self.older.drain(..drop);
            // Give back what a long snapshot made the list grow to (found in review).
            if self.older.capacity() > 4 * self.older.len() + 8 {
                self.older.shrink_to(2 * self.older.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: u64, lsn: u64) -> Version {
        Version {
            version,
            lsn,
            commit_time_ms: 0,
            value: None,
        }
    }

    fn lsns<'a>(it: impl Iterator<Item = &'a Version>) -> Vec<u64> {
        it.map(|v| v.lsn).collect()
    }

    #[test]
    fn a_snapshot_reads_the_newest_version_at_or_below_it() {
        let mut c = Chain::first(v(1, 10));
        c.push(v(2, 20), 8, || unreachable!("nothing to drop"));
        c.push(v(3, 30), 8, || unreachable!("nothing to drop"));
        assert_eq!(c.at(9), None);
        assert_eq!(c.at(10).map(|v| v.version), Some(1));
        assert_eq!(c.at(29).map(|v| v.version), Some(2));
        assert_eq!(c.at(u64::MAX).map(|v| v.version), Some(3));
        assert_eq!(c.newest().version, 3);
        assert_eq!(lsns(c.history_at(25, 8)), [10, 20]);
        assert_eq!(lsns(c.history_at(30, 2)), [20, 30]);
        assert_eq!(lsns(c.history_at(5, 8)), Vec::<u64>::new());
    }

    #[test]
    fn versions_a_live_snapshot_needs_are_kept_and_the_rest_dropped() {
        let mut c = Chain::first(v(1, 1));
        // A snapshot at LSN 2 stays alive (the floor) while versions 3..=10 are written.
        c.push(v(2, 2), 3, || 2);
        for n in 3..=10u64 {
            c.push(v(n, n), 3, || 2);
        }
        // The snapshot at 2 still sees its last 3 versions (1 and 2: all there were).
        assert_eq!(lsns(c.history_at(2, 3)), [1, 2]);
        assert_eq!(lsns(c.history_at(10, 3)), [8, 9, 10]);
        assert_eq!(c.len(), 10);
        // Once it is gone (floor 10), only the last 3 remain.
        c.push(v(11, 11), 3, || 10);
        assert_eq!(lsns(c.all()), [8, 9, 10, 11]);
        c.push(v(12, 12), 3, || 11);
        assert_eq!(lsns(c.all()), [9, 10, 11, 12]);
        assert_eq!(lsns(c.history_at(12, 3)), [10, 11, 12]);
        // A history of one keeps the newest version only once nothing older is needed.
        let mut one = Chain::first(v(1, 1));
        one.push(v(2, 2), 1, || 1);
        one.push(v(3, 3), 1, || 2);
        assert_eq!(lsns(one.all()), [2, 3]);
        one.push(v(4, 4), 1, || 3);
        assert_eq!(lsns(one.all()), [3, 4]);
    }

    #[test]
    fn a_list_grown_under_a_long_snapshot_shrinks_once_it_ends() {
        let mut c = Chain::first(v(1, 1));
        for n in 2..=10_000u64 {
            c.push(v(n, n), 2, || 1);
        }
        // Every version between them is found by the snapshot at each LSN.
        for lsn in [1, 2, 5_000, 9_999] {
            assert_eq!(c.at(lsn).map(|v| v.lsn), Some(lsn));
        }
        c.push(v(10_001, 10_001), 2, || 10_001);
        assert_eq!(lsns(c.all()), [10_000, 10_001]);
        assert!(c.older.capacity() <= 16, "capacity {}", c.older.capacity());
    }
}
