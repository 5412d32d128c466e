//! Watching the durable LSN: wait until it reaches a value, without forcing a sync (that is
//! `Wal::wait_durable`). For replication, change streams and commit waiters that must not
//! add fsyncs of their own.

use crate::error::Result;
use crate::wal::Wal;
use crate::Lsn;
use event_listener::Listener;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Wal {
    /// Blocks until the durable LSN is at least `lsn` or `timeout` passes; returns the durable
    /// LSN then (compare it with `lsn` to tell which). Fails if the log is closed or poisoned.
    pub fn wait_for_durable(&self, lsn: Lsn, timeout: Duration) -> Result<Lsn> {
        let inner = &self.inner;
        let deadline = Instant::now() + timeout;
        loop {
            let durable = inner.durable.load(Ordering::Acquire);
            if durable >= lsn.0 {
                return Ok(Lsn(durable));
            }
            let listener = inner.durable_event.listen();
            inner.check_open()?;
            if inner.durable.load(Ordering::Acquire) >= lsn.0 {
                continue;
            }
            if listener.wait_deadline(deadline).is_none() {
                return Ok(Lsn(inner.durable.load(Ordering::Acquire)));
            }
        }
    }

    /// Waits asynchronously (on any executor) until the durable LSN is at least `lsn`.
    pub async fn durable_at_least(&self, lsn: Lsn) -> Result<Lsn> {
        let inner = &self.inner;
        loop {
            let durable = inner.durable.load(Ordering::Acquire);
            if durable >= lsn.0 {
                return Ok(Lsn(durable));
            }
            let listener = inner.durable_event.listen();
            inner.check_open()?;
            if inner.durable.load(Ordering::Acquire) >= lsn.0 {
                continue;
            }
            listener.await;
        }
    }
}
