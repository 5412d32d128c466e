//! The connection limit (`--max-connections`), shared by the HTTP and RESP endpoints.
//!
//! Every connection is counted from the moment it is accepted (before a TLS handshake)
//! until it closes. One accepted while `max` others are admitted is refused: told so in
//! its endpoint's words, then closed within [`REFUSAL_DEADLINE`] (RESP: `-ERR max number
//! of clients reached`, as Redis says it; HTTP: `503` with a JSON error and
//! `Connection: close`, written without handing the connection to hyper). The client
//! learns why at once instead of hanging in the kernel's accept queue, and a runaway
//! client cannot take every file descriptor from the agents already connected.
//!
//! Refused connections never count against `max`: were they to, a client holding refused
//! sockets open would lock everyone out. They are bounded on their own: at most
//! [`REFUSING_MAX`] are being told at once, each for at most [`REFUSAL_DEADLINE`]; past
//! that a new one is closed at once without a word.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

/// Most refused connections being told so at once.
pub(crate) const REFUSING_MAX: u64 = 64;

/// How long a refused connection may take from its accept (its TLS handshake, its request
/// for HTTP, the answer, the close).
pub(crate) const REFUSAL_DEADLINE: Duration = Duration::from_secs(2);

/// What a refused RESP connection is told (Redis's words).
pub(crate) const RESP_REFUSAL: &[u8] = b"-ERR max number of clients reached\r\n";

/// The endpoint a connection came in on (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Http,
    Resp,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 2] = [Endpoint::Http, Endpoint::Resp];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Endpoint::Http => "http",
            Endpoint::Resp => "resp",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What becomes of a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Served.
    Admitted,
    /// Told the server is full, then closed.
    Refused,
    /// Closed at once: too many are being refused already.
    Dropped,
}

/// Open connections, counted against the limit.
#[derive(Debug)]
pub(crate) struct Connections {
    max: u64,
    /// Admitted connections open (both endpoints).
    admitted: AtomicU64,
    /// Admitted connections open, per endpoint.
    admitted_by: [AtomicU64; 2],
    /// Refused connections being told so.
    refusing: AtomicU64,
    /// Connections refused (told or dropped) per endpoint since start.
    refused_by: [AtomicU64; 2],
    /// When a refusal was last logged, in milliseconds after `started` (at most one log
    /// line a second: refusals come in floods).
    last_logged_ms: AtomicU64,
    started: Instant,
    /// The HTTP answer of a refused connection.
    http_refusal: Arc<[u8]>,
}

impl Connections {
    pub(crate) fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max: max as u64,
            admitted: AtomicU64::new(0),
            admitted_by: Default::default(),
            refusing: AtomicU64::new(0),
            refused_by: Default::default(),
            last_logged_ms: AtomicU64::new(0),
            started: Instant::now(),
            http_refusal: http_refusal(max).into(),
        })
    }

    /// Counts a connection just accepted on `endpoint` until the slot drops.
    pub(crate) fn open(self: &Arc<Self>, endpoint: Endpoint) -> Slot {
        let admit = self
            .admitted
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max).then_some(n + 1));
        let admission = if admit.is_ok() {
            self.admitted_by[endpoint.index()].fetch_add(1, Relaxed);
            Admission::Admitted
        } else {
            self.refused_by[endpoint.index()].fetch_add(1, Relaxed);
            self.log_refusal(endpoint);
            if self.refusing.fetch_add(1, Relaxed) < REFUSING_MAX {
                Admission::Refused
            } else {
                self.refusing.fetch_sub(1, Relaxed);
                Admission::Dropped
            }
        };
        Slot {
            connections: self.clone(),
            endpoint,
            admission,
        }
    }

    fn log_refusal(&self, endpoint: Endpoint) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_logged_ms.load(Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 1000)
            && self
                .last_logged_ms
                .compare_exchange(last, now.max(1), Relaxed, Relaxed)
                .is_ok()
        {
            tracing::warn!(
                endpoint = endpoint.label(),
                max = self.max,
                refused_total = self.refused_on(endpoint),
                "refusing connections: --max-connections reached (logged at most once a second)"
            );
        }
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// Admitted connections open on `endpoint` now.
    pub(crate) fn open_on(&self, endpoint: Endpoint) -> u64 {
        self.admitted_by[endpoint.index()].load(Relaxed)
    }

    /// Connections refused on `endpoint` since start.
    pub(crate) fn refused_on(&self, endpoint: Endpoint) -> u64 {
        self.refused_by[endpoint.index()].load(Relaxed)
    }

    /// The HTTP answer of a refused connection.
    pub(crate) fn http_refusal(&self) -> Arc<[u8]> {
        self.http_refusal.clone()
    }
}

