//! The one write path: [`Store::apply`] applies a sequence of operations at
//! the next revisions, all or nothing, in one redb transaction.
//!
//! Revisions: each put, and each delete of a key present at that point of the
//! sequence, takes the next revision, in input order. A delete of an absent
//! key takes none. Conditions (`if_revision`) are checked against the state
//! *before* the batch, read from a snapshot taken when the write transaction
//! began (no other writer can commit while we hold it).
//!
//! Speed: random-order inserts into a B-tree touch a random leaf each. The
//! input is therefore cut into bounded runs (see [`RUN_MAX_BYTES`]); each run
//! is sorted by key and written in key order, so neighbouring inserts share
//! pages. Sorting does not change the outcome: revisions are assigned in input
//! order first, and per key only the last operation of the run is written.

use redb::{ReadableTable, Table};

use super::Store;
use super::record::{
    self, EXPIRY, HISTORY, KV, META, META_HISTORY_BYTES, META_HISTORY_OLDEST, META_KEYS,
    META_REVISION,
};
use crate::error::{Error, Result};
use crate::jsonl::show_key;
use crate::limits;
use crate::types::{Action, Applied, Op};

/// Bounds of the input bytes (keys + values + per-op overhead) held in one
/// sorted run, which is a quarter of the page cache in between (see
/// [`run_max_bytes`]). Measured on 1M random 116-byte lines: one 256 MiB run
/// imported in 1.9 s into a 143 MB file; 64 MiB runs (`--cache-mib 256`)
/// took 2.7 s into a 285 MB file when each later run split the leaves the
/// earlier ones filled, and take 2.0 s into a 143 MB file merged into
/// packed leaves ([`Tables::merge_packed`]).
pub const RUN_MIN_BYTES: usize = 8 << 20;
/// See [`RUN_MIN_BYTES`].
pub const RUN_MAX_BYTES: usize = 256 << 20;

/// The run size for a page cache of `cache_bytes`: memory for a batch stays
/// within about 1.5x the cache (`kvr batch` reads and sorts the next run
/// while it writes one, so two are held).
pub fn run_max_bytes(cache_bytes: usize) -> usize {
    (cache_bytes / 4).clamp(RUN_MIN_BYTES, RUN_MAX_BYTES)
}

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

type KvTable<'t> = Table<'t, &'static [u8], &'static [u8]>;
type ExpiryTable<'t> = Table<'t, (u64, &'static [u8]), u64>;

/// How a sorted write chooses between key-by-key writes and packed merges
/// ([`Tables::merge_packed`]); tests make every bound small.
#[derive(Debug, Clone, Copy)]
struct MergeTuning {
    /// Items looked at together: written key by key or merged packed, as
    /// the window before went (the first one asks the table).
    window: usize,
    /// Keys of the first window looked up to choose how it is written.
    probes: usize,
    /// Most records one packed merge takes out of the table and puts back,
    /// per item it writes: where the table is much denser than the items
    /// (a few random keys into a large table), a merge would rewrite far
    /// more records than the items touch.
    records_per_item: usize,
    /// Most bytes of records one packed merge holds.
    max_bytes: usize,
}

impl Default for MergeTuning {
    fn default() -> MergeTuning {
        MergeTuning {
            window: 256,
            probes: 8,
            records_per_item: 16,
            max_bytes: 4 << 20,
        }
    }
}

/// What a stretch of a sorted write did.
#[derive(Default)]
struct Written {
    added: u64,
    removed: u64,
    puts: u64,
    /// A packed merge stopped at its bound.
    dense: bool,
}

impl Written {
    /// Counts an item written: a put or a delete of `key`, which the table
    /// held before or not. `on_absent` sees a key it did not hold.
    fn count(&mut self, key: &[u8], put: bool, held: bool, on_absent: &mut dyn FnMut(&[u8])) {
        self.puts += u64::from(put);
        match (put, held) {
            (true, false) => {
                self.added += 1;
                on_absent(key);
            }
            (false, true) => self.removed += 1,
            (false, false) => on_absent(key),
            (true, true) => {}
        }
    }
}

/// The tables a run writes.
pub(super) struct Tables<'t> {
    kv: KvTable<'t>,
    expiry: ExpiryTable<'t>,
    /// A server's flush: the watch history, whose rows that share their
    /// value with a `kv` record are rewritten before the record changes.
    history: Option<KeptHistory<'t>>,
    tuning: MergeTuning,
}

