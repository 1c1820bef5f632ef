//! Membership changes of a running cluster: joins (a new node asks any
//! member; the leader checks it, adds it as a learner, waits until it has
//! caught up and makes it a voter) and the admin commands of `kvr cluster`
//! (remove, promote, demote, transfer leadership).

use super::*;

/// How often a node that hears no leader asks its peers whether it was
/// removed (see [`Node::watch_for_removal`]).
const REMOVAL_CHECK: Duration = Duration::from_secs(1);
/// How long `kvr cluster promote` waits for the learner to catch up
/// before it refuses (see [`Node::check_caught_up`]).
const PROMOTE_WAIT: Duration = Duration::from_millis(500);
/// How often the leader asks a joining node that is catching up whether
/// it is still there (see [`Node::wait_joiner_caught_up`]), and how long
/// each answer may take.
const JOINER_PROBE_EVERY: Duration = Duration::from_secs(2);
const JOINER_PROBE_WAIT: Duration = Duration::from_secs(3);
/// Unanswered probes in a row after which the leader stops waiting for a
/// joining node: at least 15 s of silence.
const JOINER_SILENT_PROBES: u32 = 3;

/// A membership change proposed but not committed within the bound every
/// write has (`Liveness::bound`): `outcome_unknown`, as for a write, rather
/// than no answer. A leader that has not yet noticed a voter stop can
/// propose a change that no majority will commit; such a remove waited
/// 100 s unanswered (found by an audit). It stays in the log, and commits
/// once a majority answers again.
fn change_unknown(what: &str, why: crate::cluster::liveness::Unanswered) -> Error {
    Error::OutcomeUnknown {
        message: format!(
            "{what}: the outcome of the membership change is unknown: {why}; kvr \
             cluster status shows whether it was applied"
        ),
    }
}

impl Node {
    /// A join (see [`JoinRequest`]), here if this node leads, else at the leader.
    pub async fn join(&self, req: JoinRequest) -> Result<JoinAnswer> {
        if self.raft.is_leader() {
            return self.join_as_leader(req).await;
        }
        match self.leader() {
            Some((id, node)) if id != self.me.node_id => {
                self.forward(id, &node, "join", &req, FORWARD_TIMEOUT).await
            }
            _ => Err(no_leader()),
        }
    }

    pub(super) async fn join_as_leader(&self, req: JoinRequest) -> Result<JoinAnswer> {
        // All-TLS or all-plain: a member's URL says which it is.
        let (tls, joiner_tls) = (
            crate::cluster::start::is_https(&self.member.url),
            crate::cluster::start::is_https(&req.url),
        );
        if tls != joiner_tls {
            return Err(Error::invalid(format!(
                "this cluster is all-{} and the joining node ({}) {}: a cluster is all-TLS or \
                 all-plain",
                if tls { "TLS" } else { "plain" },
                req.url,
                if joiner_tls {
                    "speaks TLS; start it without --tls-cert and --tls-key"
                } else {
                    "does not speak TLS; start it with --tls-cert and --tls-key"
                }
            )));
        }
        // One membership change at a time: this join waits for one under
        // way (a joining node's request waits for its answer anyway).
        let _serialized = self.membership_changes.lock().await;
        let m = self.metrics();
        let membership = m.membership_config.membership().clone();
        for (id, member) in membership.nodes() {
            if Some(*id) == req.node_id {
                continue;
            }
            let same_url = crate::cluster::start::same_url(&member.url, &req.url);
            if same_url || member.raft == req.raft {
                return Err(Error::Conflict(format!(
                    "{} is the address of node {id} of this cluster: remove node {id} first \
                     (kvr cluster remove {id})",
                    if same_url { &req.url } else { &req.raft }
                )));
            }
        }
        let node_id = match req.node_id {
            None => match self.propose(Command::NewNodeId).await? {
                Reply::NodeId(id) => id,
                other => return Err(Error::Storage(format!("unexpected reply {other:?}"))),
            },
            Some(id) if self.was_removed(id).await => {
                return Err(Error::Conflict(format!(
                    "node {id} was removed from cluster {}: a removed node does not come back \
                     (node ids are never reused); start it on a new, empty file with --join",
                    self.me.cluster_id
                )));
            }
            Some(id) => {
                let member = Member {
                    url: req.url.clone(),
                    raft: req.raft.clone(),
                };
                let is_voter = membership.voter_ids().any(|v| v == id);
                if !is_voter {
                    self.verify_joiner(id, &req.raft).await?;
                    self.liveness
                        // Not blocking: openraft would wait for the catch-up
                        // with no bound; ours ends when the joiner goes silent.
                        .bound(self.raft.add_learner(id, member, false))
                        .await
                        .map_err(|why| change_unknown(&format!("adding node {id}"), why))?
                        .map_err(|e| unknown(format!("adding the learner failed: {e}")))?;
                    self.wait_joiner_caught_up(id, &req.raft).await?;
                    if !req.learner {
                        self.liveness
                            .bound(self.raft.change_membership(
                                ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                                false,
                            ))
                            .await
                            .map_err(|why| change_unknown(&format!("promoting node {id}"), why))?
                            .map_err(|e| unknown(format!("promoting node {id} failed: {e}")))?;
                    }
                }
                id
            }
        };
        Ok(JoinAnswer {
            cluster_id: self.me.cluster_id.clone(),
            node_id,
        })
    }

