//! The cluster's time for the writes a leader proposes: the median of the
//! voters' clocks now, the leader's own and each peer's as its last raft
//! answer (`x-kvr-time-ms`) read it, carried on by this node's monotonic
//! clock. A write's time decides its TTL's expiry and its
//! Idempotency-Key's 10-minute window on every member, so one member with
//! a wrong clock must not move it: with the leader's clock alone, a leader
//! 15 minutes ahead took every idempotency record for expired and applied
//! retries again (an audit), and one an hour ahead expired every TTL key
//! early. The peers' readings go by the monotonic clock, not by offsets
//! from the leader's wall clock, so the leader's own clock stepping (NTP,
//! a VM resumed) is outvoted at once too; and nothing ratchets: a time
//! held "never to go back" kept a cluster 15 minutes ahead for 15 minutes
//! after one such step (a second audit). The members' clocks are still
//! meant to agree within a second (NTP), and a skew is logged
//! (`network.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::types::NodeId;

/// A reading older than this is not counted: the peer may be gone, or its
/// clock stepped since.
const FRESH: Duration = Duration::from_secs(10);

/// The peers' clocks as last read: what each said, and when on this
/// node's monotonic clock, so that its time now is estimated without this
/// node's own wall clock, which may have stepped since (NTP, a VM resumed).
#[derive(Debug, Default)]
pub struct PeerClocks {
    readings: Mutex<HashMap<NodeId, (u64, Instant)>>,
}

impl PeerClocks {
    /// Records that `peer` read `peer_ms` on its clock during a round trip
    /// of `round_trip_ms` that ended now: taken as read halfway.
    pub fn record(&self, peer: NodeId, peer_ms: u64, round_trip_ms: u64) {
        let read_at = Instant::now()
            .checked_sub(Duration::from_millis(round_trip_ms / 2))
            .unwrap_or_else(Instant::now);
        self.readings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, (peer_ms, read_at));
    }

    /// The time (Unix ms) for a write proposed now by node `me` among
    /// `voters`: the median of the voters' clocks now, this node's being
    /// `own_ms` and each peer's its last reading (within the last 10 s)
    /// plus the time since; `own_ms` while fewer than a majority of the
    /// voters can be counted.
    pub fn now_ms(&self, me: NodeId, voters: impl Iterator<Item = NodeId>, own_ms: u64) -> u64 {
        let readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        let mut count = 0usize;
        let mut clocks: Vec<u64> = Vec::new();
        for id in voters {
            count += 1;
            if id == me {
                clocks.push(own_ms);
            } else if let Some((read, at)) = readings.get(&id)
                && at.elapsed() < FRESH
            {
                let since = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
                clocks.push(read.saturating_add(since));
            }
        }
        median_of_majority(&mut clocks, count, own_ms)
    }
}

/// The median of `clocks` (of `voters` voters), when they are a majority;
/// of two middle ones, the one nearer `own`. `own` when they are not a
/// majority.
fn median_of_majority(clocks: &mut [u64], voters: usize, own: u64) -> u64 {
    if clocks.len() <= voters / 2 {
        return own;
    }
    clocks.sort_unstable();
    let n = clocks.len();
    match n % 2 {
        1 => clocks[n / 2],
        _ => {
            let (a, b) = (clocks[n / 2 - 1], clocks[n / 2]);
            if a.abs_diff(own) <= b.abs_diff(own) {
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

    const MIN: u64 = 60_000;
    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn one_wrong_clock_is_outvoted_the_leaders_own_too() {
        // Three voters, one 15 minutes ahead: the others agree.
        assert_eq!(
            median_of_majority(&mut [NOW, NOW + 15 * MIN, NOW + 3], 3, NOW),
            NOW + 3
        );
        // The leader is the one ahead.
        let own = NOW + 15 * MIN;
        assert_eq!(
            median_of_majority(&mut [own, NOW, NOW + 3], 3, own),
            NOW + 3
        );
        // Five voters, two wrong ways.
        let five = &mut [NOW, NOW + 5, NOW - 7, NOW + 12 * MIN, NOW - 60 * MIN];
        assert_eq!(median_of_majority(five, 5, NOW), NOW);
        // Two of three counted: which is right cannot be told; the
        // leader keeps its own.
        assert_eq!(median_of_majority(&mut [own, NOW], 3, own), own);
        // Fewer than a majority counted: its own clock.
        assert_eq!(median_of_majority(&mut [own], 3, own), own);
    }

    #[test]
    fn the_leaders_own_clock_stepping_moves_nothing() {
        let clocks = PeerClocks::default();
        // Alone (no peer read yet): its own clock.
        assert_eq!(clocks.now_ms(1, [1, 2, 3].into_iter(), NOW), NOW);
        clocks.record(2, NOW, 4);
        clocks.record(3, NOW + 2, 4);
        // Its clock steps 15 minutes on, as a VM resumed or NTP does:
        // the peers' readings, carried on by the monotonic clock, outvote
        // it at once, before they are read again, and it steps back.
        let time = clocks.now_ms(1, [1, 2, 3].into_iter(), NOW + 15 * MIN);
        assert!((NOW..NOW + 1000).contains(&time), "{time}");
        let time = clocks.now_ms(1, [1, 2, 3].into_iter(), NOW);
        assert!((NOW..NOW + 1000).contains(&time), "{time}");
        // The only voter left: its own clock.
        assert_eq!(
            clocks.now_ms(1, [1].into_iter(), NOW + 15 * MIN),
            NOW + 15 * MIN
        );
    }
}
