//! The row cache: the records a GET last read from the file, so that a
//! repeated GET of a key no memory table holds skips the B-tree descent
//! (four page lookups in redb's page cache for 1M keys, each a lock, a hash
//! probe and usually a CPU cache miss, then a binary search per page).
//! Like RocksDB's row cache, it holds rows, not pages; a key's absence is
//! cached too. Its size is bounded in bytes and it evicts by S3-FIFO
//! (`quick_cache`), so a scan of cold keys does not flush the hot ones.
//! Once full, it caches every miss only while it earns that (see
//! [`ADMIT_ALL_HIT_RATE_DIVISOR`]).
//!
//! **Why it is exact.** A key's entry is consulted only when no memory
//! table of the reader's view holds the key, and then it must equal what
//! the current commit (`Tables::base`) holds for the key. That holds
//! because:
//! - entries are inserted by [`super::Engine::get`] (and its warm-up,
//!   [`super::Engine::warm_rows`], for keys no memory table holds) under
//!   the tables' read lock, from the base of that view, so the base
//!   cannot move meanwhile;
//! - a flush changes the file only for the keys of the frozen table it
//!   writes, and gives their entries the records it is about to write
//!   *before* its first commit, while the table is still in every reader's
//!   view: no reader consults or inserts an entry for such a key until
//!   readers move past the table, and by then the base holds those
//!   records;
//! - every other change of the base (a snapshot installed in cluster mode,
//!   a reopen after a failed flush) clears the cache under the tables'
//!   write lock.

use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;

use super::{COPIED_VALUE, Got, Version, handed_out};

/// Bytes an entry counts besides its key and value: the cache's slot, the
/// value's shared header, allocator rounding (1M entries of 16-byte keys
/// and 100-byte values took 265 MB of RSS with boxed keys, 128 bytes each
/// over key and value; with keys in the entries, 24 MB more).
const ENTRY_OVERHEAD: u64 = 152;
/// [`ENTRY_OVERHEAD`] of an entry whose value is never shared (up to
/// [`COPIED_VALUE`] bytes, or none): no shared header (32 bytes with the
/// allocator's rounding; the RSS after the warm-up of 1M 100-byte values
/// fell from 477 to 450 MB when they stopped being shared).
const UNSHARED_ENTRY_OVERHEAD: u64 = ENTRY_OVERHEAD - 32;
/// Typical entry, for sizing the cache's table up front: a 16-byte key and a
/// 100-byte value.
const TYPICAL_ENTRY: u64 = 16 + 100 + UNSHARED_ENTRY_OVERHEAD;

/// Shards of the cache, each behind its own lock. A shard's table grows by
/// doubling, under its lock: with the default (4 per core) a shard of a
/// 10M-key store held a million entries, and each doubling stalled the
/// GETs of that shard for tens of milliseconds (p99 49 ms against 2 ms).
/// 64 or 1,024 made no difference to GETs otherwise.
const SHARDS: usize = 64;

/// Lookups per window over which the hit rate is judged.
const WINDOW: u64 = 1 << 14;
/// Lookups a thread counts before adding them to the shared counters.
const LOCAL_BATCH: u64 = 1 << 10;

thread_local! {
    /// This thread's lookups and hits not yet added to the shared counters
    /// (of whichever cache it used: a process has one server).
    static LOCAL: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}
/// A full cache whose hit rate over the last window was below 1 in this
/// many caches only one miss in [`SAMPLED_ADMISSION`]. Caching a miss into a
/// full cache costs an eviction and an allocation (about as much as the
/// B-tree walk it saves later), so with uniform keys over a store eight
/// times the cache (1 hit in 8) caching every miss made GETs 15 % slower
/// than no cache (81k/s against 96k/s, 10M keys). The sample keeps the
/// contents moving, so a hot set that forms later is found.
const ADMIT_ALL_HIT_RATE_DIVISOR: u64 = 3;
const SAMPLED_ADMISSION: u64 = 16;

/// Longest key held in a cache entry itself: with its length and the
/// variant's tag, as large as a boxed key's pointer and length plus the
/// tag (24 bytes). Entries still take more memory than with boxed keys
/// (24 MB more for 1M, [`ENTRY_OVERHEAD`]; with 30 bytes inline, 34 MB).
/// The cache holds about a tenth fewer entries per byte of its budget
/// for a quarter less time per lookup.
const INLINE_KEY: usize = 22;
const _: () = assert!(std::mem::size_of::<RowKey>() == 24);

