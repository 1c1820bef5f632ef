//! Model-based test of the store: random sequences of puts (some with an
//! expiry), deletes, conditional puts, batches (some with a bad line, some
//! with conditions judged at a clock that hides expired keys), expiry
//! sweeps, clean reopens and simulated power losses, checked after every
//! step against a `BTreeMap` model with a revision counter: the data, each
//! key's expiry, and the expiry index (a sweep deletes exactly the keys the
//! model says are due, in expiry order).
//!
//! Power loss is simulated by [`SimDisk`], a redb storage backend that keeps
//! what was written since the last sync apart. At a crash it keeps a random
//! subset of those writes, some of them torn at a 512-byte sector boundary,
//! and drops the rest. A crash can also strike in the middle of a commit: the
//! disk then fails after a random number of writes or at the sync.
//!
//! `KVR_MODEL_CASES` raises the number of sequences (default 96).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use kvr::store::{Commit, Store, StoreOptions};
use kvr::types::{Op, RangeQuery};
use kvr::{Error, limits::DEFAULT_MAX_VALUE_BYTES as MAX};
use proptest::prelude::*;

mod sim;
use sim::{Model, SimDisk};

// ---------------------------------------------------------------- the model

fn check(store: &Store, model: &Model) {
    let snap = store.snapshot().unwrap();
    let mut seen = BTreeMap::new();
    snap.range(&RangeQuery::default(), |k, rec| {
        seen.insert(k.to_vec(), (rec.value.to_vec(), rec.revision));
        Ok(true)
    })
    .unwrap();
    assert_eq!(seen, model.data);
    let mut expiry = BTreeMap::new();
    snap.range(&RangeQuery::default(), |k, rec| {
        if let Some(t) = rec.expires_at_ms {
            expiry.insert(k.to_vec(), t);
        }
        Ok(true)
    })
    .unwrap();
    assert_eq!(expiry, model.expiry);
    // The index holds exactly the keys with an expiry, at their revision.
    assert_eq!(
        store.expired(u64::MAX, usize::MAX).unwrap(),
        model.due(u64::MAX)
    );
    let stats = store.stats().unwrap();
    assert_eq!(stats.revision, model.revision);
    assert_eq!(stats.keys, model.data.len() as u64);
    // Reverse ranges see the same keys.
    let mut reversed = Vec::new();
    snap.range(
        &RangeQuery {
            reverse: true,
            ..RangeQuery::default()
        },
        |k, _| {
            reversed.push(k.to_vec());
            Ok(true)
        },
    )
    .unwrap();
    reversed.reverse();
    assert_eq!(reversed, model.data.keys().cloned().collect::<Vec<_>>());
}

// ---------------------------------------------------------------- the steps

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
    /// A put's expiry on a small clock (0 to 20 ms).
    expires: Option<u64>,
}

#[derive(Debug, Clone)]
enum Step {
    Ops {
        ops: Vec<GenOp>,
        /// Insert an invalid op at this index (the batch must be rejected).
        bad_at: Option<usize>,
        /// Judge conditions at this clock, expired keys absent (`--db`).
        now: Option<u64>,
    },
    /// Delete up to `max` keys expired at `now`, as `--db` writes do first.
    Sweep {
        now: u64,
        max: usize,
    },
    Reopen,
    /// Power loss; with `during`, in the middle of the next write after
    /// that many disk writes.
    Crash {
        during: Option<(u32, Vec<GenOp>)>,
        seed: u64,
    },
}

fn key(i: u8) -> Vec<u8> {
    match i {
        0 => vec![0xff, 0x00],
        1 => b"a".to_vec(),
        2 => b"a\x00".to_vec(),
        // Longer than the 16-byte prefix a batch sorts by, sharing it.
        3 => b"0123456789abcdef-1".to_vec(),
        4 => b"0123456789abcdef-0".to_vec(),
        i => format!("k{i}").into_bytes(),
    }
}

