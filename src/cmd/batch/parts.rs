//! `kvr batch --chunk-size N`: the input applied in parts of N lines that
//! hold an operation, each atomic on its own, read on a thread of their
//! own so that a signal stops the batch between parts however slow the
//! producer; and what the errors of a batch, interrupted or not, say was
//! applied.

use std::io::BufRead;
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::interrupt::{Guard, NewFile};
use crate::kv::Kv;
use crate::types::Applied;

/// How often a batch waiting for its next part looks for a signal: a
/// person's Ctrl-C is answered at once, and waking ten times a second
/// costs nothing.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// An error of `--chunk-size` that says what earlier parts applied.
#[derive(Debug)]
struct PartFailed {
    context: String,
    /// What the parts before the failed one applied.
    total: Applied,
}

impl std::fmt::Display for PartFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.context)
    }
}

impl std::error::Error for PartFailed {}

/// `--chunk-size` stopped by `signal` at a part boundary: the first
/// `lines` lines were applied, in `parts` parts (`total`), and nothing
/// after them.
#[derive(Debug)]
struct Stopped {
    signal: &'static str,
    lines: u64,
    parts: u64,
    total: Applied,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signal = self.signal;
        match self.lines {
            0 => write!(f, "interrupted ({signal}): the batch was not applied"),
            lines => write!(
                f,
                "interrupted ({signal}): the input from line {} on was not applied; {} \
                 (revision {})",
                lines + 1,
                applied_text(lines, self.parts),
                self.total.revision
            ),
        }
    }
}

impl std::error::Error for Stopped {}

/// Whether `e` says that earlier parts were applied.
fn applied_parts(e: &anyhow::Error) -> bool {
    applied_before(e).is_some()
}

/// What the parts committed before `e` stopped a `--chunk-size` batch
/// applied, when they applied anything: `--json` prints it, so that a
/// script reads on stdout how far the input went (the exit code says it
/// did not go to the end).
pub(super) fn applied_before(e: &anyhow::Error) -> Option<Applied> {
    match (e.downcast_ref::<PartFailed>(), e.downcast_ref::<Stopped>()) {
        (Some(failed), _) => Some(failed.total),
        (None, Some(stopped)) if stopped.lines > 0 => Some(stopped.total),
        _ => None,
    }
}

/// The error of a batch, saying what a signal that stopped it left. With
/// nothing applied: "not applied", and with `--db` that the file is as it
/// was (a new one would have been removed: `interrupt::NewFile`). A batch
/// sent to a server stops only between parts, so only [`Stopped`] says a
/// signal ended it; another error (a timeout, say) is as it is.
pub(super) fn interrupted(e: anyhow::Error, remote: bool, db: &Path) -> anyhow::Error {
    let signal = match e.downcast_ref::<Stopped>() {
        Some(stopped) if stopped.lines > 0 => {
            return Error::Interrupted(stopped.to_string()).into();
        }
        Some(stopped) => stopped.signal,
        None => match crate::interrupt::requested() {
            Some(signal) if !remote && !applied_parts(&e) => signal,
            _ => return e,
        },
    };
    let text = format!("interrupted ({signal}): the batch was not applied");
    Error::Interrupted(match remote {
        true => text,
        false => format!("{text}; {} is as it was", db.display()),
    })
    .into()
}

/// What a second signal, which ends the process at once, leaves after
/// `lines` lines in `parts` parts were committed.
pub(super) fn at_once(remote: bool, db: &Path, lines: u64, parts: u64) -> String {
    match (remote, lines) {
        (false, 0) => format!(
            "stopped at once; nothing of the batch's current part was applied, and {} is \
             recovered when it is next opened",
            db.display()
        ),
        (false, _) => format!(
            "stopped at once; {}, nothing of the part after them, and {} is recovered when it \
             is next opened",
            applied_text(lines, parts),
            db.display()
        ),
        (true, 0) => "stopped at once; the first part, if it was being sent, may or may not \
                      have been applied"
            .to_string(),
        (true, _) => format!(
            "stopped at once; {}; the part being sent after them, if any, may or may not have \
             been applied",
            applied_text(lines, parts)
        ),
    }
}

