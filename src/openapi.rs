//! The OpenAPI 3.1 document of the HTTP API (`openapi/kvr.json`), built
//! into the binary: `GET /v1/openapi.json` serves it and `kvr openapi`
//! prints it.
//!
//! Operations, parameters and error codes that SPEC describes but the
//! server does not have yet carry `"x-kvr-planned": true`; the drift test
//! (`tests/server/openapi.rs`) checks that these are exactly the ones
//! missing from [`crate::server::ROUTES`] and [`crate::error::Code::ALL`],
//! and that everything else matches them.

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../openapi/kvr.json");

/// The media type it is served with.
pub const CONTENT_TYPE: &str = "application/json";
