//! Helpers shared by the CLI tests: build real logs with walden-log, damage them on purpose,
//! and run the real `walden` binary against them.
#![allow(clippy::unwrap_used, dead_code)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use walden_log::storage::StdStorage;
use walden_log::{Durability, InspectedSegment, Options, Wal};

/// Small segments, so a few hundred records rotate several times.
pub const SEGMENT_BYTES: u64 = 64 << 10;

/// The payload of the record with LSN `lsn` in logs made by [`make_log`]: long enough
/// (about 300 bytes) that 200 records span several 64 KiB segments.
pub fn payload(lsn: u64) -> Vec<u8> {
    format!("record {lsn:04} {}", "x".repeat(290)).into_bytes()
}

/// Options for a test log in `dir`.
pub fn options(dir: &Path) -> Options {
    Options::new(dir).segment_bytes(SEGMENT_BYTES)
}

/// A fresh log directory inside `tmp` holding `n` records from [`payload`], each appended
/// durably (so every later frame proves every earlier one was synced), then closed.
pub fn make_log(tmp: &Path, n: u64) -> PathBuf {
    let dir = tmp.join("wal");
    let wal = Wal::open(options(&dir)).unwrap();
    for lsn in 1..=n {
        assert_eq!(
            wal.append_with(&payload(lsn), Durability::Sync).unwrap().0,
            lsn
        );
    }
    wal.close().unwrap();
    dir
}

/// Runs `walden ARGS...` to completion.
pub fn walden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walden"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `walden log SUB DIR EXTRA...`.
pub fn walden_log(sub: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["log", sub, dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    walden(&args)
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The segments the library sees, oldest first.
pub fn segments(dir: &Path) -> Vec<InspectedSegment> {
    walden_log::inspect_dir(&StdStorage::new(), dir)
        .unwrap()
        .segments
}

/// Overwrites bytes of `path` at `offset`.
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

/// Inverts one byte of `path` at `offset`.
pub fn flip_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[!b[0]], offset).unwrap();
    f.sync_all().unwrap();
}

/// Asserts the contract for bad input: failure, exactly one stderr line starting with
/// `walden:`, no panic, nothing on stdout. Returns that line.
pub fn assert_one_line_error(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure, got {:?}", o.status);
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one stderr line expected, got: {err:?}");
    assert!(lines[0].starts_with("walden: "), "stderr: {err:?}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    lines[0].to_string()
}
