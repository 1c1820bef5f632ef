//! `kvr batch [FILE]`: apply JSON lines atomically (or, with `--chunk-size`,
//! in parts that are each atomic), with a progress bar on a terminal and a
//! one-line summary on stderr.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::cli::BatchArgs;
use crate::error::{Error, Result};
use crate::kv::Kv;
use crate::types::Applied;

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
    if args.chunk_size == Some(0) {
        return Err(Error::invalid("--chunk-size must be at least 1").into());
    }
    let (reader, total_bytes) = open_input(args.file.as_deref())?;
    let watch = Arc::new(Watch::new(remote));
    let progress = progress_bar(total_bytes, watch.clone());
    let mut input = BufReader::with_capacity(
        INPUT_BUFFER_BYTES,
        Counting {
            inner: reader,
            progress: progress.clone(),
            watch,
            lines: 0,
        },
    );
    input
        .fill_buf()
        .map_err(|e| Error::io("cannot read batch input", e))?;
    // Installed before the file is created, so no signal falls in between.
    let guard = match !remote && db.symlink_metadata().is_err() {
        true => Some(NewFileGuard::install(db)?),
        false => None,
    };
    let kv = open()?;
    if let Some(guard) = &guard
        && kv.stats()?.revision > 0
    {
        guard.disarm(); // another process created it meanwhile: not ours
    }
    // An existing file: a signal stops the batch, which aborts and closes
    // the file as it was (`crate::interrupt`).
    let interrupt = match !remote && guard.is_none() {
        true => Some(crate::interrupt::Guard::install(format!(
            "stopped at once; nothing of the batch's current part was applied, and {} is \
             recovered when it is next opened",
            db.display()
        ))?),
        false => None,
    };
    let result = match args.chunk_size {
        None => kv.batch(Box::new(input)).map_err(Into::into),
        Some(lines) => in_parts(&*kv, &mut input, lines, guard.as_ref()),
    };
    if let Some(guard) = guard {
        guard.disarm();
    }
    progress.finish_and_clear();
    let result = match (
        result,
        interrupt.as_ref().and(crate::interrupt::requested()),
    ) {
        (Err(e), Some(signal)) if args.chunk_size.is_none() || !applied_parts(&e) => {
            drop(kv); // the aborted batch's file closed cleanly before we say so
            return Err(anyhow::anyhow!(
                "interrupted ({signal}): the batch was not applied; {} is as it was",
                db.display()
            ));
        }
        (result, _) => result,
    };
    drop(interrupt);
    let applied = result?;
    // Not `eprintln!`, which panics when stderr cannot be written.
    let _ = writeln!(
        std::io::stderr(),
        "applied {} puts, {} deletes (revision {}) in {:.2} s",
        applied.puts,
        applied.deletes,
        applied.revision,
        started.elapsed().as_secs_f64()
    );
    if args.json {
        super::print_after_write(
            format!(
                "{{\"applied\":{},\"revision\":{}}}\n",
                applied.applied(),
                applied.revision
            ),
            &format!(
                "the batch was applied at revision {} ({} operations)",
                applied.revision,
                applied.applied()
            ),
        )?;
    }
    Ok(())
}

/// An error of `--chunk-size` that says what earlier parts applied.
#[derive(Debug)]
struct PartFailed {
    context: String,
}

impl std::fmt::Display for PartFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.context)
    }
}

impl std::error::Error for PartFailed {}

/// Whether `e` says that earlier parts were applied.
fn applied_parts(e: &anyhow::Error) -> bool {
    e.downcast_ref::<PartFailed>().is_some()
}

/// `first` to `last` as words: "line 5" or "lines 5-9".
fn lines_text(first: u64, last: u64) -> String {
    if first == last {
        format!("line {first}")
    } else {
        format!("lines {first}-{last}")
    }
}

/// The error of the part of lines `before + 1` to `before + n` (line
/// numbers in `e` counted within the part), after `total` was applied by
/// the parts before it. With nothing applied yet it is `e` as it is (bad
/// input: exit 2, nothing written). After that, bad input exits 3, not 2:
/// exit 2 promises nothing was written (SPEC), and a script that fixes
/// the line and runs the whole input again would apply the earlier parts
/// twice. A failed condition stays exit 4, a timeout exit 5.
fn part_failed(e: Error, before: u64, n: u64, total: &Applied) -> anyhow::Error {
    // A refused part wrote nothing; after a timeout, say, its outcome is
    // unknown.
    let refused = matches!(
        e,
        Error::Invalid { .. } | Error::TooLarge { .. } | Error::PreconditionFailed { .. }
    );
    let e = shift_line(e, before);
    if before == 0 {
        return e.into();
    }
    let applied = format!(
        "{} {} applied, in earlier parts (revision {})",
        lines_text(1, before),
        if before == 1 { "was" } else { "were" },
        total.revision
    );
    if let Some(signal) = crate::interrupt::requested() {
        return anyhow::Error::new(PartFailed {
            context: format!(
                "interrupted ({signal}): the input from line {} on was not applied; {applied}",
                before + 1
            ),
        });
    }
    let context = format!(
        "{} {}; {applied}",
        lines_text(before + 1, before + n),
        if refused { "not applied" } else { "failed" },
    );
    match e {
        // Exit 3: see above.
        Error::Invalid { .. } | Error::TooLarge { .. } => anyhow::Error::new(PartFailed {
            context: format!("{context}: {e}"),
        }),
        other => anyhow::Error::from(other).context(PartFailed { context }),
    }
}

