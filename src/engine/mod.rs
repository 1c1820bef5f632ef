//! The engine: the log, the memory tables and the redb store composed into
//! one state machine, what `kvr serve` writes and reads through.
//!
//! **Writes** ([`EngineWriter::write_group`], on one writer thread): check
//! limits and conditions, append the group to the [`Log`] with one sync,
//! insert it into the live [`Memtable`], publish its revision. No redb write
//! is on this path.
//!
//! **Flushes** (the flush thread, `flush.rs`): the writer freezes the live
//! table when it reaches [`EngineOptions::flush_bytes`] or
//! [`EngineOptions::flush_age`] and seals the log stretch it covers; the
//! flush thread writes each frozen table into redb in key order in one
//! durable commit (a large table in parts, each a commit readers move to),
//! swaps the readers' view to the new commit, and only then releases that
//! log stretch. Writers wait for a flush only when the tables
//! together hold [`EngineOptions::memtable_bytes`]; then the server's queue
//! fills and new writes get 503.
//!
//! **Reads** ([`Engine::get`], [`Engine::snapshot`]): the live table, the
//! frozen ones newest first, then one redb snapshot, all at one revision.
//! A [`Snapshot`] holds its tables and its redb commit, so a range stream is
//! consistent across any number of flushes.
//!
//! **History** (`history.rs`): every applied operation is also an event,
//! kept with the memory table and flushed with the data into the store's
//! history, bounded at apply. Watchers register with [`Engine::watch`] and
//! are woken only for groups that touch their keys (writers never wait for
//! them); they read events from memory or the store with [`Engine::events`].
//!
//! **Recovery** ([`open_store`]): the log of a crashed server is replayed
//! into the store when the file is opened, so the store alone is whole.

mod apply;
mod feeds;
mod flush;
pub mod history;
pub mod log;
pub mod memtable;
mod row_cache;
mod snapshot;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

pub use apply::{EngineWriter, Request, copy_error};
pub use feeds::{Hub, Subscription};
pub use log::{Log, NoLog, Release};
pub use memtable::{Memtable, Version};

pub use snapshot::Snapshot;

use crate::error::{Error, Result};
use crate::store::{OpenMode, Store, StoreOptions, TableReader};
use crate::types::Stats;
use crate::wal::Recovered;

/// Smallest memory-table budget: below this, flushes come so often that
/// each one rewrites more redb pages than it saves.
pub const MIN_MEMTABLE_MIB: u64 = 16;
/// Largest default budget: the log to replay after a crash is at most
/// about this much, which recovery reads and applies in about a second.
pub const MAX_DEFAULT_MEMTABLE_MIB: u64 = 128;
/// How long a live table with writes waits before it is flushed anyway:
/// bounds the log a crash leaves when writes trickle in. Under load a table
/// fills to `flush_bytes` well before. Not shorter: a flush of random keys
/// rewrites most of the file's B-tree whatever the table's size, so a flush
/// every 2 s cost a 3-node cluster (each node flushing at 10k writes/s)
/// about a fifth of its write throughput and 280 ms stalls (issue 12 note).
/// `KVR_FLUSH_AGE_MS` changes it (tests use 2 s, to flush within a run).
pub const FLUSH_AGE: Duration = Duration::from_secs(30);

fn flush_age() -> Duration {
    std::env::var("KVR_FLUSH_AGE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&ms| ms > 0)
        .map_or(FLUSH_AGE, Duration::from_millis)
}

/// The default memory-table budget for a page cache of `cache_mib`: an
/// eighth of it, within [`MIN_MEMTABLE_MIB`]..=[`MAX_DEFAULT_MEMTABLE_MIB`].
pub fn default_memtable_mib(cache_mib: u64) -> u64 {
    (cache_mib / 8).clamp(MIN_MEMTABLE_MIB, MAX_DEFAULT_MEMTABLE_MIB)
}

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Most bytes the memory tables hold together (live and frozen).
    pub memtable_bytes: usize,
    /// Live-table bytes at which it is frozen and flushed: half the budget,
    /// so a flush runs while the next table fills. A flush of random keys
    /// rewrites most of the file's B-tree whatever the table's size, so
    /// fewer, larger tables cost less per write: half instead of a quarter
    /// cut the CPU per durable put by 4-11 % (standalone and cluster).
    /// Recovery replays at most the budget either way.
    pub flush_bytes: usize,
    /// See [`FLUSH_AGE`].
    pub flush_age: Duration,
    /// Largest value accepted.
    pub max_value_bytes: usize,
    /// How much watch history to keep.
    pub history: history::HistoryBounds,
    /// A frozen table of more keys than this is flushed in parts of this
    /// many keys, each its own durable commit (0: always whole). See
    /// [`FLUSH_PART_KEYS`].
    pub flush_part_keys: usize,
    /// Bytes of the row cache (`row_cache.rs`); 0 turns it off.
    pub row_cache_bytes: usize,
    /// How much nicer the flush thread runs; 0: no helper either. See
    /// `FLUSH_NICE` in `flush.rs`.
    pub flush_nice: i32,
    /// Whether a failed flush writes a line to the log (`serve`); a
    /// command's recovery returns the failure as its error instead.
    pub log_flush_failures: bool,
}

