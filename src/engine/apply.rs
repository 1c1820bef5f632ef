//! The write path: [`EngineWriter::write_group`] applies a group of
//! independent requests at the next revisions. Each request is
//! all-or-nothing and is checked against the state its predecessors in the
//! group leave; a request that fails (a limit, a condition) gets its own
//! error and the others go on. The group is logged with one sync before
//! any of it is visible.
//!
//! Revisions follow `Store::apply`: each put, and each delete of a key
//! present at that point, takes the next revision in input order; a delete
//! of an absent key takes none. Conditions are checked against the state
//! before the request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::history::{Event, EventKind};
use super::memtable::HistoryMark;
use super::{Engine, Log, Version};
use crate::error::{Error, Result};
use crate::idempotency::{Claim, Outcome, Record};
use crate::jsonl::show_key;
use crate::store::check_limits;
use crate::types::{Action, Applied, Op, RangeQuery};
use crate::wal::LogRecord;

/// How long a writer waiting for room looks again at the flush state.
const ROOM_POLL: Duration = Duration::from_millis(50);
/// Events read at a time while trimming the history down to its byte bound.
const TRIM_STEP: u64 = 256;

/// A write as the engine takes it.
#[derive(Debug, Default)]
pub struct Request {
    pub ops: Vec<Op>,
    /// `If-Match: *` (or a DELETE's `If-Match: "0"`): the (single) key must
    /// exist when the request applies.
    pub must_exist: bool,
    /// Delete every key this range covers, as present when the request
    /// applies (its `ops` are then filled in); at most `max_ops` of them,
    /// else `payload_too_large` and nothing is deleted.
    pub delete_range: Option<(RangeQuery, usize)>,
    /// Sent with an `Idempotency-Key`: a repeat within the window gets the
    /// recorded outcome and is not applied (see `crate::idempotency`).
    pub idempotency: Option<Claim>,
}

/// The one writer of an engine: owns its log. Not shared between threads.
pub struct EngineWriter {
    engine: Arc<Engine>,
    log: Option<Box<dyn Log>>,
    /// The bytes of the kept history (see [`HistoryMark`]).
    history_bytes: u64,
    /// Applying a replicated log: limits were checked by the leader when
    /// it accepted each write, and a node's own limits must not make it
    /// decide differently.
    replicated: bool,
    /// After a freeze that could not start a new log segment (a full
    /// disk, a log directory gone): no freeze is tried by age or size
    /// before this. Without it the writer, woken at once by a table due
    /// by age, retried without pause: a core spinning and gigabytes of
    /// the same error line within minutes.
    freeze_retry_at: Option<std::time::Instant>,
}

/// A key's revision and expiry when present.
type KeyState = Option<(u64, Option<u64>)>;
/// The group's effect on keys so far: revision and expiry if present,
/// `None` if deleted. Hashed as the memory tables hash keys (SipHash was
/// ~2 % of a PUT's instructions here).
type Overlay = HashMap<Vec<u8>, KeyState, super::memtable::KeyHasher>;

impl EngineWriter {
    pub(super) fn new(engine: Arc<Engine>, log: Box<dyn Log>, history_bytes: u64) -> EngineWriter {
        EngineWriter {
            engine,
            log: Some(log),
            history_bytes,
            replicated: false,
            freeze_retry_at: None,
        }
    }

    /// This writer, applying a replicated log (see the field).
    pub(super) fn into_replicated(mut self) -> EngineWriter {
        self.log = Some(Box::new(super::NoLog));
        self.replicated = true;
        self
    }

    /// The engine this writer writes.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Whether the log can take no more writes (see [`Log::is_broken`]).
    pub fn is_broken(&self) -> bool {
        self.log.as_ref().is_none_or(|l| l.is_broken())
    }

    /// Why the log refused the last group because it or the database file
    /// lost its name, or it could not go on (see [`Log::lost`]).
    pub fn log_lost(&self) -> Option<String> {
        self.log.as_ref().and_then(|l| l.lost())
    }

