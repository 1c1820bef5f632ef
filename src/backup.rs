//! Backups: the stream `GET /v1/backup` sends, and the new database file
//! `kvr backup DEST` writes from it (or from a local snapshot).
//!
//! **Stream format** (`Content-Type: application/x-kvr-backup`), all
//! integers little-endian:
//!
//! ```text
//! header   8 bytes  magic "KVRBAK\0" then format version 1
//!          8        revision of the snapshot (also in X-Kvr-Revision)
//! entry    1        b'E'
//!          4        key length k (1 to 4096)
//!          4        value length v
//!          8        the key's revision
//!          k + v    key bytes, value bytes
//! entry    1        b'X': an entry of a key with an expiry, as b'E' with
//!          8        its expires_at_ms (Unix ms) after the revision
//! end      1        b'Z'
//!          8        number of entries sent
//! ```
//!
//! Entries come in key order, every key of one snapshot exactly once. The
//! end frame makes a complete stream recognisable: a stream that stops
//! before it (a server that failed midway aborts the response) is an error,
//! never a short backup. Binary rather than JSON lines: values are sent as
//! they are (no base64), and nothing needs escaping or parsing.
//!
//! **The file** ([`Dest`], [`Copier`]): a new kvr database in a private
//! temporary directory in DEST's directory, filled in key order in bounded
//! non-durable chunks with the given revisions, then one durable commit that
//! sets the database revision, then compaction, checked to have closed the
//! file cleanly ([`Dest::compact`]); only then moved to DEST and the
//! directory synced. DEST is never half a backup; a killed backup leaves a temporary
//! directory (`.NAME.*.kvr-backup`, NAME cut to 100 bytes) and no DEST.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::limits::MAX_KEY_BYTES;
use crate::store::{Commit, OpenMode, Store, StoreOptions};
use crate::types::Item;

/// The stream's first 8 bytes: magic and format version.
pub const MAGIC: &[u8; 8] = b"KVRBAK\0\x01";
/// The stream's media type.
pub const CONTENT_TYPE: &str = "application/x-kvr-backup";

/// How much of DEST's name its private directory's name holds
/// (`.NAME.XXXXXX.kvr-backup`), well within the usual 255 bytes.
const MAX_NAME_IN_WORK_DIR: usize = 100;
const ENTRY: u8 = b'E';
const ENTRY_EXPIRING: u8 = b'X';
const END: u8 = b'Z';
/// Largest value length a stream may announce: far above any server's
/// `--max-value-bytes`, but a damaged length cannot make us allocate 4 GiB.
const MAX_STREAM_VALUE_BYTES: usize = 1 << 30;
/// Bytes of keys and values per non-durable commit of the copy: bounds the
/// memory the copy holds (this buffer and redb's dirty pages) whatever the
/// database size.
pub const CHUNK_BYTES: usize = 32 << 20;

/// Receives backup entries: key, and value with revision and expiry.
pub type Visit<'a> = dyn FnMut(&[u8], Item<'_>) -> Result<()> + 'a;

/// Appends the stream header.
pub fn encode_header(buf: &mut Vec<u8>, revision: u64) {
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&revision.to_le_bytes());
}

/// Appends one entry.
pub fn encode_entry(buf: &mut Vec<u8>, key: &[u8], item: Item<'_>) {
    buf.push(match item.expires_at_ms {
        None => ENTRY,
        Some(_) => ENTRY_EXPIRING,
    });
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(item.value.len() as u32).to_le_bytes());
    buf.extend_from_slice(&item.revision.to_le_bytes());
    if let Some(at) = item.expires_at_ms {
        buf.extend_from_slice(&at.to_le_bytes());
    }
    buf.extend_from_slice(key);
    buf.extend_from_slice(item.value);
}

/// Appends the end frame.
pub fn encode_end(buf: &mut Vec<u8>, entries: u64) {
    buf.push(END);
    buf.extend_from_slice(&entries.to_le_bytes());
}

