//! The persistent store: a redb file holding keys, values and revisions.
//!
//! * [`Store::open`] opens (or, for writing commands, creates atomically:
//!   `create.rs`) the file, takes the single-process lock, checks the format
//!   and replays the write-ahead log a crashed `kvr serve` left (see `wal`).
//!   When another process holds it, `holder.rs` names that process. Read
//!   commands open it without writing to it (`read_only.rs`).
//! * [`Store::apply`] (in `apply.rs`) is the one write path: every command that
//!   writes, later the group-commit writer and the replicated log, goes through
//!   it.
//! * [`Snapshot`] is a consistent read view (one redb read transaction):
//!   point reads and streaming ranges (`range.rs`).
//!
//! The byte layout is documented in `record.rs`.

mod apply;
mod check;
pub mod cluster;
mod overlay;
mod read_only;
pub use cluster::Replaced;
pub mod create;
pub use create::creation_target;
mod holder;
pub use holder::of as holder_of;
mod memory;
mod paced;
mod range;
mod record;
mod redb_error;
mod runs;
mod table;
mod write_tables;

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableError};

pub use apply::{Commit, LOCAL_SWEEP_MAX, commits_settled};
pub(crate) use apply::{check_limits, condition_holds};
pub use check::{Problem, Report, check};
pub use memory::{available_bytes, default_cache_mib, default_serve_cache_mib};
pub use record::Record;
pub use runs::{SortedRun, SortedRuns};
pub use table::{
    Created, HistoryUpdate, IdempotencyUpdate, InlineValue, SortedItem, StoreEvent, TableCursor,
    TableItem, TableReader,
};

use crate::error::{Error, Result};
use crate::types::{Entry, Stats};
use record::{
    DB_FORMAT, EXPIRY, KV, META, META_DATABASE_ID, META_FORMAT, META_KEYS, META_REVISION,
};

/// Smallest cache we configure: below this redb spends its time re-reading pages.
pub const MIN_CACHE_MIB: u64 = 16;
/// Largest default cache of a command. More rarely helps a CLI process, and
/// under glibc malloc RSS was seen reaching twice the cache size.
pub const MAX_DEFAULT_CACHE_MIB: u64 = 1024;
/// Largest default cache of `kvr serve`: a long-lived server on a file past
/// 1 GiB flushes random writes into pages it must otherwise read back from
/// the OS. On a 10M-key, 4 GB file (24 GB machine, an eighth is 2.9 GiB):
/// durable PUTs 36-38k/s against 30-32k/s with 1 GiB, whose flushes fell
/// behind the writes so that they waited up to 1.9 s.
pub const MAX_DEFAULT_SERVE_CACHE_MIB: u64 = 4096;
/// How long [`Store::reopen`] waits for the closed file's lock to go.
const REOPEN_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a waiting open (`--lock-timeout`) retries the lock.
pub(super) const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// Whether opening may create the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Commands that may write to an existing file: a missing file is
    /// [`Error::DatabaseMissing`], never created.
    MustExist,
    /// Read commands: as `MustExist`, and the file is opened read-only
    /// unless it needs writing first (`read_only.rs`).
    ReadOnly,
    /// Writing commands create a missing file.
    Create,
    /// The command line's writes: as `Create`, but a new file is written
    /// under `DB.creating` and takes its name at its first commit
    /// (`create::begin`), so that nothing killed before then leaves a new,
    /// empty database behind.
    CreateOnCommit,
    /// `kvr batch`: as `CreateOnCommit` for a missing file; an existing
    /// one is opened read-only (as `ReadOnly`) and for writing only when
    /// the first write begins ([`Store::writable_now`]), so that a batch
    /// refused before then (a bad line, a failed condition) leaves the
    /// file's bytes and modification time as they were: redb rewrites the
    /// header of a file it opens for writing.
    WriteOnDemand,
    /// `kvr delete --prefix/--range`: as `WriteOnDemand`, on a file that
    /// must exist (as `MustExist`).
    ExistingWriteOnDemand,
}

impl OpenMode {
    /// Whether a missing file is created.
    pub fn creates(self) -> bool {
        matches!(
            self,
            OpenMode::Create | OpenMode::CreateOnCommit | OpenMode::WriteOnDemand
        )
    }
}

