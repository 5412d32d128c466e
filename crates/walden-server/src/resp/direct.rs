//! Answers the sync thread writes itself: a plain `SET` on a plain-TCP RESP connection is
//! answered `+OK` by the sync thread, right after the sync that made it durable and
//! visible, instead of waking the connection's task to write it. One cross-thread wake-up,
//! one task poll and one worker-side `write` fewer per write: the W7 A/B in
//! docs/BENCHMARKS.md measured it.
//!
//! Order is the one rule. A connection's answers leave in the order of its commands:
//! - the task hands over an answer ([`DirectAnswers::push`]) only after writing every answer
//!   of its own so far, and answers a command itself only after every handed-over answer
//!   was written ([`ConnAnswers::settled`]);
//! - the sync thread writes a connection's answers in the order they were handed over (the
//!   queue is in hand-over order, and a connection's commits, made one after another, have
//!   rising LSNs, so an earlier one is never due after a later one);
//! - when the socket is full the sync thread never waits: it keeps the bytes (`spill`), and
//!   every later answer of that connection goes behind them, until the task has written
//!   them (the task is woken for that, and only for that, or when it waits to answer).

use crate::metrics::Metrics;
use futures_util::task::AtomicWaker;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Instant;

/// Where the sync thread writes a connection's answers: its socket, without blocking.
pub(crate) trait AnswerSink: Send + Sync {
    /// Writes what it can of `bytes` now; `WouldBlock` when nothing fits.
    fn try_write(&self, bytes: &[u8]) -> std::io::Result<usize>;
}

/// A socket written through a shared reference (`TcpStream`; `UnixStream` in the tests).
impl<T: Send + Sync> AnswerSink for T
where
    for<'a> &'a T: std::io::Write,
{
    fn try_write(&self, bytes: &[u8]) -> std::io::Result<usize> {
        std::io::Write::write(&mut &*self, bytes)
    }
}

#[derive(Default)]
struct ConnState {
    /// Answers handed over and not yet written or spilled.
    outstanding: usize,
    /// Bytes the sync thread could not write; the task writes them.
    spill: Vec<u8>,
    /// The task holds spilled bytes it has not finished writing: the sync thread must not
    /// write past them.
    draining: bool,
    /// The task waits for `outstanding` to reach 0.
    waiting: bool,
}

/// One connection's answers in the sync thread's hands.
pub(crate) struct ConnAnswers {
    sink: Box<dyn AnswerSink>,
    state: Mutex<ConnState>,
    waker: AtomicWaker,
}

impl ConnAnswers {
    pub fn new(sink: Box<dyn AnswerSink>) -> Arc<ConnAnswers> {
        Arc::new(ConnAnswers {
            sink,
            state: Mutex::new(ConnState::default()),
            waker: AtomicWaker::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sync thread: writes one answer, or keeps it behind bytes not yet written.
    fn deliver(&self, answer: &[u8]) {
        let mut st = self.lock();
        st.outstanding -= 1;
        if st.spill.is_empty() && !st.draining {
            match self.sink.try_write(answer) {
                Ok(n) if n == answer.len() => {}
                Ok(n) => st.spill.extend_from_slice(&answer[n..]),
                // A full socket, or another error: the task writes it (and meets the error
                // itself, ending the connection); dropping it would shift every later answer.
                Err(_) => st.spill.extend_from_slice(answer),
            }
        } else {
            st.spill.extend_from_slice(answer);
        }
        // While the task writes spilled bytes it picks up new ones when done: no wake-up.
        let wake = (!st.spill.is_empty() && !st.draining) || (st.waiting && st.outstanding == 0);
        drop(st);
        if wake {
            self.waker.wake();
        }
    }

    /// Task: completes once every handed-over answer was written or spilled, with the
    /// spilled bytes to write (then call [`ConnAnswers::drained`]).
    pub async fn settled(&self) -> Vec<u8> {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            let mut st = self.lock();
            if st.outstanding == 0 {
                st.waiting = false;
                return Poll::Ready(self.take_spill(&mut st));
            }
            st.waiting = true;
            Poll::Pending
        })
        .await
    }

    /// Task: completes when the sync thread spilled bytes (the socket was full), with them
    /// (then call [`ConnAnswers::drained`]).
    pub async fn spilled(&self) -> Vec<u8> {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            let mut st = self.lock();
            if st.spill.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(self.take_spill(&mut st))
            }
        })
        .await
    }

    fn take_spill(&self, st: &mut ConnState) -> Vec<u8> {
        if !st.spill.is_empty() {
            st.draining = true;
        }
        std::mem::take(&mut st.spill)
    }

    /// Task: the bytes it took are written. More spilled meanwhile: those, to write too
    /// (and call this again); else the sync thread may write directly again.
    pub fn drained(&self) -> Vec<u8> {
        let mut st = self.lock();
        if st.spill.is_empty() {
            st.draining = false;
            Vec::new()
        } else {
            std::mem::take(&mut st.spill)
        }
    }
}

