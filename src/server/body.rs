//! Bodies: reading request bodies under a limit, and the response body type
//! (whole, or streamed from a channel with backpressure).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Every response's body.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body fed by a bounded channel: the producer waits when the client reads
/// slowly. An `Err` item aborts the response without its final chunk, so the
/// client sees a broken stream, never a silently short one.
pub fn streamed(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Body {
    ChannelBody { rx }.boxed_unsync()
}

struct ChannelBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

/// Reads a request body of at most `limit` bytes. A `Content-Length` over
/// the limit is refused before anything is read, and a body that grows past
/// it is refused as soon as it does: nothing over the limit is buffered.
/// Once it is in, the server is at work (`conn::BodyRead`).
pub async fn read_limited(
    parts: &http::request::Parts,
    body: Incoming,
    limit: usize,
    too_large: impl Fn() -> Error,
) -> Result<Bytes> {
    if let Some(len) = content_length(&parts.headers)?
        && len > limit as u64
    {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => {
            if let Some(read) = parts.extensions.get::<super::conn::BodyRead>() {
                read.done();
            }
            Ok(collected.to_bytes())
        }
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Error::invalid(format!(
            "the request body could not be read: {e}"
        ))),
    }
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