/// Keys one step of the row cache's warm-up reads and caches under one
/// hold of the tables' read lock (well under a millisecond).
pub const WARM_STEP_KEYS: usize = 256;

/// Keys per part of a flush in parts. A flush of random keys rewrites
/// every B-tree leaf it touches, and redb reuses the replaced pages only
/// after a later commit: in one commit the file held the old and the new
/// tree (2.0x the data after random puts into a 1M-key store); in parts of
/// this many keys it holds about one part more than the tree: 1.00-1.03x
/// in five runs, against 1.07-1.9x with parts of 8,192 (a part's new pages
/// sometimes crossed redb's doubling step), at the same throughput.
/// `KVR_FLUSH_PART_KEYS` changes it (tests use small parts).
pub const FLUSH_PART_KEYS: usize = 2048;

fn flush_part_keys() -> usize {
    std::env::var("KVR_FLUSH_PART_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FLUSH_PART_KEYS)
}

/// Bytes a table counts for a random put of a 16-byte key and a 100-byte
/// value, with its event, its key's hash and the key as unresolved
/// (64 MiB tables of such puts held 211k).
const TYPICAL_WRITE_BYTES: usize = 318;

impl EngineOptions {
    /// Puts of 100-byte values that a table of [`EngineOptions::flush_bytes`]
    /// holds: the least room a new table reserves ([`Memtable::sized_like`]).
    fn typical_writes(&self) -> usize {
        self.flush_bytes / TYPICAL_WRITE_BYTES
    }

    pub fn new(memtable_bytes: usize, max_value_bytes: usize) -> EngineOptions {
        EngineOptions {
            memtable_bytes,
            flush_bytes: (memtable_bytes / 2).max(1),
            flush_age: flush_age(),
            max_value_bytes,
            history: history::HistoryBounds::default(),
            flush_part_keys: flush_part_keys(),
            row_cache_bytes: 0,
            flush_nice: flush::flush_nice(),
            log_flush_failures: true,
        }
    }
}

/// Opens a database file and replays the log a crashed `kvr serve` left
/// (`crate::wal`), so the store alone is the whole database. Every command
/// opens its file through here (by way of `cmd::open_file`, which also
/// applies a stopped cluster member's committed Raft entries).
pub fn open_store(
    path: &Path,
    mode: OpenMode,
    opts: &StoreOptions,
) -> Result<(Store, Option<Recovered>)> {
    if mode.creates() {
        crate::wal::refuse_without_database(path)?;
    }
    crate::wal::refuse_another_database(path)?;
    let store = Store::open(path, mode, opts)?;
    let dir = crate::wal::dir_of(store.path());
    if !dir.is_dir() {
        return Ok((store, None));
    }
    // A log beside a new file (one with records was refused above, so
    // this one replays nothing): the file it leaves is a database.
    store.publish_if_new()?;
    recover_as_serve(store, &dir, opts)
}

/// Replays a crashed server's log as `kvr serve` would have: through an
/// engine, into memory tables, then flushed with their events, so the
/// watch history keeps the writes the log held and those before them (a
/// replay straight into the store recorded no events, and the history
/// had to start over after it: every watch's resume point was lost). The
/// engine gets no log of its own: it writes nothing new, so a full disk
/// needs no room for a segment, and the old log goes once all is durable.
fn recover_as_serve(
    store: Store,
    dir: &Path,
    opts: &StoreOptions,
) -> Result<(Store, Option<Recovered>)> {
    let cache_mib = u64::try_from(opts.cache_bytes >> 20).unwrap_or(u64::MAX);
    let memtable_bytes =
        usize::try_from(default_memtable_mib(cache_mib) << 20).unwrap_or(usize::MAX);
    // The log holds what a server accepted: no limit of ours to apply.
    let engine_opts = EngineOptions {
        log_flush_failures: false,
        ..EngineOptions::new(memtable_bytes, usize::MAX)
    };
    let database = store.database_id()?;
    let store = Arc::new(store);
    let (engine, mut writer) = Engine::start(store.clone(), Box::new(NoLog), engine_opts)?;
    let replayed =
        crate::wal::replay_with(dir, engine.revision(), database, |ops, ends, records| {
            writer.replay(ops, ends, records)
        });
    // On an error the writer is dropped unflushed: the log stays.
    let replayed = replayed?;
    if !writer.close() {
        let failure = engine.signal().failing.take();
        return Err(failure.unwrap_or_else(|| {
            Error::Storage(format!(
                "cannot replay the write-ahead log {} into {}",
                dir.display(),
                store.path().display()
            ))
        }));
    }
    drop(engine);
    let store = Arc::try_unwrap(store)
        .map_err(|_| Error::Storage("the store is still held after replaying its log".into()))?;
    crate::wal::remove_dir(dir)?;
    Ok((store, Some(replayed)))
}

/// What readers see: the tables and the redb commit under them.
struct Tables {
    live: Arc<Memtable>,
    /// Oldest first: the order they are flushed in.
    frozen: Vec<Arc<Memtable>>,
    base: Arc<TableReader>,
}

/// Wakes the flush thread, and writers waiting for room.
#[derive(Default)]
struct Signal {
    stopping: bool,
    /// Stop without flushing what is left (a simulated crash).
    abandon: bool,
    /// The last flush failed with this (cleared by a successful one).
    failing: Option<Error>,
    /// A flush panicked (see `flush.rs`): no flush runs again, and
    /// `failing` stays.
    broken: bool,
    /// The log cannot void a failed write: no write is taken until it can.
    log_trouble: Option<String>,
    /// A read failed on the file: the flush thread reopens it if redb now
    /// refuses it (its sticky "previous I/O error"), at most once per
    /// [`flush::RETRY_INTERVAL`] (`last_heal`).
    heal: bool,
    last_heal: Option<std::time::Instant>,
}

/// The engine, shared by the writer thread, the flush thread and readers.
pub struct Engine {
    store: Arc<Store>,
    tables: RwLock<Tables>,
    /// Records [`Engine::get`] read from `tables.base` (see `row_cache.rs`
    /// for why they stay exact).
    rows: row_cache::RowCache,
    /// Whether the row cache's warm-up has started ([`Engine::warm_rows`]).
    warming: AtomicBool,
    /// This engine, for the threads it starts itself.
    me: Weak<Engine>,
    /// The published revision: every version at or below it is in a table.
    revision: AtomicU64,
    /// The key count at the published revision, less the memory tables'
    /// unresolved keys that are new (`memtable.rs`): always the base's
    /// count plus each table's known change ([`Engine::recount`]).
    keys: AtomicI64,
    opts: EngineOptions,
    /// Log releases of the frozen tables, in the same order.
    releases: Mutex<VecDeque<Release>>,
    signal: Mutex<Signal>,
    wake: Condvar,
    flusher: Mutex<Option<JoinHandle<()>>>,
    flushes: AtomicU64,
    /// Time spent flushing, in microseconds (successful flushes only).
    flush_micros: AtomicU64,
    /// Parts committed by flushes in parts (all but each table's last).
    flush_parts: AtomicU64,
    /// Flushes the flush thread handed to its helper (`flush.rs`).
    flush_handovers: AtomicU64,
    /// Write groups that waited for room in the memory tables, and the
    /// time they waited in microseconds: the flush not keeping up.
    write_stalls: AtomicU64,
    write_stall_micros: AtomicU64,
    /// Whether the log lets a flush commit a table in parts
    /// ([`Log::logs_outcomes`]).
    flush_in_parts: bool,
    /// Puts with an expiry that are in memory tables only, as (expiry,
    /// key, revision): with the store's expiry index, what the sweeper
    /// reads. Removed when their table is flushed.
    expiring: Mutex<std::collections::BTreeMap<ExpiryCursor, u64>>,
    /// The oldest history revision kept (see `history.rs`).
    oldest: AtomicU64,
    /// The history bounds a cluster's log set (its leader's flags, see
    /// `cluster/state_machine.rs`): while set, they replace `opts.history`,
    /// so every replica trims alike.
    replicated_history: Mutex<Option<history::HistoryBounds>>,
    /// The published revision, for the watchers' dispatcher.
    notify: tokio::sync::watch::Sender<u64>,
    /// The watchers (see [`feeds::Hub`]).
    hub: Arc<feeds::Hub>,
}

/// What [`Engine::events`] finds.
#[derive(Debug)]
pub enum Events {
    /// Events from the revision asked for on, in order (empty when none
    /// is applied yet).
    Found(Vec<history::Event>),
    /// That revision's event is no longer kept.
    Gone,
    /// A strict read ([`EventsRead::strict`]) found that the first event
    /// alone takes this many bytes, over its bound: nothing was read.
    Needs(usize),
}

/// How [`Engine::events_read`] reads a page of events.
#[derive(Clone, Copy)]
pub struct EventsRead<'a> {
    /// At most this many events,
    pub max: usize,
    /// and no more than it takes to bring their keys and loaded values
    /// to this many bytes (one event at least, unless `strict`).
    pub max_bytes: usize,
    /// Whether an event's value is loaded: the others come with an empty
    /// one and count their key only.
    pub values_of: &'a dyn Fn(&[u8]) -> bool,
    /// Never past `max_bytes`, not even for one event.
    pub strict: bool,
}