/// Tunables of [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// redb's page cache, in bytes: the main bound on the process's memory.
    pub cache_bytes: usize,
    /// How long to wait for another process to release the file.
    pub lock_timeout: Duration,
    /// Sync the file as it is written (`store/paced.rs`): for `kvr serve`, whose
    /// log syncs must not wait behind a flush. Off for the commands: it
    /// made a `kvr batch` of 1M pairs about 12 % slower.
    pub paced_writeback: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: default_cache_mib() as usize * 1024 * 1024,
            lock_timeout: Duration::ZERO,
            paced_writeback: false,
        }
    }
}

/// The file beside a database where `kvr serve` writes its URL, so that a
/// command that finds the database locked can say which server to use.
pub fn serve_hint_path(db: &Path) -> PathBuf {
    let mut name = creation_target(db).into_os_string();
    name.push(".serve");
    PathBuf::from(name)
}

/// An open kvr database.
pub struct Store {
    /// `None` only while [`Store::reopen`] swaps the file.
    db: RwLock<Option<Handle>>,
    /// The thread replaying the log after [`Store::reopen`]: reads from
    /// other threads get `unavailable` until [`Store::reopened`], so nobody
    /// sees the older durable state in between.
    replaying: std::sync::Mutex<Option<std::thread::ThreadId>>,
    cache_bytes: usize,
    /// See [`StoreOptions::paced_writeback`] (kept for [`Store::reopen`]).
    paced_writeback: bool,
    path: PathBuf,
    /// Input bytes per sorted run of a batch (see `runs.rs`).
    run_max_bytes: usize,
    /// This open created the file (see [`Store::discard_if_unwritten`]).
    created: bool,
    /// A file created by [`OpenMode::CreateOnCommit`] that its first
    /// commit has not published yet.
    unpublished: std::sync::Mutex<Option<create::Unpublished>>,
    /// Opened read-only by [`OpenMode::WriteOnDemand`]: the first write
    /// opens it for writing.
    writes_on_demand: bool,
}

/// The open redb file.
enum Handle {
    Writable(redb::Database),
    /// Opened by a read command (`read_only.rs`): nothing writes to it.
    ReadOnly(read_only::Reader),
}

impl Handle {
    fn writable(&self) -> Result<&redb::Database> {
        match self {
            Handle::Writable(db) => Ok(db),
            Handle::ReadOnly(_) => Err(opened_read_only()),
        }
    }
}

