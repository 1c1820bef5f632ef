//! Whether the database file and its log are still where the server found
//! them (`rm DB`, `mv other.redb DB` or `rm -rf DB.wal` while it runs).
//!
//! The server writes through the files it opened, whatever their names
//! now point to. A write acknowledged after its file or log lost its name
//! is one no restart finds: a clean stop then deleted the log beside a
//! file that was gone, and every write with it (found by an audit). So
//! every [`CHECK_EVERY`] a group checks, before it is logged, that its
//! segment is still linked (an `fstat`) and that the names still lead to
//! the files (two `stat`s). Done at every group, the `fstat` alone cost
//! 7 % of PUT throughput and the `stat`s 4 % (`scripts/bench/ab.sh`).
//! The writes of that window after an `rm -rf DB.wal` are where every
//! write since the last flush already is: in memory and in a deleted log,
//! so lost to a crash before the next flush whatever is checked; the
//! check stops that from growing. A release or removal of log segments
//! checks everything first. A file moved meanwhile loses
//! nothing: its writes are in the log, which is kept. sqlite refuses
//! writes to a database file moved or deleted under it the same way
//! (`SQLITE_READONLY_DBMOVED`).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How often the log's segment and the names of the file and the log are
/// looked at again.
pub const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// A file's device and inode.
type Id = (u64, u64);

fn id(meta: &std::fs::Metadata) -> Id {
    (meta.dev(), meta.ino())
}

/// The database file and the log directory, as the log was started.
#[derive(Debug)]
pub(super) struct Identity {
    db: PathBuf,
    file: Option<Id>,
    dir: PathBuf,
    dir_id: Option<Id>,
}

impl Identity {
    /// The identity of the log directory `dir` (`DB.wal`) and of the
    /// database file beside it, as they are now.
    pub(super) fn of(dir: &Path) -> Identity {
        let db = database_of(dir);
        Identity {
            file: file_id(&db),
            dir_id: std::fs::metadata(dir).ok().map(|m| id(&m)),
            db,
            dir: dir.to_path_buf(),
        }
    }

    /// What was moved, deleted or replaced since, if anything: the
    /// current segment `segment` (when given), the log directory and the
    /// database file.
    pub(super) fn changed(&self, segment: Option<&File>) -> Option<Change> {
        if let Some(segment) = segment
            && segment.metadata().is_ok_and(|m| m.nlink() == 0)
        {
            return Some(Change::Log(format!(
                "the write-ahead log {} was deleted while the server ran",
                self.dir.display()
            )));
        }
        if self.dir_id.is_some() && std::fs::metadata(&self.dir).ok().map(|m| id(&m)) != self.dir_id
        {
            return Some(Change::Log(format!(
                "the write-ahead log {} was moved, deleted or replaced while the server ran",
                self.dir.display()
            )));
        }
        self.file_changed().then(|| {
            Change::File(format!(
                "the database file {} was moved, deleted or replaced while the server ran",
                self.db.display()
            ))
        })
    }

    /// Whether the database file was moved, deleted or replaced since.
    pub(super) fn file_changed(&self) -> bool {
        self.file.is_some() && file_id(&self.db) != self.file
    }

    /// The error of a write refused because of `change`.
    pub(super) fn refusal(&self, change: &Change) -> crate::error::Error {
        let message = match change {
            // The engine flushes what the lost log held (`engine/apply.rs`).
            Change::Log(what) => format!(
                "{what}: no write is taken until it is back, since a restart would not find \
                 it; the writes acknowledged before are being flushed into {} and reads go on. \
                 Put the log back, or stop the server (SIGTERM) and start it again with a new \
                 log",
                self.db.display()
            ),
            Change::File(what) => format!(
                "{what}: no write is taken until it is back, since a restart would not find \
                 it; the writes acknowledged before are in {} (kept) and reads go on. Put it \
                 back, or copy the whole database out through this server (kvr --server URL \
                 backup FILE) before stopping it",
                self.dir.display()
            ),
        };
        crate::error::Error::Unavailable {
            message,
            overloaded: false,
        }
    }
}

/// What lost its name while the server ran, and how that reads.
#[derive(Debug)]
pub(super) enum Change {
    /// The log directory or its current segment.
    Log(String),
    /// The database file.
    File(String),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Log(what) | Change::File(what) => f.write_str(what),
        }
    }
}

/// The database whose log is `dir` (`DB.wal`, see `super::dir_of`).
pub(super) fn database_of(dir: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let name = dir.as_os_str().as_bytes();
    PathBuf::from(std::ffi::OsStr::from_bytes(
        name.strip_suffix(b".wal").unwrap_or(name),
    ))
}

/// The file at `db`, or at its temporary name while a new database is
/// not yet published (`store::create`; a rename keeps the inode).
fn file_id(db: &Path) -> Option<Id> {
    std::fs::metadata(db)
        .or_else(|_| std::fs::metadata(crate::store::create::temp_path(db)))
        .ok()
        .map(|m| id(&m))
}
