//! Helpers around walden-log's [`SimStorage`] that the tests of several layers need: damage
//! patterns by name, and copies of a crashed file system, so one crash state can be
//! recovered many times (for example with a crash inside each recovery).

use rand::Rng;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use walden_log::storage::{CrashDamage, SimStorage, Storage};

/// `sim` as the shared storage handle `Wal::open_with` and `Store::open_with` take.
pub fn shared(sim: &SimStorage) -> Arc<dyn Storage> {
    Arc::new(sim.clone())
}

/// A short name for a damage pattern, as failure messages print it and as
/// `WALDEN_CRASH_DAMAGE` names it.
pub fn damage_name(damage: CrashDamage) -> &'static str {
    match damage {
        CrashDamage::DropAll => "DropAll",
        CrashDamage::KeepAll => "KeepAll",
        CrashDamage::RandomSubset => "RandomSubset",
        CrashDamage::RandomZeroed => "RandomZeroed",
        CrashDamage::RandomGarbled => "RandomGarbled",
        CrashDamage::TornPrefix => "TornPrefix",
    }
}

/// A damage pattern picked uniformly by `rng`.
pub fn random_damage(rng: &mut impl Rng) -> CrashDamage {
    let all = CrashDamage::ALL;
    all[rng.gen_range(0..all.len())]
}

/// Every file directly in some directories, by path, with its content. Take it right after
/// [`SimStorage::crash`], when nothing is pending, so the content is exactly the durable
/// state.
pub type Snapshot = Vec<(PathBuf, Vec<u8>)>;

/// The files directly in each of `dirs` on `sim` (see [`Snapshot`]), directory by
/// directory.
pub fn snapshot(sim: &SimStorage, dirs: &[&Path]) -> Snapshot {
    let mut out = Vec::new();
    for dir in dirs {
        for name in sim.file_names(dir) {
            if let Some(bytes) = sim.read_file(&dir.join(&name)) {
                out.push((dir.join(name), bytes));
            }
        }
    }
    out
}

/// A new [`SimStorage`] seeded with `seed` that has `dirs` and holds exactly `files`, all
/// durable.
pub fn restore(seed: u64, dirs: &[&Path], files: &Snapshot) -> SimStorage {
    let sim = SimStorage::new(seed);
    for dir in dirs {
        sim.create_dir_all(dir).expect("simulated create_dir_all");
    }
    for (path, bytes) in files {
        sim.write_file(path, bytes).expect("simulated write_file");
    }
    sim
}

/// The names and lengths of the files in `dirs`, for failure messages.
pub fn describe_files(sim: &SimStorage, dirs: &[&Path]) -> String {
    let mut out = String::new();
    for dir in dirs {
        for name in sim.file_names(dir) {
            let len = sim.read_file(&dir.join(&name)).map_or(0, |b| b.len());
            let _ = write!(out, "{name} ({len} bytes) ");
        }
    }
    if out.is_empty() {
        out.push_str("(no files)");
    }
    out
}
