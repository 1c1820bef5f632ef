//! Whose Raft log `DB.raft/` is: the member record (`DB.raft/member`).
//!
//! A Raft log was tied to its database file by name only. Another
//! member's file copied over `DB` (a restore of the wrong file, or of
//! another cluster's) then took `DB.raft` as its own: it replayed
//! another node's entries, votes and membership, and started as a node
//! whose log said otherwise. So the log records the cluster and node id
//! of the file it belongs to, written (replaced atomically, synced) when
//! a member first opens it; a file whose identity differs is refused by
//! every command, exit 3, before anything is read from the log or written
//! to either. A log from before this record (an older kvr's) has none:
//! it is taken as the file's, as before, and recorded at the next start.

use std::path::Path;

use super::log_store::{read_small, write_small};
use super::types::NodeId;
use crate::error::{Error, Result};

/// The record's file name in the log directory.
pub const NAME: &str = "member";

/// The cluster id and node id a member's file holds (`start::identity_of`).
pub type Identity = (String, NodeId);

/// Refuses the log in `dir` when its record names another member than
/// `identity`, the identity of the file `db` beside it. A log with no
/// record (an older kvr's) is anyone's.
pub fn check(dir: &Path, db: &Path, identity: &Identity) -> Result<()> {
    let path = dir.join(NAME);
    let recorded: Option<Identity> =
        read_small(&path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    match recorded {
        Some(owner) if owner != *identity => Err(Error::Corrupt(format!(
            "{} is the Raft log of node {} of cluster {}, not of {} (node {} of cluster {}): \
             another member's database file was put in its place, and taking that log would \
             replay another node's entries and votes into it; nothing was changed. Move {} \
             aside (it belongs beside the file it came from), or remove the node, delete its \
             file and join it again empty",
            dir.display(),
            owner.1,
            owner.0,
            db.display(),
            identity.1,
            identity.0,
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Records `identity` as the owner of the log in `dir`, unless it is
/// recorded already ([`check`] came first).
pub fn record(dir: &Path, identity: &Identity) -> Result<()> {
    let path = dir.join(NAME);
    if path.exists() {
        return Ok(());
    }
    write_small(dir, NAME, identity)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_refused_by_a_file_of_another_member_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let db = Path::new("n1.redb");
        let me: Identity = ("c0ffee".into(), 1);
        // No record (an older kvr's log): anyone's, until recorded.
        check(dir, db, &("other".into(), 7)).unwrap();
        record(dir, &me).unwrap();
        check(dir, db, &me).unwrap();
        record(dir, &("other".into(), 7)).unwrap(); // kept: recorded already
        for other in [("c0ffee".to_string(), 2), ("beef".to_string(), 1)] {
            let Err(Error::Corrupt(why)) = check(dir, db, &other) else {
                panic!("{other:?} took node 1's log");
            };
            assert!(
                why.contains("Raft log of node 1 of cluster c0ffee"),
                "{why}"
            );
        }
    }
}
