//! SIGINT and SIGTERM while `kvr batch` runs. With `--db` the batch stops
//! at its next read or run, its write transaction is aborted (redb gives
//! back the pages it took) and the file is closed cleanly, so it is left
//! as it was, not "not closed cleanly" with the batch's pages as dead
//! space; with `--chunk-size` (`--db` or `--server`) it stops between
//! parts, the parts committed before staying. A batch into a new file
//! that has committed nothing yet removes the file instead ([`NewFile`]).
//!
//! The handler only sets a flag ([`requested`]); the batch's input reader
//! and its writer check it. A second signal exits at once, or once a
//! commit under way has ended (`store::commits_settled`), so that what it
//! says was applied is what the file holds: the file is then recovered
//! when it is next opened.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

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

fn signal_name(signal: i32) -> &'static str {
    if signal == SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// Held by the thread that reports a signal and ends the process: a
/// [`NewFile`] and a [`Guard`] both caught it, and only one says so.
static EXITING: Mutex<()> = Mutex::new(());

/// Prints `kvr: error: TEXT` and exits 3, once in the process.
fn exit_with(text: String) -> ! {
    let _once = EXITING.lock().unwrap_or_else(|e| e.into_inner());
    // Not `eprintln!`, which panics when stderr is gone.
    let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("kvr: error: {text}\n"));
    std::process::exit(3);
}

/// While alive, SIGINT and SIGTERM set [`requested`] instead of ending the
/// process; a second one ends it with exit 3 and the message of
/// [`Guard::set_then`], saying what that leaves.
pub struct Guard {
    ids: Vec<signal_hook::SigId>,
    signals: signal_hook::iterator::Handle,
    then: Arc<Mutex<Then>>,
}

/// What a second signal says: `text`, or, once a commit made after it was
/// set has ended, `after_commit`'s text (counted by
/// `store::commits_settled`). Nothing once `closed`: the guard was dropped
/// and the batch says itself how it ended.
struct Then {
    text: String,
    after_commit: Option<(u64, String)>,
    closed: bool,
}

