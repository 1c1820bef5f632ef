//! Opening a database for reading only ([`OpenMode::ReadOnly`]): `get`,
//! `range`, `stats` and `backup` with `--db`.
//!
//! Such an open writes nothing to the file, as `sqlite3` reads do: redb
//! writes its header when it opens and closes a database for writing, so
//! before this every `kvr get` changed the file's bytes and modification
//! time (backup tools and `make` noticed), and failed on a file the user
//! may only read (another user's, a read-only mount or snapshot).
//!
//! * A file this process may write is opened through an [`Overlay`] (redb's
//!   writes go to memory) whose locks are taken on the file as a writing
//!   redb handle takes them: one process at a time owns the file (SPEC),
//!   readers included.
//! * A file it may not write is opened as a redb [`redb::ReadOnlyDatabase`],
//!   which can only take shared locks (an exclusive lock needs a file
//!   opened for writing): readers of such a file share it, and no writer
//!   opens it meanwhile.
//!
//! What needs the file written goes the usual read-write way instead: a
//! log a crashed server left (replayed into the file), a file not closed
//! cleanly (repaired), an empty file or one without kvr's tables, and
//! anything redb refuses; that open then reports what is wrong as before.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::Instant;

use redb::{ReadTransaction, ReadableDatabase, TableError};

use super::overlay::Overlay;
use super::record::META;
use super::{LOCK_RETRY_INTERVAL, StoreOptions, in_use};
use crate::error::{Error, Result};

/// A database opened for reading only.
pub(super) enum Reader {
    /// Through an [`Overlay`], locked as a writer locks it.
    Exclusive(redb::Database),
    /// A file this process may not write.
    Shared(redb::ReadOnlyDatabase),
}

impl Reader {
    pub(super) fn begin_read(&self) -> Result<ReadTransaction> {
        Ok(match self {
            Reader::Exclusive(db) => db.begin_read()?,
            Reader::Shared(db) => db.begin_read()?,
        })
    }
}

/// How [`open`] went.
pub(super) enum Opened {
    Reader(Reader),
    /// The file must be opened for writing: to do what this says (it
    /// completes "cannot open FILE to …").
    NeedsWrite(String),
}

/// One try, while another process may hold the file.
enum Attempt {
    Done(Opened),
    Busy,
    /// The file cannot be read at all (its mode): no open can help.
    Failed(Error),
}

/// Opens `path` for reading only unless it needs writing (see the module
/// header). Waits for another process as the read-write open does;
/// [`Error::InUse`] after `opts.lock_timeout`.
pub(super) fn open(path: &Path, opts: &StoreOptions) -> Result<Opened> {
    let log = crate::wal::dir_of(path);
    let deadline = Instant::now() + opts.lock_timeout;
    loop {
        // A running server keeps its log beside the file: that is a file
        // in use, not a crash to replay (a user who may only read it was
        // told of a server that did not stop cleanly; found by an audit).
        let attempt = if log.exists() {
            if super::holder_of(path).is_none() {
                return Ok(Opened::NeedsWrite(replay(&log)));
            }
            Attempt::Busy
        } else {
            match OpenOptions::new().read(true).write(true).open(path) {
                Ok(file) => exclusive(path, file, opts),
                Err(e) if denied(&e) => shared(path, opts),
                Err(_) => Attempt::Done(Opened::NeedsWrite("open it".into())),
            }
        };
        match attempt {
            Attempt::Busy if Instant::now() >= deadline => {
                return Err(in_use(path, opts.lock_timeout));
            }
            Attempt::Busy => {
                super::stop_if_interrupted(path)?;
                std::thread::sleep(LOCK_RETRY_INTERVAL);
            }
            // A server may have started, written and crashed between the
            // check above and the lock: its log is then newer than the file.
            Attempt::Done(Opened::Reader(_)) if log.exists() => {
                return Ok(Opened::NeedsWrite(replay(&log)));
            }
            Attempt::Done(opened) => return Ok(opened),
            Attempt::Failed(e) => return Err(e),
        }
    }
}

fn replay(log: &Path) -> String {
    format!(
        "replay the log {} left by a server that did not stop cleanly",
        log.display()
    )
}

