//! Connections: the accept loop with its connection cap, the TLS handshake
//! (bounded by the header timeout, so a slow handshake cannot hold a
//! connection), timeouts on slow or idle connections, and graceful shutdown.
//! Connections over the cap are refused, but for monitoring requests
//! (`reserve`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use http::header::{CONNECTION, CONTENT_LENGTH};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::State;
use super::limits::{CLUSTER_SHUTDOWN_GRACE, MAX_HEAD_BYTES, MAX_HEADER_FIELDS, SHUTDOWN_GRACE};

mod reserve;

/// Pause after a failed `accept` (say, out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Accepts and serves connections (over TLS with `tls`) until `shutdown`
/// resolves, then stops accepting and gives in-flight requests
/// [`SHUTDOWN_GRACE`] ([`CLUSTER_SHUTDOWN_GRACE`] on a cluster member) to
/// finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(state.limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // `--header-timeout` is kept by `IdleIo` with the connection's
        // `HeadClock`: hyper's own boxed and registered a timer for every
        // request, about a tenth of the CPU of a small request.
        .header_read_timeout(None::<Duration>)
        .max_buf_size(MAX_HEAD_BYTES)
        // The buffer limit alone applies only while a head is incomplete:
        // a larger head that arrived in one read was accepted (hyper#4081).
        .max_header_size(MAX_HEAD_BYTES)
        // A client may shut down its write side once its request is sent
        // (`nc -N`, some proxies; RFC 9112 section 9.6). Without this the
        // connection closed at that EOF unanswered, while a write it
        // carried could still be applied.
        .half_close(true);
    // A connection over the cap answered from the monitoring reserve
    // carries one request.
    let places = reserve::places();
    let mut one_request = builder.clone();
    one_request.keep_alive(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors, say: once a second, not
                    // at every try.
                    super::log::event_at_most(
                        "accept",
                        std::time::Duration::from_secs(1),
                        format_args!("kvr serve: accept failed: {e}"),
                    );
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            let reserve = reserve::Reserve {
                state: state.clone(),
                places: places.clone(),
                builder: one_request.clone(),
                watcher: graceful.watcher(),
            };
            tokio::spawn(reserve::over_limit(stream, peer, tls.clone(), reserve));
            continue;
        };
        let open = super::metrics::OpenConnection::new(state.metrics.clone());
        let _ = stream.set_nodelay(true);
        let clock = Arc::new(HeadClock::new());
        let idle = IdleIo::new(stream, &state.limits, clock.clone());
        let (st, builder, watcher, tls) = (
            state.clone(),
            builder.clone(),
            graceful.watcher(),
            tls.clone(),
        );
        tokio::spawn(async move {
            match tls {
                None => serve_one(idle, &builder, st, peer, watcher, clock).await,
                Some(acceptor) => {
                    let limit = st.limits.header_timeout;
                    let shake = tokio::time::timeout(limit, handshake(&acceptor, idle, &st));
                    match shake.await {
                        Ok(Ok(stream)) => {
                            serve_one(stream, &builder, st, peer, watcher, clock).await;
                        }
                        Ok(Err(e)) if st.access_log.is_some() => {
                            log!("kvr serve: TLS handshake with {peer} failed: {e}");
                        }
                        Err(_) if st.access_log.is_some() => {
                            log!(
                                "kvr serve: TLS handshake with {peer} took over --header-timeout; closed"
                            );
                        }
                        _ => {}
                    }
                }
            }
            drop(permit);
            drop(open);
        });
    }
    drop(listener);
    let grace = if state.cluster.is_some() {
        CLUSTER_SHUTDOWN_GRACE
    } else {
        SHUTDOWN_GRACE
    };
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        log!("kvr serve: some requests did not finish within {grace:?}; cut");
    }
}

