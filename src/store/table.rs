//! The two things the engine needs from redb beyond [`Store::apply`]: a
//! read view that threads share without a transaction per request
//! ([`TableReader`]), and the flush of a memory table ([`Store::write_table`]).

use std::ops::Bound;

use redb::{ReadOnlyTable, ReadableTable};

use super::record::{self, KV, META, META_KEYS, META_REVISION};
use super::{Commit, Snapshot, Store};
use crate::error::Result;

/// The `kv` table of one read snapshot. It keeps that snapshot alive; every
/// read through it sees the same commit, from any thread.
pub struct TableReader {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
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

/// One item of a [`TableReader`] range: key, value, revision.
pub type TableItem = (Vec<u8>, Vec<u8>, u64);

impl TableReader {
    /// The revision of the commit this reader sees.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The key count of that commit.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// A key's value and revision.
    pub fn get(&self, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>> {
        match self.table.get(key)? {
            Some(guard) => {
                let rec = record::decode(guard.value())?;
                Ok(Some((rec.value.to_vec(), rec.revision)))
            }
            None => Ok(None),
        }
    }

    /// A key's revision, without copying its value.
    pub fn revision_of(&self, key: &[u8]) -> Result<Option<u64>> {
        match self.table.get(key)? {
            Some(guard) => Ok(Some(record::decode(guard.value())?.revision)),
            None => Ok(None),
        }
    }

    /// Up to `n` items after `from` (exclusive when `exclusive`) towards
    /// `to`, in key order or reversed. Callers page through a range with
    /// it, so no iterator borrows the reader between pages.
    pub fn page(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        n: usize,
        out: &mut Vec<TableItem>,
    ) -> Result<()> {
        let iter = self.table.range::<&[u8]>((lower, upper))?;
        let mut push = |item: RangeItem<'_>| -> Result<()> {
            let (k, v) = item?;
            let rec = record::decode(v.value())?;
            out.push((k.value().to_vec(), rec.value.to_vec(), rec.revision));
            Ok(())
        };
        if reverse {
            for item in iter.rev().take(n) {
                push(item)?;
            }
        } else {
            for item in iter.take(n) {
                push(item)?;
            }
        }
        Ok(())
    }
}

impl Snapshot {
    /// A [`TableReader`] over this snapshot.
    pub fn reader(&self) -> Result<TableReader> {
        Ok(TableReader {
            table: self.txn.open_table(KV)?,
            revision: self.revision()?,
            keys: self.counter(META_KEYS)?,
        })
    }
}

impl Store {
    /// Writes the final state of a memory table: `items` in key order, each
    /// a key with its value and revision, or `None` to delete it; then sets
    /// the revision to `revision`. One durable commit (fsync, quick repair):
    /// when this returns, the table's log may go. Returns the key count.
    /// `applied`, when given, is the cluster state machine's marker for
    /// exactly this state (`store::cluster`), committed with it.
    pub fn write_table<'a, I>(&self, items: I, revision: u64, applied: Option<&[u8]>) -> Result<u64>
    where
        I: IntoIterator<Item = (&'a [u8], Option<(&'a [u8], u64)>)>,
    {
        self.write_sorted_marked(items, revision, Commit::Durable, applied)
    }

    /// [`Store::write_table`] with a choice of commit: a backup writes its
    /// copy in bounded [`Commit::Buffered`] chunks and makes them durable
    /// with one final durable commit.
    pub fn write_sorted<'a, I>(&self, items: I, revision: u64, commit: Commit) -> Result<u64>
    where
        I: IntoIterator<Item = (&'a [u8], Option<(&'a [u8], u64)>)>,
    {
        self.write_sorted_marked(items, revision, commit, None)
    }

    fn write_sorted_marked<'a, I>(
        &self,
        items: I,
        revision: u64,
        commit: Commit,
        applied: Option<&[u8]>,
    ) -> Result<u64>
    where
        I: IntoIterator<Item = (&'a [u8], Option<(&'a [u8], u64)>)>,
    {
        let wtx = self.begin_write(commit)?;
        if let Some(applied) = applied {
            wtx.open_table(super::cluster::CLUSTER)?
                .insert(super::cluster::APPLIED, applied)?;
        }
        let keys = {
            let mut kv = wtx.open_table(KV)?;
            let mut meta = wtx.open_table(META)?;
            let mut keys = meta.get(META_KEYS)?.map(|g| g.value()).unwrap_or(0);
            let mut buf = Vec::new();
            for (key, item) in items {
                match item {
                    Some((value, rev)) => {
                        record::encode_into(&mut buf, rev, value);
                        if kv.insert(key, buf.as_slice())?.is_none() {
                            keys += 1;
                        }
                    }
                    None => {
                        if kv.remove(key)?.is_some() {
                            keys = keys.saturating_sub(1);
                        }
                    }
                }
            }
            meta.insert(META_REVISION, revision)?;
            meta.insert(META_KEYS, keys)?;
            keys
        };
        wtx.commit()?;
        Ok(keys)
    }
}
