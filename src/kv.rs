//! [`Kv`]: the operations every command runs, whatever the data source.
//!
//! Commands take `&dyn Kv`, so a local file and a remote `kvr serve` give the
//! same answers by construction. [`LocalKv`] is the local file; the HTTP
//! client implements the same trait.

use std::io::BufRead;

use crate::error::{Error, Result};
use crate::jsonl::{ParallelOpReader, show_key};
use crate::store::{Commit, LOCAL_SWEEP_MAX, SortedRun, SortedRuns, Store};
use crate::types::{Applied, Entry, Item, Op, RangeQuery, Stats, now_ms};

/// The input of [`Kv::batch`]: owned, so that it can be read on a thread
/// of its own.
pub type BatchInput = Box<dyn BufRead + Send>;

/// Receives range items: key, and value with revision and expiry unless
/// keys-only. Returns `false` to stop early.
pub type Visit<'a> = dyn FnMut(&[u8], Option<Item<'_>>) -> Result<bool> + 'a;

/// The data operations of kvr.
pub trait Kv {
    /// A key's value and revision; `None` if absent.
    fn get(&self, key: &[u8]) -> Result<Option<Entry>>;
    /// Stores a value, if the key's revision is `if_revision` (0: absent) when
    /// given. Returns the new database revision.
    fn put(&self, key: &[u8], value: Vec<u8>, if_revision: Option<u64>) -> Result<u64>;
    /// [`Kv::put`] of a key that expires `ttl_secs` after the write is
    /// accepted (SPEC "Expiry (TTL)"); without one, any earlier expiry of
    /// the key is cleared.
    fn put_ttl(
        &self,
        key: &[u8],
        value: Vec<u8>,
        if_revision: Option<u64>,
        ttl_secs: Option<u64>,
    ) -> Result<u64> {
        match ttl_secs {
            None => self.put(key, value, if_revision),
            Some(_) => Err(Error::invalid(format!(
                "{} cannot store keys with an expiry",
                self.source()
            ))),
        }
    }
    /// [`Kv::put_ttl`] of the value `value` holds to its end (`size`
    /// bytes, when known), for a value that is not read into memory first:
    /// the HTTP client streams it to a server, whose limit decides. A local
    /// file takes values in memory, under its limit, instead (`cmd::put`).
    fn put_stream(
        &self,
        key: &[u8],
        value: &mut dyn std::io::Read,
        size: Option<u64>,
        if_revision: Option<u64>,
        ttl_secs: Option<u64>,
    ) -> Result<u64> {
        let _ = (key, value, size, if_revision, ttl_secs);
        Err(Error::invalid(format!(
            "{} cannot take a streamed value",
            self.source()
        )))
    }
    /// Removes a key; [`Error::KeyNotFound`] if absent. Returns the new revision.
    fn delete(&self, key: &[u8], if_revision: Option<u64>) -> Result<u64>;
    /// Deletes every key of `query`'s start, end and prefix atomically, each
    /// delete taking a revision. `puts` is 0 in the answer.
    fn delete_range(&self, query: &RangeQuery) -> Result<Applied> {
        let _ = query;
        Err(Error::invalid(format!(
            "{} cannot delete ranges",
            self.source()
        )))
    }
    /// Applies JSON lines atomically (see `jsonl`).
    fn batch(&self, input: BatchInput) -> Result<Applied>;
    /// Streams the keys of `query` from one snapshot.
    fn range(&self, query: &RangeQuery, visit: &mut Visit<'_>) -> Result<()>;
    /// Key count, revision, file size.
    fn stats(&self) -> Result<Stats>;
    /// Where the data lives, for humans (a path or a URL).
    fn source(&self) -> String;
    /// When the next key expires after `now_ms`, where the caller must
    /// look for itself (a file: no server's feed says so); else `None`.
    fn next_expiry(&self, now_ms: u64) -> Result<Option<u64>> {
        let _ = now_ms;
        Ok(None)
    }
    /// The longest value a write may store, when known (a server is asked;
    /// one that cannot say gives `None`): bounds the lines a batch reads.
    fn max_value_bytes(&self) -> Option<usize> {
        None
    }
}

/// A database file opened by this process. Expiry as SPEC "Expiry (TTL)"
/// says for `--db`: a key expired by the local clock is absent to reads and
/// conditions, and each write first deletes up to [`LOCAL_SWEEP_MAX`]
/// expired keys, in expiry order, each taking a revision.
pub struct LocalKv {
    pub store: Store,
    pub max_value_bytes: usize,
}

/// Nothing written means nothing created: a put or batch that fails on a
/// missing file leaves none behind. A write that failed on an I/O error (a
/// full disk) leaves the file recovered to its last commit and at its
/// length, rather than grown and not closed cleanly until its next open
/// ([`Store::recover_after_failed_write`]).
impl Drop for LocalKv {
    fn drop(&mut self) {
        let _ = self.store.discard_if_unwritten();
        let _ = self.store.recover_after_failed_write();
    }
}

impl LocalKv {
    /// A cluster member's file takes no writes but through its cluster.
    fn writable(&self) -> Result<()> {
        let Some((cluster, node)) = crate::cluster::start::identity_of(&self.store)? else {
            return Ok(());
        };
        let removed = self
            .store
            .cluster_value(crate::store::cluster::REMOVED)?
            .is_some();
        Err(Error::invalid(match removed {
            // Its cluster goes on without it: "write through the cluster"
            // would send the user to writes this file never sees.
            true => format!(
                "this database is node {node}, removed from cluster {cluster}: it takes no \
                 writes; `kvr --db {} backup NEW` copies its data into a database NEW of its \
                 own",
                self.store.path().display()
            ),
            false => format!(
                "this database is node {node} of cluster {cluster}; write through the \
                 cluster (kvr --server URL)"
            ),
        }))
    }

