//! Snapshots of the main screens: list, JSON value, hex value, help,
//! confirm delete, error.

use ratatui::style::Color;

use super::*;
use crate::tui::BINDINGS;
use crate::tui::action::Move;
use crate::tui::app::Mode;
use crate::tui::wrap;

const SMALL: (u16, u16) = (100, 12);

fn sample() -> (tempfile::TempDir, PathBuf) {
    store_with(concat!(
        "{\"key\":\"bin\\u0001\",\"value_b64\":\"AAEC/0hpIQ==\"}\n",
        "{\"key\":\"city:paris\",\"value\":{\"name\":\"Paris\",\"tags\":[\"fr\",1.50]}}\n",
        "{\"key\":\"note\",\"value\":\"line one\\nline two\"}\n",
    ))
}

fn assert_screen(app: &App, want: &[&str]) {
    let got = screen(app);
    assert_eq!(got, want, "screen was:\n{}", got.join("\n"));
}

#[test]
fn list_screen_with_binary_key_and_hex_value() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, SMALL);
    s.app.source = "t.redb".into();
    assert_screen(
        &s.app,
        &[
            "┏ Keys ━━━━━━━━━━━━━━━━━━━━━━┓┌ bin\\u0001 · rev 1 · 7 B · binary ──────────────────────────────────┐",
            "┃> bin\\u0001                 ┃│00000000  00 01 02 ff  48 69 21     |....Hi!|                       │",
            "┃  city:paris                ┃│                                                                    │",
            "┃  note                      ┃│                                                                    │",
            "┃                            ┃│                                                                    │",
            "┃                            ┃│                                                                    │",
            "┃                            ┃│                                                                    │",
            "┃                            ┃│                                                                    │",
            "┃                            ┃│                                                                    │",
            "┗━━━━━━━━━━━━━━━━━━━━━━━━━━━━┛└────────────────────────────────────────────────────────────────────┘",
            " t.redb │ key 1 of 3 │ revision 3 │ ? help · q quit",
            "",
        ],
    );
}

#[test]
fn json_value_screen_is_pretty_and_coloured() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, SMALL);
    act(&mut s, &[Action::Move(Move::Down)]);
    s.app.source = "t.redb".into();
    assert_screen(
        &s.app,
        &[
            "┏ Keys ━━━━━━━━━━━━━━━━━━━━━━┓┌ city:paris · rev 2 · 35 B · JSON ──────────────────────────────────┐",
            "┃  bin\\u0001                 ┃│{                                                                   │",
            "┃> city:paris                ┃│  \"name\": \"Paris\",                                                  │",
            "┃  note                      ┃│  \"tags\": [                                                         │",
            "┃                            ┃│    \"fr\",                                                           │",
            "┃                            ┃│    1.50                                                            │",
            "┃                            ┃│  ]                                                                 │",
            "┃                            ┃│}                                                                   │",
            "┃                            ┃│                                                                    │",
            "┗━━━━━━━━━━━━━━━━━━━━━━━━━━━━┛└────────────────────────────────────────────────────────────────────┘",
            " t.redb │ key 2 of 3 │ revision 3 │ ? help · q quit",
            "",
        ],
    );
    // Without NO_COLOR the same screen has colours; with it none at all.
    let mono = draw(&s.app);
    assert!(
        mono.content
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
    );
    s.app.config.theme = Theme { color: true };
    act(&mut s, &[Action::Refresh]);
    let coloured = draw(&s.app);
    let style_of = |text: &str| {
        let row: Vec<_> = (0..SMALL.0).map(|x| &coloured[(x, 2)]).collect();
        let at = (0..row.len()).find(|&i| {
            let rest: String = row[i..].iter().map(|c| c.symbol()).collect();
            rest.starts_with(text)
        })?;
        Some(row[at].fg)
    };
    assert_eq!(style_of("\"name\""), Some(Color::Cyan));
    assert_eq!(style_of("\"Paris\""), Some(Color::Green));
}

