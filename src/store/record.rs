//! The on-disk layout of kvr's data inside redb.
//!
//! The tables:
//!
//! * `kv`: key bytes → record. A record is
//!
//!   ```text
//!   offset  size  field
//!   0       1     format version: RECORD_V1 (= 1), or RECORD_V2 (= 2) for a
//!                 key with an expiry
//!   1       8     revision of the key's last put, u64 little-endian
//!   9       8     (RECORD_V2 only) expires_at_ms, Unix ms, u64 little-endian
//!   9/17    n     the value bytes, exactly as given
//!   ```
//!
//!   A key without an expiry is still written as RECORD_V1, so files of
//!   earlier releases read as they are and are written the same way.
//!
//! * `expiry`: (expires_at_ms, key) → the key's revision: one entry per
//!   RECORD_V2 record, kept in the same transaction as the record, so the
//!   sweeper reads the keys due in expiry order without scanning `kv`.
//!   Files of earlier releases have no such table; it is created by the
//!   first write and read as empty until then.
//!
//! * `history`: revision → event (layout in `engine/history.rs`), the watch
//!   history `kvr serve` keeps, written in the same commit as the data.
//!   `meta` counters `history_oldest` (the oldest revision kept; rows below
//!   it are garbage a later flush deletes) and `history_bytes`. A write
//!   that does not record events (a command with `--db`) sets
//!   `history_oldest` past its revision: a watch cannot resume across it.
//!   Missing (earlier releases, backups): no history, oldest = revision + 1.
//!   `history_shared_newest`: no row above this revision shares its value
//!   with `kv` (kind 4), so a flush looks up no row above it before
//!   replacing a record; it holds while `history_shared_as_of` is the
//!   revision (it is written with the history). Otherwise (missing in
//!   earlier releases, or a flush of one of them since) the revision
//!   bounds every row instead.
//!
//! * `idempotency`: Idempotency-Key → the first outcome of the write sent
//!   with it (layout in `idempotency.rs`), written with the write's data;
//!   `idempotency_by_time`: (time_ms, key) → (), so a flush deletes the
//!   records past their window in time order. Missing: no records.
//!
//! * `meta`: name → u64 counters, updated in the same transaction as the data:
//!   `revision` (the database-wide revision), `keys` (number of keys, so that
//!   `stats` never scans) and `format` (the database format, [`DB_FORMAT`]).

use redb::TableDefinition;

use crate::error::{Error, Result};

/// Keys to records.
pub(crate) const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// The expiry index (see the module header).
pub(crate) const EXPIRY: TableDefinition<(u64, &[u8]), u64> = TableDefinition::new("expiry");
/// The watch history (see the module header).
pub(crate) const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
/// Idempotency-Key → the first outcome of its write (see the module header).
pub(crate) const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// (time_ms, Idempotency-Key) of each record, to delete old ones in order.
pub(crate) const IDEMPOTENCY_BY_TIME: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("idempotency_by_time");
/// Named counters.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_KEYS: &str = "keys";
pub(crate) const META_FORMAT: &str = "format";
/// A random number drawn when the file is created (or, for a file made
/// before it existed, when a server first opens it): the server's
/// write-ahead log carries it, so a log is never replayed into another
/// database file put at its name (`crate::wal`).
pub(crate) const META_DATABASE_ID: &str = "database_id";
pub(crate) const META_HISTORY_OLDEST: &str = "history_oldest";
pub(crate) const META_HISTORY_BYTES: &str = "history_bytes";
pub(crate) const META_HISTORY_SHARED_NEWEST: &str = "history_shared_newest";
pub(crate) const META_HISTORY_SHARED_AS_OF: &str = "history_shared_as_of";

/// The database format this release writes and reads.
pub(crate) const DB_FORMAT: u64 = 1;

const RECORD_V1: u8 = 1;
const RECORD_V2: u8 = 2;
const HEADER_LEN: usize = 9;
const HEADER_V2_LEN: usize = 17;