/// See [`Tables::history`].
struct KeptHistory<'t> {
    table: Table<'t, u64, &'static [u8]>,
    /// Rows below this revision are not kept (the flush deletes them).
    oldest: u64,
    inline: super::table::InlineValue,
}

impl<'t> Tables<'t> {
    pub(super) fn open(wtx: &'t redb::WriteTransaction) -> Result<Tables<'t>> {
        Ok(Tables {
            kv: wtx.open_table(KV)?,
            expiry: wtx.open_table(EXPIRY)?,
            history: None,
            tuning: MergeTuning::default(),
        })
    }

    /// [`Tables::open`] for a flush that keeps the watch history from
    /// revision `oldest` on: before a record is replaced or deleted, a
    /// history row sharing its value gets the value back (`inline`, see
    /// `engine/history.rs`).
    pub(super) fn open_keeping_history(
        wtx: &'t redb::WriteTransaction,
        oldest: u64,
        inline: super::table::InlineValue,
    ) -> Result<Tables<'t>> {
        let mut tables = Tables::open(wtx)?;
        tables.history = Some(KeptHistory {
            table: wtx.open_table(HISTORY)?,
            oldest,
            inline,
        });
        Ok(tables)
    }

    /// Before `key`'s record at `old_revision` with `old_value` is
    /// replaced (by revision `new_revision`) or deleted: the history row
    /// of that revision, when it is kept and shares the value, gets it.
    fn keep_old_value(
        history: &mut Option<KeptHistory<'t>>,
        key: &[u8],
        old_revision: u64,
        old_value: &[u8],
        new_revision: Option<u64>,
    ) -> Result<()> {
        let Some(h) = history else {
            return Ok(());
        };
        // The same version written again (a log replayed over a flush that
        // had it already): the row still shares the value.
        if old_revision < h.oldest || new_revision == Some(old_revision) {
            return Ok(());
        }
        let whole = match h.table.get(old_revision)? {
            Some(row) => (h.inline)(row.value(), key, old_value),
            None => None,
        };
        if let Some(whole) = whole {
            h.table.insert(old_revision, whole.as_slice())?;
        }
        Ok(())
    }

    /// Writes a key's record, keeping the expiry index in step. Returns
    /// whether the key is new.
    pub(super) fn put(
        &mut self,
        buf: &mut Vec<u8>,
        key: &[u8],
        value: &[u8],
        revision: u64,
        expires_at_ms: Option<u64>,
    ) -> Result<bool> {
        record::encode_into(buf, revision, value, expires_at_ms);
        let old = match self.kv.insert(key, buf.as_slice())? {
            Some(g) => {
                let old = record::decode(g.value())?;
                Self::keep_old_value(
                    &mut self.history,
                    key,
                    old.revision,
                    old.value,
                    Some(revision),
                )?;
                Some(old.expires_at_ms)
            }
            None => None,
        };
        if let Some(Some(at)) = old {
            self.expiry.remove((at, key))?;
        }
        if let Some(at) = expires_at_ms {
            self.expiry.insert((at, key), revision)?;
        }
        Ok(old.is_none())
    }

    /// Removes a key and its expiry entry. Returns whether it was there.
    pub(super) fn remove(&mut self, key: &[u8]) -> Result<bool> {
        let old = match self.kv.remove(key)? {
            Some(g) => {
                let old = record::decode(g.value())?;
                Self::keep_old_value(&mut self.history, key, old.revision, old.value, None)?;
                Some(old.expires_at_ms)
            }
            None => None,
        };
        if let Some(Some(at)) = old {
            self.expiry.remove((at, key))?;
        }
        Ok(old.is_some())
    }

