//! Power loss under `kvr serve`'s write path: the redb file on a simulated
//! disk ([`SimDisk`]) and the write-ahead log together, checked against a
//! `BTreeMap` model.
//!
//! Random groups of requests go through a log-before-commit protocol (apply
//! the group in a non-durable redb commit; before it commits, append and
//! sync the log records; answer only then), with checkpoints in between:
//! the write-ahead log and its recovery under every crash point of its
//! own. (The server's engine, which keeps redb off the write path, is
//! tested the same way in `tests/engine.rs`.) Crashes
//! strike between groups, after a group's log sync but before its redb
//! commit, in the middle of that commit (the disk fails after N writes), in
//! the middle of a checkpoint's durable commit, and between a checkpoint and
//! the log's recycling. The log's unsynced tail is then kept, dropped, cut
//! in the middle of a record or overwritten with garbage, and the redb file
//! keeps a random part of what it had not synced. After recovery
//! (`wal::recover_dir`, what `Store::open` runs) the store must equal the
//! model: every acknowledged request present with its revisions, each
//! unacknowledged one whole or absent (a prefix of the lost group), the
//! revision never lower than the last acknowledged one.
//!
//! Log segments are 2 KiB here, so groups rotate to new segments (some
//! oversized) and a crash often leaves a log of several segments.
//!
//! `KVR_CRASH_CASES` sets the number of random sequences (default 480,
//! about 1,400 crash points, 10 s in debug); the count is printed
//! (`--nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvr::Error;
use kvr::store::{Commit, Store, StoreOptions};
use kvr::types::{Applied, Op, RangeQuery};
use kvr::wal::{self, Wal};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sim::{Model, SimDisk};

const MAX: usize = 1 << 20;
/// Small log segments, so that groups rotate to new ones (some oversized)
/// and replay spans several segments.
const SEGMENT_BYTES: u64 = 2 << 10;

/// Crashes that struck a commit or checkpoint before it finished.
static INTERRUPTED: AtomicUsize = AtomicUsize::new(0);

/// A request: (key index, value or delete, condition: none / current / wrong).
type GenReq = Vec<(u8, Option<Vec<u8>>, u8)>;

#[derive(Debug, Clone)]
enum Crash {
    Idle,
    AfterLogSync(Vec<GenReq>),
    InCommit(u32, Vec<GenReq>),
    InCheckpoint(u32),
    BeforeRecycle,
}

/// What became of the log bytes written since the last acknowledged group.
#[derive(Debug, Clone)]
enum Tail {
    Keep,
    Drop,
    Cut(u16),
    Garbage(u16, Vec<u8>),
}

#[derive(Debug, Clone)]
enum Step {
    Group(Vec<GenReq>),
    Checkpoint,
    CleanRestart,
    Crash(Crash, Tail, u64),
}

fn gen_req() -> impl Strategy<Value = GenReq> {
    let value = prop_oneof![
        1 => Just(None),
        4 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Some),
        1 => (1usize..2000).prop_map(|n| Some(vec![9u8; n])),
    ];
    let cond = prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)];
    proptest::collection::vec((0u8..8, value, cond), 1..5)
}

fn gen_group() -> impl Strategy<Value = Vec<GenReq>> {
    proptest::collection::vec(gen_req(), 1..6)
}

fn gen_step() -> impl Strategy<Value = Step> {
    let crash = prop_oneof![
        1 => Just(Crash::Idle),
        2 => gen_group().prop_map(Crash::AfterLogSync),
        2 => (0u32..30, gen_group()).prop_map(|(n, g)| Crash::InCommit(n, g)),
        1 => (0u32..30).prop_map(Crash::InCheckpoint),
        1 => Just(Crash::BeforeRecycle),
    ];
    let tail = prop_oneof![
        1 => Just(Tail::Keep),
        1 => Just(Tail::Drop),
        1 => any::<u16>().prop_map(Tail::Cut),
        1 => (any::<u16>(), proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, g)| Tail::Garbage(at, g)),
    ];
    prop_oneof![
        8 => gen_group().prop_map(Step::Group),
        2 => Just(Step::Checkpoint),
        1 => Just(Step::CleanRestart),
        3 => (crash, tail, any::<u64>()).prop_map(|(c, t, s)| Step::Crash(c, t, s)),
    ]
}

fn key(i: u8) -> Vec<u8> {
    match i {
        0 => vec![0xff, 0x00],
        1 => b"a".to_vec(),
        i => format!("k{i}").into_bytes(),
    }
}

/// The requests of a group, conditions taken from the state before it.
fn to_requests(group: &[GenReq], model: &Model) -> Vec<Vec<Op>> {
    let op = |(k, v, c): &(u8, Option<Vec<u8>>, u8)| {
        let k = key(*k);
        let current = model.data.get(&k).map_or(0, |e| e.1);
        let op = match v {
            Some(v) => Op::put(k, v.clone()),
            None => Op::delete(k),
        };
        op.if_revision(match c {
            0 => None,
            1 => Some(current),
            _ => Some(current + 1000),
        })
    };
    group.iter().map(|r| r.iter().map(op).collect()).collect()
}

