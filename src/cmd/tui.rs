//! `kvr tui`: the terminal browser (see [`crate::tui`]) on the source the
//! global options name.

use super::{open, open_file, remote, seconds, store_options};
use crate::cli::{Global, TuiArgs};
use crate::kv::{Kv, LocalKv};
use crate::limits::DEFAULT_MAX_VALUE_BYTES;
use crate::store::OpenMode;
use crate::tui::{REOPEN_WAIT, Reopen, Source};

/// Runs the browser. The source is opened on the browser's worker thread,
/// so the options move there. Over `--server` a second client follows the
/// server's change feed (a file has none); a file is held only while the
/// browser reads or writes it, and opened again as needed.
pub fn run(g: Global, _args: TuiArgs) -> anyhow::Result<()> {
    let (source, feed) = match remote(&g)? {
        Some(servers) => {
            let timeout = seconds(g.timeout, "--timeout")?;
            let client = super::client(&g, servers)?;
            // Progress lines at least every third of the timeout, so a
            // quiet stream never trips the client's read timeout.
            let feed = crate::tui::Feed::new(client, timeout.as_secs() / 3);
            let held = Source::Held(Box::new(move || open(&g, OpenMode::MustExist)));
            (held, Some(feed))
        }
        None => (Source::File(Box::new(move |how| contained(&g, how))), None),
    };
    crate::tui::run(source, feed)
}

/// [`open_local`] on the browser's worker thread, where a panic of the
/// storage engine (redb, on a damaged file) is an error that says so, as
/// for every command (`cmd::run`), not a Rust report over the screen.
fn contained(g: &Global, how: Reopen) -> crate::Result<Box<dyn Kv>> {
    match crate::panics::contain(|| open_local(g, how)) {
        Ok(opened) => opened,
        Err(caught) if caught.in_storage_engine => {
            Err(caught.into_error(&g.db, &format!("kvr --db {} check", g.db.display())))
        }
        Err(caught) => std::panic::resume_unwind(Box::new(caught.text)),
    }
}

/// The `--db` file, opened as every command opens it (a crashed server's
/// log is replayed first, and so on). For reading (the first open too,
/// whose description tells whether the user may write it) it is opened
/// read-only, as `get` and `range` open it, so that browsing writes
/// nothing; for writing, read-write. A file the user may only read (another user's, a
/// read-only mount) is opened read-only instead: browsing works, and a
/// save or delete says why nothing can be written. A reopen waits for
/// another process at least [`REOPEN_WAIT`].
fn open_local(g: &Global, how: Reopen) -> crate::Result<Box<dyn Kv>> {
    let mut opts = store_options(g)?;
    if how.wait {
        opts.lock_timeout = opts.lock_timeout.max(REOPEN_WAIT);
    }
    let open = |mode| -> crate::Result<Box<dyn Kv>> {
        Ok(Box::new(LocalKv {
            store: open_file(&g.db, mode, &opts)?,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }))
    };
    if !how.write {
        return open(OpenMode::ReadOnly);
    }
    match open(OpenMode::MustExist) {
        Err(crate::Error::Io { source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            open(OpenMode::ReadOnly)
        }
        other => other,
    }
}
