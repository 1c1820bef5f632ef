//! `GET /v1/backup`: every key of one snapshot, with its value and
//! revision, in the binary stream format of `crate::backup`.
//!
//! As for NDJSON ranges (`range.rs`), a blocking thread reads the snapshot
//! and feeds a bounded channel, so memory stays constant and a slow client
//! slows the reader, never the writers: the snapshot holds its memory
//! tables and its redb commit, and flushes go on beside it. A failure
//! midway aborts the response before the end frame.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, header};

use super::State;
use super::body::{Body, StreamSender, stream};
use super::routes::REVISION;
use crate::backup;
use crate::engine::Snapshot;
use crate::error::Result;
use crate::types::RangeQuery;

/// Bytes per chunk sent: as for range streams.
const CHUNK_BYTES: usize = 64 << 10;
/// Chunks buffered between the reader and the connection (256 KiB).
const CHANNEL_CHUNKS: usize = 4;

/// The route takes no parameters: the router refused any (`routes::ROUTES`).
pub fn handle(state: &Arc<State>) -> Result<Response<Body>> {
    let (snap, revision) = state.snapshot()?;
    let body = stream(&state.engine, CHANNEL_CHUNKS, "backup stream", move |tx| {
        produce(&snap, revision, tx)
    });
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(backup::CONTENT_TYPE),
    );
    h.insert(REVISION, HeaderValue::from(revision));
    Ok(resp)
}

/// Writes the backup to `tx`; returns the last chunk (with the end record).
fn produce(snap: &Snapshot, revision: u64, tx: &StreamSender) -> Result<Bytes> {
    let mut buf = Vec::with_capacity(CHUNK_BYTES * 2);
    backup::encode_header(&mut buf, revision);
    let mut entries = 0u64;
    let now = crate::types::now_ms();
    let mut client_left = false;
    snap.range(&RangeQuery::default(), |key, rec| {
        // Absent to reads (the sweeper deletes them): not copied.
        if rec.expires_at_ms.is_some_and(|at| at <= now) {
            return Ok(true);
        }
        backup::encode_entry(&mut buf, key, rec.item());
        entries += 1;
        if buf.len() >= CHUNK_BYTES {
            // The client went away: stop reading.
            client_left = !tx.send(Bytes::from(std::mem::take(&mut buf)));
            return Ok(!client_left);
        }
        Ok(true)
    })?;
    // (A client gone gets no end record; it could not read it anyway.)
    if !client_left {
        backup::encode_end(&mut buf, entries);
    }
    Ok(Bytes::from(buf))
}
