//! Editing values: in the user's `$VISUAL` / `$EDITOR` on a temporary file,
//! or, when neither is set, in [`TextArea`], a small built-in editor that the
//! prompts (seek, filter, new key) use too in its one-line form.

use std::io::Write;
use std::process::Command;

use unicode_segmentation::UnicodeSegmentation;

use super::action::TextEdit;
use super::json;
use super::preview::{Kind, classify};
use super::softwrap;
use crate::error::{Error, Result};

/// How much larger than a compact JSON value its indented form may be
/// (plus 1 MiB) for it to be edited indented.
const MAX_INDENT_GROWTH: usize = 8;

/// The editor command the user configured: `$VISUAL`, else `$EDITOR`.
pub fn editor_from_env() -> Option<String> {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|v| v.to_string_lossy().trim().to_string())
        .find(|v| !v.is_empty())
}

/// Runs `editor` on a temporary file holding `content` and returns the
/// file's bytes afterwards. The command goes through `sh -c` because
/// `$EDITOR` often carries arguments (`code --wait`, `emacs -nw`). The
/// caller has handed the terminal over (left raw mode and the alternate
/// screen) before this runs, and keeps its own Ctrl-C from ending kvr.
pub fn run_external(editor: &str, content: &[u8], suffix: &str) -> Result<Vec<u8>> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e| Error::io(what, e)
    };
    let mut file = tempfile::Builder::new()
        .prefix("kvr-edit-")
        .suffix(suffix)
        .tempfile()
        .map_err(io("cannot create a temporary file for the editor"))?;
    file.write_all(content)
        .and_then(|()| file.flush())
        .map_err(io("cannot write the temporary file for the editor"))?;
    let path = file.into_temp_path();
    let status = Command::new("sh")
        .arg("-c")
        // `exec`: no shell stays between kvr and the editor, so Ctrl-C in
        // the editor (a SIGINT to the whole foreground group) cannot kill
        // a waiting shell and leave the editor orphaned.
        .arg(format!("exec {editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status()
        .map_err(io(&format!("cannot run the editor {editor:?}")))?;
    if !status.success() {
        return Err(Error::invalid(format!(
            "the editor {editor:?} failed ({status}); nothing written"
        )));
    }
    std::fs::read(&path).map_err(io("cannot read back the edited file"))
}

/// An edit of one key's value. `revision` is the one the user saw (0 for a
/// new key) and becomes the write's `if_revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditJob {
    pub key: Vec<u8>,
    pub revision: u64,
    /// The stored bytes.
    pub original: Vec<u8>,
    /// Text from an earlier round in `$EDITOR` that was not saved (invalid
    /// JSON, "keep editing"): the editor starts from it instead.
    pub draft: Option<Vec<u8>>,
    /// When the value a write of this edit replaces expires (Unix ms):
    /// the one the edit started from, or the one a conflict's overwrite
    /// replaces. A write refused after that found the key expired, not
    /// changed by someone else.
    pub expires_at_ms: Option<u64>,
    /// Where the built-in editor's cursor was (line, char) when the text
    /// was saved: going back to a text that was not written puts it there.
    pub cursor: Option<(usize, usize)>,
}

impl EditJob {
    pub fn new(key: Vec<u8>, revision: u64, original: Vec<u8>) -> EditJob {
        EditJob {
            key,
            revision,
            original,
            draft: None,
            expires_at_ms: None,
            cursor: None,
        }
    }

    /// What the editor starts with this round: the draft, else [`text`].
    ///
    /// [`text`]: EditJob::text
    pub fn start_text(&self) -> Vec<u8> {
        self.draft.clone().unwrap_or_else(|| self.text())
    }

