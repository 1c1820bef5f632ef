//! [`SimDisk`]: a redb storage backend that simulates power loss, shared by
//! the model tests (`model.rs`, `walcrash.rs`), and [`Model`], the reference
//! they check the store against.
//!
//! It keeps what was written since the last sync apart. At a crash
//! ([`SimDisk::after_power_loss`]) it keeps a random subset of those writes,
//! some torn at a 512-byte sector boundary, and drops the rest. With
//! `fail_after` set, every write and sync fails once that many more writes
//! were done: a crash in the middle of a commit.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use kvr::types::{Action, Op};
use redb::{BackendError, StorageBackend};

type BackendIoError = std::io::Error;

#[derive(Debug, Default)]
pub struct Disk {
    /// What survives a power loss for sure.
    pub durable: Vec<u8>,
    /// What reads see.
    pub current: Vec<u8>,
    /// Writes and resizes since the last sync, in order.
    pub pending: Vec<Pending>,
    /// Fail every write or sync once this many more writes were done.
    pub fail_after: Option<u32>,
    /// Panic in every write while set: a fault inside the storage engine
    /// (redb panics on some damaged files).
    pub panic_on_write: bool,
}

#[derive(Debug, Clone)]
pub enum Pending {
    Write(u64, Vec<u8>),
    Len(u64),
}

#[derive(Debug, Clone, Default)]
pub struct SimDisk(pub Arc<Mutex<Disk>>);

fn io_err(msg: &str) -> BackendIoError {
    std::io::Error::other(msg.to_string())
}

