//! The group-commit writer: one thread owns every write of the server.
//!
//! Handlers put their request in a bounded queue ([`Writer::write`]); when
//! the queue is full they get `overloaded` at once. The thread takes every
//! request waiting (up to [`MAX_GROUP_REQUESTS`] / [`MAX_GROUP_BYTES`]) and
//! applies them through the engine ([`EngineWriter::write_group`]): logged
//! with one sync, then inserted into the memory table. Only then are the
//! requests answered, each with its own outcome: nothing is acknowledged
//! before it is durable, and a failed condition fails only its own request.
//! The answers of a group go to a reply task in the runtime in one message
//! (one cross-thread wake per group, not per request). Between groups it
//! freezes the memory table for a flush when one is due; redb is written by
//! the engine's flush thread, never here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::limits::overloaded;
use super::metrics::Metrics;
use crate::engine::{EngineWriter, Request, copy_error};
use crate::error::{Error, Result};
use crate::types::{Applied, Op};

/// Most requests in one group. Past a few hundred the fsync is amortized
/// already, and a bounded group keeps the latency of its first request low.
pub const MAX_GROUP_REQUESTS: usize = 1024;
/// Most request bytes in one group (a group always takes at least one
/// request, and stops once past this): a group's memory stays bounded,
/// and several groups of big values fit in one log segment, which then
/// rotates to a ready spare. At 64 MiB each group of 1 MiB PUTs made a
/// segment of its own size on the writer's path: with a 0.5 s fsync they
/// waited 11 s each. A sync is amortized long before this.
pub const MAX_GROUP_BYTES: usize = 4 << 20;
const _: () = assert!(MAX_GROUP_BYTES as u64 <= crate::wal::SEGMENT_BYTES / 4);
/// The standing queue delay above which new writes are refused before
/// their body is parsed (see [`Writer::admit`]). A group commit takes one
/// fsync, about 1 to 4 ms here, so a few groups of waiting is normal; more
/// only adds latency to every accepted request without adding throughput.
pub const QUEUE_DELAY_TARGET: Duration = Duration::from_millis(10);
/// Requests that may always wait, whatever the delay: about one group at
/// the 64 clients the server is tuned for.
const QUEUE_FLOOR: usize = 64;

/// How long an idle writer with nothing to flush sleeps between looks.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// A write as handlers submit it.
#[derive(Debug, Default)]
pub struct WriteRequest {
    pub ops: Vec<Op>,
    /// `If-Match: *` (or a DELETE's `If-Match: "0"`): the (single) key must
    /// exist when the request applies.
    pub must_exist: bool,
    /// `DELETE /v1/range`: the range, and the most keys it may delete.
    pub delete_range: Option<(crate::types::RangeQuery, usize)>,
    /// Sent with an `Idempotency-Key` (see `crate::idempotency`); boxed,
    /// so queued writes without one stay small.
    pub idempotency: Option<Box<crate::idempotency::Claim>>,
}

