//! Model-based property test: random sequences of appends (both durability levels), atomic
//! batches, syncs, reads, `truncate_before`, `truncate_after`, crashes with every damage
//! pattern, and clean reopens, run against the log on `SimStorage` and against a model (the
//! records in LSN order and the highest acknowledged LSN). Reads must match the model; after a
//! crash the recovered log must be a prefix of the model holding every acknowledged record,
//! and the model becomes what was recovered; after a clean reopen nothing is lost.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use proptest::prelude::*;
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::{Durability, Error, Lsn, Options, Wal};

#[derive(Debug, Clone)]
enum Op {
    Append {
        len: usize,
        sync: bool,
    },
    Batch {
        lens: Vec<usize>,
        sync: bool,
    },
    Sync,
    /// Read from a point in the log (a fraction of its length, in 256ths).
    Read {
        at: u8,
    },
    TruncateBefore {
        at: u8,
    },
    TruncateAfter {
        at: u8,
    },
    Crash {
        damage: usize,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..1500usize, any::<bool>()).prop_map(|(len, sync)| Op::Append { len, sync }),
        3 => (prop::collection::vec(0..400usize, 1..6), any::<bool>()).prop_map(|(lens, sync)| Op::Batch { lens, sync }),
        2 => Just(Op::Sync),
        3 => any::<u8>().prop_map(|at| Op::Read { at }),
        1 => any::<u8>().prop_map(|at| Op::TruncateBefore { at }),
        1 => any::<u8>().prop_map(|at| Op::TruncateAfter { at }),
        2 => (0..CrashDamage::ALL.len()).prop_map(|damage| Op::Crash { damage }),
        1 => Just(Op::Reopen),
    ]
}

fn options() -> Options {
    sim_options(SMALL_SEGMENT_BYTES)
        .buffer_bytes(2048)
        .recycle_segments_max(2)
}

/// The test's state: the log, the model, and the atomic batches in the model (`truncate_after`
/// may not cut inside one).
struct Harness {
    sim: SimStorage,
    wal: Option<Wal>,
    model: Model,
    batches: Vec<(u64, u64)>,
    counter: u64,
}

impl Harness {
    fn wal(&self) -> &Wal {
        self.wal.as_ref().unwrap()
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        self.counter += 1;
        let mut b = format!("{}:", self.counter).into_bytes();
        b.resize(len.max(b.len()), (self.counter % 251) as u8);
        b
    }

    /// An LSN at `at`/256 of the way from the first LSN - 1 to the last.
    fn lsn_at(&self, at: u8) -> u64 {
        let first = self.wal().first_lsn().0;
        let last = self.wal().next_lsn().0 - 1;
        let span = (last + 1).saturating_sub(first);
        first - 1 + span * u64::from(at) / 255
    }

    fn last(&self) -> u64 {
        self.model.appended.last().map_or(0, |r| r.0)
    }

