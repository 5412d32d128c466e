//! W7 (issue 5): durable single-key writes from 1 to 256 concurrent clients over loopback
//! TCP, against the walden server, Redis and PostgreSQL, driven the same way in one run.
//!
//! - **walden**: `walden_server::serve` in-process on its own tokio runtime (its own worker
//!   threads, as if it were its own process), a fresh data directory on the bench disk, the
//!   server's default configuration. Driven by `walden_server::load_with`: one keep-alive
//!   HTTP/1.1 connection per client, `PUT /v1/ns/w7/kv/c{client}-{n}`, acknowledged (200)
//!   once durable.
//! - **walden-resp**: the same server's RESP endpoint (`--resp-listen`), driven by the very
//!   client loop that drives Redis (`SET c{client}-{n} value`, counted on `+OK`, sent once
//!   durable): the comparison with Redis without HTTP's cost on either side.
//! - **redis**: Debian's `redis-server`, started by scripts/redis-peer.sh with
//!   `appendonly yes`, `appendfsync always`, its AOF on the bench disk. Driven by the same
//!   client loop here: one connection per client, `SET c{client}-{n} value` in RESP,
//!   acknowledged by `+OK` (sent after the AOF fsync).
//! - **postgresql**: a throwaway cluster like scripts/pg-peer.sh's (initdb into the bench
//!   disk, the same settings: `synchronous_commit=on`, `fsync=on`, `commit_delay=0`), but
//!   listening on a loopback port. Driven by the same client loop: one connection per
//!   client, a prepared single-row upsert (`INSERT .. ON CONFLICT (k) DO UPDATE`) per write
//!   in its own transaction (autocommit), acknowledged by `ReadyForQuery`.
//!
//! Keys are distinct per client and per write (no hot key); values are `--value-bytes`
//! bytes. Each system is started once for the whole workload; measurements are interleaved
//! across systems, repetitions outermost.

use crate::args::Plan;
use crate::report::{Durability, Metrics, Row, Status};
use crate::workloads::{absent, progress, Cell};
use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// The system name of walden's RESP endpoint in W7's rows.
pub(crate) const RESP_SYSTEM: &str = "walden-resp";

/// "1 client", "64 clients".
pub(crate) fn clients_case(n: usize) -> String {
    if n == 1 {
        "1 client".into()
    } else {
        format!("{n} clients")
    }
}

fn durability(clients: usize) -> Durability {
    if clients > 1 {
        Durability::GroupCommit
    } else {
        Durability::FsyncPerCommit
    }
}

/// A free loopback address (bound, read, released).
fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind a loopback port")?;
    l.local_addr().context("local address")
}

// ---- walden ----

struct Walden {
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    addr: SocketAddr,
    /// The RESP endpoint.
    resp: SocketAddr,
}

impl Walden {
    fn start(dir: &Path) -> anyhow::Result<Walden> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("w7-walden-server")
            .build()
            .context("server runtime")?;
        let addr = free_addr()?;
        let resp = free_addr()?;
        let mut config = walden_server::ServeConfig::new(dir);
        config.listen = addr;
        config.resp_listen = Some(resp);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(walden_server::serve(config, async move {
            let _ = stopped.await;
        }));
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            if healthy(addr) {
                break;
            }
            if task.is_finished() {
                let r = runtime.block_on(task);
                bail!(
                    "the walden server stopped at start: {:?}",
                    r.map(|r| r.err())
                );
            }
            if Instant::now() > until {
                bail!("the walden server did not answer /healthz on {addr} within 120 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Walden {
            runtime,
            stop: Some(stop),
            task,
            addr,
            resp,
        })
    }

    fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.runtime
            .block_on(self.task)
            .context("server task")?
            .context("walden server")
    }
}

/// GET /healthz answers 200.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

// ---- redis ----

