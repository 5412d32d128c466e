//! Model-based property test: random sequences of operations against the store (on
//! [`SimStorage`]) and against a plain model (a `BTreeMap` per key with versions), compared
//! at every read.
//!
//! Operations: begin several transactions at once, and interleave in them puts, deletes,
//! preconditions (`require`), reads and scans (prefix, bounds, reverse, limit); commit or
//! abort them; `put_if` with `Absent` and `Version(n)`; plain puts and deletes; `get`,
//! `version`, `history` and `scan` outside transactions; checkpoints; a crash with any
//! damage pattern then a reopen; a clean reopen.
//!
//! The model applies docs/STORE.md literally: a transaction reads its snapshot (the
//! committed state when it began) plus its own writes; at commit its preconditions are
//! checked against the latest committed state (`Absent`: no live value; `Version(n)`: the
//! current version, tombstones included, is `n`), then first-committer-wins: if it read from
//! its snapshot (a get of a key it had not written, a scan) and any key it writes has a
//! different version than in its snapshot, `Conflict`; else every key it wrote
//! gets one new version (its last write there) at the commit LSN. Commits are `Sync`, so a
//! crash keeps every one of them and loses every open transaction.
//!
//! Namespaces `a` and `ab` (one a prefix of the other) and keys including the empty key and
//! `0xff` bytes probe the edges of namespace and prefix bounds. `PROPTEST_CASES` changes the
//! number of cases (default 500).
#![allow(clippy::unwrap_used)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use support::{open, sim_options, Key, ModelState, WriteOp};
use walden_log::storage::{CrashDamage, SimStorage};
use walden_store::{CommitInfo, Error, Precondition, Scan, Store, Transaction, Versioned};

const HISTORY: usize = 3;
/// Small, so that transactions with a few large values spill to the log before they commit.
const SPILL_BYTES: usize = 512;
/// Transactions open at once, at most.
const OPEN_MAX: usize = 3;

const NAMESPACES: [&[u8]; 3] = [b"a", b"ab", b"b"];
const KEYS: [&[u8]; 9] = [
    b"",
    b"a",
    b"a\0",
    b"ab",
    b"abc",
    b"b",
    b"\xff",
    b"\xff\xff",
    b"\xff\x00",
];

#[derive(Debug, Clone, Copy)]
enum PreSel {
    Absent,
    Present,
    /// `Version(current committed version + delta)`, delta in -1..=1.
    Version(i8),
}

#[derive(Debug, Clone)]
enum Op {
    Begin,
    Put {
        t: u8,
        ns: u8,
        key: u8,
        len: u16,
    },
    Delete {
        t: u8,
        ns: u8,
        key: u8,
    },
    Require {
        t: u8,
        ns: u8,
        key: u8,
        pre: PreSel,
    },
    Get {
        t: Option<u8>,
        ns: u8,
        key: u8,
    },
    Scan {
        t: Option<u8>,
        ns: u8,
        prefix: Option<u8>,
        start: Option<u8>,
        end: Option<u8>,
        reverse: bool,
        limit: u8,
    },
    Commit {
        t: u8,
    },
    Abort {
        t: u8,
    },
    PutIf {
        ns: u8,
        key: u8,
        len: u16,
        pre: PreSel,
    },
    StorePut {
        ns: u8,
        key: u8,
        len: u16,
    },
    StoreDelete {
        ns: u8,
        key: u8,
    },
    History {
        ns: u8,
        key: u8,
    },
    Checkpoint,
    Crash {
        damage: u8,
    },
    Reopen,
}

fn pre_sel() -> impl Strategy<Value = PreSel> {
    prop_oneof![
        Just(PreSel::Absent),
        Just(PreSel::Present),
        (-1i8..=1).prop_map(PreSel::Version)
    ]
}

fn value_len() -> impl Strategy<Value = u16> {
    prop_oneof![4 => 0u16..40, 1 => 200u16..700]
}

