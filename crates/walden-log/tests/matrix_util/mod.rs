//! Helpers shared by the fault-matrix tests (`tests/matrix_*.rs`, `tests/model_proptest.rs`).
//! Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use walden_log::format::{
    decode_frame_header, frame_bytes, frame_crc, segment_file_name, SegmentHeader, DATA_OFFSET,
    FRAME_HEADER_BYTES,
};
use walden_log::storage::{CrashDamage, SimStorage};
use walden_log::{Durability, Error, Lsn, Options, RecoveryMode, Wal};

/// Records as (LSN, bytes), in LSN order.
pub type Records = Vec<(u64, Vec<u8>)>;

/// The log directory every simulated test uses.
pub const DIR: &str = "/sim/log";

/// The smallest segment the engine accepts: many rotations with few records.
pub const SMALL_SEGMENT_BYTES: u64 = 16 << 10;

/// Every recovery mode, for rows whose outcome must not depend on it.
pub const ALL_MODES: [RecoveryMode; 4] = [
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::TolerateTornTail,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipCorrupt,
];

pub fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

/// Deterministic options for the simulator: the writer prepares segments itself.
pub fn sim_options(segment_bytes: u64) -> Options {
    Options::new(DIR)
        .segment_bytes(segment_bytes)
        .prepare_in_background(false)
}

pub fn open(sim: &SimStorage, options: Options) -> walden_log::Result<Wal> {
    Wal::open_with(options, Arc::new(sim.clone()), &mut |_| {})
}

pub fn open_mode(
    sim: &SimStorage,
    segment_bytes: u64,
    mode: RecoveryMode,
) -> walden_log::Result<Wal> {
    open(sim, sim_options(segment_bytes).recovery(mode))
}

/// The payload of the `i`-th test record: distinct, self-describing, of varying length.
pub fn payload(tag: &str, i: u64) -> Vec<u8> {
    let mut p = format!("{tag}-{i:06}-").into_bytes();
    p.extend(std::iter::repeat_n(
        b'a' + (i % 26) as u8,
        (i % 37) as usize,
    ));
    p
}

/// Every readable record from the first LSN on, as (lsn, bytes).
pub fn read_all(wal: &Wal) -> Records {
    wal.read_from(wal.first_lsn())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.lsn.0, r.data)
        })
        .collect()
}

/// Appends `n` records at `durability`, checking the LSNs are dense; returns (lsn, bytes).
pub fn append_n(wal: &Wal, tag: &str, n: u64, durability: Durability) -> Records {
    let mut out = Vec::new();
    for _ in 0..n {
        let expected = wal.next_lsn();
        let data = payload(tag, expected.0);
        let lsn = wal.append_with(&data, durability).unwrap();
        assert_eq!(lsn, expected);
        out.push((lsn.0, data));
    }
    out
}

pub fn seg_path(id: u64) -> PathBuf {
    dir().join(segment_file_name(id))
}

/// The ids of the `*.wal` files in the log directory, sorted.
pub fn wal_ids(sim: &SimStorage) -> Vec<u64> {
    sim.file_names(Path::new(DIR))
        .iter()
        .filter_map(|n| walden_log::format::parse_segment_file_name(n))
        .collect()
}

/// A verified frame found by [`frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAt {
    pub offset: u64,
    pub lsn: u64,
    pub payload_bytes: u32,
    /// Bytes the frame takes on disk, padding included.
    pub total_bytes: u64,
    pub durable_lsn: u64,
}

/// The header of the segment at `path` (current image), if it verifies.
pub fn header_of(sim: &SimStorage, path: &Path) -> Option<SegmentHeader> {
    let bytes = sim.read_file(path)?;
    SegmentHeader::decode_page(bytes.get(..DATA_OFFSET as usize)?).ok()
}

/// The valid frames at the front of the segment at `path` (current image), in order,
/// stopping at the first thing that is not a frame of this segment.
pub fn frames(sim: &SimStorage, path: &Path) -> Vec<FrameAt> {
    let Some(header) = header_of(sim, path) else {
        return Vec::new();
    };
    let bytes = sim.read_file(path).unwrap();
    let seed = header.frame_seed();
    let mut out = Vec::new();
    let mut at = DATA_OFFSET as usize;
    while let Some(h) = bytes.get(at..).and_then(decode_frame_header) {
        let body = FRAME_HEADER_BYTES + h.len as usize;
        let Some(frame) = bytes.get(at..at + body) else {
            break;
        };
        if frame_crc(seed, frame) != h.crc {
            break;
        }
        let total = frame_bytes(u64::from(h.len));
        out.push(FrameAt {
            offset: at as u64,
            lsn: h.lsn,
            payload_bytes: h.len,
            total_bytes: total,
            durable_lsn: h.durable_lsn,
        });
        at += total as usize;
    }
    out
}

