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

/// Options every command takes, shown under their own heading in every
/// command's help. `hide_env_values`: the help names each variable
/// (`[env: KVR_DB]`) without printing an empty `KVR_DB=` when it is unset.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The database file.
    #[arg(
        long,
        global = true,
        env = "KVR_DB",
        hide_env_values = true,
        default_value = "kvr.redb"
    )]
    pub db: PathBuf,

    /// Wait up to SECS for another process to release the database file.
    #[arg(
        long,
        global = true,
        env = "KVR_LOCK_TIMEOUT",
        hide_env_values = true,
        value_name = "SECS",
        default_value_t = 0.0,
        value_parser = parse_seconds,
        // `-1` is a value (refused with a reason), not an unknown flag.
        allow_negative_numbers = true
    )]
    pub lock_timeout: f64,

    /// Page cache of the storage engine in MiB, the main bound on memory
    /// [default: an eighth of available memory, 16 to 1024; to 4096 for serve].
    #[arg(
        long,
        global = true,
        env = "KVR_CACHE_MIB",
        hide_env_values = true,
        value_name = "MIB",
        allow_negative_numbers = true,
        value_parser = parse_whole,
    )]
    pub cache_mib: Option<u64>,

    /// Run the command against a running `kvr serve` instead of a local
    /// file; a comma-separated list is tried in order (`serve` ignores
    /// KVR_SERVER).
    #[arg(
        long,
        global = true,
        env = "KVR_SERVER",
        hide_env_values = true,
        value_name = "URL[,URL...]"
    )]
    pub server: Option<String>,

    /// Bearer token: the one to send with --server, or the one `serve` requires.
    #[arg(long, global = true, env = "KVR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Read the token from FILE (trailing newline removed).
    #[arg(long, global = true, value_name = "FILE", value_parser = parse_path)]
    pub token_file: Option<PathBuf>,

    /// With an https:// --server: trust the certificate authorities in this
    /// PEM file as well as the system's.
    #[arg(
        long,
        global = true,
        env = "KVR_CACERT",
        hide_env_values = true,
        value_name = "PEM",
        value_parser = parse_path
    )]
    pub cacert: Option<PathBuf>,

    /// With --server: the longest wait for a request (for streams: the
    /// longest time without progress).
    #[arg(
        long,
        global = true,
        env = "KVR_TIMEOUT",
        hide_env_values = true,
        value_name = "SECS",
        default_value_t = 30.0,
        value_parser = parse_seconds,
        allow_negative_numbers = true
    )]
    pub timeout: f64,

    /// With --server on a cluster: `stale` reads answer from the node's
    /// own replica (possibly behind, never torn) instead of being
    /// linearizable.
    #[arg(
        long,
        global = true,
        env = "KVR_CONSISTENCY",
        hide_env_values = true,
        value_enum,
        default_value = "linearizable"
    )]
    pub consistency: Consistency,
}

/// Read consistency against a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consistency {
    Linearizable,
    Stale,
}

/// The clap command with what derive cannot say: `bench` ignores `KVR_DB`
/// and `KVR_SERVER`, so its help does not name them. Parse and generate
/// completions with this, never with `Cli::command()` directly.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    // `KVR_DB=` (set but empty, as `export KVR_DB=` leaves it) means the
    // default, not clap's "a value is required for '--db'", which names a
    // flag nobody typed.
    if std::env::var_os("KVR_DB").is_some_and(|v| v.is_empty()) {
        cmd = cmd.mut_arg("db", |a| a.env(None::<&str>));
    }
    // Global options reach the subcommands only when the command is built.
    cmd.build();
    let cmd = without_variables_of(cmd.clone(), &set_but_empty(&cmd));
    // `mut_args`, not `mut_arg`: it keeps the order of the built index.
    cmd.mut_subcommand("bench", |bench| {
        bench.mut_args(|a| match a.get_id().as_str() {
            // Without --db bench uses a temporary file, not ./kvr.redb.
            "db" => a.hide_env(true).hide_default_value(true).help(
                "The database file to measure (default: a temporary file, removed afterwards)",
            ),
            "server" => a.hide_env(true),
            _ => a,
        })
    })
}

/// The options whose environment variable is set but empty (as `export
/// KVR_TIMEOUT=` leaves it): that means the option's default, as for
/// `KVR_DB=` above, not clap's "invalid value ''" for a flag nobody typed.
/// Not for the tokens, which have rules of their own, nor for files: an
/// empty file name is refused (so that a server meant for TLS never
/// starts without it).
fn set_but_empty(cmd: &clap::Command) -> Vec<String> {
    const REFUSED_EMPTY: [&str; 5] = ["token", "cluster-token", "cacert", "tls-cert", "tls-key"];
    let mut empty: Vec<String> = std::iter::once(cmd)
        .chain(cmd.get_subcommands())
        .flat_map(clap::Command::get_arguments)
        .filter(|arg| {
            arg.get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| v.is_empty())
        })
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .filter(|long| !REFUSED_EMPTY.contains(&long.as_str()))
        .collect();
    empty.dedup();
    empty
}

