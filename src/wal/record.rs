//! The byte layout of one log record, encoded and checked in one place.
//!
//! ```text
//! offset  size  field
//! 0       4     payload length n, u32 little-endian (0: end of the log)
//! 4       4     crc32 of bytes 8..16+n, then of the segment's sequence (u64 LE)
//! 8       8     first revision the request took, u64 little-endian;
//!               bit 63 set: the record starts a group
//! 16      n     payload: the request's operations
//! ```
//!
//! A group is the records of one write and one sync ([`super::Wal::append`]):
//! a crash can tear only the last one, so an intact record that starts a
//! group after one that fails its check shows damage, not a torn tail
//! (`recover.rs`). Logs of earlier releases mark no group; their replay
//! stops at the first record that fails, as it always did. (Earlier
//! releases read the mark as a revision gap and refuse such a log.)
//!
//! Payload: `u32` operation count, then per operation `u8` kind (1 put,
//! 2 delete, 3 put with an expiry, 4 expiry delete, 5 applied delete,
//! 6 applied expiry delete), `u32` key length, the key and, for a put,
//! `u32` value length and the value; then for kind 3 the `u64`
//! expires_at_ms, for kind 4 the `u64` revision and `u64` expires_at_ms it
//! is conditional on. All integers little-endian. Conditions are not
//! logged: a logged request is one that was applied, and replay repeats it
//! as it was.
//!
//! The engine logs only the operations that took a revision, deletes as
//! kinds 5 and 6, which replay applies whatever the store holds: the store
//! may be ahead of the log for some keys after a crash inside a flush in
//! parts (`engine/flush.rs`), so replay must not decide again whether a
//! delete found its key. Kinds 2 and 4 (logs of earlier releases, and
//! [`crate::wal::Wal::append`]) still decide it at replay. Earlier
//! releases cannot read kinds 5 and 6.
//!
//! A request sent with an Idempotency-Key adds a trailer after the
//! operations: `u8` 0xA1, then the key and the encoded outcome record
//! (`idempotency.rs`), each as `u32` length and bytes. A request whose
//! recorded outcome took no revision (a failed precondition, a delete of
//! an absent key) is logged with no operations, at the revision the next
//! write takes: replay keeps its record unless the store holds that
//! revision (then the record was flushed with the table before it).
//!
//! Folding the segment's sequence into the checksum makes a record left over
//! from a recycled segment fail its check, so it reads as the end of the log.

use crate::error::{Error, Result};
use crate::types::{Action, Op};

/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;
/// The bit of the first-revision field that marks a group's first record.
const STARTS_GROUP: u64 = 1 << 63;

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_PUT_EXPIRING: u8 = 3;
const KIND_EXPIRE: u8 = 4;
const KIND_DELETE_APPLIED: u8 = 5;
const KIND_EXPIRE_APPLIED: u8 = 6;
const TRAILER_IDEMPOTENCY: u8 = 0xA1;

/// One record to log: a request's first revision, its operations and the
/// idempotency record it made (key, encoded record), if any.
#[derive(Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    pub first_revision: u64,
    pub ops: &'a [Op],
    /// The revision each operation took (0: none, not logged), when the
    /// writer knows them: deletes are then logged as applied (kinds 5, 6).
    /// `None`: every operation is logged, deletes decided again at replay.
    pub revisions: Option<&'a [u64]>,
    pub idempotency: Option<(&'a str, &'a [u8])>,
}

