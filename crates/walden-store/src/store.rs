//! The store: opening (recovery), the commit pipeline, single-key operations, checkpoints.
//!
//! # Commit pipeline
//! Under the commit mutex (short, no system call): check preconditions and conflicts against
//! the latest state, append the transaction's batch (encoded before) to the log *buffered*
//! (this fixes its place in commit order), apply it to the latest state, and leave a copy
//! of that state (O(1)) for the next publisher. Then the committer waits until a state
//! holding its commit is published, or publishes one itself: one committer at a time (the
//! publisher) takes the newest copy left (under its own small lock, not the commit mutex,
//! which up to 64 committers queue on), waits until that state's LSN is durable (so all
//! the commits in it share one `fdatasync`, with the log's group commit underneath), and
//! makes it the visible state; the others wait for it, and those whose commits came after
//! its snapshot elect the next publisher, whose snapshot holds every commit made
//! meanwhile. Readers and new transactions only ever see published states, so no one
//! observes a commit that a crash could still take back, and states are published in LSN
//! order.
//!
//! A commit applies its versions in place, in the one shared map (state.rs); the state a
//! publisher makes visible is a snapshot at an LSN, which readers resolve versions against.
//! One registered snapshot per publication, not per commit.

use crate::chain::Version;
use crate::checkpoint::{self, CheckpointMeta};
use crate::codec::{encode_abort, encode_commit, encode_writes, Bytes, Write};
use crate::error::{lossy, Error, Result};
use crate::gather::{Gathering, TurnCounts, TurnPolicy};
use crate::keys::MapKey;
use crate::limits::{Limits, HISTORY_VERSIONS_MAX};
use crate::recovery::{recover, StoreRecoveryProgress, StoreRecoveryReport};
use crate::state::{final_writes, newest, Map, State, Table};
use crate::txn::{Precondition, Scan, Transaction, Versioned};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use walden_log::storage::{StdStorage, Storage};
use walden_log::waiters::{Mark, Waiters};
use walden_log::{Durability, Lsn, Wal};

/// How to open a store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// The store's directory: the log lives in `DIR/log`, checkpoints in `DIR/checkpoints`.
    pub dir: PathBuf,
    /// Options for the log (its `dir` is set from `dir`).
    pub log: walden_log::Options,
    /// Size limits.
    pub limits: Limits,
    /// Commit durability (default `Sync`: durable before `commit` returns). With `Buffered`,
    /// a commit is visible at once and reaches disk with the next sync: a crash may lose it.
    pub durability: Durability,
    /// Take a checkpoint once this many log bytes were appended since the last, or as many
    /// as the last checkpoint's size if that is more (default 64 MiB; 0: never by size).
    /// The second bound keeps a large state from being rewritten whole for every few MiB
    /// of log: checkpoints then write at most about as many bytes as the log does, and
    /// recovery still reads at most about two checkpoints' worth (one checkpoint and the log
    /// after it).
    pub checkpoint_every_bytes: u64,
    /// Take a checkpoint this often while anything changes (default 5 minutes), once at
    /// least a quarter of the last checkpoint's size was logged since it (a large state is
    /// not rewritten every few minutes for a trickle of writes).
    pub checkpoint_every: Option<Duration>,
    /// Keep at least this many LSNs of log before the oldest kept checkpoint's redo start,
    /// for change feeds, replicas and point-in-time restore (default 0).
    pub log_retention_lsns: u64,
    /// A transaction logs its writes early once this many bytes are pending (default 1 MiB).
    pub spill_bytes: usize,
}

impl StoreOptions {
    /// Defaults for a store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        StoreOptions {
            log: walden_log::Options::new(dir.join("log")),
            dir,
            limits: Limits::default(),
            durability: Durability::Sync,
            checkpoint_every_bytes: 64 << 20,
            checkpoint_every: Some(Duration::from_secs(300)),
            log_retention_lsns: 0,
            spill_bytes: 1 << 20,
        }
    }

    /// Sets the log options (their directory is replaced by `DIR/log`).
    pub fn log(mut self, log: walden_log::Options) -> Self {
        self.log = log;
        self
    }
    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Sets commit durability.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Sets automatic checkpointing: by log bytes (0: off) and by time (None: off).
    pub fn checkpoints(mut self, every_bytes: u64, every: Option<Duration>) -> Self {
        self.checkpoint_every_bytes = every_bytes;
        self.checkpoint_every = every;
        self
    }
    /// Sets log retention in LSNs.
    pub fn log_retention_lsns(mut self, lsns: u64) -> Self {
        self.log_retention_lsns = lsns;
        self
    }
    /// Sets the spill threshold.
    pub fn spill_bytes(mut self, bytes: usize) -> Self {
        self.spill_bytes = bytes.max(1);
        self
    }
}

