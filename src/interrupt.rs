//! SIGINT and SIGTERM while `kvr --db F batch` writes into an existing
//! file: the batch stops at its next read or run, its write transaction
//! is aborted (redb gives back the pages it took) and the file is closed
//! cleanly, so it is left as it was, not "not closed cleanly" with the
//! batch's pages as dead space. (A batch into a new file removes the file
//! instead: `cmd::batch::NewFileGuard`.)
//!
//! The handler only sets a flag ([`requested`]); the batch's input reader
//! and its writer check it. A second signal exits at once: the file is
//! then recovered when it is next opened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Error, Result};

/// Set by the handlers of [`Guard`]: (SIGINT, SIGTERM).
fn flags() -> &'static (Arc<AtomicBool>, Arc<AtomicBool>) {
    static FLAGS: OnceLock<(Arc<AtomicBool>, Arc<AtomicBool>)> = OnceLock::new();
    FLAGS.get_or_init(|| {
        (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        )
    })
}

/// The signal that asked this process to stop, once a [`Guard`] caught one.
pub fn requested() -> Option<&'static str> {
    let (int, term) = flags();
    if int.load(Ordering::SeqCst) {
        Some("SIGINT")
    } else if term.load(Ordering::SeqCst) {
        Some("SIGTERM")
    } else {
        None
    }
}

/// The error a reader or writer stops with after `signal`.
pub fn error(signal: &str) -> Error {
    Error::io("interrupted", io_error(signal))
}

/// The same as an I/O error, for readers.
pub fn io_error(signal: &str) -> std::io::Error {
    // Not `ErrorKind::Interrupted`: readers retry that one.
    std::io::Error::other(format!("interrupted by {signal}"))
}

/// While alive, SIGINT and SIGTERM set [`requested`] instead of ending the
/// process; a second one ends it with exit 3 and `then`, a message saying
/// what that leaves.
pub struct Guard {
    ids: Vec<signal_hook::SigId>,
    signals: signal_hook::iterator::Handle,
}

impl Guard {
    pub fn install(then: String) -> Result<Guard> {
        let (int, term) = flags();
        let mut ids = Vec::new();
        for (signal, flag) in [(SIGINT, int), (SIGTERM, term)] {
            let id = signal_hook::flag::register(signal, flag.clone())
                .map_err(|e| Error::io("cannot install a signal handler", e))?;
            ids.push(id);
        }
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("cannot install a signal handler", e))?;
        let handle = signals.handle();
        std::thread::Builder::new()
            .name("kvr-interrupt".into())
            .spawn(move || {
                let mut seen = 0;
                for signal in signals.forever() {
                    seen += 1;
                    if seen >= 2 {
                        let name = if signal == SIGINT {
                            "SIGINT"
                        } else {
                            "SIGTERM"
                        };
                        eprintln!("kvr: error: interrupted again ({name}): {then}");
                        std::process::exit(3);
                    }
                }
            })
            .map_err(|e| Error::io("cannot start a thread", e))?;
        Ok(Guard {
            ids,
            signals: handle,
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.signals.close();
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