#[test]
fn text_value_and_value_scrolling_with_tab() {
    let text: String = (1..=30).map(|i| format!("line {i}\\n")).collect();
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"a\",\"value\":\"x\"}}\n{{\"key\":\"note\",\"value\":\"{text}\"}}\n"
    ));
    let mut s = browse(&path, None, SMALL);
    keys(&mut s, "G");
    assert!(shows(&s.app, "│line 1 "));
    assert!(shows(&s.app, "note · rev 2 · 231 B · text"));
    assert!(shows(&s.app, " lines 1–8 of 30 "));
    keys(&mut s, "\tj");
    assert!(shows(&s.app, " lines 2–9 of 30 "));
    assert!(!shows(&s.app, "│line 1 "));
    assert!(
        shows(&s.app, "┃line 2 "),
        "the focused pane has a thick border"
    );
    assert_eq!(
        selected(&s.app),
        "note",
        "Tab moved focus: j scrolls the value"
    );
    keys(&mut s, "G");
    assert!(shows(&s.app, "┃line 30"), "G shows the end of the value");
    keys(&mut s, "\tk");
    assert_eq!(selected(&s.app), "a", "Tab again: the list has the keys");
}

#[test]
fn help_screen_lists_every_key() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "?");
    let text = screen(&s.app).join("\n");
    for (keys, what) in crate::tui::BINDINGS {
        assert!(
            text.contains(keys) && text.contains(what),
            "help misses {keys}"
        );
    }
    keys(&mut s, "x");
    assert!(!shows(&s.app, "any key closes"));
    // At 80 columns the descriptions wrap under their column, whole.
    s.app.size = (80, 24);
    keys(&mut s, "?");
    let words = |t: &str| -> String {
        let t: String = t.chars().filter(|c| !"┃━┏┓┗┛".contains(*c)).collect();
        t.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let text = words(&screen(&s.app).join(" "));
    for (_, what) in crate::tui::BINDINGS {
        assert!(text.contains(&words(what)), "help cuts {what:?}:\n{text}");
    }
    keys(&mut s, "x");
    s.shutdown();
}

/// On a terminal too narrow for a description column of 12 (under 33
/// columns) each key's description goes under it: a column of 12 was
/// clipped at the box's edge (`first / la` at 30 columns, nothing at 20).
#[test]
fn help_on_a_narrow_terminal_loses_no_word() {
    let words = |t: &str| -> String {
        let t: String = t.chars().filter(|c| !"┃━┏┓┗┛".contains(*c)).collect();
        t.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    for width in 20..=40u16 {
        let (lines, _) = crate::tui::view::help_rows(ratatui::layout::Rect::new(0, 0, width, 60));
        let inner = usize::from(width - 3);
        for line in &lines {
            assert!(
                wrap::columns(line) <= inner,
                "{width}: {line:?} is wider than {inner}"
            );
        }
        let text = words(&lines.join(" "));
        for (keys, what) in BINDINGS {
            assert!(
                text.contains(&words(what)),
                "{width}: cuts {what:?}:\n{text}"
            );
            assert!(text.contains(&words(keys)), "{width}: no {keys:?}");
        }
    }
    // As shown: at 30 columns the row under `g G  Home End` is whole.
    let (_dir, path) = sample();
    let mut s = browse(&path, None, (30, 60));
    keys(&mut s, "?");
    let text = words(&screen(&s.app).join(" "));
    assert!(
        text.contains("g G Home End first / last key (top / end of the value)"),
        "{text}"
    );
    keys(&mut s, "x");
    s.shutdown();
}

/// Help taller than the terminal scrolls with the value pane's keys, its
/// footer saying where it is; other keys close it (it said "a taller
/// terminal shows the rest", and nothing showed the rest).
#[test]
fn help_on_a_short_terminal_scrolls() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, (50, 12));
    keys(&mut s, "?");
    let first = BINDINGS[0].1.split(' ').next().unwrap();
    let last = "not UTF-8";
    let text = screen(&s.app).join("\n");
    assert!(text.contains(first) && !text.contains(last), "{text}");
    assert!(text.contains("j k scroll · other keys close"), "{text}");
    // `lines 1–N of T`, N the rows in view.
    let footer = |s: &Session| -> (usize, usize, usize) {
        let text = screen(&s.app).join("\n");
        let at = text.find(" lines ").expect("a footer") + 7;
        let nums: Vec<usize> = text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .take(3)
            .map(|n| n.parse().unwrap())
            .collect();
        (nums[0], nums[1], nums[2])
    };
    let (top, bottom, total) = footer(&s);
    assert_eq!(top, 1);
    assert!(bottom < total, "{text}");
    keys(&mut s, "j");
    assert_eq!(footer(&s), (2, bottom + 1, total));
    keys(&mut s, "G");
    let text = screen(&s.app).join("\n");
    assert!(text.contains(last) && text.contains("· 100%"), "{text}");
    assert!(!text.contains(first), "{text}");
    assert_eq!(footer(&s).1, total);
    keys(&mut s, "g");
    assert!(shows(&s.app, first));
    press(&mut s, KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE));
    assert_eq!(footer(&s).0, bottom);
    // Any other key closes it; the list did not move meanwhile.
    keys(&mut s, "x");
    assert_eq!(s.app.mode, Mode::Browse);
    assert!(!shows(&s.app, "other keys close"));
    assert_eq!(s.app.pager.cursor, 0);
    // Where it fits, a movement key closes it, as any key did.
    s.app.size = (100, 24);
    keys(&mut s, "?j");
    assert_eq!(s.app.mode, Mode::Browse);
    assert!(!shows(&s.app, "any key closes"));
    s.shutdown();
}

