//! The connection limit (`--max-connections`), shared by the HTTP and RESP endpoints.
//!
//! Every accepted connection is counted while it is open. One accepted while the server
//! already holds `max` is told so and closed instead of served: RESP answers
//! `-ERR max number of clients reached` (Redis's words, which clients recognise); HTTP
//! answers its first request `503` with a JSON error and `Connection: close`. Either way
//! the client learns why at once, rather than hanging in the kernel's accept queue, and a
//! runaway client cannot take every file descriptor (a plain RESP connection holds two)
//! from the agents already connected.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// Open connections, counted against the limit.
#[derive(Debug)]
pub(crate) struct Connections {
    max: u64,
    /// Open connections, admitted or not (both endpoints).
    open: AtomicU64,
    /// Open connections per endpoint, admitted or not.
    open_by: [AtomicU64; 2],
    /// Connections refused per endpoint since start.
    refused_by: [AtomicU64; 2],
}

impl Connections {
    pub(crate) fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max: max as u64,
            open: AtomicU64::new(0),
            open_by: Default::default(),
            refused_by: Default::default(),
        })
    }

    /// Counts a connection just accepted on `endpoint` until the slot drops. It is
    /// admitted when fewer than `max` others were open; a refused one still counts while
    /// it is being told so.
    pub(crate) fn open(self: &Arc<Self>, endpoint: Endpoint) -> Slot {
        let before = self.open.fetch_add(1, Relaxed);
        self.open_by[endpoint.index()].fetch_add(1, Relaxed);
        let admitted = before < self.max;
        if !admitted {
            self.refused_by[endpoint.index()].fetch_add(1, Relaxed);
            tracing::warn!(
                endpoint = endpoint.label(),
                max = self.max,
                "connection refused: --max-connections reached"
            );
        }
        Slot {
            connections: self.clone(),
            endpoint,
            admitted,
        }
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// Open connections on `endpoint` now.
    pub(crate) fn open_on(&self, endpoint: Endpoint) -> u64 {
        self.open_by[endpoint.index()].load(Relaxed)
    }

    /// Connections refused on `endpoint` since start.
    pub(crate) fn refused_on(&self, endpoint: Endpoint) -> u64 {
        self.refused_by[endpoint.index()].load(Relaxed)
    }
}

/// One counted connection; dropping it (the connection closed) frees its place.
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    endpoint: Endpoint,
    admitted: bool,
}

impl Slot {
    /// Whether the connection is to be served (else it is told the server is full).
    pub(crate) fn admitted(&self) -> bool {
        self.admitted
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.open.fetch_sub(1, Relaxed);
        self.connections.open_by[self.endpoint.index()].fetch_sub(1, Relaxed);
    }
}

/// An HTTP connection's stream with its slot: the slot drops when hyper drops the stream.
#[derive(Debug)]
pub(crate) struct Counted<S> {
    io: S,
    slot: Slot,
}

impl<S> Counted<S> {
    pub(crate) fn admitted(&self) -> bool {
        self.slot.admitted()
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

/// An axum listener whose connections are counted (HTTP).
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
        let (io, addr) = self.inner.accept().await;
        let slot = self.connections.open(Endpoint::Http);
        (Counted { io, slot }, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit admits `max` connections, refuses the next, counts the refused one while
    /// it is open, and admits again once one closed.
    #[test]
    fn admits_up_to_max_then_refuses_until_one_closes() {
        let c = Connections::new(2);
        let a = c.open(Endpoint::Http);
        let b = c.open(Endpoint::Resp);
        let refused = c.open(Endpoint::Resp);
        assert!(a.admitted() && b.admitted());
        assert!(!refused.admitted());
        assert_eq!(
            (c.open_on(Endpoint::Http), c.open_on(Endpoint::Resp)),
            (1, 2)
        );
        assert_eq!(c.refused_on(Endpoint::Resp), 1);
        drop(refused);
        assert!(!c.open(Endpoint::Http).admitted(), "still two open");
        drop(a);
        let again = c.open(Endpoint::Http);
        assert!(again.admitted());
        assert_eq!(c.refused_on(Endpoint::Http), 1);
    }
}