fn gen_op() -> impl Strategy<Value = GenOp> {
    let cond = prop_oneof![
        6 => Just(Cond::None),
        1 => Just(Cond::Current),
        1 => Just(Cond::Absent),
        1 => Just(Cond::Wrong),
    ];
    let put = prop_oneof![
        1 => Just(None),
        3 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
        1 => (1usize..3000).prop_map(|n| Some(vec![7u8; n])),
    ];
    let expires = proptest::option::weighted(0.4, 0u64..20);
    (0u8..10, put, cond, expires).prop_map(|(key, put, cond, expires)| GenOp {
        key,
        put,
        cond,
        expires,
    })
}

fn gen_step() -> impl Strategy<Value = Step> {
    let ops = || proptest::collection::vec(gen_op(), 1..12);
    prop_oneof![
        8 => (ops(), proptest::option::weighted(0.15, 0usize..12), proptest::option::of(0u64..22))
            .prop_map(|(ops, bad_at, now)| Step::Ops { ops, bad_at, now }),
        2 => (0u64..22, 1usize..6).prop_map(|(now, max)| Step::Sweep { now, max }),
        1 => Just(Step::Reopen),
        1 => any::<u64>().prop_map(|seed| Step::Crash { during: None, seed }),
        2 => (0u32..40, ops(), any::<u64>())
            .prop_map(|(n, ops, seed)| Step::Crash { during: Some((n, ops)), seed }),
    ]
}

fn to_ops(spec: &[GenOp], model: &Model) -> Vec<Op> {
    spec.iter()
        .map(|g| {
            let k = key(g.key);
            let current = model.data.get(&k).map_or(0, |e| e.1);
            let op = match &g.put {
                Some(v) => {
                    let mut op = Op::put(k, v.clone());
                    op.expires_at_ms = g.expires;
                    op
                }
                None => Op::delete(k),
            };
            op.if_revision(match g.cond {
                Cond::None => None,
                Cond::Current => Some(current),
                Cond::Absent => Some(0),
                Cond::Wrong => Some(current + 1000),
            })
        })
        .collect()
}

fn opts() -> StoreOptions {
    StoreOptions {
        cache_bytes: 4 << 20,
        ..StoreOptions::default()
    }
}

fn run_steps(steps: Vec<Step>) {
    let disk = SimDisk::default();
    let mut disk_now = disk.clone();
    let mut store = Store::open_with_backend(disk.clone(), &opts()).unwrap();
    let mut model = Model::default();
    for step in steps {
        match step {
            Step::Sweep { now, max } => {
                let ops = store.expired(now, max).unwrap();
                let mut due = model.due(now);
                due.truncate(max);
                assert_eq!(ops, due);
                let applied = store
                    .apply(ops.iter().cloned().map(Ok), Commit::Durable, MAX)
                    .unwrap();
                assert_eq!(model.apply(&ops).unwrap(), applied.deletes);
                assert_eq!(applied.deletes, ops.len() as u64);
                assert_eq!(store.stats().unwrap().revision, model.revision);
            }
            Step::Ops { ops, bad_at, now } => {
                let ops = to_ops(&ops, &model);
                let mut input: Vec<Result<Op, Error>> = ops.iter().cloned().map(Ok).collect();
                if let Some(at) = bad_at {
                    input.insert(at.min(input.len()), Err(Error::invalid("bad line")));
                }
                let result = store.apply_at(input, Commit::Durable, MAX, now);
                let expected = if bad_at.is_some() {
                    Err(())
                } else {
                    model.clone().apply_at(&ops, now).map(|_| ())
                };
                match (&result, expected) {
                    (Ok(applied), Ok(())) => {
                        model.apply_at(&ops, now).unwrap();
                        assert_eq!(applied.revision, model.revision);
                    }
                    (Err(_), Err(())) => {}
                    (r, e) => panic!("store {r:?}, model {e:?} for {ops:?}"),
                }
            }
            Step::Reopen => {
                drop(store);
                store = Store::open_with_backend(disk_now.clone(), &opts()).unwrap();
            }
            Step::Crash { during, seed } => {
                let mut possible = vec![model.clone()];
                if let Some((after_writes, spec)) = during {
                    let ops = to_ops(&spec, &model);
                    let mut after = model.clone();
                    let valid = after.apply(&ops).is_ok();
                    disk_now.0.lock().unwrap().fail_after = Some(after_writes);
                    let result = store.apply(ops.into_iter().map(Ok), Commit::Durable, MAX);
                    match result {
                        // Acknowledged: it must survive.
                        Ok(_) if valid => possible = vec![after],
                        Ok(_) => panic!("an invalid batch was applied"),
                        // Not acknowledged: either outcome, never a mix.
                        Err(_) if valid => possible.push(after),
                        Err(_) => {}
                    }
                }
                drop(store);
                disk_now = disk_now.after_power_loss(seed);
                store = Store::open_with_backend(disk_now.clone(), &opts())
                    .expect("the database must reopen after a power loss");
                let stats = store.stats().unwrap();
                model = possible
                    .into_iter()
                    .find(|m| m.revision == stats.revision)
                    .unwrap_or_else(|| panic!("revision {} after a crash", stats.revision));
            }
        }
        check(&store, &model);
    }
}

