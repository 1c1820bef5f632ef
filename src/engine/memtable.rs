//! The memory table: the writes since the last flush, in key order.
//!
//! Every version of a key written into a table is kept (newest last), so a
//! reader at revision R sees the newest version at or below R however many
//! writes followed: a range stream reads a consistent snapshot while the
//! writer goes on. Versions are few in practice (a table lives seconds) and
//! all count towards the table's bytes, so memory stays bounded by the
//! budget whatever the write pattern.
//!
//! The table also holds the events of its writes (`history.rs`), in
//! revision order, with the history bounds as of its last write: a flush
//! writes the events with its last commit, and watchers read recent events
//! from here.
//!
//! **Key count.** A put of a key that no memory table holds does not look
//! the key up in redb (that lookup was a third of the writer's time under
//! random writes): the table keeps such keys as *unresolved*, and the
//! engine's count leaves them out. [`Memtable::absent_among`] resolves
//! them when someone asks for the count, once each; the flush, which
//! learns every key's presence from its inserts, settles the rest.

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use smallvec::SmallVec;

use super::history::Event;
use crate::idempotency::Record;
use crate::types::OP_OVERHEAD_BYTES;

/// Memory counted per idempotency record besides its key (the record, the
/// map's node).
const IDEMPOTENCY_RECORD_BYTES: usize = 160;
/// Memory counted per unresolved key besides the key itself.
const UNRESOLVED_KEY_BYTES: usize = 32;
/// Memory counted per key for its hash in [`Keys::hashes`].
const KEY_HASH_BYTES: usize = 16;

/// The table's keys with their versions, in key order (ranges, flushes),
/// and the set of their hashes: most point lookups miss the table (a GET
/// of a key written before it, the writer's check of a key it has not
/// seen), and a miss then costs one probe instead of a walk down the tree,
/// which compares keys behind pointers at every node: with 200k keys in
/// the live table that walk added 1.7-2 us to every GET of a 1M-key store
/// (in-process, 2.2 -> 3.8 us).
///
/// Keys of up to [`INLINE_KEY_BYTES`] and a key's first version live in the
/// tree's nodes themselves: a walk down the tree then compares keys without
/// following a pointer per key, and a put of a new key allocates nothing for
/// either.
#[derive(Debug, Default)]
struct Keys {
    tree: BTreeMap<KeyBuf, Versions>,
    hashes: HashSet<u64, KeyHasher>,
}

/// The hash of a key and of its hash in [`Keys::hashes`]: foldhash, seeded
/// per table, costs a fraction of std's SipHash, which was two hashes of 16
/// bytes in every GET and every write (a key and then its `u64`).
pub(super) type KeyHasher = foldhash::fast::RandomState;

/// Keys up to this long are stored inline in the table's tree nodes.
const INLINE_KEY_BYTES: usize = 24;

/// A key as the table's tree holds it.
type KeyBuf = SmallVec<[u8; INLINE_KEY_BYTES]>;

impl Keys {
    /// Adds a version of `key` (whose hash is `hash`); whether its hash is
    /// new to the set (what the set's memory count needs). The tree and the
    /// hashes change only here, together.
    fn insert(&mut self, hash: u64, key: Vec<u8>, version: Version) -> bool {
        self.tree
            .entry(if key.len() <= INLINE_KEY_BYTES {
                KeyBuf::from_slice(&key)
            } else {
                KeyBuf::from_vec(key)
            })
            .or_default()
            .0
            .push(version);
        self.hashes.insert(hash)
    }

    fn get(&self, hash: u64, key: &[u8]) -> Option<&Versions> {
        if self.hashes.contains(&hash) {
            self.tree.get(key)
        } else {
            None
        }
    }
}

/// Keys put while no memory table held them (see the module header), in
/// write order, and how many of the first ones were found absent from the
/// store: `absent[i]` among the first `i` (resolved so far: `absent.len() - 1`).
#[derive(Debug)]
struct Unresolved {
    keys: Vec<Vec<u8>>,
    absent: Vec<u64>,
}