fn op() -> impl Strategy<Value = Op> {
    let ns = 0u8..NAMESPACES.len() as u8;
    let key = 0u8..KEYS.len() as u8;
    let t = 0u8..OPEN_MAX as u8;
    prop_oneof![
        6 => Just(Op::Begin),
        12 => (t.clone(), ns.clone(), key.clone(), value_len())
            .prop_map(|(t, ns, key, len)| Op::Put { t, ns, key, len }),
        4 => (t.clone(), ns.clone(), key.clone()).prop_map(|(t, ns, key)| Op::Delete { t, ns, key }),
        3 => (t.clone(), ns.clone(), key.clone(), pre_sel())
            .prop_map(|(t, ns, key, pre)| Op::Require { t, ns, key, pre }),
        6 => (proptest::option::of(t.clone()), ns.clone(), key.clone())
            .prop_map(|(t, ns, key)| Op::Get { t, ns, key }),
        6 => (
            proptest::option::of(t.clone()),
            ns.clone(),
            proptest::option::of(key.clone()),
            proptest::option::weighted(0.3, key.clone()),
            proptest::option::weighted(0.3, key.clone()),
            any::<bool>(),
            0u8..4,
        )
            .prop_map(|(t, ns, prefix, start, end, reverse, limit)| Op::Scan {
                t,
                ns,
                prefix,
                start,
                end,
                reverse,
                limit
            }),
        8 => t.clone().prop_map(|t| Op::Commit { t }),
        2 => t.prop_map(|t| Op::Abort { t }),
        4 => (ns.clone(), key.clone(), value_len(), pre_sel())
            .prop_map(|(ns, key, len, pre)| Op::PutIf { ns, key, len, pre }),
        4 => (ns.clone(), key.clone(), value_len())
            .prop_map(|(ns, key, len)| Op::StorePut { ns, key, len }),
        2 => (ns.clone(), key.clone()).prop_map(|(ns, key)| Op::StoreDelete { ns, key }),
        2 => (ns, key).prop_map(|(ns, key)| Op::History { ns, key }),
        1 => Just(Op::Checkpoint),
        1 => (0u8..CrashDamage::ALL.len() as u8).prop_map(|damage| Op::Crash { damage }),
        1 => Just(Op::Reopen),
    ]
}

/// A transaction as the model sees it.
#[derive(Debug, Clone)]
struct ModelTxn {
    snapshot: ModelState,
    writes: Vec<WriteOp>,
    requires: Vec<(Vec<u8>, Vec<u8>, Precondition)>,
    /// Read anything from its snapshot (a get of a key it has not written, a scan): only
    /// then is it checked for conflicts.
    read: bool,
}

impl ModelTxn {
    /// The transaction's view of a key: its own last write, else its snapshot.
    fn get(&self, ns: &[u8], key: &[u8]) -> Option<(Vec<u8>, u64)> {
        if let Some((_, _, v)) = self
            .writes
            .iter()
            .rev()
            .find(|(n, k, _)| n == ns && k == key)
        {
            return v.clone().map(|v| (v, 0));
        }
        let value = self.snapshot.value(ns, key)?.to_vec();
        Some((value, self.snapshot.version(ns, key)))
    }

    /// Live keys of `ns` as the transaction sees them, in order.
    fn live(&self, ns: &[u8]) -> BTreeMap<Vec<u8>, (Vec<u8>, u64)> {
        let mut rows: BTreeMap<Vec<u8>, (Vec<u8>, u64)> = self
            .snapshot
            .live(ns)
            .into_iter()
            .map(|(k, v, version)| (k, (v, version)))
            .collect();
        for (n, k, v) in &self.writes {
            if n == ns {
                match v {
                    Some(v) => rows.insert(k.clone(), (v.clone(), 0)),
                    None => rows.remove(k),
                };
            }
        }
        rows
    }
}

