//! The one write path: [`Store::apply`] applies a sequence of operations at
//! the next revisions, all or nothing, in one redb transaction.
//!
//! Revisions: each put, and each delete of a key present at that point of the
//! sequence, takes the next revision, in input order. A delete of an absent
//! key takes none. Conditions (`if_revision`) are checked against the state
//! *before* the batch, read from a snapshot taken when the write transaction
//! began (no other writer can commit while we hold it).
//!
//! The runs a write is cut into are in [`super::runs`]; how their records
//! go into the tables, in [`super::write_tables`].

use redb::{ReadableTable, Table};

use super::Store;
use super::record::{
    self, EXPIRY, KV, META, META_HISTORY_BYTES, META_HISTORY_OLDEST, META_KEYS, META_REVISION,
};
use super::runs::{RunState, SortedRun, SortedRuns};
use super::write_tables::{KvTable, Tables};
use crate::error::{Error, Result};
use crate::jsonl::show_key;
use crate::limits;
use crate::types::{Action, Applied, Op};

/// How a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// fsync before returning, with quick repair: survives power loss and
    /// reopens in milliseconds after a crash.
    Durable,
    /// Visible to readers at once but not synced: for a caller that made the
    /// operations durable elsewhere (a write-ahead log) and checkpoints later.
    Buffered,
}

/// The commits [`Store::apply_runs_after_sweep`] (every [`Store::apply`]:
/// the command line's writes) has made in this process, locked while one
/// is written. See [`commits_settled`].
static COMMITS: std::sync::Mutex<u64> = std::sync::Mutex::new(0);

/// Waits until no commit of [`Store::apply_runs_after_sweep`] is being
/// written, and holds new ones off while the guard lives; the guard holds
/// how many this process has made. For a process about to exit at once (a
/// second SIGINT, `crate::interrupt`): a commit cut off after it wrote its
/// header is applied all the same when the file is next opened, so what
/// the process says was applied must wait for the commit to end.
pub fn commits_settled() -> std::sync::MutexGuard<'static, u64> {
    COMMITS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Most expired keys a write command with `--db` deletes before its write
/// (SPEC "Expiry (TTL)"): bounds the extra work of one command however many
/// keys expired while no command ran.
pub const LOCAL_SWEEP_MAX: usize = 10_000;

impl Store {
    /// Applies `ops` in order at the next revisions, atomically: on any error
    /// (a bad op from the iterator, a failed condition, I/O) nothing is
    /// written. An input that changes nothing commits nothing.
    pub fn apply<I>(&self, ops: I, commit: Commit, max_value_bytes: usize) -> Result<Applied>
    where
        I: IntoIterator<Item = Result<Op>>,
    {
        self.apply_at(ops, commit, max_value_bytes, None)
    }

    /// [`Store::apply`], with conditions judged as `--db` commands see the
    /// data: a key expired at `now_ms` (when given) counts as absent.
    pub fn apply_at<I>(
        &self,
        ops: I,
        commit: Commit,
        max_value_bytes: usize,
        now_ms: Option<u64>,
    ) -> Result<Applied>
    where
        I: IntoIterator<Item = Result<Op>>,
    {
        let runs = SortedRuns::new(ops.into_iter(), self.run_max_bytes);
        self.apply_runs_at(runs, commit, max_value_bytes, now_ms)
    }

    /// Most input bytes one sorted run of [`Store::apply_at`] holds.
    pub fn run_max_bytes(&self) -> usize {
        self.run_max_bytes
    }

    /// [`Store::apply_at`] for operations already cut into sorted runs
    /// ([`SortedRuns`]), which another thread may build while this one
    /// writes: an error from `runs` (after the runs before it) aborts all.
    pub fn apply_runs_at<I>(
        &self,
        runs: I,
        commit: Commit,
        max_value_bytes: usize,
        now_ms: Option<u64>,
    ) -> Result<Applied>
    where
        I: IntoIterator<Item = Result<SortedRun>>,
    {
        self.apply_runs_after_sweep(Vec::new(), false, runs, commit, max_value_bytes, now_ms)
    }

