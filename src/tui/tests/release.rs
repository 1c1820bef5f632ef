//! A browser on a file lets go of it once idle and opens it again for
//! the next call: another handle can write meanwhile, `r` shows what it
//! wrote, a save still meets someone else's change, and a file another
//! handle holds is an error on the status line, the typed text kept.

use super::*;
use crate::tui::app::Mode;
use crate::tui::hold::Reopen;

/// The idle time of these tests: short, so they do not wait long.
const IDLE: Duration = Duration::from_millis(100);
/// How long [`wait_released`] waits for the browser to let go after
/// [`IDLE`]: its worker may be descheduled for a while on a loaded
/// machine (a fixed 600 ms sleep, then one try to open, was not enough).
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Opens `path` as `kvr tui --db` reopens it: read-only for reads.
fn reopen(path: &Path, how: Reopen) -> crate::Result<Box<dyn Kv>> {
    let opts = StoreOptions {
        // A reopen waits a second, as the browser's does; the first open
        // waits longer (see `options`).
        lock_timeout: if how.wait {
            crate::tui::REOPEN_WAIT
        } else {
            options().lock_timeout
        },
        ..options()
    };
    let mode = if how.write {
        OpenMode::MustExist
    } else {
        OpenMode::ReadOnly
    };
    Ok(Box::new(LocalKv {
        store: Store::open(path, mode, &opts)?,
        max_value_bytes: crate::limits::DEFAULT_MAX_VALUE_BYTES,
    }))
}

/// A browser on `path` whose worker lets go of the file after `idle`
/// without a call.
fn browse_releasing(path: &Path, idle: Duration) -> Session {
    let path = path.to_path_buf();
    let open = Box::new(move |how| reopen(&path, how));
    let (worker, source) = Worker::start_file(open, idle).unwrap();
    let config = Config {
        theme: MONO,
        editor: None,
    };
    let mut s = Session::new(App::new(source, config, (100, 20)), worker);
    assert!(s.settle(SETTLE), "the first reads did not finish");
    s
}

