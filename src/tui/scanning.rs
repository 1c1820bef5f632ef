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
//!
//! A first count stopped says how far it got (`3 keys in the first 80,000
//! (stopped)`), and the list then keeps to those keys (`Pager::upto`):
//! moving, `g`, `G`, seeking and live changes past them would show matches
//! the count never saw. The page's read may be ahead of the count when
//! `Esc` comes (they take turns, a step each), or the list may show keys
//! past it: the count first reads on to the list's last key, a step or
//! so, so that both stop at one place and one number of keys read is
//! shown. Until `r`, the count follows the changes the list takes in.

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
    /// The last key read (empty: none yet).
    edge: Vec<u8>,
    /// `Esc` came while the list had read past `edge`: the count reads on
    /// to this key, then stops there.
    stop_at: Option<Vec<u8>>,
}

impl App {
    /// Shows only the keys that pass `filter` (all keys for `None`).
    pub(super) fn set_filter(&mut self, filter: Option<Filter>) {
        let shown = filter.as_ref().map(Filter::display);
        let pattern = filter.as_ref().is_some_and(|f| f.glob().is_some());
        self.pager.filter = filter;
        self.matched = None;
        self.counting = None;
        self.pager.upto = None;
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
            edge: Vec::new(),
            stop_at: None,
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
            Some(edge) => {
                c.edge.clone_from(&edge);
                if c.stop_at.as_ref().is_some_and(|at| edge >= *at) {
                    return self.stop_count();
                }
                return self.count_step(Some(edge));
            }
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

    /// `Esc` while a pattern is read: both reads stop (see the module doc).
    pub(super) fn stop_scanning(&mut self) {
        let page = self.pager.stop_scan();
        let first = self.matched.is_none();
        match &mut self.counting {
            // A second Esc while the count reads on to the list: at once.
            Some(c) if !c.stopped && c.stop_at.is_some() => self.stop_count(),
            Some(c) if !c.stopped && first => {
                let reach = self.pager.reach(page.as_ref(), &c.edge);
                if reach > c.edge {
                    c.stop_at = Some(reach);
                } else {
                    self.stop_count();
                }
            }
            // Counting again after a count that finished: that one stays.
            Some(c) => c.stopped = true,
            None => {}
        }
        // The selection stays where it is (or on nothing): its value.
        self.sync_value();
        // The number of keys read is the status bar's (and the list's).
        let shown = self.pager.filter.as_ref().map(Filter::display);
        self.info_with_short(
            format!(
                "stopped reading the keys for {}; r reads on, Esc clears the filter",
                shown.unwrap_or_default(),
            ),
            "r reads on, Esc clears the filter",
        );
    }

    /// Stops the count where it got to; the list keeps to the keys read.
    fn stop_count(&mut self) {
        let Some(c) = &mut self.counting else {
            return;
        };
        c.stopped = true;
        c.stop_at = None;
        let (edge, matched) = (c.edge.clone(), c.matched);
        let rows = self.rows();
        let reread = self.pager.keep_to(edge, matched, rows);
        self.outbox.extend(reread);
        self.sync_value();
    }

    /// The list's reads and count keep to the keys read before `Esc`.
    pub(super) fn kept_to_keys_read(&self) -> Option<&Counting> {
        self.counting
            .as_ref()
            .filter(|c| c.stopped && self.pager.upto.is_some())
    }

    /// Takes a change into the list (see `Pager::change`); while the list
    /// keeps to the keys read, the count follows what it takes in, as
    /// nothing counts again until `r`. Returns whether the list changed.
    pub(super) fn list_change(&mut self, key: &[u8], deleted: bool) -> bool {
        let rows = self.rows();
        let changed = self.pager.change(key, deleted, rows);
        let kept = self.pager.upto.is_some();
        if let Some(c) = self
            .counting
            .as_mut()
            .filter(|c| c.stopped && kept && changed)
        {
            c.matched = match deleted {
                true => c.matched.saturating_sub(1),
                false => c.matched + 1,
            };
        }
        changed
    }

    /// The list's text when it is empty after a stop, if it is one.
    pub(super) fn stopped_text(&self) -> Option<String> {
        if let Some(c) = self.kept_to_keys_read() {
            return Some(match (c.read, c.matched) {
                (0, _) => "(no key read; r reads on)".to_string(),
                (read, 0) => format!(
                    "(no match in the {} keys read; r reads on)",
                    thousands(read)
                ),
                _ => "(stopped; r reads on)".to_string(),
            });
        }
        let read = self.pager.stopped?;
        Some(format!(
            "(no match in the {} keys read; r reads on)",
            thousands(read)
        ))
    }

    /// The status bar's count of a filter's matches.
    pub(super) fn matched_text(&self) -> String {
        let plural = |n: u64| if n == 1 { "key" } else { "keys" };
        match (self.matched, &self.counting) {
            // An unclosed `[` took the rest of the pattern (audit).
            (Some((0, _)), _)
                if self
                    .pager
                    .filter
                    .as_ref()
                    .and_then(|f| f.glob())
                    .is_some_and(|g| g.has_unclosed_class()) =>
            {
                "no keys match (a [ without ] takes the rest; \\[ is a [)".to_string()
            }
            (Some((0, _)), _) => "no keys match".to_string(),
            (Some((n, more)), _) => {
                let plus = if more { "+" } else { "" };
                format!("{}{plus} {}", thousands(n), plural(n))
            }
            // The list keeps to the keys read (see the module doc).
            (None, Some(c)) if c.stopped && c.read == 0 => "no key read (stopped)".to_string(),
            (None, Some(c)) if c.stopped && c.matched == 0 => {
                format!("no match in the first {} (stopped)", thousands(c.read))
            }
            (None, Some(c)) if c.stopped => format!(
                "{} {} in the first {} (stopped)",
                thousands(c.matched),
                plural(c.matched),
                thousands(c.read),
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
/// `App::seek_landed`): `outside` when the filter leaves that key out;
/// `none` when there is no key to show at all (in the filter).
pub(super) fn seek_message(
    filter: Option<&Filter>,
    target: &[u8],
    first: Option<&Vec<u8>>,
    kept: bool,
    none: bool,
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
        None if none && filter.is_some() => {
            format!("no key{within} at or after {shown}: the filter matches no key")
        }
        None if none => format!("no key at or after {shown}: there are no keys"),
        // The list keeps to the keys read before a stop: more may follow.
        None if kept => format!(
            "no key{within} at or after {shown} in the keys read before the stop (r reads on); \
             showing the last one"
        ),
        None => format!("no key{within} at or after {shown}; showing the last key"),
        Some(first) if first.as_slice() != target => format!(
            "no key {shown}; showing the next key{within}, {}",
            display_key(first)
        ),
        Some(_) => return None,
    })
}