/// The conflict dialog's keys are in the help, with the others; the help
/// leaves the status lines in view on a terminal of 24 rows.
#[test]
fn the_help_names_the_conflict_dialog_keys() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, (100, 24));
    keys(&mut s, "?");
    let text = screen(&s.app).join("\n");
    for want in [
        "┃ d  Del           delete the key (asks first: y / n)",
        "┃ o r e Enter Esc  conflict: overwrite / reload (drops your text) / edit on",
        "│ key 1 of 3 │ revision 3 │ ? help · q quit",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
}

#[test]
fn confirm_delete_screen() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, SMALL);
    keys(&mut s, "jd");
    let text = screen(&s.app);
    let dialog: Vec<&str> = text
        .iter()
        .filter(|l| l.contains("Delete city"))
        .map(|l| l.trim())
        .collect();
    assert_eq!(dialog.len(), 1);
    assert!(
        dialog[0].contains("Delete city:paris (revision 2)?"),
        "{text:?}"
    );
    assert!(shows(&s.app, "y: delete    n / Esc: keep it"));
    keys(&mut s, "\n");
    assert!(
        shows(&s.app, "not deleted"),
        "Enter does not confirm a delete"
    );
    assert_eq!(s.app.stats.map(|st| st.keys), Some(3));
}

#[test]
fn error_screen_for_a_concurrent_change() {
    let (_dir, path) = sample();
    let shared = std::sync::Arc::new(open_kv(&path).unwrap());
    let other = shared.clone();
    let mut s = start(
        move || Ok(Box::new(sources::Shared(shared)) as Box<dyn Kv>),
        None,
        SMALL,
    );
    keys(&mut s, "G");
    // Someone else writes the key after the browser read it.
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    keys(&mut s, "eX");
    press(
        &mut s,
        KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL),
    );
    // The text stays, behind a dialog that shows theirs.
    s.app.source = "t.redb".into();
    assert_screen(
        &s.app,
        &[
            "┌ Keys ──────────────────────┐┏ Edit note · Ctrl-S save · Esc cancel ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓",
            "│  bin\\u0001                 │┃line one                                                            ┃",
            "│  city:pari┏ Conflict · changed meanwhile ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓           ┃",
            "│> note     ┃note changed since you opened it (revision 3).                            ┃           ┃",
            "│           ┃It is now at revision 4 (6 B):                                            ┃           ┃",
            "│           ┃  theirs                                                                  ┃           ┃",
            "│           ┃Your text is kept; nothing was written.                                   ┃           ┃",
            "│           ┃                                                                          ┃           ┃",
            "│           ┃o: overwrite with your text    r: reload (drops your text)                ┃           ┃",
            "└───────────┃e / Enter / Esc: back to your text                                        ┃━━━━━━━━━━━┛",
            " t.redb │ ke┗━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┛",
            "error: note was changed by someone else (now at revision 4); your edit is kept, not written",
        ],
    );
    assert_eq!(
        s.app.editor().map(|(_, area)| area.text()).as_deref(),
        Some("line one\nline twoX")
    );
    assert_eq!(other.get(b"note").unwrap().unwrap().value, b"theirs");
}

