//! `kvr serve` end to end: the real binary on 127.0.0.1:0, real HTTP
//! clients, raw sockets for bad input, signals for shutdown and crashes.

// Helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "server/api.rs"]
mod api;
#[path = "server/bench.rs"]
mod bench;
#[path = "common/child.rs"]
mod child;
#[path = "server/cli_modes.rs"]
mod cli_modes;
#[path = "common/cli_parity.rs"]
mod cli_parity;
#[path = "server/delete_range.rs"]
mod delete_range;
#[path = "server/diskfull.rs"]
mod diskfull;
#[path = "server/expiry.rs"]
mod expiry;
#[path = "server/hostile.rs"]
mod hostile;
#[path = "server/idempotency.rs"]
mod idempotency;
#[path = "server/kill9.rs"]
mod kill9;
#[path = "server/load.rs"]
mod load;
#[path = "server/memory.rs"]
mod memory;
#[path = "server/observe.rs"]
mod observe;
#[path = "server/openapi.rs"]
mod openapi;
#[path = "server/ops.rs"]
mod ops;
#[path = "common/pki.rs"]
mod pki;
#[path = "server/reserve.rs"]
mod reserve;
#[path = "server/routes.rs"]
mod routes;
#[path = "server/strict.rs"]
mod strict;
#[path = "server/support.rs"]
mod support;
#[path = "server/tls.rs"]
mod tls;
#[path = "common/tmpfs.rs"]
mod tmpfs;
#[path = "server/wal.rs"]
mod wal;
#[path = "server/watch.rs"]
mod watch;
