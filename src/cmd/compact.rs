//! `kvr compact`: gives a file's free space back to the file system
//! (redb's compaction, see `store::compact_database`). The file is opened
//! as any command opens it (a leftover log is replayed first), so no other
//! process may hold it.
//!
//! Each step of redb's compaction commits atomically, so a compaction that
//! fails (a full disk, an I/O error) leaves every record in the file, part
//! compacted at most; the file is then usually left not closed cleanly,
//! which the next command that opens it recovers. The errors say which.

use std::path::Path;

use super::check::local_only;
use super::store_options;
use crate::cli::{CompactArgs, Global};
use crate::error::{Error, Result};
use crate::store::OpenMode;

pub fn run(g: &Global, args: &CompactArgs) -> anyhow::Result<()> {
    local_only(g, "compact")?;
    let store = super::open_file(&g.db, OpenMode::MustExist, &store_options(g)?)
        .map_err(|e| e.for_file_command("compact"))?;
    // As the open left it: a crashed server's log replayed into it (the
    // size before that said the file grew, and "given back" what it had not).
    let before = size(&g.db)?;
    let stop = crate::interrupt::ExitAtOnce::install(format!(
        "compacting {} stopped part-way, leaving all its data in it (each step commits \
         atomically); if it was left not closed cleanly, the next kvr command that opens it \
         recovers it",
        g.db.display()
    ))?;
    let compacted = crate::store::compact_database(store.into_database()?, &g.db);
    drop(stop);
    if let Err(e) = compacted {
        return Err(failed(e, &g.db, before));
    }
    let after = size(&g.db)?;
    let done = format!(
        "{} was compacted ({before} bytes before, {after} bytes after)",
        g.db.display()
    );
    // redb does not report a failure to close (a write as it closes).
    if crate::store::left_unclean(&g.db) {
        return Err(Error::Storage(format!(
            "closing {} after compacting it failed ({before} bytes before, {after} bytes \
             after), leaving all its data in it but not closed cleanly: the next kvr command \
             that opens it recovers it",
            g.db.display()
        ))
        .into());
    }
    // Done by now: a failure to print (stdout on a full disk) says so, not
    // "disk full … retry" as if the compaction had failed.
    let summary = match args.json {
        // In the README's order (`json!` sorts its keys).
        true => format!("{{\"before\":{before},\"after\":{after}}}\n"),
        false => format!(
            "{}: {before} bytes before, {after} bytes after ({} given back)\n",
            g.db.display(),
            crate::units::human_bytes(
                usize::try_from(before.saturating_sub(after)).unwrap_or(usize::MAX)
            )
        ),
    };
    super::print_after_write(summary, &format!("{done} and closed"))?;
    Ok(())
}

/// The error `e` of a compaction of `db`, saying what it left (see the
/// module header); `e` stays the cause, for the exit code.
fn failed(e: Error, db: &Path, before: u64) -> anyhow::Error {
    let now = size(db).map_or_else(|_| "unknown".to_string(), |n| format!("{n} bytes"));
    let closed = match crate::store::left_unclean(db) {
        true => "not closed cleanly: the next kvr command that opens it recovers it",
        false => "closed cleanly",
    };
    anyhow::Error::from(e).context(format!(
        "compacting {} failed, leaving all its data in it ({before} bytes before, {now} now; \
         {closed})",
        db.display()
    ))
}

fn size(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => crate::error::database_missing(path),
            _ => Error::io(format!("cannot read {}", path.display()), e),
        })
}
