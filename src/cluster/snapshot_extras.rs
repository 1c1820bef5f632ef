//! The replicated state a Raft snapshot carries besides the data: the
//! watch history (its bounds and events) and the idempotency records, so a
//! node that installs a snapshot keeps the same `oldest_revision` as the
//! others and answers repeats of writes made before it.
//!
//! They follow the backup stream of the data, as frames:
//!
//! ```text
//! tag 1  history bounds: oldest u64, bytes u64 (little-endian)
//! tag 2  one event: revision u64, length u32, the stored event bytes
//! tag 3  one idempotency record: key length u32, key, length u32, record
//! tag 0  end
//! ```
//!
//! A stream that ends right after the data (an earlier release) has none:
//! the history then restarts after the snapshot.

use std::io::{self, Read, Write};

use crate::error::{Error, Result};
use crate::store::{Replaced, TableReader};

const END: u8 = 0;
const HISTORY_BOUNDS: u8 = 1;
const EVENT: u8 = 2;
const IDEMPOTENCY: u8 = 3;
/// Rows read from the store at a time.
const PAGE: usize = 1024;
/// Largest frame a reader accepts (an event holds at most one value).
const MAX_FRAME: usize = 64 << 20;

/// Writes the extras of the commit `reader` sees.
pub fn write(reader: &TableReader, out: &mut dyn Write) -> Result<()> {
    let io = |e| Error::io("cannot send a snapshot", e);
    let mut buf = Vec::with_capacity(1 << 16);
    visit(reader, &mut |extra| {
        match extra {
            Replaced::HistoryBounds { oldest, bytes } => {
                buf.push(HISTORY_BOUNDS);
                buf.extend_from_slice(&oldest.to_le_bytes());
                buf.extend_from_slice(&bytes.to_le_bytes());
            }
            Replaced::Event { revision, bytes } => {
                buf.push(EVENT);
                buf.extend_from_slice(&revision.to_le_bytes());
                buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                buf.extend_from_slice(bytes);
            }
            Replaced::Idempotency { key, record } => {
                buf.push(IDEMPOTENCY);
                buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
                buf.extend_from_slice(key.as_bytes());
                buf.extend_from_slice(&(record.len() as u32).to_le_bytes());
                buf.extend_from_slice(record);
            }
        }
        if buf.len() >= 1 << 16 {
            out.write_all(&buf).map_err(io)?;
            buf.clear();
        }
        Ok(())
    })?;
    buf.push(END);
    out.write_all(&buf).map_err(io)
}

/// Hands the extras of the commit `reader` sees to `sink`, in stream order.
pub fn visit(reader: &TableReader, sink: &mut dyn FnMut(Replaced<'_>) -> Result<()>) -> Result<()> {
    let (oldest, bytes) = reader.history_mark();
    sink(Replaced::HistoryBounds { oldest, bytes })?;
    let mut from = oldest;
    loop {
        let mut last = None;
        reader.history(from, PAGE, |revision, bytes| {
            last = Some(revision);
            sink(Replaced::Event { revision, bytes })
        })?;
        match last {
            Some(r) => from = r + 1,
            None => break,
        }
    }
    let mut after: Option<String> = None;
    loop {
        let mut last = None;
        reader.idempotency_page(after.as_deref(), PAGE, |key, record| {
            last = Some(key.to_string());
            sink(Replaced::Idempotency { key, record })
        })?;
        match last {
            Some(k) => after = Some(k),
            None => return Ok(()),
        }
    }
}

/// Reads the extras that follow the data in `input` into `sink`.
pub fn read(input: &mut dyn Read, sink: &mut dyn FnMut(Replaced<'_>) -> Result<()>) -> Result<()> {
    let broke = |e| Error::io("cannot read a snapshot", e);
    let bad = |what: &str| Error::Corrupt(format!("bad snapshot: {what}"));
    let mut tag = [0u8; 1];
    match input.read(&mut tag) {
        Ok(0) => return Ok(()), // an earlier release: no extras
        Ok(_) => {}
        Err(e) => return Err(broke(e)),
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    loop {
        match tag[0] {
            END => return Ok(()),
            HISTORY_BOUNDS => {
                let oldest = u64_of(input)?;
                let bytes = u64_of(input)?;
                sink(Replaced::HistoryBounds { oldest, bytes })?;
            }
            EVENT => {
                let revision = u64_of(input)?;
                read_frame(input, &mut a)?;
                sink(Replaced::Event {
                    revision,
                    bytes: &a,
                })?;
            }
            IDEMPOTENCY => {
                read_frame(input, &mut a)?;
                read_frame(input, &mut b)?;
                let key = std::str::from_utf8(&a).map_err(|_| bad("a key is not UTF-8"))?;
                sink(Replaced::Idempotency { key, record: &b })?;
            }
            _ => return Err(bad("unknown frame")),
        }
        input.read_exact(&mut tag).map_err(broke)?;
    }
}

fn u64_of(input: &mut dyn Read) -> Result<u64> {
    let mut b = [0u8; 8];
    input
        .read_exact(&mut b)
        .map_err(|e| Error::io("cannot read a snapshot", e))?;
    Ok(u64::from_le_bytes(b))
}

fn read_frame(input: &mut dyn Read, buf: &mut Vec<u8>) -> Result<()> {
    let mut n = [0u8; 4];
    let broke = |e: io::Error| Error::io("cannot read a snapshot", e);
    input.read_exact(&mut n).map_err(broke)?;
    let n = u32::from_le_bytes(n) as usize;
    if n > MAX_FRAME {
        return Err(Error::Corrupt("bad snapshot: a frame is too long".into()));
    }
    buf.resize(n, 0);
    input.read_exact(buf).map_err(broke)
}
