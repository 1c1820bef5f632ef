//! The row cache: the records a GET last read from the file, so that a
//! repeated GET of a key no memory table holds skips the B-tree descent
//! (four page lookups in redb's page cache for 1M keys, each a lock, a hash
//! probe and usually a CPU cache miss, then a binary search per page).
//! Like RocksDB's row cache, it holds rows, not pages; a key's absence is
//! cached too. Its size is bounded in bytes and it evicts by S3-FIFO
//! (`quick_cache`), so a scan of cold keys does not flush the hot ones.
//!
//! **Why it is exact.** A key's entry is consulted only when no memory
//! table of the reader's view holds the key, and then it must equal what
//! the current commit (`Tables::base`) holds for the key. That holds
//! because:
//! - entries are inserted by [`super::Engine::get`] under the tables' read
//!   lock, from the base of that view, so the base cannot move meanwhile;
//! - a flush changes the file only for the keys of the frozen table it
//!   writes, and gives their entries the records it is about to write
//!   *before* its first commit, while the table is still in every reader's
//!   view: no reader consults or inserts an entry for such a key until
//!   readers move past the table, and by then the base holds those
//!   records;
//! - every other change of the base (a snapshot installed in cluster mode,
//!   a reopen after a failed flush) clears the cache under the tables'
//!   write lock.

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use bytes::Bytes;

use super::{Got, Version};

/// Bytes an entry counts besides its key and value: the cache's slot, the
/// boxed key's and the value's headers, allocator rounding (1M entries of
/// 16-byte keys and 100-byte values took 265 MB of RSS).
const ENTRY_OVERHEAD: u64 = 128;
/// Typical entry, for sizing the cache's table up front: a 16-byte key and a
/// 100-byte value.
const TYPICAL_ENTRY: u64 = 16 + 100 + ENTRY_OVERHEAD;

#[derive(Clone)]
struct ByBytes;

impl Weighter<Box<[u8]>, Option<Got>> for ByBytes {
    fn weight(&self, key: &Box<[u8]>, val: &Option<Got>) -> u64 {
        let value = val.as_ref().map_or(0, |g| g.value.len());
        (key.len() + value) as u64 + ENTRY_OVERHEAD
    }
}

/// See the module header. A budget of 0 disables it.
pub struct RowCache {
    cache: Option<Cache<Box<[u8]>, Option<Got>, ByBytes>>,
}

impl RowCache {
    pub fn new(bytes: usize) -> RowCache {
        let bytes = bytes as u64;
        let cache = (bytes >= TYPICAL_ENTRY * 64).then(|| {
            let items = usize::try_from(bytes / TYPICAL_ENTRY).unwrap_or(usize::MAX);
            Cache::with_weighter(items, bytes, ByBytes)
        });
        RowCache { cache }
    }

    /// The cached record of `key`: `Some(None)` if it is known absent,
    /// `None` if not cached.
    pub fn get(&self, key: &[u8]) -> Option<Option<Got>> {
        self.cache.as_ref()?.get(key)
    }

    /// Caches what the current base holds for `key` (`found` owns its
    /// value's bytes exactly, so the entry holds nothing more). Values
    /// larger than an eighth of the budget are not cached: they would evict
    /// many.
    pub fn insert(&self, key: &[u8], found: Option<&Got>) {
        let Some(cache) = &self.cache else { return };
        let len = found.map_or(0, |g| g.value.len()) as u64;
        if len > cache.capacity() / 8 {
            return;
        }
        cache.insert(key.into(), found.cloned());
    }

    /// Before a flush writes `version` as `key`'s record: a cached key's
    /// entry takes the new record (a hot key stays cached across flushes),
    /// and no entry is made for a key not cached. The value is copied: a
    /// table's value may be a slice of a larger request body.
    pub fn refresh(&self, key: &[u8], version: &Version) {
        let Some(cache) = &self.cache else { return };
        if cache.peek(key).is_none() {
            return;
        }
        let found = version.value.as_ref().map(|value| Got {
            value: Bytes::copy_from_slice(value),
            revision: version.revision,
            expires_at_ms: version.expires_at_ms,
        });
        // Refused (too heavy for the cache): the old entry must not stay.
        if cache.replace(key.into(), found, true).is_err() {
            cache.remove(key);
        }
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
