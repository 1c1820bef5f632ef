//! A running browser: the [`App`], the worker that answers its calls, and
//! [`run_loop`], which draws, reads keys and hands over answers. The loop is
//! generic over ratatui's `Backend` and gets keys and the editor from a
//! [`Host`], so tests run it on a `TestBackend` with scripted keys.

use std::io;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind};

use super::action::{Action, map_key, split_escape};
use super::app::App;
use super::editor::EditJob;
use super::folded::{Remainder, Step};
use super::keys::display_key;
use super::live::{Feed, Live};
use super::view;
use super::worker::{Request, Response, SHUTDOWN_GRACE, Worker};
use crate::error::Result;

/// How long the loop waits for a key before looking for answers while
/// calls are out: the terminal cannot be woken by the worker, so this is
/// the delay an answer may wait before it is drawn.
const POLL_BUSY: Duration = Duration::from_millis(3);
/// The same when nothing is awaited: only signals and the "waiting"
/// notice depend on it, and idle wake-ups cost CPU.
const POLL_IDLE: Duration = Duration::from_millis(100);
/// After an event, how long to wait for another of the same burst, and
/// how many to take before drawing anyway.
const POLL_BURST: Duration = Duration::from_millis(1);
const BURST_EVENTS: usize = 512;
/// A call unanswered this long is mentioned on the status line.
const WAIT_NOTICE: Duration = Duration::from_millis(700);
/// First pause before reading a first screen the server did not answer
/// again; it doubles up to [`MAX_RETRY`], as the live feed's reconnection
/// does, so a server started after the browser is shown within that.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// What the loop needs from outside: key presses and an external editor.
pub trait Host {
    /// The next terminal event, waiting up to `timeout`.
    fn next_event(&mut self, timeout: Duration) -> io::Result<Option<Event>>;
    /// Runs `editor` on the job's value (handing it the terminal) and
    /// returns the edited bytes.
    fn edit(&mut self, editor: &str, job: &EditJob) -> Result<Vec<u8>>;
    /// Puts `bytes` on the terminal's clipboard (OSC 52).
    fn copy(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Whether a signal asked the process to end (SIGTERM, SIGHUP).
    fn terminated(&self) -> bool {
        false
    }
    /// Gives the terminal back and stops the process, as the shell's
    /// Ctrl-Z does; returns once it is continued (`fg`), the terminal
    /// taken again. Nothing to do without a real terminal.
    fn suspend(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The app and its worker.
pub struct Session {
    pub app: App,
    worker: Worker,
    in_flight: usize,
    /// When the source last answered while calls were outstanding.
    progress: Instant,
    /// The server's change feed, until it starts (see [`Session::follow`]).
    feed: Option<Feed>,
    live: Option<Live>,
    /// While the first screen could not be read from the server: when to
    /// try again, and the pause after that.
    retry: Option<(Instant, Duration)>,
    /// Saves and deletes sent and not answered yet, oldest first.
    writes: Vec<Write>,
    /// Quitting waits for [`Session::writes`] until then (see
    /// [`Session::hold_quit`]).
    closing: Option<Instant>,
    /// A key's remainder after an Escape crossterm folded (`folded.rs`).
    remainder: Remainder,
    /// Keys typed after a new key's name, while the browser checks that
    /// it does not exist yet: the value's first characters, for the
    /// editor that opens then (see [`Session::typed_ahead`]).
    typed_ahead: Vec<KeyEvent>,
}

/// A save or delete the worker has not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Write {
    key: Vec<u8>,
    delete: bool,
}

impl Write {
    fn of(request: &Request) -> Option<Write> {
        match request {
            Request::Put { key, .. } => Some(Write {
                key: key.clone(),
                delete: false,
            }),
            Request::Delete { key, .. } => Some(Write {
                key: key.clone(),
                delete: true,
            }),
            _ => None,
        }
    }

    fn answered_by(response: &Response) -> Option<Write> {
        match response {
            Response::Put { key, .. } => Some(Write {
                key: key.clone(),
                delete: false,
            }),
            Response::Deleted { key, .. } => Some(Write {
                key: key.clone(),
                delete: true,
            }),
            _ => None,
        }
    }

    /// `the delete of KEY`.
    fn describe(&self) -> String {
        let what = if self.delete { "delete" } else { "save" };
        format!("the {what} of {}", display_key(&self.key))
    }
}

impl Session {
    /// Starts a session; the app's first calls go out at once.
    pub fn new(app: App, worker: Worker) -> Session {
        let mut s = Session {
            app,
            worker,
            in_flight: 0,
            progress: Instant::now(),
            feed: None,
            live: None,
            retry: None,
            writes: Vec::new(),
            closing: None,
            remainder: Remainder::default(),
            typed_ahead: Vec::new(),
        };
        s.flush();
        s
    }

    /// Follows `feed` once the first stats arrive: their revision was read
    /// before the first page of keys (the worker answers in order), so the
    /// feed starting right after it misses no change to that page.
    pub fn follow(&mut self, feed: Feed) {
        self.app.live = Some(Default::default());
        self.feed = Some(feed);
        self.start_live();
    }

    fn start_live(&mut self) {
        let Some(revision) = self.app.stats.as_ref().map(|s| s.revision) else {
            return;
        };
        let Some(feed) = self.feed.take() else {
            return;
        };
        match feed.start(revision + 1) {
            Ok(live) => self.live = Some(live),
            Err(e) => {
                self.app.live = None;
                self.app.error(format!("cannot follow changes: {e}"));
            }
        }
    }

    /// Reads the first screen again, with pauses, until the server answers:
    /// the feed starts from the revision of that screen, so until then it
    /// cannot reconnect by itself. A file does not come up later: not there.
    fn retry_first_screen(&mut self) -> bool {
        if self.feed.is_none() || self.app.stats.is_some() || self.in_flight > 0 {
            return false;
        }
        let now = Instant::now();
        let (at, pause) = *self.retry.get_or_insert((now + FIRST_RETRY, FIRST_RETRY));
        if now < at {
            return false;
        }
        let next = (pause * 2).min(MAX_RETRY);
        self.retry = Some((now + next, next));
        self.app.reread();
        self.flush();
        true
    }

    /// Takes what the live feed saw; true if there was anything.
    fn take_live(&mut self) -> bool {
        if self.feed.is_some() {
            self.start_live();
        }
        let Some(inbox) = self.live.as_ref().and_then(Live::take) else {
            return false;
        };
        self.app.follow(inbox);
        self.flush();
        true
    }

    /// Applies an action and sends the calls it made.
    pub fn dispatch(&mut self, action: Action) {
        self.app.update(action);
        self.flush();
    }

    /// Applies a key press: its action in the current mode, if it has
    /// one; a press that means nothing here still takes back a first `q`
    /// (see [`App::key_without_action`]). Returns whether anything changed.
    pub fn key(&mut self, key: KeyEvent) -> bool {
        if self.closing.is_some() {
            // Quitting, waiting for a write: a second `q` or Ctrl-C quits
            // now, and nothing else is taken.
            let mode = self.app.key_mode();
            let quit = split_escape(mode, key)
                .into_iter()
                .any(|key| map_key(mode, key) == Some(Action::Quit));
            self.app.quit |= quit;
            return quit;
        }
        match self.remainder.step(key, Instant::now()) {
            Step::No => self.key_now(key),
            Step::More => false,
            Step::Done(keys) => keys.into_iter().fold(false, |c, k| self.key_now(k) | c),
        }
    }

    /// Characters held after an Escape, in case they were the rest of a
    /// key (see `folded.rs`), are taken as typed once the window after it
    /// passed.
    pub fn remainder_due(&mut self) -> bool {
        let keys = self.remainder.due(Instant::now());
        keys.into_iter().fold(false, |c, k| self.key_now(k) | c)
    }

    /// When held characters fall due (see [`Session::remainder_due`]).
    pub fn remainder_deadline(&self) -> Option<Instant> {
        self.remainder.deadline()
    }

    /// Ends the window after an Escape now: held characters are taken as
    /// typed (keys given one at a time, as tests do).
    #[cfg(test)]
    pub fn keys_apart(&mut self) -> bool {
        let keys = self.remainder.end();
        keys.into_iter().fold(false, |c, k| self.key_now(k) | c)
    }

    fn key_now(&mut self, key: KeyEvent) -> bool {
        if self.typed_ahead(key) {
            return false;
        }
        let escape = key.code == KeyCode::Esc
            && key.modifiers.is_empty()
            && key.kind != KeyEventKind::Release;
        let mut changed = false;
        for key in split_escape(self.app.key_mode(), key) {
            // The mode after the Escape decides what the next key does.
            match map_key(self.app.key_mode(), key) {
                Some(action) => {
                    self.dispatch(action);
                    changed = true;
                }
                None if key.kind != KeyEventKind::Release => {
                    changed |= self.app.key_without_action();
                }
                None => {}
            }
        }
        if escape {
            self.remainder.arm(Instant::now());
        }
        changed
    }

    /// What time does on its own: without a feed, the screen is read again
    /// once the selected key's expiry, or the file's next one, has passed
    /// (see [`App::reread_if_expired`]).
    pub fn tick(&mut self) -> bool {
        let changed = self.app.reread_if_expired(crate::types::now_ms());
        if changed {
            self.flush();
        }
        changed
    }

    /// Applies pasted text (see [`App::paste`]).
    pub fn paste(&mut self, text: &str) {
        self.app.paste(text);
        self.flush();
    }

    /// Finishes an external edit.
    pub fn finish_edit(&mut self, job: EditJob, edited: Result<Vec<u8>>) {
        self.app.external_done(job, edited);
        self.flush();
    }

    fn flush(&mut self) {
        if self.in_flight == 0 {
            self.progress = Instant::now();
        }
        for request in self.app.outbox.drain(..) {
            self.writes.extend(Write::of(&request));
            self.worker.send(request);
            self.in_flight += 1;
        }
    }

    /// Takes every answer that is ready; true if the screen may change.
    pub fn pump(&mut self) -> bool {
        let mut changed = false;
        while let Some(response) = self.worker.try_recv() {
            self.answered(response);
            changed = true;
        }
        changed |= self.take_live();
        changed |= self.retry_first_screen();
        let waiting = (self.in_flight > 0 && self.progress.elapsed() >= WAIT_NOTICE)
            .then(|| self.progress.elapsed().as_secs().max(1));
        changed |= waiting != self.app.waiting;
        self.app.waiting = waiting;
        changed
    }

    fn answered(&mut self, response: Response) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(write) = Write::answered_by(&response)
            && let Some(i) = self.writes.iter().position(|w| *w == write)
        {
            self.writes.remove(i);
        }
        // An answer that does not name its call (a crash) may be a write's.
        if self.in_flight == 0 {
            self.writes.clear();
        }
        self.progress = Instant::now();
        self.app.receive(response);
        self.flush();
        self.replay_typed_ahead();
    }

    /// Holds `key` while a new key is being checked (but Ctrl-C, which
    /// quits): typed then, it was the value's start, and taken by the
    /// list it ran commands (`n` of "one" opened another prompt) or was
    /// lost (found by an audit).
    fn typed_ahead(&mut self, key: KeyEvent) -> bool {
        let ctrl_c = key.code == KeyCode::Char('c')
            && key
                .modifiers
                .contains(ratatui::crossterm::event::KeyModifiers::CONTROL);
        if self.app.creating.is_none() || self.app.mode != super::app::Mode::Browse || ctrl_c {
            return false;
        }
        if key.kind != KeyEventKind::Release {
            self.typed_ahead.push(key);
        }
        true
    }

    /// Once the check is answered: the held keys go to the built-in editor
    /// it opened; otherwise (the key exists, or `$EDITOR` takes the value)
    /// they are dropped, and an empty status line says so (one that says
    /// the key exists is not cut short for it).
    fn replay_typed_ahead(&mut self) {
        if self.typed_ahead.is_empty() || self.app.creating.is_some() {
            return;
        }
        let keys = std::mem::take(&mut self.typed_ahead);
        if matches!(self.app.mode, super::app::Mode::Editor { .. }) {
            for key in keys {
                self.key_now(key);
            }
            return;
        }
        let n = keys.len();
        let note = format!(
            "{n} key{} typed meanwhile {} not taken",
            if n == 1 { "" } else { "s" },
            if n == 1 { "was" } else { "were" }
        );
        if self.app.status.text.is_empty() {
            self.app.info(note);
        }
    }

    /// Has the worker let go of a file it holds, waiting up to `timeout`
    /// for the calls before (whose answers are taken as they come):
    /// before the process stops (Ctrl-Z), which would hold the file until
    /// it is continued. The next call opens it again.
    pub fn release_source(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.worker.send(Request::Release);
        self.in_flight += 1;
        while let Some(response) = self
            .worker
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let released = matches!(response, Response::Released);
            self.answered(response);
            if released {
                return;
            }
        }
    }

