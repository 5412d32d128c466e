//! The systems that take appends: walden, the floor loops, and the in-process peers. Each is
//! opened fresh in its own directory for every measurement, at one durability.

use crate::args::Plan;
use crate::report::Durability;
use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Durable per append, or buffered with one sync at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Durable,
    Buffered,
}

/// One writer (one thread, one connection).
pub(crate) trait Writer: Send {
    /// Appends one record at the engine's durability.
    fn append(&mut self, record: &[u8]) -> anyhow::Result<()>;

    /// Makes everything appended so far durable.
    fn sync(&mut self) -> anyhow::Result<()>;

    /// W3: appends `record` up to `max_records` times or until `deadline`, then syncs once.
    /// Returns the records appended.
    fn ingest(
        &mut self,
        record: &[u8],
        max_records: u64,
        deadline: Instant,
    ) -> anyhow::Result<u64> {
        let mut n = 0;
        while n < max_records {
            self.append(record)?;
            n += 1;
            if n % 256 == 0 && Instant::now() >= deadline {
                break;
            }
        }
        self.sync()?;
        Ok(n)
    }
}

/// An open system.
pub(crate) trait Engine: Send + Sync {
    /// A new writer (SQLite: a new connection).
    fn writer(&self) -> anyhow::Result<Box<dyn Writer + '_>>;

    /// The log's fsync count so far, where the system exposes it.
    fn syncs(&self) -> Option<u64> {
        None
    }

    /// Closes cleanly (syncing what is pending).
    fn close(self: Box<Self>) -> anyhow::Result<()>;
}

/// Every system that runs in-process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    Walden,
    /// walden with `Options::regroup(false)`: W2's ablation row, what regrouping buys.
    WaldenNoRegroup,
    FloorOverwrite,
    FloorAppend,
    SqliteFull,
    SqliteNormal,
    Okaywal,
    Rocksdb,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Walden => "walden",
            System::WaldenNoRegroup => "walden, regroup off",
            System::FloorOverwrite => "floor: pwrite+fdatasync, written file",
            System::FloorAppend => "floor: pwrite+fdatasync, growing file",
            System::SqliteFull => "sqlite FULL",
            System::SqliteNormal => "sqlite NORMAL",
            System::Okaywal => "okaywal",
            System::Rocksdb => "rocksdb",
        }
    }

    pub fn family(self) -> &'static str {
        match self {
            System::Walden | System::WaldenNoRegroup => "walden",
            System::FloorOverwrite | System::FloorAppend => "floor",
            System::SqliteFull | System::SqliteNormal => "sqlite",
            System::Okaywal => "okaywal",
            System::Rocksdb => "rocksdb",
        }
    }

    /// The durability of this system's figures in `mode` with `writers` concurrent writers.
    pub fn durability(self, mode: Mode, writers: usize) -> Durability {
        match (mode, self) {
            (Mode::Buffered, _) | (_, System::SqliteNormal) => Durability::None,
            // These share one fsync between concurrent commits.
            (_, System::Walden | System::WaldenNoRegroup | System::Okaywal | System::Rocksdb)
                if writers > 1 =>
            {
                Durability::GroupCommit
            }
            _ => Durability::FsyncPerCommit,
        }
    }

    /// Why this system cannot run in this build, if it cannot.
    pub fn unavailable(self) -> Option<String> {
        if self == System::Rocksdb && !cfg!(feature = "rocksdb") {
            return Some(
                "built without the `rocksdb` cargo feature (cargo build --release -p walden-bench --features rocksdb)"
                    .into(),
            );
        }
        None
    }

    /// Opens the system fresh in `dir` (which must not exist yet).
    pub fn open(self, dir: &Path, mode: Mode, plan: &Plan) -> anyhow::Result<Box<dyn Engine>> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(match self {
            System::Walden => Box::new(WaldenEngine::open(dir, mode, plan, true)?),
            System::WaldenNoRegroup => Box::new(WaldenEngine::open(dir, mode, plan, false)?),
            System::FloorOverwrite => Box::new(FloorEngine::open(dir, true, plan)?),
            System::FloorAppend => Box::new(FloorEngine::open(dir, false, plan)?),
            System::SqliteFull => Box::new(SqliteEngine::open(dir, true, mode)?),
            System::SqliteNormal => Box::new(SqliteEngine::open(dir, false, mode)?),
            System::Okaywal => Box::new(OkaywalEngine::open(dir)?),
            System::Rocksdb => rocks::open(dir, mode)?,
        })
    }
}

// ---- walden ----

struct WaldenEngine {
    wal: walden_log::Wal,
    durability: walden_log::Durability,
}

impl WaldenEngine {
    fn open(dir: &Path, mode: Mode, plan: &Plan, regroup: bool) -> anyhow::Result<Self> {
        let durability = match mode {
            Mode::Durable => walden_log::Durability::Sync,
            Mode::Buffered => walden_log::Durability::Buffered,
        };
        let options = walden_log::Options::new(dir.join("wal"))
            .segment_bytes(plan.segment_bytes)
            .durability(durability)
            .regroup(regroup);
        let wal = walden_log::Wal::open(options).context("open walden")?;
        // The background preparer zero-fills the next segment right after open; let it
        // finish so it does not share the disk with the timed loop.
        wait_for_spare(&wal, Duration::from_secs(60));
        Ok(WaldenEngine { wal, durability })
    }
}