/// Parses the process's arguments with [`command`].
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let words = words();
    let mut cmd = typed_options_skip_their_variables(command(), &words);
    let matches = match cmd.try_get_matches_from_mut(words.clone()) {
        Ok(matches) => matches,
        Err(e) => {
            return match without_the_environment(&words) {
                Some(cli) => Ok(cli),
                None => Err(name_the_variable(e, &cmd)),
            };
        }
    };
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// The command line as it is parsed: [`numbers_as_data`] of the process's
/// arguments.
fn words() -> Vec<OsString> {
    static WORDS: std::sync::OnceLock<Vec<OsString>> = std::sync::OnceLock::new();
    WORDS
        .get_or_init(|| numbers_as_data(std::env::args_os().collect()))
        .clone()
}

/// Whether `word` is a negative number as Rust reads one (`-.5`, `-1E-5`,
/// `-inf`, `-NaN`) that clap's `allow_negative_numbers` does not know: it
/// knows digits with one `.` and an exponent without a sign (`-5`, `-5.`,
/// `-1e5`), and takes the rest for flags.
fn number_clap_misses(word: &OsString) -> bool {
    let Some(text) = word.to_str() else {
        return false;
    };
    let Some(digits) = text.strip_prefix('-') else {
        return false;
    };
    let clap_knows = digits.starts_with(|c: char| c.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E')
        && !digits.ends_with(['e', 'E']);
    !digits.starts_with('-') && !clap_knows && text.parse::<f64>().is_ok()
}

/// `words` with the positional arguments moved after a `--` when one of
/// them is a number clap would take for a flag ([`number_clap_misses`]):
/// README promises that a negative number is data (`put k -.5`). Where
/// such a word goes is learnt from a parse with `-1` in its place; a word
/// that is not a positional of its command (an option's value) is left as
/// it is, so no flag is ever taken for data, and anything clap would not
/// parse so is left to clap's own error.
fn numbers_as_data(words: Vec<OsString>) -> Vec<OsString> {
    let escape = words.iter().position(|w| w == "--").unwrap_or(words.len());
    let numbers: Vec<usize> = (1..escape)
        .filter(|&i| number_clap_misses(&words[i]))
        .collect();
    if numbers.is_empty() {
        return words;
    }
    let mut probe = words.clone();
    for &i in &numbers {
        probe[i] = OsString::from("-1");
    }
    let Ok(matches) = command().try_get_matches_from(&probe) else {
        return words;
    };
    // A subcommand's indices count from its name (the first word that
    // names it, alias or not; the check below catches a wrong guess).
    let (mut def, mut level, mut offset) = (command(), &matches, 0);
    while let Some((name, sub)) = level.subcommand() {
        let Some(found) = def.find_subcommand(name).cloned() else {
            return words;
        };
        let names = |w: &str| w == found.get_name() || found.get_all_aliases().any(|a| a == w);
        // Not a word that is an option's value (`--db put put k -.5`: the
        // first `put` is the file's name, found by the review audit).
        let values: Vec<usize> = def
            .get_arguments()
            .filter(|a| !a.is_positional())
            .filter_map(|a| level.indices_of(a.get_id().as_str()))
            .flatten()
            .map(|i| i + offset)
            .collect();
        let Some(at) = (offset + 1..escape)
            .find(|&i| !values.contains(&i) && probe[i].to_str().is_some_and(names))
        else {
            return words;
        };
        (def, level, offset) = (found, sub, at);
    }
    let mut positional = Vec::new();
    for arg in def.get_positionals() {
        let id = arg.get_id().as_str();
        let (Some(at), Ok(Some(raw))) = (level.indices_of(id), level.try_get_raw(id)) else {
            continue;
        };
        for (i, value) in at.zip(raw) {
            let i = i + offset;
            // Indices are argv's but for clustered short flags: check.
            if probe.get(i).map(OsString::as_os_str) != Some(value) {
                return words;
            }
            positional.push(i);
        }
    }
    positional.sort_unstable();
    let after_escape = words.len().saturating_sub(escape + 1);
    if !numbers.iter().any(|i| positional.contains(i))
        || positional.iter().filter(|&&i| i > escape).count() != after_escape
    {
        return words;
    }
    let mut out: Vec<OsString> = (0..escape.min(words.len()))
        .filter(|i| !positional.contains(i))
        .map(|i| words[i].clone())
        .collect();
    out.push(OsString::from("--"));
    out.extend(positional.iter().map(|&i| words[i].clone()));
    out
}

/// `words` parsed with no option reading its environment variable, when
/// they run a command that uses none of them (`completions`, `openapi`):
/// a stale `KVR_TIMEOUT=abc` in a profile must not break `source <(kvr
/// completions bash)` in the same profile. `None` for any other command,
/// or when the words are wrong on their own.
fn without_the_environment(words: &[OsString]) -> Option<Cli> {
    use clap::FromArgMatches;
    let every: Vec<String> = command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    let mut cmd = without_variables_of(command(), &every);
    let matches = cmd.try_get_matches_from_mut(words).ok()?;
    let cli = Cli::from_arg_matches(&matches).ok()?;
    cli.command.reads_no_option().then_some(cli)
}

impl Command {
    /// Commands that need neither a database nor a server, so no global
    /// option (nor its variable) matters to them.
    pub fn reads_no_option(&self) -> bool {
        matches!(self, Command::Completions(_) | Command::Openapi(_))
    }
}

/// clap reads a global option's environment variable again for the
/// subcommand even when the option was typed before it, so a stale
/// `KVR_TIMEOUT=abc` failed `kvr --timeout 5 get k`, whose flag should beat
/// the variable (SPEC "Command line"). An option typed anywhere before
/// `--` has its variable left unread.
fn typed_options_skip_their_variables(cmd: clap::Command, words: &[OsString]) -> clap::Command {
    let mut typed: Vec<String> = words
        .iter()
        .skip(1)
        .map(|w| w.to_string_lossy())
        .take_while(|w| w != "--")
        .filter_map(|w| {
            let long = w.strip_prefix("--")?;
            Some(long.split('=').next().unwrap_or_default().to_owned())
        })
        .collect::<Vec<_>>();
    // `--token-file` is the other flag of the token: it beats KVR_TOKEN
    // as `--token` does.
    if typed.iter().any(|t| t == "token-file") {
        typed.push("token".to_owned());
    }
    without_variables_of(cmd, &typed)
}

/// `cmd` with the options in `longs` reading no environment variable, in
/// every subcommand too (the command is built: each holds its own copy of
/// a global option). `mut_args` keeps the order of the built index.
fn without_variables_of(cmd: clap::Command, longs: &[String]) -> clap::Command {
    cmd.mut_args(|arg| {
        let typed = arg
            .get_long()
            .is_some_and(|long| longs.iter().any(|t| t == long));
        if typed && arg.get_env().is_some() {
            arg.env(None)
        } else {
            arg
        }
    })
    .mut_subcommands(|sub| without_variables_of(sub, longs))
}

/// The id and environment variable of the option `flag` (`--timeout`),
/// global or of a subcommand, if it has a variable.
pub fn variable_of(cmd: &clap::Command, flag: &str) -> Option<(String, OsString)> {
    std::iter::once(cmd)
        .chain(cmd.get_subcommands())
        .flat_map(clap::Command::get_arguments)
        .find_map(|arg| {
            let env = arg.get_env()?;
            (format!("--{}", arg.get_long()?) == flag)
                .then(|| (arg.get_id().to_string(), env.to_owned()))
        })
}

/// clap's error for a bad value names the flag (`invalid value 'abc' for
/// '--timeout <SECS>'`) even when the value came from its environment
/// variable: a stale `KVR_TIMEOUT` in a profile then reads as a flag the
/// user never typed. Say which variable it was.
fn name_the_variable(e: clap::Error, cmd: &clap::Command) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return e;
    }
    let (Some(ContextValue::String(flag)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) else {
        return e;
    };
    // A typed option reads no variable (`typed_options_skip_their_variables`
    // made `cmd` so): its bad value is the flag's error, as clap words it.
    let as_flag = flag.split(' ').next().unwrap_or_default();
    let Some((_, variable)) = variable_of(cmd, as_flag).filter(|(_, env)| {
        std::env::var_os(env).is_some_and(|set| set.to_string_lossy() == *value)
    }) else {
        return e;
    };
    let long = as_flag.trim_start_matches("--");
    // clap's text after the flag: the parser's reason, or the values it takes.
    let rendered = e.render().to_string();
    let reason = rendered
        .lines()
        .next()
        .and_then(|line| line.split_once(&format!("'{flag}'")))
        .map(|(_, rest)| rest.trim_start_matches(':').trim().to_owned())
        .unwrap_or_default();
    let mut text = format!(
        "invalid value '{value}' in the environment variable {} (it sets --{long})",
        variable.to_string_lossy()
    );
    if !reason.is_empty() {
        text.push_str(": ");
        text.push_str(&reason);
    }
    if let Some(ContextValue::Strings(values)) = e.get(ContextKind::ValidValue) {
        text.push_str(&format!(": possible values: {}", values.join(", ")));
    }
    clap::Error::raw(ErrorKind::InvalidValue, text + "\n")
}