    /// Waits until every call is answered, up to `timeout`; true if so.
    #[cfg(test)]
    /// Tests use it to look at a settled screen.
    pub fn settle(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Some(response) = self.worker.recv_timeout(left) {
                self.answered(response);
            }
        }
        self.pump();
        true
    }

    /// Takes one answer, waiting up to `timeout`; false if none came.
    /// Tests use it to look at a read in steps half way.
    #[cfg(test)]
    pub fn answer_one(&mut self, timeout: Duration) -> bool {
        match self.worker.recv_timeout(timeout) {
            Some(response) => {
                self.answered(response);
                true
            }
            None => false,
        }
    }

    /// Changes the live feed has seen, taken by the app or not.
    #[cfg(test)]
    pub fn live_seen(&self) -> u64 {
        self.live.as_ref().map_or(0, Live::seen)
    }

    /// A quit (a first `q` or Ctrl-C) while a save or delete is out waits
    /// for its answer, up to [`SHUTDOWN_GRACE`], on screen: a second `q` or
    /// Ctrl-C quits at once. Quitting ends the loop with the write still
    /// out only then, or once the grace has passed; [`Session::unanswered`]
    /// says so on the way out. Returns whether the screen changed.
    pub fn hold_quit(&mut self) -> bool {
        match self.closing {
            None if self.app.quit && !self.app.quit_at_once && !self.writes.is_empty() => {
                self.closing = Some(Instant::now() + SHUTDOWN_GRACE);
                self.app.quit = false;
                let waiting = self.writes.iter().map(Write::describe).collect::<Vec<_>>();
                self.app.info(format!(
                    "quitting once {} is answered (at most {} s); q or Ctrl-C again quits now",
                    waiting.join(" and "),
                    SHUTDOWN_GRACE.as_secs()
                ));
                true
            }
            Some(deadline) if !self.app.quit => {
                self.app.quit = self.writes.is_empty() || Instant::now() >= deadline;
                self.app.quit
            }
            _ => false,
        }
    }

    /// The saves and deletes sent and not answered (`the delete of KEY`),
    /// if any: after quitting, they may or may not have been applied.
    pub fn unanswered(&self) -> Option<String> {
        let writes: Vec<_> = self.writes.iter().map(Write::describe).collect();
        (!writes.is_empty()).then(|| writes.join(" and "))
    }

    /// Ends the worker. A file is given [`SHUTDOWN_GRACE`] to finish a
    /// call and close cleanly; a server's call in flight is left behind at
    /// once (a stalled server would hold quitting up for the whole grace,
    /// and a write out was waited for already, see [`Session::hold_quit`]).
    pub fn shutdown(&mut self) {
        self.live = None;
        let grace = match self.in_flight > 0 && !self.worker.holds_file() {
            true => Duration::ZERO,
            false => SHUTDOWN_GRACE,
        };
        self.worker.shutdown(grace);
    }
}

