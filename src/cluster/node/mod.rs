//! One cluster member: its Raft instance and what the HTTP API asks of
//! the cluster (writes, read barriers, status); joins and admin commands
//! are in `membership.rs`, the raft listener's requests in
//! `raft_listener.rs`.
//!
//! **Writes.** The leader proposes the requests that arrive together in
//! one round, one entry each (`client_write_many`; see `write_batch.rs`),
//! and answers each with what applying it decided. A follower
//! sends the writes waiting together to the leader's raft listener in one
//! request (`/raft/write-batch`; `/raft/write` for one) and answers each
//! the same way; a request refused before it was proposed (no
//! leader, the leader unreachable) is `unavailable`, one whose fate is
//! unknown (sent, then the connection or the leadership was lost) is
//! `outcome_unknown`.
//!
//! **Reads** are linearizable: the leader confirms its leadership with a
//! quorum (ReadIndex) and waits until it has applied that index; a
//! follower asks the leader for the index (`/raft/read-index`) and waits
//! until it has applied it itself, so reads need not pass through the
//! leader.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use openraft::alias::{SnapshotMetaOf, VoteOf};
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, ReadPolicy, ServerState};
use serde::{Deserialize, Serialize};

use super::answered::AnsweredRecord;
use super::boot::BootRecord;
use super::liveness::{Liveness, STOP_BUDGET, Unanswered};
use super::network::{self, Body, H_CLUSTER, H_FROM, H_SNAPSHOT, H_TO, Identity, full};
use super::state_machine::{Snapshot, SnapshotData, StateMachine};
use super::types::{Command, Member, NodeId, Reply, TypeConfig, WriteCommand};
use super::write_batch::WriteRounds;
use crate::engine::{Engine, Request as EngineRequest};
use crate::error::{Error, Result};
use crate::types::{Applied, now_ms};

mod membership;
mod raft_listener;

pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// Idle connections a follower keeps to its leader.
const MAX_IDLE_FORWARD_CONNS: usize = 128;
/// How long a follower waits for the leader on a forwarded membership
/// change.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// What a follower waits for the leader beyond the leader's own bound on a
/// forwarded write or read ([`Liveness::commit_timeout`]): time for the
/// leader's answer to arrive, so a client of a follower is answered as
/// soon as a client of the leader would be, or half a second after.
const FORWARD_MARGIN: Duration = Duration::from_millis(500);
/// How often a request forwarded to the leader checks that it is still
/// the leader this node hears from (see [`Node::while_leader`]).
const LEADER_CHECK: Duration = Duration::from_millis(50);
/// How long a stopping leader waits for a voter to take over (SPEC: the
/// most caught-up voter "that answers within 1 s").
const HAND_OVER_WAIT: Duration = Duration::from_secs(1);
/// How long a stopping node waits for Raft's tasks to end.
const RAFT_SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// A join as a member's raft listener takes it (forwarded to the leader).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub url: String,
    pub raft: String,
    /// `None`: first ask for a node id; then join with it.
    pub node_id: Option<NodeId>,
    pub learner: bool,
}

/// A membership or leadership change (`kvr cluster ...`), done by the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admin {
    Promote(NodeId),
    Remove(NodeId),
    TransferLeader(NodeId),
}

/// The answer to a join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinAnswer {
    pub cluster_id: String,
    pub node_id: NodeId,
}

/// A cluster member.
pub struct Node {
    pub raft: Raft,
    pub me: Arc<Identity>,
    pub member: Member,
    pub engine: Arc<Engine>,
    /// Where received snapshots are written before they are installed.
    pub tmp_dir: PathBuf,
    /// Idle connections to the leader's raft listener, for forwarded
    /// requests (each in flight has its own).
    leader_conns: std::sync::Mutex<Vec<(NodeId, network::Conn)>>,
    /// The state machine's engine writer: flushed at shutdown.
    writer: Arc<std::sync::Mutex<crate::engine::EngineWriter>>,
    /// Removed from the cluster (see [`Node::mark_removed`]).
    removed: std::sync::atomic::AtomicBool,
    /// Linearizable reads waiting for a read index (see `read_batch.rs`).
    reads: Arc<super::read_batch::ReadRounds>,
    /// Writes waiting to be proposed together, and (on a follower) to be
    /// forwarded together (see `write_batch.rs`).
    writes: Arc<WriteRounds<Proposed>>,
    forwards: Arc<WriteRounds<Result<Reply>>>,
    /// The leader a refused proposal here named, for the next forwarding
    /// round when the metrics do not name one yet.
    leader_hint: std::sync::Mutex<Option<(NodeId, Member)>>,
    counts: RoundCounts,
    /// Bytes appended to the Raft log since it was opened.
    log_appended: Arc<AtomicU64>,
    /// How long proposals may wait; readiness (see `liveness.rs`).
    pub liveness: Liveness,
    /// Held by a membership change at the leader (a join, a promote, a
    /// remove) from its look at the membership to its end: changes that
    /// meet wait for each other instead of failing (openraft refuses a
    /// change while another is in progress; SPEC: serialized, waits).
    membership_changes: tokio::sync::Mutex<()>,
    /// Whether the node has caught up with its cluster since it started
    /// (see [`Node::recovered`]).
    recovered: std::sync::atomic::AtomicBool,
    /// Wakes the answers [`Node::settled`] holds once `recovered`.
    recovered_notify: tokio::sync::Notify,
    /// Whether it has applied a read index of its cluster since it
    /// started: what readiness waits for (see [`Node::ready`]).
    caught_up: std::sync::atomic::AtomicBool,
    /// Whether it joined at this start (for what `/readyz` says).
    new_member: std::sync::atomic::AtomicBool,
    /// The highest revision answered here before it was applied here
    /// (see `answered.rs`).
    answered: Arc<AnsweredRecord>,
    /// When this member's unsynced records can be trusted at a restart
    /// (see `boot.rs`).
    boot: Arc<BootRecord>,
}

