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

use super::{Engine, Log, Version};
use crate::error::{Error, Result};
use crate::jsonl::show_key;
use crate::store::check_limits;
use crate::types::{Action, Applied, Op, RangeQuery};

/// How long a writer waiting for room looks again at the flush state.
const ROOM_POLL: Duration = Duration::from_millis(50);

/// A write as the engine takes it.
#[derive(Debug, Default)]
pub struct Request {
    pub ops: Vec<Op>,
    /// `If-Match: *`: the (single) key must exist when the request applies.
    pub must_exist: bool,
    /// Delete every key this range covers, as present when the request
    /// applies (its `ops` are then filled in); at most `max_ops` of them,
    /// else `payload_too_large` and nothing is deleted.
    pub delete_range: Option<(RangeQuery, usize)>,
}

/// The one writer of an engine: owns its log. Not shared between threads.
pub struct EngineWriter {
    engine: Arc<Engine>,
    log: Option<Box<dyn Log>>,
    /// Applying a replicated log: limits were checked by the leader when
    /// it accepted each write, and a node's own limits must not make it
    /// decide differently.
    replicated: bool,
}

/// The group's effect on keys so far: revision if present, `None` if deleted.
type Overlay = HashMap<Vec<u8>, Option<u64>>;

impl EngineWriter {
    pub(super) fn new(engine: Arc<Engine>, log: Box<dyn Log>) -> EngineWriter {
        EngineWriter {
            engine,
            log: Some(log),
            replicated: false,
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

    /// Applies `requests` (see the module header). `Err` when the group as
    /// a whole failed (the log could not be written): nothing was applied.
    pub fn write_group(&mut self, mut requests: Vec<Request>) -> Result<Vec<Result<Applied>>> {
        if self.log.is_some() {
            // (Not while replaying: the replayed log is bounded by the budget already.)
            self.wait_for_room()?;
        }
        let engine = self.engine.clone();
        let (live, outcomes, revs, keys) = {
            let t = engine.read_tables();
            let mut look = Lookup {
                overlay: Overlay::new(),
                tables: &t,
            };
            let mut revision = engine.revision();
            let mut keys = engine.keys.load(Ordering::Acquire);
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
                let expanded = match req.delete_range.take() {
                    Some((query, max_ops)) => look.expand(&query, max_ops, at).map(|ops| {
                        req.ops = ops;
                    }),
                    None => Ok(()),
                };
                let outcome =
                    expanded.and_then(|()| look.apply(req, max, &mut revision, &mut keys));
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
            (t.live.clone(), outcomes, revs, (revision, keys))
        };
        let records: Vec<(u64, &[Op])> = requests
            .iter()
            .zip(&revs)
            .filter_map(|(req, r)| {
                let first = r.iter().copied().find(|&rev| rev > 0)?;
                Some((first, req.ops.as_slice()))
            })
            .collect();
        // No log while replaying one (see `replay`).
        if let Some(log) = self.log.as_mut() {
            log.append(&records)?;
        }
        drop(records);
        let mut versions = Vec::new();
        for (req, op_revs) in requests.into_iter().zip(revs) {
            for (op, rev) in req.ops.into_iter().zip(op_revs) {
                if rev == 0 {
                    continue;
                }
                let value = match op.action {
                    Action::Put(v) => Some(Bytes::from(v)),
                    Action::Delete => None,
                };
                versions.push((
                    op.key,
                    Version {
                        revision: rev,
                        value,
                    },
                ));
            }
        }
        let (revision, key_count) = keys;
        live.insert(versions, || {
            engine.keys.store(key_count, Ordering::Release);
            engine.revision.store(revision, Ordering::Release);
        });
        Ok(outcomes)
    }

    /// Applies operations replayed from the log after a crash: as one
    /// request, at the next revisions, not logged again (they are in the
    /// log already). Returns the revision reached.
    pub fn replay(&mut self, ops: Vec<Op>) -> Result<u64> {
        let request = Request {
            ops,
            ..Request::default()
        };
        let log = self.log.take();
        let outcome = self.write_group(vec![request]);
        self.log = log;
        outcome?.pop().unwrap_or(Ok(Applied::default()))?;
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

    /// Replaces the whole state with `items` at `revision` (installing a
    /// Raft snapshot): every table is flushed first, then the store is
    /// replaced in one commit and readers move to it at once.
    pub fn replace_all(
        &mut self,
        revision: u64,
        marker: &[u8],
        fill: impl FnOnce(&mut crate::backup::Visit<'_>) -> Result<()>,
    ) -> Result<()> {
        if !self.flush_all()? {
            return Err(Error::Storage(
                "cannot install a snapshot: a flush failed".into(),
            ));
        }
        let keys = self.engine.store.replace_all(revision, marker, fill)?;
        let base = Arc::new(self.engine.store.snapshot()?.reader()?);
        let mut t = self.engine.write_tables();
        t.base = base;
        self.engine.keys.store(keys, Ordering::Release);
        self.engine.revision.store(revision, Ordering::Release);
        Ok(())
    }

    /// Freezes the live table for a flush when it is due: it holds
    /// `flush_bytes`, or its first write is `flush_age` old. A failure
    /// (no room for a new log stretch) leaves it live; the next call retries.
    pub fn maybe_freeze(&mut self) -> Result<()> {
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

    /// How long until [`EngineWriter::maybe_freeze`] is due by age, if the
    /// live table has writes.
    pub fn freeze_due_in(&self) -> Option<Duration> {
        let t = self.engine.read_tables();
        let first = t.live.first_write()?;
        Some(self.engine.opts.flush_age.saturating_sub(first.elapsed()))
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
        let release = log.seal()?;
        self.engine.freeze(release);
        Ok(())
    }

    /// Waits while the tables hold their budget. A flush that keeps failing
    /// on a full disk turns into that error, so writes get 507, not a wait.
    fn wait_for_room(&mut self) -> Result<()> {
        let budget = self.engine.opts.memtable_bytes;
        let mut froze = false;
        loop {
            if self.engine.memtable_bytes() < budget {
                return Ok(());
            }
            if !froze {
                // A live table over budget is frozen at once, whatever its age.
                froze = true;
                let _ = self.freeze_nonempty();
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

    /// Stops the engine: freezes the live table, lets the flush thread
    /// write every table, and deletes the log when all of it is durable
    /// in the store. Returns whether it was.
    pub fn close(mut self) -> bool {
        let frozen = self.freeze_nonempty();
        let flushed = self.engine.stop_flushing();
        if frozen.is_err() || !flushed {
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
struct Lookup<'a> {
    overlay: Overlay,
    tables: &'a super::Tables,
}

impl Lookup<'_> {
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
                message: format!(
                    "the range holds more than {max_ops} keys, the server's limit on one \
                     request (--max-batch-ops); delete it in parts"
                ),
            });
        }
        Ok(keys.into_iter().map(Op::delete).collect())
    }

    /// The key's current revision, `None` if absent.
    fn revision_of(&self, key: &[u8]) -> Result<Option<u64>> {
        if let Some(r) = self.overlay.get(key) {
            return Ok(*r);
        }
        let t = self.tables;
        for table in std::iter::once(&t.live).chain(t.frozen.iter().rev()) {
            if let Some(r) = table.newest_revision(key) {
                return Ok(r);
            }
        }
        t.base.revision_of(key)
    }

    /// Checks and applies one request to the overlay: its outcome and the
    /// revision each operation took (0: none).
    fn apply(
        &mut self,
        req: &Request,
        max_value_bytes: usize,
        revision: &mut u64,
        keys: &mut u64,
    ) -> Result<(Applied, Vec<u64>)> {
        for op in &req.ops {
            check_limits(op, max_value_bytes)?;
        }
        let must_exist = if req.must_exist {
            let key = req
                .ops
                .first()
                .map(|op| op.key.as_slice())
                .unwrap_or_default();
            match self.revision_of(key)? {
                Some(r) => Some(r),
                None => {
                    return Err(Error::PreconditionFailed {
                        line: None,
                        key: show_key(key),
                        expected: "any (If-Match: *)".into(),
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
            let present = self.revision_of(&op.key)?.is_some();
            match op.action {
                Action::Put(_) => {
                    *revision += 1;
                    if !present {
                        *keys += 1;
                    }
                    applied.puts += 1;
                    self.overlay.insert(op.key.clone(), Some(*revision));
                    revs.push(*revision);
                }
                Action::Delete if present => {
                    *revision += 1;
                    *keys = keys.saturating_sub(1);
                    applied.deletes += 1;
                    self.overlay.insert(op.key.clone(), None);
                    revs.push(*revision);
                }
                Action::Delete => revs.push(0),
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
        other => Error::Storage(other.to_string()),
    }
}
