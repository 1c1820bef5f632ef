//! `kvr tui`: a full-screen browser over any [`Kv`] source.
//!
//! The csvlens/gitui shape: keys become `Action`s in `action.rs`;
//! `App::update` (`app.rs`, edits in `edits.rs`, a save that met someone
//! else's change in `conflict.rs`, answers in `respond.rs`, copying in
//! `clipboard.rs`) changes state; `view::render` (an edit in
//! `editview.rs`, the editor's soft wrap in `softwrap.rs`) draws it and
//! nothing else. Calls on the source run on a worker thread (`worker.rs`) so a slow or dead server never freezes the
//! screen; the key list is paged through bounded range reads (`pager.rs`).
//! The filter (`filter.rs`) is a prefix or a Redis glob pattern
//! (`glob.rs`), whose matches are read and counted in steps
//! (`scanning.rs`).
//! `terminal.rs` restores the terminal on quit, error, signal and panic,
//! and `input.rs` reads keys with a watchdog for a terminal that is gone;
//! `session.rs` holds the run loop, generic over ratatui's `Backend`.
//! A local file is held only while it is read or written (`hold.rs`), so
//! scripts and a server can use it while the browser sits idle.
//! Over `--server` the browser follows the server's change feed
//! (`live.rs`, on a thread of its own) and patches what it shows
//! (`follow.rs`).

mod action;
mod app;
mod cells;
mod clipboard;
mod conflict;
mod editor;
mod edits;
mod editview;
mod filter;
mod fit;
mod folded;
mod follow;
mod glob;
mod hold;
mod input;
mod json;
mod keys;
mod live;
mod pager;
mod preview;
mod respond;
mod scanning;
mod session;
mod softwrap;
mod terminal;
mod theme;
mod view;
mod worker;
mod wrap;

#[cfg(test)]
mod tests;

use std::io::{self, IsTerminal};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use crate::error::{Error, Result};
use crate::kv::Kv;

pub use action::BINDINGS;
pub use hold::{Opener, REOPEN_WAIT, Reopen};
pub use live::Feed;

/// Where the browser's data comes from, and how to open it.
pub enum Source {
    /// Opened once and held until the browser ends: a server's client.
    Held(Box<dyn FnOnce() -> Result<Box<dyn Kv>> + Send>),
    /// A local file, held only while it is read or written (`hold.rs`).
    File(Opener),
}

/// Opens the source (on the worker thread, so that its errors, such as a
/// database in use, come out before the screen is taken) and runs the
/// browser until the user quits, following `feed` (the server's changes)
/// when there is one.
pub fn run(source: Source, feed: Option<Feed>) -> anyhow::Result<()> {
    // Checked over `--server` too, where it means nothing: a bad value is
    // a mistake either way, and is said before anything is opened.
    let idle = hold::idle_release()?;
    let (worker, source) = match source {
        Source::Held(open) => worker::Worker::start(open)?,
        Source::File(open) => worker::Worker::start_file(open, idle)?,
    };
    // Escape codes in a file or pipe help nobody; say so instead.
    if !io::stdout().is_terminal() {
        return Err(Error::invalid("kvr tui needs a terminal: its output is not one").into());
    }
    let config = app::Config {
        theme: theme::Theme::from_env(),
        editor: editor::editor_from_env(),
    };
    let term_err = |e| Error::io("cannot set up the terminal", e);
    let guard = terminal::TerminalGuard::enter().map_err(term_err)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout())).map_err(term_err)?;
    let size = terminal.size().map_err(term_err)?;
    let app = app::App::new(source, config, (size.width, size.height));
    let mut session = session::Session::new(app, worker);
    if let Some(feed) = feed {
        session.follow(feed);
    }
    let mut host = terminal::CrosstermHost::new(&guard).map_err(term_err)?;
    let result =
        session::run_loop(&mut terminal, &mut session, &mut host).map_err(input::terminal_gone);
    // Ended by a signal (SIGTERM, SIGHUP) over typed text: said, not
    // dropped in silence with exit 0 (found by an audit).
    let dropped = match (&result, session.app.quit) {
        (Ok(()), false) => session.app.text_at_risk(),
        _ => None,
    };
    // ratatui shows the cursor again when its terminal is dropped, and
    // prints to stderr if it cannot: a terminal that is gone cannot, and
    // the error below says so once.
    if terminal.show_cursor().is_ok() {
        drop(terminal);
    } else {
        std::mem::forget(terminal);
    }
    drop(guard);
    // Left unanswered by a second `q`, the grace or a signal.
    let unanswered = session.unanswered();
    session.shutdown();
    result?;
    if let Some(key) = dropped {
        return Err(Error::Interrupted(format!(
            "kvr tui was ended by a signal: your edit of {key} was not written"
        ))
        .into());
    }
    match unanswered {
        Some(writes) => Err(Error::OutcomeUnknown {
            message: format!(
                "kvr tui quit before {writes} was answered: it may or may not have been applied"
            ),
        }
        .into()),
        None => Ok(()),
    }
}
