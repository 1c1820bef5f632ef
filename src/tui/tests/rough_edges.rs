//! The rough edges of issue 10, each driven through the key map and the
//! real store: Esc never quits, prompts, edits that change nothing or break
//! JSON, `n` on an existing key, the status bar, seeks past the end, long
//! keys and the clipboard.

use super::flows::script;
use super::*;
use crate::tui::action::{Copy, TextEdit};
use crate::tui::app::Mode;
use crate::tui::session::run_loop;
use crate::tui::view::thousands;

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn alt(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT)
}

fn code(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
    KeyEvent::new(code, modifiers)
}

/// The prompt's text and cursor column.
fn prompt(s: &Session) -> (String, usize) {
    match &s.app.mode {
        Mode::Prompt { input, .. } => (input.text(), input.col),
        other => panic!("no prompt: {other:?}"),
    }
}

/// Escape then a key, read together, arrive as one Alt- key (a terminal
/// sends Alt-x as ESC x): taken as Escape and then the key, nothing lost.
#[test]
fn escape_and_a_key_read_together_are_both_taken() {
    let (_dir, path) = store_with(&numbered(30));
    let mut s = browse(&path, None, (100, 24));
    // Escape closes the help, then q quits.
    keys(&mut s, "?");
    assert_eq!(s.app.mode, Mode::Help { scroll: 0 });
    press(&mut s, alt('q'));
    assert!(s.app.quit, "the q after the Escape quit");
    s.shutdown();
    drop(s);

    let mut s = browse(&path, None, (100, 24));
    // In the list: Escape (says how to quit), then j moves down.
    press(&mut s, alt('j'));
    assert_eq!(selected(&s.app), "key:00001");
    assert!(shows(&s.app, "q quits"));
    // In a prompt, an Alt- key it does not bind: Escape closes the prompt,
    // then the key does what it does in the list.
    keys(&mut s, "/key:0002");
    press(&mut s, alt('j'));
    assert_eq!(s.app.mode, Mode::Browse, "the Escape closed the seek");
    assert_eq!(selected(&s.app), "key:00002", "then j moved down");
    // One it binds stays itself (Alt-b: back a word).
    keys(&mut s, "/ab cd");
    press(&mut s, alt('b'));
    assert_eq!(prompt(&s), ("ab cd".to_string(), 3));
    assert!(!s.app.quit);
}

#[test]
fn esc_closes_and_clears_and_only_q_and_ctrl_c_quit() {
    let (_dir, path) = store_with(&numbered(30));
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "\x1b\x1b");
    assert!(!s.app.quit, "Esc in the main view does not quit");
    assert!(shows(&s.app, "q quits"));
    for opener in ["?", "/", "f", "n", "d"] {
        keys(&mut s, opener);
        assert_ne!(s.app.mode, Mode::Browse, "{opener} opened something");
        keys(&mut s, "\x1b");
        assert_eq!(s.app.mode, Mode::Browse, "Esc closed what {opener} opened");
        keys(&mut s, "\x1b");
        assert!(!s.app.quit, "one Esc too many after {opener} does not quit");
    }
    keys(&mut s, "fkey:0001\n");
    assert_eq!(selected(&s.app), "key:00010");
    assert!(shows(&s.app, "Keys starting with key:0001"));
    keys(&mut s, "\x1b");
    assert!(shows(&s.app, "filter cleared: all keys"));
    assert!(!shows(&s.app, "Keys starting with"));
    // The selection stays where it was, among all keys now.
    assert_eq!(selected(&s.app), "key:00010");
    assert!(!s.app.quit);
    keys(&mut s, "q");
    assert!(s.app.quit, "q quits");
    s.shutdown();
    drop(s);

    let mut s = browse(&path, None, (100, 24));
    press(&mut s, ctrl('c'));
    assert!(s.app.quit, "Ctrl-C quits");
    s.shutdown();
    drop(s);

    // In the built-in editor the typed text would go: Ctrl-C says so
    // first, a second one right after quits.
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "ex");
    press(&mut s, ctrl('c'));
    assert!(!s.app.quit);
    assert!(shows(&s.app, "Ctrl-C again quits and drops this edit"));
    keys(&mut s, "y");
    press(&mut s, ctrl('c'));
    assert!(!s.app.quit, "a key in between starts over");
    assert_eq!(
        s.app.editor().map(|(_, a)| a.text()).as_deref(),
        Some("{\n  \"n\": 0\n}\nxy")
    );
    press(&mut s, ctrl('c'));
    assert!(s.app.quit, "Ctrl-C twice quits");
}

