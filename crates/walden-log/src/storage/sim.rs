//! [`SimStorage`]: an in-memory [`Storage`] for crash-simulation tests.
//!
//! Every file keeps two images: `current` (what reads see, unsynced writes included) and
//! `durable` (what survives power loss), plus the ordered list of writes and length changes
//! made since its last successful `sync_data`. The directory likewise keeps a current map, a
//! durable map and the ordered list of creates, renames and removes not yet made durable by
//! `sync_dir`. [`SimStorage::crash`] throws away everything in memory and rebuilds the
//! visible state from the durable images plus whatever part of the pending work the chosen
//! [`CrashDamage`] lets survive. All random choices come from one `SmallRng` seeded by
//! [`SimStorage::new`], so a seed and a sequence of calls replay exactly.
//!
//! # Faults modelled
//! - **Power loss at any moment** ([`SimStorage::crash`]): unsynced sectors are lost, kept,
//!   kept out of order, zeroed, garbled or torn (a prefix of the writes, the last one cut at a
//!   sector boundary); unsynced length changes are kept or lost; unsynced creates, renames and
//!   removes are kept or lost (any subset, or a prefix). Removed-but-not-dir-synced files
//!   come back; created-but-not-dir-synced files vanish, even if their data was synced.
//! - **Process death between any two calls** ([`SimStorage::crash_after_ops`]): from a chosen
//!   call on, every call fails without effect, so a harness can crash at every call of a
//!   workload.
//! - **Stale handles**: after a crash every handle opened before it fails every call.
//! - **`fsync` failure with Linux semantics** ([`SimStorage::fail_sync_after`]): `EIO`, and the
//!   pending data is dropped from the dirty set without reaching the disk, while reads still
//!   return it (until [`StorageFile::drop_cache`]); a later successful sync does not write it
//!   either.
//! - **Full disk** ([`SimStorage::set_space_limit`]): `ENOSPC` on a write or `set_len` that
//!   would grow the total size past the limit; the failed call changes nothing.
//! - **Read errors** ([`SimStorage::fail_reads`]): `EIO` on any read touching a byte range.
//! - **Latent corruption and lying metadata**, applied directly to both images as if the disk
//!   changed under the engine: bit flips ([`SimStorage::corrupt`]), zeroed ranges
//!   ([`SimStorage::zero_range`]), truncated or extended files
//!   ([`SimStorage::truncate_file`]), missing files ([`SimStorage::remove_file`]), misnamed or
//!   duplicated files ([`SimStorage::rename_file`], [`SimStorage::write_file`]), arbitrary
//!   file content ([`SimStorage::write_file`]).
//! - **Old content under new writes**: a lost sector keeps whatever the durable image held
//!   there, so rewriting a file in place can leave old records behind after a crash.
//! - **Lock contention**: [`Storage::lock_dir`] fails with `WouldBlock` while held.
//! - **Hints**: [`StorageFile::advise_sequential`] and [`StorageFile::prefetch`] are counted
//!   ([`SimStorage::hint_counts`]) and change nothing.
//! - **Missing `fallocate` modes** ([`SimStorage::set_fallocate_support`]):
//!   [`StorageFile::write_zeroes`] and [`StorageFile::allocate`] fail with `Unsupported`,
//!   changing nothing. By default `allocate` works and `write_zeroes` does not, like ext4 on
//!   a disk without a write-zeroes command (the machines this project measures on).
//!
//! `write_zeroes` is a write of zeros and `allocate` a length change: at a crash their
//! unsynced effects meet the same fates as any write or `set_len`. Whether blocks are
//! "written" or "unwritten" is not modelled (it changes the cost of a sync, not its
//! outcome).
//!
//! # Faults not modelled
//! - Damage to bytes that were not rewritten since the last sync: a sector's fate applies to
//!   its unsynced bytes only, so durable bytes sharing a sector with unsynced ones stay intact
//!   (a real disk may tear the whole sector on rewrite). Bytes the engine rewrites, even with
//!   identical content, count as unsynced and can be damaged.
//! - Silent corruption, lost or misdirected writes *after* a successful `sync_data` happen
//!   only through the explicit helpers, never by themselves.
//! - Write errors other than `ENOSPC` (no `EIO` on write, no short writes, no `EINTR`), and
//!   failures of `sync_dir`, `create_dir_all`, `list` or `open` other than missing paths.
//! - `fsync` error reporting through other descriptors (Linux `errseq`): only the failing
//!   call reports the error.
//! - Crashes inside a call: every call is atomic with respect to a crash point (it happens
//!   entirely or not at all) and calls are serialised by one mutex, so there is no timing.
//! - Cross-file ordering: each file's pending writes meet their fate independently.
//! - Directories themselves are always durable; a rename between two directories becomes
//!   durable with `sync_dir` of either one. No hard links, symlinks, permissions or times.
//! - Garbage from *other* files' old content (garbled sectors are random bytes).
//! - Another process: [`Storage::lock_dir`] excludes holders within the same `SimStorage`
//!   (and its clones) only.

use super::{DirLock, OpenMode, Storage, StorageFile};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The unit of crash damage: each unsynced sector of a file meets one fate at a crash.
pub const SECTOR_BYTES: usize = 512;

/// Largest file the simulator holds; a write or `set_len` past it fails with `InvalidInput`
/// instead of allocating.
const FILE_BYTES_MAX: usize = 1 << 30;

/// Raw OS error number of `EIO`.
const EIO: i32 = 5;
/// Raw OS error number of `ENOSPC`.
const ENOSPC: i32 = 28;

/// What happens to unsynced data at a simulated crash. Every variant is a state a real
/// disk can be left in after power loss.
///
/// Rules, per file, starting from its durable image (the "pending" bytes are those written,
/// or cut or zero-extended by `set_len`, since the last successful `sync_data`):
/// - The resulting length is the durable length ([`DropAll`](Self::DropAll)), the current
///   length ([`KeepAll`](Self::KeepAll)), one of the two picked at random with p = 1/2 (the
///   `Random*` variants), or the length reached by the surviving writes
///   ([`TornPrefix`](Self::TornPrefix)). Growing past the durable length reads as zeros.
/// - Each 512-byte sector holding pending bytes gets one fate; the fate applies to that
///   sector's pending bytes only: *kept* (they take their current value, zero past the
///   current length), *lost* (they keep their durable value, zero past the durable length),
///   *zeroed*, or *garbled* (random bytes). Bytes past the resulting length are cut.
/// - Pending directory operations (create, rename, remove) are applied to the durable
///   directory in their original order, each one that survives and still applies (a create
///   whose name exists, or a rename or remove whose source is missing, is skipped).
///
/// Data written to a file whose name does not survive is gone with the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashDamage {
    /// Nothing unsynced survives: every file is its durable image, the directory is its
    /// durable map.
    DropAll,
    /// Everything unsynced survives: every file keeps its current content and length, and
    /// every pending directory operation is applied. (Data whose `sync_data` failed is still
    /// lost: it is no longer pending.)
    KeepAll,
    /// Each pending sector is kept or lost (p = 1/2 each); length durable or current
    /// (p = 1/2); each pending directory operation survives with p = 1/2.
    RandomSubset,
    /// Each pending sector is kept, lost or zeroed (p = 1/3 each); length durable or current
    /// (p = 1/2); each pending directory operation survives with p = 1/2.
    RandomZeroed,
    /// Each pending sector is kept, lost or overwritten with random bytes (p = 1/3 each);
    /// length durable or current (p = 1/2); each pending directory operation survives with
    /// p = 1/2.
    RandomGarbled,
    /// Per file, the pending writes and length changes survive in the order they were made
    /// up to a point chosen uniformly among `0..=n` (n = how many there are). The write at
    /// that point, if any, is torn: only its first `j` sectors survive, `j` uniform among
    /// `0..sectors_it_touches`, and the file grows only as far as the surviving bytes; a
    /// length change at that point is lost. Directory: a random prefix (uniform length) of
    /// the pending operations survives.
    TornPrefix,
}

impl CrashDamage {
    /// Every variant, for tests that try them all.
    pub const ALL: [CrashDamage; 6] = [
        CrashDamage::DropAll,
        CrashDamage::KeepAll,
        CrashDamage::RandomSubset,
        CrashDamage::RandomZeroed,
        CrashDamage::RandomGarbled,
        CrashDamage::TornPrefix,
    ];
}

