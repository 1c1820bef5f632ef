//! Batch input parsed on several threads, yielding exactly what
//! [`OpReader`](super::OpReader) yields, in the same order.
//!
//! One thread cuts the input into chunks of whole lines (counting them, so
//! each chunk knows the number of its first line); a few threads parse the
//! chunks; the reader hands out each chunk's results in input order.
//!
//! Why: `kvr batch --db` sorts a run before it writes any of it, so a
//! 1M-line import (one run) parsed every line on one thread while the
//! other core waited; parsing was about a third of the import's time.

use std::io::BufRead;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use super::{append_line_capped, blank, line_too_long, max_line_bytes, parse_line};
use crate::error::{Error, Result};
use crate::types::Op;

/// Input bytes per chunk: a chunk ends at the first line end after this.
/// Large enough that handing chunks between threads costs nothing next to
/// parsing them, small enough that the chunks in flight stay a few MiB.
const CHUNK_BYTES: usize = 1 << 20;

/// Parsing threads at most: beyond the cores a machine has they only
/// compete with the writer.
const MAX_THREADS: usize = 4;

/// One chunk's parsed lines, as [`OpReader`](super::OpReader) yields them.
type Parsed = Vec<Result<Op>>;

/// A chunk of whole lines to parse, the number of the line before it, and
/// where its result goes.
struct Job {
    text: Vec<u8>,
    lines_before: u64,
    done: SyncSender<Parsed>,
}

/// What the cutting thread passes on, in input order.
enum Chunk {
    Parsing(Receiver<Parsed>),
    /// The input ended (after an error, if the chunk before ended with one).
    End,
}

/// Parses batch input on several threads (see the module header).
pub struct ParallelOpReader {
    chunks: Receiver<Chunk>,
    current: std::vec::IntoIter<Result<Op>>,
    ended: bool,
}

impl ParallelOpReader {
    /// Starts reading `reader` on a thread of its own, parsing on up to
    /// one thread per core.
    pub fn new<R: BufRead + Send + 'static>(
        reader: R,
        max_value_bytes: usize,
    ) -> Result<ParallelOpReader> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS);
        ParallelOpReader::with_threads(reader, max_value_bytes, threads)
    }

    fn with_threads<R: BufRead + Send + 'static>(
        reader: R,
        max_value_bytes: usize,
        threads: usize,
    ) -> Result<ParallelOpReader> {
        let threads = threads.max(1);
        let spawn_error = |e| Error::io("cannot start a thread to parse the batch", e);
        let (job_tx, job_rx) = sync_channel::<Job>(threads);
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..threads {
            let jobs = Arc::clone(&job_rx);
            std::thread::Builder::new()
                .name("kvr-batch-parse".into())
                .spawn(move || parse_jobs(&jobs, max_value_bytes))
                .map_err(spawn_error)?;
        }
        let (chunk_tx, chunk_rx) = sync_channel(2 * threads);
        std::thread::Builder::new()
            .name("kvr-batch-cut".into())
            .spawn(move || cut(reader, max_value_bytes, &job_tx, &chunk_tx))
            .map_err(spawn_error)?;
        Ok(ParallelOpReader {
            chunks: chunk_rx,
            current: Vec::new().into_iter(),
            ended: false,
        })
    }
}

impl Iterator for ParallelOpReader {
    type Item = Result<Op>;

    fn next(&mut self) -> Option<Result<Op>> {
        loop {
            if let Some(op) = self.current.next() {
                return Some(op);
            }
            if self.ended {
                return None;
            }
            // A thread that stopped without saying so (a panic) must not
            // look like the end of the input: that would apply part of it.
            let stopped = || {
                Some(Err(Error::Internal(
                    "a thread parsing the batch stopped".into(),
                )))
            };
            let parsed = match self.chunks.recv() {
                Ok(Chunk::Parsing(parsed)) => parsed,
                Ok(Chunk::End) => {
                    self.ended = true;
                    return None;
                }
                Err(_) => {
                    self.ended = true;
                    return stopped();
                }
            };
            match parsed.recv() {
                Ok(ops) => self.current = ops.into_iter(),
                Err(_) => {
                    self.ended = true;
                    return stopped();
                }
            }
        }
    }
}

/// Parses the chunks that come in until the cutting thread is done.
fn parse_jobs(jobs: &Mutex<Receiver<Job>>, max_value_bytes: usize) {
    loop {
        // The lock is held only to take the next job.
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut line = job.lines_before;
        let mut parsed = Vec::new();
        for text in job.text.split_inclusive(|&b| b == b'\n') {
            line += 1;
            if !text.iter().all(blank) {
                parsed.push(parse_line(text, line, max_value_bytes));
            }
        }
        // The reader may have stopped listening; then nobody needs it.
        let _ = job.done.send(parsed);
    }
}