/// How far a flush in parts (`flush.rs`) has written a frozen table into
/// the store, in durable commits that readers have moved to.
#[derive(Debug, Default)]
pub struct FlushedParts {
    /// The last key written (inclusive): the parts cover every key up to it.
    pub upto: Option<Vec<u8>>,
    /// Keys written.
    pub keys: usize,
    /// The change in the store's key count they made.
    pub delta: i64,
    /// The keys they wrote that were absent from the store before (put,
    /// or deleted with nothing to delete): what the store said of the
    /// table's unresolved keys before they were written. (A key put unseen
    /// and deleted in the same table is one of them; counting only the
    /// added keys took it for one the store held.)
    pub absent: HashSet<Vec<u8>>,
    /// The keys up to `upto` that the parts left to the last commit
    /// (`store::Store::write_part`), in key order.
    pub deferred: Vec<Vec<u8>>,
    /// Whether the row cache has been given the table's versions
    /// (`flush.rs`, before the first part).
    pub rows_refreshed: bool,
}

/// The history state after a table's last write: the oldest revision kept
/// and the bytes the kept events count (see `history.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryMark {
    pub oldest: u64,
    pub bytes: u64,
}

/// One write of a key: its value, or `None` for a delete, at a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub revision: u64,
    pub value: Option<Bytes>,
    /// A put's expiry, Unix milliseconds.
    pub expires_at_ms: Option<u64>,
}

impl Version {
    fn bytes(&self, key: &[u8]) -> usize {
        key.len() + self.value.as_ref().map_or(0, Bytes::len) + OP_OVERHEAD_BYTES
    }
}

/// The versions of one key, oldest first; never empty. Most keys have one.
#[derive(Debug, Default)]
struct Versions(SmallVec<[Version; 1]>);

impl Versions {
    /// The newest version at or below `at`.
    fn at(&self, at: u64) -> Option<&Version> {
        self.0.iter().rev().find(|v| v.revision <= at)
    }

    fn newest(&self) -> Option<&Version> {
        self.0.last()
    }
}

/// A set of revisions within `[first, last]`, one bit each.
#[derive(Debug)]
pub struct RevisionSet {
    first: u64,
    bits: Vec<u64>,
}

impl RevisionSet {
    fn new(first: u64, last: u64) -> RevisionSet {
        let span = last.saturating_sub(first).saturating_add(1);
        let words = usize::try_from(span.div_ceil(64)).unwrap_or(0);
        RevisionSet {
            first,
            bits: vec![0; words],
        }
    }

    fn slot(&self, revision: u64) -> Option<(usize, u64)> {
        let i = usize::try_from(revision.checked_sub(self.first)?).ok()?;
        (i / 64 < self.bits.len()).then_some((i / 64, 1 << (i % 64)))
    }

    fn insert(&mut self, revision: u64) {
        if let Some((word, bit)) = self.slot(revision) {
            self.bits[word] |= bit;
        }
    }

    pub fn contains(&self, revision: u64) -> bool {
        self.slot(revision)
            .is_some_and(|(word, bit)| self.bits[word] & bit != 0)
    }
}

/// One memory table. Written only by the engine's writer thread while it is
/// the live table; read by anyone; immutable once frozen.
#[derive(Debug)]
pub struct Memtable {
    map: RwLock<Keys>,
    /// Hashes the keys for [`Keys::hashes`].
    hasher: KeyHasher,
    bytes: AtomicUsize,
    /// The highest revision written into this table (0: none).
    last_revision: AtomicU64,
    /// When the first write went in.
    first_write: std::sync::OnceLock<Instant>,
    /// The events of the writes, in revision order.
    events: RwLock<Vec<Event>>,
    mark: std::sync::Mutex<Option<HistoryMark>>,
    /// The cluster state machine's marker for the state this table ends
    /// at (`store::cluster`): flushed with the table.
    applied: std::sync::Mutex<Option<Vec<u8>>>,
    /// The idempotency records the table's writes made: key → record.
    idempotency: RwLock<BTreeMap<String, Arc<Record>>>,
    unresolved: Mutex<Unresolved>,
    /// The change in key count of the table's writes, unresolved keys
    /// left out.
    known_delta: AtomicI64,
    /// Filled by replaying a log (flushed whole: a log of an earlier
    /// release decides deletes at replay, see `wal/record.rs`).
    replayed: std::sync::atomic::AtomicBool,
    /// A flush in parts under way.
    parts: Mutex<FlushedParts>,
}

/// `n` and a quarter more: the room a new table reserves for `n` writes.
fn with_headroom(n: usize) -> usize {
    n.saturating_add(n / 4)
}

