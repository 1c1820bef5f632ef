//! Bodies: reading request bodies under a limit, and the response body type
//! (whole, or streamed from a channel with backpressure).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// Every response's body.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A stream's producer, asked for one chunk at a time by the stream
/// readers: between chunks it holds no thread, only its state (a snapshot
/// and where it got to), so a client that does not read costs the chunk
/// read ahead for it, not a parked thread and its allocator's memory (a
/// thread per unread stream took ~4.4 MB each, and the blocking pool's
/// threads with them).
pub trait Producer: Send + Unpin + 'static {
    /// The next chunk; `None` at the end (after the last chunk).
    fn next_chunk(&mut self) -> Result<Option<Bytes>>;
}

/// A body read from `producer` a chunk at a time, the next chunk read
/// while the connection writes the one before (one chunk ahead: a slow
/// client slows the reads down, and nothing piles up). A failure aborts
/// the response without its final chunk, so the client sees a broken
/// stream, never a silently short one. A failure is logged under `what`;
/// a panic (redb's, on a damaged page) is caught and is such a failure.
pub fn stream(
    engine: &Arc<crate::engine::Engine>,
    budget: &ResponseBudget,
    what: &'static str,
    producer: impl Producer,
) -> Body {
    PulledBody {
        engine: engine.clone(),
        budget: budget.clone(),
        what,
        state: Pull::Idle(producer),
    }
    .boxed_unsync()
}

/// Waiting for the room of a chunk read (see [`ResponseBudget`]).
type Room = Pin<
    Box<
        dyn Future<Output = std::result::Result<OwnedSemaphorePermit, tokio::sync::AcquireError>>
            + Send,
    >,
>;

/// Where a [`PulledBody`] is.
enum Pull<P> {
    /// Waiting to be asked for the next chunk.
    Idle(P),
    /// Asked, waiting for the room of a chunk before it is read: a client
    /// that takes nothing holds the chunk hyper has, charged, and no
    /// uncharged one read ahead (500 such range streams took 575 MB past a
    /// 256 MiB budget, found by an audit).
    Reserving(P, Room),
    /// A chunk being read by a stream reader, with the room taken for it.
    Reading(
        tokio::sync::oneshot::Receiver<(P, Result<Option<Bytes>>)>,
        Option<OwnedSemaphorePermit>,
    ),
    /// A chunk read that is larger than the room taken (one item larger
    /// than a chunk), waiting for its whole room with none held: no stream
    /// holds room while it waits for room, so waits always end.
    Holding(P, Bytes, Room),
    /// Ended, cleanly or not.
    Done,
}

/// Bytes per chunk of a range or backup stream: large enough to amortize
/// the hand-off to a stream reader and the new seek each chunk starts with
/// (at 64 KiB a whole range of 1M keys took 0.25 s, at 256 KiB 0.17 s).
/// A chunk ends with the item that takes it past this.
pub const STREAM_CHUNK_BYTES: usize = 256 << 10;
/// Room for the item that ends a chunk: what a chunk's buffer starts with
/// beyond [`STREAM_CHUNK_BYTES`], and the room it takes before it is read.
const STREAM_CHUNK_SLACK: usize = 32 << 10;

/// A stream chunk's buffer, sized for a chunk and its last item.
pub fn chunk_buffer() -> Vec<u8> {
    Vec::with_capacity(STREAM_CHUNK_BYTES + STREAM_CHUNK_SLACK)
}

/// A chunk's bytes, in an allocation no larger than they need: the room
/// it takes is counted by its length, and the client may hold it long.
pub fn chunk_bytes(mut buf: Vec<u8>) -> Bytes {
    if buf.capacity() > buf.len() + buf.len() / 4 + STREAM_CHUNK_SLACK {
        buf.shrink_to_fit();
    }
    Bytes::from(buf)
}

/// The threads that read the chunks of every stream, one chunk at a time
/// in turn: a stream's chunks are allocated by the thread that reads them
/// and freed by the connection's (see `readers.rs`).
static STREAM_READERS: super::readers::Readers = super::readers::Readers::new("kvr-stream");

