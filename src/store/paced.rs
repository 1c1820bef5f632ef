//! The database file as redb's backend, with its writeback paced: the
//! data is synced every [`PACE_BYTES`] written.
//!
//! A flush of `kvr serve` commits a memory table's worth of rewritten
//! B-tree pages (100-200 MB on a 1M-key store) as one burst of writes and
//! one sync at the end. A device's cache flush waits for everything
//! written before it, so while that burst went out, the write-ahead log's
//! syncs (the latency of every acknowledged write) waited too: syncs of
//! 50-160 ms, measured under a PUT load. Synced every 8 MiB, the burst goes
//! out in pieces and a log sync waits for one piece at most (PUT p99.9
//! 100-110 ms before, 15-18 ms after, with `wrk` at 64 connections).
//!
//! Extra syncs cannot weaken redb's commit protocol: they only make data
//! that redb has already written durable sooner. Used by `kvr serve` only
//! ([`super::StoreOptions::paced_writeback`]): a command has no log syncs
//! to protect, and the extra syncs cost a `kvr batch` of 1M pairs about
//! 12 % (3.38 s against 3.01 s, the mean of six alternating runs).

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// Bytes written between two syncs.
pub const PACE_BYTES: u64 = 8 << 20;

type IoResult<T> = std::result::Result<T, std::io::Error>;

/// A backend (redb's [`FileBackend`] but in tests) with paced syncs (see
/// the module header).
#[derive(Debug)]
pub struct Paced<B = FileBackend> {
    file: B,
    /// Bytes written since the last sync.
    unsynced: AtomicU64,
}

impl<B> Paced<B> {
    pub fn new(file: B) -> Paced<B> {
        Paced {
            file,
            unsynced: AtomicU64::new(0),
        }
    }
}

impl<B: StorageBackend> StorageBackend for Paced<B> {
    fn len(&self) -> IoResult<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> IoResult<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> IoResult<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> IoResult<()> {
        self.unsynced.store(0, Ordering::Relaxed);
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> IoResult<()> {
        self.file.write(offset, data)?;
        let len = data.len() as u64;
        if self.unsynced.fetch_add(len, Ordering::Relaxed) + len >= PACE_BYTES {
            self.sync_data()?;
        }
        Ok(())
    }

    fn close(&self) -> IoResult<()> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

/// Opens an existing database file through [`Paced`]. An empty file is
/// left to redb's own `open`, which refuses it (the backend form would
/// make a new database in it).
pub fn open(
    builder: &redb::Builder,
    path: &std::path::Path,
) -> Result<redb::Database, redb::DatabaseError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    if file.metadata()?.len() == 0 {
        drop(file);
        return builder.open(path);
    }
    builder.create_with_backend(Paced::new(FileBackend::new(file)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use redb::backends::InMemoryBackend;

    /// Counts the syncs that reach the backend under [`Paced`].
    #[derive(Debug, Default)]
    struct Counting {
        mem: InMemoryBackend,
        syncs: Arc<AtomicU64>,
    }

    impl StorageBackend for Counting {
        fn len(&self) -> IoResult<u64> {
            self.mem.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> IoResult<()> {
            self.mem.read(offset, out)
        }
        fn set_len(&self, len: u64) -> IoResult<()> {
            self.mem.set_len(len)
        }
        fn sync_data(&self) -> IoResult<()> {
            self.syncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn write(&self, offset: u64, data: &[u8]) -> IoResult<()> {
            self.mem.write(offset, data)
        }
    }

    #[test]
    fn writes_are_synced_every_pace_bytes_and_read_back_intact() {
        let syncs = Arc::new(AtomicU64::new(0));
        let paced = Paced::new(Counting {
            mem: InMemoryBackend::new(),
            syncs: syncs.clone(),
        });
        let chunk = vec![7u8; 1 << 20];
        let chunks = 3 * PACE_BYTES / chunk.len() as u64 + 1;
        paced.set_len(chunks * chunk.len() as u64).unwrap();
        for i in 0..chunks {
            paced.write(i * chunk.len() as u64, &chunk).unwrap();
        }
        assert_eq!(syncs.load(Ordering::Relaxed), 3);
        // A sync of the caller's restarts the count.
        paced.write(0, &chunk[..10]).unwrap();
        paced.sync_data().unwrap();
        assert_eq!(syncs.load(Ordering::Relaxed), 4);
        for _ in 1..PACE_BYTES / chunk.len() as u64 {
            paced.write(0, &chunk).unwrap();
        }
        assert_eq!(syncs.load(Ordering::Relaxed), 4);
        paced.write(0, &chunk).unwrap();
        assert_eq!(syncs.load(Ordering::Relaxed), 5);
        let mut back = vec![0u8; chunk.len()];
        paced
            .read((chunks - 1) * chunk.len() as u64, &mut back)
            .unwrap();
        assert_eq!(back, chunk);
    }

    #[test]
    fn an_empty_file_is_refused_not_made_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.redb");
        std::fs::write(&path, b"").unwrap();
        assert!(open(&redb::Builder::new(), &path).is_err());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
