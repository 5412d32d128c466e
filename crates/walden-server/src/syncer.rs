//! The sync thread: one thread makes the deferred commits of every request durable.
//!
//! A write request commits with `Transaction::commit_deferred` on the async worker (checks,
//! buffered append, apply: no system call), asks this thread for a sync, and awaits
//! `PendingCommit::durable`, which wakes when the log's durable LSN passes its commit. The
//! thread calls `Store::sync` (write the log's pending bytes, one `fdatasync`, publish)
//! whenever asked, and at once again if more requests came while it synced: the same group
//! commit as the log's own, with no waiting window, but with one thread blocked in
//! `fdatasync` instead of one per request, and no thread hand-off per request.
//!
//! Asking is one atomic swap when the thread is already busy (the common case under load),
//! and an unpark (one futex wake) when it sleeps.
//!
//! After each sync the thread also writes the `+OK` of every RESP `SET` handed to it whose
//! commit is now visible (`resp::DirectAnswers::answer`): no task is woken to answer those.

use crate::resp::DirectAnswers;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use walden_store::Store;

struct Flags {
    /// A sync was asked for since the thread last started one.
    requested: AtomicBool,
    /// The thread should end.
    stop: AtomicBool,
}

/// Handle on the sync thread; stops (and joins) it on drop.
pub(crate) struct Syncer {
    flags: Arc<Flags>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The thread, to unpark it (also kept by the join handle, which `stop` takes).
    unparker: std::thread::Thread,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").finish_non_exhaustive()
    }
}

impl Syncer {
    /// Starts the thread. It holds `store` until [`Syncer::stop`].
    pub fn start(store: Arc<Store>, direct: Arc<DirectAnswers>) -> std::io::Result<Syncer> {
        let flags = Arc::new(Flags {
            requested: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let thread_flags = flags.clone();
        let handle = std::thread::Builder::new()
            .name("walden-sync".into())
            .spawn(move || run(&store, &thread_flags, &direct))?;
        Ok(Syncer {
            flags,
            unparker: handle.thread().clone(),
            thread: Mutex::new(Some(handle)),
        })
    }

    /// Asks for a sync of everything logged so far. Call it after the commit is logged:
    /// the sync that follows covers it.
    pub fn request(&self) {
        if !self.flags.requested.swap(true, Ordering::AcqRel) {
            self.unparker.unpark();
        }
    }

    /// Ends the thread once it has finished its current sync (a request made before this
    /// call is synced first), and waits for it. Idempotent.
    pub fn stop(&self) {
        self.flags.stop.store(true, Ordering::Release);
        self.unparker.unpark();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("the sync thread panicked");
            }
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(store: &Store, flags: &Flags, direct: &DirectAnswers) {
    loop {
        if flags.requested.swap(false, Ordering::AcqRel) {
            // A failed sync poisons the log: every waiter wakes with the error, and later
            // commits fail before they ask again, so this does not spin.
            let failure = store.sync().err().map(|e| {
                tracing::error!(error = %e, "log sync failed; the store refuses writes now");
                format!("storage failed, nothing was acknowledged: {e}")
            });
            // Visible means durable: the server's store runs at `Sync` durability (the
            // default; `server::store_options` never changes it), where a commit is
            // published only once durable.
            direct.answer(store.visible_lsn().get(), failure.as_deref());
            continue;
        }
        if flags.stop.load(Ordering::Acquire) {
            return;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Syncer;
    use std::sync::Arc;
    use std::time::Duration;
    use walden_store::{Store, StoreOptions};

    fn store(dir: &std::path::Path) -> Arc<Store> {
        Arc::new(Store::open(StoreOptions::new(dir).checkpoints(0, None)).unwrap())
    }

    fn direct() -> Arc<crate::resp::DirectAnswers> {
        Arc::new(crate::resp::DirectAnswers::new(Arc::default()))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_request_makes_pending_commits_durable_and_nothing_syncs_without_one() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path());
        let syncer = Syncer::start(store.clone(), direct()).unwrap();
        let fsyncs_before = store.wal().stats().fsyncs;
        let rt = runtime();
        let mut tx = store.begin();
        tx.put(b"ns", b"k", b"v").unwrap();
        let pending = tx.commit_deferred().unwrap();
        let lsn = pending.lsn();
        let mut durable = Box::pin(pending.durable());
        let early = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(50), durable.as_mut()).await
        });
        assert!(early.is_err(), "answered with no sync asked for");
        assert_eq!(store.wal().stats().fsyncs, fsyncs_before);
        syncer.request();
        let info = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), durable).await })
            .expect("the requested sync never came")
            .unwrap();
        assert_eq!(info.lsn, lsn);
        assert!(store.wal().durable_lsn() >= lsn);
        assert_eq!(&*store.get(b"ns", b"k").unwrap().value, b"v");
        // Many commits, one request each, while the thread syncs: fewer syncs than commits.
        let fsyncs_mid = store.wal().stats().fsyncs;
        let infos = rt.block_on(async {
            let mut waits = Vec::new();
            for i in 0..200u32 {
                let mut tx = store.begin();
                tx.put(b"ns", &i.to_be_bytes(), b"x").unwrap();
                let pending = tx.commit_deferred().unwrap();
                syncer.request();
                waits.push(pending.durable());
            }
            futures_util::future::join_all(waits).await
        });
        assert!(infos.iter().all(Result::is_ok));
        let fsyncs = store.wal().stats().fsyncs - fsyncs_mid;
        assert!(
            (1..200).contains(&fsyncs),
            "{fsyncs} fsyncs for 200 commits"
        );
    }

    #[test]
    fn stop_syncs_what_was_asked_for_then_lets_go_of_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path());
        let syncer = Syncer::start(store.clone(), direct()).unwrap();
        let mut tx = store.begin();
        tx.put(b"ns", b"k", b"v").unwrap();
        let lsn = tx.commit_deferred().unwrap().lsn();
        syncer.request();
        syncer.stop();
        assert!(
            store.wal().durable_lsn() >= lsn,
            "a requested sync was dropped"
        );
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the thread still holds the store"
        );
        syncer.request(); // after stop: harmless
        syncer.stop(); // idempotent
        drop(syncer);
    }
}