/// A cached key: up to [`INLINE_KEY`] bytes inside the entry, so that a
/// lookup compares it where the entry is (a boxed key's bytes are one more
/// memory access, usually a CPU cache miss: over a quarter of a GET's time
/// in the cache went to comparing keys), longer ones boxed. It hashes and compares
/// as its bytes do, which lookups by `&[u8]` rely on.
#[derive(Clone)]
enum RowKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Boxed(Box<[u8]>),
}

impl RowKey {
    fn new(key: &[u8]) -> RowKey {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY => {
                let mut bytes = [0; INLINE_KEY];
                bytes[..key.len()].copy_from_slice(key);
                RowKey::Inline { len, bytes }
            }
            _ => RowKey::Boxed(key.into()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            RowKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            RowKey::Boxed(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for RowKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for RowKey {
    fn eq(&self, other: &RowKey) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for RowKey {}

impl std::hash::Hash for RowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

/// A cached record (`None`: the key is known absent). Every hit clones it
/// (`quick_cache` hands out clones), through [`handed_out`]: a small value
/// is copied, so an entry's small value is never shared and needs no
/// reference count at all.
struct Row(Option<Got>);

impl Row {
    /// What a hit hands out, or what the cache keeps of `found`.
    fn copy_of(found: Option<&Got>) -> Row {
        Row(found.map(|g| Got {
            value: handed_out(&g.value),
            revision: g.revision,
            expires_at_ms: g.expires_at_ms,
        }))
    }
}

impl Clone for Row {
    fn clone(&self) -> Row {
        Row::copy_of(self.0.as_ref())
    }
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<RowKey, Row> for ByBytes {
    fn weight(&self, key: &RowKey, val: &Row) -> u64 {
        let value = val.0.as_ref().map_or(0, |g| g.value.len());
        let overhead = if value <= COPIED_VALUE {
            UNSHARED_ENTRY_OVERHEAD
        } else {
            ENTRY_OVERHEAD
        };
        (key.as_slice().len() + value) as u64 + overhead
    }
}

/// See the module header. A budget of 0 disables it.
pub struct RowCache {
    cache: Option<Cache<RowKey, Row, ByBytes>>,
    /// Longest value cached: an eighth of the budget (more would evict
    /// many entries for one).
    max_value: usize,
    /// Its budget in bytes.
    capacity: u64,
    /// Lookups and hits so far, for [`RowCache::judge`].
    lookups: AtomicU64,
    hits: AtomicU64,
    /// `hits` when the current window of lookups began.
    window_hits: AtomicU64,
    /// Whether every miss is cached, or one in [`SAMPLED_ADMISSION`].
    admit_all: AtomicBool,
    /// Entries the warm-up made.
    warmed: AtomicU64,
}

impl RowCache {
    pub fn new(bytes: usize) -> RowCache {
        let bytes = bytes as u64;
        let items = usize::try_from(bytes / TYPICAL_ENTRY).unwrap_or(usize::MAX);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(items)
            .weight_capacity(bytes)
            .shards(SHARDS)
            .build();
        let cache = match options {
            Ok(options) if bytes >= TYPICAL_ENTRY * 64 => Some(Cache::with_options(
                options,
                ByBytes,
                Default::default(),
                Default::default(),
            )),
            _ => None,
        };
        RowCache {
            cache,
            max_value: usize::try_from(bytes / 8).unwrap_or(usize::MAX),
            capacity: bytes,
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            window_hits: AtomicU64::new(0),
            admit_all: AtomicBool::new(true),
            warmed: AtomicU64::new(0),
        }
    }

    /// The cached record of `key`: `Some(None)` if it is known absent,
    /// `None` if not cached.
    pub fn get(&self, key: &[u8]) -> Option<Option<Got>> {
        let cache = self.cache.as_ref()?;
        let found = cache.get(key).map(|row| row.0);
        // Counted per thread and added up every LOCAL_BATCH lookups: shared
        // counters, bumped by every GET on both cores, cost 6 % of GETs.
        let batch = LOCAL.with(|local| {
            let (lookups, hits) = local.get();
            let counts = (lookups + 1, hits + u64::from(found.is_some()));
            if counts.0 == LOCAL_BATCH {
                local.set((0, 0));
                Some(counts)
            } else {
                local.set(counts);
                None
            }
        });
        if let Some((lookups, hits)) = batch {
            self.hits.fetch_add(hits, Ordering::Relaxed);
            let before = self.lookups.fetch_add(lookups, Ordering::Relaxed);
            if (before + lookups) / WINDOW != before / WINDOW {
                self.judge(cache);
            }
        }
        found
    }

    /// At the end of a window of lookups: whether every miss should be
    /// cached from now on (see [`SAMPLED_ADMISSION`]).
    fn judge(&self, cache: &Cache<RowKey, Row, ByBytes>) {
        let hits = self.hits.load(Ordering::Relaxed);
        let window = hits.saturating_sub(self.window_hits.swap(hits, Ordering::Relaxed));
        let room = cache.weight() < self.capacity / 10 * 9;
        let worth_it = window * ADMIT_ALL_HIT_RATE_DIVISOR >= WINDOW;
        self.admit_all.store(room || worth_it, Ordering::Relaxed);
    }

    /// Caches what the current base holds for `key` (`found` owns its
    /// value's bytes exactly, so the entry holds nothing more), unless the
    /// value is over `max_value` or the miss is not admitted.
    pub fn insert(&self, key: &[u8], found: Option<&Got>) {
        let Some(cache) = &self.cache else { return };
        if found.is_some_and(|g| g.value.len() > self.max_value) {
            return;
        }
        if !self.admit_all.load(Ordering::Relaxed)
            && !LOCAL.with(|local| local.get().0.is_multiple_of(SAMPLED_ADMISSION))
        {
            return;
        }
        cache.insert(RowKey::new(key), Row::copy_of(found));
    }

    /// Whether the cache is on and less than nine tenths full: room for
    /// the warm-up ([`super::Engine::warm_rows`]), which never evicts.
    pub fn has_room(&self) -> bool {
        self.cache
            .as_ref()
            .is_some_and(|c| c.weight() < self.capacity / 10 * 9)
    }

    /// Caches `found`, what the current base holds for `key`, for the
    /// warm-up: only a key not cached yet (a GET may have cached it
    /// meanwhile, from the same base), and no value over `max_value`.
    pub fn warm(&self, key: &[u8], found: Got) {
        let Some(cache) = &self.cache else { return };
        // `contains_key`, not `peek`: that clones the entry (a copy).
        if found.value.len() > self.max_value || cache.contains_key(key) {
            return;
        }
        // A value made from a vector becomes a shared buffer at its first
        // clone (an allocation): here, once, not in the first GET of it.
        // A small one is copied by every hit, never shared ([`handed_out`]).
        if found.value.len() > COPIED_VALUE {
            drop(found.value.clone());
        }
        cache.insert(RowKey::new(key), Row(Some(found)));
        self.warmed.fetch_add(1, Ordering::Relaxed);
    }

    /// Before a flush writes `version` as `key`'s record: a cached key's
    /// entry takes the new record (a hot key stays cached across flushes),
    /// and no entry is made for a key not cached. The value is copied: a
    /// table's value may be a slice of a larger request body.
    pub fn refresh(&self, key: &[u8], version: &Version) {
        let Some(cache) = &self.cache else { return };
        if !cache.contains_key(key) {
            return;
        }
        let found = version.value.as_ref().map(|value| Got {
            value: Bytes::copy_from_slice(value),
            revision: version.revision,
            expires_at_ms: version.expires_at_ms,
        });
        // Refused (too heavy for the cache): the old entry must not stay.
        if cache.replace(RowKey::new(key), Row(found), true).is_err() {
            cache.remove(key);
        }
    }

    /// Prometheus lines: lookups, hits (both counted by each thread in
    /// batches of [`LOCAL_BATCH`], so up to that many late per thread) and
    /// bytes held.
    pub fn metrics(&self) -> String {
        let bytes = self.cache.as_ref().map_or(0, |c| c.weight());
        format!(
            "# HELP kvr_row_cache_lookups_total GETs that looked in the row cache (no memory table held the key).\n\
             # TYPE kvr_row_cache_lookups_total counter\nkvr_row_cache_lookups_total {}\n\
             # HELP kvr_row_cache_hits_total Row cache lookups answered from it.\n\
             # TYPE kvr_row_cache_hits_total counter\nkvr_row_cache_hits_total {}\n\
             # HELP kvr_row_cache_bytes Bytes the row cache holds (of its share of --cache-mib).\n\
             # TYPE kvr_row_cache_bytes gauge\nkvr_row_cache_bytes {bytes}\n\
             # HELP kvr_row_cache_warmed_total Entries the row cache's warm-up made (after the first GET that read the file).\n\
             # TYPE kvr_row_cache_warmed_total counter\nkvr_row_cache_warmed_total {}\n",
            self.lookups.load(Ordering::Relaxed),
            self.hits.load(Ordering::Relaxed),
            self.warmed.load(Ordering::Relaxed),
        )
    }

    /// Whether it holds no entry (or is off).
    pub fn is_empty(&self) -> bool {
        self.cache.as_ref().is_none_or(|c| c.is_empty())
    }

    /// Drops every entry (the base changed as a whole).
    pub fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }
}

impl std::fmt::Debug for RowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowCache")
            .field("bytes", &self.cache.as_ref().map_or(0, |c| c.weight()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn got(value: &[u8]) -> Got {
        Got {
            value: Bytes::copy_from_slice(value),
            revision: 7,
            expires_at_ms: None,
        }
    }

    /// Keys held inline (up to 22 bytes) and boxed (longer) are found by
    /// their bytes, and only by them: a key's prefix or extension is
    /// another key.
    #[test]
    fn inline_and_boxed_keys_are_found_by_their_bytes_alone() {
        let rows = RowCache::new(1 << 20);
        let keys: Vec<Vec<u8>> = [0, 1, 21, 22, 23, 4096]
            .iter()
            .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
            .collect();
        for (i, key) in keys.iter().enumerate() {
            rows.insert(key, Some(&got(format!("v{i}").as_bytes())));
        }
        for (i, key) in keys.iter().enumerate() {
            let found = rows.get(key).expect("cached").expect("present");
            assert_eq!(found.value, format!("v{i}").as_bytes());
            let mut longer = key.clone();
            longer.push(0xff);
            assert!(rows.get(&longer).is_none(), "{}", key.len());
        }
        rows.insert(b"gone", None);
        assert_eq!(rows.get(b"gone"), Some(None));
        assert!(rows.get(b"gon").is_none());
    }

    /// A hit on a small value hands out a copy of its own (no count shared
    /// with the entry to bump); a large value is shared, not copied. Both
    /// through `insert`, `warm` and `refresh`, and the entry stays intact
    /// after the copies handed out are dropped.
    #[test]
    fn small_values_are_copied_out_and_large_ones_shared() {
        let rows = RowCache::new(1 << 24);
        let small = vec![b's'; COPIED_VALUE];
        let large = vec![b'l'; COPIED_VALUE + 1];
        rows.insert(b"small", Some(&got(&small)));
        rows.insert(b"large", Some(&got(&large)));
        rows.warm(b"warm-small", got(&small));
        rows.warm(b"warm-large", got(&large));
        rows.insert(b"refreshed", Some(&got(b"old")));
        rows.insert(b"refreshed-small", Some(&got(b"old")));
        rows.refresh(
            b"refreshed-small",
            &Version {
                revision: 9,
                value: Some(Bytes::from(small.clone())),
                expires_at_ms: None,
            },
        );
        rows.refresh(
            b"refreshed",
            &Version {
                revision: 9,
                value: Some(Bytes::from(large.clone())),
                expires_at_ms: Some(5),
            },
        );
        for (key, value, shared) in [
            (&b"small"[..], &small, false),
            (b"warm-small", &small, false),
            (b"refreshed-small", &small, false),
            (b"large", &large, true),
            (b"warm-large", &large, true),
            (b"refreshed", &large, true),
        ] {
            let one = rows.get(key).expect("cached").expect("present");
            let two = rows.get(key).expect("cached").expect("present");
            assert_eq!(one.value, value[..]);
            assert_eq!(two.value, value[..]);
            assert_eq!(one.value.as_ptr() == two.value.as_ptr(), shared, "{key:?}");
            drop((one, two));
            assert_eq!(
                rows.get(key).expect("cached").expect("present").value,
                value[..]
            );
        }
        let refreshed = rows.get(b"refreshed").expect("cached").expect("present");
        assert_eq!((refreshed.revision, refreshed.expires_at_ms), (9, Some(5)));
    }
}