/// The segment id and frame holding `lsn` as its first record.
pub fn find_frame(sim: &SimStorage, lsn: u64) -> (u64, FrameAt) {
    for id in wal_ids(sim) {
        if let Some(f) = frames(sim, &seg_path(id))
            .into_iter()
            .find(|f| f.lsn == lsn)
        {
            return (id, f);
        }
    }
    panic!("no frame holds LSN {lsn}");
}

/// Asserts `err` is `Error::Corruption` at exactly this place; returns its reason.
pub fn assert_corruption_at(err: &Error, path: &Path, offset: u64, lsn: u64) -> String {
    match err {
        Error::Corruption { location, reason } => {
            assert_eq!(location.path, path, "damaged file: {err}");
            assert_eq!(location.offset, offset, "damaged offset: {err}");
            assert_eq!(location.lsn, Lsn(lsn), "damaged LSN: {err}");
            reason.clone()
        }
        other => panic!(
            "expected Error::Corruption at {} offset {offset} LSN {lsn}, got {other:?}",
            path.display()
        ),
    }
}

/// Asserts `recovered` is a prefix of `appended` (same LSNs, same bytes, from the start)
/// that holds at least every LSN up to `acked`.
pub fn assert_prefix_with_acked(
    recovered: &[(u64, Vec<u8>)],
    appended: &[(u64, Vec<u8>)],
    acked: u64,
    ctx: &str,
) {
    assert!(
        recovered.len() <= appended.len(),
        "{ctx}: recovered {} records, only {} were appended",
        recovered.len(),
        appended.len()
    );
    for (i, (got, want)) in recovered.iter().zip(appended).enumerate() {
        assert_eq!(got.0, want.0, "{ctx}: record {i} has the wrong LSN");
        assert!(
            got.1 == want.1,
            "{ctx}: LSN {} holds other bytes than appended",
            got.0
        );
    }
    let last = recovered
        .last()
        .map_or(appended.first().map_or(0, |r| r.0.saturating_sub(1)), |r| {
            r.0
        });
    assert!(
        last >= acked,
        "{ctx}: recovered up to LSN {last}, but LSN {acked} was acknowledged"
    );
}

/// A log with damage before its tail: durable records after the damaged frame prove it was
/// acknowledged (rows 2, 3 and 13 share the expected outcomes).
pub struct MidDamage {
    pub sim: SimStorage,
    pub segment_bytes: u64,
    /// Every record appended, all acknowledged.
    pub appended: Records,
    /// The first damaged LSN.
    pub bad_lsn: u64,
    /// The first LSN after the damage (the hole `SkipCorrupt` leaves is `bad_lsn..hole_end`).
    pub hole_end: u64,
    /// Where recovery must name the damage.
    pub segment: u64,
    pub offset: u64,
    /// A word the refusal's reason must contain ("checksum mismatch", "read error", ...).
    pub reason_has: &'static str,
}

