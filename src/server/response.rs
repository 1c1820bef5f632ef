//! Responses: JSON success bodies and the one mapping from errors to HTTP.
//!
//! Errors are `{"error":CODE,"message":TEXT}` with the status and code of
//! [`Error::http_status`] / [`Error::code`]; a 404 adds the `key`, a 412
//! the `key`, the `expected` revision (a number; absent for `If-Match: *`
//! and a read's list of several tags) and the key's current `revision` (a
//! number, or null when absent), a bad batch line its `line`. Keys are
//! `"key"` strings, or `"key_b64"` when they are not UTF-8, as in JSON
//! lines. Internal failures are logged, not shown.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use super::body::{Body, full};
use crate::error::{Code, Error, expected_revision};

/// What a request can fail with: a store error, or a routing one.
#[derive(Debug)]
pub enum ApiError {
    Kv(Error),
    NoRoute,
    /// The methods the route does allow, as the `Allow` header lists them.
    MethodNotAllowed(String),
    /// An `Expect` other than `100-continue`, as sent (RFC 9110 10.1.1).
    ExpectationFailed(String),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Kv(e)
    }
}

/// Seconds a client is told to wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

/// A response of `body` as `content_type`.
pub fn text(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    let mut resp = Response::new(full(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The response for an error.
pub fn error_response(err: &ApiError) -> Response<Body> {
    match err {
        ApiError::NoRoute => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": Code::NoRoute.as_str(), "message": "no such route (paths are taken as sent, never normalized); the routes are in GET /v1/openapi.json and the README's HTTP API"}),
        ),
        ApiError::MethodNotAllowed(allow) => {
            let mut resp = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": Code::MethodNotAllowed.as_str(),
                        "message": format!("this route takes {allow}")}),
            );
            if let Ok(value) = HeaderValue::from_str(allow) {
                resp.headers_mut().insert(header::ALLOW, value);
            }
            resp
        }
        // 417 has no code of its own in SPEC's table: the request is bad.
        ApiError::ExpectationFailed(expect) => json_response(
            StatusCode::EXPECTATION_FAILED,
            &json!({"error": Code::BadRequest.as_str(),
                    "message": format!("Expect {expect:?} cannot be met: only 100-continue is \
                                        supported; nothing was applied")}),
        ),
        ApiError::Kv(e) => kv_error_response(e),
    }
}

/// Adds the key an error names as JSON lines do: `"key"` when it is
/// UTF-8, else `"key_b64"`. Errors carry the key as [`show_key`](crate::jsonl::show_key) shows it
/// (a JSON string, or `b64:` and base64), which is read back here.
fn put_key(body: &mut Value, shown: &str) {
    if let Some(b64) = shown.strip_prefix("b64:") {
        body["key_b64"] = json!(b64);
    } else if let Ok(key) = serde_json::from_str::<String>(shown) {
        body["key"] = json!(key);
    } else {
        body["key"] = json!(shown);
    }
}

fn kv_error_response(e: &Error) -> Response<Body> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        log!("kvr serve: internal error: {e}");
        "internal error; the server's log has the details".to_string()
    } else {
        e.http_message()
    };
    let mut body = json!({"error": e.code(), "message": message});
    match e {
        Error::Invalid { line: Some(l), .. } => body["line"] = json!(l),
        Error::PreconditionFailed {
            line,
            key,
            expected,
            current,
        } => {
            body["revision"] = json!(current);
            put_key(&mut body, key);
            if let Some(n) = expected_revision(expected) {
                body["expected"] = json!(n);
            }
            if let Some(l) = line {
                body["line"] = json!(l);
            }
        }
        Error::KeyNotFound { key } => put_key(&mut body, key),
        Error::Compacted { oldest, .. } => body["oldest_revision"] = json!(oldest),
        Error::IdempotencyKeyReused { key } => body["idempotency_key"] = json!(key),
        _ => {}
    }
    let mut resp = json_response(status, &body);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    resp
}
