//! Terminal input read on a thread of its own, one poll at a time, with a
//! watchdog.
//!
//! When the terminal goes away (window closed, ssh dropped, tmux killed),
//! crossterm's reader can spin forever inside `poll` on a tty that only
//! returns end-of-file, and the run loop would never see the signal telling
//! it to quit. Here the loop waits on a channel instead. A poll that
//! overruns its own timeout by [`STUCK`] means the terminal is gone, and
//! the loop ends the browser. The thread polls only when the loop asks,
//! so nothing reads the terminal while an external editor has it.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event};

/// How far past its timeout a poll may run before the terminal counts as
/// gone. A live terminal answers within milliseconds of the timeout; the
/// margin is wide so that a machine too loaded to schedule the thread for
/// a while does not end the browser. This is the fallback: a closed
/// terminal normally sends SIGHUP, which ends the loop at once.
const STUCK: Duration = Duration::from_secs(10);

type Polled = io::Result<Option<Event>>;

/// The loop's handle on the input thread.
pub struct Input {
    requests: Sender<Duration>,
    results: Receiver<Polled>,
    /// The poll running now: when it was asked for, with what timeout.
    running: Option<(Instant, Duration)>,
    /// An event that arrived while waiting in [`Input::settle`].
    stash: Option<Event>,
}

impl Input {
    pub fn start() -> io::Result<Input> {
        let (requests, asked) = mpsc::channel::<Duration>();
        let (answer, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("kvr-tui-input".into())
            .spawn(move || {
                while let Ok(timeout) = asked.recv() {
                    if answer.send(poll(timeout)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Input {
            requests,
            results,
            running: None,
            stash: None,
        })
    }

    /// The next event within about `timeout`; an error once the terminal
    /// stopped answering.
    pub fn next(&mut self, timeout: Duration) -> Polled {
        if let Some(event) = self.stash.take() {
            return Ok(Some(event));
        }
        let (asked, limit) = match self.running {
            Some(running) => running,
            None => {
                self.requests.send(timeout).map_err(|_| gone())?;
                *self.running.insert((Instant::now(), timeout))
            }
        };
        match self.results.recv_timeout(timeout) {
            Ok(result) => {
                self.running = None;
                result
            }
            Err(RecvTimeoutError::Timeout) if asked.elapsed() > limit + STUCK => Err(gone()),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }

    /// Lets a poll in progress finish, keeping what it read, so that the
    /// terminal can be handed to an editor.
    pub fn settle(&mut self) -> io::Result<()> {
        let Some((_, limit)) = self.running else {
            return Ok(());
        };
        let result = self
            .results
            .recv_timeout(limit + STUCK)
            .map_err(|_| gone())?;
        self.running = None;
        self.stash = result?;
        Ok(())
    }
}

fn poll(timeout: Duration) -> Polled {
    if event::poll(timeout)? {
        event::read().map(Some)
    } else {
        Ok(None)
    }
}

fn gone() -> io::Error {
    io::Error::other("the terminal stopped answering (was it closed?)")
}
