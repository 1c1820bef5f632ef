//! What a failed request means: a transport failure or an error body
//! mapped back to the [`Error`] the local store would return (by the
//! body's code, not only its status), and the messages of refused
//! values and batches.

use std::path::Path;

use serde::Deserialize;
use ureq::Body;
use ureq::http::Response;

use super::ServerLimits;
use crate::error::{Error, expected_text};
use crate::jsonl::show_key;

/// An error body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    line: Option<u64>,
    #[serde(default)]
    revision: Option<u64>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_b64: Option<String>,
    #[serde(default)]
    expected: Option<u64>,
    #[serde(default)]
    oldest_revision: Option<u64>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

impl ErrorBody {
    /// The key the body names, shown as errors show keys.
    fn shown_key(&self) -> Option<String> {
        match (&self.key, &self.key_b64) {
            (Some(k), _) => Some(show_key(k.as_bytes())),
            (None, Some(b)) => Some(format!("b64:{b}")),
            (None, None) => None,
        }
    }
}

/// Why `url` cannot be reached, for an error that [`unreachable`] accepts.
pub(super) fn unreachable_message(url: &str, e: &ureq::Error) -> String {
    match e {
        ureq::Error::HostNotFound => {
            format!("cannot reach kvr server at {url}: its host name does not resolve")
        }
        _ => format!("cannot reach kvr server at {url} (is kvr serve running?)"),
    }
}

/// A 502 or 504 that no kvr server wrote (it carries no `X-Kvr-Revision`):
/// a proxy in front of one could not reach it, or gave up waiting for it.
/// The request may not have got there (and a write that did may have been
/// applied), so it is retried as an unreachable server is.
pub(super) fn gateway_failure(resp: &Response<Body>) -> Option<String> {
    let status = resp.status().as_u16();
    // Every answer of kvr's but /healthz and /readyz carries its revision:
    // a 503 without one came from whatever is in between (Envoy's "upstream
    // connect error or disconnect/reset before headers"), maybe after it
    // passed the request on. Taken for kvr's own 503 (nothing applied), a
    // write went on to the next server and was applied on both (found by
    // an audit).
    let gateway = matches!(status, 502..=504) && !resp.headers().contains_key("x-kvr-revision");
    gateway.then(|| match status {
        502 => "HTTP 502: whatever is in between could not reach the server".to_string(),
        503 => "HTTP 503 from whatever is in between, not from kvr".to_string(),
        _ => "HTTP 504: whatever is in between gave up waiting for the server".to_string(),
    })
}

/// Refuses an answer kvr never gives: a redirect (a kvr server answers
/// where it is asked), and, to a read, a body with neither a length nor
/// chunked framing (HTTP/1.0, or one that ends with the connection), where
/// a cut answer cannot be told from a whole one: a range cut at a line end
/// printed as complete, with exit 0 (found by an audit). kvr frames every
/// body; a proxy that reframes keeps a length or chunks.
pub(super) fn check_answer(
    url: &str,
    resp: &Response<Body>,
    read: bool,
) -> crate::error::Result<()> {
    let status = resp.status();
    if status.is_redirection() && status.as_u16() != 304 {
        let to = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map_or_else(String::new, |l| format!(" to {l}"));
        return Err(Error::Remote(format!(
            "kvr server at {url} answered HTTP {}, a redirect{to}: kvr servers do not redirect, \
             so it was not applied there and is not followed; check the --server URL (give the \
             redirect's URL if that is the server)",
            status.as_u16()
        )));
    }
    let framed = resp.headers().contains_key(http::header::CONTENT_LENGTH)
        || resp
            .headers()
            .get(http::header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    // The client asks for no encoding: a compressed value printed as it
    // came was the wrong bytes, exit 0 (found by an audit).
    let encoding = resp
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().eq_ignore_ascii_case("identity"));
    if let Some(encoding) = encoding
        && status.is_success()
    {
        return Err(Error::Remote(format!(
            "kvr server at {url} answered with Content-Encoding {encoding}, which this client \
             did not ask for and kvr never sends: not used; check what is between this client \
             and the server (a proxy)"
        )));
    }
    if read && status.is_success() && !framed {
        return Err(Error::Remote(format!(
            "kvr server at {url} answered without a length or chunked framing (as HTTP/1.0 \
             does), so a cut answer could not be told from a whole one: not used; check what \
             is between this client and the server (a proxy)"
        )));
    }
    Ok(())
}

/// Failures that mean "this server is not there": try the next one.
pub(super) fn unreachable(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NetworkUnreachable
                | std::io::ErrorKind::HostUnreachable
        ),
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve),
        _ => false,
    }
}

pub(super) fn transport_error(url: &str, e: ureq::Error) -> Error {
    transport_error_given(url, e, None)
}