/// Waits until the browser has let go of `path`: tries, every 20 ms for
/// up to [`RELEASE_WAIT`], an open that does not wait, read-only so that
/// it writes nothing (the tests compare the file's bytes).
fn wait_released(path: &Path) {
    let opts = StoreOptions {
        lock_timeout: Duration::ZERO,
        ..options()
    };
    let deadline = std::time::Instant::now() + RELEASE_WAIT;
    loop {
        match Store::open(path, OpenMode::ReadOnly, &opts) {
            Ok(_) => return,
            Err(crate::Error::InUse { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the browser did not let go of the file: {e}"),
        }
    }
}

/// Another process's open: no waiting, so a held file fails the test.
fn other_open(path: &Path) -> LocalKv {
    let opts = StoreOptions {
        lock_timeout: Duration::ZERO,
        ..options()
    };
    LocalKv {
        store: Store::open(path, OpenMode::MustExist, &opts).unwrap(),
        max_value_bytes: crate::limits::DEFAULT_MAX_VALUE_BYTES,
    }
}

fn ctrl_s(s: &mut Session) {
    press(s, KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
}

#[test]
fn an_idle_browser_lets_go_and_r_shows_what_others_wrote() {
    let (_dir, path) = store_with(NOTE);
    let mut s = browse_releasing(&path, IDLE);
    assert!(shows(&s.app, "note"));
    wait_released(&path);
    // Free: another handle opens it without waiting, and writes.
    let other = other_open(&path);
    other.put(b"newkey", b"v".to_vec(), None).unwrap();
    drop(other);
    let before = std::fs::read(&path).unwrap();
    keys(&mut s, "r");
    assert!(shows(&s.app, "newkey"), "{:?}", screen(&s.app));
    // Those reads opened the file read-only: let go again, it is as the
    // other handle left it, byte for byte.
    wait_released(&path);
    assert!(
        std::fs::read(&path).unwrap() == before,
        "reading wrote the file"
    );
    // The file is open read-only for that read: a save opens it again
    // for writing, and writes.
    keys(&mut s, "g");
    assert_eq!(selected(&s.app), "newkey");
    keys(&mut s, "e!");
    ctrl_s(&mut s);
    assert!(
        s.app.status.text.starts_with("saved newkey"),
        "{:?}",
        s.app.status.text
    );
    drop(s);
    assert_eq!(stored(&path, b"newkey").map(|e| e.0), Some(b"v!".to_vec()));
}

/// From its first open on, a browser that only reads leaves the file's
/// bytes as they were (the first open was read-write, and redb rewrote
/// the header), and its title does not call a writable file read-only.
#[test]
fn browsing_from_the_first_open_writes_nothing() {
    let (_dir, path) = store_with(&numbered(50));
    let before = std::fs::read(&path).unwrap();
    let mut s = browse_releasing(&path, IDLE);
    assert!(
        !screen(&s.app).join("\n").contains("read-only"),
        "{:?}",
        screen(&s.app)
    );
    keys(&mut s, "jjG");
    wait_released(&path);
    keys(&mut s, "gr");
    drop(s);
    assert!(
        std::fs::read(&path).unwrap() == before,
        "browsing wrote the file"
    );
}

/// Moving through keys keeps the file: no reopen per key press. With an
/// idle time of 5 s, so that the check after the last press cannot come
/// after the release: with [`IDLE`] it had 75 ms, which a test thread
/// descheduled on a loaded machine overran (the open then succeeded). A
/// browser that let go after each call still fails it.
#[test]
fn moving_through_keys_keeps_the_file_open() {
    let (_dir, path) = store_with(&numbered(20));
    let mut s = browse_releasing(&path, Duration::from_secs(5));
    for _ in 0..8 {
        keys(&mut s, "j");
        std::thread::sleep(Duration::from_millis(25));
    }
    let opts = StoreOptions {
        lock_timeout: Duration::ZERO,
        ..options()
    };
    let held = Store::open(&path, OpenMode::MustExist, &opts);
    assert!(matches!(held, Err(crate::Error::InUse { .. })), "{held:?}");
}

/// The edit began at revision 1; after the release someone else wrote
/// the key: the save, made through a new open, is still conditional.
#[test]
fn a_save_after_a_release_still_meets_someone_elses_change() {
    let (_dir, path) = store_with(NOTE);
    let mut s = browse_releasing(&path, IDLE);
    keys(&mut s, "e");
    keys(&mut s, ", world");
    wait_released(&path);
    let other = other_open(&path);
    other.put(b"note", b"theirs".to_vec(), None).unwrap();
    drop(other);
    ctrl_s(&mut s);
    assert!(
        matches!(s.app.mode, Mode::Conflict(_)),
        "{:?}",
        screen(&s.app)
    );
    assert_eq!(
        s.app.status.text,
        "note was changed by someone else (now at revision 3); your edit is kept, not written"
    );
    assert!(shows(&s.app, "theirs"));
    assert_eq!(stored(&path, b"note").map(|e| e.1), Some(3));
    // `o` overwrites, conditionally on what the dialog showed.
    keys(&mut s, "o");
    assert!(
        s.app.status.text.starts_with("saved note"),
        "{:?}",
        s.app.status.text
    );
    drop(s);
    assert_eq!(
        stored(&path, b"note").map(|e| e.0),
        Some(b"hello, world".to_vec())
    );
}

/// While another handle holds the file, a move and a save fail with the
/// "in use" error naming the holder; the text is kept, and once the file
/// is free Ctrl-S saves it.
#[test]
fn a_file_held_elsewhere_is_an_error_and_the_text_is_kept() {
    let (_dir, path) = store_with(NOTE);
    let mut s = browse_releasing(&path, IDLE);
    keys(&mut s, "e!");
    wait_released(&path);
    let other = other_open(&path);
    ctrl_s(&mut s);
    let status = s.app.status.text.clone();
    assert!(
        status.starts_with("cannot save note: ") && status.contains(" is still in use by "),
        "{status}"
    );
    assert!(
        status.contains(&format!("(pid {})", std::process::id())),
        "{status}"
    );
    assert_eq!(editor_text(&s).as_deref(), Some("hello!"));
    drop(other);
    ctrl_s(&mut s);
    assert!(
        s.app.status.text.starts_with("saved note"),
        "{:?}",
        s.app.status.text
    );

    // A read: the move fails with the same error, the list stays.
    wait_released(&path);
    let other = other_open(&path);
    keys(&mut s, "j");
    assert!(
        s.app.status.text.contains(" in use by "),
        "{:?}",
        s.app.status.text
    );
    assert!(shows(&s.app, "note") && shows(&s.app, "zz"));
    drop(other);
    keys(&mut s, "r");
    assert!(
        !s.app.status.text.contains("in use"),
        "{:?}",
        s.app.status.text
    );
    assert_eq!(selected(&s.app), "zz");
    drop(s);
    assert_eq!(
        stored(&path, b"note").map(|e| e.0),
        Some(b"hello!".to_vec())
    );
}