/// Room reserved in a new table ([`Memtable::sized_like`]).
#[derive(Debug, Default, Clone, Copy)]
struct Capacity {
    events: usize,
    keys: usize,
    unresolved: usize,
}

impl Default for Memtable {
    fn default() -> Self {
        Memtable::new()
    }
}

impl Memtable {
    pub fn new() -> Memtable {
        Memtable::with_capacity(Capacity::default())
    }

    /// A table with room for a quarter more than `previous` held, or than
    /// `writes` writes if more: under a steady load tables are alike, and
    /// the writer then never stops to grow the events, the key hashes or
    /// the unresolved keys by doubling (in a 64 MiB table of random puts,
    /// doubling the events from 131,072 copied 11 MB into fresh pages: a
    /// 36 ms stall of every write, once per table). Room not used is
    /// address space: pages are touched as the table fills.
    pub fn sized_like(previous: &Memtable, writes: usize) -> Memtable {
        let room = |n: usize| with_headroom(n.max(writes));
        let keys = previous
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .hashes
            .len();
        let events = previous
            .events
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        Memtable::with_capacity(Capacity {
            events: room(events),
            keys: room(keys),
            unresolved: room(previous.unresolved().keys.len()),
        })
    }

    /// An empty table with room for `writes` writes and a quarter more
    /// (the first table of an engine; see [`Memtable::sized_like`]).
    pub fn with_room(writes: usize) -> Memtable {
        let n = with_headroom(writes);
        Memtable::with_capacity(Capacity {
            events: n,
            keys: n,
            unresolved: n,
        })
    }

    fn with_capacity(capacity: Capacity) -> Memtable {
        Memtable {
            map: RwLock::new(Keys {
                tree: BTreeMap::new(),
                hashes: HashSet::with_capacity_and_hasher(capacity.keys, KeyHasher::default()),
            }),
            hasher: KeyHasher::default(),
            bytes: AtomicUsize::new(0),
            last_revision: AtomicU64::new(0),
            first_write: std::sync::OnceLock::new(),
            events: RwLock::new(Vec::with_capacity(capacity.events)),
            mark: std::sync::Mutex::new(None),
            applied: std::sync::Mutex::new(None),
            idempotency: RwLock::new(BTreeMap::new()),
            unresolved: Mutex::new(Unresolved {
                keys: Vec::with_capacity(capacity.unresolved),
                absent: vec![0],
            }),
            known_delta: AtomicI64::new(0),
            replayed: std::sync::atomic::AtomicBool::new(false),
            parts: Mutex::new(FlushedParts::default()),
        }
    }

    /// Marks the table as filled by a log replay.
    pub fn set_replayed(&self) {
        self.replayed.store(true, Ordering::Release);
    }

    /// Whether a log replay filled the table.
    pub fn replayed(&self) -> bool {
        self.replayed.load(Ordering::Acquire)
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .tree
            .len()
    }