/// Serves HTTP/1.1 on one connection, plain or TLS, until it closes.
async fn serve_one<I>(
    io: I,
    builder: &http1::Builder,
    st: Arc<State>,
    peer: SocketAddr,
    watcher: Watcher,
    clock: Arc<HeadClock>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = st.clone();
    let io = OwnRefusals::new(io, clock.clone(), st.clone());
    clock.start_waiting();
    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let request = clock.stop_waiting();
        // (Both asked: a line both saw is taken off the pipelined list.)
        let pipelined = clock.pipelined.take(req.method(), req.uri());
        if clock.had_fragment(request) | pipelined {
            req.extensions_mut().insert(FragmentSent);
        }
        let has_body = !http_body::Body::is_end_stream(req.body());
        if !has_body {
            clock.begin_serving();
        }
        let serving = Serving {
            clock: clock.clone(),
            body: has_body,
        };
        let (st, clock) = (st.clone(), clock.clone());
        let http10 = req.version() == http::Version::HTTP_10;
        async move {
            let handled = super::routes::handle(st, peer, req);
            let mut response = SERVING.scope(serving, handled).await;
            // A body the answer left unread (refused before it was read: a
            // 401, a 413, a bad parameter): hyper closes the connection
            // after the answer, so the answer says so; a keep-alive client
            // sent its next request into the closed connection (audit
            // finding). A body that was read (`body_read`) set `serving`.
            // An HTTP/1.0 stream, whose end is the close, says so too; an
            // answer of known length is not one (hyper gives it its
            // `content-length`, and keeps an HTTP/1.0 keep-alive
            // connection open: it said `close, keep-alive` before).
            let unread = has_body && !clock.serving.load(Ordering::Relaxed);
            let close_delimited = http10
                && !response.headers().contains_key(CONTENT_LENGTH)
                && http_body::Body::size_hint(response.body())
                    .exact()
                    .is_none();
            if unread {
                clock.left_body_unread.store(true, Ordering::Relaxed);
            }
            if unread || close_delimited {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                // Answered as HTTP/1.0, hyper adds no `keep-alive` to it
                // for an HTTP/1.0 keep-alive request (`close, keep-alive`).
                if http10 {
                    *response.version_mut() = http::Version::HTTP_10;
                }
            }
            clock.end_serving();
            Ok::<_, std::convert::Infallible>(response.map(|body| Answer {
                body,
                clock,
                request,
            }))
        }
    });
    let served = watcher
        .watch(builder.serve_connection(TokioIo::new(io), svc))
        .await;
    // hyper answers a request it cannot parse itself (400, or 431 for a
    // head over the limit; `OwnRefusals` gives the answer our body) and
    // never hands it to `routes`: count it, and say so where requests are
    // logged, or it leaves no trace.
    if let Err(e) = served
        && e.is_parse()
    {
        state.metrics.malformed_request();
        if state.access_log.is_some() {
            log!("kvr serve: a malformed request from {peer} was refused: {e}");
        }
    }
}

/// The server side of a TLS handshake. A client that sends plain HTTP
/// instead (its first byte is not a TLS handshake record's) is answered in
/// plain HTTP that this port speaks HTTPS, and the connection is closed.
async fn handshake(
    acceptor: &TlsAcceptor,
    io: IdleIo,
    st: &State,
) -> io::Result<TlsStream<IdleIo>> {
    let mut first = [0u8; 1];
    if io.inner.peek(&mut first).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        let body = "{\"error\":\"bad_request\",\"message\":\"this kvr server speaks HTTPS \
                    only: use an https:// URL\"}\n";
        if let Some(node) = &st.cluster {
            node.settled().await; // the revision it carries (`Node::settled`)
        }
        answer(io, "400 Bad Request", "", body, st.revision()).await;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "plain HTTP on the TLS port",
        ));
    }
    acceptor.accept(io).await
}

