//! The commands of the RESP endpoint: a Redis-compatible subset over the same store, the
//! same limits and the same durable group commit as the HTTP routes.
//!
//! | command | answer |
//! |---|---|
//! | `SET key value [NX\|XX]` | `+OK` once durable; null when NX or XX did not hold |
//! | `GET key` | the value, or null |
//! | `DEL key [key ...]` | how many live keys it deleted, once durable |
//! | `EXISTS key [key ...]` | how many of the keys are live |
//! | `WALDEN.SET key value [IFVERSION n\|IFABSENT\|IFPRESENT]` | `[lsn, version]` once durable; `-CONFLICT` with the current version when the condition does not hold |
//! | `NAMESPACE [name]` | sets the connection's namespace (default `default`), or names it |
//! | `AUTH [user] token`, `PING [msg]`, `ECHO msg`, `QUIT`, `SELECT 0`, `CLIENT SETNAME\|SETINFO ...`, `COMMAND ...` | what Redis clients expect at connect |
//!
//! Keys live in the connection's namespace: `SET k v` on a connection in namespace `agents`
//! is `PUT /v1/ns/agents/kv/k` over HTTP, and the change stream shows it the same way.

use super::codec;
use super::direct::ConnAnswers;
use crate::error::ApiError;
use crate::routes::kv::{commit, settle_refusal, INLINE_COMMIT_BYTES_MAX};
use crate::routes::{check_key, check_ns, check_value};
use crate::state::AppState;
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Instant;
use walden_store::{Error as StoreError, PendingCommit, Precondition, Store};

/// The namespace a connection starts in.
const DEFAULT_NAMESPACE: &[u8] = b"default";

/// One connection's state.
pub(crate) struct Session {
    /// The token was given (or the server has none).
    authenticated: bool,
    namespace: Vec<u8>,
}

impl Session {
    pub fn new(state: &AppState) -> Self {
        Session {
            authenticated: state.0.token.is_none(),
            namespace: DEFAULT_NAMESPACE.to_vec(),
        }
    }

    /// The token was given (or the server has none).
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }
}

/// `SET key value` without options from a connection that may write: the command the
/// sync thread can answer (`+OK` once durable).
pub(crate) fn is_plain_set(session: &Session, args: &[&[u8]]) -> bool {
    session.authenticated && args.len() == 3 && args[0].eq_ignore_ascii_case(b"SET")
}

/// Commits a plain `SET` and hands its answer to the sync thread; false (nothing committed)
/// when it cannot go that way (a check fails, the store refuses, a large value), for
/// [`run`] to answer it as usual.
pub(crate) fn set_direct(
    session: &Session,
    state: &AppState,
    args: &[&[u8]],
    conn: &Arc<ConnAnswers>,
) -> bool {
    let (key, value) = (args[1], args[2]);
    let ns = &session.namespace;
    if check_key(state, key).is_err()
        || check_value(state, value).is_err()
        || ns.len() + key.len() + value.len() > INLINE_COMMIT_BYTES_MAX
    {
        return false;
    }
    let started = Instant::now();
    let store = state.store();
    let mut tx = store.begin();
    if tx.put(ns, key, value).is_err() {
        return false;
    }
    let Ok(pending) = tx.commit_deferred() else {
        return false;
    };
    state.0.direct.push(pending.lsn().get(), conn, started);
    // Asked after the hand-over, so the sync it starts answers it.
    state.0.syncer.request();
    true
}

/// After a command: go on, or close the connection once the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Continue,
    Close,
}

/// Runs one command, appending its answer to `out`.
pub(crate) async fn run(
    session: &mut Session,
    state: &AppState,
    args: &[&[u8]],
    out: &mut Vec<u8>,
) -> Next {
    let started = Instant::now();
    let name = args[0];
    let label = label(name);
    let result = dispatch(session, state, name, &args[1..], out).await;
    if label != "OTHER" {
        let status = result.as_ref().map_or_else(|e| e.status.as_u16(), |_| 200);
        let seconds = started.elapsed().as_secs_f64();
        state.0.metrics.record("resp", label, status, seconds);
    }
    result.unwrap_or_else(|e| {
        reply_error(out, &e);
        Next::Continue
    })
}

/// The metrics label of a command: a closed set.
fn label(name: &[u8]) -> &'static str {
    for l in ["SET", "GET", "DEL", "EXISTS", "WALDEN.SET"] {
        if name.eq_ignore_ascii_case(l.as_bytes()) {
            return l;
        }
    }
    "OTHER"
}

/// An [`ApiError`] as a RESP error: `-CONFLICT` for failed conditions, `-NOAUTH` and
/// `-WRONGPASS` for authentication, `-ERR` for the rest; the message is the HTTP one.
fn reply_error(out: &mut Vec<u8>, e: &ApiError) {
    let code = match e.code {
        "precondition_failed" | "conflict" => "CONFLICT",
        "noauth" => "NOAUTH",
        "wrongpass" => "WRONGPASS",
        _ => "ERR",
    };
    codec::error(out, code, &e.message);
}

fn syntax(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("syntax", message)
}