/// Reads a backup stream: checks the header, visits each entry, checks the
/// end frame. Returns the stream's revision and entry count. `broke` turns
/// a read error (or an early end) into the caller's error.
pub fn decode(
    mut input: impl Read,
    broke: impl Fn(std::io::Error) -> Error,
    mut visit: impl FnMut(&[u8], Item<'_>) -> Result<()>,
) -> Result<(u64, u64)> {
    let bad = |what: &str| Error::Remote(format!("bad backup stream: {what}"));
    let mut head = [0u8; 16];
    input.read_exact(&mut head).map_err(&broke)?;
    if &head[..8] != MAGIC {
        return Err(bad("it does not start with the kvr backup header"));
    }
    let revision = le64(&head[8..]);
    let (mut entries, mut key, mut value) = (0u64, Vec::new(), Vec::new());
    let mut last: Option<Vec<u8>> = None;
    loop {
        let mut tag = [0u8; 1];
        input.read_exact(&mut tag).map_err(&broke)?;
        match tag[0] {
            ENTRY | ENTRY_EXPIRING => {
                let mut h = [0u8; 16];
                input.read_exact(&mut h).map_err(&broke)?;
                let expires_at_ms = if tag[0] == ENTRY_EXPIRING {
                    let mut at = [0u8; 8];
                    input.read_exact(&mut at).map_err(&broke)?;
                    Some(le64(&at))
                } else {
                    None
                };
                let (klen, vlen) = (le32(&h[..4]), le32(&h[4..8]));
                if klen == 0 || klen > MAX_KEY_BYTES || vlen > MAX_STREAM_VALUE_BYTES {
                    return Err(bad("an entry has an impossible length"));
                }
                key.resize(klen, 0);
                value.resize(vlen, 0);
                input.read_exact(&mut key).map_err(&broke)?;
                input.read_exact(&mut value).map_err(&broke)?;
                if last.as_deref().is_some_and(|l| l >= key.as_slice()) {
                    return Err(bad("entries are not in key order"));
                }
                let item = Item {
                    value: &value,
                    revision: le64(&h[8..]),
                    expires_at_ms,
                };
                visit(&key, item)?;
                last = Some(key.clone());
                entries += 1;
            }
            END => {
                let mut n = [0u8; 8];
                input.read_exact(&mut n).map_err(&broke)?;
                if le64(&n) != entries {
                    return Err(bad("the end frame counts a different number of entries"));
                }
                return Ok((revision, entries));
            }
            _ => return Err(bad("unknown frame")),
        }
    }
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le32(b: &[u8]) -> usize {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a) as usize
}

/// The destination of a backup: a file in a private directory beside
/// DEST (same file system, mode 0700) until [`Dest::finish`] moves it to
/// DEST. Dropped unfinished, the directory is removed with what it holds.
pub struct Dest {
    path: PathBuf,
    dir: PathBuf,
    work: tempfile::TempDir,
    force: bool,
}

impl Dest {
    /// Refuses an existing DEST unless `force`, then makes the private
    /// directory. The database itself is created by [`Dest::open`] (a file
    /// made here would be an empty one, which kvr takes for an
    /// interrupted creation).
    pub fn create(path: &Path, force: bool) -> Result<Dest> {
        // Only a file is replaced: a device or a pipe (`--force
        // /dev/null`) would be destroyed for a typo, and opening a pipe to
        // lock it waits for a writer for ever; a directory would be found
        // only by the rename, after the whole copy. Said first: --force
        // would not help.
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
        {
            let what = if meta.is_dir() {
                "is a directory; DEST is the file to write the backup to"
            } else {
                "is not a regular file (a device, pipe or socket); a backup replaces only \
                 a file"
            };
            return Err(Error::invalid(format!(
                "DEST {} {what}: name a file",
                path.display()
            )));
        }
        // `newdir/`: a directory's name, which the rename would take for
        // one at the very end.
        if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            return Err(Error::invalid(format!(
                "DEST {} ends in '/' as a directory does: name the file to write the backup \
                 to (e.g. {}backup.redb)",
                path.display(),
                path.display()
            )));
        }
        match path.symlink_metadata() {
            Ok(_) if !force => {
                return Err(Error::invalid(format!(
                    "{} exists; give --force to replace it",
                    path.display()
                )));
            }
            // A path through a file (`afile/x.redb`) says so, as `put`
            // does, not that the directory is missing.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("cannot create {}", path.display()), e));
            }
            _ => {}
        }
        // Refused now rather than after the copy; checked again, under the
        // lock, when the copy replaces it.
        drop(hold_replaceable(path)?);
        let name = path
            .file_name()
            .ok_or_else(|| Error::invalid(format!("{} is not a file name", path.display())))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::DirectoryMissing {
                path: path.to_path_buf(),
                dir,
            });
        }
        // Owner only: the copy in it holds all the data (the umask would
        // leave it readable to all until DEST gets its 0600).
        // The name only tells a person whose directory it is: cut, so that
        // a DEST whose name is near the file system's bound still has one.
        let name = name.to_string_lossy();
        let mut cut = name.len().min(MAX_NAME_IN_WORK_DIR);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let work = tempfile::Builder::new()
            .prefix(&format!(".{}.", &name[..cut]))
            .suffix(".kvr-backup")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(&dir)
            .map_err(|e| {
                Error::io(
                    format!("cannot create a temporary directory in {}", dir.display()),
                    e,
                )
            })?;
        Ok(Dest {
            path: path.to_path_buf(),
            dir,
            work,
            force,
        })
    }

    /// The file the backup is built in, until [`Dest::finish`].
    pub fn path_in_progress(&self) -> PathBuf {
        self.work.path().join("backup.redb")
    }

    /// Creates the new, empty kvr database the backup is written into.
    pub fn open(&self, opts: &StoreOptions) -> Result<Store> {
        Store::open(&self.path_in_progress(), OpenMode::Create, opts)
    }

    /// Throws away a copy that will not be finished (its store closed),
    /// so that [`Dest::open`] starts a new one: everything in the private
    /// directory goes.
    pub fn discard(&self) -> Result<()> {
        let dir = self.work.path();
        let cannot = |e| Error::io(format!("cannot clear {}", dir.display()), e);
        for entry in std::fs::read_dir(dir).map_err(cannot)? {
            let path = entry.map_err(cannot)?.path();
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        }
        Ok(())
    }

    /// Compacts and closes the copy in `store` (its chunk commits leave
    /// free pages behind), then checks, as `kvr compact` does, that it was
    /// closed cleanly: redb does not report a failure to close (a write as
    /// it closes, such as on a full disk), and such a file must not become
    /// DEST, which a read-only open would refuse.
    pub fn compact(&self, store: Store) -> Result<()> {
        let path = self.path_in_progress();
        crate::store::compact_database(store.into_database()?, &path)?;
        if crate::store::left_unclean(&path) {
            return Err(Error::Storage(
                "closing the backup after compacting it failed (a write as it closed; the file \
                 was left not closed cleanly)"
                    .to_string(),
            ));
        }
        Ok(())
    }

    /// Moves the finished file to DEST, mode 0600 (it holds all the data;
    /// refusing an existing DEST that appeared meanwhile unless `force`)
    /// and syncs the directory. The store must be closed (dropped) first.
    /// Returns DEST's size.
    pub fn finish(self) -> Result<u64> {
        use std::os::unix::fs::PermissionsExt;
        let (from, to) = (self.path_in_progress(), &self.path);
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("cannot set the mode of {}", from.display()), e))?;
        let moved = if self.force {
            // Held until the rename: no kvr opens DEST in between.
            let _held = hold_replaceable(to)?;
            std::fs::rename(&from, to)
        } else {
            // A link fails on an existing name, where a rename would replace it.
            std::fs::hard_link(&from, to)
        };
        moved.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::invalid(format!(
                    "{} exists; give --force to replace it",
                    to.display()
                ))
            } else {
                Error::io(format!("cannot rename the backup to {}", to.display()), e)
            }
        })?;
        // The work directory goes before the sync, so that its removal is
        // durable with DEST: a power cut after a backup that succeeded left
        // it, with a second copy of the data in it, on a file system that
        // keeps a directory's changes only once it is synced (an audit).
        let work = self.work.path().to_path_buf();
        self.work
            .close()
            .map_err(|e| Error::io(format!("cannot remove {}", work.display()), e))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("cannot sync directory {}", self.dir.display()), e))?;
        std::fs::metadata(to)
            .map(|m| m.len())
            .map_err(|e| Error::io(format!("cannot read {}", to.display()), e))
    }
}