/// What a commit produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// LSN of the commit record: the transaction's place in commit order.
    pub lsn: Lsn,
    /// The new version of every key written, in write order (last write per key).
    pub versions: Vec<(Bytes, Bytes, u64)>,
}

/// (namespace, key, new version) of each key a commit wrote, as in [`CommitInfo`].
pub(crate) type KeyVersions = Vec<(Bytes, Bytes, u64)>;

/// A checkpoint that was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Every commit at or below this LSN is in it.
    pub lsn: Lsn,
    /// Where recovery from it starts reading the log.
    pub redo_start_lsn: Lsn,
    /// Keys it holds.
    pub keys: u64,
    /// The log's first LSN after releasing what the checkpoint covers.
    pub log_first_lsn: Lsn,
    /// The file.
    pub path: PathBuf,
}

/// A snapshot of the store's positions and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStatus {
    /// Highest LSN appended to the log.
    pub appended_lsn: Lsn,
    /// Highest durable LSN.
    pub durable_lsn: Lsn,
    /// Commit LSN of the newest visible state.
    pub visible_lsn: Lsn,
    /// LSN of the newest checkpoint (0: none yet).
    pub checkpoint_lsn: Lsn,
    /// First LSN still in the log.
    pub log_first_lsn: Lsn,
    /// Live segments in the log.
    pub log_segments: usize,
    /// Keys (including tombstones) in the visible state.
    pub keys: u64,
    /// The last automatic checkpoint failure, if any.
    pub last_checkpoint_error: Option<String>,
}

pub(crate) struct CommitRequest {
    pub txn_id: u64,
    pub writes: Vec<Write>,
    /// Indexes into `writes` of the writes that take effect (the last per key), ascending:
    /// what `state::final_writes` yields.
    pub final_writes: Vec<usize>,
    pub unspilled_from: usize,
    /// Commit LSN of the snapshot the transaction read, if it read anything from it; `None`
    /// for a transaction that only wrote (and required): it is not checked for conflicts.
    pub read_snapshot_lsn: Option<u64>,
    pub preconditions: Vec<(MapKey, Precondition)>,
    pub first_spill_lsn: u64,
}

/// The newest commit applied: its LSN, and the keys (tombstones included) the state holds
/// with it.
#[derive(Debug, Clone, Copy)]
struct Tip {
    lsn: u64,
    keys: u64,
}

/// Guarded by the commit mutex.
struct CommitState {
    /// Transactions with spilled writes: first spill LSN, and commit LSN once committed.
    /// Entries of published commits are dropped lazily, by a later commit.
    spills: BTreeMap<u64, (u64, Option<u64>)>,
}

/// Guarded by the publish mutex: who publishes, and what was published.
#[derive(Debug, Default)]
struct PublishState {
    /// True while a turn is in progress (a committer gathering commits, taking a snapshot,
    /// waiting until it is durable, installing it).
    publishing: bool,
    /// LSN of the newest published state: every commit at or below it is visible.
    published_lsn: u64,
    /// Committers parked until a turn publishes their commit (or to run the next turn).
    waiters: Waiters,
    /// When a new publisher gathers commits first (see `crate::gather`).
    policy: TurnPolicy,
}

pub(crate) struct StoreInner {
    options: StoreOptions,
    storage: Arc<dyn Storage>,
    checkpoint_dir: PathBuf,
    wal: Wal,
    /// The store's one point of serialisation. A `parking_lot` mutex: a publisher turn
    /// releases its committers at once and they queue here; its adaptive spinning hands the
    /// lock over with fewer sleeps than `std`'s (W6 A/B alternating, load 1.4-4.5: 64 writers
    /// 77,318-78,563 -> 83,766-83,929 commits/s, 16 writers +6%).
    commit: parking_lot::Mutex<CommitState>,
    /// Every key and its versions, applied or published (state.rs).
    table: Arc<Table>,
    /// The newest commit applied, as the last commit left it (written under the commit
    /// mutex), for the next publisher (which must not queue on that mutex). Locked after the commit mutex, or alone.
    newest: Mutex<Tip>,
    publish: Mutex<PublishState>,
    /// Applied commits, counted for the gathering publisher (see `crate::gather`).
    gathering: Gathering,
    /// `PublishState::published_lsn`, readable without the publish mutex.
    pub(crate) published_lsn: AtomicU64,
    /// Notified whenever a publisher's turn ends (published or failed): what async waiters
    /// of deferred commits listen to.
    pub(crate) published_event: event_listener::Event,
    visible: RwLock<State>,
    next_txn_id: AtomicU64,
    checkpointing: Mutex<VecDeque<CheckpointMeta>>,
    /// When the last checkpoint was taken (or the store opened), the log's appended bytes
    /// then, the log behind it that recovery replayed, and its size in bytes (the newest
    /// recovered checkpoint's at open).
    last_checkpoint: Mutex<LastCheckpoint>,
    last_checkpoint_error: Mutex<Option<String>>,
    closed: AtomicBool,
    report: StoreRecoveryReport,
}

