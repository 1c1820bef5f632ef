//! `kvr tui`: the terminal browser (see [`crate::tui`]) on the source the
//! global options name.

use crate::cli::{Global, TuiArgs};
use crate::store::OpenMode;

/// Runs the browser. The source is opened on the browser's worker thread,
/// so the options move there.
pub fn run(g: Global, _args: TuiArgs) -> anyhow::Result<()> {
    crate::tui::run(move || super::open(&g, OpenMode::MustExist))
}