fn opened_read_only() -> Error {
    Error::io(
        "the file is open read-only, as this user may only read it",
        std::io::ErrorKind::PermissionDenied.into(),
    )
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the database at `path`, waiting up to `opts.lock_timeout` for
    /// another process to let go of it. A crash-interrupted file is repaired
    /// here; with quick repair (every kvr commit) that takes milliseconds.
    /// The log of a crashed server is not replayed here: open through
    /// `engine::open_store`, which does both.
    pub fn open(path: &Path, mode: OpenMode, opts: &StoreOptions) -> Result<Store> {
        if !mode.creates() {
            match std::fs::metadata(path) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Err(crate::error::database_missing(path));
                }
                // A loop of links, a directory that may not be searched:
                // not "does not exist", which sends the user looking for
                // a file that may well be there.
                Err(e) => {
                    return Err(Error::io(format!("cannot open {}", path.display()), e));
                }
            }
        }
        let mut needs_write = None;
        let on_demand = matches!(
            mode,
            OpenMode::WriteOnDemand | OpenMode::ExistingWriteOnDemand
        ) && std::fs::metadata(path).is_ok();
        if mode == OpenMode::ReadOnly || on_demand {
            match read_only::open(path, opts)? {
                read_only::Opened::Reader(db) => {
                    let mut store = Self::init(Handle::ReadOnly(db), path.to_path_buf(), opts)?;
                    store.writes_on_demand = on_demand;
                    return Ok(store);
                }
                read_only::Opened::NeedsWrite(what) => needs_write = Some(what),
            }
        }
        let mode = match mode {
            OpenMode::WriteOnDemand => OpenMode::CreateOnCommit,
            OpenMode::ExistingWriteOnDemand => OpenMode::MustExist,
            mode => mode,
        };
        if needs_write.is_none() {
            refuse_another_programs(path)?;
        }
        let opened = open_file(path, mode, opts).map_err(|e| match (e, needs_write) {
            // Say why a read command needed to write the file it may only read.
            (Error::Io { source, .. }, Some(what)) if read_only::denied(&source) => {
                Error::io(format!("cannot open {} to {what}", path.display()), source)
            }
            // A write command on a file that is there but may not be
            // written: say so, rather than "cannot open F".
            (Error::Io { source, .. }, None) if read_only::denied(&source) && path.is_file() => {
                read_only::cannot_write_because(path, source)
            }
            (e, _) => e,
        })?;
        let mut store = Self::init(Handle::Writable(opened.db), path.to_path_buf(), opts)?;
        store.created = opened.created;
        store.unpublished = std::sync::Mutex::new(opened.unpublished);
        Ok(store)
    }

    /// Opens a database on a custom redb storage backend (tests use one that
    /// simulates power loss).
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        opts: &StoreOptions,
    ) -> Result<Store> {
        let db = redb::Builder::new()
            .set_cache_size(opts.cache_bytes)
            .create_with_backend(backend)?;
        Self::init(Handle::Writable(db), PathBuf::from("<backend>"), opts)
    }

    /// Checks the format, creating the tables in a new file.
    fn init(db: Handle, path: PathBuf, opts: &StoreOptions) -> Result<Store> {
        let store = Store {
            db: RwLock::new(Some(db)),
            replaying: std::sync::Mutex::new(None),
            cache_bytes: opts.cache_bytes,
            paced_writeback: opts.paced_writeback,
            path,
            run_max_bytes: runs::run_max_bytes(opts.cache_bytes),
            created: false,
            unpublished: std::sync::Mutex::new(None),
            writes_on_demand: false,
        };
        let rtx = store.begin_read()?;
        match rtx.open_table(META) {
            Ok(meta) => {
                let format = meta.get(META_FORMAT)?.map(|g| g.value());
                if format != Some(DB_FORMAT) {
                    return Err(Error::Corrupt(format!(
                        "{} has database format {format:?}; this kvr reads format {DB_FORMAT}",
                        store.path.display()
                    )));
                }
            }
            Err(TableError::TableDoesNotExist(_)) => {
                if rtx.list_tables()?.next().is_some() {
                    return Err(not_kvrs(&store.path));
                }
                drop(rtx);
                let mut wtx = store.write_txn()?;
                wtx.set_quick_repair(true);
                {
                    wtx.open_table(KV)?;
                    wtx.open_table(EXPIRY)?;
                    let mut meta = wtx.open_table(META)?;
                    meta.insert(META_FORMAT, DB_FORMAT)?;
                    meta.insert(META_DATABASE_ID, new_database_id()?)?;
                    meta.insert(META_REVISION, 0)?;
                    meta.insert(META_KEYS, 0)?;
                }
                wtx.commit()?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(store)
    }

    /// The database's id (see `record::META_DATABASE_ID`); `None` for a
    /// file made before ids, until [`Store::assign_database_id`].
    pub fn database_id(&self) -> Result<Option<u64>> {
        let rtx = self.begin_read()?;
        let meta = rtx.open_table(META)?;
        Ok(meta.get(META_DATABASE_ID)?.map(|g| g.value()))
    }

    /// The database's id, drawn and committed durably first if the file
    /// has none yet (one made by an older kvr). Touches nothing else.
    pub fn assign_database_id(&self) -> Result<u64> {
        if let Some(id) = self.database_id()? {
            return Ok(id);
        }
        let id = new_database_id()?;
        let mut wtx = self.write_txn()?;
        wtx.set_quick_repair(true);
        wtx.open_table(META)?.insert(META_DATABASE_ID, id)?;
        wtx.commit()?;
        Ok(id)
    }

    /// Whether this open created the file.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Whether this process may write the file: opened for writing, or
    /// opened read-only though it could have been (`read_only.rs`), so
    /// that an open for writing would succeed.
    pub fn may_write(&self) -> bool {
        matches!(
            self.db.read().as_deref(),
            Ok(Some(
                Handle::Writable(_) | Handle::ReadOnly(read_only::Reader::Exclusive(_))
            ))
        )
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent read view of the latest commit.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot {
            txn: self.begin_read()?,
        })
    }

    /// Reads one key from the latest commit.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.snapshot()?.get(key)
    }

    /// Makes every earlier [`Commit::Buffered`] commit durable (fsync, with
    /// quick repair) and returns the revision now on disk.
    pub fn checkpoint(&self) -> Result<u64> {
        let mut wtx = self.write_txn()?;
        wtx.set_quick_repair(true);
        let revision = {
            let meta = wtx.open_table(META)?;
            meta.get(META_REVISION)?.map(|g| g.value()).unwrap_or(0)
        };
        wtx.commit()?;
        Ok(revision)
    }

    /// Makes the pages freed by earlier commits reusable: redb reclaims
    /// them at a durable commit, once no reader is older than the commit
    /// that freed them. An empty durable commit after readers have moved to
    /// the newest one does that, instead of the next real commit.
    pub fn reclaim_freed_pages(&self) -> Result<()> {
        self.checkpoint().map(drop)
    }

    fn begin_read(&self) -> Result<ReadTransaction> {
        let replaying = *self.replaying.lock().map_err(|_| lock_poisoned())?;
        if replaying.is_some_and(|t| t != std::thread::current().id()) {
            return Err(reopening());
        }
        Ok(match self.database()?.as_ref().ok_or_else(reopening)? {
            Handle::Writable(db) => db.begin_read()?,
            Handle::ReadOnly(db) => db.begin_read()?,
        })
    }

    pub(crate) fn write_txn(&self) -> Result<redb::WriteTransaction> {
        Ok(self
            .database()?
            .as_ref()
            .ok_or_else(reopening)?
            .writable()?
            .begin_write()?)
    }

    fn database(&self) -> Result<std::sync::RwLockReadGuard<'_, Option<Handle>>> {
        self.db.read().map_err(|_| lock_poisoned())
    }

    /// Whether redb refuses every write because an earlier one failed with
    /// an I/O error (a full disk in the middle of a commit): only closing
    /// and reopening the file ([`Store::reopen`]) clears that.
    pub fn refuses_writes(&self) -> bool {
        let Ok(db) = self.database() else {
            return true;
        };
        match db
            .as_ref()
            .map(|db| db.writable().map(|db| db.try_begin_write()))
        {
            Some(Ok(Ok(_))) => false,
            Some(Err(_)) => true,
            Some(Ok(Err(redb::TransactionError::Storage(redb::StorageError::PreviousIo))))
            | None => true,
            Some(Ok(Err(_))) => false,
        }
    }

    /// Whether the file is open (not between a failed reopen and the next).
    pub fn is_open(&self) -> bool {
        self.database().is_ok_and(|db| db.is_some())
    }

    /// Lets go of redb's handle without closing it, after a panic inside
    /// redb: its locks may be poisoned, and closing it would panic again
    /// (at the server's shutdown, say). What it had not synced is lost,
    /// as in a crash, and the log kept for recovery covers it. Reads
    /// then get an error.
    pub fn forsake(&self) {
        let handle = match self.db.write() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        std::mem::forget(handle);
    }

    /// Closes the file and opens it again at its last durable commit; the
    /// calling thread then replays its log on top and calls
    /// [`Store::reopened`]. Reads from other threads in between get
    /// `unavailable`; snapshots taken before fail with an error.
    pub fn reopen(&self) -> Result<()> {
        *self.replaying.lock().map_err(|_| lock_poisoned())? = Some(std::thread::current().id());
        let mut slot = self.db.write().map_err(|_| lock_poisoned())?;
        if let Some(Handle::Writable(old)) = slot.take() {
            let _ = old.close();
        }
        *slot = Some(self.open_writable()?);
        Ok(())
    }

    /// This file opened again for writing, as it was first opened.
    fn open_writable(&self) -> Result<Handle> {
        let opts = StoreOptions {
            cache_bytes: self.cache_bytes,
            lock_timeout: REOPEN_LOCK_TIMEOUT,
            paced_writeback: self.paced_writeback,
        };
        Ok(Handle::Writable(
            open_file(&self.path, OpenMode::MustExist, &opts)?.db,
        ))
    }

    /// Whether the file is open for writing (not read-only, see
    /// [`OpenMode::ReadOnly`] and [`OpenMode::WriteOnDemand`]).
    pub fn opened_for_writing(&self) -> bool {
        matches!(self.database().as_deref(), Ok(Some(Handle::Writable(_))))
    }

    /// Whether the file was opened read-only until its first write
    /// ([`OpenMode::WriteOnDemand`]) and that write has not begun.
    pub fn writes_on_demand(&self) -> bool {
        self.writes_on_demand && !self.opened_for_writing()
    }

    /// Opens for writing a file that [`OpenMode::WriteOnDemand`] opened
    /// read-only, as its first write begins; anything else is left as it
    /// is. The read-only handle lets go of the file before the open for
    /// writing takes it: another process may write it in between, which
    /// is safe, as the write checks its conditions inside its transaction
    /// and expiry deletes are no-ops on a key that changed. A file this
    /// user may not write is refused with the reason.
    pub fn writable_now(&self) -> Result<()> {
        if !self.writes_on_demand {
            return Ok(());
        }
        let mut slot = self.db.write().map_err(|_| lock_poisoned())?;
        match slot.as_ref() {
            Some(Handle::ReadOnly(read_only::Reader::Exclusive(_))) => {}
            Some(Handle::ReadOnly(read_only::Reader::Shared(_))) => {
                return Err(read_only::cannot_write(&self.path));
            }
            Some(Handle::Writable(_)) | None => return Ok(()),
        }
        drop(slot.take());
        *slot = Some(self.open_writable()?);
        Ok(())
    }

    /// After a write that failed on an I/O error (a full disk in the
    /// middle of a commit), on a file that was there before: redb refuses
    /// every later write, and leaves the file as the failed commit grew it
    /// (it grows a file by doubling it: 1.8 MB became 3.7 MB) and marked
    /// not closed cleanly, until the next open recovers it. This closes
    /// and opens it again, so that redb recovers it to its last commit and
    /// trims it now. The file is never cut by hand: only redb knows what
    /// is committed (a commit whose header was written before a later sync
    /// failed may be durable, with pages in the grown part). Nothing to do
    /// for a healthy file, one opened read-only, or one this process
    /// created (removed by [`Store::discard_if_unwritten`]).
    pub fn recover_after_failed_write(&self) -> Result<()> {
        if self.created
            || self.unpublished().is_some()
            || !self.opened_for_writing()
            || !self.refuses_writes()
        {
            return Ok(());
        }
        let reopened = self.reopen();
        self.reopened();
        reopened
    }

    /// Ends the replay after [`Store::reopen`]: reads see the database again.
    pub fn reopened(&self) {
        if let Ok(mut replaying) = self.replaying.lock() {
            *replaying = None;
        }
    }

    /// Removes the file if this process created it and nothing was ever
    /// written to it (revision 0): a put or batch that failed leaves no new
    /// database behind. Runs while the file is still open, so that no other
    /// process can have opened it in between. Never touches a file that was
    /// there before. Whether the file (under its name) was removed.
    pub fn discard_if_unwritten(&self) -> bool {
        if let Some(new) = self.unpublished().take() {
            // Still under `DB.creating`, which we hold: ours alone.
            let _ = std::fs::remove_file(new.temp());
            return false;
        }
        if !self.created || !matches!(self.snapshot().and_then(|s| s.revision()), Ok(0)) {
            return false;
        }
        let removed = std::fs::remove_file(&self.path).is_ok();
        if removed {
            let _ = create::sync_dir(create::parent_dir(&self.path));
        }
        removed
    }

    /// Gives a file made by [`OpenMode::CreateOnCommit`] its name, once:
    /// after its first durable commit, which is then acknowledged only if
    /// this succeeds.
    pub(crate) fn publish_if_new(&self) -> Result<()> {
        let mut unpublished = self.unpublished();
        if let Some(new) = unpublished.as_ref() {
            new.publish(&self.path)?;
            *unpublished = None;
        }
        Ok(())
    }

    fn unpublished(&self) -> std::sync::MutexGuard<'_, Option<create::Unpublished>> {
        self.unpublished.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The redb database, closing this store (for what needs it whole,
    /// such as compaction).
    pub fn into_database(self) -> Result<redb::Database> {
        match self
            .db
            .into_inner()
            .map_err(|_| lock_poisoned())?
            .ok_or_else(reopening)?
        {
            Handle::Writable(db) => Ok(db),
            Handle::ReadOnly(_) => Err(opened_read_only()),
        }
    }

    /// Key count, revision and file size, without scanning.
    pub fn stats(&self) -> Result<Stats> {
        let snap = self.snapshot()?;
        let file = match self.unpublished().as_ref() {
            Some(new) => new.temp().to_path_buf(),
            None => self.path.clone(),
        };
        let file_bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        Ok(Stats {
            keys: snap.counter(META_KEYS)?,
            revision: snap.revision()?,
            file_bytes,
        })
    }
}

