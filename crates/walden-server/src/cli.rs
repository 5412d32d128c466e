//! Command-line arguments for `walden serve`, `walden status` and `walden checkpoint`, as
//! clap `Args` structs the `walden` binary flattens into its subcommands.

use crate::client::Client;
use crate::config::{
    parse_listen, resolve_token, LogFormat, ServeConfig, ServerLimits, TlsFiles, DEFAULT_DATA_DIR,
    DEFAULT_LISTEN,
};
use anyhow::bail;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `serve`: run the walden server on a data directory.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Data directory (created if missing).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data: PathBuf,
    /// Address to listen on. Port 0 picks a free port. A non-loopback address needs a token.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Also serve the RESP endpoint (Redis protocol: SET, GET, DEL, EXISTS, WALDEN.SET...)
    /// on this address; off when not given. Same token (AUTH) and TLS as HTTP.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub resp_listen: Option<SocketAddr>,
    /// File holding the bearer token (else the WALDEN_TOKEN environment variable).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    pub log_level: tracing::Level,
    /// Largest key, in bytes.
    #[arg(long, default_value_t = ServerLimits::default().key_bytes_max)]
    pub max_key_bytes: usize,
    /// Largest value, in bytes (the PUT body limit).
    #[arg(long, default_value_t = ServerLimits::default().value_bytes_max)]
    pub max_value_bytes: usize,
    /// Largest namespace name, in bytes.
    #[arg(long, default_value_t = ServerLimits::default().namespace_bytes_max)]
    pub max_namespace_bytes: usize,
    /// Largest JSON request body (POST /v1/txn), in bytes; also bounds a scan page.
    #[arg(long, default_value_t = ServerLimits::default().body_bytes_max)]
    pub max_body_bytes: usize,
    /// Most bytes of keys and values in one transaction.
    #[arg(long, default_value_t = ServerLimits::default().txn_bytes_max)]
    pub max_txn_bytes: usize,
    /// Most operations plus preconditions in one transaction.
    #[arg(long, default_value_t = ServerLimits::default().txn_ops_max)]
    pub max_txn_ops: usize,
    /// Most items in one scan page.
    #[arg(long, default_value_t = ServerLimits::default().scan_items_max)]
    pub max_scan_items: usize,
    /// Versions kept per key for history.
    #[arg(long, default_value_t = ServerLimits::default().history_versions)]
    pub history_versions: usize,
    /// Automatic checkpoint after this many MiB of log at least, or as much log as the last
    /// checkpoint's size if more (0: never by size).
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub checkpoint_every_mib: u64,
    /// Automatic checkpoint this often while anything changes, once a quarter of the last
    /// checkpoint's size was logged (0: never by time).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub checkpoint_every_secs: u64,
    /// LSNs of log kept behind the newest checkpoint, so change streams can resume.
    #[arg(long, value_name = "LSNS", default_value_t = 100_000)]
    pub log_retention_lsns: u64,
    /// Seconds shutdown waits for in-flight requests.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// Seconds a RESP connection may stay without AUTH when the server has a token.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub auth_timeout_secs: u64,
    /// Most connections served at once, HTTP and RESP together. Past it, RESP answers
    /// "-ERR max number of clients reached" and HTTP answers 503, and the connection is
    /// closed. The server raises its open-file limit to fit (two per connection), or, when
    /// the hard limit is too low, serves fewer and says so in its log.
    #[arg(long, value_name = "N", default_value_t = ServeConfig::new("").max_connections)]
    pub max_connections: usize,
}

