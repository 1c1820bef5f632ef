//! Grapheme clusters (an accent with its letter, an emoji ZWJ sequence):
//! the built-in editor moves and deletes by them, and the value pane, the
//! editor and the key list wrap or cut between them, never inside one.

use ratatui::buffer::CellWidth;

use super::*;
use crate::tui::editview::CONTINUED;

/// 👨‍👩‍👧: three emoji joined by ZWJs, drawn in two columns.
const FAMILY: &str = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}";
/// At (100, 12) the value pane is 70 columns wide, 68 inside its borders
/// (67 of text in the editor, and one for its mark), from column 31.
const SIZE: (u16, u16) = (100, 12);
const LEFT: u16 = 31;
const PANE: u16 = 68;

/// The symbols drawn on row `y` from column `x`, `width` columns: one a
/// cell, skipping the cells a wide one covers; blanks at the end left out.
fn cells(app: &App, x: u16, y: u16, width: u16) -> Vec<String> {
    let buffer = draw(app);
    let mut out = Vec::new();
    let mut at = x;
    while at < x + width {
        let symbol = buffer[(at, y)].symbol();
        out.push(symbol.to_string());
        at += symbol.cell_width().max(1);
    }
    while out.last().is_some_and(|s| s == " ") {
        out.pop();
    }
    out
}

fn press_key(s: &mut Session, code: KeyCode, times: usize) {
    for _ in 0..times {
        press(s, KeyEvent::new(code, KeyModifiers::NONE));
    }
}

/// Where the terminal's cursor is drawn.
fn cursor(app: &App) -> (u16, u16) {
    let (w, h) = app.size;
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view::render(f, app)).unwrap();
    let at = terminal.get_cursor_position().unwrap();
    (at.x, at.y)
}

/// `cafe` + a combining acute accent (é in two code points), then a
/// family emoji: Left, Right, Backspace and Delete take each whole, so a
/// letter typed next to one never lands inside it.
#[test]
fn the_editor_moves_and_deletes_by_grapheme_cluster() {
    let value = format!("cafe\u{301} {FAMILY}!");
    let line = serde_json::json!({"key": "word", "value": value}).to_string();
    let (_dir, path) = store_with(&format!("{line}\n"));
    let mut s = browse(&path, None, SIZE);
    keys(&mut s, "e");
    // Right over c, a, f and é: the s goes after the accent, not between
    // it and its e.
    press_key(&mut s, KeyCode::Home, 1);
    press_key(&mut s, KeyCode::Right, 4);
    assert_eq!(cursor(&s.app), (LEFT + 4, 1));
    keys(&mut s, "s");
    assert_eq!(editor_text(&s).unwrap(), format!("cafe\u{301}s {FAMILY}!"));
    // Over the space and the whole family (two columns).
    press_key(&mut s, KeyCode::Right, 2);
    assert_eq!(cursor(&s.app), (LEFT + 8, 1));
    keys(&mut s, "x");
    assert_eq!(editor_text(&s).unwrap(), format!("cafe\u{301}s {FAMILY}x!"));
    // Backspace takes the x, then the family whole.
    press_key(&mut s, KeyCode::Backspace, 2);
    assert_eq!(editor_text(&s).unwrap(), "cafe\u{301}s !");
    // Left back over the space and the s; Left again stands before é,
    // which Delete takes whole.
    press_key(&mut s, KeyCode::Left, 3);
    assert_eq!(cursor(&s.app), (LEFT + 3, 1));
    press_key(&mut s, KeyCode::Delete, 1);
    assert_eq!(editor_text(&s).unwrap(), "cafs !");
    press(
        &mut s,
        KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL),
    );
    assert!(
        shows(&s.app, "saved word (revision 2)"),
        "{:?}",
        screen(&s.app)
    );
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"word"), Some((b"cafs !".to_vec(), 2)));
}

/// `x` and 40 families: 33 fill the first row of the value pane (1 + 66
/// of its 68 columns), the 34th starts the next; every cell holds a whole
/// family (per code point, the wrap counted six columns for each, and
/// broke rows inside one).
#[test]
fn the_value_pane_wraps_between_emoji_zwj_sequences() {
    let value = format!("x{}", FAMILY.repeat(40));
    let line = serde_json::json!({"key": "fam", "value": value}).to_string();
    let (_dir, path) = store_with(&format!("{line}\n"));
    let s = browse(&path, None, SIZE);
    let first = cells(&s.app, LEFT, 1, PANE);
    let second = cells(&s.app, LEFT, 2, PANE);
    let mut want = vec!["x".to_string()];
    want.extend(std::iter::repeat_n(FAMILY.to_string(), 33));
    assert_eq!(first, want, "{:?}", screen(&s.app));
    assert_eq!(second, vec![FAMILY.to_string(); 7]);
    assert!(cells(&s.app, LEFT, 3, PANE).is_empty());
}