    /// Deletes what expired (see the type's header), then applies `op`
    /// with conditions judged by the same clock, in one commit.
    fn apply_one(&self, op: Op) -> Result<Applied> {
        self.writable()?;
        let now = now_ms();
        let runs = SortedRuns::new([Ok(op)].into_iter(), usize::MAX);
        self.store.apply_runs_after_sweep(
            self.expired(now)?,
            false,
            runs,
            Commit::Durable,
            self.max_value_bytes,
            Some(now),
        )
    }

    /// Refuses a put or delete of `key` that the current state refuses
    /// already, with the error applying it would give: a member's file, a
    /// failed `if_revision`, a delete of a missing key. The write checks
    /// again when it applies; this lets `cmd` refuse through a read-only
    /// open (see `cmd::refused_by_file`).
    pub fn refuses(&self, key: &[u8], if_revision: Option<u64>, delete: bool) -> Result<()> {
        self.writable()?;
        let op = match delete {
            true => Op::delete(key),
            false => Op::put(key, Vec::new()),
        }
        .if_revision(if_revision);
        let current = self.get(key)?.map(|e| e.revision);
        if let Some(expected) = if_revision {
            crate::store::condition_holds(&op, expected, current)?;
        }
        if delete && current.is_none() {
            return Err(Error::KeyNotFound { key: show_key(key) });
        }
        Ok(())
    }

    /// The expiry deletes a write command at `now` makes first.
    fn expired(&self, now: u64) -> Result<Vec<Op>> {
        self.store.expired(now, LOCAL_SWEEP_MAX)
    }
}

/// The first bad line among the rest of a batch's operations, reading
/// until the input ends (or a signal: then none).
fn first_bad_line(ops: &mut impl Iterator<Item = Result<Op>>) -> Option<Error> {
    for op in ops {
        if crate::interrupt::requested().is_some() {
            return None;
        }
        if let Err(e) = op {
            return Some(e);
        }
    }
    None
}

/// What the reading thread of [`LocalKv::batch`] found after the writer
/// stopped at a failed condition: a bad line, which is then the error. A
/// signal stops the wait (the batch was not applied either way).
fn bad_line_after(verdict: &std::sync::mpsc::Receiver<Option<Error>>) -> Option<Error> {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match verdict.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(bad) => return bad,
            Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) => {
                if crate::interrupt::requested().is_some() {
                    return None;
                }
            }
        }
    }
}

/// The runs the reading thread of [`LocalKv::batch`] sends; its last
/// message is `Ok(None)`, so a thread that died early (a panic) is an
/// error, never a batch cut short and committed.
struct ReceivedRuns {
    rx: std::sync::mpsc::Receiver<Result<Option<SortedRun>>>,
    ended: bool,
}

impl Iterator for ReceivedRuns {
    type Item = Result<SortedRun>;

    fn next(&mut self) -> Option<Result<SortedRun>> {
        if self.ended {
            return None;
        }
        // SIGINT/SIGTERM (`crate::interrupt`): stop before the next run, so
        // the transaction is aborted and the file closed as it was.
        if let Some(signal) = crate::interrupt::requested() {
            self.ended = true;
            return Some(Err(crate::interrupt::error(signal)));
        }
        // Waits in steps, so a signal is seen while the reader waits on
        // a producer that sends nothing.
        let message = loop {
            match self.rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(message) => break message,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(signal) = crate::interrupt::requested() {
                        self.ended = true;
                        return Some(Err(crate::interrupt::error(signal)));
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(Error::Storage(
                        "the thread reading the batch stopped before its end".into(),
                    ));
                }
            }
        };
        let item = message.transpose();
        if !matches!(item, Some(Ok(_))) {
            self.ended = true;
        }
        item
    }
}

