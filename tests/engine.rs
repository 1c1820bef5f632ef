//! Model-based test of the engine (`kvr::engine`): random groups of puts,
//! deletes, conditional writes and batches through the writer, flushes at
//! random points (in parts of 3 keys), reads and range streams taken at any
//! moment, and crashes: with tables not yet flushed, inside a flush's redb
//! commits (between its parts too), and after a flush but before its log
//! was released. Every read must equal the model
//! at the snapshot's revision; after a crash, recovery (the real write-ahead
//! log on a real directory, redb on a simulated disk that loses unsynced
//! writes), into memory as `kvr serve` does it or into the store as the
//! other commands do, must give back exactly every acknowledged write, no
//! torn group.
//!
//! Puts carry expiries on a small clock, and sweeps at random clocks must
//! propose exactly the expiry deletes the model says are due (from the
//! store's expiry index and the memory tables alike, across flushes and
//! crashes), while reads show every key with its expiry until it is swept.
//!
//! Some requests carry an Idempotency-Key: a repeat within the window gets
//! the first outcome again and changes nothing, across flushes, crashes
//! and both kinds of recovery; another request under the same key is
//! refused; a repeat after the window is applied anew.
//!
//! `KVR_ENGINE_CASES` raises the number of sequences (default 48).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kvr::engine::history::{EventKind, HistoryBounds};
use kvr::engine::{
    Engine, EngineOptions, EngineWriter, Events, EventsRead, Log, Release, Request, Snapshot,
};
use kvr::idempotency::Claim;
use kvr::store::{Store, StoreOptions};
use kvr::types::{Applied, Op, RangeQuery};
use kvr::wal::{LogRecord, Wal};
use proptest::prelude::*;

mod sim;
use sim::{Model, ModelEvent, SimDisk};

/// The real log, whose releases a test can drop: a crash after a flush's
/// commit and before its log went.
struct TestLog {
    wal: Wal,
    drop_releases: Arc<AtomicBool>,
}