fn opts() -> StoreOptions {
    StoreOptions {
        cache_bytes: 4 << 20,
        ..StoreOptions::default()
    }
}

/// A log-before-commit protocol over the store (the server's writer before
/// the engine took redb off its path): apply the group in a non-durable
/// commit, log and sync it before the commit, void the logged group when
/// the commit fails. It drives the log through every crash point of its
/// own (torn tails, rotations, voided groups) with a store that can lose
/// what it did not sync; the engine's protocol is `tests/engine.rs`.
fn commit(
    store: &Store,
    wal: &mut Wal,
    requests: &[Vec<Op>],
) -> kvr::Result<Vec<kvr::Result<Applied>>> {
    let mut logged = false;
    let result = store.apply_group(requests, Commit::Buffered, MAX, |outcomes| {
        let records = wal::records(requests, outcomes);
        wal.append(&records)?;
        logged = !records.is_empty();
        Ok(())
    });
    if result.is_err() && logged {
        let _ = wal.discard_last();
    }
    result
}

struct Rig {
    disk: SimDisk,
    /// `None` only while reopening.
    store: Option<Store>,
    wal: Option<Wal>,
    dir: PathBuf,
    model: Model,
}

impl Rig {
    fn new(dir: PathBuf) -> Rig {
        let disk = SimDisk::default();
        let store = Store::open_with_backend(disk.clone(), &opts()).unwrap();
        let owner = store.database_id().unwrap().unwrap();
        let wal = Wal::create_in(&dir, SEGMENT_BYTES, owner).unwrap();
        Rig {
            disk,
            store: Some(store),
            wal: Some(wal),
            dir,
            model: Model::default(),
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    /// The store and the log, borrowed together.
    fn parts(&mut self) -> (&Store, &mut Wal) {
        (self.store.as_ref().unwrap(), self.wal.as_mut().unwrap())
    }

    /// An acknowledged group: each request's outcome must match the model.
    fn group(&mut self, group: &[GenReq]) {
        let requests = to_requests(group, &self.model);
        let (store, wal) = self.parts();
        let outcomes = commit(store, wal, &requests).unwrap();
        for (ops, outcome) in requests.iter().zip(outcomes) {
            match (outcome, self.model.apply(ops)) {
                (Ok(a), Ok(_)) => assert_eq!(a.revision, self.model.revision),
                (Err(Error::PreconditionFailed { .. }), Err(())) => {}
                (o, m) => panic!("store {o:?}, model {m:?} for {ops:?}"),
            }
        }
    }

    fn checkpoint(&mut self) {
        let (store, wal) = self.parts();
        store.checkpoint().unwrap();
        wal.checkpointed().unwrap();
    }

    /// What a clean shutdown does: checkpoint, delete the log, close.
    fn clean_restart(&mut self) {
        self.checkpoint();
        self.wal.take().unwrap().remove().unwrap();
        self.store = None;
        self.reopen(self.disk.clone(), vec![self.model.clone()]);
    }

    /// Runs the crash's last action; returns the states recovery may find.
    fn strike(&mut self, crash: &Crash) -> Vec<Model> {
        let mut possible = vec![self.model.clone()];
        let lost = |model: &Model, requests: &[Vec<Op>], possible: &mut Vec<Model>| {
            let mut m = model.clone();
            for ops in requests {
                if m.apply(ops).is_ok_and(|n| n > 0) {
                    possible.push(m.clone());
                }
            }
        };
        match crash {
            Crash::Idle => {}
            Crash::AfterLogSync(group) => {
                let requests = to_requests(group, &self.model);
                let (store, wal) = self.parts();
                let _ = store.apply_group(&requests, Commit::Buffered, MAX, |outcomes| {
                    wal.append(&wal::records(&requests, outcomes))?;
                    Err(Error::Storage("the process died here".into()))
                });
                INTERRUPTED.fetch_add(1, Ordering::Relaxed);
                lost(&self.model, &requests, &mut possible);
            }
            Crash::InCommit(n, group) => {
                self.disk.0.lock().unwrap().fail_after = Some(*n);
                let requests = to_requests(group, &self.model);
                let (store, wal) = self.parts();
                if commit(store, wal, &requests).is_ok() {
                    // Acknowledged before the crash: it must survive.
                    self.disk.0.lock().unwrap().fail_after = None;
                    for ops in &requests {
                        let _ = self.model.apply(ops);
                    }
                    possible = vec![self.model.clone()];
                } else {
                    INTERRUPTED.fetch_add(1, Ordering::Relaxed);
                    lost(&self.model, &requests, &mut possible);
                }
            }
            Crash::InCheckpoint(n) => {
                self.disk.0.lock().unwrap().fail_after = Some(*n);
                let (store, wal) = self.parts();
                if store.checkpoint().is_ok() {
                    wal.checkpointed().unwrap();
                } else {
                    INTERRUPTED.fetch_add(1, Ordering::Relaxed);
                }
            }
            Crash::BeforeRecycle => {
                self.store().checkpoint().unwrap();
            }
        }
        possible
    }

    fn crash(&mut self, crash: &Crash, tail: &Tail, seed: u64) {
        let (seg_before, start) = self.wal.as_ref().unwrap().end();
        let acked_revision = self.model.revision;
        let possible = self.strike(crash);
        let (seg, end) = self.wal.as_ref().unwrap().end();
        // Bytes of an acknowledged group are synced: only later ones may go.
        let acked = self.model.revision != acked_revision;
        let start = match (acked, seg == seg_before) {
            (true, _) => end,
            (false, true) => start,
            (false, false) => 16,
        };
        mangle_tail(&seg, start, end, tail);
        // The disk as power loss leaves it, taken before anything else runs.
        let disk = self.disk.after_power_loss(seed);
        self.store = None;
        // The crashed process's threads die with it: the log's spare-segment
        // helper must not go on writing into the directory recovery removes
        // (it did, and recovery failed "Directory not empty" about one run
        // in sixteen).
        self.wal = None;
        self.reopen(disk, possible);
    }

    fn reopen(&mut self, disk: SimDisk, possible: Vec<Model>) {
        self.store = Some(Store::open_with_backend(disk.clone(), &opts()).unwrap());
        self.disk = disk;
        wal::recover_dir(self.store(), &self.dir).expect("recovery must succeed");
        let revision = self.store().stats().unwrap().revision;
        self.model = possible
            .into_iter()
            .find(|m| m.revision == revision)
            .unwrap_or_else(|| panic!("revision {revision} after a crash"));
        let owner = self.store().database_id().unwrap().unwrap();
        self.wal = Some(Wal::create_in(&self.dir, SEGMENT_BYTES, owner).unwrap());
        self.check();
    }

    fn check(&self) {
        let mut seen = BTreeMap::new();
        let snap = self.store().snapshot().unwrap();
        snap.range(&RangeQuery::default(), |k, rec| {
            seen.insert(k.to_vec(), (rec.value.to_vec(), rec.revision));
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, self.model.data);
        let stats = self.store().stats().unwrap();
        assert_eq!(stats.keys, self.model.data.len() as u64);
    }
}

/// Applies `tail` to the log bytes `start..end` of segment `seg` (those not
/// acknowledged: a group whose commit never finished), or past `end`.
fn mangle_tail(seg: &std::path::Path, start: u64, end: u64, tail: &Tail) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
    let len = end - start;
    let zero_from = |from: u64| {
        file.write_all_at(&vec![0; (end - from) as usize], from)
            .unwrap();
    };
    match tail {
        Tail::Keep => {}
        Tail::Drop => zero_from(start),
        Tail::Cut(at) => zero_from(start + u64::from(*at) % len.max(1)),
        Tail::Garbage(at, bytes) => {
            let at = start + u64::from(*at) % (len + 1);
            // Within the segment: it is made whole before any record goes
            // in, so no write, torn or not, reaches past its end (recovery
            // refuses a segment of a length it was not made with).
            let room = file.metadata().unwrap().len().saturating_sub(at);
            let bytes = &bytes[..bytes.len().min(room as usize)];
            file.write_all_at(bytes, at).unwrap();
        }
    }
}

fn run(steps: &[Step], crashes: &AtomicUsize) {
    let tmp = tempfile::Builder::new()
        .prefix("kvr-walcrash")
        .tempdir_in(shm())
        .unwrap();
    let mut rig = Rig::new(tmp.path().join("db.wal"));
    for step in steps {
        match step {
            Step::Group(g) => rig.group(g),
            Step::Checkpoint => rig.checkpoint(),
            Step::CleanRestart => rig.clean_restart(),
            Step::Crash(crash, tail, seed) => {
                crashes.fetch_add(1, Ordering::Relaxed);
                rig.crash(crash, tail, *seed);
            }
        }
        rig.check();
    }
}

/// The log's fsyncs are cheap on tmpfs; the redb side is simulated anyway.
fn shm() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

#[test]
fn acknowledged_writes_survive_crashes_of_log_and_database() {
    let cases = std::env::var("KVR_CRASH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(480);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 1000,
        ..Config::default()
    });
    let crashes = AtomicUsize::new(0);
    let result = runner.run(&proptest::collection::vec(gen_step(), 1..30), |steps| {
        run(&steps, &crashes);
        Ok(())
    });
    eprintln!(
        "{} simulated crash points ({} of them inside a commit or checkpoint) \
         in {cases} sequences",
        crashes.load(Ordering::Relaxed),
        INTERRUPTED.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