#[test]
fn large_value_title_says_how_much_is_shown() {
    let big = "AAEC".repeat(100 << 10); // 300 KiB of binary, as base64
    let (_dir, path) = store_with(&format!("{{\"key\":\"big\",\"value_b64\":\"{big}\"}}\n"));
    let s = browse(&path, None, (120, 20));
    assert!(
        shows(
            &s.app,
            "big · rev 1 · 300.0 KiB · binary · showing the first 64.0 KiB"
        ),
        "{:?}",
        screen(&s.app)
    );
}

#[test]
fn tiny_terminals_do_not_break_drawing() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, (100, 12));
    for mode in ["", "?", "d", "e", "/", "fc\n"] {
        keys(&mut s, mode);
        for (w, h) in [(1, 1), (8, 3), (30, 6)] {
            s.app.size = (w, h);
            let _ = screen(&s.app);
        }
        s.app.size = (100, 12);
        keys(&mut s, "\x1b");
    }
    // The invalid-JSON dialog over the built-in editor, with a filter on.
    keys(&mut s, "fc\ne}");
    press(
        &mut s,
        KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL),
    );
    assert!(
        shows(&s.app, "This is not valid JSON:"),
        "{:?}",
        screen(&s.app)
    );
    for (w, h) in [(1, 1), (8, 3), (30, 6)] {
        s.app.size = (w, h);
        let _ = screen(&s.app);
    }
}

/// The value pane's title says when a key expires (a batch line whose
/// expiry has passed is not even written).
#[test]
fn the_value_title_shows_the_expiry() {
    let (_dir, path) = store_with(concat!(
        "{\"key\":\"gone\",\"value\":\"x\",\"expires_at_ms\":1000}\n",
        "{\"key\":\"session\",\"value\":\"x\",\"ttl\":300}\n",
    ));
    let s = browse(&path, None, SMALL);
    assert_eq!(selected(&s.app), "session");
    assert!(
        shows(&s.app, "· expires in 4m 5") || shows(&s.app, "· expires in 5m 0s"),
        "{}",
        screen(&s.app).join("\n")
    );
    assert!(!shows(&s.app, "gone"));
}

#[test]
fn expiry_durations_read_as_two_units() {
    use crate::tui::view::expires_in;
    assert_eq!(expires_in(10_000, 9_000), "expires in 1s");
    assert_eq!(expires_in(252_000, 0), "expires in 4m 12s");
    assert_eq!(expires_in(7_260_000, 0), "expires in 2h 1m");
    assert_eq!(expires_in(90_000_000, 0), "expires in 1d 1h");
    assert_eq!(expires_in(5, 5), "expired");
    assert_eq!(expires_in(5, 9), "expired");
}

