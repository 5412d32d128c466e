//! What `serve` needs to know, checked before anything listens: where the data lives, where
//! to listen, the token, TLS, limits, logging.

use anyhow::{bail, Context as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Environment variable holding the bearer token when `--token-file` is not given.
pub const TOKEN_ENV: &str = "WALDEN_TOKEN";

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./walden-data";

/// Size limits, checked by the server before the store sees a request (the store is given
/// the same limits and checks them again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Largest namespace name in bytes (`--max-namespace-bytes`, default 256).
    pub namespace_bytes_max: usize,
    /// Largest key in bytes (`--max-key-bytes`, default 4 KiB).
    pub key_bytes_max: usize,
    /// Largest value in bytes (`--max-value-bytes`, default 4 MiB); also the body limit of
    /// `PUT`.
    pub value_bytes_max: usize,
    /// Largest JSON request body in bytes (`--max-body-bytes`, default 16 MiB).
    pub body_bytes_max: usize,
    /// Most bytes of writes one transaction may hold (`--max-txn-bytes`, default 16 MiB).
    pub txn_bytes_max: usize,
    /// Most operations plus preconditions in one `POST /v1/txn` (`--max-txn-ops`, default
    /// 1000).
    pub txn_ops_max: usize,
    /// Most items one scan returns (`--max-scan-items`, default 1000); a scan also stops
    /// after about `body_bytes_max` bytes of keys and values.
    pub scan_items_max: usize,
    /// Versions kept per key for `history` (`--history-versions`, default 8).
    pub history_versions: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            namespace_bytes_max: 256,
            key_bytes_max: 4 << 10,
            value_bytes_max: 4 << 20,
            body_bytes_max: 16 << 20,
            txn_bytes_max: 16 << 20,
            txn_ops_max: 1000,
            scan_items_max: 1000,
            history_versions: 8,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// A PEM certificate chain and private key for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Everything `serve` runs with.
#[derive(Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// The store's directory.
    pub data_dir: PathBuf,
    /// Where to listen. Port 0 picks a free port; the first line on stdout names it.
    pub listen: SocketAddr,
    /// Where the RESP endpoint listens (None: off). Port 0 picks a free port; the second
    /// line on stdout names it (`listening on redis://ADDR`).
    pub resp_listen: Option<SocketAddr>,
    /// The bearer token every route but `/healthz` requires (None: no auth, loopback only).
    pub token: Option<String>,
    /// TLS, when given.
    pub tls: Option<TlsFiles>,
    /// Size limits.
    pub limits: ServerLimits,
    /// Automatic checkpoint after this many log bytes at least, or as many as the last
    /// checkpoint's size if more (0: never by size; see `StoreOptions`).
    pub checkpoint_every_bytes: u64,
    /// Automatic checkpoint this often while anything changes, once a quarter of the last
    /// checkpoint's size was logged (None: never by time).
    pub checkpoint_every: Option<Duration>,
    /// Log kept behind the newest checkpoint, in LSNs, so change streams can resume.
    pub log_retention_lsns: u64,
    /// How long shutdown waits for in-flight requests before closing anyway.
    pub shutdown_timeout: Duration,
    /// How long a RESP connection may stay without `AUTH` when the server has a token.
    pub auth_timeout: Duration,
    /// Most connections open at once, HTTP and RESP together; more are told the server is
    /// full and closed (see `connections`).
    pub max_connections: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Log level: error, warn, info, debug or trace.
    pub log_level: tracing::Level,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("resp_listen", &self.resp_listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("limits", &self.limits)
            .field("checkpoint_every_bytes", &self.checkpoint_every_bytes)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("log_retention_lsns", &self.log_retention_lsns)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("auth_timeout", &self.auth_timeout)
            .field("max_connections", &self.max_connections)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .finish()
    }
}

impl ServeConfig {
    /// Defaults: `./walden-data`, `127.0.0.1:7070`, no token, no TLS.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            resp_listen: None,
            token: None,
            tls: None,
            limits: ServerLimits::default(),
            checkpoint_every_bytes: 64 << 20,
            checkpoint_every: Some(Duration::from_secs(300)),
            log_retention_lsns: 100_000,
            shutdown_timeout: Duration::from_secs(30),
            auth_timeout: Duration::from_secs(10),
            max_connections: 4096,
            log_format: LogFormat::Human,
            log_level: tracing::Level::INFO,
        }
    }

    /// Refuses what must not run: a non-loopback address without a token, an empty token,
    /// half a TLS configuration, zero limits.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(t) = &self.token {
            if t.is_empty() {
                bail!("the bearer token is empty");
            }
            if t.chars().any(|c| c.is_control() || c == ' ') {
                bail!("the bearer token must not contain spaces or control characters");
            }
        }
        for addr in std::iter::once(self.listen).chain(self.resp_listen) {
            if !addr.ip().is_loopback() && self.token.is_none() {
                bail!(
                    "refusing to listen on {addr} (not a loopback address) without a bearer \
                     token: give --token-file PATH or set {TOKEN_ENV}"
                );
            }
        }
        let l = &self.limits;
        for (name, v) in [
            ("--max-namespace-bytes", l.namespace_bytes_max),
            ("--max-key-bytes", l.key_bytes_max),
            ("--max-value-bytes", l.value_bytes_max),
            ("--max-body-bytes", l.body_bytes_max),
            ("--max-txn-bytes", l.txn_bytes_max),
            ("--max-txn-ops", l.txn_ops_max),
            ("--max-scan-items", l.scan_items_max),
            ("--max-connections", self.max_connections),
            ("--history-versions", l.history_versions),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        Ok(())
    }
}

/// Reads a token file: its content less surrounding whitespace.
pub fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = raw.trim().to_string();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(token)
}

/// The token from `--token-file` if given, else from `WALDEN_TOKEN` if set and non-empty.
pub fn resolve_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        return read_token_file(path).map(Some);
    }
    Ok(std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// Parses a listen address: `IP:PORT`, `[IPv6]:PORT`, or `localhost:PORT`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("invalid port in `{s}`"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("`{s}` is not an address like 127.0.0.1:7070 or [::1]:7070"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        let mut c = ServeConfig::new("d");
        c.listen = "0.0.0.0:7070".parse().unwrap();
        assert!(c.validate().is_err());
        c.token = Some("s3cret".into());
        assert!(c.validate().is_ok());
        c.listen = "[::1]:0".parse().unwrap();
        c.token = None;
        assert!(c.validate().is_ok());
        c.resp_listen = Some("0.0.0.0:6379".parse().unwrap());
        assert!(
            c.validate().is_err(),
            "a RESP endpoint off loopback needs a token too"
        );
        c.token = Some("s3cret".into());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(parse_listen("localhost:80").unwrap().port(), 80);
        assert!(parse_listen("nonsense").is_err());
    }
}
