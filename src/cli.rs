//! The command line, as clap derive types. Doc comments are the help text.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kvr: a persistent key-value store on one redb file.
///
/// Keys and values are bytes; every write takes the next database revision.
/// Exit codes: 0 ok, 1 not found, 2 bad usage or input, 3 failure,
/// 4 revision precondition failed, 5 unavailable (retry).
#[derive(Debug, Parser)]
#[command(name = "kvr", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The database file.
    #[arg(long, global = true, env = "KVR_DB", default_value = "kvr.redb")]
    pub db: PathBuf,

    /// Wait up to SECS for another process to release the database file.
    #[arg(
        long,
        global = true,
        env = "KVR_LOCK_TIMEOUT",
        value_name = "SECS",
        default_value_t = 0.0
    )]
    pub lock_timeout: f64,

    /// Page cache of the storage engine in MiB, the main bound on memory
    /// [default: an eighth of available memory, 16 to 1024].
    #[arg(long, global = true, env = "KVR_CACHE_MIB", value_name = "MIB")]
    pub cache_mib: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Put(PutArgs),
    Get(GetArgs),
    Delete(DeleteArgs),
    Range(RangeArgs),
    Batch(BatchArgs),
    Stats(StatsArgs),
    Tui(TuiArgs),
    Completions(CompletionsArgs),
}

/// Store a value (from VALUE, or stdin to EOF when VALUE is absent).
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key (1 to 4096 bytes).
    pub key: OsString,
    /// The value, taken literally (`-` included); use `--` before a value
    /// that starts with `-`. Without it, stdin is read (binary-safe).
    pub value: Option<OsString>,
    /// Write only if the key's current revision is N (0: only if absent).
    #[arg(long, value_name = "N")]
    pub if_revision: Option<u64>,
    /// Print {"revision":N}.
    #[arg(long)]
    pub json: bool,
}

/// Write a key's value to stdout, byte for byte.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key.
    pub key: OsString,
    /// Print the key's JSON line (key, value, revision) instead.
    #[arg(long)]
    pub json: bool,
}

/// Remove a key (exit 1 if it does not exist).
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The key.
    pub key: OsString,
    /// Delete only if the key's current revision is N (N > 0).
    #[arg(long, value_name = "N")]
    pub if_revision: Option<u64>,
    /// Print {"revision":N}.
    #[arg(long)]
    pub json: bool,
}

/// Print keys in [START, END) as JSON lines, from one consistent snapshot.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// First key (inclusive); omitted: from the first key.
    pub start: Option<OsString>,
    /// End key (exclusive); omitted: to the last key.
    pub end: Option<OsString>,
    /// Only keys starting with P (intersected with START/END).
    #[arg(long, value_name = "P")]
    pub prefix: Option<OsString>,
    /// At most N lines.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// The same keys, in descending order.
    #[arg(long)]
    pub reverse: bool,
    /// Print only the keys.
    #[arg(long)]
    pub keys_only: bool,
}

/// Apply JSON lines atomically: all of them or none.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Input file; omitted or `-`: stdin.
    pub file: Option<PathBuf>,
    /// Print {"applied":n,"revision":N} on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Print {"keys":…,"revision":…,"file_bytes":…}.
#[derive(Debug, Args)]
pub struct StatsArgs {}

/// Browse and edit the database in a full-screen terminal UI (? for keys).
#[derive(Debug, Args)]
pub struct TuiArgs {}

/// Print a shell completion script.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}