/// Appends one record to `buf`; `starts_group`: it is the first of the
/// records written and synced together.
pub fn encode(
    buf: &mut Vec<u8>,
    segment: u64,
    rec: &LogRecord<'_>,
    starts_group: bool,
) -> Result<()> {
    let (first_revision, ops) = (rec.first_revision, rec.ops);
    if first_revision & STARTS_GROUP != 0 {
        return Err(Error::Storage(format!(
            "revision {first_revision} is past what the write-ahead log can hold"
        )));
    }
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]);
    let mark = if starts_group { STARTS_GROUP } else { 0 };
    buf.extend_from_slice(&(first_revision | mark).to_le_bytes());
    let took = |i: usize| {
        rec.revisions
            .is_none_or(|r| r.get(i).is_some_and(|&r| r > 0))
    };
    put_u32(buf, (0..ops.len()).filter(|&i| took(i)).count())?;
    let applied = rec.revisions.is_some();
    for (i, op) in ops.iter().enumerate() {
        if !took(i) {
            continue;
        }
        match &op.action {
            Action::Put(value) => {
                buf.push(match op.expires_at_ms {
                    None => KIND_PUT,
                    Some(_) => KIND_PUT_EXPIRING,
                });
                put_bytes(buf, &op.key)?;
                put_bytes(buf, value)?;
                if let Some(at) = op.expires_at_ms {
                    buf.extend_from_slice(&at.to_le_bytes());
                }
            }
            Action::Delete if applied => {
                buf.push(KIND_DELETE_APPLIED);
                put_bytes(buf, &op.key)?;
            }
            Action::Expire { .. } | Action::Erase { expired: true } if applied => {
                buf.push(KIND_EXPIRE_APPLIED);
                put_bytes(buf, &op.key)?;
            }
            Action::Delete => {
                buf.push(KIND_DELETE);
                put_bytes(buf, &op.key)?;
            }
            // An erase is logged only as applied (it comes from a log).
            Action::Erase { expired } => {
                buf.push(if *expired {
                    KIND_EXPIRE_APPLIED
                } else {
                    KIND_DELETE_APPLIED
                });
                put_bytes(buf, &op.key)?;
            }
            Action::Expire {
                revision,
                expires_at_ms,
            } => {
                buf.push(KIND_EXPIRE);
                put_bytes(buf, &op.key)?;
                buf.extend_from_slice(&revision.to_le_bytes());
                buf.extend_from_slice(&expires_at_ms.to_le_bytes());
            }
        }
    }
    if let Some((key, record)) = rec.idempotency {
        buf.push(TRAILER_IDEMPOTENCY);
        put_bytes(buf, key.as_bytes())?;
        put_bytes(buf, record)?;
    }
    let payload_len = buf.len() - start - HEADER_LEN;
    let len = u32::try_from(payload_len).map_err(|_| too_big(payload_len))?;
    let crc = checksum(&buf[start + 8..], segment);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn too_big(len: usize) -> Error {
    Error::TooLarge {
        message: format!("a request of {len} bytes is too large for the write-ahead log"),
    }
}

fn put_u32(buf: &mut Vec<u8>, n: usize) -> Result<()> {
    let n = u32::try_from(n).map_err(|_| too_big(n))?;
    buf.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    put_u32(buf, bytes.len())?;
    buf.extend_from_slice(bytes);
    Ok(())
}

fn checksum(body: &[u8], segment: u64) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(body);
    h.update(&segment.to_le_bytes());
    h.finalize()
}

/// The payload length of the record header at the start of `head`, if any.
pub fn payload_len(head: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(head.get(..4)?.try_into().ok()?);
    (len > 0).then_some(len as usize)
}

/// Whether the record header at the start of `head` is marked as a
/// group's first (a cheap look before its checksum).
pub fn starts_group(head: &[u8]) -> bool {
    head.get(8..16)
        .and_then(|f| f.try_into().ok())
        .map(u64::from_le_bytes)
        // and a revision below 2^48, as any real one is
        .is_some_and(|f| f & STARTS_GROUP != 0 && f & !STARTS_GROUP < 1 << 48)
}

/// A record read back: its first revision and operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub first_revision: u64,
    /// The first record of a group (see the module header).
    pub starts_group: bool,
    pub ops: Vec<Op>,
    /// The idempotency record the request made: key, encoded record.
    pub idempotency: Option<(String, Vec<u8>)>,
}

