//! The write-ahead log of `kvr serve`: what makes an acknowledged write
//! durable without a durable redb commit per request.
//!
//! **Invariant.** A write is acknowledged only after the record of its
//! request is in the log and the log is synced (`RWF_DSYNC`). The engine
//! (`crate::engine`) then holds it in a memory table until a flush makes it
//! durable in redb; after a crash redb is at its last durable commit and
//! the log holds everything acknowledged since.
//!
//! **Files.** Segments live in `DB.wal/` beside the database, named by a
//! hex sequence number (`0000000000000001.log`). A segment starts with the
//! 16-byte header `KVRWAL01` + the database's id (a random `u64` the file
//! got when it was made, see `Store::database_id`; zero in a log an older
//! kvr wrote), and is preallocated (written
//! with zeros once) so a sync writes data blocks only, not file metadata.
//! Records (layout in `record.rs`) follow back to back; a zero length or a
//! failed checksum ends the segment. The checksum covers the segment's
//! sequence number, so stale records in a recycled segment read as its end.
//!
//! **Group commit.** [`Wal::append`] writes every record of a group with
//! one write and one sync. A group never spans segments: when it does not
//! fit, a new segment (at least large enough for it) is started first.
//!
//! **Seal and release.** When the engine freezes a memory table it seals
//! the log ([`Wal::seal`]): later groups go to a new segment. Whenever the
//! log starts a segment (at a seal, or when a group does not fit) it takes
//! the spare, zero-filled beforehand by a helper thread or recycled from
//! an earlier release (`spare.rs`), so the writer never waits for a
//! zero-fill. Once the flush of that table is durable, the returned
//! [`Sealed`] deletes the segments it covered, recycling one as the spare.
//! ([`Wal::checkpointed`] does the same for a caller that made everything
//! durable at once.)
//!
//! **Recovery** ([`recover`], run by `engine::open_store` for every command):
//! read the segments in sequence order; skip records whose first revision is
//! at or below the database's (covered by a checkpoint); replay the others,
//! which must continue the revisions without a gap, through the store's one
//! write path (many records per transaction, sorted into runs), after
//! checking that each segment is the database's own (a log whose header
//! names another id was left by another file: `cp other.redb DB` over a
//! crashed server's file; it is refused, and nothing is applied); stop a
//! segment at its first invalid record (a torn tail, never acknowledged),
//! unless an intact group follows it: that is damage, and the log is
//! refused before anything is applied (`recover.rs`). Then make the store
//! durable and delete the log. A clean shutdown
//! checkpoints and deletes the log too, so the `.redb` file alone is the
//! whole database.

mod identity;
mod perms;
mod record;
mod recover;
mod spare;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use record::LogRecord;
pub use recover::{
    Pending, Recovered, check_owner, pending, recover, recover_dir, refuse_another_database,
    refuse_without_database, replay, replay_with,
};

use crate::error::{Error, Result};
use crate::types::{Applied, Op};
pub use identity::CHECK_EVERY;
use identity::Identity;
use spare::{SPARE, Spare};

/// Size of a preallocated segment. A seal starts a new one (the recycled
/// spare) at each flush, so a few segments hold the whole log; 16 MiB
/// is zero-filled in tens of milliseconds once per server start.
pub const SEGMENT_BYTES: u64 = 16 << 20;

/// The segment header: a magic with the format version, and the id of the
/// database the log belongs to (little-endian; 0 from an older kvr).
const SEGMENT_MAGIC: &[u8; 8] = b"KVRWAL01";
const SEGMENT_HEADER: u64 = 16;
/// Zero-fill chunk when preallocating.
const FILL_CHUNK: usize = 1 << 20;

/// The log directory of a database: `DB.wal` beside it. Beside the file
/// itself when `db` is a symbolic link (as `sqlite3` names its `-wal`):
/// a server started through a link and a command through the file's own
/// name must find the same log, or the command would miss a crashed
/// server's acknowledged writes and give their revisions out again.
pub fn dir_of(db: &Path) -> PathBuf {
    let mut name = crate::store::creation_target(db).into_os_string();
    name.push(".wal");
    PathBuf::from(name)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.log"))
}

