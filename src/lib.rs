//! kvr: a persistent key-value store on one redb file.
//!
//! Map of the crate:
//!
//! * [`store`]: the redb file: open and lock, atomic creation
//!   ([`store::create`]), the one write path [`store::Store::apply`],
//!   snapshots and streaming ranges, the record layout.
//! * [`jsonl`]: the JSON lines format of batch input and range output.
//! * [`kv`]: the [`kv::Kv`] trait every command runs against.
//! * [`limits`]: key and value size limits.
//! * [`error`]: the typed [`Error`], with its exit codes and HTTP statuses.
//! * [`idempotency`]: `Idempotency-Key` records: the first outcome of a write, answered again to its repeats.
//! * [`server`]: `kvr serve`, the HTTP API: routes, the group-commit writer,
//!   limits, auth, metrics.
//! * [`wal`]: the write-ahead log behind `kvr serve`'s group commit, and its
//!   replay when a database is opened.
//! * [`client`]: the HTTP client behind `--server`, another [`kv::Kv`].
//! * [`backup`]: the `GET /v1/backup` stream format and the writing of a
//!   backup file.
//! * [`openapi`]: the OpenAPI document of the HTTP API.
//! * [`tls`]: certificates and keys for HTTPS, server and clients (rustls).
//! * [`cli`] and [`cmd`]: the command line and one module per subcommand.
//! * [`interrupt`]: SIGINT and SIGTERM during `kvr batch`: stop cleanly.
//! * [`tui`]: `kvr tui`, the terminal browser over any [`kv::Kv`].
//! * [`background`]: background threads (flush, access log) run nicer.
//! * [`panics`]: the storage engine's panics on a damaged file, as errors.

pub mod background;
pub mod backup;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod cmd;
pub mod engine;
pub mod error;
pub mod idempotency;
pub mod interrupt;
pub mod jsonl;
pub mod kv;
pub mod limits;
pub mod openapi;
pub mod panics;
pub mod server;
pub mod store;
pub mod tls;
pub mod tui;
pub mod types;
pub mod units;
pub mod wal;

pub use error::{Error, Result};