impl Log for TestLog {
    fn append(&mut self, records: &[LogRecord<'_>]) -> kvr::Result<()> {
        self.wal.append_records(records)
    }
    fn seal(&mut self) -> kvr::Result<Release> {
        let sealed = self.wal.seal()?;
        let skip = self.drop_releases.clone();
        Ok(Box::new(move || {
            if skip.load(Ordering::SeqCst) {
                Ok(())
            } else {
                sealed.release()
            }
        }))
    }
    fn is_broken(&self) -> bool {
        self.wal.is_broken()
    }
    fn logs_outcomes(&self) -> bool {
        true
    }
    fn remove(self: Box<Self>) -> kvr::Result<()> {
        self.wal.remove()
    }
}

/// The row cache of the engines here: room for about 64 entries.
const ROW_CACHE_BYTES: usize = 16 << 10;

fn store_opts() -> StoreOptions {
    StoreOptions {
        cache_bytes: 1 << 20,
        ..StoreOptions::default()
    }
}

struct Running {
    engine: Arc<Engine>,
    writer: EngineWriter,
    disk: SimDisk,
    drop_releases: Arc<AtomicBool>,
}

/// Opens the store on `disk` and starts an engine on the log in `dir`:
/// what `kvr serve` does, replaying a crashed server's log into memory, or
/// (`into_store`) what every other command does first, replaying it into
/// the store.
fn start(disk: SimDisk, dir: &Path, into_store: bool) -> Running {
    start_with(disk, dir, into_store, |_| {})
}

/// [`start`] with `adjust` applied to the engine's options last.
fn start_with(
    disk: SimDisk,
    dir: &Path,
    into_store: bool,
    adjust: impl FnOnce(&mut EngineOptions),
) -> Running {
    let store = Arc::new(Store::open_with_backend(disk.clone(), &store_opts()).unwrap());
    if into_store {
        kvr::wal::recover_dir(&store, dir).unwrap();
    }
    // A tiny budget: flushes and waits for room happen within a sequence.
    let mut opts = EngineOptions::new(64 << 10, 1 << 20);
    opts.flush_age = std::time::Duration::from_secs(3600);
    opts.history = HISTORY;
    // Tables of more than a few keys are flushed in parts, so crashes
    // strike between parts too.
    opts.flush_part_keys = 3;
    // A row cache small enough to evict within a sequence.
    opts.row_cache_bytes = ROW_CACHE_BYTES;
    // The flush thread nicer, with its helper (`KVR_FLUSH_NICE`): the
    // servers under test run it at the process's priority, so both ways
    // are covered.
    opts.flush_nice = 10;
    adjust(&mut opts);
    let drop_releases = Arc::new(AtomicBool::new(false));
    let (engine, writer) = if into_store {
        let log = TestLog {
            wal: Wal::create_in(dir, 4096, store.assign_database_id().unwrap()).unwrap(),
            drop_releases: drop_releases.clone(),
        };
        Engine::start(store, Box::new(log), opts).unwrap()
    } else {
        // The real log, resumed (its releases cannot be dropped).
        let (engine, writer, _) = Engine::start_recovering(store, dir, 4096, opts).unwrap();
        (engine, writer)
    };
    Running {
        engine,
        writer,
        disk,
        drop_releases,
    }
}

fn key(i: u8) -> Vec<u8> {
    format!("k{:02}", i % 24).into_bytes()
}

/// Everything `snap` holds, forwards, and checks the reverse order and
/// paged reads agree with it.
fn read_all(snap: &Snapshot) -> BTreeMap<Vec<u8>, (Vec<u8>, u64)> {
    let mut seen = BTreeMap::new();
    snap.range(&RangeQuery::default(), |k, rec| {
        seen.insert(k.to_vec(), (rec.value.to_vec(), rec.revision));
        Ok(true)
    })
    .unwrap();
    let mut reversed = Vec::new();
    let q = RangeQuery {
        reverse: true,
        ..RangeQuery::default()
    };
    snap.range(&q, |k, _| {
        reversed.push(k.to_vec());
        Ok(true)
    })
    .unwrap();
    reversed.reverse();
    assert_eq!(reversed, seen.keys().cloned().collect::<Vec<_>>());
    for (k, v) in &seen {
        let e = snap.get(k).unwrap().unwrap();
        assert_eq!((&e.value, e.revision), (&v.0, v.1));
    }
    // Bounded, limited ranges both ways: the same keys. Small limits make
    // each source read a few items at a time, so deletions in newer tables
    // that shadow older items send it back for more.
    for limit in [1, 2, 4, 7] {
        for reverse in [false, true] {
            let q = RangeQuery {
                start: Some(b"k05".to_vec()),
                end: Some(b"k15".to_vec()),
                limit: Some(limit),
                reverse,
                ..RangeQuery::default()
            };
            let mut part = Vec::new();
            snap.range(&q, |k, _| {
                part.push(k.to_vec());
                Ok(true)
            })
            .unwrap();
            let inside = |k: &&Vec<u8>| {
                k.as_slice() >= b"k05".as_slice() && k.as_slice() < b"k15".as_slice()
            };
            let want: Vec<_> = if reverse {
                seen.keys()
                    .rev()
                    .filter(inside)
                    .take(limit as usize)
                    .cloned()
                    .collect()
            } else {
                seen.keys()
                    .filter(inside)
                    .take(limit as usize)
                    .cloned()
                    .collect()
            };
            assert_eq!(part, want, "limit {limit} reverse {reverse}");
        }
    }
    seen
}

/// The history bounds of the test: small, so both trim.
const HISTORY: HistoryBounds = HistoryBounds {
    events: 30,
    bytes: 3000,
};

/// Watching from any kept revision yields exactly the model's events;
/// the oldest kept revision is the model's (never below `floor`, where a
/// recovery through the store ended the history).
fn check_history(r: &Running, model: &Model, floor: u64) {
    let oldest = r.engine.oldest_revision();
    assert_eq!(oldest, model.oldest(HISTORY.events, HISTORY.bytes, floor));
    for from in oldest..=model.revision + 1 {
        let found = match r.engine.events(from, usize::MAX, usize::MAX).unwrap() {
            Events::Found(events) => events,
            Events::Gone => panic!("events from {from} are gone; oldest {oldest}"),
            Events::Needs(_) => panic!("a read that is not strict needs nothing"),
        };
        let got: Vec<ModelEvent> = found
            .into_iter()
            .map(|e| {
                let kind = match e.kind {
                    EventKind::Put => "put",
                    EventKind::Delete => "delete",
                    EventKind::Expired => "expired",
                };
                (e.revision, kind, e.key, e.value.to_vec(), e.expires_at_ms)
            })
            .collect();
        let want = &model.events[(from - 1) as usize..];
        assert_eq!(got, want, "from {from}");
    }
    // A page stops at its size.
    if let Events::Found(page) = r.engine.events(oldest, 2, usize::MAX).unwrap() {
        assert_eq!(page.len(), (model.revision + 1 - oldest).min(2) as usize);
    }
    // And at its bytes: the events in order from `from`, up to and
    // including the first that brings keys and values to the bound,
    // across the store's history and the memory tables alike.
    for from in oldest..=model.revision {
        let Events::Found(page) = r.engine.events(from, usize::MAX, 40).unwrap() else {
            panic!("events from {from} are gone");
        };
        let want = &model.events[(from - 1) as usize..];
        let sizes: Vec<usize> = page.iter().map(|e| e.key.len() + e.value.len()).collect();
        assert!(!page.is_empty() && page.len() <= want.len(), "from {from}");
        assert_eq!(page[0].revision, from);
        for (e, w) in page.iter().zip(want) {
            assert_eq!(e.revision, w.0, "from {from}");
        }
        let before_last: usize = sizes[..sizes.len() - 1].iter().sum();
        assert!(before_last < 40, "from {from}: {sizes:?}");
        assert!(
            page.len() == want.len() || before_last + sizes[sizes.len() - 1] >= 40,
            "from {from}: stopped early at {sizes:?}"
        );
    }
    // As a watcher reads: values only of the keys it wants (the others
    // count their key only), never past the bound; a first event alone
    // over it is named by its size, and nothing is read.
    let wanted = |k: &[u8]| k.last().is_some_and(|b| b % 2 == 0);
    let size = |w: &ModelEvent| w.2.len() + if wanted(&w.2) { w.3.len() } else { 0 };
    let read = EventsRead {
        max: usize::MAX,
        max_bytes: 40,
        values_of: &wanted,
        strict: true,
    };
    for from in oldest..=model.revision {
        let want = &model.events[(from - 1) as usize..];
        match r.engine.events_read(from, &read).unwrap() {
            Events::Needs(n) => assert!(n == size(&want[0]) && n > 40, "from {from}: needs {n}"),
            Events::Found(page) => {
                assert!(!page.is_empty() && page.len() <= want.len(), "from {from}");
                let mut total = 0;
                for (e, w) in page.iter().zip(want) {
                    let value: &[u8] = if wanted(&w.2) { &w.3 } else { &[] };
                    assert_eq!((e.revision, &e.key, &e.value[..]), (w.0, &w.2, value));
                    total += size(w);
                }
                assert!(total <= 40, "from {from}: {total} bytes");
                if let Some(next) = want.get(page.len()) {
                    assert!(total + size(next) > 40, "from {from}: stopped early");
                }
            }
            Events::Gone => panic!("events from {from} are gone"),
        }
    }
}

fn check(r: &Running, model: &Model) {
    let snap = r.engine.snapshot();
    assert_eq!(snap.revision(), model.revision);
    assert_eq!(read_all(&snap), model.data);
    let stats = r.engine.stats().unwrap();
    assert_eq!(
        (stats.revision, stats.keys),
        (model.revision, model.data.len() as u64)
    );
    for i in 0..24 {
        let (found, at) = r.engine.get(&key(i)).unwrap();
        assert_eq!(at, model.revision);
        let want = model
            .data
            .get(&key(i))
            .map(|(v, rev)| (v.clone(), *rev, model.expiry.get(&key(i)).copied()));
        let got = found.map(|g| (g.value.to_vec(), g.revision, g.expires_at_ms));
        assert_eq!(got, want);
    }
    // Every key with an expiry is found by a sweep that far ahead.
    let (due, next) = r.engine.expired(u64::MAX, usize::MAX, None).unwrap();
    assert_eq!((due, next), (model.due(u64::MAX), None));
}

#[derive(Debug, Clone)]
enum Cond {
    None,
    Current,
    Absent,
    Wrong,
}

#[derive(Debug, Clone)]
struct GenOp {
    key: u8,
    put: Option<Vec<u8>>,
    cond: Cond,
    expires: Option<u64>,
}

/// How a request of a group uses an Idempotency-Key.
#[derive(Debug, Clone)]
enum Idem {
    None,
    /// A key never used.
    Fresh,
    /// The same request as an earlier keyed one (which one: an index into
    /// the records so far), within the window: its first outcome again.
    Repeat(usize),
    /// Another request under an earlier key: `idempotency_key_reused`.
    Reuse(usize),
    /// An earlier request again, after the window: applied anew.
    Late(usize),
}

/// An idempotency record the test expects the engine to keep.
#[derive(Debug, Clone)]
struct Recorded {
    claim: Claim,
    ops: Vec<Op>,
    outcome: Result<Applied, ()>,
}

#[derive(Debug, Clone)]
enum Step {
    /// A group of requests, each a batch of operations, some keyed.
    Group(Vec<(Vec<GenOp>, Idem)>),
    /// A group with a range delete of keys `k{a}*`..`k{b}*` between writes.
    DeleteRange(Vec<GenOp>, u8, u8, Vec<GenOp>),
    /// A sweeper at clock `now`, proposing up to `max` deletes a round.
    Sweep {
        now: u64,
        max: usize,
    },
    Freeze,
    WaitFlush,
    /// A step of the row cache's warm-up, after key `k{n}` (from the first
    /// key with `None`). (The first GET also starts the warm-up's own
    /// thread, which races the other steps.)
    Warm(Option<u8>),
    /// A snapshot read after more steps ran (spanning flushes).
    HoldSnapshot,
    CheckHeld,
    /// Power loss: frozen and live tables lost; `fail_after` strikes inside
    /// the next flush's commit; `drop_releases` keeps flushed logs.
    Crash {
        fail_after: Option<u32>,
        drop_releases: bool,
        seed: u64,
    },
    Restart,
}

fn gen_op() -> impl Strategy<Value = GenOp> {
    (
        any::<u8>(),
        prop::option::weighted(0.75, prop::collection::vec(any::<u8>(), 0..300)),
        prop_oneof![
            6 => Just(Cond::None),
            1 => Just(Cond::Current),
            1 => Just(Cond::Absent),
            1 => Just(Cond::Wrong)
        ],
        prop::option::weighted(0.3, 0u64..20),
    )
        .prop_map(|(key, put, cond, expires)| GenOp {
            key,
            put,
            cond,
            expires,
        })
}

fn gen_idem() -> impl Strategy<Value = Idem> {
    prop_oneof![
        4 => Just(Idem::None),
        3 => Just(Idem::Fresh),
        3 => any::<usize>().prop_map(Idem::Repeat),
        1 => any::<usize>().prop_map(Idem::Reuse),
        1 => any::<usize>().prop_map(Idem::Late),
    ]
}

fn gen_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => prop::collection::vec((prop::collection::vec(gen_op(), 1..6), gen_idem()), 1..8)
            .prop_map(Step::Group),
        2 => (prop::collection::vec(gen_op(), 0..4), 0u8..3, 0u8..3, prop::collection::vec(gen_op(), 0..4))
            .prop_map(|(a, lo, hi, b)| Step::DeleteRange(a, lo, hi, b)),
        2 => (0u64..22, 1usize..5).prop_map(|(now, max)| Step::Sweep { now, max }),
        2 => Just(Step::Freeze),
        2 => Just(Step::WaitFlush),
        1 => prop::option::of(any::<u8>()).prop_map(Step::Warm),
        1 => Just(Step::HoldSnapshot),
        1 => Just(Step::CheckHeld),
        1 => (prop::option::of(0u32..40), any::<bool>(), any::<u64>()).prop_map(
            |(fail_after, drop_releases, seed)| Step::Crash { fail_after, drop_releases, seed }
        ),
        1 => Just(Step::Restart),
    ]
}