/// Lines wider than the pane wrap; scrolling goes by rows, so the end of
/// the value is reachable and the counter names the lines on screen.
#[test]
fn wrapped_lines_scroll_to_the_end_of_the_value() {
    let text: String = (0..40)
        .map(|i| format!("L{i:02}-{}\\n", "x".repeat(200)))
        .collect();
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"wrap\",\"value\":\"{text}THE END\"}}\n"
    ));
    // A value pane of 70 columns: each 204-character line takes 3 rows.
    let mut s = browse(&path, None, (100, 20));
    keys(&mut s, "\t");
    assert!(shows(&s.app, " lines 1–6 of 41 "), "{:?}", screen(&s.app));
    keys(&mut s, "G");
    assert!(shows(&s.app, "THE END"), "{:?}", screen(&s.app));
    assert!(shows(&s.app, " lines 36–41 of 41 "), "{:?}", screen(&s.app));
    // Row by row back up, then a narrower window keeps the end in view.
    keys(&mut s, "k");
    assert!(!shows(&s.app, "THE END"));
    keys(&mut s, "G");
    act(&mut s, &[Action::Resize(80, 20)]);
    assert!(shows(&s.app, "THE END"), "{:?}", screen(&s.app));
    act(&mut s, &[Action::Resize(160, 20)]);
    assert!(shows(&s.app, "THE END"), "{:?}", screen(&s.app));
    assert!(shows(&s.app, "L39-xxx"), "a wider pane fills up again");
}

/// A status message wider than the screen keeps what to do about it (its
/// last clause) and loses the middle, not the end.
#[test]
fn a_long_message_keeps_its_last_clause() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, (60, 12));
    s.app.error(
        "cannot save note: cannot reach kvr server at http://127.0.0.1:35039 (is kvr serve \
         running?); press e to edit your text again",
    );
    let last = screen(&s.app).pop().unwrap();
    assert_eq!(
        last,
        "error: cannot save note: c…; press e to edit your text again"
    );
    // A short one is left as it is; one whose last clause is most of the
    // line is cut at the end (what went wrong comes first); one of a
    // single clause loses its middle: a long key's message still ends in
    // its revision.
    assert_eq!(crate::tui::fit::fit_message("saved", 60), "saved");
    let long_tail = format!("a; {}", "b".repeat(70));
    assert_eq!(
        crate::tui::fit::fit_message(&long_tail, 20),
        format!("a; {}…", "b".repeat(16))
    );
    // A long last clause is kept too while the start keeps 20 columns
    // (two thirds of the line was the bound: `r` on a served file showed
    // `… (pid 9113); it is s…`, not the --server to use).
    let in_use = "cannot read keys: emp.redb is in use by kvr --db emp.redb serve --listen \
                  127.0.0.1:0 --quiet (pid 9113); it is served at http://127.0.0.1:36285: use \
                  --server http://127.0.0.1:36285";
    let shown = crate::tui::fit::fit_message(in_use, 120);
    assert!(
        shown.starts_with("cannot read keys: emp.redb is in use")
            && shown.ends_with(
                "…; it is served at http://127.0.0.1:36285: use --server http://127.0.0.1:36285"
            ),
        "{shown}"
    );
    assert_eq!(crate::tui::wrap::columns(&shown), 120);
    // A last clause too long to keep whole beside the start keeps its end,
    // where what to do is said (the line was cut at its end: an untrusted
    // certificate's message lost its fix on 80 and 100 columns).
    let untrusted = "cannot read keys: the certificate of kvr server at https://127.0.0.1:32004 \
                     could not be verified: it is not signed by a certificate authority this \
                     client trusts; if the server's certificate is signed by your own CA, give \
                     that CA with --cacert PEM (or KVR_CACERT)";
    for width in [80, 100] {
        let shown = crate::tui::fit::fit_message(untrusted, width);
        assert!(
            shown.starts_with("cannot read keys: the ce")
                && shown.contains("…; …")
                && shown.ends_with("give that CA with --cacert PEM (or KVR_CACERT)"),
            "{shown}"
        );
        assert_eq!(crate::tui::wrap::columns(&shown), width, "{shown}");
    }
    let deleted = format!("deleted {} (revision 7)", "L".repeat(4096));
    let shown = crate::tui::fit::fit_message(&deleted, 40);
    assert!(
        shown.starts_with("deleted L") && shown.ends_with("L (revision 7)"),
        "{shown}"
    );
    assert_eq!(crate::tui::wrap::columns(&shown), 40);
    s.shutdown();
}

