//! What every request handler shares: the store, the limits, the metrics, the change-stream
//! subscribers and the shutdown signal.

use crate::config::ServerLimits;
use crate::connections::Connections;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::resp::DirectAnswers;
use crate::syncer::Syncer;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;
use walden_store::Store;

/// Shared server state; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Shared>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("data_dir", &self.0.data_dir)
            .finish()
    }
}

pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub limits: ServerLimits,
    pub metrics: Arc<Metrics>,
    pub subscribers: Subscribers,
    pub started: Instant,
    pub token: Option<String>,
    pub shutdown: watch::Receiver<bool>,
    pub data_dir: PathBuf,
    /// Makes deferred commits durable (see `syncer`).
    pub syncer: Syncer,
    /// Answers the sync thread writes itself (RESP, see `resp::direct`).
    pub direct: Arc<DirectAnswers>,
    /// Open connections against `--max-connections`.
    pub connections: Arc<Connections>,
}

impl AppState {
    pub(crate) fn new(
        store: Arc<Store>,
        limits: ServerLimits,
        token: Option<String>,
        shutdown: watch::Receiver<bool>,
        data_dir: PathBuf,
        max_connections: usize,
    ) -> std::io::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let direct = Arc::new(DirectAnswers::new(metrics.clone()));
        let syncer = Syncer::start(store.clone(), direct.clone())?;
        Ok(AppState(Arc::new(Shared {
            syncer,
            direct,
            store,
            limits,
            metrics,
            subscribers: Subscribers::default(),
            started: Instant::now(),
            token,
            shutdown,
            data_dir,
            connections: Connections::new(max_connections),
        })))
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.0.store
    }

    /// Runs a blocking store call on tokio's blocking pool, so that it does not stall the
    /// async workers (checkpoints, scans, status, and writes too large to commit inline).
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.0.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
    }
}

/// Live change-stream subscribers and how far each has read, for the lag metric.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    next_id: AtomicU64,
    positions: Mutex<HashMap<u64, Arc<AtomicU64>>>,
}

/// A subscriber's registration; dropping it (the stream ended or the client left)
/// unregisters it.
pub(crate) struct Subscription {
    id: u64,
    /// Last LSN this subscriber has read past.
    pub position: Arc<AtomicU64>,
    state: AppState,
}

impl Subscribers {
    pub fn register(state: &AppState, position: u64) -> Subscription {
        let subs = &state.0.subscribers;
        let id = subs.next_id.fetch_add(1, Ordering::Relaxed);
        let position = Arc::new(AtomicU64::new(position));
        subs.positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, position.clone());
        Subscription {
            id,
            position,
            state: state.clone(),
        }
    }

    /// (count, maximum lag, total lag) against `durable_lsn`.
    pub fn lag(&self, durable_lsn: u64) -> (usize, u64, u64) {
        let positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        let lags = positions
            .values()
            .map(|p| durable_lsn.saturating_sub(p.load(Ordering::Relaxed)));
        let (max, sum) = lags.fold((0, 0u64), |(m, s), l| (m.max(l), s.saturating_add(l)));
        (positions.len(), max, sum)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.state
            .0
            .subscribers
            .positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}