    /// Applies `requests` (see the module header). `Err` when the group as
    /// a whole failed (the log could not be written): nothing was applied.
    pub fn write_group(&mut self, mut requests: Vec<Request>) -> Result<Vec<Result<Applied>>> {
        if self.log.is_some() {
            // (Not while replaying: the replayed log is bounded by the budget already.)
            self.wait_for_room()?;
        }
        let engine = self.engine.clone();
        // Operations in the group (a range delete adds its keys later).
        let group_ops: usize = requests.iter().map(|r| r.ops.len()).sum();
        let (live, outcomes, revs, keys, made) = {
            let t = engine.read_tables();
            let mut look = Lookup::new(&t);
            // Sized for the group at once: grown from empty, the overlay was
            // rehashed several times per group, and a replayed group of
            // 65,536 records copied its unresolved keys a dozen times.
            look.overlay.reserve(group_ops);
            look.unresolved.reserve(group_ops);
            // Per request: the idempotency record it made, and the
            // revision its first write took or would take.
            let mut made: Vec<Option<(Arc<Record>, u64)>> = Vec::with_capacity(requests.len());
            let mut revision = engine.revision();
            // The group's known change in key count (`memtable.rs`).
            let mut keys: i64 = 0;
            let mut outcomes = Vec::with_capacity(requests.len());
            let mut revs: Vec<Vec<u64>> = Vec::with_capacity(requests.len());
            let at = engine.revision();
            // A replayed log was within the limits when it was written, whatever
            // they are now.
            let max = match self.log {
                Some(_) if !self.replicated => engine.opts.max_value_bytes,
                _ => usize::MAX,
            };
            for req in &mut requests {
                let next = revision + 1;
                if let Some(claim) = &req.idempotency {
                    match look.idempotency(claim) {
                        Ok(Some(record)) => {
                            // A repeat: answered from the record, not applied.
                            outcomes.push(record.replay(claim));
                            revs.push(Vec::new());
                            made.push(None);
                            req.ops.clear();
                            req.delete_range = None;
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            outcomes.push(Err(e));
                            revs.push(Vec::new());
                            made.push(None);
                            req.ops.clear();
                            req.delete_range = None;
                            continue;
                        }
                    }
                }
                let expanded = match req.delete_range.take() {
                    Some((query, max_ops)) => look.expand(&query, max_ops, at).map(|ops| {
                        req.ops = ops;
                    }),
                    None => Ok(()),
                };
                let outcome =
                    expanded.and_then(|()| look.apply(req, max, &mut revision, &mut keys));
                let recorded = req.idempotency.as_ref().and_then(|claim| {
                    let outcome = Outcome::of(outcome.as_ref().map(|(a, _)| a))?;
                    let record = Arc::new(Record {
                        time_ms: claim.time_ms,
                        fingerprint: claim.fingerprint,
                        outcome,
                    });
                    look.made.insert(claim.key.clone(), record.clone());
                    Some((record, next))
                });
                made.push(recorded);
                match outcome {
                    Ok((applied, op_revs)) => {
                        outcomes.push(Ok(applied));
                        revs.push(op_revs);
                    }
                    Err(e) => {
                        outcomes.push(Err(e));
                        revs.push(Vec::new());
                    }
                }
            }
            let unresolved = std::mem::take(&mut look.unresolved);
            (
                t.live.clone(),
                outcomes,
                revs,
                (revision, (unresolved, keys)),
                made,
            )
        };
        self.log_group(&requests, &revs, &made)?;
        let made: Vec<(String, Arc<Record>)> = requests
            .iter()
            .zip(made)
            .filter_map(|(req, m)| Some((req.idempotency.as_ref()?.key.clone(), m?.0)))
            .collect();
        let mut versions = Vec::with_capacity(group_ops);
        let mut expiring = Vec::new();
        let mut events: Vec<Event> = Vec::with_capacity(group_ops);
        for (req, op_revs) in requests.into_iter().zip(revs) {
            let first_event = events.len();
            for (op, rev) in req.ops.into_iter().zip(op_revs) {
                if rev == 0 {
                    continue;
                }
                let kind = match op.action {
                    Action::Put(_) => EventKind::Put,
                    Action::Delete | Action::Erase { expired: false } => EventKind::Delete,
                    Action::Expire { .. } | Action::Erase { expired: true } => EventKind::Expired,
                };
                let value = match op.action {
                    Action::Put(v) => Some(Bytes::from(v)),
                    Action::Delete | Action::Expire { .. } | Action::Erase { .. } => None,
                };
                let expires_at_ms = value.as_ref().and(op.expires_at_ms);
                if let Some(at) = expires_at_ms {
                    expiring.push((at, op.key.clone(), rev));
                }
                events.push(Event {
                    revision: rev,
                    kind,
                    key: op.key.clone(),
                    value: value.clone().unwrap_or_default(),
                    expires_at_ms,
                    batch_end: false,
                });
                versions.push((
                    op.key,
                    Version {
                        revision: rev,
                        value,
                        expires_at_ms,
                    },
                ));
            }
            if events.len() > first_event
                && let Some(last) = events.last_mut()
            {
                last.batch_end = true;
            }
        }
        let mark = self.trim_history(&events, keys.0)?;
        if !expiring.is_empty() {
            let mut pending = engine.expiring.lock().unwrap_or_else(|e| e.into_inner());
            for (at, key, rev) in expiring {
                pending.insert((at, key), rev);
            }
        }
        let (revision, (unresolved, key_delta)) = keys;
        live.add_idempotency(made);
        live.insert(versions, events, mark, (unresolved, key_delta), || {
            engine.keys.fetch_add(key_delta, Ordering::AcqRel);
            engine.revision.store(revision, Ordering::Release);
            engine.oldest.store(mark.oldest, Ordering::Release);
        });
        self.history_bytes = mark.bytes;
        engine.notify.send_replace(revision);
        Ok(outcomes)
    }

