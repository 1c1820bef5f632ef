//! Navigation, paging, editing and failure flows.

use std::collections::VecDeque;
use std::io;

use ratatui::crossterm::event::Event;

use super::*;
use crate::tui::action::{Move, TextEdit};
use crate::tui::editor::EditJob;
use crate::tui::pager::MAX_WINDOW;
use crate::tui::session::{Host, run_loop};

#[test]
fn pages_through_many_keys_in_a_bounded_window() {
    let (_dir, path) = store_with(&numbered(3000));
    let mut s = browse(&path, None, (100, 30));
    assert!(s.app.pager.keys.len() < 300, "only a page is read at first");
    for _ in 0..120 {
        act(&mut s, &[Action::Move(Move::PageDown)]);
        assert!(s.app.pager.keys.len() <= MAX_WINDOW);
    }
    // 120 pages of 25 rows reach the end of 3000 keys.
    assert_eq!(selected(&s.app), "key:02999");
    act(&mut s, &[Action::Move(Move::Up), Action::Move(Move::Up)]);
    assert_eq!(selected(&s.app), "key:02997");
    for _ in 0..100 {
        act(&mut s, &[Action::Move(Move::PageUp)]);
    }
    assert_eq!(selected(&s.app), "key:00497");
    assert!(shows(&s.app, "> key:00497"));
    assert!(shows(&s.app, "key:00497 · rev 498"), "value pane follows");
}

#[test]
fn random_moves_match_a_model_of_the_sorted_keys() {
    const N: i64 = 2500;
    let (_dir, path) = store_with(&numbered(N as usize));
    let mut s = browse(&path, None, (100, 30));
    let page = s.app.rows() as i64 - 1;
    let mut at: i64 = 0;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for step in 0..400 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (m, to) = match seed % 13 {
            0..=3 => (Move::Down, at + 1),
            4..=6 => (Move::Up, at - 1),
            7..=8 => (Move::PageDown, at + page * 7),
            9..=10 => (Move::PageUp, at - page * 7),
            11 => (Move::First, 0),
            _ => (Move::Last, N - 1),
        };
        // PgUp/PgDn go seven pages at a time here, to cover the store.
        let times = if matches!(m, Move::PageDown | Move::PageUp) {
            7
        } else {
            1
        };
        for _ in 0..times {
            act(&mut s, &[Action::Move(m)]);
        }
        at = to.clamp(0, N - 1);
        assert_eq!(
            selected(&s.app),
            format!("key:{at:05}"),
            "step {step}: {m:?}"
        );
        assert!(s.app.pager.keys.len() <= MAX_WINDOW);
    }
}

#[test]
fn fast_page_downs_are_not_cut_short_by_page_reads() {
    let (_dir, path) = store_with(&numbered(3000));
    let mut s = browse(&path, None, (100, 30));
    // 100 pages of 25 rows typed before any read comes back.
    for _ in 0..100 {
        s.dispatch(Action::Move(Move::PageDown));
    }
    assert!(s.settle(SETTLE));
    assert_eq!(selected(&s.app), "key:02500");
    for _ in 0..90 {
        s.dispatch(Action::Move(Move::PageUp));
    }
    assert!(s.settle(SETTLE));
    assert_eq!(selected(&s.app), "key:00250");
}

