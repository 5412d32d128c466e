//! Starting and stopping: recovery with progress, binding, serving until the shutdown
//! signal, draining, syncing.
//!
//! Shutdown order: stop accepting, end change streams, let in-flight requests finish (at
//! most `shutdown_timeout`), then sync the log and close the store. Every write that was
//! acknowledged was already durable; the final sync only covers records the store appended
//! without waiting (aborts of spilled transactions).

use crate::config::ServeConfig;
use crate::connections::CountedListener;
use crate::state::AppState;
use anyhow::Context as _;
use axum::ServiceExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use walden_log::storage::StdStorage;
use walden_store::{Limits, Store, StoreOptions, StoreRecoveryProgress};

/// The application: an open store and the router over it. [`serve`] builds one; tests can
/// build one to call the router in-process.
#[derive(Debug)]
pub struct App {
    state: AppState,
    stop: watch::Sender<bool>,
}

impl App {
    /// Opens (recovers) the store of `config` and builds the application. Blocking: call it
    /// outside the async workers (or in `spawn_blocking`).
    pub fn open(config: &ServeConfig) -> anyhow::Result<App> {
        let store = open_store(config)?;
        let (stop, stopped) = watch::channel(false);
        let state = AppState::new(
            Arc::new(store),
            config.limits,
            config.token.clone(),
            stopped,
            config.data_dir.clone(),
            crate::fd_limit::fit(config.max_connections),
        )
        .context("starting the sync thread")?;
        Ok(App { state, stop })
    }

    /// The application (routes behind the guard: panic guard, auth, metrics), ready for
    /// `axum::serve` (with `axum::ServiceExt::into_make_service`) or `tower::ServiceExt`.
    pub fn service(&self) -> crate::routes::AppService {
        crate::routes::service(self.state.clone())
    }

