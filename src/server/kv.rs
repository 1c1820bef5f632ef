//! The handlers of the key routes: `GET`/`HEAD`/`PUT`/`DELETE
//! /v1/kv/{key}` and `POST /v1/batch`, with what they share: the key from
//! the path, ETags, TTLs and idempotency claims. The router (`routes.rs`)
//! has checked the method and the query parameters before they run.

use std::borrow::Cow;

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use hyper::body::Incoming;

use super::State;
use super::body::{Body, BodyHold, full, read_limited};
use super::headers::{ReadConditions, ReadOutcome, WriteCondition};
use super::limits::{body_too_large, name_value_flag, too_many_ops};
use super::response::{ApiError, error_response, text};
use super::routes::REVISION;
use super::target::{Query, percent_decode};
use super::writer::WriteRequest;
use crate::error::{Error, Result};
use crate::jsonl::{OpReader, show_key};
use crate::limits;
use crate::types::{Applied, Op, now_ms};

/// Batch bodies larger than this are parsed on a blocking thread, so a big
/// batch does not stall the connections sharing its async worker.
const INLINE_PARSE_BYTES: usize = 64 << 10;

/// The header that carries a key's expiry (Unix ms) on reads.
pub const EXPIRES_AT: HeaderName = HeaderName::from_static("x-kvr-expires-at");

/// The key of a `/v1/kv/{key}` or `/v1/kv?key=` request (`query`: its
/// parameters, as the router parsed them).
fn key_of<'a>(uri: &'a Uri, query: &'a Query) -> Result<Cow<'a, [u8]>> {
    let in_path = uri.path().strip_prefix("/v1/kv/").filter(|k| !k.is_empty());
    let key = match (in_path, query.get("key")) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "the key is given both in the path and as ?key=; give it once",
            ));
        }
        (Some(k), None) => percent_decode(k, &"the key")?,
        (None, Some(k)) => Cow::Borrowed(k),
        (None, None) => {
            return Err(Error::invalid(
                "missing key: use /v1/kv/KEY or /v1/kv?key=KEY",
            ));
        }
    };
    limits::check_key(&key, None)?;
    Ok(key)
}

fn etag(revision: u64) -> HeaderValue {
    // Without `format!`: every GET and PUT sends one.
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(revision).as_bytes();
    let mut tag = [b'"'; 22]; // a u64 has at most 20 digits
    tag[1..=digits.len()].copy_from_slice(digits);
    HeaderValue::from_bytes(&tag[..digits.len() + 2]).unwrap_or(HeaderValue::from_static("\"\""))
}

pub(super) fn get(
    state: &State,
    uri: &Uri,
    query: &Query,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>> {
    let key = key_of(uri, query)?;
    let conditions = ReadConditions::parse(headers)?;
    let (found, revision) = state.engine.get(&key)?;
    let Some(crate::engine::Got {
        value,
        revision: entry_revision,
        expires_at_ms,
    }) = found
    else {
        let mut resp = error_response(&ApiError::Kv(Error::KeyNotFound {
            key: show_key(&key),
        }));
        resp.headers_mut()
            .insert(REVISION, HeaderValue::from(revision));
        return Ok(resp);
    };
    match conditions.evaluate(entry_revision) {
        ReadOutcome::Send => {}
        ReadOutcome::NotModified => {
            // The client's copy is current: no body, and the headers a 200
            // would carry about it (RFC 9110 section 15.4.5).
            let mut resp = Response::new(full(Bytes::new()));
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            let h = resp.headers_mut();
            h.insert(header::ETAG, etag(entry_revision));
            h.insert(REVISION, HeaderValue::from(revision));
            if let Some(at) = expires_at_ms {
                h.insert(EXPIRES_AT, HeaderValue::from(at));
            }
            return Ok(resp);
        }
        ReadOutcome::PreconditionFailed(expected) => {
            let mut resp = error_response(&ApiError::Kv(Error::PreconditionFailed {
                line: None,
                key: show_key(&key),
                expected,
                current: Some(entry_revision),
            }));
            resp.headers_mut()
                .insert(REVISION, HeaderValue::from(revision));
            return Ok(resp);
        }
    }
    let len = value.len();
    let body = if head {
        Bytes::new()
    } else {
        state.responses.hold(value)?
    };
    let mut resp = text(StatusCode::OK, body, "application/octet-stream");
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag(entry_revision));
    h.insert(REVISION, HeaderValue::from(revision));
    if head {
        // hyper gives a GET's from its body; a HEAD's body is empty.
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Some(at) = expires_at_ms {
        h.insert(EXPIRES_AT, HeaderValue::from(at));
    }
    Ok(resp)
}

/// `?ttl=SECS` of a PUT: 1 to 315,360,000 (SPEC "Expiry (TTL)").
fn ttl_of(query: &Query) -> Result<Option<u64>> {
    let Some(raw) = query.get("ttl") else {
        return Ok(None);
    };
    let ttl = std::str::from_utf8(raw)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "ttl must be a whole number of seconds, 1 to {}, not {:?}",
                crate::jsonl::MAX_TTL_SECS,
                String::from_utf8_lossy(raw)
            ))
        })?;
    crate::jsonl::check_ttl(ttl).map_err(Error::invalid)?;
    Ok(Some(ttl))
}