fn find_script(flag: Option<&Path>, name: &str) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    [
        PathBuf::from("scripts").join(name),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts")
            .join(name),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

struct Redis {
    script: PathBuf,
    dir: PathBuf,
    addr: SocketAddr,
    version: String,
}

impl Redis {
    /// Starts redis-server, or says why it is missing.
    fn start(script: Option<&Path>, dir: &Path) -> Result<Redis, String> {
        let script = find_script(script, "redis-peer.sh")
            .ok_or("scripts/redis-peer.sh not found (pass --redis-script)")?;
        let addr = free_addr().map_err(|e| format!("{e:#}"))?;
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg("--dir")
            .arg(dir)
            .args(["--port", &addr.port().to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("could not run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| format!("{} printed no result ({})", script.display(), out.status))?;
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("unreadable script output: {e}"))?;
        if v["status"] != "ok" {
            return Err(v["reason"]
                .as_str()
                .unwrap_or("no reason given")
                .to_string());
        }
        Ok(Redis {
            script,
            dir: dir.to_path_buf(),
            addr,
            version: v["version"].as_str().unwrap_or("?").to_string(),
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg("--dir")
            .arg(&self.dir)
            .status();
    }
}

// ---- postgresql ----

/// A throwaway cluster with pg-peer.sh's settings, on a loopback port.
struct Postgres {
    bindir: PathBuf,
    data: PathBuf,
    work: PathBuf,
    as_postgres: bool,
    addr: SocketAddr,
    version: String,
}

impl Postgres {
    fn command(&self, tool: &str) -> Command {
        pg_command(&self.bindir, tool, self.as_postgres)
    }

    fn start(dir: &Path) -> Result<Postgres, String> {
        let bindir = std::env::var_os("PG_BIN").map(PathBuf::from).or_else(|| {
            let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_str()?.parse().ok()?;
                    Some((n, e.path().join("bin")))
                })
                .collect();
            v.sort();
            v.pop().map(|(_, p)| p)
        });
        let missing_tools = "PostgreSQL not installed: no initdb and pg_ctl under /usr/lib/postgresql/*/bin (apt-get install -y postgresql)";
        let bindir = bindir.ok_or(missing_tools)?;
        if !bindir.join("initdb").is_file() || !bindir.join("pg_ctl").is_file() {
            return Err(missing_tools.into());
        }
        let as_postgres = rustix::process::getuid().is_root();
        let work = dir.to_path_buf();
        std::fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
        let _ = std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755));
        if as_postgres {
            // initdb refuses root: the server runs as `postgres`.
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(&work)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(
                    "running as root and cannot hand the cluster directory to a postgres user"
                        .into(),
                );
            }
        }
        let addr = free_addr().map_err(|e| format!("{e:#}"))?;
        let mut pg = Postgres {
            data: work.join("data"),
            work,
            bindir,
            as_postgres,
            addr,
            version: String::new(),
        };
        let init = pg
            .command("initdb")
            .arg("-D")
            .arg(&pg.data)
            .args(["-U", "bench", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !init.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&init.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
        let log = pg.work.join("server.log");
        let opts = format!(
            "-c listen_addresses='127.0.0.1' -c port={} -c unix_socket_directories='' \
             -c max_connections=300 -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
             -c commit_delay=0 -c shared_buffers=128MB -c max_wal_size=4GB",
            addr.port()
        );
        let started = pg
            .command("pg_ctl")
            .arg("-D")
            .arg(&pg.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !started.status.success() {
            let last = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "the server did not start: {}",
                last.lines().last().unwrap_or("")
            ));
        }
        // Setup over the protocol the clients speak.
        let rt = client_runtime().map_err(|e| format!("{e:#}"))?;
        let version = rt
            .block_on(async {
                let mut c = PgConn::connect(addr).await?;
                c.simple("CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text)")
                    .await?;
                anyhow::Ok(c.server_version.clone())
            })
            .map_err(|e| format!("setup failed: {e:#}"))?;
        pg.version = version;
        Ok(pg)
    }
}

fn pg_command(bindir: &Path, tool: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bindir.join(tool));
        c
    } else {
        Command::new(bindir.join(tool))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }
}

/// A PostgreSQL connection speaking the v3 wire protocol (trust authentication only).
struct PgConn {
    io: BufReader<TcpStream>,
    server_version: String,
    buf: Vec<u8>,
}

const UPSERT: &str =
    "INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v";

