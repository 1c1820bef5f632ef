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

use crate::types::RangeQuery;

use super::worker::{KeysTag, Purpose, Request};

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
    /// Only keys with this prefix (`f`).
    pub filter: Option<Vec<u8>>,
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
    read_under: Option<Vec<u8>>,
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
        self.loading = true;
        self.jumping = true;
        self.pending = 0;
        self.keep_row = None;
        self.base = None;
        // The new page is read after every change seen so far.
        self.replay.clear();
        self.replay_overflow = false;
        self.lost = None;
        let query = RangeQuery {
            start,
            reverse: purpose == Purpose::Bottom,
            ..self.query()
        };
        self.request(purpose, query)
    }

    fn query(&self) -> RangeQuery {
        RangeQuery {
            prefix: self.filter.clone(),
            // One more than a page tells whether anything follows.
            limit: Some(PAGE as u64 + 1),
            keys_only: true,
            ..RangeQuery::default()
        }
    }

    fn request(&self, purpose: Purpose, query: RangeQuery) -> Request {
        Request::Keys {
            tag: KeysTag {
                generation: self.generation,
                purpose,
            },
            query,
        }
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
        self.loading = false;
        self.jumping = false;
        self.read_under.clone_from(&self.filter);
        let more = keys.len() > PAGE;
        keys.truncate(PAGE);
        match tag.purpose {
            Purpose::Seek if keys.is_empty() => return Some(self.jump_bottom()),
            Purpose::Top | Purpose::Seek => {
                self.keys = keys;
                (self.cursor, self.offset) = (0, 0);
                self.head_done = tag.purpose == Purpose::Top;
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
        match std::mem::take(&mut self.pending) {
            0 => self.extend(),
            rest => self.move_by(rest, rows),
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
        if self.loading {
            if self.replay.len() < MAX_REPLAY {
                self.replay.push((key.to_vec(), deleted));
            } else {
                self.replay_overflow = true;
            }
        }
        if self.filter.as_ref().is_some_and(|p| !key.starts_with(p)) {
            return false;
        }
        let changed = match self.keys.binary_search_by(|k| k.as_slice().cmp(key)) {
            Ok(i) if deleted => {
                self.remove(i);
                true
            }
            Err(i) if !deleted => {
                let inside = (i > 0 || self.head_done) && (i < self.keys.len() || self.tail_done);
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