    /// [`Store::apply_runs_at`] after `sweep` (expiry deletes, see
    /// [`Store::expired`]) in the same transaction, as a `--db` write
    /// command does (SPEC "Expiry (TTL)"): the sweep is committed only
    /// with a request that is accepted, so a rejected one (a bad line, a
    /// failed condition) changes nothing. A request that takes no revision
    /// is accepted (`sweep_alone`: a batch of no-ops, exit 0, whose sweep
    /// is committed) or not (a delete of a missing key, exit 1: the file is
    /// left untouched). The answer counts the request's operations only.
    pub fn apply_runs_after_sweep<I>(
        &self,
        sweep: Vec<Op>,
        sweep_alone: bool,
        runs: I,
        commit: Commit,
        max_value_bytes: usize,
        now_ms: Option<u64>,
    ) -> Result<Applied>
    where
        I: IntoIterator<Item = Result<SortedRun>>,
    {
        let mut runs = runs.into_iter();
        let mut read = Vec::new();
        if self.writes_on_demand() {
            match self.read_before_writing(&mut runs, &sweep, max_value_bytes, now_ms)? {
                Some(first) => read = first,
                None => {
                    return Ok(Applied {
                        revision: self.snapshot()?.revision()?,
                        ..Applied::default()
                    });
                }
            }
            self.writable_now()?;
        }
        let runs = read.into_iter().map(Ok).chain(runs);
        let wtx = self.begin_write(commit)?;
        // Taken while we hold the write lock: exactly the state before the batch.
        let before = self.snapshot()?;
        let applied = {
            let mut tables = Tables::open(&wtx)?;
            let mut meta = wtx.open_table(META)?;
            let mut state = RunState::load(&meta)?;
            let before_sweep = state.revision;
            for run in SortedRuns::new(sweep.into_iter().map(Ok), usize::MAX) {
                let run = run?;
                state.write_sorted_run(&mut tables, &run)?;
            }
            let swept = std::mem::take(&mut state.applied);
            let base = state.revision;
            for run in runs {
                let run = run?;
                // Checked in input order, so the first bad line is the one named.
                for op in run.ops() {
                    check_limits(op, max_value_bytes)?;
                    if let Some(expected) = op.if_revision {
                        check_condition(&before, op, expected, now_ms)?;
                    }
                }
                state.write_sorted_run(&mut tables, &run)?;
            }
            if state.revision == before_sweep || (state.revision == base && !sweep_alone) {
                // Nothing to commit: leave the file untouched.
                return Ok(Applied {
                    revision: before_sweep,
                    ..Applied::default()
                });
            }
            debug_assert!(swept.applied() == base - before_sweep);
            meta.insert(META_REVISION, state.revision)?;
            forget_history(&mut meta, state.revision)?;
            meta.insert(META_KEYS, state.keys)?;
            state.applied.revision = state.revision;
            state.applied
        };
        let mut commits = commits_settled();
        wtx.commit()?;
        // A new file takes its name with its first commit (`OpenMode::
        // CreateOnCommit`); the commit counts as made only once it has.
        self.publish_if_new()?;
        *commits += 1;
        Ok(applied)
    }

    /// For a file opened read-only until its first write
    /// ([`super::OpenMode::WriteOnDemand`]): reads the first run (all of
    /// an input that fits in one) and, when the input ended with it, what
    /// follows, and checks them before the file is opened for writing, so
    /// that a bad line or a failed condition there leaves the file's bytes
    /// untouched. The runs read, to be written first; `None` when there
    /// is nothing to write at all (no input, nothing expired). A failed
    /// condition in a later run is found only while writing, after the
    /// open: holding the input until its end would take memory without
    /// bound.
    fn read_before_writing(
        &self,
        runs: &mut impl Iterator<Item = Result<SortedRun>>,
        sweep: &[Op],
        max_value_bytes: usize,
        now_ms: Option<u64>,
    ) -> Result<Option<Vec<SortedRun>>> {
        let before = self.snapshot()?;
        let Some(first) = runs.next().transpose()? else {
            return Ok((!sweep.is_empty()).then(Vec::new));
        };
        let mut read = vec![first];
        if read[0].last() {
            // A bad line after the run is reported before a failed
            // condition in it, as the write itself does.
            if let Some(next) = runs.next() {
                read.push(next?);
            }
        }
        for op in read.iter().flat_map(SortedRun::ops) {
            check_limits(op, max_value_bytes)?;
            if let Some(expected) = op.if_revision {
                check_condition(&before, op, expected, now_ms)?;
            }
        }
        // An input of no operations (empty, or blank lines only): nothing
        // to write, and the file stays untouched, also a read-only one.
        let ended_empty = matches!(read.as_slice(), [only] if only.last() && only.ops().is_empty());
        if ended_empty && sweep.is_empty() {
            return Ok(None);
        }
        // Nor an input of deletes of keys the file does not hold: each is
        // a no-op that takes no revision (SPEC "Data model"), and opened
        // for writing, the file's header was rewritten for nothing.
        if sweep.is_empty() && read.iter().any(SortedRun::last) {
            let mut absent = true;
            for op in read.iter().flat_map(SortedRun::ops) {
                if !matches!(op.action, Action::Delete) || before.get(&op.key)?.is_some() {
                    absent = false;
                    break;
                }
            }
            if absent {
                return Ok(None);
            }
        }
        Ok(Some(read))
    }

