//! The `kvr` binary: parse, run, print the error once, exit with its code.

use std::process::ExitCode;

use kvr::Error;

// mimalloc keeps RSS close to what is in use: with glibc malloc the RSS of a
// large batch was seen at twice the configured cache.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_e` enum of the vendored mimalloc
/// v3 header (`libmimalloc-sys`, which names no constant for it).
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before returning it to the OS. redb
/// allocates a zeroed buffer per dirty page, and `serve`'s memory tables are
/// freed after each flush and filled again: memory returned too early is
/// faulted in and zeroed again by the kernel, and each return costs
/// `madvise` and TLB flushes on every core. The 10 ms default cost a 1M-line
/// `kvr batch` 20 %; one second still cost `serve` about 5 % of its durable
/// PUT throughput under load and `kvr batch` about 15 % against a minute
/// (`docs/benchmarks.md`). What is freed and not reused goes back to the OS
/// later (after a minute; ten for whole arena ranges, `arena_purge_mult`),
/// so only a process with memory to spare keeps it that long: in a 256 MiB
/// cgroup the memory a batch's body, its parsed lines and its log record
/// had taken, kept for a minute, got `serve` OOM-killed by the next batch,
/// where mimalloc's own 10 ms kept it alive.
#[cfg(feature = "mimalloc")]
const ALLOCATOR_PURGE_DELAY_MS: std::os::raw::c_long = 60_000;

/// Below this much memory for the process (its cgroup's limit or
/// MemAvailable), mimalloc's own purge delay is kept.
#[cfg(feature = "mimalloc")]
const LONG_PURGE_DELAY_FROM_BYTES: u64 = 2 << 30;

#[cfg(feature = "mimalloc")]
#[allow(unsafe_code)]
fn tune_allocator() {
    if kvr::store::available_bytes() >= LONG_PURGE_DELAY_FROM_BYTES {
        // SAFETY: sets a plain integer option; mimalloc reads options
        // atomically and this runs before any other thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS) };
    }
}

#[cfg(not(feature = "mimalloc"))]
fn tune_allocator() {}

/// Whether fd 0 was closed when the process started. Rust's runtime puts
/// /dev/null, opened read-write, in place of a closed fd 0 before `main`,
/// which makes `kvr put KEY <&-` look like a parent's `stdin=DEVNULL` (an
/// empty input); glibc runs `.init_array` before that, so this sees fd 0
/// as the parent left it.
#[cfg(target_os = "linux")]
static STDIN_CLOSED_AT_START: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Whether fd 1 was closed when the process started, seen as fd 0 is: a
/// closed stdout gets /dev/null too, and `kvr watch >&-` then printed to it
/// forever instead of ending as a watch whose stdout closes does.
#[cfg(target_os = "linux")]
static STDOUT_CLOSED_AT_START: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_STDIO_AT_START: extern "C" fn() = note_stdio_at_start;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
extern "C" fn note_stdio_at_start() {
    for (fd, closed) in [(0, &STDIN_CLOSED_AT_START), (1, &STDOUT_CLOSED_AT_START)] {
        // SAFETY: the fd is only asked about (F_GETFD), never closed or
        // kept; a closed one fails with EBADF.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if rustix::io::fcntl_getfd(fd).is_err() {
            closed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    kvr::panics::install();
    #[cfg(target_os = "linux")]
    kvr::cmd::stdio_closed_at_start(
        STDIN_CLOSED_AT_START.load(std::sync::atomic::Ordering::Relaxed),
        STDOUT_CLOSED_AT_START.load(std::sync::atomic::Ordering::Relaxed),
    );
    let cli = match kvr::cli::parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = kvr::cmd::run(cli);
    // `serve`'s last log lines, before its error line (bounded: a stalled
    // stderr does not keep the process from exiting).
    kvr::server::log::flush_events();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            to_stderr(format_args!("kvr: error: {}\n", error_text(&e)));
            let code = e.downcast_ref::<Error>().map_or(3, Error::exit_code);
            ExitCode::from(code)
        }
    }
}

/// Writes to stderr, ignoring a failure: `eprint!` panics when stderr is
/// gone (a closed pipe), which turned every exit code into 101.
fn to_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stderr().write_fmt(args);
}

/// Help or version on stdout, exit 0; a stdout that cannot take it (`kvr
/// --help > /dev/full`) fails as every command's output does (exit 3), a
/// closed one is no error (`kvr --help | head -1`).
fn print_help(e: &clap::Error) -> ExitCode {
    use std::io::{IsTerminal, Write};
    let mut out = std::io::stdout().lock();
    // A terminal gets clap's colours; it does not fill up.
    if out.is_terminal() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let written = out
        .write_all(e.render().to_string().as_bytes())
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(io) if io.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(io) => {
            let err = Error::io("cannot write output", io);
            to_stderr(format_args!("kvr: error: {err}\n"));
            ExitCode::from(err.exit_code())
        }
    }
}

/// clap's own errors: help and version go to stdout with exit 0; anything else
/// is a usage error (exit 2) whose first line starts with `kvr: error:`.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => print_help(&e),
        // `kvr` alone: say what is missing, then the help, on stderr.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            to_stderr(format_args!(
                "kvr: error: a command is required\n\n{}",
                e.render()
            ));
            ExitCode::from(2)
        }
        // `--db "$DB"` with $DB unset: say what to give, as `--server ""`
        // does (clap's "a value is required … but none was supplied" read
        // as if nothing had been typed).
        ErrorKind::InvalidValue
            if invalid_arg(&e).is_some_and(|a| a.starts_with("--db ")) && given_empty(&e) =>
        {
            to_stderr(format_args!(
                "kvr: error: --db needs a path (none was given, or an empty one); without --db, KVR_DB or \
                 ./kvr.redb is used\n"
            ));
            ExitCode::from(2)
        }
        // clap lists what is missing on the lines after its first: SPEC's
        // first line says what failed, so they join it.
        ErrorKind::MissingRequiredArgument => {
            to_stderr(format_args!(
                "kvr: {}",
                missing_on_one_line(&e.render().to_string())
            ));
            ExitCode::from(2)
        }
        _ => {
            to_stderr(format_args!("kvr: {}", e.render()));
            ExitCode::from(2)
        }
    }
}

/// clap's "the following required arguments were not provided:" with the
/// indented names after it on its own line (`<KEY>`, `<VALUE>`).
fn missing_on_one_line(text: &str) -> String {
    let mut lines = text.lines();
    let Some(first) = lines.next() else {
        return text.to_string();
    };
    let rest: Vec<&str> = lines.collect();
    let names = rest.iter().take_while(|l| l.starts_with("  ")).count();
    let listed: Vec<&str> = rest[..names].iter().map(|l| l.trim()).collect();
    let mut out = format!("{first} {}\n", listed.join(" "));
    for line in &rest[names..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether the value a clap error refused was empty.
fn given_empty(e: &clap::Error) -> bool {
    matches!(
        e.get(clap::error::ContextKind::InvalidValue),
        Some(clap::error::ContextValue::String(v)) if v.is_empty()
    )
}

/// The argument a clap error is about (`--db <DB>`), if it names one.
fn invalid_arg(e: &clap::Error) -> Option<String> {
    match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(arg)) => Some(arg.clone()),
        _ => None,
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text
/// the message already ends with (our typed errors include their source).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// A reader that closed our stdout (`kvr range | head -1`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