/// The log, open for appending by the one writer thread.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    seq: u64,
    size: u64,
    /// Where the next group is written.
    pos: u64,
    /// Where the last group started, for [`Wal::discard_last`].
    last_start: u64,
    /// Segments before the current one, not yet covered by a checkpoint.
    older: Vec<u64>,
    /// Bytes appended since the last checkpoint.
    pending: u64,
    /// Size of a regular segment: [`SEGMENT_BYTES`] but in tests.
    segment_bytes: u64,
    buf: Vec<u8>,
    /// A failed write that could not be voided: appending after it could
    /// make the log disagree with the database (its records would replay),
    /// so each append first voids it again, and fails while it cannot.
    unvoided: Option<Unvoided>,
    /// The first segment not yet handed out by [`Wal::seal`].
    unsealed_from: u64,
    /// The database's id, in every segment's header.
    owner: u64,
    /// Whether `spare.seg` (the next segment, zero-filled) exists.
    spare: Arc<Spare>,
    /// Makes a new spare whenever the writer takes it; stopped on drop.
    helper: spare::Helper,
    /// The database file and this log as they were found at the start.
    identity: Arc<Identity>,
    /// Why the last append was refused: the file or the log lost its name
    /// ([`Identity::changed`]), or no new segment could be started
    /// ([`Wal::cannot_rotate`]); checked again at each append while so.
    lost: Option<String>,
    /// When the file and the log were last looked at ([`CHECK_EVERY`]).
    checked: std::time::Instant,
    /// The length of the group no new segment could be started for
    /// ([`Wal::cannot_rotate`]): [`Wal::check`] tries again.
    unrotated: Option<u64>,
}

/// A stretch of segments [`Wal::seal`] closed: released once flushed.
#[derive(Debug, Clone)]
pub struct Sealed {
    dir: PathBuf,
    from: u64,
    through: u64,
    segment_bytes: u64,
    owner: u64,
    spare: Arc<Spare>,
    identity: Arc<Identity>,
}

/// The bytes of a failed group that could not be zeroed yet.
#[derive(Debug, Clone, Copy)]
struct Unvoided {
    pos: u64,
    len: u64,
    /// The group had been appended ([`Wal::discard_last`]): once voided,
    /// the log's end moves back to where it started.
    discarded: bool,
}

impl Wal {
    /// Starts an empty log beside the database `store` (giving the file an
    /// id first if it has none). [`recover`] must have run (it does in
    /// `engine::open_store`), so no segment exists.
    pub fn create(store: &crate::store::Store) -> Result<Wal> {
        let owner = store.assign_database_id()?;
        Self::create_in(&dir_of(store.path()), SEGMENT_BYTES, owner)
    }

    /// [`Wal::create`] in the log directory `dir`, with segments of
    /// `segment_bytes` (tests make them small to rotate often), for the
    /// database whose id is `owner`.
    pub fn create_in(dir: &Path, segment_bytes: u64, owner: u64) -> Result<Wal> {
        let dir = dir.to_path_buf();
        perms::create_dir(&dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
        let (file, size) = new_segment(&dir, 1, segment_bytes, owner)?;
        // A spare for the first seal, so it does not zero-fill on the
        // writer's path (seq 0 is never used otherwise).
        new_segment(&dir, 0, segment_bytes, owner)?;
        let (zero, spare) = (segment_path(&dir, 0), dir.join(SPARE));
        std::fs::rename(&zero, &spare)
            .map_err(|e| Error::io(format!("cannot rename {}", zero.display()), e))?;
        sync_dir(&dir)?;
        let spare = Spare::new(true);
        let helper = spare::Helper::start(&dir, segment_bytes, owner, spare.clone())?;
        Ok(Wal::starting(
            dir,
            (file, size),
            1,
            (segment_bytes, owner),
            spare,
            helper,
        ))
    }

    /// A log whose next group goes first into the fresh segment `seq`.
    fn starting(
        dir: PathBuf,
        (file, size): (File, u64),
        seq: u64,
        (segment_bytes, owner): (u64, u64),
        spare: Arc<Spare>,
        helper: spare::Helper,
    ) -> Wal {
        let identity = Arc::new(Identity::of(&dir));
        Wal {
            dir,
            file,
            seq,
            size,
            pos: SEGMENT_HEADER,
            last_start: SEGMENT_HEADER,
            older: Vec::new(),
            pending: 0,
            segment_bytes,
            buf: Vec::new(),
            unvoided: None,
            unsealed_from: seq,
            owner,
            spare,
            helper,
            identity,
            lost: None,
            checked: std::time::Instant::now(),
            unrotated: None,
        }
    }

    /// Opens the log in `dir` to go on after a crash: the segments there
    /// stay (a server replays them into memory, not into the store) and new
    /// groups go to a new segment after them. Returns the log, and the old
    /// segments as a sealed stretch to release once what they hold is
    /// flushed (`None` when there were none: a new log). The old segments
    /// must be the database `owner`'s (or an older kvr's, with no id):
    /// a log of another file is refused before anything is written.
    pub fn resume_in(dir: &Path, segment_bytes: u64, owner: u64) -> Result<(Wal, Option<Sealed>)> {
        let old = if dir.is_dir() {
            recover::segment_range(dir)?
        } else {
            None
        };
        let Some((first, last)) = old else {
            if dir.is_dir() {
                remove_dir(dir)?;
            }
            return Ok((Self::create_in(dir, segment_bytes, owner)?, None));
        };
        recover::check_owner(dir, Some(owner))?;
        let next = last + 1;
        let segment = new_segment(dir, next, segment_bytes, owner)?;
        let spare_path = dir.join(SPARE);
        let ready = spare_path.is_file() && has_header(&spare_path, owner);
        if !ready {
            // None, or an older kvr's (no id): the helper makes one.
            remove_file(&spare_path)?;
        }
        let spare = Spare::new(ready);
        let helper = spare::Helper::start(dir, segment_bytes, owner, spare.clone())?;
        let wal = Wal::starting(
            dir.to_path_buf(),
            segment,
            next,
            (segment_bytes, owner),
            spare.clone(),
            helper,
        );
        let sealed = Sealed {
            dir: dir.to_path_buf(),
            from: first,
            through: last,
            segment_bytes,
            owner,
            spare,
            identity: wal.identity.clone(),
        };
        Ok((wal, Some(sealed)))
    }

    /// Ends the current stretch of the log: later groups go to a new
    /// segment (a recycled one when a released segment is spare, so no
    /// zero-fill on the writer's path). The returned [`Sealed`] deletes or
    /// recycles the stretch once the store holds everything in it.
    pub fn seal(&mut self) -> Result<Sealed> {
        let sealed = Sealed {
            dir: self.dir.clone(),
            from: self.unsealed_from,
            through: self.seq,
            segment_bytes: self.segment_bytes,
            owner: self.owner,
            spare: self.spare.clone(),
            identity: self.identity.clone(),
        };
        self.next_segment(self.segment_bytes)?;
        self.unsealed_from = self.seq;
        self.pending = 0;
        Ok(sealed)
    }

    /// Moves to segment `seq + 1`, reusing the spare when it is large enough.
    fn next_segment(&mut self, needed: u64) -> Result<()> {
        let next = self.seq + 1;
        let to = segment_path(&self.dir, next);
        let spare = self.spare.lock();
        let (file, size) = if spare.ready && needed <= self.segment_bytes {
            let from = self.dir.join(SPARE);
            std::fs::rename(&from, &to)
                .map_err(|e| Error::io(format!("cannot rename {}", from.display()), e))?;
            // The new name must be durable before records bound to it are
            // written. If it cannot be, the spare is put back for the next
            // try: left under the new name, every later try to start that
            // segment failed (`File exists`; found by an audit).
            if let Err(e) = sync_dir(&self.dir) {
                if std::fs::rename(&to, &from).is_err() {
                    let _ = std::fs::remove_file(&to);
                    self.spare.taken(spare);
                }
                return Err(e);
            }
            self.spare.taken(spare);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&to)
                .map_err(|e| Error::io(format!("cannot open {}", to.display()), e))?;
            let size = file
                .metadata()
                .map_err(|e| Error::io(format!("cannot read {}", to.display()), e))?
                .len();
            (file, size)
        } else {
            drop(spare);
            new_segment(&self.dir, next, needed, self.owner)?
        };
        self.older.push(self.seq);
        self.seq = next;
        self.file = file;
        self.size = size;
        self.pos = SEGMENT_HEADER;
        self.last_start = SEGMENT_HEADER;
        Ok(())
    }

