//! The log behind the engine: where a write group is made durable before it
//! is applied to the memory table. The local write-ahead log (`crate::wal`)
//! implements it; a replicated log can take its place.

use crate::error::Result;
use crate::wal::LogRecord;

/// Releases the part of a log that a flushed table covered: run by the
/// flush thread once that table is durable in the store.
pub type Release = Box<dyn FnOnce() -> Result<()> + Send>;

/// An append-only log of applied requests.
pub trait Log: Send {
    /// Appends one record per request (its first revision, operations and
    /// idempotency record) and makes them durable before returning. On
    /// error nothing counts as appended.
    fn append(&mut self, records: &[LogRecord<'_>]) -> Result<()>;

    /// Ends the stretch of log written so far: later appends go to a new
    /// stretch, and the returned [`Release`] drops the old one.
    fn seal(&mut self) -> Result<Release>;

    /// Whether a failed append could not be undone: no more writes.
    fn is_broken(&self) -> bool;

    /// Why the last append was refused when the log or the database file
    /// lost its name while the server ran (`wal/identity.rs`), or the log
    /// could not go on (no new segment): appends are refused for now.
    fn lost(&self) -> Option<String> {
        None
    }

    /// How often [`Log::check`] wants to run while no append comes, if it
    /// does anything.
    fn check_every(&self) -> Option<std::time::Duration> {
        None
    }

    /// Looks at the log while no append comes: it may start or stop
    /// refusing appends ([`Log::lost`]) as an append would.
    fn check(&mut self) {}

    /// Whether a replay of this log gives the same state whatever the
    /// store already holds of its writes (it records what each write did,
    /// not what was asked): then a flush may commit a table in parts
    /// (`flush.rs`). Not a Raft log, whose entries are decided at apply.
    fn logs_outcomes(&self) -> bool {
        false
    }

    /// Deletes the whole log, when everything in it is durable in the store
    /// (a clean shutdown).
    fn remove(self: Box<Self>) -> Result<()>;
}

/// The local write-ahead log: a seal starts a new segment, a release
/// deletes (or recycles) the segments a flushed table covered.
impl Log for crate::wal::Wal {
    fn append(&mut self, records: &[LogRecord<'_>]) -> Result<()> {
        crate::wal::Wal::append_records(self, records)
    }

    fn seal(&mut self) -> Result<Release> {
        let sealed = crate::wal::Wal::seal(self)?;
        Ok(Box::new(move || sealed.release()))
    }

    fn is_broken(&self) -> bool {
        crate::wal::Wal::is_broken(self)
    }

    fn lost(&self) -> Option<String> {
        crate::wal::Wal::lost(self).map(str::to_string)
    }

    fn check_every(&self) -> Option<std::time::Duration> {
        Some(crate::wal::CHECK_EVERY)
    }

    fn check(&mut self) {
        crate::wal::Wal::check(self);
    }

    fn logs_outcomes(&self) -> bool {
        true
    }

    fn remove(self: Box<Self>) -> Result<()> {
        crate::wal::Wal::remove(*self)
    }
}

/// No log of the engine's own: in cluster mode the Raft log has made every
/// entry durable before it is applied, and it is purged by Raft snapshots
/// (which flush first), not by releases.
#[derive(Debug, Default)]
pub struct NoLog;

impl Log for NoLog {
    fn append(&mut self, _records: &[LogRecord<'_>]) -> Result<()> {
        Ok(())
    }

    fn seal(&mut self) -> Result<Release> {
        Ok(Box::new(|| Ok(())))
    }

    fn is_broken(&self) -> bool {
        false
    }

    fn remove(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