impl MidDamage {
    /// Opening in `AbsoluteConsistency` or `TolerateTornTail` fails, naming segment file,
    /// byte offset and LSN; in the default mode the reason names the proof.
    pub fn assert_refused(&self, mode: RecoveryMode) {
        let err = open_mode(&self.sim, self.segment_bytes, mode).unwrap_err();
        let reason = assert_corruption_at(&err, &seg_path(self.segment), self.offset, self.bad_lsn);
        assert!(
            reason.contains(self.reason_has),
            "{mode:?}: reason {reason:?} lacks {:?}",
            self.reason_has
        );
        if mode == RecoveryMode::TolerateTornTail {
            assert!(
                reason.contains("acknowledged data is damaged"),
                "names the proof: {reason}"
            );
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&seg_path(self.segment).display().to_string()),
            "message names the file: {msg}"
        );
        assert!(
            msg.contains(&format!("byte offset {}", self.offset)),
            "message names the offset: {msg}"
        );
        assert!(
            msg.contains(&format!("LSN {}", self.bad_lsn)),
            "message names the LSN: {msg}"
        );
        // A refusal changes nothing: the same refusal again.
        let again = open_mode(&self.sim, self.segment_bytes, mode).unwrap_err();
        assert_corruption_at(&again, &seg_path(self.segment), self.offset, self.bad_lsn);
    }

    /// `PointInTime` opens, cut right before the damage, reports it, and the cut is final.
    pub fn assert_point_in_time_cuts(&self) {
        let wal = open_mode(&self.sim, self.segment_bytes, RecoveryMode::PointInTime).unwrap();
        let report = wal.recovery_report().clone();
        let damage = report.damage.expect("the cut is reported");
        assert_eq!(damage.location.path, seg_path(self.segment));
        assert_eq!(damage.location.offset, self.offset);
        assert_eq!(damage.location.lsn, Lsn(self.bad_lsn));
        assert!(damage.reason.contains(self.reason_has), "{}", damage.reason);
        assert_eq!(report.next_lsn, Lsn(self.bad_lsn));
        let mut expected: Vec<_> = self
            .appended
            .iter()
            .filter(|r| r.0 < self.bad_lsn)
            .cloned()
            .collect();
        assert_eq!(read_all(&wal), expected, "stops right before the damage");
        assert_eq!(
            wal.append(b"after the cut").unwrap(),
            Lsn(self.bad_lsn),
            "appends continue at the cut"
        );
        wal.close().unwrap();
        let wal = open(&self.sim, sim_options(self.segment_bytes)).unwrap();
        assert_eq!(wal.recovery_report().damage, None, "the cut is final");
        expected.push((self.bad_lsn, b"after the cut".to_vec()));
        assert_eq!(read_all(&wal), expected);
    }

    /// `SkipCorrupt` opens, keeps every record after the damaged frames (a hole) and reads
    /// across it.
    pub fn assert_skip_corrupt_keeps_the_rest(&self) {
        let wal = open_mode(&self.sim, self.segment_bytes, RecoveryMode::SkipCorrupt).unwrap();
        let report = wal.recovery_report().clone();
        assert_eq!(
            report.skipped,
            vec![(Lsn(self.bad_lsn), Lsn(self.hole_end))]
        );
        let damage = report.damage.expect("the hole is reported");
        assert_eq!(damage.location.path, seg_path(self.segment));
        assert_eq!(damage.location.offset, self.offset);
        assert_eq!(damage.location.lsn, Lsn(self.bad_lsn));
        let last = self.appended.last().unwrap().0;
        assert_eq!(
            report.next_lsn,
            Lsn(last + 1),
            "keeps every record after the hole"
        );
        let hole = self.bad_lsn..self.hole_end;
        let expected: Vec<_> = self
            .appended
            .iter()
            .filter(|r| !hole.contains(&r.0))
            .cloned()
            .collect();
        assert_eq!(read_all(&wal), expected, "reads across the hole");
        let after: Vec<u64> = wal
            .read_from(Lsn(self.hole_end))
            .unwrap()
            .map(|r| r.unwrap().lsn.0)
            .collect();
        assert_eq!(after, (self.hole_end..=last).collect::<Vec<_>>());
        assert_eq!(wal.append(b"after the hole").unwrap(), Lsn(last + 1));
    }
}

/// Builds the damaged log afresh for each mode (opening in a tolerant mode writes) and checks
/// all four outcomes.
pub fn assert_mid_damage_every_mode(build: impl Fn() -> MidDamage) {
    build().assert_refused(RecoveryMode::TolerateTornTail);
    build().assert_refused(RecoveryMode::AbsoluteConsistency);
    build().assert_point_in_time_cuts();
    build().assert_skip_corrupt_keeps_the_rest();
}

/// What a workload handed the log, and what the log acknowledged, for checking recovery
/// after a crash.
#[derive(Debug, Clone)]
pub struct Model {
    /// Every record that got an LSN, in LSN order (acknowledged or not).
    pub appended: Records,
    /// Highest LSN acknowledged durable (every LSN up to it must survive a crash).
    pub acked: u64,
    /// The recovered log may not start before this (segments released durably).
    pub first_min: u64,
    /// The recovered log may not start after this (the highest `truncate_before` asked).
    pub first_max: u64,
}

