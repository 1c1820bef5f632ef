//! `kvr batch [FILE]`: apply JSON lines atomically (or, with `--chunk-size`,
//! in parts that are each atomic), with a progress bar on a terminal and a
//! one-line summary on stderr.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::cli::BatchArgs;
use crate::error::{Error, Result};
use crate::kv::Kv;
use crate::types::Applied;

mod parts;

use parts::{Guards, applied_before, at_once, at_once_applied, in_parts, interrupted};

/// Input buffer: big reads keep the parser, not syscalls, the cost.
const INPUT_BUFFER_BYTES: usize = 1 << 20;

/// How often the bar is redrawn, so its clock moves while the store sorts
/// or commits and no input is read.
const TICK: Duration = Duration::from_millis(200);

/// No read for this long means the reader is not what the batch waits on:
/// parsing a 1 MiB buffer takes a few milliseconds, a run's sort and write
/// seconds.
const IDLE: Duration = Duration::from_millis(300);

/// Opens the input before the database, so that a bad FILE creates nothing,
/// and waits for its first bytes, so that a batch waiting on a slow
/// producer neither creates the file nor holds it. `remote`: the batch goes
/// to a server (only the progress bar's words differ); otherwise `db` is
/// the file it writes.
pub fn run(
    open: impl FnOnce() -> Result<Box<dyn Kv>>,
    args: BatchArgs,
    remote: bool,
    db: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let from_stdin = args.file.as_deref().is_none_or(|f| f.as_os_str() == "-");
    let (reader, total_bytes) = open_input(args.file.as_deref(), remote)?;
    if from_stdin {
        wait_for_input(std::io::stdin(), remote)?;
    }
    let watch = Arc::new(Watch::new(remote));
    let progress = progress_bar(total_bytes, watch.clone());
    let mut input = BufReader::with_capacity(
        INPUT_BUFFER_BYTES,
        Counting {
            inner: reader,
            progress: progress.clone(),
            watch: watch.clone(),
            lines: 0,
            op_lines: OpLines::default(),
            ended: false,
        },
    );
    input
        .fill_buf()
        .map_err(|e| Error::io("cannot read batch input", e))?;
    // SIGINT and SIGTERM (`crate::interrupt`): a batch into a new file
    // that has committed nothing removes it; otherwise a signal stops the
    // batch, which aborts what it has not committed and closes the file
    // cleanly. Sent whole to a server, a batch is atomic there whatever
    // becomes of the client, so a signal is left to its default (the end).
    let new_file = match !remote && db.symlink_metadata().is_err() {
        // Before the file is created, so no signal falls in between.
        true => Some(crate::interrupt::NewFile::install(db)?),
        false => None,
    };
    let interrupt = match !remote || args.chunk_size.is_some() {
        true => Some(crate::interrupt::Guard::install(at_once(remote, db, 0, 0))?),
        false => None,
    };
    let kv = open()?;
    if let Some(guard) = &new_file {
        // Only the file this batch created is removed on a signal; one
        // another process created meanwhile is not ours.
        guard.own(db);
    }
    let checked = match (args.chunk_size, args.file.as_deref()) {
        (Some(_), Some(file)) if !from_stdin && total_bytes.is_some() => {
            check_every_line(file, kv.max_value_bytes())
        }
        _ => Ok(()),
    };
    let result = match args.chunk_size {
        _ if let Err(e) = checked => Err(e.into()),
        None => {
            if let Some(guard) = &interrupt {
                // Only with --db: a batch sent whole to a server has no guard.
                guard.set_then(at_once(remote, db, 0, 0), Some(at_once_applied(db)));
            }
            kv.batch(Box::new(input)).map_err(Into::into)
        }
        Some(lines) => {
            let guards = Guards {
                new_file: new_file.as_ref(),
                interrupt: interrupt.as_ref(),
                remote,
                db,
            };
            in_parts(&*kv, input, lines, &guards)
        }
    };
    if let Some(guard) = new_file {
        guard.finish(result.is_err());
    }
    progress.finish_and_clear();
    // Closed (the batch committed or aborted) while the signals are still
    // caught, and before anything is said about it.
    drop(kv);
    if let Err(e) = &result
        && args.json
        && let Some(total) = applied_before(e)
    {
        // The error follows on stderr; if stdout fails too, that error
        // is the one to report.
        let _ = super::print_after_write(applied_json(&total), "");
    }
    let result = result.map_err(|e| interrupted(e, remote, db));
    drop(interrupt);
    let applied = result?;
    if args.json {
        // Before the summary: if stdout fails, the error is the first
        // line on stderr (and says the batch was applied).
        super::print_after_write(
            applied_json(&applied),
            &format!(
                "the batch was applied at revision {} ({} operation{})",
                applied.revision,
                applied.applied(),
                if applied.applied() == 1 { "" } else { "s" }
            ),
        )?;
    }
    // Not `eprintln!`, which panics when stderr cannot be written.
    let _ = writeln!(
        std::io::stderr(),
        "applied {} put{}, {} delete{} (revision {}) in {:.2} s{}",
        applied.puts,
        if applied.puts == 1 { "" } else { "s" },
        applied.deletes,
        if applied.deletes == 1 { "" } else { "s" },
        applied.revision,
        started.elapsed().as_secs_f64(),
        no_change(watch.op_lines.load(Ordering::Relaxed), applied.applied())
    );
    Ok(())
}

