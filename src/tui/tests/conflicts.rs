//! A save that meets someone else's change keeps the typed text: the
//! dialog shows what the key holds now; `o` overwrites it (conditionally
//! again), `r` then `y` drops the text, `e` / Esc go back to it. Every
//! refusal leaves the stored value as the other writer left it.

use super::*;
use crate::tui::app::Mode;
use crate::tui::conflict::Now;

fn ctrl_s(s: &mut Session) {
    press(s, KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
}

/// The stored value and revision of `key`.
fn stored_now(kv: &LocalKv, key: &[u8]) -> Option<(String, u64)> {
    let entry = kv.get(key).unwrap()?;
    Some((String::from_utf8(entry.value).unwrap(), entry.revision))
}

fn in_conflict(s: &Session) -> bool {
    matches!(s.app.mode, Mode::Conflict(_))
}

/// `note` (revision 1) is edited to "hello, world" while someone else
/// writes "theirs" (revision 3), and saved.
fn conflict_on_note(s: &mut Session, other: &LocalKv) {
    keys(s, "e");
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    keys(s, ", world");
    ctrl_s(s);
    assert!(in_conflict(s), "{:?}", screen(&s.app));
}

#[test]
fn a_conflict_keeps_the_text_shows_theirs_and_o_overwrites() {
    let (_dir, other, mut s) = shared(NOTE, None);
    conflict_on_note(&mut s, &other);
    assert_eq!(
        s.app.status.text,
        "note was changed by someone else (now at revision 3); your edit is kept, not written"
    );
    let text = screen(&s.app).join("\n");
    for want in [
        "Conflict · changed meanwhile",
        "note changed since you opened it (revision 1).",
        "It is now at revision 3 (6 B):",
        "  theirs",
        "Your text is kept; nothing was written.",
        "o: overwrite with your text    r: reload (drops your text)",
        "e / Enter / Esc: back to your text",
        // The editor is still there behind the dialog.
        "Edit note · Ctrl-S save",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    assert_eq!(editor_text(&s).as_deref(), Some("hello, world"));
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));
    // Tiny terminals do not break drawing it.
    for size in [(1, 1), (8, 3), (30, 6), (100, 20)] {
        s.app.size = size;
        let _ = screen(&s.app);
    }

    // Keys that choose nothing change nothing; one Ctrl-C does not quit.
    keys(&mut s, "xq ");
    press(
        &mut s,
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
    );
    assert!(in_conflict(&s) && !s.app.quit);
    assert!(s.app.status.text.starts_with("Ctrl-C again quits"));
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));

    // Back to the text: still the edit of revision 1, so its next save
    // meets the same check, and is refused again.
    keys(&mut s, "e");
    assert!(matches!(s.app.mode, Mode::Editor { .. }));
    assert!(
        s.app
            .status
            .text
            .contains("a save asks again (o overwrites)")
    );
    keys(&mut s, "!");
    ctrl_s(&mut s);
    assert!(in_conflict(&s));
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));
    assert_eq!(editor_text(&s).as_deref(), Some("hello, world!"));

    keys(&mut s, "o");
    assert_eq!(s.app.status.text, "saved note (revision 4)");
    assert_eq!(s.app.mode, Mode::Browse);
    assert_eq!(
        stored_now(&other, b"note"),
        Some(("hello, world!".into(), 4))
    );
    assert!(shows(&s.app, "note · rev 4"), "{:?}", screen(&s.app));
}

