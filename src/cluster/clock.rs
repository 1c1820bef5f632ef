//! The cluster's time for the writes a leader proposes: its own clock
//! moved by the median offset of the voters' clocks, measured on every
//! raft answer (`x-kvr-time-ms`). A write's time decides its TTL's expiry
//! and its Idempotency-Key's 10-minute window on every member, so one
//! member with a wrong clock must not move it: with the leader's clock
//! alone, a leader 15 minutes ahead took every idempotency record for
//! expired and applied retries again (an audit), and one an hour ahead
//! expired every TTL key early. A majority of clocks that agree outvotes
//! a wrong one, the leader's own included; the members' clocks are still
//! meant to agree within a second (NTP), and a skew is logged
//! (`network.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::types::NodeId;

/// An offset older than this is not counted: the peer may be gone, or its
/// clock stepped since.
const FRESH: Duration = Duration::from_secs(10);

/// The offsets of the peers' clocks from this node's, as last measured.
#[derive(Debug, Default)]
pub struct PeerClocks {
    offsets: Mutex<HashMap<NodeId, (i64, Instant)>>,
    /// The last time handed out: a write's time never goes back.
    last: AtomicU64,
}

impl PeerClocks {
    /// Records that `peer` read `peer_ms` on its clock between `asked`
    /// and `answered` on this node's: its offset is taken from the middle.
    pub fn record(&self, peer: NodeId, peer_ms: u64, asked: u64, answered: u64) {
        let middle = (asked / 2 + answered / 2) as i64;
        let offset = peer_ms as i64 - middle;
        self.offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, (offset, Instant::now()));
    }

    /// The time (Unix ms) for a write proposed now by node `me` among
    /// `voters`: `own_ms` moved by the median offset of the voters whose
    /// clocks were measured in the last 10 s (this node's offset is 0), or
    /// `own_ms` itself while fewer than a majority are; never less than a
    /// time handed out before.
    pub fn now_ms(&self, me: NodeId, voters: impl Iterator<Item = NodeId>, own_ms: u64) -> u64 {
        let offset = {
            let offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
            let mut count = 0usize;
            let mut measured: Vec<i64> = Vec::new();
            for id in voters {
                count += 1;
                if id == me {
                    measured.push(0);
                } else if let Some((offset, at)) = offsets.get(&id)
                    && at.elapsed() < FRESH
                {
                    measured.push(*offset);
                }
            }
            median_of_majority(&mut measured, count)
        };
        let time = own_ms.saturating_add_signed(offset);
        let before = self.last.fetch_max(time, Ordering::AcqRel);
        before.max(time)
    }
}

/// The median of `measured` (of `voters` voters), when they are a
/// majority; of two middle ones, the one nearer 0 (this node's). 0 when
/// they are not a majority, or when this node is no voter (`voters` 0).
fn median_of_majority(measured: &mut [i64], voters: usize) -> i64 {
    if measured.len() <= voters / 2 {
        return 0;
    }
    measured.sort_unstable();
    let n = measured.len();
    match n % 2 {
        1 => measured[n / 2],
        _ => {
            let (a, b) = (measured[n / 2 - 1], measured[n / 2]);
            if a.unsigned_abs() <= b.unsigned_abs() {
                a
            } else {
                b
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn one_wrong_clock_is_outvoted_the_leaders_own_too() {
        // Three voters, one 15 minutes ahead: the others' agree.
        assert_eq!(median_of_majority(&mut [0, 0, 15 * MIN], 3), 0);
        // The leader is the one ahead: both others read 15 minutes less.
        assert_eq!(
            median_of_majority(&mut [0, -15 * MIN, -15 * MIN + 3], 3),
            -15 * MIN + 3
        );
        // Five voters, two wrong ways.
        assert_eq!(
            median_of_majority(&mut [0, 5, -7, 12 * MIN, -60 * MIN], 5),
            0
        );
        // Two of three measured: which is right cannot be told; the
        // leader keeps its own.
        assert_eq!(median_of_majority(&mut [0, -15 * MIN], 3), 0);
        // Fewer than a majority measured: its own clock.
        assert_eq!(median_of_majority(&mut [0], 3), 0);
        assert_eq!(median_of_majority(&mut [], 0), 0);
    }

    #[test]
    fn the_time_is_the_majoritys_and_never_goes_back() {
        let own = 1_800_000_000_000u64;
        // Alone (no peer measured yet): its own clock.
        assert_eq!(
            PeerClocks::default().now_ms(1, [1, 2, 3].into_iter(), own),
            own
        );
        // Both peers read 15 minutes less than this node, round trip 4 ms.
        let clocks = PeerClocks::default();
        clocks.record(2, own - 15 * 60_000 + 2, own, own + 4);
        clocks.record(3, own - 15 * 60_000 + 2, own, own + 4);
        assert_eq!(
            clocks.now_ms(1, [1, 2, 3].into_iter(), own + 10),
            own + 10 - 15 * 60_000
        );
        // The only voter left: its own clock.
        assert_eq!(clocks.now_ms(1, [1].into_iter(), own + 20), own + 20);
        // The majority's time would go back: it stays where it was.
        assert_eq!(clocks.now_ms(1, [1, 2, 3].into_iter(), own + 30), own + 20);
    }
}
