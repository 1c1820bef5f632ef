//! What the expiry sweeper and the watchers read from the engine: the
//! keys due to expire (from the store's expiry index and the memory
//! tables) and the events by revision (from the memory tables and the
//! store's history); and the sizes the writer trims the history by.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::{Engine, Events, EventsRead, ExpiryCursor, Memtable, history};
use crate::error::Result;

/// A watched key range: `[lower, upper)`, `None` unbounded above.
pub type Range = (Vec<u8>, Option<Vec<u8>>);

/// Events one dispatch round looks at, at most (the registry is locked
/// meanwhile: registrations wait for at most one round).
const ROUND_EVENTS: u64 = 16_384;

/// Who watches what, and which watchers a group concerns.
///
/// Each watcher has a slot, filed under its key range. One dispatcher
/// task follows the published revision: for the events of the groups
/// applied since its last round, it finds the watched ranges they touch
/// (the round's keys sorted once, a binary search per distinct range) and
/// wakes only those ranges' watchers, after recording in each slot the
/// lowest and highest matching revision. So a group costs writers
/// nothing, and watchers of untouched ranges are not woken at all: they
/// learn from the dispatched revision how far they are up to date (for their
/// progress lines). With no watcher registered the dispatcher sleeps.
pub struct Hub {
    /// Tells one engine's hub from another's (see [`Subscription::hub_id`]).
    id: u64,
    registry: Mutex<Registry>,
    /// Every matching event at or below it is recorded in its slots.
    dispatched: AtomicU64,
    /// Watchers registered (a copy of the registry's count).
    watching: AtomicUsize,
    /// Watchers woken by the last round.
    active: AtomicUsize,
    /// A first watcher registered: the dispatcher resumes.
    joined: tokio::sync::Notify,
    /// See [`Engine::watch_buffered`].
    buffered: AtomicUsize,
}

impl Default for Hub {
    fn default() -> Hub {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Hub {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            registry: Mutex::default(),
            dispatched: AtomicU64::default(),
            watching: AtomicUsize::default(),
            active: AtomicUsize::default(),
            joined: tokio::sync::Notify::new(),
            buffered: AtomicUsize::default(),
        }
    }
}

#[derive(Default)]
struct Registry {
    ranges: BTreeMap<Range, Vec<Arc<Slot>>>,
    slots: usize,
    started: bool,
}

/// What the dispatcher tells one watcher.
#[derive(Default)]
struct Slot {
    /// The highest matching revision dispatched.
    touched: AtomicU64,
    /// The lowest matching revision dispatched since the watcher last
    /// took it (0: none).
    first: AtomicU64,
    /// Watchers of the same range, this one included.
    sharers: AtomicUsize,
    wake: tokio::sync::Notify,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One round: dispatches the events after [`Hub::dispatched`] up to
    /// the published revision (at most [`ROUND_EVENTS`]). Returns whether
    /// more are published.
    fn round(&self, engine: &Engine) -> bool {
        let reg = self.lock();
        let done = self.dispatched.load(Ordering::Acquire);
        let published = engine.revision();
        if published <= done {
            return false;
        }
        if reg.ranges.is_empty() {
            self.dispatched.store(published, Ordering::Release);
            self.active.store(0, Ordering::Relaxed);
            return false;
        }
        let upto = published.min(done + ROUND_EVENTS);
        let mut hits: Vec<Option<(u64, u64)>> = vec![None; reg.ranges.len()];
        let mut expect = done + 1;
        let mut whole = true;
        {
            let t = engine.read_tables();
            for table in t.frozen.iter().chain(std::iter::once(&t.live)) {
                table.with_events(|events| {
                    let start = events.partition_point(|e| e.revision < expect);
                    let mut round: Vec<&history::Event> = events[start..]
                        .iter()
                        .take_while(|e| e.revision <= upto)
                        .collect();
                    let (Some(first), Some(last)) = (round.first(), round.last()) else {
                        return;
                    };
                    whole &= first.revision == expect;
                    expect = last.revision + 1;
                    round.sort_unstable_by(|a, b| a.key.cmp(&b.key));
                    for (hit, (lower, upper)) in hits.iter_mut().zip(reg.ranges.keys()) {
                        let from = round.partition_point(|e| e.key < *lower);
                        for e in round[from..]
                            .iter()
                            .take_while(|e| upper.as_ref().is_none_or(|u| e.key < *u))
                        {
                            let r = e.revision;
                            *hit = Some(hit.map_or((r, r), |(lo, hi)| (lo.min(r), hi.max(r))));
                        }
                    }
                });
            }
        }
        // Events no longer in memory (a lagging round, an installed
        // snapshot): every watcher reads that stretch itself.
        whole &= expect == upto + 1;
        let mut woken = 0;
        for (hit, slots) in hits.iter().zip(reg.ranges.values()) {
            let hit = if whole { *hit } else { Some((done + 1, upto)) };
            if let Some((lo, hi)) = hit {
                for s in slots {
                    s.touched.fetch_max(hi, Ordering::AcqRel);
                    let _ = s
                        .first
                        .compare_exchange(0, lo, Ordering::AcqRel, Ordering::Acquire);
                }
            }
        }
        self.dispatched.store(upto, Ordering::Release);
        for (hit, slots) in hits.iter().zip(reg.ranges.values()) {
            if hit.is_some() || !whole {
                for s in slots {
                    s.wake.notify_one();
                }
                woken += slots.len();
            }
        }
        self.active.store(woken, Ordering::Relaxed);
        upto < published
    }
}

