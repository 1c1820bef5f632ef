//! Text typed and not written is never dropped by one key: `q` or Ctrl-C
//! after a refused or failed save (or while a save is out) asks first and
//! says how to get back to it. Pasted text (bracketed paste) is typed into
//! the editor or a prompt, and never runs as key commands.

use super::*;
use crate::tui::app::{Mode, PromptKind};

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn value_of(kv: &LocalKv, key: &[u8]) -> Option<String> {
    kv.get(key)
        .unwrap()
        .map(|e| String::from_utf8(e.value).unwrap())
}

/// `note` edited to "hello!" and saved after someone else wrote "theirs":
/// the refusal arrives while the help is open, so the text waits for `e`.
fn refused_under_help(s: &mut Session, other: &LocalKv) {
    keys(s, "e");
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    keys(s, "!");
    s.dispatch(Action::Submit);
    s.app.update(Action::Help);
    assert!(s.settle(SETTLE));
}

/// The refusal came while the help was open: the text waits for `e`.
/// Closing the help and pressing `q` (or Ctrl-C) does not quit at once.
#[test]
fn q_after_a_refusal_held_for_e_asks_first() {
    let (_dir, other, mut s) = shared(NOTE, None);
    refused_under_help(&mut s, &other);
    assert_eq!(s.app.mode, Mode::Help { scroll: 0 });
    // Ctrl-C on the help: held text, so it asks.
    press(&mut s, ctrl('c'));
    assert!(!s.app.quit);
    keys(&mut s, "x");
    assert_eq!(s.app.mode, Mode::Browse);
    keys(&mut s, "q");
    assert!(!s.app.quit, "the first q does not quit");
    assert_eq!(
        s.app.status.text,
        "your edit of note is not written: q or Ctrl-C again quits and drops it; e on note goes back to it"
    );
    assert!(shows(&s.app, "e on note goes back to it"));
    // Anything else takes the first q back: one more q still asks.
    keys(&mut s, "j");
    keys(&mut s, "q");
    assert!(!s.app.quit);
    keys(&mut s, "k");
    // The text is still there.
    keys(&mut s, "e");
    assert_eq!(editor_text(&s).as_deref(), Some("hello!"));
    keys(&mut s, "\x1b\x1b");
    // Cancelled in the editor: the text is dropped by the user, and q quits.
    keys(&mut s, "q");
    assert!(s.app.quit);
    assert_eq!(value_of(&other, b"note").as_deref(), Some("theirs"));
}

/// A second q or Ctrl-C quits.
#[test]
fn a_second_q_quits_with_text_held() {
    let (_dir, other, mut s) = shared(NOTE, None);
    refused_under_help(&mut s, &other);
    keys(&mut s, "x");
    press(&mut s, ctrl('c'));
    assert!(!s.app.quit);
    press(&mut s, ctrl('c'));
    assert!(s.app.quit);
}

/// `q` pressed while the save is out (Ctrl-S then q at once): the answer
/// is waited for. A refusal keeps the browser open on the conflict.
#[test]
fn q_while_a_save_is_out_waits_for_its_answer() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "e");
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    keys(&mut s, "!");
    // Saved, and q pressed before the answer is taken.
    s.dispatch(Action::Submit);
    s.app.update(Action::Quit);
    assert!(!s.app.quit);
    assert!(
        s.app
            .status
            .text
            .starts_with("waiting for the save of note"),
        "{:?}",
        s.app.status
    );
    assert!(s.settle(SETTLE));
    assert!(!s.app.quit, "the refusal keeps the browser open");
    assert!(matches!(s.app.mode, Mode::Conflict(_)));
    assert!(
        s.app
            .status
            .text
            .starts_with("not quitting: note was changed"),
        "{:?}",
        s.app.status
    );
    // Back to the text.
    keys(&mut s, "e");
    assert_eq!(editor_text(&s).as_deref(), Some("hello!"));
    assert_eq!(value_of(&other, b"note").as_deref(), Some("theirs"));

    // A save that works: q waits for it, then quits.
    keys(&mut s, "\x1b\x1b");
    keys(&mut s, "je");
    keys(&mut s, "2");
    s.dispatch(Action::Submit);
    s.app.update(Action::Quit);
    assert!(!s.app.quit);
    assert!(s.settle(SETTLE));
    assert!(s.app.quit, "{:?}", s.app.status);
    assert_eq!(value_of(&other, b"zz").as_deref(), Some("w2"));
}

/// After `$EDITOR`, a save that fails keeps the text for `e`; q asks.
#[test]
fn q_after_a_failed_external_save_asks_first() {
    let (_dir, path) = store_with(NOTE);
    let mut s = failed_external_save(path);
    keys(&mut s, "q");
    assert!(!s.app.quit);
    assert!(s.app.status.text.contains("e on note goes back to it"));
    keys(&mut s, "e");
    let job = s.app.pending_edit.take().unwrap();
    assert_eq!(job.start_text(), b"hello, world");
}

/// Pasting "body" on a selected key: as keys, `d` then `y` would delete
/// it. As a paste it does nothing but say so.
#[test]
fn a_paste_in_the_list_is_ignored() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "j");
    assert_eq!(selected(&s.app), "zz");
    s.paste("body");
    assert!(s.settle(SETTLE));
    assert_eq!(s.app.mode, Mode::Browse);
    assert_eq!(selected(&s.app), "zz");
    assert_eq!(
        s.app.status.text,
        "paste ignored here (open the editor with e)"
    );
    // Not in the delete confirmation either.
    keys(&mut s, "d");
    s.paste("y");
    assert!(s.settle(SETTLE));
    assert!(matches!(s.app.mode, Mode::Confirm { .. }));
    keys(&mut s, "n");
    assert_eq!(value_of(&other, b"zz").as_deref(), Some("w"));
    assert_eq!(value_of(&other, b"note").as_deref(), Some("hello"));
}

/// In the built-in editor the text goes in at the cursor, line breaks
/// included; in a prompt, as one line.
#[test]
fn a_paste_in_the_editor_or_a_prompt_is_typed() {
    let (_dir, other, mut s) = shared(NOTE, None);
    keys(&mut s, "e");
    s.paste(" body\r\nmore");
    assert_eq!(editor_text(&s).as_deref(), Some("hello body\nmore"));
    press(&mut s, ctrl('s'));
    assert_eq!(
        value_of(&other, b"note").as_deref(),
        Some("hello body\nmore")
    );

    keys(&mut s, "/");
    s.paste("zz\n");
    match &s.app.mode {
        Mode::Prompt { kind, input } => {
            assert_eq!(*kind, PromptKind::Seek);
            assert_eq!(input.text(), "zz");
        }
        other => panic!("{other:?}"),
    }
    keys(&mut s, "\n");
    assert_eq!(selected(&s.app), "zz");
}