/// A transactional key-value store whose every change is logged before it is applied.
/// `Send + Sync`; share it with an `Arc`.
pub struct Store {
    pub(crate) inner: Arc<StoreInner>,
    ticker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.options.dir)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    /// Opens (or creates) the store on the real file system.
    pub fn open(options: StoreOptions) -> Result<Store> {
        Self::open_with(options, Arc::new(StdStorage::new()), &mut |_| {})
    }

    /// Opens the store through `storage`, reporting recovery progress.
    pub fn open_with(
        mut options: StoreOptions,
        storage: Arc<dyn Storage>,
        progress: &mut dyn FnMut(StoreRecoveryProgress),
    ) -> Result<Store> {
        options.log.dir = options.dir.join("log");
        options.limits.history_versions = options.limits.history_versions.max(1);
        if options.limits.history_versions > HISTORY_VERSIONS_MAX {
            return Err(Error::InvalidArgument(format!(
                "history_versions is at most {HISTORY_VERSIONS_MAX} (a checkpoint counts a key's versions in 16 bits), not {}",
                options.limits.history_versions
            )));
        }
        let checkpoint_dir = options.dir.join("checkpoints");
        storage.create_dir_all(&checkpoint_dir).map_err(|e| {
            Error::Log(walden_log::Error::Io {
                op: "create directory",
                path: checkpoint_dir.clone(),
                source: e,
            })
        })?;
        // `DIR` and `DIR/checkpoints` may have just been created: a new directory entry is
        // durable only once its parent is fsynced (ENGINEERING.md 1.6), and a checkpoint
        // durable inside a directory whose own entry is lost is lost too, after the log
        // before it was released. The log syncs only `DIR` (its own parent), so sync both
        // parents here. (SimStorage keeps directories always durable: not simulated.)
        let parents = [Some(options.dir.as_path()), options.dir.parent()];
        for parent in parents.into_iter().flatten() {
            let parent = if parent.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                parent
            };
            storage.sync_dir(parent).map_err(|e| {
                Error::Log(walden_log::Error::Io {
                    op: "fsync directory",
                    path: parent.to_path_buf(),
                    source: e,
                })
            })?;
        }
        let wal = Wal::open_with(options.log.clone(), storage.clone(), &mut |p| {
            progress(StoreRecoveryProgress {
                phase: "log",
                records_done: p.bytes_scanned,
                records_total: p.bytes_total,
            })
        })?;
        let recovered = recover(
            &wal,
            &*storage,
            &checkpoint_dir,
            options.limits.history_versions,
            progress,
        )?;
        let bytes_now = wal.bytes_appended();
        let state = Table::open(
            recovered.map,
            recovered.lsn,
            options.limits.history_versions,
        );
        let tip = Tip {
            lsn: state.lsn(),
            keys: state.keys(),
        };
        let inner = Arc::new(StoreInner {
            checkpoint_dir,
            storage,
            commit: parking_lot::Mutex::new(CommitState {
                spills: BTreeMap::new(),
            }),
            table: state.table().clone(),
            newest: Mutex::new(tip),
            publish: Mutex::new(PublishState {
                publishing: false,
                published_lsn: tip.lsn,
                waiters: Waiters::default(),
                policy: TurnPolicy::default(),
            }),
            gathering: Gathering::default(),
            published_lsn: AtomicU64::new(tip.lsn),
            published_event: event_listener::Event::new(),
            visible: RwLock::new(state),
            next_txn_id: AtomicU64::new(recovered.next_txn_id),
            checkpointing: Mutex::new(recovered.kept_checkpoints.into_iter().collect()),
            last_checkpoint: Mutex::new(LastCheckpoint {
                at: Instant::now(),
                log_bytes: bytes_now,
                // The log written after the newest checkpoint by earlier runs: without it a
                // store restarted more often than it logs a checkpoint's worth would never
                // checkpoint again (found in review).
                carried: recovered.report.log_bytes_read,
                // Sets the next size-triggered checkpoint's interval.
                checkpoint_bytes: recovered.report.checkpoint_bytes,
            }),
            last_checkpoint_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            report: recovered.report,
            wal,
            options,
        });
        let ticker = spawn_ticker(&inner)?;
        Ok(Store { inner, ticker })
    }

    /// What recovery did when the store opened.
    pub fn recovery_report(&self) -> &StoreRecoveryReport {
        &self.inner.report
    }

    /// The log underneath (for statistics and change streams).
    pub fn wal(&self) -> &Wal {
        &self.inner.wal
    }

    pub(crate) fn limits(&self) -> Limits {
        self.inner.options.limits
    }

    pub(crate) fn durability(&self) -> Durability {
        self.inner.options.durability
    }

    pub(crate) fn spill_bytes(&self) -> usize {
        self.inner.options.spill_bytes
    }

    pub(crate) fn check_key(&self, ns: &[u8], key: &[u8]) -> Result<()> {
        let l = self.limits();
        if ns.is_empty() {
            return Err(Error::InvalidArgument("namespace must not be empty".into()));
        }
        if ns.len() > l.namespace_bytes_max {
            return Err(Error::TooLarge {
                what: "namespace",
                bytes: ns.len() as u64,
                limit: l.namespace_bytes_max as u64,
            });
        }
        if key.len() > l.key_bytes_max {
            return Err(Error::TooLarge {
                what: "key",
                bytes: key.len() as u64,
                limit: l.key_bytes_max as u64,
            });
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Log(walden_log::Error::Closed));
        }
        Ok(())
    }

    fn visible(&self) -> State {
        self.inner
            .visible
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts a transaction on a snapshot of the latest visible state.
    pub fn begin(&self) -> Transaction<'_> {
        let id = self.inner.next_txn_id.fetch_add(1, Ordering::Relaxed);
        Transaction::new(self, id, self.visible())
    }

    /// The current value of a key.
    pub fn get(&self, ns: &[u8], key: &[u8]) -> Option<Versioned> {
        Versioned::from_version(&self.visible().get(ns, key)?)
    }

    /// The current version of a key, including tombstones (0: never written).
    pub fn version(&self, ns: &[u8], key: &[u8]) -> u64 {
        self.visible().version_of(ns, key)
    }

    /// The key's last versions, oldest first, tombstones included (`value: None`).
    pub fn history(&self, ns: &[u8], key: &[u8]) -> Vec<Version> {
        self.visible().history(ns, key)
    }

    /// Live keys of `ns` that `scan` selects, in key order (or reversed).
    pub fn scan(&self, ns: &[u8], scan: &Scan) -> Vec<(Bytes, Versioned)> {
        self.begin().scan(ns, scan)
    }

    /// Sets a key in its own transaction.
    pub fn put(&self, ns: &[u8], key: &[u8], value: &[u8]) -> Result<CommitInfo> {
        let mut tx = self.begin();
        tx.put(ns, key, value)?;
        tx.commit()
    }

    /// Sets a key if `pre` holds at commit.
    pub fn put_if(
        &self,
        ns: &[u8],
        key: &[u8],
        value: &[u8],
        pre: Precondition,
    ) -> Result<CommitInfo> {
        let mut tx = self.begin();
        tx.require(ns, key, pre)?;
        tx.put(ns, key, value)?;
        tx.commit()
    }

    /// Deletes a key (a tombstone) in its own transaction.
    pub fn delete(&self, ns: &[u8], key: &[u8]) -> Result<CommitInfo> {
        let mut tx = self.begin();
        tx.delete(ns, key)?;
        tx.commit()
    }

    pub(crate) fn spill(&self, txn_id: u64, writes: &[Write]) -> Result<u64> {
        self.check_open()?;
        let record = encode_writes(txn_id, writes.iter());
        let mut c = self.inner.commit.lock();
        let lsn = self
            .inner
            .wal
            .append_with(&record, Durability::Buffered)?
            .get();
        c.spills.entry(txn_id).or_insert((lsn, None));
        Ok(lsn)
    }

    pub(crate) fn abort(&self, txn_id: u64, first_spill_lsn: u64) {
        if first_spill_lsn == 0 {
            return;
        }
        let mut c = self.inner.commit.lock();
        // Best effort: recovery discards an unfinished transaction anyway.
        let _ = self
            .inner
            .wal
            .append_with(&encode_abort(txn_id), Durability::Buffered);
        c.spills.remove(&txn_id);
    }

    /// The first half of a commit, under the commit mutex: checks, appends the batch
    /// buffered, applies it to the latest state and queues that state for publication.
    /// Returns the commit LSN and the new versions (not yet deduplicated). Nothing waits for
    /// durability here; [`Store::finish_commit`] or a deferred commit's `durable` does.
    pub(crate) fn log_and_apply(&self, req: CommitRequest) -> Result<(u64, KeyVersions)> {
        self.check_open()?;
        // Encoded before the commit mutex: it is the store's one point of serialisation.
        let time = now_ms();
        let tail = req.writes.get(req.unspilled_from..).unwrap_or_default();
        let writes_record = (!tail.is_empty()).then(|| encode_writes(req.txn_id, tail.iter()));
        let commit_record = encode_commit(req.txn_id, time, req.first_spill_lsn);
        let records: [&[u8]; 2] = [writes_record.as_deref().unwrap_or_default(), &commit_record];
        // [Writes, Commit], or [Commit] when every write was spilled.
        let batch = records
            .get(usize::from(writes_record.is_none())..)
            .unwrap_or_default();
        let mut c = self.inner.commit.lock();
        let checked = {
            // Read-locked only: only commits write, and they queue on the commit mutex.
            let map = self.inner.table.read();
            check_preconditions(&map, &req.preconditions).and_then(|()| check_conflicts(&map, &req))
        };
        if let Err(e) = checked {
            // Refused: this transaction will never commit. If it spilled, end it like an
            // abort (an `Abort` record, and out of `spills`); otherwise its first spill
            // would hold every later checkpoint's redo start, and so the log's head,
            // forever (found by tests/checkpoint_crash.rs).
            drop(c);
            self.abort(req.txn_id, req.first_spill_lsn);
            return Err(e);
        }
        let first = match self.inner.wal.append_batch(batch, Durability::Buffered) {
            Ok(first) => first,
            Err(e) => {
                // As for a refused commit: a spilled transaction whose commit record was not
                // appended must leave `spills`, or it holds the log's head (found in review).
                drop(c);
                self.abort(req.txn_id, req.first_spill_lsn);
                return Err(e.into());
            }
        };
        let commit_lsn = first.get() + batch.len() as u64 - 1;
        // Nothing fails from here to the end of the critical section.
        // One version per key: its last write in this transaction (see final_writes).
        let writes = req.final_writes.iter().filter_map(|&i| req.writes.get(i));
        // Exactly `final_writes.len()`: they index `writes`.
        let (versions, new_keys) = self.inner.table.apply(writes, commit_lsn, time);
        debug_assert_eq!(
            versions.len(),
            req.final_writes.len(),
            "indexes into writes"
        );
        {
            // Written only here, under the commit mutex: the newest commit applied.
            let mut newest = lock(&self.inner.newest);
            *newest = Tip {
                lsn: commit_lsn,
                keys: newest.keys + new_keys,
            };
        }
        self.inner.gathering.applied_one();
        if !c.spills.is_empty() {
            if let Some(s) = c.spills.get_mut(&req.txn_id) {
                s.1 = Some(commit_lsn);
            }
            // Spills of commits already visible: no checkpoint needs them any more.
            let published = self.inner.published_lsn.load(Ordering::Acquire);
            c.spills
                .retain(|_, (_, commit)| commit.is_none_or(|l| l > published));
        }
        drop(c);
        Ok((commit_lsn, versions))
    }

    /// Takes a checkpoint of the visible state now, while writers go on; then releases the
    /// log before the oldest kept checkpoint's redo start (less the retention setting).
    pub fn checkpoint(&self) -> Result<CheckpointInfo> {
        self.inner.checkpoint()
    }

    /// Positions and sizes.
    pub fn status(&self) -> StoreStatus {
        let visible = self.visible();
        let wal = &self.inner.wal;
        StoreStatus {
            appended_lsn: Lsn(wal.next_lsn().get() - 1),
            durable_lsn: wal.durable_lsn(),
            visible_lsn: Lsn(visible.lsn()),
            checkpoint_lsn: Lsn(lock(&self.inner.checkpointing)
                .front()
                .map_or(0, |m| m.checkpoint_lsn)),
            log_first_lsn: wal.first_lsn(),
            log_segments: wal.segments().len(),
            keys: visible.keys(),
            last_checkpoint_error: lock(&self.inner.last_checkpoint_error).clone(),
        }
    }

    /// Syncs the log and stops the automatic checkpoints.
    pub fn close(mut self) -> Result<()> {
        self.stop_ticker();
        self.inner.wal.sync()?;
        Ok(())
    }

    fn stop_ticker(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
        if let Some(t) = self.ticker.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

impl StoreInner {
    pub(crate) fn wal_ref(&self) -> &Wal {
        &self.wal
    }

    /// Returns once a state holding commit `lsn` is visible (durable first, under `Sync`):
    /// waits for the turn that publishes it, or runs that turn. On `Err` (the log failed,
    /// and is poisoned), nothing past what was visible before becomes visible.
    pub(crate) fn publish_through(&self, lsn: u64) -> Result<()> {
        let mut p = lock(&self.publish);
        loop {
            if p.published_lsn >= lsn {
                return Ok(());
            }
            if p.publishing {
                // Woken once: by the turn that publishes this commit, or to run the next
                // turn (walden_log::waiters: a condition variable per turn woke all of a
                // turn's waiters to contend for this mutex, and perf put W6 at 0.35x the
                // log's rate once the log's own waiters stopped doing that).
                let parked = p.waiters.register(lsn, Mark::Durable);
                drop(p);
                parked.park();
                if self.published_lsn.load(Ordering::Acquire) >= lsn {
                    return Ok(());
                }
                p = lock(&self.publish);
                continue;
            }
            p.publishing = true;
            let (plan, since) = p.policy.plan(self.gathering.applied());
            drop(p);
            let mut guard = PublisherTurn {
                inner: self,
                published_lsn: None,
                counts: None,
                durable_wait: Duration::ZERO,
            };
            if let Some(plan) = plan {
                let started_with = self.gathering.applied().saturating_sub(since);
                let (pending, reached) = self.gathering.gather(plan, since);
                lock(&self.publish)
                    .policy
                    .gathered(plan, started_with, pending, reached);
            }
            // The applied count is read before the snapshot: a commit counted is in it.
            let at_snapshot = self.gathering.applied();
            let state = self.newest_state();
            debug_assert!(
                state.lsn() >= lsn,
                "the snapshot holds the publisher's commit"
            );
            guard.counts = Some(TurnCounts {
                before: since,
                at_snapshot,
            });
            let started = Instant::now();
            let published = self.publish(state);
            guard.durable_wait = started.elapsed();
            guard.published_lsn = published.as_ref().ok().copied();
            drop(guard);
            published?;
            p = lock(&self.publish);
        }
    }

    /// LSN of the newest commit applied.
    pub(crate) fn applied_lsn(&self) -> u64 {
        lock(&self.newest).lsn
    }

    /// A snapshot of the newest state the commits left, registered (state.rs: snapshots
    /// are registered in LSN order; only the publisher of the running turn takes them).
    fn newest_state(&self) -> State {
        let tip = *lock(&self.newest);
        self.table.snapshot(tip.lsn, tip.keys)
    }

    /// A turn's work: waits until `state` is durable (under `Sync`) and makes it visible;
    /// returns its LSN.
    fn publish(&self, state: State) -> Result<u64> {
        let lsn = state.lsn();
        if self.options.durability == Durability::Sync {
            self.wal.wait_durable(Lsn(lsn))?;
        }
        let mut visible = self.visible.write().unwrap_or_else(|e| e.into_inner());
        debug_assert!(visible.lsn() <= lsn, "states are published in LSN order");
        let old = std::mem::replace(&mut *visible, state);
        drop(visible);
        // Outside the lock (dropping a snapshot only lets versions go at the next write).
        drop(old);
        Ok(lsn)
    }

    fn checkpoint(&self) -> Result<CheckpointInfo> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Log(walden_log::Error::Closed));
        }
        let mut kept = lock(&self.checkpointing);
        let bytes_now = self.wal.bytes_appended();
        let (state, meta) = {
            let c = self.commit.lock();
            let state = self
                .visible
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let needed = c
                .spills
                .values()
                .filter(|(_, commit)| commit.is_none_or(|l| l > state.lsn()));
            let redo_start = needed
                .map(|(first, _)| *first)
                .min()
                .unwrap_or(u64::MAX)
                .min(state.lsn() + 1);
            let meta = CheckpointMeta {
                checkpoint_lsn: state.lsn(),
                redo_start_lsn: redo_start,
                next_txn_id: self.next_txn_id.load(Ordering::Relaxed),
            };
            (state, meta)
        };
        // Write-ahead rule for the checkpoint itself: every commit it holds must be durable
        // in the log first. With `Durability::Buffered` the visible state runs ahead of the
        // durable log; a checkpoint of it that outlived those log records would claim LSNs
        // the recovered log reuses, and redo would skip the new commits at those LSNs as
        // "already in the checkpoint" (found by tests/crash_sim.rs, buffered workload).
        // Under `Sync` the visible state is durable already and this returns at once.
        if meta.checkpoint_lsn > 0 {
            self.wal.wait_durable(Lsn(meta.checkpoint_lsn))?;
        }
        let (path, checkpoint_bytes) =
            checkpoint::write(&*self.storage, &self.checkpoint_dir, &state, meta)?;
        kept.retain(|m| m.checkpoint_lsn != meta.checkpoint_lsn);
        kept.push_front(meta);
        while kept.len() > 2 {
            if let Some(old) = kept.pop_back() {
                let old_path = self
                    .checkpoint_dir
                    .join(checkpoint::file_name(old.checkpoint_lsn));
                let _ = self.storage.remove(&old_path);
            }
        }
        let _ = self.storage.sync_dir(&self.checkpoint_dir);
        let oldest_redo = kept.iter().map(|m| m.redo_start_lsn).min().unwrap_or(1);
        let release_before = oldest_redo.saturating_sub(self.options.log_retention_lsns);
        self.wal.truncate_before(Lsn(release_before))?;
        *lock(&self.last_checkpoint) = LastCheckpoint {
            at: Instant::now(),
            log_bytes: bytes_now,
            carried: 0,
            checkpoint_bytes,
        };
        Ok(CheckpointInfo {
            lsn: Lsn(meta.checkpoint_lsn),
            redo_start_lsn: Lsn(meta.redo_start_lsn),
            keys: state.keys(),
            log_first_lsn: self.wal.first_lsn(),
            path,
        })
    }
}