impl Then {
    /// The text for `commits` commits made so far.
    fn say(&self, commits: u64) -> &str {
        match &self.after_commit {
            Some((before, text)) if commits > *before => text,
            _ => &self.text,
        }
    }
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
        let then = Arc::new(Mutex::new(Then {
            text: then,
            after_commit: None,
            closed: false,
        }));
        let text = then.clone();
        std::thread::Builder::new()
            .name("kvr-interrupt".into())
            .spawn(move || {
                let mut seen = 0;
                for signal in signals.forever() {
                    seen += 1;
                    if seen >= 2 {
                        // Held until exit: no commit starts after this one.
                        let commits = crate::store::commits_settled();
                        // Held until exit: the batch cannot report meanwhile.
                        let then = text.lock().unwrap_or_else(|e| e.into_inner());
                        if then.closed {
                            return;
                        }
                        // Nothing committed yet into a file this batch
                        // created: it holds nothing, and goes (as on a
                        // first signal, `NewFile`) rather than stay
                        // behind as `DB.creating`.
                        if *commits == 0
                            && let Some((db, ours)) = new_file_settled()
                        {
                            remove_new_file(&db, ours);
                            exit_with(format!(
                                "interrupted again ({}): stopped at once; the batch was not \
                                 applied; the new database file was removed",
                                signal_name(signal)
                            ));
                        }
                        let says = then.say(*commits);
                        exit_with(format!(
                            "interrupted again ({}): {says}",
                            signal_name(signal)
                        ));
                    }
                }
            })
            .map_err(|e| Error::io("cannot start a thread", e))?;
        Ok(Guard {
            ids,
            signals: handle,
            then,
        })
    }

    /// What a second signal says from now on: `text`, or `after_commit`
    /// once the next commit has ended (the part about to be written was
    /// applied).
    pub fn set_then(&self, text: String, after_commit: Option<String>) {
        let commits = *crate::store::commits_settled();
        *self.then.lock().unwrap_or_else(|e| e.into_inner()) = Then {
            text,
            after_commit: after_commit.map(|t| (commits, t)),
            closed: false,
        };
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.signals.close();
        // Waits for a second signal being reported (the process then
        // ends); later ones are not: the batch reports how it ended.
        self.then.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// While a batch writes into a database file it created and has committed
/// nothing, SIGINT and SIGTERM remove that file and exit 3 at once: the
/// file holds nothing, and an interrupted batch must not leave a new,
/// empty file behind (SPEC `batch`; a failed one removes it as it unwinds,
/// `LocalKv`'s drop). Disarmed once anything is committed (a part of
/// `--chunk-size`): a signal then leaves the file to the [`Guard`]
/// installed after this one, which stops the batch at a part boundary and
/// closes the file cleanly.
pub struct NewFile {
    armed: Arc<Mutex<bool>>,
    /// The device and inode of the file this batch created (at
    /// `DB.creating`, until its first commit renames it to DB), once it is
    /// known ([`NewFile::own`]): only that file is ever removed. A batch
    /// that waited for another process creating the same database removed
    /// DB, that process's file with its acknowledged writes (found by an
    /// audit).
    ours: Arc<Mutex<Owner>>,
    signals: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The file an armed [`NewFile`] made (its database path, device and
/// inode): a second signal, which the [`Guard`] takes, removes it too
/// while nothing is committed. Two signals at once on a loaded machine
/// could reach the guard first, which left `DB.creating` behind.
static NEW_FILE: Mutex<Option<(std::path::PathBuf, Owner)>> = Mutex::new(None);

/// The file of [`NEW_FILE`] once the open has settled (waiting for it up
/// to [`OPEN_SETTLES`], as a [`NewFile`] does): its path, device and
/// inode, if it is the batch's and nothing is committed into it.
fn new_file_settled() -> Option<(std::path::PathBuf, (u64, u64))> {
    let waited = std::time::Instant::now();
    loop {
        let state = NEW_FILE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match state {
            Some((db, Owner::Ours(dev, ino))) => return Some((db, (dev, ino))),
            Some((_, Owner::Opening)) if waited.elapsed() < OPEN_SETTLES => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            _ => return None,
        }
    }
}

/// Removes the new database file of `db` if it is still the one of device
/// and inode `ours`. The file is built under `DB.creating` until its first
/// commit gives it its name (`OpenMode::CreateOnCommit`): that one first,
/// so a rename in between leaves nothing. Each only if it is this batch's
/// file, which it still holds locked, so no other process has written to
/// it.
fn remove_new_file(db: &Path, ours: (u64, u64)) {
    let target = crate::store::create::creation_target(db);
    let is_ours = |path: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == ours)
    };
    let temp = crate::store::create::temp_path(db);
    if is_ours(&temp) {
        let _ = std::fs::remove_file(&temp);
    }
    if is_ours(&target) && std::fs::remove_file(&target).is_ok() {
        let _ = crate::store::create::sync_dir(crate::store::create::parent_dir(&target));
    }
}

/// What [`NewFile`] knows of the file the batch opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The open is under way: a signal then waits for it (it ends within
    /// milliseconds of one: waits for a lock stop on it).
    Opening,
    /// The batch made the file of this device and inode.
    Ours(u64, u64),
    /// The file is another process's, or the batch is over: nothing to
    /// remove, and the batch reports its own end.
    Settled,
}

/// The longest a signal waits for the open to settle [`Owner`].
const OPEN_SETTLES: std::time::Duration = std::time::Duration::from_secs(2);