/// On a small terminal the dialog's key lines stay whole and in view;
/// what is left out is the value's lines (their last one says `…`).
#[test]
fn a_small_terminal_shortens_the_value_not_the_key_lines() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "e");
    let six = b"one\ntwo\nthree\nfour\nfive\nsix".to_vec();
    other.put(b"note", six, None).unwrap();
    keys(&mut s, "!");
    ctrl_s(&mut s);
    assert!(in_conflict(&s));
    let keys_shown = [
        "o: overwrite with your text",
        "r: reload (drops your text)",
        "e / Enter / Esc: back to your text",
    ];
    // Room for everything: four lines of the value, and `…`.
    let text = screen(&s.app).join("\n");
    for want in ["  one", "  four", "  …", "Your text is kept"]
        .iter()
        .chain(&keys_shown)
    {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // 12 rows: three lines of the value and `…`; 9 rows: just `…`; and
    // at 40 columns the two keys of a line go on two rows.
    for (size, value, gone) in [
        ((60, 12), &["  one", "  three", "  …"][..], &["  four"][..]),
        ((40, 9), &["  …"][..], &["  one"][..]),
    ] {
        s.app.size = size;
        let text = screen(&s.app).join("\n");
        for want in value.iter().chain(&keys_shown) {
            assert!(text.contains(want), "{size:?}: no {want:?} in:\n{text}");
        }
        for unwanted in gone {
            assert!(
                !text.contains(unwanted),
                "{size:?}: {unwanted:?} in:\n{text}"
            );
        }
        assert!(
            text.contains("┗━"),
            "{size:?}: the dialog's bottom:\n{text}"
        );
    }
    assert_eq!(editor_text(&s).as_deref(), Some("hello!"));
}

#[test]
fn reload_drops_the_text_only_after_a_yes() {
    let (_dir, other, mut s) = shared(NOTE, None);
    conflict_on_note(&mut s, &other);
    keys(&mut s, "r");
    assert!(shows(&s.app, "Drop your text and show the stored value?"));
    assert!(shows(&s.app, "y: drop it    n / Esc: keep it"));
    // n, Esc and Enter keep it: back to the dialog.
    for no in ["n", "\x1b", "\n"] {
        keys(&mut s, no);
        assert!(in_conflict(&s), "after {no:?}");
        assert!(shows(&s.app, "o: overwrite with your text"), "after {no:?}");
        assert_eq!(editor_text(&s).as_deref(), Some("hello, world"));
        keys(&mut s, "r");
    }
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));
    keys(&mut s, "y");
    assert_eq!(s.app.mode, Mode::Browse);
    assert_eq!(
        s.app.status.text,
        "dropped your edit; showing note as stored now"
    );
    assert!(shows(&s.app, "note · rev 3"), "{:?}", screen(&s.app));
    assert!(shows(&s.app, "theirs"));
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));
    // A new edit starts from their value.
    keys(&mut s, "e");
    assert_eq!(editor_text(&s).as_deref(), Some("theirs"));
}

#[test]
fn a_key_deleted_underneath_is_a_conflict_and_o_writes_it_again() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "e");
    other.delete(b"note", None).unwrap();
    keys(&mut s, " again");
    ctrl_s(&mut s);
    assert!(in_conflict(&s));
    assert_eq!(
        s.app.status.text,
        "note was deleted by someone else; your edit is kept, not written"
    );
    assert!(shows(
        &s.app,
        "note was deleted since you opened it (revision 1)."
    ));
    assert!(shows(&s.app, "Conflict · deleted meanwhile"));
    assert!(shows(
        &s.app,
        "o: save your text (the key is created again)"
    ));
    assert_eq!(stored_now(&other, b"note"), None);
    // Esc goes back to the text; saving it is refused again.
    keys(&mut s, "\x1b");
    assert_eq!(editor_text(&s).as_deref(), Some("hello again"));
    ctrl_s(&mut s);
    assert!(in_conflict(&s));
    assert_eq!(stored_now(&other, b"note"), None);
    keys(&mut s, "o");
    assert_eq!(s.app.status.text, "saved note (revision 4)");
    assert_eq!(stored_now(&other, b"note"), Some(("hello again".into(), 4)));
    assert_eq!(selected(&s.app), "note");
}

