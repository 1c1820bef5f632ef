//! Writes proposed in rounds: the leader's concurrent writes go into the
//! Raft log together, one entry each (SPEC: one request is exactly one
//! Raft entry), the way the standalone writer groups them under one
//! `fdatasync`.
//!
//! A round is one message to openraft's core (`client_write_many`), one
//! append and sync of its entries, and one engine group when they are
//! applied: proposed one by one, each write paid for that alone, and
//! those costs were the cluster's bound under load. A write starts a
//! round at once when fewer than [`ROUNDS_IN_FLIGHT`] rounds are being
//! committed (alone, so a lone write waits for nothing); otherwise it
//! waits for the next round, which takes every write waiting when it
//! starts. Each write keeps its own revision, conditions and outcome:
//! apply runs them in order as if they had come in one after another.
//!
//! A follower forwards its writes to the leader in rounds the same way:
//! one request to the leader's raft listener per round (`write-batch`),
//! proposed there as one round, instead of one round trip per write.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::types::WriteCommand;

/// Rounds being committed at once. Two keep the log busy (one is appended
/// and replicated while the other's answers come back) and let writes
/// gather into the next round under load.
pub const ROUNDS_IN_FLIGHT: usize = 2;
/// The most writes, and about the most bytes of keys and values, one
/// round carries (a bigger write goes alone).
const MAX_WRITES: usize = 1024;
const MAX_BYTES: usize = 4 << 20;

type Waiting<O> = (Arc<WriteCommand>, oneshot::Sender<O>);

/// The writes waiting for the next round, and the rounds in flight; `O`
/// is one write's outcome.
pub struct WriteRounds<O> {
    state: Mutex<State<O>>,
}

struct State<O> {
    in_flight: usize,
    waiting: Vec<Waiting<O>>,
}

impl<O> Default for WriteRounds<O> {
    fn default() -> Self {
        WriteRounds {
            state: Mutex::new(State {
                in_flight: 0,
                waiting: Vec::new(),
            }),
        }
    }
}

impl<O: Send + 'static> WriteRounds<O> {
    /// Sends `cmd` in a round and waits for its outcome. `send` commits
    /// one round and answers each of its writes, in order. `None`: the
    /// round ended without an answer for it (a runtime shutting down, or
    /// fewer answers than writes): its fate is unknown.
    pub async fn propose<F, Fut>(self: &Arc<Self>, cmd: Arc<WriteCommand>, send: F) -> Option<O>
    where
        F: Fn(Vec<Arc<WriteCommand>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send,
    {
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
            tokio::spawn(async move { rounds.run(send, round).await });
        }
        rx.await.ok()
    }

    /// Sends `round`, then the rounds that gathered meanwhile, until no
    /// write waits.
    async fn run<F, Fut>(&self, send: F, mut round: Vec<Waiting<O>>)
    where
        F: Fn(Vec<Arc<WriteCommand>>) -> Fut,
        Fut: Future<Output = Vec<O>>,
    {
        loop {
            let (cmds, txs): (Vec<_>, Vec<_>) = round.into_iter().unzip();
            for (outcome, tx) in send(cmds).await.into_iter().zip(txs) {
                let _ = tx.send(outcome);
            }
            let mut s = self.lock();
            if s.waiting.is_empty() {
                s.in_flight -= 1;
                return;
            }
            round = take_round(&mut s.waiting);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<O>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The oldest waiting writes, up to the limits of one entry (at least one).
fn take_round<O>(waiting: &mut Vec<Waiting<O>>) -> Vec<Waiting<O>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(value_len: usize) -> Waiting<()> {
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
        let mut w: Vec<Waiting<()>> = (0..MAX_WRITES + 5).map(|_| waiting(10)).collect();
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