#[test]
fn prompts_select_the_old_text_and_take_readline_keys() {
    let (_dir, path) = store_with(&numbered(300));
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "fkey:002\n");
    // The old filter is offered selected: typing replaces it...
    keys(&mut s, "f");
    assert_eq!(prompt(&s), ("key:002".to_string(), 7));
    let buffer = draw(&s.app);
    let cell = &buffer[("filter (prefix or glob *?[]): ".len() as u16, 23)];
    assert_eq!(cell.symbol(), "k");
    assert!(
        cell.modifier.contains(ratatui::style::Modifier::REVERSED),
        "the old text is shown selected"
    );
    keys(&mut s, "key:01\n");
    assert!(shows(&s.app, "Keys starting with key:01 "));
    // ...Enter keeps it, and a movement key keeps it to edit.
    keys(&mut s, "f\n");
    assert!(shows(&s.app, "Keys starting with key:01 "));
    keys(&mut s, "f");
    press(&mut s, code(KeyCode::End, KeyModifiers::NONE));
    keys(&mut s, "5");
    assert_eq!(prompt(&s).0, "key:015");
    // Esc closes the prompt, a second one clears the filter.
    keys(&mut s, "\x1b\x1b");

    keys(&mut s, "/");
    keys(&mut s, "user:42 item:7");
    press(&mut s, ctrl('a'));
    assert_eq!(prompt(&s).1, 0, "Ctrl-A: start");
    press(&mut s, ctrl('e'));
    assert_eq!(prompt(&s).1, 14, "Ctrl-E: end");
    press(&mut s, alt('b'));
    assert_eq!(prompt(&s).1, 13, "Alt-b: back a word (letters and digits)");
    press(&mut s, code(KeyCode::Left, KeyModifiers::CONTROL));
    assert_eq!(prompt(&s).1, 8, "Ctrl-Left: back a word");
    press(&mut s, alt('f'));
    assert_eq!(prompt(&s).1, 12, "Alt-f: on a word");
    press(&mut s, code(KeyCode::Right, KeyModifiers::CONTROL));
    assert_eq!(prompt(&s).1, 14, "Ctrl-Right: on a word");
    press(&mut s, code(KeyCode::Home, KeyModifiers::NONE));
    assert_eq!(prompt(&s).1, 0, "Home");
    press(&mut s, code(KeyCode::End, KeyModifiers::NONE));
    press(&mut s, ctrl('w'));
    assert_eq!(
        prompt(&s),
        ("user:42 ".to_string(), 8),
        "Ctrl-W: to a space"
    );
    keys(&mut s, "x:1");
    press(&mut s, code(KeyCode::Backspace, KeyModifiers::ALT));
    assert_eq!(prompt(&s).0, "user:42 x:", "Alt-Backspace: a word");
    press(&mut s, ctrl('a'));
    press(&mut s, alt('d'));
    assert_eq!(prompt(&s), (":42 x:".to_string(), 0), "Alt-d: the word on");
    press(&mut s, alt('f'));
    press(&mut s, ctrl('k'));
    assert_eq!(prompt(&s), (":42".to_string(), 3), "Ctrl-K: to the end");
    press(&mut s, ctrl('u'));
    assert_eq!(prompt(&s), (String::new(), 0), "Ctrl-U: to the start");
    keys(&mut s, "key:00150\n");
    assert_eq!(selected(&s.app), "key:00150");

    // The seek and new-key prompts start with their last text too.
    keys(&mut s, "g/");
    assert_eq!(prompt(&s), ("key:00150".to_string(), 9));
    assert!(
        draw(&s.app)[("seek to key: ".len() as u16, 23)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED)
    );
    keys(&mut s, "\n");
    assert_eq!(selected(&s.app), "key:00150", "Enter keeps it");
    keys(&mut s, "/key:00007\n");
    assert_eq!(selected(&s.app), "key:00007", "typing replaces it");
    keys(&mut s, "nfresh\n\x1bn");
    assert_eq!(prompt(&s), ("fresh".to_string(), 5));
    keys(&mut s, "\x1b/");
    assert_eq!(prompt(&s).0, "key:00007");
}

/// A JSON value on one line but not compact: re-indenting and compacting
/// it would change its bytes (119 B became 105 B in the issue).
const SPACED: &str = r#"{"a": 1, "b": [true, "x y"]}"#;

