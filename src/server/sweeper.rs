//! The expiry sweeper of `kvr serve` (SPEC "Expiry (TTL)"): every
//! [`SWEEP_INTERVAL`] it reads the keys due by the server's clock
//! ([`Engine::expired`](crate::engine::Engine::expired): the expiry index
//! and the memory tables, never a scan of all keys) and proposes their
//! expiry deletes through the writer like any other write, at most
//! [`SWEEP_BATCH`] per request. Each delete is conditional on the key's
//! revision and expiry when it is applied, so a put that lands in between
//! wins. In a cluster only the leader would run it; the deletes are plain
//! operations of the one write path.

use std::sync::Arc;
use std::time::Duration;

use super::State;
use super::writer::WriteRequest;
use crate::error::{Error, Result};
use crate::types::{Action, now_ms};

/// How often the sweeper looks: a key is deleted within about this much
/// after its expiry (SPEC: "within about a second").
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// Most expiry deletes in one request: large enough that a million keys
/// expiring in one second are gone in about a hundred requests, small
/// enough that one request stays well inside the group and log limits.
pub const SWEEP_BATCH: usize = 10_000;

/// Runs until the task is aborted (the server stops).
pub async fn run(state: Arc<State>) {
    let mut cursor: Option<(u64, Vec<u8>)> = None;
    loop {
        // In a cluster the leader proposes the expiry deletes (by its clock).
        if state.cluster.as_ref().is_some_and(|n| !n.raft.is_leader()) {
            cursor = None;
            tokio::time::sleep(SWEEP_INTERVAL).await;
            continue;
        }
        match round(&state, cursor.take()).await {
            // More is due: go on at once.
            Ok(Some(next)) => {
                cursor = Some(next);
                continue;
            }
            Ok(None) => {}
            Err(e) if is_transient(&e) => {}
            Err(e) => log!("kvr serve: expiry sweep failed: {e}"),
        }
        tokio::time::sleep(SWEEP_INTERVAL).await;
    }
}

/// One round: proposes the deletes due after `after`; returns where the
/// next round goes on when there may be more due now.
async fn round(
    state: &Arc<State>,
    after: Option<(u64, Vec<u8>)>,
) -> Result<Option<(u64, Vec<u8>)>> {
    let engine = state.engine.clone();
    // A cluster's leader sweeps by the cluster's time (`cluster/clock.rs`),
    // which its writes carry, not by its own clock alone.
    let now = match &state.cluster {
        Some(node) => node.cluster_now_ms(),
        None => now_ms(),
    };
    let (ops, next) =
        tokio::task::spawn_blocking(move || engine.expired(now, SWEEP_BATCH, after.as_ref()))
            .await
            .map_err(|e| Error::Storage(format!("the expiry sweeper failed: {e}")))??;
    let lag_ms = ops
        .iter()
        .filter_map(|op| match op.action {
            Action::Expire { expires_at_ms, .. } => Some(now.saturating_sub(expires_at_ms)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut deleted = 0;
    if !ops.is_empty() {
        deleted = state
            .writer
            .write(WriteRequest {
                ops,
                ..WriteRequest::default()
            })
            .await?
            .deletes;
    }
    state.metrics.swept(lag_ms, deleted);
    Ok(next)
}

/// A full queue or a stopping server: the next round retries.
fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. })
}
