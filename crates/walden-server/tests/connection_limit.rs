//! `--max-connections` end to end, against the real binary: HTTP and RESP connections count
//! against one limit; past it RESP answers Redis's "max number of clients reached" and HTTP
//! a 503 JSON error with `Connection: close`, each then closed; a place freed is taken again;
//! the refusals are counted in the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::{call, tempdir, Server};

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Sends `request` and reads until the answer holds `until` (or the peer closed).
fn exchange(s: &mut TcpStream, request: &[u8], until: &str) -> String {
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(until) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading {request:?}: {e} after {got:?}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the peer closed the connection (reads end of stream, or a reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: walden\r\n\r\n";
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

#[test]
fn connections_past_the_limit_are_told_and_closed_on_both_endpoints() {
    let dir = tempdir();
    let s = Server::start(
        dir.path(),
        &["--resp-listen", "127.0.0.1:0", "--max-connections", "2"],
    );
    let resp = s.resp.expect("RESP address");

    // Two places: one HTTP keep-alive connection, one RESP connection, both served.
    let mut http = connect(s.addr());
    assert!(exchange(&mut http, HEALTH, "\r\n\r\n").starts_with("HTTP/1.1 200"));
    let mut first = connect(resp);
    assert_eq!(exchange(&mut first, PING, "\r\n"), "+PONG\r\n");

    // A third RESP connection: Redis's refusal, then closed.
    let mut refused = connect(resp);
    let answer = exchange(&mut refused, PING, "\r\n");
    assert_eq!(answer, "-ERR max number of clients reached\r\n");
    assert!(
        closed(&mut refused),
        "the refused RESP connection stays open"
    );

    // A third HTTP connection: 503 with a JSON error, and the connection closed.
    let mut refused = connect(s.addr());
    let answer = exchange(&mut refused, HEALTH, "too_many_connections");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("--max-connections 2"), "{answer}");
    assert!(
        closed(&mut refused),
        "the refused HTTP connection stays open"
    );

    // The connections already served go on being served.
    assert!(exchange(&mut http, HEALTH, "\r\n\r\n").starts_with("HTTP/1.1 200"));
    assert_eq!(exchange(&mut first, PING, "\r\n"), "+PONG\r\n");

    // Once one closes, its place is taken again (the server notices the close soon after).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect(resp);
        let answer = exchange(&mut again, PING, "\r\n");
        if answer == "+PONG\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never given again: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Every refusal is counted (read over the open HTTP connection: the other place may be
    // held by a connection the server has not yet seen closed).
    drop(http);
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let r = call("GET", &s.url("/metrics"), None, &[]);
        if r.status == 200 {
            break r.text();
        }
        assert!(
            Instant::now() < deadline,
            "metrics never served: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(metrics.contains("walden_connections_max 2\n"), "{metrics}");
    let refused = |endpoint: &str| -> u64 {
        let prefix = format!("walden_connections_refused_total{{endpoint=\"{endpoint}\"}} ");
        let line = metrics.lines().find(|l| l.starts_with(&prefix)).unwrap();
        line[prefix.len()..].parse().unwrap()
    };
    assert!(refused("http") >= 1, "{metrics}");
    assert!(refused("resp") >= 1, "{metrics}");
    s.terminate();
}