fn to_ops(spec: &[GenOp], model: &Model) -> Vec<Op> {
    spec.iter()
        .map(|g| {
            let k = key(g.key);
            let op = match &g.put {
                Some(v) => {
                    let mut op = Op::put(k.clone(), v.clone());
                    op.expires_at_ms = g.expires;
                    op
                }
                None => Op::delete(k.clone()),
            };
            let current = model.data.get(&k).map_or(0, |e| e.1);
            op.if_revision(match g.cond {
                Cond::None => None,
                Cond::Current => Some(current),
                Cond::Absent => Some(0),
                Cond::Wrong => Some(current + 1000),
            })
        })
        .collect()
}

fn run_steps(steps: Vec<Step>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db.wal");
    let mut r = start(SimDisk::default(), &dir, false);
    let mut model = Model::default();
    // Where a recovery through the store ended the history.
    let mut floor = 1;
    let mut held: Option<(Snapshot, Model)> = None;
    // Idempotency records the engine must keep, the keys made so far, and
    // the requests' clock (moved past the window by `Idem::Late`).
    let mut records: Vec<Recorded> = Vec::new();
    let mut fresh = 0u32;
    let mut clock = 1_000u64;
    for step in steps {
        match step {
            Step::Group(spec) => {
                // What each request is, and what it must answer: `None`
                // to check against the model as it goes.
                let mut requests = Vec::new();
                let mut expect: Vec<Option<Result<Applied, ()>>> = Vec::new();
                let mut reused = Vec::new();
                // One keyed request per key and group keeps the expected
                // answers simple to compute (the engine handles more).
                let mut keys_used = std::collections::HashSet::new();
                for (ops, idem) in &spec {
                    let pick = |i: &usize| {
                        let i = (!records.is_empty()).then(|| i % records.len())?;
                        (!keys_used.contains(&records[i].claim.key)).then_some(i)
                    };
                    let (claim, ops, want, reuse) = match idem {
                        Idem::Fresh => {
                            fresh += 1;
                            let claim = Claim {
                                key: format!("idem-{fresh}"),
                                fingerprint: [fresh as u8; 32],
                                time_ms: clock,
                            };
                            (Some(claim), to_ops(ops, &model), None, false)
                        }
                        Idem::Repeat(i) if pick(i).is_some() => {
                            let rec = &records[pick(i).unwrap_or(0)];
                            let mut claim = rec.claim.clone();
                            claim.time_ms = clock;
                            // Past the window after a late step: applied anew.
                            let within = clock < rec.claim.time_ms + kvr::idempotency::WINDOW_MS;
                            (
                                Some(claim),
                                rec.ops.clone(),
                                within.then_some(rec.outcome),
                                false,
                            )
                        }
                        Idem::Reuse(i) if pick(i).is_some() => {
                            let rec = &records[pick(i).unwrap_or(0)];
                            let mut claim = rec.claim.clone();
                            claim.fingerprint[31] ^= 0xff;
                            claim.time_ms = clock;
                            let within = clock < rec.claim.time_ms + kvr::idempotency::WINDOW_MS;
                            (Some(claim), to_ops(ops, &model), None, within)
                        }
                        Idem::Late(i) if pick(i).is_some() => {
                            let rec = &records[pick(i).unwrap_or(0)];
                            let mut claim = rec.claim.clone();
                            clock += kvr::idempotency::WINDOW_MS;
                            claim.time_ms = clock;
                            (Some(claim), rec.ops.clone(), None, false)
                        }
                        _ => (None, to_ops(ops, &model), None, false),
                    };
                    if let Some(c) = &claim {
                        keys_used.insert(c.key.clone());
                    }
                    requests.push(Request {
                        ops,
                        idempotency: claim,
                        ..Request::default()
                    });
                    expect.push(want);
                    reused.push(reuse);
                }
                let sent: Vec<(Vec<Op>, Option<Claim>)> = requests
                    .iter()
                    .map(|r| (r.ops.clone(), r.idempotency.clone()))
                    .collect();
                let outcomes = r.writer.write_group(requests).unwrap();
                for (((ops, claim), outcome), (want, reuse)) in sent
                    .into_iter()
                    .zip(outcomes)
                    .zip(expect.into_iter().zip(reused))
                {
                    if reuse {
                        assert!(
                            matches!(outcome, Err(kvr::Error::IdempotencyKeyReused { .. })),
                            "{outcome:?}"
                        );
                        continue;
                    }
                    if let Some(want) = want {
                        // A repeat: the recorded outcome, the model untouched.
                        let got = outcome.map_err(|e| {
                            assert!(matches!(e, kvr::Error::PreconditionFailed { .. }), "{e}");
                        });
                        assert_eq!(got, want, "repeat of {ops:?}");
                        continue;
                    }
                    let got = match (model.apply(&ops), outcome) {
                        (Ok(_), Ok(applied)) => {
                            assert_eq!(applied.revision, model.revision);
                            Ok(applied)
                        }
                        (Err(()), Err(kvr::Error::PreconditionFailed { .. })) => Err(()),
                        (want, got) => panic!("model {want:?}, engine {got:?} for {ops:?}"),
                    };
                    if let Some(claim) = claim {
                        records.retain(|rec| rec.claim.key != claim.key);
                        records.push(Recorded {
                            claim,
                            ops,
                            outcome: got,
                        });
                    }
                }
            }
            Step::DeleteRange(before, lo, hi, after) => {
                let (start, end) = (format!("k{lo}"), format!("k{}", hi.max(lo) + 1));
                let query = RangeQuery {
                    start: Some(start.clone().into_bytes()),
                    end: Some(end.clone().into_bytes()),
                    ..RangeQuery::default()
                };
                let first = Request {
                    ops: to_ops(&before, &model),
                    ..Request::default()
                };
                let first_ops = first.ops.clone();
                let range = Request {
                    delete_range: Some((query, 1000)),
                    ..Request::default()
                };
                let outcomes = r.writer.write_group(vec![first, range]).unwrap();
                let ok_first = model.apply(&first_ops).is_ok();
                assert_eq!(outcomes[0].is_ok(), ok_first || first_ops.is_empty());
                let doomed: Vec<Vec<u8>> = model
                    .data
                    .keys()
                    .filter(|k| k.as_slice() >= start.as_bytes() && k.as_slice() < end.as_bytes())
                    .cloned()
                    .collect();
                for k in &doomed {
                    model.data.remove(k);
                    model.expiry.remove(k);
                    model.revision += 1;
                    let ev = (model.revision, "delete", k.clone(), Vec::new(), None);
                    model.events.push(ev);
                }
                if !doomed.is_empty() {
                    model.request_ends.insert(model.revision);
                }
                let applied = outcomes[1].as_ref().unwrap();
                assert_eq!(
                    (applied.deletes, applied.revision),
                    (doomed.len() as u64, model.revision)
                );
                let later = Request {
                    ops: to_ops(&after, &model),
                    ..Request::default()
                };
                let later_ops = later.ops.clone();
                let outcome = r.writer.write_group(vec![later]).unwrap().remove(0);
                assert_eq!(outcome.is_ok(), model.apply(&later_ops).is_ok());
            }
            Step::Sweep { now, max } => {
                let want = model.due(now);
                let mut proposed = Vec::new();
                let mut cursor = None;
                loop {
                    let (ops, next) = r.engine.expired(now, max, cursor.as_ref()).unwrap();
                    let request = Request {
                        ops: ops.clone(),
                        ..Request::default()
                    };
                    let applied = r
                        .writer
                        .write_group(vec![request])
                        .unwrap()
                        .remove(0)
                        .unwrap();
                    assert_eq!(applied.deletes, model.apply(&ops).unwrap());
                    assert_eq!(applied.deletes, ops.len() as u64);
                    proposed.extend(ops);
                    cursor = next;
                    if cursor.is_none() {
                        break;
                    }
                }
                assert_eq!(proposed, want);
            }
            Step::Freeze => r.writer.freeze_now().unwrap(),
            Step::WaitFlush => assert!(r.engine.wait_flushed()),
            Step::Warm(after) => {
                let _ = r.engine.warm_rows(after.map(key).as_deref()).unwrap();
            }
            Step::HoldSnapshot => held = Some((r.engine.snapshot(), model.clone())),
            Step::CheckHeld => {
                if let Some((snap, then)) = &held {
                    assert_eq!(snap.revision(), then.revision);
                    assert_eq!(read_all(snap), then.data);
                }
            }
            Step::Crash {
                fail_after,
                drop_releases,
                seed,
            } => {
                held = None;
                r.drop_releases.store(drop_releases, Ordering::SeqCst);
                if let Some(n) = fail_after {
                    r.disk.0.lock().unwrap().fail_after = Some(n);
                    let _ = r.writer.freeze_now();
                    let _ = r.engine.wait_flushed();
                }
                let disk = r.disk.clone();
                r.writer.abandon();
                drop(r.engine);
                r = start(disk.after_power_loss(seed), &dir, seed % 2 == 0);
                if seed % 2 == 0 && r.engine.oldest_revision() == model.revision + 1 {
                    floor = model.revision + 1;
                }
            }
            Step::Restart => {
                held = None;
                assert!(r.writer.close());
                let disk = r.disk.clone();
                drop(r.engine);
                r = start(disk, &dir, false);
            }
        }
        check(&r, &model);
        check_history(&r, &model, floor);
        check_records(&r, &records, clock);
    }
}

