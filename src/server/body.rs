//! Bodies: reading request bodies under a limit, and the response body type
//! (whole, or streamed from a channel with backpressure).

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
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::error::{Error, Result};

/// Every response's body.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What a stream's producer sends: chunks, then its end or its failure.
enum Chunk {
    Data(Bytes),
    End,
    Failed(std::io::Error),
}

/// The producer's side of a [`stream`]: it waits when the client reads
/// slowly.
pub struct StreamSender {
    tx: mpsc::Sender<Chunk>,
}

impl StreamSender {
    /// Sends a chunk; `false` when the client went away (stop reading).
    pub fn send(&self, chunk: Bytes) -> bool {
        self.tx.blocking_send(Chunk::Data(chunk)).is_ok()
    }

    /// Ends the stream with its last chunk (empty: none).
    fn finish(self, last: Bytes) {
        if !last.is_empty() && !self.send(last) {
            return;
        }
        let _ = self.tx.blocking_send(Chunk::End);
    }

    /// Aborts the stream: the response ends without its final chunk.
    fn fail(self, error: std::io::Error) {
        let _ = self.tx.blocking_send(Chunk::Failed(error));
    }
}

/// A body produced on a blocking thread by `produce`, through a bounded
/// channel of `chunks`: `produce` returns the last chunk, or an error. A
/// failure aborts the response without its final chunk, so the client
/// sees a broken stream, never a silently short one; so does a producer
/// that stops without finishing. A failure is logged under `what`; a
/// panic (redb's, on a damaged page) is caught and is such a failure.
pub fn stream(
    engine: &Arc<crate::engine::Engine>,
    chunks: usize,
    what: &'static str,
    produce: impl FnOnce(&StreamSender) -> Result<Bytes> + Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel(chunks);
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let tx = StreamSender { tx };
        let failed = match crate::panics::contain(|| produce(&tx)) {
            Ok(Ok(last)) => return tx.finish(last),
            Ok(Err(e)) => e,
            Err(caught) => super::fault(&engine, caught),
        };
        log!("kvr serve: {what} failed: {failed}");
        tx.fail(std::io::Error::other(failed.to_string()));
    });
    ChannelBody { rx, ended: false }.boxed_unsync()
}

struct ChannelBody {
    rx: mpsc::Receiver<Chunk>,
    /// The producer sent its end.
    ended: bool,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        self.rx.poll_recv(cx).map(|chunk| match chunk {
            Some(Chunk::Data(bytes)) => Some(Ok(Frame::data(bytes))),
            Some(Chunk::Failed(e)) => Some(Err(e)),
            Some(Chunk::End) => {
                self.ended = true;
                None
            }
            // The producer is gone without an end: never a clean one.
            None => Some(Err(std::io::Error::other(
                "the stream's reader stopped before its end",
            ))),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended
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
            _ => break,
        }
    }
    refusal
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
        return Err(refuse_after_drain(body, started, (budget.grace, limit), e).await);
    }
    // The frames as they came: a body in one frame (most) is not copied.
    let mut frames: Vec<Bytes> = Vec::new();
    let mut got = 0usize;
    loop {
        let deadline = paced(started, budget.grace, got as u64);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(frame)) => frame
                .map_err(|e| Error::invalid(format!("the request body could not be read: {e}")))?,
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