    /// Appends a group's requests to the log, with the revisions each
    /// operation took (0: not written) and the idempotency records made.
    /// Without a log (while replaying one, see `replay`) nothing is encoded.
    fn log_group(
        &mut self,
        requests: &[Request],
        revs: &[Vec<u64>],
        made: &[Option<(Arc<Record>, u64)>],
    ) -> Result<()> {
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        let encoded: Vec<Option<(&str, Vec<u8>)>> = requests
            .iter()
            .zip(made)
            .map(|(req, m)| {
                let key = req.idempotency.as_ref().map(|c| c.key.as_str())?;
                m.as_ref().map(|(record, _)| (key, record.encode()))
            })
            .collect();
        let records: Vec<LogRecord<'_>> = requests
            .iter()
            .zip(revs)
            .zip(made.iter().zip(&encoded))
            .filter_map(|((req, r), (m, enc))| {
                let idempotency = enc.as_ref().map(|(k, bytes)| (*k, bytes.as_slice()));
                match r.iter().copied().find(|&rev| rev > 0) {
                    Some(first) => Some(LogRecord {
                        first_revision: first,
                        ops: &req.ops,
                        revisions: Some(r),
                        idempotency,
                    }),
                    // Nothing written, but an outcome recorded: logged
                    // alone, at the revision the next write takes.
                    None => m.as_ref().map(|(_, next)| LogRecord {
                        first_revision: *next,
                        ops: &[],
                        revisions: None,
                        idempotency,
                    }),
                }
            })
            .collect();
        if let Err(e) = log.append(&records) {
            if log.lost().is_some() {
                self.flush_what_the_lost_log_held();
            }
            return Err(e);
        }
        Ok(())
    }