/// The engine keeps the newest record of every key still in its window at
/// `clock`, exactly as it was made.
fn check_records(r: &Running, records: &[Recorded], clock: u64) {
    for rec in records {
        if clock >= rec.claim.time_ms + kvr::idempotency::WINDOW_MS {
            continue;
        }
        let got = r.engine.idempotency_record(&rec.claim.key).unwrap();
        let got = got.map(|g| {
            (
                g.time_ms,
                g.fingerprint,
                g.outcome.to_result().map_err(|_| ()),
            )
        });
        let want = (rec.claim.time_ms, rec.claim.fingerprint, rec.outcome);
        assert_eq!(got, Some(want), "record of {}", rec.claim.key);
    }
}

fn cases() -> u32 {
    std::env::var("KVR_ENGINE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_model(steps in prop::collection::vec(gen_step(), 1..40)) {
        run_steps(steps);
    }
}

/// A stream taken before a flush and read after it commits is exact.
#[test]
fn a_range_stream_spanning_a_flush_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = start(SimDisk::default(), &tmp.path().join("db.wal"), true);
    let mut model = Model::default();
    let put = |i: u32, tag: &str| Request {
        ops: vec![Op::put(format!("key{i:05}"), format!("{tag}{i}"))],
        ..Request::default()
    };
    for chunk in 0..20 {
        let reqs: Vec<Request> = (0..100).map(|i| put(chunk * 100 + i, "a")).collect();
        for req in &reqs {
            model.apply(&req.ops).unwrap();
        }
        r.writer.write_group(reqs).unwrap();
    }
    let snap = r.engine.snapshot();
    let then = model.clone();
    // Overwrite and delete half of it, flush, and more.
    let reqs: Vec<Request> = (0..2000).step_by(2).map(|i| put(i, "b")).collect();
    r.writer.write_group(reqs).unwrap();
    let dels: Vec<Request> = (1..2000)
        .step_by(4)
        .map(|i| Request {
            ops: vec![Op::delete(format!("key{i:05}"))],
            ..Request::default()
        })
        .collect();
    r.writer.write_group(dels).unwrap();
    r.writer.freeze_now().unwrap();
    assert!(r.engine.wait_flushed());
    assert!(r.engine.flushes() > 0);
    assert_eq!(read_all(&snap), then.data);
    assert!(r.writer.close());
}

