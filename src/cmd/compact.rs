//! `kvr compact`: gives a file's free space back (see `store::compact`).

use super::check::local_only;
use super::store_options;
use crate::cli::Global;

pub fn run(g: &Global) -> anyhow::Result<()> {
    local_only(g, "compact")?;
    let (before, after) = crate::store::compact(&g.db, &store_options(g)?)?;
    println!(
        "{}: {before} bytes before, {after} bytes after ({:.1} MB given back)",
        g.db.display(),
        before.saturating_sub(after) as f64 / 1e6
    );
    Ok(())
}