impl ServeArgs {
    /// The configuration these arguments describe (reads the token file or WALDEN_TOKEN).
    pub fn into_config(self) -> anyhow::Result<ServeConfig> {
        let mut c = ServeConfig::new(self.data);
        c.listen = self.listen;
        c.resp_listen = self.resp_listen;
        c.token = resolve_token(self.token_file.as_deref())?;
        c.tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => bail!("TLS needs both --tls-cert and --tls-key"),
        };
        c.limits = ServerLimits {
            namespace_bytes_max: self.max_namespace_bytes,
            key_bytes_max: self.max_key_bytes,
            value_bytes_max: self.max_value_bytes,
            body_bytes_max: self.max_body_bytes,
            txn_bytes_max: self.max_txn_bytes,
            txn_ops_max: self.max_txn_ops,
            scan_items_max: self.max_scan_items,
            history_versions: self.history_versions,
        };
        c.checkpoint_every_bytes = self.checkpoint_every_mib.saturating_mul(1 << 20);
        c.checkpoint_every = (self.checkpoint_every_secs > 0)
            .then(|| Duration::from_secs(self.checkpoint_every_secs));
        c.log_retention_lsns = self.log_retention_lsns;
        c.shutdown_timeout = Duration::from_secs(self.shutdown_timeout_secs);
        c.auth_timeout = Duration::from_secs(self.auth_timeout_secs.max(1));
        c.max_connections = self.max_connections;
        c.log_format = self.log_format;
        c.log_level = self.log_level;
        c.validate()?;
        Ok(c)
    }

    /// Runs the server until SIGTERM or Ctrl-C; 0 after a clean shutdown.
    pub fn run(self) -> anyhow::Result<i32> {
        crate::server::run_blocking(self.into_config()?)?;
        Ok(0)
    }
}

/// How a client command reaches the server.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The server's URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// File holding the bearer token (else the WALDEN_TOKEN environment variable).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for an https server (e.g. a self-signed one).
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Print the server's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
}

impl ClientArgs {
    fn client(&self) -> anyhow::Result<Client> {
        Client::new(
            &self.server,
            resolve_token(self.token_file.as_deref())?,
            self.ca_cert.as_deref(),
        )
    }
}

/// `status`: positions, sizes and uptime of a running server.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Connection.
    #[command(flatten)]
    pub client: ClientArgs,
}

impl StatusArgs {
    /// Prints the server's status; 0 on success.
    pub fn run(self) -> anyhow::Result<i32> {
        let s = self.client.client()?.get_json("/v1/status")?;
        if self.client.json {
            println!("{}", serde_json::to_string_pretty(&s)?);
            return Ok(0);
        }
        let n = |k: &str| s.get(k).cloned().unwrap_or(serde_json::Value::Null);
        println!(
            "server      {} (walden {})",
            self.client.server,
            n("version")
        );
        println!("data        {}", n("data_dir").as_str().unwrap_or("?"));
        println!(
            "uptime      {:.0} s",
            n("uptime_seconds").as_f64().unwrap_or(0.0)
        );
        println!(
            "LSNs        appended {}  durable {}  visible {}  checkpoint {}  first {}",
            n("appended_lsn"),
            n("durable_lsn"),
            n("visible_lsn"),
            n("checkpoint_lsn"),
            n("log_first_lsn")
        );
        println!(
            "log         {} segments, {} bytes",
            n("log_segments"),
            n("log_size_bytes")
        );
        println!("keys        {}", n("keys"));
        println!(
            "streams     {} (max lag {} LSNs)",
            n("subscribers"),
            n("subscriber_lag_max_lsns")
        );
        if let Some(e) = s.get("last_checkpoint_error").and_then(|e| e.as_str()) {
            println!("checkpoint  last automatic checkpoint failed: {e}");
        }
        Ok(0)
    }
}

/// `checkpoint`: make a running server checkpoint now.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArgs {
    /// Connection.
    #[command(flatten)]
    pub client: ClientArgs,
}

impl CheckpointArgs {
    /// Asks for a checkpoint and prints where it landed; 0 on success.
    pub fn run(self) -> anyhow::Result<i32> {
        let c = self.client.client()?.post_json("/v1/checkpoint")?;
        if self.client.json {
            println!("{}", serde_json::to_string_pretty(&c)?);
            return Ok(0);
        }
        let n = |k: &str| c.get(k).cloned().unwrap_or(serde_json::Value::Null);
        println!(
            "checkpoint at LSN {} ({} keys); the log now starts at LSN {}",
            n("lsn"),
            n("keys"),
            n("log_first_lsn")
        );
        Ok(0)
    }
}
