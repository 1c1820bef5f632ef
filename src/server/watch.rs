//! `GET /v1/watch` (SPEC "Watch: a change feed"): an NDJSON stream of the
//! events after a revision, filtered by range, prefix or key.
//!
//! A stream is one task with a [`Subscription`]: it sends
//! `{"progress_revision":R}` first, then reads events from the engine a
//! page at a time (from memory tables in the task, or [`Engine::events`]
//! on a blocking thread when the stored history is needed) and, once it
//! has sent everything, sleeps until the engine's dispatcher wakes it for
//! a group that touched its keys, or its progress timer fires. An idle
//! watcher costs a timer and its connection, nothing per write.
//!
//! Writers never wait for a watcher. Lines go to the connection through
//! an [`Outbox`] bounded in bytes, per watcher and for all watchers of the
//! server together ([`Limits`]): a watcher whose outbox is full stops
//! reading and later reads on from the history (it falls behind, it is
//! not cut off). Only under memory pressure (the outboxes together at the
//! bound) does a stream whose own outbox is full and whose connection took
//! nothing for [`STALLED`] end: the lines it still holds are dropped from
//! the first one that starts a request, and
//! `{"error":"lagging","next_revision":N}` takes their place, N being the
//! first revision not delivered. The events of one request go out in one
//! chunk (a request larger than a page in consecutive chunks, never
//! dropped in part), so a stream never ends inside one. If the history no
//! longer has the events a stream needs next, it also ends with `lagging`.
//! A server that stops ends its streams with
//! `{"error":"unavailable","next_revision":N}`; a stream whose task fails
//! breaks off (the chunked body never ends cleanly), so no client takes
//! it for one that ended.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, Uri, header};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::Notify;

use super::State;
use super::body::Body;
use super::routes::REVISION;
use super::target::Query;
use crate::engine::history::Event;
use crate::engine::{Engine, Events, Subscription};
use crate::error::{Error, Result};
use crate::limits::MAX_WATCH_PROGRESS_SECS;

/// Seconds without an event before a progress line (SPEC default).
const DEFAULT_PROGRESS_SECS: u64 = 10;
/// Events read from the engine at a time.
const PAGE_EVENTS: usize = 1024;
/// Pause between two reads of one watcher, per watcher the last dispatch
/// woke: when a group concerns many watchers, each reads at most every
/// (woken × this), so their wake-ups together stay near 50,000 a second
/// instead of one per watcher per group (1,000 watchers of every key: 20
/// ms, at most that much added latency; one watcher: none to speak of).
const PACE_PER_WATCHER: Duration = Duration::from_micros(20);
/// The longest such pause.
const MAX_PACE: Duration = Duration::from_millis(50);
/// Default bound on the bytes of watch lines the server holds for
/// connections that have not taken them yet, all watchers together: a
/// few dozen stalled clients at their own bound. Beyond it, streams whose
/// own outbox is full end with `lagging` (see the module header).
pub const WATCH_MEMORY_BYTES: usize = 64 << 20;
/// The most one watcher's outbox holds before it stops reading (plus the
/// page it read last): a megabyte covers any burst a reading client
/// keeps up with, and more would only delay reading from the history.
pub const WATCHER_BYTES: usize = 1 << 20;
/// How long a connection with a full outbox has taken nothing before it
/// counts as stalled, and may be ended under pressure: a reading client
/// takes a megabyte in far less.
const STALLED: Duration = Duration::from_secs(1);
/// Overrides [`WATCH_MEMORY_BYTES`] (tests, tuning); each watcher then
/// holds at most a quarter of it, [`WATCHER_BYTES`] at most.
pub const WATCH_MEMORY_ENV: &str = "KVR_WATCH_MEMORY";

/// The outbox bounds in force.
#[derive(Debug, Clone, Copy)]
struct Limits {
    total: usize,
    each: usize,
}

