//! `kvr tui`: the terminal browser (see [`crate::tui`]) on the source the
//! global options name.

use super::{remote, seconds};
use crate::cli::{Global, TuiArgs};
use crate::store::OpenMode;

/// Runs the browser. The source is opened on the browser's worker thread,
/// so the options move there. Over `--server` a second client follows the
/// server's change feed (a file has none).
pub fn run(g: Global, _args: TuiArgs) -> anyhow::Result<()> {
    let feed = match remote(&g)? {
        Some(servers) => {
            let timeout = seconds(g.timeout, "--timeout")?;
            let client = super::client(&g, servers)?;
            // Progress lines at least every third of the timeout, so a
            // quiet stream never trips the client's read timeout.
            Some(crate::tui::Feed::new(client, timeout.as_secs() / 3))
        }
        None => None,
    };
    crate::tui::run(move || open_for_browsing(&g), feed)
}

/// The source, for reading and writing; a file the user may only read
/// (another user's, a read-only mount) is opened read-only instead, as
/// `get` and `range` open it: browsing works, and a save or delete says
/// why nothing can be written.
fn open_for_browsing(g: &Global) -> crate::Result<Box<dyn crate::kv::Kv>> {
    match super::open(g, OpenMode::MustExist) {
        Err(crate::Error::Io { source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            super::open(g, OpenMode::ReadOnly)
        }
        other => other,
    }
}