    /// Whether a failed write could not be voided: appends fail until it
    /// can be (voided again at each append), or until a restart.
    pub fn is_broken(&self) -> bool {
        self.unvoided.is_some()
    }

    /// Looks at the log, before each group and while none comes (at most
    /// every [`CHECK_EVERY`], or each time while appends are refused): a
    /// log or file that lost its name since the last group refuses appends
    /// from now on ([`Wal::lost`]), so the writer flushes what the log held
    /// at once, not at the next write, which may never come (found by a
    /// review); and one that is back, or a segment that can be started
    /// again, takes appends again, so the server is ready again without a
    /// write.
    pub fn check(&mut self) {
        if self.lost.is_none() && self.checked.elapsed() < CHECK_EVERY {
            return;
        }
        self.checked = std::time::Instant::now();
        if let Some(change) = self.identity.changed(Some(&self.file)) {
            self.lost = Some(self.identity.refusal(&change).to_string());
            return;
        }
        if let Some(len) = self.unrotated {
            if let Err(e) = self.rotate(len) {
                let refused = self.cannot_rotate(e, len);
                self.lost = Some(refused.to_string());
                return;
            }
            self.unrotated = None;
        }
        self.lost = None;
    }

    /// Why the last append was refused, when the database file or the log
    /// was moved, deleted or replaced while it ran (see `identity.rs`), or
    /// no new segment could be started: appends are refused until then.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Voids again the failed write that could not be voided, as the disk
    /// may work again (a path that failed for a while, space freed): then
    /// appends go on where that write started, as after a void that worked.
    fn repair(&mut self) -> Result<()> {
        let Some(u) = self.unvoided else {
            return Ok(());
        };
        if let Err(e) = self.void(u.pos, u.len) {
            return Err(Error::Unavailable {
                message: format!(
                    "the server cannot write its write-ahead log: a write failed and what it \
                     wrote cannot be voided ({e}); no write is taken until it can (tried again \
                     at each write), reads go on; see the server's log"
                ),
                overloaded: false,
            });
        }
        if u.discarded {
            self.pending -= u.len;
            self.pos = self.last_start;
        }
        self.unvoided = None;
        Ok(())
    }

