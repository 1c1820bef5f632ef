//! Every key binding: a key press becomes an [`Action`] here and nowhere
//! else; [`BINDINGS`] is the help overlay's text (and the README's).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What the user asked for. `App::update` gives it its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    /// Moves the cursor (list) or scrolls (value pane), per focus.
    Move(Move),
    ToggleFocus,
    Seek,
    Filter,
    /// `r`: reads everything again; on a conflict, drops the edit for
    /// the stored value (after a yes).
    Refresh,
    Edit,
    New,
    Delete,
    Help,
    /// Sends the key (`y`) or the value (`Y`) to the terminal's clipboard.
    Copy(Copy),
    /// Typing in a prompt or the built-in editor.
    Text(TextEdit),
    /// Enter in a prompt, `y` in a confirmation, Ctrl-S in the editor,
    /// `t` on invalid JSON, `o` (overwrite) on a conflict.
    Submit,
    /// Esc: closes a prompt, the editor, a dialog or the help; in the main
    /// view it clears the filter (and never quits). Any key on the help.
    Cancel,
    Resize(u16, u16),
    /// Ctrl-Z: hand the terminal back to the shell, stopped, until `fg`.
    Suspend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Up,
    Down,
    PageUp,
    PageDown,
    First,
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    Key,
    Value,
}

/// An edit of the text in a prompt or the built-in editor; the word and
/// kill commands are readline's (and so bash's and most shells').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEdit {
    Insert(char),
    Newline,
    Backspace,
    Delete,
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
    /// Alt-b, Ctrl-Left.
    WordLeft,
    /// Alt-f, Ctrl-Right.
    WordRight,
    /// Ctrl-U: delete from the start of the line to the cursor.
    KillToStart,
    /// Ctrl-K: delete from the cursor to the end of the line.
    KillToEnd,
    /// Alt-Backspace, Ctrl-Backspace: delete the word before the cursor.
    KillWordBack,
    /// Ctrl-W: delete back to the previous space (readline's
    /// `unix-word-rubout`).
    KillSpaceWordBack,
    /// Alt-d: delete the word after the cursor.
    KillWordForward,
}

/// Which keys mean what: the screen's state, as far as key mapping cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Browse,
    Help,
    Prompt,
    Confirm,
    Editor,
    /// The built-in editor's text is not valid JSON: keep editing or save
    /// it as text.
    InvalidJson,
    /// A save met someone else's change: overwrite, reload or edit on.
    Conflict,
}

/// Keys and what they do, in the help overlay's order.
pub const BINDINGS: &[(&str, &str)] = &[
    ("↑ ↓  k j", "previous / next key (scroll in the value pane)"),
    ("PgUp PgDn Space", "a page up / down"),
    ("g G  Home End", "first / last key (top / end of the value)"),
    ("Tab", "switch focus between key list and value pane"),
    ("/", "seek: jump to a key, or the first key after it"),
    ("f", "filter: a prefix, or a glob: user:*:id, *x* (Redis's)"),
    ("r", "refresh keys, value, counts; a stopped scan reads on"),
    (
        "e  Enter",
        "edit the value ($VISUAL / $EDITOR, else built in)",
    ),
    ("n", "new key (checked first: it must not exist yet)"),
    ("d  Del", "delete the key (asks first: y / n)"),
    // The conflict dialog's keys, in one line (of 80 columns too): the
    // help must fit a 24-row terminal above its two status lines.
    (
        "o r e Enter Esc",
        "conflict: overwrite / reload (drops your text) / edit on",
    ),
    ("y  Y", "copy the key / the value to the clipboard (OSC 52)"),
    (
        "?  F1",
        "this help (j k scroll it if it is cut; other keys close it)",
    ),
    (
        "Esc",
        "close prompt, dialog or help; stop a scan; clear the filter",
    ),
    (
        "q  Ctrl-C",
        "quit (twice while an edit is not written; waits for a save)",
    ),
    ("Ctrl-Z", "suspend to the shell (fg comes back)"),
    (
        "",
        "Enter accepts a prompt, Ctrl-S or F2 saves in the editor, Esc cancels",
    ),
    ("", "editing: Ctrl-A Ctrl-E Alt-b Alt-f Ctrl-← Ctrl-→ move,"),
    (
        "",
        "  Ctrl-U Ctrl-K Ctrl-W Alt-Bksp Alt-d delete, as in bash",
    ),
    (
        "",
        "keys: \\u0000 \\n \\\" \\\\ as in JSON; \\xNN is a byte that is not UTF-8",
    ),
];

/// The keys a key event stands for in `mode`: itself, or Escape then the
/// character for an Alt-character that `mode` does not bind. A terminal
/// sends Alt-x as ESC x, so Escape followed at once by a key (typed fast,
/// or read together while the browser was busy drawing) arrives as one
/// Alt- key; taken as such, the key after Escape was lost (Escape closing
/// the help, then `q`, did not quit).
pub fn split_escape(mode: KeyMode, key: KeyEvent) -> Vec<KeyEvent> {
    let alt_only = key.modifiers == KeyModifiers::ALT;
    let bound = |c| matches!(mode, KeyMode::Prompt | KeyMode::Editor) && alt_key(c).is_some();
    match key.code {
        KeyCode::Char(c) if alt_only && !bound(c) => vec![
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
            KeyEvent::new_with_kind(KeyCode::Char(c), KeyModifiers::NONE, key.kind),
        ],
        _ => vec![key],
    }
}

