//! `kvr serve`: the HTTP API of SPEC "HTTP API".
//!
//! [`run`] is a function of a bound listener, the [`State`] and a shutdown
//! future, so tests and `kvr serve --listen 127.0.0.1:0` never race for a
//! port. Modules, one concern each:
//!
//! * `conn`: accept loop, connection cap, idle and header timeouts, the
//!   TLS handshake, graceful shutdown; `conn/reserve`: connections over
//!   the cap, refused but for monitoring requests;
//! * `routes`: [`ROUTES`], the one list of paths, methods and query
//!   parameters; routing, authentication order, the point routes; `range`:
//!   pages and NDJSON streams;
//! * `backup`: the `GET /v1/backup` stream;
//! * `watch`: the `GET /v1/watch` change feed;
//! * `sweeper`: proposes the expiry deletes of keys whose time has come;
//! * `writer`: the group-commit writer thread over the write-ahead log
//!   (`crate::wal`);
//! * `target`: percent-decoding of keys from the raw request target;
//! * `headers`: list headers read over all their lines: `Accept`,
//!   `If-Match`, `If-None-Match`;
//! * `body`, `response`: bodies under limits, errors as HTTP;
//! * `limits`, `auth`, `metrics` (`process`: the `process_*` metrics);
//! * `log`: timestamped event lines and the access log, off the request
//!   path on its own thread.

/// An event line on stderr, timestamped, written at once and never a
/// panic: `eprintln!` panics when stderr cannot be written (a log file on a
/// full disk), which would take down the writer thread or a request with
/// it. See `log.rs`.
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::server::log::event(format_args!($($arg)*))
    };
}

mod auth;
mod backup;
mod body;
mod conn;
pub mod date;
mod headers;
pub mod joining;
mod kv;
pub mod limits;
pub mod log;
pub mod metrics;
mod process;
mod range;
mod readers;
mod response;
mod routes;
pub mod sweeper;
pub mod target;
mod watch;
pub mod writer;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use kv::EXPIRES_AT;
pub use limits::Limits;
use log::AccessLog;
use metrics::Metrics;
pub use routes::{ROUTES, Route, RouteDef};
use writer::Writer;

use crate::engine::{Engine, EngineOptions, Snapshot};
use crate::error::{Error, Result};
use crate::store::Store;

/// Everything a request handler needs.
pub struct State {
    pub engine: Arc<Engine>,
    pub writer: Writer,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// The bearer token every route but `/healthz` and `/v1/openapi.json`
    /// requires, if any.
    pub token: Option<String>,
    /// The per-request log; `None` with `--quiet`.
    pub access_log: Option<AccessLog>,
    /// What the start replayed from the log of a crashed server.
    pub recovered: Option<crate::wal::Recovered>,
    /// Set when the server stops: watch streams end (they would otherwise
    /// hold the graceful shutdown until its grace runs out).
    pub closing: tokio::sync::watch::Sender<bool>,
    /// Open watch streams (they pace their reads by it).
    pub watchers: Arc<std::sync::atomic::AtomicUsize>,
    /// Cluster mode: this member.
    pub cluster: Option<Arc<crate::cluster::node::Node>>,
    /// Room for request bodies (`--max-body-mib`).
    pub bodies: body::BodyBudget,
    /// Room for large answers held for clients (`--max-body-mib` again).
    pub responses: body::ResponseBudget,
    /// The highest revision a write answered here reflected. On a
    /// follower it is the leader's, which this node may not have applied
    /// yet; see [`State::revision`].
    answered: std::sync::atomic::AtomicU64,
}

/// The error a panic caught while answering is answered with (and
/// logged as, as every internal error is): the storage engine's, on a
/// damaged page, names the file and how to check it.
pub fn fault(engine: &Engine, caught: crate::panics::Caught) -> Error {
    caught.into_served_error(engine.store().path())
}

/// The threads that read pages of the store for requests (see
/// `readers.rs`).
static PAGE_READERS: readers::Readers = readers::Readers::new("kvr-read");
/// The threads that take the store's figures for `/metrics` and
/// `/v1/stats`: apart, so that monitoring never queues behind the pages
/// of lagging watchers or a stalled disk's reads (found by a review).
static STATS_READERS: readers::Readers = readers::Readers::with_threads("kvr-stats", 2);

/// Runs `read` on one of the page readers (`readers.rs`) when its turn
/// comes, off the async workers; a panic in it (redb's, on a damaged page)
/// is its error (see [`fault`]); `what` names the read in a failure to run
/// it at all.
pub async fn blocking<T: Send + 'static>(
    engine: &Arc<Engine>,
    what: &'static str,
    read: impl FnOnce(&Engine) -> Result<T> + Send + 'static,
) -> Result<T> {
    read_on(&PAGE_READERS, engine, what, read).await
}

/// [`Engine::stats`] on its own readers (see `STATS_READERS`).
pub async fn stats(engine: &Arc<Engine>) -> Result<crate::types::Stats> {
    read_on(&STATS_READERS, engine, "stats", Engine::stats).await
}

async fn read_on<T: Send + 'static>(
    readers: &'static readers::Readers,
    engine: &Arc<Engine>,
    what: &'static str,
    read: impl FnOnce(&Engine) -> Result<T> + Send + 'static,
) -> Result<T> {
    let engine = engine.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    readers.run(Box::new(move || {
        // Its client gone while it waited: nobody wants the read.
        if tx.is_closed() {
            return;
        }
        let read = crate::panics::contain(|| read(&engine))
            .unwrap_or_else(|caught| Err(fault(&engine, caught)));
        let _ = tx.send(read);
    }));
    rx.await
        .map_err(|_| Error::Storage(format!("{what} failed: its reader did not run")))?
}