fn cases() -> u32 {
    std::env::var("KVR_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(steps in proptest::collection::vec(gen_step(), 1..40)) {
        run_steps(steps);
    }
}

#[test]
fn large_batch_spanning_several_sorted_runs_matches_model() {
    // More than one run of RUN_MAX_BYTES, with repeated keys across runs and
    // deletes that find their key in an earlier run.
    let disk = SimDisk::default();
    let store = Store::open_with_backend(disk, &opts()).unwrap();
    let mut model = Model::default();
    let value = vec![1u8; 30_000];
    let mut ops = Vec::new();
    for i in 0..5000u32 {
        let k = format!("key{:04}", (i * 7919) % 1500).into_bytes();
        if i % 5 == 4 {
            ops.push(Op::delete(k));
        } else {
            ops.push(Op::put(k, value[..(i as usize % 100) * 300].to_vec()));
        }
    }
    let applied = store
        .apply(ops.iter().cloned().map(Ok), Commit::Durable, MAX)
        .unwrap();
    model.apply(&ops).unwrap();
    assert_eq!(applied.revision, model.revision);
    check(&store, &model);
}

#[test]
fn batches_past_the_last_key_match_model_through_reopen_and_power_loss() {
    // Keys that sort after every stored key go in through a cursor at the
    // table's end (`store::apply`): new keys, a put then a delete of the
    // same new key, a put twice, an expiry, an empty value, a delete of an
    // absent key, a key equal to the last one (not past it), and enough
    // appended keys to fill many leaves, then a power loss.
    let disk = SimDisk::default();
    let mut store = Store::open_with_backend(disk.clone(), &opts()).unwrap();
    let mut model = Model::default();
    let apply = |store: &Store, model: &mut Model, ops: Vec<Op>| {
        let applied = store
            .apply(ops.iter().cloned().map(Ok), Commit::Durable, MAX)
            .unwrap();
        model.apply(&ops).unwrap();
        assert_eq!(applied.revision, model.revision);
        check(store, model);
    };
    let first: Vec<Op> = (100..200)
        .map(|i| Op::put(format!("key{i}").into_bytes(), b"v".to_vec()))
        .collect();
    apply(&store, &mut model, first);
    let mut expiring = Op::put(b"key302".to_vec(), b"soon".to_vec());
    expiring.expires_at_ms = Some(4_000_000_000_000);
    let mixed = vec![
        Op::put(b"key300".to_vec(), b"gone".to_vec()),
        Op::put(b"key150".to_vec(), b"inside".to_vec()),
        Op::delete(b"key120".to_vec()),
        Op::put(b"key301".to_vec(), b"one".to_vec()),
        Op::delete(b"key300".to_vec()),
        expiring,
        Op::put(b"key199".to_vec(), b"last".to_vec()),
        Op::put(b"key301".to_vec(), b"two".to_vec()),
        Op::delete(b"key303".to_vec()),
        Op::put(b"key304".to_vec(), Vec::new()),
    ];
    apply(&store, &mut model, mixed);
    let many: Vec<Op> = (0..5000)
        .map(|i| Op::put(format!("key9{i:05}").into_bytes(), vec![7u8; 300]))
        .collect();
    apply(&store, &mut model, many);
    drop(store);
    store = Store::open_with_backend(disk.after_power_loss(7), &opts()).unwrap();
    check(&store, &model);
}
