//! Reading a range stream ahead of a slow consumer.
//!
//! A range stream holds a snapshot on the server, and the server ends a
//! stream its client leaves unread for its `--idle-timeout`. A reader that
//! pauses (`kvr --server URL range | less`, a script that stops to think)
//! would otherwise see the stream cut where a local file's range goes on.
//! So a thread of its own reads the response as fast as the server sends
//! it: into memory first ([`MEMORY_BYTES`]), and once that is full into an
//! unnamed temporary file (`TMPDIR`), up to [`SPOOL_BYTES`] unread in all.
//! Only past that does the stream wait on its reader again. The consumer
//! reads the same bytes in the same order, so what is printed does not
//! change; the server's snapshot is let go as soon as the stream is read.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Bytes read ahead into memory before the temporary file is used.
pub const MEMORY_BYTES: usize = 4 << 20;
/// Bytes read ahead in all (memory and file) before the stream waits for
/// its reader.
pub const SPOOL_BYTES: u64 = 256 << 20;
/// The size of one read from the response, and of one piece handed over.
const PIECE_BYTES: usize = 64 << 10;

/// The consuming end: reads what the thread read ahead, in order.
pub struct ReadAhead {
    shared: Arc<Shared>,
    /// The piece being consumed, and how far.
    piece: Vec<u8>,
    at: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when either side changed the state.
    changed: Condvar,
    memory_bytes: usize,
    spool_bytes: u64,
}

#[derive(Default)]
struct State {
    /// Pieces read ahead into memory: all older than the file's bytes.
    memory: VecDeque<Vec<u8>>,
    in_memory: usize,
    /// The temporary file, made when first needed; `None` also when it
    /// could not be made (the stream then waits on its reader sooner).
    file: Option<File>,
    /// Bytes written to the file and bytes of them consumed.
    spooled: u64,
    taken: u64,
    /// The stream's end: `Some(None)` at its end, `Some(Some(e))` when
    /// reading it failed (handed to the consumer once).
    end: Option<Option<io::Error>>,
    /// The consumer is gone: the thread stops reading.
    dropped: bool,
}

impl State {
    fn unread(&self) -> u64 {
        self.in_memory as u64 + (self.spooled - self.taken)
    }
}