impl NewFile {
    /// Before the file is created, so no signal falls in between; and
    /// before the [`Guard`], so every signal that sets [`requested`] also
    /// reaches this guard's thread ([`NewFile::finish`] relies on it).
    pub fn install(db: &Path) -> Result<NewFile> {
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("cannot install a signal handler", e))?;
        let handle = signals.handle();
        let armed = Arc::new(Mutex::new(true));
        let ours = Arc::new(Mutex::new(Owner::Opening));
        *NEW_FILE.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((db.to_path_buf(), Owner::Opening));
        let (flag, db, owned) = (armed.clone(), db.to_path_buf(), ours.clone());
        let thread = std::thread::Builder::new()
            .name("kvr-batch-signals".into())
            .spawn(move || {
                let Some(signal) = signals.forever().next() else {
                    return; // the batch is over
                };
                // A signal during the open: whether the file is the
                // batch's is known once it ends.
                let waited = std::time::Instant::now();
                let owner = loop {
                    let owner = *owned.lock().unwrap_or_else(|e| e.into_inner());
                    if owner != Owner::Opening || waited.elapsed() >= OPEN_SETTLES {
                        break owner;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                };
                // Held until exit: the batch cannot disarm past a removal.
                let armed = flag.lock().unwrap_or_else(|e| e.into_inner());
                if !*armed {
                    return; // a part is committed: the `Guard` stops the batch
                }
                let ours = match owner {
                    Owner::Ours(dev, ino) => (dev, ino),
                    // The batch ends on the signal and says so itself.
                    Owner::Settled => return,
                    // Still waiting for the file: nothing of this batch's
                    // to remove.
                    Owner::Opening => exit_with(format!(
                        "interrupted ({}): the batch was not applied",
                        signal_name(signal)
                    )),
                };
                remove_new_file(&db, ours);
                exit_with(format!(
                    "interrupted ({}): the batch was not applied; the new database file was \
                     removed",
                    signal_name(signal)
                ));
            })
            .map_err(|e| Error::io("cannot start a thread", e))?;
        Ok(NewFile {
            armed,
            ours,
            signals: handle,
            thread: Some(thread),
        })
    }

    /// After the database was opened: the file at `DB.creating` is this
    /// batch's when DB does not exist (a creation on commit has not
    /// published it; this process holds `DB.creating` locked, so no other
    /// process creates meanwhile), and from now on a signal removes only
    /// that file. When DB exists, another process made it: the guard is
    /// disarmed, and a signal removes nothing.
    pub fn own(&self, db: &Path) {
        use std::os::unix::fs::MetadataExt;
        let target = crate::store::create::creation_target(db);
        let temp = crate::store::create::temp_path(db);
        let owner = match (std::fs::metadata(&target), std::fs::metadata(&temp)) {
            (Err(_), Ok(m)) => Owner::Ours(m.dev(), m.ino()),
            _ => {
                self.disarm();
                Owner::Settled
            }
        };
        *self.ours.lock().unwrap_or_else(|e| e.into_inner()) = owner;
        if let Some((_, settled)) = NEW_FILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            *settled = owner;
        }
    }

    /// From now on a signal leaves the file alone.
    pub fn disarm(&self) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = false;
        *NEW_FILE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// After the batch. A batch that `failed` while armed after a signal
    /// stopped it: the signal is this guard's too, so its thread removes
    /// the file and exits, and this waits for that rather than race it with
    /// a second message. Otherwise the file stays.
    pub fn finish(mut self, failed: bool) {
        let armed = *self.armed.lock().unwrap_or_else(|e| e.into_inner());
        if failed
            && armed
            && requested().is_some()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join(); // returns only once disarmed, which it is not
        }
        self.disarm();
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        // The open failed (an interrupted wait for the file, say), or the
        // batch is over: a signal being handled leaves the end to it.
        let mut owner = self.ours.lock().unwrap_or_else(|e| e.into_inner());
        if *owner == Owner::Opening {
            *owner = Owner::Settled;
        }
        drop(owner);
        self.signals.close();
    }
}

/// While alive, SIGINT and SIGTERM end the process at once with exit 3 and
/// `kvr: error: interrupted (SIGNAL): TEXT`: for work that cannot stop
/// part-way and whose every step is crash-safe (a compaction: each step
/// commits atomically, so what a signal leaves is what `kill -9` would).
pub struct ExitAtOnce {
    signals: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExitAtOnce {
    pub fn install(text: String) -> Result<ExitAtOnce> {
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("cannot install a signal handler", e))?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("kvr-signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    exit_with(format!("interrupted ({}): {text}", signal_name(signal)));
                }
            })
            .map_err(|e| Error::io("cannot start a thread", e))?;
        Ok(ExitAtOnce {
            signals: handle,
            thread: Some(thread),
        })
    }
}

impl Drop for ExitAtOnce {
    /// Waits for a signal being reported (the process then ends).
    fn drop(&mut self) {
        self.signals.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
