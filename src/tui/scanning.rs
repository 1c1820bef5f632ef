//! [`App`]'s side of the filter: setting it, and for a pattern (see
//! `filter.rs`) counting its matches in steps and stopping its reads.
//!
//! A pattern's count reads the keys of its literal prefix [`SCAN_BATCH`]
//! at a time, as its pages are read (`pager.rs`), so other calls wait one
//! step at most and the status bar shows how far it got. A count asked for
//! while one is out (live changes, a save) is made once that one is in,
//! the number shown meanwhile staying the last one known: restarting on
//! every change would never finish on a busy store. `Esc` stops both reads;
//! what they found stays, and `r` reads again.

use super::app::App;
use super::filter::Filter;
use super::keys::display_key;
use super::view::thousands;
use super::worker::{COUNT_LIMIT, Request, SCAN_BATCH, ScanStep};
use crate::error::Result;
use crate::types::RangeQuery;

/// A pattern's count in steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counting {
    /// Names its steps: answers of an older count are dropped.
    pub id: u64,
    /// Matches and keys read so far.
    pub matched: u64,
    pub read: u64,
    /// Another count was asked for while this one was out.
    again: bool,
    /// Stopped by `Esc` before the end.
    pub stopped: bool,
}

impl App {
    /// Shows only the keys that pass `filter` (all keys for `None`).
    pub(super) fn set_filter(&mut self, filter: Option<Filter>) {
        let shown = filter.as_ref().map(Filter::display);
        let pattern = filter.as_ref().is_some_and(|f| f.glob().is_some());
        self.pager.filter = filter;
        self.matched = None;
        self.counting = None;
        self.info(match (&self.pager.filter, shown) {
            (Some(f), Some(shown)) => format!("filter: keys {} {shown} (Esc clears it)", f.verb()),
            _ => "filter cleared: all keys".to_string(),
        });
        // Cleared, the list stays on the selected key (every key it showed
        // is among all keys); a new filter starts at its first match.
        let jump = match self.pager.filter {
            None => {
                let current = self.pager.current().map(<[u8]>::to_vec);
                self.pager.reload_at(current)
            }
            Some(_) => self.pager.jump_top(None),
        };
        if pattern {
            // Its first match may be far: the keys of the filter before
            // must not stand under its title meanwhile.
            self.pager.keys.clear();
            (self.pager.cursor, self.pager.offset) = (0, 0);
            self.sync_value();
        }
        self.outbox.push(jump);
        self.request_counts();
    }

    /// Starts counting the pattern's matches, or, while a count is out,
    /// asks for another once it is in.
    pub(super) fn count_matches(&mut self) {
        match &mut self.counting {
            // Stopped by Esc: only `r` or another filter counts again (a
            // busy store's changes would start it over and over).
            Some(c) if c.stopped => {}
            Some(c) => c.again = true,
            None => self.start_count(),
        }
    }

    fn start_count(&mut self) {
        self.count_id += 1;
        let counting = Counting {
            id: self.count_id,
            matched: 0,
            read: 0,
            again: false,
            stopped: false,
        };
        self.counting = Some(counting);
        self.count_step(None);
    }

    /// Asks for the count's step after `edge` (None: the first).
    fn count_step(&mut self, edge: Option<Vec<u8>>) {
        let Some(filter) = &self.pager.filter else {
            return;
        };
        let (Some(glob), Some(c)) = (filter.glob(), &self.counting) else {
            return;
        };
        let prefix = filter.scan_prefix();
        let query = RangeQuery {
            start: edge.map(|mut e| {
                e.push(0);
                e
            }),
            prefix: (!prefix.is_empty()).then_some(prefix),
            limit: Some(SCAN_BATCH),
            keys_only: true,
            ..RangeQuery::default()
        };
        self.outbox.push(Request::CountMatches {
            id: c.id,
            query,
            glob: glob.clone(),
        });
    }