    /// Appends one record per request (its first revision and operations)
    /// with a single write and a single sync. On error nothing is appended.
    pub fn append(&mut self, requests: &[(u64, &[Op])]) -> Result<()> {
        let records: Vec<LogRecord<'_>> = requests
            .iter()
            .map(|(first_revision, ops)| LogRecord {
                first_revision: *first_revision,
                ops,
                revisions: None,
                idempotency: None,
            })
            .collect();
        self.append_records(&records)
    }

    /// [`Wal::append`] of records that may carry idempotency records.
    pub fn append_records(&mut self, requests: &[LogRecord<'_>]) -> Result<()> {
        if requests.is_empty() {
            return Ok(());
        }
        self.check();
        if let Some(why) = &self.lost {
            return Err(Error::Unavailable {
                message: why.clone(),
                overloaded: false,
            });
        }
        self.repair()?;
        self.encode(requests)?;
        let len = self.buf.len() as u64;
        if self.pos + len > self.size {
            if let Err(e) = self.rotate(len) {
                return Err(self.cannot_rotate(e, len));
            }
            self.unrotated = None;
            self.encode(requests)?;
        }
        let written = write_synced(&self.file, &self.buf, self.pos);
        if let Err(e) = written {
            // Records that reached the disk but were not acknowledged are
            // harmless only if they are never replayed: void them all.
            let failed = Error::io("cannot write the write-ahead log", e);
            if self.void(self.pos, len).is_err() {
                self.unvoided = Some(Unvoided {
                    pos: self.pos,
                    len,
                    discarded: false,
                });
                // Its records may be on the disk, and a restart before
                // they are zeroed would replay them.
                return Err(Error::OutcomeUnknown {
                    message: format!(
                        "{failed}, and what it wrote could not be zeroed: the write may or may \
                         not be applied after a restart; read the key to learn which"
                    ),
                });
            }
            // Zeroed: nothing of the group was applied, nor ever will be.
            // A full disk stays 507; another failure is the server's for
            // now (503, retry), not a 500 the client cannot act on.
            return Err(match failed {
                Error::Io { context, source } => Error::Unavailable {
                    message: format!(
                        "{context}: {source}; the write was not applied; retry (the server's \
                         log has the details)"
                    ),
                    overloaded: false,
                },
                other => other,
            });
        }
        self.last_start = self.pos;
        self.pos += len;
        self.pending += len;
        Ok(())
    }

    /// The error of a group refused because no new segment could be
    /// started for it (a log directory made read-only or immutable, a
    /// failing disk): nothing of it was written. Until one can be, appends
    /// are refused as when the log lost its name ([`Wal::lost`]), so the
    /// server is not ready; a full disk stays itself (507). It was a 500
    /// `internal`, with the server ready (found by an audit).
    fn cannot_rotate(&mut self, e: Error, len: u64) -> Error {
        if matches!(e, Error::DiskFull { .. }) {
            return e;
        }
        self.unrotated = Some(len);
        let refused = Error::Unavailable {
            message: format!(
                "cannot start a new segment of the write-ahead log {}: {e}; the write was not \
                 applied; retry",
                self.dir.display()
            ),
            overloaded: false,
        };
        self.lost = Some(refused.to_string());
        refused
    }

    fn encode(&mut self, requests: &[LogRecord<'_>]) -> Result<()> {
        self.buf.clear();
        for (i, rec) in requests.iter().enumerate() {
            record::encode(&mut self.buf, self.seq, rec, i == 0)?;
        }
        Ok(())
    }

    /// Voids the last appended group, when the commit it was written for
    /// failed: those revisions will be taken again by the next group.
    pub fn discard_last(&mut self) -> Result<()> {
        let len = self.pos - self.last_start;
        if let Err(e) = self.void(self.last_start, len) {
            self.unvoided = Some(Unvoided {
                pos: self.last_start,
                len,
                discarded: true,
            });
            return Err(Error::io("cannot void a write-ahead log record", e));
        }
        self.pending -= len;
        self.pos = self.last_start;
        Ok(())
    }

    /// Zeroes `len` bytes at `pos` and syncs. Every byte, not just the first
    /// header: a shorter group written there later must not be followed by
    /// intact records of this one, which would replay.
    fn void(&self, pos: u64, len: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; FILL_CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(FILL_CHUNK as u64) as usize;
            self.file.write_all_at(&zeros[..n], pos + done)?;
            done += n as u64;
        }
        self.file.sync_data()
    }

    /// The current segment and the offset where the next group goes (tests
    /// simulate a torn tail there).
    pub fn end(&self) -> (PathBuf, u64) {
        (segment_path(&self.dir, self.seq), self.pos)
    }

    /// Starts a new segment with room for `needed` bytes of records.
    fn rotate(&mut self, needed: u64) -> Result<()> {
        let size = if needed + SEGMENT_HEADER <= self.segment_bytes {
            self.segment_bytes
        } else {
            (needed + SEGMENT_HEADER).next_multiple_of(1 << 20)
        };
        self.next_segment(size)
    }

    /// Called after a durable checkpoint that covers every record appended
    /// so far: deletes older segments and recycles the current one.
    pub fn checkpointed(&mut self) -> Result<()> {
        if self.pending == 0 && self.older.is_empty() {
            return Ok(());
        }
        for seq in self.older.drain(..) {
            remove_file(&segment_path(&self.dir, seq))?;
        }
        let next = self.seq + 1;
        let (from, to) = (
            segment_path(&self.dir, self.seq),
            segment_path(&self.dir, next),
        );
        if self.size == self.segment_bytes {
            std::fs::rename(&from, &to)
                .map_err(|e| Error::io(format!("cannot rename {}", from.display()), e))?;
        } else {
            // An oversized segment (one large batch) is not worth keeping.
            let (file, size) = new_segment(&self.dir, next, self.segment_bytes, self.owner)?;
            remove_file(&from)?;
            self.file = file;
            self.size = size;
        }
        // The new name must be durable before records bound to it are written.
        sync_dir(&self.dir)?;
        self.seq = next;
        self.pos = SEGMENT_HEADER;
        self.last_start = SEGMENT_HEADER;
        self.pending = 0;
        Ok(())
    }

    /// Deletes the log after a final checkpoint (clean shutdown). The
    /// segment is closed first: on FUSE or NFS a file still open when it is
    /// deleted stays behind as a hidden name, keeping the directory. A log
    /// that lost its name while the file kept its own (deleted, or moved
    /// elsewhere: the server said so when it found it) is left as it is:
    /// everything in it is in the file.
    pub fn remove(self) -> Result<()> {
        let Wal {
            dir,
            file,
            helper,
            identity,
            ..
        } = self;
        match identity.changed(Some(&file)) {
            None => {}
            // Everything is flushed into the file, which kept its name:
            // the log is not needed. A deleted one is gone already, and a
            // moved one is left where it was put.
            Some(identity::Change::Log(_)) if !identity.file_changed() => return Ok(()),
            Some(change) => {
                return Err(Error::Unavailable {
                    message: format!("{change}; its log {} is kept", dir.display()),
                    overloaded: false,
                });
            }
        }
        drop(helper);
        drop(file);
        remove_dir(&dir)
    }
}

impl Sealed {
    /// Deletes the sealed segments, keeping one regular-sized segment as the
    /// spare for the next [`Wal::seal`]. Only once the store holds every
    /// record in them durably.
    pub fn release(self) -> Result<()> {
        // Flushed into a file that lost its name: no restart finds those
        // writes but in the log.
        if let Some(what) = self.identity.changed(None) {
            return Err(Error::Unavailable {
                message: format!("{what}; the segments of the log it flushed are kept"),
                overloaded: false,
            });
        }
        let mut unneeded = Vec::new();
        {
            let mut spare = self.spare.lock();
            for seq in self.from..=self.through {
                let path = segment_path(&self.dir, seq);
                let regular = std::fs::metadata(&path).is_ok_and(|m| m.len() == self.segment_bytes);
                // A segment an older kvr wrote (no id in its header) is
                // not recycled: the spare must say whose log it is.
                if !spare.ready && regular && has_header(&path, self.owner) {
                    let to = self.dir.join(SPARE);
                    std::fs::rename(&path, &to)
                        .map_err(|e| Error::io(format!("cannot rename {}", path.display()), e))?;
                    spare.ready = true;
                } else {
                    unneeded.push(path);
                }
            }
        }
        // Not under the lock: the writer takes it to start its next
        // segment, and this runs on the flush thread, maybe at a low
        // priority (`KVR_FLUSH_NICE`; at nice 19, deleting and syncing
        // under it held PUTs up to 98 ms at p99.9).
        for path in unneeded {
            remove_file(&path)?;
        }
        sync_dir(&self.dir)
    }
}

/// The records to log for a group's outcomes: one per request that took a
/// revision, with the first revision it took. A failed request, or one that
/// changed nothing, is not logged.
pub fn records<'a>(requests: &'a [Vec<Op>], outcomes: &[Result<Applied>]) -> Vec<(u64, &'a [Op])> {
    requests
        .iter()
        .zip(outcomes)
        .filter_map(|(ops, outcome)| match outcome {
            Ok(a) if a.applied() > 0 => Some((a.revision + 1 - a.applied(), ops.as_slice())),
            _ => None,
        })
        .collect()
}