/// One line that wraps into many rows scrolls within that line: the
/// footer's line numbers stay, its percentage moves (as `less` shows).
#[test]
fn scrolling_within_one_wrapped_line_moves_the_percentage() {
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"long\",\"value\":\"{}\"}}\n",
        "word ".repeat(480)
    ));
    // 2,400 characters in a pane of 68 columns and 16 rows: 36 rows.
    let mut s = browse(&path, None, (100, 20));
    keys(&mut s, "\t");
    assert!(
        shows(&s.app, " lines 1–1 of 1 · 44% "),
        "{:?}",
        screen(&s.app)
    );
    keys(&mut s, "j");
    assert!(
        shows(&s.app, " lines 1–1 of 1 · 47% "),
        "{:?}",
        screen(&s.app)
    );
    keys(&mut s, "G");
    assert!(
        shows(&s.app, " lines 1–1 of 1 · 100% "),
        "{:?}",
        screen(&s.app)
    );
    s.shutdown();
}

/// A prompt's text wider than the line scrolls so the cursor stays in
/// view, with `…` in front of what is hidden; moving back to the start
/// shows the start again.
#[test]
fn a_long_prompt_scrolls_with_its_cursor() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, (60, 12));
    keys(&mut s, "n");
    s.paste(&format!("START{}END", "x".repeat(200)));
    let last = screen(&s.app).pop().unwrap();
    assert!(last.starts_with("new key: …xxx"), "{last:?}");
    assert!(last.trim_end().ends_with("END"), "{last:?}");
    let mut terminal = Terminal::new(TestBackend::new(60, 12)).unwrap();
    terminal.draw(|f| view::render(f, &s.app)).unwrap();
    let cursor = terminal.get_cursor_position().unwrap();
    // Right after END, on the last line.
    let end = last.trim_end().chars().count() as u16;
    assert_eq!((cursor.x, cursor.y), (end, 11), "{last:?}");
    press(&mut s, KeyEvent::new(KeyCode::Home, KeyModifiers::NONE));
    let last = screen(&s.app).pop().unwrap();
    assert!(last.starts_with("new key: STARTxxx"), "{last:?}");
    s.shutdown();
}

/// The new-key prompt says while the key is typed that it is too long
/// (Enter would refuse it), and stops saying so once it fits.
#[test]
fn the_new_key_prompt_says_at_once_that_a_key_is_too_long() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, (80, 12));
    keys(&mut s, "n");
    s.paste(&"x".repeat(4_096));
    let last = screen(&s.app).pop().unwrap();
    assert!(last.starts_with("new key: …xxx"), "{last:?}");
    s.paste("y");
    let last = screen(&s.app).pop().unwrap();
    assert!(
        last.starts_with("new key (4097 bytes, over 4096): …"),
        "{last:?}"
    );
    press(
        &mut s,
        KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE),
    );
    let last = screen(&s.app).pop().unwrap();
    assert!(last.starts_with("new key: …xxx"), "{last:?}");
    s.shutdown();
}

/// On a narrow screen the status bar's source gives way (to its file name,
/// then to nothing), so the position and `q quit` stay in view.
#[test]
fn a_narrow_status_bar_keeps_the_position_and_the_keys() {
    let (_dir, path) = sample();
    let mut s = browse(&path, None, (100, 12));
    let bar = |s: &Session| screen(&s.app)[10].clone();
    assert!(bar(&s).contains(&path.display().to_string()), "{}", bar(&s));
    s.app.size = (60, 12);
    assert_eq!(
        bar(&s).trim_end(),
        " t.redb │ key 1 of 3 │ revision 3 │ ? help · q quit"
    );
    s.app.size = (44, 12);
    assert_eq!(
        bar(&s).trim_end(),
        " key 1 of 3 │ revision 3 │ ? help · q quit"
    );
    s.shutdown();
}

