//! The log takes the database file's permissions and owner, as sqlite's
//! `-wal` and `-journal` do: it holds the same data. Made with the umask
//! alone, a mode 0600 file's log was readable by every user (0755 and
//! 0644 under the usual umask), and the log of a server run as root on a
//! user's file was root's, which locked that user out of the file after a
//! crash (every command failed to remove the replayed log; found by an
//! audit).

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Creates the log directory `dir` of the database beside it with the
/// file's permission bits, plus search (`x`) where it may be read, as far
/// as the umask allows; owned by the file's owner when run as root.
pub(super) fn create_dir(dir: &Path) -> std::io::Result<()> {
    let db = super::identity::database_of(dir);
    let file =
        std::fs::metadata(&db).or_else(|_| std::fs::metadata(crate::store::create::temp_path(&db)));
    let Ok(file) = file else {
        return std::fs::create_dir_all(dir);
    };
    let mode = file.mode() & 0o666;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode | (mode & 0o444) >> 2)
        .create(dir)?;
    if as_root_for(&file) {
        std::os::unix::fs::chown(dir, Some(file.uid()), Some(file.gid()))?;
    }
    Ok(())
}

/// Gives a segment just created in `dir` the directory's permissions (no
/// `x`) and owner (see [`create_dir`]).
pub(super) fn adopt(segment: &File, dir: &Path) -> std::io::Result<()> {
    let dir = std::fs::metadata(dir)?;
    segment.set_permissions(std::fs::Permissions::from_mode(dir.mode() & 0o666))?;
    if as_root_for(&dir) {
        std::os::unix::fs::fchown(segment, Some(dir.uid()), Some(dir.gid()))?;
    }
    Ok(())
}

/// Whether this process runs as root and `meta` is another user's (or
/// group's): what it creates beside it is then given to them.
fn as_root_for(meta: &std::fs::Metadata) -> bool {
    rustix::process::geteuid().is_root()
        && (meta.uid() != rustix::process::geteuid().as_raw()
            || meta.gid() != rustix::process::getegid().as_raw())
}
