//! openraft's own conformance suite for kvr's Raft log and state machine,
//! on real files: the segment log in a temporary directory and the engine
//! over a real redb file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kvr::cluster::TypeConfig;
use kvr::cluster::log_store::LogStore;
use kvr::cluster::state_machine::StateMachine;
use kvr::engine::{Engine, EngineOptions};
use kvr::store::{OpenMode, Store, StoreOptions};
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("n.redb"),
            OpenMode::Create,
            &StoreOptions::default(),
        )
        .unwrap();
        let (engine, writer) =
            Engine::start_replicated(Arc::new(store), EngineOptions::new(16 << 20, 1 << 20))
                .unwrap();
        let sm = StateMachine::new(engine, writer).unwrap();
        let log = LogStore::open(&dir.path().join("n.redb.raft")).unwrap();
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    Suite::test_all(Builder).await.unwrap();
}

mod crash {
    //! The state machine after crashes: entries applied, flushed at
    //! random points, the process "killed" (unflushed memory tables
    //! dropped), the file reopened and the log replayed from the applied
    //! marker on. The result must equal applying every entry exactly once,
    //! which fails if the marker and the data it covers are made durable
    //! apart (entries skipped or applied twice).

    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use futures_util::stream;
    use kvr::cluster::TypeConfig;
    use kvr::cluster::state_machine::StateMachine;
    use kvr::cluster::types::{Command, WireOp, WriteCommand};
    use kvr::engine::{Engine, EngineOptions};
    use kvr::store::{OpenMode, Store, StoreOptions};
    use openraft::alias::EntryOf;
    use openraft::entry::RaftEntry;
    use openraft::storage::RaftStateMachine;
    use openraft::testing::log_id;
    use proptest::prelude::*;

    type Entry = EntryOf<TypeConfig>;
    /// key -> (value, revision), and the database revision.
    type State = (BTreeMap<Vec<u8>, (Vec<u8>, u64)>, u64);

    fn open(path: &Path) -> StateMachine {
        let opts = StoreOptions {
            lock_timeout: Duration::from_secs(10),
            paced_writeback: false,
            ..StoreOptions::default()
        };
        let store = Store::open(path, OpenMode::Create, &opts).unwrap();
        let (engine, writer) =
            Engine::start_replicated(Arc::new(store), EngineOptions::new(16 << 20, 1 << 20))
                .unwrap();
        StateMachine::new(engine, writer).unwrap()
    }

    /// A write entry of one or more client writes (`Command::Batch` when
    /// more, as builds before 2026-12-06 proposed writes that arrived
    /// together, and a log they wrote still holds), each a
    /// put (or a delete when `value` is None) of key `k{key}`, conditional
    /// on `if_revision` when given.
    fn entry(index: u64, writes: &[(u8, Option<u8>, Option<u64>)]) -> Entry {
        let mut cmds: Vec<Arc<WriteCommand>> = writes
            .iter()
            .map(|(k, v, c)| Arc::new(write(*k, *v, *c)))
            .collect();
        let cmd = match cmds.len() {
            1 => Command::Write(cmds.remove(0)),
            _ => Command::Batch(Arc::new(cmds)),
        };
        Entry::new_normal(log_id::<TypeConfig>(1, 1, index), cmd)
    }

    fn write(key: u8, value: Option<u8>, if_revision: Option<u64>) -> WriteCommand {
        let op = WireOp {
            key: format!("k{key}").into_bytes(),
            value: value.map(|v| vec![v]),
            if_revision,
            line: None,
            expires_at_ms: None,
            expire: None,
            ttl_secs: None,
        };
        WriteCommand {
            time_ms: 0,
            ops: vec![op],
            ..WriteCommand::default()
        }
    }

    /// An entry of the model's log: client writes, or new history bounds
    /// (events kept).
    enum Step<'a> {
        Writes(&'a [(u8, Option<u8>, Option<u64>)]),
        History(u64),
    }

    /// A history-bounds entry ([`Command::SetHistory`]), keeping `events`.
    fn history_entry(index: u64, events: u64) -> Entry {
        let bounds = kvr::engine::history::HistoryBounds {
            events,
            bytes: 1 << 30,
        };
        Entry::new_normal(
            log_id::<TypeConfig>(1, 1, index),
            Command::SetHistory(bounds),
        )
    }