#[test]
fn first_last_seek_and_filter_jump_through_the_store() {
    let (_dir, path) = store_with(&numbered(3000));
    let mut s = browse(&path, None, (100, 30));
    keys(&mut s, "G");
    assert_eq!(selected(&s.app), "key:02999");
    assert!(
        s.app.pager.keys.len() < 300,
        "G reads the last page, not everything"
    );
    keys(&mut s, "g");
    assert_eq!(selected(&s.app), "key:00000");
    keys(&mut s, "/key:01500\n");
    assert_eq!(selected(&s.app), "key:01500");
    keys(&mut s, "k");
    assert_eq!(
        selected(&s.app),
        "key:01499",
        "keys before a seek target load too"
    );
    keys(&mut s, "/key:015005\n");
    assert_eq!(
        selected(&s.app),
        "key:01501",
        "a seek lands on the next key"
    );
    keys(&mut s, "/zzz\n");
    assert_eq!(
        selected(&s.app),
        "key:02999",
        "a seek past the end shows the last key"
    );
    keys(&mut s, "fkey:002\n");
    assert_eq!(selected(&s.app), "key:00200");
    assert!(shows(&s.app, "Keys starting with key:002"));
    keys(&mut s, "G");
    assert_eq!(selected(&s.app), "key:00299");
    keys(&mut s, "j");
    assert_eq!(selected(&s.app), "key:00299", "the filter bounds the list");
    // Clearing the filter: f, delete the prefix, Enter.
    keys(&mut s, "f");
    for _ in 0.."key:002".len() {
        act(&mut s, &[Action::Text(TextEdit::Backspace)]);
    }
    keys(&mut s, "\nG");
    assert_eq!(selected(&s.app), "key:02999");
}

#[test]
fn binary_keys_are_escaped_and_can_be_sought() {
    let (_dir, path) =
        store_with("{\"key_b64\":\"AP8=\",\"value\":\"v\"}\n{\"key\":\"a\",\"value\":\"w\"}\n");
    let mut s = browse(&path, None, (100, 20));
    // As in CLI and HTTP messages ("\u0000"); \xNN only for what JSON
    // strings cannot hold, a byte that is not UTF-8.
    assert!(shows(&s.app, "> \\u0000\\xff"), "{:?}", screen(&s.app));
    keys(&mut s, "j/\\u0000\n");
    assert_eq!(s.app.pager.current(), Some(&b"\x00\xff"[..]));
    keys(&mut s, "j/\\x00\n");
    assert_eq!(
        s.app.pager.current(),
        Some(&b"\x00\xff"[..]),
        "\\xNN is read too"
    );
}

#[test]
fn builtin_editor_edits_creates_and_deletes() {
    let (_dir, path) = store_with("{\"key\":\"greeting\",\"value\":\"hello\"}\n");
    let mut s = browse(&path, None, (100, 20));
    keys(&mut s, "e!");
    assert!(shows(&s.app, "Edit greeting · Ctrl-S save · Esc cancel"));
    press(
        &mut s,
        KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL),
    );
    assert!(
        shows(&s.app, "saved greeting (revision 2)"),
        "{:?}",
        screen(&s.app)
    );
    assert!(shows(&s.app, "greeting · rev 2 · 6 B · text"));
    keys(&mut s, "nnew\nline 1\nline 2");
    press(&mut s, KeyEvent::new(KeyCode::F(2), KeyModifiers::NONE));
    assert_eq!(selected(&s.app), "new", "the new key is selected");
    assert!(shows(&s.app, "key 2 of 2 │ revision 3"));
    // `n` on a key that exists says so before any value is typed, and
    // selects that key.
    keys(&mut s, "ngreeting\n");
    assert!(shows(
        &s.app,
        "error: greeting already exists (revision 2); it is selected: press e to edit it"
    ));
    assert_eq!(
        s.app.mode,
        crate::tui::app::Mode::Browse,
        "no editor opened"
    );
    assert_eq!(selected(&s.app), "greeting");
    keys(&mut s, "je\x1b");
    assert!(shows(&s.app, "edit cancelled"));
    keys(&mut s, "dy");
    assert!(shows(&s.app, "deleted new (revision 4)"));
    assert_eq!(selected(&s.app), "greeting");
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"greeting"), Some((b"hello!".to_vec(), 2)));
    assert_eq!(stored(&path, b"new"), None);
}

#[test]
fn delete_typed_before_the_value_arrives_is_not_lost() {
    let (_dir, path) = store_with(&numbered(5));
    let mut s = browse(&path, None, (100, 20));
    s.dispatch(Action::Move(Move::Down));
    s.dispatch(Action::Delete);
    assert!(s.settle(SETTLE));
    assert!(shows(&s.app, "Delete key:00001 (revision 2)?"));
    act(&mut s, &[Action::Submit]);
    assert!(shows(&s.app, "deleted key:00001"));
    assert_eq!(selected(&s.app), "key:00002");
}