fn check_preconditions(map: &Map, pres: &[(MapKey, Precondition)]) -> Result<()> {
    for ((ns, key), pre) in pres {
        let current = newest(map, ns, key);
        let version = current.map_or(0, |v| v.version);
        let ok = match pre {
            Precondition::Absent => current.is_none_or(|v| v.value.is_none()),
            Precondition::Version(n) => version == *n,
            Precondition::Present => current.is_some_and(|v| v.value.is_some()),
        };
        if !ok {
            let expected = match pre {
                Precondition::Absent => "key absent".to_string(),
                Precondition::Version(n) => format!("version {n}"),
                Precondition::Present => "key present".to_string(),
            };
            return Err(Error::PreconditionFailed {
                ns: lossy(ns),
                key: lossy(key),
                expected,
                current: version,
            });
        }
    }
    Ok(())
}

/// First committer wins: `Error::Conflict` if another transaction committed a key this one
/// writes after its snapshot, when this one read from that snapshot.
///
/// A key changed since the snapshot exactly when its newest version's commit LSN is above
/// the snapshot's LSN: versions carry their commit's LSN, and a snapshot at LSN `s` sees
/// every commit at or below `s` and none above.
///
/// A transaction that read nothing is not checked: its writes depend on no value it saw, so
/// committing it at its place in commit order, after whatever committed meanwhile, is the
/// same as running it alone there (serializable; FoundationDB checks only read conflicts for
/// the same reason). Two agents that blindly `put` one key both succeed, the later commit
/// on top; fencing is what preconditions are for, and they are checked at commit.
fn check_conflicts(map: &Map, req: &CommitRequest) -> Result<()> {
    // Checked for every commit (it guards what `apply` is given, read or not).
    debug_assert!(
        final_writes(&req.writes).eq(req.final_writes.iter().filter_map(|&i| req.writes.get(i))),
        "the transaction's final writes are state::final_writes"
    );
    let Some(snapshot_lsn) = req.read_snapshot_lsn else {
        return Ok(());
    };
    for w in req.final_writes.iter().filter_map(|&i| req.writes.get(i)) {
        if newest(map, &w.ns, &w.key).is_some_and(|v| v.lsn > snapshot_lsn) {
            return Err(Error::Conflict {
                ns: lossy(&w.ns),
                key: lossy(&w.key),
            });
        }
    }
    Ok(())
}

