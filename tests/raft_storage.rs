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
