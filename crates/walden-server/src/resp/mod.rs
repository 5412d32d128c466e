//! The RESP endpoint (`--resp-listen ADDR`): the store's single keys over the Redis
//! protocol (RESP2), so that any Redis client library can write durable memory, and at less
//! CPU per request than HTTP: no header parsing, routing or JSON, one small reply. A write
//! answers only once durable, through the same deferred commit and sync thread as the HTTP
//! routes. Same limits, same bearer token (`AUTH <token>`), same TLS. Off by default.
//!
//! - `codec`: the framing (bounded, incremental parser; reply encoders).
//! - `commands`: what each command does.
//! - `direct`: the answers the sync thread writes itself (a plain `SET`'s `+OK`).
//! - here: accepting (with TLS when configured), the per-connection loop, and shutdown:
//!   stop accepting, let each connection finish the command it is running, close.

mod codec;
mod commands;
mod direct;

pub(crate) use direct::DirectAnswers;

use crate::connections::{accept, refuse, Accepted, Admission, Endpoint, RESP_REFUSAL};
use crate::state::AppState;
use codec::{FrameLimits, ProtocolError};
use commands::{Next, Session};
use direct::ConnAnswers;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Most arguments in one command (`DEL` and `EXISTS` take many keys).
const ARGS_MAX: usize = 4096;