/// Whether the segment at `path` starts with the header of `owner`'s log.
fn has_header(path: &Path, owner: u64) -> bool {
    let mut header = [0u8; SEGMENT_HEADER as usize];
    File::open(path).is_ok_and(|f| f.read_exact_at(&mut header, 0).is_ok())
        && header == segment_header(owner)
}

/// The first bytes of each segment of `owner`'s log.
fn segment_header(owner: u64) -> [u8; SEGMENT_HEADER as usize] {
    let mut header = [0u8; SEGMENT_HEADER as usize];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..].copy_from_slice(&owner.to_le_bytes());
    header
}

/// Creates a zero-filled segment of `size` bytes with its header, synced.
fn new_segment(dir: &Path, seq: u64, size: u64, owner: u64) -> Result<(File, u64)> {
    let path = segment_path(dir, seq);
    // On a full disk, say how much room the log needs (a segment is made
    // whole at once): freeing less left the server refusing to start.
    let room = if size >= 1 << 20 {
        format!("{} MiB", size >> 20)
    } else {
        format!("{} KiB", size.div_ceil(1024))
    };
    let io = |e| {
        Error::io(
            format!(
                "cannot create {} (a log segment takes {room} of free space)",
                path.display()
            ),
            e,
        )
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io)?;
    let filled = perms::adopt(&file, dir).and_then(|()| fill(&mut file, size, owner, Pace::Once));
    if let Err(e) = filled {
        // A full disk: leave no half-made segment to block the next try.
        let _ = std::fs::remove_file(&path);
        return Err(io(e));
    }
    if let Err(e) = sync_dir(dir) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok((file, size))
}

