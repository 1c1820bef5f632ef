//! Linearizable reads in rounds: every read needs a read index confirmed
//! by a quorum after the read arrived (ReadIndex), but one confirmation
//! serves every read that was waiting when it started. Reads that arrive
//! while a round runs wait for the next one, which starts after them, so
//! each read still reflects every write acknowledged before it arrived;
//! under load a round serves many reads for one quorum round trip.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// The reads waiting for the next round, and whether a round runs.
#[derive(Default)]
pub struct ReadRounds {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: bool,
    waiting: Vec<oneshot::Sender<Result<(), Answer>>>,
}

/// A round's failure, copied to each of its reads.
#[derive(Debug, Clone)]
struct Answer {
    message: String,
    removed: bool,
}

impl ReadRounds {
    /// Waits for a round that starts after this call; `barrier` runs one
    /// round (obtains a read index and waits until it is applied here).
    pub async fn read<F, Fut>(self: &Arc<Self>, barrier: F) -> Result<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.waiting.push(tx);
            !std::mem::replace(&mut s.running, true)
        };
        if start {
            // Its own task: a read whose client goes away must not stop
            // the round the others wait for.
            let rounds = self.clone();
            tokio::spawn(async move { rounds.run(barrier).await });
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(a)) if a.removed => Err(Error::Removed(a.message)),
            Ok(Err(a)) => Err(Error::Unavailable {
                message: a.message,
                overloaded: false,
            }),
            Err(_) => Err(Error::Unavailable {
                message: "the read barrier stopped; retry".into(),
                overloaded: false,
            }),
        }
    }

    async fn run<F, Fut>(&self, barrier: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        loop {
            let round = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.waiting.is_empty() {
                    s.running = false;
                    return;
                }
                std::mem::take(&mut s.waiting)
            };
            let outcome = barrier().await.map_err(|e| Answer {
                removed: matches!(e, Error::Removed(_)),
                message: e.to_string(),
            });
            for read in round {
                let _ = read.send(outcome.clone());
            }
        }
    }
}