/// Encodes a record into `buf` (cleared first), reusing its allocation.
pub(crate) fn encode_into(
    buf: &mut Vec<u8>,
    revision: u64,
    value: &[u8],
    expires_at_ms: Option<u64>,
) {
    buf.clear();
    buf.reserve(HEADER_V2_LEN + value.len());
    match expires_at_ms {
        None => {
            buf.push(RECORD_V1);
            buf.extend_from_slice(&revision.to_le_bytes());
        }
        Some(at) => {
            buf.push(RECORD_V2);
            buf.extend_from_slice(&revision.to_le_bytes());
            buf.extend_from_slice(&at.to_le_bytes());
        }
    }
    buf.extend_from_slice(value);
}

/// A decoded record borrowing the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub revision: u64,
    pub value: &'a [u8],
    /// When the key expires, Unix milliseconds.
    pub expires_at_ms: Option<u64>,
}

impl<'a> Record<'a> {
    /// The record as a range item.
    pub fn item(&self) -> crate::types::Item<'a> {
        crate::types::Item {
            value: self.value,
            revision: self.revision,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

fn le64(bytes: &[u8]) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(le)
}

/// Decodes a stored record; a short or unknown record is corruption, never a panic.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record<'_>> {
    let short = |header: usize| {
        Error::Corrupt(format!(
            "record of {} bytes is shorter than its {header}-byte header",
            bytes.len()
        ))
    };
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) if rest.len() >= HEADER_LEN - 1 => Ok(Record {
            revision: le64(rest),
            value: &rest[8..],
            expires_at_ms: None,
        }),
        Some((&RECORD_V2, rest)) if rest.len() >= HEADER_V2_LEN - 1 => Ok(Record {
            revision: le64(rest),
            expires_at_ms: Some(le64(&rest[8..])),
            value: &rest[16..],
        }),
        Some((&RECORD_V1, _)) => Err(short(HEADER_LEN)),
        Some((&RECORD_V2, _)) => Err(short(HEADER_V2_LEN)),
        Some((version, _)) => Err(Error::Corrupt(format!(
            "record format {version} is unknown to this kvr (it reads formats {RECORD_V1} \
             and {RECORD_V2}): the file is damaged (kvr check tells), or was written by a \
             newer release"
        ))),
        None => Err(Error::Corrupt("empty record".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 0x0102_0304_0506_0708, b"hello", None);
        assert_eq!(&buf[..9], &[1, 8, 7, 6, 5, 4, 3, 2, 1]);
        let rec = decode(&buf).unwrap();
        assert_eq!(rec.revision, 0x0102_0304_0506_0708);
        assert_eq!(rec.value, b"hello");
        assert_eq!(rec.expires_at_ms, None);
        encode_into(&mut buf, 7, b"", None);
        assert_eq!(decode(&buf).unwrap().value, b"");
        encode_into(&mut buf, 7, b"v", Some(0x0a0b));
        assert_eq!(&buf[..11], &[2, 7, 0, 0, 0, 0, 0, 0, 0, 0x0b, 0x0a]);
        let rec = decode(&buf).unwrap();
        assert_eq!(
            (rec.revision, rec.value, rec.expires_at_ms),
            (7, &b"v"[..], Some(0x0a0b))
        );
    }

    #[test]
    fn damaged_records_are_errors() {
        assert!(matches!(decode(&[]), Err(Error::Corrupt(_))));
        assert!(matches!(decode(&[1, 0, 0]), Err(Error::Corrupt(_))));
        assert!(matches!(decode(&[9; 20]), Err(Error::Corrupt(_))));
        assert!(matches!(decode(&[2; 12]), Err(Error::Corrupt(_))));
    }

    proptest::proptest! {
        /// A corrupted record decodes or is an error, never a panic.
        #[test]
        fn arbitrary_records_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            match decode(&bytes) {
                Ok(rec) => {
                    let header = if rec.expires_at_ms.is_some() { 17 } else { 9 };
                    proptest::prop_assert_eq!(rec.value.len() + header, bytes.len())
                }
                Err(e) => proptest::prop_assert!(matches!(e, Error::Corrupt(_))),
            }
        }
    }
}
