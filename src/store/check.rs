//! `kvr check`: verifies a database file without changing a byte of it.
//!
//! redb's own integrity check ([`redb::Database::check_integrity`]) needs a
//! writable database and repairs what it can. So it runs on the file seen
//! through an [`Overlay`]: reads come from the file (opened read-only), writes
//! land in memory and are dropped at the end. Meanwhile a read-only redb
//! handle on the file holds it, so no kvr process writes to it during the
//! check (one that holds it already makes the check fail as "in use").
//!
//! Then every record of the `kv` table is decoded, and the `meta` counters
//! are compared with the data: the key count with the number of keys, the
//! database revision with the highest record revision; and the expiry index
//! with the records: one entry per key with an expiry, at that expiry and
//! revision, and no other entry.
//!
//! What a crash leaves is not damage: a file not closed cleanly is
//! checked as redb's repair leaves it (the repair runs on the overlay), and
//! a write-ahead log left by a server is read through as its replay will
//! read it. Each is a note (what the next open will do), unless the repair
//! or the replay would fail; then it is a problem.

use std::fs::File;
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableError};

use super::overlay::Overlay;
use super::record::{
    self, DB_FORMAT, EXPIRY, KV, META, META_DATABASE_ID, META_FORMAT, META_KEYS, META_REVISION,
};
use crate::error::{Error, Result};
use crate::jsonl::show_key;
use crate::limits::MAX_KEY_BYTES;

/// One problem: where it is (a table and key, the log, the file) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub place: String,
    pub what: String,
}

/// The outcome of [`check`].
#[derive(Debug, Default)]
pub struct Report {
    /// Keys found in the `kv` table.
    pub keys: u64,
    /// Of those, keys whose expiry has passed (by the clock when the check
    /// started): absent to reads, deleted by the next write.
    pub expired: u64,
    /// The database revision counter.
    pub revision: u64,
    /// A cluster member's state machine marker (`cluster::APPLIED`), which
    /// says what of its Raft log the file holds.
    pub cluster_marker: Option<Vec<u8>>,
    /// A cluster member's identity (`cluster::IDENTITY`, as stored); `None`
    /// for a file that is not a member's.
    pub cluster_identity: Option<Vec<u8>>,
    pub problems: Vec<Problem>,
    /// What is not wrong but worth saying: what the next open of the file
    /// will do to it (repair it, replay a log), which the check does not.
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a problem found at `place`.
    pub fn problem(&mut self, place: impl Into<String>, what: impl Into<String>) {
        self.problems.push(Problem {
            place: place.into(),
            what: what.into(),
        });
    }
}

/// Checks the database at `path`; see the module header. An error is
/// returned only when the check could not run (a missing file, a file in
/// use); everything wrong with the file itself is in the report.
pub fn check(path: &Path, cache_bytes: usize, lock_timeout: std::time::Duration) -> Result<Report> {
    let mut report = Report::default();
    match super::create::inspect(path)? {
        super::create::Found::Present => {}
        super::create::Found::Missing => return Err(crate::error::database_missing(path)),
        // Reads take an unfinished creation for a missing database (a
        // later `put` replaces it), but the file is there: a backup
        // truncated or zeroed must fail its check as damaged, not as "not
        // found".
        super::create::Found::Unfinished => {
            report.problem(
                "file",
                if empty(path)? {
                    "it is empty (0 bytes): no database was ever written to it (its creation \
                     never finished, or it was truncated)"
                } else {
                    "it holds no database: no magic number where the header starts, and \
                     nothing but zeros after it (its creation never finished, or it was \
                     zeroed)"
                },
            );
            return Ok(report);
        }
    }
    // redb panics on some damaged pages rather than failing: that is damage
    // to report, not a crash.
    let (cache, wait) = (cache_bytes, lock_timeout);
    match crate::panics::contain(|| check_present(path, cache, wait, report)) {
        Ok(report) => report,
        // A kvr bug is not damage to the file.
        Err(caught) if !caught.in_storage_engine => {
            std::panic::resume_unwind(Box::new(caught.text))
        }
        Err(caught) => {
            let mut report = Report::default();
            report.problem(
                "file",
                format!(
                    "the storage engine stopped reading it on an internal error ({}): the \
                     file is damaged",
                    caught.text
                ),
            );
            Ok(report)
        }
    }
}

