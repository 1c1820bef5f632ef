//! The data every layer speaks: operations, their outcome, entries, range
//! queries and stats. Below the store, the engine, the HTTP client and the
//! TUI alike, so none of them imports another's internals.

use crate::error::{Error, Result};

/// 10000-01-01T00:00:00Z in Unix milliseconds: no `expires_at_ms` is as
/// late (a bad JSON line: `jsonl::check_expiry`), and a TTL's expiry is
/// capped just before it.
pub const YEAR_10000_MS: u64 = 253_402_300_800_000;

/// Bookkeeping bytes counted per operation in memory (two `Vec` headers and slack).
pub const OP_OVERHEAD_BYTES: usize = 64;

/// What an operation does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Put(Vec<u8>),
    Delete,
    /// An expiry delete (SPEC "Expiry (TTL)"): deletes the key only if it
    /// still has this revision and this expiry; otherwise a no-op that
    /// takes no revision, so a late sweep never deletes a newer put.
    Expire {
        revision: u64,
        expires_at_ms: u64,
    },
    /// A delete or expiry delete read back from the write-ahead log, where
    /// only operations that took a revision are kept: it takes one again
    /// on replay whether or not the key is present then (a flush in parts
    /// may already have removed it from the store, `engine/flush.rs`).
    Erase {
        expired: bool,
    },
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub key: Vec<u8>,
    pub action: Action,
    /// Apply the batch only if this key's revision before the batch is this
    /// (0: the key must be absent).
    pub if_revision: Option<u64>,
    /// The input line it came from, for error messages (None for a single command).
    pub line: Option<u64>,
    /// A put's absolute expiry, Unix milliseconds (None: never expires).
    /// Decided when the write is accepted ([`Op::accept`]), so applying the
    /// op is the same on every node and at every replay.
    pub expires_at_ms: Option<u64>,
    /// A put's time to live in seconds as given (`ttl`), until
    /// [`Op::accept`] turns it into [`Op::expires_at_ms`].
    pub ttl_secs: Option<u64>,
}

impl Op {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Op {
        Op {
            key: key.into(),
            action: Action::Put(value.into()),
            if_revision: None,
            line: None,
            expires_at_ms: None,
            ttl_secs: None,
        }
    }

    pub fn delete(key: impl Into<Vec<u8>>) -> Op {
        Op {
            key: key.into(),
            action: Action::Delete,
            if_revision: None,
            line: None,
            expires_at_ms: None,
            ttl_secs: None,
        }
    }

    /// The expiry delete of `key` at `revision` with `expires_at_ms`.
    pub fn expire(key: impl Into<Vec<u8>>, revision: u64, expires_at_ms: u64) -> Op {
        Op {
            action: Action::Expire {
                revision,
                expires_at_ms,
            },
            ..Op::delete(key)
        }
    }

    /// A logged delete that took a revision (see [`Action::Erase`]).
    pub fn erase(key: impl Into<Vec<u8>>, expired: bool) -> Op {
        Op {
            action: Action::Erase { expired },
            ..Op::delete(key)
        }
    }

    /// A put that expires `ttl_secs` after it is accepted.
    pub fn ttl(mut self, ttl_secs: Option<u64>) -> Op {
        self.ttl_secs = ttl_secs;
        self
    }

    /// Accepts the op at `now_ms`: a `ttl` becomes an absolute expiry;
    /// `None` for a put whose expiry has already passed (it is skipped and
    /// takes no revision, SPEC "Expiry (TTL)"). Such a put with an
    /// `if_revision` still makes its batch conditional: it becomes
    /// [`Op::condition_only`].
    pub fn accept(mut self, now_ms: u64) -> Option<Op> {
        if let Some(ttl) = self.ttl_secs.take() {
            // Capped where an `expires_at_ms` may end, so that what `range`
            // prints `batch` takes back, whatever the clock read.
            let at = now_ms.saturating_add(ttl.saturating_mul(1000));
            self.expires_at_ms = Some(at.min(YEAR_10000_MS - 1));
        }
        match self.expires_at_ms {
            Some(at) if at <= now_ms && matches!(self.action, Action::Put(_)) => {
                let expected = self.if_revision?;
                Some(Op {
                    line: self.line,
                    ..Op::condition_only(self.key, expected)
                })
            }
            _ => Some(self),
        }
    }

    /// An op that only checks that `key` is at revision `expected` (0:
    /// absent) and writes nothing: an expiry delete of revision 0, which no
    /// key ever has (revisions start at 1), so it takes no revision and
    /// makes no event, on every path that applies ops.
    pub fn condition_only(key: impl Into<Vec<u8>>, expected: u64) -> Op {
        Op::expire(key, 0, 0).if_revision(Some(expected))
    }

    pub fn if_revision(mut self, revision: Option<u64>) -> Op {
        self.if_revision = revision;
        self
    }

