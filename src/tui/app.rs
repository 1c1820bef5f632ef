//! The browser's state and [`App::update`], which gives each [`Action`] its
//! meaning. Nothing here does I/O: calls on the source are queued in
//! `outbox` for the worker, their answers come back through
//! [`App::receive`] (in `respond.rs`), and an external edit is handed to the
//! run loop through `pending_edit`, because only it owns the terminal.

use ratatui::layout::Rect;

use super::action::{Action, KeyMode, Move};
use super::conflict::Conflict;
use super::editor::{EditJob, TextArea};
use super::filter::Filter;
use super::follow::LiveStatus;
use super::keys::{display_key, parse_key};
use super::pager::Pager;
use super::preview::{Kind, Preview, hex_line_count, hex_rows_per_line, hex_width};
use super::scanning::Counting;
use super::theme::Theme;
use super::view;
use super::worker::Request;
use super::wrap;
use crate::limits::MAX_KEY_BYTES;
use crate::types::Stats;

/// Settings fixed for a session.
#[derive(Debug, Clone)]
pub struct Config {
    pub theme: Theme,
    /// `$VISUAL` / `$EDITOR`; `None` selects the built-in editor.
    pub editor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Keys,
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Seek,
    Filter,
    NewKey,
}

/// An edit or delete asked for before the value arrived; it goes ahead
/// when the value of that key does (typing `jd` fast must not be lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Edit,
    Delete,
}

/// What has the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Browse,
    /// `scroll`: the help's first row in view, when it does not fit.
    Help {
        scroll: usize,
    },
    Prompt {
        kind: PromptKind,
        input: TextArea,
    },
    Confirm {
        key: Vec<u8>,
        /// The revision asked about: `y` deletes only that one.
        revision: u64,
        /// When the key expires, Unix milliseconds: a delete that finds it
        /// gone after that says it expired, not that someone deleted it.
        expires_at_ms: Option<u64>,
        /// What became of the key while the dialog was open (the value
        /// pane behind shows a change; the feed says a delete, which
        /// moves the cursor on): the dialog says so.
        now: Option<Meanwhile>,
    },
    Editor {
        job: EditJob,
        area: TextArea,
    },
    /// Saving found invalid JSON where JSON was expected: `error` says
    /// where; keep editing or save as text. `area` is the built-in
    /// editor's (None after `$EDITOR`, whose text is the job's draft).
    InvalidJson {
        job: EditJob,
        area: Option<TextArea>,
        error: String,
    },
    /// A save was refused because the key changed since the edit began:
    /// the text is kept while the user chooses (see `conflict.rs`).
    Conflict(Box<Conflict>),
}

/// What became of a key while its delete dialog was open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meanwhile {
    /// Changed: its revision now. `y` is refused.
    Changed(u64),
    /// Deleted by someone else, or `expired`: nothing is left to delete.
    Deleted { expired: bool },
}

/// The value pane's content.
#[derive(Debug, Clone, Default)]
pub enum ValueState {
    /// No key selected.
    #[default]
    Empty,
    Loading,
    /// The key is gone (deleted since the list was read).
    Missing,
    Loaded {
        revision: u64,
        bytes: Vec<u8>,
        preview: Preview,
        /// When the key expires, Unix milliseconds.
        expires_at_ms: Option<u64>,
    },
    Failed(String),
}

/// A delete this browser asked for and has not seen the end of.
#[derive(Debug, Clone)]
pub(super) struct OwnDelete {
    pub key: Vec<u8>,
    /// The key's expiry when the delete was asked for (see [`Mode::Confirm`]).
    pub expires_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct ValuePane {
    /// The key whose value this is (or is loading).
    pub key: Option<Vec<u8>>,
    pub state: ValueState,
    /// First row shown (of the content wrapped at the pane's width).
    pub scroll: usize,
}

/// The last action's result, on the bottom line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    /// What `text` says to do, in few words, for a line too narrow for
    /// it to say that whole (see [`super::fit::fit_status`]).
    pub short: Option<String>,
    pub error: bool,
    /// A read of keys or counts failed: the next such read that succeeds
    /// clears it (a server that came back must not stay reported away).
    pub read_failed: bool,
}