/// What a proposal here answered: what applying the write decided, or why
/// it was not (or may not have been) committed.
type Proposed = std::result::Result<Reply, NotCommitted>;

/// Why a proposal here has no outcome.
#[derive(Debug, Clone)]
enum NotCommitted {
    /// As openraft said it: refused before it was proposed
    /// (`ForwardToLeader`), or proposed and lost.
    Raft(RaftError<TypeConfig, ClientWriteError<TypeConfig>>),
    /// Proposed, and not committed in time: its fate is unknown.
    Unanswered(Unanswered),
}

impl std::fmt::Display for NotCommitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotCommitted::Raft(e) => e.fmt(f),
            NotCommitted::Unanswered(u) => u.fmt(f),
        }
    }
}

/// For `/metrics`: rounds of writes proposed here and the writes (one
/// entry each) they carried; forwarding rounds and the writes they carried.
#[derive(Default)]
struct RoundCounts {
    rounds: AtomicU64,
    writes: AtomicU64,
    forward_rounds: AtomicU64,
    forwarded: AtomicU64,
    /// Told each round of writes committed and applied here: its writes
    /// and the time from its proposal (the server's commit histograms).
    committed: std::sync::OnceLock<RoundObserver>,
}

/// See [`Node::observe_rounds`].
pub type RoundObserver = Box<dyn Fn(usize, Duration) + Send + Sync>;

fn no_leader() -> Error {
    Error::Unavailable {
        message: "no cluster leader is reachable right now (an election, or this node is cut \
                  off); the request was not applied; retry"
            .into(),
        overloaded: false,
    }
}

/// A follower that has not heard from its leader for longer than an
/// election takes: it sends the leader nothing (a write there would only
/// wait out its bound and end `outcome_unknown`), and the request was
/// never proposed.
fn silent_leader(quiet: Duration) -> Error {
    Error::Unavailable {
        message: format!(
            "no word from the cluster leader for {} ms (an election, or this node is cut off); \
             the request was not applied; retry",
            quiet.as_millis()
        ),
        overloaded: false,
    }
}

/// A follower that stood still (`Liveness::paused`): the writes it read
/// since may have waited through the pause, their clients long gone.
fn stood_still(pause: Duration) -> Error {
    Error::Unavailable {
        message: format!(
            "this node stood still for {} ms (stopped, or its machine frozen), so a request it \
             read may have waited that long; the request was not applied; retry",
            pause.as_millis()
        ),
        overloaded: false,
    }
}

fn unknown(why: impl std::fmt::Display) -> Error {
    Error::OutcomeUnknown {
        message: format!("the cluster lost track of the write: {why}"),
    }
}

/// How long a member may go without acknowledging the leader before the
/// status shows no figures for it (`-`).
const STATUS_SILENT: Duration = Duration::from_secs(5);

