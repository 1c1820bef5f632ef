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
use tokio::sync::mpsc;

use super::State;
use super::body::{Body, streamed};
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
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || produce(&snap, revision, &tx));
    let mut resp = Response::new(streamed(rx));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(backup::CONTENT_TYPE),
    );
    h.insert(REVISION, HeaderValue::from(revision));
    Ok(resp)
}

fn produce(snap: &Snapshot, revision: u64, tx: &mpsc::Sender<std::io::Result<Bytes>>) {
    let mut buf = Vec::with_capacity(CHUNK_BYTES * 2);
    backup::encode_header(&mut buf, revision);
    let mut entries = 0u64;
    let now = crate::types::now_ms();
    let read = snap.range(&RangeQuery::default(), |key, rec| {
        // Absent to reads (the sweeper deletes them): not copied.
        if rec.expires_at_ms.is_some_and(|at| at <= now) {
            return Ok(true);
        }
        backup::encode_entry(&mut buf, key, rec.item());
        entries += 1;
        if buf.len() >= CHUNK_BYTES {
            let chunk = Bytes::from(std::mem::take(&mut buf));
            // The client went away: stop reading.
            return Ok(tx.blocking_send(Ok(chunk)).is_ok());
        }
        Ok(true)
    });
    let last = match read {
        Ok(()) => {
            backup::encode_end(&mut buf, entries);
            Ok(Bytes::from(buf))
        }
        Err(e) => {
            log!("kvr serve: backup stream failed: {e}");
            Err(std::io::Error::other(e.to_string()))
        }
    };
    let _ = tx.blocking_send(last);
}
