//! W1, W2, W3 and W5: the timed loops and the rows they produce. (W4 is in `recover`.)

use crate::args::Plan;
use crate::engines::{sync_dir, wait_for_spare, Engine, Mode, System};
use crate::measure::{histogram, median, quantile_us, record, record_bytes, timed_threads};
use crate::report::{Durability, Metrics, Row, Status};
use anyhow::Context;
use hdrhistogram::Histogram;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Collects the repetitions of one (workload, case, system) and turns them into a row.
#[derive(Debug)]
pub(crate) struct Cell {
    pub workload: &'static str,
    pub case: String,
    pub system: String,
    pub family: String,
    pub durability: Durability,
    pub samples: Vec<Metrics>,
    pub failure: Option<String>,
    pub note: Option<String>,
}

impl Cell {
    pub fn new(
        workload: &'static str,
        case: &str,
        system: &str,
        family: &str,
        d: Durability,
    ) -> Cell {
        Cell {
            workload,
            case: case.to_string(),
            system: system.to_string(),
            family: family.to_string(),
            durability: d,
            samples: Vec::new(),
            failure: None,
            note: None,
        }
    }

    pub fn into_row(self) -> Row {
        let s = &self.samples;
        let med = |f: fn(&Metrics) -> Option<f64>| median(s.iter().map(f));
        let (status, reason) = match (&self.failure, s.is_empty()) {
            (Some(f), _) => (Status::Missing, Some(format!("failed: {f}"))),
            (None, true) => (Status::Missing, Some("no measurement".into())),
            (None, false) => (Status::Measured, self.note.clone()),
        };
        let metrics = if status == Status::Measured {
            Metrics {
                ops_per_sec: med(|m| m.ops_per_sec),
                mb_per_sec: med(|m| m.mb_per_sec),
                gb_per_sec: med(|m| m.gb_per_sec),
                p50_us: med(|m| m.p50_us),
                p99_us: med(|m| m.p99_us),
                p999_us: med(|m| m.p999_us),
                records_per_fsync: med(|m| m.records_per_fsync),
                peak_rss_mib: med(|m| m.peak_rss_mib),
                rss_added_mib: med(|m| m.rss_added_mib),
                count: Some(s.iter().filter_map(|m| m.count).sum()),
                fsyncs: med(|m| m.fsyncs),
                recovery_ms: med(|m| m.recovery_ms),
                log_records_read: med(|m| m.log_records_read),
            }
        } else {
            Metrics::default()
        };
        Row {
            workload: self.workload.to_string(),
            case: self.case,
            system: self.system,
            family: self.family,
            durability: self.durability,
            status,
            reason,
            metrics,
            reps: self.samples.len() as u32,
        }
    }
}

/// A row for a peer that did not run in this workload.
pub(crate) fn absent(
    workload: &str,
    system: &str,
    family: &str,
    status: Status,
    reason: impl Into<String>,
) -> Row {
    Row {
        workload: workload.to_string(),
        case: "all".into(),
        system: system.to_string(),
        family: family.to_string(),
        durability: Durability::NotApplicable,
        status,
        reason: Some(reason.into()),
        metrics: Metrics::default(),
        reps: 0,
    }
}

/// Whether `sys` runs in this plan; if not, the row saying why.
pub(crate) fn gate(plan: &Plan, workload: &str, sys: System) -> Option<Row> {
    let family = sys.family();
    if family != "walden" && family != "floor" && !plan.wants(family) {
        return Some(absent(
            workload,
            sys.name(),
            family,
            Status::Missing,
            "left out by --peers",
        ));
    }
    sys.unavailable()
        .map(|why| absent(workload, sys.name(), family, Status::Missing, why))
}

/// One timed durable run.
struct DurableSample {
    ops: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    syncs: Option<u64>,
}

impl DurableSample {
    fn metrics(&self, record_len: usize) -> Metrics {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        Metrics {
            ops_per_sec: Some(self.ops as f64 / secs),
            mb_per_sec: Some(self.ops as f64 * record_len as f64 / secs / 1e6),
            p50_us: quantile_us(&self.latency, 0.50),
            p99_us: quantile_us(&self.latency, 0.99),
            p999_us: quantile_us(&self.latency, 0.999),
            records_per_fsync: self
                .syncs
                .filter(|&s| s > 0)
                .map(|s| self.ops as f64 / s as f64),
            count: Some(self.ops as f64),
            ..Metrics::default()
        }
    }
}

