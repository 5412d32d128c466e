//! The RESP endpoint end to end, against the real binary: Redis commands and their answers,
//! the same data as HTTP, authentication, bad and oversized input, pipelining, durability
//! across SIGKILL, and a clean SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::{call, tempdir, Server};

/// A RESP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

use Reply::{Array, Bulk, Error, Int, Simple};

fn ok() -> Reply {
    Simple("OK".into())
}

fn bulk(s: &str) -> Reply {
    Bulk(Some(s.as_bytes().to_vec()))
}

struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // Small writes leave at once: tests that split a command really split it.
        s.set_nodelay(true).unwrap();
        Conn {
            r: BufReader::new(s),
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).unwrap();
    }

    fn send(&mut self, args: &[&[u8]]) {
        self.send_raw(&encode(args));
    }

    fn cmd(&mut self, args: &[&str]) -> Reply {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send(&a);
        self.read()
    }

    fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let (tag, rest) = line.trim_end().split_at(1);
        match tag {
            "+" => Simple(rest.into()),
            "-" => Error(rest.into()),
            ":" => Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Bulk(None);
                }
                let mut b = vec![0; n as usize + 2];
                self.r.read_exact(&mut b).unwrap();
                b.truncate(n as usize);
                Bulk(Some(b))
            }
            "*" => {
                let n: usize = rest.parse().unwrap();
                Array((0..n).map(|_| self.read()).collect())
            }
            other => panic!("unexpected reply type {other:?} in {line:?}"),
        }
    }

    /// True when the server closed the connection (reads end of stream).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0))
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec!["--resp-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let s = Server::start(dir, &args);
    assert!(s.resp.is_some(), "no RESP address on stdout");
    s
}

fn error_starts(r: &Reply, prefix: &str) -> bool {
    matches!(r, Error(e) if e.starts_with(prefix))
}

#[test]
fn redis_commands_answer_as_redis_does_and_share_the_http_data() {
    let dir = tempdir();
    let s = start(dir.path(), &[]);
    let mut c = Conn::open(s.resp.unwrap());
    assert_eq!(c.cmd(&["PING"]), Simple("PONG".into()));
    assert_eq!(c.cmd(&["ping", "hi"]), bulk("hi"));
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "lib-name", "x"]), ok());
    assert_eq!(c.cmd(&["SELECT", "0"]), ok());
    assert_eq!(c.cmd(&["GET", "k"]), Bulk(None));
    assert_eq!(c.cmd(&["SET", "k", "v1"]), ok());
    assert_eq!(c.cmd(&["GET", "k"]), bulk("v1"));
    // NX holds only for an absent key, XX only for a live one; a miss is null.
    assert_eq!(c.cmd(&["SET", "k", "v2", "NX"]), Bulk(None));
    assert_eq!(c.cmd(&["SET", "new", "n", "nx"]), ok());
    assert_eq!(c.cmd(&["SET", "gone", "g", "XX"]), Bulk(None));
    assert_eq!(c.cmd(&["SET", "k", "v2", "XX"]), ok());
    assert_eq!(c.cmd(&["GET", "gone"]), Bulk(None));
    // The same data over HTTP, in the namespace `default`.
    let r = call("GET", &s.url("/v1/ns/default/kv/k"), None, &[]);
    assert_eq!((r.status, r.text()), (200, "v2".to_string()));
    assert_eq!(r.header("x-walden-version"), Some("2"));
    // WALDEN.SET answers [lsn, version] and checks versions.
    let Array(a) = c.cmd(&["WALDEN.SET", "k", "v3"]) else {
        panic!("WALDEN.SET did not answer an array")
    };
    assert_eq!(a.len(), 2);
    assert_eq!(a[1], Int(3));
    let Int(lsn) = a[0] else { panic!("no LSN") };
    assert_eq!(
        r_header(&s, "k", "x-walden-lsn"),
        lsn.to_string(),
        "the LSN answered is the commit's"
    );
    let stale = c.cmd(&["WALDEN.SET", "k", "v4", "IFVERSION", "2"]);
    assert!(error_starts(&stale, "CONFLICT"), "{stale:?}");
    assert!(
        matches!(&stale, Error(e) if e.contains("current version is 3")),
        "{stale:?}"
    );
    assert!(matches!(
        c.cmd(&["WALDEN.SET", "k", "v4", "IFVERSION", "3"]),
        Array(_)
    ));
    assert!(error_starts(
        &c.cmd(&["WALDEN.SET", "k", "x", "IFABSENT"]),
        "CONFLICT"
    ));
    assert!(matches!(
        c.cmd(&["WALDEN.SET", "other", "o", "IFABSENT"]),
        Array(_)
    ));
    assert_eq!(c.cmd(&["GET", "k"]), bulk("v4"));
    // EXISTS counts live keys; DEL deletes live ones and counts them.
    assert_eq!(c.cmd(&["EXISTS", "k", "new", "gone", "k"]), Int(3));
    assert_eq!(c.cmd(&["DEL", "k", "gone", "new"]), Int(2));
    assert_eq!(c.cmd(&["DEL", "k"]), Int(0));
    assert_eq!(c.cmd(&["GET", "k"]), Bulk(None));
    assert_eq!(
        call("GET", &s.url("/v1/ns/default/kv/k"), None, &[]).status,
        404
    );
    // Namespaces: keys of one are not keys of another.
    assert_eq!(c.cmd(&["NAMESPACE"]), bulk("default"));
    assert_eq!(c.cmd(&["NAMESPACE", "agents"]), ok());
    assert_eq!(c.cmd(&["GET", "other"]), Bulk(None));
    assert_eq!(c.cmd(&["SET", "task-1", "plan"]), ok());
    let r = call("GET", &s.url("/v1/ns/agents/kv/task-1"), None, &[]);
    assert_eq!((r.status, r.text()), (200, "plan".to_string()));
    assert_eq!(c.cmd(&["QUIT"]), ok());
    assert!(c.closed());
}

