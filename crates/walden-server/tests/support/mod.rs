//! Shared by the end-to-end tests: start the real `walden-server` binary on a free loopback
//! port, talk HTTP to it, stop it gently (SIGTERM) or not (SIGKILL).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_walden-server");

/// A running server. Dropping it SIGKILLs the process.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT` (or https).
    pub base: String,
    pub data: PathBuf,
    pub stderr_path: PathBuf,
    /// The RESP endpoint's address, when started with `--resp-listen`.
    pub resp: Option<std::net::SocketAddr>,
}

/// Why a server did not start: its exit status and stderr.
#[derive(Debug)]
pub struct StartFailure {
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

impl Server {
    /// Starts `walden-server serve --data DATA --listen 127.0.0.1:0 ARGS...` and waits for
    /// its `listening on` line.
    pub fn start(data: &Path, args: &[&str]) -> Server {
        Self::start_env(data, args, &[])
            .unwrap_or_else(|f| panic!("server did not start: {:?}\n{}", f.status, f.stderr))
    }

    /// Like `start`, with extra environment variables; the failure when it does not start.
    pub fn start_env(
        data: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, StartFailure> {
        Self::start_wrapped(data, args, env, &[])
    }

    /// Like `start_env`, run through `wrapper` (a command that runs the rest of its
    /// arguments, e.g. `prlimit --nofile=512:512`) when it is not empty.
    pub fn start_wrapped(
        data: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Result<Server, StartFailure> {
        // Outside the data directory's file system (a test may cut its power).
        let stderr_path = std::env::temp_dir().join(format!(
            "walden-server-test-{}-{}.stderr",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let stderr_file = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut cmd = Command::new(program);
                cmd.args(wrapper_args).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .args(if args.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .args(args)
            .env_remove("WALDEN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let _ = tx.send(line.ok());
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(60)).ok().flatten();
        // The RESP endpoint is named on the second line.
        let resp = if args.contains(&"--resp-listen") && first.is_some() {
            rx.recv_timeout(Duration::from_secs(10))
                .ok()
                .flatten()
                .and_then(|l| {
                    l.strip_prefix("listening on redis://")
                        .or_else(|| l.strip_prefix("listening on rediss://"))
                        .and_then(|a| a.trim().parse().ok())
                })
        } else {
            None
        };
        let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
        match first
            .as_deref()
            .and_then(|l| l.strip_prefix("listening on "))
        {
            Some(base) => Ok(Server {
                resp,
                base: base.trim().to_string(),
                child,
                data: data.to_path_buf(),
                stderr_path: stderr_path.clone(),
            }),
            None => {
                let status = wait_timeout(&mut child, Duration::from_secs(10));
                if status.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Err(StartFailure {
                    status,
                    stderr: stderr(),
                })
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .parse()
            .unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGTERM, then waits (at most 30 s) for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {pid} failed");
        let status = wait_timeout(&mut self.child, Duration::from_secs(30));
        status.unwrap_or_else(|| panic!("server did not exit after SIGTERM:\n{}", self.stderr()))
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "server stderr ({}):\n{}",
                self.stderr_path.display(),
                self.stderr()
            );
        } else {
            let _ = std::fs::remove_file(&self.stderr_path);
        }
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer {} is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a JSON error with this status and code; the error object.
    pub fn assert_error(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "error without JSON content type: {:?}",
            self.headers
        );
        let e = self.json()["error"].clone();
        assert_eq!(e["code"], code, "error: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        e
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// One request; any status is an answer (transport failures panic).
pub fn call(method: &str, url: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Resp {
    try_call(&agent(), method, url, body, headers).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// One request on `agent`; Err only for transport failures.
pub fn try_call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Result<Resp, String> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let outcome = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let r = match outcome {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .filter_map(|n| {
            r.header(&n)
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    let mut body = Vec::new();
    r.into_reader()
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub fn put(s: &Server, ns: &str, key: &str, value: &[u8]) -> serde_json::Value {
    let r = call(
        "PUT",
        &s.url(&format!("/v1/ns/{ns}/kv/{key}")),
        Some(value),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

pub fn get(s: &Server, ns: &str, key: &str) -> Resp {
    call("GET", &s.url(&format!("/v1/ns/{ns}/kv/{key}")), None, &[])
}

/// A fresh temporary directory; the data directory is `DIR/data`.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("walden-server-test-")
        .tempdir()
        .unwrap()
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Reads events off an open `text/event-stream` body on a thread; they arrive on the
/// channel (the thread ends when the stream does).
pub fn sse_events(url: &str, headers: &[(&str, &str)]) -> (u16, mpsc::Receiver<SseEvent>) {
    // No overall timeout: a stream stays open as long as the test reads it.
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(60))
        .build();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) => {
            let (_tx, rx) = mpsc::channel();
            return (code, rx);
        }
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = r.status();
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(r.into_reader());
    std::thread::spawn(move || {
        let mut ev = SseEvent {
            event: "message".into(),
            id: None,
            data: String::new(),
        };
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if line.is_empty() {
                if (!ev.data.is_empty() || ev.id.is_some()) && tx.send(ev.clone()).is_err() {
                    return;
                }
                ev = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
            } else if let Some(v) = line.strip_prefix("event:") {
                ev.event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("id:") {
                ev.id = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                if !ev.data.is_empty() {
                    ev.data.push('\n');
                }
                ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
    });
    (status, rx)
}

pub mod crash;
pub mod workload;