#[test]
fn an_edit_that_changes_nothing_writes_nothing_with_either_editor() {
    let line = format!("{{\"key\":\"doc\",\"value\":{SPACED}}}\n");
    let (_dir, path) = store_with(&line);
    // The built-in editor: open, save at once.
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "e");
    press(&mut s, ctrl('s'));
    assert!(shows(&s.app, "value unchanged; nothing written"));
    assert!(s.app.outbox.is_empty());
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"doc"), Some((SPACED.as_bytes().to_vec(), 1)));
    // $EDITOR leaving the file alone, through the run loop.
    let mut s = browse(&path, Some("true"), (100, 24));
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    let mut host = script("eq");
    run_loop(&mut terminal, &mut s, &mut host).unwrap();
    assert!(s.settle(SETTLE));
    assert_eq!(s.app.status.text, "value unchanged; nothing written");
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"doc"), Some((SPACED.as_bytes().to_vec(), 1)));
}

/// vim (`:wq`) and most editors end the file with a newline: on a value
/// without one, saving without a change is still no change.
#[test]
fn the_final_newline_an_editor_adds_is_not_a_change() {
    let (_dir, path) = store_with("{\"key\":\"a\",\"value\":\"apple\"}\n");
    let editor = r#"sh -c 'echo >> "$0"'"#;
    let mut s = browse(&path, Some(editor), (100, 24));
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    run_loop(&mut terminal, &mut s, &mut script("eq")).unwrap();
    assert!(s.settle(SETTLE));
    assert_eq!(s.app.status.text, "value unchanged; nothing written");
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"a"), Some((b"apple".to_vec(), 1)));
}

#[test]
fn text_after_a_json_value_is_invalid_json_not_silently_text() {
    let (_dir, path) = store_with("{\"key\":\"doc\",\"value\":{\"n\":0}}\n");
    let mut s = browse(&path, None, (100, 24));
    // The editor holds "{\n  \"n\": 0\n}\n", the cursor on the last line.
    keys(&mut s, "eoops");
    press(&mut s, ctrl('s'));
    assert!(
        shows(&s.app, "This is not valid JSON:"),
        "{:?}",
        screen(&s.app)
    );
    assert!(shows(&s.app, "trailing characters at line 4 column 1"));
    assert!(shows(&s.app, "e / Enter / Esc: keep editing"));
    assert!(shows(&s.app, "t: save it as text"));
    keys(&mut s, "x");
    assert!(
        matches!(s.app.mode, Mode::InvalidJson { .. }),
        "x does nothing"
    );
    // Keep editing: back in the editor, at the error, text kept.
    keys(&mut s, "e");
    let (job, area) = s.app.editor().unwrap();
    assert_eq!((area.row, area.col), (3, 0));
    assert!(area.text().ends_with("}\noops"));
    assert_eq!(job.revision, 1);
    press(&mut s, ctrl('k'));
    press(&mut s, ctrl('s'));
    assert!(shows(&s.app, "value unchanged; nothing written"));
    // Save as text: stored as typed, on purpose.
    keys(&mut s, "e!");
    press(&mut s, ctrl('s'));
    keys(&mut s, "\x1b");
    assert!(
        s.app.editor().is_some(),
        "Esc closes the dialog, not the editor"
    );
    press(&mut s, ctrl('s'));
    keys(&mut s, "t");
    assert!(shows(&s.app, "saved doc (revision 2)"));
    assert!(shows(&s.app, "doc · rev 2 · 14 B · text"));
    // A new value that starts like JSON is checked too.
    keys(&mut s, "nfresh\n[1, 2] 3");
    press(&mut s, ctrl('s'));
    assert!(shows(&s.app, "trailing characters at line 1 column 8"));
    keys(&mut s, "\x1b");
    press(&mut s, code(KeyCode::End, KeyModifiers::NONE));
    press(&mut s, code(KeyCode::Backspace, KeyModifiers::NONE));
    press(&mut s, code(KeyCode::Backspace, KeyModifiers::NONE));
    press(&mut s, ctrl('s'));
    assert!(shows(&s.app, "saved fresh (revision 3)"));
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"doc").unwrap().0, b"{\n  \"n\": 0\n}\n!");
    assert_eq!(stored(&path, b"fresh").unwrap().0, b"[1, 2]");
}

/// JSON that ends too soon: back in the editor, the cursor is after the
/// last character, where the input broke off, so the missing `]` typed
/// there completes it (it went before the last character: `[1, ]2`).
#[test]
fn keep_editing_json_that_ends_too_soon_puts_the_cursor_at_its_end() {
    let (_dir, path) = store_with("{\"key\":\"doc\",\"value\":{\"n\":0}}\n");
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "nlist\n[1, 2");
    press(&mut s, ctrl('s'));
    assert!(
        shows(&s.app, "EOF while parsing a list at line 1 column 5"),
        "{:?}",
        screen(&s.app)
    );
    keys(&mut s, "e");
    let (_, area) = s.app.editor().unwrap();
    assert_eq!((area.row, area.col), (0, 5));
    keys(&mut s, "]");
    press(&mut s, ctrl('s'));
    assert!(
        shows(&s.app, "saved list (revision 2)"),
        "{:?}",
        screen(&s.app)
    );
    // The next edit does not open under the last one's fate.
    keys(&mut s, "e");
    assert!(s.app.editor().is_some());
    assert_eq!(s.app.status.text, "");
    keys(&mut s, "\x1b");
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"list").unwrap().0, b"[1, 2]");
}