/// [`transport_error`] of a request: a TLS refusal's advice takes `--cacert`
/// (`None`: not given) into account.
pub(super) fn transport_error_given(url: &str, e: ureq::Error, cacert: Option<&Path>) -> Error {
    let tls = match &e {
        ureq::Error::Io(io) => crate::tls::failure_given(url, io, cacert),
        ureq::Error::Rustls(r) => crate::tls::failure_given(url, r, cacert),
        _ => None,
    };
    if let Some(tls) = tls {
        return tls;
    }
    match e {
        ureq::Error::Tls(what) => {
            Error::Tls(format!("TLS with kvr server at {url} failed: {what}"))
        }
        ureq::Error::Timeout(_) => Error::Unavailable {
            message: format!(
                "kvr server at {url} did not answer in time (--timeout); for a write the \
                 outcome is unknown"
            ),
            overloaded: false,
        },
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => Error::io(
            format!(
                "kvr server at {url} cut the request off (a body over its limits, such as \
                 --max-batch-bytes, is refused this way)"
            ),
            not_our_pipe(io),
        ),
        ureq::Error::Io(io) => Error::io(format!("talking to kvr server at {url} failed"), io),
        ureq::Error::BadUri(u) => Error::invalid(format!("bad server URL: {u}")),
        other => Error::Remote(format!("talking to kvr server at {url} failed: {other}")),
    }
}

/// A connection the server closed on us is a failure, never the quiet
/// "reader went away" that a broken stdout is: keep `BrokenPipe` out.
pub(super) fn not_our_pipe(io: std::io::Error) -> std::io::Error {
    if io.kind() == std::io::ErrorKind::BrokenPipe {
        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "connection closed")
    } else {
        io
    }
}

/// The error an unsuccessful response stands for.
pub(super) fn error_of(url: &str, mut resp: Response<Body>, key: Option<&[u8]>) -> Error {
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .unwrap_or_default();
    let Ok(body) = serde_json::from_str::<ErrorBody>(&text) else {
        return if status == 503 {
            Error::Unavailable {
                message: format!("kvr server at {url} is unavailable (HTTP 503)"),
                overloaded: false,
            }
        } else if let Some(what) = gateway_failure(&resp) {
            Error::Unavailable {
                message: format!("kvr server at {url} did not answer: {what}"),
                overloaded: false,
            }
        } else {
            // Not a kvr error body: something else answered there.
            Error::Remote(format!(
                "unexpected HTTP {status} from {url}, without a kvr error body: it does \
                 not look like a kvr server; check the --server URL"
            ))
        };
    };
    let strip = |prefix: &str| {
        body.message
            .strip_prefix(prefix)
            .unwrap_or(&body.message)
            .to_string()
    };
    let line_prefix = body.line.map(|l| format!("line {l}: ")).unwrap_or_default();
    match body.error.as_str() {
        "not_found" => Error::KeyNotFound {
            key: body
                .shown_key()
                .unwrap_or_else(|| show_key(key.unwrap_or_default())),
        },
        // Which of the --server list it was (an audit could not tell).
        "bad_request" if body.message.contains("speaks HTTPS only") => Error::Invalid {
            line: None,
            message: format!(
                "kvr server at {url} speaks HTTPS only: use {}",
                url.replacen("http://", "https://", 1)
            ),
        },
        "bad_request" => Error::Invalid {
            line: body.line,
            message: strip(&line_prefix),
        },
        "payload_too_large" => Error::TooLarge {
            message: body.message.clone(),
        },
        "precondition_failed" => Error::PreconditionFailed {
            line: body.line,
            key: body
                .shown_key()
                .unwrap_or_else(|| show_key(key.unwrap_or_default())),
            expected: expected_text(body.expected),
            current: body.revision,
        },
        "compacted" => Error::Compacted {
            requested: 0,
            oldest: body.oldest_revision.unwrap_or(0),
            resumed: false,
        },
        "unauthorized" => Error::Unauthorized(strip("unauthorized: ")),
        "insufficient_storage" => Error::DiskFull {
            context: format!("on kvr server at {url}"),
        },
        "overloaded" | "unavailable" => Error::Unavailable {
            message: body.message.clone(),
            overloaded: body.error == "overloaded",
        },
        "outcome_unknown" => Error::OutcomeUnknown {
            message: outcome_unknown(crate::idempotency::without_hint(&body.message)),
        },
        "idempotency_key_reused" => Error::IdempotencyKeyReused {
            key: body.idempotency_key.clone().unwrap_or_default(),
        },
        "not_clustered" => Error::NotClustered,
        "conflict" => Error::Conflict(body.message.clone()),
        "removed" => Error::Removed(body.message.clone()),
        "no_route" | "method_not_allowed" => Error::Remote(format!(
            "{url} does not look like a kvr server ({}: {}); check the --server URL",
            body.error, body.message
        )),
        _ => Error::Remote(format!("kvr server at {url} failed: {}", body.message)),
    }
}

