//! What cluster mode keeps in the database file beside the data: the
//! `cluster` table, name → bytes (encoded by `crate::cluster`).
//!
//! * `identity`: this node's id and its cluster's id, written once when the
//!   node is made (`--cluster-init`, `--join`).
//! * `applied`: the state machine's marker (the last applied Raft log id,
//!   the membership, the node-id counter). It is written by the flush in
//!   the same commit as the data it covers, so after a crash the store and
//!   the marker agree and recovery replays exactly the entries after it.
//! * `removed`: present once the node was removed from its cluster.

use redb::TableDefinition;

use super::record::{
    EXPIRY, HISTORY, IDEMPOTENCY, IDEMPOTENCY_BY_TIME, KV, META, META_HISTORY_BYTES,
    META_HISTORY_OLDEST, META_HISTORY_SHARED_AS_OF, META_HISTORY_SHARED_NEWEST, META_KEYS,
    META_REVISION,
};
use super::{Snapshot, Store};
use crate::error::Result;

/// Cluster state by name.
pub(crate) const CLUSTER: TableDefinition<&str, &[u8]> = TableDefinition::new("cluster");

/// The node's identity (see the module header).
pub const IDENTITY: &str = "identity";
/// The state machine's marker (see the module header).
pub const APPLIED: &str = "applied";
/// Set when this node was removed from its cluster: it never serves again.
pub const REMOVED: &str = "removed";

impl Store {
    /// One value of the `cluster` table, from the last commit.
    pub fn cluster_value(&self, name: &str) -> Result<Option<Vec<u8>>> {
        cluster_value(&self.snapshot()?.txn, name)
    }

    /// Sets one value of the `cluster` table, in its own durable commit.
    pub fn set_cluster_value(&self, name: &str, value: &[u8]) -> Result<()> {
        let wtx = self.begin_write(super::Commit::Durable)?;
        wtx.open_table(CLUSTER)?.insert(name, value)?;
        wtx.commit()?;
        Ok(())
    }

    /// Replaces every key with what `fill` visits (key, value, revision;
    /// any order) and the watch history and idempotency records with what
    /// it gives the second visitor, sets the revision and the `applied`
    /// marker, in one durable commit: readers of the store see the old
    /// data or the new, never a mix. Returns the key count and the history
    /// bounds (oldest revision kept, bytes). (Installing a Raft snapshot.)
    pub fn replace_all(
        &self,
        revision: u64,
        applied: &[u8],
        fill: impl FnOnce(
            &mut crate::backup::Visit<'_>,
            &mut dyn FnMut(Replaced<'_>) -> Result<()>,
        ) -> Result<()>,
    ) -> Result<(u64, (u64, u64))> {
        let wtx = self.begin_write(super::Commit::Durable)?;
        wtx.delete_table(KV)?;
        wtx.delete_table(EXPIRY)?;
        wtx.delete_table(HISTORY)?;
        wtx.delete_table(IDEMPOTENCY)?;
        wtx.delete_table(IDEMPOTENCY_BY_TIME)?;
        let mut keys = 0u64;
        // Without history in the snapshot, it starts after it.
        let mut bounds = (revision + 1, 0);
        {
            let mut tables = super::write_tables::Tables::open(&wtx)?;
            let mut history = wtx.open_table(HISTORY)?;
            let mut idempotency = Vec::new();
            let mut buf = Vec::new();
            fill(
                &mut |key, item| {
                    if tables.put(&mut buf, key, item.value, item.revision, item.expires_at_ms)? {
                        keys += 1;
                    }
                    Ok(())
                },
                &mut |extra| {
                    match extra {
                        Replaced::HistoryBounds { oldest, bytes } => bounds = (oldest, bytes),
                        Replaced::Event { revision, bytes } => {
                            history.insert(revision, bytes)?;
                        }
                        Replaced::Idempotency { key, record } => {
                            idempotency.push((key.to_string(), record.to_vec()));
                            if idempotency.len() >= IDEMPOTENCY_CHUNK {
                                super::table::write_idempotency(&wtx, &idempotency, 0)?;
                                idempotency.clear();
                            }
                        }
                    }
                    Ok(())
                },
            )?;
            super::table::write_idempotency(&wtx, &idempotency, 0)?;
            let mut meta = wtx.open_table(META)?;
            meta.insert(META_REVISION, revision)?;
            meta.insert(META_KEYS, keys)?;
            meta.insert(META_HISTORY_OLDEST, bounds.0)?;
            meta.insert(META_HISTORY_BYTES, bounds.1)?;
            // Any row of the snapshot may share its value.
            meta.insert(META_HISTORY_SHARED_NEWEST, revision)?;
            meta.insert(META_HISTORY_SHARED_AS_OF, revision)?;
            wtx.open_table(CLUSTER)?.insert(APPLIED, applied)?;
        }
        wtx.commit()?;
        Ok((keys, bounds))
    }
}

/// Idempotency records a snapshot install buffers between writes.
const IDEMPOTENCY_CHUNK: usize = 4096;

/// Replicated state besides the data, as a snapshot gives it.
#[derive(Debug, Clone, Copy)]
pub enum Replaced<'a> {
    /// The history's bounds: the oldest revision kept and its bytes.
    HistoryBounds { oldest: u64, bytes: u64 },
    /// One stored event.
    Event { revision: u64, bytes: &'a [u8] },
    /// One idempotency record (key, encoded record).
    Idempotency { key: &'a str, record: &'a [u8] },
}

impl Snapshot {
    /// One value of the `cluster` table in this snapshot.
    pub fn cluster_value(&self, name: &str) -> Result<Option<Vec<u8>>> {
        cluster_value(&self.txn, name)
    }
}

pub(super) fn cluster_value(txn: &redb::ReadTransaction, name: &str) -> Result<Option<Vec<u8>>> {
    let table = match txn.open_table(CLUSTER) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(table.get(name)?.map(|g| g.value().to_vec()))
}