/// What a second signal leaves once a whole batch (no `--chunk-size`) was
/// committed into the file `db`.
pub(super) fn at_once_applied(db: &Path) -> String {
    format!(
        "stopped at once; the batch was applied (its commit had ended), and {} is recovered \
         when it is next opened",
        db.display()
    )
}

/// A part over the server's limits, said in the terms of `--chunk-size`:
/// the client's hint for a whole input sent at once ("nothing was
/// written; send the input in parts") becomes one for smaller parts
/// (earlier parts may have been written). `n` lines of the part hold an
/// operation; `before` lines of the input came before it.
fn in_part_terms(e: Error, n: u64, before: u64) -> Error {
    let part = match n {
        1 => "this part of 1 line".to_string(),
        _ => format!("this part of {n} lines"),
    };
    match e {
        Error::TooLarge { message } => match message.strip_suffix(crate::client::CHUNK_HINT) {
            // One line cannot be split further.
            Some(head) if n == 1 => Error::TooLarge {
                message: format!(
                    "{head}{part} was not applied: that line alone is over it; write its key \
                     with kvr put (a single value may take up to the server's \
                     --max-value-bytes), or have the server's limit raised"
                ),
            },
            Some(head) => Error::TooLarge {
                message: format!("{head}{part} was not applied; give a smaller --chunk-size"),
            },
            None => match message.split_once(crate::client::LINE_ALONE_HINT) {
                // "line K alone is over …", K counted in the part: named
                // in the whole input, and what to do instead after it.
                Some((head, instead)) => Error::TooLarge {
                    message: format!(
                        "{}, so no --chunk-size can send it; {part} was not \
                         applied{instead}",
                        in_input_lines(head, before)
                    ),
                },
                None => Error::TooLarge { message },
            },
        },
        other => other,
    }
}