/// Whether the global option `id` was given as a flag, not through its
/// environment variable or default (a flag beats its variable, and `--db`
/// with `--server` as flags is a usage error).
pub fn given_on_command_line(id: &str) -> bool {
    use clap::parser::ValueSource;
    let Ok(matches) = command().try_get_matches_from(words()) else {
        return false;
    };
    let mut level = Some(&matches);
    while let Some(m) = level {
        if matches!(m.try_get_raw(id), Ok(Some(_)))
            && m.value_source(id) == Some(ValueSource::CommandLine)
        {
            return true;
        }
        level = m.subcommand().map(|(_, sub)| sub);
    }
    false
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Put(PutArgs),
    Get(GetArgs),
    #[command(visible_aliases = ["del", "rm"])]
    Delete(DeleteArgs),
    Range(RangeArgs),
    Watch(WatchArgs),
    Batch(BatchArgs),
    Stats(StatsArgs),
    Backup(BackupArgs),
    Check(CheckArgs),
    Compact(CompactArgs),
    Tui(TuiArgs),
    Serve(Box<ServeArgs>),
    Bench(BenchArgs),
    Cluster(ClusterCommand),
    Openapi(OpenapiArgs),
    Completions(CompletionsArgs),
}

/// A cluster's members and leadership (needs --server: any member).
#[derive(Debug, Args)]
pub struct ClusterCommand {
    #[command(subcommand)]
    pub action: ClusterAction,
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// The members, their roles and replication lag (a table; --json for
    /// the JSON of GET /v1/cluster).
    Status {
        /// Print the JSON of GET /v1/cluster instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner's node id (kvr cluster status lists them).
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Remove a node from the cluster (it stops serving and exits).
    Remove {
        /// The node's id (kvr cluster status lists them).
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Hand leadership to a voter.
    TransferLeader {
        /// The voter's node id (kvr cluster status lists them).
        #[arg(value_name = "ID")]
        id: u64,
    },
}

/// Store a value (from VALUE, or stdin to EOF when VALUE is absent).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES_PUT)]
pub struct PutArgs {
    /// The key (1 to 4096 bytes).
    #[arg(allow_negative_numbers = true)]
    pub key: OsString,
    /// The value, taken literally (`-` included); use `--` before a value
    /// that starts with `-` (a number such as -5 needs none). Without it,
    /// stdin is read to its end (binary-safe; on a terminal, end the value
    /// with Ctrl-D).
    #[arg(allow_negative_numbers = true)]
    pub value: Option<OsString>,
    /// Write only if the key's current revision is N (0: only if absent).
    #[arg(long, value_name = "N", value_parser = parse_revision, allow_negative_numbers = true)]
    pub if_revision: Option<u64>,
    /// Expire the key this long after the write: seconds (90) or with a
    /// unit (30s, 5m, 2h, 1d), at most 10 years. Without it, any earlier
    /// expiry of the key is cleared.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl, allow_negative_numbers = true)]
    pub ttl: Option<u64>,
    /// Print {"revision":N}.
    #[arg(long)]
    pub json: bool,
    /// With --db: the largest value accepted, in bytes [default: 16 MiB].
    /// Raise it for data from a server with a larger `serve
    /// --max-value-bytes`. With --server the server's limit applies.
    #[arg(long, value_name = "BYTES", value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub max_value_bytes: Option<usize>,
}

/// A file name argument. An empty one gets its own message: clap's own
/// for `kvr backup ''` said that no value was supplied.
fn parse_path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        Err("a file name cannot be empty".into())
    } else {
        Ok(PathBuf::from(text))
    }
}

