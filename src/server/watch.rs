//! `GET /v1/watch` (SPEC "Watch: a change feed"): an NDJSON stream of the
//! events after a revision, filtered by range, prefix or key.
//!
//! A stream is one task with a [`Subscription`]: it sends
//! `{"progress_revision":R}` first, then reads events from the engine a
//! page at a time (from memory tables in the task, or [`Engine::events`]
//! on a page reader thread when the stored history is needed) and, once it
//! has sent everything, sleeps until the engine's dispatcher wakes it for
//! a group that touched its keys, or its progress timer fires. An idle
//! watcher costs a timer and its connection, nothing per write.
//!
//! Writers never wait for a watcher. Lines go to the connection through
//! an [`Outbox`] bounded in bytes, per watcher and for all watchers of the
//! server together ([`Limits`]): a watcher whose outbox is full stops
//! reading and later reads on from the history (it falls behind, it is
//! not cut off). Only under memory pressure (the outboxes together at the
//! bound) does a stream whose connection had lines to take and took
//! nothing for [`STALLED`] end, whatever its outbox holds: the lines it
//! still holds are dropped from the first request the connection has not
//! begun, and `{"error":"lagging","next_revision":N}` takes their place, N
//! being the first revision not delivered (the rest of the request the
//! connection is in still goes, outside the bound: see
//! [`Outbox::end_lagging`]; a client that takes nothing of a large rest
//! is cut off, see [`Outbox::linger`]). The events of one request go out in one
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
use crate::engine::{Engine, Events, EventsRead, Subscription};
use crate::error::{Error, Result};
use crate::limits::MAX_WATCH_PROGRESS_SECS;

/// Seconds without an event before a progress line (SPEC default).
const DEFAULT_PROGRESS_SECS: u64 = 10;
/// Events read from the engine at a time.
const PAGE_EVENTS: usize = 1024;
/// The room a page of the stored history takes first (a quarter of the
/// bound of all outboxes at most): keys only, or a few values; a page
/// whose next event needs more then waits for that much.
const STORED_PAGE_ROOM: usize = 64 << 10;
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
/// few dozen stalled clients at their own bound. Beyond it, stalled
/// streams end with `lagging` (see the module header).
pub const WATCH_MEMORY_BYTES: usize = 64 << 20;
/// The most one watcher's outbox holds before it stops reading (plus the
/// page it read last): a megabyte covers any burst a reading client
/// keeps up with, and more would only delay reading from the history.
pub const WATCHER_BYTES: usize = 1 << 20;
/// How long a connection with lines to take has taken nothing before it
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
    /// Beyond `total`, for watchers whose connection took all they were
    /// sent: their pages of up to `reserve / 4` (see `Outbox::room`).
    reserve: usize,
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
        reserve: total / 4,
    }
});

/// Wakes watchers waiting for room when outboxes shrink, and stalled ones
/// when they fill up to [`Limits::total`]. (One for the process: a wake
/// for another server's watchers only costs a look.)
static ROOM: Notify = Notify::const_new();