/// An in-memory [`Storage`] that keeps durable bytes apart from unsynced ones and can crash.
/// See the module documentation for the faults it models and those it does not.
///
/// Clones share one file system (`Arc<Mutex<..>>`), so a test keeps a clone to crash and
/// inspect the storage it handed to the engine. Every call is serialised by that mutex.
/// The same seed and the same sequence of calls give the same states, crash after crash.
#[derive(Clone)]
pub struct SimStorage {
    shared: Arc<Mutex<State>>,
}

/// One unsynced change to a file's content or length, in the order it was made.
#[derive(Debug)]
enum PendingOp {
    /// `data` written at `offset` (kept for [`CrashDamage::TornPrefix`] replay).
    Write { offset: usize, data: Vec<u8> },
    /// The length changed from `from` to `to` (`set_len`).
    SetLen { from: usize, to: usize },
}

impl PendingOp {
    /// The bytes whose content this change may have altered.
    fn byte_range(&self) -> Range<usize> {
        match self {
            PendingOp::Write { offset, data } => *offset..offset.saturating_add(data.len()),
            PendingOp::SetLen { from, to } => (*from).min(*to)..(*from).max(*to),
        }
    }
}

/// A file. Lives while a directory map, a pending create, or an open handle refers to it.
#[derive(Debug, Default)]
struct Inode {
    /// What reads see, unsynced changes included.
    current: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Changes since the last successful (or failed) `sync_data`, in order.
    pending: Vec<PendingOp>,
    /// Handles of the current epoch open on this inode.
    open_handles: u64,
}

/// A directory change not yet made durable by `sync_dir`.
#[derive(Debug)]
enum DirOp {
    Create { path: PathBuf, inode: u64 },
    Rename { from: PathBuf, to: PathBuf },
    Remove { path: PathBuf },
}

impl DirOp {
    /// Whether `sync_dir(dir)` makes this operation durable.
    fn is_in_dir(&self, dir: &Path) -> bool {
        match self {
            DirOp::Create { path, .. } | DirOp::Remove { path } => parent_of(path) == dir,
            DirOp::Rename { from, to } => parent_of(from) == dir || parent_of(to) == dir,
        }
    }

    /// Whether this operation names `path`.
    fn names(&self, path: &Path) -> bool {
        match self {
            DirOp::Create { path: p, .. } | DirOp::Remove { path: p } => p == path,
            DirOp::Rename { from, to } => from == path || to == path,
        }
    }

    /// Applies this operation to `map` if it still applies there; skips it otherwise.
    fn apply(self, map: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Create { path, inode } => {
                map.entry(path).or_insert(inode);
            }
            DirOp::Rename { from, to } => {
                if let Some(inode) = map.remove(&from) {
                    map.insert(to, inode);
                }
            }
            DirOp::Remove { path } => {
                map.remove(&path);
            }
        }
    }
}

/// A range of a file that reads fail on.
#[derive(Debug)]
struct ReadFault {
    path: PathBuf,
    /// The inode at `path` when the fault was set, if any: the fault follows it on rename.
    inode: Option<u64>,
    range: Range<u64>,
}

/// Everything a [`SimStorage`] and its handles share.
struct State {
    seed: u64,
    rng: SmallRng,
    /// Incremented by every crash; handles from an earlier epoch are stale.
    epoch: u64,
    next_inode: u64,
    inodes: BTreeMap<u64, Inode>,
    /// Directories ever created (always durable).
    dirs: BTreeSet<PathBuf>,
    /// The directory as every call sees it.
    current: BTreeMap<PathBuf, u64>,
    /// The directory as it survives a crash.
    durable: BTreeMap<PathBuf, u64>,
    /// Directory changes not yet dir-synced, in order.
    dir_ops: Vec<DirOp>,
    /// Held directory locks and the id of their holder.
    locks: BTreeMap<PathBuf, u64>,
    next_lock: u64,
    /// Calls made on the storage and its handles since creation.
    op_count: u64,
    /// The call number from which every call fails.
    crash_at: Option<u64>,
    /// Effective `sync_data` calls left until the one that fails (1 = the next).
    sync_fail_in: Option<u64>,
    space_limit: Option<u64>,
    read_faults: Vec<ReadFault>,
    /// Whether `allocate` and `write_zeroes` work (else `Unsupported`).
    allocate_supported: bool,
    write_zeroes_supported: bool,
    /// `advise_sequential` and `prefetch` calls.
    sequential_advice: u64,
    prefetches: u64,
}

impl State {
    /// Counts one call and fails it if the crash point has been reached.
    fn count_call(&mut self) -> io::Result<()> {
        self.op_count = self.op_count.saturating_add(1);
        match self.crash_at {
            Some(at) if self.op_count >= at => Err(io::Error::other("simulated crash point")),
            _ => Ok(()),
        }
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        dir.as_os_str().is_empty()
            || (dir.has_root() && dir.parent().is_none())
            || self.dirs.contains(dir)
    }

