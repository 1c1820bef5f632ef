//! `kvr serve`: the HTTP API of SPEC "HTTP API".
//!
//! [`run`] is a function of a bound listener, the [`State`] and a shutdown
//! future, so tests and `kvr serve --listen 127.0.0.1:0` never race for a
//! port. Modules, one concern each:
//!
//! * `conn`: accept loop, connection cap, idle and header timeouts,
//!   graceful shutdown;
//! * `routes`: routing, authentication order, the point routes; `range`:
//!   pages and NDJSON streams;
//! * `backup`: the `GET /v1/backup` stream;
//! * `writer`: the group-commit writer thread over the write-ahead log
//!   (`crate::wal`);
//! * `target`: percent-decoding of keys from the raw request target;
//! * `body`, `response`: bodies under limits, errors as HTTP;
//! * `limits`, `auth`, `metrics`.

/// A line on stderr that never panics: `eprintln!` panics when stderr
/// cannot be written (a log file on a full disk), which would take down the
/// writer thread or a request with it.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod auth;
mod backup;
mod body;
mod conn;
pub mod limits;
pub mod metrics;
mod range;
mod response;
mod routes;
pub mod target;
pub mod writer;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use limits::Limits;
use metrics::Metrics;
use writer::Writer;

use crate::engine::{Engine, EngineOptions, Snapshot};
use crate::error::Result;
use crate::store::Store;
use crate::wal::Wal;

/// Everything a request handler needs.
pub struct State {
    pub engine: Arc<Engine>,
    pub writer: Writer,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// The bearer token every route but `/healthz` requires, if any.
    pub token: Option<String>,
    /// No per-request log line.
    pub quiet: bool,
}

impl State {
    /// Starts the write-ahead log and the writer thread over an open store
    /// (whose log was replayed when it was opened).
    pub fn new(store: Store, limits: Limits, token: Option<String>, quiet: bool) -> Result<State> {
        let store = Arc::new(store);
        let metrics = Arc::new(Metrics::new(store.snapshot()?.revision()?));
        let wal = Wal::create(store.path())?;
        let opts = EngineOptions::new(limits.memtable_bytes, limits.max_value_bytes);
        let (engine, engine_writer) = Engine::start(store, Box::new(wal), opts)?;
        let writer = Writer::start(engine_writer, limits.queue_size, metrics.clone())?;
        Ok(State {
            engine,
            writer,
            limits,
            metrics,
            token,
            quiet,
        })
    }

    /// A read snapshot and its revision.
    pub fn snapshot(&self) -> Result<(Snapshot, u64)> {
        let snap = self.engine.snapshot();
        let revision = snap.revision();
        Ok((snap, revision))
    }

    /// Finishes queued writes, flushes and removes the log.
    pub fn stop(&self) {
        self.writer.stop();
    }
}

/// Serves `listener` until `shutdown` resolves; then stops accepting,
/// finishes in-flight requests, and stops the writer (final checkpoint).
pub async fn run(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    conn::serve(listener, state.clone(), shutdown).await;
    let st = state.clone();
    let _ = tokio::task::spawn_blocking(move || st.stop()).await;
}
