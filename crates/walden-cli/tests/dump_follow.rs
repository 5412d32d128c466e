//! `walden log dump --follow` keeps printing records that a writer in another process
//! appends after the dump started, across segment rotations, without taking the writer's lock.
#![allow(clippy::unwrap_used)]

mod common;

use common::{make_log, options, payload};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;
use walden_log::Wal;

/// Long enough for a slow CI machine; the poll interval is 200 ms.
const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills the follower even when an assertion fails first.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    fn start(dir: &std::path::Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_walden"))
            .args(["log", "dump", dir.to_str().unwrap(), "--follow"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(LINE_TIMEOUT)
            .expect("no line from walden log dump --follow")
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lsn_of(line: &str) -> u64 {
    line.strip_prefix("lsn=")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn prints_records_appended_after_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 3);
    // The writer keeps the log open (and locked) for the whole test.
    let wal = Wal::open(options(&dir)).unwrap();
    let follower = Follower::start(&dir, &[]);
    for lsn in 1..=3 {
        assert_eq!(lsn_of(&follower.next_line()), lsn);
    }
    assert!(
        follower
            .lines
            .recv_timeout(Duration::from_millis(600))
            .is_err(),
        "nothing new was appended yet"
    );
    assert_eq!(wal.append(b"appended while following").unwrap().0, 4);
    let line = follower.next_line();
    assert!(line.starts_with("lsn=4 kind=record len=24 "), "{line}");
    assert!(
        line.ends_with(" data=\"appended while following\""),
        "{line}"
    );
    // Enough to rotate to new segments while the follower polls.
    for lsn in 5..=400 {
        assert_eq!(wal.append(&payload(lsn)).unwrap().0, lsn);
    }
    assert!(wal.segments().len() > 2, "the writer rotated");
    for lsn in 5..=400 {
        assert_eq!(lsn_of(&follower.next_line()), lsn);
    }
}

#[test]
fn stops_by_itself_at_to_lsn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_log(tmp.path(), 2);
    let wal = Wal::open(options(&dir)).unwrap();
    let mut follower = Follower::start(&dir, &["--to-lsn", "3"]);
    assert_eq!(lsn_of(&follower.next_line()), 1);
    assert_eq!(lsn_of(&follower.next_line()), 2);
    wal.append(b"third").unwrap();
    wal.append(b"fourth: past --to-lsn").unwrap();
    assert_eq!(lsn_of(&follower.next_line()), 3);
    let deadline = std::time::Instant::now() + LINE_TIMEOUT;
    let status = loop {
        if let Some(status) = follower.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "--follow did not stop at --to-lsn"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    assert!(
        follower.lines.recv_timeout(Duration::from_secs(1)).is_err(),
        "nothing past LSN 3"
    );
}