/// Accepts connections on `listener` until the server shuts down, then waits for the
/// connections to finish their current command.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
    auth_timeout: Duration,
) {
    let mut shutdown = state.0.shutdown.clone();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = accept(&listener, &state.0.connections, Endpoint::Resp) => {
                let Accepted { stream, peer, slot, deadline } = accepted;
                let admitted = slot.admission() == Admission::Admitted;
                let (state, acceptor) = (state.clone(), acceptor.clone());
                connections.spawn(async move {
                    let _slot = slot;
                    let result = match acceptor {
                        None if !admitted => {
                            refuse(stream, RESP_REFUSAL, false, deadline).await;
                            Ok(())
                        }
                        None => plain(stream, &state, auth_timeout).await,
                        Some(a) => match tokio::time::timeout_at(deadline, a.accept(stream)).await {
                            Ok(Ok(tls)) if !admitted => {
                                refuse(tls, RESP_REFUSAL, false, deadline).await;
                                Ok(())
                            }
                            Ok(Ok(tls)) => connection(tls, &state, None, auth_timeout).await,
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err(std::io::Error::other("TLS handshake timed out")),
                        },
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "RESP connection ended");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Completes once the server shuts down (the guard `wait_for` returns is dropped here: it
/// must not live across an await of a task that moves between threads).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// [`stopped`], owning its receiver, to be kept across the connection loop's iterations.
async fn stopped_owned(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    stopped(&mut shutdown).await;
}

/// What an authenticated connection may send: an argument as large as the largest of the
/// value, key and namespace limits; a command as large as one value with its key and
/// namespace, or as a JSON transaction body (`--max-body-bytes`, for `DEL` and `EXISTS`
/// of many keys), whichever is larger.
fn limits(state: &AppState) -> FrameLimits {
    let l = &state.0.limits;
    let one_write = l
        .value_bytes_max
        .saturating_add(l.key_bytes_max)
        .saturating_add(l.namespace_bytes_max)
        .saturating_add(4096);
    FrameLimits {
        args_max: ARGS_MAX,
        bulk_bytes_max: l
            .value_bytes_max
            .max(l.key_bytes_max)
            .max(l.namespace_bytes_max),
        command_bytes_max: one_write.max(l.body_bytes_max),
    }
}

/// What a connection that has not authenticated yet may send: small commands only (a
/// stranger cannot make the server buffer megabytes), but enough for the greetings clients
/// open with: `HELLO 3 AUTH user token SETNAME name` (7 arguments; go-redis and Lettuce
/// send it, get `-ERR unknown command`, and fall back to `AUTH`) and a token as long as
/// the server's.
fn before_auth(state: &AppState) -> FrameLimits {
    let token = state.0.token.as_ref().map_or(0, String::len);
    let bulk = token.max(1024);
    FrameLimits {
        args_max: 8,
        bulk_bytes_max: bulk,
        command_bytes_max: bulk.saturating_add(4096),
    }
}

/// Answers are written out once this many bytes are pending, even mid-batch: a pipeline of
/// large GETs must not pile its answers up in memory, and a client that does not read then
/// slows only itself.
const OUT_FLUSH_BYTES: usize = 64 << 10;

/// Buffers above this size are given back to the allocator once empty.
const BUFFER_KEEP_BYTES: usize = 64 << 10;

/// A plain-TCP connection: its plain `SET`s are answered by the sync thread, through a
/// second handle on the socket (see `direct`). TLS connections answer everything
/// themselves (the TLS session lives in the task).
///
/// The second handle is a second file descriptor per connection (mind `ulimit -n`); when
/// none can be had, the connection answers everything itself.
async fn plain(
    stream: tokio::net::TcpStream,
    state: &AppState,
    auth_timeout: Duration,
) -> std::io::Result<()> {
    let socket = stream.into_std()?;
    let second = socket.try_clone();
    let stream = tokio::net::TcpStream::from_std(socket)?;
    match second {
        Ok(second) => {
            let direct = Some(ConnAnswers::new(Box::new(second)));
            connection(stream, state, direct, auth_timeout).await
        }
        Err(e) => {
            tracing::debug!(error = %e, "no second socket handle: answers from the task");
            connection(stream, state, None, auth_timeout).await
        }
    }
}

/// Serves one connection: reads commands, runs them in order, and writes the task's answers
/// in as few writes as order allows (the ones a read brought, together; before a `SET`
/// handed to the sync thread; every 64 KiB). Ends when the client closes, on a protocol error
/// (answered first), on `QUIT`, or at shutdown between commands. With `direct`, a plain
/// `SET` is handed to the sync thread to answer; every other answer waits until the ones
/// handed over were written, and none is handed over before the task's own are written.
async fn connection<S>(
    mut io: S,
    state: &AppState,
    direct: Option<Arc<ConnAnswers>>,
    auth_timeout: Duration,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authenticated_limits = limits(state);
    let stranger_limits = before_auth(state);
    let shutdown = state.0.shutdown.clone();
    let mut session = Session::new(state);
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut start = 0;
    let mut out = Vec::with_capacity(256);
    // Keeps a command cut short between reads: parsed once, however many reads bring it.
    let mut parser = codec::Parser::default();
    // A connection that has not authenticated by then is closed (`--auth-timeout-secs`): a
    // stranger cannot hold connections open.
    let auth_timer = tokio::time::sleep(auth_timeout);
    // Made once, not per read: a shutdown future made and dropped for every command
    // registered and unregistered itself with the shared shutdown signal each time (two
    // locks of a mutex every connection shares, per command; the W7 profile).
    let stop = stopped_owned(state.0.shutdown.clone());
    tokio::pin!(auth_timer, stop);
    loop {
        let mut next = Next::Continue;
        // Every whole command the input holds, in order; shutdown stops before the next.
        while next == Next::Continue && !*shutdown.borrow() {
            let limits = if session.authenticated() {
                &authenticated_limits
            } else {
                &stranger_limits
            };
            match parser.parse(&input[start..], limits) {
                Ok(Some(n)) => {
                    let args: Vec<&[u8]> = parser
                        .args()
                        .iter()
                        .map(|r| &input[start + r.start..start + r.end])
                        .collect();
                    let handed = match &direct {
                        Some(conn) if commands::is_plain_set(&session, &args) => {
                            flush(&mut io, &mut out).await?;
                            commands::set_direct(&session, state, &args, conn)
                        }
                        _ => false,
                    };
                    if !handed {
                        settle(&mut io, &direct).await?;
                        next = commands::run(&mut session, state, &args, &mut out).await;
                    }
                    start += n;
                    if out.len() >= OUT_FLUSH_BYTES {
                        flush(&mut io, &mut out).await?;
                    }
                }
                Ok(None) => break,
                Err(ProtocolError(message)) => {
                    settle(&mut io, &direct).await?;
                    codec::error(&mut out, "ERR", &format!("Protocol error: {message}"));
                    next = Next::Close;
                }
            }
        }
        flush(&mut io, &mut out).await?;
        let stopping = *shutdown.borrow();
        if next == Next::Close || stopping {
            settle(&mut io, &direct).await?;
            return io.shutdown().await;
        }
        if start == input.len() {
            input.clear();
            start = 0;
            if input.capacity() > BUFFER_KEEP_BYTES {
                input.shrink_to(4096);
            }
            if out.capacity() > BUFFER_KEEP_BYTES {
                out.shrink_to(256);
            }
        } else if start > 0 && start >= input.len() / 2 {
            input.drain(..start);
            start = 0;
        }
        input.reserve(4096);
        let read = tokio::select! {
            // Spilled answers first: a client that sends without reading must not get
            // more of its input read while its answers wait.
            biased;
            bytes = spilled(&direct) => {
                write_spill(&mut io, &direct, bytes).await?;
                continue;
            }
            r = io.read_buf(&mut input) => r?,
            () = &mut auth_timer, if !session.authenticated() => {
                codec::error(&mut out, "ERR", "authentication timed out: AUTH <token> first");
                flush(&mut io, &mut out).await?;
                return io.shutdown().await;
            }
            () = &mut stop => {
                settle(&mut io, &direct).await?;
                return io.shutdown().await;
            }
        };
        if read == 0 {
            // The client closed its side; it may still read: the answers handed over are
            // written first (a client that is gone makes the write fail, not hang).
            settle(&mut io, &direct).await?;
            return Ok(());
        }
    }
}

async fn flush<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Waits until every answer handed to the sync thread was written, writing what it spilled.
async fn settle<S: AsyncWrite + Unpin>(
    io: &mut S,
    direct: &Option<Arc<ConnAnswers>>,
) -> std::io::Result<()> {
    if let Some(conn) = direct {
        let bytes = conn.settled().await;
        write_spill(io, direct, bytes).await?;
    }
    Ok(())
}

/// Completes with the bytes the sync thread spilled (never without `direct`).
async fn spilled(direct: &Option<Arc<ConnAnswers>>) -> Vec<u8> {
    match direct {
        Some(conn) => conn.spilled().await,
        None => std::future::pending().await,
    }
}

/// Writes spilled answers, and what spilled meanwhile, until none is left.
async fn write_spill<S: AsyncWrite + Unpin>(
    io: &mut S,
    direct: &Option<Arc<ConnAnswers>>,
    mut bytes: Vec<u8>,
) -> std::io::Result<()> {
    let Some(conn) = direct else { return Ok(()) };
    while !bytes.is_empty() {
        io.write_all(&bytes).await?;
        bytes = conn.drained();
    }
    Ok(())
}