impl Node {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        raft: Raft,
        me: Arc<Identity>,
        member: Member,
        engine: Arc<Engine>,
        writer: Arc<std::sync::Mutex<crate::engine::EngineWriter>>,
        tmp_dir: PathBuf,
        log_appended: Arc<AtomicU64>,
        answered: AnsweredRecord,
        boot: BootRecord,
    ) -> Node {
        let liveness = Liveness::new(raft.config().election_timeout_max);
        Node {
            raft,
            me,
            member,
            engine,
            tmp_dir,
            leader_conns: std::sync::Mutex::new(Vec::new()),
            writer,
            removed: std::sync::atomic::AtomicBool::new(false),
            reads: Arc::default(),
            writes: Arc::default(),
            forwards: Arc::default(),
            leader_hint: std::sync::Mutex::new(None),
            log_appended,
            counts: RoundCounts::default(),
            liveness,
            membership_changes: tokio::sync::Mutex::new(()),
            recovered: std::sync::atomic::AtomicBool::new(false),
            recovered_notify: tokio::sync::Notify::new(),
            caught_up: std::sync::atomic::AtomicBool::new(false),
            new_member: std::sync::atomic::AtomicBool::new(false),
            answered: Arc::new(answered),
            boot: Arc::new(boot),
        }
    }

    /// The highest revision this node has answered a write with before
    /// applying it, as recorded (see `answered.rs`).
    pub fn answered_recorded(&self) -> u64 {
        self.answered.recorded()
    }

    /// Records that a write was answered with `revision` before this node
    /// applied it, so that a restart after a `kill -9` does not answer
    /// below it (see `answered.rs`).
    pub fn record_answered(&self, revision: u64) {
        // A failed write leaves the floor as after a power loss: refusals
        // may go below it until the node catches up. Nothing to answer.
        let _ = self.answered.raise(revision);
    }

    /// Whether this node's state is known to be at least what it served
    /// before it last stopped. A restarted member replays its Raft log up
    /// to the commit index it recorded, but that record is not synced:
    /// after a power loss it may be older than what the node had applied
    /// and served, and stale reads would then answer a revision below one
    /// the node gave before (SPEC: a node's `X-Kvr-Revision` never goes
    /// backwards across its restarts; a LazyFS power-loss run of three
    /// members found it). So it holds when the record can be trusted (a
    /// restart in the same boot, or after a clean stop: `boot.rs`), and
    /// otherwise once one read index (the leader's commit index, which
    /// covers everything any member applied) has been applied here.
    pub fn recovered(&self) -> bool {
        self.recovered.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits, before an answer that carries `X-Kvr-Revision` (every one
    /// but `/healthz` and `/readyz`), until the node's answers cannot go
    /// below what it said before it started: at once unless it
    /// restarted with records it cannot trust (after a reboot that
    /// followed a crash, `boot.rs`), and then until it has caught up with
    /// its cluster ([`Node::recovered`]), at most until
    /// `Liveness::settle_deadline` (or its stop). A refusal carries the
    /// node's newest revision; before it has caught up that is the one it
    /// replayed to, which a power loss can leave below one it answered
    /// (its commit index record is not synced).
    pub async fn settled(&self) {
        if self.recovered() {
            return;
        }
        let caught_up = async {
            loop {
                let notified = self.recovered_notify.notified();
                tokio::pin!(notified);
                // Registered before the look, so a wake-up in between counts.
                notified.as_mut().enable();
                if self.recovered() {
                    return;
                }
                notified.await;
            }
        };
        let held = tokio::time::timeout_at(self.liveness.settle_deadline(), caught_up);
        let _ = self.liveness.until_stopped(held).await;
    }

    /// Marks a node that has applied a read index of its cluster, or
    /// has nothing to catch up with (a new cluster's first node).
    pub fn mark_recovered(&self) {
        self.mark_stale_reads_safe();
        self.caught_up
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Marks a member that joined at this start: it never served, so its
    /// stale reads need no read index first ([`Node::mark_stale_reads_safe`]).
    pub fn mark_new_member(&self) {
        self.new_member
            .store(true, std::sync::atomic::Ordering::Release);
        self.mark_stale_reads_safe();
    }

    /// Marks a node whose stale reads cannot go below anything it said
    /// before: one caught up with its cluster, a new member (it never
    /// served), or one restarted with records it can trust (`boot.rs`).
    /// Its stale reads need no read index first, but it is not ready
    /// until it has applied one ([`Node::caught_up`]). The first time,
    /// the boot record says so, for the next start in this boot.
    pub fn mark_stale_reads_safe(&self) {
        if self
            .recovered
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        self.recovered_notify.notify_waiters();
        let boot = self.boot.clone();
        let record = move || {
            if let Err(e) = boot.record_caught_up() {
                // The next start in this boot then catches up with its
                // cluster before its stale reads, as after a reboot.
                crate::server::log::event(format_args!(
                    "kvr serve: cannot write the Raft log's boot record: {e}"
                ));
            }
        };
        // An fsync and a rename: not on a runtime thread.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(record);
            }
            Err(_) => record(),
        }
    }

    /// Whether the node has applied a read index of its cluster since it
    /// started (or made the cluster). A joiner's log is empty until the
    /// leader's first append, so "applied within 1,000 entries of its
    /// commit index" held at 0 of 0, and it said ready with none of the
    /// data.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops Raft, then flushes what was applied into the database file,
    /// so the next start replays nothing; all within [`STOP_BUDGET`] of the
    /// signal (`Liveness::begin_stop`). A flush that does not finish in
    /// time is left behind: what it would write is in the Raft log, which
    /// the next start replays, as after a `kill -9`.
    pub async fn stop(&self) {
        self.liveness.begin_stop();
        let began = self
            .liveness
            .stop_began()
            .unwrap_or_else(tokio::time::Instant::now);
        let deadline = began + STOP_BUDGET;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        // Hand leadership to the most caught-up voter, so writes resume
        // without waiting for an election timeout (not when no majority
        // answers: no voter would take it).
        if self.raft.is_leader() && self.check_lease().is_ok() {
            let wait = HAND_OVER_WAIT.min(left());
            let _ = tokio::time::timeout(wait, self.hand_over()).await;
        }
        let wait = RAFT_SHUTDOWN_WAIT.min(left());
        let raft_stopped = matches!(
            tokio::time::timeout(wait, self.raft.shutdown()).await,
            Ok(Ok(()))
        );
        // With Raft stopped nothing more is committed here: once the
        // unsynced records are synced, the next start can trust them in
        // any boot (`boot.rs`); not if it has not caught up since it
        // started (they may be behind what it served before).
        let clean = raft_stopped && self.recovered();
        let (boot, answered) = (self.boot.clone(), self.answered.clone());
        let writer = self.writer.clone();
        let flush = tokio::task::spawn_blocking(move || {
            if clean && let Err(e) = boot.record_clean_stop(&answered) {
                crate::server::log::event(format_args!(
                    "kvr serve: cannot record a clean stop in the Raft log's boot record: {e}"
                ));
            }
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            let _ = w.flush_all();
        });
        if tokio::time::timeout(left(), flush).await.is_err() {
            crate::server::log::event(format_args!(
                "kvr serve: the final flush did not finish within {STOP_BUDGET:?} of the \
                 signal; left to the Raft log, which the next start replays"
            ));
        }
    }

    /// Transfers leadership to the voter with the highest matched index.
    async fn hand_over(&self) {
        let m = self.metrics();
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        let best = m.replication.as_ref().and_then(|r| {
            r.iter()
                .filter(|(id, _)| **id != self.me.node_id && voters.contains(*id))
                .max_by_key(|(_, matched)| matched.as_ref().map(|l| l.index))
                .map(|(id, _)| *id)
        });
        let Some(to) = best else {
            return;
        };
        if self.raft.trigger().transfer_leader(to).await.is_ok() {
            let _ = self
                .raft
                .wait(Some(Duration::from_secs(1)))
                .current_leader(to, "hand-over at shutdown")
                .await;
        }
    }

    /// Tells `observe` each round of writes this node proposed, once it is
    /// committed and applied: how many of its writes were, and how long it
    /// took from its proposal (the cluster's group commit). Set once.
    pub fn observe_rounds(&self, observe: RoundObserver) {
        let _ = self.counts.committed.set(observe);
    }

    /// This member's own `/metrics` families.
    pub fn metrics_text(&self) -> String {
        let c = &self.counts;
        let mut out = String::new();
        for (name, help, value) in [
            (
                "kvr_raft_write_rounds_total",
                "Rounds of writes proposed here to Raft together (the writes that were \
                 waiting together, one entry each).",
                &c.rounds,
            ),
            (
                "kvr_raft_writes_proposed_total",
                "Write requests proposed here through Raft.",
                &c.writes,
            ),
            (
                "kvr_raft_forward_rounds_total",
                "Requests that forwarded writes to the leader (each carries the writes that \
                 were waiting together).",
                &c.forward_rounds,
            ),
            (
                "kvr_raft_writes_forwarded_total",
                "Write requests forwarded to the leader.",
                &c.forwarded,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let m = self.metrics();
        let leading = m.state == ServerState::Leader;
        for (name, help, value) in [
            (
                "kvr_raft_has_leader",
                "1 when this member hears from a leader (or leads with its majority), as \
                 X-Kvr-Leader and /readyz say; else 0.",
                u64::from(self.leader_heard().is_some()),
            ),
            (
                "kvr_raft_is_leader",
                "1 when this member is the leader.",
                u64::from(leading),
            ),
            (
                "kvr_raft_term",
                "The Raft term this member is in.",
                m.current_term,
            ),
            (
                "kvr_raft_last_log_index",
                "The last entry in this member's Raft log.",
                m.last_log_index.unwrap_or(0),
            ),
            (
                "kvr_raft_committed_index",
                "The last entry this member knows to be committed.",
                m.local_committed.map_or(0, |l| l.index),
            ),
            (
                "kvr_raft_applied_index",
                "The last entry applied to this member's data.",
                m.last_applied.map_or(0, |l| l.index),
            ),
            (
                "kvr_raft_purged_index",
                "The last entry purged from this member's log (0: none): a snapshot holds it.",
                m.purged.map_or(0, |l| l.index),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        if let Some(replication) = m.replication.as_ref().filter(|_| leading) {
            let last = m.last_log_index.unwrap_or(0);
            let _ = writeln!(
                out,
                "# HELP kvr_raft_follower_lag_entries On the leader: entries of its log each \
                 other member has not acknowledged.\n# TYPE kvr_raft_follower_lag_entries gauge"
            );
            for (id, matched) in replication.iter().filter(|(id, _)| **id != self.me.node_id) {
                let matched = matched.as_ref().map_or(0, |l| l.index);
                let _ = writeln!(
                    out,
                    "kvr_raft_follower_lag_entries{{node=\"{id}\"}} {}",
                    last.saturating_sub(matched)
                );
            }
            // A lag of 0 on an idle cluster says nothing of a member that
            // stopped: this does (an audit saw a killed voter at lag 0).
            let _ = writeln!(
                out,
                "# HELP kvr_raft_follower_silent_seconds On the leader: time since each other \
                 member last acknowledged it (about the heartbeat interval while it answers).\n\
                 # TYPE kvr_raft_follower_silent_seconds gauge"
            );
            for id in replication.keys().filter(|id| **id != self.me.node_id) {
                let silent = self.silent_for(&m, *id);
                let _ = writeln!(
                    out,
                    "kvr_raft_follower_silent_seconds{{node=\"{id}\"}} {}",
                    // Never acknowledged in this term: Prometheus' +Inf.
                    silent.map_or("+Inf".to_string(), |d| format!("{:.3}", d.as_secs_f64()))
                );
            }
        }
        let snapshot = m.snapshot.map_or(0, |l| l.index);
        let _ = writeln!(
            out,
            "# HELP kvr_raft_log_appended_bytes_total Bytes appended to the Raft log since start.\n\
             # TYPE kvr_raft_log_appended_bytes_total counter\n\
             kvr_raft_log_appended_bytes_total {}\n\
             # HELP kvr_raft_snapshot_index The last log index the newest snapshot covers (0: \
             none).\n# TYPE kvr_raft_snapshot_index gauge\nkvr_raft_snapshot_index {snapshot}",
            self.log_appended.load(Ordering::Relaxed)
        );
        out
    }

    /// Freezes the live memory table for a flush when it is due by age
    /// (writes that trickle in are flushed within a few seconds).
    pub fn maybe_flush(&self) {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let _ = w.maybe_freeze();
    }

    /// The Raft metrics now.
    pub fn metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        use openraft::type_config::async_runtime::watch::WatchReceiver;
        self.raft.metrics().borrow_watched().clone()
    }

    /// The leader, if one is known: its id and addresses.
    pub fn leader(&self) -> Option<(NodeId, Member)> {
        use openraft::type_config::async_runtime::watch::WatchReceiver;
        // Borrowed, not cloned: every response names the leader.
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let id = m.current_leader?;
        let member = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, member))
    }

    /// [`Node::leader`], unless this follower has not heard from it for
    /// longer than the maximum election timeout, or this node leads
    /// without its lease: a client is not sent to a leader that is gone or
    /// cut off (`X-Kvr-Leader`).
    pub fn leader_heard(&self) -> Option<(NodeId, Member)> {
        self.leader()
            .filter(|(id, _)| match *id == self.me.node_id {
                // A leader cut off from its majority takes no writes: it does
                // not send clients to itself either.
                true => self.check_lease().is_ok(),
                false => self.liveness.leader_silent().is_none(),
            })
    }

    /// The time of a write proposed now: the median of the voters' clocks
    /// (`clock.rs`), so that one wrong clock, this node's included, moves
    /// no write's expiry or idempotency window.
    pub fn cluster_now_ms(&self) -> u64 {
        use openraft::type_config::async_runtime::watch::WatchReceiver;
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let voters = m.membership_config.membership().voter_ids();
        self.me.clocks.now_ms(self.me.node_id, voters, now_ms())
    }

    /// The leader's id, if one is known (no copy of its addresses: asked
    /// on every write).
    fn leader_id(&self) -> Option<NodeId> {
        use openraft::type_config::async_runtime::watch::WatchReceiver;
        self.raft.metrics().borrow_watched().current_leader
    }

    /// Applies a write through the cluster (see the module header): here
    /// in a round of the writes waiting beside it when this node leads,
    /// else forwarded to the leader in a round (`write_batch.rs`).
    pub async fn write(self: &Arc<Self>, req: EngineRequest) -> Result<Applied> {
        // A follower's time is replaced by the leader's when it forwards.
        let cmd = Arc::new(WriteCommand::new(&req, self.cluster_now_ms()));
        let leader = self.leader_id();
        if leader == Some(self.me.node_id) {
            // A leader that lost its majority takes no new write (openraft
            // would refuse it): say so now rather than after the rounds
            // queued ahead of it, which may wait for their commit bound.
            // Never proposed, so `unavailable`.
            self.check_lease()?;
        }
        if leader.is_none_or(|id| id == self.me.node_id) {
            match self.propose_write(cmd.clone()).await {
                Ok(reply) => return reply.into_outcome(),
                Err(NotCommitted::Raft(e)) => {
                    // Refused here: the leader it names, for the round (the
                    // metrics may not know it yet).
                    let leader = self.leader_after(e)?;
                    *self.leader_hint.lock().unwrap_or_else(|e| e.into_inner()) = Some(leader);
                }
                Err(NotCommitted::Unanswered(why)) => return Err(unknown(why)),
            }
        }
        // A stopping follower answers within its stop deadline even if the
        // leader does not.
        match self.liveness.until_stopped(self.forward_write(cmd)).await {
            Ok(reply) => {
                let outcome = reply?.into_outcome();
                self.apply_answered(&outcome).await;
                outcome
            }
            Err(why) => Err(unknown(why)),
        }
    }

    /// Before a follower answers a forwarded write: waits until it has
    /// applied the revision the leader answered with (for a 412, the
    /// revision its body names), as an etcd member does. A client then
    /// finds its write in everything this node answers next: stale reads,
    /// watches, and the `X-Kvr-Revision` of refusals. Measured with
    /// `wrk -c16` PUTs and stale GETs through one follower together: about
    /// 0.4 ms more per forwarded PUT at p50 (an apply here follows the
    /// leader's next message), and stale reads no longer wait for the
    /// writes in flight. The write is committed whatever happens here: a
    /// node that cannot apply it within an election timeout (its leader
    /// lost) answers anyway, and keeps to the revision it answered
    /// ([`Node::stale_read_barrier`], `answered.rs`).
    async fn apply_answered(&self, outcome: &Result<Applied>) {
        let revision = match outcome {
            Ok(applied) => applied.revision,
            Err(Error::PreconditionFailed {
                current: Some(current),
                ..
            }) => *current,
            Err(_) => return,
        };
        if self.engine.revision() >= revision {
            return;
        }
        let applied = self.engine.reached(revision, self.liveness.election_max());
        let _ = self.liveness.until_stopped(applied).await;
    }

    /// `Err(unavailable)` when this node leads without a majority's
    /// acknowledgement within the maximum election timeout.
    fn check_lease(&self) -> Result<()> {
        use openraft::type_config::async_runtime::watch::WatchReceiver;
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.state != ServerState::Leader {
            return Ok(());
        }
        self.liveness
            .leader_lease(&m, self.me.node_id)
            .map_err(|why| Error::Unavailable {
                message: format!("{why}; the request was not applied; retry"),
                overloaded: false,
            })
    }

    /// Proposes a write here, in a round.
    async fn propose_write(self: &Arc<Self>, cmd: Arc<WriteCommand>) -> Proposed {
        let node = self.clone();
        let send = move |cmds| {
            let node = node.clone();
            async move { node.propose_round(cmds).await }
        };
        self.writes
            .propose(cmd, send)
            .await
            .unwrap_or(Err(NotCommitted::Raft(RaftError::Fatal(
                openraft::errors::Fatal::Stopped,
            ))))
    }

    /// Proposes `cmds`, one entry each (SPEC: one request is exactly one
    /// Raft entry), in one message to Raft's core (`client_write_many`):
    /// they are appended, replicated and synced together, and applied as
    /// one engine group. An outcome for each, in order.
    async fn propose_round(&self, cmds: Vec<Arc<WriteCommand>>) -> Vec<Proposed> {
        let n = cmds.len();
        if let Err(e) = self.history_bounds_first().await {
            return vec![Err(NotCommitted::Raft(e)); n];
        }
        self.counts.rounds.fetch_add(1, Ordering::Relaxed);
        self.counts.writes.fetch_add(n as u64, Ordering::Relaxed);
        let proposed = Instant::now();
        let mut answered: Vec<Proposed> = Vec::with_capacity(n);
        let answers = &mut answered;
        let round = async move {
            let entries = cmds.into_iter().map(Command::Write);
            let mut outcomes = self.raft.client_write_many(entries).await?;
            while let Some(outcome) = outcomes.next().await {
                answers.push(match outcome {
                    Ok(Ok(written)) => Ok(written.response),
                    Ok(Err(e)) => Err(NotCommitted::Raft(RaftError::APIError(e))),
                    Err(fatal) => Err(NotCommitted::Raft(RaftError::Fatal(fatal))),
                });
            }
            Ok::<(), openraft::errors::Fatal<TypeConfig>>(())
        };
        let ended = self.liveness.bound(round).await;
        let committed = answered.iter().filter(|a| a.is_ok()).count();
        if let (true, Some(observe)) = (committed > 0, self.counts.committed.get()) {
            observe(committed, proposed.elapsed());
        }
        // The writes left without an answer: none was proposed (the core
        // refused the round), or their fate is unknown.
        let rest = match ended {
            Ok(Ok(())) => NotCommitted::Raft(RaftError::Fatal(openraft::errors::Fatal::Stopped)),
            Ok(Err(fatal)) => NotCommitted::Raft(RaftError::Fatal(fatal)),
            Err(why) => NotCommitted::Unanswered(why),
        };
        answered.resize(n, Err(rest));
        answered
    }

    /// Forwards a write to the leader, in a round.
    async fn forward_write(self: &Arc<Self>, cmd: Arc<WriteCommand>) -> Result<Reply> {
        let node = self.clone();
        let send = move |cmds| {
            let node = node.clone();
            async move { node.forward_round(cmds).await }
        };
        self.forwards
            .propose(cmd, send)
            .await
            .unwrap_or_else(|| Err(unknown("its forwarding round ended without an answer")))
    }

    /// Sends `cmds` to the leader in one request; an outcome for each.
    async fn forward_round(&self, cmds: Vec<Arc<WriteCommand>>) -> Vec<Result<Reply>> {
        let n = cmds.len();
        if let Some(quiet) = self.liveness.leader_silent() {
            return (0..n).map(|_| Err(silent_leader(quiet))).collect();
        }
        if let Some(pause) = self.liveness.paused() {
            return (0..n).map(|_| Err(stood_still(pause))).collect();
        }
        self.counts.forward_rounds.fetch_add(1, Ordering::Relaxed);
        self.counts.forwarded.fetch_add(n as u64, Ordering::Relaxed);
        let hint = self
            .leader_hint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let other = |l: &(NodeId, Member)| l.0 != self.me.node_id;
        let Some((id, member)) = self.leader().filter(other).or(hint.filter(other)) else {
            return (0..n).map(|_| Err(no_leader())).collect();
        };
        // Sent, so unanswered means unknown: the old leader may have
        // proposed it, and the new one may commit it.
        let replaced = || {
            unknown(
                "the leader it was forwarded to was replaced, or fell silent, before it answered",
            )
        };
        if n == 1 {
            let cmd = Command::Write(cmds[0].clone());
            let sent = self.forward(id, &member, "write", &cmd, self.write_forward_timeout());
            return vec![
                self.while_leader(id, sent)
                    .await
                    .unwrap_or_else(|| Err(replaced())),
            ];
        }
        let sent = self.forward::<_, Vec<Forwarded<Reply>>>(
            id,
            &member,
            "write-batch",
            &cmds,
            self.write_forward_timeout(),
        );
        match self.while_leader(id, sent).await {
            Some(Ok(answers)) => answers.into_iter().map(Forwarded::into_result).collect(),
            Some(Err(e)) => (0..n).map(|_| copy_failure(&e)).collect(),
            None => (0..n).map(|_| Err(replaced())).collect(),
        }
    }

    /// Waits for `forwarded` (a request sent to `leader`) while `leader` is
    /// still the leader this node hears from: `None` once another leader is
    /// known here (this node included) or `leader` fell silent for longer
    /// than an election timeout. A hung leader (paused, or cut off after
    /// it took the request) otherwise held each forwarded round, and the
    /// writes and reads queued behind it, for the full forward timeout
    /// (7.5 s) while a new leader was already taking writes.
    async fn while_leader<T>(
        &self,
        leader: NodeId,
        forwarded: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        // A leader named by a refused proposal may not be in the metrics
        // yet: only a change of what they say counts.
        let before = self.leader_id();
        let deposed = async {
            loop {
                tokio::time::sleep(LEADER_CHECK).await;
                let now = self.leader_id();
                let other = now != before && now.is_some_and(|id| id != leader);
                if other || self.liveness.leader_silent().is_some() {
                    return;
                }
            }
        };
        tokio::select! {
            biased;
            out = forwarded => Some(out),
            () = deposed => None,
        }
    }

    /// Proposes `cmd` (not a write) here if this node leads, else at the
    /// leader.
    async fn propose(&self, cmd: Command) -> Result<Reply> {
        match self
            .liveness
            .bound(self.raft.client_write(cmd.clone()))
            .await
        {
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => {
                let (id, node) = self.leader_after(e)?;
                self.forward(id, &node, "write", &cmd, self.write_forward_timeout())
                    .await
            }
            Err(why) => Err(unknown(why)),
        }
    }

    /// Before the first write of a cluster's log: puts this leader's
    /// history bounds in the log ahead of it. Until the log names bounds,
    /// each node trims by its own flags, so members with other flags would
    /// keep different histories of the same writes (a new cluster's first
    /// writes could come before [`Self::adopt_history_bounds`] ran). An
    /// error: the writes were not proposed.
    async fn history_bounds_first(
        &self,
    ) -> std::result::Result<(), RaftError<TypeConfig, ClientWriteError<TypeConfig>>> {
        if self.engine.replicated_history_bounds().is_some() {
            return Ok(());
        }
        let own = self.engine.own_history_bounds();
        match self
            .liveness
            .bound(self.raft.client_write(Command::SetHistory(own)))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            // Not a leader: the writes go where it says.
            Ok(Err(e @ RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Err(e),
            // Lost or not committed in time: the writes were not proposed
            // (never `outcome_unknown`), and the caller retries
            // (`unavailable`).
            _ => Err(RaftError::APIError(ClientWriteError::ForwardToLeader(
                openraft::errors::ForwardToLeader::empty(),
            ))),
        }
    }

    /// At a leader whose own `--history` flags are not the bounds in
    /// force: proposes its own for every node ([`Command::SetHistory`]),
    /// as etcd's leader runs the compaction its flags ask for. Called
    /// every few hundred ms; a failed proposal is tried again then.
    pub async fn adopt_history_bounds(&self) {
        let own = self.engine.own_history_bounds();
        let was = self.engine.replicated_history_bounds();
        if was == Some(own) || !self.raft.is_leader() || self.check_lease().is_err() {
            return;
        }
        let proposed = self
            .liveness
            .bound(self.raft.client_write(Command::SetHistory(own)))
            .await;
        if let (Ok(Ok(_)), Some(was)) = (proposed, was) {
            crate::server::log::event(format_args!(
                "kvr serve: every node now keeps this leader's watch history bounds, \
                 --history {} --history-bytes {} (were --history {} --history-bytes {})",
                own.events, own.bytes, was.events, was.bytes
            ));
        }
    }

    /// The leader to forward to after a proposal here failed with `e`, or
    /// what to answer: `unavailable` when it was not proposed and no other
    /// leader is known, `outcome_unknown` when it was proposed.
    fn leader_after(
        &self,
        e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
    ) -> Result<(NodeId, Member)> {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                match (f.leader_id, f.leader_node) {
                    (Some(id), Some(node)) if id != self.me.node_id => Ok((id, node)),
                    _ => Err(no_leader()),
                }
            }
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
                Err(unknown("leadership changed before the entry was committed"))
            }
            e => Err(unknown(e)),
        }
    }

    /// How long a follower waits for the leader's answer to a forwarded
    /// write: the leader's own bound and [`FORWARD_MARGIN`].
    fn write_forward_timeout(&self) -> Duration {
        self.liveness.commit_timeout() + FORWARD_MARGIN
    }

    /// Sends `body` to the leader's raft listener; decodes its answer,
    /// waiting at most `timeout` for it.
    async fn forward<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        leader: NodeId,
        node: &Member,
        kind: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp> {
        let bytes = postcard::to_allocvec(body)
            .map_err(|e| Error::Storage(format!("cannot encode a request: {e}")))?;
        // A connection of the pool (forwarded requests run concurrently).
        let mut conn = {
            let mut pool = self.leader_conns.lock().unwrap_or_else(|e| e.into_inner());
            pool.retain(|(id, c)| *id == leader && !c.is_closed());
            pool.pop().map(|(_, c)| c)
        };
        let answer = network::call(
            &mut conn,
            network::Dest {
                addr: &node.raft,
                me: &self.me,
                target: leader,
            },
            kind,
            full(bytes),
            None,
            timeout,
        )
        .await;
        if let Some(c) = conn {
            let mut pool = self.leader_conns.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < MAX_IDLE_FORWARD_CONNS {
                pool.push((leader, c));
            }
        }
        match answer {
            Ok(bytes) => network::decode_answer::<Forwarded<Resp>>(&bytes)
                .map_err(|e| unknown(format!("the leader's answer was unreadable: {e}")))?
                .into_result(),
            Err((false, _)) => Err(no_leader()),
            Err((true, e)) => Err(unknown(format!("the leader did not answer: {e}"))),
        }
    }

    /// Waits until this node has applied every write acknowledged before
    /// the call (see the module header); reads waiting together share one
    /// read index (`read_batch.rs`).
    pub async fn read_barrier(self: &Arc<Self>) -> Result<()> {
        let node = self.clone();
        let read = self.reads.read(move || {
            let node = node.clone();
            async move { node.read_round().await }
        });
        // A stopping node answers a read it cannot serve in time, rather
        // than leave it to be cut without a response.
        self.liveness
            .until_stopped(read)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Unavailable {
                    message: "the node is stopping and could not confirm the read with the \
                              leader in time; retry"
                        .into(),
                    overloaded: false,
                })
            })?;
        self.mark_recovered();
        Ok(())
    }

    /// Before a stale read: a node that has not caught up with its
    /// cluster since it started (see [`Node::recovered`]) takes one read
    /// index first, as a linearizable read does, and fails as one does
    /// while it cannot. And one that answered a write with a revision it
    /// has not applied yet (`answered`: a follower that could not apply a
    /// forwarded write in time, see `Node::apply_answered`) waits for
    /// it, so that a stale read through the node that took a write sees
    /// it, and its `X-Kvr-Revision` does not go below the write's.
    pub async fn stale_read_barrier(self: &Arc<Self>, answered: u64) -> Result<()> {
        if !self.recovered() {
            self.read_barrier().await?;
        }
        if self.engine.revision() >= answered {
            return Ok(());
        }
        // Within the stop deadline too: a stopping node answers.
        let applied = self.engine.reached(answered, self.write_forward_timeout());
        match self.liveness.until_stopped(applied).await {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(Error::Unavailable {
                message: format!(
                    "this node answered a write at revision {answered} and has not applied it \
                     yet (it has had no word of it from the cluster leader); retry"
                ),
                overloaded: false,
            }),
        }
    }

    /// One round of [`Node::read_barrier`]: a read index confirmed now,
    /// here or by the leader, and applied here.
    async fn read_round(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.write_forward_timeout();
        // Asked again when the leader asked is replaced meanwhile: a read
        // index from the new leader serves the reads as well.
        let index = loop {
            match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                    match (f.leader_id, f.leader_node) {
                        (Some(id), Some(node)) if id != self.me.node_id => {
                            if let Some(quiet) = self.liveness.leader_silent() {
                                return Err(silent_leader(quiet));
                            }
                            let left =
                                deadline.saturating_duration_since(tokio::time::Instant::now());
                            if left.is_zero() {
                                return Err(no_leader());
                            }
                            let asked = self.forward::<(), u64>(id, &node, "read-index", &(), left);
                            match self.while_leader(id, asked).await {
                                Some(index) => {
                                    break index.map_err(|e| match e {
                                        // A read changes nothing: unanswered,
                                        // it is simply not served.
                                        Error::OutcomeUnknown { .. } => no_leader(),
                                        other => other,
                                    })?;
                                }
                                None => continue,
                            }
                        }
                        _ => return Err(no_leader()),
                    }
                }
                Err(_) => return Err(no_leader()),
            }
        };
        self.raft
            .wait(Some(FORWARD_TIMEOUT))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|_| no_leader())
    }

    /// `GET /v1/cluster`.
    pub fn status(&self) -> serde_json::Value {
        let m = self.metrics();
        let state = match m.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            _ => "follower",
        };
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        // The leader this member hears from, as X-Kvr-Leader and /readyz
        // say: not one that has gone silent.
        let leader = self
            .leader_heard()
            .map(|(id, n)| serde_json::json!({"id": id, "url": n.url}));
        let last = m.last_log_index.unwrap_or(0);
        let nodes: Vec<serde_json::Value> = membership
            .nodes()
            .map(|(id, n)| {
                // `null` (shown `-`) where the leader has no figure: a
                // member it has not heard from yet (it showed 0, and a lag
                // of the whole log).
                // Nor for one that stopped answering it: its figures are
                // from before (an audit saw a killed voter at lag 0). Not
                // the election timeout: under writes of large values a
                // healthy follower's acknowledgements came up to 2.6 s
                // apart (the review audit saw it shown as `-`).
                let answers = *id == self.me.node_id
                    || self.silent_for(&m, *id).is_some_and(|d| d < STATUS_SILENT);
                let matched = m
                    .replication
                    .as_ref()
                    .filter(|_| answers)
                    .and_then(|r| r.get(id))
                    .and_then(|l| l.as_ref().map(|l| l.index));
                serde_json::json!({
                    "id": id,
                    "url": n.url,
                    "raft": n.raft,
                    "voter": voters.contains(id),
                    "matched": matched,
                    "lag": matched.map(|x| last.saturating_sub(x)),
                })
            })
            .collect();
        serde_json::json!({
            "cluster_id": self.me.cluster_id,
            "node_id": self.me.node_id,
            "state": state,
            "term": m.current_term,
            "leader": leader,
            "committed": m.local_committed.map_or(0, |l| l.index),
            "applied": m.last_applied.map_or(0, |l| l.index),
            "revision": self.engine.revision(),
            "nodes": nodes,
        })
    }

    /// Whether the node may report ready (`GET /readyz`): it knows a
    /// leader (a leader: a majority acknowledged it within the maximum
    /// election timeout) and has applied nearly all it committed.
    pub fn ready(&self) -> std::result::Result<(), String> {
        self.liveness.ready(&self.metrics(), self.me.node_id)?;
        if !self.caught_up() {
            let how = match self.new_member.load(std::sync::atomic::Ordering::Acquire) {
                true => "joined",
                false => "restarted",
            };
            return Err(format!(
                "{how}: not yet caught up with the cluster's commit index"
            ));
        }
        Ok(())
    }

    /// Whether the node has a leader it hears from (see `liveness.rs`).
    pub fn has_leader(&self) -> bool {
        self.liveness
            .has_leader(&self.metrics(), self.me.node_id)
            .is_ok()
    }

    /// The maximum election timeout.
    pub fn election_max(&self) -> Duration {
        self.liveness.election_max()
    }
}