/// The header of SPEC "Idempotency".
/// (A `HeaderName`, not a string, which every lookup would parse again.)
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// What a write sent with `Idempotency-Key` asked for, fingerprinted.
pub struct Fingerprinted<'a> {
    pub method: &'a Method,
    /// The data key of a point write; empty for a batch or a range.
    pub key: &'a [u8],
    pub uri: &'a Uri,
    pub body: &'a [u8],
    /// `If-Match` / `If-None-Match` of a point write, as parsed: a retry
    /// with another precondition is another request (422).
    pub condition: WriteCondition,
}

/// The claim of a write sent with `Idempotency-Key`: the key (checked:
/// 400 when malformed) and the request's fingerprint over its method, data
/// key, parameters (`Query::canonical`), body and precondition, at the
/// time it is accepted (in a cluster the leader puts its own). The
/// fingerprint is computed here, on the node the client sent the request
/// to, and travels with the write, so every node records and compares the
/// same bytes.
pub fn claim(
    headers: &HeaderMap,
    req: &Fingerprinted<'_>,
) -> Result<Option<Box<crate::idempotency::Claim>>> {
    let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        // Which one is meant? Taking either makes the order of the lines
        // decide which request this repeats.
        return Err(Error::invalid(
            "Idempotency-Key is given more than once; give one key",
        ));
    }
    let idem = crate::idempotency::check_key(value.as_bytes())?;
    // The key is fingerprinted as bytes, wherever the request put it.
    let query = Query::parse(req.uri.query())?.canonical("key");
    let condition = req.condition.fingerprint_part();
    Ok(Some(Box::new(crate::idempotency::Claim {
        key: idem,
        fingerprint: crate::idempotency::fingerprint(
            req.method.as_str(),
            req.key,
            &query,
            req.body,
            &condition,
        ),
        time_ms: now_ms(),
    })))
}

/// The 200 of a write: `{"revision":N}` and the revision the answer
/// reflects ([`write`]).
fn written(revision: u64, reflected: u64) -> Response<Body> {
    // `{"revision":N}` as `json!` writes it, without building a map first
    // (every acknowledged write answers this).
    let mut digits = itoa::Buffer::new();
    let body = [
        b"{\"revision\":",
        digits.format(revision).as_bytes(),
        b"}\n",
    ]
    .concat();
    let mut resp = text(StatusCode::OK, body, "application/json");
    resp.headers_mut()
        .insert(REVISION, HeaderValue::from(reflected));
    resp
}

/// Sends a write to the writer; with its outcome comes the revision its
/// answer reflects (`X-Kvr-Revision`): the write's own when it took
/// revisions now, else the database's (a repeat answered from its
/// idempotency record, whose revision is older, or a batch that changed
/// nothing), so that the header never goes backwards on a node.
pub(super) async fn write(state: &State, req: WriteRequest) -> Result<(Applied, u64)> {
    let before = state.revision();
    let keyed = req.idempotency.is_some();
    let applied = match state.writer.write(req).await {
        Ok(applied) => applied,
        Err(e @ Error::OutcomeUnknown { .. }) => {
            return Err(crate::idempotency::with_hint(e, keyed));
        }
        Err(e) => {
            if let Error::PreconditionFailed {
                current: Some(current),
                ..
            } = &e
            {
                // Its body names the key's revision where the write was
                // applied (on a follower: the leader's, maybe not here yet).
                state.note_answered(*current);
            }
            return Err(e);
        }
    };
    let reflected = if applied.revision > before {
        applied.revision
    } else {
        state.revision().max(applied.revision)
    };
    state.note_answered(reflected);
    Ok((applied, reflected))
}

