//! `walden log dump` prints every record once, in LSN order, with the frame metadata the
//! library reports, and honours --from-lsn, --to-lsn, --limit and --format json.
#![allow(clippy::unwrap_used)]

mod common;

use common::{make_log, options, payload, stdout, walden_log};
use std::path::Path;
use std::sync::Arc;
use walden_log::storage::StdStorage;
use walden_log::{Durability, Lsn, RecordView, RecoveryMode, Wal};

/// What the library itself says about every record: the oracle for CRCs and offsets.
fn library_view(dir: &Path) -> Vec<RecordView> {
    walden_log::dump_records(
        Arc::new(StdStorage::new()),
        dir,
        RecoveryMode::TolerateTornTail,
        Lsn(1),
    )
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The text line expected for a record of [`make_log`]: its 302-byte payload is cut at 64.
fn expected_line(r: &RecordView) -> String {
    let shown = String::from_utf8(payload(r.lsn.0)[..64].to_vec()).unwrap();
    format!(
        "lsn={} kind=record len=302 crc={:#010x} segment={} offset={} data=\"{shown}\"...",
        r.lsn, r.frame_crc, r.segment_id, r.frame_offset
    )
}

#[test]
fn prints_every_record_in_order_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let out = walden_log("dump", &dir, &[]);
    assert!(out.status.success());
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    let view = library_view(&dir);
    assert_eq!(view.len(), 200);
    let expected: Vec<String> = view.iter().map(expected_line).collect();
    assert_eq!(lines, expected);
    // Facts that do not depend on the oracle: the first frame starts right after the 4 KiB
    // header page, and 200 records of ~336-byte frames need more than one 64 KiB segment.
    assert!(lines[0].starts_with("lsn=1 kind=record len=302 crc=0x"));
    assert!(lines[0].contains(" offset=4096 data=\"record 0001 xxx"));
    assert!(lines[199].starts_with("lsn=200 "));
    let segments: std::collections::BTreeSet<u64> = view.iter().map(|r| r.segment_id).collect();
    assert!(
        segments.len() >= 2,
        "rotations expected, got segments {segments:?}"
    );
}

#[test]
fn from_to_and_limit_select_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let lsns = |extra: &[&str]| -> Vec<u64> {
        let out = walden_log("dump", &dir, extra);
        assert!(out.status.success(), "{extra:?}");
        stdout(&out)
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
    };
    assert_eq!(
        lsns(&["--from-lsn", "190"]),
        (190..=200).collect::<Vec<_>>()
    );
    assert_eq!(lsns(&["--to-lsn", "5"]), vec![1, 2, 3, 4, 5]);
    assert_eq!(
        lsns(&["--from-lsn", "180", "--to-lsn", "185"]),
        (180..=185).collect::<Vec<_>>()
    );
    assert_eq!(
        lsns(&["--from-lsn", "50", "--limit", "3"]),
        vec![50, 51, 52]
    );
    assert_eq!(lsns(&["--from-lsn", "7", "--to-lsn", "7"]), vec![7]);
    assert_eq!(lsns(&["--limit", "0"]), Vec::<u64>::new());
    assert_eq!(lsns(&["--from-lsn", "500"]), Vec::<u64>::new());
    assert_eq!(
        lsns(&["--from-lsn", "199", "--to-lsn", "1000"]),
        vec![199, 200]
    );
}

#[test]
fn batches_and_binary_payloads_are_shown_faithfully() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let wal = Wal::open(options(&dir)).unwrap();
    wal.append(b"plain text").unwrap();
    wal.append_batch(
        &[b"debit".as_slice(), b"say \"hi\"\n", b""],
        Durability::Sync,
    )
    .unwrap();
    wal.append(&[0x00, 0x01, 0xff, b'a', b'\\']).unwrap();
    wal.close().unwrap();
    let out = walden_log("dump", &dir, &[]);
    assert!(out.status.success());
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let view = library_view(&dir);
    let meta = |i: usize| {
        format!(
            "crc={:#010x} segment={} offset={}",
            view[i].frame_crc, view[i].segment_id, view[i].frame_offset
        )
    };
    assert_eq!(
        lines,
        vec![
            format!("lsn=1 kind=record len=10 {} data=\"plain text\"", meta(0)),
            format!("lsn=2 kind=batch(1/3) len=5 {} data=\"debit\"", meta(1)),
            format!(
                "lsn=3 kind=batch(2/3) len=9 {} data=\"say \\\"hi\\\"\\n\"",
                meta(2)
            ),
            format!("lsn=4 kind=batch(3/3) len=0 {} data=\"\"", meta(3)),
            format!(
                "lsn=5 kind=record len=5 {} data=\"\\x00\\x01\\xffa\\\\\"",
                meta(4)
            ),
        ]
    );
    // One batch is one frame: same offset and CRC for its three records.
    assert_eq!(meta(1), meta(2));
    assert_eq!(meta(2), meta(3));
    assert_ne!(meta(0), meta(1));
}

#[test]
fn json_lines_parse_and_carry_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 200);
    let out = walden_log(
        "dump",
        &dir,
        &["--format", "json", "--from-lsn", "100", "--limit", "50"],
    );
    assert!(out.status.success());
    let view = library_view(&dir);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 50);
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let lsn = 100 + i as u64;
        let r = &view[(lsn - 1) as usize];
        let preview = &payload(lsn)[..64];
        assert_eq!(v["lsn"], lsn);
        assert_eq!(v["kind"], "record");
        assert_eq!(v["batch_index"], 1);
        assert_eq!(v["batch_size"], 1);
        assert_eq!(v["payload_len"], 302);
        assert_eq!(v["frame_crc"], format!("{:#010x}", r.frame_crc));
        assert_eq!(v["segment_id"], r.segment_id);
        assert_eq!(v["frame_offset"], r.frame_offset);
        assert_eq!(v["preview"], std::str::from_utf8(preview).unwrap());
        assert_eq!(v["preview_truncated"], true);
        let hex: String = preview.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(v["payload_hex"], hex);
    }
}