/// Ends a publisher's turn, even if it unwinds: records what it published, then wakes one
/// waiter of the next turn, to run it, before every waiter of this one (they return; after
/// a failure they find nothing published and retry, each in a turn of its own).
struct PublisherTurn<'a> {
    inner: &'a StoreInner,
    /// What the turn made visible (`None`: nothing, it failed or unwound).
    published_lsn: Option<u64>,
    /// Applied-commit counts of the turn, once it has snapshotted.
    counts: Option<TurnCounts>,
    /// How long it waited for the log (and installed the state).
    durable_wait: Duration,
}

impl Drop for PublisherTurn<'_> {
    fn drop(&mut self) {
        let mut p = lock(&self.inner.publish);
        if let Some(l) = self.published_lsn {
            p.published_lsn = p.published_lsn.max(l);
            self.inner
                .published_lsn
                .store(p.published_lsn, Ordering::Release);
            if let Some(counts) = self.counts {
                let applied = self.inner.gathering.applied();
                p.policy.turn_done(counts, applied, self.durable_wait);
            }
        }
        debug_assert!(p.publishing, "a turn ends the one in progress");
        p.publishing = false;
        let published = p.published_lsn;
        // The committers this turn published, and one more (if any wait) to run the next.
        let wake = p.waiters.satisfied(published, published);
        drop(p);
        wake.now();
        self.inner.published_event.notify(usize::MAX);
    }
}