/// Scripted key presses; the editor runs for real, without a terminal;
/// what is sent to the clipboard is kept.
pub struct Script(pub VecDeque<Event>, pub Vec<Vec<u8>>);

impl Host for Script {
    fn next_event(&mut self, _: Duration) -> io::Result<Option<Event>> {
        Ok(self.0.pop_front())
    }
    fn copy(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.1.push(bytes.to_vec());
        Ok(())
    }
    fn edit(&mut self, editor: &str, job: &EditJob) -> crate::Result<Vec<u8>> {
        crate::tui::editor::run_external(editor, &job.start_text(), job.suffix())
    }
}

pub fn script(text: &str) -> Script {
    Script(
        text.chars()
            .map(|c| Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)))
            .collect(),
        Vec::new(),
    )
}

#[test]
fn run_loop_edits_in_the_external_editor() {
    let (_dir, path) = store_with(&numbered(3));
    let mut s = browse(&path, Some("sed -i s/1/42/"), (100, 20));
    let mut terminal = Terminal::new(TestBackend::new(100, 20)).unwrap();
    keys(&mut s, "j");
    // The loop runs the editor, then the user quits.
    let mut host = script("e");
    while !host.0.is_empty() || s.app.pending_edit.is_some() {
        s.app.quit = false;
        let mut one = Script(host.0.drain(..).chain([quit()]).collect(), Vec::new());
        run_loop(&mut terminal, &mut s, &mut one).unwrap();
    }
    assert!(s.settle(SETTLE));
    assert!(
        s.app.status.text.contains("saved key:00001"),
        "{:?}",
        s.app.status
    );
    s.shutdown();
    drop(s);
    assert_eq!(
        stored(&path, b"key:00001"),
        Some((b"{\"n\":42}".to_vec(), 4))
    );
}

fn quit() -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE))
}

#[test]
fn unchanged_edit_writes_nothing() {
    let (_dir, path) = store_with(&numbered(1));
    let mut s = browse(&path, Some("true"), (100, 20));
    let job = s.app.pending_edit.take();
    assert!(job.is_none());
    keys(&mut s, "e");
    let job = s.app.pending_edit.take().unwrap();
    let edited = crate::tui::editor::run_external("true", &job.start_text(), job.suffix());
    s.finish_edit(job, edited);
    assert!(s.settle(SETTLE));
    assert!(shows(&s.app, "value unchanged; nothing written"));
}

#[test]
fn a_dead_source_shows_errors_and_never_blocks_the_ui() {
    // Long enough that the checks below run while the first call is out,
    // with room for a loaded machine.
    let delay = Duration::from_millis(1500);
    let open = move || Ok(Box::new(sources::Down { delay }) as Box<dyn Kv>);
    let (worker, source) = Worker::start(open).unwrap();
    let config = Config {
        theme: MONO,
        editor: None,
    };
    let mut s = Session::new(App::new(source, config, (100, 24)), worker);
    // The UI answers at once while the source is stuck (1.5 s): the
    // bound is below that, with room for a loaded machine.
    let started = std::time::Instant::now();
    s.dispatch(Action::Help);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(shows(&s.app, "any key closes"));
    // The notice shows from 0.7 s after the last answer until the next
    // (1.5 s): pumped until it shows, not once after a fixed sleep, which
    // a test thread descheduled on a loaded machine could put outside
    // that window. It says "(1s)" until 2 s have passed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let changed = s.pump();
        if s.app.waiting.is_some() {
            assert!(changed, "the wait is mentioned");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the wait is not mentioned"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        shows(&s.app, "waiting for the source (1s)…"),
        "{:?}",
        screen(&s.app)
    );
    s.dispatch(Action::Cancel);
    assert!(s.settle(SETTLE));
    let text = screen(&s.app).join("\n");
    assert!(text.contains("http://127.0.0.1:9 │ … keys"), "{text}");
    assert!(
        text.contains("error: cannot read keys: cannot reach http://127.0.0.1:9"),
        "{text}"
    );
    s.app.quit = false;
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    run_loop(&mut terminal, &mut s, &mut script("rq")).unwrap();
    assert!(s.app.quit);
    // Quitting drops the calls still queued instead of waiting for each.
    let quitting = std::time::Instant::now();
    s.shutdown();
    // The call in flight takes up to 1.5 s; waiting on the queued ones too
    // would run into the 3 s grace.
    assert!(quitting.elapsed() < Duration::from_millis(2500));
}

