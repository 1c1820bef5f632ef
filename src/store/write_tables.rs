//! The tables a write transaction changes (`kv`, its expiry index and, in
//! a server's flush, the watch history) and how records go into them: one
//! by one, or a sorted run merged into packed leaves.

use redb::{ReadableTable, Table};

use super::record::{self, EXPIRY, HISTORY, KV};
use crate::error::Result;

pub(super) type KvTable<'t> = Table<'t, &'static [u8], &'static [u8]>;
pub(super) type ExpiryTable<'t> = Table<'t, (u64, &'static [u8]), u64>;

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
    pub(super) kv: KvTable<'t>,
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
    /// No row above this revision shares its value (`record.rs`).
    shared_newest: u64,
    inline: super::table::InlineValue,
}

impl KeptHistory<'_> {
    /// The row of `old_revision` with `old_value` in it, when it is kept
    /// and shares that value with `key`'s record, which is about to be
    /// replaced (by `new_revision`) or deleted; `None` when it needs no
    /// rewrite.
    fn rewritten_row(
        &self,
        key: &[u8],
        old_revision: u64,
        old_value: &[u8],
        new_revision: Option<u64>,
    ) -> Result<Option<Vec<u8>>> {
        // Not kept; above the newest row that shares its value; or the same
        // version written again (a log replayed over a flush that had it
        // already: the row still shares the value).
        if old_revision < self.oldest
            || old_revision > self.shared_newest
            || new_revision == Some(old_revision)
        {
            return Ok(None);
        }
        Ok(match self.table.get(old_revision)? {
            Some(row) => (self.inline)(row.value(), key, old_value),
            None => None,
        })
    }
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
    /// `engine/history.rs`). Rows above `shared_newest` hold their values,
    /// so when no kept row is at or below it, nothing is looked up (into a
    /// store filled by `kvr batch`, random puts never are).
    pub(super) fn open_keeping_history(
        wtx: &'t redb::WriteTransaction,
        oldest: u64,
        shared_newest: u64,
        inline: super::table::InlineValue,
    ) -> Result<Tables<'t>> {
        let mut tables = Tables::open(wtx)?;
        if oldest <= shared_newest {
            tables.history = Some(KeptHistory {
                table: wtx.open_table(HISTORY)?,
                oldest,
                shared_newest,
                inline,
            });
        }
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
        if let Some(whole) = h.rewritten_row(key, old_revision, old_value, new_revision)? {
            h.table.insert(old_revision, whole.as_slice())?;
        }
        Ok(())
    }

    /// Whether writing `item` now would rewrite a kept history row with
    /// the value of its key's record ([`Tables::keep_old_value`]): a flush
    /// in parts leaves such keys to its last commit ([`Store::write_part`]).
    ///
    /// [`Store::write_part`]: super::Store::write_part
    pub(super) fn rewrites_kept_row(&self, (key, item): super::SortedItem<'_>) -> Result<bool> {
        let Some(h) = &self.history else {
            return Ok(false);
        };
        let Some(stored) = self.kv.get(key)? else {
            return Ok(false);
        };
        let old = record::decode(stored.value())?;
        let new_revision = item.map(|(_, revision, _)| revision);
        Ok(h.rewritten_row(key, old.revision, old.value, new_revision)?
            .is_some())
    }

    /// Stops keeping the history: for items that
    /// [`Tables::rewrites_kept_row`] cleared, whose writes would only look
    /// their rows up again.
    pub(super) fn forget_history(&mut self) {
        self.history = None;
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
    pub(super) fn state_of(&self, key: &[u8]) -> Result<Option<(u64, Option<u64>)>> {
        match self.kv.get(key)? {
            Some(g) => {
                let rec = record::decode(g.value())?;
                Ok(Some((rec.revision, rec.expires_at_ms)))
            }
            None => Ok(None),
        }
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
