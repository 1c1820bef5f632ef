//! The built-in editor soft-wraps lines wider than it: every character
//! is on screen, a mark ends each row whose line goes on, the terminal's
//! cursor is where the next character goes, Up and Down move through the
//! rows, and what is saved is the text as typed (no line breaks added).

use super::*;
use crate::tui::editview::CONTINUED;

/// At (100, 12) the editor is the value pane: 70 columns, 68 inside its
/// borders, 67 of text and one for the mark.
const SIZE: (u16, u16) = (100, 12);
const COLS: usize = 67;
/// The editor's first column and row of text on screen.
const LEFT: u16 = 31;
const TOP: u16 = 1;

fn ctrl_s(s: &mut Session) {
    press(s, KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
}

/// Where the terminal's cursor is drawn.
fn cursor(app: &App) -> (u16, u16) {
    let (w, h) = app.size;
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view::render(f, app)).unwrap();
    let at = terminal.get_cursor_position().unwrap();
    (at.x, at.y)
}

/// The editor's rows of text on screen, each with whether it ends in
/// the mark.
fn editor_rows(app: &App) -> Vec<(String, bool)> {
    let buffer = draw(app);
    let inner = u16::try_from(COLS).unwrap();
    (TOP..buffer.area.height - 3)
        .map(|y| {
            // A wide character's second cell holds no character of its own.
            let mut text = String::new();
            let mut x = LEFT;
            while x < LEFT + inner {
                let symbol = buffer[(x, y)].symbol();
                text.push_str(symbol);
                let width = ratatui::text::Span::raw(symbol).width();
                x += u16::try_from(width.max(1)).unwrap();
            }
            let mark = buffer[(LEFT + inner, y)].symbol() == CONTINUED;
            (text.trim_end().to_string(), mark)
        })
        .filter(|(text, _)| !text.is_empty())
        .collect()
}

