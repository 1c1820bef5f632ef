//! One module per subcommand; [`run`] dispatches.
//!
//! Each command takes a `&dyn Kv`, so it behaves the same on a local file and
//! (later) on a server. Typed [`crate::Error`]s pass through `anyhow` and are
//! turned into exit codes once, in `main`.

mod batch;
mod completions;
mod delete;
mod get;
mod put;
mod range;
mod stats;
mod tui;

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use crate::cli::{Cli, Command, Global};
use crate::error::{Error, Result};
use crate::kv::{Kv, LocalKv};
use crate::limits::DEFAULT_MAX_VALUE_BYTES;
use crate::store::{OpenMode, Store, StoreOptions};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Put(args) => put::run(&*open(g, OpenMode::Create)?, args),
        Command::Get(args) => get::run(&*open(g, OpenMode::MustExist)?, args),
        Command::Delete(args) => delete::run(&*open(g, OpenMode::MustExist)?, args),
        Command::Range(args) => range::run(&*open(g, OpenMode::MustExist)?, args),
        Command::Batch(args) => batch::run(&*open(g, OpenMode::Create)?, args),
        Command::Stats(_) => stats::run(&*open(g, OpenMode::MustExist)?),
        Command::Tui(args) => tui::run(cli.global, args),
        Command::Completions(args) => completions::run(args),
    }
}

/// Opens the data source the global options name.
fn open(g: &Global, mode: OpenMode) -> Result<Box<dyn Kv>> {
    Ok(Box::new(LocalKv {
        store: Store::open(&g.db, mode, &store_options(g)?)?,
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
    let mut out = std::io::stdout().lock();
    writeln!(out, "{{\"revision\":{revision}}}").map_err(|e| Error::io("cannot write output", e))
}
