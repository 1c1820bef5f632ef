//! Keys that crossterm split into characters after an Escape it folded.
//!
//! crossterm 0.29 reads `ESC ESC` as one Escape (its parser takes the two
//! bytes as Alt-Escape and reports a plain Esc), so when Escape and an
//! arrow key arrive in one read (typed fast, or read together while the
//! browser was busy drawing) the arrow's own ESC goes with the Escape and
//! the rest of it comes as characters: `ESC ESC [ A` is Esc, `[`, `A`. In
//! the built-in editor that typed `[A` into the text. A `[` or `O` soon
//! after an Escape starts such a remainder: [`Remainder`] collects it and
//! gives back the key it stands for, or the characters as they came when
//! it is none.
//!
//! "Soon" is a time, not a read: the terminal may hand over `ESC ESC` in
//! one read and `[A` in the next (seen under load, 10 ms apart). A
//! remainder may start up to [`WINDOW`] after its Escape, as vim's
//! `ttimeoutlen` (100 ms) waits for the rest of a key; characters held
//! meanwhile are typed when it passes. Nobody types `[` that soon after an
//! Escape, so only held keystrokes of a machine wait.
//!
//! Two Escapes read together stay one Esc: nothing tells them from one.
//! What two Escapes do here (drop an edit, clear a filter) is asked for by
//! the first and done by the second, so a lost one does the lesser thing
//! and the status line says what the next Esc does.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Longest remainder taken (`[1;5A` is Ctrl-Up): past it, the characters
/// are typed ones.
const MAX: usize = 8;

/// How long after an Escape a remainder may still start and end.
pub const WINDOW: Duration = Duration::from_millis(100);

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
    /// Until when a remainder may start or go on: an Escape was taken
    /// less than [`WINDOW`] before.
    armed_until: Option<Instant>,
    chars: Vec<KeyEvent>,
}

impl Remainder {
    /// An Escape was taken at `now`: a `[` or `O` soon after it may start
    /// a remainder.
    pub fn arm(&mut self, now: Instant) {
        self.armed_until = Some(now + WINDOW);
    }

    /// When the characters held must be given back, if some are held.
    pub fn deadline(&self) -> Option<Instant> {
        self.armed_until.filter(|_| !self.chars.is_empty())
    }

    /// The characters held, once the window after their Escape has passed
    /// at `now` without a key made of them: they were typed ones.
    pub fn due(&mut self, now: Instant) -> Vec<KeyEvent> {
        match self.armed_until {
            Some(until) if until <= now => self.end(),
            _ => Vec::new(),
        }
    }

    /// Ends the window now: what was held is given back as the characters
    /// it was.
    pub fn end(&mut self) -> Vec<KeyEvent> {
        self.armed_until = None;
        std::mem::take(&mut self.chars)
    }

    /// Takes `key`, read at `now`, into the remainder, if it goes on one.
    pub fn step(&mut self, key: KeyEvent, now: Instant) -> Step {
        let plain =
            key.kind != KeyEventKind::Release && (key.modifiers - KeyModifiers::SHIFT).is_empty();
        let armed = self.armed_until.is_some_and(|until| now < until);
        let c = match key.code {
            KeyCode::Char(c) if plain && armed => c,
            _ => {
                let mut keys = self.end();
                return match keys.is_empty() {
                    true => Step::No,
                    false => {
                        keys.push(key);
                        Step::Done(keys)
                    }
                };
            }
        };
        if self.chars.is_empty() && c != '[' && c != 'O' {
            self.armed_until = None;
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

    fn feed(r: &mut Remainder, text: &str, now: Instant) -> Vec<Step> {
        text.chars().map(|c| r.step(ch(c), now)).collect()
    }

    fn key(code: KeyCode, modifiers: KeyModifiers) -> Step {
        Step::Done(vec![KeyEvent::new(code, modifiers)])
    }

    #[test]
    fn an_arrow_after_a_folded_escape_is_the_arrow() {
        let mut r = Remainder::default();
        let t = Instant::now();
        r.arm(t);
        let steps = feed(&mut r, "[A", t);
        assert_eq!(steps[0], Step::More);
        assert_eq!(steps[1], key(KeyCode::Up, KeyModifiers::NONE));
        r.arm(t);
        let steps = feed(&mut r, "[1;5C", t);
        assert_eq!(
            steps.last(),
            Some(&key(KeyCode::Right, KeyModifiers::CONTROL))
        );
        r.arm(t);
        let steps = feed(&mut r, "[5~", t);
        assert_eq!(
            steps.last(),
            Some(&key(KeyCode::PageUp, KeyModifiers::NONE))
        );
        r.arm(t);
        let steps = feed(&mut r, "OB", t);
        assert_eq!(steps.last(), Some(&key(KeyCode::Down, KeyModifiers::NONE)));
    }

    /// The terminal handed over `ESC ESC` and, 10 ms later, `[D`: still
    /// the arrow, and nothing is due meanwhile.
    #[test]
    fn a_remainder_read_apart_from_its_escape_is_still_the_arrow() {
        let mut r = Remainder::default();
        let t = Instant::now();
        r.arm(t);
        let later = t + Duration::from_millis(10);
        assert_eq!(r.due(later), vec![]);
        assert_eq!(r.step(ch('['), later), Step::More);
        assert_eq!(r.deadline(), Some(t + WINDOW));
        assert_eq!(r.due(later + Duration::from_millis(5)), vec![]);
        assert_eq!(
            r.step(ch('D'), later + Duration::from_millis(10)),
            key(KeyCode::Left, KeyModifiers::NONE)
        );
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn characters_that_name_no_key_come_back_as_they_came() {
        let mut r = Remainder::default();
        let t = Instant::now();
        // Not after an Escape: not a remainder.
        assert_eq!(feed(&mut r, "[A", t), vec![Step::No, Step::No]);
        r.arm(t);
        assert_eq!(feed(&mut r, "x", t), vec![Step::No]);
        r.arm(t);
        let steps = feed(&mut r, "[x", t);
        assert_eq!(steps[1], Step::Done(vec![ch('['), ch('x')]));
        // Past the window: typed characters, not a remainder.
        r.arm(t);
        assert_eq!(feed(&mut r, "[A", t + WINDOW), vec![Step::No, Step::No]);
        // Held characters come back once the window passed, and before a
        // key that ends them.
        r.arm(t);
        assert_eq!(feed(&mut r, "[1", t), vec![Step::More, Step::More]);
        assert_eq!(r.due(t + WINDOW / 2), vec![]);
        assert_eq!(r.due(t + WINDOW), vec![ch('['), ch('1')]);
        assert_eq!(feed(&mut r, "[", t + WINDOW), vec![Step::No]);
        r.arm(t);
        assert_eq!(feed(&mut r, "O", t), vec![Step::More]);
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(r.step(enter, t), Step::Done(vec![ch('O'), enter]));
        // Ending the window gives back what is held at once.
        r.arm(t);
        assert_eq!(feed(&mut r, "[", t), vec![Step::More]);
        assert_eq!(r.end(), vec![ch('[')]);
        assert_eq!(r.deadline(), None);
    }
}
