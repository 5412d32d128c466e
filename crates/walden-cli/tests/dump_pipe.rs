//! `walden log dump | head -1`: a reader that closes the pipe early ends the dump quietly
//! with exit status 0, not with a panic or an error message.
#![allow(clippy::unwrap_used)]

mod common;

use common::options;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use walden_log::{Durability, Wal};

#[test]
fn closed_stdout_exits_zero_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let wal = Wal::open(options(&dir)).unwrap();
    // ~3000 lines of ~150 bytes: far more than a pipe buffer, so the dump must block on
    // the pipe and then find it closed.
    for i in 0..3000u32 {
        wal.append_with(
            format!("record {i} {}", "y".repeat(80)).as_bytes(),
            Durability::Buffered,
        )
        .unwrap();
    }
    wal.close().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_walden"))
        .args(["log", "dump", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    assert!(first.starts_with("lsn=1 "), "{first}");
    drop(reader);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
}