    /// JSON stored on one line is edited indented and stored compact
    /// again: nobody wants to fix a 2 KiB object on a single line, and the
    /// stored form should not change just because it was looked at.
    /// A line end after it counts as one line (`echo '{…}' | kvr put k`
    /// stores one), and is kept when it is stored again.
    /// Not when the indented text would be far larger than the value (a
    /// value nested deep, [`json::indents_within`]): that one is edited as
    /// it is stored.
    fn compact_json(&self) -> bool {
        let line = self.original.strip_suffix(b"\n").unwrap_or(&self.original);
        classify(&self.original) == Kind::Json
            && !line.contains(&b'\n')
            && json::indents_within(
                &String::from_utf8_lossy(&self.original),
                MAX_INDENT_GROWTH * self.original.len() + (1 << 20),
            )
    }

    /// What the editor starts with.
    pub fn text(&self) -> Vec<u8> {
        if self.compact_json() {
            json::indent(&String::from_utf8_lossy(&self.original)).into_bytes()
        } else {
            self.original.clone()
        }
    }

    /// What to store for the editor's result `edited`: the stored bytes
    /// when the text is what the editor started with (nothing was changed,
    /// whatever the stored layout); compacted again when it started as
    /// compact JSON and is still valid JSON; otherwise exactly what the
    /// editor left. So an edit that changes nothing stores the same bytes.
    pub fn stored(&self, edited: Vec<u8>) -> Vec<u8> {
        let text = self.text();
        // Editors end a file with a newline by default (vim's `fixeol`):
        // saving without a change must not add one to a value that had
        // none, nor take a new revision for it.
        let added_newline = !text.ends_with(b"\n") && edited.strip_suffix(b"\n") == Some(&text);
        if edited == text || added_newline {
            return self.original.clone();
        }
        let valid = serde_json::from_slice::<serde::de::IgnoredAny>(&edited).is_ok();
        match std::str::from_utf8(&edited) {
            Ok(edited) if valid && self.compact_json() => {
                // The layout shown is the editor's own: an edit of its
                // white space only (a newline added at the end) leaves
                // the value, spaced as it was stored, as it is.
                let compact = json::compact(edited);
                let shown = std::str::from_utf8(&text).map(json::compact);
                if text != self.original && shown.is_ok_and(|shown| shown == compact) {
                    return self.original.clone();
                }
                let mut stored = compact.into_bytes();
                if self.original.ends_with(b"\n") {
                    stored.push(b'\n');
                }
                stored
            }
            _ => edited,
        }
    }

    /// Why `edited` is not the JSON it should be, if it is not: the value
    /// was JSON, or a new value starts like JSON (`{` or `[`).
    pub fn json_error(&self, edited: &[u8]) -> Option<serde_json::Error> {
        let looks_json = || {
            let start = edited.iter().find(|b| !b.is_ascii_whitespace());
            self.revision == 0 && matches!(start, Some(b'{' | b'['))
        };
        if classify(&self.original) != Kind::Json && !looks_json() {
            return None;
        }
        serde_json::from_slice::<serde::de::IgnoredAny>(edited).err()
    }

    /// A file name ending for the temporary file, so editors pick a mode.
    pub fn suffix(&self) -> &'static str {
        match classify(&self.original) {
            Kind::Json => ".json",
            _ => ".txt",
        }
    }
}

/// A text being edited: lines and a cursor (line, char index). The cursor
/// moves and deletes by grapheme cluster (an accent with its letter, an
/// emoji ZWJ sequence whole), as vim and most editors do: stepping through
/// the code points of one would put the next letter typed inside it (the
/// accent of `é` onto it). Only a text typed or pasted around it leaves
/// the cursor inside a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextArea {
    pub lines: Vec<String>,
    pub row: usize,
    pub col: usize,
    /// One line only: Enter submits instead of breaking the line.
    pub single_line: bool,
    /// The whole text is selected (a prompt's previous text): typing or
    /// deleting replaces it, a movement key keeps it.
    pub selected: bool,
    /// The screen column Up and Down keep to while they are pressed in a
    /// row (through shorter rows and back), as in most editors.
    pub goal: Option<usize>,
    /// The first screen row drawn (of the text soft-wrapped): it moves
    /// only as far as needed to keep the cursor in view; see [`view_top`].
    ///
    /// [`view_top`]: TextArea::view_top
    pub top: usize,
}

