//! Bad input never panics: every case ends with a non-zero exit status (3, or 1 where the
//! library reports corruption), exactly one stderr line starting with `walden:`, and no
//! partial output.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_one_line_error, make_log, stdout, walden, walden_log};
use std::path::Path;

const SUBCOMMANDS: [&str; 3] = ["dump", "verify", "inspect"];

/// Deterministic noise: no run of zeros, no valid header.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8 | 1
        })
        .collect()
}

fn each_subcommand(dir: &Path, expect_code: i32, expect_text: &str) {
    for sub in SUBCOMMANDS {
        let out = walden_log(sub, dir, &[]);
        let line = assert_one_line_error(&out);
        assert_eq!(out.status.code(), Some(expect_code), "{sub}: {line}");
        assert!(line.contains(expect_text), "{sub}: {line}");
    }
}

#[test]
fn missing_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nope");
    for sub in SUBCOMMANDS {
        let line = assert_one_line_error(&walden_log(sub, &dir, &[]));
        assert_eq!(
            line,
            format!("walden: no such directory: {}", dir.display())
        );
    }
}

#[test]
fn a_file_instead_of_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, b"hello").unwrap();
    for sub in SUBCOMMANDS {
        let line = assert_one_line_error(&walden_log(sub, &file, &[]));
        assert_eq!(line, format!("walden: not a directory: {}", file.display()));
    }
}

#[test]
fn a_directory_that_is_not_a_log() {
    let tmp = tempfile::tempdir().unwrap();
    each_subcommand(tmp.path(), 3, "is not a walden log");
    std::fs::write(tmp.path().join("notes.txt"), b"hello").unwrap();
    std::fs::create_dir(tmp.path().join("0000000000000001.wal")).unwrap();
    each_subcommand(tmp.path(), 3, "is not a walden log");
}

#[test]
fn a_garbage_file_named_like_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("0000000000000001.wal"), noise(100_000)).unwrap();
    each_subcommand(tmp.path(), 3, "is not a walden log");
    // Absolute consistency calls an unreadable header corruption instead.
    let out = walden_log("dump", tmp.path(), &["--recovery-mode", "absolute"]);
    assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn short_or_empty_files_named_like_segments() {
    for len in [0, 10, 600, 4096] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("0000000000000001.wal"), noise(len)).unwrap();
        each_subcommand(tmp.path(), 3, "is not a walden log");
    }
}

/// A garbage file sorting before the first real segment is damage at the log's start. The
/// records after it were appended durably, so the default mode calls it corruption.
#[test]
fn a_garbage_segment_before_a_real_log_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 50);
    let garbage = dir.join("0000000000000000.wal");
    std::fs::write(&garbage, noise(70_000)).unwrap();
    let at = format!("{} at byte offset 0 (LSN 1)", garbage.display());

    let out = walden_log("dump", &dir, &[]);
    let line = assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(line.contains(&at), "{line}");

    let out = walden_log("verify", &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let at = format!("corruption at {} byte offset 0 (LSN 1)", garbage.display());
    assert!(text.starts_with(&at), "{text}");

    let out = walden_log("inspect", &dir, &[]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains(&format!("health: {at}")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn from_lsn_greater_than_to_lsn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 5);
    let out = walden_log("dump", &dir, &["--from-lsn", "9", "--to-lsn", "3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        assert_one_line_error(&out),
        "walden: --from-lsn 9 is greater than --to-lsn 3"
    );
}

#[test]
fn usage_errors_are_one_line_with_status_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 5);
    let d = dir.to_str().unwrap();
    let cases: [&[&str]; 9] = [
        &[],
        &["log"],
        &["bogus"],
        &["log", "dump"],
        &["log", "dump", d, "--format", "xml"],
        &["log", "dump", d, "--recovery-mode", "yolo"],
        &["log", "dump", d, "--from-lsn", "-3"],
        &["log", "dump", d, "--limit", "many"],
        &["log", "verify", d, "--frobnicate"],
    ];
    for args in cases {
        let out = walden(args);
        let line = assert_one_line_error(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {line}");
    }
    let line = assert_one_line_error(&walden(&["log", "dump", d, "--format", "xml"]));
    assert!(
        line.contains("'xml'") && line.contains("text, json"),
        "{line}"
    );
}
