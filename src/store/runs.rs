//! Sorted runs: the input of a write cut into bounded runs, each sorted by
//! key, and the revisions each operation of a run takes.
//!
//! Speed: random-order inserts into a B-tree touch a random leaf each. The
//! input is therefore cut into bounded runs (see [`RUN_MAX_BYTES`]); each run
//! is sorted by key and written in key order, so neighbouring inserts share
//! pages. Sorting does not change the outcome: revisions are assigned in input
//! order first, and per key only the last operation of the run is written.

use redb::{ReadableTable, Table};

use super::record::{META_KEYS, META_REVISION};
use super::write_tables::Tables;
use crate::error::{Error, Result};
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

/// Counters carried across the runs of one batch.
pub(super) struct RunState {
    pub(super) revision: u64,
    pub(super) keys: u64,
    pub(super) applied: Applied,
    /// Reused encoding buffer.
    record: Vec<u8>,
}

impl RunState {
    /// The counters as the transaction starts.
    pub(super) fn load(meta: &Table<'_, &'static str, u64>) -> Result<RunState> {
        let counter = |name| -> Result<u64> { Ok(meta.get(name)?.map(|g| g.value()).unwrap_or(0)) };
        Ok(RunState {
            revision: counter(META_REVISION)?,
            keys: counter(META_KEYS)?,
            applied: Applied::default(),
            record: Vec::new(),
        })
    }

    /// Writes one run (see the module header).
    pub(super) fn write_run(&mut self, t: &mut Tables<'_>, run: &[Op]) -> Result<()> {
        let (order, groups) = sorted_order(run);
        self.write_sorted(t, run, &order, &groups)
    }

    /// [`RunState::write_run`] for a run of [`SortedRuns`].
    pub(super) fn write_sorted_run(&mut self, t: &mut Tables<'_>, run: &SortedRun) -> Result<()> {
        self.write_sorted(t, &run.ops, &run.order, &run.groups)
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

/// Indices of `run` in (key, input position) order, and the ranges of
/// them that share a key.
///
/// Sorts (first 16 key bytes, index) pairs, which sit together in memory
/// and compare as integers, and reads whole keys only on a tie of the first
/// 16 bytes: on random keys this halved the sort's share of a batch.
fn sorted_order(run: &[Op]) -> (Vec<usize>, Vec<std::ops::Range<usize>>) {
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
    // Neighbours whose prefixes differ have different keys: only equal
    // prefixes (long keys, or the same key again) read the keys, so this
    // pass does not visit `run` at random.
    let mut order = Vec::with_capacity(pairs.len());
    let mut groups = Vec::with_capacity(pairs.len());
    let mut start = 0;
    for (j, &(prefix, i)) in pairs.iter().enumerate() {
        if let Some(&(before, b)) = j.checked_sub(1).and_then(|k| pairs.get(k))
            && (prefix != before || run[i].key != run[b].key)
        {
            groups.push(start..j);
            start = j;
        }
        order.push(i);
    }
    if !pairs.is_empty() {
        groups.push(start..pairs.len());
    }
    (order, groups)
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
    /// Nothing but an error (a bad line) or the end follows: the input
    /// ended before the run was full.
    last: bool,
}

impl SortedRun {
    /// The run's operations, in input order.
    pub(super) fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Whether the input ended (or failed) with this run, so that what
    /// follows it is known at once.
    pub(super) fn last(&self) -> bool {
        self.last
    }

    fn new(ops: Vec<Op>, last: bool) -> SortedRun {
        let (order, groups) = sorted_order(&ops);
        SortedRun {
            ops,
            order,
            groups,
            last,
        }
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
                    if run.len() == SIZE_SAMPLE_OPS {
                        reserve_for_run(&mut run, bytes, self.max_bytes);
                    }
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
        Some(Ok(SortedRun::new(run, self.done)))
    }
}

/// Operations read before a run's length is estimated from their sizes.
const SIZE_SAMPLE_OPS: usize = 1024;

/// Reserves room for the operations a run of `max_bytes` will likely hold,
/// judged by the first ones (`run`, `bytes` of them), and a tenth more.
/// Growing by doubling instead copied the run several times and faulted in
/// its memory twice: a tenth of a 1M-line import. Room that stays unused is
/// never touched, so it costs address space, not memory.
///
/// A run without a bound (`usize::MAX`: the expiry sweep of a `--db`
/// write, up to 10,000 deletes) has no size to reserve for: it grows as it
/// goes. (Reserving for `usize::MAX` bytes panicked with a capacity
/// overflow once such a sweep reached 1,024 keys.) A reservation the
/// allocator refuses only means the same.
fn reserve_for_run(run: &mut Vec<Op>, bytes: usize, max_bytes: usize) {
    if max_bytes == usize::MAX {
        return;
    }
    let per_op = (bytes / run.len().max(1)).max(1);
    let expected = max_bytes / per_op;
    let wanted = expected.saturating_add(expected / 10);
    let _ = run.try_reserve(wanted.saturating_sub(run.len()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deletes(n: usize) -> impl Iterator<Item = Result<Op>> {
        (0..n).map(|i| Ok(Op::delete(format!("k{i:05}"))))
    }

    /// The expiry sweep of a `--db` write cuts its deletes with no bound:
    /// past the sample that sizes a run, this panicked (capacity overflow).
    #[test]
    fn a_run_without_a_bound_holds_every_operation() {
        let runs: Vec<SortedRun> = SortedRuns::new(deletes(10_000), usize::MAX)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].ops().len(), 10_000);
        // A bound far beyond memory reserves what the allocator gives.
        let runs: Vec<SortedRun> = SortedRuns::new(deletes(3_000), usize::MAX / 2)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].ops().len(), 3_000);
    }

    #[test]
    fn runs_are_cut_at_their_bound_in_input_order() {
        let per_op = Op::delete("k00000").mem_bytes();
        let runs: Vec<SortedRun> = SortedRuns::new(deletes(2_500), per_op * 1_000)
            .collect::<Result<_>>()
            .unwrap();
        let lens: Vec<usize> = runs.iter().map(|r| r.ops().len()).collect();
        assert_eq!(lens, [1_000, 1_000, 500]);
        assert_eq!(runs[1].ops()[0], Op::delete("k01000"));
    }
}
