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
    Refresh,
    Edit,
    New,
    Delete,
    Help,
    /// Typing in a prompt or the built-in editor.
    Text(TextEdit),
    /// Enter in a prompt, `y` in a confirmation, Ctrl-S in the editor.
    Submit,
    /// Esc in a prompt, the editor or a dialog; any key on the help.
    Cancel,
    Resize(u16, u16),
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
}

/// Which keys mean what: the screen's state, as far as key mapping cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Browse,
    Help,
    Prompt,
    Confirm,
    Editor,
}

/// Keys and what they do, in the help overlay's order.
pub const BINDINGS: &[(&str, &str)] = &[
    ("↑ ↓  k j", "previous / next key (scroll in the value pane)"),
    ("PgUp PgDn Space", "a page up / down"),
    ("g G  Home End", "first / last key (top / end of the value)"),
    ("Tab", "switch focus between key list and value pane"),
    ("/", "seek: jump to a key, or the first key after it"),
    ("f", "filter: only keys with a prefix (empty: all keys)"),
    ("r", "refresh keys, value and counts"),
    (
        "e  Enter",
        "edit the value ($VISUAL / $EDITOR, else built in)",
    ),
    ("n", "new key"),
    ("d  Del", "delete the key (asks first: y / n)"),
    ("?  F1", "this help (any key closes it)"),
    ("q  Esc  Ctrl-C", "quit"),
    (
        "",
        "in prompts: Enter accepts, Esc cancels; \\xNN is a byte, \\\\ a backslash",
    ),
    ("", "built-in editor: Ctrl-S or F2 saves, Esc cancels"),
];

/// The action of a key press in `mode`, if any.
pub fn map_key(mode: KeyMode, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match mode {
        KeyMode::Browse => browse_key(key.code),
        KeyMode::Help => Some(Action::Cancel),
        KeyMode::Confirm => match key.code {
            // Only an explicit yes deletes: Enter, the edit key, must not.
            KeyCode::Char('y' | 'Y') => Some(Action::Submit),
            _ => Some(Action::Cancel),
        },
        KeyMode::Prompt | KeyMode::Editor => text_key(mode, key.code, ctrl),
    }
}

fn browse_key(code: KeyCode) -> Option<Action> {
    Some(match code {
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
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
        KeyCode::Char('?') | KeyCode::F(1) => Action::Help,
        _ => return None,
    })
}

fn text_key(mode: KeyMode, code: KeyCode, ctrl: bool) -> Option<Action> {
    let edit = |e| Some(Action::Text(e));
    match code {
        KeyCode::Char('s') if ctrl => Some(Action::Submit),
        KeyCode::F(2) => Some(Action::Submit),
        KeyCode::Enter if mode == KeyMode::Prompt => Some(Action::Submit),
        KeyCode::Enter => edit(TextEdit::Newline),
        KeyCode::Esc => Some(Action::Cancel),
        KeyCode::Char(_) if ctrl => None,
        KeyCode::Char(c) => edit(TextEdit::Insert(c)),
        KeyCode::Tab => edit(TextEdit::Insert('\t')),
        KeyCode::Backspace => edit(TextEdit::Backspace),
        KeyCode::Delete => edit(TextEdit::Delete),
        KeyCode::Left => edit(TextEdit::Left),
        KeyCode::Right => edit(TextEdit::Right),
        KeyCode::Up => edit(TextEdit::Up),
        KeyCode::Down => edit(TextEdit::Down),
        KeyCode::Home => edit(TextEdit::Home),
        KeyCode::End => edit(TextEdit::End),
        _ => None,
    }
}
