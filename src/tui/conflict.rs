//! A save that met a conflict, as `App` methods: the key was changed,
//! deleted or created (or expired) since the edit began, so the write,
//! conditional on the revision the edit started from, was refused. The
//! typed text is never dropped for it. A dialog shows what the key holds
//! now (read once the write is refused, and again when the live feed says
//! it changed) and the user chooses: `o` overwrites it with their text, in
//! a write conditional on the revision shown, so a change made after that
//! is caught in turn; `r` drops their text for the stored value, after a
//! `y`; `e`, Enter or Esc go back to their text, whose next save meets the
//! same check.

use super::action::Action;
use super::app::{App, Mode};
use super::editor::{EditJob, TextArea};
use super::keys::display_key;
use super::live::Change;
use super::preview::preview;
use super::worker::Request;
use crate::Result;
use crate::types::Entry;

/// Lines of the stored value the dialog shows.
pub const SHOWN_LINES: usize = 4;

/// The dialog's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The refused edit; its draft is the text that was refused.
    pub job: EditJob,
    /// The built-in editor to go back to (None after `$EDITOR`).
    pub area: Option<TextArea>,
    /// What the key holds now.
    pub now: Now,
    /// `r` was pressed: the dialog asks before the text goes.
    pub reload_asked: bool,
}

/// What the key holds now, as far as known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Now {
    /// Being read; the revision the refusal named (None: absent).
    Reading(Option<u64>),
    Stored {
        revision: u64,
        bytes: Vec<u8>,
        /// When it expires (Unix ms): gone after that, it expired.
        expires_at_ms: Option<u64>,
        /// The first [`SHOWN_LINES`] lines of its preview (none for a
        /// binary value), and whether it has more.
        lines: Vec<String>,
        more: bool,
    },
    /// Absent: deleted by someone, or `expired` (its expiry had passed).
    Gone { expired: bool },
    /// The read failed; the revision the refusal named.
    Failed {
        revision: Option<u64>,
        error: String,
    },
}

impl Now {
    /// The revision an overwrite is conditional on: the one shown (0: the
    /// key must still be absent); None while the first read is out.
    pub fn revision(&self) -> Option<u64> {
        match self {
            Now::Reading(_) => None,
            Now::Stored { revision, .. } => Some(*revision),
            Now::Gone { .. } => Some(0),
            Now::Failed { revision, .. } => Some(revision.unwrap_or(0)),
        }
    }

    /// When the value shown expires, if it does.
    pub fn expires_at_ms(&self) -> Option<u64> {
        match self {
            Now::Stored { expires_at_ms, .. } => *expires_at_ms,
            _ => None,
        }
    }

    /// The revision the dialog names (None: absent, or not known).
    fn named(&self) -> Option<u64> {
        match self {
            Now::Reading(r) | Now::Failed { revision: r, .. } => *r,
            Now::Stored { revision, .. } => Some(*revision),
            Now::Gone { .. } => None,
        }
    }
}

/// Whether the expiry `at` (Unix ms) of the value last seen has passed: a
/// key gone after that expired rather than being deleted by someone (with
/// `--db` nobody else can delete it).
fn passed(at: Option<u64>) -> bool {
    at.is_some_and(|at| at <= crate::types::now_ms())
}

/// How the key changed, for the status line: "was changed by someone
/// else (now at revision 7)"; gone, whether it `expired`.
fn how(job: &EditJob, current: Option<u64>, expired: bool) -> String {
    match current {
        Some(r) if job.revision == 0 => format!("was created by someone else (revision {r})"),
        Some(r) => format!("was changed by someone else (now at revision {r})"),
        None if expired => "expired".to_string(),
        None => "was deleted by someone else".to_string(),
    }
}

impl App {
    /// A save of `job` was refused: the key is at revision `current` now
    /// (None: absent). The dialog opens on the text, unless something else
    /// has the keyboard: then the text waits for `e` on the key.
    pub(super) fn save_conflict(&mut self, job: EditJob, current: Option<u64>) {
        let shown = display_key(&job.key);
        let how = how(&job, current, passed(job.expires_at_ms));
        // A first `q` pressed before this text was held is no yes to
        // dropping it.
        self.quit_armed = false;
        if self.mode != Mode::Browse {
            self.error(format!(
                "{shown} {how}; your edit was not written: press e on {shown} to go back to it"
            ));
            self.unsaved = Some(job);
            return;
        }
        self.error(format!("{shown} {how}; your edit is kept, not written"));
        self.outbox.push(Request::Current {
            key: job.key.clone(),
        });
        // The status bar's revision is behind, too.
        self.request_counts();
        let area = match (&self.config.editor, String::from_utf8(job.start_text())) {
            (None, Ok(text)) => Some(TextArea::reopened(&text, job.cursor)),
            _ => None,
        };
        self.mode = Mode::Conflict(Box::new(Conflict {
            job,
            area,
            now: Now::Reading(current),
            reload_asked: false,
        }));
    }