/// A new database id: random and never 0 (which a write-ahead log
/// segment's header holds when an older kvr wrote it).
fn new_database_id() -> Result<u64> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    loop {
        let mut bytes = [0u8; 8];
        rng.fill(&mut bytes)
            .map_err(|_| Error::Storage("no randomness for a database id".into()))?;
        let id = u64::from_le_bytes(bytes);
        if id != 0 {
            return Ok(id);
        }
    }
}

/// Most compaction passes [`compact_database`] runs: each one moves what it can;
/// redb says when nothing more can move, usually after a few.
const MAX_COMPACT_PASSES: usize = 64;

/// Compacts and closes an open database (`kvr compact`, backups), the
/// file at `path`. Then opens and closes it once more: the first open
/// after a compaction grows the file again (49,152 to 65,536 bytes for
/// 200 keys) and later ones keep that size, so the size reported after
/// this is the one the next `stats` sees.
pub fn compact_database(mut db: redb::Database, path: &Path) -> Result<()> {
    for _ in 0..MAX_COMPACT_PASSES {
        if !db.compact()? {
            break;
        }
    }
    drop(db);
    drop(redb::Database::open(path)?);
    Ok(())
}

/// Whether the file at `path`, which no process holds, was left not closed
/// cleanly, so that the next open for writing recovers it: a read-only
/// open refuses such a file (see `read_only.rs`). `false` when that cannot
/// be told (the file does not open at all).
pub fn left_unclean(path: &Path) -> bool {
    matches!(open_probe(path), Err(redb::DatabaseError::RepairAborted))
}