fn arity(name: &[u8], args: &[&[u8]], min: usize, max: usize) -> Result<(), ApiError> {
    if args.len() < min || args.len() > max {
        return Err(syntax(format!(
            "wrong number of arguments for '{}'",
            String::from_utf8_lossy(name).to_ascii_lowercase()
        )));
    }
    Ok(())
}

async fn dispatch(
    session: &mut Session,
    state: &AppState,
    name: &[u8],
    args: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<Next, ApiError> {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    // Open before authentication: what a client sends to log in, probe, or leave.
    if is("AUTH") {
        arity(name, args, 1, 2)?;
        return auth(session, state, args[args.len() - 1], out).map(|()| Next::Continue);
    }
    if is("QUIT") {
        codec::simple(out, "OK");
        return Ok(Next::Close);
    }
    if is("HELLO") {
        // RESP2 only, and the same answer before AUTH as after: clients (Lettuce,
        // go-redis) fall back to RESP2 and AUTH on exactly this error.
        return Err(syntax("unknown command 'HELLO' (walden speaks RESP2)"));
    }
    if !session.authenticated {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "noauth",
            "Authentication required: AUTH <token>",
        ));
    }
    if is("PING") {
        arity(name, args, 0, 1)?;
        match args.first() {
            Some(m) => codec::bulk(out, m),
            None => codec::simple(out, "PONG"),
        }
    } else if is("ECHO") {
        arity(name, args, 1, 1)?;
        codec::bulk(out, args[0]);
    } else if is("SET") {
        set(session, state, args, out).await?;
    } else if is("WALDEN.SET") {
        walden_set(session, state, args, out).await?;
    } else if is("GET") {
        arity(name, args, 1, 1)?;
        // A key over the limit cannot exist: null, as Redis answers a missing key.
        match state.store().get(&session.namespace, args[0]) {
            Some(v) => codec::bulk(out, &v.value),
            None => codec::null(out),
        }
    } else if is("EXISTS") {
        arity(name, args, 1, usize::MAX)?;
        let store = state.store();
        let n = args
            .iter()
            .filter(|k| store.get(&session.namespace, k).is_some())
            .count();
        codec::integer(out, n as i64);
    } else if is("DEL") {
        arity(name, args, 1, usize::MAX)?;
        let n = delete(session, state, args).await?;
        codec::integer(out, n);
    } else if is("NAMESPACE") {
        arity(name, args, 0, 1)?;
        match args.first() {
            Some(ns) => {
                check_ns(state, ns)?;
                session.namespace = ns.to_vec();
                codec::simple(out, "OK");
            }
            None => codec::bulk(out, &session.namespace),
        }
    } else if is("SELECT") {
        arity(name, args, 1, 1)?;
        if args[0] != b"0" {
            return Err(syntax(
                "walden has one database; use NAMESPACE <name> to separate keys",
            ));
        }
        codec::simple(out, "OK");
    } else if is("CLIENT") {
        let sub = args.first().copied().unwrap_or_default();
        if !(sub.eq_ignore_ascii_case(b"SETNAME") || sub.eq_ignore_ascii_case(b"SETINFO")) {
            return Err(syntax(
                "CLIENT: only SETNAME and SETINFO (accepted, ignored)",
            ));
        }
        codec::simple(out, "OK");
    } else if is("COMMAND") {
        // redis-cli asks for command documentation at start; it works without.
        codec::array_header(out, 0);
    } else {
        return Err(syntax(format!(
            "unknown command '{}'",
            String::from_utf8_lossy(&name[..name.len().min(64)])
        )));
    }
    Ok(Next::Continue)
}

fn auth(
    session: &mut Session,
    state: &AppState,
    given: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    let Some(token) = state.0.token.as_deref() else {
        return Err(syntax("AUTH called, but this server has no token"));
    };
    let mut header = b"Bearer ".to_vec();
    header.extend_from_slice(given);
    if !crate::auth::token_matches(&header, token) {
        session.authenticated = false;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrongpass",
            "the token is wrong",
        ));
    }
    session.authenticated = true;
    codec::simple(out, "OK");
    Ok(())
}

/// Checks key and value and commits a put under `pre`, answering once durable.
async fn put(
    session: &Session,
    state: &AppState,
    key: &[u8],
    value: &[u8],
    pre: Option<Precondition>,
) -> Result<walden_store::CommitInfo, ApiError> {
    check_key(state, key)?;
    check_value(state, value)?;
    let (ns, key, value) = (session.namespace.clone(), key.to_vec(), value.to_vec());
    let payload = ns.len() + key.len() + value.len();
    commit(state, payload, move |tx| {
        if let Some(p) = pre {
            tx.require(&ns, &key, p)?;
        }
        tx.put(&ns, &key, &value)
    })
    .await
}

