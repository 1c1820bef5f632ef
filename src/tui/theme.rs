//! Colours and text styles, in one place so that `NO_COLOR` is one switch.
//!
//! With colours off every style here is built from modifiers only (bold,
//! reversed, dim), so the screen stays usable on a monochrome terminal and
//! honours <https://no-color.org>.

use ratatui::style::{Color, Modifier, Style};

/// The styles of every element of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to a non-empty value.
    pub fn from_env() -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme { color: !no_color }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    pub fn json_key(self) -> Style {
        self.fg(Color::Cyan)
    }
    pub fn json_string(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn json_number(self) -> Style {
        self.fg(Color::Yellow)
    }
    pub fn json_literal(self) -> Style {
        self.fg(Color::Magenta)
    }
    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    pub fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }
    /// The row under the cursor; reversed so it shows without colours.
    pub fn selected(self, focused: bool) -> Style {
        let style = Style::new().add_modifier(Modifier::REVERSED);
        if focused && self.color {
            style.fg(Color::Yellow)
        } else {
            style
        }
    }
    pub fn border(self, focused: bool) -> Style {
        match (focused, self.color) {
            (true, true) => Style::new().fg(Color::Yellow),
            (true, false) => Style::new().add_modifier(Modifier::BOLD),
            (false, _) => Style::new(),
        }
    }
    pub fn status_bar(self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
}
