//! Conversion of redb's errors into kvr's [`Error`], in one place.
//!
//! Every redb error type converts into `redb::Error`; we classify that one
//! enum. Opening errors that need the path (a database in use) are handled in
//! `store::open` before they get here.

use std::path::Path;

use crate::error::Error;

/// How every message of a damaged file starts: [`in_file`] finds it.
const DAMAGED: &str = "the database is damaged: ";

/// A damaged file's error as an open of `path` reports it: the file named,
/// and what to do. Other errors are as they are.
pub(super) fn in_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Corrupt(message) => match message.strip_prefix(DAMAGED) {
            Some(what) => {
                let db = path.display();
                Error::Corrupt(format!(
                    "{db} is damaged: {what}; kvr --db {db} check tells what is wrong; restore \
                     a backup of it"
                ))
            }
            None => Error::Corrupt(message),
        },
        other => other,
    }
}

fn classify(err: redb::Error) -> Error {
    match err {
        // redb reads whole pages and headers: a file that ends inside one
        // was cut short (a copy that stopped, a truncation).
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Corrupt(format!(
                "{DAMAGED}the file ends inside a page or its header (it was \
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
        // The header says the pages go on past the file's end: cut short
        // after its header, where the case above is cut inside it.
        redb::Error::Corrupted(msg) if msg.starts_with("File truncated below stored layout") => {
            Error::Corrupt(format!(
                "{DAMAGED}the file ends before its last page (it was truncated, or a copy of it \
                 stopped short; {})",
                msg.trim_start_matches("File truncated below stored layout: ")
            ))
        }
        redb::Error::Corrupted(msg) => Error::Corrupt(format!("{DAMAGED}{msg}")),
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