    /// Writes items in key order (unique keys): a put's record, or `None`
    /// to delete. Keys up to the table's last one are written in windows
    /// ([`MergeTuning`]): one by one where they are mostly overwrites,
    /// merged into packed leaves where they are mostly new
    /// ([`Tables::merge_packed`]); the rest, new keys sorting after all of
    /// them, are appended
    /// ([`Tables::append`]). Returns how many keys were added and removed;
    /// `on_absent` sees each key that was absent before: added by a put,
    /// or deleted with nothing to delete.
    pub(super) fn write_sorted<'a>(
        &mut self,
        buf: &mut Vec<u8>,
        items: impl IntoIterator<Item = super::SortedItem<'a>>,
        on_absent: &mut dyn FnMut(&[u8]),
    ) -> Result<(u64, u64)> {
        let last = self.kv.last()?.map(|(k, _)| k.value().to_vec());
        let mut written = Written::default();
        let mut items = items.into_iter().peekable();
        let mut window: Vec<super::SortedItem<'a>> = Vec::with_capacity(self.tuning.window);
        // Whether the window before added mostly new keys; the first
        // window asks the table.
        let mut mostly_new = None;
        loop {
            window.clear();
            while window.len() < self.tuning.window {
                match items.next_if(|(key, _)| last.as_deref().is_some_and(|l| *key <= l)) {
                    Some(item) => window.push(item),
                    None => break,
                }
            }
            if window.is_empty() {
                break;
            }
            let pack = match mostly_new {
                Some(pack) => pack,
                None => self.mostly_absent(&window)?,
            };
            let mut this = Written::default();
            let mut rest = &window[..];
            while !rest.is_empty() {
                // A stretch too dense to merge ends the packing.
                let done = if pack && !this.dense {
                    self.merge_packed(buf, rest, &mut this, on_absent)?
                } else {
                    self.write_each(buf, rest, &mut this, on_absent)?
                };
                rest = &rest[done..];
            }
            mostly_new = Some(this.added * 2 > this.puts && !this.dense);
            written.added += this.added;
            written.removed += this.removed;
        }
        written.added += self.append(buf, items, on_absent)?;
        Ok((written.added, written.removed))
    }

    /// Whether most of a few keys spread over `window` are absent from the
    /// table: a window of new keys is merged packed.
    fn mostly_absent(&self, window: &[super::SortedItem<'_>]) -> Result<bool> {
        let step = window.len().div_ceil(self.tuning.probes).max(1);
        let (mut probed, mut absent) = (0, 0);
        for (key, _) in window.iter().step_by(step) {
            probed += 1;
            if self.kv.get(*key)?.is_none() {
                absent += 1;
            }
        }
        Ok(absent * 2 > probed)
    }

    /// Writes `items` key by key (`Table::insert`, `Table::remove`): a key
    /// overwritten in place keeps its leaf's fill. Returns how many items
    /// it wrote (all).
    fn write_each(
        &mut self,
        buf: &mut Vec<u8>,
        items: &[super::SortedItem<'_>],
        written: &mut Written,
        on_absent: &mut dyn FnMut(&[u8]),
    ) -> Result<usize> {
        for &(key, item) in items {
            let held = match item {
                Some((value, revision, expires_at_ms)) => {
                    !self.put(buf, key, value, revision, expires_at_ms)?
                }
                None => self.remove(key)?,
            };
            written.count(key, item.is_some(), held, on_absent);
        }
        Ok(items.len())
    }

    /// Writes a stretch of `items` by taking the table's records in their
    /// key range out and putting the merged run back through one cursor,
    /// which redb packs into full leaves. Inserting new keys one by one
    /// splits full leaves in two, leaving the table's leaves about 70 %
    /// full after random inserts (a 1M-pair import over HTTP: 48.0k leaves
    /// against the 33.3k of a sorted import). The records taken out are
    /// bounded ([`MergeTuning`]): past that the
    /// stretch ends at the last one taken. Returns how many items it wrote.
    fn merge_packed(
        &mut self,
        buf: &mut Vec<u8>,
        items: &[super::SortedItem<'_>],
        written: &mut Written,
        on_absent: &mut dyn FnMut(&[u8]),
    ) -> Result<usize> {
        let (Some(&(first, _)), Some(&(last, _))) = (items.first(), items.last()) else {
            return Ok(0);
        };
        // The records in [first, last], key and record bytes end to end.
        let mut taken = Vec::new();
        let mut ends: Vec<(usize, usize)> = Vec::new();
        let mut full = false;
        let max_records = self.tuning.records_per_item.saturating_mul(items.len());
        {
            let extract = self.kv.extract_from_if(first..=last, |_, _| true)?;
            for entry in extract {
                let (k, v) = entry?;
                taken.extend_from_slice(k.value());
                let key_end = taken.len();
                taken.extend_from_slice(v.value());
                ends.push((key_end, taken.len()));
                if ends.len() >= max_records || taken.len() >= self.tuning.max_bytes {
                    full = true;
                    break;
                }
            }
        }
        let record_at = |i: usize| {
            let start = if i == 0 { 0 } else { ends[i - 1].1 };
            let (key_end, end) = ends[i];
            (&taken[start..key_end], &taken[key_end..end])
        };
        // Taken out up to a bound: only the items up to the last record
        // taken are written now (at least the first: the range starts at it).
        let count = match (full, ends.len().checked_sub(1)) {
            (true, Some(i)) => {
                let bound = record_at(i).0;
                written.dense = true;
                items.partition_point(|(key, _)| *key <= bound)
            }
            _ => items.len(),
        };
        let mut cursor = self.kv.lower_bound_mut(std::ops::Bound::Included(first))?;
        let mut old = (0..ends.len()).map(record_at).peekable();
        for &(key, item) in &items[..count] {
            while let Some((k, rec)) = old.next_if(|(k, _)| *k < key) {
                cursor.insert_before(k, rec)?;
            }
            let replaced = match old.next_if(|(k, _)| *k == key) {
                Some((_, rec)) => Some(record::decode(rec)?),
                None => None,
            };
            if let Some(ref old) = replaced {
                let new_revision = item.map(|(_, revision, _)| revision);
                Self::keep_old_value(
                    &mut self.history,
                    key,
                    old.revision,
                    old.value,
                    new_revision,
                )?;
                if let Some(at) = old.expires_at_ms {
                    self.expiry.remove((at, key))?;
                }
            }
            if let Some((value, revision, expires_at_ms)) = item {
                record::encode_into(buf, revision, value, expires_at_ms);
                cursor.insert_before(key, buf.as_slice())?;
                if let Some(at) = expires_at_ms {
                    self.expiry.insert((at, key), revision)?;
                }
            }
            written.count(key, item.is_some(), replaced.is_some(), on_absent);
        }
        for (k, rec) in old {
            cursor.insert_before(k, rec)?;
        }
        cursor.close()?;
        Ok(count)
    }

    /// Writes items in key order whose keys all sort after every key of the
    /// table (new keys), through one cursor at the table's end: redb fills
    /// leaf after leaf instead of walking down the tree for each key, which
    /// made a 1M-line `kvr batch` into an empty file about a fifth faster.
    /// A delete there has nothing to remove. Returns how many keys were added.
    fn append<'a>(
        &mut self,
        buf: &mut Vec<u8>,
        items: impl IntoIterator<Item = super::SortedItem<'a>>,
        on_absent: &mut dyn FnMut(&[u8]),
    ) -> Result<u64> {
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            return Ok(0);
        }
        let mut added = 0;
        let mut cursor = self
            .kv
            .upper_bound_mut(std::ops::Bound::<&[u8]>::Unbounded)?;
        for (key, item) in items {
            on_absent(key);
            let Some((value, revision, expires_at_ms)) = item else {
                continue;
            };
            record::encode_into(buf, revision, value, expires_at_ms);
            cursor.insert_before(key, buf.as_slice())?;
            added += 1;
            if let Some(at) = expires_at_ms {
                self.expiry.insert((at, key), revision)?;
            }
        }
        cursor.close()?;
        Ok(added)
    }

    /// A key's revision and expiry, `None` if absent.
    fn state_of(&self, key: &[u8]) -> Result<Option<(u64, Option<u64>)>> {
        match self.kv.get(key)? {
            Some(g) => {
                let rec = record::decode(g.value())?;
                Ok(Some((rec.revision, rec.expires_at_ms)))
            }
            None => Ok(None),
        }
    }
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
                state.write_sorted(&mut tables, &run.ops, &run.order, &run.groups)?;
            }
            let swept = std::mem::take(&mut state.applied);
            let base = state.revision;
            for run in runs {
                let run = run?;
                // Checked in input order, so the first bad line is the one named.
                for op in &run.ops {
                    check_limits(op, max_value_bytes)?;
                    if let Some(expected) = op.if_revision {
                        check_condition(&before, op, expected, now_ms)?;
                    }
                }
                state.write_sorted(&mut tables, &run.ops, &run.order, &run.groups)?;
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
        *commits += 1;
        Ok(applied)
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

/// Counters carried across the runs of one batch.
struct RunState {
    revision: u64,
    keys: u64,
    applied: Applied,
    /// Reused encoding buffer.
    record: Vec<u8>,
}

impl RunState {
    /// The counters as the transaction starts.
    fn load(meta: &Table<'_, &'static str, u64>) -> Result<RunState> {
        let counter = |name| -> Result<u64> { Ok(meta.get(name)?.map(|g| g.value()).unwrap_or(0)) };
        Ok(RunState {
            revision: counter(META_REVISION)?,
            keys: counter(META_KEYS)?,
            applied: Applied::default(),
            record: Vec::new(),
        })
    }

    /// Writes one run (see the module header).
    fn write_run(&mut self, t: &mut Tables<'_>, run: &[Op]) -> Result<()> {
        let order = sorted_order(run);
        let groups = key_groups(run, &order);
        self.write_sorted(t, run, &order, &groups)
    }

    /// [`RunState::write_run`] with the run's key order already known.
    fn write_sorted(
        &mut self,
        t: &mut Tables<'_>,
        run: &[Op],
        order: &[usize],
        groups: &[std::ops::Range<usize>],
    ) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        // 1. Which operations take a revision?
        let takes_revision = if run
            .iter()
            .any(|op| matches!(op.action, Action::Expire { .. }))
        {
            self.takes_revision_in_order(t, run)?
        } else {
            takes_revision_by_key(t, run, order, groups)?
        };
        // 2. Revisions in input order.
        let mut revisions = vec![0u64; run.len()];
        for (i, op) in run.iter().enumerate() {
            if takes_revision[i] {
                self.revision += 1;
                revisions[i] = self.revision;
                match op.action {
                    Action::Put(_) => self.applied.puts += 1,
                    Action::Delete | Action::Expire { .. } | Action::Erase { .. } => {
                        self.applied.deletes += 1;
                    }
                }
            }
        }
        // 3. The last operation on each key that took a revision, in key order.
        let items = groups.iter().filter_map(|group| {
            let &last = order[group.clone()]
                .iter()
                .rev()
                .find(|&&i| takes_revision[i])?;
            let op = &run[last];
            let item = match &op.action {
                Action::Put(value) => Some((&value[..], revisions[last], op.expires_at_ms)),
                Action::Delete | Action::Expire { .. } | Action::Erase { .. } => None,
            };
            Some((op.key.as_slice(), item))
        });
        let (added, removed) = t.write_sorted(&mut self.record, items, &mut |_| {})?;
        self.keys = (self.keys + added).saturating_sub(removed);
        Ok(())
    }

    /// Which operations take a revision, decided one by one in input order:
    /// an expiry delete depends on the revision an earlier put of the same
    /// run took. (Runs with expiry deletes are sweeps, small.)
    fn takes_revision_in_order(&self, t: &Tables<'_>, run: &[Op]) -> Result<Vec<bool>> {
        let mut overlay: std::collections::HashMap<&[u8], Option<(u64, Option<u64>)>> =
            std::collections::HashMap::new();
        let mut revision = self.revision;
        let mut takes = vec![false; run.len()];
        for (i, op) in run.iter().enumerate() {
            let key = op.key.as_slice();
            let current = match overlay.get(key) {
                Some(s) => *s,
                None => t.state_of(key)?,
            };
            let (take, after) = match op.action {
                Action::Put(_) => (true, Some((revision + 1, op.expires_at_ms))),
                Action::Delete => (current.is_some(), None),
                Action::Expire {
                    revision: r,
                    expires_at_ms: at,
                } if current == Some((r, Some(at))) => (true, None),
                Action::Expire { .. } => (false, current),
                // Replayed from the log: it took a revision then.
                Action::Erase { .. } => (true, None),
            };
            if take {
                revision += 1;
            }
            takes[i] = take;
            overlay.insert(key, after);
        }
        Ok(takes)
    }
}

