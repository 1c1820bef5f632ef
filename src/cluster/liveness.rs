//! The bounds that keep a member that lost its quorum from hanging its
//! clients (SPEC "Cluster mode"): how long a proposed entry may take to
//! commit before its write is answered `outcome_unknown`, how long a
//! stopping node waits for the entries in flight, and whether the node
//! may call itself ready.
//!
//! A leader that cannot reach a majority keeps its role in openraft: its
//! lease (a quorum acknowledged it within the maximum election timeout)
//! runs out, and from then on openraft refuses new proposals (so they are
//! `unavailable`, never proposed) but keeps the ones already proposed
//! pending, since they may still commit once the quorum is back. That is
//! openraft's form of etcd's CheckQuorum: the leader stops taking writes
//! and says it is not ready, without an election it could not win anyway,
//! and resumes at once when a majority answers again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{Instant as _, RaftMetrics, ServerState};
use tokio::sync::watch;
use tokio::time::Instant;

use super::types::{NodeId, TypeConfig};

/// What a proposal's commit bound allows besides leader changes: queueing,
/// appends and fsyncs on a loaded disk, and apply. etcd bounds a request
/// the same way (5 s plus two election timeouts, its `ReqTimeout`); a
/// healthy cluster commits in milliseconds, so only a leader that lost its
/// majority (or a disk that stalls for seconds) reaches it.
const COMMIT_SLACK: Duration = Duration::from_secs(5);
/// How long a stopping node still waits for entries in flight to commit
/// (SPEC: "wait up to 2 s"); the rest are answered `outcome_unknown`.
pub const STOP_COMMIT_WAIT: Duration = Duration::from_secs(2);
/// When a stopping node is done, counted from the signal: SPEC gives every
/// node 5 s from SIGTERM to exit, and the process needs a little after
/// this for its last lines and the runtime's end.
pub const STOP_BUDGET: Duration = Duration::from_millis(4500);

/// Why a proposal was answered without its outcome.
#[derive(Debug, Clone, Copy)]
pub enum Unanswered {
    /// Not committed within [`Liveness::commit_timeout`].
    TimedOut(Duration),
    /// The node is stopping and [`STOP_COMMIT_WAIT`] has passed.
    Stopping,
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::TimedOut(d) => write!(
                f,
                "it was proposed but not committed within {} s (this leader may have lost its \
                 majority); it may still be applied",
                d.as_secs()
            ),
            Unanswered::Stopping => write!(
                f,
                "the node is stopping and the write was not committed within {} s; it may \
                 still be applied",
                STOP_COMMIT_WAIT.as_secs()
            ),
        }
    }
}

/// Beyond an election among the others and the new leader's first
/// message: how long after its start a member that must catch up before
/// it answers holds its clients at most (`Liveness::settle_deadline`).
const SETTLE_SLACK: Duration = Duration::from_secs(1);

/// The bounds of one member.
pub struct Liveness {
    /// The maximum election timeout: a leader's lease.
    election_max: Duration,
    /// Whether the process stood still lately (see [`Pauses`]).
    pauses: std::sync::Arc<Pauses>,
    /// When proposals stop waiting because the node stops (`None`: running).
    stop_at: watch::Sender<Option<Instant>>,
    /// When a leader's append (or heartbeat) last reached this node.
    leader_contact: std::sync::Mutex<Option<Instant>>,
    /// When this node started: a leader it has not heard from since is
    /// silent as long ago as that.
    started: Instant,
}

impl Liveness {
    pub fn new(election_max_ms: u64) -> Liveness {
        let election_max = Duration::from_millis(election_max_ms);
        Liveness {
            election_max,
            pauses: Pauses::start(election_max),
            stop_at: watch::Sender::new(None),
            leader_contact: std::sync::Mutex::new(None),
            started: Instant::now(),
        }
    }

