//! Real-kernel crash tests: the durability contract checked against Linux itself, not a
//! simulation (docs/DURABILITY.md; ENGINEERING.md, "Real-kernel checks").
//!
//! - `power_cut_keeps_every_acknowledged_record`: a writer process (examples/ack_writer.rs)
//!   appends durable records from several threads into a loop-mounted ext4 image and prints
//!   every acknowledgement. At a random moment `xfs_io -x -c shutdown` makes ext4 drop
//!   everything not yet on the device, like a power cut; the writer is SIGKILLed, the image
//!   unmounted, detached and mounted again (journal replay), and the recovered log must hold
//!   every acknowledged record with its exact bytes, as a dense prefix from LSN 1 in which
//!   every record is one the writer really appended.
//! - `enospc_is_a_typed_error_and_loses_nothing`: a log on a nearly full tmpfs and on a
//!   nearly full ext4 image (segments prepared inline and in the background) is appended to
//!   durably until the file system is full. The failure must be `Error::NoSpace`, no later
//!   append may be acknowledged, and the log must hold exactly the acknowledged records, on
//!   the same handle, reopened while still full, and reopened after an unrelated filler file
//!   is deleted, after which appends go on.
//!
//! They need root, loop devices, mkfs.ext4, losetup, mount and xfs_io (Debian's xfsprogs,
//! which .ci/run installs). Where any is missing they FAIL with a banner saying why, unless
//! `WALDEN_SKIP_REAL_KERNEL=1` is set, which skips them (still with the banner). They never
//! pass silently (walden_testkit::loopmount). `WALDEN_REAL_KERNEL_SEED=N` replays the
//! random choices of a run.
#![allow(clippy::unwrap_used)]

#[path = "../examples/ack_writer.rs"]
#[allow(dead_code)]
mod ack_writer;

use ack_writer::payload::{self, Name};
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use walden_log::storage::StdStorage;
use walden_log::{Durability, Error, Lsn, Options, Wal};
use walden_testkit::loopmount::{environment_or_skip, unavailable, Mount, Unavailable};
use walden_testkit::seeds::seed_or_random;

// ---------------------------------------------------------------------------------------
// Environment: the tests run one at a time, and their random choices replay.
// ---------------------------------------------------------------------------------------

/// The tests here run one at a time. Besides sharing loop devices and the disk, one spawns
/// processes (the writer, mount, xfs_io) while the other reopens logs: a child between
/// fork and exec still holds the parent's descriptors, and so the log's `flock`, and the
/// reopen would fail with `Error::Locked` for a few microseconds.
static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The test's random source, seeded from `WALDEN_REAL_KERNEL_SEED` or at random; the seed
/// is printed so a run can be replayed.
fn rng_for(test: &str) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed_or_random("WALDEN_REAL_KERNEL_SEED", test))
}

// ---------------------------------------------------------------------------------------
// Guards: whatever happens, the work directory of a failed test is kept (and mounts are
// undone: walden_testkit::loopmount::Mount).
// ---------------------------------------------------------------------------------------

/// A temporary directory that is kept (and named) when the test fails, for post-mortem.
struct Workdir(Option<tempfile::TempDir>);