/// `--json`: what `POST /v1/batch` answers.
fn applied_json(applied: &Applied) -> String {
    format!(
        "{{\"applied\":{},\"revision\":{},\"puts\":{},\"deletes\":{}}}\n",
        applied.applied(),
        applied.revision,
        applied.puts,
        applied.deletes
    )
}

fn stdin_input() -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    super::check_stdin(super::StdinUse {
        reading: "kvr: reading JSON lines from stdin until Ctrl-D (end of input)",
        closed: "stdin is closed (or not open for reading), so there are no lines to read; \
                 give FILE, or redirect stdin from it (`< FILE`)",
        directory: "stdin is a directory: give FILE (a file of JSON lines), or redirect stdin \
                    from it (`< FILE`)",
    })?;
    Ok((Box::new(std::io::stdin()), None))
}

/// Waits until the input (stdin, or a FILE that is a pipe or a FIFO) has
/// something to read (or its end), while SIGINT and SIGTERM stop the
/// batch: a signal does not end a read that is waiting for a producer, so
/// without this a batch whose producer had sent nothing yet ignored them
/// (or, before its handlers were installed, died of them without a word).
/// Nothing is open or written yet.
fn wait_for_input(input: impl AsFd, remote: bool) -> Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    let ready = |timeout: Option<&Timespec>| {
        let mut fds = [PollFd::new(&input, PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout) {
            Ok(n) => n > 0,
            // A signal: look at the flag.
            Err(rustix::io::Errno::INTR) => false,
            // The input cannot be polled: read and see.
            Err(_) => true,
        }
    };
    if ready(Some(&Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    })) {
        return Ok(());
    }
    let what = if remote { "the server" } else { "the database" };
    let _guard = crate::interrupt::Guard::install(format!(
        "stopped at once, before any input arrived; nothing was sent to {what}"
    ))?;
    loop {
        if let Some(signal) = crate::interrupt::requested() {
            return Err(Error::Interrupted(format!(
                "interrupted ({signal}) before any input arrived: nothing was applied"
            )));
        }
        if ready(Some(&tick)) {
            return Ok(());
        }
    }
}

/// The input and, for a regular file, its size. A FILE that is not a
/// regular file (`<(producer)`, a FIFO) is waited on as stdin is.
/// `--chunk-size` with a FILE: every line is checked before the first part
/// is applied, so that a bad line anywhere is exit 2 with nothing written,
/// as without `--chunk-size`; before, the parts ahead of it were applied
/// (exit 3, naming them), and fixing the line and running the file again
/// applied them twice. A pipe cannot be read twice: its parts go as they
/// come. What only applying can tell (a condition, a server's limits) may
/// still stop a later part. One parse of the file, about a second per
/// million lines.
fn check_every_line(file: &Path, max_value: Option<usize>) -> Result<()> {
    let f = File::open(file)
        .map_err(|e| Error::io(format!("cannot open batch input {}", file.display()), e))?;
    let lines = crate::jsonl::OpReader::new(
        BufReader::with_capacity(INPUT_BUFFER_BYTES, f),
        max_value.unwrap_or(usize::MAX),
    );
    for op in lines {
        op?;
    }
    Ok(())
}