    /// The history state after a group whose events are `new` and whose
    /// last revision is `revision`: the oldest revision kept moves up until
    /// the kept events are within both bounds, and on to the first event
    /// of a request (a request's events are kept whole or not at all).
    /// Decided here, at apply, so every replica of the log keeps the same
    /// history.
    fn trim_history(&self, new: &[Event], revision: u64) -> Result<HistoryMark> {
        let bounds = self.engine.history_bounds();
        if bounds.events == 0 {
            return Ok(HistoryMark {
                oldest: revision + 1,
                bytes: 0,
            });
        }
        let mut oldest = self.engine.oldest.load(Ordering::Acquire);
        let mut bytes = self.history_bytes + new.iter().map(Event::size).sum::<u64>();
        // Whether the last event trimmed ended its request.
        let mut trimmed_end = true;
        let by_count = (revision + 1).saturating_sub(bounds.events).max(oldest);
        if by_count > oldest {
            let sizes = self.engine.event_sizes_each(oldest, by_count, new)?;
            bytes = bytes.saturating_sub(sizes.iter().map(|&(size, _)| size).sum());
            trimmed_end = sizes.last().is_none_or(|&(_, end)| end);
            oldest = by_count;
        }
        // Then by bytes, and on to the end of a request: a stream from the
        // oldest revision kept never starts inside one (SPEC "Watch").
        while (bytes > bounds.bytes || !trimmed_end) && oldest <= revision {
            let to = (oldest + TRIM_STEP).min(revision + 1);
            let sizes = self.engine.event_sizes_each(oldest, to, new)?;
            if sizes.is_empty() {
                // Kept nowhere (cannot happen): nothing to count.
                oldest = to;
                trimmed_end = true;
            }
            for (size, end) in sizes {
                if bytes <= bounds.bytes && trimmed_end {
                    break;
                }
                bytes = bytes.saturating_sub(size);
                oldest += 1;
                trimmed_end = end;
            }
        }
        Ok(HistoryMark { oldest, bytes })
    }

    /// Applies operations replayed from the log after a crash: as the
    /// requests they were (`ends`: where each one's operations end), at the
    /// next revisions, not logged again (they are in the log already).
    /// Returns the revision reached. The idempotency records those writes
    /// made come with them.
    pub fn replay(
        &mut self,
        mut ops: Vec<Op>,
        ends: &[usize],
        records: Vec<(String, Vec<u8>)>,
    ) -> Result<u64> {
        if !ops.is_empty() {
            self.engine.read_tables().live.set_replayed();
            // Split from the back, so each split moves only its own ops.
            let mut requests = Vec::with_capacity(ends.len());
            for &start in ends.iter().rev().skip(1).chain([&0]) {
                let request_ops = ops.split_off(start.min(ops.len()));
                if !request_ops.is_empty() {
                    requests.push(Request {
                        ops: request_ops,
                        ..Request::default()
                    });
                }
            }
            requests.reverse();
            let log = self.log.take();
            let outcome = self.write_group(requests);
            self.log = log;
            for applied in outcome? {
                applied?;
            }
        }
        let t = self.engine.read_tables();
        let mut kept = Vec::with_capacity(records.len());
        for (key, bytes) in records {
            let record = Arc::new(Record::decode(&bytes)?);
            // A record the log holds may be older than one a flush already
            // stored (the log outlived its flush): the newer one stays.
            let look = Lookup::new(&t);
            let stored = look.newest_record(&key)?.map(|r| r.time_ms);
            if stored.is_none_or(|time| time <= record.time_ms) {
                kept.push((key, record));
            }
        }
        t.live.add_idempotency(kept);
        Ok(self.engine.revision())
    }

    /// Records the cluster state machine's marker for the state reached by
    /// the groups written so far: it is flushed with them.
    pub fn set_applied(&mut self, marker: Vec<u8>) {
        self.engine.read_tables().live.set_applied(marker);
    }

    /// Flushes every table now and waits for it; `false` when a flush
    /// failed. (A Raft snapshot covers only what is durable.)
    pub fn flush_all(&mut self) -> Result<bool> {
        self.freeze_nonempty()?;
        Ok(self.engine.wait_flushed())
    }

