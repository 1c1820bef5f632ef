//! Action → update → render tests on a real temporary store.
//!
//! Each test opens a redb file through `LocalKv` on the browser's worker
//! thread, as `kvr tui --db` does, drives the app with actions or key
//! presses, waits for the source's answers and draws onto ratatui's
//! `TestBackend`, asserting on the screen's text.

mod conflicts;
mod flows;
mod graphemes;
mod held;
mod live;
mod patterns;
mod release;
mod rough_edges;
mod screens;
mod small_screens;
mod sources;
mod wrapping;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::app::{App, Config};
use super::session::Session;
use super::theme::Theme;
use super::view;
use super::worker::Worker;
use crate::kv::{Kv, LocalKv};
use crate::store::{OpenMode, Store, StoreOptions};

/// Long enough for any local read; a hang fails the test instead.
const SETTLE: Duration = Duration::from_secs(10);
pub const MONO: Theme = Theme { color: false };

pub fn options() -> StoreOptions {
    StoreOptions {
        cache_bytes: 16 << 20,
        // Other tests of this process start editors: a child between its
        // fork and its exec still holds copies of this process's files,
        // and with them their locks, for a moment ("in use" once in CI).
        lock_timeout: Duration::from_secs(10),
        paced_writeback: false,
    }
}

pub fn open_kv(path: &Path) -> crate::Result<LocalKv> {
    Ok(LocalKv {
        store: Store::open(path, OpenMode::Create, &options())?,
        max_value_bytes: crate::limits::DEFAULT_MAX_VALUE_BYTES,
    })
}

/// A store in a temporary directory holding the JSON lines `lines`.
pub fn store_with(lines: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let kv = open_kv(&path).unwrap();
    if !lines.is_empty() {
        kv.batch(Box::new(Cursor::new(lines.as_bytes().to_vec())))
            .unwrap();
    }
    (dir, path)
}

/// JSON lines of `n` keys `key:00000`… with small JSON values.
pub fn numbered(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"key\":\"key:{i:05}\",\"value\":{{\"n\":{i}}}}}\n"))
        .collect()
}

/// A browser on `path`, settled after its first reads.
pub fn browse(path: &Path, editor: Option<&str>, size: (u16, u16)) -> Session {
    let path = path.to_path_buf();
    start(
        move || Ok(Box::new(open_kv(&path)?) as Box<dyn Kv>),
        editor,
        size,
    )
}

pub fn start<F>(open: F, editor: Option<&str>, size: (u16, u16)) -> Session
where
    F: FnOnce() -> crate::Result<Box<dyn Kv>> + Send + 'static,
{
    let (worker, source) = Worker::start(open).unwrap();
    let config = Config {
        theme: MONO,
        editor: editor.map(str::to_string),
    };
    let mut s = Session::new(App::new(source, config, size), worker);
    assert!(s.settle(SETTLE), "the first reads did not finish");
    s
}

/// Applies actions, waiting for the source after each.
pub fn act(s: &mut Session, actions: &[Action]) {
    for &a in actions {
        s.dispatch(a);
        assert!(s.settle(SETTLE), "no answer after {a:?}");
    }
}

/// Types `text` as key presses (through the key map), settling after each.
pub fn keys(s: &mut Session, text: &str) {
    for c in text.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\t' => KeyCode::Tab,
            '\x1b' => KeyCode::Esc,
            c => KeyCode::Char(c),
        };
        press(s, KeyEvent::new(code, KeyModifiers::NONE));
    }
}

/// A key event as the run loop takes it (see `split_escape`).
pub fn press(s: &mut Session, key: KeyEvent) {
    s.key(key);
    s.keys_apart();
    assert!(s.settle(SETTLE), "no answer after {key:?}");
}

/// The screen as lines of text.
pub fn screen(app: &App) -> Vec<String> {
    let buffer = draw(app);
    (0..buffer.area.height)
        .map(|y| {
            let row: String = (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect();
            row.trim_end().to_string()
        })
        .collect()
}

pub fn draw(app: &App) -> ratatui::buffer::Buffer {
    let (w, h) = app.size;
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view::render(f, app)).unwrap();
    terminal.backend().buffer().clone()
}

/// Whether any line of the screen contains `text`.
pub fn shows(app: &App, text: &str) -> bool {
    screen(app).iter().any(|l| l.contains(text))
}

/// The selected key as shown.
pub fn selected(app: &App) -> String {
    app.pager
        .current()
        .map(super::keys::display_key)
        .unwrap_or_default()
}

/// Reads a key back after the session closed the file.
pub fn stored(path: &Path, key: &[u8]) -> Option<(Vec<u8>, u64)> {
    let kv = open_kv(path).unwrap();
    kv.get(key).unwrap().map(|e| (e.value, e.revision))
}

/// Two keys, `note` ("hello") and `zz`, for the edit-conflict tests.
pub const NOTE: &str = "{\"key\":\"note\",\"value\":\"hello\"}\n{\"key\":\"zz\",\"value\":\"w\"}\n";

/// A browser on a store shared with the test, which writes "as someone
/// else" through the returned handle.
pub fn shared(
    lines: &str,
    editor: Option<&str>,
) -> (tempfile::TempDir, std::sync::Arc<LocalKv>, Session) {
    let (dir, path) = store_with(lines);
    let kv = std::sync::Arc::new(open_kv(&path).unwrap());
    let other = kv.clone();
    let s = start(
        move || Ok(Box::new(sources::Shared(kv)) as Box<dyn Kv>),
        editor,
        (100, 20),
    );
    (dir, other, s)
}

/// The text in the built-in editor, if it is open.
pub fn editor_text(s: &Session) -> Option<String> {
    s.app.editor().map(|(_, area)| area.text())
}

/// A browser over the store at `path` that refuses writes, with an
/// `$EDITOR` whose edit ("hello, world") was then not written: the status
/// says so and the text waits for `e`.
pub fn failed_external_save(path: PathBuf) -> Session {
    let open = move || Ok(Box::new(sources::NoWrites(open_kv(&path)?)) as Box<dyn Kv>);
    let mut s = start(open, Some("true"), (100, 20));
    keys(&mut s, "e");
    let job = s.app.pending_edit.take().unwrap();
    s.finish_edit(job, Ok(b"hello, world".to_vec()));
    assert!(s.settle(SETTLE));
    assert!(
        s.app
            .status
            .text
            .contains("press e to edit your text again")
    );
    s
}