struct PulledBody<P> {
    engine: Arc<crate::engine::Engine>,
    budget: ResponseBudget,
    what: &'static str,
    state: Pull<P>,
}

impl<P: Producer> PulledBody<P> {
    fn read_next(&mut self, mut producer: P, room: Option<OwnedSemaphorePermit>) {
        let engine = self.engine.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        STREAM_READERS.run(Box::new(move || {
            let read = match crate::panics::contain(|| producer.next_chunk()) {
                Ok(read) => read,
                Err(caught) => Err(super::fault(&engine, caught)),
            };
            // The client may be gone: nobody waits for the chunk.
            let _ = tx.send((producer, read));
        }));
        self.state = Pull::Reading(rx, room);
    }

    fn failed(&mut self, e: impl std::fmt::Display) -> std::io::Error {
        self.state = Pull::Done;
        log!("kvr serve: {} failed: {e}", self.what);
        std::io::Error::other(e.to_string())
    }
}

impl<P: Producer> http_body::Body for PulledBody<P> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, Pull::Done) {
                Pull::Done => return Poll::Ready(None),
                Pull::Idle(producer) => {
                    match this.budget.need(STREAM_CHUNK_BYTES + STREAM_CHUNK_SLACK) {
                        Some(need) => {
                            let room = this.budget.kib.clone().acquire_many_owned(need);
                            this.state = Pull::Reserving(producer, Box::pin(room));
                        }
                        None => this.read_next(producer, None),
                    }
                }
                Pull::Reserving(producer, mut room) => match room.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = Pull::Reserving(producer, room);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(room)) => this.read_next(producer, Some(room)),
                    // The semaphore is never closed.
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(this.failed(e)))),
                },
                Pull::Reading(mut reading, room) => match Pin::new(&mut reading).poll(cx) {
                    Poll::Pending => {
                        this.state = Pull::Reading(reading, room);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok((producer, Ok(Some(chunk))))) => {
                        let have = room
                            .as_ref()
                            .map_or(0, |r| u32::try_from(r.num_permits()).unwrap_or(u32::MAX));
                        let chunk = match this.budget.need(chunk.len()) {
                            // Small: it takes no room (see `HELD_FROM_BYTES`).
                            None => chunk,
                            Some(need) if need <= have => Bytes::from_owner(Held {
                                bytes: chunk,
                                _room: room,
                            }),
                            Some(need) => {
                                // Its room given back before it waits for the
                                // whole: a stream waiting while it holds room
                                // could wait for one waiting while it held
                                // some, and none moved again (an audit wedged
                                // six streams of 1 MiB values for good).
                                drop(room);
                                let whole = this.budget.kib.clone().acquire_many_owned(need);
                                this.state = Pull::Holding(producer, chunk, Box::pin(whole));
                                continue;
                            }
                        };
                        // The next chunk is read when hyper asks for it, once
                        // it has room.
                        this.state = Pull::Idle(producer);
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    Poll::Ready(Ok((_, Ok(None)))) => return Poll::Ready(None),
                    Poll::Ready(Ok((_, Err(e)))) => {
                        return Poll::Ready(Some(Err(this.failed(e))));
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Some(Err(
                            this.failed(format!("its reader did not run: {e}"))
                        )));
                    }
                },
                Pull::Holding(producer, chunk, mut room) => match room.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = Pull::Holding(producer, chunk, room);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(room)) => {
                        let chunk = Bytes::from_owner(Held {
                            bytes: chunk,
                            _room: Some(room),
                        });
                        this.state = Pull::Idle(producer);
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    // The semaphore is never closed.
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(this.failed(e)))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, Pull::Done)
    }
}