/// How a forwarded request failed at the leader.
#[derive(Debug, Serialize, Deserialize)]
enum WireFailure {
    /// Refused before it was proposed (that node does not lead).
    NotProposed,
    /// Proposed, fate unknown.
    Unknown(String),
    Conflict(String),
    Invalid(String),
    NodeNotFound(NodeId),
    /// Refused by the leader, nothing proposed, for the reason it gives
    /// (a membership change that needs a voter that does not answer, say):
    /// the follower passes it on rather than say no leader is reachable.
    Unavailable {
        message: String,
        overloaded: bool,
    },
}

impl WireFailure {
    fn of(e: Error) -> WireFailure {
        match e {
            Error::Conflict(m) => WireFailure::Conflict(m),
            Error::Invalid { message, .. } => WireFailure::Invalid(message),
            Error::NodeNotFound { id } => WireFailure::NodeNotFound(id),
            Error::Unavailable {
                message,
                overloaded,
            } => WireFailure::Unavailable {
                message,
                overloaded,
            },
            other => WireFailure::Unknown(other.to_string()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Forwarded<T> {
    Ok(T),
    Err(WireFailure),
}

impl<T> Forwarded<T> {
    fn into_result(self) -> Result<T> {
        match self {
            Forwarded::Ok(t) => Ok(t),
            Forwarded::Err(WireFailure::NotProposed) => Err(no_leader()),
            Forwarded::Err(WireFailure::Unknown(m)) => Err(unknown(m)),
            Forwarded::Err(WireFailure::Conflict(m)) => Err(Error::Conflict(m)),
            Forwarded::Err(WireFailure::Invalid(m)) => Err(Error::invalid(m)),
            Forwarded::Err(WireFailure::NodeNotFound(id)) => Err(Error::NodeNotFound { id }),
            Forwarded::Err(WireFailure::Unavailable {
                message,
                overloaded,
            }) => Err(Error::Unavailable {
                message,
                overloaded,
            }),
        }
    }
}

/// A proposal's outcome, as the leader answers a forwarded write.
fn forwarded(proposed: Proposed) -> Forwarded<Reply> {
    match proposed {
        Ok(reply) => Forwarded::Ok(reply),
        Err(NotCommitted::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
            Forwarded::Err(WireFailure::NotProposed)
        }
        Err(e) => Forwarded::Err(WireFailure::Unknown(e.to_string())),
    }
}

/// A forwarding round's failure, for each of its writes.
fn copy_failure(e: &Error) -> Result<Reply> {
    Err(match e {
        Error::Unavailable { .. } => no_leader(),
        Error::OutcomeUnknown { message } => Error::OutcomeUnknown {
            message: message.clone(),
        },
        other => unknown(other),
    })
}

/// The membership of a new cluster: this node alone.
pub fn first_members(id: NodeId, member: Member) -> BTreeMap<NodeId, Member> {
    BTreeMap::from([(id, member)])
}
