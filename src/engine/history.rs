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
//!
//! Kind 4 is a put whose value is not repeated here: when a flush stores a
//! put that is also its key's newest version, of a key the flush creates
//! (absent from the store before it), the value is already in the `kv`
//! table, so the row ends with the value's length (4 bytes) instead of the
//! value, and readers take the value from `kv` in the same commit. (A key
//! that was there before is likely to be written again; its row keeps its
//! value, since rewriting it later costs a random write into this table in
//! every part of that flush.)
//! Before any later write replaces or deletes that key in `kv`, the row is
//! rewritten as a kind 1 row with the old value
//! ([`inline_value`], called by the store for every such write). So a kind
//! 4 row at revision R always names a key whose `kv` record has revision
//! R, and a watch history of write-once keys costs the file its keys, not
//! a second copy of its values (1M random puts of 100-byte values: 2.0x
//! the size of the same pairs imported in one batch, 1.3x with this).

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

/// Where [`Event::decode`] reads the value of a put stored without it:
/// `(key, revision)` to the value of the key's `kv` record when that
/// record has this revision.
pub type ValueInKv<'a> = dyn Fn(&[u8], u64) -> Result<Option<Bytes>> + 'a;

/// Per-event bytes counted beyond key and value, for `--history-bytes`.
const EVENT_OVERHEAD_BYTES: u64 = 24;

/// The default of `serve --history`: events kept (SPEC).
pub const DEFAULT_HISTORY: u64 = 1_000_000;
/// The default of `serve --history-bytes` (SPEC): 1 GiB.
pub const DEFAULT_HISTORY_BYTES: u64 = 1 << 30;

/// How much history a server keeps: at most `events` revisions and
/// `bytes` of events, whichever is reached first. `events == 0` keeps none
/// (watches then follow live changes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
/// A put whose value is its key's record in `kv` (see the module header).
const KIND_PUT_VALUE_IN_KV: u8 = 4;
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
        self.encode_head(
            match self.kind {
                EventKind::Put => KIND_PUT,
                EventKind::Delete => KIND_DELETE,
                EventKind::Expired => KIND_EXPIRED,
            },
            buf,
        );
        buf.extend_from_slice(&self.value);
    }

    /// The stored form of a put whose value the same commit writes to
    /// `kv` as its key's record: the value's length instead of the value
    /// (see the module header). Any other event is encoded whole.
    pub fn encode_value_in_kv(&self, buf: &mut Vec<u8>) {
        if self.kind != EventKind::Put {
            return self.encode(buf);
        }
        self.encode_head(KIND_PUT_VALUE_IN_KV, buf);
        buf.extend_from_slice(&(self.value.len() as u32).to_le_bytes());
    }

    /// Kind, flags, expiry and key.
    fn encode_head(&self, kind: u8, buf: &mut Vec<u8>) {
        buf.clear();
        buf.push(kind);
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
    }

    /// Decodes a stored event; damage is corruption, never a panic. The
    /// value of a kind 4 row comes from `value_in_kv(key, revision)`: the
    /// value of the key's `kv` record in the same commit when that record
    /// has this revision.
    pub fn decode(revision: u64, bytes: &[u8], value_in_kv: &ValueInKv<'_>) -> Result<Event> {
        Event::decode_as(revision, bytes, Some(value_in_kv))
    }

    /// [`Event::decode`], or without the value with no `value_in_kv`.
    fn decode_as(
        revision: u64,
        bytes: &[u8],
        value_in_kv: Option<&ValueInKv<'_>>,
    ) -> Result<Event> {
        let bad = || Error::Corrupt(format!("history event {revision} does not decode"));
        let row = Row::parse(bytes).ok_or_else(bad)?;
        let kind = match row.kind {
            KIND_PUT | KIND_PUT_VALUE_IN_KV => EventKind::Put,
            KIND_DELETE => EventKind::Delete,
            KIND_EXPIRED => EventKind::Expired,
            _ => return Err(bad()),
        };
        let value = match (value_in_kv, row.value_len_in_kv) {
            (None, _) => Bytes::new(),
            (Some(_), None) => Bytes::copy_from_slice(row.rest),
            (Some(value_in_kv), Some(len)) => value_in_kv(row.key, revision)?
                .filter(|v| v.len() == len)
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "history event {revision}: the value it shares with the key's record is gone"
                    ))
                })?,
        };
        Ok(Event {
            revision,
            kind,
            key: row.key.to_vec(),
            value,
            expires_at_ms: row.expires_at_ms,
            batch_end: row.flags & FLAG_BATCH_END != 0,
        })
    }

    /// The key of a stored event and the length of its value, without
    /// reading the value (a history read sizes an event before it loads
    /// it; see `Engine::events_read`).
    pub fn sizes(revision: u64, bytes: &[u8]) -> Result<(&[u8], usize)> {
        let row = Row::parse(bytes)
            .ok_or_else(|| Error::Corrupt(format!("history event {revision} does not decode")))?;
        Ok((row.key, row.value_len_in_kv.unwrap_or(row.rest.len())))
    }

    /// Decodes a stored event as [`Event::decode`] does, but without its
    /// value (an empty one), which is then neither copied nor looked up.
    pub fn decode_without_value(revision: u64, bytes: &[u8]) -> Result<Event> {
        Event::decode_as(revision, bytes, None)
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
/// Whether a stored event is the last of its request (a row that cannot
/// be read counts as one: trimming stops there).
pub fn stored_batch_end(bytes: &[u8]) -> bool {
    Row::parse(bytes).is_none_or(|row| row.flags & FLAG_BATCH_END != 0)
}

pub fn stored_size(bytes: &[u8]) -> u64 {
    match Row::parse(bytes) {
        Some(row) => {
            let value = row.value_len_in_kv.unwrap_or(row.rest.len());
            (row.key.len() + value) as u64 + EVENT_OVERHEAD_BYTES
        }
        None => bytes.len() as u64 + EVENT_OVERHEAD_BYTES,
    }
}

/// The store's rewrite of a kind 4 row before its key's `kv` record is
/// replaced or deleted: the same event with `value` (the record's value)
/// in it, or `None` when the row is not a kind 4 row of `key` with a value
/// of that length, and needs no rewrite.
pub fn inline_value(row: &[u8], key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    let parsed = Row::parse(row)?;
    if parsed.key != key || parsed.value_len_in_kv != Some(value.len()) {
        return None;
    }
    let head = row.len() - parsed.rest.len() - 4;
    let mut out = Vec::with_capacity(head + value.len());
    out.push(KIND_PUT);
    out.extend_from_slice(&row[1..head]);
    out.extend_from_slice(value);
    Some(out)
}

/// Whether a stored row shares its value with `kv` (kind 4).
pub fn shares_value(row: &[u8]) -> bool {
    row.first() == Some(&KIND_PUT_VALUE_IN_KV)
}

/// A stored event split into its fields, not yet checked for its kind.
struct Row<'a> {
    kind: u8,
    flags: u8,
    expires_at_ms: Option<u64>,
    key: &'a [u8],
    /// Kind 4: the length of the value kept in `kv`.
    value_len_in_kv: Option<usize>,
    /// What follows the key: the value (kind 1), or nothing.
    rest: &'a [u8],
}

