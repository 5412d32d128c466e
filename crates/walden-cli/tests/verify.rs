//! `walden log verify` exits 0 on a clean log, 2 on a torn tail, 1 on corruption of durable
//! data, and names the segment file, byte offset and LSN of the damage and what default
//! recovery would do; `--json` carries the same.
#![allow(clippy::unwrap_used)]

mod common;

use common::{flip_byte, make_log, segments, stdout, walden_log, write_at};
use std::fs::OpenOptions;

const TORN_ADVICE: &str =
    "recovery: the default recovery mode cuts the log here: records from LSN {lsn} on were never acknowledged as durable";
const CORRUPTION_ADVICE: &str = "recovery: the default recovery mode refuses to open; choose --recovery-mode point-in-time or skip-corrupt explicitly to salvage";

fn json(out: &std::process::Output) -> serde_json::Value {
    let text = stdout(out);
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn clean_log_exits_zero_with_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let n = segments(&dir).len();
    let out = walden_log("verify", &dir, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        format!("clean: {n} segments, 200 records (LSN 1..=200), 67200 bytes verified\n")
    );
    let v = json(&walden_log("verify", &dir, &["--json"]));
    assert_eq!(v["status"], "clean");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["totals"]["segments"], n);
    assert_eq!(v["totals"]["records"], 200);
    assert_eq!(v["totals"]["first_lsn"], 1);
    assert_eq!(v["totals"]["last_lsn"], 200);
    assert_eq!(v["totals"]["next_lsn"], 201);
    assert_eq!(v["totals"]["bytes_verified"], 200 * 336);
    assert!(v["damage"].is_null());
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let last = segments(&dir).last().unwrap().clone();
    write_at(&last.path, last.used_bytes, &[0xa5; 100]);
    let out = walden_log("verify", &dir, &[]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let at = format!(
        "torn tail at {} byte offset {} (LSN 201): ",
        last.path.display(),
        last.used_bytes
    );
    assert!(lines[0].starts_with(&at), "{text}");
    assert_eq!(lines[1], TORN_ADVICE.replace("{lsn}", "201"));
    assert!(lines[2].starts_with("before the damage: "), "{text}");
    assert!(lines[2].contains("200 records (LSN 1..=200)"), "{text}");

    let v = json(&walden_log("verify", &dir, &["--json"]));
    assert_eq!(v["status"], "torn_tail");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["damage"]["segment_file"], last.path.display().to_string());
    assert_eq!(v["damage"]["offset"], last.used_bytes);
    assert_eq!(v["damage"]["lsn"], 201);
    assert!(!v["damage"]["reason"].as_str().unwrap().is_empty());
    assert!(v["damage"]["recovery"]
        .as_str()
        .unwrap()
        .contains("records from LSN 201 on were never acknowledged"));
}

#[test]
fn a_last_segment_cut_inside_a_frame_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let last = segments(&dir).last().unwrap().clone();
    // The last frame (LSN 200) is the 336 bytes before used_bytes; keep half of it.
    let frame_at = last.used_bytes - 336;
    OpenOptions::new()
        .write(true)
        .open(&last.path)
        .unwrap()
        .set_len(frame_at + 168)
        .unwrap();
    let out = walden_log("verify", &dir, &[]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let at = format!(
        "torn tail at {} byte offset {frame_at} (LSN 200): ",
        last.path.display()
    );
    assert!(text.starts_with(&at), "{text}");
    assert!(
        text.contains(&TORN_ADVICE.replace("{lsn}", "200")),
        "{text}"
    );
    assert!(text.contains("199 records (LSN 1..=199)"), "{text}");
}

#[test]
fn a_flipped_byte_in_an_early_frame_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let first = segments(&dir)[0].clone();
    flip_byte(&first.path, 4096 + 40);
    let out = walden_log("verify", &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let at = format!(
        "corruption at {} byte offset 4096 (LSN 1): checksum mismatch",
        first.path.display()
    );
    assert!(lines[0].starts_with(&at), "{text}");
    // The reason names the later frame that proves LSN 1 was durable.
    assert!(
        lines[0].contains("was written after LSN 1 was durable"),
        "{text}"
    );
    assert_eq!(lines[1], CORRUPTION_ADVICE);

    let v = json(&walden_log("verify", &dir, &["--json"]));
    assert_eq!(v["status"], "corruption");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(
        v["damage"]["segment_file"],
        first.path.display().to_string()
    );
    assert_eq!(v["damage"]["offset"], 4096);
    assert_eq!(v["damage"]["lsn"], 1);
    assert!(v["damage"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("checksum mismatch"));
    assert!(v["damage"]["recovery"]
        .as_str()
        .unwrap()
        .contains("refuses to open"));
}

#[test]
fn a_segment_file_under_another_name_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let first = segments(&dir)[0].clone();
    // A copy under a later id: its header says otherwise, refused in every mode.
    let copy = dir.join("00000000000000ff.wal");
    std::fs::copy(&first.path, &copy).unwrap();
    let out = walden_log("verify", &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("corruption at {} byte offset 0", copy.display())),
        "{text}"
    );
    assert!(text.contains("misnamed"), "{text}");
}

/// Both header copies of the last segment destroyed while its records were synced: the
/// frames in it (read without their checksums, whose seed died with the header) chain from
/// the log's end and record that it was durable, so this is corruption, not a torn tail.
#[test]
fn a_last_segment_without_a_valid_header_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let segs = segments(&dir);
    let last = segs.last().unwrap().clone();
    write_at(&last.path, 0, &[0xab; 64]);
    write_at(&last.path, 512, &[0xab; 64]);
    let out = walden_log("verify", &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let at = format!(
        "corruption at {} byte offset 0 (LSN {}): ",
        last.path.display(),
        last.first_lsn
    );
    assert!(text.starts_with(&at), "{text}");
    assert!(text.contains("both header copies are unreadable"), "{text}");
}