impl State {
    /// Starts the engine over an open store, replaying into memory what
    /// the log of a crashed server holds (see `Engine::start_recovering`),
    /// and the writer thread.
    pub fn new(store: Store, limits: Limits, token: Option<String>, quiet: bool) -> Result<State> {
        let store = Arc::new(store);
        let dir = crate::wal::dir_of(store.path());
        let mut opts = EngineOptions::new(limits.memtable_bytes, limits.max_value_bytes);
        opts.history = limits.history;
        opts.row_cache_bytes = limits.row_cache_bytes;
        let kept = store.clone();
        let (engine, engine_writer, recovered) =
            match Engine::start_recovering(store, &dir, crate::wal::SEGMENT_BYTES, opts) {
                Ok(started) => started,
                Err(e) => {
                    // A new file that cannot be served (its log could not
                    // be made: a full disk) is not left behind, as a failed
                    // first write's is not; nor its log directory, if empty.
                    if kept.discard_if_unwritten() {
                        let _ = std::fs::remove_dir(&dir);
                    }
                    return Err(e);
                }
            };
        drop(kept);
        let metrics = Arc::new(Metrics::new());
        let writer = Writer::start(engine_writer, limits.queue_size, metrics.clone())?;
        State::assemble(
            engine, writer, metrics, recovered, None, limits, token, quiet,
        )
    }

    /// The state of a cluster member: its engine is applied to by Raft.
    pub fn clustered(
        node: Arc<crate::cluster::node::Node>,
        limits: Limits,
        token: Option<String>,
        quiet: bool,
    ) -> Result<State> {
        let engine = node.engine.clone();
        let metrics = Arc::new(Metrics::new());
        let writer = Writer::replicated(node.clone(), limits.queue_size, metrics.clone());
        let answered = node.answered_recorded();
        let state = State::assemble(
            engine,
            writer,
            metrics,
            None,
            Some(node),
            limits,
            token,
            quiet,
        )?;
        state.note_answered(answered);
        Ok(state)
    }

    /// The parts both kinds of server share, and the access log.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        engine: Arc<Engine>,
        writer: Writer,
        metrics: Arc<Metrics>,
        recovered: Option<crate::wal::Recovered>,
        cluster: Option<Arc<crate::cluster::node::Node>>,
        limits: Limits,
        token: Option<String>,
        quiet: bool,
    ) -> Result<State> {
        let access_log = if quiet {
            None
        } else {
            let log = AccessLog::start(metrics.clone())
                .map_err(|e| crate::error::Error::io("cannot start the access log thread", e))?;
            Some(log)
        };
        Ok(State {
            bodies: body::BodyBudget::new(limits.max_body_bytes, limits.header_timeout * 2),
            responses: body::ResponseBudget::new(limits.max_body_bytes),
            closing: tokio::sync::watch::Sender::new(false),
            watchers: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            recovered,
            cluster,
            engine,
            writer,
            limits,
            metrics,
            token,
            access_log,
            answered: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The revision an answer that reflects no particular read carries in
    /// `X-Kvr-Revision` (a refusal, an error): the one applied here, or
    /// the last write answered here if that is newer, so that the header
    /// never goes backwards on a node. (A follower that cannot apply a
    /// forwarded write in time answers it with the revision the leader gave
    /// it: a bad request sent right after was answered with an older one.)
    pub fn revision(&self) -> u64 {
        self.engine
            .revision()
            .max(self.answered.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The newest revision a write was answered with here (see
    /// [`State::revision`]).
    pub fn answered(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Notes the revision a write's answer reflects (see [`State::revision`]).
    /// A cluster member also records one it has not applied yet, so that
    /// the floor holds across a `kill -9` (`cluster/answered.rs`).
    pub fn note_answered(&self, revision: u64) {
        let before = self
            .answered
            .fetch_max(revision, std::sync::atomic::Ordering::Relaxed);
        if let Some(node) = &self.cluster
            && revision > before
            && revision > self.engine.revision()
        {
            node.record_answered(revision);
        }
    }

    /// A read snapshot and its revision.
    pub fn snapshot(&self) -> Result<(Snapshot, u64)> {
        let snap = self.engine.snapshot();
        let revision = snap.revision();
        Ok((snap, revision))
    }

    /// Waits until the access log lines queued so far are written (up to
    /// the log thread's 10 ms tick), so that an event line written next
    /// comes after them.
    pub fn flush_log(&self) {
        if let Some(log) = &self.access_log {
            log.flush();
        }
    }

    /// Writes the queued access log lines; finishes queued writes,
    /// flushes and removes the write-ahead log.
    pub fn stop(&self) {
        self.flush_log();
        self.writer.stop();
    }
}

/// Serves `listener` (over TLS with `tls`) until `shutdown` resolves; then
/// stops accepting, finishes in-flight requests, and stops the writer
/// (final checkpoint).
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let sweeper = tokio::spawn(sweeper::run(state.clone()));
    let st = state.clone();
    let shutdown = async move {
        shutdown.await;
        st.closing.send_replace(true);
    };
    conn::serve(listener, state.clone(), tls, shutdown).await;
    sweeper.abort();
    let st = state.clone();
    let _ = tokio::task::spawn_blocking(move || st.stop()).await;
}
