//! `GET /v1/range`: JSON pages with an opaque cursor, or with
//! `Accept: application/x-ndjson` one NDJSON stream from one snapshot.
//!
//! A cursor carries the request it continues (bounds, prefix, flags, page
//! limit) and the last key sent. With a cursor the other parameters must be
//! absent or equal to the cursor's, else 400; `limit` may change and
//! applies from that page on.
//!
//! Streams and long pages are read by reader threads (`readers.rs`). A stream is read a
//! chunk of [`body::STREAM_CHUNK_BYTES`] at a time, as the connection asks
//! (`body::stream`), so memory stays constant, a slow client slows the
//! reads down instead of filling memory, and one that does not read holds
//! no thread; if reading fails midway the stream is aborted without its
//! final chunk.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header};

use super::State;
use super::body::{self, Body, full};
use super::routes::REVISION;
use super::target::Query;
use super::writer::WriteRequest;
use crate::engine::Snapshot;
use crate::error::{Error, Result};
use crate::jsonl;
use crate::types::RangeQuery;

/// Items per page when `limit` is not given (SPEC).
const DEFAULT_PAGE_ITEMS: u64 = 1000;
/// Most items per page (SPEC); larger reads use the NDJSON stream.
const MAX_PAGE_ITEMS: u64 = 10_000;
/// A page stops early (with a cursor) past this many bytes, so that a page
/// of large values stays a bounded allocation.
const PAGE_MAX_BYTES: usize = 8 << 20;
/// Pages of at most this many items are read on the connection's worker,
/// like a GET: they touch a few leaves, and the hand-off to a page reader
/// and back (two thread wake-ups) cost more than the read. Longer pages go
/// to the page readers, so a worker never stalls long on them.
const INLINE_PAGE_ITEMS: u64 = 256;
/// A page read on the worker that grows past this is dropped and read
/// again by a page reader (large values), where it may grow to
/// [`PAGE_MAX_BYTES`].
const INLINE_PAGE_BYTES: usize = 1 << 20;
/// A page item's JSON with a 16-byte key and a 100-byte value, rounded
/// up: what a page's buffer is sized for before it is read.
const TYPICAL_ITEM_BYTES: usize = 160;
/// The most a page's buffer starts with; a larger page grows it.
const FIRST_PAGE_CAPACITY: usize = 64 << 10;

pub async fn handle(state: &Arc<State>, uri: &Uri, headers: &HeaderMap) -> Result<Response<Body>> {
    // Unknown parameters were refused by the router (`routes::ROUTES`).
    let params = Query::parse(uri.query())?;
    if super::headers::wants_ndjson(headers) {
        stream(state, &params)
    } else {
        page(state, &params).await
    }
}

/// `DELETE /v1/range?start=&end=&prefix=`: deletes every key of the range
/// atomically (each taking a revision), at most `--max-batch-ops` of them
/// (else 413, nothing deleted). A bound is required, so a forgotten one
/// never wipes the database: a non-empty `start` or `end`, or a `prefix`;
/// `prefix=` (empty) is all, while an empty `start=` or `end=` (a script's
/// empty variable) bounds nothing and does not count.
pub async fn delete(
    state: &Arc<State>,
    uri: &Uri,
    headers: &http::HeaderMap,
) -> Result<Response<Body>> {
    super::headers::WriteCondition::refuse(headers, "a range delete")?;
    let params = Query::parse(uri.query())?;
    let bounded = |name| params.get(name).is_some_and(|v| !v.is_empty());
    if !bounded("start") && !bounded("end") && params.get("prefix").is_none() {
        return Err(Error::invalid(
            "DELETE /v1/range needs a non-empty start or end, or a prefix \
             (prefix= alone deletes every key)",
        ));
    }
    let mut query = query_of(&params)?;
    if query.prefix.is_none() && params.get("prefix").is_some() {
        query.prefix = Some(Vec::new());
    }
    let max = state.limits.max_batch_ops;
    state.writer.admit()?;
    let idempotency = super::kv::claim(
        headers,
        &super::kv::Fingerprinted {
            method: &http::Method::DELETE,
            key: &[],
            uri,
            body: &[],
            condition: super::headers::WriteCondition::None,
        },
    )?;
    let (applied, reflected) = super::kv::write(
        state,
        WriteRequest {
            delete_range: Some((query, max)),
            idempotency,
            ..WriteRequest::default()
        },
    )
    .await?;
    let body = serde_json::json!({"deleted": applied.deletes, "revision": applied.revision});
    let mut resp = super::response::json_response(http::StatusCode::OK, &body);
    resp.headers_mut()
        .insert(super::routes::REVISION, http::HeaderValue::from(reflected));
    Ok(resp)
}

