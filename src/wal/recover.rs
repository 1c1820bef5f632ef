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

/// Refuses to make a new database at `db` beside a write-ahead log left by
/// a file that is gone (deleted or moved since its server crashed): the
/// log holds only the writes since that file's last flush, and replaying
/// it made a new file hold some of the old database's keys and not the
/// rest. A server's file exists before its log does (`serve` creates it
/// at start), so only a hand makes this. Nothing is changed.
pub fn refuse_without_database(db: &Path) -> Result<()> {
    let dir = dir_of(db);
    if std::fs::symlink_metadata(db).is_ok() || !dir.is_dir() || segments(&dir)?.is_empty() {
        return Ok(());
    }
    Err(Error::Corrupt(format!(
        "{} holds the write-ahead log of a database file that is gone: {} is missing, and the \
         log alone is not a database (it holds only the writes since that file's last flush); \
         put {} back, or move {} aside to start a new database there",
        dir.display(),
        db.display(),
        db.display(),
        dir.display()
    )))
}

/// Refuses the log beside the database `db` if it is another database's
/// ([`check_owner`]), reading the file's id without writing to it: before
/// the file is opened for writing, which rewrites its header and may trim
/// its end (a refusal after that said nothing changed, and the file had).
/// Nothing to refuse without a log, or when the file cannot be read so
/// (its open then says why).
pub fn refuse_another_database(db: &Path) -> Result<()> {
    let dir = dir_of(db);
    if !dir.is_dir() {
        return Ok(());
    }
    match crate::store::peek_database_id(db) {
        Some(id) => check_owner(&dir, id),
        None => Ok(()),
    }
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
    replay_with(dir, revision, store.database_id()?, |ops, _, records| {
        let revision = store
            .apply(ops.into_iter().map(Ok), Commit::Buffered, usize::MAX)?
            .revision;
        store.put_idempotency(&records)?;
        Ok(revision)
    })
}

/// Idempotency records replayed from the log: key, encoded record.
pub type ReplayedRecords = Vec<(String, Vec<u8>)>;

/// What [`replay_with`] hands records to: their operations, where each
/// record's operations end, their idempotency records; returns the
/// revision reached.
type Apply<'a> = dyn FnMut(Vec<Op>, &[usize], ReplayedRecords) -> Result<u64> + 'a;

/// Reads the log in `dir` and hands the operations of the records after
/// `revision` to `apply`, many records at a time, in order, with where
/// each record's operations end (a record is one request: the watch
/// history keeps requests whole) and the idempotency records they made;
/// `apply` returns the revision it reached.
/// Checks that the records continue the revisions without a gap. The store
/// replays into redb this way, the server's engine into its memory table.
///
/// The log is first read through (`scan`): damage that would lose
/// acknowledged writes, or a segment of another database than `database`
/// (the id of the file replayed into), is refused before anything is
/// applied.
pub fn replay_with(
    dir: &Path,
    revision: u64,
    database: Option<u64>,
    mut apply: impl FnMut(Vec<Op>, &[usize], ReplayedRecords) -> Result<u64>,
) -> Result<Recovered> {
    check_owner(dir, database)?;
    let plans = scan(dir, Some(revision))?;
    let mut state = Recovered {
        records: 0,
        revision,
    };
    // Idempotency records of records with no operations, read but not yet
    // handed over: they go with the next call of `apply`.
    let mut pending = ReplayedRecords::new();
    let mut buf = Vec::new();
    for plan in &plans {
        let bytes = read_segment(dir, plan.seq, &mut buf)?;
        replay_segment(&mut apply, dir, bytes, plan, &mut state, &mut pending)?;
    }
    apply_group(&mut apply, dir, &mut Vec::new(), &mut state, &mut pending)?;
    Ok(state)
}