/// A 413 for a value, in the client's terms: the limit is the server's.
pub(super) fn value_refused(url: &str, e: Error) -> Error {
    match e {
        Error::TooLarge { message } => Error::TooLarge {
            message: format!(
                "kvr server at {url} refused the value: {}; nothing was written",
                message.replace("the limit", "the server's limit")
            ),
        },
        other => other,
    }
}

/// A streamed value of unknown size that the server cut off: it is over
/// the server's value limit (the server reads a value only up to it).
pub(super) fn value_cut_off(urls: &[String]) -> Error {
    Error::TooLarge {
        message: format!(
            "kvr server at {} closed the connection while the value was being sent: the \
             value is over the server's limit on the size of a value (serve \
             --max-value-bytes); nothing was written",
            urls.join(", ")
        ),
    }
}

/// What to do about a batch over the server's limits: the limits are the
/// server's, not flags of this command, so say so and offer `--chunk-size`.
pub const CHUNK_HINT: &str = "nothing was written; send the input in parts with \
     `kvr --server URL batch --chunk-size N` (each part atomic on its own)";

/// A 413 for a batch, its message in the client's terms: the server's flag
/// named in it (`(--max-batch-ops)`) is for whoever runs the server.
pub(super) fn batch_too_large(url: &str, message: &str) -> Error {
    let mut text = message.to_string();
    if let Some(open) = text.find(" (--")
        && let Some(close) = text[open..].find(')')
    {
        text.replace_range(open..open + close + 1, "");
    }
    let text = text.replace("the limit", "the server's limit");
    Error::TooLarge {
        message: format!("kvr server at {url} refused the batch: {text}; {CHUNK_HINT}"),
    }
}

/// The server closed the connection while a batch body larger than its
/// `--max-batch-bytes` was being sent: the limit, as its 413 would say.
pub(super) fn batch_over_bytes(urls: &[String], max: usize) -> Error {
    Error::TooLarge {
        message: format!(
            "kvr server at {} closed the connection while the batch was being sent: the \
             batch body is over the server's limit of {max} bytes; {CHUNK_HINT}",
            urls.join(", ")
        ),
    }
}

/// What `line_over_batch_bytes` says after naming the line, before what
/// to do instead: `batch --chunk-size` says it of the part (its line
/// numbers count from the part's start, and earlier parts may have been
/// written).
pub const LINE_ALONE_HINT: &str = ", so no --chunk-size can send it; nothing was written";

/// A batch line of `len` bytes, longer than the server's limit on a batch
/// request: no part can hold it, whatever `--chunk-size`. `kvr put` is
/// offered when its value surely fits the server's value limit (the line
/// holds the value and more); an audit followed that advice for a line of
/// 70 MB, which `put` refused too.
pub(super) fn line_over_batch_bytes(
    urls: &[String],
    line: u64,
    len: u64,
    limits: &ServerLimits,
) -> Error {
    let instead = if len <= limits.max_value_bytes as u64 {
        format!(
            "write its key with kvr put (a single value may take up to {} bytes, serve \
             --max-value-bytes), or have the server's limit raised",
            limits.max_value_bytes
        )
    } else {
        format!(
            "have the server's limits raised (a value may take up to {} bytes, serve \
             --max-value-bytes)",
            limits.max_value_bytes
        )
    };
    Error::TooLarge {
        message: format!(
            "kvr server at {} refused the batch: line {line} alone is over the server's limit \
             of {} bytes on a batch request{LINE_ALONE_HINT}; {instead}",
            urls.join(", "),
            limits.max_batch_bytes,
        ),
    }
}

/// The server closed the connection while the batch body was being sent,
/// yet still answers: it refused a body over its size limit before reading
/// it whole (and so applied nothing).
pub(super) fn batch_cut_off(urls: &[String]) -> Error {
    Error::TooLarge {
        message: format!(
            "kvr server at {} closed the connection while the batch was being sent: the \
             batch is over the server's limit on the size of a batch request; {CHUNK_HINT}",
            urls.join(", ")
        ),
    }
}

/// A server's `outcome_unknown` message, saying the write may have been
/// applied: not twice where the server said it already (`… it may still
/// be applied; the write may or may not have been applied`, found by an
/// audit).
fn outcome_unknown(said: &str) -> String {
    if said.contains("may still be applied") || said.contains("may or may not") {
        said.to_string()
    } else {
        format!("{said}; the write may or may not have been applied")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unknown_outcome_is_said_once() {
        let said = "it was proposed but not committed within 7 s; it may still be applied";
        assert_eq!(super::outcome_unknown(said), said);
        assert_eq!(
            super::outcome_unknown("the server stopped"),
            "the server stopped; the write may or may not have been applied"
        );
    }
}