/// `SET key value [NX|XX]`: Redis's answers (`+OK`, or null when the condition fails).
async fn set(
    session: &Session,
    state: &AppState,
    args: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    arity(b"SET", args, 2, usize::MAX)?;
    let pre = match args.get(2) {
        None => None,
        Some(_) if args.len() > 3 => {
            return Err(syntax(
                "SET takes at most one option, NX or XX (walden keeps no expiry)",
            ))
        }
        Some(o) if o.eq_ignore_ascii_case(b"NX") => Some(Precondition::Absent),
        Some(o) if o.eq_ignore_ascii_case(b"XX") => Some(Precondition::Present),
        Some(o) => {
            return Err(syntax(format!(
                "SET option '{}' is not supported (only NX or XX; walden keeps no expiry)",
                String::from_utf8_lossy(&o[..o.len().min(32)])
            )))
        }
    };
    match put(session, state, args[0], args[1], pre).await {
        Ok(_) => codec::simple(out, "OK"),
        Err(e) if pre.is_some() && e.code == "precondition_failed" => codec::null(out),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// `WALDEN.SET key value [IFVERSION n|IFABSENT|IFPRESENT]`: `[lsn, version]`.
async fn walden_set(
    session: &Session,
    state: &AppState,
    args: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    arity(b"WALDEN.SET", args, 2, 4)?;
    let option = args.get(2).copied();
    let pre = match (option, args.get(3)) {
        (None, None) => None,
        (Some(o), None) if o.eq_ignore_ascii_case(b"IFABSENT") => Some(Precondition::Absent),
        (Some(o), None) if o.eq_ignore_ascii_case(b"IFPRESENT") => Some(Precondition::Present),
        (Some(o), Some(v)) if o.eq_ignore_ascii_case(b"IFVERSION") => {
            let v = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| syntax("IFVERSION needs a version number"))?;
            Some(Precondition::Version(v))
        }
        _ => {
            return Err(syntax(
                "WALDEN.SET key value [IFVERSION n | IFABSENT | IFPRESENT]",
            ))
        }
    };
    let info = put(session, state, args[0], args[1], pre).await?;
    let version = info.versions.first().map_or(0, |(_, _, v)| *v);
    codec::array_header(out, 2);
    codec::integer(out, info.lsn.get() as i64);
    codec::integer(out, version as i64);
    Ok(())
}

/// `DEL`: each live key deleted by its own commit fenced by `Present` (a racing delete makes
/// it count once), the commits logged back to back and awaited once: the last one's
/// durability covers the earlier ones (the log is synced in order). Not atomic: if the
/// storage fails midway, the deletes logged before the failure still become durable (a sync
/// is asked for them) although the answer is an error. Keys above
/// [`INLINE_COMMIT_BYTES_MAX`] in all are deleted on the blocking pool, as large HTTP writes
/// are.
async fn delete(session: &Session, state: &AppState, keys: &[&[u8]]) -> Result<i64, ApiError> {
    for k in keys {
        check_key(state, k)?;
    }
    let ns = session.namespace.clone();
    // Each key is its own commit (two log records): count their overhead too, so that
    // thousands of tiny keys also leave the async worker.
    let bytes: usize = keys.iter().map(|k| k.len() + ns.len() + 64).sum();
    if bytes > INLINE_COMMIT_BYTES_MAX {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        return state
            .blocking(move |store| {
                let (deleted, last, failed) = log_deletes(store, &ns, &keys);
                // Absent keys may be absent by deletes not yet durable: sync everything
                // logged so far before answering, as a refusal does.
                let synced = match (&failed, last) {
                    (None, Some(pending)) if deleted == keys.len() as i64 => {
                        pending.wait().map(|_| ())
                    }
                    _ => store.sync().map(|_| ()),
                };
                match failed {
                    Some(e) => Err(e),
                    None => synced.map(|_| deleted).map_err(ApiError::from),
                }
            })
            .await;
    }
    let store = state.store();
    let (deleted, last, failed) = log_deletes(store, &ns, keys);
    if let Some(e) = failed {
        if last.is_some() {
            state.0.syncer.request();
        }
        return Err(e);
    }
    match last {
        Some(pending) if deleted == keys.len() as i64 => {
            state.0.syncer.request();
            pending.durable().await?;
        }
        // Some keys were absent, perhaps by deletes not yet durable: wait for everything
        // logged so far (this command's deletes included), as a refusal does.
        _ => settle_refusal(state).await?,
    }
    Ok(deleted)
}

/// Logs a fenced delete per key until one fails for another reason than the key being
/// absent: how many were logged, the last one's pending commit, the failure.
fn log_deletes<'s, K: AsRef<[u8]>>(
    store: &'s Store,
    ns: &[u8],
    keys: &[K],
) -> (i64, Option<PendingCommit<'s>>, Option<ApiError>) {
    let mut deleted = 0;
    let mut last = None;
    for key in keys {
        let key = key.as_ref();
        let mut tx = store.begin();
        let logged = tx
            .require(ns, key, Precondition::Present)
            .and_then(|()| tx.delete(ns, key))
            .and_then(|()| tx.commit_deferred());
        match logged {
            Ok(pending) => {
                deleted += 1;
                last = Some(pending);
            }
            Err(StoreError::PreconditionFailed { .. }) => {}
            Err(e) => return (deleted, last, Some(e.into())),
        }
    }
    (deleted, last, None)
}
