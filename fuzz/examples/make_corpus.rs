//! Writes the seed corpus of both targets from logs the library itself writes, so the corpus
//! is reproducible: `cargo run --release --bin make_corpus` (from `fuzz/`). Writes
//! `corpus/decode/` and `corpus/segment_file/` next to this crate's Cargo.toml; existing
//! files of the same name are replaced, others are left alone.

use std::path::Path;
use walden_log_fuzz::{build_log, encode_raw, raw_segment_byte, End, Files, Op};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let decode = root.join("decode");
    let segment = root.join("segment_file");
    std::fs::create_dir_all(&decode)?;
    std::fs::create_dir_all(&segment)?;

    let rec = |len: u16, fill: u8| Op::Append {
        len,
        fill,
        sync: true,
    };
    let logs: Vec<(&str, Vec<Op>, End)> = vec![
        ("empty", vec![], End::Close),
        ("one-record", vec![rec(5, b'a')], End::Close),
        (
            "records-and-batch",
            vec![
                rec(1, 1),
                rec(0, 0),
                rec(100, 2),
                Op::Batch {
                    lens: vec![3, 0, 7],
                    fill: 9,
                    sync: true,
                },
                Op::Append {
                    len: 17,
                    fill: 4,
                    sync: false,
                },
                Op::Sync,
            ],
            End::Close,
        ),
        (
            "rotated",
            (0..12).map(|i| rec(3000, i)).collect(),
            End::Close,
        ),
        (
            "truncated-after",
            vec![
                rec(10, 1),
                rec(10, 2),
                rec(10, 3),
                Op::TruncateAfter { back: 1 },
                rec(10, 4),
            ],
            End::Close,
        ),
        (
            "truncated-before",
            (0..10)
                .map(|i| rec(4000, i))
                .chain([Op::TruncateBefore { back: 2 }])
                .collect(),
            End::Close,
        ),
        (
            "torn-tail",
            vec![
                rec(50, 1),
                rec(50, 2),
                Op::Append {
                    len: 900,
                    fill: 3,
                    sync: false,
                },
                Op::Sync,
                Op::Append {
                    len: 900,
                    fill: 5,
                    sync: false,
                },
                Op::Append {
                    len: 33,
                    fill: 6,
                    sync: false,
                },
            ],
            End::Crash(5),
        ),
        (
            "garbled-tail",
            vec![
                rec(64, 1),
                Op::Append {
                    len: 2000,
                    fill: 7,
                    sync: false,
                },
            ],
            End::Crash(4),
        ),
    ];

    let mut n = 0;
    for (k, (name, ops, end)) in logs.into_iter().enumerate() {
        let (files, _) = build_log(&ops, end);
        let raw = raw_files(&files);
        std::fs::write(
            segment.join(format!("seed-{name}")),
            encode_raw(k as u8, &raw),
        )?;
        for (i, (_, bytes)) in raw.iter().enumerate() {
            std::fs::write(decode.join(format!("seed-{name}-{i}")), bytes)?;
            if bytes.len() > 4096 {
                std::fs::write(
                    decode.join(format!("seed-{name}-{i}-frames")),
                    &bytes[4096..],
                )?;
            }
            n += 1;
        }
    }
    // Built-log inputs: tag byte with bit 7 set, then bytes `arbitrary` reads as ops and
    // mutations. A fixed pseudo-random stream, so the seeds are the same on every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for (k, len) in [8usize, 32, 128, 512, 2048].into_iter().enumerate() {
        let mut seed = vec![0x80 | k as u8];
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seed.push((x >> 24) as u8);
        }
        std::fs::write(segment.join(format!("seed-built-{k}")), seed)?;
    }
    println!(
        "wrote {n} decode seeds and the segment_file seeds under {}",
        root.display()
    );
    Ok(())
}

/// The files of a log in the raw shape: segments and released files by name byte, trailing
/// zeros cut (recovery reads end-of-file like zeros), other files skipped.
fn raw_files(files: &Files) -> Vec<(u8, Vec<u8>)> {
    files
        .iter()
        .filter_map(|(name, bytes)| {
            let (id, free) = match walden_log::format::parse_segment_file_name(name) {
                Some(id) => (id, false),
                None => (walden_log::format::parse_free_file_name(name)?, true),
            };
            let used = bytes
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |p| (p + 8) & !7);
            let name_byte = raw_segment_byte(u8::try_from(id).ok()?) | if free { 2 } else { 0 };
            Some((name_byte, bytes[..used.min(bytes.len())].to_vec()))
        })
        .collect()
}