#[test]
fn new_on_an_existing_key_says_so_before_the_editor_opens() {
    let (_dir, path) = store_with(&numbered(3));
    let mut s = browse(&path, Some("true"), (100, 24));
    keys(&mut s, "nkey:00002\n");
    assert!(
        s.app.pending_edit.is_none(),
        "no editor for a key that exists"
    );
    assert!(shows(
        &s.app,
        "key:00002 already exists (revision 3); it is selected: press e to edit it"
    ));
    assert_eq!(selected(&s.app), "key:00002");
    keys(&mut s, "nkey:00009\n");
    let job = s.app.pending_edit.take().unwrap();
    assert_eq!((job.key.as_slice(), job.revision), (&b"key:00009"[..], 0));
}

/// Keys typed while `n` checks its key, or while the list moves to it
/// (a 4 KiB key pasted, then `Enter` and `Y`), must not act on the key
/// selected before; a key that is new opens the editor with no stale
/// "checking" left on the status line.
#[test]
fn keys_typed_while_a_new_key_is_checked_do_not_act_on_the_old_one() {
    let long = "z".repeat(4096);
    let lines = format!(
        "{}{{\"key\":\"{long}\",\"value\":\"long one\"}}\n",
        numbered(3)
    );
    let (_dir, path) = store_with(&lines);
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "jn");
    let old = Some(br#"{"n":1}"#.to_vec());
    assert!(shows(&s.app, "key:00001 · rev 2"));
    for c in long.chars() {
        s.dispatch(Action::Text(TextEdit::Insert(c)));
    }
    s.dispatch(Action::Submit);
    s.dispatch(Action::Copy(Copy::Value));
    assert!(s.app.clipboard.is_none(), "nothing copied while checking");
    assert!(shows(&s.app, "still checking whether zzz"));
    // The answer came, the list is moving: still not the old key.
    let deadline = std::time::Instant::now() + SETTLE;
    while s.app.creating.is_some() && std::time::Instant::now() < deadline {
        s.pump();
        std::thread::sleep(Duration::from_millis(1));
    }
    s.dispatch(Action::Copy(Copy::Value));
    assert_ne!(
        s.app.clipboard.take(),
        old,
        "the old key's value was copied"
    );
    assert!(s.settle(SETTLE));
    keys(&mut s, "Y");
    assert_eq!(s.app.clipboard.as_deref(), Some(&b"long one"[..]));
    keys(&mut s, "nabc\n");
    assert!(matches!(s.app.mode, Mode::Editor { .. }));
    assert!(!shows(&s.app, "checking abc"), "{:?}", screen(&s.app));
}

/// Keys typed right after a new key's Enter, before the check answers,
/// are the value's start: they reach the editor that opens. Taken by the
/// list, they ran commands (`n` of "one" opened another prompt) or were
/// lost (found by an audit). Where the key exists they are dropped, and
/// the status line says so.
#[test]
fn keys_typed_while_a_new_key_is_checked_reach_its_editor() {
    let (_dir, path) = store_with(&numbered(3));
    let mut s = browse(&path, None, (100, 24));
    let typed = |s: &mut Session, code: KeyCode| {
        s.key(KeyEvent::new(code, KeyModifiers::NONE));
        s.keys_apart();
    };
    keys(&mut s, "nfresh");
    // Enter and the value's first keys, before any answer is read.
    typed(&mut s, KeyCode::Enter);
    for c in "one jn".chars() {
        typed(&mut s, KeyCode::Char(c));
    }
    assert!(s.settle(SETTLE));
    let (job, area) = s.app.editor().expect("the editor is open");
    assert_eq!(job.key, b"fresh");
    assert_eq!(area.text(), "one jn");
    keys(&mut s, "\x1b\x1b");
    assert!(s.app.editor().is_none());

    keys(&mut s, "nkey:00001");
    typed(&mut s, KeyCode::Enter);
    for c in "xy".chars() {
        typed(&mut s, KeyCode::Char(c));
    }
    assert!(s.settle(SETTLE));
    assert_eq!(s.app.mode, Mode::Browse);
    assert!(shows(&s.app, "already exists"), "{:?}", screen(&s.app));
    assert_eq!(selected(&s.app), "key:00001");
    assert!(shows(&s.app, "key:00001 · rev 2"), "{:?}", screen(&s.app));
}

