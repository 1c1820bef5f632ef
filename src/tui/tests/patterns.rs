//! Pattern filters (`f` with `*`, `?` or `[`): only matching keys, read
//! page by page in steps from a real store, with moving, seeking, editing
//! and deleting under them, progress while a sparse pattern is read, and
//! `Esc` stopping that read and then clearing the filter.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::tui::action::Move;
use crate::tui::pager::MAX_WINDOW;

/// JSON lines of `n` keys `item:00000`… with number values.
fn items(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"key\":\"item:{i:05}\",\"value\":{i}}}\n"))
        .collect()
}

/// Every key the list holds passes the filter, and there are not too many.
fn all_match(s: &Session) {
    let filter = s.app.pager.filter.as_ref().unwrap();
    for key in &s.app.pager.keys {
        assert!(filter.matches(key), "{} in the list", selected(&s.app));
    }
    assert!(s.app.pager.keys.len() <= MAX_WINDOW);
}

fn status_bar(s: &Session) -> String {
    let lines = screen(&s.app);
    lines[lines.len() - 2].clone()
}

fn enter(s: &mut Session) {
    s.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
}

fn esc(s: &mut Session) {
    press(s, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
}

/// 1,200 matches among 12,000 keys: six pages of matches, read over
/// three steps of keys; moving through them all, to the end and back.
#[test]
fn a_pattern_shows_only_its_matches_page_by_page() {
    let (_dir, path) = store_with(&items(12_000));
    let mut s = browse(&path, None, (100, 30));
    keys(&mut s, "fitem:*7\n");
    assert!(
        shows(&s.app, "Keys matching item:*7 "),
        "{:?}",
        screen(&s.app)
    );
    assert!(shows(
        &s.app,
        "filter: keys matching item:*7 (Esc clears it)"
    ));
    assert!(
        status_bar(&s).contains("filter item:*7 · 1,200 keys │ key 1 of 1,200"),
        "{}",
        status_bar(&s)
    );
    assert_eq!(selected(&s.app), "item:00007");
    assert!(shows(&s.app, "  item:00017"));
    all_match(&s);
    for _ in 0..60 {
        act(&mut s, &[Action::Move(Move::PageDown)]);
        all_match(&s);
    }
    assert_eq!(selected(&s.app), "item:11997");
    assert!(status_bar(&s).contains("key 1,200 of 1,200"));
    keys(&mut s, "j");
    assert_eq!(
        selected(&s.app),
        "item:11997",
        "the pattern bounds the list"
    );
    keys(&mut s, "g");
    assert_eq!(selected(&s.app), "item:00007");
    keys(&mut s, "G");
    assert_eq!(selected(&s.app), "item:11997");
    assert!(s.app.pager.keys.len() <= 201, "G reads the last page only");
    keys(&mut s, "k");
    assert_eq!(selected(&s.app), "item:11987");
    for _ in 0..60 {
        act(&mut s, &[Action::Move(Move::PageUp)]);
        all_match(&s);
    }
    assert_eq!(selected(&s.app), "item:00007");
    assert!(status_bar(&s).contains("key 1 of 1,200"));
    // The value shown is the selected key's.
    assert!(shows(&s.app, "item:00007 · rev 8"));
}

/// A seek lands on the first match at or after its key, and says so
/// when its key is not one; past the last match it shows the last.
#[test]
fn seek_under_a_pattern() {
    let (_dir, path) = store_with(&items(3_000));
    let mut s = browse(&path, None, (100, 30));
    keys(&mut s, "fitem:*7\n/item:01000\n");
    assert_eq!(selected(&s.app), "item:01007");
    assert_eq!(
        s.app.status.text,
        "item:01000 does not match the filter, item:*7 (Esc clears it); showing the next key that does, item:01007"
    );
    keys(&mut s, "k");
    assert_eq!(
        selected(&s.app),
        "item:00997",
        "matches before the seek load too"
    );
    all_match(&s);
    keys(&mut s, "/item:02017\n");
    assert_eq!(selected(&s.app), "item:02017");
    assert_eq!(s.app.status.text, "seek item:02017");
    keys(&mut s, "/item:3\n");
    assert_eq!(selected(&s.app), "item:02997");
    assert_eq!(
        s.app.status.text,
        "no key matching item:*7 at or after item:3; showing the last key"
    );
    // A key typed as it is shown, escapes and all: `\*` is a star.
    keys(&mut s, "fitem:\\*\n");
    assert!(shows(&s.app, "Keys starting with item:\\* "));
    assert!(shows(&s.app, "filter item:\\* · no keys match"));
}

/// Delete and edit under a pattern: the next match is selected, the count
/// follows, an edited key stays in the list.
#[test]
fn delete_and_edit_under_a_pattern() {
    let (_dir, path) = store_with(&items(3_000));
    let mut s = browse(&path, None, (100, 30));
    keys(&mut s, "f*5\nj");
    assert_eq!(selected(&s.app), "item:00015");
    assert!(status_bar(&s).contains("filter *5 · 300 keys │ key 2 of 300"));
    keys(&mut s, "dy");
    assert!(s.app.status.text.starts_with("deleted item:00015"));
    assert_eq!(selected(&s.app), "item:00025", "the next match");
    assert!(status_bar(&s).contains("filter *5 · 299 keys │ key 2 of 299"));
    all_match(&s);
    // The built-in editor: 25 becomes 250.
    keys(&mut s, "e");
    press(&mut s, KeyEvent::new(KeyCode::End, KeyModifiers::NONE));
    keys(&mut s, "0");
    press(
        &mut s,
        KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL),
    );
    assert!(
        s.app.status.text.starts_with("saved item:00025"),
        "{}",
        s.app.status.text
    );
    assert_eq!(selected(&s.app), "item:00025");
    assert!(shows(&s.app, "Keys matching *5 "));
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"item:00025").unwrap().0, b"250");
    assert_eq!(stored(&path, b"item:00015"), None);
}

