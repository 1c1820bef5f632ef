//! A storage backend over a file it never writes: redb sees a writable
//! database, whose writes land in memory blocks that shadow the file and
//! are dropped with it. `kvr check` runs redb's integrity check (which
//! repairs what it can) through it, and read commands open the file
//! through it (`read_only.rs`): redb writes its header when it opens and
//! closes a database, even for reads only.
//!
//! redb's file locks go to a [`FileBackend`] over the same file, when one
//! is given: an overlay database then holds the file as a writing redb
//! handle does, so that no other process opens it meanwhile.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use crate::error::Error;

/// Granularity of [`Overlay`]'s copy-on-write blocks.
const BLOCK: u64 = 4096;

/// A storage backend over a read-only file: writes go to memory blocks
/// that shadow the file; nothing is ever written to it. See the module header.
pub struct Overlay {
    file: File,
    path: PathBuf,
    state: Mutex<OverlayState>,
    /// Takes redb's locks on the file, if given (see the module header).
    locks: Option<FileBackend>,
}

struct OverlayState {
    /// The backend's length.
    len: u64,
    /// Bytes of the file below this offset are visible (a shrink hides the rest).
    visible: u64,
    blocks: HashMap<u64, Vec<u8>>,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay").field("path", &self.path).finish()
    }
}

impl Overlay {
    pub fn new(file: File, path: PathBuf) -> crate::error::Result<Overlay> {
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
            .len();
        Ok(Overlay {
            file,
            path,
            state: Mutex::new(OverlayState {
                len,
                visible: len,
                blocks: HashMap::new(),
            }),
            locks: None,
        })
    }

    /// Has `locks` (a backend over the same file, opened for writing so
    /// that it can take exclusive locks) take redb's locks.
    pub fn with_locks(mut self, locks: FileBackend) -> Overlay {
        self.locks = Some(locks);
        self
    }

    fn locks(&self) -> Result<&FileBackend, BackendError> {
        self.locks.as_ref().ok_or(BackendError::Unsupported)
    }

    fn state(&self) -> std::io::Result<std::sync::MutexGuard<'_, OverlayState>> {
        self.state
            .lock()
            .map_err(|_| std::io::Error::other("overlay lock poisoned"))
    }

    /// Reads `out.len()` bytes at `offset` of the file as it is visible:
    /// zeros past `visible`.
    fn read_file(&self, visible: u64, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let n = visible.saturating_sub(offset).min(out.len() as u64) as usize;
        self.file.read_exact_at(&mut out[..n], offset)?;
        out[n..].fill(0);
        Ok(())
    }
}

impl StorageBackend for Overlay {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.state()?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let st = self.state()?;
        if offset.saturating_add(out.len() as u64) > st.len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut done = 0usize;
        while done < out.len() {
            let pos = offset + done as u64;
            let (block, within) = (pos / BLOCK, (pos % BLOCK) as usize);
            let n = (BLOCK as usize - within).min(out.len() - done);
            match st.blocks.get(&block) {
                Some(b) => out[done..done + n].copy_from_slice(&b[within..within + n]),
                None => {
                    // Read the run of blocks up to the next shadowed one in one call.
                    let mut end = done + n;
                    let mut next = block + 1;
                    while end < out.len() && !st.blocks.contains_key(&next) {
                        end = (end + BLOCK as usize).min(out.len());
                        next += 1;
                    }
                    self.read_file(st.visible, pos, &mut out[done..end])?;
                    done = end;
                    continue;
                }
            }
            done += n;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut st = self.state()?;
        if len < st.len {
            st.visible = st.visible.min(len);
            st.blocks.retain(|&b, _| b * BLOCK < len);
            if let Some(b) = st.blocks.get_mut(&(len / BLOCK)) {
                b[(len % BLOCK) as usize..].fill(0);
            }
        }
        st.len = len;
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut st = self.state()?;
        let end = offset.saturating_add(data.len() as u64);
        if end > st.len {
            st.len = end;
        }
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (block, within) = (pos / BLOCK, (pos % BLOCK) as usize);
            let n = (BLOCK as usize - within).min(data.len() - done);
            if !st.blocks.contains_key(&block) {
                let mut b = vec![0u8; BLOCK as usize];
                self.read_file(st.visible, block * BLOCK, &mut b)?;
                st.blocks.insert(block, b);
            }
            if let Some(b) = st.blocks.get_mut(&block) {
                b[within..within + n].copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
        Ok(())
    }

    fn close(&self) -> std::io::Result<()> {
        self.locks.as_ref().map_or(Ok(()), |l| l.close())
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.locks()?.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.locks()?.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks()?.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks()?.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks()?.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.locks()?.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use redb::StorageBackend;

    use super::*;

    /// Reads see the writes over the file; the file never changes.
    #[test]
    fn overlay_shadows_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let original: Vec<u8> = (0..3 * BLOCK + 100).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).unwrap();
        let o = Overlay::new(File::open(&path).unwrap(), path.clone()).unwrap();
        o.write(BLOCK - 2, &[9; 4]).unwrap();
        let mut out = vec![0; original.len()];
        o.read(0, &mut out).unwrap();
        let mut expected = original.clone();
        expected[BLOCK as usize - 2..BLOCK as usize + 2].fill(9);
        assert_eq!(out, expected);
        // Shrink, then grow: the hidden tail reads as zeros.
        o.set_len(BLOCK + 10).unwrap();
        o.set_len(4 * BLOCK).unwrap();
        let mut out = vec![0; 4 * BLOCK as usize];
        o.read(0, &mut out).unwrap();
        assert_eq!(&out[..BLOCK as usize + 2], &expected[..BLOCK as usize + 2]);
        assert_eq!(
            &out[BLOCK as usize + 2..BLOCK as usize + 10],
            &original[BLOCK as usize + 2..BLOCK as usize + 10]
        );
        assert!(out[BLOCK as usize + 10..].iter().all(|&b| b == 0));
        assert!(o.read(4 * BLOCK - 1, &mut [0; 2]).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
}