impl Workdir {
    fn new() -> Self {
        Workdir(Some(
            tempfile::Builder::new()
                .prefix("walden-real-kernel-")
                .tempdir()
                .unwrap(),
        ))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!(
                    "real_kernel: keeping {} for post-mortem (test failed)",
                    dir.path().display()
                );
                let _ = dir.keep();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The writer process.
// ---------------------------------------------------------------------------------------

/// One `ack` line: the writer's word that `Wal::append` returned `Ok(lsn)` for `name`.
#[derive(Debug, Clone, Copy)]
struct Ack {
    lsn: u64,
    name: Name,
    digest: u64,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut f = line.strip_prefix("ack ")?.split(' ');
    let mut next = || f.next();
    let lsn = next()?.parse().ok()?;
    let run = next()?.parse().ok()?;
    let thread = next()?.parse().ok()?;
    let seq = next()?.parse().ok()?;
    let len = next()?.parse().ok()?;
    let digest = u64::from_str_radix(next()?, 16).ok()?;
    Some(Ack {
        lsn,
        name: Name {
            run,
            thread,
            seq,
            len,
        },
        digest,
    })
}

/// The newest modification time of the files the writer is built from (this crate's
/// sources, the example, the manifest).
fn newest_source_mtime() -> std::time::SystemTime {
    fn walk(path: &Path, newest: &mut std::time::SystemTime) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if let Ok(modified) = meta.modified() {
            *newest = (*newest).max(modified);
        }
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for part in ["src", "examples", "Cargo.toml"] {
        walk(&crate_dir.join(part), &mut newest);
    }
    newest
}

/// Finds examples/ack_writer as cargo built it for this test's profile: `cargo test` builds
/// examples into target/<profile dir>/examples/ beside target/<profile dir>/deps/, where
/// this test runs, so a plain `cargo test --workspace` (what CI runs) needs nothing more.
/// When the binary is missing or older than its sources (say, only this test target was
/// built: `cargo test --test real_kernel`), it is built here, never used stale.
fn ack_writer_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let binary = profile_dir.join("examples").join("ack_writer");
    let fresh = |binary: &Path| {
        std::fs::metadata(binary)
            .and_then(|m| m.modified())
            .is_ok_and(|built| built >= newest_source_mtime())
    };
    if fresh(&binary) {
        return binary;
    }
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "test",
        Some("release") => "bench",
        Some(other) => other,
    };
    eprintln!(
        "real_kernel: {} is missing or stale; building it (cargo build --example ack_writer \
         --profile {profile})",
        binary.display()
    );
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--example",
            "ack_writer",
            "--profile",
            profile,
        ])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(profile_dir.parent().unwrap())
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "building the ack_writer example failed ({status})"
    );
    assert!(
        fresh(&binary),
        "{} is still missing or stale after building it",
        binary.display()
    );
    binary
}

/// A running ack_writer. Dropping it SIGKILLs the process.
struct Writer {
    child: Child,
    acks: Arc<AtomicU64>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr_path: PathBuf,
}