/// What a leftover log holds beyond a database file at revision `held`
/// (see [`pending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    /// Logged requests after `held`: what a replay would apply.
    pub records: u64,
    /// Their operations.
    pub ops: u64,
    /// The highest revision those requests may reach (each operation takes
    /// at most one).
    pub reach: u64,
}

/// Reads the log in `dir` without replaying it, for `kvr check`: what a
/// replay onto a file at revision `held` would apply. An error names what
/// would make the replay fail, and damage it would step over: any record
/// that fails its check with an intact group after it, which no crash can
/// leave (see `group_after_damage`); revisions that go backwards; a first
/// request after `held` that does not continue it (a file older than its
/// log, put back from a copy). ([`check_owner`] says whose log it is.)
pub fn pending(dir: &Path, held: u64) -> Result<Pending> {
    let mut pending = Pending {
        records: 0,
        ops: 0,
        reach: held,
    };
    let mut buf = Vec::new();
    for plan in scan(dir, None)? {
        let bytes = read_segment(dir, plan.seq, &mut buf)?;
        let mut pos = SEGMENT_HEADER as usize;
        while pos < plan.end {
            let Some(end) = bytes
                .get(pos..)
                .and_then(record::payload_len)
                .map(|len| pos + HEADER_LEN + len)
            else {
                break;
            };
            match bytes.get(pos..end).and_then(|r| record::check(r, plan.seq)) {
                Some((first, ops @ 1..)) if first > held => {
                    if pending.records == 0 && first != held + 1 {
                        return Err(gap(dir, first, held + 1));
                    }
                    pending.records += 1;
                    pending.ops += u64::from(ops);
                    pending.reach = pending.reach.max(first + u64::from(ops) - 1);
                }
                // Covered by the file, or only an idempotency record.
                Some(_) => {}
                None => return Err(changed_while_read(dir, plan.seq, pos)),
            }
            pos = end;
        }
    }
    Ok(pending)
}