/// The key count comes with the revision it belongs to, while puts of new
/// keys and overwrites (neither looked up in redb: resolved when the count
/// is asked for, or settled by their flush), deletes and puts of deleted
/// keys (counted by the writer) go on and tables flush.
#[test]
fn the_key_count_matches_its_revision_while_writes_and_flushes_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = start(SimDisk::default(), &tmp.path().join("db.wal"), true);
    let done = Arc::new(AtomicBool::new(false));
    // Each group takes 11 revisions: 5 new keys, 5 overwrites, then a
    // delete (even groups) or the deleted key put back (odd ones).
    let keys_at = |revision: u64| {
        assert_eq!(revision % 11, 0, "a group seen in part");
        let m = revision / 11;
        5 * m - m % 2
    };
    let reader = {
        let (engine, done) = (r.engine.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            while !done.load(Ordering::SeqCst) {
                let stats = engine.stats().unwrap();
                assert_eq!(stats.keys, keys_at(stats.revision), "{stats:?}");
                seen += 1;
            }
            seen
        })
    };
    let put = |i: u64, v: &str| Request {
        ops: vec![Op::put(format!("new{i:05}"), v)],
        ..Request::default()
    };
    let groups = 2000u64;
    for g in 0..groups {
        let mut reqs: Vec<Request> = (0..5).map(|i| put(g * 5 + i, "v")).collect();
        // Keys of earlier groups: in the live table, a frozen one or the file.
        reqs.extend((0..5).map(|i| put((g * 7 + i * 13) % (g * 5 + 1), "w")));
        let pair_key = g / 2 * 5;
        reqs.push(if g % 2 == 0 {
            Request {
                ops: vec![Op::delete(format!("new{pair_key:05}"))],
                ..Request::default()
            }
        } else {
            put(pair_key, "back")
        });
        for outcome in r.writer.write_group(reqs).unwrap() {
            outcome.unwrap();
        }
        r.writer.maybe_freeze().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    assert!(seen > 0);
    assert!(r.engine.flushes() > 5, "flushes: {}", r.engine.flushes());
    assert!(r.engine.wait_flushed());
    let stats = r.engine.stats().unwrap();
    assert_eq!(stats.revision, groups * 11);
    assert_eq!(stats.keys, keys_at(stats.revision));
    assert!(r.writer.close());
}