/// The dispatcher task (see [`Hub`]): it ends with the engine.
async fn dispatch(
    engine: Weak<Engine>,
    hub: Arc<Hub>,
    mut published: tokio::sync::watch::Receiver<u64>,
) {
    loop {
        if hub.watching.load(Ordering::Acquire) == 0 {
            let joined = hub.joined.notified();
            tokio::pin!(joined);
            joined.as_mut().enable();
            if hub.watching.load(Ordering::Acquire) == 0 {
                joined.await;
            }
        }
        {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            let mut rounds = 0;
            while hub.round(&engine) {
                rounds += 1;
                if rounds % 8 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
        if published.changed().await.is_err() {
            return;
        }
    }
}

/// A registered watcher (see [`Engine::watch`]); unregistered on drop.
pub struct Subscription {
    hub: Arc<Hub>,
    slot: Arc<Slot>,
    bounds: Option<Range>,
    /// Matching events up to here were dispatched and taken: the watcher
    /// must read up to here before it may skip ahead.
    claimed: u64,
}

impl Subscription {
    /// The watcher must read every event up to `revision` (what was
    /// applied when it registered: the dispatcher only tells it of later
    /// ones).
    pub fn read_through(&mut self, revision: u64) {
        self.claimed = self.claimed.max(revision);
    }

    /// Where a watcher that has sent every event before `next` reads on:
    /// past the revisions the dispatcher found nothing for it in. Read
    /// events from the result while it is at most [`Subscription::claimed`];
    /// beyond, wait to be woken ([`Subscription::woken`]). Every matching
    /// event before the result has been sent.
    pub fn advance(&mut self, next: u64) -> u64 {
        // `dispatched` first: every match at or below it is in the slot.
        let done = self.hub.dispatched.load(Ordering::Acquire);
        let first = self.slot.first.swap(0, Ordering::AcqRel);
        let touched = self.slot.touched.load(Ordering::Acquire);
        let mut next = next;
        if next > self.claimed {
            if first != 0 {
                // Nothing matched between `next` and the first match
                // since the last call.
                next = next.max(first);
            } else if next > touched {
                // Nothing matched from `next` up to `done`.
                next = next.max(done + 1);
            }
        }
        self.claimed = self.claimed.max(touched);
        next
    }

    /// The last revision this watcher knows of a matching event at.
    pub fn claimed(&self) -> u64 {
        self.claimed
    }

    /// Resolves when the dispatcher found events for this watcher.
    pub async fn woken(&self) {
        self.slot.wake.notified().await;
    }

    /// Which engine's watcher this is: the same number for the same
    /// engine only.
    pub fn hub_id(&self) -> u64 {
        self.hub.id
    }

    /// Watchers of the same key range, this one included (about: it is
    /// updated as they come and go).
    pub fn sharers(&self) -> usize {
        self.slot.sharers.load(Ordering::Relaxed)
    }

    /// Watchers woken by the dispatcher's last round (for pacing).
    pub fn active(&self) -> usize {
        self.hub.active.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut reg = self.hub.lock();
        reg.slots = reg.slots.saturating_sub(1);
        if let Some(range) = &self.bounds
            && let Some(slots) = reg.ranges.get_mut(range)
        {
            slots.retain(|s| !Arc::ptr_eq(s, &self.slot));
            for s in slots.iter() {
                s.sharers.store(slots.len(), Ordering::Relaxed);
            }
            if slots.is_empty() {
                reg.ranges.remove(range);
            }
        }
        self.hub.watching.store(reg.slots, Ordering::Release);
    }
}

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

    /// Registers a watcher of the keys in `bounds` (`None`: no key): it
    /// is woken only when a group touches one of them (see [`Hub`]).
    /// Starts the dispatcher on the first call; needs a tokio runtime.
    pub fn watch(self: &Arc<Self>, bounds: Option<Range>) -> Subscription {
        let hub = self.hub.clone();
        let slot = Arc::new(Slot::default());
        {
            let mut reg = hub.lock();
            if reg.slots == 0 {
                // Nothing was dispatched while nobody watched: there was
                // nobody to wake, and this watcher reads what is applied now.
                hub.dispatched.fetch_max(self.revision(), Ordering::AcqRel);
            }
            if !reg.started {
                reg.started = true;
                let engine = Arc::downgrade(self);
                tokio::spawn(dispatch(engine, hub.clone(), self.notify.subscribe()));
            }
            reg.slots += 1;
            if let Some(range) = &bounds {
                let slots = reg.ranges.entry(range.clone()).or_default();
                slots.push(slot.clone());
                let sharers = slots.len();
                for s in slots.iter() {
                    s.sharers.store(sharers, Ordering::Relaxed);
                }
            }
            hub.watching.store(reg.slots, Ordering::Release);
        }
        hub.joined.notify_one();
        Subscription {
            hub,
            slot,
            bounds,
            claimed: 0,
        }
    }

    /// Bytes of rendered watch lines waiting for watchers' connections
    /// (kept by the server, here so every server of this engine shares it).
    pub fn watch_buffered(&self) -> &AtomicUsize {
        &self.hub.buffered
    }

    /// Up to `max` events from revision `from` on, from the memory tables
    /// and the store's history, and no more than it takes to bring their
    /// keys and values to `max_bytes` (one event at least, whatever its
    /// size); [`Events::Gone`] when `from`'s event is kept nowhere any
    /// more. The byte bound is a stream's: a watcher that reads the history
    /// decoded a page of 1,024 events whole, 1 GB of 1 MB values, and a
    /// hundred watchers behind took the server past 9 GB (found by an
    /// audit).
    pub fn events(&self, from: u64, max: usize, max_bytes: usize) -> Result<Events> {
        self.events_read(
            from,
            &EventsRead {
                max,
                max_bytes,
                values_of: &|_| true,
                strict: false,
            },
        )
    }

    /// [`Engine::events`] as a watcher reads them: only the values
    /// `read.values_of` wants are loaded and counted (the other events
    /// carry an empty value), and with `read.strict` a page never goes past
    /// `max_bytes`: an event that would is left for the next read, and when
    /// it is the first, [`Events::Needs`] says how many bytes it takes. So
    /// a watcher can read the history with the room it has (keys only, a
    /// few small values), and ask for more only when one event needs it.
    pub fn events_read(&self, from: u64, read: &EventsRead<'_>) -> Result<Events> {
        let EventsRead {
            max,
            max_bytes,
            values_of,
            strict,
        } = *read;
        let (base, tables) = {
            let t = self.read_tables();
            let mut tables: Vec<Arc<Memtable>> = t.frozen.clone();
            tables.push(t.live.clone());
            (t.base.clone(), tables)
        };
        let mut out: Vec<history::Event> = Vec::new();
        let mut page = PageBound {
            max_bytes,
            strict,
            bytes: 0,
            full: false,
            needs: None,
        };
        if from <= base.revision() {
            base.history(from, max, |rev, stored| {
                if page.full {
                    return Ok(());
                }
                let (key, value_len) = history::Event::sizes(rev, stored)?;
                let load = values_of(key);
                if !page.fits(key.len() + if load { value_len } else { 0 }, out.is_empty()) {
                    return Ok(());
                }
                out.push(if load {
                    history::Event::decode(rev, stored, &|key, rev| base.value_at(key, rev))?
                } else {
                    history::Event::decode_without_value(rev, stored)?
                });
                Ok(())
            })?;
        }
        for table in &tables {
            if out.len() >= max || page.full {
                break;
            }
            let next = out.last().map_or(from, |e| e.revision + 1);
            let start = out.len();
            table.events_from(next, max - out.len(), &mut out);
            // (Shared with the table: what goes past the bound is dropped.)
            let mut keep = out.len();
            for (i, e) in out.iter_mut().enumerate().skip(start) {
                let load = values_of(&e.key);
                let size = e.key.len() + if load { e.value.len() } else { 0 };
                if page.full || !page.fits(size, i == 0) {
                    keep = i;
                    break;
                }
                if !load {
                    e.value = bytes::Bytes::new();
                }
            }
            out.truncate(keep);
        }
        if let Some(size) = page.needs {
            return Ok(Events::Needs(size));
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
    /// as it comes, a page at a time), the first event that brings their
    /// keys and values to `max_bytes` ending the page; with the last
    /// revision covered (below
    /// `from` when nothing is applied yet) and whether it ends a request.
    /// `None` when `from`'s event is no longer in a memory table: then
    /// [`Engine::events`] reads the store.
    pub fn events_matching(
        &self,
        from: u64,
        max: usize,
        max_bytes: usize,
        wants: &dyn Fn(&[u8]) -> bool,
    ) -> Option<(Vec<history::Event>, u64, bool)> {
        let t = self.read_tables();
        if from <= t.base.revision() {
            return None;
        }
        let mut out = Vec::new();
        let (mut scanned, mut last, mut cut) = (0, from - 1, from - 1);
        let mut bytes = 0;
        for table in t.frozen.iter().chain(std::iter::once(&t.live)) {
            if scanned >= max || bytes >= max_bytes {
                break;
            }
            table.with_events(|events| {
                let start = events.partition_point(|e| e.revision <= last);
                for e in events[start..].iter().take(max - scanned) {
                    scanned += 1;
                    last = e.revision;
                    if wants(&e.key) {
                        bytes += e.key.len() + e.value.len();
                        out.push(e.clone());
                    }
                    if e.batch_end {
                        cut = e.revision;
                    }
                    // Also inside a request: a request of large values
                    // was a page of up to 64 MiB (a batch of the largest
                    // size) for each watcher, whatever its client took.
                    if bytes >= max_bytes {
                        break;
                    }
                }
            });
        }
        let complete = cut >= from;
        if !complete {
            cut = last;
        }
        out.retain(|e| e.revision <= cut);
        Some((out, cut, complete))
    }

    /// The history size of each event `from..to` (see
    /// [`history::Event::size`]) and whether it is the last of its
    /// request, found in `new`, the memory tables or the store; an event
    /// kept nowhere is left out.
    pub(super) fn event_sizes_each(
        &self,
        from: u64,
        to: u64,
        new: &[history::Event],
    ) -> Result<Vec<(u64, bool)>> {
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
                    sizes.push((
                        history::stored_size(bytes),
                        history::stored_batch_end(bytes),
                    ));
                    next = rev + 1;
                }
                Ok(())
            })?;
        }
        for table in &tables {
            table.with_events(|events| {
                let start = events.partition_point(|e| e.revision < next);
                for e in events[start..].iter().take_while(|e| e.revision < to) {
                    sizes.push((e.size(), e.batch_end));
                    next = e.revision + 1;
                }
            });
        }
        for e in new.iter().filter(|e| e.revision >= next && e.revision < to) {
            sizes.push((e.size(), e.batch_end));
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

/// The byte bound of a page of events (see [`Engine::events_read`]).
struct PageBound {
    max_bytes: usize,
    strict: bool,
    bytes: usize,
    /// Full: the rest is read by the next call.
    full: bool,
    /// A strict page's first event alone takes this many bytes.
    needs: Option<usize>,
}

impl PageBound {
    /// Whether an event of `size` bytes goes in the page (one at least
    /// unless strict), counting it if so.
    fn fits(&mut self, size: usize, first: bool) -> bool {
        if self.strict && self.bytes.saturating_add(size) > self.max_bytes {
            if first {
                self.needs = Some(size);
            }
            self.full = true;
            return false;
        }
        self.bytes = self.bytes.saturating_add(size);
        self.full = self.bytes >= self.max_bytes;
        true
    }
}
