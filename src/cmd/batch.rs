//! `kvr batch [FILE]`: apply JSON lines atomically, with a progress bar on a
//! terminal and a one-line summary on stderr.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::BatchArgs;
use crate::error::{Error, Result};
use crate::kv::Kv;

/// Input buffer: big reads keep the parser, not syscalls, the cost.
const INPUT_BUFFER_BYTES: usize = 1 << 20;

/// Opens the input before the database, so that a bad FILE creates nothing.
pub fn run(open: impl FnOnce() -> Result<Box<dyn Kv>>, args: BatchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (reader, total_bytes) = open_input(args.file.as_deref())?;
    let kv = open()?;
    let progress = progress_bar(total_bytes);
    let mut input = BufReader::with_capacity(
        INPUT_BUFFER_BYTES,
        Counting {
            inner: reader,
            progress: progress.clone(),
            lines: 0,
        },
    );
    let result = kv.batch(&mut input as &mut dyn BufRead);
    progress.finish_and_clear();
    let applied = result?;
    eprintln!(
        "applied {} puts, {} deletes (revision {}) in {:.2} s",
        applied.puts,
        applied.deletes,
        applied.revision,
        started.elapsed().as_secs_f64()
    );
    if args.json {
        println!(
            "{{\"applied\":{},\"revision\":{}}}",
            applied.applied(),
            applied.revision
        );
    }
    Ok(())
}

/// The input and, for a regular file, its size.
fn open_input(file: Option<&Path>) -> Result<(Box<dyn Read>, Option<u64>)> {
    match file {
        None => Ok((Box::new(std::io::stdin()), None)),
        Some(p) if p.as_os_str() == "-" => Ok((Box::new(std::io::stdin()), None)),
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

/// A bar (or spinner, for a stream) on stderr, hidden unless stderr is a terminal.
fn progress_bar(total_bytes: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::stderr());
    let template = if total_bytes.is_some() {
        "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {msg}"
    } else {
        "{elapsed_precise} {spinner} {bytes} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Counts bytes and lines into the progress bar as the input is read.
struct Counting<R> {
    inner: R,
    progress: ProgressBar,
    lines: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.progress.is_hidden() {
            return Ok(n);
        }
        if n == 0 {
            self.progress
                .set_message(format!("{} lines read; committing…", self.lines));
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