/// Whether an open for writing failed because the file may only be read.
pub(super) fn denied(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

fn exclusive(path: &Path, file: File, opts: &StoreOptions) -> Attempt {
    // redb recovers a file that was not closed cleanly from the allocator
    // state kvr's commits record (quick repair) without asking the repair
    // callback: in the overlay that recovery is in memory only, and the
    // file would stay "not closed cleanly" however often it is read. A
    // read-only open refuses such a file: then repair it for real.
    match super::open_probe(path) {
        Err(redb::DatabaseError::RepairAborted) => {
            return Attempt::Done(Opened::NeedsWrite(
                "repair it: it was not closed cleanly".into(),
            ));
        }
        Err(
            redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch,
        ) => {
            return Attempt::Busy;
        }
        // Anything else the open below reports.
        _ => {}
    }
    let overlay = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
        .and_then(|m| {
            // An empty file is no database (the read-write open says so);
            // redb would make a new one in the overlay.
            if m.len() == 0 {
                return Err(crate::error::database_missing(path));
            }
            let reader = file
                .try_clone()
                .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
            let locks = redb::backends::FileBackend::new(file)?;
            Ok(Overlay::new(reader, path.to_path_buf())?.with_locks(locks))
        });
    let overlay = match overlay {
        Ok(o) => o,
        Err(e) => return Attempt::Done(Opened::NeedsWrite(format!("open it ({e})"))),
    };
    let opened = redb::Builder::new()
        .set_cache_size(opts.cache_bytes)
        .set_repair_callback(|session| session.abort())
        .create_with_backend(overlay);
    match opened {
        Ok(db) => with_tables(path, db, Reader::Exclusive),
        Err(e) => refused(e),
    }
}

fn shared(path: &Path, opts: &StoreOptions) -> Attempt {
    // A file that may not even be read: said as it is (it read "cannot
    // open F to open it (…: Permission denied): Permission denied").
    if let Err(e) = File::open(path) {
        return Attempt::Failed(Error::io(format!("cannot read {}", path.display()), e));
    }
    match redb::Builder::new()
        .set_cache_size(opts.cache_bytes)
        .open_read_only(path)
    {
        Ok(db) => with_tables(path, db, Reader::Shared),
        Err(e) => refused(e),
    }
}

/// `db` as a reader if it has kvr's tables. A redb file without them is
/// another program's (kvr makes a file with its tables in its first
/// commit, under a temporary name): refused as it is, without the open
/// for writing that would rewrite its header, or make a file with no
/// tables a kvr database, on a read (found by an audit).
fn with_tables<D: ReadableDatabase>(
    path: &Path,
    db: D,
    reader: impl FnOnce(D) -> Reader,
) -> Attempt {
    let why = match db.begin_read().map(|t| t.open_table(META).map(drop)) {
        Ok(Ok(())) => return Attempt::Done(Opened::Reader(reader(db))),
        Ok(Err(TableError::TableDoesNotExist(_))) => {
            return Attempt::Failed(super::not_kvrs(path));
        }
        Ok(Err(e)) => format!("read it ({})", Error::from(e)),
        Err(e) => format!("read it ({})", Error::from(e)),
    };
    Attempt::Done(Opened::NeedsWrite(why))
}

fn refused(e: redb::DatabaseError) -> Attempt {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            Attempt::Busy
        }
        redb::DatabaseError::RepairAborted => Attempt::Done(Opened::NeedsWrite(
            "repair it: it was not closed cleanly".into(),
        )),
        e => Attempt::Done(Opened::NeedsWrite(format!("open it ({})", Error::from(e)))),
    }
}

/// A write refused because this process may not write `path` (its mode,
/// its owner, a read-only mount), with the system's reason: what the user
/// must change, said as such, and that reads still work.
pub(crate) fn cannot_write(path: &Path) -> Error {
    let source = match OpenOptions::new().write(true).open(path) {
        Err(e) => e,
        // Writable after all (its mode changed meanwhile): this handle
        // was opened when it was not.
        Ok(_) => std::io::ErrorKind::PermissionDenied.into(),
    };
    cannot_write_because(path, source)
}

/// [`cannot_write`] with the error of the open for writing.
pub(crate) fn cannot_write_because(path: &Path, source: std::io::Error) -> Error {
    let why = match source.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem => "it is on a read-only file system",
        _ => "this user may only read it",
    };
    Error::io(
        format!(
            "cannot write {}: {why} (get, range, stats and backup work on it)",
            path.display()
        ),
        source,
    )
}