fn value(counter: &mut u32, len: u16) -> Vec<u8> {
    *counter += 1;
    support::value_bytes(&format!("{counter}:"), usize::from(len).max(1))
}

fn resolve(committed: &ModelState, ns: &[u8], key: &[u8], pre: PreSel) -> Precondition {
    match pre {
        PreSel::Absent => Precondition::Absent,
        PreSel::Present => Precondition::Present,
        PreSel::Version(d) => {
            Precondition::Version(committed.version(ns, key).saturating_add_signed(d.into()))
        }
    }
}

fn versioned(v: Option<Versioned>) -> Option<(Vec<u8>, u64)> {
    v.map(|v| (v.value.to_vec(), v.version))
}

/// Checks the outcome of committing `m` against the model; applies it to `committed`.
fn check_commit(
    store: &Store,
    result: walden_store::Result<CommitInfo>,
    m: ModelTxn,
    committed: &mut ModelState,
) -> Result<(), TestCaseError> {
    let pre_fails = m
        .requires
        .iter()
        .any(|(ns, k, p)| !committed.holds(ns, k, *p));
    let conflicts = m.read
        && m.writes
            .iter()
            .any(|(ns, k, _)| committed.version(ns, k) != m.snapshot.version(ns, k));
    match result {
        Ok(info) => {
            count(&COMMITS);
            prop_assert!(
                !pre_fails && !conflicts,
                "commit succeeded; the model says precondition fails: {pre_fails}, conflict: \
                 {conflicts}"
            );
            let mut want = committed.apply(&m.writes, Some(info.lsn.get()));
            want.sort();
            let mut got: Vec<(Key, u64)> = info
                .versions
                .iter()
                .map(|(ns, k, v)| ((ns.to_vec(), k.to_vec()), *v))
                .collect();
            got.sort();
            prop_assert_eq!(got, want, "versions reported by commit");
            for (ns, k, _) in &m.writes {
                prop_assert_eq!(
                    versioned(store.get(ns, k)),
                    committed
                        .value(ns, k)
                        .map(|v| (v.to_vec(), committed.version(ns, k))),
                    "read after commit"
                );
            }
        }
        Err(Error::PreconditionFailed { .. }) => {
            count(&PRECONDITION_FAILURES);
            prop_assert!(
                pre_fails,
                "PreconditionFailed, but the model's preconditions hold"
            )
        }
        // (When both fail, either error is right.)
        Err(Error::Conflict { .. }) => {
            count(&CONFLICTS);
            prop_assert!(
                conflicts,
                "Conflict, but no key it writes changed since its snapshot"
            )
        }
        Err(e) => return Err(TestCaseError::fail(format!("commit failed: {e}"))),
    }
    Ok(())
}

