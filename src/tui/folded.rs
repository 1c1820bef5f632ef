//! Keys that crossterm split into characters after an Escape it folded.
//!
//! crossterm 0.29 reads `ESC ESC` as one Escape (its parser takes the two
//! bytes as Alt-Escape and reports a plain Esc), so when Escape and an
//! arrow key arrive in one read (typed fast, or read together while the
//! browser was busy drawing) the arrow's own ESC goes with the Escape and
//! the rest of it comes as characters: `ESC ESC [ A` is Esc, `[`, `A`. In
//! the built-in editor that typed `[A` into the text. A `[` or `O` right
//! after an Escape, in the same burst of events, starts such a remainder:
//! [`Remainder`] collects it and gives back the key it stands for, or the
//! characters as they came when it is none.
//!
//! Two Escapes read together stay one Esc: nothing tells them from one.
//! What two Escapes do here (drop an edit, clear a filter) is asked for by
//! the first and done by the second, so a lost one does the lesser thing
//! and the status line says what the next Esc does.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Longest remainder taken (`[1;5A` is Ctrl-Up): past it, the characters
/// are typed ones.
const MAX: usize = 8;

/// What one more character made of a remainder.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Not a remainder: the key is taken as it came.
    No,
    /// Taken; more may follow.
    More,
    /// The remainder ended: the keys it stands for (the key, or the
    /// characters as they came when they name none).
    Done(Vec<KeyEvent>),
}

/// A remainder being collected after an Escape.
#[derive(Debug, Default)]
pub struct Remainder {
    /// After an Escape, in this burst: a remainder may start.
    armed: bool,
    chars: Vec<KeyEvent>,
}

impl Remainder {
    /// An Escape was taken: a `[` or `O` right after it may start a
    /// remainder.
    pub fn arm(&mut self) {
        self.armed = true;
    }

    /// The burst of events ended: what was collected is given back as
    /// the characters it was (a remainder is read in one burst).
    pub fn end(&mut self) -> Vec<KeyEvent> {
        self.armed = false;
        std::mem::take(&mut self.chars)
    }

    /// Takes `key` into the remainder, if it goes on one.
    pub fn step(&mut self, key: KeyEvent) -> Step {
        let plain =
            key.kind != KeyEventKind::Release && (key.modifiers - KeyModifiers::SHIFT).is_empty();
        let c = match key.code {
            KeyCode::Char(c) if plain && self.armed => c,
            _ => {
                self.armed = false;
                return match self.chars.is_empty() {
                    true => Step::No,
                    false => {
                        let mut keys = std::mem::take(&mut self.chars);
                        keys.push(key);
                        Step::Done(keys)
                    }
                };
            }
        };
        if self.chars.is_empty() && c != '[' && c != 'O' {
            self.armed = false;
            return Step::No;
        }
        self.chars.push(key);
        let text: String = self
            .chars
            .iter()
            .filter_map(|k| match k.code {
                KeyCode::Char(c) => Some(c),
                _ => None,
            })
            .collect();
        match decode(&text) {
            Decoded::More if self.chars.len() < MAX => Step::More,
            Decoded::Key(code, modifiers) => {
                self.end();
                Step::Done(vec![KeyEvent::new(code, modifiers)])
            }
            Decoded::More | Decoded::None => Step::Done(self.end()),
        }
    }
}

enum Decoded {
    More,
    None,
    Key(KeyCode, KeyModifiers),
}