/// Which operations of a run without expiry deletes take a revision: a put
/// always, a delete when its key is present at that point. Reads the store
/// in key order.
fn takes_revision_by_key(
    t: &Tables<'_>,
    run: &[Op],
    order: &[usize],
    groups: &[std::ops::Range<usize>],
) -> Result<Vec<bool>> {
    let mut takes_revision = vec![false; run.len()];
    for group in groups {
        let mut present: Option<bool> = None;
        for &i in &order[group.clone()] {
            match run[i].action {
                Action::Put(_) => {
                    takes_revision[i] = true;
                    present = Some(true);
                }
                Action::Delete | Action::Expire { .. } => {
                    takes_revision[i] = match present {
                        Some(p) => p,
                        None => t.kv.get(run[i].key.as_slice())?.is_some(),
                    };
                    present = Some(false);
                }
                // Replayed from the log: it took a revision then.
                Action::Erase { .. } => {
                    takes_revision[i] = true;
                    present = Some(false);
                }
            }
        }
    }
    Ok(takes_revision)
}

/// Indices of `run` in (key, input position) order.
///
/// Sorts (first 8 key bytes, index) pairs, which sit together in memory and
/// compare as integers, and reads whole keys only on a tie of the first 8
/// bytes: on random keys this halved the sort's share of a batch.
fn sorted_order(run: &[Op]) -> Vec<usize> {
    let mut pairs: Vec<(u128, usize)> = run
        .iter()
        .enumerate()
        .map(|(i, op)| (key_prefix(&op.key), i))
        .collect();
    pairs.sort_unstable_by(|&(pa, a), &(pb, b)| {
        pa.cmp(&pb)
            .then_with(|| run[a].key.cmp(&run[b].key))
            .then(a.cmp(&b))
    });
    pairs.into_iter().map(|(_, i)| i).collect()
}