/// Writes `buf` at `pos` and makes it durable before returning: one
/// `pwritev2` with `RWF_DSYNC` (a per-write `O_DSYNC`, which syncs just the
/// range written) where the kernel has it, else a write and `fdatasync`.
/// Under a PUT load with flushes (`wrk -t2 -c64`, 1M-key store) four
/// alternating 30 s rounds gave PUT p99 7.5-7.8 ms against 7.9-10.2 ms with
/// write + `fdatasync` at the same throughput; two 60 s pairs in a slower
/// hour showed no difference (`docs/benchmarks.md`).
fn write_synced(file: &File, buf: &[u8], pos: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if !DSYNC_UNSUPPORTED.load(std::sync::atomic::Ordering::Relaxed) && !portable_forced() {
        if write_dsync(file, buf, pos)? {
            return Ok(());
        }
        DSYNC_UNSUPPORTED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // The portable way.
    file.write_all_at(buf, pos)?;
    file.sync_data()
}

/// Set once the kernel turned down `pwritev2(RWF_DSYNC)` (before Linux
/// 4.7): later groups go straight to write + `fdatasync`.
#[cfg(target_os = "linux")]
static DSYNC_UNSUPPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a test made this thread's log writes take the portable way.
#[cfg(all(target_os = "linux", not(test)))]
fn portable_forced() -> bool {
    false
}

#[cfg(all(target_os = "linux", test))]
fn portable_forced() -> bool {
    tests::FORCE_PORTABLE.with(std::cell::Cell::get)
}

/// `buf` written at `pos` with `RWF_DSYNC`: `Ok(false)` when the kernel
/// lacks it and nothing was written.
#[cfg(target_os = "linux")]
fn write_dsync(file: &File, buf: &[u8], pos: u64) -> std::io::Result<bool> {
    use rustix::io::{Errno, ReadWriteFlags, pwritev2};
    let (mut rest, mut at) = (buf, pos);
    while !rest.is_empty() {
        match pwritev2(
            file,
            &[std::io::IoSlice::new(rest)],
            at,
            ReadWriteFlags::DSYNC,
        ) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                rest = &rest[n..];
                at += n as u64;
            }
            Err(Errno::INTR) => {}
            // A kernel before 4.7: no pwritev2, or no RWF_DSYNC.
            Err(Errno::NOSYS | Errno::OPNOTSUPP) if at == pos => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// How a new segment's zeros are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pace {
    /// One sync at the end: the writer making its own segment, with no log
    /// sync of its own to protect meanwhile.
    Once,
    /// Synced in pieces (the spare, filled beside the writer): a device's
    /// cache flush waits for every write before it (`store/paced.rs`), so
    /// the log's syncs wait for one piece at most, not for the segment.
    Pieces,
}

/// A sync of one piece slower than this is the device's latency, not its
/// bandwidth: more pieces would only multiply it (a 0.5 s fsync made a
/// 16 MiB segment take 8 s in 1 MiB pieces), so the pieces grow.
const SLOW_PIECE_SYNC: std::time::Duration = std::time::Duration::from_millis(20);

/// Zero-fills `size` bytes, writes `owner`'s header and syncs.
fn fill(file: &mut File, size: u64, owner: u64, pace: Pace) -> std::io::Result<()> {
    let zeros = vec![0u8; FILL_CHUNK];
    let mut left = size;
    let mut piece = FILL_CHUNK as u64;
    let mut unsynced = 0;
    while left > 0 {
        let n = left.min(FILL_CHUNK as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
        unsynced += n as u64;
        if pace == Pace::Pieces && unsynced >= piece && left > 0 {
            let started = std::time::Instant::now();
            file.sync_data()?;
            if started.elapsed() > SLOW_PIECE_SYNC {
                piece = piece.saturating_mul(2);
            }
            unsynced = 0;
        }
    }
    file.sync_data()?;
    file.write_all_at(&segment_header(owner), 0)?;
    file.sync_all()
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
    }
}

/// Removes the log directory and makes that durable. A directory kept only
/// by leftovers of deleted files still open somewhere (FUSE's
/// `.fuse_hidden*`, NFS's `.nfs*`) is harmless: no segment is left in it,
/// and the file system removes those names when the files are closed.
pub(crate) fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) if only_deleted_leftovers(dir) => return sync_dir(dir),
        Err(e) => return Err(Error::io(format!("cannot remove {}", dir.display()), e)),
    }
    sync_dir(dir.parent().unwrap_or(Path::new(".")))
}

