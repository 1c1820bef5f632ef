//! [`Kv`]: the operations every command runs, whatever the data source.
//!
//! Commands take `&dyn Kv`, so a local file and a remote `kvr serve` give the
//! same answers by construction. [`LocalKv`] is the local file; the HTTP
//! client implements the same trait.

use std::io::BufRead;

use crate::error::{Error, Result};
use crate::jsonl::{OpReader, show_key};
use crate::store::{Commit, Store};
use crate::types::{Applied, Entry, Op, RangeQuery, Stats};

/// Receives range items: key, and value with revision unless keys-only.
/// Returns `false` to stop early.
pub type Visit<'a> = dyn FnMut(&[u8], Option<(&[u8], u64)>) -> Result<bool> + 'a;

/// The data operations of kvr.
pub trait Kv {
    /// A key's value and revision; `None` if absent.
    fn get(&self, key: &[u8]) -> Result<Option<Entry>>;
    /// Stores a value, if the key's revision is `if_revision` (0: absent) when
    /// given. Returns the new database revision.
    fn put(&self, key: &[u8], value: Vec<u8>, if_revision: Option<u64>) -> Result<u64>;
    /// Removes a key; [`Error::KeyNotFound`] if absent. Returns the new revision.
    fn delete(&self, key: &[u8], if_revision: Option<u64>) -> Result<u64>;
    /// Deletes every key of `query`'s start, end and prefix atomically, each
    /// delete taking a revision. `puts` is 0 in the answer.
    fn delete_range(&self, query: &RangeQuery) -> Result<Applied> {
        let _ = query;
        Err(Error::invalid(format!(
            "{} cannot delete ranges",
            self.source()
        )))
    }
    /// Applies JSON lines atomically (see `jsonl`).
    fn batch(&self, input: &mut dyn BufRead) -> Result<Applied>;
    /// Streams the keys of `query` from one snapshot.
    fn range(&self, query: &RangeQuery, visit: &mut Visit<'_>) -> Result<()>;
    /// Key count, revision, file size.
    fn stats(&self) -> Result<Stats>;
    /// Where the data lives, for humans (a path or a URL).
    fn source(&self) -> String;
}

/// A database file opened by this process.
pub struct LocalKv {
    pub store: Store,
    pub max_value_bytes: usize,
}

/// Nothing written means nothing created: a put or batch that fails on a
/// missing file leaves none behind.
impl Drop for LocalKv {
    fn drop(&mut self) {
        self.store.discard_if_unwritten();
    }
}

impl LocalKv {
    /// A cluster member's file takes no writes but through its cluster.
    fn writable(&self) -> Result<()> {
        match crate::cluster::start::identity_of(&self.store)? {
            Some((cluster, node)) => Err(Error::invalid(format!(
                "this database is node {node} of cluster {cluster}; write through the cluster                  (kvr --server URL)"
            ))),
            None => Ok(()),
        }
    }

    fn apply_one(&self, op: Op) -> Result<Applied> {
        self.writable()?;
        self.store
            .apply([Ok(op)], Commit::Durable, self.max_value_bytes)
    }
}

impl Kv for LocalKv {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.store.get(key)
    }

    fn put(&self, key: &[u8], value: Vec<u8>, if_revision: Option<u64>) -> Result<u64> {
        let op = Op::put(key, value).if_revision(if_revision);
        Ok(self.apply_one(op)?.revision)
    }

    fn delete(&self, key: &[u8], if_revision: Option<u64>) -> Result<u64> {
        let applied = self.apply_one(Op::delete(key).if_revision(if_revision))?;
        if applied.deletes == 0 {
            return Err(Error::KeyNotFound { key: show_key(key) });
        }
        Ok(applied.revision)
    }

    fn delete_range(&self, query: &RangeQuery) -> Result<Applied> {
        self.writable()?;
        self.store.delete_range(query)
    }

    fn batch(&self, input: &mut dyn BufRead) -> Result<Applied> {
        self.writable()?;
        let ops = OpReader::new(input, self.max_value_bytes);
        self.store.apply(ops, Commit::Durable, self.max_value_bytes)
    }

    fn range(&self, query: &RangeQuery, visit: &mut Visit<'_>) -> Result<()> {
        let snapshot = self.store.snapshot()?;
        snapshot.range(query, |key, rec| {
            let entry = (!query.keys_only).then_some((rec.value, rec.revision));
            visit(key, entry)
        })
    }

    fn stats(&self) -> Result<Stats> {
        self.store.stats()
    }

    fn source(&self) -> String {
        self.store.path().display().to_string()
    }
}
