//! The key list: a window of consecutive keys around the cursor, paged in
//! through bounded range reads and never the whole store.
//!
//! Invariant: `keys` is a run of consecutive keys of the store (within the
//! prefix filter), ascending. `head_done` / `tail_done` say that no key of
//! the filter lies before / after it. Moving near an edge asks for the next
//! [`PAGE`] keys past that edge (`start` just after the last key, or a
//! reverse read ending at the first); when the window grows past
//! [`MAX_WINDOW`] the far end is dropped, so memory stays bounded on any
//! store. Jumps (start, `g`, `G`, seek, filter) replace the window and bump
//! `generation`, which turns answers to older requests into no-ops.
//!
//! Under a pattern filter (`filter.rs`) a page is read in steps of
//! [`SCAN_BATCH`] keys, the worker keeping the matches: each step's
//! matches are placed as they come (a jump's once it found one, so the
//! old window stays until then), and the next step goes on from the last
//! key read, until a page of matches is in or the range ends. While a
//! step is out, the keys between the window's edge and that last key are
//! known to hold no match but the ones a live change adds.
//!
//! Once `Esc` stopped a pattern's first count (`scanning.rs`), the list
//! keeps to the keys read before the stop ([`Pager::upto`]): its reads end
//! at the last of them, and changes past it are left out, so it never
//! shows a match the status bar's count has not seen.

use crate::types::RangeQuery;

use super::filter::Filter;
use super::worker::{KeysTag, Purpose, Request, SCAN_BATCH, ScanStep};

/// Keys per range read: a few screens, one cheap read.
pub const PAGE: usize = 200;
/// Most keys held: old pages beyond this are dropped. With keys of up to
/// 4 KiB this bounds the list to a few MiB.
pub const MAX_WINDOW: usize = 5 * PAGE;
/// Ask for more keys when the cursor comes this close to an edge, so that
/// scrolling rarely sees the end of the window.
const MARGIN: usize = PAGE / 2;
/// Most live changes kept for a page in flight (see `Pager::replay`);
/// beyond that the page is read again once it lands.
const MAX_REPLAY: usize = MAX_WINDOW;

/// The key list's state.
#[derive(Debug, Clone, Default)]
pub struct Pager {
    pub keys: Vec<Vec<u8>>,
    /// Index of the selected key in `keys`.
    pub cursor: usize,
    /// Index of the first key shown.
    pub offset: usize,
    pub head_done: bool,
    pub tail_done: bool,
    /// Only the keys that pass this filter (`f`).
    pub filter: Option<Filter>,
    /// Bumped by every jump; see the module doc.
    pub generation: u64,
    /// A request for keys is on its way (one at a time).
    pub loading: bool,
    /// The request on its way is a jump: the selection is about to move.
    pub jumping: bool,
    /// Rows still to move once the keys being read arrive.
    pub pending: isize,
    /// The screen row the cursor should keep across a reload.
    keep_row: Option<usize>,
    /// How many keys of the filter lie before `keys[0]`, when known: since
    /// the window last touched the first key (`head_done`), the keys it
    /// dropped or added at its front were counted.
    base: Option<u64>,
    /// Changes from the live feed that came while keys were being read:
    /// the page may have been read before them, so they are applied to it
    /// again when it lands (applying a change twice changes nothing).
    replay: Vec<(Vec<u8>, bool)>,
    /// More changes came meanwhile than [`MAX_REPLAY`]: read again.
    replay_overflow: bool,
    /// The selected key was deleted and the key after it is past the
    /// window (a burst took the rest of it): the window is to be read
    /// again from this key, which lands on the next one. Falling back to
    /// the key before, or to the first key, would lose the user's place.
    pub lost: Option<Vec<u8>>,
    /// The filter `keys` were read under: after a new filter's read
    /// failed, the window still holds keys of the old one.
    read_under: Option<Filter>,
    /// A pattern filter's read in steps, while one is out.
    scan: Option<Scan>,
    /// A pattern's read was stopped (Esc) after reading this many keys;
    /// until the next read.
    pub stopped: Option<u64>,
    /// While a pattern's count is stopped: the last key it read (empty:
    /// none). Until `r` or another filter the list keeps to the keys up to
    /// it (see the module doc).
    pub upto: Option<Vec<u8>>,
}

