//! One module per subcommand; [`run`] dispatches.
//!
//! Each data command takes a `&dyn Kv` (`open` picks the local file or the
//! HTTP client), so it behaves the same with `--db` and `--server`. Typed [`crate::Error`]s pass through `anyhow` and are
//! turned into exit codes once, in `main`.

mod backup;
mod batch;
mod bench;
mod check;
mod cluster;
mod compact;
mod completions;
mod delete;
mod get;
mod openapi;
mod put;
mod range;
mod serve;
mod stats;
mod tui;
mod watch;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::{Cli, Command, Global, given_on_command_line};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::kv::{Kv, LocalKv};
use crate::limits::DEFAULT_MAX_VALUE_BYTES;
use crate::store::{OpenMode, Store, StoreOptions};

/// Runs the parsed command line. A panic of the storage engine (redb, on
/// a damaged file) is an error that says so, exit 3, not a crash.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match remote(&cli.global) {
        Ok(None) => Some(cli.global.db.clone()),
        _ => None,
    };
    match crate::panics::contain(|| run_command(cli)) {
        Ok(result) => result,
        Err(caught) if caught.in_storage_engine => Err(match file {
            Some(db) => caught.into_error(&db, &format!("kvr --db {} check", db.display())),
            None => Error::Storage(format!(
                "the storage engine (redb) stopped on an internal error: {}",
                caught.text
            )),
        }
        .into()),
        Err(caught) => std::panic::resume_unwind(Box::new(caught.text)),
    }
}

fn run_command(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    // Every command, `serve`, `bench` and `completions` included: which
    // of the two was meant cannot be guessed.
    if given_on_command_line("db") && given_on_command_line("server") {
        return Err(both_db_and_server().into());
    }
    // Checked whichever command runs, as its parse is: a stale
    // KVR_TIMEOUT=0 is a mistake with --db too (it passed until the day
    // the same script used --server). Not for the commands that use no
    // option (`completions`, `openapi`), as their parse does not.
    if !cli.command.reads_no_option() {
        seconds(g.timeout, "--timeout")?;
        // So is a token that no header could carry (a file is read only
        // when a server is asked).
        if let Some(t) = g.token.as_deref().filter(|t| !t.is_empty()) {
            check_token(t, token_source())?;
        }
    }
    match cli.command {
        // Each checks its arguments before it opens (or creates) anything.
        Command::Put(args) => {
            let limit = local_value_limit(g, args.max_value_bytes)?;
            let local = limit.is_some();
            limit_hint(
                put::run(
                    |key, if_revision| {
                        refused_by_file(g, key, if_revision, false)?;
                        open_limited(g, OpenMode::CreateOnCommit, limit)
                    },
                    args,
                    limit,
                ),
                local,
            )
        }
        Command::Get(args) => get::run(|| open(g, OpenMode::ReadOnly), args),
        Command::Delete(args) => delete::run(
            |key| match key {
                Some((key, if_revision)) => {
                    refused_by_file(g, key, if_revision, true)?;
                    open(g, OpenMode::MustExist)
                }
                // Opened for writing only when there is something to
                // delete (`Store::delete_range`).
                None => open(g, OpenMode::ExistingWriteOnDemand),
            },
            args,
        ),
        Command::Range(args) => range::run(|| open(g, OpenMode::ReadOnly), args),
        Command::Watch(args) => watch::run(g, args),
        Command::Batch(args) => {
            let limit = local_value_limit(g, args.max_value_bytes)?;
            let local = limit.is_some();
            limit_hint(
                batch::run(
                    || open_limited(g, OpenMode::WriteOnDemand, limit),
                    args,
                    !local,
                    &g.db,
                ),
                local,
            )
        }
        Command::Stats(_) => stats::run(&*open(g, OpenMode::ReadOnly)?),
        Command::Backup(args) => backup::run(g, args),
        Command::Check(args) => check::run(g, &args),
        Command::Compact(args) => compact::run(g, &args),
        Command::Serve(args) => serve::run(g, *args),
        Command::Bench(args) => bench::run(g, args),
        Command::Cluster(args) => cluster::run(g, args),
        Command::Tui(args) => tui::run(cli.global, args),
        Command::Openapi(_) => openapi::run(),
        Command::Completions(args) => completions::run(args),
    }
}

/// The value limit of a write command's local file: `--max-value-bytes`
/// (default 16 MiB); `None` with `--server`, where the server's limit
/// decides, so the flag is a usage error there.
fn local_value_limit(g: &Global, flag: Option<usize>) -> Result<Option<usize>> {
    match (remote(g)?, flag) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "--max-value-bytes applies to a local file (--db); with --server the server's \
             limit (serve --max-value-bytes) decides",
        )),
        (Some(_), None) => Ok(None),
        (None, flag) => Ok(Some(flag.unwrap_or(DEFAULT_MAX_VALUE_BYTES))),
    }
}