impl TextArea {
    /// The built-in editor on `text`, with its cursor at `cursor` (where it
    /// was when this text was saved and refused) when that is in the text.
    pub fn reopened(text: &str, cursor: Option<(usize, usize)>) -> TextArea {
        let mut area = TextArea::new(text, false);
        if let Some((row, col)) = cursor
            && let Some(line) = area.lines.get(row)
        {
            area.col = col.min(line.chars().count());
            area.row = row;
        }
        area
    }

    pub fn new(text: &str, single_line: bool) -> TextArea {
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        if single_line {
            lines = vec![lines.concat()];
        }
        let row = lines.len() - 1;
        let col = lines[row].chars().count();
        TextArea {
            lines,
            row,
            col,
            single_line,
            selected: false,
            goal: None,
            top: 0,
        }
    }

    /// A one-line prompt holding `text`, selected, so that typing replaces
    /// it and Enter keeps it.
    pub fn prompt(text: &str) -> TextArea {
        let mut area = TextArea::new(text, true);
        area.selected = !text.is_empty();
        area
    }

    /// Puts the cursor on `line`, at byte `column` (both 1-based, as
    /// serde_json reports an error), within the text.
    pub fn go_to(&mut self, line: usize, column: usize) {
        self.row = line.saturating_sub(1).min(self.lines.len() - 1);
        let text = &self.lines[self.row];
        let byte = column.saturating_sub(1).min(text.len());
        self.col = text.char_indices().take_while(|&(i, _)| i < byte).count();
        if self.col < self.line_chars() {
            // Inside a cluster: its start.
            self.col = self.cluster_before(self.col + 1);
        }
    }