/// `r` then `y` on a key deleted meanwhile: the key leaves the list and
/// the next one is selected (it stayed, "this key no longer exists (press
/// r to refresh)": found by an audit).
#[test]
fn dropping_the_text_of_a_key_deleted_meanwhile_takes_it_off_the_list() {
    let lines = "{\"key\":\"a\",\"value\":\"one\"}\n{\"key\":\"b\",\"value\":\"two\"}\n";
    let (_dir, other, mut s) = shared(lines, None);
    assert_eq!(selected(&s.app), "a");
    keys(&mut s, "e");
    other.delete(b"a", None).unwrap();
    keys(&mut s, "x");
    ctrl_s(&mut s);
    assert!(in_conflict(&s));
    keys(&mut s, "ry");
    assert!(s.settle(SETTLE));
    assert_eq!(s.app.status.text, "dropped your edit; a no longer exists");
    assert_eq!(selected(&s.app), "b");
    assert!(
        !shows(&s.app, "no longer exists (press r"),
        "{:?}",
        screen(&s.app)
    );
    assert_eq!(stored_now(&other, b"a"), None);
}

#[test]
fn an_overwrite_that_meets_a_newer_change_asks_again() {
    let (_dir, other, mut s) = shared(NOTE, None);
    conflict_on_note(&mut s, &other);
    // Another change after the dialog showed revision 3.
    other.put(b"note", b"third".to_vec(), None).unwrap();
    keys(&mut s, "o");
    assert!(
        in_conflict(&s),
        "the overwrite was conditional on revision 3"
    );
    assert!(s.app.status.text.contains("now at revision 4"));
    assert!(shows(&s.app, "It is now at revision 4 (5 B):"));
    assert!(shows(&s.app, "  third"));
    assert_eq!(stored_now(&other, b"note"), Some(("third".into(), 4)));
    assert_eq!(editor_text(&s).as_deref(), Some("hello, world"));
    keys(&mut s, "o");
    assert_eq!(
        stored_now(&other, b"note"),
        Some(("hello, world".into(), 5))
    );
}

#[test]
fn overwrite_waits_for_the_value_it_replaces() {
    let (_dir, other, mut s) = shared(NOTE, None);
    conflict_on_note(&mut s, &other);
    let Mode::Conflict(mut c) = s.app.mode.clone() else {
        unreachable!()
    };
    c.now = Now::Reading(Some(3));
    s.app.mode = Mode::Conflict(c);
    s.app.update(Action::Submit);
    assert_eq!(
        s.app.status.text,
        "still reading what note holds now; a moment"
    );
    assert!(in_conflict(&s) && s.app.outbox.is_empty());
    assert!(shows(&s.app, "It is now at revision 3; reading it…"));
    // Their text being yours already, nothing is written.
    let Mode::Conflict(mut c) = s.app.mode.clone() else {
        unreachable!()
    };
    c.job.draft = Some(b"theirs".to_vec());
    c.now = Now::Stored {
        revision: 3,
        bytes: b"theirs".to_vec(),
        expires_at_ms: None,
        lines: vec!["theirs".into()],
        more: false,
    };
    s.app.mode = Mode::Conflict(c);
    act(&mut s, &[Action::Submit]);
    assert_eq!(
        s.app.status.text,
        "note already holds your text (revision 3); nothing written"
    );
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));
}

/// After `$EDITOR` the dialog stands alone; `e` opens the editor again on
/// the text it left.
#[test]
fn a_conflict_after_an_external_editor_keeps_its_text() {
    let (_dir, other, mut s) = shared(NOTE, Some("true"));
    keys(&mut s, "e");
    let job = s.app.pending_edit.take().unwrap();
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    s.finish_edit(job, Ok(b"mine".to_vec()));
    assert!(s.settle(SETTLE));
    assert!(in_conflict(&s));
    assert!(s.app.editor().is_none());
    assert!(shows(&s.app, "It is now at revision 3 (6 B):"));
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));
    keys(&mut s, "e");
    let job = s.app.pending_edit.take().unwrap();
    assert_eq!(job.start_text(), b"mine");
    assert_eq!(job.revision, 1);
    s.finish_edit(job, Ok(b"mine, edited".to_vec()));
    assert!(s.settle(SETTLE));
    assert!(in_conflict(&s));
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));
    keys(&mut s, "o");
    assert_eq!(
        stored_now(&other, b"note"),
        Some(("mine, edited".into(), 4))
    );
}

