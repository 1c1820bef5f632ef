//! How long the browser's worker holds its source: a local file only
//! while it reads or writes.
//!
//! A redb file is locked by the process that has it open, so a browser
//! that kept it open for as long as it ran would shut out every other
//! kvr process on the file (a script's `kvr put` exits 3, `kvr serve`
//! cannot start) while the user only looks at the screen. sqlite3's shell
//! holds nothing while idle; so does this: the worker lets go of the file
//! once no call has come for [`IDLE_RELEASE`], and opens it again for the
//! next call, which then reads the file as it is now.
//!
//! Reopens for reading are read-only opens ([`Reopen::write`] false):
//! redb writes its header (and syncs) when it opens and closes a file for
//! writing, and reads must not write (README "Reads write nothing"). A
//! save or delete reopens the file for writing first. Over `--server`
//! nothing is held, and the worker keeps its client for good.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::kv::Kv;

/// How long the file stays open after the last call. Moving through keys
/// sends a call per key press, and a person reading a value, or pausing
/// between presses, rarely waits longer: under 2 s the file would be
/// closed and opened between presses (a few milliseconds each, and on
/// the first read after it redb's cache is cold). Longer, and a script
/// run in another terminal just after a look at the browser finds the
/// file taken more often. `KVR_TUI_RELEASE_MS` changes it (tests that
/// need the browser to keep the file use a long one).
pub const IDLE_RELEASE: Duration = Duration::from_secs(2);

/// [`IDLE_RELEASE`], or `KVR_TUI_RELEASE_MS`. A value that is not a
/// number of milliseconds is a usage error that names the variable, as a
/// bad `KVR_TIMEOUT` is: ignored, a typo would leave the file held for
/// the default time with nothing said.
pub fn idle_release() -> Result<Duration> {
    const VARIABLE: &str = "KVR_TUI_RELEASE_MS";
    let Some(value) = std::env::var_os(VARIABLE) else {
        return Ok(IDLE_RELEASE);
    };
    match value.to_str().and_then(|v| v.parse::<u64>().ok()) {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(Error::invalid(format!(
            "invalid value '{}' in the environment variable {VARIABLE}: it takes a whole \
             number of milliseconds, 1 or more (how long the browser keeps an idle --db file \
             open)",
            value.to_string_lossy()
        ))),
    }
}

/// How long a reopen waits for another process to let go of the file (at
/// least: a longer `--lock-timeout` is kept), as `--lock-timeout` waits:
/// a `kvr put` in another terminal holds it for milliseconds, and a wait
/// of a second covers it; a server holds it for good, and the browser
/// then says so after a second rather than seeming stuck.
pub const REOPEN_WAIT: Duration = Duration::from_secs(1);

/// What a (re)opening of a local file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reopen {
    /// For a save or delete: open for writing. Reads open read-only.
    pub write: bool,
    /// Wait up to [`REOPEN_WAIT`] for another process to let go of it.
    /// Not for the first open (the user's `--lock-timeout` decides, and
    /// an "in use" error comes before the screen is taken), nor after a
    /// wait that failed for an earlier call of the same batch.
    pub wait: bool,
}

/// Opens a local file again (see [`Reopen`]).
pub type Opener = Box<dyn FnMut(Reopen) -> Result<Box<dyn Kv>> + Send>;

/// The worker's source: open, or let go of until the next call.
pub struct Slot {
    kv: Option<Box<dyn Kv>>,
    /// Whether `kv` was opened for writing.
    writes: bool,
    /// `None`: a source that is held for good (a server's client).
    reopen: Option<Opener>,
    /// How long the file stays open without a call.
    idle: Duration,
}

impl Slot {
    /// A source held until the worker ends.
    pub fn held(kv: Box<dyn Kv>) -> Slot {
        Slot {
            kv: Some(kv),
            writes: true,
            reopen: None,
            idle: Duration::MAX,
        }
    }

    /// A file opened (for writing) by `first`, let go of once `idle`
    /// passes without a call ([`IDLE_RELEASE`]; tests take less) and
    /// opened again by `reopen`.
    pub fn file(first: Box<dyn Kv>, reopen: Opener, idle: Duration) -> Slot {
        Slot {
            kv: Some(first),
            writes: false,
            reopen: Some(reopen),
            idle,
        }
    }

    /// How long to wait for a call before letting go of the file; `None`
    /// when nothing is held that may go.
    pub fn idle(&self) -> Option<Duration> {
        (self.kv.is_some() && self.reopen.is_some()).then_some(self.idle)
    }

    /// Lets go of the file (redb's lock goes with the handle).
    pub fn release(&mut self) {
        if self.reopen.is_some() {
            self.kv = None;
        }
    }

    /// The source, opened again if it was let go of, or if it was opened
    /// read-only and `write` is wanted. `wait`: see [`Reopen::wait`].
    pub fn ready(&mut self, write: bool, wait: bool) -> Result<&dyn Kv> {
        let Some(reopen) = self.reopen.as_mut() else {
            return self.kv.as_deref().ok_or_else(gone);
        };
        if self.kv.is_none() || (write && !self.writes) {
            // One process holds one handle: a reader goes before a writer opens.
            self.kv = None;
            self.kv = Some(reopen(Reopen { write, wait })?);
            self.writes = write;
        }
        self.kv.as_deref().ok_or_else(gone)
    }
}

fn gone() -> Error {
    Error::Storage("the browser's source is closed".into())
}