/// `writers` threads, each with its own writer, append `record_len`-byte records durably
/// for `duration`; every append's latency is recorded.
fn run_durable(
    engine: &dyn Engine,
    writers: usize,
    record_len: usize,
    duration: Duration,
) -> anyhow::Result<DurableSample> {
    let mut ws = Vec::with_capacity(writers);
    let records: Vec<Vec<u8>> = (0..writers)
        .map(|i| record_bytes(record_len, i as u64 + 1))
        .collect();
    for rec in &records {
        let mut w = engine.writer()?;
        // Warm up (untimed): first-touch costs of files, statements, caches.
        w.append(rec)?;
        ws.push(w);
    }
    let syncs_before = engine.syncs();
    let states: Vec<_> = ws.into_iter().zip(&records).collect();
    let (ops, elapsed, latency) =
        timed_threads(states, duration, &|(w, rec): &mut (_, &Vec<u8>), _| {
            w.append(rec)
        })?;
    let syncs = match (syncs_before, engine.syncs()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Ok(DurableSample {
        ops,
        elapsed,
        latency,
        syncs,
    })
}

/// Opens `sys` fresh, runs one durable measurement, closes and removes it.
fn durable_once(
    sys: System,
    dir: &Path,
    plan: &Plan,
    writers: usize,
    record_len: usize,
) -> anyhow::Result<Metrics> {
    let engine = sys.open(dir, Mode::Durable, plan)?;
    let sample = run_durable(&*engine, writers, record_len, plan.measure)?;
    engine.close()?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(sample.metrics(record_len))
}

pub(crate) fn progress(cell: &Cell, rep: u32, reps: u32, m: &Metrics) {
    let mut s = format!(
        "[{} {}] {} rep {}/{}:",
        cell.workload,
        cell.case,
        cell.system,
        rep + 1,
        reps
    );
    if let Some(v) = m.ops_per_sec {
        s += &format!(" {v:.0} ops/s");
    }
    if let Some(v) = m.mb_per_sec {
        s += &format!(" {v:.1} MB/s");
    }
    if let Some(v) = m.gb_per_sec {
        s += &format!(" {v:.2} GB/s");
    }
    if let Some(v) = m.p99_us {
        s += &format!(" p99 {v:.0} µs");
    }
    if let Some(v) = m.records_per_fsync {
        s += &format!(" {v:.1} rec/fsync");
    }
    if let Some(v) = m.peak_rss_mib {
        s += &format!(" peak {v:.1} MiB");
    }
    if let Some(v) = m.rss_added_mib {
        s += &format!(" (+{v:.1} MiB)");
    }
    if let Some(v) = m.recovery_ms {
        s += &format!(" recovery {v:.1} ms");
    }
    if let Some(v) = m.log_records_read {
        s += &format!(" {v:.0} log records read");
    }
    eprintln!("{s}");
}

/// Runs the cells of one case, repetitions outermost so drift spreads over all systems.
/// Walden and floor failures abort the run; a peer's failure marks its row missing.
fn run_case(
    cells: &mut [(System, Cell)],
    reps: std::ops::Range<u32>,
    total_reps: u32,
    mut once: impl FnMut(System, u32) -> anyhow::Result<Metrics>,
) -> anyhow::Result<()> {
    for rep in reps {
        // Each repetition starts one system later: on a VM the state a measurement leaves
        // behind (the kernel's writeback, the host's caches, an idle or busy CPU) changes the
        // next one's fsync round trip, so no system always follows the same one.
        let n = cells.len().max(1);
        let start = rep as usize % n;
        let (later, first) = cells.split_at_mut(start);
        for (sys, cell) in first.iter_mut().chain(later.iter_mut()) {
            if cell.failure.is_some() {
                continue;
            }
            match once(*sys, rep) {
                Ok(m) => {
                    progress(cell, rep, total_reps, &m);
                    cell.samples.push(m);
                }
                Err(e) if matches!(sys.family(), "walden" | "floor") => {
                    return Err(
                        e.context(format!("{} {} {}", cell.workload, cell.case, cell.system))
                    );
                }
                Err(e) => {
                    eprintln!(
                        "[{} {}] {} failed: {e:#}",
                        cell.workload, cell.case, cell.system
                    );
                    cell.failure = Some(format!("{e:#}"));
                }
            }
        }
    }
    Ok(())
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// W1: one thread, every append durable, per record size.
pub(crate) fn w1(plan: &Plan, root: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let systems = [
        System::Walden,
        System::FloorOverwrite,
        System::FloorAppend,
        System::SqliteFull,
        System::SqliteNormal,
        System::Okaywal,
        System::Rocksdb,
    ];
    let mut absent_rows = Vec::new();
    let running: Vec<System> = systems
        .into_iter()
        .filter(|&s| match gate(plan, "W1", s) {
            Some(row) => {
                absent_rows.push(row);
                false
            }
            None => true,
        })
        .collect();
    for &size in &plan.w1_sizes {
        let case = format!("{size} B");
        let mut cells: Vec<(System, Cell)> = running
            .iter()
            .map(|&s| {
                let cell = Cell::new(
                    "W1",
                    &case,
                    s.name(),
                    s.family(),
                    s.durability(Mode::Durable, 1),
                );
                (s, cell)
            })
            .collect();
        run_case(&mut cells, 0..plan.reps, plan.reps, |sys, rep| {
            let dir = root.join(format!("w1-{size}-{}-{rep}", slug(sys.name())));
            durable_once(sys, &dir, plan, 1, size)
        })?;
        rows.extend(cells.into_iter().map(|(_, c)| c.into_row()));
    }
    rows.extend(absent_rows);
    Ok(())
}

/// W2: 1..256 concurrent durable writers.
pub(crate) fn w2(plan: &Plan, root: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let systems = [
        System::Walden,
        System::WaldenNoRegroup,
        System::SqliteFull,
        System::SqliteNormal,
        System::Okaywal,
        System::Rocksdb,
    ];
    let mut absent_rows = Vec::new();
    let running: Vec<System> = systems
        .into_iter()
        .filter(|&s| match gate(plan, "W2", s) {
            Some(row) => {
                absent_rows.push(row);
                false
            }
            None => true,
        })
        .collect();
    let size = plan.w2_record_bytes;
    for &writers in &plan.writers {
        let case = writers_case(writers);
        let mut cells: Vec<(System, Cell)> = running
            .iter()
            .map(|&s| {
                let mut cell = Cell::new(
                    "W2",
                    &case,
                    s.name(),
                    s.family(),
                    s.durability(Mode::Durable, writers),
                );
                if s == System::WaldenNoRegroup {
                    cell.note = Some(
                        "walden-log with Options::regroup(false): a new group-commit leader syncs at once instead of first waiting (at most one recent fdatasync) for the writers the last group released"
                            .into(),
                    );
                }
                if s == System::SqliteFull || s == System::SqliteNormal {
                    cell.note = Some(
                        "one connection per writer; SQLite admits one writer at a time and does not share fsyncs between commits"
                            .into(),
                    );
                }
                (s, cell)
            })
            .collect();
        run_case(&mut cells, 0..plan.reps, plan.reps, |sys, rep| {
            let dir = root.join(format!("w2-{writers}-{}-{rep}", slug(sys.name())));
            durable_once(sys, &dir, plan, writers, size)
        })?;
        rows.extend(cells.into_iter().map(|(_, c)| c.into_row()));
    }
    rows.extend(absent_rows);
    Ok(())
}

/// The floor's sequential write: 1 MiB writes into a growing file, one fdatasync at the end.
fn floor_seq_write(dir: &Path, bytes: u64, deadline: Instant) -> anyhow::Result<(u64, Duration)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("seq.dat");
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    sync_dir(dir)?;
    let block = record_bytes(1 << 20, 7);
    let start = Instant::now();
    let mut written = 0u64;
    while written < bytes {
        file.write_all_at(&block, written)?;
        written += block.len() as u64;
        if Instant::now() >= deadline {
            break;
        }
    }
    file.sync_data()?;
    Ok((written, start.elapsed()))
}

/// W3: one writer, no sync per record, one sync at the end, per record size.
pub(crate) fn w3(plan: &Plan, root: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let systems = [
        System::Walden,
        System::SqliteNormal,
        System::Okaywal,
        System::Rocksdb,
    ];
    let mut absent_rows = vec![absent(
        "W3",
        System::SqliteFull.name(),
        "sqlite",
        Status::NotApplicable,
        "FULL syncs every commit; W3 has no sync per record (see sqlite NORMAL)",
    )];
    if plan.wants("postgresql") {
        absent_rows.push(absent(
            "W3",
            "postgresql",
            "postgresql",
            Status::NotApplicable,
            "the PostgreSQL script measures durable commits only (W1, W2)",
        ));
    } else {
        absent_rows.push(absent(
            "W3",
            "postgresql",
            "postgresql",
            Status::Missing,
            "left out by --peers",
        ));
    }
    let running: Vec<System> = systems
        .into_iter()
        .filter(|&s| match gate(plan, "W3", s) {
            Some(row) => {
                absent_rows.push(row);
                false
            }
            None => true,
        })
        .collect();
    let cap = plan.measure * 2;
    for &size in &plan.w3_sizes {
        let case = fmt_size(size);
        let max_records = (plan.ingest_bytes / size as u64).max(1);
        let floor_name = "floor: sequential write";
        let mut floor = Cell::new("W3", &case, floor_name, "floor", Durability::None);
        floor.note = Some("1 MiB writes into a growing file, one fdatasync at the end".into());
        let mut cells: Vec<(System, Cell)> = running
            .iter()
            .map(|&s| {
                let mut cell = Cell::new("W3", &case, s.name(), s.family(), Durability::None);
                if s == System::Okaywal {
                    cell.note = Some(
                        "okaywal fsyncs every commit: all records are chunks of one entry committed at the end"
                            .into(),
                    );
                }
                if s == System::SqliteNormal {
                    cell.note = Some("one insert per transaction; one commit at FULL at the end".into());
                }
                (s, cell)
            })
            .collect();
        for rep in 0..plan.reps {
            let dir = root.join(format!("w3-{size}-floor-{rep}"));
            let (bytes, took) =
                floor_seq_write(&dir, max_records * size as u64, Instant::now() + cap)
                    .context("W3 floor sequential write")?;
            let _ = std::fs::remove_dir_all(&dir);
            let secs = took.as_secs_f64().max(1e-9);
            let m = Metrics {
                mb_per_sec: Some(bytes as f64 / secs / 1e6),
                count: Some(bytes as f64),
                ..Metrics::default()
            };
            progress(&floor, rep, plan.reps, &m);
            floor.samples.push(m);
            let one = |sys: System, rep: u32| -> anyhow::Result<Metrics> {
                let dir = root.join(format!("w3-{size}-{}-{rep}", slug(sys.name())));
                let engine = sys.open(&dir, Mode::Buffered, plan)?;
                let rec = record_bytes(size, 3);
                let n = {
                    let mut w = engine.writer()?;
                    let start = Instant::now();
                    let n = w.ingest(&rec, max_records, start + cap)?;
                    (n, start.elapsed())
                };
                engine.close()?;
                let _ = std::fs::remove_dir_all(&dir);
                let (records, took) = n;
                let secs = took.as_secs_f64().max(1e-9);
                Ok(Metrics {
                    ops_per_sec: Some(records as f64 / secs),
                    mb_per_sec: Some(records as f64 * size as f64 / secs / 1e6),
                    count: Some(records as f64),
                    ..Metrics::default()
                })
            };
            run_case(&mut cells, rep..rep + 1, plan.reps, one)?;
        }
        let mut case_rows: Vec<Row> = cells.into_iter().map(|(_, c)| c.into_row()).collect();
        case_rows.insert(1.min(case_rows.len()), floor.into_row());
        rows.extend(case_rows);
    }
    rows.extend(absent_rows);
    Ok(())
}

/// "1 writer", "64 writers".
pub(crate) fn writers_case(n: usize) -> String {
    if n == 1 {
        "1 writer".into()
    } else {
        format!("{n} writers")
    }
}

/// "128 B", "1 KiB", "64 KiB".
pub(crate) fn fmt_size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// W5: a durable writer at a fixed rate and a tailing reader; lag from the append's return
/// to the reader's receipt.
pub(crate) fn w5(plan: &Plan, root: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let case = format!("{} rec/s", plan.tail_rate);
    let mut cell = Cell::new("W5", &case, "walden", "walden", Durability::FsyncPerCommit);
    cell.note = Some(
        "lag = reader receipt minus append return (clamped at 0: the reader may see a record before its appender wakes)"
            .into(),
    );
    for rep in 0..plan.reps {
        let dir = root.join(format!("w5-{rep}"));
        let m = tail_once(plan, &dir).context("W5")?;
        let _ = std::fs::remove_dir_all(&dir);
        progress(&cell, rep, plan.reps, &m);
        cell.samples.push(m);
    }
    rows.push(cell.into_row());
    for (system, family, reason) in [
        (
            "sqlite FULL",
            "sqlite",
            "no tailing reader (a reader could only poll)",
        ),
        ("okaywal", "okaywal", "no tailing reader API"),
        (
            "rocksdb",
            "rocksdb",
            "not measured: no log-tailing API comparable to a WAL reader",
        ),
        (
            "postgresql",
            "postgresql",
            "tailing is logical replication: out of scope for the script",
        ),
    ] {
        let status = if plan.wants(family) {
            Status::NotApplicable
        } else {
            Status::Missing
        };
        let reason = if plan.wants(family) {
            reason
        } else {
            "left out by --peers"
        };
        rows.push(absent("W5", system, family, status, reason));
    }
    Ok(())
}

fn tail_once(plan: &Plan, dir: &Path) -> anyhow::Result<Metrics> {
    let wal = walden_log::Wal::open(
        walden_log::Options::new(dir.join("wal")).segment_bytes(plan.segment_bytes),
    )?;
    wait_for_spare(&wal, Duration::from_secs(60));
    let n = plan.tail_records as usize;
    let rec = record_bytes(128, 5);
    let first = wal.next_lsn();
    let mut tail = wal.tail_from(first)?;
    let base = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(plan.tail_rate));
    // How many records the writer appended (known once it stops).
    let total = std::sync::atomic::AtomicUsize::new(usize::MAX);
    let (appended, received, writer_secs) = std::thread::scope(|s| -> anyhow::Result<_> {
        let total = &total;
        let reader = s.spawn(move || -> anyhow::Result<Vec<u64>> {
            let mut received = vec![0u64; n];
            let mut got = 0usize;
            while got < total.load(Ordering::Acquire).min(n) {
                let Some(r) = tail.next_timeout(Duration::from_millis(100))? else {
                    continue;
                };
                got += 1;
                let at = base.elapsed().as_nanos() as u64;
                let i = (r.lsn.0 - first.0) as usize;
                if let Some(slot) = received.get_mut(i) {
                    *slot = at;
                }
            }
            Ok(received)
        });
        let mut appended = vec![0u64; n];
        let start = Instant::now();
        let mut count = 0;
        for (i, slot) in appended.iter_mut().enumerate() {
            if start.elapsed() >= plan.tail_limit {
                break;
            }
            let due = start + interval * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            wal.append(&rec)?;
            *slot = base.elapsed().as_nanos() as u64;
            count += 1;
        }
        let writer_secs = start.elapsed().as_secs_f64();
        total.store(count, Ordering::Release);
        let received = reader
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("reader thread panicked")))?;
        Ok((appended, received, writer_secs))
    })?;
    wal.close()?;
    let count = total.load(Ordering::Acquire).min(n);
    let mut h = histogram();
    for (a, r) in appended.iter().zip(&received).take(count) {
        record(&mut h, Duration::from_nanos(r.saturating_sub(*a)));
    }
    Ok(Metrics {
        ops_per_sec: Some(count as f64 / writer_secs.max(1e-9)),
        p50_us: quantile_us(&h, 0.50),
        p99_us: quantile_us(&h, 0.99),
        p999_us: quantile_us(&h, 0.999),
        count: Some(count as f64),
        ..Metrics::default()
    })
}
