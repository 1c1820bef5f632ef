//! The write-ahead log through its API: replay after a crash, torn tails.

use kvr::store::{Commit, OpenMode, Store, StoreOptions};
use kvr::types::Op;
use kvr::wal::{self, Wal};

fn opts() -> StoreOptions {
    StoreOptions {
        cache_bytes: 16 << 20,
        ..StoreOptions::default()
    }
}

/// Applies `n` single-put requests as one logged group, like the writer.
fn logged_group(store: &Store, wal: &mut Wal, from: u64, n: u64) {
    let requests: Vec<Vec<Op>> = (from..from + n)
        .map(|i| vec![Op::put(format!("k{i}"), format!("v{i}"))])
        .collect();
    store
        .apply_group(&requests, Commit::Buffered, 1 << 20, |outcomes| {
            let records: Vec<(u64, &[Op])> = requests
                .iter()
                .zip(outcomes)
                .map(|(ops, o)| {
                    let a = o.as_ref().unwrap();
                    (a.revision + 1 - a.applied(), ops.as_slice())
                })
                .collect();
            wal.append(&records)
        })
        .unwrap();
}

/// Simulates a crash: the process's view is dropped without a checkpoint,
/// and what redb had not synced is not trusted: the file is rolled back to
/// a copy taken at the last checkpoint.
#[test]
fn replay_restores_acknowledged_groups_and_drops_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.redb");
    let checkpointed = dir.path().join("checkpointed.redb");
    {
        let store = Store::open(&db, OpenMode::Create, &opts()).unwrap();
        let mut wal = Wal::create(&db).unwrap();
        logged_group(&store, &mut wal, 1, 10);
        store.checkpoint().unwrap();
        wal.checkpointed().unwrap();
        std::fs::copy(&db, &checkpointed).unwrap();
        logged_group(&store, &mut wal, 11, 5);
        logged_group(&store, &mut wal, 16, 5);
    }
    // Roll the database back to its checkpoint, as after power loss.
    std::fs::copy(&checkpointed, &db).unwrap();
    // Tear the last record: cut into the log's last bytes.
    let seg = std::fs::read_dir(wal::dir_of(&db))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[end - 2] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();

    let (store, _) = kvr::engine::open_store(&db, OpenMode::MustExist, &opts()).unwrap();
    assert!(
        !wal::dir_of(&db).exists(),
        "the log is removed after replay"
    );
    let snap = store.snapshot().unwrap();
    assert_eq!(
        snap.revision().unwrap(),
        19,
        "records 11..=19 replayed, 20 torn"
    );
    assert_eq!(snap.get(b"k19").unwrap().unwrap().revision, 19);
    assert!(snap.get(b"k20").unwrap().is_none());
    assert_eq!(snap.get(b"k5").unwrap().unwrap().value, b"v5");
}

#[test]
fn a_recycled_segment_does_not_replay_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.redb");
    {
        let store = Store::open(&db, OpenMode::Create, &opts()).unwrap();
        let mut wal = Wal::create(&db).unwrap();
        logged_group(&store, &mut wal, 1, 50);
        store.checkpoint().unwrap();
        wal.checkpointed().unwrap();
        logged_group(&store, &mut wal, 51, 2);
        store.checkpoint().unwrap();
    }
    let (store, _) = kvr::engine::open_store(&db, OpenMode::MustExist, &opts()).unwrap();
    assert_eq!(store.snapshot().unwrap().revision().unwrap(), 52);
    assert_eq!(store.stats().unwrap().keys, 52);
}

/// A group logged for a commit that then failed is voided whole: a shorter
/// group written over it must not be followed by its leftover records.
#[test]
fn a_discarded_group_never_replays() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.redb");
    let checkpointed = dir.path().join("checkpointed.redb");
    {
        let store = Store::open(&db, OpenMode::Create, &opts()).unwrap();
        let mut wal = Wal::create(&db).unwrap();
        std::fs::copy(&db, &checkpointed).unwrap();
        // Five requests logged, then the commit fails (the hook errs after
        // logging, as a failing redb commit would): nothing is applied.
        let doomed: Vec<Vec<Op>> = (0..5)
            .map(|i| vec![Op::put(format!("doomed{i}"), "x")])
            .collect();
        let failed = store.apply_group(&doomed, Commit::Buffered, 1 << 20, |outcomes| {
            let records: Vec<(u64, &[Op])> = doomed
                .iter()
                .zip(outcomes)
                .map(|(ops, o)| (o.as_ref().unwrap().revision, ops.as_slice()))
                .collect();
            wal.append(&records)?;
            Err(kvr::Error::Storage("simulated commit failure".into()))
        });
        assert!(failed.is_err());
        wal.discard_last().unwrap();
        // Two records of exactly the same size land on the first two.
        let kept: Vec<Vec<Op>> = (0..2)
            .map(|i| vec![Op::put(format!("keep__{i}"), "x")])
            .collect();
        store
            .apply_group(&kept, Commit::Buffered, 1 << 20, |outcomes| {
                let records: Vec<(u64, &[Op])> = kept
                    .iter()
                    .zip(outcomes)
                    .map(|(ops, o)| (o.as_ref().unwrap().revision, ops.as_slice()))
                    .collect();
                wal.append(&records)
            })
            .unwrap();
    }
    std::fs::copy(&checkpointed, &db).unwrap();
    let (store, _) = kvr::engine::open_store(&db, OpenMode::MustExist, &opts()).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.revision().unwrap(), 2);
    assert_eq!(store.stats().unwrap().keys, 2);
    assert!(snap.get(b"doomed3").unwrap().is_none());
}