/// `--chunk-size`: one atomic batch per `lines` physical lines. Errors name
/// the line in the whole input, and say what earlier parts applied.
fn in_parts(
    kv: &dyn Kv,
    input: &mut dyn BufRead,
    lines: u64,
    guard: Option<&NewFileGuard>,
) -> anyhow::Result<Applied> {
    let mut total = Applied::default();
    let mut before = 0u64;
    // A part is held in memory: no line of it may be longer than a valid
    // line can be (unbounded if a server does not say its limit).
    let max_value = kv.max_value_bytes();
    let max_line = max_value.map_or(usize::MAX, crate::jsonl::max_line_bytes);
    let mut line = Vec::new();
    loop {
        let mut part = Vec::new();
        let mut n = 0;
        while n < lines {
            let read = crate::jsonl::read_line_capped(input, &mut line, max_line);
            let e = match read {
                Ok(None) => break,
                Ok(Some(true)) => {
                    part.extend_from_slice(&line);
                    n += 1;
                    continue;
                }
                Ok(Some(false)) => {
                    crate::jsonl::line_too_long(n + 1, max_line, max_value.unwrap_or(usize::MAX))
                }
                Err(e) => Error::io("cannot read batch input", e),
            };
            return Err(part_failed(e, before, n + 1, &total));
        }
        // An empty input still asks once, for the revision.
        if n == 0 && before > 0 {
            return Ok(total);
        }
        let applied = kv
            .batch(Box::new(std::io::Cursor::new(part)))
            .map_err(|e| part_failed(e, before, n, &total))?;
        if let Some(guard) = guard {
            guard.disarm(); // the file holds a committed part now
        }
        total.puts += applied.puts;
        total.deletes += applied.deletes;
        total.revision = applied.revision;
        before += n;
        if n < lines {
            return Ok(total);
        }
    }
}

/// While a batch writes into a database file it created, SIGINT and SIGTERM
/// remove that file and exit 3: a batch commits once, at its end, so the
/// file holds nothing, and an interrupted batch must not leave a new, empty
/// file behind (SPEC `batch`; a failed one removes it as it unwinds,
/// `LocalKv`'s drop). Disarmed once anything is committed (a part of
/// `--chunk-size`): a signal then just ends the process, exit 3.
struct NewFileGuard {
    armed: Arc<std::sync::Mutex<bool>>,
    signals: signal_hook::iterator::Handle,
}

impl NewFileGuard {
    fn install(db: &Path) -> Result<NewFileGuard> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("cannot install a signal handler", e))?;
        let handle = signals.handle();
        let armed = Arc::new(std::sync::Mutex::new(true));
        let (flag, db) = (armed.clone(), db.to_path_buf());
        std::thread::Builder::new()
            .name("kvr-batch-signals".into())
            .spawn(move || {
                let Some(signal) = signals.forever().next() else {
                    return; // disarmed
                };
                // Held until exit: the batch cannot commit past a removal.
                let armed = flag.lock().unwrap_or_else(|e| e.into_inner());
                if *armed && std::fs::remove_file(&db).is_ok() {
                    let _ = crate::store::create::sync_dir(crate::store::create::parent_dir(&db));
                }
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                match *armed {
                    true => eprintln!(
                        "kvr: error: interrupted ({name}): the batch was not applied; \
                         the new database file was removed"
                    ),
                    false => eprintln!("kvr: error: interrupted ({name})"),
                }
                std::process::exit(3);
            })
            .map_err(|e| Error::io("cannot start a thread", e))?;
        Ok(NewFileGuard {
            armed,
            signals: handle,
        })
    }

    /// From now on a signal leaves the file alone.
    fn disarm(&self) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

impl Drop for NewFileGuard {
    fn drop(&mut self) {
        self.signals.close();
    }
}

/// An error of one part, with its line number counted in the whole input.
fn shift_line(e: Error, before: u64) -> Error {
    match e {
        Error::Invalid { line, message } => Error::Invalid {
            line: line.map(|l| l + before),
            message,
        },
        Error::PreconditionFailed {
            line,
            key,
            expected,
            current,
        } => Error::PreconditionFailed {
            line: line.map(|l| l + before),
            key,
            expected,
            current,
        },
        other => other,
    }
}

fn stdin_input() -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    super::check_stdin(super::StdinUse {
        reading: "kvr: reading JSON lines from stdin until Ctrl-D (end of input)",
        closed: "stdin is closed (or not open for reading), so there are no lines to read; \
                 give FILE, or redirect stdin from it (`< FILE`)",
    })?;
    Ok((Box::new(std::io::stdin()), None))
}

/// The input and, for a regular file, its size.
fn open_input(file: Option<&Path>) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
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
            let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
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
}

impl Watch {
    fn new(remote: bool) -> Watch {
        Watch {
            started: Instant::now(),
            remote,
            reading: AtomicBool::new(false),
            last_read_ms: AtomicU64::new(0),
            eof: AtomicBool::new(false),
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
        if self.progress.is_hidden() {
            let n = self.inner.read(buf);
            interrupted()?;
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
        if n == 0 {
            self.watch.eof.store(true, Ordering::Relaxed);
            self.progress
                .set_message(format!("{} lines read", self.lines));
            return Ok(0);
        }
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        self.progress.inc(n as u64);
        let secs = self.progress.elapsed().as_secs_f64().max(1e-3);
        self.progress.set_message(format!(
            "{} lines, {:.0} lines/s",
            self.lines,
            self.lines as f64 / secs
        ));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
