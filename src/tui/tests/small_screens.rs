//! What the browser shows at the small sizes a black-box audit tried:
//! the dialogs keep every key line, messages keep what they say to do,
//! footers and titles give way whole, and text cut anywhere ends in `…`.

use super::*;
use crate::tui::app::Mode;

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

/// The screen as one string, for messages.
fn text(s: &Session) -> String {
    screen(&s.app).join("\n")
}

/// At 20x5 (three rows inside a dialog) the invalid-JSON dialog shows its
/// keys in short, a row each: `d` was left out of the long form's rows.
#[test]
fn the_invalid_json_dialog_keeps_every_key_at_20x5() {
    let (_dir, path) = store_with("");
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "nzz:json\n{\"a\": 1} x");
    press(&mut s, ctrl('s'));
    assert!(matches!(s.app.mode, Mode::InvalidJson { .. }));
    act(&mut s, &[Action::Resize(24, 6)]);
    let shown = text(&s);
    assert!(shown.contains("d: drop the edit"), "{shown}");
    act(&mut s, &[Action::Resize(20, 5)]);
    let shown = text(&s);
    for want in ["e/Enter/Esc: edit", "t: save as text", "d: drop the edit"] {
        assert!(shown.contains(want), "no {want:?} in:\n{shown}");
    }
    assert!(shown.contains("┗━"), "the dialog's bottom:\n{shown}");
    // The keys still do what they say.
    keys(&mut s, "d");
    assert!(matches!(s.app.mode, Mode::Browse), "{:?}", s.app.mode);
    s.shutdown();
}

/// At 20x5 the conflict dialog shows its keys in short, a row each (`e /
/// Enter / Esc` was left out), and so does `r`'s question.
#[test]
fn the_conflict_dialog_keeps_every_key_at_20x5() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "e");
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    keys(&mut s, ", world");
    press(&mut s, ctrl('s'));
    assert!(matches!(s.app.mode, Mode::Conflict(_)));
    act(&mut s, &[Action::Resize(20, 5)]);
    let shown = text(&s);
    for want in ["o: overwrite", "r: drop & reload", "e/Enter/Esc: back"] {
        assert!(shown.contains(want), "no {want:?} in:\n{shown}");
    }
    assert!(shown.contains("┗━"), "the dialog's bottom:\n{shown}");
    keys(&mut s, "r");
    let shown = text(&s);
    for want in ["Drop your text?", "y: drop it", "n/Esc: keep it"] {
        assert!(shown.contains(want), "no {want:?} in:\n{shown}");
    }
    keys(&mut s, "n");
    // The key deleted: `o` creates it again.
    other.delete(b"note", None).unwrap();
    keys(&mut s, "e");
    press(&mut s, ctrl('s'));
    let shown = text(&s);
    for want in ["o: save yours", "r: drop & reload", "e/Enter/Esc: back"] {
        assert!(shown.contains(want), "no {want:?} in:\n{shown}");
    }
    // Wider, the full keys fit again (two keys may share a row).
    act(&mut s, &[Action::Resize(60, 5)]);
    let shown = text(&s);
    assert!(
        shown.contains("e / Enter / Esc: back to your text"),
        "{shown}"
    );
    assert_eq!(editor_text(&s).as_deref(), Some("hello, world"));
}

/// At 30x8, Esc over changed text in the built-in editor says what the
/// next keys do: its message, too long for the line, says just that, in
/// short (the middle cut lost "Esc again drops it"); wide enough, whole.
#[test]
fn a_short_message_keeps_what_it_says_to_do_at_30x8() {
    let (_dir, path) = store_with("{\"key\":\"note\",\"value\":\"hello\"}\n");
    let mut s = browse(&path, None, (30, 8));
    keys(&mut s, "e!\x1b");
    let last = screen(&s.app).pop().unwrap_or_default();
    assert_eq!(last, "Esc again drops, Ctrl-S saves");
    act(&mut s, &[Action::Resize(80, 8)]);
    let last = screen(&s.app).pop().unwrap_or_default();
    assert_eq!(
        last,
        "your text is not saved: Esc again drops it, Ctrl-S saves it"
    );
    // The message's keys do what it says.
    keys(&mut s, "\x1b");
    assert!(matches!(s.app.mode, Mode::Browse), "{:?}", s.app.mode);
    s.shutdown();
}

/// At 20x5 the help's footer is just its percentage, as the value pane's
/// is in a narrow pane (it was cut at its left edge: `┗es 1–1 of 98`).
#[test]
fn the_help_footer_gives_way_to_its_percentage_at_20x5() {
    let (_dir, path) = store_with(&numbered(3));
    let mut s = browse(&path, None, (20, 5));
    keys(&mut s, "?");
    assert!(matches!(s.app.mode, Mode::Help { .. }));
    let shown = screen(&s.app);
    let bottom = shown
        .iter()
        .find(|l| l.contains('┗'))
        .unwrap_or_else(|| panic!("no bottom border in {shown:?}"));
    assert!(
        bottom.starts_with("┗━") && bottom.ends_with("━ 1% ┛"),
        "{bottom}"
    );
    assert!(!bottom.contains("lines"), "{bottom}");
    // Wide enough, the footer names the lines too.
    act(&mut s, &[Action::Resize(60, 8)]);
    assert!(shows(&s.app, "lines 1–4 of"), "{:?}", screen(&s.app));
    s.shutdown();
}