#[test]
fn status_bar_shows_the_filter_what_matched_and_the_position() {
    let (_dir, path) = store_with(&numbered(3000));
    let mut s = browse(&path, None, (110, 30));
    let status = |s: &Session| screen(&s.app)[28].clone();
    assert!(
        status(&s).contains("│ key 1 of 3,000 │ revision 3000 │"),
        "{}",
        status(&s)
    );
    keys(&mut s, "jj");
    assert!(status(&s).contains("│ key 3 of 3,000 │"));
    keys(&mut s, "G");
    assert!(
        status(&s).contains("│ key 3,000 of 3,000 │"),
        "known from the end"
    );
    keys(&mut s, "/key:01500\n");
    assert!(
        status(&s).contains("│ 3,000 keys │"),
        "after a seek: not known"
    );
    keys(&mut s, "g");
    keys(&mut s, "fkey:002\n");
    let text = status(&s);
    assert!(
        text.contains("│ filter key:002 · 100 keys │ key 1 of 100 │"),
        "{text}"
    );
    assert!(!text.contains("3,000"), "{text}");
    keys(&mut s, "G");
    assert!(status(&s).contains("│ key 100 of 100 │"));
    keys(&mut s, "fnope\n");
    assert!(
        status(&s).contains("│ filter nope · no keys match │"),
        "{}",
        status(&s)
    );
    assert!(shows(&s.app, "(no keys)"));
    keys(&mut s, "\x1b");
    assert!(status(&s).contains("│ key 1 of 3,000 │"));
}

#[test]
fn position_survives_paging_through_a_window_that_drops_keys() {
    let (_dir, path) = store_with(&numbered(3000));
    let mut s = browse(&path, None, (100, 30));
    for _ in 0..80 {
        act(&mut s, &[Action::Move(crate::tui::action::Move::PageDown)]);
    }
    let at = selected(&s.app);
    let n: u64 = at["key:".len()..].parse().unwrap();
    assert!(shows(
        &s.app,
        &format!("│ key {} of 3,000 │", thousands(n + 1))
    ));
    for _ in 0..30 {
        act(&mut s, &[Action::Move(crate::tui::action::Move::PageUp)]);
    }
    let at = selected(&s.app);
    let n: u64 = at["key:".len()..].parse().unwrap();
    assert!(shows(
        &s.app,
        &format!("│ key {} of 3,000 │", thousands(n + 1))
    ));
}

#[test]
fn seeks_say_where_they_landed() {
    let (_dir, path) = store_with(&numbered(300));
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "/zzz\n");
    assert_eq!(selected(&s.app), "key:00299");
    assert!(shows(
        &s.app,
        "no key at or after zzz; showing the last key"
    ));
    keys(&mut s, "/key:001005\n");
    assert_eq!(selected(&s.app), "key:00101");
    assert!(shows(
        &s.app,
        "no key key:001005; showing the next key, key:00101"
    ));
    keys(&mut s, "/key:00042\n");
    assert!(
        shows(&s.app, "seek key:00042"),
        "an exact hit needs no more"
    );
    keys(&mut s, "fkey:001\n/key:002\n");
    assert!(shows(
        &s.app,
        "no key starting with key:001 at or after key:002; showing the last key"
    ));
    assert_eq!(selected(&s.app), "key:00199");
}

/// With no key to show, a seek says so (it said "showing the last key"
/// over `(no keys)`).
#[test]
fn a_seek_with_no_keys_says_there_are_none() {
    let (_dir, path) =
        store_with("{\"key\":\"x\",\"value\":\"1\"}\n{\"op\":\"delete\",\"key\":\"x\"}\n");
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "/zz\n");
    assert!(
        shows(&s.app, "no key at or after zz: there are no keys"),
        "{:?}",
        screen(&s.app)
    );
    keys(&mut s, "fabc\n/zz\n");
    assert!(
        shows(
            &s.app,
            "no key starting with abc at or after zz: the filter matches no key"
        ),
        "{:?}",
        screen(&s.app)
    );
}

