//! `GET /v1/backup`: every key of one snapshot, with its value and
//! revision, in the binary stream format of `crate::backup`.
//!
//! As for NDJSON ranges (`range.rs`), the snapshot is read a chunk at a
//! time by a stream reader as the connection asks for it, so memory
//! stays constant and a slow client slows the reads, never the writers:
//! the snapshot holds its memory tables and its redb commit, and flushes
//! go on beside it. A failure midway aborts the response before the end
//! frame.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, header};

use super::State;
use super::body::{self, Body, Producer, stream};
use super::routes::REVISION;
use crate::backup;
use crate::engine::Snapshot;
use crate::error::Result;
use crate::types::RangeQuery;

/// The route takes no parameters: the router refused any (`routes::ROUTES`).
pub fn handle(state: &Arc<State>) -> Result<Response<Body>> {
    let (snap, revision) = state.snapshot()?;
    let body = stream(
        &state.engine,
        &state.responses,
        "backup stream",
        BackupStream {
            snap,
            revision,
            now: crate::types::now_ms(),
            after: None,
            entries: 0,
            ended: false,
        },
    );
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(backup::CONTENT_TYPE),
    );
    h.insert(REVISION, HeaderValue::from(revision));
    Ok(resp)
}

/// The backup of one snapshot, read a chunk at a time: the header, the
/// entries in key order (each chunk's read going on after the last key of
/// the one before), and the end record with their count.
struct BackupStream {
    snap: Snapshot,
    revision: u64,
    /// The time expiry is judged at, for the whole backup.
    now: u64,
    /// The last key sent (`None`: none yet).
    after: Option<Vec<u8>>,
    entries: u64,
    ended: bool,
}

impl Producer for BackupStream {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.ended {
            return Ok(None);
        }
        let mut buf = body::chunk_buffer();
        let query = match self.after.take() {
            None => {
                backup::encode_header(&mut buf, self.revision);
                RangeQuery::default()
            }
            Some(mut after) => {
                after.push(0); // the smallest key after it
                RangeQuery {
                    start: Some(after),
                    ..RangeQuery::default()
                }
            }
        };
        let (now, mut entries, mut last) = (self.now, self.entries, None);
        self.snap.range(&query, |key, rec| {
            // Absent to reads (the sweeper deletes them): not copied.
            if rec.expires_at_ms.is_some_and(|at| at <= now) {
                return Ok(true);
            }
            backup::encode_entry(&mut buf, key, rec.item());
            entries += 1;
            if buf.len() >= body::STREAM_CHUNK_BYTES {
                last = Some(key.to_vec());
                return Ok(false);
            }
            Ok(true)
        })?;
        self.entries = entries;
        match last {
            Some(key) => self.after = Some(key),
            None => {
                backup::encode_end(&mut buf, entries);
                self.ended = true;
            }
        }
        Ok(Some(body::chunk_bytes(buf)))
    }
}