    /// Replaces the whole state with what `fill` gives at `revision`
    /// (installing a Raft snapshot: the data, then the history and the
    /// idempotency records, see `Store::replace_all`): every table is
    /// flushed first, then the store is replaced in one commit and readers
    /// move to it at once.
    pub fn replace_all(
        &mut self,
        revision: u64,
        marker: &[u8],
        fill: impl FnOnce(
            &mut crate::backup::Visit<'_>,
            &mut dyn FnMut(crate::store::Replaced<'_>) -> Result<()>,
        ) -> Result<()>,
    ) -> Result<()> {
        if !self.flush_all()? {
            return Err(Error::Storage(
                "cannot install a snapshot: a flush failed".into(),
            ));
        }
        let (keys, (oldest, bytes)) = self.engine.store.replace_all(revision, marker, fill)?;
        let base = Arc::new(self.engine.store.snapshot()?.reader()?);
        {
            let mut t = self.engine.write_tables();
            t.base = base;
            self.engine.rows.clear();
            self.engine
                .keys
                .store(i64::try_from(keys).unwrap_or(i64::MAX), Ordering::Release);
            self.engine.revision.store(revision, Ordering::Release);
            self.engine.oldest.store(oldest, Ordering::Release);
        }
        self.history_bytes = bytes;
        self.engine
            .expiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.engine.notify.send_replace(revision);
        Ok(())
    }

    /// Freezes the live table for a flush when it is due: it holds
    /// `flush_bytes`, or its first write is `flush_age` old. A failure
    /// (no room for a new log stretch) leaves it live; calls within
    /// `flush::RETRY_INTERVAL` after it do nothing, the next one retries.
    pub fn maybe_freeze(&mut self) -> Result<()> {
        if self
            .freeze_retry_at
            .is_some_and(|at| std::time::Instant::now() < at)
        {
            return Ok(());
        }
        let due = {
            let t = self.engine.read_tables();
            let live = &t.live;
            !live.is_empty()
                && (live.bytes() >= self.engine.opts.flush_bytes
                    || live
                        .first_write()
                        .is_some_and(|w| w.elapsed() >= self.engine.opts.flush_age))
        };
        if due { self.freeze() } else { Ok(()) }
    }

    /// How long until [`EngineWriter::maybe_freeze`] is due by age (or may
    /// retry a failed freeze), if the live table has writes.
    pub fn freeze_due_in(&self) -> Option<Duration> {
        let t = self.engine.read_tables();
        let first = t.live.first_write()?;
        let by_age = self.engine.opts.flush_age.saturating_sub(first.elapsed());
        let retry = self.freeze_retry_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(std::time::Instant::now())
        });
        Some(by_age.max(retry))
    }

    /// Freezes the live table now if it has writes, whatever its size or
    /// age (tests place flushes at chosen points with it).
    pub fn freeze_now(&mut self) -> Result<()> {
        self.freeze_nonempty()
    }

    /// Stops the flush thread without flushing or touching the log, as a
    /// crash would leave things (for crash tests).
    pub fn abandon(self) {
        self.engine.abandon_flushing();
    }

    fn freeze(&mut self) -> Result<()> {
        let log = self.log.as_mut().ok_or_else(closed)?;
        match log.seal() {
            Ok(release) => {
                self.freeze_retry_at = None;
                self.engine.freeze(release);
                Ok(())
            }
            Err(e) => {
                self.freeze_retry_at =
                    Some(std::time::Instant::now() + super::flush::RETRY_INTERVAL);
                Err(e)
            }
        }
    }

    /// Waits while the tables hold their budget. A flush that keeps failing
    /// on a full disk turns into that error, so writes get 507, not a wait.
    fn wait_for_room(&mut self) -> Result<()> {
        if self.engine.memtable_bytes() < self.engine.opts.memtable_bytes {
            return Ok(());
        }
        // A stall: counted for `/metrics`, however it ends.
        let since = std::time::Instant::now();
        let waited = self.wait_for_room_stalled();
        self.engine.stalled(since.elapsed());
        waited
    }

    fn wait_for_room_stalled(&mut self) -> Result<()> {
        let budget = self.engine.opts.memtable_bytes;
        loop {
            if self.engine.memtable_bytes() < budget {
                return Ok(());
            }
            // A live table over budget is frozen at once, whatever its age.
            // While that fails (no new log segment could be started), no
            // flush can make room: the group is refused with why, and the
            // freeze is tried again after `RETRY_INTERVAL`. It was tried
            // once, and the writer then waited for good: every write hung,
            // and SIGTERM with them (two failed directory syncs; found by an
            // audit).
            if !self.engine.read_tables().live.is_empty() {
                let due = self
                    .freeze_retry_at
                    .is_none_or(|at| std::time::Instant::now() >= at);
                let frozen = if due {
                    self.freeze()
                } else {
                    Err(no_segment())
                };
                if let Err(e) = frozen {
                    return Err(match e {
                        e @ Error::DiskFull { .. } => e,
                        e => Error::Unavailable {
                            message: format!(
                                "the memory tables are full and their flush cannot start: \
                                 {e}; the write was not applied; retry"
                            ),
                            overloaded: false,
                        },
                    });
                }
            }
            let s = self.engine.signal();
            if let Some(e) = &s.failing {
                return Err(copy_error(e));
            }
            if s.stopping {
                return Err(closed());
            }
            let _ = self.engine.wake.wait_timeout(s, ROOM_POLL);
        }
    }

    fn freeze_nonempty(&mut self) -> Result<()> {
        if self.engine.read_tables().live.is_empty() {
            return Ok(());
        }
        self.freeze()
    }

    /// Looks at the log while no write comes ([`Log::check`]); the writes
    /// of a log found lost are flushed at once, as after a refused group.
    pub fn check_log(&mut self) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        log.check();
        if log.lost().is_some() {
            self.flush_what_the_lost_log_held();
        }
    }

    /// How long the writer may wait for a write before [`EngineWriter::check_log`]
    /// is due: while the live table holds writes only in the log, or the
    /// log refuses appends.
    pub fn check_log_in(&self) -> Option<Duration> {
        let log = self.log.as_ref()?;
        let every = log.check_every()?;
        (log.lost().is_some() || !self.engine.read_tables().live.is_empty()).then_some(every)
    }

    /// Freezes the live table without sealing the log (see
    /// [`EngineWriter::close`]): its stretch of the log is released with
    /// the next sealed one, or removed with the whole log at a stop.
    fn freeze_unsealed(&mut self) {
        if !self.engine.read_tables().live.is_empty() {
            self.engine.freeze(Box::new(|| Ok(())));
        }
    }

    /// When the log was found deleted or moved under the server, the
    /// writes acknowledged since the last flush are durable nowhere a
    /// restart looks: they are flushed into the store at once. A seal
    /// would need a new log segment, which a deleted log directory cannot
    /// give, so the table is frozen without one. (Also when the log could
    /// not start a new segment: then it only leaves the log less to hold.)
    fn flush_what_the_lost_log_held(&mut self) {
        self.freeze_unsealed();
    }

    /// Stops the engine: freezes the live table, lets the flush thread
    /// write every table, and deletes the log when all of it is durable
    /// in the store. Returns whether it was.
    pub fn close(mut self) -> bool {
        // No write follows, and the whole log is removed below once every
        // table is flushed, so the last table needs no seal. A seal starts
        // a new segment, which a log directory deleted under the server
        // cannot give: a stop then flushed nothing, and every write since
        // the last flush was lost with the deleted log (found by checking
        // an audit's fix).
        self.freeze_unsealed();
        if !self.engine.stop_flushing() {
            return false;
        }
        match self.log.take().map(|l| l.remove()) {
            Some(Err(e)) => {
                crate::engine::flush::log_line(&format!(
                    "kvr serve: cannot remove the write-ahead log: {e}"
                ));
                false
            }
            _ => true,
        }
    }
}