impl Model {
    pub fn new() -> Self {
        Model {
            appended: Vec::new(),
            acked: 0,
            first_min: 1,
            first_max: 1,
        }
    }

    /// Appends `data`; the record is in the model if it got an LSN, even if the call failed
    /// (its bytes may have reached the disk).
    pub fn append(
        &mut self,
        wal: &Wal,
        data: Vec<u8>,
        durability: Durability,
    ) -> walden_log::Result<Lsn> {
        let expected = wal.next_lsn();
        let outcome = wal.append_with(&data, durability);
        if outcome.is_ok() || wal.next_lsn() > expected {
            self.appended.push((expected.0, data));
        }
        let lsn = outcome?;
        assert_eq!(lsn, expected);
        if durability == Durability::Sync {
            self.acked = lsn.0;
        }
        Ok(lsn)
    }

    pub fn append_n(
        &mut self,
        wal: &Wal,
        tag: &str,
        n: u64,
        durability: Durability,
    ) -> walden_log::Result<()> {
        for _ in 0..n {
            let data = payload(tag, wal.next_lsn().0);
            self.append(wal, data, durability)?;
        }
        Ok(())
    }

    pub fn append_batch(
        &mut self,
        wal: &Wal,
        records: Vec<Vec<u8>>,
        durability: Durability,
    ) -> walden_log::Result<Lsn> {
        let expected = wal.next_lsn();
        let outcome = wal.append_batch(&records, durability);
        if outcome.is_ok() || wal.next_lsn() > expected {
            for (i, r) in records.into_iter().enumerate() {
                self.appended.push((expected.0 + i as u64, r));
            }
        }
        let lsn = outcome?;
        assert_eq!(lsn, expected);
        if durability == Durability::Sync {
            self.acked = self.appended.last().map_or(0, |r| r.0);
        }
        Ok(lsn)
    }

    pub fn sync(&mut self, wal: &Wal) -> walden_log::Result<()> {
        let target = self.appended.last().map_or(0, |r| r.0);
        let durable = wal.sync()?;
        assert!(durable.0 >= target);
        self.acked = self.acked.max(target);
        Ok(())
    }

    pub fn truncate_before(&mut self, wal: &Wal, lsn: u64) -> walden_log::Result<usize> {
        self.first_max = self.first_max.max(lsn);
        let released = wal.truncate_before(Lsn(lsn))?;
        self.first_min = self.first_min.max(wal.first_lsn().0);
        Ok(released)
    }

    /// While the call runs, records after `lsn` may vanish: they are no longer acknowledged.
    pub fn truncate_after(&mut self, wal: &Wal, lsn: u64) -> walden_log::Result<()> {
        self.acked = self.acked.min(lsn);
        wal.truncate_after(Lsn(lsn))?;
        self.appended.retain(|r| r.0 <= lsn);
        self.acked = lsn.min(self.appended.last().map_or(0, |r| r.0));
        Ok(())
    }

    /// Checks a recovered log against the model: it starts where released segments allow,
    /// holds a dense prefix of what was appended from there (exact bytes), and every
    /// acknowledged record. Returns what it holds.
    pub fn check(&self, wal: &Wal, ctx: &str) -> Records {
        let first = wal.first_lsn().0;
        assert!(
            first >= self.first_min && first <= self.first_max.max(self.first_min),
            "{ctx}: the log starts at LSN {first}, allowed {}..={}",
            self.first_min,
            self.first_max.max(self.first_min)
        );
        let recovered: Vec<(u64, Vec<u8>)> = wal
            .read_from(Lsn(first))
            .unwrap_or_else(|e| panic!("{ctx}: read_from({first}): {e}"))
            .map(|r| {
                let r = r.unwrap_or_else(|e| panic!("{ctx}: reading: {e}"));
                (r.lsn.0, r.data)
            })
            .collect();
        let expected: Vec<_> = self
            .appended
            .iter()
            .filter(|r| r.0 >= first)
            .cloned()
            .collect();
        assert!(
            recovered.len() <= expected.len(),
            "{ctx}: {} records from LSN {first}, only {} appended",
            recovered.len(),
            expected.len()
        );
        for (got, want) in recovered.iter().zip(&expected) {
            assert_eq!(got.0, want.0, "{ctx}: LSNs are not dense");
            assert!(
                got.1 == want.1,
                "{ctx}: LSN {} holds bytes that were not appended there",
                got.0
            );
        }
        let last = recovered.last().map_or(first - 1, |r| r.0);
        assert_eq!(wal.next_lsn().0, last + 1, "{ctx}: next LSN");
        assert!(
            last >= self.acked,
            "{ctx}: recovered up to LSN {last}, LSN {} was acknowledged",
            self.acked
        );
        recovered
    }