/// Refuses the log in `dir` if a segment's header names another database
/// than `database` (the id of the file beside it; `None` for a file an
/// older kvr made). A segment with no id (0), from an older kvr, is
/// anyone's. Reads only the headers.
pub fn check_owner(dir: &Path, database: Option<u64>) -> Result<()> {
    use std::os::unix::fs::FileExt;
    for seq in segments(dir)? {
        let path = dir.join(format!("{seq:016x}.log"));
        let mut header = [0u8; SEGMENT_HEADER as usize];
        let read = std::fs::File::open(&path).and_then(|f| f.read_exact_at(&mut header, 0));
        match read {
            Ok(()) => owned(dir, &header, database)?,
            // Shorter than a header: created but never given one.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        }
    }
    Ok(())
}

/// Whether a segment that starts with the header `bytes` may be replayed
/// into the database `database`: an error names both ids when it may not.
fn owned(dir: &Path, bytes: &[u8], database: Option<u64>) -> Result<()> {
    let id = bytes
        .get(SEGMENT_MAGIC.len()..SEGMENT_HEADER as usize)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    if bytes.get(..SEGMENT_MAGIC.len()) != Some(SEGMENT_MAGIC.as_slice())
        || id == 0
        || Some(id) == database
    {
        return Ok(());
    }
    let db = super::identity::database_of(dir);
    let theirs = database.map_or("no id: made by an older kvr".to_string(), |d| {
        format!("database id {d:016x}")
    });
    Err(Error::Corrupt(format!(
        "{} is the write-ahead log of another database (database id {id:016x}), not of {} \
         ({theirs}): a database file was put in place of the one whose server crashed, and \
         replaying that log would mix another database's writes into it; nothing was changed. \
         Move {} aside (it belongs beside the file it came from, which replays it)",
        dir.display(),
        db.display(),
        dir.display()
    )))
}

/// What the replay reads of a segment, as [`scan`] checked it: its
/// records from the header up to `end`, stepping over damage the database
/// covers (`skips`: from the record that fails its check to the intact one
/// after it).
#[derive(Debug)]
struct Plan {
    seq: u64,
    end: usize,
    skips: Vec<(usize, usize)>,
}

/// Reads every record's header and checksum, once: the replay then parses
/// the records it was told are intact ([`Plan`]). A segment may end at a
/// record that fails its check without damage: a torn tail, or a record
/// left over in a recycled segment. Damage, an intact group after such a
/// record ([`group_after_damage`]), is an error unless the database holds
/// (`held`, its revision) every revision before that group: then the
/// replay steps over it. `held` `None` (`kvr check`): any damage is an
/// error, and so are revisions that go backwards.
fn scan(dir: &Path, held: Option<u64>) -> Result<Vec<Plan>> {
    let mut plans = Vec::new();
    // The revision the records read so far reach.
    let mut reach = held.unwrap_or(0);
    let mut last = 0;
    let mut buf = Vec::new();
    for seq in segments(dir)? {
        let bytes = read_segment(dir, seq, &mut buf)?;
        if bytes.get(..SEGMENT_MAGIC.len()) != Some(SEGMENT_MAGIC.as_slice()) {
            // A segment gets its header once it is zero-filled (`fill`), so
            // one without a header holds nothing but zeros: a crash cut its
            // making short. Anything else is a header damaged after records
            // were written behind it: not an empty log (a damaged first
            // sector threw every acknowledged write in it away, found by
            // an audit).
            if bytes.iter().all(|&b| b == 0) {
                continue;
            }
            let what = bad_header(dir, seq);
            return Err(match held {
                Some(held) => not_replayed(dir, what, held),
                None => Error::Corrupt(what),
            });
        }
        // A segment gets its header once it is whole (`fill`), so one cut
        // short after that was cut by something else than a crash, and its
        // records after the cut, acknowledged, are gone: not a torn tail.
        if bytes.len() < SEGMENT_HEADER as usize || bytes.len() % SEGMENT_ALIGN != 0 {
            let what = cut_short(dir, seq, bytes.len());
            return Err(match held {
                Some(held) => not_replayed(dir, what, held),
                None => Error::Corrupt(what),
            });
        }
        let mut plan = Plan {
            seq,
            end: SEGMENT_HEADER as usize,
            skips: Vec::new(),
        };
        let mut pos = plan.end;
        while let Some(len) = bytes.get(pos..).and_then(record::payload_len) {
            let end = pos + HEADER_LEN + len;
            let Some((first, ops)) = bytes.get(pos..end).and_then(|r| record::check(r, seq)) else {
                let Some((next, first)) = group_after_damage(bytes, pos, seq) else {
                    break; // a torn tail
                };
                let at = Damage { seq, pos };
                match held {
                    Some(_) if first <= reach + 1 => plan.skips.push((pos, next)),
                    Some(held) => return Err(damaged(dir, at, first, held)),
                    None => return Err(damaged_log(dir, at, first)),
                }
                pos = next;
                continue;
            };
            if held.is_none() && first < last {
                return Err(gap(dir, first, last));
            }
            last = first;
            if ops > 0 {
                reach = reach.max(first + u64::from(ops) - 1);
            }
            pos = end;
            plan.end = end;
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// Reads a segment into `buf` (reused: a fresh 16 MiB buffer per segment
/// costs its page faults again, in each of the two passes).
fn read_segment<'b>(dir: &Path, seq: u64, buf: &'b mut Vec<u8>) -> Result<&'b [u8]> {
    use std::io::Read;
    let path = dir.join(format!("{seq:016x}.log"));
    buf.clear();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(buf))
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    Ok(buf)
}

/// A record that failed its check: its segment and byte offset.
#[derive(Debug, Clone, Copy)]
struct Damage {
    seq: u64,
    pos: usize,
}

/// After the record at `pos` of segment `seq` failed its check: the offset
/// and first revision of the next intact record of that segment that
/// starts a group. A crash tears only the last group written (records go
/// to the log a group per write and sync, one after the other), so such a
/// record shows that the log was damaged after it was written. Looks at
/// every offset, since the damaged record's length may be wrong too.
fn group_after_damage(bytes: &[u8], pos: usize, seq: u64) -> Option<(usize, u64)> {
    // The byte that holds a header's group mark (bit 63 of the u64 at 8).
    const MARK: usize = 15;
    let mut mark = pos + 1 + MARK;
    while mark < bytes.len() {
        // Only offsets whose mark byte has its top bit set can start a
        // group: the rest (zeros, text) is skipped fast.
        mark += bytes[mark..].iter().position(|&b| b & 0x80 != 0)?;
        let at = mark - MARK;
        if record::starts_group(&bytes[at..])
            && let Some(len) = record::payload_len(&bytes[at..])
            && let Some((first, _)) = bytes
                .get(at..at.saturating_add(HEADER_LEN + len))
                .and_then(|r| record::check(r, seq))
        {
            return Some((at, first));
        }
        mark += 1;
    }
    None
}

/// The error of a log damaged where a crash cannot have torn it, whose
/// intact records from revision `first` on the replay cannot reach; the
/// database holds up to revision `held`.
fn damaged(dir: &Path, at: Damage, first: u64, held: u64) -> Error {
    match damaged_log(dir, at, first) {
        Error::Corrupt(what) => not_replayed(dir, what, held),
        other => other,
    }
}

/// The error of a replay refused because the log lost acknowledged writes
/// (`what`): what the user can do, the database holding revision `held`.
fn not_replayed(dir: &Path, what: String, held: u64) -> Error {
    Error::Corrupt(format!(
        "{what}. Those writes were acknowledged, so nothing is replayed rather than \
         lose them: restore a backup, or move {} aside to open the file as it was \
         flushed, at revision {held} (every write after that is lost)",
        dir.display()
    ))
}

/// What is wrong with segment `seq`, whose header is damaged.
fn bad_header(dir: &Path, seq: u64) -> String {
    format!(
        "the write-ahead log in {} is damaged: {seq:016x}.log does not start with a log \
         segment's header, yet holds data (a segment gets its header before any record is \
         written to it, so no crash leaves one so)",
        dir.display()
    )
}

/// Every segment is made a whole number of these bytes long (16 MiB, a
/// multiple of 1 MiB for an oversized one; tests make them of 2 KiB and
/// more).
const SEGMENT_ALIGN: usize = 512;

/// What is wrong with segment `seq` of `len` bytes, a length no segment is
/// made with.
fn cut_short(dir: &Path, seq: u64, len: usize) -> String {
    format!(
        "the write-ahead log in {} is damaged: {seq:016x}.log is {len} bytes long, cut short \
         after it was made (a segment is made whole before it gets its header, so no crash \
         leaves one so), and what it held after the cut is gone",
        dir.display()
    )
}

fn damaged_log(dir: &Path, at: Damage, first: u64) -> Error {
    Error::Corrupt(format!(
        "the write-ahead log in {} is damaged: the record at byte {} of {:016x}.log fails \
         its checksum, and records written after it are intact (from revision {first}), \
         which a crash cannot leave",
        dir.display(),
        at.pos,
        at.seq
    ))
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

/// Replays the records of one segment that [`scan`] found intact.
fn replay_segment(
    apply_ops: &mut Apply<'_>,
    dir: &Path,
    bytes: &[u8],
    plan: &Plan,
    state: &mut Recovered,
    pending: &mut ReplayedRecords,
) -> Result<()> {
    let mut pos = SEGMENT_HEADER as usize;
    let mut group: Vec<Decoded> = Vec::new();
    let mut group_bytes = 0;
    while pos < plan.end {
        if let Some(&(_, to)) = plan.skips.iter().find(|(from, _)| *from == pos) {
            pos = to; // damage the database covers (see `scan`)
            continue;
        }
        let end = bytes
            .get(pos..)
            .and_then(record::payload_len)
            .map(|len| pos + HEADER_LEN + len);
        let rec = end
            .and_then(|end| bytes.get(pos..end))
            .and_then(record::parse)
            .ok_or_else(|| changed_while_read(dir, plan.seq, pos))?;
        pos = end.unwrap_or(plan.end);
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
    apply_ops: &mut Apply<'_>,
    dir: &Path,
    group: &mut Vec<Decoded>,
    state: &mut Recovered,
    pending: &mut ReplayedRecords,
) -> Result<()> {
    let (Some(first), Some(last)) = (group.first(), group.last()) else {
        if !pending.is_empty() {
            let records = std::mem::take(pending);
            apply_ops(Vec::new(), &[], records)?;
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
    // Sized at once: grown from empty, a group of 65,536 records was
    // copied into fresh pages a dozen times (a tenth of a replay's time).
    let mut ops: Vec<Op> = Vec::with_capacity(group.iter().map(|r| r.ops.len()).sum());
    let mut ends = Vec::with_capacity(group.len());
    for r in group.iter_mut() {
        ops.append(&mut r.ops);
        ends.push(ops.len());
    }
    let mut made = std::mem::take(pending);
    made.extend(group.iter_mut().filter_map(|r| r.idempotency.take()));
    let revision = apply_ops(ops, &ends, made)?;
    if revision < last_first {
        return Err(gap(dir, last_first, revision + 1));
    }
    state.revision = revision;
    state.records += records;
    group.clear();
    Ok(())
}

/// A record [`scan`] found intact that does not read back so.
fn changed_while_read(dir: &Path, seq: u64, pos: usize) -> Error {
    Error::Corrupt(format!(
        "the write-ahead log in {} changed while it was read, or a record of {seq:016x}.log at \
         byte {pos} checks but does not decode",
        dir.display(),
    ))
}

fn gap(dir: &Path, found: u64, expected: u64) -> Error {
    Error::Corrupt(format!(
        "the write-ahead log in {} has a record at revision {found} where {expected} was expected",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wal::Wal;

    /// A log of `groups` (each a list of revisions, one put per record,
    /// written with one append), and its one segment's path.
    fn log_of(dir: &Path, groups: &[&[u64]]) -> (Wal, std::path::PathBuf) {
        let mut wal = Wal::create_in(dir, 1 << 20, 7).unwrap();
        for group in groups {
            let ops: Vec<Vec<Op>> = group
                .iter()
                .map(|r| vec![Op::put(format!("key{r}"), format!("value{r}"))])
                .collect();
            let requests: Vec<(u64, &[Op])> = group
                .iter()
                .zip(&ops)
                .map(|(r, ops)| (*r, ops.as_slice()))
                .collect();
            wal.append(&requests).unwrap();
        }
        let segment = wal.end().0;
        (wal, segment)
    }

    /// The byte offset of each record of a segment.
    fn offsets(bytes: &[u8]) -> Vec<usize> {
        let mut pos = SEGMENT_HEADER as usize;
        let mut out = Vec::new();
        while let Some(len) = bytes.get(pos..).and_then(record::payload_len) {
            out.push(pos);
            pos += HEADER_LEN + len;
        }
        out
    }

    /// Flips a byte in the payload of the `n`th record (from 0).
    fn damage(segment: &Path, n: usize) {
        let mut bytes = std::fs::read(segment).unwrap();
        let at = offsets(&bytes)[n] + HEADER_LEN + 6;
        bytes[at] ^= 0x20;
        std::fs::write(segment, bytes).unwrap();
    }

    /// Replays the log onto a database at `held`: the revision reached and
    /// the keys replayed.
    fn replay(dir: &Path, held: u64) -> Result<(u64, Vec<Vec<u8>>)> {
        let mut keys = Vec::new();
        let mut reached = held;
        let got = replay_with(dir, held, Some(7), |ops, _, _| {
            reached += ops.len() as u64;
            keys.extend(ops.into_iter().map(|op| op.key));
            Ok(reached)
        })?;
        Ok((got.revision, keys))
    }

    fn key(r: u64) -> Vec<u8> {
        format!("key{r}").into_bytes()
    }

    #[test]
    fn damage_before_intact_later_groups_stops_the_replay_and_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db.wal");
        let groups: Vec<Vec<u64>> = (1..=20).map(|r| vec![r]).collect();
        let groups: Vec<&[u64]> = groups.iter().map(Vec::as_slice).collect();
        let (wal, segment) = log_of(&dir, &groups);
        assert_eq!(replay(&dir, 0).unwrap().0, 20);
        assert_eq!(
            pending(&dir, 0).unwrap(),
            Pending {
                records: 20,
                ops: 20,
                reach: 20
            }
        );
        damage(&segment, 9);
        let Err(Error::Corrupt(message)) = replay(&dir, 0) else {
            panic!("replayed a damaged log");
        };
        assert!(
            message.contains("is damaged") && message.contains("from revision 11"),
            "{message}"
        );
        // Nothing is applied once the damage is found: the database stays
        // as it was flushed.
        assert!(message.contains("at revision 0"), "{message}");
        assert!(replay_with(&dir, 0, Some(7), |_, _, _| panic!("applied")).is_err());
        let Err(Error::Corrupt(checked)) = pending(&dir, 0) else {
            panic!("the check missed the damage");
        };
        assert!(checked.contains("from revision 11"), "{checked}");
        // A database that holds the damaged record's revision already
        // loses nothing: the replay goes on after it.
        let (revision, keys) = replay(&dir, 10).unwrap();
        assert_eq!(revision, 20);
        assert_eq!(keys, (11..=20).map(key).collect::<Vec<_>>());
        wal.remove().unwrap();
    }

    #[test]
    fn damage_in_the_last_group_is_a_torn_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db.wal");
        // Records 0..=2 are groups of one; 3, 4 and 5 (revisions 4-6) one
        // group, written and synced together.
        let (wal, segment) = log_of(&dir, &[&[1], &[2], &[3], &[4, 5, 6]]);
        damage(&segment, 3);
        // A crash may keep any part of the last group: what follows the
        // torn record is not replayed, and no error.
        assert_eq!(replay(&dir, 0).unwrap(), (3, vec![key(1), key(2), key(3)]));
        assert_eq!(pending(&dir, 0).unwrap().reach, 3);
        wal.remove().unwrap();
        // Damage in the middle of an earlier group, later groups intact.
        let dir = tmp.path().join("db2.wal");
        let (wal, segment) = log_of(&dir, &[&[1], &[2, 3, 4], &[5], &[6]]);
        damage(&segment, 2);
        assert!(matches!(replay(&dir, 0), Err(Error::Corrupt(_))));
        assert!(matches!(pending(&dir, 0), Err(Error::Corrupt(_))));
        wal.remove().unwrap();
    }

    /// A segment whose length was cut after it was made (`truncate`, a
    /// copy that stopped short) lost acknowledged records: the replay and
    /// the check refuse it, where a torn tail would have been replayed up
    /// to the cut and the rest lost in silence. A segment of zeros, which a
    /// crash while it was being made leaves, is still no record and no
    /// error.
    #[test]
    fn a_segment_cut_short_is_refused_not_a_torn_tail() {
        let tmp = tempfile::tempdir().unwrap();
        for cut in [8, 100, 1000, 4095] {
            let dir = tmp.path().join(format!("db{cut}.wal"));
            let (wal, segment) = log_of(&dir, &[&[1], &[2], &[3]]);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&segment)
                .unwrap()
                .set_len(cut)
                .unwrap();
            let Err(Error::Corrupt(replayed)) = replay(&dir, 0) else {
                panic!("replayed a segment cut to {cut} bytes");
            };
            assert!(
                replayed.contains(&format!("is {cut} bytes long, cut short"))
                    && replayed.contains("nothing is replayed")
                    && replayed.contains("at revision 0"),
                "{replayed}"
            );
            let Err(Error::Corrupt(checked)) = pending(&dir, 0) else {
                panic!("the check missed a segment cut to {cut} bytes");
            };
            assert!(checked.contains("cut short"), "{checked}");
            wal.remove().unwrap();
        }
        // Zeros where the header goes: a segment a crash left half made.
        let dir = tmp.path().join("zeros.wal");
        let (wal, segment) = log_of(&dir, &[&[1]]);
        std::fs::write(&segment, vec![0u8; 3000]).unwrap();
        assert_eq!(replay(&dir, 0).unwrap(), (0, vec![]));
        assert_eq!(pending(&dir, 0).unwrap().records, 0);
        wal.remove().unwrap();
    }

    /// A segment whose header was damaged (a byte changed, or its start
    /// zeroed) after records were written behind it is damage that loses
    /// acknowledged writes: refused, not read as an empty log. (A segment
    /// zeroed up to its last record is zeros, as a crash while it was
    /// being made leaves one: nothing tells them apart.)
    #[test]
    fn a_damaged_segment_header_is_refused_not_an_empty_log() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, zeroed) in [("flipped", 1), ("zeroed", 40)] {
            let dir = tmp.path().join(format!("{name}.wal"));
            let (wal, segment) = log_of(&dir, &[&[1], &[2], &[3]]);
            let mut bytes = std::fs::read(&segment).unwrap();
            if zeroed == 1 {
                bytes[0] = b'X';
            } else {
                bytes[..zeroed].fill(0);
            }
            std::fs::write(&segment, bytes).unwrap();
            let Err(Error::Corrupt(replayed)) = replay(&dir, 0) else {
                panic!("{name}: a segment with a damaged header replayed as empty");
            };
            assert!(
                replayed.contains("does not start with a log segment's header")
                    && replayed.contains("nothing is replayed"),
                "{replayed}"
            );
            let Err(Error::Corrupt(checked)) = pending(&dir, 0) else {
                panic!("{name}: the check missed a damaged header");
            };
            assert!(checked.contains("header"), "{checked}");
            wal.remove().unwrap();
        }
    }

    /// What a check says a replay would apply: the requests after the
    /// file's revision, or the gap that would stop the replay.
    #[test]
    fn pending_counts_what_a_replay_applies_and_finds_a_gap() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db.wal");
        let (wal, _) = log_of(&dir, &[&[5], &[6, 7], &[8]]);
        // The file holds revision 4, or 6: the replay starts after it.
        assert_eq!(
            pending(&dir, 4).unwrap(),
            Pending {
                records: 4,
                ops: 4,
                reach: 8
            }
        );
        assert_eq!(
            pending(&dir, 6).unwrap(),
            Pending {
                records: 2,
                ops: 2,
                reach: 8
            }
        );
        // The file holds it all: nothing to replay.
        assert_eq!(
            pending(&dir, 9).unwrap(),
            Pending {
                records: 0,
                ops: 0,
                reach: 9
            }
        );
        // A file older than its log (revision 3): the replay would stop at
        // the gap, and so does the check, with the same words.
        let Err(Error::Corrupt(checked)) = pending(&dir, 3) else {
            panic!("the check missed the gap");
        };
        let Err(Error::Corrupt(replayed)) = replay(&dir, 3) else {
            panic!("replayed across a gap");
        };
        assert_eq!(checked, replayed);
        assert!(
            checked.contains("a record at revision 5 where 4 was expected"),
            "{checked}"
        );
        wal.remove().unwrap();
    }
}