/// A `503` with the JSON error every other refusal has (docs/API.md), closing the
/// connection. Written by hand because hyper never sees a refused connection.
fn http_refusal(max: usize) -> Vec<u8> {
    let error = crate::error::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        format!("the server holds its most connections (--max-connections {max}); retry later"),
    );
    let body = error.body().to_string();
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Most bytes of a refused HTTP connection's request read before answering it.
const REFUSED_REQUEST_BYTES_MAX: usize = 16 << 10;

/// Tells a refused connection `answer` and closes it, by `deadline` (taken at the accept:
/// a TLS handshake before this counts against it too).
///
/// With `request_first` (HTTP) the request's head is read first: an answer and a close
/// that arrive before a client has sent its request look, to a pooled HTTP client, like a
/// connection that broke, not like a 503. RESP answers at once, as Redis does.
///
/// The close lingers: what the client sent is read until it closes too, since closing
/// with unread input makes the kernel reset the connection, and a reset can overtake the
/// answer on its way.
pub(crate) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    answer: &[u8],
    request_first: bool,
    deadline: tokio::time::Instant,
) {
    let told = async {
        let mut sink = [0u8; 1024];
        let mut answer = answer;
        if request_first {
            let mut head = Vec::new();
            loop {
                let n = io.read(&mut sink).await?;
                if n == 0 {
                    return Ok(());
                }
                // Only the new bytes and the 3 before them can complete the blank line.
                let from = head.len().saturating_sub(3);
                head.extend_from_slice(&sink[..n]);
                if head[from..].windows(4).any(|w| w == b"\r\n\r\n")
                    || head.len() >= REFUSED_REQUEST_BYTES_MAX
                {
                    break;
                }
            }
            // A HEAD request's answer has no body.
            if head.starts_with(b"HEAD ") {
                if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                    answer = &answer[..end + 4];
                }
            }
        }
        io.write_all(answer).await?;
        io.shutdown().await?;
        while io.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout_at(deadline, told).await;
}

/// How long an admitted connection's TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP connection accepted and counted (not dropped by the limit).
pub(crate) struct Accepted {
    pub stream: tokio::net::TcpStream,
    pub peer: std::net::SocketAddr,
    /// Admitted or refused.
    pub slot: Slot,
    /// When its TLS handshake, if any, and, refused, its refusal must be done by.
    pub deadline: tokio::time::Instant,
}

/// Accepts the next connection on `listener` for `endpoint`: sets `TCP_NODELAY` and counts
/// it; one the limit drops is closed here, and a failed `accept` (out of file descriptors,
/// say) is logged and retried after 50 ms. Cancel-safe: nothing is held across an await.
pub(crate) async fn accept(
    listener: &tokio::net::TcpListener,
    connections: &Arc<Connections>,
    endpoint: Endpoint,
) -> Accepted {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(endpoint = endpoint.label(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let slot = connections.open(endpoint);
        let now = tokio::time::Instant::now();
        let deadline = match slot.admission() {
            Admission::Admitted => now + HANDSHAKE_TIMEOUT,
            Admission::Refused => now + REFUSAL_DEADLINE,
            Admission::Dropped => continue,
        };
        return Accepted {
            stream,
            peer,
            slot,
            deadline,
        };
    }
}

/// When a connection refused now must be closed by.
fn refusal_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + REFUSAL_DEADLINE
}