/// The query of the `start`, `end`, `prefix`, `reverse`, `keys_only`
/// parameters; empty values mean "not given".
fn query_of(params: &Query) -> Result<RangeQuery> {
    let query = RangeQuery {
        reverse: params.flag("reverse")?,
        keys_only: params.flag("keys_only")?,
        ..bounds_of(params)
    };
    query.validate()?;
    Ok(query)
}

/// The keys the `start`, `end` and `prefix` parameters select (empty
/// values mean "not given"), not yet validated; the range and watch routes
/// read them alike.
pub(super) fn bounds_of(params: &Query) -> RangeQuery {
    let bytes = |name| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(<[u8]>::to_vec)
    };
    RangeQuery {
        start: bytes("start"),
        end: bytes("end"),
        prefix: bytes("prefix"),
        ..RangeQuery::default()
    }
}

fn stream(state: &Arc<State>, params: &Query) -> Result<Response<Body>> {
    let mut query = match cursor_of(params)? {
        Some(cursor) => cursor.resume(),
        None => query_of(params)?,
    };
    query.limit = params.count("limit")?;
    if query.limit == Some(0) {
        return Err(Error::invalid("limit must be a positive number"));
    }
    let (snap, revision) = state.snapshot()?;
    let body = body::stream(
        &state.engine,
        &state.responses,
        "range stream",
        RangeStream {
            snap,
            query,
            ended: false,
        },
    );
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(REVISION, HeaderValue::from(revision));
    Ok(resp)
}

/// An NDJSON range stream: the lines of `query` in one snapshot, read a
/// chunk at a time, each chunk's read going on after the last key of the
/// one before (the snapshot does not change, so the chunks together are
/// the one range).
struct RangeStream {
    snap: Snapshot,
    /// What is left to send: the request's range after the keys sent.
    query: RangeQuery,
    ended: bool,
}

impl body::Producer for RangeStream {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.ended {
            return Ok(None);
        }
        let mut buf = body::chunk_buffer();
        let (mut items, mut last) = (0u64, None);
        let query = &self.query;
        self.snap.range(query, |key, rec| {
            let entry = (!query.keys_only).then_some(rec.item());
            jsonl::write_line(&mut buf, key, entry)?;
            items += 1;
            if buf.len() >= body::STREAM_CHUNK_BYTES {
                last = Some(key.to_vec());
                return Ok(false);
            }
            Ok(true)
        })?;
        let left = self.query.limit.map(|limit| limit.saturating_sub(items));
        match last {
            Some(key) if left != Some(0) => {
                self.query = Cursor {
                    query: self.query.clone(),
                    limit: 0,
                    after: Some(key),
                }
                .resume();
                self.query.limit = left;
            }
            // The range, or its limit, is exhausted.
            _ => self.ended = true,
        }
        Ok((!buf.is_empty()).then(|| body::chunk_bytes(buf)))
    }
}