/// `--limit N`: a whole number, at least 1: 0, as HTTP's `limit=0`, is
/// most likely a mistake, never "print nothing". (A negative one reaches
/// here, not clap's "unexpected argument" with a tip that does not apply.)
fn parse_limit(text: &str) -> Result<u64, String> {
    match text.parse::<i128>() {
        Ok(n) if n < 1 => Err("must be at least 1".into()),
        Ok(n) if n > i128::from(u64::MAX) => Err(format!("must be at most {}", u64::MAX)),
        _ => text
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not a whole number")),
    }
}

/// A count, a size or a number of MiB: a whole number, 0 or more, in
/// words (Rust's own were "invalid digit found in string", also for a
/// negative number).
fn parse_whole(text: &str) -> Result<u64, String> {
    match text.parse::<i128>() {
        Ok(n) if n < 0 => Err("must be 0 or more".into()),
        Ok(n) if n > i128::from(u64::MAX) => Err(format!("must be at most {}", u64::MAX)),
        _ => text
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not a whole number")),
    }
}

/// [`parse_whole`], for a count held in a `usize`.
fn parse_whole_usize(text: &str) -> Result<usize, String> {
    let n = parse_whole(text)?;
    usize::try_from(n).map_err(|_| format!("must be at most {}", usize::MAX))
}