/// GETs racing writes and flushes (the row cache's case, `row_cache.rs`):
/// every answer, value or absence, is the key's state at the revision it
/// comes with, though keys' records in the file change under readers that
/// cached them a moment before. Checked after the run against the writer's
/// list of what each revision did.
#[test]
fn gets_racing_flushes_answer_for_their_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = start(SimDisk::default(), &tmp.path().join("db.wal"), true);
    const KEYS: u64 = 40;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|seed| {
            let (engine, done) = (r.engine.clone(), done.clone());
            std::thread::spawn(move || {
                // (key, revision read at, revision of the value found)
                let mut seen = Vec::new();
                let mut x = seed + 1;
                while !done.load(Ordering::SeqCst) && seen.len() < 500_000 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let k = (x >> 33) % KEYS;
                    let (found, at) = engine.get(format!("race{k:02}").as_bytes()).unwrap();
                    let found = found.map(|got| {
                        assert_eq!(got.value, format!("v{}", got.revision).as_bytes());
                        got.revision
                    });
                    seen.push((k, at, found));
                }
                seen
            })
        })
        .collect();
    // One operation per group, so a value names its revision; every 7th a
    // delete. `ops[k]`: (revision, put?) of key k's operations.
    let mut ops: Vec<Vec<(u64, bool)>> = vec![Vec::new(); KEYS as usize];
    let mut revision = 0u64;
    for g in 0..6000u64 {
        let k = (g * 17 + g / 40) % KEYS;
        let put = g % 7 != 6;
        let op = if put {
            Op::put(format!("race{k:02}"), format!("v{}", revision + 1))
        } else {
            Op::delete(format!("race{k:02}"))
        };
        let outcome = r
            .writer
            .write_group(vec![Request {
                ops: vec![op],
                ..Request::default()
            }])
            .unwrap();
        let applied = outcome[0].as_ref().unwrap();
        // A delete of an absent key takes no revision.
        if applied.revision > revision {
            revision = applied.revision;
            ops[k as usize].push((revision, put));
        }
        if g % 50 == 0 {
            r.writer.freeze_now().unwrap();
        } else {
            r.writer.maybe_freeze().unwrap();
        }
    }
    done.store(true, Ordering::SeqCst);
    let mut checked = 0;
    for reader in readers {
        for (k, at, found) in reader.join().unwrap() {
            let history = &ops[k as usize];
            let before = history.partition_point(|(rev, _)| *rev <= at);
            let want = before
                .checked_sub(1)
                .and_then(|i| history[i].1.then_some(history[i].0));
            assert_eq!(found, want, "key {k} read at revision {at}");
            checked += 1;
        }
    }
    assert!(checked > 2000, "reads: {checked}");
    assert!(r.engine.flushes() > 50, "flushes: {}", r.engine.flushes());
    assert!(r.writer.close());
}

/// Writes `ops` as one request, into the model too.
fn write(r: &mut Running, model: &mut Model, ops: Vec<Op>) {
    model.apply(&ops).unwrap();
    let request = Request {
        ops,
        ..Request::default()
    };
    r.writer.write_group(vec![request]).unwrap()[0]
        .as_ref()
        .unwrap();
}

/// The store holds k00..k11; then the odd keys k01..k23 are put (none
/// looked up in the store, half of them there) and the even ones deleted
/// (half of them there, logged as applied; the rest take no revision).
fn fill_for_parts(r: &mut Running, model: &mut Model) {
    write(r, model, (0..12).map(|i| Op::put(key(i), "a")).collect());
    r.writer.freeze_now().unwrap();
    assert!(r.engine.wait_flushed());
    write(
        r,
        model,
        (1..24).step_by(2).map(|i| Op::put(key(i), "b")).collect(),
    );
    write(
        r,
        model,
        (0..24).step_by(2).map(|i| Op::delete(key(i))).collect(),
    );
}

/// A crash inside a flush in parts, at every write of it (so between any
/// two parts, inside one, and inside the last), leaves the store ahead of
/// its revision for the keys written: both kinds of recovery still give
/// back exactly the model, key count included, and the watch history
/// every event (the first table's keys share their values with their
/// rows, which the parts leave to the last commit).
#[test]
fn a_crash_between_the_parts_of_a_flush_loses_nothing() {
    let mut stopped_between = 0;
    for fail_after in 0..40 {
        for seed in [0u64, 1] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("db.wal");
            let mut r = start(SimDisk::default(), &dir, true);
            let mut model = Model::default();
            fill_for_parts(&mut r, &mut model);
            let parts = r.engine.flush_parts();
            r.disk.0.lock().unwrap().fail_after = Some(fail_after);
            r.writer.freeze_now().unwrap();
            if !r.engine.wait_flushed() && r.engine.flush_parts() > parts {
                stopped_between += 1;
            }
            r.writer.abandon();
            let disk = r.disk.clone();
            drop(r.engine);
            let r = start(disk.after_power_loss(seed), &dir, seed == 0);
            check(&r, &model);
            // A recovery through the store ends the history.
            let ended = r.engine.oldest_revision() == model.revision + 1;
            check_history(&r, &model, if ended { model.revision + 1 } else { 1 });
        }
    }
    assert!(stopped_between > 10, "{stopped_between}");
}