    /// After a successful recovery the model becomes what was recovered.
    pub fn adopt(&mut self, wal: &Wal, recovered: Vec<(u64, Vec<u8>)>) {
        self.appended = recovered;
        self.acked = wal.next_lsn().0 - 1;
        self.first_min = wal.first_lsn().0;
        self.first_max = self.first_min;
    }
}

/// Everything a crash-point sweep needs.
pub struct Sweep<'a> {
    pub seed: u64,
    pub options: Options,
    pub damages: &'a [CrashDamage],
    /// Runs before the crash point is set (no crash there).
    pub setup: &'a dyn Fn(&SimStorage, &Wal, &mut Model),
    /// Runs with the crash point set; returns at the first error (the process died there).
    pub workload: &'a dyn Fn(&SimStorage, &Wal, &mut Model) -> walden_log::Result<()>,
    /// Checks the crashed storage before it is reopened.
    pub after_crash: &'a dyn Fn(&SimStorage, &Model, &str),
    /// Checks the reopened log (after the model check passed).
    pub after_open: &'a dyn Fn(&SimStorage, &Wal, &Model, &str),
}

pub fn no_check_after_crash(_: &SimStorage, _: &Model, _: &str) {}
pub fn no_check_after_open(_: &SimStorage, _: &Wal, _: &Model, _: &str) {}

/// The damage patterns every sweep uses.
pub const SWEEP_DAMAGES: [CrashDamage; 5] = [
    CrashDamage::DropAll,
    CrashDamage::KeepAll,
    CrashDamage::RandomGarbled,
    CrashDamage::RandomZeroed,
    CrashDamage::TornPrefix,
];

impl Sweep<'_> {
    /// The storage calls the workload makes, from a dry run.
    pub fn workload_ops(&self) -> u64 {
        let sim = SimStorage::new(self.seed);
        let wal = open(&sim, self.options.clone()).unwrap();
        let mut model = Model::new();
        (self.setup)(&sim, &wal, &mut model);
        let before = sim.op_count();
        (self.workload)(&sim, &wal, &mut model).unwrap();
        let ops = sim.op_count() - before;
        drop(wal);
        ops
    }

    /// One crash state: the workload dies at its `point`-th storage call (never, past the
    /// last), the storage crashes with `damage`, the log reopens in the default mode and must
    /// satisfy the model; then one more durable append survives another reopen.
    pub fn run_one(&self, point: u64, damage: CrashDamage) {
        let ctx = format!("seed {} crash point {point} {damage:?}", self.seed);
        let sim = SimStorage::new(self.seed);
        let wal = open(&sim, self.options.clone()).unwrap();
        let mut model = Model::new();
        (self.setup)(&sim, &wal, &mut model);
        sim.crash_after_ops(Some(point));
        let _ = (self.workload)(&sim, &wal, &mut model);
        sim.crash(damage);
        drop(wal);
        (self.after_crash)(&sim, &model, &ctx);
        let wal = open(&sim, self.options.clone())
            .unwrap_or_else(|e| panic!("{ctx}: refused to open after a crash: {e}"));
        let recovered = model.check(&wal, &ctx);
        (self.after_open)(&sim, &wal, &model, &ctx);
        model.adopt(&wal, recovered);
        model
            .append(&wal, b"after recovery".to_vec(), Durability::Sync)
            .unwrap();
        sim.crash(CrashDamage::RandomGarbled);
        drop(wal);
        let wal = open(&sim, self.options.clone())
            .unwrap_or_else(|e| panic!("{ctx}: second recovery refused: {e}"));
        model.check(&wal, &format!("{ctx}, second recovery"));
    }

    /// Every crash point of the workload under every damage; returns how many states.
    pub fn run_all(&self) -> u64 {
        let ops = self.workload_ops();
        assert!(ops > 0);
        for point in 1..=ops + 1 {
            for &damage in self.damages {
                self.run_one(point, damage);
            }
        }
        (ops + 1) * self.damages.len() as u64
    }
}