static LIMITS: LazyLock<Limits> = LazyLock::new(|| {
    let total = std::env::var(WATCH_MEMORY_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(WATCH_MEMORY_BYTES);
    Limits {
        total,
        each: (total / 4).clamp(1, WATCHER_BYTES),
    }
});

/// Wakes watchers waiting for room when outboxes shrink, and stalled ones
/// when they fill up to [`Limits::total`]. (One for the process: a wake
/// for another server's watchers only costs a look.)
static ROOM: Notify = Notify::const_new();

/// What one watch asks for.
struct Watch {
    bounds: Option<(Vec<u8>, Option<Vec<u8>>)>,
    keys_only: bool,
    progress: Duration,
}

impl Watch {
    fn wants(&self, key: &[u8]) -> bool {
        match &self.bounds {
            Some((lower, upper)) => {
                key >= lower.as_slice() && upper.as_deref().is_none_or(|u| key < u)
            }
            None => false,
        }
    }
}

pub fn handle(state: &Arc<State>, uri: &Uri) -> Result<Response<Body>> {
    let params = Query::parse(uri.query())?;
    // The parameters were checked against `ROUTES` already.
    let query = super::range::bounds_of(&params);
    query.validate()?;
    let progress = params.number("progress")?.unwrap_or(DEFAULT_PROGRESS_SECS);
    if !(1..=MAX_WATCH_PROGRESS_SECS).contains(&progress) {
        return Err(Error::invalid(format!(
            "progress must be 1 to {MAX_WATCH_PROGRESS_SECS} seconds"
        )));
    }
    let watch = Watch {
        bounds: query.bounds(),
        keys_only: params.flag("keys_only")?,
        progress: Duration::from_secs(progress),
    };
    let from_revision = match params.number("from_revision")? {
        Some(0) => return Err(Error::invalid("from_revision must be 1 or more")),
        r => r,
    };
    let engine = state.engine.clone();
    // Registered before the revision is read: the dispatcher tells it of
    // every later event it wants.
    let mut sub = engine.watch(watch.bounds.clone());
    let current = engine.revision();
    sub.read_through(current);
    let from = from_revision.unwrap_or(current + 1);
    let oldest = engine.oldest_revision();
    if from <= current && from < oldest {
        return Err(Error::Compacted {
            requested: from,
            oldest,
            resumed: false,
        });
    }
    let outbox = Arc::new(Outbox::new(engine.clone()));
    let closing = state.closing.subscribe();
    let open = Open::new(state.watchers.clone());
    let producer = Producer(outbox.clone());
    let cluster = state.cluster.clone();
    let peer = super::conn::peer();
    tokio::spawn(async move {
        let _open = open;
        let ends = Ends { closing, peer };
        let _ = run(&engine, &watch, sub, from, ends, &producer.0, cluster).await;
    });
    let mut resp = Response::new(OutboxBody(outbox).boxed_unsync());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(REVISION, HeaderValue::from(current));
    Ok(resp)
}

/// Counts an open watch while it lives.
struct Open(Arc<std::sync::atomic::AtomicUsize>);

impl Open {
    fn new(count: Arc<std::sync::atomic::AtomicUsize>) -> Open {
        count.fetch_add(1, Ordering::Relaxed);
        Open(count)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a stream stopped.
enum Stop {
    /// The client went away, the server stops, or the stream ended.
    Gone,
}

/// How often a watch looks whether its client went away: hyper notices
/// only at a write, which a watch asking for progress lines once a day
/// (`?progress=86400`) would not make for a day, holding its connection
/// and its place under `--max-connections` meanwhile (audit finding).
const PEER_CHECK: Duration = Duration::from_secs(5);

/// What ends a stream besides its own end: the server stopping, and its
/// client going away.
struct Ends {
    closing: tokio::sync::watch::Receiver<bool>,
    peer: Option<super::conn::Peer>,
}

/// The stream's loop: see the module header. `from` is the first revision
/// to send.
async fn run(
    engine: &Arc<Engine>,
    watch: &Watch,
    mut sub: Subscription,
    from: u64,
    ends: Ends,
    out: &Outbox,
    cluster: Option<Arc<crate::cluster::node::Node>>,
) -> std::result::Result<(), Stop> {
    use super::conn::PeerState;
    let Ends { mut closing, peer } = ends;
    let mut peer_at = tokio::time::Instant::now() + PEER_CHECK;
    let mut next = from;
    // A cluster member without a leader for longer than the maximum
    // election timeout ends the stream (SPEC "Watch"): its client resumes
    // on another node instead of waiting on one that may be cut off.
    let check_every = cluster
        .as_ref()
        .map_or(Duration::from_secs(3600), |n| n.election_max() / 4);
    let mut leaderless_since: Option<tokio::time::Instant> = None;
    // A deadline, not a fresh timer per wake-up: a watcher woken more
    // often than `check_every` would otherwise never check.
    let mut check_at = tokio::time::Instant::now() + check_every;
    out.push(progress_line(next - 1), Some(next))?;
    let mut last_sent = tokio::time::Instant::now();
    let mut last_read = tokio::time::Instant::now();
    // The last chunk ended inside a request: the next one goes whatever
    // the bounds, and may not be dropped.
    let mut mid = false;
    loop {
        // Every event the dispatcher found for this watcher.
        loop {
            next = sub.advance(next);
            if next > sub.claimed() || next > engine.revision() {
                break;
            }
            if !mid {
                out.room(next, &mut closing).await?;
            }
            last_read = tokio::time::Instant::now();
            let (chunk, first, upto, complete) = match read_memory(engine, watch, &sub, next) {
                Some(page) if page.upto < next => break,
                Some(page) => (page.chunk, page.first, page.upto, page.complete),
                None => match read_stored(engine, next).await {
                    Stored::Events(events) => {
                        let (lines, first, upto, complete) = render(watch, &events, LIMITS.each);
                        (Bytes::from(lines), first, upto, complete)
                    }
                    Stored::Nothing => break,
                    Stored::Gone => {
                        out.end_lagging(next);
                        return Err(Stop::Gone);
                    }
                    Stored::Failed => return Err(Stop::Gone),
                },
            };
            next = upto + 1;
            if let Some(first) = first {
                out.push(chunk, (!mid).then_some(first))?;
                last_sent = tokio::time::Instant::now();
            }
            mid = !complete;
        }
        let progress_due = last_sent + watch.progress;
        tokio::select! {
            () = sub.woken() => {
                // (The timer's resolution is a millisecond: a shorter pace is none.)
                let pace = (PACE_PER_WATCHER * sub.active() as u32).min(MAX_PACE);
                if pace >= Duration::from_millis(1) {
                    tokio::time::sleep_until(last_read + pace).await;
                }
            }
            () = tokio::time::sleep_until(progress_due) => {
                next = sub.advance(next);
                // A client that has not taken the last lines needs no news.
                if out.is_empty() && !mid {
                    out.push(progress_line(next - 1), Some(next))?;
                }
                last_sent = tokio::time::Instant::now();
            }
            () = tokio::time::sleep_until(check_at), if cluster.is_some() => {
                check_at = tokio::time::Instant::now() + check_every;
                let Some(node) = &cluster else { continue };
                if node.has_leader() {
                    leaderless_since = None;
                    continue;
                }
                let since = *leaderless_since.get_or_insert_with(tokio::time::Instant::now);
                // Between requests only: a request is never split.
                if since.elapsed() > node.election_max() && !mid {
                    next = sub.advance(next);
                    out.end_with(unavailable_line(next));
                    return Err(Stop::Gone);
                }
            }
            () = tokio::time::sleep_until(peer_at), if peer.is_some() => {
                peer_at = tokio::time::Instant::now() + PEER_CHECK;
                match peer.as_ref().map(super::conn::Peer::state) {
                    Some(PeerState::Gone) => return Err(Stop::Gone),
                    // Gone, or a client that shut its side and reads on
                    // (`nc -N`): a progress line tells them apart (a closed
                    // socket answers it with a reset).
                    Some(PeerState::Shut) if out.is_empty() && !mid => {
                        next = sub.advance(next);
                        out.push(progress_line(next - 1), Some(next))?;
                        last_sent = tokio::time::Instant::now();
                    }
                    _ => {}
                }
            }
            _ = closing.changed() => {
                // The server stops: say where to resume, as a node without
                // a leader does. Inside a request the body breaks off
                // instead (the producer ends without an end).
                if !mid {
                    out.end_with(unavailable_line(sub.advance(next)));
                }
                return Err(Stop::Gone);
            }
            () = out.closed() => return Err(Stop::Gone),
        }
    }
}

/// The line that ends the stream of a node without a leader, or of a
/// server that stops: where to resume (on another node, or after the
/// restart).
fn unavailable_line(next: u64) -> String {
    format!("{{\"error\":\"unavailable\",\"next_revision\":{next}}}\n")
}

/// A page of lines read from the memory tables (see [`read_memory`]).
#[derive(Clone)]
struct Page {
    chunk: Bytes,
    /// The first revision among the lines (`None`: no line).
    first: Option<u64>,
    /// The last revision covered.
    upto: u64,
    /// Whether it ends a request.
    complete: bool,
}

/// One [`Page`] as watchers of the same keys at the same position read
/// it.
struct Shared {
    hub: u64,
    bounds: Option<(Vec<u8>, Option<Vec<u8>>)>,
    keys_only: bool,
    next: u64,
    page: Page,
}

/// The pages read last, for other watchers of the same keys at the same
/// position: when a write concerns many watchers of one range (all
/// woken by the same round), the first renders the lines, the others
/// send the same bytes. (Events never change, so a page stays right.)
static SHARED: Mutex<VecDeque<Shared>> = Mutex::new(VecDeque::new());
/// Pages kept in [`SHARED`], newest last.
const SHARED_PAGES: usize = 32;
/// Bytes kept in [`SHARED`] at most: a page is at most about an outbox's
/// worth, so this holds a few.
const SHARED_BYTES: usize = 4 << 20;

/// The lines a watch wants from `next` on, from the memory tables (see
/// [`Engine::events_matching`]), or from [`SHARED`] when another watcher of
/// the same keys read them. `None`: not in memory any more.
fn read_memory(engine: &Engine, watch: &Watch, sub: &Subscription, next: u64) -> Option<Page> {
    let hub = sub.hub_id();
    let same = |s: &Shared| {
        s.next == next && s.hub == hub && s.keys_only == watch.keys_only && s.bounds == watch.bounds
    };
    {
        let shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = shared.iter().rev().find(|s| same(s)) {
            return Some(s.page.clone());
        }
    }
    let wants = |key: &[u8]| watch.wants(key);
    let (events, upto, complete) =
        engine.events_matching(next, PAGE_EVENTS, LIMITS.each, &wants)?;
    let mut lines = Vec::new();
    for e in &events {
        let _ = e.write_json(watch.keys_only, &mut lines);
    }
    let page = Page {
        chunk: Bytes::from(lines),
        first: events.first().map(|e| e.revision),
        upto,
        complete,
    };
    // Only a page with lines is worth keeping (and only one that covers
    // something).
    if page.first.is_some() && sub.sharers() > 1 {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if !shared.iter().any(same) {
            shared.push_back(Shared {
                hub,
                bounds: watch.bounds.clone(),
                keys_only: watch.keys_only,
                next,
                page: page.clone(),
            });
            let mut bytes: usize = shared.iter().map(|s| s.page.chunk.len()).sum();
            while shared.len() > SHARED_PAGES || (bytes > SHARED_BYTES && shared.len() > 1) {
                if let Some(old) = shared.pop_front() {
                    bytes -= old.page.chunk.len();
                }
            }
        }
    }
    Some(page)
}

/// What [`read_stored`] found.
enum Stored {
    Events(Vec<Event>),
    /// Nothing applied from there yet.
    Nothing,
    /// The history no longer has it.
    Gone,
    /// Logged.
    Failed,
}

/// A page of events from `from` on, read from the store's history on a
/// blocking thread.
async fn read_stored(engine: &Arc<Engine>, from: u64) -> Stored {
    let read = super::blocking(engine, "watch", move |e| {
        e.events(from, PAGE_EVENTS, LIMITS.each)
    });
    match read.await {
        Ok(Events::Found(events)) if !events.is_empty() => Stored::Events(events),
        Ok(Events::Found(_)) => Stored::Nothing,
        Ok(Events::Gone) => Stored::Gone,
        Err(e) => {
            log!("kvr serve: a watch could not read the history: {e}");
            Stored::Failed
        }
    }
}

/// The lines of the events of `events` a watch wants, cut after the last
/// complete request (a page may end inside one; the rest goes with the
/// next page), or after the first that brings them to `max_bytes` (so
/// a chunk is about an outbox's worth, whatever the values). Returns the lines, the first revision among them (`None`:
/// no line), the last revision covered and whether it ends a request.
fn render(watch: &Watch, events: &[Event], max_bytes: usize) -> (Vec<u8>, Option<u64>, u64, bool) {
    let (mut cut, complete) = match events.iter().rposition(|e| e.batch_end) {
        Some(i) => (i + 1, true),
        // One request larger than a page: send it as it comes.
        None => (events.len(), false),
    };
    let mut out = Vec::new();
    let mut first = None;
    for (i, e) in events[..cut].iter().enumerate() {
        if watch.wants(&e.key) && e.write_json(watch.keys_only, &mut out).is_ok() {
            first = first.or(Some(e.revision));
        }
        if e.batch_end && out.len() >= max_bytes {
            cut = i + 1;
            break;
        }
    }
    let upto = events[..cut].last().map_or(0, |e| e.revision);
    (out, first, upto, complete)
}

fn progress_line(revision: u64) -> Bytes {
    Bytes::from(format!("{{\"progress_revision\":{revision}}}\n"))
}

/// The lines of one stream between its task and its connection, bounded
/// by [`Limits`]; counted in the engine's
/// [`Engine::watch_buffered`].
struct Outbox {
    queue: Mutex<Queue>,
    /// The connection took a chunk, or went away.
    drained: Notify,
    engine: Arc<Engine>,
}

#[derive(Default)]
struct Queue {
    /// Each chunk with the revision to resume from if it and everything
    /// after it are dropped (`None`: it continues a request, keep it).
    chunks: VecDeque<(Bytes, Option<u64>)>,
    bytes: usize,
    /// No more chunks will come: the body ends after these.
    ended: bool,
    /// The stream's task ended without an end line (a failed read, a
    /// panic, a stop inside a request): the body breaks off after these,
    /// so that no client takes it for a complete stream.
    aborted: bool,
    /// The connection is gone.
    gone: bool,
    waker: Option<Waker>,
    /// Since when the connection has had lines to take and took none:
    /// its last take, or the push into an empty queue.
    waiting: Option<tokio::time::Instant>,
}

impl Outbox {
    fn new(engine: Arc<Engine>) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue::default()),
            drained: Notify::new(),
            engine,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_empty(&self) -> bool {
        self.lock().chunks.is_empty()
    }

    /// Queues a chunk for the connection (see [`Queue::chunks`] for
    /// `resume`).
    fn push(&self, chunk: Bytes, resume: Option<u64>) -> std::result::Result<(), Stop> {
        let mut q = self.lock();
        if q.gone || q.ended {
            return Err(Stop::Gone);
        }
        let len = chunk.len();
        if q.chunks.is_empty() {
            q.waiting = Some(tokio::time::Instant::now());
        }
        q.bytes += len;
        q.chunks.push_back((chunk, resume));
        let before = self
            .engine
            .watch_buffered()
            .fetch_add(len, Ordering::AcqRel);
        if let Some(w) = q.waker.take() {
            w.wake();
        }
        drop(q);
        if before < LIMITS.total && before + len >= LIMITS.total {
            // Pressure: stalled watchers end (see `room`).
            ROOM.notify_waiters();
        }
        Ok(())
    }

    /// Forgets `len` bytes taken from or dropped by an outbox.
    fn release(&self, len: usize) {
        let before = self
            .engine
            .watch_buffered()
            .fetch_sub(len, Ordering::AcqRel);
        if before >= LIMITS.total {
            ROOM.notify_waiters();
        }
    }

    /// Waits until this stream may read another page (it is between
    /// requests, `next` being the first revision not read): its outbox is
    /// below its own bound and all outboxes together below theirs. Under
    /// memory pressure, a stream whose own outbox is full ends instead.
    async fn room(
        &self,
        next: u64,
        closing: &mut tokio::sync::watch::Receiver<bool>,
    ) -> std::result::Result<(), Stop> {
        let limits = *LIMITS;
        loop {
            let room = ROOM.notified();
            let drained = self.drained.notified();
            tokio::pin!(room, drained);
            room.as_mut().enable();
            let mut stalled_at = None;
            {
                let q = self.lock();
                if q.gone {
                    return Err(Stop::Gone);
                }
                let total = self.engine.watch_buffered().load(Ordering::Acquire);
                if q.bytes < limits.each && total < limits.total {
                    return Ok(());
                }
                if q.bytes >= limits.each && total >= limits.total {
                    let since = q.waiting.unwrap_or_else(tokio::time::Instant::now);
                    if since.elapsed() >= STALLED {
                        drop(q);
                        self.end_lagging(next);
                        return Err(Stop::Gone);
                    }
                    stalled_at = Some(since + STALLED);
                }
            }
            let stall = async {
                match stalled_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = room => {}
                () = drained => {}
                () = stall => {}
                _ = closing.changed() => {
                    self.end_with(unavailable_line(next));
                    return Err(Stop::Gone);
                }
            }
        }
    }

    /// Ends the stream with `line`, after what is queued.
    fn end_with(&self, line: String) {
        let mut q = self.lock();
        self.push_last(&mut q, line);
    }

    /// Ends the stream with `lagging`: drops the queued chunks from the
    /// first that starts a request (`next`, the first revision not read,
    /// if none does) and says where to resume.
    fn end_lagging(&self, next: u64) {
        let mut q = self.lock();
        let mut resume = next;
        if let Some(i) = q.chunks.iter().position(|(_, r)| r.is_some()) {
            resume = q.chunks[i].1.unwrap_or(next);
            let dropped: usize = q.chunks.drain(i..).map(|(c, _)| c.len()).sum();
            q.bytes -= dropped;
            self.release(dropped);
        }
        let line = format!("{{\"error\":\"lagging\",\"next_revision\":{resume}}}\n");
        self.push_last(&mut q, line);
    }

    /// Queues the stream's last line and marks it ended. Counted like any
    /// line: the body releases what it takes.
    fn push_last(&self, q: &mut Queue, line: String) {
        q.bytes += line.len();
        self.engine
            .watch_buffered()
            .fetch_add(line.len(), Ordering::AcqRel);
        q.chunks.push_back((Bytes::from(line), None));
        q.ended = true;
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    /// Resolves when the connection is gone.
    async fn closed(&self) {
        loop {
            let drained = self.drained.notified();
            if self.lock().gone {
                return;
            }
            drained.await;
        }
    }
}

/// The stream task's end of an outbox: when the task ends, so does the
/// body (after what it holds): cleanly after an end line, broken off
/// without one.
struct Producer(Arc<Outbox>);

impl Drop for Producer {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.aborted = !q.ended;
        q.ended = true;
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }
}

/// The connection's end of an outbox: the response body.
struct OutboxBody(Arc<Outbox>);

impl http_body::Body for OutboxBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        let outbox = &self.0;
        let mut q = outbox.lock();
        match q.chunks.pop_front() {
            Some((chunk, _)) => {
                q.bytes -= chunk.len();
                q.waiting = Some(tokio::time::Instant::now());
                drop(q);
                outbox.release(chunk.len());
                outbox.drained.notify_one();
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None if q.aborted => Poll::Ready(Some(Err(std::io::Error::other(
                "the watch stream stopped without an end line",
            )))),
            None if q.ended => Poll::Ready(None),
            None => {
                q.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for OutboxBody {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.gone = true;
        let held = std::mem::take(&mut q.bytes);
        q.chunks.clear();
        drop(q);
        self.0.release(held);
        self.0.drained.notify_one();
    }
}
