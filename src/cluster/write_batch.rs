//! Writes proposed in rounds: the leader's concurrent writes go into the
//! Raft log together, as one entry, the way the standalone writer groups
//! them under one `fdatasync`.
//!
//! Each entry costs the leader the same whatever it carries: a proposal
//! through openraft's core, an append, its place in every follower's
//! `AppendEntries`, its apply and its answer. One entry per request made
//! that per-entry cost the cluster's bound under load. A write starts a
//! round at once when fewer than [`ROUNDS_IN_FLIGHT`] rounds are being
//! committed (alone, so a lone write waits for nothing); otherwise it
//! waits for the next round, which takes every write waiting when it
//! starts. Each write keeps its own revision, conditions and outcome:
//! apply runs them in order as if they had come in one after another.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::errors::{ClientWriteError, RaftError};
use tokio::sync::oneshot;

use super::node::Raft;
use super::types::{Command, Reply, TypeConfig, WriteCommand};

/// Rounds being committed at once. Two keep the log busy (one is appended
/// and replicated while the other's answers come back) and let writes
/// gather into the next round under load.
pub const ROUNDS_IN_FLIGHT: usize = 2;
/// The most writes, and about the most bytes of keys and values, one
/// entry carries (a bigger write goes alone).
const MAX_WRITES: usize = 1024;
const MAX_BYTES: usize = 4 << 20;

/// What proposing a write answered: what applying it decided, or why it
/// was not (or may not have been) committed, as openraft said it.
pub type Proposed = std::result::Result<Reply, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>;

type Waiting = (Arc<WriteCommand>, oneshot::Sender<Proposed>);

/// The writes waiting for the next round, and the rounds in flight.
#[derive(Default)]
pub struct WriteRounds {
    state: Mutex<State>,
    /// Entries proposed for writes, and the writes they carried (for
    /// `/metrics`: their ratio is the writes per entry).
    entries: AtomicU64,
    writes: AtomicU64,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    waiting: Vec<Waiting>,
}

impl WriteRounds {
    /// Proposes `cmd` in a round of this node's Raft and waits for its
    /// outcome.
    pub async fn propose(self: &Arc<Self>, raft: &Raft, cmd: Arc<WriteCommand>) -> Proposed {
        let (tx, rx) = oneshot::channel();
        let round = {
            let mut s = self.lock();
            s.waiting.push((cmd, tx));
            if s.in_flight < ROUNDS_IN_FLIGHT {
                s.in_flight += 1;
                Some(take_round(&mut s.waiting))
            } else {
                None
            }
        };
        if let Some(round) = round {
            // Its own task: a client that goes away must not stop the
            // round the other writes wait for.
            let rounds = self.clone();
            let raft = raft.clone();
            tokio::spawn(async move { rounds.run(raft, round).await });
        }
        match rx.await {
            Ok(outcome) => outcome,
            // The round's task ended without an answer (the runtime is
            // shutting down): the write's fate is unknown.
            Err(_) => Err(RaftError::Fatal(openraft::errors::Fatal::Stopped)),
        }
    }

    /// Commits `round`, then the rounds that gathered meanwhile, until no
    /// write waits.
    async fn run(&self, raft: Raft, mut round: Vec<Waiting>) {
        loop {
            self.entries.fetch_add(1, Ordering::Relaxed);
            self.writes.fetch_add(round.len() as u64, Ordering::Relaxed);
            propose_round(&raft, round).await;
            let mut s = self.lock();
            if s.waiting.is_empty() {
                s.in_flight -= 1;
                return;
            }
            round = take_round(&mut s.waiting);
        }
    }

    /// The `/metrics` families of the rounds.
    pub fn metrics(&self) -> String {
        format!(
            "# HELP kvr_raft_write_entries_total Raft entries proposed here for writes (each \
             carries every write waiting when it was proposed).\n\
             # TYPE kvr_raft_write_entries_total counter\n\
             kvr_raft_write_entries_total {}\n\
             # HELP kvr_raft_writes_proposed_total Write requests proposed here through Raft.\n\
             # TYPE kvr_raft_writes_proposed_total counter\n\
             kvr_raft_writes_proposed_total {}\n",
            self.entries.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed)
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The oldest waiting writes, up to the limits of one entry (at least one).
fn take_round(waiting: &mut Vec<Waiting>) -> Vec<Waiting> {
    let mut bytes = 0;
    let mut n = 0;
    for (cmd, _) in waiting.iter() {
        bytes += cmd.approx_bytes();
        if n > 0 && (n == MAX_WRITES || bytes > MAX_BYTES) {
            break;
        }
        n += 1;
    }
    let rest = waiting.split_off(n);
    std::mem::replace(waiting, rest)
}

/// Proposes one round as one entry and hands each write its outcome.
async fn propose_round(raft: &Raft, mut round: Vec<Waiting>) {
    if round.len() == 1 {
        if let Some((cmd, tx)) = round.pop() {
            let _ = tx.send(raft.client_write(Command::Write(cmd)).await.map(|r| r.data));
        }
        return;
    }
    let (cmds, txs): (Vec<_>, Vec<_>) = round.into_iter().unzip();
    match raft.client_write(Command::Batch(Arc::new(cmds))).await {
        Ok(resp) => match resp.data {
            Reply::Batch(replies) if replies.len() == txs.len() => {
                for (reply, tx) in replies.into_iter().zip(txs) {
                    let _ = tx.send(Ok(reply));
                }
            }
            // Never: apply answers a batch with one reply per write.
            other => {
                for tx in txs {
                    let _ = tx.send(Ok(other.clone()));
                }
            }
        },
        Err(e) => {
            for tx in txs {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(value_len: usize) -> Waiting {
        let cmd = WriteCommand {
            ops: vec![super::super::types::WireOp {
                key: b"k".to_vec(),
                value: Some(vec![0; value_len]),
                if_revision: None,
                line: None,
                expires_at_ms: None,
                expire: None,
                ttl_secs: None,
            }],
            ..WriteCommand::default()
        };
        (Arc::new(cmd), oneshot::channel().0)
    }

    #[test]
    fn a_round_takes_the_oldest_writes_up_to_its_limits() {
        let mut w: Vec<Waiting> = (0..MAX_WRITES + 5).map(|_| waiting(10)).collect();
        let first = Arc::as_ptr(&w[0].0);
        let round = take_round(&mut w);
        assert_eq!(round.len(), MAX_WRITES);
        assert_eq!(Arc::as_ptr(&round[0].0), first, "oldest first");
        assert_eq!(w.len(), 5);
        assert_eq!(take_round(&mut w).len(), 5);
        assert!(w.is_empty());

        // By size: two writes of 3 MiB do not share an entry, and a write
        // over the limit still goes (alone).
        let mut w = vec![waiting(3 << 20), waiting(3 << 20), waiting(MAX_BYTES * 2)];
        assert_eq!(take_round(&mut w).len(), 1);
        assert_eq!(take_round(&mut w).len(), 1);
        assert_eq!(take_round(&mut w).len(), 1);
        assert!(w.is_empty());
    }
}
