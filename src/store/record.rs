//! The on-disk layout of kvr's data inside redb.
//!
//! Two tables:
//!
//! * `kv`: key bytes → record. A record is
//!
//!   ```text
//!   offset  size  field
//!   0       1     format version, always RECORD_V1 (= 1) today
//!   1       8     revision of the key's last put, u64 little-endian
//!   9       n     the value bytes, exactly as given
//!   ```
//!
//!   The version byte lets a later release change the layout (say, add a TTL)
//!   while still reading records written by this one.
//!
//! * `meta`: name → u64 counters, updated in the same transaction as the data:
//!   `revision` (the database-wide revision), `keys` (number of keys, so that
//!   `stats` never scans) and `format` (the database format, [`DB_FORMAT`]).

use redb::TableDefinition;

use crate::error::{Error, Result};

/// Keys to records.
pub(crate) const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// Named counters.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_KEYS: &str = "keys";
pub(crate) const META_FORMAT: &str = "format";

/// The database format this release writes and reads.
pub(crate) const DB_FORMAT: u64 = 1;

const RECORD_V1: u8 = 1;
const HEADER_LEN: usize = 9;

/// Encodes a record into `buf` (cleared first), reusing its allocation.
pub(crate) fn encode_into(buf: &mut Vec<u8>, revision: u64, value: &[u8]) {
    buf.clear();
    buf.reserve(HEADER_LEN + value.len());
    buf.push(RECORD_V1);
    buf.extend_from_slice(&revision.to_le_bytes());
    buf.extend_from_slice(value);
}

/// A decoded record borrowing the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub revision: u64,
    pub value: &'a [u8],
}

/// Decodes a stored record; a short or unknown record is corruption, never a panic.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record<'_>> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) if rest.len() >= HEADER_LEN - 1 => {
            let (rev, value) = rest.split_at(HEADER_LEN - 1);
            let mut le = [0u8; 8];
            le.copy_from_slice(rev);
            Ok(Record {
                revision: u64::from_le_bytes(le),
                value,
            })
        }
        Some((&RECORD_V1, _)) => Err(Error::Corrupt(format!(
            "record of {} bytes is shorter than its {HEADER_LEN}-byte header",
            bytes.len()
        ))),
        Some((version, _)) => Err(Error::Corrupt(format!(
            "record format {version} is unknown to this kvr (it reads format {RECORD_V1}); \
             was the database written by a newer release?"
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
        encode_into(&mut buf, 0x0102_0304_0506_0708, b"hello");
        assert_eq!(&buf[..9], &[1, 8, 7, 6, 5, 4, 3, 2, 1]);
        let rec = decode(&buf).unwrap();
        assert_eq!(rec.revision, 0x0102_0304_0506_0708);
        assert_eq!(rec.value, b"hello");
        encode_into(&mut buf, 7, b"");
        assert_eq!(decode(&buf).unwrap().value, b"");
    }

    #[test]
    fn damaged_records_are_errors() {
        assert!(matches!(decode(&[]), Err(Error::Corrupt(_))));
        assert!(matches!(decode(&[1, 0, 0]), Err(Error::Corrupt(_))));
        assert!(matches!(decode(&[9; 20]), Err(Error::Corrupt(_))));
    }

    proptest::proptest! {
        /// A corrupted record decodes or is an error, never a panic.
        #[test]
        fn arbitrary_records_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            match decode(&bytes) {
                Ok(rec) => proptest::prop_assert_eq!(rec.value.len() + 9, bytes.len()),
                Err(e) => proptest::prop_assert!(matches!(e, Error::Corrupt(_))),
            }
        }
    }
}
