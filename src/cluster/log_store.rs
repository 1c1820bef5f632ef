//! The Raft log: segment files in `DB.raft/` beside the database.
//!
//! **Files.** `NNNNNNNNNNNNNNNNNNNN.seg` (the index of its first entry,
//! zero-padded decimal) holds records back to back: a `u32` payload length,
//! a `u32` CRC-32 of the payload (both little-endian), then the payload, an
//! entry encoded with postcard. A record that is short or fails its
//! checksum is a torn tail: the segment is cut there when the log is
//! opened, and later segments go (they were never acknowledged). `vote`
//! and `purged` hold the last vote and the last purged log id, each
//! replaced atomically (temporary file, fsync, rename, fsync directory);
//! `committed`, the last committed log id, is overwritten in place without
//! a sync (it changes with every commit; a rename each time cost the
//! leader's Raft loop about 5 % of its CPU): `u32` CRC-32 and `u32`
//! length (little-endian) of the postcard bytes that follow. A torn or
//! stale one is harmless: it fails its check and reads as unknown, or
//! names an index that was committed (commits only move forward); a
//! restarted node replays only that far, and catches up with its leader
//! before it answers stale reads (`Node::recovered`). A truncation (a
//! conflicting tail cut) and a purge sync the segment and the directory,
//! so that cut entries and purged segments stay gone after a power loss.
//!
//! **Group commit.** [`LogStore::append`] writes the entries at once (so
//! they can be read back before they are durable, as openraft requires)
//! and hands the completion callback to the sync thread, which takes every
//! append waiting, runs one `fdatasync` per file touched and then
//! completes them all in order: appends queued together share one sync.
//!
//! **Memory.** An index entry per live log entry (its file position and
//! log id), and the newest entries themselves, up to `RECENT_BYTES` of
//! them: replication to each follower and apply ask for the entries just
//! appended, and reading each back from the file and decoding it cost the
//! leader about 7 % of its CPU. Older entries are read from the files when
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

/// The log directory of a database: `DB.raft` beside it.
pub fn dir_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
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
}

struct Segment {
    file: Arc<File>,
    len: u64,
}

/// Where one entry is.
struct Loc {
    segment: u64,
    offset: u64,
    len: u32,
    log_id: LogId,
}

struct Inner {
    dir: PathBuf,
    /// By the index of their first entry.
    segments: BTreeMap<u64, Segment>,
    /// The live entries (after `purged`), in index order.
    locs: VecDeque<Loc>,
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
}

/// An append waiting for its sync.
struct Job {
    files: Vec<Arc<File>>,
    done: IOFlushed<TypeConfig>,
}

fn corrupt(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn tail.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let purged: Option<LogId> = read_small(&dir.join("purged"))?;
        let vote: Option<Vote> = read_small(&dir.join("vote"))?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
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
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            segments: BTreeMap::new(),
            locs: VecDeque::new(),
            recent: VecDeque::new(),
            recent_bytes: 0,
            recent_limit: RECENT_BYTES,
            segment_limit: SEGMENT_BYTES,
            purged,
            vote,
            committed: None,
        };
        let mut next: Option<u64> = None;
        let mut torn = false;
        for (first, path) in names {
            if torn {
                std::fs::remove_file(&path)?;
                continue;
            }
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let (entries, good_len) = scan(&file)?;
            let file_len = file.metadata()?.len();
            if good_len < file_len {
                file.set_len(good_len)?;
                file.sync_all()?;
                torn = true;
            }
            for (offset, len, log_id) in entries {
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
                inner.locs.push_back(Loc {
                    segment: first,
                    offset,
                    len,
                    log_id,
                });
            }
            inner.segments.insert(
                first,
                Segment {
                    file: Arc::new(file),
                    len: good_len,
                },
            );
        }
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("kvr-raft-sync".into())
            .spawn(move || sync_loop(&rx))?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
            syncer: tx,
            appended: Arc::default(),
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

    /// The index of the last entry (or of the last purged one).
    pub fn last_index(&self) -> Option<u64> {
        let inner = self.lock();
        inner
            .locs
            .back()
            .map(|l| l.log_id.index())
            .or_else(|| inner.purged.as_ref().map(|p| p.index()))
    }
}

