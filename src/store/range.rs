//! Streaming ranges over one snapshot, in constant memory.
//!
//! A query is reduced to one half-open interval `[lower, upper)` of byte
//! strings: `start`/`end` intersected with the keys that have `prefix`. redb
//! iterates it forwards or backwards; each item is handed to a visitor and
//! nothing is collected.

use std::ops::Bound;

use super::Snapshot;
use super::record::{self, KV, Record};
use crate::error::Result;
use crate::types::RangeQuery;

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
