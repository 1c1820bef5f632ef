//! Terminal input read on a thread of its own, one poll at a time, with a
//! watchdog.
//!
//! When the terminal goes away (window closed, ssh dropped, tmux killed),
//! crossterm's reader can spin forever inside `poll` on a tty that only
//! returns end-of-file, and the run loop would never see the signal telling
//! it to quit. Here the loop waits on a channel instead. A poll that
//! overruns its own timeout by [`STUCK`] means the terminal is gone, and
//! the loop ends the browser. So does a terminal that reports a hang-up
//! before a poll (crossterm's `/dev/tty` source returns from a poll on a
//! closed terminal at its timeout, having spun through it; a process of
//! another session gets no SIGHUP to end it). The thread polls only when
//! the loop asks, so nothing reads the terminal while an external editor
//! has it.

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
                let tty = Tty::open();
                while let Ok(timeout) = asked.recv() {
                    if answer.send(poll(&tty, timeout)).is_err() {
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

/// The terminal crossterm reads: stdin when it is a terminal, else
/// `/dev/tty` (`None` when neither can be had: then only the watchdog
/// notices a terminal that is gone).
enum Tty {
    Stdin,
    Dev(std::fs::File),
    None,
}

impl Tty {
    fn open() -> Tty {
        use std::io::IsTerminal;
        if io::stdin().is_terminal() {
            return Tty::Stdin;
        }
        match std::fs::File::open("/dev/tty") {
            Ok(file) => Tty::Dev(file),
            Err(_) => Tty::None,
        }
    }

    /// Whether the terminal has hung up (closed, or gone with its window).
    fn hung_up(&self) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec};
        use std::os::fd::AsFd;
        let stdin = io::stdin();
        let fd = match self {
            Tty::Stdin => stdin.as_fd(),
            Tty::Dev(file) => file.as_fd(),
            Tty::None => return false,
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&now)) {
            Ok(_) => fds[0]
                .revents()
                .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL),
            Err(_) => false,
        }
    }
}

fn poll(tty: &Tty, timeout: Duration) -> Polled {
    if tty.hung_up() {
        return Err(gone());
    }
    if event::poll(timeout)? {
        event::read().map(Some)
    } else {
        Ok(None)
    }
}

fn gone() -> io::Error {
    io::Error::other("the terminal stopped answering (was it closed?)")
}

/// `err` as the browser's run loop ended with it, said the way the
/// watchdog says it when it was the terminal going away: a draw to a
/// terminal whose window closed fails with EIO (or ENXIO, or a broken
/// pipe), and it can come before a read notices. Only an I/O error of the
/// loop's own is taken for this; the store's errors are typed and pass
/// unchanged.
pub fn terminal_gone(err: anyhow::Error) -> anyhow::Error {
    use rustix::io::Errno;
    let lost = err.downcast_ref::<io::Error>().is_some_and(|e| {
        e.kind() == io::ErrorKind::BrokenPipe
            || [Errno::IO, Errno::NXIO]
                .iter()
                .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
    });
    if lost { gone().into() } else { err }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_to_a_closed_terminal_says_the_terminal_is_gone() {
        let eio = io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        let said = terminal_gone(eio.into()).to_string();
        assert_eq!(said, "the terminal stopped answering (was it closed?)");
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(
            terminal_gone(pipe.into())
                .to_string()
                .contains("stopped answering")
        );
    }

    #[test]
    fn other_errors_pass_unchanged() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let said = terminal_gone(denied.into()).to_string();
        assert!(!said.contains("stopped answering"), "{said}");
        // The store's own I/O errors are typed: a disk's EIO is not the
        // terminal's.
        let disk = io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        let store = crate::error::Error::io("cannot read the file", disk);
        let said = terminal_gone(store.into()).to_string();
        assert!(said.contains("cannot read the file"), "{said}");
    }
}