/// [`check`] of a file that is there.
fn check_present(
    path: &Path,
    cache_bytes: usize,
    lock_timeout: std::time::Duration,
    mut report: Report,
) -> Result<Report> {
    // Held for the whole check: no kvr process opens the file to write meanwhile.
    // Another process's hold is waited out for `--lock-timeout`, as every
    // command's open does.
    let deadline = std::time::Instant::now() + lock_timeout;
    let opened = loop {
        match super::open_probe(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
            | Err(redb::DatabaseError::LockProtocolMismatch)
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(super::LOCK_RETRY_INTERVAL);
            }
            other => break other,
        }
    };
    let guard = match opened {
        Ok(db) => Some(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen)
        | Err(redb::DatabaseError::LockProtocolMismatch) => {
            return Err(super::in_use(path, lock_timeout));
        }
        // Reported below, if the file opens at all.
        Err(redb::DatabaseError::RepairAborted) => None,
        Err(e) => {
            report.problem(
                "file",
                format!("cannot be opened: {}", super::refusal(path, e)),
            );
            return Ok(report);
        }
    };
    let log_left = crate::wal::dir_of(path).exists();
    let file =
        File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let overlay = Overlay::new(file, path.to_path_buf())?;
    let mut db = match redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create_with_backend(overlay)
    {
        Ok(db) => db,
        Err(e) => {
            report.problem(
                "file",
                format!("cannot be opened: {}", super::refusal(path, e)),
            );
            return Ok(report);
        }
    };
    if guard.is_none() {
        // What a crash or `kill -9` of a writer leaves; redb's repair has
        // just run on the overlay, and the checks below see its outcome.
        report.notes.push(format!(
            "{} was not closed cleanly (its writer crashed or was killed): the next kvr \
             command that opens it repairs it; this check ran on that repair, made in memory \
             only",
            path.display()
        ));
    }
    match db.check_integrity() {
        Ok(true) => {}
        Ok(false) => report.problem(
            "file",
            "redb's integrity check found damage it could repair (only in memory: the file \
             is unchanged); open the file with a kvr command to repair it, or restore a backup",
        ),
        Err(e) => {
            report.problem(
                "file",
                format!("redb's integrity check failed: {}", Error::from(e)),
            );
            return Ok(report);
        }
    }
    if let Err(e) = check_records(&db, path, log_left, &mut report) {
        report.problem("file", format!("cannot be read: {e}"));
    }
    drop(guard);
    Ok(report)
}

/// Whether the file at `path` has no bytes.
fn empty(path: &Path) -> Result<bool> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    Ok(meta.len() == 0)
}

/// A leftover write-ahead log: the server that wrote it did not stop
/// cleanly, and its last writes are only in the log until a kvr command
/// replays it, as the next open does. The check never replays it: it reads
/// it through, as the replay will, onto the file at `revision` (its
/// counter): a log the replay would refuse is a problem, one it would
/// apply a note.
fn check_log(
    path: &Path,
    database: Option<u64>,
    revision: u64,
    report: &mut Report,
) -> Option<crate::wal::Pending> {
    let dir = crate::wal::dir_of(path);
    let place = format!("log {}", dir.display());
    let pending =
        crate::wal::check_owner(&dir, database).and_then(|()| crate::wal::pending(&dir, revision));
    let p = match pending {
        Ok(p) => p,
        Err(e) => {
            report.problem(place, e.to_string());
            return None;
        }
    };
    report.notes.push(match p.records {
        0 => format!(
            "{} is the write-ahead log of a server that did not stop cleanly; the file holds \
             all of it, and the next kvr command that opens the file removes it",
            dir.display()
        ),
        _ => format!(
            "a server did not stop cleanly: its write-ahead log {} holds {} request{} after \
             revision {revision}, up to revision {} at most, that the file does not hold yet; \
             any kvr command that opens the file replays them (the check changes nothing, so \
             its keys and revision are the file's, before that replay)",
            dir.display(),
            p.records,
            if p.records == 1 { "" } else { "s" },
            p.reach,
        ),
    });
    Some(p)
}