async fn page(state: &Arc<State>, params: &Query) -> Result<Response<Body>> {
    let mut page = match cursor_of(params)? {
        Some(cursor) => Page {
            from: cursor.resume(),
            limit: match params.get("limit") {
                None => cursor.limit,
                Some(_) => page_limit(params)?,
            },
            query: cursor.query,
        },
        None => {
            let query = query_of(params)?;
            Page {
                from: query.clone(),
                limit: page_limit(params)?,
                query,
            }
        }
    };
    // One item past the page tells whether a cursor is needed; the reader
    // reads no further.
    page.from.limit = Some(page.limit + 1);
    // A short page read on the worker that was cut by its smaller byte
    // bound is read again on the pool, so that where a page is read never
    // changes what it holds.
    let inline = if page.limit <= INLINE_PAGE_ITEMS {
        Some(read_page(state, &page, INLINE_PAGE_BYTES)?).filter(|read| !read.cut)
    } else {
        None
    };
    let ReadPage {
        body,
        room,
        revision,
        ..
    } = match inline {
        Some(read) => read,
        None => {
            let st = state.clone();
            super::blocking(&state.engine, "range", move |_| {
                read_page(&st, &page, PAGE_MAX_BYTES)
            })
            .await?
        }
    };
    let mut resp = Response::new(full(room.hold(body)?));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(REVISION, HeaderValue::from(revision));
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

/// One page to read: the request's query, where this page starts, and its
/// item limit.
struct Page {
    query: RangeQuery,
    from: RangeQuery,
    limit: u64,
}

/// The request's cursor, if any, after checking that the other parameters
/// are absent or equal to the cursor's (SPEC): a cursor continues one
/// request, and a page of another range is a mistake to report, not to
/// answer with the cursor's items.
fn cursor_of(params: &Query) -> Result<Option<Cursor>> {
    let Some(text) = params.get("cursor").filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let cursor = decode_cursor(text)?;
    let q = &cursor.query;
    // Given, even empty, a bound must be the cursor's: empty means no
    // bound (as without a cursor), which differs from a cursor's bound.
    let differs = |name: &str, ours: &Option<Vec<u8>>| {
        params
            .get(name)
            .is_some_and(|v| v != ours.as_deref().unwrap_or_default())
    };
    let flag_differs = |name: &str, ours: bool| -> Result<bool> {
        Ok(params.get(name).is_some() && params.flag(name)? != ours)
    };
    let mismatch = [
        ("start", differs("start", &q.start)),
        ("end", differs("end", &q.end)),
        ("prefix", differs("prefix", &q.prefix)),
        ("reverse", flag_differs("reverse", q.reverse)?),
        ("keys_only", flag_differs("keys_only", q.keys_only)?),
    ]
    .into_iter()
    .find(|(_, d)| *d);
    if let Some((name, _)) = mismatch {
        return Err(Error::invalid(format!(
            "{name} differs from the request the cursor continues; with a cursor give the \
             other parameters unchanged or leave them out (limit may change)"
        )));
    }
    Ok(Some(cursor))
}

fn page_limit(params: &Query) -> Result<u64> {
    match params.number("limit")? {
        None => Ok(DEFAULT_PAGE_ITEMS),
        Some(n) if (1..=MAX_PAGE_ITEMS).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(format!(
            "limit {n} is outside 1 to {MAX_PAGE_ITEMS}; for more, page with the cursor \
             or ask for Accept: application/x-ndjson"
        ))),
    }
}

/// A page as read: its body and the snapshot's revision.
struct ReadPage {
    /// `{"items":[…],"cursor":…}`
    body: Bytes,
    /// The room of the server's answer budget the body took as it grew.
    room: super::body::Growing,
    revision: u64,
    /// Whether the page stopped before its limit at `max_bytes`.
    cut: bool,
}