/// An `--if-revision`: a revision, 0 or more. A negative one is said to be
/// one (clap took `-1` for an unknown flag, and its tip, `-- -1`, made it
/// the value argument instead).
fn parse_revision(text: &str) -> Result<u64, String> {
    match text.parse::<i128>() {
        Ok(n) if n < 0 => Err("a revision is 0 or more".into()),
        _ => text
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not a revision (a whole number, 0 or more)")),
    }
}

/// A duration as `--ttl`, `--timeout` and `--lock-timeout` take it: a
/// number and its unit, every letter at its end (so "5sec" names "sec"),
/// `s` (the default), `m`, `h` or `d`. Returns the number's text and the
/// unit's seconds.
fn split_unit(text: &str) -> Result<(&str, u64), String> {
    let number = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale = match &text[number.len()..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        unit => {
            return Err(format!(
                "unknown unit {unit:?}: use s, m, h or d (e.g. 30s, 5m)"
            ));
        }
    };
    Ok((number, scale))
}

/// `--timeout` and `--lock-timeout`: seconds (`30`, `0.5`), or with the
/// units `--ttl` takes (`30s`, `5m`, `2h`), as `sleep` reads them. Whether
/// the value is in range is the command's check (it names the variable a
/// stale value came from).
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let not_seconds = || format!("{text:?} is not a number of seconds such as 30, 0.5, 30s or 5m");
    if text
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .is_empty()
    {
        return Err(not_seconds());
    }
    let (number, scale) = split_unit(text)?;
    number
        .parse::<f64>()
        .ok()
        .filter(|_| !number.contains(['e', 'E']))
        .map(|n| n * scale as f64)
        .ok_or_else(not_seconds)
}

/// A `--ttl` duration in seconds: a whole number with an optional unit
/// `s`, `m`, `h` or `d`, from 1 second to 10 years.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let not_duration = || format!("{text:?} is not a duration such as 90, 30s, 5m, 2h or 1d");
    if text
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .is_empty()
    {
        // Letters only ("abc"): no number, not an unknown unit.
        return Err(not_duration());
    }
    let (digits, scale) = split_unit(text)?;
    let n: u64 = digits
        .parse()
        .ok()
        .filter(|_| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(not_duration)?;
    let secs = n.saturating_mul(scale);
    crate::jsonl::check_ttl(secs)?;
    Ok(secs)
}

/// Write a key's value to stdout, byte for byte.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES_GET)]
pub struct GetArgs {
    /// The key.
    #[arg(allow_negative_numbers = true)]
    pub key: OsString,
    /// Print the key's JSON line (key, value, revision) instead.
    #[arg(long)]
    pub json: bool,
}

/// Remove a key (exit 1 if it does not exist), or every key of a prefix
/// or range at once (--prefix, --range), atomically.
#[derive(Debug, Args)]
// The three forms, each on its own: clap's own usage line for an error
// in one form offered a KEY after --prefix or --range, which is refused.
#[command(override_usage = "kvr delete [OPTIONS] <KEY>\n       \
                            kvr delete [OPTIONS] --prefix <P>\n       \
                            kvr delete [OPTIONS] --range <START> <END>")]
#[command(after_help = EXAMPLES_DELETE)]
pub struct DeleteArgs {
    /// The key (none with --prefix or --range).
    #[arg(required_unless_present_any = ["prefix", "range"], conflicts_with_all = ["prefix", "range"])]
    #[arg(allow_negative_numbers = true)]
    pub key: Option<OsString>,
    /// Delete every key starting with P ('' deletes every key), atomically,
    /// each delete taking a revision; exit 0 also when none matched.
    #[arg(
        long,
        value_name = "P",
        conflicts_with = "range",
        allow_hyphen_values = true
    )]
    pub prefix: Option<OsString>,
    /// Delete every key in [START, END), atomically.
    #[arg(long, num_args = 2, value_names = ["START", "END"], allow_hyphen_values = true)]
    pub range: Option<Vec<OsString>>,
    /// Delete only if the key's current revision is N (N > 0).
    #[arg(
        long,
        value_name = "N",
        conflicts_with_all = ["prefix", "range"],
        value_parser = parse_revision,
        allow_negative_numbers = true
    )]
    pub if_revision: Option<u64>,
    /// Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range).
    #[arg(long)]
    pub json: bool,
}

