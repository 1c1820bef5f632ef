//! Replay of the log after a crash (the steps are in the module header).

use std::path::Path;

use super::record::{self, Decoded, HEADER_LEN};
use super::{SEGMENT_HEADER, SEGMENT_MAGIC, dir_of, remove_dir};
use crate::error::{Error, Result};
use crate::store::{Commit, Store};
use crate::types::Op;

/// Records replayed per redb transaction: large groups make replay fast
/// (each is sorted into runs); a group of this many small writes stays
/// tens of MiB.
const REPLAY_GROUP: usize = 65_536;
/// Operation bytes per replay transaction, whatever the record count.
const REPLAY_GROUP_BYTES: usize = 64 << 20;

/// What [`recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Records applied from the log.
    pub records: u64,
    /// The database revision afterwards.
    pub revision: u64,
}

/// Replays the log of the database `store` after its last checkpoint, makes
/// the result durable and deletes the log. `None` when there was no log.
pub fn recover(store: &Store) -> Result<Option<Recovered>> {
    recover_dir(store, &dir_of(store.path()))
}

/// [`recover`] from the log directory `dir` (tests keep the log of a
/// database on a simulated disk apart).
pub fn recover_dir(store: &Store, dir: &Path) -> Result<Option<Recovered>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    if segments(dir)?.is_empty() {
        // Left by a clean stop on a file system that kept deleted files as
        // hidden names, or by a crash before the first segment: no log.
        remove_dir(dir)?;
        return Ok(None);
    }
    let state = replay(store, dir)?;
    store.checkpoint()?;
    remove_dir(dir)?;
    Ok(Some(state))
}

/// Replays the log in `dir` onto `store` without checkpointing or deleting
/// it: what a running server does after reopening its database file.
pub fn replay(store: &Store, dir: &Path) -> Result<Recovered> {
    let revision = store.snapshot()?.revision()?;
    replay_with(dir, revision, |ops, records| {
        let revision = store
            .apply(ops.into_iter().map(Ok), Commit::Buffered, usize::MAX)?
            .revision;
        store.put_idempotency(&records)?;
        Ok(revision)
    })
}

/// Idempotency records replayed from the log: key, encoded record.
pub type ReplayedRecords = Vec<(String, Vec<u8>)>;

/// Reads the log in `dir` and hands the operations of the records after
/// `revision` to `apply`, many records at a time, in order, with the
/// idempotency records they made; `apply` returns the revision it reached. Checks that the records continue the
/// revisions without a gap. The store replays into redb this way, the
/// server's engine into its memory table.
pub fn replay_with(
    dir: &Path,
    revision: u64,
    mut apply: impl FnMut(Vec<Op>, ReplayedRecords) -> Result<u64>,
) -> Result<Recovered> {
    let mut state = Recovered {
        records: 0,
        revision,
    };
    // Idempotency records of records with no operations, read but not yet
    // handed over: they go with the next call of `apply`.
    let mut pending = ReplayedRecords::new();
    for seq in segments(dir)? {
        let path = dir.join(format!("{seq:016x}.log"));
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        if bytes.get(..SEGMENT_MAGIC.len()) != Some(SEGMENT_MAGIC.as_slice()) {
            // Created but never given its header: it holds no record.
            continue;
        }
        replay_segment(&mut apply, dir, &bytes, seq, &mut state, &mut pending)?;
    }
    apply_group(&mut apply, dir, &mut Vec::new(), &mut state, &mut pending)?;
    Ok(state)
}

/// The first and last segment in `dir`, if any.
pub(super) fn segment_range(dir: &Path) -> Result<Option<(u64, u64)>> {
    let seqs = segments(dir)?;
    Ok(seqs.first().copied().zip(seqs.last().copied()))
}

/// The sequence numbers of the segments in `dir`, in order.
fn segments(dir: &Path) -> Result<Vec<u64>> {
    let io = |e| Error::io(format!("cannot read {}", dir.display()), e);
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if let Ok(seq) = u64::from_str_radix(stem, 16) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn replay_segment(
    apply_ops: &mut dyn FnMut(Vec<Op>, ReplayedRecords) -> Result<u64>,
    dir: &Path,
    bytes: &[u8],
    seq: u64,
    state: &mut Recovered,
    pending: &mut ReplayedRecords,
) -> Result<()> {
    let mut pos = SEGMENT_HEADER as usize;
    let mut group: Vec<Decoded> = Vec::new();
    let mut group_bytes = 0;
    while let Some(len) = bytes.get(pos..).and_then(record::payload_len) {
        let end = pos + HEADER_LEN + len;
        let Some(rec) = bytes.get(pos..end).and_then(|r| record::decode(r, seq)) else {
            break; // a torn tail: never acknowledged
        };
        pos = end;
        if rec.first_revision <= state.revision {
            continue; // covered by the checkpoint
        }
        if rec.ops.is_empty() {
            // Only an idempotency record (see `record.rs`): no revision.
            pending.extend(rec.idempotency);
            continue;
        }
        group_bytes += rec.ops.iter().map(|op| op.mem_bytes()).sum::<usize>();
        group.push(rec);
        if group.len() >= REPLAY_GROUP || group_bytes >= REPLAY_GROUP_BYTES {
            apply_group(apply_ops, dir, &mut group, state, pending)?;
            group_bytes = 0;
        }
    }
    apply_group(apply_ops, dir, &mut group, state, pending)
}

/// Applies the records of `group` in order as one sequence of operations:
/// the store's one write path sorts it into runs (as for `kvr batch`), which
/// replays far faster than record by record, and assigns the same revisions,
/// since logged operations are unconditional and revisions follow input
/// order. Checks that the records continue the database's revisions.
fn apply_group(
    apply_ops: &mut dyn FnMut(Vec<Op>, ReplayedRecords) -> Result<u64>,
    dir: &Path,
    group: &mut Vec<Decoded>,
    state: &mut Recovered,
    pending: &mut ReplayedRecords,
) -> Result<()> {
    let (Some(first), Some(last)) = (group.first(), group.last()) else {
        if !pending.is_empty() {
            let records = std::mem::take(pending);
            apply_ops(Vec::new(), records)?;
        }
        return Ok(());
    };
    let increasing = group
        .windows(2)
        .all(|w| w[0].first_revision < w[1].first_revision);
    if first.first_revision != state.revision + 1 || !increasing {
        return Err(gap(dir, first.first_revision, state.revision + 1));
    }
    let last_first = last.first_revision;
    let records = group.len() as u64;
    let ops: Vec<Op> = group
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.ops))
        .collect();
    let mut made = std::mem::take(pending);
    made.extend(group.iter_mut().filter_map(|r| r.idempotency.take()));
    let revision = apply_ops(ops, made)?;
    if revision < last_first {
        return Err(gap(dir, last_first, revision + 1));
    }
    state.revision = revision;
    state.records += records;
    group.clear();
    Ok(())
}

fn gap(dir: &Path, found: u64, expected: u64) -> Error {
    Error::Corrupt(format!(
        "the write-ahead log in {} has a record at revision {found} where {expected} was expected",
        dir.display()
    ))
}