/// The first byte of a TLS record that carries a handshake message, as
/// every ClientHello does.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How long a refused connection may take to be told so, once it is
/// known to be refused.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// Writes one JSON error response and closes the connection, reading what
/// the client sent first so that the close does not turn into a reset that
/// could discard the answer before the client reads it.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    status: &str,
    headers: &str,
    body: &str,
    revision: u64,
) {
    let response = closing_error(status, headers, body, revision);
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        let mut buf = [0u8; 4096];
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// A JSON error response written by hand (outside hyper) on a connection
/// that closes after it: `status` line, extra `headers` (each ending in
/// CRLF), the revision, and `body`. It carries a `Date` as hyper's own
/// answers do (RFC 9110 asks it of a server with a clock), when the
/// clock can be said in one (`date::now`).
fn closing_error(status: &str, headers: &str, body: &str, revision: u64) -> String {
    let date = super::date::now()
        .map(|d| format!("date: {d}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
         {headers}x-kvr-revision: {revision}\r\nconnection: close\r\n\
         {date}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// When the connection began to wait for a request's head, if it waits
/// for one: from its start (after a TLS handshake) and from the end of
/// each response, until hyper hands the next request over. [`IdleIo`]
/// holds the wait to `--header-timeout`, as hyper's own header timeout did.
struct HeadClock {
    base: Instant,
    /// Microseconds from `base`; [`NOT_WAITING`] between a request's head
    /// and the end of its response.
    since: AtomicU64,
    /// Requests whose head has arrived, so that only the latest request's
    /// response starts the next wait.
    requests: AtomicU64,
    /// Whether the server is at work on a request whose body is in (until
    /// its response head): the client is not idle then, however long it
    /// takes.
    serving: AtomicBool,
    /// When the server last finished such work, microseconds from `base`:
    /// idleness counts from there at the earliest.
    served: AtomicU64,
    /// The number the next request will have, if its request line held a
    /// `#` ([`FirstLine`]); 0: none.
    fragment: AtomicU64,
    /// Request lines with a `#` seen later in a read than its first line
    /// (pipelined requests), as hyper will parse them ([`Pipelined`]).
    pipelined: Pipelined,
    /// Whether an answer left its request's body unread: the close that
    /// follows lingers ([`OwnRefusals::linger`]).
    left_body_unread: AtomicBool,
    /// The connection's socket while it is open ([`Peer`]).
    socket: std::sync::Mutex<Socket>,
}

/// A connection's socket as [`Peer`] may look at it.
#[derive(Clone, Copy)]
enum Socket {
    /// Not known (a connection answered from the monitoring reserve).
    Unknown,
    /// Open: its descriptor, valid until [`IdleIo`] is dropped.
    Open(std::os::fd::RawFd),
    /// The connection is closed.
    Closed,
}

const NOT_WAITING: u64 = u64::MAX;

impl HeadClock {
    fn new() -> HeadClock {
        HeadClock {
            base: Instant::now(),
            since: AtomicU64::new(NOT_WAITING),
            requests: AtomicU64::new(0),
            serving: AtomicBool::new(false),
            served: AtomicU64::new(0),
            fragment: AtomicU64::new(0),
            pipelined: Pipelined::default(),
            left_body_unread: AtomicBool::new(false),
            socket: std::sync::Mutex::new(Socket::Unknown),
        }
    }

    fn socket(&self) -> std::sync::MutexGuard<'_, Socket> {
        self.socket.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether request number `request`'s request line held a `#`.
    fn had_fragment(&self, request: u64) -> bool {
        self.fragment.load(Ordering::Relaxed) == request
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(NOT_WAITING - 1)
    }

    fn begin_serving(&self) {
        self.serving.store(true, Ordering::Relaxed);
    }

    fn end_serving(&self) {
        self.served.store(self.micros(), Ordering::Relaxed);
        self.serving.store(false, Ordering::Relaxed);
    }

    /// `None` while the server is at work on a request; else when it last
    /// was.
    fn served(&self) -> Option<Instant> {
        if self.serving.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.base + Duration::from_micros(self.served.load(Ordering::Relaxed)))
    }

    fn start_waiting(&self) {
        self.since.store(self.micros(), Ordering::Relaxed);
    }

    /// A request's head arrived; returns its number.
    fn stop_waiting(&self) -> u64 {
        self.since.store(NOT_WAITING, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The response to request number `request` is done: the wait for the
    /// next head starts, unless a later request's head came first.
    fn answered(&self, request: u64) {
        if self.requests.load(Ordering::Relaxed) == request {
            self.start_waiting();
        }
    }

    fn waiting_since(&self) -> Option<Instant> {
        match self.since.load(Ordering::Relaxed) {
            NOT_WAITING => None,
            micros => Some(self.base + Duration::from_micros(micros)),
        }
    }
}

/// What the request being served knows of its connection.
struct Serving {
    clock: Arc<HeadClock>,
    /// Whether the request has a body still to read ([`body_read`]).
    body: bool,
}

tokio::task_local! {
    /// The connection of the request being served. Task-local rather than
    /// in the request's extensions, whose first insert allocates a map:
    /// ~480 instructions per PUT.
    static SERVING: Serving;
}

/// Called once a request's body is in: from then until the response the
/// server is at work, so the wait does not count as the client's idleness
/// (`--idle-timeout`). A client that stalls while sending the body still
/// does.
pub fn body_read() {
    let _ = SERVING.try_with(|serving| {
        if serving.body {
            serving.clock.begin_serving();
        }
    });
}

/// The client of the request being served, for a stream that may stay
/// silent for long (a watch): hyper reads nothing while it sends a
/// response, so a client that went away is noticed only at the next
/// write, and until then holds its connection and its place under
/// `--max-connections`.
pub fn peer() -> Option<Peer> {
    SERVING.try_with(|s| Peer(s.clock.clone())).ok()
}

/// See [`peer`].
#[derive(Clone)]
pub struct Peer(Arc<HeadClock>);

/// What [`Peer::state`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Nothing says it went away (or it cannot be told).
    There,
    /// It shut down its sending side: gone, or a client such as `nc -N`
    /// that still reads. A write tells: to a closed socket it draws a
    /// reset, which the next look sees.
    Shut,
    /// The connection is closed or reset.
    Gone,
}

impl Peer {
    /// The bytes the kernel holds for the client, not yet sent or not yet
    /// acknowledged (`SIOCOUTQ`): they go down as the client reads.
    /// `None` when it cannot be told.
    #[allow(unsafe_code)]
    pub fn unsent(&self) -> Option<usize> {
        use std::os::fd::AsRawFd;
        self.with_socket(|fd| {
            let mut unsent: libc::c_int = 0;
            // SAFETY: SIOCOUTQ (TIOCOUTQ on a socket) writes one int.
            let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut unsent) };
            (r == 0).then(|| usize::try_from(unsent).ok()).flatten()
        })
        .flatten()
    }

    /// Cuts the connection off: both ways shut down, so that hyper's
    /// pending write fails and it drops the connection with what it
    /// holds. For a client that takes nothing of what it is owed. Not a
    /// reset: the client still reads what its kernel and ours hold, then
    /// the end of the connection.
    pub fn cut(&self) {
        // (A socket the client already closed needs nothing more.)
        let _ = self.with_socket(|fd| rustix::net::shutdown(fd, rustix::net::Shutdown::Both));
    }

    /// `f` on the socket, if it is open.
    #[allow(unsafe_code)]
    fn with_socket<T>(&self, f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> T) -> Option<T> {
        let socket = self.0.socket();
        let Socket::Open(fd) = *socket else {
            return None;
        };
        // SAFETY: as in `state`: open while the lock held here says so.
        Some(f(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }))
    }

    /// Looks at the socket without waiting (`poll` for `POLLRDHUP`).
    #[allow(unsafe_code)]
    pub fn state(&self) -> PeerState {
        use rustix::event::{PollFd, PollFlags, poll};
        let socket = self.0.socket();
        let fd = match *socket {
            Socket::Unknown => return PeerState::There,
            Socket::Closed => return PeerState::Gone,
            Socket::Open(fd) => fd,
        };
        // SAFETY: the descriptor is open while the lock held here says
        // `Open`: `IdleIo` sets `Closed` under this lock before it drops
        // the stream that owns the descriptor. It is only polled.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let mut fds = [PollFd::new(&fd, PollFlags::RDHUP)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&zero)) {
            Ok(_)
                if fds[0]
                    .revents()
                    .intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) =>
            {
                PeerState::Gone
            }
            Ok(_) if fds[0].revents().contains(PollFlags::RDHUP) => PeerState::Shut,
            _ => PeerState::There,
        }
    }
}