/// One counted connection; dropping it (the connection closed) frees its place.
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    endpoint: Endpoint,
    admission: Admission,
}

impl Slot {
    pub(crate) fn admission(&self) -> Admission {
        self.admission
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let c = &self.connections;
        match self.admission {
            Admission::Admitted => {
                c.admitted.fetch_sub(1, Relaxed);
                c.admitted_by[self.endpoint.index()].fetch_sub(1, Relaxed);
            }
            Admission::Refused => {
                c.refusing.fetch_sub(1, Relaxed);
            }
            Admission::Dropped => {}
        }
    }
}

/// An HTTP connection's stream with its slot: the slot drops when hyper drops the stream.
#[derive(Debug)]
pub(crate) struct Counted<S> {
    io: S,
    /// Held, not read: its drop frees the place.
    _slot: Slot,
}

impl<S> Counted<S> {
    /// `io`, counted by `slot` (admitted).
    pub(crate) fn new(io: S, slot: Slot) -> Self {
        Counted { io, _slot: slot }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An axum listener of plain-TCP HTTP connections that counts them; refused ones are told
/// so here, and never reach hyper.
#[derive(Debug)]
pub(crate) struct CountedListener<L> {
    inner: L,
    connections: Arc<Connections>,
}

impl<L> CountedListener<L> {
    pub(crate) fn new(inner: L, connections: Arc<Connections>) -> Self {
        CountedListener { inner, connections }
    }
}

impl<L> axum::serve::Listener for CountedListener<L>
where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    type Io = Counted<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            let slot = self.connections.open(Endpoint::Http);
            match slot.admission() {
                Admission::Admitted => return (Counted::new(io, slot), addr),
                Admission::Refused => {
                    let (answer, deadline) = (self.connections.http_refusal(), refusal_deadline());
                    tokio::spawn(async move {
                        refuse(io, &answer, true, deadline).await;
                        drop(slot);
                    });
                }
                Admission::Dropped => drop(io),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The limit admits `max` connections and refuses the next ones without counting them
    /// against it: once an admitted one closes, the next is admitted even while refused
    /// ones are still open. Past `REFUSING_MAX` refusals at once, new ones are dropped.
    #[test]
    fn admits_up_to_max_refuses_apart_and_bounds_the_refusals() {
        let c = Connections::new(2);
        let a = c.open(Endpoint::Http);
        let b = c.open(Endpoint::Resp);
        assert_eq!(a.admission(), Admission::Admitted);
        assert_eq!(b.admission(), Admission::Admitted);
        let refused: Vec<Slot> = (0..REFUSING_MAX).map(|_| c.open(Endpoint::Resp)).collect();
        assert!(refused.iter().all(|s| s.admission() == Admission::Refused));
        assert_eq!(c.open(Endpoint::Http).admission(), Admission::Dropped);
        assert_eq!(
            (c.open_on(Endpoint::Http), c.open_on(Endpoint::Resp)),
            (1, 1)
        );
        assert_eq!(c.refused_on(Endpoint::Resp), REFUSING_MAX);
        assert_eq!(c.refused_on(Endpoint::Http), 1);
        drop(a);
        let again = c.open(Endpoint::Http);
        assert_eq!(
            again.admission(),
            Admission::Admitted,
            "refused ones hold no place"
        );
        drop(refused);
        assert_eq!(c.open(Endpoint::Http).admission(), Admission::Refused);
        drop((b, again));
        assert_eq!(
            (c.open_on(Endpoint::Http), c.open_on(Endpoint::Resp)),
            (0, 0)
        );
    }

    /// The hand-written 503 is a whole HTTP/1.1 answer whose body is the JSON error.
    #[test]
    fn the_http_refusal_is_a_complete_answer_with_the_json_error() {
        let answer = String::from_utf8(http_refusal(7)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-connections 7"));
    }
}
