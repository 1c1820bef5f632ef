//! The row cache: values read from the redb commit under the memory
//! tables, by key, so that a GET of a key read before skips redb's B-tree
//! walk (three or four page lookups in its page cache and a key search in
//! each page: a fifth of the server's CPU per GET of a 1M-key store).
//! Bounded by bytes ([`RowCache::new`]); `quick_cache` evicts by S3-FIFO,
//! so one scan does not push out the keys read again and again.
//!
//! **Why it never answers stale.** It only answers for keys no memory
//! table holds: [`super::Engine::get`] asks it after the tables, before
//! the base. The base changes in three places, each kept in step:
//! - a flush: every key it writes is in the frozen table it flushes until
//!   readers move to the new commit, so no reader asks the cache for one
//!   meanwhile; before that move the flush gives each of its keys the
//!   value it wrote ([`RowCache::flushed`]);
//! - a reader fills the cache with what it read from the base it found
//!   under the tables' read lock, and holds that lock until it has, so a
//!   fill from an older base can never land after readers moved on (the
//!   move takes the write lock);
//! - a reopen after a failed flush and a snapshot install replace the base
//!   wholesale: the cache is emptied under the write lock.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::Got;
use super::memtable::Version;

/// Bytes counted per entry besides its key and value: the cache's own
/// slot, the boxed key's header and the shared value's.
const ENTRY_OVERHEAD: u64 = 96;

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Box<[u8]>, Got> for Weight {
    fn weight(&self, key: &Box<[u8]>, got: &Got) -> u64 {
        (key.len() + got.value.len()) as u64 + ENTRY_OVERHEAD
    }
}

/// See the module header. A budget of 0 turns it off.
pub struct RowCache {
    cache: Option<quick_cache::sync::Cache<Box<[u8]>, Got, Weight>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl RowCache {
    /// A cache of at most `bytes` (counted as keys, values and
    /// [`ENTRY_OVERHEAD`] each).
    pub fn new(bytes: u64) -> RowCache {
        // quick_cache sizes its tables from an estimate of the count.
        let estimated = usize::try_from(bytes / (ENTRY_OVERHEAD + 128)).unwrap_or(usize::MAX);
        RowCache {
            cache: (bytes > 0)
                .then(|| quick_cache::sync::Cache::with_weighter(estimated.max(16), bytes, Weight)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<Got> {
        let got = self.cache.as_ref()?.get(key);
        let counter = if got.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        got
    }

    /// Keeps what a reader found in the base (call with the tables' read
    /// lock held: see the module header).
    pub fn fill(&self, key: &[u8], got: &Got) {
        if let Some(cache) = &self.cache {
            cache.insert(key.into(), got.clone());
        }
    }

    /// A flush wrote these newest versions: the keys it deleted go, the
    /// ones cached take their new values (call before readers move to the
    /// flush's commit).
    pub fn flushed(&self, items: &mut dyn Iterator<Item = (&[u8], &Version)>) {
        let Some(cache) = &self.cache else {
            return;
        };
        for (key, version) in items {
            match &version.value {
                Some(value) if cache.peek(key).is_some() => {
                    let got = Got {
                        value: Bytes::clone(value),
                        revision: version.revision,
                        expires_at_ms: version.expires_at_ms,
                    };
                    // Gone meanwhile (evicted): nothing to refresh.
                    let _ = cache.replace(key.into(), got, true);
                }
                Some(_) => {}
                None => {
                    cache.remove(key);
                }
            }
        }
    }

    /// Forgets everything (the base was replaced wholesale).
    pub fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Its Prometheus lines.
    pub fn metrics(&self) -> String {
        let (bytes, entries) = self
            .cache
            .as_ref()
            .map_or((0, 0), |c| (c.weight(), c.len()));
        format!(
            "# HELP kvr_row_cache_hits_total GETs the row cache answered.\n\
             # TYPE kvr_row_cache_hits_total counter\nkvr_row_cache_hits_total {}\n\
             # HELP kvr_row_cache_misses_total GETs that read the database file.\n\
             # TYPE kvr_row_cache_misses_total counter\nkvr_row_cache_misses_total {}\n\
             # HELP kvr_row_cache_bytes Bytes the row cache holds, as counted against --row-cache-mib.\n\
             # TYPE kvr_row_cache_bytes gauge\nkvr_row_cache_bytes {bytes}\n\
             # HELP kvr_row_cache_entries Keys the row cache holds.\n\
             # TYPE kvr_row_cache_entries gauge\nkvr_row_cache_entries {entries}\n",
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}