/// A response body that starts its connection's wait for the next head
/// once hyper is done with it (at its end, or as soon as hyper sees it is
/// empty).
struct Answer {
    body: super::body::Body,
    clock: Arc<HeadClock>,
    /// The number of its request ([`HeadClock::stop_waiting`]).
    request: u64,
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.clock.answered(self.request);
    }
}

impl http_body::Body for Answer {
    type Data = bytes::Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The connection as hyper sees it, which turns hyper's own answer to a
/// request it cannot parse (400 for a malformed request line or header,
/// 414 for a target over its limit, 431 for a head over 64 KiB or of more
/// than 100 header fields: an empty
/// body, no `X-Kvr-Revision`) into an error like every other (SPEC
/// "Errors": a JSON body with a code, and the revision). hyper writes
/// such an answer, a bare head, only while the connection waits for a
/// request's head, then flushes and shuts the connection down; a
/// response of ours always carries `x-kvr-revision`.
struct OwnRefusals<I> {
    inner: I,
    clock: Arc<HeadClock>,
    state: Arc<State>,
    /// Our answer in place of hyper's.
    reply: Option<Reply>,
    /// The request line being read, to find a `#` that hyper drops.
    line: FirstLine,
    /// The lines read, for the pipelined requests' `#`.
    lines: LineScan,
    /// The lingering close under way, if any.
    lingering: Option<Lingering>,
}

/// A close after an answer that left the request's body unread, as
/// nginx's `lingering_close` does it: the server says it will send no
/// more (a FIN), then reads and drops what the client still sends, until
/// the client closes or a bound is reached. Closed at once, with the body
/// still coming, the connection was reset, and a client that sends the
/// whole body before it reads the answer (Python's `http.client`, so
/// `requests`) got a broken pipe instead of the 413 or 401: every time
/// for a 5 MB value over `--max-value-bytes 100000`, 4 times in 10 for
/// 900 KB.
struct Lingering {
    /// When the lingering ends whatever comes.
    end: Pin<Box<Sleep>>,
    /// When it ends if nothing more comes.
    quiet: Pin<Box<Sleep>>,
    dropped: usize,
    write_shut: bool,
}

/// The longest a lingering close lasts.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// The longest it waits for more of the body.
const LINGER_QUIET: Duration = Duration::from_secs(1);
/// The most it reads and drops: a request of the largest default size.
const LINGER_BYTES: usize = 64 << 20;

/// The answer [`OwnRefusals`] gives in place of hyper's.
enum Reply {
    /// Its status line and body, held while the node's newest revision may
    /// be below one it answered before (a cluster member restarted after a
    /// power loss, `Node::settled`): the revision goes in once it may not.
    Held {
        status: &'static str,
        body: String,
        until: Pin<Box<dyn Future<Output = ()> + Send>>,
    },
    /// Its bytes, and how much of them is written.
    Writing(Vec<u8>, usize),
}

/// In the extensions of a request whose request line held a `#`: hyper's
/// URI parser drops a fragment, and everything after it, without a word,
/// so `PUT /v1/kv/a#b` would write key `a`. A fragment is never sent by a
/// client that means one (curl and browsers strip it), so such a target is
/// a key or parameter that should have been sent with `%23`: refused (400).
#[derive(Clone, Copy)]
pub struct FragmentSent;

/// The request line of the head a connection waits for, as it is read: the
/// bytes up to its first line feed (bounded), then whether they hold a `#`
/// in the target. Only the first line of the bytes read while the
/// connection waits for a head is looked at: a request line that came in
/// the same read as the end of the request before it (pipelined, or sent
/// at once after a body) is [`Pipelined`]'s.
#[derive(Default)]
struct FirstLine {
    /// The request number ([`HeadClock::requests`]) whose head this is.
    of: u64,
    bytes: Vec<u8>,
    done: bool,
}

/// Longest request line looked at; a longer one is refused by hyper (414)
/// or is not a request line.
const FIRST_LINE_BYTES: usize = MAX_HEAD_BYTES;

impl FirstLine {
    /// Takes bytes read while waiting for request number `next`'s head;
    /// true once they show a request line with a `#` in its target.
    fn read(&mut self, next: u64, mut bytes: &[u8]) -> bool {
        if self.of != next {
            *self = FirstLine {
                of: next,
                ..FirstLine::default()
            };
        }
        if self.done {
            return false;
        }
        if self.bytes.is_empty() {
            // hyper skips empty lines before a request line.
            let blank = bytes
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            bytes = &bytes[blank..];
        }
        let end = bytes.iter().position(|&b| b == b'\n');
        if let (true, Some(end)) = (self.bytes.is_empty(), end) {
            // The usual case, the line whole in one read: nothing copied.
            self.done = true;
            return fragment_in(&bytes[..end]);
        }
        let take = end.unwrap_or(bytes.len());
        let room = FIRST_LINE_BYTES.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&bytes[..take.min(room)]);
        if end.is_none() && self.bytes.len() < FIRST_LINE_BYTES {
            return false;
        }
        self.done = true;
        let found = fragment_in(&self.bytes);
        self.bytes = Vec::new();
        found
    }
}