#[test]
fn a_long_line_wraps_and_is_saved_as_typed() {
    let long: String = (0..150)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let (_dir, path) = store_with(&format!("{{\"key\":\"long\",\"value\":\"{long}\"}}\n"));
    let mut s = browse(&path, None, SIZE);
    keys(&mut s, "e");
    let rows = editor_rows(&s.app);
    let want = [
        (long[..COLS].to_string(), true),
        (long[COLS..2 * COLS].to_string(), true),
        (long[2 * COLS..].to_string(), false),
    ];
    assert_eq!(rows, want, "{:?}", screen(&s.app));
    // The cursor at the end of the text: after the 16 characters of the
    // last row.
    assert_eq!(cursor(&s.app), (LEFT + 16, TOP + 2));
    // Up: the same column on the row above, char 67 + 16.
    press(&mut s, KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
    assert_eq!(cursor(&s.app), (LEFT + 16, TOP + 1));
    keys(&mut s, "X");
    assert_eq!(cursor(&s.app), (LEFT + 17, TOP + 1));
    ctrl_s(&mut s);
    assert!(
        shows(&s.app, "saved long (revision 2)"),
        "{:?}",
        screen(&s.app)
    );
    s.shutdown();
    drop(s);
    let mut want = long.clone();
    want.insert(COLS + 16, 'X');
    assert_eq!(stored(&path, b"long"), Some((want.into_bytes(), 2)));
}

/// Wide characters take two columns: 33 of them fill a row of 67 (the
/// 34th does not fit and starts the next row); the cursor moves by
/// columns, and lands before a character that covers its column.
#[test]
fn wide_characters_wrap_by_their_width() {
    let wide = "日本語".repeat(40);
    let (_dir, path) = store_with(&format!("{{\"key\":\"jp\",\"value\":\"{wide}\"}}\n"));
    let mut s = browse(&path, None, SIZE);
    keys(&mut s, "e");
    let chars: Vec<char> = wide.chars().collect();
    let row = |r: usize| {
        chars[r * 33..((r + 1) * 33).min(120)]
            .iter()
            .collect::<String>()
    };
    let rows = editor_rows(&s.app);
    let want: Vec<(String, bool)> = (0..4).map(|r| (row(r), r < 3)).collect();
    assert_eq!(rows, want, "{:?}", screen(&s.app));
    // 120 = 3 × 33 + 21: the end is at column 42 of the fourth row.
    assert_eq!(cursor(&s.app), (LEFT + 42, TOP + 3));
    press(&mut s, KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
    assert_eq!(cursor(&s.app), (LEFT + 42, TOP + 2));
    // Home, then Right ×3 and Down: column 6 of the second row.
    press(&mut s, KeyEvent::new(KeyCode::Home, KeyModifiers::NONE));
    for _ in 0..3 {
        press(&mut s, KeyEvent::new(KeyCode::Right, KeyModifiers::NONE));
    }
    press(&mut s, KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
    assert_eq!(cursor(&s.app), (LEFT + 6, TOP + 1));
    keys(&mut s, "x");
    // A one-column character shifts the rest: 日本語 at 36 breaks later.
    assert_eq!(cursor(&s.app), (LEFT + 7, TOP + 1));
    ctrl_s(&mut s);
    s.shutdown();
    drop(s);
    let mut want = chars.clone();
    want.insert(36, 'x');
    let want: String = want.into_iter().collect();
    assert_eq!(stored(&path, b"jp"), Some((want.into_bytes(), 2)));
}

/// A text taller than the editor scrolls only as far as keeps the
/// cursor on screen, counting wrapped rows.
#[test]
fn the_editor_scrolls_by_rows_on_screen() {
    let lines: Vec<String> = (0..6).map(|i| format!("{i}{}", "-".repeat(99))).collect();
    let escaped = lines.join("\\n");
    let (_dir, path) = store_with(&format!("{{\"key\":\"tall\",\"value\":\"{escaped}\"}}\n"));
    let mut s = browse(&path, None, SIZE);
    keys(&mut s, "e");
    // 12 rows of text (two a line), 8 on screen: the last 8.
    let rows = editor_rows(&s.app);
    assert_eq!(rows.len(), 8);
    assert!(rows[0].0.starts_with('2') && rows[0].1, "{rows:?}");
    assert_eq!(cursor(&s.app), (LEFT + 33, TOP + 7));
    // Up through the rows: the view stays until the cursor reaches its top.
    for _ in 0..7 {
        press(&mut s, KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
    }
    assert_eq!(cursor(&s.app), (LEFT + 33, TOP));
    assert!(editor_rows(&s.app)[0].0.starts_with('2'));
    press(&mut s, KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
    assert_eq!(cursor(&s.app), (LEFT + 33, TOP));
    let rows = editor_rows(&s.app);
    assert!(
        rows[0].0.starts_with('-') && rows[1].0.starts_with('2'),
        "{rows:?}"
    );
    keys(&mut s, "\x1b");
    s.shutdown();
    drop(s);
    assert_eq!(
        stored(&path, b"tall"),
        Some((lines.join("\n").into_bytes(), 1))
    );
}

/// A prompt's cursor counts columns too: after `日本x` it is five columns
/// past the label.
#[test]
fn a_prompt_cursor_counts_columns() {
    let (_dir, path) = store_with(&numbered(1));
    let mut s = browse(&path, None, SIZE);
    keys(&mut s, "/日本x");
    let label = "seek to key: ".len() as u16;
    assert_eq!(cursor(&s.app), (label + 5, SIZE.1 - 1));
    press(&mut s, KeyEvent::new(KeyCode::Left, KeyModifiers::NONE));
    assert_eq!(cursor(&s.app), (label + 4, SIZE.1 - 1));
}

/// A space that ends a line exactly at the value pane's edge does not
/// make a row of its own: the value has no empty line there.
#[test]
fn a_space_at_the_wrap_point_makes_no_empty_row() {
    let cols = 68;
    let first = format!(
        "{:.<width$} ",
        "ends with a space at the edge ",
        width = cols
    );
    let value = format!("{first}\nsecond line\n");
    let line = serde_json::json!({"key": "wrap", "value": value});
    let (_dir, path) = store_with(&format!("{line}\n"));
    let s = browse(&path, None, (100, 20));
    assert_eq!(s.app.value_columns(), cols);
    let text = screen(&s.app);
    assert!(
        text[1].contains("ends with a space at the edge ...."),
        "{text:?}"
    );
    assert!(text[2].contains("│second line"), "{text:?}");
    // Two lines, two rows (scrolling counts them too).
    assert_eq!(s.app.value_rows(), 2);
}

/// After the terminal grows, the editor shows as many lines as fit,
/// cursor in view (it kept its top, leaving the rows below the text blank
/// while the lines above were hidden).
#[test]
fn the_editor_fills_a_taller_screen() {
    let lines: Vec<String> = (1..=40).map(|i| format!("line {i}")).collect();
    let escaped = lines.join("\\n");
    let (_dir, path) = store_with(&format!("{{\"key\":\"tall\",\"value\":\"{escaped}\"}}\n"));
    let mut s = browse(&path, None, (60, 10));
    keys(&mut s, "e");
    // Up to line 36 (the view moves with it), then type: the view is kept.
    for _ in 0..4 {
        press(&mut s, KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
    }
    keys(&mut s, "@");
    let shown = screen(&s.app).join("\n");
    assert!(
        shown.contains("┃line 40") && !shown.contains("┃line 30"),
        "{shown}"
    );
    act(&mut s, &[Action::Resize(60, 30)]);
    // 26 rows of text: lines 15 to 40, the cursor's (36) in view.
    let shown = screen(&s.app).join("\n");
    for want in ["┃line 15", "┃line 36@", "┃line 40"] {
        assert!(shown.contains(want), "no {want:?} in:\n{shown}");
    }
    assert!(!shown.contains("┃line 14"), "{shown}");
    // Typing keeps that view.
    keys(&mut s, "#");
    let shown = screen(&s.app).join("\n");
    assert!(
        shown.contains("┃line 15") && shown.contains("┃line 36@#"),
        "{shown}"
    );
    keys(&mut s, "\x1b\x1b");
    s.shutdown();
}
