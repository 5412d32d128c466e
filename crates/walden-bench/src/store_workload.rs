//! W6 (issue 4): walden-store transaction commits beside walden-log appending the same bytes,
//! and store recovery time against log length, with and without checkpoints.
//!
//! - **Commits**: `writers` threads, each committing transactions of [`KEYS_PER_TXN`] puts
//!   of `--value-bytes` values in its own key range (no conflicts), at the store's default
//!   `Durability::Sync`. Beside it, in the same run: walden-log's W2 loop at the same writer
//!   count, each append one `append_batch(Sync)` of the records and payload bytes the store
//!   logs per commit (measured once from the log's statistics, see [`calibrate`]).
//! - **Recovery**: stores of N committed transactions (built with buffered commits and one
//!   sync at the end: recovery reads the same log either way), over a fixed key space with
//!   one version of history per key, so the state has the same size whatever N; once without checkpoints, once with an explicit
//!   checkpoint every `K` = 10% of the smallest N transactions (taken at `K/2` past each
//!   multiple, so every store ends with the same `K/2` transactions after its last
//!   checkpoint). `Store::open` is timed in-process (page cache warm) and reports the log
//!   records it read.

use crate::args::Plan;
use crate::engines::wait_for_spare;
use crate::measure::{quantile_us, record_bytes, timed_threads};
use crate::report::{Durability, Metrics, Row};
use crate::workloads::{progress, writers_case, Cell};
use anyhow::Context;
use hdrhistogram::Histogram;
use std::path::Path;
use std::time::{Duration, Instant};
use walden_store::{Store, StoreOptions};

/// Puts per transaction.
pub(crate) const KEYS_PER_TXN: usize = 3;
/// Keys each commit writer cycles through (bounds memory; overwrites add history versions).
const KEYS_PER_WRITER: u64 = 10_000;
/// Keys of the recovery stores: the state has this many keys whatever N.
const RECOVERY_KEYS: u64 = 15_000;
/// Segment size of the recovery stores: small next to the checkpoint interval, so the log
/// before a checkpoint can be released (it goes by whole segments).
const RECOVERY_SEGMENT_BYTES: u64 = 1 << 20;
const NS: &[u8] = b"bench";

/// The store's comparator in the commit table.
pub(crate) const LOG_SYSTEM: &str = "walden-log batch, same bytes";
/// Recovery rows.
pub(crate) const NO_CHECKPOINTS: &str = "walden, no checkpoints";
/// Recovery rows with checkpoints (the interval is in the case's note).
pub(crate) const CHECKPOINTS: &str = "walden, checkpoints";

fn key(buf: &mut Vec<u8>, writer: usize, i: u64, j: usize) {
    use std::io::Write as _;
    buf.clear();
    let _ = write!(buf, "w{writer:04}-{i:08}-{j}");
}

fn options(dir: &Path, segment_bytes: u64) -> StoreOptions {
    StoreOptions::new(dir)
        .log(walden_log::Options::new(dir.join("log")).segment_bytes(segment_bytes))
        // Off while measuring commits (the recovery part takes its own).
        .checkpoints(0, None)
}

/// Options of the recovery stores: one version of history per key, so the state (and the
/// checkpoint that holds it) has the same size at every N once each key was written; with
/// the default 8 versions the state itself grows until N reaches 40,000 transactions, and
/// recovery time would measure the state's growth, not the log's.
fn recovery_options(dir: &Path) -> StoreOptions {
    let mut limits = walden_store::Limits::default();
    limits.history_versions = 1;
    options(dir, RECOVERY_SEGMENT_BYTES).limits(limits)
}

/// What the store logs per commit: (records, payload bytes), from the log's counters over
/// a few commits of the benchmark's shape.
fn calibrate(plan: &Plan, dir: &Path, value: &[u8]) -> anyhow::Result<(usize, usize)> {
    const N: u64 = 32;
    let store =
        Store::open(options(dir, plan.segment_bytes).durability(walden_log::Durability::Buffered))
            .context("open the calibration store")?;
    let before = store.wal().stats();
    let mut k = Vec::new();
    for i in 0..N {
        let mut tx = store.begin();
        for j in 0..KEYS_PER_TXN {
            key(&mut k, 0, i % KEYS_PER_WRITER, j);
            tx.put(NS, &k, value)?;
        }
        tx.commit()?;
    }
    let after = store.wal().stats();
    store.close()?;
    let _ = std::fs::remove_dir_all(dir);
    let records = (after.records_appended - before.records_appended) / N;
    let bytes = (after.bytes_appended - before.bytes_appended) / N;
    anyhow::ensure!(
        records >= 1 && bytes >= 1,
        "the store logged nothing per commit"
    );
    Ok((records as usize, bytes as usize))
}