/// The counters and every record. With a leftover log (`log_left`) the
/// counters may trail the records: a flush in parts commits records before
/// the counters that cover them, which its last part writes, and a crash
/// between parts leaves the counters behind until the log is replayed
/// (which settles them). They may then differ by what the log holds beyond
/// the revision counter, and no more; with a log the replay would refuse,
/// they are not compared.
fn check_records(
    db: &redb::Database,
    path: &Path,
    log_left: bool,
    report: &mut Report,
) -> Result<()> {
    let rtx = db.begin_read()?;
    let meta = match rtx.open_table(META) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => {
            report.problem("table meta", "missing: this is not a kvr database");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let counter = |name: &str| -> Result<Option<u64>> { Ok(meta.get(name)?.map(|g| g.value())) };
    match counter(META_FORMAT)? {
        Some(DB_FORMAT) => {}
        other => report.problem(
            "table meta",
            format!("database format is {other:?}; this kvr reads format {DB_FORMAT}"),
        ),
    }
    report.cluster_marker = super::cluster::cluster_value(&rtx, super::cluster::APPLIED)?;
    report.cluster_identity = super::cluster::cluster_value(&rtx, super::cluster::IDENTITY)?;
    let revision = counter(META_REVISION)?;
    let keys_counter = counter(META_KEYS)?;
    if revision.is_none() {
        report.problem("table meta", "the revision counter is missing");
    }
    if keys_counter.is_none() {
        report.problem("table meta", "the keys counter is missing");
    }
    report.revision = revision.unwrap_or(0);
    let log = match log_left {
        true => check_log(path, counter(META_DATABASE_ID)?, report.revision, report),
        false => None,
    };
    let kv = match rtx.open_table(KV) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => {
            report.problem("table kv", "missing");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let expiry = match rtx.open_table(EXPIRY) {
        Ok(t) => Some(t),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let mut highest: Option<(u64, Vec<u8>)> = None;
    let mut last: Option<Vec<u8>> = None;
    let now = crate::types::now_ms();
    for item in kv.iter()? {
        let (k, v) = match item {
            Ok(kv) => kv,
            Err(e) => {
                let after = last.as_deref().map_or("the start".into(), show_key);
                report.problem(
                    format!("table kv after key {after}"),
                    format!("cannot be read: {}", Error::from(e)),
                );
                break;
            }
        };
        let key = k.value();
        report.keys += 1;
        let place = || format!("table kv, key {}", show_key(key));
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            report.problem(place(), format!("a key of {} bytes is invalid", key.len()));
        }
        match record::decode(v.value()) {
            Ok(rec) => {
                if highest.as_ref().is_none_or(|(r, _)| rec.revision > *r) {
                    highest = Some((rec.revision, key.to_vec()));
                }
                if rec.revision == 0 {
                    report.problem(place(), "revision 0: every put takes a revision from 1");
                }
                if let Some(at) = rec.expires_at_ms {
                    if at <= now {
                        report.expired += 1;
                    }
                    let indexed = match &expiry {
                        Some(t) => t.get((at, key))?.map(|g| g.value()),
                        None => None,
                    };
                    if indexed != Some(rec.revision) {
                        report.problem(
                            place(),
                            format!(
                                "expires at {at} but the expiry index has {}",
                                indexed.map_or("no entry".into(), |r| format!("revision {r}"))
                            ),
                        );
                    }
                }
            }
            Err(e) => report.problem(place(), format!("record does not decode: {e}")),
        }
        last = Some(key.to_vec());
    }
    if let Some(expiry) = &expiry {
        check_expiry_entries(expiry, &kv, report)?;
    }
    // What a log left may account for (see above).
    let (slack, reach) = match (log, log_left) {
        (Some(p), _) => (p.ops, p.reach),
        (None, true) => return Ok(()),
        (None, false) => (0, report.revision),
    };
    let beyond = |what: &str| match log_left {
        true => format!(", more than the log left can account for ({what})"),
        false => String::new(),
    };
    if let Some(counted) = keys_counter
        && counted.abs_diff(report.keys) > slack
    {
        report.problem(
            "table meta",
            format!(
                "the keys counter says {counted}, but table kv holds {} keys{}",
                report.keys,
                beyond(&format!("it holds {slack} operations"))
            ),
        );
    }
    if let (Some(rev), Some((max, key))) = (revision, highest)
        && max > rev.max(reach)
    {
        report.problem(
            "table meta",
            format!(
                "the revision counter {rev} is below revision {max} of key {}{}",
                show_key(&key),
                beyond(&format!("it reaches revision {reach}"))
            ),
        );
    }
    Ok(())
}

/// Every entry of the expiry index names a key whose record has that
/// expiry and revision (the other direction is checked per record).
fn check_expiry_entries(
    expiry: &redb::ReadOnlyTable<(u64, &'static [u8]), u64>,
    kv: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    report: &mut Report,
) -> Result<()> {
    for item in expiry.iter()? {
        let (k, v) = item?;
        let (at, key) = k.value();
        let found = match kv.get(key)? {
            Some(g) => record::decode(g.value())
                .ok()
                .map(|r| (r.revision, r.expires_at_ms)),
            None => None,
        };
        if found != Some((v.value(), Some(at))) {
            report.problem(
                format!("table expiry, key {}", show_key(key)),
                format!(
                    "the entry at {at} for revision {} has no such record",
                    v.value()
                ),
            );
        }
    }
    Ok(())
}