    /// The whole text, lines joined by `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    fn line(&mut self) -> &mut String {
        &mut self.lines[self.row]
    }

    fn byte_at(&self, col: usize) -> usize {
        let line = &self.lines[self.row];
        line.char_indices().nth(col).map_or(line.len(), |(i, _)| i)
    }

    fn line_chars(&self) -> usize {
        self.lines[self.row].chars().count()
    }

    /// The line's grapheme clusters: the char index each starts at and
    /// its first character (which says whether it is part of a word).
    fn clusters(&self) -> Vec<(usize, char)> {
        let mut at = 0;
        let line = &self.lines[self.row];
        line.graphemes(true)
            .filter_map(|g| {
                let start = at;
                at += g.chars().count();
                g.chars().next().map(|c| (start, c))
            })
            .collect()
    }

    /// Where the cluster before char `col` starts (0 at the start).
    fn cluster_before(&self, col: usize) -> usize {
        let clusters = self.clusters();
        let i = clusters.partition_point(|&(start, _)| start < col);
        i.checked_sub(1).map_or(0, |i| clusters[i].0)
    }

    /// Where the cluster at char `col` ends (the line's end at its end).
    fn cluster_after(&self, col: usize) -> usize {
        let clusters = self.clusters();
        let i = clusters.partition_point(|&(start, _)| start <= col);
        clusters
            .get(i)
            .map_or(self.line_chars(), |&(start, _)| start)
    }

    /// The first screen row to draw, in `height` rows of text wrapped at
    /// `cols` columns: [`top`] moved as little as keeps the cursor in view
    /// and leaves no row blank that text above could fill. The view draws from it and the editor keeps it (`App`), so the text
    /// scrolls only when the cursor would leave the screen.
    ///
    /// [`top`]: TextArea::top
    pub fn view_top(&self, cols: usize, height: usize) -> usize {
        let (at, _) = softwrap::cursor(&self.lines, self.row, self.col, cols);
        // No blank rows below the text while rows above it are hidden (the
        // screen grew, or lines went): as vim and less, the view fills.
        // Counted only as far as a screenful past the cursor.
        let mut end = at - softwrap::locate(&self.lines[self.row], self.col, cols).0;
        for line in &self.lines[self.row..] {
            end += softwrap::rows(line, cols);
            if end >= at + height {
                break;
            }
        }
        self.top
            .min(end.saturating_sub(height))
            .clamp(at.saturating_sub(height.saturating_sub(1)), at)
    }

    /// Applies `edit` to a text that is not wrapped (a prompt).
    pub fn apply(&mut self, edit: TextEdit) {
        self.apply_wrapped(edit, usize::MAX);
    }

    /// Inserts `text` at the cursor in one step (a paste), as typing it
    /// would: it replaces a selection, newlines split lines (a one-line
    /// area drops them), the cursor ends after it. Typed a character at a
    /// time, each one looked for the cursor's byte offset again: quadratic
    /// in the length of a pasted line.
    pub fn insert_text(&mut self, text: &str) {
        if std::mem::take(&mut self.selected) {
            *self = TextArea::new("", self.single_line);
        }
        self.goal = None;
        let at = self.byte_at(self.col);
        let rest = self.line().split_off(at);
        let mut pieces = text.split('\n');
        let first = pieces.next().unwrap_or_default();
        self.line().push_str(first);
        self.col += first.chars().count();
        for piece in pieces {
            if self.single_line {
                self.line().push_str(piece);
                self.col += piece.chars().count();
            } else {
                self.lines.insert(self.row + 1, piece.to_string());
                self.row += 1;
                self.col = piece.chars().count();
            }
        }
        self.line().push_str(&rest);
    }

    /// Applies `edit` to a text drawn soft-wrapped at `cols` columns: Up
    /// and Down move through the rows on screen, not the lines.
    pub fn apply_wrapped(&mut self, edit: TextEdit, cols: usize) {
        if std::mem::take(&mut self.selected) && replaces_selection(edit) {
            *self = TextArea::new("", self.single_line);
            if matches!(edit, TextEdit::Insert(_)) {
                self.apply_wrapped(edit, cols);
            }
            return;
        }
        if !matches!(edit, TextEdit::Up | TextEdit::Down) {
            self.goal = None;
        }
        match edit {
            TextEdit::Insert(c) => {
                let at = self.byte_at(self.col);
                self.line().insert(at, c);
                self.col += 1;
            }
            TextEdit::Newline if !self.single_line => {
                let at = self.byte_at(self.col);
                let rest = self.line().split_off(at);
                self.lines.insert(self.row + 1, rest);
                (self.row, self.col) = (self.row + 1, 0);
            }
            TextEdit::Newline => {}
            TextEdit::Backspace => self.backspace(),
            TextEdit::Delete => self.delete(),
            TextEdit::Left => self.left(),
            TextEdit::Right => self.right(),
            TextEdit::Up => self.vertical(false, cols),
            TextEdit::Down => self.vertical(true, cols),
            TextEdit::Home => self.col = 0,
            TextEdit::End => self.col = self.line_chars(),
            TextEdit::WordLeft => self.col = self.word_start(is_word),
            TextEdit::WordRight => self.col = self.word_end(),
            TextEdit::KillToStart => self.kill(0, self.col),
            TextEdit::KillToEnd => self.kill(self.col, self.line_chars()),
            TextEdit::KillWordBack => self.kill(self.word_start(is_word), self.col),
            TextEdit::KillSpaceWordBack => {
                self.kill(self.word_start(|c| !c.is_whitespace()), self.col);
            }
            TextEdit::KillWordForward => self.kill(self.col, self.word_end()),
        }
    }

    /// Up or Down one row on screen, at the goal column (or before the
    /// character there, if it is wide); nothing at the first or last row.
    fn vertical(&mut self, down: bool, cols: usize) {
        let (sub, x) = softwrap::locate(&self.lines[self.row], self.col, cols);
        let goal = *self.goal.get_or_insert(x);
        let (row, sub) = if down {
            if sub + 1 < softwrap::rows(&self.lines[self.row], cols) {
                (self.row, sub + 1)
            } else if self.row + 1 < self.lines.len() {
                (self.row + 1, 0)
            } else {
                return;
            }
        } else if sub > 0 {
            (self.row, sub - 1)
        } else if self.row > 0 {
            let above = softwrap::rows(&self.lines[self.row - 1], cols);
            (self.row - 1, above - 1)
        } else {
            return;
        };
        self.row = row;
        self.col = softwrap::col_at(&self.lines[row], sub, goal, cols);
    }

    /// Where the word before the cursor starts (readline's `backward-word`):
    /// skip what is not a word, then the word; cluster by cluster.
    fn word_start(&self, word: fn(char) -> bool) -> usize {
        let clusters = self.clusters();
        let mut i = clusters.partition_point(|&(start, _)| start < self.col);
        while i > 0 && !word(clusters[i - 1].1) {
            i -= 1;
        }
        while i > 0 && word(clusters[i - 1].1) {
            i -= 1;
        }
        clusters
            .get(i)
            .map_or(self.line_chars(), |&(start, _)| start)
    }

    /// Where the word after the cursor ends (`forward-word`).
    fn word_end(&self) -> usize {
        let clusters = self.clusters();
        let mut i = clusters.partition_point(|&(start, _)| start < self.col);
        while i < clusters.len() && !is_word(clusters[i].1) {
            i += 1;
        }
        while i < clusters.len() && is_word(clusters[i].1) {
            i += 1;
        }
        clusters
            .get(i)
            .map_or(self.line_chars(), |&(start, _)| start)
    }

    /// Deletes the characters `from..to` of the line; the cursor goes to
    /// `from`.
    fn kill(&mut self, from: usize, to: usize) {
        let (a, b) = (self.byte_at(from), self.byte_at(to));
        self.line().replace_range(a..b, "");
        self.col = from;
    }

    fn backspace(&mut self) {
        if self.col > 0 {
            self.kill(self.cluster_before(self.col), self.col);
        } else if self.row > 0 {
            let line = self.lines.remove(self.row);
            self.row -= 1;
            self.col = self.line_chars();
            self.line().push_str(&line);
        }
    }

    fn delete(&mut self) {
        if self.col < self.line_chars() {
            self.kill(self.col, self.cluster_after(self.col));
        } else if self.row + 1 < self.lines.len() {
            let next = self.lines.remove(self.row + 1);
            self.line().push_str(&next);
        }
    }

    fn left(&mut self) {
        if self.col > 0 {
            self.col = self.cluster_before(self.col);
        } else if self.row > 0 {
            self.row -= 1;
            self.col = self.line_chars();
        }
    }

    fn right(&mut self) {
        if self.col < self.line_chars() {
            self.col = self.cluster_after(self.col);
        } else if self.row + 1 < self.lines.len() {
            (self.row, self.col) = (self.row + 1, 0);
        }
    }
}