/// One timed run of `writers` threads calling `op` (per thread) for `duration`.
fn timed(
    writers: usize,
    duration: Duration,
    op: &(dyn Fn(usize, u64) -> anyhow::Result<()> + Sync),
) -> anyhow::Result<(u64, Duration, Histogram<u64>)> {
    timed_threads((0..writers).collect(), duration, &|w: &mut usize, n| {
        op(*w, n)
    })
}

fn metrics(ops: u64, elapsed: Duration, h: &Histogram<u64>, bytes: u64, fsyncs: u64) -> Metrics {
    let secs = elapsed.as_secs_f64().max(1e-9);
    Metrics {
        ops_per_sec: Some(ops as f64 / secs),
        mb_per_sec: Some(bytes as f64 / secs / 1e6),
        p50_us: quantile_us(h, 0.50),
        p99_us: quantile_us(h, 0.99),
        p999_us: quantile_us(h, 0.999),
        fsyncs: Some(fsyncs as f64),
        records_per_fsync: (fsyncs > 0).then(|| ops as f64 / fsyncs as f64),
        count: Some(ops as f64),
        ..Metrics::default()
    }
}

/// Durable store commits from `writers` threads in a fresh store.
fn store_once(plan: &Plan, dir: &Path, writers: usize, value: &[u8]) -> anyhow::Result<Metrics> {
    let store = Store::open(options(dir, plan.segment_bytes)).context("open the store")?;
    wait_for_spare(store.wal(), Duration::from_secs(60));
    let commit = |w: usize, n: u64| -> anyhow::Result<()> {
        let mut k = Vec::with_capacity(32);
        let mut tx = store.begin();
        for j in 0..KEYS_PER_TXN {
            key(&mut k, w, n % KEYS_PER_WRITER, j);
            tx.put(NS, &k, value)?;
        }
        tx.commit()?;
        Ok(())
    };
    // Warm up (untimed): one commit per writer.
    for w in 0..writers {
        commit(w, KEYS_PER_WRITER - 1)?;
    }
    let before = store.wal().stats();
    let (ops, elapsed, h) = timed(writers, plan.measure, &commit)?;
    let after = store.wal().stats();
    store.close()?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(metrics(
        ops,
        elapsed,
        &h,
        after.bytes_appended - before.bytes_appended,
        after.fsyncs - before.fsyncs,
    ))
}

/// walden-log's W2 loop with one durable batch of `records` records, `bytes` payload bytes
/// in all, per append.
fn log_once(
    plan: &Plan,
    dir: &Path,
    writers: usize,
    records: usize,
    bytes: usize,
) -> anyhow::Result<Metrics> {
    let wal = walden_log::Wal::open(
        walden_log::Options::new(dir.join("wal")).segment_bytes(plan.segment_bytes),
    )
    .context("open walden-log")?;
    wait_for_spare(&wal, Duration::from_secs(60));
    let batches: Vec<Vec<Vec<u8>>> = (0..writers)
        .map(|w| {
            (0..records)
                .map(|r| {
                    let len = bytes / records + usize::from(r < bytes % records);
                    record_bytes(len.max(1), (w * records + r) as u64 + 1)
                })
                .collect()
        })
        .collect();
    let append = |w: usize, _: u64| -> anyhow::Result<()> {
        wal.append_batch(&batches[w], walden_log::Durability::Sync)?;
        Ok(())
    };
    for w in 0..writers {
        append(w, 0)?;
    }
    let before = wal.stats();
    let (ops, elapsed, h) = timed(writers, plan.measure, &append)?;
    let after = wal.stats();
    wal.close()?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(metrics(
        ops,
        elapsed,
        &h,
        after.bytes_appended - before.bytes_appended,
        after.fsyncs - before.fsyncs,
    ))
}

/// Builds a store of `n` committed transactions over [`RECOVERY_KEYS`] keys; with
/// `checkpoint_every = Some(k)`, a checkpoint after transaction `i` whenever `i % k == k/2`.
/// Returns the log payload bytes written.
fn build(dir: &Path, n: u64, checkpoint_every: Option<u64>, value: &[u8]) -> anyhow::Result<u64> {
    let store = Store::open(recovery_options(dir).durability(walden_log::Durability::Buffered))
        .context("open the store to build")?;
    let mut k = Vec::with_capacity(32);
    for i in 0..n {
        let mut tx = store.begin();
        for j in 0..KEYS_PER_TXN as u64 {
            key(&mut k, 0, (i * KEYS_PER_TXN as u64 + j) % RECOVERY_KEYS, 0);
            tx.put(NS, &k, value)?;
        }
        tx.commit()?;
        if let Some(every) = checkpoint_every {
            if i % every == every / 2 {
                store.checkpoint().context("checkpoint")?;
            }
        }
    }
    let bytes = store.wal().stats().bytes_appended;
    store.close()?;
    Ok(bytes)
}