/// `… refused the batch: line K alone is over …`, K counted in a part,
/// with K counted in the whole input (`before` lines before the part).
fn in_input_lines(head: &str, before: u64) -> String {
    const AT: &str = "refused the batch: line ";
    let Some(start) = head.find(AT) else {
        return head.to_string();
    };
    let digits_at = start + AT.len();
    let digits = head[digits_at..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    match head[digits_at..digits_at + digits].parse::<u64>() {
        Ok(k) => format!(
            "{}{}{}",
            &head[..digits_at],
            k + before,
            &head[digits_at + digits..]
        ),
        Err(_) => head.to_string(),
    }
}

/// "lines 1-2000 were applied, in 2 parts".
fn applied_text(lines: u64, parts: u64) -> String {
    format!(
        "{} {} applied, in {parts} {}",
        lines_text(1, lines),
        if lines == 1 { "was" } else { "were" },
        if parts == 1 { "part" } else { "parts" }
    )
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
/// numbers in `e` counted within the part; `ops` of them hold an
/// operation), after `total` was applied by the `parts` parts before it. With nothing applied yet (no part before it, or
/// parts of blank lines, deletes of missing keys and expired lines only)
/// it is `e` as it is (bad input: exit 2, nothing written). After that,
/// bad input exits 3, not 2: exit 2 promises nothing was written (SPEC),
/// and a script that fixes the line and runs the whole input again would
/// apply the earlier parts twice. A failed condition stays exit 4, a
/// timeout exit 5.
fn part_failed(
    e: Error,
    (before, n, ops): (u64, u64, u64),
    parts: u64,
    total: &Applied,
    remote: bool,
) -> anyhow::Error {
    let e = in_part_terms(e, ops, before);
    // A refused part wrote nothing; after a timeout, say, its outcome is
    // unknown.
    let refused = matches!(
        e,
        Error::Invalid { .. } | Error::TooLarge { .. } | Error::PreconditionFailed { .. }
    );
    let e = shift_line(e, before);
    if before == 0 || total.applied() == 0 {
        return e.into();
    }
    // Nothing after the failing part is sent: the message says "from line
    // N on", so that resending the lines it names sends all that is left.
    let what = if refused {
        format!("the input from line {} on was not applied", before + 1)
    } else {
        format!(
            "{} failed and the input after {} was not {}",
            lines_text(before + 1, before + n),
            if n == 1 { "it" } else { "them" },
            // Into a file nothing is sent.
            if remote { "sent" } else { "applied" }
        )
    };
    let context = format!(
        "{what}; {} (revision {})",
        applied_text(before, parts),
        total.revision
    );
    match e {
        // Exit 3: see above.
        Error::Invalid { .. } | Error::TooLarge { .. } => anyhow::Error::new(PartFailed {
            context: format!("{context}: {e}"),
            total: *total,
        }),
        other => anyhow::Error::from(other).context(PartFailed {
            context,
            total: *total,
        }),
    }
}

/// What `--chunk-size` tells as it commits parts.
pub(super) struct Guards<'a> {
    pub new_file: Option<&'a NewFile>,
    pub interrupt: Option<&'a Guard>,
    pub remote: bool,
    pub db: &'a Path,
}

/// `--chunk-size`: one atomic batch per `lines` lines that hold an
/// operation (blank lines go with the part they are in, and a part of
/// blank lines only, at the end, is not sent). Errors name the physical
/// line in the whole input, and say what earlier parts applied. A
/// signal stops it between parts: the part it was reading is not sent, and
/// the one it was writing into a file is aborted (a server's is answered
/// first).
pub(super) fn in_parts(
    kv: &dyn Kv,
    input: impl BufRead + Send + 'static,
    lines: u64,
    guards: &Guards,
) -> anyhow::Result<Applied> {
    let mut total = Applied::default();
    // Physical lines in the parts committed, and those parts.
    let (mut before, mut sent) = (0u64, 0u64);
    let stopped = |signal, before: u64, sent: u64, total: &Applied| {
        anyhow::Error::new(Stopped {
            signal,
            lines: before,
            parts: sent,
            total: *total,
        })
    };
    let parts = Parts::start(input, lines, kv.max_value_bytes())?;
    loop {
        let (part, n, ops) = match parts.next() {
            Next::Part(part, n, ops) => (part, n, ops),
            Next::Failed(e, line, ops) => match signal() {
                // Failed after a signal, or because of it (the reader
                // stops on it): nothing of this part is sent.
                Some(signal) => return Err(stopped(signal, before, sent, &total)),
                None => {
                    let part = (before, line, ops);
                    return Err(part_failed(e, part, sent, &total, guards.remote));
                }
            },
            Next::Stopped(signal) => return Err(stopped(signal, before, sent, &total)),
        };
        // Only blank lines are left: nothing to send. An input without an
        // operation still asks once, for the revision.
        if ops == 0 && sent > 0 {
            return Ok(total);
        }
        // A part read whole from what was buffered before the signal.
        if let Some(signal) = signal() {
            return Err(stopped(signal, before, sent, &total));
        }
        if let Some(guard) = guards.interrupt.filter(|_| !guards.remote) {
            // Once its commit has ended, this part is applied too.
            let db = guards.db;
            guard.set_then(
                at_once(false, db, before, sent),
                Some(at_once(false, db, before + n, sent + 1)),
            );
        }
        let applied = kv
            .batch(Box::new(std::io::Cursor::new(part)))
            .map_err(|e| match signal() {
                // Stopped by the signal, before its commit.
                Some(signal) if !guards.remote => stopped(signal, before, sent, &total),
                _ => part_failed(e, (before, n, ops), sent, &total, guards.remote),
            })?;
        if let Some(guard) = guards.new_file {
            guard.disarm(); // the file holds a committed part now
        }
        total.puts += applied.puts;
        total.deletes += applied.deletes;
        total.revision = applied.revision;
        before += n;
        sent += 1;
        if ops < lines {
            return Ok(total);
        }
        if let Some(guard) = guards.interrupt {
            let text = at_once(guards.remote, guards.db, before, sent);
            guard.set_then(text, None);
        }
    }
}

fn signal() -> Option<&'static str> {
    crate::interrupt::requested()
}

