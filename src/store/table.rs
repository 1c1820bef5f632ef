//! The two things the engine needs from redb beyond [`Store::apply`]: a
//! read view that threads share without a transaction per request
//! ([`TableReader`]), and the flush of a memory table ([`Store::write_table`]).

use std::collections::HashSet;
use std::ops::Bound;

use redb::{ReadOnlyTable, ReadableTable};

use super::record::{
    self, EXPIRY, HISTORY, IDEMPOTENCY, IDEMPOTENCY_BY_TIME, KV, META, META_HISTORY_BYTES,
    META_HISTORY_OLDEST, META_HISTORY_SHARED_AS_OF, META_HISTORY_SHARED_NEWEST, META_KEYS,
    META_REVISION,
};
use super::{Commit, Snapshot, Store};
use crate::error::{Error, Result};

/// The `kv` table of one read snapshot. It keeps that snapshot alive; every
/// read through it sees the same commit, from any thread.
pub struct TableReader {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
    /// `None` in a file of an earlier release that never had a key expire.
    expiry: Option<ReadOnlyTable<(u64, &'static [u8]), u64>>,
    /// `None` in a file that never kept watch history.
    history: Option<ReadOnlyTable<u64, &'static [u8]>>,
    /// `None` in a file that never recorded an Idempotency-Key.
    idempotency: Option<ReadOnlyTable<&'static str, &'static [u8]>>,
    /// The oldest history revision kept, and the bytes kept.
    history_mark: (u64, u64),
    revision: u64,
    keys: u64,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("revision", &self.revision)
            .finish()
    }
}

/// One raw item of a redb range over the `kv` table.
type RangeItem<'a> = std::result::Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

/// One `kv` item as redb hands it out: key and raw record, read in place.
type RawItem = (
    redb::AccessGuard<'static, &'static [u8]>,
    redb::AccessGuard<'static, &'static [u8]>,
);

/// One item of a [`TableReader`] range: key, value, revision, expiry.
pub type TableItem = (Vec<u8>, Vec<u8>, u64, Option<u64>);

