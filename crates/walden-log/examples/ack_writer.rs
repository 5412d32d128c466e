//! `ack_writer`: appends durable records from several threads and reports every
//! acknowledgement on stdout, so a crash test knows exactly which records the log promised
//! to keep and what their bytes are. Used by `tests/real_kernel.rs`, which cuts the power
//! (a file system shutdown) under it, then checks the recovered log against these lines.
//!
//! ```text
//! ack_writer DIR [--threads N] [--records N] [--record-bytes N] [--segment-bytes N] [--run N]
//!            [--preallocation zero-fill|reserve|adaptive]
//! ```
//!
//! - `--threads` writer threads (default 4), each appending its own records in order;
//! - `--records` records **per thread** (default 1,000,000: in practice, until killed);
//! - `--record-bytes` mean payload size; each payload is between half and one and a half
//!   times this (default 1024, at least the 28-byte payload header);
//! - `--segment-bytes` the log's segment size (default 1 MiB);
//! - `--run` a number mixed into every payload, so several writer runs over one log can be
//!   told apart (default 1);
//! - `--preallocation` how new segments are made ([`walden_log::Preallocation`]; default
//!   `zero-fill`, as the log's).
//!
//! Every append is [`Durability::Sync`]. Output, one line each, flushed as written:
//!
//! ```text
//! open <next_lsn>                                    the log is open; appends start here
//! ack <lsn> <run> <thread> <seq> <len> <digest>      append returned Ok(lsn)
//! err <run> <thread> <seq> <error>                   append failed; that thread stops
//! done <acks>                                        every thread finished
//! ```
//!
//! `digest` is the FNV-1a 64 hash of the payload in hex. Payloads are a pure function of
//! `(run, thread, seq, len)` (see [`payload`]), so a verifier regenerates the exact bytes of
//! every acknowledged record. Exit status: 0 when every append succeeded, 1 when one failed,
//! 2 for a usage error.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use walden_log::{Durability, Options, Preallocation, Wal};

/// The payloads: a header naming the record, then bytes derived from that name.
///
/// ```text
/// 0      8      12       16     24     28
/// +------+------+--------+------+------+---------------------------------------+
/// |magic | run  | thread | seq  | len  | pattern: splitmix64(seed(run,thread,seq)) |
/// +------+------+--------+------+------+---------------------------------------+
/// ```
/// All integers little-endian; `len` is the whole payload's length.
pub mod payload {
    /// First bytes of every payload.
    pub const MAGIC: &[u8; 8] = b"WALDACK1";
    /// Bytes before the pattern.
    pub const HEADER_BYTES: usize = 28;

    /// Who wrote a payload and how long it is, as its header says.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct Name {
        /// The writer run.
        pub run: u32,
        /// The thread within the run.
        pub thread: u32,
        /// The thread's sequence number, from 0.
        pub seq: u64,
        /// Total payload length in bytes.
        pub len: u32,
    }

    fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn seed(run: u32, thread: u32, seq: u64) -> u64 {
        let mut s = (u64::from(run) << 32) ^ u64::from(thread);
        let a = splitmix64(&mut s);
        a ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93)
    }

    /// The payload length for record `seq` of `thread`: within `mean/2 ..= mean*3/2`, and
    /// never shorter than the header. Varies so frames end at every alignment.
    pub fn len_for(mean_bytes: u32, run: u32, thread: u32, seq: u64) -> u32 {
        let mut s = seed(run, thread, seq) ^ 0x5EED;
        let spread = u64::from(mean_bytes) + 1;
        let len = u64::from(mean_bytes / 2) + splitmix64(&mut s) % spread;
        u32::try_from(len)
            .unwrap_or(u32::MAX)
            .max(HEADER_BYTES as u32)
    }

    /// The exact bytes of the record `name` names.
    pub fn make(name: Name) -> Vec<u8> {
        let len = (name.len as usize).max(HEADER_BYTES);
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&name.run.to_le_bytes());
        out.extend_from_slice(&name.thread.to_le_bytes());
        out.extend_from_slice(&name.seq.to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        let mut state = seed(name.run, name.thread, name.seq);
        while out.len() < len {
            let word = splitmix64(&mut state).to_le_bytes();
            let take = (len - out.len()).min(word.len());
            out.extend_from_slice(word.get(..take).unwrap_or_default());
        }
        out
    }

    /// Reads a payload's header; `None` if it is not one of ours.
    pub fn parse(data: &[u8]) -> Option<Name> {
        if data.get(..8)? != MAGIC {
            return None;
        }
        let u32_at = |at: usize| {
            data.get(at..at + 4)?
                .try_into()
                .ok()
                .map(u32::from_le_bytes)
        };
        let seq = data.get(16..24)?.try_into().ok().map(u64::from_le_bytes)?;
        Some(Name {
            run: u32_at(8)?,
            thread: u32_at(12)?,
            seq,
            len: u32_at(24)?,
        })
    }

    /// True when `data` is exactly the payload its own header names.
    pub fn is_well_formed(data: &[u8]) -> bool {
        parse(data).is_some_and(|name| make(name) == data)
    }

    /// FNV-1a, 64 bits: a cheap fingerprint printed with each acknowledgement.
    pub fn digest(data: &[u8]) -> u64 {
        data.iter().fold(0xCBF2_9CE4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
        })
    }
}