/// Everything the screen shows.
pub struct App {
    pub config: Config,
    pub source: String,
    pub stats: Option<Stats>,
    pub pager: Pager,
    pub value: ValuePane,
    pub focus: Focus,
    pub mode: Mode,
    pub status: Status,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    pub quit: bool,
    /// Seconds the oldest unanswered call has waited, once that is long
    /// enough to mention; set by the session.
    pub waiting: Option<u64>,
    /// An edit for `$EDITOR`, taken by the run loop.
    pub pending_edit: Option<EditJob>,
    /// Calls for the worker, taken by the session.
    pub outbox: Vec<Request>,
    /// See [`Intent`]: the key and what to do with it.
    pub intent: Option<(Vec<u8>, Intent)>,
    /// Something wrote over the screen: the run loop draws it all again.
    pub redraw: bool,
    /// Bytes for the terminal's clipboard, taken by the run loop.
    pub clipboard: Option<Vec<u8>>,
    /// Ctrl-Z: the run loop hands the terminal to the shell (see
    /// `Host::suspend`), then draws everything again.
    pub suspend: bool,
    /// A seek the user typed: the list generation it started and its key,
    /// so that its answer can say where it landed.
    pub seek: Option<(u64, Vec<u8>)>,
    /// The edit whose write is out, its text as the draft: given back if
    /// the write fails.
    pub saving: Option<EditJob>,
    /// An edit after `$EDITOR` whose write failed: `e` on its key starts
    /// from its text.
    pub unsaved: Option<EditJob>,
    /// A new key whose absence is being checked before it is edited.
    pub creating: Option<Vec<u8>>,
    /// The text last entered at the seek and the new-key prompts: they
    /// start with it, as the filter prompt starts with the filter.
    pub last_seek: String,
    pub last_new_key: String,
    /// The keys matching the filter: how many, and whether the count
    /// stopped at its limit; None while unknown.
    pub matched: Option<(u64, bool)>,
    /// A pattern filter's count, made in steps (see `scanning.rs`).
    pub counting: Option<Counting>,
    /// The last count's id: answers to another are stale.
    pub(super) count_id: u64,
    /// Over `--server`: the live feed's state (None: a file, no feed).
    pub live: Option<LiveStatus>,
    /// A counts read for live changes is out / another is wanted after it.
    pub(super) counts_busy: bool,
    pub(super) counts_again: bool,
    /// The value shown is to be read again (`r`), even if its key stays.
    pub(super) value_stale: bool,
    /// `q` or Ctrl-C was pressed while typed text is not written (see
    /// [`App::update`]): a second one quits.
    pub(super) quit_armed: bool,
    /// A first Esc in the built-in editor over unsaved text: a second
    /// drops the text.
    pub(super) drop_armed: bool,
    /// `q` was pressed while a save was out: quit once it is written.
    pub(super) quit_when_saved: bool,
    /// The quit was a second press: nothing is waited for any more (see
    /// `Session::hold_quit`).
    pub(super) quit_at_once: bool,
    /// Why the last read of the key list failed, shown in the list while
    /// it is empty (an empty list alone reads as an empty store).
    pub keys_error: Option<String>,
    /// A key this browser asked to delete: its delete event is ours, not
    /// news for the status line.
    pub(super) own_delete: Option<OwnDelete>,
    /// With `--db` (no feed): when the next key in the file expires, so
    /// the list drops it then ([`App::reread_if_expired`]).
    pub(super) next_expiry_ms: Option<u64>,
    /// A reload for a burst of live changes: the list generation it
    /// started and the key selected then (see `App::reload_landed`).
    pub(super) reloaded_at: Option<(u64, Vec<u8>)>,
    /// The selected key someone else deleted, and when (Unix ms), until
    /// the next key press: a burst that reaches the UI in parts also
    /// deletes the keys the cursor moved on to meanwhile, but the user was
    /// on this one, so the status line keeps naming it.
    pub(super) deleted_open: Option<(Vec<u8>, u64)>,
}

