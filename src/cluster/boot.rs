//! Whether a restarted member can trust the records it keeps unsynced:
//! `DB.raft/boot`.
//!
//! The commit index (`committed`, see `log_store.rs`) and the `answered`
//! revision (`answered.rs`) are overwritten in place without a sync. A
//! `kill -9` keeps them (the page cache survives the process); a power
//! loss may not, and a member restarted with older ones replays less than
//! it had applied and served: its stale reads would answer below a
//! revision it gave before (SPEC: never). Without knowing which of the
//! two happened, a restarted member caught up with its cluster before its
//! first stale read, so one restarted alone, or while its leader was
//! gone, answered them 503 (SPEC: stale reads are always answered
//! locally). This record tells the two apart. It holds one line:
//!
//! - `boot ID`: the records were complete while the machine ran under the
//!   boot id ID (`/proc/sys/kernel/random/boot_id`, new at every boot). A
//!   start under the same boot id finds them as the last process left
//!   them, since only a reboot drops the page cache.
//! - `clean`: a clean stop synced them, so they hold in any boot.
//!
//! Nor is either trusted when the commit index record itself is gone or
//! torn under a log with entries (`start.rs`): a disk fault or a hand,
//! not a crash, but the replay would stop short all the same.
//!
//! Anything else (no record, a torn one, another boot's) is not trusted:
//! the member catches up with its cluster before its first stale read, as
//! before, and only then records its boot. A start that trusts `clean`
//! replaces it with its own boot at once, before Raft writes anything,
//! since from then on the records are unsynced again. The record is
//! replaced atomically (temporary file, fsync, rename, fsync directory).
//!
//! LazyFS drops unsynced data without a reboot, so a power-loss run there
//! must also change this record (`scripts/prove/lazyfs_cluster.py` does).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::answered::AnsweredRecord;
use super::log_store;

const NAME: &str = "boot";
const CLEAN: &str = "clean";
/// Where Linux gives the current boot's id.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The record of one member, and what this process has written to it.
pub struct BootRecord {
    dir: PathBuf,
    /// This boot's id; `None` where the system gives none (only a clean
    /// stop is then trusted).
    boot_id: Option<String>,
    /// Whether the record names this boot (or the records are trusted
    /// and need no new line).
    recorded: AtomicBool,
}