/// Print keys in [START, END) as JSON lines, from one consistent snapshot.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES_RANGE)]
pub struct RangeArgs {
    /// First key (inclusive); omitted: from the first key.
    #[arg(allow_negative_numbers = true)]
    pub start: Option<OsString>,
    /// End key (exclusive); omitted: to the last key.
    #[arg(allow_negative_numbers = true)]
    pub end: Option<OsString>,
    /// Only keys starting with P (intersected with START/END).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub prefix: Option<OsString>,
    /// At most N lines (N >= 1).
    #[arg(long, value_name = "N", value_parser = parse_limit, allow_negative_numbers = true)]
    pub limit: Option<u64>,
    /// The same keys, in descending order.
    #[arg(long)]
    pub reverse: bool,
    /// Print only the keys.
    #[arg(long)]
    pub keys_only: bool,
    /// Print only {"count":n}, the number of keys the other options select
    /// (over --server the values are not sent).
    #[arg(long)]
    pub count: bool,
    /// Accepted for symmetry with the other commands: the output is JSON
    /// lines already.
    #[arg(long)]
    pub json: bool,
}

/// Print changes to keys in [START, END) as JSON lines until interrupted
/// (needs --server). After a dropped connection or a restarted server it
/// resumes where it stopped, through the --server list, never printing an
/// event twice or skipping one.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES_WATCH)]
pub struct WatchArgs {
    /// First key (inclusive); omitted: from the first key.
    #[arg(allow_negative_numbers = true)]
    pub start: Option<OsString>,
    /// End key (exclusive); omitted: to the last key.
    #[arg(allow_negative_numbers = true)]
    pub end: Option<OsString>,
    /// Only keys starting with P (intersected with START/END).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub prefix: Option<OsString>,
    /// Start with the events from revision R on (those the server still
    /// keeps; older ones: exit 1); omitted: changes after the current one.
    #[arg(long, value_name = "R", value_parser = parse_whole, allow_negative_numbers = true)]
    pub from_revision: Option<u64>,
    /// Leave values out of put events.
    #[arg(long)]
    pub keys_only: bool,
    /// Print the progress lines too: {"progress_revision":R} means every
    /// change up to R was printed.
    #[arg(long)]
    pub progress: bool,
}

/// Apply JSON lines atomically: all of them or none, however large (with
/// --server: up to the server's batch limits, else exit 2 with nothing
/// written; see --chunk-size).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES_BATCH)]
pub struct BatchArgs {
    /// Input file; omitted or `-`: stdin.
    #[arg(value_parser = parse_path)]
    pub file: Option<PathBuf>,
    /// Apply the input in parts of N lines (blank lines do not count), each
    /// part atomic on its own (the input as a whole is then not): for
    /// inputs over a server's limits, e.g. `kvr range | kvr --server URL batch --chunk-size 10000`.
    /// A failing part stops the run; the parts before it stay applied.
    #[arg(long, value_name = "N", value_parser = parse_limit, allow_negative_numbers = true)]
    pub chunk_size: Option<u64>,
    /// Print {"applied":n,"revision":N,"puts":p,"deletes":d} on stdout (the
    /// HTTP answer).
    #[arg(long)]
    pub json: bool,
    /// With --db: the largest value accepted, in bytes [default: 16 MiB].
    /// Raise it for data from a server with a larger `serve
    /// --max-value-bytes`. With --server the server's limit applies.
    #[arg(long, value_name = "BYTES", value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub max_value_bytes: Option<usize>,
}

/// Print {"keys":…,"revision":…,"file_bytes":…}.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Accepted for symmetry with the other commands: the output is JSON
    /// already.
    #[arg(long)]
    pub json: bool,
}

/// Copy the database at one revision into a new, compacted database file
/// (through --server while it serves, or from --db).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES_BACKUP)]
pub struct BackupArgs {
    /// The new file; written under a temporary name and renamed when
    /// complete, so it is never half a backup.
    #[arg(value_parser = parse_path)]
    pub dest: PathBuf,
    /// Replace DEST if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print {"revision":R,"keys":N,"bytes":B} (B: DEST's size).
    #[arg(long)]
    pub json: bool,
}

/// Verify the --db file without changing it: storage integrity, every
/// record, the counters, a leftover log (exit 3 on any problem).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print one JSON object: {"ok":true,"keys":N,"revision":R,"expired":E},
    /// or {"ok":false,"problems":[{"where":…,"what":…},…]} (exit 3).
    #[arg(long)]
    pub json: bool,
}

/// Give the --db file's free space back to the file system (no other
/// process may hold it); prints the size before and after.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Print {"before":B,"after":A}, the file's size in bytes.
    #[arg(long)]
    pub json: bool,
}

/// Browse and edit the database in a full-screen terminal UI (? for keys).
#[derive(Debug, Args)]
pub struct TuiArgs {}

/// Print the OpenAPI 3.1 document of the HTTP API, as `kvr serve` serves
/// it at /v1/openapi.json (needs no database).
#[derive(Debug, Args)]
pub struct OpenapiArgs {}