impl App {
    /// A browser on `source`, with its first requests queued.
    pub fn new(source: String, config: Config, size: (u16, u16)) -> App {
        let mut app = App {
            config,
            source,
            stats: None,
            pager: Pager::default(),
            value: ValuePane::default(),
            focus: Focus::Keys,
            mode: Mode::Browse,
            status: Status::default(),
            size,
            quit: false,
            waiting: None,
            pending_edit: None,
            outbox: Vec::new(),
            intent: None,
            redraw: false,
            clipboard: None,
            suspend: false,
            seek: None,
            saving: None,
            unsaved: None,
            creating: None,
            last_seek: String::new(),
            last_new_key: String::new(),
            matched: None,
            counting: None,
            count_id: 0,
            live: None,
            counts_busy: false,
            counts_again: false,
            keys_error: None,
            value_stale: false,
            quit_armed: false,
            drop_armed: false,
            quit_when_saved: false,
            quit_at_once: false,
            own_delete: None,
            next_expiry_ms: None,
            reloaded_at: None,
            deleted_open: None,
        };
        app.outbox.push(Request::Stats);
        app.outbox.push(Request::NextExpiry);
        let first = app.pager.jump_top(None);
        app.outbox.push(first);
        app
    }

    /// How the key map should read the keyboard now.
    pub fn key_mode(&self) -> KeyMode {
        match &self.mode {
            Mode::Browse => KeyMode::Browse,
            Mode::Help { .. } => KeyMode::Help,
            Mode::Prompt { .. } => KeyMode::Prompt,
            Mode::Confirm { .. } => KeyMode::Confirm,
            Mode::Editor { .. } => KeyMode::Editor,
            Mode::InvalidJson { .. } => KeyMode::InvalidJson,
            Mode::Conflict(c) if c.reload_asked => KeyMode::Confirm,
            Mode::Conflict(_) => KeyMode::Conflict,
        }
    }

    /// Rows of keys (and of value lines) on screen.
    pub fn rows(&self) -> usize {
        let areas = view::areas(Rect::new(0, 0, self.size.0, self.size.1), false);
        usize::from(areas.list.height.saturating_sub(2)).max(1)
    }

    pub(super) fn info(&mut self, text: impl Into<String>) {
        self.status = Status {
            text: text.into(),
            short: None,
            error: false,
            read_failed: false,
        };
    }

    /// [`App::info`] with a `short` form (see [`Status::short`]).
    pub(super) fn info_with_short(&mut self, text: impl Into<String>, short: &str) {
        self.info(text);
        self.status.short = Some(short.to_string());
    }

    pub(super) fn error(&mut self, text: impl Into<String>) {
        self.status = Status {
            text: text.into(),
            short: None,
            error: true,
            read_failed: false,
        };
    }

    /// An error of a read of keys or counts; see [`Status::read_failed`].
    pub(super) fn read_error(&mut self, text: impl Into<String>) {
        self.error(text);
        self.status.read_failed = true;
    }

    /// `e`, `d` or `y` on a key whose value could not be read: a read
    /// that works later takes the note back, as for [`App::read_error`].
    pub(super) fn value_unread(&mut self) {
        self.info("the value could not be read; press r to refresh");
        self.status.read_failed = true;
    }

    /// A read of keys or counts worked: an error left by a failed one is
    /// no longer true.
    pub(super) fn read_worked(&mut self) {
        if self.status.read_failed {
            self.info("");
        }
    }

    /// Applies one action.
    pub fn update(&mut self, action: Action) {
        if let Action::Resize(w, h) = action {
            // Rows change with the width: a value scrolled to its end
            // stays there, any other stays within it.
            let at_end = self.value.scroll > 0 && self.value.scroll >= self.max_scroll();
            self.size = (w, h);
            let rows = self.rows();
            self.pager.scroll_into_view(rows);
            let max = self.max_scroll();
            self.value.scroll = if at_end {
                max
            } else {
                self.value.scroll.min(max)
            };
            return;
        }
        if action == Action::Suspend {
            // Whatever is open stays open for when the shell gives it back.
            self.suspend = true;
            return;
        }
        self.deleted_open = None;
        let editing = matches!(
            self.mode,
            Mode::Editor { .. } | Mode::InvalidJson { .. } | Mode::Conflict(_)
        );
        let armed = std::mem::take(&mut self.quit_armed);
        if action != Action::Quit {
            // Anything else takes back a `q` that waits for a save, and a
            // first `q` or Ctrl-C: its warning ("… again quits") goes too.
            self.quit_when_saved = false;
            if armed {
                self.info("");
            }
        }
        if action == Action::Quit {
            return self.quit_asked(editing, armed);
        }
        match std::mem::replace(&mut self.mode, Mode::Browse) {
            Mode::Browse => self.browse(action),
            Mode::Help { scroll } => self.help(scroll, action),
            Mode::Prompt { kind, input } => self.prompt(kind, input, action),
            Mode::Confirm {
                key,
                revision,
                expires_at_ms,
                ..
            } => self.confirm(key, revision, expires_at_ms, action),
            Mode::Editor { job, area } => self.builtin_editor(job, area, action),
            Mode::InvalidJson { job, area, error } => self.invalid_json(job, area, error, action),
            Mode::Conflict(c) => self.conflict(c, action),
        }
    }