/// The value the dialog shows has a TTL and expires before `o`: the
/// overwrite, conditional on it, is refused because the key expired, and
/// the status line and the dialog say so (they said someone deleted it).
#[test]
fn a_value_that_expires_under_the_dialog_is_said_to_have_expired() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "e");
    other
        .put_ttl(b"note", b"theirs".to_vec(), None, Some(2))
        .unwrap();
    keys(&mut s, "!");
    ctrl_s(&mut s);
    assert!(
        shows(&s.app, "It is now at revision 3 (6 B):"),
        "{:?}",
        screen(&s.app)
    );
    let deadline = std::time::Instant::now() + SETTLE;
    while stored_now(&other, b"note").is_some() {
        assert!(std::time::Instant::now() < deadline, "it never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    keys(&mut s, "o");
    assert!(in_conflict(&s));
    assert_eq!(
        s.app.status.text,
        "note expired; your edit is kept, not written"
    );
    assert!(
        shows(&s.app, "note expired since you opened it (revision 1)."),
        "{:?}",
        screen(&s.app)
    );
    assert_eq!(stored_now(&other, b"note"), None);
    // `o` again writes it as a new key.
    keys(&mut s, "o");
    assert_eq!(
        stored_now(&other, b"note").map(|(v, _)| v).as_deref(),
        Some("hello!")
    );
}

/// Their value has a TTL: the dialog says when it expires and that `o`
/// writes without one, counting down; and `o` does.
#[test]
fn the_dialog_says_o_drops_the_current_values_expiry() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "e");
    other
        .put_ttl(b"note", b"theirs".to_vec(), None, Some(300))
        .unwrap();
    keys(&mut s, "!");
    ctrl_s(&mut s);
    assert!(in_conflict(&s));
    let text = screen(&s.app).join("\n");
    let said = ["It expires in 4m 5", "It expires in 5m 0s"];
    assert!(said.iter().any(|w| text.contains(w)), "{text}");
    assert!(
        text.contains("s; o writes yours without an expiry."),
        "{text}"
    );
    assert!(s.app.shows_expiry(), "the countdown is drawn each second");
    // Still there, whole, on a small terminal.
    s.app.size = (60, 12);
    assert!(shows(&s.app, "o writes yours without an expiry."));
    s.app.size = (100, 20);
    keys(&mut s, "o");
    assert_eq!(
        s.app.status.text,
        "saved note (revision 4); its expiry was removed"
    );
    let entry = other.get(b"note").unwrap().unwrap();
    assert_eq!(
        (entry.value, entry.expires_at_ms),
        (b"hello!".to_vec(), None)
    );
}

#[test]
fn a_new_key_created_meanwhile_is_a_conflict() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "nfresh\n");
    assert!(shows(&s.app, "New fresh"), "{:?}", screen(&s.app));
    other.put(b"fresh", b"first".to_vec(), None).unwrap();
    keys(&mut s, "mine");
    ctrl_s(&mut s);
    assert!(in_conflict(&s));
    assert_eq!(
        s.app.status.text,
        "fresh was created by someone else (revision 3); your edit is kept, not written"
    );
    assert!(shows(&s.app, "Conflict · created meanwhile"));
    assert!(shows(
        &s.app,
        "fresh was created by someone else since you started it."
    ));
    assert!(shows(&s.app, "It is now at revision 3 (5 B):"));
    assert_eq!(stored_now(&other, b"fresh"), Some(("first".into(), 3)));
    keys(&mut s, "o");
    assert_eq!(stored_now(&other, b"fresh"), Some(("mine".into(), 4)));
}

