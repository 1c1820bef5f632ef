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
    EXPIRY, HISTORY, KV, META, META_HISTORY_BYTES, META_HISTORY_OLDEST, META_KEYS, META_REVISION,
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
    /// any order), sets the revision and the `applied` marker, in one
    /// durable commit: readers of the store see the old data or the new,
    /// never a mix. Returns the key count. (Installing a Raft snapshot.)
    pub fn replace_all(
        &self,
        revision: u64,
        applied: &[u8],
        fill: impl FnOnce(&mut crate::backup::Visit<'_>) -> Result<()>,
    ) -> Result<u64> {
        let wtx = self.begin_write(super::Commit::Durable)?;
        wtx.delete_table(KV)?;
        wtx.delete_table(EXPIRY)?;
        wtx.delete_table(HISTORY)?;
        let mut keys = 0u64;
        {
            let mut tables = super::apply::Tables::open(&wtx)?;
            let mut buf = Vec::new();
            fill(&mut |key, item| {
                if tables.put(&mut buf, key, item.value, item.revision, item.expires_at_ms)? {
                    keys += 1;
                }
                Ok(())
            })?;
            let mut meta = wtx.open_table(META)?;
            meta.insert(META_REVISION, revision)?;
            meta.insert(META_KEYS, keys)?;
            // The history before the snapshot is not carried over: watches
            // resume on this node from after it.
            meta.insert(META_HISTORY_OLDEST, revision + 1)?;
            meta.insert(META_HISTORY_BYTES, 0)?;
            wtx.open_table(CLUSTER)?.insert(APPLIED, applied)?;
        }
        wtx.commit()?;
        Ok(keys)
    }
}

impl Snapshot {
    /// One value of the `cluster` table in this snapshot.
    pub fn cluster_value(&self, name: &str) -> Result<Option<Vec<u8>>> {
        cluster_value(&self.txn, name)
    }
}

fn cluster_value(txn: &redb::ReadTransaction, name: &str) -> Result<Option<Vec<u8>>> {
    let table = match txn.open_table(CLUSTER) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(table.get(name)?.map(|g| g.value().to_vec()))
}