fn open_input(file: Option<&Path>, remote: bool) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    match file {
        None => stdin_input(),
        Some(p) if p.as_os_str() == "-" => stdin_input(),
        Some(p) => {
            let f = File::open(p).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    Error::invalid(format!("batch input {} does not exist", p.display()))
                }
                _ => Error::io(format!("cannot open batch input {}", p.display()), e),
            })?;
            let meta = f.metadata().ok();
            if meta.as_ref().is_some_and(|m| m.is_dir()) {
                return Err(Error::invalid(format!(
                    "batch input {} is a directory: give a file of JSON lines (or - for stdin)",
                    p.display()
                )));
            }
            let len = meta.filter(|m| m.is_file()).map(|m| m.len());
            if len.is_none() {
                wait_for_input(&f, remote)?;
            }
            Ok((Box::new(f), len))
        }
    }
}

/// What the batch is doing, as far as its input tells: the store (or the
/// server) pulls input while it reads and parses, and stops pulling while
/// it sorts and writes a run, or commits after the end of the input.
struct Watch {
    started: Instant,
    remote: bool,
    reading: AtomicBool,
    /// Milliseconds after `started` when the last read returned.
    last_read_ms: AtomicU64,
    eof: AtomicBool,
    /// Lines read that hold an operation (see [`OpLines`]).
    op_lines: AtomicU64,
}

impl Watch {
    fn new(remote: bool) -> Watch {
        Watch {
            started: Instant::now(),
            remote,
            reading: AtomicBool::new(false),
            last_read_ms: AtomicU64::new(0),
            eof: AtomicBool::new(false),
            op_lines: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn phase(&self) -> &'static str {
        let idle = self
            .now_ms()
            .saturating_sub(self.last_read_ms.load(Ordering::Relaxed));
        phase(
            self.reading.load(Ordering::Relaxed),
            Duration::from_millis(idle),
            self.eof.load(Ordering::Relaxed),
            self.remote,
        )
    }
}

/// The phase shown on the bar (see [`Watch`]).
fn phase(reading: bool, idle: Duration, eof: bool, remote: bool) -> &'static str {
    match (eof, remote) {
        (true, false) => "sorting and writing the last run, committing",
        (true, true) => "sent; the server is committing",
        (false, _) if reading || idle < IDLE => "reading",
        (false, false) => "sorting and writing a run",
        (false, true) => "sending; the server is busy",
    }
}

/// A bar (or spinner, for a stream) on stderr, hidden unless stderr is a
/// terminal. A steady tick keeps the clock and the phase current while no
/// input moves.
fn progress_bar(total_bytes: Option<u64>, watch: Arc<Watch>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::stderr());
    let template = if total_bytes.is_some() {
        "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {phase}: {msg}"
    } else {
        "{elapsed_precise} {spinner} {bytes} {phase}: {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        let style = style.progress_chars("=> ").with_key(
            "phase",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(watch.phase());
            },
        );
        bar.set_style(style);
    }
    bar.enable_steady_tick(TICK);
    bar
}

/// Counts bytes and lines into the progress bar as the input is read.
struct Counting<R> {
    inner: R,
    progress: ProgressBar,
    watch: Arc<Watch>,
    lines: u64,
    op_lines: OpLines,
    /// The input ended: later reads return 0 without reading again. A
    /// terminal gives an end (Ctrl-D) once, and a read after it waits for
    /// more typing: a batch that met the end at its first read (nothing
    /// typed) needed a second Ctrl-D.
    ended: bool,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Checked after the read too: a Ctrl-C also ends a producer on the
        // terminal, and the end of input it causes must not commit.
        let interrupted = || match crate::interrupt::requested() {
            Some(signal) => Err(crate::interrupt::io_error(signal)),
            None => Ok(()),
        };
        interrupted()?;
        if self.ended {
            return Ok(0);
        }
        if self.progress.is_hidden() {
            let n = self.inner.read(buf);
            interrupted()?;
            self.ended = matches!(n, Ok(0)) && !buf.is_empty();
            if let Ok(n) = n {
                self.tally(&buf[..n], self.ended);
            }
            return n;
        }
        self.watch.reading.store(true, Ordering::Relaxed);
        let n = self.inner.read(buf);
        self.watch
            .last_read_ms
            .store(self.watch.now_ms(), Ordering::Relaxed);
        self.watch.reading.store(false, Ordering::Relaxed);
        interrupted()?;
        let n = n?;
        self.tally(&buf[..n], n == 0 && !buf.is_empty());
        if n == 0 {
            self.ended = !buf.is_empty();
            self.watch.eof.store(true, Ordering::Relaxed);
            self.progress
                .set_message(format!("{} read", lines_word(self.lines)));
            return Ok(0);
        }
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        self.progress.inc(n as u64);
        let secs = self.progress.elapsed().as_secs_f64();
        // A rate over less than a second (one line in a millisecond: "1000
        // lines/s") says nothing.
        let rate = match secs >= 1.0 {
            true => format!(", {:.0} lines/s", self.lines as f64 / secs),
            false => String::new(),
        };
        self.progress
            .set_message(format!("{}{rate}", lines_word(self.lines)));
        Ok(n)
    }
}

