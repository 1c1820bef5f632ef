//! `kvr serve`: the HTTP API of SPEC "HTTP API".
//!
//! [`run`] is a function of a bound listener, the [`State`] and a shutdown
//! future, so tests and `kvr serve --listen 127.0.0.1:0` never race for a
//! port. Modules, one concern each:
//!
//! * `conn`: accept loop, connection cap, idle and header timeouts, the
//!   TLS handshake, graceful shutdown;
//! * `routes`: routing, authentication order, the point routes; `range`:
//!   pages and NDJSON streams;
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

use crate::error::Result;
use crate::store::{Snapshot, Store};
use crate::wal::Wal;

/// Everything a request handler needs.
pub struct State {
    pub store: Arc<Store>,
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
        let writer = Writer::start(
            store.clone(),
            wal,
            limits.queue_size,
            limits.max_value_bytes,
            metrics.clone(),
        )?;
        Ok(State {
            store,
            writer,
            limits,
            metrics,
            token,
            quiet,
        })
    }

    /// A read snapshot and its revision, without a lookup of the revision
    /// in the snapshot when no commit raced with taking it.
    pub fn snapshot(&self) -> Result<(Snapshot, u64)> {
        let before = self.metrics.revision();
        let snap = self.store.snapshot()?;
        let revision = match self.metrics.snapshot_revision(before) {
            Some(r) => r,
            None => snap.revision()?,
        };
        Ok((snap, revision))
    }

    /// Finishes queued writes, checkpoints and removes the log.
    pub fn stop(&self) {
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
    conn::serve(listener, state.clone(), tls, shutdown).await;
    let st = state.clone();
    let _ = tokio::task::spawn_blocking(move || st.stop()).await;
}
