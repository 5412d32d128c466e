//! A load generator: durable single-key writes from many concurrent clients, each on its
//! own keep-alive HTTP/1.1 connection, written for the W7 benchmark. The HTTP is written by
//! hand (fixed request shape, `Content-Length` answers) so the generator costs little next
//! to the server.

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Writes acknowledged with 200 (durable).
    pub ok: u64,
    /// Requests answered with another status, or failed.
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of acknowledged writes, in microseconds.
    pub latency_micros: Histogram<u64>,
}

impl LoadReport {
    /// Acknowledged writes per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1), in microseconds.
    pub fn latency_quantile_micros(&self, q: f64) -> u64 {
        self.latency_micros.value_at_quantile(q)
    }
}

/// Options of a load run beyond address, clients and duration.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Bearer token, if the server needs one.
    pub token: Option<String>,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Namespace written to.
    pub namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            token: None,
            value_bytes: 64,
            namespace: "load".into(),
        }
    }
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 1 << 36, 3).context("histogram bounds")
}

/// `clients` connections each writing distinct keys (`c{client}-{n}`) with `PUT` for
/// `duration`.
pub async fn load(
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    load_with(addr, clients, duration, &LoadOptions::default()).await
}

/// [`load`] with options.
pub async fn load_with(
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    options: &LoadOptions,
) -> anyhow::Result<LoadReport> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let options = options.clone();
        tasks.push(tokio::spawn(async move {
            one_client(addr, client, deadline, &options).await
        }));
    }
    let mut report = LoadReport {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_micros: histogram()?,
    };
    for t in tasks {
        let (ok, errors, h) = t.await.context("load client task")??;
        report.ok += ok;
        report.errors += errors;
        report
            .latency_micros
            .add(&h)
            .context("merging latency histograms")?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn one_client(
    addr: SocketAddr,
    client: usize,
    deadline: Instant,
    options: &LoadOptions,
) -> anyhow::Result<(u64, u64, Histogram<u64>)> {
    use std::io::Write as _;
    let mut h = histogram()?;
    let (mut ok, mut errors) = (0u64, 0u64);
    let value = vec![b'v'; options.value_bytes];
    let auth = options
        .token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut request = Vec::with_capacity(256 + value.len());
    let mut line = String::new();
    let mut body = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connecting to {addr}"))?;
                s.set_nodelay(true).context("nodelay")?;
                conn.insert(BufReader::new(s))
            }
        };
        // Head and body in one buffer, sent with one write: two writes would cost the
        // client a second system call and the server a second wake-up and read per
        // request (the Redis and PostgreSQL drivers of W7 send one buffer too).
        request.clear();
        write!(
            request,
            "PUT /v1/ns/{}/kv/c{client}-{n} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: \
             application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            options.namespace,
            value.len()
        )
        .context("formatting a request")?;
        request.extend_from_slice(&value);
        n += 1;
        let t0 = Instant::now();
        match exchange(c, &request, &mut line, &mut body).await {
            Ok(200) => {
                ok += 1;
                h.saturating_record((t0.elapsed().as_micros() as u64).max(1));
            }
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                conn = None;
            }
        }
    }
    Ok((ok, errors, h))
}

/// Sends one request and reads the answer; its status. `line` and `body` are scratch
/// buffers, kept across requests.
async fn exchange(
    c: &mut BufReader<TcpStream>,
    request: &[u8],
    line: &mut String,
    body: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    c.get_mut().write_all(request).await?;
    line.clear();
    c.read_line(line).await?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    let mut length = 0u64;
    loop {
        line.clear();
        if c.read_line(line).await? == 0 {
            bail!("connection closed");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().context("bad content-length")?;
            }
        }
    }
    if length > 16 << 20 {
        bail!("answer of {length} bytes is too large for a write acknowledgement");
    }
    body.resize(length as usize, 0);
    c.read_exact(body).await?;
    Ok(status)
}
