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
use std::io::Write;
use std::time::Duration;

use crate::cli::{Cli, Command, Global, given_on_command_line};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::kv::{Kv, LocalKv};
use crate::limits::DEFAULT_MAX_VALUE_BYTES;
use crate::store::{OpenMode, StoreOptions};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    // Every command, `serve`, `bench` and `completions` included: which
    // of the two was meant cannot be guessed.
    if given_on_command_line("db") && given_on_command_line("server") {
        return Err(both_db_and_server().into());
    }
    match cli.command {
        // Each checks its arguments before it opens (or creates) anything.
        Command::Put(args) => put::run(|| open(g, OpenMode::Create), args),
        Command::Get(args) => get::run(|| open(g, OpenMode::ReadOnly), args),
        Command::Delete(args) => delete::run(|| open(g, OpenMode::MustExist), args),
        Command::Range(args) => range::run(|| open(g, OpenMode::ReadOnly), args),
        Command::Watch(args) => watch::run(g, args),
        Command::Batch(args) => batch::run(
            || open(g, OpenMode::Create),
            args,
            remote(g)?.is_some(),
            &g.db,
        ),
        Command::Stats(_) => stats::run(&*open(g, OpenMode::ReadOnly)?),
        Command::Backup(args) => backup::run(g, args),
        Command::Check(_) => check::run(g),
        Command::Compact(_) => compact::run(g),
        Command::Serve(args) => serve::run(g, *args),
        Command::Bench(args) => bench::run(g, args),
        Command::Cluster(args) => cluster::run(g, args),
        Command::Tui(args) => tui::run(cli.global, args),
        Command::Openapi(_) => openapi::run(),
        Command::Completions(args) => completions::run(args),
    }
}

/// Opens the data source the global options name.
fn open(g: &Global, mode: OpenMode) -> Result<Box<dyn Kv>> {
    if let Some(servers) = remote(g)? {
        let timeout = seconds(g.timeout, "--timeout")?;
        let client = Client::new(servers, token(g)?, timeout, g.cacert.as_deref())?
            .stale_reads(g.consistency == crate::cli::Consistency::Stale);
        return Ok(Box::new(client));
    }
    Ok(Box::new(LocalKv {
        store: crate::engine::open_store(&g.db, mode, &store_options(g)?)?.0,
        max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
    }))
}

/// Store tunables from the global options.
pub fn store_options(g: &Global) -> Result<StoreOptions> {
    let mut opts = StoreOptions::default();
    if let Some(mib) = g.cache_mib {
        if mib == 0 {
            return Err(Error::invalid("--cache-mib must be at least 1"));
        }
        opts.cache_bytes = usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    }
    if !(g.lock_timeout.is_finite() && g.lock_timeout >= 0.0) {
        return Err(Error::invalid(
            "--lock-timeout must be a number of seconds, 0 or more",
        ));
    }
    opts.lock_timeout = Duration::from_secs_f64(g.lock_timeout.min(1e9));
    Ok(opts)
}

/// A key or value argument as bytes: on Unix any argument bytes are allowed.
fn arg_bytes(arg: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    arg.into_vec()
}

/// Prints `{"revision":N}` and a newline.
fn print_revision(revision: u64) -> Result<()> {
    print_out(format!("{{\"revision\":{revision}}}\n"))
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

/// The `--server` list when commands go to a server: `--server` (flag or
/// KVR_SERVER) unless `--db` was given as a flag; both flags is a usage error.
fn remote(g: &Global) -> Result<Option<&str>> {
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
        return Ok(g.token.clone().filter(|t| !t.is_empty()));
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
    Ok(Some(token.to_string()))
}

/// A positive number of seconds from a flag.
fn seconds(secs: f64, flag: &str) -> Result<Duration> {
    if secs.is_finite() && secs > 0.0 {
        Ok(Duration::from_secs_f64(secs.min(1e9)))
    } else {
        Err(Error::invalid(format!(
            "{flag} must be a positive number of seconds"
        )))
    }
}