impl Kv for LocalKv {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        let now = now_ms();
        Ok(self.store.get(key)?.filter(|e| !e.expired_at(now)))
    }

    fn put(&self, key: &[u8], value: Vec<u8>, if_revision: Option<u64>) -> Result<u64> {
        self.put_ttl(key, value, if_revision, None)
    }

    fn put_ttl(
        &self,
        key: &[u8],
        value: Vec<u8>,
        if_revision: Option<u64>,
        ttl_secs: Option<u64>,
    ) -> Result<u64> {
        let op = Op::put(key, value)
            .if_revision(if_revision)
            .ttl(ttl_secs)
            .accept(now_ms());
        match op {
            Some(op) => Ok(self.apply_one(op)?.revision),
            // A ttl of at least a second never has passed.
            None => Ok(self.store.stats()?.revision),
        }
    }

    fn delete(&self, key: &[u8], if_revision: Option<u64>) -> Result<u64> {
        let applied = self.apply_one(Op::delete(key).if_revision(if_revision))?;
        if applied.deletes == 0 {
            return Err(Error::KeyNotFound { key: show_key(key) });
        }
        Ok(applied.revision)
    }

    fn delete_range(&self, query: &RangeQuery) -> Result<Applied> {
        self.writable()?;
        // Checked before the sweep commits: a bad range changes nothing.
        query.validate()?;
        let sweep = self.expired(now_ms())?;
        if !sweep.is_empty() {
            let ops = sweep.into_iter().map(Ok);
            self.store.apply(ops, Commit::Durable, usize::MAX)?;
        }
        self.store.delete_range(query)
    }

    /// The input is read, parsed (on several threads:
    /// [`ParallelOpReader`]) and sorted into runs on threads of their
    /// own while this one writes the run before: an import takes about the
    /// longer of the two, not their sum. At most two runs are in memory.
    ///
    /// A bad line anywhere in the input is what a batch reports, before a
    /// failed condition on an earlier line, as a server (which parses the
    /// whole body first) does, so `--db` and `--server` give the same
    /// error and exit code: once a condition fails, the rest of the input
    /// is read (and parsed, nothing kept) to look for one.
    fn batch(&self, input: BatchInput) -> Result<Applied> {
        self.writable()?;
        let now = now_ms();
        let sweep = self.expired(now)?;
        let max_value_bytes = self.max_value_bytes;
        let run_bytes = self.store.run_max_bytes();
        let (tx, rx) = std::sync::mpsc::sync_channel(0);
        // The reader's word on the input after the writer stopped: its
        // first bad line, if any.
        let (verdict_tx, verdict) = std::sync::mpsc::sync_channel(1);
        let parsed = ParallelOpReader::new(input, max_value_bytes)?;
        std::thread::Builder::new()
            .name("kvr-batch-read".into())
            .spawn(move || {
                // Accepted line by line at one clock: a line whose expiry
                // passed is skipped.
                let mut ops = parsed.filter_map(|op| op.map(|op| op.accept(now)).transpose());
                let mut runs = SortedRuns::new(ops.by_ref(), run_bytes);
                while let Some(run) = runs.next() {
                    if let Err(std::sync::mpsc::SendError(unsent)) = tx.send(run.map(Some)) {
                        // The writer stopped at an error: the rest of the
                        // input only decides whether a bad line comes first.
                        let bad = unsent.err().or_else(|| runs.take_error());
                        drop(runs);
                        let bad = bad.or_else(|| first_bad_line(&mut ops));
                        let _ = verdict_tx.send(bad);
                        return;
                    }
                }
                let _ = tx.send(Ok(None));
            })
            .map_err(|e| Error::io("cannot start a thread to read the batch", e))?;
        let runs = ReceivedRuns { rx, ended: false };
        match self.store.apply_runs_after_sweep(
            sweep,
            true,
            runs,
            Commit::Durable,
            max_value_bytes,
            Some(now),
        ) {
            Err(failed @ Error::PreconditionFailed { .. }) => {
                Err(bad_line_after(&verdict).unwrap_or(failed))
            }
            outcome => outcome,
        }
    }

    fn range(&self, query: &RangeQuery, visit: &mut Visit<'_>) -> Result<()> {
        let snapshot = self.store.snapshot()?;
        let now = now_ms();
        // Expired keys are skipped, so the limit is counted here.
        let mut left = query.limit.unwrap_or(u64::MAX);
        let unlimited = RangeQuery {
            limit: None,
            ..query.clone()
        };
        snapshot.range(&unlimited, |key, rec| {
            if left == 0 {
                return Ok(false);
            }
            if rec.expires_at_ms.is_some_and(|t| t <= now) {
                return Ok(true);
            }
            left -= 1;
            let entry = (!query.keys_only).then_some(rec.item());
            visit(key, entry)
        })
    }

    /// Expired keys are absent to reads, so they are not counted (the
    /// next write deletes them).
    fn stats(&self) -> Result<Stats> {
        let mut stats = self.store.stats()?;
        let expired = self.store.snapshot()?.count_expired(now_ms())?;
        stats.keys = stats.keys.saturating_sub(expired);
        Ok(stats)
    }

    fn source(&self) -> String {
        let path = self.store.path().display();
        if !self.store.may_write() {
            format!("{path} (read-only)")
        } else {
            path.to_string()
        }
    }

    fn next_expiry(&self, now_ms: u64) -> Result<Option<u64>> {
        self.store.snapshot()?.next_expiry(now_ms)
    }

    fn max_value_bytes(&self) -> Option<usize> {
        Some(self.max_value_bytes)
    }
}
