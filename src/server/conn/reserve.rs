//! Connections over `--max-connections`. Each is refused with a 503 once
//! it has said what it wants, except a monitoring request (`GET` or `HEAD`
//! of `/healthz`, `/readyz` or `/metrics`): while one of the
//! [`MONITORING_RESERVE`] places is free, it is answered exactly as on any
//! other connection, which is then closed. So under the very overload an
//! operator needs to see, scrapes and health checks still get through (as
//! PostgreSQL keeps `superuser_reserved_connections`, and HAProxy and
//! nginx their status pages).
//!
//! The head is read here, before hyper sees it, bounded by [`HEAD_TIME`]
//! and [`HEAD_BYTES`]: everything that is not a monitoring request with a
//! free place (another route, a full reserve, a slow, oversized or
//! unparsable head) gets the 503, where hyper would answer 400 or 431, or
//! close without a word. A place is taken as soon as the request line
//! names a monitoring route, so no other connection can hold one; once
//! the head is whole, it is handed to hyper with the bytes already read
//! and served by the one service, keep-alive off.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::super::State;
use super::super::limits::{MAX_HEADER_FIELDS, MONITORING_RESERVE};
use super::super::routes::{Route, RouteDef};
use super::{HeadClock, answer, serve_one};

/// Time a connection over the limit has for its TLS handshake and the
/// head of its request, from its accept: a scraper or a health checker
/// sends its request at once, within a round trip. It is the second a
/// refused connection had to be told so before the head was read, and
/// bounds how long a silent connection is kept before its 503.
const HEAD_TIME: Duration = Duration::from_secs(1);

/// Largest request head read from a connection over the limit: a
/// Prometheus scrape's is about 300 bytes, a health check's less; 4 KiB
/// leaves room for a long bearer token, and is what a refused connection
/// read anyway, draining its request.
const HEAD_BYTES: usize = 4096;

/// Bytes read at a time: a head comes in one or two.
const READ_CHUNK: usize = 1024;

/// Longest a reserved connection is served, from its head: Prometheus's
/// default scrape timeout, by which the scraper has given up. It bounds
/// how long a client that does not read its answer keeps a place.
const ANSWER_TIME: Duration = Duration::from_secs(10);

/// What a connection over the limit needs to be answered from the
/// reserve.
pub(super) struct Reserve {
    pub state: Arc<State>,
    /// The [`MONITORING_RESERVE`] places, shared by all such connections.
    pub places: Arc<Semaphore>,
    /// The server's HTTP/1 settings with keep-alive off.
    pub builder: http1::Builder,
    /// Held while a reserved request is served, so that a graceful
    /// shutdown waits for it; dropped at once by a refusal.
    pub watcher: Watcher,
}

/// The monitoring reserve's places.
pub(super) fn places() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MONITORING_RESERVE))
}

/// Answers a connection over the limit (after its TLS handshake with
/// `tls`): its monitoring request from the reserve, else with the 503.
pub(super) async fn over_limit(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    reserve: Reserve,
) {
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + HEAD_TIME;
    match tls {
        None => one(stream, peer, deadline, reserve).await,
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => one(stream, peer, deadline, reserve).await,
            // Nothing can be said without the handshake.
            _ => reserve.state.metrics.connection_refused(),
        },
    }
}

/// One connection over the limit, past its TLS handshake if any.
async fn one<S>(mut io: S, peer: SocketAddr, deadline: Instant, reserve: Reserve)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Reserve {
        state,
        places,
        builder,
        watcher,
    } = reserve;
    let mut head = Vec::new();
    let Some(place) = read_head(&mut io, &mut head, deadline, &places).await else {
        drop(watcher);
        return refuse(io, &state).await;
    };
    state.metrics.connection_reserved();
    let io = Prefixed {
        read: head,
        at: 0,
        inner: io,
    };
    let served = serve_one(
        io,
        &builder,
        state,
        peer,
        watcher,
        Arc::new(HeadClock::new()),
    );
    let _ = tokio::time::timeout(ANSWER_TIME, served).await;
    drop(place);
}

