//! Bearer-token authentication: every route but `/healthz` needs
//! `Authorization: Bearer <token>` when the server has a token. The comparison takes the
//! same time wherever the first differing byte is (`subtle`), so response timing does not
//! reveal how much of a guess was right.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use subtle::ConstantTimeEq as _;

/// The one route open without a token: load balancers and supervisors probe it.
pub const OPEN_PATH: &str = "/healthz";

/// True when `header_value` is `Bearer <token>` for exactly `token`.
pub fn token_matches(header_value: &[u8], token: &str) -> bool {
    let Some(given) = header_value
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
        .and_then(|_| header_value.get(7..))
    else {
        return false;
    };
    // Length is not secret (it leaks through the request size anyway); content is.
    given.ct_eq(token.as_bytes()).into()
}

/// Admits the request, or answers 401 when the server has a token and the request lacks
/// the right one (every path but [`OPEN_PATH`]).
pub(crate) fn check(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let Some(token) = state.0.token.as_deref() else {
        return Ok(());
    };
    if req.uri().path() == OPEN_PATH {
        return Ok(());
    }
    match req.headers().get(header::AUTHORIZATION) {
        Some(v) if token_matches(v.as_bytes(), token) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is wrong",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs `Authorization: Bearer <token>`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches(b"Bearer abc", "abc"));
        assert!(token_matches(b"bearer abc", "abc"));
        assert!(!token_matches(b"Bearer abd", "abc"));
        assert!(!token_matches(b"Bearer ab", "abc"));
        assert!(!token_matches(b"Bearer abcd", "abc"));
        assert!(!token_matches(b"Basic abc", "abc"));
        assert!(!token_matches(b"Bear", "abc"));
    }
}