/// The database id of the file at `path` (`record::META_DATABASE_ID`;
/// `Some(None)` for a file made before ids), read without writing a byte
/// of it: through an overlay (`overlay.rs`), where redb's repair of a file
/// not closed cleanly and the header it writes stay in memory. `None` when
/// it cannot be read so (the open that follows says why). For refusing a
/// log that is not the file's before the file is opened for writing,
/// which rewrites its header and may trim its end.
pub fn peek_database_id(path: &Path) -> Option<Option<u64>> {
    let file = std::fs::File::open(path).ok()?;
    let overlay = overlay::Overlay::new(file, path.to_path_buf()).ok()?;
    let db = redb::Builder::new()
        .set_cache_size(1 << 20)
        .create_with_backend(overlay)
        .ok()?;
    let rtx = db.begin_read().ok()?;
    let meta = rtx.open_table(META).ok()?;
    let id = meta.get(META_DATABASE_ID).ok()?;
    Some(id.map(|g| g.value()))
}

/// A read-only open of `path` with a small cache: it refuses a file not
/// closed cleanly (`RepairAborted`) or held by a writer, which is what its
/// callers want to learn.
pub(crate) fn open_probe(
    path: &Path,
) -> std::result::Result<redb::ReadOnlyDatabase, redb::DatabaseError> {
    redb::Builder::new()
        .set_cache_size(1 << 20)
        .open_read_only(path)
}

