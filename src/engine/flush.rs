//! The flush thread: frozen tables into redb, oldest first, one durable
//! commit each; then the readers' view moves to the new commit and the log
//! stretch the table covered is released.
//!
//! **In parts.** A table of more than `flush_part_keys` keys is written in
//! parts of that many keys in key order, each a durable commit that readers
//! move to (the frozen table still shadows every key it holds, so reads
//! stay exact), and the last part with the revision, the history and the
//! idempotency records. redb reuses the pages a commit replaced only after
//! a later commit, so one commit of a table of random keys left the file
//! holding two copies of every leaf it touched; in parts it holds about
//! one part more. A crash between parts leaves the store ahead of its
//! revision for the keys written: the log still holds them, and its
//! replay applies each logged outcome whatever the store holds, so it
//! ends at the same state (`wal/record.rs`). Only for a log that records
//! outcomes (not Raft's), and not for a table replayed from a log. A key
//! whose stored record shares its value with a kept history row is left
//! to the last commit, which rewrites that row (`Store::write_part`): a
//! crash between parts then leaves no row naming a record that has moved
//! on, and the rewrites share one commit's pages instead of dirtying
//! history pages in every part.
//!
//! **At a lower priority, with a deadline** (opt-in, [`FLUSH_NICE`]): the
//! flush thread runs nicer than the threads that answer requests; a table
//! in parts that falls behind its pace (the live table filling faster than
//! the flush writes: [`behind`]) is finished by a helper thread at the
//! process's priority. Tables written in one commit go to the helper.
//!
//! A failed flush (a full disk) leaves the table frozen and its log in
//! place: reads and writes go on from memory, and the flush is tried again
//! every [`RETRY_INTERVAL`]. If redb refuses writes after the I/O error,
//! the file is reopened at its last durable commit first: nothing is lost,
//! the frozen tables still hold everything after it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use super::memtable::Version;
use super::{Engine, Memtable};
use crate::error::{Error, Result};

/// Pause after a failed flush before the next try.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// How much nicer than the rest of the process the flush thread runs
/// (`crate::background`): by default not at all. Where a flush competes
/// with the HTTP workers and the writer for a core, a request held by a
/// worker it preempted waits a whole time slice: PUTs into a 1M-key store,
/// 60 s each, alternating, had p99 4.62 / 4.73 ms at nice 19, 5.05 / 4.96
/// at 10, 5.83 / 5.98 at the process's priority. But a nice thread that
/// holds a lock a request thread needs makes it wait until the nice
/// thread gets a core again: with PUT and GET floods together, nice 19
/// stalled requests 44-98 ms at p99.9 in 4 of 8 runs, against 18-25 ms in
/// every run at the process's priority. Such locks are now out of that
/// path: the tables' lock is not queued for, a log release deletes files
/// outside the writer's lock, and the steps that take the request
/// threads' locks (publishing a part, the row cache) run on the helper;
/// still one of three runs stalled 49 ms (against 26-30 ms at the
/// process's priority, that hour), through locks the flush shares below
/// kvr (redb's page cache, the file system's journal). So it is opt-in:
/// `KVR_FLUSH_NICE=N` for PUT-heavy servers. A flush has a deadline, the
/// live table filling up (then writers wait at the memory budget), and
/// into a 10M-key store it flushes most of the time: a lower priority
/// alone made it fall behind there (p99 1.46 s against 9.8 ms at nice 10).
/// A thread cannot raise its priority back without a privilege a server
/// rarely has (RLIMIT_NICE), so at any N > 0 a flush that falls behind its
/// pace ([`behind`]) is handed to a helper thread at the process's
/// priority ([`Helper`]): into the 10M-key store at 19 every flush was
/// handed over and throughput held (46.8k/s, p99 8.1 ms, against 42.9k/s,
/// 9.0 ms at the process's priority).
///
/// Whatever the nice value, the flush thread and its helper run as batch
/// threads (`SCHED_BATCH`, [`crate::background::run_as_batch`]): the same
/// share of the CPU, so no lock waits on them longer than on any thread,
/// but no preempting a request thread when they wake. Five alternating
/// pairs of 60 s PUT floods (`wrk -c64`, 1M-key store): p99 5.60 / 5.13 /
/// 5.25 / 5.09 / 5.95 ms against 7.89 / 6.05 / 6.02 / 5.21 / 5.30 without
/// it, the same throughput; PUT and GET floods together, three pairs, the
/// same within the noise.
pub const FLUSH_NICE: i32 = 0;

