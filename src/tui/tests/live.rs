//! The browser following a real server's change feed: a `kvr serve` run in
//! this process (the real server on a real redb file, on 127.0.0.1), the
//! browser on the HTTP client, and another client writing. Nothing here
//! presses a key to see a change; every wait polls with a deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;
use crate::client::Client;
use crate::server::State;
use crate::server::limits::Limits;
use crate::tui::action::Move;
use crate::tui::keys::display_key;
use crate::tui::live::{Feed, Inbox, Link};

/// Generous for a debug build on a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(20);
const TIMEOUT: Duration = Duration::from_secs(10);

/// A real server in this process, stopped on drop.
struct Server {
    url: String,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `path` on `addr` (port 0: any free port).
    fn start(path: &Path, addr: &str) -> Server {
        Server::start_with(path, addr, Limits::default(), None)
    }

    fn start_with(path: &Path, addr: &str, limits: Limits, token: Option<&str>) -> Server {
        // The file and the port of a server just stopped may take a moment
        // to be free.
        let store = retry(|| Store::open(path, OpenMode::Create, &options()));
        let token = token.map(str::to_string);
        let state = Arc::new(State::new(store, limits, token, true).unwrap());
        let listener = retry(|| std::net::TcpListener::bind(addr));
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let shutdown = async move {
                    let _ = rx.await;
                };
                crate::server::run(listener, state, None, shutdown).await;
            });
        });
        Server {
            url: format!("http://{addr}"),
            addr,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.url, None, TIMEOUT, None).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `f`'s value, trying again for a while when it fails.
fn retry<T, E: std::fmt::Debug>(f: impl Fn() -> Result<T, E>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("gave up: {e:?}"),
        }
    }
}

/// A served store holding `lines`, and its path.
fn served(lines: &str) -> (tempfile::TempDir, PathBuf, Server) {
    let (dir, path) = store_with(lines);
    let server = Server::start(&path, "127.0.0.1:0");
    (dir, path, server)
}

/// A browser on `server` that follows its changes (progress every second,
/// so the feed notices a stop quickly).
fn browse_live(server: &Server, size: (u16, u16)) -> Session {
    let url = server.url.clone();
    let open = move || Ok(Box::new(Client::new(&url, None, TIMEOUT, None)?) as Box<dyn Kv>);
    let mut s = start(open, None, size);
    s.follow(Feed::new(server.client(), 1));
    wait_until(&mut s, "the feed to connect", |app| {
        shows(app, "live · 0 changes")
    });
    s
}