/// Cuts the input into chunks of whole lines and hands each to a parsing
/// thread, passing on the chunks in input order. A line too long or a read
/// error ends the input after the lines before it, as the error's own
/// chunk. Stops when the reader stops listening.
fn cut(
    mut reader: impl BufRead,
    max_value_bytes: usize,
    jobs: &SyncSender<Job>,
    chunks: &SyncSender<Chunk>,
) {
    let max_line = max_line_bytes(max_value_bytes);
    let mut lines_before = 0;
    loop {
        let mut text = Vec::with_capacity(CHUNK_BYTES + (CHUNK_BYTES >> 4));
        let mut lines = 0;
        let mut ended = false;
        let mut failed = None;
        while !ended && text.len() < CHUNK_BYTES {
            let start = text.len();
            match append_line_capped(&mut reader, &mut text, max_line) {
                Ok(Some(true)) => lines += 1,
                Ok(None) => ended = true,
                Ok(Some(false)) => {
                    text.truncate(start);
                    failed = Some(line_too_long(
                        lines_before + lines + 1,
                        max_line,
                        max_value_bytes,
                    ));
                    ended = true;
                }
                Err(e) => {
                    text.truncate(start);
                    failed = Some(Error::io("cannot read batch input", e));
                    ended = true;
                }
            }
        }
        if !text.is_empty() {
            let (done, parsed) = sync_channel(1);
            let job = Job {
                text,
                lines_before,
                done,
            };
            if jobs.send(job).is_err() || chunks.send(Chunk::Parsing(parsed)).is_err() {
                return;
            }
        }
        if let Some(e) = failed {
            let (done, parsed) = sync_channel(1);
            let _ = done.send(vec![Err(e)]);
            if chunks.send(Chunk::Parsing(parsed)).is_err() {
                return;
            }
        }
        if ended {
            let _ = chunks.send(Chunk::End);
            return;
        }
        lines_before += lines;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::jsonl::OpReader;

    /// Both readers' items, with errors as their messages.
    fn both(input: &[u8], max_value: usize, threads: usize) -> (Vec<String>, Vec<String>) {
        let show = |r: Result<Op>| match r {
            Ok(op) => format!("{op:?}"),
            Err(e) => format!("error: {e}"),
        };
        let serial = OpReader::new(input, max_value).map(show).collect();
        let parallel = ParallelOpReader::with_threads(
            std::io::Cursor::new(input.to_vec()),
            max_value,
            threads,
        )
        .unwrap()
        .map(show)
        .collect();
        (serial, parallel)
    }

    #[test]
    fn yields_what_the_serial_reader_yields_across_chunks() {
        // Enough lines for several chunks, with blank and bad lines, a
        // CRLF line and a last line without its newline.
        let mut input = Vec::new();
        for i in 0..30_000 {
            match i % 1000 {
                7 => input.extend_from_slice(b"\n"),
                8 => input.extend_from_slice(b"  \t\x0b\n"),
                9 => input.extend_from_slice(b"{\"key\":\"bad\"\n"),
                10 => input.extend_from_slice(
                    format!("{{\"key\":\"k{i}\",\"value\":\"v\"}}\r\n").as_bytes(),
                ),
                _ => input.extend_from_slice(
                    format!(
                        "{{\"key\":\"k{i}\",\"value\":\"{}\"}}\n",
                        "v".repeat(i % 90)
                    )
                    .as_bytes(),
                ),
            }
        }
        input.extend_from_slice(b"{\"op\":\"delete\",\"key\":\"last\"}");
        for threads in [1, 2, 3] {
            let (serial, parallel) = both(&input, 1 << 20, threads);
            assert!(serial.len() > 29_000);
            assert_eq!(serial, parallel, "threads: {threads}");
        }
    }

    #[test]
    fn a_line_too_long_ends_the_input_after_the_lines_before_it() {
        let mut input = Vec::new();
        for i in 0..20_000 {
            input.extend_from_slice(format!("{{\"key\":\"k{i}\",\"value\":\"v\"}}\n").as_bytes());
        }
        // With a 10-byte value limit a line is at most 64 KiB and a bit.
        input.extend_from_slice(
            format!("{{\"key\":\"x\",\"value\":\"{}\"}}\n", "v".repeat(200_000)).as_bytes(),
        );
        input.extend_from_slice(b"{\"key\":\"after\",\"value\":\"v\"}\n");
        let (serial, parallel) = both(&input, 10, 2);
        let first_error =
            |items: &[String]| items.iter().position(|s| s.starts_with("error")).unwrap();
        assert_eq!(first_error(&serial), 20_000);
        assert_eq!(serial[..=20_000], parallel[..]);
        assert!(
            parallel[20_000].contains("line 20001"),
            "{}",
            parallel[20_000]
        );
    }

    #[test]
    fn empty_and_blank_inputs_yield_nothing() {
        for input in [&b""[..], b"\n", b"\n\n  \n"] {
            let (serial, parallel) = both(input, 100, 2);
            assert!(serial.is_empty());
            assert_eq!(serial, parallel);
        }
    }

    /// A reader that fails after some lines.
    struct FailingAfter(std::io::Cursor<Vec<u8>>);

    impl std::io::Read for FailingAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("disk on fire")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn a_read_error_ends_the_input_with_that_error() {
        let mut input = Vec::new();
        for i in 0..50_000 {
            input.extend_from_slice(format!("{{\"key\":\"k{i}\",\"value\":\"v\"}}\n").as_bytes());
        }
        let reader = std::io::BufReader::new(FailingAfter(std::io::Cursor::new(input)));
        let items: Vec<_> = ParallelOpReader::with_threads(reader, 100, 2)
            .unwrap()
            .collect();
        assert_eq!(items.len(), 50_001);
        assert!(items[..50_000].iter().all(|r| r.is_ok()));
        let last = items[50_000].as_ref().unwrap_err().to_string();
        assert!(last.contains("disk on fire"), "{last}");
    }
}