/// One page; it stops early, with a cursor, past `max_bytes`.
fn read_page(state: &State, page: &Page, max_bytes: usize) -> Result<ReadPage> {
    let (snap, revision) = state.snapshot()?;
    // Sized for the page up front (within a bound): grown from empty, a
    // page of 100 items was reallocated a dozen times on its way to 14 KB.
    let expected = usize::try_from(page.limit)
        .unwrap_or(usize::MAX)
        .saturating_mul(TYPICAL_ITEM_BYTES);
    let mut out = Vec::with_capacity(expected.min(FIRST_PAGE_CAPACITY));
    out.extend_from_slice(b"{\"items\":[");
    let mut room = state.responses.growing();
    let (mut count, mut more, mut cut) = (0u64, false, false);
    let mut last_key = Vec::new();
    let keys_only = page.query.keys_only;
    snap.range(&page.from, |key, rec| {
        if count == page.limit || out.len() >= max_bytes {
            more = true;
            cut = count < page.limit;
            return Ok(false);
        }
        if count > 0 {
            out.push(b',');
        }
        let entry = (!keys_only).then_some(rec.item());
        jsonl::write_line(&mut out, key, entry)?;
        out.pop(); // the line's newline
        room.cover(out.len())?;
        count += 1;
        // Kept only where the next item would stop the page (the cursor
        // needs it then); the keys before it are not copied.
        if count == page.limit || out.len() >= max_bytes {
            last_key.clear();
            last_key.extend_from_slice(key);
        }
        Ok(true)
    })?;
    out.extend_from_slice(b"],\"cursor\":");
    // `more` is set only after an item was sent, so `last_key` is its key
    // (which may be the empty key).
    if more {
        let next = Cursor {
            query: page.query.clone(),
            limit: page.limit,
            after: Some(last_key),
        };
        out.extend_from_slice(format!("\"{}\"", encode_cursor(&next)).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b"}\n");
    Ok(ReadPage {
        body: Bytes::from(out),
        room,
        revision,
        cut,
    })
}

/// Where the next page starts: the request's query, its page limit, and
/// the last key sent (absent only in version 1 cursors, whose query had
/// already moved past it).
#[derive(Debug)]
struct Cursor {
    query: RangeQuery,
    limit: u64,
    after: Option<Vec<u8>>,
}

impl Cursor {
    /// The query of the rest of the range: the keys after `after`, in the
    /// request's direction.
    fn resume(&self) -> RangeQuery {
        let mut next = self.query.clone();
        if let Some(last) = &self.after {
            if self.query.reverse {
                next.end = Some(last.clone());
            } else {
                let mut start = last.clone();
                start.push(0); // the smallest key after `last`
                next.start = Some(start);
            }
        }
        next
    }
}

/// Cursor layout (then URL-safe base64 without padding): version byte 3,
/// flags (1 reverse, 2 keys-only), page limit u32 LE, then the request's
/// start, end and prefix and the last key sent, each a presence byte and,
/// if present, u32 LE length and bytes, then the CRC-32 of all before it
/// (u32 LE): a cursor cut or changed on its way back (a copy and paste, a
/// byte flipped) is refused rather than read as another range. Version 2
/// had no CRC; version 1 (before the request's own bounds were kept) had
/// no last key either: its start or end had moved. Both are still read, so
/// a client paging across an upgrade goes on.
fn encode_cursor(cursor: &Cursor) -> String {
    let q = &cursor.query;
    let flags = u8::from(q.reverse) | (u8::from(q.keys_only) << 1);
    let mut out = vec![3, flags];
    out.extend_from_slice(&(cursor.limit as u32).to_le_bytes());
    for part in [&q.start, &q.end, &q.prefix, &cursor.after] {
        match part {
            Some(b) => {
                out.push(1);
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
            None => out.push(0),
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    B64URL.encode(out)
}

fn decode_cursor(text: &[u8]) -> Result<Cursor> {
    let bad = || Error::invalid("invalid cursor: pass back the cursor of the previous page as is");
    let mut bytes = B64URL.decode(text).map_err(|_| bad())?;
    if bytes.first() == Some(&3) {
        let Some(body) = bytes.len().checked_sub(4) else {
            return Err(bad());
        };
        let crc = u32::from_le_bytes([
            bytes[body],
            bytes[body + 1],
            bytes[body + 2],
            bytes[body + 3],
        ]);
        bytes.truncate(body);
        if crc32fast::hash(&bytes) != crc {
            return Err(bad());
        }
    }
    let mut rest = bytes.as_slice();
    let mut take = |n: usize| -> Result<&[u8]> {
        if rest.len() < n {
            return Err(bad());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let head = take(6)?;
    let parts_count = match head[0] {
        1 => 3,
        2 | 3 => 4,
        _ => return Err(bad()),
    };
    let flags = head[1];
    // Exactly what `encode_cursor` writes: a cursor edited by hand is not
    // read as some other request.
    if flags & !3 != 0 {
        return Err(bad());
    }
    let limit = u64::from(u32::from_le_bytes([head[2], head[3], head[4], head[5]]));
    let mut parts: [Option<Vec<u8>>; 4] = [None, None, None, None];
    for part in parts.iter_mut().take(parts_count) {
        match take(1)?[0] {
            0 => {}
            1 => {
                let len = take(4)?;
                let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
                *part = Some(take(len)?.to_vec());
            }
            _ => return Err(bad()),
        }
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    let [start, end, prefix, after] = parts;
    let cursor = Cursor {
        query: RangeQuery {
            start,
            end,
            prefix,
            limit: None,
            reverse: flags & 1 != 0,
            keys_only: flags & 2 != 0,
        },
        limit,
        after,
    };
    if !(1..=MAX_PAGE_ITEMS).contains(&limit)
        || cursor.query.validate().is_err()
        || cursor.resume().validate().is_err()
    {
        return Err(bad());
    }
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Cursor, MAX_PAGE_ITEMS, RangeQuery, decode_cursor, encode_cursor};
    use crate::error::Error;

    fn bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20))
    }

    proptest! {
        /// Whatever a client sends as a cursor: a query or a 400, never a
        /// panic (lengths past the end, a huge limit, a bad version).
        #[test]
        fn any_cursor_decodes_or_is_invalid(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            use base64::Engine;
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
            for candidate in [text.as_bytes(), raw.as_slice()] {
                match decode_cursor(candidate) {
                    Ok(c) => {
                        prop_assert!((1..=MAX_PAGE_ITEMS).contains(&c.limit));
                        prop_assert!(c.query.validate().is_ok());
                        prop_assert!(c.resume().validate().is_ok());
                    }
                    Err(e) => {
                        let invalid = matches!(e, Error::Invalid { .. });
                        prop_assert!(invalid);
                    }
                }
            }
        }

        /// A cursor changed on its way back, by hand or by damage (any
        /// byte changed, cut short, a byte added) is invalid, not read as
        /// some other request; the same cursor as the server made it (or
        /// as a server before the CRC made it) is read.
        #[test]
        fn an_edited_cursor_is_invalid(
            at in 0usize..64, flip in 1u8..=255, cut in 1usize..64, extra in any::<u8>(),
        ) {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let query = RangeQuery { start: Some(b"a".to_vec()), end: None,
                prefix: Some(b"ab".to_vec()), limit: None, reverse: false, keys_only: false };
            let cursor = Cursor { query, limit: 10, after: Some(b"abc".to_vec()) };
            let raw = b64.decode(encode_cursor(&cursor)).unwrap();
            prop_assert!(decode_cursor(b64.encode(&raw).as_bytes()).is_ok());
            let invalid = |bytes: &[u8]| {
                matches!(decode_cursor(b64.encode(bytes).as_bytes()), Err(Error::Invalid { .. }))
            };
            let mut changed = raw.clone();
            let at = at % raw.len();
            changed[at] ^= flip;
            prop_assert!(invalid(&changed), "byte {} changed", at);
            prop_assert!(invalid(&raw[..raw.len() - cut.min(raw.len())]), "cut by {}", cut);
            let mut longer = raw.clone();
            longer.push(extra);
            prop_assert!(invalid(&longer));
            // Version 2, without the CRC: still read.
            let mut v2 = raw[..raw.len() - 4].to_vec();
            v2[0] = 2;
            let back = decode_cursor(b64.encode(&v2).as_bytes()).unwrap();
            prop_assert_eq!(back.after, cursor.after);
        }

        /// A cursor the server made decodes to what it was made from.
        #[test]
        fn cursors_round_trip(
            start in bytes(), end in bytes(), prefix in bytes(), after in bytes(),
            reverse in any::<bool>(), keys_only in any::<bool>(),
            limit in 1..=MAX_PAGE_ITEMS,
        ) {
            let query = RangeQuery { start, end, prefix, limit: None, reverse, keys_only };
            let cursor = Cursor { query, limit, after };
            prop_assume!(cursor.query.validate().is_ok() && cursor.resume().validate().is_ok());
            let back = decode_cursor(encode_cursor(&cursor).as_bytes()).unwrap();
            prop_assert_eq!(back.limit, limit);
            prop_assert_eq!(&back.after, &cursor.after);
            let (q, b) = (&cursor.query, &back.query);
            prop_assert_eq!(
                (&b.start, &b.end, &b.prefix, b.reverse, b.keys_only),
                (&q.start, &q.end, &q.prefix, q.reverse, q.keys_only)
            );
        }
    }
}