/// A panic inside a flush (redb's, on a damaged file; here the storage
/// backend's) is contained: the failure is the engine's (`broken`, which
/// `/readyz` shows), so writers that meet the full budget get an error
/// instead of waiting for ever (a LazyFS run saw a server whose flush
/// thread had died go on taking writes); reads still give the model; and
/// the recovery of a restart, the fault gone, finds every write.
#[test]
fn a_panic_in_a_flush_is_the_engines_failure_and_a_restart_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db.wal");
    let mut r = start(SimDisk::default(), &dir, true);
    let mut model = Model::default();
    fill_for_parts(&mut r, &mut model);
    r.disk.0.lock().unwrap().panic_on_write = true;
    r.writer.freeze_now().unwrap();
    assert!(!r.engine.wait_flushed(), "the flush did not fail");
    assert_eq!(read_all(&r.engine.snapshot()), model.data);
    // Fill the budget (64 KiB): a write then fails with the flush's error.
    let value = "v".repeat(1000);
    let refused = (0..200).find_map(|i| {
        let ops = vec![Op::put(format!("fill{i:04}"), value.as_str())];
        let request = Request {
            ops: ops.clone(),
            ..Request::default()
        };
        match r.writer.write_group(vec![request]) {
            Ok(outcomes) => match outcomes.into_iter().next().unwrap() {
                Ok(_) => {
                    model.apply(&ops).unwrap();
                    None
                }
                Err(e) => Some(e.to_string()),
            },
            Err(e) => Some(e.to_string()),
        }
    });
    let refused = refused.expect("the writes waited or went on past the budget");
    assert!(
        refused.contains("the flush stopped on a fault"),
        "{refused}"
    );
    assert!(refused.contains("injected panic"), "{refused}");
    assert!(
        r.engine
            .broken()
            .is_some_and(|why| why.contains("kvr check"))
    );
    assert_eq!(read_all(&r.engine.snapshot()), model.data);
    // A crash then (the process stops; what redb had not synced is lost),
    // and a restart without the fault: the log gives back every write.
    r.writer.abandon();
    let disk = r.disk.clone();
    drop(r.engine);
    disk.0.lock().unwrap().panic_on_write = false;
    // Both recoveries, each on its own copy of the log (a recovery's
    // flush releases what it flushed): as `kvr serve` (into memory), and
    // as a command (into the file).
    for seed in [0u64, 1] {
        let copy = tmp.path().join(format!("copy{seed}.wal"));
        std::fs::create_dir(&copy).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
        let r = start(disk.after_power_loss(seed), &copy, seed == 1);
        check(&r, &model);
        assert!(r.engine.broken().is_none());
        r.writer.abandon();
    }
}

/// While a flush in parts is between parts, reads and the key count (of
/// keys put while no memory table held them, resolved only now against a
/// store that already holds some of them) give the model.
#[test]
fn reads_and_the_key_count_are_exact_between_the_parts_of_a_flush() {
    // Checked on every try; a try whose flush ended before the checks did
    // (a busy machine) is tried again, and at least one must land between.
    let mut between = 0;
    for _ in 0..20 {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = start(SimDisk::default(), &tmp.path().join("db.wal"), true);
        let mut model = Model::default();
        let many = |tag: &'static str| (0..600).map(move |i| Op::put(format!("m{i:05}"), tag));
        // Half of the keys in the store, then all of them put again, unseen.
        write(&mut r, &mut model, many("a").step_by(2).collect());
        r.writer.freeze_now().unwrap();
        assert!(r.engine.wait_flushed());
        write(&mut r, &mut model, many("b").collect());
        // Keys the store never held, put unseen and deleted in the same
        // table (its flush deletes what is not there), then put again in
        // the next one: the count must not take them for keys the store
        // held (it did, 1 off per key, between the parts: audit finding).
        let gone = |tag: &'static str| (0..50).map(move |i| Op::put(format!("a{i:05}"), tag));
        write(&mut r, &mut model, gone("x").collect());
        write(
            &mut r,
            &mut model,
            gone("x").map(|op| Op::delete(op.key)).collect(),
        );
        let (parts, flushes) = (r.engine.flush_parts(), r.engine.flushes());
        r.writer.freeze_now().unwrap();
        write(&mut r, &mut model, gone("y").collect());
        while r.engine.flush_parts() < parts + 2 {
            std::thread::yield_now();
        }
        let stats = r.engine.stats().unwrap();
        assert_eq!((stats.revision, stats.keys), (model.revision, 650));
        assert_eq!(read_all(&r.engine.snapshot()), model.data);
        if r.engine.flushes() == flushes {
            between += 1;
        }
        assert!(r.engine.wait_flushed());
        let stats = r.engine.stats().unwrap();
        assert_eq!(stats.keys, 650);
        assert!(r.writer.close());
        if between > 0 {
            return;
        }
    }
    panic!("every flush ended before the checks");
}

/// A flush in parts that falls behind (here: writers wait for it) is
/// finished by the helper thread at the process's priority: nothing lost
/// or doubled, before and after a reopen. Without the lower priority there
/// is no helper.
#[test]
fn a_flush_that_falls_behind_is_handed_to_the_helper() {
    for nice in [10, 0] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db.wal");
        let mut r = start_with(SimDisk::default(), &dir, true, |o| o.flush_nice = nice);
        let mut model = Model::default();
        let many = |tag: &'static str| (0..3000).map(move |i| Op::put(format!("m{i:05}"), tag));
        write(&mut r, &mut model, many("a").step_by(2).collect());
        r.writer.freeze_now().unwrap();
        assert!(r.engine.wait_flushed());
        // A table of 1,000 parts, over the whole memory budget: the next
        // write waits for its flush, which is then behind from the start.
        write(&mut r, &mut model, many("b").collect());
        r.writer.freeze_now().unwrap();
        let value = "v".repeat(100);
        let more = (0..40).map(|i| Op::put(format!("n{i:05}"), value.as_str()));
        let (stalls, _) = r.engine.write_stalls();
        write(&mut r, &mut model, more.collect());
        // That write waited for room: one stall more, and its time.
        let (after, waited) = r.engine.write_stalls();
        assert_eq!(after, stalls + 1);
        assert!(waited > std::time::Duration::ZERO);
        assert!(
            r.engine
                .metrics()
                .contains(&format!("\nkvr_write_stalls_total {after}\n"))
        );
        assert!(r.engine.wait_flushed());
        let handed = r.engine.flush_handovers();
        if nice > 0 {
            assert!(handed >= 1, "{handed}");
        } else {
            assert_eq!(handed, 0);
        }
        assert_eq!(read_all(&r.engine.snapshot()), model.data);
        assert_eq!(r.engine.stats().unwrap().keys, 3040);
        assert!(r.writer.close());
        let disk = r.disk.clone();
        drop(r.engine);
        check(&start(disk, &dir, true), &model);
    }
}