impl BootRecord {
    /// Reads the record in the log directory `dir`: the record and
    /// whether this start can trust the unsynced records (see the module
    /// header). A trusted `clean` is replaced by this boot's line before
    /// this returns.
    pub fn open(dir: &Path) -> io::Result<(BootRecord, bool)> {
        let boot_id = std::fs::read_to_string(BOOT_ID)
            .ok()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty());
        Self::open_as(dir, boot_id)
    }

    /// [`BootRecord::open`] under a given boot id.
    fn open_as(dir: &Path, boot_id: Option<String>) -> io::Result<(BootRecord, bool)> {
        let found = match std::fs::read_to_string(dir.join(NAME)) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            // Not valid text: torn, so not trusted.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => None,
            Err(e) => return Err(e),
        };
        let mine = boot_id.as_deref().map(boot_line);
        let found = found.as_deref().map(str::trim_end);
        let this_boot = found.is_some() && found == mine.as_deref().map(str::trim_end);
        let clean = found == Some(CLEAN);
        let record = BootRecord {
            dir: dir.to_path_buf(),
            boot_id,
            recorded: AtomicBool::new(this_boot),
        };
        if clean {
            // Trusted, and unsynced again from now on.
            match &mine {
                Some(line) => record.replace(line)?,
                None => record.replace("unknown boot\n")?,
            }
            record.recorded.store(mine.is_some(), Ordering::Release);
        }
        Ok((record, this_boot || clean))
    }

    /// Records that the unsynced records are complete in this boot: the
    /// member has caught up with its cluster since it started, or is new.
    /// Written once per process; later calls do nothing.
    pub fn record_caught_up(&self) -> io::Result<()> {
        let Some(id) = &self.boot_id else {
            return Ok(());
        };
        if self.recorded.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let written = self.replace(&boot_line(id));
        if written.is_err() {
            self.recorded.store(false, Ordering::Release);
        }
        written
    }

    /// At a clean stop, with Raft stopped (nothing more to commit) and
    /// the member caught up: syncs the log, then records `clean`,
    /// so the next start trusts the records in any boot. The `answered`
    /// record is sealed first ([`AnsweredRecord::seal`]: synced, and so
    /// is any raise after it, which this stop no longer covers).
    ///
    /// The log's segments are synced too: a leader may have committed and
    /// applied entries that a majority of followers synced before its own
    /// copy was, and after a reboot it replays them from its own log.
    pub fn record_clean_stop(&self, answered: &AnsweredRecord) -> io::Result<()> {
        answered.seal()?;
        for item in std::fs::read_dir(&self.dir)? {
            let path = item?.path();
            let segment = path.extension().is_some_and(|e| e == "seg");
            if segment || path.file_name().is_some_and(|n| n == log_store::COMMITTED) {
                File::open(&path)?.sync_data()?;
            }
        }
        self.replace(&format!("{CLEAN}\n"))
    }

    fn replace(&self, line: &str) -> io::Result<()> {
        let tmp = self.dir.join(format!("{NAME}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(line.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(NAME))?;
        File::open(&self.dir)?.sync_all()
    }
}

fn boot_line(id: &str) -> String {
    format!("boot {id}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, boot: &str) -> (BootRecord, bool) {
        BootRecord::open_as(dir, Some(boot.to_string())).unwrap()
    }

    fn text(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(NAME)).unwrap()
    }

    #[test]
    fn a_start_trusts_the_records_only_in_the_boot_that_recorded_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // No record: a new member, or one of an older build.
        let (first, trusted) = open(dir, "a");
        assert!(!trusted);
        assert!(
            !dir.join(NAME).exists(),
            "nothing recorded before catching up"
        );
        first.record_caught_up().unwrap();
        assert_eq!(text(dir), "boot a\n");
        // A restart in the same boot (a kill -9) trusts them.
        let (again, trusted) = open(dir, "a");
        assert!(trusted);
        again.record_caught_up().unwrap();
        // A restart after a reboot does not, and does not record its
        // boot until it has caught up: killed before, the next start in
        // this boot must not trust what the reboot may have dropped.
        let (rebooted, trusted) = open(dir, "b");
        assert!(!trusted);
        assert_eq!(text(dir), "boot a\n");
        drop(rebooted);
        let (killed_early, trusted) = open(dir, "b");
        assert!(!trusted);
        killed_early.record_caught_up().unwrap();
        assert_eq!(text(dir), "boot b\n");
        assert!(open(dir, "b").1);
    }

    #[test]
    fn a_clean_stop_is_trusted_in_any_boot_and_only_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join(log_store::COMMITTED), b"x").unwrap();
        std::fs::write(dir.join("00000000000000000001.seg"), b"entries").unwrap();
        let (record, _) = open(dir, "a");
        let answered = AnsweredRecord::open(dir).unwrap();
        record.record_clean_stop(&answered).unwrap();
        assert_eq!(text(dir), "clean\n");
        // Trusted after a reboot, and replaced at once: a power loss
        // later in this boot must not find `clean`.
        let (after, trusted) = open(dir, "b");
        assert!(trusted);
        assert_eq!(text(dir), "boot b\n");
        // Already recorded: catching up writes nothing new.
        after.record_caught_up().unwrap();
        assert!(!open(dir, "c").1);
    }

    #[test]
    fn a_torn_or_unknown_record_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for junk in [&b"boot "[..], b"", b"\xff\xfe", b"cle"] {
            std::fs::write(dir.join(NAME), junk).unwrap();
            assert!(!open(dir, "a").1, "{junk:?}");
        }
        // Without a boot id only a clean stop is trusted, once.
        std::fs::write(dir.join(NAME), "clean\n").unwrap();
        let (record, trusted) = BootRecord::open_as(dir, None).unwrap();
        assert!(trusted);
        record.record_caught_up().unwrap();
        assert!(!BootRecord::open_as(dir, None).unwrap().1);
    }
}