#[test]
fn keys_cut_at_narrow_widths_lose_their_middle() {
    let long = format!("user:{}:end", "x".repeat(60));
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"{long}\",\"value\":\"v\"}}\n{{\"key\":\"zz:{long}\",\"value\":\"w\"}}\n"
    ));
    let s = browse(&path, None, (60, 10));
    let text = screen(&s.app);
    // 60 columns: a 20-column list, 16 for the key after border and marker.
    assert!(text[1].starts_with("┃> user:xx…xxxx:end┃"), "{text:?}");
    assert!(text[2].starts_with("┃  zz:user…xxxx:end┃"), "{text:?}");
    assert!(
        text[0].contains(" user:xx…xxx:end · rev 1 · 1 B · text "),
        "the value title too: {text:?}"
    );
    assert_eq!(crate::tui::fit::fit("abcdef", 4), "abc…");
    assert_eq!(crate::tui::fit::fit("abcd", 4), "abcd");
    assert_eq!(crate::tui::fit::fit("日本語", 5), "日本…");
    use crate::tui::fit::fit_middle;
    assert_eq!(fit_middle("abcdefgh", 5), "ab…gh");
    assert_eq!(fit_middle("abcdefgh", 6), "ab…fgh");
    assert_eq!(fit_middle("abcd", 4), "abcd");
    // By width and whole clusters: a wide character is never split, and
    // the column it would not fill goes to the other end.
    assert_eq!(fit_middle("日本語日本語", 7), "日本…語");
    assert_eq!(
        fit_middle("a👨\u{200d}👩\u{200d}👧bcdefgh", 7),
        "a👨\u{200d}👩\u{200d}👧…fgh"
    );
    assert_eq!(fit_middle("a👨\u{200d}👩\u{200d}👧bcdefgh", 6), "a…fgh");
    for w in 0..12 {
        let cut = fit_middle("日本語日本語x", w);
        assert!(crate::tui::wrap::columns(&cut) <= w, "{w}: {cut}");
    }
}

/// Keys that share a long prefix stay apart in the list and the value
/// pane's title: their ends, which differ, are shown.
#[test]
fn keys_with_a_long_shared_prefix_can_be_told_apart() {
    let p = "config:service:production:eu-west-1:database:primary:connection";
    let lines: String = ["timeout", "pool_size", "password"]
        .iter()
        .map(|k| format!("{{\"key\":\"{p}:{k}\",\"value\":\"v\"}}\n"))
        .collect();
    let (_dir, path) = store_with(&lines);
    let mut s = browse(&path, None, (120, 35));
    let text = screen(&s.app).join("\n");
    for end in [
        "…onnection:password┃",
        "…nnection:pool_size┃",
        "…connection:timeout┃",
    ] {
        assert!(text.contains(end), "{end}\n{text}");
    }
    // The value title has room for the key: it stays whole, and what
    // follows it gives way.
    keys(&mut s, "j");
    assert!(
        shows(&s.app, &format!("┌ {p}:pool_size ─")),
        "{:?}",
        screen(&s.app)
    );
    // Too long for it, it loses its middle beside them.
    s.app.size = (100, 35);
    assert!(
        shows(&s.app, "…y:connection:pool_size · rev 2 · 1 B · text ┐"),
        "{:?}",
        screen(&s.app)
    );
}

#[test]
fn copies_the_key_and_the_value_with_osc52() {
    let (_dir, path) = store_with(concat!(
        "{\"key\":\"a key\",\"value\":{\"n\":1}}\n",
        "{\"key\":\"bin\",\"value_b64\":\"AP8=\"}\n",
        "{\"key_b64\":\"/w==\",\"value\":\"x\"}\n",
    ));
    let mut s = browse(&path, None, (100, 24));
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    let mut host = script("yYq");
    run_loop(&mut terminal, &mut s, &mut host).unwrap();
    assert_eq!(host.1, vec![b"a key".to_vec(), b"{\"n\":1}".to_vec()]);
    assert_eq!(
        s.app.status.text,
        "sent the value of a key (7 B) to the clipboard"
    );
    // A binary value is refused; a key that is not UTF-8 goes as shown.
    keys(&mut s, "j");
    s.app.quit = false;
    let mut host = script("Yq");
    run_loop(&mut terminal, &mut s, &mut host).unwrap();
    assert!(host.1.is_empty());
    assert!(shows(
        &s.app,
        "the value of bin is binary: the clipboard takes text"
    ));
    keys(&mut s, "j");
    s.app.quit = false;
    let mut host = script("yq");
    run_loop(&mut terminal, &mut s, &mut host).unwrap();
    assert_eq!(host.1, vec![b"\\xff".to_vec()]);
    assert!(shows(
        &s.app,
        "sent the key \\xff (as shown, it is not UTF-8)"
    ));
}

