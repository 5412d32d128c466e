//! Shared helpers for the walden-store tests that run the store on [`SimStorage`] and check
//! what it holds against a model.
//!
//! Any test file may `mod support;` this; each uses a different subset, hence the
//! `dead_code` allowance below.
//!
//! - [`sim_options`], [`open`]: a store in [`DIR`] on a [`SimStorage`], deterministic
//!   (segments prepared inline, no automatic checkpoints, small segments).
//! - [`ModelState`]: what the store must hold after a sequence of committed transactions:
//!   per key its version count and its last versions (value or tombstone, commit LSN), and
//!   [`ModelState::check`], which compares a whole store with it (scans of every namespace,
//!   versions and history of every key ever touched).
//! - [`snapshot`], [`restore`]: copy a crashed (fully durable) file system, so one crash
//!   state can be recovered many times, for example with a crash inside each recovery.
//!
//! Seeds, the `WALDEN_CRASH_*` knobs and damage patterns are walden-testkit's.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::Path;
use walden_log::storage::SimStorage;
use walden_store::{Limits, Precondition, Scan, Store, StoreOptions};
use walden_testkit::seeds::mix;
use walden_testkit::simfs::{self, Snapshot};

/// The store directory of every simulated store.
pub const DIR: &str = "/s";
/// Its log directory.
pub const LOG_DIR: &str = "/s/log";
/// Its checkpoint directory.
pub const CHECKPOINT_DIR: &str = "/s/checkpoints";
/// The smallest segment size the log accepts: rotations and truncations after a few KiB.
pub const SEGMENT_BYTES: u64 = 16 << 10;

/// Options for a store in [`DIR`]: 16 KiB segments prepared inline, automatic checkpoints
/// off (workloads call `checkpoint()` themselves), `spill_bytes` and `history` as given.
pub fn sim_options(spill_bytes: usize, history: usize) -> StoreOptions {
    let mut limits = Limits::default();
    limits.history_versions = history;
    StoreOptions::new(DIR)
        .log(
            walden_log::Options::new(LOG_DIR)
                .segment_bytes(SEGMENT_BYTES)
                .prepare_in_background(false),
        )
        .checkpoints(0, None)
        .spill_bytes(spill_bytes)
        .limits(limits)
}

/// Opens (creating or recovering) the store `options` describes on `sim`.
pub fn open(sim: &SimStorage, options: StoreOptions) -> walden_store::Result<Store> {
    Store::open_with(options, simfs::shared(sim), &mut |_| {})
}

/// A (namespace, key) pair.
pub type Key = (Vec<u8>, Vec<u8>);

/// One write of a transaction: namespace, key, value (`None`: delete).
pub type WriteOp = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// One version of a key in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersion {
    /// The key's version number.
    pub version: u64,
    /// The value, or `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// The commit LSN, when known (a commit whose call failed has none: it may or may not
    /// have reached the log, and where is not known).
    pub lsn: Option<u64>,
}

/// What the store must hold: every key's last versions, as docs/STORE.md defines them.
///
/// A committed transaction gives each key it writes exactly one new version (version + 1,
/// the value of its *last* write to that key, or a tombstone), all at its commit LSN; a
/// key keeps its last `history` versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelState {
    /// Versions per key, oldest first (never empty for a key that is present).
    pub keys: BTreeMap<Key, VecDeque<ModelVersion>>,
    /// Versions kept per key.
    pub history: usize,
}

impl ModelState {
    /// An empty store keeping `history` versions per key.
    pub fn new(history: usize) -> Self {
        ModelState {
            keys: BTreeMap::new(),
            history: history.max(1),
        }
    }

    /// The key's current version (0: never written).
    pub fn version(&self, ns: &[u8], key: &[u8]) -> u64 {
        self.keys
            .get(&(ns.to_vec(), key.to_vec()))
            .and_then(|h| h.back())
            .map_or(0, |v| v.version)
    }

