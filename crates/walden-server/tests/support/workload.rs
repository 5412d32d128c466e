//! The crash tests' workload: client threads writing single keys and three-key
//! transactions, recording what they attempted and what was acknowledged (with its LSN);
//! and the check after a restart. Half the threads write their single keys over the RESP
//! endpoint (`SET`, answered `+OK` by the sync thread), when the server has one.

use super::{agent, call, try_call};
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub const NS: &str = "crash";

/// One write a client sent.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// One key for a PUT, three for a transaction.
    pub keys: Vec<String>,
    pub value: String,
    /// The commit LSN, when the server acknowledged it (0: acknowledged over RESP, whose
    /// `+OK` carries no LSN: the check compares the value only).
    pub acked_lsn: Option<u64>,
}

/// Writer threads hammering one server.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Attempt>>>,
}

impl Load {
    /// `threads` clients writing into `base` (odd threads' single keys over `resp`, when
    /// given); keys are unique per (round, thread, seq).
    pub fn start(base: &str, resp: Option<SocketAddr>, round: u32, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|t| {
                let (base, stop) = (base.to_string(), stop.clone());
                let resp = resp.filter(|_| t % 2 == 1);
                std::thread::spawn(move || writer(&base, resp, round, t, &stop))
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the clients (they also stop on their own once the server is gone).
    pub fn finish(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

/// A RESP connection in namespace [`NS`].
struct RespConn(BufReader<TcpStream>);

impl RespConn {
    fn open(addr: SocketAddr) -> std::io::Result<RespConn> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut c = RespConn(BufReader::new(s));
        match c.command(&["NAMESPACE", NS])?.as_str() {
            "+OK" => Ok(c),
            other => Err(std::io::Error::other(format!("NAMESPACE answered {other}"))),
        }
    }

    /// Sends a command; its one-line answer.
    fn command(&mut self, args: &[&str]) -> std::io::Result<String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.get_mut().write_all(out.as_bytes())?;
        let mut line = String::new();
        if self.0.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end().to_string())
    }
}

fn writer(
    base: &str,
    resp: Option<SocketAddr>,
    round: u32,
    t: usize,
    stop: &AtomicBool,
) -> Vec<Attempt> {
    let agent = agent();
    let mut log: Vec<Attempt> = Vec::new();
    let mut last_lsn = 0;
    let mut resp = match resp.map(RespConn::open) {
        Some(Ok(c)) => Some(c),
        // The server is already gone.
        Some(Err(_)) => return log,
        None => None,
    };
    for i in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let value = format!("v{round}-{t}-{i}");
        if let (Some(c), true) = (resp.as_mut(), i % 3 != 2) {
            let key = format!("s{round}-{t}-{i}");
            let mut attempt = Attempt {
                keys: vec![key.clone()],
                value: value.clone(),
                acked_lsn: None,
            };
            match c.command(&["SET", &key, &value]) {
                Ok(answer) if answer == "+OK" => attempt.acked_lsn = Some(0),
                Ok(answer) => {
                    // Refused once storage failed: not acknowledged.
                    assert!(answer.starts_with("-ERR"), "unexpected answer {answer}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => {
                    log.push(attempt);
                    break;
                }
            }
            log.push(attempt);
            continue;
        }
        let (keys, outcome) = if i % 3 == 2 {
            let keys: Vec<String> = ["a", "b", "c"]
                .iter()
                .map(|s| format!("x{round}-{t}-{i}-{s}"))
                .collect();
            let ops: Vec<_> = keys
                .iter()
                .map(|k| json!({"op": "put", "ns": NS, "key": k, "value": value}))
                .collect();
            let body = json!({ "ops": ops }).to_string();
            let r = try_call(
                &agent,
                "POST",
                &format!("{base}/v1/txn"),
                Some(body.as_bytes()),
                &[],
            );
            (keys, r)
        } else {
            let key = format!("s{round}-{t}-{i}");
            let url = format!("{base}/v1/ns/{NS}/kv/{key}");
            let r = try_call(&agent, "PUT", &url, Some(value.as_bytes()), &[]);
            (vec![key], r)
        };
        let mut attempt = Attempt {
            keys,
            value,
            acked_lsn: None,
        };
        match outcome {
            Ok(r) if r.status == 200 => {
                let lsn = r.json()["lsn"].as_u64().unwrap();
                assert!(lsn > last_lsn, "one client's acknowledged LSNs increase");
                last_lsn = lsn;
                attempt.acked_lsn = Some(lsn);
                log.push(attempt);
            }
            Ok(r) => {
                // Refused (503 once storage failed): not acknowledged.
                assert!(r.status >= 500, "unexpected {}: {}", r.status, r.text());
                log.push(attempt);
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => {
                // The server is gone: this write may or may not have landed.
                log.push(attempt);
                break;
            }
        }
    }
    log
}

/// Reads the whole namespace: key → (value, lsn).
pub fn read_all(base: &str) -> HashMap<String, (String, u64)> {
    let r = call("GET", &format!("{base}/v1/ns/{NS}/scan"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.json();
    assert_eq!(page["more"], false, "raise --max-scan-items for the check");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap().to_string(),
                (
                    i["value"].as_str().unwrap().to_string(),
                    i["lsn"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Every acknowledged write present with its value and LSN; every transaction all or
/// nothing; nothing present that no client attempted. Returns (acknowledged, attempted).
pub fn verify(base: &str, attempts: &[Attempt]) -> (usize, usize) {
    let state = read_all(base);
    let mut attempted_values: HashMap<&str, &str> = HashMap::new();
    let mut acked = 0;
    for a in attempts {
        for k in &a.keys {
            attempted_values.insert(k, &a.value);
        }
        let present: Vec<Option<&(String, u64)>> = a.keys.iter().map(|k| state.get(k)).collect();
        if let Some(lsn) = a.acked_lsn {
            acked += 1;
            for (k, p) in a.keys.iter().zip(&present) {
                let got = p.map(|(v, l)| (v.as_str(), if lsn == 0 { 0 } else { *l }));
                assert_eq!(
                    got,
                    Some((a.value.as_str(), lsn)),
                    "acknowledged write of {k} (LSN {lsn}) is lost or wrong"
                );
            }
        } else {
            let n = present.iter().filter(|p| p.is_some()).count();
            assert!(
                n == 0 || n == a.keys.len(),
                "unacknowledged transaction {:?} is half applied: {present:?}",
                a.keys
            );
            let lsns: Vec<u64> = present.iter().flatten().map(|(_, l)| *l).collect();
            assert!(lsns.windows(2).all(|w| w[0] == w[1]), "one commit, one LSN");
        }
    }
    for (k, (v, _)) in &state {
        assert_eq!(
            attempted_values.get(k.as_str()).copied(),
            Some(v.as_str()),
            "{k} holds a value no client wrote"
        );
    }
    (acked, attempts.len())
}
