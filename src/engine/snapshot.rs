//! A consistent read view: memory tables (newest first) over one redb
//! commit, all at one revision. Ranges merge the sources in key order:
//! the memory tables a page at a time (no lock is held between pages), the
//! file through one cursor that reads each record where it lies, so memory
//! stays constant however long the range.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::{Memtable, Version};
use crate::error::Result;
use crate::store::{Record, TableReader};
use crate::types::{Entry, RangeQuery};

/// Most items read from each source per page.
const PAGE: usize = 256;

/// See the module header.
pub struct Snapshot {
    revision: u64,
    /// Newest first.
    tables: Vec<Arc<Memtable>>,
    base: Arc<TableReader>,
}

impl Snapshot {
    pub(super) fn new(revision: u64, tables: Vec<Arc<Memtable>>, base: Arc<TableReader>) -> Self {
        Snapshot {
            revision,
            tables,
            base,
        }
    }

    /// The revision this snapshot reflects.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A key's value and revision, `None` if absent.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        for table in &self.tables {
            if let Some(v) = table.get(key, self.revision) {
                return Ok(v.value.map(|value| Entry {
                    value: value.to_vec(),
                    revision: v.revision,
                    expires_at_ms: v.expires_at_ms,
                }));
            }
        }
        self.base.get(key)
    }

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
        let mut left = query.limit.unwrap_or(u64::MAX);
        // A short range (a page of 100, a `limit 1` probe) reads only what
        // it asks for; a source whose items were shadowed reads more.
        let first_page = usize::try_from(left).unwrap_or(PAGE).clamp(1, PAGE);
        let mut tables: Vec<Source<'_>> = self
            .tables
            .iter()
            .map(|t| Source::new(t, first_page))
            .collect();
        let upper_bound = upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut base = self
            .base
            .cursor(Bound::Included(&lower), upper_bound, query.reverse)?;
        let scan = Scan {
            lower: &lower,
            upper: upper.as_deref(),
            reverse: query.reverse,
            at: self.revision,
        };
        let first = |a: &[u8], b: &[u8]| if query.reverse { a > b } else { a < b };
        while left > 0 {
            for s in tables.iter_mut() {
                s.fill(&scan);
            }
            // The memory tables' next key: on a tie the newest table wins
            // (the others are skipped below).
            let mut best: Option<usize> = None;
            for (i, s) in tables.iter().enumerate() {
                let Some(head) = s.buf.front() else { continue };
                let cur = best.and_then(|b| tables[b].buf.front());
                if cur.is_none_or(|cur| first(&head.key, &cur.key)) {
                    best = Some(i);
                }
            }
            let table_key = best.and_then(|b| tables[b].buf.front()).map(|h| &h.key[..]);
            let from_file = match (table_key, base.key()) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(t), Some(b)) => first(b, t),
            };
            if from_file {
                // No memory table holds these keys: the records as the
                // file holds them, read in place, up to the memory tables'
                // next key (without choosing among the tables again for
                // each: ~70 instructions of every key of a range).
                loop {
                    let Some((key, rec)) = base.current()? else {
                        return Ok(());
                    };
                    left -= 1;
                    if !visit(key, rec)? {
                        return Ok(());
                    }
                    base.advance()?;
                    let more_from_file = match (table_key, base.key()) {
                        (_, None) => false,
                        (None, Some(_)) => true,
                        (Some(t), Some(b)) => first(b, t),
                    };
                    if left == 0 || !more_from_file {
                        break;
                    }
                }
                continue;
            }
            let Some(item) = best.and_then(|b| tables[b].buf.pop_front()) else {
                break; // every source is at its end
            };
            for s in tables.iter_mut() {
                if s.buf.front().is_some_and(|h| h.key == item.key) {
                    s.buf.pop_front();
                }
            }
            if base.key() == Some(&item.key[..]) {
                base.advance()?;
            }
            let Some(value) = &item.value else {
                continue; // deleted in a memory table
            };
            left -= 1;
            let rec = Record {
                revision: item.revision,
                value,
                expires_at_ms: item.expires_at_ms,
            };
            if !visit(&item.key, rec)? {
                break;
            }
        }
        Ok(())
    }
}

/// The interval and direction of one range.
struct Scan<'a> {
    lower: &'a [u8],
    upper: Option<&'a [u8]>,
    reverse: bool,
    at: u64,
}

struct Item {
    key: Vec<u8>,
    value: Option<Bytes>,
    revision: u64,
    expires_at_ms: Option<u64>,
}

/// A memory table as one source of a merge: a buffer of its next items
/// and where to go on. (The file is read through a
/// [`crate::store::TableCursor`].)
struct Source<'a> {
    table: &'a Memtable,
    buf: VecDeque<Item>,
    /// The last key read from the source; the next page starts after it.
    last: Option<Vec<u8>>,
    /// Items to read at the next fill: the range's limit at first, then
    /// doubling up to [`PAGE`], so that a source whose items are shadowed
    /// by newer tables' deletions does not crawl one item at a time.
    page: usize,
    done: bool,
}

impl<'a> Source<'a> {
    fn new(table: &'a Memtable, page: usize) -> Self {
        Source {
            table,
            buf: VecDeque::new(),
            last: None,
            page,
            done: false,
        }
    }

    /// Reads the next page when the buffer is empty.
    fn fill(&mut self, scan: &Scan<'_>) {
        if !self.buf.is_empty() || self.done {
            return;
        }
        let upper = scan.upper.map_or(Bound::Unbounded, Bound::Excluded);
        let lower = Bound::Included(scan.lower);
        let (lo, hi) = match (&self.last, scan.reverse) {
            (None, _) => (lower, upper),
            (Some(last), false) => (Bound::Excluded(last.as_slice()), upper),
            (Some(last), true) => (lower, Bound::Excluded(last.as_slice())),
        };
        let n = self.page;
        self.page = (n * 2).min(PAGE);
        let mut out: Vec<(Vec<u8>, Version)> = Vec::with_capacity(n);
        self.table.page(lo, hi, scan.reverse, scan.at, n, &mut out);
        self.done = out.len() < n;
        self.buf.extend(out.into_iter().map(|(key, v)| Item {
            key,
            value: v.value,
            revision: v.revision,
            expires_at_ms: v.expires_at_ms,
        }));
        if let Some(item) = self.buf.back() {
            self.last = Some(item.key.clone());
        }
    }
}