/// Print a shell completion script.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

/// Serve the HTTP API: writes are group-committed through a write-ahead log.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES_SERVE)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the first stdout line
    /// names it).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Allow a non-loopback address without a token.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Serve HTTPS with the certificate chain in this PEM file (leaf
    /// first); needs --tls-key.
    #[arg(long, env = "KVR_TLS_CERT", hide_env_values = true, value_name = "PEM", value_parser = parse_path)]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, a PEM file.
    #[arg(long, env = "KVR_TLS_KEY", hide_env_values = true, value_name = "PEM", value_parser = parse_path)]
    pub tls_key: Option<PathBuf>,
    /// Largest value, in bytes (in cluster mode, --raft-listen, the
    /// default is 8388608: one request is one Raft entry).
    #[arg(long, value_name = "BYTES", default_value_t = crate::limits::DEFAULT_MAX_VALUE_BYTES, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub max_value_bytes: usize,
    /// Most operations in one batch request.
    #[arg(long, value_name = "N", default_value_t = crate::server::limits::DEFAULT_MAX_BATCH_OPS, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub max_batch_ops: usize,
    /// Largest batch request body, in bytes (in cluster mode the default
    /// is 8388608: one request is one Raft entry). A batch is held several
    /// times over while applied: serve warns at start when one could
    /// exhaust its memory.
    #[arg(long, value_name = "BYTES", default_value_t = crate::server::limits::DEFAULT_MAX_BATCH_BYTES, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub max_batch_bytes: usize,
    /// Memory for request bodies being received or handled, server-wide,
    /// in MiB; beyond, 503 overloaded at once. Default: twice
    /// --memtable-mib; never less than one largest request.
    #[arg(long, value_name = "MIB", value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub max_body_mib: Option<usize>,
    /// Writes that may wait for the writer; beyond, 503 overloaded at once.
    #[arg(long, value_name = "N", default_value_t = crate::server::limits::DEFAULT_QUEUE_SIZE, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub queue_size: usize,
    /// Open connections; beyond, new ones get 503 and are closed (but for
    /// /healthz, /readyz and /metrics, on a reserve of 8 more).
    #[arg(long, value_name = "N", default_value_t = crate::server::limits::DEFAULT_MAX_CONNECTIONS, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a connection may make no progress before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub idle_timeout: f64,
    /// Memory for writes not yet flushed into the database file, in MiB:
    /// past it writes wait for a flush (and get 503 when the queue is
    /// full). Default: an eighth of the cache, between 16 and 128. It also
    /// bounds the log replayed after a crash.
    #[arg(long, value_name = "MIB", value_parser = parse_whole, allow_negative_numbers = true)]
    pub memtable_mib: Option<u64>,
    /// Watch history to keep, in revisions (0: none; watches then follow
    /// live changes only and cannot resume from an earlier revision).
    #[arg(long, value_name = "N", default_value_t = crate::engine::history::DEFAULT_HISTORY, value_parser = parse_whole, allow_negative_numbers = true)]
    pub history: u64,
    /// Watch history to keep, in bytes of its events (each event's key and
    /// value plus 24 bytes): the oldest events go first when either bound
    /// is reached.
    #[arg(long, value_name = "BYTES", default_value_t = crate::engine::history::DEFAULT_HISTORY_BYTES, value_parser = parse_whole, allow_negative_numbers = true)]
    pub history_bytes: u64,
    /// Threads serving HTTP [default: one per CPU core; the group-commit
    /// writer and the flush have threads of their own].
    #[arg(long, value_name = "N", value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub workers: Option<usize>,
    /// No log line per request on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Cluster mode: `serve` as one member of a replicated cluster.