impl<'a> Row<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Row<'a>> {
        let (&kind, rest) = bytes.split_first()?;
        let (&flags, mut rest) = rest.split_first()?;
        let mut take = |n: usize| -> Option<&'a [u8]> {
            if rest.len() < n {
                return None;
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Some(head)
        };
        let expires_at_ms = if flags & FLAG_EXPIRY != 0 {
            Some(u64::from_le_bytes(take(8)?.try_into().ok()?))
        } else {
            None
        };
        let key_len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let key = take(key_len)?;
        let value_len_in_kv = if kind == KIND_PUT_VALUE_IN_KV {
            let len = take(4)?;
            if !rest.is_empty() {
                return None;
            }
            Some(u32::from_le_bytes(len.try_into().ok()?) as usize)
        } else {
            None
        };
        Some(Row {
            kind,
            flags,
            expires_at_ms,
            key,
            value_len_in_kv,
            rest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &[u8], _: u64) -> Result<Option<Bytes>> {
        Ok(None)
    }

    /// A put stored without its value reads it from `kv`, counts the same
    /// history bytes, and is rewritten whole before `kv` changes.
    #[test]
    fn a_put_whose_value_is_in_kv_is_stored_without_it() {
        let e = Event {
            revision: 7,
            kind: EventKind::Put,
            key: b"user:1".to_vec(),
            value: Bytes::from_static(b"alice"),
            expires_at_ms: Some(1_795_000_000_000),
            batch_end: true,
        };
        let mut row = Vec::new();
        e.encode_value_in_kv(&mut row);
        let mut whole = Vec::new();
        e.encode(&mut whole);
        assert_eq!(row.len() + e.value.len(), whole.len() + 4);
        assert_eq!(stored_size(&row), e.size());
        let kv = |key: &[u8], revision: u64| -> Result<Option<Bytes>> {
            Ok((key == b"user:1" && revision == 7).then(|| Bytes::from_static(b"alice")))
        };
        assert_eq!(Event::decode(7, &row, &kv).unwrap(), e);
        // The key's record changed without the row being rewritten: an
        // error, never another value.
        assert!(matches!(
            Event::decode(7, &row, &none),
            Err(Error::Corrupt(_))
        ));
        let other =
            |_: &[u8], _: u64| -> Result<Option<Bytes>> { Ok(Some(Bytes::from_static(b"bob"))) };
        assert!(Event::decode(7, &row, &other).is_err());
        // The rewrite is the whole event.
        assert_eq!(inline_value(&row, b"user:1", b"alice"), Some(whole.clone()));
        assert_eq!(inline_value(&row, b"user:2", b"alice"), None);
        assert_eq!(inline_value(&row, b"user:1", b"alicia"), None);
        assert_eq!(inline_value(&whole, b"user:1", b"alice"), None);
        // Other kinds are stored whole either way.
        let gone = Event {
            kind: EventKind::Delete,
            value: Bytes::new(),
            ..e
        };
        gone.encode_value_in_kv(&mut row);
        gone.encode(&mut whole);
        assert_eq!(row, whole);
        for n in 0..row.len() {
            let _ = Event::decode(1, &row[..n], &kv);
            let _ = stored_size(&row[..n]);
        }
    }

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
        assert_eq!(Event::decode(9, &buf, &none).unwrap(), e);
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
        assert_eq!(Event::decode(10, &buf, &none).unwrap(), gone);
        let mut out = Vec::new();
        gone.write_json(true, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"revision\":10,\"op\":\"delete\",\"key\":\"session:9\",\"expired\":true}\n"
        );
        for n in 0..buf.len() - 1 {
            let _ = Event::decode(1, &buf[..n], &none);
        }
        assert!(Event::decode(1, &[], &none).is_err());
        assert!(Event::decode(1, &[7, 0, 0, 0, 0, 0], &none).is_err());
    }
}