/// Whether `line` is a request line (`METHOD /target HTTP/1.x`) whose
/// target holds a `#`.
fn fragment_in(line: &[u8]) -> bool {
    if !line.contains(&b'#') {
        return false;
    }
    let mut words = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    // Origin form (`/v1/kv/a`) or absolute form (`http://host/v1/kv/a`).
    let form = target.starts_with(b"/")
        || target.starts_with(b"http://")
        || target.starts_with(b"https://");
    !method.is_empty()
        && method.iter().all(u8::is_ascii_uppercase)
        && form
        && target.contains(&b'#')
        && version.starts_with(b"HTTP/1.")
}

/// Request lines with a `#` in their target that [`FirstLine`] cannot
/// see: those that begin after the connection's first line, as a
/// pipelined request's does (it comes in the same read as the end of the
/// request before it, whole or in part, and hyper parses it from its
/// buffer). [`LineScan`] hands over such lines whole, also when the socket
/// delivered one in two reads. Each is kept as hyper will hand it over,
/// method and target cut at the `#`, and the request that matches it is
/// refused as [`FragmentSent`]. A line inside a body can look like one
/// too; it is only a problem if a later request on the connection is
/// exactly what it would be cut to, so the list is short and its oldest
/// entries go.
#[derive(Default)]
struct Pipelined {
    any: AtomicBool,
    lines: std::sync::Mutex<std::collections::VecDeque<(Vec<u8>, Vec<u8>)>>,
}

/// Lines [`Pipelined`] keeps per connection.
const PIPELINED_LINES: usize = 16;

impl Pipelined {
    /// Keeps `line` (a whole line, as [`LineScan`] hands it over) if it
    /// is a request line with a `#` in its target.
    fn note(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !fragment_in(line) {
            return;
        }
        let mut words = line.split(|&b| b == b' ');
        let (Some(method), Some(target)) = (words.next(), words.next()) else {
            return;
        };
        let cut = target.split(|&b| b == b'#').next().unwrap_or_default();
        let mut kept = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == PIPELINED_LINES {
            kept.pop_front();
        }
        kept.push_back((method.to_vec(), cut.to_vec()));
        self.any.store(true, Ordering::Relaxed);
    }

    /// Whether a request with this method and URI is one of the lines
    /// kept (and then no longer kept).
    fn take(&self, method: &http::Method, uri: &http::Uri) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        let mut kept = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let uri = uri.to_string();
        let found = kept
            .iter()
            .position(|(m, t)| m == method.as_str().as_bytes() && t == uri.as_bytes());
        if let Some(i) = found {
            kept.remove(i);
        }
        self.any.store(!kept.is_empty(), Ordering::Relaxed);
        found.is_some()
    }
}

/// The lines of a connection's bytes as they arrive, for [`Pipelined`]:
/// every line that begins at a line start is handed over whole when it
/// holds a `#`, also one that spans reads (a pipelined request line the
/// socket delivered in two parts) as long as its beginning can be a
/// request line's; such a beginning is kept until the line ends.
#[derive(Default)]
struct LineScan {
    /// Whether the last read ended inside a line.
    mid_line: bool,
    /// The beginning of that line, when it can be a request line's.
    carry: Option<Vec<u8>>,
}

