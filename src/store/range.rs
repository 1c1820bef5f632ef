//! Streaming ranges over one snapshot, in constant memory.
//!
//! A query is reduced to one half-open interval `[lower, upper)` of byte
//! strings: `start`/`end` intersected with the keys that have `prefix`. redb
//! iterates it forwards or backwards; each item is handed to a visitor and
//! nothing is collected.

use std::ops::Bound;

use super::Snapshot;
use super::record::{self, KV, Record};
use crate::error::{Error, Result};

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
    fn bounds(&self) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
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

impl Snapshot {
    /// Visits the keys of `query` in order; `visit` returns `false` to stop.
    pub fn range(
        &self,
        query: &RangeQuery,
        mut visit: impl FnMut(&[u8], Record<'_>) -> Result<bool>,
    ) -> Result<()> {
        query.validate()?;
        let Some((lower, upper)) = query.bounds() else {
            return Ok(());
        };
        let kv = self.txn.open_table(KV)?;
        let upper_bound = match &upper {
            Some(u) => Bound::Excluded(u.as_slice()),
            None => Bound::Unbounded,
        };
        let iter = kv.range::<&[u8]>((Bound::Included(lower.as_slice()), upper_bound))?;
        let mut left = query.limit.unwrap_or(u64::MAX);
        type Item<'a> = (
            redb::AccessGuard<'a, &'static [u8]>,
            redb::AccessGuard<'a, &'static [u8]>,
        );
        let mut step = |item: Result<Item<'_>, redb::StorageError>| -> Result<bool> {
            if left == 0 {
                return Ok(false);
            }
            left -= 1;
            let (k, v) = item?;
            visit(k.value(), record::decode(v.value())?)
        };
        if query.reverse {
            for item in iter.rev() {
                if !step(item)? {
                    break;
                }
            }
        } else {
            for item in iter {
                if !step(item)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