/// At 60x10 a short key stays whole in the value pane's title: the fields
/// after it give way, the least telling first, and the sign that the
/// value is shown in part stays (`big…ines · rev 1 · 32.1 KiB · t…`).
#[test]
fn a_short_key_stays_whole_in_the_value_title_at_60x10() {
    let lines = "line\\n".repeat(11_000);
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"big:lines\",\"value\":\"{lines}\"}}\n"
    ));
    let mut s = browse(&path, None, (120, 10));
    let top = screen(&s.app)[0].clone();
    assert!(
        top.contains(" big:lines · rev 1 · 53.7 KiB · text · showing the first 10000 lines "),
        "{top}"
    );
    s.app.size = (60, 10);
    let top = screen(&s.app)[0].clone();
    assert!(
        top.ends_with("┓┌ big:lines · first 10000 lines ───────┐"),
        "{top}"
    );
    s.app.size = (80, 10);
    let top = screen(&s.app)[0].clone();
    assert!(
        top.contains("┌ big:lines · 53.7 KiB · text · first 10000 lines ─"),
        "{top}"
    );
    // Narrower, the partial sign is cut at its end, then goes.
    keys(&mut s, "\t");
    s.app.size = (30, 10);
    let top = screen(&s.app)[0].clone();
    assert_eq!(top, "┏ big:lines · first 10000… ━━┓");
    s.app.size = (20, 10);
    let top = screen(&s.app)[0].clone();
    assert_eq!(top, "┏ big:lines ━━━━━━━┓");
    use crate::tui::fit::fit_words;
    assert_eq!(fit_words("first 256.0 KiB as text", 15), "first 256.0…");
    assert_eq!(fit_words("first 256.0 KiB", 15), "first 256.0 KiB");
    assert_eq!(fit_words("abcdefgh ij", 5), "abcd…");
    s.shutdown();
}

/// A key longer than the value title keeps 8 columns there, and the
/// fields after it give way whole, the least telling first, as for a key
/// that fits: at widths 44-52 the title was cut mid-field at the border
/// (`con…size · rev 3 · 1 B · t…`; found by an audit).
#[test]
fn a_long_key_s_title_fields_give_way_whole() {
    let key = "config:service:production:database:primary:connection:pool_size";
    let (_dir, path) = store_with(&format!("{{\"key\":\"{key}\",\"value\":\"5\"}}\n"));
    let mut s = browse(&path, None, (120, 10));
    keys(&mut s, "\t");
    for width in 44..=52 {
        s.app.size = (width, 10);
        let top = screen(&s.app)[0].clone();
        let title = top
            .split('┏')
            .nth(1)
            .or_else(|| top.split('┌').nth(1))
            .unwrap_or(&top);
        // Each field whole: none ends in `…` but the key's middle.
        let fields: Vec<&str> = title.split(" · ").skip(1).collect();
        assert!(!fields.is_empty(), "{top}");
        for f in &fields {
            let f = f.trim_end_matches(['━', '─', '┓', '┐', ' ']);
            assert!(
                ["text", "1 B"].contains(&f) || f.starts_with("rev "),
                "{width}: {f:?} in {top}"
            );
        }
    }
    s.shutdown();
}

/// At 120x40, a pattern's read stopped before a match: the key list says
/// so in rows of its width, what to do whole (it was cut at the border:
/// `(no match in the 70,000 keys read; r r`).
#[test]
fn a_message_in_the_key_list_wraps_at_120x40() {
    let (_dir, path) = store_with(&numbered(40_000));
    let mut s = browse(&path, None, (120, 40));
    keys(&mut s, "f*ZZ*");
    // Enter, then the steps one at a time, to stop half way.
    s.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    while s.app.pager.scanning().unwrap_or(0) < 10_000 {
        assert!(s.answer_one(SETTLE), "a step did not come");
    }
    keys(&mut s, "\x1b");
    let shown = screen(&s.app);
    assert!(
        shown[1].starts_with("┃(no match in the 10,000 keys read; r  ┃"),
        "{shown:?}"
    );
    assert!(
        shown[2].starts_with("┃reads on)                             ┃"),
        "{shown:?}"
    );
    // Too few rows for it: the last one shown ends in `…`.
    s.app.size = (40, 5);
    let shown = screen(&s.app);
    assert!(shown[1].starts_with("┃(no match in the… ┃"), "{shown:?}");
    // The status bar and the message end in `…` or what to do.
    assert_eq!(shown[3], " filter *ZZ* · no match in the first…");
    assert_eq!(shown[4], "r reads on, Esc clears the filter");
    s.shutdown();
}

/// At 20x5 the status bar drops whole parts, the revision and the help
/// hint first, and cuts the last one left at a word, ending in `…` (it
/// ended `key 100,015 of 100,`, which reads as a number).
#[test]
fn the_status_bar_ends_in_an_ellipsis_or_a_whole_part_at_20x5() {
    let (_dir, path) = store_with(&numbered(100_015));
    let mut s = browse(&path, None, (100, 5));
    keys(&mut s, "G");
    let bar = |s: &Session| screen(&s.app)[3].clone();
    assert!(
        bar(&s).contains(" key 100,015 of 100,015 │ revision 100015 │ ? help · q quit"),
        "{}",
        bar(&s)
    );
    s.app.size = (44, 5);
    assert_eq!(bar(&s), " key 100,015 of 100,015 │ ? help · q quit");
    s.app.size = (20, 5);
    assert_eq!(bar(&s), " key 100,015 of…");
    s.app.size = (24, 5);
    assert_eq!(bar(&s), " key 100,015 of 100,015");
    s.shutdown();
}
