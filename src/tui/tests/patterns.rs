//! Pattern filters (`f` with `*`, `?` or `[`): only matching keys, read
//! page by page in steps from a real store, with moving, seeking, editing
//! and deleting under them, progress while a sparse pattern is read, and
//! `Esc` stopping that read (the list then keeps to the keys read) and
//! then clearing the filter.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::tui::action::Move;
use crate::tui::keys::display_key;
use crate::tui::live::{Change, Inbox, Link};
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
    // A `[` never closed took the rest of the pattern: said, with how to
    // write a `[` (found by an audit).
    keys(&mut s, "fitem:[0\n");
    assert!(
        shows(
            &s.app,
            "no keys match (a [ without ] takes the rest; \\[ is a [)"
        ),
        "{:?}",
        screen(&s.app)
    );
    keys(&mut s, "fitem:[0]*\n");
    assert!(!shows(&s.app, "without ]"), "{:?}", screen(&s.app));
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
    assert!(
        shows(&s.app, "(no match in the 10,000 keys"),
        "{:?}",
        screen(&s.app)
    );
    assert!(
        status_bar(&s).contains("filter *needle* · no match in the first 10,000 (stopped)"),
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
/// stays on them (the list keeps to the keys read), and `r` reads on.
#[test]
fn a_stopped_read_keeps_its_matches_and_r_reads_on() {
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
    assert!(
        status_bar(&s).contains("filter *x · 1 key in the first 5,000 (stopped)"),
        "{}",
        status_bar(&s)
    );
    // Down past the last match read: nothing past the keys read.
    keys(&mut s, "jG");
    assert_eq!(selected(&s.app), "a:x");
    // `r` reads on, to the end.
    keys(&mut s, "rj");
    assert_eq!(selected(&s.app), "zz:x");
    assert!(status_bar(&s).contains("filter *x · 2 keys │ key 2 of 2"));
    all_match(&s);
}

/// 40,000 keys `item:…` between `a:needle` and `zz:needle:1`: a pattern
/// that matches only those two reads them all.
fn needles() -> String {
    let mut lines = "{\"key\":\"a:needle\",\"value\":1}\n".to_string();
    lines.push_str(&items(40_000));
    lines.push_str("{\"key\":\"zz:needle:1\",\"value\":1}\n");
    lines
}

/// `f PATTERN`, Enter, and its steps taken until the list's read has
/// read `read` keys.
fn scan_to(s: &mut Session, pattern: &str, read: u64) {
    keys(s, &format!("f{pattern}"));
    enter(s);
    while s.app.pager.scanning().unwrap_or(0) < read {
        assert!(s.answer_one(SETTLE), "a step did not come");
    }
}

/// The list's keys, as shown.
fn listed(s: &Session) -> Vec<String> {
    s.app.pager.keys.iter().map(|k| display_key(k)).collect()
}

/// After a stop, `G`, `g`, moving and seeking keep to the keys read: the
/// status bar's count says what the list can show (it showed the last
/// match of the store, which no read had reached, under "0 keys in the
/// first 0"). `r` reads on.
#[test]
fn g_and_moving_after_a_stop_keep_to_the_keys_read() {
    let (_dir, path) = store_with(&needles());
    let mut s = browse(&path, None, (100, 30));
    // Stopped before any answer came.
    keys(&mut s, "f*needle*");
    enter(&mut s);
    esc(&mut s);
    assert!(
        status_bar(&s).contains("filter *needle* · no key read (stopped)"),
        "{}",
        status_bar(&s)
    );
    assert!(shows(&s.app, "(no key read; r reads on)"));
    for moves in ["G", "g", "j", "/zz\n"] {
        keys(&mut s, moves);
        assert!(s.app.pager.keys.is_empty(), "{moves}: {:?}", listed(&s));
        assert!(!shows(&s.app, "needle:1"), "{moves}: {:?}", screen(&s.app));
        assert!(status_bar(&s).contains("no key read (stopped)"));
    }
    // Stopped after 10,000 keys, which hold one match.
    keys(&mut s, "\x1b");
    scan_to(&mut s, "*needle*", 10_000);
    esc(&mut s);
    assert!(
        status_bar(&s).contains("filter *needle* · 1 key in the first 10,000 (stopped)"),
        "{}",
        status_bar(&s)
    );
    for moves in ["G", "j", "g", "k"] {
        keys(&mut s, moves);
        assert_eq!(listed(&s), ["a:needle"], "{moves}");
    }
    act(&mut s, &[Action::Move(Move::PageDown)]);
    assert_eq!(listed(&s), ["a:needle"]);
    keys(&mut s, "/zz\n");
    assert_eq!(selected(&s.app), "a:needle");
    assert_eq!(
        s.app.status.text,
        "no key matching *needle* at or after zz in the keys read before the stop (r reads on); \
         showing the last one"
    );
    assert!(status_bar(&s).contains("1 key in the first 10,000 (stopped)"));
    // `r` reads on, to the end.
    keys(&mut s, "rG");
    assert_eq!(selected(&s.app), "zz:needle:1");
    assert!(
        status_bar(&s).contains("filter *needle* · 2 keys │ key 2 of 2"),
        "{}",
        status_bar(&s)
    );
}

/// `Esc` while only the count is out, after a dense pattern's first page
/// came: the count reads on to the list's last key and stops there, so
/// the page stays; moving, `G` and seeking then keep to the keys counted.
#[test]
fn a_stop_behind_the_list_counts_up_to_it() {
    let (_dir, path) = store_with(&items(12_000));
    let mut s = browse(&path, None, (100, 30));
    keys(&mut s, "fitem:*7");
    enter(&mut s);
    while s.app.pager.keys.is_empty() {
        assert!(s.answer_one(SETTLE), "a step did not come");
    }
    assert_eq!(s.app.pager.scanning(), None, "the first page is in");
    assert!(s.app.counting.as_ref().is_some_and(|c| c.read == 0));
    let shown = listed(&s);
    assert_eq!(shown.last().map(String::as_str), Some("item:01997"));
    esc(&mut s);
    assert_eq!(listed(&s), shown, "the page stays");
    assert!(
        status_bar(&s).contains("filter item:*7 · 500 keys in the first 5,000 (stopped)"),
        "{}",
        status_bar(&s)
    );
    for _ in 0..20 {
        act(&mut s, &[Action::Move(Move::PageDown)]);
        all_match(&s);
    }
    assert_eq!(selected(&s.app), "item:04997");
    keys(&mut s, "gG");
    assert_eq!(selected(&s.app), "item:04997");
    assert!(
        s.app
            .pager
            .keys
            .iter()
            .all(|k| k.as_slice() <= b"item:04999".as_slice())
    );
    keys(&mut s, "/item:09000\n");
    assert_eq!(selected(&s.app), "item:04997");
    assert!(status_bar(&s).contains("500 keys in the first 5,000 (stopped)"));
    keys(&mut s, "rG");
    assert_eq!(selected(&s.app), "item:11997");
    assert!(status_bar(&s).contains("filter item:*7 · 1,200 keys │ key 1,200 of 1,200"));
}

/// The list's read is a step ahead of the count's when `Esc` comes (they
/// take turns): the status bar, the list and the count give one number
/// of keys read, not 5,000 in one place and 10,000 in another.
#[test]
fn a_stop_gives_one_number_of_keys_read() {
    let (_dir, path) = store_with(&needles());
    let mut s = browse(&path, None, (100, 30));
    scan_to(&mut s, "*needle:*", 10_000);
    let counted = s.app.counting.as_ref().map(|c| c.read);
    assert_eq!(counted, Some(5_000), "the count is a step behind");
    esc(&mut s);
    assert!(
        status_bar(&s).contains("filter *needle:* · no match in the first 10,000 (stopped)"),
        "{}",
        status_bar(&s)
    );
    assert!(shows(&s.app, "(no match in the 10,000 keys"));
    assert!(!screen(&s.app).join("\n").contains("5,000"));
    assert_eq!(s.app.counting.as_ref().map(|c| c.read), Some(10_000));
}

/// Tells the browser that someone else changed `key`, as the live feed
/// does, and takes the answers to what it asked for then.
fn live_change(s: &mut Session, key: &str, deleted: bool) {
    let mut inbox = Inbox::default();
    inbox.link = Link::Live;
    inbox.changes = vec![Change {
        revision: 1_000_000,
        key: key.as_bytes().to_vec(),
        deleted,
        expired: false,
    }];
    s.app.follow(inbox);
    act(s, &[Action::Resize(100, 20)]);
}

/// Live changes after a stop: one past the keys read neither moves the
/// cursor nor shows up (it moved the cursor to it and filled the list
/// with keys no read had reached); one among them does, and the count
/// follows it.
#[test]
fn a_live_change_past_a_stop_stays_out() {
    let (_dir, other, mut s) = shared(&needles(), None);
    s.app.live = Some(Default::default());
    scan_to(&mut s, "*needle*", 10_000);
    esc(&mut s);
    let stopped = "filter *needle* · 1 key in the first 10,000 (stopped)";
    assert!(status_bar(&s).contains(stopped), "{}", status_bar(&s));
    assert_eq!(selected(&s.app), "a:needle");
    other.put(b"zz:needle:2", b"2".to_vec(), None).unwrap();
    live_change(&mut s, "zz:needle:2", false);
    assert_eq!(selected(&s.app), "a:needle");
    assert_eq!(listed(&s), ["a:needle"]);
    assert!(!shows(&s.app, "zz:needle"), "{:?}", screen(&s.app));
    assert!(status_bar(&s).contains(stopped), "{}", status_bar(&s));
    keys(&mut s, "G");
    assert_eq!(selected(&s.app), "a:needle");
    // Among the keys read: shown, and counted.
    other.put(b"b:needle", b"3".to_vec(), None).unwrap();
    live_change(&mut s, "b:needle", false);
    assert_eq!(listed(&s), ["a:needle", "b:needle"]);
    assert!(status_bar(&s).contains("2 keys in the first 10,000 (stopped)"));
    other.delete(b"b:needle", None).unwrap();
    live_change(&mut s, "b:needle", true);
    assert_eq!(listed(&s), ["a:needle"]);
    assert!(status_bar(&s).contains(stopped));

    // An empty list: a match past the keys read does not fill it.
    keys(&mut s, "\x1b");
    scan_to(&mut s, "*needle:*", 10_000);
    esc(&mut s);
    assert!(status_bar(&s).contains("no match in the first 10,000 (stopped)"));
    other.put(b"zz:needle:3", b"4".to_vec(), None).unwrap();
    live_change(&mut s, "zz:needle:3", false);
    assert!(s.app.pager.keys.is_empty(), "{:?}", listed(&s));
    assert!(!shows(&s.app, "zz:needle"), "{:?}", screen(&s.app));
    assert!(shows(&s.app, "(no match in the 10,000 keys"));
    // The data is as written: the browser wrote nothing.
    assert!(other.get(b"b:needle").unwrap().is_none());
    assert_eq!(other.get(b"zz:needle:2").unwrap().unwrap().value, b"2");
    // `r` reads on and finds them.
    keys(&mut s, "r");
    assert!(
        status_bar(&s).contains("filter *needle:* · 3 keys"),
        "{}",
        status_bar(&s)
    );
}