/// On a small terminal the invalid-JSON dialog's key lines stay whole
/// and in view; what is shortened is the error (it ends in `…`).
#[test]
fn a_small_terminal_shortens_the_json_error_not_the_key_lines() {
    let (_dir, path) = store_with("{\"key\":\"doc\",\"value\":{\"n\":0}}\n");
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "eoops");
    press(&mut s, ctrl('s'));
    // A parser error longer than any small screen has room for.
    let long = format!(
        "{}at line 4 column 1 THE END",
        "an error far too long ".repeat(24)
    );
    match &mut s.app.mode {
        Mode::InvalidJson { error, .. } => *error = long,
        other => panic!("not the invalid-JSON dialog: {other:?}"),
    }
    let text = screen(&s.app).join("\n");
    for want in [
        "This is not valid JSON:",
        "THE END",
        "e / Enter / Esc: keep editing",
        "t: save it as text",
        "d: drop the edit",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // 12 rows: the heading and part of the error; 9 rows and 40 columns:
    // each key on a row of its own, the error still has its first row.
    for (size, keys_shown) in [
        (
            (60, 12),
            &[
                "e / Enter / Esc: keep editing",
                "t: save it as text",
                "d: drop the edit",
            ][..],
        ),
        (
            (40, 9),
            &[
                "e / Enter / Esc: keep editing",
                "t: save it as text",
                "d: drop the edit",
            ][..],
        ),
    ] {
        s.app.size = size;
        let text = screen(&s.app).join("\n");
        for want in ["This is not valid JSON:", "an error far too long", "…"]
            .iter()
            .chain(keys_shown)
        {
            assert!(text.contains(want), "{size:?}: no {want:?} in:\n{text}");
        }
        assert!(!text.contains("THE END"), "{size:?}: all of it in:\n{text}");
        assert!(
            text.contains("┗━"),
            "{size:?}: the dialog's bottom:\n{text}"
        );
    }
    // Tiny terminals do not break drawing it.
    for size in [(1, 1), (8, 3), (30, 6)] {
        s.app.size = size;
        let _ = screen(&s.app);
    }
    // The dialog still works: `e` goes back to the editor.
    keys(&mut s, "e");
    assert!(matches!(s.app.mode, Mode::Editor { .. }));
}

#[test]
fn invalid_json_from_the_external_editor_is_caught_too() {
    let (_dir, path) = store_with("{\"key\":\"doc\",\"value\":{\"n\":0}}\n");
    // The editor leaves text after the closing brace.
    let editor = "sed -i 's/^}$/} tail/'";
    let mut s = browse(&path, Some(editor), (100, 24));
    let run = |s: &mut Session| {
        let job = s.app.pending_edit.take().unwrap();
        let edited = crate::tui::editor::run_external(editor, &job.start_text(), job.suffix());
        s.finish_edit(job, edited);
        assert!(s.settle(SETTLE));
    };
    keys(&mut s, "e");
    run(&mut s);
    assert!(
        shows(&s.app, "This is not valid JSON:"),
        "{:?}",
        screen(&s.app)
    );
    assert!(shows(&s.app, "trailing characters at line 3 column 3"));
    // Keep editing: $EDITOR again, on the text as it was left.
    keys(&mut s, "\x1b");
    let draft = s.app.pending_edit.as_ref().and_then(|j| j.draft.clone());
    assert_eq!(draft.as_deref(), Some(&b"{\n  \"n\": 0\n} tail\n"[..]));
    run(&mut s);
    assert!(shows(&s.app, "This is not valid JSON:"));
    // Ctrl-C says what this dialog's keys do, and any key takes it back.
    press(&mut s, ctrl('c'));
    assert!(shows(&s.app, "t saves it as text, e edits on, d drops it"));
    keys(&mut s, "x");
    assert!(!shows(&s.app, "again quits"), "{:?}", screen(&s.app));
    assert!(!s.app.quit);
    // `d` drops the edit, and $EDITOR is not opened again.
    keys(&mut s, "d");
    assert_eq!(s.app.mode, Mode::Browse);
    assert!(s.app.pending_edit.is_none());
    assert!(shows(&s.app, "edit of doc dropped; nothing written"));
    // Once more; this time `t` saves it as text, at revision 2: the drop
    // wrote nothing.
    keys(&mut s, "e");
    run(&mut s);
    assert!(shows(&s.app, "This is not valid JSON:"));
    keys(&mut s, "t");
    assert!(
        shows(&s.app, "saved doc (revision 2)"),
        "{:?}",
        screen(&s.app)
    );
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"doc").unwrap().0, b"{\n  \"n\": 0\n} tail\n");
}