/// Where a sweep goes on: the (expiry, key) it looked at last.
pub type ExpiryCursor = (u64, Vec<u8>);

/// Values up to this long are copied when a point read hands them out
/// (see [`handed_out`]).
pub(crate) const COPIED_VALUE: usize = 1024;

/// `value` as a GET hands it out: a copy if it is small, else shared. A
/// shared value's clone is an atomic increment of a reference count that
/// lives apart from the table or cache entry, in memory a random GET has
/// not touched: a CPU cache miss, and one more to decrement it once the
/// answer is sent (`promotable_even_clone` took 0.43 µs of a 12 µs GET in
/// `perf`). The copy reads the value's bytes, which sending them reads
/// anyway, into a new buffer of the reading thread.
pub(crate) fn handed_out(value: &Bytes) -> Bytes {
    if value.len() <= COPIED_VALUE {
        Bytes::copy_from_slice(value)
    } else {
        value.clone()
    }
}

/// A key's value as [`Engine::get`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub value: Bytes,
    pub revision: u64,
    pub expires_at_ms: Option<u64>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("revision", &self.revision())
            .finish()
    }
}

impl Engine {
    /// Starts an engine over an open store (its log already replayed) and
    /// its flush thread; `log` is where the writer makes groups durable.
    pub fn start(
        store: Arc<Store>,
        log: Box<dyn Log>,
        opts: EngineOptions,
    ) -> Result<(Arc<Engine>, EngineWriter)> {
        let base = store.snapshot()?.reader()?;
        let (oldest, history_bytes) = base.history_mark();
        let flush_in_parts = log.logs_outcomes() && opts.flush_part_keys > 0;
        let engine = Arc::new_cyclic(|me| Engine {
            me: me.clone(),
            warming: AtomicBool::new(false),
            flush_in_parts,
            oldest: AtomicU64::new(oldest),
            replicated_history: Mutex::new(None),
            notify: tokio::sync::watch::Sender::new(base.revision()),
            hub: Arc::default(),
            revision: AtomicU64::new(base.revision()),
            keys: AtomicI64::new(i64::try_from(base.keys()).unwrap_or(i64::MAX)),
            tables: RwLock::new(Tables {
                live: Arc::new(Memtable::with_room(opts.typical_writes())),
                frozen: Vec::new(),
                base: Arc::new(base),
            }),
            rows: row_cache::RowCache::new(opts.row_cache_bytes),
            store,
            opts,
            releases: Mutex::new(VecDeque::new()),
            signal: Mutex::new(Signal::default()),
            wake: Condvar::new(),
            flusher: Mutex::new(None),
            flushes: AtomicU64::new(0),
            flush_micros: AtomicU64::new(0),
            flush_parts: AtomicU64::new(0),
            flush_handovers: AtomicU64::new(0),
            write_stalls: AtomicU64::new(0),
            write_stall_micros: AtomicU64::new(0),
            expiring: Mutex::new(std::collections::BTreeMap::new()),
        });
        let flusher = flush::start(engine.clone())?;
        *engine.flusher.lock().unwrap_or_else(|e| e.into_inner()) = Some(flusher);
        let writer = EngineWriter::new(engine.clone(), log, history_bytes);
        Ok((engine, writer))
    }

