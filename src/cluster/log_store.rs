//! The Raft log: segment files in `DB.raft/` beside the database.
//!
//! **Files.** `NNNNNNNNNNNNNNNNNNNN.seg` (the index of its first entry,
//! zero-padded decimal) holds records back to back: a `u32` payload length,
//! a `u32` CRC-32 of the payload (both little-endian), then the payload, an
//! entry encoded with postcard. A record that is short or fails its
//! checksum is a torn tail: the segment is cut there when the log is
//! opened, and later segments go (they were never acknowledged), unless
//! the log shows that the record had been synced (below). `vote`
//! and `purged` hold the last vote and the last purged log id, each
//! replaced atomically (temporary file, fsync, rename, fsync directory);
//! `committed`, the last committed log id, is overwritten in place without
//! a sync (it changes with every commit; a rename each time cost the
//! leader's Raft loop about 5 % of its CPU): `u32` CRC-32 and `u32`
//! length (little-endian) of the postcard bytes that follow. A torn or
//! stale one is harmless: it fails its check and reads as unknown, or
//! names an index that was committed (commits only move forward); a
//! restarted node replays only that far. Whether that is as far as it
//! had applied (always after a `kill -9`, not after a power loss) is
//! what `boot.rs` records; where it cannot tell, the node catches up
//! with its leader before it answers stale reads (`Node::recovered`). A
//! truncation (a conflicting tail cut) and a purge sync the segment and
//! the directory, so that cut entries and purged segments stay gone after
//! a power loss.
//!
//! **Damage, not a torn tail.** Some records carry a mark, one byte
//! after the entry's postcard bytes in the payload (so the checksum covers
//! it, and a build that does not know it decodes the entry and ignores
//! the byte): a record is marked when the previous marked record, and every
//! record before it, has been synced since. So a record followed by two
//! intact marked records had been synced before the second was written, and a
//! crash cannot have torn it: a log where one fails its checksum is damaged
//! (a disk fault), and the node refuses to start with it rather than cut
//! entries it may have acknowledged (its vote would then count towards a
//! majority that lacks them). A log opened is synced whole first, so the
//! first record appended after the open is marked. Logs without marks
//! (older builds) are read as before.
//!
//! **Group commit.** [`LogStore::append`] writes the entries at once (so
//! they can be read back before they are durable, as openraft requires)
//! and hands the completion callback to the sync thread, which takes every
//! append waiting, runs one `fdatasync` per file touched and then
//! completes them all in order: appends queued together share one sync.
//!
//! **Memory.** An index entry per live log entry (its offset and length
//! in its segment, 8 bytes: see `index.rs`), and the newest entries
//! themselves, up to `RECENT_BYTES` of them: replication to each follower
//! and apply ask for the entries just appended, and reading each back
//! from the file and decoding it cost the leader about 7 % of its CPU. Older entries are read from the files when
//! asked for (a follower catching up). The log is purged at each
//! snapshot, which bounds the index.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use openraft::OptionalSend;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypeConfig;

mod index;
use index::{EntryIndex, Place};

type Entry = EntryOf<TypeConfig>;
type LogId = LogIdOf<TypeConfig>;
type Vote = VoteOf<TypeConfig>;

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Bytes before a record's payload: length and checksum.
const RECORD_HEADER: usize = 8;
/// The newest entries kept in memory, by encoded size (see the module
/// header).
const RECENT_BYTES: usize = 16 << 20;
/// Largest record accepted when reading: above any entry kvr writes (one
/// request of at most the batch limit), so a damaged length is a torn tail.
const MAX_RECORD_BYTES: usize = 1 << 30;
/// The byte after a marked record's entry (see the module header).
const GROUP_MARK: u8 = 1;

/// The last committed log id's file in the log directory (not synced:
/// see the module header and `boot.rs`).
pub const COMMITTED: &str = "committed";

/// The log directory of a database: `DB.raft` beside it (beside the file
/// a symbolic link names, as `crate::wal::dir_of`).
pub fn dir_of(db: &Path) -> PathBuf {
    let mut name = crate::store::creation_target(db).into_os_string();
    name.push(".raft");
    PathBuf::from(name)
}

/// The Raft log of one node. Clones share it (the reader openraft asks for
/// is a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    syncer: Sender<Job>,
    /// Bytes of records appended since the log was opened.
    appended: Arc<AtomicU64>,
    /// The number of records written since the open that are synced (a
    /// prefix of them): the sync thread's count.
    synced: Arc<AtomicU64>,
}

struct Segment {
    file: Arc<File>,
    len: u64,
}