/// Locks an existing DEST as kvr locks a database it opens, so that a
/// backup never replaces a file a server (or any kvr) holds: that process
/// would go on writing to the replaced file, and every write it
/// acknowledged after the backup would be gone once it stops. A DEST with
/// a write-ahead log (`DEST.wal`) left by a server that did not stop
/// cleanly is refused too: its writes are not in DEST yet, and the log
/// would later be replayed onto the backup. `None` when DEST does not
/// exist.
fn hold_replaceable(path: &Path) -> Result<Option<std::fs::File>> {
    // Only a regular file can be a database, and opening anything else
    // (a pipe) may wait: it is replaced as before (or refused by the
    // rename).
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("cannot open {}", path.display()), e)),
    };
    // Swapped for something else since it was looked at.
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = crate::store::holder_of(path).unwrap_or_else(|| "another process".into());
            return Err(Error::DestInUse(format!(
                "DEST {} is a database in use by {holder}; a backup does not replace it \
                 (what that process writes would be lost): stop it first, or name another file",
                path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::io(format!("cannot lock {}", path.display()), e));
        }
    }
    let log = crate::wal::dir_of(path);
    if log.exists() {
        return Err(Error::DestInUse(format!(
            "DEST {} has a write-ahead log {} left by a server that did not stop cleanly; \
             its writes are not in the file yet: open it once with kvr (which replays the log) \
             and run the backup again, or name another file",
            path.display(),
            log.display()
        )));
    }
    Ok(Some(file))
}

