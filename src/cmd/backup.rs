//! `kvr backup DEST`: a copy of the database at one revision, in a new
//! file (see `crate::backup` for the stream and the file).
//!
//! With `--server` it reads `GET /v1/backup`; with `--db` a snapshot of a
//! file no other process holds. Either way one read snapshot, streamed:
//! memory stays bounded whatever the database size. SIGINT and SIGTERM
//! stop the copy and remove the temporary file.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{remote, store_options};
use crate::backup::{Copier, Dest};
use crate::cli::{BackupArgs, Global};
use crate::client::{BackupEnd, Client};
use crate::error::{Error, Result};
use crate::store::{OpenMode, Store, StoreOptions};
use crate::types::RangeQuery;

/// What a finished backup reports.
struct Done {
    revision: u64,
    keys: u64,
}

pub fn run(g: &Global, args: BackupArgs) -> anyhow::Result<()> {
    let mut opts = store_options(g)?;
    // Two databases are open at once (source and copy, or copy only):
    // together they keep to the one cache budget.
    opts.cache_bytes /= 2;
    let stop = interrupt_flag()?;
    let done = match remote(g)? {
        Some(servers) => {
            let mut client = super::client(g, servers)?;
            let dest = Dest::create(&args.dest, args.force)?;
            let done = from_server(&mut client, &dest, &opts, &stop)
                .and_then(|done| interrupted(&stop).map(|()| done))
                .map_err(|e| failed(e, &args.dest, "the server's database"))?;
            (done, dest.finish()?)
        }
        None => {
            refuse_own_file(g, &args)?;
            verify_source(g, &opts)?;
            let src = super::open_file(&g.db, OpenMode::ReadOnly, &opts)?;
            let dest = Dest::create(&args.dest, args.force)?;
            let done = from_file(&src, &dest, &opts, &stop)
                .and_then(|done| interrupted(&stop).map(|()| done))
                .map_err(|e| failed(e, &args.dest, &g.db.display().to_string()))?;
            drop(src);
            (done, dest.finish()?)
        }
    };
    let (Done { revision, keys }, bytes) = done;
    if args.json {
        super::print_after_write(
            format!("{{\"revision\":{revision},\"keys\":{keys},\"bytes\":{bytes}}}\n"),
            &format!(
                "the backup was written to {} ({keys} key{} at revision {revision})",
                args.dest.display(),
                if keys == 1 { "" } else { "s" }
            ),
        )?;
    } else {
        // Not `eprintln!`, which panics when stderr cannot be written.
        let _ = writeln!(
            std::io::stderr(),
            "backed up {keys} key{} at revision {revision} to {} ({bytes} bytes)",
            if keys == 1 { "" } else { "s" },
            args.dest.display()
        );
    }
    Ok(())
}

/// The error `e` of a copy into DEST from `src`, saying what it left: no
/// DEST (the copy was in the temporary directory, removed as `run`
/// returns; an existing DEST is as it was) and the source as it was (a
/// backup only reads it). `e` stays the cause, for the exit code. An
/// interruption says so itself.
fn failed(e: Error, dest: &Path, src: &str) -> anyhow::Error {
    if matches!(e, Error::Interrupted(_)) {
        return e.into();
    }
    let dest = dest.display();
    anyhow::Error::from(e).context(format!(
        "backup to {dest} failed ({dest} was not written; {src} is unchanged)"
    ))
}

/// The file is checked first, as `kvr check` checks it (`pg_basebackup`
/// verifies page checksums likewise): redb verifies a page's checksum in
/// its integrity check, not when it reads the page, so a damaged value was
/// copied as read, and the copy, written anew, passed its own check. About
/// half again the time (1M keys: 1.03-1.29 s against 0.74-0.84 s).
fn verify_source(g: &Global, opts: &StoreOptions) -> Result<()> {
    let report = crate::store::check(&g.db, super::check::CHECK_CACHE_BYTES, opts.lock_timeout)?;
    let Some(first) = report.problems.first() else {
        return Ok(());
    };
    let db = g.db.display();
    let more = match report.problems.len() {
        1 => String::new(),
        n => format!(", and {} more", n - 1),
    };
    Err(Error::Corrupt(format!(
        "{db} is damaged ({}: {}{more}), so it is not backed up: kvr --db {db} check lists what \
         is wrong; restore a backup of it, or copy what can still be read (kvr --db {db} range \
         | kvr --db NEW batch)",
        first.place, first.what
    )))
}

/// DEST may not be the database being copied.
fn refuse_own_file(g: &Global, args: &BackupArgs) -> Result<()> {
    let same = match (g.db.canonicalize(), args.dest.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(Error::invalid(format!(
            "DEST {} is the database itself; name a new file",
            args.dest.display()
        )));
    }
    Ok(())
}

