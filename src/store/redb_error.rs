//! Conversion of redb's errors into kvr's [`Error`], in one place.
//!
//! Every redb error type converts into `redb::Error`; we classify that one
//! enum. Opening errors that need the path (a database in use) are handled in
//! `store::open` before they get here.

use crate::error::Error;

fn classify(err: redb::Error) -> Error {
    match err {
        redb::Error::Io(e) => Error::io("database file I/O", e),
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
