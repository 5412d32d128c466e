//! Appends survive close and reopen on the real file system, across rotations and batches.
#![allow(clippy::unwrap_used)]

use walden_log::{Durability, Lsn, Options, Wal};

fn options(dir: &std::path::Path) -> Options {
    Options::new(dir.join("wal")).segment_bytes(64 << 10)
}

#[test]
fn records_survive_reopen_across_rotations() {
    let tmp = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    {
        let wal = Wal::open(options(tmp.path())).unwrap();
        for i in 0..2000u32 {
            let rec = format!("record {i} {}", "x".repeat((i % 97) as usize));
            let lsn = wal
                .append_with(rec.as_bytes(), Durability::Buffered)
                .unwrap();
            assert_eq!(lsn, Lsn(u64::from(i) + 1));
            expected.push(rec.into_bytes());
        }
        let first = wal
            .append_batch(&[b"a".as_slice(), b"bb"], Durability::Sync)
            .unwrap();
        assert_eq!(first, Lsn(2001));
        expected.push(b"a".to_vec());
        expected.push(b"bb".to_vec());
        assert!(wal.stats().rotations > 0, "small segments rotate");
        wal.close().unwrap();
    }
    let wal = Wal::open(options(tmp.path())).unwrap();
    assert!(wal.recovery_report().damage.is_none());
    let got: Vec<Vec<u8>> = wal
        .read_from(Lsn(1))
        .unwrap()
        .map(|r| r.unwrap().data)
        .collect();
    assert_eq!(got, expected);
    let mid: Vec<_> = wal
        .read_from(Lsn(1500))
        .unwrap()
        .map(|r| r.unwrap().lsn)
        .collect();
    assert_eq!(mid.first(), Some(&Lsn(1500)));
    assert_eq!(wal.append(b"after").unwrap(), Lsn(2003));
}

#[test]
fn truncate_after_then_append_reuses_lsns() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(options(tmp.path())).unwrap();
    for i in 0..500u32 {
        wal.append_with(&i.to_le_bytes(), Durability::Buffered)
            .unwrap();
    }
    wal.sync().unwrap();
    wal.truncate_after(Lsn(120)).unwrap();
    assert_eq!(wal.append(b"new-121").unwrap(), Lsn(121));
    drop(wal);
    let wal = Wal::open(options(tmp.path())).unwrap();
    let got: Vec<_> = wal
        .read_from(Lsn(119))
        .unwrap()
        .map(|r| r.unwrap().data)
        .collect();
    assert_eq!(
        got,
        vec![
            118u32.to_le_bytes().to_vec(),
            119u32.to_le_bytes().to_vec(),
            b"new-121".to_vec()
        ]
    );
    let released = wal.truncate_before(Lsn(121)).unwrap();
    assert!(released > 0);
    assert!(wal.first_lsn() > Lsn(1));
    drop(wal);
    let wal = Wal::open(options(tmp.path())).unwrap();
    assert_eq!(
        wal.read_from(Lsn(121))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .data,
        b"new-121"
    );
}