fn from_file(src: &Store, dest: &Dest, opts: &StoreOptions, stop: &AtomicBool) -> Result<Done> {
    let snap = src.snapshot()?;
    let revision = snap.revision()?;
    let progress = progress_bar(Some(snap.reader()?.keys()));
    let out = dest.open(opts)?;
    let mut copier = Copier::new(&out, revision);
    let now = crate::types::now_ms();
    snap.range(&RangeQuery::default(), |key, rec| {
        interrupted(stop)?;
        // Absent to reads (the next write deletes them): not copied.
        if rec.expires_at_ms.is_some_and(|at| at <= now) {
            return Ok(true);
        }
        copier.push(key, rec.item())?;
        progress.inc(1);
        Ok(true)
    })?;
    let done = finish(copier, revision, &progress)?;
    dest.compact(out)?;
    Ok(done)
}

/// A backup through `--server`. With several servers, a stream that
/// breaks off or stalls (its server stopped, a failover) is started again
/// from the beginning, at most once per server: the server it came from
/// goes to the end of the list, and the client tries the list in order,
/// so the next one is asked (a stalled server still answers, and was asked
/// again each time). The copy so far is thrown away, and the new one is of
/// the revision its stream names.
fn from_server(
    client: &mut Client,
    dest: &Dest,
    opts: &StoreOptions,
    stop: &AtomicBool,
) -> Result<Done> {
    let progress = progress_bar(None);
    // One server alone is not asked again (as for `range`).
    let restarts = match client.server_count() {
        1 => 0,
        servers => servers,
    };
    let mut restart = 0;
    loop {
        let out = dest.open(opts)?;
        match copy_from_server(client, &out, &progress, stop)? {
            Copied::Done(done) => {
                dest.compact(out)?;
                return Ok(done);
            }
            Copied::Broke { url, error: e } if restart < restarts => {
                restart += 1;
                client.ask_last(&url);
                drop(out);
                dest.discard()?;
                progress.reset();
                progress.suspend(|| {
                    // Not `eprintln!`, which panics when stderr cannot be written.
                    let _ = writeln!(
                        std::io::stderr(),
                        "kvr: backup: {e}; starting again through the --server list"
                    );
                });
            }
            Copied::Broke { error, .. } => return Err(error),
        }
    }
}

/// How one attempt of [`from_server`] ended.
enum Copied {
    Done(Done),
    Broke { url: String, error: Error },
}

/// One backup stream copied into `out`, committed durably.
fn copy_from_server(
    client: &Client,
    out: &Store,
    progress: &ProgressBar,
    stop: &AtomicBool,
) -> Result<Copied> {
    let revision = Cell::new(0);
    let mut copier: Option<Copier<'_>> = None;
    let end = client.backup(
        &mut |r| {
            revision.set(r);
            Ok(())
        },
        &mut |key, item| {
            interrupted(stop)?;
            let c = copier.get_or_insert_with(|| Copier::new(out, revision.get()));
            c.push(key, item)?;
            progress.inc(1);
            Ok(())
        },
    )?;
    if let BackupEnd::Broke { url, error } = end {
        return Ok(Copied::Broke { url, error });
    }
    let copier = copier.unwrap_or_else(|| Copier::new(out, revision.get()));
    Ok(Copied::Done(finish(copier, revision.get(), progress)?))
}

/// Commits the copy durably. The callers then compact the file
/// ([`Dest::compact`]).
fn finish(copier: Copier<'_>, revision: u64, progress: &ProgressBar) -> Result<Done> {
    let keys = copier.keys;
    progress.set_message("syncing…");
    copier.finish()?;
    progress.finish_and_clear();
    Ok(Done { revision, keys })
}

/// Set by SIGINT or SIGTERM: the copy stops with an error, and the
/// temporary file is removed as it unwinds. Looked at for each key copied
/// and once more before DEST is put in place: a signal during the final
/// sync and compaction was ignored, and DEST written (found by an audit).
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, flag.clone())
            .map_err(|e| Error::io("cannot install a signal handler", e))?;
    }
    Ok(flag)
}

fn interrupted(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Interrupted(
            "interrupted: the backup was not written".to_string(),
        ));
    }
    Ok(())
}

/// A bar over the key count when it is known, else a spinner; on stderr,
/// hidden unless stderr is a terminal.
fn progress_bar(total_keys: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total_keys, ProgressDrawTarget::stderr());
    let template = if total_keys.is_some() {
        "{elapsed_precise} [{bar:30}] {pos}/{len} keys {rate} {msg}"
    } else {
        "{elapsed_precise} {spinner} {pos} keys {rate} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        // Whole keys a second: `{per_sec}` shows four decimals
        // (`1,261,466.2163/s`).
        let style = style.progress_chars("=> ").with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", indicatif::HumanCount(state.per_sec() as u64));
            },
        );
        bar.set_style(style);
    }
    bar
}