impl Disk {
    pub fn failing(&mut self) -> bool {
        match &mut self.fail_after {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }
}

impl StorageBackend for SimDisk {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.0.lock().unwrap().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let d = self.0.lock().unwrap();
        let start = offset as usize;
        let src = d
            .current
            .get(start..start + out.len())
            .ok_or_else(|| io_err("read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let mut d = self.0.lock().unwrap();
        if d.failing() {
            return Err(io_err("injected failure"));
        }
        d.current.resize(len as usize, 0);
        d.pending.push(Pending::Len(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        let mut d = self.0.lock().unwrap();
        if d.fail_after.is_some_and(|n| n == 0) {
            return Err(io_err("injected sync failure"));
        }
        d.durable = d.current.clone();
        d.pending.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut d = self.0.lock().unwrap();
        if d.panic_on_write {
            drop(d); // (not poisoned: the panic is the fault, not the lock)
            panic!("injected panic in the storage backend");
        }
        if d.failing() {
            return Err(io_err("injected failure"));
        }
        let end = offset as usize + data.len();
        if d.current.len() < end {
            d.current.resize(end, 0);
        }
        d.current[offset as usize..end].copy_from_slice(data);
        d.pending.push(Pending::Write(offset, data.to_vec()));
        Ok(())
    }

    fn try_lock_range(&self, _: Bound<u64>, _: Bound<u64>) -> Result<bool, BackendError> {
        Ok(true)
    }
    fn try_lock_shared_range(&self, _: Bound<u64>, _: Bound<u64>) -> Result<bool, BackendError> {
        Ok(true)
    }
    fn lock_range(&self, _: Bound<u64>, _: Bound<u64>) -> Result<(), BackendError> {
        Ok(())
    }
    fn lock_shared_range(&self, _: Bound<u64>, _: Bound<u64>) -> Result<(), BackendError> {
        Ok(())
    }
    fn unlock_range(&self, _: Bound<u64>, _: Bound<u64>) -> Result<(), BackendError> {
        Ok(())
    }
    fn query_lock_range(&self, _: Bound<u64>, _: Bound<u64>) -> Result<bool, BackendError> {
        Ok(false)
    }
}

impl SimDisk {
    /// The disk as found after a power loss: the synced state plus a random
    /// subset of later writes, each kept whole, torn or dropped.
    pub fn after_power_loss(&self, seed: u64) -> SimDisk {
        let d = self.0.lock().unwrap();
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut bytes = d.durable.clone();
        for p in &d.pending {
            match p {
                Pending::Len(len) => {
                    if next() % 2 == 0 {
                        bytes.resize(*len as usize, 0);
                    }
                }
                Pending::Write(offset, data) => {
                    let keep = match next() % 4 {
                        0 | 1 => 0,
                        2 => data.len(),
                        _ => (next() as usize % data.len().div_ceil(512)) * 512,
                    }
                    .min(data.len());
                    let end = *offset as usize + keep;
                    if keep > 0 {
                        if bytes.len() < end {
                            bytes.resize(end, 0);
                        }
                        bytes[*offset as usize..end].copy_from_slice(&data[..keep]);
                    }
                }
            }
        }
        SimDisk(Arc::new(Mutex::new(Disk {
            durable: bytes.clone(),
            current: bytes,
            ..Disk::default()
        })))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
/// The reference the store is checked against: a `BTreeMap` of key to
/// (value, revision), the keys' expiries and the database revision.
pub struct Model {
    pub data: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
    /// Key to expires_at_ms, for the keys in `data` that have one.
    pub expiry: BTreeMap<Vec<u8>, u64>,
    pub revision: u64,
    /// Every event so far, in revision order (index = revision - 1).
    pub events: Vec<ModelEvent>,
    /// The revisions of the last event of each request.
    pub request_ends: BTreeSet<u64>,
}

/// An applied operation as a watch reports it: revision, "put" / "delete"
/// / "expired", key, value, expiry.
pub type ModelEvent = (u64, &'static str, Vec<u8>, Vec<u8>, Option<u64>);

impl Model {
    /// The oldest revision a history bounded by `events` and `bytes` keeps
    /// (an event counts key + value + 24 bytes): the first of a request,
    /// never below `floor`.
    pub fn oldest(&self, events: u64, bytes: u64, floor: u64) -> u64 {
        let mut oldest = self.revision + 1;
        let mut total = 0;
        for e in self.events.iter().rev() {
            total += (e.2.len() + e.3.len()) as u64 + 24;
            if self.revision + 1 - e.0 > events || total > bytes {
                break;
            }
            if e.0 == 1 || self.request_ends.contains(&(e.0 - 1)) {
                oldest = e.0;
            }
        }
        oldest.max(floor)
    }
}

impl Model {
    /// One request with kvr's semantics: the operations that took a
    /// revision, or `Err` (and no change) when a condition fails.
    pub fn apply(&mut self, ops: &[Op]) -> Result<u64, ()> {
        self.apply_at(ops, None)
    }

    /// [`Model::apply`] with conditions judged as `--db` does: a key
    /// expired at `now` counts as absent.
    pub fn apply_at(&mut self, ops: &[Op], now: Option<u64>) -> Result<u64, ()> {
        for op in ops {
            if let Some(expected) = op.if_revision {
                let expired =
                    now.is_some_and(|n| self.expiry.get(&op.key).is_some_and(|&t| t <= n));
                let current = match self.data.get(&op.key) {
                    Some(e) if !expired => e.1,
                    _ => 0,
                };
                if current != expected {
                    return Err(());
                }
            }
        }
        let before = self.revision;
        for op in ops {
            match &op.action {
                Action::Put(v) => {
                    self.revision += 1;
                    self.events.push((
                        self.revision,
                        "put",
                        op.key.clone(),
                        v.clone(),
                        op.expires_at_ms,
                    ));
                    self.data.insert(op.key.clone(), (v.clone(), self.revision));
                    match op.expires_at_ms {
                        Some(t) => self.expiry.insert(op.key.clone(), t),
                        None => self.expiry.remove(&op.key),
                    };
                }
                Action::Erase { .. } => unreachable!("only a log replay makes erases"),
                Action::Delete => {
                    if self.data.remove(&op.key).is_some() {
                        self.expiry.remove(&op.key);
                        self.revision += 1;
                        self.events.push((
                            self.revision,
                            "delete",
                            op.key.clone(),
                            Vec::new(),
                            None,
                        ));
                    }
                }
                Action::Expire {
                    revision,
                    expires_at_ms,
                } => {
                    let matches = self.data.get(&op.key).is_some_and(|e| e.1 == *revision)
                        && self.expiry.get(&op.key) == Some(expires_at_ms);
                    if matches {
                        self.data.remove(&op.key);
                        self.expiry.remove(&op.key);
                        self.revision += 1;
                        self.events.push((
                            self.revision,
                            "expired",
                            op.key.clone(),
                            Vec::new(),
                            None,
                        ));
                    }
                }
            }
        }
        if self.revision > before {
            self.request_ends.insert(self.revision);
        }
        Ok(self.revision - before)
    }

    /// The keys expired at `now`, in (expiry, key) order, as expiry deletes.
    pub fn due(&self, now: u64) -> Vec<Op> {
        let mut due: Vec<(u64, Vec<u8>)> = self
            .expiry
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, t)| (*t, k.clone()))
            .collect();
        due.sort();
        due.into_iter()
            .map(|(t, k)| {
                let revision = self.data[&k].1;
                Op::expire(k, revision, t)
            })
            .collect()
    }

    /// The data a reader at `now` sees: expired keys hidden.
    pub fn visible(&self, now: u64) -> BTreeMap<Vec<u8>, (Vec<u8>, u64)> {
        self.data
            .iter()
            .filter(|(k, _)| self.expiry.get(*k).is_none_or(|&t| t > now))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