/// A letter or digit: what readline's word commands move over, so that
/// Alt-b in `user:123` stops at `123`.
fn is_word(c: char) -> bool {
    c.is_alphanumeric()
}

/// Whether `edit`, on a selected text, replaces it (rather than just
/// dropping the selection, as movement does).
fn replaces_selection(edit: TextEdit) -> bool {
    matches!(
        edit,
        TextEdit::Insert(_)
            | TextEdit::Backspace
            | TextEdit::Delete
            | TextEdit::KillToStart
            | TextEdit::KillToEnd
            | TextEdit::KillWordBack
            | TextEdit::KillSpaceWordBack
            | TextEdit::KillWordForward
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_paste_inserts_as_typing_would() {
        for single in [false, true] {
            let mut typed = TextArea::new("ab\ncd", single);
            typed.apply(TextEdit::Right);
            let mut pasted = TextArea::new("ab\ncd", single);
            pasted.apply(TextEdit::Right);
            let text = "x\ny\u{301}z\n\nw";
            for c in text.chars() {
                typed.apply(if c == '\n' {
                    TextEdit::Newline
                } else {
                    TextEdit::Insert(c)
                });
            }
            pasted.insert_text(text);
            assert_eq!(pasted.lines, typed.lines, "single {single}");
            assert_eq!(
                (pasted.row, pasted.col),
                (typed.row, typed.col),
                "single {single}"
            );
        }
        // Long: one step, not a character at a time.
        let mut area = TextArea::new("", false);
        area.insert_text(&"v".repeat(300_000));
        assert_eq!((area.lines[0].len(), area.col), (300_000, 300_000));
    }

    use super::*;

    fn typed(area: &mut TextArea, s: &str) {
        for c in s.chars() {
            area.apply(if c == '\n' {
                TextEdit::Newline
            } else {
                TextEdit::Insert(c)
            });
        }
    }

    #[test]
    fn edits_lines() {
        let mut t = TextArea::new("héllo", false);
        typed(&mut t, "!\nnext");
        assert_eq!(t.text(), "héllo!\nnext");
        t.apply(TextEdit::Home);
        t.apply(TextEdit::Backspace);
        assert_eq!(t.text(), "héllo!next");
        assert_eq!((t.row, t.col), (0, 6));
        t.apply(TextEdit::Delete);
        t.apply(TextEdit::Up);
        t.apply(TextEdit::End);
        assert_eq!(t.text(), "héllo!ext");
        assert_eq!(t.col, 9);
    }

    /// At 4 columns the text is drawn as "abcd" "efgh" "ij" | "xy" |
    /// "日本" "語日" "本語": Up and Down go through those rows, keeping
    /// the screen column they started at (before a wide character that
    /// covers it), until another key moves the cursor.
    #[test]
    fn up_and_down_move_through_wrapped_rows() {
        let mut t = TextArea::new("abcdefghij\nxy\n日本語日本語", false);
        (t.row, t.col) = (0, 1);
        let mut went = vec![];
        for _ in 0..5 {
            t.apply_wrapped(TextEdit::Down, 4);
            went.push((t.row, t.col));
        }
        assert_eq!(went, [(0, 5), (0, 9), (1, 1), (2, 0), (2, 2)]);
        t.apply_wrapped(TextEdit::Down, 4);
        t.apply_wrapped(TextEdit::Down, 4);
        assert_eq!((t.row, t.col), (2, 4), "the last row; then nothing");
        for _ in 0..6 {
            t.apply_wrapped(TextEdit::Up, 4);
        }
        assert_eq!((t.row, t.col), (0, 1), "back at the column it started at");
        t.apply_wrapped(TextEdit::Up, 4);
        assert_eq!((t.row, t.col), (0, 1), "the first row; then nothing");
        // End moves the cursor: Up goes on from its column.
        t.apply_wrapped(TextEdit::End, 4);
        t.apply_wrapped(TextEdit::Up, 4);
        assert_eq!((t.row, t.col), (0, 6));
        // The text is what was typed: wrapping is only drawn.
        t.apply_wrapped(TextEdit::Insert('!'), 4);
        assert_eq!(t.text(), "abcdef!ghij\nxy\n日本語日本語");
    }

    /// Word moves and a JSON error's position never stop inside a
    /// cluster: `é` here is `e` and a combining accent.
    #[test]
    fn words_and_error_positions_keep_clusters_whole() {
        let mut t = TextArea::new("cafe\u{301} bar", false);
        t.apply(TextEdit::Home);
        t.apply(TextEdit::WordRight);
        assert_eq!(t.col, 5, "after the accent");
        t.apply(TextEdit::End);
        t.apply(TextEdit::KillWordBack);
        t.apply(TextEdit::Left);
        t.apply(TextEdit::WordLeft);
        assert_eq!((t.text().as_str(), t.col), ("cafe\u{301} ", 0));
        // Column 5 is byte 4, the accent: inside é, so before it.
        t.go_to(1, 5);
        assert_eq!(t.col, 3);
        t.go_to(1, 99);
        assert_eq!(t.col, 6, "past the end: the end");
    }

    #[test]
    fn the_view_scrolls_only_to_keep_the_cursor_in_view() {
        // 40 characters at 4 columns: ten rows, the cursor at the end.
        let mut t = TextArea::new(&"x".repeat(40), false);
        assert_eq!(t.view_top(4, 3), 7);
        t.top = 7;
        t.apply_wrapped(TextEdit::Up, 4);
        assert_eq!(t.view_top(4, 3), 7, "still in view: no scroll");
        t.apply_wrapped(TextEdit::Up, 4);
        t.apply_wrapped(TextEdit::Up, 4);
        assert_eq!(t.view_top(4, 3), 6, "one row up, as far as needed");
        t.apply_wrapped(TextEdit::Home, 4);
        assert_eq!(t.view_top(4, 3), 0);
    }

    #[test]
    fn single_line_ignores_newline() {
        let mut t = TextArea::new("", true);
        typed(&mut t, "a\nb");
        assert_eq!(t.text(), "ab");
    }

    #[test]
    fn compact_json_is_edited_indented_and_stored_compact() {
        let job = |original: &[u8]| EditJob::new(b"k".to_vec(), 1, original.to_vec());
        let compact = job(br#"{"b":1,"a":[true,"x y"]}"#);
        let text = String::from_utf8(compact.text()).unwrap_or_default();
        assert_eq!(
            text,
            "{\n  \"b\": 1,\n  \"a\": [\n    true,\n    \"x y\"\n  ]\n}\n"
        );
        assert_eq!(compact.stored(text.into_bytes()), compact.original);
        // Nested so deep that indented it would be far larger: edited as
        // it is stored.
        let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        let deep = job(deep.as_bytes());
        assert_eq!(deep.text(), deep.original);
        assert_eq!(deep.stored(deep.text()), deep.original);
        // Stored on one line but not compact: untouched, nothing changes.
        let spaced = job(br#"{"a": 1, "b": [true, "x"]}"#);
        assert_eq!(spaced.stored(spaced.text()), spaced.original);
        // Nor does an edit of the shown layout's white space alone.
        let mut newline = spaced.text();
        newline.push(b'\n');
        assert_eq!(spaced.stored(newline), spaced.original);
        let respaced = String::from_utf8_lossy(&spaced.text()).replace("  ", "\t");
        assert_eq!(spaced.stored(respaced.into_bytes()), spaced.original);
        let changed = String::from_utf8_lossy(&spaced.text()).replace('1', "2");
        assert_eq!(
            spaced.stored(changed.into_bytes()),
            br#"{"a":2,"b":[true,"x"]}"#
        );
        let edited = b"{\n  \"b\": 2\n}\n".to_vec();
        assert_eq!(compact.stored(edited), br#"{"b":2}"#);
        assert_eq!(compact.stored(b"not json\n".to_vec()), b"not json\n");
        let pretty = job(b"{\n \"a\": 1\n}");
        assert_eq!(
            pretty.text(),
            pretty.original,
            "indented JSON is edited as stored"
        );
        assert_eq!(pretty.stored(b"{\"a\":2}".to_vec()), b"{\"a\":2}");
        let text = job(b"plain");
        assert_eq!(text.text(), b"plain");
        // The final newline an editor adds to an unchanged text is not a
        // change; a changed text is stored as the editor left it.
        assert_eq!(text.stored(b"plain\n".to_vec()), b"plain");
        assert_eq!(text.stored(b"plain\n\n".to_vec()), b"plain\n\n");
        assert_eq!(text.stored(b"plainer\n".to_vec()), b"plainer\n");
        let lines = job(b"two\nlines\n");
        assert_eq!(lines.stored(b"two\nlines\n\n".to_vec()), b"two\nlines\n\n");
        // One line and its line end (`echo '{…}' | kvr put k`): edited
        // indented too (it was shown indented and edited raw; found by an
        // audit), stored compact with its line end, unchanged if unedited.
        let echoed = job(b"{\"a\":1,\"b\":[1,2]}\n");
        let text = String::from_utf8(echoed.text()).unwrap_or_default();
        assert_eq!(text, "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ]\n}\n");
        assert_eq!(echoed.stored(text.clone().into_bytes()), echoed.original);
        assert_eq!(
            echoed.stored(text.replace('1', "3").into_bytes()),
            b"{\"a\":3,\"b\":[3,2]}\n"
        );
    }

    #[test]
    fn external_editor_edits_the_file() -> Result<()> {
        let out = run_external("sed -i s/old/new/", b"the old value", ".txt")?;
        assert_eq!(out, b"the new value");
        let err = run_external("false", b"x", ".txt");
        assert!(err.is_err());
        Ok(())
    }
}