/// Whether every name left in `dir` is a file system's stand-in for a
/// deleted file that is still open.
fn only_deleted_leftovers(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries
        .into_iter()
        .all(|entry| entry.is_ok_and(|e| is_deleted_leftover(&e.file_name().to_string_lossy())))
}

/// `.fuse_hidden0000001a00000001` (FUSE), `.nfs000000000012345600000001` (NFS).
fn is_deleted_leftover(name: &str) -> bool {
    name.starts_with(".fuse_hidden") || name.starts_with(".nfs")
}

fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot sync directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Makes this thread's log writes take the portable way, as on a
        /// kernel without `RWF_DSYNC` (other tests' threads are unaffected).
        pub(super) static FORCE_PORTABLE: Cell<bool> = const { Cell::new(false) };
    }

    /// Waits up to 10 s for the helper to leave exactly one whole spare.
    fn wait_for_spare(dir: &Path, size: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let spare = std::fs::metadata(dir.join(SPARE)).map(|m| m.len());
            if spare.as_ref().is_ok_and(|&len| len == size) && !dir.join("spare.tmp").exists() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no spare segment: {spare:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_spare_is_made_after_each_new_segment_and_records_replay() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db.wal");
        let size = 64 << 10;
        let mut wal = Wal::create_in(&dir, size, 7).unwrap();
        let ops = vec![Op::put("k", vec![7u8; 1000])];
        let mut revision = 1;
        for _ in 0..5 {
            wait_for_spare(&dir, size);
            let (segment, _) = wal.end();
            while wal.end().0 == segment {
                wal.append(&[(revision, &ops)]).unwrap();
                revision += 1;
            }
        }
        wait_for_spare(&dir, size);
        // Every record is in the segments, in order: a replay continues the
        // revisions without a gap up to the last one.
        let mut reached = 0;
        let recovered = recover::replay_with(&dir, 0, Some(7), |ops, _, _| {
            reached += ops.len() as u64;
            Ok(reached)
        })
        .unwrap();
        assert_eq!(recovered.revision, revision - 1);
        wal.remove().unwrap();
        assert!(!dir.exists(), "the helper left something behind");
    }

    /// A failed write whose bytes reached the segment and could not be
    /// zeroed leaves the log refusing appends (503 unavailable, not a
    /// restart's worth of 500s); once the disk takes writes again, the next
    /// append zeroes them first and goes on where they started, so they
    /// never replay.
    #[test]
    fn a_write_that_could_not_be_voided_is_voided_once_the_disk_works() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db.wal");
        let mut wal = Wal::create_in(&dir, 64 << 10, 7).unwrap();
        wal.append(&[(1, &[Op::put("a", vec![1u8; 100])])]).unwrap();
        // The failed group's bytes on the segment (as after a write that
        // reached the disk and whose sync failed), then a disk that takes
        // no write: a handle that cannot write.
        let failed: Vec<Op> = (0..20)
            .map(|i| Op::put(format!("b{i}"), vec![2u8; 100]))
            .collect();
        let record = LogRecord {
            first_revision: 2,
            ops: &failed,
            revisions: None,
            idempotency: None,
        };
        wal.encode(&[record]).unwrap();
        wal.file.write_all_at(&wal.buf, wal.pos).unwrap();
        let (segment, _) = wal.end();
        let writable = std::mem::replace(&mut wal.file, File::open(&segment).unwrap());
        let first = wal.append(&[(2, &failed)]).unwrap_err();
        assert!(matches!(first, Error::OutcomeUnknown { .. }), "{first}");
        assert!(wal.is_broken());
        let refused = wal.append(&[(2, &[Op::put("c", "3")])]).unwrap_err();
        assert!(matches!(refused, Error::Unavailable { .. }), "{refused}");
        assert!(
            refused.to_string().contains("cannot be voided"),
            "{refused}"
        );
        // The disk works again.
        wal.file = writable;
        wal.append(&[(2, &[Op::put("c", "3")])]).unwrap();
        assert!(!wal.is_broken());
        let mut keys = Vec::new();
        let recovered = recover::replay_with(&dir, 0, Some(7), |ops, _, _| {
            keys.extend(ops.into_iter().map(|op| String::from_utf8(op.key).unwrap()));
            Ok(keys.len() as u64)
        })
        .unwrap();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(recovered.revision, 2);
        wal.remove().unwrap();
    }

    /// A kernel without `RWF_DSYNC` (before 4.7) gets the same log through
    /// write + `fdatasync`: records across segments replay whole, in order.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_kernel_without_rwf_dsync_gets_the_same_log_the_portable_way() {
        FORCE_PORTABLE.with(|f| f.set(true));
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db.wal");
        let mut wal = Wal::create_in(&dir, 64 << 10, 7).unwrap();
        let first = wal.end().0;
        for revision in 1..=200u64 {
            let ops = vec![Op::put(format!("k{revision}"), vec![revision as u8; 1000])];
            wal.append(&[(revision, &ops)]).unwrap();
        }
        assert_ne!(
            wal.end().0,
            first,
            "200 KB of records stayed in one 64 KiB segment"
        );
        let mut seen = Vec::new();
        let recovered = recover::replay_with(&dir, 0, Some(7), |ops, _, _| {
            for op in ops {
                seen.push(op);
            }
            Ok(seen.len() as u64)
        })
        .unwrap();
        assert_eq!(recovered.revision, 200);
        let expected: Vec<Op> = (1..=200u64)
            .map(|r| Op::put(format!("k{r}"), vec![r as u8; 1000]))
            .collect();
        assert_eq!(seen, expected);
        wal.remove().unwrap();
    }

    /// The id in the header of each segment (and of the spare) in `dir`.
    fn header_ids(dir: &Path) -> Vec<(String, u64)> {
        let mut ids: Vec<(String, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "seg"))
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                assert_eq!(&bytes[..8], SEGMENT_MAGIC);
                let id = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                (p.file_name().unwrap().to_string_lossy().into_owned(), id)
            })
            .collect();
        ids.sort();
        ids
    }

    /// A log an older kvr left (no id in its headers) is resumed and
    /// replayed, but none of its segments, nor its spare, is reused: every
    /// segment written from then on names the database. A log of another
    /// database is refused before anything is written.
    #[test]
    fn a_resumed_log_names_its_database_in_every_new_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db.wal");
        let size = 64 << 10;
        let ops = vec![Op::put("k", vec![7u8; 1000])];
        {
            let mut old = Wal::create_in(&dir, size, 0).unwrap();
            wait_for_spare(&dir, size);
            for revision in 1..=100 {
                old.append(&[(revision, &ops)]).unwrap();
            }
        } // a crash: the log stays
        let old_headers = header_ids(&dir);
        assert!(old_headers.len() >= 3, "{old_headers:?}");
        assert!(old_headers.iter().all(|(_, id)| *id == 0));
        // Another database's log: refused, and nothing written.
        let foreign = tmp.path().join("other.wal");
        drop(Wal::create_in(&foreign, size, 5).unwrap());
        wait_for_spare(&foreign, size);
        let foreign_headers = header_ids(&foreign);
        let Err(Error::Corrupt(refused)) = Wal::resume_in(&foreign, size, 9) else {
            panic!("another database's log was resumed");
        };
        assert!(
            refused.contains("database id 0000000000000005"),
            "{refused}"
        );
        assert_eq!(header_ids(&foreign), foreign_headers);
        // The older log is resumed and replays whole.
        let (mut wal, sealed) = Wal::resume_in(&dir, size, 9).unwrap();
        let mut reached = 0;
        let recovered = recover::replay_with(&dir, 0, Some(9), |ops, _, _| {
            reached += ops.len() as u64;
            Ok(reached)
        })
        .unwrap();
        assert_eq!(recovered.revision, 100);
        for revision in 101..=200 {
            wal.append(&[(revision, &ops)]).unwrap();
        }
        sealed.unwrap().release().unwrap();
        wait_for_spare(&dir, size);
        let headers = header_ids(&dir);
        assert!(headers.iter().all(|(_, id)| *id == 9), "{headers:?}");
        assert!(headers.iter().any(|(name, _)| name == SPARE), "{headers:?}");
        wal.remove().unwrap();
    }

    #[test]
    fn only_fuse_and_nfs_leftovers_are_harmless() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".fuse_hidden0000001a00000001"), b"").unwrap();
        std::fs::write(dir.path().join(".nfs000000000012345600000001"), b"").unwrap();
        assert!(only_deleted_leftovers(dir.path()));
        std::fs::write(dir.path().join("0000000000000002.log"), b"").unwrap();
        assert!(!only_deleted_leftovers(dir.path()));
        assert!(!only_deleted_leftovers(&dir.path().join("missing")));
    }
}