#[test]
fn a_panicking_source_becomes_an_error_on_screen() {
    let (_dir, path) = store_with(&numbered(3));
    let open = move || Ok(Box::new(sources::Buggy(open_kv(&path)?)) as Box<dyn Kv>);
    let mut s = start(open, None, (100, 20));
    assert!(shows(
        &s.app,
        "error: internal error in the source (a bug; please report it): bug in get"
    ));
    keys(&mut s, "j");
    assert_eq!(selected(&s.app), "key:00001", "the browser goes on");
}

#[test]
fn refresh_and_delete_keep_the_cursor_row() {
    let (_dir, path) = store_with(&numbered(500));
    let mut s = browse(&path, None, (100, 30));
    for _ in 0..310 {
        s.dispatch(Action::Move(Move::Down));
    }
    assert!(s.settle(SETTLE));
    let row = |s: &Session| screen(&s.app).iter().position(|l| l.contains("> key:"));
    let before = row(&s);
    keys(&mut s, "r");
    assert_eq!(selected(&s.app), "key:00310");
    assert_eq!(row(&s), before, "refresh keeps the row");
    keys(&mut s, "dy");
    assert_eq!(selected(&s.app), "key:00311");
    assert_eq!(row(&s), before, "the next key takes the deleted one's row");
    keys(&mut s, "k");
    assert_eq!(selected(&s.app), "key:00309", "keys before are there too");
}

#[test]
fn resize_keeps_the_cursor_on_screen() {
    let (_dir, path) = store_with(&numbered(100));
    let mut s = browse(&path, None, (100, 40));
    for _ in 0..30 {
        act(&mut s, &[Action::Move(Move::Down)]);
    }
    act(&mut s, &[Action::Resize(60, 10)]);
    assert!(shows(&s.app, "> key:00030"));
    act(&mut s, &[Action::Resize(120, 40)]);
    assert!(shows(&s.app, "> key:00030"));
}

/// A save that fails for another reason than a conflict keeps the text:
/// the built-in editor stays open on it, after `$EDITOR` `e` brings it
/// back. A key over 4096 bytes is refused at the prompt, before any
/// value is typed for it.
#[test]
fn a_failed_save_keeps_the_typed_text() {
    let (_dir, path) = store_with("{\"key\":\"greeting\",\"value\":\"hello\"}\n");
    let open = {
        let path = path.clone();
        move || Ok(Box::new(sources::NoWrites(open_kv(&path)?)) as Box<dyn Kv>)
    };
    let mut s = start(open, None, (100, 20));
    keys(&mut s, "e!");
    press(
        &mut s,
        KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL),
    );
    assert!(
        shows(&s.app, "Edit greeting · Ctrl-S save"),
        "{:?}",
        screen(&s.app)
    );
    assert!(s.app.status.text.contains("cannot save greeting"));
    assert!(s.app.status.text.contains("your text is kept"));
    assert_eq!(
        s.app.editor().map(|(_, a)| a.text()).as_deref(),
        Some("hello!")
    );
    // Esc over text that is not saved asks first; another key takes that
    // back, and only a second Esc in a row drops the text.
    keys(&mut s, "\x1b");
    assert_eq!(
        s.app.status.text,
        "your text is not saved: Esc again drops it, Ctrl-S saves it"
    );
    assert!(s.app.editor().is_some());
    keys(&mut s, "?");
    assert_eq!(s.app.status.text, "");
    keys(&mut s, "\x1b");
    assert!(s.app.editor().is_some());
    keys(&mut s, "\x1b");
    assert!(shows(&s.app, "edit cancelled; nothing written"));
    assert!(s.app.editor().is_none());
    keys(&mut s, "n");
    for _ in 0..4097 {
        s.dispatch(Action::Text(TextEdit::Insert('K')));
    }
    act(&mut s, &[Action::Submit]);
    assert!(shows(
        &s.app,
        "error: a key is 1 to 4096 bytes, this one is 4097 bytes"
    ));
    assert_eq!(
        s.app.mode,
        crate::tui::app::Mode::Browse,
        "no editor opened"
    );
    s.shutdown();
    drop(s);

    let mut s = failed_external_save(path);
    keys(&mut s, "e");
    let job = s.app.pending_edit.take().unwrap();
    assert_eq!(job.start_text(), b"hello, world");
    assert_eq!(job.revision, 1, "still conditional on the revision seen");
}