/// Automatic checkpoints by log bytes and by time, on a thread that parks between checks.
fn spawn_ticker(inner: &Arc<StoreInner>) -> Result<Option<JoinHandle<()>>> {
    let o = &inner.options;
    if o.checkpoint_every_bytes == 0 && o.checkpoint_every.is_none() {
        return Ok(None);
    }
    let weak = Arc::downgrade(inner);
    let handle = std::thread::Builder::new()
        .name("walden-checkpoint".into())
        .spawn(move || loop {
            std::thread::park_timeout(Duration::from_millis(100));
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.load(Ordering::Acquire) {
                return;
            }
            if due(&inner) {
                let outcome = inner.checkpoint();
                *lock(&inner.last_checkpoint_error) = outcome.err().map(|e| e.to_string());
            }
        })
        .map_err(|e| {
            Error::Log(walden_log::Error::Io {
                op: "spawn checkpoint thread",
                path: PathBuf::new(),
                source: e,
            })
        })?;
    Ok(Some(handle))
}

/// See [`StoreInner::last_checkpoint`].
#[derive(Debug, Clone, Copy)]
struct LastCheckpoint {
    at: Instant,
    /// `Wal::bytes_appended` (this process's appends) then.
    log_bytes: u64,
    /// Log bytes behind the checkpoint from before this process (recovery replayed them).
    carried: u64,
    checkpoint_bytes: u64,
}

