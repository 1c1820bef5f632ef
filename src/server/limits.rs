//! The bounds of `kvr serve`, each a flag whose default is a constant here.
//!
//! Every limit error names the limit and the flag that changes it, so a
//! user who hits one knows what to change.

use std::time::Duration;

use crate::error::Error;

/// Most operations in one `POST /v1/batch` (`--max-batch-ops`, SPEC's
/// default): a batch this size parses and applies in well under a second.
pub const DEFAULT_MAX_BATCH_OPS: usize = 100_000;
/// Largest `POST /v1/batch` body (`--max-batch-bytes`, SPEC's default): the
/// body is held in memory while the group applies, so this bounds a
/// request's memory.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 64 << 20;
/// Write requests that may wait for the writer (`--queue-size`). A group
/// commit takes about a millisecond, so a full queue of 1,024 is a few
/// milliseconds of work: beyond that, waiting only adds latency, and a quick
/// 503 lets the client back off.
pub const DEFAULT_QUEUE_SIZE: usize = 1024;
/// Open connections (`--max-connections`). Each one may hold a request body
/// being read, so this and the body limits bound the memory; a 2-core
/// server saturates long before 4,096 busy connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Connections beyond `--max-connections` that may carry a monitoring
/// request (`GET` or `HEAD` of `/healthz`, `/readyz`, `/metrics`) at once,
/// so that scrapes and health checks see a server at its limit instead of
/// a 503 (see `conn/reserve.rs`). A node is polled by a scraper and a
/// health checker or two, one request at a time each: 8 leaves room for a
/// few of each and their retries, and costs nothing next to the limit. No
/// flag: it is room to see the server, not capacity to tune.
pub const MONITORING_RESERVE: usize = 8;
/// Time to receive a request's headers (`--header-timeout`): a slow-loris
/// client cannot hold a connection with a trickle of header bytes.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection may make no progress, reading or writing
/// (`--idle-timeout`): frees idle keep-alive connections and stalled
/// transfers, while any long transfer that moves goes on.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head (request line and headers); hyper answers 431
/// beyond. 64 KiB is far above any real client's headers.
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// Most header fields in a request: hyper's default, kept (setting it puts
/// every request's header array on the heap, ~5 % of a small request);
/// hyper answers 431 beyond.
pub const MAX_HEADER_FIELDS: usize = 100;
/// Time given to in-flight requests at shutdown before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The same for a cluster member, whose whole stop must fit in 5 s (SPEC):
/// writes in flight wait up to 2 s to commit and are then answered
/// `outcome_unknown` (`cluster::liveness::STOP_COMMIT_WAIT`), and half a
/// second more lets those answers go out; the rest is left for the
/// hand-over, Raft's shutdown and the final flush.
pub const CLUSTER_SHUTDOWN_GRACE: Duration = Duration::from_millis(2500);

/// The limits a server runs with.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_value_bytes: usize,
    pub max_batch_ops: usize,
    pub max_batch_bytes: usize,
    pub queue_size: usize,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// The memory tables' budget (`--memtable-mib`), see `engine`.
    pub memtable_bytes: usize,
    /// The row cache's share of `--cache-mib` (an eighth), see `engine::row_cache`.
    pub row_cache_bytes: usize,
    /// The watch history kept (`--history`, `--history-bytes`).
    pub history: crate::engine::history::HistoryBounds,
    /// Memory for request bodies, server-wide (`--max-body-mib`; at least
    /// one largest request), see `body::BodyBudget`.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_bytes: crate::limits::DEFAULT_MAX_VALUE_BYTES,
            max_batch_ops: DEFAULT_MAX_BATCH_OPS,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            queue_size: DEFAULT_QUEUE_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            memtable_bytes: crate::engine::default_memtable_mib(
                crate::store::default_serve_cache_mib(),
            ) as usize
                * (1 << 20),
            row_cache_bytes: crate::store::default_serve_cache_mib() as usize * (1 << 20) / 8,
            history: crate::engine::history::HistoryBounds::default(),
            max_body_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

/// A request body over a byte limit (413).
pub fn body_too_large(what: &str, limit: usize, flag: &str) -> Error {
    Error::TooLarge {
        message: format!("{what} is over the limit of {limit} bytes ({flag})"),
    }
}

/// A batch with more operations than allowed (413).
pub fn too_many_ops(limit: usize) -> Error {
    Error::TooLarge {
        message: format!("the batch has more than {limit} operations, the limit (--max-batch-ops)"),
    }
}

/// The write queue is full (503 `overloaded`).
pub fn overloaded(queue_size: usize) -> Error {
    Error::Unavailable {
        message: format!(
            "the server is overloaded: {queue_size} {} waiting, the limit \
             (--queue-size); retry later",
            if queue_size == 1 {
                "write is"
            } else {
                "writes are"
            }
        ),
        overloaded: true,
    }
}

/// Names the server flag in a value-limit message from the shared checks.
pub fn name_value_flag(err: Error) -> Error {
    match err {
        Error::Invalid { line, message } if message.starts_with("value of") => Error::Invalid {
            line,
            message: format!("{message} (--max-value-bytes)"),
        },
        other => other,
    }
}