    /// Before node `id` becomes a member, a connection to its raft
    /// listener. A node this one cannot reach there is not added (503
    /// `unavailable`, which its join retries): it was added as a learner
    /// that never caught up, "stopped answering" though it never had, and
    /// stayed one until removed by hand (an `--advertise-raft` no member
    /// can reach). A certificate this node does not trust refuses the join.
    /// Other failures are left to Raft's retries.
    async fn verify_joiner(&self, id: NodeId, raft: &str) -> Result<()> {
        let Err((sent, e)) = self.hello(id, raft, FORWARD_TIMEOUT).await else {
            return Ok(());
        };
        if self.me.tls.is_some()
            && let Some(refused) = crate::tls::joiner_failure(&format!("raft {raft}"), &e)
        {
            return Err(Error::invalid(format!(
                "node {id} cannot be added: {refused}"
            )));
        }
        if !sent || e.kind() == std::io::ErrorKind::TimedOut {
            return Err(Error::Unavailable {
                message: format!(
                    "node {id} is not added: this cluster's leader cannot reach its raft \
                     address {raft} ({e}); give it an --advertise-raft address the members \
                     can reach"
                ),
                overloaded: false,
            });
        }
        Ok(())
    }

    /// A `hello` to node `id`'s raft listener at `raft`, on a connection
    /// of its own: whether the node is there, and whether this node can
    /// reach it (TLS included).
    async fn hello(
        &self,
        id: NodeId,
        raft: &str,
        wait: Duration,
    ) -> std::result::Result<Bytes, (bool, std::io::Error)> {
        let dest = network::Dest {
            addr: raft,
            me: &self.me,
            target: id,
        };
        network::call(&mut None, dest, "hello", full(Vec::new()), None, wait).await
    }

    /// A membership or leadership change, here if this node leads, else
    /// at the leader.
    pub async fn admin(&self, op: Admin) -> Result<()> {
        if self.raft.is_leader() {
            return self.admin_as_leader(op).await;
        }
        match self.leader() {
            Some((id, node)) if id != self.me.node_id => {
                self.forward(id, &node, "admin", &op, FORWARD_TIMEOUT).await
            }
            _ => Err(no_leader()),
        }
    }