/// Opens the store in `dir` once: (milliseconds, log records read, transactions redone).
fn open_once(dir: &Path) -> anyhow::Result<(f64, u64, u64)> {
    let start = Instant::now();
    let store = Store::open(recovery_options(dir)).context("recover the store")?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let r = store.recovery_report().clone();
    store.close()?;
    Ok((ms, r.log_records_read, r.transactions_redone))
}

/// W6: store commits beside walden-log, then recovery against log length.
pub(crate) fn w6(plan: &Plan, root: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let value = record_bytes(plan.value_bytes, 11);
    let (records, bytes) = calibrate(plan, &root.join("w6-calibrate"), &value)?;
    eprintln!(
        "[W6] the store logs {records} records, {bytes} payload bytes per commit of {KEYS_PER_TXN} × {} B",
        plan.value_bytes
    );
    for &writers in &plan.store_writers {
        let case = writers_case(writers);
        let durability = if writers > 1 {
            Durability::GroupCommit
        } else {
            Durability::FsyncPerCommit
        };
        let mut store = Cell::new("W6", &case, "walden", "walden", durability);
        store.note = Some(format!(
            "walden-store: each transaction puts {KEYS_PER_TXN} keys of {} B in the writer's own key range, commit at Durability::Sync (the default), automatic checkpoints off; it logs {records} records, {bytes} payload bytes per commit",
            plan.value_bytes
        ));
        let mut log = Cell::new("W6", &case, LOG_SYSTEM, "walden-log", durability);
        log.note = Some(format!(
            "W2's loop, each append one append_batch(Sync) of {records} records, {bytes} payload bytes (what the store logs per commit); commits/fsync = batches per fsync"
        ));
        // Repetitions outermost, so drift spreads over both. A store failure aborts the
        // run; a failure of the comparator marks its row missing.
        for rep in 0..plan.reps {
            let dir = root.join(format!("w6-{writers}-store-{rep}"));
            let m = store_once(plan, &dir, writers, &value)
                .with_context(|| format!("W6 {case} walden"))?;
            progress(&store, rep, plan.reps, &m);
            store.samples.push(m);
            if log.failure.is_none() {
                let dir = root.join(format!("w6-{writers}-log-{rep}"));
                match log_once(plan, &dir, writers, records, bytes) {
                    Ok(m) => {
                        progress(&log, rep, plan.reps, &m);
                        log.samples.push(m);
                    }
                    Err(e) => log.failure = Some(format!("{e:#}")),
                }
            }
        }
        rows.push(store.into_row());
        rows.push(log.into_row());
    }

    // Recovery against log length.
    let every = (plan.store_txns[0] / 10).max(2);
    for &n in &plan.store_txns {
        let case = format!("recovery, {n} txns");
        let mut cells = Vec::new();
        for (system, checkpoint_every) in [(NO_CHECKPOINTS, None), (CHECKPOINTS, Some(every))] {
            let dir = root.join(format!("w6-recovery-{n}-{}", checkpoint_every.is_some()));
            let started = Instant::now();
            let written = build(&dir, n, checkpoint_every, &value)
                .with_context(|| format!("W6 build {n} transactions"))?;
            eprintln!(
                "[W6 {case}] {system}: built {n} transactions ({:.1} MB of log payload) in {:.1} s",
                written as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            let mut cell = Cell::new("W6", &case, system, "walden", Durability::NotApplicable);
            cell.note = Some(match checkpoint_every {
                None => format!(
                    "Store::open in-process, page cache warm; {KEYS_PER_TXN} puts of {} B per transaction over {RECOVERY_KEYS} keys, 1 version of history per key (the state has the same size at every N); {} MiB segments; no checkpoint",
                    plan.value_bytes,
                    RECOVERY_SEGMENT_BYTES >> 20
                ),
                Some(k) => format!(
                    "the same, with a checkpoint every {k} transactions (10% of the smallest store), the last {} transactions before the end, log before it released",
                    k - k / 2
                ),
            });
            for rep in 0..plan.reps {
                let (ms, read, _) = open_once(&dir).with_context(|| format!("W6 {case}"))?;
                let m = Metrics {
                    recovery_ms: Some(ms),
                    log_records_read: Some(read as f64),
                    count: Some(n as f64),
                    ..Metrics::default()
                };
                progress(&cell, rep, plan.reps, &m);
                cell.samples.push(m);
            }
            let _ = std::fs::remove_dir_all(&dir);
            cells.push(cell.into_row());
        }
        rows.extend(cells);
    }
    Ok(())
}