struct Handed {
    lsn: u64,
    conn: Arc<ConnAnswers>,
    started: Instant,
}

/// The answers handed to the sync thread, in hand-over order.
pub(crate) struct DirectAnswers {
    queue: Mutex<Vec<Handed>>,
    metrics: Arc<Metrics>,
}

impl DirectAnswers {
    pub fn new(metrics: Arc<Metrics>) -> DirectAnswers {
        DirectAnswers {
            queue: Mutex::new(Vec::new()),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Handed>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Task: the commit at `lsn` (logged, not durable) is answered by the sync thread.
    /// Call it before asking for the sync that covers it.
    pub fn push(&self, lsn: u64, conn: &Arc<ConnAnswers>, started: Instant) {
        conn.lock().outstanding += 1;
        self.lock().push(Handed {
            lsn,
            conn: conn.clone(),
            started,
        });
    }

    /// Sync thread, after a sync: `+OK` to every commit at or below `visible`; when the
    /// sync failed (`failure`), the error to every other one (nothing acknowledged).
    pub fn answer(&self, visible: u64, failure: Option<&str>) {
        let due: Vec<Handed> = {
            let mut q = self.lock();
            if q.is_empty() {
                return;
            }
            if failure.is_some() {
                std::mem::take(&mut *q)
            } else {
                let (due, rest) = std::mem::take(&mut *q)
                    .into_iter()
                    .partition(|h| h.lsn <= visible);
                *q = rest;
                due
            }
        };
        let mut error = Vec::new();
        if let Some(message) = failure {
            super::codec::error(&mut error, "ERR", message);
        }
        let mut timings = Vec::with_capacity(due.len());
        for h in due {
            let ok = h.lsn <= visible;
            h.conn.deliver(if ok { b"+OK\r\n" } else { &error });
            timings.push((
                if ok { 200 } else { 503 },
                h.started.elapsed().as_secs_f64(),
            ));
        }
        // One lock of the metrics for the whole group, after the answers are out.
        self.metrics.record_many("resp", "SET", &timings);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Read as _;
    use std::os::unix::net::UnixStream;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A connection's answers in the sync thread's hands, over a non-blocking Unix socket,
    /// the client's end of it, and the queue the sync thread answers from.
    fn connection() -> (Arc<ConnAnswers>, UnixStream, DirectAnswers) {
        let (server, client) = UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let conn = ConnAnswers::new(Box::new(server));
        (
            conn,
            client,
            DirectAnswers::new(Arc::new(Metrics::default())),
        )
    }

    /// A full socket: the sync thread spills instead of waiting, keeps every later answer
    /// behind the spilled bytes (also while the task is writing them), and the client
    /// reads every answer once, in order.
    #[test]
    fn answers_stay_in_order_through_a_full_socket() {
        let (conn, mut client, answers) = connection();
        // Enough answers to fill the socket buffer many times over.
        let n = 200_000u64;
        for lsn in 1..=n {
            answers.push(lsn, &conn, Instant::now());
        }
        answers.answer(n / 2, None);
        let spilled = conn.lock().spill.len();
        assert!(
            spilled > 0,
            "the socket never filled: the test proves nothing"
        );
        // The task starts writing the spill; meanwhile the rest comes due: it must queue.
        let mut taken = block_on(conn.spilled());
        answers.answer(n, None);
        assert_eq!(conn.lock().outstanding, 0);
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            client.read_to_end(&mut all).unwrap();
            all
        });
        let sink = conn.sink.as_ref();
        loop {
            let mut at = 0;
            while at < taken.len() {
                match sink.try_write(&taken[at..]) {
                    Ok(k) => at += k,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::yield_now()
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            taken = conn.drained();
            if taken.is_empty() {
                break;
            }
        }
        assert!(!conn.lock().draining);
        drop(conn);
        let all = reader.join().unwrap();
        assert_eq!(all.len(), 5 * n as usize, "every answer exactly once");
        assert!(all.chunks(5).all(|c| c == b"+OK\r\n"));
    }

    /// A failed sync answers the commits it did not cover with the error; the ones
    /// published before it still get `+OK`; `settled` completes once none is outstanding.
    #[test]
    fn a_failed_sync_answers_the_rest_with_the_error() {
        let (conn, mut client, answers) = connection();
        for lsn in [3, 5, 9] {
            answers.push(lsn, &conn, Instant::now());
        }
        answers.answer(5, Some("storage failed"));
        assert!(block_on(conn.settled()).is_empty());
        drop(conn);
        let mut all = String::new();
        client.read_to_string(&mut all).unwrap();
        assert_eq!(all, "+OK\r\n+OK\r\n-ERR storage failed\r\n");
    }
}