#[derive(Debug)]
struct Args {
    dir: std::path::PathBuf,
    threads: u32,
    records: u64,
    record_bytes: u32,
    segment_bytes: u64,
    run: u32,
    preallocation: Preallocation,
}

const USAGE: &str =
    "usage: ack_writer DIR [--threads N] [--records N] [--record-bytes N] [--segment-bytes N] [--run N] [--preallocation zero-fill|reserve|adaptive]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: std::path::PathBuf::new(),
        threads: 4,
        records: 1_000_000,
        record_bytes: 1024,
        segment_bytes: 1 << 20,
        run: 1,
        preallocation: Preallocation::ZeroFill,
    };
    let mut dir = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v}: {e}"))
        };
        let narrow =
            |name: &str, v: u64| u32::try_from(v).map_err(|_| format!("{name} {v} is too large"));
        match arg.as_str() {
            "--threads" => args.threads = narrow("--threads", value("--threads")?)?,
            "--records" => args.records = value("--records")?,
            "--record-bytes" => {
                args.record_bytes = narrow("--record-bytes", value("--record-bytes")?)?
            }
            "--segment-bytes" => args.segment_bytes = value("--segment-bytes")?,
            "--run" => args.run = narrow("--run", value("--run")?)?,
            "--preallocation" => {
                args.preallocation = match it.next().as_deref() {
                    Some("zero-fill") => Preallocation::ZeroFill,
                    Some("reserve") => Preallocation::Reserve,
                    Some("adaptive") => Preallocation::Adaptive,
                    other => return Err(format!("--preallocation {other:?}: not a way")),
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ if dir.is_none() => dir = Some(std::path::PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    args.dir = dir.ok_or("missing DIR")?;
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(args)
}

/// Writes one line and flushes it, so the line is in the pipe before the next append starts.
/// Fails when the reader is gone (then there is no one left to report to).
fn say(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// One thread's appends, in sequence order. Returns false when an append failed.
fn write_records(wal: &Wal, args: &Args, thread: u32, acks: &AtomicU64) -> bool {
    for seq in 0..args.records {
        let len = payload::len_for(args.record_bytes, args.run, thread, seq);
        let data = payload::make(payload::Name {
            run: args.run,
            thread,
            seq,
            len,
        });
        match wal.append_with(&data, Durability::Sync) {
            Ok(lsn) => {
                acks.fetch_add(1, Ordering::Relaxed);
                let digest = payload::digest(&data);
                let line = format!(
                    "ack {} {} {thread} {seq} {len} {digest:016x}",
                    lsn.0, args.run
                );
                if say(&line).is_err() {
                    return true;
                }
            }
            Err(e) => {
                let _ = say(&format!("err {} {thread} {seq} {e}", args.run));
                return false;
            }
        }
    }
    true
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("ack_writer: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let options = Options::new(&args.dir)
        .segment_bytes(args.segment_bytes)
        .durability(Durability::Sync)
        .preallocation(args.preallocation);
    let wal = match Wal::open(options) {
        Ok(wal) => wal,
        Err(e) => {
            eprintln!("ack_writer: open {}: {e}", args.dir.display());
            let _ = say(&format!("err {} - - open: {e}", args.run));
            return ExitCode::from(1);
        }
    };
    if say(&format!("open {}", wal.next_lsn().0)).is_err() {
        return ExitCode::from(1);
    }
    let acks = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for thread in 0..args.threads {
            let (wal, args, acks, failed) = (&wal, &args, &acks, &failed);
            let spawned = std::thread::Builder::new()
                .name(format!("writer-{thread}"))
                .spawn_scoped(scope, move || {
                    if !write_records(wal, args, thread, acks) {
                        failed.store(true, Ordering::Relaxed);
                    }
                });
            if let Err(e) = spawned {
                eprintln!("ack_writer: spawn thread {thread}: {e}");
                failed.store(true, Ordering::Relaxed);
            }
        }
    });
    let _ = say(&format!("done {}", acks.load(Ordering::Relaxed)));
    if failed.load(Ordering::Relaxed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