    /// Applies several independent requests in one transaction: the
    /// group-commit form of [`Store::apply`]. Each request is all-or-nothing
    /// on its own, and its conditions are checked against the state left by
    /// the requests before it in the group; a request that fails (a condition,
    /// a limit) gets its own error and the others go on.
    ///
    /// `before_commit` sees every request's outcome after the writes and
    /// before the commit; returning an error aborts the whole group. A
    /// write-ahead log appends and syncs the group there, so that nothing is
    /// visible (and so acknowledged) before it is durable.
    pub fn apply_group(
        &self,
        requests: &[Vec<Op>],
        commit: Commit,
        max_value_bytes: usize,
        before_commit: impl FnOnce(&[Result<Applied>]) -> Result<()>,
    ) -> Result<Vec<Result<Applied>>> {
        let wtx = self.begin_write(commit)?;
        let outcomes = {
            let mut tables = Tables::open(&wtx)?;
            let mut meta = wtx.open_table(META)?;
            let mut state = RunState::load(&meta)?;
            let base = state.revision;
            let mut outcomes = Vec::with_capacity(requests.len());
            for ops in requests {
                if let Err(e) = check_request(&tables.kv, ops, max_value_bytes) {
                    outcomes.push(Err(e));
                    continue;
                }
                state.applied = Applied::default();
                state.write_run(&mut tables, ops)?;
                state.applied.revision = state.revision;
                outcomes.push(Ok(state.applied));
            }
            before_commit(&outcomes)?;
            if state.revision == base {
                return Ok(outcomes);
            }
            meta.insert(META_REVISION, state.revision)?;
            forget_history(&mut meta, state.revision)?;
            meta.insert(META_KEYS, state.keys)?;
            outcomes
        };
        wtx.commit()?;
        Ok(outcomes)
    }
}

/// A write through the store records no watch events: the history ends
/// before it (see `record.rs`), so no watch resumes across it.
fn forget_history(meta: &mut Table<'_, &'static str, u64>, revision: u64) -> Result<()> {
    meta.insert(META_HISTORY_OLDEST, revision + 1)?;
    meta.insert(META_HISTORY_BYTES, 0)?;
    Ok(())
}

/// Limits and conditions of one request of a group, against the state in
/// the write transaction.
fn check_request(kv: &KvTable<'_>, ops: &[Op], max_value_bytes: usize) -> Result<()> {
    for op in ops {
        check_limits(op, max_value_bytes)?;
    }
    for op in ops {
        if let Some(expected) = op.if_revision {
            let current = match kv.get(op.key.as_slice())? {
                Some(g) => Some(record::decode(g.value())?.revision),
                None => None,
            };
            condition_holds(op, expected, current)?;
        }
    }
    Ok(())
}

/// The key and value size limits, on every path; and a `ttl` must have
/// been turned into an absolute expiry when the write was accepted.
pub(crate) fn check_limits(op: &Op, max_value_bytes: usize) -> Result<()> {
    if op.ttl_secs.is_some() {
        return Err(Error::Storage(
            "a ttl reached the store without being accepted (internal error)".into(),
        ));
    }
    limits::check_key(&op.key, op.line)?;
    if let Action::Put(v) = &op.action {
        limits::check_value(&op.key, v.len(), max_value_bytes, op.line)?;
    }
    Ok(())
}