/// A value over a local file's limit: say how to raise it (a server's
/// limit is its own flag, named in its answer). Any other error is passed
/// on as it is, with the context it carries (`batch --chunk-size` says
/// there which lines earlier parts applied).
fn limit_hint(result: anyhow::Result<()>, local: bool) -> anyhow::Result<()> {
    let e = match result {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    // Values only ("value of N bytes for key K …", "the value on stdin
    // …"): the key limit ("key of N bytes …", 4096) is fixed.
    let value_over_limit =
        |message: &str| message.contains("over the limit of") && !message.starts_with("key of ");
    match e.downcast_ref::<Error>() {
        Some(Error::Invalid { line, message }) if local && value_over_limit(message) => {
            Err(Error::Invalid {
                line: *line,
                message: format!("{message}; --max-value-bytes BYTES raises the limit"),
            }
            .into())
        }
        _ => Err(e),
    }
}

/// Opens the data source the global options name.
fn open(g: &Global, mode: OpenMode) -> Result<Box<dyn Kv>> {
    open_limited(g, mode, None)
}

/// [`open`] with a local file's value limit (`None`: the default).
fn open_limited(g: &Global, mode: OpenMode, max_value: Option<usize>) -> Result<Box<dyn Kv>> {
    if let Some(servers) = remote(g)? {
        return Ok(Box::new(client(g, servers)?));
    }
    Ok(Box::new(LocalKv {
        store: open_file(&g.db, mode, &store_options(g)?)?,
        max_value_bytes: max_value.unwrap_or(DEFAULT_MAX_VALUE_BYTES),
    }))
}

/// Opens a database file for a command, made whole first: the write-ahead
/// log a crashed server left is replayed (`engine::open_store`), and a
/// stopped cluster member's committed Raft entries are applied
/// (`cluster::catch_up`).
pub(crate) fn open_file(path: &Path, mode: OpenMode, opts: &StoreOptions) -> Result<Store> {
    let (store, _) = crate::engine::open_store(path, mode, opts)?;
    Ok(crate::cluster::catch_up::apply_committed(store, path, mode, opts)?.0)
}

/// Refuses a put or delete of `key` that the file already refuses (a
/// failed `if_revision`, a delete of a missing key: SPEC "nothing
/// changes"), through a read-only open: redb rewrites the header of a file
/// opened for writing, and may trim its end when it closes, even when
/// nothing is written. Nothing to do over `--server`, for an unconditional
/// put, or for a file yet to be created.
fn refused_by_file(g: &Global, key: &[u8], if_revision: Option<u64>, delete: bool) -> Result<()> {
    if remote(g)?.is_some() || (if_revision.is_none() && !delete) {
        return Ok(());
    }
    let store = match open_file(&g.db, OpenMode::ReadOnly, &store_options(g)?) {
        Ok(store) => store,
        Err(Error::DatabaseMissing { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    LocalKv {
        store,
        max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
    }
    .refuses(key, if_revision, delete)
}

/// A client of `servers` with the global options: token, `--timeout`,
/// `--cacert` and `--consistency` (every read route takes it, SPEC).
pub(crate) fn client(g: &Global, servers: &str) -> Result<Client> {
    let timeout = seconds(g.timeout, "--timeout")?;
    Ok(
        Client::new(servers, token(g)?, timeout, g.cacert.as_deref())?
            .stale_reads(g.consistency == crate::cli::Consistency::Stale),
    )
}

/// Store tunables from the global options.
pub fn store_options(g: &Global) -> Result<StoreOptions> {
    let mut opts = StoreOptions::default();
    if let Some(mib) = g.cache_mib {
        if mib == 0 {
            return Err(Error::invalid(format!(
                "{} must be at least 1",
                named("--cache-mib")
            )));
        }
        opts.cache_bytes = usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    }
    if !(g.lock_timeout.is_finite() && g.lock_timeout >= 0.0) {
        return Err(Error::invalid(format!(
            "{} must be a number of seconds, 0 or more",
            named("--lock-timeout")
        )));
    }
    opts.lock_timeout = Duration::from_secs_f64(g.lock_timeout.min(1e9));
    Ok(opts)
}

/// A START or END argument as a range bound: an empty one is no bound, as
/// `start=` and `end=` are over HTTP (no key is empty), so `--db` and
/// `--server` read it alike.
fn bound_arg(arg: Option<OsString>) -> Option<Vec<u8>> {
    arg.map(arg_bytes).filter(|b| !b.is_empty())
}

/// A key or value argument as bytes: on Unix any argument bytes are allowed.
fn arg_bytes(arg: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    arg.into_vec()
}

/// Prints `{"revision":N}` and a newline after `what` (`put`, `delete`)
/// was applied at that revision.
fn print_revision(revision: u64, what: &str) -> Result<()> {
    print_after_write(
        format!("{{\"revision\":{revision}}}\n"),
        &format!("the {what} was applied at revision {revision}"),
    )
}

/// Writes `text` to stdout and flushes it. Unlike `println!` it never
/// panics: a closed stdout is a broken-pipe error (exit 0, `main`), a full
/// disk the error "disk full" (exit 3).
pub(crate) fn print_out(text: impl AsRef<[u8]>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write output", e))
}

/// Writes the output of a write that has been applied (see [`print_out`]).
/// A failure to print is not a failure of the write: the error says that
/// `done` happened and only the output failed, so nobody repeats a write
/// that is not idempotent. Still exit 3 (the command failed to do all it
/// was asked); a closed stdout stays a quiet exit 0 (`main`).
pub(crate) fn print_after_write(text: impl AsRef<[u8]>, done: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            // Not `Error::io`: its "disk full … retry" would ask for the write again.
            context: format!("{done}; only writing its output failed"),
            source,
        })
}

/// The `--server` list when commands go to a server: `--server` (flag or
/// KVR_SERVER) unless `--db` was given as a flag; both flags is a usage error.
fn remote(g: &Global) -> Result<Option<&str>> {
    let blank = g.server.as_deref().is_some_and(|s| s.trim().is_empty());
    if blank && given_on_command_line("server") {
        // `--server "$URL"` with $URL unset: a script that asked for a
        // server must not write to a file here instead. (An empty
        // KVR_SERVER is unset, as an empty KVR_DB is.)
        return Err(Error::invalid(
            "--server needs a URL (it was given empty); to use a file, give --db PATH",
        ));
    }
    let Some(server) = g.server.as_deref().filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    if !given_on_command_line("db") {
        return Ok(Some(server));
    }
    if given_on_command_line("server") {
        return Err(both_db_and_server());
    }
    Ok(None)
}

fn both_db_and_server() -> Error {
    Error::invalid("give either --db or --server, not both")
}

/// The bearer token of `--token` / KVR_TOKEN or `--token-file`.
pub(crate) fn token(g: &Global) -> Result<Option<String>> {
    let Some(file) = &g.token_file else {
        let token = g.token.clone().filter(|t| !t.is_empty());
        if let Some(t) = &token {
            check_token(t, token_source())?;
        }
        return Ok(token);
    };
    if given_on_command_line("token") {
        return Err(Error::invalid(
            "give either --token or --token-file, not both",
        ));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::io(format!("cannot read the token file {}", file.display()), e))?;
    let token = text.strip_suffix('\n').unwrap_or(&text);
    let token = token.strip_suffix('\r').unwrap_or(token);
    if token.is_empty() {
        return Err(Error::invalid(format!(
            "the token file {} is empty",
            file.display()
        )));
    }
    check_token(token, &format!("the token file {}", file.display()))?;
    Ok(Some(token.to_string()))
}

/// Where `--token`'s value came from, for its errors: the flag, or the
/// variable a script or a shell profile set.
fn token_source() -> &'static str {
    match crate::cli::given_on_command_line("token") {
        true => "--token",
        false => "KVR_TOKEN",
    }
}

/// A token goes in an HTTP header, where control characters cannot be
/// sent: say so, naming where the token came from, instead of the HTTP
/// library's "failed to parse header value". Nor can anything beyond
/// ASCII be sent as text there, nor white space at either end, which HTTP
/// strips from a header's value: a server given such a token would start
/// and refuse every client, its own CLI with the same token file too
/// (found by an audit), and the client could not send it.
pub(crate) fn check_token(token: &str, source: &str) -> Result<()> {
    if token.starts_with([' ', '\t']) || token.ends_with([' ', '\t']) {
        return Err(Error::invalid(format!(
            "the token begins or ends with white space, which HTTP drops from a header, so no \
             client could present it; remove it, and check {source}"
        )));
    }
    if let Some((at, c)) = token
        .char_indices()
        .find(|&(_, c)| c.is_ascii_control() && c != '\t')
    {
        return Err(Error::invalid(format!(
            "the token contains a control character ({c:?} at byte {at}), which cannot be \
             sent in an HTTP header; check {source}"
        )));
    }
    if let Some((at, c)) = token.char_indices().find(|&(_, c)| !c.is_ascii()) {
        return Err(Error::invalid(format!(
            "the token contains {c:?} at byte {at}, which is not ASCII: an HTTP header carries \
             only ASCII text, so no client could present it; use printable ASCII, and check \
             {source}"
        )));
    }
    Ok(())
}

/// What a command reading stdin says on a terminal, when it is closed and
/// when it is a directory.
pub struct StdinUse {
    pub reading: &'static str,
    pub closed: &'static str,
    pub directory: &'static str,
}

/// Whether fd 0 was closed when the process started, as the binary saw it
/// before Rust's runtime put /dev/null there (`main.rs`); unset where it
/// cannot tell.
static STDIN_AT_START: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether fd 1 was closed when the process started (`main.rs`); unset
/// where it cannot tell.
static STDOUT_AT_START: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Tells [`check_stdin`] whether fd 0 was closed at the process's start,
/// and `stdout_was_closed` whether fd 1 was.
pub fn stdio_closed_at_start(stdin: bool, stdout: bool) {
    let _ = STDIN_AT_START.set(stdin);
    let _ = STDOUT_AT_START.set(stdout);
}

/// Whether stdout was closed when the process started (`kvr watch >&-`):
/// what is printed then goes to the /dev/null Rust's runtime put there.
fn stdout_was_closed() -> bool {
    STDOUT_AT_START.get().copied().unwrap_or(false)
}

/// Refuses a stdin that cannot be read, and says on a terminal that it is
/// read (otherwise a user who forgot VALUE sees a command that hangs).
///
/// A closed stdin (`<&-`, some service managers) is not an empty input:
/// Rust's runtime puts /dev/null, opened read-write, in place of a closed
/// fd 0 at start, and reads of a stdin opened write-only (as `nohup`
/// leaves it) are taken as an end of input; either would store an empty
/// value or apply an empty batch. `< /dev/null` (read-only) still means an
/// empty input, and so does a /dev/null opened read-write by the parent
/// (Python's `stdin=subprocess.DEVNULL`, systemd's `StandardInput=null`)
/// where the binary saw fd 0 open at start; where it could not tell, a
/// read-write /dev/null is taken as closed.
pub fn check_stdin(what: StdinUse) -> Result<()> {
    use rustix::fs::{FileType, OFlags};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let _ = writeln!(std::io::stderr(), "{}", what.reading);
        return Ok(());
    }
    // A directory (`< DIR`) reads as an I/O error (EISDIR): say it is
    // a usage error, as a directory given as FILE is.
    if rustix::fs::fstat(&stdin)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
    {
        return Err(Error::invalid(what.directory));
    }
    let closed = || Error::invalid(what.closed);
    let Ok(flags) = rustix::fs::fcntl_getfl(&stdin) else {
        return Err(closed());
    };
    match flags & OFlags::RWMODE {
        mode if mode == OFlags::WRONLY => Err(closed()),
        mode if mode == OFlags::RDWR => {
            let is_null = match (rustix::fs::fstat(&stdin), rustix::fs::stat("/dev/null")) {
                (Ok(fd0), Ok(null)) => {
                    FileType::from_raw_mode(fd0.st_mode) == FileType::CharacterDevice
                        && fd0.st_rdev == null.st_rdev
                }
                _ => false,
            };
            let was_closed = STDIN_AT_START.get().copied().unwrap_or(true);
            if is_null && was_closed {
                Err(closed())
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// A positive number of seconds from a flag, at least a millisecond:
/// below it nothing can answer in time, and a write so timed was sent
/// and given up at once, its outcome unknown.
fn seconds(secs: f64, flag: &str) -> Result<Duration> {
    if secs.is_finite() && secs >= 0.001 {
        Ok(Duration::from_secs_f64(secs.min(1e9)))
    } else {
        Err(Error::invalid(format!(
            "{} must be a positive number of seconds, at least 0.001",
            named(flag)
        )))
    }
}

/// A flag as an error about its value names it: with the environment
/// variable it came from when it was not typed (a stale `KVR_TIMEOUT=0` in
/// a profile is not a `--timeout` the user gave).
fn named(flag: &str) -> String {
    match crate::cli::variable_of(&crate::cli::command(), flag) {
        Some((id, variable))
            if std::env::var_os(&variable).is_some() && !crate::cli::given_on_command_line(&id) =>
        {
            format!(
                "{flag} (from the environment variable {})",
                variable.to_string_lossy()
            )
        }
        _ => flag.to_string(),
    }
}