/// The last committed log id recorded in the log directory `dir`; unknown
/// (`None`) when never recorded or torn (see the module header).
pub fn read_committed_in(dir: &Path) -> io::Result<Option<LogId>> {
    let bytes = match std::fs::read(dir.join("committed")) {
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

/// Reads a segment's valid records: (offset, length, log id) each, and the
/// length of the valid prefix.
fn scan(file: &File) -> io::Result<(Vec<Found>, u64)> {
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut out = Vec::new();
    let mut offset = 0u64;
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
        if !read_full(&mut reader, &mut payload)? || crc32fast::hash(&payload) != crc {
            break;
        }
        let Ok(entry) = postcard::from_bytes::<Entry>(&payload) else {
            break;
        };
        out.push((offset + RECORD_HEADER as u64, len as u32, entry.log_id()));
        offset += (RECORD_HEADER + len) as u64;
    }
    Ok((out, offset))
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

fn read_small<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces `dir/name` with `value`, durably.
fn write_small<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    replace(dir, name, value, true)
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

fn sync_loop(rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
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
                Some(loc) => self.read_entry(loc),
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

    fn read_entry(&self, loc: &Loc) -> io::Result<Entry> {
        let seg = self
            .segments
            .get(&loc.segment)
            .ok_or_else(|| corrupt(format!("Raft log segment {} is missing", loc.segment)))?;
        let mut buf = vec![0u8; loc.len as usize];
        seg.file.read_exact_at(&mut buf, loc.offset)?;
        postcard::from_bytes(&buf).map_err(corrupt)
    }

    fn position(&self, index: u64) -> Option<usize> {
        let first = self.locs.front()?.log_id.index();
        let pos = usize::try_from(index.checked_sub(first)?).ok()?;
        (pos < self.locs.len()).then_some(pos)
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
        let Some(first) = inner.locs.front().map(|l| l.log_id.index()) else {
            return Ok(out);
        };
        let from = usize::try_from(start.saturating_sub(first)).unwrap_or(usize::MAX);
        for (pos, loc) in inner.locs.iter().enumerate().skip(from) {
            if !range.contains(&loc.log_id.index()) {
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
        let last = inner.locs.back().map(|l| l.log_id);
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
            let path = inner.dir.join("committed");
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
        {
            let mut inner = self.lock();
            // The records bound for one segment, written with one call
            // (a request's entries arrive together): the segment and the
            // offset they start at.
            let mut run: Vec<u8> = Vec::new();
            let mut run_at: Option<(u64, u64)> = None;
            let mut appended = 0u64;
            for entry in entries {
                let log_id = entry.log_id();
                let payload = postcard::to_allocvec(&entry).map_err(corrupt)?;
                let len = u32::try_from(payload.len())
                    .map_err(|_| corrupt("a Raft log entry over 4 GiB"))?;
                let bytes = RECORD_HEADER + payload.len();
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
                run.extend_from_slice(&len.to_le_bytes());
                run.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
                run.extend_from_slice(&payload);
                let offset = seg.len + RECORD_HEADER as u64;
                seg.len += bytes as u64;
                if !files.iter().any(|f| Arc::ptr_eq(f, &seg.file)) {
                    files.push(seg.file.clone());
                }
                inner.locs.push_back(Loc {
                    segment: first,
                    offset,
                    len,
                    log_id,
                });
                inner.remember(entry, bytes);
            }
            if let Some(at) = run_at {
                inner.write_run(at, &run)?;
            }
            self.appended.fetch_add(appended, Ordering::Relaxed);
        }
        self.syncer
            .send(Job {
                files,
                done: callback,
            })
            .map_err(|_| io::Error::other("the Raft log's sync thread has stopped"))
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> Result<(), io::Error> {
        let mut inner = self.lock();
        let keep = last.map_or(0, |l| l.index() + 1);
        let Some(pos) = inner.position(keep).or_else(|| {
            // Everything goes when the first live entry is after `keep`.
            inner
                .locs
                .front()
                .is_some_and(|l| l.log_id.index() > keep)
                .then_some(0)
        }) else {
            return Ok(());
        };
        let (segment, offset) = {
            let loc = &inner.locs[pos];
            (loc.segment, loc.offset - RECORD_HEADER as u64)
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
        while inner.locs.front().is_some_and(|l| l.log_id.index() <= upto) {
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
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => proptest::collection::vec(0usize..700, 1..8).prop_map(Step::Append),
            1 => any::<u8>().prop_map(Step::Truncate),
            1 => any::<u8>().prop_map(Step::Purge),
            1 => Just(Step::Reopen),
        ]
    }

    /// A log whose memory part holds a few entries, so that reads mix
    /// memory and files, and whose segments hold a few, so that appends
    /// span segments.
    fn small_log(dir: &Path) -> LogStore {
        let log = LogStore::open(dir).unwrap();
        let mut inner = log.lock();
        inner.recent_limit = 2_000;
        inner.segment_limit = 3_000;
        drop(inner);
        log
    }

    /// Appends, truncations and purges against a model of the log, and
    /// reopens (which read only files).
    async fn check(steps: Vec<Step>) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = small_log(dir.path());
        // The live entries, and the last index purged.
        let mut model: Vec<Entry> = Vec::new();
        let mut purged = 0u64;
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
                    log.append(entries, IOFlushed::noop()).await.unwrap();
                }
                Step::Truncate(f) if !model.is_empty() => {
                    // A new leader overwrites the tail.
                    let keep = model.len() * f as usize / 256;
                    let last = match keep {
                        0 => id(term, purged),
                        _ => model[keep - 1].log_id(),
                    };
                    model.truncate(keep);
                    log.truncate_after(Some(last)).await.unwrap();
                    term += 1;
                }
                Step::Purge(f) if !model.is_empty() => {
                    let upto = model.len() * f as usize / 256;
                    let log_id = model[upto].log_id();
                    model.drain(..=upto);
                    purged = log_id.index();
                    log.purge(log_id).await.unwrap();
                }
                Step::Reopen => {
                    drop(log);
                    log = small_log(dir.path());
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
