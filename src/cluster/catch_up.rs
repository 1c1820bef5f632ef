//! A stopped member's file opened with `--db`: the committed entries of
//! its Raft log that the file does not hold yet are applied first.
//!
//! After a `kill -9` a member's file holds its last flush; the entries
//! applied since are in its Raft log (`DB.raft/`), which `kvr serve`
//! replays when it starts: openraft applies every entry up to the commit
//! index the log recorded. A command that opens the file does the same,
//! through the same state machine, so reads, `backup` (the restore
//! procedure after a cluster lost its majority) and `compact` see every
//! write the node had applied, as the write-ahead log of a standalone
//! server is replayed at every open (`crate::wal`).
//!
//! Only entries known committed are applied, never those after them (as
//! etcd's `--force-new-cluster` discards uncommitted entries): they may
//! have been cut from the cluster's log. The Raft log itself is left as it
//! is; the node's next start finds them applied, as after a clean stop.

use std::path::Path;
use std::sync::Arc;

use futures_util::stream;
use openraft::RaftLogReader;
use openraft::alias::LogIdOf;
use openraft::storage::RaftStateMachine;

use super::TypeConfig;
use super::log_store::{self, LogStore};
use super::state_machine::{Marker, StateMachine};
use crate::engine::{Engine, EngineOptions};
use crate::error::{Error, Result};
use crate::store::cluster::APPLIED;
use crate::store::{OpenMode, Store, StoreOptions};

type LogId = LogIdOf<TypeConfig>;

/// Entries handed to the state machine at a time: bounds the memory of
/// entries read back (each at most one request of the batch limit).
const ENTRIES_PER_APPLY: u64 = 256;

/// What [`apply_committed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaughtUp {
    /// Entries applied from the Raft log.
    pub entries: u64,
    /// The database revision afterwards.
    pub revision: u64,
}

/// The store at `path` with every committed entry of its Raft log applied
/// (see the module header). `store` is that file as opened with `mode`; a
/// file opened read-only that is behind its log is opened again for
/// writing, as a read command does to replay a standalone server's log.
pub fn apply_committed(
    store: Store,
    path: &Path,
    mode: OpenMode,
    opts: &StoreOptions,
) -> Result<(Store, Option<CaughtUp>)> {
    let Some(committed) = unapplied(&store, path)? else {
        return Ok((store, None));
    };
    let dir = log_store::dir_of(path);
    let what = "apply the committed entries of its Raft log";
    // A batch's file, opened read-only until its first write
    // (`OpenMode::WriteOnDemand`), is opened for writing too.
    let store = if mode == OpenMode::ReadOnly || !store.opened_for_writing() {
        drop(store);
        Store::open(path, OpenMode::MustExist, opts).map_err(|e| match e {
            // Say why a read command needed to write the file.
            Error::Io { source, .. } => {
                Error::io(format!("cannot open {} to {what}", path.display()), source)
            }
            e => e,
        })?
    } else {
        store
    };
    let store = Arc::new(store);
    let caught_up = apply_in(store.clone(), &dir, committed, opts.cache_bytes).map_err(|e| {
        // The file as of its last flush is still there to read.
        Error::Storage(format!(
            "cannot apply the committed entries of the Raft log {} to {}: {e}; to read the \
             file as of its last flush, move {} aside",
            dir.display(),
            path.display(),
            dir.display()
        ))
    })?;
    let store = Arc::try_unwrap(store).map_err(|_| {
        Error::Storage("the database is still in use after applying its Raft log".into())
    })?;
    Ok((store, Some(caught_up)))
}

/// The last committed log id of the Raft log beside `path` when `store`
/// (that file) lacks entries up to it; `None` for a file that is whole, or
/// not a member's.
fn unapplied(store: &Store, path: &Path) -> Result<Option<LogId>> {
    // Every command opens its file through here: a file that is no
    // member's (no log beside it) costs no read of the store.
    if !log_store::dir_of(path).is_dir() {
        return Ok(None);
    }
    // A log beside a file that is not a member was left by a member file
    // deleted since: not this file's (a new file there took the old
    // node's writes). `serve --cluster-init`/`--join` removes it.
    let Some(identity) = super::start::identity_of(store)? else {
        return Ok(None);
    };
    super::owner::check(&log_store::dir_of(path), path, &identity)?;
    let applied = applied_index(store.cluster_value(APPLIED)?.as_deref())?;
    committed_after(path, applied)
}

/// The log's last committed id, if it is after `applied`.
fn committed_after(path: &Path, applied: Option<u64>) -> Result<Option<LogId>> {
    let dir = log_store::dir_of(path);
    if !dir.is_dir() {
        return Ok(None);
    }
    let committed = log_store::read_committed_in(&dir)
        .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
    Ok(committed.filter(|c| Some(c.index()) > applied))
}

/// How many committed entries of the Raft log beside `path` a file whose
/// marker is `marker` lacks (for `kvr check`, which changes nothing).
pub fn entries_behind(marker: Option<&[u8]>, path: &Path) -> Result<u64> {
    let applied = applied_index(marker)?;
    let next = applied.map_or(0, |i| i + 1);
    Ok(committed_after(path, applied)?.map_or(0, |c| c.index() + 1 - next))
}

/// The index of the last entry a file with this marker covers.
pub(crate) fn applied_index(marker: Option<&[u8]>) -> Result<Option<u64>> {
    Ok(match marker {
        Some(bytes) => Marker::decode(bytes)?.last_applied.map(|l| l.index()),
        None => None,
    })
}

