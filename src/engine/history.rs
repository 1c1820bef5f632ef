//! Watch history: the event of every applied operation, by revision.
//!
//! Each operation that takes a revision is one [`Event`]. The writer keeps
//! a group's events in the live memory table next to its versions, so they
//! are flushed into the store's `history` table in the same durable commit
//! as the data they belong to (see `store/record.rs`). The history is
//! bounded by [`HistoryBounds`]: the oldest revision kept is decided when a
//! group is applied (so every replica of the same log agrees on it), and
//! rows below it are deleted by the next flush.
//!
//! A stored event, all integers little-endian:
//!
//! ```text
//! offset  size  field
//! 0       1     kind: 1 put, 2 delete, 3 expiry delete
//! 1       1     flags: 1 has an expiry, 2 the last event of its request
//! 2       8     (flag 1 only) expires_at_ms
//! 2/10    4     key length k
//! …       k     key
//! …       rest  the value of a put
//! ```

use std::io::Write;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::jsonl::write_field;

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
    /// An expiry delete (`"expired":true` on the watch).
    Expired,
}

/// One applied operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub revision: u64,
    pub kind: EventKind,
    pub key: Vec<u8>,
    /// A put's value (shared with the memory table).
    pub value: Bytes,
    pub expires_at_ms: Option<u64>,
    /// The last event of its request: a stream ends only after one.
    pub batch_end: bool,
}

/// Per-event bytes counted beyond key and value, for `--history-bytes`.
const EVENT_OVERHEAD_BYTES: u64 = 24;

/// The default of `serve --history`: events kept (SPEC).
pub const DEFAULT_HISTORY: u64 = 1_000_000;
/// The default of `serve --history-bytes` (SPEC): 1 GiB.
pub const DEFAULT_HISTORY_BYTES: u64 = 1 << 30;

/// How much history a server keeps: at most `events` revisions and
/// `bytes` of events, whichever is reached first. `events == 0` keeps none
/// (watches then follow live changes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryBounds {
    pub events: u64,
    pub bytes: u64,
}

impl Default for HistoryBounds {
    fn default() -> Self {
        HistoryBounds {
            events: DEFAULT_HISTORY,
            bytes: DEFAULT_HISTORY_BYTES,
        }
    }
}

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_EXPIRED: u8 = 3;
const FLAG_EXPIRY: u8 = 1;
const FLAG_BATCH_END: u8 = 2;

impl Event {
    /// Bytes this event counts towards `--history-bytes`: the same on every
    /// replica, whatever the encoding.
    pub fn size(&self) -> u64 {
        (self.key.len() + self.value.len()) as u64 + EVENT_OVERHEAD_BYTES
    }

    /// The stored form (see the module header).
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.push(match self.kind {
            EventKind::Put => KIND_PUT,
            EventKind::Delete => KIND_DELETE,
            EventKind::Expired => KIND_EXPIRED,
        });
        let mut flags = 0;
        if self.expires_at_ms.is_some() {
            flags |= FLAG_EXPIRY;
        }
        if self.batch_end {
            flags |= FLAG_BATCH_END;
        }
        buf.push(flags);
        if let Some(at) = self.expires_at_ms {
            buf.extend_from_slice(&at.to_le_bytes());
        }
        buf.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        buf.extend_from_slice(&self.key);
        buf.extend_from_slice(&self.value);
    }

    /// Decodes a stored event; damage is corruption, never a panic.
    pub fn decode(revision: u64, bytes: &[u8]) -> Result<Event> {
        let bad = || Error::Corrupt(format!("history event {revision} does not decode"));
        let (&kind, rest) = bytes.split_first().ok_or_else(bad)?;
        let (&flags, mut rest) = rest.split_first().ok_or_else(bad)?;
        let kind = match kind {
            KIND_PUT => EventKind::Put,
            KIND_DELETE => EventKind::Delete,
            KIND_EXPIRED => EventKind::Expired,
            _ => return Err(bad()),
        };
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(bad());
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let expires_at_ms = if flags & FLAG_EXPIRY != 0 {
            let mut le = [0u8; 8];
            le.copy_from_slice(take(8)?);
            Some(u64::from_le_bytes(le))
        } else {
            None
        };
        let mut le = [0u8; 4];
        le.copy_from_slice(take(4)?);
        let key = take(u32::from_le_bytes(le) as usize)?.to_vec();
        let value = Bytes::copy_from_slice(rest);
        Ok(Event {
            revision,
            kind,
            key,
            value,
            expires_at_ms,
            batch_end: flags & FLAG_BATCH_END != 0,
        })
    }

    /// The event's watch line (SPEC "Watch"), with its newline.
    pub fn write_json(&self, keys_only: bool, out: &mut Vec<u8>) -> Result<()> {
        let io = |e| Error::io("cannot write an event", e);
        let op = match self.kind {
            EventKind::Put => "put",
            EventKind::Delete | EventKind::Expired => "delete",
        };
        write!(out, "{{\"revision\":{},\"op\":\"{op}\",", self.revision).map_err(io)?;
        write_field(out, "key", &self.key).map_err(io)?;
        if self.kind == EventKind::Put && !keys_only {
            out.push(b',');
            write_field(out, "value", &self.value).map_err(io)?;
        }
        if let Some(at) = self.expires_at_ms {
            write!(out, ",\"expires_at_ms\":{at}").map_err(io)?;
        }
        if self.kind == EventKind::Expired {
            out.extend_from_slice(b",\"expired\":true");
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// [`Event::size`] of a stored event, without decoding it (a damaged
/// one counts its whole length).
pub fn stored_size(bytes: &[u8]) -> u64 {
    let header = match bytes.get(1) {
        Some(flags) if flags & FLAG_EXPIRY != 0 => 14,
        Some(_) => 6,
        None => 0,
    };
    bytes.len().saturating_sub(header) as u64 + EVENT_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_print() {
        let e = Event {
            revision: 9,
            kind: EventKind::Put,
            key: b"session:9".to_vec(),
            value: Bytes::from_static(b"x"),
            expires_at_ms: Some(1_795_000_000_000),
            batch_end: true,
        };
        let mut buf = Vec::new();
        e.encode(&mut buf);
        assert_eq!(Event::decode(9, &buf).unwrap(), e);
        assert_eq!(stored_size(&buf), e.size());
        let mut out = Vec::new();
        e.write_json(false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"revision\":9,\"op\":\"put\",\"key\":\"session:9\",\"value\":\"x\",\
             \"expires_at_ms\":1795000000000}\n"
        );
        let gone = Event {
            revision: 10,
            kind: EventKind::Expired,
            value: Bytes::new(),
            expires_at_ms: None,
            batch_end: false,
            ..e
        };
        gone.encode(&mut buf);
        assert_eq!(Event::decode(10, &buf).unwrap(), gone);
        let mut out = Vec::new();
        gone.write_json(true, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"revision\":10,\"op\":\"delete\",\"key\":\"session:9\",\"expired\":true}\n"
        );
        for n in 0..buf.len() - 1 {
            let _ = Event::decode(1, &buf[..n]);
        }
        assert!(Event::decode(1, &[]).is_err());
        assert!(Event::decode(1, &[7, 0, 0, 0, 0, 0]).is_err());
    }
}