    /// Fails with `NotFound` unless the parent directory of `path` exists.
    fn check_parent(&self, path: &Path) -> io::Result<()> {
        if self.dir_exists(parent_of(path)) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: parent directory does not exist (simulated storage)",
                    path.display()
                ),
            ))
        }
    }

    /// Records `dir` and its ancestors as directories.
    fn add_dirs(&mut self, dir: &Path) -> io::Result<()> {
        for ancestor in dir.ancestors() {
            if self.current.contains_key(ancestor) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: a file exists at {}", dir.display(), ancestor.display()),
                ));
            }
        }
        for ancestor in dir.ancestors() {
            if !self.dir_exists(ancestor) {
                self.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn inode_mut(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other(format!("simulated inode {id} vanished")))
    }

    /// The inode of `path` in the current directory, or else in the durable one.
    fn resolve(&self, path: &Path) -> io::Result<u64> {
        self.current
            .get(path)
            .or_else(|| self.durable.get(path))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn new_inode(&mut self) -> u64 {
        let id = self.next_inode;
        self.next_inode = self.next_inode.saturating_add(1);
        self.inodes.insert(id, Inode::default());
        id
    }

    /// Total current length of the files in the current directory and of open files.
    fn live_bytes(&self) -> u64 {
        let linked: BTreeSet<u64> = self.current.values().copied().collect();
        self.inodes
            .iter()
            .filter(|(id, inode)| inode.open_handles > 0 || linked.contains(id))
            .map(|(_, inode)| inode.current.len() as u64)
            .sum()
    }

    /// Fails with `ENOSPC` if growing some file by `growth_bytes` would pass the limit.
    fn check_space(&self, growth_bytes: usize) -> io::Result<()> {
        match self.space_limit {
            Some(limit) if growth_bytes > 0 => {
                if self.live_bytes().saturating_add(growth_bytes as u64) > limit {
                    Err(io::Error::from_raw_os_error(ENOSPC))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Drops every inode nothing refers to any more.
    fn collect_garbage(&mut self) {
        let mut referenced: BTreeSet<u64> = self.current.values().copied().collect();
        referenced.extend(self.durable.values().copied());
        for op in &self.dir_ops {
            if let DirOp::Create { inode, .. } = op {
                referenced.insert(*inode);
            }
        }
        self.inodes
            .retain(|id, inode| inode.open_handles > 0 || referenced.contains(id));
    }

    fn drop_dir_ops_naming(&mut self, path: &Path) {
        self.dir_ops.retain(|op| !op.names(path));
    }

    fn read_fault_hits(&self, inode: u64, range: Range<u64>) -> bool {
        self.read_faults.iter().any(|fault| {
            let same_file =
                fault.inode == Some(inode) || self.current.get(&fault.path) == Some(&inode);
            same_file && fault.range.start < range.end && range.start < fault.range.end
        })
    }

    fn crash(&mut self, damage: CrashDamage) {
        let dir_ops = std::mem::take(&mut self.dir_ops);
        let survivors = match damage {
            CrashDamage::TornPrefix => self.rng.gen_range(0..=dir_ops.len()),
            _ => dir_ops.len(),
        };
        for (index, op) in dir_ops.into_iter().enumerate() {
            let survives = match damage {
                CrashDamage::DropAll => false,
                CrashDamage::KeepAll => true,
                CrashDamage::TornPrefix => index < survivors,
                CrashDamage::RandomSubset
                | CrashDamage::RandomZeroed
                | CrashDamage::RandomGarbled => self.rng.gen::<bool>(),
            };
            if survives {
                op.apply(&mut self.durable);
            }
        }
        let referenced: BTreeSet<u64> = self.durable.values().copied().collect();
        self.inodes.retain(|id, _| referenced.contains(id));
        for inode in self.inodes.values_mut() {
            crash_file(inode, damage, &mut self.rng);
            inode.current.clear();
            inode.current.extend_from_slice(&inode.durable);
            inode.pending.clear();
            inode.open_handles = 0;
        }
        self.current = self.durable.clone();
        self.epoch = self.epoch.saturating_add(1);
        self.crash_at = None;
        self.locks.clear();
    }
}

/// The fate of one sector's pending bytes at a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Lost,
    Zeroed,
    Garbled,
}

/// Rebuilds `inode.durable` as the crash leaves it (see [`CrashDamage`]).
fn crash_file(inode: &mut Inode, damage: CrashDamage, rng: &mut SmallRng) {
    if inode.pending.is_empty() {
        return;
    }
    match damage {
        CrashDamage::DropAll => {}
        CrashDamage::TornPrefix => replay_prefix(inode, rng),
        CrashDamage::KeepAll
        | CrashDamage::RandomSubset
        | CrashDamage::RandomZeroed
        | CrashDamage::RandomGarbled => damage_sectors(inode, damage, rng),
    }
}

/// The byte ranges touched by `pending`, sorted and merged.
fn dirty_ranges(pending: &[PendingOp]) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = pending
        .iter()
        .map(PendingOp::byte_range)
        .filter(|r| r.start < r.end)
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// Per-sector fates for the `KeepAll` and `Random*` variants.
fn damage_sectors(inode: &mut Inode, damage: CrashDamage, rng: &mut SmallRng) {
    let current_len = inode.current.len();
    let durable_len = inode.durable.len();
    let len = match damage {
        CrashDamage::KeepAll => current_len,
        _ if current_len == durable_len => current_len,
        _ => {
            if rng.gen::<bool>() {
                current_len
            } else {
                durable_len
            }
        }
    };
    inode.durable.resize(len, 0);
    // Pieces of the same sector are consecutive (ranges are sorted), so one fate per sector.
    let mut last: Option<(usize, Fate)> = None;
    for range in dirty_ranges(&inode.pending) {
        let end = range.end.min(len);
        let mut start = range.start;
        while start < end {
            let sector = start / SECTOR_BYTES;
            let piece_end = end.min((sector + 1) * SECTOR_BYTES);
            let fate = match last {
                Some((s, fate)) if s == sector => fate,
                _ => {
                    let fate = draw_fate(damage, rng);
                    last = Some((sector, fate));
                    fate
                }
            };
            apply_fate(inode, start..piece_end, fate, rng);
            start = piece_end;
        }
    }
}

fn draw_fate(damage: CrashDamage, rng: &mut SmallRng) -> Fate {
    match damage {
        CrashDamage::KeepAll => Fate::Kept,
        CrashDamage::RandomSubset => {
            if rng.gen::<bool>() {
                Fate::Kept
            } else {
                Fate::Lost
            }
        }
        CrashDamage::RandomZeroed => match rng.gen_range(0..3u8) {
            0 => Fate::Kept,
            1 => Fate::Lost,
            _ => Fate::Zeroed,
        },
        CrashDamage::RandomGarbled => match rng.gen_range(0..3u8) {
            0 => Fate::Kept,
            1 => Fate::Lost,
            _ => Fate::Garbled,
        },
        CrashDamage::DropAll | CrashDamage::TornPrefix => Fate::Lost,
    }
}

/// Applies `fate` to `range` of `inode.durable` (which the caller sized to cover it).
fn apply_fate(inode: &mut Inode, range: Range<usize>, fate: Fate, rng: &mut SmallRng) {
    let Some(target) = inode.durable.get_mut(range.clone()) else {
        return;
    };
    match fate {
        Fate::Lost => {}
        Fate::Zeroed => target.fill(0),
        Fate::Garbled => rng.fill(target),
        Fate::Kept => {
            let source = inode
                .current
                .get(range.start..range.end.min(inode.current.len()))
                .unwrap_or_default();
            let (head, tail) = target.split_at_mut(source.len().min(target.len()));
            head.copy_from_slice(source.get(..head.len()).unwrap_or_default());
            tail.fill(0);
        }
    }
}

/// Copies `data` into `file` at `offset`, growing it with zeros as needed.
fn write_into(file: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset.saturating_add(data.len());
    if file.len() < end {
        file.resize(end, 0);
    }
    if let Some(target) = file.get_mut(offset..end) {
        target.copy_from_slice(data);
    }
}

/// The [`CrashDamage::TornPrefix`] replay of one file's pending changes.
fn replay_prefix(inode: &mut Inode, rng: &mut SmallRng) {
    let survivors = rng.gen_range(0..=inode.pending.len());
    for (index, op) in inode
        .pending
        .iter()
        .enumerate()
        .take(survivors.saturating_add(1))
    {
        let torn = index == survivors;
        match op {
            PendingOp::Write { offset, data } => {
                let keep = if torn {
                    let first_sector = offset / SECTOR_BYTES;
                    let last_sector =
                        offset.saturating_add(data.len()).saturating_sub(1) / SECTOR_BYTES;
                    let kept_sectors = rng.gen_range(0..=last_sector.saturating_sub(first_sector));
                    ((first_sector + kept_sectors) * SECTOR_BYTES)
                        .saturating_sub(*offset)
                        .min(data.len())
                } else {
                    data.len()
                };
                if keep > 0 {
                    write_into(
                        &mut inode.durable,
                        *offset,
                        data.get(..keep).unwrap_or_default(),
                    );
                }
            }
            PendingOp::SetLen { to, .. } => {
                if !torn {
                    inode.durable.resize(*to, 0);
                }
            }
        }
    }
}

/// Makes every pending change of `inode` durable, at a cost of the pending bytes.
fn flush(inode: &mut Inode) {
    let mut durable = std::mem::take(&mut inode.durable);
    overlay_pending(inode, &mut durable);
    inode.durable = durable;
    inode.pending.clear();
}

/// Resizes `image` to the file's current length and copies the current bytes of every
/// pending change over it: the durable image plus what is still to be written.
fn overlay_pending(inode: &Inode, image: &mut Vec<u8>) {
    let len = inode.current.len();
    image.resize(len, 0);
    for op in &inode.pending {
        let range = op.byte_range();
        let range = range.start.min(len)..range.end.min(len);
        if let (Some(target), Some(source)) =
            (image.get_mut(range.clone()), inode.current.get(range))
        {
            target.copy_from_slice(source);
        }
    }
}

fn lock_state(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file (simulated storage)", path.display()),
    )
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is not supported by this simulated file system"),
    )
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// `path` with `.` and `..` resolved lexically, so equal paths compare equal.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `path` normalised; fails with `InvalidInput` unless it names a file (ends in a name).
fn file_path(path: &Path) -> io::Result<PathBuf> {
    let path = normalize(path);
    match path.components().next_back() {
        Some(Component::Normal(_)) => Ok(path),
        _ => Err(invalid(format!("{}: not a file path", path.display()))),
    }
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// Converts a length or offset, failing with `InvalidInput` past [`FILE_BYTES_MAX`].
fn checked_size(bytes: u64, what: &str) -> io::Result<usize> {
    match usize::try_from(bytes) {
        Ok(n) if n <= FILE_BYTES_MAX => Ok(n),
        _ => Err(invalid(format!(
            "{what} {bytes} exceeds the simulated storage limit of {FILE_BYTES_MAX} bytes"
        ))),
    }
}

impl SimStorage {
    /// An empty file system whose random choices all derive from `seed`.
    pub fn new(seed: u64) -> Self {
        let state = State {
            seed,
            rng: SmallRng::seed_from_u64(seed),
            epoch: 0,
            next_inode: 1,
            inodes: BTreeMap::new(),
            dirs: BTreeSet::new(),
            current: BTreeMap::new(),
            durable: BTreeMap::new(),
            dir_ops: Vec::new(),
            locks: BTreeMap::new(),
            next_lock: 1,
            op_count: 0,
            crash_at: None,
            sync_fail_in: None,
            space_limit: None,
            read_faults: Vec::new(),
            allocate_supported: true,
            write_zeroes_supported: false,
            sequential_advice: 0,
            prefetches: 0,
        };
        SimStorage {
            shared: Arc::new(Mutex::new(state)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock_state(&self.shared)
    }

    /// The seed this storage was created with (print it so a failing run can be replayed).
    pub fn seed(&self) -> u64 {
        self.state().seed
    }

    /// Simulates power loss: every file becomes what `damage` leaves of its durable image
    /// and pending changes, and the directory its durable map plus the surviving pending
    /// operations (exact rules on [`CrashDamage`]). Afterwards reads see exactly that state,
    /// nothing is pending, files no durable name refers to are gone, every handle and lock
    /// taken before is stale (handles fail every call, locks are released), and the crash
    /// point set by [`SimStorage::crash_after_ops`] is cleared. Read faults, the space limit
    /// and a scheduled `sync_data` failure stay.
    pub fn crash(&self, damage: CrashDamage) {
        self.state().crash(damage);
    }

    /// Sets a crash point: counting from now, the `n`-th call on this storage or on any of
    /// its handles (every [`Storage`] and [`StorageFile`] method counts, whatever its
    /// outcome, except the hints [`StorageFile::advise_sequential`] and
    /// [`StorageFile::prefetch`], which change nothing, so a crash there is the crash at the
    /// next call; the helpers on `SimStorage` do not count
    /// either) and every call after it fail with
    /// `io::Error::other("simulated crash point")` without taking effect, as if the process
    /// had died there. `Some(0)` acts like `Some(1)` (the next call fails); `None` removes
    /// the crash point. [`SimStorage::crash`] clears it too.
    pub fn crash_after_ops(&self, n: Option<u64>) {
        let mut state = self.state();
        let now = state.op_count;
        state.crash_at = n.map(|n| now.saturating_add(n.max(1)));
    }

    /// How many calls have been made on this storage and its handles since it was created
    /// (crashes do not reset it). Run a workload once, take the difference, then crash at
    /// each call with [`SimStorage::crash_after_ops`].
    pub fn op_count(&self) -> u64 {
        self.state().op_count
    }

    /// Makes the `n`-th `sync_data` call from now (1 = the next; 0 acts like 1), on any file,
    /// fail with `EIO` (raw OS error 5). As on Linux, that file's pending changes then leave
    /// the pending set without reaching the durable image: reads still return them, no crash
    /// keeps them, and no later sync writes them. Calls that fail for another reason (crash
    /// point, stale handle) do not count. One-shot; survives [`SimStorage::crash`].
    pub fn fail_sync_after(&self, n: u64) {
        self.state().sync_fail_in = Some(n.max(1));
    }

    /// Limits the total current length of all files (those in the directory plus removed
    /// files still open) to `bytes`; `None` removes the limit. A write or `set_len` that
    /// would grow that total past the limit fails with `ENOSPC` (raw OS error 28) and changes
    /// nothing. Writes inside a file's current length always succeed. The test helpers
    /// ignore the limit.
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        self.state().space_limit = bytes;
    }

    /// Makes every `read_at` that would return any byte of `range` of the file at `path`
    /// fail with `EIO` (raw OS error 5). The fault applies to the file at `path` now (it
    /// follows that file on rename) and to whatever file is at `path` when the read happens.
    /// Survives crashes; removed by [`SimStorage::clear_read_faults`].
    pub fn fail_reads(&self, path: &Path, range: Range<u64>) {
        let path = normalize(path);
        let mut state = self.state();
        let inode = state
            .current
            .get(&path)
            .or_else(|| state.durable.get(&path))
            .copied();
        state.read_faults.push(ReadFault { path, inode, range });
    }

    /// Removes every read fault set by [`SimStorage::fail_reads`].
    pub fn clear_read_faults(&self) {
        self.state().read_faults.clear();
    }

    /// Chooses which `fallocate` modes the simulated file system supports: with `false`,
    /// [`StorageFile::allocate`] (mode 0) or [`StorageFile::write_zeroes`]
    /// (`FALLOC_FL_WRITE_ZEROES`) fails with `Unsupported` and changes nothing (the call
    /// still counts). Default: `allocate` yes, `write_zeroes` no. Survives crashes.
    pub fn set_fallocate_support(&self, allocate: bool, write_zeroes: bool) {
        let mut state = self.state();
        state.allocate_supported = allocate;
        state.write_zeroes_supported = write_zeroes;
    }

    /// `(advise_sequential, prefetch)`: how many of each hint were given on handles of this
    /// storage since it was created.
    pub fn hint_counts(&self) -> (u64, u64) {
        let state = self.state();
        (state.sequential_advice, state.prefetches)
    }

    /// The current content of the file at `path` (unsynced writes included), or `None` if
    /// the current directory has no such file.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let path = normalize(path);
        let state = self.state();
        let id = state.current.get(&path)?;
        state.inodes.get(id).map(|inode| inode.current.clone())
    }

    /// Creates or replaces the file at `path` with `bytes`, durably: content, length and
    /// directory entry (in both the current and the durable directory) at once, as if the
    /// disk had been written behind the engine's back. Records the parent directories.
    /// Open handles on the replaced file see the new content. Discards the file's pending
    /// changes and any pending directory operation naming `path`. Fails with `InvalidInput`
    /// past 1 GiB or if `path` names no file, `AlreadyExists` if a directory is there.
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        checked_size(bytes.len() as u64, "file length")?;
        let path = file_path(path)?;
        let mut state = self.state();
        if state.dirs.contains(&path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: is a directory", path.display()),
            ));
        }
        state.add_dirs(parent_of(&path))?;
        let id = match state.resolve(&path) {
            Ok(id) => id,
            Err(_) => state.new_inode(),
        };
        let inode = state.inode_mut(id)?;
        inode.current = bytes.to_vec();
        inode.durable = bytes.to_vec();
        inode.pending.clear();
        state.drop_dir_ops_naming(&path);
        state.current.insert(path.clone(), id);
        state.durable.insert(path, id);
        state.collect_garbage();
        Ok(())
    }

    /// Flips the bits of `xor_mask` in the byte at `offset` of the file at `path` (found in
    /// the current directory, else the durable one), in both its current and durable images
    /// (the durable one only if long enough). Pending writes kept for a
    /// [`CrashDamage::TornPrefix`] replay are not changed. `NotFound` if there is no such
    /// file, `InvalidInput` if `offset` is not inside its current content.
    pub fn corrupt(&self, path: &Path, offset: u64, xor_mask: u8) -> io::Result<()> {
        let path = normalize(path);
        let mut state = self.state();
        let id = state.resolve(&path)?;
        let inode = state.inode_mut(id)?;
        let index = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(byte) = inode.current.get_mut(index) else {
            return Err(invalid(format!(
                "{}: offset {offset} is past the end ({} bytes)",
                path.display(),
                inode.current.len()
            )));
        };
        *byte ^= xor_mask;
        if let Some(byte) = inode.durable.get_mut(index) {
            *byte ^= xor_mask;
        }
        Ok(())
    }

    /// Zeroes `range` of the file at `path` (found as for [`SimStorage::corrupt`]) in both
    /// its current and durable images, each cut to its own length. Pending writes are not
    /// changed. `NotFound` if there is no such file.
    pub fn zero_range(&self, path: &Path, range: Range<u64>) -> io::Result<()> {
        let path = normalize(path);
        let mut state = self.state();
        let id = state.resolve(&path)?;
        let inode = state.inode_mut(id)?;
        for image in [&mut inode.current, &mut inode.durable] {
            let len = image.len() as u64;
            let start = usize::try_from(range.start.min(len)).unwrap_or(usize::MAX);
            let end = usize::try_from(range.end.min(len)).unwrap_or(usize::MAX);
            if let Some(target) = image.get_mut(start..end) {
                target.fill(0);
            }
        }
        Ok(())
    }

    /// Sets the length of the file at `path` (found as for [`SimStorage::corrupt`]) to
    /// `len` in both images, cutting or extending with zeros, and discards its pending
    /// changes. `NotFound` if there is no such file, `InvalidInput` past 1 GiB.
    pub fn truncate_file(&self, path: &Path, len: u64) -> io::Result<()> {
        let len = checked_size(len, "file length")?;
        let path = normalize(path);
        let mut state = self.state();
        let id = state.resolve(&path)?;
        let inode = state.inode_mut(id)?;
        inode.current.resize(len, 0);
        inode.durable.resize(len, 0);
        inode.pending.clear();
        Ok(())
    }

    /// Removes the file at `path` from both the current and the durable directory, and any
    /// pending directory operation naming it. Open handles keep working on the file.
    /// `NotFound` if neither directory has it.
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = normalize(path);
        let mut state = self.state();
        state.resolve(&path)?;
        state.current.remove(&path);
        state.durable.remove(&path);
        state.drop_dir_ops_naming(&path);
        state.collect_garbage();
        Ok(())
    }

    /// Moves the file at `from` (found as for [`SimStorage::corrupt`]) to `to` in both the
    /// current and the durable directory, replacing any file at `to`, and drops pending
    /// directory operations naming either path. Records the parent directories of `to`.
    /// `NotFound` if there is no file at `from`.
    pub fn rename_file(&self, from: &Path, to: &Path) -> io::Result<()> {
        let from = normalize(from);
        let to = file_path(to)?;
        let mut state = self.state();
        let id = state.resolve(&from)?;
        if from == to {
            return Ok(());
        }
        state.add_dirs(parent_of(&to))?;
        state.current.remove(&from);
        state.durable.remove(&from);
        state.current.insert(to.clone(), id);
        state.durable.insert(to.clone(), id);
        state.drop_dir_ops_naming(&from);
        state.drop_dir_ops_naming(&to);
        state.collect_garbage();
        Ok(())
    }

    /// The names of the files directly inside `dir` in the current directory, sorted
    /// (empty if there are none or `dir` does not exist).
    pub fn file_names(&self, dir: &Path) -> Vec<String> {
        let dir = normalize(dir);
        let state = self.state();
        let mut names: Vec<String> = state
            .current
            .keys()
            .filter(|path| parent_of(path) == dir)
            .filter_map(|path| path.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    /// The sum of the current lengths of the files in the current directory and of removed
    /// files still open (the total [`SimStorage::set_space_limit`] limits).
    pub fn total_bytes(&self) -> u64 {
        self.state().live_bytes()
    }
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // try_lock: formatting must not deadlock if the state is locked higher up the stack.
        match self.shared.try_lock() {
            Ok(state) => f
                .debug_struct("SimStorage")
                .field("seed", &state.seed)
                .field("epoch", &state.epoch)
                .field("files", &state.current.len())
                .field("pending_dir_ops", &state.dir_ops.len())
                .field("op_count", &state.op_count)
                .finish(),
            Err(_) => f.debug_struct("SimStorage").finish_non_exhaustive(),
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = normalize(dir);
        let mut state = self.state();
        state.count_call()?;
        state.add_dirs(&dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = normalize(dir);
        let mut state = self.state();
        state.count_call()?;
        if !state.dir_exists(&dir) {
            return Err(not_found(&dir));
        }
        Ok(state
            .current
            .keys()
            .filter(|path| parent_of(path) == dir)
            .filter_map(|path| path.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state();
        state.count_call()?;
        let path = file_path(path)?;
        state.check_parent(&path)?;
        if state.dirs.contains(&path) {
            let kind = match mode {
                OpenMode::CreateNew => io::ErrorKind::AlreadyExists,
                OpenMode::Read | OpenMode::ReadWrite => io::ErrorKind::IsADirectory,
            };
            return Err(io::Error::new(
                kind,
                format!("{}: is a directory", path.display()),
            ));
        }
        let id = match mode {
            OpenMode::Read | OpenMode::ReadWrite => {
                *state.current.get(&path).ok_or_else(|| not_found(&path))?
            }
            OpenMode::CreateNew => {
                if state.current.contains_key(&path) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{}: file exists (simulated storage)", path.display()),
                    ));
                }
                let id = state.new_inode();
                state.current.insert(path.clone(), id);
                state.dir_ops.push(DirOp::Create {
                    path: path.clone(),
                    inode: id,
                });
                id
            }
        };
        let inode = state.inode_mut(id)?;
        inode.open_handles = inode.open_handles.saturating_add(1);
        Ok(Arc::new(SimFile {
            shared: Arc::clone(&self.shared),
            inode: id,
            epoch: state.epoch,
            writable: mode != OpenMode::Read,
            path,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.count_call()?;
        let from = file_path(from)?;
        let to = file_path(to)?;
        let id = *state.current.get(&from).ok_or_else(|| not_found(&from))?;
        state.check_parent(&to)?;
        if state.dirs.contains(&to) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: is a directory", to.display()),
            ));
        }
        if from == to {
            return Ok(());
        }
        state.current.remove(&from);
        state.current.insert(to.clone(), id);
        state.dir_ops.push(DirOp::Rename { from, to });
        state.collect_garbage();
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.count_call()?;
        let path = file_path(path)?;
        if state.current.remove(&path).is_none() {
            return Err(not_found(&path));
        }
        state.dir_ops.push(DirOp::Remove { path });
        state.collect_garbage();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = normalize(dir);
        let mut state = self.state();
        state.count_call()?;
        if !state.dir_exists(&dir) {
            return Err(not_found(&dir));
        }
        let (synced, still_pending): (Vec<DirOp>, Vec<DirOp>) = std::mem::take(&mut state.dir_ops)
            .into_iter()
            .partition(|op| op.is_in_dir(&dir));
        state.dir_ops = still_pending;
        for op in synced {
            op.apply(&mut state.durable);
        }
        state.collect_garbage();
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        let dir = normalize(dir);
        let mut state = self.state();
        state.count_call()?;
        if !state.dir_exists(&dir) {
            return Err(not_found(&dir));
        }
        if state.locks.contains_key(&dir) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{}: already locked (simulated storage)", dir.display()),
            ));
        }
        let id = state.next_lock;
        state.next_lock = state.next_lock.saturating_add(1);
        state.locks.insert(dir.clone(), id);
        Ok(Box::new(SimDirLock {
            shared: Arc::clone(&self.shared),
            dir,
            id,
        }))
    }
}

