//! Conversion of redb's errors into kvr's [`Error`], in one place.
//!
//! Every redb error type converts into `redb::Error`; we classify that one
//! enum. Opening errors that need the path (a database in use) are handled in
//! `store::open` before they get here.

use crate::error::Error;

fn classify(err: redb::Error) -> Error {
    match err {
        // redb reads whole pages and headers: a file that ends inside one
        // was cut short (a copy that stopped, a truncation).
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Corrupt(format!(
                "the database is damaged: the file ends inside a page or its header (it was \
                 truncated, or a copy of it stopped short; {e})"
            ))
        }
        redb::Error::Io(e) => Error::io("database file I/O", e),
        // A later redb's format is not damage: the file is fine, this kvr
        // is too old for it.
        redb::Error::Corrupted(msg) if msg.starts_with("Expected file format version") => {
            Error::Corrupt(format!(
                "the database file was written by a newer release of kvr (its storage \
                 engine's format is newer than this kvr reads: {msg}); use that release or \
                 a newer one"
            ))
        }
        redb::Error::Corrupted(msg) => Error::Corrupt(format!("the database is damaged: {msg}")),
        redb::Error::UpgradeRequired(v) => Error::Corrupt(format!(
            "the database file format {v} needs an upgrade this kvr cannot do"
        )),
        redb::Error::ValueTooLarge(n) => Error::TooLarge {
            message: format!("a record of {n} bytes is over the storage engine's limit"),
        },
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            Error::Storage("the database is open in another process".to_string())
        }
        other => Error::Storage(other.to_string()),
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(err: $t) -> Self {
                classify(err.into())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    redb::CompactionError,
    redb::CursorError
);
