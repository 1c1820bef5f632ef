//! The `kvr` binary: parse, run, print the error once, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use kvr::Error;
use kvr::cli::Cli;

// mimalloc returns freed memory to the OS promptly; with glibc malloc the RSS
// of a large batch was seen at twice the configured cache.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match kvr::cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvr: error: {e:#}");
            let code = e.downcast_ref::<Error>().map_or(3, Error::exit_code);
            ExitCode::from(code)
        }
    }
}

/// clap's own errors: help and version go to stdout with exit 0; anything else
/// is a usage error (exit 2) whose first line starts with `kvr: error:`.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    eprint!("kvr: {text}");
    ExitCode::from(2)
}

/// A reader that closed our stdout (`kvr range | head -1`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