/// Clears the screen and has the next draw draw all of it. Not
/// `Terminal::clear`, which first asks the terminal where its cursor is (a
/// full-screen view needs no answer): keys typed while an editor ran or
/// before `fg` could leave half an escape sequence ahead of the answer,
/// and the browser ended, an edit in progress with it (found by an
/// audit). A resize to the same size clears without asking.
fn clear<B: Backend>(terminal: &mut Terminal<B>) -> Result<(), B::Error> {
    let size = terminal.size()?;
    terminal.resize(ratatui::layout::Rect::new(0, 0, size.width, size.height))
}

/// Draws, reads keys and takes answers until the user quits.
pub fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    session: &mut Session,
    host: &mut dyn Host,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut dirty = true;
    let mut second = None;
    while !session.app.quit && !host.terminated() {
        // An expiry on screen counts down: draw again each second.
        let now = session
            .app
            .shows_expiry()
            .then(|| crate::types::now_ms() / 1000);
        dirty |= std::mem::replace(&mut second, now) != now;
        dirty |= session.tick();
        if std::mem::take(&mut session.app.redraw) {
            clear(terminal)?;
            dirty = true;
        }
        if dirty {
            terminal.draw(|f| view::render(f, &session.app))?;
            dirty = false;
        }
        if let Some(bytes) = session.app.clipboard.take() {
            host.copy(&bytes)?;
        }
        if std::mem::take(&mut session.app.suspend) {
            session.release_source(SHUTDOWN_GRACE);
            host.suspend()?;
            // The shell wrote over the screen, which may have been resized
            // meanwhile.
            clear(terminal)?;
            let size = terminal.size()?;
            session.dispatch(Action::Resize(size.width, size.height));
            dirty = true;
            continue;
        }
        if let Some(job) = session.app.pending_edit.take() {
            let editor = session.app.config.editor.clone().unwrap_or_default();
            let edited = host.edit(&editor, &job);
            session.finish_edit(job, edited);
            // The editor drew over the screen: draw everything again.
            clear(terminal)?;
            dirty = true;
            continue;
        }
        let mut poll = if session.in_flight > 0 {
            POLL_BUSY
        } else {
            POLL_IDLE
        };
        if let Some(deadline) = session.remainder_deadline() {
            poll = poll.min(deadline.saturating_duration_since(Instant::now()));
        }
        if let Some(event) = host.next_event(poll)? {
            dirty |= handle(session, event);
            // Keys that came together (typed ahead, a paste the terminal
            // did not bracket) are all taken before the next draw, up to
            // one that hands the terminal over or asks for more than a
            // draw.
            for _ in 0..BURST_EVENTS {
                let app = &session.app;
                if app.quit
                    || app.redraw
                    || app.suspend
                    || app.pending_edit.is_some()
                    || app.clipboard.is_some()
                {
                    break;
                }
                dirty |= session.pump();
                match host.next_event(POLL_BURST)? {
                    Some(event) => dirty |= handle(session, event),
                    None => break,
                }
            }
        }
        dirty |= session.remainder_due();
        dirty |= session.pump();
        dirty |= session.hold_quit();
    }
    Ok(())
}

/// Takes one terminal event; whether the screen needs drawing.
fn handle(session: &mut Session, event: Event) -> bool {
    match event {
        Event::Key(key) => session.key(key),
        // Bracketed paste: as key presses it would run commands.
        Event::Paste(text) => {
            session.paste(&text);
            true
        }
        Event::Resize(w, h) => {
            session.dispatch(Action::Resize(w, h));
            true
        }
        _ => false,
    }
}
