//! The real terminal: raw mode, the alternate screen and bracketed paste,
//! given back on every way out (quit, error, signal, panic) and around an
//! external editor.
//!
//! [`TerminalGuard`] restores in `Drop`; a panic hook restores too, before
//! the panic message is printed, so the message is readable and the shell
//! usable. `ACTIVE` keeps the hook from writing escape codes when the
//! browser is not on screen. [`CrosstermHost`] turns signals into a flag
//! the run loop checks, so they end the browser through the same `Drop`;
//! Ctrl-Z gives the terminal back until the shell continues kvr (`fg`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;

use ratatui::crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

use super::editor::{self, EditJob};
use super::input::Input;
use super::session::Host;
use crate::error::{Error, Result};

/// Whether the terminal is in the browser's modes now.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The thread that draws. A panic elsewhere (the worker, which catches
/// it and reports an error) must not give the terminal back under a
/// running browser.
static UI_THREAD: OnceLock<ThreadId> = OnceLock::new();

/// Owns the terminal's raw mode and alternate screen while alive.
pub struct TerminalGuard(());

impl TerminalGuard {
    /// Switches the terminal to the browser's modes.
    pub fn enter() -> io::Result<TerminalGuard> {
        let _ = UI_THREAD.set(std::thread::current().id());
        install_panic_hook();
        let guard = TerminalGuard(());
        guard.resume()?;
        Ok(guard)
    }

    /// Gives the terminal back, for an external editor.
    pub fn suspend(&self) -> io::Result<()> {
        restore()
    }

    /// Takes the terminal again after [`TerminalGuard::suspend`].
    pub fn resume(&self) -> io::Result<()> {
        ACTIVE.store(true, Ordering::SeqCst);
        enable_raw_mode()?;
        // Pasted text arrives as one event (`Event::Paste`), not as key
        // presses that would run commands.
        execute!(io::stdout(), EnterAlternateScreen, EnableBracketedPaste)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = restore();
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor, if the
/// browser had them.
fn restore() -> io::Result<()> {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    let raw = disable_raw_mode();
    execute!(
        io::stdout(),
        DisableBracketedPaste,
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    )?;
    raw
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if UI_THREAD.get() == Some(&std::thread::current().id()) {
                let _ = restore();
            }
            previous(info);
        }));
    });
}

/// Keyboard, editor and signals of the real terminal.
pub struct CrosstermHost<'a> {
    pub guard: &'a TerminalGuard,
    input: Input,
    /// SIGTERM or SIGHUP: end the browser.
    terminate: Arc<AtomicBool>,
    /// SIGINT or SIGQUIT: end the browser too, except while an editor runs.
    interrupt: Arc<AtomicBool>,
}

impl<'a> CrosstermHost<'a> {
    /// Catches SIGTERM and SIGHUP, so that `kill` or a closed terminal
    /// end the browser the normal way: terminal restored, the database
    /// closed cleanly. In raw mode Ctrl-C and Ctrl-\ are keys, but while an
    /// external editor has the terminal they are signals to the whole
    /// foreground group, kvr included. An editor's user presses them
    /// freely, so there they must neither kill kvr (the default) nor end
    /// the browser afterwards; see [`Host::edit`].
    pub fn new(guard: &'a TerminalGuard) -> io::Result<CrosstermHost<'a>> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        let terminate = Arc::new(AtomicBool::new(false));
        let interrupt = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGHUP] {
            signal_hook::flag::register(signal, terminate.clone())?;
        }
        for signal in [SIGINT, SIGQUIT] {
            signal_hook::flag::register(signal, interrupt.clone())?;
        }
        Ok(CrosstermHost {
            guard,
            input: Input::start()?,
            terminate,
            interrupt,
        })
    }
}

impl Host for CrosstermHost<'_> {
    fn terminated(&self) -> bool {
        self.terminate.load(Ordering::SeqCst) || self.interrupt.load(Ordering::SeqCst)
    }

    fn next_event(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        self.input.next(timeout)
    }

    fn copy(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let mut out = io::stdout();
        out.write_all(super::clipboard::osc52(bytes).as_bytes())?;
        out.flush()
    }

    fn suspend(&mut self) -> io::Result<()> {
        // Nothing may read the terminal while the shell has it.
        self.input.settle()?;
        self.guard.suspend()?;
        // The default action of SIGTSTP stops the process (all of it);
        // raise returns once SIGCONT continues it.
        let stopped = signal_hook::low_level::raise(signal_hook::consts::SIGTSTP);
        self.guard.resume()?;
        discard_typed_ahead();
        stopped
    }

    fn edit(&mut self, editor: &str, job: &EditJob) -> Result<Vec<u8>> {
        let term = |e| Error::io("cannot switch the terminal", e);
        // Nothing may read the terminal while the editor has it.
        self.input.settle().map_err(term)?;
        self.guard.suspend().map_err(term)?;
        let edited = editor::run_external(editor, &job.start_text(), job.suffix());
        // Ctrl-C pressed in the editor was meant for the editor.
        self.interrupt.store(false, Ordering::SeqCst);
        self.guard.resume().map_err(term)?;
        discard_typed_ahead();
        edited
    }
}

/// Drops what was typed into the terminal while the browser did not have
/// it (an editor that left the keys to it, as a GUI one does; a shell
/// before `fg`): meant for them, not for the browser, and in cooked mode a
/// Backspace after an arrow key left half an escape sequence there, which
/// the next key turned into an unreadable one and ended the browser
/// (found by an audit). Best effort; stdin may not be the terminal, which
/// the browser then reads as /dev/tty.
fn discard_typed_ahead() {
    use rustix::termios::{QueueSelector, tcflush};
    if tcflush(std::io::stdin(), QueueSelector::IFlush).is_err()
        && let Ok(tty) = std::fs::File::open("/dev/tty")
    {
        let _ = tcflush(&tty, QueueSelector::IFlush);
    }
}