    fn step(&mut self, op: &Op, ctx: &str) {
        match op {
            Op::Append { len, sync } => {
                let data = self.bytes(*len);
                let durability = if *sync {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                let wal = self.wal.take().unwrap();
                let lsn = self.model.append(&wal, data, durability).unwrap();
                if *sync {
                    assert!(wal.durable_lsn() >= lsn, "{ctx}");
                }
                self.wal = Some(wal);
            }
            Op::Batch { lens, sync } => {
                let records: Vec<Vec<u8>> = lens.iter().map(|&l| self.bytes(l)).collect();
                let n = records.len() as u64;
                let durability = if *sync {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                let wal = self.wal.take().unwrap();
                let first = self.model.append_batch(&wal, records, durability).unwrap();
                self.batches.push((first.0, first.0 + n - 1));
                self.wal = Some(wal);
            }
            Op::Sync => {
                let wal = self.wal.take().unwrap();
                self.model.sync(&wal).unwrap();
                assert_eq!(wal.durable_lsn().0, wal.next_lsn().0 - 1, "{ctx}");
                self.wal = Some(wal);
            }
            Op::Read { at } => {
                let wal = self.wal();
                let from = self.lsn_at(*at).max(wal.first_lsn().0);
                let durable = wal.durable_lsn().0;
                assert!(
                    durable >= self.model.acked,
                    "{ctx}: durable LSN below the acknowledged one"
                );
                let got: Vec<(u64, Vec<u8>)> = wal
                    .read_from(Lsn(from))
                    .unwrap()
                    .map(|r| r.map(|r| (r.lsn.0, r.data)).unwrap())
                    .collect();
                let want: Vec<(u64, Vec<u8>)> = self
                    .model
                    .appended
                    .iter()
                    .filter(|r| r.0 >= from && r.0 <= durable)
                    .cloned()
                    .collect();
                assert!(
                    got == want,
                    "{ctx}: read_from({from}) returned {} records, model has {}",
                    got.len(),
                    want.len()
                );
                if from > 1 && from < wal.first_lsn().0 {
                    assert!(matches!(
                        wal.read_from(Lsn(from - 1)),
                        Err(Error::Truncated { .. })
                    ));
                }
            }
            Op::TruncateBefore { at } => {
                let lsn = self.lsn_at(*at).max(1);
                let wal = self.wal.take().unwrap();
                let before = wal.first_lsn();
                self.model.truncate_before(&wal, lsn).unwrap();
                let after = wal.first_lsn();
                assert!(
                    after >= before && after.0 <= lsn.max(before.0),
                    "{ctx}: first LSN {before} -> {after}, asked {lsn}"
                );
                self.wal = Some(wal);
            }
            Op::TruncateAfter { at } => {
                let lsn = self.lsn_at(*at);
                let inside_batch = self.batches.iter().any(|&(a, b)| lsn >= a && lsn < b);
                let wal = self.wal.take().unwrap();
                let acked = self.model.acked;
                match self.model.truncate_after(&wal, lsn) {
                    Ok(()) => {
                        assert!(!inside_batch, "{ctx}: cut inside a batch at {lsn}");
                        assert_eq!(
                            wal.next_lsn(),
                            Lsn(lsn + 1).max(Lsn(self.last() + 1)),
                            "{ctx}"
                        );
                        assert_eq!(wal.durable_lsn().0, wal.next_lsn().0 - 1, "{ctx}");
                        self.batches.retain(|&(_, b)| b <= lsn);
                    }
                    Err(Error::InvalidArgument(_)) if inside_batch => {
                        // Refused, nothing cut; it synced everything first.
                        self.model.acked = acked.max(self.last());
                        assert_eq!(wal.durable_lsn().0, wal.next_lsn().0 - 1, "{ctx}");
                    }
                    Err(e) => panic!("{ctx}: truncate_after({lsn}): {e}"),
                }
                self.wal = Some(wal);
            }
            Op::Crash { damage } => {
                let damage = CrashDamage::ALL[*damage];
                self.sim.crash(damage);
                drop(self.wal.take());
                self.reopen(&format!("{ctx} after a {damage:?} crash"), false);
            }
            Op::Reopen => {
                drop(self.wal.take());
                self.reopen(&format!("{ctx} after a clean reopen"), true);
            }
        }
    }

    fn reopen(&mut self, ctx: &str, clean: bool) {
        let wal =
            open(&self.sim, options()).unwrap_or_else(|e| panic!("{ctx}: refused to open: {e}"));
        let recovered = self.model.check(&wal, ctx);
        if clean {
            let expected = self
                .model
                .appended
                .iter()
                .filter(|r| r.0 >= wal.first_lsn().0)
                .count();
            assert_eq!(
                recovered.len(),
                expected,
                "{ctx}: a clean close keeps every record"
            );
            assert_eq!(
                wal.recovery_report().damage,
                None,
                "{ctx}: a clean close leaves no damage"
            );
        }
        self.model.adopt(&wal, recovered);
        let last = self.last();
        self.batches.retain(|&(_, b)| b <= last);
        self.wal = Some(wal);
    }
}

/// 300 cases in the normal suite; `WALDEN_PROPTEST_CASES=<n>` runs more (a soak) or fewer.
fn config() -> ProptestConfig {
    let cases = std::env::var("WALDEN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn model_check_against_sim_storage(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..60)) {
        let sim = SimStorage::new(seed);
        let wal = open(&sim, options()).unwrap();
        let mut h = Harness { sim, wal: Some(wal), model: Model::new(), batches: Vec::new(), counter: 0 };
        for (i, op) in ops.iter().enumerate() {
            let ctx = format!("seed {seed} op {i} {op:?}");
            h.step(op, &ctx);
        }
        // Finally a clean close and reopen holds the whole model.
        drop(h.wal.take());
        h.reopen(&format!("seed {seed} final reopen"), true);
    }
}