/// Why a freeze is not tried before its retry time: the last one could not
/// start a new log segment.
fn no_segment() -> Error {
    Error::Unavailable {
        message: format!(
            "a new log segment could not be started (tried again every {} s; the server's log \
             has the details)",
            super::flush::RETRY_INTERVAL.as_secs()
        ),
        overloaded: false,
    }
}

impl Drop for EngineWriter {
    /// A writer dropped without [`EngineWriter::close`] stops the flush
    /// thread as a crash would: what is not flushed stays in the log.
    fn drop(&mut self) {
        if self.log.is_some() {
            self.engine.abandon_flushing();
        }
    }
}

/// The state a request is checked against: the group's overlay, the
/// tables, then redb.
impl super::Engine {
    /// The newest record kept for an idempotency key, whatever its age
    /// (for tests and `kvr check`).
    pub fn idempotency_record(&self, key: &str) -> Result<Option<Arc<Record>>> {
        let t = self.read_tables();
        Lookup::new(&t).newest_record(key)
    }
}

struct Lookup<'a> {
    overlay: Overlay,
    /// Keys the group put while no table held them, not looked up in redb
    /// (see `memtable.rs`).
    unresolved: Vec<Vec<u8>>,
    /// Idempotency records made by the group so far.
    made: HashMap<String, Arc<Record>>,
    tables: &'a super::Tables,
}