/// What [`Pager::stop_scan`] stopped.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The last key it read (empty: none).
    pub edge: Vec<u8>,
    /// It read from the first key of the filter (`Top`).
    pub from_start: bool,
    /// It read upwards from the window's last key, which its matches
    /// joined: the window holds every match up to `edge`.
    pub onwards: bool,
}

/// A pattern filter's read in steps (see the module doc).
#[derive(Debug, Clone)]
struct Scan {
    /// What the next step's keys are for: the jump's purpose until it
    /// placed keys, then `Forward` (or `Backward`, reading down).
    purpose: Purpose,
    /// Keys were placed: the window is this read's.
    placed: bool,
    /// Matches placed by this read (a page at most).
    found: usize,
    /// Keys read by its steps so far.
    read: u64,
    /// The last key read: the next step goes on past it.
    edge: Vec<u8>,
    /// Reads from the first key of the filter.
    from_start: bool,
    /// The first step's query; the next ones start past `edge`.
    query: RangeQuery,
}

impl Pager {
    /// The selected key.
    pub fn current(&self) -> Option<&[u8]> {
        self.keys.get(self.cursor).map(Vec::as_slice)
    }

    /// The cursor's 1-based position among the filter's `total` keys, when
    /// known: counted from the first key, or from the last one when the
    /// window reaches it and `total` is known.
    pub fn position(&self, total: Option<u64>) -> Option<u64> {
        if self.keys.is_empty() {
            return None;
        }
        let cursor = self.cursor as u64;
        if let Some(base) = self.base {
            return Some(base + cursor + 1);
        }
        let after = (self.keys.len() - 1).saturating_sub(self.cursor) as u64;
        total
            .filter(|_| self.tail_done)
            .and_then(|t| t.checked_sub(after))
            .filter(|&p| p > 0)
    }

    /// A new window starting at `start` (None: the first key).
    pub fn jump_top(&mut self, start: Option<Vec<u8>>) -> Request {
        let purpose = if start.is_some() {
            Purpose::Seek
        } else {
            Purpose::Top
        };
        self.reset(purpose, start)
    }

    /// Reads the window again from `key` (or the key after it), keeping
    /// the cursor on its screen row: after a refresh or a delete the list
    /// should not jump.
    pub fn reload_at(&mut self, key: Option<Vec<u8>>) -> Request {
        let row = self.cursor.saturating_sub(self.offset);
        let request = self.jump_top(key);
        self.keep_row = Some(row);
        request
    }

    /// A new window of the last keys.
    pub fn jump_bottom(&mut self) -> Request {
        self.reset(Purpose::Bottom, None)
    }

    fn reset(&mut self, purpose: Purpose, start: Option<Vec<u8>>) -> Request {
        self.generation += 1;
        self.scan = None;
        self.loading = true;
        self.jumping = true;
        self.pending = 0;
        self.keep_row = None;
        self.base = None;
        // The new page is read after every change seen so far.
        self.replay.clear();
        self.replay_overflow = false;
        self.lost = None;
        let mut query = RangeQuery {
            start,
            reverse: purpose == Purpose::Bottom,
            ..self.query()
        };
        // A seek past the keys kept to (`upto`) finds none there: it
        // shows the last of them.
        if let (Some(start), Some(end)) = (&query.start, &query.end)
            && start > end
        {
            query.start = Some(end.clone());
        }
        self.request(purpose, query)
    }

    fn query(&self) -> RangeQuery {
        let pattern = self.filter.as_ref().is_some_and(|f| f.glob().is_some());
        RangeQuery {
            // A pattern's literal prefix: `*x` reads every key.
            prefix: self
                .filter
                .as_ref()
                .map(Filter::scan_prefix)
                .filter(|p| !p.is_empty()),
            // One more than a page tells whether anything follows; a
            // pattern's read is bounded by the keys it reads instead.
            limit: Some(match pattern {
                true => SCAN_BATCH,
                false => PAGE as u64 + 1,
            }),
            end: self.upto.as_deref().map(just_after),
            keys_only: true,
            ..RangeQuery::default()
        }
    }