impl ReadAhead {
    /// Starts reading `source` on a thread of its own.
    pub fn start<R: Read + Send + 'static>(source: R) -> ReadAhead {
        ReadAhead::with_bounds(source, MEMORY_BYTES, SPOOL_BYTES)
    }

    fn with_bounds<R: Read + Send + 'static>(
        source: R,
        memory_bytes: usize,
        spool_bytes: u64,
    ) -> ReadAhead {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            memory_bytes,
            spool_bytes,
        });
        let feeder = Arc::clone(&shared);
        let started = std::thread::Builder::new()
            .name("kvr-read-ahead".into())
            .spawn(move || feed(source, &feeder));
        if let Err(e) = started {
            // No thread: the consumer gets the error at its first read.
            shared.lock().end = Some(Some(e));
        }
        // The thread is not joined: it ends with the stream, or at its
        // next piece once the consumer is dropped.
        ReadAhead {
            shared,
            piece: Vec::new(),
            at: 0,
        }
    }

    /// The next piece, waiting for it; `Ok(None)` at the stream's end.
    fn next_piece(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut state = self.shared.lock();
        loop {
            if let Some(piece) = state.memory.pop_front() {
                state.in_memory -= piece.len();
                self.shared.changed.notify_all();
                return Ok(Some(piece));
            }
            if state.spooled > state.taken {
                let want = usize::try_from(state.spooled - state.taken)
                    .unwrap_or(usize::MAX)
                    .min(PIECE_BYTES);
                let mut piece = vec![0; want];
                let Some(file) = &state.file else {
                    return Err(io::Error::other("read-ahead file lost"));
                };
                file.read_exact_at(&mut piece, state.taken)?;
                state.taken += want as u64;
                if state.taken == state.spooled {
                    // All of the file is read: start it again from empty,
                    // giving its space back.
                    state.spooled = 0;
                    state.taken = 0;
                    if let Some(file) = &state.file {
                        file.set_len(0)?;
                    }
                }
                self.shared.changed.notify_all();
                return Ok(Some(piece));
            }
            match &mut state.end {
                Some(end) => return end.take().map_or(Ok(None), Err),
                None => state = self.shared.wait(state),
            }
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.piece.len() {
            match self.next_piece()? {
                Some(piece) => {
                    self.piece = piece;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.shared.lock().dropped = true;
        self.shared.changed.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic on the other side leaves a state that is still whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(state)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The thread: reads `source` to its end, handing each piece over.
fn feed<R: Read>(mut source: R, shared: &Shared) {
    loop {
        let mut piece = vec![0; PIECE_BYTES];
        let end = match source.read(&mut piece) {
            Ok(0) => Some(None),
            Ok(n) => {
                piece.truncate(n);
                None
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Some(Some(e)),
        };
        let mut state = shared.lock();
        if let Some(end) = end {
            state.end = Some(end);
            shared.changed.notify_all();
            return;
        }
        if !hand_over(piece, shared, state) {
            return;
        }
    }
}

/// Puts one piece where the consumer will find it after all before it,
/// waiting while the bound is reached; false once the consumer is gone.
fn hand_over(piece: Vec<u8>, shared: &Shared, mut state: MutexGuard<'_, State>) -> bool {
    loop {
        if state.dropped {
            return false;
        }
        let fits_memory =
            state.spooled == state.taken && state.in_memory + piece.len() <= shared.memory_bytes;
        if fits_memory {
            state.in_memory += piece.len();
            state.memory.push_back(piece);
            shared.changed.notify_all();
            return true;
        }
        if state.unread() + piece.len() as u64 <= shared.spool_bytes && spool(&piece, &mut state) {
            shared.changed.notify_all();
            return true;
        }
        // No room (or no file to put it in): wait for the consumer.
        state = shared.wait(state);
    }
}

/// Appends `piece` to the temporary file, making it if need be; false if
/// that failed (the piece then waits for room in memory).
fn spool(piece: &[u8], state: &mut State) -> bool {
    if state.file.is_none() {
        state.file = tempfile::tempfile().ok();
    }
    let Some(file) = &state.file else {
        return false;
    };
    if file.write_all_at(piece, state.spooled).is_err() {
        return false;
    }
    state.spooled += piece.len() as u64;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// A source of `len` numbered bytes, in reads of up to 1,000, counting
    /// what was read from it, then an error of `fail` if given.
    struct Numbered {
        len: usize,
        read: Arc<AtomicUsize>,
        fail: Option<io::ErrorKind>,
    }

    impl Read for Numbered {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let at = self.read.load(Ordering::SeqCst);
            if at == self.len {
                return match self.fail {
                    Some(kind) => Err(io::Error::new(kind, "cut")),
                    None => Ok(0),
                };
            }
            let n = buf.len().min(1000).min(self.len - at);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = ((at + i) % 251) as u8;
            }
            self.read.store(at + n, Ordering::SeqCst);
            Ok(n)
        }
    }

    fn numbered(len: usize, fail: Option<io::ErrorKind>) -> (Numbered, Arc<AtomicUsize>) {
        let read = Arc::new(AtomicUsize::new(0));
        let source = Numbered {
            len,
            read: Arc::clone(&read),
            fail,
        };
        (source, read)
    }

    fn check_numbered(bytes: &[u8], len: usize) {
        assert_eq!(bytes.len(), len);
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(*b, (i % 251) as u8, "byte {i}");
        }
    }

    /// Waits until `read` stops moving; what it settled at.
    fn settled(read: &AtomicUsize) -> usize {
        let mut last = usize::MAX;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let now = read.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
        panic!("the source never stopped being read");
    }

    #[test]
    fn a_paused_reader_gets_every_byte_in_order_through_memory_and_file() {
        let len = 40 * PIECE_BYTES + 123;
        let (source, read) = numbered(len, None);
        let mut ahead = ReadAhead::with_bounds(source, 2 * PIECE_BYTES, 64 * PIECE_BYTES as u64);
        // The reader pauses: the whole stream is read ahead meanwhile.
        assert_eq!(settled(&read), len);
        assert!(ahead.shared.lock().spooled > 0, "the file was not used");
        let mut out = Vec::new();
        ahead.read_to_end(&mut out).unwrap();
        check_numbered(&out, len);
    }

    #[test]
    fn reading_ahead_stops_at_the_bound_and_goes_on_as_the_reader_reads() {
        let len = 100 * PIECE_BYTES;
        let (source, read) = numbered(len, None);
        let spool = 8 * PIECE_BYTES as u64;
        let mut ahead = ReadAhead::with_bounds(source, 2 * PIECE_BYTES, spool);
        let ahead_by = settled(&read);
        // At most the bound, plus the piece the thread holds.
        assert!(ahead_by <= spool as usize + PIECE_BYTES, "{ahead_by}");
        assert!(ahead_by >= spool as usize - PIECE_BYTES, "{ahead_by}");
        let mut out = Vec::new();
        ahead.read_to_end(&mut out).unwrap();
        check_numbered(&out, len);
        // The file was emptied once read through.
        assert_eq!(ahead.shared.lock().spooled, 0);
    }

    #[test]
    fn a_stream_that_fails_gives_what_came_then_the_same_error() {
        let len = 20 * PIECE_BYTES + 7;
        let (source, read) = numbered(len, Some(io::ErrorKind::TimedOut));
        let mut ahead = ReadAhead::with_bounds(source, 2 * PIECE_BYTES, 64 * PIECE_BYTES as u64);
        settled(&read);
        let mut out = vec![0; len];
        ahead.read_exact(&mut out).unwrap();
        check_numbered(&out, len);
        let mut more = [0u8; 16];
        let err = ahead.read(&mut more).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn dropping_the_reader_stops_the_thread_at_its_next_piece() {
        let len = 1000 * PIECE_BYTES;
        let (source, read) = numbered(len, None);
        let ahead = ReadAhead::with_bounds(source, 2 * PIECE_BYTES, 4 * PIECE_BYTES as u64);
        let at_bound = settled(&read);
        drop(ahead);
        // The waiting thread wakes, sees the reader gone and reads no more
        // than the piece it was handed.
        assert!(settled(&read) <= at_bound + PIECE_BYTES);
    }
}