/// The pace a request body must keep after its grace (twice
/// `--header-timeout`, 20 s by default), in bytes a second: Apache's
/// `mod_reqtimeout` defaults. `--idle-timeout` only cuts a client that
/// sends nothing at all; without this a body trickled a byte at a time
/// would hold its connection, and its room in the budget, for ever.
pub const MIN_BODY_RATE: u64 = 500;

/// How request bodies are taken in, server-wide: a budget of KiB
/// (`--max-body-mib`) that every body takes from while it is read and
/// handled, and the time a body may take.
#[derive(Clone)]
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    mib: u64,
    /// The time a body needs no pace in (see [`MIN_BODY_RATE`]).
    grace: Duration,
}

impl BodyBudget {
    pub fn new(bytes: usize, grace: Duration) -> BodyBudget {
        let kib = (bytes >> 10).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            kib: Arc::new(Semaphore::new(kib)),
            mib: (bytes >> 20) as u64,
            grace,
        }
    }

    /// Takes room for `bytes` more, beside `held`; `overloaded` when the
    /// budget has none.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: u64) -> Result<()> {
        let have = held.as_ref().map_or(0, |p| p.num_permits() as u64);
        let need = bytes.div_ceil(1024);
        if need <= have {
            return Ok(());
        }
        let more = u32::try_from(need - have).unwrap_or(u32::MAX);
        let permit = self
            .kib
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| bodies_overloaded(self.mib))?;
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// The room a request's body holds in the [`BodyBudget`], until dropped
/// (when its request has been answered).
pub struct BodyHold {
    _room: Option<OwnedSemaphorePermit>,
}

/// Room for the large response chunks the server holds until its clients
/// take them (`--max-body-mib` again, on its own): a value of a GET, a
/// page of a range, a chunk of a stream. A chunk of at least
/// [`HELD_FROM_BYTES`] takes its room until hyper has written it and drops
/// it (the room goes with the bytes: `Bytes::from_owner`). Without it, a
/// client that reads nothing held about two chunks, 33 MB with 15 MB
/// values, for `--idle-timeout`, and 300 such clients took 9.8 GB (found
/// by an audit): bounded only by `--max-connections` times the largest
/// value. With no room a GET or a page is 503 `overloaded` at once, and a
/// stream waits before its next chunk (it holds no more than that chunk
/// meanwhile) until clients take theirs or the idle timeout closes them.
#[derive(Clone)]
pub struct ResponseBudget {
    kib: Arc<Semaphore>,
    mib: u64,
}

/// Chunks smaller than this take no room: a connection's small answers are
/// bounded by the connection limit, and the hot path of small GETs stays
/// without a semaphore.
pub const HELD_FROM_BYTES: usize = 64 << 10;