/// The editor wraps the same way: 33 families and the mark, then 7.
#[test]
fn the_editor_wraps_between_emoji_zwj_sequences() {
    let value = format!("x{}", FAMILY.repeat(40));
    let line = serde_json::json!({"key": "fam", "value": value}).to_string();
    let (_dir, path) = store_with(&format!("{line}\n"));
    let mut s = browse(&path, None, SIZE);
    keys(&mut s, "e");
    let mut want = vec!["x".to_string()];
    want.extend(std::iter::repeat_n(FAMILY.to_string(), 33));
    assert_eq!(
        cells(&s.app, LEFT, 1, PANE - 1),
        want,
        "{:?}",
        screen(&s.app)
    );
    assert_eq!(draw(&s.app)[(LEFT + PANE - 1, 1)].symbol(), CONTINUED);
    assert_eq!(
        cells(&s.app, LEFT, 2, PANE - 1),
        vec![FAMILY.to_string(); 7]
    );
    // The cursor at the end: after the 7 families of the second row.
    assert_eq!(cursor(&s.app), (LEFT + 14, 2));
    // Up keeps the column, 14: before the 7th family of the first row,
    // which covers it (x takes one column).
    press_key(&mut s, KeyCode::Up, 1);
    keys(&mut s, "!");
    let text = editor_text(&s).unwrap();
    assert_eq!(text, format!("x{}!{}", FAMILY.repeat(6), FAMILY.repeat(34)));
}

/// A ZWJ that joins nothing (after a letter, or at the end of a line) is
/// not drawn: tmux joins the next emoji it prints to it, so its screen
/// would differ from ratatui's. A key cut to the list's width keeps its
/// emoji whole.
#[test]
fn a_zwj_that_joins_nothing_is_not_drawn_and_keys_cut_between_clusters() {
    let key = format!("kk{}", FAMILY.repeat(20));
    let lines = [
        serde_json::json!({"key": "a", "value": "ab\u{200d}\u{1f467}cd\nend\u{200d}"}),
        serde_json::json!({"key": key, "value": "v"}),
    ];
    let lines: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let (_dir, path) = store_with(&lines);
    let s = browse(&path, None, SIZE);
    assert_eq!(
        cells(&s.app, LEFT, 1, PANE),
        ["a", "b", "\u{1f467}", "c", "d"]
    );
    assert_eq!(cells(&s.app, LEFT, 2, PANE), ["e", "n", "d"]);
    // The list: 26 columns for the key after the marker, cut in its
    // middle: kk and 5 families, the ellipsis, the last 6 families (12 of
    // the 13 columns its end has: a family takes two).
    let mut want = vec!["k".to_string(), "k".to_string()];
    want.extend(std::iter::repeat_n(FAMILY.to_string(), 5));
    want.push("…".to_string());
    want.extend(std::iter::repeat_n(FAMILY.to_string(), 6));
    assert_eq!(cells(&s.app, 3, 2, 26), want, "{:?}", screen(&s.app));
}

/// A dialog whose left edge falls on the second half of a wide character
/// behind it: the character goes (a blank in its place), so the
/// terminal, which draws a wide character over both its columns, does
/// not draw it over the dialog's border.
#[test]
fn a_dialog_over_half_a_wide_character_keeps_its_border() {
    let mut terminal = Terminal::new(TestBackend::new(20, 5)).unwrap();
    let frame = terminal
        .draw(|f| {
            // 日本語キー from column 2: 本 covers columns 4 and 5.
            let line = ratatui::layout::Rect::new(0, 2, 20, 1);
            f.render_widget(ratatui::widgets::Paragraph::new("  日本語キー"), line);
            let area = crate::tui::view::popup(f, 11, 3);
            assert_eq!(area.x, 5, "the box starts on 本's second column");
            f.render_widget(ratatui::widgets::Block::bordered(), area);
        })
        .unwrap();
    let buffer = frame.buffer;
    assert_eq!(buffer[(4, 2)].symbol(), " ");
    assert_eq!(buffer[(5, 2)].symbol(), "│");
    assert_eq!(buffer[(2, 2)].symbol(), "日", "the rest of the line stays");
}