    /// Whether `key` lies past the keys the list keeps to (see `upto`).
    pub fn beyond(&self, key: &[u8]) -> bool {
        self.upto.as_deref().is_some_and(|upto| key > upto)
    }

    fn request(&mut self, purpose: Purpose, query: RangeQuery) -> Request {
        let tag = KeysTag {
            generation: self.generation,
            purpose,
        };
        self.stopped = None;
        let Some(glob) = self.filter.as_ref().and_then(Filter::glob) else {
            return Request::Keys { tag, query };
        };
        let glob = glob.clone();
        self.scan = Some(Scan {
            purpose,
            placed: matches!(purpose, Purpose::Forward | Purpose::Backward),
            found: 0,
            read: 0,
            edge: Vec::new(),
            from_start: purpose == Purpose::Top,
            query: query.clone(),
        });
        Request::Scan {
            tag,
            query,
            glob,
            want: PAGE + 1,
        }
    }

    /// The next step of the pattern's read `scan`.
    fn next_step(&self, scan: &Scan) -> Option<Request> {
        let glob = self.filter.as_ref().and_then(Filter::glob)?.clone();
        let query = if scan.query.reverse {
            RangeQuery {
                end: Some(scan.edge.clone()),
                ..scan.query.clone()
            }
        } else {
            let mut after = scan.edge.clone();
            after.push(0);
            RangeQuery {
                start: Some(after),
                ..scan.query.clone()
            }
        };
        Some(Request::Scan {
            tag: KeysTag {
                generation: self.generation,
                purpose: scan.purpose,
            },
            query,
            glob,
            want: (PAGE + 1).saturating_sub(scan.found),
        })
    }

    /// Keys read so far by a pattern's read that is out.
    pub fn scanning(&self) -> Option<u64> {
        self.scan.as_ref().map(|s| s.read)
    }

    /// Stops a pattern's read that is out (Esc): its answer is dropped and
    /// the keys it placed stay. Returns what it had read.
    pub fn stop_scan(&mut self) -> Option<Stopped> {
        let scan = self.scan.take()?;
        self.generation += 1;
        (self.loading, self.jumping, self.pending) = (false, false, 0);
        self.replay.clear();
        self.replay_overflow = false;
        self.stopped = Some(scan.read);
        Some(Stopped {
            onwards: scan.placed && !scan.query.reverse,
            from_start: scan.from_start,
            edge: scan.edge,
        })
    }

    /// How far from the first key of the filter every match is known, as
    /// one run with a count that read up to `counted`: that key, or past it
    /// as far as the window and the read `stopped` go when they follow on
    /// from it. The count, stopped, reads on to there, so that no key
    /// the list shows lies past what it counted.
    pub fn reach(&self, stopped: Option<&Stopped>, counted: &[u8]) -> Vec<u8> {
        let mut reach = counted.to_vec();
        if let Some(s) = stopped.filter(|s| s.from_start) {
            reach = reach.max(s.edge.clone());
        }
        let (Some(first), Some(last)) = (self.keys.first(), self.keys.last()) else {
            return reach;
        };
        if self.head_done || *first <= reach {
            reach = reach.max(last.clone());
            if let Some(s) = stopped.filter(|s| s.onwards) {
                reach = reach.max(s.edge.clone());
            }
        }
        reach
    }

    /// Keeps the list to the keys up to `upto` (see the field), of which
    /// `matches` match: the window's keys past it go. Returns a read of the
    /// last matches up to it when none is left in the window.
    pub fn keep_to(&mut self, upto: Vec<u8>, matches: u64, rows: usize) -> Option<Request> {
        let kept = self.keys.partition_point(|k| *k <= upto);
        if kept < self.keys.len() {
            // A run of consecutive matches: none between the last one
            // kept and `upto`.
            self.keys.truncate(kept);
            self.tail_done = true;
            self.cursor = self.cursor.min(kept.saturating_sub(1));
        }
        self.upto = Some(upto);
        if self.keys.is_empty() {
            if matches > 0 {
                return Some(self.jump_bottom());
            }
            (self.head_done, self.tail_done) = (true, true);
            (self.cursor, self.offset, self.base) = (0, 0, Some(0));
            return None;
        }
        // Every match up to `upto` is in the window already.
        if self.head_done && self.keys.len() as u64 >= matches {
            self.tail_done = true;
        }
        self.scroll_into_view(rows);
        None
    }