/// What one watch asks for.
#[derive(Clone)]
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
    let peer = super::conn::peer();
    let outbox = Arc::new(Outbox::new(engine.clone(), peer.clone()));
    let closing = state.closing.subscribe();
    let open = Open::new(state.watchers.clone());
    let producer = Producer(outbox.clone());
    let cluster = state.cluster.clone();
    tokio::spawn(async move {
        let _open = open;
        let ends = Ends {
            closing,
            peer: peer.clone(),
        };
        let _ = run(&engine, &watch, sub, from, ends, &producer.0, cluster).await;
        producer.0.linger().await;
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
    out.push_line(progress_line(next - 1), Some(next))?;
    let mut last_sent = tokio::time::Instant::now();
    let mut last_read = tokio::time::Instant::now();
    // The last chunk ended inside a request: the next one goes whatever
    // the bounds, and may not be dropped.
    let mut mid = false;
    // The room a page from the stored history takes (see `read_stored`).
    let mut stored_need = STORED_PAGE_ROOM.min(LIMITS.each);
    loop {
        // Every event the dispatcher found for this watcher.
        loop {
            next = sub.advance(next);
            if next > sub.claimed() || next > engine.revision() {
                break;
            }
            // The page's room, taken before it is read or rendered (see
            // `Outbox::room`).
            let mut find = || find_memory(engine, watch, &sub, next);
            let (room, found) = out
                .room(
                    next,
                    mid,
                    watch.keys_only,
                    stored_need,
                    &mut closing,
                    &mut find,
                )
                .await?;
            last_read = tokio::time::Instant::now();
            let page = match found.map(|found| found.render(watch, &sub, next)) {
                Some(page) if page.upto < next => break,
                Some(page) => page,
                None => match read_stored(engine, watch, next, room.bytes).await {
                    Stored::Events(events) => render(watch, &events, LIMITS.each),
                    // One event takes more room than the page had: the
                    // room goes back, and the page waits for that much,
                    // as do this watcher's pages of the history after it
                    // (their events are likely as large: starting each
                    // at 64 KiB again made catching up on large values
                    // 2.5 times slower).
                    Stored::Needs(bytes) => {
                        stored_need = bytes.saturating_add(LINE_OVERHEAD).min(LIMITS.each);
                        continue;
                    }
                    Stored::Nothing => break,
                    Stored::Gone => {
                        out.end_lagging(next);
                        return Err(Stop::Gone);
                    }
                    Stored::Failed => return Err(Stop::Gone),
                },
            };
            // A page past its room (its last event takes it past the
            // page's bound, or JSON escapes do: six bytes for a control
            // character, base64 a third more) takes the rest at once: so
            // the outboxes together exceed their bound by what rendering
            // added to the pages being queued at that moment (an audit
            // found up to 5 MiB for a page of control characters), and no
            // stream waits for room while it holds some.
            next = page.upto + 1;
            if let Some(first) = page.first {
                out.push(page.chunk, (!mid).then_some(first), page.starts, room)?;
                last_sent = tokio::time::Instant::now();
            }
            mid = !page.complete;
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
                    out.push_line(progress_line(next - 1), Some(next))?;
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
                        out.push_line(progress_line(next - 1), Some(next))?;
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
            // Between requests only, as in `Outbox::room`.
            () = out.stalled(), if !mid => {
                out.end_lagging(sub.advance(next));
                return Err(Stop::Gone);
            }
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
    /// Where a request starts inside the lines (see [`Chunk::starts`]).
    starts: Vec<(usize, u64)>,
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

/// What [`find_memory`] found for a watcher: a page another watcher of
/// the same keys at the same position rendered, or events to render.
enum InMemory {
    Shared(Page),
    Events {
        events: Vec<Event>,
        upto: u64,
        complete: bool,
    },
}

/// The JSON a line adds to an event's key and value, about
/// (`{"revision":N,"op":"put","key":"","value":""}` and a newline).
const LINE_OVERHEAD: usize = 64;

impl InMemory {
    /// The bytes of its lines: exact for a rendered page, and for events
    /// their keys and values (JSON escapes and base64 add more; see
    /// [`Outbox::push`]), so that room is taken before the work of
    /// rendering.
    fn bytes(&self, keys_only: bool) -> usize {
        match self {
            InMemory::Shared(page) => page.chunk.len(),
            InMemory::Events { events, .. } => events
                .iter()
                .map(|e| LINE_OVERHEAD + e.key.len() + if keys_only { 0 } else { e.value.len() })
                .sum(),
        }
    }

    /// The page of its lines, kept in [`SHARED`] for other watchers of
    /// the same keys at the same position.
    fn render(self, watch: &Watch, sub: &Subscription, next: u64) -> Page {
        let (events, upto, complete) = match self {
            InMemory::Shared(page) => return page,
            InMemory::Events {
                events,
                upto,
                complete,
            } => (events, upto, complete),
        };
        let mut lines = Vec::new();
        let mut starts = Vec::new();
        for e in &events {
            if e.write_json(watch.keys_only, &mut lines).is_ok() && e.batch_end {
                starts.push((lines.len(), e.revision + 1));
            }
        }
        // (The last is where the next page starts.)
        starts.retain(|&(at, _)| at < lines.len());
        let page = Page {
            chunk: Bytes::from(lines),
            first: events.first().map(|e| e.revision),
            upto,
            complete,
            starts,
        };
        // Only a page with lines is worth keeping (and only one that covers
        // something).
        if page.first.is_some() && sub.sharers() > 1 {
            let hub = sub.hub_id();
            let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            if !shared.iter().any(|s| s.is(hub, watch, next)) {
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
        page
    }
}

impl Shared {
    /// Whether it is the page a watcher of `hub` with `watch` reads at `next`.
    fn is(&self, hub: u64, watch: &Watch, next: u64) -> bool {
        self.next == next
            && self.hub == hub
            && self.keys_only == watch.keys_only
            && self.bounds == watch.bounds
    }
}

/// The events a watch wants from `next` on, from the memory tables (see
/// [`Engine::events_matching`]), or their page from [`SHARED`] when another
/// watcher of the same keys read them. `None`: not in memory any more.
fn find_memory(engine: &Engine, watch: &Watch, sub: &Subscription, next: u64) -> Option<InMemory> {
    let hub = sub.hub_id();
    {
        let shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = shared.iter().rev().find(|s| s.is(hub, watch, next)) {
            return Some(InMemory::Shared(s.page.clone()));
        }
    }
    let wants = |key: &[u8]| watch.wants(key);
    let (events, upto, complete) =
        engine.events_matching(next, PAGE_EVENTS, LIMITS.each, &wants)?;
    Some(InMemory::Events {
        events,
        upto,
        complete,
    })
}

/// What [`read_stored`] found.
enum Stored {
    Events(Vec<Event>),
    /// The next event alone takes this many bytes, more than the room.
    Needs(usize),
    /// Nothing applied from there yet.
    Nothing,
    /// The history no longer has it.
    Gone,
    /// Logged.
    Failed,
}

/// A page of the stored history from `from` on, read on a blocking
/// thread, within `room` bytes of keys and values: only the values
/// `watch` sends are read (none for keys only). With less than a whole
/// page's room the read is strict: it stops before an event that would go
/// past `room`, and when that is the first, says how much it needs
/// ([`Stored::Needs`]). So a watcher that fell behind the memory tables
/// (a flush can take the events a watcher keeping up was about to read)
/// reads on with the room its lines need, as it does from memory, instead
/// of waiting for a whole page's room behind stalled watchers of large
/// values (4 to 5 s under load).
async fn read_stored(engine: &Arc<Engine>, watch: &Watch, from: u64, room: usize) -> Stored {
    let watch = watch.clone();
    let read = super::blocking(engine, "watch", move |e| {
        let values_of = |key: &[u8]| !watch.keys_only && watch.wants(key);
        e.events_read(
            from,
            &EventsRead {
                max: PAGE_EVENTS,
                max_bytes: room,
                values_of: &values_of,
                strict: room < LIMITS.each,
            },
        )
    });
    match read.await {
        Ok(Events::Found(events)) if !events.is_empty() => Stored::Events(events),
        Ok(Events::Found(_)) => Stored::Nothing,
        Ok(Events::Needs(bytes)) => Stored::Needs(bytes),
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
/// a chunk is about an outbox's worth, whatever the values).
fn render(watch: &Watch, events: &[Event], max_bytes: usize) -> Page {
    let (mut cut, complete) = match events.iter().rposition(|e| e.batch_end) {
        Some(i) => (i + 1, true),
        // One request larger than a page: send it as it comes.
        None => (events.len(), false),
    };
    let mut out = Vec::new();
    let mut first = None;
    let mut starts = Vec::new();
    for (i, e) in events[..cut].iter().enumerate() {
        if watch.wants(&e.key) && e.write_json(watch.keys_only, &mut out).is_ok() {
            first = first.or(Some(e.revision));
        }
        if e.batch_end {
            if out.len() >= max_bytes {
                cut = i + 1;
                break;
            }
            if !out.is_empty() {
                starts.push((out.len(), e.revision + 1));
            }
        }
    }
    // (A start at the end is where the next page starts.)
    starts.retain(|&(at, _)| at < out.len());
    Page {
        upto: events[..cut].last().map_or(0, |e| e.revision),
        chunk: Bytes::from(out),
        first,
        complete,
        starts,
    }
}

fn progress_line(revision: u64) -> Bytes {
    Bytes::from(format!("{{\"progress_revision\":{revision}}}\n"))
}

/// Bytes counted in the bound of all watchers' outboxes together
/// ([`Limits::total`], kept in [`Engine::watch_buffered`]) until dropped.
/// A page's room is taken before the page is rendered (from the stored
/// history, before it is read; see [`Outbox::room`]), and goes with its
/// lines in the outbox until the connection takes them (in slices, see
/// [`SLICE`]). Checked instead of taken, the bound let 500 watchers whose
/// clients read nothing each read a page of up to 1 MiB at once, and the
/// whole page hyper was then given stayed outside it (RSS 72 → 567 MB,
/// found by an audit).
struct Room {
    engine: Arc<Engine>,
    bytes: usize,
}

impl Room {
    /// `bytes` counted whatever the bound: the lines of a request already
    /// begun (never dropped in part), and the short lines (progress, end).
    fn forced(engine: &Arc<Engine>, bytes: usize) -> Room {
        let before = engine.watch_buffered().fetch_add(bytes, Ordering::AcqRel);
        Room::counted(engine, before, bytes)
    }

    /// `bytes` counted if the outboxes then hold no more than `total`
    /// (`None`: under pressure).
    fn try_take_within(engine: &Arc<Engine>, bytes: usize, total: usize) -> Option<Room> {
        let before = engine
            .watch_buffered()
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held.saturating_add(bytes) <= total).then_some(held + bytes)
            })
            .ok()?;
        Some(Room::counted(engine, before, bytes))
    }

    /// Keeps `keep` bytes and returns the rest.
    fn split_off(&mut self, keep: usize) -> Room {
        let rest = self.bytes.saturating_sub(keep);
        self.bytes -= rest;
        Room {
            engine: self.engine.clone(),
            bytes: rest,
        }
    }

    fn merge(&mut self, mut other: Room) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    fn counted(engine: &Arc<Engine>, before: usize, bytes: usize) -> Room {
        if !under_pressure(before) && under_pressure(before + bytes) {
            // Pressure: stalled watchers end (see `Outbox::room`).
            ROOM.notify_waiters();
        }
        Room {
            engine: engine.clone(),
            bytes,
        }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let before = self
            .engine
            .watch_buffered()
            .fetch_sub(self.bytes, Ordering::AcqRel);
        if under_pressure(before) {
            ROOM.notify_waiters();
        }
    }
}

/// Whether the outboxes together, holding `held` bytes, have no room for
/// another watcher's page.
fn under_pressure(held: usize) -> bool {
    held.saturating_add(LIMITS.each) > LIMITS.total
}

/// The most the connection takes from an outbox at a time. What it has
/// taken is out of the bound: hyper asks for more only while it holds less
/// than its buffer (64 KiB, `MAX_HEAD_BYTES`), so a connection that reads
/// nothing holds about two slices, a constant per connection, and a
/// stalled stream that ends gives all its room back. A slice of a larger
/// chunk is a copy: a view would keep the whole page alive.
const SLICE: usize = 64 << 10;

/// A chunk of lines in an outbox, with its room.
struct Chunk {
    bytes: Bytes,
    room: Room,
    /// The revision to resume from if it and everything after it are
    /// dropped (`None`: it continues a request, keep it).
    resume: Option<u64>,
    /// Larger than a [`SLICE`]: handed over in copied slices.
    sliced: bool,
    /// Where a request starts inside it (after the first byte), with the
    /// revision to resume from if the rest is dropped: once the connection
    /// has taken part of a chunk, a stream that ends keeps only the rest
    /// of the request it is in.
    starts: Vec<(usize, u64)>,
}

/// The lines of one stream between its task and its connection, bounded
/// by [`Limits`]: its own bytes, and the room of every chunk (in
/// [`Engine::watch_buffered`]) until the connection takes it.
struct Outbox {
    queue: Mutex<Queue>,
    /// The connection took a chunk, or went away.
    drained: Notify,
    engine: Arc<Engine>,
    /// The client, to see it read ([`Outbox::progress`]) and to cut it
    /// off ([`Outbox::linger`]).
    peer: Option<super::conn::Peer>,
}

#[derive(Default)]
struct Queue {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    /// No more chunks will come: the body ends after these.
    ended: bool,
    /// The stream's task ended without an end line (a failed read, a
    /// panic, a stop inside a request): the body breaks off after these,
    /// so that no client takes it for a complete stream.
    aborted: bool,
    /// The connection is gone.
    gone: bool,
    /// The stream ended with `lagging` ([`Outbox::linger`]).
    lagged: bool,
    /// The connection stalled inside a request under memory pressure: it
    /// is cut off ([`Outbox::linger`]).
    cut: bool,
    waker: Option<Waker>,
    /// Since when the connection has had lines to take and took none:
    /// its last take, the push into an empty queue, or the client reading
    /// what the kernel held ([`Outbox::progress`]).
    waiting: Option<tokio::time::Instant>,
    /// The bytes the kernel held unsent for the client at the last look.
    unsent: Option<usize>,
}

impl Outbox {
    fn new(engine: Arc<Engine>, peer: Option<super::conn::Peer>) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue::default()),
            drained: Notify::new(),
            engine,
            peer,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_empty(&self) -> bool {
        self.lock().chunks.is_empty()
    }

    /// Queues a chunk for the connection with the room taken for it (see
    /// [`Queue::chunks`] for `resume`).
    fn push(
        &self,
        chunk: Bytes,
        resume: Option<u64>,
        starts: Vec<(usize, u64)>,
        room: Room,
    ) -> std::result::Result<(), Stop> {
        let mut room = room;
        if room.bytes > chunk.len() {
            // The rest of the page's room goes back now.
            drop(room.split_off(chunk.len()));
        } else if room.bytes < chunk.len() {
            room.merge(Room::forced(&self.engine, chunk.len() - room.bytes));
        }
        let mut q = self.lock();
        if q.gone || q.ended {
            return Err(Stop::Gone);
        }
        self.queue_chunk(&mut q, chunk, resume, starts, room);
        Ok(())
    }

    /// Queues a short line (progress), counted whatever the bound.
    fn push_line(&self, line: Bytes, resume: Option<u64>) -> std::result::Result<(), Stop> {
        let room = Room::forced(&self.engine, line.len());
        self.push(line, resume, Vec::new(), room)
    }

    fn queue_chunk(
        &self,
        q: &mut Queue,
        chunk: Bytes,
        resume: Option<u64>,
        starts: Vec<(usize, u64)>,
        room: Room,
    ) {
        let len = chunk.len();
        if q.chunks.is_empty() {
            q.waiting = Some(tokio::time::Instant::now());
        }
        q.bytes += len;
        q.chunks.push_back(Chunk {
            sliced: len > SLICE,
            bytes: chunk,
            room,
            resume,
            starts,
        });
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    /// Waits until this stream may read another page (`next` being the
    /// first revision not read): its outbox is below its own bound, and
    /// all outboxes together have the room for the page (inside a
    /// request, `mid`, too). Events in the memory tables (`find`) are
    /// found first and take the room their lines need (see
    /// [`InMemory::bytes`]), no more, before they are rendered; they are
    /// never held without their room across an await. A page from the
    /// stored history (`find` gives `None`; the caller reads it on a
    /// page reader thread) takes `stored_need`: [`STORED_PAGE_ROOM`] first,
    /// then what its next event was found to need (see [`read_stored`]).
    /// So a watcher that keeps up, needing a few lines at the newest
    /// revisions, finds room beside stalled ones that each wait for a
    /// megabyte: when every page took a page's room, 100 unread watchers
    /// of 1 MB values under a 4 MiB bound kept a new watcher's first
    /// event waiting up to 45 s, each freed page going to whichever woke
    /// first. Events that did not fit are looked for again only once that
    /// much is free. Under memory pressure, a stream whose connection
    /// took nothing for [`STALLED`] while its outbox held lines ends
    /// instead, whatever the outbox holds (see
    /// [`Outbox::stalled_since`]), or inside a request is cut off. It
    /// takes no new room while it waits.
    async fn room(
        &self,
        next: u64,
        mid: bool,
        keys_only: bool,
        stored_need: usize,
        closing: &mut tokio::sync::watch::Receiver<bool>,
        find: &mut (dyn FnMut() -> Option<InMemory> + Send),
    ) -> std::result::Result<(Room, Option<InMemory>), Stop> {
        let limits = *LIMITS;
        // The room the page that did not fit needs.
        let mut need = None;
        loop {
            let room = ROOM.notified();
            let drained = self.drained.notified();
            tokio::pin!(room, drained);
            room.as_mut().enable();
            let (below, keeping_up) = {
                let q = self.lock();
                if q.gone {
                    return Err(Stop::Gone);
                }
                (q.bytes < limits.each, q.chunks.is_empty())
            };
            // A stream whose connection took all it was sent may take a
            // small page from the reserve beyond the bound: stalled
            // streams (lines waiting) fill the bound again as soon as room
            // is freed, and a watcher that keeps up waited up to 5 s
            // under load behind them for a few lines.
            let bound = |bytes: usize| match keeping_up && bytes <= limits.reserve / 4 {
                true => limits.total + limits.reserve,
                false => limits.total,
            };
            // Inside a request too: a request already begun was read on
            // whatever the bounds (it is never dropped in part), and
            // unread, read whole into the outbox (64 MiB for a batch of
            // the largest size, per watcher); then beyond the bound of all
            // outboxes, each stream inside one held a page and its own
            // bound. A stream that cannot have the room ends or is cut
            // off if it stalls (below).
            let held = self.engine.watch_buffered().load(Ordering::Acquire);
            if below && need.is_none_or(|n| held.saturating_add(n) <= bound(n)) {
                let found = find();
                // At most a page's room: the rest of a page past its bound
                // (its last event, JSON escapes) is taken at once when it
                // is queued. So whoever waits needs no more than a page,
                // and every room given back under pressure wakes it.
                let bytes = found
                    .as_ref()
                    .map_or(stored_need, |f| f.bytes(keys_only).min(limits.each));
                if let Some(room) = Room::try_take_within(&self.engine, bytes, bound(bytes)) {
                    return Ok((room, found));
                }
                need = Some(bytes);
            }
            let mut stalled_at = None;
            {
                let mut q = self.lock();
                if let Some(since) = self.stalled_since(&mut q) {
                    if since.elapsed() >= STALLED {
                        if mid {
                            // It cannot end inside a request: cut off
                            // (see `Outbox::linger`).
                            q.cut = true;
                            return Err(Stop::Gone);
                        }
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
                    // Inside a request, the stream breaks off instead (the
                    // end line would split it).
                    if !mid {
                        self.end_with(unavailable_line(next));
                    }
                    return Err(Stop::Gone);
                }
            }
        }
    }

    /// Under memory pressure, since when the connection has taken nothing
    /// while this outbox held lines (`None`: no pressure, or nothing
    /// held). Stalled for [`STALLED`], the stream ends, whatever its
    /// outbox holds: its lines were all counted until taken, so several
    /// stalled streams each holding less than a watcher's bound could
    /// otherwise fill the bound for good (none qualified to end, nobody
    /// got room again: a reading watcher starved until the idle timeout).
    fn stalled_since(&self, q: &mut Queue) -> Option<tokio::time::Instant> {
        if q.chunks.is_empty() || q.ended || q.gone {
            return None;
        }
        let total = self.engine.watch_buffered().load(Ordering::Acquire);
        if !under_pressure(total) {
            return None;
        }
        self.progress(q);
        Some(q.waiting.unwrap_or_else(tokio::time::Instant::now))
    }

    /// Counts the client reading what the kernel holds for it as the
    /// connection taking lines. The connection takes a slice only once the
    /// kernel has room for it, and the kernel's buffer may hold megabytes:
    /// a client reading 80 KiB a second let a take come only every second
    /// or so, and was taken for a stalled one (an audit found slow readers
    /// cut off). The first look counts too, so that a stream is judged
    /// over a whole [`STALLED`] of looks.
    fn progress(&self, q: &mut Queue) {
        let Some(unsent) = self.peer.as_ref().and_then(super::conn::Peer::unsent) else {
            return;
        };
        if q.unsent.is_none_or(|seen| unsent < seen) {
            q.waiting = Some(tokio::time::Instant::now());
        }
        q.unsent = Some(unsent);
    }

    /// Resolves when this stream, waiting for events with lines still
    /// queued, is stalled under memory pressure (see
    /// [`Outbox::stalled_since`]) and must end: a stream that does not
    /// read another page never passes through [`Outbox::room`], and would
    /// hold its lines' room for good. Never resolves while the outbox is
    /// empty (only the stream's task queues lines).
    async fn stalled(&self) {
        loop {
            // Pressure begins with a wake-up (see `Room::counted`); under
            // it, only the stall timer matters (no wake-up per slice taken
            // for every watcher with lines queued).
            let room = ROOM.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let wait = {
                let mut q = self.lock();
                if q.chunks.is_empty() || q.ended || q.gone {
                    None
                } else {
                    match self.stalled_since(&mut q) {
                        Some(since) if since.elapsed() >= STALLED => return,
                        Some(since) => Some(Some(since + STALLED)),
                        None => Some(None),
                    }
                }
            };
            match wait {
                None => std::future::pending().await,
                Some(Some(at)) => tokio::time::sleep_until(at).await,
                Some(None) => room.await,
            }
        }
    }

    /// Ends the stream with `line`, after what is queued.
    fn end_with(&self, line: String) {
        let mut q = self.lock();
        self.push_last(&mut q, line);
    }

    /// Ends the stream with `lagging`: drops the queued lines from the
    /// first request the connection has not begun (`next`, the first
    /// revision not read, if there is none) and says where to resume.
    /// What is left, the rest of the request the connection is in, leaves
    /// the bound of all outboxes: it is owed to the client whatever the
    /// pressure (at most one request per stream, as when hyper held whole
    /// chunks), and counted it would keep the streams that read from
    /// getting room once every stalled one has ended.
    fn end_lagging(&self, next: u64) {
        let mut q = self.lock();
        let mut resume = next;
        let cut = q
            .chunks
            .iter()
            .enumerate()
            .find_map(|(i, c)| match c.resume {
                Some(r) => Some((i, 0, r)),
                None => c.starts.first().map(|&(at, r)| (i, at, r)),
            });
        if let Some((i, at, r)) = cut {
            resume = r;
            // Their room goes with them.
            let mut dropped: usize = q.chunks.drain(i + 1..).map(|c| c.bytes.len()).sum();
            if at == 0 {
                dropped += q.chunks.pop_back().map_or(0, |c| c.bytes.len());
            } else if let Some(c) = q.chunks.back_mut() {
                dropped += c.bytes.len() - at;
                c.bytes.truncate(at);
                c.starts.clear();
            }
            q.bytes -= dropped;
        }
        for c in &mut q.chunks {
            drop(c.room.split_off(0));
            if c.sliced {
                // A view would keep the whole page alive.
                c.bytes = Bytes::copy_from_slice(&c.bytes);
            }
        }
        let line = format!("{{\"error\":\"lagging\",\"next_revision\":{resume}}}\n");
        self.push_last(&mut q, line);
        q.lagged = true;
    }

    /// After a `lagging` end, while the connection takes what the stream
    /// still holds outside the bound (the rest of the request it is in,
    /// see [`Outbox::end_lagging`]): a client that takes nothing of more
    /// than a [`SLICE`] for [`STALLED`] is cut off, so that the
    /// rest of a large request is not held for it until the idle timeout.
    /// Unread watchers on 1 MB values ended one after another and each
    /// kept about a megabyte: ~300 KiB of resident memory per watcher over
    /// the bound, where a connection costs less than 100. Its client
    /// resumes as after any dropped connection, from 1 + the last revision
    /// it got; less than a slice is left to the connection, as hyper's own
    /// buffer is. A stream whose connection stalled inside a request under
    /// pressure (see [`Outbox::room`]) is cut off at once.
    async fn linger(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let (since, cut) = {
                let mut q = self.lock();
                if q.gone || !(q.cut || q.lagged && q.bytes > SLICE) {
                    return;
                }
                self.progress(&mut q);
                let since = q.waiting.unwrap_or_else(tokio::time::Instant::now);
                (since, q.cut)
            };
            if cut || since.elapsed() >= STALLED {
                if let Some(peer) = &self.peer {
                    peer.cut();
                }
                let mut q = self.lock();
                q.aborted = true;
                q.bytes = 0;
                let held = std::mem::take(&mut q.chunks);
                if let Some(w) = q.waker.take() {
                    w.wake();
                }
                drop(q);
                drop(held);
                return;
            }
            tokio::select! {
                () = drained => {}
                () = tokio::time::sleep_until(since + STALLED) => {}
            }
        }
    }

    /// Queues the stream's last line and marks it ended. Counted like any
    /// line.
    fn push_last(&self, q: &mut Queue, line: String) {
        let room = Room::forced(&self.engine, line.len());
        self.queue_chunk(q, Bytes::from(line), None, Vec::new(), room);
        q.ended = true;
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

/// The connection's end of an outbox: the response body, a [`SLICE`] at a
/// time at most.
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
        if let Some(front) = q.chunks.front_mut() {
            let data = if front.sliced {
                let n = front.bytes.len().min(SLICE);
                let slice = Bytes::copy_from_slice(&front.bytes[..n]);
                front.bytes = front.bytes.slice(n..);
                // Its room goes back once the connection has it.
                let keep = front.room.bytes.saturating_sub(n);
                drop(front.room.split_off(keep));
                // The rest continues a request now (never dropped in
                // part) unless the slice ended one.
                let mut resume = None;
                front.starts.retain_mut(|(at, r)| {
                    if *at <= n {
                        resume = (*at == n).then_some(*r).or(resume);
                        return false;
                    }
                    *at -= n;
                    true
                });
                front.resume = resume;
                slice
            } else {
                front.bytes.clone()
            };
            if front.bytes.is_empty() || !front.sliced {
                // (Its room with it.)
                q.chunks.pop_front();
            }
            q.bytes -= data.len();
            q.waiting = Some(tokio::time::Instant::now());
            drop(q);
            outbox.drained.notify_one();
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if q.aborted {
            return Poll::Ready(Some(Err(std::io::Error::other(
                "the watch stream stopped without an end line",
            ))));
        }
        if q.ended {
            return Poll::Ready(None);
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for OutboxBody {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.gone = true;
        q.bytes = 0;
        // Their room goes with them, outside the lock.
        let held = std::mem::take(&mut q.chunks);
        drop(q);
        drop(held);
        self.0.drained.notify_one();
    }
}