    /// The key's live value (`None`: never written or deleted).
    pub fn value(&self, ns: &[u8], key: &[u8]) -> Option<&[u8]> {
        self.keys
            .get(&(ns.to_vec(), key.to_vec()))
            .and_then(|h| h.back())
            .and_then(|v| v.value.as_deref())
    }

    /// Whether `pre` holds for the key now (docs/STORE.md: `Absent` = no live value,
    /// `Version(n)` = the current version, tombstones included, is `n`).
    pub fn holds(&self, ns: &[u8], key: &[u8], pre: Precondition) -> bool {
        match pre {
            Precondition::Absent => self.value(ns, key).is_none(),
            Precondition::Version(n) => self.version(ns, key) == n,
            Precondition::Present => self.value(ns, key).is_some(),
        }
    }

    /// Applies one committed transaction's writes at commit LSN `lsn`; returns the new
    /// version of each key written, in first-write order.
    pub fn apply(&mut self, writes: &[WriteOp], lsn: Option<u64>) -> Vec<(Key, u64)> {
        let mut last: BTreeMap<Key, Option<Vec<u8>>> = BTreeMap::new();
        let mut order = Vec::new();
        for (ns, key, value) in writes {
            let k = (ns.clone(), key.clone());
            if last.insert(k.clone(), value.clone()).is_none() {
                order.push(k);
            }
        }
        let mut out = Vec::new();
        for k in order {
            let value = last.remove(&k).unwrap_or_default();
            let versions = self.keys.entry(k.clone()).or_default();
            let version = versions.back().map_or(0, |v| v.version) + 1;
            versions.push_back(ModelVersion {
                version,
                value,
                lsn,
            });
            while versions.len() > self.history {
                versions.pop_front();
            }
            out.push((k, version));
        }
        out
    }

    /// Live keys of `ns` in order, with value and version.
    pub fn live(&self, ns: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, u64)> {
        self.keys
            .iter()
            .filter(|((n, _), _)| n == ns)
            .filter_map(|((_, k), h)| {
                let v = h.back()?;
                Some((k.clone(), v.value.clone()?, v.version))
            })
            .collect()
    }