    /// Moves the cursor by `delta` rows within the window, keeping it on a
    /// screen of `rows` rows; returns a request for more keys when it nears
    /// an edge that is not the end of the store.
    pub fn move_by(&mut self, delta: isize, rows: usize) -> Option<Request> {
        if self.keys.is_empty() {
            return None;
        }
        let delta = delta.saturating_add(std::mem::take(&mut self.pending));
        let last = self.keys.len() as i64 - 1;
        let wanted = (self.cursor as i64).saturating_add(delta as i64);
        let reached = wanted.clamp(0, last);
        self.cursor = reached as usize;
        // Rows past an edge with more keys behind it are moved when those
        // keys arrive, so a fast PgDn is not cut short by a page read.
        let beyond = wanted - reached;
        let more = (beyond > 0 && !self.tail_done) || (beyond < 0 && !self.head_done);
        self.pending = if more { beyond as isize } else { 0 };
        self.scroll_into_view(rows);
        self.extend()
    }

    /// Keeps `offset <= cursor < offset + rows`, and the pane full: no
    /// empty rows below the last key while keys above it are off screen
    /// (after a seek the keys before its key arrive later; after the
    /// window grows the rows below the last key would stay empty).
    pub fn scroll_into_view(&mut self, rows: usize) {
        let rows = rows.max(1);
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + rows {
            self.offset = self.cursor + 1 - rows;
        }
        self.offset = self.offset.min(self.keys.len().saturating_sub(rows));
    }

    /// A request for the keys past the nearer unfinished edge, if needed.
    pub fn extend(&mut self) -> Option<Request> {
        if self.loading || self.keys.is_empty() {
            return None;
        }
        let (first, last) = (self.keys.first()?, self.keys.last()?);
        let query = if !self.tail_done && self.cursor + MARGIN >= self.keys.len() {
            let mut after = last.clone();
            // The smallest key greater than `last`.
            after.push(0);
            (
                Purpose::Forward,
                RangeQuery {
                    start: Some(after),
                    ..self.query()
                },
            )
        } else if !self.head_done && self.cursor < MARGIN {
            (
                Purpose::Backward,
                RangeQuery {
                    end: Some(first.clone()),
                    reverse: true,
                    ..self.query()
                },
            )
        } else {
            return None;
        };
        self.loading = true;
        Some(self.request(query.0, query.1))
    }

    /// Takes in a page of keys; returns the next request to make, if any
    /// (prefetch, or the last keys when a seek went past the end).
    pub fn receive(
        &mut self,
        tag: KeysTag,
        mut keys: Vec<Vec<u8>>,
        rows: usize,
    ) -> Option<Request> {
        if tag.generation != self.generation {
            return None;
        }
        let more = keys.len() > PAGE;
        keys.truncate(PAGE);
        self.land(tag.purpose, keys, more, rows, None)
    }

    /// Whether a step of a pattern's read places a jump's first keys (or
    /// ends it without any): the selection moves.
    pub fn lands(&self, tag: KeysTag, step: &ScanStep) -> bool {
        let jump = self.scan.as_ref().is_some_and(|s| !s.placed);
        tag.generation == self.generation && jump && (!step.keys.is_empty() || step.next.is_none())
    }