struct Inner {
    dir: PathBuf,
    /// By the index of their first entry.
    segments: BTreeMap<u64, Segment>,
    /// Where the live entries (after `purged`) are, in index order.
    locs: EntryIndex,
    /// The newest entries with their encoded sizes: the last
    /// `recent.len()` of `locs`.
    recent: VecDeque<(Entry, usize)>,
    /// The sum of the sizes in `recent`, and its bound.
    recent_bytes: usize,
    recent_limit: usize,
    /// [`SEGMENT_BYTES`] (smaller in tests).
    segment_limit: u64,
    purged: Option<LogId>,
    vote: Option<Vote>,
    /// `committed`, opened at the first save.
    committed: Option<File>,
    /// Records written since the open, and the number (in that count) of
    /// the last one marked (see the module header).
    written: u64,
    last_mark: u64,
}

/// An append waiting for its sync.
struct Job {
    files: Vec<Arc<File>>,
    done: IOFlushed<TypeConfig>,
    /// The records written up to and including this append's (jobs are
    /// sent in the order their records were written).
    written: u64,
}

fn corrupt(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn tail.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        LogStore::open_with(dir, || {})
    }

    /// [`LogStore::open`], with `before_sync` run by the sync thread before
    /// each round (tests hold syncs back with it).
    fn open_with(dir: &Path, before_sync: impl Fn() + Send + 'static) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let purged: Option<LogId> = read_small(&dir.join("purged"))?;
        let vote: Option<Vote> = read_small(&dir.join("vote"))?;
        let scanned = scan_segments(dir, true)?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            segments: BTreeMap::new(),
            locs: EntryIndex::default(),
            recent: VecDeque::new(),
            recent_bytes: 0,
            recent_limit: RECENT_BYTES,
            segment_limit: SEGMENT_BYTES,
            purged,
            vote,
            committed: None,
            written: 0,
            last_mark: 0,
        };
        // Nothing is cut before the log is known to be torn, not damaged.
        check_damage(dir, &scanned)?;
        let mut next: Option<u64> = None;
        let mut torn = false;
        for (first, path, file, found) in scanned {
            if torn {
                drop(file);
                std::fs::remove_file(&path)?;
                continue;
            }
            if found.good_len < found.file_len {
                file.set_len(found.good_len)?;
                file.sync_all()?;
                torn = true;
            } else {
                // What a killed process wrote is synced before anything
                // is appended after it (the marks rely on it).
                file.sync_data()?;
            }
            for (offset, len, log_id) in found.records {
                let index = log_id.index();
                if let Some(n) = next
                    && index != n
                {
                    return Err(corrupt(format!(
                        "the Raft log in {} skips from entry {} to {index}",
                        dir.display(),
                        n - 1
                    )));
                }
                next = Some(index + 1);
                if inner.purged.as_ref().is_some_and(|p| index <= p.index()) {
                    continue;
                }
                inner.locs.push(log_id, place(offset, len)?)?;
            }
            inner.segments.insert(
                first,
                Segment {
                    file: Arc::new(file),
                    len: found.good_len,
                },
            );
        }
        if torn {
            // The cut segments stay gone after a power loss.
            File::open(dir)?.sync_all()?;
        }
        let (tx, rx) = channel();
        let synced = Arc::new(AtomicU64::new(0));
        let count = synced.clone();
        std::thread::Builder::new()
            .name("kvr-raft-sync".into())
            .spawn(move || sync_loop(&rx, &count, before_sync))?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
            syncer: tx,
            appended: Arc::default(),
            synced,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The count of bytes appended since the log was opened (snapshots
    /// are triggered by it, `start.rs`).
    pub fn appended(&self) -> Arc<AtomicU64> {
        self.appended.clone()
    }

    /// The first index of the newest entries that take at most `bytes`
    /// together (one entry at least), when older entries are left: the log
    /// may be purged below it (`start.rs`). openraft keeps a count of
    /// entries below a snapshot (1,000): of 6 MB batches that was 6 GB of
    /// log, and 1.1 GB were seen kept with the first segment never deleted
    /// (found by an audit).
    pub fn keep_from(&self, bytes: u64) -> Option<u64> {
        let inner = self.lock();
        let first = inner.locs.first()?;
        let mut kept = 0u64;
        for pos in (0..inner.locs.len()).rev() {
            let (_, place) = inner.locs.get(pos)?;
            kept += u64::from(place.len);
            if kept > bytes && pos + 1 < inner.locs.len() {
                return Some(first + pos as u64 + 1);
            }
        }
        None
    }

    /// The index of the last entry (or of the last purged one).
    pub fn last_index(&self) -> Option<u64> {
        let inner = self.lock();
        inner
            .locs
            .last()
            .map(|l| l.index())
            .or_else(|| inner.purged.as_ref().map(|p| p.index()))
    }
}

/// Reads the log in `dir` without changing it: an error when it is damaged
/// (see the module header), as opening it would be. A torn tail is no
/// error: the next open cuts it, as a crash leaves one.
pub fn verify(dir: &Path) -> io::Result<()> {
    check_damage(dir, &scan_segments(dir, false)?)
}