/// The log of an earlier release: every operation of a request, deletes
/// decided again at replay (`wal/record.rs` kinds 2 and 4).
struct EarlierReleaseLog(Wal);

impl Log for EarlierReleaseLog {
    fn append(&mut self, records: &[LogRecord<'_>]) -> kvr::Result<()> {
        let all: Vec<LogRecord<'_>> = records
            .iter()
            .map(|r| LogRecord {
                revisions: None,
                ..*r
            })
            .collect();
        self.0.append_records(&all)
    }
    fn seal(&mut self) -> kvr::Result<Release> {
        let sealed = self.0.seal()?;
        Ok(Box::new(move || sealed.release()))
    }
    fn is_broken(&self) -> bool {
        self.0.is_broken()
    }
    fn remove(self: Box<Self>) -> kvr::Result<()> {
        self.0.remove()
    }
}

/// A log an earlier release left after a crash is replayed into memory and
/// that table is flushed whole: a crash at any write of that flush, then
/// either kind of recovery, still gives back exactly the model.
#[test]
fn a_log_of_an_earlier_release_is_flushed_whole_after_its_replay() {
    for fail_after in 0..30 {
        for seed in [0u64, 1] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("db.wal");
            let disk = SimDisk::default();
            let store = Arc::new(Store::open_with_backend(disk.clone(), &store_opts()).unwrap());
            let mut opts = EngineOptions::new(64 << 10, 1 << 20);
            opts.flush_age = std::time::Duration::from_secs(3600);
            opts.history = HISTORY;
            opts.flush_part_keys = 3;
            opts.row_cache_bytes = ROW_CACHE_BYTES;
            let owner = store.assign_database_id().unwrap();
            let log = EarlierReleaseLog(Wal::create_in(&dir, 4096, owner).unwrap());
            let (engine, writer) = Engine::start(store, Box::new(log), opts.clone()).unwrap();
            let mut r = Running {
                engine,
                writer,
                disk,
                drop_releases: Arc::new(AtomicBool::new(false)),
            };
            let mut model = Model::default();
            fill_for_parts(&mut r, &mut model);
            // A crash with that table in the log only.
            r.writer.abandon();
            let disk = r.disk.clone().after_power_loss(seed);
            drop(r.engine);
            // Replayed into memory (as `kvr serve` does), then its flush
            // meets an I/O error (or the open does, at the lowest counts).
            disk.0.lock().unwrap().fail_after = Some(fail_after);
            if let Ok(store) = Store::open_with_backend(disk.clone(), &store_opts()) {
                let (engine, writer, recovered) =
                    Engine::start_recovering(Arc::new(store), &dir, 4096, opts.clone()).unwrap();
                assert!(recovered.is_some());
                let _ = engine.wait_flushed();
                writer.abandon();
            }
            disk.0.lock().unwrap().fail_after = None;
            let r = start(disk.after_power_loss(seed), &dir, seed == 0);
            check(&r, &model);
        }
    }
}

/// A flushed put shares its value with `kv` (a kind 4 history row) only
/// when the flush created its key; an overwrite keeps its value in its row
/// (kind 1), so a later overwrite of the same key has no row to rewrite.
/// Shared rows are rewritten with their value when their key changes, in
/// whatever part of a flush that happens, and every event reads back whole.
#[test]
fn history_shares_values_only_for_keys_a_flush_creates() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = start(SimDisk::default(), &tmp.path().join("db.wal"), true);
    let mut model = Model::default();
    // Revisions 1-6: k00..k05, new.
    write(
        &mut r,
        &mut model,
        (0..6).map(|i| Op::put(key(i), "a")).collect(),
    );
    r.writer.freeze_now().unwrap();
    assert!(r.engine.wait_flushed());
    // Revision 7: `j`, new; 8-10: k00..k02 again; 11: k10, new. Parts of
    // three keys: `j` and k10 are created in the first part, which leaves
    // k00..k02, whose rows share their values, to the last commit.
    let mut ops = vec![Op::put("j", "c")];
    ops.extend((0..3).map(|i| Op::put(key(i), "b")));
    ops.push(Op::put(key(10), "c"));
    write(&mut r, &mut model, ops);
    let parts = r.engine.flush_parts();
    r.writer.freeze_now().unwrap();
    assert!(r.engine.wait_flushed());
    assert!(r.engine.flush_parts() > parts, "flushed in parts");
    let Events::Found(events) = r.engine.events(1, 100, usize::MAX).unwrap() else {
        panic!("history gone");
    };
    let read: Vec<(u64, Vec<u8>)> = events
        .iter()
        .map(|e| (e.revision, e.value.to_vec()))
        .collect();
    let want: Vec<(u64, Vec<u8>)> = (1..=11u64)
        .map(|rev| {
            let v: &[u8] = match rev {
                1..=6 => b"a",
                8..=10 => b"b",
                _ => b"c",
            };
            (rev, v.to_vec())
        })
        .collect();
    assert_eq!(read, want);
    assert!(r.writer.close());
    let disk = r.disk.clone();
    drop(r.engine);
    let store = Store::open_with_backend(disk, &store_opts()).unwrap();
    let mut kinds = Vec::new();
    store
        .snapshot()
        .unwrap()
        .reader()
        .unwrap()
        .history(1, 100, |rev, row| {
            kinds.push((rev, row[0]));
            Ok(())
        })
        .unwrap();
    // 1-3: shared, then rewritten whole when 8-10 replaced them; 4-6, 7
    // and 11: created and still newest, shared; 8-10: overwrites, whole.
    let (whole, shared) = (1, 4);
    let want: Vec<(u64, u8)> = (1..=11u64)
        .map(|rev| {
            (
                rev,
                if matches!(rev, 4..=7 | 11) {
                    shared
                } else {
                    whole
                },
            )
        })
        .collect();
    assert_eq!(kinds, want);
}
