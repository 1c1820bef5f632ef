//! Editing a value, as `App` methods: in `$EDITOR` (through the run loop)
//! or the built-in editor, then the checks before anything is written: an
//! edit that leaves the stored bytes as they are writes nothing, and text
//! that should be JSON but is not is not saved without a word.

use super::action::Action;
use super::app::{App, Intent, Mode, ValueState};
use super::editor::{EditJob, TextArea};
use super::keys::display_key;
use super::worker::Request;
use crate::Result;
use crate::types::Entry;

impl App {
    /// `e`: edits the selected key's value.
    pub(super) fn start_edit(&mut self) {
        if let Some(job) = self.unsaved.take() {
            if self.value.key.as_ref() == Some(&job.key) {
                return self.begin_edit(job);
            }
            self.unsaved = Some(job);
        }
        match (&self.value.key, &self.value.state) {
            (
                Some(key),
                ValueState::Loaded {
                    revision,
                    bytes,
                    expires_at_ms,
                    ..
                },
            ) => {
                let mut job = EditJob::new(key.clone(), *revision, bytes.clone());
                job.expires_at_ms = *expires_at_ms;
                self.begin_edit(job);
            }
            (None, _) => self.info("no key selected"),
            (Some(key), ValueState::Loading) => {
                self.intent = Some((key.clone(), Intent::Edit));
            }
            _ => self.value_unread(),
        }
    }

    /// The answer to the check made before a new key is edited.
    pub(super) fn probed(&mut self, key: Vec<u8>, result: Result<Option<Entry>>) {
        if self.creating.as_deref() != Some(key.as_slice()) {
            return;
        }
        self.creating = None;
        let shown = display_key(&key);
        match result {
            Ok(None) if self.mode == Mode::Browse => {
                // "checking KEY…" is over: the editor's title says the rest.
                self.info("");
                self.begin_edit(EditJob::new(key, 0, Vec::new()));
            }
            // Something else has the keyboard now: say so instead.
            Ok(None) => self.info(format!("{shown} does not exist yet: press n to create it")),
            Ok(Some(entry)) => {
                // A filter that leaves the key out would keep another key
                // selected, and `e` would edit that one: clear it.
                let hidden = self.pager.filter.as_ref().is_some_and(|f| !f.matches(&key));
                let how = if hidden {
                    self.pager.filter = None;
                    self.pager.upto = None;
                    self.counting = None;
                    self.matched = None;
                    self.request_counts();
                    "the filter is cleared and it is selected"
                } else {
                    "it is selected"
                };
                self.error(format!(
                    "{shown} already exists (revision {}); {how}: press e to edit it",
                    entry.revision
                ));
                let jump = self.pager.jump_top(Some(key));
                self.outbox.push(jump);
            }
            Err(e) => self.read_error(format!("cannot check whether {shown} exists: {e}")),
        }
    }

    /// Hands the edit to `$EDITOR` (via the run loop) or the built-in
    /// editor, which takes text only.
    fn begin_edit(&mut self, job: EditJob) {
        if self.config.editor.is_some() {
            self.pending_edit = Some(job);
            return;
        }
        match String::from_utf8(job.start_text()) {
            Ok(text) => {
                // What the last edit came to ("saved …", "… dropped") is
                // not about this one: it read as this edit's fate.
                self.info("");
                let area = TextArea::reopened(&text, job.cursor);
                self.mode = Mode::Editor { job, area };
            }
            Err(_) => self.error("a binary value needs an external editor: set $EDITOR or $VISUAL"),
        }
    }

    pub(super) fn builtin_editor(&mut self, mut job: EditJob, mut area: TextArea, action: Action) {
        // A first Esc over changed text asked; any other key takes it back.
        let drop_armed = std::mem::take(&mut self.drop_armed);
        if drop_armed && action != Action::Cancel {
            self.info("");
        }
        match action {
            Action::Text(edit) => {
                // From the rows as drawn (at this size), to the rows that
                // keep the cursor in view after the edit.
                let (cols, rows) = (self.editor_columns(), self.rows());
                area.top = area.view_top(cols, rows);
                area.apply_wrapped(edit, cols);
                area.top = area.view_top(cols, rows);
                self.mode = Mode::Editor { job, area };
            }
            Action::Submit => {
                job.cursor = Some((area.row, area.col));
                let text = area.text().into_bytes();
                match job.json_error(&text) {
                    Some(e) => {
                        self.mode = Mode::InvalidJson {
                            job,
                            area: Some(area),
                            error: e.to_string(),
                        };
                    }
                    None => self.finish_edit(job, Ok(text)),
                }
            }
            Action::Cancel if !drop_armed && area.text().into_bytes() != job.text() => {
                self.drop_armed = true;
                self.info_with_short(
                    "your text is not saved: Esc again drops it, Ctrl-S saves it",
                    "Esc again drops, Ctrl-S saves",
                );
                self.mode = Mode::Editor { job, area };
            }
            Action::Cancel => self.info("edit cancelled; nothing written"),
            _ => self.mode = Mode::Editor { job, area },
        }
    }