struct Pending {
    req: WriteRequest,
    bytes: usize,
    queued_at: Instant,
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
    /// The writer thread's queue; `None` in cluster mode.
    tx: Option<SyncSender<Job>>,
    /// Cluster mode: writes go through Raft instead.
    cluster: Option<Arc<crate::cluster::node::Node>>,
    queue_size: usize,
    /// Shared with the thread: how long the last group's oldest request
    /// waited in the queue, and how many wait now (see [`Writer::admit`]).
    queue: Arc<QueueState>,
    closing: AtomicBool,
    metrics: Arc<Metrics>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct QueueState {
    waiting: std::sync::atomic::AtomicUsize,
    delay_us: std::sync::atomic::AtomicU64,
}

impl Writer {
    /// Starts the writer thread over the engine's writer.
    pub fn start(engine: EngineWriter, queue_size: usize, metrics: Arc<Metrics>) -> Result<Writer> {
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
        let queue = Arc::new(QueueState::default());
        let worker = Worker {
            answers,
            queue: queue.clone(),
            engine: Some(engine),
            rx,
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("kvr-writer".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::io("cannot start the writer thread", e))?;
        Ok(Writer {
            tx: Some(tx),
            cluster: None,
            queue_size,
            queue,
            closing: AtomicBool::new(false),
            metrics,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The writer of a cluster member: each write is proposed to the
    /// cluster (by the leader; a follower forwards it), at most
    /// `queue_size` at a time.
    pub fn replicated(
        node: Arc<crate::cluster::node::Node>,
        queue_size: usize,
        metrics: Arc<Metrics>,
    ) -> Writer {
        // A round of Raft entries is the cluster's group commit: its
        // writes share one log append and sync on a majority.
        let m = metrics.clone();
        node.observe_rounds(Box::new(move |writes, took| {
            m.group_committed(writes, took)
        }));
        Writer {
            tx: None,
            cluster: Some(node),
            queue_size,
            queue: Arc::new(QueueState::default()),
            closing: AtomicBool::new(false),
            metrics,
            thread: Mutex::new(None),
        }
    }

    /// Whether a new write would be taken, checked before its body is
    /// parsed so that a refusal costs next to nothing: `overloaded` when the queue
    /// is full, or when more than `QUEUE_FLOOR` (64) requests wait and the
    /// last group's oldest waited over [`QUEUE_DELAY_TARGET`] (a standing
    /// queue: refusing keeps the latency of accepted writes near that of a
    /// lightly loaded server instead of growing with the number of clients).
    pub fn admit(&self) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(shutting_down());
        }
        let waiting = self.queue.waiting.load(Ordering::Relaxed);
        let delay = Duration::from_micros(self.queue.delay_us.load(Ordering::Relaxed));
        match refusal(waiting, delay, self.queue_size) {
            Some(e) => {
                self.metrics.rejected();
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Queues a write and waits for its outcome; `overloaded` at once when
    /// the queue is full.
    pub async fn write(&self, req: WriteRequest) -> Result<Applied> {
        if self.closing.load(Ordering::Acquire) {
            return Err(shutting_down());
        }
        if let Some(node) = &self.cluster {
            return self.write_replicated(node, req).await;
        }
        let Some(tx) = &self.tx else {
            return Err(shutting_down());
        };
        let bytes = req.ops.iter().map(Op::mem_bytes).sum();
        let (reply, answer) = oneshot::channel();
        self.metrics.queue_entered();
        self.queue.waiting.fetch_add(1, Ordering::Relaxed);
        let pending = Pending {
            req,
            bytes,
            queued_at: Instant::now(),
            reply,
        };
        match tx.try_send(Job::Write(pending)) {
            Ok(()) => {}
            Err(e) => {
                self.metrics.queue_left();
                self.queue.waiting.fetch_sub(1, Ordering::Relaxed);
                return Err(match e {
                    TrySendError::Full(_) => {
                        self.metrics.rejected();
                        overloaded(self.queue_size)
                    }
                    TrySendError::Disconnected(_) => shutting_down(),
                });
            }
        }
        answer.await.unwrap_or_else(|_| Err(shutting_down()))
    }

    async fn write_replicated(
        &self,
        node: &Arc<crate::cluster::node::Node>,
        req: WriteRequest,
    ) -> Result<Applied> {
        let waiting = self.queue.waiting.fetch_add(1, Ordering::Relaxed);
        if waiting >= self.queue_size {
            self.queue.waiting.fetch_sub(1, Ordering::Relaxed);
            self.metrics.rejected();
            return Err(overloaded(self.queue_size));
        }
        self.metrics.queue_entered();
        let outcome = node
            .write(crate::engine::Request {
                ops: req.ops,
                must_exist: req.must_exist,
                delete_range: req.delete_range,
                idempotency: req.idempotency.map(|c| *c),
            })
            .await;
        self.metrics.queue_left();
        self.queue.waiting.fetch_sub(1, Ordering::Relaxed);
        outcome
    }

    /// Stops taking writes, lets the thread finish what is queued,
    /// checkpoint and delete the log. Blocks until it is done.
    pub fn stop(&self) {
        self.closing.store(true, Ordering::Release);
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Stop);
        }
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

/// Sets or clears why the log takes no write, which makes the server not
/// ready (`/readyz`): it or the file lost its name, or it cannot start a
/// segment ([`EngineWriter::log_lost`]); or it could not void the failed
/// write `failed` ([`EngineWriter::is_broken`]), and takes none until it
/// can.
fn update_log_trouble(engine: &EngineWriter, failed: Option<&Error>) {
    let troubled = engine.engine().log_trouble().is_some();
    let why = engine.log_lost().or_else(|| {
        let failed = failed.filter(|_| engine.is_broken())?;
        Some(format!(
            "the write-ahead log cannot void a failed write ({failed}); no write is taken until \
             it can, tried again at each write"
        ))
    });
    match why {
        Some(why) if !troubled => {
            log!("kvr serve: {why}");
            engine.engine().set_log_trouble(Some(why));
        }
        None if troubled && !engine.is_broken() => {
            log!("kvr serve: the write-ahead log works again; writes are taken");
            engine.engine().set_log_trouble(None);
        }
        _ => {}
    }
}

struct Worker {
    /// The reply task, when the writer was started inside a tokio runtime.
    answers: Option<tokio::sync::mpsc::UnboundedSender<Answers>>,
    queue: Arc<QueueState>,
    engine: Option<EngineWriter>,
    rx: Receiver<Job>,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(mut self) {
        loop {
            let mut group = Vec::new();
            let stop = self.collect(&mut group);
            if !group.is_empty() {
                let size = group.len();
                let started = std::time::Instant::now();
                if self.commit(group) {
                    self.metrics.group_committed(size, started.elapsed());
                }
            }
            if stop {
                break;
            }
            self.check_log();
            if let Some(engine) = self.engine.as_mut()
                && let Err(e) = engine.maybe_freeze()
            {
                log!("kvr serve: cannot start a new log segment for a flush: {e}");
            }
        }
        self.finish();
    }

    /// Looks at the log between groups, also while no write comes (see
    /// `EngineWriter::check_log`): a log deleted after the last write has
    /// that write flushed and the server not ready, without waiting for a
    /// write that may never come; a log that works again makes it ready.
    fn check_log(&mut self) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        engine.check_log();
        update_log_trouble(engine, None);
    }

    /// Waits for the next job, then takes whatever else is queued. Returns
    /// true when the server is stopping.
    fn collect(&mut self, group: &mut Vec<Pending>) -> bool {
        let wait = self.engine.as_ref().map_or(IDLE_WAIT, |e| {
            let freeze = e.freeze_due_in().unwrap_or(IDLE_WAIT);
            e.check_log_in().map_or(freeze, |check| check.min(freeze))
        });
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
        self.queue.waiting.fetch_sub(1, Ordering::Relaxed);
        if group.is_empty() {
            let waited = u64::try_from(p.queued_at.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.queue.delay_us.store(waited, Ordering::Relaxed);
        }
        let bytes = p.bytes;
        group.push(p);
        bytes
    }

    /// Applies a group through the engine: logged with one sync, then
    /// visible, then answered, each request with its own outcome.
    /// Commits a group and answers its requests; false if it failed.
    fn commit(&mut self, group: Vec<Pending>) -> bool {
        let Some(engine) = self.engine.as_mut() else {
            reply_all(group, shutting_down);
            return false;
        };
        let mut requests = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        for p in group {
            requests.push(Request {
                ops: p.req.ops,
                must_exist: p.req.must_exist,
                delete_range: p.req.delete_range,
                idempotency: p.req.idempotency.map(|c| *c),
            });
            replies.push(p.reply);
        }
        let result = engine.write_group(requests);
        let was_broken = engine.engine().log_trouble().is_some();
        // Before the answers, so that a client refused for it finds the
        // server not ready.
        update_log_trouble(engine, result.as_ref().err());
        match result {
            Ok(outcomes) => {
                self.answer(replies.into_iter().zip(outcomes).collect());
                true
            }
            Err(e) => {
                if !was_broken {
                    // Each group fails alike on a full disk: once a second.
                    super::log::event_at_most(
                        "write group",
                        Duration::from_secs(1),
                        format_args!("kvr serve: a write group failed: {e}"),
                    );
                }
                for reply in replies {
                    let _ = reply.send(Err(copy_error(&e)));
                }
                false
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

    /// Answers what is still queued, then lets the engine flush everything
    /// and delete the log (kept when a flush failed: recovery replays it).
    fn finish(mut self) {
        while let Ok(job) = self.rx.try_recv() {
            if let Job::Write(p) = job {
                self.metrics.queue_left();
                self.queue.waiting.fetch_sub(1, Ordering::Relaxed);
                let _ = p.reply.send(Err(shutting_down()));
            }
        }
        if let Some(engine) = self.engine.take()
            && !engine.close()
        {
            log!("kvr serve: not everything was flushed; the next start replays the log");
        }
    }
}

/// Why a new write is refused with `waiting` writes queued and the last
/// group's oldest having waited `delay` (see [`Writer::admit`]), if it is.
fn refusal(waiting: usize, delay: Duration, queue_size: usize) -> Option<Error> {
    if waiting >= queue_size {
        return Some(overloaded(queue_size));
    }
    (waiting > QUEUE_FLOOR && delay > QUEUE_DELAY_TARGET).then(|| Error::Unavailable {
        message: format!(
            "the server is overloaded: {waiting} writes are waiting, and the oldest write of \
             the last group waited {} ms for the writer (a standing queue: more than {} \
             waiting, over {} ms); retry later",
            delay.as_millis(),
            QUEUE_FLOOR,
            QUEUE_DELAY_TARGET.as_millis()
        ),
        overloaded: true,
    })
}

fn reply_all(chunk: Vec<Pending>, err: impl Fn() -> Error) {
    for p in chunk {
        let _ = p.reply.send(Err(err()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: Option<Error>) -> Option<String> {
        e.map(|e| match e {
            Error::Unavailable {
                message,
                overloaded: true,
            } => message,
            other => panic!("not overloaded: {other:?}"),
        })
    }

    #[test]
    fn a_full_queue_and_a_standing_one_are_refused_each_saying_why() {
        let ms = Duration::from_millis;
        // Under both bounds, or a long wait with few waiting: taken.
        assert!(refusal(64, ms(500), 1024).is_none());
        assert!(refusal(200, ms(10), 1024).is_none());
        // The queue full: its size is named.
        let full = message(refusal(1024, ms(0), 1024)).unwrap();
        assert!(full.contains("1024 writes are waiting"), "{full}");
        assert!(full.contains("--queue-size"), "{full}");
        // A standing queue: the figures of that rule, not --queue-size.
        let standing = message(refusal(200, ms(37), 1024)).unwrap();
        assert!(
            standing.contains("200 writes are waiting") && standing.contains("waited 37 ms"),
            "{standing}"
        );
        assert!(!standing.contains("--queue-size"), "{standing}");
    }
}
