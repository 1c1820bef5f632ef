//! The openraft type configuration of kvr, and the entries it replicates.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::Request;
use crate::engine::history::HistoryBounds;
use crate::error::Error;
use crate::types::{Action, Applied, Op, RangeQuery};

/// Node ids come from a counter in the replicated state (never reused).
pub type NodeId = u64;

/// A member as others reach it: its public URL and its Raft address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub url: String,
    pub raft: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (raft {})", self.url, self.raft)
    }
}

openraft::declare_raft_types!(
    /// kvr's Raft types.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = Member,
);

/// One entry of the Raft log: one client request (never split), or a
/// request for a new node id, or the history bounds; or, in a log written
/// by a build before 2026-12-06, several requests proposed as one entry
/// ([`Command::Batch`], still applied; now each is an entry of its own,
/// proposed in rounds: `write_batch.rs`).
/// A write is shared, not copied, between the log's cache of recent
/// entries, replication to each follower and apply (on the wire and on
/// disk an `Arc` is its contents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Write(Arc<WriteCommand>),
    /// Takes the next node id from the replicated counter.
    NewNodeId,
    // (New variants go last: postcard numbers them in order.)
    /// Client requests applied in this order, each on its own (its own
    /// revision, conditions and outcome), answered by [`Reply::Batch`].
    /// No longer proposed (SPEC: one request is exactly one Raft entry);
    /// kept so that a log that holds such entries is still applied.
    Batch(Arc<Vec<Arc<WriteCommand>>>),
    /// The watch history's bounds for every node from here on in the log:
    /// a leader proposes its own `--history`/`--history-bytes` when they
    /// are not the ones in force, so `oldest_revision` is the same on
    /// every node (SPEC "Watch").
    SetHistory(HistoryBounds),
}

/// A write as the leader proposed it; conditions are checked when it is
/// applied, so every node decides the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCommand {
    /// The leader's clock when it accepted the write (Unix ms).
    pub time_ms: u64,
    pub ops: Vec<WireOp>,
    pub must_exist: bool,
    /// `DELETE /v1/range`: the range and the most keys it may delete.
    pub delete_range: Option<(WireRange, u64)>,
    /// The request's Idempotency-Key and fingerprint; its time is
    /// `time_ms`, so every node judges a repeat's window alike.
    pub idempotency: Option<(String, [u8; 32])>,
}

/// [`Op`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOp {
    pub key: Vec<u8>,
    /// `None`: a delete.
    pub value: Option<Vec<u8>>,
    pub if_revision: Option<u64>,
    pub line: Option<u64>,
    /// A put's absolute expiry (Unix ms), decided when it was accepted.
    pub expires_at_ms: Option<u64>,
    /// An expiry delete: the key's revision and expiry it must still have.
    pub expire: Option<(u64, u64)>,
    /// A put's time to live as the client gave it: turned into
    /// `expires_at_ms` by the leader's `time_ms` when applied.
    pub ttl_secs: Option<u64>,
}

/// The bounds of a [`RangeQuery`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRange {
    pub start: Option<Vec<u8>>,
    pub end: Option<Vec<u8>>,
    pub prefix: Option<Vec<u8>>,
}

impl WriteCommand {
    /// About the bytes it takes (keys and values), to bound a batch.
    pub fn approx_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|o| 16 + o.key.len() + o.value.as_ref().map_or(0, Vec::len))
            .sum::<usize>()
            + 64
    }

    /// The command for an engine request, at the leader's `time_ms`.
    pub fn new(req: &Request, time_ms: u64) -> WriteCommand {
        WriteCommand {
            time_ms,
            ops: req.ops.iter().map(WireOp::from).collect(),
            must_exist: req.must_exist,
            delete_range: req.delete_range.as_ref().map(|(q, max)| {
                (
                    WireRange {
                        start: q.start.clone(),
                        end: q.end.clone(),
                        prefix: q.prefix.clone(),
                    },
                    *max as u64,
                )
            }),
            idempotency: req
                .idempotency
                .as_ref()
                .map(|c| (c.key.clone(), c.fingerprint)),
        }
    }

    /// The engine request it stands for.
    pub fn into_request(self) -> Request {
        Request {
            // Accepted at the leader's time: every node turns a `ttl` into
            // the same expiry and skips the same already expired puts.
            ops: self
                .ops
                .into_iter()
                .filter_map(|w| Op::from(w).accept(self.time_ms))
                .collect(),
            must_exist: self.must_exist,
            delete_range: self.delete_range.map(|(r, max)| {
                (
                    RangeQuery {
                        start: r.start,
                        end: r.end,
                        prefix: r.prefix,
                        ..RangeQuery::default()
                    },
                    usize::try_from(max).unwrap_or(usize::MAX),
                )
            }),
            idempotency: self
                .idempotency
                .map(|(key, fingerprint)| crate::idempotency::Claim {
                    key,
                    fingerprint,
                    time_ms: self.time_ms,
                }),
        }
    }
}