/// The error of a redb file another program made (no `meta` table).
pub(crate) fn not_kvrs(path: &Path) -> Error {
    Error::Corrupt(format!(
        "{} is a redb database but not a kvr one",
        path.display()
    ))
}

/// Refuses a redb file that is not kvr's (no `meta` table: kvr makes its
/// tables in a new file's first commit, under a temporary name) before it
/// is opened for writing, which rewrites its header (a `put` changed
/// another program's file as it refused it; found by an audit). Looked at
/// read-only; a file that does not open so is left to the open for
/// writing to judge.
fn refuse_another_programs(path: &Path) -> Result<()> {
    // Not a device or a pipe: an open of a FIFO waits for a writer.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let Ok(db) = open_probe(path) else {
        return Ok(());
    };
    let Ok(rtx) = db.begin_read() else {
        return Ok(());
    };
    match rtx.open_table(META) {
        Err(TableError::TableDoesNotExist(_)) => Err(not_kvrs(path)),
        _ => Ok(()),
    }
}

/// What [`open_file`] opened.
struct Opened {
    db: redb::Database,
    /// This call created the file.
    created: bool,
    unpublished: Option<create::Unpublished>,
}

/// How many times opening creates the file and finds it gone again (another
/// process removing it each time) before giving up.
const CREATE_ATTEMPTS: u32 = 3;