/// Applies the entries after the store's marker up to `committed` through
/// the state machine, and flushes them into the store.
fn apply_in(
    store: Arc<Store>,
    dir: &Path,
    committed: LogId,
    cache_bytes: usize,
) -> Result<CaughtUp> {
    let cache_mib = (cache_bytes >> 20) as u64;
    let memtable_mib = crate::engine::default_memtable_mib(cache_mib);
    let mut opts = EngineOptions::new((memtable_mib << 20) as usize, usize::MAX);
    // Trimmed by the bounds the cluster's log set, as the server trims
    // (the marker holds them); a log that set none trims nothing here
    // (a command does not know the server's flags).
    opts.history = crate::engine::history::HistoryBounds {
        events: u64::MAX,
        bytes: u64::MAX,
    };
    let (engine, writer) = Engine::start_replicated(store, opts)?;
    let mut sm = StateMachine::new(engine.clone(), writer)?;
    let log_err = |e| Error::io(format!("cannot read the Raft log in {}", dir.display()), e);
    let mut log = LogStore::open(dir).map_err(log_err)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Error::io("cannot start a runtime", e))?;
    let marker = engine.store().cluster_value(APPLIED)?;
    let mut next = applied_index(marker.as_deref())?.map_or(0, |i| i + 1);
    let mut entries = 0;
    while next <= committed.index() {
        let last = committed.index().min(next + ENTRIES_PER_APPLY - 1);
        let got = runtime
            .block_on(log.try_get_log_entries(next..=last))
            .map_err(log_err)?;
        if got.first().map(|e| e.log_id.index()) != Some(next)
            || got.len() as u64 != last - next + 1
        {
            return Err(Error::Corrupt(format!(
                "the Raft log in {} lacks committed entries {next}..={last}",
                dir.display()
            )));
        }
        entries += got.len() as u64;
        runtime
            .block_on(sm.apply(stream::iter(got.into_iter().map(|e| Ok((e, None))))))
            .map_err(|e| Error::Storage(format!("cannot apply the Raft log: {e}")))?;
        next = last + 1;
    }
    let writer = sm.writer();
    drop(sm);
    let closed = match Arc::try_unwrap(writer) {
        Ok(w) => w.into_inner().unwrap_or_else(|e| e.into_inner()).close(),
        Err(_) => false,
    };
    if !closed {
        return Err(Error::Storage(
            "cannot write the Raft log's committed entries into the database".into(),
        ));
    }
    Ok(CaughtUp {
        entries,
        revision: engine.revision(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use openraft::storage::{IOFlushed, RaftLogStorage};

    use super::*;
    use crate::cluster::log_store::tests::{id, write};

    fn open(path: &Path) -> Result<(Store, Option<CaughtUp>)> {
        let opts = StoreOptions::default();
        let store = Store::open(path, OpenMode::ReadOnly, &opts)?;
        apply_committed(store, path, OpenMode::ReadOnly, &opts)
    }

    /// The log's entries up to its commit index are applied once, those
    /// after it never, and the log is left as it was.
    #[tokio::test(flavor = "multi_thread")]
    async fn committed_entries_are_applied_once_and_no_others() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.redb");
        let member = Store::open(&path, OpenMode::Create, &StoreOptions::default()).unwrap();
        // A member's file (a log beside any other file is not its own).
        // (postcard encodes `StoredIdentity` as this pair.)
        let identity = postcard::to_allocvec(&("c0ffee", 1u64)).unwrap();
        member
            .set_cluster_value(crate::store::cluster::IDENTITY, &identity)
            .unwrap();
        drop(member);
        let dir = log_store::dir_of(&path);
        let mut log = LogStore::open(&dir).unwrap();
        let entries: Vec<_> = (0..10).map(|i| write(1, i, 10)).collect();
        log.append(entries, IOFlushed::noop()).await.unwrap();
        log.save_committed(Some(id(1, 6))).await.unwrap();
        let segment = |dir: &Path| std::fs::read(dir.join("00000000000000000000.seg")).unwrap();
        let before = segment(&dir);

        let (store, caught_up) = tokio::task::block_in_place(|| open(&path)).unwrap();
        assert_eq!(
            caught_up,
            Some(CaughtUp {
                entries: 7,
                revision: 7
            })
        );
        let snap = store.snapshot().unwrap();
        assert_eq!(snap.revision().unwrap(), 7);
        assert!(snap.get(&6u64.to_be_bytes()).unwrap().is_some());
        assert!(snap.get(&7u64.to_be_bytes()).unwrap().is_none());
        drop((snap, store));
        assert_eq!(segment(&dir), before);

        // Applied already: the next open has nothing to do.
        let (_, again) = tokio::task::block_in_place(|| open(&path)).unwrap();
        assert_eq!(again, None);

        // Once more entries are known committed, they follow.
        log.save_committed(Some(id(1, 9))).await.unwrap();
        let (store, caught_up) = tokio::task::block_in_place(|| open(&path)).unwrap();
        assert_eq!(
            caught_up,
            Some(CaughtUp {
                entries: 3,
                revision: 10
            })
        );
        assert!(
            store
                .snapshot()
                .unwrap()
                .get(&9u64.to_be_bytes())
                .unwrap()
                .is_some()
        );
    }
}