    /// A step of the count came: on to the next, or the count is known
    /// (up to [`COUNT_LIMIT`], as a prefix's).
    pub(super) fn counted(&mut self, id: u64, result: Result<ScanStep>) {
        let Some(c) = self.counting.as_mut().filter(|c| c.id == id && !c.stopped) else {
            return;
        };
        let step = match result {
            Ok(step) => step,
            Err(e) => {
                self.counting = None;
                return self.read_error(format!("cannot count the keys: {e}"));
            }
        };
        c.matched += step.matched;
        c.read += step.read;
        let done = match step.next {
            _ if c.matched > COUNT_LIMIT => (COUNT_LIMIT, true),
            None => (c.matched, false),
            Some(edge) => return self.count_step(Some(edge)),
        };
        let again = c.again;
        self.matched = Some(done);
        self.counting = None;
        if again {
            self.start_count();
        }
    }

    /// Whether a pattern's page or count is being read.
    pub(super) fn scanning(&self) -> bool {
        self.pager.scanning().is_some() || self.counting.as_ref().is_some_and(|c| !c.stopped)
    }

    /// `Esc` while a pattern is read: both reads stop where they are.
    pub(super) fn stop_scanning(&mut self) {
        self.pager.stop_scan();
        if let Some(c) = &mut self.counting {
            c.stopped = true;
        }
        // The selection stays where it is (or on nothing): its value.
        self.sync_value();
        // No count of keys read here: the page and the count stop at
        // different places, and the list says how far its own read got.
        let shown = self.pager.filter.as_ref().map(Filter::display);
        self.info(format!(
            "stopped reading the keys for {}; r reads on, Esc clears the filter",
            shown.unwrap_or_default(),
        ));
    }

    /// The status bar's count of a filter's matches.
    pub(super) fn matched_text(&self) -> String {
        let plural = |n: u64| if n == 1 { "key" } else { "keys" };
        match (self.matched, &self.counting) {
            (Some((0, _)), _) => "no keys match".to_string(),
            (Some((n, more)), _) => {
                let plus = if more { "+" } else { "" };
                format!("{}{plus} {}", thousands(n), plural(n))
            }
            // A lower bound: moving on (`G`, past the last match) or a
            // live change may show matches past where the count stopped.
            (None, Some(c)) if c.stopped && c.matched == 0 => {
                "no match counted (stopped; r counts)".to_string()
            }
            (None, Some(c)) if c.stopped => format!(
                "at least {} {} (stopped; r counts)",
                thousands(c.matched),
                plural(c.matched),
            ),
            (None, Some(c)) => format!(
                "scanning… {} keys read, {} match",
                thousands(c.read),
                thousands(c.matched)
            ),
            (None, None) => "counting…".to_string(),
        }
    }
}

/// The seek's message when it did not land on its key (see
/// `App::seek_landed`): `outside` when the filter leaves that key out.
pub(super) fn seek_message(
    filter: Option<&Filter>,
    target: &[u8],
    first: Option<&Vec<u8>>,
) -> Option<String> {
    let shown = display_key(target);
    let within = match filter {
        Some(f) => format!(" {} {}", f.verb(), f.display()),
        None => String::new(),
    };
    let outside = filter.filter(|f| !f.matches(target));
    Some(match first {
        // The key may exist: the filter leaves it out, not the store.
        Some(first) if let Some(f) = outside => match f {
            Filter::Prefix(_) => format!(
                "{shown} does not start with the filter, {} (Esc clears it); showing its first key, {}",
                f.display(),
                display_key(first)
            ),
            Filter::Glob(_) => format!(
                "{shown} does not match the filter, {} (Esc clears it); showing the next key that does, {}",
                f.display(),
                display_key(first)
            ),
        },
        None => format!("no key{within} at or after {shown}; showing the last key"),
        Some(first) if first.as_slice() != target => format!(
            "no key {shown}; showing the next key{within}, {}",
            display_key(first)
        ),
        Some(_) => return None,
    })
}