fn check_condition(
    before: &super::Snapshot,
    op: &Op,
    expected: u64,
    now_ms: Option<u64>,
) -> Result<()> {
    let current = match before.get(&op.key)? {
        Some(e) if now_ms.is_some_and(|now| e.expired_at(now)) => None,
        found => found.map(|e| e.revision),
    };
    condition_holds(op, expected, current)
}

pub(crate) fn condition_holds(op: &Op, expected: u64, current: Option<u64>) -> Result<()> {
    if current.unwrap_or(0) == expected {
        return Ok(());
    }
    Err(Error::PreconditionFailed {
        line: op.line,
        key: show_key(&op.key),
        expected: if expected == 0 {
            "0 (absent)".to_string()
        } else {
            expected.to_string()
        },
        current,
    })
}

impl Store {
    /// A write transaction with quick repair, durable or not (see [`Commit`]).
    pub(super) fn begin_write(&self, commit: Commit) -> Result<redb::WriteTransaction> {
        let mut wtx = self.write_txn()?;
        wtx.set_quick_repair(true);
        if commit == Commit::Buffered {
            wtx.set_durability(redb::Durability::None)?;
        }
        Ok(wtx)
    }
}

impl Store {
    /// Deletes every key `query` covers (its start, end and prefix) in one
    /// durable transaction, in constant memory: each delete takes the next
    /// revision, in key order. Returns the keys deleted and the revision.
    pub fn delete_range(&self, query: &crate::types::RangeQuery) -> Result<Applied> {
        query.validate()?;
        if self.writes_on_demand() {
            // A file opened read-only until its first write: a range with
            // no key deletes nothing, and the file is left untouched.
            let snapshot = self.snapshot()?;
            let mut empty = true;
            let first = crate::types::RangeQuery {
                limit: Some(1),
                keys_only: true,
                ..query.clone()
            };
            snapshot.range(&first, |_, _| {
                empty = false;
                Ok(false)
            })?;
            if empty {
                return Ok(Applied {
                    revision: snapshot.revision()?,
                    ..Applied::default()
                });
            }
            drop(snapshot);
            self.writable_now()?;
        }
        let wtx = self.begin_write(Commit::Durable)?;
        let applied = {
            let mut kv = wtx.open_table(KV)?;
            let mut expiry = wtx.open_table(EXPIRY)?;
            let mut meta = wtx.open_table(META)?;
            let mut state = RunState::load(&meta)?;
            let Some((lower, upper)) = query.bounds() else {
                return Ok(Applied {
                    revision: state.revision,
                    ..Applied::default()
                });
            };
            let mut deleted = 0u64;
            // The expiry entries of the deleted keys, removed after.
            let mut expiring: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut damaged = None;
            let count = |k: &[u8], v: &[u8]| {
                deleted += 1;
                match record::decode(v) {
                    Ok(rec) => {
                        if let Some(at) = rec.expires_at_ms {
                            expiring.push((at, k.to_vec()));
                        }
                    }
                    Err(e) => damaged = Some(e),
                }
                false
            };
            match &upper {
                Some(u) => kv.retain_in::<&[u8], _>(lower.as_slice()..u.as_slice(), count)?,
                None => kv.retain_in::<&[u8], _>(lower.as_slice().., count)?,
            }
            if let Some(e) = damaged {
                return Err(e);
            }
            for (at, key) in &expiring {
                expiry.remove((*at, key.as_slice()))?;
            }
            if deleted == 0 {
                return Ok(Applied {
                    revision: state.revision,
                    ..Applied::default()
                });
            }
            state.revision += deleted;
            state.keys = state.keys.saturating_sub(deleted);
            meta.insert(META_REVISION, state.revision)?;
            forget_history(&mut meta, state.revision)?;
            meta.insert(META_KEYS, state.keys)?;
            Applied {
                puts: 0,
                deletes: deleted,
                revision: state.revision,
            }
        };
        wtx.commit()?;
        Ok(applied)
    }
}

impl Store {
    /// The expiry deletes of up to `max` keys expired at `now_ms`, in
    /// expiry order, read from the expiry index (never a scan of `kv`).
    pub fn expired(&self, now_ms: u64, max: usize) -> Result<Vec<Op>> {
        self.snapshot()?.expired(now_ms, max)
    }
}
