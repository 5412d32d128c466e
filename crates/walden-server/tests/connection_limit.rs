//! `--max-connections` end to end, against the real binary: HTTP and RESP connections count
//! against one limit; past it RESP answers Redis's "max number of clients reached" and HTTP
//! a 503 JSON error with `Connection: close`, each then closed; refused connections hold no
//! place, a place freed is taken again; the refusals are counted in the metrics.
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

/// `GET /healthz` on a keep-alive connection: the whole answer (head and `content-length`
/// bytes of body), so that the next request on it starts clean.
fn health(s: &mut TcpStream) -> String {
    let head = exchange(s, HEALTH, "\r\n\r\n");
    let (head, got) = head.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("no content-length");
    let mut body = got.as_bytes().to_vec();
    while body.len() < length {
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed mid-body");
        body.extend_from_slice(&buf[..n]);
    }
    format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&body))
}

/// Sends `request` on a new connection and reads everything until the server closes it
/// (a refusal must end with the close).
fn refused(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .expect("the refused connection was not closed");
    String::from_utf8_lossy(&got).into_owned()
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: walden\r\n\r\n";
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// Reads `/metrics` over a connection of its own, retrying while the server is full (it
/// notices closes a moment after the client makes them).
fn metrics(s: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = call("GET", &s.url("/metrics"), None, &[]);
        if r.status == 200 {
            return r.text();
        }
        assert!(
            Instant::now() < deadline,
            "metrics never served: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sample(metrics: &str, name: &str) -> u64 {
    let prefix = format!("{name} ");
    let line = metrics.lines().find(|l| l.starts_with(&prefix));
    let line = line.unwrap_or_else(|| panic!("no {name} in {metrics}"));
    line[prefix.len()..].parse().unwrap()
}

/// Retries `attempt` (which opens a connection and tells whether it was served) until it
/// is, for up to 10 s: the server frees a place a moment after the client closes.
fn until_served(what: &str, mut attempt: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !attempt() {
        assert!(
            Instant::now() < deadline,
            "the freed place was never given to {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

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
    assert!(health(&mut http).starts_with("HTTP/1.1 200"));
    let mut first = connect(resp);
    assert_eq!(exchange(&mut first, PING, "\r\n"), "+PONG\r\n");

    // A third RESP connection: Redis's refusal, then closed.
    let answer = refused(resp, PING);
    assert_eq!(answer, "-ERR max number of clients reached\r\n");

    // A third HTTP connection: 503 with a JSON error, and the connection closed.
    let answer = refused(s.addr(), HEALTH);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("too_many_connections"), "{answer}");
    assert!(answer.contains("--max-connections 2"), "{answer}");

    // The connections already served go on being served.
    assert!(health(&mut http).starts_with("HTTP/1.1 200"));
    assert_eq!(exchange(&mut first, PING, "\r\n"), "+PONG\r\n");

    // A refused connection its client keeps open holds no place: once an admitted one
    // closes, the next is served, RESP and HTTP alike.
    let mut held_open = connect(resp);
    // Read its refusal first: had the server not accepted it before `first` closed, it
    // would be admitted in `first`'s place.
    let mut told = [0u8; 64];
    let n = held_open.read(&mut told).unwrap();
    assert_eq!(&told[..n], b"-ERR max number of clients reached\r\n");
    drop(first);
    until_served("RESP", || {
        let mut c = connect(resp);
        exchange(&mut c, PING, "\r\n") == "+PONG\r\n"
    });
    drop(http);
    let mut http = None;
    until_served("HTTP", || {
        let mut c = connect(s.addr());
        let ok = health(&mut c).starts_with("HTTP/1.1 200");
        http = ok.then_some(c);
        ok
    });
    drop(http);
    // The refused connection its client kept open: the server sent its end (FIN) after
    // the answer, and closes the socket by the refusal deadline (2 s after the accept),
    // after which what the client writes is reset.
    assert_eq!(
        held_open.read(&mut told).unwrap(),
        0,
        "no end after the refusal"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while held_open.write_all(PING).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the refused connection was never closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(held_open);

    // Every refusal is counted, and the gauges come back down once the clients are gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = metrics(&s);
        // The metrics request's own connection is the one HTTP connection left.
        if sample(&m, "walden_resp_connections") == 0 && sample(&m, "walden_http_connections") == 1
        {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "connections never counted down: {m}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(sample(&m, "walden_connections_max"), 2);
    assert!(
        sample(&m, "walden_connections_refused_total{endpoint=\"http\"}") >= 1,
        "{m}"
    );
    assert!(
        sample(&m, "walden_connections_refused_total{endpoint=\"resp\"}") >= 2,
        "{m}"
    );
    s.terminate();
}

/// Under an open-file limit too low for `--max-connections`, the server serves no more
/// connections than the limit has room for, and says so, instead of running out of file
/// descriptors (which would fail `accept` for every client).
#[test]
fn max_connections_is_fitted_to_the_open_file_limit() {
    let dir = tempdir();
    let s = Server::start_wrapped(
        dir.path(),
        &["--resp-listen", "127.0.0.1:0", "--max-connections", "4096"],
        &[],
        &["prlimit", "--nofile=512:512"],
    )
    .unwrap_or_else(|f| panic!("did not start under prlimit (util-linux): {}", f.stderr));
    // 512 descriptors, less 64 for refusals and 256 kept back, two per connection.
    let m = metrics(&s);
    assert_eq!(sample(&m, "walden_connections_max"), 96, "{m}");
    assert!(
        s.stderr().contains("--max-connections lowered"),
        "{}",
        s.stderr()
    );
    // Serving up to it works: 96 RESP connections, each answered; the next is refused.
    let resp = s.resp.expect("RESP address");
    let mut open: Vec<TcpStream> = Vec::new();
    while open.len() < 96 {
        let mut c = connect(resp);
        let answer = exchange(&mut c, PING, "\r\n");
        if answer == "+PONG\r\n" {
            open.push(c);
        } else {
            // The metrics connection may not be seen closed yet.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(
        refused(resp, PING),
        "-ERR max number of clients reached\r\n"
    );
    drop(open);
    s.terminate();
}