impl LineScan {
    /// Takes the bytes of one read; `line` gets each line that ends in it.
    fn read(&mut self, read: &[u8], mut line: impl FnMut(&[u8])) {
        let mut rest = read;
        if self.mid_line {
            let end = memchr::memchr(b'\n', rest);
            let part = &rest[..end.unwrap_or(rest.len())];
            if let Some(mut carry) = self.carry.take()
                && carry.len() + part.len() <= FIRST_LINE_BYTES
            {
                carry.extend_from_slice(part);
                match end {
                    Some(_) => line(&carry),
                    None => self.carry = Some(carry),
                }
            }
            let Some(end) = end else {
                return;
            };
            rest = &rest[end + 1..];
            self.mid_line = false;
        }
        // `rest` begins a line: its whole lines, then what is left of it.
        // memchr's searches, not byte loops: a PUT's read is its head and
        // its body, and the loops cost ~700 instructions per PUT.
        let whole = memchr::memrchr(b'\n', rest).map_or(0, |i| i + 1);
        if let Some(lines) = rest[..whole].strip_suffix(b"\n")
            && memchr::memchr(b'#', lines).is_some()
        {
            lines.split(|&b| b == b'\n').for_each(&mut line);
        }
        let tail = &rest[whole..];
        self.mid_line = !tail.is_empty();
        if self.mid_line && may_begin_request_line(tail) {
            self.carry = Some(tail.to_vec());
        }
    }
}

/// Whether `bytes`, the beginning of a line, can be that of a request
/// line (`METHOD /target` or `METHOD http…`): the test that keeps
/// [`LineScan`] from copying the ends of bodies.
fn may_begin_request_line(bytes: &[u8]) -> bool {
    let method = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (1..=20).contains(&method)
        && bytes.len() <= FIRST_LINE_BYTES
        && match bytes.get(method) {
            None => true,
            Some(b' ') => matches!(bytes.get(method + 1), None | Some(b'/' | b'h')),
            Some(_) => false,
        }
}

/// Most bytes of a refused request read and dropped before the close, so
/// that the close does not reset the connection (which can discard the
/// answer before the client reads it).
const REFUSED_DRAIN_BYTES: usize = 1 << 20;

impl<I: AsyncRead + AsyncWrite + Unpin> OwnRefusals<I> {
    fn new(inner: I, clock: Arc<HeadClock>, state: Arc<State>) -> OwnRefusals<I> {
        OwnRefusals {
            inner,
            clock,
            state,
            reply: None,
            line: FirstLine::default(),
            lines: LineScan::default(),
            lingering: None,
        }
    }