    /// What the key of the open conflict holds now. When it changed since
    /// the status line said how it stood, the status line follows.
    pub(super) fn conflict_read(&mut self, key: Vec<u8>, result: Result<Option<Entry>>) {
        let theme = self.config.theme;
        let Mode::Conflict(c) = &mut self.mode else {
            return;
        };
        if c.job.key != key {
            return;
        }
        let said = c.now.named();
        c.now = match result {
            Ok(Some(entry)) => {
                let all = preview(&entry.value, theme).lines;
                let lines = all.iter().take(SHOWN_LINES).map(ToString::to_string);
                Now::Stored {
                    revision: entry.revision,
                    expires_at_ms: entry.expires_at_ms,
                    lines: lines.collect(),
                    more: all.len() > SHOWN_LINES,
                    bytes: entry.value,
                }
            }
            // Gone: expired if the value last seen (shown, else the one
            // the write was conditional on) had an expiry now passed.
            Ok(None) => Now::Gone {
                expired: passed(match &c.now {
                    Now::Stored { expires_at_ms, .. } => *expires_at_ms,
                    _ => c.job.expires_at_ms,
                }),
            },
            Err(e) => Now::Failed {
                revision: said,
                error: e.to_string(),
            },
        };
        if c.now.named() != said {
            let expired = matches!(c.now, Now::Gone { expired: true });
            let how = how(&c.job, c.now.named(), expired);
            let news = format!("{} {how}", display_key(&key));
            // A first `q` was asked about the text before this news.
            self.quit_armed = false;
            self.error(format!("{news}; your edit is kept, not written"));
        }
    }

    /// The live feed saw `changes` (or, with `all`, more than it holds):
    /// if one may be to the key of the open conflict, read it again. What
    /// was shown stays until the answer comes; an overwrite meanwhile is
    /// conditional on it, so it cannot replace a value nobody was shown.
    pub(super) fn conflict_changed(&mut self, all: bool, changes: &[Change]) {
        if let Mode::Conflict(c) = &self.mode
            && (all || changes.iter().any(|change| change.key == c.job.key))
        {
            let key = c.job.key.clone();
            self.outbox.push(Request::Current { key });
        }
    }

    /// A key press in the dialog: `o` (Submit) overwrites, `r` (Refresh)
    /// asks whether to drop the text, Cancel goes back to the text. While
    /// it asks, `y` (Submit) drops it and anything else does not.
    pub(super) fn conflict(&mut self, mut c: Box<Conflict>, action: Action) {
        match (action, c.reload_asked) {
            (Action::Submit, true) => self.reload(*c),
            (_, true) => {
                c.reload_asked = false;
                self.info("your text is kept");
                self.mode = Mode::Conflict(c);
            }
            (Action::Submit, false) => self.overwrite(c),
            (Action::Refresh, false) => {
                c.reload_asked = true;
                self.mode = Mode::Conflict(c);
            }
            (Action::Cancel, false) => self.edit_again(*c),
            (_, false) => self.mode = Mode::Conflict(c),
        }
    }

    /// Writes the text over what the key holds now, conditional on the
    /// revision shown. Its JSON layout is decided as for any save, by the
    /// value the edit started from.
    fn overwrite(&mut self, c: Box<Conflict>) {
        let shown = display_key(&c.job.key);
        let Some(revision) = c.now.revision() else {
            self.info(format!("still reading what {shown} holds now; a moment"));
            self.mode = Mode::Conflict(c);
            return;
        };
        let Conflict { mut job, now, .. } = *c;
        // A refusal of this write is about the value it replaces: if that
        // had an expiry that passed, the key expired.
        job.expires_at_ms = now.expires_at_ms();
        let text = job.start_text();
        let value = job.stored(text.clone());
        if matches!(&now, Now::Stored { bytes, .. } if *bytes == value) {
            self.info(format!(
                "{shown} already holds your text (revision {revision}); nothing written"
            ));
            return self.show_stored(job.key);
        }
        self.info(match revision {
            0 => format!("saving {shown} again…"),
            r => format!("saving {shown} over revision {r}…"),
        });
        self.outbox.push(Request::Put {
            key: job.key.clone(),
            value,
            if_revision: revision,
        });
        // As for any save: a refusal or failure gives the text back.
        job.draft = Some(text);
        self.saving = Some(job);
    }

    /// Back to the text: the built-in editor as it was, or `$EDITOR` on it.
    /// The edit still starts from the revision it started from, so saving
    /// it meets the same check and asks again.
    fn edit_again(&mut self, c: Conflict) {
        let shown = display_key(&c.job.key);
        self.info(format!(
            "back to your edit; {shown} changed meanwhile: a save asks again (o overwrites)"
        ));
        match c.area {
            Some(area) => {
                self.mode = Mode::Editor { job: c.job, area };
            }
            None => self.pending_edit = Some(c.job),
        }
    }

    /// Drops the text and shows what the key holds now.
    fn reload(&mut self, c: Conflict) {
        let key = c.job.key;
        let shown = display_key(&key);
        if let Now::Gone { .. } = c.now {
            self.info(format!("dropped your edit; {shown} no longer exists"));
            // The list too: the key stayed in it, "no longer exists (press
            // r to refresh)" (found by an audit).
            return self.reread_at(Some(key));
        }
        self.info(format!("dropped your edit; showing {shown} as stored now"));
        self.show_stored(key);
    }

    /// Reads `key`'s value again into the pane, selecting the key (or the
    /// one after it, if it is gone) when another one is selected.
    fn show_stored(&mut self, key: Vec<u8>) {
        if self.value.key.as_deref() == Some(key.as_slice()) {
            self.value_stale = true;
            self.sync_value();
        } else {
            let jump = self.pager.jump_top(Some(key));
            self.outbox.push(jump);
        }
    }
}