fn run_case(seed: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let sim = SimStorage::new(seed);
    let options = sim_options(SPILL_BYTES, HISTORY);
    let mut committed = ModelState::new(HISTORY);
    let mut universe: BTreeSet<Key> = BTreeSet::new();
    let mut counter = 0u32;
    let mut ops = ops.iter().enumerate();
    // One store per epoch; an epoch ends with a crash or a reopen (or the last op).
    loop {
        let store = open(&sim, options.clone())
            .map_err(|e| TestCaseError::fail(format!("open failed: {e}")))?;
        if let Err(e) = committed.check(&store, &universe) {
            return Err(TestCaseError::fail(format!(
                "after (re)opening, the store differs from the model: {e}"
            )));
        }
        let mut txns: Vec<(Transaction<'_>, ModelTxn)> = Vec::new();
        let mut end: Option<Option<CrashDamage>> = None;
        for (i, op) in ops.by_ref() {
            let ctx = |what: &str| format!("op {i} {op:?}: {what}");
            let pick = |t: u8, n: usize| (n > 0).then(|| usize::from(t) % n);
            match *op {
                Op::Begin => {
                    if txns.len() < OPEN_MAX {
                        let tx = store.begin();
                        let m = ModelTxn {
                            snapshot: committed.clone(),
                            writes: Vec::new(),
                            requires: Vec::new(),
                            read: false,
                        };
                        txns.push((tx, m));
                    }
                }
                Op::Put { t, ns, key, len } => {
                    let Some(t) = pick(t, txns.len()) else {
                        continue;
                    };
                    let (ns, key) = (NAMESPACES[ns as usize], KEYS[key as usize]);
                    let v = value(&mut counter, len);
                    let (tx, m) = &mut txns[t];
                    let before = store.wal().next_lsn();
                    tx.put(ns, key, &v)
                        .map_err(|e| TestCaseError::fail(ctx(&e.to_string())))?;
                    if store.wal().next_lsn() > before {
                        count(&SPILLS);
                    }
                    m.writes.push((ns.to_vec(), key.to_vec(), Some(v)));
                    universe.insert((ns.to_vec(), key.to_vec()));
                }
                Op::Delete { t, ns, key } => {
                    let Some(t) = pick(t, txns.len()) else {
                        continue;
                    };
                    let (ns, key) = (NAMESPACES[ns as usize], KEYS[key as usize]);
                    let (tx, m) = &mut txns[t];
                    tx.delete(ns, key)
                        .map_err(|e| TestCaseError::fail(ctx(&e.to_string())))?;
                    m.writes.push((ns.to_vec(), key.to_vec(), None));
                    universe.insert((ns.to_vec(), key.to_vec()));
                }
                Op::Require { t, ns, key, pre } => {
                    let Some(t) = pick(t, txns.len()) else {
                        continue;
                    };
                    let (ns, key) = (NAMESPACES[ns as usize], KEYS[key as usize]);
                    let pre = resolve(&committed, ns, key, pre);
                    let (tx, m) = &mut txns[t];
                    tx.require(ns, key, pre)
                        .map_err(|e| TestCaseError::fail(ctx(&e.to_string())))?;
                    m.requires.push((ns.to_vec(), key.to_vec(), pre));
                }
                Op::Get { t, ns, key } => {
                    let (ns, key) = (NAMESPACES[ns as usize], KEYS[key as usize]);
                    match t.and_then(|t| pick(t, txns.len())) {
                        Some(t) => {
                            let (tx, m) = &mut txns[t];
                            prop_assert_eq!(
                                versioned(tx.get(ns, key)),
                                m.get(ns, key),
                                "{}",
                                ctx("read in a transaction")
                            );
                            m.read |= !m.writes.iter().any(|(n, k, _)| n == ns && k == key);
                        }
                        None => {
                            let got = store.get(ns, key);
                            let want = committed
                                .value(ns, key)
                                .map(|v| (v.to_vec(), committed.version(ns, key)));
                            prop_assert_eq!(versioned(got.clone()), want, "{}", ctx("get"));
                            let lsn = committed
                                .keys
                                .get(&(ns.to_vec(), key.to_vec()))
                                .and_then(|h| h.back())
                                .and_then(|v| v.lsn);
                            if let (Some(got), Some(lsn)) = (got, lsn) {
                                prop_assert_eq!(got.lsn, lsn, "{}", ctx("commit LSN"));
                            }
                            prop_assert_eq!(
                                store.version(ns, key),
                                committed.version(ns, key),
                                "{}",
                                ctx("version")
                            );
                        }
                    }
                }
                Op::Scan {
                    t,
                    ns,
                    prefix,
                    start,
                    end,
                    reverse,
                    limit,
                } => {
                    let ns = NAMESPACES[ns as usize];
                    let key = |k: Option<u8>| k.map(|k| KEYS[k as usize].to_vec());
                    let scan = Scan {
                        prefix: key(prefix),
                        start: key(start),
                        end: key(end),
                        reverse,
                        limit: limit.into(),
                    };
                    let (got, rows) = match t.and_then(|t| pick(t, txns.len())) {
                        Some(t) => {
                            let (tx, m) = &mut txns[t];
                            m.read = true;
                            (tx.scan(ns, &scan), m.live(ns))
                        }
                        None => {
                            let rows = committed
                                .live(ns)
                                .into_iter()
                                .map(|(k, v, version)| (k, (v, version)))
                                .collect();
                            (store.scan(ns, &scan), rows)
                        }
                    };
                    let selected = rows.into_iter().filter(|(k, _)| {
                        scan.prefix.as_ref().is_none_or(|p| k.starts_with(p))
                            && scan.start.as_ref().is_none_or(|s| k >= s)
                            && scan.end.as_ref().is_none_or(|e| k < e)
                    });
                    let mut want: Vec<_> = selected.map(|(k, (v, ver))| (k, v, ver)).collect();
                    if !want.is_empty() {
                        count(&NONEMPTY_SCANS);
                    }
                    if reverse {
                        want.reverse();
                    }
                    if limit > 0 {
                        want.truncate(limit.into());
                    }
                    let got: Vec<_> = got
                        .into_iter()
                        .map(|(k, v)| (k.to_vec(), v.value.to_vec(), v.version))
                        .collect();
                    prop_assert_eq!(got, want, "{}", ctx(&format!("scan {scan:?}")));
                }
                Op::Commit { t } => {
                    let Some(t) = pick(t, txns.len()) else {
                        continue;
                    };
                    let (tx, m) = txns.remove(t);
                    check_commit(&store, tx.commit(), m, &mut committed)
                        .map_err(|e| TestCaseError::fail(ctx(&e.to_string())))?;
                }
                Op::Abort { t } => {
                    let Some(t) = pick(t, txns.len()) else {
                        continue;
                    };
                    let (tx, _) = txns.remove(t);
                    tx.abort();
                }
                Op::PutIf { ns, key, len, pre } => {
                    let (ns, key) = (NAMESPACES[ns as usize], KEYS[key as usize]);
                    let pre = resolve(&committed, ns, key, pre);
                    let v = value(&mut counter, len);
                    universe.insert((ns.to_vec(), key.to_vec()));
                    let m = ModelTxn {
                        snapshot: committed.clone(),
                        writes: vec![(ns.to_vec(), key.to_vec(), Some(v.clone()))],
                        requires: vec![(ns.to_vec(), key.to_vec(), pre)],
                        read: false,
                    };
                    let result = store.put_if(ns, key, &v, pre);
                    check_commit(&store, result, m, &mut committed)
                        .map_err(|e| TestCaseError::fail(ctx(&e.to_string())))?;
                }
                Op::StorePut { ns, key, len } => {
                    let (ns, key) = (NAMESPACES[ns as usize], KEYS[key as usize]);
                    let v = value(&mut counter, len);
                    universe.insert((ns.to_vec(), key.to_vec()));
                    let m = ModelTxn {
                        snapshot: committed.clone(),
                        writes: vec![(ns.to_vec(), key.to_vec(), Some(v.clone()))],
                        requires: Vec::new(),
                        read: false,
                    };
                    let result = store.put(ns, key, &v);
                    check_commit(&store, result, m, &mut committed)
                        .map_err(|e| TestCaseError::fail(ctx(&e.to_string())))?;
                }
                Op::StoreDelete { ns, key } => {
                    let (ns, key) = (NAMESPACES[ns as usize], KEYS[key as usize]);
                    universe.insert((ns.to_vec(), key.to_vec()));
                    let m = ModelTxn {
                        snapshot: committed.clone(),
                        writes: vec![(ns.to_vec(), key.to_vec(), None)],
                        requires: Vec::new(),
                        read: false,
                    };
                    let result = store.delete(ns, key);
                    check_commit(&store, result, m, &mut committed)
                        .map_err(|e| TestCaseError::fail(ctx(&e.to_string())))?;
                    prop_assert!(store.get(ns, key).is_none(), "{}", ctx("deleted key reads"));
                }
                Op::History { ns, key } => {
                    let (ns, key) = (NAMESPACES[ns as usize], KEYS[key as usize]);
                    let got: Vec<_> = store
                        .history(ns, key)
                        .into_iter()
                        .map(|v| (v.version, v.value.map(|b| b.to_vec()), v.lsn))
                        .collect();
                    let want: Vec<_> = committed
                        .keys
                        .get(&(ns.to_vec(), key.to_vec()))
                        .map(|h| {
                            h.iter()
                                .map(|v| (v.version, v.value.clone(), v.lsn.unwrap_or(0)))
                                .collect()
                        })
                        .unwrap_or_default();
                    prop_assert_eq!(got, want, "{}", ctx("history"));
                }
                Op::Checkpoint => {
                    let info = store
                        .checkpoint()
                        .map_err(|e| TestCaseError::fail(ctx(&e.to_string())))?;
                    count(&CHECKPOINTS);
                    prop_assert_eq!(info.lsn, store.status().visible_lsn, "{}", ctx("lsn"));
                }
                Op::Crash { damage } => {
                    end = Some(Some(CrashDamage::ALL[damage as usize]));
                    break;
                }
                Op::Reopen => {
                    end = Some(None);
                    break;
                }
            }
        }
        // Open transactions end with the process (a crash) or are dropped (a reopen).
        drop(txns);
        match end {
            None => {
                return committed
                    .check(&store, &universe)
                    .map_err(|e| TestCaseError::fail(format!("at the end: {e}")));
            }
            Some(None) => {
                count(&REOPENS);
                store
                    .close()
                    .map_err(|e| TestCaseError::fail(format!("close failed: {e}")))?
            }
            Some(Some(damage)) => {
                count(&CRASHES);
                drop(store);
                sim.crash(damage);
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// What the cases exercised, counted over the whole run.
static COMMITS: AtomicU64 = AtomicU64::new(0);
static CONFLICTS: AtomicU64 = AtomicU64::new(0);
static PRECONDITION_FAILURES: AtomicU64 = AtomicU64::new(0);
static SPILLS: AtomicU64 = AtomicU64::new(0);
static CRASHES: AtomicU64 = AtomicU64::new(0);
static REOPENS: AtomicU64 = AtomicU64::new(0);
static CHECKPOINTS: AtomicU64 = AtomicU64::new(0);
static NONEMPTY_SCANS: AtomicU64 = AtomicU64::new(0);

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Runs the cases (failures are shrunk, printed, and saved next to this file by proptest;
/// `PROPTEST_RNG_SEED=<n>` fixes the generator), then checks that the run exercised
/// conflicts, failed preconditions, spills, crashes, reopens and checkpoints.
#[test]
fn the_store_behaves_like_the_model() {
    let config = ProptestConfig {
        cases: cases(),
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (any::<u64>(), proptest::collection::vec(op(), 1..80));
    if let Err(e) = runner.run(&strategy, |(seed, ops)| run_case(seed, &ops)) {
        panic!("{e}");
    }
    let counts = [
        ("commits", &COMMITS),
        ("conflicts", &CONFLICTS),
        ("precondition failures", &PRECONDITION_FAILURES),
        ("spills", &SPILLS),
        ("crashes", &CRASHES),
        ("reopens", &REOPENS),
        ("checkpoints", &CHECKPOINTS),
        ("non-empty scans", &NONEMPTY_SCANS),
    ];
    let counts: Vec<(&str, u64)> = counts
        .iter()
        .map(|(what, c)| (*what, c.load(Ordering::Relaxed)))
        .collect();
    println!("{} cases exercised {counts:?}", cases());
    if cases() >= 100 {
        for (what, n) in counts {
            assert!(n > 0, "no case exercised {what}");
        }
    }
}
