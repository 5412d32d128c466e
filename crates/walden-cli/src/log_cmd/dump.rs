//! `walden log dump`: every record, one line each, like `pg_waldump`.

use super::check_dir;
use super::preview::Preview;
use crate::exit::Status;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use walden_log::storage::StdStorage;
use walden_log::{Lsn, RecordView, RecoveryMode};

/// How often `--follow` looks for new records, at most. A look re-verifies the log from disk
/// only when a file in it changed or changed lately (see [`Fingerprint`]), and the next look waits at least
/// [`FOLLOW_PASS_SHARE`] times as long as the last verification took, so following a large
/// log under a busy writer uses a bounded share of one core.
const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The wait after a verifying pass, as a multiple of that pass's time (at most a fifth of
/// the time spent verifying).
const FOLLOW_PASS_SHARE: u32 = 4;

/// Consecutive failed looks `--follow` tolerates before giving up (2 s at the interval
/// above). A writer rotating or recycling segments can make one look see a file renamed
/// away under it; a damaged log fails every look.
const FOLLOW_FAILURES_MAX: u32 = 10;

/// The `--help` epilogue of `dump`.
pub const DUMP_HELP: &str = "\
Output (text): lsn=LSN kind=record|batch(I/N) len=BYTES crc=FRAME_CRC segment=ID offset=FRAME_OFFSET data=\"PREVIEW\"
  The preview shows the first 64 bytes: printable ASCII as is, other bytes as \\xNN; '...'
  after the closing quote means the record is longer. Records of one batch share a frame.

Exit status:
  0  success (also when stdout is closed early, as by `| head`)
  1  corruption: the log refuses to open in the chosen --recovery-mode
  3  error: bad arguments, missing directory, not a log, I/O failure";

/// Arguments of `walden log dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// First LSN to print.
    #[arg(long, value_name = "LSN", default_value_t = 1)]
    pub from_lsn: u64,
    /// Last LSN to print (inclusive).
    #[arg(long, value_name = "LSN")]
    pub to_lsn: Option<u64>,
    /// Print at most this many records.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// After the last record, keep polling for records a writer appends, until interrupted
    /// (Ctrl-C) or until --to-lsn or --limit is reached. Each look re-verifies the log, but
    /// only when its files changed in the last second or since the last look, and never
    /// more than a fifth of the time.
    #[arg(long)]
    pub follow: bool,
    /// Output format: `text` (key=value, one record a line) or `json` (one object a line).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// How to read past damage. The default stops before a torn tail and refuses corruption.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ModeArg::TolerateTornTail)]
    pub recovery_mode: ModeArg,
}

/// Output format of `dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `lsn=1 kind=record len=5 crc=0x... segment=1 offset=4096 data="hello"`.
    Text,
    /// Newline-delimited JSON objects.
    Json,
}

/// The recovery modes, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Cut a torn tail; refuse damage to durable data.
    TolerateTornTail,
    /// Refuse any damage, even a torn tail.
    Absolute,
    /// Stop at the first damage, whatever it is.
    PointInTime,
    /// Skip damaged frames and show every valid record after them.
    SkipCorrupt,
}

impl From<ModeArg> for RecoveryMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::TolerateTornTail => RecoveryMode::TolerateTornTail,
            ModeArg::Absolute => RecoveryMode::AbsoluteConsistency,
            ModeArg::PointInTime => RecoveryMode::PointInTime,
            ModeArg::SkipCorrupt => RecoveryMode::SkipCorrupt,
        }
    }
}

/// One record in `--format json`.
#[derive(Debug, Serialize)]
struct JsonLine<'a> {
    lsn: u64,
    kind: &'a str,
    /// 1-based position in its batch.
    batch_index: u32,
    batch_size: u32,
    payload_len: usize,
    frame_crc: String,
    segment_id: u64,
    frame_offset: u64,
    preview: String,
    preview_truncated: bool,
    payload_hex: String,
}

/// Where a dump stands between passes.
#[derive(Debug)]
struct Position {
    next: u64,
    printed: u64,
}

/// Why a pass stopped early.
enum PassError {
    /// The log could not be read (maybe briefly, under a live writer).
    Log(walden_log::Error),
    /// Stdout failed (a closed pipe ends the dump quietly, in `main`).
    Output(io::Error),
}

/// Runs `walden log dump`.
pub fn run(args: &DumpArgs) -> Result<Status> {
    check_dir(&args.dir)?;
    if let Some(to) = args.to_lsn {
        if args.from_lsn > to {
            bail!("--from-lsn {} is greater than --to-lsn {to}", args.from_lsn);
        }
    }
    let mut out = BufWriter::new(io::stdout().lock());
    let mut pos = Position {
        next: args.from_lsn,
        printed: 0,
    };
    let mut failures = 0u32;
    let mut passes = 0u64;
    let mut seen: Option<Fingerprint> = None;
    while !done(args, &pos) {
        let now = Fingerprint::of(&args.dir);
        if passes > 0
            && failures == 0
            && now.as_ref().is_some_and(Fingerprint::settled)
            && now == seen
        {
            // Nothing in the directory changed since the last pass: nothing new to print.
            std::thread::sleep(FOLLOW_POLL_INTERVAL);
            continue;
        }
        let started = std::time::Instant::now();
        let outcome = pass(args, &mut pos, &mut out);
        let took = started.elapsed();
        seen = now;
        match outcome {
            Ok(()) => failures = 0,
            Err(PassError::Output(e)) => return Err(e).context("writing to stdout"),
            // The first pass decides whether this is a readable log at all.
            Err(PassError::Log(e))
                if !args.follow || passes == 0 || failures >= FOLLOW_FAILURES_MAX =>
            {
                return Err(e.into());
            }
            Err(PassError::Log(_)) => failures += 1,
        }
        passes += 1;
        if !args.follow {
            break;
        }
        out.flush().context("writing to stdout")?;
        std::thread::sleep(FOLLOW_POLL_INTERVAL.max(took * FOLLOW_PASS_SHARE));
    }
    out.flush().context("writing to stdout")?;
    Ok(Status::Success)
}