fn r_header(s: &Server, key: &str, name: &str) -> String {
    let r = call(
        "GET",
        &s.url(&format!("/v1/ns/default/kv/{key}")),
        None,
        &[],
    );
    r.header(name).unwrap().to_string()
}

#[test]
fn bad_commands_get_errors_and_store_nothing() {
    let dir = tempdir();
    let s = start(
        dir.path(),
        &[
            "--max-key-bytes",
            "8",
            "--max-value-bytes",
            "64",
            "--max-namespace-bytes",
            "32",
        ],
    );
    let mut c = Conn::open(s.resp.unwrap());
    for (args, want) in [
        (&["NOSUCH", "x"][..], "ERR unknown command 'NOSUCH'"),
        (&["SET", "k"], "ERR wrong number of arguments for 'set'"),
        (
            &["SET", "k", "v", "EX", "10"],
            "ERR SET takes at most one option",
        ),
        (
            &["SET", "k", "v", "KEEPTTL"],
            "ERR SET option 'KEEPTTL' is not supported",
        ),
        (
            &["SET", "much-too-long-key", "v"],
            "ERR key of 17 bytes exceeds the limit of 8",
        ),
        (
            &["WALDEN.SET", "k", "v", "IFVERSION", "x"],
            "ERR IFVERSION needs a version number",
        ),
        (&["SELECT", "1"], "ERR walden has one database"),
        (&["NAMESPACE", ""], "ERR the namespace must not be empty"),
        (
            &["AUTH", "secret"],
            "ERR AUTH called, but this server has no token",
        ),
    ] {
        let r = c.cmd(args);
        assert!(
            error_starts(&r, want),
            "{args:?} answered {r:?}, wanted {want}"
        );
    }
    // The connection still works after command errors, and nothing was stored.
    assert_eq!(c.cmd(&["EXISTS", "k", "much-too-long-key"]), Int(0));
    let r = call("GET", &s.url("/v1/ns/default/scan"), None, &[]);
    assert_eq!(r.json()["count"], 0, "{}", r.text());
    // A value over --max-value-bytes is refused from its length line, before its body is
    // sent, and the connection closes: after bad framing nothing later can be trusted.
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$65\r\n");
    let r = c.read();
    assert!(
        error_starts(
            &r,
            "ERR Protocol error: a bulk string of 65 bytes exceeds the limit of 64"
        ),
        "{r:?}"
    );
    assert!(c.closed());
    // Garbage, inline commands, a null argument: protocol errors, connection closed.
    for garbage in [
        &b"GARBAGE\r\n"[..],
        b"*1\r\n$-1\r\n",
        b"*2\r\n:1\r\n",
        b"*1\r\n$x\r\n",
    ] {
        let mut c = Conn::open(s.resp.unwrap());
        c.send_raw(garbage);
        let r = c.read();
        assert!(error_starts(&r, "ERR Protocol error"), "{garbage:?}: {r:?}");
        assert!(c.closed(), "{garbage:?}: the connection stayed open");
    }
    // The server is fine, and still holds nothing.
    let mut c = Conn::open(s.resp.unwrap());
    assert_eq!(c.cmd(&["PING"]), Simple("PONG".into()));
    assert_eq!(
        call("GET", &s.url("/v1/ns/default/scan"), None, &[]).json()["count"],
        0
    );
}