fn pg_msg(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

impl PgConn {
    async fn connect(addr: SocketAddr) -> anyhow::Result<PgConn> {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to PostgreSQL at {addr}"))?;
        s.set_nodelay(true)?;
        let mut c = PgConn {
            io: BufReader::new(s),
            server_version: String::new(),
            buf: Vec::new(),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&196_608u32.to_be_bytes());
        body.extend_from_slice(b"user\0bench\0database\0postgres\0\0");
        let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        c.io.get_mut().write_all(&out).await?;
        c.until_ready().await?;
        let mut out = Vec::new();
        pg_msg(&mut out, b'P', |b| {
            b.extend_from_slice(b"w7\0");
            b.extend_from_slice(UPSERT.as_bytes());
            b.extend_from_slice(&[0, 0, 0]);
        });
        pg_msg(&mut out, b'S', |_| {});
        c.io.get_mut().write_all(&out).await?;
        // The table may not exist yet on the very first (setup) connection.
        let _ = c.until_ready().await;
        Ok(c)
    }

    /// Reads messages up to ReadyForQuery; an ErrorResponse makes it an error.
    async fn until_ready(&mut self) -> anyhow::Result<()> {
        let mut error = None;
        loop {
            let tag = self.io.read_u8().await?;
            let len = self.io.read_u32().await? as usize;
            anyhow::ensure!((4..=64 << 20).contains(&len), "bad message length {len}");
            self.buf.resize(len - 4, 0);
            self.io.read_exact(&mut self.buf).await?;
            match tag {
                b'R' => {
                    let code = self
                        .buf
                        .get(..4)
                        .map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    if code != 0 {
                        bail!("PostgreSQL asks for authentication method {code}; the bench cluster uses trust");
                    }
                }
                b'S' => {
                    let mut parts = self.buf.split(|&b| b == 0);
                    if parts.next() == Some(b"server_version") {
                        if let Some(v) = parts.next() {
                            self.server_version = String::from_utf8_lossy(v).into_owned();
                        }
                    }
                }
                b'E' => {
                    error = Some(
                        self.buf
                            .split(|&b| b == 0)
                            .find(|f| f.first() == Some(&b'M'))
                            .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
                            .unwrap_or_else(|| "error".into()),
                    );
                }
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => bail!("PostgreSQL: {e}"),
            None => Ok(()),
        }
    }

    async fn simple(&mut self, sql: &str) -> anyhow::Result<()> {
        let mut out = Vec::new();
        pg_msg(&mut out, b'Q', |b| {
            b.extend_from_slice(sql.as_bytes());
            b.push(0);
        });
        self.io.get_mut().write_all(&out).await?;
        self.until_ready().await
    }

    /// One upsert in its own transaction (Bind, Execute, Sync).
    async fn upsert(&mut self, out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        out.clear();
        pg_msg(out, b'B', |b| {
            b.extend_from_slice(b"\0w7\0");
            b.extend_from_slice(&0u16.to_be_bytes());
            b.extend_from_slice(&2u16.to_be_bytes());
            for p in [key, value] {
                b.extend_from_slice(&(p.len() as u32).to_be_bytes());
                b.extend_from_slice(p);
            }
            b.extend_from_slice(&0u16.to_be_bytes());
        });
        pg_msg(out, b'E', |b| b.extend_from_slice(&[0, 0, 0, 0, 0]));
        pg_msg(out, b'S', |_| {});
        self.io.get_mut().write_all(out).await?;
        self.until_ready().await
    }
}

// ---- the client loop shared by redis, walden's RESP endpoint and postgresql ----

/// The wire protocol a client loop speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// RESP: Redis, and walden's RESP endpoint.
    Resp,
    Postgres,
}

enum Conn {
    Resp(BufReader<TcpStream>),
    Postgres(PgConn),
}

impl Conn {
    async fn connect(wire: Wire, addr: SocketAddr) -> anyhow::Result<Conn> {
        Ok(match wire {
            Wire::Resp => {
                let s = TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connect to the RESP server at {addr}"))?;
                s.set_nodelay(true)?;
                Conn::Resp(BufReader::new(s))
            }
            Wire::Postgres => Conn::Postgres(PgConn::connect(addr).await?),
        })
    }

    /// One durable write; Ok(true) when acknowledged, Ok(false) when refused.
    async fn put(&mut self, out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> anyhow::Result<bool> {
        match self {
            Conn::Resp(io) => {
                out.clear();
                out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
                for p in [key, value] {
                    out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
                    out.extend_from_slice(p);
                    out.extend_from_slice(b"\r\n");
                }
                io.get_mut().write_all(out).await?;
                let mut line = String::new();
                if io.read_line(&mut line).await? == 0 {
                    bail!("the RESP server closed the connection");
                }
                Ok(line.starts_with("+OK"))
            }
            Conn::Postgres(c) => Ok(c.upsert(out, key, value).await.is_ok()),
        }
    }
}

struct LoadResult {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

fn us_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 1 << 36, 3).context("histogram bounds")
}

/// `clients` connections, each writing distinct keys `c{client}-{n}` until `duration` has
/// passed (the shape of `walden_server::load_with`).
async fn drive(
    wire: Wire,
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    value_bytes: usize,
) -> anyhow::Result<LoadResult> {
    // Connect first (untimed): PostgreSQL forks a backend per connection.
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Conn::connect(wire, addr).await?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(client, mut conn)| {
            tokio::spawn(async move {
                let mut h = us_histogram()?;
                let value = vec![b'v'; value_bytes];
                let (mut ok, mut errors, mut n) = (0u64, 0u64, 0u64);
                let mut out = Vec::new();
                while Instant::now() < deadline {
                    let key = format!("c{client}-{n}");
                    n += 1;
                    let t0 = Instant::now();
                    if conn.put(&mut out, key.as_bytes(), &value).await? {
                        ok += 1;
                        h.saturating_record((t0.elapsed().as_micros() as u64).max(1));
                    } else {
                        errors += 1;
                    }
                }
                anyhow::Ok((ok, errors, h))
            })
        })
        .collect();
    let mut r = LoadResult {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: us_histogram()?,
    };
    for t in tasks {
        let (ok, errors, h) = t.await.context("client task")??;
        r.ok += ok;
        r.errors += errors;
        r.latency_us.add(&h).context("merge histograms")?;
    }
    r.elapsed = started.elapsed();
    Ok(r)
}