    /// The key whose typed text is not written yet, if any: an open editor
    /// or dialog over changed text, an edit kept after a refused or failed
    /// save. What a signal that ends the browser drops.
    pub fn text_at_risk(&self) -> Option<String> {
        match &self.mode {
            Mode::Editor { job, area } if area.text().into_bytes() != job.text() => {
                return Some(display_key(&job.key));
            }
            Mode::InvalidJson { job, .. } => return Some(display_key(&job.key)),
            Mode::Conflict(c) => return Some(display_key(&c.job.key)),
            _ => {}
        }
        // A save still out is given its grace at shutdown: not counted.
        self.unsaved.as_ref().map(|job| display_key(&job.key))
    }

    /// `q` or Ctrl-C. Text typed and not written yet (an open editor or
    /// dialog, an edit kept after a refused or failed save) asks for a
    /// second press first, which says how to get back to it; a save still
    /// out is waited for (a second press quits without waiting).
    fn quit_asked(&mut self, editing: bool, armed: bool) {
        if armed {
            self.quit = true;
            self.quit_at_once = true;
            return;
        }
        let held = |job: &EditJob| display_key(&job.key);
        let why = if editing {
            match self.mode {
                Mode::Conflict(_) => {
                    "Ctrl-C again quits and drops this edit; o overwrites, e edits on".to_string()
                }
                Mode::InvalidJson { .. } => "Ctrl-C again quits and drops this edit; t saves it \
                                             as text, e edits on, d drops it"
                    .to_string(),
                _ => {
                    "Ctrl-C again quits and drops this edit; Ctrl-S saves, Esc cancels".to_string()
                }
            }
        } else if let Some(job) = &self.saving {
            self.quit_when_saved = true;
            format!(
                "waiting for the save of {} to finish, then quitting; q or Ctrl-C again quits now (the edit may be lost)",
                held(job)
            )
        } else if let Some(job) = &self.unsaved {
            let shown = held(job);
            format!(
                "your edit of {shown} is not written: q or Ctrl-C again quits and drops it; e on {shown} goes back to it"
            )
        } else {
            self.quit = true;
            return;
        };
        // The typed text would go with it: ask for a second press.
        self.quit_armed = true;
        self.info(why);
    }

    /// A key press that means nothing in the current mode: like any other
    /// input it takes back a first `q` or Ctrl-C, and its warning. Returns
    /// whether that changed the screen.
    pub fn key_without_action(&mut self) -> bool {
        self.quit_when_saved = false;
        if std::mem::take(&mut self.quit_armed) {
            self.info("");
            return true;
        }
        false
    }