impl Writer {
    fn spawn(binary: &Path, dir: &Path, stderr_path: &Path, args: &[String]) -> Writer {
        let stderr = std::fs::File::create(stderr_path).unwrap();
        let mut child = Command::new(binary)
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acks = Arc::new(AtomicU64::new(0));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (acks2, lines2) = (acks.clone(), lines.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ack ") {
                    acks2.fetch_add(1, Ordering::Relaxed);
                }
                lines2.lock().unwrap().push(line);
            }
        });
        Writer {
            child,
            acks,
            lines,
            reader: Some(reader),
            stderr_path: stderr_path.to_path_buf(),
        }
    }

    fn acks(&self) -> u64 {
        self.acks.load(Ordering::Relaxed)
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGKILLs the writer and returns everything it printed.
    fn kill(mut self) -> (Vec<String>, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        (lines, stderr)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Verification.
// ---------------------------------------------------------------------------------------

/// Every record in the log from LSN 1, checked to be dense.
fn read_all(wal: &Wal) -> Result<Vec<walden_log::Record>, String> {
    let mut out = Vec::new();
    for r in wal
        .read_from(Lsn(1))
        .map_err(|e| format!("read_from(1): {e}"))?
    {
        let r = r.map_err(|e| format!("reading after LSN {}: {e}", out.len()))?;
        if r.lsn.0 != out.len() as u64 + 1 {
            return Err(format!("hole: LSN {} follows LSN {}", r.lsn, out.len()));
        }
        out.push(r);
    }
    Ok(out)
}

/// The segment that holds `lsn`, for evidence.
fn segment_of(wal: &Wal, lsn: u64) -> String {
    wal.segments()
        .iter()
        .rev()
        .find(|s| s.first_lsn.0 <= lsn)
        .map_or("no segment".into(), |s| {
            format!(
                "segment {} ({}) LSN {}..={}",
                s.id,
                s.path.display(),
                s.first_lsn,
                s.last_lsn
            )
        })
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One power-cut round.
#[derive(Debug, Clone, Copy)]
struct Round {
    name: &'static str,
    /// A new file system, or the previous round's (recovered) log continued.
    fresh_fs: bool,
    /// `shutdown -f` (journal committed first) instead of a plain shutdown.
    flush_log: bool,
    threads: u32,
    record_bytes: u32,
    segment_bytes: u64,
    /// How the writer makes new segments (`ack_writer --preallocation`).
    preallocation: &'static str,
    /// The power is cut after a random number of this run's acknowledgements in this range.
    acks_min: u64,
    acks_max: u64,
}

const ROUNDS: [Round; 4] = [
    Round {
        name: "plain shutdown, 1 MiB segments",
        fresh_fs: true,
        flush_log: false,
        threads: 4,
        record_bytes: 1024,
        segment_bytes: 1 << 20,
        preallocation: "zero-fill",
        acks_min: 3_000,
        acks_max: 8_000,
    },
    Round {
        name: "shutdown -f, continuing the recovered log",
        fresh_fs: false,
        flush_log: true,
        threads: 4,
        record_bytes: 1024,
        segment_bytes: 1 << 20,
        preallocation: "zero-fill",
        acks_min: 2_000,
        acks_max: 6_000,
    },
    Round {
        name: "plain shutdown, rotation-heavy (64 KiB segments)",
        fresh_fs: true,
        flush_log: false,
        threads: 4,
        record_bytes: 2048,
        segment_bytes: 64 << 10,
        preallocation: "zero-fill",
        acks_min: 1_000,
        acks_max: 4_000,
    },
    Round {
        name: "shutdown -f, rotating on almost every commit (16 KiB segments)",
        fresh_fs: true,
        flush_log: true,
        threads: 4,
        record_bytes: 2048,
        segment_bytes: 16 << 10,
        preallocation: "zero-fill",
        acks_min: 500,
        acks_max: 1_500,
    },
    // No round with reserved (fallocate'd) segments: with `--preallocation reserve` or
    // `adaptive`, 6 of 56 runs lost 1-3 acknowledged records, each in an unwritten extent
    // whose conversion ext4 dropped when the shutdown aborted its journal while an
    // `fdatasync` was in flight (which then returned success). The default zero-fill is
    // immune (nothing to convert); see `Preallocation` in options.rs.
];

/// What one round's verification found.
#[derive(Debug)]
struct Verified {
    /// Every record now in the log, by LSN - 1.
    names: Vec<Name>,
    segments: usize,
    damage: Option<String>,
}

/// Checks the recovered log against what was known before the round (`known`, the whole
/// log as last verified) and the acknowledgements of this run. On failure, the message
/// carries the evidence: LSNs, their segment, the recovery report and an inspection.
fn verify(
    dir: &Path,
    round: &Round,
    run: u32,
    known: &[Name],
    acks: &[Ack],
) -> Result<Verified, String> {
    let inspection = walden_log::inspect_dir(&StdStorage::new(), dir).map_or_else(
        |e| format!("inspect_dir failed: {e}"),
        |i| format!("{i:#?}"),
    );
    let wal = Wal::open(Options::new(dir).segment_bytes(round.segment_bytes)).map_err(|e| {
        format!(
            "the log does not open after the power cut: {e}\ninspection before open:\n{inspection}"
        )
    })?;
    let context = || {
        format!(
            "recovery report: {:#?}\nsegments after open: {:#?}\ninspection before open:\n{inspection}",
            wal.recovery_report(),
            wal.segments()
        )
    };
    let records = read_all(&wal).map_err(|e| format!("{e}\n{}", context()))?;
    let mut problems = Vec::new();
    let mut names = Vec::with_capacity(records.len());
    for r in &records {
        match payload::parse(&r.data) {
            Some(name) if payload::is_well_formed(&r.data) => names.push(name),
            _ => {
                problems.push(format!(
                    "LSN {} ({}) is not a payload the writer makes",
                    r.lsn,
                    segment_of(&wal, r.lsn.0)
                ));
                names.push(Name {
                    run: u32::MAX,
                    thread: u32::MAX,
                    seq: u64::MAX,
                    len: 0,
                });
            }
        }
    }
    // What was in the log before this run must be there unchanged.
    for (i, want) in known.iter().enumerate() {
        let lsn = i as u64 + 1;
        match names.get(i) {
            Some(got) if got == want => {}
            Some(got) => problems.push(format!(
                "LSN {lsn} held {want:?} before this round, now {got:?}"
            )),
            None => {
                problems.push(format!(
                    "LSN {lsn} ({want:?}) from before this round is gone"
                ));
                break;
            }
        }
    }
    // Every acknowledged record, with the writer's bytes.
    let mut missing = Vec::new();
    for ack in acks {
        let want = payload::make(ack.name);
        if payload::digest(&want) != ack.digest {
            problems.push(format!(
                "ack {ack:?}: this test regenerates other bytes than the writer (stale binary?)"
            ));
        }
        match records.get((ack.lsn as usize).wrapping_sub(1)) {
            Some(r) if r.data == want => {}
            Some(r) => problems.push(format!(
                "acknowledged LSN {} ({:?}) holds other bytes: {:?}, {}",
                ack.lsn,
                ack.name,
                payload::parse(&r.data),
                segment_of(&wal, ack.lsn)
            )),
            None => missing.push(ack.lsn),
        }
    }
    if !missing.is_empty() {
        missing.sort_unstable();
        problems.push(format!(
            "{} ACKNOWLEDGED RECORDS MISSING after recovery (log ends at LSN {}): first {:?}, last {:?}; \
             LSN {} would be in {}",
            missing.len(),
            records.len(),
            &missing[..missing.len().min(20)],
            missing.last(),
            missing[0],
            segment_of(&wal, missing[0])
        ));
    }
    // Records after the known prefix are this run's, each thread's in order from 0.
    let mut next_seq = vec![0u64; round.threads as usize];
    for (i, name) in names.iter().enumerate().skip(known.len()) {
        let lsn = i + 1;
        let expected = next_seq.get(name.thread as usize).copied();
        if name.run != run || expected != Some(name.seq) {
            problems.push(format!(
                "LSN {lsn} holds {name:?}; expected run {run}, thread {} seq {expected:?} (out of order, \
                 duplicated or foreign)",
                name.thread
            ));
            break;
        }
        next_seq[name.thread as usize] += 1;
    }
    if !problems.is_empty() {
        return Err(format!("{}\n{}", problems.join("\n"), context()));
    }
    let verified = Verified {
        names,
        segments: wal.segments().len(),
        damage: wal
            .recovery_report()
            .damage
            .as_ref()
            .map(|d| format!("{} ({})", d.location, d.reason)),
    };
    wal.close()
        .map_err(|e| format!("close after verification: {e}"))?;
    Ok(verified)
}

// ---------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------

#[test]
fn power_cut_keeps_every_acknowledged_record() {
    const TEST: &str = "power_cut_keeps_every_acknowledged_record";
    let _serial = one_at_a_time();
    let Some(tools) = environment_or_skip(TEST) else {
        return;
    };
    let started = Instant::now();
    let mut rng = rng_for(TEST);
    let binary = ack_writer_binary();
    let work = Workdir::new();
    let mnt = work.path().join("mnt");
    let mut fs: Option<Mount> = None;
    let mut known: Vec<Name> = Vec::new();
    let mut run_id = 0u32;
    for (index, round) in ROUNDS.iter().enumerate() {
        if round.fresh_fs || fs.is_none() {
            drop(fs.take());
            let image = work.path().join(format!("round{index}.img"));
            match Mount::ext4(&tools, &image, &mnt, 256 << 20) {
                Ok(m) => fs = Some(m),
                Err(why) => return unavailable(TEST, &why),
            }
            known.clear();
        }
        let m = fs.as_mut().unwrap();
        run_id += 1;
        let dir = mnt.join("wal");
        let cut_after = rng.gen_range(round.acks_min..=round.acks_max);
        let args: Vec<String> = vec![
            "--threads".into(),
            round.threads.to_string(),
            "--records".into(),
            "200000".into(),
            "--record-bytes".into(),
            round.record_bytes.to_string(),
            "--segment-bytes".into(),
            round.segment_bytes.to_string(),
            "--run".into(),
            run_id.to_string(),
            "--preallocation".into(),
            round.preallocation.into(),
        ];
        let stderr_path = work.path().join(format!("round{index}.stderr"));
        let round_started = Instant::now();
        let mut writer = Writer::spawn(&binary, &dir, &stderr_path, &args);
        let deadline = Instant::now() + Duration::from_secs(20);
        while writer.acks() < cut_after && Instant::now() < deadline {
            if let Some(status) = writer.exited() {
                let (lines, stderr) = writer.kill();
                let last = tail(&lines, 20);
                panic!("round {index}: the writer exited ({status}) before the power cut:\n{last}\n{stderr}");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let acks_at_cut = writer.acks();
        if let Err(e) = m.shutdown(round.flush_log) {
            return unavailable(
                TEST,
                &Unavailable(format!("the file system shutdown ioctl failed: {e}")),
            );
        }
        let (lines, stderr) = writer.kill();
        m.unmount_and_detach().unwrap();
        m.attach_and_mount().unwrap();
        let acks: Vec<Ack> = lines.iter().filter_map(|l| parse_ack(l)).collect();
        let errors = lines.iter().filter(|l| l.starts_with("err ")).count();
        let opened_at = lines
            .first()
            .and_then(|l| l.strip_prefix("open "))
            .and_then(|n| n.parse::<u64>().ok());
        assert_eq!(
            opened_at,
            Some(known.len() as u64 + 1),
            "round {index}: the writer should continue right after the verified log\n{}\n{stderr}",
            tail(&lines, 20)
        );
        assert!(
            acks.len() >= 500,
            "round {index}: only {} acknowledgements in 20 s; the writer is too slow for a meaningful \
             test\n{}\n{stderr}",
            acks.len(),
            tail(&lines, 20)
        );
        let verified = match verify(&dir, round, run_id, &known, &acks) {
            Ok(v) => v,
            Err(evidence) => {
                let out = work.path().join(format!("round{index}.stdout"));
                std::fs::File::create(&out)
                    .and_then(|mut f| f.write_all(lines.join("\n").as_bytes()))
                    .unwrap();
                panic!(
                    "ROUND {index} ({}) FAILED: the log broke the durability contract.\n{evidence}\n\
                     writer output ({} lines, saved in {}), last lines:\n{}\nwriter stderr:\n{stderr}",
                    round.name,
                    lines.len(),
                    out.display(),
                    tail(&lines, 30)
                );
            }
        };
        let max_ack = acks.iter().map(|a| a.lsn).max().unwrap_or(0);
        let recovered = verified.names.len();
        eprintln!(
            "{TEST}: round {index} ({}): cut after {acks_at_cut} acks ({} printed in all, {errors} `err` lines \
             after the cut); {} acknowledged records verified, {} records recovered (LSN 1..={recovered}, \
             {} from this run, {} beyond the last ack at LSN {max_ack}); {} segments; recovery cut: {}; {:.2?}",
            round.name,
            acks.len(),
            acks.len(),
            recovered,
            recovered - known.len(),
            recovered as u64 - max_ack,
            verified.segments,
            verified.damage.as_deref().unwrap_or("none"),
            round_started.elapsed()
        );
        assert!(
            verified.segments >= 2,
            "round {index}: expected segment rotations before the cut, the log has {} segment(s)",
            verified.segments
        );
        known = verified.names;
    }
    drop(fs);
    eprintln!(
        "{TEST}: {} rounds in {:.2?}",
        ROUNDS.len(),
        started.elapsed()
    );
}

/// Appends `record_bytes` records durably until one fails; returns what was acknowledged
/// (LSN order) and the error.
fn fill_until_error(wal: &Wal, record_bytes: usize) -> (Vec<(Lsn, Vec<u8>)>, Error) {
    let mut acked = Vec::new();
    for seq in 0..1_000_000u64 {
        let data = payload::make(Name {
            run: 1,
            thread: 0,
            seq,
            len: record_bytes as u32,
        });
        match wal.append_with(&data, Durability::Sync) {
            Ok(lsn) => acked.push((lsn, data)),
            Err(e) => return (acked, e),
        }
    }
    panic!("a million appends and the file system is still not full");
}

fn check_acked_present(wal: &Wal, acked: &[(Lsn, Vec<u8>)], when: &str) {
    let records = read_all(wal).unwrap_or_else(|e| panic!("{when}: {e}"));
    assert_eq!(
        records.len(),
        acked.len(),
        "{when}: the log holds {} records, {} were acknowledged (the failed appends must not be there)",
        records.len(),
        acked.len()
    );
    for (r, (lsn, data)) in records.iter().zip(acked) {
        assert_eq!(r.lsn, *lsn, "{when}: LSN order");
        assert!(
            r.data == *data,
            "{when}: acknowledged LSN {lsn} holds other bytes"
        );
    }
}

#[test]
fn enospc_is_a_typed_error_and_loses_nothing() {
    const TEST: &str = "enospc_is_a_typed_error_and_loses_nothing";
    let _serial = one_at_a_time();
    const SEGMENT_BYTES: u64 = 256 << 10;
    const RECORD_BYTES: usize = 4000;
    let Some(tools) = environment_or_skip(TEST) else {
        return;
    };
    let work = Workdir::new();
    let started = Instant::now();
    for (case, (kind, background)) in [
        ("tmpfs", false),
        ("tmpfs", true),
        ("ext4", false),
        ("ext4", true),
    ]
    .into_iter()
    .enumerate()
    {
        let label = format!(
            "{kind}, segments prepared {}",
            if background {
                "in the background"
            } else {
                "inline"
            }
        );
        let case_started = Instant::now();
        let mnt = work.path().join(format!("enospc{case}-mnt"));
        let mounted = match kind {
            "tmpfs" => Mount::tmpfs(&tools, &mnt, 4 << 20),
            _ => Mount::ext4(
                &tools,
                &work.path().join(format!("enospc{case}.img")),
                &mnt,
                16 << 20,
            ),
        };
        let fs = match mounted {
            Ok(m) => m,
            Err(why) => return unavailable(TEST, &why),
        };
        // Leave room for about five segments; this unrelated file is deleted later to make room
        // (for more than the two segments appended to at the end).
        let filler = mnt.join("filler");
        let filler_bytes = fs
            .available_bytes()
            .unwrap()
            .saturating_sub(5 * SEGMENT_BYTES) as usize;
        {
            let mut f = std::fs::File::create(&filler).unwrap();
            f.write_all(&vec![0xA5u8; filler_bytes]).unwrap();
            f.sync_all().unwrap();
        }
        let dir = mnt.join("wal");
        let options = || {
            Options::new(&dir)
                .segment_bytes(SEGMENT_BYTES)
                .prepare_in_background(background)
        };
        let wal = Wal::open(options()).unwrap();
        let (acked, error) = fill_until_error(&wal, RECORD_BYTES);
        assert!(
            acked.len() as u64 * RECORD_BYTES as u64 > 2 * SEGMENT_BYTES,
            "{label}: full too early"
        );
        expect_no_space(&label, &dir, &error);
        let last = acked.last().unwrap().0;
        // Nothing is acknowledged after the error: every later append of the same size needs
        // a new segment too, and there is still no room for one.
        for _ in 0..3 {
            let data = payload::make(Name {
                run: 1,
                thread: 0,
                seq: u64::MAX,
                len: RECORD_BYTES as u32,
            });
            let again = wal.append_with(&data, Durability::Sync);
            assert!(
                again.is_err(),
                "{label}: an append was acknowledged ({again:?}) while the disk is full"
            );
        }
        assert_eq!(
            wal.durable_lsn(),
            last,
            "{label}: the durable LSN moved past the last acknowledged append"
        );
        check_acked_present(&wal, &acked, &format!("{label}: same handle after ENOSPC"));
        drop(wal);
        // Still full: the log reopens as it is, with exactly the acknowledged records.
        let wal =
            Wal::open(options()).unwrap_or_else(|e| panic!("{label}: reopen while full: {e}"));
        check_acked_present(&wal, &acked, &format!("{label}: reopened while full"));
        drop(wal);
        std::fs::remove_file(&filler).unwrap();
        let wal = Wal::open(options())
            .unwrap_or_else(|e| panic!("{label}: reopen after freeing space: {e}"));
        check_acked_present(
            &wal,
            &acked,
            &format!("{label}: reopened after freeing space"),
        );
        // Appends go on right after the last acknowledged one, across new segments.
        let more = (2 * SEGMENT_BYTES as usize) / RECORD_BYTES;
        for i in 0..more {
            let lsn = wal
                .append(&[7u8; RECORD_BYTES])
                .unwrap_or_else(|e| panic!("{label}: append after freeing space: {e}"));
            assert_eq!(
                lsn.0,
                last.0 + 1 + i as u64,
                "{label}: LSN after freeing space"
            );
        }
        wal.close().unwrap();
        drop(fs);
        eprintln!(
            "{TEST}: {label}: {} appends acknowledged and verified (LSN 1..={last}), then {error:?}; \
             {more} more after freeing space; {:.2?}",
            acked.len(),
            case_started.elapsed()
        );
    }
    eprintln!("{TEST}: 4 cases in {:.2?}", started.elapsed());
}

/// The error a full file system surfaces as (docs/DURABILITY.md §5): a typed
/// [`Error::NoSpace`] carrying ENOSPC, whether the segment that did not fit was being prepared
/// inline at rotation or ahead of time by the background preparer (which must pass the typed
/// error on, not a string of it).
fn expect_no_space(label: &str, dir: &Path, error: &Error) {
    match error {
        Error::NoSpace { source, path } => {
            assert_eq!(
                source.raw_os_error(),
                Some(28),
                "{label}: NoSpace should carry ENOSPC: {error:?}"
            );
            assert!(
                path.starts_with(dir),
                "{label}: NoSpace should name the file in the log: {error:?}"
            );
        }
        other => panic!(
            "{label}: a full file system must surface as Error::NoSpace, got {other:?} ({other})"
        ),
    }
}