/// Takes answers and changes until `ok` holds for the app, or fails
/// showing the screen.
fn wait_until(s: &mut Session, what: &str, ok: impl Fn(&App) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        s.pump();
        if ok(&s.app) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited in vain for {what}; the screen:\n{}",
            screen(&s.app).join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(s: &mut Session, texts: &[&str]) {
    wait_until(s, &format!("{texts:?}"), |app| {
        texts.iter().all(|t| shows(app, t))
    });
}

fn wait_gone(s: &mut Session, text: &str) {
    wait_until(s, &format!("{text:?} to go"), |app| !shows(app, text));
}

#[test]
fn changes_by_another_client_show_up_without_a_key_press() {
    let (_dir, _path, server) = served(&numbered(5));
    let mut s = browse_live(&server, (100, 20));
    assert!(shows(&s.app, "\"n\": 0"), "{:?}", screen(&s.app));
    let other = server.client();

    // The open value changes.
    other
        .put(b"key:00000", b"{\"n\":100}".to_vec(), None)
        .unwrap();
    wait_for(
        &mut s,
        &["\"n\": 100", "key:00000 · rev 6", "live · 1 change"],
    );
    // A new key in view appears, in order; the cursor stays on its key.
    other.put(b"key:00002a", b"new".to_vec(), None).unwrap();
    wait_for(&mut s, &["  key:00002a", "live · 2 changes", "revision 7"]);
    let list: Vec<String> = s.app.pager.keys.iter().map(|k| display_key(k)).collect();
    assert_eq!(
        list,
        [
            "key:00000",
            "key:00001",
            "key:00002",
            "key:00002a",
            "key:00003",
            "key:00004"
        ]
    );
    assert_eq!(selected(&s.app), "key:00000");
    // The counts are read again.
    wait_for(&mut s, &["key 1 of 6"]);
    // A deleted key goes.
    other.delete(b"key:00003", None).unwrap();
    wait_gone(&mut s, "key:00003");
    wait_for(&mut s, &["key 1 of 5", "live · 3 changes", "revision 8"]);
    // Deleting the open key moves the cursor to the next one and says so.
    other.delete(b"key:00000", None).unwrap();
    wait_for(
        &mut s,
        &["> key:00001", "key:00000 was deleted elsewhere", "\"n\": 1"],
    );
    // A key outside the filter does not appear; one inside does.
    act(&mut s, &[Action::Filter]);
    keys(&mut s, "key:00002\n");
    wait_for(&mut s, &["filter key:00002 · 2 keys"]);
    other.put(b"other", b"x".to_vec(), None).unwrap();
    other.put(b"key:00002b", b"y".to_vec(), None).unwrap();
    wait_for(
        &mut s,
        &[
            "key:00002b",
            "live · 6 changes",
            "filter key:00002 · 3 keys",
        ],
    );
    assert!(!shows(&s.app, "other"));
}

#[test]
fn the_feed_resumes_after_the_server_restarts() {
    let (_dir, path, server) = served(&numbered(3));
    let mut s = browse_live(&server, (100, 20));
    let addr = server.addr.to_string();
    drop(server);
    wait_for(&mut s, &["live: reconnecting…"]);
    let server = Server::start(&path, &addr);
    // Written as soon as the server is back, likely before the browser
    // reconnected: the feed resumes from where it was, missing nothing.
    let other = server.client();
    other
        .put(b"key:00001", b"{\"n\":11}".to_vec(), None)
        .unwrap();
    other.put(b"key:00005", b"5".to_vec(), None).unwrap();
    other.delete(b"key:00002", None).unwrap();
    wait_for(&mut s, &["key:00005", "live · 3 changes", "revision 6"]);
    wait_gone(&mut s, "key:00002");
    assert!(!s.app.status.error, "{:?}", s.app.status);
    act(&mut s, &[Action::Move(Move::Down)]);
    wait_for(&mut s, &["\"n\": 11"]);
}

#[test]
fn a_burst_of_changes_becomes_one_reload() {
    let (_dir, _path, server) = served(&numbered(3));
    let mut s = browse_live(&server, (100, 20));
    let generation = s.app.pager.generation;
    // One batch of more changes than the feed holds, not taken by the UI
    // until it is all in.
    let n = crate::tui::live::MAX_QUEUED * 3;
    let lines: String = (0..n)
        .map(|i| format!("{{\"key\":\"burst:{i:05}\",\"value\":{i}}}\n"))
        .collect();
    server
        .client()
        .batch(Box::new(std::io::Cursor::new(lines.into_bytes())))
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while s.live_seen() < n as u64 {
        assert!(Instant::now() < deadline, "the feed saw {}", s.live_seen());
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for(&mut s, &["key 3,001 of 3,003", "live · 3,000 changes"]);
    wait_until(&mut s, "the burst's keys in the window", |app| {
        app.pager.keys.iter().any(|k| k.starts_with(b"burst:"))
    });
    assert!(
        s.app.pager.generation > generation,
        "the view was patched key by key instead of read again"
    );
}

#[test]
fn an_edit_of_a_key_changed_underneath_keeps_its_text_and_its_check() {
    let (_dir, _path, server) =
        served("{\"key\":\"a\",\"value\":\"one\"}\n{\"key\":\"b\",\"value\":\"two\"}\n");
    let mut s = browse_live(&server, (100, 20));
    let other = server.client();
    // The built-in editor opens on revision 1 of a.
    keys(&mut s, "e");
    assert!(matches!(s.app.mode, super::super::app::Mode::Editor { .. }));
    other.put(b"a", b"theirs".to_vec(), None).unwrap();
    wait_for(&mut s, &["live · 1 change"]);
    // Still editing; saving is refused, theirs stays and so does the text.
    keys(&mut s, "x");
    act(&mut s, &[Action::Submit]);
    wait_for(
        &mut s,
        &[
            "changed by someone else",
            "now at revision 3 (6 B):",
            "  theirs",
        ],
    );
    assert_eq!(other.get(b"a").unwrap().unwrap().value, b"theirs");
    // Changed again while the dialog is open: it shows the newest value.
    other.put(b"a", b"newest".to_vec(), None).unwrap();
    wait_for(&mut s, &["now at revision 4 (6 B):", "  newest"]);
    assert_eq!(other.get(b"a").unwrap().unwrap().value, b"newest");
    keys(&mut s, "o");
    wait_for(&mut s, &["saved a (revision 5)"]);
    assert_eq!(other.get(b"a").unwrap().unwrap().value, b"onex");
    // The value pane shows it, without r.
    wait_for(&mut s, &["a · rev 5", "onex"]);

    // A delete confirmed after someone else changed the key is refused too;
    // the open dialog says it changed, and keeps the revision it asked about.
    keys(&mut s, "d");
    wait_for(&mut s, &["Delete a (revision 5)?"]);
    other.put(b"a", b"again".to_vec(), None).unwrap();
    wait_for(&mut s, &["live · 4 changes"]);
    wait_for(
        &mut s,
        &[
            "Delete a (revision 5)?",
            "It changed meanwhile (now revision 6): y is refused.",
        ],
    );
    keys(&mut s, "y");
    wait_for(
        &mut s,
        &["a was changed by someone else (now at revision 6); not deleted: d asks again"],
    );
    assert_eq!(other.get(b"a").unwrap().unwrap().value, b"again");
}

/// A key deleted by someone else while it was being edited, then written
/// again with `o`: the list shows it again, selected (as with `--db`).
#[test]
fn a_key_re_created_from_the_dialog_is_selected_again() {
    let (_dir, _path, server) = served(
        "{\"key\":\"a\",\"value\":\"one\"}\n{\"key\":\"b\",\"value\":\"two\"}\n\
         {\"key\":\"c\",\"value\":\"three\"}\n",
    );
    let mut s = browse_live(&server, (100, 20));
    keys(&mut s, "/b\n");
    wait_until(&mut s, "b selected", |app| selected(app) == "b");
    keys(&mut s, "e");
    let other = server.client();
    other.delete(b"b", None).unwrap();
    wait_for(&mut s, &["live · 1 change"]);
    keys(&mut s, "x");
    act(&mut s, &[Action::Submit]);
    wait_for(&mut s, &["was deleted by someone else"]);
    keys(&mut s, "o");
    wait_for(&mut s, &["saved b"]);
    wait_until(&mut s, "b selected again", |app| selected(app) == "b");
    // Deleted while the dialog is open, after a change: the same.
    keys(&mut s, "e");
    other.put(b"b", b"theirs".to_vec(), None).unwrap();
    wait_for(&mut s, &["live · 3 changes"]);
    keys(&mut s, "y");
    act(&mut s, &[Action::Submit]);
    wait_for(&mut s, &["was changed by someone else"]);
    other.delete(b"b", None).unwrap();
    wait_for(&mut s, &["was deleted by someone else"]);
    keys(&mut s, "o");
    wait_for(&mut s, &["saved b"]);
    wait_until(&mut s, "b selected again", |app| selected(app) == "b");
    assert_eq!(other.get(b"b").unwrap().unwrap().value, b"twoxy");
}

/// A delete confirmed after the key was deleted and made again elsewhere
/// is refused, and `d` then asks about that key again, not the one after
/// it that the list had moved to meanwhile (found by an audit).
#[test]
fn a_refused_delete_of_a_key_made_again_asks_about_that_key() {
    let (_dir, _path, server) =
        served("{\"key\":\"a\",\"value\":\"one\"}\n{\"key\":\"b\",\"value\":\"two\"}\n");
    let mut s = browse_live(&server, (100, 20));
    wait_until(&mut s, "a selected", |app| selected(app) == "a");
    keys(&mut s, "d");
    wait_for(&mut s, &["Delete a (revision 1)?"]);
    let other = server.client();
    other.delete(b"a", None).unwrap();
    other.put(b"a", b"again".to_vec(), None).unwrap();
    wait_for(&mut s, &["live · 2 changes"]);
    keys(&mut s, "y");
    wait_for(
        &mut s,
        &["a was changed by someone else (now at revision 4); not deleted: d asks again"],
    );
    wait_until(&mut s, "a selected again", |app| selected(app) == "a");
    keys(&mut s, "d");
    wait_for(&mut s, &["Delete a (revision 4)?"]);
    keys(&mut s, "y");
    wait_for(&mut s, &["deleted a (revision 5)"]);
    assert!(other.get(b"a").unwrap().is_none());
    assert_eq!(other.get(b"b").unwrap().unwrap().value, b"two");
}

/// The dialog showing revision 2 of a key that then changes again: the
/// dialog, the status line and the status bar all name revision 3.
#[test]
fn a_second_change_while_the_dialog_is_open_reaches_the_status_line() {
    let (_dir, _path, server) = served("{\"key\":\"a\",\"value\":\"one\"}\n");
    let mut s = browse_live(&server, (100, 20));
    let other = server.client();
    keys(&mut s, "e");
    other.put(b"a", b"theirs".to_vec(), None).unwrap();
    wait_for(&mut s, &["live · 1 change"]);
    keys(&mut s, "x");
    act(&mut s, &[Action::Submit]);
    wait_for(
        &mut s,
        &["It is now at revision 2 (6 B):", "│ revision 2 │"],
    );
    let said = |r| {
        format!(
            "error: a was changed by someone else (now at revision {r}); your edit is kept, not written"
        )
    };
    assert!(shows(&s.app, &said(2)), "{:?}", screen(&s.app));
    other.put(b"a", b"newest".to_vec(), None).unwrap();
    wait_for(
        &mut s,
        &[
            "It is now at revision 3 (6 B):",
            "  newest",
            "│ revision 3 │",
        ],
    );
    assert!(shows(&s.app, &said(3)), "{:?}", screen(&s.app));
    // Deleted next: the status line says so too.
    other.delete(b"a", None).unwrap();
    wait_for(&mut s, &["a was deleted since you opened it (revision 1)."]);
    assert!(
        shows(
            &s.app,
            "error: a was deleted by someone else; your edit is kept, not written"
        ),
        "{:?}",
        screen(&s.app)
    );
    assert_eq!(editor_text(&s).as_deref(), Some("onex"));
}

/// The dialog shows a value with a TTL, which then expires: the server's
/// feed says so, and the dialog and the status line say it expired (they
/// said it was deleted).
#[test]
fn a_key_that_expires_while_the_dialog_is_open_is_said_to_have_expired() {
    let (_dir, _path, server) = served("{\"key\":\"a\",\"value\":\"one\"}\n");
    let mut s = browse_live(&server, (100, 20));
    let other = server.client();
    keys(&mut s, "e");
    other
        .put_ttl(b"a", b"theirs".to_vec(), None, Some(2))
        .unwrap();
    wait_for(&mut s, &["live · 1 change"]);
    keys(&mut s, "x");
    act(&mut s, &[Action::Submit]);
    wait_for(&mut s, &["It is now at revision 2 (6 B):"]);
    wait_for(&mut s, &["a expired since you opened it (revision 1)."]);
    assert!(
        shows(&s.app, "error: a expired; your edit is kept, not written"),
        "{:?}",
        screen(&s.app)
    );
    assert_eq!(editor_text(&s).as_deref(), Some("onex"));
    assert!(other.get(b"a").unwrap().is_none());
}

/// The delete dialog over a key someone else deletes, or that expires,
/// says so: the cursor behind it has moved on to the next key.
#[test]
fn a_key_that_goes_while_the_delete_dialog_is_open_is_said_to_be_gone() {
    let (_dir, _path, server) = served(&numbered(3));
    let mut s = browse_live(&server, (100, 20));
    let other = server.client();
    keys(&mut s, "d");
    wait_for(&mut s, &["Delete key:00000 (revision 1)?"]);
    other.delete(b"key:00000", None).unwrap();
    wait_for(
        &mut s,
        &[
            "It was deleted meanwhile by someone else: nothing to",
            "> key:00001",
        ],
    );
    keys(&mut s, "n");
    other
        .put_ttl(b"key:00001", b"short".to_vec(), None, Some(1))
        .unwrap();
    wait_for(&mut s, &["key:00001 · rev 5"]);
    keys(&mut s, "d");
    wait_for(&mut s, &["Delete key:00001 (revision 5)?"]);
    wait_for(&mut s, &["It expired meanwhile: nothing to delete."]);
}

#[test]
fn an_expiring_key_counts_down_and_goes_when_it_expires() {
    let (_dir, _path, server) = served(&numbered(2));
    let other = server.client();
    other
        .put_ttl(b"key:00000", b"soon".to_vec(), None, Some(1))
        .unwrap();
    other
        .put_ttl(b"key:00001", b"later".to_vec(), None, Some(252))
        .unwrap();
    let mut s = browse_live(&server, (120, 20));
    // Opened within the second it has, or already expired and gone.
    wait_until(&mut s, "key:00000 to expire", |app| {
        !app.pager.keys.iter().any(|k| k == b"key:00000")
    });
    wait_for(&mut s, &["> key:00001", "key:00001 · rev"]);
    assert!(
        shows(&s.app, "expires in 4m 1") || shows(&s.app, "expires in 4m 0"),
        "{:?}",
        screen(&s.app)
    );
}

#[test]
fn a_file_has_no_feed_and_says_nothing_about_one() {
    let (_dir, path) = store_with(&numbered(2));
    let s = browse(&path, None, (100, 20));
    assert!(!shows(&s.app, "live"), "{:?}", screen(&s.app));
    assert!(s.app.live.is_none());
}

fn page(keys: &[&str]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.as_bytes().to_vec()).collect()
}

fn tag_of(request: &crate::tui::worker::Request) -> crate::tui::worker::KeysTag {
    match request {
        crate::tui::worker::Request::Keys { tag, .. } => *tag,
        other => panic!("not a keys request: {other:?}"),
    }
}

/// A pager that read a full page of `k0000`, `k0001`, … and one key more:
/// its window does not reach the last key of the store.
fn window_short_of_the_end() -> crate::tui::pager::Pager {
    use crate::tui::pager::{PAGE, Pager};
    let mut p = Pager::default();
    let top = p.jump_top(None);
    let keys: Vec<Vec<u8>> = (0..=PAGE)
        .map(|i| format!("k{i:04}").into_bytes())
        .collect();
    p.receive(tag_of(&top), keys, 10);
    p
}

/// The window follows changes inside it and ignores those past an edge
/// that is not the end of the keys (the next page read brings them).
#[test]
fn the_window_takes_changes_inside_it_only() {
    let mut p = window_short_of_the_end();
    assert!(p.head_done && !p.tail_done);
    p.cursor = 5;
    assert!(
        p.change(b"a", false, 10),
        "before the first key of the store"
    );
    assert_eq!((p.cursor, p.current()), (6, Some(&b"k0005"[..])));
    assert!(p.change(b"k0003a", false, 10));
    assert_eq!(p.current(), Some(&b"k0005"[..]));
    assert!(!p.change(b"zzz", false, 10), "past the window's last key");
    assert!(!p.change(b"k0003b", true, 10), "deleting a key not shown");
    assert!(p.change(b"k0005", true, 10));
    assert_eq!(p.current(), Some(&b"k0006"[..]));
    assert!(!p.change(b"k0006", false, 10), "a put of a shown key");
    assert_eq!(p.position(None), Some(8));
}

/// A change that comes while a page is read is applied to the page when
/// it lands: the page may have been read before the change.
#[test]
fn changes_during_a_page_read_are_applied_to_it() {
    use crate::tui::pager::Pager;
    let mut p = Pager::default();
    let top = p.jump_top(None);
    assert!(!p.change(b"b", false, 10));
    assert!(!p.change(b"c", true, 10));
    p.receive(tag_of(&top), page(&["a", "c", "d"]), 10);
    assert_eq!(p.keys, page(&["a", "b", "d"]));
    // A later read starts after every change seen: nothing is replayed.
    p.change(b"e", false, 10);
    let again = p.jump_top(None);
    p.receive(tag_of(&again), page(&["a", "b", "d"]), 10);
    assert_eq!(p.keys, page(&["a", "b", "d"]));
}

/// Takes from `live` until `ok` holds for what came, which is returned.
fn collect(live: &crate::tui::live::Live, ok: impl Fn(&[Inbox]) -> bool) -> Vec<Inbox> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    loop {
        got.extend(live.take());
        if ok(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "waited in vain; got {got:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A feed asked for revisions the server no longer keeps starts over from
/// the current one and has the browser read everything again, once the new
/// stream has begun (so nothing between is lost); then it follows.
#[test]
fn a_feed_too_far_behind_starts_over_with_a_reload() {
    let (_dir, path) = store_with("");
    let limits = Limits {
        history: crate::engine::history::HistoryBounds {
            events: 5,
            bytes: 1 << 20,
        },
        ..Limits::default()
    };
    let server = Server::start_with(&path, "127.0.0.1:0", limits, None);
    let other = server.client();
    for i in 0..20 {
        other
            .put(format!("k{i:02}").as_bytes(), b"v".to_vec(), None)
            .unwrap();
    }
    let live = Feed::new(server.client(), 1).start(1).unwrap();
    let got = collect(&live, |got| {
        got.iter().any(|i| i.reload && i.link == Link::Live)
    });
    assert!(got.iter().all(|i| i.changes.is_empty()), "{got:?}");
    other.put(b"after", b"v".to_vec(), None).unwrap();
    let got = collect(&live, |got| got.iter().any(|i| !i.changes.is_empty()));
    let changes: Vec<_> = got.iter().flat_map(|i| i.changes.clone()).collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (changes[0].key.as_slice(), changes[0].revision),
        (&b"after"[..], 21)
    );
}

/// A feed the server refuses for good (here: no token) says so once, and
/// the browser says it no longer follows changes.
#[test]
fn a_refused_feed_is_reported_not_retried() {
    let (_dir, path) = store_with(&numbered(2));
    let server = Server::start_with(&path, "127.0.0.1:0", Limits::default(), Some("sesame"));
    let url = server.url.clone();
    let open = move || {
        let client = Client::new(&url, Some("sesame".into()), TIMEOUT, None)?;
        Ok(Box::new(client) as Box<dyn Kv>)
    };
    let mut s = start(open, None, (100, 20));
    s.follow(Feed::new(server.client(), 1));
    wait_for(&mut s, &["not live", "not following changes any more"]);
    assert!(shows(&s.app, "key:00000"));
}

/// The browser's own delete comes back through the feed too: it is
/// counted, and not reported as done elsewhere.
#[test]
fn the_browsers_own_delete_is_not_news() {
    let (_dir, _path, server) = served(&numbered(3));
    let mut s = browse_live(&server, (100, 20));
    keys(&mut s, "dy");
    wait_for(
        &mut s,
        &[
            "deleted key:00000 (revision 4)",
            "live · 1 change",
            "> key:00001",
        ],
    );
    assert!(!shows(&s.app, "elsewhere"), "{:?}", screen(&s.app));
    assert_eq!(server.client().get(b"key:00000").unwrap(), None);
}

/// `kvr tui --server URL` started before the server: the list says the
/// server cannot be reached (not "no keys"), and the browser reads its
/// first screen and follows changes once the server answers, without `r`.
#[test]
fn a_browser_started_before_its_server_loads_once_it_answers() {
    let (_dir, path) = store_with(&numbered(3));
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let url = format!("http://{addr}");
    let open = {
        let url = url.clone();
        move || Ok(Box::new(Client::new(&url, None, TIMEOUT, None)?) as Box<dyn Kv>)
    };
    let mut s = start(open, None, (100, 20));
    s.follow(Feed::new(
        Client::new(&url, None, TIMEOUT, None).unwrap(),
        1,
    ));
    assert!(
        shows(&s.app, "(cannot reach the server)"),
        "{:?}",
        screen(&s.app)
    );
    assert!(!shows(&s.app, "(no keys)"));
    assert!(shows(&s.app, "live: connecting…"));
    let server = Server::start(&path, &addr);
    wait_for(&mut s, &["> key:00000", "key 1 of 3", "live · 0 changes"]);
    assert_eq!(s.app.status.text, "", "the error went with the outage");
    server
        .client()
        .put(b"key:00009", b"9".to_vec(), None)
        .unwrap();
    wait_for(&mut s, &["key:00009", "live · 1 change"]);
}

/// An error left by a read that failed while the server was away goes
/// once the feed is back and the screen was read again.
#[test]
fn an_error_from_the_outage_goes_when_the_server_is_back() {
    let (_dir, path, server) = served(&numbered(3));
    let mut s = browse_live(&server, (100, 20));
    let addr = server.addr.to_string();
    drop(server);
    wait_for(&mut s, &["live: reconnecting…"]);
    keys(&mut s, "r");
    assert!(shows(&s.app, "error: cannot read"), "{:?}", screen(&s.app));
    let _server = Server::start(&path, &addr);
    wait_for(&mut s, &["live · 0 changes"]);
    wait_gone(&mut s, "error: cannot read");
    assert!(shows(&s.app, "> key:00000"));
}

/// A value that could not be read while the server was away, and the
/// note `e` left about it ("could not be read"), go once the server is
/// back and reads work again (README: an error left by a failed read goes
/// from the status line once a read works again).
#[test]
fn a_failed_value_read_is_taken_back_when_the_server_returns() {
    let (_dir, path, server) = served(&numbered(3));
    let mut s = browse_live(&server, (100, 20));
    let addr = server.addr.to_string();
    drop(server);
    wait_for(&mut s, &["live: reconnecting…"]);
    act(&mut s, &[Action::Move(Move::Down)]);
    wait_for(&mut s, &["cannot read key:00001"]);
    act(&mut s, &[Action::Edit]);
    wait_for(&mut s, &["the value could not be read; press r to refresh"]);
    let _server = Server::start(&path, &addr);
    wait_until(&mut s, "the value read again", |app| {
        matches!(app.value.state, crate::tui::app::ValueState::Loaded { .. })
    });
    wait_gone(&mut s, "could not be read");
    assert_eq!(s.app.status.text, "", "{:?}", s.app.status);
}

/// A browser on `n` numbered keys, sought to `key:01000` with the keys
/// around it read (the window `key:00800`…`key:01199`); then another client
/// deletes `[from, to)` in one go.
fn delete_around_the_cursor(
    n: usize,
    from: &str,
    to: &str,
) -> (tempfile::TempDir, Server, Session) {
    let (dir, _path, server) = served(&numbered(n));
    let mut s = browse_live(&server, (100, 20));
    keys(&mut s, "/key:01000\n");
    wait_until(&mut s, "the keys before the sought one", |app| {
        app.pager.keys.first().map(Vec::as_slice) == Some(b"key:00800".as_slice())
    });
    assert_eq!(selected(&s.app), "key:01000");
    server
        .client()
        .delete_range(&crate::types::RangeQuery {
            start: Some(from.as_bytes().to_vec()),
            end: Some(to.as_bytes().to_vec()),
            ..Default::default()
        })
        .unwrap();
    (dir, server, s)
}

/// README: a deleted selected key moves the cursor to the next key. A
/// burst that empties the window around the cursor must not send it to
/// the first key of the store.
#[test]
fn a_delete_burst_that_empties_the_window_selects_the_next_key() {
    let (_dir, _server, mut s) = delete_around_the_cursor(3000, "key:00750", "key:01250");
    wait_for(&mut s, &["> key:01250", "key:01000 was deleted elsewhere"]);
    assert!(!shows(&s.app, "key:00000"), "{:?}", screen(&s.app));
}

/// The same when the burst takes the window's end but not its start: the
/// cursor must not fall back to the key before the deleted ones.
#[test]
fn a_delete_burst_past_the_windows_end_selects_the_next_key() {
    let (_dir, _server, mut s) = delete_around_the_cursor(3000, "key:00900", "key:01300");
    wait_for(&mut s, &["> key:01300", "key:01000 was deleted elsewhere"]);
    assert!(!shows(&s.app, "key:00899 ·"), "{:?}", screen(&s.app));
}

/// A burst bigger than the feed holds is one reload: it lands on the next
/// key, and the status line still names the selected key that went.
#[test]
fn a_delete_burst_beyond_the_feed_says_the_selected_key_went() {
    let (_dir, _server, mut s) = delete_around_the_cursor(3000, "key:00500", "key:02000");
    wait_for(&mut s, &["> key:02000", "key:01000 was deleted elsewhere"]);
}

/// The same after an earlier key went long before (not in the same burst):
/// the status line names the key that went now, not that earlier one.
#[test]
fn a_delete_burst_beyond_the_feed_names_its_own_key_after_a_quiet_spell() {
    let (_dir, _server, mut s) = delete_around_the_cursor(3000, "key:00500", "key:02000");
    // What a delete of the selected key a minute ago left.
    let minute_ago = crate::types::now_ms() - 60_000;
    s.app.deleted_open = Some((b"key:00042".to_vec(), minute_ago));
    wait_for(&mut s, &["> key:02000", "key:01000 was deleted elsewhere"]);
}

/// The selected key deleted at the window's end, with more keys past it
/// in the store: the pager asks to read on from it (the next key), not to
/// settle on the key before it.
#[test]
fn a_deleted_last_key_of_the_window_asks_for_the_next() {
    use crate::tui::pager::{PAGE, Pager};
    let mut p = window_short_of_the_end();
    let last = format!("k{:04}", PAGE - 1).into_bytes();
    p.cursor = PAGE - 1;
    assert!(p.change(&last, true, 10));
    assert_eq!(p.lost.as_deref(), Some(last.as_slice()));
    // At the end of the store, the key before is the right one.
    let mut q = Pager::default();
    let top = q.jump_top(None);
    q.receive(tag_of(&top), page(&["a", "b"]), 10);
    q.cursor = 1;
    q.change(b"b", true, 10);
    assert_eq!((q.current(), q.lost.as_ref()), (Some(&b"a"[..]), None));
}

/// A filter set while the server is away: its read fails, and the keys
/// of the old view, which do not match it, are not shown under its title
/// nor acted on. The filter's keys come once the server is back.
#[test]
fn a_filter_set_while_the_server_is_away_shows_no_stale_keys() {
    let (_dir, path, server) = served(&numbered(40));
    let mut s = browse_live(&server, (100, 20));
    let addr = server.addr.to_string();
    drop(server);
    wait_for(&mut s, &["live: reconnecting…"]);
    keys(&mut s, "fkey:0002\n");
    wait_for(&mut s, &["(cannot reach the server)"]);
    assert!(!shows(&s.app, "key:00000"), "{:?}", screen(&s.app));
    assert_eq!(s.app.pager.current(), None);
    keys(&mut s, "jd");
    assert!(shows(&s.app, "no key selected"), "{:?}", screen(&s.app));
    let _server = Server::start(&path, &addr);
    wait_for(
        &mut s,
        &["> key:00020", "key:00029", "filter key:0002 · 10 keys"],
    );
}

/// A burst that reaches the browser in parts deletes the selected key,
/// then the key the cursor moved on to: the status line keeps naming the
/// key the user was on, until a key press.
#[test]
fn a_burst_in_parts_names_the_key_the_user_was_on() {
    let (_dir, path) = store_with(&numbered(10));
    let mut s = browse(&path, None, (100, 20));
    s.app.live = Some(Default::default());
    let gone = |s: &mut Session, key: &str| {
        let mut inbox = Inbox::default();
        inbox.link = Link::Live;
        inbox.changes = vec![crate::tui::live::Change {
            revision: 100,
            key: key.as_bytes().to_vec(),
            deleted: true,
            expired: false,
        }];
        s.app.follow(inbox);
        // Sends what it asked for, and takes the answers.
        act(s, &[Action::Resize(100, 20)]);
    };
    gone(&mut s, "key:00000");
    assert_eq!(selected(&s.app), "key:00001");
    assert!(shows(&s.app, "key:00001 · rev 2"), "{:?}", screen(&s.app));
    gone(&mut s, "key:00001");
    assert_eq!(selected(&s.app), "key:00002");
    assert_eq!(s.app.status.text, "key:00000 was deleted elsewhere");
    keys(&mut s, "j");
    gone(&mut s, "key:00003");
    assert_eq!(s.app.status.text, "key:00003 was deleted elsewhere");
}

/// A browser whose token the server refuses, for its reads and its feed:
/// the status bar does not say `live: connecting…` for good.
#[test]
fn a_refused_token_is_not_shown_as_connecting() {
    let (_dir, path) = store_with(&numbered(2));
    let server = Server::start_with(&path, "127.0.0.1:0", Limits::default(), Some("sesame"));
    let url = server.url.clone();
    let open = move || Ok(Box::new(Client::new(&url, None, TIMEOUT, None)?) as Box<dyn Kv>);
    let mut s = start(open, None, (120, 20));
    s.follow(Feed::new(server.client(), 1));
    wait_for(&mut s, &["not live", "unauthorized"]);
    assert!(!shows(&s.app, "connecting"), "{:?}", screen(&s.app));
}

/// A pattern filter over `--server` (its steps read over HTTP) follows
/// the feed: a write that matches appears, one that does not stays out,
/// a delete goes, and the count follows.
#[test]
fn a_pattern_filter_follows_changes() {
    let (_dir, _path, server) = served(&numbered(30));
    let mut s = browse_live(&server, (100, 20));
    let other = server.client();
    act(&mut s, &[Action::Filter]);
    keys(&mut s, "key:*5\n");
    wait_for(&mut s, &["Keys matching key:*5 ", "filter key:*5 · 3 keys"]);
    assert_eq!(selected(&s.app), "key:00005");
    other.put(b"key:00035", b"1".to_vec(), None).unwrap();
    other.put(b"key:00036", b"2".to_vec(), None).unwrap();
    other.put(b"other:5", b"3".to_vec(), None).unwrap();
    other.put(b"key:00012", b"4".to_vec(), None).unwrap();
    wait_for(
        &mut s,
        &["  key:00035", "filter key:*5 · 4 keys", "live · 4 changes"],
    );
    assert!(!shows(&s.app, "key:00036") && !shows(&s.app, "other:5"));
    other.delete(b"key:00015", None).unwrap();
    wait_gone(&mut s, "key:00015");
    wait_for(&mut s, &["filter key:*5 · 3 keys"]);
    let list: Vec<String> = s.app.pager.keys.iter().map(|k| display_key(k)).collect();
    assert_eq!(list, ["key:00005", "key:00025", "key:00035"]);
}