    /// The lingering close ([`Lingering`]): ready once it is over.
    fn linger(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let lingering = self.lingering.get_or_insert_with(|| Lingering {
            end: Box::pin(tokio::time::sleep(LINGER_TIME)),
            quiet: Box::pin(tokio::time::sleep(LINGER_QUIET)),
            dropped: 0,
            write_shut: false,
        });
        if !lingering.write_shut {
            std::task::ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            lingering.write_shut = true;
        }
        let mut buf = [0u8; 16 << 10];
        while lingering.dropped < LINGER_BYTES {
            if lingering.end.as_mut().poll(cx).is_ready()
                || lingering.quiet.as_mut().poll(cx).is_ready()
            {
                break;
            }
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    lingering.dropped += read.filled().len();
                    let quiet = Instant::now() + LINGER_QUIET;
                    lingering.quiet.as_mut().reset(quiet);
                }
                // The client closed (or the connection failed).
                Poll::Ready(_) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Whether `bytes`, written now, are hyper's answer to a request it
    /// could not parse; if so, our answer takes their place.
    fn takes_over(&mut self, bytes: &[u8]) -> bool {
        // Any response of ours is told by its ends (a 4xx of ours has a
        // body, or is a HEAD answer with the revision).
        if !bytes.starts_with(b"HTTP/1.1 4")
            || !bytes.ends_with(b"\r\n\r\n")
            || self.clock.waiting_since().is_none()
        {
            return false;
        }
        // (hyper writes header names in lower case.)
        let Some(head) = std::str::from_utf8(bytes).ok() else {
            return false;
        };
        if !head.contains("\r\ncontent-length: 0\r\n") || head.contains("x-kvr-revision") {
            return false;
        }
        let (status, message) = match head.get(9..12) {
            Some("400") => (
                "400 Bad Request",
                // The usual cause is a key's bytes sent as they are
                // (found by an audit: `curl 'http://…/v1/kv/a<b>'`).
                "the request could not be parsed as HTTP/1.1 (its request line or a header): \
                 a target may not hold a space, \", <, > or ` as they are; percent-encode \
                 them in a key (%20, %22, %3C, %3E, %60)"
                    .to_string(),
            ),
            Some("414") => (
                "414 URI Too Long",
                "the request target is too long".to_string(),
            ),
            Some("431") => (
                "431 Request Header Fields Too Large",
                // hyper answers both limits alike: name both.
                format!(
                    "the request head is too large: over {} KiB (request line and headers) or \
                     more than {MAX_HEADER_FIELDS} header fields",
                    MAX_HEAD_BYTES >> 10
                ),
            ),
            _ => return false,
        };
        let body = format!(
            "{}\n",
            serde_json::json!({"error": "bad_request", "message": message})
        );
        self.reply = Some(match self.state.cluster.clone() {
            Some(node) if !node.recovered() => Reply::Held {
                status,
                body,
                until: Box::pin(async move { node.settled().await }),
            },
            _ => Reply::Writing(
                closing_error(status, "", &body, self.state.revision()).into_bytes(),
                0,
            ),
        });
        true
    }

    /// Writes what is left of our answer, if any (once it may be sent).
    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(Reply::Held {
            status,
            body,
            until,
        }) = &mut self.reply
        {
            std::task::ready!(until.as_mut().poll(cx));
            let bytes = closing_error(status, "", body, self.state.revision()).into_bytes();
            self.reply = Some(Reply::Writing(bytes, 0));
        }
        let Some(Reply::Writing(bytes, written)) = &mut self.reply else {
            return Poll::Ready(Ok(()));
        };
        while *written < bytes.len() {
            match std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => *written += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads and drops what the refused client has sent so far (bounded).
    fn drain(&mut self, cx: &mut Context<'_>) {
        let mut buf = [0u8; 8192];
        let mut dropped = 0;
        while dropped < REFUSED_DRAIN_BYTES {
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => dropped += read.filled().len(),
                _ => return,
            }
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for OwnRefusals<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if this.clock.waiting_since().is_some() {
            let next = this.clock.requests.load(Ordering::Relaxed) + 1;
            if this.line.read(next, read) {
                this.clock.fragment.store(next, Ordering::Relaxed);
            }
        }
        let pipelined = &this.clock.pipelined;
        this.lines.read(read, |line| pipelined.note(line));
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for OwnRefusals<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Once ours is queued, hyper's answer goes no further.
        if this.reply.is_some() || this.takes_over(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // hyper's answer is a head alone: one slice with bytes.
        let swallow = this.reply.is_some() || {
            let mut parts = bufs.iter().filter(|b| !b.is_empty());
            match (parts.next(), parts.next()) {
                (Some(only), None) => this.takes_over(only),
                _ => false,
            }
        };
        if swallow {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_reply(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reply.is_some() {
            std::task::ready!(this.poll_reply(cx))?;
            this.drain(cx);
        }
        if this.clock.left_body_unread.load(Ordering::Relaxed) {
            return this.linger(cx);
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The shortest a connection's timer is armed ahead (tokio's timers tick
/// by the millisecond anyway).
const MIN_TIMER_STEP: Duration = Duration::from_millis(1);

/// A TCP stream that fails with `TimedOut` once it has been waiting on the
/// peer, reading or writing, for `idle` without any progress either way,
/// or once its [`HeadClock`] has waited for a request head for longer than
/// `head`.
///
/// One timer per connection, moved only when it fires: it is armed at the
/// earliest deadline known then, and never later than `now + head`, which
/// is the earliest a wait for a head that starts later can end; when it
/// fires early, the deadlines are checked and it is armed again. Moving it
/// at every request took the runtime's timer lock twice per request.
struct IdleIo {
    inner: TcpStream,
    idle: Duration,
    head: Duration,
    clock: Arc<HeadClock>,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl IdleIo {
    fn new(inner: TcpStream, limits: &super::limits::Limits, clock: Arc<HeadClock>) -> IdleIo {
        use std::os::fd::AsRawFd;
        *clock.socket() = Socket::Open(inner.as_raw_fd());
        let now = Instant::now();
        let (idle, head) = (limits.idle_timeout, limits.header_timeout);
        IdleIo {
            inner,
            idle,
            head,
            clock,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle.min(head))),
        }
    }

    /// Called when the stream is not ready: fails past a deadline, else
    /// leaves the timer to wake the connection.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let Some(served) = self.clock.served() else {
                // The server is at work, not waiting on the client.
                self.timer.as_mut().reset(now + self.idle.min(self.head));
                continue;
            };
            let idle_end = self.last.max(served) + self.idle;
            if idle_end <= now {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle too long (--idle-timeout)",
                ));
            }
            let mut next = idle_end.min(now + self.head);
            if let Some(since) = self.clock.waiting_since() {
                let head_end = since + self.head;
                if head_end <= now {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "a request head took longer than --header-timeout",
                    ));
                }
                next = next.min(head_end);
            }
            // Never at once again: the loop would spin on a tiny timeout.
            self.timer.as_mut().reset(next.max(now + MIN_TIMER_STEP));
        }
        Ok(())
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, p: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match p {
            Poll::Ready(r) => {
                self.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => match self.poll_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl Drop for IdleIo {
    fn drop(&mut self) {
        // Before the stream, and its descriptor, go (see `Peer::state`).
        *self.clock.socket() = Socket::Closed;
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.progress(cx, p)
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(cx, p)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(cx, p)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::{FirstLine, HeadClock, LineScan, fragment_in, may_begin_request_line};

    #[test]
    fn a_hash_in_a_request_lines_target_is_found_and_nowhere_else() {
        for line in [
            &b"PUT /v1/kv/a#b HTTP/1.1"[..],
            b"GET /v1/kv?key=q#x HTTP/1.1\r",
            b"DELETE /v1/kv/#x HTTP/1.0",
            b"GET /# HTTP/1.1",
            b"PUT http://x/v1/kv/a#b HTTP/1.1",
        ] {
            assert!(fragment_in(line), "{}", String::from_utf8_lossy(line));
        }
        for line in [
            &b"PUT /v1/kv/a%23b HTTP/1.1"[..],
            b"X-Tag: a#b",
            b"Cookie: x=#1 HTTP/1.1",
            b"put /v1/kv/a#b HTTP/1.1",
            b"PUT /v1/kv/a#b",
            b"PUT /v1/kv/a #b HTTP/1.1",
            b"",
        ] {
            assert!(!fragment_in(line), "{}", String::from_utf8_lossy(line));
        }
    }

    /// The line is gathered across reads, after the blank lines hyper
    /// skips, once per request; the head's other lines are not looked at.
    #[test]
    fn the_first_line_is_read_across_reads_once_per_request() {
        let mut line = FirstLine::default();
        assert!(!line.read(1, b"\r\nPUT /v1/kv/a"));
        assert!(line.read(1, b"#b HTTP/1.1\r\nHost: x\r\n"));
        assert!(!line.read(1, b"GET /x#y HTTP/1.1\r\n"));
        assert!(!line.read(2, b"GET /v1/kv/a HTTP/1.1\r\nX: GET /#y HTTP/1.1\r\n"));
        assert!(!line.read(3, b"GET /v1/kv/a#"));
        assert!(line.read(3, b"x HTTP/1.1\r\n"));
    }

    /// Lines are handed over whole when they hold a '#', also across
    /// reads, but only from a line start; the end of a body that cannot
    /// begin a request line is not kept.
    #[test]
    fn lines_are_scanned_across_reads_from_a_line_start() {
        let scan = |reads: &[&[u8]]| {
            let mut scan = LineScan::default();
            let mut lines = Vec::new();
            for read in reads {
                scan.read(read, |l| {
                    lines.push(String::from_utf8_lossy(l).into_owned())
                });
            }
            (lines, scan.carry.is_some())
        };
        let (lines, _) = scan(&[
            b"GET / HTTP/1.1\r\n\r\nDELETE /v1/kv/a",
            b"#b HTTP/1.1\r\nX: y\r\n",
        ]);
        assert_eq!(lines, ["DELETE /v1/kv/a#b HTTP/1.1\r"]);
        let (lines, _) = scan(&[b"PU", b"T /a", b"#b HTTP/1.1\r", b"\nHost: x\r\n"]);
        assert_eq!(lines, ["PUT /a#b HTTP/1.1\r"]);
        // A read that begins inside a line: that line is not a request's.
        let (lines, _) = scan(&[b"{\"k\":1}", b"GET /a#b HTTP/1.1\r\nGET /c#d HTTP/1.1\r\n"]);
        assert_eq!(lines, ["GET /c#d HTTP/1.1\r"]);
        // Lines without a '#' are not handed over; a body's end not kept.
        let (lines, carried) = scan(&[b"GET / HTTP/1.1\r\n\r\n{\"key\":\"a#"]);
        assert!(lines.is_empty() && !carried, "{lines:?}");
        let (_, carried) = scan(&[b"GET / HTTP/1.1\r\n\r\nPUT /v1/kv/a"]);
        assert!(carried);
        for tail in [
            &b"put /a"[..],
            b"PUT a",
            b"PUT  /a",
            b"ABCDEFGHIJKLMNOPQRSTU /a",
        ] {
            assert!(
                !may_begin_request_line(tail),
                "{}",
                String::from_utf8_lossy(tail)
            );
        }
        for tail in [&b"G"[..], b"GET", b"GET ", b"GET /", b"PUT http://x/a"] {
            assert!(
                may_begin_request_line(tail),
                "{}",
                String::from_utf8_lossy(tail)
            );
        }
    }

    /// The wait for a head starts at the end of the latest request's
    /// response only: an earlier response dropped late changes nothing.
    #[test]
    fn only_the_latest_requests_answer_starts_the_wait_for_a_head() {
        let clock = HeadClock::new();
        assert!(clock.waiting_since().is_none());
        clock.start_waiting();
        assert!(clock.waiting_since().is_some());
        let first = clock.stop_waiting();
        assert!(clock.waiting_since().is_none());
        let second = clock.stop_waiting();
        clock.answered(first);
        assert!(clock.waiting_since().is_none());
        clock.answered(second);
        assert!(clock.waiting_since().is_some());
    }
}
