//! `kvr watch [START [END]]`: follows `GET /v1/watch` and prints the
//! events, resuming after any break from 1 + the highest revision seen (an
//! event's or a progress line's), so no event is printed twice or skipped.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;

use super::{arg_bytes, bound_arg, remote, seconds};
use crate::cli::{Global, WatchArgs};
use crate::client::{Client, WatchQuery};
use crate::error::{Error, Result};
use crate::types::RangeQuery;

/// First pause before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between reconnection attempts: a restarted server is
/// picked up within this much of answering again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Shortest `--timeout` for a watch (see [`run`]).
const MIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The fields of a watch line the client looks at.
#[derive(Debug, Deserialize)]
struct Line {
    revision: Option<u64>,
    progress_revision: Option<u64>,
    error: Option<String>,
    next_revision: Option<u64>,
}

pub fn run(g: &Global, args: WatchArgs) -> anyhow::Result<()> {
    let Some(servers) = remote(g)? else {
        let give = match crate::store::served_at(&g.db) {
            Some(url) => format!("{} is served at {url}: use --server {url}", g.db.display()),
            // `--db` given as a flag beats KVR_SERVER (SPEC).
            None if crate::cli::given_on_command_line("db")
                && std::env::var("KVR_SERVER").is_ok_and(|s| !s.trim().is_empty()) =>
            {
                "--db was given, which overrides KVR_SERVER; leave --db out to watch that \
                 server"
                    .to_string()
            }
            None => "give --server URL (or KVR_SERVER)".to_string(),
        };
        return Err(Error::invalid(format!(
            "watching needs a server: {give}; a database file has no change feed"
        ))
        .into());
    };
    let query = RangeQuery {
        start: bound_arg(args.start),
        end: bound_arg(args.end),
        prefix: args.prefix.map(arg_bytes),
        ..RangeQuery::default()
    };
    query.validate()?;
    if args.from_revision == Some(0) {
        return Err(Error::invalid("--from-revision must be 1 or more").into());
    }
    let timeout = seconds(g.timeout, "--timeout")?;
    if timeout < MIN_TIMEOUT {
        // Progress comes at most every second: a shorter bound on the time
        // without progress would cut every healthy stream.
        return Err(Error::invalid(format!(
            "--timeout must be at least {} s for watch (it asks for progress every third of it, \
             and the server sends it at most every second)",
            MIN_TIMEOUT.as_secs()
        ))
        .into());
    }
    let client = super::client(g, servers)?;
    if super::stdout_was_closed() {
        // As when stdout closes during the watch: nothing can be printed.
        return Ok(());
    }
    exit_quietly_on_signals();
    exit_quietly_when_stdout_closes();
    let mut w = WatchQuery {
        query,
        from_revision: args.from_revision,
        keys_only: args.keys_only,
        // Progress at least every third of the timeout: a healthy stream
        // never trips the client's read timeout.
        progress_secs: (timeout.as_secs() / 3).max(1),
    };
    follow(&client, &mut w, args.progress, timeout)?;
    Ok(())
}