/// The delete dialog always shows its question's end and the keys that
/// answer it: a long key is cut in its middle, and on a tiny screen the
/// question gives way before the `y` / `n` line does.
#[test]
fn the_delete_dialog_keeps_its_keys_for_a_long_key_and_a_tiny_screen() {
    let long = format!("{}end", "k".repeat(297));
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"{long}\",\"value\":\"v\"}}\n{{\"key\":\"b:00000\",\"value\":\"w\"}}\n"
    ));
    let mut s = browse(&path, None, (120, 35));
    assert_eq!(selected(&s.app), "b:00000");
    keys(&mut s, "jd");
    let text = screen(&s.app).join("\n");
    assert!(text.contains("y: delete    n / Esc: keep it"), "{text}");
    assert!(text.contains("(revision 1)?"), "{text}");
    assert!(text.contains("kkk…kkk"), "{text}");
    assert!(text.contains("kend (revision 1)?"), "{text}");
    keys(&mut s, "nk");
    for (w, h) in [(20, 5), (30, 6), (12, 4)] {
        act(&mut s, &[Action::Resize(w, h)]);
        keys(&mut s, "d");
        let text = screen(&s.app).join("\n");
        assert!(text.contains("y: delete"), "{w}x{h}\n{text}");
        assert!(text.contains("keep it"), "{w}x{h}\n{text}");
        keys(&mut s, "n");
    }
    act(&mut s, &[Action::Resize(30, 8)]);
    keys(&mut s, "d");
    let text = screen(&s.app).join("\n");
    assert!(text.contains("Delete b:00000"), "{text}");
}

/// Smaller things: a filter ending in `:` is not doubled (`user:: 3`), the
/// `? help · q quit` hint is gone where `?` and `q` are typed, and a read
/// error in the value pane wraps rather than being cut.
#[test]
fn the_status_bar_and_the_value_pane_say_small_things_right() {
    let (_dir, path) = store_with(&numbered(3));
    let mut s = browse(&path, None, (100, 20));
    keys(&mut s, "fkey:\n");
    assert!(
        shows(&s.app, "filter key: · 3 keys │"),
        "{:?}",
        screen(&s.app)
    );
    keys(&mut s, "e");
    assert!(!shows(&s.app, "? help · q quit"), "{:?}", screen(&s.app));
    keys(&mut s, "\x1b");
    assert!(shows(&s.app, "? help · q quit"));
    let why = format!("cannot read key:00000: {} (the end)", "word ".repeat(30));
    s.app.value.state = crate::tui::app::ValueState::Failed(why);
    let text = screen(&s.app).join("\n");
    assert!(text.contains("word  (the end)"), "{text}");
}

/// Tiny screens degrade cleanly: a pane with no row for its footer draws
/// none (at 60x3 it was drawn over the title), and below 40 columns one
/// pane takes the whole width (at 20x6 the list was 4 columns wide): the
/// list, or the value pane when it has the focus or the editor is open.
#[test]
fn tiny_screens_keep_one_usable_pane() {
    let (_dir, path) = store_with(concat!(
        "{\"key\":\"key:00001\",\"value\":\"one\\ntwo\\nthree\"}\n",
        "{\"key\":\"key:00002\",\"value\":\"x\"}\n",
    ));
    let mut s = browse(&path, None, (60, 3));
    let top = &screen(&s.app)[0];
    assert!(top.contains("key:00001 · rev 1"), "{top}");
    assert!(!top.contains("lines") && !top.contains('%'), "{top}");
    s.app.size = (20, 6);
    let shown = screen(&s.app);
    assert_eq!(
        shown[1..3],
        ["┃> key:00001       ┃", "┃  key:00002       ┃"]
    );
    keys(&mut s, "\t");
    let shown = screen(&s.app);
    assert!(shown[0].starts_with("┏ key"), "{shown:?}");
    assert_eq!(shown[1], "┃one               ┃");
    // The footer gives way to its percentage (it was cut at its front).
    assert!(shown[3].ends_with("━ 66% ┛"), "{shown:?}");
    // j scrolls the value, shown across the whole width.
    keys(&mut s, "j");
    assert_eq!(screen(&s.app)[1], "┃two               ┃");
    keys(&mut s, "\t");
    assert!(shows(&s.app, "┃> key:00001"));
    // The built-in editor takes the whole width too, and Tab is typed there.
    keys(&mut s, "e");
    assert!(s.app.editor().is_some());
    let shown = screen(&s.app);
    assert!(shown[0].starts_with("┏ Edit "), "{shown:?}");
    assert_eq!(shown[2], "┃three             ┃");
    s.shutdown();
}

