//! Bearer-token authentication: every route but `/healthz` needs
//! `Authorization: Bearer TOKEN` when the server has a token, checked
//! before anything else about the request.

use http::HeaderMap;

use super::routes::Route;
use crate::error::{Error, Result};

/// Checks the request's token against the server's, if it has one.
pub fn check(expected: Option<&str>, route: Route, headers: &HeaderMap) -> Result<()> {
    let Some(expected) = expected else {
        return Ok(());
    };
    if route == Route::Healthz {
        return Ok(());
    }
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => Err(Error::Unauthorized(
            "this server requires a token: give --token, --token-file or KVR_TOKEN".into(),
        )),
        Some(t) if same(t.trim().as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(Error::Unauthorized(
            "the server did not accept the token; check --token, --token-file or KVR_TOKEN".into(),
        )),
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
