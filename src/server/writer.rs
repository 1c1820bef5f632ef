//! The group-commit writer: one thread owns every write of the server.
//!
//! Handlers put their request in a bounded queue ([`Writer::write`]); when
//! the queue is full they get `overloaded` at once. The thread takes every
//! request waiting (up to [`MAX_GROUP_REQUESTS`] / [`MAX_GROUP_BYTES`]),
//! applies them with [`Store::apply_group`] in one non-durable redb commit,
//! and, inside `before_commit`, appends the successful ones to the
//! write-ahead log with one sync. Only then are the requests answered, each
//! with its own outcome: nothing is acknowledged before it is durable, and
//! a failed condition fails only its own request. The answers of a group go
//! to a reply task in the runtime in one message (one cross-thread wake per
//! group, not per request). Between groups it checkpoints by the rule in
//! `wal`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::limits::overloaded;
use super::metrics::Metrics;
use crate::error::{Error, Result};
use crate::jsonl::show_key;
use crate::store::Store;
use crate::types::{Action, Applied, Op};
use crate::wal::{CHECKPOINT_BYTES, CHECKPOINT_INTERVAL, Wal};

/// Most requests in one group. Past a few hundred the fsync is amortized
/// already, and a bounded group keeps the latency of its first request low.
pub const MAX_GROUP_REQUESTS: usize = 1024;
/// Most request bytes in one group (a group always takes at least one
/// request): about one maximal batch, so a group's memory stays bounded.
pub const MAX_GROUP_BYTES: usize = 64 << 20;
/// How long an idle writer with nothing to checkpoint sleeps between looks.
const IDLE_WAIT: Duration = Duration::from_secs(3600);
/// Free space, beyond the log bytes to checkpoint, that a checkpoint
/// waits for after one failed on a full disk. Each failed attempt costs a
/// reopen and a replay of the log, with reads unavailable meanwhile; the
/// log keeps taking writes until its segment is full.
pub const CHECKPOINT_ROOM: u64 = 8 << 20;
/// Bookkeeping bytes counted per operation when sizing a group.
const OP_OVERHEAD_BYTES: usize = 64;

/// A write as handlers submit it.
#[derive(Debug)]
pub struct WriteRequest {
    pub ops: Vec<Op>,
    /// `If-Match: *`: the (single) key must exist when the request applies.
    pub must_exist: bool,
}

struct Pending {
    req: WriteRequest,
    bytes: usize,
    reply: oneshot::Sender<Result<Applied>>,
}

/// Answers of one chunk, handed to the reply task in one message: one
/// cross-thread wake per group instead of one per request.
type Answers = Vec<(oneshot::Sender<Result<Applied>>, Result<Applied>)>;

enum Job {
    Write(Pending),
    Stop,
}

/// The handle handlers use; the thread behind it is started by [`Writer::start`].
pub struct Writer {
    tx: SyncSender<Job>,
    queue_size: usize,
    closing: AtomicBool,
    metrics: Arc<Metrics>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer thread over `store`, logging to `wal`.
    pub fn start(
        store: Arc<Store>,
        wal: Wal,
        queue_size: usize,
        max_value_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Writer> {
        let (tx, rx) = sync_channel(queue_size.max(1));
        let answers = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let (atx, mut arx) = tokio::sync::mpsc::unbounded_channel::<Answers>();
            rt.spawn(async move {
                while let Some(batch) = arx.recv().await {
                    for (reply, outcome) in batch {
                        let _ = reply.send(outcome);
                    }
                }
            });
            atx
        });
        let worker = Worker {
            answers,
            store,
            wal: Some(wal),
            rx,
            max_value_bytes,
            metrics: metrics.clone(),
            last_checkpoint: Instant::now(),
            failed: None,
            suspect: false,
            disk_full: false,
        };
        let thread = std::thread::Builder::new()
            .name("kvr-writer".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::io("cannot start the writer thread", e))?;
        Ok(Writer {
            tx,
            queue_size,
            closing: AtomicBool::new(false),
            metrics,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a write and waits for its outcome; `overloaded` at once when
    /// the queue is full.
    pub async fn write(&self, req: WriteRequest) -> Result<Applied> {
        if self.closing.load(Ordering::Acquire) {
            return Err(shutting_down());
        }
        let bytes = req.ops.iter().map(op_bytes).sum();
        let (reply, answer) = oneshot::channel();
        self.metrics.queue_entered();
        match self.tx.try_send(Job::Write(Pending { req, bytes, reply })) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.queue_left();
                return Err(overloaded(self.queue_size));
            }
            Err(TrySendError::Disconnected(_)) => {
                self.metrics.queue_left();
                return Err(shutting_down());
            }
        }
        answer.await.unwrap_or_else(|_| Err(shutting_down()))
    }