/// [`read_limited`] from the server's body budget; a refusal for want of
/// room counts as a write refused (`kvr_writes_rejected_total`).
pub(super) async fn read_body(
    state: &State,
    parts: &http::request::Parts,
    body: Incoming,
    limit: usize,
    too_large: impl Fn() -> Error,
) -> Result<(bytes::Bytes, BodyHold)> {
    let read = read_limited(parts, body, limit, too_large, &state.bodies).await;
    if let Err(Error::Unavailable {
        overloaded: true, ..
    }) = &read
    {
        state.metrics.rejected();
    }
    read
}

/// A 412 of a [`WriteCondition::Never`] says what the `If-Match` sent was
/// (the engine, asked for revision 0 of a present key, would say 0).
fn never_matched(e: Error, condition: WriteCondition, headers: &HeaderMap) -> Error {
    match (condition, e) {
        (
            WriteCondition::Never,
            Error::PreconditionFailed {
                line, key, current, ..
            },
        ) => Error::PreconditionFailed {
            line,
            key,
            expected: super::headers::never_matched(headers),
            current,
        },
        (_, e) => e,
    }
}

pub(super) async fn put(
    state: &State,
    req: Request<Incoming>,
    query: &Query,
) -> Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let key = key_of(&parts.uri, query)?;
    let ttl = ttl_of(query)?;
    let condition = WriteCondition::parse(&parts.headers)?;
    let (if_revision, must_exist) = match condition {
        WriteCondition::None => (None, false),
        WriteCondition::Exists => (None, true),
        // `"0"`: the key must be absent, as `if_revision` 0 everywhere.
        WriteCondition::Revision(n) => (Some(n), false),
        WriteCondition::Absent => (Some(0), false),
        // Revision 0 of a key that must exist: holds for no key.
        WriteCondition::Never => (Some(0), true),
    };
    let max = state.limits.max_value_bytes;
    let (value, _room) = read_body(state, &parts, body, max, || {
        body_too_large("the value", max, "--max-value-bytes")
    })
    .await?;
    // After the body (a client still sending it would see a reset, not
    // the 503), before any work on it.
    state.writer.admit()?;
    let idempotency = claim(
        &parts.headers,
        &Fingerprinted {
            method: &Method::PUT,
            key: &key,
            uri: &parts.uri,
            body: &value,
            condition,
        },
    )?;
    let op = accept(
        state,
        Op::put(key.into_owned(), Vec::from(value))
            .if_revision(if_revision)
            .ttl(ttl),
    );
    let (applied, reflected) = write(
        state,
        WriteRequest {
            ops: op.into_iter().collect(),
            must_exist,
            idempotency,
            ..WriteRequest::default()
        },
    )
    .await
    .map_err(|e| never_matched(e, condition, &parts.headers))?;
    let mut resp = written(applied.revision, reflected);
    resp.headers_mut()
        .insert(header::ETAG, etag(applied.revision));
    Ok(resp)
}