/// A response chunk with the room it takes, given back when hyper drops it.
struct Held {
    bytes: Bytes,
    _room: Option<OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl ResponseBudget {
    pub fn new(bytes: usize) -> ResponseBudget {
        let kib = (bytes >> 10).clamp(1, Semaphore::MAX_PERMITS);
        ResponseBudget {
            kib: Arc::new(Semaphore::new(kib)),
            mib: (bytes >> 20) as u64,
        }
    }

    /// What a chunk of `len` bytes takes, in KiB permits; `None` for a small
    /// one. A chunk larger than the whole budget takes all of it.
    fn need(&self, len: usize) -> Option<u32> {
        (len >= HELD_FROM_BYTES).then(|| {
            let kib = len.div_ceil(1024).min(self.kib_total());
            u32::try_from(kib).unwrap_or(u32::MAX)
        })
    }

    fn kib_total(&self) -> usize {
        usize::try_from(self.mib << 10).unwrap_or(usize::MAX).max(1)
    }

    /// `bytes` holding its room, or 503 `overloaded` when there is none.
    pub fn hold(&self, bytes: Bytes) -> Result<Bytes> {
        // Most answers are small and take no room: the GET path makes no
        // `Growing` (a shared reference count taken and dropped).
        if bytes.len() < HELD_FROM_BYTES {
            return Ok(bytes);
        }
        self.growing().hold(bytes)
    }

    /// Room taken step by step for a body while it is built (see
    /// [`Growing`]).
    pub fn growing(&self) -> Growing {
        Growing {
            budget: self.clone(),
            room: None,
            kib: 0,
        }
    }

    fn overloaded(&self) -> Error {
        Error::Unavailable {
            message: format!(
                "the server is overloaded: the answers it holds for clients that have not taken \
                 them yet take its memory for them ({} MiB, --max-body-mib); retry later",
                self.mib
            ),
            overloaded: true,
        }
    }
}

/// The room of a response body that is built a part at a time (a page of
/// a range): taken as the body grows, so that a body with no room is
/// refused before it is built whole. Built first and held after, 200
/// pages of large values took 3.7 GB with a 64 MiB budget before the
/// last ones were refused, seconds later (found by an audit).
pub struct Growing {
    budget: ResponseBudget,
    room: Option<OwnedSemaphorePermit>,
    /// KiB held in `room`.
    kib: u32,
}

/// The room of a growing body is taken in steps of this many KiB.
const GROWING_STEP_KIB: u32 = 256;

impl Growing {
    /// Room for a body of `len` bytes so far, or 503 `overloaded`.
    pub fn cover(&mut self, len: usize) -> Result<()> {
        let Some(need) = self.budget.need(len) else {
            return Ok(());
        };
        if need <= self.kib {
            return Ok(());
        }
        let total = u32::try_from(self.budget.kib_total()).unwrap_or(u32::MAX);
        let want = need.next_multiple_of(GROWING_STEP_KIB).min(total.max(need));
        let more = self
            .budget
            .kib
            .clone()
            .try_acquire_many_owned(want - self.kib)
            .map_err(|_| self.budget.overloaded())?;
        match &mut self.room {
            Some(room) => room.merge(more),
            None => self.room = Some(more),
        }
        self.kib = want;
        Ok(())
    }

    /// The whole body, holding its room until hyper drops it.
    pub fn hold(mut self, bytes: Bytes) -> Result<Bytes> {
        self.cover(bytes.len())?;
        Ok(match self.room {
            Some(room) => Bytes::from_owner(Held {
                bytes,
                _room: Some(room),
            }),
            None => bytes,
        })
    }
}

/// When the next part of a body begun at `started` must have come, `got`
/// bytes in: after the grace, at [`MIN_BODY_RATE`].
fn paced(started: tokio::time::Instant, grace: Duration, got: u64) -> tokio::time::Instant {
    started + grace + Duration::from_millis(got * 1000 / MIN_BODY_RATE)
}

/// `refusal`, once the rest of the body has been read and dropped (at the
/// pace a body must keep, and up to `limit` bytes): a client still sending
/// its body when the server closed would see a reset or a broken pipe,
/// not the 503.
async fn refuse_after_drain(
    mut body: Incoming,
    started: tokio::time::Instant,
    (grace, limit): (Duration, usize),
    refusal: Error,
) -> Error {
    let mut got = 0u64;
    while got <= limit as u64 {
        match tokio::time::timeout_at(paced(started, grace, got), body.frame()).await {
            Ok(Some(Ok(frame))) => {
                got += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            // All of it came: the connection may serve the next request.
            Ok(None) => {
                super::conn::body_read();
                break;
            }
            _ => break,
        }
    }
    refusal
}

/// Why a body could not be read: a client that stopped sending it for
/// `--idle-timeout` (the connection timed out under hyper, which says
/// only "error reading a body from connection") or another failure.
fn unread_body(e: &hyper::Error, got: usize, announced: Option<u64>) -> Error {
    let of = announced.map_or_else(String::new, |len| format!(" of {len}"));
    let mut source = std::error::Error::source(e);
    // hyper says only "error reading a body from connection": its cause
    // says what went wrong (found by an audit).
    let mut innermost = None;
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::TimedOut => {
                    return Error::invalid(format!(
                        "the request body stopped coming: {got} bytes{of} came, then nothing \
                         for --idle-timeout; nothing was applied"
                    ));
                }
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe => {
                    return Error::invalid(format!(
                        "the connection ended inside the request body: {got} bytes{of} came; \
                         nothing was applied"
                    ));
                }
                _ => {}
            }
        }
        innermost = Some(cause.to_string());
        source = cause.source();
    }
    match innermost {
        // Bad chunked framing, mostly: a chunk size that is not one.
        Some(why) => Error::invalid(format!(
            "the request body could not be read after {got} bytes{of}: {why}; nothing was \
             applied"
        )),
        None => Error::invalid(format!(
            "the request body could not be read after {got} bytes{of}: {e}; nothing was applied"
        )),
    }
}

