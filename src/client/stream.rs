//! Range streams: the request target of a range, and reading its NDJSON
//! lines to the end, a stream that breaks off or stalls being an error,
//! never a silently short result.

use std::io::BufRead;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use super::failure::not_our_pipe;
use super::read_ahead;
use crate::error::{Error, Result};
use crate::kv::Visit;
use crate::server::target::percent_encode;
use crate::types::RangeQuery;

/// One line of a range stream.
#[derive(Debug, Deserialize)]
struct RangeLine {
    key: Option<String>,
    key_b64: Option<String>,
    value: Option<String>,
    value_b64: Option<String>,
    revision: Option<u64>,
    #[serde(default)]
    expires_at_ms: Option<u64>,
}

pub(super) fn range_target(query: &RangeQuery) -> String {
    let mut target = "/v1/range?".to_string();
    let params = [
        ("start", &query.start),
        ("end", &query.end),
        ("prefix", &query.prefix),
    ];
    for (name, value) in params {
        if let Some(v) = value {
            target.push_str(&format!("{name}={}&", percent_encode(v, true)));
        }
    }
    if let Some(limit) = query.limit {
        target.push_str(&format!("limit={limit}&"));
    }
    if query.reverse {
        target.push_str("reverse=true&");
    }
    if query.keys_only {
        target.push_str("keys_only=true&");
    }
    target.pop();
    target
}

/// Whether reading a response body failed because `--timeout` passed
/// without data (the client's bound, not the server ending the stream).
pub(super) fn stalled(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

/// A stream that sent nothing for `--timeout`: `unavailable` (exit 5, may
/// work when retried), as a request that timed out is.
pub(super) fn stream_stalled(what: &str, url: &str) -> Error {
    let printed = match what {
        "range" => "; what was printed is only part of it",
        _ => "",
    };
    Error::Unavailable {
        message: format!(
            "the {what} stream from kvr server at {url} stalled: nothing came for --timeout{printed}"
        ),
        overloaded: false,
    }
}

/// Reads an NDJSON range stream to its end, visiting each item.
pub(super) fn read_stream(
    url: &str,
    mut reader: impl BufRead,
    keys_only: bool,
    visit: &mut Visit<'_>,
) -> Result<()> {
    let broke = |e: std::io::Error| {
        if stalled(&e) {
            return stream_stalled("range", url);
        }
        Error::io(
            format!(
                "the range stream from kvr server at {url} broke off (a server also ends a \
                 stream left unread for its --idle-timeout, 60 s by default, and kvr reads \
                 at most {} MiB ahead of a reader that does not keep up)",
                read_ahead::SPOOL_BYTES >> 20
            ),
            not_our_pipe(e),
        )
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(broke)?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            return Err(broke(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let item: RangeLine = serde_json::from_slice(&line)
            .map_err(|e| Error::Remote(format!("bad range line from {url}: {e}")))?;
        let key = bytes_of(item.key, item.key_b64, url)?;
        let entry = if keys_only {
            None
        } else {
            Some((
                bytes_of(item.value, item.value_b64, url)?,
                item.revision.unwrap_or(0),
            ))
        };
        let go_on = visit(
            &key,
            entry.as_ref().map(|(v, r)| crate::types::Item {
                value: v,
                revision: *r,
                expires_at_ms: item.expires_at_ms,
            }),
        )?;
        if !go_on {
            return Ok(());
        }
    }
}

fn bytes_of(plain: Option<String>, b64: Option<String>, url: &str) -> Result<Vec<u8>> {
    match (plain, b64) {
        (Some(s), _) => Ok(s.into_bytes()),
        (None, Some(b)) => B64
            .decode(b)
            .map_err(|e| Error::Remote(format!("bad base64 in a range line from {url}: {e}"))),
        (None, None) => Err(Error::Remote(format!(
            "a range line from {url} lacks a field"
        ))),
    }
}
