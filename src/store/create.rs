//! Creating a database file atomically, and recognising a file whose
//! creation never finished.
//!
//! redb creates a file in place: it sizes it, writes its header without the
//! magic number, syncs, writes the magic and syncs again. A power loss in
//! between leaves a file redb refuses for good. So kvr never lets redb create
//! the file under its real name:
//!
//! 1. lock `DB.creating` (one creator at a time; a leftover of a crash is
//!    truncated and reused);
//! 2. build an empty kvr database in it ([`build_empty`]) and sync it;
//! 3. rename it to `DB` (never over a file that may hold data) and sync the
//!    directory.
//!
//! A crash at any point leaves no `DB`, or a complete empty one, and at worst
//! a `DB.creating` the next creation reuses.
//!
//! The command line's writes go one step further (`begin`): the database
//! is built *and written* under `DB.creating`, and renamed at its first
//! commit, so a batch killed before it commits leaves no `DB` at all (SPEC:
//! a failed batch never leaves a new, empty database file behind).
//!
//! A `DB` that is an unfinished creation of an older kvr (or of another redb
//! program) is recognised by [`unfinished`]: empty, or no magic number and
//! nothing but zeros after the header. Reads treat it as absent; a creating
//! command replaces it, saying so on stderr. Anything else is left alone.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{BackendError, StorageBackend};

use super::{Store, StoreOptions};
use crate::error::{Error, Result};

/// redb's header: magic number, god byte, layout and two commit slots.
const REDB_HEADER_BYTES: usize = 320;
/// redb's magic number, at offset 0: written last when redb creates a file.
const REDB_MAGIC_BYTES: usize = 9;
/// The largest file [`unfinished`] looks into. redb's first layout is
/// 73,728 bytes at the default page size (and smaller for kvr's own
/// creations); a larger file was never a bare creation.
pub const MAX_UNFINISHED_BYTES: u64 = 1 << 20;
/// How often a creator waits for another one to finish.
const RETRY_INTERVAL: Duration = Duration::from_millis(20);

/// The temporary name a database is built under: `DB.creating`, beside
/// the file it becomes (see [`creation_target`]).
pub fn temp_path(db: &Path) -> PathBuf {
    let mut name = creation_target(db).into_os_string();
    name.push(".creating");
    PathBuf::from(name)
}

/// Where a database created at `db` is written: `db` itself, or, when `db`
/// is a symbolic link, the file it points to (through a chain of links),
/// as `sqlite3` or a shell's `>` would create it. Renaming the new file
/// over the link instead would replace the link; and the temporary file is
/// made beside the target, since a rename cannot cross file systems.
pub fn creation_target(db: &Path) -> PathBuf {
    // Linux's own bound on a chain of links (ELOOP).
    const MAX_LINKS: usize = 40;
    let mut at = db.to_path_buf();
    for _ in 0..MAX_LINKS {
        let is_link = std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink());
        let Some(to) = is_link.then(|| std::fs::read_link(&at).ok()).flatten() else {
            break;
        };
        // A relative target is relative to the link's directory.
        at = match at.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            Some(dir) => dir.join(to),
            None => to,
        };
    }
    at
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Syncs a directory, so that names created, renamed or removed in it
/// survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot sync directory {}", dir.display()), e))
}

/// Whether the bytes of a whole file are a redb creation that never
/// finished: empty, or the magic number never written (all zeros) and
/// nothing but zeros after the header, so no page of data was ever written.
pub fn unfinished(bytes: &[u8]) -> bool {
    let magic = bytes.get(..REDB_MAGIC_BYTES).unwrap_or(bytes);
    let rest = bytes.get(REDB_HEADER_BYTES..).unwrap_or(&[]);
    magic.iter().all(|&b| b == 0) && rest.iter().all(|&b| b == 0)
}

/// What is at a database path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    Missing,
    /// An [`unfinished`] creation: as good as missing.
    Unfinished,
    /// Something else: opened, or refused loudly, never replaced.
    Present,
}