/// The reconnecting loop; returns when stdout is closed. Until a first
/// stream has been established, the servers not answering within
/// `timeout` is an error (a wrong URL must not hang); after that the watch
/// reconnects for as long as it runs.
fn follow(
    client: &Client,
    w: &mut WatchQuery,
    print_progress: bool,
    timeout: Duration,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut backoff = FIRST_BACKOFF;
    let started = std::time::Instant::now();
    let mut ever_progressed = false;
    // The stream was lost and the watch is reconnecting: said on stderr
    // once, and again when a stream is back.
    let mut away = false;
    loop {
        // Why stdout took no more: closed by its reader (the end of the
        // watch), or failed (a full disk: an error, as for `range`).
        let mut unwritten: Option<std::io::Error> = None;
        let mut progressed = false;
        let asked = w.clone();
        let resumed = ever_progressed || progressed;
        let result = client.watch(
            &asked,
            &mut |at| {
                // Waiting is what SPEC asks (the server may be catching
                // up); said, because a restored backup never catches up.
                if let (Some(at), Some(from), true) = (at, asked.from_revision, resumed)
                    && at + 1 < from
                {
                    note(&format!(
                        "the server is at revision {at}, behind revision {} this watch has \
                         seen; waiting for revision {from} (a restored backup or another \
                         database would not send the changes before it: start a new watch)",
                        from - 1
                    ));
                }
                Ok(())
            },
            &mut |text| {
                let line: Line = serde_json::from_slice(text)
                    .map_err(|e| Error::Remote(format!("bad watch line from the server: {e}")))?;
                progressed = true;
                if std::mem::take(&mut away) {
                    note("reconnected: the watch goes on");
                }
                let next = w.from_revision.unwrap_or(0);
                let print = match (line.revision, line.progress_revision, &line.error) {
                    (Some(r), _, _) if r >= next => {
                        w.from_revision = Some(r + 1);
                        true
                    }
                    (Some(_), _, _) => false, // seen before a reconnect
                    (None, Some(p), _) => {
                        w.from_revision = Some(w.from_revision.map_or(p + 1, |n| n.max(p + 1)));
                        print_progress
                    }
                    (None, None, Some(_)) => {
                        // lagging / unavailable: resume where the server says.
                        if let Some(n) = line.next_revision {
                            w.from_revision = Some(w.from_revision.map_or(n, |m| m.max(n)));
                        }
                        return Ok(false);
                    }
                    _ => false,
                };
                if print && let Err(e) = out.write_all(text).and_then(|()| out.flush()) {
                    unwritten = Some(e);
                    return Ok(false);
                }
                Ok(true)
            },
        );
        match unwritten {
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Some(e) => return Err(Error::io("cannot write output", e)),
            None => {}
        }
        match result {
            Ok(()) => {}
            Err(Error::Compacted { oldest, .. }) => {
                return Err(Error::Compacted {
                    requested: w.from_revision.unwrap_or(0),
                    oldest,
                    resumed: ever_progressed,
                });
            }
            Err(e) if retryable(&e) && (ever_progressed || progressed) => {
                if !away {
                    away = true;
                    note(&reconnecting(&e, w.from_revision.unwrap_or(0)));
                }
            }
            // Before any server has answered: exit 5 at once, as other
            // commands do for a URL where nothing listens (it waited out
            // --timeout in silence); a server that answers 503 (a cluster
            // electing its leader), or a list of several servers none of
            // which is up yet (a cluster restarting), is waited for up to
            // --timeout.
            Err(e)
                if retryable(&e)
                    && started.elapsed() < timeout
                    && (client.has_answered() || client.has_several_servers()) => {}
            Err(e) => return Err(e),
        }
        if progressed {
            ever_progressed = true;
            backoff = FIRST_BACKOFF;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A line on stderr about the connection (stdout holds only the events).
fn note(what: &str) {
    // Not `eprintln!`, which panics when stderr cannot be written.
    let _ = writeln!(std::io::stderr(), "kvr: watch: {what}");
}

/// Errors after which the watch reconnects: the server is away, restarting
/// or cut the stream.
fn retryable(e: &Error) -> bool {
    matches!(
        e,
        Error::Unavailable { .. } | Error::Io { .. } | Error::Storage(_) | Error::Remote(_)
    )
}

/// A closed stdout (`kvr watch | head -1`) ends the watch with exit 0 at
/// once, not at the next event it would print, which may never come: a
/// pipe's write end reports an error to `poll` once its reader is gone.
fn exit_quietly_when_stdout_closes() {
    std::thread::spawn(|| {
        use rustix::event::{PollFd, PollFlags, poll};
        let stdout = std::io::stdout();
        let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
        loop {
            match poll(&mut fds, None) {
                Ok(_) if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) => {
                    std::process::exit(0);
                }
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
        }
    });
}

/// Ctrl-C, SIGTERM and SIGHUP end the watch with exit 0: interrupting it is
/// how it is meant to stop. Every printed line was flushed already.
fn exit_quietly_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                std::process::exit(0);
            }
        });
    }
}

/// What a lost stream says: why, and from where it resumes. A server's 503
/// speaks of a request to apply ("the request was not applied; retry"),
/// which a watch does not send (found by an audit).
fn reconnecting(e: &dyn std::fmt::Display, from: u64) -> String {
    let said = e.to_string();
    let said = said
        .strip_suffix("; the request was not applied; retry")
        .unwrap_or(&said);
    format!("{said}; reconnecting (from revision {from}) until interrupted")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lost_stream_says_nothing_of_applying() {
        let e = "no cluster leader is reachable right now (an election); the request was not \
                 applied; retry";
        assert_eq!(
            super::reconnecting(&e, 7),
            "no cluster leader is reachable right now (an election); reconnecting (from \
             revision 7) until interrupted"
        );
    }
}