/// With `--db`, a key that expires while another is selected leaves the
/// list too, and the counts follow (it stayed until `r`).
#[test]
fn an_expired_key_leaves_the_list_while_another_is_selected() {
    let at = crate::types::now_ms() + 3_000;
    let later = at + 3_600_000;
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"a\",\"value\":\"1\"}}\n\
         {{\"key\":\"b\",\"value\":\"2\",\"expires_at_ms\":{at}}}\n\
         {{\"key\":\"c\",\"value\":\"3\",\"expires_at_ms\":{later}}}\n"
    ));
    let mut s = browse(&path, None, (100, 20));
    assert_eq!(selected(&s.app), "a");
    assert!(shows(&s.app, "key 1 of 3"), "{:?}", screen(&s.app));
    assert!(!s.tick(), "not expired yet");
    std::thread::sleep(std::time::Duration::from_millis(
        at.saturating_sub(crate::types::now_ms()) + 50,
    ));
    assert!(s.tick());
    assert!(s.settle(SETTLE));
    assert_eq!(selected(&s.app), "a");
    assert!(shows(&s.app, "key 1 of 2"), "{:?}", screen(&s.app));
    let rows = screen(&s.app);
    assert!(
        rows[1].starts_with("┃> a ") && rows[2].starts_with("┃  c "),
        "{rows:?}"
    );
    // The next expiry is an hour away: nothing more to read.
    assert!(!s.tick());
    s.shutdown();
}

/// With `--db` there is no feed: once the selected key's expiry passes on
/// screen the browser reads the screen again by itself, so the key leaves
/// the list and the count follows (it stayed, with `key 2 of 3`, until `r`).
#[test]
fn an_expired_key_leaves_the_list_without_a_feed() {
    // Room for the first screen on a busy machine before it expires.
    let at = crate::types::now_ms() + 3_000;
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"a\",\"value\":\"1\"}}\n\
         {{\"key\":\"b\",\"value\":\"2\",\"expires_at_ms\":{at}}}\n\
         {{\"key\":\"c\",\"value\":\"3\"}}\n"
    ));
    let mut s = browse(&path, None, (100, 20));
    keys(&mut s, "j");
    assert_eq!(selected(&s.app), "b");
    assert!(shows(&s.app, "key 2 of 3"), "{:?}", screen(&s.app));
    assert!(!s.tick(), "not expired yet");
    std::thread::sleep(std::time::Duration::from_millis(
        at.saturating_sub(crate::types::now_ms()) + 50,
    ));
    assert!(s.tick());
    assert!(s.settle(SETTLE));
    assert!(shows(&s.app, "b expired"), "{:?}", screen(&s.app));
    assert_eq!(selected(&s.app), "c");
    assert!(shows(&s.app, "key 2 of 2"), "{:?}", screen(&s.app));
    s.shutdown();
}

/// `n` on a key that exists but that the filter hides selects it, so
/// "press e to edit it" edits that key: the filter is cleared to show it.
#[test]
fn new_on_a_key_the_filter_hides_clears_the_filter_and_selects_it() {
    let lines = format!(
        "{}{{\"key\":\"greeting\",\"value\":\"hi\"}}\n",
        numbered(300)
    );
    let (_dir, path) = store_with(&lines);
    let mut s = browse(&path, None, (120, 24));
    keys(&mut s, "fkey:001\n");
    assert_eq!(selected(&s.app), "key:00100");
    keys(&mut s, "ngreeting\n");
    assert!(
        shows(
            &s.app,
            "greeting already exists (revision 301); the filter is cleared and it is selected: press e to edit it"
        ),
        "{:?}",
        screen(&s.app)
    );
    assert_eq!(selected(&s.app), "greeting");
    assert_eq!(s.app.pager.filter, None);
    keys(&mut s, "e");
    assert!(shows(&s.app, "Edit greeting"), "{:?}", screen(&s.app));
}

/// A seek for a key outside the filter does not say the key is missing
/// (it may well exist): it says the filter leaves it out.
#[test]
fn a_seek_outside_the_filter_says_the_filter_leaves_it_out() {
    let lines = format!(
        "{}{{\"key\":\"greeting\",\"value\":\"hi\"}}\n",
        numbered(300)
    );
    let (_dir, path) = store_with(&lines);
    let mut s = browse(&path, None, (120, 24));
    keys(&mut s, "fkey:001\n/greeting\n");
    assert!(
        shows(
            &s.app,
            "greeting does not start with the filter, key:001 (Esc clears it); showing its first key, key:00100"
        ),
        "{:?}",
        screen(&s.app)
    );
    assert!(!shows(&s.app, "no key greeting"));
}