/// A key's final state in a flush or a copy: value, revision and expiry,
/// or `None` to delete it.
pub type SortedItem<'a> = (&'a [u8], Option<(&'a [u8], u64, Option<u64>)>);

impl TableReader {
    /// The revision of the commit this reader sees.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The key count of that commit.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// The oldest history revision this commit keeps and the bytes its
    /// kept events count.
    pub fn history_mark(&self) -> (u64, u64) {
        self.history_mark
    }

    /// Up to `max` stored events from revision `from` on, in order, each
    /// as (revision, stored bytes) to `visit`. Rows below the oldest kept
    /// revision may still be there (a flush deletes them); callers check.
    pub fn history(
        &self,
        from: u64,
        max: usize,
        mut visit: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let Some(table) = &self.history else {
            return Ok(());
        };
        for item in table.range(from..)?.take(max) {
            let (k, v) = item?;
            visit(k.value(), v.value())?;
        }
        Ok(())
    }

    /// The stored record of an Idempotency-Key, if any (old or not).
    pub fn idempotency(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(table) = &self.idempotency else {
            return Ok(None);
        };
        Ok(table.get(key)?.map(|g| g.value().to_vec()))
    }

    /// Up to `max` idempotency records after `after` (exclusive), in key
    /// order, to `visit` (a Raft snapshot carries them).
    pub fn idempotency_page(
        &self,
        after: Option<&str>,
        max: usize,
        mut visit: impl FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let Some(table) = &self.idempotency else {
            return Ok(());
        };
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        for item in table.range::<&str>((lower, Bound::Unbounded))?.take(max) {
            let (k, v) = item?;
            visit(k.value(), v.value())?;
        }
        Ok(())
    }

    /// A key's value, revision and expiry.
    pub fn get(&self, key: &[u8]) -> Result<Option<crate::types::Entry>> {
        match self.table.get(key)? {
            Some(guard) => {
                let rec = record::decode(guard.value())?;
                Ok(Some(crate::types::Entry {
                    value: rec.value.to_vec(),
                    revision: rec.revision,
                    expires_at_ms: rec.expires_at_ms,
                }))
            }
            None => Ok(None),
        }
    }

    /// The value of `key`'s record when the record has `revision` (a
    /// watch history row that shares its value with the record).
    pub fn value_at(&self, key: &[u8], revision: u64) -> Result<Option<bytes::Bytes>> {
        match self.table.get(key)? {
            Some(guard) => {
                let rec = record::decode(guard.value())?;
                Ok((rec.revision == revision).then(|| bytes::Bytes::copy_from_slice(rec.value)))
            }
            None => Ok(None),
        }
    }

    /// Whether the commit holds `key`.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.table.get(key)?.is_some())
    }

    /// A key's revision and expiry, without copying its value.
    pub fn state_of(&self, key: &[u8]) -> Result<Option<(u64, Option<u64>)>> {
        match self.table.get(key)? {
            Some(guard) => {
                let rec = record::decode(guard.value())?;
                Ok(Some((rec.revision, rec.expires_at_ms)))
            }
            None => Ok(None),
        }
    }

    /// Up to `max` entries of the expiry index due at `now_ms` and after
    /// `after`, in expiry order: (expires_at_ms, key, revision).
    pub fn expired(
        &self,
        now_ms: u64,
        max: usize,
        after: Option<&(u64, Vec<u8>)>,
    ) -> Result<Vec<(u64, Vec<u8>, u64)>> {
        let Some(table) = &self.expiry else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let iter = match after {
            Some((at, key)) => table.range::<(u64, &[u8])>((
                Bound::Excluded((*at, key.as_slice())),
                Bound::Unbounded,
            ))?,
            None => table.range::<(u64, &[u8])>(..)?,
        };
        for item in iter.take(max) {
            let (k, v) = item?;
            let (at, key) = k.value();
            if at > now_ms {
                break;
            }
            out.push((at, key.to_vec(), v.value()));
        }
        Ok(out)
    }

    /// A cursor over the interval, in key order or reversed, that reads
    /// records in place: a range merged with the memory tables takes each
    /// from the file's page without copying it (a page of 100 copied every
    /// key and value twice: 14 % of a range's time).
    pub fn cursor(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<TableCursor> {
        let mut cursor = TableCursor {
            iter: self.table.range::<&[u8]>((lower, upper))?,
            head: None,
            reverse,
        };
        cursor.advance()?;
        Ok(cursor)
    }

    /// Up to `n` items of the interval, in key order or reversed, stopping
    /// early once their values reach `max_bytes` (always at least one
    /// item), so that a page of large values stays a bounded allocation.
    /// Returns whether it stopped at either bound: more items may follow.
    /// Callers page through a range with it, so no iterator borrows the
    /// reader between pages.
    pub fn page(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        (n, max_bytes): (usize, usize),
        out: &mut Vec<TableItem>,
    ) -> Result<bool> {
        let iter = self.table.range::<&[u8]>((lower, upper))?;
        let (mut items, mut bytes) = (0, 0);
        let mut push = |item: RangeItem<'_>| -> Result<bool> {
            let (k, v) = item?;
            let rec = record::decode(v.value())?;
            items += 1;
            bytes += rec.value.len();
            out.push((
                k.value().to_vec(),
                rec.value.to_vec(),
                rec.revision,
                rec.expires_at_ms,
            ));
            Ok(items >= n || bytes >= max_bytes)
        };
        if n == 0 {
            return Ok(true);
        }
        if reverse {
            for item in iter.rev() {
                if push(item)? {
                    return Ok(true);
                }
            }
        } else {
            for item in iter {
                if push(item)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// See [`TableReader::cursor`]. It holds the pages of its place in the
/// tree (redb shares them), never a lock.
pub struct TableCursor {
    iter: redb::Range<'static, &'static [u8], &'static [u8]>,
    /// The current item: key and raw record.
    head: Option<RawItem>,
    reverse: bool,
}

impl TableCursor {
    /// The current key, `None` past the end.
    pub fn key(&self) -> Option<&[u8]> {
        self.head.as_ref().map(|(k, _)| k.value())
    }

    /// The current key and its record, `None` past the end.
    pub fn current(&self) -> Result<Option<(&[u8], record::Record<'_>)>> {
        match &self.head {
            Some((k, v)) => Ok(Some((k.value(), record::decode(v.value())?))),
            None => Ok(None),
        }
    }

    /// Moves to the next item.
    pub fn advance(&mut self) -> Result<()> {
        self.head = None;
        let next = if self.reverse {
            self.iter.next_back()
        } else {
            self.iter.next()
        };
        self.head = next.transpose()?;
        Ok(())
    }
}

impl Snapshot {
    /// A [`TableReader`] over this snapshot.
    pub fn reader(&self) -> Result<TableReader> {
        let expiry = match self.txn.open_table(EXPIRY) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let history = match self.txn.open_table(HISTORY) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let idempotency = match self.txn.open_table(IDEMPOTENCY) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let revision = self.revision()?;
        let meta = self.txn.open_table(META)?;
        let oldest = meta.get(META_HISTORY_OLDEST)?.map(|g| g.value());
        let bytes = meta.get(META_HISTORY_BYTES)?.map_or(0, |g| g.value());
        Ok(TableReader {
            expiry,
            history,
            idempotency,
            history_mark: (oldest.unwrap_or(revision + 1), bytes),
            table: self.txn.open_table(KV)?,
            revision: self.revision()?,
            keys: self.counter(META_KEYS)?,
        })
    }
}

/// Whether the commit storing the events created a key (it was absent
/// from the store before).
pub type Created<'a> = dyn Fn(&[u8]) -> bool + 'a;

/// Receives one event to store: its revision and stored bytes.
pub type StoreEvent<'a> = dyn FnMut(u64, &[u8]) -> Result<()> + 'a;

/// How a flush rewrites a watch history row that shares its value with a
/// `kv` record before that record changes: `(row, key, value)` to the
/// whole row, `None` when the row needs no rewrite (the row format is the
/// engine's, `engine/history.rs`).
pub type InlineValue = fn(&[u8], &[u8], &[u8]) -> Option<Vec<u8>>;

/// The history part of a flush: the events to store, encoded one at a
/// time into the visitor (no copy of the whole table's events), and the
/// history state after them.
pub struct HistoryUpdate<'a> {
    /// Stores the events, after the commit's records: the first argument
    /// tells whether the commit created a key (it was absent before).
    pub events: &'a mut dyn FnMut(&Created<'_>, &mut StoreEvent<'_>) -> Result<()>,
    pub oldest: u64,
    pub bytes: u64,
    pub inline: InlineValue,
    /// Whether a stored row shares its value with its key's record.
    pub shares_value: fn(&[u8]) -> bool,
}

/// Where [`write_history`] puts the next event: rows it replaces, then an
/// append at the table's end.
enum HistorySink<'a, 't> {
    Insert(&'a mut redb::Table<'t, u64, &'static [u8]>),
    /// Between the two, for the moment the table moves into the cursor.
    Switching,
    Append(Box<redb::CursorMut<'a, u64, &'static [u8]>>),
}

/// Stores a flush's events (those still kept), deletes the rows below the
/// oldest kept revision, and records the history state as of the
/// commit's revision `as_of`; `shared_newest` is the stored one
/// (`record.rs`).
fn write_history(
    wtx: &redb::WriteTransaction,
    h: HistoryUpdate<'_>,
    created: &HashSet<Vec<u8>>,
    mut shared_newest: u64,
    as_of: u64,
) -> Result<()> {
    let mut table = wtx.open_table(HISTORY)?;
    let oldest = h.oldest;
    let shares_value = h.shares_value;
    // Events come in revision order, after every stored row but where a
    // replayed log repeats what an earlier flush stored: those replace
    // their rows, the rest go in through one cursor at the table's end
    // (as `kvr batch` appends), which fills leaf after leaf instead of
    // walking down the tree for each row.
    let last = table.last()?.map(|(k, _)| k.value());
    {
        let mut sink = HistorySink::Insert(&mut table);
        (h.events)(&|key| created.contains(key), &mut |revision, bytes| {
            if revision < oldest {
                return Ok(());
            }
            if shares_value(bytes) {
                shared_newest = shared_newest.max(revision);
            }
            if last.is_some_and(|last| revision <= last) {
                if let HistorySink::Insert(t) = &mut sink {
                    t.insert(revision, bytes)?;
                    return Ok(());
                }
                return Err(Error::Storage(format!(
                    "history event {revision} out of revision order"
                )));
            }
            if let HistorySink::Insert(_) = sink
                && let HistorySink::Insert(t) = std::mem::replace(&mut sink, HistorySink::Switching)
            {
                sink = HistorySink::Append(Box::new(
                    t.upper_bound_mut(std::ops::Bound::<u64>::Unbounded)?,
                ));
            }
            match &mut sink {
                HistorySink::Append(cursor) => Ok(cursor.insert_before(revision, bytes)?),
                _ => Err(Error::Storage("the history cursor was lost".into())),
            }
        })?;
        if let HistorySink::Append(cursor) = sink {
            cursor.close()?;
        }
    }
    table.retain_in(..h.oldest, |_, _| false)?;
    let mut meta = wtx.open_table(META)?;
    meta.insert(META_HISTORY_OLDEST, h.oldest)?;
    meta.insert(META_HISTORY_BYTES, h.bytes)?;
    meta.insert(META_HISTORY_SHARED_NEWEST, shared_newest)?;
    meta.insert(META_HISTORY_SHARED_AS_OF, as_of)?;
    Ok(())
}

/// The stored `history_shared_newest` while it holds (`record.rs`), else
/// the revision, which bounds every row.
fn shared_newest(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64> {
    let counter = |name| -> Result<Option<u64>> { Ok(meta.get(name)?.map(|g| g.value())) };
    let revision = counter(META_REVISION)?.unwrap_or(0);
    Ok(match counter(META_HISTORY_SHARED_NEWEST)? {
        Some(newest) if counter(META_HISTORY_SHARED_AS_OF)? == Some(revision) => newest,
        _ => revision,
    })
}

/// The idempotency part of a flush: the records its writes made (key,
/// encoded record; each replaces an older one of its key), and the time
/// before which records are deleted.
pub struct IdempotencyUpdate<'a> {
    pub records: &'a [(String, Vec<u8>)],
    pub delete_before_ms: u64,
}

/// Stores idempotency records, keeping the time index in step, and
/// deletes those made before `delete_before_ms`.
pub(crate) fn write_idempotency(
    wtx: &redb::WriteTransaction,
    records: &[(String, Vec<u8>)],
    delete_before_ms: u64,
) -> Result<()> {
    if records.is_empty() && delete_before_ms == 0 {
        return Ok(());
    }
    let mut table = wtx.open_table(IDEMPOTENCY)?;
    let mut by_time = wtx.open_table(IDEMPOTENCY_BY_TIME)?;
    for (key, bytes) in records {
        let time = crate::idempotency::Record::time_of(bytes).unwrap_or(0);
        let old = table
            .get(key.as_str())?
            .and_then(|g| crate::idempotency::Record::time_of(g.value()));
        // A key's records are made at increasing times: an older one (a
        // log replayed over a newer flush) never replaces a newer one.
        if old.is_some_and(|old| old > time) {
            continue;
        }
        table.insert(key.as_str(), bytes.as_slice())?;
        if let Some(old) = old {
            by_time.remove((old, key.as_str()))?;
        }
        by_time.insert((time, key.as_str()), ())?;
    }
    let old: Vec<(u64, String)> = by_time
        .range::<(u64, &str)>(..(delete_before_ms, ""))?
        .map(|item| item.map(|(k, _)| (k.value().0, k.value().1.to_string())))
        .collect::<std::result::Result<_, _>>()?;
    for (time, key) in old {
        by_time.remove((time, key.as_str()))?;
        let same = table
            .get(key.as_str())?
            .and_then(|g| crate::idempotency::Record::time_of(g.value()))
            == Some(time);
        if same {
            table.remove(key.as_str())?;
        }
    }
    Ok(())
}

/// What a flush commits besides the data.
struct Extras<'h, 'i, 'a> {
    history: HistoryUpdate<'h>,
    idempotency: IdempotencyUpdate<'i>,
    applied: Option<&'a [u8]>,
}

impl Store {
    /// Stores idempotency records replayed from a write-ahead log.
    pub fn put_idempotency(&self, records: &[(String, Vec<u8>)]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let wtx = self.begin_write(Commit::Buffered)?;
        write_idempotency(&wtx, records, 0)?;
        wtx.commit()?;
        Ok(())
    }

    /// Writes the final state of a memory table: `items` in key order, each
    /// a key with its value and revision, or `None` to delete it; then sets
    /// the revision to `revision`. One durable commit (fsync, quick repair):
    /// when this returns, the table's log may go. Returns the key count.
    /// `applied`, when given, is the cluster state machine's marker for
    /// exactly this state (`store::cluster`), committed with it.
    pub fn write_table<'a, I>(
        &self,
        items: I,
        revision: u64,
        history: HistoryUpdate<'_>,
        idempotency: IdempotencyUpdate<'_>,
        applied: Option<&[u8]>,
    ) -> Result<u64>
    where
        I: IntoIterator<Item = SortedItem<'a>>,
    {
        let extras = Extras {
            history,
            idempotency,
            applied,
        };
        self.write_commit(items, revision, Commit::Durable, Some(extras))
    }

    /// Writes one part of a memory table flushed in parts (`engine/flush.rs`):
    /// up to `max_keys` of `items` (in key order, as for
    /// [`Store::write_table`]), in one durable commit that keeps the key
    /// count exact but leaves the revision, the history and everything
    /// else to the table's last part. Until then the store is ahead of its
    /// revision for these keys, which replay allows (see `wal/record.rs`).
    /// Returns the change in key count, `None` when it had nothing to
    /// write and committed nothing; `on_absent` sees each key that was
    /// absent before it (added, or deleted with nothing to delete).
    ///
    /// A key whose record shares its value with a kept history row is not
    /// written but handed to `on_deferred`, for the last part: that row
    /// must be rewritten with the value in the same commit, and here each
    /// such rewrite is a random write into the history table in every
    /// part. Re-importing 1M pairs over HTTP took 17 s that way, against
    /// 4.8 s with the rewrites in one commit (`docs/benchmarks.md`).
    /// Stops taking items once `max_keys` are to be written.
    pub fn write_part<'a, I>(
        &self,
        items: I,
        max_keys: usize,
        inline: InlineValue,
        on_absent: &mut dyn FnMut(&[u8]),
        on_deferred: &mut dyn FnMut(&[u8]),
    ) -> Result<Option<i64>>
    where
        I: IntoIterator<Item = SortedItem<'a>>,
    {
        let wtx = self.begin_write(Commit::Durable)?;
        let delta = {
            let mut meta = wtx.open_table(META)?;
            let keys = meta.get(META_KEYS)?.map(|g| g.value()).unwrap_or(0);
            let oldest = meta.get(META_HISTORY_OLDEST)?.map_or(0, |g| g.value());
            let mut tables = super::write_tables::Tables::open_keeping_history(
                &wtx,
                oldest,
                shared_newest(&meta)?,
                inline,
            )?;
            let mut items = items.into_iter();
            let mut part = Vec::with_capacity(max_keys.min(1 << 16));
            while part.len() < max_keys {
                let Some(item) = items.next() else { break };
                if tables.rewrites_kept_row(item)? {
                    on_deferred(item.0);
                } else {
                    part.push(item);
                }
            }
            if part.is_empty() {
                None
            } else {
                tables.forget_history();
                let (added, removed) = tables.write_sorted(&mut Vec::new(), part, on_absent)?;
                meta.insert(META_KEYS, (keys + added).saturating_sub(removed))?;
                Some(
                    i64::try_from(added).unwrap_or(i64::MAX)
                        - i64::try_from(removed).unwrap_or(i64::MAX),
                )
            }
        };
        match delta {
            Some(_) => wtx.commit()?,
            None => wtx.abort()?,
        }
        Ok(delta)
    }

    /// [`Store::write_table`] with a choice of commit: a backup writes its
    /// copy in bounded [`Commit::Buffered`] chunks and makes them durable
    /// with one final durable commit.
    pub fn write_sorted<'a, I>(&self, items: I, revision: u64, commit: Commit) -> Result<u64>
    where
        I: IntoIterator<Item = SortedItem<'a>>,
    {
        self.write_commit(items, revision, commit, None)
    }

    fn write_commit<'a, I>(
        &self,
        items: I,
        revision: u64,
        commit: Commit,
        extras: Option<Extras<'_, '_, '_>>,
    ) -> Result<u64>
    where
        I: IntoIterator<Item = SortedItem<'a>>,
    {
        let wtx = self.begin_write(commit)?;
        let mut history = None;
        if let Some(x) = extras {
            history = Some(x.history);
            let i = x.idempotency;
            write_idempotency(&wtx, i.records, i.delete_before_ms)?;
            if let Some(applied) = x.applied {
                wtx.open_table(super::cluster::CLUSTER)?
                    .insert(super::cluster::APPLIED, applied)?;
            }
        }
        // The records first, so the events know which keys this commit
        // created (see `HistoryUpdate::events`).
        let mut created = HashSet::new();
        let (keys, shared) = {
            let mut meta = wtx.open_table(META)?;
            let shared = shared_newest(&meta)?;
            let mut tables = match &history {
                Some(h) => super::write_tables::Tables::open_keeping_history(
                    &wtx, h.oldest, shared, h.inline,
                )?,
                None => super::write_tables::Tables::open(&wtx)?,
            };
            let keys = meta.get(META_KEYS)?.map(|g| g.value()).unwrap_or(0);
            let mut on_absent = |key: &[u8]| {
                if history.is_some() {
                    created.insert(key.to_vec());
                }
            };
            let (added, removed) = tables.write_sorted(&mut Vec::new(), items, &mut on_absent)?;
            let keys = (keys + added).saturating_sub(removed);
            meta.insert(META_REVISION, revision)?;
            meta.insert(META_KEYS, keys)?;
            (keys, shared)
        };
        if let Some(h) = history {
            write_history(&wtx, h, &created, shared, revision)?;
        }
        wtx.commit()?;
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OpenMode, StoreOptions};

    fn no_inline(_: &[u8], _: &[u8], _: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// Flushes no records and one event per revision, `[tag, revision]`.
    fn flush_events(store: &Store, revisions: std::ops::RangeInclusive<u64>, tag: u8) {
        let mut events = |_: &Created<'_>, visit: &mut StoreEvent<'_>| -> Result<()> {
            for r in revisions.clone() {
                visit(r, &[tag, r as u8])?;
            }
            Ok(())
        };
        let history = HistoryUpdate {
            events: &mut events,
            oldest: 1,
            bytes: 0,
            inline: no_inline,
            shares_value: |_| false,
        };
        let idempotency = IdempotencyUpdate {
            records: &[],
            delete_before_ms: 0,
        };
        store
            .write_table(
                std::iter::empty(),
                *revisions.end(),
                history,
                idempotency,
                None,
            )
            .unwrap();
    }

    fn rows(store: &Store) -> Vec<(u64, Vec<u8>)> {
        let mut rows = Vec::new();
        let reader = store.snapshot().unwrap().reader().unwrap();
        reader
            .history(0, usize::MAX, |r, bytes| {
                rows.push((r, bytes.to_vec()));
                Ok(())
            })
            .unwrap();
        rows
    }

    /// New rows go in through the cursor at the table's end; rows a flush
    /// repeats (revisions already stored) replace the stored ones.
    #[test]
    fn a_flush_appends_new_history_rows_and_replaces_the_ones_it_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let store = Store::open(&path, OpenMode::Create, &StoreOptions::default()).unwrap();
        flush_events(&store, 1..=3000, 1);
        flush_events(&store, 2001..=6000, 2);
        let want: Vec<(u64, Vec<u8>)> = (1..=6000)
            .map(|r| (r, vec![if r <= 2000 { 1 } else { 2 }, r as u8]))
            .collect();
        assert_eq!(rows(&store), want);
        drop(store);
        let store = Store::open(&path, OpenMode::MustExist, &StoreOptions::default()).unwrap();
        assert_eq!(rows(&store), want);
    }

    /// A part leaves to the table's last commit each key whose record
    /// shares its value with a kept history row (here a row tagged 4); it
    /// writes the rest with an exact key count, takes items until it has
    /// `max_keys` to write, and commits nothing when it has none.
    #[test]
    fn a_part_leaves_keys_whose_row_shares_their_value_to_the_last_commit() {
        fn inline_tag_4(row: &[u8], _: &[u8], value: &[u8]) -> Option<Vec<u8>> {
            (row[0] == 4).then(|| [&[1], value].concat())
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("db.redb"),
            OpenMode::Create,
            &StoreOptions::default(),
        )
        .unwrap();
        // Revision 1: `a`, whose row shares its value; 2: `b`, whose row
        // holds it.
        let mut events = |_: &Created<'_>, visit: &mut StoreEvent<'_>| -> Result<()> {
            visit(1, &[4, 1])?;
            visit(2, &[1, 2])
        };
        let history = HistoryUpdate {
            events: &mut events,
            oldest: 1,
            bytes: 0,
            inline: inline_tag_4,
            shares_value: |row| row[0] == 4,
        };
        let idempotency = IdempotencyUpdate {
            records: &[],
            delete_before_ms: 0,
        };
        let first: [SortedItem<'_>; 2] =
            [(b"a", Some((b"1", 1, None))), (b"b", Some((b"2", 2, None)))];
        store
            .write_table(first, 2, history, idempotency, None)
            .unwrap();
        // The flush records its newest shared row, as of its revision.
        // After a flush of an earlier release, which does not, every row
        // up to the revision may share (as `a`'s does).
        let wtx = store.begin_write(Commit::Durable).unwrap();
        {
            let mut meta = wtx.open_table(META).unwrap();
            let newest = meta.get(META_HISTORY_SHARED_NEWEST).unwrap();
            assert_eq!(newest.map(|g| g.value()), Some(1));
            let as_of = meta.insert(META_HISTORY_SHARED_AS_OF, 1).unwrap();
            assert_eq!(as_of.map(|g| g.value()), Some(2));
        }
        wtx.commit().unwrap();
        let part = |items: Vec<SortedItem<'_>>, max_keys: usize| {
            let (mut absent, mut deferred, mut taken) = (Vec::new(), Vec::new(), 0);
            let items = items.into_iter().inspect(|_| taken += 1);
            let delta = store
                .write_part(
                    items,
                    max_keys,
                    inline_tag_4,
                    &mut |k| absent.push(k.to_vec()),
                    &mut |k| deferred.push(k.to_vec()),
                )
                .unwrap();
            (delta, taken, absent, deferred)
        };
        let value_of = |key: &[u8]| {
            let reader = store.snapshot().unwrap().reader().unwrap();
            reader.get(key).unwrap().map(|e| (e.value, e.revision))
        };
        let (delta, taken, absent, deferred) = part(
            vec![
                (b"a", Some((b"x", 3, None))),
                (b"b", Some((b"y", 4, None))),
                (b"c", Some((b"z", 5, None))),
                (b"d", Some((b"w", 6, None))),
            ],
            2,
        );
        assert_eq!((delta, taken), (Some(1), 3));
        assert_eq!(absent, [b"c".to_vec()]);
        assert_eq!(deferred, [b"a".to_vec()]);
        assert_eq!(value_of(b"a"), Some((b"1".to_vec(), 1)));
        assert_eq!(value_of(b"b"), Some((b"y".to_vec(), 4)));
        assert_eq!(value_of(b"c"), Some((b"z".to_vec(), 5)));
        assert_eq!(value_of(b"d"), None);
        let reader = store.snapshot().unwrap().reader().unwrap();
        assert_eq!((reader.revision(), reader.keys()), (2, 3));
        assert_eq!(rows(&store), [(1, vec![4, 1]), (2, vec![1, 2])]);
        // Only `a` (a delete of it too): nothing to write, nothing committed.
        let (delta, taken, absent, deferred) = part(vec![(b"a", None)], 2);
        assert_eq!((delta, taken), (None, 1));
        assert!(absent.is_empty());
        assert_eq!(deferred, [b"a".to_vec()]);
        assert_eq!(value_of(b"a"), Some((b"1".to_vec(), 1)));
        assert_eq!(store.snapshot().unwrap().reader().unwrap().keys(), 3);
    }
}