    /// Starts an engine whose writes come from a replicated log (cluster
    /// mode): no log of its own, no limits of its own (see
    /// `EngineWriter::into_replicated`).
    pub fn start_replicated(
        store: Arc<Store>,
        opts: EngineOptions,
    ) -> Result<(Arc<Engine>, EngineWriter)> {
        let (engine, writer) = Engine::start(store, Box::new(NoLog), opts)?;
        Ok((engine, writer.into_replicated()))
    }

    /// Starts an engine over a store whose log in `dir` may hold writes a
    /// crash left (a `kvr serve` that did not stop cleanly): they are
    /// replayed into the memory table, not into the store, so the restart
    /// takes the time to read the log, whatever the file's size; the log
    /// stays until the first flush has made them durable. New groups go to
    /// new segments of the same log.
    pub fn start_recovering(
        store: Arc<Store>,
        dir: &Path,
        segment_bytes: u64,
        opts: EngineOptions,
    ) -> Result<(Arc<Engine>, EngineWriter, Option<Recovered>)> {
        // A log of another file is refused before this file gets an id
        // (an older kvr's file has none until its first server).
        if dir.is_dir() {
            crate::wal::check_owner(dir, store.database_id()?)?;
        }
        let owner = store.assign_database_id()?;
        let (wal, old) = crate::wal::Wal::resume_in(dir, segment_bytes, owner)?;
        let (engine, mut writer) = Engine::start(store, Box::new(wal), opts)?;
        let Some(old) = old else {
            return Ok((engine, writer, None));
        };
        let recovered =
            crate::wal::replay_with(dir, engine.revision(), Some(owner), |ops, ends, records| {
                writer.replay(ops, ends, records)
            })?;
        if engine.read_tables().live.is_empty() {
            old.release()?;
        } else {
            // The replayed table's flush releases the old segments.
            engine.freeze(Box::new(move || old.release()));
        }
        Ok((engine, writer, Some(recovered)))
    }

