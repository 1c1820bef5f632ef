//! Cells whose width the terminal may not agree on, made safe after
//! drawing.
//!
//! ratatui gives a grapheme cluster the width unicode-width gives it, and
//! sends a redraw as the cells that changed. A flag (two regional
//! indicators, 🇫🇷) is one cell two columns wide to it, but tmux (3.3)
//! places each indicator on its own and pairs them as it goes, so a cell
//! redrawn next to one (moving through the list, a title that changed)
//! leaves stray indicators on the screen. The buffer is drawn by the view
//! as usual and its flag cells are then written as the letters they stand
//! for (🇫🇷 as `FR`, underlined so as not to read as typed letters), which
//! every terminal draws one column each, as ratatui counts them. The key,
//! the value and an edit of it keep their bytes: only the screen changes.

use ratatui::buffer::Buffer;
use ratatui::style::Modifier;

/// The regional indicator symbols, 🇦 to 🇿.
const REGIONAL: std::ops::RangeInclusive<char> = '\u{1f1e6}'..='\u{1f1ff}';

/// The letter a regional indicator stands for.
fn letter(c: char) -> Option<char> {
    REGIONAL
        .contains(&c)
        .then(|| char::from_u32(u32::from('A') + u32::from(c) - 0x1f1e6))
        .flatten()
}

/// Rewrites every cell of `buffer` holding a regional indicator as its
/// letters, one a column, over the columns the cell took.
pub fn make_safe(buffer: &mut Buffer) {
    let area = buffer.area;
    for y in area.top()..area.bottom() {
        let mut x = area.left();
        while x < area.right() {
            let cell = &buffer[(x, y)];
            let symbol = cell.symbol();
            if !symbol.chars().any(|c| REGIONAL.contains(&c)) {
                x += 1;
                continue;
            }
            let width = u16::try_from(crate::tui::wrap::width(symbol))
                .unwrap_or(1)
                .max(1);
            let letters: Vec<char> = symbol.chars().filter_map(letter).collect();
            let style = cell.style().add_modifier(Modifier::UNDERLINED);
            for i in 0..width {
                let Some(at) = x.checked_add(i).filter(|at| *at < area.right()) else {
                    break;
                };
                let cell = &mut buffer[(at, y)];
                cell.set_char(letters.get(usize::from(i)).copied().unwrap_or(' '));
                cell.set_style(style);
            }
            x = x.saturating_add(width);
        }
    }
}

#[cfg(test)]
mod tests {
    use ratatui::buffer::Buffer;
    use ratatui::layout::Rect;
    use ratatui::style::Style;

    #[test]
    fn a_flag_is_drawn_as_its_letters() {
        let mut buffer = Buffer::empty(Rect::new(0, 0, 8, 1));
        buffer.set_string(0, 0, "a\u{1f1eb}\u{1f1f7}b\u{1f1ef}", Style::default());
        super::make_safe(&mut buffer);
        let row: String = (0..8)
            .map(|x| buffer[(x, 0)].symbol().to_string())
            .collect();
        assert_eq!(row.trim_end(), "aFRbJ");
    }
}