/// Looks at `path` (following symlinks) without opening it as a database.
pub(super) fn inspect(path: &Path) -> Result<Found> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(Error::io(format!("cannot open {}", path.display()), e)),
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(Error::io(
            format!("cannot open {}", path.display()),
            std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "it is a directory (give the database file's path)",
            ),
        ));
    }
    if !kind.is_file() {
        // Not opened to look: a pipe's open would wait for a writer.
        return Err(Error::io(
            format!("cannot open {}", path.display()),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is not a regular file (a device, pipe or socket cannot hold a database)",
            ),
        ));
    }
    if !meta.is_file() || meta.len() > MAX_UNFINISHED_BYTES {
        return Ok(Found::Present);
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    Ok(if unfinished(&bytes) {
        Found::Unfinished
    } else {
        Found::Present
    })
}

/// Builds an empty kvr database on `backend` and syncs it: redb's creation,
/// kvr's tables, a clean close, a final sync. Crash tests run it on a
/// simulated disk; creation runs it on the temporary file.
pub fn build_empty<B: StorageBackend + Clone>(backend: B, opts: &StoreOptions) -> Result<()> {
    let db = redb::Builder::new()
        .set_cache_size(opts.cache_bytes)
        .create_with_backend(backend.clone())?;
    let store = Store::init(
        super::Handle::Writable(db),
        PathBuf::from("<new database>"),
        opts,
    )?;
    drop(store);
    backend
        .sync_data()
        .map_err(|e| Error::io("cannot sync the new database", e))
}