/// "1 line", "2 lines".
fn lines_word(n: u64) -> String {
    format!("{n} line{}", if n == 1 { "" } else { "s" })
}

/// What the summary adds when some lines took no revision: deletes of
/// absent keys, and puts whose `expires_at_ms` had passed (SPEC: skipped).
fn no_change(op_lines: u64, applied: u64) -> String {
    match op_lines.saturating_sub(applied) {
        0 => String::new(),
        1 => {
            "; 1 line changed nothing (a delete of an absent key, or a put already expired)".into()
        }
        n => {
            format!("; {n} lines changed nothing (deletes of absent keys, or puts already expired)")
        }
    }
}

impl<R> Counting<R> {
    /// Counts the operations in `read`, and at the `end` of the input the
    /// last line's.
    fn tally(&mut self, read: &[u8], end: bool) {
        self.op_lines.feed(read);
        if end {
            self.op_lines.end();
        }
        self.watch
            .op_lines
            .store(self.op_lines.ops, Ordering::Relaxed);
    }
}

/// Counts the lines of an input that hold an operation, across reads: each
/// line that is not blank (SPEC: blank or whitespace-only lines are
/// skipped; an input with a bad line is refused whole). Set against the
/// operations that took a revision, it tells how many changed nothing.
#[derive(Debug, Default)]
struct OpLines {
    ops: u64,
    /// The line being read has a byte that is not blank.
    filled: bool,
}

impl OpLines {
    fn feed(&mut self, mut bytes: &[u8]) {
        loop {
            let end = memchr::memchr(b'\n', bytes);
            let line = &bytes[..end.unwrap_or(bytes.len())];
            // Stops at a line's first byte that is not blank (its `{`).
            self.filled = self.filled || line.iter().any(|b| !crate::jsonl::blank(b));
            let Some(end) = end else {
                return;
            };
            self.end();
            bytes = &bytes[end + 1..];
        }
    }

    /// The end of a line, or of the input.
    fn end(&mut self) {
        if std::mem::take(&mut self.filled) {
            self.ops += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_an_operation_are_counted_across_reads() {
        let input = b"{\"key\":\"a\",\"value\":\"1\"}\n\n \t\x0b\r\n  {\"op\":\"delete\",\"key\":\"b\"}\r\n\n{\"key\":\"c\",\"value\":\" \"}";
        // Every split into two reads, and one byte at a time.
        for at in 0..=input.len() {
            let mut lines = OpLines::default();
            lines.feed(&input[..at]);
            lines.feed(&input[at..]);
            lines.end();
            assert_eq!(lines.ops, 3, "split at {at}");
        }
        let mut lines = OpLines::default();
        for b in input {
            lines.feed(std::slice::from_ref(b));
        }
        lines.end();
        assert_eq!(lines.ops, 3);
        let mut lines = OpLines::default();
        lines.feed(b"\n  \n\r\n");
        lines.end();
        assert_eq!(lines.ops, 0);
    }

    #[test]
    fn the_summary_names_lines_that_changed_nothing() {
        assert_eq!(no_change(3, 3), "");
        assert_eq!(no_change(0, 0), "");
        assert!(no_change(4, 3).starts_with("; 1 line changed nothing"));
        assert!(no_change(5, 3).starts_with("; 2 lines changed nothing"));
    }

    #[test]
    fn phases_follow_the_input() {
        let quick = Duration::from_millis(10);
        let slow = Duration::from_secs(2);
        assert_eq!(phase(true, slow, false, false), "reading");
        assert_eq!(phase(false, quick, false, false), "reading");
        assert_eq!(
            phase(false, slow, false, false),
            "sorting and writing a run"
        );
        assert!(phase(false, quick, true, false).contains("committing"));
        assert!(phase(false, slow, false, true).contains("server"));
        assert!(phase(false, quick, true, true).contains("committing"));
    }
}