/// With `--db` nobody else writes: a key that went while it was edited
/// expired, and the browser says so rather than blaming someone; the
/// text is kept, and `o` writes it.
#[test]
fn an_edit_of_a_key_that_expired_meanwhile_says_it_expired() {
    let at = crate::types::now_ms() + 1500;
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"tk\",\"value\":\"v\",\"expires_at_ms\":{at}}}\n"
    ));
    let mut s = browse(&path, None, (100, 20));
    keys(&mut s, "e");
    assert!(shows(&s.app, "Edit tk"), "{:?}", screen(&s.app));
    while crate::types::now_ms() <= at + 100 {
        std::thread::sleep(Duration::from_millis(50));
    }
    keys(&mut s, " more");
    press(
        &mut s,
        KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL),
    );
    assert_eq!(
        s.app.status.text,
        "tk expired; your edit is kept, not written"
    );
    assert!(
        shows(&s.app, "tk expired since you opened it (revision 1)."),
        "{:?}",
        screen(&s.app)
    );
    assert_eq!(
        s.app.editor().map(|(_, area)| area.text()).as_deref(),
        Some("v more")
    );
    // `o` writes it again (as a new key: without the expiry).
    keys(&mut s, "o");
    assert!(s.app.status.text.starts_with("saved tk (revision "));
    // The value pane shows what was written, not the expired value.
    assert!(s.settle(SETTLE));
    let pane = screen(&s.app).join("\n");
    assert!(
        pane.contains("tk · rev 3 · 6 B") && !pane.contains("expired"),
        "{pane}"
    );
    s.shutdown();
    drop(s);
    let saved = stored(&path, b"tk").map(|(value, _)| value);
    assert_eq!(saved.as_deref(), Some(&b"v more"[..]));
}

/// A key that expired while its delete was being confirmed was not
/// deleted by anyone: the browser says it expired, and moves on.
#[test]
fn a_delete_of_a_key_that_expired_meanwhile_says_it_expired() {
    let at = crate::types::now_ms() + 1500;
    let (_dir, path) = store_with(&format!(
        "{{\"key\":\"tk\",\"value\":\"v\",\"expires_at_ms\":{at}}}\n{{\"key\":\"zz\",\"value\":\"w\"}}\n"
    ));
    let mut s = browse(&path, None, (100, 20));
    s.dispatch(Action::Delete);
    assert!(s.settle(SETTLE));
    assert!(
        shows(&s.app, "Delete tk (revision 1)?"),
        "{:?}",
        screen(&s.app)
    );
    while crate::types::now_ms() <= at + 100 {
        std::thread::sleep(Duration::from_millis(50));
    }
    act(&mut s, &[Action::Submit]);
    assert_eq!(s.app.status.text, "tk had already expired");
    assert!(s.settle(SETTLE));
    assert_eq!(selected(&s.app), "zz");
    s.shutdown();
    drop(s);
    assert_eq!(stored(&path, b"zz"), Some((b"w".to_vec(), 2)));
}