#[test]
fn a_server_with_a_token_answers_nothing_but_auth_before_it() {
    let dir = tempdir();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let data = dir.path().join("data");
    let s = start(&data, &["--token-file", token_file.to_str().unwrap()]);
    let mut c = Conn::open(s.resp.unwrap());
    assert!(error_starts(&c.cmd(&["SET", "k", "v"]), "NOAUTH"));
    assert!(error_starts(&c.cmd(&["GET", "k"]), "NOAUTH"));
    assert!(error_starts(&c.cmd(&["PING"]), "NOAUTH"));
    assert!(error_starts(&c.cmd(&["AUTH", "wrong"]), "WRONGPASS"));
    assert!(error_starts(&c.cmd(&["SET", "k", "v"]), "NOAUTH"));
    assert_eq!(c.cmd(&["AUTH", "s3cret-token"]), ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    // Redis 6's two-argument form; a wrong token logs the connection out again.
    let mut c2 = Conn::open(s.resp.unwrap());
    assert_eq!(c2.cmd(&["AUTH", "default", "s3cret-token"]), ok());
    assert_eq!(c2.cmd(&["GET", "k"]), bulk("v"));
    assert!(error_starts(&c2.cmd(&["AUTH", "nope"]), "WRONGPASS"));
    assert!(error_starts(&c2.cmd(&["GET", "k"]), "NOAUTH"));
}

#[test]
fn pipelined_commands_answer_in_order() {
    let dir = tempdir();
    let s = start(dir.path(), &[]);
    let mut c = Conn::open(s.resp.unwrap());
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend(encode(&[
            b"SET",
            format!("p{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
        batch.extend(encode(&[b"GET", format!("p{i}").as_bytes()]));
    }
    batch.extend(encode(&[b"DEL", b"p0", b"p1"]));
    // Split anywhere: the server must reassemble commands across reads.
    for chunk in batch.chunks(7) {
        c.send_raw(chunk);
    }
    for i in 0..50 {
        assert_eq!(c.read(), ok(), "SET p{i}");
        assert_eq!(c.read(), bulk(&i.to_string()), "GET p{i}");
    }
    assert_eq!(c.read(), Int(2));
}

#[test]
fn acknowledged_sets_survive_sigkill_and_sigterm_exits_cleanly() {
    let dir = tempdir();
    let s = start(dir.path(), &[]);
    let addr = s.resp.unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                (0..200)
                    .map(|i| {
                        let key = format!("w{w}-{i}");
                        assert_eq!(c.cmd(&["SET", &key, &format!("value {i}")]), ok());
                        key
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    s.kill();
    let s = start(dir.path(), &[]);
    let mut c = Conn::open(s.resp.unwrap());
    for key in &acked {
        let i = key.rsplit('-').next().unwrap();
        assert_eq!(
            c.cmd(&["GET", key]),
            bulk(&format!("value {i}")),
            "{key} lost"
        );
    }
    drop(s);
    // SIGTERM with a connection open: the server closes it at once and exits 0, well
    // before its (long) drain timeout.
    let s = start(dir.path(), &["--shutdown-timeout-secs", "120"]);
    let mut c = Conn::open(s.resp.unwrap());
    assert_eq!(c.cmd(&["PING"]), Simple("PONG".into()));
    let asked = std::time::Instant::now();
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "shutdown waited {:?} for an idle RESP connection",
        asked.elapsed()
    );
    assert!(c.closed(), "the connection was not closed at shutdown");
}

#[test]
fn limits_hold_before_and_after_auth() {
    let dir = tempdir();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok").unwrap();
    let s = start(
        &dir.path().join("data"),
        &["--token-file", token_file.to_str().unwrap()],
    );
    let addr = s.resp.unwrap();
    // QUIT needs no token.
    let mut c = Conn::open(addr);
    assert_eq!(c.cmd(&["QUIT"]), ok());
    assert!(c.closed());
    // go-redis and Lettuce open with HELLO 3 AUTH ...: the error they fall back to AUTH on
    // (Lettuce: exactly "ERR unknown command"), not a closed connection; then AUTH on the
    // same connection works.
    let mut c = Conn::open(addr);
    let hello = c.cmd(&["HELLO", "3", "AUTH", "default", "tok", "SETNAME", "agent"]);
    assert!(
        error_starts(&hello, "ERR unknown command 'HELLO'"),
        "{hello:?}"
    );
    assert_eq!(c.cmd(&["AUTH", "default", "tok"]), ok());
    assert_eq!(c.cmd(&["PING"]), Simple("PONG".into()));
    // Before AUTH a stranger may send only small commands: 2 KiB is refused from its
    // length line, and so are nine arguments.
    let refused = |raw: &[u8], error: &str| {
        let mut c = Conn::open(addr);
        c.send_raw(raw);
        assert!(error_starts(&c.read(), error), "{error}");
        assert!(c.closed());
    };
    refused(
        b"*2\r\n$3\r\nGET\r\n$2048\r\n",
        "ERR Protocol error: a bulk string of 2048 bytes",
    );
    refused(
        b"*9\r\n",
        "ERR Protocol error: 9 arguments exceed the limit of 8",
    );
    // After AUTH: at most 4096 arguments.
    let mut c = Conn::open(addr);
    assert_eq!(c.cmd(&["AUTH", "tok"]), ok());
    c.send_raw(b"*4097\r\n");
    assert!(error_starts(
        &c.read(),
        "ERR Protocol error: 4097 arguments exceed"
    ));
    assert!(c.closed());
}

#[test]
fn large_values_and_deletes_take_the_blocking_path_and_errors_end_pipelines_in_order() {
    let dir = tempdir();
    let s = start(dir.path(), &[]);
    let mut c = Conn::open(s.resp.unwrap());
    // A 300 KiB value (above the inline commit size), sent in small pieces.
    let big: Vec<u8> = (0..300 << 10).map(|i| (i % 251) as u8).collect();
    let cmd = encode(&[b"SET", b"big", &big]);
    for piece in cmd.chunks(1000) {
        c.send_raw(piece);
    }
    assert_eq!(c.read(), ok());
    assert_eq!(c.cmd(&["GET", "big"]), Bulk(Some(big)));
    // DEL of many long keys (above the inline commit size in all), a key named twice
    // counted once, a missing key not counted.
    let keys: Vec<String> = (0..40)
        .map(|i| format!("{i:04}{}", "k".repeat(4000)))
        .collect();
    for k in &keys {
        assert_eq!(c.cmd(&["SET", k, "v"]), ok());
    }
    let mut del: Vec<&str> = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    del.extend([keys[0].as_str(), "missing"]);
    assert_eq!(c.cmd(&del), Int(40));
    assert_eq!(c.cmd(&["EXISTS", &keys[0], &keys[39]]), Int(0));
    assert_eq!(c.cmd(&["SET", "x", "1"]), ok());
    assert_eq!(c.cmd(&["DEL", "x", "x"]), Int(1));
    // Valid commands, then garbage, in one write: the valid ones are answered in order,
    // then the protocol error, then the connection closes.
    let mut batch = encode(&[b"SET", b"a", b"1"]);
    batch.extend(encode(&[b"GET", b"a"]));
    batch.extend_from_slice(b"*1\r\n:oops\r\n");
    batch.extend(encode(&[b"SET", b"after", b"1"]));
    c.send_raw(&batch);
    assert_eq!(c.read(), ok());
    assert_eq!(c.read(), bulk("1"));
    assert!(error_starts(&c.read(), "ERR Protocol error"));
    assert!(c.closed());
    let mut c = Conn::open(s.resp.unwrap());
    assert_eq!(
        c.cmd(&["EXISTS", "after"]),
        Int(0),
        "a command after the error ran"
    );
    // The commands are in the metrics, by command and outcome.
    let metrics = call("GET", &s.url("/metrics"), None, &[]).text();
    for series in [
        r#"route="resp",method="SET",status="200""#,
        r#"route="resp",method="DEL",status="200""#,
        r#"route="resp",method="GET",status="200""#,
    ] {
        assert!(metrics.contains(series), "no {series} in /metrics");
    }
}

/// A client that pipelines many SETs, closes its sending side and reads its answers only
/// later: every answer arrives, exactly once, in order, though the server's task may see
/// the end of input before the sync thread has written them all. (Whether the socket
/// fills here depends on the kernel's buffer autotuning; the unit tests in
/// `resp::direct` force a full socket.)
#[test]
fn a_client_that_half_closes_still_gets_every_answer() {
    let dir = tempdir();
    let s = start(dir.path(), &[]);
    let c = Conn::open(s.resp.unwrap());
    let n = 100_000;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend(encode(&[b"SET", format!("h{i}").as_bytes(), b"v"]));
    }
    let mut sending = c.r.get_ref().try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        sending.write_all(&batch).unwrap();
        sending.shutdown(std::net::Shutdown::Write).unwrap();
    });
    // Answers pile up unread meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    let mut all = Vec::new();
    let mut r = c.r;
    r.read_to_end(&mut all).unwrap();
    sender.join().unwrap();
    assert_eq!(all.len(), 5 * n, "{} answers of {n}", all.len() / 5);
    assert!(all.chunks(5).all(|a| a == b"+OK\r\n"));
    let mut c = Conn::open(s.resp.unwrap());
    assert_eq!(c.cmd(&["EXISTS", "h0", &format!("h{}", n - 1)]), Int(2));
}

/// With a token, a connection that has not authenticated within `--auth-timeout-secs` is
/// told so and closed; an authenticated one may stay idle.
#[test]
fn a_stranger_who_does_not_authenticate_is_disconnected() {
    let dir = tempdir();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok").unwrap();
    let s = start(
        &dir.path().join("data"),
        &[
            "--token-file",
            token_file.to_str().unwrap(),
            "--auth-timeout-secs",
            "1",
        ],
    );
    let addr = s.resp.unwrap();
    let mut idle = Conn::open(addr);
    let mut member = Conn::open(addr);
    assert_eq!(member.cmd(&["AUTH", "tok"]), ok());
    let t0 = std::time::Instant::now();
    let r = idle.read();
    assert!(error_starts(&r, "ERR authentication timed out"), "{r:?}");
    assert!(idle.closed());
    let waited = t0.elapsed();
    assert!(
        (Duration::from_millis(500)..Duration::from_secs(10)).contains(&waited),
        "closed after {waited:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(member.cmd(&["PING"]), Simple("PONG".into()));
}

/// `walden_resp_connections` counts the open RESP connections.
#[test]
fn open_connections_are_in_the_metrics() {
    let dir = tempdir();
    let s = start(dir.path(), &[]);
    let gauge = || {
        let text = call("GET", &s.url("/metrics"), None, &[]).text();
        text.lines()
            .find_map(|l| l.strip_prefix("walden_resp_connections "))
            .map(|v| v.trim().parse::<u64>().unwrap())
            .expect("no walden_resp_connections in /metrics")
    };
    assert_eq!(gauge(), 0);
    let mut conns: Vec<Conn> = (0..3).map(|_| Conn::open(s.resp.unwrap())).collect();
    for c in &mut conns {
        assert_eq!(c.cmd(&["PING"]), Simple("PONG".into()));
    }
    assert_eq!(gauge(), 3);
    drop(conns);
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while gauge() != 0 {
        assert!(
            std::time::Instant::now() < until,
            "closed connections still counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
