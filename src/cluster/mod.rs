//! Cluster mode: several `kvr serve` processes replicate one database
//! through Raft (openraft), as SPEC "Cluster mode" describes.
//!
//! * `types.rs`: what goes through the Raft log ([`Command`]) and what
//!   applying it answers ([`Reply`]), the openraft type configuration.
//! * `log_store.rs`: the Raft log, in segment files beside the database
//!   (`DB.raft/`); appends are synced by one thread, so appends queued
//!   together share one `fdatasync` (group commit).
//! * `state_machine.rs`: applies committed entries through the engine's
//!   one write path into the memory table; the marker of the last applied
//!   entry is flushed in the same redb commit as the data it covers.
//! * `read_batch.rs`: linearizable reads in rounds, one read index per
//!   round for every read waiting when it starts.
//! * `write_batch.rs`: writes proposed in rounds, one Raft entry for every
//!   write waiting when a round starts.
//! * `liveness.rs`: how long a proposal may wait to commit (then
//!   `outcome_unknown`), at shutdown too, and when a node is ready.
//! * `answered.rs`: the highest revision a follower answered a write
//!   with before applying it, kept across a `kill -9`.
//! * `snapshot_extras.rs`: what a snapshot carries besides the data (watch
//!   history, idempotency records).

pub mod answered;
pub mod boot;
pub mod catch_up;
pub mod clock;
pub mod liveness;
pub mod log_store;
pub mod network;
pub mod node;
pub mod owner;
pub mod read_batch;
pub mod snapshot_extras;
pub mod start;
pub mod state_machine;
pub mod types;
pub mod write_batch;

pub use types::{Command, Member, NodeId, Reply, TypeConfig};

/// What a removed node can do, after "node N was removed from cluster C".
pub const COME_BACK: &str = "a removed node does not come back (node ids are never reused): to \
     make this machine a member again, move its file and its .raft directory aside and start \
     it on a new, empty file with --join";

/// The header a joining node presents the cluster token in.
pub const CLUSTER_TOKEN_HEADER: &str = "x-kvr-cluster-token";

/// Ends a member of the database `db` from a background task on an error
/// it cannot serve past (its join refused, its removal): the error line as
/// `main` prints one (SPEC: an error's first stderr line starts with `kvr:
/// error:`), then the error's exit code. The server's `DB.serve` goes
/// first, as at a stop (`exit` runs no destructor: it was left behind).
pub(crate) fn exit_on(e: &crate::error::Error, db: &std::path::Path) -> ! {
    let _ = std::fs::remove_file(crate::store::serve_hint_path(db));
    crate::server::log::flush_events();
    // Not `eprintln!`, which panics when stderr is gone.
    let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("kvr: error: {e}\n"));
    std::process::exit(i32::from(e.exit_code()));
}