/// A handle on one inode, valid in the epoch it was opened in.
struct SimFile {
    shared: Arc<Mutex<State>>,
    inode: u64,
    epoch: u64,
    writable: bool,
    /// The path it was opened as, for messages.
    path: PathBuf,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("inode", &self.inode)
            .field("epoch", &self.epoch)
            .field("writable", &self.writable)
            .finish()
    }
}

impl SimFile {
    /// Locks the state, counts the call, and fails it at the crash point or if stale.
    fn enter(&self) -> io::Result<MutexGuard<'_, State>> {
        let mut state = lock_state(&self.shared);
        state.count_call()?;
        if state.epoch != self.epoch {
            return Err(io::Error::other(format!(
                "{}: stale handle after simulated crash (opened in epoch {}, now {})",
                self.path.display(),
                self.epoch,
                state.epoch
            )));
        }
        Ok(state)
    }

    /// `write_all_at` with the state already locked and the call counted.
    fn write_locked(&self, state: &mut State, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| invalid(format!("write at offset {offset} overflows")))?;
        let end = checked_size(end, "write end offset")?;
        let start = end - buf.len();
        if buf.is_empty() {
            // pwrite(2) of nothing changes nothing, not even the length.
            return Ok(());
        }
        let len = state.inode_mut(self.inode)?.current.len();
        state.check_space(end.saturating_sub(len))?;
        let inode = state.inode_mut(self.inode)?;
        write_into(&mut inode.current, start, buf);
        inode.pending.push(PendingOp::Write {
            offset: start,
            data: buf.to_vec(),
        });
        Ok(())
    }

    /// Locks the state for a hint: not counted as a call (see `crash_after_ops`), but a dead
    /// process or a stale handle cannot hint either.
    fn hint(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = lock_state(&self.shared);
        if state.crash_at.is_some_and(|at| state.op_count >= at) {
            return Err(io::Error::other("simulated crash point"));
        }
        if state.epoch != self.epoch {
            return Err(io::Error::other(format!(
                "{}: stale handle after simulated crash",
                self.path.display()
            )));
        }
        Ok(state)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: opened read-only", self.path.display()),
            ))
        }
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut state = self.enter()?;
        let len = state.inode_mut(self.inode)?.current.len();
        let start = match usize::try_from(offset) {
            Ok(start) if start < len => start,
            _ => return Ok(0),
        };
        let n = buf.len().min(len - start);
        if n > 0 && state.read_fault_hits(self.inode, offset..offset.saturating_add(n as u64)) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let inode = state.inode_mut(self.inode)?;
        let (Some(target), Some(source)) = (buf.get_mut(..n), inode.current.get(start..start + n))
        else {
            return Ok(0);
        };
        target.copy_from_slice(source);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.enter()?;
        self.check_writable()?;
        self.write_locked(&mut state, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.enter()?;
        let fail = match state.sync_fail_in {
            Some(left) if left <= 1 => {
                state.sync_fail_in = None;
                true
            }
            Some(left) => {
                state.sync_fail_in = Some(left - 1);
                false
            }
            None => false,
        };
        let inode = state.inode_mut(self.inode)?;
        if fail {
            inode.pending.clear();
            return Err(io::Error::from_raw_os_error(EIO));
        }
        flush(inode);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut state = self.enter()?;
        Ok(state.inode_mut(self.inode)?.current.len() as u64)
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        let mut state = self.enter()?;
        self.check_writable()?;
        let to = checked_size(len_bytes, "file length")?;
        let from = state.inode_mut(self.inode)?.current.len();
        state.check_space(to.saturating_sub(from))?;
        if to != from {
            let inode = state.inode_mut(self.inode)?;
            inode.current.resize(to, 0);
            inode.pending.push(PendingOp::SetLen { from, to });
        }
        Ok(())
    }

    fn advise_sequential(&self) -> io::Result<()> {
        let mut state = self.hint()?;
        state.sequential_advice = state.sequential_advice.saturating_add(1);
        Ok(())
    }

    fn prefetch(&self, _offset: u64, _len_bytes: u64) -> io::Result<()> {
        let mut state = self.hint()?;
        state.prefetches = state.prefetches.saturating_add(1);
        Ok(())
    }

    /// Reads then return the durable image with the pending changes over it: what a failed
    /// `sync_data` dropped from the pending set (Linux: pages marked clean, never written)
    /// reads as the device holds it; the length stays (the inode's, in memory).
    fn drop_cache(&self) -> io::Result<()> {
        let mut state = self.hint()?;
        let inode = state.inode_mut(self.inode)?;
        let mut device = inode.durable.clone();
        overlay_pending(inode, &mut device);
        inode.current = device;
        Ok(())
    }
    fn write_zeroes(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        let mut state = self.enter()?;
        self.check_writable()?;
        if !state.write_zeroes_supported {
            return Err(unsupported("FALLOC_FL_WRITE_ZEROES"));
        }
        let len = checked_size(len_bytes, "write_zeroes length")?;
        self.write_locked(&mut state, &vec![0u8; len], offset)
    }

    fn allocate(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        let mut state = self.enter()?;
        self.check_writable()?;
        if !state.allocate_supported {
            return Err(unsupported("fallocate"));
        }
        let end = offset
            .checked_add(len_bytes)
            .ok_or_else(|| invalid(format!("allocate at offset {offset} overflows")))?;
        let to = checked_size(end, "allocate end offset")?;
        let from = state.inode_mut(self.inode)?.current.len();
        if to > from {
            // Only the growth shows: reserving blocks under existing bytes changes no content.
            state.check_space(to - from)?;
            let inode = state.inode_mut(self.inode)?;
            inode.current.resize(to, 0);
            inode.pending.push(PendingOp::SetLen { from, to });
        }
        Ok(())
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut state = lock_state(&self.shared);
        if state.epoch == self.epoch {
            if let Some(inode) = state.inodes.get_mut(&self.inode) {
                inode.open_handles = inode.open_handles.saturating_sub(1);
            }
            state.collect_garbage();
        }
    }
}