/// Creates the database at `path` when it is missing or an unfinished
/// creation (see the module header). Returns whether this call made it;
/// `false` when another process did meanwhile.
pub(super) fn create(path: &Path, opts: &StoreOptions, deadline: Instant) -> Result<bool> {
    let Some((file, temp, found)) = claim(path, deadline)? else {
        return Ok(false);
    };
    let built = file
        .set_len(0)
        .map_err(|e| Error::io(format!("cannot create {}", temp.display()), e))
        .and_then(|()| {
            let backend =
                PlainFile(Arc::new(file.try_clone().map_err(|e| {
                    Error::io(format!("cannot create {}", temp.display()), e)
                })?));
            build_empty(backend, opts)
        })
        .and_then(|()| publish(&temp, path, found));
    if let Err(e) = built {
        // Ours alone (we hold its lock): nothing of the user's is in it.
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(parent_dir(&creation_target(path)))?;
    if found == Found::Unfinished {
        say_replaced(path);
    }
    Ok(true)
}

/// A database built under `DB.creating` that takes its real name at its
/// first commit ([`super::OpenMode::CreateOnCommit`]): a command killed
/// before that (`kill -9` of a long `kvr batch` into a new file) leaves no
/// database, only a `DB.creating` the next creation truncates and reuses.
/// Our lock on `DB.creating` goes with the file when it is renamed, so the
/// published database stays locked by this process until it closes.
#[derive(Debug)]
pub(super) struct Unpublished {
    temp: PathBuf,
    found: Found,
}

impl Unpublished {
    /// Where the database lives until it is published.
    pub(super) fn temp(&self) -> &Path {
        &self.temp
    }

    /// Gives the database its name `path` (see [`publish`]) and syncs the
    /// directory. Called after a durable commit, so what it publishes is
    /// whole.
    pub(super) fn publish(&self, path: &Path) -> Result<()> {
        publish(&self.temp, path, self.found)?;
        sync_dir(parent_dir(&creation_target(path)))?;
        if self.found == Found::Unfinished {
            say_replaced(path);
        }
        Ok(())
    }
}

/// Begins a database at `path` that appears there at its first commit
/// ([`Unpublished`]), when `path` is missing or an unfinished creation:
/// locks `DB.creating` and opens an empty redb database in it, which the
/// caller fills. `None` when another process created `path` meanwhile.
pub(super) fn begin(
    path: &Path,
    opts: &StoreOptions,
    deadline: Instant,
) -> Result<Option<(redb::Database, Unpublished)>> {
    let Some((file, temp, found)) = claim(path, deadline)? else {
        return Ok(None);
    };
    let db = file
        .set_len(0)
        .map_err(|e| Error::io(format!("cannot create {}", temp.display()), e))
        .and_then(|()| {
            Ok(redb::Builder::new()
                .set_cache_size(opts.cache_bytes)
                .create_with_backend(PlainFile(Arc::new(file)))?)
        });
    match db {
        Ok(db) => Ok(Some((db, Unpublished { temp, found }))),
        Err(e) => {
            // Ours alone (we hold its lock): nothing of the user's is in it.
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Whether `DB.creating` is held by a creation under way: who holds it.
pub fn creator_of(path: &Path) -> Option<String> {
    super::holder::of(&temp_path(path))
}

fn say_replaced(path: &Path) {
    let _ = writeln!(
        std::io::stderr(),
        "kvr: replaced {}: it was an empty database whose creation had been \
         interrupted (no data was in it)",
        path.display()
    );
}

/// The start of [`create`] and [`begin`]: `DB.creating` locked (see
/// [`lock_temp`]), and what is at `path`, `Missing` or `Unfinished`.
/// `None` when another creator finished first.
fn claim(path: &Path, deadline: Instant) -> Result<Option<(File, PathBuf, Found)>> {
    leaves_room(path)?;
    let temp = temp_path(path);
    let Some(file) = lock_temp(path, &temp, deadline)? else {
        return Ok(None);
    };
    let found = inspect(path)?;
    if found == Found::Present {
        // Another creator finished first. The file we locked was made by
        // our own open after its rename (or is a leftover): ours to remove,
        // under its lock, which a later creator checks it still has.
        let _ = std::fs::remove_file(&temp);
        return Ok(None);
    }
    if found == Found::Unfinished {
        ensure_unlocked(path)?;
    }
    Ok(Some((file, temp, found)))
}

/// The longest name kvr gives a file beside a database `DB`, past `DB`
/// itself: `DB.serve.tmp` (and `DB.creating`, `DB.raft`, `DB.wal`).
const LONGEST_SIBLING: &str = ".serve.tmp";

/// A new database's name leaves room for the files kvr names after it
/// beside it. Refused before anything is written: otherwise one name fits
/// and the next does not, and the error ("File name too long" for a name
/// that is not) says neither which name nor how long one may be.
fn leaves_room(path: &Path) -> Result<()> {
    let target = creation_target(path);
    let Some(name) = target.file_name() else {
        return Ok(());
    };
    // Linux's NAME_MAX, where the file system does not say its own.
    let most = rustix::fs::statvfs(parent_dir(&target))
        .ok()
        .and_then(|s| usize::try_from(s.f_namemax).ok())
        .filter(|&n| n > 0)
        .unwrap_or(255);
    let len = name.len();
    if len + LONGEST_SIBLING.len() <= most {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "cannot create {}: its name is {len} bytes long, and kvr keeps files named after it \
         beside it (NAME.creating, NAME.wal, NAME{LONGEST_SIBLING}), up to {} bytes longer, \
         where this file system takes names of up to {most} bytes: give the database a name \
         of at most {} bytes",
        path.display(),
        LONGEST_SIBLING.len(),
        most.saturating_sub(LONGEST_SIBLING.len())
    )))
}

/// Opens and locks `DB.creating`, waiting for another creator until
/// `deadline`. `None` when the database appeared while waiting.
fn lock_temp(path: &Path, temp: &Path, deadline: Instant) -> Result<Option<File>> {
    let may_wait = deadline.saturating_duration_since(Instant::now());
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(temp)
            .map_err(|e| cannot_create(path, e))?;
        // Renamed to `path` since we opened it: locking it now would make
        // its creator's own open of `path` find it in use.
        if !same_file(&file, temp) {
            drop(file);
            if inspect(path)? == Found::Present {
                return Ok(None);
            }
            continue;
        }
        match file.try_lock() {
            Ok(()) => {
                // The previous holder may have renamed or removed the file
                // we locked: only the one still named `temp` counts.
                if same_file(&file, temp) {
                    return Ok(Some(file));
                }
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return Err(Error::InUse {
                        path: path.to_path_buf(),
                        waited: may_wait,
                        server: None,
                        holder: super::holder::of(temp),
                        file_command: None,
                    });
                }
                super::stop_if_interrupted(path)?;
                std::thread::sleep(RETRY_INTERVAL);
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", temp.display()), e));
            }
        }
        if inspect(path)? == Found::Present {
            return Ok(None);
        }
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A failure to create `path`'s temporary file, naming a missing directory.
fn cannot_create(path: &Path, e: std::io::Error) -> Error {
    // The file a link points to, whose directory is the one missing.
    let target = creation_target(path);
    let dir = parent_dir(&target);
    if e.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() {
        return Error::DirectoryMissing {
            path: target.clone(),
            dir: dir.to_path_buf(),
        };
    }
    Error::io(format!("cannot create {}", path.display()), e)
}

/// An unfinished file still locked is being created right now (by a kvr
/// that creates in place): not ours to replace.
fn ensure_unlocked(path: &Path) -> Result<()> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InUse {
            path: path.to_path_buf(),
            waited: std::time::Duration::ZERO,
            server: None,
            holder: super::holder::of(path),
            file_command: None,
        }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io(format!("cannot lock {}", path.display()), e))
        }
    }
}