/// Opens the redb file, retrying while another process holds it until
/// `opts.lock_timeout` has passed. With [`OpenMode::Create`] a missing file,
/// or one whose creation never finished, is created first (`create.rs`);
/// with [`OpenMode::MustExist`] such a file is [`Error::DatabaseMissing`].
/// With [`OpenMode::CreateOnCommit`] it is created unpublished instead
/// (`create::begin`).
fn open_file(path: &Path, mode: OpenMode, opts: &StoreOptions) -> Result<Opened> {
    let mut builder = redb::Builder::new();
    builder.set_cache_size(opts.cache_bytes);
    let deadline = Instant::now() + opts.lock_timeout;
    let missing = || crate::error::database_missing(path);
    let mut created = false;
    let mut attempts = 0;
    loop {
        let opened = if opts.paced_writeback {
            paced::open(&builder, path)
        } else {
            builder.open(path)
        };
        let err = match opened {
            Ok(db) => {
                return Ok(Opened {
                    db,
                    created,
                    unpublished: None,
                });
            }
            Err(e) => e,
        };
        let absent = match err {
            redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::LockProtocolMismatch => {
                if Instant::now() >= deadline {
                    return Err(in_use(path, opts.lock_timeout));
                }
                stop_if_interrupted(path)?;
                std::thread::sleep(LOCK_RETRY_INTERVAL);
                continue;
            }
            redb::DatabaseError::Storage(redb::StorageError::Io(ref e))
                if e.kind() == std::io::ErrorKind::NotFound =>
            {
                true
            }
            // Refused: fail loudly unless it is provably an unfinished creation.
            _ => create::inspect(path)? != create::Found::Present,
        };
        if !absent {
            return Err(match Error::from(err) {
                Error::Io { source, .. } => Error::io(
                    format!("cannot open {}", path.display()),
                    plainly(path, source),
                ),
                other => redb_error::in_file(other, path),
            });
        }
        if !mode.creates() || attempts == CREATE_ATTEMPTS {
            return Err(missing());
        }
        attempts += 1;
        // Paced writeback is `kvr serve`'s, whose new file exists at once.
        if mode == OpenMode::CreateOnCommit && !opts.paced_writeback {
            if let Some((db, new)) = create::begin(path, opts, deadline)? {
                return Ok(Opened {
                    db,
                    created: true,
                    unpublished: Some(new),
                });
            }
            continue; // created by another process meanwhile: open it
        }
        created |= create::create(path, opts, deadline)?;
    }
}

/// A signal (SIGINT, SIGTERM) caught while waiting for `path`
/// (`--lock-timeout`) ends the wait: nothing was done yet. It was ignored
/// until the holder let go, and then the command ran, a write after
/// Ctrl-C included (found by an audit; a waiting `serve` started and
/// served on).
pub(crate) fn stop_if_interrupted(path: &Path) -> Result<()> {
    match crate::interrupt::requested() {
        Some(signal) => Err(Error::Interrupted(format!(
            "interrupted ({signal}) while waiting for {} (--lock-timeout): nothing was done",
            path.display()
        ))),
        None => Ok(()),
    }
}

/// Why redb refused to open `path`, for a report line (`kvr check`).
pub(crate) fn refusal(path: &Path, err: impl Into<Error>) -> String {
    match err.into() {
        Error::Io { context, source } => {
            let source = plainly(path, source);
            match source.kind() {
                std::io::ErrorKind::InvalidData
                | std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::IsADirectory => source.to_string(),
                _ => format!("{context}: {source}"),
            }
        }
        other => other.to_string(),
    }
}

/// redb's reasons for refusing a file that is not a database, in the
/// user's words (devices and pipes are refused before, by
/// `create::inspect`).
fn plainly(path: &Path, source: std::io::Error) -> std::io::Error {
    use std::io::{Error as IoError, ErrorKind};
    if source.kind() != ErrorKind::InvalidData {
        return source;
    }
    if source.to_string().contains("magic number") {
        return IoError::new(
            ErrorKind::InvalidData,
            "it is not a kvr database (it does not start as a redb file does)",
        );
    }
    if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        // A file of length 0 that is not empty when read (/proc, /sys).
        return IoError::new(
            ErrorKind::InvalidData,
            "it is not a kvr database (its length is 0, as a /proc or /sys file's is)",
        );
    }
    source
}