pub(super) fn start(engine: Arc<Engine>) -> Result<JoinHandle<()>> {
    let nice = engine.opts.flush_nice;
    // Started here, at the process's priority: a thread inherits its
    // creator's.
    let helper = if nice > 0 {
        Some(Helper::start(engine.clone())?)
    } else {
        None
    };
    std::thread::Builder::new()
        .name("kvr-flush".into())
        .spawn(move || {
            crate::background::run_as_batch();
            crate::background::run_nicer(nice);
            run(&engine, helper.as_ref())
        })
        .map_err(|e| Error::io("cannot start the flush thread", e))
}

/// [`FLUSH_NICE`], or `KVR_FLUSH_NICE`.
pub(super) fn flush_nice() -> i32 {
    std::env::var("KVR_FLUSH_NICE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FLUSH_NICE)
}

/// A thread at the process's priority that runs, while the nicer flush
/// thread waits, what that one should not: the rest of a flush that fell
/// behind, and every step that takes a lock the request threads take (a
/// nice thread preempted while holding one holds them up until it gets a
/// core again). The flush's bookkeeping stays on one thread.
struct Helper {
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    done: std::sync::mpsc::Receiver<Result<()>>,
    thread: Option<JoinHandle<()>>,
}

type Job = Box<dyn FnOnce(&Engine) -> Result<()> + Send>;

impl Helper {
    fn start(engine: Arc<Engine>) -> Result<Helper> {
        let (jobs, to_run) = std::sync::mpsc::sync_channel::<Job>(0);
        let (finished, done) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("kvr-flush-help".into())
            .spawn(move || {
                crate::background::run_as_batch();
                for job in to_run {
                    if finished.send(contained(|| job(&engine))).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io("cannot start the flush helper thread", e))?;
        Ok(Helper {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Runs `job` on the helper thread and waits for it.
    fn run(&self, job: impl FnOnce(&Engine) -> Result<()> + Send + 'static) -> Result<()> {
        let gone = || Error::Storage("the flush helper thread stopped".into());
        let jobs = self.jobs.as_ref().ok_or_else(gone)?;
        jobs.send(Box::new(job)).map_err(|_| gone())?;
        self.done.recv().map_err(|_| gone())?
    }

    /// Writes what is left of `table` on the helper thread.
    fn finish(&self, table: &Arc<Memtable>) -> Result<()> {
        let table = table.clone();
        self.run(move |engine| write_rest(engine, &table, None).map(|_| ()))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.jobs = None; // ends the helper's loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a flush runs on the nicer thread: it stops once `behind` says so,
/// and runs the steps that take the request threads' locks on `helper`.
struct Pace<'a> {
    behind: &'a dyn Fn(&Memtable) -> bool,
    helper: &'a Helper,
}

/// Runs `step` on the helper when on the nicer thread, else here.
fn locking_step(
    engine: &Engine,
    pace: Option<&Pace<'_>>,
    step: impl FnOnce(&Engine) -> Result<()> + Send + 'static,
) -> Result<()> {
    match pace {
        Some(p) => p.helper.run(step),
        None => step(engine),
    }
}

/// Whether the flush of `table` is behind its pace. Its deadline is the
/// live table filling up: frozen at `flush_bytes`, or sooner where the
/// frozen tables leave it less of the budget (then writers wait). Behind
/// when it has written a smaller share of its keys than the live table
/// has of that room, with a margin for the hand-over; also when another
/// table waits behind it, and when stopping (nothing then needs a core
/// more).
fn behind(engine: &Engine, table: &Memtable) -> bool {
    if engine.signal().stopping {
        return true;
    }
    let (live, frozen, queued) = {
        let t = engine.read_tables();
        let frozen: usize = t.frozen.iter().map(|f| f.bytes()).sum();
        (t.live.bytes(), frozen, t.frozen.len() > 1)
    };
    let room = (engine.opts.memtable_bytes.saturating_sub(frozen)).min(engine.opts.flush_bytes);
    let filled = live as f64 / room.max(1) as f64;
    let written = table.with_parts(|p| p.keys) as f64 / table.len().max(1) as f64;
    queued || room == 0 || filled > 0.1 + 0.8 * written
}

fn run(engine: &Engine, helper: Option<&Helper>) {
    loop {
        let Some(table) = next(engine) else {
            return;
        };
        match contained(|| flush(engine, &table, helper)) {
            Ok(()) => {
                let mut s = engine.signal();
                s.failing = None;
                engine.wake.notify_all();
            }
            Err(e) => {
                if engine.opts.log_flush_failures {
                    log_line(&format!("kvr serve: flush failed: {e}"));
                }
                // After a panic inside redb its state in memory (locks
                // poisoned, caches half written) is not to be trusted, nor
                // closing it: no more tries. The failure stays the
                // engine's (`Engine::broken`); the log keeps every
                // acknowledged write for the recovery of a restart.
                let panicked = matches!(&e, Error::Storage(m) if m.starts_with(PANICKED));
                if panicked {
                    engine.store.forsake();
                } else {
                    heal(engine);
                }
                let mut s = engine.signal();
                let stopping = s.stopping;
                s.failing = Some(e);
                s.broken |= panicked;
                engine.wake.notify_all();
                if stopping || panicked {
                    return; // the log keeps the rest; recovery replays it
                }
                let _ = engine.wake.wait_timeout(s, RETRY_INTERVAL);
            }
        }
    }
}

/// The oldest frozen table, waiting for one; `None` once stopping with
/// nothing left to flush.
fn next(engine: &Engine) -> Option<Arc<Memtable>> {
    let mut s = engine.signal();
    loop {
        if s.abandon {
            return None;
        }
        // A read failed on the file (`Engine::read_failed`): reopen it if
        // redb now refuses it, at most once per RETRY_INTERVAL.
        if s.heal && !s.stopping {
            let wait = s.last_heal.map_or(Duration::ZERO, |at| {
                RETRY_INTERVAL.saturating_sub(at.elapsed())
            });
            if wait.is_zero() {
                s.heal = false;
                s.last_heal = Some(std::time::Instant::now());
                drop(s);
                heal(engine);
                s = engine.signal();
            } else {
                s = engine
                    .wake
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            continue;
        }
        if let Some(t) = engine.read_tables().frozen.first() {
            return Some(t.clone());
        }
        if s.stopping {
            return None;
        }
        s = engine.wake.wait(s).unwrap_or_else(|e| e.into_inner());
    }
}

/// Flushes `table`: on this thread while it keeps its pace, the rest on
/// the helper once it falls behind ([`FLUSH_NICE`]).
fn flush(engine: &Engine, table: &Arc<Memtable>, helper: Option<&Helper>) -> Result<()> {
    let started = std::time::Instant::now();
    match helper {
        // A table written in one commit cannot stop half-way to hand over.
        Some(h) if !in_parts(engine, table) => h.finish(table)?,
        Some(h) => {
            let pace = Pace {
                behind: &|t| behind(engine, t),
                helper: h,
            };
            if !write_rest(engine, table, Some(&pace))? {
                engine.flush_handovers.fetch_add(1, Ordering::Relaxed);
                h.finish(table)?;
            }
        }
        None => {
            write_rest(engine, table, None)?;
        }
    }
    engine.flushes.fetch_add(1, Ordering::Relaxed);
    let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    engine.flush_micros.fetch_add(took, Ordering::Relaxed);
    Ok(())
}

/// Whether `table` is written in parts (see the module header).
fn in_parts(engine: &Engine, table: &Memtable) -> bool {
    engine.flush_in_parts && !table.replayed()
}

/// Writes what is left of `table`: its remaining parts, then its last
/// commit. With a `pace` (the nicer thread), stops before a step once
/// behind, and returns whether it wrote everything.
fn write_rest(engine: &Engine, table: &Arc<Memtable>, pace: Option<&Pace<'_>>) -> Result<bool> {
    let stop = |t: &Memtable| pace.is_some_and(|p| (p.behind)(t));
    if !table.with_parts(|p| p.rows_refreshed) {
        if stop(table) {
            return Ok(false);
        }
        // While the table still shadows its keys (`row_cache.rs`); an
        // empty cache (a server only written to) gets no entry for them
        // meanwhile. (The cache's locks are the readers'.)
        let t = table.clone();
        locking_step(engine, pace, move |engine| {
            if !engine.rows.is_empty() {
                t.with_newest(&[], None, |items| {
                    for (key, version) in items {
                        engine.rows.refresh(key, version);
                    }
                });
            }
            Ok(())
        })?;
        table.with_parts(|p| p.rows_refreshed = true);
    }
    if in_parts(engine, table) && !write_parts(engine, table, pace)? {
        return Ok(false);
    }
    if stop(table) {
        return Ok(false);
    }
    // A table with only a cluster marker has no revision of its own.
    let revision = table
        .last_revision()
        .max(engine.read_tables().base.revision());
    let applied = table.applied();
    let mark = table.mark().unwrap_or_else(|| {
        let (oldest, bytes) = engine.read_tables().base.history_mark();
        super::memtable::HistoryMark { oldest, bytes }
    });
    // A put that is its key's newest version here, of a key this flush
    // creates, is stored once, in `kv`: its history row shares the value.
    // A key that was there before is likely to be written again, and then
    // its row would have to be rewritten with the old value, at a random
    // place in the history, in every part of that flush: under random
    // overwrites that made a flush write 3.1 KB per put instead of 0.8 KB
    // (`docs/benchmarks.md`, "Overwrites keep their value in the history").
    let newest_puts = table.newest_puts();
    // (A copy: `Memtable::absent_among` reads the parts meanwhile.)
    let created_by_parts = table.with_parts(|p| p.absent.clone());
    let mut events = |created_here: &crate::store::Created<'_>,
                      store: &mut crate::store::StoreEvent<'_>|
     -> Result<()> {
        table.with_events(|events| {
            let mut buf = Vec::new();
            for e in events.iter().filter(|e| e.revision >= mark.oldest) {
                let shared = e.kind == super::history::EventKind::Put
                    && newest_puts.contains(e.revision)
                    && (created_here(&e.key) || created_by_parts.contains(&e.key));
                if shared {
                    e.encode_value_in_kv(&mut buf);
                } else {
                    e.encode(&mut buf);
                }
                store(e.revision, &buf)?;
            }
            Ok(())
        })
    };
    let history = crate::store::HistoryUpdate {
        events: &mut events,
        oldest: mark.oldest,
        bytes: mark.bytes,
        inline: super::history::inline_value,
        shares_value: super::history::shares_value,
    };
    let (records, newest) = table.idempotency_records();
    // Records past their window (judged by the newest one this table
    // made, with slack for clocks) are deleted; a lookup judges age by the
    // request's own time anyway, so this only bounds the table's size.
    let delete_before_ms =
        newest.saturating_sub(crate::idempotency::WINDOW_MS + crate::idempotency::KEEP_SLACK_MS);
    let idempotency = crate::store::IdempotencyUpdate {
        records: &records,
        delete_before_ms,
    };
    // (A copy of the deferred keys: the parts stay as they were if this
    // commit fails and is tried again.)
    let (after, deferred) = table.with_parts(|p| (p.upto.clone(), p.deferred.clone()));
    table.with_newest(&deferred, after.as_deref(), |items| {
        engine.store.write_table(
            items.map(sorted_item),
            revision,
            history,
            idempotency,
            applied.as_deref(),
        )
    })?;
    let base = Arc::new(engine.store.snapshot()?.reader()?);
    let t = table.clone();
    locking_step(engine, pace, move |engine| {
        let old = {
            let mut tables = engine.write_tables_unqueued();
            if tables.frozen.first().is_some_and(|f| Arc::ptr_eq(f, &t)) {
                tables.frozen.remove(0);
            }
            let old = std::mem::replace(&mut tables.base, base);
            engine.recount(&tables);
            old
        };
        // Outside the lock: ending a read transaction takes redb's own locks.
        drop(old);
        engine.flushed_expiries(&t);
        Ok(())
    })?;
    // Readers have moved to the new commit, so the pages this flush
    // replaced can be reused: redb hands them back only at a later durable
    // commit. Without it each flush waited for the next one and the file
    // held four copies of the tree instead of two (1 GiB against 544 MiB
    // for 1M keys under a minute of random puts). Failing costs space only,
    // but an I/O error (a full disk) makes redb refuse reads of uncached
    // pages too, so the file is reopened at once, as after a failed flush.
    if let Err(e) = engine.store.reclaim_freed_pages() {
        log_line(&format!("kvr serve: cannot reclaim freed pages: {e}"));
        heal(engine);
    }
    let release = engine
        .releases
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front();
    if let Some(release) = release
        && let Err(e) = release()
    {
        // Harmless: recovery skips records the store already holds.
        log_line(&format!("kvr serve: cannot release a flushed log: {e}"));
    }
    Ok(true)
}

/// Writes every part of `table` but the last (see the module header),
/// going on after the parts a failed or handed-over try wrote; readers
/// move to each. Returns `false` when `stop` stopped it before a part.
fn write_parts(engine: &Engine, table: &Memtable, pace: Option<&Pace<'_>>) -> Result<bool> {
    let part = engine.opts.flush_part_keys;
    let total = table.len();
    loop {
        let (upto, done) = table.with_parts(|p| (p.upto.clone(), p.keys));
        if total.saturating_sub(done) <= part {
            return Ok(true);
        }
        if pace.is_some_and(|p| (p.behind)(table)) {
            return Ok(false);
        }
        let (mut absent, mut deferred) = (Vec::new(), Vec::new());
        let (delta, last, taken) = table.with_newest(&[], upto.as_deref(), |items| {
            // Streamed into the commit, not collected into a vector first.
            let (mut last, mut taken) = (None, 0);
            let items = items.inspect(|(k, _)| {
                last = Some(*k);
                taken += 1;
            });
            let delta = engine.store.write_part(
                items.map(sorted_item),
                part,
                super::history::inline_value,
                &mut |key| absent.push(key.to_vec()),
                &mut |key| deferred.push(key.to_vec()),
            )?;
            Ok::<_, Error>((delta, last.map(<[u8]>::to_vec), taken))
        })?;
        // Recorded before readers move to the part (`Memtable::absent_among`).
        table.with_parts(|p| {
            p.upto = last;
            p.keys += taken;
            p.delta += delta.unwrap_or(0);
            p.absent.extend(absent);
            p.deferred.extend(deferred);
        });
        if delta.is_none() {
            // Every key it took was left to the last commit.
            continue;
        }
        engine.flush_parts.fetch_add(1, Ordering::Relaxed);
        let base = Arc::new(engine.store.snapshot()?.reader()?);
        locking_step(engine, pace, move |engine| {
            let old = {
                let mut t = engine.write_tables_unqueued();
                let old = std::mem::replace(&mut t.base, base);
                engine.recount(&t);
                old
            };
            drop(old);
            Ok(())
        })?;
    }
}

/// A table's version as the store writes it: its value, revision and
/// expiry, or `None` for a delete.
fn sorted_item<'a>((key, v): (&'a [u8], &'a Version)) -> crate::store::SortedItem<'a> {
    let item = v
        .value
        .as_deref()
        .map(|val| (val, v.revision, v.expires_at_ms));
    (key, item)
}

/// How [`contained`] begins the message of a panic it caught.
const PANICKED: &str = "the flush stopped on a fault";

/// Runs one step of the flush, a panic in it (redb's, on a damaged file)
/// turned into an error: the failure is then logged, handed to writers
/// once the memory tables are full (500 `internal`) and shown by
/// `/readyz`, rather than the flush thread dying unseen while writes pile
/// up against a budget no flush will ever free.
fn contained<T>(step: impl FnOnce() -> Result<T>) -> Result<T> {
    crate::panics::contain(step).unwrap_or_else(|caught| {
        Err(Error::Storage(format!(
            "{PANICKED} in the storage engine ({}); the file may be damaged: stop the \
             server (every acknowledged write is in its log) and run kvr check",
            caught.text
        )))
    })
}

/// After a failed flush: if redb now refuses writes, reopen the file at
/// its last durable commit and point readers at it.
fn heal(engine: &Engine) {
    if !engine.store.refuses_writes() {
        return;
    }
    let reopened = engine.store.reopen().map(|()| engine.store.reopened());
    let base = reopened.and_then(|()| engine.store.snapshot()?.reader());
    match base {
        Ok(base) => {
            let mut t = engine.write_tables();
            t.base = Arc::new(base);
            engine.rows.clear();
            engine.recount(&t);
        }
        Err(e) => log_line(&format!("kvr serve: cannot reopen the database: {e}")),
    }
}

/// A line on stderr that never panics (see `server::log!`).
pub(super) fn log_line(text: &str) {
    // Timestamped as every other line of the server's log (SPEC).
    crate::server::log::event(format_args!("{text}"));
}