/// The first 16 bytes of a key as a big-endian integer, zero-padded:
/// integer order agrees with byte-wise order, and equal prefixes fall back
/// to the key. (16, not 8: keys often share a longer prefix, `user:0000…`,
/// and then most comparisons went to `memcmp`.)
fn key_prefix(key: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = key.len().min(16);
    bytes[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(bytes)
}

/// A run of operations in input order, with their key order worked out
/// (see the module header): what [`SortedRuns`] yields.
pub struct SortedRun {
    ops: Vec<Op>,
    /// Indexes into `ops`, by key then input order.
    order: Vec<usize>,
    /// Ranges of `order` sharing a key.
    groups: Vec<std::ops::Range<usize>>,
}

impl SortedRun {
    fn new(ops: Vec<Op>) -> SortedRun {
        let order = sorted_order(&ops);
        let groups = key_groups(&ops, &order);
        SortedRun { ops, order, groups }
    }
}

/// Cuts operations into sorted runs of at most `max_bytes` of input each
/// ([`Op::mem_bytes`]). An error from the operations ends the runs: the
/// operations read before it come first, as a run of their own, then the
/// error ([`SortedRuns::take_error`] gives it to a reader that stopped
/// before asking; `LocalKv::batch` reports it before an earlier failed
/// condition, as a server does).
pub struct SortedRuns<I> {
    ops: I,
    max_bytes: usize,
    error: Option<Error>,
    done: bool,
}

impl<I: Iterator<Item = Result<Op>>> SortedRuns<I> {
    pub fn new(ops: I, max_bytes: usize) -> SortedRuns<I> {
        SortedRuns {
            ops,
            max_bytes,
            error: None,
            done: false,
        }
    }

    /// The error read after the operations of the last run handed out, if
    /// any (it would have been the next item).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

impl<I: Iterator<Item = Result<Op>>> Iterator for SortedRuns<I> {
    type Item = Result<SortedRun>;

    fn next(&mut self) -> Option<Result<SortedRun>> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let mut run = Vec::new();
        let mut bytes = 0;
        while bytes < self.max_bytes {
            match self.ops.next() {
                Some(Ok(op)) => {
                    bytes += op.mem_bytes();
                    run.push(op);
                }
                Some(Err(e)) => {
                    self.done = true;
                    if run.is_empty() {
                        return Some(Err(e));
                    }
                    self.error = Some(e);
                    break;
                }
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        Some(Ok(SortedRun::new(run)))
    }
}

/// Index ranges into `order` of the operations sharing a key.
fn key_groups(run: &[Op], order: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || run[order[i]].key != run[order[start]].key {
            groups.push(start..i);
            start = i;
        }
    }
    groups
}

impl Store {
    /// Deletes every key `query` covers (its start, end and prefix) in one
    /// durable transaction, in constant memory: each delete takes the next
    /// revision, in key order. Returns the keys deleted and the revision.
    pub fn delete_range(&self, query: &crate::types::RangeQuery) -> Result<Applied> {
        query.validate()?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use redb::ReadableDatabase;
    use redb::backends::InMemoryBackend;

    use super::*;

    /// A key's record in the model: value, revision, expiry.
    type Rec = (Vec<u8>, u64, Option<u64>);
    /// The expiry index: (expires at, key, revision).
    type Index = BTreeSet<(u64, Vec<u8>, u64)>;
    /// A write's item: a key's number and, for a put, (large value, expiring).
    type Item = (u8, Option<(bool, bool)>);

    fn key(i: u8) -> Vec<u8> {
        format!("k{i:03}").into_bytes()
    }

    fn record(rev: u64, big: bool, expiring: bool) -> Rec {
        let len = if big { 300 } else { 3 };
        (
            vec![b'a' + (rev % 26) as u8; len],
            rev,
            expiring.then_some(1_000 + rev),
        )
    }

    /// The table's records and its expiry index, as the model holds them.
    fn contents(db: &redb::Database) -> (BTreeMap<Vec<u8>, Rec>, Index) {
        let rtx = db.begin_read().unwrap();
        let kv = rtx.open_table(KV).unwrap();
        let records = kv
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                let r = record::decode(v.value()).unwrap();
                (
                    k.value().to_vec(),
                    (r.value.to_vec(), r.revision, r.expires_at_ms),
                )
            })
            .collect();
        let expiry = rtx.open_table(EXPIRY).unwrap();
        let index = expiry
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                let (at, key) = k.value();
                (at, key.to_vec(), v.value())
            })
            .collect();
        (records, index)
    }

    fn index_of(model: &BTreeMap<Vec<u8>, Rec>) -> Index {
        model
            .iter()
            .filter_map(|(k, (_, rev, at))| at.map(|at| (at, k.clone(), *rev)))
            .collect()
    }

    /// One sorted write, then the same again with other items: the table,
    /// its expiry index, the counts and the keys reported absent all match
    /// a model, whichever way each stretch was written (key by key, or
    /// merged packed and cut at tiny bounds).
    fn check(before: Vec<(u8, bool, bool)>, writes: Vec<Vec<Item>>, tuning: MergeTuning) {
        let db = redb::Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        let mut model: BTreeMap<Vec<u8>, Rec> = BTreeMap::new();
        let mut rev = 0;
        let mut buf = Vec::new();
        let mut all = vec![
            before
                .into_iter()
                .map(|(k, big, exp)| (k, Some((big, exp))))
                .collect(),
        ];
        all.extend(writes);
        for items in all {
            // Unique keys in key order, as a flush gives them.
            let items: BTreeMap<u8, Option<(bool, bool)>> = items.into_iter().collect();
            let records: Vec<(Vec<u8>, Option<Rec>)> = items
                .into_iter()
                .map(|(k, item)| {
                    rev += 1;
                    (key(k), item.map(|(big, exp)| record(rev, big, exp)))
                })
                .collect();
            let sorted: Vec<crate::store::SortedItem<'_>> = records
                .iter()
                .map(|(k, r)| {
                    (
                        k.as_slice(),
                        r.as_ref().map(|(v, rev, at)| (v.as_slice(), *rev, *at)),
                    )
                })
                .collect();
            let (mut want_added, mut want_removed, mut want_absent) = (0, 0, Vec::new());
            for (k, r) in &records {
                let had = model.contains_key(k);
                match r {
                    Some(r) => {
                        if !had {
                            want_added += 1;
                            want_absent.push(k.clone());
                        }
                        model.insert(k.clone(), r.clone());
                    }
                    None if had => {
                        want_removed += 1;
                        model.remove(k);
                    }
                    None => want_absent.push(k.clone()),
                }
            }
            let mut absent = Vec::new();
            let wtx = db.begin_write().unwrap();
            let counts = {
                let mut t = Tables::open(&wtx).unwrap();
                t.tuning = tuning;
                t.write_sorted(&mut buf, sorted, &mut |k| absent.push(k.to_vec()))
                    .unwrap()
            };
            wtx.commit().unwrap();
            assert_eq!(counts, (want_added, want_removed));
            assert_eq!(absent, want_absent);
            let (records, index) = contents(&db);
            assert_eq!(records, model);
            assert_eq!(index, index_of(&model));
        }
    }

    fn item() -> impl Strategy<Value = Item> {
        (
            0u8..80,
            prop::option::weighted(0.8, (prop::bool::weighted(0.1), any::<bool>())),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn sorted_writes_match_a_model(
            before in prop::collection::vec((0u8..80, prop::bool::weighted(0.1), any::<bool>()), 0..60),
            writes in prop::collection::vec(prop::collection::vec(item(), 0..60), 1..4),
            window in 1usize..8,
            probes in 1usize..4,
            records_per_item in 1usize..4,
            max_bytes in prop::sample::select(vec![1usize, 200, 1 << 20]),
        ) {
            check(before, writes, MergeTuning { window, probes, records_per_item, max_bytes });
        }
    }

    /// With the default bounds too: a table of every other key, then the
    /// keys between them (all new: merged packed), then all overwritten
    /// (key by key) and a third deleted.
    #[test]
    fn interleaved_new_keys_and_overwrites_with_the_default_bounds() {
        let evens = (0..80).step_by(2).map(|k| (k, false, k % 3 == 0)).collect();
        let odds = (1..80)
            .step_by(2)
            .map(|k| (k, Some((k % 7 == 0, k % 5 == 0))))
            .collect();
        let all = (0..80)
            .map(|k| (k, (k % 3 != 0).then_some((false, k % 2 == 0))))
            .collect();
        check(evens, vec![odds, all], MergeTuning::default());
    }
}