    /// Takes in a step of a pattern's read: its matches are placed (see
    /// the module doc); returns the next step, or what [`Pager::receive`]
    /// would once the read is over.
    pub fn receive_scan(&mut self, tag: KeysTag, step: ScanStep, rows: usize) -> Option<Request> {
        if tag.generation != self.generation {
            return None;
        }
        let mut scan = self.scan.take()?;
        scan.read += step.read;
        let mut keys = step.keys;
        // One more than a page: more follow, and the read is over.
        let over = scan.found + keys.len() > PAGE;
        keys.truncate(PAGE.saturating_sub(scan.found));
        scan.found += keys.len();
        let more = over || step.next.is_some();
        let edge = step.next.filter(|_| !over);
        if let Some(edge) = &edge {
            scan.edge.clone_from(edge);
        }
        if !scan.placed && keys.is_empty() && edge.is_some() {
            // No match yet: the window stays as it was meanwhile.
            let next = self.next_step(&scan);
            self.scan = Some(scan);
            return next;
        }
        let purpose = scan.purpose;
        scan.placed = true;
        scan.purpose = match purpose {
            Purpose::Bottom | Purpose::Backward => Purpose::Backward,
            _ => Purpose::Forward,
        };
        let next = edge.and_then(|_| self.next_step(&scan));
        self.scan = next.is_some().then_some(scan);
        self.land(purpose, keys, more, rows, next)
    }

    /// Places a page of keys read for `purpose`; `next` is the next step
    /// of a pattern's read still to come (the list keeps loading).
    fn land(
        &mut self,
        purpose: Purpose,
        mut keys: Vec<Vec<u8>>,
        more: bool,
        rows: usize,
        next: Option<Request>,
    ) -> Option<Request> {
        self.loading = false;
        self.jumping = false;
        self.read_under.clone_from(&self.filter);
        match purpose {
            Purpose::Seek if keys.is_empty() => return Some(self.jump_bottom()),
            Purpose::Top | Purpose::Seek => {
                self.keys = keys;
                (self.cursor, self.offset) = (0, 0);
                self.head_done = purpose == Purpose::Top;
                self.tail_done = !more;
                self.base = self.head_done.then_some(0);
            }
            Purpose::Bottom => {
                keys.reverse();
                self.cursor = keys.len().saturating_sub(1);
                self.keys = keys;
                self.offset = 0;
                (self.head_done, self.tail_done) = (!more, true);
                self.base = self.head_done.then_some(0);
            }
            Purpose::Forward => self.append(keys, more),
            Purpose::Backward => self.prepend(keys, more),
        }
        if std::mem::take(&mut self.replay_overflow) {
            self.replay.clear();
            let current = self.current().map(<[u8]>::to_vec);
            return Some(self.reload_at(current));
        }
        for (key, deleted) in std::mem::take(&mut self.replay) {
            self.change(&key, deleted, rows);
        }
        if let Some(key) = self.lost.take() {
            return Some(self.reload_at(Some(key)));
        }
        self.scroll_into_view(rows);
        // The next step is out: no other read until it is in.
        self.loading = next.is_some();
        match std::mem::take(&mut self.pending) {
            0 => next.or_else(|| self.extend()),
            rest => {
                let more = self.move_by(rest, rows);
                next.or(more)
            }
        }
    }

    /// Keys after the window, ascending.
    fn append(&mut self, keys: Vec<Vec<u8>>, more: bool) {
        self.keys.extend(keys);
        self.tail_done = !more;
        self.trim_front();
    }

    /// Keys before the window, descending as a reverse range yields them.
    fn prepend(&mut self, mut keys: Vec<Vec<u8>>, more: bool) {
        keys.reverse();
        let n = keys.len();
        keys.append(&mut self.keys);
        self.keys = keys;
        (self.cursor, self.offset) = (self.cursor + n, self.offset + n);
        if let Some(row) = self.keep_row.take() {
            self.offset = self.cursor.saturating_sub(row);
        }
        self.head_done = !more;
        self.base = match self.base {
            _ if self.head_done => Some(0),
            base => base.map(|b| b.saturating_sub(n as u64)),
        };
        self.trim_back();
    }

    fn trim_front(&mut self) {
        let excess = self.keys.len().saturating_sub(MAX_WINDOW);
        if excess > 0 {
            self.keys.drain(..excess);
            self.cursor = self.cursor.saturating_sub(excess);
            self.offset = self.offset.saturating_sub(excess);
            self.head_done = false;
            self.base = self.base.map(|b| b + excess as u64);
        }
    }