fn bodies_overloaded(mib: u64) -> Error {
    Error::Unavailable {
        message: format!(
            "the server is overloaded: the request bodies it holds take its memory for them \
             ({mib} MiB, --max-body-mib); retry later"
        ),
        overloaded: true,
    }
}

/// Reads a request body of at most `limit` bytes. A `Content-Length` over
/// the limit is refused before anything is read, and a body that grows past
/// it is refused as soon as it does: nothing over the limit is buffered.
/// Room for the body is taken from `budget` before it is read (for a body
/// of unknown length, as it comes), and held until the [`BodyHold`] is
/// dropped: 503 `overloaded` at once when there is none. A body that comes
/// slower than [`MIN_BODY_RATE`] after the budget's grace is refused (400).
/// Once it is in, the server is at work (`conn::body_read`).
pub async fn read_limited(
    parts: &http::request::Parts,
    mut body: Incoming,
    limit: usize,
    too_large: impl Fn() -> Error,
    budget: &BodyBudget,
) -> Result<(Bytes, BodyHold)> {
    let announced = content_length(&parts.headers)?;
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let started = tokio::time::Instant::now();
    let mut held = None;
    if let Some(len) = announced
        && let Err(e) = budget.take(&mut held, len)
    {
        // Reading the body would make hyper send `100 Continue`, and the
        // client upload it for nothing: refuse it unread (hyper then
        // closes the connection), as a body over the limit is.
        if expects_continue(&parts.headers) {
            return Err(e);
        }
        return Err(refuse_after_drain(body, started, (budget.grace, limit), e).await);
    }
    // The frames as they came: a body in one frame (most) is not copied.
    let mut frames: Vec<Bytes> = Vec::new();
    let mut got = 0usize;
    loop {
        let deadline = paced(started, budget.grace, got as u64);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(frame)) => frame.map_err(|e| unread_body(&e, got, announced))?,
            Ok(None) => break,
            Err(_) => {
                return Err(Error::invalid(format!(
                    "the request body came too slowly: {} bytes{} in {:.0} s, and a body must \
                     come at {MIN_BODY_RATE} bytes a second or more after its first {} s \
                     (twice --header-timeout); nothing was applied",
                    got,
                    announced.map_or_else(String::new, |len| format!(" of {len}")),
                    started.elapsed().as_secs_f64(),
                    budget.grace.as_secs_f64()
                )));
            }
        };
        if let Ok(data) = frame.into_data() {
            got += data.len();
            if got > limit {
                return Err(too_large());
            }
            if announced.is_none()
                && let Err(e) = budget.take(&mut held, got as u64)
            {
                drop((frames, held));
                let pace = (budget.grace, limit);
                return Err(refuse_after_drain(body, started, pace, e).await);
            }
            frames.push(data);
        }
    }
    super::conn::body_read();
    let body = match frames.len() {
        0 => Bytes::new(),
        1 => frames.swap_remove(0),
        _ => {
            let mut whole = BytesMut::with_capacity(got);
            for frame in &frames {
                whole.extend_from_slice(frame);
            }
            whole.freeze()
        }
    };
    Ok((body, BodyHold { _room: held }))
}

/// Whether the client waits for `100 Continue` before sending its body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(v) = headers.get(http::header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| Error::invalid("Content-Length is not a number"))
}