#[derive(Debug, Args)]
#[command(next_help_heading = "Cluster mode")]
pub struct ClusterArgs {
    /// Turn cluster mode on: node-to-node traffic uses only this address
    /// (port 0: any free port; stdout names it after the listening line).
    #[arg(long, value_name = "ADDR")]
    pub raft_listen: Option<String>,
    /// Make this node the first of a new cluster (a file with data brings
    /// it in). Ignored on a file that is already a member.
    #[arg(long, conflicts_with = "join", requires = "raft_listen")]
    pub cluster_init: bool,
    /// Ask a member (any of these public URLs) to add this node; it
    /// catches up as a learner and then votes.
    #[arg(
        long,
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        requires = "raft_listen"
    )]
    pub join: Vec<String>,
    /// Stay a non-voting learner after joining.
    #[arg(long, requires = "join")]
    pub learner: bool,
    /// The public URL others use for this node [default: the bound one].
    #[arg(long, value_name = "URL")]
    pub advertise_url: Option<String>,
    /// The raft address others use for this node [default: the bound one].
    #[arg(long, value_name = "ADDR", requires = "raft_listen")]
    pub advertise_raft: Option<String>,
    /// Shared secret of node-to-node traffic (mandatory unless every raft
    /// address is loopback).
    #[arg(
        long,
        env = "KVR_CLUSTER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub cluster_token: Option<String>,
    /// Read the cluster token from this file (trailing newline removed).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "cluster_token",
        requires = "raft_listen",
        value_parser = parse_path
    )]
    pub cluster_token_file: Option<PathBuf>,
    /// Leader heartbeat interval, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 100,
        requires = "raft_listen",
        value_parser = parse_whole,
        allow_negative_numbers = true,
    )]
    pub heartbeat_ms: u64,
    /// Election timeout range, in milliseconds (MIN at least 3 x heartbeat).
    #[arg(
        long,
        value_name = "MIN-MAX",
        default_value = "500-1000",
        requires = "raft_listen"
    )]
    pub election_timeout_ms: String,
}

/// What `kvr bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Put,
    Get,
    Range,
    Batch,
    Mixed,
    Healthz,
}

/// Load generator: ops/s and latency percentiles against --server URL or,
/// with --db PATH (or a temporary file), the engine alone. Only flags on
/// the command line count here: KVR_DB and KVR_SERVER are ignored.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What each request does.
    #[arg(long, value_enum, default_value = "put")]
    pub workload: Workload,
    /// Concurrent clients (connections).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub clients: usize,
    /// Run this long [default: 10 s unless --requests is given].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Stop after this many requests in all.
    #[arg(long, value_name = "N", value_parser = parse_whole, allow_negative_numbers = true)]
    pub requests: Option<u64>,
    /// Key length in bytes (random keys under `kvr-bench/`).
    #[arg(long, value_name = "BYTES", default_value_t = 16, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub key_size: usize,
    /// Value length in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 100, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub value_size: usize,
    /// Number of distinct keys the workload draws from (reads too: prefill
    /// them first, in this run or an earlier one).
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = parse_whole, allow_negative_numbers = true)]
    pub keyspace: u64,
    /// Keys to write (`kvr-bench/` 0..N) before measuring.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = parse_whole, allow_negative_numbers = true)]
    pub prefill: u64,
    /// Share of reads in the mixed workload.
    #[arg(long, value_name = "R", default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Operations per request of the batch workload.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub batch_size: usize,
    /// Keys per request of the range workload.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = parse_whole_usize, allow_negative_numbers = true)]
    pub range_size: usize,
    /// Retry at once after a 503 instead of waiting the server's
    /// Retry-After (1 s), as a well-behaved client would.
    #[arg(long)]
    pub no_backoff: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

// `--help`'s examples; tests/cli/usage.rs runs every one that needs no
// server.
const EXAMPLES_PUT: &str = "Examples:
  kvr put user:1 alice
  echo '{\"theme\":\"dark\"}' | kvr put cfg:app      # the value from stdin
  kvr put --ttl 5m session:42 token              # gone 5 minutes later
  kvr put --if-revision 0 lock:job me            # only if absent, else exit 4";
const EXAMPLES_GET: &str = "Examples:
  kvr get user:1
  kvr get --json user:1                          # key, value and revision
  kvr get img:1 > img.png                        # the bytes as stored";
const EXAMPLES_DELETE: &str = "Examples:
  kvr delete user:1
  kvr delete --prefix tmp:                       # every key starting with tmp:
  kvr delete --range a m                         # every key in [a, m)";
const EXAMPLES_RANGE: &str = "Examples:
  kvr range                                      # every key, as JSON lines
  kvr range --prefix user: --keys-only
  kvr range user: 'user;' --limit 10             # keys in [user:, user;)
  kvr range --count";
const EXAMPLES_WATCH: &str = "Examples:
  kvr --server http://127.0.0.1:7070 watch --prefix user:
  kvr --server http://127.0.0.1:7070 watch --from-revision 1200";
const EXAMPLES_BATCH: &str = "Examples:
  kvr batch import.jsonl
  printf '{\"key\":\"a\",\"value\":\"1\"}\\n{\"op\":\"delete\",\"key\":\"tmp:1\"}\\n' | kvr batch
  kvr --db old.redb range | kvr --db new.redb batch   # copy a database";
const EXAMPLES_BACKUP: &str = "Examples:
  kvr backup nightly.redb
  kvr --server http://127.0.0.1:7070 backup nightly.redb   # while it serves";
const EXAMPLES_SERVE: &str = "Examples:
  kvr serve --listen 127.0.0.1:7070
  kvr serve --listen 0.0.0.0:7443 --tls-cert cert.pem --tls-key key.pem --token-file token";