    /// Compares the whole visible state of `store` with this model: a full scan of every
    /// namespace in `universe` or the model, and the version and history (values,
    /// tombstones, versions, known commit LSNs) of every key in either. Versions whose LSN
    /// the model does not know must all carry one LSN, above every known one. Returns the
    /// first differences found.
    pub fn check(&self, store: &Store, universe: &BTreeSet<Key>) -> Result<(), String> {
        let mut problems = Vec::new();
        let keys: BTreeSet<&Key> = universe.iter().chain(self.keys.keys()).collect();
        let namespaces: BTreeSet<&[u8]> = keys.iter().map(|(ns, _)| ns.as_slice()).collect();
        for ns in &namespaces {
            let got: Vec<(Vec<u8>, Vec<u8>, u64)> = store
                .scan(ns, &Scan::default())
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v.value.to_vec(), v.version))
                .collect();
            let want = self.live(ns);
            if got != want {
                problems.push(format!(
                    "scan of namespace {} holds {} but the model has {}",
                    show(ns),
                    show_rows(&got),
                    show_rows(&want)
                ));
            }
        }
        let known_max = self
            .keys
            .values()
            .flatten()
            .filter_map(|v| v.lsn)
            .max()
            .unwrap_or(0);
        let mut unknown_lsn: Option<u64> = None;
        for (ns, key) in keys {
            let want = self.keys.get(&(ns.clone(), key.clone()));
            let want_version = want.and_then(|h| h.back()).map_or(0, |v| v.version);
            let got_version = store.version(ns, key);
            if got_version != want_version {
                problems.push(format!(
                    "key {}/{} is at version {got_version}, the model at {want_version}",
                    show(ns),
                    show(key)
                ));
                continue;
            }
            let got = store.history(ns, key);
            let empty = VecDeque::new();
            let want = want.unwrap_or(&empty);
            let same = got.len() == want.len()
                && got.iter().zip(want.iter()).all(|(g, w)| {
                    g.version == w.version
                        && g.value.as_deref() == w.value.as_deref()
                        && w.lsn.is_none_or(|l| l == g.lsn)
                });
            if !same {
                problems.push(format!(
                    "history of {}/{} is {} but the model has {}",
                    show(ns),
                    show(key),
                    got.iter()
                        .map(|v| format!(
                            "v{}@{}={}",
                            v.version,
                            v.lsn,
                            v.value.as_deref().map_or("(deleted)".into(), show)
                        ))
                        .collect::<Vec<_>>()
                        .join(","),
                    want.iter()
                        .map(|v| format!(
                            "v{}@{}={}",
                            v.version,
                            v.lsn.map_or("?".into(), |l| l.to_string()),
                            v.value.as_deref().map_or("(deleted)".into(), show)
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
                continue;
            }
            for (g, w) in got.iter().zip(want.iter()) {
                if w.lsn.is_none() {
                    if g.lsn <= known_max {
                        problems.push(format!(
                            "{}/{} v{} has commit LSN {} at or below acknowledged commit LSN \
                             {known_max}",
                            show(ns),
                            show(key),
                            g.version,
                            g.lsn
                        ));
                    }
                    if *unknown_lsn.get_or_insert(g.lsn) != g.lsn {
                        problems.push(format!(
                            "one transaction's versions carry two commit LSNs: {} and {}",
                            unknown_lsn.unwrap_or_default(),
                            g.lsn
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            let n = problems.len();
            problems.truncate(4);
            Err(format!("{n} difference(s): {}", problems.join("; ")))
        }
    }
}

/// Bytes as text when printable, else hex (shortened).
pub fn show(bytes: &[u8]) -> String {
    let text = bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    let mut out = String::new();
    if text {
        out.push_str(&String::from_utf8_lossy(&bytes[..bytes.len().min(24)]));
    } else {
        for b in bytes.iter().take(12) {
            let _ = write!(out, "{b:02x}");
        }
    }
    if bytes.len() > 24 || (!text && bytes.len() > 12) {
        let _ = write!(out, "..({} bytes)", bytes.len());
    }
    out
}

fn show_rows(rows: &[(Vec<u8>, Vec<u8>, u64)]) -> String {
    let mut out = format!("{} keys [", rows.len());
    for (k, v, version) in rows.iter().take(6) {
        let _ = write!(out, "{}=v{version}:{} ", show(k), show(v));
    }
    if rows.len() > 6 {
        out.push_str("...");
    }
    out.push(']');
    out
}

/// The directories of a store: its log and its checkpoints.
fn dirs() -> [&'static Path; 2] {
    [Path::new(LOG_DIR), Path::new(CHECKPOINT_DIR)]
}

/// The files of [`LOG_DIR`] and [`CHECKPOINT_DIR`] on `sim` (see [`Snapshot`]).
pub fn snapshot(sim: &SimStorage) -> Snapshot {
    simfs::snapshot(sim, &dirs())
}

/// A new [`SimStorage`] seeded with `seed` holding exactly `files`, all durable.
pub fn restore(seed: u64, files: &Snapshot) -> SimStorage {
    simfs::restore(seed, &dirs(), files)
}

/// The names and lengths of the store's files, for failure messages.
pub fn describe_files(sim: &SimStorage) -> String {
    simfs::describe_files(sim, &dirs())
}

/// `len` bytes that identify `tag`: the tag itself when it fits, then bytes derived from it.
pub fn value_bytes(tag: &str, len: usize) -> Vec<u8> {
    let mut state = tag
        .bytes()
        .fold(mix(7, tag.len() as u64), |h, b| mix(h, u64::from(b)));
    let mut out: Vec<u8> = tag.as_bytes().iter().copied().take(len).collect();
    while out.len() < len {
        state = mix(state, out.len() as u64);
        out.push(b'a' + (state % 26) as u8);
    }
    out
}