    /// What `$EDITOR` left: checked for broken JSON like the built-in
    /// editor's text, then written.
    pub fn external_done(&mut self, mut job: EditJob, edited: Result<Vec<u8>>) {
        match edited {
            Ok(text) => match job.json_error(&text) {
                Some(e) if text != job.text() => {
                    job.draft = Some(text);
                    self.mode = Mode::InvalidJson {
                        job,
                        area: None,
                        error: e.to_string(),
                    };
                }
                _ => self.finish_edit(job, Ok(text)),
            },
            Err(e) => self.finish_edit(job, Err(e)),
        }
    }

    /// The dialog on invalid JSON: `t` saves the text as it is, anything
    /// that closes the dialog goes back to the editor: the built-in one at
    /// the error, `$EDITOR` on the text as it was left.
    pub(super) fn invalid_json(
        &mut self,
        mut job: EditJob,
        area: Option<TextArea>,
        error: String,
        action: Action,
    ) {
        match (action, area) {
            (Action::Submit, Some(area)) => self.finish_edit(job, Ok(area.text().into_bytes())),
            (Action::Submit, None) => {
                let text = job.draft.take().unwrap_or_default();
                self.finish_edit(job, Ok(text));
            }
            (Action::Cancel, Some(mut area)) => {
                if let Some(e) = job.json_error(area.text().as_bytes()) {
                    // serde_json names the last character it read: at the
                    // end of the input the error is after it ("[1, 2"
                    // wants its "]" after the 2, not before).
                    let column = e.column() + usize::from(e.is_eof());
                    area.go_to(e.line(), column);
                }
                self.mode = Mode::Editor { job, area };
            }
            (Action::Cancel, None) => {
                self.info("");
                self.pending_edit = Some(job);
            }
            (Action::Delete, _) => {
                self.info(format!(
                    "edit of {} dropped; nothing written",
                    display_key(&job.key)
                ));
            }
            (_, area) => self.mode = Mode::InvalidJson { job, area, error },
        }
    }

    /// Writes an edited value, unless it leaves the stored bytes as they
    /// are, with the revision the user saw as the precondition.
    pub fn finish_edit(&mut self, mut job: EditJob, edited: Result<Vec<u8>>) {
        let text = match edited {
            Ok(text) => text,
            Err(e) => return self.error(format!("edit failed: {e}")),
        };
        let value = job.stored(text.clone());
        if value == job.original && job.revision != 0 {
            return self.info("value unchanged; nothing written");
        }
        self.info(format!("saving {}…", display_key(&job.key)));
        self.outbox.push(Request::Put {
            key: job.key.clone(),
            value,
            if_revision: job.revision,
        });
        // Kept until the write is answered: a save that fails gives the
        // text back (see `keep_editing`; a conflict, `conflict.rs`).
        job.draft = Some(text);
        self.saving = Some(job);
    }

    /// A save failed for a reason other than a conflict (the server is
    /// away, say): the typed text must not be lost with it. The built-in
    /// editor opens again on it; after `$EDITOR`, `e` on the key does.
    pub(super) fn keep_editing(&mut self, job: EditJob, why: String) {
        // See `save_conflict`.
        self.quit_armed = false;
        if self.config.editor.is_none()
            && self.mode == Mode::Browse
            && let Ok(text) = String::from_utf8(job.start_text())
        {
            self.mode = Mode::Editor {
                area: TextArea::reopened(&text, job.cursor),
                job,
            };
            return self.error(format!(
                "{why}; your text is kept: Ctrl-S tries again, Esc drops it"
            ));
        }
        self.error(format!("{why}; press e to edit your text again"));
        self.unsaved = Some(job);
    }
}
