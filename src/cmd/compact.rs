//! `kvr compact`: gives a file's free space back to the file system
//! (redb's compaction, see `store::compact_database`). The file is opened
//! as any command opens it (a leftover log is replayed first), so no other
//! process may hold it.

use std::path::Path;

use super::check::local_only;
use super::store_options;
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::store::OpenMode;

pub fn run(g: &Global) -> anyhow::Result<()> {
    local_only(g, "compact")?;
    let before = size(&g.db)?;
    let (store, _) = crate::engine::open_store(&g.db, OpenMode::MustExist, &store_options(g)?)
        .map_err(|e| e.for_file_command("compact"))?;
    crate::store::compact_database(store.into_database()?, &g.db)?;
    let after = size(&g.db)?;
    super::print_out(format!(
        "{}: {before} bytes before, {after} bytes after ({:.1} MB given back)\n",
        g.db.display(),
        before.saturating_sub(after) as f64 / 1e6
    ))?;
    Ok(())
}

fn size(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::DatabaseMissing {
                path: path.to_path_buf(),
            },
            _ => Error::io(format!("cannot read {}", path.display()), e),
        })
}