/// What [`Parts`] hands over.
enum Next {
    /// A part's lines, how many there are and how many of them hold an
    /// operation (fewer than asked at the end of the input).
    Part(Vec<u8>, u64, u64),
    /// The error of the part's line `n` (counted within the part), after
    /// that many lines that hold an operation.
    Failed(Error, u64, u64),
    /// A signal came while the batch waited for the part.
    Stopped(&'static str),
}

/// Reads the parts of `--chunk-size` on a thread of its own, each when
/// asked: a read from a producer that sends nothing does not return on a
/// signal, and the batch must stop all the same. Only one part is in
/// memory, as when the batch read them itself.
struct Parts {
    ask: SyncSender<()>,
    parts: Receiver<Next>,
    lines: u64,
}

impl Parts {
    fn start(
        mut input: impl BufRead + Send + 'static,
        lines: u64,
        max_value: Option<usize>,
    ) -> Result<Parts> {
        let (ask, asked) = std::sync::mpsc::sync_channel(1);
        let (tx, parts) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("kvr-batch-parts".into())
            .spawn(move || {
                let mut line = Vec::new();
                while asked.recv().is_ok() {
                    let part = read_part(&mut input, &mut line, lines, max_value);
                    if tx.send(part).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io("cannot start a thread to read the batch", e))?;
        Ok(Parts { ask, parts, lines })
    }

    /// The next part, or the signal that came while it was read.
    fn next(&self) -> Next {
        let stopped = || {
            Next::Failed(
                Error::Storage("the thread reading the batch stopped before its end".into()),
                self.lines,
                self.lines,
            )
        };
        if self.ask.send(()).is_err() {
            return stopped();
        }
        loop {
            match self.parts.recv_timeout(SIGNAL_POLL) {
                Ok(next) => return next,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(signal) = signal() {
                        return Next::Stopped(signal);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return stopped(),
            }
        }
    }
}

/// The lines of `input` up to the `lines`-th that holds an operation (a
/// blank one does not count, SPEC "JSON lines": a part of N blank lines
/// was sent as a batch of its own). No line may be longer than a valid
/// line can be (unbounded if a server does not say its value limit): a
/// part is held in memory.
fn read_part(
    input: &mut dyn BufRead,
    line: &mut Vec<u8>,
    lines: u64,
    max_value: Option<usize>,
) -> Next {
    let max_line = max_value.map_or(usize::MAX, crate::jsonl::max_line_bytes);
    let mut part = Vec::new();
    let (mut n, mut ops) = (0, 0);
    while ops < lines {
        let e = match crate::jsonl::read_line_capped(input, line, max_line) {
            Ok(None) => break,
            Ok(Some(true)) => {
                part.extend_from_slice(line);
                n += 1;
                if !line.iter().all(crate::jsonl::blank) {
                    ops += 1;
                }
                continue;
            }
            Ok(Some(false)) => {
                crate::jsonl::line_too_long(n + 1, max_line, max_value.unwrap_or(usize::MAX))
            }
            Err(e) => Error::io("cannot read batch input", e),
        };
        return Next::Failed(e, n + 1, ops);
    }
    Next::Part(part, n, ops)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_batch_counts_lines_and_parts() {
        let stopped = |lines, parts| Stopped {
            signal: "SIGINT",
            lines,
            parts,
            total: Applied {
                puts: lines,
                deletes: 0,
                revision: 7,
            },
        };
        assert_eq!(
            stopped(1, 1).to_string(),
            "interrupted (SIGINT): the input from line 2 on was not applied; line 1 was \
             applied, in 1 part (revision 7)"
        );
        assert_eq!(
            stopped(6, 3).to_string(),
            "interrupted (SIGINT): the input from line 7 on was not applied; lines 1-6 were \
             applied, in 3 parts (revision 7)"
        );
        let db = Path::new("f.redb");
        assert!(at_once(false, db, 6, 3).contains("lines 1-6 were applied, in 3 parts"));
        assert!(at_once(true, db, 0, 0).contains("may or may not"));
    }
}