/// Checks a whole record without decoding its operations: its first
/// revision and operation count, `None` when the checksum fails.
pub fn check(record: &[u8], segment: u64) -> Option<(u64, u32)> {
    let stored = u32::from_le_bytes(record.get(4..8)?.try_into().ok()?);
    if checksum(record.get(8..)?, segment) != stored {
        return None;
    }
    let field = u64::from_le_bytes(record.get(8..16)?.try_into().ok()?);
    let count = u32::from_le_bytes(record.get(HEADER_LEN..HEADER_LEN + 4)?.try_into().ok()?);
    Some((field & !STARTS_GROUP, count))
}

/// Checks and decodes a whole record (header and payload); `None` when the
/// checksum fails (a torn write, or a leftover of a recycled segment).
/// (Recovery checks every record first and parses them in a second pass.)
#[cfg(test)]
pub fn decode(record: &[u8], segment: u64) -> Option<Decoded> {
    check(record, segment)?;
    parse(record)
}

/// Decodes a whole record that [`check`] found intact, without checking
/// it again; `None` when it does not decode.
pub fn parse(record: &[u8]) -> Option<Decoded> {
    let field = u64::from_le_bytes(record.get(8..16)?.try_into().ok()?);
    let (first_revision, starts_group) = (field & !STARTS_GROUP, field & STARTS_GROUP != 0);
    let mut r = Reader {
        buf: record.get(HEADER_LEN..)?,
    };
    let count = r.u32()?;
    let mut ops = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let kind = r.take(1)?[0];
        let key = r.bytes()?.to_vec();
        ops.push(match kind {
            KIND_PUT => Op::put(key, r.bytes()?.to_vec()),
            KIND_PUT_EXPIRING => {
                let mut op = Op::put(key, r.bytes()?.to_vec());
                op.expires_at_ms = Some(r.u64()?);
                op
            }
            KIND_DELETE => Op::delete(key),
            KIND_EXPIRE => {
                let revision = r.u64()?;
                Op::expire(key, revision, r.u64()?)
            }
            KIND_DELETE_APPLIED => Op::erase(key, false),
            KIND_EXPIRE_APPLIED => Op::erase(key, true),
            _ => return None,
        });
    }
    let idempotency = match r.take(1) {
        Some([TRAILER_IDEMPOTENCY]) => {
            let key = String::from_utf8(r.bytes()?.to_vec()).ok()?;
            Some((key, r.bytes()?.to_vec()))
        }
        _ => None,
    };
    Some(Decoded {
        first_revision,
        starts_group,
        ops,
        idempotency,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let mut expiring = Op::put(b"e".to_vec(), b"w".to_vec());
        expiring.expires_at_ms = Some(1_795_000_000_000);
        let ops = vec![
            Op::put(b"k".to_vec(), b"v".to_vec()),
            Op::delete(b"x".to_vec()),
            expiring,
            Op::expire(b"e".to_vec(), 9, 1_795_000_000_000),
        ];
        let mut buf = Vec::new();
        let rec = LogRecord {
            first_revision: 42,
            ops: &ops,
            revisions: None,
            idempotency: None,
        };
        encode(&mut buf, 7, &rec, false).unwrap();
        assert_eq!(payload_len(&buf), Some(buf.len() - HEADER_LEN));
        let d = decode(&buf, 7).unwrap();
        assert_eq!((d.first_revision, d.starts_group), (42, false));
        assert_eq!(d.ops, ops);
        assert_eq!(d.idempotency, None);
        let mut with_key = Vec::new();
        let keyed = LogRecord {
            idempotency: Some(("k1", b"rec")),
            ..rec
        };
        encode(&mut with_key, 7, &keyed, true).unwrap();
        let d = decode(&with_key, 7).unwrap();
        assert_eq!((d.first_revision, d.starts_group), (42, true));
        assert_eq!(d.ops, ops);
        assert_eq!(d.idempotency, Some(("k1".to_string(), b"rec".to_vec())));
        // Another segment's sequence, or any flipped byte, fails the check.
        assert!(decode(&buf, 8).is_none());
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert!(decode(&buf, 7).is_none());
        assert_eq!(payload_len(&[0; 16]), None);
    }
}