    /// Runs `f` on the progress of a flush in parts.
    pub fn with_parts<R>(&self, f: impl FnOnce(&mut FlushedParts) -> R) -> R {
        f(&mut self.parts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The change in the store's key count that a flush in parts has made
    /// so far (counted in the store's keys and in this table's alike).
    pub fn flushed_delta(&self) -> i64 {
        self.with_parts(|p| p.delta)
    }

    fn unresolved(&self) -> std::sync::MutexGuard<'_, Unresolved> {
        self.unresolved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many unresolved keys the table holds (see the module header).
    pub fn unresolved_len(&self) -> usize {
        self.unresolved().keys.len()
    }

    /// How many of them no [`Memtable::absent_among`] has looked up yet.
    pub fn unresolved_pending(&self) -> usize {
        let u = self.unresolved();
        u.keys.len() - (u.absent.len() - 1)
    }

    /// The change in key count of the table's writes, unresolved keys left
    /// out.
    pub fn known_delta(&self) -> i64 {
        self.known_delta.load(Ordering::Acquire)
    }

    /// How many of the first `n` unresolved keys are absent from `base`,
    /// the store under this table (any commit before this table's flush:
    /// those keys were in no memory table, so no earlier flush touched
    /// them). Each key is looked up once, in key order, without holding the
    /// lock the writer takes to add keys.
    pub fn absent_among(
        &self,
        n: usize,
        base: &crate::store::TableReader,
    ) -> crate::error::Result<u64> {
        let (done, todo) = {
            let u = self.unresolved();
            let done = u.absent.len() - 1;
            if n <= done {
                return Ok(u.absent[n]);
            }
            (done, u.keys[done..n.min(u.keys.len())].to_vec())
        };
        let mut order: Vec<usize> = (0..todo.len()).collect();
        order.sort_unstable_by(|&a, &b| todo[a].cmp(&todo[b]));
        let mut found = vec![false; todo.len()];
        // Keys a flush in parts has written are judged by what the store
        // held before (`base` may be a later part); the rest are untouched.
        // Read after `base` was taken: parts are recorded before readers
        // move to them, so `base` holds no part newer than this.
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        for i in order {
            let key = &todo[i];
            found[i] = match &parts.upto {
                Some(upto) if key <= upto => parts.absent.contains(key),
                _ => !base.contains(key)?,
            };
        }
        drop(parts);
        let mut u = self.unresolved();
        // A call meanwhile may have resolved some of them (alike).
        let have = u.absent.len() - 1;
        let mut count = u.absent[have];
        for &absent in found.iter().skip(have - done) {
            count += u64::from(absent);
            u.absent.push(count);
        }
        Ok(u.absent.get(n).copied().unwrap_or(count))
    }

    /// The record of an idempotency key made by this table's writes.
    pub fn idempotency(&self, key: &str) -> Option<Arc<Record>> {
        let map = self.idempotency.read().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    /// Every record of the table, encoded, in key order (what a flush
    /// writes), with the newest record time (0: none).
    pub fn idempotency_records(&self) -> (Vec<(String, Vec<u8>)>, u64) {
        let map = self.idempotency.read().unwrap_or_else(|e| e.into_inner());
        let newest = map.values().map(|r| r.time_ms).max().unwrap_or(0);
        let records = map.iter().map(|(k, r)| (k.clone(), r.encode())).collect();
        (records, newest)
    }

    /// Adds records made by a write group (or replayed from the log),
    /// keeping the newest of each key.
    pub fn add_idempotency(&self, records: Vec<(String, Arc<Record>)>) {
        if records.is_empty() {
            return;
        }
        let added: usize = records
            .iter()
            .map(|(k, _)| k.len() + IDEMPOTENCY_RECORD_BYTES)
            .sum();
        let mut map = self.idempotency.write().unwrap_or_else(|e| e.into_inner());
        for (key, record) in records {
            // A key's records are made at increasing times; a replay may
            // hand them over out of order: the newest stays.
            match map.get(&key) {
                Some(old) if old.time_ms > record.time_ms => {}
                _ => {
                    map.insert(key, record);
                }
            }
        }
        let _ = self.first_write.set(Instant::now());
        self.bytes.fetch_add(added, Ordering::AcqRel);
    }

    /// The history state after the table's last write group; `None` when
    /// no group went in (a table holding only replayed idempotency records).
    pub fn mark(&self) -> Option<HistoryMark> {
        *self.mark.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events from revision `from` on, at most `max` (appended to `out`).
    pub fn events_from(&self, from: u64, max: usize, out: &mut Vec<Event>) {
        let events = self.events.read().unwrap_or_else(|e| e.into_inner());
        let start = events.partition_point(|e| e.revision < from);
        out.extend(events[start..].iter().take(max).cloned());
    }

    /// The event of one revision, if the table holds it.
    pub fn event(&self, revision: u64) -> Option<Event> {
        let events = self.events.read().unwrap_or_else(|e| e.into_inner());
        let i = events.partition_point(|e| e.revision < revision);
        events.get(i).filter(|e| e.revision == revision).cloned()
    }

    /// Runs `f` over the table's events.
    pub fn with_events<R>(&self, f: impl FnOnce(&[Event]) -> R) -> R {
        let events = self.events.read().unwrap_or_else(|e| e.into_inner());
        f(&events)
    }

    /// Memory held by the table's keys and values, as counted for the budget.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// The highest revision in the table (0: empty).
    pub fn last_revision(&self) -> u64 {
        self.last_revision.load(Ordering::Acquire)
    }

    /// Whether the table holds nothing to flush: no version, no marker,
    /// no idempotency record.
    pub fn is_empty(&self) -> bool {
        self.last_revision() == 0
            && self.applied().is_none()
            && self
                .idempotency
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }

    /// Records the state machine's marker for the state after the last
    /// group inserted (see the field).
    pub fn set_applied(&self, marker: Vec<u8>) {
        let _ = self.first_write.set(Instant::now());
        *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = Some(marker);
    }

    /// The marker set last, if any.
    pub fn applied(&self) -> Option<Vec<u8>> {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the first write went into the table.
    pub fn first_write(&self) -> Option<Instant> {
        self.first_write.get().copied()
    }

    /// The newest version of `key` at or below revision `at`: `None` when
    /// the table does not know the key at that revision (look further).
    /// A small value is copied, not shared (`engine::handed_out`).
    pub fn get(&self, key: &[u8], at: u64) -> Option<Version> {
        let hash = self.hasher.hash_one(key);
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(hash, key).and_then(|v| v.at(at)).map(|v| Version {
            revision: v.revision,
            value: v.value.as_ref().map(super::handed_out),
            expires_at_ms: v.expires_at_ms,
        })
    }

    /// Whether the table decides `key` at revision `at` (a version or a
    /// delete): [`Memtable::get`] without the copy.
    pub fn holds(&self, key: &[u8], at: u64) -> bool {
        let hash = self.hasher.hash_one(key);
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(hash, key).and_then(|v| v.at(at)).is_some()
    }

    /// The revision and expiry of the newest version of `key` in the
    /// table, with whether the key is present there: `Some(None)` for a
    /// delete.
    pub fn newest_state(&self, key: &[u8]) -> Option<Option<(u64, Option<u64>)>> {
        let hash = self.hasher.hash_one(key);
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let newest = map.get(hash, key).and_then(Versions::newest)?;
        Some(
            newest
                .value
                .as_ref()
                .map(|_| (newest.revision, newest.expires_at_ms)),
        )
    }

    /// Adds the versions and events of one write group, the history state
    /// after it, its unresolved keys and its known change in key count.
    /// `publish` runs while the table is still locked, so readers see the
    /// group and the revision it sets together, or neither.
    pub fn insert(
        &self,
        mut versions: Vec<(Vec<u8>, Version)>,
        events: Vec<Event>,
        mark: HistoryMark,
        (unresolved, known_delta): (Vec<Vec<u8>>, i64),
        publish: impl FnOnce(),
    ) {
        let mut added = events
            .iter()
            .map(|e| e.key.len() + OP_OVERHEAD_BYTES)
            .sum::<usize>()
            + unresolved
                .iter()
                .map(|k| k.len() + UNRESOLVED_KEY_BYTES)
                .sum::<usize>();
        let mut last = 0;
        // In key order (a key's versions in revision order): a walk down
        // the tree then finds the nodes the last one left in the CPU's
        // cache. Random keys cost a cache miss per level otherwise; a
        // replayed group of 65,536 puts spent most of its time there.
        versions.sort_unstable_by(|(a, va), (b, vb)| a.cmp(b).then(va.revision.cmp(&vb.revision)));
        // Hashed before the write lock, so readers wait less.
        let hashes: Vec<u64> = versions
            .iter()
            .map(|(key, _)| self.hasher.hash_one(key.as_slice()))
            .collect();
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        self.events
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(events);
        *self.mark.lock().unwrap_or_else(|e| e.into_inner()) = Some(mark);
        for ((key, version), hash) in versions.into_iter().zip(hashes) {
            added += version.bytes(&key);
            last = last.max(version.revision);
            if map.insert(hash, key, version) {
                added += KEY_HASH_BYTES;
            }
        }
        if last > 0 {
            let _ = self.first_write.set(Instant::now());
            self.last_revision.fetch_max(last, Ordering::AcqRel);
        }
        if !unresolved.is_empty() {
            self.unresolved().keys.extend(unresolved);
        }
        self.known_delta.fetch_add(known_delta, Ordering::AcqRel);
        self.bytes.fetch_add(added, Ordering::AcqRel);
        publish();
    }

    /// Runs `f` while holding the table's read lock: values the writer
    /// publishes inside [`Memtable::insert`] are then read together.
    pub fn while_locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let _map = self.map.read().unwrap_or_else(|e| e.into_inner());
        f()
    }

    /// Up to `n` keys after `from` (exclusive) within `[lower, upper)`, each
    /// with its newest version at or below `at` (keys with none are
    /// skipped), in key order or reversed. Paging keeps the lock short.
    pub fn page(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        at: u64,
        n: usize,
        out: &mut Vec<(Vec<u8>, Version)>,
    ) {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let range = map.tree.range::<[u8], _>((from, to));
        let pick = |(k, v): (&KeyBuf, &Versions)| v.at(at).map(|v| (k.to_vec(), v.clone()));
        if reverse {
            out.extend(range.rev().filter_map(pick).take(n));
        } else {
            out.extend(range.filter_map(pick).take(n));
        }
    }

    /// Runs `f` over every version of every key.
    pub fn with_all(&self, mut f: impl FnMut(&[u8], &Version)) {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        for (k, versions) in map.tree.iter() {
            for v in &versions.0 {
                f(k, v);
            }
        }
    }

    /// The revisions of the table's puts that are their key's newest
    /// version here: what a flush writes to `kv`, so their events keep no
    /// copy of the value. One pass over the keys in order, instead of a
    /// lookup of each event's key (8 % of a flush's time under random puts).
    pub fn newest_puts(&self) -> RevisionSet {
        // The span of the events, the only revisions asked about (none
        // kept: `--history 0`, or a table of replayed records only).
        let span = {
            let events = self.events.read().unwrap_or_else(|e| e.into_inner());
            events
                .first()
                .zip(events.last())
                .map(|(a, b)| (a.revision, b.revision))
        };
        let Some((first, last)) = span else {
            return RevisionSet::new(0, 0);
        };
        let mut set = RevisionSet::new(first, last);
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        for versions in map.tree.values() {
            if let Some(v) = versions.newest().filter(|v| v.value.is_some()) {
                set.insert(v.revision);
            }
        }
        set
    }

    /// Runs `f` over the newest versions of the table's keys in `first`
    /// (in key order, up to `after`), then of every key after `after` (all
    /// with `None`), in key order: what a flush writes. For a frozen table
    /// (it holds the read lock meanwhile).
    pub fn with_newest<R>(
        &self,
        first: &[Vec<u8>],
        after: Option<&[u8]>,
        f: impl for<'a> FnOnce(&mut dyn Iterator<Item = (&'a [u8], &'a Version)>) -> R,
    ) -> R {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut iter = first
            .iter()
            .filter_map(|k| map.tree.get_key_value(k.as_slice()))
            .chain(map.tree.range::<[u8], _>((from, Bound::Unbounded)))
            .filter_map(|(k, v)| v.newest().map(|v| (k.as_slice(), v)));
        f(&mut iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(rev: u64, v: &str) -> Version {
        Version {
            revision: rev,
            value: Some(Bytes::from(v.to_string())),
            expires_at_ms: None,
        }
    }

    impl Memtable {
        fn capacities(&self) -> (usize, usize, usize) {
            (
                self.events.read().unwrap().capacity(),
                self.map.read().unwrap().hashes.capacity(),
                self.unresolved().keys.capacity(),
            )
        }
    }

    /// Puts `n` keys from `from` in groups of 100, each with its event and
    /// as an unresolved key, as the writer adds random puts.
    fn fill(t: &Memtable, from: u64, n: u64) {
        for group in (from..from + n).collect::<Vec<_>>().chunks(100) {
            let key = |i: &u64| format!("key:{i:012}").into_bytes();
            t.insert(
                group.iter().map(|i| (key(i), put(*i, "v"))).collect(),
                group
                    .iter()
                    .map(|i| Event {
                        revision: *i,
                        kind: super::super::history::EventKind::Put,
                        key: key(i),
                        value: Bytes::from_static(b"v"),
                        expires_at_ms: None,
                        batch_end: true,
                    })
                    .collect(),
                HistoryMark::default(),
                (group.iter().map(key).collect(), 0),
                || {},
            );
        }
    }

    #[test]
    fn a_table_sized_like_the_last_fills_without_growing() {
        let first = Memtable::new();
        fill(&first, 1, 10_000);
        let next = Memtable::sized_like(&first, 0);
        let reserved = next.capacities();
        assert!(reserved.0 >= 12_500 && reserved.1 >= 12_500 && reserved.2 >= 12_500);
        // As many writes again, and a fifth more: no vector or set moved.
        fill(&next, 10_001, 12_000);
        assert_eq!(next.capacities(), reserved);
        assert_eq!(next.unresolved_len(), 12_000);
        assert_eq!(
            next.get(b"key:000000022000", u64::MAX),
            Some(put(22_000, "v"))
        );
        // An empty table reserves nothing; the floor is kept.
        assert_eq!(
            Memtable::sized_like(&Memtable::new(), 0).capacities(),
            (0, 0, 0)
        );
        let first_of_an_engine = Memtable::with_room(20_000).capacities();
        assert!(first_of_an_engine.0 >= 25_000 && first_of_an_engine.1 >= 25_000);
        let floor = Memtable::sized_like(&first, 20_000).capacities();
        assert!(floor.0 >= 25_000 && floor.1 >= 25_000 && floor.2 >= 25_000);
    }

    #[test]
    fn readers_see_the_newest_version_at_their_revision() {
        let t = Memtable::new();
        t.insert(
            vec![(b"a".to_vec(), put(1, "one"))],
            Vec::new(),
            HistoryMark::default(),
            (Vec::new(), 0),
            || {},
        );
        t.insert(
            vec![
                (b"a".to_vec(), put(2, "two")),
                (
                    b"a".to_vec(),
                    Version {
                        revision: 3,
                        value: None,
                        expires_at_ms: None,
                    },
                ),
            ],
            Vec::new(),
            HistoryMark::default(),
            (Vec::new(), 0),
            || {},
        );
        assert_eq!(t.get(b"a", 0), None);
        assert_eq!(t.get(b"a", 1), Some(put(1, "one")));
        assert_eq!(t.get(b"a", 2), Some(put(2, "two")));
        assert_eq!(t.get(b"a", 9).map(|v| v.value), Some(None));
        assert_eq!(t.newest_state(b"a"), Some(None));
        assert_eq!(t.newest_state(b"b"), None);
        assert_eq!(t.last_revision(), 3);
    }

    #[test]
    fn newest_puts_are_the_newest_versions_that_are_puts() {
        let t = Memtable::new();
        let delete = |revision| Version {
            revision,
            value: None,
            expires_at_ms: None,
        };
        let event = |revision: u64, key: &[u8]| Event {
            revision,
            kind: super::super::history::EventKind::Put,
            key: key.to_vec(),
            value: Bytes::new(),
            expires_at_ms: None,
            batch_end: true,
        };
        // Revisions 5..=9 (more than 64 apart below, to cross a word).
        t.insert(
            vec![
                (b"a".to_vec(), put(5, "a1")),
                (b"b".to_vec(), put(6, "b")),
                (b"a".to_vec(), put(7, "a2")),
                (b"c".to_vec(), put(8, "c")),
                (b"c".to_vec(), delete(9)),
            ],
            (5..=9).map(|r| event(r, b"x")).collect(),
            HistoryMark::default(),
            (Vec::new(), 0),
            || {},
        );
        t.insert(
            vec![(
                b"a long key that is not stored inline".to_vec(),
                put(80, "d"),
            )],
            vec![event(80, b"d")],
            HistoryMark::default(),
            (Vec::new(), 0),
            || {},
        );
        let set = t.newest_puts();
        let newest: Vec<u64> = (0..100).filter(|r| set.contains(*r)).collect();
        assert_eq!(newest, vec![6, 7, 80]);
        assert_eq!(
            t.get(b"a long key that is not stored inline", 80),
            Some(put(80, "d"))
        );
        assert!(!Memtable::new().newest_puts().contains(0));
    }

    #[test]
    fn pages_skip_keys_newer_than_the_reader() {
        let t = Memtable::new();
        t.insert(
            vec![
                (b"a".to_vec(), put(1, "a")),
                (b"b".to_vec(), put(2, "b")),
                (b"c".to_vec(), put(3, "c")),
            ],
            Vec::new(),
            HistoryMark::default(),
            (Vec::new(), 0),
            || {},
        );
        let mut out = Vec::new();
        t.page(Bound::Unbounded, Bound::Unbounded, false, 2, 10, &mut out);
        let keys: Vec<_> = out.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        out.clear();
        t.page(
            Bound::Excluded(b"a"),
            Bound::Unbounded,
            true,
            9,
            1,
            &mut out,
        );
        assert_eq!(out[0].0, b"c".to_vec());
    }
}