/// Waits (bounded) until the log has a prepared spare segment.
pub(crate) fn wait_for_spare(wal: &walden_log::Wal, limit: Duration) {
    let until = Instant::now() + limit;
    while wal.stats().segments_spare == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct WaldenWriter<'a> {
    wal: &'a walden_log::Wal,
    durability: walden_log::Durability,
}

impl Writer for WaldenWriter<'_> {
    fn append(&mut self, record: &[u8]) -> anyhow::Result<()> {
        self.wal.append_with(record, self.durability)?;
        Ok(())
    }

    fn sync(&mut self) -> anyhow::Result<()> {
        self.wal.sync()?;
        Ok(())
    }
}

impl Engine for WaldenEngine {
    fn writer(&self) -> anyhow::Result<Box<dyn Writer + '_>> {
        Ok(Box::new(WaldenWriter {
            wal: &self.wal,
            durability: self.durability,
        }))
    }

    fn syncs(&self) -> Option<u64> {
        Some(self.wal.stats().fsyncs)
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.wal.close()?;
        Ok(())
    }
}

// ---- the floor ----

/// The physical floor: pwrite of the record then fdatasync, nothing else. `overwrite`
/// writes into a file whose blocks were written and synced beforehand (wrapping around
/// at its end); otherwise each write extends the file.
struct FloorEngine {
    path: PathBuf,
    region_bytes: Option<u64>,
}

impl FloorEngine {
    fn open(dir: &Path, overwrite: bool, plan: &Plan) -> anyhow::Result<Self> {
        let path = dir.join("floor.dat");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        let region_bytes = if overwrite {
            let region = if plan.quick { 4 << 20 } else { 64 << 20 };
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < region {
                file.write_all_at(&zeros, at)?;
                at += zeros.len() as u64;
            }
            file.sync_all()?;
            Some(region)
        } else {
            None
        };
        sync_dir(dir)?;
        Ok(FloorEngine { path, region_bytes })
    }
}

struct FloorWriter {
    file: File,
    offset: u64,
    region_bytes: Option<u64>,
}

impl Writer for FloorWriter {
    fn append(&mut self, record: &[u8]) -> anyhow::Result<()> {
        if let Some(region) = self.region_bytes {
            if self.offset + record.len() as u64 > region {
                self.offset = 0;
            }
        }
        self.file.write_all_at(record, self.offset)?;
        self.file.sync_data()?;
        self.offset += record.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> anyhow::Result<()> {
        self.file.sync_data()?;
        Ok(())
    }
}

impl Engine for FloorEngine {
    fn writer(&self) -> anyhow::Result<Box<dyn Writer + '_>> {
        let file = OpenOptions::new().write(true).open(&self.path)?;
        Ok(Box::new(FloorWriter {
            file,
            offset: 0,
            region_bytes: self.region_bytes,
        }))
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

pub(crate) fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync directory {}", dir.display()))
}

// ---- SQLite ----

/// SQLite in WAL mode, one insert per transaction. FULL syncs the WAL at every commit;
/// NORMAL syncs only at checkpoints (a commit can be lost on power failure).
struct SqliteEngine {
    path: PathBuf,
    full: bool,
}

impl SqliteEngine {
    fn open(dir: &Path, full: bool, _mode: Mode) -> anyhow::Result<Self> {
        let path = dir.join("bench.sqlite");
        let conn = rusqlite::Connection::open(&path)?;
        let journal: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        anyhow::ensure!(
            journal.eq_ignore_ascii_case("wal"),
            "SQLite refused WAL mode: {journal}"
        );
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);")?;
        Ok(SqliteEngine { path, full })
    }
}

struct SqliteWriter {
    conn: rusqlite::Connection,
}

impl SqliteWriter {
    fn insert(&mut self, record: &[u8]) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare_cached("INSERT INTO t (v) VALUES (?1)")?;
        stmt.execute([record])?;
        Ok(())
    }
}

impl Writer for SqliteWriter {
    fn append(&mut self, record: &[u8]) -> anyhow::Result<()> {
        self.insert(record)
    }

    fn sync(&mut self) -> anyhow::Result<()> {
        // One more commit at FULL syncs the WAL, and with it every earlier commit.
        self.conn.execute_batch("PRAGMA synchronous=FULL")?;
        self.insert(b"sync")?;
        Ok(())
    }
}

impl Engine for SqliteEngine {
    fn writer(&self) -> anyhow::Result<Box<dyn Writer + '_>> {
        let conn = rusqlite::Connection::open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(120))?;
        conn.execute_batch(if self.full {
            "PRAGMA synchronous=FULL"
        } else {
            "PRAGMA synchronous=NORMAL"
        })?;
        Ok(Box::new(SqliteWriter { conn }))
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

