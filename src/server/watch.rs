//! `GET /v1/watch` (SPEC "Watch: a change feed"): an NDJSON stream of the
//! events after a revision, filtered by range, prefix or key.
//!
//! A stream is one task: it sends `{"progress_revision":R}` first, then
//! reads events from the engine a page at a time (from memory tables in
//! the task, or [`Engine::events`] on a blocking thread when the stored
//! history is needed), and waits on the published
//! revision ([`Engine::subscribe`]) when it has sent everything. Writers
//! never wait for a watcher: a watcher that falls behind (a slow client
//! fills its small channel) simply reads on from the history later. Events
//! of one request go out in one chunk, so a stream never ends inside one;
//! if the history no longer has the events a stream needs next, it ends
//! with `{"error":"lagging","next_revision":N}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, Uri, header};
use tokio::sync::mpsc;

use super::State;
use super::body::{Body, streamed};
use super::routes::REVISION;
use super::target::Query;
use crate::engine::history::Event;
use crate::engine::{Engine, Events};
use crate::error::{Error, Result};
use crate::types::RangeQuery;

/// Seconds without an event before a progress line (SPEC default).
const DEFAULT_PROGRESS_SECS: u64 = 10;
/// Longest `?progress=` accepted: a day.
const MAX_PROGRESS_SECS: u64 = 86_400;
/// Events read from the engine at a time.
const PAGE_EVENTS: usize = 1024;
/// Chunks buffered between a stream's task and its connection: a slow
/// client holds at most this many pages; the rest waits in the history.
const CHANNEL_CHUNKS: usize = 4;
/// Pause between two reads of one watcher, per open watch: with many
/// watchers each reads at most every (watchers × this), so their wake-ups
/// together stay near 50,000 a second instead of one per watcher per
/// write group (1,000 watchers: 20 ms, at most that much added latency;
/// one watcher: 20 µs, none to speak of).
const PACE_PER_WATCHER: Duration = Duration::from_micros(20);
/// The longest such pause.
const MAX_PACE: Duration = Duration::from_millis(50);