    /// Stops taking writes, lets the thread finish what is queued,
    /// checkpoint and delete the log. Blocks until it is done.
    pub fn stop(&self) {
        self.closing.store(true, Ordering::Release);
        let _ = self.tx.send(Job::Stop);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn shutting_down() -> Error {
    Error::Unavailable {
        message: "the server is shutting down; retry against a running server".into(),
        overloaded: false,
    }
}

fn op_bytes(op: &Op) -> usize {
    let value = match &op.action {
        Action::Put(v) => v.len(),
        Action::Delete => 0,
    };
    op.key.len() + value + OP_OVERHEAD_BYTES
}

struct Worker {
    /// The reply task, when the writer was started inside a tokio runtime.
    answers: Option<tokio::sync::mpsc::UnboundedSender<Answers>>,
    store: Arc<Store>,
    wal: Option<Wal>,
    rx: Receiver<Job>,
    max_value_bytes: usize,
    metrics: Arc<Metrics>,
    last_checkpoint: Instant,
    /// Set when the log and the database may disagree: no more writes.
    failed: Option<String>,
    /// A commit or checkpoint failed: redb may refuse every write until
    /// the file is reopened (see [`Worker::heal`]).
    suspect: bool,
    /// The last checkpoint failed on a full disk: the next one waits for
    /// room (see [`CHECKPOINT_ROOM`]).
    disk_full: bool,
}

impl Worker {
    fn run(mut self) {
        loop {
            let mut group = Vec::new();
            let stop = self.collect(&mut group);
            if !group.is_empty() {
                self.metrics.group_committed(group.len());
                self.commit(group);
            }
            if stop {
                break;
            }
            if self.checkpoint_due() {
                self.checkpoint();
            }
        }
        self.finish();
    }

    /// Waits for the next job, then takes whatever else is queued. Returns
    /// true when the server is stopping.
    fn collect(&mut self, group: &mut Vec<Pending>) -> bool {
        let pending = self.wal.as_ref().is_some_and(|w| w.pending_bytes() > 0);
        let wait = if pending {
            CHECKPOINT_INTERVAL.saturating_sub(self.last_checkpoint.elapsed())
        } else {
            IDLE_WAIT
        };
        let mut bytes = match self.rx.recv_timeout(wait) {
            Ok(Job::Write(p)) => self.take(group, p),
            Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) => return false,
        };
        while group.len() < MAX_GROUP_REQUESTS && bytes < MAX_GROUP_BYTES {
            match self.rx.try_recv() {
                Ok(Job::Write(p)) => bytes += self.take(group, p),
                Ok(Job::Stop) => return true,
                Err(_) => break,
            }
        }
        false
    }

    fn take(&self, group: &mut Vec<Pending>, p: Pending) -> usize {
        self.metrics.queue_left();
        let bytes = p.bytes;
        group.push(p);
        bytes
    }

    /// Commits a group: one chunk, or several when `If-Match: *` requests
    /// need the state their predecessors leave.
    fn commit(&mut self, group: Vec<Pending>) {
        let mut chunk: Vec<Pending> = Vec::new();
        for p in group {
            if p.req.must_exist && !chunk.is_empty() {
                self.commit_chunk(std::mem::take(&mut chunk));
            }
            chunk.push(p);
        }
        self.commit_chunk(chunk);
    }

    fn commit_chunk(&mut self, mut chunk: Vec<Pending>) {
        if let Some(reason) = &self.failed {
            let reason = reason.clone();
            return reply_all(chunk, || Error::Storage(reason.clone()));
        }
        if self.suspect
            && let Err(e) = self.heal()
        {
            return reply_all(chunk, || copy_error(&e));
        }
        if chunk.first().is_some_and(|p| p.req.must_exist) {
            let first = chunk.remove(0);
            if let Some(p) = self.resolve_must_exist(first) {
                chunk.insert(0, p);
            }
        }
        if chunk.is_empty() {
            return;
        }
        let mut requests: Vec<Vec<Op>> = Vec::with_capacity(chunk.len());
        for p in &mut chunk {
            requests.push(std::mem::take(&mut p.req.ops));
        }
        match self.apply(&requests) {
            Ok(outcomes) => {
                if let Some(Ok(applied)) = outcomes.iter().rev().find(|o| o.is_ok()) {
                    self.metrics.set_revision(applied.revision);
                }
                let answers: Answers = chunk.into_iter().map(|p| p.reply).zip(outcomes).collect();
                self.answer(answers);
            }
            Err(e) => {
                log!("kvr serve: a write group failed: {e}");
                reply_all(chunk, || copy_error(&e));
                self.suspect = true;
                let _ = self.heal();
            }
        }
    }

    /// Sends the answers through the reply task, or directly without one.
    fn answer(&self, answers: Answers) {
        let answers = match &self.answers {
            Some(tx) => match tx.send(answers) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => answers,
        };
        for (reply, outcome) in answers {
            let _ = reply.send(outcome);
        }
    }

    /// Turns `If-Match: *` into the key's current revision, or answers 412.
    fn resolve_must_exist(&self, mut p: Pending) -> Option<Pending> {
        let key = p
            .req
            .ops
            .first()
            .map(|op| op.key.clone())
            .unwrap_or_default();
        let current = self.store.snapshot().and_then(|s| s.revision_of(&key));
        match current {
            Ok(Some(revision)) => {
                for op in &mut p.req.ops {
                    op.if_revision = Some(revision);
                }
                p.req.must_exist = false;
                Some(p)
            }
            Ok(None) => {
                let _ = p.reply.send(Err(Error::PreconditionFailed {
                    line: None,
                    key: show_key(&key),
                    expected: "any (If-Match: *)".into(),
                    current: None,
                }));
                None
            }
            Err(e) => {
                let _ = p.reply.send(Err(e));
                None
            }
        }
    }

    /// One redb transaction for the requests, logged before it commits.
    fn apply(&mut self, requests: &[Vec<Op>]) -> Result<Vec<Result<Applied>>> {
        let Some(wal) = self.wal.as_mut() else {
            return Err(Error::Storage("the write-ahead log is closed".into()));
        };
        let metrics = &self.metrics;
        // Readers learn that a commit is coming before it does.
        let result = wal.commit_group(&self.store, requests, self.max_value_bytes, |revision| {
            metrics.committing(revision)
        });
        if wal.is_broken() {
            self.failed = Some(
                "the write-ahead log could not be repaired after a failed write; \
                 restart kvr serve"
                    .into(),
            );
        }
        result
    }

    fn checkpoint_due(&mut self) -> bool {
        let Some(pending) = self.wal.as_ref().map(Wal::pending_bytes) else {
            return false;
        };
        let due = pending >= CHECKPOINT_BYTES
            || (pending > 0 && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL);
        if due && self.disk_full && !self.has_room(pending) {
            // Counts as an attempt: look again an interval later, not in a
            // busy loop.
            self.last_checkpoint = Instant::now();
            return false;
        }
        due
    }

    /// Whether the database's filesystem has room for a checkpoint of
    /// `pending` log bytes (true when that cannot be told).
    fn has_room(&self, pending: u64) -> bool {
        let dir = self
            .store
            .path()
            .parent()
            .unwrap_or(std::path::Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        };
        rustix::fs::statvfs(dir).map_or(true, |st| {
            st.f_bavail.saturating_mul(st.f_frsize) >= pending + CHECKPOINT_ROOM
        })
    }

    fn checkpoint(&mut self) -> bool {
        self.last_checkpoint = Instant::now();
        let result = self
            .store
            .checkpoint()
            .and_then(|_| match self.wal.as_mut() {
                Some(wal) => wal.checkpointed(),
                None => Ok(()),
            });
        match result {
            Ok(()) => {
                self.metrics.checkpointed();
                self.disk_full = false;
                true
            }
            Err(e) => {
                // The log keeps every record; the next checkpoint retries.
                log!("kvr serve: checkpoint failed: {e}");
                self.disk_full = matches!(e, Error::DiskFull { .. });
                self.suspect = true;
                let _ = self.heal();
                false
            }
        }
    }

    /// After a failed commit or checkpoint. An I/O error inside a redb
    /// commit (a full disk) makes redb refuse every later read and write
    /// until the file is reopened: then reopen it and replay the log onto
    /// its last durable commit. The log itself is unchanged, and the next
    /// checkpoint, once there is room, makes everything durable.
    fn heal(&mut self) -> Result<()> {
        if !self.store.refuses_writes() {
            self.suspect = false;
            return Ok(());
        }
        let dir = crate::wal::dir_of(self.store.path());
        let replayed = self
            .store
            .reopen()
            .and_then(|()| crate::wal::replay(&self.store, &dir));
        match replayed {
            Ok(r) => {
                self.store.reopened();
                log!(
                    "kvr serve: reopened the database after an I/O error; replayed {} \
                     write-ahead log records up to revision {}",
                    r.records,
                    r.revision
                );
                self.suspect = false;
                Ok(())
            }
            Err(e) => {
                log!("kvr serve: cannot reopen the database after an I/O error: {e}");
                Err(e)
            }
        }
    }

    /// Final checkpoint; the log is deleted only when it succeeded.
    fn finish(mut self) {
        while let Ok(job) = self.rx.try_recv() {
            if let Job::Write(p) = job {
                self.metrics.queue_left();
                let _ = p.reply.send(Err(shutting_down()));
            }
        }
        if self.failed.is_none()
            && !self.suspect
            && self.checkpoint()
            && let Some(wal) = self.wal.take()
            && let Err(e) = wal.remove()
        {
            log!("kvr serve: cannot remove the write-ahead log: {e}");
        }
    }
}

fn reply_all(chunk: Vec<Pending>, err: impl Fn() -> Error) {
    for p in chunk {
        let _ = p.reply.send(Err(err()));
    }
}

/// The same error for every request of a failed group.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::DiskFull { context } => Error::DiskFull {
            context: context.clone(),
        },
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::TooLarge { message } => Error::TooLarge {
            message: message.clone(),
        },
        other => Error::Storage(other.to_string()),
    }
}
