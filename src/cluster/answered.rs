//! The highest revision a member answered a write with before it had
//! applied it: `DB.raft/answered`.
//!
//! A follower answers a forwarded write once it has applied it, or, when
//! it cannot within an election timeout (`Node::apply_answered`), with the
//! revision the leader gave it before it has; meanwhile its refusals carry
//! that revision, not its older applied one (`State::revision`). Killed in
//! that window, it came back behind the revision it had answered, and its
//! refusals went below it until it caught up with its leader (SPEC: a
//! node's `X-Kvr-Revision` never goes backwards across its restarts). The
//! record keeps that floor across a `kill -9`; it is written only for such
//! answers.
//!
//! **Format.** The revision (`u64`, little-endian), then a CRC-32 of those
//! eight bytes (`u32`, little-endian), overwritten in place when an answer
//! raises it: one `pwrite` per such answer, not synced. A `kill -9` keeps
//! it (the page cache survives the process). After a power loss it may be
//! older or torn (a torn one fails its check and reads as 0); then, as
//! with the commit index recorded beside it, the node is behind until it
//! has applied a read index of its cluster: stale reads wait for that
//! (`Node::recovered`), refusals do not. Syncing it would add an
//! `fdatasync` to each such answer. `boot.rs` records when it can be
//! trusted (the same boot, or a clean stop, which syncs it first).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub const NAME: &str = "answered";

/// The record, open for rewriting.
pub struct AnsweredRecord {
    /// The file, and the revision last written to it.
    file: Mutex<(File, u64)>,
    /// Set by a clean stop (see `boot.rs`): the record is synced, and so
    /// is each raise after it.
    sealed: AtomicBool,
}

impl AnsweredRecord {
    /// Opens (or creates) the record in the log directory `dir`, and reads
    /// the revision it holds (0 when new or torn).
    pub fn open(dir: &Path) -> io::Result<AnsweredRecord> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join(NAME))?;
        let mut bytes = [0u8; 12];
        let revision = match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => decode(&bytes).unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        Ok(AnsweredRecord {
            file: Mutex::new((file, revision)),
            sealed: AtomicBool::new(false),
        })
    }

    /// The revision recorded.
    pub fn recorded(&self) -> u64 {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Records `revision` if it is above the one recorded.
    pub fn raise(&self, revision: u64) -> io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let (file, written) = &mut *guard;
        if revision <= *written {
            return Ok(());
        }
        file.write_all_at(&encode(revision), 0)?;
        if self.sealed.load(Ordering::Acquire) {
            file.sync_data()?;
        }
        *written = revision;
        Ok(())
    }

    /// Syncs the record, and makes every later raise sync itself: a clean
    /// stop records that this record holds in any boot (`boot.rs`), and a
    /// write still answered after it must not be lost to a power loss.
    pub fn seal(&self) -> io::Result<()> {
        let guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        self.sealed.store(true, Ordering::Release);
        guard.0.sync_data()
    }
}

fn encode(revision: u64) -> [u8; 12] {
    let value = revision.to_le_bytes();
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&value);
    bytes[8..].copy_from_slice(&crc32fast::hash(&value).to_le_bytes());
    bytes
}

fn decode(bytes: &[u8; 12]) -> Option<u64> {
    let (value, crc) = bytes.split_at(8);
    let crc = u32::from_le_bytes(crc.try_into().ok()?);
    let value: [u8; 8] = value.try_into().ok()?;
    (crc32fast::hash(&value) == crc).then(|| u64::from_le_bytes(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_only_rises_and_is_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let record = AnsweredRecord::open(tmp.path()).unwrap();
        assert_eq!(record.recorded(), 0);
        record.raise(41).unwrap();
        record.raise(7).unwrap();
        drop(record);
        let record = AnsweredRecord::open(tmp.path()).unwrap();
        assert_eq!(record.recorded(), 41);
        record.raise(42).unwrap();
        assert_eq!(AnsweredRecord::open(tmp.path()).unwrap().recorded(), 42);
    }

    #[test]
    fn a_torn_or_short_record_reads_as_0() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(NAME);
        let mut torn = encode(1_000);
        torn[3] ^= 0xff;
        std::fs::write(&path, torn).unwrap();
        assert_eq!(AnsweredRecord::open(tmp.path()).unwrap().recorded(), 0);
        std::fs::write(&path, &encode(1_000)[..11]).unwrap();
        let record = AnsweredRecord::open(tmp.path()).unwrap();
        assert_eq!(record.recorded(), 0);
        // And is rewritten whole by the next raise.
        record.raise(5).unwrap();
        assert_eq!(AnsweredRecord::open(tmp.path()).unwrap().recorded(), 5);
    }
}
