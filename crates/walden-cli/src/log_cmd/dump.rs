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

/// How often `--follow` looks for new records. Each look re-verifies the log from disk,
/// so this trades latency against read load on a live writer.
const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(200);

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
    /// (Ctrl-C) or until --to-lsn or --limit is reached.
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
    while !done(args, &pos) {
        match pass(args, &mut pos, &mut out) {
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
        std::thread::sleep(FOLLOW_POLL_INTERVAL);
    }
    out.flush().context("writing to stdout")?;
    Ok(Status::Success)
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