/// A sparse pattern on a store larger than a few steps: progress shows
/// while it is read, `Esc` stops the read (what it read stays said), `r`
/// reads on to the match, and `Esc` then clears the filter, staying on
/// the key.
#[test]
fn esc_stops_a_sparse_read_and_then_clears_the_filter() {
    let mut lines = items(40_000);
    lines.push_str("{\"key\":\"zz:needle:1\",\"value\":1}\n");
    let (_dir, path) = store_with(&lines);
    let mut s = browse(&path, None, (100, 30));
    keys(&mut s, "f*needle*");
    enter(&mut s);
    // Half way: the steps read so far are shown, and nothing else.
    while s.app.pager.scanning().unwrap_or(0) < 10_000 {
        assert!(s.answer_one(SETTLE), "a step did not come");
    }
    assert!(
        s.app.pager.keys.is_empty(),
        "the old keys do not stand under the pattern"
    );
    assert!(shows(&s.app, "scanning… "), "{:?}", screen(&s.app));
    assert!(
        status_bar(&s).contains(" keys read, 0 match"),
        "{}",
        status_bar(&s)
    );
    esc(&mut s);
    assert!(
        s.app
            .status
            .text
            .starts_with("stopped reading the keys for *needle*; r reads on"),
        "{}",
        s.app.status.text
    );
    assert_eq!(s.app.pager.scanning(), None);
    assert!(shows(&s.app, "(no match in the "), "{:?}", screen(&s.app));
    assert!(
        status_bar(&s).contains("filter *needle* · no match counted (stopped; r counts)"),
        "{}",
        status_bar(&s)
    );
    assert!(s.app.pager.filter.is_some(), "the filter stays");
    // `r` reads again, to the end this time.
    keys(&mut s, "r");
    assert_eq!(selected(&s.app), "zz:needle:1");
    assert!(status_bar(&s).contains("filter *needle* · 1 key │ key 1 of 1"));
    // Nothing is being read now: Esc clears the filter.
    esc(&mut s);
    assert_eq!(s.app.status.text, "filter cleared: all keys");
    assert_eq!(selected(&s.app), "zz:needle:1");
    assert!(status_bar(&s).contains("of 40,001"), "{}", status_bar(&s));
}

/// Stopping a read that has placed keys keeps them; moving on past them
/// reads on.
#[test]
fn a_stopped_read_keeps_its_matches_and_moving_reads_on() {
    let mut lines = items(30_000);
    lines.push_str("{\"key\":\"a:x\",\"value\":1}\n");
    lines.push_str("{\"key\":\"zz:x\",\"value\":1}\n");
    let (_dir, path) = store_with(&lines);
    let mut s = browse(&path, None, (100, 30));
    keys(&mut s, "f*x");
    enter(&mut s);
    while s.app.pager.keys.is_empty() {
        assert!(s.answer_one(SETTLE), "a step did not come");
    }
    assert_eq!(selected(&s.app), "a:x");
    assert!(
        s.app.pager.scanning().is_some(),
        "the read goes on for more"
    );
    esc(&mut s);
    assert_eq!(s.app.pager.scanning(), None);
    assert_eq!(selected(&s.app), "a:x");
    // Down past the last match read: the read goes on from there.
    keys(&mut s, "j");
    assert_eq!(selected(&s.app), "zz:x");
    all_match(&s);
}