fn to_metrics(r: &LoadResult) -> anyhow::Result<Metrics> {
    if r.ok == 0 {
        bail!("no write acknowledged ({} errors)", r.errors);
    }
    if r.errors > 0 {
        eprintln!("[W7] {} writes refused or failed", r.errors);
    }
    let q = |x: f64| Some(r.latency_us.value_at_quantile(x) as f64);
    Ok(Metrics {
        ops_per_sec: Some(r.ok as f64 / r.elapsed.as_secs_f64().max(1e-9)),
        p50_us: q(0.50),
        p99_us: q(0.99),
        p999_us: q(0.999),
        count: Some(r.ok as f64),
        ..Metrics::default()
    })
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("w7-clients")
        .build()
        .context("client runtime")
}

/// W7: the three servers (walden over both endpoints), each case interleaved across them,
/// repetitions outermost.
pub(crate) fn w7(
    plan: &Plan,
    root: &Path,
    redis_script: Option<&Path>,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let rt = client_runtime()?;
    let walden = Walden::start(&root.join("w7-walden")).context("W7: start the walden server")?;
    let redis = if plan.wants("redis") {
        let dir = root.join("w7-redis");
        std::fs::create_dir_all(&dir)?;
        Redis::start(redis_script, &dir)
    } else {
        Err("left out by --peers".into())
    };
    let pg = if plan.wants("postgresql") {
        Postgres::start(&root.join("w7-pg"))
    } else {
        Err("left out by --peers".into())
    };
    let value_bytes = plan.value_bytes;
    let options = walden_server::LoadOptions {
        value_bytes,
        namespace: "w7".into(),
        ..walden_server::LoadOptions::default()
    };
    let mut cells: Vec<(usize, [Cell; 4])> = plan
        .clients
        .iter()
        .map(|&c| {
            let case = clients_case(c);
            let d = durability(c);
            let mut w = Cell::new("W7", &case, "walden", "walden", d);
            w.note = Some(format!(
                "walden serve in-process (own runtime), default configuration, fresh data directory; walden_server::load_with: one keep-alive HTTP/1.1 connection per client, PUT of {value_bytes} B to distinct keys, counted on 200 (durable)"
            ));
            let mut wr = Cell::new("W7", &case, RESP_SYSTEM, "walden", d);
            wr.note = Some(format!(
                "the same walden server's RESP endpoint (--resp-listen), driven by the client loop that drives Redis: one connection per client, SET of {value_bytes} B to distinct keys, counted on +OK (sent once durable)"
            ));
            let mut r = Cell::new("W7", &case, "redis", "redis", d);
            if let Ok(redis) = &redis {
                r.note = Some(format!(
                    "Redis {} (scripts/redis-peer.sh), appendonly yes, appendfsync always, no RDB; one connection per client, SET of {value_bytes} B to distinct keys in RESP, counted on +OK",
                    redis.version
                ));
            }
            let mut p = Cell::new("W7", &case, "postgresql", "postgresql", d);
            if let Ok(pg) = &pg {
                p.note = Some(format!(
                    "PostgreSQL {} (throwaway cluster with scripts/pg-peer.sh's settings, on a loopback port), synchronous_commit=on; one connection per client, a prepared single-row upsert of {value_bytes} B per transaction, distinct keys",
                    pg.version
                ));
            }
            (c, [w, wr, r, p])
        })
        .collect();
    for rep in 0..plan.reps {
        for (clients, [w, wr, r, p]) in cells.iter_mut() {
            let clients = *clients;
            let report = rt
                .block_on(walden_server::load_with(
                    walden.addr,
                    clients,
                    plan.measure,
                    &options,
                ))
                .with_context(|| format!("W7 walden, {clients} clients"))?;
            let m = to_metrics(&LoadResult {
                ok: report.ok,
                errors: report.errors,
                elapsed: report.elapsed,
                latency_us: report.latency_micros,
            })
            .with_context(|| format!("W7 walden, {clients} clients"))?;
            progress(w, rep, plan.reps, &m);
            w.samples.push(m);
            // The RESP endpoint and the peers take turns at going first (repetition by
            // repetition), so that none always runs right after walden's HTTP round.
            let mut order = [
                (wr, Wire::Resp, Some(walden.resp)),
                (r, Wire::Resp, redis.as_ref().ok().map(|x| x.addr)),
                (p, Wire::Postgres, pg.as_ref().ok().map(|x| x.addr)),
            ];
            order.rotate_left(rep as usize % 3);
            for (cell, wire, addr) in order {
                let Some(addr) = addr else { continue };
                if cell.failure.is_some() {
                    continue;
                }
                let got = rt
                    .block_on(drive(wire, addr, clients, plan.measure, value_bytes))
                    .and_then(|r| to_metrics(&r));
                match got {
                    Ok(m) => {
                        progress(cell, rep, plan.reps, &m);
                        cell.samples.push(m);
                    }
                    Err(e) => {
                        eprintln!("[W7 {}] {} failed: {e:#}", cell.case, cell.system);
                        cell.failure = Some(format!("{e:#}"));
                    }
                }
            }
        }
    }
    drop(rt);
    walden.stop().context("W7: stop the walden server")?;
    for (_, [w, wr, r, p]) in cells {
        rows.push(w.into_row());
        rows.push(wr.into_row());
        if redis.is_ok() {
            rows.push(r.into_row());
        }
        if pg.is_ok() {
            rows.push(p.into_row());
        }
    }
    for (system, started) in [
        ("redis", redis.as_ref().err()),
        ("postgresql", pg.as_ref().err()),
    ] {
        if let Some(why) = started {
            eprintln!("[W7] {system} missing: {why}");
            rows.push(absent("W7", system, system, Status::Missing, why.clone()));
        }
    }
    drop(redis);
    drop(pg);
    Ok(())
}