/// Refused while something else has the keyboard (the help, opened
/// before the answer came): the text waits for `e` on the key.
#[test]
fn a_conflict_while_another_screen_is_open_waits_for_e() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "e");
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    keys(&mut s, "!");
    // Saved, and the help opened before the answer is taken.
    s.dispatch(Action::Submit);
    s.app.update(Action::Help);
    assert!(s.settle(SETTLE));
    assert_eq!(s.app.mode, Mode::Help { scroll: 0 });
    assert_eq!(
        s.app.status.text,
        "note was changed by someone else (now at revision 3); your edit was not written: press e on note to go back to it"
    );
    keys(&mut s, "xe");
    assert_eq!(editor_text(&s).as_deref(), Some("hello!"));
    ctrl_s(&mut s);
    assert!(in_conflict(&s));
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));
}

/// Back to the text from the dialog, the cursor is where it was when the
/// text was saved, not at its end.
#[test]
fn back_to_the_text_keeps_the_cursor_where_it_was() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "e");
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    press(&mut s, KeyEvent::new(KeyCode::Home, KeyModifiers::NONE));
    keys(&mut s, ">");
    ctrl_s(&mut s);
    assert!(in_conflict(&s), "{:?}", screen(&s.app));
    keys(&mut s, "e");
    keys(&mut s, ">");
    assert_eq!(editor_text(&s).as_deref(), Some(">>hello"));
    assert_eq!(stored_now(&other, b"note"), Some(("theirs".into(), 3)));
}

/// A save is a put without a TTL (README): the editor shows the key's
/// expiry in its title, and the save says the expiry went.
#[test]
fn saving_a_key_with_an_expiry_says_the_expiry_was_removed() {
    let (_dir, other, mut s) = shared(NOTE, None);
    other
        .put_ttl(b"note", b"hello".to_vec(), None, Some(300))
        .unwrap();
    keys(&mut s, "re");
    let text = screen(&s.app).join("\n");
    let said = [
        "Edit note · expires in 4m 5",
        "Edit note · expires in 5m 0s",
    ];
    assert!(said.iter().any(|w| text.contains(w)), "{text}");
    assert!(text.contains("Ctrl-S save · Esc cancel"), "{text}");
    keys(&mut s, "!");
    ctrl_s(&mut s);
    assert_eq!(
        s.app.status.text,
        "saved note (revision 4); its expiry was removed"
    );
    assert_eq!(other.get(b"note").unwrap().unwrap().expires_at_ms, None);
    // A key without one says nothing of the kind.
    keys(&mut s, "e?");
    ctrl_s(&mut s);
    assert_eq!(s.app.status.text, "saved note (revision 5)");
}

/// On a file (no feed to follow the key), a delete refused because the key
/// changed reads it again, so the next `d` asks about what is there now:
/// it asked about the revision shown before, and `y` was refused for ever
/// (found by an audit). A key deleted meanwhile is gone from the list.
#[test]
fn a_refused_delete_on_a_file_asks_again_about_the_key_as_it_is_now() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "d");
    assert!(s.settle(SETTLE));
    assert!(
        shows(&s.app, "Delete note (revision 1)?"),
        "{:?}",
        screen(&s.app)
    );
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    keys(&mut s, "y");
    assert!(s.settle(SETTLE));
    assert_eq!(
        s.app.status.text,
        "note was changed by someone else (now at revision 3); not deleted: d asks again"
    );
    keys(&mut s, "d");
    assert!(s.settle(SETTLE));
    assert!(
        shows(&s.app, "Delete note (revision 3)?"),
        "{:?}",
        screen(&s.app)
    );
    keys(&mut s, "y");
    assert!(s.settle(SETTLE));
    assert_eq!(stored_now(&other, b"note"), None);

    // Deleted by someone else while the dialog is open: said so, and gone.
    keys(&mut s, "d");
    assert!(s.settle(SETTLE));
    assert!(shows(&s.app, "Delete zz"), "{:?}", screen(&s.app));
    other.delete(b"zz", None).unwrap();
    keys(&mut s, "y");
    assert!(s.settle(SETTLE));
    assert_eq!(s.app.status.text, "zz was already deleted by someone else");
    assert!(shows(&s.app, "(no keys)"), "{:?}", screen(&s.app));
}
