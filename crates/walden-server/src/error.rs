//! The one error shape every route answers with: `{"error": {"code", "message", ...}}`.
//!
//! `code` is a stable machine-readable word (documented in docs/API.md); `message` says in
//! words what was wrong with the request, or what failed. Conflicts and failed preconditions
//! add `current_version`, so a client can retry with `?if_version=`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use walden_store::Error as StoreError;

/// An HTTP error answer: status, stable code, human message, optional details.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`bad_path`, `too_large`, `precondition_failed`...).
    pub code: &'static str,
    /// What was wrong, in words.
    pub message: String,
    /// Extra fields merged into the `error` object (`current_version`, `first_lsn`...).
    pub details: Map<String, Value>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds a detail field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 413 `too_large`.
    pub fn too_large(what: &str, bytes: u64, limit: u64, flag: &str) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{what} of {bytes} bytes exceeds the limit of {limit} bytes ({flag})"),
        )
        .with("limit", limit)
    }

    /// 500 `internal`: a bug or an unexpected failure inside the server.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        for (k, v) in &self.details {
            error.insert(k.clone(), v.clone());
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"walden\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PreconditionFailed {
                ref current,
                ref expected,
                ..
            } => {
                let (current, expected) = (*current, expected.clone());
                ApiError::new(StatusCode::CONFLICT, "precondition_failed", e.to_string())
                    .with("current_version", current)
                    .with("expected", expected)
            }
            StoreError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::TooLarge { bytes, limit, .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
                    .with("limit", limit)
                    .with("bytes", bytes)
            }
            StoreError::InvalidArgument(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
            }
            StoreError::Log(walden_log::Error::Truncated { lsn, first }) => ApiError::new(
                StatusCode::GONE,
                "truncated",
                format!(
                    "LSN {} is no longer in the log (it now starts at {}); resume from a \
                     newer LSN or re-read the state",
                    lsn.get(),
                    first.get()
                ),
            )
            .with("first_lsn", first.get()),
            StoreError::Log(walden_log::Error::Closed) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            ),
            StoreError::Poisoned(_)
            | StoreError::Log(walden_log::Error::Poisoned { .. })
            | StoreError::Log(walden_log::Error::NoSpace { .. })
            | StoreError::Log(walden_log::Error::Io { .. }) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_failed",
                format!("storage failed, nothing was acknowledged: {e}"),
            ),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// A route's result.
pub type ApiResult<T = Response> = Result<T, ApiError>;