/// A segment as [`scan_segments`] found it: the index of its first entry,
/// its path, the file (open for writing too when asked) and its records.
type ScannedSegment = (u64, PathBuf, File, Scanned);

/// Opens and reads every segment in `dir`, in order.
fn scan_segments(dir: &Path, write: bool) -> io::Result<Vec<ScannedSegment>> {
    let mut names = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            names.push((first, path));
        }
    }
    names.sort();
    let mut scanned = Vec::with_capacity(names.len());
    for (first, path) in names {
        let file = OpenOptions::new().read(true).write(write).open(&path)?;
        let found = scan(&file)?;
        scanned.push((first, path, file, found));
    }
    Ok(scanned)
}

/// Whether the log in `dir` holds a vote: every member that applied an
/// entry saved one first (a vote, or the leader's, before its entries).
pub fn holds_vote(dir: &Path) -> bool {
    dir.join("vote").is_file()
}

/// The last committed log id recorded in the log directory `dir`; unknown
/// (`None`) when never recorded or torn (see the module header).
pub fn read_committed_in(dir: &Path) -> io::Result<Option<LogId>> {
    let bytes = match std::fs::read(dir.join(COMMITTED)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let record = || -> Option<Option<LogId>> {
        let crc = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
        let len = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
        let payload = bytes.get(8..8 + len)?;
        (crc32fast::hash(payload) == crc).then(|| postcard::from_bytes(payload).ok())?
    };
    Ok(record().flatten())
}

/// A record found by [`scan`]: offset, length, log id.
type Found = (u64, u32, LogId);

/// What [`scan`] finds in a segment.
struct Scanned {
    /// The intact records before the first that is not.
    records: Vec<Found>,
    /// The length of those records, and of the file.
    good_len: u64,
    file_len: u64,
    /// Marked records among `records`, and intact marked records after
    /// the first that is not (found by the lengths of those between,
    /// while they hold).
    marks: usize,
    marks_after: usize,
}

/// Reads a segment's records.
fn scan(file: &File) -> io::Result<Scanned> {
    let file_len = file.metadata()?.len();
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut out = Scanned {
        records: Vec::new(),
        good_len: 0,
        file_len,
        marks: 0,
        marks_after: 0,
    };
    let mut offset = 0u64;
    let mut bad = false;
    let mut head = [0u8; RECORD_HEADER];
    let mut payload = Vec::new();
    loop {
        if !read_full(&mut reader, &mut head)? {
            break;
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_RECORD_BYTES {
            break;
        }
        payload.resize(len, 0);
        if !read_full(&mut reader, &mut payload)? {
            break;
        }
        let intact = (crc32fast::hash(&payload) == crc)
            .then(|| postcard::take_from_bytes::<Entry>(&payload).ok())
            .flatten()
            .and_then(|(entry, rest)| match rest {
                [] => Some((entry, false)),
                [GROUP_MARK] => Some((entry, true)),
                _ => None,
            });
        match intact {
            Some((entry, marked)) if !bad => {
                out.records
                    .push((offset + RECORD_HEADER as u64, len as u32, entry.log_id()));
                out.marks += usize::from(marked);
            }
            Some((_, marked)) => out.marks_after += usize::from(marked),
            None if !bad => {
                bad = true;
                out.good_len = offset;
            }
            None => {}
        }
        offset += (RECORD_HEADER + len) as u64;
    }
    if !bad {
        out.good_len = offset;
    }
    Ok(out)
}

/// Refuses a log whose first record that is not intact (in segment order)
/// is followed by two intact marked records: it had been synced, so it is
/// damage, not a torn tail (see the module header).
fn check_damage(dir: &Path, segments: &[ScannedSegment]) -> io::Result<()> {
    let Some(at) = segments
        .iter()
        .position(|(_, _, _, s)| s.good_len < s.file_len)
    else {
        return Ok(());
    };
    let (_, path, _, found) = &segments[at];
    let marks = found.marks_after
        + segments[at + 1..]
            .iter()
            .map(|(_, _, _, s)| s.marks + s.marks_after)
            .sum::<usize>();
    if marks < 2 {
        return Ok(());
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let after = found.records.last().map(|(_, _, id)| id.index());
    Err(corrupt(format!(
        "the Raft log in {} is damaged: the record at byte {} of {name}{} fails its \
         checksum, and records written after it are intact, which a crash cannot leave. \
         This node may have acknowledged the entries from there on, so it does not start \
         without them: remove it from its cluster (`kvr cluster remove ID` through \
         another member), move {} and its database file aside, and start it again with \
         --join to come back as a new member with the cluster's data",
        dir.display(),
        found.good_len,
        after.map_or_else(String::new, |i| format!(" (after entry {i})")),
        dir.display(),
    )))
}

/// Fills `buf`; `false` at a clean or torn end.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

pub(super) fn read_small<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces `dir/name` with `value`, durably.
pub(super) fn write_small<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    replace(dir, name, value, true)
}

/// An entry's place in its segment: its payload's offset, which the
/// segment bound keeps within a `u32` (see `index.rs`).
fn place(offset: u64, len: u32) -> io::Result<Place> {
    let offset = u32::try_from(offset).map_err(|_| {
        corrupt(format!(
            "a Raft log entry at offset {offset} of its segment"
        ))
    })?;
    Ok(Place { offset, len })
}

/// Replaces `dir/name` with `value` by a rename (atomic), synced or not.
fn replace<T: Serialize>(dir: &Path, name: &str, value: &T, sync: bool) -> io::Result<()> {
    let bytes = postcard::to_allocvec(value).map_err(corrupt)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    std::io::Write::write_all(&mut f, &bytes)?;
    if sync {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Syncs the files of every append waiting, then completes them, and
/// counts the records synced in `synced` (until a sync fails: the count
/// then stays, as later jobs' files need not be those that failed).
fn sync_loop(rx: &Receiver<Job>, synced: &AtomicU64, before_sync: impl Fn()) {
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        before_sync();
        let mut jobs = vec![first];
        while let Ok(more) = rx.try_recv() {
            jobs.push(more);
        }
        let mut files: Vec<Arc<File>> = Vec::new();
        for job in &jobs {
            for f in &job.files {
                if !files.iter().any(|g| Arc::ptr_eq(f, g)) {
                    files.push(f.clone());
                }
            }
        }
        let mut result = Ok(());
        for f in &files {
            if let Err(e) = f.sync_data() {
                result = Err(e);
                break;
            }
        }
        failed |= result.is_err();
        if !failed && let Some(last) = jobs.last() {
            // Jobs arrive in the order their records were written, and
            // each names its files: every record up to the last job's is
            // in a file just synced, or synced before.
            synced.store(last.written, Ordering::Release);
        }
        for job in jobs {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            job.done.io_completed(r);
        }
    }
}

impl Inner {
    /// The entry at `pos` in `locs`: from memory when recent.
    fn entry_at(&self, pos: usize) -> io::Result<Entry> {
        let first_recent = self.locs.len() - self.recent.len();
        match pos.checked_sub(first_recent) {
            Some(i) => match self.recent.get(i) {
                Some((entry, _)) => Ok(entry.clone()),
                None => Err(corrupt(format!("no Raft log entry at position {pos}"))),
            },
            None => match self.locs.get(pos) {
                Some((log_id, place)) => self.read_entry(log_id.index(), place),
                None => Err(corrupt(format!("no Raft log entry at position {pos}"))),
            },
        }
    }

    /// Keeps `entry` (just appended, `bytes` encoded) in memory, dropping
    /// the oldest kept ones past the bound.
    fn remember(&mut self, entry: Entry, bytes: usize) {
        self.recent.push_back((entry, bytes));
        self.recent_bytes += bytes;
        while self.recent_bytes > self.recent_limit
            && let Some((_, b)) = self.recent.pop_front()
        {
            self.recent_bytes -= b;
        }
    }

    /// Drops the entries from `pos` on (a truncation).
    fn truncate(&mut self, pos: usize) {
        let removed = self.locs.len().saturating_sub(pos);
        for _ in 0..removed.min(self.recent.len()) {
            if let Some((_, b)) = self.recent.pop_back() {
                self.recent_bytes -= b;
            }
        }
        self.locs.truncate(pos);
    }

    /// Drops the first entry (a purge).
    fn pop_front(&mut self) {
        if self.recent.len() == self.locs.len()
            && let Some((_, b)) = self.recent.pop_front()
        {
            self.recent_bytes -= b;
        }
        self.locs.pop_front();
    }

    /// Writes records at `(segment, offset)`.
    fn write_run(&self, (segment, offset): (u64, u64), records: &[u8]) -> io::Result<()> {
        let seg = self
            .segments
            .get(&segment)
            .ok_or_else(|| corrupt(format!("Raft log segment {segment} is missing")))?;
        seg.file.write_all_at(records, offset)
    }

    /// The entry `index`, read from its place in its segment.
    fn read_entry(&self, index: u64, place: Place) -> io::Result<Entry> {
        let (_, seg) = self.segment_of(index)?;
        let mut buf = vec![0u8; place.len as usize];
        seg.file.read_exact_at(&mut buf, u64::from(place.offset))?;
        postcard::from_bytes(&buf).map_err(corrupt)
    }

    /// The segment holding the entry `index`: the one with the greatest
    /// first index at or below it (see `index.rs`).
    fn segment_of(&self, index: u64) -> io::Result<(u64, &Segment)> {
        self.segments
            .range(..=index)
            .next_back()
            .map(|(&first, seg)| (first, seg))
            .ok_or_else(|| corrupt(format!("no Raft log segment holds entry {index}")))
    }

    /// The segment to append to, starting one at `index` when there is
    /// none or the last is full.
    fn segment_for(&mut self, index: u64, bytes: u64) -> io::Result<u64> {
        if let Some((&first, seg)) = self.segments.iter().next_back()
            && (seg.len == 0 || seg.len + bytes <= self.segment_limit)
        {
            return Ok(first);
        }
        let path = self.dir.join(format!("{index:020}.seg"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        File::open(&self.dir)?.sync_all()?;
        self.segments.insert(
            index,
            Segment {
                file: Arc::new(file),
                len: 0,
            },
        );
        Ok(index)
    }

    fn remove_segment(&mut self, first: u64) -> io::Result<()> {
        if self.segments.remove(&first).is_some() {
            std::fs::remove_file(self.dir.join(format!("{first:020}.seg")))?;
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let inner = self.lock();
        let start = match range.start_bound() {
            Bound::Included(&x) => x,
            Bound::Excluded(&x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let Some(first) = inner.locs.first() else {
            return Ok(out);
        };
        let from = usize::try_from(start.saturating_sub(first)).unwrap_or(usize::MAX);
        for (pos, (log_id, _)) in (from..).zip(inner.locs.iter_from(from)) {
            if !range.contains(&log_id.index()) {
                break;
            }
            out.push(inner.entry_at(pos)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let inner = self.lock();
        let last = inner.locs.last();
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last.or_else(|| inner.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Kept so that a restarted node applies what it had applied before
    /// it serves (its revision never goes backwards across a `kill -9`).
    /// Overwritten in place, checksummed, not synced (see the module
    /// header): after a power loss an older or torn value only means
    /// waiting for the leader, never a wrong answer.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut inner = self.lock();
        let bytes = postcard::to_allocvec(&committed).map_err(corrupt)?;
        let mut record = Vec::with_capacity(8 + bytes.len());
        record.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
        record.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        record.extend_from_slice(&bytes);
        if inner.committed.is_none() {
            let path = inner.dir.join(COMMITTED);
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)?;
            inner.committed = Some(file);
        }
        match &inner.committed {
            Some(f) => f.write_all_at(&record, 0),
            None => Ok(()),
        }
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let dir = self.lock().dir.clone();
        read_committed_in(&dir)
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut inner = self.lock();
        write_small(&inner.dir, "vote", vote)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut files: Vec<Arc<File>> = Vec::new();
        let mut inner = self.lock();
        {
            // The records before the last mark are synced: this append
            // starts with a mark (see the module header).
            let mut marked = self.synced.load(Ordering::Acquire) >= inner.last_mark;
            // The records bound for one segment, written with one call
            // (a request's entries arrive together): the segment and the
            // offset they start at.
            let mut run: Vec<u8> = Vec::new();
            let mut run_at: Option<(u64, u64)> = None;
            let mut appended = 0u64;
            for entry in entries {
                let log_id = entry.log_id();
                let payload = postcard::to_allocvec(&entry).map_err(corrupt)?;
                inner.written += 1;
                let mark: &[u8] = if marked {
                    inner.last_mark = inner.written;
                    marked = false;
                    &[GROUP_MARK]
                } else {
                    &[]
                };
                let len = u32::try_from(payload.len() + mark.len())
                    .map_err(|_| corrupt("a Raft log entry over 4 GiB"))?;
                let bytes = RECORD_HEADER + len as usize;
                let first = inner.segment_for(log_id.index(), bytes as u64)?;
                if let Some(at) = run_at
                    && at.0 != first
                {
                    inner.write_run(at, &run)?;
                    run.clear();
                }
                let seg = inner
                    .segments
                    .get_mut(&first)
                    .ok_or_else(|| corrupt("no segment to append to"))?;
                if run.is_empty() {
                    run_at = Some((first, seg.len));
                }
                appended += bytes as u64;
                let mut crc = crc32fast::Hasher::new();
                crc.update(&payload);
                crc.update(mark);
                run.extend_from_slice(&len.to_le_bytes());
                run.extend_from_slice(&crc.finalize().to_le_bytes());
                run.extend_from_slice(&payload);
                run.extend_from_slice(mark);
                let offset = seg.len + RECORD_HEADER as u64;
                seg.len += bytes as u64;
                if !files.iter().any(|f| Arc::ptr_eq(f, &seg.file)) {
                    files.push(seg.file.clone());
                }
                inner.locs.push(log_id, place(offset, len)?)?;
                inner.remember(entry, bytes);
            }
            if let Some(at) = run_at {
                inner.write_run(at, &run)?;
            }
            self.appended.fetch_add(appended, Ordering::Relaxed);
        }
        // Sent while the lock is held, so that jobs arrive in the order
        // their records were written.
        self.syncer
            .send(Job {
                files,
                done: callback,
                written: inner.written,
            })
            .map_err(|_| io::Error::other("the Raft log's sync thread has stopped"))
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> Result<(), io::Error> {
        let mut inner = self.lock();
        let keep = last.map_or(0, |l| l.index() + 1);
        let Some(pos) = inner.locs.position(keep) else {
            if inner.locs.first().is_some_and(|first| first > keep) {
                // Everything goes, and the segments with it: the next
                // entry starts a segment of its own (see `index.rs`).
                inner.truncate(0);
                let firsts: Vec<u64> = inner.segments.keys().copied().collect();
                for first in firsts {
                    inner.remove_segment(first)?;
                }
                File::open(&inner.dir)?.sync_all()?;
            }
            return Ok(());
        };
        let (segment, offset) = match inner.locs.get(pos) {
            Some((log_id, place)) => (
                inner.segment_of(log_id.index())?.0,
                u64::from(place.offset) - RECORD_HEADER as u64,
            ),
            None => return Ok(()),
        };
        inner.truncate(pos);
        let later: Vec<u64> = inner
            .segments
            .range(segment + 1..)
            .map(|(&k, _)| k)
            .collect();
        let removed = !later.is_empty();
        for first in later {
            inner.remove_segment(first)?;
        }
        if let Some(seg) = inner.segments.get_mut(&segment) {
            seg.file.set_len(offset)?;
            seg.len = offset;
            // Durable before anything else is appended or acknowledged:
            // after a power loss the cut entries (and segments) must not
            // come back beside the ones that replace them.
            seg.file.sync_all()?;
        }
        if removed {
            File::open(&inner.dir)?.sync_all()?;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut inner = self.lock();
        write_small(&inner.dir, "purged", &log_id)?;
        let upto = log_id.index();
        inner.purged = Some(log_id);
        while inner.locs.first().is_some_and(|first| first <= upto) {
            inner.pop_front();
        }
        // A segment goes when every entry in it is purged: when the next
        // one starts at or below upto + 1. With no live entry left, all go,
        // so the next append starts a segment of its own.
        let firsts: Vec<u64> = inner.segments.keys().copied().collect();
        let mut removed = false;
        for (i, &first) in firsts.iter().enumerate() {
            let all_purged = match firsts.get(i + 1) {
                Some(&next) => next <= upto + 1,
                None => inner.locs.is_empty(),
            };
            if all_purged {
                inner.remove_segment(first)?;
                removed = true;
            }
        }
        // The unlinks made durable too (a purged segment that came back
        // after a power loss would only be skipped, but need not be).
        if removed {
            File::open(&inner.dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicBool;

    use openraft::storage::RaftLogStorage;

    use super::*;

    pub(crate) fn id(term: u64, index: u64) -> LogId {
        openraft::testing::log_id::<TypeConfig>(term, 1, index)
    }

    #[tokio::test]
    async fn committed_is_read_back_and_a_torn_one_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), None);
        log.save_committed(Some(id(7, 1_000_000))).await.unwrap();
        // A shorter record over a longer one: its length says where it ends.
        log.save_committed(Some(id(1, 3))).await.unwrap();
        let mut reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(reopened.read_committed().await.unwrap(), Some(id(1, 3)));
        // A torn write (a flipped byte): unknown, never a wrong index.
        let path = dir.path().join("committed");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let mut torn = LogStore::open(dir.path()).unwrap();
        assert_eq!(torn.read_committed().await.unwrap(), None);
    }

    /// Ten entries, each appended once the one before it is synced, in a
    /// log of one segment.
    async fn synced_log(dir: &Path) -> LogStore {
        let mut log = LogStore::open(dir).unwrap();
        for i in 1..=10 {
            log.append([write(1, i, 50)], IOFlushed::noop())
                .await
                .unwrap();
            let written = log.lock().written;
            while log.synced.load(Ordering::Acquire) < written {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        log
    }

    /// Flips a byte in the middle of entry `index`'s record.
    fn flip(dir: &Path, log: LogStore, index: u64) {
        let (path, at) = {
            let inner = log.lock();
            let pos = inner.locs.position(index).unwrap();
            let (_, place) = inner.locs.get(pos).unwrap();
            let segment = inner.segment_of(index).unwrap().0;
            let path = dir.join(format!("{segment:020}.seg"));
            (path, u64::from(place.offset) + u64::from(place.len) / 2)
        };
        drop(log);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
    }

    /// Every file in `dir` with its bytes.
    fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), std::fs::read(p).unwrap()))
            .collect()
    }

    async fn indexes(log: &mut LogStore) -> Vec<u64> {
        let entries = log.try_get_log_entries(0..).await.unwrap();
        entries.iter().map(|e| e.log_id().index()).collect()
    }

    /// The newest entries within a size are what is kept below a snapshot:
    /// the first index to keep is the one past which they would take more,
    /// and none while all of them fit.
    #[tokio::test]
    async fn keep_from_counts_the_newest_entries_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = synced_log(dir.path()).await;
        let lens: Vec<u64> = {
            let inner = log.lock();
            (0..inner.locs.len())
                .map(|p| u64::from(inner.locs.get(p).unwrap().1.len))
                .collect()
        };
        assert_eq!(lens.len(), 10);
        let each = lens[9];
        // Three of the newest fit in three lengths; the first to keep is 8.
        assert_eq!(log.keep_from(3 * each), Some(8));
        assert_eq!(log.keep_from(3 * each + 1), Some(8));
        // Less than one: the newest alone is kept.
        assert_eq!(log.keep_from(1), Some(10));
        // All of them fit: nothing to purge for size.
        assert_eq!(log.keep_from(lens.iter().sum()), None);
    }

    #[tokio::test]
    async fn a_damaged_record_that_had_been_synced_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let log = synced_log(dir.path()).await;
        flip(dir.path(), log, 3);
        let before = files(dir.path());
        let err = LogStore::open(dir.path())
            .err()
            .expect("a damaged log opens");
        let message = err.to_string();
        assert!(
            message.contains("is damaged") && message.contains("(after entry 2)"),
            "{message}"
        );
        assert!(message.contains("kvr cluster remove"), "{message}");
        assert_eq!(files(dir.path()), before, "the log was changed");
    }

    #[tokio::test]
    async fn damage_in_the_last_records_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = synced_log(dir.path()).await;
        // Two marked records after entry 9 cannot be: only one follows.
        flip(dir.path(), log, 9);
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, (1..=8).collect::<Vec<_>>());
        // The cut is made, and appends go on after it.
        log.append([write(2, 9, 5)], IOFlushed::noop())
            .await
            .unwrap();
        drop(log);
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, (1..=9).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_log_without_marks_is_read_as_before() {
        // Records as builds before the marks wrote them.
        let dir = tempfile::tempdir().unwrap();
        let mut records = Vec::new();
        let mut offsets = Vec::new();
        for i in 1..=10 {
            let payload = postcard::to_allocvec(&write(1, i, 50)).unwrap();
            offsets.push(records.len() + RECORD_HEADER + payload.len() / 2);
            records.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            records.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            records.extend_from_slice(&payload);
        }
        let path = dir.path().join(format!("{:020}.seg", 1));
        std::fs::write(&path, &records).unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, (1..=10).collect::<Vec<_>>());
        drop(log);
        // Damage there is a torn tail, as it always was.
        records[offsets[2]] ^= 0x10;
        std::fs::write(&path, &records).unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, vec![1, 2]);
    }

    /// A put of key `index` (big-endian) with a value of `value_len` bytes.
    pub(crate) fn write(term: u64, index: u64, value_len: usize) -> Entry {
        let cmd = crate::cluster::types::WriteCommand {
            ops: vec![crate::cluster::types::WireOp {
                key: index.to_be_bytes().to_vec(),
                value: Some(vec![index as u8; value_len]),
                if_revision: None,
                line: None,
                expires_at_ms: None,
                expire: None,
                ttl_secs: None,
            }],
            ..Default::default()
        };
        Entry::new_normal(
            id(term, index),
            crate::cluster::types::Command::Write(Arc::new(cmd)),
        )
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Entries with these value sizes.
        Append(Vec<usize>),
        /// Keep this fraction (of 256) of the live entries.
        Truncate(u8),
        /// Purge up to this fraction (of 256) of the live entries.
        Purge(u8),
        Reopen,
        /// A crash that garbles the records not yet synced, from this
        /// fraction (of 256) of them on: a byte flipped, or (with `true`)
        /// zeros, as a power loss can leave.
        Crash(u8, bool),
        /// Hold syncs back, or let them go on.
        Stall(bool),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => proptest::collection::vec(0usize..700, 1..8).prop_map(Step::Append),
            1 => any::<u8>().prop_map(Step::Truncate),
            1 => any::<u8>().prop_map(Step::Purge),
            1 => Just(Step::Reopen),
            1 => (any::<u8>(), any::<bool>()).prop_map(|(f, z)| Step::Crash(f, z)),
            1 => any::<bool>().prop_map(Step::Stall),
        ]
    }

    /// A log whose memory part holds a few entries, so that reads mix
    /// memory and files, and whose segments hold a few, so that appends
    /// span segments.
    ///
    /// While the flag it returns is set, its sync thread syncs nothing.
    fn small_log(dir: &Path) -> (LogStore, Arc<AtomicBool>) {
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        let log = LogStore::open_with(dir, move || {
            while flag.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
        .unwrap();
        let mut inner = log.lock();
        inner.recent_limit = 2_000;
        inner.segment_limit = 3_000;
        drop(inner);
        (log, stalled)
    }

    /// Appends, truncations and purges against a model of the log, and
    /// reopens (which read only files).
    async fn check(steps: Vec<Step>) {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut stalled) = small_log(dir.path());
        // The live entries, and the last index purged.
        let mut model: Vec<Entry> = Vec::new();
        let mut purged = 0u64;
        // The number each live entry's record has in the log's count of
        // records written since the open (`None`: written before it).
        let mut seqs: Vec<Option<u64>> = Vec::new();
        let mut term = 1;
        for (n, step) in steps.into_iter().enumerate() {
            let next = model.last().map_or(purged + 1, |e| e.log_id().index() + 1);
            match step {
                Step::Append(sizes) => {
                    let entries: Vec<Entry> = (next..)
                        .zip(sizes)
                        .map(|(i, len)| write(term, i, len))
                        .collect();
                    model.extend(entries.iter().cloned());
                    let before = log.lock().written;
                    log.append(entries, IOFlushed::noop()).await.unwrap();
                    let after = log.lock().written;
                    seqs.extend((before + 1..=after).map(Some));
                }
                Step::Truncate(f) if !model.is_empty() => {
                    // A new leader overwrites the tail.
                    let keep = model.len() * f as usize / 256;
                    let last = match keep {
                        0 => id(term, purged),
                        _ => model[keep - 1].log_id(),
                    };
                    model.truncate(keep);
                    seqs.truncate(keep);
                    log.truncate_after(Some(last)).await.unwrap();
                    term += 1;
                }
                Step::Purge(f) if !model.is_empty() => {
                    let upto = model.len() * f as usize / 256;
                    let log_id = model[upto].log_id();
                    model.drain(..=upto);
                    seqs.drain(..=upto);
                    purged = log_id.index();
                    log.purge(log_id).await.unwrap();
                }
                Step::Stall(on) => stalled.store(on, Ordering::Release),
                Step::Reopen => {
                    stalled.store(false, Ordering::Release);
                    drop(log);
                    (log, stalled) = small_log(dir.path());
                    seqs = vec![None; model.len()];
                }
                Step::Crash(f, zeros) => {
                    // Whatever the sync thread does meanwhile, records
                    // past this count were not synced when it was read.
                    let synced = log.synced.load(Ordering::Acquire);
                    let unsynced = seqs
                        .iter()
                        .position(|s| s.is_some_and(|s| s > synced))
                        .unwrap_or(model.len());
                    let from = unsynced + (model.len() - unsynced) * f as usize / 256;
                    let garbled: Vec<(PathBuf, u64, u32)> = {
                        let inner = log.lock();
                        inner
                            .locs
                            .iter_from(from)
                            .map(|(log_id, place)| {
                                let segment = inner.segment_of(log_id.index()).unwrap().0;
                                let name = format!("{segment:020}.seg");
                                (dir.path().join(name), u64::from(place.offset), place.len)
                            })
                            .collect()
                    };
                    stalled.store(false, Ordering::Release);
                    drop(log);
                    for (i, (path, offset, len)) in garbled.into_iter().enumerate() {
                        let file = OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(&path)
                            .unwrap();
                        let mut at = offset + u64::from(len) / 2;
                        let mut byte = [0u8; 1];
                        if zeros {
                            // A whole record (with its header) as zeros.
                            at = offset - RECORD_HEADER as u64;
                            let zero = vec![0u8; RECORD_HEADER + len as usize];
                            file.write_all_at(&zero, at).unwrap();
                        } else if i % 2 == 0 {
                            file.read_exact_at(&mut byte, at).unwrap();
                            file.write_all_at(&[byte[0] ^ 0x5a], at).unwrap();
                        }
                    }
                    model.truncate(from);
                    (log, stalled) = small_log(dir.path());
                    seqs = vec![None; model.len()];
                }
                Step::Truncate(_) | Step::Purge(_) => {}
            }
            let ids = |entries: &[Entry]| entries.iter().map(|e| e.log_id()).collect::<Vec<_>>();
            let first = purged + 1;
            let got = log.try_get_log_entries(first..).await.unwrap();
            assert_eq!(ids(&got), ids(&model), "after step {n}");
            assert!(got == model, "after step {n}: the same ids, other contents");
            if model.len() > 2 {
                let last = first + model.len() as u64 - 1;
                let got = log.try_get_log_entries(first + 1..last).await.unwrap();
                assert!(got == model[1..model.len() - 1], "after step {n}: a part");
            }
            let inner = log.lock();
            assert!(inner.recent.len() <= inner.locs.len());
            assert!(inner.recent_bytes <= inner.recent_limit);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn entries_read_back_alike_from_memory_and_files(
            steps in proptest::collection::vec(step(), 1..120)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(check(steps));
        }
    }
}