impl<'a> Lookup<'a> {
    /// Nothing changed yet, over `tables`.
    fn new(tables: &'a super::Tables) -> Lookup<'a> {
        Lookup {
            overlay: Overlay::default(),
            unresolved: Vec::new(),
            made: HashMap::new(),
            tables,
        }
    }

    /// The record that answers `claim`, if one is kept and in its window:
    /// the group's, then the tables' newest first, then the store's.
    fn idempotency(&self, claim: &Claim) -> Result<Option<Arc<Record>>> {
        Ok(self.newest_record(&claim.key)?.filter(|r| r.answers(claim)))
    }

    /// The newest record of an idempotency key, in or out of its window.
    fn newest_record(&self, key: &str) -> Result<Option<Arc<Record>>> {
        let t = self.tables;
        let found = match self.made.get(key) {
            Some(r) => Some(r.clone()),
            None => match std::iter::once(&t.live)
                .chain(t.frozen.iter().rev())
                .find_map(|table| table.idempotency(key))
            {
                Some(r) => Some(r),
                None => match t.base.idempotency(key)? {
                    Some(bytes) => Some(Arc::new(Record::decode(&bytes)?)),
                    None => None,
                },
            },
        };
        Ok(found)
    }

    /// The deletes of a range delete: the keys present in `query` at
    /// revision `at`, as changed by the group so far, in key order.
    fn expand(&self, query: &RangeQuery, max_ops: usize, at: u64) -> Result<Vec<Op>> {
        let t = self.tables;
        let mut tables = vec![t.live.clone()];
        tables.extend(t.frozen.iter().rev().cloned());
        let snap = super::Snapshot::new(at, tables, t.base.clone());
        let mut keys = std::collections::BTreeSet::new();
        let keys_only = RangeQuery {
            limit: None,
            keys_only: true,
            ..query.clone()
        };
        snap.range(&keys_only, |k, _| {
            if !matches!(self.overlay.get(k), Some(None)) {
                keys.insert(k.to_vec());
            }
            Ok(keys.len() <= max_ops)
        })?;
        let in_range = |k: &[u8]| {
            let Some((lower, upper)) = query.bounds() else {
                return false;
            };
            k >= lower.as_slice() && upper.as_deref().is_none_or(|u| k < u)
        };
        for (k, state) in &self.overlay {
            if state.is_some() && in_range(k) {
                keys.insert(k.clone());
            }
        }
        if keys.len() > max_ops {
            return Err(Error::TooLarge {
                // SPEC: a range delete is atomic, so it is never split
                // here; the message says what the user may do instead.
                message: format!(
                    "nothing was deleted: the range holds more than {max_ops} keys, the \
                     server's limit on one request (serve --max-batch-ops), and a range delete \
                     is one atomic request; to delete it at once, restart the server with a \
                     larger --max-batch-ops (or, for a server not in a cluster, stop it and \
                     run the delete with --db on its file, which has no limit); or delete it \
                     in parts, each atomic on its own: narrower ranges (--range START END) of \
                     at most {max_ops} keys each (`kvr range --keys-only` lists the keys)"
                ),
            });
        }
        Ok(keys.into_iter().map(Op::delete).collect())
    }

    /// The key's current revision and expiry, `None` if absent.
    fn state_of(&self, key: &[u8]) -> Result<KeyState> {
        if let Some(r) = self.overlay.get(key) {
            return Ok(*r);
        }
        let t = self.tables;
        for table in std::iter::once(&t.live).chain(t.frozen.iter().rev()) {
            if let Some(r) = table.newest_state(key) {
                return Ok(r);
            }
        }
        t.base.state_of(key)
    }

    /// The key's current state as the group and the memory tables know
    /// it: `None` when none of them holds the key (then only redb knows).
    fn state_in_memory(&self, key: &[u8]) -> Option<KeyState> {
        if let Some(r) = self.overlay.get(key) {
            return Some(*r);
        }
        let t = self.tables;
        std::iter::once(&t.live)
            .chain(t.frozen.iter().rev())
            .find_map(|table| table.newest_state(key))
    }

    /// The key's current revision, `None` if absent.
    fn revision_of(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.state_of(key)?.map(|(r, _)| r))
    }