// ---- okaywal ----

/// okaywal: every committed entry is fsynced before `commit` returns; concurrent commits
/// share fsyncs. Checkpointing is a no-op (`LogVoid`).
struct OkaywalEngine {
    wal: okaywal::WriteAheadLog,
}

impl OkaywalEngine {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let wal = okaywal::WriteAheadLog::recover(dir.join("okaywal"), okaywal::LogVoid)
            .context("open okaywal")?;
        Ok(OkaywalEngine { wal })
    }
}

struct OkaywalWriter<'a> {
    wal: &'a okaywal::WriteAheadLog,
}

impl Writer for OkaywalWriter<'_> {
    fn append(&mut self, record: &[u8]) -> anyhow::Result<()> {
        let mut entry = self.wal.begin_entry()?;
        entry.write_chunk(record)?;
        entry.commit()?;
        Ok(())
    }

    fn sync(&mut self) -> anyhow::Result<()> {
        // Every commit is already durable.
        Ok(())
    }

    /// okaywal has no commit without fsync: W3 writes all records as chunks of one entry
    /// and commits once at the end.
    fn ingest(
        &mut self,
        record: &[u8],
        max_records: u64,
        deadline: Instant,
    ) -> anyhow::Result<u64> {
        let mut entry = self.wal.begin_entry()?;
        let mut n = 0;
        while n < max_records {
            entry.write_chunk(record)?;
            n += 1;
            if n % 256 == 0 && Instant::now() >= deadline {
                break;
            }
        }
        entry.commit()?;
        Ok(n)
    }
}

impl Engine for OkaywalEngine {
    fn writer(&self) -> anyhow::Result<Box<dyn Writer + '_>> {
        Ok(Box::new(OkaywalWriter { wal: &self.wal }))
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.wal.shutdown()?;
        Ok(())
    }
}

// ---- RocksDB ----

#[cfg(feature = "rocksdb")]
mod rocks {
    use super::{Engine, Mode, Writer};
    use anyhow::Context;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// RocksDB with `WriteOptions::sync`: each write's WAL record is fsynced before it
    /// returns; concurrent writers are batched by RocksDB's write group (group commit).
    /// Buffered mode writes without sync and calls `flush_wal(true)` at the end.
    pub(super) struct RocksEngine {
        db: rocksdb::DB,
        options: rocksdb::Options,
        sync: bool,
        next_writer: AtomicU64,
    }

    pub(super) fn open(dir: &Path, mode: Mode) -> anyhow::Result<Box<dyn Engine>> {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.enable_statistics();
        let db = rocksdb::DB::open(&options, dir.join("rocksdb")).context("open rocksdb")?;
        Ok(Box::new(RocksEngine {
            db,
            options,
            sync: mode == Mode::Durable,
            next_writer: AtomicU64::new(0),
        }))
    }

    struct RocksWriter<'a> {
        db: &'a rocksdb::DB,
        write_options: rocksdb::WriteOptions,
        id: u64,
        seq: u64,
    }

    impl Writer for RocksWriter<'_> {
        fn append(&mut self, record: &[u8]) -> anyhow::Result<()> {
            // Keys ascend per writer, as a log's would.
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&self.id.to_be_bytes());
            key[8..].copy_from_slice(&self.seq.to_be_bytes());
            self.seq += 1;
            self.db.put_opt(key, record, &self.write_options)?;
            Ok(())
        }

        fn sync(&mut self) -> anyhow::Result<()> {
            self.db.flush_wal(true)?;
            Ok(())
        }
    }

    impl Engine for RocksEngine {
        fn writer(&self) -> anyhow::Result<Box<dyn Writer + '_>> {
            let mut write_options = rocksdb::WriteOptions::default();
            write_options.set_sync(self.sync);
            Ok(Box::new(RocksWriter {
                db: &self.db,
                write_options,
                id: self.next_writer.fetch_add(1, Ordering::Relaxed),
                seq: 0,
            }))
        }

        fn syncs(&self) -> Option<u64> {
            // Parsed from the statistics dump ("rocksdb.wal.synced COUNT : N") rather than
            // read with the ticker API, which the C API of Debian's librocksdb 7.8 (the
            // library the full run links against, see scripts/bench-full.sh) lacks.
            let dump = self.options.get_statistics()?;
            dump.lines()
                .find_map(|l| l.strip_prefix("rocksdb.wal.synced COUNT : "))
                .and_then(|n| n.trim().parse().ok())
        }

        fn close(self: Box<Self>) -> anyhow::Result<()> {
            self.db.flush_wal(true)?;
            Ok(())
        }
    }
}

#[cfg(not(feature = "rocksdb"))]
mod rocks {
    use super::{Engine, Mode};
    use std::path::Path;

    pub(super) fn open(_dir: &Path, _mode: Mode) -> anyhow::Result<Box<dyn Engine>> {
        anyhow::bail!("built without the `rocksdb` feature")
    }
}