impl From<&Op> for WireOp {
    fn from(op: &Op) -> WireOp {
        WireOp {
            key: op.key.clone(),
            value: match &op.action {
                Action::Put(v) => Some(v.clone()),
                // (An erase comes from the local log only, never to Raft.)
                Action::Delete | Action::Expire { .. } | Action::Erase { .. } => None,
            },
            if_revision: op.if_revision,
            line: op.line,
            expires_at_ms: op.expires_at_ms,
            expire: match op.action {
                Action::Expire {
                    revision,
                    expires_at_ms,
                } => Some((revision, expires_at_ms)),
                _ => None,
            },
            ttl_secs: op.ttl_secs,
        }
    }
}

impl From<WireOp> for Op {
    fn from(w: WireOp) -> Op {
        Op {
            key: w.key,
            action: match (w.value, w.expire) {
                (Some(v), _) => Action::Put(v),
                (None, Some((revision, expires_at_ms))) => Action::Expire {
                    revision,
                    expires_at_ms,
                },
                (None, None) => Action::Delete,
            },
            if_revision: w.if_revision,
            line: w.line,
            expires_at_ms: w.expires_at_ms,
            ttl_secs: w.ttl_secs,
        }
    }
}

/// What applying an entry answered (to the leader's waiting handler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Blank and membership entries.
    None,
    Applied {
        puts: u64,
        deletes: u64,
        revision: u64,
    },
    Failed(WireError),
    NodeId(NodeId),
    // (New variants go last: postcard numbers them in order.)
    /// A [`Command::Batch`]'s replies, in its order.
    Batch(Vec<Reply>),
}

impl Reply {
    /// The outcome of a write, as the engine gave it.
    pub fn of(outcome: &crate::error::Result<Applied>) -> Reply {
        match outcome {
            Ok(a) => Reply::Applied {
                puts: a.puts,
                deletes: a.deletes,
                revision: a.revision,
            },
            Err(e) => Reply::Failed(WireError::from(e)),
        }
    }

    /// Back to the engine's outcome.
    pub fn into_outcome(self) -> crate::error::Result<Applied> {
        match self {
            Reply::Applied {
                puts,
                deletes,
                revision,
            } => Ok(Applied {
                puts,
                deletes,
                revision,
            }),
            Reply::Failed(e) => Err(e.into()),
            Reply::None | Reply::NodeId(_) | Reply::Batch(_) => {
                Err(Error::Storage("unexpected reply to a write".into()))
            }
        }
    }
}

/// The errors applying a write can decide, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    KeyNotFound {
        key: String,
    },
    Invalid {
        line: Option<u64>,
        message: String,
    },
    TooLarge {
        message: String,
    },
    PreconditionFailed {
        line: Option<u64>,
        key: String,
        expected: String,
        current: Option<u64>,
    },
    Other {
        message: String,
    },
    // (New variants go last: postcard numbers them in order.)
    IdempotencyKeyReused {
        key: String,
    },
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> WireError {
        match e {
            Error::KeyNotFound { key } => WireError::KeyNotFound { key: key.clone() },
            Error::Invalid { line, message } => WireError::Invalid {
                line: *line,
                message: message.clone(),
            },
            Error::TooLarge { message } => WireError::TooLarge {
                message: message.clone(),
            },
            Error::PreconditionFailed {
                line,
                key,
                expected,
                current,
            } => WireError::PreconditionFailed {
                line: *line,
                key: key.clone(),
                expected: expected.clone(),
                current: *current,
            },
            Error::IdempotencyKeyReused { key } => {
                WireError::IdempotencyKeyReused { key: key.clone() }
            }
            other => WireError::Other {
                message: other.to_string(),
            },
        }
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Error {
        match w {
            WireError::KeyNotFound { key } => Error::KeyNotFound { key },
            WireError::Invalid { line, message } => Error::Invalid { line, message },
            WireError::TooLarge { message } => Error::TooLarge { message },
            WireError::IdempotencyKeyReused { key } => Error::IdempotencyKeyReused { key },
            WireError::PreconditionFailed {
                line,
                key,
                expected,
                current,
            } => Error::PreconditionFailed {
                line,
                key,
                expected,
                current,
            },
            WireError::Other { message } => Error::Storage(message),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Write(w) => write!(f, "write of {} ops", w.ops.len()),
            Command::NewNodeId => write!(f, "new node id"),
            Command::Batch(b) => write!(f, "batch of {} writes", b.len()),
            Command::SetHistory(h) => {
                write!(f, "history bounds: {} events, {} bytes", h.events, h.bytes)
            }
        }
    }
}