/// Tabs go to the next tab stop, every 8 columns from the line's start,
/// as `cat` and `less` show them (they were a fixed 4 spaces, misaligning
/// columns), by columns as drawn; a line they make wider wraps as drawn.
#[test]
fn tabs_in_the_value_pane_go_to_tab_stops() {
    let tsv = "name\\tage\\tcity\\nalexander\\t30\\tParis\\nbo\\t4\\tRome\\n日本\\tx\\n";
    let wide = "1234567\\t".repeat(10);
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"tsv\",\"value\":\"{tsv}{wide}end\"}}\n"
    ));
    let s = browse(&path, None, SMALL);
    let shown = screen(&s.app);
    let pane: Vec<&str> = shown[1..8]
        .iter()
        .map(|l| l.split('│').nth(1).unwrap_or("").trim_end())
        .collect();
    let row1 = format!("{}1234", "1234567 ".repeat(8));
    assert_eq!(
        pane,
        [
            "name    age     city",
            "alexander       30      Paris",
            "bo      4       Rome",
            // A wide character's second cell reads as a space here.
            "日 本     x",
            row1.as_str(),
            "567 1234567 end",
            "",
        ],
        "{shown:?}"
    );
    // All rows fit: no footer, as the rows counted are the rows drawn.
    assert_eq!(s.app.value_rows(), 6);
}

/// A JSON value too large to pretty-print is still called JSON, shown in
/// part as text (it was called text); a title wider than its pane loses
/// whole fields, or ends in `…` (it was cut mid-word, `showing the first
/// 256.0 Ki┐`).
#[test]
fn large_json_is_labelled_json_shown_as_text() {
    let items: Vec<String> = (0..60_000)
        .map(|i| format!("{{\"i\":{i},\"s\":\"vvvvvvvvvvvv\"}}"))
        .collect();
    let big = format!("[{}]", items.join(","));
    assert!(big.len() > crate::tui::preview::JSON_PREVIEW_BYTES);
    let line = serde_json::json!({"key": "big:json", "value": big}).to_string();
    let (_dir, path) = store_with(&format!("{line}\n"));
    let mut s = browse(&path, None, (160, 20));
    let size = crate::tui::preview::human_bytes(big.len());
    let want = format!("big:json · rev 1 · {size} · JSON · showing the first 256.0 KiB as text ");
    assert!(shows(&s.app, &want), "{:?}", screen(&s.app));
    // Narrower, the fields after the key give way whole, the revision
    // first; then the last one left, how much is shown, is cut at a word.
    s.app.size = (90, 20);
    let top = &screen(&s.app)[0];
    let want = format!("┌ big:json · {size} · JSON · first 256.0 KiB as text ─");
    assert!(top.contains(&want), "{top}");
    keys(&mut s, "\t");
    s.app.size = (30, 20);
    let top = &screen(&s.app)[0];
    assert_eq!(top, "┏ big:json · first 256.0… ━━━┓");
}

/// A long filter loses its middle in the status bar, after the source,
/// so what follows it (the revision, the help hint) stays in view (it was
/// pushed off the screen).
#[test]
fn a_long_filter_leaves_the_rest_of_the_status_bar() {
    let p = "config:service:production:eu-west-1:database:primary:connection:";
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"{p}timeout\",\"value\":\"30\"}}\n{{\"key\":\"{p}pool_size\",\"value\":\"10\"}}\n"
    ));
    let mut s = browse(&path, None, (100, 12));
    keys(&mut s, &format!("f{p}\n"));
    let bar = screen(&s.app)[10].clone();
    assert!(bar.ends_with("│ revision 2 │ ? help · q quit"), "{bar}");
    assert!(bar.starts_with(" filter config:service:pro"), "{bar}");
    assert!(
        bar.contains("…primary:connection: · 2 keys │ key 1 of 2"),
        "{bar}"
    );
    assert!(wrap::columns(&bar) <= 100, "{bar}");
    s.shutdown();
}