    /// The model of the oldest history revision kept: after each write
    /// entry it moves up to keep at most the bounds in force (never
    /// down), whatever entries were applied together.
    fn oldest_model(steps: &[Step<'_>]) -> u64 {
        let mut events = kvr::engine::history::DEFAULT_HISTORY;
        let mut oldest = 1;
        let mut ops = Vec::new();
        for step in steps {
            match step {
                Step::History(e) => events = *e,
                Step::Writes(w) => {
                    ops.extend_from_slice(w);
                    let rev = model(&ops).1;
                    oldest = oldest.max((rev + 1).saturating_sub(events));
                }
            }
        }
        oldest
    }

    /// The model: key -> (value, revision), and the database revision.
    fn model(entries: &[(u8, Option<u8>, Option<u64>)]) -> State {
        let mut m = BTreeMap::new();
        let mut rev = 0;
        for (key, value, cond) in entries {
            let k = format!("k{key}").into_bytes();
            let current = m.get(&k).map_or(0, |(_, r): &(Vec<u8>, u64)| *r);
            if cond.is_some_and(|c| c != current) {
                continue;
            }
            match value {
                Some(v) => {
                    rev += 1;
                    m.insert(k, (vec![*v], rev));
                }
                None => {
                    if m.remove(&k).is_some() {
                        rev += 1;
                    }
                }
            }
        }
        (m, rev)
    }

    async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) {
        let items: Vec<Result<_, std::io::Error>> =
            entries.into_iter().map(|e| Ok((e, None))).collect();
        sm.apply(stream::iter(items)).await.unwrap();
    }

    fn contents(sm: &StateMachine) -> State {
        let snap = sm.engine().snapshot();
        let mut out = BTreeMap::new();
        let query = kvr::types::RangeQuery::default();
        snap.range(&query, |k, rec| {
            out.insert(k.to_vec(), (rec.value.to_vec(), rec.revision));
            Ok(true)
        })
        .unwrap();
        (out, snap.revision())
    }

    fn cases() -> u32 {
        std::env::var("KVR_RAFT_CRASH_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(24)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn replay_after_crashes_applies_each_entry_once(
            ops in prop::collection::vec(
                (0u8..6, prop::option::weighted(0.8, any::<u8>()), prop::option::weighted(0.2, 0u64..4)),
                1..60,
            ),
            // How many writes each entry carries (from the first on).
            sizes in prop::collection::vec(prop::option::weighted(0.3, 2usize..5), 60),
            // After which entries a flush happens, and where crashes fall.
            flushes in prop::collection::vec(any::<bool>(), 60),
            crashes in prop::collection::vec(0usize..60, 0..4),
            // New history bounds (events kept) before some write entries.
            bounds in prop::collection::vec(prop::option::weighted(0.15, 0u64..8), 60),
        ) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("n.redb");
                let mut all: Vec<Entry> = Vec::new();
                let mut steps = Vec::new();
                let mut rest = &ops[..];
                while !rest.is_empty() {
                    if let Some(events) = bounds[all.len() % bounds.len()] {
                        all.push(history_entry(all.len() as u64 + 1, events));
                        steps.push(Step::History(events));
                    }
                    let n = sizes[all.len() % sizes.len()].unwrap_or(1).min(rest.len());
                    all.push(entry(all.len() as u64 + 1, &rest[..n]));
                    steps.push(Step::Writes(&rest[..n]));
                    rest = &rest[n..];
                }
                let mut sm = open(&path);
                let flushes = |i: usize| flushes[i % flushes.len()];
                let mut i = 0;
                while i < all.len() {
                    // The "log": every entry after the applied marker.
                    let (applied, _) = sm.applied_state().await.unwrap();
                    let from = applied.map_or(0, |l| l.index as usize);
                    assert!(from <= i, "the marker is ahead of what was applied");
                    apply(&mut sm, all[i..=i].to_vec()).await;
                    if flushes(i) {
                        sm.writer().lock().unwrap().flush_all().unwrap();
                    }
                    if crashes.contains(&i) {
                        // kill -9: memory tables are lost.
                        drop(sm);
                        sm = open(&path);
                        let (applied, _) = sm.applied_state().await.unwrap();
                        let from = applied.map_or(0, |l| l.index as usize);
                        apply(&mut sm, all[from..=i].to_vec()).await;
                    }
                    i += 1;
                }
                let expected = model(&ops);
                let oldest = oldest_model(&steps);
                assert_eq!(contents(&sm), expected);
                assert_eq!(sm.engine().oldest_revision(), oldest);
                // And once more after a last crash.
                drop(sm);
                let mut sm = open(&path);
                let (applied, _) = sm.applied_state().await.unwrap();
                let from = applied.map_or(0, |l| l.index as usize);
                apply(&mut sm, all[from..].to_vec()).await;
                assert_eq!(contents(&sm), expected);
                assert_eq!(sm.engine().oldest_revision(), oldest);
            });
        }
    }
}
