//! Responses: JSON success bodies and the one mapping from errors to HTTP.
//!
//! Errors are `{"error":CODE,"message":TEXT}` with the status and code of
//! [`Error::http_status`] / [`Error::code`]; a 412 adds the key's current
//! revision, a bad batch line its `line`. Internal failures are logged, not
//! shown.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use super::body::{Body, full};
use crate::error::Error;

/// What a request can fail with: a store error, or a routing one.
#[derive(Debug)]
pub enum ApiError {
    Kv(Error),
    NoRoute,
    /// The methods the route does allow.
    MethodNotAllowed(&'static str),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Kv(e)
    }
}

/// Seconds a client is told to wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

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
            &json!({"error": "no_route", "message": "no such route; see the HTTP API in the README"}),
        ),
        ApiError::MethodNotAllowed(allow) => {
            let mut resp = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method_not_allowed",
                        "message": format!("this route takes {allow}")}),
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            resp
        }
        ApiError::Kv(e) => kv_error_response(e),
    }
}

fn kv_error_response(e: &Error) -> Response<Body> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        log!("kvr serve: internal error: {e}");
        "internal error; the server's log has the details".to_string()
    } else {
        e.to_string()
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
            body["key"] = json!(key);
            body["expected"] = json!(expected);
            if let Some(l) = line {
                body["line"] = json!(l);
            }
        }
        Error::KeyNotFound { key } => body["key"] = json!(key),
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
