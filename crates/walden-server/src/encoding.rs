//! Bytes in URLs and JSON: strict percent-decoding of path segments and query strings, and
//! the two JSON forms of a byte string (`name`: UTF-8 text or `null`; `name_b64`: base64,
//! always).

use crate::error::ApiError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

/// Decodes `%XX` escapes. Every `%` must start a two-digit hex escape. In a query string
/// (`plus_is_space`) a `+` is a space, as HTML forms and most URL libraries encode it.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                    }
                    _ => {
                        return Err(format!(
                            "malformed percent-encoding at byte {i}: `%` must be followed by \
                             two hex digits"
                        ))
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Base64 (standard alphabet, padded).
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes base64 (standard alphabet, padded).
pub fn b64_decode(s: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(s)
        .map_err(|e| format!("invalid base64 (standard alphabet, padded): {e}"))
}

/// Inserts `name` (the bytes as text when they are valid UTF-8, else `null`) and
/// `name_b64` (always) into `map`.
pub fn put_bytes(map: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).map_or(Value::Null, |s| Value::String(s.to_string()));
    map.insert(name.to_string(), text);
    map.insert(format!("{name}_b64"), Value::String(b64(bytes)));
}

/// The parsed query string of one request: names are text, values are raw bytes.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Query {
    /// Parses `raw`, accepting only the parameter names in `allowed` (a typo such as
    /// `if_versoin` is an error, not a silently unconditional write), each at most once.
    /// An empty value (`prefix=`) counts as absent.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let bad = |m: String| ApiError::bad_request("bad_query", m);
            let name = percent_decode(name, true).map_err(|e| bad(format!("query: {e}")))?;
            let name = String::from_utf8(name)
                .map_err(|_| bad("query parameter name is not UTF-8".into()))?;
            if !allowed.contains(&name.as_str()) {
                let expected = if allowed.is_empty() {
                    "this route takes none".to_string()
                } else {
                    format!("expected one of: {}", allowed.join(", "))
                };
                return Err(bad(format!(
                    "unknown query parameter `{}` ({expected})",
                    name.escape_debug()
                )));
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(bad(format!("query parameter `{name}` given twice")));
            }
            let value = percent_decode(value, true)
                .map_err(|e| bad(format!("query parameter `{name}`: {e}")))?;
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        Ok(Query { pairs })
    }

    /// The raw bytes of parameter `name`.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        self.bytes(name)
            .map(|v| {
                std::str::from_utf8(v).map_err(|_| {
                    ApiError::bad_request("bad_query", format!("`{name}` is not UTF-8"))
                })
            })
            .transpose()
    }

    /// Parameter `name` as an unsigned integer.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.text(name)?
            .map(|t| {
                t.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "bad_query",
                        format!(
                            "`{name}` must be a non-negative integer, got `{}`",
                            t.escape_debug()
                        ),
                    )
                })
            })
            .transpose()
    }

    /// Parameter `name` as a boolean (`true`/`false`/`1`/`0`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.text(name)?
            .map(|t| match t {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::bad_request(
                    "bad_query",
                    format!("`{name}` must be true or false, got `{}`", t.escape_debug()),
                )),
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a%2Fb%ff", false).unwrap(), b"a/b\xff");
        assert_eq!(percent_decode("a+b", false).unwrap(), b"a+b");
        assert_eq!(percent_decode("a+b", true).unwrap(), b"a b");
        assert!(percent_decode("%", false).is_err());
        assert!(percent_decode("%4", false).is_err());
        assert!(percent_decode("%zz", false).is_err());
    }

    #[test]
    fn query_rejects_unknown_and_duplicate_names() {
        let q = Query::parse(Some("prefix=a%20b&limit=3"), &["prefix", "limit"]).unwrap();
        assert_eq!(q.bytes("prefix").unwrap(), b"a b");
        assert_eq!(q.u64("limit").unwrap(), Some(3));
        assert!(Query::parse(Some("limt=3"), &["limit"]).is_err());
        assert!(Query::parse(Some("limit=3&limit=4"), &["limit"]).is_err());
        assert!(Query::parse(Some("limit=x"), &["limit"])
            .unwrap()
            .u64("limit")
            .is_err());
    }
}