    /// The same application as an `axum::Router` (behind one more routing step), to nest
    /// or to call in-process.
    pub fn router(&self) -> axum::Router {
        axum::Router::new().fallback_service(self.service())
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Ends change streams (they close; clients reconnect with `Last-Event-ID`).
    pub fn stop_streams(&self) {
        let _ = self.stop.send(true);
    }

    /// Ends change streams, syncs the log and closes the store. Blocking.
    pub fn close(self) -> anyhow::Result<()> {
        self.stop_streams();
        let shared = self.state.0;
        // The sync thread holds the store: end it first (it finishes a sync asked for).
        shared.syncer.stop();
        let store = match Arc::try_unwrap(shared) {
            Ok(shared) => Arc::try_unwrap(shared.store),
            Err(shared) => Err(shared.store.clone()),
        };
        match store {
            Ok(store) => store.close().context("closing the store"),
            // A request that outlived the drain timeout still holds the store: sync only.
            Err(store) => store
                .wal()
                .sync()
                .map(|_| ())
                .context("syncing the log at shutdown"),
        }
    }
}

fn store_options(config: &ServeConfig) -> StoreOptions {
    let l = &config.limits;
    let mut limits = Limits::default();
    limits.namespace_bytes_max = l.namespace_bytes_max;
    limits.key_bytes_max = l.key_bytes_max;
    limits.value_bytes_max = l.value_bytes_max;
    limits.txn_bytes_max = l
        .txn_bytes_max
        .saturating_add(l.txn_ops_max.saturating_mul(64));
    limits.history_versions = l.history_versions;
    StoreOptions::new(&config.data_dir)
        .limits(limits)
        .checkpoints(config.checkpoint_every_bytes, config.checkpoint_every)
        .log_retention_lsns(config.log_retention_lsns)
}

/// Opens the store, showing recovery progress: a bar on a terminal, log lines otherwise.
fn open_store(config: &ServeConfig) -> anyhow::Result<Store> {
    let started = Instant::now();
    tracing::info!(data_dir = %config.data_dir.display(), "opening the store (recovery)");
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {elapsed_precise}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let mut last_line = Instant::now();
    let mut last_phase = "";
    let mut progress = |p: StoreRecoveryProgress| {
        if let Some(bar) = &bar {
            if p.phase != last_phase {
                bar.set_prefix(p.phase);
                bar.set_length(p.records_total);
            }
            bar.set_position(p.records_done);
        } else if p.phase != last_phase
            || last_line.elapsed() >= Duration::from_secs(1)
            || p.records_done == p.records_total
        {
            tracing::info!(
                phase = p.phase,
                done = p.records_done,
                total = p.records_total,
                "recovery"
            );
            last_line = Instant::now();
        }
        last_phase = p.phase;
    };
    let opened = Store::open_with(
        store_options(config),
        Arc::new(StdStorage::new()),
        &mut progress,
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let store = opened
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let report = store.recovery_report();
    for damaged in &report.damaged_checkpoints {
        tracing::warn!(checkpoint = %damaged, "damaged checkpoint skipped and moved aside");
    }
    if store.wal().recovery_report().read_past_cache {
        tracing::warn!(
            "the log had been poisoned by a failed write or fsync (its SYNC_FAILED marker): \
             recovery read it past the page cache, and records that never reached the disk \
             were cut"
        );
    }
    let status = store.status();
    tracing::info!(
        checkpoint_lsn = report.checkpoint_lsn,
        durable_lsn = status.durable_lsn.get(),
        keys = status.keys,
        took_ms = started.elapsed().as_millis() as u64,
        "store open"
    );
    Ok(store)
}

/// Runs the server until `shutdown` completes, then drains and syncs. Prints
/// `listening on http(s)://ADDR` as the first line on stdout once it accepts requests.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let tls = config
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr().context("local address")?;
    let resp_listener = match config.resp_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--resp-listen)"))?,
        ),
        None => None,
    };
    let open_config = config.clone();
    let app = tokio::task::spawn_blocking(move || App::open(&open_config))
        .await
        .context("recovery task")??;
    let service = app.service();
    let scheme = if tls.is_some() { "https" } else { "http" };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {scheme}://{local}").context("stdout")?;
        if let Some(l) = &resp_listener {
            let addr = l.local_addr().context("local address")?;
            let scheme = if tls.is_some() { "rediss" } else { "redis" };
            writeln!(out, "listening on {scheme}://{addr}").context("stdout")?;
            tracing::info!(address = %addr, "RESP endpoint listening");
        }
        out.flush().context("stdout")?;
    }
    tracing::info!(address = %local, tls = tls.is_some(), auth = config.token.is_some(), "listening");
    let mut resp = resp_listener.map(|l| {
        // Its own TLS configuration: the HTTP one advertises ALPN http/1.1.
        let tls = tls.as_ref().map(|c| {
            let mut c = rustls::ServerConfig::clone(c);
            c.alpn_protocols.clear();
            Arc::new(c)
        });
        tokio::spawn(crate::resp::serve(
            l,
            tls,
            app.state().clone(),
            config.auth_timeout,
        ))
    });
    let mut resp_done = resp.is_none();
    let (fired_tx, mut fired) = watch::channel(false);
    let stop = app.stop.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = stop.send(true);
        let _ = fired_tx.send(true);
    };
    let connections = app.state().0.connections.clone();
    let serving = async move {
        let http = match tls {
            Some(tls) => {
                let listener = crate::tls::TlsListener::new(listener, tls, connections)?;
                axum::serve(listener, service.into_make_service())
                    .with_graceful_shutdown(signal)
                    .await
            }
            None => {
                use axum::serve::ListenerExt as _;
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let listener = CountedListener::new(listener, connections);
                axum::serve(listener, service.into_make_service())
                    .with_graceful_shutdown(signal)
                    .await
            }
        };
        http
    };
    // HTTP and RESP drain together: the RESP task ends once shutdown fired and its
    // connections finished their commands.
    let draining = async {
        let http = serving.await;
        if let Some(task) = resp.as_mut() {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the RESP endpoint failed");
            }
            resp_done = true;
        }
        http
    };
    let timeout = config.shutdown_timeout;
    let drain_deadline = async move {
        let _ = fired.wait_for(|f| *f).await;
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        r = draining => r.context("serving")?,
        () = drain_deadline => tracing::warn!(
            timeout_s = timeout.as_secs_f64(),
            "requests still in flight after the shutdown timeout; closing anyway"
        ),
    }
    if let (Some(task), false) = (resp, resp_done) {
        // The drain timeout struck first: end the endpoint (its connection tasks are aborted
        // with it, not awaited: if one still holds the store, `close` syncs instead of
        // closing, as for an HTTP request that outlived the timeout).
        task.abort();
        let _ = task.await;
    }
    tokio::task::spawn_blocking(move || app.close())
        .await
        .context("close task")??;
    tracing::info!("stopped cleanly: log synced");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn termination(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => tracing::info!("Ctrl-C received"),
            Err(e) => {
                tracing::error!(error = %e, "cannot wait for Ctrl-C; waiting for SIGTERM only");
                term.recv().await;
            }
        },
    }
}

/// Sets up logging, builds the tokio runtime, installs SIGTERM and Ctrl-C handling and runs
/// [`serve`] until one of them arrives. Returns `Ok(())` after a clean shutdown.
pub fn run_blocking(config: ServeConfig) -> anyhow::Result<()> {
    crate::logging::init(config.log_format, config.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("walden-server")
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(async move {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        serve(config, termination(term)).await
    })
}