fn due(inner: &StoreInner) -> bool {
    let last = *lock(&inner.last_checkpoint);
    let bytes = inner
        .wal
        .bytes_appended()
        .saturating_sub(last.log_bytes)
        .saturating_add(last.carried);
    let o = &inner.options;
    due_by_size(bytes, o.checkpoint_every_bytes, last.checkpoint_bytes)
        || (o.checkpoint_every.is_some_and(|d| last.at.elapsed() >= d)
            && due_by_time(bytes, last.checkpoint_bytes))
}

/// Whether a checkpoint whose interval has elapsed is worth taking after `logged` bytes:
/// anything logged, but for a large state at least a quarter of its last checkpoint's size,
/// so that the time trigger too writes at most about 4 checkpoint bytes per byte logged.
fn due_by_time(logged: u64, last_checkpoint_bytes: u64) -> bool {
    logged > 0 && logged >= last_checkpoint_bytes / 4
}

/// Whether `logged` bytes since the last checkpoint call for one: `every` bytes (0: never),
/// or the last checkpoint's size if larger (see [`StoreOptions::checkpoint_every_bytes`]).
fn due_by_size(logged: u64, every: u64, last_checkpoint_bytes: u64) -> bool {
    every > 0 && logged >= every.max(last_checkpoint_bytes)
}