    /// Checks and applies one request to the overlay: its outcome and the
    /// revision each operation took (0: none).
    fn apply(
        &mut self,
        req: &Request,
        max_value_bytes: usize,
        revision: &mut u64,
        keys: &mut i64,
    ) -> Result<(Applied, Vec<u64>)> {
        for op in &req.ops {
            check_limits(op, max_value_bytes)?;
        }
        let must_exist = if req.must_exist {
            let first = req.ops.first();
            let key = first.map(|op| op.key.as_slice()).unwrap_or_default();
            match self.revision_of(key)? {
                Some(r) => Some(r),
                None => {
                    return Err(Error::PreconditionFailed {
                        line: None,
                        key: show_key(key),
                        // `If-Match: *`, or a DELETE's `If-Match: "0"`
                        // (which no present key matches either).
                        expected: match first.and_then(|op| op.if_revision) {
                            // "0" holds for an absent key, as for a PUT,
                            // but leaves a delete nothing to delete.
                            Some(0) => "0 (absent: there is nothing to delete)".into(),
                            Some(n) => n.to_string(),
                            None => "any (If-Match: *)".into(),
                        },
                        current: None,
                    });
                }
            }
        } else {
            None
        };
        for op in &req.ops {
            if let Some(expected) = op.if_revision.or(must_exist) {
                let current = self.revision_of(&op.key)?;
                crate::store::condition_holds(op, expected, current)?;
            }
        }
        let mut applied = Applied::default();
        let mut revs = Vec::with_capacity(req.ops.len());
        for op in &req.ops {
            let current = match op.action {
                // A plain put takes a revision whether or not the key
                // exists: redb is asked only when someone wants the count.
                Action::Put(_) if op.if_revision.is_none() && must_exist.is_none() => {
                    match self.state_in_memory(&op.key) {
                        Some(state) => state,
                        None => {
                            self.unresolved.push(op.key.clone());
                            // Counted as present until resolved.
                            Some((0, None))
                        }
                    }
                }
                _ => self.state_of(&op.key)?,
            };
            let present = current.is_some();
            match op.action {
                Action::Put(_) => {
                    *revision += 1;
                    if !present {
                        *keys += 1;
                    }
                    applied.puts += 1;
                    self.overlay
                        .insert(op.key.clone(), Some((*revision, op.expires_at_ms)));
                    revs.push(*revision);
                }
                Action::Expire {
                    revision: r,
                    expires_at_ms: at,
                } if current == Some((r, Some(at))) => {
                    *revision += 1;
                    *keys -= 1;
                    applied.deletes += 1;
                    self.overlay.insert(op.key.clone(), None);
                    revs.push(*revision);
                }
                Action::Expire { .. } => revs.push(0),
                Action::Delete if present => {
                    *revision += 1;
                    *keys -= 1;
                    applied.deletes += 1;
                    self.overlay.insert(op.key.clone(), None);
                    revs.push(*revision);
                }
                Action::Delete => revs.push(0),
                // Replayed from the log: it took a revision then. The key
                // may be gone from the store already (a flush in parts).
                Action::Erase { .. } => {
                    *revision += 1;
                    if present {
                        *keys -= 1;
                    }
                    applied.deletes += 1;
                    self.overlay.insert(op.key.clone(), None);
                    revs.push(*revision);
                }
            }
        }
        applied.revision = *revision;
        Ok((applied, revs))
    }
}

fn closed() -> Error {
    Error::Unavailable {
        message: "the server is shutting down; retry against a running server".into(),
        overloaded: false,
    }
}

/// The same error for every writer that meets a failing flush.
pub fn copy_error(e: &Error) -> Error {
    match e {
        Error::DiskFull { context } => Error::DiskFull {
            context: context.clone(),
        },
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::OutcomeUnknown { message } => Error::OutcomeUnknown {
            message: message.clone(),
        },
        // A log that cannot take writes for now (`Wal::repair`): 503.
        Error::Unavailable {
            message,
            overloaded,
        } => Error::Unavailable {
            message: message.clone(),
            overloaded: *overloaded,
        },
        other => Error::Storage(other.to_string()),
    }
}