    /// A leader's append or heartbeat reached this node (and was not from
    /// a leader of an older term).
    pub fn heard_from_leader(&self) {
        *self
            .leader_contact
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Until when a member restarted with records it cannot trust holds
    /// its answers while it catches up (`Node::settled`): two
    /// maximum election timeouts (one among the others, if it led, and the
    /// new leader's first message) and `SETTLE_SLACK` after its start;
    /// 3 s with the defaults.
    pub fn settle_deadline(&self) -> Instant {
        self.started + 2 * self.election_max + SETTLE_SLACK
    }

    /// How long a proposed entry may take to commit: `COMMIT_SLACK` and
    /// two maximum election timeouts (an election, and the new leader's
    /// first commit). 7 s with the defaults, below a follower's 10 s wait
    /// for a forwarded write, so the leader's answer comes first.
    pub fn commit_timeout(&self) -> Duration {
        COMMIT_SLACK + 2 * self.election_max
    }

    /// The node is stopping: proposals still waiting get
    /// [`Unanswered::Stopping`] after [`STOP_COMMIT_WAIT`].
    pub fn begin_stop(&self) {
        self.stop_at.send_if_modified(|at| {
            if at.is_some() {
                return false;
            }
            *at = Some(Instant::now() + STOP_COMMIT_WAIT);
            true
        });
    }

    /// When the node began to stop, if it did.
    pub fn stop_began(&self) -> Option<Instant> {
        let at = *self.stop_at.borrow();
        at.map(|at| at - STOP_COMMIT_WAIT)
    }

    /// Resolves once the node is stopping and its commit wait has passed.
    async fn stopped(&self) {
        let mut rx = self.stop_at.subscribe();
        loop {
            let at = *rx.borrow_and_update();
            if let Some(at) = at {
                tokio::time::sleep_until(at).await;
                return;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Waits for `proposal` (a write being committed) within the commit
    /// bound and the stop deadline.
    pub async fn bound<T>(&self, proposal: impl Future<Output = T>) -> Result<T, Unanswered> {
        let limit = self.commit_timeout();
        tokio::select! {
            biased;
            out = proposal => Ok(out),
            () = self.stopped() => Err(Unanswered::Stopping),
            () = tokio::time::sleep(limit) => Err(Unanswered::TimedOut(limit)),
        }
    }

    /// Waits for `fut` until the stop deadline (a follower's forwarded
    /// write, whose leader may not answer before this node must exit).
    pub async fn until_stopped<T>(&self, fut: impl Future<Output = T>) -> Result<T, Unanswered> {
        tokio::select! {
            biased;
            out = fut => Ok(out),
            () = self.stopped() => Err(Unanswered::Stopping),
        }
    }

    /// On a leader: `Err(why)` unless a quorum of voters acknowledged it
    /// within the maximum election timeout (its lease), as openraft decides
    /// before it takes a proposal. A leader that is the only voter is its
    /// own quorum.
    pub fn leader_lease(&self, m: &RaftMetrics<TypeConfig>, me: NodeId) -> Result<(), String> {
        let mut voters = m.membership_config.membership().voter_ids();
        if voters.next() == Some(me) && voters.next().is_none() {
            return Ok(());
        }
        match &m.last_quorum_acked {
            Some(at) if at.elapsed() < self.election_max => Ok(()),
            Some(at) => Err(format!(
                "this leader has not heard from a majority of voters for {} ms (more than the \
                 maximum election timeout, {} ms): it takes no writes",
                at.elapsed().as_millis(),
                self.election_max.as_millis()
            )),
            None => Err("this leader has not heard from a majority of voters yet".into()),
        }
    }

    /// `GET /readyz` from the metrics. A leader must hold its lease; any
    /// other member must have heard from its leader within the maximum
    /// election timeout. (With pre-vote a follower cut off from its leader
    /// keeps its term, and with it the leader it knew, so "a leader
    /// known" alone no longer says the leader is there.)
    pub fn ready(&self, m: &RaftMetrics<TypeConfig>, me: NodeId) -> Result<(), String> {
        self.has_leader(m, me)?;
        let committed = m.local_committed.map_or(0, |l| l.index);
        let applied = m.last_applied.map_or(0, |l| l.index);
        if committed.saturating_sub(applied) > 1000 {
            return Err(format!("applying: {applied} of {committed}"));
        }
        Ok(())
    }

    /// Whether the node has a leader it hears from: the leader part of
    /// [`Liveness::ready`] (a watch on a node without one ends, SPEC
    /// "Watch").
    pub fn has_leader(&self, m: &RaftMetrics<TypeConfig>, me: NodeId) -> Result<(), String> {
        if m.current_leader.is_none() {
            return Err("no leader known".into());
        }
        if m.state == ServerState::Leader {
            self.leader_lease(m, me)?;
        } else {
            let contact = *self
                .leader_contact
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match contact.map(|at| at.elapsed()) {
                Some(quiet) if quiet <= self.election_max => {}
                Some(quiet) => {
                    return Err(format!(
                        "no word from the leader for {} ms",
                        quiet.as_millis()
                    ));
                }
                None => return Err("no word from the leader yet".into()),
            }
        }
        Ok(())
    }

    /// How long since this node last heard from a leader (or, if it never
    /// did, since it started), when that is longer than the maximum
    /// election timeout: its leader is gone or cut off from it. (A
    /// restarted member knows the leader of its last term from its saved
    /// vote, and names it until an election timeout has passed without a
    /// word from it, not for as long as it stays silent.)
    pub fn leader_silent(&self) -> Option<Duration> {
        let contact = *self
            .leader_contact
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(contact.unwrap_or(self.started).elapsed()).filter(|quiet| *quiet > self.election_max)
    }

    /// How long the process stood still, when it did for longer than the
    /// maximum election timeout and the requests it read since may have
    /// waited through it (see [`Pauses`]).
    pub fn paused(&self) -> Option<Duration> {
        self.pauses.recent()
    }

    /// The maximum election timeout: how long a node may be without a
    /// leader before its watches end.
    pub fn election_max(&self) -> Duration {
        self.election_max
    }
}

/// How often `Pauses` looks at the clock.
const PAUSE_TICK: Duration = Duration::from_millis(100);

/// Notices that the whole process stood still (SIGSTOP, a frozen VM) for
/// longer than `longer_than`. A follower stopped so does not know it: when
/// it runs again it reads the leader's heartbeats that waited in its
/// sockets, so it seems to have heard from the leader just now, and then
/// the writes that waited with them, whose clients gave up long ago, and
/// passed them on. Applied seconds late, they overwrote writes acknowledged
/// meanwhile through other members (found by an audit: 4 of 6 keys, 12 s
/// later). A thread ticks every `PAUSE_TICK`: a tick that finds the
/// last one too long ago marks a pause, and until `longer_than` after it
/// (or while no tick has come since) writes read here are refused, not
/// passed on (`Node::forward_round`).
pub struct Pauses {
    base: std::time::Instant,
    longer_than: Duration,
    /// Milliseconds after `base` of the last tick.
    ticked_ms: AtomicU64,
    /// Of the end of the last pause (0: none), and its length.
    resumed_ms: AtomicU64,
    paused_ms: AtomicU64,
}

impl Pauses {
    fn start(longer_than: Duration) -> std::sync::Arc<Pauses> {
        let pauses = std::sync::Arc::new(Pauses {
            base: std::time::Instant::now(),
            longer_than,
            ticked_ms: AtomicU64::new(0),
            resumed_ms: AtomicU64::new(0),
            paused_ms: AtomicU64::new(0),
        });
        let weak = std::sync::Arc::downgrade(&pauses);
        // Without the thread no pause is noticed; the node runs as before.
        let _ = std::thread::Builder::new()
            .name("kvr-pauses".into())
            .spawn(move || {
                while let Some(p) = weak.upgrade() {
                    p.tick();
                    drop(p);
                    std::thread::sleep(PAUSE_TICK);
                }
            });
        pauses
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn tick(&self) {
        let now = self.now_ms();
        let last = self.ticked_ms.swap(now, Ordering::AcqRel);
        let gap = now.saturating_sub(last);
        if Duration::from_millis(gap) > self.longer_than {
            self.paused_ms.store(gap, Ordering::Release);
            self.resumed_ms.store(now.max(1), Ordering::Release);
        }
    }

    /// See [`Liveness::paused`].
    fn recent(&self) -> Option<Duration> {
        let now = self.now_ms();
        let since_tick = now.saturating_sub(self.ticked_ms.load(Ordering::Acquire));
        if Duration::from_millis(since_tick) > self.longer_than {
            return Some(Duration::from_millis(since_tick));
        }
        let resumed = self.resumed_ms.load(Ordering::Acquire);
        let since = Duration::from_millis(now.saturating_sub(resumed));
        (resumed != 0 && since < self.longer_than)
            .then(|| Duration::from_millis(self.paused_ms.load(Ordering::Acquire)))
    }
}