    /// Bytes this operation holds in memory (key, value and bookkeeping),
    /// for bounding runs, groups and tables.
    pub fn mem_bytes(&self) -> usize {
        let value = match &self.action {
            Action::Put(v) => v.len(),
            Action::Delete | Action::Expire { .. } | Action::Erase { .. } => 0,
        };
        self.key.len() + value + OP_OVERHEAD_BYTES
    }
}

/// The outcome of a write (`Store::apply`, the engine's write path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Puts applied (each took a revision).
    pub puts: u64,
    /// Deletes of present keys (each took a revision).
    pub deletes: u64,
    /// The database revision after the batch.
    pub revision: u64,
}

impl Applied {
    /// Operations that took a revision.
    pub fn applied(&self) -> u64 {
        self.puts + self.deletes
    }
}

/// The figures of `kvr stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub keys: u64,
    pub revision: u64,
    pub file_bytes: u64,
}

/// A stored value with the revision of its last put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub revision: u64,
    /// When the key expires, Unix milliseconds.
    pub expires_at_ms: Option<u64>,
}

impl Entry {
    /// Whether the key is expired at `now_ms` (at or after its expiry).
    pub fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|t| t <= now_ms)
    }
}

/// One range item as readers see it: the value, its revision and expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    pub value: &'a [u8],
    pub revision: u64,
    pub expires_at_ms: Option<u64>,
}

/// The current time in Unix milliseconds (0 before 1970, never a panic).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Which keys a range visits, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeQuery {
    /// Inclusive lower bound (None: from the first key).
    pub start: Option<Vec<u8>>,
    /// Exclusive upper bound (None: to the last key).
    pub end: Option<Vec<u8>>,
    /// Only keys that start with these bytes.
    pub prefix: Option<Vec<u8>>,
    /// At most this many items.
    pub limit: Option<u64>,
    /// Descending key order (the same keys).
    pub reverse: bool,
    /// Callers want keys only (the store still reads each record; a remote
    /// source can skip sending values).
    pub keys_only: bool,
}

impl RangeQuery {
    /// Rejects `start > end` (a usage error, not an empty range).
    pub fn validate(&self) -> Result<()> {
        if let (Some(s), Some(e)) = (&self.start, &self.end)
            && s > e
        {
            return Err(Error::invalid(
                "range start is after its end (the range is [START, END))",
            ));
        }
        Ok(())
    }

    /// The interval `[lower, upper)` this query covers; `None` when empty.
    pub fn bounds(&self) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        let mut lower = self.start.clone().unwrap_or_default();
        let mut upper = self.end.clone();
        if let Some(prefix) = &self.prefix {
            lower = lower.max(prefix.clone());
            if let Some(after) = prefix_successor(prefix) {
                upper = Some(match upper {
                    Some(u) => u.min(after),
                    None => after,
                });
            }
        }
        match &upper {
            Some(u) if *u <= lower => None,
            _ => Some((lower, upper)),
        }
    }
}

/// The smallest byte string greater than every string with `prefix`, or
/// `None` when there is none (the prefix is empty or all 0xFF bytes).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xFF {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under a clock in the year 9990, a TTL of ten years gave an expiry
    /// that `batch` refuses as a bad line, so `range | batch` failed (found
    /// by an audit); it is capped where expiries end.
    #[test]
    fn a_ttl_past_the_year_9999_is_capped_where_a_batch_line_takes_it() {
        let late = YEAR_10000_MS - 3_600_000;
        let op = Op::put("k", "v")
            .ttl(Some(315_360_000))
            .accept(late)
            .unwrap();
        assert_eq!(op.expires_at_ms, Some(YEAR_10000_MS - 1));
        let line = format!(
            "{{\"key\":\"k\",\"value\":\"v\",\"expires_at_ms\":{}}}",
            YEAR_10000_MS - 1
        );
        assert!(crate::jsonl::parse_line(line.as_bytes(), 1, 100).is_ok());
        let op = Op::put("k", "v").ttl(Some(60)).accept(1_000).unwrap();
        assert_eq!(op.expires_at_ms, Some(61_000));
    }

    #[test]
    fn successor_of_prefixes() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }

    #[test]
    fn bounds_intersect_prefix() {
        let q = RangeQuery {
            start: Some(b"b".to_vec()),
            end: Some(b"z".to_vec()),
            prefix: Some(b"c".to_vec()),
            ..Default::default()
        };
        assert_eq!(q.bounds(), Some((b"c".to_vec(), Some(b"d".to_vec()))));
        let disjoint = RangeQuery {
            end: Some(b"b".to_vec()),
            prefix: Some(b"c".to_vec()),
            ..Default::default()
        };
        assert_eq!(disjoint.bounds(), None);
    }
}