/// Writes entries, in key order, into a new database (see the module
/// header): a chunk of at most [`CHUNK_BYTES`] per non-durable commit.
pub struct Copier<'a> {
    store: &'a Store,
    revision: u64,
    chunk: Vec<crate::store::TableItem>,
    chunk_bytes: usize,
    /// Entries and key + value bytes copied so far.
    pub keys: u64,
    pub bytes: u64,
}

impl<'a> Copier<'a> {
    /// A copy at database revision `revision` into the empty `store`.
    pub fn new(store: &'a Store, revision: u64) -> Copier<'a> {
        Copier {
            store,
            revision,
            chunk: Vec::new(),
            chunk_bytes: 0,
            keys: 0,
            bytes: 0,
        }
    }

    /// Adds one entry; keys must come in increasing order.
    pub fn push(&mut self, key: &[u8], item: Item<'_>) -> Result<()> {
        let (value, revision) = (item.value, item.revision);
        if revision > self.revision {
            return Err(Error::Storage(format!(
                "key {} has revision {revision}, after the backup's revision {}",
                crate::jsonl::show_key(key),
                self.revision
            )));
        }
        self.chunk
            .push((key.to_vec(), value.to_vec(), revision, item.expires_at_ms));
        self.chunk_bytes += key.len() + value.len();
        self.keys += 1;
        self.bytes += (key.len() + value.len()) as u64;
        if self.chunk_bytes >= CHUNK_BYTES {
            self.write(Commit::Buffered)?;
        }
        Ok(())
    }

    /// Writes what is left and commits durably, with the database revision.
    pub fn finish(mut self) -> Result<()> {
        let keys = self.write(Commit::Durable)?;
        if keys != self.keys {
            return Err(Error::Storage(format!(
                "the backup holds {keys} keys, {} were copied",
                self.keys
            )));
        }
        Ok(())
    }

    fn write(&mut self, commit: Commit) -> Result<u64> {
        let items = self
            .chunk
            .iter()
            .map(|(k, v, r, at)| (k.as_slice(), Some((v.as_slice(), *r, *at))));
        let keys = self.store.write_sorted(items, self.revision, commit)?;
        self.chunk.clear();
        self.chunk_bytes = 0;
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_directory_is_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dest = Dest::create(&tmp.path().join("b.redb"), false).unwrap();
        let mode = dest.work.path().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    fn stream(entries: &[(&[u8], &[u8], u64)]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_header(&mut buf, 9);
        for (k, v, r) in entries {
            // Odd revisions carry an expiry.
            let expires_at_ms = (r % 2 == 1).then_some(1000 + r);
            let item = Item {
                value: v,
                revision: *r,
                expires_at_ms,
            };
            encode_entry(&mut buf, k, item);
        }
        encode_end(&mut buf, entries.len() as u64);
        buf
    }

    type Entries = Vec<(Vec<u8>, Vec<u8>, u64)>;

    fn read(bytes: &[u8]) -> Result<(u64, Entries)> {
        let mut out = Vec::new();
        let (rev, n) = decode(
            bytes,
            |e| Error::io("broke", e),
            |k, item| {
                let want = (item.revision % 2 == 1).then_some(1000 + item.revision);
                assert_eq!(item.expires_at_ms, want);
                out.push((k.to_vec(), item.value.to_vec(), item.revision));
                Ok(())
            },
        )?;
        assert_eq!(n as usize, out.len());
        Ok((rev, out))
    }

    #[test]
    fn round_trip() {
        let bytes = stream(&[(b"a", b"", 3), (b"b\xff", b"\x00v", 8)]);
        let (rev, out) = read(&bytes).unwrap();
        assert_eq!(rev, 9);
        assert_eq!(out[1], (b"b\xff".to_vec(), b"\x00v".to_vec(), 8));
    }

    /// Every proper prefix of a stream is an error, never a shorter backup.
    #[test]
    fn truncated_streams_are_errors() {
        let bytes = stream(&[(b"a", b"x", 1), (b"b", b"y", 2)]);
        for n in 0..bytes.len() {
            assert!(read(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut wrong_count = stream(&[(b"a", b"x", 1)]);
        let len = wrong_count.len();
        wrong_count[len - 8] = 5;
        assert!(read(&wrong_count).is_err());
        let unordered = stream(&[(b"b", b"x", 1), (b"a", b"y", 2)]);
        assert!(read(&unordered).is_err());
    }

    proptest::proptest! {
        /// Any bytes: entries or an error, never a panic or a huge allocation.
        #[test]
        fn arbitrary_streams_never_panic(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut bytes = Vec::new();
            encode_header(&mut bytes, 1);
            bytes.extend_from_slice(&tail);
            let _ = read(&bytes);
        }
    }
}