/// The action of a key press in `mode`, if any.
pub fn map_key(mode: KeyMode, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    // Raw mode makes Ctrl-Z a key press, not the shell's suspend: do what
    // the shell would, as less and vim do. Nothing else binds it.
    if ctrl && key.code == KeyCode::Char('z') {
        return Some(Action::Suspend);
    }
    match mode {
        KeyMode::Browse => browse_key(key.code),
        // Movement keys scroll a help taller than the screen.
        KeyMode::Help => match browse_key(key.code) {
            Some(Action::Move(m)) => Some(Action::Move(m)),
            _ => Some(Action::Cancel),
        },
        KeyMode::Confirm => match key.code {
            // Only an explicit yes deletes: Enter, the edit key, must not.
            KeyCode::Char('y' | 'Y') => Some(Action::Submit),
            _ => Some(Action::Cancel),
        },
        KeyMode::InvalidJson => match key.code {
            KeyCode::Char('t' | 'T') => Some(Action::Submit),
            KeyCode::Char('e' | 'E') | KeyCode::Enter | KeyCode::Esc => Some(Action::Cancel),
            // With $EDITOR, keep editing reopens it on the same text: this
            // is the way out without saving it.
            KeyCode::Char('d' | 'D') => Some(Action::Delete),
            _ => None,
        },
        // Overwrite, reload (asks first), or back to the text; a key
        // that means none of them does nothing.
        KeyMode::Conflict => match key.code {
            KeyCode::Char('o' | 'O') => Some(Action::Submit),
            KeyCode::Char('r' | 'R') => Some(Action::Refresh),
            KeyCode::Char('e' | 'E') | KeyCode::Enter | KeyCode::Esc => Some(Action::Cancel),
            _ => None,
        },
        KeyMode::Prompt | KeyMode::Editor => text_key(mode, key),
    }
}

fn browse_key(code: KeyCode) -> Option<Action> {
    Some(match code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Esc => Action::Cancel,
        KeyCode::Up | KeyCode::Char('k') => Action::Move(Move::Up),
        KeyCode::Down | KeyCode::Char('j') => Action::Move(Move::Down),
        KeyCode::PageUp => Action::Move(Move::PageUp),
        KeyCode::PageDown | KeyCode::Char(' ') => Action::Move(Move::PageDown),
        KeyCode::Home | KeyCode::Char('g') => Action::Move(Move::First),
        KeyCode::End | KeyCode::Char('G') => Action::Move(Move::Last),
        KeyCode::Tab | KeyCode::BackTab => Action::ToggleFocus,
        KeyCode::Char('/') => Action::Seek,
        KeyCode::Char('f') => Action::Filter,
        KeyCode::Char('r') => Action::Refresh,
        KeyCode::Char('e') | KeyCode::Enter => Action::Edit,
        KeyCode::Char('n') => Action::New,
        KeyCode::Char('d') | KeyCode::Delete => Action::Delete,
        KeyCode::Char('y') => Action::Copy(Copy::Key),
        KeyCode::Char('Y') => Action::Copy(Copy::Value),
        KeyCode::Char('?') | KeyCode::F(1) => Action::Help,
        _ => return None,
    })
}

fn text_key(mode: KeyMode, key: KeyEvent) -> Option<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let edit = |e| Some(Action::Text(e));
    match key.code {
        KeyCode::Char('s') if ctrl => Some(Action::Submit),
        KeyCode::F(2) => Some(Action::Submit),
        KeyCode::Enter if mode == KeyMode::Prompt => Some(Action::Submit),
        KeyCode::Enter => edit(TextEdit::Newline),
        KeyCode::Esc => Some(Action::Cancel),
        KeyCode::Char(c) if ctrl => control_key(c).and_then(edit),
        KeyCode::Char(c) if alt => alt_key(c).and_then(edit),
        KeyCode::Char(c) => edit(TextEdit::Insert(c)),
        KeyCode::Tab => edit(TextEdit::Insert('\t')),
        KeyCode::Backspace if ctrl || alt => edit(TextEdit::KillWordBack),
        KeyCode::Backspace => edit(TextEdit::Backspace),
        KeyCode::Delete => edit(TextEdit::Delete),
        KeyCode::Left if ctrl || alt => edit(TextEdit::WordLeft),
        KeyCode::Right if ctrl || alt => edit(TextEdit::WordRight),
        KeyCode::Left => edit(TextEdit::Left),
        KeyCode::Right => edit(TextEdit::Right),
        KeyCode::Up => edit(TextEdit::Up),
        KeyCode::Down => edit(TextEdit::Down),
        KeyCode::Home => edit(TextEdit::Home),
        KeyCode::End => edit(TextEdit::End),
        _ => None,
    }
}

/// Readline's control keys.
fn control_key(c: char) -> Option<TextEdit> {
    Some(match c.to_ascii_lowercase() {
        'a' => TextEdit::Home,
        'e' => TextEdit::End,
        'b' => TextEdit::Left,
        'f' => TextEdit::Right,
        'h' => TextEdit::Backspace,
        'd' => TextEdit::Delete,
        'u' => TextEdit::KillToStart,
        'k' => TextEdit::KillToEnd,
        'w' => TextEdit::KillSpaceWordBack,
        _ => return None,
    })
}

/// Readline's Meta (Alt) keys.
fn alt_key(c: char) -> Option<TextEdit> {
    Some(match c.to_ascii_lowercase() {
        'b' => TextEdit::WordLeft,
        'f' => TextEdit::WordRight,
        'd' => TextEdit::KillWordForward,
        _ => return None,
    })
}