pub(super) async fn delete(
    state: &State,
    uri: &Uri,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response<Body>> {
    let key = key_of(uri, query)?;
    let condition = WriteCondition::parse(headers)?;
    let (if_revision, must_exist) = match condition {
        WriteCondition::None => (None, false),
        WriteCondition::Exists => (None, true),
        // No key has revision 0: `If-Match: "0"` fails on a present key
        // (its revision) and on a missing one (SPEC: a missing key with
        // If-Match is 412), never a 404.
        WriteCondition::Revision(0) => (Some(0), true),
        WriteCondition::Revision(n) => (Some(n), false),
        // The key must be absent: a 404 when it is, else 412.
        WriteCondition::Absent => (Some(0), false),
        WriteCondition::Never => (Some(0), true),
    };
    let idempotency = claim(
        headers,
        &Fingerprinted {
            method: &Method::DELETE,
            key: &key,
            uri,
            body: &[],
            condition,
        },
    )?;
    let ops = vec![Op::delete(key.clone()).if_revision(if_revision)];
    let (applied, reflected) = write(
        state,
        WriteRequest {
            ops,
            must_exist,
            idempotency,
            ..WriteRequest::default()
        },
    )
    .await
    .map_err(|e| never_matched(e, condition, headers))?;
    if applied.deletes == 0 {
        return Err(Error::KeyNotFound {
            key: show_key(&key),
        });
    }
    Ok(written(applied.revision, reflected))
}

pub(super) async fn batch(state: &State, req: Request<Incoming>) -> Result<Response<Body>> {
    WriteCondition::refuse(
        req.headers(),
        "a batch (its lines carry their own \"if_revision\")",
    )?;
    let (parts, body) = req.into_parts();
    let limits = state.limits.clone();
    let max = limits.max_batch_bytes;
    let (body, _room) = read_body(state, &parts, body, max, || {
        body_too_large("the batch body", max, "--max-batch-bytes")
    })
    .await?;
    // Before the body is parsed: a refusal costs only its reading.
    state.writer.admit()?;
    // A batch's conditions are its lines' `if_revision`.
    let idempotency = claim(
        &parts.headers,
        &Fingerprinted {
            method: &Method::POST,
            key: &[],
            uri: &parts.uri,
            body: &body,
            condition: WriteCondition::None,
        },
    )?;
    let (max_value, max_ops) = (limits.max_value_bytes, limits.max_batch_ops);
    let ops = if body.len() <= INLINE_PARSE_BYTES {
        parse_batch(&body, max_value, max_ops, state.cluster.is_none())?
    } else {
        let here = state.cluster.is_none();
        tokio::task::spawn_blocking(move || parse_batch(&body, max_value, max_ops, here))
            .await
            .map_err(|e| Error::Storage(format!("batch parser failed: {e}")))??
    };
    let (applied, reflected) = write(
        state,
        WriteRequest {
            ops,
            idempotency,
            ..WriteRequest::default()
        },
    )
    .await?;
    // In the order `kvr batch --json` prints it (a `json!` object would
    // sort its fields).
    let body = format!(
        "{{\"applied\":{},\"revision\":{},\"puts\":{},\"deletes\":{}}}\n",
        applied.applied(),
        applied.revision,
        applied.puts,
        applied.deletes
    );
    let mut resp = text(StatusCode::OK, body, "application/json");
    resp.headers_mut()
        .insert(REVISION, HeaderValue::from(reflected));
    Ok(resp)
}

/// The ops of a batch body, accepted at one clock (`here`; else by the
/// cluster's leader, see [`accept`]): a `ttl` becomes an absolute expiry,
/// a line whose expiry has passed is skipped.
fn parse_batch(body: &[u8], max_value: usize, max_ops: usize, here: bool) -> Result<Vec<Op>> {
    let now = now_ms();
    let mut ops = Vec::new();
    for (lines, op) in OpReader::new(body, max_value).enumerate() {
        let op = op.map_err(name_value_flag)?;
        if lines == max_ops {
            return Err(too_many_ops(max_ops));
        }
        if here {
            ops.extend(op.accept(now));
        } else {
            ops.push(op);
        }
    }
    Ok(ops)
}

/// Accepts an op (SPEC "Expiry (TTL)"): its `ttl` becomes an absolute
/// expiry by this server's clock, or, in a cluster, by the leader's: the
/// op then travels with its `ttl` and the entry carries the leader's time
/// (`WriteCommand::into_request`). `None`: a put whose expiry has passed.
fn accept(state: &State, op: Op) -> Option<Op> {
    if state.cluster.is_some() {
        Some(op)
    } else {
        op.accept(now_ms())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn etags_quote_the_revision_up_to_the_largest() {
        for (revision, tag) in [
            (0, "\"0\""),
            (7, "\"7\""),
            (1_000_000, "\"1000000\""),
            (u64::MAX, "\"18446744073709551615\""),
        ] {
            assert_eq!(super::etag(revision), tag);
        }
    }

    #[test]
    fn a_write_answers_its_revision_as_json() {
        for revision in [0, 42, u64::MAX] {
            let resp = super::written(revision, revision);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let body = runtime
                .block_on(http_body_util::BodyExt::collect(resp.into_body()))
                .unwrap()
                .to_bytes();
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                serde_json::json!({ "revision": revision })
            );
        }
    }
}