/// The key list fills the pane after a seek near the end (the keys before
/// the sought one come in a second read) and after the window shrinks and
/// grows again.
#[test]
fn the_list_fills_the_pane_after_a_seek_and_a_resize() {
    let listed = |s: &Session| {
        screen(&s.app)
            .iter()
            .filter(|l| {
                let row: String = l.chars().skip(1).take(6).collect();
                row == "  key:" || row == "> key:"
            })
            .count()
    };
    let (_dir, path) = store_with(&numbered(10));
    let mut s = browse(&path, None, (100, 40));
    keys(&mut s, "/key:00008\n");
    assert_eq!(selected(&s.app), "key:00008");
    assert_eq!(listed(&s), 10, "{:?}", screen(&s.app));
    let (_dir, path) = store_with(&numbered(100));
    let mut s = browse(&path, None, (100, 40));
    keys(&mut s, "G");
    act(&mut s, &[Action::Resize(100, 6)]);
    act(&mut s, &[Action::Resize(100, 40)]);
    assert!(shows(&s.app, "> key:00099"));
    assert_eq!(listed(&s), s.app.rows(), "{:?}", screen(&s.app));
}

/// A refresh that fails (the source went away) leaves the shown key
/// selected: `e` and `d` act on it, not "no key selected".
#[test]
fn a_failed_refresh_keeps_the_selected_key() {
    let (_dir, path) = store_with(&numbered(3));
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let open = {
        let down = down.clone();
        move || Ok(Box::new(sources::Switch(open_kv(&path)?, down)) as Box<dyn Kv>)
    };
    let mut s = start(open, None, (100, 20));
    keys(&mut s, "j");
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    keys(&mut s, "r");
    assert!(shows(&s.app, "error: cannot read"), "{:?}", screen(&s.app));
    assert!(shows(&s.app, "> key:00001"));
    keys(&mut s, "d");
    assert!(!shows(&s.app, "no key selected"), "{:?}", screen(&s.app));
    assert!(shows(&s.app, "Delete key:00001"), "{:?}", screen(&s.app));
    keys(&mut s, "ne");
    assert!(shows(&s.app, "Edit key:00001"), "{:?}", screen(&s.app));
}

/// A [`Script`] that counts the times the loop suspended it.
struct Suspending(Script, usize);

impl Host for Suspending {
    fn next_event(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        self.0.next_event(timeout)
    }
    fn copy(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.copy(bytes)
    }
    fn edit(&mut self, editor: &str, job: &EditJob) -> crate::Result<Vec<u8>> {
        self.0.edit(editor, job)
    }
    fn suspend(&mut self) -> io::Result<()> {
        self.1 += 1;
        Ok(())
    }
}

/// Ctrl-Z hands the terminal to the shell from anywhere, the built-in
/// editor included, and what was open is still open after (it did
/// nothing; in the editor it typed nothing either).
#[test]
fn ctrl_z_suspends_and_keeps_what_is_open() {
    let (_dir, path) = store_with(NOTE);
    let mut s = browse(&path, None, (100, 20));
    let mut terminal = Terminal::new(TestBackend::new(100, 20)).unwrap();
    keys(&mut s, "ex");
    let ctrl_z = Event::Key(KeyEvent::new(KeyCode::Char('z'), KeyModifiers::CONTROL));
    let ctrl_c = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    let events = [ctrl_z.clone(), ctrl_c.clone(), ctrl_c];
    let mut host = Suspending(Script(events.into(), Vec::new()), 0);
    run_loop(&mut terminal, &mut s, &mut host).unwrap();
    assert_eq!(host.1, 1, "suspended once");
    assert!(s.app.quit);
    assert_eq!(editor_text(&s).as_deref(), Some("hellox"));
    s.shutdown();
    drop(s);
    // In the main view too.
    let mut s = browse(&path, None, (100, 20));
    let mut host = Suspending(Script([ctrl_z, quit()].into(), Vec::new()), 0);
    run_loop(&mut terminal, &mut s, &mut host).unwrap();
    assert_eq!(host.1, 1);
}