/// Renames the built file to `path` (to the file it links to, if it is a
/// link: [`creation_target`]): over it only if it is (still) an
/// unfinished creation, else only if nothing has that name.
fn publish(temp: &Path, path: &Path, found: Found) -> Result<()> {
    let target = creation_target(path);
    let io = |e| {
        Error::io(
            format!("cannot rename {} to {}", temp.display(), target.display()),
            e,
        )
    };
    if found == Found::Unfinished {
        if inspect(path)? == Found::Present {
            return Err(Error::Corrupt(format!(
                "{} changed while it was being replaced; nothing was done",
                path.display()
            )));
        }
        return std::fs::rename(temp, &target).map_err(io);
    }
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, temp, CWD, &target, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Err(Error::Corrupt(format!(
            "{} was created by another program while kvr created it; nothing was done",
            path.display()
        ))),
        // A file system without RENAME_NOREPLACE: we hold the creation
        // lock, so only a program that is not kvr could race us here.
        Err(_) if !path.exists() => std::fs::rename(temp, path).map_err(io),
        Err(e) => Err(io(e.into())),
    }
}

/// The temporary file as a redb backend, without redb's locks: the
/// creation lock on `DB.creating` is ours, and redb's would release it when
/// the database closes.
#[derive(Debug, Clone)]
struct PlainFile(Arc<File>);

impl StorageBackend for PlainFile {
    fn len(&self) -> std::result::Result<u64, std::io::Error> {
        Ok(self.0.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::result::Result<(), std::io::Error> {
        self.0.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> std::result::Result<(), std::io::Error> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> std::result::Result<(), std::io::Error> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::result::Result<(), std::io::Error> {
        self.0.write_all_at(data, offset)
    }

    fn try_lock_range(
        &self,
        _: std::ops::Bound<u64>,
        _: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        Ok(true)
    }

    fn try_lock_shared_range(
        &self,
        _: std::ops::Bound<u64>,
        _: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        Ok(true)
    }

    fn lock_range(
        &self,
        _: std::ops::Bound<u64>,
        _: std::ops::Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        Ok(())
    }

    fn lock_shared_range(
        &self,
        _: std::ops::Bound<u64>,
        _: std::ops::Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        Ok(())
    }

    fn unlock_range(
        &self,
        _: std::ops::Bound<u64>,
        _: std::ops::Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        Ok(())
    }

    fn query_lock_range(
        &self,
        _: std::ops::Bound<u64>,
        _: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        Ok(false)
    }
}
