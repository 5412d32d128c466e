//! `POST /v1/txn`: several writes and preconditions, committed atomically and durably.
//!
//! ```json
//! {"ops": [{"op": "put", "ns": "tasks", "key": "t1", "value": "agent-a"},
//!          {"op": "delete", "ns": "tasks", "key_b64": "dDI="}],
//!  "preconditions": [{"ns": "tasks", "key": "t1", "absent": true},
//!                    {"ns": "tasks", "key": "t2", "version": 3},
//!                    {"ns": "tasks", "key": "t3", "present": true}]}
//! ```
//! Every byte string is given as text (`ns`, `key`, `value`) or base64 (`ns_b64`...),
//! exactly one of the two.

use super::kv::commit;
use super::{check_key, check_ns, json_ok, read_body};
use crate::encoding::{b64_decode, put_bytes, Query};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use walden_store::Precondition;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnRequest {
    #[serde(default)]
    ops: Vec<OpJson>,
    #[serde(default)]
    preconditions: Vec<PreJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OpKind {
    Put,
    Delete,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpJson {
    op: OpKind,
    ns: Option<String>,
    ns_b64: Option<String>,
    key: Option<String>,
    key_b64: Option<String>,
    value: Option<String>,
    value_b64: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreJson {
    ns: Option<String>,
    ns_b64: Option<String>,
    key: Option<String>,
    key_b64: Option<String>,
    absent: Option<bool>,
    present: Option<bool>,
    version: Option<u64>,
}

enum Op {
    Put(Vec<u8>, Vec<u8>, Vec<u8>),
    Delete(Vec<u8>, Vec<u8>),
}

fn bytes_field(
    text: Option<String>,
    b64: Option<String>,
    name: &str,
    at: &str,
) -> ApiResult<Option<Vec<u8>>> {
    let bad = |m: String| ApiError::bad_request("bad_txn", format!("{at}: {m}"));
    match (text, b64) {
        (Some(_), Some(_)) => Err(bad(format!("give `{name}` or `{name}_b64`, not both"))),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(b)) => b64_decode(&b)
            .map(Some)
            .map_err(|e| bad(format!("`{name}_b64`: {e}"))),
        (None, None) => Ok(None),
    }
}

fn required(v: Option<Vec<u8>>, name: &str, at: &str) -> ApiResult<Vec<u8>> {
    v.ok_or_else(|| {
        ApiError::bad_request(
            "bad_txn",
            format!("{at}: `{name}` (or `{name}_b64`) is required"),
        )
    })
}

/// `POST /v1/txn`.
pub async fn txn(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    Query::parse(uri.query(), &[])?;
    let limits = state.0.limits;
    let body = read_body(
        &headers,
        body,
        limits.body_bytes_max,
        "request body",
        "--max-body-bytes",
    )
    .await?;
    let req: TxnRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("the transaction is not valid JSON: {e}"),
        )
    })?;
    if req.ops.is_empty() {
        return Err(ApiError::bad_request(
            "bad_txn",
            "a transaction needs at least one operation in `ops`",
        ));
    }
    let count = req.ops.len() + req.preconditions.len();
    if count > limits.txn_ops_max {
        return Err(ApiError::too_large(
            "transaction (operations and preconditions)",
            count as u64,
            limits.txn_ops_max as u64,
            "--max-txn-ops",
        )
        .with("unit", "operations"));
    }
    let mut ops = Vec::with_capacity(req.ops.len());
    let mut txn_bytes = 0usize;
    for (i, o) in req.ops.into_iter().enumerate() {
        let at = format!("ops[{i}]");
        let ns = required(bytes_field(o.ns, o.ns_b64, "ns", &at)?, "ns", &at)?;
        let key = required(bytes_field(o.key, o.key_b64, "key", &at)?, "key", &at)?;
        check_ns(&state, &ns)?;
        check_key(&state, &key)?;
        let value = bytes_field(o.value, o.value_b64, "value", &at)?;
        txn_bytes += ns.len() + key.len() + value.as_ref().map_or(0, Vec::len);
        match (o.op, value) {
            (OpKind::Put, Some(v)) => {
                if v.len() > limits.value_bytes_max {
                    return Err(ApiError::too_large(
                        &format!("{at}: value"),
                        v.len() as u64,
                        limits.value_bytes_max as u64,
                        "--max-value-bytes",
                    ));
                }
                ops.push(Op::Put(ns, key, v));
            }
            (OpKind::Put, None) => {
                return Err(ApiError::bad_request(
                    "bad_txn",
                    format!("{at}: a put needs `value` or `value_b64`"),
                ))
            }
            (OpKind::Delete, Some(_)) => {
                return Err(ApiError::bad_request(
                    "bad_txn",
                    format!("{at}: a delete takes no value"),
                ))
            }
            (OpKind::Delete, None) => ops.push(Op::Delete(ns, key)),
        }
    }
    if txn_bytes > limits.txn_bytes_max {
        return Err(ApiError::too_large(
            "transaction",
            txn_bytes as u64,
            limits.txn_bytes_max as u64,
            "--max-txn-bytes",
        ));
    }
    let mut pres = Vec::with_capacity(req.preconditions.len());
    for (i, p) in req.preconditions.into_iter().enumerate() {
        let at = format!("preconditions[{i}]");
        let ns = required(bytes_field(p.ns, p.ns_b64, "ns", &at)?, "ns", &at)?;
        let key = required(bytes_field(p.key, p.key_b64, "key", &at)?, "key", &at)?;
        check_ns(&state, &ns)?;
        check_key(&state, &key)?;
        let pre = match (p.absent == Some(true), p.present == Some(true), p.version) {
            (true, false, None) => Precondition::Absent,
            (false, true, None) => Precondition::Present,
            (false, false, Some(v)) => Precondition::Version(v),
            _ => {
                return Err(ApiError::bad_request(
                    "bad_txn",
                    format!(
                        "{at}: give exactly one of `\"absent\": true`, `\"present\": true` or \
                         `\"version\": N`"
                    ),
                ))
            }
        };
        pres.push((ns, key, pre));
    }
    let info = commit(&state, txn_bytes, move |tx| {
        for (ns, key, pre) in &pres {
            tx.require(ns, key, *pre)?;
        }
        for op in &ops {
            match op {
                Op::Put(ns, key, value) => tx.put(ns, key, value)?,
                Op::Delete(ns, key) => tx.delete(ns, key)?,
            }
        }
        Ok(())
    })
    .await?;
    let versions: Vec<Value> = info
        .versions
        .iter()
        .map(|(ns, key, version)| {
            let mut m = Map::new();
            put_bytes(&mut m, "ns", ns);
            put_bytes(&mut m, "key", key);
            m.insert("version".into(), json!(version));
            Value::Object(m)
        })
        .collect();
    Ok(json_ok(
        json!({ "lsn": info.lsn.get(), "versions": versions }),
    ))
}
