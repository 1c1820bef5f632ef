//! The spare segment: a zero-filled segment (`spare.seg`) ready to become
//! the next one, so the writer never zero-fills on its path.
//!
//! The writer takes the spare whenever it starts a segment (at a seal, or
//! when a group does not fit in the current one). A helper thread then
//! makes a new one; a released segment is recycled into the spare when
//! none is there. Zero-filling 16 MiB and syncing it took 20-30 ms on the
//! writer's path, a stall of every write each time a segment filled.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};

/// Name of the spare segment: not `*.log`, so recovery never reads it.
pub(super) const SPARE: &str = "spare.seg";
/// Where the helper fills a spare before renaming it into place, so
/// `spare.seg` is always whole.
const FILLING: &str = "spare.tmp";
/// Pause before the helper tries again after a failed fill (a full disk):
/// the writer meanwhile zero-fills its own segments, and fails as clearly.
const RETRY: Duration = Duration::from_secs(1);

/// Whether `spare.seg` exists, shared by the writer, the helper and
/// [`super::Sealed::release`].
#[derive(Debug, Default)]
pub(super) struct Spare {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
pub(super) struct State {
    /// `spare.seg` exists.
    pub(super) ready: bool,
    stopping: bool,
}

impl Spare {
    pub(super) fn new(ready: bool) -> Arc<Spare> {
        Arc::new(Spare {
            state: Mutex::new(State {
                ready,
                stopping: false,
            }),
            wake: Condvar::new(),
        })
    }

    /// The state, locked: a rename into or out of `spare.seg` happens
    /// under it.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the helper the spare was taken.
    pub(super) fn taken(&self, mut state: MutexGuard<'_, State>) {
        state.ready = false;
        drop(state);
        self.wake.notify_all();
    }
}

/// The helper thread that keeps a spare ready; stopped and joined on drop.
#[derive(Debug)]
pub(super) struct Helper {
    spare: Arc<Spare>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    /// Starts the helper for the log in `dir`, whose segments are
    /// `segment_bytes` long.
    pub(super) fn start(
        dir: &Path,
        segment_bytes: u64,
        owner: u64,
        spare: Arc<Spare>,
    ) -> Result<Helper> {
        // A fill a crash interrupted.
        let _ = std::fs::remove_file(dir.join(FILLING));
        let (dir, shared) = (dir.to_path_buf(), spare.clone());
        let thread = std::thread::Builder::new()
            .name("kvr-wal-spare".into())
            .spawn(move || run(&dir, segment_bytes, owner, &shared))
            .map_err(|e| Error::io("cannot start the log's helper thread", e))?;
        Ok(Helper {
            spare,
            thread: Some(thread),
        })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.spare.lock().stopping = true;
        self.spare.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(dir: &Path, segment_bytes: u64, owner: u64, spare: &Spare) {
    let filling = dir.join(FILLING);
    loop {
        {
            let mut s = spare.lock();
            while s.ready && !s.stopping {
                s = spare.wake.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            if s.stopping {
                return;
            }
        }
        if !room_for(dir, segment_bytes) {
            // A spare would take the last free space, which a flush being
            // retried on a full disk needs; the writer makes its own.
            if !pause(spare) {
                return;
            }
            continue;
        }
        let made = fill_new(&filling, segment_bytes, owner).and_then(|()| {
            let mut s = spare.lock();
            if s.ready || s.stopping {
                // A released segment was recycled meanwhile.
                return std::fs::remove_file(&filling);
            }
            std::fs::rename(&filling, dir.join(SPARE))?;
            std::fs::File::open(dir)?.sync_all()?;
            s.ready = true;
            Ok(())
        });
        if made.is_err() {
            let _ = std::fs::remove_file(&filling);
            if !pause(spare) {
                return;
            }
        }
    }
}

/// Waits [`RETRY`] or until woken; false once stopping.
fn pause(spare: &Spare) -> bool {
    let s = spare.lock();
    if s.stopping {
        return false;
    }
    let s = spare.wake.wait_timeout(s, RETRY);
    !s.map_or(true, |(s, _)| s.stopping)
}

/// Whether the file system holding `dir` has room for two segments of
/// `size` (or cannot say).
fn room_for(dir: &Path, size: u64) -> bool {
    match rustix::fs::statvfs(dir) {
        Ok(st) => st.f_bavail.saturating_mul(st.f_frsize) >= size.saturating_mul(2),
        Err(_) => true,
    }
}

/// Creates `path` as a zero-filled segment of `size` bytes, synced.
fn fill_new(path: &Path, size: u64, owner: u64) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    super::perms::adopt(&file, path.parent().unwrap_or(Path::new(".")))?;
    super::fill(&mut file, size, owner, super::Pace::Pieces)
}