    /// How much watch history this engine keeps: the bounds its cluster
    /// replicated, or else its own (`--history`, `--history-bytes`).
    pub fn history_bounds(&self) -> history::HistoryBounds {
        self.replicated_history_bounds()
            .unwrap_or(self.opts.history)
    }

    /// This node's own history bounds (its flags), whatever its cluster
    /// replicated.
    pub fn own_history_bounds(&self) -> history::HistoryBounds {
        self.opts.history
    }

    /// The history bounds the cluster's log set, if it set any.
    pub fn replicated_history_bounds(&self) -> Option<history::HistoryBounds> {
        *self
            .replicated_history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the history bounds of a cluster's log (from the next
    /// write group on): the state machine calls it in log order.
    pub fn set_replicated_history_bounds(&self, bounds: Option<history::HistoryBounds>) {
        *self
            .replicated_history
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = bounds;
    }

    /// The store under the engine.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The published revision.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Flushes completed since start.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Parts committed by flushes in parts since start (`flush.rs`).
    pub fn flush_parts(&self) -> u64 {
        self.flush_parts.load(Ordering::Relaxed)
    }

    /// Flushes that fell behind and were finished by the flush thread's
    /// helper (`flush.rs`).
    pub fn flush_handovers(&self) -> u64 {
        self.flush_handovers.load(Ordering::Relaxed)
    }

    /// Write groups that waited for room in the memory tables since start,
    /// and how long they waited in all.
    pub fn write_stalls(&self) -> (u64, Duration) {
        (
            self.write_stalls.load(Ordering::Relaxed),
            Duration::from_micros(self.write_stall_micros.load(Ordering::Relaxed)),
        )
    }

    /// Counts one write stall of `waited`.
    fn stalled(&self, waited: Duration) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.write_stalls.fetch_add(1, Ordering::Relaxed);
        self.write_stall_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Bytes held by the memory tables, live and frozen.
    pub fn memtable_bytes(&self) -> usize {
        let t = self.read_tables();
        t.live.bytes() + t.frozen.iter().map(|f| f.bytes()).sum::<usize>()
    }

    /// The engine's Prometheus lines: flushes, memory tables, row cache.
    pub fn metrics(&self) -> String {
        let frozen = self.read_tables().frozen.len();
        let stalls = self.write_stalls();
        format!(
            "# HELP kvr_flushes_total Memory tables written into the database file.\n\
             # TYPE kvr_flushes_total counter\nkvr_flushes_total {}\n\
             # HELP kvr_flush_seconds_total Time spent writing memory tables into the database file.\n\
             # TYPE kvr_flush_seconds_total counter\nkvr_flush_seconds_total {}\n\
             # HELP kvr_flush_parts_total Parts of large memory tables committed before their last.\n\
             # TYPE kvr_flush_parts_total counter\nkvr_flush_parts_total {}\n\
             # HELP kvr_flush_handovers_total Flushes that fell behind at the flush thread's lower priority and were finished at the process's.\n\
             # TYPE kvr_flush_handovers_total counter\nkvr_flush_handovers_total {}\n\
             # HELP kvr_write_stalls_total Write groups that waited for the flush to free room in the memory tables (--memtable-mib).\n\
             # TYPE kvr_write_stalls_total counter\nkvr_write_stalls_total {}\n\
             # HELP kvr_write_stall_seconds_total Time write groups waited for that room.\n\
             # TYPE kvr_write_stall_seconds_total counter\nkvr_write_stall_seconds_total {}\n\
             # HELP kvr_memtable_bytes Bytes held by the memory tables, live and frozen.\n\
             # TYPE kvr_memtable_bytes gauge\nkvr_memtable_bytes {}\n\
             # HELP kvr_memtables_frozen Memory tables waiting for their flush.\n\
             # TYPE kvr_memtables_frozen gauge\nkvr_memtables_frozen {frozen}\n{}",
            self.flushes(),
            self.flush_micros.load(Ordering::Relaxed) as f64 / 1e6,
            self.flush_parts(),
            self.flush_handovers(),
            stalls.0,
            stalls.1.as_secs_f64(),
            self.memtable_bytes(),
            self.rows.metrics()
        )
    }

    fn read_tables(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_tables(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Engine::write_tables`] for the flush thread, which may run nicer
    /// than the threads that read the tables on every request
    /// (`KVR_FLUSH_NICE`): it never queues for the lock, since a queued
    /// writer holds back every new reader, and a nice thread, once woken,
    /// can wait tens of milliseconds for a core (at nice 19, PUT and GET
    /// floods together stalled 75 ms at p99.9).
    /// (Readers hold it for microseconds; a reader that holds it longer,
    /// such as a key count resolving keys against the file, is waited for
    /// in short sleeps rather than by spinning.)
    fn write_tables_unqueued(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        let mut tries = 0u32;
        loop {
            match self.tables.try_write() {
                Ok(t) => return t,
                Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if tries < 64 => {
                    tries += 1;
                    std::thread::yield_now();
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
    }

    /// One key at the current revision: its value, revision and expiry,
    /// and the revision the answer reflects. No allocation but the value's.
    pub fn get(&self, key: &[u8]) -> Result<(Option<Got>, u64)> {
        let t = self.read_tables();
        let at = self.revision();
        for table in std::iter::once(&t.live).chain(t.frozen.iter().rev()) {
            if let Some(v) = table.get(key, at) {
                let got = v.value.map(|value| Got {
                    value,
                    revision: v.revision,
                    expires_at_ms: v.expires_at_ms,
                });
                return Ok((got, at));
            }
        }
        // No table holds the key: the base decides, or its row cache.
        if let Some(found) = self.rows.get(key) {
            return Ok((found, at));
        }
        if !self.warming.load(Ordering::Relaxed) {
            self.start_warming();
        }
        let found = t.base.get(key)?.map(|e| Got {
            value: Bytes::from(e.value),
            revision: e.revision,
            expires_at_ms: e.expires_at_ms,
        });
        self.rows.insert(key, found.as_ref());
        Ok((found, at))
    }

    /// Starts the row cache's warm-up, once: a thread that caches the
    /// records of the file's keys in key order ([`Engine::warm_rows`])
    /// until the cache is nearly full or every key is in. Started by the
    /// first GET that reads the file, so a server only written to never
    /// pays for it (a flush keeps every cached key's entry current). A
    /// restarted server otherwise answered its first million GETs of a
    /// 1M-key store from the B-tree while the cache filled one miss at a
    /// time.
    fn start_warming(&self) {
        if self.warming.swap(true, Ordering::Relaxed) || !self.rows.has_room() {
            return;
        }
        let me = self.me.clone();
        let warm = move || {
            let mut after: Option<Vec<u8>> = None;
            loop {
                // Held for one step only: the engine may stop meanwhile.
                let Some(engine) = me.upgrade() else { return };
                if engine.signal().stopping {
                    return;
                }
                match crate::panics::contain(|| engine.warm_rows(after.as_deref())) {
                    Ok(Ok(Some(last))) => after = Some(last),
                    // Done, or a read failed: GETs read the file anyway
                    // (and report a failure), only slower.
                    Ok(Ok(None) | Err(_)) => return,
                    Err(caught) => {
                        flush::log_line(&format!(
                            "kvr serve: the row cache's warm-up stopped: {}",
                            caught.into_served_error(engine.store.path())
                        ));
                        return;
                    }
                }
            }
        };
        // Without a thread (none could start) only the warm-up is lost.
        let _ = std::thread::Builder::new()
            .name("kvr-warm-rows".into())
            .spawn(warm);
    }

    /// One step of the row cache's warm-up: caches what the current base
    /// holds for up to [`WARM_STEP_KEYS`] keys after `after` (from the
    /// first key when `None`) that no memory table holds, under one hold of
    /// the tables' read lock, as [`Engine::get`] caches a miss (which is
    /// why the entries are exact: `row_cache.rs`). Returns the last key it
    /// looked at, or `None` when the warm-up is over: the base has no more
    /// keys, or the cache is nearly full (it never evicts for this).
    pub fn warm_rows(&self, after: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        if !self.rows.has_room() {
            return Ok(None);
        }
        let t = self.read_tables();
        let at = self.revision();
        let mut page = Vec::with_capacity(WARM_STEP_KEYS);
        let lower = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let more = t.base.page(
            lower,
            std::ops::Bound::Unbounded,
            false,
            (WARM_STEP_KEYS, usize::MAX),
            &mut page,
        )?;
        let last = page.last().map(|(key, ..)| key.clone());
        for (key, value, revision, expires_at_ms) in page {
            let held = std::iter::once(&t.live)
                .chain(t.frozen.iter())
                .any(|table| table.holds(&key, at));
            if !held {
                let got = Got {
                    value: Bytes::from(value),
                    revision,
                    expires_at_ms,
                };
                self.rows.warm(&key, got);
            }
        }
        Ok(if more { last } else { None })
    }

    /// A consistent view at the current revision, for ranges and streams.
    pub fn snapshot(&self) -> Snapshot {
        let t = self.read_tables();
        let at = self.revision();
        let mut tables = Vec::with_capacity(1 + t.frozen.len());
        tables.push(t.live.clone());
        tables.extend(t.frozen.iter().rev().cloned());
        Snapshot::new(at, tables, t.base.clone())
    }

    /// Keys whose presence in the store [`Engine::stats`] would still have
    /// to look up: after a crash, every key the replayed log wrote.
    pub fn keys_to_count(&self) -> usize {
        let t = self.read_tables();
        t.frozen
            .iter()
            .chain(std::iter::once(&t.live))
            .map(|table| table.unresolved_pending())
            .sum()
    }

    /// Key count and revision (consistent with each other), file size.
    /// Resolves the memory tables' unresolved keys not resolved yet
    /// (`memtable.rs`): at most one redb lookup per put since the last call.
    pub fn stats(&self) -> Result<Stats> {
        let (revision, known, unresolved, base) = {
            let t = self.read_tables();
            let (revision, known, live_n) = t.live.while_locked(|| {
                (
                    self.revision(),
                    self.keys.load(Ordering::Acquire),
                    t.live.unresolved_len(),
                )
            });
            let mut unresolved = vec![(t.live.clone(), live_n)];
            unresolved.extend(t.frozen.iter().map(|f| (f.clone(), f.unresolved_len())));
            (revision, known, unresolved, t.base.clone())
        };
        // Outside the lock: the first call after many writes may take a
        // while, and no flush or write waits for it.
        let mut keys = known;
        for (table, n) in unresolved {
            keys += i64::try_from(table.absent_among(n, &base)?).unwrap_or(i64::MAX);
        }
        let file_bytes = std::fs::metadata(self.store.path()).map_or(0, |m| m.len());
        Ok(Stats {
            keys: u64::try_from(keys).unwrap_or(0),
            revision,
            file_bytes,
        })
    }

    /// Sets the key count from the base's and the tables' known changes,
    /// after the base changed (a flush, a reopen). Holds the live table's
    /// lock, so no group publishes meanwhile.
    fn recount(&self, t: &Tables) {
        t.live.while_locked(|| {
            // A table flushed in part counts in the base's keys for that part.
            let tables: i64 = std::iter::once(&t.live)
                .chain(&t.frozen)
                .map(|m| m.known_delta() - m.flushed_delta())
                .sum();
            let base = i64::try_from(t.base.keys()).unwrap_or(i64::MAX);
            self.keys.store(base + tables, Ordering::Release);
        });
    }

    fn signal(&self) -> std::sync::MutexGuard<'_, Signal> {
        self.signal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the live table a frozen one for the flush thread; `release`
    /// drops the log stretch it covers once it is flushed.
    fn freeze(&self, release: Release) {
        {
            // Sized before the lock: only the writer replaces the live table.
            let next = Arc::new(Memtable::sized_like(
                &self.read_tables().live,
                self.opts.typical_writes(),
            ));
            let mut t = self.write_tables();
            let old = std::mem::replace(&mut t.live, next);
            t.frozen.push(old);
            self.releases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(release);
        }
        let _guard = self.signal();
        self.wake.notify_all();
    }

    /// Why this engine cannot write its file any more (a flush panicked
    /// inside the storage engine), or its log for now, if so: the server
    /// is then not ready.
    pub fn broken(&self) -> Option<String> {
        let s = self.signal();
        s.broken
            .then(|| s.failing.as_ref().map(ToString::to_string))
            .flatten()
            .or_else(|| s.log_trouble.clone())
            .or_else(|| {
                (!self.store.is_open()).then(|| {
                    "the database file could not be reopened after an I/O error; it is tried \
                     again every second"
                        .to_string()
                })
            })
    }

    /// A request failed on the file (a read's I/O error, say): once redb
    /// has seen an I/O error it refuses the file until it is reopened, so
    /// the flush thread is asked to reopen it, as after a failed flush;
    /// without this a server that only reads stayed failing after the disk
    /// recovered, until a restart (an audit).
    pub fn read_failed(&self) {
        let mut s = self.signal();
        if !s.heal {
            s.heal = true;
            self.wake.notify_all();
        }
    }

    /// Why the log takes no write for now (it cannot void a failed write).
    pub fn log_trouble(&self) -> Option<String> {
        self.signal().log_trouble.clone()
    }

    /// Set by the writer when its log breaks and when it works again.
    pub fn set_log_trouble(&self, why: Option<String>) {
        self.signal().log_trouble = why;
    }

    /// Waits until the revision is at least `revision`, for at most
    /// `within`; whether it got there.
    pub async fn reached(&self, revision: u64, within: std::time::Duration) -> bool {
        let mut applied = self.notify.subscribe();
        let reached = applied.wait_for(|r| *r >= revision);
        matches!(tokio::time::timeout(within, reached).await, Ok(Ok(_)))
    }

    /// Blocks until every frozen table is flushed, or a flush failed.
    /// Returns whether all are flushed.
    pub fn wait_flushed(&self) -> bool {
        let mut s = self.signal();
        loop {
            if self.read_tables().frozen.is_empty() {
                return true;
            }
            if s.failing.is_some() || s.stopping {
                return false;
            }
            s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn abandon_flushing(&self) {
        self.signal().abandon = true;
        self.stop_flushing();
    }

    /// Stops the flush thread after it has flushed every frozen table (or
    /// failed to). Returns whether everything is durable in the store.
    fn stop_flushing(&self) -> bool {
        {
            let mut s = self.signal();
            s.stopping = true;
            self.wake.notify_all();
        }
        let handle = self
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        self.read_tables().frozen.is_empty()
    }
}