/// Answers the 503 of a connection over the limit, and counts it.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(io: S, state: &State) {
    state.metrics.connection_refused();
    let max = state.limits.max_connections;
    let connections = if max == 1 {
        "connection"
    } else {
        "connections"
    };
    let body = format!(
        "{{\"error\":\"unavailable\",\"message\":\"the server has {max} {connections} open, \
         the limit (--max-connections); retry later\"}}\n"
    );
    let revision = state.revision();
    answer(io, "503 Service Unavailable", RETRY, &body, revision).await;
}

/// The header that tells a refused client when to come back.
const RETRY: &str = "retry-after: 1\r\n";

/// Reads a request head into `head`, by `deadline` and up to
/// [`HEAD_BYTES`]: a reserve place, taken as soon as the request line
/// names a monitoring route, once the head is whole; `None` for anything
/// else, as soon as that is known.
async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    head: &mut Vec<u8>,
    deadline: Instant,
    places: &Arc<Semaphore>,
) -> Option<OwnedSemaphorePermit> {
    let mut place = None;
    let mut buf = [0u8; READ_CHUNK];
    loop {
        match seen(head) {
            Seen::Other => return None,
            Seen::More => {}
            Seen::Monitoring { whole } => {
                if place.is_none() {
                    place = Some(places.clone().try_acquire_owned().ok()?);
                }
                if whole {
                    return place;
                }
            }
        }
        let room = HEAD_BYTES.checked_sub(head.len()).filter(|&r| r > 0)?;
        let read = io.read(&mut buf[..room.min(READ_CHUNK)]);
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

/// What the bytes of a head read so far say.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Not yet enough to tell.
    More,
    /// A monitoring request: its request line, or (`whole`) its whole head.
    Monitoring { whole: bool },
    /// Any other request, or bytes that are not one.
    Other,
}

fn seen(head: &[u8]) -> Seen {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut req = httparse::Request::new(&mut headers);
    // (A partial parse keeps the method and target it has read.)
    let whole = match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => true,
        Ok(httparse::Status::Partial) => false,
        Err(_) => return Seen::Other,
    };
    match (req.method, req.path) {
        (Some(method), _) if method != "GET" && method != "HEAD" => Seen::Other,
        (Some(_), Some(target)) if monitoring(target) => Seen::Monitoring { whole },
        (Some(_), Some(_)) => Seen::Other,
        _ => Seen::More,
    }
}

/// Whether a raw request target is a monitoring route's (matched as the
/// router matches it, on the path before any query).
fn monitoring(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    RouteDef::of(path)
        .is_some_and(|def| matches!(def.route, Route::Healthz | Route::Readyz | Route::Metrics))
}

/// A stream whose first reads give back the bytes already read from it
/// (the head), so that hyper reads the request whole.
struct Prefixed<S> {
    read: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = this.read.get(this.at..).unwrap_or_default();
        if rest.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::{Seen, seen};

    #[test]
    fn only_a_monitoring_get_or_head_is_let_through() {
        let whole = Seen::Monitoring { whole: true };
        for head in [
            &b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"HEAD /metrics HTTP/1.1\r\n\r\n",
            b"GET /readyz HTTP/1.0\r\n\r\n",
            // The route answers what it would (400: no such parameter).
            b"GET /metrics?x=1 HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(seen(head), whole, "{}", String::from_utf8_lossy(head));
        }
        for head in [
            &b"GET /v1/kv/x HTTP/1.1\r\n\r\n"[..],
            b"PUT /healthz HTTP/1.1\r\n\r\n",
            b"GET /v1/stats HTTP/1.1\r\n\r\n",
            b"GET /v1/cluster HTTP/1.1\r\n",
            b"GET /healthzz HTTP/1.1\r\n",
            b"GET http://x/metrics HTTP/1.1\r\n\r\n",
            b"POST ",
            b"\x16\x03\x01garbage",
            b"GET /metrics HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert_eq!(seen(head), Seen::Other, "{}", String::from_utf8_lossy(head));
        }
        assert_eq!(seen(b""), Seen::More);
        assert_eq!(seen(b"GE"), Seen::More);
        assert_eq!(seen(b"GET /heal"), Seen::More);
        assert_eq!(
            seen(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
            Seen::Monitoring { whole: false }
        );
    }
}