    fn trim_back(&mut self) {
        if self.keys.len() > MAX_WINDOW {
            self.keys.truncate(MAX_WINDOW);
            self.cursor = self.cursor.min(MAX_WINDOW - 1);
            self.tail_done = false;
        }
    }
}

/// Live changes (see `super::live`): the window follows puts and deletes of
/// the keys it covers.
impl Pager {
    /// A key was put (`deleted` false) or deleted by someone. A new key
    /// that falls inside the window (between its first and last key, or
    /// past an edge that is the end of the keys) is inserted, a deleted
    /// one removed; the cursor stays on its key, or moves to the next one
    /// when its own goes. Returns whether the list changed.
    pub fn change(&mut self, key: &[u8], deleted: bool, rows: usize) -> bool {
        // Keys the filter leaves out change nothing, now or replayed; nor
        // do keys past the ones the list keeps to.
        if self.filter.as_ref().is_some_and(|f| !f.matches(key)) || self.beyond(key) {
            return false;
        }
        if self.loading {
            if self.replay.len() < MAX_REPLAY {
                self.replay.push((key.to_vec(), deleted));
            } else {
                self.replay_overflow = true;
            }
        }
        let changed = match self.keys.binary_search_by(|k| k.as_slice().cmp(key)) {
            Ok(i) if deleted => {
                self.remove(i);
                true
            }
            Err(i) if !deleted => {
                let inside = (i > 0 || self.head_done || self.scanned(key, false))
                    && (i < self.keys.len() || self.tail_done || self.scanned(key, true));
                if inside {
                    self.insert(i, key.to_vec());
                }
                inside
            }
            _ => false,
        };
        if changed {
            self.scroll_into_view(rows);
        }
        changed
    }

    /// Whether `key`, past the window's last key (`after`) or before its
    /// first, lies in what a pattern's read out now has read already: it
    /// holds no match but the ones changes add, and the next step starts
    /// beyond it.
    fn scanned(&self, key: &[u8], after: bool) -> bool {
        self.scan.as_ref().is_some_and(|s| {
            let edge = s.edge.as_slice();
            let toward = s.query.reverse != after;
            s.placed
                && toward
                && !edge.is_empty()
                && (if after { key <= edge } else { key >= edge })
        })
    }

    fn insert(&mut self, i: usize, key: Vec<u8>) {
        let was_empty = self.keys.is_empty();
        self.keys.insert(i, key);
        if !was_empty && i <= self.cursor {
            self.cursor += 1;
        }
        if !was_empty && i < self.offset {
            self.offset += 1;
        }
        if self.keys.len() > MAX_WINDOW {
            // Drop the end farther from the cursor.
            if self.cursor >= self.keys.len() / 2 {
                self.trim_front();
            } else {
                self.trim_back();
            }
        }
    }

    fn remove(&mut self, i: usize) {
        let key = self.keys.remove(i);
        if i == self.cursor && i == self.keys.len() && !self.tail_done {
            self.lost = Some(key);
        }
        if i < self.cursor {
            self.cursor -= 1;
        }
        if i < self.offset {
            self.offset -= 1;
        }
        self.cursor = self.cursor.min(self.keys.len().saturating_sub(1));
        self.offset = self.offset.min(self.cursor);
    }

    /// Forgets the changes kept for a page that will not land.
    /// Keys read under another filter go too: shown under this one's
    /// title, and selected, they would be taken for its matches. Returns
    /// whether they went.
    pub fn read_failed(&mut self) -> bool {
        self.scan = None;
        self.loading = false;
        self.jumping = false;
        self.replay.clear();
        self.replay_overflow = false;
        if self.read_under != self.filter {
            self.keys.clear();
            (self.cursor, self.offset, self.pending) = (0, 0, 0);
            (self.head_done, self.tail_done) = (false, false);
            self.base = None;
            return true;
        }
        false
    }
}

/// The smallest key after `key`: an exclusive end that takes `key` in.
fn just_after(key: &[u8]) -> Vec<u8> {
    let mut after = key.to_vec();
    after.push(0);
    after
}