    /// Pasted text (bracketed paste): typed into a prompt or the built-in
    /// editor; anywhere else it is dropped, since as key presses it would
    /// run commands (`d`, then `y`, deletes the key).
    pub fn paste(&mut self, text: &str) {
        // Like any other input, it takes back a first `q` (see `update`).
        self.quit_armed = false;
        self.quit_when_saved = false;
        let size = (self.editor_columns(), self.rows());
        let edit_area = match &mut self.mode {
            Mode::Prompt { input, .. } => Some((input, None)),
            Mode::Editor { area, .. } => Some((area, Some(size))),
            _ => None,
        };
        let Some((area, wrapped)) = edit_area else {
            return self.info(match self.mode {
                Mode::Browse => "paste ignored here (open the editor with e)",
                _ => "paste ignored here",
            });
        };
        // Line ends as a terminal sends them (CR, or CRLF) become newlines;
        // a prompt takes one line. From the rows as drawn, as for typing.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        if let Some((cols, rows)) = wrapped {
            area.top = area.view_top(cols, rows);
        }
        area.insert_text(&text);
        if let Some((cols, rows)) = wrapped {
            area.top = area.view_top(cols, rows);
        }
    }

    fn browse(&mut self, action: Action) {
        let on_selected = matches!(action, Action::Edit | Action::Delete | Action::Copy(_));
        if on_selected && let Some(why) = self.selection_moving() {
            return self.info(why);
        }
        match action {
            Action::Move(m) if self.focus == Focus::Keys => self.move_cursor(m),
            Action::Move(m) => self.scroll_value(m),
            Action::ToggleFocus => {
                self.focus = match self.focus {
                    Focus::Keys => Focus::Value,
                    Focus::Value => Focus::Keys,
                }
            }
            Action::Seek => self.prompt_for(PromptKind::Seek, &self.last_seek.clone()),
            Action::Filter => {
                let current = self.pager.filter.as_ref().map(Filter::display);
                self.prompt_for(PromptKind::Filter, &current.unwrap_or_default());
            }
            Action::New => self.prompt_for(PromptKind::NewKey, &self.last_new_key.clone()),
            Action::Refresh => self.refresh(),
            Action::Edit => self.start_edit(),
            Action::Delete => self.ask_delete(),
            Action::Copy(what) => self.copy(what),
            Action::Help => self.mode = Mode::Help { scroll: 0 },
            // Esc never quits: one too many after a prompt must not end
            // the session. It stops a pattern's reads; with a filter on
            // (and none out) it clears the filter.
            Action::Cancel if self.scanning() => self.stop_scanning(),
            Action::Cancel if self.pager.filter.is_some() => self.set_filter(None),
            Action::Cancel => self.info("q quits"),
            _ => {}
        }
    }

    /// Why the selected key is about to change, if it is: a key typed
    /// then (a paste ahead of it, or a slow source) would act on the key
    /// that is going, not the one the user is moving to.
    fn selection_moving(&self) -> Option<String> {
        if let Some(key) = &self.creating {
            return Some(format!(
                "still checking whether {} exists",
                display_key(key)
            ));
        }
        self.pager
            .jumping
            .then(|| "still reading the keys to select; try again".to_string())
    }

    /// A prompt holding `text`, selected: typing replaces it.
    fn prompt_for(&mut self, kind: PromptKind, text: &str) {
        self.mode = Mode::Prompt {
            kind,
            input: TextArea::prompt(text),
        };
    }

    fn move_cursor(&mut self, m: Move) {
        let rows = self.rows();
        let page = rows.saturating_sub(1).max(1) as isize;
        let request = match m {
            Move::Up => self.pager.move_by(-1, rows),
            Move::Down => self.pager.move_by(1, rows),
            Move::PageUp => self.pager.move_by(-page, rows),
            Move::PageDown => self.pager.move_by(page, rows),
            Move::First if self.pager.head_done => self.pager.move_by(isize::MIN, rows),
            Move::First => Some(self.pager.jump_top(None)),
            Move::Last if self.pager.tail_done => self.pager.move_by(isize::MAX, rows),
            Move::Last => Some(self.pager.jump_bottom()),
        };
        self.outbox.extend(request);
        self.sync_value();
    }

    /// Without a change feed (`--db`): once the selected key's expiry, or
    /// the next expiry in the file, has passed on screen, reads the screen
    /// again, so the key leaves the list and the counts follow, as the feed
    /// makes them over `--server`.
    /// Returns whether it did.
    pub fn reread_if_expired(&mut self, now_ms: u64) -> bool {
        if self.live.is_some() || self.mode != Mode::Browse {
            return false;
        }
        let selected = match (&self.value.state, &self.value.key) {
            (
                ValueState::Loaded {
                    expires_at_ms: Some(at),
                    ..
                },
                Some(key),
            ) if *at <= now_ms => Some(key.clone()),
            _ => None,
        };
        // Another key's expiry passed: the list and the counts follow (the
        // answer to the new counts says when the next one is due).
        let other = self.next_expiry_ms.is_some_and(|at| at <= now_ms);
        if selected.is_none() && !other {
            return false;
        }
        self.next_expiry_ms = None;
        self.reread();
        if let Some(key) = selected {
            // Not read again until the new read answers.
            self.value.state = ValueState::Loading;
            self.info(format!("{} expired", display_key(&key)));
        }
        true
    }

    /// Whether the value pane or a conflict dialog shows an expiry (which
    /// counts down).
    pub fn shows_expiry(&self) -> bool {
        let dialog = match &self.mode {
            Mode::Conflict(c) => c.now.expires_at_ms().is_some(),
            // The editor's title counts down too.
            Mode::Editor { job, .. } => job.expires_at_ms.is_some(),
            _ => false,
        };
        dialog
            || matches!(
                self.value.state,
                ValueState::Loaded {
                    expires_at_ms: Some(_),
                    ..
                }
            )
    }

    /// Columns of text in the value pane (when it shows, on a narrow
    /// screen: see [`view::NARROW`]).
    pub fn value_columns(&self) -> usize {
        let areas = view::areas(Rect::new(0, 0, self.size.0, self.size.1), true);
        usize::from(areas.value.width.saturating_sub(2)).max(1)
    }

    /// Columns of text in the built-in editor, which is drawn over the
    /// value pane: one less than the pane's, for the mark at the end of a
    /// row whose line goes on (see `softwrap.rs`).
    pub fn editor_columns(&self) -> usize {
        self.value_columns().saturating_sub(1).max(1)
    }

    /// Rows of the value pane's content as drawn: long lines wrap, so
    /// scrolling counts rows (see `wrap.rs`).
    pub(super) fn value_rows(&self) -> usize {
        let cols = self.value_columns();
        match &self.value.state {
            ValueState::Loaded { preview, bytes, .. } if preview.kind == Kind::Binary => {
                let per_line = hex_width(cols);
                hex_line_count(bytes, per_line) * hex_rows_per_line(per_line, cols)
            }
            ValueState::Loaded { preview, .. } => {
                preview.lines.iter().map(|l| wrap::rows(l, cols)).sum()
            }
            _ => 0,
        }
    }

    /// A key on the help: one that moves scrolls a help that does not
    /// fit (as in the value pane); any other closes it.
    fn help(&mut self, scroll: usize, action: Action) {
        let (lines, room) = view::help_rows(Rect::new(0, 0, self.size.0, self.size.1));
        let max = lines.len().saturating_sub(room);
        let Action::Move(m) = action else { return };
        if max == 0 {
            return;
        }
        let page = room.saturating_sub(1).max(1);
        self.mode = Mode::Help {
            scroll: scrolled(scroll.min(max), m, page, max),
        };
    }

    /// The last scroll position that still fills the pane.
    fn max_scroll(&self) -> usize {
        self.value_rows().saturating_sub(self.rows())
    }

    fn scroll_value(&mut self, m: Move) {
        self.value.scroll = scrolled(self.value.scroll, m, self.rows(), self.max_scroll());
    }

    /// Asks for the selected key's value when the selection changed.
    pub(super) fn sync_value(&mut self) {
        let current = self.pager.current().map(<[u8]>::to_vec);
        if current == self.value.key && !std::mem::take(&mut self.value_stale) {
            return;
        }
        self.value = ValuePane {
            state: if current.is_some() {
                ValueState::Loading
            } else {
                ValueState::Empty
            },
            key: current.clone(),
            scroll: 0,
        };
        if let Some(key) = current {
            self.outbox.push(Request::Get { key });
        }
    }

    /// Asks for the key count and revision, and the filter's count.
    pub(super) fn request_counts(&mut self) {
        self.outbox.push(Request::Stats);
        if self.live.is_none() {
            self.outbox.push(Request::NextExpiry);
        }
        match &self.pager.filter {
            Some(Filter::Prefix(prefix)) => self.outbox.push(Request::Count {
                prefix: prefix.clone(),
            }),
            Some(Filter::Glob(_)) => self.count_matches(),
            None => {}
        }
    }

    /// Reads everything again, keeping the selected key (or the next one).
    fn refresh(&mut self) {
        // A pattern's count that Esc stopped is made again, and the list
        // reads on past the keys it kept to.
        self.counting = None;
        self.pager.upto = None;
        self.reread();
        self.info("refreshed");
    }

    /// Reads the counts, the key list and the value again; also the
    /// session's retry of a first screen the server did not answer.
    pub fn reread(&mut self) {
        let current = self.pager.current().map(<[u8]>::to_vec);
        self.reread_at(current);
    }

    /// [`App::reread`] with the list at `key` (or the first key after it).
    pub fn reread_at(&mut self, key: Option<Vec<u8>>) {
        self.request_counts();
        let jump = self.pager.reload_at(key);
        self.outbox.push(jump);
        // Read the value again even if the key stays; the one shown stays
        // selected meanwhile (and if the read fails: `e` still edits it).
        self.value_stale = true;
    }

    fn prompt(&mut self, kind: PromptKind, mut input: TextArea, action: Action) {
        match action {
            Action::Text(edit) => {
                input.apply(edit);
                self.mode = Mode::Prompt { kind, input };
            }
            Action::Submit => {
                let text = input.text();
                match kind {
                    PromptKind::Seek => self.last_seek.clone_from(&text),
                    PromptKind::NewKey => self.last_new_key.clone_from(&text),
                    PromptKind::Filter => return self.set_filter(Filter::parse(&text)),
                }
                self.submit_prompt(kind, parse_key(&text));
            }
            Action::Cancel => self.info(""),
            _ => self.mode = Mode::Prompt { kind, input },
        }
    }

    fn submit_prompt(&mut self, kind: PromptKind, key: Vec<u8>) {
        match kind {
            PromptKind::Seek => {
                self.info(format!("seek {}", display_key(&key)));
                let start = (!key.is_empty()).then_some(key.clone());
                let jump = self.pager.jump_top(start);
                self.outbox.push(jump);
                self.seek = (!key.is_empty()).then_some((self.pager.generation, key));
            }
            // Read from the text itself (see `prompt`).
            PromptKind::Filter => {}
            PromptKind::NewKey if key.is_empty() => self.info("no key given; nothing created"),
            // Checked here, before a value is typed for a key no write takes.
            PromptKind::NewKey if key.len() > MAX_KEY_BYTES => self.error(format!(
                "a key is 1 to {MAX_KEY_BYTES} bytes, this one is {} bytes; nothing created",
                key.len()
            )),
            PromptKind::NewKey => {
                // Check first: finding out after the value was typed loses it.
                self.info(format!("checking {}…", display_key(&key)));
                self.creating = Some(key.clone());
                self.outbox.push(Request::Probe { key });
            }
        }
    }

    /// The selected key's position and how many keys the list holds (the
    /// filter's matches, or the whole store), as far as known.
    pub fn position(&self) -> (Option<u64>, Option<u64>) {
        let total = match &self.pager.filter {
            Some(_) => self.matched.filter(|&(_, more)| !more).map(|(n, _)| n),
            None => self.stats.map(|s| s.keys),
        };
        (self.pager.position(total), total)
    }

    pub(super) fn ask_delete(&mut self) {
        match (&self.value.key, &self.value.state) {
            (
                Some(key),
                ValueState::Loaded {
                    revision,
                    expires_at_ms,
                    ..
                },
            ) => {
                self.mode = Mode::Confirm {
                    key: key.clone(),
                    revision: *revision,
                    expires_at_ms: *expires_at_ms,
                    now: None,
                };
            }
            (None, _) => self.info("no key selected"),
            (Some(key), ValueState::Loading) => self.intent = Some((key.clone(), Intent::Delete)),
            _ => self.value_unread(),
        }
    }

    fn confirm(&mut self, key: Vec<u8>, revision: u64, expires_at_ms: Option<u64>, action: Action) {
        match action {
            Action::Submit => {
                self.info(format!("deleting {}…", display_key(&key)));
                self.own_delete = Some(OwnDelete {
                    key: key.clone(),
                    expires_at_ms,
                });
                self.outbox.push(Request::Delete {
                    key,
                    if_revision: revision,
                });
            }
            _ => self.info("not deleted"),
        }
    }

    /// The text edit in the built-in editor, for the view.
    pub fn editor(&self) -> Option<(&EditJob, &TextArea)> {
        match &self.mode {
            Mode::Editor { job, area }
            | Mode::InvalidJson {
                job,
                area: Some(area),
                ..
            } => Some((job, area)),
            Mode::Conflict(c) => c.area.as_ref().map(|area| (&c.job, area)),
            _ => None,
        }
    }
}

/// A scroll position `s` after move `m`, a page being `page` rows, kept
/// within `0..=max` (the value pane and the help scroll alike).
fn scrolled(s: usize, m: Move, page: usize, max: usize) -> usize {
    match m {
        Move::Up => s.saturating_sub(1),
        Move::Down => s + 1,
        Move::PageUp => s.saturating_sub(page),
        Move::PageDown => s + page,
        Move::First => 0,
        Move::Last => max,
    }
    .min(max)
}