/// What `--follow` compares between looks: every file of the log directory with its length
/// and modification time. A writer's append changes the active segment's modification time
/// (and a rotation, truncation or recycling changes the list), so an equal fingerprint means
/// there is nothing new to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(Vec<(std::ffi::OsString, u64, Option<std::time::SystemTime>)>);

/// How long after its last change a fingerprint is trusted: a modification time only moves
/// at the kernel's clock tick, so two writes within one tick leave the same time, and a look
/// between them would miss the second. Passes go on until the newest change is this old.
const FINGERPRINT_SETTLE: Duration = Duration::from_secs(1);

impl Fingerprint {
    /// True when the newest change it records is older than [`FINGERPRINT_SETTLE`].
    fn settled(&self) -> bool {
        let newest = self.0.iter().filter_map(|(_, _, m)| *m).max();
        newest.is_some_and(|m| m.elapsed().is_ok_and(|age| age > FINGERPRINT_SETTLE))
    }

    /// `None` when the directory cannot be read (the next pass then reports why).
    fn of(dir: &std::path::Path) -> Option<Fingerprint> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).ok()? {
            let entry = entry.ok()?;
            let meta = entry.metadata().ok()?;
            files.push((entry.file_name(), meta.len(), meta.modified().ok()));
        }
        files.sort();
        Some(Fingerprint(files))
    }
}

/// True once --to-lsn or --limit is reached.
fn done(args: &DumpArgs, pos: &Position) -> bool {
    args.to_lsn.is_some_and(|to| pos.next > to) || args.limit.is_some_and(|n| pos.printed >= n)
}

/// Prints every record from `pos.next` to the end the log has now.
fn pass(args: &DumpArgs, pos: &mut Position, out: &mut impl Write) -> Result<(), PassError> {
    let storage = Arc::new(StdStorage::new());
    let records =
        walden_log::dump_records(storage, &args.dir, args.recovery_mode.into(), Lsn(pos.next))
            .map_err(PassError::Log)?;
    for record in records {
        let record = record.map_err(PassError::Log)?;
        // Holes (skip-corrupt) may make LSNs jump, never go back.
        if record.lsn.0 < pos.next {
            continue;
        }
        pos.next = record.lsn.0 + 1;
        if args.to_lsn.is_some_and(|to| record.lsn.0 > to) {
            break;
        }
        write_record(out, &record, args.format).map_err(PassError::Output)?;
        pos.printed += 1;
        if done(args, pos) {
            break;
        }
    }
    Ok(())
}

fn write_record(out: &mut impl Write, r: &RecordView, format: Format) -> io::Result<()> {
    let preview = Preview::of(&r.data);
    let (index, size) = (r.batch_position.0 + 1, r.batch_position.1);
    match format {
        Format::Text => {
            let kind = if r.kind == "batch" {
                format!("batch({index}/{size})")
            } else {
                r.kind.to_string()
            };
            writeln!(
                out,
                "lsn={} kind={kind} len={} crc={:#010x} segment={} offset={} data={}",
                r.lsn,
                r.data.len(),
                r.frame_crc,
                r.segment_id,
                r.frame_offset,
                preview.quoted()
            )
        }
        Format::Json => {
            let line = JsonLine {
                lsn: r.lsn.0,
                kind: r.kind,
                batch_index: index,
                batch_size: size,
                payload_len: r.data.len(),
                frame_crc: format!("{:#010x}", r.frame_crc),
                segment_id: r.segment_id,
                frame_offset: r.frame_offset,
                preview: preview.escaped(),
                preview_truncated: preview.truncated,
                payload_hex: preview.hex(),
            };
            serde_json::to_writer(&mut *out, &line).map_err(io::Error::from)?;
            writeln!(out)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Fingerprint;
    use walden_log::{Options, Wal};

    #[test]
    fn the_fingerprint_changes_with_an_append_and_only_then() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let wal = Wal::open(Options::new(&dir).segment_bytes(1 << 20)).unwrap();
        wal.append(b"first").unwrap();
        let before = Fingerprint::of(&dir).unwrap();
        assert_eq!(Fingerprint::of(&dir).unwrap(), before, "nothing changed");
        // Modification times can be as coarse as the kernel's tick: wait past it.
        std::thread::sleep(std::time::Duration::from_millis(50));
        wal.append(b"second").unwrap();
        assert_ne!(Fingerprint::of(&dir).unwrap(), before, "an append is seen");
        assert!(Fingerprint::of(&tmp.path().join("missing")).is_none());
        assert!(!Fingerprint::of(&dir).unwrap().settled(), "just written");
        std::thread::sleep(super::FINGERPRINT_SETTLE + std::time::Duration::from_millis(100));
        assert!(Fingerprint::of(&dir).unwrap().settled());
    }
}