/// The error for a file another process holds: who holds it, and the URL
/// of the `kvr serve` that serves it. The URL is that of the file `serve`
/// leaves beside the database (`F.serve`), which a killed server leaves
/// behind: it is named only when the holder is a `kvr serve`, or cannot
/// be learned, so a browser holding the file is not said to be "served"
/// by a server long gone.
pub(crate) fn in_use(path: &Path, waited: Duration) -> Error {
    let holder = holder::of(path);
    let by_server = holder.as_deref().is_none_or(is_serve);
    Error::InUse {
        path: path.to_path_buf(),
        waited,
        server: read_serve_hint(path).filter(|_| by_server),
        holder,
        file_command: None,
    }
}

fn reopening() -> Error {
    Error::Unavailable {
        message: "the database is being reopened after an I/O error; retry".into(),
        overloaded: false,
    }
}

fn lock_poisoned() -> Error {
    Error::Storage("a thread panicked while reopening the database".into())
}

/// Whether a holder's command line (see [`holder::of`]) is a `kvr serve`.
fn is_serve(holder: &str) -> bool {
    holder
        .split_whitespace()
        .take_while(|w| !w.starts_with("(pid"))
        .any(|w| w == "serve")
}

/// The URL of the `kvr serve` that holds `db` now, if one does and left
/// its URL beside it: for commands that need a server to say which.
pub fn served_at(db: &Path) -> Option<String> {
    holder::of(db)
        .filter(|h| is_serve(h))
        .and_then(|_| read_serve_hint(db))
}

pub(crate) fn read_serve_hint(db: &Path) -> Option<String> {
    let text = std::fs::read_to_string(serve_hint_path(db)).ok()?;
    let url = text.lines().next()?.trim();
    (!url.is_empty()).then(|| url.to_string())
}

/// One read transaction: every read through it sees the same commit.
pub struct Snapshot {
    txn: ReadTransaction,
}

impl Snapshot {
    /// The database revision this snapshot reflects.
    pub fn revision(&self) -> Result<u64> {
        self.counter(META_REVISION)
    }

    fn counter(&self, name: &str) -> Result<u64> {
        let meta = self.txn.open_table(META)?;
        Ok(meta.get(name)?.map(|g| g.value()).unwrap_or(0))
    }

    /// The key's value and revision, `None` if absent.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        let kv = self.txn.open_table(KV)?;
        let Some(guard) = kv.get(key)? else {
            return Ok(None);
        };
        let rec = record::decode(guard.value())?;
        Ok(Some(Entry {
            value: rec.value.to_vec(),
            revision: rec.revision,
            expires_at_ms: rec.expires_at_ms,
        }))
    }

    /// The expiry deletes of up to `max` keys expired at `now_ms` (expiry
    /// at or before it), in expiry order. A file without the expiry table
    /// (an earlier release's) has none.
    pub fn expired(&self, now_ms: u64, max: usize) -> Result<Vec<crate::types::Op>> {
        let table = match self.txn.open_table(EXPIRY) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut ops = Vec::new();
        for item in table.iter()?.take(max) {
            let (k, v) = item?;
            let (at, key) = k.value();
            if at > now_ms {
                break;
            }
            ops.push(crate::types::Op::expire(key, v.value(), at));
        }
        Ok(ops)
    }

    /// The earliest expiry after `now_ms` in the expiry index, if any.
    pub fn next_expiry(&self, now_ms: u64) -> Result<Option<u64>> {
        let table = match self.txn.open_table(EXPIRY) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let first = table
            .range((now_ms.saturating_add(1), &[][..])..)?
            .next()
            .transpose()?;
        Ok(first.map(|(k, _)| k.value().0))
    }

    /// How many keys have expired at `now_ms` (present until a write
    /// deletes them), from the expiry index: reads with `--db` skip them.
    pub fn count_expired(&self, now_ms: u64) -> Result<u64> {
        let table = match self.txn.open_table(EXPIRY) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut n = 0;
        for item in table.iter()? {
            let (k, _) = item?;
            if k.value().0 > now_ms {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// The key's revision, `None` if absent.
    pub fn revision_of(&self, key: &[u8]) -> Result<Option<u64>> {
        let kv = self.txn.open_table(KV)?;
        match kv.get(key)? {
            Some(guard) => Ok(Some(record::decode(guard.value())?.revision)),
            None => Ok(None),
        }
    }
}
