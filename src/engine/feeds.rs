//! What the expiry sweeper and the watchers read from the engine: the
//! keys due to expire (from the store's expiry index and the memory
//! tables) and the events by revision (from the memory tables and the
//! store's history); and the sizes the writer trims the history by.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Engine, Events, ExpiryCursor, Memtable, history};
use crate::error::Result;

impl Engine {
    /// The expiry deletes a sweeper proposes at `now_ms`: up to `max`
    /// entries due after `after` (expiry, key), in expiry order, from the
    /// store's expiry index and the puts with an expiry still in memory
    /// tables, each conditional on the key's revision and expiry. Only keys
    /// that still have both are returned. With them, where the next round
    /// goes on: `None` once every due entry was looked at. (Entries stay in
    /// the sources until the deletes are flushed, hence the cursor.)
    pub fn expired(
        &self,
        now_ms: u64,
        max: usize,
        after: Option<&(u64, Vec<u8>)>,
    ) -> Result<(Vec<crate::types::Op>, Option<ExpiryCursor>)> {
        use std::ops::Bound;
        let max = max.max(1);
        let mut due: Vec<(u64, Vec<u8>, u64)> = {
            let pending = self.expiring.lock().unwrap_or_else(|e| e.into_inner());
            let from = match after {
                Some((at, key)) => Bound::Excluded((*at, key.clone())),
                None => Bound::Unbounded,
            };
            pending
                .range((from, Bound::Unbounded))
                .take_while(|((at, _), _)| *at <= now_ms)
                .take(max)
                .map(|((at, key), rev)| (*at, key.clone(), *rev))
                .collect()
        };
        let base = self.read_tables().base.clone();
        let flushed = base.expired(now_ms, max, after)?;
        // Each source is read up to `max`: a full one may hold more past
        // its last entry, so this round ends at the smaller such entry.
        let last_of = |v: &[(u64, Vec<u8>, u64)]| {
            (v.len() >= max)
                .then(|| v.last().map(|(at, key, _)| (*at, key.clone())))
                .flatten()
        };
        let next = match (last_of(&due), last_of(&flushed)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        due.extend(flushed);
        due.sort();
        due.dedup();
        if let Some(end) = &next {
            due.retain(|(at, key, _)| (*at, key) <= (end.0, &end.1));
        }
        let mut ops = Vec::new();
        for (at, key, revision) in due {
            let (found, _) = self.get(&key)?;
            if found.is_some_and(|g| g.revision == revision && g.expires_at_ms == Some(at)) {
                ops.push(crate::types::Op::expire(key, revision, at));
            }
        }
        Ok((ops, next))
    }

    /// The oldest revision whose event is kept: a watch from before it is
    /// refused (`compacted`).
    pub fn oldest_revision(&self) -> u64 {
        self.oldest.load(Ordering::Acquire)
    }

    /// A receiver of the published revision: it changes after each group.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Up to `max` events from revision `from` on, from the memory tables
    /// and the store's history; [`Events::Gone`] when `from`'s event is
    /// kept nowhere any more.
    pub fn events(&self, from: u64, max: usize) -> Result<Events> {
        let (base, tables) = {
            let t = self.read_tables();
            let mut tables: Vec<Arc<Memtable>> = t.frozen.clone();
            tables.push(t.live.clone());
            (t.base.clone(), tables)
        };
        let mut out = Vec::new();
        if from <= base.revision() {
            base.history(from, max, |rev, bytes| {
                out.push(history::Event::decode(rev, bytes)?);
                Ok(())
            })?;
        }
        for table in &tables {
            if out.len() >= max {
                break;
            }
            let next = out.last().map_or(from, |e| e.revision + 1);
            table.events_from(next, max - out.len(), &mut out);
        }
        match out.first() {
            Some(e) if e.revision != from => Ok(Events::Gone),
            None if from <= self.revision() => Ok(Events::Gone),
            _ => Ok(Events::Found(out)),
        }
    }

    /// What a watcher that is up to date reads, without I/O and without
    /// copying the events it does not want: from revision `from`, up to
    /// `max` events looked at, the ones whose key `wants` accepts, cut
    /// after the last complete request (a request larger than a page goes
    /// as it comes), with the last revision covered (below `from` when
    /// nothing is applied yet). `None` when `from`'s event is no longer in
    /// a memory table: then [`Engine::events`] reads the store.
    pub fn events_matching(
        &self,
        from: u64,
        max: usize,
        wants: &dyn Fn(&[u8]) -> bool,
    ) -> Option<(Vec<history::Event>, u64)> {
        let t = self.read_tables();
        if from <= t.base.revision() {
            return None;
        }
        let mut out = Vec::new();
        let (mut scanned, mut last, mut cut) = (0, from - 1, from - 1);
        for table in t.frozen.iter().chain(std::iter::once(&t.live)) {
            if scanned >= max {
                break;
            }
            table.with_events(|events| {
                let start = events.partition_point(|e| e.revision <= last);
                for e in events[start..].iter().take(max - scanned) {
                    scanned += 1;
                    last = e.revision;
                    if wants(&e.key) {
                        out.push(e.clone());
                    }
                    if e.batch_end {
                        cut = e.revision;
                    }
                }
            });
        }
        if cut < from {
            cut = last;
        }
        out.retain(|e| e.revision <= cut);
        Some((out, cut))
    }

    /// The sum of the history sizes of the events `from..to` (see
    /// [`history::Event::size`]), found in `new`, the memory tables or the
    /// store; an event kept nowhere counts 0.
    pub(super) fn event_sizes(&self, from: u64, to: u64, new: &[history::Event]) -> Result<u64> {
        Ok(self.event_sizes_each(from, to, new)?.iter().sum())
    }

    /// The history size of each event `from..to`.
    pub(super) fn event_sizes_each(
        &self,
        from: u64,
        to: u64,
        new: &[history::Event],
    ) -> Result<Vec<u64>> {
        let mut sizes = Vec::with_capacity((to - from) as usize);
        let (base, tables) = {
            let t = self.read_tables();
            let mut tables: Vec<Arc<Memtable>> = t.frozen.clone();
            tables.push(t.live.clone());
            (t.base.clone(), tables)
        };
        let mut next = from;
        if next <= base.revision() {
            let max = (to.min(base.revision() + 1) - next) as usize;
            base.history(next, max, |rev, bytes| {
                if rev < to {
                    sizes.push(history::stored_size(bytes));
                    next = rev + 1;
                }
                Ok(())
            })?;
        }
        for table in &tables {
            table.with_events(|events| {
                let start = events.partition_point(|e| e.revision < next);
                for e in events[start..].iter().take_while(|e| e.revision < to) {
                    sizes.push(e.size());
                    next = e.revision + 1;
                }
            });
        }
        for e in new.iter().filter(|e| e.revision >= next && e.revision < to) {
            sizes.push(e.size());
        }
        Ok(sizes)
    }

    /// Forgets the memory-table expiries of a flushed table: the store's
    /// expiry index has them now.
    pub(super) fn flushed_expiries(&self, table: &Memtable) {
        let mut pending = self.expiring.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() {
            return;
        }
        table.with_all(|key, v| {
            if let Some(at) = v.expires_at_ms {
                let entry = (at, key.to_vec());
                // A newer put with the same expiry, in a later table, stays.
                if pending.get(&entry) == Some(&v.revision) {
                    pending.remove(&entry);
                }
            }
        });
    }
}
