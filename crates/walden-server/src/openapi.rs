//! The OpenAPI 3.1 document, written by hand in `openapi.json` beside this file and copied
//! verbatim into docs/API.md (a test checks both against [`crate::ROUTES`]).

/// The document, served at `/v1/openapi.json`.
pub const DOCUMENT: &str = include_str!("openapi.json");