    pub(super) async fn admin_as_leader(&self, op: Admin) -> Result<()> {
        // After any membership change under way (see `join_as_leader`).
        let _serialized = self.membership_changes.lock().await;
        let membership = self.metrics().membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let id = match op {
            Admin::Promote(id) | Admin::Remove(id) | Admin::TransferLeader(id) => id,
        };
        let Some(member) = membership.get_node(&id).cloned() else {
            return Err(Error::NodeNotFound { id });
        };
        let failed = |what: &str, e: &dyn std::fmt::Display| unknown(format!("{what}: {e}"));
        let change_failed =
            |what: &str, e: &RaftError<TypeConfig, ClientWriteError<TypeConfig>>| {
                // Another change not yet committed (no majority to commit it):
                // this one was not proposed, so it may simply be retried.
                if let RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    openraft::error::ChangeMembershipError::InProgress(_),
                )) = e
                {
                    return Error::Unavailable {
                        message: format!(
                            "{what}: another membership change is still being committed (it needs \
                         a majority of voters); nothing was changed: retry"
                        ),
                        overloaded: false,
                    };
                }
                unknown(format!("{what}: {e}"))
            };
        match op {
            Admin::Promote(_) if voters.contains(&id) => Ok(()),
            Admin::Promote(_) => {
                self.check_voters_answer(&voters)?;
                self.check_caught_up(
                    id,
                    "it was not promoted, since a voter that lags holds up the cluster's writes",
                )
                .await?;
                self.liveness
                    .bound(
                        self.raft.change_membership(
                            ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                            false,
                        ),
                    )
                    .await
                    .map_err(|why| change_unknown(&format!("promoting node {id}"), why))?
                    .map(|_| ())
                    .map_err(|e| change_failed("promoting failed", &e))
            }
            Admin::Remove(_) => {
                if voters.len() == 1 && voters.contains(&id) {
                    return Err(Error::invalid(format!(
                        "node {id} is the last voter: a cluster cannot remove its last voter"
                    )));
                }
                self.check_voters_answer(&voters)?;
                if voters.contains(&id) {
                    self.check_quorum_without(id, &voters)?;
                }
                let change = if voters.contains(&id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                self.liveness
                    .bound(self.raft.change_membership(change, false))
                    .await
                    .map_err(|why| change_unknown(&format!("removing node {id}"), why))?
                    .map_err(|e| change_failed("removing failed", &e))?;
                // Tell it (best effort): it stops serving and exits.
                if id == self.me.node_id {
                    self.mark_removed();
                } else {
                    let mut conn = None;
                    let _ = network::call(
                        &mut conn,
                        network::Dest {
                            addr: &member.raft,
                            me: &self.me,
                            target: id,
                        },
                        "removed",
                        full(Bytes::new()),
                        None,
                        Duration::from_secs(2),
                    )
                    .await;
                }
                Ok(())
            }
            Admin::TransferLeader(_) if !voters.contains(&id) => Err(Error::invalid(format!(
                "node {id} is a learner: only a voter can lead (kvr cluster promote {id} first)"
            ))),
            Admin::TransferLeader(_) if id == self.me.node_id => Ok(()),
            Admin::TransferLeader(_) => {
                // A stopped or lagging target would only cost an election
                // (this leader steps down for it) and a 10 s wait.
                if !self.answers_leader(&self.metrics(), id) {
                    return Err(Error::Unavailable {
                        message: format!(
                            "node {id} does not answer the leader (is it running and \
                             reachable?): leadership was not moved"
                        ),
                        overloaded: false,
                    });
                }
                self.check_caught_up(id, "leadership was not moved to it")
                    .await?;
                self.raft
                    .trigger()
                    .transfer_leader(id)
                    .await
                    .map_err(|e| failed("transferring leadership failed", &e))?;
                self.raft
                    .wait(Some(FORWARD_TIMEOUT))
                    .current_leader(id, "leadership transfer")
                    .await
                    .map(|_| ())
                    .map_err(|_| {
                        unknown(format!(
                            "node {id} did not take over within {} s; leadership may have \
                             moved elsewhere (kvr cluster status names the leader)",
                            FORWARD_TIMEOUT.as_secs()
                        ))
                    })
            }
        }
    }

    /// Before voter `id` is removed: the voters left must include a
    /// majority that answer this leader (it heard from them within the
    /// minimum election timeout), else the change could not commit and the
    /// cluster would take no writes until one came back (tried: removing a
    /// running voter of three while another was stopped stopped all
    /// writes). etcd's `--strict-reconfig-check` refuses the same.
    fn check_quorum_without(&self, id: NodeId, voters: &BTreeSet<NodeId>) -> Result<()> {
        let left: Vec<NodeId> = voters.iter().copied().filter(|v| *v != id).collect();
        let Some((answering, silent)) = self.silent_majority(&left) else {
            return Ok(());
        };
        let majority = left.len() / 2 + 1;
        Err(Error::Unavailable {
            message: format!(
                "removing node {id} would leave {} voters of which {answering} answer the \
                 leader (node {} not), short of a majority ({majority}): the cluster would take \
                 no writes until one came back; nothing was changed: bring node {} back (or \
                 remove it) first",
                left.len(),
                silent.join(", "),
                silent.join(", ")
            ),
            overloaded: false,
        })
    }

    /// Before any membership change: a majority of the voters now must
    /// answer this leader, else the change cannot commit (it needs them
    /// as much as a write does) and would only wait out its bound, its
    /// fate unknown, and take effect whenever they came back.
    fn check_voters_answer(&self, voters: &BTreeSet<NodeId>) -> Result<()> {
        let all: Vec<NodeId> = voters.iter().copied().collect();
        let Some((answering, silent)) = self.silent_majority(&all) else {
            return Ok(());
        };
        Err(Error::Unavailable {
            message: format!(
                "only {answering} of the {} voters answer the leader (node {} not), short of a \
                 majority: a membership change could not commit; nothing was changed: bring \
                 node {} back first",
                all.len(),
                silent.join(", "),
                silent.join(", ")
            ),
            overloaded: false,
        })
    }

    /// `None` when a majority of `voters` answer this leader; else how
    /// many do, and the ids of those that do not.
    fn silent_majority(&self, voters: &[NodeId]) -> Option<(usize, Vec<String>)> {
        let m = self.metrics();
        let (answering, silent): (Vec<NodeId>, Vec<NodeId>) =
            voters.iter().partition(|v| self.answers_leader(&m, **v));
        (answering.len() < voters.len() / 2 + 1).then(|| {
            (
                answering.len(),
                silent.iter().map(|v| v.to_string()).collect(),
            )
        })
    }

    /// On the leader: whether node `v` is this node or acknowledged it
    /// within the minimum election timeout. A follower that answers
    /// acknowledges every heartbeat (100 ms by default); half a second
    /// without one is a stopped or cut-off node.
    pub(super) fn answers_leader(&self, m: &openraft::RaftMetrics<TypeConfig>, v: NodeId) -> bool {
        let fresh = Duration::from_millis(self.raft.config().election_timeout_min);
        v == self.me.node_id || self.silent_for(m, v).is_some_and(|d| d < fresh)
    }

    /// On the leader: how long since node `v` last acknowledged it; `None`
    /// if it never has (in this term).
    pub(super) fn silent_for(
        &self,
        m: &openraft::RaftMetrics<TypeConfig>,
        v: NodeId,
    ) -> Option<Duration> {
        use openraft::Instant as _;
        m.heartbeat
            .as_ref()
            .and_then(|h| h.get(&v).copied().flatten())
            .map(|at| at.elapsed())
    }

    /// This node was removed from its cluster: remember it in the file,
    /// answer `removed` from now on, and exit 3 shortly.
    pub fn mark_removed(&self) {
        if self.removed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let _ = self
            .engine
            .store()
            .set_cluster_value(crate::store::cluster::REMOVED, b"1");
        crate::server::log::event(format_args!(
            "kvr serve: node {} was removed from cluster {}; exiting",
            self.me.node_id, self.me.cluster_id
        ));
        let removed = self.check_member().err().unwrap_or_else(|| {
            Error::Removed(format!(
                "node {} was removed from cluster {}; {}",
                self.me.node_id,
                self.me.cluster_id,
                crate::cluster::COME_BACK
            ))
        });
        let db = self.engine.store().path().to_path_buf();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            crate::cluster::exit_on(&removed, &db)
        });
    }

    /// Whether a committed membership change took node `id` out of the
    /// cluster, as far as this node has applied.
    pub async fn was_removed(&self, id: NodeId) -> bool {
        self.raft
            .with_state_machine(move |sm: &mut StateMachine| {
                Box::pin(std::future::ready(sm.was_removed(id)))
            })
            .await
            .unwrap_or(false)
    }

    /// A node removed while it was down or cut off gets neither the entry
    /// that removes it nor the leader's word (see `admin_as_leader`): it
    /// would wait for a leader for ever. So while this node hears no
    /// leader, it asks each peer it knows whether a committed change
    /// removed it; one that has applied such a change says so (ids are
    /// never reused: that is final), and this node stops as a removed
    /// node does (SPEC: exits 3).
    pub async fn watch_for_removal(self: Arc<Self>) {
        let mut tick = tokio::time::interval(REMOVAL_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.check_member().is_err() {
                return;
            }
            if self.liveness.leader_silent().is_none() {
                continue;
            }
            let peers: Vec<(NodeId, String)> = self
                .metrics()
                .membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.me.node_id)
                .map(|(id, m)| (*id, m.raft.clone()))
                .collect();
            for (id, raft) in peers {
                if self.peer_says_removed(id, &raft).await {
                    self.mark_removed();
                    return;
                }
            }
        }
    }

    /// A member's word that it removed this node (`/raft/removed`),
    /// checked with that member at the address this node knows it by: a
    /// sender that is no member, or a member that applied no such change,
    /// changes nothing. (A removed node that misses this learns it from
    /// [`Node::watch_for_removal`] once no leader talks to it.)
    pub async fn confirm_removal(self: Arc<Self>, from: NodeId) {
        let raft = self
            .metrics()
            .membership_config
            .membership()
            .nodes()
            .find(|(id, _)| **id == from)
            .map(|(_, m)| m.raft.clone());
        match raft {
            Some(raft) if self.peer_says_removed(from, &raft).await => self.mark_removed(),
            _ => crate::server::log::event(format_args!(
                "kvr serve: a message from node {from} said this node was removed, but no \
                 member {from} confirms it (asked at its address): ignored"
            )),
        }
    }

    /// Whether member `id`, reached at `raft`, says a committed change
    /// removed this node.
    async fn peer_says_removed(&self, id: NodeId, raft: &str) -> bool {
        let dest = network::Dest {
            addr: raft,
            me: &self.me,
            target: id,
        };
        let answer = network::call(
            &mut None,
            dest,
            "was-i-removed",
            full(Bytes::new()),
            None,
            REMOVAL_CHECK,
        )
        .await;
        answer
            .ok()
            .and_then(|bytes| network::decode_answer::<bool>(&bytes).ok())
            == Some(true)
    }

    /// `Err(removed)` once this node is no longer a member.
    pub fn check_member(&self) -> Result<()> {
        if self.removed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Removed(format!(
                "node {} was removed from cluster {}; {}",
                self.me.node_id,
                self.me.cluster_id,
                crate::cluster::COME_BACK
            )));
        }
        Ok(())
    }

    /// Waits until node `id` has every entry this leader had when asked
    /// (openraft counts a learner within `replication_lag_threshold`
    /// entries as caught up, which a node still installing a snapshot of
    /// a big database can be).
    /// [`Node::wait_caught_up`] for a node that is joining, for as long as
    /// it answers. One that dies on the way (killed, its machine gone)
    /// would hold this join, and every membership change queued behind it,
    /// until the joiner's own bound on its request (2 minutes): a promote
    /// or a remove of another node waited out its `--timeout`. It stays a
    /// learner: started again, its join carries on; `kvr cluster remove`
    /// takes it out.
    async fn wait_joiner_caught_up(&self, id: NodeId, raft: &str) -> Result<()> {
        let caught_up = self.wait_caught_up(id);
        tokio::pin!(caught_up);
        let mut probes = tokio::time::interval(JOINER_PROBE_EVERY);
        probes.tick().await; // the first tick is at once
        let mut silent = 0;
        loop {
            tokio::select! {
                done = &mut caught_up => return done,
                _ = probes.tick() => {}
            }
            let probe = self.hello(id, raft, JOINER_PROBE_WAIT);
            // Raced with the catch-up, which may end while a probe waits.
            let answered = tokio::select! {
                done = &mut caught_up => return done,
                answered = probe => answered.is_ok(),
            };
            silent = if answered { 0 } else { silent + 1 };
            if silent >= JOINER_SILENT_PROBES {
                return Err(Error::Unavailable {
                    message: format!(
                        "node {id} stopped answering while it caught up with the cluster: it \
                         stays a learner, which its next start carries on from (or remove it: \
                         kvr cluster remove {id})"
                    ),
                    overloaded: false,
                });
            }
        }
    }

    async fn wait_caught_up(&self, id: NodeId) -> Result<()> {
        let target = self.metrics().last_log_index.unwrap_or(0);
        self.wait_matched(id, target, &std::sync::atomic::AtomicU64::new(0))
            .await
    }

    /// Before node `id` is promoted (or made leader): it must have every
    /// entry this leader had when asked, within [`PROMOTE_WAIT`], else
    /// `Unavailable` saying `not_done`. A voter that lags (or is down)
    /// would be needed for every commit of the change and, in a cluster of
    /// one or two voters, for every write after it: promoting a stopped
    /// learner of a one-voter cluster stopped all writes. etcd refuses the
    /// same ("can only promote a learner member which is in sync with
    /// leader").
    async fn check_caught_up(&self, id: NodeId, not_done: &str) -> Result<()> {
        let target = self.metrics().last_log_index.unwrap_or(0);
        let matched = std::sync::atomic::AtomicU64::new(0);
        match tokio::time::timeout(PROMOTE_WAIT, self.wait_matched(id, target, &matched)).await {
            Ok(r) => r,
            Err(_) if matched.load(std::sync::atomic::Ordering::Relaxed) >= target => {
                // It has every entry but does not answer: a learner stopped
                // on an idle cluster. Promoted, it was a voter that never
                // votes; of a one-voter cluster, it stopped every write
                // (found by an audit).
                let silent = self
                    .silent_for(&self.metrics(), id)
                    .map_or("never".to_string(), |d| {
                        format!("{:.1} s ago", d.as_secs_f64())
                    });
                Err(Error::Unavailable {
                    message: format!(
                        "node {id} does not answer the leader (it last did {silent}; is it \
                         running and reachable?): {not_done}; retry once it answers (kvr \
                         cluster status shows it)"
                    ),
                    overloaded: false,
                })
            }
            Err(_) => Err(Error::Unavailable {
                message: format!(
                    "node {id} is not caught up with the leader (it has entries up to {} of \
                     {target}; is it running and reachable?): {not_done}; retry once it has \
                     caught up (kvr cluster status shows its lag)",
                    matched.load(std::sync::atomic::Ordering::Relaxed)
                ),
                overloaded: false,
            }),
        }
    }

    /// Waits until node `id` has the entries up to `target`, noting in
    /// `matched` how far it is.
    async fn wait_matched(
        &self,
        id: NodeId,
        target: u64,
        matched_now: &std::sync::atomic::AtomicU64,
    ) -> Result<()> {
        use openraft::type_config::async_runtime::watch::WatchReceiver;
        let mut m = self.raft.metrics();
        loop {
            let matched = {
                let now = m.borrow_watched();
                if now.current_leader != Some(self.me.node_id) {
                    return Err(no_leader());
                }
                now.replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map_or(0, |l| l.index)
            };
            matched_now.store(matched, std::sync::atomic::Ordering::Relaxed);
            if matched >= target && self.answers_leader(&m.borrow_watched(), id) {
                return Ok(());
            }
            if m.changed().await.is_err() {
                return Err(no_leader());
            }
        }
    }
}