/// The key of a CSI (`[…`) or SS3 (`O…`) remainder, as xterm sends them.
fn decode(text: &str) -> Decoded {
    let (ss3, rest) = match text.split_at(1) {
        ("O", rest) => (true, rest),
        (_, rest) => (false, rest),
    };
    let Some(last) = rest.chars().last() else {
        return Decoded::More;
    };
    if ss3 {
        let code = match last {
            'A' => KeyCode::Up,
            'B' => KeyCode::Down,
            'C' => KeyCode::Right,
            'D' => KeyCode::Left,
            'H' => KeyCode::Home,
            'F' => KeyCode::End,
            'P' => KeyCode::F(1),
            'Q' => KeyCode::F(2),
            'R' => KeyCode::F(3),
            'S' => KeyCode::F(4),
            _ => return Decoded::None,
        };
        return Decoded::Key(code, KeyModifiers::NONE);
    }
    if last.is_ascii_digit() || last == ';' {
        return Decoded::More;
    }
    let params = &rest[..rest.len() - last.len_utf8()];
    if !params.chars().all(|c| c.is_ascii_digit() || c == ';') {
        return Decoded::None;
    }
    let mut numbers = params.split(';').map(|p| p.parse::<u8>().ok());
    let first = numbers.next().flatten();
    let modifiers = match numbers.next().flatten() {
        Some(m) if m > 1 => {
            let bits = m - 1;
            let mut mods = KeyModifiers::NONE;
            if bits & 1 != 0 {
                mods |= KeyModifiers::SHIFT;
            }
            if bits & 2 != 0 {
                mods |= KeyModifiers::ALT;
            }
            if bits & 4 != 0 {
                mods |= KeyModifiers::CONTROL;
            }
            mods
        }
        _ => KeyModifiers::NONE,
    };
    let code = match (last, first) {
        ('A', _) => KeyCode::Up,
        ('B', _) => KeyCode::Down,
        ('C', _) => KeyCode::Right,
        ('D', _) => KeyCode::Left,
        ('H', _) => KeyCode::Home,
        ('F', _) => KeyCode::End,
        ('Z', _) => KeyCode::BackTab,
        ('~', Some(1 | 7)) => KeyCode::Home,
        ('~', Some(2)) => KeyCode::Insert,
        ('~', Some(3)) => KeyCode::Delete,
        ('~', Some(4 | 8)) => KeyCode::End,
        ('~', Some(5)) => KeyCode::PageUp,
        ('~', Some(6)) => KeyCode::PageDown,
        ('~', Some(n @ 11..=15)) => KeyCode::F(n - 10),
        ('~', Some(n @ 17..=21)) => KeyCode::F(n - 11),
        ('~', Some(n @ 23..=24)) => KeyCode::F(n - 12),
        _ => return Decoded::None,
    };
    Decoded::Key(code, modifiers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(c: char) -> KeyEvent {
        let shift = match c.is_ascii_uppercase() {
            true => KeyModifiers::SHIFT,
            false => KeyModifiers::NONE,
        };
        KeyEvent::new(KeyCode::Char(c), shift)
    }

    fn feed(r: &mut Remainder, text: &str) -> Vec<Step> {
        text.chars().map(|c| r.step(ch(c))).collect()
    }

    #[test]
    fn an_arrow_after_a_folded_escape_is_the_arrow() {
        let mut r = Remainder::default();
        r.arm();
        let steps = feed(&mut r, "[A");
        assert_eq!(steps[0], Step::More);
        assert_eq!(
            steps[1],
            Step::Done(vec![KeyEvent::new(KeyCode::Up, KeyModifiers::NONE)])
        );
        r.arm();
        let steps = feed(&mut r, "[1;5C");
        assert_eq!(
            steps.last(),
            Some(&Step::Done(vec![KeyEvent::new(
                KeyCode::Right,
                KeyModifiers::CONTROL
            )]))
        );
        r.arm();
        let steps = feed(&mut r, "[5~");
        assert_eq!(
            steps.last(),
            Some(&Step::Done(vec![KeyEvent::new(
                KeyCode::PageUp,
                KeyModifiers::NONE
            )]))
        );
        r.arm();
        let steps = feed(&mut r, "OB");
        assert_eq!(
            steps.last(),
            Some(&Step::Done(vec![KeyEvent::new(
                KeyCode::Down,
                KeyModifiers::NONE
            )]))
        );
    }

    #[test]
    fn characters_that_name_no_key_come_back_as_they_came() {
        let mut r = Remainder::default();
        // Not after an Escape: not a remainder.
        assert_eq!(feed(&mut r, "[A"), vec![Step::No, Step::No]);
        r.arm();
        assert_eq!(feed(&mut r, "x"), vec![Step::No]);
        r.arm();
        let steps = feed(&mut r, "[x");
        assert_eq!(steps[1], Step::Done(vec![ch('['), ch('x')]));
        // A burst that ends half way gives its characters back.
        r.arm();
        assert_eq!(feed(&mut r, "[1"), vec![Step::More, Step::More]);
        assert_eq!(r.end(), vec![ch('['), ch('1')]);
        assert_eq!(feed(&mut r, "["), vec![Step::No]);
    }
}