type Tx = mpsc::Sender<std::io::Result<Bytes>>;

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
    let bytes = |name| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(<[u8]>::to_vec)
    };
    let query = RangeQuery {
        start: bytes("start"),
        end: bytes("end"),
        prefix: bytes("prefix"),
        ..RangeQuery::default()
    };
    query.validate()?;
    let progress = params.number("progress")?.unwrap_or(DEFAULT_PROGRESS_SECS);
    if !(1..=MAX_PROGRESS_SECS).contains(&progress) {
        return Err(Error::invalid(format!(
            "progress must be 1 to {MAX_PROGRESS_SECS} seconds"
        )));
    }
    let watch = Watch {
        bounds: query.bounds(),
        keys_only: params.flag("keys_only")?,
        progress: Duration::from_secs(progress),
    };
    let engine = state.engine.clone();
    // Subscribed before the revision is read: nothing published after it
    // can be missed.
    let notified = engine.subscribe();
    let current = engine.revision();
    let from = match params.number("from_revision")? {
        Some(0) => return Err(Error::invalid("from_revision must be 1 or more")),
        Some(r) => r,
        None => current + 1,
    };
    let oldest = engine.oldest_revision();
    if from <= current && from < oldest {
        return Err(Error::Compacted {
            requested: from,
            oldest,
        });
    }
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let closing = state.closing.subscribe();
    let open = Open::new(state.watchers.clone());
    tokio::spawn(async move {
        let _ = run(&engine, &watch, from, notified, closing, &tx, &open).await;
    });
    let mut resp = Response::new(streamed(rx));
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
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Open(count)
    }

    /// How long this watcher waits between reads (see [`PACE_PER_WATCHER`]).
    fn pace(&self) -> Duration {
        let n = self.0.load(std::sync::atomic::Ordering::Relaxed) as u32;
        (PACE_PER_WATCHER * n).min(MAX_PACE)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Why a stream stopped.
enum Stop {
    /// The client went away, or the server stops.
    Gone,
}

/// The stream's loop: see the module header. `from` is the first revision
/// to send.
async fn run(
    engine: &Arc<Engine>,
    watch: &Watch,
    from: u64,
    mut notified: tokio::sync::watch::Receiver<u64>,
    mut closing: tokio::sync::watch::Receiver<bool>,
    tx: &Tx,
    open: &Open,
) -> std::result::Result<(), Stop> {
    let mut next = from;
    send(tx, progress_line(next - 1)).await?;
    let mut last_sent = tokio::time::Instant::now();
    let mut last_read = tokio::time::Instant::now();
    loop {
        // (The timer's resolution is a millisecond: a shorter pace is none.)
        let pace = open.pace();
        if pace >= Duration::from_millis(1) {
            tokio::time::sleep_until(last_read + pace).await;
        }
        last_read = tokio::time::Instant::now();
        // Everything applied so far.
        while next <= engine.revision() {
            let wants = |key: &[u8]| watch.wants(key);
            if let Some((events, upto)) = engine.events_matching(next, PAGE_EVENTS, &wants) {
                if upto < next {
                    break;
                }
                next = upto + 1;
                if !events.is_empty() {
                    let mut out = Vec::new();
                    for e in &events {
                        let _ = e.write_json(watch.keys_only, &mut out);
                    }
                    send(tx, Bytes::from(out)).await?;
                    last_sent = tokio::time::Instant::now();
                }
                continue;
            }
            let e = engine.clone();
            let page = tokio::task::spawn_blocking(move || e.events(next, PAGE_EVENTS)).await;
            let events = match page {
                Ok(Ok(Events::Found(events))) if !events.is_empty() => events,
                Ok(Ok(Events::Found(_))) => break,
                Ok(Ok(Events::Gone)) => {
                    let line = format!("{{\"error\":\"lagging\",\"next_revision\":{next}}}\n");
                    let _ = send(tx, Bytes::from(line)).await;
                    return Err(Stop::Gone);
                }
                Ok(Err(e)) => {
                    log!("kvr serve: a watch could not read the history: {e}");
                    return Err(Stop::Gone);
                }
                Err(e) => {
                    log!("kvr serve: a watch's history reader failed: {e}");
                    return Err(Stop::Gone);
                }
            };
            let (chunk, sent_any, upto) = render(watch, &events);
            next = upto + 1;
            if sent_any {
                send(tx, chunk).await?;
                last_sent = tokio::time::Instant::now();
            }
        }
        let progress_due = last_sent + watch.progress;
        tokio::select! {
            changed = notified.changed() => {
                if changed.is_err() {
                    return Err(Stop::Gone);
                }
            }
            () = tokio::time::sleep_until(progress_due) => {
                send(tx, progress_line(next - 1)).await?;
                last_sent = tokio::time::Instant::now();
            }
            _ = closing.changed() => return Err(Stop::Gone),
            () = tx.closed() => return Err(Stop::Gone),
        }
    }
}

/// The lines of the events of `events` a watch wants, cut after the last
/// complete request (a page may end inside one; the rest goes with the
/// next page). Returns the chunk, whether it holds an event, and the last
/// revision covered.
fn render(watch: &Watch, events: &[Event]) -> (Bytes, bool, u64) {
    let cut = match events.iter().rposition(|e| e.batch_end) {
        Some(i) => i + 1,
        // One request larger than a page: send it as it comes.
        None => events.len(),
    };
    let mut out = Vec::new();
    let mut any = false;
    for e in &events[..cut] {
        if watch.wants(&e.key) && e.write_json(watch.keys_only, &mut out).is_ok() {
            any = true;
        }
    }
    let upto = events[..cut].last().map_or(0, |e| e.revision);
    (Bytes::from(out), any, upto)
}

fn progress_line(revision: u64) -> Bytes {
    Bytes::from(format!("{{\"progress_revision\":{revision}}}\n"))
}

async fn send(tx: &Tx, chunk: Bytes) -> std::result::Result<(), Stop> {
    tx.send(Ok(chunk)).await.map_err(|_| Stop::Gone)
}
