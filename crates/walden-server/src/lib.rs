//! # walden-server: the shared, crash-safe memory server
//!
//! Many agents and processes share one walden server. It is a thin HTTP/1.1 + JSON layer
//! (axum on tokio) over one [`walden_store::Store`]:
//!
//! - **Durable acknowledgements.** A write answers only once its commit record is durable
//!   (the store's `Sync` durability), with its commit LSN and the key's new version.
//!   A write commits on the async worker without waiting (`commit_deferred`), and its task
//!   awaits durability while one sync thread (`syncer`) makes every logged commit durable
//!   with one shared `fdatasync` at a time: no thread per waiting request. Writes above
//!   64 KiB, and slow calls (checkpoint, scans, status), run on tokio's blocking pool.
//! - **Routes** (see docs/API.md and `/v1/openapi.json`): single keys with preconditions
//!   (`?if_version=N`, `?if_absent=true`), history, ordered scans, atomic multi-key
//!   transactions, the change stream as Server-Sent Events (event id = commit LSN,
//!   resumable with `Last-Event-ID`), checkpoint, status, health, Prometheus metrics.
//! - **RESP endpoint** (`--resp-listen`, module `resp`): the single-key commands over the
//!   Redis protocol (`SET`, `GET`, `DEL`, `EXISTS`, `WALDEN.SET`), for Redis client
//!   libraries and for less CPU per request; same store, limits, token, TLS and group commit.
//! - **Bad input never panics and never stores anything partial**: paths and queries are
//!   decoded strictly, sizes are checked against limits before the store sees a request,
//!   and every error is `{"error": {"code", "message"}}` with a 4xx status.
//! - **Security**: loopback by default; a bearer token (compared in constant time) on every
//!   route but `/healthz`; a non-loopback address is refused without a token; TLS with
//!   rustls.
//! - **Operations**: SIGTERM / Ctrl-C stop accepting, finish in-flight requests, sync and
//!   exit 0; recovery shows a progress bar on a terminal, log lines otherwise; `tracing`
//!   logs, human or JSON (docs/OPERATIONS.md).
//!
//! The `walden` binary wires [`ServeArgs`], [`StatusArgs`] and [`CheckpointArgs`] into its
//! subcommands; this crate's own `walden-server` binary does the same for its tests.
//!
//! Modules: `config` (what serve runs with), `server` (start, drain, stop), `routes` (one
//! file per group of routes), `resp` (the Redis protocol endpoint), `syncer` (the sync
//! thread), `sse` (the change stream), `auth`, `metrics`, `error` (the JSON error shape),
//! `encoding` (bytes in URLs and JSON), `tls`, `cli` and `client` (the admin commands),
//! `load` (the load generator).

mod auth;
mod cli;
mod client;
mod config;
mod connections;
mod encoding;
mod error;
mod fd_limit;
mod load;
mod logging;
mod metrics;
mod openapi;
mod resp;
mod routes;
mod server;
mod sse;
mod state;
mod syncer;
mod tls;

pub use cli::{CheckpointArgs, ClientArgs, ServeArgs, StatusArgs};
pub use client::Client;
pub use config::{
    LogFormat, ServeConfig, ServerLimits, TlsFiles, DEFAULT_DATA_DIR, DEFAULT_LISTEN, TOKEN_ENV,
};
pub use error::ApiError;
pub use load::{load, load_with, LoadOptions, LoadReport};
pub use openapi::DOCUMENT as OPENAPI_DOCUMENT;
pub use routes::{AppService, ROUTES};
pub use server::{run_blocking, serve, App};
pub use state::AppState;