/// A held [`Storage::lock_dir`] lock; released on drop unless a crash released it first.
struct SimDirLock {
    shared: Arc<Mutex<State>>,
    dir: PathBuf,
    id: u64,
}

impl fmt::Debug for SimDirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDirLock")
            .field("dir", &self.dir)
            .field("id", &self.id)
            .finish()
    }
}

impl DirLock for SimDirLock {}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        let mut state = lock_state(&self.shared);
        if state.locks.get(&self.dir) == Some(&self.id) {
            state.locks.remove(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "/sim/log";

    fn path(name: &str) -> PathBuf {
        Path::new(DIR).join(name)
    }

    fn fresh(seed: u64) -> SimStorage {
        let sim = SimStorage::new(seed);
        sim.create_dir_all(Path::new(DIR)).unwrap();
        sim
    }

    fn pattern(len: usize, salt: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) | 1)
            .collect()
    }

    /// A durable file `name` holding `bytes` (data synced, entry dir-synced).
    fn durable_file(sim: &SimStorage, name: &str, bytes: &[u8]) -> Arc<dyn StorageFile> {
        let file = sim.open(&path(name), OpenMode::CreateNew).unwrap();
        file.write_all_at(bytes, 0).unwrap();
        file.sync_data().unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        file
    }

    #[test]
    fn synced_data_survives_every_damage() {
        for damage in CrashDamage::ALL {
            for seed in 0..50 {
                let sim = fresh(seed);
                let synced = pattern(1000, 7);
                let file = durable_file(&sim, "a", &synced);
                // Unsynced appends share a sector with synced bytes, plus a length change.
                file.write_all_at(&pattern(3000, 9), 1000).unwrap();
                file.set_len(5000).unwrap();
                file.write_all_at(&pattern(100, 11), 4900).unwrap();
                sim.crash(damage);
                let after = sim.read_file(&path("a")).unwrap();
                assert!(after.len() >= synced.len(), "{damage:?} seed {seed}");
                assert_eq!(
                    &after[..synced.len()],
                    &synced[..],
                    "{damage:?} seed {seed}"
                );
            }
        }
    }

    #[test]
    fn unsynced_data_never_survives_drop_all_and_always_survives_keep_all() {
        for (damage, expect_new) in [(CrashDamage::DropAll, false), (CrashDamage::KeepAll, true)] {
            let sim = fresh(1);
            let old = pattern(2000, 1);
            let file = durable_file(&sim, "a", &old);
            file.write_all_at(&pattern(700, 2), 300).unwrap();
            file.write_all_at(&pattern(900, 3), 1900).unwrap();
            file.set_len(2500).unwrap();
            let new = sim.read_file(&path("a")).unwrap();
            let fresh_file = sim.open(&path("b"), OpenMode::CreateNew).unwrap();
            fresh_file.write_all_at(b"unsynced", 0).unwrap();
            fresh_file.sync_data().unwrap();
            sim.crash(damage);
            let after = sim.read_file(&path("a")).unwrap();
            if expect_new {
                assert_eq!(after, new);
                assert_eq!(sim.read_file(&path("b")).unwrap(), b"unsynced");
            } else {
                assert_eq!(after, old);
                assert_eq!(sim.read_file(&path("b")), None, "create was not dir-synced");
            }
        }
    }

    #[test]
    fn random_subset_keeps_each_sector_old_or_new() {
        for seed in 0..30 {
            let sim = fresh(seed);
            let old = pattern(8 * SECTOR_BYTES, 1);
            let file = durable_file(&sim, "a", &old);
            let new = pattern(8 * SECTOR_BYTES, 2);
            file.write_all_at(&new, 0).unwrap();
            sim.crash(CrashDamage::RandomSubset);
            let after = sim.read_file(&path("a")).unwrap();
            assert_eq!(after.len(), old.len());
            for ((a, o), n) in after
                .chunks(SECTOR_BYTES)
                .zip(old.chunks(SECTOR_BYTES))
                .zip(new.chunks(SECTOR_BYTES))
            {
                assert!(a == o || a == n, "seed {seed}: sector is a mix");
            }
        }
    }

    #[test]
    fn torn_prefix_keeps_a_prefix_of_the_writes() {
        let records: Vec<Vec<u8>> = (0..6).map(|i| pattern(700, i as u8 + 1)).collect();
        let stream: Vec<u8> = records.concat();
        let mut saw_partial = false;
        for seed in 0..200 {
            let sim = fresh(seed);
            let file = durable_file(&sim, "a", &[]);
            let mut offset = 0u64;
            for record in &records {
                file.write_all_at(record, offset).unwrap();
                offset += record.len() as u64;
            }
            sim.crash(CrashDamage::TornPrefix);
            let after = sim.read_file(&path("a")).unwrap();
            assert_eq!(
                &after[..],
                &stream[..after.len()],
                "seed {seed}: not a prefix"
            );
            saw_partial |= !after.is_empty() && after.len() < stream.len();
        }
        assert!(saw_partial);
    }

    #[test]
    fn rename_needs_sync_dir() {
        let sim = fresh(3);
        durable_file(&sim, "tmp", b"new content");
        sim.rename(&path("tmp"), &path("final")).unwrap();
        assert_eq!(sim.file_names(Path::new(DIR)), vec!["final".to_string()]);
        sim.crash(CrashDamage::DropAll);
        assert_eq!(sim.file_names(Path::new(DIR)), vec!["tmp".to_string()]);

        sim.rename(&path("tmp"), &path("final")).unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        sim.crash(CrashDamage::DropAll);
        assert_eq!(sim.file_names(Path::new(DIR)), vec!["final".to_string()]);
        assert_eq!(sim.read_file(&path("final")).unwrap(), b"new content");
    }

    #[test]
    fn sync_dir_only_covers_its_own_directory() {
        let sim = fresh(3);
        sim.create_dir_all(Path::new("/other")).unwrap();
        sim.open(&path("a"), OpenMode::CreateNew).unwrap();
        sim.open(Path::new("/other/b"), OpenMode::CreateNew)
            .unwrap();
        sim.sync_dir(Path::new("/other")).unwrap();
        sim.crash(CrashDamage::DropAll);
        assert!(sim.file_names(Path::new(DIR)).is_empty());
        assert_eq!(sim.file_names(Path::new("/other")), vec!["b".to_string()]);
    }

    #[test]
    fn unsynced_remove_can_come_back() {
        let sim = fresh(4);
        durable_file(&sim, "a", b"old");
        sim.remove(&path("a")).unwrap();
        assert_eq!(sim.read_file(&path("a")), None);
        sim.crash(CrashDamage::DropAll);
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"old");
        sim.remove(&path("a")).unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        sim.crash(CrashDamage::DropAll);
        assert_eq!(sim.read_file(&path("a")), None);
    }

    #[test]
    fn crash_point_stops_calls() {
        let sim = fresh(5);
        let file = durable_file(&sim, "a", b"abc");
        let before = sim.op_count();
        sim.crash_after_ops(Some(3));
        file.write_all_at(b"x", 0).unwrap();
        assert_eq!(file.len().unwrap(), 3);
        let err = file.write_all_at(b"y", 1).unwrap_err();
        assert!(err.to_string().contains("simulated crash point"));
        assert!(sim.open(&path("b"), OpenMode::CreateNew).is_err());
        assert!(file.sync_data().is_err());
        assert_eq!(sim.op_count(), before + 5);
        assert_eq!(
            sim.read_file(&path("a")).unwrap(),
            b"xbc",
            "failed calls took no effect"
        );
        assert_eq!(sim.read_file(&path("b")), None);
        sim.crash(CrashDamage::KeepAll);
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"xbc");
        let file = sim.open(&path("a"), OpenMode::ReadWrite).unwrap();
        file.write_all_at(b"z", 0).unwrap();

        sim.crash_after_ops(Some(0));
        assert!(sim.list(Path::new(DIR)).is_err());
        sim.crash_after_ops(None);
        assert!(sim.list(Path::new(DIR)).is_ok());
    }

    #[test]
    fn hints_are_counted_and_change_nothing() {
        let sim = fresh(16);
        let file = durable_file(&sim, "a", b"abc");
        file.write_all_at(b"d", 3).unwrap();
        let ops = sim.op_count();
        file.advise_sequential().unwrap();
        file.advise_sequential().unwrap();
        file.prefetch(0, 1 << 20).unwrap();
        assert_eq!(sim.hint_counts(), (2, 1));
        assert_eq!(sim.op_count(), ops, "a hint is not a crash point");
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"abcd");
        sim.crash(CrashDamage::DropAll);
        assert_eq!(
            sim.read_file(&path("a")).unwrap(),
            b"abc",
            "the hint synced nothing"
        );
        assert!(file.advise_sequential().is_err(), "stale handle");
        assert!(file.prefetch(0, 4).is_err(), "stale handle");
        let file = sim.open(&path("a"), OpenMode::Read).unwrap();
        sim.crash_after_ops(Some(1));
        assert!(file.len().is_err());
        assert!(file.advise_sequential().is_err(), "past the crash point");
        assert!(file.prefetch(0, 4).is_err(), "past the crash point");
        assert_eq!(sim.hint_counts(), (2, 1));
    }

    #[test]
    fn allocate_is_a_length_change_until_synced() {
        let sim = fresh(17);
        let file = durable_file(&sim, "a", b"abcdef");
        // Inside the file: nothing changes, nothing is pending.
        file.allocate(2, 3).unwrap();
        sim.crash(CrashDamage::KeepAll);
        let file = sim.open(&path("a"), OpenMode::ReadWrite).unwrap();
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"abcdef");
        // Past the end: zeros, lost at a crash until synced.
        file.allocate(4, 8).unwrap();
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"abcdef\0\0\0\0\0\0");
        sim.crash(CrashDamage::DropAll);
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"abcdef");
        let file = sim.open(&path("a"), OpenMode::ReadWrite).unwrap();
        file.allocate(0, 12).unwrap();
        file.sync_data().unwrap();
        sim.crash(CrashDamage::DropAll);
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"abcdef\0\0\0\0\0\0");
        // A full disk refuses the growth and changes nothing.
        let file = sim.open(&path("a"), OpenMode::ReadWrite).unwrap();
        sim.set_space_limit(Some(20));
        let err = file.allocate(0, 64).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ENOSPC));
        assert_eq!(file.len().unwrap(), 12);
        sim.set_space_limit(None);
        assert!(file.allocate(u64::MAX, 2).is_err(), "overflow");
        let reader = sim.open(&path("a"), OpenMode::Read).unwrap();
        assert!(reader.allocate(0, 64).is_err(), "read-only handle");
    }

    #[test]
    fn unsupported_fallocate_modes_change_nothing_but_count() {
        let sim = fresh(18);
        let file = durable_file(&sim, "a", b"abc");
        let ops = sim.op_count();
        let err = file.write_zeroes(0, 8).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "the default");
        sim.set_fallocate_support(false, false);
        let err = file.allocate(0, 8).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert_eq!(sim.op_count(), ops + 2, "each refused call still counts");
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"abc");
        sim.crash(CrashDamage::KeepAll);
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"abc");
    }

    #[test]
    fn write_zeroes_is_a_write_of_zeros() {
        let sim = fresh(19);
        sim.set_fallocate_support(true, true);
        let file = durable_file(&sim, "a", &[7u8; 1024]);
        file.write_zeroes(512, 1024).unwrap();
        let mut want = vec![7u8; 512];
        want.extend_from_slice(&[0u8; 1024]);
        assert_eq!(sim.read_file(&path("a")).unwrap(), want);
        // Unsynced, it meets a write's fate: dropped, the old bytes and length come back.
        sim.crash(CrashDamage::DropAll);
        assert_eq!(sim.read_file(&path("a")).unwrap(), vec![7u8; 1024]);
        let file = sim.open(&path("a"), OpenMode::ReadWrite).unwrap();
        file.write_zeroes(512, 1024).unwrap();
        file.sync_data().unwrap();
        sim.crash(CrashDamage::RandomGarbled);
        assert_eq!(sim.read_file(&path("a")).unwrap(), want);
    }

    #[test]
    fn stale_handles_fail_after_crash() {
        let sim = fresh(6);
        let file = durable_file(&sim, "a", b"abc");
        sim.crash(CrashDamage::KeepAll);
        let mut buf = [0u8; 3];
        let errors = [
            file.read_at(&mut buf, 0).unwrap_err(),
            file.write_all_at(b"x", 0).unwrap_err(),
            file.sync_data().unwrap_err(),
            file.len().unwrap_err(),
            file.set_len(0).unwrap_err(),
        ];
        for err in errors {
            assert!(
                err.to_string()
                    .contains("stale handle after simulated crash"),
                "{err}"
            );
        }
        let file = sim.open(&path("a"), OpenMode::Read).unwrap();
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 3);
        assert_eq!(&buf, b"abc");
    }

    #[test]
    fn removed_file_stays_usable_through_open_handle() {
        let sim = fresh(7);
        let file = durable_file(&sim, "a", b"abc");
        sim.remove(&path("a")).unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        file.write_all_at(b"d", 3).unwrap();
        file.sync_data().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 4);
        assert_eq!(&buf[..4], b"abcd");
        assert_eq!(sim.total_bytes(), 4);
        drop(file);
        assert_eq!(sim.total_bytes(), 0);
        assert!(sim.open(&path("a"), OpenMode::Read).is_err());
    }

    #[test]
    fn fail_sync_after_drops_pending_data() {
        let sim = fresh(8);
        let file = durable_file(&sim, "a", b"old!");
        sim.fail_sync_after(2);
        file.write_all_at(b"AB", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b"CD", 2).unwrap();
        let err = file.sync_data().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(5));
        assert_eq!(
            sim.read_file(&path("a")).unwrap(),
            b"ABCD",
            "reads still see it"
        );
        file.sync_data().unwrap();
        sim.crash(CrashDamage::KeepAll);
        assert_eq!(
            sim.read_file(&path("a")).unwrap(),
            b"ABd!",
            "only the synced write survived"
        );
    }

    #[test]
    fn drop_cache_shows_the_device_where_a_sync_failed_and_keeps_pending_writes() {
        let sim = fresh(11);
        let file = durable_file(&sim, "a", b"old!old!");
        sim.fail_sync_after(1);
        file.write_all_at(b"XY", 2).unwrap();
        file.write_all_at(b"tail", 8).unwrap();
        assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(5));
        // Written after the failure, not synced: still to be written back.
        file.write_all_at(b"P", 0).unwrap();
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"PlXYold!tail");
        file.drop_cache().unwrap();
        let mut got = vec![0u8; 12];
        assert_eq!(file.read_at(&mut got, 0).unwrap(), 12);
        assert_eq!(
            got, b"Pld!old!\0\0\0\0",
            "the failed writes read as the device (old bytes, zeros past its end); the \
             pending one as written; the length stays"
        );
        // Nothing durable changed: a crash that keeps everything pending shows the same.
        file.sync_data().unwrap();
        sim.crash(CrashDamage::DropAll);
        assert_eq!(sim.read_file(&path("a")).unwrap(), b"Pld!old!\0\0\0\0");
    }

    #[test]
    fn enospc_changes_nothing() {
        let sim = fresh(9);
        let file = durable_file(&sim, "a", &[1; 100]);
        sim.set_space_limit(Some(150));
        let err = file.write_all_at(&[2; 60], 95).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        let err = file.set_len(151).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert_eq!(sim.read_file(&path("a")).unwrap(), vec![1; 100]);
        file.write_all_at(&[3; 10], 0).unwrap();
        file.write_all_at(&[4; 50], 100).unwrap();
        assert_eq!(sim.total_bytes(), 150);
        sim.set_space_limit(None);
        file.write_all_at(&[5; 50], 150).unwrap();
        // The failed calls left nothing pending: a full keep shows only the good writes.
        sim.crash(CrashDamage::KeepAll);
        let after = sim.read_file(&path("a")).unwrap();
        assert_eq!(after.len(), 200);
        assert_eq!(&after[..10], &[3; 10]);
        assert_eq!(&after[10..100], &[1; 90][..]);
    }

    #[test]
    fn read_faults_fail_overlapping_reads() {
        let sim = fresh(10);
        let file = durable_file(&sim, "a", &[7; 100]);
        sim.fail_reads(&path("a"), 40..50);
        let mut buf = [0u8; 10];
        assert_eq!(file.read_at(&mut buf, 30).unwrap(), 10);
        assert_eq!(
            file.read_at(&mut buf, 35).unwrap_err().raw_os_error(),
            Some(5)
        );
        assert_eq!(file.read_at(&mut buf, 50).unwrap(), 10);
        sim.rename(&path("a"), &path("b")).unwrap();
        assert!(
            file.read_at(&mut buf, 45).is_err(),
            "fault follows the file"
        );
        sim.clear_read_faults();
        assert_eq!(file.read_at(&mut buf, 45).unwrap(), 10);
    }

    #[test]
    fn same_seed_same_crash() {
        let run = |seed: u64| {
            let sim = fresh(seed);
            let file = durable_file(&sim, "a", &pattern(4096, 1));
            for i in 0..20u64 {
                file.write_all_at(&pattern(300, i as u8), i * 300).unwrap();
            }
            file.set_len(9000).unwrap();
            let other = sim.open(&path("b"), OpenMode::CreateNew).unwrap();
            other.write_all_at(&pattern(5000, 3), 0).unwrap();
            sim.rename(&path("a"), &path("c")).unwrap();
            sim.crash(CrashDamage::RandomGarbled);
            let names = sim.file_names(Path::new(DIR));
            let contents: Vec<Option<Vec<u8>>> =
                names.iter().map(|n| sim.read_file(&path(n))).collect();
            (names, contents)
        };
        assert_eq!(run(42), run(42));
        assert!(
            (0..8).any(|seed| run(seed) != run(42)),
            "seeds should matter"
        );
    }

    #[test]
    fn garbled_and_zeroed_touch_only_unsynced_bytes() {
        for damage in [CrashDamage::RandomZeroed, CrashDamage::RandomGarbled] {
            let mut damaged = false;
            for seed in 0..40 {
                let sim = fresh(seed);
                let old = pattern(4 * SECTOR_BYTES, 1);
                let file = durable_file(&sim, "a", &old);
                let new = pattern(SECTOR_BYTES, 2);
                file.write_all_at(&new, 700).unwrap();
                sim.crash(damage);
                let after = sim.read_file(&path("a")).unwrap();
                assert_eq!(after.len(), old.len());
                assert_eq!(&after[..700], &old[..700]);
                assert_eq!(&after[1212..], &old[1212..]);
                let middle = &after[700..1212];
                damaged |= middle != &old[700..1212] && middle != &new[..];
            }
            assert!(damaged, "{damage:?} never damaged anything");
        }
    }

    #[test]
    fn open_errors() {
        let sim = fresh(11);
        let err = sim.open(&path("missing"), OpenMode::Read).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = sim
            .open(Path::new("/nowhere/a"), OpenMode::CreateNew)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        sim.open(&path("a"), OpenMode::CreateNew).unwrap();
        let err = sim.open(&path("a"), OpenMode::CreateNew).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let err = sim.rename(&path("missing"), &path("b")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = sim.remove(&path("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let read_only = sim.open(&path("./a"), OpenMode::Read).unwrap();
        assert!(read_only.write_all_at(b"x", 0).is_err());
        let mut names = sim.list(Path::new("/sim/log/")).unwrap();
        names.sort();
        assert_eq!(names, vec!["a".to_string()]);
        assert_eq!(
            sim.list(Path::new("/nowhere")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn huge_offsets_are_rejected() {
        let sim = fresh(12);
        let file = sim.open(&path("a"), OpenMode::CreateNew).unwrap();
        for offset in [1u64 << 30, u64::MAX - 1, u64::MAX] {
            let err = file.write_all_at(b"xy", offset).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert_eq!(
            file.set_len(u64::MAX).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let mut buf = [0u8; 4];
        assert_eq!(file.read_at(&mut buf, u64::MAX).unwrap(), 0);
        assert_eq!(file.len().unwrap(), 0);
    }

    #[test]
    fn dir_locks() {
        let sim = fresh(13);
        let lock = sim.lock_dir(Path::new(DIR)).unwrap();
        assert_eq!(
            sim.lock_dir(Path::new(DIR)).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(lock);
        let lock = sim.lock_dir(Path::new(DIR)).unwrap();
        sim.crash(CrashDamage::DropAll);
        let again = sim.lock_dir(Path::new(DIR)).unwrap();
        drop(lock);
        assert_eq!(
            sim.lock_dir(Path::new(DIR)).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(again);
    }

    #[test]
    fn helpers_change_both_images() {
        let sim = SimStorage::new(14);
        sim.write_file(&path("a"), &[0xff; 100]).unwrap();
        sim.corrupt(&path("a"), 3, 0x0f).unwrap();
        sim.zero_range(&path("a"), 10..20).unwrap();
        sim.truncate_file(&path("a"), 50).unwrap();
        sim.rename_file(&path("a"), &path("b")).unwrap();
        sim.crash(CrashDamage::DropAll);
        let after = sim.read_file(&path("b")).unwrap();
        assert_eq!(after.len(), 50);
        assert_eq!(after[3], 0xf0);
        assert!(after[10..20].iter().all(|&b| b == 0));
        assert_eq!(sim.file_names(Path::new(DIR)), vec!["b".to_string()]);
        sim.remove_file(&path("b")).unwrap();
        sim.crash(CrashDamage::KeepAll);
        assert_eq!(sim.read_file(&path("b")), None);
        assert_eq!(
            sim.corrupt(&path("b"), 0, 1).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(sim.corrupt(Path::new("/sim/log/none"), 0, 1).is_err());
        assert!(format!("{sim:?}").contains("SimStorage"));
    }

    #[test]
    fn sync_cost_follows_pending_bytes() {
        // A large synced file and many tiny synced appends: must stay fast.
        let sim = fresh(15);
        let file = durable_file(&sim, "a", &vec![1; 8 << 20]);
        let start = std::time::Instant::now();
        for i in 0..2000u64 {
            file.write_all_at(&[2; 16], (8 << 20) + i * 16).unwrap();
            file.sync_data().unwrap();
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        sim.crash(CrashDamage::DropAll);
        assert_eq!(
            sim.read_file(&path("a")).unwrap().len(),
            (8 << 20) + 2000 * 16
        );
    }
}
