//! `walden log dump` on damaged logs: the default mode stops before a torn tail and refuses
//! corruption (exit 1, one line naming the location); --recovery-mode salvages explicitly.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_one_line_error, flip_byte, make_log, segments, stdout, walden_log, write_at};

fn lsns(out: &std::process::Output) -> Vec<u64> {
    stdout(out)
        .lines()
        .map(|l| {
            l.strip_prefix("lsn=")
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn default_mode_stops_before_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let last = segments(&dir).last().unwrap().clone();
    write_at(&last.path, last.used_bytes, &[0x5a; 100]);
    let out = walden_log("dump", &dir, &[]);
    assert!(out.status.success());
    assert_eq!(lsns(&out), (1..=200).collect::<Vec<_>>());
    // Absolute consistency refuses even a torn tail.
    let out = walden_log("dump", &dir, &["--recovery-mode", "absolute"]);
    assert_eq!(out.status.code(), Some(1));
    let line = assert_one_line_error(&out);
    assert!(line.contains("corruption in"), "{line}");
}

#[test]
fn corruption_is_refused_by_default_and_salvaged_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let first = segments(&dir)[0].clone();
    // Inside the payload of the frame holding LSN 1 (frames start at byte 4096).
    flip_byte(&first.path, 4096 + 40);

    let out = walden_log("dump", &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let line = assert_one_line_error(&out);
    let location = format!("{} at byte offset 4096 (LSN 1)", first.path.display());
    assert!(line.contains(&location), "{line}");

    let out = walden_log("dump", &dir, &["--recovery-mode", "point-in-time"]);
    assert!(out.status.success());
    assert!(
        lsns(&out).is_empty(),
        "point-in-time cuts at the first damage"
    );

    let out = walden_log("dump", &dir, &["--recovery-mode", "skip-corrupt"]);
    assert!(out.status.success());
    assert_eq!(
        lsns(&out),
        (2..=200).collect::<Vec<_>>(),
        "skip-corrupt skips only LSN 1"
    );
}

#[test]
fn skip_corrupt_shows_records_on_both_sides_of_a_hole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let first = segments(&dir)[0].clone();
    // Every frame of this log is 32 header + 302 payload bytes, padded to 336.
    let lsn50_offset = 4096 + 49 * 336;
    flip_byte(&first.path, lsn50_offset + 100);
    let out = walden_log("dump", &dir, &["--from-lsn", "48", "--to-lsn", "52"]);
    assert_eq!(out.status.code(), Some(1), "default mode refuses");
    let out = walden_log("dump", &dir, &["--recovery-mode", "skip-corrupt"]);
    assert!(out.status.success());
    let expected: Vec<u64> = (1..=200).filter(|&l| l != 50).collect();
    assert_eq!(lsns(&out), expected);
    assert!(stdout(&out).contains("lsn=51 kind=record len=302 crc="));
}