#[cfg(test)]
mod tests {
    use super::{due_by_size, due_by_time};

    #[test]
    fn checkpoints_by_size_wait_for_as_much_log_as_the_last_checkpoint_held() {
        let mib = 1 << 20;
        // A small state: every 64 MiB of log.
        assert!(!due_by_size(63 * mib, 64 * mib, 10 * mib));
        assert!(due_by_size(64 * mib, 64 * mib, 10 * mib));
        // A 500 MiB state is not rewritten for every 64 MiB of log: only once as much log
        // as it holds has been written.
        assert!(!due_by_size(64 * mib, 64 * mib, 500 * mib));
        assert!(!due_by_size(499 * mib, 64 * mib, 500 * mib));
        assert!(due_by_size(500 * mib, 64 * mib, 500 * mib));
        // 0 turns size-triggered checkpoints off, whatever the sizes.
        assert!(!due_by_size(u64::MAX, 0, 0));
    }

    #[test]
    fn checkpoints_by_time_need_a_quarter_of_the_last_checkpoint_in_log() {
        let mib = 1 << 20;
        assert!(!due_by_time(0, 0), "nothing logged: nothing to checkpoint");
        assert!(due_by_time(1, 0));
        assert!(due_by_time(1, 4), "a small state: anything logged");
        assert!(!due_by_time(100 * mib, 10_000 * mib));
        assert!(due_by_time(2_500 * mib, 10_000 * mib));
    }
}
