//! Where each live entry of the Raft log is, in 8 bytes of memory per
//! entry.
//!
//! The index used to keep, for every entry, its segment, offset, length
//! and log id: 48 bytes. With one entry per request and a snapshot every
//! 2,000,000 entries that came to 96 MB. Most of it follows from the order
//! of the entries, so an entry now keeps only its offset and length in
//! its segment (`u32` each: an entry starts within `SEGMENT_BYTES` of its
//! segment's start, and its length is a `u32` in the file too). The rest:
//! - its index: the entries are consecutive, from [`EntryIndex::first`];
//! - its segment: the one with the greatest first index at or below its
//!   own (segments are started at the index of their first entry, and an
//!   entry goes into the last one);
//! - its leader id: it changes only at a new term, so it is kept once per
//!   run of entries of the same leader.

use std::collections::VecDeque;
use std::io;

use super::{LogId, corrupt};

/// An entry's record in its segment: where its payload starts, and how
/// long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub offset: u32,
    pub len: u32,
}

/// The live entries, in index order.
#[derive(Debug, Default)]
pub struct EntryIndex {
    /// The index of the first entry in `places` (meaningless when empty).
    first: u64,
    places: VecDeque<Place>,
    /// The log id of the first entry of each run of one leader's entries,
    /// in order; the first run may start before `first` (its earlier
    /// entries purged).
    runs: VecDeque<LogId>,
}

impl EntryIndex {
    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// The index of the first live entry.
    pub fn first(&self) -> Option<u64> {
        (!self.is_empty()).then_some(self.first)
    }

    /// The log id of the last live entry.
    pub fn last(&self) -> Option<LogId> {
        let index = self.first + self.places.len().checked_sub(1)? as u64;
        self.log_id(index)
    }

    /// Appends the entry `log_id` at `place`; it must follow the last one.
    pub fn push(&mut self, log_id: LogId, place: Place) -> io::Result<()> {
        if self.is_empty() {
            self.first = log_id.index();
            self.runs.clear();
        } else {
            let next = self.first + self.places.len() as u64;
            if log_id.index() != next {
                return Err(corrupt(format!(
                    "Raft log entry {} appended where entry {next} belongs",
                    log_id.index()
                )));
            }
        }
        if self.runs.back().map(|r| &r.leader_id) != Some(&log_id.leader_id) {
            self.runs.push_back(log_id);
        }
        self.places.push_back(place);
        Ok(())
    }

    /// The log id and place of the entry at `pos` (0: the first live one).
    pub fn get(&self, pos: usize) -> Option<(LogId, Place)> {
        let place = *self.places.get(pos)?;
        Some((self.log_id(self.first + pos as u64)?, place))
    }

    /// The position of the entry `index`, if it is live.
    pub fn position(&self, index: u64) -> Option<usize> {
        let pos = usize::try_from(index.checked_sub(self.first)?).ok()?;
        (pos < self.places.len()).then_some(pos)
    }

    /// The entries from `pos` on: their log ids and places.
    pub fn iter_from(&self, pos: usize) -> impl Iterator<Item = (LogId, Place)> + '_ {
        (pos..self.places.len()).map_while(|p| self.get(p))
    }

    /// Drops the entries from `pos` on.
    pub fn truncate(&mut self, pos: usize) {
        self.places.truncate(pos);
        let end = self.first + pos as u64;
        while self.runs.back().is_some_and(|r| r.index() >= end) && self.runs.len() > 1 {
            self.runs.pop_back();
        }
        if self.places.is_empty() {
            self.runs.clear();
        }
    }

    /// Drops the first entry.
    pub fn pop_front(&mut self) {
        if self.places.pop_front().is_none() {
            return;
        }
        self.first += 1;
        if self.places.is_empty() {
            self.runs.clear();
        } else if self.runs.get(1).is_some_and(|r| r.index() <= self.first) {
            self.runs.pop_front();
        }
    }

    /// The log id of the live entry `index`.
    fn log_id(&self, index: u64) -> Option<LogId> {
        let after = self.runs.partition_point(|r| r.index() <= index);
        let run = self.runs.get(after.checked_sub(1)?)?;
        Some(LogId::new(run.leader_id, index))
    }

    /// Bytes of memory the index holds (for the tests' bound).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.places.capacity() * std::mem::size_of::<Place>()
            + self.runs.capacity() * std::mem::size_of::<LogId>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::super::tests::id;
    use super::*;

    fn place(i: u64) -> Place {
        Place {
            offset: i as u32 * 10,
            len: 10,
        }
    }

    /// Against a plain list of (log id, place): random appends (with
    /// new terms), truncations and purges.
    #[test]
    fn the_index_answers_as_a_plain_list_does() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..200 {
            let mut index = EntryIndex::default();
            let mut model: VecDeque<(LogId, Place)> = VecDeque::new();
            let mut term = 1;
            let mut at = 1 + next() % 5;
            for _ in 0..200 {
                match next() % 10 {
                    0..=5 => {
                        if next() % 8 == 0 {
                            term += 1;
                        }
                        let log_id = id(term, at);
                        index.push(log_id, place(at)).unwrap();
                        model.push_back((log_id, place(at)));
                        at += 1;
                    }
                    6 | 7 => {
                        let pos = (next() % (model.len() as u64 + 1)) as usize;
                        index.truncate(pos);
                        model.truncate(pos);
                        at = model.back().map_or(at, |(l, _)| l.index() + 1);
                    }
                    _ => {
                        for _ in 0..next() % 4 {
                            index.pop_front();
                            model.pop_front();
                        }
                    }
                }
                assert_eq!(index.len(), model.len());
                assert_eq!(index.first(), model.front().map(|(l, _)| l.index()));
                assert_eq!(index.last(), model.back().map(|(l, _)| *l));
                let got: Vec<_> = index.iter_from(0).collect();
                assert_eq!(got, Vec::from(model.clone()));
                if let Some((l, _)) = model.get(model.len() / 2) {
                    assert_eq!(index.position(l.index()), Some(model.len() / 2));
                }
                assert_eq!(index.position(at), None);
            }
        }
    }

    #[test]
    fn an_entry_out_of_order_is_refused() {
        let mut index = EntryIndex::default();
        index.push(id(1, 5), place(5)).unwrap();
        assert!(index.push(id(1, 7), place(7)).is_err());
        assert!(index.push(id(1, 5), place(5)).is_err());
        index.push(id(2, 6), place(6)).unwrap();
        assert_eq!(index.last(), Some(id(2, 6)));
    }

    #[test]
    fn a_million_entries_take_8_bytes_each() {
        let mut index = EntryIndex::default();
        for i in 1..=1_000_000u64 {
            index.push(id(1 + i / 100_000, i), place(i % 1000)).unwrap();
        }
        assert!(
            index.heap_bytes() <= 1_000_000 * 8 * 2,
            "{}",
            index.heap_bytes()
        );
        assert_eq!(std::mem::size_of::<Place>(), 8);
    }
}
